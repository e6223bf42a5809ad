//! The caller side: a [`Layer`] that encodes events and hands them to the writer.
//!
//! The file reads top to bottom: the layer and its options, its hooks (the `Layer` impl),
//! then the parts of a line it renders on the caller (the span part, the thread part). Sending
//! is the [`Sender`]'s (`handoff`); encoding an event's fields is
//! `handoff::fields`', span fields `caller::span`.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, AtomicUsize};

use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;

use crate::caller::clock::Clock;
use crate::caller::current;
use crate::caller::span::{span_json_without_fields, SpanFields, SpanVisitor};
use crate::handoff::fields::EventEncoder;
use crate::handoff::record::Record;
use crate::handoff::sender::Sender;
use crate::stats::CacheLine;
use crate::Format;

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
    /// The callers' end of the queue to the writer.
    pub(crate) sender: Sender,
    pub(crate) clock: Clock,
    /// This layer's identity on the threads' stacks of entered spans (see [`NEXT_LAYER_ID`]).
    id: u64,
    /// Bumped after every `record` on a span this layer sees: a span part it cached on a
    /// thread's stack (see [`current`]) before the bump may show an ancestor's old fields and
    /// is rendered again. Per sink: another sink's spans, or another registry's, leave this
    /// one's caches alone. On a line of its own, as events read it and records write it.
    record_generation: CacheLine<AtomicU64>,
    options: LayerOptions,
    /// Whether lines have a thread part at all (`thread_names || thread_ids`, decided at build
    /// time so that an event checks one flag).
    thread_part: bool,
    /// The longest thread name this sink has written in the text format: names are
    /// right-aligned to it, as tracing-subscriber aligns them, so the columns after them line
    /// up. Written only when a longer name comes, so its cache line stays shared.
    thread_name_width: AtomicUsize,
    /// Looks up OpenTelemetry ids for each event, when the sink writes them.
    #[cfg(feature = "opentelemetry")]
    pub(crate) otel: Option<crate::caller::otel::Lookup>,
}

/// What the layer renders on the caller: the format of its span and thread parts, and which
/// of them a line has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerOptions {
    pub(crate) format: Format,
    /// The span keys of JSON lines. Read only where a span part is rendered (the bytes of an
    /// entered span are cached on the thread's stack) and for events with an explicit parent,
    /// so that the common event costs no more for them.
    pub(crate) json_spans: JsonSpans,
    /// Add the calling thread's name to each line.
    pub(crate) thread_names: bool,
    /// Add the calling thread's id to each line.
    pub(crate) thread_ids: bool,
    /// Look up OpenTelemetry ids (JSON only).
    #[cfg(feature = "opentelemetry")]
    pub(crate) opentelemetry_ids: bool,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            format: Format::Json,
            json_spans: JsonSpans {
                current: true,
                list: true,
            },
            thread_names: false,
            thread_ids: false,
            #[cfg(feature = "opentelemetry")]
            opentelemetry_ids: false,
        }
    }
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

/// Gives each layer an identity, so that only the layer that cached a span part on a thread's
/// stack uses it (another layer's format or per-layer filter may need a different one), and
/// only one text sink appends a span's recorded text (see [`SpanFields::merge`]). The only
/// process-wide state of the layer: ids must differ between sinks, whatever builds them.
static NEXT_LAYER_ID: AtomicU64 = AtomicU64::new(1);

impl SinkLayer {
    /// A layer that sends through `sender`, stamps events with `clock`, and renders its part
    /// of each line as `options` say.
    pub(crate) fn new(sender: Sender, clock: Clock, options: LayerOptions) -> SinkLayer {
        SinkLayer {
            sender,
            clock,
            id: NEXT_LAYER_ID.fetch_add(1, Relaxed),
            record_generation: CacheLine::default(),
            options,
            thread_part: options.thread_names || options.thread_ids,
            thread_name_width: AtomicUsize::new(0),
            #[cfg(feature = "opentelemetry")]
            otel: crate::caller::otel::Lookup::new(
                options.opentelemetry_ids && options.format == Format::Json,
            ),
        }
    }

