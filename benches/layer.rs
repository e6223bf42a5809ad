//! Per-event cost on the calling thread: logsink's layer against a no-op layer on the same
//! registry, for an event with no fields, with 5 fields, and inside 3 nested spans; and a JSON
//! sink's cost before and after a text sink was built in the process (`text_sink_in_process`:
//! the same, since sinks keep no process-wide state).
//!
//! `cargo bench --bench layer`. The logsink sink writes to a temporary folder; its writer runs
//! on its own thread, as in production. Events are timed in runs of [`CHUNK`], and the queue is
//! drained (untimed) between runs, so the figure is the caller's cost with room in the queue —
//! not the writer's throughput, which `benches/throughput.rs` measures.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use tracing_subscriber::Layer;

/// Events timed between two drains of the queue; well below its capacity.
const CHUNK: u64 = 10_000;

/// A layer that does nothing: the floor that any layer's cost is measured against.
struct Noop;
impl<S: tracing::Subscriber> Layer<S> for Noop {}

fn no_fields() {
    tracing::info!("request served");
}

fn five_fields(i: u64) {
    tracing::info!(
        request_id = i,
        method = "GET",
        path = "/api/v1/items",
        latency_ms = 12.5,
        cached = true,
        "request served"
    );
}

fn nested_spans(i: u64) {
    let a = tracing::info_span!("server", port = 8080);
    let _a = a.enter();
    let b = tracing::info_span!("request", id = i, method = "GET");
    let _b = b.enter();
    let c = tracing::info_span!("db", table = "items");
    let _c = c.enter();
    tracing::info!(rows = 3, "query done");
}

/// Runs `event` `iters` times in chunks, draining the queue between chunks, and returns the
/// time spent in `event` alone.
fn timed(iters: u64, drain: &dyn Fn(), mut event: impl FnMut(u64)) -> Duration {
    let mut total = Duration::ZERO;
    let mut i = 0;
    while i < iters {
        let n = CHUNK.min(iters - i);
        let start = Instant::now();
        for k in i..i + n {
            event(k);
        }
        total += start.elapsed();
        drain();
        i += n;
    }
    total
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir.path())
        .queue_capacity(1 << 20)
        .max_file_size(256 * 1024 * 1024)
        .compression(logsink::Compression::None)
        .keep_files(1)
        .build()
        .unwrap();
    let drain = || guard.flush_blocking().unwrap();
    let sinks = [
        (
            "noop",
            Dispatch::new(tracing_subscriber::registry().with(Noop)),
        ),
        (
            "logsink",
            Dispatch::new(tracing_subscriber::registry().with(layer)),
        ),
    ];

    let mut group = c.benchmark_group("event");
    for (name, dispatch) in &sinks {
        tracing::dispatcher::with_default(dispatch, || {
            group.bench_function(BenchmarkId::new("no_fields", name), |b| {
                b.iter_custom(|iters| timed(iters, &drain, |_| no_fields()))
            });
            group.bench_function(BenchmarkId::new("five_fields", name), |b| {
                b.iter_custom(|iters| timed(iters, &drain, |i| five_fields(black_box(i))))
            });
        });
    }
    group.finish();

    // Spans are entered once; the measured cost is the event inside them.
    let mut group = c.benchmark_group("event_in_3_spans");
    for (name, dispatch) in &sinks {
        tracing::dispatcher::with_default(dispatch, || {
            let a = tracing::info_span!("server", port = 8080);
            let _a = a.enter();
            let b = tracing::info_span!("request", id = 7u64, method = "GET");
            let _b = b.enter();
            let c2 = tracing::info_span!("db", table = "items");
            let _c = c2.enter();
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    timed(iters, &drain, |_| tracing::info!(rows = 3, "query done"))
                })
            });
        });
    }
    group.finish();

    // Creating and entering the spans per event, for completeness.
    let mut group = c.benchmark_group("spans_and_event");
    for (name, dispatch) in &sinks {
        tracing::dispatcher::with_default(dispatch, || {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| timed(iters, &drain, |i| nested_spans(black_box(i))))
            });
        });
    }
    group.finish();
    drop(sinks);
    guard.shutdown_blocking().unwrap();
}

/// A JSON sink on its own registry, timed alone, then again once a text sink (on a registry of
/// its own, with spans of its own) exists in the process: creating spans, recording a field and
/// logging in them, and a plain event with 5 fields. Runs after [`bench`], so that no text sink
/// exists before its first half.
fn text_sink_in_process(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir.path())
        .queue_capacity(1 << 20)
        .compression(logsink::Compression::None)
        .build()
        .unwrap();
    let drain = || guard.flush_blocking().unwrap();
    let json = Dispatch::new(tracing_subscriber::registry().with(layer));
    let spans_recorded = |i: u64| {
        let a = tracing::info_span!(
            "request",
            id = i,
            method = "GET",
            status = tracing::field::Empty
        );
        let _a = a.enter();
        let b = tracing::info_span!("db", table = "items");
        let _b = b.enter();
        a.record("status", 200);
        tracing::info!(rows = 3, "query done");
    };
    let mut group = c.benchmark_group("text_sink_in_process");
    let run = |group: &mut criterion::BenchmarkGroup<'_, _>, when: &str| {
        tracing::dispatcher::with_default(&json, || {
            group.bench_function(BenchmarkId::new("json_spans_and_event", when), |b| {
                b.iter_custom(|iters| timed(iters, &drain, |i| spans_recorded(black_box(i))))
            });
            group.bench_function(BenchmarkId::new("json_five_fields", when), |b| {
                b.iter_custom(|iters| timed(iters, &drain, |i| five_fields(black_box(i))))
            });
        });
    };
    run(&mut group, "alone");
    let text_dir = tempfile::tempdir().unwrap();
    let (text, text_guard) = logsink::LogSink::builder()
        .directory(text_dir.path())
        .format(logsink::Format::Text)
        .build()
        .unwrap();
    let text = Dispatch::new(tracing_subscriber::registry().with(text));
    tracing::dispatcher::with_default(&text, || nested_spans(0));
    run(&mut group, "text_sink_built");
    group.finish();
    drop((json, text));
    guard.shutdown_blocking().unwrap();
    text_guard.shutdown_blocking().unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench, text_sink_in_process
}
criterion_main!(benches);
