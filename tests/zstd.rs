//! `Compression::Zstd` (feature `zstd`): rotated files become `.log.zst`, each one standard
//! zstd frame, read back here in-process with libzstd and with the `zstd` command-line tool;
//! crash recovery of `.zst.tmp` files and of a `.log` beside its `.zst`; folders written with
//! gzip and zstd in turn, recovered and retained whatever the current setting; zstd levels
//! `build()` refuses. Every line is parsed, every event counted.
//!
//! The test that runs the `zstd` tool skips when it is missing, unless
//! `LOGSINK_REQUIRE_ZSTD_CLI` is set (CI sets it): then it fails.
#![cfg(feature = "zstd")]

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::log_seqs;
use common::rotation_util;
use logsink::{Compression, Error, SinkGuard, Stats};
use rotation_util::{FileLines, Gunzip, ACTIVE};

/// A rotated name from an earlier run (2026-11-24T14:26:18Z), with sequence number `seq`.
fn r(seq: u32) -> String {
    format!("app.20261124T142618Z.{seq:06}.log")
}

/// The shared test builder, with a shutdown that waits for every compression however slow a
/// loaded debug build is.
fn builder(dir: &Path) -> logsink::Builder {
    common::builder(dir).shutdown_timeout(Duration::from_secs(600))
}

fn stop(guard: SinkGuard) -> Stats {
    let stats = guard.shutdown_blocking().expect("shutdown");
    assert_eq!(stats.write_errors, 0, "{:?}", stats.last_error);
    assert_eq!(stats.events_dropped, 0);
    stats
}

/// `data` compressed by libzstd into one frame with its size and a checksum, as the `zstd`
/// tool writes a file.
fn zstd_bytes(data: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.include_checksum(true).unwrap();
    encoder
        .set_pledged_src_size(Some(data.len() as u64))
        .unwrap();
    std::io::Write::write_all(&mut encoder, data).unwrap();
    encoder.finish().unwrap()
}

/// Checks that `bytes` is exactly one zstd frame with the content size and checksum in it,
/// and returns what it decompresses to.
fn unzstd_one_frame(bytes: &[u8], what: &str) -> Vec<u8> {
    assert_eq!(
        zstd::zstd_safe::find_frame_compressed_size(bytes).ok(),
        Some(bytes.len()),
        "{what}: not exactly one zstd frame"
    );
    // The frame header descriptor, after the 4-byte magic: Content_Checksum_flag.
    assert_eq!(bytes[4] & 0x04, 0x04, "{what}: no content checksum");
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(bytes)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{what}: libzstd cannot decompress it: {e}"));
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(bytes).ok(),
        Some(Some(out.len() as u64)),
        "{what}: the content size in the header"
    );
    out
}

/// The content of a file in `dir`: a `.zst` decompressed (one frame checked), a `.gz`
/// decompressed with flate2, anything else as it is.
fn content(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    if name.ends_with(".zst") {
        unzstd_one_frame(&fs::read(&path).unwrap(), name)
    } else {
        rotation_util::content(&path, Gunzip::Flate2)
    }
}

/// The regular files of `dir` but temporary ones (the rotated files, in whichever form) in
/// name order, then the active file, each read back and every line parsed.
fn read_all(dir: &Path) -> Vec<FileLines> {
    let mut names: Vec<String> = rotation_util::list(dir)
        .into_iter()
        .filter(|n| n != ACTIVE && !n.ends_with(".tmp") && dir.join(n).is_file())
        .collect();
    names.push(ACTIVE.to_owned());
    names
        .into_iter()
        .map(|name| {
            let bytes = content(dir, &name);
            FileLines {
                disk_size: fs::metadata(dir.join(&name)).unwrap().len(),
                lines: common::json_lines(&bytes, &name),
                bytes,
                name,
            }
        })
        .collect()
}

/// Logs `per_thread` events `{t, i}` from each of `threads` threads into `dir` with zstd at
/// `level` and a 256 KiB limit; returns the final statistics.
fn log_threads(dir: &Path, threads: u64, per_thread: u64, level: i32) -> Stats {
    let (dispatch, guard) = common::start(
        builder(dir)
            .max_file_size(256 * 1024)
            .compression(Compression::Zstd { level }),
    );
    common::log_on_threads(&dispatch, threads, per_thread);
    drop(dispatch);
    let stats = stop(guard);
    assert_eq!(stats.events_written, threads * per_thread);
    stats
}

