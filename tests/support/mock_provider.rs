//! A fake model provider on loopback: an OpenAI-compatible `/v1/chat/completions`
//! and OpenAI's Responses API `/v1/responses`, Anthropic's `/v1/messages` and
//! Gemini's `:generateContent` / `:streamGenerateContent?alt=sse` (each JSON or
//! SSE, as the request asks, with usage as each provider reports it). It records
//! every request so tests can assert what zend sent and how often. Plain std
//! threads: no runtime needed in sync tests.
//!
//! Faults are scripted per model: a queue of [`Behaviour`]s consumed one per
//! request ([`MockProvider::script`]), each an HTTP status (with or without
//! Retry-After) or a broken answer ([`Mode`]: a stream that stalls, is cut off,
//! fails after billing, invalid JSON, a connection closed without an answer).
//! The mock counts what it billed (usage it sent) and how many requests it
//! held at once, and can hold every request until the test releases it (all at
//! once, or one model's at a time). It notes every request whose connection zend
//! closed before the answer was complete (held, or mid-stream): an aborted upstream.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// When the request arrived.
    pub at: std::time::Instant,
}

/// How the mock answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// The answer text (the request's last user message is appended when `echo`).
    pub reply: String,
    pub echo: bool,
    /// Delay before answering.
    pub delay: Duration,
    /// Answer with this HTTP status and body instead.
    pub fail: Option<(u16, String)>,
    /// A `retry-after` header on the `fail` answer.
    pub retry_after: Option<String>,
    /// How the answer is broken, if it is.
    pub mode: Mode,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of `prompt_tokens`, read from the cache; of `completion_tokens`, spent
    /// reasoning (reported by the Responses API only).
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    /// Of `prompt_tokens`, how many were written to the cache (Anthropic only).
    pub cache_write_tokens: u64,
    /// Extra headers on a successful answer (`x-litellm-response-cost`, ...).
    pub headers: Vec<(String, String)>,
}

/// Ways an answer can go wrong after the request was read (the status is 200).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Normal,
    /// Sends the head and (streaming) the first piece of text, then nothing for
    /// up to a minute, until zend gives up and closes the connection.
    StallMidStream,
    /// Streaming: sends the first piece of text, then closes the connection (no
    /// finish reason, no usage, no `[DONE]`). Not streaming: half the body.
    TruncatedStream,
    /// Streaming: sends text and a usage chunk (billed), then an in-stream 503
    /// error event.
    ErrorAfterUsage,
    /// A 200 whose JSON body is cut off mid-object.
    InvalidJson,
    /// Reads the request, then closes the connection without a byte.
    CloseWithoutAnswer,
    /// Responses API, streaming: the first piece of text, then a
    /// `response.failed` event (`server_error`, nothing billed).
    ResponseFailed,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            reply: "mock answer".into(),
            echo: false,
            delay: Duration::ZERO,
            fail: None,
            retry_after: None,
            mode: Mode::Normal,
            prompt_tokens: 100,
            completion_tokens: 20,
            cached_tokens: 0,
            reasoning_tokens: 0,
            cache_write_tokens: 0,
            headers: Vec::new(),
        }
    }
}

/// Tokens the mock reported as used (in a usage object it sent), for one model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Billed {
    /// Answers that carried a usage object.
    pub answers: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// What every connection thread shares.
#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    behaviour: Mutex<Behaviour>,
    /// Behaviour by model name, when a test wants models to differ.
    per_model: Mutex<Vec<(String, Behaviour)>>,
    /// Scripted behaviours by model name, one consumed per request.
    scripts: Mutex<Vec<(String, VecDeque<Behaviour>)>>,
    billed: Mutex<Vec<(String, Billed)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// While true, requests wait (counted in flight) before being answered.
    held: Mutex<bool>,
    released: Condvar,
    /// While held, one request each for these models may go on ([`MockProvider::release_one`]).
    passes: Mutex<Vec<String>>,
    /// Models whose connection zend closed before their answer was complete.
    hangups: Mutex<Vec<String>>,
    /// Models whose request the mock has answered (whatever the answer), in order.
    answered: Mutex<Vec<String>>,
    /// What `GET .../models` lists (a LiteLLM proxy's catalogue).
    models: Mutex<Vec<String>>,
}

pub struct MockProvider {
    pub url: String,
    shared: Arc<Shared>,
}

