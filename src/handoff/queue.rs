//! The queue between callers and the writer: events travel through one bounded, lock-free
//! channel, markers through a control channel of their own.
//!
//! # Order
//! The event channel is FIFO and shared by every thread, so the file shows events in the
//! order their sends completed: one thread's events in the order it emitted them, and an
//! event that happened before another (on any threads, e.g. an async task that moved between
//! worker threads) ahead of it. (Splitting the channel per thread was measured: no gain on two
//! CPUs, and it let causally ordered events of different threads swap places.)
//!
//! # Markers
//! A marker ([`Marker::Flush`], [`Marker::Shutdown`]) promises "everything sent before me".
//! Markers never wait for room (the control channel is unbounded: they are few), and when the
//! writer takes one it first takes as many events as the event channel held at that moment
//! ([`Inbox::take_marker`]). An event whose send returned before the marker was sent is among
//! them: the send's tail update happens before the marker's send, which happens before the
//! writer receives the marker (the control channel orders them), so the channel's length read
//! after that counts the event. Events sent later may be taken too; that only writes them
//! sooner.

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::handoff::record::{Marker, Record};

/// Events the writer takes from the channel before it formats them: enough that their
/// buffers' first cache misses overlap (see [`warm`]), few enough to keep a marker or a flush
/// deadline waiting only briefly.
pub(crate) const BATCH: usize = 64;

/// How much of each record [`warm`] touches: more than a typical event.
const WARM_BYTES: usize = 1024;

/// Reads how many events wait in the queue (for [`Stats::queue_len`](crate::Stats::queue_len)).
#[derive(Debug, Clone)]
pub(crate) struct QueueLen(Receiver<Record>);

impl QueueLen {
    pub(crate) fn get(&self) -> usize {
        self.0.len()
    }
}

/// The writer's end: the event channel and the control channel.
#[derive(Debug)]
pub(crate) struct Inbox {
    events: Receiver<Record>,
    control: Receiver<Marker>,
    /// Records taken and not yet handed on (empty between calls; kept for its allocation).
    batch: Vec<Record>,
}

/// What one batch found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Batch {
    /// This many events were taken (possibly none).
    Took(usize),
    /// The channel is empty and its senders are gone (the layer was dropped).
    Disconnected,
}

impl Inbox {
    /// Takes up to [`BATCH`] events, then hands each to `event`.
    pub(crate) fn batch(&mut self, mut event: impl FnMut(Record)) -> Batch {
        let mut gone = false;
        while self.batch.len() < BATCH {
            match self.events.try_recv() {
                Ok(record) => self.batch.push(record),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        let took = self.batch.len();
        warm(&self.batch);
        for record in self.batch.drain(..) {
            event(record);
        }
        if gone {
            Batch::Disconnected
        } else {
            Batch::Took(took)
        }
    }

    /// The next marker, if one was sent, after handing `event` every event that was queued
    /// when it was taken (see the module docs). `Err` when the guard is gone.
    pub(crate) fn take_marker(
        &mut self,
        mut event: impl FnMut(Record),
    ) -> Result<Option<Marker>, TryRecvError> {
        let marker = match self.control.try_recv() {
            Ok(marker) => marker,
            Err(TryRecvError::Empty) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Only the writer receives, so each of these `len` events is there to take.
        for _ in 0..self.events.len() {
            match self.events.try_recv() {
                Ok(record) => event(record),
                Err(_) => break,
            }
        }
        Ok(Some(marker))
    }

    /// Events waiting in the channel.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// After shutdown: hands `event` everything that still arrives and `marker` every marker,
    /// blocking between arrivals, until every sender of both channels is gone.
    pub(crate) fn drain_until_disconnected(
        &self,
        mut event: impl FnMut(Record),
        mut marker: impl FnMut(Marker),
    ) {
        let (mut events_open, mut control_open) = (true, true);
        while events_open || control_open {
            let mut select = crossbeam_channel::Select::new();
            let events = events_open.then(|| select.recv(&self.events));
            let control = control_open.then(|| select.recv(&self.control));
            let op = select.select();
            if Some(op.index()) == events {
                events_open = op.recv(&self.events).map(&mut event).is_ok();
            } else if Some(op.index()) == control {
                control_open = op.recv(&self.control).map(&mut marker).is_ok();
            }
        }
    }
}

/// Reads one byte of every cache line of each record's buffer, all before the first record is
/// formatted. The buffers were just written on the callers' cores, so each first touch misses
/// the writer's cache: issued together, these independent loads wait for memory in parallel,
/// where formatting one record after the other would wait for each line in turn, stalling the
/// writer on every record's first load. `black_box` keeps the loads from being
/// optimized away.
fn warm(batch: &[Record]) {
    let mut sum = 0u8;
    for record in batch {
        // The head is enough: past it, formatting reads sequentially and the hardware
        // prefetcher keeps ahead (and warming a 100 MB event would read it twice).
        for &byte in record.buf.iter().take(WARM_BYTES).step_by(64) {
            sum ^= byte;
        }
    }
    std::hint::black_box(sum);
}

/// A queue of `capacity` events: the callers' sender, the guard's control sender, the
/// writer's inbox, and a length reader for statistics.
pub(crate) fn queue(capacity: usize) -> (Sender<Record>, Sender<Marker>, Inbox, QueueLen) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    (
        tx,
        control_tx,
        Inbox {
            events: rx.clone(),
            control: control_rx,
            batch: Vec::with_capacity(BATCH),
        },
        QueueLen(rx),
    )
}
