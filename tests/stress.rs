//! Stress: many producers, 1 MiB rotation with gzip, and a shutdown from another thread while
//! one producer is still logging. Every event must end up written or counted as dropped, never
//! both and never neither (checked as far as the public API lets a test see the counters: see
//! [`shutdown_from_another_thread_while_one_still_logs`]); the written ones must be complete,
//! unique, and in each thread's order across the rotated files.
//!
//! The number of events per producer thread comes from the `LOGSINK_STRESS_EVENTS` environment
//! variable, [`DEFAULT_EVENTS`] if unset: the default keeps a debug build on a 2-core machine
//! short enough for every `cargo test`. The full version, 8 threads × 1,000,000 events, wants a
//! release build:
//!
//! ```sh
//! LOGSINK_STRESS_EVENTS=1000000 cargo test --release --test stress -- --nocapture
//! ```
//!
//! Every file is read back (rotated `.log.gz` files in name order with flate2's
//! `MultiGzDecoder`, then the active `app.log`), every line is parsed with `serde_json`, and
//! every event is counted. Nothing here waits for time to pass: threads meet at a barrier, and
//! the one poll (for the late producer to be under way) has a deadline that only turns a hang
//! into a failure.

mod common;

use std::fs::File;
use std::hash::{DefaultHasher, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::rotation_util;
use logsink::{Compression, LogSink, Overflow, Stats};
use rotation_util::ACTIVE;
use tracing::Dispatch;

/// Events per producer thread, when set.
const EVENTS_ENV: &str = "LOGSINK_STRESS_EVENTS";

/// Events per producer thread by default: small enough for a debug build on a 2-core machine,
/// where most of the time goes to gzip and gunzip, unoptimised.
const DEFAULT_EVENTS: u64 = 30_000;

/// Producer threads of the shutdown test; the last one is the late one.
const THREADS: usize = 8;

/// The producer still logging when shutdown starts.
const LATE: usize = THREADS - 1;

/// Events the late producer logs after it learnt that shutdown returned.
const AFTER_SHUTDOWN: u64 = 5_000;

/// Events the late producer logs after the barrier before shutdown is called (at most its
/// quota's remainder), so that shutdown starts with the producer well under way.
const LATE_HEAD_START: u64 = 1_000;

/// Rotation size of both tests.
const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// The target of every event the tests log; any other line in the files fails them, except
/// the writer's own `dropped events` reports (target `logsink`).
const TARGET: &str = "stress";

/// The message of every event the tests log.
const MESSAGE: &str = "stress event";

fn events_per_thread() -> u64 {
    match std::env::var(EVENTS_ENV) {
        Ok(value) => {
            let n: u64 = value
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{EVENTS_ENV}={value:?} is not a count: {e}"));
            assert!(n >= 2, "{EVENTS_ENV} must be at least 2, got {n}");
            n
        }
        Err(std::env::VarError::NotPresent) => DEFAULT_EVENTS,
        Err(e) => panic!("{EVENTS_ENV}: {e}"),
    }
}

/// A deadline that only turns a hang into a failure: generous for a debug build on a loaded
/// 2-core machine, growing with the number of events.
fn hang_deadline(events: u64) -> Duration {
    Duration::from_secs(120) + Duration::from_micros(100) * events as u32
}

fn log_one(thread: u64, seq: u64) {
    tracing::info!(target: "stress", thread, seq, "stress event");
}

/// Logs `{thread, seq: 0..count}` through `dispatch`.
fn log_range(dispatch: &Dispatch, thread: u64, count: u64) {
    tracing::dispatcher::with_default(dispatch, || {
        for seq in 0..count {
            log_one(thread, seq);
        }
    });
}

/// How [`read_back`] checks each thread's sequence numbers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Order {
    /// Exactly 0, 1, 2, ...: no gap, no repeat (nothing may be dropped before the end).
    GapFree,
    /// Strictly increasing: some may be missing (dropped), none repeated or reordered.
    Increasing,
}

/// What the files hold, per producer thread.
#[derive(Debug)]
struct ReadBack {
    /// Events found per thread.
    written: Vec<u64>,
    /// The last sequence number found per thread.
    last_seq: Vec<Option<u64>>,
    /// The rotated files (all `.log.gz`), in name order.
    rotated: Vec<String>,
    /// Uncompressed bytes of the largest file.
    largest_file: u64,
    /// The sum of the `dropped` fields of the writer's `dropped events` lines (target
    /// `logsink`): events refused by a full queue, reported in the log itself.
    reported_drops: u64,
}

