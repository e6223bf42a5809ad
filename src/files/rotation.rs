//! When the active file rotates, and what the rotated file is called.
//!
//! The active file always keeps its fixed name, `<file_name>.log`, so that `tail -F` and log
//! collectors follow it. Rotation (on the writer thread, between two events) renames it to
//!
//! ```text
//! <file_name>.<YYYYMMDDTHHMMSSZ>.<NNNNNN>.log
//! ```
//!
//! — the UTC time the file was opened and a sequence number — and opens a fresh active file.
//! The compressor later turns it into `<...>.log.gz` (or `<...>.log.zst`). Names only ever
//! increase: a [`Namer`] never hands out a stamp below the last one it saw (in this run or, read
//! from the folder at start-up, in an earlier one), and numbers files within one stamp. So the
//! names sort, as plain strings, in the order the files were written, through bursts of
//! rotations within one second, restarts, and a clock that jumps backwards.

use std::time::SystemTime;

use time::UtcOffset;

use crate::calendar::{self, from_unix_seconds, unix_seconds, DateTime, Layout};

/// A calendar period for time-based rotation, with boundaries in the sink's
/// [`utc_offset`](crate::Builder::utc_offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Period {
    /// At the start of every minute.
    Minute,
    /// At the start of every hour (in the configured offset: with `+05:30`, at half past every
    /// UTC hour).
    Hour,
    /// At midnight in the configured offset.
    Day,
}

impl Period {
    fn seconds(self) -> i64 {
        match self {
            Period::Minute => 60,
            Period::Hour => 3_600,
            Period::Day => 86_400,
        }
    }
}

/// What makes the active file rotate: size, time, or both (whichever comes first).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) max_file_size: Option<u64>,
    pub(crate) period: Option<Period>,
    pub(crate) offset: UtcOffset,
}

impl Policy {
    /// Whether a line of `line_len` bytes must go to a fresh file, given `file_len` bytes in the
    /// active one. An empty file takes any line, so a line larger than the limit gets a file of
    /// its own.
    pub(crate) fn size_exceeded(&self, file_len: u64, line_len: u64) -> bool {
        matches!(self.max_file_size, Some(max) if file_len > 0 && file_len + line_len > max)
    }

    /// The first period boundary strictly after `time`, if rotating by time.
    pub(crate) fn next_boundary(&self, time: SystemTime) -> Option<SystemTime> {
        let period = self.period?.seconds();
        let offset = i64::from(self.offset.whole_seconds());
        let local = unix_seconds(time) + offset;
        let next_local = (local.div_euclid(period) + 1) * period;
        Some(from_unix_seconds(next_local - offset))
    }

    /// Whether `earlier` and `later` fall in different periods (false when not rotating by
    /// time, or when `later` is not after `earlier`'s period).
    pub(crate) fn crossed_boundary(&self, earlier: SystemTime, later: SystemTime) -> bool {
        self.next_boundary(earlier).is_some_and(|b| later >= b)
    }
}

/// The digits of a sequence number in a rotated name.
const SEQ_WIDTH: usize = 6;
const SEQ_LIMIT: u32 = 1_000_000;

/// A rotated file's place in the order: its stamp (UTC seconds) and sequence number.
pub(crate) type Position = (i64, u32);

/// Hands out rotated names that sort in the order they are handed out.
#[derive(Debug)]
pub(crate) struct Namer {
    base: String,
    last: Option<Position>,
    /// Write the stamp in this offset, marked with it (`+0200`), instead of UTC (`Z`).
    offset: Option<UtcOffset>,
}

impl Namer {
    /// A namer for `<base>.*.log` whose stamps are in UTC, or in `offset` if given.
    pub(crate) fn new(base: &str, offset: Option<UtcOffset>) -> Self {
        Namer {
            base: base.to_owned(),
            last: None,
            offset,
        }
    }

    /// Continues after `found` (the positions of the rotated files in the folder): after the
    /// newest that can be followed. The very last name there is (only a planted or corrupt
    /// file has it) cannot be.
    pub(crate) fn continue_after(&mut self, found: impl Iterator<Item = Position>) {
        let end = self.end();
        self.last = found.filter(|position| *position < end).max();
    }

