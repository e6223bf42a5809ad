//! Start-up recovery of a folder left by an earlier run (or a killed one): each case is laid
//! out by hand in a temporary folder before `build()`, then the sink is shut down (which waits
//! for recovery's compressions and retention) and the folder is checked file by file.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::rotation_util;
use logsink::{Compression, Period, Stats};
use rotation_util::{Gunzip, ACTIVE};

/// A rotated name from an earlier run (2026-11-24T14:26:18Z, sequence 0).
const R0: &str = "app.20261124T142618Z.000000.log";
/// The next one.
const R1: &str = "app.20261124T142618Z.000001.log";

/// A builder on `dir` with the test's file name and a flush timer that never fires.
fn builder(dir: &Path) -> logsink::Builder {
    common::builder(dir)
}

/// Starts a sink on `dir`, logs nothing, and shuts it down.
fn start_and_stop(builder: logsink::Builder) -> Stats {
    let (_dispatch, guard) = common::start(builder);
    let stats = guard.shutdown_blocking().expect("shutdown");
    assert_eq!(stats.write_errors, 0, "{:?}", stats.last_error);
    stats
}

/// Asserts that `<dir>/<name>` is a gzip file that both flate2 and the system gzip decompress
/// to exactly `expected`.
fn assert_gz_holds(dir: &Path, name: &str, expected: &[u8]) {
    let path = dir.join(name);
    let by_system = rotation_util::content(&path, Gunzip::System);
    let by_flate2 = rotation_util::gunzip_flate2(&path);
    assert!(by_system == expected, "{name}: gzip -dc gives other bytes");
    assert!(by_flate2 == expected, "{name}: flate2 gives other bytes");
}

/// A `.log.gz.tmp` of garbage beside its rotated `.log` (a compression cut short): the
/// temporary file is removed, the `.log` is compressed into a valid `.gz` holding exactly its
/// original bytes, and the `.log` is gone.
#[test]
fn a_cut_short_compression_is_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let original = rotation_util::old_lines(0..50);
    fs::write(tmp.path().join(R0), &original).unwrap();
    fs::write(tmp.path().join(format!("{R0}.gz.tmp")), b"\x1f\x8b garbage").unwrap();

    let stats = start_and_stop(builder(tmp.path()));
    assert_eq!(stats.files_compressed, 1);
    assert_eq!(stats.files_deleted, 0);
    assert_eq!(stats.rotations, 0);
    rotation_util::assert_folder(tmp.path(), &[format!("{R0}.gz")], &[]);
    assert_gz_holds(tmp.path(), &format!("{R0}.gz"), &original);
    assert_eq!(fs::metadata(tmp.path().join(ACTIVE)).unwrap().len(), 0);
}

/// Rotated `.log` files without their `.gz` (rotated, never compressed) are compressed, each
/// into its own `.gz` holding exactly its bytes, and the `.log`s are gone.
#[test]
fn rotated_logs_without_gz_are_compressed() {
    let tmp = tempfile::tempdir().unwrap();
    let first = rotation_util::old_lines(0..30);
    let second = rotation_util::old_lines(30..70);
    fs::write(tmp.path().join(R0), &first).unwrap();
    fs::write(tmp.path().join(R1), &second).unwrap();

    let stats = start_and_stop(builder(tmp.path()));
    assert_eq!(stats.files_compressed, 2);
    assert_eq!(stats.files_deleted, 0);
    rotation_util::assert_folder(tmp.path(), &[format!("{R0}.gz"), format!("{R1}.gz")], &[]);
    assert_gz_holds(tmp.path(), &format!("{R0}.gz"), &first);
    assert_gz_holds(tmp.path(), &format!("{R1}.gz"), &second);
    let files = rotation_util::read_in_order(tmp.path(), ".log.gz", Gunzip::Flate2);
    assert_eq!(rotation_util::seqs(&files), (0..70).collect::<Vec<_>>());
}

/// A `.log` beside a complete `.gz` of the same name (killed between the rename and the
/// delete): the `.log` is removed, the `.gz` is left byte for byte as it was, and every line
/// is in the folder exactly once.
#[test]
fn a_log_beside_its_complete_gz_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let original = rotation_util::old_lines(0..40);
    let gz = rotation_util::gzip_bytes(&original);
    fs::write(tmp.path().join(R0), &original).unwrap();
    fs::write(tmp.path().join(format!("{R0}.gz")), &gz).unwrap();

    let stats = start_and_stop(builder(tmp.path()));
    assert_eq!(stats.files_compressed, 0);
    assert_eq!(stats.files_deleted, 0);
    rotation_util::assert_folder(tmp.path(), &[format!("{R0}.gz")], &[]);
    assert!(fs::read(tmp.path().join(format!("{R0}.gz"))).unwrap() == gz);
    let files = rotation_util::read_in_order(tmp.path(), ".log.gz", Gunzip::System);
    assert_eq!(rotation_util::seqs(&files), (0..40).collect::<Vec<_>>());
}

