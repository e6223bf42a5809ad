//! Hostile and unusual input: huge values, many fields, deep spans, names and strings that need
//! escaping, byte slices, and `Debug`/`Display` implementations that panic, fail or write a
//! great deal. Every line must parse as JSON and nothing may be lost or changed.
//!
//! Large values are compared by length and content, never printed whole on failure.

// The tracing macros recurse once or more per field: the 120-field event below needs more than
// the default limit of 128.
#![recursion_limit = "512"]

mod common;

use common::{Raw, SharedBuf};

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde_json::{json, Map, Value};
use tracing::callsite::{Callsite, Identifier};
use tracing::field::{Empty, FieldSet};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{debug_span, info, info_span, Dispatch, Level, Metadata, Span};
use tracing_subscriber::layer::SubscriberExt;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// What a run left: every line of the file, raw and parsed, and the sink's final stats.
struct Run {
    raw: Vec<String>,
    lines: Vec<Value>,
    stats: logsink::Stats,
    file_len: u64,
}

impl Run {
    /// Checks that every event the test emitted was written and counted: `expected` lines,
    /// `events_written` equal to them, nothing dropped, no error, every byte counted. Tests
    /// call it last, so that a wrong count does not hide a wrong value.
    fn check_stats(&self, expected: usize) {
        assert_eq!(self.lines.len(), expected, "lines in the file");
        let stats = &self.stats;
        assert_eq!(
            stats.events_written, expected as u64,
            "stats.events_written"
        );
        assert_eq!(stats.events_dropped, 0, "stats.events_dropped");
        assert_eq!(
            stats.write_errors, 0,
            "stats.write_errors: {:?}",
            stats.last_error
        );
        assert_eq!(stats.bytes_written, self.file_len, "stats.bytes_written");
    }
}

/// Runs `emit` with only our sink installed (on a thread of its own, failing instead of hanging),
/// shuts it down, and reads every line back, parsed.
fn run(emit: impl FnOnce() + Send + 'static) -> Run {
    common::run_or_fail_on_hang("a hostile-input run", move || {
        let tmp = tempfile::tempdir().unwrap();
        let (layer, guard) = common::sink(tmp.path());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        let stats = guard.shutdown_blocking().expect("shutting the sink down");
        read_back(tmp.path(), stats)
    })
}

fn read_back(dir: &std::path::Path, stats: logsink::Stats) -> Run {
    let path = common::log_path(dir);
    let raw = common::read_lines(&path);
    let lines = raw
        .iter()
        .enumerate()
        .map(|(i, line)| common::parse_line(line, &format!("line {}", i + 1)))
        .collect();
    Run {
        raw,
        lines,
        stats,
        file_len: std::fs::metadata(&path).unwrap().len(),
    }
}

/// Like [`run`], with `tracing_subscriber::fmt::layer().json()` installed beside our layer:
/// both must write the same JSON values, `"timestamp"` aside. Only for small outputs.
fn run_with_oracle(emit: impl FnOnce() + Send + 'static) -> Run {
    common::run_or_fail_on_hang("a hostile-input run with the reference layer", move || {
        let tmp = tempfile::tempdir().unwrap();
        let (layer, guard) = common::sink(tmp.path());
        let oracle = SharedBuf::default();
        let dispatch = Dispatch::new(
            tracing_subscriber::registry().with(layer).with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(oracle.clone()),
            ),
        );
        tracing::dispatcher::with_default(&dispatch, emit);
        drop(dispatch);
        let stats = guard.shutdown_blocking().expect("shutting the sink down");
        let run = read_back(tmp.path(), stats);

        let theirs = String::from_utf8(oracle.0.lock().unwrap().clone()).unwrap();
        let theirs: Vec<Value> = theirs
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(run.lines.len(), theirs.len(), "line counts differ");
        for (i, (a, b)) in run.lines.iter().zip(&theirs).enumerate() {
            if let Some(diff) = first_difference("", &without_timestamp(a), &without_timestamp(b)) {
                panic!(
                    "line {}: ours differs from tracing-subscriber's at {diff}",
                    i + 1
                );
            }
        }
        run
    })
}

/// Where two JSON values first differ, as a path with both sides, or `None` if they are equal.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let sub = format!("{path}.{key:?}");
                match (x.get(key), y.get(key)) {
                    (Some(v), Some(w)) => {
                        if let Some(d) = first_difference(&sub, v, w) {
                            return Some(d);
                        }
                    }
                    (v, w) => return Some(format!("{sub}: ours {v:?}, theirs {w:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(&format!("{path}[{i}]"), v, w) {
                    return Some(d);
                }
            }
            (x.len() != y.len())
                .then(|| format!("{path}: ours has {} items, theirs {}", x.len(), y.len()))
        }
        _ => (a != b).then(|| {
            format!(
                "{path}: ours {}, theirs {}",
                common::shorten(&a.to_string()),
                common::shorten(&b.to_string())
            )
        }),
    }
}

