//! Compression slower than logging: two threads log flat out for a few seconds into 256 KiB
//! files with gzip level 9 and `keep_files(5)`. Prints the most rotated files the folder held
//! at once (sampled every 5 ms), the compression backlog, and how long shutdown took.
//!
//! `cargo run --release --example compression_backlog [LEVEL] [SECONDS]`

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let level: u32 = args.next().map_or(Ok(9), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("logs");
    let (layer, guard) = logsink::LogSink::builder()
        .directory(&dir)
        .max_file_size(256 * 1024)
        .keep_files(5)
        .compression(logsink::Compression::Gzip { level })
        .build()?;
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let stop = Instant::now() + Duration::from_secs(seconds);

    // Distinct rotated names in the folder (a `.log` and its `.gz` are one file).
    let most = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (most, dir) = (most.clone(), dir.clone());
        std::thread::spawn(move || {
            while Instant::now() < stop {
                let names: HashSet<String> = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with("app.2") && !n.ends_with(".tmp"))
                    .map(|n| n.split(".log").next().unwrap_or_default().to_owned())
                    .collect();
                most.fetch_max(names.len(), Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let producers: Vec<_> = (0..2)
        .map(|t| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let mut i = 0u64;
                    while Instant::now() < stop {
                        tracing::info!(t, i, "a request was served, with a few fields to log");
                        i += 1;
                    }
                })
            })
        })
        .collect();
    for producer in producers {
        producer.join().expect("producer");
    }
    watcher.join().expect("watcher");
    let backlog = guard.stats().compress_backlog;
    let started = Instant::now();
    let stats = guard.shutdown_blocking()?;
    println!("gzip level {level}, keep_files(5), 256 KiB files, 2 threads for {seconds} s:");
    println!("  events written          {}", stats.events_written);
    println!("  rotations               {}", stats.rotations);
    println!("  compressed              {}", stats.files_compressed);
    println!(
        "  deleted                 {} ({} before compression)",
        stats.files_deleted, stats.files_deleted_uncompressed
    );
    println!("  most rotated files held {}", most.load(Relaxed));
    println!("  backlog before shutdown {backlog}");
    println!("  shutdown took           {:?}", started.elapsed());
    Ok(())
}
