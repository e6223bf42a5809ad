//! Feeds a log collector: writes `COUNT` events into `<FOLDER>/app.log` at `RATE` events a
//! second (0 or absent: as fast as the sink takes them), rotating every MiB and
//! gzip-compressing rotated files, then shuts down and prints the sink's statistics.
//!
//! Each event carries `seq` (0, 1, ..., COUNT-1) and a `payload` that is a function of `seq`
//! (quotes, a backslash, a tab, non-ASCII text, a length that varies with `seq`, some lines
//! over 20 KB), so a checker can tell, line by line, that what a collector delivered is the
//! event as written.
//! `scripts/collector-check` runs it against rsyslog and syslog-ng.
//!
//! Run with `cargo run --release --example collector_feed -- FOLDER COUNT [RATE]
//! [--compress-after SECONDS]`; with `--compress-after`, rotated files stay plain that long
//! before they are compressed (`Builder::compress_after`).

use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

/// The payload of event `seq`; `scripts/collector-check` computes the same string. Every
/// 9,973rd event is over 20 KB long, past a collector's usual 8 KB message limit.
fn payload(seq: u64) -> String {
    let long = if seq.is_multiple_of(9_973) { 20_000 } else { 0 };
    format!(
        "seq={seq} \"quoted\" back\\slash\ttab ünïcödé ✓ {}{}",
        "x".repeat((seq % 64) as usize),
        "y".repeat(long)
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let mut compress_after = Duration::ZERO;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--compress-after" {
            let secs: f64 = args
                .next()
                .ok_or("--compress-after needs SECONDS")?
                .parse()?;
            compress_after = Duration::try_from_secs_f64(secs)?;
        } else {
            positional.push(arg);
        }
    }
    let mut positional = positional.into_iter();
    let (Some(dir), Some(count)) = (positional.next(), positional.next()) else {
        eprintln!("usage: collector_feed FOLDER COUNT [RATE] [--compress-after SECONDS]");
        std::process::exit(2);
    };
    let count: u64 = count.parse()?;
    let rate: u64 = positional.next().map_or(Ok(0), |r| r.parse())?;

    let (layer, guard) = logsink::LogSink::builder()
        .directory(&dir)
        .file_name("app")
        .flush_interval(Duration::from_millis(200))
        .max_file_size(1024 * 1024)
        .compression(logsink::Compression::Gzip { level: 6 })
        .compress_after(compress_after)
        .build()?;
    let subscriber = tracing_subscriber::registry().with(layer);

    let start = Instant::now();
    tracing::subscriber::with_default(subscriber, || {
        for seq in 0..count {
            // Paced in steps of 1,000 events: sleep until this step is due.
            if rate > 0 && seq.is_multiple_of(1_000) {
                let due = start + Duration::from_secs_f64(seq as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            tracing::info!(seq, payload = payload(seq).as_str(), "collector feed");
        }
    });

    let stats = guard.shutdown_blocking()?;
    println!(
        "collector_feed: events_written={} events_dropped={} rotations={} files_compressed={} write_errors={}",
        stats.events_written,
        stats.events_dropped,
        stats.rotations,
        stats.files_compressed,
        stats.write_errors
    );
    if stats.events_written != count || stats.events_dropped != 0 {
        return Err(format!("the sink wrote {} of {count} events", stats.events_written).into());
    }
    Ok(())
}
