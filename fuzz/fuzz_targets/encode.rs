//! Fuzzes the event encoder and JSON writer through logsink's public API, differentially
//! against `tracing_subscriber::fmt::layer().json()`.
//!
//! One sink (in a temporary folder) and one reference JSON layer share a registry for the whole
//! fuzzing process. Each input is turned into a span and a few events whose values of every
//! kind — strings, `Debug` and `Display` text (also written in many small pieces), integers,
//! 128-bit integers, floats, bools, byte slices — come from the input. After each input the
//! sink is flushed and the new lines are read back from its file; the target panics (a crash
//! for libFuzzer) unless:
//!
//! - there is exactly one new line per event, each one valid JSON;
//! - each string value round-trips exactly, and each other value is what was emitted;
//! - each line is the same JSON value as the reference layer's line, `"timestamp"` aside (span
//!   floats may differ by one ULP: the reference re-parses them with a lossy float parser).
//!
//! Field names are `'static`, so they are fixed (some need escaping); hand-built callsites let
//! any kind of value sit in any field.

#![no_main]

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use tracing::callsite::{Callsite, Identifier};
use tracing::field::{DebugValue, DisplayValue, Field, FieldSet, Value};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Level, Metadata, Span};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

// ---------------------------------------------------------------------------------------------
// The input
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
enum Val {
    Str(String),
    /// `?value` whose `Debug` writes the text as is.
    Debug(String),
    /// `%value` whose `Display` writes the text as is.
    Display(String),
    /// `?value` whose `Debug` writes the text `count` times, one `write_str` each.
    Repeated(String, u8),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct EventInput {
    level: u8,
    /// One optional value per field of `EVENT_FIELDS`.
    values: [Option<Val>; 5],
}

#[derive(Arbitrary, Debug)]
struct SpanInput {
    /// One optional value per field of `SPAN_FIELDS` but the last.
    values: [Option<Val>; 3],
    /// Recorded into the span's last field after it is created.
    recorded: Option<Val>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    span: Option<SpanInput>,
    events: Vec<EventInput>,
}

/// At most this many events per input: enough to mix cached and fresh span bytes.
const MAX_EVENTS: usize = 4;

// ---------------------------------------------------------------------------------------------
// Callsites with fixed names and any kind of value
// ---------------------------------------------------------------------------------------------

const EVENT_FIELDS: [&str; 5] = ["message", "a", "b", "we\"ird\\k\u{1}\u{2028}", ""];
const SPAN_FIELDS: [&str; 4] = ["s", "t", "u", "rec"];

macro_rules! site {
    ($site:ident, $meta:ident, $name:literal, $level:expr, $fields:ident, $kind:expr) => {
        struct $site;
        impl Callsite for $site {
            fn set_interest(&self, _: Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                &$meta
            }
        }
        static $meta: Metadata<'static> = Metadata::new(
            $name,
            "fuzz \"target\"",
            $level,
            None,
            None,
            None,
            FieldSet::new(&$fields, Identifier(&$site)),
            $kind,
        );
    };
}

site!(
    TraceSite,
    TRACE_META,
    "e",
    Level::TRACE,
    EVENT_FIELDS,
    Kind::EVENT
);
site!(
    InfoSite,
    INFO_META,
    "e",
    Level::INFO,
    EVENT_FIELDS,
    Kind::EVENT
);
site!(
    ErrorSite,
    ERROR_META,
    "e",
    Level::ERROR,
    EVENT_FIELDS,
    Kind::EVENT
);
site!(
    SpanSite,
    SPAN_META,
    "fuzz \"span\"\n",
    Level::INFO,
    SPAN_FIELDS,
    Kind::SPAN
);

/// Writes its text as is, `count` times.
struct Raw<'a>(&'a str, usize);

impl fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in 0..self.1 {
            f.write_str(self.0)?;
        }
        Ok(())
    }
}