impl MockProvider {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let accept = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = accept.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Self { url, shared }
    }

    /// A base URL (`.../v1`) on which nothing listens: connections are refused.
    pub fn refused_v1() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/v1")
    }

    /// The base URL as providers expect it for OpenAI-compatible APIs (`.../v1`).
    pub fn v1(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// The model ids `GET .../models` answers with.
    pub fn set_models(&self, models: &[&str]) {
        *self.shared.models.lock().unwrap() = models.iter().map(|m| (*m).to_owned()).collect();
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    pub fn set_for_model(&self, model: &str, behaviour: Behaviour) {
        self.shared
            .per_model
            .lock()
            .unwrap()
            .push((model.to_owned(), behaviour));
    }

    /// Requests for `model` (a suffix of the requested model, as in
    /// `set_for_model`) get these behaviours in turn, then the usual one.
    pub fn script(&self, model: &str, steps: Vec<Behaviour>) {
        self.shared
            .scripts
            .lock()
            .unwrap()
            .push((model.to_owned(), steps.into()));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Completion requests for one model (exact name in the request body).
    pub fn completions_for(&self, model: &str) -> usize {
        self.completions()
            .iter()
            .filter(|r| r.body["model"] == model)
            .count()
    }

    /// What the mock billed for `model` (exact name in the request body).
    pub fn billed(&self, model: &str) -> Billed {
        let mut total = Billed::default();
        for (m, b) in self.shared.billed.lock().unwrap().iter() {
            if m == model {
                total.answers += b.answers;
                total.prompt_tokens += b.prompt_tokens;
                total.completion_tokens += b.completion_tokens;
            }
        }
        total
    }

    /// Requests being answered right now, and the most there ever were at once.
    pub fn in_flight(&self) -> (usize, usize) {
        (
            self.shared.in_flight.load(Ordering::SeqCst),
            self.shared.max_in_flight.load(Ordering::SeqCst),
        )
    }

    /// Makes every request wait, counted in flight, until [`MockProvider::release`].
    pub fn hold(&self) {
        *self.shared.held.lock().unwrap() = true;
    }

    pub fn release(&self) {
        *self.shared.held.lock().unwrap() = false;
        self.shared.released.notify_all();
    }

    /// While held, lets one request for `model` (exact name in the request body) be
    /// answered, now or when it arrives; the others stay held.
    pub fn release_one(&self, model: &str) {
        let _held = self.shared.held.lock().unwrap();
        self.shared.passes.lock().unwrap().push(model.to_owned());
        self.shared.released.notify_all();
    }

    /// The models (in request bodies) whose connection zend closed before the
    /// answer was complete, in the order it did.
    pub fn hangups(&self) -> Vec<String> {
        self.shared.hangups.lock().unwrap().clone()
    }

    /// How many requests for `model` (exact name) the mock has answered in full,
    /// HTTP errors included.
    pub fn answered(&self, model: &str) -> usize {
        self.shared
            .answered
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == model)
            .count()
    }

    /// Waits (up to `within`) until `n` requests are in flight; false if they never were.
    pub fn wait_in_flight(&self, n: usize, within: Duration) -> bool {
        let until = Instant::now() + within;
        while self.in_flight().0 < n {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Requests that asked a model for an answer.
    pub fn completions(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }
}

/// One HTTP/1.1 request read off a connection: method, path, headers
/// (names lowercased) and the JSON body (`Null` when it is not JSON).
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// The next request on `reader`, or `None` once the client closed.
pub fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<HttpRequest>> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(None);
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            }
            headers.push((name, value));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(Some(HttpRequest {
        method,
        path,
        headers,
        body,
    }))
}

fn serve(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    while let Some(HttpRequest {
        method,
        path,
        headers,
        body,
    }) = read_request(&mut reader)?
    {
        shared.requests.lock().unwrap().push(Recorded {
            method: method.clone(),
            path: path.clone(),
            headers,
            body: body.clone(),
            at: Instant::now(),
        });

        if method == "GET" && path.ends_with("/models") {
            let data: Vec<Value> = shared
                .models
                .lock()
                .unwrap()
                .iter()
                .map(|id| serde_json::json!({"id": id, "object": "model"}))
                .collect();
            let text = serde_json::json!({"object": "list", "data": data}).to_string();
            write_head(&mut stream, 200, "application/json", Some(text.len()), "")?;
            stream.write_all(text.as_bytes())?;
            stream.flush()?;
            continue;
        }
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let answered = answer(&mut stream, shared, &path, &body);
        if let Ok(true) = answered {
            shared.answered.lock().unwrap().push(model_of(&path, &body));
        }
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !answered? {
            return Ok(());
        }
    }
    Ok(())
}

/// Answers one request; false when the connection must be closed after it.
fn answer(
    stream: &mut TcpStream,
    shared: &Shared,
    path: &str,
    body: &Value,
) -> std::io::Result<bool> {
    let model = model_of(path, body);
    if !wait_while_held(stream, shared, &model) {
        shared.hangups.lock().unwrap().push(model);
        return Ok(false);
    }
    let scripted = shared
        .scripts
        .lock()
        .unwrap()
        .iter_mut()
        .find(|(m, steps)| model.ends_with(m.as_str()) && !steps.is_empty())
        .and_then(|(_, steps)| steps.pop_front());
    let chosen = scripted.unwrap_or_else(|| {
        shared
            .per_model
            .lock()
            .unwrap()
            .iter()
            .find(|(m, _)| model.ends_with(m.as_str()))
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| shared.behaviour.lock().unwrap().clone())
    });
    std::thread::sleep(chosen.delay);
    if let Some((status, text)) = &chosen.fail {
        let extra = chosen
            .retry_after
            .as_ref()
            .map(|v| format!("retry-after: {v}\r\n"))
            .unwrap_or_default();
        write_head(
            stream,
            *status,
            "application/json",
            Some(text.len()),
            &extra,
        )?;
        stream.write_all(text.as_bytes())?;
        stream.flush()?;
        return Ok(true);
    }
    let bill = |shared: &Shared| {
        shared.billed.lock().unwrap().push((
            model.clone(),
            Billed {
                answers: 1,
                prompt_tokens: chosen.prompt_tokens,
                completion_tokens: chosen.completion_tokens,
            },
        ));
    };
    let mut reply = chosen.reply.clone();
    if chosen.echo {
        reply.push_str(&format!("\n[echo] {}", last_user_text(body)));
    }
    let streaming = body["stream"] == true;
    let responses_api = path.ends_with("/responses");
    match chosen.mode {
        Mode::Normal => {}
        Mode::ResponseFailed => {
            let failed = json!({"type": "response.failed", "response": {"id": "resp_mock",
                "status": "failed", "error": {"code": "server_error",
                "message": "The model failed to generate a response."}}});
            let text = format!(
                "{}{}",
                responses_event(
                    &json!({"type": "response.output_text.delta", "delta": "the first half of"})
                ),
                responses_event(&failed)
            );
            write_response(stream, 200, "text/event-stream", text.as_bytes())?;
            return Ok(true);
        }
        Mode::CloseWithoutAnswer => return Ok(false),
        Mode::InvalidJson => {
            let text = r#"{"id": "chatcmpl-mock", "choices": [{"message": {"content": "cut"#;
            write_head(stream, 200, "application/json", Some(text.len()), "")?;
            stream.write_all(text.as_bytes())?;
            stream.flush()?;
            return Ok(true);
        }
        Mode::StallMidStream | Mode::TruncatedStream | Mode::ErrorAfterUsage => {
            // Close-delimited (no length, no chunking): the body ends when the socket does.
            let content_type = if streaming {
                "text/event-stream"
            } else {
                "application/json"
            };
            write_head(stream, 200, content_type, None, "connection: close\r\n")?;
            let first = if streaming && responses_api {
                responses_event(
                    &json!({"type": "response.output_text.delta", "delta": "the first half of"}),
                )
            } else if streaming {
                sse_chunk(&model, json!({"content": "the first half of"}), None)
            } else {
                openai_body(&reply, &chosen, &model)[..20].to_owned()
            };
            stream.write_all(first.as_bytes())?;
            stream.flush()?;
            match chosen.mode {
                Mode::StallMidStream => {
                    // Until zend hangs up (a read returns 0 or fails) or a minute passes.
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                    let mut byte = [0u8; 1];
                    let hung_up = match stream.read(&mut byte) {
                        Ok(n) => n == 0,
                        Err(e) => !matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ),
                    };
                    if hung_up {
                        shared.hangups.lock().unwrap().push(model.clone());
                    }
                }
                Mode::ErrorAfterUsage if streaming => {
                    let usage = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk",
                        "model": model, "choices": [],
                        "usage": {"prompt_tokens": chosen.prompt_tokens,
                                  "completion_tokens": chosen.completion_tokens,
                                  "total_tokens": chosen.prompt_tokens + chosen.completion_tokens}});
                    let error = json!({"error": {"message": "upstream overloaded mid-answer", "code": 503}});
                    stream.write_all(format!("data: {usage}\n\ndata: {error}\n\n").as_bytes())?;
                    stream.flush()?;
                    bill(shared);
                }
                _ => {}
            }
            return Ok(false);
        }
    }
    let (content_type, payload) = if path.contains("/messages") && streaming {
        ("text/event-stream", anthropic_sse(&reply, &chosen, &model))
    } else if path.contains("/messages") {
        ("application/json", anthropic_body(&reply, &chosen, &model))
    } else if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
        gemini_body(&reply, &chosen, path.contains("stream"))
    } else if responses_api && streaming {
        ("text/event-stream", responses_sse(&reply, &chosen, &model))
    } else if responses_api {
        (
            "application/json",
            responses_body(&reply, &chosen, &model).to_string(),
        )
    } else if streaming {
        ("text/event-stream", openai_sse(&reply, &chosen, &model))
    } else {
        ("application/json", openai_body(&reply, &chosen, &model))
    };
    let extra: String = chosen
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write_head(stream, 200, content_type, Some(payload.len()), &extra)?;
    stream.write_all(payload.as_bytes())?;
    stream.flush()?;
    bill(shared);
    Ok(true)
}

