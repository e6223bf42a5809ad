//! Time-driven behaviour tested with an injected [`MockClock`]: rotation by period (in UTC and
//! in other offsets), combined size and time rotation, a clock that jumps backwards, idle
//! rotation, start-up rotation of a stale active file, and retention by age.
//!
//! No test sleeps. Where a test moves the clock across a period boundary between single events
//! it first waits for the writer (`flush_blocking`), so that the result does not depend on when
//! the writer thread happens to wake; the test of one unsynchronised burst of events checks
//! only what must hold however the writer batches them.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};
use tracing_subscriber::prelude::*;

use crate::caller::clock::{Clock, MockClock};
use crate::handoff::record::{Marker, Reply};
use crate::{Builder, Compression, LogSink, Period, SinkGuard, Stats};

pub(super) const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
pub(super) const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

// ---------------------------------------------------------------------------------------------
// Time helpers (independent of the crate's own formatting and boundary code).

/// A UTC instant from its calendar fields.
fn utc(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> SystemTime {
    let secs = time::Date::from_calendar_date(year, time::Month::try_from(month).unwrap(), day)
        .unwrap()
        .with_hms(hour, minute, second)
        .unwrap()
        .assume_utc()
        .unix_timestamp();
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
}

/// 2026-11-24 at `hour:minute:second` UTC.
pub(super) fn nov24(hour: u8, minute: u8, second: u8) -> SystemTime {
    utc(2026, 11, 24, hour, minute, second)
}

fn unix_secs(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

fn date_time(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix_secs(t)).unwrap()
}

/// `YYYYMMDDTHHMMSSZ`: the stamp a rotated file opened at `t` carries.
pub(super) fn stamp(t: SystemTime) -> String {
    let dt = date_time(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// The `timestamp` text of an event emitted at `t` (RFC 3339, UTC, microseconds).
fn rfc3339(t: SystemTime) -> String {
    let dt = date_time(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        t.duration_since(UNIX_EPOCH).unwrap().subsec_micros()
    )
}

/// Parses a line's `timestamp` (`2026-11-24T12:00:10.000000Z`) back into a time.
fn parse_rfc3339(text: &str) -> SystemTime {
    assert_eq!(text.len(), 27, "unexpected timestamp {text:?}");
    let num = |r: std::ops::Range<usize>| -> u32 { text[r].parse().unwrap() };
    let whole = utc(
        i32::try_from(num(0..4)).unwrap(),
        u8::try_from(num(5..7)).unwrap(),
        u8::try_from(num(8..10)).unwrap(),
        u8::try_from(num(11..13)).unwrap(),
        u8::try_from(num(14..16)).unwrap(),
        u8::try_from(num(17..19)).unwrap(),
    );
    assert!(text.ends_with('Z'), "{text:?}");
    whole + Duration::from_micros(u64::from(num(20..26)))
}

/// The start of the period (of `len`, in the offset of `offset_secs` east of UTC) holding `t`.
fn period_start(t: SystemTime, len: Duration, offset_secs: i64) -> i64 {
    let len = i64::try_from(len.as_secs()).unwrap();
    (unix_secs(t) + offset_secs).div_euclid(len) * len - offset_secs
}

// ---------------------------------------------------------------------------------------------
// Running a sink and reading its folder back.

/// A builder for `<dir>/app.log` without compression (tests that need gzip set it again).
pub(super) fn builder(dir: &Path) -> Builder {
    LogSink::builder()
        .directory(dir)
        .file_name("app")
        .compression(Compression::None)
}

/// Builds the sink on `clock`, runs `body` with its layer installed as the default subscriber,
/// shuts it down and returns the final statistics.
pub(super) fn run_sink(
    builder: Builder,
    clock: &Arc<MockClock>,
    body: impl FnOnce(&SinkGuard),
) -> Stats {
    let (layer, guard) = builder
        .build_with_clock(Clock::Mock(clock.clone()))
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || body(&guard));
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_dropped, 0, "{stats:?}");
    assert_eq!(stats.write_errors, 0, "{stats:?}");
    stats
}

/// The one call site for ordinary events: every line has the same shape, and only its
/// timestamp and `seq` differ.
pub(super) fn emit(seq: u64) {
    tracing::info!(seq, "e");
}

/// Waits until the writer has handled everything sent so far, then moves the clock to `t`
/// and emits event `seq` there.
pub(super) fn log_at(guard: &SinkGuard, clock: &MockClock, t: SystemTime, seq: u64) {
    guard.flush_blocking().unwrap();
    clock.set(t);
    emit(seq);
}

/// One of the sink's files, read back and parsed line by line.
#[derive(Debug)]
pub(super) struct LogFile {
    pub(super) name: String,
    lines: Vec<Value>,
}

impl LogFile {
    pub(super) fn seqs(&self) -> Vec<u64> {
        self.lines
            .iter()
            .map(|v| v["fields"]["seq"].as_u64().expect("every event has a seq"))
            .collect()
    }

    fn timestamps(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|v| v["timestamp"].as_str().unwrap().to_owned())
            .collect()
    }

    fn times(&self) -> Vec<SystemTime> {
        self.timestamps().iter().map(|s| parse_rfc3339(s)).collect()
    }
}