/// The names of the `"fields"` object of a raw line, in the order they appear in the text
/// (serde_json's `Map` sorts them). Relies on `"fields"` being the first object in the line.
fn field_names_in_order(raw: &str) -> Vec<String> {
    let start = raw.find("\"fields\":").expect("no fields") + "\"fields\":".len();
    let mut de = serde_json::Deserializer::from_str(&raw[start..]).into_iter::<Value>();
    let fields = de.next().unwrap().unwrap();
    let fields = fields.as_object().unwrap();
    // Walk the text: each key is followed by `:` at nesting depth 1.
    let text = &raw[start..];
    let mut names = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b'"' => {
                let mut end = i + 1;
                while bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                let s: String = serde_json::from_str(&text[i..=end]).unwrap();
                if depth == 1 && bytes.get(end + 1) == Some(&b':') {
                    names.push(s);
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), fields.len(), "field names read from the text");
    names
}

fn without_timestamp(line: &Value) -> Value {
    let mut line = line.clone();
    let ts = line.as_object_mut().unwrap().remove("timestamp");
    assert!(ts.is_some_and(|t| t.is_string()), "no string timestamp");
    line
}

fn fields(line: &Value) -> &Map<String, Value> {
    line["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no \"fields\" object in {}", short(line)))
}

fn field<'a>(line: &'a Value, name: &str) -> &'a Value {
    fields(line)
        .get(name)
        .unwrap_or_else(|| panic!("no field {name:?} in {}", short(line)))
}

fn field_str<'a>(line: &'a Value, name: &str) -> &'a str {
    field(line, name)
        .as_str()
        .unwrap_or_else(|| panic!("field {name:?} is not a string"))
}

fn short(line: &Value) -> String {
    common::shorten(&line.to_string())
}

/// Compares two long strings without printing them.
fn assert_same_text(what: &str, got: &str, want: &str) {
    if got != want {
        let at = got
            .bytes()
            .zip(want.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let around = |s: &str| {
            let mut from = at.saturating_sub(20);
            while !s.is_char_boundary(from) {
                from -= 1;
            }
            let mut to = (at + 20).min(s.len());
            while !s.is_char_boundary(to) {
                to += 1;
            }
            s[from..to].to_owned()
        };
        panic!(
            "{what}: {} bytes, expected {}; first difference at byte {at}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            around(got),
            around(want)
        );
    }
}

/// A deterministic string of `len` bytes (rounded down to a character boundary) that mixes
/// characters JSON must escape, multi-byte characters and plain ASCII.
fn mixed_text(len: usize, seed: u64) -> String {
    const ALPHABET: &[char] = &[
        'a',
        'b',
        'z',
        'Q',
        '0',
        ' ',
        '"',
        '\\',
        '/',
        '\n',
        '\r',
        '\t',
        '\u{0}',
        '\u{1}',
        '\u{8}',
        '\u{c}',
        '\u{1f}',
        '\u{7f}',
        'é',
        'ß',
        '日',
        '本',
        '😀',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{10ffff}',
        '{',
        '}',
        ':',
        ',',
    ];
    let mut state = seed | 1;
    let mut s = String::with_capacity(len + 4);
    while s.len() < len {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Mostly ASCII letters, so the text looks like real data.
        let c = if state.is_multiple_of(4) {
            ALPHABET[(state >> 8) as usize % ALPHABET.len()]
        } else {
            (b'a' + ((state >> 16) % 26) as u8) as char
        };
        if s.len() + c.len_utf8() > len {
            break;
        }
        s.push(c);
    }
    s
}

/// Every character that needs care: all C0 controls, DEL, C1 controls, the JSON-in-JavaScript
/// separators, a BOM, noncharacters, the highest code point, quotes and backslashes.
fn every_control_char() -> String {
    let mut s: String = (0u32..=0x1f).map(|c| char::from_u32(c).unwrap()).collect();
    s.extend([
        '\u{7f}',
        '\u{80}',
        '\u{9f}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{fffe}',
        '\u{ffff}',
        '\u{10ffff}',
        '"',
        '\\',
        '/',
        '\'',
        '<',
        '>',
        '&',
    ]);
    s.push_str("\\u0000 \\n \"\\\" end");
    s
}

// ---------------------------------------------------------------------------------------------
// Large values
// ---------------------------------------------------------------------------------------------

const TEN_MB: usize = 10 * 1024 * 1024;

/// A 10 MB string full of characters to escape, as a `&str`, `Debug` and `Display` field, a
/// message and a span field: every copy is written whole and unchanged, events in order.
#[test]
fn ten_megabyte_values_as_str_debug_display_and_span_field() {
    let text: Arc<str> = mixed_text(TEN_MB, 0x5eed).into();
    let t = text.clone();
    let r = run(move || {
        info!(n = 0, big = &*t);
        info!(n = 1, big = ?Raw(&t));
        info!(n = 2, big = %Raw(&t));
        info!(n = 3, "{}", Raw(&t));
        let span = info_span!("huge", big = &*t);
        let _e = span.enter();
        info!(n = 4, small = 1);
        info!(n = 5, small = 2);
    });
    let lines = &r.lines;
    assert_eq!(lines.len(), 6);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(field(line, "n").as_u64(), Some(i as u64), "order");
    }
    for line in &lines[..3] {
        assert_same_text("a 10 MB field", field_str(line, "big"), &text);
    }
    assert_same_text("a 10 MB message", field_str(&lines[3], "message"), &text);
    for line in &lines[4..] {
        assert_same_text(
            "a 10 MB span field in \"span\"",
            line["span"]["big"].as_str().unwrap(),
            &text,
        );
        assert_same_text(
            "a 10 MB span field in \"spans\"",
            line["spans"][0]["big"].as_str().unwrap(),
            &text,
        );
        assert_eq!(line["spans"].as_array().unwrap().len(), 1);
    }
    r.check_stats(6);
}

