//! The caller side: a [`Layer`] that encodes events and hands them to the writer.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;

use crate::caller::clock::Clock;
use crate::caller::current;
use crate::caller::encode::{span_json_without_fields, EventEncoder, SpanFields, SpanVisitor};
use crate::handoff::record::{PoolTaker, Record, LARGE_EVENT};
use crate::stats::Shared;
use crate::{Format, Overflow};

/// The [`Layer`] half of a sink: install it in a `tracing-subscriber` registry.
///
/// It works with any subscriber that stores spans (`S: Subscriber + for<'a> LookupSpan<'a>`,
/// such as [`tracing_subscriber::registry()`]), composes with other layers, and takes per-layer
/// filters (`layer.with_filter(...)`).
///
/// For each event the layer copies the event's values into a recycled buffer, stamps the time,
/// and sends the buffer through a bounded lock-free channel to the writer thread: no lock of
/// its own, no system call, no file I/O. JSON formatting happens on the writer. Span fields
/// are rendered once, when the span is created or recorded, and copied into each event inside
/// it; each span keeps only its own, so memory grows linearly with the depth of nesting.
///
/// Built by [`Builder::build`](crate::Builder::build) together with its
/// [`SinkGuard`](crate::SinkGuard).
#[derive(Debug)]
pub struct SinkLayer {
    pub(crate) tx: Sender<Record>,
    pub(crate) pool: PoolTaker,
    pub(crate) shared: Arc<Shared>,
    pub(crate) overflow: Overflow,
    pub(crate) clock: Clock,
    /// The writer thread, to wake when the queue is full.
    pub(crate) writer: Thread,
    /// This layer's identity on the threads' stacks of entered spans (see [`next_layer_id`]).
    pub(crate) id: u64,
    /// The byte budget for large records in the queue.
    pub(crate) queue_bytes: usize,
    pub(crate) format: Format,
    /// The span keys of JSON lines. Read only where a span part is rendered (the bytes of an
    /// entered span are cached on the thread's stack) and for events with an explicit parent,
    /// so that the common event costs no more for them.
    pub(crate) json_spans: JsonSpans,
    /// Whether lines have a thread part at all (`thread_names || thread_ids`, decided at build
    /// time so that an event checks one flag).
    pub(crate) thread_part: bool,
    /// Add the calling thread's name to each line.
    pub(crate) thread_names: bool,
    /// Add the calling thread's id to each line.
    pub(crate) thread_ids: bool,
    /// The longest thread name this sink has written in the text format: names are
    /// right-aligned to it, as tracing-subscriber aligns them, so the columns after them line
    /// up. Written only when a longer name comes, so its cache line stays shared.
    pub(crate) thread_name_width: AtomicUsize,
    /// Looks up OpenTelemetry ids for each event, when the sink writes them.
    #[cfg(feature = "opentelemetry")]
    pub(crate) otel: Option<crate::caller::otel::Lookup>,
}

/// Which span keys a JSON line carries: tracing-subscriber's `with_current_span` (`span`) and
/// `with_span_list` (`spans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonSpans {
    pub(crate) current: bool,
    pub(crate) list: bool,
}

impl JsonSpans {
    pub(crate) const NONE: JsonSpans = JsonSpans {
        current: false,
        list: false,
    };
}

