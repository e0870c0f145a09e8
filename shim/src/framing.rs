//! Bytes in, lines out: how the shim cuts its stdin into frames.
//!
//! A frame is one line without its `\n` (and without a `\r` before it, for
//! clients that write CRLF). Empty lines are skipped. The last line needs no
//! newline: whatever is buffered at end of input is one more frame. Nothing
//! here looks inside a line; that is zend's job (invariant 1).
//!
//! Pure and synchronous so that the fuzzer can check it against a one-line
//! reference: `input.split('\n')`, trimmed, empties dropped.

/// Accumulates chunks of input and hands out complete lines.
#[derive(Debug, Default)]
pub struct LineFramer {
    buffer: Vec<u8>,
    /// Where the next line starts; bytes before it were handed out already.
    start: usize,
    /// How far `buffer` is known to contain no newline.
    scanned: usize,
}

impl LineFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk of input.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 {
            // Drop the lines already handed out, once per chunk rather than per line.
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete line, if one is buffered.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let newline =
                memchr::memchr(b'\n', &self.buffer[self.scanned..]).map(|at| self.scanned + at);
            let Some(newline) = newline else {
                self.scanned = self.buffer.len();
                return None;
            };
            let line = &self.buffer[self.start..newline];
            self.start = newline + 1;
            self.scanned = self.start;
            if let Some(frame) = trim(line) {
                return Some(frame.to_vec());
            }
        }
    }

    /// At end of input: the unterminated last line, if it holds anything.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let frame = trim(&self.buffer[self.start..]).map(<[u8]>::to_vec);
        *self = Self::default();
        frame
    }

    /// Bytes buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }
}

/// Strips the line ending (`\n`, `\r\n`, stray trailing `\r`s); `None` if nothing is left.
fn trim(mut line: &[u8]) -> Option<&[u8]> {
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    (!line.is_empty()).then_some(line)
}

/// Frames a whole input at once (the reference the fuzzer compares against).
pub fn frame_all(input: &[u8]) -> Vec<Vec<u8>> {
    let mut framer = LineFramer::new();
    framer.push(input);
    let mut frames = Vec::new();
    while let Some(line) = framer.next_line() {
        frames.push(line);
    }
    frames.extend(framer.finish());
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut framer = LineFramer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk);
            while let Some(line) = framer.next_line() {
                out.push(line);
            }
        }
        out.extend(framer.finish());
        out
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
