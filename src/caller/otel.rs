//! OpenTelemetry ids in each JSON line (crate feature `opentelemetry`): see
//! [`Builder::with_opentelemetry_ids`].
//!
//! The caller looks the ids up at event time and puts them into the [`Record`] as 24 raw bytes
//! ([`Ids`]); the writer formats them as hex. Where they come from: tracing-opentelemetry keeps
//! each span's OpenTelemetry state in the span's extensions, in a private type. Until the
//! OpenTelemetry span is started that state is a span builder *without* ids: the SDK's tracer
//! draws the span id, and the trace id unless a parent gives it, only when the span starts
//! (tracing-opentelemetry starts it when the span is first entered, or when its context is
//! asked for). So the ids are read the way `Span::context()` reads them, through
//! [`tracing_opentelemetry::get_otel_context`]: it starts the span if needed and returns its
//! context, whose span context carries the final ids. Those never change once the span has
//! started, so the first event that finds them keeps them in the span ([`Known`]), and the
//! span's later events copy them without asking tracing-opentelemetry again.
//!
//! That function needs the [`Dispatch`] the span lives in. Inside `on_event` the thread's
//! default dispatcher is the global one when no scoped dispatcher exists anywhere (tracing's
//! fast path: no reference count touched); under a scoped dispatcher, tracing hands out a no-op
//! dispatcher to code running inside a dispatch, so the layer keeps a weak reference to the
//! dispatcher it was registered in (`Layer::on_register_dispatch`) and upgrades it then.
//!
//! [`Record`]: crate::handoff::record::Record

use std::cell::Cell;
use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::{self, Dispatch, WeakDispatch};
use tracing::span::Id;
use tracing::subscriber::NoSubscriber;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::{Builder, SinkLayer};

impl Builder {
    /// Add the OpenTelemetry trace and span ids of each event's span: top-level `"trace_id"`
    /// (32 lowercase hex digits) and `"span_id"` (16) keys, right after `"level"`. Needs the
    /// crate feature `opentelemetry`. Default: `false`.
    ///
    /// These are the names the OpenTelemetry specification gives trace context in JSON logs
    /// ("Trace Context in non-OTLP Log Formats") and the fields that the OpenTelemetry
    /// Collector's `trace_parser` reads by default, so a `filelog` receiver with a JSON parser
    /// and a trace parser links each line to its span.
    ///
    /// The ids come from a `tracing_opentelemetry::layer()` (tracing-opentelemetry 0.34, the
    /// version this crate is built against; a layer of another version is not found) on the
    /// same subscriber, in either order with this sink's layer. The span is the event's: its
    /// explicit parent, or else the current span (an explicit root has none). An event gets
    /// the keys when that span's OpenTelemetry context is valid, sampled or not, including a
    /// trace continued from a remote parent (`OpenTelemetrySpanExt::set_parent`); an event
    /// outside any span, an explicit root, and an event in a span the OpenTelemetry layer does
    /// not record get neither key.
    ///
    /// The lookup is the one `Span::context()` makes: an OpenTelemetry span not started yet is
    /// started by it (as its first `enter` would; `set_parent` on it fails afterwards). It
    /// takes tracing-opentelemetry's lock on the span's data, so code that runs while
    /// tracing-opentelemetry holds that lock, such as a sampler or span processor starting a
    /// span, must not emit events into this subscriber. The first event in a span looks its
    /// ids up, later ones copy them from the span: a few atomic operations per event, and no
    /// allocation; without this option, nothing. JSON only:
    /// [`Format::Text`](crate::Format::Text) lines do not change.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use tracing_subscriber::prelude::*;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// # let dir = tmp.path();
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let (layer, guard) = logsink::LogSink::builder()
    ///     .directory(dir)
    ///     .with_opentelemetry_ids(true)
    ///     .build()?;
    /// let subscriber = tracing_subscriber::registry()
    ///     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("my-service")))
    ///     .with(layer);
    ///
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let _span = tracing::info_span!("request").entered();
    ///     tracing::info!("served");
    /// });
    ///
    /// guard.shutdown_blocking()?;
    /// let line = std::fs::read_to_string(dir.join("app.log"))?;
    /// // {"timestamp":"…","level":"INFO","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",
    /// //  "span_id":"00f067aa0ba902b7","fields":{"message":"served"},…}
    /// assert!(line.contains(r#""level":"INFO","trace_id":""#));
    /// # Ok(()) }
    /// ```
    pub fn with_opentelemetry_ids(mut self, enabled: bool) -> Self {
        self.layer.opentelemetry_ids = enabled;
        self
    }
}

/// A span's trace and span ids as raw bytes; all zero for none (a valid trace id never is).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ids {
    trace: [u8; 16],
    span: [u8; 8],
}

impl Ids {
    pub(crate) const NONE: Ids = Ids {
        trace: [0; 16],
        span: [0; 8],
    };

    fn is_none(&self) -> bool {
        self.trace == [0; 16]
    }
}

