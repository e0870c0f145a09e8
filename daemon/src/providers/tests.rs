//! Tests of the providers layer against a loopback mock HTTP server (wiremock): the exact
//! request each adapter sends, real-shaped answers and SSE streams, retries, fallbacks,
//! cooldowns, cancellation, cost and key hygiene. No network beyond 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::config::ModelConfig;
use super::*;

/// A distinctive fake key: it must never show up in errors, Debug output or logs.
const KEY: &str = "sk-zen-FAKE-7f3a9c-DO-NOT-LEAK-0123456789";

fn test_config() -> ModelsConfig {
    let mut config = ModelsConfig::load(None).unwrap();
    config.settings.backoff_base_ms = 1;
    config.settings.backoff_max_ms = 4;
    config.settings.max_retries = 2;
    config.settings.cooldown_failures = 100;
    config
}

fn env_for(server: &MockServer, extra: &[(&str, &str)]) -> Env {
    let uri = server.uri();
    let mut vars: Vec<(String, String)> = [
        ("OPENAI_API_KEY", KEY.to_owned()),
        ("OPENAI_BASE_URL", format!("{uri}/v1")),
        ("ANTHROPIC_API_KEY", KEY.to_owned()),
        ("ANTHROPIC_BASE_URL", uri.clone()),
        ("GEMINI_API_KEY", KEY.to_owned()),
        ("GEMINI_BASE_URL", uri.clone()),
        ("AZURE_OPENAI_API_KEY", KEY.to_owned()),
        ("AZURE_OPENAI_ENDPOINT", uri.clone()),
        ("OPENROUTER_API_KEY", KEY.to_owned()),
        ("OPENROUTER_BASE_URL", format!("{uri}/api/v1")),
        ("LITELLM_BASE_URL", uri.clone()),
        ("LITELLM_API_KEY", KEY.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Env::from_map(vars)
}

fn providers(server: &MockServer, config: ModelsConfig) -> Providers {
    Providers::new(config, &env_for(server, &[])).unwrap()
}

fn sse(events: &[Value]) -> String {
    let mut out = String::new();
    for event in events {
        out.push_str(&format!("data: {event}\n\n"));
    }
    out
}

fn sse_ok(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn openai_stream(text_parts: &[&str], usage: Value) -> String {
    let mut events: Vec<Value> = text_parts
        .iter()
        .map(|t| json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]}))
        .collect();
    events.push(json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
    events.push(json!({"id": "chatcmpl-1", "choices": [], "usage": usage}));
    sse(&events) + "data: [DONE]\n\n"
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

fn request(model: &str, text: &str) -> CompletionRequest {
    let mut request = CompletionRequest::new(model, vec![Message::user(text)]);
    request.system = Some("Be brief.".to_owned());
    request
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

// ---------------------------------------------------------------------------------------
// Adapters: exact requests and real-shaped answers.

#[tokio::test]
async fn openai_streams_with_exact_request_and_usage() {
    let server = MockServer::start().await;
    let usage = json!({"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 200}, "completion_tokens_details": {"reasoning_tokens": 0}});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            sse_ok(openai_stream(&["Hel", "lo"], usage)).insert_header("x-request-id", "req_abc"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let providers = providers(&server, test_config());
    let mut req = request("gpt-4o", "Hi");
    req.temperature = Some(0.2);
    req.max_output_tokens = Some(100);
    req.stop = vec!["END".to_owned()];
    let (tx, mut rx) = mpsc::unbounded_channel();
    let completion = providers.complete(req, Some(tx)).await.unwrap();

    let sent = &requests(&server).await[0];
    assert_eq!(
        header(sent, "authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(header(sent, "content-type"), Some("application/json"));
    assert_eq!(
        sent.body_json::<Value>().unwrap(),
        json!({
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "temperature": 0.2,
            "max_completion_tokens": 100,
            "stop": ["END"],
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
    assert_eq!(completion.text, "Hello");
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert_eq!(completion.model, "gpt-4o");
    assert_eq!(completion.provider, "openai");
    assert_eq!(completion.request_id.as_deref(), Some("req_abc"));
    assert_eq!(
        completion.usage,
        Usage {
            input_tokens: 1200,
            output_tokens: 300,
            cached_tokens: 200,
            cache_write_tokens: 0,
            reasoning_tokens: 0
        }
    );
    // LiteLLM's gpt-4o prices: 2.5e-6 in, 1.25e-6 cached, 1e-5 out.
    assert_eq!(completion.cost.source, CostSource::Computed);
    assert!(close(
        completion.cost.usd.unwrap(),
        1000.0 * 2.5e-6 + 200.0 * 1.25e-6 + 300.0 * 1e-5
    ));
    assert_eq!(completion.attempts.len(), 1);

    let mut deltas = String::new();
    let mut saw_usage = false;
    while let Ok(event) = rx.try_recv() {
        match event {
            StreamEvent::Delta(d) => deltas.push_str(&d),
            StreamEvent::Usage(u) => saw_usage = u.output_tokens == 300,
            StreamEvent::Started { .. } => {}
        }
    }
    assert_eq!(deltas, "Hello");
    assert!(saw_usage);
}

#[tokio::test]
async fn openai_usage_chunk_with_empty_delta_choice_is_accepted() {
    let server = MockServer::start().await;
    let body = sse(&[
        json!({"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}}]}),
        json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 1}}),
    ]) + "data: [DONE]\n\n";
    Mock::given(method("POST"))
        .respond_with(sse_ok(body))
        .mount(&server)
        .await;
    let completion = providers(&server, test_config())
        .complete(request("gpt-4o", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "ok");
    assert_eq!(completion.finish_reason, FinishReason::Length);
    assert_eq!(completion.usage.input_tokens, 5);
}

#[tokio::test]
async fn openai_non_streaming() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-9", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Plain."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        })))
        .mount(&server)
        .await;
    let mut req = request("gpt-4o", "Hi");
    req.stream = false;
    let completion = providers(&server, test_config())
        .complete(req, None)
        .await
        .unwrap();
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert!(body.get("stream").is_none(), "{body}");
    assert_eq!(completion.text, "Plain.");
    assert_eq!(completion.request_id.as_deref(), Some("chatcmpl-9"));
    assert_eq!(completion.usage.output_tokens, 2);
}

#[tokio::test]
async fn reasoning_models_drop_temperature_and_take_effort_and_json() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse_ok(openai_stream(
            &["{}"],
            json!({"prompt_tokens": 1, "completion_tokens": 1}),
        )))
        .mount(&server)
        .await;
    let mut req = CompletionRequest::new(
        "gpt5",
        vec![Message {
            role: Role::User,
            content: vec![
                ContentPart::Text {
                    text: "What is this?".into(),
                },
                ContentPart::image_data_url("data:image/png;base64,iVBORw0KGgo=").unwrap(),
            ],
        }],
    );
    req.temperature = Some(0.7);
    req.reasoning_effort = Some(ReasoningEffort::High);
    req.json_mode = true;
    providers(&server, test_config())
        .complete(req, None)
        .await
        .unwrap();
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(
        body,
        json!({
            "model": "gpt-5",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]}],
            "reasoning_effort": "high",
            "response_format": {"type": "json_object"},
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[tokio::test]
async fn anthropic_messages_stream() {
    let server = MockServer::start().await;
    let body = [
        ("message_start", json!({"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "usage": {"input_tokens": 800, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 100, "output_tokens": 1}}})),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        ("ping", json!({"type": "ping"})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bon"}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "jour"}})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 50}})),
        ("message_stop", json!({"type": "message_stop"})),
    ]
    .iter()
    .map(|(event, data)| format!("event: {event}\ndata: {data}\n\n"))
    .collect::<String>();
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(sse_ok(body).insert_header("request-id", "req_ant_1"))
        .mount(&server)
        .await;
    let mut req = request("sonnet", "Hi");
    req.temperature = Some(0.5);
    req.max_output_tokens = Some(512);
    let completion = providers(&server, test_config())
        .complete(req, None)
        .await
        .unwrap();

    let sent = &requests(&server).await[0];
    assert_eq!(header(sent, "x-api-key"), Some(KEY));
    assert_eq!(header(sent, "anthropic-version"), Some("2023-06-01"));
    assert!(header(sent, "authorization").is_none());
    assert_eq!(
        sent.body_json::<Value>().unwrap(),
        json!({
            "model": "claude-sonnet-4-5",
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "max_tokens": 512,
            "temperature": 0.5,
            "stream": true
        })
    );
    assert_eq!(completion.text, "Bonjour");
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert_eq!(completion.request_id.as_deref(), Some("req_ant_1"));
    assert_eq!(
        completion.usage,
        Usage {
            input_tokens: 1000,
            output_tokens: 50,
            cached_tokens: 100,
            cache_write_tokens: 100,
            reasoning_tokens: 0
        }
    );
    // LiteLLM's claude-sonnet-4-5: 3e-6 in, 3e-7 cache read, 3.75e-6 cache write, 1.5e-5 out.
    let expected = 800.0 * 3e-6 + 100.0 * 3e-7 + 100.0 * 3.75e-6 + 50.0 * 1.5e-5;
    assert!(
        close(completion.cost.usd.unwrap(), expected),
        "{:?}",
        completion.cost
    );
}

