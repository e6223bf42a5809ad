//! An event's fields as they cross the queue: the caller's compact encoding
//! ([`EventEncoder`]) and its decoding on the writer ([`Fields`], [`named`], [`log_meta`]).
//! How the writer renders them is `writer::fields`.
//!
//! # The encoding
//! The caller must copy the event's values before returning (they are borrowed), but nothing
//! more: numbers go in raw, strings unescaped, `Debug` values as their formatted text. The
//! writer does the JSON work. Each field is
//!
//! ```text
//! tag: u8 | field index: u16 LE | payload
//! ```
//!
//! where the index is the field's position in the event's `FieldSet` (the writer reads the
//! name from the `'static` metadata), and the payload is 8 raw bytes for `I64`/`U64`/`F64`, one
//! byte for `BOOL`, and `u32 LE length | UTF-8 bytes` for `STR`, `DEBUG`, `ERROR` and `SOURCE`.
//! An error is an `ERROR` field followed, for a text sink, by one `SOURCE` field (same index)
//! per error in its source chain.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::Metadata;

use crate::json::VecWriter;

const I64: u8 = 1;
const U64: u8 = 2;
const F64: u8 = 3;
const BOOL: u8 = 4;
const STR: u8 = 5;
/// Text a `Debug` (or `Display`) impl wrote: a JSON string like `STR`, but in the text format
/// written as it is rather than quoted.
const DEBUG: u8 = 6;
/// An error's `Display`: a JSON string like `STR`; the text format escapes it.
const ERROR: u8 = 7;
/// The `Display` of one source of the `ERROR` before it (text sinks only): the text format
/// lists them after the error, escaped; JSON leaves them out.
const SOURCE: u8 = 8;

/// Records an event's fields into a record buffer (caller side).
pub(crate) struct EventEncoder<'a> {
    pub(crate) buf: &'a mut Vec<u8>,
    /// For a `Format::Text` sink: errors are followed by their sources.
    pub(crate) text: bool,
}

