//! The callers' end of the queue: take a buffer, hand a record to the writer under the
//! overflow policy, wait for room when the queue is full.
//!
//! A layer ([`SinkLayer`](crate::SinkLayer)) and a [`SinkWriter`](crate::SinkWriter) each own
//! one [`Sender`]; everything a record meets between the caller and the writer's inbox is here.

use std::sync::atomic::Ordering::Acquire;
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::TrySendError;

use crate::handoff::record::{PoolTaker, Record, LARGE_EVENT};
use crate::stats::Shared;
use crate::Overflow;

/// Sends records to the writer thread.
#[derive(Debug)]
pub(crate) struct Sender {
    tx: crossbeam_channel::Sender<Record>,
    pool: PoolTaker,
    shared: Arc<Shared>,
    overflow: Overflow,
    /// The writer thread, to wake when the queue is full.
    writer: Thread,
    /// The byte budget for large records in the queue.
    queue_bytes: usize,
}

impl Sender {
    /// The callers' end of a queue whose events `writer` takes.
    pub(crate) fn new(
        tx: crossbeam_channel::Sender<Record>,
        pool: PoolTaker,
        shared: Arc<Shared>,
        overflow: Overflow,
        queue_bytes: usize,
        writer: Thread,
    ) -> Sender {
        Sender {
            tx,
            pool,
            shared,
            overflow,
            writer,
            queue_bytes,
        }
    }

    /// Whether the sink still takes records. After shutdown began it does not, and the record
    /// the caller was about to make is counted as dropped here: it never reaches the channel.
    /// One that raced past this check is still accepted by the writer, which counts it as
    /// dropped (see `writer::Writer::count_late_events`).
    #[inline]
    pub(crate) fn accepting(&self) -> bool {
        // Acquire pairs with the guard's store.
        if self.shared.closed.load(Acquire) {
            self.shared.dropped(1);
            return false;
        }
        true
    }

    /// What a caller does when the queue is full.
    pub(crate) fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// A cleared buffer for the next record (see [`PoolTaker::take`]).
    #[inline]
    pub(crate) fn buffer(&self) -> Vec<u8> {
        self.pool.take()
    }

    /// Hands a record to the writer according to the overflow policy.
    ///
    /// The common case is one lock-free `try_send` and no system call: the writer polls the
    /// queue and is never blocked on it, so nobody needs waking. Only a full queue wakes the
    /// writer early (an `unpark`) before waiting for room or dropping.
    #[inline]
    pub(crate) fn send(&self, record: Record) {
        let large = record.buf.len();
        if large > LARGE_EVENT && !self.reserve(large) {
            return;
        }
        let sent = match self.tx.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Disconnected(_)) => false,
            Err(TrySendError::Full(record)) => {
                self.writer.unpark();
                match self.overflow {
                    Overflow::Block => wait_for_room(&self.tx, record, &self.writer),
                    Overflow::DropNewest => {
                        self.shared.large_bytes.release(large);
                        self.shared.overflowed();
                        return;
                    }
                }
            }
        };
        if !sent {
            self.shared.large_bytes.release(large);
            self.shared.dropped(1);
        }
    }

    /// Reserves `size` bytes of the queue's byte budget for a large record. Under
    /// [`Overflow::Block`] waits for room; under [`Overflow::DropNewest`] refuses (and counts
    /// the drop). An empty budget takes any record, so one larger than the whole budget still
    /// goes through, alone.
    #[cold]
    fn reserve(&self, size: usize) -> bool {
        loop {
            if self.shared.large_bytes.try_reserve(size, self.queue_bytes) {
                return true;
            }
            match self.overflow {
                Overflow::DropNewest => {
                    self.shared.overflowed();
                    return false;
                }
                Overflow::Block => {
                    if self.shared.closed.load(Acquire) {
                        self.shared.dropped(1);
                        return false;
                    }
                    // The writer frees budget as it takes records: wake it, give it time.
                    self.writer.unpark();
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
    }
}

/// Sends `record` to the full queue `tx` once it has room (`Overflow::Block`); `false` if the
/// writer is gone.
///
/// The caller sleeps in short, growing steps instead of blocking in the channel's `send`: a
/// sender blocked there registers with the channel, and then every receive by the writer has
/// to wake it, a system call per event on the thread whose time is the sink's throughput. A
/// caller that waits here is waiting for the writer anyway; the writer always drains (see
/// `guard.rs`), so room comes.
///
/// It tries again only once the writer has emptied a quarter of the queue (or after
/// [`PATIENT_NAPS`] naps, so that no caller waits on others forever). Trying at every free
/// slot kept all callers at the queue's very edge, where a send spins (in crossbeam) until the
/// writer finishes taking the slot it wants; when the writer was preempted there, callers spun
/// for whole time slices, which matters most when the CPUs are oversubscribed (gzip on).
/// Waiting for a quarter of the queue keeps callers away from that edge, so they rarely spin.
#[cold]
fn wait_for_room(
    tx: &crossbeam_channel::Sender<Record>,
    mut record: Record,
    writer: &Thread,
) -> bool {
    let capacity = tx.capacity().unwrap_or(usize::MAX);
    let mut nap = Duration::from_micros(20);
    let mut naps = 0u32;
    loop {
        writer.unpark();
        std::thread::sleep(nap);
        nap = (nap * 2).min(MAX_NAP);
        naps = naps.saturating_add(1);
        if naps <= PATIENT_NAPS && tx.len() > capacity - capacity / 4 {
            continue;
        }
        match tx.try_send(record) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) => record = back,
        }
    }
}

/// The longest a caller waiting for room sleeps between tries: short against the time the
/// writer takes to drain the queue, so a waiting caller goes on soon after room appears.
const MAX_NAP: Duration = Duration::from_micros(500);

/// Naps (about 10 ms in all) during which a waiting caller leaves the queue alone until a
/// quarter of it is free; after that it takes any free slot.
const PATIENT_NAPS: u32 = 24;