/// Writes about 100 MB as `PIECES` pieces of about 70 bytes, each tagged with its number, in two
/// `write_str` calls per piece (three million calls in all).
struct ManySmallWrites;

const PIECE_BODY: &str = "0123456789abcdef\"\\\n\u{1}é日😀 padding-padding-padding-padding--";
const PIECE_LEN: usize = 8 + PIECE_BODY.len();
const HUNDRED_MB: usize = 100 * 1024 * 1024;
const PIECES: usize = HUNDRED_MB / PIECE_LEN;

impl fmt::Debug for ManySmallWrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tag = [0u8; 8];
        for i in 0..PIECES {
            let mut n = i;
            for b in tag.iter_mut().rev() {
                *b = b'0' + (n % 10) as u8;
                n /= 10;
            }
            f.write_str(std::str::from_utf8(&tag).unwrap())?;
            f.write_str(PIECE_BODY)?;
        }
        Ok(())
    }
}

/// A 100 MB `Debug` value written in about three million small `write_str` calls comes out
/// whole, every piece in order, between intact events before and after it.
#[test]
fn a_debug_value_of_100_mb_written_in_small_pieces() {
    let started = Instant::now();
    let r = run(|| {
        info!(n = 0, "before");
        info!(n = 1, big = ?ManySmallWrites);
        info!(n = 2, "after");
    });
    let lines = &r.lines;
    assert_eq!(lines.len(), 3);
    assert_eq!(field_str(&lines[0], "message"), "before");
    assert_eq!(field_str(&lines[2], "message"), "after");
    let big = field_str(&lines[1], "big");
    assert_eq!(big.len(), PIECES * PIECE_LEN, "length of the 100 MB value");
    for (i, piece) in big.as_bytes().chunks(PIECE_LEN).enumerate() {
        let want_tag = format!("{i:08}");
        if &piece[..8] != want_tag.as_bytes() || &piece[8..] != PIECE_BODY.as_bytes() {
            panic!(
                "piece {i} of the 100 MB value differs: {:?}",
                String::from_utf8_lossy(piece)
            );
        }
    }
    r.check_stats(3);
    eprintln!("100 MB Debug value: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Many fields
// ---------------------------------------------------------------------------------------------

struct Point {
    x: i32,
    y: i32,
}

impl fmt::Debug for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Point")
            .field("x", &self.x)
            .field("y", &self.y)
            .finish()
    }
}

