//! The gRPC side of zend: the `zen.v1.Zend` service over a Unix socket.
//!
//! **Boundary:** with `mcp`, the only module that touches tonic types. Each
//! `Session` stream becomes one MCP session (see `mcp`); `Status` and `Shutdown`
//! serve `zend status` and `zend stop`; `Query` serves the other read commands
//! (`query.rs` answers, this module maps its errors to gRPC codes). Connections from other users are
//! refused before any byte is read (peer credentials).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use zen_proto::v1::zend_server::Zend;
use zen_proto::v1::{
    Frame, Paths, QueryReply, QueryRequest, SessionInfo, ShutdownReply, ShutdownRequest,
    StatusReply, StatusRequest,
};

pub mod accept;
pub mod query;

use crate::daemon::Daemon;
use crate::mcp::{self, McpServer, transport::FrameTransport};
use crate::sessions::SessionMeta;
use crate::upgrade::Upgrade;

/// Frames queued towards one shim; beyond this the session's writer waits.
const OUTBOUND_CAPACITY: usize = 64;

pub struct ZendService {
    daemon: Arc<Daemon>,
    upgrade: Arc<Upgrade>,
}

impl ZendService {
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Self {
            daemon,
            upgrade: Arc::default(),
        }
    }
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

#[tonic::async_trait]
impl Zend for ZendService {
    type SessionStream = FrameStream;

