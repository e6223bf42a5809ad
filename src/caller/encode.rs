//! Field encoding: the caller's compact form of an event, its JSON rendering on the writer, and
//! span fields rendered once as JSON.
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
//! ## The event encoding
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
//!
//! ## Escaping in the text format
//! tracing-subscriber's text format (since 0.3.20) escapes the terminal controls ESC, BEL, BS,
//! FF, DEL and the C1 controls in messages and in the texts of errors, and nowhere else (see
//! [`escape_text_into`]). The caller copies text raw, as for JSON, and tags messages and errors
//! apart from other values, so that the writer does the escaping.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use tracing::field::{Field, Visit};
use tracing::Metadata;

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
enum Value<'a> {
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
struct Fields<'a> {
    bytes: &'a [u8],
}

/// The fields with their names, read from the callsite's metadata.
fn named<'a>(
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
/// `fields` must come from an [`EventEncoder`] fed by an event of `callsite`'s metadata.
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

/// Appends UTF-8 `bytes` escaped as tracing-subscriber's text format escapes messages and error
/// texts (its `EscapeGuard`, tracing-subscriber 0.3.20 and later), so that a log line cannot
/// drive the terminal that shows it: ESC, BEL, BS, FF and DEL become `\x1b`, `\x07`, `\x08`,
/// `\x0c` and `\x7f`, C1 controls (U+0080 to U+009F) `\u{80}` to `\u{9f}`. Everything else is
/// kept as it is, there as here: other C0 controls (`\r`, `\n`, `\t`, NUL...) and backslashes.
fn escape_text_into(out: &mut Vec<u8>, bytes: &[u8]) {
    // The common case, nothing to escape: one pass without branches, then one copy. 0xC2 is
    // the first byte of every C1 control in UTF-8 (and of other characters up to U+00BF).
    let suspect = bytes.iter().fold(false, |found, &b| {
        found | matches!(b, 0x07 | 0x08 | 0x0c | 0x1b | 0x7f | 0xc2)
    });
    if !suspect {
        out.extend_from_slice(bytes);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let escape: &[u8] = match bytes[i] {
            0x1b => b"\\x1b",
            0x07 => b"\\x07",
            0x08 => b"\\x08",
            0x0c => b"\\x0c",
            0x7f => b"\\x7f",
            0xc2 => match bytes.get(i + 1) {
                Some(&low @ 0x80..=0x9f) => {
                    // U+0080..U+009F is 0xC2 then the code point's own low byte.
                    out.extend_from_slice(&bytes[start..i]);
                    out.extend_from_slice(b"\\u{");
                    out.push(HEX[usize::from(low >> 4)]);
                    out.push(HEX[usize::from(low & 0xf)]);
                    out.push(b'}');
                    i += 2;
                    start = i;
                    continue;
                }
                _ => {
                    i += 1;
                    continue;
                }
            },
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `fmt::Write` into a byte buffer through [`escape_text_into`].
struct EscapingWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for EscapingWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_text_into(self.0, s.as_bytes());
        Ok(())
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

/// Whether spans need their fields in the text format too: set when a sink with
/// [`Format::Text`](crate::Format::Text) is built. Until then only JSON is rendered, which
/// spares JSON-only programs formatting every span field twice. Relaxed: the sink is built
/// before its layer can see any span, and handing the layer to a subscriber orders the two.
pub(crate) static TEXT_SPANS: AtomicBool = AtomicBool::new(false);

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
}

impl SpanFields {
    pub(crate) fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Room for `fields` values and their text, so that recording a new span's fields does
    /// not grow the vectors one push at a time (each regrowth is an allocation and a copy).
    pub(crate) fn with_capacity(fields: usize) -> Self {
        SpanFields {
            values: Vec::with_capacity(fields),
            json: Vec::new(),
            text: Vec::with_capacity(if TEXT_SPANS.load(Relaxed) {
                fields * 16
            } else {
                0
            }),
        }
    }

    /// The span object as it appears in `"span"` and `"spans"`.
    pub(crate) fn json(&self) -> &[u8] {
        &self.json
    }

    /// The fields in the text format (empty if none).
    pub(crate) fn text(&self) -> &[u8] {
        &self.text
    }

    /// Appends one field in the text format (see [`fields_to_text`] for the rules), if any
    /// sink in the process writes text.
    fn text_field(&mut self, name: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        if !TEXT_SPANS.load(Relaxed) || name.starts_with("log.") {
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

    /// Takes in fields recorded later (into a fresh `SpanFields`): their values replace
    /// earlier ones in JSON, and are appended in the text format.
    pub(crate) fn merge(&mut self, later: SpanFields) {
        for (name, value) in later.values {
            self.insert(name, value);
        }
        if !later.text.is_empty() {
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

/// `fmt::Write` into a byte buffer.
pub(crate) struct VecWriter<'a>(pub(crate) &'a mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Writes an integer in decimal.
#[inline]
pub(crate) fn write_int(out: &mut Vec<u8>, value: impl Into<i128>) {
    let value: i128 = value.into();
    if value < 0 {
        out.push(b'-');
    }
    match u64::try_from(value.unsigned_abs()) {
        Ok(small) => write_u64(out, small),
        // Beyond 64 bits (128-bit fields only): rare enough for `fmt`.
        Err(_) => {
            let _ = write!(VecWriter(out), "{}", value.unsigned_abs());
        }
    }
}

/// Writes `value` in decimal, two digits at a time (no `fmt` machinery: this runs for every
/// integer field the writer formats).
fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    while value >= 100 {
        let pair = (value % 100) as usize * 2;
        value /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if value >= 10 {
        let pair = value as usize * 2;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + value as u8;
    }
    out.extend_from_slice(&buf[at..]);
}

/// Writes a float as JSON exactly as serde_json does (and so tracing-subscriber's JSON
/// formatter): finite values in the shortest form that reads back as the same float, by the
/// same `zmij` crate serde_json uses, NaN and infinities as `null`.
#[inline]
pub(crate) fn write_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Writes `s` as a quoted JSON string.
#[inline]
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_str_bytes(out, s.as_bytes());
}

/// Writes UTF-8 `bytes` as a quoted JSON string, escaping exactly what serde_json escapes:
/// `"`, `\` and control characters below U+0020 (short forms where JSON has them).
pub(crate) fn write_str_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if is_plain(bytes) {
        // The common case (field names, most values): one copy.
        out.extend_from_slice(bytes);
    } else {
        escape_into(out, bytes);
    }
    out.push(b'"');
}

/// Whether no byte of `bytes` needs escaping. Eight bytes at a time, without a branch per
/// word; a partial last word is read overlapping the one before it (checking a byte twice is
/// harmless), and a string under eight bytes is packed into one word padded with spaces
/// (which need no escaping). Copying the tail into a padded array instead would cost a failed
/// store-to-load forward per string, which dominates a function this short.
#[inline]
fn is_plain(bytes: &[u8]) -> bool {
    let n = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if n >= 8 {
        let mut found = false;
        let mut at = 0;
        while at + 8 <= n {
            found |= needs_escape(word(at));
            at += 8;
        }
        if at < n {
            found |= needs_escape(word(n - 8));
        }
        return !found;
    }
    let packed = if n >= 4 {
        let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        u64::from(half(0)) | u64::from(half(n - 4)) << 32
    } else {
        let mut packed = u64::from_le_bytes([b' '; 8]);
        for (i, &byte) in bytes.iter().enumerate() {
            packed = packed & !(0xff << (8 * i)) | u64::from(byte) << (8 * i);
        }
        packed
    };
    !needs_escape(packed)
}

/// Appends `bytes` with `"`, `\\` and control characters escaped (no quotes around).
fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip 8 bytes at a time while none needs escaping: the common case, plain text.
        if let Some(chunk) = bytes.get(i..i + 8) {
            if !needs_escape(u64::from_le_bytes(chunk.try_into().expect("8 bytes"))) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
                i += 1;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether any of the 8 bytes in `word` is a control character, `"` or `\\` (SWAR: the
/// classic "has zero byte" and "has byte less than" bit tricks on all eight lanes at once).
#[inline]
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    // A byte below 0x20 (bytes of 0x80 and above, UTF-8, are excluded by `!word`).
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    control | quote | backslash != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    /// The 8-byte fast path never skips a byte that needs escaping, whatever its neighbours.
    #[test]
    fn the_eight_byte_skip_finds_every_byte_that_needs_escaping() {
        for b in 0..=255u8 {
            let expected = b < 0x20 || b == b'"' || b == b'\\';
            for at in 0..8 {
                for filler in [b'a', 0xC3, 0xFF, b'~'] {
                    let mut word = [filler; 8];
                    word[at] = b;
                    assert_eq!(
                        needs_escape(u64::from_le_bytes(word)),
                        expected,
                        "byte {b:#04x} at {at} among {filler:#04x}"
                    );
                }
            }
        }
    }

    /// `is_plain` sees a byte that needs escaping at every position of every length up to 20
    /// (the short packings, the overlapping last word), and passes the plain ones.
    #[test]
    fn plain_strings_are_told_from_ones_to_escape_at_every_length() {
        for len in 0..=20 {
            assert!(is_plain(&vec![b'k'; len]), "{len} plain bytes");
            for at in 0..len {
                for bad in [b'"', b'\\', b'\n', 0x00, 0x1f] {
                    let mut text = vec![b'k'; len];
                    text[at] = bad;
                    assert!(!is_plain(&text), "{bad:#04x} at {at} of {len}");
                }
            }
        }
    }

    /// tracing-subscriber 0.3.23's `EscapingWriter` (`fmt/format/escape.rs`), character for
    /// character: the rules [`escape_text_into`] must follow.
    fn escaped_like_tracing_subscriber(text: &str) -> String {
        let mut out = String::new();
        for ch in text.chars() {
            match ch {
                '\x1b' => out.push_str("\\x1b"),
                '\x07' => out.push_str("\\x07"),
                '\x08' => out.push_str("\\x08"),
                '\x0c' => out.push_str("\\x0c"),
                '\x7f' => out.push_str("\\x7f"),
                ch if ch as u32 >= 0x80 && ch as u32 <= 0x9f => {
                    out.push_str(&format!("\\u{{{:x}}}", ch as u32))
                }
                _ => out.push(ch),
            }
        }
        out
    }

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        escape_text_into(&mut out, text.as_bytes());
        String::from_utf8(out).unwrap()
    }

    /// Every character, alone and between others (the byte-wise C1 test must not look past
    /// the end or misread a neighbour), is escaped as tracing-subscriber escapes it.
    #[test]
    fn text_escaping_matches_tracing_subscriber_for_every_character() {
        for c in (0..=0x10_ffff).filter_map(char::from_u32) {
            for text in [
                c.to_string(),
                format!("a{c}"),
                format!("{c}\u{c2}\u{85}{c}"),
            ] {
                assert_eq!(
                    escaped(&text),
                    escaped_like_tracing_subscriber(&text),
                    "U+{:04X}",
                    c as u32
                );
            }
        }
        let mixed = "\x1b]0;t\x07 \u{9b}31m é\u{c2}\u{a9} \r\n\t\0 日本 😀 \\x1b";
        assert_eq!(escaped(mixed), escaped_like_tracing_subscriber(mixed));
    }

    /// The hand-written integer formatting agrees with `Display` at the edges of every width.
    #[test]
    fn integers_are_written_in_decimal() {
        for v in [
            0i128,
            7,
            10,
            99,
            100,
            12345,
            -1,
            -100,
            i64::MIN as i128,
            u64::MAX as i128,
            i128::MIN,
            i128::MAX,
        ] {
            let mut out = Vec::new();
            write_int(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }

    /// Strings long enough for the 8-byte fast path escape exactly as the rules say.
    #[test]
    fn long_strings_escape_like_short_ones() {
        let text = "plain text that is long enough\u{1}\"quoted\" and \\ then é 日本 \n end";
        assert_eq!(s(text), serde_json_like(text));
    }

    /// The escaping rules spelled out independently of `write_str_bytes`.
    fn serde_json_like(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// Quotes, backslashes and control characters are escaped as serde_json escapes them; other
    /// text, U+2028 included, is kept as it is.
    #[test]
    fn escapes_like_json() {
        assert_eq!(s("plain"), "\"plain\"");
        assert_eq!(s("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(s("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(s("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(s("é日\u{2028}"), "\"é日\u{2028}\"");
    }

    /// Floats come out as serde_json writes them (tracing-subscriber's JSON goes through it):
    /// the same text, not only the same value, over special values and a sweep of magnitudes
    /// and digit counts; NaN and the infinities become `null`.
    #[test]
    fn floats_are_written_as_serde_json_writes_them() {
        let mut values = vec![
            1.0,
            -0.0,
            0.1,
            1e300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            20.5,
        ];
        let mut x = 0.000_123_456_789_f64;
        for i in 0..2_000 {
            values.push(x);
            values.push(-x / 3.0);
            x *= if i % 2 == 0 { 7.3 } else { 0.21 };
            if !x.is_finite() || x == 0.0 {
                x = 1.5;
            }
        }
        for value in values {
            let mut out = Vec::new();
            write_f64(&mut out, value);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&value).unwrap()
            );
        }
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut out = Vec::new();
            write_f64(&mut out, value);
            assert_eq!(out, b"null");
        }
    }
}