/// A `.log` beside a `.gz` of the same name that does not hold it (another file's data, a
/// planted or truncated `.gz`): nothing is deleted, both stay byte for byte, and the `.log`'s
/// events are all still there; recovery does not take the `.gz` for the `.log`'s.
#[test]
fn a_log_beside_a_gz_that_is_not_its_own_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let original = rotation_util::old_lines(0..40);
    for (what, gz) in [
        (
            "other data",
            rotation_util::gzip_bytes(&rotation_util::old_lines(100..140)),
        ),
        ("cut short", {
            let mut gz = rotation_util::gzip_bytes(&original);
            gz.truncate(gz.len() - 20);
            gz
        }),
    ] {
        fs::write(tmp.path().join(R0), &original).unwrap();
        fs::write(tmp.path().join(format!("{R0}.gz")), &gz).unwrap();
        let stats = start_and_stop(builder(tmp.path()));
        assert_eq!(stats.files_deleted, 0, "{what}");
        assert!(fs::read(tmp.path().join(R0)).unwrap() == original, "{what}");
        assert!(
            fs::read(tmp.path().join(format!("{R0}.gz"))).unwrap() == gz,
            "{what}"
        );
    }
}

/// Files that are not exactly this sink's rotated names — including look-alikes and a
/// directory named like a rotated file — survive recovery and retention (`keep_files(1)`)
/// byte for byte, while the sink's own rotated files are recovered (a stray `.gz.tmp`
/// removed, a `.log` compressed) and all but the newest deleted.
#[test]
fn foreign_files_survive_recovery_and_retention() {
    const FOREIGN: [&str; 13] = [
        "app.notes.txt",
        "other.log",
        "app.backup.log.old",
        "app.20261124T142618Z.000001.log.old",
        "app.20261124T142618Z.1.log",
        "app.20261124T142618Z.0000001.log",
        "app.20261124t142618Z.000001.log",
        "app.20261324T142618Z.000001.log",
        "app2.20261124T142618Z.000001.log",
        "xapp.20261124T142618Z.000001.log",
        "app.20261124T142618Z.000001.gz",
        "app.20261124T142618Z.000001.log.gz.tmp.bak",
        "app.log.1",
    ];
    const FOREIGN_DIR: &str = "app.20261124T142618Z.000000.log.gz";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for name in FOREIGN {
        fs::write(dir.join(name), format!("not the sink's: {name}\n")).unwrap();
    }
    fs::create_dir(dir.join(FOREIGN_DIR)).unwrap();
    fs::write(dir.join(FOREIGN_DIR).join("inside"), "x").unwrap();

    let r2 = "app.20261124T142618Z.000002.log";
    let r3 = "app.20261124T142618Z.000003.log";
    fs::write(
        dir.join(format!("{R1}.gz")),
        rotation_util::gzip_bytes(&rotation_util::old_lines(0..10)),
    )
    .unwrap();
    fs::write(
        dir.join(format!("{r2}.gz")),
        rotation_util::gzip_bytes(&rotation_util::old_lines(10..20)),
    )
    .unwrap();
    fs::write(dir.join(format!("{r2}.gz.tmp")), "garbage").unwrap();
    let newest = rotation_util::old_lines(20..30);
    fs::write(dir.join(r3), &newest).unwrap();

    let stats = start_and_stop(builder(dir).keep_files(1));
    assert_eq!(stats.files_compressed, 1);
    assert_eq!(stats.files_deleted, 2);
    let mut expected_foreign = FOREIGN.to_vec();
    expected_foreign.push(FOREIGN_DIR);
    rotation_util::assert_folder(dir, &[format!("{r3}.gz")], &expected_foreign);
    for name in FOREIGN {
        assert_eq!(
            fs::read_to_string(dir.join(name)).unwrap(),
            format!("not the sink's: {name}\n"),
            "{name} changed"
        );
    }
    assert_eq!(
        rotation_util::list(&dir.join(FOREIGN_DIR)),
        ["inside"],
        "the foreign directory changed"
    );
    assert_gz_holds(dir, &format!("{r3}.gz"), &newest);
}

/// With `Compression::None`, a rotated `.log` stays a `.log` (same bytes), and stray
/// `.gz.tmp` files — beside a `.log` or alone — are removed.
#[test]
fn without_compression_logs_stay_and_stray_tmps_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let original = rotation_util::old_lines(0..25);
    fs::write(dir.join(R0), &original).unwrap();
    fs::write(dir.join(format!("{R0}.gz.tmp")), "half a gzip").unwrap();
    fs::write(dir.join(format!("{R1}.gz.tmp")), "an orphan").unwrap();

    let stats = start_and_stop(builder(dir).compression(Compression::None));
    assert_eq!(stats.files_compressed, 0);
    assert_eq!(stats.files_deleted, 0);
    rotation_util::assert_folder(dir, &[R0.to_owned()], &[]);
    assert!(fs::read(dir.join(R0)).unwrap() == original);
}

