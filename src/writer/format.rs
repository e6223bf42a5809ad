//! Turning a [`Record`] into one line (writer side), in the sink's [`Format`].
//!
//! JSON key order follows `tracing_subscriber::fmt::layer().json()`: `timestamp`, `level`,
//! `trace_id` and `span_id` (the `opentelemetry` feature's option, inside a span), `fields` (or
//! the fields themselves, flattened), `target`, `filename`, `line_number`, then `span` and
//! `spans` when the event is inside one, then `threadName` and `threadId`, each as its option
//! says. The text format follows tracing-subscriber's default (full) format without colours.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::SystemTime;

use time::UtcOffset;
use tracing::Level;

use crate::calendar::{self, DateTime, Layout};
use crate::handoff::fields::{log_meta, LogMeta};
use crate::handoff::record::Record;
use crate::json::{write_int, write_str_bytes};
use crate::writer::fields::{fields_to_json, fields_to_text, JsonCallsite};

/// How each event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// One JSON object per line, the same JSON value as
    /// `tracing_subscriber::fmt::layer().json()` writes, also with its options (see
    /// [`Builder`](crate::Builder)). The default.
    #[default]
    Json,
    /// One human-readable line per event, like tracing-subscriber's default (full) format
    /// without colours:
    /// `2026-11-24T14:26:18.169272Z  INFO request{id=7}: my_app::http: served status=200`.
    ///
    /// Messages and error texts have ESC, BEL, BS, FF, DEL and C1 controls escaped (`\x1b`,
    /// `\u{9b}`), as tracing-subscriber (0.3.20 and later) escapes them; like it, other `Debug`
    /// and `Display` values, targets and span names are written as they are.
    ///
    /// A span gets its text form when a text sink sees it created (JSON sinks skip that
    /// work): a span created before the sink was added to a running subscriber (e.g. through
    /// `reload`) shows its name without its fields.
    Text,
}

/// What the writer puts in each line besides the event's fields and the caller's span and
/// thread parts: tracing-subscriber's options of the same names, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineOptions {
    /// JSON: the fields as members of the line's object, not under `"fields"`.
    pub(crate) flatten_event: bool,
    pub(crate) target: bool,
    pub(crate) level: bool,
    /// The source file (`filename`).
    pub(crate) file: bool,
    /// The source line (`line_number`).
    pub(crate) line_number: bool,
    /// The timestamp (off: tracing-subscriber's `without_time`).
    pub(crate) time: bool,
    /// The offset timestamps are written in.
    pub(crate) offset: UtcOffset,
}

impl Default for LineOptions {
    fn default() -> Self {
        LineOptions {
            flatten_event: false,
            target: true,
            level: true,
            file: false,
            line_number: false,
            time: true,
            offset: UtcOffset::UTC,
        }
    }
}

/// Formats records into lines, caching the date-time text of the current second.
#[derive(Debug)]
pub(crate) struct LineFormatter {
    /// The whole second (UTC) `prefix` was made for, if any.
    cached_second: Option<i64>,
    /// `"YYYY-MM-DDTHH:MM:SS.` for `cached_second`, in the timestamps' offset.
    prefix: Vec<u8>,
    /// What follows the microseconds: `Z`, or the offset as `+HH:MM`.
    suffix: Vec<u8>,
    format: Format,
    options: LineOptions,
    /// Each callsite's JSON keys and target, by the address of its (`'static`) metadata: a
    /// program has a fixed set of callsites, so this stops growing (and is emptied at
    /// [`MAX_CALLSITES`], should some library leak fresh metadata for every event).
    callsites: HashMap<usize, JsonCallsite, BuildHasherDefault<AddressHasher>>,
}

/// The most callsites [`LineFormatter`] keeps rendered at once: far more than a program has.
const MAX_CALLSITES: usize = 16_384;

/// Hashes an address with one multiplication (Fibonacci hashing). The default SipHash would
/// cost more than the escaping the callsite cache saves; these keys are not attacker-chosen.
#[derive(Debug, Default)]
pub(crate) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    /// The product's high half into the low bits too: the table picks buckets by the low
    /// bits, and an aligned address times an odd number keeps its low bits zero.
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

impl Default for LineFormatter {
    fn default() -> Self {
        LineFormatter::new(Format::default(), LineOptions::default())
    }
}

impl LineFormatter {
    pub(crate) fn new(format: Format, options: LineOptions) -> Self {
        LineFormatter {
            cached_second: None,
            prefix: Vec::new(),
            suffix: {
                let mut suffix = Vec::new();
                calendar::push_offset(&mut suffix, options.offset, Layout::Rfc3339);
                suffix
            },
            format,
            options,
            callsites: HashMap::default(),
        }
    }

