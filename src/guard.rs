//! [`SinkGuard`]: flush, statistics, and the shutdown handshake.
//!
//! Markers go through the queue's control channel, and the writer takes every event queued
//! before a marker ahead of it (see [`queue`](crate::handoff::queue)), so "everything sent before" is
//! exact. Blocking waits use a crossbeam channel; async waits a tokio oneshot, which needs no
//! runtime to be answered, so a sink never depends on a runtime being alive.
//!
//! # Why shutdown neither loses the last batch nor deadlocks
//!
//! 1. The guard stores `closed = true` (Release), then sends the `Shutdown` marker. From the
//!    store on, the layer counts new events as dropped without sending them (Acquire load).
//! 2. Every event whose send completed before the marker's send is in the queue when the
//!    writer takes the marker, and the writer takes the events queued at that moment before
//!    handling the marker, so all of them are formatted first. The writer then writes
//!    them out (retrying a failing disk for a while), syncs and closes the file, waits for the
//!    janitor to finish its queue, and only then answers: the answer means "on disk".
//! 3. An event that passed the `closed` check before step 1 but was sent after the marker is
//!    not lost uncounted: after answering, the writer keeps receiving until every sender is
//!    gone and counts what arrives as dropped. Because it keeps receiving, a caller blocked on
//!    a full queue (`Overflow::Block`) always gets room; nobody waits forever.
//! 4. The marker never waits for room: the control channel is unbounded (markers are few).
//!    The writer always gets to it: it never blocks on anything a caller holds (it parks with
//!    a timeout, and joins only the janitor, which needs nothing from callers), and when
//!    writes fail it stops taking work only until shutdown begins (`closed`), so the marker is
//!    handled even with a dead disk.
//! 5. If the writer thread died (a bug), its end of the reply channel is dropped and the guard
//!    gets [`Error::WriterGone`] instead of waiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::Arc;
use std::task::Poll;
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::handoff::queue::QueueLen;
use crate::handoff::record::{Marker, Reply};
use crate::stats::Shared;
use crate::{Error, Stats, StatsHandle};

/// Owns the sink's life: flushes on request, and on [`shutdown`](SinkGuard::shutdown),
/// [`shutdown_blocking`](SinkGuard::shutdown_blocking) or `Drop` writes every accepted event,
/// closes the file and stops accepting events.
///
/// Keep it alive as long as the program logs: bind it to a named variable (`let _guard = ...`
/// or `let guard = ...`). **`let _ = ...` drops it at once**, which shuts the sink down before
/// the first event.
///
/// ```no_run
/// # async fn run() -> Result<(), logsink::Error> {
/// use tracing_subscriber::prelude::*;
///
/// let (layer, guard) = logsink::LogSink::builder().build()?;
/// tracing_subscriber::registry().with(layer).init();
/// tracing::info!("serving");
/// guard.flush().await?; // on disk (in the OS) now, the sink keeps running
/// let stats = guard.shutdown().await?; // drained, flushed and closed
/// println!("{} events written", stats.events_written);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping the guard shuts the sink down at once; keep it in a named variable, not `let _ = ...`"]
pub struct SinkGuard {
    /// The queue's control channel, for markers.
    pub(crate) control: Sender<Marker>,
    /// The queue's length (see [`StatsHandle`]).
    queue: QueueLen,
    shared: Arc<Shared>,
    /// The writer thread, unparked after each marker so that it answers at once.
    writer: Thread,
    /// Set once a shutdown was completed, so `Drop` does nothing more.
    done: bool,
    /// The longest a shutdown waits for the writer (see [`Builder::shutdown_timeout`]).
    ///
    /// [`Builder::shutdown_timeout`]: crate::Builder::shutdown_timeout
    timeout: Duration,
}

impl SinkGuard {
    pub(crate) fn new(
        control: Sender<Marker>,
        queue: QueueLen,
        shared: Arc<Shared>,
        writer: Thread,
        timeout: Duration,
    ) -> Self {
        SinkGuard {
            control,
            queue,
            shared,
            writer,
            done: false,
            timeout,
        }
    }

