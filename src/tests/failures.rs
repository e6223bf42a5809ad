//! A failing disk, injected: writes that fail with ENOSPC, renames with EACCES, compressions
//! with EIO (see `faults`). Each test proves that the host program sees no error through
//! `tracing`, that the failure is counted and kept as the last error, and that nothing is lost
//! once the disk recovers (with `Overflow::Block`) or that every loss is counted and reported
//! (with `Overflow::DropNewest`). Real failures (a deleted folder, `/dev/full`,
//! `RLIMIT_FSIZE`) are in `tests/failures.rs`.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

use crate::faults::Faults;
use crate::{Builder, Compression, Error, LogSink, Overflow, SinkGuard};

/// Waits (polling, bounded) for `condition`; a hang becomes a failure, not a stuck test.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn sink(builder: Builder, dir: &Path) -> (Dispatch, SinkGuard, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let (layer, guard) = builder
        .directory(dir)
        .flush_interval(Duration::from_secs(3_600))
        .faults(faults.clone())
        .build()
        .unwrap();
    (
        Dispatch::new(tracing_subscriber::registry().with(layer)),
        guard,
        faults,
    )
}

fn log(dispatch: &Dispatch, range: std::ops::Range<u64>) {
    tracing::dispatcher::with_default(dispatch, || {
        for seq in range {
            tracing::info!(seq, "event");
        }
    });
}

/// Every line of every file in `dir` (rotated `.gz`, rotated `.log`, active), in name order
/// with the active file last, parsed.
fn read_all(dir: &Path) -> Vec<Value> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "app.log" && n != ".app.lock")
        .collect();
    names.sort();
    names.push("app.log".to_owned());
    let mut lines = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let mut text = String::new();
        if name.ends_with(".gz") {
            flate2::read::MultiGzDecoder::new(fs::File::open(&path).unwrap())
                .read_to_string(&mut text)
                .unwrap();
        } else if path.exists() {
            text = fs::read_to_string(&path).unwrap();
        }
        for line in text.lines() {
            lines
                .push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}")));
        }
    }
    lines
}

/// The `seq` of every event line (drop reports excluded).
fn seqs(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l["target"] != "logsink")
        .map(|l| l["fields"]["seq"].as_u64().unwrap())
        .collect()
}

/// The sum of the writer's `dropped events` reports (WARN lines from target `logsink`).
fn reported_drops(lines: &[Value]) -> u64 {
    lines
        .iter()
        .filter(|l| l["target"] == "logsink")
        .map(|l| l["fields"]["dropped"].as_u64().unwrap())
        .sum()
}

/// Makes every write fail (ENOSPC) and lets at most 16 KiB wait in the writer's memory, so
/// that the writer stops taking events after a hundred or so lines.
fn stall_writes(faults: &Faults) {
    faults.max_pending.store(16 * 1024, Relaxed);
    faults.writes.store(true, Relaxed);
}

fn is_enospc(error: &Error) -> bool {
    matches!(error, Error::Write { .. })
        && error.io_error().and_then(|e| e.raw_os_error()) == Some(28)
}

/// A full disk for a while, with `Block`: flushing reports the error, the events wait in
/// memory, and once the disk has room again every event is written once, in order.
#[test]
fn a_full_disk_that_recovers_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(LogSink::builder(), tmp.path());
    faults.writes.store(true, Relaxed);
    log(&dispatch, 0..2_000);
    let error = guard.flush_blocking().unwrap_err();
    assert!(is_enospc(&error), "{error}");
    let stats = guard.stats();
    assert!(stats.write_errors >= 1);
    assert!(stats.last_error.as_ref().is_some_and(is_enospc));
    assert_eq!(stats.events_written, 0);

    faults.writes.store(false, Relaxed);
    guard.flush_blocking().unwrap();
    log(&dispatch, 2_000..2_100);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!((stats.events_written, stats.events_dropped), (2_100, 0));
    assert_eq!(seqs(&read_all(tmp.path())), (0..2_100).collect::<Vec<_>>());
}

