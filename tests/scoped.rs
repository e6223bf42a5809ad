//! `ScopedSink`: the sink is the default subscriber inside `run` / `run_blocking`, and the files
//! are flushed and closed whatever the code did — returned `Ok` or `Err`, panicked, or (for
//! `run`) was cancelled. Every test reads the file back and parses every line.
//!
//! The sinks here never flush on their timer (one hour), so an event is in the file only if a
//! shutdown (or an explicit flush) put it there.

mod common;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use logsink::{Error, LogSink, ScopedSink, StatsHandle};
use serde_json::Value;
use tracing::instrument::WithSubscriber;
use tracing::Instrument;

fn scoped_in(dir: &Path) -> ScopedSink {
    common::builder(dir)
        .build_scoped()
        .expect("building the scoped sink")
}

/// Every line of the sink's file, parsed.
fn lines(dir: &Path) -> Vec<Value> {
    common::read_json_lines(&common::log_path(dir))
}

fn message(line: &Value) -> &str {
    line["fields"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("line without a message: {line}"))
}

/// Checks the lines are `seq` 0..count with `msg`, in order.
fn assert_seq(lines: &[Value], count: u64, msg: &str) {
    assert_eq!(lines.len() as u64, count, "lines: {lines:?}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(common::field_u64(line, "seq"), i as u64, "{line}");
        assert_eq!(message(line), msg, "{line}");
        common::check_timestamp(line["timestamp"].as_str().unwrap()).unwrap();
    }
}

/// The sink is closed: an event logged through `dispatch` now is counted as dropped at once
/// (the layer refuses it), is not written, and the file keeps its `lines_before` lines. A sink
/// left open would take the event into its queue instead, where it is neither written (the
/// timer is an hour) nor dropped, and the counters would show it.
fn assert_closed(
    dir: &Path,
    dispatch: &tracing::Dispatch,
    stats: &StatsHandle,
    lines_before: usize,
) {
    let before = stats.get();
    assert_eq!(before.events_written, lines_before as u64, "{before:?}");
    tracing::dispatcher::with_default(dispatch, || tracing::info!("after shutdown"));
    let after = stats.get();
    assert_eq!(
        (after.events_written, after.events_dropped),
        (before.events_written, before.events_dropped + 1),
        "the event after shutdown was not refused as dropped: {after:?}"
    );
    assert_eq!(
        lines(dir).len(),
        lines_before,
        "an event after shutdown was written"
    );
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<not a string>".to_owned())
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

/// `run` with an `Ok` future returns its output, writes all 100 events with their span, and
/// leaves the sink closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ok_writes_every_event_and_returns_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let scoped = scoped_in(tmp.path());
    let dispatch = scoped.dispatch().clone();
    let handle = scoped.stats_handle();

    // The span is created inside the scope: one created in the argument expression would be
    // created under the caller's default subscriber, not the sink's.
    let (result, stats) = scoped
        .run(async {
            let request = async {
                for seq in 0..100u64 {
                    tracing::info!(seq, "working");
                    if seq % 10 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Ok::<u32, String>(7)
            };
            request
                .instrument(tracing::info_span!("request", id = 3))
                .await
        })
        .await;

    assert_eq!(result, Ok(7));
    let stats = stats.expect("shutdown");
    assert_eq!((stats.events_written, stats.events_dropped), (100, 0));
    let lines = lines(tmp.path());
    assert_seq(&lines, 100, "working");
    for line in &lines {
        assert_eq!(
            line["span"],
            serde_json::json!({"id": 3, "name": "request"})
        );
    }
    // Outside `run` the sink is not the default subscriber: this goes nowhere.
    tracing::info!("outside the scope");
    assert_closed(tmp.path(), &dispatch, &handle, 100);
}

/// `run` with a future that returns `Err` still returns it, writes every event and closes the
/// sink.
#[tokio::test]
async fn run_err_still_flushes_and_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let scoped = scoped_in(tmp.path());
    let dispatch = scoped.dispatch().clone();
    let handle = scoped.stats_handle();

    let (result, stats) = scoped
        .run(async {
            for seq in 0..10u64 {
                tracing::warn!(seq, "retrying");
                tokio::task::yield_now().await;
            }
            Err::<(), _>(std::io::Error::other("refused"))
        })
        .await;

    assert_eq!(result.unwrap_err().to_string(), "refused");
    assert_eq!(stats.expect("shutdown").events_written, 10);
    let lines = lines(tmp.path());
    assert_seq(&lines, 10, "retrying");
    assert!(lines.iter().all(|l| l["level"] == "WARN"));
    assert_closed(tmp.path(), &dispatch, &handle, 10);
}

/// A panic inside `run` reaches the caller only after the sink has written every event and
/// closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_inside_run_is_resumed_after_the_sink_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let scoped = scoped_in(tmp.path());
    let dispatch = scoped.dispatch().clone();
    let handle = scoped.stats_handle();

    let run = assert_send(scoped.run(async {
        for seq in 0..25u64 {
            tracing::error!(seq, "about to fail");
            if seq == 12 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        panic!("boom after 25 events");
    }));
    let joined = tokio::spawn(run).await;

    let error = joined.expect_err("the panic reaches the task");
    assert!(error.is_panic(), "{error:?}");
    assert_eq!(panic_message(&*error.into_panic()), "boom after 25 events");
    // Only a shutdown writes with this sink's hour-long timer, so the events being here means
    // the sink was shut down before the panic was resumed.
    let lines = lines(tmp.path());
    assert_seq(&lines, 25, "about to fail");
    assert_closed(tmp.path(), &dispatch, &handle, 25);
}

