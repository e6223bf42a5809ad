//! The janitor thread: compression, retention and start-up recovery of rotated files.
//!
//! The writer hands each rotated file over by message and never touches it again; from then on
//! the janitor owns it. Compression and retention run here one file at a time, so they never
//! race each other, and never on the writer thread, so writing goes on while a file compresses.
//! A file is compressed on up to [`MAX_COMPRESSORS`] threads at once (no more than there are
//! CPUs; see [`compress`](crate::compress)): a sink that rotates faster than one thread
//! compresses would otherwise build a backlog of uncompressed files.
//!
//! At start-up the janitor first repairs what a killed process left behind:
//!
//! | found | meaning | action |
//! |---|---|---|
//! | `X.log.gz.tmp` | a compression cut short | delete it; `X.log` is still there and is compressed again |
//! | `X.log` and `X.log.gz` | killed between rename and delete | the `.gz` is complete: delete `X.log` |
//! | `X.log` alone | rotated, never compressed | compress it |
//!
//! A compression that fails leaves the `.log` in place and is retried with backoff.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::clock::Clock;
use crate::compress::{gzip_file, Compression};
use crate::folder::{Entry, Folder};
use crate::retention::{Candidate, Retention};
use crate::rotation::Kind;
use crate::stats::Shared;
use crate::Error;

/// The most threads that compress one file.
const MAX_COMPRESSORS: usize = 4;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A message from the writer.
#[derive(Debug)]
pub(crate) enum Job {
    /// The active file was renamed to this `.log` name.
    Rotated(String),
    /// Finish the queue (retrying failed compressions once more) and end the thread.
    Finish,
}

/// The writer's handle on the janitor.
#[derive(Debug)]
pub(crate) struct JanitorHandle {
    tx: Sender<Job>,
    thread: Option<JoinHandle<()>>,
}

impl JanitorHandle {
    pub(crate) fn rotated(&self, log_name: String) {
        // The janitor ends only after `Finish`, so this send cannot fail while it matters.
        let _ = self.tx.send(Job::Rotated(log_name));
    }

    /// Waits until every pending compression and deletion is done.
    pub(crate) fn finish(&mut self) {
        let _ = self.tx.send(Job::Finish);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the janitor needs to know.
#[derive(Debug)]
pub(crate) struct Janitor {
    pub(crate) folder: Arc<Folder>,
    pub(crate) compression: Compression,
    pub(crate) retention: Retention,
    pub(crate) clock: Clock,
    pub(crate) shared: Arc<Shared>,
}

impl Janitor {
    /// Starts the thread; it recovers the folder first, then waits for rotated files.
    pub(crate) fn spawn(self) -> Result<JanitorHandle, Error> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("logsink-janitor".to_owned())
            .spawn(move || Worker::new(self).run(rx))
            .map_err(|source| Error::SpawnThread {
                source: Arc::new(source),
            })?;
        Ok(JanitorHandle {
            tx,
            thread: Some(thread),
        })
    }
}

struct Worker {
    config: Janitor,
    /// `.log` names waiting for compression, oldest first.
    queue: VecDeque<String>,
    /// When to retry the queue after a failed compression.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// `Finish` has arrived: end after this round of work.
    finishing: bool,
    /// Rotated `.log` names whose compressed names are taken by files the sink did not make:
    /// they stay plain, and retention judges them as they are.
    left_plain: HashSet<String>,
}

impl Worker {
    fn new(config: Janitor) -> Self {
        Worker {
            config,
            queue: VecDeque::new(),
            retry_at: None,
            backoff: MIN_BACKOFF,
            finishing: false,
            left_plain: HashSet::new(),
        }
    }

    fn run(mut self, rx: Receiver<Job>) {
        self.recover();
        self.work(&rx);
        // Ends after the round of work that follows `Finish`: every queued file got its try.
        while !self.finishing {
            let job = match self.retry_at {
                Some(at) => match rx.recv_deadline(at) {
                    Ok(job) => Some(job),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => Some(Job::Finish),
                },
                None => Some(rx.recv().unwrap_or(Job::Finish)),
            };
            match job {
                Some(Job::Rotated(name)) => self.queue.push_back(name),
                Some(Job::Finish) => {
                    self.finishing = true;
                    self.retry_at = None;
                }
                None => self.retry_at = None,
            }
            if self.retry_at.is_none() {
                self.work(&rx);
            }
        }
    }

