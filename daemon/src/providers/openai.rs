//! OpenAI chat completions — also Azure OpenAI, OpenRouter, xAI, Groq, DeepSeek, Mistral,
//! Together, Fireworks, Ollama, LM Studio, vLLM, a LiteLLM proxy and any custom
//! OpenAI-compatible endpoint (their differences are rows in the provider table).

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Value, json};

use super::adapter::{
    Accumulated, Adapter, Body, HttpRequest, Object, Params, Text, UpstreamError, merge_extra, uint,
};
use super::config::Wire;
use super::registry::ResolvedModel;
use super::types::{CompletionRequest, ContentPart, FinishReason, Message, Role, Usage};

pub(crate) struct OpenAi;

impl Adapter for OpenAi {
    fn request(&self, model: &ResolvedModel, params: &Params<'_>, stream: bool) -> HttpRequest {
        let endpoint = &model.endpoint;
        let body = match &endpoint.extra_body {
            // Merging the configured extra fields needs the body as a value.
            Some(extra) => {
                let mut body = serde_json::to_value(ChatBody {
                    model,
                    params,
                    stream,
                })
                .unwrap_or_default();
                merge_extra(&mut body, Some(extra));
                Body::Json(body)
            }
            // The common case: encoded straight from the request, no `Value` built.
            None => Body::Encoded(
                serde_json::to_vec(&ChatBody {
                    model,
                    params,
                    stream,
                })
                .unwrap_or_default(),
            ),
        };

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

    fn parse_event_text<'d>(
        &self,
        _event: Option<&str>,
        data: &'d str,
        acc: &mut Accumulated,
    ) -> Option<Result<Option<Cow<'d, str>>, UpstreamError>> {
        // Any other shape (an error, a field of another type, a repeated key) is left to
        // the `Value` path, which reads it as it always has.
        let Object(chunk) = serde_json::from_str::<Object<Chunk<'d>>>(data).ok()?;
        if chunk.error.is_some() {
            return None;
        }
        if acc.request_id.is_none() {
            acc.request_id = chunk.id.map(str::to_owned);
        }
        if let Some(Object(usage)) = chunk.usage {
            acc.usage = Some(Usage {
                input_tokens: usage.prompt_tokens.unwrap_or(0),
                output_tokens: usage.completion_tokens.unwrap_or(0),
                cached_tokens: usage
                    .prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.0.cached_tokens)
                    .unwrap_or(0),
                cache_write_tokens: usage
                    .prompt_tokens_details
                    .and_then(|d| d.0.cache_creation_tokens)
                    .unwrap_or(0),
                reasoning_tokens: usage
                    .completion_tokens_details
                    .and_then(|d| d.0.reasoning_tokens)
                    .unwrap_or(0),
            });
            if let Some(cost) = usage.cost {
                acc.upstream_cost = Some(cost);
            }
        }
        let Some(Object(choice)) = chunk.choices.and_then(|choices| choices.into_iter().next())
        else {
            return Some(Ok(None));
        };
        if let Some(reason) = choice.finish_reason {
            acc.finish_reason = Some(FinishReason::from_openai(reason));
        }
        Some(Ok(choice
            .delta
            .and_then(|delta| delta.0.content)
            .map(|text| text.0)
            .filter(|text| !text.is_empty())))
    }
}

/// A streamed chat completions chunk, read straight from its text: the fields the adapter
/// uses, borrowed where the JSON has no escapes; everything else skipped.
#[derive(serde::Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<&'a str>,
    #[serde(borrow, default)]
    choices: Option<Vec<Object<ChunkChoice<'a>>>>,
    #[serde(default)]
    usage: Option<Object<ChunkUsage>>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct ChunkChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<Object<ChunkDelta<'a>>>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct ChunkDelta<'a> {
    #[serde(borrow, default)]
    content: Option<Text<'a>>,
}

#[derive(serde::Deserialize)]
struct ChunkUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Object<PromptDetails>>,
    #[serde(default)]
    completion_tokens_details: Option<Object<CompletionDetails>>,
    #[serde(default)]
    cost: Option<f64>,
}

#[derive(serde::Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_tokens: Option<u64>,
}

#[derive(serde::Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// A chat completions request body, serialized field by field in the order the wire has always
/// had (model, messages, then the optional parameters).
struct ChatBody<'a> {
    model: &'a ResolvedModel,
    params: &'a Params<'a>,
    stream: bool,
}

impl Serialize for ChatBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (model, params) = (self.model, self.params);
        let request = params.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", &model.upstream_model)?;
        map.serialize_entry("messages", &Messages(request))?;
        if let Some(t) = params.temperature {
            map.serialize_entry("temperature", &t)?;
        }
        if let Some(max) = params.max_output_tokens {
            map.serialize_entry(&model.endpoint.max_tokens_field, &max)?;
        }
        if let Some(effort) = params.reasoning_effort {
            map.serialize_entry("reasoning_effort", effort.as_str())?;
        }
        if params.json_mode {
            map.serialize_entry("response_format", &json!({"type": "json_object"}))?;
        }
        if !request.stop.is_empty() {
            map.serialize_entry("stop", &request.stop)?;
        }
        if model.endpoint.prompt_cache_key
            && let Some(key) = &request.cache.key
        {
            map.serialize_entry("prompt_cache_key", key)?;
        }
        if self.stream {
            map.serialize_entry("stream", &true)?;
            map.serialize_entry("stream_options", &json!({"include_usage": true}))?;
        }
        map.end()
    }
}

