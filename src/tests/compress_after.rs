//! `compress_after`: rotated files stay plain for the delay, measured on the injected
//! [`MockClock`] from the rotation (or, at start-up, from the file's last write), then are
//! compressed; retention bounds the folder meanwhile; shutdown leaves them plain without
//! waiting.
//!
//! No test sleeps for the delay: the mock clock wakes the janitor when a test moves it, and
//! a test that must know the janitor has judged the files at some time waits (bounded) until
//! the janitor reports a full turn that began at that time or later, with every rotation
//! taken in ([`janitor_saw`]).

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::clock_rotation::{
    builder, emit, log_at, nov24, read_logs, rotated, run_sink, LogFile, HOUR, SECOND,
};
use tracing_subscriber::prelude::*;

use crate::caller::clock::{Clock, MockClock};
use crate::faults::Faults;
use crate::{Compression, SinkGuard};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn hours(n: u64) -> Duration {
    HOUR * u32::try_from(n).unwrap()
}

const GZIP: Compression = Compression::Gzip { level: 1 };

/// Waits (bounded, in short steps) until `condition` holds.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the janitor has made a full turn that began with the clock at `t` or later and
/// with every rotation so far taken in: from then on its gauge and the folder show what it
/// decided at that time. The janitor reports its turns through the sink's failure hook,
/// `faults`.
fn janitor_saw(faults: &Faults, guard: &SinkGuard, t: SystemTime) {
    guard.flush_blocking().unwrap();
    let rotations = guard.stats().rotations;
    wait_for("the janitor to see the clock", || {
        faults
            .janitor_seen
            .lock()
            .unwrap()
            .is_some_and(|(at, taken)| at >= t && taken >= rotations)
    });
}

/// The rotated files in the folder, plain and compressed, in name order.
fn rotated_files(dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("app.2"))
        .collect();
    names.sort();
    let (gz, plain) = names.into_iter().partition(|n| n.ends_with(".gz"));
    (plain, gz)
}

fn gz(name: &str) -> String {
    format!("{name}.gz")
}

/// Every file read back (`.gz` decompressed, every line parsed): `(name, seqs)` in name order.
fn contents(dir: &Path) -> Vec<(String, Vec<u64>)> {
    read_logs(dir)
        .iter()
        .map(|f: &LogFile| (f.name.clone(), f.seqs()))
        .collect()
}

/// Each rotated file stays plain until its own delay, counted from its rotation, has passed
/// (not a microsecond less), and is compressed then, oldest first as each comes due; files
/// waiting out their delay are not counted in `compress_backlog`; every event is in its file
/// once.
#[test]
fn a_rotated_file_stays_plain_until_its_delay_has_passed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t0 = nov24(12, 0, 0);
    let delay = 10 * SECOND;
    let clock = MockClock::new(t0);
    let at = |n: u64| t0 + secs(n);
    let (a, b, c) = (rotated(at(0), 0), rotated(at(1), 0), rotated(at(2), 0));
    let just_before = |t: SystemTime| t - Duration::from_micros(1);
    let faults = Arc::new(Faults::default());
    let stats = run_sink(
        builder(dir)
            .faults(faults.clone())
            .max_file_size(1)
            .compression(GZIP)
            .compress_after(delay),
        &clock,
        |guard| {
            // One event per file: file k rotates at t0 + k + 1 s, when event k + 1 comes.
            for seq in 0..4 {
                log_at(guard, &clock, at(seq), seq);
            }
            let plain_only = |want: &[&String], t: SystemTime| {
                janitor_saw(&faults, guard, t);
                let (plain, gzipped) = rotated_files(dir);
                let want_gz: Vec<String> = [&a, &b, &c]
                    .into_iter()
                    .filter(|n| !want.contains(n))
                    .map(|n| gz(n))
                    .collect();
                assert_eq!(plain, want.iter().map(|n| (*n).clone()).collect::<Vec<_>>());
                assert_eq!(gzipped, want_gz);
                assert_eq!(guard.stats().compress_backlog, 0, "nothing due");
            };
            plain_only(&[&a, &b, &c], at(3));
            // File a rotated at t0 + 1 s: due at t0 + 11 s.
            clock.set(just_before(at(11)));
            plain_only(&[&a, &b, &c], just_before(at(11)));
            clock.set(at(11));
            wait_for("a compressed", || guard.stats().files_compressed == 1);
            clock.set(just_before(at(12)));
            plain_only(&[&b, &c], just_before(at(12)));
            clock.set(at(12));
            wait_for("b compressed", || guard.stats().files_compressed == 2);
            clock.set(just_before(at(13)));
            plain_only(&[&c], just_before(at(13)));
            clock.set(at(13));
            wait_for("c compressed", || guard.stats().files_compressed == 3);
        },
    );
    assert_eq!(stats.rotations, 3);
    assert_eq!(stats.files_compressed, 3);
    assert_eq!(stats.files_deleted, 0);
    assert_eq!(
        contents(dir),
        [
            (gz(&a), vec![0]),
            (gz(&b), vec![1]),
            (gz(&c), vec![2]),
            ("app.log".to_owned(), vec![3])
        ]
    );
}

