//! Where the sink reads the wall clock.
//!
//! Callers stamp events with [`Clock::now`]; the writer reads it for flush and (later) rotation
//! decisions. Production uses the system clock; unit tests swap in a `MockClock` that they
//! advance by hand, so time-dependent logic is tested without sleeping.

use std::time::SystemTime;

#[cfg(test)]
use std::sync::{Arc, Mutex};

/// The sink's source of wall-clock time.
///
/// An enum rather than a trait object: the caller's hot path reads the clock once per event, and
/// a branch on a constant variant costs less than a virtual call.
#[derive(Debug, Clone, Default)]
pub(crate) enum Clock {
    /// `SystemTime::now()`.
    #[default]
    System,
    /// A hand-driven clock for tests.
    #[cfg(test)]
    Mock(Arc<MockClock>),
}

impl Clock {
    #[inline]
    pub(crate) fn now(&self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            #[cfg(test)]
            Clock::Mock(mock) => mock.now(),
        }
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
