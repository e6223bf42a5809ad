//! The sink behind tracing-subscriber's own formatter (`SinkWriter` as a `MakeWriter`), and as
//! a plain `io::Write`: every record read back from every file (rotated `.gz` ones
//! decompressed), each exactly once and whole, drops counted, late records counted.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::rotation_util;
use logsink::{Compression, LogSink, Overflow, SinkWriter};
use rotation_util::{Gunzip, ACTIVE, BASE};
use serde_json::Value;
use tracing::Dispatch;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

const THREADS: u64 = 4;

/// Files read back: `(name, decompressed content)`.
type Files = Vec<(String, Vec<u8>)>;

/// Each file of the folder in write order (rotated files by name, the active file last),
/// decompressed: `(name, content)`. Rotated files must all be `.gz` when `gzip` is set.
fn files_in_order(dir: &Path, gzip: bool) -> Files {
    let suffix = if gzip { ".log.gz" } else { ".log" };
    let mut names = rotation_util::rotated(dir, suffix);
    rotation_util::assert_folder(dir, &names, &[]);
    names.push(ACTIVE.to_owned());
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            // Both readers: flate2 for most, the system gzip for every third file.
            let gunzip = if i % 3 == 0 {
                Gunzip::System
            } else {
                Gunzip::Flate2
            };
            let bytes = rotation_util::content(&dir.join(&name), gunzip);
            (name, bytes)
        })
        .collect()
}

/// Logs `per_thread` events with `seq` from each of [`THREADS`] threads at once, into
/// `dispatch`.
fn log_from_threads(dispatch: &Dispatch, per_thread: u64) {
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (dispatch, barrier) = (dispatch.clone(), barrier.clone());
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let span = tracing::info_span!("worker", thread = t);
                    let _entered = span.enter();
                    barrier.wait();
                    for seq in 0..per_thread {
                        tracing::info!(
                            thread = t,
                            seq,
                            padding = "x".repeat((seq % 97) as usize),
                            "event"
                        );
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// tracing-subscriber's JSON formatter writing through the sink from several threads, with
/// size rotation and gzip: every event is in exactly one file, exactly once, and every line of
/// every file is one whole JSON object (a line split across two files would not parse).
#[test]
fn json_from_fmt_rotates_and_compresses_whole_records() {
    const PER_THREAD: u64 = 3_000;
    const MAX: u64 = 64 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    let (writer, guard) = LogSink::builder()
        .directory(tmp.path())
        .file_name(BASE)
        .max_file_size(MAX)
        .queue_capacity(64) // callers often find it full and wait (`Overflow::Block`)
        .compression(Compression::Gzip { level: 1 })
        .shutdown_timeout(Duration::from_secs(600))
        .build_writer()
        .unwrap();
    let fmt = tracing_subscriber::fmt::layer().json().with_writer(writer);
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(fmt));
    log_from_threads(&dispatch, PER_THREAD);
    drop(dispatch);
    let stats = guard.shutdown_blocking().unwrap();

    let emitted = THREADS * PER_THREAD;
    assert_eq!(stats.events_written, emitted, "{stats:?}");
    assert_eq!(stats.events_dropped, 0);
    assert!(stats.rotations >= 10, "{stats:?}");
    assert_eq!(stats.files_compressed, stats.rotations);

    let files = files_in_order(tmp.path(), true);
    assert_eq!(files.len() as u64, stats.rotations + 1);
    let mut seen: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut next = [0u64; THREADS as usize];
    for (name, bytes) in &files {
        assert!(bytes.len() as u64 <= MAX, "{name} is over the size limit");
        for (i, line) in common::json_lines(bytes, name).iter().enumerate() {
            // fmt's own line, as it is: its keys and its timestamp, nothing added.
            assert_eq!(line["level"], "INFO", "{name} line {}: {line}", i + 1);
            assert_eq!(line["fields"]["message"], "event");
            assert_eq!(line["span"]["name"], "worker");
            assert!(line["timestamp"].is_string());
            let thread = common::field_u64(line, "thread");
            let seq = common::field_u64(line, "seq");
            *seen.entry((thread, seq)).or_default() += 1;
            // One thread's events stay in order across files.
            assert_eq!(seq, next[thread as usize], "{name}: thread {thread}");
            next[thread as usize] += 1;
        }
    }
    assert_eq!(seen.len() as u64, emitted, "every event is there");
    assert!(seen.values().all(|&n| n == 1), "no event twice");
}

/// A `MakeWriter` that keeps each writer's bytes as one record: what the sink should have
/// received, for comparison.
#[derive(Clone, Default)]
struct Records(Arc<Mutex<Vec<Vec<u8>>>>);

struct RecordWriter {
    records: Records,
    bytes: Vec<u8>,
}

impl Write for RecordWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        self.records.0.lock().unwrap().push(bytes);
    }
}