#[tokio::test]
async fn anthropic_thinking_drops_temperature_and_sets_budget() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_2", "type": "message", "role": "assistant",
            "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Done."}],
            "stop_reason": "max_tokens", "usage": {"input_tokens": 10, "output_tokens": 20}
        })))
        .mount(&server)
        .await;
    let mut req = request("opus", "Think");
    req.stream = false;
    req.temperature = Some(0.3);
    req.thinking_budget = Some(2000);
    let completion = providers(&server, test_config())
        .complete(req, None)
        .await
        .unwrap();
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert!(body.get("temperature").is_none(), "{body}");
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2000})
    );
    assert!(body["max_tokens"].as_u64().unwrap() > 2000);
    assert_eq!(completion.text, "Done.");
    assert_eq!(completion.finish_reason, FinishReason::Length);
}

#[tokio::test]
async fn gemini_stream_generate_content() {
    let server = MockServer::start().await;
    let body = sse(&[
        json!({"candidates": [{"content": {"parts": [{"text": "thinking…", "thought": true}, {"text": "Hi "}], "role": "model"}, "index": 0}], "responseId": "resp-g1", "modelVersion": "gemini-2.5-flash"}),
        json!({"candidates": [{"content": {"parts": [{"text": "there"}], "role": "model"}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 40, "thoughtsTokenCount": 60, "totalTokenCount": 1100}, "responseId": "resp-g1"}),
    ]);
    Mock::given(method("POST"))
        .and(path(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        ))
        .respond_with(sse_ok(body))
        .mount(&server)
        .await;
    let mut req = request("flash", "Hello");
    req.temperature = Some(0.4);
    req.max_output_tokens = Some(256);
    req.json_mode = true;
    req.thinking_budget = Some(128);
    let completion = providers(&server, test_config())
        .complete(req, None)
        .await
        .unwrap();

    let sent = &requests(&server).await[0];
    assert_eq!(sent.url.query(), Some("alt=sse"));
    assert_eq!(header(sent, "x-goog-api-key"), Some(KEY));
    assert_eq!(
        sent.body_json::<Value>().unwrap(),
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {
                "temperature": 0.4, "maxOutputTokens": 256,
                "responseMimeType": "application/json", "thinkingConfig": {"thinkingBudget": 128}
            }
        })
    );
    assert_eq!(completion.text, "Hi there");
    assert_eq!(completion.request_id.as_deref(), Some("resp-g1"));
    assert_eq!(completion.usage.output_tokens, 100);
    assert_eq!(completion.usage.reasoning_tokens, 60);
    // LiteLLM's gemini/gemini-2.5-flash output price covers thoughts too.
    let prices = litellm::lookup("gemini/gemini-2.5-flash")
        .unwrap()
        .prices
        .clone()
        .unwrap();
    assert!(close(
        completion.cost.usd.unwrap(),
        1000.0 * prices.input + 100.0 * prices.output
    ));
}

#[tokio::test]
async fn azure_uses_deployment_url_and_api_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/my-gpt4o/chat/completions"))
        .respond_with(sse_ok(openai_stream(
            &["az"],
            json!({"prompt_tokens": 3, "completion_tokens": 1}),
        )))
        .mount(&server)
        .await;
    let env = env_for(
        &server,
        &[("AZURE_OPENAI_API_VERSION", "2025-01-01-preview")],
    );
    let providers = Providers::new(test_config(), &env).unwrap();
    let completion = providers
        .complete(request("azure/my-gpt4o", "Hi"), None)
        .await
        .unwrap();
    let sent = &requests(&server).await[0];
    assert_eq!(sent.url.query(), Some("api-version=2025-01-01-preview"));
    assert_eq!(header(sent, "api-key"), Some(KEY));
    assert!(header(sent, "authorization").is_none());
    assert_eq!(sent.body_json::<Value>().unwrap()["model"], "my-gpt4o");
    assert_eq!(completion.text, "az");
    assert_eq!(completion.provider, "azure");
}

#[tokio::test]
async fn openrouter_headers_slashes_and_upstream_cost() {
    let server = MockServer::start().await;
    let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "cost": 0.00042});
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(sse_ok(openai_stream(&["or"], usage)))
        .mount(&server)
        .await;
    let providers = providers(&server, test_config());
    let completion = providers
        .complete(
            request("openrouter/anthropic/claude-sonnet-4.5", "Hi"),
            None,
        )
        .await
        .unwrap();
    let sent = &requests(&server).await[0];
    assert_eq!(
        header(sent, "authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        header(sent, "http-referer"),
        Some("https://github.com/zen-mcp/zen")
    );
    assert_eq!(header(sent, "x-title"), Some("zen"));
    let body: Value = sent.body_json().unwrap();
    assert_eq!(body["model"], "anthropic/claude-sonnet-4.5");
    assert_eq!(body["usage"], json!({"include": true}));
    assert_eq!(body["max_tokens"], Value::Null);
    assert_eq!(
        completion.cost,
        Cost {
            usd: Some(0.00042),
            source: CostSource::Upstream
        }
    );
}

