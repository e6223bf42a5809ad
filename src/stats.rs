//! Counters shared by the layer, the writer and the guard, and their public snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Error;

/// A snapshot of a sink's counters, from [`SinkGuard::stats`](crate::SinkGuard::stats) or
/// returned by shutdown.
///
/// Every event a caller emitted through the layer ends up in exactly one of `events_written`
/// and `events_dropped`; so does every record sent through a [`SinkWriter`](crate::SinkWriter)
/// (one per event its formatter wrote, or per line written to it directly). The `Stats` returned by shutdown can miss an event that raced with it
/// (started before shutdown began, reached the queue after its marker): the writer counts it as
/// dropped just after. A [`StatsHandle`] read once every caller is done shows the final count.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Events handed to the operating system (written to the active file).
    pub events_written: u64,
    /// Events that were not written: refused by a full queue under
    /// [`Overflow::DropNewest`](crate::Overflow::DropNewest), emitted after shutdown, or still
    /// unwritable when the sink shut down.
    pub events_dropped: u64,
    /// Events written (and counted in `events_written`) to a file that someone else then
    /// removed or replaced before the sink was done with it: the active file, or a rotated
    /// file before its compression. Each such loss is also reported as an error.
    pub events_lost: u64,
    /// Bytes handed to the operating system.
    pub bytes_written: u64,
    /// Failed writes, flushes and file operations: rotations, compressions, deletions (each
    /// retry that fails counts).
    pub write_errors: u64,
    /// The most recent of those failures, if any.
    pub last_error: Option<Error>,
    /// Times the active file was rotated (renamed aside and replaced by a fresh one).
    pub rotations: u64,
    /// Rotated files compressed to `.gz` (or `.zst`). Every rotated file is counted once, here
    /// or in `files_deleted_uncompressed`, unless its compressed name is taken by a file the
    /// sink did not make (then it stays `.log`, and the error is counted) or it is still plain
    /// when the sink shuts down (compressed at the next start).
    pub files_compressed: u64,
    /// Rotated files deleted by retention.
    pub files_deleted: u64,
    /// The part of `files_deleted` that retention deleted before they were compressed:
    /// compression fell behind (see `compress_backlog`), or they were still within
    /// [`compress_after`](crate::Builder::compress_after) (retention leaves too little room for
    /// the files that rotate within that delay).
    pub files_deleted_uncompressed: u64,
    /// Rotated files waiting for compression, or being compressed, when the snapshot was
    /// taken: 0 or 1 while compression keeps up. A backlog that grows means compression is
    /// slower than logging: choose a lower level, larger files, or no compression. Files still
    /// within [`compress_after`](crate::Builder::compress_after) are not counted: they are not
    /// due yet.
    pub compress_backlog: u64,
    /// Events waiting in the queue between callers and the writer when the snapshot was taken.
    pub queue_len: u64,
}

/// A handle on a sink's counters that outlives its [`SinkGuard`](crate::SinkGuard): the final
/// numbers stay readable after shutdown (also when shutdown returned an error), and events
/// counted as dropped after shutdown show up in it too. From
/// [`SinkGuard::stats_handle`](crate::SinkGuard::stats_handle); cheap to clone.
#[derive(Debug, Clone)]
pub struct StatsHandle {
    pub(crate) shared: std::sync::Arc<Shared>,
    pub(crate) queue: crate::handoff::queue::QueueLen,
}

impl StatsHandle {
    /// A snapshot of the counters now.
    pub fn get(&self) -> Stats {
        self.shared.snapshot(self.queue.get())
    }
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
    /// Bytes of large records in the queue.
    pub(crate) large_bytes: crate::handoff::record::LargeBytes,
    pub(crate) events_written: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    /// Events the writer has taken from the queue and holds unwritten (published by the
    /// writer alone), for a shutdown that times out and for a writer that panicked.
    pub(crate) pending: AtomicU64,
    /// Set by a shutdown that timed out and counted the writer's unconfirmed events as
    /// dropped: a writer that comes back (its stalled write returned) counts nothing more, so
    /// no event is counted both dropped and written.
    pub(crate) abandoned: AtomicBool,
    /// The part of `events_dropped` refused by a full queue: the writer reports these in the
    /// log itself.
    pub(crate) overflow_drops: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) events_lost: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) rotations: AtomicU64,
    pub(crate) files_compressed: AtomicU64,
    pub(crate) files_deleted: AtomicU64,
    pub(crate) files_deleted_uncompressed: AtomicU64,
    /// A gauge, set by the janitor.
    pub(crate) compress_backlog: AtomicU64,
    /// Only the writer and janitor threads write it, and only on failures: never on a caller's
    /// path.
    pub(crate) last_error: Mutex<Option<Error>>,
    /// When each kind of failure was last reported on stderr.
    pub(crate) reporter: Mutex<Reporter>,
}

