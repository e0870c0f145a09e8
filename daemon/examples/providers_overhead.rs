//! Measures the providers layer's own overhead per call against a loopback mock with no
//! delay: `Providers::complete` (resolve, build the request, stream and parse SSE, cost)
//! versus a bare reqwest POST that reads the same body.
//!
//!     cargo run -p zend --example providers_overhead [-- CALLS]
//!
//! Numbers go to stderr. Build with `--release` for representative figures.

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};
use zend::providers::{CompletionRequest, Env, Message, ModelsConfig, Providers};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let server = MockServer::start().await;
    let mut body = String::new();
    for part in ["Hello", ", ", "world", "!"] {
        let chunk = json!({"id": "c", "choices": [{"index": 0, "delta": {"content": part}}]});
        body.push_str(&format!("data: {chunk}\n\n"));
    }
    let usage =
        json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 4}});
    body.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;

    let env = Env::from_map([
        ("OPENAI_API_KEY", "sk-bench".to_owned()),
        ("OPENAI_BASE_URL", format!("{}/v1", server.uri())),
    ]);
    let providers = Providers::new(ModelsConfig::load(None)?, &env)?;
    let request = CompletionRequest::new("gpt-4o", vec![Message::user("Say hello.")]);

    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", server.uri());
    let raw_body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello."}], "stream": true});

    // Warm up both paths (connection pool, map parsing).
    for _ in 0..50 {
        providers.complete(request.clone(), None).await?;
        client
            .post(&url)
            .json(&raw_body)
            .send()
            .await?
            .bytes()
            .await?;
    }
    let mut raw = Duration::ZERO;
    let mut layer = Duration::ZERO;
    for _ in 0..calls {
        let started = Instant::now();
        client
            .post(&url)
            .json(&raw_body)
            .send()
            .await?
            .bytes()
            .await?;
        raw += started.elapsed();
        let started = Instant::now();
        providers.complete(request.clone(), None).await?;
        layer += started.elapsed();
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(calls);
    eprintln!("calls: {calls}");
    eprintln!("bare reqwest:        {:8.1} µs/call", per(raw));
    eprintln!("Providers::complete: {:8.1} µs/call", per(layer));
    eprintln!("layer overhead:      {:8.1} µs/call", per(layer) - per(raw));
    Ok(())
}