impl EventEncoder<'_> {
    #[inline]
    fn head(&mut self, tag: u8, field: &Field) -> bool {
        // A callsite with more than 65,535 fields (possible only when built by hand) loses the
        // fields past that, rather than mis-naming them.
        let Ok(index) = u16::try_from(field.index()) else {
            return false;
        };
        self.buf.push(tag);
        self.buf.extend_from_slice(&index.to_le_bytes());
        true
    }

    #[inline]
    fn string(&mut self, field: &Field, s: &str) {
        if self.head(STR, field) {
            let bytes = &s.as_bytes()[..fit_u32(s.as_bytes())];
            self.buf
                .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Formats `value` straight into the buffer under `tag`, then patches its length in.
    #[inline]
    fn formatted(&mut self, tag: u8, field: &Field, value: &dyn fmt::Debug) {
        if self.head(tag, field) {
            let len_at = self.buf.len();
            self.buf.extend_from_slice(&[0; 4]);
            // A `Debug` impl that fails leaves what it wrote so far, as tracing-subscriber's
            // would have panicked instead; a panicking one unwinds out of the caller's event,
            // and this buffer (never sent) is simply freed.
            let _ = write!(VecWriter(self.buf), "{value:?}");
            let len = fit_u32(&self.buf[len_at + 4..]);
            self.buf.truncate(len_at + 4 + len);
            self.buf[len_at..len_at + 4].copy_from_slice(&(len as u32).to_le_bytes());
        }
    }
}

/// How much of the UTF-8 `text` fits a 4-byte length: all of it, or (for a single value over
/// 4 GiB) the most that ends on a character boundary, so that the line stays valid UTF-8.
#[inline]
fn fit_u32(text: &[u8]) -> usize {
    if text.len() <= u32::MAX as usize {
        return text.len();
    }
    let mut end = u32::MAX as usize;
    // Continuation bytes are 0b10xx_xxxx: back up to the start of the cut character.
    while end > 0 && text[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    end
}

impl Visit for EventEncoder<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.head(F64, field) {
            self.buf.extend_from_slice(&value.to_bits().to_le_bytes());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.head(I64, field) {
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.head(U64, field) {
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.head(BOOL, field) {
            self.buf.push(value as u8);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.formatted(DEBUG, field, value);
    }

    /// The error's `Display`, then (text sinks only: tracing-subscriber's JSON writes the error
    /// alone) each source's, separately, so that the writer can escape the texts and not the
    /// field name it writes between them.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.formatted(ERROR, field, &format_args!("{value}"));
        if self.text {
            let mut next = value.source();
            while let Some(error) = next {
                self.formatted(SOURCE, field, &format_args!("{error}"));
                next = error.source();
            }
        }
    }
}

/// One decoded field value.
pub(crate) enum Value<'a> {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    /// UTF-8 text, not yet escaped.
    Str(&'a [u8]),
    /// UTF-8 text written by a `Debug`/`Display` impl, not yet escaped.
    Debug(&'a [u8]),
    /// An error's `Display`, not yet escaped.
    Error(&'a [u8]),
    /// The `Display` of a source of the `Error` before it, not yet escaped.
    Source(&'a [u8]),
}

/// Iterates over the fields an [`EventEncoder`] wrote, with their index in the callsite's
/// `FieldSet`. Malformed input (which would be a bug) ends the iteration instead of panicking.
pub(crate) struct Fields<'a> {
    pub(crate) bytes: &'a [u8],
}

/// The fields with their names, read from the callsite's metadata.
pub(crate) fn named<'a>(
    meta: &'static Metadata<'static>,
    fields: &'a [u8],
) -> impl Iterator<Item = (&'static str, Value<'a>)> {
    Fields { bytes: fields }.map(move |(index, value)| {
        let name = meta.fields().iter().nth(index).map_or("", |f| f.name());
        (name, value)
    })
}

impl<'a> Iterator for Fields<'a> {
    type Item = (usize, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let (&tag, rest) = self.bytes.split_first()?;
        let (index, rest) = take_array::<2>(rest)?;
        let index = u16::from_le_bytes(index) as usize;
        let (value, rest) = match tag {
            I64 | U64 | F64 => {
                let (raw, rest) = take_array::<8>(rest)?;
                let value = match tag {
                    I64 => Value::I64(i64::from_le_bytes(raw)),
                    U64 => Value::U64(u64::from_le_bytes(raw)),
                    _ => Value::F64(f64::from_bits(u64::from_le_bytes(raw))),
                };
                (value, rest)
            }
            BOOL => {
                let (raw, rest) = take_array::<1>(rest)?;
                (Value::Bool(raw[0] != 0), rest)
            }
            STR | DEBUG | ERROR | SOURCE => {
                let (len, rest) = take_array::<4>(rest)?;
                let len = u32::from_le_bytes(len) as usize;
                let text = rest.get(..len)?;
                let value = match tag {
                    STR => Value::Str(text),
                    DEBUG => Value::Debug(text),
                    ERROR => Value::Error(text),
                    _ => Value::Source(text),
                };
                (value, &rest[len..])
            }
            _ => return None,
        };
        self.bytes = rest;
        Some((index, value))
    }
}

/// What tracing-subscriber shows, for a record that came from the `log` crate through
/// `tracing-log`, in place of the event's own metadata: such events share tracing-log's
/// callsites (target `log`, no file or line) and carry the record's target, file and line in
/// `log.target`, `log.file` and `log.line` fields.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogMeta<'a> {
    pub(crate) target: Option<&'a [u8]>,
    pub(crate) file: Option<&'a [u8]>,
    pub(crate) line: Option<u32>,
}

/// The [`LogMeta`] of an event from tracing-log, `None` for any other.
pub(crate) fn log_meta<'a>(
    meta: &'static Metadata<'static>,
    fields: &'a [u8],
) -> Option<LogMeta<'a>> {
    // tracing-log's callsites: target `log`, name `log event`, and the record's target in a
    // `log.target` field. A user's own event that merely looks similar keeps its metadata.
    if meta.target() != "log"
        || meta.name() != "log event"
        || meta.fields().field("log.module_path").is_none()
    {
        return None;
    }
    let mut log = LogMeta::default();
    for (name, value) in named(meta, fields) {
        match (name, value) {
            ("log.target", Value::Str(target)) => log.target = Some(target),
            ("log.file", Value::Str(file)) => log.file = Some(file),
            // tracing-log's own narrowing (`as u32`).
            ("log.line", Value::U64(line)) => log.line = Some(line as u32),
            _ => {}
        }
    }
    Some(log)
}

fn take_array<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
    let head = bytes.get(..N)?;
    Some((head.try_into().ok()?, &bytes[N..]))
}
