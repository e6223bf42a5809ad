//! Where the sink reads time.
//!
//! Callers stamp each event with [`Clock::stamp`]: in production a raw reading of the CPU's
//! time counter (through `quanta`), about 10 ns against about 37 ns for `SystemTime::now()` on
//! the development machine. The writer turns stamps into wall-clock time with a [`Timebase`],
//! which pairs a counter reading with `SystemTime::now()` and takes a fresh pair whenever the
//! stamps have moved on by more than [`REANCHOR`], so the result follows the system clock
//! (NTP slews and steps included) to within tens of nanoseconds. A stamp much older than the
//! anchor, from an event that waited in the queue through a long disk stall, is converted
//! across the whole wait with the counter's calibrated rate, good to a few parts per million
//! (about 3 µs per second of wait on the development machine). The writer and janitor read
//! the wall clock directly, through [`Clock::now`], for their own decisions.
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

/// How far the stamps may move past the timebase's anchor before it takes a new one. The
/// counter's rate is calibrated to a few parts per million, so converting across this span is
/// off by a few nanoseconds at most; re-anchoring costs one `SystemTime::now()` per span.
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
            Clock::Mock(mock) => Stamp(mock_nanos(mock.now()) as u64),
        }
    }
}

/// Turns stamps into wall-clock time, on the writer.
#[derive(Debug)]
pub(crate) struct Timebase {
    clock: Clock,
    /// A counter reading and the wall-clock time read with it.
    anchor: Option<(u64, SystemTime)>,
}

impl Timebase {
    pub(crate) fn new(clock: Clock) -> Timebase {
        Timebase {
            clock,
            anchor: None,
        }
    }

    /// The wall-clock time of `stamp`.
    pub(crate) fn wall(&mut self, stamp: Stamp) -> SystemTime {
        // A `match` rather than `let`: the second arm exists only in tests.
        #[allow(clippy::infallible_destructuring_match)]
        let counter = match &self.clock {
            Clock::System(counter) => counter,
            #[cfg(test)]
            Clock::Mock(_) => return from_mock_nanos(stamp.0 as i64),
        };
        let raw = stamp.0;
        let (anchor_raw, anchor_wall) = match self.anchor {
            // `delta_as_nanos` is 0 for a stamp older than the anchor: those are converted
            // backwards from it below, and never need a new one.
            Some((at, wall)) if counter.delta_as_nanos(at, raw) <= REANCHOR.as_nanos() as u64 => {
                (at, wall)
            }
            _ => *self.anchor.insert(read_anchor(counter)),
        };
        let converted = if raw >= anchor_raw {
            anchor_wall.checked_add(Duration::from_nanos(
                counter.delta_as_nanos(anchor_raw, raw),
            ))
        } else {
            anchor_wall.checked_sub(Duration::from_nanos(
                counter.delta_as_nanos(raw, anchor_raw),
            ))
        };
        converted.unwrap_or(anchor_wall)
    }
}

/// A counter reading paired with `SystemTime::now()`: the reading is the midpoint of two taken
/// around the wall clock, from the tightest of a few tries (a preempted try is far apart).
fn read_anchor(counter: &quanta::Clock) -> (u64, SystemTime) {
    let mut best: Option<(u64, u64, SystemTime)> = None;
    for _ in 0..ANCHOR_TRIES {
        let before = counter.raw();
        let wall = SystemTime::now();
        let after = counter.raw();
        let window = counter.delta_as_nanos(before, after);
        let mid = before + after.saturating_sub(before) / 2;
        if best.is_none_or(|(w, _, _)| window < w) {
            best = Some((window, mid, wall));
        }
        if window <= ANCHOR_WINDOW.as_nanos() as u64 {
            break;
        }
    }
    let (_, raw, wall) = best.expect("at least one try");
    (raw, wall)
}

/// A mock time as signed nanoseconds from the epoch (tests stay within ±292 years of it).
#[cfg(test)]
fn mock_nanos(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i64,
        Err(before) => -(before.duration().as_nanos() as i64),
    }
}

#[cfg(test)]
fn from_mock_nanos(nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
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
        let first = timebase.anchor.unwrap();
        timebase.wall(clock.stamp());
        assert_eq!(
            timebase.anchor.unwrap().0,
            first.0,
            "no new anchor within REANCHOR"
        );
        std::thread::sleep(REANCHOR * 2);
        timebase.wall(clock.stamp());
        assert!(timebase.anchor.unwrap().0 > first.0);
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