/// Thirty-two fields of mixed types (integer extremes, NaN, infinities, -0.0, bytes, an error,
/// `Empty`) match tracing-subscriber's JSON: `Empty` is left out, the callsite's field order is
/// kept, and -0.0 keeps its sign.
#[test]
fn thirty_two_fields_of_mixed_types() {
    let r = run_with_oracle(|| {
        let bytes: &[u8] = b"\x00\xff\"";
        let err: &(dyn std::error::Error + 'static) = &fmt::Error;
        info!(
            f0 = 0i64,
            f1 = u64::MAX,
            f2 = i64::MIN,
            f3 = 1.5f64,
            f4 = f64::NAN,
            f5 = true,
            f6 = false,
            f7 = "seven",
            f8 = "ei\"ght\n",
            f9 = ?Point { x: 9, y: -9 },
            f10 = %"ten\u{0}",
            f11 = i128::MIN,
            f12 = u128::MAX,
            f13 = -0.0f64,
            f14 = f64::INFINITY,
            f15 = 15u8,
            f16 = -16i16,
            f17 = 17u32,
            f18 = 18.25f32,
            f19 = %'x',
            f20 = bytes,
            f21 = err,
            f22 = Empty,
            f23 = Some(23u64),
            f24 = ?None::<u8>,
            f25 = ?"quoted \"debug\"",
            f26 = 1e300,
            f27 = 5e-324,
            f28 = usize::MAX,
            f29 = isize::MIN,
            f30 = "",
            f31 = "last",
        );
    });
    let lines = &r.lines;
    let f = fields(&lines[0]);
    let expected = json!({
        "f0": 0, "f1": u64::MAX, "f2": i64::MIN, "f3": 1.5, "f4": null, "f5": true, "f6": false,
        "f7": "seven", "f8": "ei\"ght\n", "f9": "Point { x: 9, y: -9 }", "f10": "ten\u{0}",
        "f11": i128::MIN.to_string(), "f12": u128::MAX.to_string(), "f13": -0.0, "f14": null,
        "f15": 15, "f16": -16, "f17": 17, "f18": 18.25, "f19": "x", "f20": "[00 ff 22]",
        "f21": "an error occurred when formatting an argument", "f23": 23,
        "f24": "None", "f25": "\"quoted \\\"debug\\\"\"", "f26": 1e300, "f27": 5e-324,
        "f28": usize::MAX as u64, "f29": isize::MIN as i64, "f30": "", "f31": "last",
    });
    assert_eq!(&Value::Object(f.clone()), &expected);
    // Field order is the callsite's (f22 is `Empty`: absent).
    let names = field_names_in_order(&r.raw[0]);
    let want: Vec<String> = (0..32)
        .filter(|&i| i != 22)
        .map(|i| format!("f{i}"))
        .collect();
    assert_eq!(names, want);
    assert!(
        f["f13"].as_f64().unwrap().is_sign_negative(),
        "-0.0 keeps its sign"
    );
}

/// tracing 0.1.44 has no limit of its own on the number of fields (32 was the limit of older
/// versions): the macros take as many as the crate's recursion limit lets them expand (about
/// 120 at the default limit of 128).
#[test]
fn one_hundred_and_twenty_fields_from_a_macro() {
    let r = run_with_oracle(|| {
        info!(
            a0 = 0,
            a1 = 1,
            a2 = 2,
            a3 = 3,
            a4 = 4,
            a5 = 5,
            a6 = 6,
            a7 = 7,
            a8 = 8,
            a9 = 9,
            a10 = 10,
            a11 = 11,
            a12 = 12,
            a13 = 13,
            a14 = 14,
            a15 = 15,
            a16 = 16,
            a17 = 17,
            a18 = 18,
            a19 = 19,
            a20 = 20,
            a21 = 21,
            a22 = 22,
            a23 = 23,
            a24 = 24,
            a25 = 25,
            a26 = 26,
            a27 = 27,
            a28 = 28,
            a29 = 29,
            a30 = 30,
            a31 = 31,
            a32 = 32,
            a33 = 33,
            a34 = 34,
            a35 = 35,
            a36 = 36,
            a37 = 37,
            a38 = 38,
            a39 = 39,
            a40 = 40,
            a41 = 41,
            a42 = 42,
            a43 = 43,
            a44 = 44,
            a45 = 45,
            a46 = 46,
            a47 = 47,
            a48 = 48,
            a49 = 49,
            a50 = 50,
            a51 = 51,
            a52 = 52,
            a53 = 53,
            a54 = 54,
            a55 = 55,
            a56 = 56,
            a57 = 57,
            a58 = 58,
            a59 = 59,
            a60 = 60,
            a61 = 61,
            a62 = 62,
            a63 = 63,
            a64 = 64,
            a65 = 65,
            a66 = 66,
            a67 = 67,
            a68 = 68,
            a69 = 69,
            a70 = 70,
            a71 = 71,
            a72 = 72,
            a73 = 73,
            a74 = 74,
            a75 = 75,
            a76 = 76,
            a77 = 77,
            a78 = 78,
            a79 = 79,
            a80 = 80,
            a81 = 81,
            a82 = 82,
            a83 = 83,
            a84 = 84,
            a85 = 85,
            a86 = 86,
            a87 = 87,
            a88 = 88,
            a89 = 89,
            a90 = 90,
            a91 = 91,
            a92 = 92,
            a93 = 93,
            a94 = 94,
            a95 = 95,
            a96 = 96,
            a97 = 97,
            a98 = 98,
            a99 = 99,
            a100 = 100,
            a101 = 101,
            a102 = 102,
            a103 = 103,
            a104 = 104,
            a105 = 105,
            a106 = 106,
            a107 = 107,
            a108 = 108,
            a109 = 109,
            a110 = 110,
            a111 = 111,
            a112 = 112,
            a113 = 113,
            a114 = 114,
            a115 = 115,
            a116 = 116,
            a117 = 117,
            a118 = 118,
            a119 = 119
        );
    });
    let lines = &r.lines;
    let f = fields(&lines[0]);
    assert_eq!(f.len(), 120);
    for i in 0..120 {
        assert_eq!(f[&format!("a{i}")].as_u64(), Some(i as u64));
    }
    let names = field_names_in_order(&r.raw[0]);
    assert_eq!(names, (0..120).map(|i| format!("a{i}")).collect::<Vec<_>>());
    r.check_stats(1);
}

/// A hand-built callsite with thousands of fields (past what one byte of field index holds),
/// as a program that builds its own `Metadata` may have.
const MANY: usize = 3000;

struct ManyFields {
    meta: OnceLock<&'static Metadata<'static>>,
}

impl Callsite for ManyFields {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        many_fields_metadata()
    }
}

