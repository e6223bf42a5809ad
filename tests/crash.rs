//! A process killed with `SIGKILL` while it writes, rotates and compresses, then a restart on
//! the same folder: recovery leaves a clean folder and loses or repeats nothing that reached
//! the files.
//!
//! The test starts the test binary again as a child that runs only this test, which then
//! takes its child part, [`log_until_killed`] (see `common::child`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::child::{self, ChildRun};
use common::rotation_util;
use logsink::{Compression, LogSink, SinkGuard, SinkLayer};
use rotation_util::{Gunzip, ACTIVE, BASE};
use tracing::info;

/// The test that runs in two processes.
const TEST: &str = "killed_while_rotating_then_restarted";

/// How long the parent waits for the child to produce rotated files before failing.
const CHILD_DEADLINE: Duration = Duration::from_secs(10);

/// Events logged after the restart.
const AFTER_RESTART: u64 = 10;

/// The sink the child and the restarted parent both use. The child's compression falls far
/// behind (hundreds of 16 KiB files a second); the long shutdown timeout lets the restart
/// compress that whole backlog before it returns, which the checks below expect.
fn sink(dir: &Path) -> (SinkLayer, SinkGuard) {
    LogSink::builder()
        .directory(dir)
        .file_name(BASE)
        .max_file_size(16 * 1024)
        .compression(Compression::Gzip { level: 6 })
        .flush_interval(Duration::from_millis(10))
        .shutdown_timeout(Duration::from_secs(600))
        .build()
        .expect("building the sink")
}

/// The child part of [`killed_while_rotating_then_restarted`]: logs events `{seq: 0, 1, 2,
/// ..., phase: "child"}` from one thread, forever, until the parent kills the process.
fn log_until_killed(dir: &Path) -> ! {
    let (layer, _guard) = sink(dir);
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        for seq in 0u64.. {
            info!(seq, phase = "child", "before the crash");
        }
    });
    unreachable!("the child logs until it is killed")
}

/// Starts the child on `run.dir`, waits until at least `rotated_gz` compressed rotated files
/// exist, and kills it with SIGKILL. Returns a description of the folder at the kill.
fn run_child_and_kill(run: &ChildRun, rotated_gz: usize) -> String {
    let dir = run.dir.as_path();
    let mut child = run.spawn(TEST);
    let deadline = Instant::now() + CHILD_DEADLINE;
    loop {
        if rotation_util::rotated(dir, ".log.gz").len() >= rotated_gz {
            break;
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "the child ended by itself: {status}; output:\n{}",
                run.output()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no {rotated_gz} rotated .gz files after {CHILD_DEADLINE:?}: {:?}",
            rotation_util::list(dir)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.0.kill().expect("SIGKILL"); // SIGKILL on unix
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "the child was not killed: {status}");
    let names = rotation_util::list(dir);
    let count = |suffix: &str| names.iter().filter(|n| n.ends_with(suffix)).count();
    format!(
        "at the kill: {} .log.gz, {} .log.gz.tmp, {} rotated .log, active {} bytes",
        count(".log.gz"),
        count(".log.gz.tmp"),
        names
            .iter()
            .filter(|n| rotation_util::is_rotated_name(n, ".log"))
            .count(),
        std::fs::metadata(dir.join(ACTIVE)).map_or(0, |m| m.len()),
    )
}

/// Restarts a sink on `dir` in this process, logs [`AFTER_RESTART`] events
/// `{seq, phase: "restart"}`, shuts down, and checks the folder.
fn restart_and_check(dir: &Path, at_kill: &str) {
    let (layer, guard) = sink(dir);
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        for seq in 0..AFTER_RESTART {
            info!(seq, phase = "restart", "after the restart");
        }
    });
    let stats = guard.shutdown_blocking().expect("shutdown after restart");
    assert_eq!(stats.events_written, AFTER_RESTART, "{at_kill}");
    assert_eq!(stats.write_errors, 0, "{:?}", stats.last_error);

    // Only compressed rotated files and the active file: no .gz.tmp, no rotated .log.
    let gz = rotation_util::rotated(dir, ".log.gz");
    rotation_util::assert_folder(dir, &gz, &[]);

    // Every line in name order: all parse, except at most one cut short by the kill, which
    // must be the child's last line, right before the first event after the restart.
    let mut names = gz;
    names.push(ACTIVE.to_owned());
    let mut child_seqs = Vec::new();
    let mut restart_seqs = Vec::new();
    let mut cut_short: Option<(String, usize, String)> = None;
    for name in &names {
        let bytes = rotation_util::content(&dir.join(name), Gunzip::System);
        for (i, line) in common::split_lines(&bytes, name).into_iter().enumerate() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                assert!(
                    cut_short.is_none(),
                    "{name} line {}: a second unparsable line {line:?} after {cut_short:?}",
                    i + 1
                );
                assert!(
                    restart_seqs.is_empty(),
                    "{name} line {}: unparsable line after the restart: {line:?}",
                    i + 1
                );
                cut_short = Some((name.clone(), i + 1, line));
                continue;
            };
            let seq = common::field_u64(&value, "seq");
            match common::field_str(&value, "phase") {
                "child" => {
                    assert!(
                        restart_seqs.is_empty(),
                        "{name} line {}: a child event after the restart's",
                        i + 1
                    );
                    assert!(
                        cut_short.is_none(),
                        "{name} line {}: a child event after the cut-short line {cut_short:?}",
                        i + 1
                    );
                    child_seqs.push(seq);
                }
                "restart" => restart_seqs.push(seq),
                other => panic!("unexpected phase {other:?}"),
            }
        }
    }
    if let Some((name, line, text)) = &cut_short {
        let start = r#"{"timestamp":""#;
        assert!(
            text.starts_with(start) || start.starts_with(text.as_str()),
            "{name} line {line}: the cut-short line is not the start of an event: {text:?}"
        );
    }

    // The child's events form a gap-free prefix 0..N: none twice, none missing in between.
    let n = child_seqs.len() as u64;
    assert!(n > 0, "no child event survived; {at_kill}");
    if let Some(pos) = child_seqs
        .iter()
        .enumerate()
        .position(|(i, &s)| s != i as u64)
    {
        panic!(
            "child events are not 0..{n}: at index {pos} found {} (around: {:?}); {at_kill}",
            child_seqs[pos],
            &child_seqs[pos.saturating_sub(3)..(pos + 3).min(child_seqs.len())]
        );
    }
    assert_eq!(
        restart_seqs,
        (0..AFTER_RESTART).collect::<Vec<_>>(),
        "events after the restart; {at_kill}"
    );
    eprintln!(
        "{at_kill}; child events kept: {n}; cut-short line: {}",
        cut_short.is_some()
    );
}

/// A child killed with SIGKILL while logging, rotating (16 KiB files) and compressing, at
/// three different points (after 2, 6 and 12 compressed files exist), then a restart on the
/// same folder that logs a few more events and shuts down: no `.gz.tmp` or uncompressed
/// rotated file remains, every rotated file passes `gzip -t`, every line parses except at most
/// one cut short by the kill (the child's last, ended by the restart before its first event),
/// the child's events read in name order are exactly 0..N (none twice, none missing in the
/// middle), and the restart's events are there once, after them.
#[test]
fn killed_while_rotating_then_restarted() {
    if let Some(dir) = child::folder(TEST) {
        log_until_killed(&dir);
    }
    for rotated_gz in [2, 6, 12] {
        let run = ChildRun::new();
        let at_kill = run_child_and_kill(&run, rotated_gz);
        restart_and_check(&run.dir, &at_kill);
    }
}
