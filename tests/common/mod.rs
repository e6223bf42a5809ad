//! Helpers shared by the integration tests: reading a sink's file back, parsing its lines,
//! counting its events, checking the timestamp format, waiting with a deadline, and (in the
//! submodules) child processes and rotated folders. Each test binary uses a different subset;
//! each helper has one copy, here.
#![allow(dead_code)]

pub mod child;
pub mod rotation_util;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The file name every test gives the sink (`<dir>/app.log`).
pub const FILE_NAME: &str = "app";

/// A deadline used only to turn a hang into a test failure (never for timing logic).
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// A flush interval that never fires during a test: only a full buffer, a rotation, a flush
/// or a shutdown puts lines in the file.
pub const HOUR: Duration = Duration::from_secs(3600);

/// A builder for `<dir>/app.log` (see [`FILE_NAME`]) whose flush timer never fires
/// ([`HOUR`]).
pub fn builder(dir: &Path) -> logsink::Builder {
    logsink::LogSink::builder()
        .directory(dir)
        .file_name(FILE_NAME)
        .flush_interval(HOUR)
        // A loaded CI machine can take longer than the default to write a large test's events;
        // the hang guard still catches a shutdown that never ends.
        .shutdown_timeout(HANG_GUARD)
}

/// The sink of [`builder`].
pub fn sink(dir: &Path) -> (logsink::SinkLayer, logsink::SinkGuard) {
    builder(dir).build().expect("building the sink")
}

/// Logs `per_thread` events `{t, i}` from each of `threads` threads through `dispatch`, all
/// starting together; returns when every thread is done.
pub fn log_on_threads(dispatch: &tracing::Dispatch, threads: u64, per_thread: u64) {
    let start = std::sync::Arc::new(std::sync::Barrier::new(threads as usize));
    let producers: Vec<_> = (0..threads)
        .map(|t| {
            let (dispatch, start) = (dispatch.clone(), start.clone());
            thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    start.wait();
                    for i in 0..per_thread {
                        tracing::info!(t, i);
                    }
                })
            })
        })
        .collect();
    for p in producers {
        p.join().expect("a producer thread panicked");
    }
}

/// Builds `builder`'s sink: a dispatcher with its layer, and its guard.
pub fn start(builder: logsink::Builder) -> (tracing::Dispatch, logsink::SinkGuard) {
    let (layer, guard) = builder.build().expect("building the sink");
    (dispatch(layer), guard)
}

/// A dispatcher with only the sink's layer, for `tracing::dispatcher::with_default`.
pub fn dispatch(layer: logsink::SinkLayer) -> tracing::Dispatch {
    use tracing_subscriber::layer::SubscriberExt;
    tracing::Dispatch::new(tracing_subscriber::registry().with(layer))
}

/// Logs one event `{seq}` (message `event`) for each of `seqs` through `dispatch`.
pub fn log_seqs(dispatch: &tracing::Dispatch, seqs: Range<u64>) {
    tracing::dispatcher::with_default(dispatch, || emit_seqs(seqs));
}

/// Logs one event `{seq}` (message `event`) for each of `seqs` to the current default
/// subscriber.
pub fn emit_seqs(seqs: Range<u64>) {
    for seq in seqs {
        tracing::info!(seq, "event");
    }
}

/// Writes its text as is, for `Debug` and `Display` alike (no `Debug` quoting or escaping).
pub struct Raw<'a>(pub &'a str);

impl std::fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The active log file of a sink built with [`FILE_NAME`] in `dir`.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join(format!("{FILE_NAME}.log"))
}

/// Reads the whole file and checks it is valid UTF-8.
pub fn read_text(path: &Path) -> String {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    String::from_utf8(bytes)
        .unwrap_or_else(|e| panic!("{} is not valid UTF-8: {e}", path.display()))
}

/// Splits the file into lines: see [`split_lines`].
pub fn read_lines(path: &Path) -> Vec<String> {
    split_lines(read_text(path).as_bytes(), &path.display().to_string())
}

/// Splits `bytes` (the content of `what`) into lines, checking that it is UTF-8, empty or
/// ending with `'\n'`, and that no line is blank or ends with `'\r'`. Returns the lines
/// without their terminators.
pub fn split_lines(bytes: &[u8], what: &str) -> Vec<String> {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
    if text.is_empty() {
        return Vec::new();
    }
    assert!(
        text.ends_with('\n'),
        "{what} does not end with a newline; last 200 bytes: {:?}",
        tail(text, 200)
    );
    let lines: Vec<String> = text[..text.len() - 1]
        .split('\n')
        .map(str::to_owned)
        .collect();
    for (i, line) in lines.iter().enumerate() {
        assert!(!line.is_empty(), "{what}: line {} is blank", i + 1);
        assert!(
            !line.ends_with('\r'),
            "{what}: line {} ends with a carriage return",
            i + 1
        );
    }
    lines
}

