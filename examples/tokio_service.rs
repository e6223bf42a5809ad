//! A small tokio "service": an accept loop hands simulated requests to concurrent tasks, each
//! in a `request` span (with a child `db` span), all logging into `logs/tokio_service.log`.
//! After `REQUESTS` requests (default 1000) — or on Ctrl-C, or after `MAX_SECONDS` — it stops
//! accepting, waits for the requests in flight, shuts the sink down with
//! `guard.shutdown().await` (which never blocks a runtime thread) and prints the statistics.
//!
//! Run with `cargo run --release --example tokio_service -- [REQUESTS] [MAX_SECONDS]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;
use tracing_subscriber::prelude::*;

/// Requests handled at the same time, at most.
const MAX_IN_FLIGHT: usize = 64;
/// Requests accepted per millisecond tick of the accept loop.
const BURST: u64 = 8;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let requests: u64 = args.next().map_or(Ok(1000), |a| a.parse())?;
    let max_seconds: u64 = args.next().map_or(Ok(30), |a| a.parse())?;

    let (layer, guard) = logsink::LogSink::builder()
        .directory("logs")
        .file_name("tokio_service")
        .flush_interval(Duration::from_millis(200))
        .max_file_size(16 * 1024 * 1024)
        .keep_files(10)
        .build()?;
    // Installed globally, so that every task on every runtime thread logs into the sink.
    tracing_subscriber::registry().with(layer).init();

    let started = Instant::now();
    tracing::info!(requests, max_in_flight = MAX_IN_FLIGHT, "service starting");

    let shutdown = shutdown_signal(Duration::from_secs(max_seconds));
    tokio::pin!(shutdown);
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut accepted = 0u64;
    let mut outcomes = Outcomes::default();

    // The accept loop: stops after `requests`, or at once when the signal fires.
    while accepted < requests {
        tokio::select! {
            () = &mut shutdown => {
                tracing::warn!(accepted, "shutdown signal: no longer accepting");
                break;
            }
            _ = ticker.tick() => {
                for _ in 0..BURST.min(requests - accepted) {
                    let permit = limit.clone().acquire_owned().await?;
                    let id = accepted;
                    let span = tracing::info_span!("request", id, method = "GET", path = %path_of(id));
                    tasks.spawn(
                        async move {
                            let outcome = handle(id).await;
                            drop(permit);
                            outcome
                        }
                        .instrument(span),
                    );
                    accepted += 1;
                }
            }
        }
        while let Some(joined) = tasks.try_join_next() {
            outcomes.add(joined?);
        }
    }

    // Graceful shutdown: let the requests in flight finish, then close the sink.
    tracing::info!(in_flight = tasks.len(), "draining");
    while let Some(joined) = tasks.join_next().await {
        outcomes.add(joined?);
    }
    tracing::info!(
        accepted,
        ok = outcomes.ok,
        failed = outcomes.failed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "service stopped"
    );

    let stats = guard.shutdown().await?;
    println!(
        "{accepted} requests ({} ok, {} failed) in {:.2?}; log: logs/tokio_service.log",
        outcomes.ok,
        outcomes.failed,
        started.elapsed()
    );
    println!("{stats:#?}");
    Ok(())
}

/// Resolves when the service should stop: on Ctrl-C, or at the deadline (default 30 s).
async fn shutdown_signal(deadline: Duration) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = tokio::time::sleep(deadline) => {}
    }
}

/// One request: a simulated database query in its own span, then the response.
async fn handle(id: u64) -> Result<u16, String> {
    let begun = Instant::now();
    tracing::debug!("request received");

    let rows = query(id)
        .instrument(tracing::debug_span!("db", table = "items"))
        .await?;

    let status = if rows == 0 { 404 } else { 200 };
    tracing::info!(
        status,
        rows,
        latency_us = begun.elapsed().as_micros() as u64,
        "request served"
    );
    Ok(status)
}

/// A database query that takes 0 to 19 ms; every 97th fails, every 13th finds nothing.
async fn query(id: u64) -> Result<u64, String> {
    let millis = id.wrapping_mul(7919) % 20;
    tokio::time::sleep(Duration::from_millis(millis)).await;
    if millis > 15 {
        tracing::warn!(millis, "slow query");
    }
    if id % 97 == 96 {
        let error = "connection reset by peer";
        tracing::error!(error, attempt = 1, "query failed");
        return Err(error.to_owned());
    }
    let rows = if id.is_multiple_of(13) {
        0
    } else {
        1 + id % 50
    };
    tracing::debug!(rows, "query done");
    Ok(rows)
}

fn path_of(id: u64) -> String {
    format!("/api/items/{}", id % 500)
}

#[derive(Default)]
struct Outcomes {
    ok: u64,
    failed: u64,
}

impl Outcomes {
    fn add(&mut self, outcome: Result<u16, String>) {
        match outcome {
            Ok(_) => self.ok += 1,
            Err(_) => self.failed += 1,
        }
    }
}
