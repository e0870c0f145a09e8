//! The HTTP edge shared by every adapter: the pooled client, SSE framing, and turning
//! upstream failures into [`ProviderError`]s without leaking keys.

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::ProviderError;
use super::types::Usage;

/// Builds the one pooled client (per connect timeout), redirects kept within their
/// origin (see [`same_origin_redirects`]).
pub(crate) fn build_client(connect_timeout: Duration) -> Result<reqwest::Client, ProviderError> {
    client_builder(connect_timeout)
        .redirect(reqwest::redirect::Policy::custom(same_origin_redirects))
        .build()
        .map_err(|e| ProviderError::Client(e.to_string()))
}

/// What every client of zend's shares. Installs rustls' ring provider as the
/// process default once; later calls find it installed.
fn client_builder(connect_timeout: Duration) -> reqwest::ClientBuilder {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another thread is fine: some provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("zend/", env!("CARGO_PKG_VERSION")))
}

/// A GET of a small JSON document outside any model call (`zend version --check`
/// reads the release feed with it): the same TLS setup as the provider client, no
/// credentials, bounded in time and size.
pub async fn fetch_json(url: &str, timeout: Duration) -> Result<serde_json::Value, ProviderError> {
    const MAX_BYTES: usize = 1 << 20;
    // No credentials go with it, so any redirect may be followed (a release feed's do).
    let client = client_builder(timeout)
        .build()
        .map_err(|e| ProviderError::Client(e.to_string()))?;
    let failed = |what: String| ProviderError::Client(format!("GET {url}: {what}"));
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    let body = response.bytes().await.map_err(|e| failed(e.to_string()))?;
    if body.len() > MAX_BYTES {
        return Err(failed(format!("answer over {MAX_BYTES} bytes")));
    }
    serde_json::from_slice(&body).map_err(|e| failed(format!("not JSON ({e})")))
}

/// Redirects are followed only within the origin they start from (scheme, host and
/// port), at most 5: keys travel in headers (`x-api-key`, `api-key`, ...) that reqwest
/// strips on a cross-origin redirect only when they are `authorization`, and an
/// `https` → `http` hop would send them in clear. A redirect elsewhere comes back
/// as the answer and is reported (`ErrorContext::redirected`).
fn same_origin_redirects(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let same_origin = attempt
        .previous()
        .last()
        .is_some_and(|from| from.origin() == attempt.url().origin());
    if attempt.previous().len() > 5 {
        attempt.error("more than 5 redirects")
    } else if same_origin {
        attempt.follow()
    } else {
        attempt.stop()
    }
}

/// One failed attempt: the error, plus what the retry loop and the ledger need.
#[derive(Debug)]
pub(crate) struct AttemptError {
    pub error: ProviderError,
    pub retry_after: Option<Duration>,
    pub usage: Option<Usage>,
}

impl From<ProviderError> for AttemptError {
    fn from(error: ProviderError) -> Self {
        Self {
            error,
            retry_after: None,
            usage: None,
        }
    }
}

/// Who an error is about, and the key to scrub from upstream text.
pub(crate) struct ErrorContext<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub key: Option<&'a str>,
    pub key_hint: &'a str,
}

