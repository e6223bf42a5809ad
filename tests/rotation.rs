//! Rotation by size, naming of rotated files, compression and retention, checked on real files
//! read back from a temporary folder: every line parsed, every event counted.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::rotation_util;
use logsink::{Compression, Error, LogSink, SinkGuard, SinkLayer, Stats};
use rotation_util::{Gunzip, ACTIVE};
use tracing::info;

/// Added to every `seq` of a fixed-width event so that it always has six digits.
const FIXED_BASE: u64 = 100_000;

/// A sink in `dir` rotating at `max` bytes, with a flush timer that never fires during a test.
/// A sink whose shutdown compresses the whole backlog however long it takes (the tests read
/// every rotated file as `.gz`; a debug build compresses slower than it logs).
fn sink(dir: &Path, max: u64, compression: Compression) -> (SinkLayer, SinkGuard) {
    common::builder(dir)
        .max_file_size(max)
        .compression(compression)
        .shutdown_timeout(Duration::from_secs(600))
        .build()
        .expect("building the sink")
}

/// Emits one event whose line always has the same length (one call site, a six-digit `seq`,
/// a fixed message, and a timestamp that is always 27 bytes).
fn emit_fixed(i: u64) {
    assert!(i < 900_000);
    info!(seq = FIXED_BASE + i, "fixed-width");
}

/// The length in bytes (newline included) of every line [`emit_fixed`] produces, measured on
/// a sink of its own.
fn fixed_line_len() -> u64 {
    let tmp = tempfile::tempdir().unwrap();
    let (layer, guard) = sink(tmp.path(), u64::MAX, Compression::None);
    tracing::dispatcher::with_default(&common::dispatch(layer), || emit_fixed(0));
    guard.shutdown_blocking().unwrap();
    let bytes = std::fs::read(tmp.path().join(ACTIVE)).unwrap();
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
    bytes.len() as u64
}

/// Logs `n` fixed-width events (`seq` 0..n after subtracting [`FIXED_BASE`]) into a new sink.
fn run_fixed(dir: &Path, max: u64, n: u64, compression: Compression) -> Stats {
    let (layer, guard) = sink(dir, max, compression);
    tracing::dispatcher::with_default(&common::dispatch(layer), || (0..n).for_each(emit_fixed));
    let stats = guard.shutdown_blocking().expect("shutdown");
    assert_eq!(stats.events_written, n, "events_written");
    assert_eq!(stats.events_dropped, 0, "events_dropped");
    assert_eq!(
        stats.write_errors, 0,
        "write_errors: {:?}",
        stats.last_error
    );
    stats
}

/// The `seq`s of fixed-width events, with [`FIXED_BASE`] taken off.
fn fixed_seqs(files: &[rotation_util::FileLines]) -> Vec<u64> {
    rotation_util::seqs(files)
        .into_iter()
        .map(|s| s - FIXED_BASE)
        .collect()
}

/// With lines of a known, equal length L and `max_file_size` = 3·L, every rotated file is
/// exactly 3·L bytes — a file that reaches the limit exactly is allowed and no file goes
/// beyond it — and the active file holds the remainder. With a limit of 4·L − 1 the files are
/// still 3·L (a fourth line would pass the limit). No event is lost or repeated.
#[test]
fn exact_size_boundary() {
    let l = fixed_line_len();
    const N: u64 = 100;
    for (max, per_file) in [(3 * l, 3), (4 * l - 1, 3), (l, 1)] {
        let tmp = tempfile::tempdir().unwrap();
        let stats = run_fixed(tmp.path(), max, N, Compression::None);

        let files = rotation_util::read_in_order(tmp.path(), ".log", Gunzip::Flate2);
        let (active, rotated) = files.split_last().unwrap();
        let expected_rotations = N.div_ceil(per_file) - 1;
        assert_eq!(rotated.len() as u64, expected_rotations, "max {max}");
        assert_eq!(stats.rotations, expected_rotations, "stats.rotations");
        assert_eq!(stats.bytes_written, N * l, "stats.bytes_written");
        for f in rotated {
            assert_eq!(f.disk_size, per_file * l, "{} with max {max}", f.name);
            assert!(f.disk_size <= max);
            assert_eq!(f.lines.len() as u64, per_file, "{}", f.name);
        }
        assert_eq!(active.disk_size, (N - expected_rotations * per_file) * l);
        for f in &files {
            for line in common::split_lines(&f.bytes, &f.name) {
                assert_eq!(line.len() as u64 + 1, l, "{}: {line}", f.name);
            }
        }
        common::assert_seqs(&fixed_seqs(&files), 0..N, "events in name order");
        rotation_util::assert_folder(
            tmp.path(),
            &rotated.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
            &[],
        );
    }
}