static MANY_FIELDS: ManyFields = ManyFields {
    meta: OnceLock::new(),
};

fn many_fields_metadata() -> &'static Metadata<'static> {
    MANY_FIELDS.meta.get_or_init(|| {
        let names: Vec<&'static str> = (0..MANY)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect();
        Box::leak(Box::new(Metadata::new(
            "many fields",
            "hostile::many",
            Level::INFO,
            None,
            None,
            None,
            FieldSet::new(names.leak(), Identifier(&MANY_FIELDS)),
            Kind::EVENT,
        )))
    })
}

/// An event on a hand-built callsite with 3,000 fields: every field is written with its value,
/// in the callsite's order, and the line matches tracing-subscriber's JSON.
#[test]
fn thousands_of_fields_on_a_hand_built_callsite() {
    let r = run_with_oracle(|| {
        let meta = many_fields_metadata();
        let all: Vec<tracing::field::Field> = meta.fields().iter().collect();
        let strings: Vec<String> = (0..MANY).map(|i| format!("v{i}\"")).collect();
        let values: Vec<Box<dyn tracing::Value>> = (0..MANY)
            .map(|i| -> Box<dyn tracing::Value> {
                match i % 4 {
                    0 => Box::new(i as u64),
                    1 => Box::new(-(i as i64)),
                    2 => Box::new(i % 8 == 2),
                    _ => Box::new(strings[i].clone()),
                }
            })
            .collect();
        let pairs: Vec<(&tracing::field::Field, Option<&dyn tracing::Value>)> = all
            .iter()
            .zip(&values)
            .map(|(f, v)| (f, Some(&**v)))
            .collect();
        let pairs: Box<[_; MANY]> = pairs.into_boxed_slice().try_into().ok().unwrap();
        tracing::Event::dispatch(meta, &meta.fields().value_set(&*pairs));
    });
    let lines = &r.lines;
    let f = fields(&lines[0]);
    assert_eq!(f.len(), MANY);
    let names = field_names_in_order(&r.raw[0]);
    assert_eq!(
        names,
        (0..MANY).map(|i| format!("k{i}")).collect::<Vec<_>>()
    );
    for i in 0..MANY {
        let value = &f[&format!("k{i}")];
        let want = match i % 4 {
            0 => json!(i as u64),
            1 => json!(-(i as i64)),
            2 => json!(i % 8 == 2),
            _ => json!(format!("v{i}\"")),
        };
        assert_eq!(value, &want, "field k{i}");
    }
    r.check_stats(1);
}

// ---------------------------------------------------------------------------------------------
// Deep spans
// ---------------------------------------------------------------------------------------------

const DEPTH: usize = 200;

fn make_span(i: usize) -> Span {
    match i % 4 {
        0 => info_span!("alpha", depth = i, kind = "a", note = Empty),
        1 => info_span!(
            "beta \"quoted\"",
            depth = i,
            ratio = i as f64 / 8.0,
            note = Empty
        ),
        2 => {
            debug_span!("gamma\\back\n", depth = i, flag = i.is_multiple_of(3), text = %format!("t{i}\u{1}"), note = Empty)
        }
        _ => info_span!(
            "δ-\u{7f}",
            depth = i,
            "odd \"key\"" = i as i64 - 100,
            note = Empty
        ),
    }
}

fn expected_span(i: usize) -> Value {
    match i % 4 {
        0 => json!({"name": "alpha", "depth": i, "kind": "a"}),
        1 => json!({"name": "beta \"quoted\"", "depth": i, "ratio": i as f64 / 8.0}),
        2 => {
            json!({"name": "gamma\\back\n", "depth": i, "flag": i.is_multiple_of(3), "text": format!("t{i}\u{1}")})
        }
        _ => json!({"name": "δ-\u{7f}", "depth": i, "odd \"key\"": i as i64 - 100}),
    }
}

