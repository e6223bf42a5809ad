//! Ownership of the log folder: one sink per folder and name (a second one, in this process or
//! another, is refused and changes nothing; the lock is free again as soon as the holder shuts
//! down or dies), sinks with different names sharing a folder, files the sink did not make
//! (symlinks, FIFOs, folders under the names it uses) never written through or replaced, names
//! that never wrap, file modes, and names too long for the file system.
//!
//! Every test reads back every file it expects events in (`.gz` files with the system's
//! `gzip -dc`), parses every line as JSON and counts every event.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::child::{self, ChildRun, KillOnDrop};
use common::rotation_util;
use logsink::{Builder, Compression, Error, Period, SinkGuard, Stats};
use rotation_util::{Gunzip, ACTIVE, BASE};
use serde_json::Value;
use tracing::{info, Dispatch};

/// The lock file of the sink called [`BASE`].
const LOCK: &str = ".app.lock";

/// A builder on `dir` with the test's file name and a flush timer that never fires.
/// A sink whose shutdown compresses every waiting file however long a loaded debug build
/// takes (the tests read every rotated file back as `.gz`).
fn builder(dir: &Path) -> Builder {
    common::builder(dir).shutdown_timeout(Duration::from_secs(600))
}

/// Shuts the sink down and checks that it wrote `events` events and had no failure.
fn shut_down(guard: SinkGuard, events: u64) -> Stats {
    let stats = guard.shutdown_blocking().expect("shutdown");
    assert_clean(&stats, events);
    stats
}

fn assert_clean(stats: &Stats, events: u64) {
    assert_eq!(stats.events_written, events, "events_written");
    assert_eq!(stats.events_dropped, 0, "events_dropped");
    assert_eq!(
        stats.write_errors, 0,
        "write_errors: {:?}",
        stats.last_error
    );
}