/// An event larger than `max_file_size` gets a rotated file of its own holding exactly that
/// one line; every other file stays within the limit; every event is present once, in order.
#[test]
fn oversized_event_gets_a_file_of_its_own() {
    const MAX: u64 = 1024;
    let tmp = tempfile::tempdir().unwrap();
    let (layer, guard) = sink(tmp.path(), MAX, Compression::None);
    let big = "x".repeat(10 * 1024);
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        for seq in 0..20u64 {
            info!(seq, "small");
        }
        info!(seq = 20u64, blob = %big, "big");
        for seq in 21..41u64 {
            info!(seq, "small");
        }
    });
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, 41);

    let files = rotation_util::read_in_order(tmp.path(), ".log", Gunzip::Flate2);
    common::assert_seqs(&rotation_util::seqs(&files), 0..41, "events in name order");
    let with_big: Vec<_> = files
        .iter()
        .filter(|f| f.lines.iter().any(|l| l["fields"].get("blob").is_some()))
        .collect();
    assert_eq!(with_big.len(), 1, "files holding the big event");
    let big_file = with_big[0];
    assert_ne!(big_file.name, ACTIVE, "the big event's file was rotated");
    assert_eq!(
        big_file.lines.len(),
        1,
        "{} holds only the big line",
        big_file.name
    );
    assert_eq!(common::field_str(&big_file.lines[0], "blob"), big);
    assert!(big_file.disk_size > MAX);
    for f in files.iter().filter(|f| f.name != big_file.name) {
        assert!(f.disk_size <= MAX, "{} is {} bytes", f.name, f.disk_size);
        assert!(!f.lines.is_empty(), "{} is empty", f.name);
    }
}

/// About a thousand rotations in a burst (one line per file): every rotated name matches
/// `^app\.\d{8}T\d{6}Z\.\d{6}\.log$`; within one stamp the sequence numbers count up from 0
/// without gaps; the names' string order is the order the files were written (reading them
/// in name order gives strictly increasing event `seq`s, 0..N with none missing), and the
/// active file holds the last event.
#[test]
fn a_burst_of_rotations_sorts_by_name() {
    const N: u64 = 1000;
    const MAX: u64 = 200;
    let tmp = tempfile::tempdir().unwrap();
    let (layer, guard) = sink(tmp.path(), MAX, Compression::None);
    let started = Instant::now();
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        for seq in 0..N {
            info!(seq, "burst");
        }
    });
    let stats = guard.shutdown_blocking().unwrap();
    eprintln!("{} rotations in {:?}", stats.rotations, started.elapsed());
    assert_eq!(stats.events_written, N);

    let names = rotation_util::list(tmp.path());
    let rotated: Vec<&String> = names.iter().filter(|n| n.as_str() != ACTIVE).collect();
    for name in &rotated {
        assert!(
            rotation_util::is_rotated_name(name, ".log"),
            "unexpected name {name:?}"
        );
    }
    assert_eq!(rotated.len() as u64, stats.rotations);

    let files = rotation_util::read_in_order(tmp.path(), ".log", Gunzip::Flate2);
    // Lines are between 101 and 200 bytes, so every file holds exactly one.
    for f in &files {
        assert_eq!(f.lines.len(), 1, "{}", f.name);
        assert!(f.disk_size > MAX / 2 && f.disk_size <= MAX, "{}", f.name);
    }
    assert_eq!(stats.rotations, N - 1);
    common::assert_seqs(&rotation_util::seqs(&files), 0..N, "events in name order");
    assert_eq!(
        common::field_u64(&files.last().unwrap().lines[0], "seq"),
        N - 1
    );

    // Names in string order are names in (stamp, sequence) order, numbered without gaps.
    let positions: Vec<(String, u32)> = rotated
        .iter()
        .map(|n| rotation_util::rotated_position(n))
        .collect();
    for pair in positions.windows(2) {
        let ((s0, q0), (s1, q1)) = (&pair[0], &pair[1]);
        if s0 == s1 {
            assert_eq!(*q1, q0 + 1, "{pair:?}");
        } else {
            assert!(s1 > s0 && *q1 == 0, "{pair:?}");
        }
    }
    assert_eq!(positions[0].1, 0);
    assert!(
        positions.iter().any(|(_, q)| *q > 0),
        "a thousand rotations never shared a second?"
    );
}

