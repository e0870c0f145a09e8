//! Bytes in, lines out: how the shim cuts its stdin into frames.
//!
//! A frame is one line without its `\n` (and without a `\r` before it, for
//! clients that write CRLF). Empty lines are skipped. The last line needs no
//! newline: whatever is buffered at end of input is one more frame. Nothing
//! here looks inside a line; that is zend's job (invariant 1).
//!
//! A line longer than the limit (zend's, [`zen_proto::MAX_MESSAGE_BYTES`], by
//! default; its `\n` not counted, a `\r` counted) is not kept: once the buffer holds that much without a newline,
//! the rest of the line streams past a [`Streaming`] scan and is dropped, and
//! the line comes out as [`Line::TooLong`], its length and its top-level `id`
//! and `method`, so the shim can answer it. The buffer never holds much more
//! than the limit (plus one read).
//!
//! Pure and synchronous so that the fuzzer can check it against a one-line
//! reference: `input.split('\n')`, trimmed, empties dropped (and, with a
//! limit, the lines over it reported as too long).

use crate::scan::Streaming;

/// What [`LineFramer`] hands out.
#[derive(Debug)]
pub enum Line {
    /// A complete line, endings stripped.
    Frame(Vec<u8>),
    /// A line over the limit, already dropped.
    TooLong(TooLong),
}

/// A line over the limit: how long it was and what its top level said.
#[derive(Debug)]
pub struct TooLong {
    /// Its length in bytes, the line ending excluded.
    pub bytes: usize,
    /// Its top-level `id` and `method`, found as it streamed past.
    pub scan: Streaming,
    /// The limit it is over.
    pub limit: usize,
}

/// JSON-RPC's "Invalid Request", the code zend answers an oversized message with.
pub const INVALID_REQUEST: i32 = -32600;

impl TooLong {
    /// The answer zend would have given the line: -32600 with its `id` (null
    /// when none was found), or `None` for a notification, which gets none.
    pub fn answer(&self) -> Option<Vec<u8>> {
        let scan = self.scan.result();
        if scan.id.is_none() && scan.method.is_some() {
            return None;
        }
        let id = scan.id.unwrap_or(b"null");
        let mut line = Vec::with_capacity(id.len() + 200);
        line.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        line.extend_from_slice(id);
        line.extend_from_slice(
            format!(
                r#","error":{{"code":{INVALID_REQUEST},"message":"the message is {} bytes; zen takes at most {} bytes per message: pass large content as files (absolute paths) instead"}}}}"#,
                self.bytes, self.limit
            )
            .as_bytes(),
        );
        Some(line)
    }
}

/// Accumulates chunks of input and hands out complete lines.
#[derive(Debug)]
pub struct LineFramer {
    buffer: Vec<u8>,
    /// Where the next line starts; bytes before it were handed out already.
    start: usize,
    /// How far `buffer` is known to contain no newline.
    scanned: usize,
    /// The longest line kept.
    limit: usize,
    /// A line over the limit whose end has not come yet.
    dropping: Option<TooLong>,
    /// A line over the limit whose end came in the last chunk.
    dropped: Option<TooLong>,
}

impl Default for LineFramer {
    fn default() -> Self {
        Self::with_limit(zen_proto::MAX_MESSAGE_BYTES)
    }
}

