//! The janitor thread: retention, compression scheduling and start-up recovery of rotated
//! files.
//!
//! The writer hands each rotated file over by message and never touches it again; from then on
//! the janitor owns it. The janitor itself never compresses: a compressor thread of its own
//! does, one file at a time (in parallel pieces on up to [`MAX_COMPRESSORS`] threads, no more
//! than there are CPUs; see [`compress`](crate::files::compress)). So the janitor is always free to
//! apply retention the moment a file rotates, and the folder stays within its limits however
//! far compression falls behind (a high level, a slow CPU, a burst):
//!
//! - retention counts every rotated file, compressed or not, except the one or two in flight
//!   (the newest waiting and the one compressing), which are judged once compressed, never by
//!   their uncompressed size while compression keeps up;
//! - files waiting for compression are taken newest first, so the oldest, which retention
//!   deletes next, are not compressed only to be deleted; a deleted file's compression is
//!   cancelled;
//! - [`Stats::compress_backlog`](crate::Stats::compress_backlog) shows how many files wait,
//!   and [`Stats::files_deleted_uncompressed`](crate::Stats::files_deleted_uncompressed) how
//!   many retention deleted before their turn came.
//!
//! At start-up the janitor first repairs what a killed process left behind, in either
//! compressed form (`.gz`, `.zst`) whatever the sink compresses with now:
//!
//! | found | meaning | action |
//! |---|---|---|
//! | `X.log.gz.tmp`, `X.log.zst.tmp` | a compression cut short | delete it; `X.log` is still there and is compressed again |
//! | `X.log` and `X.log.gz` (`.zst`) | killed between rename and delete | if the compressed file holds `X.log` (checked), delete `X.log`; otherwise keep both |
//! | `X.log` alone | rotated, never compressed | compress it (with the current setting) |
//!
//! A compression that fails leaves the `.log` in place and is retried with backoff. At
//! shutdown the janitor compresses what waits until the shutdown's deadline, then cancels the
//! compression in progress; files left plain are compressed at the next start.
//!
//! With [`Builder::compress_after`](crate::Builder::compress_after), a rotated file is not
//! handed to the compressor before it has been plain that long, so that a collector that tails
//! the rotated names reads it to its end first:
//!
//! - the time runs from the rotation, by the sink's clock (read when the writer announces the
//!   file); for a file found at start-up, from its modification time (its last write: the
//!   latest moment the sink can vouch for, never after its rotation; the time in its name is
//!   when it was opened, up to a period earlier, and names can run ahead of the clock), or
//!   from now if that is in the future;
//! - the janitor waits for the first such time with a timed wait on its channels, and for a
//!   test's clock on a channel of the clock's (no polling);
//! - shutdown does not wait for it: those files stay plain and complete, and the next start
//!   compresses each once its age reaches the delay;
//! - retention treats them as any file waiting for compression: all but the newest
//!   [`IN_FLIGHT`] count, at their plain size, and may be deleted plain (counted in
//!   [`Stats::files_deleted_uncompressed`](crate::Stats::files_deleted_uncompressed)), so the
//!   folder stays within the same bound whatever the delay.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Select, Sender};

use crate::caller::clock::Clock;
use crate::files::compress::{compress_file, holds, Codec, Compression};
use crate::files::folder::{Entry, Folder};
use crate::files::retention::{Candidate, Retention};
use crate::files::rotation::{Kind, COMPRESSED_FORMS};
use crate::stats::Shared;
use crate::Error;

/// The most threads that compress one file.
const MAX_COMPRESSORS: usize = 4;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How many of the newest files waiting for compression retention leaves out: the one being
/// compressed and the one that rotated while it was.
const IN_FLIGHT: usize = 2;

/// A message from the writer.
#[derive(Debug)]
pub(crate) enum Job {
    /// The active file was renamed to this `.log` name, with this many events in it, at this
    /// time by the sink's clock (read only when compression is delayed).
    Rotated(String, u64, Option<SystemTime>),
    /// Compress what waits until this deadline (retrying failed compressions once more), then
    /// end the thread.
    Finish(Instant),
}

/// The longest a rotation waits for the janitor to have applied retention after the one
/// before (see [`JanitorHandle::wait_for_retention`]): a janitor slowed by a slow disk delays
/// rotations at most this much each.
const RETENTION_PATIENCE: Duration = Duration::from_secs(1);