/// Logs `per_thread` events `{t, i}` from each of `threads` threads into `dir` with gzip and a
/// 256 KiB limit; returns the final statistics.
fn log_threads_gzip(dir: &Path, threads: u64, per_thread: u64) -> Stats {
    let (layer, guard) = sink(dir, 256 * 1024, Compression::Gzip { level: 6 });
    let dispatch = common::dispatch(layer);
    common::log_on_threads(&dispatch, threads, per_thread);
    drop(dispatch);
    let stats = guard.shutdown_blocking().expect("shutdown");
    assert_eq!(stats.events_written, threads * per_thread);
    assert_eq!(stats.events_dropped, 0);
    assert_eq!(stats.write_errors, 0, "{:?}", stats.last_error);
    stats
}

/// Checks a gzip-rotated folder after shutdown: only `.log.gz` rotated files and the active
/// file (no `.tmp`, no uncompressed rotated `.log`), one compression per rotation, and every
/// `(t, i)` exactly once with each thread's `i` strictly increasing across the files in name
/// order. Returns the files read.
fn check_threads_gzip(
    dir: &Path,
    stats: &Stats,
    threads: u64,
    per_thread: u64,
    gunzip: Gunzip,
) -> Vec<rotation_util::FileLines> {
    let gz = rotation_util::rotated(dir, ".log.gz");
    rotation_util::assert_folder(dir, &gz, &[]);
    assert!(gz.len() >= 2, "only {} rotations", gz.len());
    assert_eq!(stats.rotations, gz.len() as u64, "stats.rotations");
    assert_eq!(
        stats.files_compressed,
        gz.len() as u64,
        "stats.files_compressed"
    );
    assert_eq!(stats.files_deleted, 0);

    let files = rotation_util::read_in_order(dir, ".log.gz", gunzip);
    let mut seen = vec![vec![false; per_thread as usize]; threads as usize];
    let mut last: Vec<Option<u64>> = vec![None; threads as usize];
    let mut total = 0;
    for f in &files {
        for line in &f.lines {
            let t = common::field_u64(line, "t");
            let i = common::field_u64(line, "i");
            assert!(t < threads && i < per_thread, "{}: {line}", f.name);
            assert!(
                !seen[t as usize][i as usize],
                "{}: ({t}, {i}) twice",
                f.name
            );
            seen[t as usize][i as usize] = true;
            if let Some(prev) = last[t as usize] {
                assert!(i > prev, "{}: thread {t}: {i} after {prev}", f.name);
            }
            last[t as usize] = Some(i);
            total += 1;
        }
    }
    assert_eq!(total, threads * per_thread, "events read back");
    files
}

