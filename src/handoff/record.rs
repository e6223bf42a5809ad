//! What crosses the queue from callers to the writer, and the buffers that come back.
//!
//! A [`Record`] carries an event in the compact form the caller wrote it in (see
//! [`fields`](crate::handoff::fields)); the writer turns it into a line. Markers ([`Marker::Flush`],
//! [`Marker::Shutdown`]) come from the guard through the queue's control channel (see
//! [`queue`](crate::handoff::queue) for how they stay behind every event sent before them).
//!
//! Buffers are recycled: the writer clears each record's buffer and sends it back, in batches,
//! through a bounded pool channel; callers take a batch into a thread-local stash and use it
//! before allocating, and send the emptied batch `Vec` back for the writer to fill again. In
//! steady state no event allocates, and callers free nothing (a free of memory allocated on
//! the writer's thread goes through the writer's malloc arena and can take its lock).

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crossbeam_channel::{Receiver, Sender};
use tracing::Metadata;

use crate::caller::clock::Stamp;
use crate::stats::CacheLine;
use crate::{Error, Stats};

/// Buffers grown past this are freed instead of recycled, so one huge event does not pin its
/// memory in the pool for the life of the process.
pub(crate) const MAX_POOLED_CAPACITY: usize = 64 * 1024;

/// Records larger than this count against the queue's byte budget
/// ([`Builder::queue_bytes`](crate::Builder::queue_bytes)). Smaller ones are bounded by the
/// queue's capacity in events alone, which keeps the shared byte counter off the common path.
pub(crate) const LARGE_EVENT: usize = 4096;

/// The bytes of large records (over [`LARGE_EVENT`]) in the queue, against
/// [`Builder::queue_bytes`](crate::Builder::queue_bytes): reserved by the caller's
/// [`Sender`](crate::handoff::sender::Sender) before a large record enters the queue, released
/// by the writer when it takes it (or by the sender when it never entered). Touched only by
/// large records, on a cache line of its own.
#[derive(Debug, Default)]
pub(crate) struct LargeBytes(CacheLine<AtomicUsize>);

impl LargeBytes {
    /// Takes `size` bytes if they fit under `limit`, or if none are taken (so that a record
    /// larger than the whole budget still goes through, alone).
    pub(crate) fn try_reserve(&self, size: usize, limit: usize) -> bool {
        let mut current = self.0.load(Relaxed);
        // Relaxed: the counter only bounds memory; it orders nothing else.
        while current == 0 || current + size <= limit {
            match self
                .0
                .compare_exchange_weak(current, current + size, Relaxed, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
        false
    }

    /// Gives back a record's share once it left the queue (or never entered it): only a
    /// record of more than [`LARGE_EVENT`] bytes took one.
    pub(crate) fn release(&self, size: usize) {
        if size > LARGE_EVENT {
            self.0.fetch_sub(size, Relaxed);
        }
    }
}

/// Capacity of a freshly allocated record buffer: a typical event fits without growing.
pub(crate) const INITIAL_CAPACITY: usize = 256;

/// One event, encoded by the caller; or a finished line from a
/// [`SinkWriter`](crate::SinkWriter) (see [`Record::raw`]).
#[derive(Debug)]
pub(crate) struct Record {
    /// The event's callsite metadata: level, target, and the field names that `buf` refers to by
    /// index. Event metadata is always `'static`, so passing the reference costs nothing.
    pub(crate) meta: &'static Metadata<'static>,
    /// When the event happened, read raw on the caller and formatted on the writer.
    pub(crate) time: Stamp,
    /// `buf[..fields_len]` holds the encoded fields; `buf[fields_len..span_end]` the span
    /// part of the line and `buf[span_end..]` the thread part, both already in the sink's
    /// format (JSON: `,"span":{..},"spans":[..]` and `,"threadName":".."`; text: `a{k=v}:b: `
    /// and `name `), each empty when it does not apply.
    pub(crate) buf: Vec<u8>,
    pub(crate) fields_len: usize,
    pub(crate) span_end: usize,
    /// The OpenTelemetry ids of the event's span, if the sink writes them.
    #[cfg(feature = "opentelemetry")]
    pub(crate) otel_ids: crate::caller::otel::Ids,
}

/// Marks a [`Record`] that holds a finished line from a
/// [`SinkWriter`](crate::SinkWriter) (`Record::raw`): the writer copies its bytes as they are.
/// A marker in the metadata rather than a field of its own keeps the record, and with it the
/// queue's slots, the size they are; layer events never point here.
static RAW_LINE: Metadata<'static> = Metadata::new(
    "line",
    "logsink",
    tracing::Level::INFO,
    None,
    None,
    None,
    tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&RawLineCallsite)),
    tracing::metadata::Kind::EVENT,
);

/// The callsite [`RAW_LINE`] names; it is never registered with a dispatcher.
struct RawLineCallsite;

impl tracing::callsite::Callsite for RawLineCallsite {
    fn set_interest(&self, _: tracing::subscriber::Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        &RAW_LINE
    }
}

impl Record {
    /// A finished line (or lines, from a formatter that writes several per event) stamped at
    /// `time`. `buf` ends with `\n`.
    pub(crate) fn raw(buf: Vec<u8>, time: Stamp) -> Record {
        debug_assert_eq!(buf.last(), Some(&b'\n'));
        Record {
            meta: &RAW_LINE,
            time,
            buf,
            fields_len: 0,
            span_end: 0,
            #[cfg(feature = "opentelemetry")]
            otel_ids: crate::caller::otel::Ids::NONE,
        }
    }