/// While writes fail and the memory limit is reached, the writer stops taking events: the
/// queue fills and a `Block` caller waits (it cannot finish: its events fit neither the queue
/// nor the writer's memory). When the disk recovers, the caller goes on and nothing is lost.
#[test]
fn a_failing_disk_blocks_callers_instead_of_growing_memory() {
    const EVENTS: u64 = 5_000;
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(LogSink::builder().queue_capacity(64), tmp.path());
    stall_writes(&faults);
    let finished = Arc::new(AtomicBool::new(false));
    let producer = {
        let (dispatch, finished) = (dispatch.clone(), finished.clone());
        std::thread::spawn(move || {
            log(&dispatch, 0..EVENTS);
            finished.store(true, Relaxed);
        })
    };
    // A full queue while writes fail: the writer holds at most ~16 KiB (about a hundred
    // lines) and the queue 64 events, far fewer than the producer's 5,000.
    wait_for("a full queue", || guard.stats().queue_len == 64);
    assert!(
        !finished.load(Relaxed),
        "the producer went on although nothing can be written"
    );
    assert_eq!(guard.stats().events_written, 0);

    faults.writes.store(false, Relaxed);
    producer.join().unwrap();
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!((stats.events_written, stats.events_dropped), (EVENTS, 0));
    assert_eq!(seqs(&read_all(tmp.path())), (0..EVENTS).collect::<Vec<_>>());
}

/// With `DropNewest` and a failing disk the caller never waits; every event is written or
/// counted as dropped, and the drops are reported in the log once the disk recovers.
#[test]
fn a_failing_disk_with_drop_newest_counts_and_reports_every_drop() {
    const EVENTS: u64 = 5_000;
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(
        LogSink::builder()
            .queue_capacity(64)
            .overflow(Overflow::DropNewest),
        tmp.path(),
    );
    stall_writes(&faults);
    log(&dispatch, 0..EVENTS); // returns: nothing blocks
    faults.writes.store(false, Relaxed);
    let stats = guard.shutdown_blocking().unwrap();
    assert!(
        stats.events_dropped > 0,
        "nothing was dropped: the test proves nothing"
    );
    assert_eq!(stats.events_written + stats.events_dropped, EVENTS);
    let lines = read_all(tmp.path());
    let written = seqs(&lines);
    assert_eq!(written.len() as u64, stats.events_written);
    assert!(written.windows(2).all(|w| w[0] < w[1]), "order kept");
    assert_eq!(reported_drops(&lines), stats.events_dropped);
}

/// A rotation whose rename fails leaves the active file in place and keeps writing to it (the
/// size limit is overrun, nothing is lost); the failure is counted; rotation is tried again
/// once renames work.
#[test]
fn a_failing_rename_keeps_writing_and_rotates_later() {
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(
        LogSink::builder()
            .max_file_size(4 * 1024)
            .compression(Compression::None),
        tmp.path(),
    );
    faults.renames.store(true, Relaxed);
    log(&dispatch, 0..200);
    guard.flush_blocking().unwrap();
    let stats = guard.stats();
    assert_eq!(stats.rotations, 0);
    assert!(stats.write_errors >= 1);
    assert!(matches!(stats.last_error, Some(Error::Rotate { .. })));
    assert_eq!(
        seqs(&read_all(tmp.path())).len(),
        200,
        "all in the active file"
    );

    faults.renames.store(false, Relaxed);
    let mut next = 200;
    wait_for("a rotation once renames work", || {
        log(&dispatch, next..next + 1);
        next += 1;
        guard.flush_blocking().unwrap();
        guard.stats().rotations >= 1
    });
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_dropped, 0);
    assert_eq!(seqs(&read_all(tmp.path())), (0..next).collect::<Vec<_>>());
}