    /// Compresses what is queued, then applies retention.
    ///
    /// Files the writer has rotated but not yet announced are taken into the queue first:
    /// retention must see every rotated file compressed (or failing to compress, and then
    /// left alone), never judge a fresh `.log` by its uncompressed size.
    fn work(&mut self, rx: &Receiver<Job>) {
        loop {
            match rx.try_recv() {
                Ok(Job::Rotated(name)) => self.queue.push_back(name),
                Ok(Job::Finish) => self.finishing = true,
                Err(_) => break,
            }
        }
        if let Compression::Gzip { level } = self.config.compression {
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_COMPRESSORS);
            while let Some(name) = self.queue.front() {
                let result = gzip_file(&self.config.folder, name, level, threads);
                match result {
                    Ok(_) => {
                        self.config.shared.files_compressed.fetch_add(1, Relaxed);
                        self.queue.pop_front();
                        self.backoff = MIN_BACKOFF;
                    }
                    // Gone meanwhile (removed by someone): its events are lost, and that is
                    // reported, not passed over.
                    Err(e)
                        if e.kind() == io::ErrorKind::NotFound
                            && matches!(self.config.folder.stat(name), Ok(None)) =>
                    {
                        self.config.shared.error(Error::Compress {
                            path: self.config.folder.file_path(name),
                            source: Arc::new(io::Error::new(
                                io::ErrorKind::NotFound,
                                "the rotated file was removed before it was compressed",
                            )),
                        });
                        self.queue.pop_front();
                    }
                    // The `.gz` name (or its `.gz.tmp`) is taken by something the sink did not
                    // make: it is never replaced, so retrying cannot help. The `.log` stays,
                    // and counts for retention as it is.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::AlreadyExists | io::ErrorKind::InvalidInput
                        ) =>
                    {
                        self.config.shared.error(Error::Compress {
                            path: self.config.folder.file_path(name),
                            source: Arc::new(e),
                        });
                        if let Some(name) = self.queue.pop_front() {
                            self.left_plain.insert(name);
                        }
                    }
                    Err(source) => {
                        self.config.shared.error(Error::Compress {
                            path: self.config.folder.file_path(name),
                            source: Arc::new(source),
                        });
                        // To the back of the queue: one file that keeps failing does not hold
                        // up the others at the next try.
                        if let Some(failed) = self.queue.pop_front() {
                            self.queue.push_back(failed);
                        }
                        self.retry_at = Some(Instant::now() + self.backoff);
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        break;
                    }
                }
            }
        } else {
            self.queue.clear();
        }
        self.apply_retention();
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
            if has(Kind::GzTmp) {
                self.remove(&format!("{log_name}.gz.tmp"));
            }
            match (has(Kind::Log), has(Kind::Gz)) {
                (true, true) => {
                    self.remove(&log_name);
                }
                (true, false) => self.queue.push_back(log_name),
                _ => {}
            }
        }
    }

    fn apply_retention(&mut self) {
        let retention = self.config.retention;
        if retention.is_unlimited() {
            return;
        }
        let gzip = matches!(self.config.compression, Compression::Gzip { .. });
        let mut candidates = Vec::new();
        for (log_name, forms) in self.scan() {
            // A `.log` beside its `.gz` (a compression in flight at start-up) is one file.
            let forms: Vec<_> = forms
                .into_iter()
                .filter(|e| e.rotated.kind != Kind::GzTmp)
                .collect();
            // With compression on, a rotated `.log` without its `.gz` is still on its way to
            // the compressor (announced or not yet, or failing and retried): it is judged once
            // compressed, never deleted for its uncompressed size.
            let pending = gzip
                && !self.left_plain.contains(&log_name)
                && !forms.iter().any(|e| e.rotated.kind == Kind::Gz);
            let Some(first) = forms.first() else { continue };
            if pending {
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
                name: log_name,
            });
        }
        for doomed in retention.select(candidates, self.config.clock.now()) {
            let gz = self.remove(&format!("{}.gz", doomed.name));
            let log = self.remove(&doomed.name);
            if gz || log {
                self.config.shared.files_deleted.fetch_add(1, Relaxed);
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
