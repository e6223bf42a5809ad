//! Span fields, rendered once on the caller when a span is created or recorded (JSON, and the
//! text format when a text sink needs it), kept in the span's extensions, and copied into each
//! event inside the span. The rules per value are the second column of the table in
//! `writer::fields`.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};

use crate::json::{write_f64, write_int, write_str, VecWriter};
use crate::text_escape::{escape_text_into, EscapingWriter};

/// One span's fields, kept in the span's extensions and rendered to JSON whenever they change,
/// so that events only copy bytes. It holds this span's fields alone, never its parents': an
/// event's `spans` list is put together from each span's own, so memory stays linear in the
/// depth of nesting.
#[derive(Debug)]
pub(crate) struct SpanFields {
    /// Field name to rendered JSON value, sorted (a `Vec`: spans have few fields).
    values: Vec<(&'static str, Vec<u8>)>,
    /// `{"k":v,...,"name":"span name"}`.
    json: Vec<u8>,
    /// The fields in the text format, `k=v k2="text"`, in the order they were recorded (a
    /// later `record` appends, as tracing-subscriber's default formatter does).
    text: Vec<u8>,
    /// The text sink that renders `text` (see [`SpanFields::merge`]); `None` while no text
    /// sink has seen the span, and then `text` stays empty: JSON-only sinks do no text work.
    text_owner: Option<u64>,
}

impl SpanFields {
    /// Fields to record: in JSON, and in the text format too if recorded for the text sink
    /// `text_owner`.
    pub(crate) fn new(text_owner: Option<u64>) -> Self {
        Self::with_capacity(0, text_owner)
    }

    /// [`new`](SpanFields::new) with room for `fields` values and their text, so that recording
    /// a new span's fields does not grow the vectors one push at a time (each regrowth is an
    /// allocation and a copy).
    pub(crate) fn with_capacity(fields: usize, text_owner: Option<u64>) -> Self {
        SpanFields {
            values: Vec::with_capacity(fields),
            json: Vec::new(),
            text: Vec::with_capacity(if text_owner.is_some() { fields * 16 } else { 0 }),
            text_owner,
        }
    }

    /// Whether a text sink renders these fields' text.
    pub(crate) fn has_text(&self) -> bool {
        self.text_owner.is_some()
    }

    /// The span object as it appears in `"span"` and `"spans"`.
    pub(crate) fn json(&self) -> &[u8] {
        &self.json
    }

    /// The fields in the text format (empty if none).
    pub(crate) fn text(&self) -> &[u8] {
        &self.text
    }

    /// Appends one field in the text format (see `writer::fields::fields_to_text` for the
    /// rules), if recorded for a text sink.
    fn text_field(&mut self, name: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        if self.text_owner.is_none() || name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        if !self.text.is_empty() {
            self.text.push(b' ');
        }
        if name != "message" {
            self.text.extend_from_slice(name.as_bytes());
            self.text.push(b'=');
        }
        write(&mut self.text);
    }

    /// Re-renders [`json`](Self::json) after fields were recorded.
    pub(crate) fn render(&mut self, span_name: &str) {
        // `{`, `"k":v,` per field (escaping may add more), `"name":"..."}`.
        let size = self
            .values
            .iter()
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum::<usize>()
            + span_name.len()
            + 12;
        self.json.clear();
        self.json.reserve(size);
        self.json.push(b'{');
        for (name, value) in &self.values {
            write_str(&mut self.json, name);
            self.json.push(b':');
            self.json.extend_from_slice(value);
            self.json.push(b',');
        }
        self.json.extend_from_slice(b"\"name\":");
        write_str(&mut self.json, span_name);
        self.json.push(b'}');
    }

    /// Takes in the text of a span's first fields, recorded for a text sink, if no text sink
    /// rendered them before: that sink owns the text from now on.
    pub(crate) fn adopt_text(&mut self, first: SpanFields) {
        if self.text_owner.is_none() && first.text_owner.is_some() {
            self.text = first.text;
            self.text_owner = first.text_owner;
        }
    }