/// How often each kind of failure may be reported on stderr.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Rate-limits failure reports on stderr: at most one per kind of error per [`REPORT_EVERY`],
/// each saying how many of that kind were not reported since the last one. A full disk fails
/// every write; the host's stderr should hear about it, not drown in it.
#[derive(Debug, Default)]
pub(crate) struct Reporter {
    /// Per kind: when it was last reported, and how many came since.
    kinds: Vec<(&'static str, Instant, u64)>,
}

impl Reporter {
    /// The line to print for `error` at `now`, if its kind is due for a report.
    pub(crate) fn report(&mut self, error: &Error, now: Instant) -> Option<String> {
        let kind = error.kind_name();
        match self.kinds.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, last, suppressed)) if now.duration_since(*last) < REPORT_EVERY => {
                *suppressed += 1;
                None
            }
            Some((_, last, suppressed)) => {
                let line = match std::mem::take(suppressed) {
                    0 => format!("logsink: {error}"),
                    n => format!("logsink: {error} ({n} more like it since the last report)"),
                };
                *last = now;
                Some(line)
            }
            None => {
                self.kinds.push((kind, now, 0));
                Some(format!("logsink: {error}"))
            }
        }
    }
}

impl Shared {
    pub(crate) fn dropped(&self, n: u64) {
        self.events_dropped.fetch_add(n, Relaxed);
    }

    /// Events written to a file that someone else removed.
    pub(crate) fn lost(&self, n: u64) {
        self.events_lost.fetch_add(n, Relaxed);
    }

    /// An event refused by a full queue.
    pub(crate) fn overflowed(&self) {
        self.events_dropped.fetch_add(1, Relaxed);
        self.overflow_drops.fetch_add(1, Relaxed);
    }

    /// Counts a failure, keeps it as the last error, and reports it on stderr (rate-limited).
    pub(crate) fn error(&self, error: Error) {
        self.write_errors.fetch_add(1, Relaxed);
        let report = self
            .reporter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report(&error, Instant::now());
        if let Some(line) = report {
            eprintln!("{line}");
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    // Relaxed loads: each counter is monotonic and read independently; a snapshot taken while
    // the sink runs is approximate by nature, and after shutdown the writer's answer (sent over
    // a channel, which synchronises) makes every count final and visible.
    pub(crate) fn snapshot(&self, queue_len: usize) -> Stats {
        Stats {
            events_written: self.events_written.load(Relaxed),
            events_dropped: self.events_dropped.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            events_lost: self.events_lost.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            rotations: self.rotations.load(Relaxed),
            files_compressed: self.files_compressed.load(Relaxed),
            files_deleted: self.files_deleted.load(Relaxed),
            files_deleted_uncompressed: self.files_deleted_uncompressed.load(Relaxed),
            compress_backlog: self.compress_backlog.load(Relaxed),
            queue_len: queue_len as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::Arc;

    fn write_error() -> Error {
        Error::Write {
            path: "logs/app.log".into(),
            source: Arc::new(io::Error::other("disk on fire")),
        }
    }

    /// Each kind of failure reaches stderr at most once per period, with the count of those held
    /// back; kinds are independent.
    #[test]
    fn each_kind_is_reported_at_most_once_per_period() {
        let mut r = Reporter::default();
        let t0 = Instant::now();
        let first = r.report(&write_error(), t0).unwrap();
        assert_eq!(
            first,
            "logsink: cannot write log file logs/app.log: disk on fire"
        );
        // Another kind is reported at once, independently.
        assert!(r.report(&Error::WriterGone, t0).is_some());
        for s in 1..10 {
            assert_eq!(r.report(&write_error(), t0 + Duration::from_secs(s)), None);
        }
        let again = r.report(&write_error(), t0 + REPORT_EVERY).unwrap();
        assert!(
            again.ends_with("(9 more like it since the last report)"),
            "{again}"
        );
        assert_eq!(r.report(&write_error(), t0 + REPORT_EVERY), None);
    }
}