/// A compression that fails leaves the rotated `.log` in place, counts the failure, and is
/// retried: once compression works, every file ends up compressed and every event is there
/// once. (Retention judges a file that cannot be compressed as it is: see
/// `retention_bounds_the_folder_while_compression_lags`.)
#[test]
fn a_failing_compression_keeps_the_file_and_is_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(LogSink::builder().max_file_size(2 * 1024), tmp.path());
    faults.compressions.store(true, Relaxed);
    log(&dispatch, 0..100);
    guard.flush_blocking().unwrap();
    wait_for("a failed compression", || {
        matches!(guard.stats().last_error, Some(Error::Compress { .. }))
    });
    let rotated: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "app.log" && n != ".app.lock")
        .collect();
    assert!(!rotated.is_empty(), "{:?}", guard.stats());
    assert!(rotated.iter().all(|n| n.ends_with(".log")), "{rotated:?}");
    assert_eq!(guard.stats().files_deleted, 0);
    assert_eq!(seqs(&read_all(tmp.path())), (0..100).collect::<Vec<_>>());

    faults.compressions.store(false, Relaxed);
    let stats = guard.shutdown_blocking().unwrap();
    assert!(stats.rotations >= 3, "{stats:?}");
    assert_eq!(stats.files_compressed, stats.rotations);
    assert_eq!(stats.files_deleted, 0);
    assert_eq!(seqs(&read_all(tmp.path())), (0..100).collect::<Vec<_>>());
}

/// A disk that never recovers does not hang shutdown, even with a `Block` caller stuck on a
/// full queue: shutdown lets the writer drain again so that its marker gets through, retries
/// for a while, then gives up, returns the error, and counts every event as dropped; the stuck
/// caller is released and its remaining events are counted too.
#[test]
fn shutdown_with_a_dead_disk_gives_up_and_counts_everything() {
    const EVENTS: u64 = 5_000;
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(LogSink::builder().queue_capacity(64), tmp.path());
    stall_writes(&faults);
    let stats = guard.stats_handle();
    let producer = std::thread::spawn(move || log(&dispatch, 0..EVENTS));
    wait_for("a full queue", || stats.get().queue_len == 64);
    assert!(
        !producer.is_finished(),
        "the producer went on although nothing can be written"
    );

    let error = guard.shutdown_blocking().unwrap_err();
    assert!(is_enospc(&error), "{error}");
    producer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // One reading per check: the count may reach the total between two readings.
    loop {
        let now = stats.get();
        if now.events_dropped == EVENTS {
            break;
        }
        assert!(
            Instant::now() < deadline && now.events_dropped < EVENTS,
            "not every event accounted for: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(stats.get().events_written, 0);
}

/// The queue's byte budget holds while the writer cannot take events: with 100 KiB events and
/// `queue_bytes` of 1 MiB, at most about ten wait in the queue although it has room for 1,000
/// events; the rest are refused (`DropNewest`), counted, and reported. Memory stays bounded
/// by bytes, not only by the number of events.
#[test]
fn large_events_are_bounded_in_bytes() {
    const EVENTS: u64 = 50;
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(
        LogSink::builder()
            .queue_capacity(1_000)
            .queue_bytes(1024 * 1024)
            .overflow(Overflow::DropNewest),
        tmp.path(),
    );
    stall_writes(&faults);
    let big = "x".repeat(100 * 1024);
    tracing::dispatcher::with_default(&dispatch, || {
        for seq in 0..EVENTS {
            tracing::info!(seq, big = big.as_str());
        }
    });
    let stats = guard.stats();
    // What the queue holds is within the budget; the writer took some before it stopped for
    // the failing disk (how many depends on how many one of its batches found queued); the
    // rest was refused.
    assert!(
        stats.queue_len <= 11,
        "{} large events queued",
        stats.queue_len
    );
    assert!(stats.events_dropped >= EVENTS / 2, "{stats:?}");

    faults.writes.store(false, Relaxed);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written + stats.events_dropped, EVENTS);
    let lines = read_all(tmp.path());
    let written = seqs(&lines);
    assert_eq!(written.len() as u64, stats.events_written);
    assert_eq!(reported_drops(&lines), stats.events_dropped);
}

/// A failing disk sees one write attempt per backoff step, also while a size rotation is due
/// (every event asks for one): over a third of a second of failing writes (backoff 10, 20, 40,
/// 80, 160 ms), a handful of attempts, not one per event.
#[test]
fn a_failing_disk_is_retried_with_backoff_while_a_rotation_is_due() {
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(LogSink::builder().max_file_size(200), tmp.path());
    log(&dispatch, 0..5);
    guard.flush_blocking().unwrap();
    faults.writes.store(true, Relaxed);
    let before = faults.write_attempts.load(Relaxed);
    let window = Instant::now();
    let mut seq = 5;
    while window.elapsed() < Duration::from_millis(330) {
        log(&dispatch, seq..seq + 10);
        seq += 10;
        std::thread::sleep(Duration::from_millis(1));
    }
    let attempts = faults.write_attempts.load(Relaxed) - before;
    assert!(
        (1..=12).contains(&attempts),
        "{attempts} write attempts in {:?} while a rotation was due",
        window.elapsed()
    );
    faults.writes.store(false, Relaxed);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!((stats.events_written, stats.events_dropped), (seq, 0));
    assert_eq!(seqs(&read_all(tmp.path())), (0..seq).collect::<Vec<_>>());
}

/// A `write` that never returns (a stalled disk) does not hold shutdown: it returns
/// `ShutdownTimeout` after the timeout with the events not confirmed written, counted as
/// dropped; the writer thread is left behind, and when its write comes back it counts
/// nothing more (no event is both dropped and written). Blocking, async and `Drop` alike.
#[test]
fn a_stalled_write_does_not_hold_shutdown() {
    for how in ["blocking", "async", "drop"] {
        let tmp = tempfile::tempdir().unwrap();
        let (dispatch, guard, faults) = sink(
            LogSink::builder().shutdown_timeout(Duration::from_millis(300)),
            tmp.path(),
        );
        let stats = guard.stats_handle();
        faults.stall_writes.store(true, Relaxed);
        log(&dispatch, 0..1_000);
        let started = Instant::now();
        let result = match how {
            "blocking" => Some(guard.shutdown_blocking()),
            "async" => Some(
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(guard.shutdown()),
            ),
            _ => {
                drop(guard);
                None
            }
        };
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(20),
            "{how}: shutdown took {waited:?}"
        );
        if let Some(result) = result {
            match result {
                Err(Error::ShutdownTimeout { unconfirmed, .. }) => {
                    assert_eq!(unconfirmed, 1_000, "{how}")
                }
                other => panic!("{how}: {other:?}"),
            }
        }
        let counted = stats.get();
        assert_eq!(
            (counted.events_written, counted.events_dropped),
            (0, 1_000),
            "{how}"
        );
        // The stalled write comes back: the events reach the file, but stay counted once.
        faults.stall_writes.store(false, Relaxed);
        wait_for("the detached writer to write", || {
            seqs(&read_all(tmp.path())).len() == 1_000
        });
        let counted = stats.get();
        assert_eq!(
            (counted.events_written, counted.events_dropped),
            (0, 1_000),
            "{how}"
        );
    }
}