/// Whether `name` is a rotated name of `app` (`app.<16-char stamp>.<6 digits>.log[.gz]`);
/// checked here independently of the crate's parser.
fn is_rotated_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("app.") else {
        return false;
    };
    let rest = rest.strip_suffix(".gz").unwrap_or(rest);
    let Some(rest) = rest.strip_suffix(".log") else {
        return false;
    };
    let Some((stamp, seq)) = rest.split_once('.') else {
        return false;
    };
    let b = stamp.as_bytes();
    // `Z`, or an offset such as `+0530` (names in the sink's UTC offset).
    let zone = match b.get(15..) {
        Some(b"Z") => true,
        Some([b'+' | b'-', rest @ ..]) => rest.len() == 4 && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    b.len() >= 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && zone
        && seq.len() == 6
        && seq.bytes().all(|c| c.is_ascii_digit())
}

/// Reads a file, decompressing it if its name ends in `.gz`.
pub(super) fn read_maybe_gz(path: &Path) -> String {
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
    } else {
        File::open(path).unwrap().read_to_string(&mut text).unwrap();
    }
    text
}

/// The rotated files and the active `app.log` (if present) in name order, every line parsed.
/// Anything else in the folder is ignored; a leftover `.gz.tmp` fails the test.
pub(super) fn read_logs(dir: &Path) -> Vec<LogFile> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .inspect(|n| assert!(!n.ends_with(".tmp"), "leftover temporary file {n}"))
        .filter(|n| n == "app.log" || is_rotated_name(n))
        .collect();
    names.sort();
    if let Some(active) = names.iter().position(|n| n == "app.log") {
        // "app.2..." sorts before "app.l...": the active file is always read last.
        assert_eq!(active, names.len() - 1, "{names:?}");
    }
    names
        .into_iter()
        .map(|name| {
            let text = read_maybe_gz(&dir.join(&name));
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{name}: last line cut short"
            );
            let lines = text
                .lines()
                .map(|line| {
                    serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {line}"))
                })
                .collect();
            LogFile { name, lines }
        })
        .collect()
}

/// The name and timestamps of each file, for comparison with what a test expects.
fn layout(files: &[LogFile]) -> Vec<(String, Vec<String>)> {
    files
        .iter()
        .map(|f| (f.name.clone(), f.timestamps()))
        .collect()
}

/// What a test expects: `(file name, times of its events)` per file, in name order.
fn expected(files: &[(String, Vec<SystemTime>)]) -> Vec<(String, Vec<String>)> {
    files
        .iter()
        .map(|(name, times)| (name.clone(), times.iter().map(|t| rfc3339(*t)).collect()))
        .collect()
}

/// `app.<stamp of t>.<seq>.log`.
pub(super) fn rotated(t: SystemTime, seq: u32) -> String {
    format!("app.{}.{seq:06}.log", stamp(t))
}

/// Logs one event at each of `times` (in order, each with the next `seq`), waiting for the
/// writer before each clock move; returns the statistics and the files read back.
fn log_each(builder: Builder, times: &[SystemTime]) -> (Stats, Vec<LogFile>) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = MockClock::new(times[0]);
    let stats = run_sink(builder.directory(tmp.path()), &clock, |guard| {
        for (seq, t) in times.iter().enumerate() {
            log_at(guard, &clock, *t, seq as u64);
        }
    });
    let files = read_logs(tmp.path());
    let seqs: Vec<u64> = files.iter().flat_map(LogFile::seqs).collect();
    assert_eq!(seqs, (0..times.len() as u64).collect::<Vec<_>>());
    assert_eq!(stats.events_written, times.len() as u64);
    assert_eq!(stats.rotations, files.len() as u64 - 1, "{stats:?}");
    (stats, files)
}

