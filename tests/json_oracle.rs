//! The sink's lines must be the same JSON values as `tracing_subscriber::fmt::layer().json()`
//! (with its defaults, and with each of its options set the same way) writes for the same
//! events, except for `"timestamp"`.
//!
//! Every test installs both layers on one registry, emits events, shuts the sink down, and
//! compares the two outputs line by line as parsed `serde_json::Value`s.

mod common;
#[path = "common/options.rs"]
mod options;

use common::SharedBuf;
use options::Opts;

use std::fmt;
use std::io;
use std::path::Path;

use logsink::UtcOffset;
use serde_json::Value;
use tracing::field::Empty;
use tracing::{debug, error, info, info_span, trace, warn, Dispatch};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

/// How the layers are installed for a comparison.
#[derive(Clone, Copy)]
enum Setup {
    /// `registry().with(sink).with(reference)`.
    Plain,
    /// Both layers get the same per-layer level filter.
    Filtered(LevelFilter),
    /// Two of our sinks and the reference on one registry; both files must match.
    TwoSinks,
}

/// Runs `emit` with a registry that has both our layer and the reference JSON layer, shuts the
/// sink down, and checks that both wrote `expected` lines and that each pair of lines is the same
/// JSON value once `"timestamp"` is removed.
fn assert_matches_oracle(expected: usize, emit: impl FnOnce()) {
    assert_matches_oracle_with(Setup::Plain, expected, emit);
}

fn assert_matches_oracle_with(setup: Setup, expected: usize, emit: impl FnOnce()) {
    let run = run_both(setup, emit);
    for (dir, stats) in &run.sinks {
        compare_with_oracle(
            &common::log_path(dir.path()),
            &run.oracle_text,
            expected,
            stats,
            &Opts::DEFAULT,
        );
    }
}

/// What [`run_both`] leaves: each sink's directory and final stats, and the reference output.
struct Run {
    sinks: Vec<(tempfile::TempDir, logsink::Stats)>,
    oracle_text: String,
}

/// Runs `emit` with our sink(s) and the reference layer installed as `setup` says, then shuts
/// the sink(s) down.
fn run_both(setup: Setup, emit: impl FnOnce()) -> Run {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (layer, guard) = common::sink(dirs[0].path());
    let oracle_buf = SharedBuf::default();
    // The reference layer's type depends on the subscriber under it: built in each arm.
    macro_rules! oracle {
        () => {
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(oracle_buf.clone())
        };
    }
    let mut guards = vec![guard];
    let dispatch = match setup {
        Setup::Plain => Dispatch::new(tracing_subscriber::registry().with(layer).with(oracle!())),
        Setup::Filtered(filter) => Dispatch::new(
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .with(oracle!().with_filter(filter)),
        ),
        Setup::TwoSinks => {
            let (second, second_guard) = common::sink(dirs[1].path());
            guards.push(second_guard);
            Dispatch::new(
                tracing_subscriber::registry()
                    .with(layer)
                    .with(oracle!())
                    .with(second),
            )
        }
    };

    tracing::dispatcher::with_default(&dispatch, emit);
    drop(dispatch);

    let oracle_text = String::from_utf8(oracle_buf.0.lock().unwrap().clone()).unwrap();
    let sinks = guards
        .into_iter()
        .zip(dirs)
        .map(|(guard, dir)| {
            let stats = guard.shutdown_blocking().expect("shutting the sink down");
            (dir, stats)
        })
        .collect();
    Run { sinks, oracle_text }
}

fn compare_with_oracle(
    path: &Path,
    oracle_text: &str,
    expected: usize,
    stats: &logsink::Stats,
    opts: &Opts,
) {
    let raw = std::fs::read(path).expect("reading our log file");
    let ours_text = String::from_utf8(raw).expect("our log file is not valid UTF-8");
    assert!(
        ours_text.is_empty() || ours_text.ends_with('\n'),
        "our file does not end with '\\n'"
    );
    let ours: Vec<&str> = ours_text.split_terminator('\n').collect();
    let theirs: Vec<&str> = oracle_text.split_terminator('\n').collect();

    assert_eq!(
        theirs.len(),
        expected,
        "the reference layer wrote an unexpected number of lines (test bug?)"
    );
    assert_eq!(
        ours.len(),
        theirs.len(),
        "our file has {} lines, the reference layer wrote {}\n--- ours:\n{}\n--- reference:\n{}",
        ours.len(),
        theirs.len(),
        common::shorten(&ours_text),
        common::shorten(oracle_text)
    );
    assert_eq!(
        stats.events_written, expected as u64,
        "stats.events_written"
    );
    assert_eq!(stats.events_dropped, 0, "stats.events_dropped");
    assert_eq!(stats.write_errors, 0, "stats.write_errors");
    assert_eq!(
        stats.bytes_written,
        ours_text.len() as u64,
        "stats.bytes_written differs from the size of the file the sink created"
    );

    let now = common::now_micros();
    for (i, (our_line, their_line)) in ours.iter().zip(&theirs).enumerate() {
        let n = i + 1;
        let mut our_value = common::parse_line(our_line, &format!("our line {n}"));
        let mut their_value: Value = serde_json::from_str(their_line).unwrap();

        // Without timestamps the whole values are compared (a flattened field may be called
        // `timestamp`).
        if opts.time {
            compare_timestamps(n, our_line, &mut our_value, &mut their_value, opts, now);
        }

        assert_eq!(
            our_value,
            their_value,
            "line {n} differs (timestamps removed) with {opts:?}\n  ours:      {}\n  reference: {}",
            common::shorten(our_line),
            common::shorten(their_line)
        );
    }
}

