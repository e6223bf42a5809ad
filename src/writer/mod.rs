//! The writer thread: drains records, formats them, owns the active file and rotates it.
//!
//! One thread, `logsink-writer`, is the only owner of the active file. It polls the queue
//! (parking for a short, growing while when it is empty, never past a deadline: flush, retry,
//! period boundary), takes what is queued in batches, formats each record into one large
//! buffer, and writes that buffer when it is full, when `flush_interval` has passed since its
//! oldest byte arrived, or on a marker.
//!
//! Rotation happens here, between two events: before a line that would take the file past
//! `max_file_size`, or before the first event stamped at or after the next period boundary
//! (the event's own time decides, so every file holds its period's events). The writer writes
//! out what belongs to the old file, renames it, opens a fresh active file, and hands the
//! rotated name to the janitor, which compresses it and applies retention on its own thread.
//!
//! A failed write keeps the buffer and is retried with backoff; while the buffer is over
//! [`MAX_PENDING`] the writer stops draining, so the queue fills and the overflow policy applies
//! to callers instead of memory growing.
//!
//! After a shutdown marker the writer closes the file and stays on the queue only to count
//! late events as dropped (events that raced past the layer's closed check), so none goes
//! missing uncounted and no blocked caller waits forever. It ends when every sender is gone.

pub(crate) mod fields;
pub(crate) mod format;

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::caller::clock::{Clock, Timebase};
use crate::files::folder::Folder;
use crate::files::janitor::JanitorHandle;
use crate::files::rotation::{Namer, Policy, COMPRESSED_FORMS};
use crate::handoff::queue::{Batch, Inbox};
use crate::handoff::record::{Marker, PoolGiver, Record};
use crate::stats::Shared;
use crate::writer::format::{LineFormatter, LineOptions};
use crate::{Error, Format};

/// Write the buffer once it holds this much: large writes, few system calls.
const WRITE_THRESHOLD: usize = 256 * 1024;
/// While writes fail, stop draining the queue once this much is waiting in memory.
const MAX_PENDING: usize = 16 * 1024 * 1024;
/// How long after a period boundary a quiet active file is rotated (see
/// `Writer::rotate_if_period_over`).
const IDLE_ROTATION_GRACE: Duration = Duration::from_secs(1);
/// The writer's first and longest park between two polls of an empty queue. The shortest
/// keeps a busy sink's batches small; the longest bounds how long a burst waits for the
/// writer to notice it (the queue absorbs it meanwhile).
const MIN_IDLE: Duration = Duration::from_micros(100);
const MAX_IDLE: Duration = Duration::from_millis(10);
/// First and longest wait between retries of a failed write.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How many taken rotated names one rotation skips before it gives up until its next try.
const MAX_NAME_TRIES: usize = 64;

/// The active file and what decides its rotation.
#[derive(Debug)]
pub(crate) struct ActiveFile {
    /// The folder, through which every file operation goes.
    pub(crate) folder: Arc<Folder>,
    /// `<file_name>.log`, in the folder.
    pub(crate) name: String,
    /// `<dir>/<file_name>.log`, for messages.
    pub(crate) path: PathBuf,
    /// `None` after a failed write or rotation: the next write reopens the name.
    pub(crate) file: Option<File>,
    /// The mode a new active file gets: that of the file it replaces (or
    /// [`Builder::file_mode`](crate::Builder::file_mode) for the first); `None` for the
    /// default.
    pub(crate) mode: Option<u32>,
    /// Bytes in the file, including those still in the writer's buffer.
    pub(crate) len: u64,
    /// Events written to the file (since this sink opened it): lost if someone removes it.
    pub(crate) events: u64,
    /// When the file was opened (the time in its rotated name).
    pub(crate) opened_at: SystemTime,
    /// The period boundary at which it rotates, if rotating by time.
    pub(crate) next_boundary: Option<SystemTime>,
    pub(crate) policy: Policy,
    pub(crate) namer: Namer,
}

