//! The caller side: a [`Layer`] that encodes events and hands them to the writer.

use std::sync::atomic::Ordering::Acquire;
use std::sync::Arc;
use std::thread::Thread;

use crossbeam_channel::{Sender, TrySendError};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;

use crate::clock::Clock;
use crate::encode::{span_json_without_fields, EventEncoder, SpanFields, SpanVisitor};
use crate::record::{Msg, PoolTaker, Record};
use crate::stats::Shared;
use crate::Overflow;

/// The [`Layer`] half of a sink: install it in a `tracing-subscriber` registry.
///
/// It works with any subscriber that stores spans (`S: Subscriber + for<'a> LookupSpan<'a>`,
/// such as [`tracing_subscriber::registry()`]), composes with other layers, and takes per-layer
/// filters (`layer.with_filter(...)`).
///
/// For each event the layer copies the event's values into a recycled buffer, stamps the time,
/// and sends the buffer through a bounded channel to the writer thread: no lock of its own, no
/// system call, no file I/O. JSON formatting happens on the writer. Span fields are rendered
/// once, when the span is created or recorded, and copied into each event inside it.
///
/// Built by [`Builder::build`](crate::Builder::build) together with its
/// [`SinkGuard`](crate::SinkGuard).
#[derive(Debug)]
pub struct SinkLayer {
    pub(crate) tx: Sender<Msg>,
    pub(crate) pool: PoolTaker,
    pub(crate) shared: Arc<Shared>,
    pub(crate) overflow: Overflow,
    pub(crate) clock: Clock,
    /// The writer thread, to wake when the queue is full.
    pub(crate) writer: Thread,
}

impl SinkLayer {
    /// Hands a record to the writer according to the overflow policy.
    ///
    /// The common case is one lock-free `try_send` and no system call: the writer polls the
    /// queue and is never blocked on it, so nobody needs waking. Only a full queue wakes the
    /// writer early (an `unpark`) before waiting for room or dropping.
    #[inline]
    fn send(&self, record: Record) {
        let sent = match self.tx.try_send(Msg::Event(record)) {
            Ok(()) => true,
            Err(TrySendError::Disconnected(_)) => false,
            Err(TrySendError::Full(msg)) => {
                self.writer.unpark();
                match self.overflow {
                    Overflow::Block => self.tx.send(msg).is_ok(),
                    Overflow::DropNewest => false,
                }
            }
        };
        if !sent {
            self.shared.dropped(1);
        }
    }
}

/// Copies a span's rendered JSON object into `out`.
fn push_span<S>(span: &SpanRef<'_, S>, out: &mut Vec<u8>)
where
    S: for<'a> LookupSpan<'a>,
{
    match span.extensions().get::<SpanFields>() {
        Some(fields) => out.extend_from_slice(fields.json()),
        None => span_json_without_fields(span.name(), out),
    }
}

impl<S> Layer<S> for SinkLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        // Two sinks on one registry share the rendering: it depends only on the span.
        if extensions.get_mut::<SpanFields>().is_some() {
            return;
        }
        let mut fields = SpanFields::new();
        attrs.record(&mut SpanVisitor(&mut fields));
        fields.render(span.name());
        extensions.insert(fields);
    }

    fn on_record(&self, id: &Id, values: &SpanRecord<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            // With two sinks on one registry each records the same values: idempotent.
            values.record(&mut SpanVisitor(fields));
            fields.render(span.name());
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Acquire pairs with the guard's store: an event that starts after shutdown began is
        // counted here and never reaches the channel. One that raced past this check is still
        // accepted by the writer, which counts it as dropped (see `writer::Writer::closed`).
        if self.shared.closed.load(Acquire) {
            self.shared.dropped(1);
            return;
        }
        let time = self.clock.now();
        let mut buf = self.pool.take();
        event.record(&mut EventEncoder { buf: &mut buf });
        let fields_len = buf.len();

        // The same choice of spans as tracing-subscriber's JSON formatter: `span` is the
        // explicit parent or else the current span; `spans` is always the current scope.
        let leaf = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(leaf) = leaf {
            buf.extend_from_slice(b",\"span\":");
            push_span(&leaf, &mut buf);
            buf.extend_from_slice(b",\"spans\":[");
            if let Some(current) = ctx.lookup_current() {
                for (i, span) in current.scope().from_root().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    push_span(&span, &mut buf);
                }
            }
            buf.push(b']');
        }

        self.send(Record {
            meta: event.metadata(),
            time,
            buf,
            fields_len,
        });
    }
}
