//! Escaping in the text format: tracing-subscriber's text format (since 0.3.20) escapes the
//! terminal controls ESC, BEL, BS, FF, DEL and the C1 controls in messages and in the texts of
//! errors, and nowhere else (see [`escape_text_into`]). Used on both sides: by callers
//! rendering span fields, by the writer rendering events.

use std::fmt;

/// Appends UTF-8 `bytes` escaped as tracing-subscriber's text format escapes messages and error
/// texts (its `EscapeGuard`, tracing-subscriber 0.3.20 and later), so that a log line cannot
/// drive the terminal that shows it: ESC, BEL, BS, FF and DEL become `\x1b`, `\x07`, `\x08`,
/// `\x0c` and `\x7f`, C1 controls (U+0080 to U+009F) `\u{80}` to `\u{9f}`. Everything else is
/// kept as it is, there as here: other C0 controls (`\r`, `\n`, `\t`, NUL...) and backslashes.
pub(crate) fn escape_text_into(out: &mut Vec<u8>, bytes: &[u8]) {
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
pub(crate) struct EscapingWriter<'a>(pub(crate) &'a mut Vec<u8>);

impl fmt::Write for EscapingWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_text_into(self.0, s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