impl ActiveFile {
    /// The open file, reopening the name if the last write failed, or if the name no longer
    /// holds the file held open (deleted, renamed away or replaced, with its folder or alone):
    /// writing on into an unlinked file would lose every line silently, so that is reported.
    /// A missing folder is made again.
    fn open(&mut self, out_len: usize, shared: &Shared) -> io::Result<&mut File> {
        if let Some(file) = &self.file {
            if !self.folder.holds(file, &self.name) {
                self.file = None;
                shared.lost(std::mem::take(&mut self.events));
                shared.error(Error::Write {
                    path: self.path.clone(),
                    source: Arc::new(io::Error::new(
                        io::ErrorKind::NotFound,
                        "the active file was removed or replaced by someone else; the events \
                         written to it went with it (counted as lost), the next go to a new file",
                    )),
                });
            }
        }
        if self.file.is_none() {
            let file = match self.folder.open_active(self.mode) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.folder.recreate()?;
                    self.folder.open_active(self.mode)?
                }
                other => other?,
            };
            // A different file (re-created, or replaced by someone): its own size counts now.
            self.len = file.metadata().map_or(0, |m| m.len()) + out_len as u64;
            self.mode = crate::files::folder::mode_of(&file).or(self.mode);
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }

    /// Renames the active file to the next rotated name that nothing in the folder has yet:
    /// a name that is taken (a planted file, a symlink) is skipped, never replaced.
    pub(crate) fn rename_to_next(&mut self) -> io::Result<String> {
        for _ in 0..MAX_NAME_TRIES {
            let name = self.namer.next(self.opened_at);
            // Taken in any of its forms: the compressed names must be free too, or the file
            // could never be compressed, and recovery would take it for a leftover.
            let taken = |form: &str| !matches!(self.folder.stat(form), Ok(None));
            if COMPRESSED_FORMS
                .iter()
                .any(|(suffix, _)| taken(&format!("{name}{suffix}")))
            {
                continue;
            }
            match self.folder.rename(&self.name, &name) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => return other.map(|()| name),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "every rotated name tried was taken by a file the sink did not make",
        ))
    }
}

/// Everything the writer thread owns.
#[derive(Debug)]
pub(crate) struct Writer {
    pool: PoolGiver,
    shared: Arc<Shared>,
    active: ActiveFile,
    janitor: JanitorHandle,
    clock: Clock,
    /// Turns the callers' stamps into wall-clock time.
    timebase: Timebase,
    flush_interval: Duration,
    /// How long shutdown keeps retrying a failing write before the unwritable events are
    /// given up (and counted as dropped): half the shutdown timeout, so that the writer gives
    /// up, counts and answers before the guard stops waiting for it.
    patience: Duration,
    formatter: LineFormatter,
    /// Formatted lines not yet handed to the OS, all for the active file.
    out: Vec<u8>,
    /// Events whose lines are (whole or in part) in `out`.
    out_events: u64,
    /// A line set aside while the file before it is rotated.
    spill: Vec<u8>,
    /// When `out`'s oldest byte must reach the OS.
    flush_due: Option<Instant>,
    /// Set while writes fail: when to try again, and the wait after that.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Set after a failed rename: no rotation is tried before then.
    rotate_retry_at: Option<Instant>,
    /// Overflow drops already reported in the log (see `report_overflow`).
    reported_drops: u64,
    /// End offsets in `out` of lines that are not events (the newline after a cut-short line,
    /// drop reports, the lines of a raw record but its last), so that a partial write counts
    /// only whole events as written.
    others: Vec<usize>,
}

/// What a [`Writer`] is made of: the parts start-up made, and the sink's options.
#[derive(Debug)]
pub(crate) struct WriterConfig {
    /// Where taken records' buffers go back to callers.
    pub(crate) pool: PoolGiver,
    pub(crate) shared: Arc<Shared>,
    /// The opened active file (see `files::startup`).
    pub(crate) active: ActiveFile,
    /// What must be written before the first event (a newline after a cut-short line).
    pub(crate) preamble: &'static [u8],
    pub(crate) janitor: JanitorHandle,
    pub(crate) clock: Clock,
    pub(crate) flush_interval: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) format: Format,
    pub(crate) line: LineOptions,
}

/// `Instant::now()` plus `wait`, saturating: any accepted setting (`Duration::MAX` too) means
/// "a very long time", never a panic on the writer thread.
pub(crate) fn deadline(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// What the main loop does after a message.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Closed,
}