/// Spans nested 200 deep, with names and keys that need escaping: `span` and `spans` hold the
/// whole chain, values recorded later, and the shorter chain as spans close, and every line
/// matches tracing-subscriber's JSON.
#[test]
fn spans_nested_two_hundred_deep() {
    let r = run_with_oracle(|| {
        let mut entered = Vec::with_capacity(DEPTH);
        for i in 0..DEPTH {
            entered.push(make_span(i).entered());
        }
        info!(at = "leaf");
        info!(at = "leaf again");
        entered[100].record("note", "recorded at 100");
        // Not on a span with an escaped key: tracing-subscriber loses that record (see
        // `recording_on_a_span_whose_key_needs_escaping`).
        entered[DEPTH - 2].record("note", 198);
        info!(at = "after record");
        while entered.len() > 50 {
            drop(entered.pop());
        }
        info!(at = "depth 50");
        while let Some(e) = entered.pop() {
            drop(e);
        }
        info!(at = "outside");
    });
    let lines = &r.lines;
    assert_eq!(lines.len(), 5);
    let chain = |n: usize| -> Vec<Value> { (0..n).map(expected_span).collect() };
    for line in &lines[..2] {
        assert_eq!(line["spans"], Value::Array(chain(DEPTH)));
        assert_eq!(line["span"], expected_span(DEPTH - 1));
    }
    let mut recorded = chain(DEPTH);
    recorded[100]["note"] = json!("recorded at 100");
    recorded[DEPTH - 2]["note"] = json!(198);
    assert_eq!(lines[2]["spans"], Value::Array(recorded.clone()));
    assert_eq!(lines[2]["span"], recorded[DEPTH - 1]);
    assert_eq!(lines[3]["spans"], Value::Array(recorded[..50].to_vec()));
    assert_eq!(lines[3]["span"], expected_span(49));
    assert!(lines[4].get("span").is_none() && lines[4].get("spans").is_none());
    r.check_stats(5);
}

/// `Span::record` on a span that has a field name with a quote in it. (tracing-subscriber's
/// JSON layer silently drops this record: it re-parses the span's fields into a map with
/// borrowed `&str` keys, which fails on an escaped key. We keep it.)
#[test]
fn recording_on_a_span_whose_key_needs_escaping() {
    let r = run(|| {
        let span = info_span!("s", "odd \"key\"" = 1, note = Empty).entered();
        span.record("note", "recorded");
        info!("inside");
    });
    assert_eq!(
        r.lines[0]["span"],
        json!({"name": "s", "odd \"key\"": 1, "note": "recorded"})
    );
    r.check_stats(1);
}

/// Spans exited and re-entered out of stack order: each of the five events, `span` and `spans`
/// included, matches tracing-subscriber's JSON.
#[test]
fn spans_exited_out_of_order() {
    run_with_oracle(|| {
        let a = info_span!("a", n = 1).entered();
        let b = info_span!("b", n = 2).entered();
        let c = info_span!("c", n = 3).entered();
        info!("all three");
        let b = b.exit(); // not the innermost
        info!("b exited");
        drop(a);
        info!("a exited");
        let _b = b.entered();
        info!("b re-entered");
        drop(c);
        info!("c exited");
    })
    .check_stats(5);
}

// ---------------------------------------------------------------------------------------------
// Names and strings that need escaping
// ---------------------------------------------------------------------------------------------

/// Field, span and target names with quotes, backslashes, control characters, non-ASCII text
/// and an empty name are escaped, keep the callsite's order and match tracing-subscriber's JSON.
#[test]
fn field_span_and_target_names_that_need_escaping() {
    let r = run_with_oracle(|| {
        let span = info_span!(
            target: "tar\"get\\\n",
            "span \"name\"\t\u{0}",
            "sp\"an\\key\u{1f}" = 1,
            "ключ" = "v"
        );
        let _e = span.enter();
        tracing::event!(
            target: "ta\"rg\u{2028}et\\",
            Level::INFO,
            "we\"ird\\name\t" = 1,
            "ü\u{0}ñ" = "x",
            "\u{2028}line\u{2029}" = true,
            "" = 3,
            "{}:," = 4.5,
            "\u{7f}\u{1b}[31m" = -1,
            "日本 😀" = "ok",
        );
    });
    let lines = &r.lines;
    let line = &lines[0];
    assert_eq!(line["target"], "ta\"rg\u{2028}et\\");
    let f = fields(line);
    let names = field_names_in_order(&r.raw[0]);
    assert_eq!(
        names,
        [
            "we\"ird\\name\t",
            "ü\u{0}ñ",
            "\u{2028}line\u{2029}",
            "",
            "{}:,",
            "\u{7f}\u{1b}[31m",
            "日本 😀"
        ]
    );
    assert_eq!(f["we\"ird\\name\t"], 1);
    assert_eq!(f[""], 3);
    assert_eq!(
        line["span"],
        json!({"name": "span \"name\"\t\u{0}", "sp\"an\\key\u{1f}": 1, "ключ": "v"})
    );
    r.check_stats(1);
}