/// Any accepted duration works and none can crash the writer: `flush_interval(Duration::MAX)`
/// means "never by time", and every event is written at shutdown.
#[test]
fn the_longest_flush_interval_is_accepted_and_works() {
    let tmp = tempfile::tempdir().unwrap();
    let (layer, guard) = LogSink::builder()
        .directory(tmp.path())
        .flush_interval(Duration::MAX)
        .shutdown_timeout(Duration::MAX)
        .queue_capacity(64)
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    log(&dispatch, 0..1_000);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!((stats.events_written, stats.events_dropped), (1_000, 0));
    assert_eq!(seqs(&read_all(tmp.path())), (0..1_000).collect::<Vec<_>>());
}

/// A writer that panics (a bug) leaves no caller waiting: with a queue of 16 and `Block`,
/// 2,000 events after the panic all return, every event is counted (written or dropped), and
/// shutdown returns the error.
#[test]
fn a_panicking_writer_leaves_no_caller_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(LogSink::builder().queue_capacity(16), tmp.path());
    let stats = guard.stats_handle();
    log(&dispatch, 0..10);
    faults.panic_in_write.store(true, Relaxed);
    assert!(matches!(guard.flush_blocking(), Err(Error::WriterGone)));
    let caller = std::thread::spawn(move || {
        log(&dispatch, 10..2_010);
        dispatch
    });
    wait_for("the caller to finish", || caller.is_finished());
    drop(caller.join().unwrap());
    assert!(matches!(guard.shutdown_blocking(), Err(Error::WriterGone)));
    let counted = stats.get();
    assert_eq!(counted.events_written + counted.events_dropped, 2_010);
    assert_eq!(counted.events_dropped, 2_010);
    assert!(matches!(counted.last_error, Some(Error::WriterGone)));
}