impl Writer {
    /// The writer for an opened active file (with what must be written before the first
    /// event), its janitor, and the sink's options.
    pub(crate) fn new(config: WriterConfig) -> Self {
        let WriterConfig {
            pool,
            shared,
            active,
            preamble,
            janitor,
            clock,
            flush_interval,
            shutdown_timeout,
            format,
            line,
        } = config;
        Writer {
            pool,
            shared,
            active,
            janitor,
            timebase: Timebase::new(clock.clone()),
            clock,
            flush_interval,
            patience: shutdown_timeout / 2,
            formatter: LineFormatter::new(format, line),
            out: Vec::from(preamble),
            out_events: 0,
            spill: Vec::new(),
            flush_due: None,
            retry_at: None,
            backoff: MIN_BACKOFF,
            rotate_retry_at: None,
            reported_drops: 0,
            others: if preamble.is_empty() {
                Vec::new()
            } else {
                vec![preamble.len()]
            },
        }
    }

    /// Starts the writer thread, `logsink-writer`, on `inbox`; returns it, for callers and
    /// the guard to wake.
    pub(crate) fn spawn(self, inbox: Inbox) -> Result<thread::Thread, Error> {
        let thread = thread::Builder::new()
            .name("logsink-writer".to_owned())
            .spawn(move || self.run_guarded(inbox))
            .map_err(|source| Error::SpawnThread {
                source: Arc::new(source),
            })?;
        Ok(thread.thread().clone())
    }

