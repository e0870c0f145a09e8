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
//! a non-loopback listen address only with `--http-allow-remote`, which also
//! requires TLS (`--http-cert`, `--http-key`: rustls, handshakes off the accept
//! loop). The token never reaches a log: [`Token`] does not print it; the gate
//! re-reads the token file when it changes, so `zend http-token --rotate`
//! takes effect at once. Refused requests are counted and logged at most once
//! a minute (a page or a scanner hammering the port must not fill the log).
//! A request body is read up to [`zen_proto::MAX_MESSAGE_BYTES`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use super::McpServer;
use crate::access::constant_time_eq;
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
    /// Serve HTTPS with this certificate and key (required with `allow_remote`).
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to serve HTTP on {0}, which is not a loopback address; pass --http-allow-remote (with --http-cert and --http-key) to mean it"
    )]
    NotLoopback(SocketAddr),
    #[error(
        "--http-allow-remote serves beyond loopback, and only over TLS: pass --http-cert FILE and --http-key FILE (PEM)"
    )]
    RemoteNeedsTls,
    #[error("cannot use {path} for TLS: {message}")]
    Tls { path: PathBuf, message: String },
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

/// Replaces the token with a new one (written beside it, 0600, then renamed
/// over it): a running zend takes it at its next request, the old one stops working.
pub fn rotate_token(config_dir: &Path) -> Result<Token, HttpError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = token_path(config_dir);
    let error = |source| HttpError::Token {
        path: path.clone(),
        source,
    };
    let token = new_token().map_err(error)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(config_dir)
        .map_err(error)?;
    let partial = config_dir.join(format!("{TOKEN_FILE}.{}", std::process::id()));
    let written = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut file| {
            writeln!(file, "{}", token.0)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(error(e));
    }
    Ok(token)
}

fn new_token() -> std::io::Result<Token> {
    crate::access::random_secret().map(Token)
}

/// Reads the token, or creates it (32 random bytes, hex, mode 0600); a token
/// file readable by others is tightened to 0600.
pub fn load_or_create_token(config_dir: &Path) -> Result<Token, HttpError> {
    use std::io::Write;
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
    let token = new_token().map_err(error)?.0;
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
    token: Mutex<Token>,
    /// The token file, re-read when it changes (`zend http-token --rotate`).
    token_file: Option<(PathBuf, Mutex<Option<FileIdentity>>)>,
    allow_remote: bool,
    allowed_origins: Vec<String>,
    allowed_hosts: Vec<String>,
    refusals: Refusals,
}

/// What tells a token file from the one read before: a rename gives a new inode.
type FileIdentity = (u64, u64, Option<std::time::SystemTime>);

fn identity(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.modified().ok()))
}

/// Refused requests: all of them counted, one log line a minute at most.
#[derive(Debug, Default)]
struct Refusals {
    total: AtomicU64,
    window: Mutex<RefusalWindow>,
}

#[derive(Debug, Default)]
struct RefusalWindow {
    logged_at: Option<Instant>,
    /// Refused since the last line.
    unlogged: u64,
}

/// At most one line per this long about refused requests.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

impl Gate {
    pub fn new(token: Token, options: &HttpOptions) -> Self {
        Self {
            token: Mutex::new(token),
            token_file: None,
            refusals: Refusals::default(),
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

    /// Takes the token from `path` from now on, re-reading it whenever it changes.
    pub fn watching(mut self, path: PathBuf) -> Self {
        let seen = identity(&path);
        self.token_file = Some((path, Mutex::new(seen)));
        self
    }

    /// Requests refused since zend started.
    pub fn refused(&self) -> u64 {
        self.refusals.total.load(Ordering::Relaxed)
    }

    /// The current token: the file's, when it changed since last read.
    fn token(&self) -> Token {
        let mut token = crate::util::lock(&self.token);
        if let Some((path, seen)) = &self.token_file {
            let mut seen = crate::util::lock(seen);
            let now = identity(path);
            if now != *seen {
                match std::fs::read_to_string(path) {
                    Ok(text) if text.trim().len() >= 32 => {
                        *token = Token(text.trim().to_owned());
                        *seen = now;
                        tracing::info!("the HTTP token changed; the new one is in use");
                    }
                    // Half-written or gone: keep the one we have.
                    _ => {}
                }
            }
        }
        token.clone()
    }

    /// Counts a refused request; logs at most one line a minute, with the count since the last.
    pub fn note_refusal(&self, rejection: Rejection, method: &axum::http::Method) {
        let total = self.refusals.total.fetch_add(1, Ordering::Relaxed) + 1;
        let mut window = crate::util::lock(&self.refusals.window);
        window.unlogged += 1;
        let now = Instant::now();
        if window
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_EVERY)
        {
            tracing::warn!(
                refused = window.unlogged,
                total,
                last = ?rejection,
                %method,
                "refused HTTP requests (wrong token, Host or Origin); logged at most once a minute"
            );
            window.logged_at = Some(now);
            window.unlogged = 0;
        }
    }

    /// Host first, then Origin (both reject before the token is looked at,
    /// so a rebinding page learns nothing), then the bearer token.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        self.check_site(headers)?;
        if self.bearer_ok(headers) {
            Ok(())
        } else {
            Err(Rejection::Unauthorized)
        }
    }