/// Checks a zstd-rotated folder after shutdown: only `.log.zst` rotated files and the active
/// file (no `.tmp`, no plain rotated `.log`), one compression per rotation, every file one
/// frame, and every `(t, i)` exactly once with each thread's `i` increasing across the files
/// in name order. Returns the `.zst` names.
fn check_threads(dir: &Path, stats: &Stats, threads: u64, per_thread: u64) -> Vec<String> {
    let zst = rotation_util::rotated(dir, ".log.zst");
    rotation_util::assert_folder(dir, &zst, &[]);
    assert!(zst.len() >= 3, "only {} rotations", zst.len());
    assert_eq!(stats.rotations, zst.len() as u64, "stats.rotations");
    assert_eq!(stats.files_compressed, zst.len() as u64);
    assert_eq!(stats.files_deleted, 0);
    let files = read_all(dir);
    let mut next = vec![0u64; threads as usize];
    for f in &files {
        for line in &f.lines {
            let t = common::field_u64(line, "t") as usize;
            let i = common::field_u64(line, "i");
            assert!(t < threads as usize, "{}: {line}", f.name);
            assert_eq!(
                i, next[t],
                "{}: thread {t} out of order or repeated",
                f.name
            );
            next[t] += 1;
        }
    }
    assert_eq!(next, vec![per_thread; threads as usize], "events read back");
    zst
}

/// Four threads × 40,000 events through 256 KiB rotation with zstd level 3: every rotated
/// file is one zstd frame (content size and checksum included) that libzstd decompresses, and
/// reading them in name order, then the active file, gives every `(thread, i)` exactly once,
/// in each thread's order. Compressed they take well under a fifth of the plain bytes.
#[test]
fn four_threads_zstd_rotation_read_back_in_process() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 40_000;
    let tmp = tempfile::tempdir().unwrap();
    let stats = log_threads(tmp.path(), THREADS, PER_THREAD, 3);
    let zst = check_threads(tmp.path(), &stats, THREADS, PER_THREAD);
    let (mut plain, mut packed) = (0, 0);
    for name in &zst {
        plain += content(tmp.path(), name).len() as u64;
        packed += fs::metadata(tmp.path().join(name)).unwrap().len();
    }
    assert!(packed * 5 < plain, "{packed} bytes compressed of {plain}");
}

/// Whether the `zstd` tool is there; if not, a skip, or a failure under CI.
fn zstd_cli() -> bool {
    if Command::new("zstd").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("LOGSINK_REQUIRE_ZSTD_CLI").is_none(),
        "LOGSINK_REQUIRE_ZSTD_CLI is set but the `zstd` tool cannot be run"
    );
    eprintln!("skipped: the `zstd` tool is not installed");
    false
}

/// Runs `program args` and returns its standard output, failing on a non-zero exit.
fn run(program: &str, args: &[&str], path: &Path) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} {}: {} {}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Two threads × 30,000 events with zstd level 1: every rotated file passes `zstd -t`, and
/// `zstd -dc` (and `zstdcat`, where installed) give byte for byte what libzstd gives;
/// `zstd -l` sees one frame per file. So the files are read by the standard tool.
#[test]
fn the_zstd_tool_reads_every_file() {
    if !zstd_cli() {
        return;
    }
    const THREADS: u64 = 2;
    const PER_THREAD: u64 = 30_000;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let stats = log_threads(dir, THREADS, PER_THREAD, 1);
    let zst = check_threads(dir, &stats, THREADS, PER_THREAD);
    let zstdcat = Command::new("zstdcat").arg("--version").output().is_ok();
    for name in &zst {
        let path = dir.join(name);
        run("zstd", &["-q", "-t"], &path);
        let by_tool = run("zstd", &["-q", "-d", "-c"], &path);
        assert!(by_tool == content(dir, name), "{name}: zstd -dc differs");
        if zstdcat {
            assert!(
                run("zstdcat", &[], &path) == by_tool,
                "{name}: zstdcat differs"
            );
        }
        // `zstd -l`: a table whose second line starts with the number of frames.
        let list = String::from_utf8(run("zstd", &["-l"], &path)).unwrap();
        let frames = list
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().next());
        assert_eq!(frames, Some("1"), "{name}: zstd -l says\n{list}");
    }
}