#[tokio::test]
async fn litellm_proxy_cost_header_wins() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(
            sse_ok(openai_stream(
                &["proxy"],
                json!({"prompt_tokens": 10, "completion_tokens": 5}),
            ))
            .insert_header("x-litellm-response-cost", "0.0123")
            .insert_header("x-litellm-call-id", "call-1"),
        )
        .mount(&server)
        .await;
    let completion = providers(&server, test_config())
        .complete(request("litellm/zen-mock", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(
        completion.cost,
        Cost {
            usd: Some(0.0123),
            source: CostSource::Upstream
        }
    );
    assert_eq!(completion.request_id.as_deref(), Some("call-1"));
    assert_eq!(completion.upstream_model, "zen-mock");
}

// ---------------------------------------------------------------------------------------
// Failures: retries, typed errors, fallbacks, cooldowns, timeouts, cancellation.

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(
                    json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(sse_ok(openai_stream(
            &["ok"],
            json!({"prompt_tokens": 1, "completion_tokens": 1}),
        )))
        .mount(&server)
        .await;
    let started = Instant::now();
    let completion = providers(&server, test_config())
        .complete(request("gpt-4o", "Hi"), None)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was not honoured"
    );
    assert_eq!(completion.text, "ok");
    assert_eq!(completion.attempts.len(), 2);
    assert!(
        matches!(&completion.attempts[0].outcome, AttemptOutcome::Failed { kind, .. } if kind == "rate_limited")
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream overloaded"))
        .expect(3)
        .mount(&server)
        .await;
    let failure = providers(&server, test_config())
        .complete_detailed(request("gpt-4o", "Hi"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(failure.error, ProviderError::Server { status: 503, .. }),
        "{}",
        failure.error
    );
    assert_eq!(failure.attempts.len(), 3);
    assert!(failure.error.to_string().contains("upstream overloaded"));
}

#[tokio::test]
async fn bad_requests_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"message": "Unsupported parameter: 'foo'", "type": "invalid_request_error"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = providers(&server, test_config())
        .complete(request("gpt-4o", "Hi"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::BadRequest { status: 400, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn mid_stream_overload_is_retried() {
    let server = MockServer::start().await;
    let overloaded = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":5,\"output_tokens\":0}}}\n\n\
        event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    Mock::given(method("POST"))
        .respond_with(sse_ok(overloaded.to_owned()))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let ok = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"fine\"}}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    Mock::given(method("POST"))
        .respond_with(sse_ok(ok.to_owned()))
        .mount(&server)
        .await;
    let completion = providers(&server, test_config())
        .complete(request("haiku", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "fine");
    assert_eq!(completion.attempts.len(), 2);
    // The failed attempt had reported usage: the ledger sees it.
    assert_eq!(
        completion.attempts[0].usage.map(|u| u.input_tokens),
        Some(5)
    );
    // The successful stream's own usage (no message_start: no input tokens) is what it costs.
    assert_eq!(completion.usage.output_tokens, 1);
    assert_eq!(completion.cost.source, CostSource::Computed);
}

#[tokio::test]
async fn a_stream_cut_off_before_it_finished_is_retried_not_taken_as_the_answer() {
    let server = MockServer::start().await;
    // Text and usage, then the body just ends: no finish reason, no [DONE].
    let cut = sse(&[
        json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "half an"}, "finish_reason": null}]}),
        json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}),
    ]);
    Mock::given(method("POST"))
        .respond_with(sse_ok(cut))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(sse_ok(openai_stream(
            &["whole answer"],
            json!({"prompt_tokens": 7, "completion_tokens": 3}),
        )))
        .mount(&server)
        .await;
    let completion = providers(&server, test_config())
        .complete(request("gpt-4o", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "whole answer");
    assert_eq!(completion.attempts.len(), 2);
    assert!(
        matches!(&completion.attempts[0].outcome, AttemptOutcome::Failed { kind, message }
            if kind == "connection" && message.contains("ended before the model finished")),
        "{:?}",
        completion.attempts[0].outcome
    );
    // What the cut-off attempt reported having used is kept for the ledger.
    assert_eq!(
        completion.attempts[0].usage.map(|u| u.output_tokens),
        Some(2)
    );
}

fn model(provider: &str, upstream: &str) -> ModelConfig {
    ModelConfig {
        provider: provider.to_owned(),
        model: Some(upstream.to_owned()),
        ..ModelConfig::default()
    }
}

#[tokio::test]
async fn fallback_chain_after_retries() {
    let server = MockServer::start().await;
    for (upstream, status) in [("m-primary", 500), ("m-second", 429)] {
        Mock::given(method("POST"))
            .and(wiremock::matchers::body_partial_json(
                json!({"model": upstream}),
            ))
            .respond_with(ResponseTemplate::new(status).set_body_string("nope"))
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(
            json!({"model": "m-third"}),
        ))
        .respond_with(sse_ok(openai_stream(
            &["third"],
            json!({"prompt_tokens": 1, "completion_tokens": 1}),
        )))
        .mount(&server)
        .await;
    let mut config = test_config();
    config.settings.max_retries = 1;
    let mut primary = model("openai", "m-primary");
    primary.fallbacks = vec!["second".into(), "third".into()];
    config.models.insert("primary".into(), primary);
    config
        .models
        .insert("second".into(), model("openai", "m-second"));
    config
        .models
        .insert("third".into(), model("openai", "m-third"));
    let completion = providers(&server, config)
        .complete(request("primary", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.model, "third");
    let tried: Vec<&str> = completion
        .attempts
        .iter()
        .map(|a| a.model.as_str())
        .collect();
    assert_eq!(tried, ["primary", "primary", "second", "second", "third"]);
    // A model in neither config prices nor LiteLLM's map: cost unknown, never 0.
    assert_eq!(completion.cost.usd, None);
}

#[tokio::test]
async fn fallbacks_stop_after_five_hops() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("down"))
        .mount(&server)
        .await;
    let mut config = test_config();
    config.settings.max_retries = 0;
    for i in 0..8 {
        let mut m = model("openai", &format!("m{i}"));
        m.fallbacks = vec![format!("n{}", i + 1)];
        config.models.insert(format!("n{i}"), m);
    }
    let failure = providers(&server, config)
        .complete_detailed(request("n0", "Hi"), None)
        .await
        .unwrap_err();
    assert_eq!(failure.attempts.len(), 5);
    assert!(failure.error.is_retryable());
}

#[tokio::test]
async fn context_window_fallback_is_checked_before_the_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse_ok(openai_stream(
            &["big"],
            json!({"prompt_tokens": 1, "completion_tokens": 1}),
        )))
        .mount(&server)
        .await;
    let mut config = test_config();
    let mut small = model("openai", "m-small");
    small.context_window = Some(100);
    small.context_window_fallbacks = vec!["big".into()];
    config.models.insert("small".into(), small);
    let mut big = model("openai", "m-big");
    big.context_window = Some(1_000_000);
    config.models.insert("big".into(), big);
    let providers = providers(&server, config);
    let completion = providers
        .complete(request("small", &"word ".repeat(200)), None)
        .await
        .unwrap();
    assert_eq!(completion.model, "big");
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1, "the small model must not be called");
    assert_eq!(sent[0].body_json::<Value>().unwrap()["model"], "m-big");

    // Without a context-window fallback the error says what to do.
    let err = providers
        .complete(request("big", &"word ".repeat(1_000_000)), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::ContextWindowExceeded { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("larger context window"));
}

#[tokio::test]
async fn upstream_context_window_error_uses_context_window_fallbacks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(json!({"model": "m-a"})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "This model's maximum context length is 8192 tokens.", "type": "invalid_request_error",
            "code": "context_length_exceeded"}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(
            json!({"model": "m-b"}),
        ))
        .respond_with(sse_ok(openai_stream(
            &["b"],
            json!({"prompt_tokens": 1, "completion_tokens": 1}),
        )))
        .mount(&server)
        .await;
    let mut config = test_config();
    let mut a = model("openai", "m-a");
    a.context_window_fallbacks = vec!["b".into()];
    config.models.insert("a".into(), a);
    config.models.insert("b".into(), model("openai", "m-b"));
    let completion = providers(&server, config)
        .complete(request("a", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.model, "b");
}

#[tokio::test]
async fn failing_model_is_cooled_down() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("down"))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = test_config();
    config.settings.max_retries = 0;
    config.settings.cooldown_failures = 1;
    config.settings.cooldown_secs = 60;
    let providers = providers(&server, config);
    let first = providers
        .complete(request("gpt-4o", "Hi"), None)
        .await
        .unwrap_err();
    assert!(matches!(first, ProviderError::Server { .. }));
    let second = providers
        .complete(request("gpt-4o", "Hi"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(second, ProviderError::CoolingDown { .. }),
        "{second}"
    );
}