    /// The Host and Origin checks alone (the dashboard then takes a cookie or the token).
    pub fn check_site(&self, headers: &HeaderMap) -> Result<(), Rejection> {
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
        Ok(())
    }

    /// Whether the request carries `Authorization: Bearer <the current token>`.
    pub fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .is_some_and(|presented| {
                constant_time_eq(presented.as_bytes(), self.token().0.as_bytes())
            })
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

async fn gate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    if let Err(rejection) = gate.check(request.headers()) {
        gate.note_refusal(rejection, request.method());
        return rejection.into_response();
    }
    // The body is read here, bounded, so no request makes zend hold more than one message.
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, zen_proto::MAX_MESSAGE_BYTES).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(_) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a request body may be at most {} bytes\n",
                zen_proto::MAX_MESSAGE_BYTES
            ),
        )
            .into_response(),
    }
}

/// Binds the HTTP listener, refusing a non-loopback address unless allowed,
/// and remote access without TLS.
pub async fn bind(options: &HttpOptions) -> Result<tokio::net::TcpListener, HttpError> {
    if !options.addr.ip().is_loopback() && !options.allow_remote {
        return Err(HttpError::NotLoopback(options.addr));
    }
    if options.allow_remote && options.tls.is_none() {
        return Err(HttpError::RemoteNeedsTls);
    }
    tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: options.addr,
            source,
        })
}

/// The rustls configuration for `files` (PEM: the certificate chain, then the key).
pub fn tls_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, HttpError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls_error = |path: &Path, message: String| HttpError::Tls {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_error(
            &files.cert,
            "no PEM certificate in it".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls_error(&files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| tls_error(&files.key, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP listener whose connections come out TLS-handshaken. Handshakes run
/// in tasks of their own, off the accept loop: a client that never finishes
/// one holds only its own task, for [`HANDSHAKE_TIMEOUT`] at most.
struct TlsListener {
    handshaken: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(
        listener: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (sender, handshaken) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = sender.closed() => return,
                };
                let (tcp, addr) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept an HTTPS connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { handshaken, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // The accept task is gone only once we are: wait for the shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Serves MCP at `/mcp` on `listener` until zend shuts down; over TLS when
/// `tls` is given. `also` is served beside it (the dashboard, which gates its
/// own routes with the same `gate`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    daemon: Arc<Daemon>,
    gate_checks: Arc<Gate>,
    also: axum::Router,
) -> Result<(), HttpError> {
    let sessions_daemon = Arc::clone(&daemon);
    let service = StreamableHttpService::new(
        move || {
            let max = sessions_daemon.settings().server.max_sessions;
            let meta = SessionMeta {
                transport: SessionTransport::Http,
                ..SessionMeta::default()
            };
            let Some(listed) = sessions_daemon.sessions.try_open_owned(meta, max) else {
                tracing::warn!(max, "refused an HTTP session: max_sessions are live");
                return Err(std::io::Error::other(crate::sessions::too_many(max)));
            };
            tracing::info!(session = %listed.session.id, "HTTP session opened");
            Ok(McpServer::owning(Arc::clone(&sessions_daemon), listed))
        },
        Arc::new(LocalSessionManager::default()),
        // The gate does the Host and Origin checks, with zend's own rules.
        StreamableHttpServerConfig::default()
            .with_cancellation_token(daemon.shutdown.child_token())
            // The gate already bounds the body; rmcp's own default (4 MiB) would refuse
            // messages the socket takes.
            .with_max_request_body_bytes(zen_proto::MAX_MESSAGE_BYTES)
            .disable_allowed_hosts()
            .disable_allowed_origins(),
    );
    let router = axum::Router::new()
        .route_service(MCP_PATH, service)
        .layer(axum::middleware::from_fn_with_state(gate_checks, gate))
        .merge(also);
    serve_router(listener, tls, &daemon, router).await
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until zend shuts down.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    daemon: &Daemon,
    router: axum::Router,
) -> Result<(), HttpError> {
    let stop = daemon.shutdown.clone().cancelled_owned();
    match tls {
        Some(config) => {
            let listener = TlsListener::new(listener, config).map_err(HttpError::Serve)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
                .map_err(HttpError::Serve)
        }
        None => axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
            .map_err(HttpError::Serve),
    }
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
            tls: None,
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
        remote.allow_remote = true;
        let err = bind(&remote).await.unwrap_err();
        assert!(err.to_string().contains("--http-cert"), "{err}");
    }

    #[test]
    fn a_rotated_token_replaces_the_old_one_in_a_running_gate() {
        let dir = tempfile::tempdir().unwrap();
        let old = load_or_create_token(dir.path()).unwrap();
        let gate = Gate::new(old.clone(), &options()).watching(token_path(dir.path()));
        let with = |token: &Token| {
            gate.check(&headers(&[
                ("host", "127.0.0.1"),
                ("authorization", &format!("Bearer {}", token.reveal())),
            ]))
        };
        assert_eq!(with(&old), Ok(()));
        let new = rotate_token(dir.path()).unwrap();
        assert_ne!(new, old);
        assert_eq!(with(&new), Ok(()));
        assert_eq!(with(&old), Err(Rejection::Unauthorized));
    }
}
