//! `Builder::with_opentelemetry_ids` (feature `opentelemetry`): each line's `trace_id` and
//! `span_id` are those `Span::context()` gives for the event's span, captured inside it, with
//! an SDK tracer provider (sampled and unsampled), a remote parent, and tracing-opentelemetry's
//! no-op tracer; no keys outside spans, and none without the option. The file is read back and
//! every line parsed.
//!
//! These tests install the sink with `with_default` (a scoped dispatcher);
//! `opentelemetry_global.rs` covers the global one.
#![cfg(feature = "opentelemetry")]

mod common;

use std::collections::HashMap;
use std::thread;

use logsink::{Format, LogSink};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde_json::Value;
use tracing::{Dispatch, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The remote parent's ids (the W3C trace context specification's example).
const REMOTE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const REMOTE_SPAN: &str = "00f067aa0ba902b7";

/// A span's ids as `Span::context()` gives them, formatted as the line must carry them.
#[derive(Debug, Clone, PartialEq)]
struct Ids {
    trace_id: String,
    span_id: String,
    sampled: bool,
}

/// The ids of `span`'s OpenTelemetry context, if it is valid.
fn ids_of(span: &Span) -> Option<Ids> {
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    sc.is_valid().then(|| Ids {
        trace_id: format!("{:032x}", sc.trace_id()),
        span_id: format!("{:016x}", sc.span_id()),
        sampled: sc.is_sampled(),
    })
}

/// Each event's message and the ids its line must carry (when the option is on).
#[derive(Debug, Default)]
struct Expected(Vec<(&'static str, Option<Ids>)>);

impl Expected {
    fn add(&mut self, message: &'static str, ids: Option<Ids>) {
        self.0.push((message, ids));
    }

    fn get(&self, message: &str) -> &Option<Ids> {
        &self.0.iter().find(|(m, _)| *m == message).unwrap().1
    }
}

/// How the subscriber is put together.
struct Setup {
    /// `None`: tracing-opentelemetry's no-op tracer (`tracing_opentelemetry::layer()` as is).
    sampler: Option<Sampler>,
    /// The OpenTelemetry layer below the sink's (added first) or above it.
    otel_first: bool,
    context_activation: bool,
    option: bool,
    format: Format,
    /// `without_time()` and `with_level(false)`: the ids open the line.
    bare: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            sampler: Some(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
            otel_first: true,
            context_activation: true,
            option: true,
            format: Format::Json,
            bare: false,
        }
    }
}

/// Runs `scenario` with a sink and an OpenTelemetry layer as `setup` says; returns the raw
/// lines by message, each checked against `Expected` (its ids when the option is on, else none).
fn run(setup: Setup, scenario: impl FnOnce(&mut Expected)) -> (Expected, HashMap<String, String>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut builder = LogSink::builder()
        .directory(tmp.path())
        .file_name(common::FILE_NAME)
        .format(setup.format)
        .with_opentelemetry_ids(setup.option);
    if setup.bare {
        builder = builder.without_time().with_level(false);
    }
    let (sink, guard) = builder.build().unwrap();
    let provider = setup
        .sampler
        .map(|sampler| SdkTracerProvider::builder().with_sampler(sampler).build());
    let dispatch: Dispatch = if setup.otel_first {
        let otel = otel_layer(provider.as_ref(), setup.context_activation);
        tracing_subscriber::registry().with(otel).with(sink).into()
    } else {
        let otel = otel_layer(provider.as_ref(), setup.context_activation);
        tracing_subscriber::registry().with(sink).with(otel).into()
    };
    let mut expected = Expected::default();
    tracing::dispatcher::with_default(&dispatch, || scenario(&mut expected));
    drop(dispatch);
    guard.shutdown_blocking().unwrap();
    if let Some(provider) = provider {
        provider.shutdown().unwrap();
    }

    let path = common::log_path(tmp.path());
    let mut lines = HashMap::new();
    for (i, line) in common::read_lines(&path).into_iter().enumerate() {
        if setup.format == Format::Text {
            assert!(!line.contains("trace_id"), "{line}");
            lines.insert(i.to_string(), line);
            continue;
        }
        let value = common::parse_line(&line, "line");
        let message = value["fields"]["message"].as_str().unwrap().to_owned();
        lines.insert(message, line);
    }
    assert_eq!(lines.len(), expected.0.len(), "{lines:#?}");
    if setup.format == Format::Json {
        for (message, ids) in &expected.0 {
            let line = &lines[*message];
            match ids.as_ref().filter(|_| setup.option) {
                Some(ids) => check_ids(line, ids),
                None => assert!(
                    !line.contains("trace_id") && !line.contains("span_id"),
                    "{message}: no ids expected: {line}"
                ),
            }
        }
    }
    (expected, lines)
}

/// tracing-opentelemetry's layer with the provider's tracer, or with its no-op tracer.
fn otel_layer<S>(
    provider: Option<&SdkTracerProvider>,
    context_activation: bool,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    match provider {
        Some(provider) => tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("logsink-test"))
            .with_context_activation(context_activation)
            .boxed(),
        None => tracing_opentelemetry::layer()
            .with_context_activation(context_activation)
            .boxed(),
    }
}