impl ErrorContext<'_> {
    /// Maps an HTTP status (or an in-stream error given a status-like code) and the
    /// upstream's message to a typed error.
    pub fn classify(
        &self,
        status: u16,
        raw_message: &str,
        retry_after: Option<Duration>,
    ) -> AttemptError {
        let message = scrub(&upstream_message(raw_message), self.key);
        let lower = message.to_lowercase();
        let provider = self.provider.to_owned();
        let model = self.model.to_owned();
        let context_window = [
            "context_length_exceeded",
            "context window",
            "maximum context length",
            "prompt is too long",
            "input is too long",
            "too many tokens",
            "contextwindowexceeded",
            "exceeds the maximum number of tokens",
            "input token count",
        ]
        .iter()
        .any(|p| lower.contains(p));
        let content_policy = [
            "content_policy",
            "content policy",
            "content_filter",
            "safety",
        ]
        .iter()
        .any(|p| lower.contains(p));
        let invalid_key = [
            "api key not valid",
            "api_key_invalid",
            "invalid api key",
            "incorrect api key",
        ]
        .iter()
        .any(|p| lower.contains(p));
        let error = match status {
            401 | 403 => ProviderError::Auth {
                provider,
                model,
                key_hint: self.key_hint.to_owned(),
                message,
            },
            _ if invalid_key => ProviderError::Auth {
                provider,
                model,
                key_hint: self.key_hint.to_owned(),
                message,
            },
            429 => ProviderError::RateLimited {
                provider,
                model,
                retry_after,
                message,
            },
            400 | 413 | 422 if context_window => {
                ProviderError::ContextWindowExceeded { model, message }
            }
            400 | 422 if content_policy => ProviderError::ContentPolicy {
                provider,
                model,
                message,
            },
            408 | 409 | 500..=599 => ProviderError::Server {
                provider,
                model,
                status,
                message,
            },
            _ => ProviderError::BadRequest {
                provider,
                model,
                status,
                message,
            },
        };
        AttemptError {
            error,
            retry_after,
            usage: None,
        }
    }

    /// The upstream redirected to another origin (not followed, see `same_origin_redirects`).
    pub fn redirected(&self, status: u16, location: &str) -> AttemptError {
        let to = reqwest::Url::parse(location)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_else(|_| truncate(location, 100));
        ProviderError::BadRequest {
            provider: self.provider.to_owned(),
            model: self.model.to_owned(),
            status,
            message: scrub(
                &format!(
                    "the provider redirected to {to}, another origin; zen sends keys only to the \
                     base URL's origin, so it stopped there: if that address is right, make it the \
                     provider's base URL"
                ),
                self.key,
            ),
        }
        .into()
    }

    pub fn transport(&self, error: &reqwest::Error, after: Duration) -> AttemptError {
        let provider = self.provider.to_owned();
        let model = self.model.to_owned();
        let error = if error.is_timeout() {
            ProviderError::Timeout {
                provider,
                model,
                after,
            }
        } else {
            // reqwest errors carry the URL (never the key; keys go in headers).
            let mut message = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(inner) = source {
                message.push_str(": ");
                message.push_str(&inner.to_string());
                source = inner.source();
            }
            ProviderError::Connection {
                provider,
                model,
                message: scrub(&message, self.key),
            }
        };
        error.into()
    }

    pub fn invalid(&self, message: impl Into<String>) -> AttemptError {
        ProviderError::InvalidResponse {
            provider: self.provider.to_owned(),
            model: self.model.to_owned(),
            message: scrub(&message.into(), self.key),
        }
        .into()
    }
}

/// The human part of an upstream error body: `error.message` (OpenAI, Anthropic, Gemini)
/// or the text itself, cut to 300 characters.
fn upstream_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        let error = v.get("error").unwrap_or(v);
        error
            .get("message")
            .and_then(|m| m.as_str())
            .or_else(|| error.as_str())
            .map(|m| {
                let kind = error
                    .get("type")
                    .or_else(|| error.get("code"))
                    .or_else(|| error.get("status"))
                    .and_then(|t| t.as_str());
                match kind {
                    Some(kind) => format!("{kind}: {m}"),
                    None => m.to_owned(),
                }
            })
    });
    let text = from_json.unwrap_or_else(|| body.trim().to_owned());
    let text = if text.is_empty() {
        "no details".to_owned()
    } else {
        text
    };
    truncate(&text, 300)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

