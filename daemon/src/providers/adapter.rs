//! The wire-adapter trait and what adapters share: the parameters a model accepts
//! (LiteLLM's `drop_params`) and the state a streamed answer accumulates.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::config::{Api, TemperatureRule, Wire};
use super::registry::{Endpoint, ResolvedModel};
use super::types::{CompletionRequest, FinishReason, ReasoningEffort, Usage};
use super::{anthropic, gemini, openai, responses};

/// What goes on the wire.
pub(crate) struct HttpRequest {
    pub url: String,
    /// Includes the auth header (and `content-type`); never log these.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// Header names only: a value may be a key.
impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("url", &self.url)
            .field("headers", &HeaderNames(&self.headers))
            .field("body", &self.body)
            .finish()
    }
}

/// Prints a header list as its names, each value as `***`.
pub(crate) struct HeaderNames<'a>(pub &'a [(String, String)]);

impl fmt::Debug for HeaderNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, _)| (name, "***")))
            .finish()
    }
}

/// A request body: a JSON value, or JSON an adapter already encoded (no `Value` built).
#[derive(Debug)]
pub(crate) enum Body {
    Json(Value),
    Encoded(Vec<u8>),
}

impl Body {
    /// The JSON text sent.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            // A `Value` always serializes.
            Body::Json(value) => serde_json::to_vec(&value).unwrap_or_default(),
            Body::Encoded(bytes) => bytes,
        }
    }
}

/// An error the upstream reported inside a 200 answer (an SSE `error` event), with the
/// HTTP status it stands for.
#[derive(Debug)]
pub(crate) struct UpstreamError {
    pub status: u16,
    pub message: String,
}

/// What an answer accumulates, streamed or not.
#[derive(Debug, Default, Clone)]
pub(crate) struct Accumulated {
    pub text: String,
    pub finish_reason: Option<FinishReason>,
    pub usage: Option<Usage>,
    pub request_id: Option<String>,
    /// Cost reported in the body (`usage.cost`: LiteLLM proxy, OpenRouter).
    pub upstream_cost: Option<f64>,
}

/// One wire format. Adapters are stateless; per-call state lives in [`Accumulated`].
pub(crate) trait Adapter: Sync {
    fn request(&self, model: &ResolvedModel, params: &Params<'_>, stream: bool) -> HttpRequest;

    /// Parses a whole (non-streamed) answer.
    fn parse_body(&self, body: &Value, acc: &mut Accumulated) -> Result<(), UpstreamError>;

    /// Parses one SSE event; returns the text delta it carries, if any.
    fn parse_event(
        &self,
        event: Option<&str>,
        data: &Value,
        acc: &mut Accumulated,
    ) -> Result<Option<String>, UpstreamError>;

    /// Parses one SSE event from its data text without building a `Value`, when the event
    /// has the shape the adapter reads directly; `None` leaves `acc` untouched and the caller
    /// parses a `Value` for [`Adapter::parse_event`], which gives the same result for every
    /// event this accepts (tests compare the two).
    fn parse_event_text<'d>(
        &self,
        _event: Option<&str>,
        _data: &'d str,
        _acc: &mut Accumulated,
    ) -> Option<Result<Option<Cow<'d, str>>, UpstreamError>> {
        None
    }
}

/// The adapter that speaks to `endpoint`.
pub(crate) fn for_endpoint(endpoint: &Endpoint) -> &'static dyn Adapter {
    match (endpoint.wire, endpoint.api) {
        (Wire::Openai | Wire::Azure, Api::Responses) => &responses::Responses,
        (Wire::Openai | Wire::Azure, Api::Chat) => &openai::OpenAi,
        (Wire::Anthropic, _) => &anthropic::Anthropic,
        (Wire::Gemini, _) => &gemini::Gemini,
    }
}