#[tokio::test]
async fn whole_call_timeout_per_model() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse_ok(openai_stream(&["late"], json!({}))).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let mut config = test_config();
    config.settings.max_retries = 0;
    let mut slow = model("openai", "m-slow");
    slow.timeout_secs = Some(1);
    config.models.insert("slow".into(), slow);
    let err = providers(&server, config)
        .complete(request("slow", "Hi"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn connection_refused_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = test_config();
    config.settings.max_retries = 1;
    let env = Env::from_map([
        ("OPENAI_API_KEY", KEY.to_owned()),
        ("OPENAI_BASE_URL", format!("http://{addr}/v1")),
    ]);
    let failure = Providers::new(config, &env)
        .unwrap()
        .complete_detailed(request("gpt-4o", "Hi"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(failure.error, ProviderError::Connection { .. }),
        "{}",
        failure.error
    );
    assert_eq!(failure.attempts.len(), 2);
}

/// Dropping the `complete` future closes the upstream connection.
#[tokio::test]
async fn cancellation_aborts_the_upstream_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0);
        // Start a stream that never finishes.
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let _ = seen_tx.send(());
        // Read until the client goes away.
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = closed_tx.send(());
    });
    let env = Env::from_map([
        ("OPENAI_API_KEY", KEY.to_owned()),
        ("OPENAI_BASE_URL", format!("http://{addr}/v1")),
    ]);
    let providers = Arc::new(Providers::new(test_config(), &env).unwrap());
    let call = tokio::spawn({
        let providers = providers.clone();
        async move { providers.complete(request("gpt-4o", "Hi"), None).await }
    });
    seen_rx.await.unwrap();
    call.abort();
    tokio::time::timeout(Duration::from_secs(5), closed_rx)
        .await
        .expect("the upstream connection was not closed after the call was dropped")
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Keys never leak.

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_key_never_appears_in_errors_debug_or_logs() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    let echo = format!(
        r#"{{"error": {{"message": "Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com", "type": "invalid_request_error", "code": "invalid_api_key"}}}}"#
    );
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(401).set_body_string(echo))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(500).set_body_string(format!("internal: key={KEY}")))
        .mount(&server)
        .await;
    let mut config = test_config();
    config.settings.max_retries = 1;
    let providers = providers(&server, config);
    let mut texts = Vec::new();
    for name in ["gpt-4o", "sonnet"] {
        let failure = providers
            .complete_detailed(request(name, "Hi"), None)
            .await
            .unwrap_err();
        texts.push(format!(
            "{} {:?} {:?}",
            failure.error, failure.error, failure.attempts
        ));
    }
    let auth = providers
        .complete(request("gpt-4o", "Hi"), None)
        .await
        .unwrap_err();
    assert!(matches!(auth, ProviderError::Auth { .. }));
    assert!(auth.to_string().contains("OPENAI_API_KEY"), "{auth}");
    texts.push(format!("{:?}", providers.resolve("gpt-4o").unwrap()));
    texts.push(format!("{:?}", env_for(&server, &[])));
    texts.push(serde_json::to_string(&providers.listing()).unwrap());
    texts.push(providers.listing().render_text());
    texts.push(String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned());
    for text in texts {
        assert!(!text.contains(KEY), "key leaked: {text}");
        assert!(
            !text.contains("DO-NOT-LEAK"),
            "part of the key leaked: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Resolution, availability, auto mode, listing.

fn offline(vars: &[(&str, &str)]) -> Providers {
    Providers::new(test_config(), &Env::from_map(vars.iter().copied())).unwrap()
}

#[test]
fn a_name_resolves_the_same_from_the_cache() {
    let p = offline(&[("OPENAI_API_KEY", KEY)]);
    let first = p.resolve("gpt-5").unwrap();
    assert_eq!(p.resolve("gpt-5").unwrap(), first);
    assert_eq!(p.resolve(" gpt-5 ").unwrap(), first);
    // Failures are not remembered as successes, and the cache stays bounded.
    assert!(p.resolve("anthropic/claude-x").is_err());
    for i in 0..(2 * runtime::RESOLVED_CACHE_MAX) {
        assert!(p.resolve(&format!("openai/model-{i}")).is_ok());
    }
    assert!(p.resolved.lock().unwrap().len() <= runtime::RESOLVED_CACHE_MAX);
    assert!(p.resolve("anthropic/claude-x").is_err());
    assert_eq!(p.resolve("gpt-5").unwrap(), first);
}

#[test]
fn parsed_urls_are_remembered_and_bounded() {
    let p = offline(&[]);
    let url = p
        .parsed_url("http://127.0.0.1:9/v1/chat/completions")
        .unwrap();
    assert_eq!(url.as_str(), "http://127.0.0.1:9/v1/chat/completions");
    assert_eq!(
        p.parsed_url("http://127.0.0.1:9/v1/chat/completions"),
        Some(url)
    );
    assert_eq!(p.parsed_url("not a url"), None);
    for i in 0..(2 * runtime::RESOLVED_CACHE_MAX) {
        p.parsed_url(&format!("http://127.0.0.1:9/{i}")).unwrap();
    }
    assert!(p.urls.lock().unwrap().len() <= runtime::RESOLVED_CACHE_MAX);
}

#[test]
fn names_resolve_like_litellm() {
    let p = offline(&[
        ("OPENAI_API_KEY", KEY),
        ("ANTHROPIC_API_KEY", KEY),
        ("GEMINI_API_KEY", KEY),
        ("GROQ_API_KEY", KEY),
        ("XAI_API_KEY", KEY),
        ("OPENROUTER_API_KEY", KEY),
    ]);
    let cases = [
        ("flash", "gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
        ("PRO", "gemini-2.5-pro", "gemini", "gemini-2.5-pro"),
        (
            "sonnet",
            "claude-sonnet-4-5",
            "anthropic",
            "claude-sonnet-4-5",
        ),
        ("o3", "o3", "openai", "o3"),
        ("gpt-4.1-mini", "gpt-4.1-mini", "openai", "gpt-4.1-mini"),
        (
            "o4-mini-2025-04-16",
            "o4-mini-2025-04-16",
            "openai",
            "o4-mini-2025-04-16",
        ),
        (
            "claude-opus-4-7",
            "claude-opus-4-7",
            "anthropic",
            "claude-opus-4-7",
        ),
        (
            "gemini-3-flash-preview",
            "gemini-3-flash-preview",
            "gemini",
            "gemini-3-flash-preview",
        ),
        ("grok-4.3", "grok-4.3", "xai", "grok-4.3"),
        ("openai/gpt-4o", "gpt-4o", "openai", "gpt-4o"),
        (
            "groq/openai/gpt-oss-120b",
            "gpt-oss-120b",
            "groq",
            "openai/gpt-oss-120b",
        ),
        (
            "openrouter/anthropic/claude-sonnet-4.5",
            "openrouter/anthropic/claude-sonnet-4.5",
            "openrouter",
            "anthropic/claude-sonnet-4.5",
        ),
    ];
    for (input, name, provider, upstream) in cases {
        let m = p.resolve(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(
            (
                m.name.as_str(),
                m.provider.as_str(),
                m.upstream_model.as_str()
            ),
            (name, provider, upstream),
            "{input}"
        );
    }
    // Numbers come from LiteLLM's map.
    let pro = p.resolve("pro").unwrap();
    assert_eq!(pro.info.context_window, Some(1_048_576));
    assert!(pro.info.capabilities.reasoning && pro.info.capabilities.vision);
    assert_eq!(pro.info.category, Category::Reasoning);
    let groq = p.resolve("groq/openai/gpt-oss-120b").unwrap();
    assert_eq!(groq.info.prices.as_ref().map(|p| p.input), Some(1.5e-7));
    // OpenAI reasoning models take no temperature.
    assert_eq!(
        p.resolve("o3").unwrap().info.capabilities.temperature,
        TemperatureRule::Fixed
    );
    assert_eq!(
        p.resolve("gpt-4o").unwrap().info.capabilities.temperature,
        TemperatureRule::Supported
    );
}

#[test]
fn unknown_and_unconfigured_models_say_what_to_do() {
    let p = offline(&[("GEMINI_API_KEY", KEY)]);
    let err = p.resolve("no-such-model").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ProviderError::UnknownModel { .. }));
    assert!(
        text.contains("gemini-2.5-flash") && !text.contains("gpt-5"),
        "{text}"
    );
    let err = p.resolve("sonnet").unwrap_err();
    assert!(matches!(err, ProviderError::NotConfigured { .. }), "{err}");
    assert!(err.to_string().contains("ANTHROPIC_API_KEY"), "{err}");
    let err = p.resolve("ollama/llama3.2").unwrap_err();
    assert!(err.to_string().contains("OLLAMA_HOST"), "{err}");
}

#[test]
fn a_model_whose_api_key_names_an_unset_variable_is_not_configured() {
    let mut config = test_config();
    let mut own_key = model("openai", "gpt-own");
    own_key.api_key = Some("${OWN_KEY_UNSET}".to_owned());
    config.models.insert("own-key".to_owned(), own_key);
    let p = Providers::new(config, &Env::from_map([("OPENAI_API_KEY", KEY)])).unwrap();
    let err = p.resolve("own-key").unwrap_err();
    assert!(matches!(err, ProviderError::NotConfigured { .. }), "{err}");
    assert!(err.to_string().contains("OWN_KEY_UNSET"), "{err}");
    // Not called with the provider's key instead, nor without one.
    assert!(p.resolve("gpt-5").is_ok());
}

#[test]
fn allowed_models_default_model_and_auto() {
    let p = offline(&[
        ("OPENAI_API_KEY", KEY),
        ("GEMINI_API_KEY", KEY),
        ("OPENAI_ALLOWED_MODELS", "o3, gpt-5-mini"),
        ("GOOGLE_ALLOWED_MODELS", "flash"),
        ("DEFAULT_MODEL", "flash"),
    ]);
    assert_eq!(p.default_model(), "flash");
    let names: Vec<String> = p.available().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["gemini-2.5-flash", "o3", "gpt-5-mini"]);
    let err = p.resolve("gpt-5").unwrap_err();
    assert!(matches!(err, ProviderError::NotAllowed { .. }), "{err}");
    assert!(err.to_string().contains("OPENAI_ALLOWED_MODELS"));
    assert_eq!(p.pick_auto(Category::Reasoning).unwrap().name, "o3");
    assert_eq!(
        p.pick_auto(Category::Fast).unwrap().name,
        "gemini-2.5-flash"
    );
    assert_eq!(p.resolve("auto").unwrap().name, "gpt-5-mini");

    let none = offline(&[]);
    assert_eq!(none.default_model(), "auto");
    assert!(none.pick_auto(Category::Balanced).is_none());
}

#[test]
fn a_model_only_an_allow_list_names_is_available_with_what_the_map_knows() {
    let p = offline(&[
        ("OPENAI_API_KEY", KEY),
        (
            "OPENAI_ALLOWED_MODELS",
            "gpt-4o-mini,openai/gpt-4.1-nano,o3",
        ),
    ]);
    let available = p.available();
    let names: Vec<&str> = available.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["o3", "gpt-4o-mini", "openai/gpt-4.1-nano"]);
    let mini = &available[1];
    assert!(mini.info.context_window.is_some() && mini.info.prices.is_some());
    assert!(p.pick_auto(Category::Balanced).is_some());
}