/// Files that come due together are compressed newest first, as without a delay: at every
/// moment the compressed files are the newest ones.
#[test]
fn files_due_together_are_compressed_newest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t0 = nov24(12, 0, 0);
    let clock = MockClock::new(t0);
    let files = 6;
    let faults = Arc::new(Faults::default());
    let stats = run_sink(
        builder(dir)
            .faults(faults.clone())
            .max_file_size(1)
            .compression(GZIP)
            .compress_after(HOUR),
        &clock,
        |guard| {
            for seq in 0..=files {
                log_at(guard, &clock, t0 + secs(seq), seq);
            }
            janitor_saw(&faults, guard, t0 + secs(files));
            assert_eq!(rotated_files(dir).1.len(), 0);
            clock.set(t0 + 2 * HOUR);
            wait_for("all compressed", || {
                let (plain, gzipped) = rotated_files(dir);
                // Plain names sort before compressed ones of later files: no plain file may
                // be newer than a compressed one.
                let newest_plain = plain.last().map(|n| n.as_str()).unwrap_or("");
                let oldest_gz = gzipped.first().map(|n| n.as_str()).unwrap_or("~");
                assert!(newest_plain < oldest_gz, "{plain:?} {gzipped:?}");
                gzipped.len() == files as usize
            });
        },
    );
    assert_eq!(stats.files_compressed, files);
    let seqs: Vec<u64> = contents(dir).into_iter().flat_map(|(_, s)| s).collect();
    assert_eq!(seqs, (0..=files).collect::<Vec<_>>());
}

/// Files waiting out the delay count for retention: with `keep_files(2)` and a delay that never
/// ends (`Duration::MAX`, which must not overflow), the folder never holds more than
/// `keep_files` plus the two newest waiting (plus one for the moment between a rotation and
/// its retention), the oldest go plain (counted in `files_deleted_uncompressed`), shutdown
/// returns at once, and the newest events are all there.
#[test]
fn retention_bounds_the_folder_while_files_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t0 = nov24(12, 0, 0);
    let clock = MockClock::new(t0);
    let events = 12u64;
    let faults = Arc::new(Faults::default());
    let stats = run_sink(
        builder(dir)
            .faults(faults.clone())
            .max_file_size(1)
            .compression(GZIP)
            .keep_files(2)
            .compress_after(Duration::MAX),
        &clock,
        |guard| {
            for seq in 0..events {
                log_at(guard, &clock, t0 + hours(seq), seq);
                guard.flush_blocking().unwrap();
                let (plain, gzipped) = rotated_files(dir);
                assert!(plain.len() <= 2 + 2 + 1, "{plain:?}");
                assert!(gzipped.is_empty(), "{gzipped:?}");
            }
        },
    );
    let rotations = events - 1;
    assert_eq!(stats.rotations, rotations);
    assert_eq!(stats.files_compressed, 0);
    assert_eq!(stats.files_deleted, rotations - 4, "{stats:?}");
    assert_eq!(stats.files_deleted_uncompressed, rotations - 4, "{stats:?}");
    let got = contents(dir);
    let want: Vec<(String, Vec<u64>)> = (rotations - 4..rotations)
        .map(|k| (rotated(t0 + hours(k), 0), vec![k]))
        .chain([("app.log".to_owned(), vec![rotations])])
        .collect();
    assert_eq!(got, want);
}

/// Two lines of events `first` and `first + 1`, as an earlier run would have left them.
fn old_lines(first: u64) -> String {
    (first..first + 2)
        .map(|seq| {
            format!(
                r#"{{"timestamp":"2026-11-24T11:00:00.000000Z","level":"INFO","fields":{{"seq":{seq},"message":"old"}},"target":"t"}}"#
            ) + "\n"
        })
        .collect()
}