    /// The last position this namer can name: the end of year 9999, in its offset.
    fn end(&self) -> Position {
        let ahead = self
            .offset
            .map_or(0, |o| i64::from(o.whole_seconds()).max(0));
        (MAX_STAMP - ahead, SEQ_LIMIT - 1)
    }

    /// The name for a file opened at `opened_at` (without the `.gz` or `.zst` a compressor
    /// adds).
    ///
    /// Names continue after the last one, even one far in the future (a clock that was set
    /// ahead once), so that they sort in write order. Only when no later name exists (the last
    /// is at the end of year 9999, which only a planted or corrupt name reaches) do the names
    /// start again from the clock: they then sort before that name, and never wrap to 1970.
    /// A name that is taken in the folder is the caller's to skip (it asks again).
    pub(crate) fn next(&mut self, opened_at: SystemTime) -> String {
        let end = self.end();
        let clock_stamp = unix_seconds(opened_at).clamp(0, end.0);
        if self.last.is_some_and(|last| last >= end) {
            self.last = None;
        }
        let mut stamp = clock_stamp;
        let mut seq = 0;
        if let Some((last_stamp, last_seq)) = self.last {
            if stamp <= last_stamp {
                // Same second, or the clock went back: stay on the last stamp, count up.
                stamp = last_stamp;
                seq = last_seq + 1;
                if seq >= SEQ_LIMIT {
                    // A million files in one stamp: move the stamp on rather than break the
                    // order with a seventh digit.
                    stamp += 1;
                    seq = 0;
                }
            }
        }
        self.last = Some((stamp, seq));
        format!(
            "{}.{}.{seq:0SEQ_WIDTH$}.log",
            self.base,
            format_stamp(stamp, self.offset)
        )
    }
}

/// The last second a rotated name can carry (9999-12-31T23:59:59Z): the stamp has four digits
/// for the year, and a fifth would break the sort order.
const MAX_STAMP: i64 = 253_402_300_799;

/// `YYYYMMDDTHHMMSSZ` for a UTC second, or `YYYYMMDDTHHMMSS+HHMM` in `offset`; for seconds
/// from 1970 to the end of year 9999 (the namer keeps to those).
fn format_stamp(secs: i64, offset: Option<UtcOffset>) -> String {
    let secs = secs.clamp(0, MAX_STAMP);
    let offset_or_utc = offset.unwrap_or(UtcOffset::UTC);
    let dt = DateTime::at(secs, offset_or_utc)
        .or_else(|| DateTime::at(secs, UtcOffset::UTC))
        .expect("1970 to 9999 is in range");
    let mut text = Vec::with_capacity(20);
    calendar::push_date_time(&mut text, &dt, Layout::Compact);
    match offset {
        None => text.push(b'Z'),
        // A zero offset asked for is written `+0000`, not `Z`: the names say which they are.
        Some(offset) if offset.is_utc() => text.extend_from_slice(b"+0000"),
        Some(offset) => calendar::push_offset(&mut text, offset, Layout::Compact),
    }
    String::from_utf8(text).expect("ASCII")
}

/// A file name that the sink made by rotating, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RotatedName {
    pub(crate) position: Position,
    /// The `.log` name (the uncompressed form) whichever form was found.
    pub(crate) log_name: String,
    pub(crate) kind: Kind,
}

/// The forms a rotated file takes on its way through the compressor. Both compressed kinds are
/// recognised whatever the sink's compression (and with or without the `zstd` feature), so a
/// folder written with another setting is still recovered and retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `<...>.log`: rotated, not (yet) compressed.
    Log,
    /// `<...>.log.gz`: compressed, complete.
    Gz,
    /// `<...>.log.gz.tmp`: a compression in progress (or cut short by a crash).
    GzTmp,
    /// `<...>.log.zst`: compressed with zstd, complete.
    Zst,
    /// `<...>.log.zst.tmp`: a zstd compression in progress (or cut short by a crash).
    ZstTmp,
}

/// What each form adds to the `.log` name, for the forms other than the `.log` itself.
pub(crate) const COMPRESSED_FORMS: [(&str, Kind); 4] = [
    (".gz", Kind::Gz),
    (".gz.tmp", Kind::GzTmp),
    (".zst", Kind::Zst),
    (".zst.tmp", Kind::ZstTmp),
];