/// A build that must be refused because the sink called [`BASE`] in `dir` is running in this
/// process: `Error::InUse` naming the lock file and this process.
fn assert_refused_here(builder: Builder, dir: &Path, what: &str) {
    let lock = dir.join(LOCK);
    let error = match builder.build() {
        Ok(_) => panic!("{what}: a second sink on {} was built", dir.display()),
        Err(e) => e,
    };
    match &error {
        Error::InUse { path, pid } => {
            assert_eq!(path, &lock, "{what}: the lock file in the error");
            assert_eq!(*pid, Some(std::process::id()), "{what}: the holder's pid");
        }
        other => panic!("{what}: expected Error::InUse, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&lock.display().to_string()),
        "{what}: the message does not name the lock file: {message}"
    );
    assert!(
        message.contains(&format!("by this process (pid {})", std::process::id())),
        "{what}: the message does not name this process: {message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Reading a folder back.

/// The parts of a rotated name of the sink called `base`: `(stamp, seq, form)`, the form being
/// `.log`, `.log.gz` or `.log.gz.tmp`; `None` for any other name.
fn parse_rotated<'a>(base: &str, name: &'a str) -> Option<(&'a str, u32, &'a str)> {
    let rest = name.strip_prefix(base)?.strip_prefix('.')?;
    let stamp = rest.get(..16)?;
    let b = stamp.as_bytes();
    let stamp_ok = b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z';
    let rest = rest.get(16..)?.strip_prefix('.')?;
    let seq = rest.get(..6)?;
    let form = rest.get(6..)?;
    let seq_ok = seq.bytes().all(|c| c.is_ascii_digit());
    let form_ok = [".log", ".log.gz", ".log.gz.tmp"].contains(&form);
    (stamp_ok && seq_ok && form_ok).then(|| (stamp, seq.parse().unwrap(), form))
}

/// The regular files in `dir` that are rotated files of `base` holding events (`.log` or
/// `.log.gz`), in name order (the order they were written in), then the active file if it is
/// there. Symlinks and anything else that is not a regular file are left out.
fn sink_files(dir: &Path, base: &str) -> Vec<String> {
    let mut names: Vec<String> = list_all(dir)
        .into_iter()
        .filter(|n| matches!(parse_rotated(base, n), Some((_, _, ".log" | ".log.gz"))))
        .filter(|n| is_regular(&dir.join(n)))
        .collect();
    names.sort();
    let active = format!("{base}.log");
    if is_regular(&dir.join(&active)) {
        names.push(active);
    }
    names
}

fn is_regular(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// Every name in `dir`, lock files included, sorted.
fn list_all(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The events of the files `names` in `dir`, in order: each file read whole (decompressed by
/// the system's gzip if it is a `.gz`), every line parsed.
fn events_of(dir: &Path, names: &[String]) -> Vec<Value> {
    names
        .iter()
        .flat_map(|name| {
            let bytes = rotation_util::content(&dir.join(name), Gunzip::System);
            common::json_lines(&bytes, name)
        })
        .collect()
}

/// What a folder holds, read without following symlinks: names to contents.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File(Vec<u8>),
    Symlink(PathBuf),
    Dir(BTreeMap<String, Node>),
    /// A FIFO, socket or device: its file type bits.
    Other(u32),
}

fn snapshot(dir: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for name in list_all(dir) {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).unwrap();
        let node = if meta.file_type().is_symlink() {
            Node::Symlink(fs::read_link(&path).unwrap())
        } else if meta.is_dir() {
            Node::Dir(snapshot(&path))
        } else if meta.is_file() {
            Node::File(fs::read(&path).unwrap())
        } else {
            Node::Other(file_type_bits(&meta))
        };
        out.insert(name, node);
    }
    out
}

#[cfg(unix)]
fn file_type_bits(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    meta.mode() & 0o170000
}

#[cfg(not(unix))]
fn file_type_bits(_meta: &fs::Metadata) -> u32 {
    0
}

/// Panics, naming the entries that differ, unless the two snapshots are equal.
fn assert_same(before: &BTreeMap<String, Node>, after: &BTreeMap<String, Node>, what: &str) {
    if before == after {
        return;
    }
    let mut diffs = Vec::new();
    for (name, node) in before {
        match after.get(name) {
            None => diffs.push(format!("{name} is gone")),
            Some(n) if n != node => diffs.push(format!("{name} changed")),
            Some(_) => {}
        }
    }
    for name in after.keys().filter(|n| !before.contains_key(*n)) {
        diffs.push(format!("{name} appeared"));
    }
    panic!("{what}: the folder changed: {}", diffs.join(", "));
}

/// The snapshot of `dir` restricted to names `keep` says yes to.
fn snapshot_of(dir: &Path, keep: impl Fn(&str) -> bool) -> BTreeMap<String, Node> {
    snapshot(dir).into_iter().filter(|(n, _)| keep(n)).collect()
}

/// `<dir>/<name>` written with `bytes`, its modification time set to `modified`.
fn write_file(dir: &Path, name: &str, bytes: &[u8], modified: Option<SystemTime>) {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    if let Some(t) = modified {
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
}

/// 2020-01-02T03:04:05Z: "long ago" for rotation by period and retention by age.
fn long_ago() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_577_934_245)
}

// ---------------------------------------------------------------------------------------------
// One sink per folder and name, in this process.

/// A second sink on the same folder and name, in the same process, is refused with
/// `Error::InUse` (the lock file's path, this process's pid, both in the message too) and
/// leaves the folder byte for byte as it was (names, file types, contents, the lock file
/// included) — also when its settings would have rotated the stale active file and deleted
/// the earlier run's files (`rotate_every(Day)`, `keep_files(1)`, `max_age(1 s)`), and when
/// it reaches the folder through a symlink. Further attempts while the first sink rotates and
/// compresses are refused too. The first sink then logs 3,000 events with a 2,000-byte size
/// limit and gzip: after shutdown every event of the earlier run and of this one is on disk
/// exactly once, in name order.
#[test]
fn a_second_sink_on_the_same_folder_and_name_is_refused_and_changes_nothing() {
    const N: u64 = 3_000;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    fs::create_dir(&dir).unwrap();
    // An earlier run's files: two compressed rotated files, an active file last written long
    // ago, and a file of someone else's.
    let old = [
        "app.20200101T000000Z.000000.log.gz",
        "app.20200101T000000Z.000001.log.gz",
    ];
    let gz0 = rotation_util::gzip_bytes(&rotation_util::old_lines(0..10));
    let gz1 = rotation_util::gzip_bytes(&rotation_util::old_lines(10..20));
    write_file(&dir, old[0], &gz0, Some(long_ago()));
    write_file(&dir, old[1], &gz1, Some(long_ago()));
    write_file(
        &dir,
        ACTIVE,
        &rotation_util::old_lines(20..30),
        Some(long_ago()),
    );
    write_file(&dir, "notes.txt", b"someone else's\n", None);
    #[cfg(unix)]
    let alias = tmp.path().join("alias");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&dir, &alias).unwrap();

    let (dispatch, guard) = common::start(builder(&dir).max_file_size(2_000));
    let before = snapshot(&dir);
    assert!(
        matches!(before.get(LOCK), Some(Node::File(_))),
        "the running sink has no lock file {LOCK}: {:?}",
        before.keys().collect::<Vec<_>>()
    );

    assert_refused_here(
        builder(&dir).max_file_size(2_000),
        &dir,
        "the same settings",
    );
    assert_same(&before, &snapshot(&dir), "after a refused build");
    assert_refused_here(
        builder(&dir)
            .rotate_every(Period::Day)
            .keep_files(1)
            .max_age(Duration::from_secs(1))
            .compression(Compression::None),
        &dir,
        "settings that would rotate and delete",
    );
    assert_same(&before, &snapshot(&dir), "after a refused rotating build");
    #[cfg(unix)]
    {
        assert_refused_here(
            builder(&alias).keep_files(1),
            &alias,
            "the folder through a symlink",
        );
        assert_same(
            &before,
            &snapshot(&dir),
            "after a refused build through a symlink",
        );
    }

    // While the first sink rotates and compresses, further attempts are refused too (a sink
    // let through here would delete files with keep_files(1), and events would be missing).
    for chunk in 0..3 {
        common::log_seqs(&dispatch, 30 + chunk * N / 3..30 + (chunk + 1) * N / 3);
        guard.flush_blocking().unwrap();
        assert_refused_here(
            builder(&dir).keep_files(1).max_file_size(100),
            &dir,
            "while the first sink rotates",
        );
    }
    let stats = shut_down(guard, N);
    assert!(stats.rotations >= 20, "only {} rotations", stats.rotations);
    assert_eq!(stats.files_compressed, stats.rotations);
    assert_eq!(stats.files_deleted, 0);

    assert_eq!(
        fs::read(dir.join("notes.txt")).unwrap(),
        b"someone else's\n"
    );
    assert_eq!(fs::read(dir.join(old[0])).unwrap(), gz0);
    assert_eq!(fs::read(dir.join(old[1])).unwrap(), gz1);
    let files = sink_files(&dir, BASE);
    assert!(
        files[..files.len() - 1]
            .iter()
            .all(|n| n.ends_with(".log.gz")),
        "a rotated file was left uncompressed: {files:?}"
    );
    let mut expected_names = files.clone();
    expected_names.extend(["notes.txt".to_owned(), LOCK.to_owned()]);
    expected_names.sort();
    assert_eq!(list_all(&dir), expected_names);
    common::assert_seqs(
        &common::seqs(&events_of(&dir, &files)),
        0..30 + N,
        "the earlier run's and this run's events, in name order",
    );
}

/// Four threads build a sink on the same folder at the same moment, 50 times over: each time
/// exactly one gets it, and the three others get `Error::InUse` naming the lock file and, if
/// the pid is known, this process: never the pid of the process that held the folder before
/// (a process that is gone, whose pid the lock file still holds at the start of each round,
/// as a killed holder leaves it). The winners' 500 events are all in the active file, and
/// the folder holds nothing else but the lock file.
#[test]
fn of_sinks_built_at_once_on_one_folder_exactly_one_wins() {
    const THREADS: usize = 4;
    const ROUNDS: u64 = 50;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    // The pid of a process that has ended.
    let mut gone = Command::new(std::env::current_exe().unwrap())
        .arg("--list")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let gone_pid = gone.id();
    assert!(gone.wait().unwrap().success());
    let mut refusals = Vec::new();
    for round in 0..ROUNDS {
        if round > 0 {
            // As a holder killed with `kill -9` leaves it.
            fs::write(dir.join(LOCK), format!("{gone_pid}\n")).unwrap();
        }
        let barrier = Barrier::new(THREADS);
        let results: Vec<_> = thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        builder(&dir).build()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut winners = Vec::new();
        for result in results {
            match result {
                Ok(sink) => winners.push(sink),
                Err(Error::InUse { path, pid }) => {
                    assert_eq!(path, dir.join(LOCK));
                    refusals.push(pid);
                }
                Err(other) => panic!("round {round}: expected Error::InUse, got {other:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: sinks built on one folder (the pids in the refusals: {:?})",
            &refusals[refusals.len() + winners.len() + 1 - THREADS..]
        );
        let (layer, guard) = winners.pop().unwrap();
        common::log_seqs(&common::dispatch(layer), round * 10..(round + 1) * 10);
        shut_down(guard, 10);
    }
    let this = Some(std::process::id());
    let wrong: Vec<_> = refusals
        .iter()
        .filter(|p| p.is_some() && **p != this)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} refusals named another process than the holder (this one, {this:?}): \
         {wrong:?}; the process that held the folder before and is gone: {gone_pid}",
        wrong.len(),
        refusals.len()
    );
    assert_eq!(list_all(&dir), [LOCK, ACTIVE]);
    common::assert_seqs(
        &common::seqs(&events_of(&dir, &sink_files(&dir, BASE))),
        0..ROUNDS * 10,
        "the winners' events",
    );
}

/// The lock is free again as soon as a sink has shut down, whichever way: after
/// `shutdown_blocking`, after the guard is dropped, after `shutdown().await`, after
/// `build_scoped()?.run_blocking(..)` and after `build_scoped()?.run(..).await`, the next sink
/// on the same folder and name builds on the first try (no retry). While each sink runs
/// (inside the scoped closure and future too), a second one is refused. The six sinks log 100
/// events each, with a 3,000-byte size limit and gzip: all 600 are on disk exactly once, in
/// name order.
#[test]
fn the_folder_is_free_again_as_soon_as_a_sink_has_shut_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    let sink = || builder(&dir).max_file_size(3_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut written = 0u64;

    // 1. shutdown_blocking.
    let (dispatch, guard) = common::start(sink());
    common::log_seqs(&dispatch, 0..100);
    assert_refused_here(sink(), &dir, "while the first sink runs");
    written += shut_down(guard, 100).events_written;

    // 2. The guard dropped.
    let (layer, guard) = sink()
        .build()
        .expect("a new sink right after shutdown_blocking");
    let dispatch = common::dispatch(layer);
    common::log_seqs(&dispatch, 100..200);
    assert_refused_here(sink(), &dir, "while the second sink runs");
    let stats = guard.stats_handle();
    drop(guard);
    assert_clean(&stats.get(), 100);
    written += stats.get().events_written;
    drop(dispatch);

    // 3. shutdown().await.
    let (layer, guard) = sink()
        .build()
        .expect("a new sink right after the guard was dropped");
    let dispatch = common::dispatch(layer);
    let stats = runtime.block_on(async {
        common::log_seqs(&dispatch, 200..300);
        assert_refused_here(sink(), &dir, "while the third sink runs");
        guard.shutdown().await.expect("shutdown().await")
    });
    assert_clean(&stats, 100);
    written += stats.events_written;

    // 4. build_scoped()?.run_blocking(..).
    let scoped = sink()
        .build_scoped()
        .expect("a new sink right after shutdown().await");
    let ((), stats) = scoped.run_blocking(|| {
        common::emit_seqs(300..350);
        assert_refused_here(sink(), &dir, "inside run_blocking");
        common::emit_seqs(350..400);
    });
    let stats = stats.expect("run_blocking's shutdown");
    assert_clean(&stats, 100);
    written += stats.events_written;

    // 5. build_scoped()?.run(..).await.
    let scoped = sink()
        .build_scoped()
        .expect("a new sink right after run_blocking");
    let ((), stats) = runtime.block_on(scoped.run(async {
        common::emit_seqs(400..450);
        assert_refused_here(sink(), &dir, "inside run");
        tokio::task::yield_now().await;
        common::emit_seqs(450..500);
    }));
    let stats = stats.expect("run's shutdown");
    assert_clean(&stats, 100);
    written += stats.events_written;

    // 6. And once more after run.
    let (layer, guard) = sink().build().expect("a new sink right after run");
    common::log_seqs(&common::dispatch(layer), 500..600);
    written += shut_down(guard, 100).events_written;
    assert_eq!(written, 600);

    let files = sink_files(&dir, BASE);
    assert!(files.len() > 6, "too few rotations: {files:?}");
    common::assert_seqs(
        &common::seqs(&events_of(&dir, &files)),
        0..600,
        "six sinks' events, in name order",
    );
}

/// What that child prints on stdout when it got through every round.
#[cfg(unix)]
const SPAWN_DONE: &str = "logsink ownership spawning child: done";

/// Rounds of [`the_folder_is_free_at_once_while_the_program_starts_processes`].
#[cfg(unix)]
const SPAWN_ROUNDS: u64 = 100;

/// The child part of [`the_folder_is_free_at_once_while_the_program_starts_processes`], on
/// the folder `dir`. While two threads run
/// `true` without pause, it shuts a sink down and builds the next at once, [`SPAWN_ROUNDS`]
/// times, each sink logging one event; it fails if any build is refused, and prints
/// [`SPAWN_DONE`] if none is.
#[cfg(unix)]
fn restart_sinks_while_starting_processes(dir: &Path) {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    let stop = AtomicBool::new(false);
    let (refused, spawned) = thread::scope(|s| {
        let spawners: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut spawned = 0u64;
                    while !stop.load(Relaxed) {
                        let status = Command::new("true").status().expect("running `true`");
                        assert!(status.success());
                        spawned += 1;
                    }
                    spawned
                })
            })
            .collect();
        let mut refused = Vec::new();
        let (mut dispatch, mut guard) = common::start(builder(dir));
        for round in 0..SPAWN_ROUNDS {
            common::log_seqs(&dispatch, round..round + 1);
            shut_down(guard, 1);
            if round + 1 == SPAWN_ROUNDS {
                break;
            }
            (dispatch, guard) = match builder(dir).build() {
                Ok((layer, guard)) => (common::dispatch(layer), guard),
                Err(e) => {
                    refused.push(format!("round {round}: {e}"));
                    // The rounds go on, so that the report says how often it happens: wait
                    // for the lock (with a deadline, so that a lock never freed fails).
                    let (layer, guard) =
                        common::wait_for("the lock to be freed", || builder(dir).build().ok());
                    (common::dispatch(layer), guard)
                }
            };
        }
        stop.store(true, Relaxed);
        let spawned: u64 = spawners.into_iter().map(|h| h.join().unwrap()).sum();
        (refused, spawned)
    });
    assert!(spawned > 0, "no process was started");
    assert!(
        refused.is_empty(),
        "{} of {} builds right after a shutdown were refused while {spawned} processes were \
         started; the first: {}",
        refused.len(),
        SPAWN_ROUNDS - 1,
        refused[0]
    );
    println!("{SPAWN_DONE}: {spawned} processes started");
}

