//! Property test: events (and spans) with arbitrary values — any Unicode text including control
//! characters, any `i64`/`u64`/`bool`, any `f64` including NaN, infinities, subnormals and
//! `-0.0` — go through a sink and come back exactly: every line parses, one line per event,
//! in order, every value as emitted.
//!
//! Field names must be `'static`, so the names are fixed per callsite (a few callsites, some
//! with names that need escaping) and the values are generated.
//!
//! Floats are compared by bits after parsing the number's own text with Rust's correctly
//! rounded parser: serde_json's default parser may be one ULP off. Non-finite floats must be
//! `null`.

mod common;

use std::fmt;

use common::Raw;
use proptest::prelude::*;
use serde_json::Value;
use tracing::field::Empty;
use tracing::{error, info, info_span, warn};
use tracing_subscriber::layer::SubscriberExt;

// ---------------------------------------------------------------------------------------------
// What is generated
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Ev {
    /// `info!(seq, s, i, u, f, b)`.
    Plain {
        s: String,
        i: i64,
        u: u64,
        f: f64,
        b: bool,
    },
    /// `warn!` with field names that need escaping.
    Odd {
        s: String,
        i: i64,
        f: f64,
        b: bool,
        u: u64,
    },
    /// `error!` with a `Debug` value, a `Display` value and a formatted message.
    Formatted { msg: String, d: String, p: String },
}

#[derive(Debug, Clone)]
struct SpanVals {
    s: String,
    i: i64,
    f: f64,
    b: bool,
    /// Recorded into the span after it is created.
    recorded: Option<String>,
}

#[derive(Debug, Clone)]
struct Case {
    ev: Ev,
    span: Option<SpanVals>,
}

/// Characters that stress escaping, mixed with arbitrary ones.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
        1 => prop::sample::select(vec![
            '"', '\\', '/', '\u{7f}', '\u{80}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{feff}',
            '\u{fffe}', '\u{ffff}', '\u{10ffff}', 'é', '日', '😀', '{', '}', ':', ',',
        ]),
        2 => prop::char::range(' ', '~'),
    ]
}

fn any_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any_char(), 0..40).prop_map(String::from_iter)
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::num::f64::ANY,
        any::<u64>().prop_map(f64::from_bits),
        prop::sample::select(vec![
            0.0,
            -0.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            5e-324,
            1e16,
            1e-7,
            0.1,
        ]),
    ]
}

fn any_ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        (
            any_text(),
            any::<i64>(),
            any::<u64>(),
            any_f64(),
            any::<bool>()
        )
            .prop_map(|(s, i, u, f, b)| Ev::Plain { s, i, u, f, b }),
        (
            any_text(),
            any::<i64>(),
            any_f64(),
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(|(s, i, f, b, u)| Ev::Odd { s, i, f, b, u }),
        (any_text(), any_text(), any_text()).prop_map(|(msg, d, p)| Ev::Formatted { msg, d, p }),
    ]
}

fn any_span() -> impl Strategy<Value = SpanVals> {
    (
        any_text(),
        any::<i64>(),
        any_f64(),
        any::<bool>(),
        prop::option::of(any_text()),
    )
        .prop_map(|(s, i, f, b, recorded)| SpanVals {
            s,
            i,
            f,
            b,
            recorded,
        })
}

fn any_case() -> impl Strategy<Value = Case> {
    (any_ev(), prop::option::of(any_span())).prop_map(|(ev, span)| Case { ev, span })
}

// ---------------------------------------------------------------------------------------------
// Emitting
// ---------------------------------------------------------------------------------------------

const SPAN_NAME: &str = "prop \"span\"\t";
const REC: &str = "re\"c\\";