/// Takes `"timestamp"` out of both lines and checks ours: RFC 3339 with microseconds, near the
/// current time and the reference's, and (with an offset) ending in the offset the reference
/// writes (which writes a varying number of fractional digits: those are not compared).
fn compare_timestamps(
    n: usize,
    our_line: &str,
    our_value: &mut Value,
    their_value: &mut Value,
    opts: &Opts,
    now: i64,
) {
    let our_ts = our_value
        .as_object_mut()
        .unwrap()
        .remove("timestamp")
        .unwrap_or_else(|| panic!("our line {n} has no \"timestamp\": {our_line}"));
    let our_ts = our_ts
        .as_str()
        .unwrap_or_else(|| panic!("our line {n}: \"timestamp\" is not a string: {our_ts}"));
    let checked = match opts.offset {
        None => common::check_timestamp(our_ts).map(|micros| (micros, "Z".to_owned())),
        Some(_) => options::split_timestamp(our_ts, Some(6)),
    };
    let (our_micros, our_suffix) = checked
        .unwrap_or_else(|e| panic!("our line {n}: {e}\n  line: {}", common::shorten(our_line)));
    assert!(
        (our_micros - now).abs() < 600_000_000,
        "our line {n}: timestamp {our_ts} is nowhere near the current time"
    );
    let Some(Value::String(their_ts)) = their_value.as_object_mut().unwrap().remove("timestamp")
    else {
        return;
    };
    let theirs = match opts.offset {
        None => common::check_timestamp(&their_ts).map(|micros| (micros, "Z".to_owned())),
        Some(_) => options::split_timestamp(&their_ts, None),
    };
    if let Ok((their_micros, their_suffix)) = theirs {
        assert!(
            (our_micros - their_micros).abs() < 60_000_000,
            "our line {n}: timestamp {our_ts} is far from the reference's {their_ts}"
        );
        assert_eq!(
            our_suffix, their_suffix,
            "our line {n}: timestamp {our_ts} has another offset than the reference's {their_ts}"
        );
    } else if opts.offset.is_some() {
        panic!("the reference's timestamp {their_ts:?} is not RFC 3339 (test bug?)");
    }
}

/// Integers of every width at their extremes (`i128`/`u128` included), `Wrapping` and `Option`
/// values, with and without a message, match tracing-subscriber's JSON.
#[test]
fn integers_of_every_width() {
    assert_matches_oracle(9, || {
        info!(
            i8_min = i8::MIN,
            i8_max = i8::MAX,
            i16_min = i16::MIN,
            i16_max = i16::MAX,
            i32_min = i32::MIN,
            i32_max = i32::MAX,
            i64_min = i64::MIN,
            i64_max = i64::MAX,
            isize_min = isize::MIN,
            isize_max = isize::MAX,
        );
        info!(
            u8_max = u8::MAX,
            u16_max = u16::MAX,
            u32_max = u32::MAX,
            u64_max = u64::MAX,
            usize_max = usize::MAX,
            u8_zero = 0u8,
            u64_zero = 0u64,
            i64_zero = 0i64,
            i32_minus_one = -1i32,
        );
        info!(
            i128_min = i128::MIN,
            i128_max = i128::MAX,
            i128_zero = 0i128,
            i128_small = -5i128,
        );
        info!(u128_max = u128::MAX, u128_zero = 0u128, u128_small = 7u128);
        info!(wrapping = std::num::Wrapping(250u8), plain = 42);
        info!(some = Some(3u16), none = None::<u16>, after = 1);
        info!(only_none = None::<i64>);
        info!(u64_above_i64 = i64::MAX as u64 + 1);
        info!(answer = 42, "integers and a message: {}", 42);
    });
}