/// The lock is free at once after a shutdown even while the program starts other processes.
/// A child process holds copies of its parent's file descriptors from its fork until its
/// exec (close-on-exec closes the lock file's only then), so a lock that a sink merely closes
/// at shutdown, without unlocking it, stays held for a while by a process started meanwhile,
/// and the next sink is refused ("locked by this process").
///
/// Run in a child process of its own (the test binary again, running only this test), so
/// that its stream of processes cannot hold the locks of the other tests running beside it:
/// see [`restart_sinks_while_starting_processes`]. The child must end successfully and say
/// it got through all 100 rounds; its 100 events are then all in the file, in order.
#[cfg(unix)]
#[test]
fn the_folder_is_free_at_once_while_the_program_starts_processes() {
    const TEST: &str = "the_folder_is_free_at_once_while_the_program_starts_processes";
    if let Some(dir) = child::folder(TEST) {
        return restart_sinks_while_starting_processes(&dir);
    }
    let run = ChildRun::new();
    let dir = &run.dir;
    let mut child = run.spawn(TEST);
    let status = run.wait(&mut child);
    let output = run.output();
    let said: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("panicked") || l.contains("refused"))
        .collect();
    assert!(
        status.success() && output.contains(SPAWN_DONE),
        "the child failed ({status}): {said:#?}"
    );
    common::assert_seqs(
        &common::seqs(&events_of(dir, &sink_files(dir, BASE))),
        0..SPAWN_ROUNDS,
        "one event of each sink",
    );
}

// ---------------------------------------------------------------------------------------------
// One sink per folder and name, across processes.

/// What the child prints on stdout once it holds the folder (followed by ` pid=<its pid>`).
const READY: &str = "logsink ownership child: ready";

/// Events the child logs (and flushes) before it says it is ready.
const CHILD_EVENTS: u64 = 25;

/// The child part of [`a_sink_in_another_process_holds_the_folder_until_it_is_killed`]:
/// builds a sink on `dir`, logs [`CHILD_EVENTS`] events and flushes them, prints [`READY`]
/// with its pid, and then waits on stdin (for ever: the parent kills it).
fn hold_the_folder_until_killed(dir: &Path) {
    let (dispatch, guard) = common::start(builder(dir));
    common::log_seqs(&dispatch, 0..CHILD_EVENTS);
    guard.flush_blocking().expect("child: flush");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY} pid={}", std::process::id()).unwrap();
    out.flush().unwrap();
    drop(out);
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    drop(guard);
}

