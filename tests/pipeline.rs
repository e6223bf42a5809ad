//! End-to-end behaviour of the sink: many producers, shutdown in its several forms, flushing,
//! refused configuration, and appending to existing files.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use logsink::{LogSink, Overflow, SinkGuard, SinkLayer};
use tracing::instrument::WithSubscriber;
use tracing::{info, Dispatch};

/// [`common::sink`] with a queue of `capacity` events and the given overflow policy.
fn small_queue_sink(dir: &Path, capacity: usize, overflow: Overflow) -> (SinkLayer, SinkGuard) {
    common::builder(dir)
        .queue_capacity(capacity)
        .overflow(overflow)
        .build()
        .expect("building the sink")
}

/// Logs `count` events `{seq: 0..count}` with `message` through `dispatch` on this thread.
fn log_seq(dispatch: &Dispatch, count: u64, message: &str) {
    tracing::dispatcher::with_default(dispatch, || {
        for seq in 0..count {
            info!(seq, "{message}");
        }
    });
}

/// Checks that the file holds exactly the events `{seq: 0..count}` in order, each a JSON line.
fn assert_seq_lines(path: &Path, count: u64) {
    let lines = common::read_json_lines(path);
    assert_eq!(
        lines.len() as u64,
        count,
        "number of lines in {}",
        path.display()
    );
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(
            common::field_u64(line, "seq"),
            i as u64,
            "line {}: {line}",
            i + 1
        );
    }
}

/// Four threads × 50,000 events: every event is written exactly once, in per-thread order,
/// and the stats match the file.
#[test]
fn four_threads_200k_events_each_exactly_once_in_per_thread_order() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(dir.path());
    let dispatch = common::dispatch(layer);
    common::log_on_threads(&dispatch, THREADS, PER_THREAD);

    let stats = common::run_or_fail_on_hang("shutdown_blocking", move || {
        guard.shutdown_blocking().expect("shutdown_blocking")
    });
    assert_eq!(
        stats.events_written,
        THREADS * PER_THREAD,
        "stats.events_written"
    );
    assert_eq!(stats.events_dropped, 0, "stats.events_dropped");
    assert_eq!(stats.write_errors, 0, "stats.write_errors");

    let path = common::log_path(dir.path());
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        stats.bytes_written, size,
        "stats.bytes_written vs file size"
    );

    let lines = common::read_json_lines(&path);
    assert_eq!(lines.len() as u64, THREADS * PER_THREAD, "number of lines");
    let mut seen = vec![vec![false; PER_THREAD as usize]; THREADS as usize];
    let mut last: Vec<Option<u64>> = vec![None; THREADS as usize];
    for (n, line) in lines.iter().enumerate() {
        let t = common::field_u64(line, "t");
        let i = common::field_u64(line, "i");
        assert!(
            t < THREADS && i < PER_THREAD,
            "line {}: out of range: {line}",
            n + 1
        );
        assert!(
            !seen[t as usize][i as usize],
            "line {}: (t={t}, i={i}) written twice",
            n + 1
        );
        seen[t as usize][i as usize] = true;
        if let Some(prev) = last[t as usize] {
            assert!(
                i > prev,
                "line {}: thread {t}'s i={i} comes after i={prev}: per-thread order lost",
                n + 1
            );
        }
        last[t as usize] = Some(i);
        assert_eq!(line["level"], "INFO", "line {}: {line}", n + 1);
    }
}

/// `THREADS` producers each log `{t, i}` for `i` in `0..per_thread` through `dispatch`, and are
/// joined (a hang becomes a failure).
fn log_from_threads(dispatch: &Dispatch, threads: u64, per_thread: u64, what: &'static str) {
    let producers: Vec<_> = (0..threads)
        .map(|t| {
            let dispatch = dispatch.clone();
            thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..per_thread {
                        info!(t, i);
                    }
                })
            })
        })
        .collect();
    common::run_or_fail_on_hang(what, move || {
        for p in producers {
            p.join().expect("producer thread panicked");
        }
    });
}

