//! [`SinkWriter`]: the sink behind a formatter of the user's choice, as a
//! `tracing_subscriber::fmt::MakeWriter` and as a plain [`io::Write`].
//!
//! The caller formats (tracing-subscriber's `fmt` layer, or any code that writes bytes); the
//! sink takes the finished bytes as one record. A record goes the way a layer's event goes:
//! a recycled buffer from the pool, the same queue under the same overflow policy, the same
//! counters, rotation between records, compression and retention. The writer thread copies
//! the record's bytes into the file as they are (see `Record::raw`).
//!
//! The caller's end of the queue (sender, buffer pool, counters, overflow policy, clock) is a
//! [`SinkLayer`]'s: a `SinkWriter` holds one, never installed in a subscriber, and hands its
//! records to its `Sender` (`handoff::sender`).

use std::fmt;
use std::io;
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

use crate::caller::clock::Stamp;
use crate::handoff::record::Record;
use crate::{Builder, Error, SinkGuard, SinkLayer};

impl Builder {
    /// Builds the sink like [`build`](Builder::build) (same checks, same start-up, same
    /// errors) and returns a [`SinkWriter`] in place of the layer: a
    /// `tracing_subscriber::fmt::MakeWriter` for a formatter of your choice, which then gets
    /// the sink's queue, rotation, compression, retention and counted drops.
    ///
    /// The formatter decides what a line holds: [`format`](Builder::format) only shapes the
    /// line that reports drops (`Overflow::DropNewest`), and
    /// [`with_thread_names`](Builder::with_thread_names) and
    /// [`with_file_and_line`](Builder::with_file_and_line) do nothing here (tracing-subscriber's
    /// own `with_thread_names`, `with_file` and `with_line_number` do). Every other setting
    /// applies as to the layer.
    ///
    /// ```
    /// use tracing_subscriber::prelude::*;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// # let dir = tmp.path().join("logs");
    /// let (writer, guard) = logsink::LogSink::builder()
    ///     .directory(&dir)
    ///     .max_file_size(64 * 1024 * 1024)
    ///     .build_writer()?;
    /// let fmt = tracing_subscriber::fmt::layer().json().with_writer(writer);
    ///
    /// tracing::subscriber::with_default(tracing_subscriber::registry().with(fmt), || {
    ///     tracing::info!(status = 200, "done");
    /// });
    ///
    /// let stats = guard.shutdown_blocking()?;
    /// assert_eq!(stats.events_written, 1);
    /// let text = std::fs::read_to_string(dir.join("app.log"))?;
    /// assert!(text.contains(r#""fields":{"message":"done","status":200}"#));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`build`](Builder::build).
    pub fn build_writer(self) -> Result<(SinkWriter, SinkGuard), Error> {
        let (layer, guard) = self.build()?;
        Ok((SinkWriter::new(layer), guard))
    }
}