/// Four threads × 50,000 events through 256 KiB gzip rotation: every rotated file passes
/// the system `gzip -t`, and reading them with the system `gzip -dc` in name order, then the
/// active file, gives every `(thread, i)` exactly once with each thread's events in order.
/// Each rotation was compressed once and nothing temporary or uncompressed is left.
#[test]
fn four_threads_gzip_rotation_read_with_system_gzip() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 50_000;
    let tmp = tempfile::tempdir().unwrap();
    let stats = log_threads_gzip(tmp.path(), THREADS, PER_THREAD);
    check_threads_gzip(tmp.path(), &stats, THREADS, PER_THREAD, Gunzip::System);
}

/// The same pipeline read with flate2's `MultiGzDecoder`: the same checks pass, and for every
/// rotated file flate2 and the system `gzip -dc` decompress to the same bytes.
#[test]
fn two_threads_gzip_rotation_read_with_flate2() {
    const THREADS: u64 = 2;
    const PER_THREAD: u64 = 20_000;
    let tmp = tempfile::tempdir().unwrap();
    let stats = log_threads_gzip(tmp.path(), THREADS, PER_THREAD);
    let files = check_threads_gzip(tmp.path(), &stats, THREADS, PER_THREAD, Gunzip::Flate2);
    for f in files.iter().filter(|f| f.name != ACTIVE) {
        let system = rotation_util::gunzip_system(&tmp.path().join(&f.name));
        assert!(system == f.bytes, "{}: flate2 and gzip disagree", f.name);
    }
}

/// Files in the folder that are not this sink's rotated files, with their contents.
const FOREIGN: [(&str, &str); 4] = [
    ("app.notes.txt", "notes\n"),
    ("other.log", "another program's log\n"),
    ("app.backup.log.old", "a backup\n"),
    ("app.20261124T142618Z.000001.log.old", "renamed by hand\n"),
];

fn create_foreign(dir: &Path) {
    for (name, text) in FOREIGN {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn assert_foreign_untouched(dir: &Path) {
    for (name, text) in FOREIGN {
        let found = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("foreign file {name}: {e}"));
        assert_eq!(found, text, "foreign file {name} changed");
    }
}

/// `keep_files(3)` with foreign files (some look like rotated names) in the folder: after
/// about ten rotations exactly three rotated `.gz` files remain; every rotation beyond those
/// three was deleted and counted; the foreign files are untouched; and the kept files plus
/// the active file hold exactly the newest events, contiguous up to the last one.
#[test]
fn retention_by_count_keeps_the_newest_and_spares_foreign_files() {
    let l = fixed_line_len();
    const PER_FILE: u64 = 8;
    const ROTATIONS: u64 = 10;
    const N: u64 = PER_FILE * ROTATIONS + 5;
    let tmp = tempfile::tempdir().unwrap();
    create_foreign(tmp.path());
    let (layer, guard) = common::builder(tmp.path())
        .max_file_size(PER_FILE * l)
        .compression(Compression::Gzip { level: 6 })
        .keep_files(3)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || (0..N).for_each(emit_fixed));
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, N);
    assert_eq!(stats.write_errors, 0, "{:?}", stats.last_error);
    assert_eq!(stats.rotations, ROTATIONS);
    assert_eq!(stats.files_deleted, ROTATIONS - 3, "stats.files_deleted");

    let gz = rotation_util::rotated(tmp.path(), ".log.gz");
    assert_eq!(gz.len(), 3, "{gz:?}");
    let foreign: Vec<&str> = FOREIGN.iter().map(|(n, _)| *n).collect();
    rotation_util::assert_folder(tmp.path(), &gz, &foreign);
    assert_foreign_untouched(tmp.path());

    let files = rotation_util::read_in_order(tmp.path(), ".log.gz", Gunzip::System);
    let first_kept = (ROTATIONS - 3) * PER_FILE;
    common::assert_seqs(&fixed_seqs(&files), first_kept..N, "kept events");
}