impl Kind {
    /// A complete compressed file (`.gz` or `.zst`).
    pub(crate) fn is_compressed(self) -> bool {
        matches!(self, Kind::Gz | Kind::Zst)
    }

    /// A compression's temporary file (`.gz.tmp` or `.zst.tmp`).
    pub(crate) fn is_tmp(self) -> bool {
        matches!(self, Kind::GzTmp | Kind::ZstTmp)
    }
}

/// Parses `name` if, and only if, it is exactly a rotated name for `base`. Anything else in the
/// folder (the active file, other programs' files, look-alikes) is `None` and never touched.
pub(crate) fn parse_rotated(base: &str, name: &str) -> Option<RotatedName> {
    let rest = name.strip_prefix(base)?.strip_prefix('.')?;
    let (rest, kind) = match rest.strip_suffix(".log") {
        Some(r) => (r, Kind::Log),
        None => COMPRESSED_FORMS.iter().find_map(|&(form, kind)| {
            Some((rest.strip_suffix(form)?.strip_suffix(".log")?, kind))
        })?,
    };
    let (stamp, seq) = rest.split_once('.')?;
    let b = stamp.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if !digits(0..8) || b.get(8) != Some(&b'T') || !digits(9..15) {
        return None;
    }
    // `Z`, or an offset `+HHMM` / `-HHMM` (names written in the sink's `utc_offset`).
    let offset_secs = match &b[15..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == 20 && digits(16..20) => {
            let hours: i64 = stamp[16..18].parse().ok()?;
            let minutes: i64 = stamp[18..20].parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = hours * 3_600 + minutes * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    if seq.len() != SEQ_WIDTH || !seq.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| stamp[r].parse::<u8>().ok();
    let utc = DateTime {
        year: stamp[0..4].parse().ok()?,
        month: num(4..6)?,
        day: num(6..8)?,
        hour: num(9..11)?,
        minute: num(11..13)?,
        second: num(13..15)?,
    }
    .unix_seconds()?;
    Some(RotatedName {
        position: (utc - offset_secs, seq.parse().ok()?),
        log_name: format!("{base}.{rest}.log"),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> SystemTime {
        from_unix_seconds(secs)
    }

    /// A UTC namer whose last name was at `last`.
    fn after(last: Position) -> Namer {
        let mut namer = Namer::new("app", None);
        namer.last = Some(last);
        namer
    }

    // 2026-11-24T14:26:18Z
    const T: i64 = 1_795_962_378 - 5 * 86_400;

    fn policy(period: Period, offset_secs: i32) -> Policy {
        Policy {
            max_file_size: None,
            period: Some(period),
            offset: UtcOffset::from_whole_seconds(offset_secs).unwrap(),
        }
    }

    /// Minute, hour and day boundaries fall where the configured offset puts them (positive,
    /// half-hour and negative offsets), and a time on a boundary belongs to the new period.
    #[test]
    fn boundaries_fall_on_the_period_in_the_offset() {
        let utc = |p| policy(p, 0).next_boundary(at(T)).map(unix_seconds);
        assert_eq!(format_stamp(T, None), "20261124T142618Z");
        assert_eq!(utc(Period::Minute), Some(T - 18 + 60));
        assert_eq!(utc(Period::Hour), Some(T - 26 * 60 - 18 + 3_600));
        assert_eq!(
            utc(Period::Day),
            Some(T - (14 * 3_600 + 26 * 60 + 18) + 86_400)
        );
        // +05:30: local 19:56:18, so the next local hour is 20:00 = 14:30 UTC, and local
        // midnight is 18:30 UTC.
        let india = |p| {
            policy(p, 5 * 3_600 + 1_800)
                .next_boundary(at(T))
                .map(unix_seconds)
        };
        assert_eq!(
            format_stamp(india(Period::Hour).unwrap(), None),
            "20261124T143000Z"
        );
        assert_eq!(
            format_stamp(india(Period::Day).unwrap(), None),
            "20261124T183000Z"
        );
        // -08:00: local 06:26:18, local midnight is 08:00 UTC the next day.
        let west = policy(Period::Day, -8 * 3_600)
            .next_boundary(at(T))
            .map(unix_seconds);
        assert_eq!(format_stamp(west.unwrap(), None), "20261125T080000Z");
        // A time exactly on a boundary belongs to the new period.
        let on = policy(Period::Minute, 0)
            .next_boundary(at(T - 18))
            .map(unix_seconds);
        assert_eq!(on, Some(T - 18 + 60));
    }

    /// A line goes to a fresh file only if it would take a non-empty file past the limit.
    #[test]
    fn size_limit_leaves_room_for_oversized_lines_in_empty_files() {
        let p = Policy {
            max_file_size: Some(100),
            period: None,
            offset: UtcOffset::UTC,
        };
        assert!(!p.size_exceeded(0, 100));
        assert!(!p.size_exceeded(60, 40));
        assert!(p.size_exceeded(60, 41));
        assert!(!p.size_exceeded(0, 1_000));
        assert!(p.size_exceeded(1_000, 1));
    }

    /// A thousand names in one second, then a clock an hour behind: every name sorts after the
    /// one before, and none repeats.
    #[test]
    fn names_increase_within_a_second_and_when_the_clock_goes_back() {
        let mut namer = Namer::new("app", None);
        let mut names: Vec<String> = (0..1_000).map(|_| namer.next(at(T))).collect();
        names.push(namer.next(at(T - 3_600))); // the clock went back an hour
        names.push(namer.next(at(T + 1)));
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names[0], "app.20261124T142618Z.000000.log");
        assert_eq!(names[999], "app.20261124T142618Z.000999.log");
        assert_eq!(names[1000], "app.20261124T142618Z.001000.log");
        assert_eq!(names[1001], "app.20261124T142619Z.000000.log");
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    /// After a restart the names continue after the newest file found, even with the clock behind.
    #[test]
    fn a_namer_continues_after_an_earlier_run() {
        let earlier = parse_rotated("app", "app.20261124T142618Z.000007.log.gz").unwrap();
        let mut namer = after(earlier.position);
        // Even with the clock now behind the earlier run.
        assert_eq!(namer.next(at(T - 60)), "app.20261124T142618Z.000008.log");
    }

    /// A millionth file in one stamp moves the stamp on instead of widening the sequence.
    #[test]
    fn the_sequence_never_grows_a_seventh_digit() {
        let mut namer = after((T, SEQ_LIMIT - 1));
        assert_eq!(namer.next(at(T)), "app.20261124T142619Z.000000.log");
    }

    /// A planted name at the very end of the stamp range never makes the names wrap to 1970:
    /// names continue after a far-future name while later names exist, then start again from
    /// the clock (sorting before the planted name), and go on increasing from there.
    #[test]
    fn names_never_wrap_past_the_last_stamp() {
        let end = parse_rotated("app", "app.99991231T235959Z.999999.log.gz").unwrap();
        assert_eq!(end.position, (MAX_STAMP, 999_999));
        let mut namer = after(end.position);
        assert_eq!(namer.next(at(T)), "app.20261124T142618Z.000000.log");
        assert_eq!(namer.next(at(T)), "app.20261124T142618Z.000001.log");
        let mut namer = after((MAX_STAMP, 999_998));
        assert_eq!(namer.next(at(T)), "app.99991231T235959Z.999999.log");
        assert_eq!(namer.next(at(T)), "app.20261124T142618Z.000000.log");
        // A clock past year 9999 stays on the last stamp, and says when its names run out.
        let mut namer = after((MAX_STAMP, 999_998));
        namer.next(at(MAX_STAMP + 10));
        assert_eq!(
            namer.next(at(MAX_STAMP + 10)),
            "app.99991231T235959Z.000000.log"
        );
        for _ in 0..10 {
            let name = namer.next(at(MAX_STAMP + 10));
            assert!(name.starts_with("app.99991231T235959Z."), "{name}");
        }
    }

    /// Names in an offset carry the local time and the offset, parse back to the same UTC
    /// position, and sort in write order for a fixed offset (negative, half-hour and zero
    /// offsets too); a sequence of names in one offset continues after names in another.
    #[test]
    fn names_in_an_offset_carry_it_and_parse_back() {
        for (offset, first) in [
            (offset(2, 0), "app.20261124T162618+0200.000000.log"),
            (offset(-8, 0), "app.20261124T062618-0800.000000.log"),
            (offset(5, 30), "app.20261124T195618+0530.000000.log"),
            (UtcOffset::UTC, "app.20261124T142618+0000.000000.log"),
        ] {
            let mut namer = Namer::new("app", Some(offset));
            let names: Vec<String> = [T, T, T + 1, T + 3_600, T + 86_400]
                .iter()
                .map(|&t| namer.next(at(t)))
                .collect();
            assert_eq!(names[0], first);
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "{offset}");
            let positions: Vec<Position> = names
                .iter()
                .map(|n| parse_rotated("app", n).unwrap().position)
                .collect();
            assert_eq!(
                positions,
                [(T, 0), (T, 1), (T + 1, 0), (T + 3_600, 0), (T + 86_400, 0)],
                "{offset}"
            );
            assert_eq!(
                parse_rotated("app", &format!("{first}.gz"))
                    .unwrap()
                    .log_name,
                first
            );
        }
        // Continuing after UTC names of an earlier run, in another offset: after by time.
        let mut namer = Namer::new("app", Some(offset(2, 0)));
        let earlier = parse_rotated("app", "app.20261124T142618Z.000004.log").unwrap();
        namer.continue_after([earlier.position].into_iter());
        assert_eq!(namer.next(at(T)), "app.20261124T162618+0200.000005.log");
        // The end of year 9999 in the offset is the end: no wrap, no fifth year digit.
        let mut namer = Namer::new("app", Some(offset(2, 0)));
        namer.last = Some((MAX_STAMP - 7_200, 999_999));
        let name = namer.next(at(MAX_STAMP));
        assert!(name.starts_with("app.99991231T235959+0200."), "{name}");
        for bad in [
            "app.20261124T162618+2400.000000.log",
            "app.20261124T162618+0260.000000.log",
            "app.20261124T162618*0200.000000.log",
            "app.20261124T162618+020.000000.log",
            "app.20261124T162618+02000.000000.log",
            "app.20261124T162618Z0200.000000.log",
        ] {
            assert_eq!(parse_rotated("app", bad), None, "{bad}");
        }
    }

    fn offset(hours: i8, minutes: i8) -> UtcOffset {
        UtcOffset::from_hms(hours, minutes, 0).unwrap()
    }

    /// Only the exact rotated-name pattern is recognised; look-alikes and other files are not.
    #[test]
    fn only_exact_rotated_names_parse() {
        let ok = parse_rotated("app", "app.20261124T142618Z.000001.log").unwrap();
        assert_eq!(ok.kind, Kind::Log);
        assert_eq!(ok.position, (T, 1));
        let gz = parse_rotated("app", "app.20261124T142618Z.000001.log.gz").unwrap();
        assert_eq!(
            (gz.kind, gz.log_name.as_str()),
            (Kind::Gz, "app.20261124T142618Z.000001.log")
        );
        let tmp = parse_rotated("app", "app.20261124T142618Z.000001.log.gz.tmp").unwrap();
        assert_eq!(tmp.kind, Kind::GzTmp);
        // The zstd forms are recognised whatever the sink compresses with.
        for (name, kind) in [
            ("app.20261124T142618Z.000001.log.zst", Kind::Zst),
            ("app.20261124T142618Z.000001.log.zst.tmp", Kind::ZstTmp),
        ] {
            let parsed = parse_rotated("app", name).unwrap();
            assert_eq!(
                (parsed.kind, parsed.log_name.as_str(), parsed.position),
                (kind, "app.20261124T142618Z.000001.log", (T, 1)),
                "{name}"
            );
        }
        assert!(parse_rotated("app.v2", "app.v2.20261124T142618Z.000001.log").is_some());
        for foreign in [
            "app.log",
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
            "app.20261124T142618Z.000001.zst",
            "app.20261124T142618Z.000001.log.zst.old",
            "app.20261124T142618Z.000001.log.zstd",
            "app.20261124T142618Z.000001.log.tmp",
            "app.20261124T142618Z.000001.log.gz.zst",
        ] {
            assert_eq!(parse_rotated("app", foreign), None, "{foreign}");
        }
    }
}