    /// Appends `record` as one `\n`-terminated line to `out`.
    pub(crate) fn format(&mut self, record: &Record, time: SystemTime, out: &mut Vec<u8>) {
        if record.is_raw() {
            // A line from a `SinkWriter`, formatted by its user: written as it is.
            out.extend_from_slice(&record.buf);
            return;
        }
        match self.format {
            Format::Json => self.json(record, time, out),
            Format::Text => self.text(record, time, out),
        }
    }

    /// The text format: `<time> <LEVEL> <thread>spans: target: file:line: fields`, each part
    /// as its option says.
    fn text(&mut self, record: &Record, time: SystemTime, out: &mut Vec<u8>) {
        let options = self.options;
        self.text_head(time, record.meta.level(), out);
        // Thread part (`name `) then span part (`a{k=v}:b: `), as the layer rendered them.
        out.extend_from_slice(&record.buf[record.span_end..]);
        out.extend_from_slice(&record.buf[record.fields_len..record.span_end]);
        let fields = &record.buf[..record.fields_len];
        let log = log_meta(record.meta, fields);
        if options.target {
            match log.and_then(|log| log.target) {
                Some(target) => out.extend_from_slice(target),
                None => out.extend_from_slice(record.meta.target().as_bytes()),
            }
            out.extend_from_slice(b": ");
        }
        let (file, line) = self.location(record, log);
        if let Some(file) = file {
            out.extend_from_slice(file);
            out.push(b':');
            if line.is_none() {
                out.push(b' ');
            }
        }
        if let Some(line) = line {
            write_int(out, line);
            out.extend_from_slice(b": ");
        }
        fields_to_text(record.meta, fields, out);
        out.push(b'\n');
    }

    /// The timestamp and the level of a text line, each followed by a space, if enabled.
    fn text_head(&mut self, time: SystemTime, level: &Level, out: &mut Vec<u8>) {
        if self.options.time {
            self.timestamp(time, out);
            out.push(b' ');
        }
        if self.options.level {
            // Five characters wide, as tracing-subscriber pads them.
            out.extend_from_slice(match *level {
                Level::TRACE => b"TRACE ",
                Level::DEBUG => b"DEBUG ",
                Level::INFO => b" INFO ",
                Level::WARN => b" WARN ",
                _ => b"ERROR ",
            });
        }
    }