/// The model a request asks for: in its body, or (Gemini) in its path
/// (`/v1beta/models/<model>:generateContent`).
fn model_of(path: &str, body: &Value) -> String {
    body["model"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            let (_, rest) = path.split_once("/models/")?;
            Some(rest.split(':').next()?.to_owned())
        })
        .unwrap_or_default()
}

/// Waits while requests are held and no pass for `model` is left; false when zend
/// closed the connection meanwhile (the request was abandoned).
fn wait_while_held(stream: &TcpStream, shared: &Shared, model: &str) -> bool {
    let mut held = shared.held.lock().unwrap();
    loop {
        if !*held {
            return true;
        }
        {
            let mut passes = shared.passes.lock().unwrap();
            if let Some(index) = passes.iter().position(|m| m == model) {
                passes.remove(index);
                return true;
            }
        }
        if peer_closed(stream) {
            return false;
        }
        // Woken by a release; otherwise look at the connection again shortly.
        held = shared
            .released
            .wait_timeout(held, Duration::from_millis(20))
            .unwrap()
            .0;
    }
}

/// Whether the peer closed `stream` (a read would see the end, or an error).
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let peeked = stream.peek(&mut byte);
    let _ = stream.set_nonblocking(false);
    match peeked {
        Ok(n) => n == 0,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

fn write_head(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    length: Option<usize>,
    extra: &str,
) -> std::io::Result<()> {
    let length = length
        .map(|n| format!("content-length: {n}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n{length}x-request-id: mock-req-1\r\n{extra}\r\n"
    );
    stream.write_all(head.as_bytes())
}

fn sse_chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {chunk}\n\n")
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    write_head(stream, status, content_type, Some(body.len()), "")?;
    stream.write_all(body)?;
    stream.flush()
}

/// The text of the last user message, whatever the wire format.
pub fn last_user_text(body: &Value) -> String {
    if let Some(messages) = body["messages"].as_array().or(body["input"].as_array()) {
        for message in messages.iter().rev() {
            if message["role"] == "user" {
                return match &message["content"] {
                    Value::String(text) => text.clone(),
                    Value::Array(parts) => parts
                        .iter()
                        .filter_map(|p| p["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
            }
        }
    }
    if let Some(contents) = body["contents"].as_array()
        && let Some(last) = contents.last()
    {
        return last["parts"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
    }
    String::new()
}

fn openai_body(reply: &str, b: &Behaviour, model: &str) -> String {
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": openai_usage(b)
    })
    .to_string()
}

fn openai_usage(b: &Behaviour) -> Value {
    json!({"prompt_tokens": b.prompt_tokens, "completion_tokens": b.completion_tokens,
           "total_tokens": b.prompt_tokens + b.completion_tokens,
           "prompt_tokens_details": {"cached_tokens": b.cached_tokens}})
}

fn openai_sse(reply: &str, b: &Behaviour, model: &str) -> String {
    let mut out = String::new();
    let mid = reply
        .char_indices()
        .nth(reply.chars().count() / 2)
        .map(|(i, _)| i)
        .unwrap_or(0);
    for piece in [&reply[..mid], &reply[mid..]] {
        let chunk = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    let done = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    out.push_str(&format!("data: {done}\n\n"));
    let usage = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model, "choices": [],
        "usage": openai_usage(b)});
    out.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    out
}

/// One typed Responses API event, named as OpenAI names them.
fn responses_event(event: &Value) -> String {
    format!(
        "event: {}\ndata: {event}\n\n",
        event["type"].as_str().unwrap_or("")
    )
}

/// A completed Responses API object: a reasoning item, the message, the usage.
fn responses_body(reply: &str, b: &Behaviour, model: &str) -> Value {
    json!({
        "id": "resp_mock", "object": "response", "created_at": 1, "model": model,
        "status": "completed", "error": null, "incomplete_details": null,
        "output": [
            {"type": "reasoning", "id": "rs_mock", "summary": []},
            {"type": "message", "id": "msg_mock", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": reply, "annotations": []}]}
        ],
        "usage": {"input_tokens": b.prompt_tokens,
                  "input_tokens_details": {"cached_tokens": b.cached_tokens},
                  "output_tokens": b.completion_tokens,
                  "output_tokens_details": {"reasoning_tokens": b.reasoning_tokens},
                  "total_tokens": b.prompt_tokens + b.completion_tokens}
    })
}

/// The event sequence OpenAI streams for one answer (text in two deltas).
fn responses_sse(reply: &str, b: &Behaviour, model: &str) -> String {
    let done = responses_body(reply, b, model);
    let started = json!({"id": "resp_mock", "object": "response", "model": model,
        "status": "in_progress", "output": []});
    let mid = reply
        .char_indices()
        .nth(reply.chars().count() / 2)
        .map(|(i, _)| i)
        .unwrap_or(0);
    let mut events = vec![
        json!({"type": "response.created", "sequence_number": 0, "response": started}),
        json!({"type": "response.in_progress", "sequence_number": 1, "response": started}),
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": {"type": "reasoning", "id": "rs_mock", "summary": []}}),
        json!({"type": "response.output_item.added", "output_index": 1,
               "item": {"type": "message", "id": "msg_mock", "role": "assistant", "content": []}}),
    ];
    for piece in [&reply[..mid], &reply[mid..]] {
        events.push(
            json!({"type": "response.output_text.delta", "item_id": "msg_mock",
            "output_index": 1, "content_index": 0, "delta": piece}),
        );
    }
    events.push(json!({"type": "response.output_text.done", "item_id": "msg_mock", "text": reply}));
    events.push(json!({"type": "response.completed", "response": done}));
    events.iter().map(responses_event).collect()
}

fn anthropic_body(reply: &str, b: &Behaviour, model: &str) -> String {
    json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
        "usage": {"input_tokens": b.prompt_tokens - b.cached_tokens - b.cache_write_tokens,
                  "cache_read_input_tokens": b.cached_tokens,
                  "cache_creation_input_tokens": b.cache_write_tokens,
                  "output_tokens": b.completion_tokens}
    })
    .to_string()
}

/// The events Anthropic streams for one answer: the input usage in
/// `message_start`, the text in two deltas, the output usage in `message_delta`.
fn anthropic_sse(reply: &str, b: &Behaviour, model: &str) -> String {
    let (first, second) = halves(reply);
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "usage": {"input_tokens": b.prompt_tokens - b.cached_tokens - b.cache_write_tokens,
                      "cache_read_input_tokens": b.cached_tokens,
                      "cache_creation_input_tokens": b.cache_write_tokens,
                      "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": first}}),
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": second}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": b.completion_tokens}}),
        json!({"type": "message_stop"}),
    ];
    events.iter().map(responses_event).collect()
}