/// `max_total_size(X)` with plain rotated files of exactly 4·L bytes and X = 14·L: exactly the
/// newest three files (12·L ≤ X) are kept — never more than X, and no more deleted than
/// needed — and they hold the newest events, contiguous up to the last one.
#[test]
fn retention_by_total_size_keeps_the_newest_that_fit() {
    let l = fixed_line_len();
    const PER_FILE: u64 = 4;
    const ROTATIONS: u64 = 10;
    const N: u64 = PER_FILE * ROTATIONS + 2;
    let max_total = 14 * l;
    let tmp = tempfile::tempdir().unwrap();
    let (layer, guard) = common::builder(tmp.path())
        .max_file_size(PER_FILE * l)
        .compression(Compression::None)
        .max_total_size(max_total)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || (0..N).for_each(emit_fixed));
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.rotations, ROTATIONS);
    assert_eq!(stats.files_deleted, ROTATIONS - 3);

    let files = rotation_util::read_in_order(tmp.path(), ".log", Gunzip::Flate2);
    let (_, rotated) = files.split_last().unwrap();
    assert_eq!(rotated.len(), 3);
    let total: u64 = rotated.iter().map(|f| f.disk_size).sum();
    assert_eq!(total, 12 * l);
    assert!(total <= max_total);
    common::assert_seqs(
        &fixed_seqs(&files),
        (ROTATIONS - 3) * PER_FILE..N,
        "kept events",
    );
}

/// `max_total_size(X)` with gzip, where one rotated file is larger than X uncompressed (4 KiB
/// against X = 2,000 bytes) but about 300 bytes compressed: after shutdown the `.gz` files'
/// sizes sum to at most X, several of them (at least three) are kept — while compression keeps
/// up, files are not deleted for their size before they are compressed — some were deleted,
/// and the kept ones plus the active file hold the newest events, contiguous up to the last
/// one. (The events come in bursts of about one file, each compressed before the next: a
/// janitor that lags judges files by their size on disk, see the library's
/// `retention_bounds_the_folder_while_compression_lags`.)
#[test]
fn retention_by_total_size_with_gzip() {
    const MAX_TOTAL: u64 = 2_000;
    const N: u64 = 400;
    let tmp = tempfile::tempdir().unwrap();
    let (layer, guard) = common::builder(tmp.path())
        .max_file_size(4 * 1024)
        .compression(Compression::Gzip { level: 6 })
        .max_total_size(MAX_TOTAL)
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    for burst in (0..N).collect::<Vec<_>>().chunks(25) {
        tracing::dispatcher::with_default(&dispatch, || burst.iter().copied().for_each(emit_fixed));
        guard.flush_blocking().unwrap();
        // Every file rotated so far is compressed before the next burst: compression keeps
        // up, so none is ever judged by its uncompressed size.
        common::wait_for("every rotated file compressed", || {
            let stats = guard.stats();
            (stats.files_compressed == stats.rotations).then_some(())
        });
    }
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.write_errors, 0, "{:?}", stats.last_error);
    let gz = rotation_util::rotated(tmp.path(), ".log.gz");
    rotation_util::assert_folder(tmp.path(), &gz, &[]);
    // A compressed file of ~4 KiB of these lines is about 300 bytes, so at least three
    // (about six) fit in X. Retention must judge a rotated file by what is kept of it once
    // compressed, not delete it while it still waits for compression.
    assert!(
        gz.len() >= 3,
        "only {} rotated files kept although a compressed one is ~300 bytes and X is \
         {MAX_TOTAL}: {gz:?}, {stats:?}",
        gz.len()
    );
    assert!(stats.files_deleted >= 1, "nothing deleted: test too small");
    assert_eq!(stats.files_deleted + gz.len() as u64, stats.rotations);
    assert_eq!(stats.files_compressed, stats.rotations);

    let files = rotation_util::read_in_order(tmp.path(), ".log.gz", Gunzip::System);
    let total: u64 = files
        .iter()
        .filter(|f| f.name != ACTIVE)
        .map(|f| f.disk_size)
        .sum();
    assert!(total <= MAX_TOTAL, "kept {total} bytes > {MAX_TOTAL}");
    let seqs = fixed_seqs(&files);
    let first = seqs[0];
    assert!(first > 0);
    common::assert_seqs(&seqs, first..N, "kept events");
}