/// Parses one line as a JSON object, with a message that shows the line on failure.
pub fn parse_line(line: &str, what: &str) -> Value {
    let value: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{what}: not valid JSON ({e}): {}", shorten(line)));
    assert!(
        value.is_object(),
        "{what}: not a JSON object: {}",
        shorten(line)
    );
    value
}

/// Reads the file and parses every line as a JSON object.
pub fn read_json_lines(path: &Path) -> Vec<Value> {
    json_lines(&read_text(path).into_bytes(), &path.display().to_string())
}

/// Every line of `bytes` (the content of `what`) parsed as a JSON object: see
/// [`split_lines`].
pub fn json_lines(bytes: &[u8], what: &str) -> Vec<Value> {
    split_lines(bytes, what)
        .iter()
        .enumerate()
        .map(|(i, line)| parse_line(line, &format!("{what} line {}", i + 1)))
        .collect()
}

/// `line["fields"][name]` as a u64, panicking with the line on failure.
pub fn field_u64(line: &Value, name: &str) -> u64 {
    line.get("fields")
        .and_then(|f| f.get(name))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("line has no u64 field {name:?}: {line}"))
}

/// `line["fields"][name]` as a string, panicking with the line on failure.
pub fn field_str<'a>(line: &'a Value, name: &str) -> &'a str {
    line.get("fields")
        .and_then(|f| f.get(name))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("line has no string field {name:?}: {line}"))
}

/// The `seq` field of every line, in order.
pub fn seqs(lines: &[Value]) -> Vec<u64> {
    lines.iter().map(|l| field_u64(l, "seq")).collect()
}

/// Asserts that `seqs` is exactly `expected`, in order, saying what is missing, repeated or
/// out of place otherwise.
pub fn assert_seqs(seqs: &[u64], expected: Range<u64>, what: &str) {
    let want: Vec<u64> = expected.clone().collect();
    if seqs == want.as_slice() {
        return;
    }
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for &s in seqs {
        *counts.entry(s).or_default() += 1;
    }
    let missing: Vec<u64> = expected.filter(|s| !counts.contains_key(s)).collect();
    let repeated: Vec<u64> = counts
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(&s, _)| s)
        .collect();
    let foreign: Vec<u64> = counts
        .keys()
        .filter(|s| !want.contains(s))
        .copied()
        .collect();
    let first_out_of_place = seqs.iter().zip(&want).position(|(a, b)| a != b);
    panic!(
        "{what}: {} events, expected {} (seq {}..{}); {} missing (first: {:?}), \
         repeated: {:?}, unexpected: {:?}, first out of place at index {first_out_of_place:?}",
        seqs.len(),
        want.len(),
        want.first().copied().unwrap_or(0),
        want.last().map_or(0, |l| l + 1),
        missing.len(),
        &missing[..missing.len().min(20)],
        &repeated[..repeated.len().min(20)],
        &foreign[..foreign.len().min(20)],
    );
}

/// Polls `done` until it returns `Some`, and returns that; fails after [`HANG_GUARD`] with
/// `what` (the deadline only turns a hang into a failure).
pub fn wait_for<T>(what: impl std::fmt::Display, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still waiting after {HANG_GUARD:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// Checks that `ts` is RFC 3339 UTC with exactly six fractional digits and a trailing `Z`
/// (`2026-11-24T14:26:18.169272Z`), and returns it as microseconds since the Unix epoch.
pub fn check_timestamp(ts: &str) -> Result<i64, String> {
    let b = ts.as_bytes();
    if b.len() != 27 {
        return Err(format!("timestamp {ts:?} is not 27 bytes long"));
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            26 => c == b'Z',
            _ => c.is_ascii_digit(),
        };
        if !ok {
            return Err(format!(
                "timestamp {ts:?}: unexpected byte {:?} at offset {i}",
                c as char
            ));
        }
    }
    let num = |from: usize, to: usize| -> i64 { ts[from..to].parse::<i64>().unwrap() };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second, micros) = (num(11, 13), num(14, 16), num(17, 19), num(20, 26));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("timestamp {ts:?}: month {month} out of range")),
    };
    if !(1..=days_in_month).contains(&day) {
        return Err(format!("timestamp {ts:?}: day {day} out of range"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("timestamp {ts:?}: time of day out of range"));
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Runs `f` on another thread and fails the test (instead of hanging it) if `f` has not
/// returned within [`HANG_GUARD`]. Panics in `f` are propagated.
pub fn run_or_fail_on_hang<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(_) => unreachable!("sender dropped without sending"),
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not return within {HANG_GUARD:?}: it blocks or deadlocks")
        }
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A line cut to a readable length for failure messages.
pub fn shorten(line: &str) -> String {
    const MAX: usize = 2_000;
    if line.len() <= MAX {
        return line.to_owned();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &line[..end], line.len())
}

/// An in-memory writer for tracing-subscriber's reference formatters, shared with the test.
#[derive(Clone, Default)]
pub struct SharedBuf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("the reference wrote UTF-8")
    }
}

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedBuf {
    type Writer = SharedBuf;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
