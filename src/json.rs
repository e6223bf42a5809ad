//! Writing JSON values: strings escaped as serde_json escapes them, integers and floats as it
//! writes them, and [`VecWriter`] for `fmt` into a byte buffer. Used on both sides: by callers
//! rendering span fields and thread names, by the writer rendering events.

use std::fmt::{self, Write as _};

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