/// A sink in another process holds the folder: the test binary runs itself as a child that
/// builds a sink on the folder, logs and flushes 25 events, prints "ready" and waits. Then
/// `build()` here is refused with `Error::InUse` carrying the child's pid (and the message
/// says "by process <pid>"), and changes nothing in the folder. After `kill -9` of the child
/// (the kernel drops its lock) `build()` succeeds on the first try; the new sink logs 25 more
/// events, and all 50 are in the file exactly once.
///
/// Also: the lock is not inherited by a child process. A sink of this process holds a second
/// folder while the child is started; once it shuts down, a new sink builds there at once
/// although the child is still alive.
#[test]
fn a_sink_in_another_process_holds_the_folder_until_it_is_killed() {
    const TEST: &str = "a_sink_in_another_process_holds_the_folder_until_it_is_killed";
    if let Some(dir) = child::folder(TEST) {
        return hold_the_folder_until_killed(&dir);
    }
    let run = ChildRun::new();
    let dir = run.dir.clone();
    let other_dir = run.tmp.path().join("other");
    let child_output = || run.output();

    // Held while the child is started (the lock's file must not leak into it).
    let (other_dispatch, other_guard) = common::start(builder(&other_dir));
    common::log_seqs(&other_dispatch, 0..5);

    let child = run
        .command(TEST)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the child");
    let mut child = KillOnDrop(child);
    let child_pid = child.0.id();

    // Read the child's stdout on a thread, so that waiting for "ready" has a deadline.
    let stdout = child.0.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let ready = loop {
        match lines.recv_timeout(common::HANG_GUARD) {
            Ok(line) if line.contains(READY) => break line,
            Ok(line) => printed.push(line),
            Err(e) => panic!(
                "the child never said it was ready ({e:?}); its stdout: {printed:?}; \
                 its stderr:\n{}",
                child_output()
            ),
        }
    };
    assert!(
        ready.ends_with(&format!("{READY} pid={child_pid}")),
        "the ready line is not the child's: {ready:?}"
    );

    // The child holds the folder.
    let before = snapshot(&dir);
    let error = match builder(&dir).keep_files(1).build() {
        Ok(_) => panic!("a sink was built on a folder another process holds"),
        Err(e) => e,
    };
    match &error {
        Error::InUse { path, pid } => {
            assert_eq!(path, &dir.join(LOCK));
            assert_eq!(*pid, Some(child_pid), "the holder's pid");
        }
        other => panic!("expected Error::InUse, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&format!("by process {child_pid}")),
        "the message does not name the child: {message}"
    );
    assert_same(
        &before,
        &snapshot(&dir),
        "after a build refused for another process",
    );

    // The sink that held the other folder while the child was started shuts down: its lock
    // is free although the child still runs.
    shut_down(other_guard, 5);
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the child ended by itself; its stderr:\n{}",
        child_output()
    );
    let (other_dispatch, other_guard) = match builder(&other_dir).build() {
        Ok((layer, guard)) => (common::dispatch(layer), guard),
        Err(e) => panic!("the lock of a sink that has shut down is held by the child: {e}"),
    };
    common::log_seqs(&other_dispatch, 5..10);
    shut_down(other_guard, 5);
    common::assert_seqs(
        &common::seqs(&events_of(&other_dir, &sink_files(&other_dir, BASE))),
        0..10,
        "the other folder",
    );

    // kill -9: the kernel releases the child's lock.
    child.0.kill().expect("kill -9 the child");
    let status = child.0.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the child was not killed: {status}"
        );
    }
    #[cfg(not(unix))]
    assert!(!status.success());

    let (dispatch, guard) = match builder(&dir).build() {
        Ok((layer, guard)) => (common::dispatch(layer), guard),
        Err(e) => panic!("build right after the holder was killed: {e}"),
    };
    common::log_seqs(&dispatch, CHILD_EVENTS..2 * CHILD_EVENTS);
    shut_down(guard, CHILD_EVENTS);
    let files = sink_files(&dir, BASE);
    assert_eq!(files, [ACTIVE], "no rotation was asked for");
    common::assert_seqs(
        &common::seqs(&events_of(&dir, &files)),
        0..2 * CHILD_EVENTS,
        "the child's events, then the new sink's",
    );
}

// ---------------------------------------------------------------------------------------------
// Sinks with different names in one folder.

/// The rotated files of `base` in `dir` as [`snapshot_of`] keeps them: names that parse as its
/// rotated names, and its active and lock files.
fn owned_by(base: &str) -> impl Fn(&str) -> bool + '_ {
    move |name: &str| {
        parse_rotated(base, name).is_some()
            || name == format!("{base}.log")
            || name == format!(".{base}.lock")
    }
}

/// Logs `{seq, sink}` events for `seqs`, `sink` being the sink's file name.
fn log_tagged(dispatch: &Dispatch, sink: &str, seqs: Range<u64>) {
    tracing::dispatcher::with_default(dispatch, || {
        for seq in seqs {
            info!(seq, sink, "shared folder");
        }
    });
}

/// Checks the files of `base` after a run with `keep_files(2)` that ended with event `end`:
/// exactly two rotated files, both compressed; every line of every file is `base`'s own; and
/// the two and the active file hold a run of events without gap or repeat ending at `end`.
fn assert_own_tail(dir: &Path, base: &str, end: u64) {
    let files = sink_files(dir, base);
    assert_eq!(
        files.len(),
        3,
        "{base}: two rotated files and the active one: {files:?}"
    );
    assert!(
        files[..2].iter().all(|n| n.ends_with(".log.gz")),
        "{files:?}"
    );
    let mut lines = Vec::new();
    for name in &files {
        let bytes = rotation_util::content(&dir.join(name), Gunzip::System);
        let file_lines = common::json_lines(&bytes, name);
        assert!(
            !file_lines.is_empty() || name.ends_with(".log"),
            "{name} is empty"
        );
        for line in &file_lines {
            assert_eq!(
                common::field_str(line, "sink"),
                base,
                "{name} holds another sink's event: {line}"
            );
        }
        lines.extend(file_lines);
    }
    let seqs = common::seqs(&lines);
    let first = seqs.first().copied().unwrap_or(end);
    common::assert_seqs(&seqs, first..end, &format!("{base}: the newest events"));
}