/// A string of every control and special character comes back unchanged as a `&str`, raw
/// `Debug`, `Display` and message value (and a `String`'s `Debug` as its escaped form), in events
/// and spans alike, matching tracing-subscriber's JSON.
#[test]
fn every_control_character_in_every_kind_of_value() {
    let text = every_control_char();
    let t = text.clone();
    let r = run_with_oracle(move || {
        let span = info_span!("s", as_str = t.as_str(), as_display = %Raw(&t), as_debug = ?t);
        let _e = span.enter();
        info!(as_str = t.as_str(), as_raw_debug = ?Raw(&t), as_display = %Raw(&t), as_debug = ?t);
        info!("{}", t);
        info!(message = t.as_str());
    });
    let lines = &r.lines;
    let debugged = format!("{text:?}");
    let line = &lines[0];
    assert_eq!(field_str(line, "as_str"), text);
    assert_eq!(field_str(line, "as_raw_debug"), text);
    assert_eq!(field_str(line, "as_display"), text);
    assert_eq!(field_str(line, "as_debug"), debugged);
    assert_eq!(field_str(&lines[1], "message"), text);
    assert_eq!(field_str(&lines[2], "message"), text);
    assert_eq!(line["span"]["as_str"], text.as_str());
    assert_eq!(line["span"]["as_display"], text.as_str());
    assert_eq!(line["span"]["as_debug"], debugged.as_str());
    r.check_stats(3);
}

/// Each ASCII character and U+2028/U+2029, one event apiece, reads back as itself and matches
/// tracing-subscriber's JSON, so an escaping mistake points at the character.
#[test]
fn every_control_character_on_its_own() {
    // One event per character, so an escaping mistake points at the character.
    let r = run_with_oracle(|| {
        for c in (0u32..=0x7f)
            .filter_map(char::from_u32)
            .chain(['\u{2028}', '\u{2029}'])
        {
            let s = format!("<{c}>");
            info!(code = c as u32, s = s.as_str());
        }
    });
    let lines = &r.lines;
    assert_eq!(lines.len(), 130);
    for line in lines {
        let c = char::from_u32(field(line, "code").as_u64().unwrap() as u32).unwrap();
        assert_eq!(
            field_str(line, "s"),
            format!("<{c}>"),
            "character U+{:04X}",
            c as u32
        );
    }
}

/// `&[u8]` is a tracing `Value`; it need not be UTF-8. Events show it as tracing's hex `Debug`
/// (`"[00 ff]"`), spans as an array of numbers, like tracing-subscriber's JSON.
#[test]
fn byte_slices_that_are_not_utf8() {
    let all: Vec<u8> = (0..=255u8).collect();
    let invalid: &'static [u8] = b"\xff\xfe\xc0\x80\xed\xa0\x80\x80\"\\\n\x00";
    let a = all.clone();
    let r = run_with_oracle(move || {
        let span = info_span!("bytes", invalid = invalid, empty = &b""[..]);
        let _e = span.enter();
        info!(invalid = invalid, all = &a[..], empty = &b""[..]);
    });
    let lines = &r.lines;
    let line = &lines[0];
    let hex = |b: &[u8]| {
        format!(
            "[{}]",
            b.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    assert_eq!(field_str(line, "invalid"), hex(invalid));
    assert_eq!(field_str(line, "all"), hex(&all));
    assert_eq!(field_str(line, "empty"), "[]");
    assert_eq!(line["span"]["invalid"], json!(invalid));
    assert_eq!(line["span"]["empty"], json!([]));
    r.check_stats(1);
}

/// A `Debug` that logs: tracing does not re-enter a dispatcher that is already handling an
/// event on this thread, so the inner event goes nowhere and the outer one is intact.
#[test]
fn a_debug_impl_that_logs_while_being_formatted() {
    struct Logs;
    impl fmt::Debug for Logs {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer-")?;
            info!(inner = true, "from inside Debug");
            f.write_str("value")
        }
    }
    let r = run(|| {
        info!(v = ?Logs, "outer");
        info!("next");
    });
    let lines = &r.lines;
    let messages: Vec<&str> = lines.iter().map(|l| field_str(l, "message")).collect();
    assert_eq!(messages, ["outer", "next"]);
    assert_eq!(field_str(&lines[0], "v"), "outer-value");
    r.check_stats(2);
}

// ---------------------------------------------------------------------------------------------
// Debug and Display implementations that misbehave
// ---------------------------------------------------------------------------------------------

/// Writes part of its text (with a quote, so a cut line would be invalid JSON), then panics.
struct PanicsMidway;

impl fmt::Debug for PanicsMidway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PARTIAL-OUTPUT \"unterminated")?;
        for _ in 0..10_000 {
            f.write_str("more partial output ")?;
        }
        panic!("Debug panicked midway (expected by the test)");
    }
}

/// Runs `f`, which must panic; the panic is the caller's own and stays with it.
fn expect_panic(f: impl FnOnce()) {
    let result = catch_unwind(AssertUnwindSafe(f));
    assert!(result.is_err(), "the Debug impl was expected to panic");
}

