//! What crosses the channel from callers to the writer, and the buffers that come back.
//!
//! A [`Record`] carries an event in the compact form the caller wrote it in (see
//! [`encode`](crate::encode)); the writer turns it into a JSON line. Markers ([`Msg::Flush`],
//! [`Msg::Shutdown`]) travel through the same FIFO channel as events, so "everything sent before
//! the marker" is exact.
//!
//! Buffers are recycled: the writer clears each record's buffer and offers it back through a
//! bounded pool channel; callers take one from the pool before allocating. In steady state no
//! event allocates.

use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender};
use tracing::Metadata;

use crate::{Error, Stats};

/// Buffers grown past this are freed instead of recycled, so one huge event does not pin its
/// memory in the pool for the life of the process.
pub(crate) const MAX_POOLED_CAPACITY: usize = 64 * 1024;

/// Capacity of a freshly allocated record buffer: a typical event fits without growing.
pub(crate) const INITIAL_CAPACITY: usize = 256;

/// One event, encoded by the caller.
#[derive(Debug)]
pub(crate) struct Record {
    /// The event's callsite metadata: level, target, and the field names that `buf` refers to by
    /// index. Event metadata is always `'static`, so passing the reference costs nothing.
    pub(crate) meta: &'static Metadata<'static>,
    /// When the event happened, read raw on the caller and formatted on the writer.
    pub(crate) time: SystemTime,
    /// `buf[..fields_len]` holds the encoded fields, `buf[fields_len..]` the span part of the
    /// line, already JSON (`,"span":{..},"spans":[..]`, or empty outside any span).
    pub(crate) buf: Vec<u8>,
    pub(crate) fields_len: usize,
}

/// A message from the layer or the guard to the writer.
#[derive(Debug)]
pub(crate) enum Msg {
    /// An event to write.
    Event(Record),
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

/// The caller's end of the buffer pool.
#[derive(Debug, Clone)]
pub(crate) struct PoolTaker(pub(crate) Receiver<Vec<u8>>);

impl PoolTaker {
    /// A cleared buffer: recycled if one is free, else new.
    #[inline]
    pub(crate) fn take(&self) -> Vec<u8> {
        // `try_recv` on a bounded crossbeam channel is lock-free; an empty pool just means the
        // writer has not returned enough buffers yet (start-up, or a burst).
        self.0
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(INITIAL_CAPACITY))
    }
}

/// The writer's end of the buffer pool.
#[derive(Debug)]
pub(crate) struct PoolGiver(pub(crate) Sender<Vec<u8>>);

impl PoolGiver {
    /// Offers a used buffer back; it is freed if it grew too large or the pool is full.
    #[inline]
    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() <= MAX_POOLED_CAPACITY {
            buf.clear();
            let _ = self.0.try_send(buf);
        }
    }
}

/// A pool with room for `capacity` buffers.
pub(crate) fn pool(capacity: usize) -> (PoolGiver, PoolTaker) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (PoolGiver(tx), PoolTaker(rx))
}