/// `app` and `app.x` share a folder (every name of `app.x`'s starts with `app.`).
///
/// Recovery and retention of one never touch the other's files: leftovers of an earlier run
/// of `app.x` (a rotated `.log`, a `.gz.tmp`, a `.log` beside its `.gz`) survive a run of
/// `app` with `keep_files(1)` byte for byte, while `app`'s own leftovers are recovered; then a
/// run of `app.x` recovers its own leftovers and leaves every file of `app` as it was.
///
/// Then both run at once, each on its own thread, with a 1,500-byte size limit, gzip and
/// `keep_files(2)`: each ends with exactly its two newest rotated files (compressed) and its
/// active file, every line in them is its own, they hold its newest events without gap or
/// repeat, and each deleted exactly its own surplus (`files_deleted == rotations - 2` over
/// both runs' files: a sink that deleted the other's files would count more).
#[test]
fn sinks_with_different_names_share_a_folder() {
    const X: &str = "app.x";
    const N: u64 = 1_500;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    fs::create_dir(&dir).unwrap();
    // app.x's leftovers.
    let x0 = "app.x.20200101T000000Z.000000.log";
    let x1 = "app.x.20200101T000000Z.000001.log";
    let x_old0 = rotation_util::old_lines(0..10);
    let x_old1 = rotation_util::old_lines(10..20);
    write_file(&dir, x0, &x_old0, Some(long_ago()));
    write_file(&dir, &format!("{x0}.gz.tmp"), b"half a gzip", None);
    write_file(&dir, x1, &x_old1, Some(long_ago()));
    write_file(
        &dir,
        &format!("{x1}.gz"),
        &rotation_util::gzip_bytes(&x_old1),
        Some(long_ago()),
    );
    // app's leftovers.
    let a0 = "app.20200101T000000Z.000000.log";
    write_file(&dir, a0, &rotation_util::old_lines(0..10), Some(long_ago()));
    write_file(&dir, &format!("{a0}.gz.tmp"), b"half a gzip", None);

    // app alone, keep_files(1): recovers its own leftovers, never app.x's.
    let x_before = snapshot_of(&dir, owned_by(X));
    assert_eq!(x_before.len(), 4);
    let (dispatch, guard) = common::start(builder(&dir).max_file_size(1_500).keep_files(1));
    log_tagged(&dispatch, BASE, 0..50);
    let stats = shut_down(guard, 50);
    assert!(stats.rotations >= 2);
    assert_same(
        &x_before,
        &snapshot_of(&dir, owned_by(X)),
        "app.x's files after a run of app",
    );
    assert!(!dir.join(a0).exists() && !dir.join(format!("{a0}.gz.tmp")).exists());

    // app.x alone: recovers its own leftovers, never touches app's files.
    let app_before = snapshot_of(&dir, |n| !owned_by(X)(n));
    let stats = shut_down(common::start(builder(&dir).file_name(X).keep_files(2)).1, 0);
    assert_eq!(stats.files_compressed, 1);
    assert_eq!(stats.files_deleted, 0);
    assert_same(
        &app_before,
        &snapshot_of(&dir, |n| !owned_by(X)(n)),
        "app's files after a run of app.x",
    );
    let x_files = sink_files(&dir, X);
    assert_eq!(
        x_files,
        [format!("{x0}.gz"), format!("{x1}.gz"), format!("{X}.log")]
    );
    common::assert_seqs(
        &common::seqs(&events_of(&dir, &x_files)),
        0..20,
        "app.x's recovered files",
    );

    // Both at once.
    let barrier = Arc::new(Barrier::new(2));
    let run = |base: &'static str, seqs: Range<u64>| {
        let barrier = barrier.clone();
        let dir = dir.clone();
        move || {
            let (dispatch, guard) = common::start(
                builder(&dir)
                    .file_name(base)
                    .max_file_size(1_500)
                    .keep_files(2),
            );
            barrier.wait();
            let n = seqs.end - seqs.start;
            log_tagged(&dispatch, base, seqs);
            shut_down(guard, n)
        }
    };
    let (app_stats, x_stats) = thread::scope(|s| {
        let app = s.spawn(run(BASE, 50..50 + N));
        let x = s.spawn(run(X, 0..N));
        (app.join().unwrap(), x.join().unwrap())
    });
    for (base, stats) in [(BASE, &app_stats), (X, &x_stats)] {
        assert!(
            stats.rotations >= 50,
            "{base}: {} rotations",
            stats.rotations
        );
        assert_eq!(
            stats.files_compressed + stats.files_deleted_uncompressed,
            stats.rotations,
            "{base}"
        );
    }
    // app had 1 rotated file left; app.x 2: each deletes its own down to 2.
    assert_eq!(app_stats.files_deleted, app_stats.rotations + 1 - 2, "app");
    assert_eq!(x_stats.files_deleted, x_stats.rotations + 2 - 2, "app.x");

    assert_own_tail(&dir, BASE, 50 + N);
    assert_own_tail(&dir, X, N);
    let mut expected: Vec<String> = sink_files(&dir, BASE);
    expected.extend(sink_files(&dir, X));
    expected.extend([LOCK.to_owned(), format!(".{X}.lock")]);
    expected.sort();
    assert_eq!(list_all(&dir), expected, "the shared folder");
}

/// Files of someone else's in the folder of [`recovery_never_takes_a_file_the_writer_hands_over`].
const CROWD: usize = 20_000;

/// Start-up recovery (on the janitor thread) and the writer's first rotations run at the same
/// time, and each rotated file must be handled once: a file the writer rotates and announces
/// while recovery still scans the folder must not also be taken up by recovery as "rotated,
/// never compressed" (it would then be compressed once, and its second compression would fail
/// and be counted as an error: "the rotated file was removed before it was compressed").
///
/// A folder shared with another program's 20,000 files makes the scan take long enough for
/// the writer to rotate during it. Three sinks in turn each log 200 events with
/// `max_file_size(1)` (199 rotations, the first within microseconds of `build()`). No run may
/// count an error, each compresses each of its rotated files exactly once, and every event is
/// on disk once, in name order; the other program's files are all still there, untouched.
#[test]
fn recovery_never_takes_a_file_the_writer_hands_over() {
    const RUNS: u64 = 3;
    const N: u64 = 200;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for i in 0..CROWD {
        fs::write(dir.join(format!("other-{i:06}.txt")), b"").unwrap();
    }
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let (dispatch, guard) = common::start(builder(dir).max_file_size(1));
        common::log_seqs(&dispatch, run * N..(run + 1) * N);
        runs.push(guard.shutdown_blocking().expect("shutdown"));
    }
    for (i, stats) in runs.iter().enumerate() {
        assert_eq!(stats.events_written, N, "run {i}");
        assert_eq!(
            stats.write_errors,
            0,
            "run {i}: errors in a clean run; the last: {:?}",
            stats.last_error.as_ref().map(|e| e.to_string())
        );
        // The first run rotates N - 1 times; each later one also rotates the active file the
        // run before left.
        let rotations = if i == 0 { N - 1 } else { N };
        assert_eq!(stats.rotations, rotations, "run {i}");
        assert_eq!(stats.files_compressed, rotations, "run {i}");
    }

    let files = sink_files(dir, BASE);
    assert_eq!(files.len() as u64, RUNS * N, "{} files", files.len());
    assert!(files[..files.len() - 1]
        .iter()
        .all(|n| n.ends_with(".log.gz")));
    common::assert_seqs(
        &common::seqs(&events_of(dir, &files)),
        0..RUNS * N,
        "every event",
    );
    let others: Vec<String> = list_all(dir)
        .into_iter()
        .filter(|n| n.starts_with("other-"))
        .collect();
    assert_eq!(others.len(), CROWD);
    for name in &others {
        let meta = fs::symlink_metadata(dir.join(name)).unwrap();
        assert!(meta.is_file() && meta.len() == 0, "{name} changed");
    }
    assert_eq!(list_all(dir).len(), CROWD + files.len() + 1, "stray files");
}

// ---------------------------------------------------------------------------------------------
// Names the sink will use, taken by things it did not make.

/// The far-future stamp every name of the symlink test uses.
#[cfg(unix)]
const FUTURE: &str = "29991231T235959Z";

#[cfg(unix)]
fn future_name(seq: u32, form: &str) -> String {
    format!("app.{FUTURE}.{seq:06}{form}")
}

