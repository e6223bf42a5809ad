//! Where the sink reads time.
//!
//! Callers stamp each event with [`Clock::stamp`]: in production a raw reading of the CPU's
//! time counter (through `quanta`), about 10 ns against about 37 ns for `SystemTime::now()` on
//! the development machine. The writer turns stamps into wall-clock time with a [`Timebase`],
//! which pairs counter readings with `SystemTime::now()` (anchors) and takes a new anchor
//! whenever the stamps have moved on by more than [`REANCHOR`]. A stamp between two anchors is
//! placed between their wall-clock times in proportion, so it follows the system clock (NTP
//! slews included) however long the event waited in the queue, a disk stall included; only
//! the newest millisecond is extrapolated with the counter's calibrated rate (a few parts per
//! million: nanoseconds). The writer and janitor read the wall clock directly, through
//! [`Clock::now`], for their own decisions.
//!
//! Unit tests swap in a `MockClock` that they advance by hand, so time-dependent logic is
//! tested without sleeping; its stamps are its own time, exactly.

use std::time::{Duration, SystemTime};

#[cfg(test)]
use std::sync::{Arc, Mutex};

/// The sink's source of time.
///
/// An enum rather than a trait object: the caller's hot path reads the clock once per event, and
/// a branch on a constant variant costs less than a virtual call.
#[derive(Debug, Clone)]
pub(crate) enum Clock {
    /// The CPU's time counter for stamps (the OS monotonic clock where `quanta` finds no
    /// usable counter), `SystemTime::now()` for the wall clock.
    System(quanta::Clock),
    /// A hand-driven clock for tests.
    #[cfg(test)]
    Mock(Arc<MockClock>),
}

/// When an event happened, as read on the calling thread: meaningful only to a [`Timebase`] of
/// the same clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stamp(u64);

/// How far the stamps may move past the newest anchor before the timebase takes a new one. The
/// counter's rate is calibrated to a few parts per million, so extrapolating across this span
/// is off by a few nanoseconds at most; re-anchoring costs one `SystemTime::now()` per span.
pub(crate) const REANCHOR: Duration = Duration::from_millis(1);

/// An anchor whose two counter readings are further apart than this is read again (up to
/// [`ANCHOR_TRIES`] times): half the gap bounds its error, and a timestamp is written to the
/// microsecond. Undisturbed, the gap is about 50 ns.
const ANCHOR_WINDOW: Duration = Duration::from_nanos(200);
const ANCHOR_TRIES: usize = 8;

impl Clock {
    /// The production clock. The first call in a process calibrates the counter against the
    /// OS clock (about half a millisecond on the development machine, 200 ms at most).
    pub(crate) fn system() -> Clock {
        Clock::System(quanta::Clock::new())
    }

    /// The wall-clock time now.
    pub(crate) fn now(&self) -> SystemTime {
        match self {
            Clock::System(_) => SystemTime::now(),
            #[cfg(test)]
            Clock::Mock(mock) => mock.now(),
        }
    }

    /// A stamp for an event happening now: the caller's only reading of time.
    #[inline]
    pub(crate) fn stamp(&self) -> Stamp {
        match self {
            Clock::System(counter) => Stamp(counter.raw()),
            #[cfg(test)]
            // Tests stay within ±292 years of the epoch: i64 nanoseconds.
            Clock::Mock(mock) => Stamp(to_nanos(mock.now()) as i64 as u64),
        }
    }
}

/// Turns stamps into wall-clock time, on the writer.
#[derive(Debug)]
pub(crate) struct Timebase {
    clock: Clock,
    /// The anchor before `recent`: stamps between the two are interpolated.
    previous: Option<Anchor>,
    recent: Option<Anchor>,
}

/// A counter reading and the wall-clock time read with it, in nanoseconds from the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    raw: u64,
    wall: i128,
}

impl Timebase {
    pub(crate) fn new(clock: Clock) -> Timebase {
        Timebase {
            clock,
            previous: None,
            recent: None,
        }
    }

