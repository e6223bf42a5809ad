//! A text sink and a JSON sink in one process: on one registry (in both orders), and on two
//! separate subscribers. Each sink's lines must be exactly what tracing-subscriber writes for
//! the same events in its format (timestamps aside), span fields recorded after creation
//! included, whatever the other sink does: no state of one sink leaks into the other.

mod common;

use common::SharedBuf;
use logsink::{Format, LogSink, SinkGuard};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

/// Events emitted by [`emit`].
const EVENTS: u64 = 7;

/// Spans with fields, nested, one recorded after creation (twice, with an event between), an
/// event with an explicit parent, and events inside and outside the spans.
fn emit() {
    tracing::info!(answer = 42, "outside");
    let outer = tracing::info_span!(
        "outer",
        id = 7u64,
        user = "ada",
        late = tracing::field::Empty
    );
    let _outer = outer.enter();
    tracing::info!("in outer");
    let inner = tracing::info_span!("inner", table = "items");
    {
        let _inner = inner.enter();
        tracing::warn!(rows = 3, "in inner, before the record");
        // Recorded after creation, while a child is entered: the cached span parts must be
        // rendered again for both sinks.
        outer.record("late", "first");
        tracing::warn!(rows = 4, "in inner, after the record");
        outer.record("late", 2.5);
        inner.record("table", "orders");
    }
    tracing::info!("in outer again");
    tracing::error!(parent: &inner, code = 500, "explicit parent");
    drop(_outer);
    tracing::info!("outside again");
}

fn sink(dir: &std::path::Path, format: Format) -> (logsink::SinkLayer, SinkGuard) {
    LogSink::builder()
        .directory(dir)
        .format(format)
        .build()
        .unwrap()
}

fn text_reference(buf: &SharedBuf) -> impl tracing_subscriber::Layer<tracing_subscriber::Registry> {
    tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(buf.clone())
}

/// Checks a text sink's file against tracing-subscriber's text output, line by line, without
/// the timestamps.
fn check_text(dir: &std::path::Path, reference: &SharedBuf) {
    let ours = common::read_lines(&common::log_path(dir));
    let theirs: Vec<String> = reference.text().lines().map(str::to_owned).collect();
    assert_eq!(ours.len() as u64, EVENTS, "{ours:#?}");
    assert_eq!(theirs.len() as u64, EVENTS, "{theirs:#?}");
    for (ours, theirs) in ours.iter().zip(&theirs) {
        let cut = |line: &str| {
            let (stamp, rest) = line.split_once(' ').unwrap();
            assert_eq!(stamp.len(), 27, "{line}");
            rest.to_owned()
        };
        assert_eq!(cut(ours), cut(theirs));
    }
    let recorded = ours.iter().filter(|l| l.contains("late=2.5")).count();
    assert_eq!(
        recorded, 2,
        "the last record shows once per line: {ours:#?}"
    );
}

/// Parses every line of a JSON sink's file and compares it with tracing-subscriber's JSON
/// output for the same events, without the timestamps.
fn check_json(dir: &std::path::Path, reference: &SharedBuf) {
    let ours = common::read_json_lines(&common::log_path(dir));
    let theirs: Vec<serde_json::Value> = reference
        .text()
        .lines()
        .map(|line| common::parse_line(line, "reference"))
        .collect();
    assert_eq!(ours.len() as u64, EVENTS);
    assert_eq!(theirs.len() as u64, EVENTS);
    for (ours, theirs) in ours.iter().zip(&theirs) {
        let cut = |value: &serde_json::Value| {
            let mut value = value.clone();
            common::check_timestamp(value["timestamp"].as_str().unwrap()).unwrap();
            value.as_object_mut().unwrap().remove("timestamp");
            value
        };
        assert_eq!(cut(ours), cut(theirs));
    }
    let after_record = &ours[3];
    assert_eq!(after_record["spans"][0]["late"], "first", "{after_record}");
    assert_eq!(ours[4]["span"]["late"], 2.5);
    assert_eq!(ours[4]["spans"][0]["late"], 2.5);
}

fn shut_down(guard: SinkGuard) {
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!((stats.events_written, stats.events_dropped), (EVENTS, 0));
}

/// One registry with a text sink and a JSON sink, in both orders, beside tracing-subscriber's
/// text and JSON formatters: both sinks write what tracing-subscriber writes.
#[test]
fn a_text_and_a_json_sink_on_one_registry() {
    for text_first in [true, false] {
        let text_dir = tempfile::tempdir().unwrap();
        let json_dir = tempfile::tempdir().unwrap();
        let (text, text_guard) = sink(text_dir.path(), Format::Text);
        let (json, json_guard) = sink(json_dir.path(), Format::Json);
        let (text_ref, json_ref) = (SharedBuf::default(), SharedBuf::default());
        let references = text_reference(&text_ref).and_then(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(json_ref.clone()),
        );
        let dispatch = if text_first {
            Dispatch::new(
                tracing_subscriber::registry()
                    .with(references)
                    .with(text)
                    .with(json),
            )
        } else {
            Dispatch::new(
                tracing_subscriber::registry()
                    .with(references)
                    .with(json)
                    .with(text),
            )
        };
        tracing::dispatcher::with_default(&dispatch, emit);
        drop(dispatch);
        shut_down(text_guard);
        shut_down(json_guard);
        check_text(text_dir.path(), &text_ref);
        check_json(json_dir.path(), &json_ref);
    }
}

/// Two text sinks on one registry: a recorded field is appended to the span's text once, not
/// once per sink.
#[test]
fn two_text_sinks_on_one_registry() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_guard) = sink(a_dir.path(), Format::Text);
    let (b, b_guard) = sink(b_dir.path(), Format::Text);
    let reference = SharedBuf::default();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(text_reference(&reference))
            .with(a)
            .with(b),
    );
    tracing::dispatcher::with_default(&dispatch, emit);
    drop(dispatch);
    shut_down(a_guard);
    shut_down(b_guard);
    check_text(a_dir.path(), &reference);
    check_text(b_dir.path(), &reference);
}

/// A text sink and a JSON sink on two separate subscribers, used at once from two threads:
/// each writes what tracing-subscriber writes on its own subscriber.
#[test]
fn a_text_and_a_json_sink_on_separate_subscribers() {
    let text_dir = tempfile::tempdir().unwrap();
    let json_dir = tempfile::tempdir().unwrap();
    // The JSON sink is built after the text sink, so that a text sink exists in the process
    // before it and all its spans.
    let (text, text_guard) = sink(text_dir.path(), Format::Text);
    let (json, json_guard) = sink(json_dir.path(), Format::Json);
    let (text_ref, json_ref) = (SharedBuf::default(), SharedBuf::default());
    let text_dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(text_reference(&text_ref))
            .with(text),
    );
    let json_dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(json_ref.clone()),
            )
            .with(json),
    );
    let threads = [text_dispatch, json_dispatch].map(|dispatch| {
        std::thread::spawn(move || tracing::dispatcher::with_default(&dispatch, emit))
    });
    for thread in threads {
        thread.join().unwrap();
    }
    shut_down(text_guard);
    shut_down(json_guard);
    check_text(text_dir.path(), &text_ref);
    check_json(json_dir.path(), &json_ref);
}