/// `f64` and `f32` fields, including extremes, subnormals, NaN, infinities and -0.0, and a float in
/// a message match tracing-subscriber's JSON.
#[test]
fn floats() {
    assert_matches_oracle(6, || {
        info!(
            normal = 1.5f64,
            tenth = 0.1f64,
            huge = 1e300f64,
            negative = -2.75f64,
            neg_zero = -0.0f64,
            zero = 0.0f64,
            integral = 3.0f64,
            f64_max = f64::MAX,
            f64_min = f64::MIN,
        );
        info!(
            nan = f64::NAN,
            inf = f64::INFINITY,
            neg_inf = f64::NEG_INFINITY,
            f32_nan = f32::NAN,
            f32_inf = f32::INFINITY,
        );
        info!(
            min_positive = f64::MIN_POSITIVE,
            subnormal = 5e-324f64,
            tiny = 1e-300f64,
            epsilon = f64::EPSILON,
            pi = std::f64::consts::PI,
        );
        info!(
            f32_normal = 1.5f32,
            f32_tenth = 0.1f32,
            f32_max = f32::MAX,
            f32_min_positive = f32::MIN_POSITIVE,
            f32_neg_zero = -0.0f32,
            f32_third = 1.0f32 / 3.0,
        );
        info!(
            big_integral = 1e21f64,
            just_below = 999_999_999_999_999.9f64
        );
        info!(
            t = 1.0e-7f64,
            u = 123_456_789.123_456_79f64,
            "float message {}",
            0.1
        );
    });
}

/// A `-0.0` field is written with its sign (which comparing parsed JSON values cannot see).
#[test]
fn negative_zero_keeps_its_sign() {
    // `Value` equality cannot tell -0.0 from 0.0, so check the sign separately.
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logsink::LogSink::builder()
        .directory(dir.path().to_path_buf())
        .file_name(common::FILE_NAME)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || info!(z = -0.0f64));
    guard.shutdown_blocking().unwrap();
    let lines = common::read_json_lines(&common::log_path(dir.path()));
    assert_eq!(lines.len(), 1);
    let z = lines[0]["fields"]["z"]
        .as_f64()
        .unwrap_or_else(|| panic!("z is not a number: {}", lines[0]));
    assert!(
        z == 0.0 && z.is_sign_negative(),
        "-0.0 was written as {z:?}: {}",
        lines[0]
    );
}

/// `bool` fields, plain and through `Debug`/`Display`, with and without a message, match
/// tracing-subscriber's JSON.
#[test]
fn bools() {
    assert_matches_oracle(3, || {
        info!(yes = true, no = false);
        info!(flag = true, "with a message");
        info!(debugged = ?true, displayed = %false);
    });
}

/// Strings with quotes, backslashes, every C0 control, DEL, non-ASCII text and line separators, as
/// fields, messages and `Debug`/`Display` values, match tracing-subscriber's JSON.
#[test]
fn strings_that_need_escaping() {
    let all_controls: String = (0u8..0x20).map(char::from).collect();
    let mixed = format!(
        "quote\" backslash\\ slash/ {all_controls} del\u{7f} é 日本 🦀 \u{2028}line-sep \u{2029}para-sep \u{feff}bom \u{fffd}"
    );
    let expected = 7 + 3 * 0x20 + 1;
    assert_matches_oracle(expected, || {
        info!(s = "plain");
        info!(empty = "");
        info!(
            quotes = "\"quoted\" 'single'",
            backslashes = "C:\\dir\\file \\\\ \\n"
        );
        info!(mixed = mixed.as_str());
        info!(
            non_ascii = "é 日本 🦀 Ωmega",
            line_seps = "\u{2028}\u{2029}"
        );
        info!("message with {} and {}", mixed, "\"quotes\"");
        info!(debug_of_str = ?mixed, display_of_str = %mixed);
        for c in (0u8..0x20).map(char::from) {
            let one = c.to_string();
            info!(control = one.as_str(), code = c as u32);
            info!("[{}]", one);
            info!(dbg = ?one);
        }
        info!(del = "\u{7f}", nul_inside = "a\0b");
    });
}

#[derive(Debug)]
#[allow(dead_code)]
struct Request {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<Vec<u8>>,
    nested: Inner,
}

#[derive(Debug)]
#[allow(dead_code)]
struct Inner {
    ratio: f32,
    tag: char,
    unit: (),
}

fn sample_request() -> Request {
    Request {
        method: "GET",
        path: "/a \"b\"\\c\n".to_owned(),
        headers: vec![("host", "example.com"), ("x-é", "日本")],
        body: Some(vec![0, 1, 255]),
        nested: Inner {
            ratio: 0.5,
            tag: '\t',
            unit: (),
        },
    }
}

struct Shown;

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shown \"with\" quotes\nand\ta tab")
    }
}

