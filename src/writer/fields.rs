//! Rendering an event's encoded fields (see `handoff::fields`) on the writer: as JSON members
//! and in the text format. Span fields are rendered on the caller, by `caller::span`, by the
//! same rules (the table's second column).
//!
//! Everything here matches what `tracing_subscriber::fmt::layer().json()` writes for the same
//! values, because users switch between the two and their tools must see the same JSON:
//!
//! | value | event field (`"fields"`) | span field (`"span"`, `"spans"`) |
//! |---|---|---|
//! | `i64`, `u64`, `bool` | number / bool | number / bool |
//! | `f64` (and `f32`) | number; NaN and infinities `null` | same |
//! | `&str` | string | string |
//! | `i128`, `u128` | decimal string | decimal string |
//! | `?debug`, `%display`, `&dyn Error` | string | string |
//! | `&[u8]` | string `"[0a ff]"` | array of numbers |
//! | field named `r#x` | key `r#x` | key `x` for string-like values, `r#x` otherwise |
//! | field named `log.*` (from `tracing-log`) | kept | dropped for string-like values |
//!
//! Event fields keep their order (and duplicates); span fields are a sorted map in which a later
//! `record` replaces an earlier value. Both quirks are tracing-subscriber's.
//!
//! In the text format, tracing-subscriber (since 0.3.20) escapes the terminal controls ESC,
//! BEL, BS, FF, DEL and the C1 controls in messages and in the texts of errors, and nowhere
//! else (see `text_escape`). The caller copies text raw, as for JSON, and tags messages and
//! errors apart from other values, so that the writer does the escaping.

use std::fmt::Write as _;

use tracing::Metadata;

use crate::handoff::fields::{named, Fields, Value};
use crate::json::{write_f64, write_int, write_str, write_str_bytes, VecWriter};
use crate::text_escape::escape_text_into;

/// What the JSON format writes the same way for every event of one callsite, rendered once
/// (on the writer, at the callsite's first event) rather than escaped again per event: the
/// key `"name":` of each field, and the target as a JSON string.
#[derive(Debug)]
pub(crate) struct JsonCallsite {
    keys: Vec<u8>,
    /// Where each field's key ends in `keys`, by the field's index.
    ends: Vec<usize>,
    /// `"target"`, quoted and escaped.
    pub(crate) target: Vec<u8>,
}

impl JsonCallsite {
    pub(crate) fn new(meta: &'static Metadata<'static>) -> Self {
        let mut keys = Vec::new();
        let mut ends = Vec::with_capacity(meta.fields().len());
        for field in meta.fields() {
            write_str(&mut keys, field.name());
            keys.push(b':');
            ends.push(keys.len());
        }
        let mut target = Vec::new();
        write_str(&mut target, meta.target());
        JsonCallsite { keys, ends, target }
    }

    /// `"name":` of the field at `index` (a field the callsite does not have, which would be
    /// a bug, gets the empty name).
    fn key(&self, index: usize) -> &[u8] {
        match self.ends.get(index) {
            Some(&end) => {
                let start = index.checked_sub(1).map_or(0, |i| self.ends[i]);
                &self.keys[start..end]
            }
            None => b"\"\":",
        }
    }
}

/// Appends the JSON members of the encoded fields (`"k":v,"k":v`) to `out` (writer side).
/// `fields` must come from an [`EventEncoder`](crate::handoff::fields::EventEncoder) fed by an event of `callsite`'s metadata.
pub(crate) fn fields_to_json(callsite: &JsonCallsite, fields: &[u8], out: &mut Vec<u8>) {
    let mut first = true;
    for (index, value) in (Fields { bytes: fields }) {
        // JSON sinks record no sources; were there any, JSON writes the error alone.
        if let Value::Source(_) = value {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(callsite.key(index));
        match value {
            Value::I64(v) => write_int(out, v),
            Value::U64(v) => write_int(out, v),
            Value::F64(v) => write_f64(out, v),
            Value::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
            Value::Str(bytes) | Value::Debug(bytes) | Value::Error(bytes) => {
                write_str_bytes(out, bytes)
            }
            Value::Source(_) => {}
        }
    }
}

/// Appends the encoded fields in the text format (`message k=v k="text"`), the way
/// tracing-subscriber's default field formatter writes them without colours: the `message`
/// field's value alone and escaped, strings quoted, `Debug` values as written, errors escaped
/// and followed by their sources, `r#` prefixes dropped, `tracing-log`'s `log.*` fields left
/// out.
pub(crate) fn fields_to_text(meta: &'static Metadata<'static>, fields: &[u8], out: &mut Vec<u8>) {
    let mut first = true;
    let mut fields = named(meta, fields).peekable();
    while let Some((name, value)) = fields.next() {
        // Sources are written with their error (those of a `log.*` error are skipped here).
        if name.starts_with("log.") || matches!(value, Value::Source(_)) {
            continue;
        }
        if !first {
            out.push(b' ');
        }
        first = false;
        let raw_name = name;
        let name = name.strip_prefix("r#").unwrap_or(name);
        if name != "message" {
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
        }
        match value {
            Value::I64(v) => write_int(out, v),
            Value::U64(v) => write_int(out, v),
            Value::F64(v) => {
                let _ = write!(VecWriter(out), "{v:?}");
            }
            Value::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
            Value::Str(bytes) | Value::Debug(bytes) if name == "message" => {
                escape_text_into(out, bytes)
            }
            // `str`'s `Debug` escapes every control character itself.
            Value::Str(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => {
                    let _ = write!(VecWriter(out), "{text:?}");
                }
                Err(_) => out.extend_from_slice(bytes),
            },
            // Not escaped: tracing-subscriber writes other `Debug`/`Display` values as they are.
            Value::Debug(bytes) => out.extend_from_slice(bytes),
            // `err=text err.sources=[a, b]`, with the field's own name (`r#` and all) before
            // `.sources`, as tracing-subscriber writes it.
            Value::Error(bytes) => {
                escape_text_into(out, bytes);
                let mut sources = 0;
                while let Some((_, Value::Source(source))) =
                    fields.next_if(|(_, value)| matches!(value, Value::Source(_)))
                {
                    if sources == 0 {
                        out.push(b' ');
                        out.extend_from_slice(raw_name.as_bytes());
                        out.extend_from_slice(b".sources=[");
                    } else {
                        out.extend_from_slice(b", ");
                    }
                    escape_text_into(out, source);
                    sources += 1;
                }
                if sources > 0 {
                    out.push(b']');
                }
            }
            Value::Source(_) => {}
        }
    }
}