/// Compression far behind logging (held back entirely) does not let the folder grow: at every
/// rotation retention deletes the oldest rotated files, compressed or not, so the folder never
/// holds more than `keep_files` rotated files plus the two in flight; the backlog and the
/// uncompressed deletions are counted. Once compression resumes, every file left decompresses,
/// and the events kept are the newest, each once, in order.
#[test]
fn retention_bounds_the_folder_while_compression_lags() {
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(
        LogSink::builder().max_file_size(2 * 1024).keep_files(3),
        tmp.path(),
    );
    faults.hold_compressions.store(true, Relaxed);
    let rotated = |dir: &Path| {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("app.2"))
            .count()
    };
    let mut most = 0;
    for batch in 0..40 {
        log(&dispatch, batch * 50..batch * 50 + 50);
        guard.flush_blocking().unwrap();
        // The janitor applies retention as it takes each rotation: wait until it has taken
        // them all (every rotated file beyond the newest five is deleted by then).
        let rotations = guard.stats().rotations;
        wait_for("retention to run while compression is held", || {
            guard.stats().files_deleted + 5 >= rotations
        });
        most = most.max(rotated(tmp.path()));
    }
    let stats = guard.stats();
    assert!(stats.rotations > 20, "{stats:?}");
    assert!(most <= 5, "{most} rotated files at once with keep_files(3)");
    assert!(stats.files_deleted_uncompressed > 0, "{stats:?}");
    assert!(stats.compress_backlog >= 1, "{stats:?}");
    assert_eq!(stats.files_compressed, 0);
    faults.hold_compressions.store(false, Relaxed);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.compress_backlog, 0);
    assert_eq!(stats.events_written, 2_000);
    assert!(rotated(tmp.path()) <= 3, "{stats:?}");
    let kept = seqs(&read_all(tmp.path()));
    assert!(!kept.is_empty());
    assert_eq!(kept, (2_000 - kept.len() as u64..2_000).collect::<Vec<_>>());
}

/// Events that someone else's hands take away are counted, never silent: the active file
/// removed while the sink runs (its 100 events) and a rotated file removed before its
/// compression (its events, as the writer counted them) add up in `events_lost`, and each
/// loss is reported as an error. What remains on disk is everything else, once.
#[test]
fn events_in_files_removed_by_someone_else_are_counted_as_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, _) = sink(LogSink::builder(), tmp.path());
    log(&dispatch, 0..100);
    guard.flush_blocking().unwrap();
    fs::remove_file(tmp.path().join("app.log")).unwrap();
    log(&dispatch, 100..150);
    guard.flush_blocking().unwrap();
    let stats = guard.stats();
    assert_eq!(stats.events_lost, 100, "{stats:?}");
    assert!(matches!(stats.last_error, Some(Error::Write { .. })));
    assert_eq!(seqs(&read_all(tmp.path())), (100..150).collect::<Vec<_>>());
    guard.shutdown_blocking().unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let (dispatch, guard, faults) = sink(LogSink::builder().max_file_size(4 * 1024), tmp.path());
    faults.hold_compressions.store(true, Relaxed);
    log(&dispatch, 0..100);
    guard.flush_blocking().unwrap();
    // The newest rotated file waits behind the one held in compression: remove it.
    let mut rotated: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("app.2") && n.ends_with(".log"))
        .collect();
    rotated.sort();
    assert!(rotated.len() >= 2, "{rotated:?}");
    let victim = rotated.last().unwrap().clone();
    let in_victim = seqs(&read_all_of(&tmp.path().join(&victim))).len() as u64;
    wait_for("the janitor to take every rotation", || {
        guard.stats().compress_backlog == rotated.len() as u64
    });
    fs::remove_file(tmp.path().join(&victim)).unwrap();
    faults.hold_compressions.store(false, Relaxed);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_lost, in_victim, "{stats:?}");
    assert!(stats.write_errors >= 1);
    let kept = seqs(&read_all(tmp.path()));
    assert_eq!(kept.len() as u64 + in_victim, 100);
}

fn read_all_of(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