impl ReadBack {
    fn total(&self) -> u64 {
        self.written.iter().sum()
    }
}

/// Reads every file of `dir` in the order written (rotated `.log.gz` in name order, then
/// `app.log`), checks that the folder holds nothing else, that each file is at most
/// [`MAX_FILE_SIZE`] uncompressed and ends with a complete line, and that every line is one of
/// this test's events with the sequence numbers of each thread in `order`, or a report of
/// dropped events by the sink itself.
fn read_back(dir: &Path, threads: usize, order: Order) -> ReadBack {
    let rotated = rotation_util::rotated(dir, ".log.gz");
    rotation_util::assert_folder(dir, &rotated, &[]);
    let mut out = ReadBack {
        written: vec![0; threads],
        last_seq: vec![None; threads],
        rotated: rotated.clone(),
        largest_file: 0,
        reported_drops: 0,
    };
    let mut line = Vec::with_capacity(256);
    for name in rotated.iter().map(String::as_str).chain([ACTIVE]) {
        let path = dir.join(name);
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let reader: Box<dyn Read> = if name.ends_with(".gz") {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        let mut bytes = 0u64;
        for line_no in 1.. {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .unwrap_or_else(|e| panic!("{name}: cannot read (or decompress) it: {e}"));
            if n == 0 {
                break;
            }
            bytes += n as u64;
            let what = format!("{name} line {line_no}");
            assert!(
                line.ends_with(b"\n"),
                "{what}: cut short (no newline at the end of the file): {:?}",
                String::from_utf8_lossy(&line[..line.len().min(300)])
            );
            let text = std::str::from_utf8(&line[..n - 1])
                .unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
            let value = common::parse_line(text, &what);
            if value["target"] == "logsink" {
                // The writer's own report of events a full queue refused.
                assert_eq!(value["level"], "WARN", "{what}: {text}");
                assert_eq!(
                    value["fields"]["message"], "dropped events",
                    "{what}: {text}"
                );
                let dropped = common::field_u64(&value, "dropped");
                assert!(dropped > 0, "{what}: reports no drop: {text}");
                out.reported_drops += dropped;
                continue;
            }
            assert_eq!(value["target"], TARGET, "{what}: {text}");
            assert_eq!(value["level"], "INFO", "{what}: {text}");
            assert_eq!(value["fields"]["message"], MESSAGE, "{what}: {text}");
            let thread = common::field_u64(&value, "thread") as usize;
            let seq = common::field_u64(&value, "seq");
            assert!(thread < threads, "{what}: thread {thread} out of range");
            let last = out.last_seq[thread];
            let in_order = match order {
                Order::GapFree => seq == last.map_or(0, |l| l + 1),
                Order::Increasing => last.is_none_or(|l| seq > l),
            };
            assert!(
                in_order,
                "{what}: thread {thread} seq {seq} after {last:?} ({order:?} expected)"
            );
            out.last_seq[thread] = Some(seq);
            out.written[thread] += 1;
        }
        if name != ACTIVE {
            assert!(bytes > 0, "{name}: a rotated file is empty");
        }
        assert!(
            bytes <= MAX_FILE_SIZE,
            "{name}: {bytes} bytes uncompressed, above max_file_size {MAX_FILE_SIZE}"
        );
        out.largest_file = out.largest_file.max(bytes);
    }
    out
}

/// Every entry of `dir` with its size and a hash of its bytes as stored: two equal snapshots
/// mean nothing was written, renamed, created or removed in between.
fn folder_snapshot(dir: &Path) -> Vec<(String, u64, u64)> {
    rotation_util::list(dir)
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name))
                .unwrap_or_else(|e| panic!("read {name} for the snapshot: {e}"));
            let mut hasher = DefaultHasher::new();
            hasher.write(&bytes);
            (name, bytes.len() as u64, hasher.finish())
        })
        .collect()
}

/// Sets the flag when dropped, so that a failing thread still releases the ones waiting on it.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Release);
    }
}

/// What the shutdown thread saw.
struct ShutdownReport {
    stats: Stats,
    /// Events of the late producer that had returned when shutdown was called.
    late_finished_before: u64,
    /// Events of the late producer that had started when shutdown returned.
    late_started_at_return: u64,
    /// The folder right after shutdown returned.
    snapshot: Vec<(String, u64, u64)>,
    took: Duration,
}