/// Every name the sink will use next is taken, in some form, by something it did not make:
/// symlinks to a file outside the folder (under a `.log`, a `.log.gz` and a `.log.gz.tmp`
/// name), dangling symlinks (whose targets must not appear), a symlink to a folder outside, a
/// FIFO under a `.log.gz.tmp` name and a folder under a `.log.gz` name.
///
/// An earlier run's `app.29991231T235959Z.000000.log.gz` (regular, 10 old events) makes the
/// names deterministic: `...000001.log`, `...000002.log`, ... Thirty events with
/// `max_file_size(1)` (one event a file) make 29 rotations. A name taken in any of its forms
/// (`.log`: 1, 5, 8; `.log.gz` or `.log.gz.tmp`: 1, 2, 3, 4, 6, 7) is skipped, never replaced:
/// the rotations are named 9 ..= 37, and every one of them is compressed, without an error.
///
/// Afterwards the outside file is byte for byte as it was and the outside folder holds
/// nothing new, every planted entry is still what it was (same symlink targets, still a FIFO,
/// still an empty folder), the folder holds exactly the expected names, and every event (the
/// 10 old and the 30 new) is on disk exactly once, in name order, reading the plain `.log`s
/// where compression was refused.
#[cfg(unix)]
#[test]
fn names_taken_by_symlinks_and_other_files_are_skipped_never_followed() {
    use std::os::unix::fs::symlink;

    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    fs::create_dir(&dir).unwrap();
    let secret = outside.path().join("secret");
    let secret_bytes = b"outside the log folder: must never change\n".to_vec();
    fs::write(&secret, &secret_bytes).unwrap();
    fs::create_dir(outside.path().join("subdir")).unwrap();
    let outside_before = snapshot(outside.path());
    let absent = |name: &str| outside.path().join(name);

    let old = rotation_util::gzip_bytes(&rotation_util::old_lines(0..10));
    write_file(&dir, &future_name(0, ".log.gz"), &old, None);
    let links: Vec<(String, PathBuf)> = vec![
        (future_name(1, ".log"), secret.clone()),
        (future_name(1, ".log.gz"), secret.clone()),
        (future_name(1, ".log.gz.tmp"), secret.clone()),
        (future_name(2, ".log.gz.tmp"), secret.clone()),
        (future_name(3, ".log.gz"), secret.clone()),
        (future_name(4, ".log.gz.tmp"), absent("absent-4")),
        (future_name(5, ".log"), absent("absent-5")),
        (future_name(8, ".log"), outside.path().join("subdir")),
    ];
    for (name, target) in &links {
        symlink(target, dir.join(name)).unwrap();
    }
    let fifo = future_name(6, ".log.gz.tmp");
    let c_path =
        std::ffi::CString::new(dir.join(&fifo).into_os_string().into_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0, "mkfifo");
    let folder = future_name(7, ".log.gz");
    fs::create_dir(dir.join(&folder)).unwrap();
    let planted = snapshot(&dir);

    let (dispatch, guard) = common::run_or_fail_on_hang("build", {
        let dir = dir.clone();
        move || common::start(builder(&dir).max_file_size(1))
    });
    common::log_seqs(&dispatch, 10..40);
    let stats = common::run_or_fail_on_hang("shutdown", move || {
        guard.shutdown_blocking().expect("shutdown")
    });
    assert_eq!(stats.events_written, 30);
    assert_eq!(stats.events_dropped, 0);
    assert_eq!(stats.rotations, 29);
    assert_eq!(stats.files_compressed, 29, "{:?}", stats.last_error);
    assert_eq!(stats.write_errors, 0, "{:?}", stats.last_error);

    assert_same(
        &outside_before,
        &snapshot(outside.path()),
        "the outside folder",
    );
    assert_eq!(fs::read(&secret).unwrap(), secret_bytes);
    let now = snapshot(&dir);
    for (name, node) in &planted {
        assert_eq!(
            now.get(name),
            Some(node),
            "{name} is no longer what was planted"
        );
    }

    let used: Vec<u32> = (9..=37).collect();
    assert_eq!(used.len(), 29);
    let mut ours: Vec<String> = used.iter().map(|&s| future_name(s, ".log.gz")).collect();
    let mut expected: Vec<String> = planted.keys().cloned().collect();
    expected.extend(ours.iter().cloned());
    expected.extend([LOCK.to_owned(), ACTIVE.to_owned()]);
    expected.sort();
    expected.dedup();
    assert_eq!(list_all(&dir), expected, "the folder");

    let mut files = vec![future_name(0, ".log.gz")];
    files.append(&mut ours);
    files.push(ACTIVE.to_owned());
    assert_eq!(files, sink_files(&dir, BASE));
    let lines = events_of(&dir, &files);
    common::assert_seqs(&common::seqs(&lines), 0..40, "every event, in name order");
}

/// The outcome of `build()` in a folder whose active file is something the sink did not make:
/// it must be refused with `Error::Open` on the active file, saying "not a regular file".
#[cfg(unix)]
fn assert_active_refused(dir: &Path, what: &str) {
    let dir_owned = dir.to_path_buf();
    let result = common::run_or_fail_on_hang(what, move || builder(&dir_owned).build().map(|_| ()));
    let error = match result {
        Ok(()) => panic!("{what}: build() accepted it"),
        Err(error) => error,
    };
    let Error::Open { path, .. } = &error else {
        panic!("{what}: expected Error::Open, got {error:?}");
    };
    assert_eq!(path, &dir.join(ACTIVE), "{what}: the path in the error");
    assert!(
        error.to_string().contains("not a regular file"),
        "{what}: the message does not say why: {error}"
    );
}

/// An active file that is not a regular file is refused by `build()` with `Error::Open`
/// ("not a regular file"), promptly (under a hang guard: a FIFO must not block the build),
/// and the thing itself and what it points to are left as they were: a symlink to a file
/// outside the folder (its bytes unchanged), a dangling symlink (its target is not created),
/// a FIFO, and a Unix socket. After each refusal the lock is free: with the thing removed, a
/// sink builds at once, and its 10 events are in a fresh active file.
#[cfg(unix)]
#[test]
fn an_active_file_that_is_not_a_regular_file_is_refused() {
    use std::os::unix::fs::{symlink, FileTypeExt};

    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    let secret_bytes = b"outside the log folder: must never change\n".to_vec();
    fs::write(&secret, &secret_bytes).unwrap();

    type Plant = fn(&Path, &Path);
    let cases: [(&str, Plant); 4] = [
        ("a symlink to a file outside", |active, secret| {
            symlink(secret, active).unwrap()
        }),
        ("a dangling symlink", |active, secret| {
            symlink(secret.with_file_name("absent"), active).unwrap()
        }),
        ("a FIFO", |active, _| {
            let c = std::ffi::CString::new(active.as_os_str().as_encoded_bytes()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
        }),
        ("a Unix socket", |active, _| {
            // The listener is dropped at once; the socket file stays.
            std::os::unix::net::UnixListener::bind(active).unwrap();
        }),
    ];
    for (what, plant) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        plant(&dir.join(ACTIVE), &secret);
        let before = snapshot_of(dir, |n| n != LOCK);
        assert_active_refused(dir, what);
        assert_same(&before, &snapshot_of(dir, |n| n != LOCK), what);
        assert_eq!(fs::read(&secret).unwrap(), secret_bytes, "{what}");
        assert_eq!(
            list_all(outside.path()),
            ["secret"],
            "{what}: something appeared outside"
        );
        let meta = fs::symlink_metadata(dir.join(ACTIVE)).unwrap();
        let kind = meta.file_type();
        assert!(
            kind.is_symlink() || kind.is_fifo() || kind.is_socket(),
            "{what}: replaced"
        );

        fs::remove_file(dir.join(ACTIVE)).unwrap();
        let (dispatch, guard) = match builder(dir).build() {
            Ok((layer, guard)) => (common::dispatch(layer), guard),
            Err(e) => panic!("{what}: build after the refusal: {e}"),
        };
        common::log_seqs(&dispatch, 0..10);
        shut_down(guard, 10);
        assert!(is_regular(&dir.join(ACTIVE)), "{what}");
        common::assert_seqs(
            &common::seqs(&events_of(dir, &[ACTIVE.to_owned()])),
            0..10,
            what,
        );
    }
    assert_eq!(fs::read(&secret).unwrap(), secret_bytes);
}

