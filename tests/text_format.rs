//! `Format::Text` and its options (target, level, thread ids and names, file and line, time and
//! its offset), `with_thread_names` and `with_file_and_line` in JSON, compared line by line with
//! tracing-subscriber's own output for the same events (its default full format without
//! colours, and its JSON format with the same options). Timestamps are cut off before
//! comparing: they are taken at slightly different moments.

mod common;
#[path = "common/options.rs"]
mod options;

use common::SharedBuf;
use options::Opts;

use logsink::{Format, LogSink};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

#[derive(Debug)]
#[allow(dead_code)] // read through `Debug`
struct Point {
    x: i32,
    y: i32,
}

/// An error with a chain of sources under it.
#[derive(Debug)]
struct Chained {
    text: &'static str,
    source: Option<Box<Chained>>,
}

impl Chained {
    fn chain(texts: &[&'static str]) -> Chained {
        let (first, rest) = texts.split_first().unwrap();
        Chained {
            text: first,
            source: (!rest.is_empty()).then(|| Box::new(Chained::chain(rest))),
        }
    }
}

impl std::fmt::Display for Chained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text)
    }
}

impl std::error::Error for Chained {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// A variety of events: every value type, errors with and without sources, messages with
/// arguments, `r#` and dotted names, nested spans with fields (an error among them), a field
/// recorded later, explicit parents and roots.
fn emit() {
    tracing::info!("plain message");
    tracing::warn!(
        count = 3u64,
        delta = -7i64,
        ratio = 0.25,
        nan = f64::NAN,
        ok = true,
        "values {}",
        42
    );
    tracing::error!(text = "with \"quotes\" and \\ and\nnewline", point = ?Point { x: 1, y: -2 }, shown = %"displayed");
    tracing::debug!(r#type = "raw", http.status = 200, "names");
    tracing::trace!(big = u128::MAX, small = i128::MIN, "wide integers");
    let chained = Chained::chain(&["request failed", "connection reset", "peer gone"]);
    let alone = Chained::chain(&["no source"]);
    tracing::error!(
        err = &chained as &dyn std::error::Error,
        r#ref = &alone as &dyn std::error::Error,
        "errors"
    );
    let failing = tracing::info_span!("retry", last = &chained as &dyn std::error::Error);
    tracing::warn!(parent: &failing, "retrying");
    let outer = tracing::info_span!("server", port = 8080, host = "example.org");
    let _outer = outer.enter();
    tracing::info!("in one span");
    let inner = tracing::info_span!("request", id = 7, path = tracing::field::Empty);
    inner.record("path", "/items");
    let _inner = inner.enter();
    tracing::info!(status = 200, "served");
    let empty = tracing::info_span!("no_fields");
    tracing::info!(parent: &empty, "explicit parent");
    tracing::info!(parent: None, "explicit root");
    tracing::info!(target: "custom::target", "target override");
}

/// Our lines and the reference's, with the timestamp (the first token) removed.
fn compare(ours: &str, theirs: &str, strip: impl Fn(&str) -> String) {
    let ours: Vec<String> = ours.lines().map(&strip).collect();
    let theirs: Vec<String> = theirs.lines().map(&strip).collect();
    assert_eq!(ours.len(), theirs.len(), "line counts differ");
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "\n ours: {a}\ntheirs: {b}");
    }
}

fn without_timestamp(line: &str) -> String {
    let (stamp, rest) = line.split_once(' ').unwrap();
    assert_eq!(stamp.len(), 27, "{stamp}");
    rest.to_owned()
}

fn json_without_timestamp(line: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
    value.as_object_mut().unwrap().remove("timestamp");
    value.to_string()
}

/// A text sink in `dir` and tracing-subscriber's default formatter (no colours) writing into
/// the returned buffer, both on one registry.
fn text_sink_beside_fmt(dir: &std::path::Path) -> (Dispatch, logsink::SinkGuard, SharedBuf) {
    let (layer, guard) = LogSink::builder()
        .directory(dir)
        .format(Format::Text)
        .build()
        .unwrap();
    let reference = SharedBuf::default();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry().with(layer).with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(reference.clone()),
        ),
    );
    (dispatch, guard, reference)
}