/// Removes the key (and any long prefix of it an upstream might echo) from `text`.
/// Any key works, whatever its characters: lengths are counted in characters.
pub(crate) fn scrub(text: &str, key: Option<&str>) -> String {
    let Some(key) = key.filter(|k| k.chars().count() >= 8) else {
        return text.to_owned();
    };
    let mut out = text.replace(key, "***");
    // OpenAI echoes "sk-abc…xyz"-style fragments; drop any 12+-char prefix of the key.
    if let Some((cut, _)) = key.char_indices().nth(12) {
        let prefix = &key[..cut];
        while let Some(pos) = out.find(prefix) {
            let end = out[pos..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
                .map_or(out.len(), |e| pos + e);
            out.replace_range(pos..end, "***");
        }
    }
    out
}

/// `Retry-After` (seconds, or an HTTP date we treat as unknown) / `retry-after-ms`.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    header_str(headers, "retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Incremental SSE framing (events end at a blank line; `\n`, `\r\n` and `\r` line ends).
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    ///
    /// Complete lines are read where they lie (in `bytes`, or in the buffer when an
    /// earlier chunk left part of a line); only an unfinished line is kept.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if self.buffer.is_empty() {
            let used = self.lines(bytes, &mut events);
            self.buffer.extend_from_slice(&bytes[used..]);
        } else {
            let mut buffer = std::mem::take(&mut self.buffer);
            buffer.extend_from_slice(bytes);
            let used = self.lines(&buffer, &mut events);
            buffer.drain(..used);
            self.buffer = buffer;
        }
        events
    }

    /// Reads the complete lines at the start of `bytes`; returns how many bytes they took.
    fn lines(&mut self, bytes: &[u8], events: &mut Vec<SseEvent>) -> usize {
        let mut start = 0;
        while let Some(offset) = memchr::memchr2(b'\n', b'\r', &bytes[start..]) {
            let pos = start + offset;
            // A lone `\r` at the end may be the first half of `\r\n`: wait.
            if bytes[pos] == b'\r' && pos + 1 == bytes.len() {
                break;
            }
            let skip = if bytes[pos] == b'\r' && bytes.get(pos + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line = match std::str::from_utf8(&bytes[start..pos]) {
                Ok(line) => std::borrow::Cow::Borrowed(line),
                Err(_) => String::from_utf8_lossy(&bytes[start..pos]),
            };
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
            start = pos + skip;
        }
        start
    }

    /// The last event, if the stream ended without a blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty() {
            let line = String::from_utf8_lossy(&rest).into_owned();
            if let Some(event) = self.line(&line) {
                return Some(event);
            }
        }
        self.line("")
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if !self.has_data && self.current.event.is_none() {
                return None;
            }
            self.has_data = false;
            return Some(std::mem::take(&mut self.current));
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_takes_any_key_without_panicking() {
        for key in [
            "ключ-секретный-длинный-ключ",
            "sk-é1234567890abcdef",
            "sk-abcde-éééééééé",
            "🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑",
        ] {
            let echoed: String = key.chars().take(13).collect();
            let text = format!("bad key {key}; also {echoed}xyz here");
            let out = scrub(&text, Some(key));
            assert!(!out.contains(key), "{out}");
            assert!(!out.contains(&echoed), "{out}");
        }
        assert_eq!(scrub("short é", Some("é")), "short é");
    }

    #[test]
    fn no_debug_prints_a_header_value() {
        let request = super::super::adapter::HttpRequest {
            url: "https://x.example/v1".into(),
            headers: vec![("x-api-key".into(), "sk-secret-value-123".into())],
            body: super::super::adapter::Body::Encoded(Vec::new()),
        };
        let text = format!("{request:?}");
        assert!(
            text.contains("x-api-key") && !text.contains("sk-secret"),
            "{text}"
        );
    }

    #[test]
    fn sse_split_across_chunks_and_line_ends() {
        let mut parser = SseParser::default();
        let mut events = parser.feed(b"event: a\r\ndata: {\"x\"");
        assert!(events.is_empty());
        events.extend(parser.feed(b":1}\r\n\r\n: comment\n\ndata: one\ndata: two\n\ndata: [DONE]"));
        events.extend(parser.finish());
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["{\"x\":1}", "one\ntwo", "[DONE]"]);
        assert_eq!(events[0].event.as_deref(), Some("a"));
    }

    #[test]
    fn sse_invalid_utf8_is_replaced_not_fatal() {
        let mut parser = SseParser::default();
        let events = parser.feed(b"data: a\xffb\n\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "a\u{fffd}b");
    }

    /// Every way of cutting a stream into chunks gives the same events as feeding it whole,
    /// including a `\r\n` or a multi-byte character split between chunks.
    #[test]
    fn sse_any_split_gives_the_same_events() {
        let stream = "event: \u{e9}t\u{e9}\r\ndata: {\"a\":\"\u{2603}\"}\r\n\r\n: c\r\rdata: x\r\ndata: y\n\ndata: [DONE]\n\n"
            .as_bytes();
        let whole = {
            let mut parser = SseParser::default();
            let mut events = parser.feed(stream);
            events.extend(parser.finish());
            events
        };
        assert_eq!(whole.len(), 3, "{whole:?}");
        assert_eq!(whole[0].event.as_deref(), Some("\u{e9}t\u{e9}"));
        assert_eq!(whole[0].data, "{\"a\":\"\u{2603}\"}");
        assert_eq!(whole[1].data, "x\ny");
        for cut in 0..=stream.len() {
            for second in cut..=stream.len() {
                let mut parser = SseParser::default();
                let mut events = parser.feed(&stream[..cut]);
                events.extend(parser.feed(&stream[cut..second]));
                events.extend(parser.feed(&stream[second..]));
                events.extend(parser.finish());
                assert_eq!(events, whole, "cut at {cut} and {second}");
            }
        }
    }

    #[test]
    fn classify_and_scrub() {
        let key = "sk-zen-SECRET-0123456789abcdef";
        let ctx = ErrorContext {
            provider: "openai",
            model: "gpt-5",
            key: Some(key),
            key_hint: "OPENAI_API_KEY",
        };
        let body = format!(
            r#"{{"error":{{"message":"Incorrect API key provided: {}***cdef","type":"invalid_request_error"}}}}"#,
            &key[..14]
        );
        let err = ctx.classify(401, &body, None).error;
        assert!(matches!(err, ProviderError::Auth { .. }));
        let text = format!("{err} {err:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("OPENAI_API_KEY"), "{text}");

        let cw = ctx.classify(400, r#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#, None);
        assert!(matches!(
            cw.error,
            ProviderError::ContextWindowExceeded { .. }
        ));
        let rl = ctx.classify(429, "slow down", Some(Duration::from_secs(2)));
        assert_eq!(rl.error.retry_after(), Some(Duration::from_secs(2)));
        assert!(ctx.classify(503, "", None).error.is_retryable());
        assert!(
            !ctx.classify(404, "no such model", None)
                .error
                .is_retryable()
        );
    }
}
