//! In steady state the calling thread allocates nothing per event: buffers come back from the
//! writer and are reused, spans are rendered once, the timestamp is taken raw.
//!
//! A counting global allocator counts the allocations made by the logging thread alone (a
//! thread-local flag marks it), so the writer's and janitor's allocations do not count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tracing_subscriber::prelude::*;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator unchanged; counting has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Debug)]
#[allow(dead_code)] // read through `Debug` only
struct Point {
    x: i32,
    y: i32,
}

/// An error with a source, which a text sink records with the source's text.
#[derive(Debug)]
struct Failed(Option<&'static Failed>);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed\x1b[31m")
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.map(|e| e as _)
    }
}

static FAILED: Failed = Failed(Some(&Failed(None)));

fn emit(i: u64) {
    match i % 4 {
        0 => tracing::info!(request = i, path = "/api/items", ok = true, "served {}", i),
        1 => tracing::warn!(latency = 12.5, point = ?Point { x: 1, y: -2 }, "slow"),
        2 => tracing::error!(err = &FAILED as &dyn std::error::Error, "\x1b]0;title\x07"),
        _ => tracing::error!(error = %"connection reset", attempt = i, "failed"),
    }
}

/// Windows of 10,000 events measured after the warm-up, at most.
const WINDOWS: usize = 5;

/// After a warm-up, a window of 10,000 events on one thread makes no allocation at all.
///
/// "Steady state" is when the recycled buffers suffice for everything in flight. The warm-up
/// fills the queue many times (this loop outruns the writer), which usually gets there; but a
/// writer descheduled for longer than ever before (a loaded CI machine) can leave more events
/// in flight than the warm-up saw, and the population then grows once more. So up to
/// [`WINDOWS`] windows are measured: one must allocate nothing, and none may allocate more than
/// a handful of times (a per-event allocation would show as thousands).
///
/// The same holds with the formatting options that change what the caller does (thread ids and
/// names, taken once per thread; the span keys) and the writer's (flattened, without time, an
/// offset). One test for all: the count of allocations is shared by the whole process.
#[test]
fn logging_allocates_nothing_per_event_in_steady_state() {
    for format in [logsink::Format::Json, logsink::Format::Text] {
        steady_state(format, |builder| builder);
        steady_state(format, |builder| {
            builder
                .with_thread_ids(true)
                .with_thread_names(true)
                .with_file_and_line(true)
                .flatten_event(true)
                .with_current_span(false)
                .timestamp_offset(logsink::UtcOffset::from_hms(2, 0, 0).unwrap())
        });
        steady_state(format, |builder| {
            builder
                .with_thread_ids(true)
                .with_span_list(false)
                .with_target(false)
                .with_level(false)
                .without_time()
        });
    }
}

fn steady_state(format: logsink::Format, options: fn(logsink::Builder) -> logsink::Builder) {
    let dir = tempfile::tempdir().unwrap();
    let builder = logsink::LogSink::builder()
        .directory(dir.path())
        .format(format)
        .queue_capacity(1024);
    let (layer, guard) = options(builder).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let windows = tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("server", port = 8080);
        let _outer = outer.enter();
        let inner = tracing::info_span!("request", id = 7, method = "GET");
        let _inner = inner.enter();
        for i in 0..100_000 {
            emit(i);
        }
        let mut windows = Vec::new();
        for _ in 0..WINDOWS {
            let before = ALLOCATIONS.load(Relaxed);
            COUNTED.with(|c| c.set(true));
            for i in 0..10_000 {
                emit(i);
            }
            COUNTED.with(|c| c.set(false));
            windows.push(ALLOCATIONS.load(Relaxed) - before);
            if windows.last() == Some(&0) {
                break;
            }
        }
        windows
    });
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(
        stats.events_written,
        100_000 + 10_000 * windows.len() as u64
    );
    assert_eq!(
        windows.last(),
        Some(&0),
        "{format:?}: allocations per window of 10,000 events: {windows:?}"
    );
    assert!(
        windows.iter().all(|&n| n <= 4 * 32),
        "{format:?}: more than a few buffer batches in a window: {windows:?}"
    );
}