    /// This layer's id if it renders span fields in the text format.
    fn text_owner(&self) -> Option<u64> {
        (self.options.format == Format::Text).then_some(self.id)
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
        // Sinks on one registry share the rendering: it depends only on the span. The text
        // form is rendered only for a text sink, by the first one (see `SpanFields::merge`).
        let text_owner = self.text_owner();
        if let Some(fields) = span.extensions().get::<SpanFields>() {
            if text_owner.is_none() || fields.has_text() {
                return;
            }
        }
        let mut fields = SpanFields::with_capacity(attrs.metadata().fields().len(), text_owner);
        attrs.record(&mut SpanVisitor(&mut fields));
        fields.render(span.name());

        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            None => extensions.insert(fields),
            Some(existing) => existing.adopt_text(fields),
        }
    }

    fn on_record(&self, id: &Id, values: &SpanRecord<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Format the values (user code: it may panic) before taking the span's lock, so that a
        // panicking `Debug` cannot poison the span for every later event.
        let mut recorded = SpanFields::new(self.text_owner());
        values.record(&mut SpanVisitor(&mut recorded));
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            fields.merge(recorded);
            fields.render(span.name());
            // After the new fields are in place (Release): every span part this layer cached on
            // a thread's stack is now stale, this span's and its descendants'.
            self.record_generation.fetch_add(1, Release);
        }
    }

    fn on_enter(&self, id: &Id, _ctx: Context<'_, S>) {
        current::enter(self.id, id.into_u64());
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        current::exit(self.id, id.into_u64());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !self.sender.accepting() {
            return;
        }
        let time = self.clock.stamp();
        let mut buf = self.sender.buffer();
        let format = self.options.format;
        event.record(&mut EventEncoder {
            buf: &mut buf,
            text: format == Format::Text,
        });
        let fields_len = buf.len();

        match format {
            Format::Json => self.push_json_spans(event, &ctx, &mut buf),
            Format::Text => self.push_text_spans(event, &ctx, &mut buf),
        }
        let span_end = buf.len();
        if self.thread_part {
            self.push_thread_part(&mut buf);
        }

        self.sender.send(Record {
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

/// The span part of a line.
impl SinkLayer {
    /// The span part of an event without an explicit parent: from this thread's stack of
    /// entered spans when its bytes are fresh (no registry lookup at all), else rendered from
    /// the registry and cached on the stack for the next events.
    fn push_contextual<S>(&self, ctx: &Context<'_, S>, out: &mut Vec<u8>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let generation = self.record_generation.load(Acquire);
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
        match self.options.format {
            Format::Json => push_current(current, self.options.json_spans, out),
            Format::Text => push_text_scope(current, out),
        }
    }

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
        let spans = self.options.json_spans;
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

/// The thread part of a line.
impl SinkLayer {
    /// Appends the thread part, as tracing-subscriber writes it: the name if enabled (for an
    /// unnamed thread its id instead, unless ids are enabled too), then the id if enabled.
    /// JSON: `,"threadName":"...","threadId":"ThreadId(7)"`; text: `name ThreadId(07) `, a
    /// name right-aligned to the longest this sink has written (an id is not aligned).
    fn push_thread_part(&self, out: &mut Vec<u8>) {
        let options = self.options;
        let _ = THREAD_TAG.try_with(|cell| {
            let tag = cell.get_or_init(ThreadTag::current);
            let name = options.thread_names && (tag.named.is_some() || !options.thread_ids);
            match options.format {
                Format::Json => {
                    if name {
                        out.extend_from_slice(&tag.json_name);
                    }
                    if options.thread_ids {
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
                    if options.thread_ids {
                        out.extend_from_slice(&tag.text_id);
                    }
                }
            }
        });
    }
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
        crate::json::write_str(&mut json_name, &name);
        let mut json_id = b",\"threadId\":".to_vec();
        crate::json::write_str(&mut json_id, &debug_id);
        ThreadTag {
            json_name,
            json_id,
            text_name,
            text_id,
            named,
        }
    }
}