impl<'a> MakeWriter<'a> for Records {
    type Writer = RecordWriter;
    fn make_writer(&'a self) -> RecordWriter {
        RecordWriter {
            records: self.clone(),
            bytes: Vec::new(),
        }
    }
}

/// The same formatter twice on one registry, one layer writing through the sink, the other
/// into [`Records`]; events from one thread, with spans and a message long enough that the
/// sink rotates every few records. Returns the records fmt wrote and the sink's files.
fn beside_fmt<L>(fmt: impl Fn(BoxMakeWriter) -> L, max_file_size: u64) -> (Vec<Vec<u8>>, Files)
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let tmp = tempfile::tempdir().unwrap();
    let (writer, guard) = LogSink::builder()
        .directory(tmp.path())
        .file_name(BASE)
        .max_file_size(max_file_size)
        .compression(Compression::Gzip { level: 6 })
        .shutdown_timeout(Duration::from_secs(600))
        .build_writer()
        .unwrap();
    let records = Records::default();
    let layers = vec![
        fmt(BoxMakeWriter::new(writer)).boxed(),
        fmt(BoxMakeWriter::new(records.clone())).boxed(),
    ];
    let subscriber = tracing_subscriber::registry().with(layers);
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("server", port = 8080);
        let _outer = outer.enter();
        for i in 0..300u64 {
            let request = tracing::debug_span!("request", id = i);
            let _request = request.enter();
            match i % 3 {
                0 => tracing::info!(status = 200, "served {i}"),
                1 => tracing::warn!(latency_ms = 12.5, "slow\nsecond line of the message"),
                _ => tracing::error!(error = %"connection reset", "x{}", "y".repeat(i as usize)),
            }
        }
    });
    let stats = guard.shutdown_blocking().unwrap();
    let records = std::mem::take(&mut *records.0.lock().unwrap());
    assert_eq!(stats.events_written, records.len() as u64);
    assert_eq!(stats.events_dropped, 0);
    assert!(stats.rotations >= 5, "{stats:?}");
    (records, files_in_order(tmp.path(), true))
}

/// The files hold exactly the records fmt wrote, in order, each whole in one file: every file
/// ends where a record ends.
fn assert_files_hold_records_whole(records: &[Vec<u8>], files: &[(String, Vec<u8>)]) {
    let mut records = records.iter();
    for (name, bytes) in files {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let record = records
                .next()
                .unwrap_or_else(|| panic!("{name}: more than fmt wrote"));
            assert!(
                rest.starts_with(record),
                "{name}: expected the record {:?}, found {:?}",
                String::from_utf8_lossy(record),
                String::from_utf8_lossy(&rest[..rest.len().min(record.len() + 40)])
            );
            rest = &rest[record.len()..];
        }
    }
    assert_eq!(records.count(), 0, "records missing from the files");
}

/// tracing-subscriber's default text format (without time and colours, so that both copies
/// are alike) through the sink: the files hold its lines byte for byte.
#[test]
fn text_from_fmt_is_written_as_fmt_wrote_it() {
    let (records, files) = beside_fmt(
        |w| {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .without_time()
                .with_writer(w)
        },
        4 * 1024,
    );
    assert_eq!(records.len(), 300);
    assert!(records.iter().all(|r| r.ends_with(b"\n")));
    assert_files_hold_records_whole(&records, &files);
    let first = String::from_utf8_lossy(&records[0]);
    assert!(
        first.starts_with(" INFO server{port=8080}:request{id=0}: make_writer: served 0"),
        "{first}"
    );
}

