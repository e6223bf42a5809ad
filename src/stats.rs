//! Counters shared by the layer, the writer and the guard, and their public snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::Error;

/// A snapshot of a sink's counters, from [`SinkGuard::stats`](crate::SinkGuard::stats) or
/// returned by shutdown.
///
/// Every event a caller emitted through the layer ends up in exactly one of `events_written`
/// and `events_dropped` once the sink has shut down.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Events handed to the operating system (written to the active file).
    pub events_written: u64,
    /// Events that were not written: refused by a full queue under
    /// [`Overflow::DropNewest`](crate::Overflow::DropNewest), emitted after shutdown, or still
    /// unwritable when the sink shut down.
    pub events_dropped: u64,
    /// Bytes handed to the operating system.
    pub bytes_written: u64,
    /// Failed writes, flushes and file operations: rotations, compressions, deletions (each
    /// retry that fails counts).
    pub write_errors: u64,
    /// The most recent of those failures, if any.
    pub last_error: Option<Error>,
    /// Times the active file was rotated (renamed aside and replaced by a fresh one).
    pub rotations: u64,
    /// Rotated files compressed to `.gz`.
    pub files_compressed: u64,
    /// Rotated files deleted by retention.
    pub files_deleted: u64,
}

/// Keeps a value on a cache line of its own (128 bytes covers adjacent-line prefetching), so
/// that the writer updating the counters beside it does not evict it from every caller's
/// cache: callers read `closed` on every event.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CacheLine<T>(pub(crate) T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// State shared between callers, the writer thread and the guard.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Set by the guard when shutdown begins: from then on the layer counts events as dropped
    /// instead of sending them. Read on every event; written once, so the cache line stays
    /// shared and the load stays cheap.
    pub(crate) closed: CacheLine<AtomicBool>,
    pub(crate) events_written: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) rotations: AtomicU64,
    pub(crate) files_compressed: AtomicU64,
    pub(crate) files_deleted: AtomicU64,
    /// Only the writer thread writes it, and only on failures: never on a caller's path.
    pub(crate) last_error: Mutex<Option<Error>>,
}

impl Shared {
    pub(crate) fn dropped(&self, n: u64) {
        self.events_dropped.fetch_add(n, Relaxed);
    }

    pub(crate) fn error(&self, error: Error) {
        self.write_errors.fetch_add(1, Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    // Relaxed loads: each counter is monotonic and read independently; a snapshot taken while
    // the sink runs is approximate by nature, and after shutdown the writer's answer (sent over
    // a channel, which synchronises) makes every count final and visible.
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            events_written: self.events_written.load(Relaxed),
            events_dropped: self.events_dropped.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            rotations: self.rotations.load(Relaxed),
            files_compressed: self.files_compressed.load(Relaxed),
            files_deleted: self.files_deleted.load(Relaxed),
        }
    }
}
