//! OpenAI's Responses API (`POST /responses`): the only API that serves `gpt-5-pro`,
//! `o3-pro`, `o1-pro` and the codex models; also Azure OpenAI's v1 `/openai/v1/responses`
//! and any OpenAI-compatible server that offers it. Which models go here is decided in
//! the registry (`api` in models.yaml, else LiteLLM's map); this file only speaks the wire.
//!
//! The request carries zen's system prompt as `instructions` and the conversation as
//! `input`, with `store: false` (zen keeps its own threads). A stream is typed events:
//! `response.output_text.delta` carries text, `response.completed` / `response.incomplete`
//! the usage and why it stopped, `response.failed` and `error` a failure, which becomes an
//! [`UpstreamError`] with the HTTP status its code stands for, so retries and fallbacks
//! treat it like the same failure on any other wire.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::adapter::{
    Accumulated, Adapter, Body, HttpRequest, Params, UpstreamError, at, merge_extra, uint,
};
use super::config::Wire;
use super::registry::ResolvedModel;
use super::types::{ContentPart, FinishReason, Message, Role, Usage};

pub(crate) struct Responses;

impl Adapter for Responses {
    fn request(&self, model: &ResolvedModel, params: &Params<'_>, stream: bool) -> HttpRequest {
        let endpoint = &model.endpoint;
        let body = ResponsesBody::new(model, params, stream);
        let body = match &endpoint.extra_body {
            Some(extra) => {
                let mut body = serde_json::to_value(&body).unwrap_or_default();
                merge_extra(&mut body, Some(extra));
                Body::Json(body)
            }
            None => Body::Encoded(serde_json::to_vec(&body).unwrap_or_default()),
        };
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let url = if endpoint.wire == Wire::Azure {
            // Azure serves the Responses API only on its v1 surface, which takes the
            // deployment in the body's `model` and no `api-version`.
            if let Some(key) = &endpoint.key {
                headers.push(("api-key".to_owned(), key.expose().to_owned()));
            }
            format!("{}/openai/v1/responses", endpoint.base_url)
        } else {
            if let Some(key) = &endpoint.key {
                headers.push((
                    "authorization".to_owned(),
                    format!("Bearer {}", key.expose()),
                ));
            }
            format!("{}/responses", endpoint.base_url)
        };
        headers.extend(endpoint.headers.iter().cloned());
        HttpRequest { url, headers, body }
    }

    fn parse_body(&self, body: &Value, acc: &mut Accumulated) -> Result<(), UpstreamError> {
        if let Some(error) = chat_style_error(body) {
            return Err(upstream_error(error));
        }
        if body["status"] == "failed" {
            read_usage(body, acc);
            return Err(upstream_error(&body["error"]));
        }
        acc.text.push_str(&output_text(body));
        finished(body, acc);
        Ok(())
    }

    fn parse_event(
        &self,
        event: Option<&str>,
        data: &Value,
        acc: &mut Accumulated,
    ) -> Result<Option<String>, UpstreamError> {
        let kind = data["type"].as_str().or(event).unwrap_or_default();
        match kind {
            "response.output_text.delta" | "response.refusal.delta" => Ok(data["delta"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned)),
            "response.created" | "response.in_progress" => {
                read_id(&data["response"], acc);
                Ok(None)
            }
            "response.completed" | "response.incomplete" => {
                let response = &data["response"];
                finished(response, acc);
                // A server that sent no deltas still gets its answer read.
                Ok(acc
                    .text
                    .is_empty()
                    .then(|| output_text(response))
                    .filter(|t| !t.is_empty()))
            }
            "response.failed" => {
                let response = &data["response"];
                read_id(response, acc);
                read_usage(response, acc);
                Err(upstream_error(&response["error"]))
            }
            "error" => Err(upstream_error(data.get("error").unwrap_or(data))),
            _ => match chat_style_error(data) {
                Some(error) => Err(upstream_error(error)),
                None => Ok(None),
            },
        }
    }
}

/// A `{"error": {...}}` body or event (a proxy's way of failing mid-stream).
fn chat_style_error(data: &Value) -> Option<&Value> {
    data.get("error").filter(|e| e.is_object())
}

