//! Failure injection for tests: switches that make the sink's own file operations fail the
//! way a full disk, a read-only folder or a broken device make them fail, so that the
//! recovery paths run deterministically on any machine (CI runs as root, where permissions
//! do not fail, and cannot mount a small filesystem).
//!
//! The one place they act is the [`Folder`](crate::files::folder::Folder), through its
//! [`Hook`]: outside tests a hook is empty and every check is `Ok`, compiled away.

use std::io;
#[cfg(test)]
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
#[cfg(test)]
use std::sync::Arc;
use std::time::SystemTime;

/// The folder's hook for injected failures: a test's `Faults`, or (outside tests) nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hook {
    #[cfg(test)]
    faults: Arc<Faults>,
}

impl Hook {
    /// A hook that acts on `faults`' switches.
    #[cfg(test)]
    pub(crate) fn new(faults: Arc<Faults>) -> Hook {
        Hook { faults }
    }

    /// Before each write to the active file.
    #[inline(always)]
    pub(crate) fn write(&self) -> io::Result<()> {
        #[cfg(test)]
        self.faults.write()?;
        Ok(())
    }

    /// Where a write of `len` bytes is cut short, if it is, and the error it then fails with.
    #[inline(always)]
    pub(crate) fn cut(&self, _len: usize) -> Option<(usize, io::Error)> {
        #[cfg(test)]
        return self.faults.cut(_len).map(|at| (at, Faults::cut_error()));
        #[cfg(not(test))]
        None
    }

    /// Before each rename.
    #[inline(always)]
    pub(crate) fn rename(&self) -> io::Result<()> {
        #[cfg(test)]
        self.faults.rename()?;
        Ok(())
    }

    /// Before a rotated file is opened to be compressed.
    #[inline(always)]
    pub(crate) fn compress(&self) -> io::Result<()> {
        #[cfg(test)]
        self.faults.compress()?;
        Ok(())
    }

    /// At the start of a janitor turn: what it begins with (`read`: the clock's time and the
    /// rotations taken in), for [`janitor_turn_ends`](Hook::janitor_turn_ends) to report;
    /// outside tests nothing is read.
    #[inline(always)]
    pub(crate) fn janitor_turn_begins(
        &self,
        _read: impl FnOnce() -> (SystemTime, u64),
    ) -> Option<(SystemTime, u64)> {
        #[cfg(test)]
        return Some(_read());
        #[cfg(not(test))]
        None
    }

    /// At the end of a janitor turn that began with `_began`: a test that moved the clock
    /// waits for this to know the janitor has judged the files at that time.
    #[inline(always)]
    pub(crate) fn janitor_turn_ends(&self, _began: Option<(SystemTime, u64)>) {
        #[cfg(test)]
        {
            *self.faults.janitor_seen.lock().unwrap() = _began;
        }
    }

    /// A test's limit on what the writer keeps in memory while writes fail.
    #[inline(always)]
    pub(crate) fn max_pending(&self) -> Option<usize> {
        #[cfg(test)]
        return Some(self.faults.max_pending.load(Relaxed)).filter(|&n| n > 0);
        #[cfg(not(test))]
        None
    }
}

/// Which operations fail while their switch is on.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Writes to the active file fail with ENOSPC ("no space left on device").
    pub(crate) writes: AtomicBool,
    /// Renaming the active file at rotation fails with EACCES.
    pub(crate) renames: AtomicBool,
    /// Compressing a rotated file fails with EIO.
    pub(crate) compressions: AtomicBool,
    /// Overrides the writer's in-memory limit while writes fail (0: the default).
    pub(crate) max_pending: AtomicUsize,
    /// Write attempts made (failed or not), to check the backoff.
    pub(crate) write_attempts: AtomicUsize,
    /// Writes block until this is cleared (a stalled disk).
    pub(crate) stall_writes: AtomicBool,
    /// The next write panics (a bug in the writer).
    pub(crate) panic_in_write: AtomicBool,
    /// Compressions wait at their start until this is cleared (a janitor that lags).
    pub(crate) hold_compressions: AtomicBool,
    /// The next write stops after this many bytes and fails with ENOSPC (a disk that fills
    /// up in the middle of a write); 0: off.
    pub(crate) cut_next_write: AtomicUsize,
    /// Not a failure: the clock's time at the start of the janitor's latest full turn, and how
    /// many rotations it had taken in by then (see [`Hook::janitor_turn_ends`]).
    pub(crate) janitor_seen: std::sync::Mutex<Option<(SystemTime, u64)>>,
}

#[cfg(test)]
const ENOSPC: i32 = 28;
#[cfg(test)]
const EACCES: i32 = 13;
#[cfg(test)]
const EIO: i32 = 5;

#[cfg(test)]
impl Faults {
    fn check(switch: &AtomicBool, errno: i32) -> io::Result<()> {
        if switch.load(Relaxed) {
            Err(io::Error::from_raw_os_error(errno))
        } else {
            Ok(())
        }
    }

    /// Blocks the operation while `switch` is on (a stalled disk, a lagging janitor).
    fn wait_while(switch: &AtomicBool) {
        while switch.load(Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    pub(crate) fn write(&self) -> io::Result<()> {
        self.write_attempts.fetch_add(1, Relaxed);
        if self.panic_in_write.swap(false, Relaxed) {
            panic!("injected: the writer panics");
        }
        Self::wait_while(&self.stall_writes);
        Self::check(&self.writes, ENOSPC)
    }

    /// Where the next write of `len` bytes is cut short, if it is (see `cut_next_write`).
    pub(crate) fn cut(&self, len: usize) -> Option<usize> {
        match self.cut_next_write.swap(0, Relaxed) {
            0 => None,
            at => Some(at.min(len)),
        }
    }

    /// The error a write cut short fails with.
    pub(crate) fn cut_error() -> io::Error {
        io::Error::from_raw_os_error(ENOSPC)
    }

    pub(crate) fn rename(&self) -> io::Result<()> {
        Self::check(&self.renames, EACCES)
    }

    pub(crate) fn compress(&self) -> io::Result<()> {
        Self::wait_while(&self.hold_compressions);
        Self::check(&self.compressions, EIO)
    }
}