/// A folder named like the active file (`app.log/`, with a file inside) is refused by
/// `build()` like every other non-regular file: `Error::Open` on the active file, saying "not
/// a regular file"; the folder and its content are left as they were.
#[test]
fn a_folder_named_like_the_active_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir(dir.join(ACTIVE)).unwrap();
    fs::write(dir.join(ACTIVE).join("inside"), b"keep me").unwrap();
    let before = snapshot_of(dir, |n| n != LOCK);
    let result = common::run_or_fail_on_hang("build", {
        let dir = dir.to_path_buf();
        move || builder(&dir).build().map(|_| ())
    });
    assert_same(&before, &snapshot_of(dir, |n| n != LOCK), "app.log/");
    let error = match result {
        Ok(()) => panic!("build() accepted a folder as its active file"),
        Err(error) => error,
    };
    let Error::Open { path, .. } = &error else {
        panic!("expected Error::Open, got {error:?}");
    };
    assert_eq!(path, &dir.join(ACTIVE));
    assert!(
        error.to_string().contains("not a regular file"),
        "the message does not say it is not a regular file: {error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Names never wrap.

/// The last name a rotated file can have.
const END_OF_TIME: &str = "app.99991231T235959Z.999999.log.gz";

/// Seconds since the epoch of a rotated name's stamp (`YYYYMMDDTHHMMSSZ`).
fn stamp_seconds(stamp: &str) -> i64 {
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}.000000Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    common::check_timestamp(&rfc3339).unwrap() / 1_000_000
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An earlier run left `app.99991231T235959Z.999999.log.gz`, the last name there is (10 old
/// events). Three runs of 500 events each (2,000-byte size limit, gzip, the sink restarted in
/// between, and started once more at the end without events) name their files from the
/// clock: every other rotated name's stamp is a time between the test's start and end (so no
/// name starts with `app.1970`, and all sort before the planted one). Nothing is overwritten
/// or deleted: the planted file is byte for byte as it was, no run counts an error, every
/// rotated file is compressed, and exactly the 1,500 new events are on disk, once each, in
/// name order (the names of each run sort after those of the run before).
#[test]
fn after_the_last_name_there_is_names_restart_from_the_clock_and_overwrite_nothing() {
    const RUNS: u64 = 3;
    const PER_RUN: u64 = 500;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let planted = rotation_util::gzip_bytes(&rotation_util::old_lines(10_000..10_010));
    write_file(dir, END_OF_TIME, &planted, None);

    let t0 = unix_now();
    let mut runs = Vec::new();
    // A fourth start logs nothing: it recovers what the third run left (a crash-safe sink
    // may complete or redo its own work there, never lose events).
    for run in 0..=RUNS {
        let (dispatch, guard) = common::start(builder(dir).max_file_size(2_000));
        if run < RUNS {
            common::log_seqs(&dispatch, run * PER_RUN..(run + 1) * PER_RUN);
        }
        let stats = guard.shutdown_blocking().expect("shutdown");
        runs.push(stats);
    }
    let t1 = unix_now();
    let errors: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "run {i}: {} errors, last {:?}",
                s.write_errors, s.last_error
            )
        })
        .collect();

    assert_eq!(fs::read(dir.join(END_OF_TIME)).unwrap(), planted);
    // The planted file sorts last among the rotated ones; ours are the rest, then the active
    // file.
    let mut ours = sink_files(dir, BASE);
    ours.retain(|n| n != END_OF_TIME);
    for name in &ours[..ours.len() - 1] {
        assert!(!name.starts_with("app.1970"), "{name} wrapped to 1970");
        assert!(name.as_str() < END_OF_TIME, "{name}");
        let (stamp, _, _) = parse_rotated(BASE, name).unwrap();
        let secs = stamp_seconds(stamp);
        assert!(
            (t0 - 1..=t1 + 1).contains(&secs),
            "{name}: stamp {secs} is not a time of this test ({t0}..={t1})"
        );
    }
    common::assert_seqs(
        &common::seqs(&events_of(dir, &ours)),
        0..RUNS * PER_RUN,
        &format!("three runs' events in name order ({})", errors.join("; ")),
    );
    for (i, stats) in runs.iter().enumerate() {
        if i < RUNS as usize {
            assert_eq!(stats.events_written, PER_RUN, "run {i}");
            assert!(
                stats.rotations >= 10,
                "run {i}: {} rotations",
                stats.rotations
            );
        } else {
            assert_eq!(stats.events_written, 0, "the fourth start");
        }
        assert_eq!(stats.write_errors, 0, "{}", errors[i]);
    }
    assert!(
        rotation_util::rotated(dir, ".log").is_empty(),
        "rotated files left uncompressed: {:?}",
        rotation_util::rotated(dir, ".log")
    );
    common::assert_seqs(
        &common::seqs(&events_of(dir, &[END_OF_TIME.to_owned()])),
        10_000..10_010,
        "the planted file",
    );
}

/// Retention by count with the last possible name planted: the planted file sorts as the
/// newest rotated file, so `keep_files(3)` keeps it (byte for byte) and the two newest of the
/// sink's own; the sink deletes exactly `rotations - 2` of its own files. The two kept and the
/// active file hold the newest events without gap, ending with the last one.
#[test]
fn retention_counts_the_last_name_there_is_as_the_newest() {
    const N: u64 = 500;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let planted = rotation_util::gzip_bytes(&rotation_util::old_lines(10_000..10_010));
    write_file(dir, END_OF_TIME, &planted, None);

    let (dispatch, guard) = common::start(builder(dir).max_file_size(2_000).keep_files(3));
    common::log_seqs(&dispatch, 0..N);
    let stats = shut_down(guard, N);
    assert!(stats.rotations >= 10, "{} rotations", stats.rotations);
    // Each rotated file was compressed, or deleted by retention before its turn (compression
    // lags a debug build rotating every few events).
    assert_eq!(
        stats.files_compressed + stats.files_deleted_uncompressed,
        stats.rotations
    );
    assert_eq!(stats.files_deleted, stats.rotations - 2);

    assert_eq!(fs::read(dir.join(END_OF_TIME)).unwrap(), planted);
    let mut files = sink_files(dir, BASE);
    assert_eq!(files.len(), 4, "{files:?}");
    assert_eq!(files[2], END_OF_TIME, "{files:?}");
    files.remove(2);
    assert!(
        files[..2].iter().all(|n| n.ends_with(".log.gz")),
        "{files:?}"
    );
    let seqs = common::seqs(&events_of(dir, &files));
    let first = seqs.first().copied().unwrap_or(N);
    assert!(first > 0, "nothing was deleted");
    common::assert_seqs(&seqs, first..N, "the newest events");
}

// ---------------------------------------------------------------------------------------------
// Modes.

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The files of the sink in `dir` (rotated, compressed or not, and the active file) with
/// their modes.
#[cfg(unix)]
fn modes(dir: &Path) -> Vec<(String, u32)> {
    sink_files(dir, BASE)
        .into_iter()
        .map(|n| {
            let m = mode(&dir.join(&n));
            (n, m)
        })
        .collect()
}

/// `file_mode` sets the mode of the first active file exactly (not reduced by the umask: `0o666`
/// too), and every later file keeps it: the active files that replace it after each rotation,
/// the rotated files and their `.gz`. Checked for `0o600` and `0o666`, with 50 rotations, all
/// events read back.
#[cfg(unix)]
#[test]
fn file_mode_is_the_mode_of_every_file() {
    for wanted in [0o600, 0o666] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (dispatch, guard) = common::start(builder(dir).max_file_size(1_000).file_mode(wanted));
        common::log_seqs(&dispatch, 0..500);
        let stats = shut_down(guard, 500);
        assert!(stats.rotations >= 50);
        assert_eq!(stats.files_compressed, stats.rotations);
        let modes = modes(dir);
        assert_eq!(modes.len() as u64, stats.rotations + 1);
        for (name, m) in &modes {
            assert_eq!(*m, wanted, "{name}: mode {m:o}, asked for {wanted:o}");
        }
        common::assert_seqs(
            &common::seqs(&events_of(dir, &sink_files(dir, BASE))),
            0..500,
            "events",
        );
    }
}

