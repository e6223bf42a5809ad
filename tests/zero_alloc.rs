//! In steady state the calling thread allocates nothing per event: buffers come back from the
//! writer and are reused, spans are rendered once, the timestamp is taken raw.
//!
//! A counting global allocator counts the allocations made by the logging thread alone (a
//! thread-local flag marks it), so the writer's and janitor's allocations do not count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;
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
        windows(emit)
    });
    assert_steady(guard, &windows, &format!("{format:?}"));
}

/// Shuts the sink down and checks what [`windows`] measured: every event written, the last
/// window without an allocation, and none with more than a few buffer batches.
fn assert_steady(guard: logsink::SinkGuard, windows: &[u64], what: &str) {
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(
        stats.events_written,
        100_000 + 10_000 * windows.len() as u64
    );
    assert_eq!(
        windows.last(),
        Some(&0),
        "{what}: allocations per window of 10,000 events: {windows:?}"
    );
    assert!(
        windows.iter().all(|&n| n <= 4 * 32),
        "{what}: more than a few buffer batches in a window: {windows:?}"
    );
}

/// Allocations made by `emit` on this thread, per window of 10,000 calls after a warm-up of
/// 100,000, measured as [`steady_state`] measures them (until a window allocates nothing, at
/// most [`WINDOWS`]).
fn windows(mut emit: impl FnMut(u64)) -> Vec<u64> {
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
}

/// A `SinkWriter` allocates nothing per record in steady state: records written through
/// `make_writer` (as tracing-subscriber's formatter writes them) and lines written to it
/// directly travel in recycled buffers.
#[test]
fn the_writer_allocates_nothing_per_record_in_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, guard) = logsink::LogSink::builder()
        .directory(dir.path())
        .queue_capacity(1024)
        .build_writer()
        .unwrap();
    let line = br#"{"timestamp":"2026-11-24T14:26:18.169272Z","level":"INFO","fields":{"message":"served","status":200},"target":"app"}"#;
    let windows = windows(|i| {
        if i % 2 == 0 {
            let mut record = writer.make_writer();
            record.write_all(&line[..40]).unwrap();
            record.write_all(&line[40..]).unwrap();
            record.write_all(b"\n").unwrap();
        } else {
            writer.write_all(line).unwrap();
            writer.write_all(b"\n").unwrap();
        }
    });
    drop(writer);
    assert_steady(guard, &windows, "SinkWriter");
}

/// Allocation windows of tracing-subscriber's text formatter writing into `make_writer`.
fn fmt_windows<M>(make_writer: M) -> Vec<u64>
where
    M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(make_writer);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(fmt), || {
        let span = tracing::info_span!("request", id = 7);
        let _entered = span.enter();
        windows(emit)
    })
}

/// tracing-subscriber's formatter allocates no more per event writing through a `SinkWriter`
/// than writing into `io::sink()`: the sink adds nothing to what the formatter itself does.
#[test]
fn the_writer_adds_no_allocation_to_the_formatter() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, guard) = logsink::LogSink::builder()
        .directory(dir.path())
        .queue_capacity(1024)
        .build_writer()
        .unwrap();
    let baseline = fmt_windows(std::io::sink);
    let ours = fmt_windows(writer);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, 100_000 + 10_000 * ours.len() as u64);
    let least = |w: &[u64]| *w.iter().min().unwrap();
    assert!(
        least(&ours) <= least(&baseline),
        "allocations per window of 10,000 events: fmt into io::sink {baseline:?}, \
         fmt into the sink {ours:?}"
    );
}

/// The same with OpenTelemetry ids in each line: looking them up allocates nothing either. The
/// OpenTelemetry layer sees spans only (a per-layer filter), since its own handling of an
/// event allocates, and this test counts every allocation on the logging thread.
#[cfg(feature = "opentelemetry")]
#[test]
fn opentelemetry_ids_allocate_nothing_per_event() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::filter::filter_fn;

    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir.path())
        .queue_capacity(1024)
        .with_opentelemetry_ids(true)
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("zero-alloc"))
        .with_filter(filter_fn(|meta| meta.is_span()));
    let subscriber = tracing_subscriber::registry().with(otel).with(layer);
    let windows = tracing::subscriber::with_default(subscriber, || {
        let _outer = tracing::info_span!("server", port = 8080).entered();
        let _inner = tracing::info_span!("request", id = 7).entered();
        windows(emit)
    });
    guard.shutdown_blocking().unwrap();
    provider.shutdown().unwrap();
    let text = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    assert!(text.lines().all(|line| line.contains(r#","trace_id":""#)));
    assert_eq!(
        windows.last(),
        Some(&0),
        "allocations per window of 10,000 events: {windows:?}"
    );
}