/// A queue of one event with `Block`: four producers constantly wait for room, and every
/// event is still written exactly once.
#[test]
fn tiny_queue_with_block_overflow_loses_nothing() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = small_queue_sink(dir.path(), 1, Overflow::Block);
    let dispatch = common::dispatch(layer);
    log_from_threads(
        &dispatch,
        THREADS,
        PER_THREAD,
        "producers with a full queue",
    );
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, THREADS * PER_THREAD);
    assert_eq!(stats.events_dropped, 0);

    let lines = common::read_json_lines(&common::log_path(dir.path()));
    let unique: HashSet<(u64, u64)> = lines
        .iter()
        .map(|l| (common::field_u64(l, "t"), common::field_u64(l, "i")))
        .collect();
    assert_eq!(lines.len() as u64, THREADS * PER_THREAD);
    assert_eq!(
        unique.len() as u64,
        THREADS * PER_THREAD,
        "some events written twice"
    );
}

/// Under `DropNewest` with a tiny queue, written + dropped equals emitted, the drops are reported
/// in the log by WARN lines whose counts add up to `events_dropped`, and written events keep
/// their per-thread order.
#[test]
fn drop_newest_accounts_for_every_event() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = small_queue_sink(dir.path(), 2, Overflow::DropNewest);
    let dispatch = common::dispatch(layer);
    log_from_threads(&dispatch, THREADS, PER_THREAD, "producers with DropNewest");
    let before = guard.stats();
    let stats = guard.shutdown_blocking().unwrap();
    assert!(
        before.events_dropped <= stats.events_dropped,
        "drop count went down"
    );
    assert_eq!(
        stats.events_written + stats.events_dropped,
        THREADS * PER_THREAD,
        "written ({}) + dropped ({}) must account for every event",
        stats.events_written,
        stats.events_dropped
    );
    let lines = common::read_json_lines(&common::log_path(dir.path()));
    // The writer reports the drops in the log itself: WARN lines from target `logsink` whose
    // counts add up to every event the full queue refused.
    let (reports, lines): (Vec<_>, Vec<_>) = lines
        .into_iter()
        .partition(|line| line["target"] == "logsink");
    let reported: u64 = reports
        .iter()
        .map(|r| {
            assert_eq!(r["level"], "WARN", "{r}");
            assert_eq!(r["fields"]["message"], "dropped events", "{r}");
            r["fields"]["dropped"]
                .as_u64()
                .expect("a count of dropped events")
        })
        .sum();
    assert_eq!(
        reported, stats.events_dropped,
        "every drop is reported in the log"
    );
    assert_eq!(lines.len() as u64, stats.events_written);
    let mut last: Vec<Option<u64>> = vec![None; THREADS as usize];
    for line in &lines {
        let (t, i) = (common::field_u64(line, "t"), common::field_u64(line, "i"));
        if let Some(prev) = last[t as usize] {
            assert!(i > prev, "thread {t}: i={i} after i={prev}");
        }
        last[t as usize] = Some(i);
    }
}

/// Eight tokio tasks × 5,000 events, then `shutdown().await`: every event is written exactly
/// once and none is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_shutdown_after_eight_tasks() {
    const TASKS: u64 = 8;
    const PER_TASK: u64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(dir.path());
    let dispatch = common::dispatch(layer);

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(
                async move {
                    for i in 0..PER_TASK {
                        info!(task, i);
                        if i % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }
                .with_subscriber(dispatch.clone()),
            )
        })
        .collect();
    for t in tasks {
        t.await.expect("task panicked");
    }

    let stats = tokio::time::timeout(common::HANG_GUARD, guard.shutdown())
        .await
        .expect("shutdown().await hangs")
        .expect("shutdown");
    assert_eq!(stats.events_written, TASKS * PER_TASK);
    assert_eq!(stats.events_dropped, 0);

    let lines = common::read_json_lines(&common::log_path(dir.path()));
    assert_eq!(lines.len() as u64, TASKS * PER_TASK, "number of lines");
    let mut seen = HashSet::new();
    for line in &lines {
        let key = (
            common::field_u64(line, "task"),
            common::field_u64(line, "i"),
        );
        assert!(key.0 < TASKS && key.1 < PER_TASK, "out of range: {line}");
        assert!(seen.insert(key), "written twice: {line}");
    }
}

