//! `Builder::with_opentelemetry_ids` (feature `opentelemetry`) with the sink installed as the
//! global default subscriber, as a program installs it (tracing's fast path: no scoped
//! dispatcher anywhere), and with an event emitted from inside the sink's own lookup.
//!
//! A process has one global subscriber, so each case runs in a child process: the test binary
//! runs itself with [`CASE_ENV`] naming the case, and only the child test of that name does
//! anything (in a normal run the child tests return at once). The child checks its own file
//! and the parent checks that it succeeded within a deadline (a deadlock fails, not hangs).
#![cfg(feature = "opentelemetry")]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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

/// Set only in a child: which case it runs.
const CASE_ENV: &str = "LOGSINK_OTEL_GLOBAL_CASE";

/// How long a child may take before the parent fails it.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the child test `test` in a child process and fails with its output unless it succeeds.
fn run_child(test: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CASE_ENV, test)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHILD_DEADLINE {
            // Stuck (a deadlock): end it, then fail.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{test}: the child did not finish within {CHILD_DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        status.success(),
        "{test}: the child failed ({status}):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "{test}: the child ran no test");
}

/// Whether this process is the child for `test`.
fn is_child(test: &str) -> bool {
    std::env::var(CASE_ENV).as_deref() == Ok(test)
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

#[test]
fn global_subscriber() {
    run_child("child_global_subscriber");
}

#[test]
fn child_global_subscriber() {
    if !is_child("child_global_subscriber") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let provider = SdkTracerProvider::builder().build();
    let guard = install(tmp.path(), &provider, true);

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
        messages_and_ids(tmp.path()),
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
    run_child("child_event_during_the_lookup");
}

#[test]
fn child_event_during_the_lookup() {
    if !is_child("child_event_during_the_lookup") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(LogOnStart)
        .build();
    let guard = install(tmp.path(), &provider, false);

    let span = tracing::info_span!("request");
    span.in_scope(|| {
        tracing::info!("first");
        tracing::info!("second");
    });
    let ids = ids_of(&span);

    guard.shutdown_blocking().unwrap();
    provider.shutdown().unwrap();
    assert_eq!(
        messages_and_ids(tmp.path()),
        [
            ("span started".to_owned(), None),
            ("first".to_owned(), Some(ids.clone())),
            ("second".to_owned(), Some(ids)),
        ]
    );
}
