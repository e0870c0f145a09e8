//! Anthropic Messages (`POST /v1/messages`), streamed as typed SSE events.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::adapter::{
    Accumulated, Adapter, Body, HttpRequest, Object, Params, Text, UpstreamError, merge_extra, uint,
};
use super::config::CacheTtl;
use super::registry::ResolvedModel;
use super::types::{ContentPart, FinishReason, Role, Usage};

pub(crate) struct Anthropic;

/// Anthropic accepts at most this many `cache_control` marks in one request.
const MAX_CACHE_MARKS: usize = 4;

/// Anthropic requires `max_tokens`; this is used when neither the request nor the model gives one.
const DEFAULT_MAX_TOKENS: u64 = 4096;

impl Adapter for Anthropic {
    fn request(&self, model: &ResolvedModel, params: &Params<'_>, stream: bool) -> HttpRequest {
        let endpoint = &model.endpoint;
        let request = params.request;
        // `cache_control` marks where the prompt stops being the previous call's: at most
        // four marks per request, the system prompt's first.
        let cache_control = match endpoint.cache_ttl {
            Some(CacheTtl::OneHour) => json!({"type": "ephemeral", "ttl": "1h"}),
            _ => json!({"type": "ephemeral"}),
        };
        let hints = &request.cache;
        let mark_system = hints.system && request.system.is_some();
        let marked = |m: usize, p: usize| {
            hints
                .breakpoints
                .iter()
                .take(MAX_CACHE_MARKS - usize::from(mark_system))
                .any(|&b| b == (m, p))
        };
        let messages: Vec<Value> = request
            .messages
            .iter()
            .enumerate()
            .map(|(m, message)| {
                let role = match message.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                let content: Vec<Value> = message
                    .content
                    .iter()
                    .enumerate()
                    .map(|(p, part)| {
                        let mut block = match part {
                            ContentPart::Text { text } => json!({"type": "text", "text": text}),
                            ContentPart::Image { mime, data_base64 } => json!({
                                "type": "image",
                                "source": {"type": "base64", "media_type": mime, "data": data_base64}
                            }),
                        };
                        if marked(m, p) {
                            block["cache_control"] = cache_control.clone();
                        }
                        block
                    })
                    .collect();
                json!({"role": role, "content": content})
            })
            .collect();
        let model_max = model.info.max_output;
        let mut max_tokens = params.max_output_tokens.unwrap_or_else(|| {
            model_max
                .unwrap_or(DEFAULT_MAX_TOKENS)
                .min(DEFAULT_MAX_TOKENS * 4)
        });
        let mut body = json!({
            "model": model.upstream_model,
            "messages": messages,
        });
        if let Some(map) = body.as_object_mut() {
            if let Some(system) = &request.system {
                let system = if mark_system {
                    json!([{"type": "text", "text": system, "cache_control": cache_control}])
                } else {
                    json!(system)
                };
                map.insert("system".into(), system);
            }
            if let Some(budget) = params.thinking_budget {
                // The budget must be ≥ 1024 and below max_tokens.
                let budget = budget.max(1024);
                if max_tokens <= budget {
                    max_tokens = budget + DEFAULT_MAX_TOKENS;
                }
                map.insert(
                    "thinking".into(),
                    json!({"type": "enabled", "budget_tokens": budget}),
                );
            }
            map.insert("max_tokens".into(), json!(max_tokens));
            if let Some(t) = params.temperature {
                map.insert("temperature".into(), json!(t));
            }
            if !request.stop.is_empty() {
                map.insert("stop_sequences".into(), json!(request.stop));
            }
            if stream {
                map.insert("stream".into(), json!(true));
            }
        }
        merge_extra(&mut body, endpoint.extra_body.as_ref());
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(key) = &endpoint.key {
            headers.push(("x-api-key".to_owned(), key.expose().to_owned()));
        }
        headers.extend(endpoint.headers.iter().cloned());
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("anthropic-version"))
        {
            headers.push(("anthropic-version".to_owned(), "2023-06-01".to_owned()));
        }
        HttpRequest {
            url: format!("{}/v1/messages", endpoint.base_url),
            headers,
            body: Body::Json(body),
        }
    }

    fn parse_body(&self, body: &Value, acc: &mut Accumulated) -> Result<(), UpstreamError> {
        check_error(body)?;
        acc.request_id = body["id"].as_str().map(str::to_owned);
        if let Some(blocks) = body["content"].as_array() {
            for block in blocks {
                if block["type"] == "text"
                    && let Some(text) = block["text"].as_str()
                {
                    acc.text.push_str(text);
                }
            }
        }
        acc.finish_reason = body["stop_reason"].as_str().map(finish_reason);
        acc.usage = Some(usage(&body["usage"], None));
        Ok(())
    }

    fn parse_event(
        &self,
        event: Option<&str>,
        data: &Value,
        acc: &mut Accumulated,
    ) -> Result<Option<String>, UpstreamError> {
        let kind = event.or(data["type"].as_str()).unwrap_or_default();
        match kind {
            "message_start" => {
                let message = &data["message"];
                acc.request_id = message["id"].as_str().map(str::to_owned);
                acc.usage = Some(usage(&message["usage"], None));
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                if delta["type"] == "text_delta" {
                    return Ok(delta["text"].as_str().map(str::to_owned));
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    acc.finish_reason = Some(finish_reason(reason));
                }
                // Output tokens are cumulative here; input counts repeat message_start's.
                acc.usage = Some(usage(&data["usage"], acc.usage));
            }
            "error" => check_error(data)?,
            _ => {}
        }
        Ok(None)
    }

    /// The events that come once per token group (`content_block_delta`, and the ones that
    /// carry nothing read here, like `ping`) are read from their text; `message_start`,
    /// `message_delta`, `error` and any other shape go to the `Value` path.
    fn parse_event_text<'d>(
        &self,
        event: Option<&str>,
        data: &'d str,
        _acc: &mut Accumulated,
    ) -> Option<Result<Option<Cow<'d, str>>, UpstreamError>> {
        let Object(head) = serde_json::from_str::<Object<EventHead<'d>>>(data).ok()?;
        match event.or(head.kind).unwrap_or_default() {
            "content_block_delta" => {
                let delta = head.delta.map(|Object(delta)| delta);
                Some(Ok(match delta {
                    Some(delta) if delta.kind == Some("text_delta") => delta.text.map(|t| t.0),
                    _ => None,
                }))
            }
            "message_start" | "message_delta" | "error" => None,
            _ => Some(Ok(None)),
        }
    }
}