/// `Format::Text` lines match tracing-subscriber's default full format without colours,
/// timestamps aside, for every kind of event.
#[test]
fn text_lines_match_the_default_formatter() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard, reference) = text_sink_beside_fmt(dir.path());
    tracing::dispatcher::with_default(&dispatch, emit);
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, 12);
    let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    compare(&ours, &reference.text(), without_timestamp);
}

/// `with_file_and_line(true)` writes the file and line as tracing-subscriber does, in both text
/// and JSON.
#[test]
fn file_and_line_match_in_text_and_json() {
    for format in [Format::Text, Format::Json] {
        let dir = tempfile::tempdir().unwrap();
        let (layer, guard) = LogSink::builder()
            .directory(dir.path())
            .format(format)
            .with_file_and_line(true)
            .build()
            .unwrap();
        let reference = SharedBuf::default();
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_file(true)
            .with_line_number(true)
            .with_writer(reference.clone());
        let dispatch = match format {
            Format::Text => Dispatch::new(tracing_subscriber::registry().with(layer).with(fmt)),
            _ => Dispatch::new(tracing_subscriber::registry().with(layer).with(fmt.json())),
        };
        tracing::dispatcher::with_default(&dispatch, emit);
        guard.shutdown_blocking().unwrap();
        let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
        assert!(ours.contains("text_format.rs"), "{ours}");
        match format {
            Format::Text => compare(&ours, &reference.text(), without_timestamp),
            _ => compare(&ours, &reference.text(), json_without_timestamp),
        }
    }
}

/// `with_thread_names(true)` in JSON writes `threadName` as tracing-subscriber does: the name of
/// a named thread, the `ThreadId` of an unnamed one.
#[test]
fn thread_names_match_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = LogSink::builder()
        .directory(dir.path())
        .with_thread_names(true)
        .build()
        .unwrap();
    let reference = SharedBuf::default();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry().with(layer).with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_thread_names(true)
                .with_writer(reference.clone()),
        ),
    );
    for name in [Some("worker-1"), None] {
        let dispatch = dispatch.clone();
        let mut builder = std::thread::Builder::new();
        if let Some(name) = name {
            builder = builder.name(name.to_owned());
        }
        builder
            .spawn(move || tracing::dispatcher::with_default(&dispatch, emit))
            .unwrap()
            .join()
            .unwrap();
    }
    guard.shutdown_blocking().unwrap();
    let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    assert!(ours.contains(r#""threadName":"worker-1""#), "{ours}");
    assert!(ours.contains(r#""threadName":"ThreadId("#), "{ours}");
    compare(&ours, &reference.text(), json_without_timestamp);
}

fn text_sink_with_thread_names(dir: &std::path::Path) -> (logsink::SinkLayer, logsink::SinkGuard) {
    LogSink::builder()
        .directory(dir)
        .format(Format::Text)
        .with_thread_names(true)
        .build()
        .unwrap()
}

/// Runs `log` on a thread of its own, named `name` (unnamed for `None`), to its end.
fn on_thread(name: Option<&str>, log: impl FnOnce() + Send + 'static) {
    let thread = std::thread::Builder::new();
    match name {
        Some(name) => thread.name(name.to_owned()).spawn(log),
        None => thread.spawn(log),
    }
    .unwrap()
    .join()
    .unwrap();
}

/// Thread names in text are right-aligned to the longest name written so far, as
/// tracing-subscriber aligns them (counting characters, not bytes); unnamed threads show their
/// id unaligned (`ThreadId(07)`, its number padded as tracing-subscriber pads it). With thread
/// ids as well, a named thread shows its name and its id, an unnamed one its id once. (No other
/// test in this binary formats thread names in text with tracing-subscriber, whose
/// longest-name width is one for the whole process.)
#[test]
fn text_thread_names_are_aligned_as_tracing_subscriber_aligns_them() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = text_sink_with_thread_names(dir.path());
    let reference = SharedBuf::default();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry().with(layer).with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_thread_names(true)
                .with_writer(reference.clone()),
        ),
    );
    // One thread after another, so that both sinks see the names in the same order.
    for name in [
        Some("a"),
        Some("worker-long-name"),
        Some("a"),
        None,
        Some("αβγ"),
        Some("mid"),
    ] {
        let dispatch = dispatch.clone();
        let log =
            move || tracing::dispatcher::with_default(&dispatch, || tracing::info!(n = 1, "hi"));
        on_thread(name, log);
    }
    guard.shutdown_blocking().unwrap();
    let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    assert!(
        ours.contains("  INFO                a text_format"),
        "{ours}"
    );
    assert!(ours.contains("              αβγ text_format"), "{ours}");
    compare(&ours, &reference.text(), without_timestamp);

    // Names and ids. tracing-subscriber's width is already that of the longest name above:
    // the new sink sees that name first, so that both align alike from the start.
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts {
        thread_names: true,
        thread_ids: true,
        ..Opts::DEFAULT
    };
    let builder = LogSink::builder()
        .directory(dir.path())
        .format(Format::Text);
    let (layer, guard) = opts.apply(builder).build().unwrap();
    let reference = SharedBuf::default();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(layer)
            .with(opts.fmt_text(reference.clone())),
    );
    for name in [Some("worker-long-name"), Some("a"), None, Some("αβγ")] {
        let dispatch = dispatch.clone();
        let log = move || {
            tracing::dispatcher::with_default(&dispatch, || {
                tracing::info_span!("s", k = 1).in_scope(|| tracing::info!(n = 1, "hi"))
            })
        };
        on_thread(name, log);
    }
    guard.shutdown_blocking().unwrap();
    let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    assert!(ours.contains("                a ThreadId("), "{ours}");
    assert!(ours.contains(" INFO ThreadId("), "{ours}");
    compare(&ours, &reference.text(), without_timestamp);
}