    /// The thread's body: [`run`](Writer::run), guarded. If the writer panics (a bug in
    /// logsink, never the host's), the events it held are counted as dropped, the error is
    /// kept, new events are refused (counted) as after shutdown, and the thread goes on
    /// draining the queue, counting what arrives and answering every marker with
    /// [`Error::WriterGone`]: no caller waits for room forever, and shutdown returns the error.
    fn run_guarded(self, mut inbox: Inbox) {
        let shared = self.shared.clone();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(&mut inbox)));
        if run.is_ok() {
            return;
        }
        shared.closed.store(true, Release);
        shared.error(Error::WriterGone);
        shared.dropped(shared.pending.swap(0, Relaxed));
        inbox.drain_until_disconnected(
            |record| {
                shared.large_bytes.release(record.buf.len());
                shared.dropped(1);
            },
            |marker| match marker {
                Marker::Flush(reply) => reply.send(Err(Error::WriterGone)),
                Marker::Shutdown(reply) => reply.send(Err(Error::WriterGone)),
            },
        );
    }

    /// The writer's work, taking events and markers from `inbox` (a parameter rather than a
    /// field, so that handing each event to `self` borrows the two apart).
    ///
    /// The writer polls: it takes what the queue holds with `try_recv`, then parks for a short,
    /// growing while (never past a deadline). Callers therefore never find the writer blocked
    /// on the queue, and a send never has to wake it with a system call: the caller's path
    /// stays free of syscalls. Markers unpark the writer at once; a caller that finds the queue
    /// full unparks it before waiting (see `Sender::send`).
    fn run(mut self, inbox: &mut Inbox) {
        let mut idle = MIN_IDLE;
        let mut layer_gone = false;
        loop {
            if self.stalled() {
                self.sleep_until_retry();
                self.write_out();
                continue;
            }
            let mut received = 0usize;
            loop {
                match inbox.take_marker(|record| self.event(record)) {
                    Ok(Some(marker)) => {
                        if self.handle(marker, inbox) == Flow::Closed {
                            return self.count_late_events(inbox);
                        }
                    }
                    Ok(None) => {}
                    // The guard is gone without a shutdown marker (it was leaked) and so is
                    // the layer: write what was accepted, and stop.
                    Err(_) if layer_gone => {
                        let _ = self.close();
                        return;
                    }
                    Err(_) => {}
                }
                let batch = inbox.batch(|record| self.event(record));
                self.write_if_due();
                match batch {
                    Batch::Took(0) => break,
                    Batch::Took(n) => received += n,
                    // The queue is empty and the layer is gone (dropped with its subscriber);
                    // the guard may still flush or shut down.
                    Batch::Disconnected => {
                        layer_gone = true;
                        break;
                    }
                }
                // A producer as fast as this loop keeps the queue non-empty: check the memory
                // bound after every batch, not only once the queue is empty.
                if self.stalled() {
                    break;
                }
            }
            self.report_overflow();
            self.write_if_due();
            self.rotate_if_period_over(inbox.is_empty());
            idle = if received > 0 {
                MIN_IDLE
            } else {
                (idle * 2).min(MAX_IDLE)
            };
            let wait = self.wake_at().map_or(idle, |at| {
                at.saturating_duration_since(Instant::now()).min(idle)
            });
            thread::park_timeout(wait);
        }
    }

    /// Backpressure: while writes fail and `out` holds the most it may, the writer leaves the
    /// queue alone until the disk takes data again (the queue fills and the overflow policy
    /// applies to callers). Not once shutdown has begun: its marker must get through the queue
    /// (events after it are dropped by the layer, so the queue holds at most its capacity),
    /// and shutdown then gives up on what the disk will not take.
    fn stalled(&self) -> bool {
        self.retry_at.is_some()
            && self.out.len() >= self.max_pending()
            && !self.shared.closed.load(Acquire)
    }

    /// How much may wait in memory while writes fail.
    fn max_pending(&self) -> usize {
        self.active
            .folder
            .hook()
            .max_pending()
            .unwrap_or(MAX_PENDING)
    }

    /// Writes (or retries writing) the buffer if its deadline has come.
    fn write_if_due(&mut self) {
        if self
            .retry_at
            .or(self.flush_due)
            .is_some_and(|at| at <= Instant::now())
        {
            self.write_out();
        }
    }

    /// When the loop must wake without a message: the retry time while writes fail (the flush
    /// deadline has passed then, and retrying sooner would only hammer a failing disk), else
    /// the flush deadline, or the next period boundary if the file has something to rotate.
    fn wake_at(&self) -> Option<Instant> {
        let io = self.retry_at.or(self.flush_due);
        let boundary = self
            .active
            .next_boundary
            .filter(|_| self.active.len > 0)
            .map(|b| {
                let wait = b
                    .checked_add(IDLE_ROTATION_GRACE)
                    .and_then(|at| at.duration_since(self.clock.now()).ok())
                    .unwrap_or(Duration::ZERO);
                // Not before a failed rename may be retried.
                deadline(wait).max(self.rotate_retry_at.unwrap_or(Instant::now()))
            });
        match (io, boundary) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Rotates a non-empty file whose period ended while no event came, so that a quiet file
    /// is still rotated, compressed and subject to retention.
    ///
    /// Only with the queue empty, and [`IDLE_ROTATION_GRACE`] after the boundary: events
    /// stamped before the boundary that are still queued (a backlog), or stamped but not yet
    /// sent (a preempted caller), must land in the old file; the events' own times decide
    /// rotation whenever events flow.
    fn rotate_if_period_over(&mut self, queue_empty: bool) {
        if self.active.len == 0 || !queue_empty {
            return;
        }
        let now = self.clock.now();
        if self
            .active
            .next_boundary
            .and_then(|b| b.checked_add(IDLE_ROTATION_GRACE))
            .is_some_and(|at| now >= at)
        {
            self.rotate(now);
        }
    }

    /// Handles a marker; the events queued before it were handled already.
    fn handle(&mut self, marker: Marker, inbox: &Inbox) -> Flow {
        match marker {
            Marker::Flush(reply) => {
                self.rotate_if_period_over(inbox.is_empty());
                self.write_out();
                reply.send(self.flushed_result());
            }
            Marker::Shutdown(reply) => {
                let result = self.close().map(|()| self.shared.snapshot(inbox.len()));
                reply.send(result);
                return Flow::Closed;
            }
        }
        Flow::Continue
    }

    fn event(&mut self, record: Record) {
        // The caller reserved a large record's bytes of the queue's budget (`Sender::send`).
        self.shared.large_bytes.release(record.buf.len());
        let time = self.timebase.wall(record.time);
        let start = self.append_line(time, |formatter, out| formatter.format(&record, time, out));
        if record.is_raw() {
            self.mark_inner_line_ends(start);
        }
        self.out_events += 1;
        // For a shutdown that times out, or a panic: what the writer holds unwritten.
        self.shared.pending.store(self.out_events, Relaxed);
        self.pool.give(record.buf);
        self.write_if_full();
    }

    /// Writes the buffer once it is large (and the disk is not failing). Called after the
    /// line's bookkeeping (`out_events`, `others`), so that a write counts it.
    fn write_if_full(&mut self) {
        if self.out.len() >= WRITE_THRESHOLD && self.retry_at.is_none() {
            self.write_out();
        }
    }

    /// A raw record (from a `SinkWriter`) may hold several lines, e.g. from a formatter that
    /// writes one event over several: the newlines inside the record at `out[start..]` are
    /// marked as ends of lines that are not events, so that a partial write counts the record
    /// written only with its last line.
    fn mark_inner_line_ends(&mut self, start: usize) {
        let inner = &self.out[start..self.out.len().saturating_sub(1)];
        if inner.contains(&b'\n') {
            let ends = inner
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| start + i + 1);
            self.others.extend(ends);
        }
    }

    /// Appends one line (written by `write`) for the active file, rotating first if the line's
    /// time crosses the period boundary or the line would take the file past its size limit.
    /// Returns where the line starts in `out`.
    fn append_line(
        &mut self,
        time: SystemTime,
        write: impl FnOnce(&mut LineFormatter, &mut Vec<u8>),
    ) -> usize {
        if self.active.next_boundary.is_some_and(|b| time >= b) {
            self.rotate(time);
        }
        let start = self.out.len();
        write(&mut self.formatter, &mut self.out);
        let line_len = (self.out.len() - start) as u64;
        if self.active.policy.size_exceeded(self.active.len, line_len) {
            // The line goes to the next file: set it aside while the old one is closed.
            self.spill.extend_from_slice(&self.out[start..]);
            self.out.truncate(start);
            self.rotate(time);
            self.out.extend_from_slice(&self.spill);
            self.spill.clear();
        }
        if self.active.len == 0 {
            // An empty file starts its life (and its period) with its first line.
            self.active.opened_at = time;
            self.active.next_boundary = self.active.policy.next_boundary(time);
        }
        self.active.len += line_len;
        if self.flush_due.is_none() {
            self.flush_due = Some(deadline(self.flush_interval));
        }
        self.out.len() - line_len as usize
    }

    /// Writes one WARN line with the number of events a full queue refused since the last such
    /// line (`Overflow::DropNewest`), once the writer has room again: the loss is visible in
    /// the log itself, where whoever reads it looks.
    fn report_overflow(&mut self) {
        let total = self.shared.overflow_drops.load(Relaxed);
        if total == self.reported_drops || self.retry_at.is_some() {
            return;
        }
        let dropped = total - self.reported_drops;
        self.reported_drops = total;
        let now = self.clock.now();
        self.append_line(now, |formatter, out| {
            formatter.dropped_events_line(now, dropped, out)
        });
        self.others.push(self.out.len());
        self.write_if_full();
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
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or(Error::WriterGone)
    }

    /// Hands `out` to the OS; on failure keeps what is left and schedules a retry.
    fn write_out(&mut self) {
        if self.out.is_empty() {
            self.flush_due = None;
            return;
        }
        let folder = self.active.folder.clone();
        let (written, result) = match self.active.open(self.out.len(), &self.shared) {
            Ok(file) => folder.write(file, &self.out),
            Err(e) => (0, Err(e)),
        };
        self.shared.bytes_written.fetch_add(written as u64, Relaxed);
        // A shutdown that gave up on this writer counted what it held as dropped already.
        let counting = !self.shared.abandoned.load(Acquire);
        match result {
            Ok(()) => {
                if counting {
                    self.shared
                        .events_written
                        .fetch_add(self.out_events, Relaxed);
                }
                self.active.events += self.out_events;
                self.out.clear();
                self.out_events = 0;
                self.shared.pending.store(0, Relaxed);
                self.others.clear();
                self.flush_due = None;
                self.retry_at = None;
                self.backoff = MIN_BACKOFF;
            }
            Err(source) => {
                // Count the events whose whole line made it out before the failure: each line
                // ends in `\n`, and `others` marks the lines that are not events.
                let lines = self.out[..written].iter().filter(|&&b| b == b'\n').count();
                let others = self
                    .others
                    .iter()
                    .take_while(|&&end| end <= written)
                    .count();
                let events = (lines - others) as u64;
                if counting {
                    self.shared.events_written.fetch_add(events, Relaxed);
                }
                self.active.events += events;
                self.out_events -= events;
                self.shared.pending.store(self.out_events, Relaxed);
                self.others.drain(..others);
                for end in &mut self.others {
                    *end -= written;
                }
                self.out.drain(..written);
                self.shared.error(Error::Write {
                    path: self.active.path.clone(),
                    source: Arc::new(source),
                });
                // Reopen on the next try: the file may have been removed or replaced.
                self.active.file = None;
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Closes the active file, renames it to its rotated name, opens a fresh one (first used
    /// at `now`), and hands the rotated file to the janitor. Everything buffered for the old
    /// file is written first; if that or the rename fails, the old file stays active (nothing
    /// is lost, the size limit is overrun) and rotation is tried again after a backoff.
    fn rotate(&mut self, now: SystemTime) {
        if self.active.len == 0 {
            return;
        }
        if self.rotate_retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        // A failing disk sees one write per backoff step, also while a rotation is due: the
        // old file stays active (over its limit) until the write goes through.
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        self.write_out();
        if !self.out.is_empty() {
            return;
        }
        self.janitor.wait_for_retention();
        let mode = self
            .active
            .file
            .take()
            .as_ref()
            .and_then(crate::files::folder::mode_of)
            .or(self.active.mode);
        match self.active.rename_to_next() {
            Ok(name) => {
                self.rotate_retry_at = None;
                self.shared.rotations.fetch_add(1, Relaxed);
                self.janitor
                    .rotated(name, std::mem::take(&mut self.active.events));
                self.active.len = 0;
                self.active.opened_at = now;
                self.active.next_boundary = self.active.policy.next_boundary(now);
                self.active.mode = mode;
                // Open now so that followers (`tail -F`, collectors) find the new file at once;
                // a failure here is retried by the next write.
                self.active.file = self.active.folder.open_active(mode).ok();
            }
            Err(source) => {
                self.shared.error(Error::Rotate {
                    path: self.active.path.clone(),
                    source: Arc::new(source),
                });
                self.rotate_retry_at = Some(Instant::now() + MAX_BACKOFF);
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
        let give_up = deadline(self.patience);
        self.write_out();
        while !self.out.is_empty() && Instant::now() < give_up {
            self.sleep_until_retry();
            self.write_out();
        }
        // The last drop report, once the disk takes data again (it waits for that).
        self.report_overflow();
        if self.retry_at.is_none() {
            self.write_out();
        }
        let result = if self.out.is_empty() {
            Ok(())
        } else {
            if !self.shared.abandoned.load(Acquire) {
                self.shared.dropped(self.out_events);
            }
            self.out.clear();
            self.out_events = 0;
            self.shared.pending.store(0, Relaxed);
            self.others.clear();
            Err(self.last_error())
        };
        if let Some(file) = self.active.file.take() {
            // Durable at a clean shutdown; a failure here is reported but loses nothing that
            // the OS did not already have.
            if let Err(source) = file.sync_all() {
                self.shared.error(Error::Write {
                    path: self.active.path.clone(),
                    source: Arc::new(source),
                });
            }
        }
        // Shutdown promises that rotated files are compressed and retention applied.
        self.janitor.finish(give_up);
        // Nothing touches the folder after this: a new sink may take it before the answer.
        self.active.folder.unlock();
        result
    }

    /// After shutdown: count whatever still arrives as dropped, until every sender is gone.
    fn count_late_events(mut self, inbox: &Inbox) {
        let shared = self.shared.clone();
        inbox.drain_until_disconnected(
            |record| {
                shared.large_bytes.release(record.buf.len());
                shared.dropped(1);
                self.pool.give(record.buf);
            },
            |marker| match marker {
                Marker::Flush(reply) => reply.send(Err(Error::Closed)),
                Marker::Shutdown(reply) => reply.send(Ok(shared.snapshot(inbox.len()))),
            },
        );
    }
}