/// A `.log.zst.tmp` of garbage beside its rotated `.log` (a compression cut short): the
/// temporary file is removed, the `.log` is compressed into a `.zst` holding exactly its
/// bytes, and the `.log` is gone. An orphan `.zst.tmp` (its `.log` already gone) is removed.
#[test]
fn a_cut_short_zstd_compression_is_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let original = rotation_util::old_lines(0..50);
    fs::write(dir.join(r(0)), &original).unwrap();
    fs::write(
        dir.join(format!("{}.zst.tmp", r(0))),
        b"\x28\xb5\x2f\xfd garbage",
    )
    .unwrap();
    fs::write(dir.join(format!("{}.zst.tmp", r(1))), b"an orphan").unwrap();

    let (_dispatch, guard) =
        common::start(builder(dir).compression(Compression::Zstd { level: 3 }));
    let stats = stop(guard);
    assert_eq!(stats.files_compressed, 1);
    assert_eq!(stats.files_deleted, 0);
    rotation_util::assert_folder(dir, &[format!("{}.zst", r(0))], &[]);
    assert!(content(dir, &format!("{}.zst", r(0))) == original);
}

/// A `.log` beside a complete `.zst` of the same name (killed between the rename and the
/// delete): the `.log` is removed and the `.zst` left byte for byte. Beside a `.zst` that does
/// not hold it (another file's, cut short, one frame more, a damaged checksum), nothing is
/// deleted and both stay byte for byte. Either way, with zstd or gzip as the setting.
#[test]
fn a_log_beside_a_zst_is_removed_only_if_the_zst_holds_it() {
    let original = rotation_util::old_lines(0..40);
    let own = zstd_bytes(&original);
    let mut cut = own.clone();
    cut.truncate(own.len() - 4);
    let mut more = own.clone();
    more.extend_from_slice(&zstd_bytes(b"{\"extra\":1}\n"));
    let mut damaged = own.clone();
    *damaged.last_mut().unwrap() ^= 0x55;
    for compression in [
        Compression::Zstd { level: 1 },
        Compression::Gzip { level: 6 },
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let zst = format!("{}.zst", r(0));
        fs::write(dir.join(r(0)), &original).unwrap();
        fs::write(dir.join(&zst), &own).unwrap();
        let (_dispatch, guard) = common::start(builder(dir).compression(compression));
        let stats = stop(guard);
        assert_eq!(
            (stats.files_compressed, stats.files_deleted),
            (0, 0),
            "{compression:?}"
        );
        rotation_util::assert_folder(dir, std::slice::from_ref(&zst), &[]);
        assert!(fs::read(dir.join(&zst)).unwrap() == own, "{compression:?}");

        for (what, bytes) in [
            (
                "another file's",
                zstd_bytes(&rotation_util::old_lines(100..140)),
            ),
            ("cut short", cut.clone()),
            ("one frame more", more.clone()),
            ("a damaged checksum", damaged.clone()),
        ] {
            fs::write(dir.join(r(0)), &original).unwrap();
            fs::write(dir.join(&zst), &bytes).unwrap();
            let (_dispatch, guard) = common::start(builder(dir).compression(compression));
            let stats = stop(guard);
            let what = format!("{what}, {compression:?}");
            assert_eq!(stats.files_deleted, 0, "{what}");
            assert_eq!(stats.files_compressed, 0, "{what}");
            rotation_util::assert_folder(dir, &[r(0), zst.clone()], &[]);
            assert!(fs::read(dir.join(r(0))).unwrap() == original, "{what}");
            assert!(fs::read(dir.join(&zst)).unwrap() == bytes, "{what}");
        }
    }
}