#[test]
fn local_and_custom_endpoints() {
    let p = offline(&[
        ("OLLAMA_HOST", "localhost:11434"),
        ("CUSTOM_API_URL", "http://127.0.0.1:8080/v1/"),
        ("CUSTOM_MODEL_NAME", "llama3.2"),
    ]);
    let ollama = p.resolve("ollama/qwen3:8b").unwrap();
    assert_eq!(ollama.endpoint.base_url, "http://localhost:11434/v1");
    assert_eq!(ollama.endpoint.key, None);
    let custom = p.resolve("llama3.2").unwrap();
    assert_eq!(
        (custom.provider.as_str(), custom.upstream_model.as_str()),
        ("custom", "llama3.2")
    );
    assert_eq!(custom.endpoint.base_url, "http://127.0.0.1:8080/v1");
    assert!(p.available().iter().any(|m| m.name == "custom/llama3.2"));
}

#[test]
fn user_config_overrides_litellm_numbers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("models.yaml"),
        "models:\n  gpt-4o:\n    context_window: 64000\n    prices: { input: 1.0, output: 2.0 }\n    aliases: [four]\n  mystery:\n    provider: openai\n    model: mystery-1\n",
    )
    .unwrap();
    let p = Providers::load(Some(dir.path()), &Env::from_map([("OPENAI_API_KEY", KEY)])).unwrap();
    let m = p.resolve("four").unwrap();
    assert_eq!(m.info.context_window, Some(64_000));
    assert_eq!(
        m.info.max_output,
        Some(16_384),
        "unset numbers still come from LiteLLM"
    );
    let prices = m.info.prices.clone().unwrap();
    assert!(close(prices.input, 1e-6) && close(prices.output, 2e-6));
    assert_eq!(prices.cache_read, Some(1.25e-6));
    assert_eq!(p.resolve("mystery").unwrap().info.prices, None);
}

#[test]
fn listing_shows_models_prices_and_unconfigured_providers() {
    let p = offline(&[("GEMINI_API_KEY", KEY)]);
    let listing = p.listing();
    let flash = listing
        .models
        .iter()
        .find(|m| m.name == "gemini-2.5-flash")
        .unwrap();
    assert_eq!(flash.aliases, ["flash", "gemini-flash"]);
    assert!(flash.input_per_million.is_some());
    let openai = listing
        .providers
        .iter()
        .find(|s| s.name == "openai")
        .unwrap();
    assert!(!openai.configured);
    let text = listing.render_text();
    assert!(text.contains("## gemini"), "{text}");
    assert!(
        text.contains("gemini-2.5-flash (aliases: flash, gemini-flash)"),
        "{text}"
    );
    assert!(text.contains("per 1M tokens"), "{text}");
    assert!(
        text.contains("- openai: no API key: set OPENAI_API_KEY"),
        "{text}"
    );
    let json = serde_json::to_value(&listing).unwrap();
    assert!(json["models"].as_array().unwrap().len() >= 3);
}

#[test]
fn token_estimate_is_chars_over_four() {
    assert_eq!(estimate_tokens(""), 0);
    assert_eq!(estimate_tokens("abcd"), 1);
    assert_eq!(estimate_tokens("abcde"), 2);
    let mut req = request("x", &"a".repeat(400));
    req.system = Some("b".repeat(40));
    assert_eq!(estimate_request_tokens(&req), 110);
}

// ---------------------------------------------------------------------------------------
// Opt-in: a real LiteLLM proxy (shared/litellm-proxy/start.sh; its config.yaml defines
// zen-mock, zen-mock-500-with-fallback, zen-mock-ratelimit, zen-mock-context-window).

