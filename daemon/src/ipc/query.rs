//! The `Query` RPC: read-only questions the command line asks the daemon,
//! answered from what only the daemon holds (the store, the keys it started
//! with). [`answer`] runs in zend (`ipc` maps its errors to gRPC codes); the
//! CLI asks through `cli::query::request`.
//!
//! Commands (arguments are a JSON object; see `QueryRequest` in `zen.proto`):
//! - [`MODELS`]: `{}` → `ModelListing` / its `render_text()`.
//! - [`THREADS_LIST`]: a `ThreadFilter` (`cwd`, `tool`, `model`, `text`,
//!   `limit`) → `[ThreadSummary]` / `memory::render::render_list`.
//! - [`THREADS_GET`]: `{"id": "<uuid>"}` → `Thread` / `render_thread`.
//! - [`DOCTOR`]: `{"live": bool}` → `providers::checks::ProviderChecks` as the daemon sees
//!   them (keys by variable name, never values; with `live`, one 1-token call
//!   per configured provider).
//! - [`DASHBOARD`]: `{}` → `{"url": ...}`, a one-time login link to the
//!   dashboard (its loopback listener bound first if zend has none).
//! - [`RELOAD`]: `{}` → `{"ok", "tools_changed", "loads", "error"}` once the
//!   configuration was read again (and swapped in when it loaded): the one
//!   command that changes something.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::memory::{ThreadError, ThreadFilter, ThreadId, render};
use crate::time::{Clock, SystemClock};

pub const MODELS: &str = "models";
pub const THREADS_LIST: &str = "threads.list";
pub const THREADS_GET: &str = "threads.get";
pub const DOCTOR: &str = "doctor";
pub const DASHBOARD: &str = "dashboard";
pub const RELOAD: &str = "reload";

/// One answer, in both renderings.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub json: Value,
    /// Plain text, no colour.
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("zend does not know the query `{0}` (is it older than this zend binary?)")]
    UnknownCommand(String),
    #[error("invalid query arguments: {0}")]
    InvalidArguments(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetArgs {
    id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DoctorArgs {
    live: bool,
}

fn parse<T: serde::de::DeserializeOwned>(args: Value) -> Result<T, QueryError> {
    let args = if args.is_null() { json!({}) } else { args };
    serde_json::from_value(args).map_err(|e| QueryError::InvalidArguments(e.to_string()))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, QueryError> {
    serde_json::to_value(value).map_err(|e| QueryError::Failed(e.to_string()))
}

/// Answers one query inside zend.
pub async fn answer(
    daemon: &Arc<Daemon>,
    command: &str,
    args: Value,
) -> Result<Answer, QueryError> {
    match command {
        MODELS => {
            let listing = daemon.settings().providers.listing();
            Ok(Answer {
                json: to_json(&listing)?,
                text: listing.render_text(),
            })
        }
        THREADS_LIST => {
            let mut filter: ThreadFilter = parse(args)?;
            filter.limit = filter.limit.min(1000);
            let found = daemon
                .store
                .threads()
                .list(&filter)
                .map_err(|e| QueryError::Failed(e.to_string()))?;
            Ok(Answer {
                json: to_json(&found)?,
                text: render::render_list(&found, SystemClock.now()),
            })
        }
        THREADS_GET => {
            let args: GetArgs = parse(args)?;
            let id: ThreadId = args
                .id
                .trim()
                .parse()
                .map_err(|e: ThreadError| QueryError::InvalidArguments(e.to_string()))?;
            let thread = daemon.store.threads().get(&id).map_err(|e| match e {
                ThreadError::Store(e) => QueryError::Failed(e.to_string()),
                other => QueryError::NotFound(other.to_string()),
            })?;
            Ok(Answer {
                json: to_json(&thread)?,
                text: render::render_thread(&thread),
            })
        }
        DOCTOR => {
            let args: DoctorArgs = parse(args)?;
            let settings = daemon.settings();
            // What `.env` holds now, beside what the providers were built with.
            let env = crate::providers::Env::load(Some(&daemon.locations.config_dir));
            let mut checks = crate::providers::checks::provider_checks(
                &daemon.locations.config_dir,
                &settings.env,
                &settings.providers,
                args.live,
            )
            .await;
            checks.compare_with_files(&settings.env, &env, daemon.reload_state().error.as_deref());
            Ok(Answer {
                json: to_json(&checks)?,
                text: String::new(),
            })
        }
        DASHBOARD => {
            let _: serde_json::Map<String, Value> = parse(args)?;
            let url = crate::dashboard::login_url(daemon)
                .await
                .map_err(|e| QueryError::Failed(e.to_string()))?;
            Ok(Answer {
                json: json!({ "url": url }),
                text: url,
            })
        }
        RELOAD => {
            let _: Empty = parse(args)?;
            Ok(match daemon.reload("zend reload").await {
                Ok(reloaded) => Answer {
                    json: json!({
                        "ok": true,
                        "tools_changed": reloaded.tools_changed,
                        "loads": reloaded.loads,
                    }),
                    text: if reloaded.tools_changed {
                        "configuration reloaded; the tools changed and every session was told"
                            .into()
                    } else {
                        "configuration reloaded".into()
                    },
                },
                Err(error) => Answer {
                    json: json!({ "ok": false, "error": error }),
                    text: format!(
                        "configuration not reloaded, the previous one stays in force: {error}"
                    ),
                },
            })
        }
        other => Err(QueryError::UnknownCommand(other.to_owned())),
    }
}