impl SinkLayer {
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
                        self.shared.release_large(large);
                        self.shared.overflowed();
                        return;
                    }
                }
            }
        };
        if !sent {
            self.shared.release_large(large);
            self.shared.dropped(1);
        }
    }

    /// Reserves `size` bytes of the queue's byte budget for a large record. Under
    /// [`Overflow::Block`] waits for room; under [`Overflow::DropNewest`] refuses (and counts
    /// the drop). An empty budget takes any record, so one larger than the whole budget still
    /// goes through, alone.
    #[cold]
    fn reserve(&self, size: usize) -> bool {
        let budget = &self.shared.large_bytes;
        let mut current = budget.load(Relaxed);
        loop {
            if current == 0 || current + size <= self.queue_bytes {
                // Relaxed: the counter only bounds memory; it orders nothing else.
                match budget.compare_exchange_weak(current, current + size, Relaxed, Relaxed) {
                    Ok(_) => return true,
                    Err(now) => current = now,
                }
                continue;
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
                    std::thread::sleep(std::time::Duration::from_micros(100));
                    current = budget.load(Relaxed);
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
fn wait_for_room(tx: &Sender<Record>, mut record: Record, writer: &Thread) -> bool {
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

/// Bumped after every `record` on any span: a span part cached on a thread's stack (see
/// [`current`]) before the bump may show an ancestor's old fields and is rendered again.
/// Process-wide, because sinks on one registry share their spans' [`SpanFields`].
static RECORD_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Gives each layer an identity, so that only the layer that cached a span part on a thread's
/// stack uses it (another layer's format or per-layer filter may need a different one).
static NEXT_LAYER_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_layer_id() -> u64 {
    NEXT_LAYER_ID.fetch_add(1, Relaxed)
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

/// Writes `[root, ..., span]` — the span objects of `span`'s scope — by walking the registry.
fn push_scope<S>(span: &SpanRef<'_, S>, out: &mut Vec<u8>)
where
    S: for<'a> LookupSpan<'a>,
{
    out.push(b'[');
    for (i, span) in span.scope().from_root().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_span(&span, out);
    }
    out.push(b']');
}

impl SinkLayer {
    /// The span part of an event without an explicit parent: from this thread's stack of
    /// entered spans when its bytes are fresh (no registry lookup at all), else rendered from
    /// the registry and cached on the stack for the next events.
    fn push_contextual<S>(&self, ctx: &Context<'_, S>, out: &mut Vec<u8>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let generation = RECORD_GENERATION.load(Acquire);
        match current::append(self.id, generation, out) {
            current::Current::Appended | current::Current::None => {}
            current::Current::Render(span) => {
                let start = out.len();
                if let Some(current) = ctx.lookup_current() {
                    self.push_current_part(&current, out);
                    // Only cache what belongs to the span the stack holds (they agree unless a
                    // span was entered through another dispatcher).
                    if current.id().into_u64() == span {
                        current::store(self.id, span, generation, &out[start..]);
                    }
                }
            }
            current::Current::Unknown => {
                if let Some(current) = ctx.lookup_current() {
                    self.push_current_part(&current, out);
                }
            }
        }
    }

    /// The span part of an event in `current`, in this layer's format.
    fn push_current_part<S>(&self, current: &SpanRef<'_, S>, out: &mut Vec<u8>)
    where
        S: for<'a> LookupSpan<'a>,
    {
        match self.format {
            Format::Json => push_current(current, self.json_spans, out),
            Format::Text => push_text_scope(current, out),
        }
    }
}

/// Writes the `span` object and the `spans` list of `current` (each if enabled), walking its
/// scope in the registry as tracing-subscriber does: spans keep only their own rendered fields,
/// so that memory stays linear in the depth. Further events in the same entered span copy the
/// result from the thread's stack instead (see [`current`]).
fn push_current<S>(current: &SpanRef<'_, S>, spans: JsonSpans, out: &mut Vec<u8>)
where
    S: for<'a> LookupSpan<'a>,
{
    if spans.current {
        out.extend_from_slice(b",\"span\":");
        push_span(current, out);
    }
    if spans.list {
        out.extend_from_slice(b",\"spans\":");
        push_scope(current, out);
    }
}

impl<S> Layer<S> for SinkLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    #[cfg(feature = "opentelemetry")]
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        if let Some(otel) = &self.otel {
            otel.register(dispatch);
        }
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        #[cfg(feature = "opentelemetry")]
        if let Some(otel) = &self.otel {
            otel.on_new_span(&span);
        }
        // Two sinks on one registry share the rendering: it depends only on the span.
        if span.extensions().get::<SpanFields>().is_some() {
            return;
        }
        let mut fields = SpanFields::with_capacity(attrs.metadata().fields().len());
        attrs.record(&mut SpanVisitor(&mut fields));
        fields.render(span.name());

        let mut extensions = span.extensions_mut();
        if extensions.get_mut::<SpanFields>().is_none() {
            extensions.insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &SpanRecord<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Format the values (user code: it may panic) before taking the span's lock, so that a
        // panicking `Debug` cannot poison the span for every later event.
        let mut recorded = SpanFields::new();
        values.record(&mut SpanVisitor(&mut recorded));
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            // With two sinks on one registry each records the same values: idempotent.
            fields.merge(recorded);
            fields.render(span.name());
            // After the new fields are in place (Release): every span part cached on a thread's
            // stack is now stale, this span's and its descendants'.
            RECORD_GENERATION.fetch_add(1, Release);
        }
    }

    fn on_enter(&self, id: &Id, _ctx: Context<'_, S>) {
        current::enter(self.id, id.into_u64());
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        current::exit(self.id, id.into_u64());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Acquire pairs with the guard's store: an event that starts after shutdown began is
        // counted here and never reaches the channel. One that raced past this check is still
        // accepted by the writer, which counts it as dropped (see
        // `writer::Writer::count_late_events`).
        if self.shared.closed.load(Acquire) {
            self.shared.dropped(1);
            return;
        }
        let time = self.clock.stamp();
        let mut buf = self.pool.take();
        event.record(&mut EventEncoder {
            buf: &mut buf,
            text: self.format == Format::Text,
        });
        let fields_len = buf.len();

        match self.format {
            Format::Json => self.push_json_spans(event, &ctx, &mut buf),
            Format::Text => self.push_text_spans(event, &ctx, &mut buf),
        }
        let span_end = buf.len();
        if self.thread_part {
            self.push_thread_part(&mut buf);
        }

        self.send(Record {
            meta: event.metadata(),
            time,
            buf,
            fields_len,
            span_end,
            #[cfg(feature = "opentelemetry")]
            otel_ids: self.otel_ids(event, &ctx),
        });
    }
}

impl SinkLayer {
    /// The JSON span part, with the same choice of spans as tracing-subscriber's JSON
    /// formatter: `span` is the explicit parent or else the current span; `spans` is always
    /// the current scope (empty if there is an explicit parent but no current span). Each key
    /// only if enabled: with neither, a contextual event copies the empty part cached for its
    /// span, and an explicit parent is not looked up.
    fn push_json_spans<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, buf: &mut Vec<u8>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match event.parent() {
            None => self.push_contextual(ctx, buf),
            Some(parent) => self.push_json_spans_of(parent, ctx, buf),
        }
    }

    /// [`push_json_spans`](Self::push_json_spans) for an event with an explicit parent: out of
    /// line, as the rarer case.
    #[inline(never)]
    fn push_json_spans_of<S>(&self, parent: &Id, ctx: &Context<'_, S>, buf: &mut Vec<u8>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let spans = self.json_spans;
        if spans == JsonSpans::NONE {
            return;
        }
        let explicit = ctx.span(parent);
        let current = ctx.lookup_current();
        match (explicit, current) {
            (None, Some(current)) => push_current(&current, spans, buf),
            (Some(parent), current) => {
                if spans.current {
                    buf.extend_from_slice(b",\"span\":");
                    push_span(&parent, buf);
                }
                if spans.list {
                    match current {
                        Some(current) => push_current(
                            &current,
                            JsonSpans {
                                current: false,
                                list: true,
                            },
                            buf,
                        ),
                        None => buf.extend_from_slice(b",\"spans\":[]"),
                    }
                }
            }
            (None, None) => {}
        }
    }

    /// The text span part, `root{k=v}:leaf: `, over the event's scope as tracing-subscriber's
    /// full format shows it: the explicit parent's scope, none for an explicit root, else the
    /// current span's (cached on this thread's stack of entered spans).
    fn push_text_spans<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, buf: &mut Vec<u8>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if event.is_contextual() {
            return self.push_contextual(ctx, buf);
        }
        if let Some(span) = event.parent().and_then(|id| ctx.span(id)) {
            push_text_scope(&span, buf);
        }
    }
}

/// Writes `root{k=v}:...:span{k=v}: ` for `span`'s scope.
fn push_text_scope<S>(span: &SpanRef<'_, S>, out: &mut Vec<u8>)
where
    S: for<'a> LookupSpan<'a>,
{
    for span in span.scope().from_root() {
        out.extend_from_slice(span.name().as_bytes());
        if let Some(fields) = span.extensions().get::<SpanFields>() {
            if !fields.text().is_empty() {
                out.push(b'{');
                out.extend_from_slice(fields.text());
                out.push(b'}');
            }
        }
        out.push(b':');
    }
    out.push(b' ');
}

/// This thread's name and id as the formats write them.
#[derive(Debug)]
struct ThreadTag {
    /// `,"threadName":"..."`: the name, or the id (`ThreadId(7)`) of an unnamed thread.
    json_name: Vec<u8>,
    /// `,"threadId":"ThreadId(7)"`.
    json_id: Vec<u8>,
    /// `name ` (text), or `ThreadId(07) ` for an unnamed thread.
    text_name: Vec<u8>,
    /// `ThreadId(07) ` (text).
    text_id: Vec<u8>,
    /// The name's length in characters (what tracing-subscriber's alignment counts); `None`
    /// for an unnamed thread, whose id is not aligned.
    named: Option<usize>,
}

thread_local! {
    /// This thread's name and id as the JSON and text formats write them, made on first use:
    /// `std::thread::current()` costs a reference count taken and dropped, and formatting the
    /// id an allocation, both spared to every later event.
    static THREAD_TAG: std::cell::OnceCell<ThreadTag> = const { std::cell::OnceCell::new() };
}

impl ThreadTag {
    /// As tracing-subscriber writes them: `{:?}` of the id in JSON, `{:0>2?}` in text (which
    /// pads the number inside: `ThreadId(07)`).
    fn current() -> ThreadTag {
        let thread = std::thread::current();
        let id = thread.id();
        let debug_id = format!("{id:?}");
        let text_id = format!("{id:0>2?} ").into_bytes();
        let (name, text_name, named) = match thread.name() {
            Some(name) => (
                name.to_owned(),
                format!("{name} ").into_bytes(),
                Some(name.chars().count()),
            ),
            None => (debug_id.clone(), text_id.clone(), None),
        };
        let mut json_name = b",\"threadName\":".to_vec();
        crate::caller::encode::write_str(&mut json_name, &name);
        let mut json_id = b",\"threadId\":".to_vec();
        crate::caller::encode::write_str(&mut json_id, &debug_id);
        ThreadTag {
            json_name,
            json_id,
            text_name,
            text_id,
            named,
        }
    }
}

impl SinkLayer {
    /// Appends the thread part, as tracing-subscriber writes it: the name if enabled (for an
    /// unnamed thread its id instead, unless ids are enabled too), then the id if enabled.
    /// JSON: `,"threadName":"...","threadId":"ThreadId(7)"`; text: `name ThreadId(07) `, a
    /// name right-aligned to the longest this sink has written (an id is not aligned).
    fn push_thread_part(&self, out: &mut Vec<u8>) {
        let _ = THREAD_TAG.try_with(|cell| {
            let tag = cell.get_or_init(ThreadTag::current);
            let name = self.thread_names && (tag.named.is_some() || !self.thread_ids);
            match self.format {
                Format::Json => {
                    if name {
                        out.extend_from_slice(&tag.json_name);
                    }
                    if self.thread_ids {
                        out.extend_from_slice(&tag.json_id);
                    }
                }
                Format::Text => {
                    if name {
                        if let Some(chars) = tag.named {
                            // Relaxed: the width orders nothing; a race only pads one line less.
                            let width = self.thread_name_width.load(Relaxed);
                            let width = if chars > width {
                                self.thread_name_width.fetch_max(chars, Relaxed).max(chars)
                            } else {
                                width
                            };
                            out.resize(out.len() + (width - chars), b' ');
                        }
                        out.extend_from_slice(&tag.text_name);
                    }
                    if self.thread_ids {
                        out.extend_from_slice(&tag.text_id);
                    }
                }
            }
        });
    }
}
