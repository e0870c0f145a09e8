//! `zend doctor`'s provider half: which providers are configured, which key variables are set
//! (names only, never values), and with `live` one 1-token call per configured provider. zend
//! answers it for the CLI (the `Query` RPC), since its environment is the one that matters.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    AttemptOutcome, Category, CompletionRequest, ContentPart, Env, KeySource, Message,
    ModelsConfig, Providers, Role,
};

/// How long one live call may take, retries included.
const LIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The provider half of the report (what the daemon answers to `doctor`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderChecks {
    pub providers: Vec<ProviderCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderCheck {
    pub name: String,
    /// Has an endpoint and, when it needs one, a key.
    pub configured: bool,
    /// Why not, and what to set.
    #[serde(default)]
    pub reason: Option<String>,
    /// Variables that may hold the key, first set one wins.
    pub key_vars: Vec<String>,
    /// Those of `key_vars` that are set. Names only: values are never reported.
    pub key_vars_set: Vec<String>,
    /// Where the key in use comes from: `.env` or `environment` (zend's own).
    #[serde(default)]
    pub key_source: Option<String>,
    /// `.env` says otherwise than what zend has loaded (a key added, changed or
    /// removed since): what and why it is not in force yet.
    #[serde(default)]
    pub pending: Option<String>,
    /// With `--live`: the result of a 1-token call.
    #[serde(default)]
    pub live: Option<LiveCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveCheck {
    /// The model called (`None` when the provider has no model to call).
    pub model: Option<String>,
    pub ok: bool,
    /// `ProviderError::kind()` of the failure (`auth`, `connection`, ...).
    #[serde(default)]
    pub error_kind: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// [`ProviderCheck::key_source`] of a key read from zen's `.env`.
pub const DOTENV: &str = ".env";
/// [`ProviderCheck::key_source`] of a key from zend's own environment.
pub const ENVIRONMENT: &str = "environment";

impl ProviderChecks {
    /// Marks the providers whose key variables in `files` (the environment
    /// with `.env` as it is now) differ from what the checks were made with
    /// (the environment zend loaded): `reload_error` is why the last reload
    /// did not take them, if it failed.
    pub fn compare_with_files(&mut self, loaded: &Env, files: &Env, reload_error: Option<&str>) {
        let not_yet = match reload_error {
            Some(error) => format!("the last reload failed: {error}"),
            None => "zend reloads it in a moment, or run `zend reload`".to_owned(),
        };
        for check in &mut self.providers {
            let now: Vec<&String> = check
                .key_vars
                .iter()
                .filter(|v| files.get(v).is_some())
                .collect();
            let pending = if !check.configured && !now.is_empty() {
                Some(format!("{} set in .env but not loaded yet", list(&now)))
            } else if check.key_source.as_deref() == Some(DOTENV) && now.is_empty() {
                Some(format!(
                    "{} removed from .env but still in use",
                    list(&check.key_vars_set.iter().collect::<Vec<_>>())
                ))
            } else if let Some(used) = check.key_vars_set.first()
                && check.key_source.as_deref() == Some(DOTENV)
                && loaded.get(used) != files.get(used)
            {
                // Compared here, inside zend; neither value is reported.
                Some(format!(
                    "{used} changed in .env but the old key is still in use"
                ))
            } else {
                None
            };
            check.pending = pending.map(|what| format!("{what}: {not_yet}"));
        }
    }
}

fn list(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The provider checks as seen with `env` (names of set key variables) and
/// `providers` (what is configured); with `live`, a 1-token call per configured
/// provider, all at once.
pub async fn provider_checks(
    config_dir: &Path,
    env: &Env,
    providers: &Providers,
    live: bool,
) -> ProviderChecks {
    let table = ModelsConfig::load(Some(config_dir))
        .or_else(|_| ModelsConfig::load(None))
        .map(|c| c.providers)
        .unwrap_or_default();
    let listing = providers.listing();
    let mut checks: Vec<ProviderCheck> = listing
        .providers
        .iter()
        .map(|p| {
            let key_vars = table
                .get(&p.name)
                .map(|row| row.key_env.clone())
                .unwrap_or_default();
            let key_vars_set: Vec<String> = key_vars
                .iter()
                .filter(|v| env.get(v).is_some())
                .cloned()
                .collect();
            let key_source = key_vars_set
                .first()
                .and_then(|v| env.source(v))
                .map(|source| match source {
                    KeySource::DotEnv => DOTENV.to_owned(),
                    KeySource::Process => ENVIRONMENT.to_owned(),
                });
            ProviderCheck {
                name: p.name.clone(),
                configured: p.configured,
                reason: p.reason.clone(),
                key_vars,
                key_vars_set,
                key_source,
                pending: None,
                live: None,
            }
        })
        .collect();
    // Configured providers first: they are what the user is checking.
    checks.sort_by_key(|c| !c.configured);
    if live {
        let secrets: Vec<String> = checks
            .iter()
            .flat_map(|c| c.key_vars_set.iter())
            .filter_map(|v| env.get(v).map(str::to_owned))
            .collect();
        let calls = checks.iter().map(|check| async {
            if check.configured {
                Some(live_call(providers, &check.name, &secrets).await)
            } else {
                None
            }
        });
        let results = futures::future::join_all(calls).await;
        for (check, result) in checks.iter_mut().zip(results) {
            check.live = result;
        }
    }
    ProviderChecks { providers: checks }
}

/// One cheap call to `provider`: its fast (else cheapest) available model, one output token,
/// no fallback to another provider counted as success.
async fn live_call(providers: &Providers, provider: &str, secrets: &[String]) -> LiveCheck {
    let mut models: Vec<_> = providers
        .available()
        .into_iter()
        .filter(|m| m.provider == provider)
        .collect();
    models.sort_by(|a, b| {
        let price = |m: &super::ResolvedModel| {
            m.info
                .prices
                .as_ref()
                .map_or(f64::MAX, |p| p.input_per_million())
        };
        (a.info.category != Category::Fast)
            .cmp(&(b.info.category != Category::Fast))
            .then(price(a).total_cmp(&price(b)))
    });
    let Some(model) = models.into_iter().next() else {
        return LiveCheck {
            model: None,
            ok: false,
            error_kind: Some("no_model".into()),
            error: Some(format!(
                "no model of {provider} is configured or allowed; name one in models.yaml"
            )),
            latency_ms: 0,
        };
    };
    let mut request = CompletionRequest::new(
        model.name.clone(),
        vec![Message {
            role: Role::User,
            content: vec![ContentPart::Text {
                text: "Reply with the single word OK.".into(),
            }],
        }],
    );
    request.max_output_tokens = Some(1);
    let started = std::time::Instant::now();
    let outcome =
        tokio::time::timeout(LIVE_TIMEOUT, providers.complete_detailed(request, None)).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let scrub = |text: String| {
        secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(text, |text, secret| text.replace(secret.as_str(), "***"))
    };
    let failed = |kind: &str, message: String| LiveCheck {
        model: Some(model.name.clone()),
        ok: false,
        error_kind: Some(kind.to_owned()),
        error: Some(scrub(message)),
        latency_ms,
    };
    match outcome {
        Err(_) => failed(
            "timeout",
            format!("no answer within {}s", LIVE_TIMEOUT.as_secs()),
        ),
        Ok(Err(failure)) => failed(failure.error.kind(), failure.error.to_string()),
        Ok(Ok(completion)) if completion.provider != provider => {
            // A fallback answered: this provider itself failed.
            match completion
                .attempts
                .iter()
                .find(|a| a.provider == provider)
                .map(|a| &a.outcome)
            {
                Some(AttemptOutcome::Failed { kind, message }) => failed(kind, message.clone()),
                _ => failed(
                    "fallback",
                    format!("answered by {} instead", completion.model),
                ),
            }
        }
        Ok(Ok(_)) => LiveCheck {
            model: Some(model.name.clone()),
            ok: true,
            error_kind: None,
            error: None,
            latency_ms,
        },
    }
}