#[tokio::test]
async fn real_litellm_proxy_when_configured() {
    let Ok(url) = std::env::var("ZEN_LITELLM_PROXY_URL") else {
        eprintln!(
            "skipping real_litellm_proxy_when_configured: set ZEN_LITELLM_PROXY_URL (see shared/litellm-proxy/start.sh)"
        );
        return;
    };
    let key = std::env::var("LITELLM_MASTER_KEY").unwrap_or_else(|_| "sk-zen-local-test".into());
    let env = Env::from_map([("LITELLM_BASE_URL", url), ("LITELLM_API_KEY", key)]);
    let mut config = test_config();
    config.settings.max_retries = 0;
    let p = Providers::new(config.clone(), &env).unwrap();
    let mut failing = model("litellm", "zen-mock-500");
    failing.fallbacks = vec!["litellm/zen-mock".into()];
    config.models.insert("proxy-500".into(), failing);
    let with_fallback = Providers::new(config, &env).unwrap();

    for stream in [true, false] {
        let mut req = request("litellm/zen-mock", "Hi");
        req.stream = stream;
        let c = p.complete(req, None).await.unwrap();
        assert_eq!(c.text, "Hello from the LiteLLM mock upstream.");
        assert_eq!(
            c.cost.source,
            CostSource::Upstream,
            "stream={stream}: {:?}",
            c.cost
        );
        assert!(c.cost.usd.unwrap() > 0.0);
    }
    // model_info prices from the proxy's config (1e-6 in, 2e-6 out) reach us through its header.
    let c = p
        .complete(request("litellm/zen-mock-custom", "Hi"), None)
        .await
        .unwrap();
    let expected = c.usage.input_tokens as f64 * 1e-6 + c.usage.output_tokens as f64 * 2e-6;
    assert!(
        (c.cost.usd.unwrap() - expected).abs() < 1e-9,
        "{:?} vs {expected}",
        c.cost
    );
    // The proxy's own router falls back from the failing deployment to zen-mock.
    let c = p
        .complete(request("litellm/zen-mock-500-with-fallback", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(c.text, "Hello from the LiteLLM mock upstream.");
    // zend's own fallback after the proxy's 500.
    let c = with_fallback
        .complete(request("proxy-500", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(c.model, "litellm/zen-mock");
    assert_eq!(c.attempts.len(), 2);
    let err = p
        .complete(request("litellm/zen-mock-ratelimit", "Hi"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::RateLimited { .. }), "{err}");
    let err = p
        .complete(request("litellm/zen-mock-context-window", "Hi"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::ContextWindowExceeded { .. }),
        "{err}"
    );
    let err = p
        .complete(request("litellm/zen-mock-500", "Hi"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Server { .. }), "{err}");
}

#[test]
fn usage_paths_read_like_json_pointers() {
    use super::adapter::{at, uint};
    let usage = serde_json::json!({
        "prompt_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 3},
        "list": [1],
        "text": "x"
    });
    for path in [
        "/prompt_tokens",
        "/prompt_tokens_details/cached_tokens",
        "/prompt_tokens_details/missing",
        "/missing/deeper",
        "/text/inner",
    ] {
        assert_eq!(at(&usage, path), usage.pointer(path), "{path}");
    }
    assert_eq!(uint(&usage, "/prompt_tokens"), 12);
    assert_eq!(uint(&usage, "/prompt_tokens_details/cached_tokens"), 3);
    assert_eq!(uint(&usage, "/text"), 0);
    assert_eq!(at(&usage, "no-slash"), None);
}

/// The OpenAI body is encoded straight from the request: the same JSON, in the same key order,
/// as the `Value` it used to be built as; with `extra_body` configured it is merged as before.
#[test]
fn openai_body_is_the_wire_json_in_order() {
    use super::adapter::{Adapter, Body, Params};
    let p = offline(&[("OPENAI_API_KEY", KEY)]);
    let model = p.resolve("gpt-5").unwrap();
    let mut request = CompletionRequest::new(
        "gpt-5",
        vec![
            Message::user("first \"quoted\"\nline"),
            Message::assistant("answer"),
            Message {
                role: Role::User,
                content: vec![
                    ContentPart::Text { text: "see".into() },
                    ContentPart::image_data_url("data:image/png;base64,AAAA").unwrap(),
                ],
            },
            Message {
                role: Role::User,
                content: vec![
                    ContentPart::Text { text: "a".into() },
                    ContentPart::Text { text: "b".into() },
                ],
            },
        ],
    );
    request.system = Some("Be brief.".into());
    request.temperature = Some(0.25);
    request.max_output_tokens = Some(321);
    request.json_mode = true;
    request.stop = vec!["END".into()];
    let params = Params::new(&request, &model);
    let sent = super::openai::OpenAi.request(&model, &params, true);
    let Body::Encoded(bytes) = sent.body else {
        panic!("no extra_body: the body is encoded directly");
    };
    let text = String::from_utf8(bytes).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    let mut expected = json!({
        "model": model.upstream_model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first \"quoted\"\nline"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]},
            {"role": "user", "content": "ab"}
        ]
    });
    let map = expected.as_object_mut().unwrap();
    if let Some(t) = params.temperature {
        map.insert("temperature".into(), json!(t));
    }
    map.insert(
        model.endpoint.max_tokens_field.clone(),
        json!(params.max_output_tokens.unwrap()),
    );
    if let Some(effort) = params.reasoning_effort {
        map.insert("reasoning_effort".into(), json!(effort.as_str()));
    }
    map.insert("response_format".into(), json!({"type": "json_object"}));
    map.insert("stop".into(), json!(["END"]));
    map.insert("stream".into(), json!(true));
    map.insert("stream_options".into(), json!({"include_usage": true}));
    assert_eq!(value, expected);
    // Key order too (the wire keeps the order it always had).
    assert_eq!(text, expected.to_string());

    // With extra fields configured, they are merged and never override.
    let mut model = (*model).clone();
    model.endpoint.extra_body = Some(json!({"model": "other", "user": "zen"}));
    let params = Params::new(&request, &model);
    let sent = super::openai::OpenAi.request(&model, &params, false);
    let Body::Json(value) = sent.body else {
        panic!("extra_body needs the value");
    };
    assert_eq!(value["model"], json!(model.upstream_model));
    assert_eq!(value["user"], "zen");
    assert!(value.get("stream").is_none());
}

// ---------------------------------------------------------------------------------------
// OpenAI's Responses API: which models go there, the exact request, typed events, failures.

fn responses_usage() -> Value {
    json!({"input_tokens": 2000, "input_tokens_details": {"cached_tokens": 0},
           "output_tokens": 1000, "output_tokens_details": {"reasoning_tokens": 800},
           "total_tokens": 3000})
}

/// The events OpenAI streams for one answer, as `event:` + `data:` pairs.
fn responses_stream(text_parts: &[&str], usage: Value) -> String {
    let mut events = vec![
        json!({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}),
        json!({"type": "response.output_item.added", "item": {"type": "reasoning", "summary": []}}),
    ];
    for part in text_parts {
        events.push(json!({"type": "response.output_text.delta", "delta": part}));
    }
    events.push(
        json!({"type": "response.completed", "response": {"id": "resp_1",
        "status": "completed", "usage": usage}}),
    );
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

async fn mount_responses(server: &MockServer, body: String) {
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(sse_ok(body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn responses_only_models_stream_from_the_responses_api() {
    let server = MockServer::start().await;
    mount_responses(
        &server,
        responses_stream(&["Deep ", "answer"], responses_usage()),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(404))
        .expect(0)
        .mount(&server)
        .await;
    let providers = providers(&server, test_config());
    let mut req = request("openai/gpt-5-pro", "Hi");
    req.messages.push(Message::assistant("Earlier answer"));
    req.messages.push(Message::user("And now?"));
    req.temperature = Some(0.3);
    req.max_output_tokens = Some(5000);
    req.reasoning_effort = Some(ReasoningEffort::Medium);
    req.stop = vec!["END".to_owned()];
    let (tx, mut rx) = mpsc::unbounded_channel();
    let completion = providers.complete(req, Some(tx)).await.unwrap();

    let sent = &requests(&server).await[0];
    assert_eq!(sent.url.path(), "/v1/responses");
    assert_eq!(
        header(sent, "authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    // gpt-5-pro takes only high effort; temperature and stop sequences are dropped.
    assert_eq!(
        sent.body_json::<Value>().unwrap(),
        json!({
            "model": "gpt-5-pro",
            "instructions": "Be brief.",
            "input": [{"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Earlier answer"},
                      {"role": "user", "content": "And now?"}],
            "max_output_tokens": 5000,
            "reasoning": {"effort": "high"},
            "store": false,
            "stream": true
        })
    );
    assert_eq!(completion.text, "Deep answer");
    assert_eq!(completion.model, "gpt-5-pro");
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert_eq!(completion.request_id.as_deref(), Some("resp_1"));
    assert_eq!(completion.usage.reasoning_tokens, 800);
    assert_eq!(completion.usage.output_tokens, 1000);
    // LiteLLM's prices for gpt-5-pro: $15 in, $120 out per million.
    assert!(
        close(
            completion.cost.usd.unwrap(),
            2000.0 * 15e-6 + 1000.0 * 120e-6
        ),
        "{:?}",
        completion.cost
    );
    let mut deltas = String::new();
    while let Ok(event) = rx.try_recv() {
        if let StreamEvent::Delta(text) = event {
            deltas.push_str(&text);
        }
    }
    assert_eq!(deltas, "Deep answer");
}

#[tokio::test]
async fn responses_non_streaming_with_images_json_and_cached_tokens() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_9", "object": "response", "status": "completed", "error": null,
            "output": [{"type": "reasoning", "summary": []},
                       {"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": "{\"ok\":true}", "annotations": []}]}],
            "usage": {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 400},
                      "output_tokens": 10, "output_tokens_details": {"reasoning_tokens": 4}}
        })))
        .mount(&server)
        .await;
    let mut req = CompletionRequest::new(
        "o3-pro",
        vec![Message {
            role: Role::User,
            content: vec![
                ContentPart::Text {
                    text: "What is this?".into(),
                },
                ContentPart::image_data_url("data:image/png;base64,iVBORw0KGgo=").unwrap(),
            ],
        }],
    );
    req.stream = false;
    req.json_mode = true;
    req.reasoning_effort = Some(ReasoningEffort::Low);
    let completion = providers(&server, test_config())
        .complete(req, None)
        .await
        .unwrap();
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(
        body,
        json!({
            "model": "o3-pro",
            "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
            ]}],
            "reasoning": {"effort": "low"},
            "text": {"format": {"type": "json_object"}},
            "store": false
        })
    );
    assert_eq!(completion.text, "{\"ok\":true}");
    assert_eq!(completion.request_id.as_deref(), Some("resp_9"));
    assert_eq!(completion.usage.cached_tokens, 400);
    assert_eq!(completion.usage.reasoning_tokens, 4);
    // o3-pro: $20 in, $80 out per million; the map has no cache price, so cached
    // input is billed as input.
    assert!(close(
        completion.cost.usd.unwrap(),
        1000.0 * 20e-6 + 10.0 * 80e-6
    ));
}

