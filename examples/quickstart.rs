//! The README's main job: log twenty thousand events from several threads into `./logs`,
//! rotating every 512 KiB and gzip-compressing rotated files, shut down cleanly, and print the
//! files written (with their sizes) and the sink's statistics.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::Duration;

use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new("logs");
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir)
        .file_name("app")
        .flush_interval(Duration::from_millis(200))
        .max_file_size(512 * 1024)
        .rotate_every(logsink::Period::Hour)
        .compression(logsink::Compression::Gzip { level: 6 })
        .keep_files(50)
        .build()?;
    tracing_subscriber::registry().with(layer).init();

    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 5_000;
    let workers: Vec<_> = (0..THREADS)
        .map(|worker| {
            std::thread::spawn(move || {
                let span = tracing::info_span!("worker", worker, kind = "demo");
                let _entered = span.enter();
                for i in 0..PER_THREAD {
                    match i % 4 {
                        0 => tracing::info!(
                            request_id = format_args!("{:#010x}", i * 7919),
                            path = "/api/items",
                            status = 200,
                            "request served"
                        ),
                        1 => tracing::debug!(
                            cache_hit = i.is_multiple_of(3),
                            latency_ms = (i % 97) as f64 * 0.37,
                            "cache lookup"
                        ),
                        2 => tracing::warn!(
                            retry = i % 5,
                            user = "ada",
                            "upstream slow: {} ms",
                            100 + i % 400
                        ),
                        _ => tracing::error!(
                            error = "connection reset",
                            attempt = i,
                            "giving up on request {}",
                            i
                        ),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker thread panicked");
    }

    let stats = guard.shutdown_blocking()?;
    println!("files in {}:", dir.display());
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        println!(
            "  {:>10} bytes  {}",
            entry.metadata()?.len(),
            entry.path().display()
        );
    }
    println!("{stats:#?}");
    Ok(())
}
