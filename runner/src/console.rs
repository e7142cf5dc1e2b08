//! The guest's serial console as lines of bytes, never assuming UTF-8.

/// Longest line kept whole. A guest spewing bytes without a newline must not grow the buffer
/// without bound; past this the line is cut and handed on in pieces.
const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream, arriving in arbitrary chunks, into lines.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes, calling `on_line` for each completed line (without its `\n`).
    pub fn push(&mut self, mut bytes: &[u8], mut on_line: impl FnMut(&[u8])) {
        while let Some(end) = memchr::memchr(b'\n', bytes) {
            if self.partial.is_empty() {
                on_line(&bytes[..end]);
            } else {
                self.partial.extend_from_slice(&bytes[..end]);
                on_line(&self.partial);
                self.partial.clear();
            }
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() >= MAX_LINE {
            on_line(&self.partial);
            self.partial.clear();
        }
    }

    /// Hands on the last line if the stream ended without a newline.
    pub fn finish(&mut self, mut on_line: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            on_line(&self.partial);
            self.partial.clear();
        }
    }
}

/// The text of a console line: without the serial port's `\r` and without printk's
/// `[    4.123456] ` time stamp.
pub fn text(line: &[u8]) -> &[u8] {
    let line = trim_cr(line);
    strip_timestamp(line).unwrap_or(line)
}

/// A line of init's made of two: printk wrote a whole record onto the console between init's
/// text and its newline (the tty writes the `\r\n` apart, and the kernel can take the console
/// in between), as in `harness: start[    2.699799] tsc: Refined TSC ...`. Returns init's
/// part and the kernel's, timestamp included.
pub fn split_interrupted(text: &[u8]) -> Option<(&[u8], &[u8])> {
    if !text.starts_with(crate::protocol::PREFIX) {
        return None;
    }
    memchr::memchr_iter(b'[', text)
        .skip_while(|&i| i == 0)
        .find(|&i| strip_timestamp(&text[i..]).is_some())
        .map(|i| text.split_at(i))
}

fn trim_cr(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r'] = line {
        line = rest;
    }
    while let [b'\r', rest @ ..] = line {
        line = rest;
    }
    line
}

fn strip_timestamp(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"[")?;
    let close = rest.iter().position(|&b| b == b']')?;
    let stamp = &rest[..close];
    let stamp = stamp.trim_ascii_start();
    let (secs, micros) = stamp.split_at(stamp.iter().position(|&b| b == b'.')?);
    let micros = &micros[1..];
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(secs) || !digits(micros) {
        return None;
    }
    let rest = &rest[close + 1..];
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// A console line as text: borrowed when it is UTF-8 (nearly always, and checked much faster
/// than a lossy decode), else with U+FFFD for each bad byte.
pub fn str_of(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Lossy text of a console line, for messages and reports.
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut splitter = LineSplitter::new();
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |l| lines.push(l.to_vec()));
        }
        splitter.finish(|l| lines.push(l.to_vec()));
        lines
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let lines = split(&[b"ab", b"c\r\nde", b"f\n\ng", b"h"]);
        assert_eq!(lines, [&b"abc\r"[..], b"def", b"", b"gh"]);
    }

    #[test]
    fn a_record_printed_inside_a_protocol_line_is_split_off() {
        let line = b"harness: start[    2.699799] tsc: Refined TSC calibration: 2599.980 MHz";
        assert_eq!(
            split_interrupted(line),
            Some((
                &b"harness: start"[..],
                &b"[    2.699799] tsc: Refined TSC calibration: 2599.980 MHz"[..]
            ))
        );
        // Brackets of init's own, and lines that are not init's, stay whole.
        assert_eq!(split_interrupted(b"harness: error cannot set [x]"), None);
        assert_eq!(split_interrupted(b"test_bpf: #1 a[    1.0] b"), None);
    }

    #[test]
    fn invalid_utf8_passes_through() {
        let lines = split(&[b"\xff\xfe ok\n"]);
        assert_eq!(lines, [b"\xff\xfe ok".to_vec()]);
    }

    #[test]
    fn overlong_lines_are_cut() {
        let long = vec![b'x'; MAX_LINE + 10];
        let lines = split(&[&long, b"\n"]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE + 10);
        assert!(lines[1].is_empty());
    }

    #[test]
    fn text_strips_timestamp_and_cr() {
        assert_eq!(
            text(b"[    4.123456] test_bpf: #0 TAX\r"),
            b"test_bpf: #0 TAX"
        );
        assert_eq!(text(b"[12345.000001] x"), b"x");
        assert_eq!(text(b"harness: start\r"), b"harness: start");
        assert_eq!(text(b"[not a stamp] x"), b"[not a stamp] x");
        assert_eq!(text(b"[ 1.2x] x"), b"[ 1.2x] x");
    }
}