fn emit(seq: u64, case: &Case) {
    let span = case.span.as_ref().map(|v| {
        let span = info_span!(
            "prop \"span\"\t",
            s = v.s.as_str(),
            i = v.i,
            f = v.f,
            b = v.b,
            "re\"c\\" = Empty
        );
        if let Some(r) = &v.recorded {
            span.record(REC, r.as_str());
        }
        span
    });
    let _entered = span.as_ref().map(|s| s.enter());
    match &case.ev {
        Ev::Plain { s, i, u, f, b } => info!(seq, s = s.as_str(), i, u, f, b),
        Ev::Odd { s, i, f, b, u } => warn!(
            seq,
            "we\"ird\\name" = s.as_str(),
            "tab\tname" = i,
            "ü\u{0}ñ" = f,
            "\u{2028}" = b,
            "" = u
        ),
        Ev::Formatted { msg, d, p } => error!(seq, d = ?Raw(d), p = %Raw(p), "{}", msg),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading back: a small JSON reader that keeps each number's text and each object's key order
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    /// The number exactly as written.
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        match self {
            J::Obj(members) => members.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!("not an object: {self:?}"),
        }
    }
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn parse(text: &str) -> J {
        let mut r = Reader { text, at: 0 };
        let value = r.value();
        assert_eq!(r.at, text.len(), "trailing text after the JSON value");
        value
    }

    fn peek(&self) -> u8 {
        self.text.as_bytes()[self.at]
    }

    fn value(&mut self) -> J {
        match self.peek() {
            b'n' => self.literal("null", J::Null),
            b't' => self.literal("true", J::Bool(true)),
            b'f' => self.literal("false", J::Bool(false)),
            b'"' => J::Str(self.string()),
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.peek() == b']' {
                    self.at += 1;
                    return J::Arr(items);
                }
                loop {
                    items.push(self.value());
                    match self.next_byte() {
                        b',' => continue,
                        b']' => return J::Arr(items),
                        c => panic!("unexpected {:?} in an array", c as char),
                    }
                }
            }
            b'{' => {
                self.at += 1;
                let mut members = Vec::new();
                if self.peek() == b'}' {
                    self.at += 1;
                    return J::Obj(members);
                }
                loop {
                    let key = self.string();
                    assert_eq!(self.next_byte(), b':');
                    members.push((key, self.value()));
                    match self.next_byte() {
                        b',' => continue,
                        b'}' => return J::Obj(members),
                        c => panic!("unexpected {:?} in an object", c as char),
                    }
                }
            }
            _ => {
                let start = self.at;
                while self.at < self.text.len()
                    && matches!(self.peek(), b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.at += 1;
                }
                assert!(self.at > start, "no JSON value at byte {start}");
                J::Num(self.text[start..self.at].to_owned())
            }
        }
    }

    fn next_byte(&mut self) -> u8 {
        let b = self.peek();
        self.at += 1;
        b
    }

    fn literal(&mut self, word: &str, value: J) -> J {
        assert!(self.text[self.at..].starts_with(word));
        self.at += word.len();
        value
    }

    /// A string token, unescaped by serde_json.
    fn string(&mut self) -> String {
        let bytes = self.text.as_bytes();
        assert_eq!(bytes[self.at], b'"');
        let start = self.at;
        let mut i = start + 1;
        while bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        self.at = i + 1;
        serde_json::from_str(&self.text[start..self.at]).expect("a JSON string token")
    }
}

// ---------------------------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------------------------

fn check_str(what: &str, got: Option<&J>, want: &str) -> Result<(), TestCaseError> {
    match got {
        Some(J::Str(s)) => {
            prop_assert_eq!(s.as_str(), want, "{}", what);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "{what}: expected string {want:?}, got {other:?}"
        ))),
    }
}

fn check_int(what: &str, got: Option<&J>, want: impl fmt::Display) -> Result<(), TestCaseError> {
    match got {
        Some(J::Num(n)) => {
            prop_assert_eq!(n.clone(), want.to_string(), "{}", what);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "{what}: expected {want}, got {other:?}"
        ))),
    }
}

fn check_bool(what: &str, got: Option<&J>, want: bool) -> Result<(), TestCaseError> {
    let want = J::Bool(want);
    prop_assert_eq!(got, Some(&want), "{}", what);
    Ok(())
}

fn check_f64(what: &str, got: Option<&J>, want: f64) -> Result<(), TestCaseError> {
    if !want.is_finite() {
        prop_assert_eq!(got, Some(&J::Null), "{}: {} must be null", what, want);
        return Ok(());
    }
    match got {
        Some(J::Num(n)) => {
            // Written as a float (with a fraction or an exponent), so it parses back as one.
            prop_assert!(
                n.contains(['.', 'e', 'E']),
                "{}: {} is not written as a float",
                what,
                n
            );
            let parsed: f64 = n.parse().unwrap();
            prop_assert_eq!(
                parsed.to_bits(),
                want.to_bits(),
                "{}: {} read back as {:?}, want {:?}",
                what,
                n,
                parsed,
                want
            );
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "{what}: expected {want:?}, got {other:?}"
        ))),
    }
}