/// The system prompt (if any), then every message: text-only content as one string, anything
/// else as a list of parts.
struct Messages<'a>(&'a CompletionRequest);

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.0;
        let mut list = serializer.serialize_seq(None)?;
        if let Some(system) = &request.system {
            list.serialize_element(&SystemMessage(system))?;
        }
        for message in &request.messages {
            list.serialize_element(&OneMessage(message))?;
        }
        list.end()
    }
}

/// `{"role": "system", "content": ...}`, without copying the prompt into a `Value`.
struct SystemMessage<'a>(&'a str);

impl Serialize for SystemMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("role", "system")?;
        map.serialize_entry("content", self.0)?;
        map.end()
    }
}

struct OneMessage<'a>(&'a Message);

impl Serialize for OneMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let message = self.0;
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("role", role)?;
        let only_text = message
            .content
            .iter()
            .all(|p| matches!(p, ContentPart::Text { .. }));
        if only_text {
            match message.content.as_slice() {
                [ContentPart::Text { text }] => map.serialize_entry("content", text)?,
                _ => map.serialize_entry("content", &message.text_content())?,
            }
        } else {
            let parts: Vec<Value> = message
                .content
                .iter()
                .map(|part| match part {
                    ContentPart::Text { text } => json!({"type": "text", "text": text}),
                    ContentPart::Image { mime, data_base64 } => json!({
                        "type": "image_url",
                        "image_url": {"url": format!("data:{mime};base64,{data_base64}")}
                    }),
                })
                .collect();
            map.serialize_entry("content", &parts)?;
        }
        map.end()
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

#[cfg(test)]
mod tests {
    use super::super::adapter::both_paths;
    use super::*;

    #[test]
    fn stream_chunks_read_from_text_as_from_a_value() {
        // Shapes real servers send; each must take the text path.
        let direct = [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-5","choices":[{"index":0,"delta":{"role":"assistant","content":"mock "},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"line\nnext \"q\" \u00e9\u2603"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120}}"#,
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":5,"cache_creation_tokens":1},"completion_tokens_details":{"reasoning_tokens":2},"cost":0.0012}}"#,
            r#"{"id":"c","choices":[{"delta":{"content":""},"finish_reason":"length"}],"usage":{"prompt_tokens_details":null,"cost":3}}"#,
            r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}],"error":null}"#,
            r#"{"choices":[{"delta":{"content":null,"tool_calls":[{"index":0}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":null,"choices":null}"#,
            r#" {"id":"x"} "#,
        ];
        // Shapes the text path leaves to the `Value` path (same answer either way).
        let declined = [
            r#"{"error":{"message":"overloaded","code":529}}"#,
            r#"{"error":{"message":"bad","code":"x"},"choices":[]}"#,
            r#"{"id":7,"choices":[{"delta":{"content":"x"}}]}"#,
            r#"{"id":"esc\u0061ped","choices":[]}"#,
            r#"{"choices":{"0":{"delta":{"content":"x"}}}}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[{"delta":"x"}]}"#,
            r#"{"choices":[{"delta":{"content":["x"]}}]}"#,
            r#"{"choices":[{"finish_reason":1}]}"#,
            r#"{"usage":{"prompt_tokens":1.5}}"#,
            r#"{"usage":{"prompt_tokens":-1}}"#,
            r#"{"usage":{"prompt_tokens_details":3}}"#,
            r#"{"usage":{"cost":"0.1"}}"#,
            r#"{"usage":[]}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"[1,2]"#,
            r#"[]"#,
            r#"{"choices":[[]]}"#,
            r#"{"choices":[{"delta":["x"]}]}"#,
            r#"{"usage":{"prompt_tokens_details":[5]}}"#,
            r#"{"usage":[1,2]}"#,
            r#""text""#,
        ];
        let fresh = Accumulated::default();
        let later = Accumulated {
            text: "so far".into(),
            finish_reason: Some(FinishReason::Stop),
            usage: Some(Usage {
                input_tokens: 1,
                ..Usage::default()
            }),
            request_id: Some("first".into()),
            upstream_cost: Some(9.0),
        };
        for start in [&fresh, &later] {
            for data in direct {
                assert!(
                    both_paths(&OpenAi, None, data, start),
                    "the text path should read {data}"
                );
            }
            for data in declined {
                assert!(
                    !both_paths(&OpenAi, None, data, start),
                    "the text path should leave {data} to the Value path"
                );
            }
        }
    }
}