impl LineFramer {
    /// A framer that keeps lines up to zend's limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A framer that keeps lines up to `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            limit,
            dropping: None,
            dropped: None,
        }
    }

    /// Appends a chunk of input.
    pub fn push(&mut self, mut chunk: &[u8]) {
        if let Some(long) = &mut self.dropping {
            // The rest of a line over the limit: scanned and dropped up to its end.
            let end = memchr::memchr(b'\n', chunk);
            let (part, rest) = chunk.split_at(end.unwrap_or(chunk.len()));
            long.bytes += part.len();
            long.scan.feed(part);
            if end.is_none() {
                return;
            }
            self.dropped = self.dropping.take();
            chunk = &rest[1..];
        }
        if self.start > 0 {
            // Drop the lines already handed out, once per chunk rather than per line.
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete line (or line over the limit), if one is ready.
    pub fn next_line(&mut self) -> Option<Line> {
        if let Some(long) = self.dropped.take() {
            return Some(Line::TooLong(long));
        }
        loop {
            let newline =
                memchr::memchr(b'\n', &self.buffer[self.scanned..]).map(|at| self.scanned + at);
            let Some(newline) = newline else {
                self.scanned = self.buffer.len();
                if self.buffered() > self.limit {
                    // No end in sight: keep only what the scan needs from now on.
                    let mut long = TooLong {
                        bytes: self.buffered(),
                        scan: Streaming::new(),
                        limit: self.limit,
                    };
                    long.scan.feed(&self.buffer[self.start..]);
                    self.dropping = Some(long);
                    self.buffer = Vec::new();
                    self.start = 0;
                    self.scanned = 0;
                }
                return None;
            };
            let line = &self.buffer[self.start..newline];
            self.start = newline + 1;
            self.scanned = self.start;
            if let Some(line) = self.frame(line) {
                return Some(line);
            }
        }
    }

    /// At end of input: the unterminated last line, if it holds anything.
    pub fn finish(&mut self) -> Option<Line> {
        if let Some(long) = self.dropped.take().or_else(|| self.dropping.take()) {
            *self = Self::with_limit(self.limit);
            return Some(Line::TooLong(long));
        }
        let line = self.frame(&self.buffer[self.start..]);
        *self = Self::with_limit(self.limit);
        line
    }

    /// Bytes buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// `line` (without its `\n`) as a frame, or as too long (its whole text
    /// is here: it came in one read).
    fn frame(&self, line: &[u8]) -> Option<Line> {
        if line.len() <= self.limit {
            return trim(line).map(|frame| Line::Frame(frame.to_vec()));
        }
        let mut scan = Streaming::new();
        scan.feed(line);
        Some(Line::TooLong(TooLong {
            bytes: line.len(),
            scan,
            limit: self.limit,
        }))
    }
}

/// Strips the line ending (`\n`, `\r\n`, stray trailing `\r`s); `None` if nothing is left.
fn trim(mut line: &[u8]) -> Option<&[u8]> {
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    (!line.is_empty()).then_some(line)
}

/// Frames a whole input at once (the reference the fuzzer compares against):
/// the frames, and the length of each line over the limit in its place.
pub fn frame_all(input: &[u8]) -> Vec<Vec<u8>> {
    let mut framer = LineFramer::new();
    framer.push(input);
    let mut frames = Vec::new();
    while let Some(line) = framer.next_line() {
        frames.push(line);
    }
    frames.extend(framer.finish());
    frames
        .into_iter()
        .map(|line| match line {
            Line::Frame(frame) => frame,
            Line::TooLong(long) => format!("<{} bytes>", long.bytes).into_bytes(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        limited(chunks, usize::MAX)
    }

    /// The frames, and `<N bytes id=ID>` for a line over `limit`.
    fn limited(chunks: &[&[u8]], limit: usize) -> Vec<Vec<u8>> {
        let mut framer = LineFramer::with_limit(limit);
        let mut out = Vec::new();
        let show = |line: Line| match line {
            Line::Frame(frame) => frame,
            Line::TooLong(long) => format!(
                "<{} bytes id={}>",
                long.bytes,
                String::from_utf8_lossy(long.scan.result().id.unwrap_or(b"-"))
            )
            .into_bytes(),
        };
        for chunk in chunks {
            framer.push(chunk);
            while let Some(line) = framer.next_line() {
                out.push(show(line));
            }
            assert!(framer.buffered() <= limit, "{}", framer.buffered());
        }
        out.extend(framer.finish().map(show));
        out
    }

    fn text(frames: Vec<Vec<u8>>) -> Vec<String> {
        frames
            .into_iter()
            .map(|f| String::from_utf8_lossy(&f).into_owned())
            .collect()
    }

    #[test]
    fn a_line_over_the_limit_is_dropped_and_reported_with_its_id() {
        let long = format!(
            r#"{{"method":"m","params":{{"p":"{}"}},"id":7}}"#,
            "x".repeat(100)
        );
        let input = format!("{{\"id\":1}}\n{long}\n{{\"id\":2}}\n{long}");
        // Whole, or cut in pieces smaller than the limit: the same lines.
        for piece in [input.len(), 5, 1] {
            let chunks: Vec<&[u8]> = input.as_bytes().chunks(piece).collect();
            assert_eq!(
                text(limited(&chunks, 40)),
                [
                    r#"{"id":1}"#,
                    "<139 bytes id=7>",
                    r#"{"id":2}"#,
                    "<139 bytes id=7>"
                ],
                "pieces of {piece}"
            );
        }
        let mut framer = LineFramer::with_limit(10);
        framer.push(br#"{"id":"a","method":"m","params":{}}"#);
        framer.push(b"\n");
        let Some(Line::TooLong(long)) = framer.next_line() else {
            panic!("not too long")
        };
        let answer = String::from_utf8(long.answer().unwrap_or_default()).unwrap_or_default();
        assert!(
            answer.starts_with(r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32600,"message":"the message is 35 bytes; zen takes at most 10 bytes"#),
            "{answer}"
        );
        framer.push(br#"{"method":"notifications/x","params":{}}"#);
        let Some(Line::TooLong(long)) = framer.finish() else {
            panic!("not too long")
        };
        assert_eq!(long.answer(), None, "a notification gets no answer");
        // At the limit exactly: kept.
        assert_eq!(text(limited(&[b"12345\n"], 5)), ["12345"]);
        assert_eq!(text(limited(&[b"123456\n"], 5)), ["<6 bytes id=->"]);
    }

    #[test]
    fn lines_split_on_newline_and_lose_their_endings() {
        assert_eq!(
            frames(&[b"{\"a\":1}\n{\"b\":2}\r\n"]),
            vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        assert_eq!(
            frames(&[b"ab", b"c\n\nd", b"e\r", b"\nf"]),
            vec![b"abc".to_vec(), b"de".to_vec(), b"f".to_vec()]
        );
    }

    #[test]
    fn empty_lines_are_skipped_and_the_last_line_needs_no_newline() {
        assert_eq!(frames(&[b"\n\r\n\n", b"x"]), vec![b"x".to_vec()]);
        assert!(frames(&[b"\r\n\r"]).is_empty());
    }

    #[test]
    fn bytes_are_passed_through_untouched() {
        let line = b"\xff\xfe\x00 not utf-8 \r inside";
        let mut input = line.to_vec();
        input.push(b'\n');
        assert_eq!(frame_all(&input), vec![line.to_vec()]);
    }
}
