//! Where the sink reads time.
//!
//! Callers stamp each event with [`Clock::stamp`]: in production a raw reading of the CPU's
//! time counter (through `quanta`), which costs the caller less than `SystemTime::now()` on
//! every event would. The writer turns stamps into wall-clock time with a [`Timebase`],
//! which pairs counter readings with `SystemTime::now()` (anchors) and takes a new anchor
//! whenever the stamps have moved on by more than [`REANCHOR`]. A stamp between two anchors is
//! placed between their wall-clock times in proportion, exact at both ends whatever the
//! counter's rate, so an event that waited (in the queue through a disk stall, or in a caller
//! blocked on a full queue) keeps the system clock's time of its stamp; a step of the system
//! clock between two anchors is spread over the span between them. A stamp past the newest
//! anchor (by at most `REANCHOR`) is carried by the counter's calibrated rate: typically right
//! to a few parts per million, nanoseconds over that span, more while NTP slews the clock
//! fast. The counter must agree across cores: quanta uses it only where the CPU reports an
//! invariant TSC, whose cores agree unless firmware set them apart (Linux then stops using the
//! TSC for its own clock; quanta does not notice, and stamps would be off by the difference).
//! The writer and janitor read the wall clock directly, through [`Clock::now`], for their own
//! decisions.
//!
//! Unit tests swap in a `MockClock` that they advance by hand, so time-dependent logic is
//! tested without sleeping; its stamps are its own time, exactly.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use crate::calendar::{from_nanos, to_nanos};

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

/// How far the stamps may move past the newest anchor before the timebase takes a new one:
/// extrapolating across this span with the counter's calibrated rate is typically off by
/// nanoseconds; an anchor costs one to [`ANCHOR_TRIES`] `SystemTime::now()` calls.
pub(crate) const REANCHOR: Duration = Duration::from_millis(1);

/// An anchor whose two counter readings are further apart than this is read again (up to
/// [`ANCHOR_TRIES`] times): half the gap bounds its error, and a timestamp is written to the
/// microsecond. An undisturbed pair of readings is well inside this window.
const ANCHOR_WINDOW: Duration = Duration::from_nanos(200);
const ANCHOR_TRIES: usize = 8;

impl Clock {
    /// The production clock. The first call in a process calibrates the counter against the
    /// OS clock (quanta stops calibrating after 200 ms at most).
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

    /// Wakes its holder whenever a test moves the mock clock (`None` for the system clock,
    /// which moves by itself): a thread that waits for a time on this clock waits on the
    /// receiver too, so a test that moves the clock past that time need not sleep.
    pub(crate) fn moves(&self) -> Option<crossbeam_channel::Receiver<()>> {
        match self {
            Clock::System(_) => None,
            #[cfg(test)]
            Clock::Mock(mock) => Some(mock.subscribe()),
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
    /// The latest anchors, oldest first, in increasing counter order: a stamp between two of
    /// them is interpolated. Several are kept, not two, because a stamp can reach the writer
    /// late: a caller blocked on a full queue (`Overflow::Block`) stamped its event before it
    /// began to wait, and other threads' events may make new anchors meanwhile.
    anchors: VecDeque<Anchor>,
}

/// How many anchors a [`Timebase`] keeps. A new one is taken at most once per [`REANCHOR`] of
/// stamps, and a caller blocked on a full queue tries again within about 10 ms.
const ANCHORS: usize = 64;

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
            anchors: VecDeque::with_capacity(ANCHORS),
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
        // The common case, first: a stamp at most `REANCHOR` past the newest anchor.
        if let Some(&newest) = self.anchors.back() {
            if raw >= newest.raw
                && counter.delta_as_nanos(newest.raw, raw) <= REANCHOR.as_nanos() as u64
            {
                return from_nanos(carried(counter, newest, raw));
            }
        }
        // Further past it (or the first stamp): a new anchor. A stamp older than the newest
        // anchor never needs one.
        if self.anchors.back().is_none_or(|newest| raw >= newest.raw) {
            let anchor = read_anchor(counter);
            // A counter that went back (cores whose counters disagree) voids the order that
            // the search below relies on: start the history again.
            if self
                .anchors
                .back()
                .is_some_and(|newest| newest.raw >= anchor.raw)
            {
                self.anchors.clear();
            }
            if self.anchors.len() == ANCHORS {
                self.anchors.pop_front();
            }
            self.anchors.push_back(anchor);
        }
        let after = self.anchors.partition_point(|a| a.raw <= raw);
        from_nanos(if after == 0 || after == self.anchors.len() {
            // Past the newest anchor (by at most `REANCHOR`) or before the oldest kept: from
            // the nearest.
            carried(counter, self.anchors[after.saturating_sub(1)], raw)
        } else {
            // Between two anchors: in proportion, exact at both ends, whatever the counter's
            // rate. i128 holds the product for spans of years.
            let (before, next) = (self.anchors[after - 1], self.anchors[after]);
            let span = i128::from(next.raw - before.raw);
            before.wall + (next.wall - before.wall) * i128::from(raw - before.raw) / span
        })
    }
}

