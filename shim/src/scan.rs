//! The one place the shim looks inside a line: the top-level `id` and `method`.
//!
//! To survive a daemon restart (see `replay`), the shim must recognise the
//! client's `initialize` request and `notifications/initialized`, and know which
//! requests are still waiting for an answer. That needs two fields of the
//! top-level object and nothing else, so this is a structural scan, not a
//! JSON parser: it walks strings and brackets once, allocates nothing, never
//! recurses (100k `[` cost nothing), and hands back raw byte spans. It does not
//! decode escapes, check numbers or literals, or match bracket kinds; anything
//! it cannot follow yields an empty [`Scan`], and zend, which does parse, sends
//! the client the real error. A key written with escapes (`"\u0069d"`) is not
//! recognised; the only cost is a request that is not errored on a restart.

/// What a line says at its top level.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scan<'a> {
    /// The raw JSON text of `id` (`7`, `"a-1"`), when it is a string or a number.
    pub id: Option<&'a [u8]>,
    /// The raw contents of the `method` string, quotes removed, escapes as written.
    pub method: Option<&'a [u8]>,
}

impl<'a> Scan<'a> {
    /// A request: something the other side must answer.
    pub fn is_request(&self) -> bool {
        self.id.is_some() && self.method.is_some()
    }

    /// A response: the answer to a request, carrying its id.
    pub fn response_id(&self) -> Option<&'a [u8]> {
        self.id.filter(|_| self.method.is_none())
    }
}

/// Scans one line (one JSON-RPC message); see the module docs for what it checks.
pub fn scan(line: &[u8]) -> Scan<'_> {
    Cursor { bytes: line, at: 0 }.object().unwrap_or_default()
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn object(&mut self) -> Option<Scan<'a>> {
        let mut scan = Scan::default();
        self.skip_ws();
        self.expect(b'{')?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
        } else {
            loop {
                self.skip_ws();
                let key = self.string()?;
                self.skip_ws();
                self.expect(b':')?;
                self.skip_ws();
                let value = self.value()?;
                match key {
                    b"\"id\"" => {
                        scan.id = match value.first() {
                            Some(b'"' | b'-' | b'0'..=b'9') => Some(value),
                            _ => None,
                        }
                    }
                    b"\"method\"" => {
                        scan.method = value
                            .strip_prefix(b"\"")
                            .and_then(|v| v.strip_suffix(b"\""))
                    }
                    _ => {}
                }
                self.skip_ws();
                match self.next()? {
                    b',' => {}
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.skip_ws();
        (self.at == self.bytes.len()).then_some(scan)
    }

    /// One value, returned as its raw span.
    fn value(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' | b'[' => self.nested()?,
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.at += 1;
                }
                if self.at == start {
                    return None;
                }
            }
        }
        Some(&self.bytes[start..self.at])
    }

    /// Skips an object or array, counting brackets only.
    fn nested(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
    }

    /// A string including its quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            // Strings are most of a message's bytes (a prompt, an answer): jump
            // to the next byte that matters instead of looking at each one.
            self.at += memchr::memchr2(b'"', b'\\', self.bytes.get(self.at..)?)?;
            match self.next()? {
                b'"' => return Some(&self.bytes[start..self.at]),
                _ => {
                    // A backslash: whatever it escapes is part of the string.
                    self.next()?;
                }
            }
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }
}

/// The most of an `id` or `method` a [`Streaming`] scan keeps; a longer one is
/// not recognised (an id that long is no id a client uses).
pub const STREAMING_CAPTURE_MAX: usize = 256;

