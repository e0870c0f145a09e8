//! The local dashboard: a page zend serves on loopback showing where the money
//! and the conversations went, and the JSON API it reads (`api.rs`).
//!
//! **Where it listens.** With `zend serve --http`, under `/dashboard/` on that
//! listener (same TLS, same [`Gate`]). Without it, on a loopback port zend
//! binds the first time `zend dashboard` asks (`127.0.0.1:0`, loopback-only
//! gate rules), kept until zend stops.
//!
//! **Who gets in.** Every request passes the gate's Host and Origin checks
//! (DNS rebinding, other sites' pages), then needs either a browser session
//! cookie or `Authorization: Bearer <zend http-token>` (scripts). A browser
//! gets the cookie at `/dashboard/login?code=...`, the one-time link
//! `zend dashboard` prints (`access::DashboardAccess`); the cookie is
//! HttpOnly, SameSite=Strict, scoped to `/dashboard`. Everything is read-only
//! and served with a strict Content-Security-Policy; no page, script or style
//! comes from anywhere but zend itself (the assets are compiled in).

mod api;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::daemon::Daemon;
use crate::mcp::http::{self as mcp_http, Gate, HttpOptions};

/// Where the dashboard lives on its listener.
pub const PATH: &str = "/dashboard";
/// The browser session cookie's name.
const COOKIE: &str = "zen_dashboard";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(transparent)]
    Http(#[from] mcp_http::HttpError),
    #[error("cannot make a login code: {0}")]
    Code(#[source] std::io::Error),
}

#[derive(Clone)]
struct Shared {
    daemon: Arc<Daemon>,
    gate: Arc<Gate>,
    /// Served over TLS: the cookie gets `Secure`.
    tls: bool,
}

/// The dashboard's routes, each behind `gate` (Host, Origin) and a session or the token.
pub fn router(daemon: Arc<Daemon>, gate: Arc<Gate>, tls: bool) -> axum::Router {
    let shared = Shared { daemon, gate, tls };
    axum::Router::new()
        .route(PATH, get(|| async { redirect(&format!("{PATH}/")) }))
        .route(
            &format!("{PATH}/"),
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            &format!("{PATH}/app.js"),
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            &format!("{PATH}/app.css"),
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(&format!("{PATH}/login"), get(login))
        .route(&format!("{PATH}/logout"), post(logout))
        .merge(api::router())
        .layer(axum::middleware::from_fn_with_state(shared.clone(), admit))
        .with_state(shared)
}

/// The URL of a one-time login link, binding the dashboard's own loopback
/// listener first if zend has none yet.
pub async fn login_url(daemon: &Arc<Daemon>) -> Result<String, DashboardError> {
    let mut base = daemon.dashboard.base_url().lock().await;
    if base.is_none() {
        let options = HttpOptions {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_remote: false,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            tls: None,
        };
        let config_dir = &daemon.locations.config_dir;
        let token = mcp_http::load_or_create_token(config_dir)?;
        let gate = Arc::new(Gate::new(token, &options).watching(mcp_http::token_path(config_dir)));
        let listener = mcp_http::bind(&options).await?;
        let addr = listener
            .local_addr()
            .map_err(|source| mcp_http::HttpError::Bind {
                addr: options.addr,
                source,
            })?;
        let routes = router(Arc::clone(daemon), gate, false);
        let serving = Arc::clone(daemon);
        tokio::spawn(async move {
            if let Err(e) = mcp_http::serve_router(listener, None, &serving, routes).await {
                tracing::error!(error = %e, "the dashboard's listener stopped");
            }
        });
        tracing::info!(%addr, "serving the dashboard at http://{addr}{PATH}/");
        *base = Some(format!("http://{addr}"));
    }
    let code = daemon
        .dashboard
        .issue_code()
        .map_err(DashboardError::Code)?;
    let base = base.as_deref().unwrap_or_default();
    Ok(format!("{base}{PATH}/login?code={code}"))
}

/// Records where the dashboard is served when `zend serve --http` serves it.
pub async fn served_at(daemon: &Daemon, addr: std::net::SocketAddr, tls: bool) {
    let scheme = if tls { "https" } else { "http" };
    // A link for this machine's browser: an unspecified address is reached on loopback.
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    *daemon.dashboard.base_url().lock().await = Some(format!("{scheme}://{host}:{}", addr.port()));
}

fn security_headers(headers: &mut HeaderMap) {
    let fixed = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The session cookie's value, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

const LOGGED_OUT: &str = "<!doctype html><meta charset=utf-8><title>zen dashboard</title>\
<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em}\
code{background:#8882;padding:.1em .3em;border-radius:3px}</style>\
<h1>Not logged in</h1><p>The dashboard opens from a one-time link. Run \
<code>zend dashboard</code> (or <code>zend dashboard --open</code>) and open the link it prints; \
each link works once, within ten minutes.</p>\n";

/// Host/Origin first (refusing before anything else is looked at), then a
/// session cookie or the bearer token; the login route is the only one open
/// without either, and it needs a valid one-time code.
async fn admit(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    if let Err(rejection) = shared.gate.check_site(request.headers()) {
        shared.gate.note_refusal(rejection, request.method());
        let mut response = rejection.into_response();
        security_headers(response.headers_mut());
        return response;
    }
    let path = request.uri().path();
    let logged_in = session_cookie(request.headers())
        .is_some_and(|session| shared.daemon.dashboard.admits(session))
        || shared.gate.bearer_ok(request.headers());
    let mut response = if logged_in || path == format!("{PATH}/login") {
        next.run(request).await
    } else {
        shared
            .gate
            .note_refusal(mcp_http::Rejection::Unauthorized, request.method());
        if path.starts_with(&format!("{PATH}/api")) {
            api::error(
                StatusCode::UNAUTHORIZED,
                "not logged in: open the link `zend dashboard` prints, or send Authorization: Bearer <zend http-token>",
            )
        } else {
            (
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                LOGGED_OUT,
            )
                .into_response()
        }
    };
    security_headers(response.headers_mut());
    response
}

/// Trades a one-time code for a session cookie, then shows the dashboard.
async fn login(State(shared): State<Shared>, request: Request) -> Response {
    let code = query_param(request.uri().query(), "code").unwrap_or_default();
    match shared.daemon.dashboard.redeem(&code) {
        Ok(Some(session)) => {
            let secure = if shared.tls { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={session}; Path={PATH}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                crate::access::SESSION_TTL.as_secs()
            );
            let mut response = redirect(&format!("{PATH}/"));
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Ok(None) => {
            shared
                .gate
                .note_refusal(mcp_http::Rejection::Unauthorized, request.method());
            (
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                LOGGED_OUT.replace(
                    "Not logged in",
                    "This login link was used already or has expired",
                ),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot make a dashboard session");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn logout(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(session) = session_cookie(&headers) {
        shared.daemon.dashboard.forget(session);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let cleared = format!("{COOKIE}=; Path={PATH}; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&cleared) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; zen_dashboard=abc; b=2"),
        );
        assert_eq!(session_cookie(&headers), Some("abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("zen_dashboardx=abc"),
        );
        assert_eq!(session_cookie(&headers), None);
    }

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_param(Some("a=1&text=hello%20world&x"), "text").as_deref(),
            Some("hello world")
        );
        assert_eq!(query_param(None, "text"), None);
    }
}
