//! Records from the `log` crate, bridged by `tracing-log`, come out as tracing-subscriber's JSON
//! formatter writes them: the record's own target, not tracing-log's shared `log` callsite.
//! (Its own test binary: `LogTracer` is a process-wide logger.)

mod common;
#[path = "common/options.rs"]
mod options;

use common::SharedBuf;
use options::Opts;

use tracing_subscriber::prelude::*;

/// Installs tracing-log's `LogTracer` once for the whole binary.
fn init_log_tracer() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| tracing_log::LogTracer::init().unwrap());
}

/// `log` records bridged by tracing-log match tracing-subscriber's JSON, each with the record's
/// own target (the module path when none is given) and level, inside a span too.
#[test]
fn log_records_match_the_reference_formatter() {
    init_log_tracer();
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir.path())
        .build()
        .unwrap();
    let reference = SharedBuf::default();
    let subscriber = tracing_subscriber::registry().with(layer).with(
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(reference.clone()),
    );
    tracing::subscriber::with_default(subscriber, || {
        log::info!(target: "legacy::db", "connected to {}", "primary");
        log::warn!("pool at {}%", 95);
        let span = tracing::info_span!("request", id = 3);
        let _entered = span.enter();
        log::error!(target: "legacy::http", "status {}", 503);
    });
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, 3);

    let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    let theirs = reference.text();
    let parse = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|line| {
                let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                value.as_object_mut().unwrap().remove("timestamp");
                value
            })
            .collect()
    };
    let (ours, theirs) = (parse(&ours), parse(&theirs));
    assert_eq!(ours.len(), 3);
    assert_eq!(ours, theirs);
    assert_eq!(ours[0]["target"], "legacy::db");
    assert_eq!(ours[1]["target"], "log_bridge");
    assert_eq!(ours[2]["level"], "ERROR");
}

/// With options, `log` records show the record's own file and line where tracing-subscriber
/// shows them (it reads them from tracing-log's `log.file` and `log.line`), in JSON and in
/// text, flattened or not, with thread ids (padded in text below 10: `ThreadId(02)`).
#[test]
fn log_records_with_options_match_the_reference_formatter() {
    init_log_tracer();
    let d = Opts::DEFAULT;
    let sets = [
        Opts {
            file: true,
            line_number: true,
            thread_ids: true,
            ..d
        },
        Opts {
            flatten_event: true,
            file: true,
            target: false,
            ..d
        },
        Opts {
            line_number: true,
            time: false,
            ..Opts::ALL_OFF
        },
    ];
    for (opts, format) in sets
        .into_iter()
        .flat_map(|opts| [(opts, logsink::Format::Json), (opts, logsink::Format::Text)])
    {
        let dir = tempfile::tempdir().unwrap();
        let builder = logsink::LogSink::builder()
            .directory(dir.path())
            .format(format);
        let (layer, guard) = opts.apply(builder).build().unwrap();
        let reference = SharedBuf::default();
        let fmt = match format {
            logsink::Format::Json => opts.fmt_json(reference.clone()),
            _ => opts.fmt_text(reference.clone()),
        };
        let subscriber = tracing_subscriber::registry().with(layer).with(fmt);
        tracing::subscriber::with_default(subscriber, || {
            log::info!(target: "legacy::db", "connected to {}", "primary");
            let span = tracing::info_span!("request", id = 3);
            let _entered = span.enter();
            log::warn!("pool at {}%", 95);
            tracing::info!(n = 1, "a tracing event beside them");
        });
        let stats = guard.shutdown_blocking().unwrap();
        assert_eq!(stats.events_written, 3);
        let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
        let theirs = reference.text();
        // Timestamps (the first member, or the first word) removed.
        let strip = |line: &str| -> String {
            match (format, opts.time) {
                (_, false) => line.to_owned(),
                (logsink::Format::Json, true) => {
                    let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                    value.as_object_mut().unwrap().remove("timestamp");
                    value.to_string()
                }
                _ => line.split_once(' ').unwrap().1.to_owned(),
            }
        };
        let ours: Vec<String> = ours.lines().map(strip).collect();
        let theirs: Vec<String> = theirs.lines().map(strip).collect();
        assert_eq!(ours, theirs, "{opts:?} {format:?}");
        if opts.file && format == logsink::Format::Json && !opts.flatten_event {
            let first: serde_json::Value = serde_json::from_str(&ours[0]).unwrap();
            assert_eq!(first["filename"], "tests/log_bridge.rs", "{first}");
            assert!(first["line_number"].is_u64(), "{first}");
        }
        let id = format!("{:?}", std::thread::current().id());
        if opts.thread_ids && format == logsink::Format::Text && id.len() == "ThreadId(2)".len() {
            let padded = id.replace('(', "(0");
            assert!(ours[0].contains(&padded), "{}", ours[0]);
        }
    }
}