/// The fields of a streamed event the text path reads (anything else skipped).
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    delta: Option<Object<DeltaHead<'a>>>,
}

#[derive(serde::Deserialize)]
struct DeltaHead<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    text: Option<Text<'a>>,
}

fn usage(raw: &Value, previous: Option<Usage>) -> Usage {
    let previous = previous.unwrap_or_default();
    let pick = |pointer: &str, old: u64| {
        super::adapter::at(raw, pointer)
            .and_then(Value::as_u64)
            .unwrap_or(old)
    };
    let plain = pick("/input_tokens", 0);
    let cached = pick("/cache_read_input_tokens", previous.cached_tokens);
    let written = pick("/cache_creation_input_tokens", previous.cache_write_tokens);
    let input = if raw.get("input_tokens").is_some() {
        plain + cached + written
    } else {
        previous.input_tokens
    };
    Usage {
        input_tokens: input,
        output_tokens: uint(raw, "/output_tokens").max(previous.output_tokens),
        cached_tokens: cached,
        cache_write_tokens: written,
        reasoning_tokens: 0,
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

fn check_error(data: &Value) -> Result<(), UpstreamError> {
    if data["type"] != "error" {
        return Ok(());
    }
    let error = &data["error"];
    let status = match error["type"].as_str().unwrap_or_default() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    };
    Err(UpstreamError {
        status,
        message: data.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::adapter::both_paths;
    use super::*;

    /// The text path declines or gives exactly what the `Value` path gives (result and state).
    #[test]
    fn stream_events_read_from_text_as_from_a_value() {
        let start = || Accumulated {
            text: "so far".into(),
            request_id: Some("msg_1".into()),
            usage: Some(Usage {
                input_tokens: 5,
                ..Usage::default()
            }),
            ..Accumulated::default()
        };
        let run = |event: Option<&str>, data: &str| both_paths(&Anthropic, event, data, &start());
        let named = |kind: &'static str| Some(kind);
        let direct: &[(Option<&str>, &str)] = &[
            (
                named("content_block_delta"),
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            ),
            (
                None,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\nb \u00e9"}}"#,
            ),
            (
                named("content_block_delta"),
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            (
                named("content_block_delta"),
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"x"}}"#,
            ),
            (
                named("content_block_delta"),
                r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":""}}"#,
            ),
            (
                named("content_block_delta"),
                r#"{"type":"content_block_delta"}"#,
            ),
            (named("ping"), r#"{"type": "ping"}"#),
            (
                named("content_block_start"),
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                named("content_block_stop"),
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (named("message_stop"), r#"{"type":"message_stop"}"#),
            (None, r#"{}"#),
            // The event name wins over the data's type, as on the Value path.
            (
                named("ping"),
                r#"{"type":"message_start","message":{"id":"m"}}"#,
            ),
        ];
        let declined: &[(Option<&str>, &str)] = &[
            (
                named("message_start"),
                r#"{"type":"message_start","message":{"id":"msg_2","usage":{"input_tokens":9,"output_tokens":1}}}"#,
            ),
            (
                named("message_delta"),
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}"#,
            ),
            (
                named("error"),
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
            (
                None,
                r#"{"type":"error","error":{"type":"rate_limit_error"}}"#,
            ),
            (
                named("content_block_delta"),
                r#"{"delta":{"type":"text_delta","text":7}}"#,
            ),
            (
                named("content_block_delta"),
                r#"{"delta":["text_delta","x"]}"#,
            ),
            (
                named("content_block_delta"),
                r#"{"delta":{"type":"text\u005fdelta","text":"x"}}"#,
            ),
            (None, r#"{"type":7}"#),
            (None, r#"[]"#),
            (named("ping"), r#"not json"#),
        ];
        for (event, data) in direct {
            assert!(
                run(*event, data),
                "the text path should read {event:?} {data}"
            );
        }
        for (event, data) in declined {
            assert!(
                !run(*event, data),
                "the text path should decline {event:?} {data}"
            );
        }
    }
}