    /// Takes in fields recorded later (into a fresh `SpanFields`): their values replace
    /// earlier ones in JSON, and are appended in the text format.
    ///
    /// Every sink on the registry records every `record` of the span. Replacing JSON values is
    /// idempotent, so each sink merges them (and its span parts cached on threads are fresh
    /// once its own merge is done). Appending text is not: only the owner's text is appended.
    /// The owner is the first text sink that saw the span created, and the registry calls its
    /// layers in the same order for every hook, so the owner has appended before any other
    /// text sink's `on_record` returns.
    pub(crate) fn merge(&mut self, later: SpanFields) {
        for (name, value) in later.values {
            self.insert(name, value);
        }
        if later.text_owner.is_some()
            && later.text_owner == self.text_owner
            && !later.text.is_empty()
        {
            if !self.text.is_empty() {
                self.text.push(b' ');
            }
            self.text.extend_from_slice(&later.text);
        }
    }

    fn insert(&mut self, name: &'static str, value: Vec<u8>) {
        match self.values.binary_search_by(|(k, _)| (*k).cmp(name)) {
            Ok(i) => self.values[i].1 = value,
            Err(i) => self.values.insert(i, (name, value)),
        }
    }
}

/// The span object for a span that has no [`SpanFields`] (it cannot happen through the registry;
/// kept so a missing extension degrades to the name instead of a panic).
pub(crate) fn span_json_without_fields(span_name: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"name\":");
    write_str(out, span_name);
    out.push(b'}');
}

/// Records span fields into [`SpanFields`], the way tracing-subscriber's `JsonVisitor` does.
pub(crate) struct SpanVisitor<'a>(pub(crate) &'a mut SpanFields);

impl Visit for SpanVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let mut v = Vec::new();
        write_f64(&mut v, value);
        self.0.insert(field.name(), v);
        self.0.text_field(field.name(), |out| {
            let _ = write!(VecWriter(out), "{value:?}");
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let mut v = Vec::new();
        write_int(&mut v, value);
        self.0.insert(field.name(), v);
        self.0.text_field(field.name(), |out| write_int(out, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let mut v = Vec::new();
        write_int(&mut v, value);
        self.0.insert(field.name(), v);
        self.0.text_field(field.name(), |out| write_int(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        let v: &[u8] = if value { b"true" } else { b"false" };
        self.0.insert(field.name(), v.to_vec());
        self.0
            .text_field(field.name(), |out| out.extend_from_slice(v));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let mut v = Vec::new();
        write_str(&mut v, value);
        self.0.insert(field.name(), v);
        let message = field.name() == "message";
        self.0.text_field(field.name(), |out| {
            if message {
                escape_text_into(out, value.as_bytes());
            } else {
                let _ = write!(VecWriter(out), "{value:?}");
            }
        });
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        let mut v = vec![b'['];
        for (i, b) in value.iter().enumerate() {
            if i > 0 {
                v.push(b',');
            }
            write_int(&mut v, *b);
        }
        v.push(b']');
        self.0.insert(field.name(), v);
        self.0.text_field(field.name(), |out| {
            out.push(b'[');
            for (i, b) in value.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                let _ = write!(VecWriter(out), "{b:02x}");
            }
            out.push(b']');
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let message = field.name() == "message";
        self.debug_field(field.name(), value, message);
    }

    /// `err=text err.sources=[a, b]` in the text format, each error's text escaped (see
    /// [`escape_text_into`]); JSON has the error's `Display` alone.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let Some(source) = value.source() else {
            return self.debug_field(field.name(), &format_args!("{value}"), true);
        };
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let mut v = Vec::new();
        write_str(&mut v, &value.to_string());
        self.0.insert(name.strip_prefix("r#").unwrap_or(name), v);
        self.0.text_field(name, |out| {
            let _ = write!(EscapingWriter(out), "{value}");
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b".sources=[");
            let mut next = Some(source);
            let mut first = true;
            while let Some(error) = next {
                if !first {
                    out.extend_from_slice(b", ");
                }
                first = false;
                let _ = write!(EscapingWriter(out), "{error}");
                next = error.source();
            }
            out.push(b']');
        });
    }
}

impl SpanVisitor<'_> {
    /// A value as its `Debug` text; in the text format escaped if `escape` (messages and
    /// errors), as it is otherwise.
    fn debug_field(&mut self, name: &'static str, value: &dyn fmt::Debug, escape: bool) {
        // tracing-log's metadata fields are shown by tracing-subscriber as the event's own
        // target and location, never as span fields.
        if name.starts_with("log.") {
            return;
        }
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        let mut v = Vec::with_capacity(text.len() + 2);
        write_str(&mut v, &text);
        self.0.insert(name.strip_prefix("r#").unwrap_or(name), v);
        self.0.text_field(name, |out| {
            if escape {
                escape_text_into(out, text.as_bytes());
            } else {
                out.extend_from_slice(text.as_bytes());
            }
        });
    }
}
