//! `Providers`: the runtime every model call goes through — the shared HTTP client,
//! the registry, retries, fallbacks, cooldowns and cost.
//!
//! A call is a chain of *hops* (the requested model, then fallbacks, at most
//! `max_fallback_hops` models) and each hop is up to `1 + max_retries` *attempts*.
//! A model whose calls fail `cooldown_failures` times in a row (after retries) is skipped
//! for `cooldown_secs`, as LiteLLM's router cools deployments down. Cancellation is
//! dropping the future: the in-flight reqwest future goes with it and closes the
//! connection, and no state is left half-updated (the cooldown map is only touched
//! between awaits).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use super::adapter::{self, Accumulated, Params};
use super::config::{Category, ModelsConfig};
use super::env::{Env, Secrets};
use super::http::{self, AttemptError, ErrorContext, SseParser};
use super::listing::ModelListing;
use super::registry::{Registry, ResolvedModel};
use super::types::{
    Attempt, AttemptOutcome, Completion, CompletionRequest, Cost, CostSource, FinishReason,
    StreamEvent,
};
use super::{ProviderError, cost, estimate_request_tokens};

/// The providers runtime. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Providers {
    registry: Registry,
    /// One pooled client per distinct connect timeout (normally just one).
    clients: HashMap<Duration, reqwest::Client>,
    cooldowns: Mutex<HashMap<String, CooldownState>>,
    /// Names already resolved (the registry never changes once built): a call
    /// resolves its model twice (the tool picks it, `complete` looks it up).
    /// Shared, not copied: a `ResolvedModel` is ~15 allocations to clone and drop.
    pub(super) resolved: Mutex<HashMap<String, Arc<ResolvedModel>>>,
    /// Upstream URLs already parsed: reqwest parses a `&str` URL on every request (~13k
    /// instructions, a tenth of a call's own HTTP work); a parsed one is cloned instead.
    pub(super) urls: Mutex<HashMap<String, reqwest::Url>>,
    /// Every configured key's value, removed from each request body before it is sent.
    secrets: Secrets,
    /// `(provider, model)` that providers with `list_models` said they serve
    /// ([`Providers::discover_models`]).
    discovered: Mutex<Vec<(String, String)>>,
}

/// How long a provider's `GET /models` may take.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most models taken from one provider's list.
const DISCOVER_MAX: usize = 500;

/// At most this many names are remembered (clients may name any `provider/model`).
pub(super) const RESOLVED_CACHE_MAX: usize = 256;

#[derive(Debug, Default)]
struct CooldownState {
    failures: u32,
    until: Option<Instant>,
}

/// A call that failed on every model tried, with the attempts made (some may have cost tokens).
#[derive(Debug)]
pub struct CompletionFailure {
    pub error: ProviderError,
    pub attempts: Vec<Attempt>,
}

impl Providers {
    /// Builds the runtime from configuration data and an environment snapshot.
    pub fn new(config: ModelsConfig, env: &Env) -> Result<Self, ProviderError> {
        // Every key variable that is set (not only the one each provider uses) and
        // every per-model key.
        let model_keys: Vec<String> = config
            .models
            .values()
            .filter_map(|m| m.api_key.as_deref().and_then(|k| env.expand(k)))
            .collect();
        let secrets = Secrets::new(
            config
                .providers
                .values()
                .flat_map(|p| p.key_env.iter().filter_map(|name| env.get(name)))
                .chain(model_keys.iter().map(String::as_str)),
        );
        let registry = Registry::new(config, env);
        let mut timeouts = vec![Duration::from_secs(registry.settings.connect_timeout_secs)];
        timeouts.extend(
            registry
                .models
                .values()
                .filter_map(|m| m.connect_timeout_secs.map(Duration::from_secs)),
        );
        let mut clients = HashMap::new();
        for timeout in timeouts {
            if let std::collections::hash_map::Entry::Vacant(slot) = clients.entry(timeout) {
                slot.insert(http::build_client(timeout)?);
            }
        }
        Ok(Self {
            registry,
            clients,
            cooldowns: Mutex::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
            urls: Mutex::new(HashMap::new()),
            secrets,
            discovered: Mutex::new(Vec::new()),
        })
    }