/// `flush().await` puts the pending events in the file before shutdown, and the later shutdown
/// neither loses nor repeats them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_flush_makes_events_visible() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(dir.path());
    let dispatch = common::dispatch(layer);
    log_seq(&dispatch, 10, "before async flush");
    tokio::time::timeout(common::HANG_GUARD, guard.flush())
        .await
        .expect("flush().await hangs")
        .expect("flush");
    let path = common::log_path(dir.path());
    assert_seq_lines(&path, 10);
    assert_eq!(guard.stats().events_written, 10);
    let stats = guard.shutdown().await.unwrap();
    assert_eq!(stats.events_written, 10);
    assert_seq_lines(&path, 10);
}

/// Dropping the guard on another thread writes every event; logging through the layer afterwards
/// neither panics nor blocks, and writes nothing.
#[test]
fn dropping_the_guard_on_another_thread_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(dir.path());
    let dispatch = common::dispatch(layer);
    log_seq(&dispatch, 1_000, "before drop");
    common::run_or_fail_on_hang("dropping the guard", move || {
        thread::spawn(move || drop(guard))
            .join()
            .expect("dropping the guard panicked")
    });
    assert_seq_lines(&common::log_path(dir.path()), 1_000);
    // The layer outlives the guard: logging through it must neither panic nor block, and
    // must not write anything.
    common::run_or_fail_on_hang("logging after drop", move || {
        log_seq(&dispatch, 10, "after drop")
    });
    assert_seq_lines(&common::log_path(dir.path()), 1_000);
}

/// After `shutdown_blocking`, events are neither written nor blocked, even with a one-slot
/// `Block` queue: the file is left exactly as it was.
#[test]
fn events_after_shutdown_are_not_written_and_do_not_block() {
    let dir = tempfile::tempdir().unwrap();
    // A one-slot queue with Block: if a stopped writer left the queue open, the second event
    // after shutdown would block forever.
    let (layer, guard) = small_queue_sink(dir.path(), 1, Overflow::Block);
    let dispatch = common::dispatch(layer);
    log_seq(&dispatch, 5, "before shutdown");
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, 5);
    assert_eq!(stats.events_dropped, 0);
    let path = common::log_path(dir.path());
    assert_seq_lines(&path, 5);
    let size_before = std::fs::metadata(&path).unwrap().len();

    let d = dispatch.clone();
    common::run_or_fail_on_hang("logging 3 events after shutdown", move || {
        log_seq(&d, 3, "after shutdown")
    });
    common::run_or_fail_on_hang("logging 1000 more events after shutdown", move || {
        log_seq(&dispatch, 1_000, "after shutdown")
    });
    assert_seq_lines(&path, 5);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size_before);
}

/// After `shutdown().await`, further events are not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_after_async_shutdown_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(dir.path());
    let dispatch = common::dispatch(layer);
    log_seq(&dispatch, 7, "before shutdown");
    let stats = guard.shutdown().await.unwrap();
    assert_eq!(stats.events_written, 7);
    let path = common::log_path(dir.path());
    log_seq(&dispatch, 3, "after shutdown");
    assert_seq_lines(&path, 7);
}

