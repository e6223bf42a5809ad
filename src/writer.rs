//! The writer thread: drains records, formats them, and owns the log file.
//!
//! One thread, `logsink-writer`, is the only owner of the active file. It blocks on the channel
//! until a message arrives or a deadline (flush, retry) passes, drains what is queued in
//! batches, formats each record into one large buffer, and writes that buffer when it is full,
//! when `flush_interval` has passed since its oldest byte arrived, or on a marker.
//!
//! A failed write keeps the buffer and is retried with backoff; while the buffer is over
//! [`MAX_PENDING`] the writer stops draining, so the queue fills and the overflow policy applies
//! to callers instead of memory growing.
//!
//! After a shutdown marker the writer closes the file and stays on the channel only to count
//! late events as dropped (events that raced past the layer's closed check), so none goes
//! missing uncounted and no blocked caller waits forever. It ends when every sender is gone.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::format::LineFormatter;
use crate::record::{Msg, PoolGiver, Record};
use crate::stats::Shared;
use crate::Error;

/// Write the buffer once it holds this much: large writes, few system calls.
const WRITE_THRESHOLD: usize = 256 * 1024;
/// While writes fail, stop draining the queue once this much is waiting in memory.
const MAX_PENDING: usize = 16 * 1024 * 1024;
/// Messages handled between two checks of the flush deadline.
const MAX_BATCH: usize = 1024;
/// First and longest wait between retries of a failed write.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Tries at shutdown before unwritable events are given up (and counted as dropped).
const SHUTDOWN_TRIES: u32 = 3;

/// Everything the writer thread owns.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) rx: Receiver<Msg>,
    pub(crate) pool: PoolGiver,
    pub(crate) shared: Arc<Shared>,
    pub(crate) path: PathBuf,
    /// `None` after a failed write: the next try reopens the path.
    pub(crate) file: Option<File>,
    pub(crate) flush_interval: Duration,
    pub(crate) formatter: LineFormatter,
    /// Formatted lines not yet handed to the OS.
    pub(crate) out: Vec<u8>,
    /// Events whose lines are (whole or in part) in `out`.
    pub(crate) out_events: u64,
    /// When `out`'s oldest byte must reach the OS.
    pub(crate) flush_due: Option<Instant>,
    /// Set while writes fail: when to try again, and the wait after that.
    pub(crate) retry_at: Option<Instant>,
    pub(crate) backoff: Duration,
}

/// The open file, reopening `path` (append, create) if the last write failed.
fn open<'a>(file: &'a mut Option<File>, path: &std::path::Path) -> io::Result<&'a mut File> {
    if file.is_none() {
        *file = Some(crate::builder::open_append(path)?);
    }
    Ok(file.as_mut().expect("just opened"))
}

/// What the main loop does after a message.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Closed,
}

impl Writer {
    pub(crate) fn new(
        rx: Receiver<Msg>,
        pool: PoolGiver,
        shared: Arc<Shared>,
        path: PathBuf,
        file: File,
        flush_interval: Duration,
        preamble: &[u8],
    ) -> Self {
        Writer {
            rx,
            pool,
            shared,
            path,
            file: Some(file),
            flush_interval,
            formatter: LineFormatter::default(),
            out: Vec::from(preamble),
            out_events: 0,
            flush_due: None,
            retry_at: None,
            backoff: MIN_BACKOFF,
        }
    }

    /// The thread's body.
    pub(crate) fn run(mut self) {
        loop {
            if self.retry_at.is_some() && self.out.len() >= MAX_PENDING {
                // Backpressure: leave the queue alone until the disk takes data again.
                self.sleep_until_retry();
                self.write_out();
                continue;
            }
            let msg = match self.wake_at() {
                Some(at) => match self.rx.recv_deadline(at) {
                    Ok(msg) => Some(msg),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match self.rx.recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => break,
                },
            };
            if let Some(msg) = msg {
                if self.handle(msg) == Flow::Closed {
                    return self.count_late_events();
                }
                for _ in 0..MAX_BATCH {
                    let Ok(msg) = self.rx.try_recv() else { break };
                    if self.handle(msg) == Flow::Closed {
                        return self.count_late_events();
                    }
                }
            }
            if self.wake_at().is_some_and(|at| at <= Instant::now()) {
                self.write_out();
            }
        }
        // Every sender is gone without a shutdown marker (the guard was leaked and the layer
        // dropped): still write what was accepted.
        let _ = self.close();
    }