/// `line` without its leading timestamp if `opts` writes one, checked: RFC 3339 with
/// microseconds in `opts`'s offset for ours (`digits` 6), any number of digits for the
/// reference's. Returns the rest of the line, the instant (microseconds since the epoch) and
/// the timestamp's offset as written.
fn strip_text_timestamp<'a>(
    line: &'a str,
    opts: &Opts,
    digits: Option<usize>,
) -> (&'a str, i64, String) {
    if !opts.time {
        return (line, 0, String::new());
    }
    let (stamp, rest) = line.split_once(' ').unwrap();
    let (micros, suffix) = match opts.offset {
        None => common::check_timestamp(stamp).map(|micros| (micros, "Z".to_owned())),
        Some(_) => options::split_timestamp(stamp, digits),
    }
    .unwrap_or_else(|e| panic!("{e}: {line}"));
    (rest, micros, suffix)
}

/// tracing-subscriber's options that its text format has (target, level, thread ids, file,
/// line, without time, a timestamp offset), each alone and combined, give the same text lines
/// as its formatter; the JSON-only options change nothing. (Thread names, whose alignment is
/// process-wide in tracing-subscriber, are compared in the test above.)
#[test]
fn text_options_match_the_default_formatter() {
    let d = Opts::DEFAULT;
    let plus_two = logsink::UtcOffset::from_hms(2, 0, 0).unwrap();
    let minus_half = logsink::UtcOffset::from_hms(-5, -30, 0).unwrap();
    let sets = [
        Opts { target: false, ..d },
        Opts { level: false, ..d },
        Opts {
            thread_ids: true,
            ..d
        },
        Opts { file: true, ..d },
        Opts {
            line_number: true,
            ..d
        },
        Opts { time: false, ..d },
        Opts {
            offset: Some(plus_two),
            ..d
        },
        Opts {
            offset: Some(minus_half),
            ..d
        },
        Opts {
            offset: Some(logsink::UtcOffset::UTC),
            ..d
        },
        Opts::ALL_OFF,
        Opts {
            thread_names: false,
            ..Opts::all_on(plus_two)
        },
        Opts {
            flatten_event: true,
            current_span: false,
            span_list: false,
            ..d
        },
        Opts {
            time: false,
            level: false,
            file: true,
            ..d
        },
        Opts {
            target: false,
            line_number: true,
            thread_ids: true,
            ..Opts::ALL_OFF
        },
    ];
    for opts in sets {
        let dir = tempfile::tempdir().unwrap();
        let builder = LogSink::builder()
            .directory(dir.path())
            .format(Format::Text);
        let (layer, guard) = opts.apply(builder).build().unwrap();
        let reference = SharedBuf::default();
        let dispatch = Dispatch::new(
            tracing_subscriber::registry()
                .with(layer)
                .with(opts.fmt_text(reference.clone())),
        );
        tracing::dispatcher::with_default(&dispatch, emit);
        // An unnamed thread, for the ids.
        let on_thread = dispatch.clone();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&on_thread, || {
                tracing::info_span!("t", k = 1).in_scope(|| tracing::warn!("on a thread"))
            })
        })
        .join()
        .unwrap();
        let stats = guard.shutdown_blocking().unwrap();
        assert_eq!(stats.events_written, 13);
        let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
        let theirs = reference.text();
        assert_eq!(ours.lines().count(), 13, "{opts:?}");
        assert_eq!(theirs.lines().count(), 13, "{opts:?}");
        for (a, b) in ours.lines().zip(theirs.lines()) {
            let (a_rest, a_micros, a_offset) = strip_text_timestamp(a, &opts, Some(6));
            let (b_rest, b_micros, b_offset) = strip_text_timestamp(b, &opts, None);
            assert_eq!(a_offset, b_offset, "{opts:?}\n ours: {a}\ntheirs: {b}");
            assert!(
                (a_micros - b_micros).abs() < 60_000_000,
                "{opts:?}: another time\n ours: {a}\ntheirs: {b}"
            );
            assert_eq!(a_rest, b_rest, "{opts:?}\n ours: {a}\ntheirs: {b}");
        }
    }
}