impl fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A `Val` in a form that is a sized `tracing::Value`.
enum Held<'a> {
    Str(&'a String),
    Debug(DebugValue<Raw<'a>>),
    Display(DisplayValue<Raw<'a>>),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
    Bytes(&'a [u8]),
}

impl<'a> Held<'a> {
    fn new(v: &'a Val) -> Self {
        match v {
            Val::Str(s) => Held::Str(s),
            Val::Debug(s) => Held::Debug(tracing::field::debug(Raw(s, 1))),
            Val::Display(s) => Held::Display(tracing::field::display(Raw(s, 1))),
            Val::Repeated(s, n) => Held::Debug(tracing::field::debug(Raw(s, *n as usize))),
            Val::I64(x) => Held::I64(*x),
            Val::U64(x) => Held::U64(*x),
            Val::I128(x) => Held::I128(*x),
            Val::U128(x) => Held::U128(*x),
            Val::F64(x) => Held::F64(*x),
            Val::Bool(x) => Held::Bool(*x),
            Val::Bytes(b) => Held::Bytes(b),
        }
    }

    fn value(&self) -> &dyn Value {
        match self {
            Held::Str(s) => s,
            Held::Debug(d) => d,
            Held::Display(d) => d,
            Held::I64(x) => x,
            Held::U64(x) => x,
            Held::I128(x) => x,
            Held::U128(x) => x,
            Held::F64(x) => x,
            Held::Bool(x) => x,
            Held::Bytes(b) => b,
        }
    }
}

/// What the value must read back as, in an event (`in_span` false) or a span. Floats are
/// exact: serde_json's `float_roundtrip` parser is correctly rounded, and `-0.0` keeps its sign
/// (checked apart: `Json` equality does not see it).
fn expected(v: &Val, in_span: bool) -> Json {
    match v {
        Val::Str(s) | Val::Debug(s) | Val::Display(s) => Json::from(s.as_str()),
        Val::Repeated(s, n) => Json::from(s.repeat(*n as usize)),
        Val::I64(x) => Json::from(*x),
        Val::U64(x) => Json::from(*x),
        Val::I128(x) => Json::from(x.to_string()),
        Val::U128(x) => Json::from(x.to_string()),
        Val::F64(x) => Json::from(*x), // null unless finite
        Val::Bool(x) => Json::from(*x),
        Val::Bytes(b) if in_span => Json::from(b.clone()),
        Val::Bytes(b) => {
            let hex: Vec<String> = b.iter().map(|b| format!("{b:02x}")).collect();
            Json::from(format!("[{}]", hex.join(" ")))
        }
    }
}

/// `got` is exactly `v`.
fn check_value(what: &str, got: &Json, v: &Val, in_span: bool, line: &str) {
    assert_eq!(got, &expected(v, in_span), "{what}: {}", short(line));
    if let Val::F64(x) = v {
        if x.is_finite() {
            let got = got.as_f64().unwrap();
            assert!(
                got.is_sign_negative() == x.is_sign_negative(),
                "{what}: sign of {x}: {}",
                short(line)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sink, the reference layer, and reading back
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for SharedBuf {
    type Writer = SharedBuf;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

struct State {
    guard: logsink::SinkGuard,
    dispatch: Dispatch,
    reference: SharedBuf,
    path: PathBuf,
    /// How much of the active file has been read.
    offset: Mutex<u64>,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        // Kept for the life of the process (a static is never dropped).
        let dir = tempfile::Builder::new()
            .prefix("logsink-fuzz-")
            .tempdir()
            .expect("a temporary folder")
            .keep();
        let (layer, guard) = logsink::LogSink::builder()
            .directory(&dir)
            .file_name("fuzz")
            // Blocking: a missing line is then always a bug, never a policy drop.
            .overflow(logsink::Overflow::Block)
            .flush_interval(Duration::from_secs(3600))
            // No rotation (an input's lines could straddle two files): `new_output` truncates
            // the file instead, between inputs.
            .build()
            .expect("building the sink");
        let reference = SharedBuf::default();
        let dispatch = Dispatch::new(
            tracing_subscriber::registry().with(layer).with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(reference.clone()),
            ),
        );
        State {
            guard,
            dispatch,
            reference,
            path: dir.join("fuzz.log"),
            offset: Mutex::new(0),
        }
    })
}

/// Past this size the log file is emptied between two inputs, to bound disk use.
const TRUNCATE_AT: u64 = 64 << 20;

/// The bytes the sink wrote since the last call.
fn new_output(state: &State) -> String {
    state.guard.flush_blocking().expect("flushing the sink");
    let mut offset = state.offset.lock().unwrap();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&state.path)
        .expect("opening the log file");
    file.seek(SeekFrom::Start(*offset)).unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    *offset += bytes.len() as u64;
    if *offset > TRUNCATE_AT {
        // Everything is flushed and read, and the writer appends (`O_APPEND`): its next line
        // lands at the new end, 0.
        file.set_len(0).unwrap();
        *offset = 0;
    }
    String::from_utf8(bytes).expect("the log file is not valid UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------------------------

/// A line cut to a readable length for failure messages.
fn short(line: &str) -> String {
    const MAX: usize = 600;
    if line.len() <= MAX {
        return line.to_owned();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &line[..end], line.len())
}

/// Equal JSON values, except that floats inside spans may be one ULP apart (tracing-subscriber
/// stores span fields as JSON text and re-parses them with serde_json's default, not correctly
/// rounded, float parser).
fn same(ours: &Json, theirs: &Json, in_span: bool) -> bool {
    match (ours, theirs) {
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter().all(|(k, v)| {
                    b.get(k)
                        .is_some_and(|w| same(v, w, in_span || k == "span" || k == "spans"))
                })
        }
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| same(v, w, in_span))
        }
        (Json::Number(a), Json::Number(b)) if in_span && a.is_f64() && b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            a == b || (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 1
        }
        _ => ours == theirs,
    }
}

fn check(input: &Input, events: &[&EventInput], ours: &str, theirs: &str) {
    let ours: Vec<&str> = ours.split_terminator('\n').collect();
    let theirs: Vec<&str> = theirs.split_terminator('\n').collect();
    assert_eq!(
        theirs.len(),
        events.len(),
        "reference line count (harness bug?)"
    );
    assert_eq!(
        ours.len(),
        events.len(),
        "one line per event; ours: {:?}; stats: {:?}",
        ours.iter().map(|l| short(l)).collect::<Vec<_>>(),
        state().guard.stats()
    );
    for ((line, their_line), event) in ours.iter().zip(&theirs).zip(events) {
        let mut value: Json = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", short(line)));
        let mut their_value: Json = serde_json::from_str(their_line).unwrap();
        assert!(
            value["timestamp"].is_string(),
            "no timestamp: {}",
            short(line)
        );
        value.as_object_mut().unwrap().remove("timestamp");
        their_value.as_object_mut().unwrap().remove("timestamp");
        assert!(
            same(&value, &their_value, false),
            "ours differs from tracing-subscriber's:\n  ours:   {}\n  theirs: {}",
            short(line),
            short(their_line)
        );

        // The values themselves, independently of the reference.
        let fields = &value["fields"];
        for (name, v) in EVENT_FIELDS.iter().zip(&event.values) {
            let got = &fields[name];
            match v {
                None => assert!(
                    !fields.as_object().unwrap().contains_key(*name),
                    "field {name:?} should be absent: {}",
                    short(line)
                ),
                Some(v) => check_value(&format!("field {name:?}"), got, v, false, line),
            }
        }
        if let Some(span) = &input.span {
            let obj = &value["span"];
            assert_eq!(obj["name"], "fuzz \"span\"\n");
            assert_eq!(value["spans"], Json::Array(vec![obj.clone()]));
            let given = span.values.iter().chain([&span.recorded]);
            for (name, v) in SPAN_FIELDS.iter().zip(given) {
                match v {
                    None => assert!(
                        !obj.as_object().unwrap().contains_key(*name),
                        "span field {name:?} should be absent: {}",
                        short(line)
                    ),
                    Some(v) => {
                        check_value(&format!("span field {name:?}"), &obj[name], v, true, line)
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The target
// ---------------------------------------------------------------------------------------------

fn emit(input: &Input, events: &[&EventInput]) {
    let event_fields: Vec<Field> = INFO_META.fields().iter().collect();
    let span = input.span.as_ref().map(|s| {
        let fields: Vec<Field> = SPAN_META.fields().iter().collect();
        let held: Vec<Option<Held<'_>>> =
            s.values.iter().map(|v| v.as_ref().map(Held::new)).collect();
        let pairs = [0, 1, 2].map(|i| (&fields[i], held[i].as_ref().map(Held::value)));
        let span = Span::new(&SPAN_META, &SPAN_META.fields().value_set(&pairs));
        if let Some(r) = &s.recorded {
            let r = Held::new(r);
            span.record_all(
                &SPAN_META
                    .fields()
                    .value_set(&[(&fields[3], Some(r.value()))]),
            );
        }
        span
    });
    let _entered = span.as_ref().map(Span::enter);
    for event in events {
        let meta: &'static Metadata<'static> = match event.level % 3 {
            0 => &TRACE_META,
            1 => &INFO_META,
            _ => &ERROR_META,
        };
        let held: Vec<Option<Held<'_>>> = event
            .values
            .iter()
            .map(|v| v.as_ref().map(Held::new))
            .collect();
        // The same names at every site: fields of `INFO_META` are valid for the others by index.
        let fields: Vec<Field> = meta.fields().iter().collect();
        debug_assert_eq!(fields.len(), event_fields.len());
        let pairs = [0, 1, 2, 3, 4].map(|i| (&fields[i], held[i].as_ref().map(Held::value)));
        tracing::Event::dispatch(meta, &meta.fields().value_set(&pairs));
    }
}

fuzz_target!(|input: Input| {
    let state = state();
    let events: Vec<&EventInput> = input.events.iter().take(MAX_EVENTS).collect();
    tracing::dispatcher::with_default(&state.dispatch, || emit(&input, &events));
    let ours = new_output(state);
    let theirs = std::mem::take(&mut *state.reference.0.lock().unwrap());
    let theirs = String::from_utf8(theirs).expect("reference output is not UTF-8");
    check(&input, &events, &ours, &theirs);
});