/// Appends `,"trace_id":"…","span_id":"…"` for `ids`, or nothing for [`Ids::NONE`].
pub(crate) fn push_json(ids: &Ids, out: &mut Vec<u8>) {
    if ids.is_none() {
        return;
    }
    out.extend_from_slice(b",\"trace_id\":\"");
    push_hex(&ids.trace, out);
    out.extend_from_slice(b"\",\"span_id\":\"");
    push_hex(&ids.span, out);
    out.push(b'"');
}

fn push_hex(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0xf)]);
    }
}

/// A span's ids once a lookup has found them, so that later events in the span copy them
/// without asking tracing-opentelemetry. Put into the span's extensions when it is created
/// (sinks on one registry share it: the ids depend only on the span), so that an event
/// allocates nothing.
#[derive(Default)]
struct Known(OnceLock<Ids>);

/// A layer's means of finding ids: present only when the option is on.
#[derive(Debug, Default)]
pub(crate) struct Lookup {
    /// The dispatcher the layer was registered in, for events under a scoped dispatcher.
    dispatch: OnceLock<WeakDispatch>,
}

thread_local! {
    /// Set while this thread looks ids up: an event emitted meanwhile (by a sampler, say, as the
    /// lookup starts a span, with tracing-opentelemetry's lock on it held) gets none.
    static LOOKING_UP: Cell<bool> = const { Cell::new(false) };
}

/// Clears [`LOOKING_UP`] when the lookup ends, also by a panic.
struct LookingUp;

impl Drop for LookingUp {
    fn drop(&mut self) {
        let _ = LOOKING_UP.try_with(|flag| flag.set(false));
    }
}

impl Lookup {
    /// The lookup for a layer built with the option `enabled`, else none.
    pub(crate) fn new(enabled: bool) -> Option<Lookup> {
        enabled.then(Lookup::default)
    }

    /// Keeps the first dispatcher the layer is registered in (a layer lives in one).
    pub(crate) fn register(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    /// Makes room for the ids of a span just created.
    pub(crate) fn on_new_span<S>(&self, span: &SpanRef<'_, S>)
    where
        S: for<'a> LookupSpan<'a>,
    {
        let mut extensions = span.extensions_mut();
        if extensions.get_mut::<Known>().is_none() {
            extensions.insert(Known::default());
        }
    }

    /// The ids of `event`'s span: its explicit parent, else the current span.
    fn ids<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> Ids
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // Holding the span keeps its id valid while tracing-opentelemetry looks it up.
        let Some(span) = ctx.event_span(event) else {
            return Ids::NONE;
        };
        // The extensions' lock is not held across the lookup, which takes it too.
        let known = span
            .extensions()
            .get::<Known>()
            .and_then(|known| known.0.get().copied());
        if let Some(ids) = known {
            return ids;
        }
        if LOOKING_UP.try_with(|flag| flag.replace(true)) != Ok(false) {
            return Ids::NONE;
        }
        let looking_up = LookingUp;
        let id = span.id();
        // Outside any scoped dispatcher the default is the global one, which this event came
        // through; under one, tracing gives code inside a dispatch the no-op dispatcher.
        let global = dispatcher::get_default(|dispatch| {
            (!dispatch.is::<NoSubscriber>()).then(|| ids_in(dispatch, &id))
        });
        let ids = match global {
            Some(ids) => ids,
            None => match self.dispatch.get().and_then(WeakDispatch::upgrade) {
                Some(dispatch) => ids_in(&dispatch, &id),
                None => Ids::NONE,
            },
        };
        drop(looking_up);
        // Valid ids come from a started OpenTelemetry span, whose ids never change.
        if !ids.is_none() {
            if let Some(known) = span.extensions().get::<Known>() {
                let _ = known.0.set(ids);
            }
        }
        ids
    }
}

/// The ids of span `id` in `dispatch`, as `Span::context()` gives them.
fn ids_in(dispatch: &Dispatch, id: &Id) -> Ids {
    let Some(cx) = tracing_opentelemetry::get_otel_context(id, dispatch) else {
        return Ids::NONE;
    };
    let span = cx.span();
    let context = span.span_context();
    if !context.is_valid() {
        return Ids::NONE;
    }
    Ids {
        trace: context.trace_id().to_bytes(),
        span: context.span_id().to_bytes(),
    }
}

impl SinkLayer {
    /// The ids for `event`'s line: [`Ids::NONE`] unless the option is on.
    #[inline]
    pub(crate) fn otel_ids<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> Ids
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match &self.otel {
            Some(lookup) => lookup.ids(event, ctx),
            None => Ids::NONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowercase_hex_and_none_writes_nothing() {
        let mut out = Vec::new();
        push_json(&Ids::NONE, &mut out);
        assert!(out.is_empty());
        let ids = Ids {
            trace: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128.to_be_bytes(),
            span: 0x00f0_67aa_0ba9_02b7_u64.to_be_bytes(),
        };
        push_json(&ids, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7""#
        );
    }
}