    /// The wall-clock time of `stamp`.
    pub(crate) fn wall(&mut self, stamp: Stamp) -> SystemTime {
        // A `match` rather than `let`: the second arm exists only in tests.
        #[allow(clippy::infallible_destructuring_match)]
        let counter = match &self.clock {
            Clock::System(counter) => counter,
            #[cfg(test)]
            Clock::Mock(_) => return from_nanos(i128::from(stamp.0 as i64)),
        };
        let raw = stamp.0;
        // `delta_as_nanos` is 0 for a stamp older than the anchor: those never need a new one.
        let recent = match self.recent {
            Some(recent)
                if counter.delta_as_nanos(recent.raw, raw) <= REANCHOR.as_nanos() as u64 =>
            {
                recent
            }
            _ => {
                let anchor = read_anchor(counter);
                self.previous = self.recent.replace(anchor);
                anchor
            }
        };
        from_nanos(match self.previous {
            // Between the two anchors (the usual case for a stamp that made a new one): in
            // proportion, exact at both ends. i128 holds the product for spans of years.
            Some(previous) if previous.raw <= raw && raw < recent.raw => {
                let span = i128::from(recent.raw - previous.raw);
                previous.wall
                    + (recent.wall - previous.wall) * i128::from(raw - previous.raw) / span
            }
            // Past the newest anchor (by at most `REANCHOR`), or before the older one (an event
            // that waited between its stamp and its send while the writer anchored twice).
            _ => {
                let from = match self.previous {
                    Some(previous) if raw < previous.raw => previous,
                    _ => recent,
                };
                if raw >= from.raw {
                    from.wall + i128::from(counter.delta_as_nanos(from.raw, raw))
                } else {
                    from.wall - i128::from(counter.delta_as_nanos(raw, from.raw))
                }
            }
        })
    }
}

/// An anchor read now: the counter reading is the midpoint of two taken around
/// `SystemTime::now()`, from the tightest of a few tries (a preempted try is far apart).
fn read_anchor(counter: &quanta::Clock) -> Anchor {
    let mut best: Option<(u64, Anchor)> = None;
    for _ in 0..ANCHOR_TRIES {
        let before = counter.raw();
        let wall = to_nanos(SystemTime::now());
        let after = counter.raw();
        let window = counter.delta_as_nanos(before, after);
        let raw = before + after.saturating_sub(before) / 2;
        if best.is_none_or(|(w, _)| window < w) {
            best = Some((window, Anchor { raw, wall }));
        }
        if window <= ANCHOR_WINDOW.as_nanos() as u64 {
            break;
        }
    }
    best.expect("at least one try").1
}

/// Signed nanoseconds from the epoch (i128: every `SystemTime` fits).
fn to_nanos(time: SystemTime) -> i128 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// The inverse of [`to_nanos`], saturating at what `SystemTime` can hold.
fn from_nanos(nanos: i128) -> SystemTime {
    let magnitude = u64::try_from(nanos.unsigned_abs()).unwrap_or(u64::MAX);
    let magnitude = Duration::from_nanos(magnitude);
    let time = if nanos >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    };
    time.unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A clock that only moves when a test moves it.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct MockClock {
    now: Mutex<SystemTime>,
}

#[cfg(test)]
impl MockClock {
    pub(crate) fn new(start: SystemTime) -> Arc<Self> {
        Arc::new(MockClock {
            now: Mutex::new(start),
        })
    }

    pub(crate) fn now(&self) -> SystemTime {
        *self.now.lock().unwrap()
    }

    pub(crate) fn set(&self, t: SystemTime) {
        *self.now.lock().unwrap() = t;
    }

