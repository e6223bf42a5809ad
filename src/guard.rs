//! [`SinkGuard`]: flush, statistics, and the shutdown handshake.
//!
//! Markers go through the same FIFO channel as events, so "everything sent before" is exact.
//! Blocking waits use a crossbeam channel; async waits a tokio oneshot, which needs no runtime
//! to be answered, so a sink never depends on a runtime being alive.
//!
//! # Why shutdown neither loses the last batch nor deadlocks
//!
//! 1. The guard stores `closed = true` (Release), then sends the `Shutdown` marker. From the
//!    store on, the layer counts new events as dropped without sending them (Acquire load).
//! 2. The channel is FIFO: every event whose send completed before the marker's send is ahead
//!    of it, and the writer handles messages in order, so all of them are formatted before
//!    the marker is seen. The writer then writes them out (retrying a failing disk for a
//!    while), syncs and closes the file, waits for the janitor to finish its queue, and only
//!    then answers: the answer means "on disk".
//! 3. An event that passed the `closed` check before step 1 but was sent after the marker is
//!    not lost uncounted: after answering, the writer keeps receiving until every sender is
//!    gone and counts what arrives as dropped. Because it keeps receiving, a caller blocked on
//!    a full queue (`Overflow::Block`) always gets room; nobody waits forever.
//! 4. The marker itself can wait for room in a full queue. The writer always drains: it never
//!    blocks on anything a caller holds (it parks with a timeout, and joins only the janitor,
//!    which needs nothing from callers), and when writes fail it stops draining only until
//!    shutdown begins (`closed`), so the marker gets through even with a dead disk.
//! 5. If the writer thread died (a bug), its end of the reply channel is dropped and the guard
//!    gets [`Error::WriterGone`] instead of waiting.

use std::sync::atomic::Ordering::Release;
use std::sync::Arc;
use std::thread::Thread;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::record::{Msg, Reply};
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
    tx: Sender<Msg>,
    /// The queue's receiving end, only to read its length (see [`StatsHandle`]).
    queue: Receiver<Msg>,
    shared: Arc<Shared>,
    /// The writer thread, unparked after each marker so that it answers at once.
    writer: Thread,
    /// Set once a shutdown was completed, so `Drop` does nothing more.
    done: bool,
}

impl SinkGuard {
    pub(crate) fn new(
        tx: Sender<Msg>,
        queue: Receiver<Msg>,
        shared: Arc<Shared>,
        writer: Thread,
    ) -> Self {
        SinkGuard {
            tx,
            queue,
            shared,
            writer,
            done: false,
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
        self.shared.snapshot(self.tx.len())
    }

    /// Hands every event accepted so far to the OS, without blocking the async runtime.
    ///
    /// # Errors
    /// The write error that keeps events in memory (they stay queued and are retried), or
    /// [`Error::WriterGone`].
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send_without_blocking(Msg::Flush(Reply::Async(tx)))?;
        rx.await.map_err(|_| Error::WriterGone)?
    }

    /// [`flush`](SinkGuard::flush) for code without an async runtime: blocks until done.
    ///
    /// # Errors
    /// As [`flush`](SinkGuard::flush).
    pub fn flush_blocking(&self) -> Result<(), Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send_blocking(Msg::Flush(Reply::Blocking(tx)))?;
        rx.recv().map_err(|_| Error::WriterGone)?
    }

    /// Stops accepting events, writes every event accepted before, flushes and closes the
    /// file, and returns the final statistics. The runtime's worker thread is not blocked
    /// while the writer drains.
    ///
    /// Events emitted after this is called are counted as dropped and never block.
    ///
    /// # Errors
    /// The last write error if some accepted events could not be written (they are counted in
    /// [`Stats::events_dropped`]), or [`Error::WriterGone`].
    pub async fn shutdown(mut self) -> Result<Stats, Error> {
        self.shared.closed.store(true, Release);
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Err(error) = self.send_without_blocking(Msg::Shutdown(Reply::Async(tx))) {
            self.done = true; // the writer is gone: `Drop` would only fail again
            return Err(error);
        }
        // If this future is dropped from here on, `Drop` sends a second marker and waits for
        // the first one's work; the writer answers it at once.
        let result = rx.await;
        self.done = true;
        result.map_err(|_| Error::WriterGone)?
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
        self.send_blocking(Msg::Shutdown(Reply::Blocking(tx)))?;
        rx.recv().map_err(|_| Error::WriterGone)?
    }

    /// Sends a marker, waiting for room in the queue, and wakes the writer.
    fn send_blocking(&self, msg: Msg) -> Result<(), Error> {
        self.writer.unpark();
        let sent = self.tx.send(msg).map_err(|_| Error::WriterGone);
        self.writer.unpark();
        sent
    }

    /// Sends a marker without blocking the current thread, and wakes the writer: when the
    /// queue is full, a helper thread waits for room instead (rare: only under a burst that
    /// fills the whole queue).
    fn send_without_blocking(&self, msg: Msg) -> Result<(), Error> {
        self.writer.unpark();
        match self.tx.try_send(msg) {
            Ok(()) => {
                self.writer.unpark();
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(Error::WriterGone),
            Err(TrySendError::Full(msg)) => {
                let tx = self.tx.clone();
                let writer = self.writer.clone();
                std::thread::Builder::new()
                    .name("logsink-marker".to_owned())
                    .spawn(move || {
                        // If the writer is gone the marker is dropped with its reply sender,
                        // and the waiter sees `WriterGone`.
                        let _ = tx.send(msg);
                        writer.unpark();
                    })
                    .map(drop)
                    .map_err(|source| Error::SpawnThread {
                        source: Arc::new(source),
                    })
            }
        }
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