/// The writer's handle on the janitor.
#[derive(Debug)]
pub(crate) struct JanitorHandle {
    tx: Sender<Job>,
    /// Read at each rotation when compression is delayed (`None` otherwise).
    clock: Option<Clock>,
    thread: Option<JoinHandle<()>>,
    /// Rotations announced to the janitor.
    announced: u64,
    /// Rotations the janitor has applied retention after (shared with it).
    retained: Arc<AtomicU64>,
    /// Whether there are retention limits to wait for.
    limited: bool,
}

impl JanitorHandle {
    pub(crate) fn rotated(&mut self, log_name: String, events: u64) {
        // The janitor ends only after `Finish`, so this send cannot fail while it matters.
        let at = self.clock.as_ref().map(Clock::now);
        if self.tx.send(Job::Rotated(log_name, events, at)).is_ok() {
            self.announced += 1;
        }
    }

    /// Waits (sleeping in short steps, at most [`RETENTION_PATIENCE`]) until the janitor has
    /// applied retention after every rotation announced so far. The writer calls it before it
    /// rotates again, so that however fast files rotate, the folder never holds more than the
    /// retention limits plus the files in flight: retention is cheap, so the wait is short,
    /// and logging slows to its pace rather than fill the disk.
    pub(crate) fn wait_for_retention(&self) {
        if !self.limited {
            return;
        }
        let give_up = Instant::now() + RETENTION_PATIENCE;
        let mut nap = Duration::from_micros(20);
        // Acquire: pairs with the janitor's Release after its deletions.
        while self.retained.load(Acquire) < self.announced && Instant::now() < give_up {
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }

    /// Waits until retention is applied and compressions are done, or cancelled at `deadline`.
    pub(crate) fn finish(&mut self, deadline: Instant) {
        let _ = self.tx.send(Job::Finish(deadline));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the janitor needs to know.
#[derive(Debug)]
pub(crate) struct Janitor {
    folder: Arc<Folder>,
    compression: Compression,
    retention: Retention,
    /// How long a rotated file stays plain before it is compressed.
    compress_after: Duration,
    clock: Clock,
    shared: Arc<Shared>,
}

impl Janitor {
    /// Starts the janitor thread for `folder`; it recovers the folder first, then waits for
    /// rotated files to compress (as `compression` says, once `compress_after` has passed) and
    /// prune (as `retention` says).
    pub(crate) fn spawn(
        folder: Arc<Folder>,
        compression: Compression,
        compress_after: Duration,
        retention: Retention,
        clock: Clock,
        shared: Arc<Shared>,
    ) -> Result<JanitorHandle, Error> {
        let janitor = Janitor {
            folder,
            compression,
            retention,
            compress_after,
            clock,
            shared,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let retained = Arc::new(AtomicU64::new(0));
        let retained_by_worker = retained.clone();
        let limited = !janitor.retention.is_unlimited();
        let clock = (!janitor.compress_after.is_zero()).then(|| janitor.clock.clone());
        let thread = std::thread::Builder::new()
            .name("logsink-janitor".to_owned())
            .spawn(move || Worker::new(janitor, retained_by_worker).run(rx))
            .map_err(|source| Error::SpawnThread {
                source: Arc::new(source),
            })?;
        Ok(JanitorHandle {
            tx,
            clock,
            thread: Some(thread),
            announced: 0,
            retained,
            limited,
        })
    }
}

/// A compression handed to the compressor thread.
struct Task {
    name: String,
    /// Set to stop it early (retention deleted the file, or shutdown's deadline came).
    cancel: Arc<AtomicBool>,
}

/// The compressor thread: compresses one file at a time, as the janitor hands them over.
struct Compressor {
    codec: Codec,
    tasks: Sender<Task>,
    done: Receiver<(String, io::Result<u64>)>,
    thread: JoinHandle<()>,
}

impl Compressor {
    fn spawn(folder: Arc<Folder>, codec: Codec) -> io::Result<Compressor> {
        let (tasks, task_rx) = crossbeam_channel::unbounded::<Task>();
        let (done_tx, done) = crossbeam_channel::unbounded();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_COMPRESSORS);
        let thread = std::thread::Builder::new()
            .name("logsink-compress".to_owned())
            .spawn(move || {
                for task in task_rx {
                    let result = compress_file(&folder, &task.name, codec, threads, &task.cancel);
                    // The janitor outlives this thread (it joins it).
                    let _ = done_tx.send((task.name, result));
                }
            })?;
        Ok(Compressor {
            codec,
            tasks,
            done,
            thread,
        })
    }
}

struct Worker {
    config: Janitor,
    compressor: Option<Compressor>,
    /// `.log` names waiting for compression, oldest first (taken from the back).
    queue: VecDeque<String>,
    /// The compression in progress.
    in_flight: Option<Task>,
    /// When to retry after a failed compression.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// `Finish` has arrived, with the shutdown's deadline.
    finishing: Option<Instant>,
    /// Rotated `.log` names whose compressed names are taken by files the sink did not make:
    /// they stay plain, and retention judges them as they are.
    left_plain: HashSet<String>,
    /// Names retention deleted before their compression ended (in flight, or rotated and not
    /// yet announced): their cancelled compression, or late announcement, is no news.
    deleted: HashSet<String>,
    /// How many events each file waiting for compression holds (as the writer counted them),
    /// to count them as lost if someone removes the file first.
    events_in: std::collections::HashMap<String, u64>,
    /// Names start-up recovery queued: the writer may announce them too (it rotates while
    /// recovery scans), and then they are no news.
    recovered: HashSet<String>,
    /// When each queued file began to wait out `compress_after` (only while it is not zero).
    plain_since: std::collections::HashMap<String, SystemTime>,
    /// Rotations handled (retention applied after each), for the writer's
    /// [`JanitorHandle::wait_for_retention`].
    retained: Arc<AtomicU64>,
}

impl Worker {
    fn new(config: Janitor, retained: Arc<AtomicU64>) -> Self {
        Worker {
            retained,
            recovered: HashSet::new(),
            plain_since: Default::default(),
            events_in: Default::default(),
            config,
            compressor: None,
            queue: VecDeque::new(),
            in_flight: None,
            retry_at: None,
            backoff: MIN_BACKOFF,
            finishing: None,
            left_plain: HashSet::new(),
            deleted: HashSet::new(),
        }
    }

    fn run(mut self, rx: Receiver<Job>) {
        if let Some(codec) = Codec::of(self.config.compression) {
            match Compressor::spawn(self.config.folder.clone(), codec) {
                Ok(compressor) => self.compressor = Some(compressor),
                Err(source) => self.config.shared.error(Error::SpawnThread {
                    source: Arc::new(source),
                }),
            }
        }
        self.recover();
        self.apply_retention();
        let mut writer_gone = false;
        // A test's clock tells when it moves (the system clock has no such channel).
        let clock_moves = self.config.clock.moves();
        loop {
            let turn = self
                .config
                .folder
                .hook()
                .janitor_turn_begins(|| (self.config.clock.now(), self.retained.load(Acquire)));
            self.dispatch();
            self.publish_backlog();
            self.config.folder.hook().janitor_turn_ends(turn);
            if self.finished() {
                break;
            }
            let wake = [self.retry_at, self.finishing, self.next_due()]
                .into_iter()
                .flatten()
                .min();
            // A handle of its own, so that handling a message may borrow `self`.
            let done_rx = self.compressor.as_ref().map(|c| c.done.clone());
            let mut select = Select::new();
            // Once the writer is gone its channel is always ready: leave it out.
            let jobs = if writer_gone {
                usize::MAX
            } else {
                select.recv(&rx)
            };
            let done = done_rx.as_ref().map(|done_rx| select.recv(done_rx));
            let moved = clock_moves.as_ref().map(|moves| select.recv(moves));
            let op = match wake {
                Some(at) => match select.select_deadline(at) {
                    Ok(op) => op,
                    Err(_) => {
                        self.on_timer();
                        continue;
                    }
                },
                None => select.select(),
            };
            if let (Some(index), Some(moves)) = (moved, &clock_moves) {
                if op.index() == index {
                    // Only a wake-up: the loop's next turn reads the clock.
                    let _ = op.recv(moves);
                    continue;
                }
            }
            if op.index() == jobs {
                match op.recv(&rx) {
                    Ok(Job::Rotated(name, events, at)) => {
                        // Unless retention deleted it before this message came, or recovery
                        // found it first.
                        let known = self.deleted.remove(&name) | self.recovered.remove(&name);
                        if self.compressor.is_some() && !known {
                            if events > 0 {
                                self.events_in.insert(name.clone(), events);
                            }
                            if let Some(at) = at {
                                self.plain_since.insert(name.clone(), at);
                            }
                            self.queue.push_back(name);
                        }
                        self.apply_retention();
                        // Release: the deletions above happen before the writer's next rename.
                        self.retained.fetch_add(1, Release);
                    }
                    Ok(Job::Finish(deadline)) => self.finish(deadline),
                    // The writer is gone without `Finish` (it panicked): stop promptly.
                    Err(_) => {
                        writer_gone = true;
                        self.finish(Instant::now());
                    }
                }
            } else if let (Some(index), Some(done_rx)) = (done, &done_rx) {
                if op.index() == index {
                    if let Ok((name, result)) = op.recv(done_rx) {
                        self.compressed(name, result);
                    }
                }
            }
        }
        self.publish_backlog();
        if let Some(compressor) = self.compressor.take() {
            drop(compressor.tasks);
            let _ = compressor.thread.join();
        }
    }

    fn finish(&mut self, deadline: Instant) {
        self.finishing = Some(deadline);
        // Every waiting file gets one more try, failed ones too.
        self.retry_at = None;
        self.on_timer();
    }

    /// A deadline passed: the retry time, or the shutdown's.
    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
        }
        if self.finishing.is_some_and(|at| at <= now) {
            if let Some(task) = &self.in_flight {
                task.cancel.store(true, Relaxed);
            }
        }
    }

    /// Done once shutdown has begun and nothing is in flight, with nothing left to do or no
    /// time left to do it.
    fn finished(&self) -> bool {
        let Some(deadline) = self.finishing else {
            return false;
        };
        // Files still within `compress_after` are not waited for: they stay plain.
        self.in_flight.is_none()
            && (self.newest_due().is_none()
                || self.compressor.is_none()
                || self.retry_at.is_some()
                || Instant::now() >= deadline)
    }

    /// Hands the newest waiting file to the compressor, if it is idle and no retry is pending.
    fn dispatch(&mut self) {
        let Some(compressor) = &self.compressor else {
            self.queue.clear();
            return;
        };
        if self.in_flight.is_some()
            || self.retry_at.is_some()
            || self.finishing.is_some_and(|at| Instant::now() >= at)
        {
            return;
        }
        let Some(index) = self.newest_due() else {
            return;
        };
        let Some(name) = self.queue.remove(index) else {
            return;
        };
        self.plain_since.remove(&name);
        let cancel = Arc::new(AtomicBool::new(false));
        let task = Task {
            name: name.clone(),
            cancel: cancel.clone(),
        };
        if compressor.tasks.send(task).is_ok() {
            self.in_flight = Some(Task { name, cancel });
        }
    }

    /// How much longer `name` must stay plain (zero once it may be compressed). A file whose
    /// start lies ahead of the clock (the clock was set back) counts as starting now.
    fn plain_for(&self, name: &str, now: SystemTime) -> Duration {
        let delay = self.config.compress_after;
        match self.plain_since.get(name) {
            Some(since) => delay.saturating_sub(now.duration_since(*since).unwrap_or_default()),
            None => Duration::ZERO,
        }
    }

    /// The index in the queue of the newest file that may be compressed now.
    fn newest_due(&self) -> Option<usize> {
        if self.plain_since.is_empty() {
            return self.queue.len().checked_sub(1);
        }
        let now = self.config.clock.now();
        self.queue
            .iter()
            .rposition(|name| self.plain_for(name, now).is_zero())
    }

    /// When the next file still within `compress_after` may be compressed, on the monotonic
    /// clock (`None` if none waits, at shutdown, or beyond what an `Instant` can hold). The
    /// loop then reads the sink's clock again: a wake-up too early just waits again.
    fn next_due(&mut self) -> Option<Instant> {
        if self.plain_since.is_empty() || self.finishing.is_some() || self.compressor.is_none() {
            return None;
        }
        let now = self.config.clock.now();
        // The clock went back past a file's start: its wait restarts now, not later.
        for since in self.plain_since.values_mut() {
            if *since > now {
                *since = now;
            }
        }
        let wait = self
            .queue
            .iter()
            .map(|name| self.plain_for(name, now))
            .filter(|wait| !wait.is_zero())
            .min()?;
        Instant::now().checked_add(wait)
    }

    /// The compressor's answer for `name`.
    fn compressed(&mut self, name: String, result: io::Result<u64>) {
        self.in_flight = None;
        let events = self.events_in.remove(&name).unwrap_or(0);
        let shared = &self.config.shared;
        let folder = &self.config.folder;
        let deleted = self.deleted.remove(&name);
        match result {
            Ok(_) if deleted => {
                // Retention deleted it just as it was finished: delete the `.gz` (`.zst`) too.
                if let Some(compressor) = &self.compressor {
                    let _ = folder.remove(&format!("{name}{}", compressor.codec.suffix()));
                }
            }
            Ok(_) => {
                shared.files_compressed.fetch_add(1, Relaxed);
                self.backoff = MIN_BACKOFF;
            }
            // Deleted by retention, or cancelled at shutdown's deadline: the `.log` stays (or
            // is gone on purpose), and the next start compresses what stays.
            Err(_) if deleted => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Gone meanwhile (removed by someone): its events are lost, and that is reported,
            // not passed over.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    && matches!(folder.stat(&name), Ok(None)) =>
            {
                shared.lost(events);
                shared.error(Error::Compress {
                    path: folder.file_path(&name),
                    source: Arc::new(io::Error::new(
                        io::ErrorKind::NotFound,
                        "the rotated file was removed by someone else before it was compressed; \
                         its events are counted as lost",
                    )),
                });
            }
            // The compressed name (or its `.tmp`) is taken by something the sink did not make:
            // it is never replaced, so retrying cannot help. The `.log` stays, and counts for
            // retention as it is.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::InvalidInput
                ) =>
            {
                shared.error(Error::Compress {
                    path: folder.file_path(&name),
                    source: Arc::new(e),
                });
                self.left_plain.insert(name);
            }
            Err(source) => {
                shared.error(Error::Compress {
                    path: folder.file_path(&name),
                    source: Arc::new(source),
                });
                // Behind the others: one file that keeps failing does not hold them up.
                if events > 0 {
                    self.events_in.insert(name.clone(), events);
                }
                self.queue.push_front(name);
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
        self.apply_retention();
    }

    /// Files whose compression is due (waiting or in progress); those still within
    /// `compress_after` are not behind, and do not count.
    fn publish_backlog(&self) {
        let now = self.config.clock.now();
        let due = self
            .queue
            .iter()
            .filter(|name| self.plain_for(name, now).is_zero())
            .count();
        let waiting = due + usize::from(self.in_flight.is_some());
        self.config
            .shared
            .compress_backlog
            .store(waiting as u64, Relaxed);
    }

    /// The folder's rotated files (regular files only), grouped by rotated name.
    fn scan(&self) -> BTreeMap<String, Vec<Entry>> {
        let mut found: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for entry in self.config.folder.rotated() {
            found
                .entry(entry.rotated.log_name.clone())
                .or_default()
                .push(entry);
        }
        found
    }

    /// Repairs what a killed process left (see the module docs) and queues compressions.
    fn recover(&mut self) {
        for (log_name, forms) in self.scan() {
            let has = |k| forms.iter().any(|e| e.rotated.kind == k);
            for &(suffix, kind) in &COMPRESSED_FORMS {
                if kind.is_tmp() && has(kind) {
                    self.remove(&format!("{log_name}{suffix}"));
                }
            }
            let compressed: Vec<Kind> = [Kind::Gz, Kind::Zst]
                .into_iter()
                .filter(|&kind| has(kind))
                .collect();
            match (has(Kind::Log), compressed.is_empty()) {
                // Killed between the rename and the delete: a compressed file holds the `.log`
                // whole (checked, so that one that is not this `.log`'s never costs its
                // events).
                (true, false)
                    if compressed
                        .iter()
                        .any(|&kind| holds(&self.config.folder, &log_name, kind)) =>
                {
                    self.remove(&log_name);
                }
                (true, false) => {
                    self.left_plain.insert(log_name);
                }
                (true, true) if self.compressor.is_some() => {
                    if !self.config.compress_after.is_zero() {
                        // Its age: from its last write (see the module docs), at most now.
                        let modified = forms
                            .iter()
                            .filter(|e| e.rotated.kind == Kind::Log)
                            .map(|e| e.modified)
                            .max();
                        let now = self.config.clock.now();
                        let since = modified.map_or(now, |modified| modified.min(now));
                        self.plain_since.insert(log_name.clone(), since);
                    }
                    self.recovered.insert(log_name.clone());
                    self.queue.push_back(log_name);
                }
                _ => {}
            }
        }
    }

    /// Deletes the oldest rotated files beyond the limits, compressed or not. The newest
    /// [`IN_FLIGHT`] files still waiting for compression are left out: they are judged once
    /// compressed (while compression keeps up, nothing else waits). Names sort in rotation
    /// order, so the newest are the last in the scan.
    fn apply_retention(&mut self) {
        let retention = self.config.retention;
        if retention.is_unlimited() {
            return;
        }
        let found = self.scan();
        // Waiting for compression: a `.log` without a compressed form, unless compression is off
        // or cannot be done. The newest of these (also those the writer has rotated and not yet
        // announced) are the ones in flight, judged once compressed.
        let waiting: HashSet<&str> = found
            .iter()
            .rev()
            .filter(|(log_name, forms)| {
                self.compressor.is_some()
                    && !self.left_plain.contains(*log_name)
                    && !forms.iter().any(|e| e.rotated.kind.is_compressed())
            })
            .take(IN_FLIGHT)
            .map(|(log_name, _)| log_name.as_str())
            .collect();
        let mut candidates = Vec::new();
        for (log_name, forms) in &found {
            // A `.log` beside its `.gz` or `.zst` (a compression in flight at start-up) is one
            // file.
            let forms: Vec<_> = forms.iter().filter(|e| !e.rotated.kind.is_tmp()).collect();
            let Some(first) = forms.first() else { continue };
            // Deleted and counted by an earlier pass; what is left of it (a compression in
            // flight that put its result in place after all) goes with that compression's
            // answer (`compressed`), and must not be counted again.
            if waiting.contains(log_name.as_str()) || self.deleted.contains(log_name) {
                continue;
            }
            candidates.push(Candidate {
                position: first.rotated.position,
                size: forms.iter().map(|e| e.len).sum(),
                modified: forms
                    .iter()
                    .map(|e| e.modified)
                    .max()
                    .unwrap_or(std::time::UNIX_EPOCH),
                name: log_name.clone(),
            });
        }
        for doomed in retention.select(candidates, self.config.clock.now()) {
            let name = doomed.name;
            let compressed = found
                .get(&name)
                .is_some_and(|forms| forms.iter().any(|e| e.rotated.kind.is_compressed()));
            let queued = self.queue.contains(&name)
                || self.in_flight.as_ref().is_some_and(|t| t.name == name);
            let uncompressed = !compressed && !self.left_plain.contains(&name);
            // Rotated, but not announced yet: when the writer's message comes, it is no news.
            if uncompressed && !queued && self.compressor.is_some() {
                self.deleted.insert(name.clone());
            }
            if let Some(task) = self.in_flight.as_ref().filter(|t| t.name == name) {
                task.cancel.store(true, Relaxed);
                self.deleted.insert(name.clone());
                // Its compressed file is complete (only its answer has not come yet): it counts as
                // compressed, once, here; the answer then counts nothing.
                if compressed {
                    self.config.shared.files_compressed.fetch_add(1, Relaxed);
                }
            }
            self.queue.retain(|queued| *queued != name);
            if self.in_flight.as_ref().is_none_or(|t| t.name != name) {
                self.events_in.remove(&name);
            }
            self.plain_since.remove(&name);
            // Every complete form, whichever compression made it; the `.log` first. A
            // compression in flight renames its result into place before it deletes the
            // `.log`, so whenever this runs, one of the two is still there to be found and the
            // file is counted once (compressed forms first could miss both: the result not
            // there yet, the `.log` gone by the time it is looked for).
            let log = self.remove(&name);
            let gz = self.remove(&format!("{name}.gz"));
            let zst = self.remove(&format!("{name}.zst"));
            if log || gz || zst {
                let shared = &self.config.shared;
                shared.files_deleted.fetch_add(1, Relaxed);
                if uncompressed && self.compressor.is_some() {
                    shared.files_deleted_uncompressed.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Removes the folder's regular file `name`; true if it was there and is gone.
    fn remove(&self, name: &str) -> bool {
        match self.config.folder.remove(name) {
            Ok(removed) => removed,
            Err(source) => {
                self.config.shared.error(Error::Delete {
                    path: self.config.folder.file_path(name),
                    source: Arc::new(source),
                });
                false
            }
        }
    }
}