/// `line` carries `ids`, right after `level`, and the keys are well-formed.
fn check_ids(line: &str, ids: &Ids) {
    let value: Value = common::parse_line(line, "line");
    let trace_id = value["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace_id: {line}"));
    let span_id = value["span_id"].as_str().unwrap();
    assert_eq!(trace_id, ids.trace_id, "{line}");
    assert_eq!(span_id, ids.span_id, "{line}");
    for (id, len) in [(trace_id, 32), (span_id, 16)] {
        assert_eq!(id.len(), len, "{line}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{line}"
        );
    }
    let ids = format!(r#""trace_id":"{trace_id}","span_id":"{span_id}","fields":{{"#);
    let expected = match value["level"].as_str() {
        Some(level) => format!(r#""level":"{level}",{ids}"#),
        // Without time and level the ids open the object.
        None => format!("{{{ids}"),
    };
    assert!(line.contains(&expected), "{line}");
}

/// A remote parent context, as a propagator would extract it.
fn remote_parent(flags: TraceFlags) -> opentelemetry::Context {
    let remote = SpanContext::new(
        TraceId::from_hex(REMOTE_TRACE).unwrap(),
        SpanId::from_hex(REMOTE_SPAN).unwrap(),
        flags,
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(remote)
}

/// Events outside spans, in a root span, a child, back in the root, an explicit root inside a
/// span, an explicit parent never entered, a span with a remote parent, and a span entered on
/// another thread. Ids are captured inside each span after its events (for the never-entered
/// span, after the event that started it).
fn scenario(expected: &mut Expected, remote_flags: TraceFlags) {
    tracing::info!("outside");
    expected.add("outside", None);

    tracing::info_span!("root", n = 1).in_scope(|| {
        tracing::info!("in root");
        let root = ids_of(&Span::current());
        expected.add("in root", root.clone());

        tracing::info_span!("child").in_scope(|| {
            tracing::warn!(k = "v", "in child");
            expected.add("in child", ids_of(&Span::current()));
        });

        tracing::error!("back in root");
        expected.add("back in root", root);

        tracing::info!(parent: None, "explicit root");
        expected.add("explicit root", None);
    });

    let lone = tracing::info_span!("lone");
    tracing::info!(parent: &lone, "explicit parent");
    expected.add("explicit parent", ids_of(&lone));

    let server = tracing::info_span!("server");
    server.set_parent(remote_parent(remote_flags)).unwrap();
    server.in_scope(|| {
        tracing::info!("remote child");
        expected.add("remote child", ids_of(&Span::current()));
    });

    let worker = tracing::info_span!("worker");
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    let ids = thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            worker.in_scope(|| {
                tracing::info!("on another thread");
                ids_of(&Span::current())
            })
        })
    })
    .join()
    .unwrap();
    expected.add("on another thread", ids);

    tracing::info!("outside again");
    expected.add("outside again", None);
}

/// The relations `Span::context()` promises between the scenario's spans, so that the test
/// compares against what it should: a child shares its root's trace, a remote parent's trace
/// is continued, and every span has an id of its own.
fn check_relations(expected: &Expected) {
    let root = expected.get("in root").clone().unwrap();
    let child = expected.get("in child").clone().unwrap();
    let remote = expected.get("remote child").clone().unwrap();
    let lone = expected.get("explicit parent").clone().unwrap();
    let worker = expected.get("on another thread").clone().unwrap();
    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(remote.trace_id, REMOTE_TRACE);
    let span_ids = [&root, &child, &remote, &lone, &worker].map(|ids| ids.span_id.as_str());
    for (i, id) in span_ids.iter().enumerate() {
        assert!(!span_ids[..i].contains(id), "{span_ids:?}");
        assert_ne!(*id, REMOTE_SPAN);
    }
    assert_ne!(lone.trace_id, root.trace_id);
    assert_ne!(worker.trace_id, root.trace_id);
}