#[tokio::test]
async fn gpt_5_keeps_chat_completions_unless_configured() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse_ok(openai_stream(
            &["chat"],
            json!({"prompt_tokens": 1, "completion_tokens": 1}),
        )))
        .mount(&server)
        .await;
    mount_responses(&server, responses_stream(&["responses"], responses_usage())).await;
    for name in ["gpt-5", "openai/gpt-5", "gpt-4o"] {
        let completion = providers(&server, test_config())
            .complete(request(name, "Hi"), None)
            .await
            .unwrap();
        assert_eq!(completion.text, "chat", "{name}");
    }
    let mut config = test_config();
    config.models.get_mut("gpt-5").unwrap().api = Some(Api::Responses);
    let mut chat_pro = model("openai", "gpt-5-pro");
    chat_pro.api = Some(Api::Chat);
    config.models.insert("pro-as-chat".into(), chat_pro);
    let providers = providers(&server, config);
    let completion = providers
        .complete(request("gpt-5", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "responses");
    let completion = providers
        .complete(request("pro-as-chat", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "chat");
    let paths: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "/v1/chat/completions",
            "/v1/chat/completions",
            "/v1/chat/completions",
            "/v1/responses",
            "/v1/chat/completions"
        ]
    );
}

#[test]
fn the_api_comes_from_config_then_provider_then_litellms_entry_for_that_provider() {
    let api = |providers: &Providers, name: &str| providers.resolve(name).unwrap().endpoint.api;
    let all = offline(&[
        ("OPENAI_API_KEY", "k"),
        ("OPENROUTER_API_KEY", "k"),
        ("XAI_API_KEY", "k"),
        ("LITELLM_BASE_URL", "http://127.0.0.1:1"),
        ("AZURE_OPENAI_API_KEY", "k"),
        ("AZURE_OPENAI_ENDPOINT", "http://127.0.0.1:1"),
        ("ANTHROPIC_API_KEY", "k"),
    ]);
    for name in [
        "gpt-5-pro",
        "o3-pro",
        "o1-pro",
        "gpt-5-codex",
        "azure/gpt-5-pro",
    ] {
        assert_eq!(api(&all, name), Api::Responses, "{name}");
    }
    // Other providers serve the same model their way (OpenRouter and a LiteLLM proxy
    // translate), and models served by both endpoints stay on chat.
    for name in [
        "openrouter/openai/gpt-5-pro",
        "litellm/gpt-5-pro",
        "gpt-5",
        "azure/gpt-5",
        "azure/my-deployment",
        "sonnet",
    ] {
        assert_eq!(api(&all, name), Api::Chat, "{name}");
    }
    // Long timeouts by default for the slow ones; a model's own wins.
    let pro = all.resolve("gpt-5-pro").unwrap();
    assert_eq!(pro.info.timeout, Duration::from_secs(1800));
    assert_eq!(
        all.resolve("gpt-5").unwrap().info.timeout,
        Duration::from_secs(600)
    );

    let mut config = test_config();
    config.providers.get_mut("litellm").unwrap().api = Some(Api::Responses);
    let mut deployment = model("azure", "my-pro");
    deployment.api = Some(Api::Responses);
    deployment.timeout_secs = Some(3000);
    config.models.insert("azure-pro".into(), deployment);
    let env = Env::from_map([
        ("LITELLM_BASE_URL", "http://127.0.0.1:1".to_owned()),
        ("AZURE_OPENAI_API_KEY", "k".to_owned()),
        ("AZURE_OPENAI_ENDPOINT", "http://127.0.0.1:1".to_owned()),
    ]);
    let configured = Providers::new(config, &env).unwrap();
    assert_eq!(api(&configured, "litellm/anything"), Api::Responses);
    let azure = configured.resolve("azure-pro").unwrap();
    assert_eq!(azure.endpoint.api, Api::Responses);
    assert_eq!(azure.info.timeout, Duration::from_secs(3000));
}

#[tokio::test]
async fn azure_deployments_on_the_responses_api_use_the_v1_surface() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/v1/responses"))
        .respond_with(sse_ok(responses_stream(&["az"], responses_usage())))
        .expect(1)
        .mount(&server)
        .await;
    let completion = providers(&server, test_config())
        .complete(request("azure/gpt-5-pro", "Hi"), None)
        .await
        .unwrap();
    let sent = &requests(&server).await[0];
    assert_eq!(header(sent, "api-key"), Some(KEY));
    assert!(header(sent, "authorization").is_none());
    assert_eq!(sent.url.query(), None);
    assert_eq!(sent.body_json::<Value>().unwrap()["model"], "gpt-5-pro");
    assert_eq!(completion.text, "az");
}