#[derive(Debug)]
struct AppError {
    source: io::Error,
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("could not load \"config\"")
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `Debug` (plain and pretty), `Display` and `dyn Error` values, including an error with a
/// source and a boxed one, match tracing-subscriber's JSON.
#[test]
fn debug_display_and_error_values() {
    let req = sample_request();
    let err = AppError {
        source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
    };
    let io_err = io::Error::other("disk on fire");
    let boxed: Box<dyn std::error::Error + Send + Sync> = "boxed error".into();
    assert_matches_oracle(8, || {
        info!(req = ?req);
        info!(pretty = %format!("{req:#?}"));
        info!(pretty_debug = ?format_args!("{req:#?}"));
        info!(shown = %Shown, debug_str = ?"str", debug_vec = ?vec![1, 2, 3]);
        info!(error = &err as &dyn std::error::Error);
        info!(
            error = &io_err as &dyn std::error::Error,
            "io failed: {}", io_err
        );
        info!(boxed = &*boxed as &(dyn std::error::Error + 'static));
        error!(error = %err, error_debug = ?err, "display and debug of an error");
    });
}

/// Dotted, `r#` raw-identifier, quoted and non-ASCII field names, names that need escaping and an
/// explicit `message` field match tracing-subscriber's JSON.
#[test]
fn field_names() {
    assert_matches_oracle(5, || {
        info!(http.status = 200, http.method = "GET", a.b.c.d = true);
        info!(r#type = "x", r#loop = 1, r#match = ?"dbg");
        info!("quoted name" = 1, "with.dot" = "v", "日本" = 2);
        info!("quote\"inside" = 3, "back\\slash" = 4, "tab\tname" = 5);
        info!(message = "explicit message field", other = 1);
    });
}

/// Every level, formatted messages (with format specs and literal braces), an empty message,
/// fields beside a message and custom targets (one that needs escaping) match tracing-subscriber's
/// JSON.
#[test]
fn messages_targets_and_levels() {
    let who = "world";
    assert_matches_oracle(14, || {
        trace!("trace message");
        debug!("debug message");
        info!("info message");
        warn!("warn message");
        error!("error message");
        info!("hello {who}, {} + {} = {}", 1, 2, 1 + 2);
        info!(
            "{:>8}|{:<5}|{:08.3}|{:x}|{:?}",
            "right", "left", 1.23456, 255, "dbg"
        );
        info!("braces {{literal}} and percent %d");
        info!(a = 1, b = "two");
        info!(n = 5, "fields before the message {}", 1);
        info!(target: "custom::target", "a custom target");
        warn!(target: "custom::target", code = 7);
        error!(target: "weird target \"quoted\"", "odd target");
        info!("");
    });
}

/// Nested spans with fields of every kind, fields recorded later (into `Empty` and over earlier
/// values), a span without fields and a sibling span give the same lines as tracing-subscriber's
/// JSON.
#[test]
fn spans_nested_and_recorded() {
    let req = sample_request();
    let bytes: &[u8] = b"ab\x00\xff";
    assert_matches_oracle(12, || {
        info!("before any span");
        let outer = info_span!(
            "outer",
            id = 7u64,
            neg = -3i64,
            ratio = 0.25f64,
            ok = true,
            label = "out \"side\"\n",
            big = u128::MAX,
        );
        let _outer = outer.enter();
        info!("in outer");
        let middle = tracing::debug_span!(
            "middle",
            req = ?req,
            shown = %Shown,
            later = Empty,
            over = "first value",
        );
        let _middle = middle.enter();
        info!(k = 1, "in middle");
        middle.record("later", 99);
        info!("after recording an empty field");
        middle.record("over", "second value");
        middle.record("later", "now a string");
        info!("after overwriting recorded fields");
        let inner = tracing::trace_span!("inner");
        let _inner = inner.enter();
        info!("in inner, a span with no fields");
        inner.record("nothing", 1); // not a field of the span: ignored
        warn!(depth = 3, "still in inner");
        drop(_inner);
        let sibling = tracing::error_span!(
            "sibling",
            r#type = "raw",
            http.path = "/x",
            "quoted name" = 1,
            bytes = bytes,
            error = &io::Error::other("span error") as &dyn std::error::Error,
        );
        sibling.in_scope(|| info!("in sibling"));
        drop(_middle);
        info!("back in outer");
        drop(_outer);
        info!("outside again");
        let span_with_empty = info_span!("empty_only", a = Empty, b = Empty);
        span_with_empty.in_scope(|| info!("span whose fields are all empty"));
        span_with_empty.record("b", false);
        span_with_empty.in_scope(|| info!("one of them recorded"));
    });
}

/// Events with an explicit parent (by span or by id) or an explicit root, with or without another
/// span entered, get the same span scope as in tracing-subscriber's JSON.
#[test]
fn explicit_parents() {
    assert_matches_oracle(7, || {
        let a = info_span!("a", which = "a");
        let b = info_span!("b", which = "b");
        // Explicit parent, nothing entered.
        info!(parent: &a, "explicit parent, nothing entered");
        // Explicit parent by id.
        info!(parent: a.id(), "explicit parent by id");
        let _b = b.enter();
        // Explicit parent that differs from the entered span.
        info!(parent: &a, "explicit parent while b is entered");
        // A root event while a span is entered.
        info!(parent: None, "explicit root while b is entered");
        let child = info_span!(parent: &a, "child_of_a", n = 1);
        info!(parent: &child, "explicit parent child_of_a");
        child.in_scope(|| info!("contextual inside child_of_a, entered from b"));
        drop(_b);
        info!(parent: None, "explicit root, nothing entered");
    });
}

/// Byte-slice fields (non-UTF-8 and empty) in events and spans, and one re-recorded on a span,
/// match tracing-subscriber's JSON.
#[test]
fn byte_slices() {
    let bytes: &[u8] = b"\x00\x01ab\xff";
    let empty: &[u8] = b"";
    assert_matches_oracle(3, || {
        info!(bytes = bytes, empty = empty);
        let span = info_span!("with_bytes", bytes = bytes, empty = empty);
        span.in_scope(|| info!("event in a span with byte fields"));
        span.record("bytes", &b"zz"[..]);
        span.in_scope(|| info!(also = bytes, "after re-recording"));
    });
}

/// Odd but valid events (a span field called `name`, a field repeated in one event, fields named
/// like the top-level keys, an `Empty` field) match tracing-subscriber's JSON.
#[test]
fn quirky_but_valid_events() {
    assert_matches_oracle(4, || {
        // A span field called `name`, like the key the span's own name is written under.
        let span = info_span!("the_span", name = "field value", fields = 1);
        span.in_scope(|| info!("span with a field called name"));
        // The same field name twice in one event.
        info!(dup = 1, dup = 2);
        // Event fields named like the top-level keys.
        info!(
            level = "fake",
            target = "fake",
            timestamp = "fake",
            span = 1,
            spans = 2
        );
        // Empty in an event.
        info!(e = Empty, f = 1);
    });
}

/// Large string values (100 K characters full of escapes, 300 KB of plain text), as fields and
/// as a message, match tracing-subscriber's JSON.
#[test]
fn large_string_field() {
    let big: String = (0..100 * 1024)
        .map(|i| match i % 7 {
            0 => '"',
            1 => '\\',
            2 => '\n',
            3 => 'é',
            _ => char::from(b'a' + (i % 26) as u8),
        })
        .collect();
    let plain = "x".repeat(300 * 1024);
    assert_matches_oracle(3, || {
        info!(big = big.as_str(), after = 1);
        info!(plain = plain.as_str());
        info!("{}", big);
    });
}

/// Two thousand events in one span are all written, in order, each matching tracing-subscriber's
/// JSON.
#[test]
fn many_events_in_order() {
    assert_matches_oracle(2_000, || {
        let span = info_span!("loop", n = 2_000);
        let _e = span.enter();
        for i in 0..2_000u32 {
            info!(i, square = u64::from(i) * u64::from(i), "event {i}");
        }
    });
}

/// `f64` values of both signs across the whole exponent range, with mantissas of several
/// lengths, and `f32` values across theirs match tracing-subscriber's JSON.
#[test]
fn float_sweep() {
    // Magnitudes across the range where shortest-form float formatting switches between plain
    // and exponent notation, with mantissas of several lengths.
    let mantissas = [
        1.0,
        1.5,
        2.2250738585072014,
        9.999999999999999,
        1.2345678901234567,
    ];
    let mut values = Vec::new();
    for exp in -330i32..=310 {
        for m in mantissas {
            let v: f64 = format!("{m}e{exp}").parse().unwrap();
            if v.is_finite() {
                values.push(v);
                values.push(-v);
            }
        }
    }
    let f32s: Vec<f32> = (-45i32..=38)
        .flat_map(|exp| {
            [
                format!("1e{exp}"),
                format!("3.4028235e{exp}"),
                format!("7.1e{exp}"),
            ]
        })
        .map(|s| s.parse::<f32>().unwrap())
        .filter(|v| v.is_finite())
        .collect();
    let expected = values.len() + f32s.len();
    assert_matches_oracle(expected, || {
        for v in &values {
            info!(v = *v);
        }
        for v in &f32s {
            info!(f = *v);
        }
    });
}

fn span_sweep_values() -> Vec<f64> {
    (-30i32..=30)
        .map(|exp| format!("1.2345678901234567e{exp}").parse().unwrap())
        .collect()
}

fn emit_span_sweep(values: &[f64]) {
    for v in values {
        info_span!("s", v = *v).in_scope(|| info!("in span"));
    }
}

/// The raw text of the number that follows the first `"key":` in `line`.
fn raw_number_after<'a>(line: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let start = line
        .find(&pat)
        .unwrap_or_else(|| panic!("no {pat} in {line}"))
        + pat.len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(rest.len());
    &rest[..end]
}

fn ulps_apart(a: f64, b: f64) -> u64 {
    (a.to_bits() as i64).abs_diff(b.to_bits() as i64)
}

/// Span floats: ours are the recorded value exactly; tracing-subscriber's can be one ULP off.
/// It stores span fields as JSON text and re-parses them with serde_json's default (not
/// correctly rounded) float parser before writing, so 1.2345678901234566e-9 comes out as
/// 1.2345678901234564e-9. We keep the exact value rather than reproduce the lossy parse.
#[test]
fn span_float_fields_are_exact_and_within_one_ulp_of_the_reference() {
    let values = span_sweep_values();
    let run = run_both(Setup::Plain, || emit_span_sweep(&values));
    let (dir, stats) = &run.sinks[0];
    assert_eq!(stats.events_written, values.len() as u64);
    let ours = common::read_lines(&common::log_path(dir.path()));
    let theirs: Vec<&str> = run.oracle_text.lines().collect();
    assert_eq!(ours.len(), values.len());
    assert_eq!(theirs.len(), values.len());
    for ((v, our_line), their_line) in values.iter().zip(&ours).zip(&theirs) {
        // Ours is the recorded value exactly (read back with Rust's correctly rounded parser).
        let our_raw = raw_number_after(our_line, "v");
        let our_v: f64 = our_raw
            .parse()
            .unwrap_or_else(|e| panic!("{our_raw:?} is not a number ({e}): {our_line}"));
        assert_eq!(
            our_v.to_bits(),
            v.to_bits(),
            "{v:?} written as {our_raw}: {our_line}"
        );
        let their_v: f64 = raw_number_after(their_line, "v").parse().unwrap();
        assert!(
            ulps_apart(our_v, their_v) <= 1,
            "{v:?}: ours {our_raw}, reference {their_v:?}"
        );
        // Everything else is identical.
        let mut ov = common::parse_line(our_line, "our line");
        let mut tv: Value = serde_json::from_str(their_line).unwrap();
        for value in [&mut ov, &mut tv] {
            let obj = value.as_object_mut().unwrap();
            obj.remove("timestamp");
            obj["span"]["v"] = Value::Null;
            obj["spans"][0]["v"] = Value::Null;
        }
        assert_eq!(
            ov, tv,
            "\n  ours:      {our_line}\n  reference: {their_line}"
        );
    }
}

/// Fields named `log.*` (as tracing-log names them) and names that really start with `r#`, on
/// events and spans, are handled as tracing-subscriber's JSON handles them.
#[test]
fn tracing_log_and_raw_prefixed_field_names() {
    assert_matches_oracle(4, || {
        // Event fields keep `log.*` names; span fields drop them when string-like.
        info!(log.target = "kept", log.line = 7, "log.file" = ?"kept too");
        let span = info_span!(
            "with_log_fields",
            log.target = "dropped?",
            log.line = 7,
            "log.module_path" = ?"dropped",
            keep = 1,
        );
        span.in_scope(|| info!("span with log.* fields"));
        // A field name that really starts with `r#` (only possible as a string literal).
        let raw = info_span!("raw_names", "r#dbg" = ?1, "r#num" = 2, "r#str" = "s");
        raw.in_scope(|| info!("span with r#-prefixed names"));
        info!("r#dbg" = ?1, "r#num" = 2);
    });
}

/// An event's spans follow each span's parents, not the entry stack: a root span entered inside
/// another, a span entered twice, `follows_from` and a closed span match tracing-subscriber's JSON.
#[test]
fn span_scope_follows_parents_not_the_entry_stack() {
    assert_matches_oracle(6, || {
        let outer = info_span!("outer", o = 1);
        let _outer = outer.enter();
        // A root span entered inside `outer`: its scope is itself only.
        let detached = info_span!(parent: None, "detached", d = 2);
        let _detached = detached.enter();
        info!("in detached, entered from outer");
        // A span whose parent is not the current span.
        let elsewhere = info_span!("elsewhere");
        let other_child = info_span!(parent: &elsewhere, "other_child", c = 3);
        other_child.in_scope(|| info!("in other_child, entered from detached"));
        drop(_detached);
        // Entering the same span twice.
        let _again = outer.enter();
        info!("outer entered twice");
        drop(_again);
        // follows_from does not change the scope.
        let follower = info_span!("follower");
        follower.follows_from(&detached);
        follower.in_scope(|| info!("in follower"));
        // A span that was closed: events after it see the remaining scope.
        {
            let short = info_span!("short_lived", x = 1);
            short.in_scope(|| info!("in short_lived"));
        }
        info!("after short_lived closed");
    });
}

/// With the same per-layer INFO filter on both layers, only the five events at INFO or above
/// are written, and their spans (under a filtered-out span, or with one as explicit parent) match
/// tracing-subscriber's JSON.
#[test]
fn per_layer_filters() {
    assert_matches_oracle_with(Setup::Filtered(LevelFilter::INFO), 5, || {
        trace!("filtered out");
        debug!("filtered out");
        info!("kept");
        let visible = info_span!("visible", v = 1);
        let _visible = visible.enter();
        let hidden = tracing::debug_span!("hidden", h = 2);
        let _hidden = hidden.enter();
        let inner = info_span!("inner_visible", i = 3);
        let _inner = inner.enter();
        warn!("inside visible > hidden > inner_visible");
        drop(_inner);
        info!("inside visible > hidden");
        info!(parent: &hidden, "explicit parent that is filtered out");
        debug!("filtered out inside spans");
        error!(parent: &inner, "explicit parent inner_visible");
    });
}

/// Two of our sinks on one registry beside tracing-subscriber's JSON layer: both files match its
/// output line for line, span fields recorded later included.
#[test]
fn two_sinks_on_one_registry() {
    assert_matches_oracle_with(Setup::TwoSinks, 5, || {
        info!(a = 1, "top level");
        let span = info_span!("shared", s = "x", later = Empty);
        let _e = span.enter();
        info!("in shared");
        span.record("later", 5);
        info!("after record");
        span.record("s", "y");
        let child = info_span!("child", c = 1.5);
        child.in_scope(|| info!("in child"));
        warn!(target: "t", "last");
    });
}

/// Runs `emit` on one registry that carries, for each of `opts`, a sink and tracing-subscriber's
/// JSON layer with those options, shuts the sinks down, and compares each sink's file with its
/// reference line by line: `expected` lines each.
fn assert_options_match_oracle(opts: &[Opts], expected: usize, emit: impl FnOnce()) {
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    let mut sinks = Vec::new();
    for o in opts {
        let dir = tempfile::tempdir().unwrap();
        let (layer, guard) = o
            .apply(common::builder(dir.path()))
            .build()
            .expect("building the sink");
        let reference = SharedBuf::default();
        layers.push(Box::new(layer));
        layers.push(o.fmt_json(reference.clone()));
        sinks.push((dir, guard, reference, *o));
    }
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layers));
    tracing::dispatcher::with_default(&dispatch, emit);
    drop(dispatch);
    for (dir, guard, reference, o) in sinks {
        let stats = guard.shutdown_blocking().expect("shutting the sink down");
        let path = common::log_path(dir.path());
        let theirs = reference.text();
        compare_with_oracle(&path, &theirs, expected, &stats, &o);
        // These events have no span floats (see below): the text is the same too, key order
        // and repeated keys included.
        let ours = common::read_lines(&path);
        for (n, (a, b)) in ours.iter().zip(theirs.lines()).enumerate() {
            let (a, b) = (without_timestamp_member(a), without_timestamp_member(b));
            assert_eq!(a, b, "line {} with {o:?}", n + 1);
        }
    }
}

/// `line` without its leading `"timestamp":"..."` member.
fn without_timestamp_member(line: &str) -> String {
    let Some(rest) = line.strip_prefix("{\"timestamp\":\"") else {
        return line.to_owned();
    };
    let rest = &rest[rest.find('"').unwrap() + 1..];
    format!("{{{}", rest.strip_prefix(',').unwrap_or(rest))
}

/// Events for the option tests: outside spans and in nested ones (a field recorded later, a span
/// without fields), with and without fields and message, an explicit `message` field, a custom
/// target, an event without fields, fields named like the line's own keys, explicit parents and
/// roots, and events on an unnamed and on a named thread. A field named `timestamp` only if
/// `timestamp_field` (flattened, it hides the real timestamp, which the comparison needs when
/// timestamps are on). Returns how many events it emitted.
fn emit_for_options(timestamp_field: bool) -> usize {
    info!("outside any span");
    warn!(
        answer = 42,
        text = "with \"quotes\"",
        ratio = 0.5,
        ok = true,
        "fields and a message {}",
        1
    );
    debug!(message = "an explicit message field", n = 1);
    error!(target: "custom::target", code = 7);
    tracing::event!(target: module_path!(), tracing::Level::INFO, {});
    trace!(
        level = "fake",
        target = "fake",
        fields = 1,
        filename = "fake.rs",
        line_number = 0,
        span = "fake",
        spans = 2,
        threadName = "fake",
        threadId = "fake",
        "fields named like the line's keys"
    );
    if timestamp_field {
        info!(timestamp = "fake", "a field named timestamp");
    }
    let outer = info_span!("outer", id = 7u64, label = "out \"side\"", later = Empty);
    let _outer = outer.enter();
    info!("in outer");
    outer.record("later", true);
    let inner = tracing::debug_span!("inner");
    inner.in_scope(|| info!(k = 1, "in inner, a span without fields"));
    inner.in_scope(|| tracing::event!(target: module_path!(), tracing::Level::WARN, {}));
    let other = info_span!(parent: None, "other", o = 1);
    info!(parent: &other, "explicit parent while outer is entered");
    info!(parent: None, "explicit root while outer is entered");
    drop(_outer);
    info!(parent: &other, "explicit parent, nothing entered");
    info!("after the spans");
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    for name in [None, Some("worker-1")] {
        let dispatch = dispatch.clone();
        let mut builder = std::thread::Builder::new();
        if let Some(name) = name {
            builder = builder.name(name.to_owned());
        }
        builder
            .spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    info!(on = "another thread");
                    info_span!("thread_span", t = 1).in_scope(|| warn!("in a span there"));
                })
            })
            .unwrap()
            .join()
            .unwrap();
    }
    17 + usize::from(timestamp_field)
}