#[test]
fn sampled_spans_carry_their_ids() {
    let (expected, _) = run(Setup::default(), |e| scenario(e, TraceFlags::SAMPLED));
    check_relations(&expected);
    assert!(expected
        .0
        .iter()
        .flat_map(|(_, ids)| ids)
        .all(|ids| ids.sampled));
}

#[test]
fn unsampled_spans_carry_their_ids_too() {
    let setup = Setup {
        sampler: Some(Sampler::AlwaysOff),
        otel_first: false,
        ..Setup::default()
    };
    let (expected, _) = run(setup, |e| scenario(e, TraceFlags::SAMPLED));
    check_relations(&expected);
    assert!(expected
        .0
        .iter()
        .flat_map(|(_, ids)| ids)
        .all(|ids| !ids.sampled));
}

/// A parent-based sampler follows an unsampled remote parent: the span is not sampled, and
/// still carries the remote trace id and an id of its own.
#[test]
fn an_unsampled_remote_parent_is_followed() {
    let (expected, _) = run(Setup::default(), |e| scenario(e, TraceFlags::NOT_SAMPLED));
    check_relations(&expected);
    assert!(!expected.get("remote child").as_ref().unwrap().sampled);
    assert!(expected.get("in root").as_ref().unwrap().sampled);
}

/// Without context activation tracing-opentelemetry starts a span only when asked for its
/// context: the sink's lookup starts it, and the ids are the ones `Span::context()` sees after.
#[test]
fn without_context_activation_the_lookup_starts_the_span() {
    let setup = Setup {
        context_activation: false,
        otel_first: false,
        ..Setup::default()
    };
    let (expected, _) = run(setup, |e| scenario(e, TraceFlags::SAMPLED));
    check_relations(&expected);
}

/// The no-op tracer gives spans an invalid context, except that it passes a remote parent's
/// on: only that span's events carry ids (the remote parent's own).
#[test]
fn the_noop_tracer_gives_ids_only_under_a_remote_parent() {
    let setup = Setup {
        sampler: None,
        ..Setup::default()
    };
    let (expected, _) = run(setup, |e| scenario(e, TraceFlags::SAMPLED));
    let with_ids: Vec<_> = expected.0.iter().filter(|(_, ids)| ids.is_some()).collect();
    assert_eq!(with_ids.len(), 1, "{expected:?}");
    let (message, ids) = with_ids[0];
    assert_eq!(*message, "remote child");
    let ids = ids.as_ref().unwrap();
    assert_eq!(
        (ids.trace_id.as_str(), ids.span_id.as_str()),
        (REMOTE_TRACE, REMOTE_SPAN)
    );
}

/// With `without_time()` and `with_level(false)` the ids open the line, still valid JSON.
#[test]
fn the_ids_open_a_line_without_time_and_level() {
    let setup = Setup {
        bare: true,
        ..Setup::default()
    };
    let (expected, lines) = run(setup, |e| scenario(e, TraceFlags::SAMPLED));
    check_relations(&expected);
    assert!(lines
        .values()
        .any(|line| line.starts_with(r#"{"trace_id":""#)));
}

#[test]
fn without_the_option_no_line_has_ids() {
    let setup = Setup {
        option: false,
        ..Setup::default()
    };
    let (expected, lines) = run(setup, |e| scenario(e, TraceFlags::SAMPLED));
    // The spans did have ids: the lines just do not show them.
    check_relations(&expected);
    assert!(lines.values().all(|line| !line.contains("trace_id")));
}

/// The option leaves text lines as they are.
#[test]
fn text_lines_do_not_change() {
    let setup = Setup {
        format: Format::Text,
        ..Setup::default()
    };
    let (_, lines) = run(setup, |e| scenario(e, TraceFlags::SAMPLED));
    assert!(lines.values().all(|line| !line.contains("trace_id")));
}

/// With no OpenTelemetry layer at all, the option writes nothing and costs no panic.
#[test]
fn without_an_opentelemetry_layer_there_are_no_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, guard) = LogSink::builder()
        .directory(tmp.path())
        .file_name(common::FILE_NAME)
        .with_opentelemetry_ids(true)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(sink);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("span").in_scope(|| tracing::info!("inside"));
    });
    guard.shutdown_blocking().unwrap();
    let lines = common::read_json_lines(&common::log_path(tmp.path()));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].get("trace_id").is_none() && lines[0].get("span_id").is_none());
}