/// The text of the answer's `message` items (refusals included: the user should see them).
fn output_text(response: &Value) -> String {
    let mut text = String::new();
    let items = response["output"].as_array().map(Vec::as_slice);
    for item in items.unwrap_or_default() {
        if item["type"] != "message" {
            continue;
        }
        for part in item["content"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let piece = match part["type"].as_str() {
                Some("output_text") => part["text"].as_str(),
                Some("refusal") => part["refusal"].as_str(),
                _ => None,
            };
            text.push_str(piece.unwrap_or_default());
        }
    }
    text
}

fn read_id(response: &Value, acc: &mut Accumulated) {
    if acc.request_id.is_none() {
        acc.request_id = response["id"].as_str().map(str::to_owned);
    }
}

/// `usage` of a response object: `input_tokens` (cached ones included), `output_tokens`
/// (reasoning ones included), and the details of each.
fn read_usage(response: &Value, acc: &mut Accumulated) {
    let usage = &response["usage"];
    if usage.is_object() {
        acc.usage = Some(Usage {
            input_tokens: uint(usage, "/input_tokens"),
            output_tokens: uint(usage, "/output_tokens"),
            cached_tokens: uint(usage, "/input_tokens_details/cached_tokens"),
            cache_write_tokens: 0,
            reasoning_tokens: uint(usage, "/output_tokens_details/reasoning_tokens"),
        });
        if let Some(cost) = usage["cost"].as_f64() {
            acc.upstream_cost = Some(cost);
        }
    }
}

/// A finished (completed or incomplete) response: its id, usage and why it stopped.
fn finished(response: &Value, acc: &mut Accumulated) {
    read_id(response, acc);
    read_usage(response, acc);
    let reason = match response["status"].as_str() {
        Some("incomplete") => {
            match at(response, "/incomplete_details/reason").and_then(Value::as_str) {
                Some("max_output_tokens") => FinishReason::Length,
                Some("content_filter") => FinishReason::ContentFilter,
                Some(other) => FinishReason::Other(other.to_owned()),
                None => FinishReason::Other("incomplete".to_owned()),
            }
        }
        // A body without a status is taken as an answer, as chat completions' are.
        Some("completed") | None => FinishReason::Stop,
        Some(other) => FinishReason::Other(other.to_owned()),
    };
    acc.finish_reason = Some(reason);
}

/// A failure reported in a 200 answer, with the HTTP status its code stands for (the
/// codes OpenAI documents for `response.failed` and `error` events): a rate limit is a
/// 429, a bad prompt a 400, anything else a retryable 500.
fn upstream_error(error: &Value) -> UpstreamError {
    let code = &error["code"];
    let status = match code.as_u64().and_then(|c| u16::try_from(c).ok()) {
        Some(status) if (400..600).contains(&status) => status,
        _ => {
            let named = code.as_str().or(error["type"].as_str()).unwrap_or_default();
            if named.contains("rate_limit") || named == "insufficient_quota" {
                429
            } else if named.starts_with("invalid")
                || named.starts_with("unsupported")
                || named.contains("context_length")
            {
                400
            } else {
                500
            }
        }
    };
    let message = if error.is_object() {
        error.to_string()
    } else {
        "the model's response failed without details".to_owned()
    };
    UpstreamError { status, message }
}

/// A Responses API request body.
#[derive(Serialize)]
struct ResponsesBody<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<&'a str>,
    input: Vec<InputMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<Reasoning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextOptions>,
    /// zen keeps the conversation itself; nothing is left stored upstream.
    store: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    /// One per thread, where the provider row allows it (see `CacheHints::key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_cache_key: Option<&'a str>,
}

#[derive(Serialize)]
struct Reasoning {
    effort: &'static str,
}

#[derive(Serialize)]
struct TextOptions {
    format: TextFormat,
}