fn offset(hours: i8, minutes: i8) -> UtcOffset {
    UtcOffset::from_hms(hours, minutes, 0).unwrap()
}

/// Each of tracing-subscriber's JSON options set alone, on a sink and on tracing-subscriber's
/// JSON layer: the lines are the same JSON values, and with an offset the timestamps end alike
/// (`Z` for a zero offset).
#[test]
fn each_option_alone_matches_the_reference() {
    let d = Opts::DEFAULT;
    for o in [
        Opts {
            flatten_event: true,
            ..d
        },
        Opts {
            current_span: false,
            ..d
        },
        Opts {
            span_list: false,
            ..d
        },
        Opts { target: false, ..d },
        Opts { level: false, ..d },
        Opts {
            thread_ids: true,
            ..d
        },
        Opts {
            thread_names: true,
            ..d
        },
        Opts { file: true, ..d },
        Opts {
            line_number: true,
            ..d
        },
        Opts { time: false, ..d },
        Opts {
            offset: Some(offset(2, 0)),
            ..d
        },
        Opts {
            offset: Some(offset(-5, -30)),
            ..d
        },
        Opts {
            offset: Some(offset(0, -30)),
            ..d
        },
        Opts {
            offset: Some(UtcOffset::UTC),
            ..d
        },
    ] {
        assert_options_match_oracle(&[o], 17, || {
            emit_for_options(false);
        });
    }
}