    /// Asks each configured provider with `list_models` (a LiteLLM proxy) which
    /// models it serves: `GET <base_url>/models`, OpenAI's list shape. Called
    /// at start and after each reload; a provider that does not answer is logged and skipped,
    /// its models stay callable by name.
    pub async fn discover_models(&self) {
        let Some(client) = self.clients.values().next() else {
            return;
        };
        let providers = self
            .registry
            .providers
            .values()
            .filter(|p| p.config.list_models && p.unconfigured.is_none());
        for provider in providers {
            let Some(base_url) = &provider.base_url else {
                continue;
            };
            let mut request = client
                .get(format!("{}/models", base_url.trim_end_matches('/')))
                .timeout(DISCOVER_TIMEOUT);
            if let Some(key) = &provider.key {
                request = request.bearer_auth(key.expose());
            }
            for (name, value) in &provider.headers {
                request = request.header(name, value);
            }
            let key = provider.key.as_ref().map(|k| k.expose());
            let listed = match request.send().await {
                Ok(response) if response.status().is_success() => response
                    .json::<ModelList>()
                    .await
                    .map_err(|e| e.to_string()),
                Ok(response) => Err(format!("HTTP {}", response.status())),
                Err(e) => Err(e.to_string()),
            };
            match listed {
                Ok(list) => {
                    let models: Vec<(String, String)> = list
                        .data
                        .into_iter()
                        .map(|m| m.id.trim().to_owned())
                        .filter(|id| !id.is_empty())
                        .take(DISCOVER_MAX)
                        .map(|id| (provider.name.clone(), id))
                        .collect();
                    tracing::info!(provider = %provider.name, models = models.len(), "listed the models it serves");
                    let mut discovered = crate::util::lock(&self.discovered);
                    discovered.retain(|(p, _)| p != &provider.name);
                    discovered.extend(models);
                }
                Err(error) => tracing::warn!(
                    provider = %provider.name,
                    error = %http::scrub(&error, key),
                    "cannot list its models (GET /models); they are not listed, but can be called as {}/<model>",
                    provider.name
                ),
            }
        }
    }

    /// `url` parsed, remembered (at most [`RESOLVED_CACHE_MAX`] of them); `None` if it is not a URL.
    pub(super) fn parsed_url(&self, url: &str) -> Option<reqwest::Url> {
        let mut urls = crate::util::lock(&self.urls);
        if let Some(parsed) = urls.get(url) {
            return Some(parsed.clone());
        }
        let parsed = reqwest::Url::parse(url).ok()?;
        if urls.len() >= RESOLVED_CACHE_MAX {
            urls.clear();
        }
        urls.insert(url.to_owned(), parsed.clone());
        Some(parsed)
    }

    /// `models.yaml` (built-in + `<config_dir>/models.yaml`) and [`Providers::new`].
    pub fn load(config_dir: Option<&Path>, env: &Env) -> Result<Self, ProviderError> {
        Self::new(ModelsConfig::load(config_dir)?, env)
    }

    /// Resolves a name, alias, `provider/model` or `auto` to an available model.
    pub fn resolve(&self, name: &str) -> Result<Arc<ResolvedModel>, ProviderError> {
        let trimmed = name.trim();
        if trimmed.eq_ignore_ascii_case("auto") || trimmed.is_empty() {
            return self
                .pick_auto(Category::Balanced)
                .or_else(|| self.available().into_iter().max_by_key(|m| m.info.score))
                .map(Arc::new)
                .ok_or_else(|| ProviderError::UnknownModel {
                    name: "auto".to_owned(),
                    available: Vec::new(),
                });
        }
        if let Some(model) = crate::util::lock(&self.resolved).get(trimmed) {
            return Ok(Arc::clone(model));
        }
        let model = self
            .registry
            .lookup(trimmed)
            .ok_or_else(|| ProviderError::UnknownModel {
                name: trimmed.to_owned(),
                available: self.available_names(),
            })?;
        self.registry.check_available(&model)?;
        let model = Arc::new(model);
        let mut resolved = crate::util::lock(&self.resolved);
        if resolved.len() >= RESOLVED_CACHE_MAX {
            resolved.clear();
        }
        resolved.insert(trimmed.to_owned(), Arc::clone(&model));
        Ok(model)
    }