/// `reply` cut in two at its middle character.
fn halves(reply: &str) -> (&str, &str) {
    let mid = reply
        .char_indices()
        .nth(reply.chars().count() / 2)
        .map(|(i, _)| i)
        .unwrap_or(0);
    reply.split_at(mid)
}

/// Gemini's answer; streamed (`alt=sse`) as two chunks, each with the usage so
/// far, as Google sends it, the last with the finish reason.
fn gemini_body(reply: &str, b: &Behaviour, stream: bool) -> (&'static str, String) {
    let usage = |completion: u64| {
        json!({"promptTokenCount": b.prompt_tokens, "candidatesTokenCount": completion,
               "totalTokenCount": b.prompt_tokens + completion})
    };
    let chunk = |text: &str, finish: Option<&str>, completion: u64| {
        let mut candidate =
            json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        json!({"candidates": [candidate], "usageMetadata": usage(completion),
               "modelVersion": "mock", "responseId": "gemini-mock"})
    };
    if stream {
        let (first, second) = halves(reply);
        let first = chunk(first, None, b.completion_tokens / 2);
        let second = chunk(second, Some("STOP"), b.completion_tokens);
        (
            "text/event-stream",
            format!("data: {first}\r\n\r\ndata: {second}\r\n\r\n"),
        )
    } else {
        (
            "application/json",
            chunk(reply, Some("STOP"), b.completion_tokens).to_string(),
        )
    }
}