/// The panic unwinds out of the caller's `info!`: that event is never written (not even in
/// part), is not counted as written or dropped (it was never handed to the sink), and the
/// writer and every later event are unaffected.
#[test]
fn a_debug_impl_that_panics_midway() {
    let r = run(|| {
        let span = info_span!("request", id = 7);
        let _e = span.enter();
        for i in 0..3 {
            info!(seq = i, "before");
        }
        expect_panic(|| info!(seq = 99, bad = ?PanicsMidway, after = 1));
        expect_panic(|| info!(seq = 98, "{:?}", PanicsMidway));
        for i in 3..6 {
            info!(seq = i, "after");
        }
        // Also a panic outside any span, and a big partial value.
        drop(_e);
        expect_panic(|| info!(seq = 97, bad = ?PanicsMidway));
        info!(seq = 6, "outside");
    });
    let lines = &r.lines;
    assert_eq!(lines.len(), 7, "only the events that did not panic");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(field(line, "seq").as_u64(), Some(i as u64));
        assert!(!line.to_string().contains("PARTIAL-OUTPUT"));
    }
    for line in &lines[..6] {
        assert_eq!(line["span"], json!({"name": "request", "id": 7}));
    }
    assert!(lines[6].get("span").is_none());
    r.check_stats(7);
}

/// A panic while a span's fields are formatted at creation: the span never exists for the
/// caller; events in other spans are unaffected.
#[test]
fn a_debug_impl_that_panics_in_a_new_span() {
    let r = run(|| {
        let outer = info_span!("outer", n = 1).entered();
        expect_panic(|| {
            let _s = info_span!("bad", v = ?PanicsMidway);
        });
        info!(seq = 0u64, "in outer");
        let inner = info_span!("inner", n = 2).entered();
        info!(seq = 1u64, "in inner");
        drop(inner);
        drop(outer);
        info!(seq = 2u64, "outside");
    });
    let lines = &r.lines;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["spans"], json!([{"name": "outer", "n": 1}]));
    assert_eq!(
        lines[1]["spans"],
        json!([{"name": "outer", "n": 1}, {"name": "inner", "n": 2}])
    );
    assert!(lines[2].get("span").is_none());
    r.check_stats(3);
}

/// A panic while `Span::record` formats a value. The span stays usable: later events inside it
/// (and spans created under it) are written with the span's last good fields. (The layer
/// formats recorded values before it takes the span's extensions lock, so the panic cannot
/// poison that lock.)
#[test]
fn a_debug_impl_that_panics_in_span_record() {
    let r = run(|| {
        let span = info_span!("victim", n = 1, v = Empty);
        let _e = span.enter();
        info!(seq = 0u64);
        expect_panic(|| {
            span.record("v", tracing::field::debug(PanicsMidway));
        });
        let later = catch_unwind(|| {
            info!(seq = 1u64, "after the panic");
            let _child = info_span!("child", m = 2).entered();
            info!(seq = 2u64, "in a child");
        });
        assert!(
            later.is_ok(),
            "an event after a panic in Span::record panicked too"
        );
    });
    let lines = &r.lines;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["span"]["n"], 1);
    assert_eq!(lines[2]["spans"][1], json!({"name": "child", "m": 2}));
    r.check_stats(3);
}

/// Returns `fmt::Error` after writing part of its text.
struct FailsMidway;

impl fmt::Display for FailsMidway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("written before \"the error\"")?;
        Err(fmt::Error)
    }
}

impl fmt::Debug for FailsMidway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A `Display` or `Debug` that returns `fmt::Error` midway: the value is the text written
/// before the error, and the event and the rest of its fields are written as usual.
/// (tracing-subscriber's JSON layer panics here instead: it formats with `format!`.)
#[test]
fn a_display_impl_that_returns_an_error_midway() {
    let r = run(|| {
        let span = info_span!("s", d = %FailsMidway);
        let _e = span.enter();
        info!(a = 1, d = %FailsMidway, g = ?FailsMidway, b = 2);
        info!("msg {} tail", FailsMidway);
        info!(after = true);
    });
    let lines = &r.lines;
    assert_eq!(lines.len(), 3);
    let partial = "written before \"the error\"";
    let f = fields(&lines[0]);
    assert_eq!(
        Value::Object(f.clone()),
        json!({"a": 1, "d": partial, "g": partial, "b": 2})
    );
    assert_eq!(lines[0]["span"]["d"], partial);
    // `format_args!` stops at the error: the message is cut there too.
    assert_eq!(field_str(&lines[1], "message"), format!("msg {partial}"));
    assert_eq!(field(&lines[2], "after"), true);
    r.check_stats(3);
}

/// A user event that looks like one from `tracing-log` (target `log`, a `log.target` field).
/// tracing-subscriber recognises tracing-log's events by their callsite, so for a user's own
/// callsite it keeps `"target": "log"`, and so do we.
#[test]
fn an_event_that_pretends_to_come_from_tracing_log() {
    run_with_oracle(|| {
        tracing::event!(target: "log", Level::INFO, "log.target" = "spoofed\"target", "hello");
    })
    .check_stats(1);
}
