//! MCP over streamable HTTP (`zend serve --http 127.0.0.1:PORT`), off by default.
//!
//! For clients that connect by URL instead of launching zen-shim. The same
//! [`McpServer`] handler serves it, one `sessions::Session` per HTTP MCP
//! session (marked `SessionTransport::Http`), through rmcp's
//! `StreamableHttpService` at `/mcp`.
//!
//! A local HTTP port is reachable by every local user and by any web page the
//! user's browser opens, so every request passes a [`Gate`] before rmcp sees it:
//! the `Host` must be loopback (DNS rebinding), a browser's `Origin` must be
//! loopback, and `Authorization: Bearer <token>` must carry the token from
//! `<config_dir>/http-token` (0600, generated on first use, shown by
//! `zend http-token`). Other hosts and origins are allowed only when named;
//! a non-loopback listen address only with `--http-allow-remote`. The token
//! never reaches a log: [`Token`] does not print it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use super::McpServer;
use crate::daemon::Daemon;
use crate::sessions::{SessionMeta, SessionTransport};

/// The token file in the config directory.
pub const TOKEN_FILE: &str = "http-token";
/// The path clients connect to.
pub const MCP_PATH: &str = "/mcp";

/// How `zend serve --http` was asked to listen.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// Listen on a non-loopback address and accept any `Host`.
    pub allow_remote: bool,
    /// Browser origins to accept besides loopback ones (`https://app.example:443`).
    pub allowed_origins: Vec<String>,
    /// `Host` names to accept besides loopback ones.
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to serve HTTP on {0}, which is not a loopback address; pass --http-allow-remote to mean it"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the HTTP token file {path}: {source}")]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The bearer token. Its `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The secret itself, for `zend http-token` only.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

pub fn token_path(config_dir: &Path) -> PathBuf {
    config_dir.join(TOKEN_FILE)
}

/// Reads the token, or creates it (32 random bytes, hex, mode 0600); a token
/// file readable by others is tightened to 0600.
pub fn load_or_create_token(config_dir: &Path) -> Result<Token, HttpError> {
    use std::io::{Read, Write};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = token_path(config_dir);
    let error = |source| HttpError::Token {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => {
            let mode = std::fs::metadata(&path)
                .map_err(error)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(error)?;
            }
            return Ok(Token(text.trim().to_owned()));
        }
        Ok(_) => std::fs::remove_file(&path).map_err(error)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(error)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(config_dir).map_err(error)?;
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(error)?;
    writeln!(file, "{token}").map_err(error)?;
    Ok(Token(token))
}

/// Why the gate refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Host,
    Origin,
    Unauthorized,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Self::Host => (
                StatusCode::FORBIDDEN,
                "Host not allowed: zend serves loopback hosts only unless --http-allow-host names it\n",
            )
                .into_response(),
            Self::Origin => (
                StatusCode::FORBIDDEN,
                "Origin not allowed: zend accepts loopback origins only unless --http-allow-origin names it\n",
            )
                .into_response(),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                "missing or wrong bearer token; `zend http-token` shows it\n",
            )
                .into_response(),
        }
    }
}

/// The checks every request passes before rmcp sees it.
#[derive(Debug)]
pub struct Gate {
    token: Token,
    allow_remote: bool,
    allowed_origins: Vec<String>,
    allowed_hosts: Vec<String>,
}

impl Gate {
    pub fn new(token: Token, options: &HttpOptions) -> Self {
        Self {
            token,
            allow_remote: options.allow_remote,
            allowed_origins: options
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allowed_hosts: options
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Host first, then Origin (both reject before the token is looked at,
    /// so a rebinding page learns nothing), then the bearer token.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .ok_or(Rejection::Host)?;
        let host_ok = is_loopback_host(host_name(&host))
            || self
                .allowed_hosts
                .iter()
                .any(|h| *h == host || h == host_name(&host))
            || (self.allow_remote && self.allowed_hosts.is_empty());
        if !host_ok {
            return Err(Rejection::Host);
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin
                .to_str()
                .map_err(|_| Rejection::Origin)?
                .trim_end_matches('/')
                .to_ascii_lowercase();
            let loopback = origin
                .split_once("://")
                .filter(|(scheme, _)| *scheme == "http" || *scheme == "https")
                .is_some_and(|(_, authority)| is_loopback_host(host_name(authority)));
            if !loopback && !self.allowed_origins.contains(&origin) {
                return Err(Rejection::Origin);
            }
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(Rejection::Unauthorized)?;
        if constant_time_eq(presented.as_bytes(), self.token.0.as_bytes()) {
            Ok(())
        } else {
            Err(Rejection::Unauthorized)
        }
    }
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => authority,
    }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn gate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    match gate.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(rejection) => {
            tracing::info!(?rejection, method = %request.method(), "refused an HTTP request");
            rejection.into_response()
        }
    }
}

/// Binds the HTTP listener, refusing a non-loopback address unless allowed.
pub async fn bind(options: &HttpOptions) -> Result<tokio::net::TcpListener, HttpError> {
    if !options.addr.ip().is_loopback() && !options.allow_remote {
        return Err(HttpError::NotLoopback(options.addr));
    }
    tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: options.addr,
            source,
        })
}

/// Serves MCP at `/mcp` on `listener` until zend shuts down.
pub async fn serve(
    listener: tokio::net::TcpListener,
    daemon: Arc<Daemon>,
    gate_checks: Gate,
) -> Result<(), HttpError> {
    let sessions_daemon = Arc::clone(&daemon);
    let service = StreamableHttpService::new(
        move || {
            let listed = sessions_daemon.sessions.open_owned(SessionMeta {
                transport: SessionTransport::Http,
                ..SessionMeta::default()
            });
            tracing::info!(session = %listed.session.id, "HTTP session opened");
            Ok(McpServer::owning(Arc::clone(&sessions_daemon), listed))
        },
        Arc::new(LocalSessionManager::default()),
        // The gate does the Host and Origin checks, with zend's own rules.
        StreamableHttpServerConfig::default()
            .with_cancellation_token(daemon.shutdown.child_token())
            .disable_allowed_hosts()
            .disable_allowed_origins(),
    );
    let router = axum::Router::new().route_service(MCP_PATH, service).layer(
        axum::middleware::from_fn_with_state(Arc::new(gate_checks), gate),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(daemon.shutdown.clone().cancelled_owned())
        .await
        .map_err(HttpError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> HttpOptions {
        HttpOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            allow_remote: false,
            allowed_origins: vec!["https://app.example.com".into()],
            allowed_hosts: vec![],
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_gate_checks_host_then_origin_then_token() {
        let gate = Gate::new(Token(TOKEN.into()), &options());
        let bearer = format!("Bearer {TOKEN}");
        let ok = |h: &[(&'static str, &str)]| gate.check(&headers(h));
        assert_eq!(
            ok(&[("host", "127.0.0.1:8080"), ("authorization", &bearer)]),
            Ok(())
        );
        assert_eq!(
            ok(&[("host", "[::1]:8080"), ("authorization", &bearer)]),
            Ok(())
        );
        assert_eq!(
            ok(&[("host", "localhost"), ("authorization", &bearer)]),
            Ok(())
        );
        assert_eq!(
            ok(&[("host", "evil.example:8080"), ("authorization", &bearer)]),
            Err(Rejection::Host)
        );
        assert_eq!(ok(&[("authorization", &bearer)]), Err(Rejection::Host));
        assert_eq!(
            ok(&[
                ("host", "127.0.0.1"),
                ("origin", "https://evil.example"),
                ("authorization", &bearer)
            ]),
            Err(Rejection::Origin)
        );
        assert_eq!(
            ok(&[
                ("host", "127.0.0.1"),
                ("origin", "null"),
                ("authorization", &bearer)
            ]),
            Err(Rejection::Origin)
        );
        assert_eq!(
            ok(&[
                ("host", "127.0.0.1"),
                ("origin", "http://localhost:3000"),
                ("authorization", &bearer)
            ]),
            Ok(())
        );
        assert_eq!(
            ok(&[
                ("host", "127.0.0.1"),
                ("origin", "https://app.example.com/"),
                ("authorization", &bearer)
            ]),
            Ok(())
        );
        assert_eq!(ok(&[("host", "127.0.0.1")]), Err(Rejection::Unauthorized));
        assert_eq!(
            ok(&[("host", "127.0.0.1"), ("authorization", "Bearer wrong")]),
            Err(Rejection::Unauthorized)
        );
    }

    #[test]
    fn remote_mode_accepts_any_host_unless_hosts_are_named() {
        let mut remote = options();
        remote.allow_remote = true;
        let bearer = format!("Bearer {TOKEN}");
        let gate = Gate::new(Token(TOKEN.into()), &remote);
        assert_eq!(
            gate.check(&headers(&[
                ("host", "zen.lan:9000"),
                ("authorization", &bearer)
            ])),
            Ok(())
        );
        remote.allowed_hosts = vec!["zen.lan".into()];
        let gate = Gate::new(Token(TOKEN.into()), &remote);
        assert_eq!(
            gate.check(&headers(&[
                ("host", "zen.lan:9000"),
                ("authorization", &bearer)
            ])),
            Ok(())
        );
        assert_eq!(
            gate.check(&headers(&[
                ("host", "other.lan"),
                ("authorization", &bearer)
            ])),
            Err(Rejection::Host)
        );
    }

    #[test]
    fn the_token_is_created_0600_reused_and_never_printed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let token = load_or_create_token(dir.path()).unwrap();
        assert_eq!(token.reveal().len(), 64);
        let mode = std::fs::metadata(token_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(dir.path()).unwrap(), token);
        assert!(!format!("{token:?}").contains(token.reveal()));
    }

    #[tokio::test]
    async fn a_non_loopback_address_needs_allow_remote() {
        let mut remote = options();
        remote.addr = "0.0.0.0:0".parse().unwrap();
        let err = bind(&remote).await.unwrap_err();
        assert!(err.to_string().contains("--http-allow-remote"), "{err}");
    }
}