    /// Models that can be called now (provider configured, model allowed), by provider.
    pub fn available(&self) -> Vec<ResolvedModel> {
        let discovered = crate::util::lock(&self.discovered);
        self.registry.available(&discovered)
    }

    /// The highest-scored available model of `category`.
    pub fn pick_auto(&self, category: Category) -> Option<ResolvedModel> {
        self.available()
            .into_iter()
            .filter(|m| m.info.category == category)
            .max_by(|a, b| {
                a.info
                    .score
                    .cmp(&b.info.score)
                    .then_with(|| b.name.cmp(&a.name))
            })
    }

    /// `DEFAULT_MODEL`, or `auto`.
    pub fn default_model(&self) -> &str {
        &self.registry.default_model
    }

    /// Data for `listmodels` and `zend models`.
    pub fn listing(&self) -> ModelListing {
        ModelListing::build(&self.registry, self.available())
    }

    fn available_names(&self) -> Vec<String> {
        self.available().into_iter().map(|m| m.name).collect()
    }

    /// THE one function every model call goes through. Streams internally and forwards
    /// text deltas to `events` when given; retries, falls back, cools models down and
    /// computes cost. Dropping the future cancels the upstream request.
    pub async fn complete(
        &self,
        request: CompletionRequest,
        events: Option<UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, ProviderError> {
        self.complete_detailed(request, events)
            .await
            .map_err(|f| f.error)
    }

    /// [`Providers::complete`], keeping the attempts of a call that failed everywhere.
    pub async fn complete_detailed(
        &self,
        request: CompletionRequest,
        events: Option<UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, CompletionFailure> {
        let mut attempts = Vec::new();
        let fail = |error, attempts| CompletionFailure { error, attempts };
        let mut current = match self.resolve(&request.model) {
            Ok(model) => model,
            Err(error) => return Err(fail(error, attempts)),
        };
        let settings = &self.registry.settings;
        let estimate = estimate_request_tokens(&request);
        let mut tried: Vec<String> = Vec::new();
        let mut queue: VecDeque<String> = VecDeque::new();
        loop {
            tried.push(current.name.clone());
            let result = match self.precheck(&current, &request, estimate) {
                Err(error) => Err(error),
                Ok(()) => {
                    self.call_with_retries(&current, &request, events.as_ref(), &mut attempts)
                        .await
                }
            };
            let error = match result {
                Ok(completion) => {
                    self.record(&current.name, true);
                    return Ok(Completion {
                        attempts,
                        ..completion
                    });
                }
                Err(error) => error,
            };
            if error.is_retryable() || matches!(error, ProviderError::Auth { .. }) {
                self.record(&current.name, false);
            }
            let next: &[String] = match &error {
                ProviderError::ContextWindowExceeded { .. } => {
                    &current.info.context_window_fallbacks
                }
                e if e.allows_fallback() && current.info.fallbacks.is_empty() => {
                    &settings.fallbacks
                }
                e if e.allows_fallback() => &current.info.fallbacks,
                _ => &[],
            };
            for name in next {
                if !queue.contains(name) {
                    queue.push_back(name.clone());
                }
            }
            let mut chosen = None;
            while tried.len() < settings.max_fallback_hops.max(1) {
                let Some(name) = queue.pop_front() else { break };
                match self.resolve(&name) {
                    Ok(model) if !tried.contains(&model.name) => {
                        chosen = Some(model);
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(fallback = %name, kind = e.kind(), error = %crate::logging::Sensitive(&e), "skipping fallback")
                    }
                }
            }
            match chosen {
                Some(model) => {
                    tracing::info!(from = %current.name, to = %model.name, kind = error.kind(), error = %crate::logging::Sensitive(&error), "falling back");
                    current = model;
                }
                None => return Err(fail(error, attempts)),
            }
        }
    }

    /// Checks the cooldown and the context window before any HTTP.
    fn precheck(
        &self,
        model: &ResolvedModel,
        request: &CompletionRequest,
        estimate: u64,
    ) -> Result<(), ProviderError> {
        if let Some(remaining) = self.cooling(&model.name) {
            return Err(ProviderError::CoolingDown {
                model: model.name.clone(),
                remaining,
            });
        }
        if let Some(window) = model.info.context_window {
            let reserve = request
                .max_output_tokens
                .unwrap_or(self.registry.settings.reserve_output_tokens)
                .min(window / 4);
            if estimate + reserve > window {
                return Err(ProviderError::ContextWindowExceeded {
                    model: model.name.clone(),
                    message: format!(
                        "about {estimate} prompt tokens + {reserve} for the answer > {window}"
                    ),
                });
            }
        }
        Ok(())
    }

    async fn call_with_retries(
        &self,
        model: &ResolvedModel,
        request: &CompletionRequest,
        events: Option<&UnboundedSender<StreamEvent>>,
        attempts: &mut Vec<Attempt>,
    ) -> Result<Completion, ProviderError> {
        let settings = &self.registry.settings;
        let mut retry = 0;
        loop {
            if let Some(tx) = events {
                let _ = tx.send(StreamEvent::Started {
                    model: model.name.clone(),
                    attempt: retry,
                });
            }
            let started = Instant::now();
            let outcome = match tokio::time::timeout(
                model.info.timeout,
                self.call_once(model, request, events),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(AttemptError::from(ProviderError::Timeout {
                    provider: model.provider.clone(),
                    model: model.name.clone(),
                    after: model.info.timeout,
                })),
            };
            let latency = started.elapsed();
            match outcome {
                Ok((acc, upstream_cost)) => {
                    let completion = self.finish(model, acc, upstream_cost, latency);
                    attempts.push(Attempt {
                        model: model.name.clone(),
                        provider: model.provider.clone(),
                        outcome: AttemptOutcome::Ok,
                        usage: Some(completion.usage),
                        cost: completion.cost,
                        cache_saved_usd: cost::cache_savings(
                            model.info.prices.as_ref(),
                            &completion.usage,
                        ),
                        latency,
                    });
                    if let Some(tx) = events {
                        let _ = tx.send(StreamEvent::Usage(completion.usage));
                    }
                    return Ok(completion);
                }
                Err(failure) => {
                    attempts.push(Attempt {
                        model: model.name.clone(),
                        provider: model.provider.clone(),
                        outcome: AttemptOutcome::Failed {
                            kind: failure.error.kind().to_owned(),
                            message: failure.error.to_string(),
                        },
                        usage: failure.usage,
                        cost: failure.usage.map_or(Cost::UNKNOWN, |u| {
                            cost::compute(model.info.prices.as_ref(), &u)
                        }),
                        cache_saved_usd: failure
                            .usage
                            .and_then(|u| cost::cache_savings(model.info.prices.as_ref(), &u)),
                        latency,
                    });
                    if !failure.error.is_retryable() || retry >= settings.max_retries {
                        return Err(failure.error);
                    }
                    let wait = self.backoff(retry, failure.retry_after);
                    tracing::debug!(model = %model.name, retry, ?wait, kind = failure.error.kind(), error = %crate::logging::Sensitive(&failure.error), "retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
            }
        }
    }

    /// Exponential backoff with jitter; an upstream Retry-After wins, capped.
    fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let settings = &self.registry.settings;
        if let Some(after) = retry_after {
            return after.min(Duration::from_secs(settings.retry_after_max_secs));
        }
        let exp = settings
            .backoff_base_ms
            .saturating_mul(1u64 << retry.min(20))
            .min(settings.backoff_max_ms);
        // Full jitter in [exp/2, exp].
        let jitter = fastrand::u64(0..=exp / 2);
        Duration::from_millis(exp - jitter)
    }

    async fn call_once(
        &self,
        model: &ResolvedModel,
        request: &CompletionRequest,
        events: Option<&UnboundedSender<StreamEvent>>,
    ) -> Result<(Accumulated, Option<f64>), AttemptError> {
        let endpoint = &model.endpoint;
        let ctx = ErrorContext {
            provider: &model.provider,
            model: &model.name,
            key: endpoint.key.as_ref().map(|k| k.expose()),
            key_hint: &endpoint.key_hint,
        };
        let adapter = adapter::for_endpoint(endpoint);
        let params = Params::new(request, model);
        let http_request = adapter.request(model, &params, request.stream);
        let client = self
            .clients
            .get(&model.info.connect_timeout)
            .or_else(|| self.clients.values().next())
            .ok_or_else(|| AttemptError::from(ProviderError::Client("no HTTP client".into())))?;
        let mut builder = match self.parsed_url(&http_request.url) {
            Some(url) => client.post(url),
            // Not a URL: reqwest says so, as before.
            None => client.post(&http_request.url),
        }
        // Invariant 4 outbound: a key in a prompt or a file never leaves zend.
        .body(self.secrets.scrub(http_request.body.into_bytes()));
        for (name, value) in &http_request.headers {
            let Ok(mut value) = reqwest::header::HeaderValue::from_str(value) else {
                return Err(ProviderError::Client(format!(
                    "the {name} header has a value HTTP cannot carry; check models.yaml's headers and the variables they name"
                ))
                .into());
            };
            // Keys and configured headers: never printed by Debug, never HPACK-indexed.
            value.set_sensitive(name != "content-type");
            builder = builder.header(name, value);
        }
        let started = Instant::now();
        let response = builder
            .send()
            .await
            .map_err(|e| ctx.transport(&e, started.elapsed()))?;
        let status = response.status();
        // What is needed of the headers is read here, before the body takes
        // the response (no copy of the whole header map per call).
        let headers = response.headers();
        if status.is_redirection() {
            // Only a redirect leaving the base URL's origin gets here (`http::build_client`).
            let to = http::header_str(headers, "location").unwrap_or("nowhere");
            return Err(ctx.redirected(status.as_u16(), to));
        }
        if !status.is_success() {
            let retry_after = http::retry_after(headers);
            let body = response.text().await.unwrap_or_default();
            return Err(ctx.classify(status.as_u16(), &body, retry_after));
        }
        let mut acc = Accumulated {
            request_id: ["x-request-id", "request-id", "x-litellm-call-id"]
                .iter()
                .find_map(|h| http::header_str(headers, h))
                .map(str::to_owned),
            ..Accumulated::default()
        };
        let header_cost = if endpoint.cost_from_upstream {
            http::header_str(headers, "x-litellm-response-cost").and_then(|v| v.parse::<f64>().ok())
        } else {
            None
        };
        let header_id = acc.request_id.clone();
        let is_sse = http::header_str(headers, "content-type")
            .is_some_and(|ct| ct.contains("text/event-stream"));
        if request.stream && is_sse {
            let mut parser = SseParser::default();
            let mut body = response.bytes_stream();
            let mut done = false;
            // `[DONE]` (OpenAI wire) or a finish reason (every wire) ends an answer;
            // a stream that just stops before either was cut off.
            let mut saw_done = false;
            while !done {
                let events_in = match body.next().await {
                    Some(Ok(chunk)) => parser.feed(&chunk),
                    Some(Err(e)) => {
                        let mut failure = ctx.transport(&e, started.elapsed());
                        failure.usage = acc.usage;
                        return Err(failure);
                    }
                    None => {
                        done = true;
                        parser.finish().into_iter().collect()
                    }
                };
                // The text of one chunk's events goes to `events` as one
                // delta: each send wakes the listener's task.
                let mut chunk_text = String::new();
                for event in events_in {
                    if event.data.trim() == "[DONE]" {
                        done = true;
                        saw_done = true;
                        break;
                    }
                    if event.data.trim().is_empty() {
                        continue;
                    }
                    let kind = event.event.as_deref();
                    let parsed = match adapter.parse_event_text(kind, &event.data, &mut acc) {
                        Some(parsed) => parsed,
                        None => {
                            let data: serde_json::Value = serde_json::from_str(&event.data)
                                .map_err(|e| ctx.invalid(format!("bad SSE data: {e}")))?;
                            adapter
                                .parse_event(kind, &data, &mut acc)
                                .map(|delta| delta.map(Cow::Owned))
                        }
                    };
                    match parsed {
                        Ok(Some(delta)) => {
                            if events.is_some() {
                                chunk_text.push_str(&delta);
                            }
                            acc.text.push_str(&delta);
                        }
                        Ok(None) => {}
                        Err(upstream) => {
                            let mut failure =
                                ctx.classify(upstream.status, &upstream.message, None);
                            failure.usage = acc.usage;
                            return Err(failure);
                        }
                    }
                }
                if let Some(tx) = events
                    && !chunk_text.is_empty()
                {
                    let _ = tx.send(StreamEvent::Delta(chunk_text));
                }
            }
            if !saw_done && acc.finish_reason.is_none() {
                let mut failure = AttemptError::from(ProviderError::Connection {
                    provider: model.provider.clone(),
                    model: model.name.clone(),
                    message: "the answer stream ended before the model finished".to_owned(),
                });
                failure.usage = acc.usage;
                return Err(failure);
            }
        } else {
            let bytes = response
                .bytes()
                .await
                .map_err(|e| ctx.transport(&e, started.elapsed()))?;
            let body: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ctx.invalid(format!("bad JSON body: {e}")))?;
            adapter
                .parse_body(&body, &mut acc)
                .map_err(|upstream| ctx.classify(upstream.status, &upstream.message, None))?;
            if let Some(tx) = events
                && !acc.text.is_empty()
            {
                let _ = tx.send(StreamEvent::Delta(acc.text.clone()));
            }
        }
        // Prefer the upstream's id header; fall back to the id in the body.
        if header_id.is_some() {
            acc.request_id = header_id;
        }
        let upstream_cost = header_cost.or(if endpoint.cost_from_upstream {
            acc.upstream_cost
        } else {
            None
        });
        Ok((acc, upstream_cost))
    }

    fn finish(
        &self,
        model: &ResolvedModel,
        acc: Accumulated,
        upstream_cost: Option<f64>,
        latency: Duration,
    ) -> Completion {
        let usage = acc.usage.unwrap_or_default();
        let cost = match upstream_cost {
            Some(usd) => Cost {
                usd: Some(usd),
                source: CostSource::Upstream,
            },
            None if acc.usage.is_some() => cost::compute(model.info.prices.as_ref(), &usage),
            None => Cost::UNKNOWN,
        };
        Completion {
            text: acc.text,
            finish_reason: acc.finish_reason.unwrap_or(FinishReason::Unknown),
            usage,
            cost,
            model: model.name.clone(),
            provider: model.provider.clone(),
            upstream_model: model.upstream_model.clone(),
            latency,
            request_id: acc.request_id,
            attempts: Vec::new(),
        }
    }

    fn cooling(&self, model: &str) -> Option<Duration> {
        let now = Instant::now();
        let map = crate::util::lock(&self.cooldowns);
        map.get(model)
            .and_then(|s| s.until)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    fn record(&self, model: &str, ok: bool) {
        let settings = &self.registry.settings;
        let mut map = crate::util::lock(&self.cooldowns);
        if ok {
            map.remove(model);
            return;
        }
        let state = map.entry(model.to_owned()).or_default();
        state.failures += 1;
        if settings.cooldown_failures > 0 && state.failures >= settings.cooldown_failures {
            state.failures = 0;
            state.until = Some(Instant::now() + Duration::from_secs(settings.cooldown_secs));
            tracing::warn!(
                model,
                secs = settings.cooldown_secs,
                "model cooled down after repeated failures"
            );
        }
    }
}

/// OpenAI's `GET /models` answer, as far as zen reads it.
#[derive(serde::Deserialize)]
struct ModelList {
    data: Vec<ListedId>,
}

#[derive(serde::Deserialize)]
struct ListedId {
    id: String,
}
