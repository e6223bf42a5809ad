//! Turning a [`Record`] into one line (writer side), in the sink's [`Format`].
//!
//! JSON key order follows `tracing_subscriber::fmt::layer().json()`: `timestamp`, `level`,
//! (`trace_id` and `span_id` with the `opentelemetry` feature's option, inside a span) `fields`, `target`, `filename` and `line_number` (if enabled), then `span` and `spans` when
//! the event is inside one, then `threadName` (if enabled). The text format follows
//! tracing-subscriber's default (full) format without colours.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use tracing::Level;

use crate::encode::{
    fields_to_json, fields_to_text, log_target, write_int, write_str, write_str_bytes, JsonCallsite,
};
use crate::record::Record;

/// How each event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// One JSON object per line, the same JSON value as
    /// `tracing_subscriber::fmt::layer().json()` writes. The default.
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
    /// Spans get their text form only once a text sink exists in the process (JSON-only
    /// programs skip that work): a span created before the first text sink was built, which
    /// takes adding the sink to a running subscriber (e.g. through `reload`), shows its name
    /// without its fields.
    Text,
}

/// Formats records into lines, caching the date-time text of the current second.
#[derive(Debug, Default)]
pub(crate) struct LineFormatter {
    /// The whole second `prefix` was made for, if any.
    cached_second: Option<i64>,
    /// `"YYYY-MM-DDTHH:MM:SS.` for `cached_second`.
    prefix: Vec<u8>,
    format: Format,
    /// Write the event's source file and line.
    file_and_line: bool,
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

impl LineFormatter {
    pub(crate) fn new(format: Format, file_and_line: bool) -> Self {
        LineFormatter {
            format,
            file_and_line,
            ..LineFormatter::default()
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

    /// The text format: `<time> <LEVEL> <thread>spans: target: file:line: fields`.
    fn text(&mut self, record: &Record, time: SystemTime, out: &mut Vec<u8>) {
        self.timestamp(time, out);
        out.extend_from_slice(match *record.meta.level() {
            Level::TRACE => b" TRACE ",
            Level::DEBUG => b" DEBUG ",
            Level::INFO => b"  INFO ",
            Level::WARN => b"  WARN ",
            _ => b" ERROR ",
        });
        // Thread part (`name `) then span part (`a{k=v}:b: `), as the layer rendered them.
        out.extend_from_slice(&record.buf[record.span_end..]);
        out.extend_from_slice(&record.buf[record.fields_len..record.span_end]);
        let fields = &record.buf[..record.fields_len];
        match log_target(record.meta, fields) {
            Some(target) => out.extend_from_slice(target),
            None => out.extend_from_slice(record.meta.target().as_bytes()),
        }
        out.extend_from_slice(b": ");
        if self.file_and_line {
            if let Some(file) = record.meta.file() {
                out.extend_from_slice(file.as_bytes());
                out.push(b':');
                if record.meta.line().is_none() {
                    out.push(b' ');
                }
            }
            if let Some(line) = record.meta.line() {
                write_int(out, line);
                out.extend_from_slice(b": ");
            }
        }
        fields_to_text(record.meta, fields, out);
        out.push(b'\n');
    }

    /// The JSON format.
    fn json(&mut self, record: &Record, time: SystemTime, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        self.timestamp(time, out);
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(level_str(record.meta.level()).as_bytes());
        out.push(b'"');
        #[cfg(feature = "opentelemetry")]
        crate::otel::push_json(&record.otel_ids, out);
        out.extend_from_slice(b",\"fields\":{");
        let fields = &record.buf[..record.fields_len];
        if self.callsites.len() >= MAX_CALLSITES {
            self.callsites.clear();
        }
        let callsite = self
            .callsites
            .entry(record.meta as *const _ as usize)
            .or_insert_with(|| JsonCallsite::new(record.meta));
        fields_to_json(callsite, fields, out);
        out.extend_from_slice(b"},\"target\":");
        match log_target(record.meta, fields) {
            Some(target) => write_str_bytes(out, target),
            None => out.extend_from_slice(&callsite.target),
        }
        if self.file_and_line {
            if let Some(file) = record.meta.file() {
                out.extend_from_slice(b",\"filename\":");
                write_str(out, file);
            }
            if let Some(line) = record.meta.line() {
                out.extend_from_slice(b",\"line_number\":");
                write_int(out, line);
            }
        }
        // The span part, then the thread part: both already JSON.
        out.extend_from_slice(&record.buf[record.fields_len..]);
        out.extend_from_slice(b"}\n");
    }

    /// Appends the line that reports `dropped` events refused by a full queue, in the shape of
    /// an event from target `logsink`.
    pub(crate) fn dropped_events_line(
        &mut self,
        time: SystemTime,
        dropped: u64,
        out: &mut Vec<u8>,
    ) {
        if self.format == Format::Text {
            self.timestamp(time, out);
            out.extend_from_slice(b"  WARN logsink: dropped events dropped=");
            write_int(out, dropped);
            out.push(b'\n');
            return;
        }
        out.extend_from_slice(b"{\"timestamp\":\"");
        self.timestamp(time, out);
        out.extend_from_slice(
            b"\",\"level\":\"WARN\",\"fields\":{\"message\":\"dropped events\",\"dropped\":",
        );
        crate::encode::write_int(out, dropped);
        out.extend_from_slice(b"},\"target\":\"logsink\"}\n");
    }

    /// Appends an RFC 3339 UTC timestamp with microseconds, e.g. `2026-11-24T14:26:18.169272Z`.
    pub(crate) fn timestamp(&mut self, time: SystemTime, out: &mut Vec<u8>) {
        let (second, micros) = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
            Err(e) => {
                // Before 1970: floor to the whole second below, count microseconds up from it.
                let d = e.duration();
                let micros_before = d.subsec_micros();
                if micros_before == 0 {
                    (-(d.as_secs() as i64), 0)
                } else {
                    (-(d.as_secs() as i64) - 1, 1_000_000 - micros_before)
                }
            }
        };
        if self.cached_second != Some(second) {
            self.prefix.clear();
            match OffsetDateTime::from_unix_timestamp(second) {
                Ok(dt) => {
                    let year = dt.year();
                    if (0..=9999).contains(&year) {
                        push_digits(&mut self.prefix, year as u32, 4);
                    } else {
                        // RFC 3339 has no room for these; write them legibly anyway.
                        self.prefix.extend_from_slice(year.to_string().as_bytes());
                    }
                    self.prefix.push(b'-');
                    push_digits(&mut self.prefix, dt.month() as u32, 2);
                    self.prefix.push(b'-');
                    push_digits(&mut self.prefix, dt.day() as u32, 2);
                    self.prefix.push(b'T');
                    push_digits(&mut self.prefix, dt.hour() as u32, 2);
                    self.prefix.push(b':');
                    push_digits(&mut self.prefix, dt.minute() as u32, 2);
                    self.prefix.push(b':');
                    push_digits(&mut self.prefix, dt.second() as u32, 2);
                    self.prefix.push(b'.');
                }
                Err(_) => self.prefix.extend_from_slice(b"0000-01-01T00:00:00."),
            }
            self.cached_second = Some(second);
        }
        out.extend_from_slice(&self.prefix);
        push_digits(out, micros, 6);
        out.push(b'Z');
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

/// Appends `value` zero-padded to `width` digits.
fn push_digits(out: &mut Vec<u8>, mut value: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (0..width).rev() {
        out[start + i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let mut f = LineFormatter::new(Format::Json, false);
        let mut out = Vec::new();
        for _ in 0..MAX_CALLSITES + 10 {
            let meta = leaked_metadata();
            let record = Record {
                meta,
                time: crate::clock::Stamp::default(),
                buf: Vec::new(),
                fields_len: 0,
                span_end: 0,
                #[cfg(feature = "opentelemetry")]
                otel_ids: crate::otel::Ids::NONE,
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