/// [`scan`] for a line too long to keep: the bytes are fed as they stream past
/// and dropped, and the top-level `id` and `method` are all that is kept.
///
/// A state machine over the same structure `scan` walks: it finds what `scan`
/// would find in the whole line, except that an `id` or `method` longer than
/// 256 bytes is not recognised.
#[derive(Debug, Default)]
pub struct Streaming {
    at: At,
    /// The key being read, while it may still be `id` or `method`.
    key: Vec<u8>,
    /// Whether `key` is still a candidate (short, no escapes).
    key_plain: bool,
    /// Which field the value being read belongs to.
    field: Field,
    /// The raw value being read, when it belongs to `id` or `method`.
    value: Vec<u8>,
    /// Whether `value` outgrew [`STREAMING_CAPTURE_MAX`].
    value_long: bool,
    id: Option<Vec<u8>>,
    method: Option<Vec<u8>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Before the opening `{`.
    #[default]
    Start,
    /// Just inside the top-level object: a key or `}`.
    First,
    /// After a `,`: a key.
    Key,
    KeyText {
        escaped: bool,
    },
    Colon,
    Value,
    Text {
        escaped: bool,
    },
    Nested {
        depth: usize,
        in_string: bool,
        escaped: bool,
    },
    Scalar,
    /// After a value: `,` or `}`.
    Next,
    /// After the closing `}`: only whitespace may follow.
    End,
    /// Not an object `scan` would follow: nothing will be found.
    Broken,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Field {
    #[default]
    Other,
    Id,
    Method,
}

fn is_ws(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

impl Streaming {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the next bytes of the line.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            // Most bytes are inside strings nobody asked about: jump over them.
            let skipping = match self.at {
                At::Text { escaped: false } => self.field == Field::Other,
                At::Nested {
                    in_string: true,
                    escaped: false,
                    ..
                } => true,
                _ => false,
            };
            if skipping {
                match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                    Some(at) => i += at,
                    None => return,
                }
            }
            let byte = bytes[i];
            i += 1;
            self.step(byte);
            if self.at == At::Broken {
                return;
            }
        }
    }

    fn step(&mut self, byte: u8) {
        self.at = match self.at {
            At::Start if is_ws(byte) => At::Start,
            At::Start if byte == b'{' => At::First,
            At::First | At::Key | At::Colon | At::Value | At::Next | At::End if is_ws(byte) => {
                self.at
            }
            At::First | At::Key if byte == b'"' => {
                self.key.clear();
                self.key_plain = true;
                At::KeyText { escaped: false }
            }
            At::First if byte == b'}' => At::End,
            At::KeyText { escaped: true } => At::KeyText { escaped: false },
            At::KeyText { escaped: false } => match byte {
                b'\\' => {
                    self.key_plain = false;
                    At::KeyText { escaped: true }
                }
                b'"' => {
                    self.field = match (self.key_plain, self.key.as_slice()) {
                        (true, b"id") => Field::Id,
                        (true, b"method") => Field::Method,
                        _ => Field::Other,
                    };
                    At::Colon
                }
                _ => {
                    if self.key.len() < "method".len() {
                        self.key.push(byte);
                    } else {
                        self.key_plain = false;
                    }
                    At::KeyText { escaped: false }
                }
            },
            At::Colon if byte == b':' => At::Value,
            At::Value => {
                self.value.clear();
                self.value_long = false;
                match byte {
                    b'"' => {
                        self.capture(byte);
                        At::Text { escaped: false }
                    }
                    b'{' | b'[' => At::Nested {
                        depth: 1,
                        in_string: false,
                        escaped: false,
                    },
                    b',' | b'}' | b']' | b':' => At::Broken,
                    _ => {
                        self.capture(byte);
                        At::Scalar
                    }
                }
            }
            At::Text { escaped } => {
                self.capture(byte);
                match byte {
                    _ if escaped => At::Text { escaped: false },
                    b'\\' => At::Text { escaped: true },
                    b'"' => {
                        self.done();
                        At::Next
                    }
                    _ => At::Text { escaped: false },
                }
            }
            At::Nested {
                depth,
                in_string: true,
                escaped,
            } => At::Nested {
                depth,
                in_string: escaped || byte != b'"',
                escaped: !escaped && byte == b'\\',
            },
            At::Nested { depth, .. } => match byte {
                b'"' => At::Nested {
                    depth,
                    in_string: true,
                    escaped: false,
                },
                b'{' | b'[' => At::Nested {
                    depth: depth + 1,
                    in_string: false,
                    escaped: false,
                },
                b'}' | b']' if depth == 1 => {
                    self.done();
                    At::Next
                }
                b'}' | b']' => At::Nested {
                    depth: depth - 1,
                    in_string: false,
                    escaped: false,
                },
                _ => self.at,
            },
            At::Scalar => {
                if matches!(byte, b',' | b'}' | b']') || is_ws(byte) {
                    self.done();
                    self.at = At::Next;
                    return self.step(byte);
                }
                self.capture(byte);
                At::Scalar
            }
            At::Next if byte == b',' => At::Key,
            At::Next if byte == b'}' => At::End,
            _ => At::Broken,
        };
    }

    fn capture(&mut self, byte: u8) {
        if self.field == Field::Other {
            return;
        }
        if self.value.len() < STREAMING_CAPTURE_MAX {
            self.value.push(byte);
        } else {
            self.value_long = true;
        }
    }

    /// A value ended: keep it when it is the `id` or `method` (the last one
    /// wins, as in `scan`).
    fn done(&mut self) {
        let value = (!self.value_long).then(|| std::mem::take(&mut self.value));
        match self.field {
            Field::Other => {}
            Field::Id => {
                self.id = value.filter(|v| matches!(v.first(), Some(b'"' | b'-' | b'0'..=b'9')));
            }
            Field::Method => {
                self.method = value.and_then(|v| {
                    v.strip_prefix(b"\"")
                        .and_then(|v| v.strip_suffix(b"\""))
                        .map(<[u8]>::to_vec)
                });
            }
        }
        self.field = Field::Other;
    }

    /// What the whole line said at its top level: empty unless it was one
    /// object `scan` follows.
    pub fn result(&self) -> Scan<'_> {
        if self.at != At::End {
            return Scan::default();
        }
        Scan {
            id: self.id.as_deref(),
            method: self.method.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `id=<raw> method=<raw>`, `-` for absent.
    fn ids(line: &str) -> String {
        let scan = scan(line.as_bytes());
        let text =
            |b: Option<&[u8]>| b.map_or("-".into(), |b| String::from_utf8_lossy(b).into_owned());
        format!("id={} method={}", text(scan.id), text(scan.method))
    }

    #[test]
    fn requests_responses_and_notifications() {
        assert_eq!(
            ids(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"id":9}}"#),
            "id=7 method=tools/call"
        );
        assert_eq!(
            ids(r#" { "result" : {"method":"x"}, "id" : "a\"b" , "jsonrpc":"2.0"} "#),
            "id=\"a\\\"b\" method=-"
        );
        assert_eq!(
            ids(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            "id=- method=notifications/initialized"
        );
        assert_eq!(ids(r#"{"id":-3.5e2}"#), "id=-3.5e2 method=-");
        assert_eq!(ids(r#"{}"#), "id=- method=-");
    }

    #[test]
    fn nested_and_escaped_ids_are_not_top_level() {
        let line = r#"{"result":{"content":[{"text":"\"id\":5, {\"method\":1}"}],"id":4},"id":1}"#;
        assert_eq!(ids(line), "id=1 method=-");
    }

    #[test]
    fn null_and_non_scalar_ids_are_no_ids() {
        assert_eq!(ids(r#"{"id":null,"error":{}}"#), "id=- method=-");
        assert_eq!(ids(r#"{"id":[1],"method":"m"}"#), "id=- method=m");
        assert_eq!(ids(r#"{"id":true}"#), "id=- method=-");
        assert_eq!(ids(r#"{"id":1,"method":7}"#), "id=1 method=-");
    }

    #[test]
    fn long_strings_with_escapes_scan_as_before() {
        let text = "a \\\"quoted\\\" word, a backslash \\\\ and more ".repeat(300);
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"prompt":"{text}","id":7}}}}"#
        );
        assert_eq!(ids(&line), "id=42 method=tools/call");
        let reply = format!(
            r#"{{"jsonrpc":"2.0","id":"r-1","result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#
        );
        assert_eq!(ids(&reply), "id=\"r-1\" method=-");
        // Cut anywhere inside the long string: never a scan.
        for cut in (40..line.len() - 20).step_by(97) {
            assert_eq!(scan(&line.as_bytes()[..cut]), Scan::default());
        }
    }

    #[test]
    fn anything_it_cannot_follow_is_an_empty_scan() {
        for line in [
            "",
            "[{\"id\":1}]",
            "{\"id\":1",
            "{\"id\":1,\"method\":\"m\"} trailing",
            "{\"id\" 1}",
            "{\"id\":1,}",
            "{\"id\":\"unterminated}",
            "{\"a\":[[[[",
            "\u{feff}{\"id\":1}",
        ] {
            assert_eq!(scan(line.as_bytes()), Scan::default(), "{line:?}");
        }
        let deep = format!("{{\"id\":1,\"a\":{}}}", "[".repeat(100_000));
        assert_eq!(scan(deep.as_bytes()), Scan::default());
        let deep = format!(
            "{{\"id\":1,\"a\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(scan(deep.as_bytes()).id, Some(&b"1"[..]));
    }

    fn streamed(line: &[u8], chunk: usize) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let mut streaming = Streaming::new();
        for piece in line.chunks(chunk) {
            streaming.feed(piece);
        }
        let scan = streaming.result();
        (scan.id.map(<[u8]>::to_vec), scan.method.map(<[u8]>::to_vec))
    }

    #[test]
    fn a_streamed_line_scans_as_the_whole_line_however_it_is_cut() {
        let long = "a \\\"quoted\\\" word, a backslash \\\\ and more ".repeat(50);
        let lines = [
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"id":9}}"#.to_owned(),
            r#" { "result" : {"method":"x"}, "id" : "a\"b" , "jsonrpc":"2.0"} "#.to_owned(),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned(),
            r#"{"id":-3.5e2}"#.to_owned(),
            r#"{}"#.to_owned(),
            r#"{"result":{"content":[{"text":"\"id\":5, {\"method\":1}"}],"id":4},"id":1}"#
                .to_owned(),
            r#"{"id":null,"error":{}}"#.to_owned(),
            r#"{"id":[1],"method":"m"}"#.to_owned(),
            r#"{"id":true}"#.to_owned(),
            r#"{"id":1,"method":7}"#.to_owned(),
            r#"{"i\u0064":1,"method":"m"}"#.to_owned(),
            r#"{"identity":1,"methods":"m","id":2}"#.to_owned(),
            format!(
                r#"{{"method":"tools/call","params":{{"prompt":"{long}"}},"jsonrpc":"2.0","id":"z"}}"#
            ),
            format!(
                r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"p":["{long}",{{"id":7}}]}}}}"#
            ),
            String::new(),
            "[{\"id\":1}]".to_owned(),
            "{\"id\":1".to_owned(),
            "{\"id\":1,\"method\":\"m\"} trailing".to_owned(),
            "{\"id\" 1}".to_owned(),
            "{\"id\":1,}".to_owned(),
            "{\"id\":1]".to_owned(),
            "{\"id\":\"unterminated}".to_owned(),
            "{\"a\":[[[[".to_owned(),
            "\u{feff}{\"id\":1}".to_owned(),
        ];
        for line in &lines {
            let whole = scan(line.as_bytes());
            let expected = (
                whole.id.map(<[u8]>::to_vec),
                whole.method.map(<[u8]>::to_vec),
            );
            for chunk in [1, 2, 3, 7, 64, usize::MAX] {
                assert_eq!(
                    streamed(line.as_bytes(), chunk.min(line.len().max(1))),
                    expected,
                    "{line:?} in chunks of {chunk}"
                );
            }
        }
    }

    #[test]
    fn a_streamed_id_over_the_capture_limit_is_not_recognised() {
        let id = "9".repeat(STREAMING_CAPTURE_MAX + 1);
        let line = format!(r#"{{"id":{id},"method":"m"}}"#);
        assert_eq!(streamed(line.as_bytes(), 5), (None, Some(b"m".to_vec())));
    }
}