/// Runs `log_each` for a period and offset and checks the files against `groups`: the events
/// of each file, which must be consecutive slices of the times logged. Each rotated file is
/// named after its first event; the last group is the active file.
fn check_groups(period: Period, offset: UtcOffset, groups: &[&[SystemTime]]) {
    let times: Vec<SystemTime> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let builder = builder(Path::new("unused"))
        .rotate_every(period)
        .utc_offset(offset);
    let (_, files) = log_each(builder, &times);
    let want: Vec<(String, Vec<SystemTime>)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let name = if i + 1 == groups.len() {
                "app.log".to_owned()
            } else {
                rotated(g[0], 0)
            };
            (name, g.to_vec())
        })
        .collect();
    assert_eq!(layout(&files), expected(&want), "{period:?} at {offset:?}");
}

fn offset(hours: i8, minutes: i8) -> UtcOffset {
    UtcOffset::from_hms(hours, minutes, 0).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Rotation by period.

/// Minute rotation: an event exactly on the boundary (12:01:00) opens the new file, events on
/// either side of it land in their own minute's file, a gap of several minutes gives one
/// rotation (not one per minute passed), and each rotated file is named after the time of its
/// first event.
#[test]
fn minute_period_splits_at_each_minute_and_names_files_by_first_event() {
    let (_, files) = log_each(
        builder(Path::new("unused")).rotate_every(Period::Minute),
        &[
            nov24(12, 0, 10),
            nov24(12, 0, 50),
            nov24(12, 1, 0),
            nov24(12, 1, 30),
            nov24(12, 3, 5),
        ],
    );
    assert_eq!(
        layout(&files),
        [
            (
                "app.20261124T120010Z.000000.log".to_owned(),
                vec![
                    "2026-11-24T12:00:10.000000Z".to_owned(),
                    "2026-11-24T12:00:50.000000Z".to_owned()
                ]
            ),
            (
                "app.20261124T120100Z.000000.log".to_owned(),
                vec![
                    "2026-11-24T12:01:00.000000Z".to_owned(),
                    "2026-11-24T12:01:30.000000Z".to_owned()
                ]
            ),
            (
                "app.log".to_owned(),
                vec!["2026-11-24T12:03:05.000000Z".to_owned()]
            ),
        ]
    );
}

/// Hour rotation in UTC: the last microsecond of an hour stays in its file, the first of the
/// next hour starts a new one; a gap of hours gives a single rotation.
#[test]
fn hour_period_splits_at_the_top_of_the_hour() {
    let just_before = nov24(12, 59, 59) + Duration::from_micros(999_999);
    check_groups(
        Period::Hour,
        UtcOffset::UTC,
        &[
            &[nov24(12, 10, 0), nov24(12, 30, 0), just_before],
            &[nov24(13, 0, 0), nov24(13, 59, 0)],
            &[nov24(16, 0, 1), nov24(16, 5, 0)],
        ],
    );
}

/// Day rotation in UTC: midnight opens a new file, an event at 23:59:59.999999 stays in the
/// old one, and two quiet days give one rotation.
#[test]
fn day_period_splits_at_utc_midnight() {
    let just_before = utc(2026, 11, 24, 23, 59, 59) + Duration::from_micros(999_999);
    check_groups(
        Period::Day,
        UtcOffset::UTC,
        &[
            &[nov24(8, 0, 0), nov24(17, 0, 0), just_before],
            &[utc(2026, 11, 25, 0, 0, 0), utc(2026, 11, 25, 12, 0, 0)],
            &[utc(2026, 11, 27, 0, 0, 1)],
        ],
    );
}

/// Day rotation at +05:30 happens at local midnight, 18:30 UTC; UTC midnight (00:00:01 UTC)
/// does not rotate.
#[test]
fn day_period_at_plus_0530_rotates_at_1830_utc_not_at_utc_midnight() {
    let just_before = nov24(18, 29, 59) + Duration::from_micros(999_999);
    check_groups(
        Period::Day,
        offset(5, 30),
        &[
            &[nov24(18, 0, 0), just_before],
            &[
                nov24(18, 30, 0),
                nov24(23, 59, 59),
                utc(2026, 11, 25, 0, 0, 1), // UTC midnight: same local day
                utc(2026, 11, 25, 18, 29, 59),
            ],
            &[utc(2026, 11, 25, 18, 30, 0)],
        ],
    );
}

/// With `names_in_utc_offset(true)`, day rotation at +05:30 names each rotated file after the
/// local time of its first event, marked `+0530` (`app.20261124T233000+0530.000000.log` for
/// 18:00 UTC), the files split as in UTC, the names sort in write order, and compression and
/// retention (`keep_files(2)`, which reads the names back) keep the newest two.
#[test]
fn names_in_the_offset_carry_local_time_and_sort_in_write_order() {
    let times = [
        nov24(18, 0, 0),
        nov24(18, 30, 0),
        utc(2026, 11, 25, 18, 30, 0),
        utc(2026, 11, 26, 18, 30, 0),
        utc(2026, 11, 27, 18, 30, 0),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let clock = MockClock::new(times[0]);
    let stats = run_sink(
        builder(tmp.path())
            .rotate_every(Period::Day)
            .utc_offset(offset(5, 30))
            .names_in_utc_offset(true)
            .compression(Compression::Gzip { level: 6 })
            .keep_files(2),
        &clock,
        |guard| {
            for (seq, t) in times.iter().enumerate() {
                log_at(guard, &clock, *t, seq as u64);
            }
        },
    );
    assert_eq!(stats.rotations, 4);
    assert_eq!(stats.files_deleted, 2);
    let files = read_logs(tmp.path());
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "app.20261126T000000+0530.000000.log.gz",
            "app.20261127T000000+0530.000000.log.gz",
            "app.log"
        ]
    );
    let seqs: Vec<u64> = files.iter().flat_map(LogFile::seqs).collect();
    assert_eq!(seqs, [2, 3, 4]);
}

