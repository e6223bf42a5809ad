//! Real file-system failures, as they happen to a running service: its log folder deleted, its
//! active file moved away, a device that is full, a file-size limit. Each test proves that the
//! host program sees no error through `tracing`, and that the sink recovers without losing
//! the events it can still write, or counts the ones it cannot. (Failures that need root or a
//! mount to produce for real are injected instead: `src/tests/failures.rs`.)

mod common;

use std::path::Path;

fn seqs(path: &Path) -> Vec<u64> {
    common::seqs(&common::read_json_lines(path))
}

/// The log folder is deleted while the sink runs: the writer notices before its next write
/// (the path no longer names its open file), creates the folder and the active file again,
/// and writes everything that was not yet on disk there.
#[test]
fn a_deleted_log_folder_is_created_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    let (layer, guard) = common::sink(&dir);
    let dispatch = common::dispatch(layer);
    common::log_seqs(&dispatch, 0..100);
    guard.flush_blocking().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    common::log_seqs(&dispatch, 100..200);
    guard.flush_blocking().unwrap();
    assert_eq!(
        seqs(&common::log_path(&dir)),
        (100..200).collect::<Vec<_>>()
    );
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!((stats.events_written, stats.events_dropped), (200, 0));
}

/// The active file is renamed away by someone else (a rotation tool that moves files): the
/// moved file keeps what was written before, and a new active file gets the rest.
#[test]
fn an_active_file_moved_away_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(tmp.path());
    let dispatch = common::dispatch(layer);
    common::log_seqs(&dispatch, 0..50);
    guard.flush_blocking().unwrap();
    let moved = tmp.path().join("moved-by-someone.log");
    std::fs::rename(common::log_path(tmp.path()), &moved).unwrap();
    common::log_seqs(&dispatch, 50..120);
    guard.shutdown_blocking().unwrap();
    assert_eq!(seqs(&moved), (0..50).collect::<Vec<_>>());
    assert_eq!(
        seqs(&common::log_path(tmp.path())),
        (50..120).collect::<Vec<_>>()
    );
}

/// An active file name that is a symlink to a device (`/dev/full`) is refused by `build()`
/// with an error that says why, and nothing is written through it; once the name is free,
/// the sink starts and writes a regular file of its own. (A full disk that frees up is
/// injected in the library's own tests, `a_full_disk_that_recovers_loses_nothing`.)
#[cfg(target_os = "linux")]
#[test]
fn an_active_file_that_is_a_device_link_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = common::log_path(tmp.path());
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let error = common::builder(tmp.path()).build().unwrap_err();
    assert!(matches!(error, logsink::Error::Open { .. }), "{error:?}");
    assert!(error.to_string().contains("not a regular file"), "{error}");
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::remove_file(&path).unwrap();
    let (layer, guard) = common::sink(tmp.path());
    let dispatch = common::dispatch(layer);
    common::log_seqs(&dispatch, 0..300);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!((stats.events_written, stats.events_dropped), (300, 0));
    assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    assert_eq!(seqs(&path), (0..300).collect::<Vec<_>>());
}

#[cfg(target_os = "linux")]
const FSIZE_LIMIT: u64 = 64 * 1024;
#[cfg(target_os = "linux")]
const FSIZE_EVENTS: u64 = 5_000;

/// A file-size limit (`RLIMIT_FSIZE`, in a child process so that it binds nothing else):
/// writes past the limit fail with EFBIG. The child keeps running (no crash, no error through
/// `tracing`), shutdown gives up on the events it cannot write after retrying, counts them as
/// dropped and returns the error; the file holds only whole lines, every one before the limit.
#[cfg(target_os = "linux")]
#[test]
fn a_file_size_limit_is_reported_and_counted() {
    const TEST: &str = "a_file_size_limit_is_reported_and_counted";
    if let Some(dir) = common::child::folder(TEST) {
        return log_past_a_file_size_limit(&dir);
    }
    let run = common::child::ChildRun::new();
    let mut child = run.spawn(TEST);
    let status = run.wait(&mut child);
    let stdout = run.output();
    assert!(status.success(), "child failed: {stdout}");
    let report = stdout
        .lines()
        .find_map(|l| l.split("CHILD ").nth(1))
        .unwrap_or_else(|| panic!("no report from the child: {stdout}"));
    let numbers: Vec<u64> = report.split(' ').map(|n| n.parse().unwrap()).collect();
    let (written, dropped, errno) = (numbers[0], numbers[1], numbers[2]);
    assert_eq!(
        errno,
        libc::EFBIG as u64,
        "shutdown returns the write error"
    );
    assert!(dropped > 0 && written > 0);
    assert_eq!(written + dropped, FSIZE_EVENTS);
    let path = common::log_path(&run.dir);
    assert!(std::fs::metadata(&path).unwrap().len() <= FSIZE_LIMIT);
    // The limit cut the last write short: every whole line is there, in order; what was cut
    // is not counted as written.
    let text = std::fs::read_to_string(&path).unwrap();
    let whole: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    assert!(whole.len() as u64 >= written.saturating_sub(1));
    for (i, line) in whole.iter().enumerate() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["fields"]["seq"], i as u64);
    }
}

/// The child part of [`a_file_size_limit_is_reported_and_counted`]: sets the limit, logs
/// [`FSIZE_EVENTS`] events, shuts down, and prints `CHILD <written> <dropped> <errno>`.
#[cfg(target_os = "linux")]
fn log_past_a_file_size_limit(dir: &Path) {
    // SAFETY: plain libc calls on this process with valid arguments: ignore SIGXFSZ (so that
    // exceeding the limit fails the write with EFBIG instead of killing the process), and set
    // the file-size limit.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: FSIZE_LIMIT,
            rlim_max: FSIZE_LIMIT,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let (layer, guard) = common::sink(dir);
    let stats = guard.stats_handle();
    let dispatch = common::dispatch(layer);
    common::log_seqs(&dispatch, 0..FSIZE_EVENTS);
    let error = guard.shutdown_blocking().unwrap_err();
    let errno = error.io_error().and_then(|e| e.raw_os_error()).unwrap_or(0);
    let stats = stats.get();
    println!(
        "CHILD {} {} {errno}",
        stats.events_written, stats.events_dropped
    );
}