/// A folder from gzip runs, now compressed with zstd, and back: every form of either kind is
/// recognised. With zstd on: a stray `.gz.tmp` is removed and its `.log` compressed to
/// `.zst`, a `.log` beside a complete `.gz` is removed, and retention (`keep_files(3)`)
/// counts `.gz` and `.zst` files alike, deleting the oldest whatever its kind. Then with gzip
/// on: a `.zst.tmp` is removed and its `.log` compressed to `.gz`, new rotations become
/// `.gz`, and retention deletes the oldest `.zst`s. Every event left is read back once, in
/// order.
#[test]
fn gzip_and_zstd_folders_are_recovered_and_retained_either_way() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let lines = |from: u64| rotation_util::old_lines(from..from + 10);
    // r0: old gzip; r1: old zstd; r2: a gzip compression cut short; r3: a `.log` beside its
    // complete `.gz`; r4: a zstd compression cut short, from a run before.
    fs::write(
        dir.join(format!("{}.gz", r(0))),
        rotation_util::gzip_bytes(&lines(0)),
    )
    .unwrap();
    fs::write(dir.join(format!("{}.zst", r(1))), zstd_bytes(&lines(10))).unwrap();
    fs::write(dir.join(r(2)), lines(20)).unwrap();
    fs::write(dir.join(format!("{}.gz.tmp", r(2))), "half a gzip").unwrap();
    fs::write(dir.join(r(3)), lines(30)).unwrap();
    fs::write(
        dir.join(format!("{}.gz", r(3))),
        rotation_util::gzip_bytes(&lines(30)),
    )
    .unwrap();
    fs::write(dir.join(r(4)), lines(40)).unwrap();
    fs::write(dir.join(format!("{}.zst.tmp", r(4))), "half a zstd").unwrap();

    let zstd = Compression::Zstd { level: 3 };
    let (_dispatch, guard) = common::start(builder(dir).compression(zstd).keep_files(3));
    let stats = stop(guard);
    // r2 and r4 compressed; r0 and r1, the oldest of five, deleted.
    assert_eq!(stats.files_compressed, 2, "{stats:?}");
    assert_eq!(stats.files_deleted, 2, "{stats:?}");
    let expected = [
        format!("{}.zst", r(2)),
        format!("{}.gz", r(3)),
        format!("{}.zst", r(4)),
    ];
    rotation_util::assert_folder(dir, &expected, &[]);
    assert_eq!(
        rotation_util::seqs(&read_all(dir)),
        (20..50).collect::<Vec<_>>()
    );

    // Back to gzip, with a zstd compression cut short again (r5), and new events that rotate
    // twice (each event but the first in a file rotates with `max_file_size(1)`).
    fs::write(dir.join(r(5)), lines(50)).unwrap();
    fs::write(dir.join(format!("{}.zst.tmp", r(5))), "half a zstd").unwrap();
    let (dispatch, guard) = common::start(
        builder(dir)
            .compression(Compression::Gzip { level: 6 })
            .keep_files(3)
            .max_file_size(1),
    );
    log_seqs(&dispatch, 60..63);
    let stats = stop(guard);
    assert_eq!(stats.rotations, 2);
    // r5 and the two new files compressed with gzip; r2, r3 and r4 deleted in turn.
    assert_eq!(stats.files_compressed, 3, "{stats:?}");
    assert_eq!(stats.files_deleted, 3, "{stats:?}");
    let gz = rotation_util::rotated(dir, ".log.gz");
    assert_eq!(gz.len(), 3, "{gz:?}");
    assert_eq!(gz[0], format!("{}.gz", r(5)));
    rotation_util::assert_folder(dir, &gz, &[]);
    let files = read_all(dir);
    assert_eq!(rotation_util::seqs(&files), (50..63).collect::<Vec<_>>());
    assert_eq!(files.last().unwrap().lines.len(), 1);
}

