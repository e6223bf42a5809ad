//! A quick throughput comparison: 4 threads log 200,000 events each (per thread: `EVENTS`) as
//! fast as they can, once into logsink with gzip, once into logsink without compression, once
//! into `tracing-appender`'s non-blocking JSON writer, and print events per second for each.
//! The clock stops when the sink has shut down (for logsink: every event in the file and every
//! rotated file compressed). Files go to a temporary folder and are removed afterwards.
//!
//! One round each, in one process: a rough, quick number. `cargo bench --bench throughput` is
//! the careful version (several alternating rounds, each sink in a fresh process, latencies).
//!
//! Run with `cargo run --release --example throughput -- [EVENTS]`.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use tracing::Dispatch;
use tracing_subscriber::prelude::*;

#[path = "../benches/support/workload.rs"]
mod workload;
use workload::{dir_bytes, emit};

const THREADS: u64 = 4;
const ROTATE_BYTES: u64 = 64 * 1024 * 1024;

/// Ends a sink: waits until everything is written, returns the events it dropped.
type Finish = Box<dyn FnOnce() -> u64>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let per_thread: u64 = std::env::args().nth(1).map_or(Ok(200_000), |a| a.parse())?;
    let events = THREADS * per_thread;
    println!("{THREADS} threads x {per_thread} events, 64 MiB rotation, one round each\n");
    println!(
        "{:<26} {:>14} {:>10} {:>10} {:>9}",
        "sink", "events/s", "seconds", "disk MiB", "dropped"
    );
    for sink in [
        "logsink (gzip level 6)",
        "logsink (no compression)",
        "tracing-appender",
    ] {
        let dir = tempfile::tempdir()?;
        let (dispatch, finish) = make_sink(sink, dir.path())?;
        let start = Instant::now();
        run_threads(&dispatch, per_thread);
        drop(dispatch);
        let dropped = finish();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{sink:<26} {:>14.0} {secs:>10.2} {:>10.1} {dropped:>9}",
            (events - dropped) as f64 / secs,
            dir_bytes(dir.path()) as f64 / (1024.0 * 1024.0),
        );
    }
    Ok(())
}

/// A dispatcher logging into `dir` through `sink`, and what ends it.
fn make_sink(sink: &str, dir: &Path) -> Result<(Dispatch, Finish), logsink::Error> {
    if sink == "tracing-appender" {
        let file = tracing_appender::rolling::never(dir, "app.log");
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .finish(file);
        let layer = tracing_subscriber::fmt::layer().json().with_writer(writer);
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
        // Dropping the worker guard flushes and joins its writer thread; not lossy, it drops
        // nothing.
        let finish: Finish = Box::new(move || {
            drop(guard);
            0
        });
        return Ok((dispatch, finish));
    }
    let compression = if sink.contains("gzip") {
        logsink::Compression::Gzip { level: 6 }
    } else {
        logsink::Compression::None
    };
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir)
        .max_file_size(ROTATE_BYTES)
        .compression(compression)
        .build()?;
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let finish: Finish = Box::new(move || {
        let stats = guard.shutdown_blocking().expect("shutdown");
        stats.events_dropped
    });
    Ok((dispatch, finish))
}

/// Starts the threads together and waits for them.
fn run_threads(dispatch: &Dispatch, per_thread: u64) {
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (barrier, dispatch) = (barrier.clone(), dispatch.clone());
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let span = tracing::info_span!("worker", thread = t, role = "bench");
                    let _entered = span.enter();
                    barrier.wait();
                    for i in 0..per_thread {
                        emit(i);
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("logging thread panicked");
    }
}