fn check_line(seq: u64, case: &Case, line: &J) -> Result<(), TestCaseError> {
    let fields = line.get("fields").expect("no fields");
    let f = |k: &str| fields.get(k);
    check_int("seq", f("seq"), seq)?;
    let level = match &case.ev {
        Ev::Plain { s, i, u, f: x, b } => {
            prop_assert_eq!(fields.keys(), ["seq", "s", "i", "u", "f", "b"]);
            check_str("s", f("s"), s)?;
            check_int("i", f("i"), i)?;
            check_int("u", f("u"), u)?;
            check_f64("f", f("f"), *x)?;
            check_bool("b", f("b"), *b)?;
            "INFO"
        }
        Ev::Odd { s, i, f: x, b, u } => {
            prop_assert_eq!(
                fields.keys(),
                [
                    "seq",
                    "we\"ird\\name",
                    "tab\tname",
                    "ü\u{0}ñ",
                    "\u{2028}",
                    ""
                ]
            );
            check_str("odd s", f("we\"ird\\name"), s)?;
            check_int("odd i", f("tab\tname"), i)?;
            check_f64("odd f", f("ü\u{0}ñ"), *x)?;
            check_bool("odd b", f("\u{2028}"), *b)?;
            check_int("odd u", f(""), u)?;
            "WARN"
        }
        Ev::Formatted { msg, d, p } => {
            prop_assert_eq!(fields.keys(), ["message", "seq", "d", "p"]);
            check_str("message", f("message"), msg)?;
            check_str("d", f("d"), d)?;
            check_str("p", f("p"), p)?;
            "ERROR"
        }
    };
    let (level, target) = (J::Str(level.into()), J::Str("prop_roundtrip".into()));
    prop_assert_eq!(line.get("level"), Some(&level));
    prop_assert_eq!(line.get("target"), Some(&target));
    match &case.span {
        None => {
            prop_assert!(line.get("span").is_none() && line.get("spans").is_none());
        }
        Some(v) => {
            let span = line.get("span").expect("no span");
            let spans = match line.get("spans") {
                Some(J::Arr(spans)) => spans,
                other => panic!("spans: {other:?}"),
            };
            prop_assert_eq!(spans.len(), 1);
            prop_assert_eq!(&spans[0], span);
            let mut keys = span.keys();
            keys.sort_unstable();
            let mut want = vec!["b", "f", "i", "name", "s"];
            if v.recorded.is_some() {
                want.push(REC);
            }
            want.sort_unstable();
            prop_assert_eq!(keys, want);
            check_str("span name", span.get("name"), SPAN_NAME)?;
            check_str("span s", span.get("s"), &v.s)?;
            check_int("span i", span.get("i"), v.i)?;
            check_f64("span f", span.get("f"), v.f)?;
            check_bool("span b", span.get("b"), v.b)?;
            if let Some(r) = &v.recorded {
                check_str("span recorded", span.get(REC), r)?;
            }
        }
    }
    Ok(())
}

fn run_case(cases: &[Case]) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let (layer, guard) = common::sink(tmp.path());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for (seq, case) in cases.iter().enumerate() {
            emit(seq as u64, case);
        }
    });
    let stats = guard.shutdown_blocking().expect("shutting the sink down");

    let raw = common::read_lines(&common::log_path(tmp.path()));
    prop_assert_eq!(raw.len(), cases.len(), "one line per event");
    prop_assert_eq!(stats.events_written, cases.len() as u64);
    prop_assert_eq!(stats.events_dropped, 0);
    for (seq, (line, case)) in raw.iter().zip(cases).enumerate() {
        // Valid JSON for any reader, not only ours.
        let value: Value = serde_json::from_str(line)
            .map_err(|e| TestCaseError::fail(format!("line {seq}: invalid JSON: {e}: {line}")))?;
        prop_assert!(value.is_object());
        let parsed = Reader::parse(line);
        prop_assert_eq!(
            parsed.keys()[..4].to_vec(),
            ["timestamp", "level", "fields", "target"]
        );
        check_line(seq as u64, case, &parsed)
            .map_err(|e| TestCaseError::fail(format!("line {seq} ({line}): {e}")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    })]

    /// Up to 20 events with arbitrary text, integers, floats and bools, some in spans with recorded
    /// fields, each come back as one valid JSON line, in order, with every value exact.
    #[test]
    fn arbitrary_values_round_trip(cases in prop::collection::vec(any_case(), 0..20)) {
        run_case(&cases)?;
    }
}

/// The test's own JSON reader keeps each number's text and each object's key order, and
/// unescapes strings.
#[test]
fn the_reader_keeps_number_text_and_key_order() {
    let j = Reader::parse(r#"{"b":1.0e-7,"a":[null,true,"x\"y"],"":{}}"#);
    assert_eq!(j.keys(), ["b", "a", ""]);
    assert_eq!(j.get("b"), Some(&J::Num("1.0e-7".into())));
    assert_eq!(
        j.get("a"),
        Some(&J::Arr(vec![J::Null, J::Bool(true), J::Str("x\"y".into())]))
    );
}