    /// Whether this record is a finished line (see [`Record::raw`]) rather than an event.
    #[inline]
    pub(crate) fn is_raw(&self) -> bool {
        std::ptr::eq(self.meta, &RAW_LINE)
    }
}

/// A message from the guard to the writer.
#[derive(Debug)]
pub(crate) enum Marker {
    /// Hand everything sent before this to the OS, then answer.
    Flush(Reply<Result<(), Error>>),
    /// Write everything sent before this, close the file, answer with the final statistics.
    Shutdown(Reply<Result<Stats, Error>>),
}

/// Where the writer sends its answer to a marker: a blocking caller waits on a crossbeam
/// channel, an async caller on a tokio oneshot (which needs no runtime to be sent to).
#[derive(Debug)]
pub(crate) enum Reply<T> {
    Blocking(Sender<T>),
    Async(tokio::sync::oneshot::Sender<T>),
}

impl<T> Reply<T> {
    /// Answers; a waiter that gave up (a dropped future) is not an error.
    pub(crate) fn send(self, value: T) {
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(value);
            }
            Reply::Async(tx) => {
                let _ = tx.send(value);
            }
        }
    }
}

/// Buffers travel back from the writer in batches of this many: one channel operation per
/// batch rather than per event, so callers rarely touch the pool's shared cache lines.
pub(crate) const POOL_BATCH: usize = 32;

thread_local! {
    /// Buffers this thread took from a pool and has not used yet. Shared by all sinks: a
    /// buffer is a plain `Vec<u8>`, and one sink's buffer may go back to another's pool.
    static STASH: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// The caller's end of the buffer pool.
#[derive(Debug, Clone)]
pub(crate) struct PoolTaker {
    batches: Receiver<Vec<Vec<u8>>>,
    /// Where a stash's emptied `Vec` goes back to the writer, to carry its next batch.
    empties: Sender<Vec<Vec<u8>>>,
}

impl PoolTaker {
    /// A cleared buffer: from this thread's stash, else from a batch the writer returned, else
    /// new (at start-up, or while a burst has more buffers in flight than ever before). Only
    /// when thread-locals are gone (a thread exiting) is a lone buffer allocated.
    #[inline]
    pub(crate) fn take(&self) -> Vec<u8> {
        STASH
            .try_with(|stash| {
                let mut stash = stash.borrow_mut();
                if let Some(buf) = stash.pop() {
                    return Some(buf);
                }
                // `try_recv` on a bounded crossbeam channel is lock-free. The batch's own
                // `Vec` becomes the stash.
                match self.batches.try_recv() {
                    Ok(batch) => {
                        let empty = std::mem::replace(&mut *stash, batch);
                        // The emptied one goes back rather than being freed here: it was
                        // allocated on the writer's thread, and freeing it on this one goes
                        // through the writer's malloc arena (its lock, allocator metadata last
                        // touched on the writer's core), slow on the first event after a
                        // sleep, when all of it is cold. Full: freed after all.
                        let _ = self.empties.try_send(empty);
                    }
                    // More buffers are in flight than ever before: grow the population by a
                    // whole batch, so that it reaches its steady size in few steps.
                    Err(_) => {
                        stash.extend((0..POOL_BATCH).map(|_| Vec::with_capacity(INITIAL_CAPACITY)))
                    }
                }
                stash.pop()
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| Vec::with_capacity(INITIAL_CAPACITY))
    }
}

/// The writer's end of the buffer pool.
#[derive(Debug)]
pub(crate) struct PoolGiver {
    tx: Sender<Vec<Vec<u8>>>,
    /// Emptied batch `Vec`s the callers sent back, reused for the next batches.
    empties: Receiver<Vec<Vec<u8>>>,
    batch: Vec<Vec<u8>>,
}

impl PoolGiver {
    /// Offers a used buffer back; it is freed if it grew too large or the pool is full.
    #[inline]
    pub(crate) fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > MAX_POOLED_CAPACITY {
            return;
        }
        buf.clear();
        self.batch.push(buf);
        if self.batch.len() == POOL_BATCH {
            let next = match self.empties.try_recv() {
                Ok(empty) if empty.is_empty() && empty.capacity() >= POOL_BATCH => empty,
                _ => Vec::with_capacity(POOL_BATCH),
            };
            let batch = std::mem::replace(&mut self.batch, next);
            let _ = self.tx.try_send(batch);
        }
    }
}

/// A pool with room for `buffers` buffers (in batches).
pub(crate) fn pool(buffers: usize) -> (PoolGiver, PoolTaker) {
    let batches = buffers.div_ceil(POOL_BATCH).max(1);
    let (tx, rx) = crossbeam_channel::bounded(batches);
    // As many emptied `Vec`s as batches can be out: callers then never free one.
    let (empties_tx, empties_rx) = crossbeam_channel::bounded(batches);
    (
        PoolGiver {
            tx,
            empties: empties_rx,
            batch: Vec::with_capacity(POOL_BATCH),
        },
        PoolTaker {
            batches: rx,
            empties: empties_tx,
        },
    )
}
