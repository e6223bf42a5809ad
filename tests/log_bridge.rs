//! Records from the `log` crate, bridged by `tracing-log`, come out as tracing-subscriber's JSON
//! formatter writes them: the record's own target, not tracing-log's shared `log` callsite.
//! (Its own test binary: `LogTracer` is a process-wide logger.)

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedBuf {
    type Writer = SharedBuf;
    fn make_writer(&'a self) -> SharedBuf {
        self.clone()
    }
}

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
    let theirs = String::from_utf8(reference.0.lock().unwrap().clone()).unwrap();
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
