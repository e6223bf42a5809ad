//! Helpers for the rotation, recovery and crash tests: listing a sink's folder, recognising
//! rotated names, decompressing files (with flate2 or the system `gzip`), and parsing their
//! lines. Each test binary uses a different subset.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The file name every test gives the sink.
pub const BASE: &str = super::FILE_NAME;

/// The active file's name.
pub const ACTIVE: &str = "app.log";

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
    system_gzip("-t", path);
}

/// The decompressed content of a `.gz` file with the system's `gzip -dc`.
pub fn gunzip_system(path: &Path) -> Vec<u8> {
    system_gzip("-dc", path)
}

/// The system's `gzip` with `flag` on `path`: its stdout, or a panic with its stderr.
fn system_gzip(flag: &str, path: &Path) -> Vec<u8> {
    let out = Command::new("gzip")
        .arg(flag)
        .arg(path)
        .output()
        .expect("running the system gzip (is it installed?)");
    assert!(
        out.status.success(),
        "gzip {flag} {}: {} {}",
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
            let lines = super::json_lines(&bytes, &name);
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
    files.iter().flat_map(|f| super::seqs(&f.lines)).collect()
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