/// In text, the thread name comes right after the level, before the target.
#[test]
fn text_thread_names_come_after_the_level() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = text_sink_with_thread_names(dir.path());
    let dispatch = common::dispatch(layer);
    std::thread::Builder::new()
        .name("worker-7".to_owned())
        .spawn(move || tracing::dispatcher::with_default(&dispatch, || tracing::info!(n = 1, "hi")))
        .unwrap()
        .join()
        .unwrap();
    guard.shutdown_blocking().unwrap();
    let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    assert_eq!(
        without_timestamp(ours.trim_end()),
        " INFO worker-7 text_format: hi n=1"
    );
}

/// Writes its text as it is through both `Debug` and `Display`, as a user's type can.
struct Raw(&'static str);

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::fmt::Display for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Text meant to take over a terminal: an OSC title change ended by BEL, colour sequences,
/// the other C0 controls tracing-subscriber escapes (BS, FF) and some it keeps (NUL, `\r`,
/// `\n`, `\t`, VT), DEL, C1 controls (CSI U+009B among them), their neighbours, unicode (bidi
/// override, BOM, astral), quotes and backslashes, then every character up to U+00FF.
fn hostile() -> &'static str {
    let mut text = String::from(
        "\x1b]0;pwned\x07\x1b[31mred\x1b[0m bs\x08 ff\x0c del\x7f nul\0 soh\x01 vt\x0b \
         so\x0e us\x1f c1\u{80}\u{85}\u{9b}[2J\u{9d}\u{9f} nbsp\u{a0} shy\u{ad} cr\r lf\n \
         tab\t é 日本 😀 \u{2028}\u{202e}\u{feff} \"q\" \\x1b \\ ",
    );
    text.extend((0u32..=0xff).filter_map(char::from_u32));
    Box::leak(text.into_boxed_str())
}