/// The operator's mode is kept: an active file left by an earlier run and `chmod`ed to `0600`
/// gives every later file `0600` (rotated, compressed, new active files) without any
/// `file_mode`; a `chmod 0604` of the active file while the sink runs applies to that file and
/// every one after it, while the files rotated before keep `0600`.
#[cfg(unix)]
#[test]
fn the_active_files_mode_passes_to_every_file_after_it() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_file(dir, ACTIVE, &rotation_util::old_lines(0..10), None);
    fs::set_permissions(dir.join(ACTIVE), fs::Permissions::from_mode(0o600)).unwrap();

    let (dispatch, guard) = common::start(builder(dir).max_file_size(1_000));
    common::log_seqs(&dispatch, 10..200);
    guard.flush_blocking().unwrap();
    let rotated_before: Vec<(String, u32)> = rotation_util::list(dir)
        .iter()
        .filter_map(|n| parse_rotated(BASE, n).map(|(stamp, seq, _)| (stamp.to_owned(), seq)))
        .collect();
    assert!(rotated_before.len() >= 10);
    fs::set_permissions(dir.join(ACTIVE), fs::Permissions::from_mode(0o604)).unwrap();
    common::log_seqs(&dispatch, 200..400);
    let stats = shut_down(guard, 390);
    assert_eq!(stats.files_compressed, stats.rotations);

    let modes = modes(dir);
    assert_eq!(modes.len() as u64, stats.rotations + 1);
    let mut after_chmod = 0;
    for (name, m) in &modes {
        let before = parse_rotated(BASE, name)
            .is_some_and(|(stamp, seq, _)| rotated_before.contains(&(stamp.to_owned(), seq)));
        let wanted = if before { 0o600 } else { 0o604 };
        after_chmod += u32::from(!before);
        assert_eq!(*m, wanted, "{name}: mode {m:o}, expected {wanted:o}");
    }
    assert!(after_chmod >= 10, "{modes:?}");
    common::assert_seqs(
        &common::seqs(&events_of(dir, &sink_files(dir, BASE))),
        0..400,
        "events",
    );
}

/// The process's umask, read from `/proc/self/status` (never changed: tests run in parallel).
#[cfg(target_os = "linux")]
fn umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
}

/// Without `file_mode`, files are created `0644` less the umask, and every later file has the
/// same mode.
#[cfg(target_os = "linux")]
#[test]
fn default_mode_is_0644_less_the_umask() {
    let Some(umask) = umask() else {
        eprintln!("no Umask in /proc/self/status: not checked");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (dispatch, guard) = common::start(builder(dir).max_file_size(1_000));
    common::log_seqs(&dispatch, 0..200);
    let stats = shut_down(guard, 200);
    assert!(stats.rotations >= 10);
    let modes = modes(dir);
    assert_eq!(modes.len() as u64, stats.rotations + 1);
    for (name, m) in &modes {
        assert_eq!(
            *m,
            0o644 & !umask,
            "{name}: mode {m:o} with umask {umask:o}"
        );
    }
    common::assert_seqs(
        &common::seqs(&events_of(dir, &sink_files(dir, BASE))),
        0..200,
        "events",
    );
}

// ---------------------------------------------------------------------------------------------
// Long names.

/// The longest file name the file system of `dir` takes.
#[cfg(unix)]
fn name_max(dir: &Path) -> usize {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let n = unsafe { libc::pathconf(c.as_ptr(), libc::_PC_NAME_MAX) };
    assert!(n > 0, "pathconf(_PC_NAME_MAX) failed");
    n as usize
}

/// A file name one byte longer than the folder allows (its longest derived name,
/// `<name>.<stamp>.<seq>.log.gz.tmp`, 35 bytes more, would not fit) is refused with
/// `Error::FileNameTooLong { longest }`, `longest` being the limit less 35 (220 on ext4 and
/// tmpfs), and no log file is made (only the lock file, which `build()` takes first). A name
/// of exactly `longest` bytes works: 100 events with a 600-byte size limit rotate and
/// compress (names of 255 bytes on the way), and every event is read back.
#[cfg(unix)]
#[test]
fn the_longest_file_name_works_and_one_byte_more_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let max = name_max(dir);
    let longest = max - 35;
    if max == 255 {
        assert_eq!(longest, 220);
    }
    let too_long = "n".repeat(longest + 1);
    match logsink::LogSink::builder()
        .directory(dir)
        .file_name(&too_long)
        .build()
    {
        Ok(_) => panic!("a {}-byte file name was accepted", longest + 1),
        Err(Error::FileNameTooLong {
            file_name,
            longest: l,
        }) => {
            assert_eq!(file_name, too_long);
            assert_eq!(l, longest);
        }
        Err(other) => panic!("expected Error::FileNameTooLong, got {other:?}"),
    }
    assert!(
        rotation_util::list(dir).is_empty(),
        "files were made: {:?}",
        rotation_util::list(dir)
    );

    let base = "n".repeat(longest);
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir)
        .file_name(&base)
        .flush_interval(common::HOUR)
        .max_file_size(600)
        .build()
        .expect("a file name of exactly the longest length");
    common::log_seqs(&common::dispatch(layer), 0..100);
    let stats = shut_down(guard, 100);
    assert!(stats.rotations >= 10, "{} rotations", stats.rotations);
    assert_eq!(stats.files_compressed, stats.rotations);
    let files = sink_files(dir, &base);
    assert_eq!(files.len() as u64, stats.rotations + 1, "{files:?}");
    for name in &files[..files.len() - 1] {
        assert!(name.ends_with(".log.gz"), "{name}");
        assert_eq!(name.len(), max - ".tmp".len(), "{name}");
    }
    common::assert_seqs(&common::seqs(&events_of(dir, &files)), 0..100, "events");

    // Recovery and retention look for every form of a rotated name, also the `.zst` forms
    // that are one byte too long here: nothing can have them, and looking is no error.
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir)
        .file_name(&base)
        .flush_interval(common::HOUR)
        .max_file_size(600)
        .keep_files(2)
        .build()
        .expect("the longest file name again, with retention");
    common::log_seqs(&common::dispatch(layer), 100..150);
    let stats = shut_down(guard, 50);
    assert!(stats.files_deleted >= 10, "{stats:?}");
    let files = sink_files(dir, &base);
    assert_eq!(files.len(), 3, "{files:?}");
    let seqs = common::seqs(&events_of(dir, &files));
    common::assert_seqs(&seqs, seqs[0]..150, "events kept");
}

/// Every file name too long for the folder is refused as too long, however long:
/// `Error::FileNameTooLong { longest }`, also for names so long that the lock file's name
/// (`.<name>.lock`, 6 bytes more) or the active file's name would not fit.
#[cfg(unix)]
#[test]
fn much_too_long_file_names_are_refused_as_too_long() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let max = name_max(dir);
    let longest = max - 35;
    for len in [longest + 1, max - 6, max - 5, max - 4, max, max + 1, 1_000] {
        let name = "n".repeat(len);
        match logsink::LogSink::builder()
            .directory(dir)
            .file_name(&name)
            .build()
        {
            Ok(_) => panic!("a {len}-byte file name was accepted"),
            Err(Error::FileNameTooLong { longest: l, .. }) => {
                assert_eq!(l, longest, "{len} bytes")
            }
            Err(other) => panic!("a {len}-byte file name: expected FileNameTooLong, got {other}"),
        }
    }
}