/// A flush covers every event whose call returned before the flush began, on every thread,
/// while the threads keep logging: before each of 20 flushes the main thread reads how far
/// each of 4 threads got (each publishes its last finished `seq` after the call returns), and
/// after the flush every event up to there must be in the file. Flushes travel on their own
/// channel and take a snapshot of the queue's length, so this is what proves the snapshot.
#[test]
fn a_flush_covers_every_event_finished_before_it_on_any_thread() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const THREADS: usize = 4;
    const PER_THREAD: u64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(dir.path());
    let dispatch = common::dispatch(layer);
    let path = common::log_path(dir.path());
    // `u64::MAX`: nothing finished yet.
    let done: Arc<Vec<AtomicU64>> =
        Arc::new((0..THREADS).map(|_| AtomicU64::new(u64::MAX)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (dispatch, done, stop) = (dispatch.clone(), done.clone(), stop.clone());
            thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    // Paced and capped, so that the file the main thread reads stays small.
                    for seq in 0..PER_THREAD {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        info!(thread = t as u64, seq, "working");
                        // Release: the event's send happened before this store.
                        done[t].store(seq, Ordering::Release);
                        if seq % 10 == 9 {
                            thread::sleep(Duration::from_micros(200));
                        }
                    }
                })
            })
        })
        .collect();
    for _ in 0..20 {
        thread::sleep(Duration::from_millis(3));
        let reached: Vec<u64> = done.iter().map(|d| d.load(Ordering::Acquire)).collect();
        guard.flush_blocking().expect("flush");
        let mut seen = [0u64; THREADS];
        for line in common::read_json_lines(&path) {
            let t = common::field_u64(&line, "thread") as usize;
            // One thread's events are in order: count how many of its first ones are here.
            if common::field_u64(&line, "seq") == seen[t] {
                seen[t] += 1;
            }
        }
        for t in 0..THREADS {
            if reached[t] != u64::MAX {
                assert!(
                    seen[t] > reached[t],
                    "thread {t} had finished seq {} before the flush, the file has {} of its events",
                    reached[t],
                    seen[t]
                );
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    drop(dispatch);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_dropped, 0);
    assert_eq!(
        stats.events_written,
        common::read_json_lines(&path).len() as u64
    );
}

/// `flush_blocking` alone (the timer is an hour) puts each batch of events in the file and the
/// stats, and a flush with nothing pending succeeds.
#[test]
fn explicit_flush_writes_without_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(dir.path());
    let dispatch = common::dispatch(layer);
    let path = common::log_path(dir.path());

    log_seq(&dispatch, 10, "first batch");
    guard.flush_blocking().expect("flush_blocking");
    // Only the flush can explain these lines: the flush interval is an hour.
    assert_seq_lines(&path, 10);
    let stats = guard.stats();
    assert_eq!(stats.events_written, 10, "stats after the first flush");
    assert_eq!(stats.bytes_written, std::fs::metadata(&path).unwrap().len());

    tracing::dispatcher::with_default(&dispatch, || {
        for seq in 10..15u64 {
            info!(seq, "second batch");
        }
    });
    guard.flush_blocking().expect("second flush_blocking");
    assert_seq_lines(&path, 15);
    assert_eq!(
        guard.stats().events_written,
        15,
        "stats after the second flush"
    );

    // Flushing with nothing new is fine too.
    guard.flush_blocking().expect("flush with nothing pending");
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, 15);
    assert_eq!(stats.events_dropped, 0);
    assert_seq_lines(&path, 15);
}

/// `build()` creates a missing log directory several levels deep, and the events are written there.
#[test]
fn missing_directories_are_created() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("deeper").join("logs");
    let (layer, guard) = common::sink(&dir);
    assert!(dir.is_dir(), "build() did not create {}", dir.display());
    log_seq(&common::dispatch(layer), 3, "into a new directory");
    guard.shutdown_blocking().unwrap();
    assert_seq_lines(&common::log_path(&dir), 3);
}

/// Checks that `result` is a refusal whose message mentions one of `needles`.
fn assert_refused(result: Result<(SinkLayer, SinkGuard), logsink::Error>, needles: &[String]) {
    let err = match result {
        Ok(_) => {
            panic!("build() accepted a value it must refuse (expected a mention of {needles:?})")
        }
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(
        needles.iter().any(|n| msg.contains(n.as_str())),
        "the error message {msg:?} mentions none of {needles:?}"
    );
    // It is a std error.
    let _: &dyn std::error::Error = &err;
}

fn with_file_name(dir: &Path, name: &str) -> Result<(SinkLayer, SinkGuard), logsink::Error> {
    LogSink::builder()
        .directory(dir.to_path_buf())
        .file_name(name)
        .build()
}

/// `build()` refuses bad file names, a zero queue capacity, a regular file as the directory and an
/// uncreatable directory, naming the value in the error, and leaves that regular file alone.
#[test]
fn refused_builder_values_are_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // An empty name: the message must show it somehow (quoted, or by saying it is empty).
    assert_refused(
        with_file_name(dir, ""),
        &["\"\"".to_owned(), "empty".to_owned()],
    );
    assert_refused(with_file_name(dir, "a/b"), &["a/b".to_owned()]);
    // Backslash is refused on every platform; accept the name raw or Debug-escaped.
    assert_refused(
        with_file_name(dir, "a\\b"),
        &["a\\b".to_owned(), "a\\\\b".to_owned()],
    );

    let zero = LogSink::builder()
        .directory(dir.to_path_buf())
        .file_name(common::FILE_NAME)
        .queue_capacity(0)
        .build();
    assert_refused(zero, &["0".to_owned()]);

    let regular = dir.join("file.txt");
    std::fs::write(&regular, b"not a directory").unwrap();
    let as_dir = LogSink::builder()
        .directory(regular.clone())
        .file_name(common::FILE_NAME)
        .build();
    assert_refused(as_dir, &[regular.display().to_string()]);

    let under_file = regular.join("sub");
    let uncreatable = LogSink::builder()
        .directory(under_file.clone())
        .file_name(common::FILE_NAME)
        .build();
    assert_refused(uncreatable, &[under_file.display().to_string()]);

    // The regular file given as the directory is left alone.
    assert_eq!(std::fs::read(&regular).unwrap(), b"not a directory");
}