/// The pretty format writes each event over several lines: each event is one record, never
/// split across files, and is counted once.
#[test]
fn multi_line_records_from_the_pretty_format_stay_whole() {
    let (records, files) = beside_fmt(
        |w| {
            tracing_subscriber::fmt::layer()
                .pretty()
                .with_ansi(false)
                .without_time()
                .with_writer(w)
        },
        8 * 1024,
    );
    assert_eq!(records.len(), 300);
    assert!(records
        .iter()
        .all(|r| r.iter().filter(|&&b| b == b'\n').count() > 1));
    assert_files_hold_records_whole(&records, &files);
}

/// `Overflow::DropNewest` with a tiny queue: records that find it full are dropped and
/// counted, the file reports them (WARN lines from `logsink`), and written + dropped is
/// exactly what was emitted.
#[test]
fn drop_newest_counts_every_record_it_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let (writer, guard) = LogSink::builder()
        .directory(tmp.path())
        .file_name(BASE)
        .queue_capacity(2)
        .overflow(Overflow::DropNewest)
        .compression(Compression::None)
        .build_writer()
        .unwrap();
    let stats = guard.stats_handle();
    let fmt = tracing_subscriber::fmt::layer().json().with_writer(writer);
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(fmt));
    // Emit in rounds until the queue has refused some (it does within the first few rounds;
    // the bound only turns a writer that always keeps up into a failure, not a hang).
    let mut rounds = 0;
    common::wait_for("a record dropped by the full queue", || {
        if stats.get().events_dropped > 0 {
            return Some(());
        }
        log_from_threads(&dispatch, 1_000);
        rounds += 1;
        None
    });
    drop(dispatch);
    let stats = guard.shutdown_blocking().unwrap();
    let emitted = rounds * THREADS * 1_000;
    assert!(stats.events_dropped > 0);
    assert_eq!(
        stats.events_written + stats.events_dropped,
        emitted,
        "{stats:?}"
    );

    let bytes = std::fs::read(tmp.path().join(ACTIVE)).unwrap();
    let lines = common::json_lines(&bytes, ACTIVE);
    let (reports, events): (Vec<&Value>, Vec<&Value>) =
        lines.iter().partition(|l| l["target"] == "logsink");
    assert_eq!(events.len() as u64, stats.events_written);
    let reported: u64 = reports
        .iter()
        .map(|r| {
            assert_eq!(r["level"], "WARN");
            assert_eq!(r["fields"]["message"], "dropped events");
            common::field_u64(r, "dropped")
        })
        .sum();
    assert_eq!(reported, stats.events_dropped, "every drop is reported");
}

/// Once shutdown began, records (from fmt, and written directly) are counted as dropped at
/// once and reach no file; nothing blocks.
#[test]
fn records_after_shutdown_are_counted_as_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let (writer, guard) = LogSink::builder()
        .directory(tmp.path())
        .file_name(BASE)
        .build_writer()
        .unwrap();
    let mut direct = writer.clone();
    let fmt = tracing_subscriber::fmt::layer().json().with_writer(writer);
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(fmt));
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("before"));
    direct.write_all(b"before, directly\n").unwrap();
    let handle = guard.stats_handle();
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!((stats.events_written, stats.events_dropped), (2, 0));
    let before = std::fs::read(tmp.path().join(ACTIVE)).unwrap();

    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..10 {
            tracing::info!(i, "after");
        }
    });
    direct
        .write_all(b"after 1\nafter 2\nafter, partial")
        .unwrap();
    assert_eq!(handle.get().events_dropped, 12);
    drop(direct); // the partial line
    assert_eq!(handle.get().events_dropped, 13);
    assert_eq!(handle.get().events_written, 2);
    assert_eq!(std::fs::read(tmp.path().join(ACTIVE)).unwrap(), before);
}