    /// When the loop must wake without a message: the retry time while writes fail (the flush
    /// deadline has passed then, and retrying sooner would only hammer a failing disk), else
    /// the flush deadline.
    fn wake_at(&self) -> Option<Instant> {
        self.retry_at.or(self.flush_due)
    }

    fn handle(&mut self, msg: Msg) -> Flow {
        match msg {
            Msg::Event(record) => self.event(record),
            Msg::Flush(reply) => {
                self.write_out();
                reply.send(self.flushed_result());
            }
            Msg::Shutdown(reply) => {
                let result = self.close().map(|()| self.shared.snapshot());
                reply.send(result);
                return Flow::Closed;
            }
        }
        Flow::Continue
    }

    fn event(&mut self, record: Record) {
        self.formatter.format(&record, &mut self.out);
        self.out_events += 1;
        self.pool.give(record.buf);
        if self.flush_due.is_none() {
            self.flush_due = Some(Instant::now() + self.flush_interval);
        }
        if self.out.len() >= WRITE_THRESHOLD && self.retry_at.is_none() {
            self.write_out();
        }
    }

    /// `Ok` when nothing waits in memory, else the error that keeps it there.
    fn flushed_result(&self) -> Result<(), Error> {
        if self.out.is_empty() {
            Ok(())
        } else {
            Err(self.last_error())
        }
    }

    fn last_error(&self) -> Error {
        self.shared
            .snapshot()
            .last_error
            .unwrap_or(Error::WriterGone)
    }

    /// Hands `out` to the OS; on failure keeps what is left and schedules a retry.
    fn write_out(&mut self) {
        if self.out.is_empty() {
            self.flush_due = None;
            return;
        }
        let mut written = 0;
        let out = &self.out;
        let result = open(&mut self.file, &self.path).and_then(|file| {
            while written < out.len() {
                match file.write(&out[written..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        use std::sync::atomic::Ordering::Relaxed;
        self.shared.bytes_written.fetch_add(written as u64, Relaxed);
        match result {
            Ok(()) => {
                self.shared
                    .events_written
                    .fetch_add(self.out_events, Relaxed);
                self.out.clear();
                self.out_events = 0;
                self.flush_due = None;
                self.retry_at = None;
                self.backoff = MIN_BACKOFF;
            }
            Err(source) => {
                self.out.drain(..written);
                self.shared.error(Error::Write {
                    path: self.path.clone(),
                    source: Arc::new(source),
                });
                // Reopen on the next try: the file may have been removed or replaced.
                self.file = None;
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    fn sleep_until_retry(&self) {
        if let Some(at) = self.retry_at {
            thread::sleep(at.saturating_duration_since(Instant::now()));
        }
    }

    /// Writes everything (retrying a few times), syncs and closes the file. Events that still
    /// cannot be written are counted as dropped and the error is returned.
    fn close(&mut self) -> Result<(), Error> {
        self.write_out();
        for _ in 1..SHUTDOWN_TRIES {
            if self.out.is_empty() {
                break;
            }
            self.sleep_until_retry();
            self.write_out();
        }
        let result = if self.out.is_empty() {
            Ok(())
        } else {
            self.shared.dropped(self.out_events);
            self.out.clear();
            self.out_events = 0;
            Err(self.last_error())
        };
        if let Some(file) = self.file.take() {
            // Durable at a clean shutdown; a failure here is reported but loses nothing that
            // the OS did not already have.
            if let Err(source) = file.sync_all() {
                self.shared.error(Error::Write {
                    path: self.path.clone(),
                    source: Arc::new(source),
                });
            }
        }
        result
    }

    /// After shutdown: count whatever still arrives as dropped, until every sender is gone.
    fn count_late_events(self) {
        for msg in self.rx.iter() {
            match msg {
                Msg::Event(record) => {
                    self.shared.dropped(1);
                    self.pool.give(record.buf);
                }
                Msg::Flush(reply) => reply.send(Err(Error::Closed)),
                Msg::Shutdown(reply) => reply.send(Ok(self.shared.snapshot())),
            }
        }
    }
}