/// Appending to a file whose last line was cut short keeps that line as it was and starts the new
/// events on a fresh line.
#[test]
fn appending_after_a_cut_short_last_line_starts_a_fresh_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::log_path(dir.path());
    std::fs::write(&path, b"{\"partial\":").unwrap();

    let (layer, guard) = common::sink(dir.path());
    log_seq(&common::dispatch(layer), 5, "after a partial line");
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, 5);

    let lines = common::read_lines(&path);
    assert_eq!(lines.len(), 6, "lines: {lines:#?}");
    assert_eq!(
        lines[0], "{\"partial\":",
        "the partial line must be kept as it was"
    );
    for (i, line) in lines[1..].iter().enumerate() {
        let v = common::parse_line(line, &format!("line {}", i + 2));
        assert_eq!(common::field_u64(&v, "seq"), i as u64);
    }
}

/// Appending to a file that ends with a newline keeps its content and adds the new events with no
/// blank line between.
#[test]
fn appending_to_a_complete_file_adds_no_blank_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::log_path(dir.path());
    let existing = "{\"old\":0}\n{\"old\":1}\n{\"old\":2}\n";
    std::fs::write(&path, existing).unwrap();

    let (layer, guard) = common::sink(dir.path());
    log_seq(&common::dispatch(layer), 5, "appended");
    guard.shutdown_blocking().unwrap();

    let text = common::read_text(&path);
    assert!(
        text.starts_with(existing),
        "existing content changed: {text:?}"
    );
    let lines = common::read_json_lines(&path);
    assert_eq!(lines.len(), 8, "3 old + 5 new lines expected:\n{text}");
    for (i, line) in lines[..3].iter().enumerate() {
        assert_eq!(line["old"], i as u64);
    }
    for (i, line) in lines[3..].iter().enumerate() {
        assert_eq!(common::field_u64(line, "seq"), i as u64);
    }
}

/// Appending to an existing empty file writes the events with no leading blank line.
#[test]
fn appending_to_an_empty_file_adds_no_blank_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::log_path(dir.path());
    std::fs::write(&path, b"").unwrap();
    let (layer, guard) = common::sink(dir.path());
    log_seq(&common::dispatch(layer), 5, "into an empty file");
    guard.shutdown_blocking().unwrap();
    assert_seq_lines(&path, 5);
}

/// Three sinks opened one after another on the same file each append their events: all twelve
/// are there, in order.
#[test]
fn two_sinks_in_turn_append_to_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::log_path(dir.path());
    for round in 0..3u64 {
        let (layer, guard) = common::sink(dir.path());
        tracing::dispatcher::with_default(&common::dispatch(layer), || {
            for seq in round * 4..round * 4 + 4 {
                info!(seq, round);
            }
        });
        drop(guard);
    }
    assert_seq_lines(&path, 12);
}

