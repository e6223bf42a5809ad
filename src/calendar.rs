//! Time as the sink writes it: the one conversion from `SystemTime` to seconds and calendar
//! fields (and back), and the one date-time formatter, for the timestamps in lines (RFC 3339,
//! `writer::format`), the stamps in rotated names (`files::rotation`) and the clock's
//! nanoseconds (`caller::clock`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{OffsetDateTime, UtcOffset};

/// Whole seconds since the epoch, rounded down (also before 1970), and the nanoseconds past
/// that second.
#[inline]
pub(crate) fn split(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            match d.subsec_nanos() {
                0 => (-(d.as_secs() as i64), 0),
                nanos => (-(d.as_secs() as i64) - 1, 1_000_000_000 - nanos),
            }
        }
    }
}

/// Whole seconds since the epoch, rounded down (also before 1970).
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    split(time).0
}

/// The time `secs` seconds from the epoch (either side of it).
pub(crate) fn from_unix_seconds(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Signed nanoseconds from the epoch (i128: every `SystemTime` fits).
pub(crate) fn to_nanos(time: SystemTime) -> i128 {
    let (secs, nanos) = split(time);
    i128::from(secs) * 1_000_000_000 + i128::from(nanos)
}

/// The inverse of [`to_nanos`] (the epoch for a time centuries away that `SystemTime` cannot
/// hold: none comes from a working clock).
pub(crate) fn from_nanos(nanos: i128) -> SystemTime {
    let magnitude = u64::try_from(nanos.unsigned_abs()).unwrap_or(u64::MAX);
    let magnitude = Duration::from_nanos(magnitude);
    let time = if nanos >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    time.unwrap_or(UNIX_EPOCH)
}

/// The calendar fields of one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    pub(crate) year: i32,
    pub(crate) month: u8,
    pub(crate) day: u8,
    pub(crate) hour: u8,
    pub(crate) minute: u8,
    pub(crate) second: u8,
}

impl DateTime {
    /// The second `secs` (from the epoch) as a clock in `offset` shows it; `None` beyond the
    /// years the `time` crate handles (±9999).
    pub(crate) fn at(secs: i64, offset: UtcOffset) -> Option<DateTime> {
        let local = secs.checked_add(i64::from(offset.whole_seconds()))?;
        let dt = OffsetDateTime::from_unix_timestamp(local).ok()?;
        Some(DateTime {
            year: dt.year(),
            month: dt.month() as u8,
            day: dt.day(),
            hour: dt.hour(),
            minute: dt.minute(),
            second: dt.second(),
        })
    }

    /// The inverse of [`at`](DateTime::at) in UTC: seconds from the epoch, `None` for fields
    /// that name no second (a 30th of February, hour 24).
    pub(crate) fn unix_seconds(&self) -> Option<i64> {
        let month = time::Month::try_from(self.month).ok()?;
        let date = time::Date::from_calendar_date(self.year, month, self.day).ok()?;
        let dt = date.with_hms(self.hour, self.minute, self.second).ok()?;
        Some(dt.assume_utc().unix_timestamp())
    }
}

/// How a date-time is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `2026-11-24T14:26:18`, offset `Z` or `+02:00`: timestamps in lines.
    Rfc3339,
    /// `20261124T142618`, offset `Z` or `+0200`: stamps in rotated names, which are safe in
    /// every file system and sort as strings.
    Compact,
}

/// Appends `dt` in `layout`, without fractions or offset. A year outside 0 to 9999, which
/// neither layout has room for, is written legibly anyway.
pub(crate) fn push_date_time(out: &mut Vec<u8>, dt: &DateTime, layout: Layout) {
    let (date_sep, time_sep): (&[u8], &[u8]) = match layout {
        Layout::Rfc3339 => (b"-", b":"),
        Layout::Compact => (b"", b""),
    };
    if (0..=9999).contains(&dt.year) {
        push_digits(out, dt.year as u32, 4);
    } else {
        out.extend_from_slice(dt.year.to_string().as_bytes());
    }
    out.extend_from_slice(date_sep);
    push_digits(out, u32::from(dt.month), 2);
    out.extend_from_slice(date_sep);
    push_digits(out, u32::from(dt.day), 2);
    out.push(b'T');
    push_digits(out, u32::from(dt.hour), 2);
    out.extend_from_slice(time_sep);
    push_digits(out, u32::from(dt.minute), 2);
    out.extend_from_slice(time_sep);
    push_digits(out, u32::from(dt.second), 2);
}

/// Appends `offset` as the layout marks it: `Z` for UTC (as the `time` crate's RFC 3339 format,
/// which tracing-subscriber's timers use, writes a zero offset), else `+HH:MM` (RFC 3339) or
/// `+HHMM` (compact). Seconds of offset are not written (`build()` refuses them for
/// timestamps).
pub(crate) fn push_offset(out: &mut Vec<u8>, offset: UtcOffset, layout: Layout) {
    if offset.is_utc() {
        out.push(b'Z');
        return;
    }
    let (hours, minutes, _) = offset.as_hms();
    out.push(if offset.is_negative() { b'-' } else { b'+' });
    push_digits(out, u32::from(hours.unsigned_abs()), 2);
    if layout == Layout::Rfc3339 {
        out.push(b':');
    }
    push_digits(out, u32::from(minutes.unsigned_abs()), 2);
}

/// Appends `value` zero-padded to `width` digits.
#[inline]
pub(crate) fn push_digits(out: &mut Vec<u8>, mut value: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (0..width).rev() {
        out[start + i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds round down on both sides of the epoch, and nanoseconds count up from them.
    #[test]
    fn split_floors_before_and_after_the_epoch() {
        let at = |secs: i64, nanos: u32| {
            if secs >= 0 {
                UNIX_EPOCH + Duration::new(secs as u64, nanos)
            } else {
                UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 0) + Duration::new(0, nanos)
            }
        };
        for (secs, nanos) in [(0, 0), (5, 1), (1_795_962_378, 169_272_000), (-1, 0)] {
            assert_eq!(split(at(secs, nanos)), (secs, nanos));
        }
        assert_eq!(
            split(UNIX_EPOCH - Duration::from_nanos(1)),
            (-1, 999_999_999)
        );
        assert_eq!(split(UNIX_EPOCH - Duration::new(5, 1)), (-6, 999_999_999));
        assert_eq!(
            from_unix_seconds(-86_400),
            UNIX_EPOCH - Duration::from_secs(86_400)
        );
    }

    /// Both layouts, both offset forms, and the calendar fields read back.
    #[test]
    fn date_times_in_both_layouts() {
        let offset = UtcOffset::from_hms(-9, -30, 0).unwrap();
        let dt = DateTime::at(1_795_962_378, UtcOffset::UTC).unwrap();
        assert_eq!(dt.unix_seconds(), Some(1_795_962_378));
        let local = DateTime::at(1_795_962_378, offset).unwrap();
        let mut out = Vec::new();
        push_date_time(&mut out, &dt, Layout::Rfc3339);
        push_offset(&mut out, UtcOffset::UTC, Layout::Rfc3339);
        out.push(b' ');
        push_date_time(&mut out, &local, Layout::Rfc3339);
        push_offset(&mut out, offset, Layout::Rfc3339);
        out.push(b' ');
        push_date_time(&mut out, &local, Layout::Compact);
        push_offset(&mut out, offset, Layout::Compact);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-29T14:26:18Z 2026-11-29T04:56:18-09:30 20261129T045618-0930"
        );
    }
}