/// The sink as a [`MakeWriter`] for tracing-subscriber's `fmt` layer (or any formatter that
/// takes one), and as a plain [`io::Write`]. From [`Builder::build_writer`], with its
/// [`SinkGuard`].
///
/// # As a `MakeWriter`
///
/// `fmt::layer().with_writer(writer)` formats each event on the calling thread and writes it
/// into the [`EventWriter`] that [`make_writer`](MakeWriter::make_writer) returns. Everything
/// written into one `EventWriter` is one record, sent to the sink when the `EventWriter` is
/// dropped (or [flushed](io::Write::flush)): it is queued as the layer queues an event (the
/// same [`overflow`](crate::Builder::overflow) policy, drops counted in
/// [`Stats::events_dropped`](crate::Stats::events_dropped) and reported in the file), and
/// written to the file as it is, whole: rotation happens only between records, so no record
/// is split across files. A record that does not end with `\n` gets one; an `EventWriter`
/// that was given no bytes sends nothing. Each record counts as one event in
/// [`Stats`](crate::Stats).
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("logs");
/// let (writer, guard) = logsink::LogSink::builder().directory(&dir).build_writer()?;
/// let fmt = tracing_subscriber::fmt::layer()
///     .with_ansi(false) // a file, not a terminal
///     .with_writer(writer);
///
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(fmt), || {
///     tracing::warn!(attempt = 2, "retrying");
/// });
///
/// guard.shutdown_blocking()?;
/// let text = std::fs::read_to_string(dir.join("app.log"))?;
/// assert!(text.contains(" WARN ") && text.ends_with(": retrying attempt=2\n"));
/// # Ok(()) }
/// ```
///
/// # As an `io::Write`
///
/// Writing into a `SinkWriter` itself (`write_all`, `writeln!`) sends lines: each
/// `\n`-terminated line becomes one record as soon as its `\n` is written. The bytes of a
/// line not yet ended wait in this value (each clone has its own) until its `\n` comes, or
/// until [`flush`](io::Write::flush) or drop, which send them as a line with `\n` appended.
/// `flush` hands lines to the sink, not to the operating system: that is
/// [`SinkGuard::flush`]'s work.
///
/// ```
/// use std::io::Write;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("logs");
/// let (mut writer, guard) = logsink::LogSink::builder().directory(&dir).build_writer()?;
/// writer.write_all(b"first line\nsecond ")?;
/// writer.write_all(b"line\nno newline yet")?;
/// writer.flush()?; // the partial line is sent, as "no newline yet\n"
///
/// let stats = guard.shutdown_blocking()?;
/// assert_eq!(stats.events_written, 3);
/// let text = std::fs::read_to_string(dir.join("app.log"))?;
/// assert_eq!(text, "first line\nsecond line\nno newline yet\n");
/// # Ok(()) }
/// ```
///
/// # Either way
///
/// - Writes never fail and never reach the caller as errors, as with the layer: a record
///   refused by a full queue under [`Overflow::DropNewest`](crate::Overflow::DropNewest), or
///   sent once shutdown began, is counted as dropped.
/// - Records are written as they are: no timestamp is added and nothing is escaped. The
///   record's time (read when its first byte is written) decides time rotation.
/// - The caller pays for the formatting (as with `tracing-appender`'s writer), then one copy
///   of the bytes into a recycled buffer: in steady state a record allocates nothing.
/// - Cloning is cheap: clones share the sink.
pub struct SinkWriter {
    sink: Arc<SinkLayer>,
    /// The line being written through `io::Write` on this value.
    line: Pending,
}

impl SinkWriter {
    fn new(layer: SinkLayer) -> SinkWriter {
        SinkWriter {
            sink: Arc::new(layer),
            line: Pending::default(),
        }
    }
}

impl Clone for SinkWriter {
    /// Another writer on the same sink, with a line buffer of its own (empty).
    fn clone(&self) -> SinkWriter {
        SinkWriter {
            sink: self.sink.clone(),
            line: Pending::default(),
        }
    }
}

impl fmt::Debug for SinkWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkWriter")
            .field("overflow", &self.sink.sender.overflow())
            .field("pending_line_bytes", &self.line.buf.len())
            .finish_non_exhaustive()
    }
}

impl<'a> MakeWriter<'a> for SinkWriter {
    type Writer = EventWriter<'a>;

    /// A writer for one record. Takes nothing from the pool until the first byte comes.
    #[inline]
    fn make_writer(&'a self) -> EventWriter<'a> {
        EventWriter {
            sink: &self.sink,
            record: Pending::default(),
        }
    }
}

impl io::Write for SinkWriter {
    /// Takes all of `bytes`: each line they end is sent as a record, the rest waits for its
    /// `\n` (or `flush`, or drop).
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<usize> {
        let len = bytes.len();
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(end + 1);
            self.line.push(&self.sink, line);
            self.line.send(&self.sink);
            bytes = rest;
        }
        self.line.push(&self.sink, bytes);
        Ok(len)
    }

    /// Sends the line not yet ended, if any, with `\n` appended.
    fn flush(&mut self) -> io::Result<()> {
        self.line.send(&self.sink);
        Ok(())
    }
}

impl Drop for SinkWriter {
    /// Sends the line not yet ended, if any, with `\n` appended.
    fn drop(&mut self) {
        self.line.send(&self.sink);
    }
}

/// One record being written: what [`SinkWriter`]'s
/// [`make_writer`](MakeWriter::make_writer) returns. Everything written into it is sent as one
/// record when it is dropped or [flushed](io::Write::flush) (see [`SinkWriter`]).
pub struct EventWriter<'a> {
    sink: &'a SinkLayer,
    record: Pending,
}

impl fmt::Debug for EventWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWriter")
            .field("bytes", &self.record.buf.len())
            .finish_non_exhaustive()
    }
}

impl io::Write for EventWriter<'_> {
    /// Takes all of `bytes` into the record.
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.record.push(self.sink, bytes);
        Ok(bytes.len())
    }

    /// Sends what was written so far as a record (with `\n` appended if it does not end with
    /// one); what is written after goes into a new record.
    fn flush(&mut self) -> io::Result<()> {
        self.record.send(self.sink);
        Ok(())
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        self.record.send(self.sink);
    }
}