    /// The source file and line to write, as enabled: for a record from the `log` crate (through
    /// tracing-log) the record's own, which tracing-subscriber shows in their place.
    fn location<'a>(
        &self,
        record: &Record,
        log: Option<LogMeta<'a>>,
    ) -> (Option<&'a [u8]>, Option<u32>) {
        let (file, line) = match log {
            Some(log) => (log.file, log.line),
            None => (record.meta.file().map(str::as_bytes), record.meta.line()),
        };
        (
            file.filter(|_| self.options.file),
            line.filter(|_| self.options.line_number),
        )
    }

    /// The JSON format.
    fn json(&mut self, record: &Record, time: SystemTime, out: &mut Vec<u8>) {
        let options = self.options;
        let open = out.len();
        self.json_head(time, record.meta.level(), out);
        #[cfg(feature = "opentelemetry")]
        {
            let before = out.len();
            crate::caller::otel::push_json(&record.otel_ids, out);
            // Written with a leading comma: drop it if nothing came before (no time, no level).
            if before == open + 1 && out.len() > before {
                out.remove(before);
            }
        }
        let fields = &record.buf[..record.fields_len];
        if self.callsites.len() >= MAX_CALLSITES {
            self.callsites.clear();
        }
        let callsite = self
            .callsites
            .entry(record.meta as *const _ as usize)
            .or_insert_with(|| JsonCallsite::new(record.meta));
        if options.flatten_event {
            let before = out.len();
            member(out, open);
            let start = out.len();
            fields_to_json(callsite, fields, out);
            if out.len() == start {
                out.truncate(before);
            }
        } else {
            member(out, open);
            out.extend_from_slice(b"\"fields\":{");
            fields_to_json(callsite, fields, out);
            out.push(b'}');
        }
        let log = log_meta(record.meta, fields);
        if options.target {
            member(out, open);
            out.extend_from_slice(b"\"target\":");
            match log.and_then(|log| log.target) {
                Some(target) => write_str_bytes(out, target),
                None => out.extend_from_slice(&callsite.target),
            }
        }
        let (file, line) = self.location(record, log);
        if let Some(file) = file {
            member(out, open);
            out.extend_from_slice(b"\"filename\":");
            write_str_bytes(out, file);
        }
        if let Some(line) = line {
            member(out, open);
            out.extend_from_slice(b"\"line_number\":");
            write_int(out, line);
        }
        // The span part, then the thread part: both already JSON members, each after a comma,
        // which goes if nothing came before them.
        let mut tail = &record.buf[record.fields_len..];
        if out.len() == open + 1 {
            tail = tail.strip_prefix(b",").unwrap_or(tail);
        }
        out.extend_from_slice(tail);
        out.extend_from_slice(b"}\n");
    }

    /// `{`, then the timestamp and level members of a JSON line, if enabled.
    fn json_head(&mut self, time: SystemTime, level: &Level, out: &mut Vec<u8>) {
        out.push(b'{');
        if self.options.time {
            out.extend_from_slice(b"\"timestamp\":\"");
            self.timestamp(time, out);
            out.push(b'"');
        }
        if self.options.level {
            out.extend_from_slice(if self.options.time {
                b",\"level\":\""
            } else {
                b"\"level\":\""
            });
            out.extend_from_slice(level_str(level).as_bytes());
            out.push(b'"');
        }
    }

    /// Appends the line that reports `dropped` events refused by a full queue, in the shape of
    /// an event from target `logsink`, with the sink's options.
    pub(crate) fn dropped_events_line(
        &mut self,
        time: SystemTime,
        dropped: u64,
        out: &mut Vec<u8>,
    ) {
        let options = self.options;
        if self.format == Format::Text {
            self.text_head(time, &Level::WARN, out);
            if options.target {
                out.extend_from_slice(b"logsink: ");
            }
            out.extend_from_slice(b"dropped events dropped=");
            write_int(out, dropped);
            out.push(b'\n');
            return;
        }
        let open = out.len();
        self.json_head(time, &Level::WARN, out);
        member(out, open);
        if !options.flatten_event {
            out.extend_from_slice(b"\"fields\":{");
        }
        out.extend_from_slice(b"\"message\":\"dropped events\",\"dropped\":");
        write_int(out, dropped);
        if !options.flatten_event {
            out.push(b'}');
        }
        if options.target {
            out.extend_from_slice(b",\"target\":\"logsink\"");
        }
        out.extend_from_slice(b"}\n");
    }

    /// Appends an RFC 3339 timestamp with microseconds in the sink's offset, e.g.
    /// `2026-11-24T14:26:18.169272Z` (UTC) or `2026-11-24T16:26:18.169272+02:00`.
    pub(crate) fn timestamp(&mut self, time: SystemTime, out: &mut Vec<u8>) {
        let (second, nanos) = calendar::split(time);
        if self.cached_second != Some(second) {
            self.prefix.clear();
            match DateTime::at(second, self.options.offset) {
                Some(dt) => calendar::push_date_time(&mut self.prefix, &dt, Layout::Rfc3339),
                None => self.prefix.extend_from_slice(b"0000-01-01T00:00:00"),
            }
            self.prefix.push(b'.');
            self.cached_second = Some(second);
        }
        out.extend_from_slice(&self.prefix);
        calendar::push_digits(out, nanos / 1_000, 6);
        out.extend_from_slice(&self.suffix);
    }
}

/// A comma before the next member of the JSON object opened at `open`, unless it is the first.
#[inline]
fn member(out: &mut Vec<u8>, open: usize) {
    if out.len() > open + 1 {
        out.push(b',');
    }
}