/// As a plain `io::Write`: lines written in pieces, several in one call, a partial line sent
/// by `flush` and another by drop, each clone with a line of its own, a line larger than the
/// size limit (a file of its own): the files hold exactly the lines, each a record.
#[test]
fn plain_writes_become_one_record_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut writer, guard) = LogSink::builder()
        .directory(tmp.path())
        .file_name(BASE)
        .max_file_size(1024)
        .compression(Compression::Gzip { level: 6 })
        .build_writer()
        .unwrap();
    let mut other = writer.clone();
    writer.write_all(b"one\ntwo\nthr").unwrap();
    other.write_all(b"from the clone, ").unwrap(); // waits in the clone for its end
    writer.write_all(b"ee\n").unwrap();
    writeln!(writer, "four {}", 4).unwrap();
    writer.write_all(b"partial").unwrap();
    writer.flush().unwrap();
    writer.flush().unwrap(); // nothing more to send
    let long = "L".repeat(3000);
    writer.write_all(long.as_bytes()).unwrap();
    writer.write_all(b"\nlast, unterminated").unwrap();
    other.write_all(b"ended\n").unwrap();
    other.write_all(b"the clone's partial").unwrap();
    drop(other);
    drop(writer);
    let stats = guard.shutdown_blocking().unwrap();

    let expected = [
        "one",
        "two",
        "three",
        "four 4",
        "partial",
        "from the clone, ended",
        &long,
        "last, unterminated",
        "the clone's partial",
    ];
    assert_eq!(stats.events_written, expected.len() as u64);
    assert_eq!(stats.events_dropped, 0);
    let files = files_in_order(tmp.path(), true);
    let mut lines = Vec::new();
    for (name, bytes) in &files {
        let file_lines = common::split_lines(bytes, name);
        if file_lines.contains(&long) {
            assert_eq!(file_lines, [long.as_str()], "{name}: the long line alone");
        }
        lines.extend(file_lines);
    }
    // Lines of one writer keep their order; the clone's interleave where they were ended.
    let ours: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| !l.starts_with("from the clone") && !l.starts_with("the clone"))
        .collect();
    let ours_expected: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|l| !l.contains("clone"))
        .collect();
    assert_eq!(ours, ours_expected);
    let mut sorted_lines = lines.clone();
    sorted_lines.sort();
    let mut sorted_expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    sorted_expected.sort();
    assert_eq!(sorted_lines, sorted_expected);
}

/// Nothing is sent for a writer that was given no bytes; an empty line is a record of its
/// own, as written.
#[test]
fn empty_writers_send_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut writer, guard) = LogSink::builder()
        .directory(tmp.path())
        .file_name(BASE)
        .build_writer()
        .unwrap();
    drop(writer.make_writer());
    writer.make_writer().write_all(b"").unwrap();
    writer.write_all(b"").unwrap();
    writer.flush().unwrap();
    writer.write_all(b"\n").unwrap();
    let mut event = writer.make_writer();
    event.write_all(b"a").unwrap();
    event.flush().unwrap(); // "a\n" sent; what follows is another record
    event.write_all(b"b\n").unwrap();
    drop(event);
    drop(writer);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, 3);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(ACTIVE)).unwrap(),
        "\na\nb\n"
    );
}

/// The writer is usable wherever a `MakeWriter` is asked for, with tracing-subscriber's
/// combinators, and shuts down with the async guard method too.
#[tokio::test]
async fn combinators_and_async_shutdown() {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let tmp = tempfile::tempdir().unwrap();
    let (writer, guard): (SinkWriter, _) = LogSink::builder()
        .directory(tmp.path())
        .file_name(BASE)
        .build_writer()
        .unwrap();
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(writer.with_max_level(tracing::Level::INFO));
    let subscriber = tracing_subscriber::registry().with(fmt);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(n = 1, "kept");
        tracing::debug!(n = 2, "filtered out by the writer's level");
        tracing::error!(n = 3, "kept");
    });
    let stats = guard.shutdown().await.unwrap();
    assert_eq!(stats.events_written, 2);
    let bytes = std::fs::read(tmp.path().join(ACTIVE)).unwrap();
    let lines = common::json_lines(&bytes, ACTIVE);
    let ns: Vec<u64> = lines.iter().map(|l| common::field_u64(l, "n")).collect();
    assert_eq!(ns, [1, 3]);
}
