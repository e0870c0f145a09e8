//! `zend status` and `zend stop`: the running daemon's snapshot, and asking it
//! to stop. Neither starts a daemon: `status` of a stopped zend exits 3,
//! `stop` of a stopped zend succeeds.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use zen_proto::paths::Socket;
use zen_proto::v1::{ShutdownRequest, StatusReply, StatusRequest};

use crate::client::{self, ClientError};
use crate::util::human_duration;

use super::{EXIT_NOT_RUNNING, process_alive, truncate};

pub async fn status(
    socket: &Socket,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<u8, ClientError> {
    let mut client = match client::connect(socket).await {
        Ok(client) => client,
        Err(ClientError::NotRunning(path)) => {
            if as_json {
                let _ = writeln!(out, "{}", json!({ "running": false, "socket_path": path }));
            } else {
                let _ = writeln!(out, "zend is not running (socket {})", path.display());
            }
            return Ok(EXIT_NOT_RUNNING);
        }
        Err(e) => return Err(e),
    };
    let reply = client
        .status(StatusRequest {})
        .await
        .map_err(|s| ClientError::Rpc(s.message().to_owned()))?
        .into_inner();
    if as_json {
        let _ = writeln!(out, "{}", status_json(&reply));
    } else {
        let _ = write!(out, "{}", status_text(&reply));
    }
    Ok(0)
}

pub fn status_json(reply: &StatusReply) -> serde_json::Value {
    let paths = reply.paths.clone().unwrap_or_default();
    let ledger = serde_json::from_str::<serde_json::Value>(&reply.ledger_json)
        .unwrap_or(serde_json::Value::Null);
    json!({
        "running": true,
        "daemon_version": reply.daemon_version,
        "pid": reply.pid,
        "uptime_ms": reply.uptime_ms,
        "auto_started": reply.auto_started,
        "socket_path": reply.socket_path,
        "paths": {
            "config_dir": paths.config_dir,
            "data_dir": paths.data_dir,
            "state_dir": paths.state_dir,
            "runtime_dir": paths.runtime_dir,
            "log_file": paths.log_file,
        },
        "in_flight_calls": reply.in_flight_calls,
        "config": {
            "loads": reply.config_loads,
            "error": (!reply.config_error.is_empty()).then_some(&reply.config_error),
        },
        "sessions": reply.sessions.iter().map(|s| json!({
            "id": s.id,
            "client_name": s.client_name,
            "client_version": s.client_version,
            "shim_version": s.shim_version,
            "shim_pid": s.shim_pid,
            "client_pid": s.client_pid,
            "cwd": s.cwd,
            "age_ms": s.age_ms,
            "in_flight_calls": s.in_flight_calls,
        })).collect::<Vec<_>>(),
        "ledger": ledger,
        "version_skew": version_skew(reply).iter().map(|(id, version)| json!({
            "session": id,
            "shim_version": version,
        })).collect::<Vec<_>>(),
    })
}

/// Sessions whose shim is another version than zend: `(session id, shim version)`.
fn version_skew(reply: &StatusReply) -> Vec<(&str, &str)> {
    reply
        .sessions
        .iter()
        .filter(|s| !s.shim_version.is_empty() && s.shim_version != reply.daemon_version)
        .map(|s| (s.id.as_str(), s.shim_version.as_str()))
        .collect()
}

pub fn status_text(reply: &StatusReply) -> String {
    use std::fmt::Write;
    let paths = reply.paths.clone().unwrap_or_default();
    let mut text = String::new();
    let started_by = if reply.auto_started {
        "auto-started"
    } else {
        "started by hand or a service"
    };
    let _ = writeln!(
        text,
        "zend {}  pid {}  up {}  ({started_by})",
        reply.daemon_version,
        reply.pid,
        human_duration(Duration::from_millis(reply.uptime_ms))
    );
    let _ = writeln!(text, "socket    {}", reply.socket_path);
    let _ = writeln!(text, "config    {}", paths.config_dir);
    if !reply.config_error.is_empty() {
        let _ = writeln!(
            text,
            "          NOT RELOADED: {}; the previous configuration stays in force",
            reply.config_error
        );
    }
    let _ = writeln!(text, "data      {}", paths.data_dir);
    let _ = writeln!(text, "log       {}", paths.log_file);
    let _ = writeln!(
        text,
        "sessions  {} live, {} calls in flight",
        reply.sessions.len(),
        reply.in_flight_calls
    );
    if !reply.sessions.is_empty() {
        let _ = writeln!(
            text,
            "  {:<6} {:<24} {:>8} {:>8} {:>5}  CWD",
            "ID", "CLIENT", "PID", "AGE", "CALLS"
        );
        for s in &reply.sessions {
            let client = match (s.client_name.as_str(), s.client_version.as_str()) {
                ("", _) => "(initializing)".to_owned(),
                (name, "") => name.to_owned(),
                (name, version) => format!("{name} {version}"),
            };
            let _ = writeln!(
                text,
                "  {:<6} {:<24} {:>8} {:>8} {:>5}  {}",
                s.id,
                truncate(&client, 24),
                s.client_pid,
                human_duration(Duration::from_millis(s.age_ms)),
                s.in_flight_calls,
                s.cwd
            );
        }
    }
    let skew = version_skew(reply);
    if let Some((_, version)) = skew.first() {
        let advice = if reply.auto_started {
            "zend restarts itself for a newer shim once older sessions end"
        } else {
            "restart zend's service to match"
        };
        let _ = writeln!(
            text,
            "skew      {} session(s) use zen-shim {version}, zend is {}; {advice}",
            skew.len(),
            reply.daemon_version
        );
    }
    if let Ok(ledger) = serde_json::from_str::<serde_json::Value>(&reply.ledger_json)
        && let Some(summary) = ledger.get("summary").and_then(|s| s.as_str())
    {
        let _ = writeln!(text, "{summary}");
    }
    text
}

/// Asks zend to stop and waits until its process is gone.
pub async fn stop(
    socket: &Socket,
    deadline: Duration,
    out: &mut dyn Write,
) -> Result<u8, ClientError> {
    let mut client = match client::connect(socket).await {
        Ok(client) => client,
        Err(ClientError::NotRunning(path)) => {
            let _ = writeln!(out, "zend is not running (socket {})", path.display());
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let pid = client
        .shutdown(ShutdownRequest {
            deadline_ms: deadline.as_millis() as u64,
        })
        .await
        .map_err(|s| ClientError::Rpc(s.message().to_owned()))?
        .into_inner()
        .pid;
    let give_up = tokio::time::Instant::now() + deadline + Duration::from_secs(5);
    while process_alive(pid) {
        if tokio::time::Instant::now() > give_up {
            return Err(ClientError::Rpc(format!(
                "zend (pid {pid}) did not exit in time; it may still be finishing calls, or kill it with `kill {pid}`"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = writeln!(out, "stopped zend (pid {pid})");
    Ok(0)
}
