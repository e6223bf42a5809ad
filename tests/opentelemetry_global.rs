//! `Builder::with_opentelemetry_ids` (feature `opentelemetry`) with the sink installed as the
//! global default subscriber, as a program installs it (tracing's fast path: no scoped
//! dispatcher anywhere), and with an event emitted from inside the sink's own lookup.
//!
//! A process has one global subscriber, so each test runs in a child process: it starts the
//! test binary again as a child that runs only this test, which then takes its child part
//! (see `common::child`). The child checks its own file and the parent checks that it
//! succeeded within a deadline (a deadlock fails, not hangs).
#![cfg(feature = "opentelemetry")]

mod common;

use std::path::Path;
use std::thread;
use std::time::Duration;

use common::child::{self, ChildRun};
use logsink::{LogSink, SinkGuard};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use serde_json::Value;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::prelude::*;

/// Runs `test` again in a child process, which takes the child part `part` on its folder, and
/// fails with the child's output unless it succeeds within the deadline.
fn in_a_child(test: &str, part: fn(&Path)) {
    if let Some(dir) = child::folder(test) {
        return part(&dir);
    }
    let run = ChildRun::new();
    let mut child = run.spawn(test);
    let status = run.wait(&mut child);
    let output = run.output();
    assert!(
        status.success(),
        "{test}: the child failed ({status}):\n{output}"
    );
    assert!(output.contains("1 passed"), "{test}: the child ran no test");
}

/// The ids of `span`'s OpenTelemetry context as the line must carry them.
fn ids_of(span: &Span) -> (String, String) {
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    assert!(sc.is_valid());
    (
        format!("{:032x}", sc.trace_id()),
        format!("{:016x}", sc.span_id()),
    )
}

/// Installs a sink with the option on and tracing-opentelemetry's layer with `provider`'s
/// tracer as the global default subscriber.
fn install(dir: &Path, provider: &SdkTracerProvider, context_activation: bool) -> SinkGuard {
    let (sink, guard) = LogSink::builder()
        .directory(dir)
        .file_name(common::FILE_NAME)
        .with_opentelemetry_ids(true)
        .build()
        .unwrap();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("logsink-test"))
        .with_context_activation(context_activation);
    tracing_subscriber::registry()
        .with(otel)
        .with(sink)
        .try_init()
        .unwrap();
    guard
}

/// The file's lines in order, each as its message and its ids (if any).
fn messages_and_ids(dir: &Path) -> Vec<(String, Option<(String, String)>)> {
    common::read_json_lines(&common::log_path(dir))
        .into_iter()
        .map(|line: Value| {
            let message = line["fields"]["message"].as_str().unwrap().to_owned();
            let ids = line.get("trace_id").map(|trace| {
                let span = line["span_id"].as_str().unwrap().to_owned();
                (trace.as_str().unwrap().to_owned(), span)
            });
            (message, ids)
        })
        .collect()
}

/// Spans at the root, nested, with a remote parent and on another thread: each event carries
/// its span's ids, and the event outside any span none.
#[test]
fn global_subscriber() {
    in_a_child("global_subscriber", global_subscriber_in_the_child);
}

fn global_subscriber_in_the_child(dir: &Path) {
    let provider = SdkTracerProvider::builder().build();
    let guard = install(dir, &provider, true);

    tracing::info!("outside");
    let (root, child) = tracing::info_span!("root").in_scope(|| {
        tracing::info!("in root");
        let child = tracing::info_span!("child").in_scope(|| {
            tracing::info!("in child");
            ids_of(&Span::current())
        });
        (ids_of(&Span::current()), child)
    });
    let remote = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let server = tracing::info_span!("server");
    server
        .set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
        .unwrap();
    let remote_child = server.in_scope(|| {
        tracing::info!("remote child");
        ids_of(&Span::current())
    });
    let worker = thread::spawn(|| {
        tracing::info_span!("worker").in_scope(|| {
            tracing::info!("on another thread");
            ids_of(&Span::current())
        })
    })
    .join()
    .unwrap();

    guard.shutdown_blocking().unwrap();
    provider.shutdown().unwrap();
    assert_eq!(child.0, root.0);
    assert_eq!(remote_child.0, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        messages_and_ids(dir),
        [
            ("outside".to_owned(), None),
            ("in root".to_owned(), Some(root)),
            ("in child".to_owned(), Some(child)),
            ("remote child".to_owned(), Some(remote_child)),
            ("on another thread".to_owned(), Some(worker)),
        ]
    );
}

/// A span processor that emits an event as each span starts, as one with diagnostics might.
#[derive(Debug)]
struct LogOnStart;

impl SpanProcessor for LogOnStart {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {
        tracing::info!("span started");
    }

    fn on_end(&self, _span: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Without context activation the sink's lookup is what starts the span, so the processor's
/// event comes from inside it, with tracing-opentelemetry's lock on the span held: that event
/// gets no ids (looking them up would wait for that lock forever), the next one does.
#[test]
fn event_during_the_lookup() {
    in_a_child(
        "event_during_the_lookup",
        event_during_the_lookup_in_the_child,
    );
}

fn event_during_the_lookup_in_the_child(dir: &Path) {
    let provider = SdkTracerProvider::builder()
        .with_span_processor(LogOnStart)
        .build();
    let guard = install(dir, &provider, false);

    let span = tracing::info_span!("request");
    span.in_scope(|| {
        tracing::info!("first");
        tracing::info!("second");
    });
    let ids = ids_of(&span);

    guard.shutdown_blocking().unwrap();
    provider.shutdown().unwrap();
    assert_eq!(
        messages_and_ids(dir),
        [
            ("span started".to_owned(), None),
            ("first".to_owned(), Some(ids.clone())),
            ("second".to_owned(), Some(ids)),
        ]
    );
}