/// `build()` refuses `max_file_size(0)`, `keep_files(0)`, a gzip level of 10, a zero
/// `max_age`, `max_total_size(0)`, and file names outside `[A-Za-z0-9._-]`, hidden or empty
/// once `.log` is taken off, with an `InvalidConfig` error whose message names the setting
/// and the value; a refused configuration creates no directory. An empty `directory` is
/// refused the same way (and creates nothing).
#[test]
fn refused_builder_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never-created");
    let cases: Vec<(&str, logsink::Builder, &[&str])> = vec![
        (
            "max_file_size(0)",
            LogSink::builder().max_file_size(0),
            &["max_file_size", "0"],
        ),
        (
            "keep_files(0)",
            LogSink::builder().keep_files(0),
            &["keep_files", "0"],
        ),
        (
            "gzip level 10",
            LogSink::builder().compression(Compression::Gzip { level: 10 }),
            &["level", "10"],
        ),
        (
            "max_age(ZERO)",
            LogSink::builder().max_age(Duration::ZERO),
            &["max_age", "0ns"],
        ),
        (
            "max_total_size(0)",
            LogSink::builder().max_total_size(0),
            &["max_total_size", "0"],
        ),
        (
            "file_name with a space",
            LogSink::builder().file_name("my app"),
            &["file_name", "\"my app\"", "letters"],
        ),
        (
            "file_name of a hidden file",
            LogSink::builder().file_name(".app"),
            &["file_name", "\".app\""],
        ),
        (
            "file_name .log alone",
            LogSink::builder().file_name(".log"),
            &["file_name", "non-empty"],
        ),
        (
            "file_name with a non-ASCII letter",
            LogSink::builder().file_name("journal-é"),
            &["file_name", "letters"],
        ),
    ];
    for (what, builder, words) in cases {
        let err = builder
            .directory(&dir)
            .build()
            .err()
            .unwrap_or_else(|| panic!("{what} was accepted"));
        assert!(
            matches!(err, Error::InvalidConfig { .. }),
            "{what}: {err:?}"
        );
        let message = err.to_string();
        for word in words {
            assert!(message.contains(word), "{what}: {message:?} lacks {word:?}");
        }
        assert!(!dir.exists(), "{what}: the directory was created");
    }
    let err = LogSink::builder().directory("").build().err();
    let err = err.expect("directory(\"\") was accepted");
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    assert!(err.to_string().contains("directory"), "{err}");
}

/// `file_name("app.log")`, the tracing-appender habit, means the active file `app.log` (not
/// `app.log.log`), and rotated names `app.<stamp>.<seq>.log`: the same files as
/// `file_name("app")`.
#[test]
fn a_file_name_ending_in_log_names_the_active_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (layer, guard) = LogSink::builder()
        .directory(tmp.path())
        .file_name("app.log")
        .max_file_size(200)
        .compression(Compression::None)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || (0..5).for_each(emit_fixed));
    let stats = guard.shutdown_blocking().unwrap();
    assert!(stats.rotations >= 2, "{stats:?}");
    let rotated = rotation_util::rotated(tmp.path(), ".log");
    assert_eq!(rotated.len() as u64, stats.rotations);
    rotation_util::assert_folder(tmp.path(), &rotated, &[]);
    let files = rotation_util::read_in_order(tmp.path(), ".log", Gunzip::System);
    common::assert_seqs(&fixed_seqs(&files), 0..5, "every event");
}