/// After a restart, new rotated names sort after every existing one, even when the existing
/// stamp is far in the future: with `app.29991231T235959Z.000005.log.gz` present the next
/// rotations are named `...000006.log` and `...000007.log` (then compressed), the old file is
/// untouched, and reading in name order gives every event once, in order.
#[test]
fn new_names_sort_after_existing_ones_from_the_future() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let future = "app.29991231T235959Z.000005.log.gz";
    let old_gz = rotation_util::gzip_bytes(&rotation_util::old_lines(0..10));
    fs::write(dir.join(future), &old_gz).unwrap();

    // max_file_size(1): every event but the first in a file rotates, so three events make two
    // rotated files and leave the third active.
    let (dispatch, guard) = common::start(builder(dir).max_file_size(1));
    common::log_seqs(&dispatch, 10..13);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.rotations, 2);
    assert_eq!(stats.files_compressed, 2);

    let expected = [
        future.to_owned(),
        "app.29991231T235959Z.000006.log.gz".to_owned(),
        "app.29991231T235959Z.000007.log.gz".to_owned(),
    ];
    rotation_util::assert_folder(dir, &expected, &[]);
    assert!(fs::read(dir.join(future)).unwrap() == old_gz);
    let files = rotation_util::read_in_order(dir, ".log.gz", Gunzip::System);
    assert_eq!(rotation_util::seqs(&files), (0..13).collect::<Vec<_>>());
    assert_eq!(files.last().unwrap().lines.len(), 1);
}

/// An active file left by an earlier run whose last write was in an earlier period
/// (`rotate_every(Day)`, modified on 2020-01-02) is rotated at start-up — named after that
/// time — and compressed; new events go to a fresh active file.
#[test]
fn a_stale_active_file_is_rotated_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let original = rotation_util::old_lines(0..20);
    fs::write(dir.join(ACTIVE), &original).unwrap();
    let then = UNIX_EPOCH + Duration::from_secs(1_577_934_245); // 2020-01-02T03:04:05Z
    fs::File::options()
        .write(true)
        .open(dir.join(ACTIVE))
        .unwrap()
        .set_modified(then)
        .unwrap();
    assert!(SystemTime::now() > then + Duration::from_secs(86_400));

    let (dispatch, guard) = common::start(builder(dir).rotate_every(Period::Day));
    common::log_seqs(&dispatch, 20..23);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.rotations, 1);
    assert_eq!(stats.files_compressed, 1);

    let stale = "app.20200102T030405Z.000000.log.gz";
    rotation_util::assert_folder(dir, &[stale.to_owned()], &[]);
    assert_gz_holds(dir, stale, &original);
    let files = rotation_util::read_in_order(dir, ".log.gz", Gunzip::Flate2);
    assert_eq!(rotation_util::seqs(&files), (0..23).collect::<Vec<_>>());
}

/// An active file left ending in a cut-short line (a crash mid-write): the sink ends that
/// line with a newline before its first event, so the new events are whole lines of their
/// own and the earlier whole lines are untouched.
#[test]
fn a_cut_short_active_line_is_ended_before_new_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut original = rotation_util::old_lines(0..5);
    let partial = br#"{"timestamp":"2026-11-24T14:26:18.000000Z","level":"IN"#;
    original.extend_from_slice(partial);
    fs::write(dir.join(ACTIVE), &original).unwrap();

    let (dispatch, guard) = common::start(builder(dir));
    common::log_seqs(&dispatch, 5..8);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, 3);

    let bytes = fs::read(dir.join(ACTIVE)).unwrap();
    assert!(bytes.starts_with(&original));
    let lines = common::split_lines(&bytes, ACTIVE);
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[5].as_bytes(), partial);
    let seqs: Vec<u64> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(i, l)| common::field_u64(&common::parse_line(l, &format!("line {i}")), "seq"))
        .collect();
    assert_eq!(seqs, (0..8).collect::<Vec<_>>());
}

/// An active file left by an earlier run counts toward `max_file_size`: when the first new
/// event would take it past the limit, the old file is rotated (and compressed) whole and the
/// event starts a fresh active file.
#[test]
fn an_existing_active_file_counts_toward_the_size_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let original = rotation_util::old_lines(0..10);
    fs::write(dir.join(ACTIVE), &original).unwrap();

    let (dispatch, guard) = common::start(builder(dir).max_file_size(original.len() as u64 + 10));
    common::log_seqs(&dispatch, 10..11);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.rotations, 1);
    assert_eq!(stats.files_compressed, 1);

    let gz = rotation_util::rotated(dir, ".log.gz");
    assert_eq!(gz.len(), 1);
    rotation_util::assert_folder(dir, &gz, &[]);
    assert_gz_holds(dir, &gz[0], &original);
    let files = rotation_util::read_in_order(dir, ".log.gz", Gunzip::Flate2);
    assert_eq!(rotation_util::seqs(&files), (0..11).collect::<Vec<_>>());
}