/// Leaves a rotated `.log` as a stopped run would have, last written at `modified`.
fn leave_rotated(dir: &Path, name: &str, first_seq: u64, modified: SystemTime) {
    fs::write(dir.join(name), old_lines(first_seq)).unwrap();
    File::options()
        .write(true)
        .open(dir.join(name))
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

/// At start-up a plain rotated file's delay counts from its last write: one written longer
/// ago than the delay is compressed at once, a young one once its age reaches the delay, and
/// one whose modification time lies ahead of the clock waits the delay from now (not until
/// that time).
#[test]
fn start_up_honours_the_delay_by_each_files_age() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = nov24(12, 0, 0);
    let old = "app.20261124T100000Z.000000.log";
    let young = "app.20261124T110000Z.000000.log";
    let ahead = "app.20261124T110000Z.000001.log";
    leave_rotated(dir, old, 100, t - HOUR);
    leave_rotated(dir, young, 102, t - 2 * SECOND);
    leave_rotated(dir, ahead, 104, t + 24 * HOUR);
    let clock = MockClock::new(t);
    let just_before = |t: SystemTime| t - Duration::from_micros(1);
    let faults = Arc::new(Faults::default());
    let stats = run_sink(
        builder(dir)
            .faults(faults.clone())
            .compression(GZIP)
            .compress_after(10 * SECOND),
        &clock,
        |guard| {
            wait_for("the old file compressed", || {
                guard.stats().files_compressed == 1
            });
            for (now, want_plain) in [
                (just_before(t + 8 * SECOND), vec![young, ahead]),
                (t + 8 * SECOND, vec![ahead]),
                (just_before(t + 10 * SECOND), vec![ahead]),
                (t + 10 * SECOND, vec![]),
            ] {
                clock.set(now);
                let compressed = 3 - want_plain.len() as u64;
                wait_for("compression", || {
                    guard.stats().files_compressed == compressed
                });
                janitor_saw(&faults, guard, now);
                assert_eq!(rotated_files(dir).0, want_plain, "at {now:?}");
                assert_eq!(guard.stats().files_compressed, compressed);
            }
            emit(0);
        },
    );
    assert_eq!(stats.files_compressed, 3);
    assert_eq!(
        contents(dir),
        [
            (gz(old), vec![100, 101]),
            (gz(young), vec![102, 103]),
            (gz(ahead), vec![104, 105]),
            ("app.log".to_owned(), vec![0]),
        ]
    );
}

/// Shutdown does not wait for files within their delay (it returns well before the half of
/// `shutdown_timeout` it may spend compressing): they stay plain and whole, and the next start,
/// once their delay has passed by their age, compresses them.
#[test]
fn shutdown_leaves_waiting_files_plain_and_the_next_start_compresses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The real present: the files' modification times are real.
    let t0 = SystemTime::now();
    let clock = MockClock::new(t0);
    let (layer, guard) = builder(dir)
        .max_file_size(1)
        .compression(GZIP)
        .compress_after(HOUR)
        .shutdown_timeout(Duration::from_secs(60))
        .build_with_clock(Clock::Mock(clock.clone()))
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for seq in 0..4 {
            emit(seq);
        }
    });
    let started = Instant::now();
    let stats = guard.shutdown_blocking().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown waited for the delay: {:?}",
        started.elapsed()
    );
    assert_eq!(stats.rotations, 3);
    assert_eq!(stats.files_compressed, 0);
    assert_eq!(stats.events_written, 4);
    let first = contents(dir);
    assert_eq!(first.len(), 4);
    assert!(first[..3].iter().all(|(name, _)| name.ends_with(".log")));
    let seqs: Vec<u64> = first.iter().flat_map(|(_, s)| s.clone()).collect();
    assert_eq!(seqs, [0, 1, 2, 3]);

    // The next start, two hours later by the clock: past the delay by the files' age.
    let clock = MockClock::new(t0 + 2 * HOUR);
    let faults = Arc::new(Faults::default());
    let stats = run_sink(
        builder(dir)
            .faults(faults.clone())
            .compression(GZIP)
            .compress_after(HOUR),
        &clock,
        |guard| {
            wait_for("the left files compressed", || {
                guard.stats().files_compressed == 3
            });
            emit(4);
        },
    );
    assert_eq!(stats.files_compressed, 3);
    let second = contents(dir);
    let names: Vec<String> = second.iter().map(|(n, _)| n.clone()).collect();
    let want: Vec<String> = first[..3]
        .iter()
        .map(|(n, _)| gz(n))
        .chain(["app.log".to_owned()])
        .collect();
    assert_eq!(names, want);
    let seqs: Vec<u64> = second.into_iter().flat_map(|(_, s)| s).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
}

/// Without compression the delay changes nothing: `build()` takes it, files rotate and stay
/// plain, nothing is counted as compressed or waiting.
#[test]
fn a_delay_without_compression_is_accepted_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t0 = nov24(12, 0, 0);
    let clock = MockClock::new(t0);
    let faults = Arc::new(Faults::default());
    let stats = run_sink(
        builder(dir)
            .faults(faults.clone())
            .max_file_size(1)
            .compression(Compression::None)
            .compress_after(Duration::MAX),
        &clock,
        |guard| {
            for seq in 0..3 {
                log_at(guard, &clock, t0 + secs(seq), seq);
            }
            clock.set(t0 + HOUR);
            janitor_saw(&faults, guard, t0 + HOUR);
            assert_eq!(guard.stats().compress_backlog, 0);
        },
    );
    assert_eq!(stats.rotations, 2);
    assert_eq!(stats.files_compressed, 0);
    assert_eq!(
        contents(dir),
        [
            (rotated(t0, 0), vec![0]),
            (rotated(t0 + SECOND, 0), vec![1]),
            ("app.log".to_owned(), vec![2])
        ]
    );
}