/// Logs when dropped: shows that a cancelled future is dropped with the sink still its default
/// subscriber, and before the sink shuts down.
struct LogOnDrop;

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        tracing::info!(seq = 3u64, "cleaned up");
    }
}

/// Dropping a pending `run` future drops the user's future with the sink still its subscriber,
/// then shuts the sink down: every event, the cleanup's included, is in the file.
#[tokio::test]
async fn cancelled_run_is_shut_down_by_the_guard_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let scoped = scoped_in(tmp.path());
    let dispatch = scoped.dispatch().clone();
    let handle = scoped.stats_handle();

    let run = scoped.run(async {
        let _cleanup = LogOnDrop;
        for seq in 0..3u64 {
            tracing::info!(seq, "waiting");
        }
        std::future::pending::<()>().await;
        unreachable!()
    });
    let timed_out = tokio::time::timeout(Duration::from_millis(100), run).await;

    assert!(timed_out.is_err(), "the run never completes on its own");
    // `timeout` has dropped the run future: the guard's `Drop` shut the sink down before
    // `timeout` returned, so the file is complete now.
    let lines = lines(tmp.path());
    assert_eq!(lines.len(), 4, "lines: {lines:?}");
    let messages: Vec<_> = lines.iter().map(message).collect();
    assert_eq!(messages, ["waiting", "waiting", "waiting", "cleaned up"]);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(common::field_u64(line, "seq"), i as u64);
    }
    assert_closed(tmp.path(), &dispatch, &handle, 4);
}

/// A `run` future dropped before its first poll writes nothing and leaves the sink closed.
#[tokio::test]
async fn cancelled_before_the_first_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let scoped = scoped_in(tmp.path());
    let dispatch = scoped.dispatch().clone();
    let handle = scoped.stats_handle();
    let run = scoped.run(async { tracing::info!("never") });
    drop(run);
    assert_eq!(lines(tmp.path()).len(), 0);
    assert_closed(tmp.path(), &dispatch, &handle, 0);
}

/// The sink is the default only for the future `run` polls: a task spawned from inside logs
/// into it only when it carries the subscriber along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_tasks_log_into_the_sink_only_with_the_current_subscriber() {
    let tmp = tempfile::tempdir().unwrap();
    let scoped = scoped_in(tmp.path());

    let ((), stats) = scoped
        .run(async {
            tracing::info!(seq = 0u64, "parent");
            tokio::spawn(async { tracing::info!("not carried") })
                .await
                .unwrap();
            tokio::spawn(async { tracing::info!(seq = 1u64, "carried") }.with_current_subscriber())
                .await
                .unwrap();
            tracing::info!(seq = 2u64, "parent");
        })
        .await;

    assert_eq!(stats.unwrap().events_written, 3);
    let lines = lines(tmp.path());
    let messages: Vec<_> = lines.iter().map(message).collect();
    assert_eq!(messages, ["parent", "carried", "parent"]);
}

/// `build_scoped` refuses an invalid file name with `Error::InvalidConfig` naming `file_name`,
/// as `build` does.
#[test]
fn build_scoped_refuses_what_build_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = LogSink::builder()
        .directory(tmp.path())
        .file_name("a/b")
        .build_scoped();
    assert!(matches!(
        refused,
        Err(Error::InvalidConfig {
            setting: "file_name",
            ..
        })
    ));
}

/// `run_blocking` returns the closure's output, writes all 50 events with their span, and leaves
/// the sink closed.
#[test]
fn run_blocking_ok() {
    let tmp = tempfile::tempdir().unwrap();
    let scoped = scoped_in(tmp.path());
    let dispatch = scoped.dispatch().clone();
    let handle = scoped.stats_handle();

    let (answer, stats) = common::run_or_fail_on_hang("run_blocking", move || {
        scoped.run_blocking(|| {
            let span = tracing::info_span!("job", kind = "import");
            let _entered = span.enter();
            for seq in 0..50u64 {
                tracing::info!(seq, "imported");
            }
            "done"
        })
    });

    assert_eq!(answer, "done");
    let stats = stats.expect("shutdown");
    assert_eq!((stats.events_written, stats.events_dropped), (50, 0));
    let lines = lines(tmp.path());
    assert_seq(&lines, 50, "imported");
    for line in &lines {
        assert_eq!(line["span"]["name"], "job", "{line}");
        assert_eq!(line["span"]["kind"], "import", "{line}");
    }
    tracing::info!("outside the scope");
    assert_closed(tmp.path(), &dispatch, &handle, 50);
}

/// A panic inside `run_blocking` is resumed only after the sink has written every event and
/// closed.
#[test]
fn run_blocking_panic_is_resumed_after_the_sink_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let scoped = scoped_in(tmp.path());
    let dispatch = scoped.dispatch().clone();
    let handle = scoped.stats_handle();

    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scoped.run_blocking(|| {
            for seq in 0..5u64 {
                tracing::info!(seq, "before the panic");
            }
            panic!("kaboom");
        })
    }));

    let payload = caught.expect_err("the panic is resumed");
    assert_eq!(panic_message(&*payload), "kaboom");
    let lines = lines(tmp.path());
    assert_seq(&lines, 5, "before the panic");
    // The default subscriber was restored when the panic left the closure: this goes nowhere.
    tracing::info!("outside the scope");
    assert_closed(tmp.path(), &dispatch, &handle, 5);
}

/// `run` is `Send` when the future is, so it can be spawned; checked at compile time.
#[allow(dead_code)]
fn run_is_send(scoped: ScopedSink, fut: impl Future<Output = u8> + Send + 'static) {
    drop(tokio::spawn(scoped.run(fut)));
}
