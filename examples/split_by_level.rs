//! Two sinks on one registry: every event goes to `logs/split_by_level/app.log`, errors also
//! go to `logs/split_by_level/errors.log`. The errors sink has a per-layer filter
//! (`layer.with_filter(LevelFilter::ERROR)`), so it sees only `ERROR` events while the other
//! sink sees everything. At the end both sinks shut down and the line counts of both files are
//! printed (the files are appended to, so they grow with each run).
//!
//! Run with `cargo run --release --example split_by_level`.

use std::path::Path;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new("logs/split_by_level");
    let (all, all_guard) = logsink::LogSink::builder()
        .directory(dir)
        .file_name("app")
        .build()?;
    let (errors, errors_guard) = logsink::LogSink::builder()
        .directory(dir)
        .file_name("errors")
        .build()?;

    // A per-layer filter decides for one layer only, spans included: the errors sink records no
    // INFO span, so its lines carry no `span`/`spans` context from them. To keep the request
    // context in errors.log, filter with
    // `filter_fn(|meta| meta.is_span() || *meta.level() == tracing::Level::ERROR)` instead.
    tracing_subscriber::registry()
        .with(all)
        .with(errors.with_filter(LevelFilter::ERROR))
        .init();

    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 2_500;
    let workers: Vec<_> = (0..THREADS)
        .map(|worker| {
            std::thread::spawn(move || {
                let span = tracing::info_span!("worker", worker);
                let _entered = span.enter();
                for i in 0..PER_THREAD {
                    match i % 10 {
                        0..=5 => tracing::info!(request = i, status = 200, "request served"),
                        6 | 7 => {
                            tracing::debug!(request = i, cache_hit = i.is_multiple_of(3), "cache")
                        }
                        8 => tracing::warn!(request = i, latency_ms = 250 + i % 100, "slow"),
                        _ => tracing::error!(
                            request = i,
                            error = "connection reset by peer",
                            "request failed"
                        ),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker thread panicked");
    }

    let all_stats = all_guard.shutdown_blocking()?;
    let errors_stats = errors_guard.shutdown_blocking()?;
    let total = THREADS * PER_THREAD;
    let expected_errors = THREADS * (PER_THREAD / 10);
    assert_eq!(all_stats.events_written, total);
    assert_eq!(errors_stats.events_written, expected_errors);

    for (name, written) in [
        ("app.log", all_stats.events_written),
        ("errors.log", errors_stats.events_written),
    ] {
        let path = dir.join(name);
        let lines = std::fs::read_to_string(&path)?.lines().count();
        println!(
            "{:>8} lines in {} ({written} written by this run)",
            lines,
            path.display()
        );
    }
    Ok(())
}