#[tokio::test]
async fn a_failed_response_is_retried_then_falls_back_with_its_reason() {
    let server = MockServer::start().await;
    let failed = |code: &str| {
        let event = json!({"type": "response.failed", "response": {"id": "resp_f",
            "status": "failed", "error": {"code": code, "message": "The model failed."},
            "usage": {"input_tokens": 10, "output_tokens": 5}}});
        format!("event: response.failed\ndata: {event}\n\n")
    };
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(sse_ok(failed("server_error")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_string(r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_responses(
        &server,
        responses_stream(&["third time"], responses_usage()),
    )
    .await;
    let completion = providers(&server, test_config())
        .complete(request("gpt-5-pro", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "third time");
    let kinds: Vec<String> = completion
        .attempts
        .iter()
        .map(|a| match &a.outcome {
            AttemptOutcome::Ok => "ok".to_owned(),
            AttemptOutcome::Failed { kind, .. } => kind.clone(),
        })
        .collect();
    assert_eq!(kinds, ["server", "rate_limited", "ok"]);
    // The failed response had reported usage: it is billed.
    assert_eq!(
        completion.attempts[0].usage.map(|u| u.input_tokens),
        Some(10)
    );
    assert!(completion.attempts[0].cost.usd.unwrap() > 0.0);

    // A prompt the model refuses is reported at once: a 400 is neither retried nor
    // handed to a fallback (another model would refuse it too).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(sse_ok(failed("invalid_prompt")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse_ok(openai_stream(
            &["fallback"],
            json!({"prompt_tokens": 1, "completion_tokens": 1}),
        )))
        .mount(&server)
        .await;
    let mut config = test_config();
    config.models.get_mut("gpt-5-pro").unwrap().fallbacks = vec!["gpt-5".into()];
    let failure = providers(&server, config.clone())
        .complete_detailed(request("gpt-5-pro", "Hi"), None)
        .await
        .unwrap_err();
    assert_eq!(failure.attempts.len(), 1);
    let message = failure.error.to_string();
    assert!(
        message.contains("gpt-5-pro") && message.contains("invalid_prompt"),
        "{message}"
    );

    // A failure another model may not have: retried, then the fallback (on chat
    // completions) answers.
    let server2 = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(sse_ok(failed("server_error")))
        .mount(&server2)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse_ok(openai_stream(
            &["fallback"],
            json!({"prompt_tokens": 1, "completion_tokens": 1}),
        )))
        .mount(&server2)
        .await;
    let completion = providers(&server2, config)
        .complete(request("gpt-5-pro", "Hi"), None)
        .await
        .unwrap();
    assert_eq!(completion.text, "fallback");
    assert_eq!(completion.model, "gpt-5");
    // 1 + max_retries attempts on the failing model, then the fallback.
    assert_eq!(completion.attempts.len(), 4);
}

#[tokio::test]
async fn cancelling_a_responses_call_closes_its_stream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let n = socket.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        // The model "reasons": the stream is open, nothing but the first event comes.
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let created = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n";
        let chunk = format!("{:x}\r\n{created}\r\n", created.len());
        socket.write_all(chunk.as_bytes()).await.unwrap();
        let _ = seen_tx.send(head);
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = closed_tx.send(());
    });
    let env = Env::from_map([
        ("OPENAI_API_KEY", KEY.to_owned()),
        ("OPENAI_BASE_URL", format!("http://{addr}/v1")),
    ]);
    let providers = Arc::new(Providers::new(test_config(), &env).unwrap());
    let call = tokio::spawn({
        let providers = providers.clone();
        async move { providers.complete(request("gpt-5-pro", "Hi"), None).await }
    });
    let head = seen_rx.await.unwrap();
    assert!(head.starts_with("POST /v1/responses "), "{head}");
    call.abort();
    tokio::time::timeout(Duration::from_secs(5), closed_rx)
        .await
        .expect("the upstream stream was not closed after the call was dropped")
        .unwrap();
}

#[test]
fn listing_marks_responses_models_with_their_prices_and_timeout() {
    let providers = offline(&[("OPENAI_API_KEY", "k")]);
    let listing = providers.listing();
    let pro = listing
        .models
        .iter()
        .find(|m| m.name == "gpt-5-pro")
        .expect("gpt-5-pro is listed");
    assert_eq!(pro.api, Api::Responses);
    assert_eq!(pro.timeout_secs, 1800);
    assert!(close(pro.input_per_million.unwrap(), 15.0), "{pro:?}");
    assert!(close(pro.output_per_million.unwrap(), 120.0), "{pro:?}");
    let gpt5 = listing.models.iter().find(|m| m.name == "gpt-5").unwrap();
    assert_eq!(gpt5.api, Api::Chat);
    let text = listing.render_text();
    let line = text
        .lines()
        .skip_while(|l| !l.starts_with("- gpt-5-pro"))
        .nth(1)
        .unwrap();
    assert!(line.contains("$15 in / $120 out per 1M tokens"), "{line}");
    assert!(line.contains("Responses API"), "{line}");
    assert!(line.contains("timeout 30 min"), "{line}");
    let gpt5_line = text
        .lines()
        .skip_while(|l| !l.starts_with("- gpt-5 "))
        .nth(1)
        .unwrap();
    assert!(!gpt5_line.contains("Responses API"), "{gpt5_line}");
}

#[test]
fn efforts_move_to_the_nearest_one_a_model_accepts() {
    use ReasoningEffort::{High, Low, Medium};
    assert_eq!(Low.nearest_of(&[]), Low);
    assert_eq!(Low.nearest_of(&[High]), High);
    assert_eq!(Medium.nearest_of(&[Low, High]), High);
    assert_eq!(Low.nearest_of(&[Medium, High]), Medium);
    assert_eq!(High.nearest_of(&[Low, Medium]), Medium);
    assert_eq!(Medium.nearest_of(&[Low, Medium, High]), Medium);
}

/// Cache hints on the wire: Anthropic marks the system prompt and the stable parts with
/// `cache_control` (at most four marks, TTL as configured); OpenAI sends
/// `prompt_cache_key` only where the provider row says it may.
#[test]
fn cache_hints_become_cache_control_marks_and_a_prompt_cache_key() {
    use super::adapter::{Adapter, Body, Params};
    use super::config::CacheTtl;
    let p = offline(&[
        ("OPENAI_API_KEY", KEY),
        ("ANTHROPIC_API_KEY", KEY),
        ("DEEPSEEK_API_KEY", KEY),
    ]);
    let parts = |n: usize| Message {
        role: Role::User,
        content: (0..n)
            .map(|i| ContentPart::Text {
                text: format!("part {i}\n"),
            })
            .collect(),
    };
    let mut request = CompletionRequest::new("m", vec![parts(7)]);
    request.system = Some("Be brief.".into());
    request.cache = super::CacheHints {
        key: Some("zen-1".into()),
        system: true,
        breakpoints: vec![(0, 0), (0, 2), (0, 4), (0, 5)],
    };
    let json = |body: Body| -> Value { serde_json::from_slice(&body.into_bytes()).unwrap() };

    let sonnet = p.resolve("claude-sonnet-4-5").unwrap();
    let body = json(
        super::anthropic::Anthropic
            .request(&sonnet, &Params::new(&request, &sonnet), true)
            .body,
    );
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}])
    );
    let marked: Vec<usize> = body["messages"][0]["content"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, block)| block["cache_control"] == json!({"type": "ephemeral"}))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        marked,
        [0, 2, 4],
        "four marks at most, the system prompt's first"
    );

    let mut hour = (*sonnet).clone();
    hour.endpoint.cache_ttl = Some(CacheTtl::OneHour);
    let body = json(
        super::anthropic::Anthropic
            .request(&hour, &Params::new(&request, &hour), true)
            .body,
    );
    assert_eq!(body["system"][0]["cache_control"]["ttl"], "1h");

    let gpt = p.resolve("gpt-5").unwrap();
    let body = json(
        super::openai::OpenAi
            .request(&gpt, &Params::new(&request, &gpt), true)
            .body,
    );
    assert_eq!(body["prompt_cache_key"], "zen-1");
    assert_eq!(body["messages"][0]["content"], "Be brief.");
    assert_eq!(
        body["messages"][1]["content"], "part 0\npart 1\npart 2\npart 3\npart 4\npart 5\npart 6\n",
        "parts are one string, in order"
    );
    let deepseek = p.resolve("deepseek/deepseek-chat").unwrap();
    let body = json(
        super::openai::OpenAi
            .request(&deepseek, &Params::new(&request, &deepseek), true)
            .body,
    );
    assert!(body.get("prompt_cache_key").is_none(), "{body}");
}