/// Dropping the guard inside a current-thread tokio runtime (as `#[tokio::main]` does) neither
/// panics nor hangs, and writes every event.
#[test]
fn dropping_the_guard_inside_a_current_thread_runtime() {
    // `#[tokio::main]` with the guard held in `main` drops it inside the runtime: the blocking
    // shutdown that Drop does must not panic there, and must write everything.
    let dir = tempfile::tempdir().unwrap();
    let path = common::log_path(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let d = dir.path().to_path_buf();
    common::run_or_fail_on_hang("dropping the guard in a runtime", move || {
        rt.block_on(async move {
            let (layer, guard) = common::sink(&d);
            log_seq(&common::dispatch(layer), 20, "inside a runtime");
            drop(guard);
        })
    });
    assert_seq_lines(&path, 20);
}

/// Dropping the guard inside a multi-thread tokio runtime writes every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_guard_inside_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(dir.path());
    log_seq(&common::dispatch(layer), 20, "inside a runtime");
    drop(guard);
    assert_seq_lines(&common::log_path(dir.path()), 20);
}

/// Every event's timestamp lies between clock readings taken just before and just after the
/// call, for events on both sides of two second boundaries.
#[test]
fn timestamps_are_the_time_of_the_call_across_a_second_boundary() {
    // Each event's timestamp must lie between wall-clock readings taken just before and just
    // after the call, including events on both sides of a change of second (the formatter may
    // cache the part of the timestamp that changes once a second).
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(dir.path());
    let dispatch = common::dispatch(layer);
    let mut windows = Vec::new();
    let first_second = common::now_micros() / 1_000_000;
    tracing::dispatcher::with_default(&dispatch, || {
        // Busy-waiting on the clock (not sleeping): about one event per 5 ms until two second
        // boundaries have passed, so that at most ~2 s are spent.
        loop {
            let before = common::now_micros();
            info!(n = windows.len() as u64);
            let after = common::now_micros();
            windows.push((before, after));
            if after / 1_000_000 >= first_second + 2 {
                break;
            }
            while common::now_micros() < after + 5_000 {
                std::hint::spin_loop();
            }
        }
    });
    guard.shutdown_blocking().unwrap();
    let lines = common::read_json_lines(&common::log_path(dir.path()));
    assert_eq!(lines.len(), windows.len());
    for (line, (before, after)) in lines.iter().zip(&windows) {
        let ts = line["timestamp"]
            .as_str()
            .unwrap_or_else(|| panic!("no timestamp string: {line}"));
        let micros = common::check_timestamp(ts).unwrap();
        assert!(
            *before <= micros && micros <= *after,
            "timestamp {ts} ({micros} µs) is outside the call's window [{before}, {after}]: {line}"
        );
    }
}

/// With a 10 ms flush interval and no explicit flush, the events reach the file on the timer
/// alone.
#[test]
fn the_flush_interval_alone_makes_events_visible() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = LogSink::builder()
        .directory(dir.path().to_path_buf())
        .file_name(common::FILE_NAME)
        .flush_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    log_seq(&dispatch, 10, "waiting for the timer");
    let path = common::log_path(dir.path());
    common::wait_for("events flushed by the 10 ms timer", || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        (text.matches('\n').count() >= 10).then_some(())
    });
    assert_seq_lines(&path, 10);
    drop(guard);
}

/// When every write fails (the active file was replaced, while the sink ran, by a link to
/// /dev/full, which the sink never writes through), `flush_blocking` and `shutdown_blocking`
/// return errors, `write_errors` counts the failure and nothing is counted as written.
#[cfg(target_os = "linux")]
#[test]
fn write_failures_are_reported_not_hidden() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(dir.path());
    std::fs::remove_file(common::log_path(dir.path())).unwrap();
    std::os::unix::fs::symlink(full, common::log_path(dir.path())).unwrap();
    log_seq(&common::dispatch(layer), 10, "into a full disk");
    let guard = common::run_or_fail_on_hang("flush on a full disk", move || {
        let flushed = guard.flush_blocking();
        assert!(
            flushed.is_err(),
            "flush_blocking reported success on a full disk"
        );
        let stats = guard.stats();
        assert!(
            stats.write_errors >= 1,
            "write_errors is 0 after a failed write"
        );
        assert_eq!(
            stats.events_written, 0,
            "events counted as written on a full disk"
        );
        guard
    });
    let result =
        common::run_or_fail_on_hang("shutdown on a full disk", move || guard.shutdown_blocking());
    let err = match result {
        Ok(stats) => panic!(
            "shutdown_blocking reported success on a full disk ({} events written)",
            stats.events_written
        ),
        Err(e) => e,
    };
    assert!(!err.to_string().is_empty());
}