/// 8 producer threads × `LOGSINK_STRESS_EVENTS` events `{thread, seq}` through one
/// `tracing::Dispatch`, rotation at 1 MiB, gzip, the default queue and `Overflow::Block`. Seven
/// producers log their quota; the eighth logs half of its quota, meets the shutdown thread at
/// a barrier and keeps logging; once the seven are done and the eighth is
/// [`LATE_HEAD_START`] events further, a separate thread calls `shutdown_blocking`. The eighth
/// keeps logging through the shutdown (until it returned, or up to its quota), and once
/// shutdown returned, logs [`AFTER_SHUTDOWN`] events more.
///
/// Checked: the folder holds only `.log.gz` rotated files and `app.log`, each at most 1 MiB
/// uncompressed; every line parses; threads 0..7 have all their events, exactly once, in order
/// across the files; the eighth's written events are a gap-free prefix `0..k` holding at least
/// every event that had returned before shutdown was called (`Overflow::Block` refuses none);
/// the events written match `Stats::events_written`; `written + events_dropped` (the stats
/// returned by shutdown) is at most what was emitted before shutdown returned; the rotations
/// were all compressed; and the folder is byte-for-byte the same after the eighth's late events
/// as right after shutdown returned.
///
/// And, once every producer is done, through a `StatsHandle` that outlives the guard: every
/// event emitted is written or counted as dropped, never both, never neither — including those
/// emitted after shutdown returned, and one that raced past the closed check and is counted by
/// the writer after the returned `Stats` were taken.
#[test]
fn shutdown_from_another_thread_while_one_still_logs() {
    let n = events_per_thread();
    let deadline = hang_deadline(n * THREADS as u64);
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (layer, guard) = LogSink::builder()
        .directory(&dir)
        .file_name(rotation_util::BASE)
        .max_file_size(MAX_FILE_SIZE)
        .compression(Compression::Gzip { level: 6 })
        .overflow(Overflow::Block)
        // The checks read every rotated file back as `.gz`: shutdown must compress the whole
        // backlog however long a loaded debug build takes (the default stops at 5 s).
        .shutdown_timeout(Duration::from_secs(600))
        .build()
        .expect("building the sink");
    // Outlives the guard: the final counts include the drops counted after shutdown returned.
    let final_stats = guard.stats_handle();
    let dispatch = common::dispatch(layer);

    let workers: Vec<_> = (0..LATE as u64)
        .map(|thread| {
            let dispatch = dispatch.clone();
            thread::Builder::new()
                .name(format!("producer-{thread}"))
                .spawn(move || log_range(&dispatch, thread, n))
                .unwrap()
        })
        .collect();

    // The late producer's progress: events started (before each `info!`) and finished (after).
    let late_started = Arc::new(AtomicU64::new(0));
    let late_finished = Arc::new(AtomicU64::new(0));
    let shutdown_returned = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(2));
    let (returned_tx, returned) = mpsc::channel::<()>();
    let half = n / 2;

    let late = {
        let dispatch = dispatch.clone();
        let (started, finished) = (late_started.clone(), late_finished.clone());
        let stop = shutdown_returned.clone();
        let barrier = barrier.clone();
        thread::Builder::new()
            .name("producer-late".to_owned())
            .spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let mut seq = 0u64;
                    let log = |seq: &mut u64| {
                        started.store(*seq + 1, Release);
                        log_one(LATE as u64, *seq);
                        finished.store(*seq + 1, Release);
                        *seq += 1;
                    };
                    while seq < half {
                        log(&mut seq);
                    }
                    barrier.wait();
                    // On through the shutdown, until told that it returned or up to the quota.
                    while !stop.load(Acquire) && seq < n {
                        log(&mut seq);
                    }
                    let at_stop = seq;
                    // Wait for shutdown to have returned (the sender is dropped then, also if
                    // the shutdown thread fails), then log more: all of it must be dropped.
                    let _ = returned.recv();
                    for _ in 0..AFTER_SHUTDOWN {
                        log(&mut seq);
                    }
                    (at_stop, seq)
                })
            })
            .unwrap()
    };

    let (report_tx, report_rx) = mpsc::channel();
    let shutdown_thread = {
        let (started, finished) = (late_started.clone(), late_finished.clone());
        let stop = shutdown_returned.clone();
        let dir = dir.clone();
        thread::Builder::new()
            .name("shutdown".to_owned())
            .spawn(move || {
                let stop = SetOnDrop(stop);
                let returned = returned_tx;
                for worker in workers {
                    worker.join().expect("a producer panicked");
                }
                barrier.wait();
                // Poll (with a deadline that only catches a hang) until the late producer is
                // under way again after the barrier.
                let poll_deadline = Instant::now() + deadline;
                while finished.load(Acquire) < half + LATE_HEAD_START.min(n - half) {
                    assert!(
                        Instant::now() < poll_deadline,
                        "the late producer made no progress"
                    );
                    thread::yield_now();
                }
                let late_finished_before = finished.load(Acquire);
                let t0 = Instant::now();
                let stats = guard.shutdown_blocking().expect("shutdown_blocking");
                let took = t0.elapsed();
                let late_started_at_return = started.load(Acquire);
                let snapshot = folder_snapshot(&dir);
                // The late producer now stops and logs its last AFTER_SHUTDOWN events.
                drop(stop);
                drop(returned);
                let _ = report_tx.send(ShutdownReport {
                    stats,
                    late_finished_before,
                    late_started_at_return,
                    snapshot,
                    took,
                });
            })
            .unwrap()
    };

    let report = match report_rx.recv_timeout(deadline) {
        Ok(report) => report,
        Err(mpsc::RecvTimeoutError::Disconnected) => match shutdown_thread.join() {
            Ok(()) => unreachable!("the shutdown thread ended without a report"),
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("producers or shutdown still running after {deadline:?}: a hang")
        }
    };
    shutdown_thread.join().unwrap();
    let (late_at_stop, late_emitted) = late.join().expect("the late producer panicked");
    let logged = started.elapsed();
    drop(dispatch);

    // Nothing reached the folder after shutdown returned, although the late producer went on.
    assert_eq!(
        folder_snapshot(&dir),
        report.snapshot,
        "the folder changed after shutdown returned"
    );

    let read_started = Instant::now();
    let files = read_back(&dir, THREADS, Order::GapFree);
    let read_took = read_started.elapsed();
    let stats = &report.stats;
    for thread in 0..LATE {
        assert_eq!(
            files.written[thread], n,
            "events of thread {thread} in the files"
        );
    }
    let late_written = files.written[LATE];
    assert!(
        late_written >= report.late_finished_before,
        "the late producer's events accepted before shutdown are missing: {late_written} \
         written, {} had returned before shutdown was called",
        report.late_finished_before
    );
    assert!(
        late_written <= report.late_started_at_return,
        "{late_written} events of the late producer written, but only {} had started when \
         shutdown returned",
        report.late_started_at_return
    );
    assert_eq!(
        stats.events_written,
        files.total(),
        "Stats::events_written against the events in the files"
    );
    assert_eq!(stats.write_errors, 0, "{:?}", stats.last_error);
    assert_eq!(
        files.reported_drops, 0,
        "the sink reports overflow drops under Overflow::Block"
    );

    // Accounting, as far as it can be observed. Only the late producer logs once shutdown
    // begins, so every drop is its own; the stats were taken before shutdown returned, so they
    // can count at most the events it had started by then.
    let emitted_total = LATE as u64 * n + late_emitted;
    let emitted_before_return = LATE as u64 * n + report.late_started_at_return;
    assert!(
        stats.events_written + stats.events_dropped <= emitted_before_return,
        "written {} + dropped {} is more than the {emitted_before_return} events started \
         before shutdown returned: some event is counted twice",
        stats.events_written,
        stats.events_dropped
    );
    let emitted_after_return = late_emitted - report.late_started_at_return;
    assert!(emitted_after_return >= AFTER_SHUTDOWN);
    assert!(late_at_stop >= report.late_started_at_return);

    // Exact accounting, from the handle that outlives the guard: the writer counts the last
    // stragglers as it drains, so wait (bounded) for it to have seen them all.
    let poll_deadline = Instant::now() + deadline;
    loop {
        let last = final_stats.get();
        if last.events_written + last.events_dropped == emitted_total {
            assert_eq!(last.events_written, files.total(), "nothing written late");
            break;
        }
        assert!(
            Instant::now() < poll_deadline
                && last.events_written + last.events_dropped < emitted_total,
            "written {} + dropped {} against {emitted_total} emitted",
            last.events_written,
            last.events_dropped
        );
        thread::sleep(Duration::from_millis(5));
    }

    // Rotation and compression happened and finished.
    assert!(
        files.rotated.len() as u64 >= files.total() * 100 / MAX_FILE_SIZE,
        "only {} rotated files for {} events",
        files.rotated.len(),
        files.total()
    );
    assert_eq!(stats.rotations, files.rotated.len() as u64, "rotations");
    assert_eq!(
        stats.files_compressed,
        files.rotated.len() as u64,
        "compressed files"
    );

    eprintln!(
        "stress: {THREADS} threads x {n} events: logged and shut down in {logged:.2?} \
         (shutdown took {:.2?}), read back in {read_took:.2?}; {} files (largest {} bytes); \
         late producer: {} done before shutdown, {late_written} written, {} started by its \
         return, {late_emitted} emitted; stats: written {}, dropped {}; {} emitted events \
         unaccounted for by the final stats ({emitted_after_return} of them after shutdown \
         returned)",
        report.took,
        files.rotated.len() + 1,
        files.largest_file,
        report.late_finished_before,
        report.late_started_at_return,
        stats.events_written,
        stats.events_dropped,
        emitted_total - stats.events_written - stats.events_dropped,
    );
}