    /// A handle on the counters that stays valid after shutdown: the way to read the final
    /// numbers when shutdown returns an error, or to export them periodically from another
    /// task (e.g. into a metrics library).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            shared: self.shared.clone(),
            queue: self.queue.clone(),
        }
    }

    /// A snapshot of the counters, at any time.
    pub fn stats(&self) -> Stats {
        self.shared.snapshot(self.queue.get())
    }

    /// Hands every event accepted so far to the OS, without blocking the async runtime.
    ///
    /// # Errors
    /// The write error that keeps events in memory (they stay queued and are retried), or
    /// [`Error::WriterGone`].
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Marker::Flush(Reply::Async(tx)))?;
        rx.await.map_err(|_| Error::WriterGone)?
    }

    /// [`flush`](SinkGuard::flush) for code without an async runtime: blocks until done.
    ///
    /// # Errors
    /// As [`flush`](SinkGuard::flush).
    pub fn flush_blocking(&self) -> Result<(), Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Marker::Flush(Reply::Blocking(tx)))?;
        rx.recv().map_err(|_| Error::WriterGone)?
    }

    /// Stops accepting events, writes every event accepted before, flushes and closes the
    /// file, and returns the final statistics. The runtime's worker thread is not blocked
    /// while the writer drains.
    ///
    /// Events emitted after this is called are counted as dropped and never block.
    ///
    /// It waits at most the [`shutdown_timeout`](crate::Builder::shutdown_timeout), also when
    /// the disk stalls (a `write` that never returns): then it returns
    /// [`Error::ShutdownTimeout`] with the number of accepted events not confirmed written
    /// (counted as dropped), and leaves the writer thread behind, detached.
    ///
    /// # Errors
    /// The last write error if some accepted events could not be written (they are counted in
    /// [`Stats::events_dropped`]), [`Error::ShutdownTimeout`], or [`Error::WriterGone`].
    pub async fn shutdown(mut self) -> Result<Stats, Error> {
        self.shared.closed.store(true, Release);
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        if let Err(error) = self.send(Marker::Shutdown(Reply::Async(tx))) {
            self.done = true; // the writer is gone: `Drop` would only fail again
            return Err(error);
        }
        // If this future is dropped from here on, `Drop` sends a second marker and waits for
        // the first one's work; the writer answers it at once.
        let mut timer = Timer::start(self.timeout);
        let answer = std::future::poll_fn(|cx| {
            if let Poll::Ready(answer) = Pin::new(&mut rx).poll(cx) {
                return Poll::Ready(Some(answer));
            }
            match timer
                .expired
                .as_mut()
                .map(|expired| Pin::new(expired).poll(cx))
            {
                Some(Poll::Ready(Ok(()))) => Poll::Ready(None),
                // The timer thread could not start: wait for the writer as long as it takes.
                Some(Poll::Ready(Err(_))) => {
                    timer.expired = None;
                    Poll::Pending
                }
                _ => Poll::Pending,
            }
        })
        .await;
        self.done = true;
        match answer {
            Some(result) => result.map_err(|_| Error::WriterGone)?,
            None => Err(self.abandon()),
        }
    }

    /// [`shutdown`](SinkGuard::shutdown) for code without an async runtime: blocks until done.
    ///
    /// # Errors
    /// As [`shutdown`](SinkGuard::shutdown).
    pub fn shutdown_blocking(mut self) -> Result<Stats, Error> {
        self.done = true;
        self.shutdown_now()
    }

    fn shutdown_now(&mut self) -> Result<Stats, Error> {
        // Release pairs with the layer's Acquire load; the marker's send below orders everything
        // this thread logged before it.
        self.shared.closed.store(true, Release);
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Marker::Shutdown(Reply::Blocking(tx)))?;
        match rx.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(self.abandon()),
            Err(RecvTimeoutError::Disconnected) => Err(Error::WriterGone),
        }
    }

    /// Gives up on a writer that did not answer in time (a stalled disk): the events it was
    /// given and has not confirmed written are counted as dropped, and it counts nothing more
    /// (see `Shared::abandoned`).
    fn abandon(&self) -> Error {
        self.shared.abandoned.store(true, Release);
        let unconfirmed = self.shared.pending.load(Acquire) + self.queue.get() as u64;
        self.shared.dropped(unconfirmed);
        Error::ShutdownTimeout {
            timeout: self.timeout,
            unconfirmed,
        }
    }

    /// Sends a marker (never blocks: the control channel is unbounded) and wakes the writer,
    /// which answers it without waiting for its next poll.
    fn send(&self, marker: Marker) -> Result<(), Error> {
        let sent = self.control.send(marker).map_err(|_| Error::WriterGone);
        self.writer.unpark();
        sent
    }
}

impl Drop for SinkGuard {
    /// Shuts the sink down (blocking) unless that was already done. `Drop` cannot return an
    /// error, so a failed shutdown (events that could not be written) is reported on stderr.
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            if let Err(error) = self.shutdown_now() {
                eprintln!("logsink: shutdown on drop: {error}");
            }
        }
    }
}

/// The clock for an async shutdown without depending on a runtime's timer: a thread that
/// fires `expired` after the timeout, or ends at once when the shutdown finishes first (the
/// timer is dropped, and with it `cancel`).
struct Timer {
    /// `None` once it is known never to fire.
    expired: Option<tokio::sync::oneshot::Receiver<()>>,
    _cancel: Sender<()>,
}

impl Timer {
    fn start(timeout: Duration) -> Timer {
        let (fire, expired) = tokio::sync::oneshot::channel();
        let (cancel, cancelled) = crossbeam_channel::bounded::<()>(0);
        let spawned = std::thread::Builder::new()
            .name("logsink-shutdown-timer".to_owned())
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = cancelled.recv_timeout(timeout) {
                    let _ = fire.send(());
                }
            });
        // Without a thread (none can be spawned) the sender is gone: the shutdown then waits
        // for the writer as long as it takes.
        drop(spawned);
        Timer {
            expired: Some(expired),
            _cancel: cancel,
        }
    }
}
