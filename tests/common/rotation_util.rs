//! Helpers for the rotation, recovery and crash tests: listing a sink's folder, recognising
//! rotated names, decompressing files (with flate2 or the system `gzip`), and parsing their
//! lines. Each test binary uses a different subset.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

/// The file name every test gives the sink.
pub const BASE: &str = "app";

/// The active file's name.
pub const ACTIVE: &str = "app.log";

/// A dispatcher with only the sink's layer, for `tracing::dispatcher::with_default`.
pub fn dispatch(layer: logsink::SinkLayer) -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(layer))
}

/// Whether `name` is exactly `^app\.\d{8}T\d{6}Z\.\d{6}<suffix>$` (checked by hand).
pub fn is_rotated_name(name: &str, suffix: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("app.")
        .and_then(|r| r.strip_suffix(suffix))
    else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 8 + 1 + 6 + 1 + 1 + 6
        && b[0..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'.'
        && b[17..23].iter().all(u8::is_ascii_digit)
}

/// The `(stamp, sequence number)` of a rotated name that passed [`is_rotated_name`].
pub fn rotated_position(name: &str) -> (String, u32) {
    let rest = &name["app.".len()..];
    (rest[0..16].to_owned(), rest[17..23].parse().unwrap())
}

/// Every entry name in `dir` but the sinks' lock files (`.<name>.lock`), sorted as byte strings.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !(n.starts_with('.') && n.ends_with(".lock")))
        .collect();
    names.sort();
    names
}

/// The names in `dir` that are rotated names ending in `suffix` (`.log`, `.log.gz`), sorted.
pub fn rotated(dir: &Path, suffix: &str) -> Vec<String> {
    list(dir)
        .into_iter()
        .filter(|n| is_rotated_name(n, suffix))
        .collect()
}

/// Panics if `dir` holds anything but the active file, the rotated files in `expected_rotated`,
/// and the `foreign` names.
pub fn assert_folder(dir: &Path, expected_rotated: &[String], foreign: &[&str]) {
    let mut expected: Vec<String> = expected_rotated.to_vec();
    expected.push(ACTIVE.to_owned());
    expected.extend(foreign.iter().map(|s| s.to_string()));
    expected.sort();
    assert_eq!(list(dir), expected, "folder {}", dir.display());
}

/// How a test reads a `.gz` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gunzip {
    /// `flate2::read::MultiGzDecoder`.
    Flate2,
    /// The system's `gzip -dc`, after `gzip -t` says the file is intact.
    System,
}

/// The decompressed content of a `.gz` file with flate2's multi-member decoder.
pub fn gunzip_flate2(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("flate2 cannot decompress {}: {e}", path.display()));
    out
}

/// Runs the system's `gzip -t` on `path` and panics unless it says the file is intact.
pub fn gzip_test(path: &Path) {
    let out = Command::new("gzip")
        .arg("-t")
        .arg(path)
        .output()
        .expect("running the system gzip (is it installed?)");
    assert!(
        out.status.success(),
        "gzip -t {}: {} {}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The decompressed content of a `.gz` file with the system's `gzip -dc`.
pub fn gunzip_system(path: &Path) -> Vec<u8> {
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .expect("running the system gzip (is it installed?)");
    assert!(
        out.status.success(),
        "gzip -dc {}: {} {}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The content of a file: decompressed if its name ends in `.gz`, as it is otherwise.
pub fn content(path: &Path, gunzip: Gunzip) -> Vec<u8> {
    if path.extension().is_some_and(|e| e == "gz") {
        match gunzip {
            Gunzip::Flate2 => gunzip_flate2(path),
            Gunzip::System => {
                gzip_test(path);
                gunzip_system(path)
            }
        }
    } else {
        std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }
}

/// Gzips `data` with flate2 (one member), as a `.gz` from an earlier run would be.
pub fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Splits `bytes` into lines, checking the text is UTF-8, empty or newline-terminated, and
/// without blank lines.
pub fn split_lines(bytes: &[u8], what: &str) -> Vec<String> {
    let text = std::str::from_utf8(bytes)
        .unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"))
        .to_owned();
    if text.is_empty() {
        return Vec::new();
    }
    assert!(
        text.ends_with('\n'),
        "{what}: does not end with a newline: ...{:?}",
        &text[text.len().saturating_sub(200)..]
    );
    let lines: Vec<String> = text[..text.len() - 1]
        .split('\n')
        .map(str::to_owned)
        .collect();
    for (i, line) in lines.iter().enumerate() {
        assert!(!line.is_empty(), "{what}: line {} is blank", i + 1);
    }
    lines
}

/// Parses a line as a JSON object.
pub fn parse(line: &str, what: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{what}: not valid JSON ({e}): {}",
            &line[..line.len().min(500)]
        )
    });
    assert!(v.is_object(), "{what}: not a JSON object: {line}");
    v
}

/// Every line of `bytes` parsed as a JSON object.
pub fn json_lines(bytes: &[u8], what: &str) -> Vec<Value> {
    split_lines(bytes, what)
        .iter()
        .enumerate()
        .map(|(i, l)| parse(l, &format!("{what} line {}", i + 1)))
        .collect()
}

/// `line["fields"][name]` as a u64.
pub fn field_u64(line: &Value, name: &str) -> u64 {
    line.get("fields")
        .and_then(|f| f.get(name))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("line has no u64 field {name:?}: {line}"))
}

/// `line["fields"][name]` as a string.
pub fn field_str<'a>(line: &'a Value, name: &str) -> &'a str {
    line.get("fields")
        .and_then(|f| f.get(name))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("line has no string field {name:?}: {line}"))
}

/// One file of a sink's folder, read back.
#[derive(Debug)]
pub struct FileLines {
    pub name: String,
    /// Its size on disk (compressed, for a `.gz`).
    pub disk_size: u64,
    /// Its (decompressed) content.
    pub bytes: Vec<u8>,
    pub lines: Vec<Value>,
}

/// Reads the rotated files with `suffix` in name order, then the active file: the order in
/// which their events were written.
pub fn read_in_order(dir: &Path, suffix: &str, gunzip: Gunzip) -> Vec<FileLines> {
    let mut names = rotated(dir, suffix);
    names.push(ACTIVE.to_owned());
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let disk_size = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
                .len();
            let bytes = content(&path, gunzip);
            let lines = json_lines(&bytes, &name);
            FileLines {
                name,
                disk_size,
                bytes,
                lines,
            }
        })
        .collect()
}

/// The `seq` fields of every line of `files`, in order.
pub fn seqs(files: &[FileLines]) -> Vec<u64> {
    files
        .iter()
        .flat_map(|f| f.lines.iter().map(|l| field_u64(l, "seq")))
        .collect()
}

/// JSON lines `{"fields":{"message":"old","seq":i}}` for `seqs`, as an earlier run wrote them.
pub fn old_lines(seqs: std::ops::Range<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in seqs {
        writeln!(
            out,
            r#"{{"timestamp":"2026-11-24T14:26:18.000000Z","level":"INFO","fields":{{"message":"old","seq":{i}}},"target":"earlier"}}"#
        )
        .unwrap();
    }
    out
}
