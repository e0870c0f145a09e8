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
}