/// The bytes of a record not yet sent, in a buffer from the sink's pool, and when its first
/// byte came.
#[derive(Debug, Default)]
struct Pending {
    /// Empty, with no capacity, until the first byte: only a record that is written takes a
    /// buffer.
    buf: Vec<u8>,
    time: Stamp,
}

impl Pending {
    #[inline]
    fn push(&mut self, sink: &SinkLayer, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.buf.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf = sink.sender.buffer();
            }
            self.time = sink.clock.stamp();
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Sends the bytes as one record ending in `\n`; nothing if there are none. After
    /// shutdown began the record is counted as dropped (and its buffer kept for the next).
    fn send(&mut self, sink: &SinkLayer) {
        if self.buf.is_empty() {
            return;
        }
        // As the layer checks before each event (see `Sender::accepting`).
        if !sink.sender.accepting() {
            self.buf.clear();
            return;
        }
        if self.buf.last() != Some(&b'\n') {
            self.buf.push(b'\n');
        }
        sink.sender
            .send(Record::raw(std::mem::take(&mut self.buf), self.time));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::caller::clock::{Clock, MockClock};
    use crate::faults::Faults;
    use crate::{Compression, LogSink, Period};

    fn files(dir: &std::path::Path) -> Vec<(String, String)> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let text = std::fs::read_to_string(dir.join(&n)).unwrap();
                (n, text)
            })
            .collect()
    }

    /// A record of several lines (a formatter that writes one event over several) that a
    /// write cuts short counts as written only once its last line is: the lines inside it
    /// are not taken for events, and the count stays exact when the write is retried.
    #[test]
    fn a_write_cut_inside_a_record_of_several_lines_counts_whole_records() {
        let tmp = tempfile::tempdir().unwrap();
        let faults = Arc::new(Faults::default());
        let (writer, guard) = LogSink::builder()
            .directory(tmp.path())
            .flush_interval(Duration::from_secs(3_600))
            .faults(faults.clone())
            .build_writer()
            .unwrap();
        let record = |i: usize| format!("record {i} head\n  line a\n  line b\n");
        for i in 0..3 {
            writer
                .make_writer()
                .write_all(record(i).as_bytes())
                .unwrap();
        }
        // The disk takes the first record and two lines of the second, then fails.
        let cut = record(0).len() + "record 1 head\n  line a\n".len();
        faults
            .cut_next_write
            .store(cut, std::sync::atomic::Ordering::Relaxed);
        assert!(guard.flush_blocking().is_err());
        let stats = guard.stats();
        assert_eq!(stats.events_written, 1, "{stats:?}");
        assert_eq!(stats.write_errors, 1);
        guard.flush_blocking().unwrap();
        assert_eq!(guard.stats().events_written, 3);
        drop(writer);
        let stats = guard.shutdown_blocking().unwrap();
        assert_eq!((stats.events_written, stats.events_dropped), (3, 0));
        let all: String = (0..3).map(record).collect();
        assert_eq!(files(tmp.path()), [("app.log".to_owned(), all)]);
    }

    /// A record's time is the clock's when its first byte was written, and it decides time
    /// rotation as an event's does: records stay whole, each in its period's file.
    #[test]
    fn records_rotate_by_their_own_time() {
        let tmp = tempfile::tempdir().unwrap();
        let start = UNIX_EPOCH + Duration::from_secs(1_795_962_360); // 2026-11-29T14:26:00Z
        let clock = MockClock::new(start);
        let (layer, guard) = LogSink::builder()
            .directory(tmp.path())
            .rotate_every(Period::Minute)
            .compression(Compression::None)
            .build_with_clock(Clock::Mock(clock.clone()))
            .unwrap();
        let mut writer = SinkWriter::new(layer);
        writer.write_all(b"first\n").unwrap();
        let mut late = writer.make_writer();
        late.write_all(b"begun in the first minute, ").unwrap();
        guard.flush_blocking().unwrap();
        clock.advance(Duration::from_secs(61));
        late.write_all(b"ended in the second").unwrap();
        drop(late);
        writer.write_all(b"second\n").unwrap();
        drop(writer);
        guard.shutdown_blocking().unwrap();
        assert_eq!(
            files(tmp.path()),
            [
                (
                    "app.20261129T142600Z.000000.log".to_owned(),
                    "first\nbegun in the first minute, ended in the second\n".to_owned()
                ),
                ("app.log".to_owned(), "second\n".to_owned()),
            ]
        );
    }
}
