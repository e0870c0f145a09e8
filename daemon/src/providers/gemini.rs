//! Gemini `generateContent` / `streamGenerateContent?alt=sse` (Google AI Studio).

use serde_json::{Value, json};

use super::adapter::{
    Accumulated, Adapter, Body, HttpRequest, Params, UpstreamError, merge_extra, uint,
};
use super::registry::ResolvedModel;
use super::types::{ContentPart, FinishReason, Role, Usage};

pub(crate) struct Gemini;

impl Adapter for Gemini {
    fn request(&self, model: &ResolvedModel, params: &Params<'_>, stream: bool) -> HttpRequest {
        let endpoint = &model.endpoint;
        let request = params.request;
        let contents: Vec<Value> = request
            .messages
            .iter()
            .map(|message| {
                let role = match message.role {
                    Role::User => "user",
                    Role::Assistant => "model",
                };
                let parts: Vec<Value> = message
                    .content
                    .iter()
                    .map(|part| match part {
                        ContentPart::Text { text } => json!({"text": text}),
                        ContentPart::Image { mime, data_base64 } => {
                            json!({"inline_data": {"mime_type": mime, "data": data_base64}})
                        }
                    })
                    .collect();
                json!({"role": role, "parts": parts})
            })
            .collect();
        let mut generation = serde_json::Map::new();
        if let Some(t) = params.temperature {
            generation.insert("temperature".into(), json!(t));
        }
        if let Some(max) = params.max_output_tokens {
            generation.insert("maxOutputTokens".into(), json!(max));
        }
        if !request.stop.is_empty() {
            generation.insert("stopSequences".into(), json!(request.stop));
        }
        if params.json_mode {
            generation.insert("responseMimeType".into(), json!("application/json"));
        }
        if let Some(budget) = params.thinking_budget {
            generation.insert("thinkingConfig".into(), json!({"thinkingBudget": budget}));
        }
        let mut body = json!({"contents": contents});
        if let Some(map) = body.as_object_mut() {
            if let Some(system) = &request.system {
                map.insert(
                    "systemInstruction".into(),
                    json!({"parts": [{"text": system}]}),
                );
            }
            if !generation.is_empty() {
                map.insert("generationConfig".into(), Value::Object(generation));
            }
        }
        merge_extra(&mut body, endpoint.extra_body.as_ref());
        let model_path = model.upstream_model.trim_start_matches("models/");
        let url = if stream {
            format!(
                "{}/v1beta/models/{model_path}:streamGenerateContent?alt=sse",
                endpoint.base_url
            )
        } else {
            format!(
                "{}/v1beta/models/{model_path}:generateContent",
                endpoint.base_url
            )
        };
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(key) = &endpoint.key {
            headers.push(("x-goog-api-key".to_owned(), key.expose().to_owned()));
        }
        headers.extend(endpoint.headers.iter().cloned());
        HttpRequest {
            url,
            headers,
            body: Body::Json(body),
        }
    }

    fn parse_body(&self, body: &Value, acc: &mut Accumulated) -> Result<(), UpstreamError> {
        self.parse_event(None, body, acc).map(|delta| {
            if let Some(text) = delta {
                acc.text.push_str(&text);
            }
        })
    }

    fn parse_event(
        &self,
        _event: Option<&str>,
        data: &Value,
        acc: &mut Accumulated,
    ) -> Result<Option<String>, UpstreamError> {
        if !data["error"].is_null() {
            let status = data["error"]["code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500);
            return Err(UpstreamError {
                status,
                message: data.to_string(),
            });
        }
        if let Some(reason) = data["promptFeedback"]["blockReason"].as_str() {
            return Err(UpstreamError {
                status: 400,
                message: format!("content policy: prompt blocked ({reason})"),
            });
        }
        if let Some(id) = data["responseId"].as_str() {
            acc.request_id = Some(id.to_owned());
        }
        let meta = &data["usageMetadata"];
        if meta.is_object() {
            let thoughts = uint(meta, "/thoughtsTokenCount");
            acc.usage = Some(Usage {
                input_tokens: uint(meta, "/promptTokenCount"),
                output_tokens: uint(meta, "/candidatesTokenCount") + thoughts,
                cached_tokens: uint(meta, "/cachedContentTokenCount"),
                cache_write_tokens: 0,
                reasoning_tokens: thoughts,
            });
        }
        let candidate = &data["candidates"][0];
        if let Some(reason) = candidate["finishReason"].as_str() {
            acc.finish_reason = Some(match reason {
                "STOP" => FinishReason::Stop,
                "MAX_TOKENS" => FinishReason::Length,
                "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => {
                    FinishReason::ContentFilter
                }
                other => FinishReason::Other(other.to_owned()),
            });
        }
        let mut text = String::new();
        if let Some(parts) = candidate["content"]["parts"].as_array() {
            for part in parts {
                if part["thought"].as_bool() == Some(true) {
                    continue;
                }
                if let Some(t) = part["text"].as_str() {
                    text.push_str(t);
                }
            }
        }
        Ok((!text.is_empty()).then_some(text))
    }
}