/// `Overflow::DropNewest` with a queue of 16 events and 4 threads logging flat out (rotation at
/// 1 MiB, gzip), all finished before shutdown: the events in the files plus
/// `Stats::events_dropped` are exactly the events emitted, `Stats::events_written` matches the
/// files, each thread's written events are in increasing order, none repeated, and the
/// writer's own `dropped events` lines in the log add up to `Stats::events_dropped`.
#[test]
fn drop_newest_with_a_tiny_queue_counts_every_event() {
    const PRODUCERS: usize = 4;
    let n = events_per_thread();
    let deadline = hang_deadline(n * PRODUCERS as u64);
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (layer, guard) = LogSink::builder()
        .directory(&dir)
        .file_name(rotation_util::BASE)
        .queue_capacity(16)
        .overflow(Overflow::DropNewest)
        .max_file_size(MAX_FILE_SIZE)
        .compression(Compression::Gzip { level: 6 })
        .shutdown_timeout(Duration::from_secs(600)) // every rotated file is read back as .gz
        .build()
        .expect("building the sink");
    let dispatch = common::dispatch(layer);
    let barrier = Arc::new(Barrier::new(PRODUCERS));
    let (done_tx, done_rx) = mpsc::channel();
    let producers: Vec<_> = (0..PRODUCERS as u64)
        .map(|thread| {
            let dispatch = dispatch.clone();
            let barrier = barrier.clone();
            let done = done_tx.clone();
            thread::spawn(move || {
                barrier.wait();
                log_range(&dispatch, thread, n);
                let _ = done.send(());
            })
        })
        .collect();
    drop(done_tx);
    for _ in 0..PRODUCERS {
        match done_rx.recv_timeout(deadline) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break, // a producer panicked: join says
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("producers still running after {deadline:?}: DropNewest blocked")
            }
        }
    }
    for producer in producers {
        producer.join().expect("a producer panicked");
    }
    let stats = guard.shutdown_blocking().expect("shutdown_blocking");
    let logged = started.elapsed();
    drop(dispatch);

    let files = read_back(&dir, PRODUCERS, Order::Increasing);
    let emitted = PRODUCERS as u64 * n;
    assert_eq!(
        stats.events_written,
        files.total(),
        "Stats::events_written against the events in the files"
    );
    assert_eq!(
        files.total() + stats.events_dropped,
        emitted,
        "written {} + dropped {} against emitted",
        files.total(),
        stats.events_dropped
    );
    assert_eq!(
        files.reported_drops, stats.events_dropped,
        "the `dropped events` lines in the log against Stats::events_dropped (every drop here \
         is a full queue's)"
    );
    assert!(
        stats.events_dropped > 0,
        "a queue of 16 under 4 flat-out producers dropped nothing: the test exercised nothing"
    );
    assert_eq!(stats.write_errors, 0, "{:?}", stats.last_error);
    assert_eq!(stats.files_compressed, stats.rotations, "compressed files");
    assert_eq!(stats.rotations, files.rotated.len() as u64, "rotations");
    eprintln!(
        "drop-newest: {PRODUCERS} threads x {n} events in {logged:.2?}: written {:?} (total \
         {}), dropped {}, {} files",
        files.written,
        files.total(),
        stats.events_dropped,
        files.rotated.len() + 1
    );
}
