//! Memory for deeply nested spans grows linearly with the depth, as tracing-subscriber's JSON
//! layer does: each span keeps only its own rendered fields, and an event's `spans` list is put
//! together when the event is logged.
//!
//! A counting global allocator measures two things while thousands of nested spans are created
//! and entered and one event is logged inside them: the bytes allocated by the logging thread
//! (a thread-local flag marks it), which does not depend on timing, and the peak of the bytes
//! live in the whole process, the writer's included. This binary holds a single test, so that
//! no other test allocates while it measures.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use serde_json::json;
use tracing_subscriber::prelude::*;

use common::{log_path, read_json_lines, FILE_NAME};

struct Counting;

/// Bytes allocated by the marked thread: allocations, plus what reallocations grew by.
static CALLER_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Bytes live in the process now, and the most seen since the last reset.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(live, Relaxed);
    // `try_with`: the allocator also runs while thread-locals are torn down.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        CALLER_BYTES.fetch_add(by, Relaxed);
    }
}

fn shrank(by: usize) {
    LIVE.fetch_sub(by, Relaxed);
}

// SAFETY: every method forwards to the system allocator unchanged; counting has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MIB: usize = 1024 * 1024;

/// What nesting `depth` spans and logging one event inside took.
struct Measured {
    /// Bytes the logging thread allocated while creating and entering the spans and logging.
    caller: usize,
    /// The most bytes live at once above what was live before the spans were created, until
    /// the writer had written the event.
    peak: usize,
}

/// Creates `depth` nested spans, each entered inside the one before, logs one event in the
/// innermost, then checks that the event's `spans` list holds every span, root first.
fn nest(depth: usize) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir.path())
        .file_name(FILE_NAME)
        .queue_capacity(64)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let measured = tracing::subscriber::with_default(subscriber, || {
        let mut entered = Vec::with_capacity(depth);
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let caller_before = CALLER_BYTES.load(Relaxed);
        COUNTED.with(|c| c.set(true));
        for i in 0..depth {
            entered.push(tracing::info_span!("level", depth = i, kind = "nested").entered());
        }
        tracing::info!(depth, "innermost");
        COUNTED.with(|c| c.set(false));
        let caller = CALLER_BYTES.load(Relaxed) - caller_before;
        guard.flush_blocking().unwrap();
        let peak = PEAK.load(Relaxed).saturating_sub(before);
        // Innermost first, as scopes end.
        while let Some(span) = entered.pop() {
            drop(span);
        }
        Measured { caller, peak }
    });
    guard.shutdown_blocking().unwrap();

    let lines = read_json_lines(&log_path(dir.path()));
    assert_eq!(lines.len(), 1, "one event");
    let event = &lines[0];
    assert_eq!(event["fields"]["message"], "innermost");
    let spans = event["spans"].as_array().expect("a `spans` array");
    assert_eq!(spans.len(), depth, "every entered span is listed");
    for (i, span) in spans.iter().enumerate() {
        let expected = json!({"name": "level", "depth": i, "kind": "nested"});
        assert_eq!(span, &expected, "span {i} of {depth}");
    }
    assert_eq!(
        event["span"],
        json!({"name": "level", "depth": depth - 1, "kind": "nested"})
    );
    measured
}

/// One event under 5,000 and under 10,000 nested spans: a few MiB, and twice the depth takes
/// about twice the memory (a span that cached its whole parent chain took memory in the
/// square of the depth: hundreds of MiB at 5,000).
#[test]
fn memory_for_nested_spans_is_linear_in_depth() {
    let shallow = nest(5_000);
    let deep = nest(10_000);
    eprintln!(
        "5,000 spans: caller allocated {} KiB, peak {} KiB; 10,000 spans: {} KiB, peak {} KiB",
        shallow.caller / 1024,
        shallow.peak / 1024,
        deep.caller / 1024,
        deep.peak / 1024
    );
    assert!(
        shallow.caller < 10 * MIB,
        "5,000 nested spans: the logging thread allocated {} bytes",
        shallow.caller
    );
    assert!(
        shallow.peak < 10 * MIB,
        "5,000 nested spans: {} bytes live at the peak",
        shallow.peak
    );
    // Linear growth doubles; the square of the depth would quadruple.
    for (what, small, large) in [
        ("allocated by the caller", shallow.caller, deep.caller),
        ("live at the peak", shallow.peak, deep.peak),
    ] {
        assert!(
            large * 10 < small * 25,
            "bytes {what}: {small} at 5,000 spans, {large} at 10,000: more than linear"
        );
    }
}