    pub(crate) fn advance(&self, d: std::time::Duration) {
        let mut now = self.now.lock().unwrap();
        *now += d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stamp converts to the wall-clock time it was taken at: within the readings of
    /// `SystemTime` around it (plus a margin for the anchor's own window), whether it is newer
    /// than the anchor, older than it, or far enough on to need a new one.
    #[test]
    fn stamps_convert_to_the_wall_clock_time_they_were_taken_at() {
        let clock = Clock::system();
        let mut timebase = Timebase::new(clock.clone());
        let margin = Duration::from_micros(50);
        let mut taken = Vec::new();
        for round in 0..50 {
            let before = SystemTime::now();
            let stamp = clock.stamp();
            let after = SystemTime::now();
            taken.push((before, stamp, after));
            if round % 10 == 0 {
                // Let the counter run past `REANCHOR` now and then.
                std::thread::sleep(REANCHOR + Duration::from_micros(200));
            }
        }
        // Newest first: every stamp after the first is older than the anchor it meets.
        for &(before, stamp, after) in taken.iter().rev().chain(&taken) {
            let wall = timebase.wall(stamp);
            assert!(
                wall + margin >= before && wall <= after + margin,
                "{wall:?} outside {before:?}..{after:?}"
            );
        }
    }

    #[test]
    fn a_new_anchor_is_taken_once_stamps_move_past_reanchor() {
        let clock = Clock::system();
        let mut timebase = Timebase::new(clock.clone());
        timebase.wall(clock.stamp());
        let first = timebase.recent.unwrap();
        timebase.wall(clock.stamp());
        assert_eq!(
            timebase.recent,
            Some(first),
            "no new anchor within REANCHOR"
        );
        std::thread::sleep(REANCHOR * 2);
        timebase.wall(clock.stamp());
        assert!(timebase.recent.unwrap().raw > first.raw);
        assert_eq!(timebase.previous, Some(first));
    }

    /// Between two anchors a stamp is placed in proportion, exactly, even where the wall clock
    /// ran at another rate than the counter's calibration says (here 300 ns fast over 10 min);
    /// past the newest anchor and before the older one the calibrated rate carries it.
    #[test]
    fn stamps_between_anchors_are_interpolated_and_others_extrapolated() {
        // quanta's mock counter counts nanoseconds: its calibrated rate is 1.
        let (counter, _mock) = quanta::Clock::mock();
        let mut timebase = Timebase::new(Clock::System(counter));
        let start: i128 = 1_795_962_378_000_000_000;
        let ten_minutes: u64 = 600_000_000_000;
        let previous = Anchor {
            raw: 1_000,
            wall: start,
        };
        let recent = Anchor {
            raw: 1_000 + ten_minutes,
            wall: start + i128::from(ten_minutes) + 300,
        };
        timebase.previous = Some(previous);
        timebase.recent = Some(recent);
        let at = |timebase: &mut Timebase, raw: u64| to_nanos(timebase.wall(Stamp(raw)));

        assert_eq!(at(&mut timebase, previous.raw), previous.wall);
        assert_eq!(
            at(&mut timebase, 1_000 + ten_minutes / 2),
            start + i128::from(ten_minutes / 2) + 150
        );
        assert_eq!(
            at(&mut timebase, 1_000 + ten_minutes / 4),
            start + i128::from(ten_minutes / 4) + 75
        );
        assert_eq!(at(&mut timebase, recent.raw), recent.wall);
        assert_eq!(at(&mut timebase, recent.raw + 500), recent.wall + 500);
        assert_eq!(at(&mut timebase, 400), start - 600);
        assert_eq!(
            timebase.recent,
            Some(recent),
            "no stamp here needed a new anchor"
        );
    }

    #[test]
    fn wall_times_round_trip_through_nanoseconds() {
        for time in [
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH + Duration::new(1_795_962_378, 169_272_001),
            SystemTime::UNIX_EPOCH - Duration::new(5, 1),
        ] {
            assert_eq!(from_nanos(to_nanos(time)), time);
        }
    }

    #[test]
    fn mock_stamps_are_the_mock_time_exactly() {
        let mock =
            MockClock::new(SystemTime::UNIX_EPOCH + Duration::new(1_795_962_378, 169_272_001));
        let clock = Clock::Mock(mock.clone());
        let mut timebase = Timebase::new(clock.clone());
        assert_eq!(timebase.wall(clock.stamp()), mock.now());
        mock.set(SystemTime::UNIX_EPOCH - Duration::new(5, 1));
        assert_eq!(timebase.wall(clock.stamp()), mock.now());
    }
}
