//! Failure injection for tests: switches that make the sink's own file operations fail the
//! way a full disk, a read-only folder or a broken device make them fail, so that the
//! recovery paths run deterministically on any machine (CI runs as root, where permissions
//! do not fail, and cannot mount a small filesystem).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// Which operations fail while their switch is on.
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
}

const ENOSPC: i32 = 28;
const EACCES: i32 = 13;
const EIO: i32 = 5;

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