/// Combinations of the options (all off, all on, flattened without span list, without
/// anything before the span keys, ...) and the defaults, all on one registry at once: each sink
/// matches the reference layer with its options, so sinks with different options share spans
/// correctly.
#[test]
fn combinations_of_options_match_the_reference() {
    let d = Opts::DEFAULT;
    let sets = [
        d,
        Opts::ALL_OFF,
        Opts::all_on(offset(2, 0)),
        Opts::all_on(UtcOffset::UTC),
        Opts {
            flatten_event: true,
            span_list: false,
            ..d
        },
        Opts {
            flatten_event: true,
            time: false,
            level: false,
            target: false,
            ..d
        },
        Opts {
            current_span: true,
            ..Opts::ALL_OFF
        },
        Opts {
            flatten_event: true,
            span_list: true,
            ..Opts::ALL_OFF
        },
        Opts {
            current_span: false,
            thread_ids: true,
            thread_names: true,
            ..d
        },
        Opts {
            current_span: false,
            span_list: false,
            thread_ids: true,
            ..d
        },
        Opts {
            thread_names: true,
            ..Opts::ALL_OFF
        },
        Opts {
            file: true,
            offset: Some(offset(-5, -30)),
            ..d
        },
        Opts {
            line_number: true,
            level: false,
            flatten_event: true,
            ..d
        },
    ];
    assert_options_match_oracle(&sets, 17, || {
        emit_for_options(false);
    });
}