/// A rotated name whose `.zst` or `.zst.tmp` form is taken by something the sink did not make
/// (here folders, which it never removes) is skipped for the next one, with zstd or gzip as
/// the setting: new files never collide with either kind's names, and what is there survives.
#[test]
fn a_name_taken_in_its_zstd_form_is_skipped() {
    for compression in [
        Compression::Zstd { level: 1 },
        Compression::Gzip { level: 1 },
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let future = |seq: u32| format!("app.29991231T235959Z.{seq:06}.log");
        let old = zstd_bytes(&rotation_util::old_lines(0..10));
        fs::write(dir.join(format!("{}.zst", future(0))), &old).unwrap();
        let planted = [
            format!("{}.zst", future(1)),
            format!("{}.zst.tmp", future(2)),
        ];
        for name in &planted {
            fs::create_dir(dir.join(name)).unwrap();
        }
        let (dispatch, guard) =
            common::start(builder(dir).compression(compression).max_file_size(1));
        log_seqs(&dispatch, 10..12);
        let stats = stop(guard);
        assert_eq!(stats.rotations, 1, "{compression:?}");
        let suffix = if matches!(compression, Compression::Gzip { .. }) {
            ".gz"
        } else {
            ".zst"
        };
        let planted: Vec<&str> = planted.iter().map(String::as_str).collect();
        rotation_util::assert_folder(
            dir,
            &[
                format!("{}.zst", future(0)),
                format!("{}{suffix}", future(3)),
            ],
            &planted,
        );
        let files = read_all(dir);
        assert_eq!(rotation_util::seqs(&files), (0..12).collect::<Vec<_>>());
    }
}

/// `build()` refuses zstd levels outside 1 to 22 (0, 23, negative) with an `InvalidConfig`
/// error naming the setting and the value, and creates nothing; levels 1 and 22 are taken.
#[test]
fn zstd_levels_outside_1_to_22_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never-created");
    for level in [0, 23, -1, -7, i32::MIN, i32::MAX] {
        let err = builder(&dir)
            .compression(Compression::Zstd { level })
            .build()
            .err()
            .unwrap_or_else(|| panic!("zstd level {level} was accepted"));
        assert!(
            matches!(err, Error::InvalidConfig { .. }),
            "{level}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("zstd level") && message.contains(&level.to_string()),
            "{level}: {message}"
        );
        assert!(
            !dir.exists(),
            "zstd level {level}: the directory was created"
        );
    }
    for level in [1, 22] {
        let (dispatch, guard) = common::start(
            builder(&dir)
                .compression(Compression::Zstd { level })
                .max_file_size(1),
        );
        log_seqs(&dispatch, 0..2);
        let stats = stop(guard);
        assert_eq!(stats.files_compressed, 1, "level {level}");
        let files = read_all(&dir);
        assert_eq!(rotation_util::seqs(&files), vec![0, 1], "level {level}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

/// With zstd the longest rotated name, `<name>.<stamp>.<seq>.log.zst.tmp`, is one byte longer
/// than gzip's: a file name that fits with gzip but not with zstd is refused with
/// `FileNameTooLong`, `longest` one less than gzip's, and one byte shorter works, rotating
/// and compressing names of the folder's longest length.
#[cfg(unix)]
#[test]
fn zstd_names_need_one_byte_more() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; pathconf only reads it.
    let max = unsafe { libc::pathconf(c.as_ptr(), libc::_PC_NAME_MAX) };
    assert!(max > 0, "pathconf(_PC_NAME_MAX) failed");
    let max = max as usize;
    let gzip_longest = "n".repeat(max - 35);
    match logsink::LogSink::builder()
        .directory(dir)
        .file_name(&gzip_longest)
        .compression(Compression::Zstd { level: 1 })
        .build()
    {
        Err(Error::FileNameTooLong { longest, .. }) => assert_eq!(longest, max - 36),
        other => panic!("expected FileNameTooLong, got {:?}", other.err()),
    }
    let base = "n".repeat(max - 36);
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir)
        .file_name(&base)
        .flush_interval(Duration::from_secs(3600))
        .max_file_size(1)
        .compression(Compression::Zstd { level: 1 })
        .build()
        .expect("the longest name for zstd");
    log_seqs(&common::dispatch(layer), 0..3);
    let stats = stop(guard);
    assert_eq!(stats.files_compressed, 2);
    let mut names: Vec<String> = rotation_util::list(dir)
        .into_iter()
        .filter(|n| n.starts_with(&base))
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    let mut seqs = Vec::new();
    for name in &names {
        let bytes = if name.ends_with(".zst") {
            assert_eq!(name.len(), max - ".tmp".len(), "{name}");
            unzstd_one_frame(&fs::read(dir.join(name)).unwrap(), name)
        } else {
            fs::read(dir.join(name)).unwrap()
        };
        for line in common::json_lines(&bytes, name) {
            seqs.push(common::field_u64(&line, "seq"));
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, vec![0, 1, 2]);
}
