//! OpenAI chat completions — also Azure OpenAI, OpenRouter, xAI, Groq, DeepSeek, Mistral,
//! Together, Fireworks, Ollama, LM Studio, vLLM, a LiteLLM proxy and any custom
//! OpenAI-compatible endpoint (their differences are rows in the provider table).

use serde_json::{Value, json};

use super::adapter::{Accumulated, Adapter, HttpRequest, Params, UpstreamError, merge_extra, uint};
use super::config::Wire;
use super::registry::ResolvedModel;
use super::types::{ContentPart, FinishReason, Role, Usage};

pub(crate) struct OpenAi;

impl Adapter for OpenAi {
    fn request(&self, model: &ResolvedModel, params: &Params<'_>, stream: bool) -> HttpRequest {
        let endpoint = &model.endpoint;
        let request = params.request;
        let mut messages = Vec::new();
        if let Some(system) = &request.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        for message in &request.messages {
            let role = match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            let only_text = message
                .content
                .iter()
                .all(|p| matches!(p, ContentPart::Text { .. }));
            let content = if only_text {
                Value::String(message.text_content())
            } else {
                Value::Array(
                    message
                        .content
                        .iter()
                        .map(|part| match part {
                            ContentPart::Text { text } => json!({"type": "text", "text": text}),
                            ContentPart::Image { mime, data_base64 } => json!({
                                "type": "image_url",
                                "image_url": {"url": format!("data:{mime};base64,{data_base64}")}
                            }),
                        })
                        .collect(),
                )
            };
            messages.push(json!({"role": role, "content": content}));
        }
        let mut body = json!({"model": model.upstream_model, "messages": messages});
        let map = body.as_object_mut();
        if let Some(map) = map {
            if let Some(t) = params.temperature {
                map.insert("temperature".into(), json!(t));
            }
            if let Some(max) = params.max_output_tokens {
                map.insert(endpoint.max_tokens_field.clone(), json!(max));
            }
            if let Some(effort) = params.reasoning_effort {
                map.insert("reasoning_effort".into(), json!(effort.as_str()));
            }
            if params.json_mode {
                map.insert("response_format".into(), json!({"type": "json_object"}));
            }
            if !request.stop.is_empty() {
                map.insert("stop".into(), json!(request.stop));
            }
            if stream {
                map.insert("stream".into(), json!(true));
                map.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
        merge_extra(&mut body, endpoint.extra_body.as_ref());

        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let url = if endpoint.wire == Wire::Azure {
            if let Some(key) = &endpoint.key {
                headers.push(("api-key".to_owned(), key.expose().to_owned()));
            }
            format!(
                "{}/openai/deployments/{}/chat/completions?api-version={}",
                endpoint.base_url,
                model.upstream_model,
                endpoint.api_version.as_deref().unwrap_or("2024-10-21")
            )
        } else {
            if let Some(key) = &endpoint.key {
                headers.push((
                    "authorization".to_owned(),
                    format!("Bearer {}", key.expose()),
                ));
            }
            format!("{}/chat/completions", endpoint.base_url)
        };
        headers.extend(endpoint.headers.iter().cloned());
        HttpRequest { url, headers, body }
    }

    fn parse_body(&self, body: &Value, acc: &mut Accumulated) -> Result<(), UpstreamError> {
        check_error(body)?;
        let choice = &body["choices"][0];
        if let Some(text) = choice["message"]["content"].as_str() {
            acc.text.push_str(text);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            acc.finish_reason = Some(FinishReason::from_openai(reason));
        }
        common(body, acc);
        Ok(())
    }

    fn parse_event(
        &self,
        _event: Option<&str>,
        data: &Value,
        acc: &mut Accumulated,
    ) -> Result<Option<String>, UpstreamError> {
        check_error(data)?;
        common(data, acc);
        // The final usage chunk has `choices: []` (or one choice with an empty delta).
        let Some(choice) = data["choices"].get(0) else {
            return Ok(None);
        };
        if let Some(reason) = choice["finish_reason"].as_str() {
            acc.finish_reason = Some(FinishReason::from_openai(reason));
        }
        Ok(choice["delta"]["content"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_owned))
    }
}

fn common(data: &Value, acc: &mut Accumulated) {
    if acc.request_id.is_none() {
        acc.request_id = data["id"].as_str().map(str::to_owned);
    }
    let usage = &data["usage"];
    if usage.is_object() {
        acc.usage = Some(Usage {
            input_tokens: uint(usage, "/prompt_tokens"),
            output_tokens: uint(usage, "/completion_tokens"),
            cached_tokens: uint(usage, "/prompt_tokens_details/cached_tokens"),
            cache_write_tokens: uint(usage, "/prompt_tokens_details/cache_creation_tokens"),
            reasoning_tokens: uint(usage, "/completion_tokens_details/reasoning_tokens"),
        });
        if let Some(cost) = usage["cost"].as_f64() {
            acc.upstream_cost = Some(cost);
        }
    }
}

fn check_error(data: &Value) -> Result<(), UpstreamError> {
    let error = &data["error"];
    if error.is_null() {
        return Ok(());
    }
    let status = error["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(500);
    Err(UpstreamError {
        status,
        message: error.to_string(),
    })
}