/// Without timestamps, a flattened field named `timestamp` is the line's only `timestamp`, as
/// in tracing-subscriber.
#[test]
fn flattened_without_time_a_timestamp_field_stands_alone() {
    let sets = [
        Opts {
            flatten_event: true,
            time: false,
            ..Opts::DEFAULT
        },
        Opts {
            flatten_event: true,
            ..Opts::ALL_OFF
        },
    ];
    assert_options_match_oracle(&sets, 18, || {
        emit_for_options(true);
    });
}

/// `with_file_and_line` is the shorthand for `with_file` and `with_line_number`; the later
/// setting wins.
#[test]
fn file_and_line_is_a_shorthand() {
    let run = |builder: fn(logsink::Builder) -> logsink::Builder| {
        let dir = tempfile::tempdir().unwrap();
        let (layer, guard) = builder(logsink::LogSink::builder().directory(dir.path()))
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            info!("located")
        });
        guard.shutdown_blocking().unwrap();
        let line = &common::read_json_lines(&common::log_path(dir.path()))[0];
        (
            line.get("filename").is_some(),
            line.get("line_number").is_some(),
        )
    };
    assert_eq!(run(|b| b.with_file_and_line(true)), (true, true));
    assert_eq!(run(|b| b), (false, false));
    assert_eq!(
        run(|b| b.with_file_and_line(true).with_line_number(false)),
        (true, false)
    );
    assert_eq!(
        run(|b| b.with_file(true).with_file_and_line(false)),
        (false, false)
    );
}