/// The request's parameters after dropping what the model does not support.
#[derive(Debug)]
pub(crate) struct Params<'a> {
    pub request: &'a CompletionRequest,
    pub temperature: Option<f64>,
    pub max_output_tokens: Option<u64>,
    pub reasoning_effort: Option<ReasoningEffort>,
    pub thinking_budget: Option<u64>,
    pub json_mode: bool,
}

impl<'a> Params<'a> {
    pub fn new(request: &'a CompletionRequest, model: &ResolvedModel) -> Self {
        let caps = &model.info.capabilities;
        let reasoning = caps.reasoning;
        let reasoning_effort = request
            .reasoning_effort
            .or(request.thinking_budget.map(ReasoningEffort::from_budget))
            .filter(|_| reasoning)
            .map(|effort| effort.nearest_of(&model.info.reasoning_efforts));
        let thinking_budget = request
            .thinking_budget
            .or(request.reasoning_effort.map(ReasoningEffort::budget_tokens))
            .filter(|_| reasoning);
        let thinking = thinking_budget.is_some() && model.endpoint.wire == Wire::Anthropic;
        let max_temperature = if model.endpoint.wire == Wire::Anthropic {
            1.0
        } else {
            2.0
        };
        let temperature = request
            .temperature
            .filter(|_| caps.temperature == TemperatureRule::Supported && !thinking)
            .map(|t| t.clamp(0.0, max_temperature));
        let max_output_tokens = match (request.max_output_tokens, model.info.max_output) {
            (Some(asked), Some(limit)) => Some(asked.min(limit)),
            (asked, _) => asked,
        };
        Self {
            request,
            temperature,
            max_output_tokens,
            reasoning_effort,
            thinking_budget,
            json_mode: request.json_mode && caps.json_mode,
        }
    }
}

/// Merges `extra` (an object) into `body`.
pub(crate) fn merge_extra(body: &mut Value, extra: Option<&Value>) {
    if let (Value::Object(body), Some(Value::Object(extra))) = (body, extra) {
        for (k, v) in extra {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Reads a non-negative integer field.
pub(crate) fn uint(value: &Value, pointer: &str) -> u64 {
    at(value, pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// `value.pointer(pointer)` for the object-key paths adapters use (`/usage/output_tokens`),
/// without its allocations: `Value::pointer` unescapes every segment into a new `String`
/// (two `replace`s each), ten per usage block. Array indexes and `~` escapes are not needed
/// here and not supported.
pub(crate) fn at<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
    let path = pointer.strip_prefix('/')?;
    path.split('/').try_fold(value, |value, key| value.get(key))
}

/// A struct read only from a JSON object: serde's derive would also read one from an array
/// (fields by position), where the `Value` path sees no fields at all.
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// A JSON string, borrowed from the input when it has no escapes (serde's own `Cow<str>`
/// always copies).
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Runs one event through both of `adapter`'s paths from the same starting state. When the text
/// path takes it, its result and state must be the `Value` path's; when it declines, the state
/// must be untouched. Returns whether the text path took it.
#[cfg(test)]
pub(crate) fn both_paths(
    adapter: &dyn Adapter,
    event: Option<&str>,
    data: &str,
    start: &Accumulated,
) -> bool {
    let mut by_value = start.clone();
    let value =
        serde_json::from_str::<Value>(data).map(|v| adapter.parse_event(event, &v, &mut by_value));
    let mut by_text = start.clone();
    match adapter.parse_event_text(event, data, &mut by_text) {
        Some(text) => {
            let text = text.map(|delta| delta.map(Cow::into_owned));
            assert_eq!(
                format!("{:?} {by_text:?}", Ok::<_, ()>(text)),
                format!("{value:?} {by_value:?}"),
                "{event:?} {data}"
            );
            true
        }
        None => {
            assert_eq!(
                format!("{by_text:?}"),
                format!("{start:?}"),
                "declining leaves the state alone: {event:?} {data}"
            );
            false
        }
    }
}