/// The wall-clock time of counter reading `raw`, carried from `from` at the counter's
/// calibrated rate, forwards or backwards.
fn carried(counter: &quanta::Clock, from: Anchor, raw: u64) -> i128 {
    if raw >= from.raw {
        from.wall + i128::from(counter.delta_as_nanos(from.raw, raw))
    } else {
        from.wall - i128::from(counter.delta_as_nanos(raw, from.raw))
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

/// A clock that only moves when a test moves it.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct MockClock {
    now: Mutex<SystemTime>,
    /// Told of every move (see [`Clock::moves`]).
    movers: Mutex<Vec<crossbeam_channel::Sender<()>>>,
}

#[cfg(test)]
impl MockClock {
    pub(crate) fn new(start: SystemTime) -> Arc<Self> {
        Arc::new(MockClock {
            now: Mutex::new(start),
            movers: Mutex::default(),
        })
    }

    pub(crate) fn now(&self) -> SystemTime {
        *self.now.lock().unwrap()
    }

    pub(crate) fn set(&self, t: SystemTime) {
        *self.now.lock().unwrap() = t;
        self.moved();
    }

    pub(crate) fn advance(&self, d: std::time::Duration) {
        *self.now.lock().unwrap() += d;
        self.moved();
    }

    /// A receiver that gets a message after each move (one pending at most).
    fn subscribe(&self) -> crossbeam_channel::Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.movers.lock().unwrap().push(tx);
        rx
    }

    fn moved(&self) {
        // A full channel already holds a wake-up; a gone receiver no longer listens.
        self.movers.lock().unwrap().retain(|tx| {
            !matches!(
                tx.try_send(()),
                Err(crossbeam_channel::TrySendError::Disconnected(_))
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A production clock on quanta's mock counter (nanoseconds, driven by hand: its calibrated
    /// rate is 1), and a timebase for it.
    fn mock_timebase() -> (Clock, Arc<quanta::Mock>, Timebase) {
        let (counter, mock) = quanta::Clock::mock();
        let clock = Clock::System(counter);
        (clock.clone(), mock, Timebase::new(clock))
    }

    /// A stamp converts to the wall-clock time it was taken at, within the `SystemTime`
    /// readings around it (plus a margin): converted at once, as the writer mostly does
    /// (extrapolated from the newest anchor, or making a new one), and converted late, after
    /// later stamps made further anchors (interpolated between two).
    #[test]
    fn stamps_convert_to_the_wall_clock_time_they_were_taken_at() {
        let clock = Clock::system();
        let mut timebase = Timebase::new(clock.clone());
        let margin = Duration::from_micros(50);
        let check = |timebase: &mut Timebase,
                     (before, stamp, after): (SystemTime, Stamp, SystemTime)| {
            let wall = timebase.wall(stamp);
            assert!(
                wall + margin >= before && wall <= after + margin,
                "{wall:?} outside {before:?}..{after:?}"
            );
        };
        let mut taken = Vec::new();
        for round in 0..50 {
            let before = SystemTime::now();
            let stamp = clock.stamp();
            let after = SystemTime::now();
            taken.push((before, stamp, after));
            check(&mut timebase, (before, stamp, after));
            if round % 10 == 9 {
                // Let the counter run past `REANCHOR`, so that the next stamp makes an anchor.
                std::thread::sleep(REANCHOR + Duration::from_micros(200));
            }
        }
        assert!(timebase.anchors.len() >= 5, "{:?}", timebase.anchors);
        for &late in &taken {
            check(&mut timebase, late);
        }
    }

    /// With quanta's mock counter (nanoseconds, driven by hand): a stamp within `REANCHOR` of
    /// the newest anchor makes none, one past it does, and at most `ANCHORS` are kept.
    #[test]
    fn a_new_anchor_is_taken_once_stamps_move_past_reanchor() {
        let (clock, mock, mut timebase) = mock_timebase();
        mock.increment(1_000_000_000u64);
        timebase.wall(clock.stamp());
        assert_eq!(timebase.anchors.len(), 1);
        mock.increment(REANCHOR);
        timebase.wall(clock.stamp());
        assert_eq!(timebase.anchors.len(), 1, "no new anchor at REANCHOR");
        mock.increment(1u64);
        timebase.wall(clock.stamp());
        assert_eq!(timebase.anchors.len(), 2);
        for _ in 0..ANCHORS {
            mock.increment(REANCHOR * 2);
            timebase.wall(clock.stamp());
        }
        assert_eq!(timebase.anchors.len(), ANCHORS);
        assert!(timebase
            .anchors
            .iter()
            .zip(timebase.anchors.iter().skip(1))
            .all(|(a, b)| a.raw < b.raw));
        assert_eq!(timebase.anchors.back().unwrap().raw, mock.value());
    }

    /// A new anchor whose counter reading is not past the newest (the counter went back)
    /// starts the history again, so the search never meets anchors out of order.
    #[test]
    fn a_counter_that_goes_back_restarts_the_anchors() {
        let (clock, mock, mut timebase) = mock_timebase();
        mock.increment(10_000_000u64);
        timebase.wall(clock.stamp());
        mock.increment(REANCHOR * 2);
        timebase.wall(clock.stamp());
        assert_eq!(timebase.anchors.len(), 2);
        // A stamp from before the counter went back, converted once it has.
        let stamp = Stamp(mock.value() + 2 * REANCHOR.as_nanos() as u64);
        mock.decrement(5_000_000u64);
        timebase.wall(stamp);
        assert_eq!(timebase.anchors.len(), 1);
        assert_eq!(timebase.anchors[0].raw, mock.value());
    }

    /// Between two anchors a stamp is placed in proportion, exactly, even where the wall clock
    /// ran at another rate than the counter's calibration says (here 300 ns fast over 10 min),
    /// and however many anchors came after; past the newest anchor and before the oldest the
    /// calibrated rate carries it.
    #[test]
    fn stamps_between_anchors_are_interpolated_and_others_extrapolated() {
        let (_, _mock, mut timebase) = mock_timebase();
        let start: i128 = 1_795_962_378_000_000_000;
        let ten_minutes: u64 = 600_000_000_000;
        let oldest = Anchor {
            raw: 1_000,
            wall: start,
        };
        let after_stall = Anchor {
            raw: 1_000 + ten_minutes,
            wall: start + i128::from(ten_minutes) + 300,
        };
        // Later anchors, as fresh events made them, 1 ms apart.
        let later: Vec<Anchor> = (1..=5)
            .map(|i| Anchor {
                raw: after_stall.raw + i * 1_000_000,
                wall: after_stall.wall + i128::from(i * 1_000_000),
            })
            .collect();
        let newest = *later.last().unwrap();
        timebase.anchors.extend([oldest, after_stall]);
        timebase.anchors.extend(later);
        let at = |timebase: &mut Timebase, raw: u64| to_nanos(timebase.wall(Stamp(raw)));

        assert_eq!(at(&mut timebase, oldest.raw), oldest.wall);
        assert_eq!(
            at(&mut timebase, 1_000 + ten_minutes / 2),
            start + i128::from(ten_minutes / 2) + 150
        );
        assert_eq!(
            at(&mut timebase, 1_000 + ten_minutes / 4),
            start + i128::from(ten_minutes / 4) + 75
        );
        assert_eq!(at(&mut timebase, after_stall.raw), after_stall.wall);
        assert_eq!(
            at(&mut timebase, after_stall.raw + 1_500_000),
            after_stall.wall + 1_500_000
        );
        assert_eq!(at(&mut timebase, newest.raw + 500), newest.wall + 500);
        assert_eq!(at(&mut timebase, 400), start - 600);
        assert_eq!(
            timebase.anchors.len(),
            7,
            "no stamp here needed a new anchor"
        );
    }

    /// The case that needs more than two anchors: a caller blocked through a stall stamped
    /// its event before it; fresh events made several anchors before the late one arrived. It
    /// lands between the anchors around its stamp (taken with the real wall clock here, so
    /// microseconds apart), not 5 s before a newer one, as the counter's rate would carry it.
    #[test]
    fn a_late_stamp_is_placed_between_the_anchors_around_it() {
        let (clock, mock, mut timebase) = mock_timebase();
        mock.increment(1_000_000_000u64);
        timebase.wall(clock.stamp());
        let late = Stamp(mock.value() + 5_000_000_000);
        mock.increment(10_000_000_000u64);
        timebase.wall(clock.stamp());
        let (before, after) = (timebase.anchors[0].wall, timebase.anchors[1].wall);
        for _ in 0..5 {
            mock.increment(REANCHOR * 2);
            timebase.wall(clock.stamp());
        }
        assert_eq!(timebase.anchors.len(), 7);
        let wall = to_nanos(timebase.wall(late));
        assert!(
            before <= wall && wall <= after,
            "{before} <= {wall} <= {after}"
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
