//! A fake model provider on loopback: an OpenAI-compatible `/v1/chat/completions`
//! (JSON or SSE, as the request asks), plus Anthropic `/v1/messages` and Gemini
//! `:generateContent` answers. It records every request so tests can assert what
//! zend sent and how often. Plain std threads: no runtime needed in sync tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            reply: "mock answer".into(),
            echo: false,
            delay: Duration::ZERO,
            fail: None,
            prompt_tokens: 100,
            completion_tokens: 20,
        }
    }
}

pub struct MockProvider {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    /// Behaviour by model name, when a test wants models to differ.
    per_model: Arc<Mutex<Vec<(String, Behaviour)>>>,
}

impl MockProvider {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let per_model = Arc::new(Mutex::new(Vec::new()));
        let (r, b, p) = (requests.clone(), behaviour.clone(), per_model.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (r, b, p) = (r.clone(), b.clone(), p.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &r, &b, &p);
                });
            }
        });
        Self {
            url,
            requests,
            behaviour,
            per_model,
        }
    }

    /// The base URL as providers expect it for OpenAI-compatible APIs (`.../v1`).
    pub fn v1(&self) -> String {
        format!("{}/v1", self.url)
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn set_for_model(&self, model: &str, behaviour: Behaviour) {
        self.per_model
            .lock()
            .unwrap()
            .push((model.to_owned(), behaviour));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests that asked a model for an answer.
    pub fn completions(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }
}

fn serve(
    mut stream: TcpStream,
    requests: &Mutex<Vec<Recorded>>,
    behaviour: &Mutex<Behaviour>,
    per_model: &Mutex<Vec<(String, Behaviour)>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
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
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        requests.lock().unwrap().push(Recorded {
            method: method.clone(),
            path: path.clone(),
            headers,
            body: body.clone(),
            at: std::time::Instant::now(),
        });

        let model = body["model"].as_str().unwrap_or("").to_owned();
        let chosen = per_model
            .lock()
            .unwrap()
            .iter()
            .find(|(m, _)| model.ends_with(m.as_str()))
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| behaviour.lock().unwrap().clone());
        std::thread::sleep(chosen.delay);
        if let Some((status, text)) = &chosen.fail {
            write_response(&mut stream, *status, "application/json", text.as_bytes())?;
            continue;
        }
        let mut reply = chosen.reply.clone();
        if chosen.echo {
            reply.push_str(&format!("\n[echo] {}", last_user_text(&body)));
        }
        let (content_type, payload) = if path.contains("/messages") {
            ("application/json", anthropic_body(&reply, &chosen, &model))
        } else if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
            gemini_body(&reply, &chosen, path.contains("stream"))
        } else if body["stream"] == true {
            ("text/event-stream", openai_sse(&reply, &chosen, &model))
        } else {
            ("application/json", openai_body(&reply, &chosen, &model))
        };
        write_response(&mut stream, 200, content_type, payload.as_bytes())?;
    }
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-request-id: mock-req-1\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// The text of the last user message, whatever the wire format.
pub fn last_user_text(body: &Value) -> String {
    if let Some(messages) = body["messages"].as_array() {
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
        "usage": {"prompt_tokens": b.prompt_tokens, "completion_tokens": b.completion_tokens,
                  "total_tokens": b.prompt_tokens + b.completion_tokens}
    })
    .to_string()
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
        "usage": {"prompt_tokens": b.prompt_tokens, "completion_tokens": b.completion_tokens,
                  "total_tokens": b.prompt_tokens + b.completion_tokens}});
    out.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    out
}

fn anthropic_body(reply: &str, b: &Behaviour, model: &str) -> String {
    json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
        "usage": {"input_tokens": b.prompt_tokens, "output_tokens": b.completion_tokens}
    })
    .to_string()
}

fn gemini_body(reply: &str, b: &Behaviour, stream: bool) -> (&'static str, String) {
    let body = json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": reply}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": b.prompt_tokens, "candidatesTokenCount": b.completion_tokens,
                          "totalTokenCount": b.prompt_tokens + b.completion_tokens}
    });
    if stream {
        ("text/event-stream", format!("data: {body}\n\n"))
    } else {
        ("application/json", body.to_string())
    }
}