    async fn session(
        &self,
        request: Request<Streaming<Frame>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        if self.daemon.shutdown.is_cancelled() {
            return Err(Status::unavailable(
                "zend is shutting down; retry in a moment",
            ));
        }
        let mut meta = session_meta(request.metadata());
        meta.keys_missing = keys_missing(&self.daemon, request.metadata());
        self.upgrade.consider(&self.daemon, &meta.shim_version);
        let missing_header = (!meta.keys_missing.is_empty())
            .then(|| meta.keys_missing.join(","))
            .and_then(|names| tonic::metadata::MetadataValue::try_from(names).ok());
        let inbound = request.into_inner();
        let (outbound, outbound_rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let daemon = Arc::clone(&self.daemon);
        let upgrade = Arc::clone(&self.upgrade);
        tokio::spawn(async move {
            let max = daemon.settings().server.max_sessions;
            let Some(guard) = daemon.sessions.try_open(meta, max) else {
                tracing::warn!(max, "refused a session: max_sessions are live");
                let _ = outbound
                    .send(Err(session_end(
                        Status::resource_exhausted(crate::sessions::too_many(max)),
                        zen_proto::meta::end::REFUSED,
                    )))
                    .await;
                return;
            };
            let session = Arc::clone(&guard.session);
            // Routine per-session lines are debug: a session costs one INFO
            // line, mcp's "initialize" (which client, which version).
            tracing::debug!(session = %session.id, shim_pid = session.meta.shim_pid, client_pid = session.meta.client_pid, "session opened");
            let server = McpServer::new(Arc::clone(&daemon), Arc::clone(&session));
            let transport = FrameTransport::new(inbound, outbound.clone());
            let shutdown = daemon.shutdown.clone();
            // The session's own stop, not zend's: on shutdown its running calls get the
            // deadline before it is cancelled.
            let stop = tokio_util::sync::CancellationToken::new();
            // Boxed: rmcp's serve future is tens of KiB, and inline in this task it was
            // copied three times per session by the spawn (into the task, into its cell, and
            // its stage overwritten when done): ~100 KiB of memcpy, a third of a session's cost.
            let mut serve = Box::pin(mcp::serve(server, transport, stop.clone()));
            let ended = tokio::select! {
                ended = &mut serve => ended,
                () = wait_for_shutdown(&daemon, &session) => {
                    // Calls still running are cancelled (they record what they spent);
                    // rmcp sends every call's answer before the session ends.
                    stop.cancel();
                    serve.await
                }
            };
            match ended {
                // However the session ended (perhaps mid-initialize), a
                // shutdown is what the shim must hear about.
                _ if shutdown.is_cancelled() && upgrade.is_restarting() => {
                    let _ = outbound
                        .send(Err(session_end(
                            Status::unavailable("zend is restarting to match a newer zen-shim"),
                            zen_proto::meta::end::RESTART,
                        )))
                        .await;
                }
                _ if shutdown.is_cancelled() => {
                    let _ = outbound
                        .send(Err(session_end(
                            Status::unavailable(
                                "zend was stopped; your MCP client can restart the zen server",
                            ),
                            zen_proto::meta::end::STOPPED,
                        )))
                        .await;
                }
                Ok(()) => {}
                Err(e) => {
                    // rmcp's error quotes the message it got instead (a prompt, maybe).
                    tracing::info!(session = %session.id, error = %crate::logging::Sensitive(&e), "session ended before initialize");
                    let _ = outbound
                        .send(Err(session_end(
                            Status::invalid_argument(format!(
                                "{e}; the first message must be MCP initialize"
                            )),
                            zen_proto::meta::end::REFUSED,
                        )))
                        .await;
                }
            }
            tracing::debug!(session = %session.id, "session closed");
            drop(guard);
            if daemon.sessions.is_empty() {
                crate::malloc::trim_when_idle();
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(outbound_rx);
        let mut response = Response::new(Box::pin(stream) as Self::SessionStream);
        if let Some(names) = missing_header {
            response
                .metadata_mut()
                .insert(zen_proto::meta::KEYS_MISSING, names);
        }
        Ok(response)
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        Ok(Response::new(status_reply(&self.daemon)))
    }

    async fn shutdown(
        &self,
        request: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownReply>, Status> {
        let deadline_ms = request.into_inner().deadline_ms;
        tracing::info!(deadline_ms, "shutdown requested");
        if deadline_ms > 0 {
            self.daemon
                .set_shutdown_deadline(std::time::Duration::from_millis(deadline_ms));
        }
        self.daemon.shutdown.cancel();
        Ok(Response::new(ShutdownReply {
            pid: std::process::id(),
        }))
    }

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<QueryReply>, Status> {
        use query::QueryError;
        let request = request.into_inner();
        let args = if request.args_json.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&request.args_json).map_err(|e| {
                Status::invalid_argument(format!("query arguments are not JSON: {e}"))
            })?
        };
        let answer = query::answer(&self.daemon, &request.command, args)
            .await
            .map_err(|e| match e {
                QueryError::UnknownCommand(_) | QueryError::InvalidArguments(_) => {
                    Status::invalid_argument(e.to_string())
                }
                QueryError::NotFound(_) => Status::not_found(e.to_string()),
                QueryError::Failed(_) => Status::internal(e.to_string()),
            })?;
        Ok(Response::new(QueryReply {
            json: answer.json.to_string(),
            text: answer.text,
        }))
    }
}

/// Marks the status that ends a session with why (see `zen_proto::meta::END`).
fn session_end(mut status: Status, why: &'static str) -> Status {
    status.metadata_mut().insert(
        zen_proto::meta::END,
        tonic::metadata::MetadataValue::from_static(why),
    );
    status
}

/// Resolves when zend is shutting down and this session has no call left
/// running (or the shutdown deadline has passed).
async fn wait_for_shutdown(daemon: &Daemon, session: &crate::sessions::Session) {
    daemon.shutdown.cancelled().await;
    let deadline = tokio::time::Instant::now() + daemon.shutdown_deadline();
    while session.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn session_meta(metadata: &tonic::metadata::MetadataMap) -> SessionMeta {
    use zen_proto::meta;
    let text = |key: &str| {
        metadata
            .get(key)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let cwd = metadata
        .get_bin(meta::CWD_BIN)
        .and_then(|v| v.to_bytes().ok())
        .map(|bytes| {
            use std::os::unix::ffi::OsStrExt;
            std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))
        })
        .unwrap_or_default();
    SessionMeta {
        shim_version: text(meta::SHIM_VERSION),
        shim_pid: text(meta::SHIM_PID).parse().unwrap_or(0),
        client_pid: text(meta::CLIENT_PID).parse().unwrap_or(0),
        cwd,
        ..SessionMeta::default()
    }
}

/// Those of the key variables the shim says its environment has that zend
/// does not: keys a client's config meant for zen, which an auto-started zend
/// no longer inherits. zend's environment is read only when there are some.
fn keys_missing(daemon: &Daemon, metadata: &tonic::metadata::MetadataMap) -> Vec<String> {
    let Some(names) = metadata
        .get(zen_proto::meta::CLIENT_KEYS)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return Vec::new();
    };
    let env = crate::providers::Env::load(Some(&daemon.locations.config_dir));
    names
        .split(',')
        .map(str::trim)
        .filter(|name| zen_proto::meta::is_key_variable(name) && env.get(name).is_none())
        .take(64)
        .map(str::to_owned)
        .collect()
}

pub fn status_reply(daemon: &Daemon) -> StatusReply {
    let sessions = daemon
        .sessions
        .snapshot()
        .iter()
        .map(|s| {
            let (client_name, client_version) = s.client().unwrap_or_default();
            SessionInfo {
                id: s.id.clone(),
                shim_version: s.meta.shim_version.clone(),
                shim_pid: s.meta.shim_pid,
                client_pid: s.meta.client_pid,
                cwd: s.meta.cwd.to_string_lossy().into_owned(),
                client_name,
                client_version,
                age_ms: s.opened.elapsed().as_millis() as u64,
                in_flight_calls: s.in_flight(),
                keys_missing: s.meta.keys_missing.clone(),
            }
        })
        .collect();
    let locations = &daemon.locations;
    let reload = daemon.reload_state();
    StatusReply {
        daemon_version: zen_proto::VERSION.to_owned(),
        pid: std::process::id(),
        uptime_ms: daemon.started.elapsed().as_millis() as u64,
        socket_path: daemon.socket_path.to_string_lossy().into_owned(),
        sessions,
        auto_started: daemon.auto_started,
        paths: Some(Paths {
            config_dir: locations.config_dir.to_string_lossy().into_owned(),
            data_dir: locations.data_dir.to_string_lossy().into_owned(),
            state_dir: locations.state_dir.to_string_lossy().into_owned(),
            runtime_dir: locations.runtime_dir.to_string_lossy().into_owned(),
            log_file: locations.log_path().to_string_lossy().into_owned(),
        }),
        in_flight_calls: daemon.sessions.in_flight(),
        ledger_json: ledger_json(daemon),
        config_error: reload.error.unwrap_or_default(),
        config_loads: reload.loads,
    }
}

/// Whether a connection may come in: only `owner`'s uid gets in (see [`accept`]).
fn owner_may_connect(check: Result<zen_proto::peer::Peer, zen_proto::peer::PeerError>) -> bool {
    use zen_proto::peer::PeerError;
    match check {
        Ok(_) => true,
        Err(PeerError::OtherUser(peer)) => {
            tracing::warn!(
                peer_uid = peer.uid,
                peer_pid = ?peer.pid,
                "refused a connection from another user"
            );
            false
        }
        Err(PeerError::Unknown(e)) => {
            tracing::warn!(error = %e, "refused a connection whose peer cannot be identified");
            false
        }
    }
}

/// The ledger totals for `Status`, as JSON with a pre-rendered `summary` for the table.
fn ledger_json(daemon: &Daemon) -> String {
    use crate::time::Clock;
    match daemon.store.ledger().totals(crate::time::SystemClock.now()) {
        Ok(totals) => {
            let mut value = serde_json::to_value(&totals).unwrap_or(serde_json::Value::Null);
            if let Some(object) = value.as_object_mut() {
                object.insert(
                    "summary".into(),
                    serde_json::Value::String(totals.render_text()),
                );
            }
            value.to_string()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read ledger totals");
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_may_connect() {
        use zen_proto::peer::{Peer, PeerError};
        let peer = |uid| Peer { uid, pid: Some(1) };
        assert!(owner_may_connect(Ok(peer(1000))));
        assert!(!owner_may_connect(Err(PeerError::OtherUser(peer(0)))));
        assert!(!owner_may_connect(Err(PeerError::Unknown(
            std::io::Error::other("no credentials")
        ))));
    }

    #[test]
    fn the_end_of_a_session_says_why() {
        let status = session_end(Status::unavailable("x"), zen_proto::meta::end::STOPPED);
        assert_eq!(
            status
                .metadata()
                .get(zen_proto::meta::END)
                .and_then(|v| v.to_str().ok()),
            Some("stopped")
        );
    }
}