#[derive(Serialize)]
struct TextFormat {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct InputMessage<'a> {
    role: &'static str,
    content: InputContent<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum InputContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<InputPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InputPart<'a> {
    InputText { text: &'a str },
    InputImage { image_url: String },
}

impl<'a> ResponsesBody<'a> {
    /// Stop sequences are dropped: the Responses API has none.
    fn new(model: &'a ResolvedModel, params: &'a Params<'a>, stream: bool) -> Self {
        let request = params.request;
        Self {
            model: &model.upstream_model,
            instructions: request.system.as_deref(),
            input: request.messages.iter().map(InputMessage::new).collect(),
            max_output_tokens: params.max_output_tokens,
            reasoning: params.reasoning_effort.map(|effort| Reasoning {
                effort: effort.as_str(),
            }),
            temperature: params.temperature,
            text: params.json_mode.then_some(TextOptions {
                format: TextFormat {
                    kind: "json_object",
                },
            }),
            store: false,
            stream,
            prompt_cache_key: request
                .cache
                .key
                .as_deref()
                .filter(|_| model.endpoint.prompt_cache_key),
        }
    }
}

impl<'a> InputMessage<'a> {
    /// Text as one string; a user message with images as a list of parts (an assistant's
    /// turn is only ever text).
    fn new(message: &'a Message) -> Self {
        let text_only = message
            .content
            .iter()
            .all(|p| matches!(p, ContentPart::Text { .. }));
        let content = match (message.role, message.content.as_slice()) {
            (_, [ContentPart::Text { text }]) => InputContent::Text(Cow::Borrowed(text)),
            (Role::Assistant, _) => InputContent::Text(Cow::Owned(message.text_content())),
            (Role::User, _) if text_only => InputContent::Text(Cow::Owned(message.text_content())),
            (Role::User, parts) => InputContent::Parts(
                parts
                    .iter()
                    .map(|part| match part {
                        ContentPart::Text { text } => InputPart::InputText { text },
                        ContentPart::Image { mime, data_base64 } => InputPart::InputImage {
                            image_url: format!("data:{mime};base64,{data_base64}"),
                        },
                    })
                    .collect(),
            ),
        };
        Self {
            role: match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            },
            content,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn events(events: &[Value]) -> (Accumulated, Vec<String>, Option<UpstreamError>) {
        let mut acc = Accumulated::default();
        let mut deltas = Vec::new();
        for event in events {
            match Responses.parse_event(None, event, &mut acc) {
                Ok(Some(delta)) => {
                    acc.text.push_str(&delta);
                    deltas.push(delta);
                }
                Ok(None) => {}
                Err(error) => return (acc, deltas, Some(error)),
            }
        }
        (acc, deltas, None)
    }

    fn usage() -> Value {
        json!({"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 600},
               "output_tokens": 500, "output_tokens_details": {"reasoning_tokens": 420},
               "total_tokens": 1500})
    }

    #[test]
    fn a_stream_gives_text_usage_and_the_reason_it_stopped() {
        let (acc, deltas, error) = events(&[
            json!({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}),
            json!({"type": "response.in_progress", "response": {"id": "resp_1"}}),
            json!({"type": "response.output_item.added", "item": {"type": "reasoning"}}),
            json!({"type": "response.output_text.delta", "delta": "Hel"}),
            json!({"type": "response.output_text.delta", "delta": ""}),
            json!({"type": "response.output_text.delta", "delta": "lo"}),
            json!({"type": "response.output_text.done", "text": "Hello"}),
            json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed",
                "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hello"}]}],
                "usage": usage()}}),
        ]);
        assert!(error.is_none());
        assert_eq!(deltas, ["Hel", "lo"]);
        assert_eq!(
            acc.text, "Hello",
            "the completed event's copy is not added twice"
        );
        assert_eq!(acc.request_id.as_deref(), Some("resp_1"));
        assert_eq!(acc.finish_reason, Some(FinishReason::Stop));
        assert_eq!(
            acc.usage,
            Some(Usage {
                input_tokens: 1000,
                output_tokens: 500,
                cached_tokens: 600,
                cache_write_tokens: 0,
                reasoning_tokens: 420,
            })
        );
    }

    #[test]
    fn the_event_name_serves_when_the_data_has_no_type() {
        let mut acc = Accumulated::default();
        let delta = Responses
            .parse_event(
                Some("response.output_text.delta"),
                &json!({"delta": "x"}),
                &mut acc,
            )
            .unwrap();
        assert_eq!(delta.as_deref(), Some("x"));
    }

    #[test]
    fn a_completed_event_without_deltas_gives_its_text() {
        let (acc, deltas, _) = events(&[json!({"type": "response.completed", "response": {
            "status": "completed",
            "output": [{"type": "reasoning", "summary": []},
                       {"type": "message", "content": [{"type": "output_text", "text": "all "},
                                                        {"type": "refusal", "refusal": "at once"}]}]}})]);
        assert_eq!(deltas, ["all at once"]);
        assert_eq!(acc.text, "all at once");
    }

    #[test]
    fn incomplete_answers_say_why() {
        for (reason, expected) in [
            ("max_output_tokens", FinishReason::Length),
            ("content_filter", FinishReason::ContentFilter),
            ("other", FinishReason::Other("other".to_owned())),
        ] {
            let (acc, _, error) = events(&[json!({"type": "response.incomplete", "response": {
                "status": "incomplete", "incomplete_details": {"reason": reason}, "usage": usage()}})]);
            assert!(error.is_none());
            assert_eq!(acc.finish_reason, Some(expected));
            assert_eq!(acc.usage.map(|u| u.reasoning_tokens), Some(420));
        }
    }

    #[test]
    fn failures_carry_the_status_their_code_stands_for_and_the_usage_billed() {
        let failed = |error: Value| {
            json!({"type": "response.failed", "response": {"id": "resp_2", "status": "failed",
                "error": error, "usage": usage()}})
        };
        let cases = [
            (
                failed(json!({"code": "server_error", "message": "The model failed"})),
                500,
            ),
            (
                failed(json!({"code": "rate_limit_exceeded", "message": "slow down"})),
                429,
            ),
            (
                failed(json!({"code": "invalid_prompt", "message": "flagged"})),
                400,
            ),
            (failed(Value::Null), 500),
            (
                json!({"type": "error", "code": "rate_limit_exceeded", "message": "slow", "param": null}),
                429,
            ),
            (
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}),
                400,
            ),
            (
                json!({"type": "error", "code": 503, "message": "busy"}),
                503,
            ),
            (
                json!({"error": {"message": "overloaded", "code": 529}}),
                529,
            ),
        ];
        for (event, status) in cases {
            let (acc, _, error) = events(std::slice::from_ref(&event));
            let error = error.unwrap_or_else(|| panic!("{event} is a failure"));
            assert_eq!(error.status, status, "{event}");
            if event["type"] == "response.failed" {
                assert_eq!(acc.usage.map(|u| u.input_tokens), Some(1000), "{event}");
                assert_eq!(acc.request_id.as_deref(), Some("resp_2"));
            }
        }
        let (_, _, error) = events(&[failed(
            json!({"code": "server_error", "message": "The model failed"}),
        )]);
        assert!(error.unwrap().message.contains("The model failed"));
    }

    #[test]
    fn a_whole_body_reads_like_the_stream() {
        let mut acc = Accumulated::default();
        Responses
            .parse_body(
                &json!({"id": "resp_3", "object": "response", "status": "completed", "error": null,
                    "output": [{"type": "reasoning", "summary": []},
                               {"type": "message", "role": "assistant",
                                "content": [{"type": "output_text", "text": "whole", "annotations": []}]}],
                    "usage": usage()}),
                &mut acc,
            )
            .unwrap();
        assert_eq!(acc.text, "whole");
        assert_eq!(acc.finish_reason, Some(FinishReason::Stop));
        assert_eq!(acc.usage.map(|u| u.cached_tokens), Some(600));
        assert_eq!(acc.request_id.as_deref(), Some("resp_3"));

        let mut acc = Accumulated::default();
        let error = Responses
            .parse_body(
                &json!({"id": "resp_4", "status": "failed",
                    "error": {"code": "server_error", "message": "boom"}, "output": []}),
                &mut acc,
            )
            .unwrap_err();
        assert_eq!(error.status, 500);
    }
}
