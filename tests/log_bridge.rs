//! Records from the `log` crate, bridged by `tracing-log`, come out as tracing-subscriber's JSON
//! formatter writes them: the record's own target, not tracing-log's shared `log` callsite.
//! (Its own test binary: `LogTracer` is a process-wide logger.)

mod common;

use common::SharedBuf;

use tracing_subscriber::prelude::*;

/// `log` records bridged by tracing-log match tracing-subscriber's JSON, each with the record's
/// own target (the module path when none is given) and level, inside a span too.
#[test]
fn log_records_match_the_reference_formatter() {
    tracing_log::LogTracer::init().unwrap();
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