/// Hour rotation at +05:30 happens at half past each UTC hour; the top of the UTC hour does
/// not rotate.
#[test]
fn hour_period_at_plus_0530_rotates_at_half_past_utc() {
    check_groups(
        Period::Hour,
        offset(5, 30),
        &[
            &[nov24(12, 0, 0), nov24(12, 29, 59)],
            &[nov24(12, 30, 0), nov24(13, 0, 0), nov24(13, 29, 59)],
            &[nov24(13, 30, 0)],
        ],
    );
}

/// A negative, whole-hour offset (-08:00): Hour boundaries stay at the top of each UTC hour,
/// and Day boundaries fall at local midnight, 08:00 UTC (not at UTC midnight).
#[test]
fn negative_offset_hour_and_day_boundaries() {
    check_groups(
        Period::Hour,
        offset(-8, 0),
        &[
            &[nov24(12, 0, 0), nov24(12, 59, 59)],
            &[nov24(13, 0, 0), nov24(13, 30, 0)],
            &[nov24(14, 0, 0)],
        ],
    );
    check_groups(
        Period::Day,
        offset(-8, 0),
        &[
            &[nov24(7, 0, 0), nov24(7, 59, 59)],
            &[
                nov24(8, 0, 0),
                utc(2026, 11, 25, 0, 0, 0), // UTC midnight: same local day
                utc(2026, 11, 25, 7, 59, 59),
            ],
            &[utc(2026, 11, 25, 8, 0, 0)],
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Size and time together.

/// The length of one line written by [`emit`] with a one-digit `seq` (every such line has the
/// same length: the timestamp has a fixed width).
fn line_len() -> u64 {
    let tmp = tempfile::tempdir().unwrap();
    let clock = MockClock::new(nov24(12, 0, 0));
    run_sink(builder(tmp.path()), &clock, |_| emit(0));
    fs::metadata(tmp.path().join("app.log")).unwrap().len()
}

/// Size and Minute rotation combine as "whichever comes first": with room for three lines, six
/// events in one second give two size rotations (the second file, opened in the same second,
/// gets the next sequence number), and when the minute ends the active file rotates on time
/// although it holds a single small line.
#[test]
fn size_and_minute_rotation_whichever_comes_first() {
    let len = line_len();
    let max = 3 * len + len / 2;
    let tmp = tempfile::tempdir().unwrap();
    let clock = MockClock::new(nov24(12, 0, 1));
    let stats = run_sink(
        builder(tmp.path())
            .max_file_size(max)
            .rotate_every(Period::Minute),
        &clock,
        |guard| {
            for seq in 0..6 {
                emit(seq);
            }
            guard.flush_blocking().unwrap();
            assert_eq!(guard.stats().rotations, 1, "one size rotation so far");
            log_at(guard, &clock, nov24(12, 0, 30), 6);
            log_at(guard, &clock, nov24(12, 1, 0), 7);
            log_at(guard, &clock, nov24(12, 1, 2), 8);
        },
    );
    assert_eq!(stats.rotations, 3);
    let files = read_logs(tmp.path());
    let got: Vec<(String, Vec<u64>)> = files.iter().map(|f| (f.name.clone(), f.seqs())).collect();
    assert_eq!(
        got,
        [
            ("app.20261124T120001Z.000000.log".to_owned(), vec![0, 1, 2]),
            ("app.20261124T120001Z.000001.log".to_owned(), vec![3, 4, 5]),
            ("app.20261124T120030Z.000000.log".to_owned(), vec![6]),
            ("app.log".to_owned(), vec![7, 8]),
        ]
    );
    for f in &files {
        let size = fs::metadata(tmp.path().join(&f.name)).unwrap().len();
        assert!(size <= max, "{} is {size} bytes, limit {max}", f.name);
    }
}

// ---------------------------------------------------------------------------------------------
// A clock that goes backwards.

/// A clock that jumps backwards causes no rotation storm: after an event at 12:00:10, a hundred
/// events at 11:00:00 and one at 12:00:20 stay in the same file (no boundary was crossed
/// forward); 12:01:05 rotates once. Size rotations after a second jump back (to 11:30) get
/// names that continue after the last one (same stamp, next sequence number) instead of going
/// back in time, so reading the files in name order gives every event once, in the order it was
/// logged.
#[test]
fn backwards_clock_causes_no_rotation_storm_and_names_keep_write_order() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = MockClock::new(nov24(12, 0, 10));
    let pad = "x".repeat(4_000);
    let stats = run_sink(
        builder(tmp.path())
            .max_file_size(20_000) // room for ~140 small events or four padded ones
            .rotate_every(Period::Minute),
        &clock,
        |guard| {
            emit(0);
            log_at(guard, &clock, nov24(11, 0, 0), 1);
            for seq in 2..=100 {
                emit(seq);
            }
            log_at(guard, &clock, nov24(12, 0, 20), 101);
            guard.flush_blocking().unwrap();
            assert_eq!(
                guard.stats().rotations,
                0,
                "no forward boundary was crossed"
            );

            log_at(guard, &clock, nov24(12, 1, 5), 102);
            guard.flush_blocking().unwrap();
            assert_eq!(guard.stats().rotations, 1);

            clock.set(nov24(11, 30, 0));
            for seq in 103..=122 {
                tracing::info!(seq, pad = %pad, "e");
            }
            guard.flush_blocking().unwrap();
            assert!(guard.stats().rotations >= 4, "{:?}", guard.stats());
        },
    );
    let files = read_logs(tmp.path());
    let seqs: Vec<u64> = files.iter().flat_map(LogFile::seqs).collect();
    assert_eq!(
        seqs,
        (0..=122).collect::<Vec<_>>(),
        "name order is write order"
    );
    assert_eq!(stats.events_written, 123);
    assert_eq!(stats.rotations, files.len() as u64 - 1);
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names[0], "app.20261124T120010Z.000000.log");
    assert_eq!(files[0].seqs(), (0..=101).collect::<Vec<_>>());
    // Files opened at 12:01:05 and then at 11:30 (clock behind): one stamp, counting up.
    for (i, name) in names[1..names.len() - 1].iter().enumerate() {
        assert_eq!(*name, format!("app.20261124T120105Z.{i:06}.log"));
    }
    assert_eq!(names.last(), Some(&"app.log"));
    for f in &files {
        let size = fs::metadata(tmp.path().join(&f.name)).unwrap().len();
        assert!(size <= 20_000, "{} is {size} bytes", f.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Idle rotation.

/// A non-empty file whose period ended while no event came is rotated when the writer handles
/// a flush (reading the clock then), not before the boundary plus a grace second; the fresh active file exists and
/// is empty; an empty active file is never rotated; the next event opens the next file.
#[test]
fn idle_file_is_rotated_on_flush_after_its_period_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let active = tmp.path().join("app.log");
    let clock = MockClock::new(nov24(12, 0, 10));
    let stats = run_sink(
        builder(tmp.path()).rotate_every(Period::Minute),
        &clock,
        |guard| {
            emit(0);
            emit(1);
            guard.flush_blocking().unwrap();
            clock.set(nov24(12, 0, 59) + Duration::from_micros(999_999));
            guard.flush_blocking().unwrap();
            assert_eq!(guard.stats().rotations, 0, "the period has not ended");

            clock.set(nov24(12, 1, 0));
            guard.flush_blocking().unwrap();
            assert_eq!(
                guard.stats().rotations,
                0,
                "a quiet file waits a grace second for events stamped before the boundary"
            );

            clock.set(nov24(12, 1, 1));
            guard.flush_blocking().unwrap();
            assert_eq!(guard.stats().rotations, 1, "rotated with no new event");
            assert_eq!(fs::metadata(&active).unwrap().len(), 0, "fresh active file");
            let rotated_name = tmp.path().join("app.20261124T120010Z.000000.log");
            assert_eq!(fs::read_to_string(rotated_name).unwrap().lines().count(), 2);

            clock.advance(5 * MINUTE);
            guard.flush_blocking().unwrap();
            assert_eq!(guard.stats().rotations, 1, "an empty file is not rotated");

            emit(2); // 12:06:01
            log_at(guard, &clock, nov24(12, 7, 30), 3);
            guard.flush_blocking().unwrap();
            assert_eq!(guard.stats().rotations, 2);
        },
    );
    assert_eq!(stats.rotations, 2);
    let files = read_logs(tmp.path());
    assert_eq!(
        layout(&files),
        expected(&[
            (
                rotated(nov24(12, 0, 10), 0),
                vec![nov24(12, 0, 10), nov24(12, 0, 10)]
            ),
            (rotated(nov24(12, 6, 1), 0), vec![nov24(12, 6, 1)]),
            ("app.log".to_owned(), vec![nov24(12, 7, 30)]),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// Start-up.

/// Today at 12:00 UTC (real date): a mock start whose day began before the real present, so
/// that a file created now and back-dated by a day was modified before it was created.
fn today_noon() -> SystemTime {
    let now = unix_secs(SystemTime::now());
    UNIX_EPOCH + Duration::from_secs(u64::try_from(now - now.rem_euclid(86_400) + 43_200).unwrap())
}

/// Two valid lines, as an earlier run would have left them.
const OLD_LINES: &str = concat!(
    r#"{"timestamp":"2026-01-01T00:00:00.000000Z","level":"INFO","fields":{"seq":100,"message":"old"},"target":"t"}"#,
    "\n",
    r#"{"timestamp":"2026-01-01T00:00:01.000000Z","level":"INFO","fields":{"seq":101,"message":"old"},"target":"t"}"#,
    "\n",
);

/// Writes `app.log` with [`OLD_LINES`] and sets its modification time.
fn leave_active_file(dir: &Path, modified: SystemTime) {
    let path = dir.join("app.log");
    fs::write(&path, OLD_LINES).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

/// An active file left by an earlier run and last written in an earlier period (yesterday, by
/// the mock clock) is rotated at start-up, before any event: the rotated file holds exactly the
/// two old lines, is compressed (keeping its modification time), is named after the old file's
/// time, and new events go to a fresh `app.log`.
#[test]
fn stale_active_file_is_rotated_and_compressed_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let start = today_noon();
    let yesterday = start - DAY;
    leave_active_file(tmp.path(), yesterday);
    let clock = MockClock::new(start);
    let stats = run_sink(
        builder(tmp.path())
            .rotate_every(Period::Day)
            .compression(Compression::Gzip { level: 1 }),
        &clock,
        |guard| {
            assert_eq!(guard.stats().rotations, 1, "rotated before any event");
            emit(0);
        },
    );
    assert_eq!(stats.rotations, 1);
    assert_eq!(stats.files_compressed, 1);
    let gz_name = format!("{}.gz", rotated(yesterday, 0));
    let gz = tmp.path().join(&gz_name);
    assert_eq!(read_maybe_gz(&gz), OLD_LINES, "exactly the old lines");
    assert_eq!(fs::metadata(&gz).unwrap().modified().unwrap(), yesterday);
    let files = read_logs(tmp.path());
    let got: Vec<(String, Vec<u64>)> = files.iter().map(|f| (f.name.clone(), f.seqs())).collect();
    assert_eq!(
        got,
        [(gz_name, vec![100, 101]), ("app.log".to_owned(), vec![0])]
    );
    assert_eq!(files[1].timestamps(), [rfc3339(start)]);
}

/// The converse: an active file last written earlier in the current period is appended to at
/// start-up, not rotated.
#[test]
fn active_file_of_the_current_period_is_appended_to_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let start = today_noon();
    leave_active_file(tmp.path(), start - 11 * HOUR); // 01:00 the same day
    let clock = MockClock::new(start);
    let stats = run_sink(
        builder(tmp.path()).rotate_every(Period::Day),
        &clock,
        |guard| {
            assert_eq!(guard.stats().rotations, 0);
            emit(0);
        },
    );
    assert_eq!(stats.rotations, 0);
    let files = read_logs(tmp.path());
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "app.log");
    assert_eq!(files[0].seqs(), [100, 101, 0]);
    let text = fs::read_to_string(tmp.path().join("app.log")).unwrap();
    assert!(text.starts_with(OLD_LINES));
}

// ---------------------------------------------------------------------------------------------
// Retention by age.

/// Retention by age compares each rotated file's modification time (the real file-system time
/// of its last write, kept through compression) with the sink's clock. With the mock clock
/// started at the real present: three files rotated within half an hour survive while the clock
/// is near their write time; two hours later (by the clock) the next rotation deletes them,
/// while a rotated file whose last write is recent by that clock is kept in its `.gz` form, and
/// files in the folder that are not this sink's rotated files are never touched, however old.
#[test]
fn retention_by_age_uses_modification_time_against_the_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ancient = UNIX_EPOCH + Duration::from_secs(1_000_000_000); // 2001
    let foreign = [
        "notes.txt",
        "other.log",
        "app.old.log",
        "app.20000101T000000Z.1.log",
        "app.20000101T000000Z.000001.log.old",
    ];
    for name in foreign {
        fs::write(dir.join(name), "foreign\n").unwrap();
        File::options()
            .write(true)
            .open(dir.join(name))
            .unwrap()
            .set_modified(ancient)
            .unwrap();
    }

    let t = SystemTime::now();
    let recent = t + 2 * HOUR + 10 * MINUTE;
    let clock = MockClock::new(t);
    let stats = run_sink(
        builder(dir)
            .rotate_every(Period::Minute)
            .compression(Compression::Gzip { level: 1 })
            .max_age(HOUR),
        &clock,
        |guard| {
            emit(0);
            log_at(guard, &clock, t + 10 * MINUTE, 1); // rotates file A [0]
            log_at(guard, &clock, t + 20 * MINUTE, 2); // rotates file B [1]
            log_at(guard, &clock, t + 30 * MINUTE, 3); // rotates file C [2]
            guard.flush_blocking().unwrap();
            assert_eq!(guard.stats().rotations, 3);
            // File D [3] is the active file now; make its last write recent by the clock
            // that is about to be two hours ahead (nothing more is written to it).
            File::options()
                .write(true)
                .open(dir.join("app.log"))
                .unwrap()
                .set_modified(recent)
                .unwrap();
            log_at(guard, &clock, recent + 5 * SECOND, 4); // rotates D, applies retention
        },
    );
    assert_eq!(stats.rotations, 4);
    assert_eq!(stats.files_deleted, 3, "{stats:?}");
    for name in foreign {
        let path = dir.join(name);
        assert_eq!(fs::read_to_string(&path).unwrap(), "foreign\n", "{name}");
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), ancient);
    }
    let files = read_logs(dir);
    let got: Vec<(String, Vec<u64>)> = files.iter().map(|f| (f.name.clone(), f.seqs())).collect();
    let d_name = format!("{}.gz", rotated(t + 30 * MINUTE, 0));
    assert_eq!(
        got,
        [(d_name.clone(), vec![3]), ("app.log".to_owned(), vec![4])]
    );
    assert_eq!(
        fs::metadata(dir.join(&d_name)).unwrap().modified().unwrap(),
        recent,
        "compression keeps the modification time"
    );
    let mut all: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    all.sort();
    let mut want: Vec<String> = foreign.iter().map(|s| (*s).to_owned()).collect();
    want.extend([d_name, "app.log".to_owned(), ".app.lock".to_owned()]);
    want.sort();
    assert_eq!(all, want);
}

// ---------------------------------------------------------------------------------------------
// One burst.

/// Events logged in a quick burst (so the writer takes many of them in one batch) while the
/// clock moves 50 ms per event still split by their own timestamps: every event is written once
/// and in order, every file holds events of a single minute, every line of a rotated file is
/// before that file's end boundary, each rotated file is named after its first event, and
/// events exactly on a boundary start the new file.
///
/// (It does not check that each minute is in one file only: see
/// [`backlog_at_a_boundary_stays_in_its_period_file`].)
#[test]
fn burst_spanning_boundaries_splits_by_event_time() {
    const EVENTS: u64 = 4_000;
    const STEP: Duration = Duration::from_millis(50);
    let tmp = tempfile::tempdir().unwrap();
    let start = nov24(12, 0, 0);
    let clock = MockClock::new(start);
    let stats = run_sink(
        builder(tmp.path()).rotate_every(Period::Minute),
        &clock,
        |_| {
            for seq in 0..EVENTS {
                emit(seq);
                clock.advance(STEP);
            }
        },
    );
    let files = read_logs(tmp.path());
    let seqs: Vec<u64> = files.iter().flat_map(LogFile::seqs).collect();
    assert_eq!(seqs, (0..EVENTS).collect::<Vec<_>>());
    assert_eq!(stats.events_written, EVENTS);
    assert_eq!(stats.rotations, files.len() as u64 - 1);
    // 4,000 events 50 ms apart span 200 s: at least the minutes 12:00 to 12:03.
    assert!(files.len() >= 4, "{} files", files.len());
    for f in &files {
        let times = f.times();
        assert!(!times.is_empty(), "{} is empty", f.name);
        let begin = period_start(times[0], MINUTE, 0);
        let end = begin + 60;
        for t in &times {
            assert_eq!(
                period_start(*t, MINUTE, 0),
                begin,
                "{}: mixed minutes",
                f.name
            );
            assert!(unix_secs(*t) < end, "{}: line after the file's end", f.name);
        }
        if f.name != "app.log" {
            let own_stamp = format!("app.{}.", stamp(times[0]));
            assert!(f.name.starts_with(&own_stamp), "{} vs {own_stamp}", f.name);
        }
        // The first event on each boundary (every 1,200th) opens a file.
        let first_seq = f.seqs()[0];
        if first_seq > 0 && first_seq % 1_200 == 0 {
            assert_eq!(f.timestamps()[0], rfc3339(start + STEP * first_seq as u32));
        }
    }
    for boundary_seq in [1_200u64, 2_400, 3_600] {
        assert!(
            files.iter().any(|f| f.seqs()[0] == boundary_seq),
            "the event exactly on the boundary (seq {boundary_seq}) starts a file"
        );
    }
}

/// Events stamped before a boundary but still queued when the clock passes it belong to the
/// old period's file: the writer must not rotate "idle" (by the clock) while older events wait
/// in the queue. A flush whose reply goes through a rendezvous channel holds the writer while
/// 1,100 events stamped 12:00:10 (more than one writer batch) are queued behind it and the
/// clock moves to 12:01:05; once released, all 1,100 must be in the 12:00 file and the event
/// stamped 12:01:05 alone in the next one, whenever the writer happened to take the flush.
#[test]
fn backlog_at_a_boundary_stays_in_its_period_file() {
    const BACKLOG: u64 = 1_100; // many of the writer's batches (`queue::BATCH`)
    let tmp = tempfile::tempdir().unwrap();
    let clock = MockClock::new(nov24(12, 0, 10));
    let (layer, guard) = builder(tmp.path())
        .rotate_every(Period::Minute)
        .build_with_clock(Clock::Mock(clock.clone()))
        .unwrap();
    let tx = guard.control.clone();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        emit(0);
        guard.flush_blocking().unwrap(); // the writer is idle, the queue empty
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(0);
        tx.send(Marker::Flush(Reply::Blocking(reply_tx))).unwrap();
        for seq in 1..BACKLOG {
            emit(seq); // queued behind the held flush, stamped 12:00:10
        }
        clock.set(nov24(12, 1, 5));
        emit(BACKLOG);
        reply_rx.recv().unwrap().unwrap(); // releases the writer
    });
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, BACKLOG + 1);
    let files = read_logs(tmp.path());
    let got: Vec<(String, usize)> = files
        .iter()
        .map(|f| (f.name.clone(), f.lines.len()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "app.20261124T120010Z.000000.log".to_owned(),
                BACKLOG as usize
            ),
            ("app.log".to_owned(), 1),
        ],
        "the 12:00 minute was split"
    );
    assert_eq!(stats.rotations, 1);
}