/// Events carrying [`hostile`] text everywhere a line shows it: messages of each kind, string,
/// `Debug` and `Display` values, errors with and without sources (also as the message and
/// under an `r#` name), span fields (the message among them, one recorded later), a target
/// and a span name. Returns how many events it emitted.
fn emit_hostile(h: &'static str) -> u64 {
    use std::error::Error;
    tracing::info!("{}", h);
    tracing::info!(message = h);
    tracing::info!(message = %Raw(h));
    tracing::info!(message = ?Raw(h));
    tracing::warn!(s = h, d = ?h, raw = ?Raw(h), shown = %Raw(h), "values: {}", h);
    let chained = Chained::chain(&[h, "middle\x1b[2J\u{9b}1;1H", h]);
    let alone = Chained::chain(&[h]);
    tracing::error!(
        err = &chained as &dyn Error,
        r#ref = &chained as &dyn Error,
        alone = &alone as &dyn Error,
        "errors"
    );
    tracing::error!(message = &chained as &dyn Error);
    tracing::error!(message = &alone as &dyn Error);
    tracing::info!(target: "evil\x1b[31m\u{9b}target", "a target");
    let span = tracing::info_span!(
        "evil\x1b]0;x\x07\u{85}span",
        s = h,
        shown = %Raw(h),
        raw = ?Raw(h),
        message = h,
        err = &chained as &dyn Error,
        alone = &alone as &dyn Error,
        later = tracing::field::Empty
    );
    span.record("later", h);
    let _span = span.enter();
    let inner = tracing::info_span!("inner", message = %Raw(h));
    inner.in_scope(|| tracing::info!("in spans"));
    10
}

/// Lines with the leading timestamp removed; a line a message's own `\n` started keeps all of
/// itself. Split on `\n` alone, so that a `\r` stays where it was.
fn without_timestamps(text: &str) -> Vec<&str> {
    text.split('\n')
        .map(|line| match line.split_once(' ') {
            Some((stamp, rest)) if common::check_timestamp(stamp).is_ok() => rest,
            _ => line,
        })
        .collect()
}

/// Control characters in messages, values, errors and span fields are escaped exactly as
/// tracing-subscriber's text format escapes them (ESC, BEL, BS, FF, DEL and C1 controls in
/// messages and error texts), and everything else is left as it leaves it: other controls,
/// `Display` and raw `Debug` values, targets and span names.
#[test]
fn text_escapes_control_characters_as_tracing_subscriber_does() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard, reference) = text_sink_beside_fmt(dir.path());
    let h = hostile();
    let emitted = tracing::dispatcher::with_default(&dispatch, || emit_hostile(h));
    let stats = guard.shutdown_blocking().unwrap();
    assert_eq!(stats.events_written, emitted);
    let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    let theirs = reference.text();
    // The escapes are there, so the comparison below compares escaped text.
    let escaped = r" INFO text_format: \x1b]0;pwned\x07\x1b[31mred\x1b[0m bs\x08 ff\x0c del\x7f";
    assert!(theirs.contains(escaped), "{theirs:?}");
    assert!(ours.contains(escaped), "{ours:?}");
    let (ours, theirs) = (without_timestamps(&ours), without_timestamps(&theirs));
    assert_eq!(ours.len(), theirs.len(), "line counts differ");
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "\n ours: {a:?}\ntheirs: {b:?}");
    }
}

/// JSON escapes the same text as JSON: every line parses, and each string reads back as the
/// text that was logged, as tracing-subscriber's JSON reads.
#[test]
fn json_of_hostile_text_reads_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = LogSink::builder().directory(dir.path()).build().unwrap();
    let reference = SharedBuf::default();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry().with(layer).with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(reference.clone()),
        ),
    );
    let h = hostile();
    let emitted = tracing::dispatcher::with_default(&dispatch, || emit_hostile(h));
    guard.shutdown_blocking().unwrap();
    let ours = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    let lines: Vec<serde_json::Value> = ours
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, emitted);
    let field = |line: usize, name: &str| lines[line]["fields"][name].as_str().unwrap();
    for line in 0..4 {
        assert_eq!(field(line, "message"), h, "line {line}");
    }
    assert_eq!(field(4, "s"), h);
    assert_eq!(field(4, "d"), format!("{h:?}"));
    assert_eq!(field(4, "raw"), h);
    assert_eq!(field(4, "shown"), h);
    assert_eq!(field(5, "err"), h);
    assert_eq!(field(6, "message"), h);
    assert_eq!(field(7, "message"), h);
    assert_eq!(lines[8]["target"], "evil\x1b[31m\u{9b}target");
    let span = &lines[9]["spans"][0];
    assert_eq!(span["name"], "evil\x1b]0;x\x07\u{85}span");
    for name in ["s", "shown", "raw", "message", "err", "later"] {
        assert_eq!(span[name], h, "span field {name}");
    }
    compare(&ours, &reference.text(), json_without_timestamp);
}