fn level_str(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        _ => "ERROR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn ts(time: SystemTime) -> String {
        let mut out = Vec::new();
        LineFormatter::default().timestamp(time, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Metadata made at run time (leaked, as a library minting callsites per event would):
    /// each one a new callsite to the formatter.
    fn leaked_metadata() -> &'static tracing::Metadata<'static> {
        struct Site;
        impl tracing::callsite::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                unreachable!("only the identity is used")
            }
        }
        let site: &'static Site = Box::leak(Box::new(Site));
        Box::leak(Box::new(tracing::Metadata::new(
            "event",
            "leaky",
            Level::INFO,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&["k"], tracing::callsite::Identifier(site)),
            tracing::metadata::Kind::EVENT,
        )))
    }

    /// The callsite cache stays bounded even when every event brings new metadata, and lines
    /// keep their keys and target across the emptying.
    #[test]
    fn the_callsite_cache_is_bounded() {
        let mut f = LineFormatter::new(Format::Json, LineOptions::default());
        let mut out = Vec::new();
        for _ in 0..MAX_CALLSITES + 10 {
            let meta = leaked_metadata();
            let record = Record {
                meta,
                time: crate::caller::clock::Stamp::default(),
                buf: Vec::new(),
                fields_len: 0,
                span_end: 0,
                #[cfg(feature = "opentelemetry")]
                otel_ids: crate::caller::otel::Ids::NONE,
            };
            out.clear();
            f.format(&record, UNIX_EPOCH, &mut out);
            assert!(f.callsites.len() <= MAX_CALLSITES);
        }
        let line = String::from_utf8(out).unwrap();
        assert!(line.contains(r#""fields":{},"target":"leaky""#), "{line}");
    }

    /// Timestamps are RFC 3339 in UTC with microseconds, also before 1970.
    #[test]
    fn timestamps_are_rfc3339_utc_micros() {
        let t = UNIX_EPOCH + Duration::new(1_795_962_378, 169_272_999);
        assert_eq!(ts(t), "2026-11-29T14:26:18.169272Z");
        assert_eq!(ts(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            ts(UNIX_EPOCH - Duration::from_micros(1)),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            ts(UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59.000000Z"
        );
    }

    fn ts_in(offset: UtcOffset, time: SystemTime) -> String {
        let options = LineOptions {
            offset,
            ..LineOptions::default()
        };
        let mut out = Vec::new();
        LineFormatter::new(Format::Json, options).timestamp(time, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// With an offset, the date and time are those of the offset and the offset ends the
    /// timestamp, `+HH:MM` or `-HH:MM`, across day and year boundaries and before 1970; a zero
    /// offset writes `Z`, as the default does.
    #[test]
    fn timestamps_in_an_offset() {
        let hm = |h, m| UtcOffset::from_hms(h, m, 0).unwrap();
        let t = UNIX_EPOCH + Duration::new(1_795_962_378, 169_272_999);
        assert_eq!(ts_in(hm(2, 0), t), "2026-11-29T16:26:18.169272+02:00");
        assert_eq!(ts_in(hm(-5, -30), t), "2026-11-29T08:56:18.169272-05:30");
        assert_eq!(ts_in(hm(0, -30), t), "2026-11-29T13:56:18.169272-00:30");
        assert_eq!(ts_in(hm(14, 0), t), "2026-11-30T04:26:18.169272+14:00");
        assert_eq!(ts_in(UtcOffset::UTC, t), ts(t));
        assert_eq!(
            ts_in(hm(-1, 0), UNIX_EPOCH),
            "1969-12-31T23:00:00.000000-01:00"
        );
        assert_eq!(
            ts_in(hm(9, 0), UNIX_EPOCH - Duration::from_micros(1)),
            "1970-01-01T08:59:59.999999+09:00"
        );
        let new_year = UNIX_EPOCH + Duration::from_secs(1_798_761_600); // 2027-01-01T00:00:00Z
        assert_eq!(
            ts_in(hm(-8, 0), new_year),
            "2026-12-31T16:00:00.000000-08:00"
        );
    }

    /// The `dropped events` line follows the options: no timestamp, level or target when they
    /// are off, its fields flattened when asked.
    #[test]
    fn the_dropped_events_line_follows_the_options() {
        let line = |format, options| {
            let mut out = Vec::new();
            LineFormatter::new(format, options).dropped_events_line(UNIX_EPOCH, 3, &mut out);
            String::from_utf8(out).unwrap()
        };
        let d = LineOptions::default();
        assert_eq!(
            line(Format::Json, d),
            "{\"timestamp\":\"1970-01-01T00:00:00.000000Z\",\"level\":\"WARN\",\"fields\":\
             {\"message\":\"dropped events\",\"dropped\":3},\"target\":\"logsink\"}\n"
        );
        let bare = LineOptions {
            flatten_event: true,
            target: false,
            level: false,
            time: false,
            ..d
        };
        assert_eq!(
            line(Format::Json, bare),
            "{\"message\":\"dropped events\",\"dropped\":3}\n"
        );
        assert_eq!(
            line(Format::Text, d),
            "1970-01-01T00:00:00.000000Z  WARN logsink: dropped events dropped=3\n"
        );
        assert_eq!(line(Format::Text, bare), "dropped events dropped=3\n");
    }

    /// The cached date-time prefix is replaced as soon as the second changes.
    #[test]
    fn the_cache_follows_the_second() {
        let mut f = LineFormatter::default();
        let base = UNIX_EPOCH + Duration::from_secs(1_795_962_378);
        let mut out = Vec::new();
        for (i, step) in [0u64, 999_999, 1_000_000, 61_000_000]
            .into_iter()
            .enumerate()
        {
            out.clear();
            f.timestamp(base + Duration::from_micros(step), &mut out);
            let want = [
                "2026-11-29T14:26:18.000000Z",
                "2026-11-29T14:26:18.999999Z",
                "2026-11-29T14:26:19.000000Z",
                "2026-11-29T14:27:19.000000Z",
            ][i];
            assert_eq!(String::from_utf8(out.clone()).unwrap(), want);
        }
    }
}
