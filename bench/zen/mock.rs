//! A mock OpenAI-compatible provider on loopback (hyper, HTTP/1.1 keep-alive,
//! 0 ms delay): `/v1/chat/completions` answers a fixed JSON body, or a fixed SSE
//! stream when the request asks for `"stream": true`; `/v1/models` lists the
//! bench's model. Plus the direct call zen's overhead is measured against.
//!
//! The peer reaches only a fixed HTTPS API (no base-URL setting), so [`Mock::start_tls`] also
//! serves the same answers behind an HTTPS proxy on loopback: see [`TlsMock`].

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// The model the bench asks `chat` for (model names change; keep it here).
pub const CHAT_MODEL: &str = "gpt-5";
/// The API key zend is given for the mock.
pub const API_KEY: &str = "sk-zen-bench-not-a-key";

const ANSWER: &str = "mock answer";

#[derive(Default)]
pub struct Counts {
    pub json: AtomicU64,
    pub sse: AtomicU64,
    pub other: AtomicU64,
    /// While set, each chat request's arrival and answer instants are kept in `marks`.
    pub marking: AtomicBool,
    pub marks: Mutex<Vec<Mark>>,
}

/// When the mock saw one chat request (its head parsed) and when its answer was ready to be
/// written (body built): what splits a call into the caller's time before the provider, the
/// provider's, and the caller's after it.
#[derive(Clone, Copy)]
pub struct Mark {
    pub arrived: Instant,
    pub answered: Instant,
}

impl Counts {
    /// Starts keeping marks (dropping any kept before).
    pub fn start_marking(&self) {
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.marking.store(true, Ordering::SeqCst);
    }

    /// Stops keeping marks; returns those kept, in arrival order.
    pub fn take_marks(&self) -> Vec<Mark> {
        self.marking.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.marks.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.json.load(Ordering::Relaxed),
            self.sse.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed),
        )
    }
}

pub struct Mock {
    /// `http://127.0.0.1:<port>/v1`, what OPENAI_BASE_URL is set to.
    pub base_url: String,
    pub counts: Arc<Counts>,
    /// The runtime the mock serves on.
    handle: tokio::runtime::Handle,
}

/// The API host the peer calls for OpenAI models, and what the proxy below lets through.
pub const TLS_HOST: &str = "api.openai.com";

/// The mock behind an HTTPS proxy, for a client that calls a fixed `https://` API: its process
/// is given `HTTPS_PROXY=<proxy_url>` and `SSL_CERT_FILE=<ca_file>`. The proxy's listener answers
/// the client's `CONNECT api.openai.com:443` itself (any other is refused, so nothing leaves
/// loopback), then serves TLS on the same connection with a certificate for that host, signed
/// by a CA made for this run, and the mock's answers over HTTP/1.1 keep-alive.
pub struct TlsMock {
    pub proxy_url: String,
    /// The run's CA certificate (PEM), in a directory removed with this value.
    pub ca_file: std::path::PathBuf,
    pub ca_pem: String,
    _dir: tempfile::TempDir,
}

/// The mock on a runtime of its own (one worker thread), so callers' own threads stay theirs alone.
pub fn start_on_own_runtime() -> Result<(tokio::runtime::Runtime, Mock), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let mock = rt
        .block_on(start())
        .map_err(|e| format!("cannot start the mock provider: {e}"))?;
    Ok((rt, mock))
}

pub async fn start() -> std::io::Result<Mock> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counts = Arc::new(Counts::default());
    let served = Arc::clone(&counts);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(TokioIo::new(stream), Arc::clone(&served)));
        }
    });
    Ok(Mock {
        base_url: format!("http://{addr}/v1"),
        counts,
        handle: tokio::runtime::Handle::current(),
    })
}

/// The mock's answers on one connection, HTTP/1.1 keep-alive.
async fn serve<I>(io: I, counts: Arc<Counts>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let counts = Arc::clone(&counts);
        async move { Ok::<_, Infallible>(answer(request, &counts).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

impl Mock {
    /// Starts the HTTPS proxy in front of the mock (see [`TlsMock`]); its calls count in
    /// `counts` with the others.
    pub fn start_tls(&self) -> Result<TlsMock, String> {
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("cannot {what}: {e}");
        let ca_key = rcgen::KeyPair::generate().map_err(|e| fail("make a CA key", &e))?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| fail("make a CA", &e))?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "zen bench CA (loopback only)");
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca, ca_key).map_err(|e| fail("sign the CA", &e))?;
        let leaf_key = rcgen::KeyPair::generate().map_err(|e| fail("make a key", &e))?;
        let leaf = rcgen::CertificateParams::new(vec![TLS_HOST.to_owned()])
            .and_then(|params| params.signed_by(&leaf_key, &ca))
            .map_err(|e| fail("sign the mock's certificate", &e))?;
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail("configure TLS", &e))?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key.into())
            .map_err(|e| fail("configure TLS", &e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let dir = tempfile::tempdir().map_err(|e| fail("make a directory", &e))?;
        let ca_file = dir.path().join("ca.pem");
        let ca_pem = ca.pem();
        std::fs::write(&ca_file, &ca_pem).map_err(|e| fail("write the CA", &e))?;
        let listener = self
            .handle
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| fail("listen", &e))?;
        let addr = listener.local_addr().map_err(|e| fail("listen", &e))?;
        let counts = Arc::clone(&self.counts);
        self.handle.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(tunnel(stream, acceptor.clone(), Arc::clone(&counts)));
            }
        });
        Ok(TlsMock {
            proxy_url: format!("http://{addr}"),
            ca_file,
            ca_pem,
            _dir: dir,
        })
    }
}

/// One proxied connection: the client's `CONNECT` for [`TLS_HOST`] answered here, then TLS and
/// the mock's answers on the same socket.
async fn tunnel(
    mut stream: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    counts: Arc<Counts>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    // The client sends nothing after its CONNECT until it has the answer.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(n) if n > 0 && head.len() < 16 * 1024 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    if !head.starts_with(format!("CONNECT {TLS_HOST}:443 ").as_bytes()) {
        let _ = stream
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    }
    if stream
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    if let Ok(tls) = acceptor.accept(stream).await {
        serve(TokioIo::new(tls), counts).await;
    }
}

async fn answer(request: Request<Incoming>, counts: &Counts) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    let path = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = |status: u16, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
        if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, value);
        }
        response
    };
    if path.ends_with("/chat/completions") {
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let model = request["model"].as_str().unwrap_or(CHAT_MODEL).to_owned();
        let response = if request["stream"].as_bool() == Some(true) {
            counts.sse.fetch_add(1, Ordering::Relaxed);
            reply(200, "text/event-stream", sse_body(&model))
        } else {
            counts.json.fetch_add(1, Ordering::Relaxed);
            reply(200, "application/json", json_body(&model))
        };
        if counts.marking.load(Ordering::Relaxed) {
            let mark = Mark {
                arrived,
                answered: Instant::now(),
            };
            counts
                .marks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(mark);
        }
        response
    } else if path.ends_with("/models") {
        counts.other.fetch_add(1, Ordering::Relaxed);
        reply(
            200,
            "application/json",
            serde_json::json!({"object": "list", "data": [{"id": CHAT_MODEL, "object": "model", "owned_by": "bench"}]})
                .to_string(),
        )
    } else {
        counts.other.fetch_add(1, Ordering::Relaxed);
        reply(
            404,
            "application/json",
            r#"{"error":{"message":"not found","type":"invalid_request_error"}}"#.into(),
        )
    }
}

fn usage() -> serde_json::Value {
    serde_json::json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120})
}

fn json_body(model: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER},
            "finish_reason": "stop"
        }],
        "usage": usage(),
    })
    .to_string()
}

fn sse_body(model: &str) -> String {
    let chunk =
        |delta: serde_json::Value, finish: Option<&str>, usage: Option<serde_json::Value>| {
            let mut chunk = serde_json::json!({
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            });
            if let Some(usage) = usage {
                chunk["usage"] = usage;
            }
            format!("data: {chunk}\n\n")
        };
    let mut body = String::new();
    body.push_str(&chunk(
        serde_json::json!({"role": "assistant", "content": "mock "}),
        None,
        None,
    ));
    body.push_str(&chunk(serde_json::json!({"content": "answer"}), None, None));
    body.push_str(&chunk(serde_json::json!({}), Some("stop"), Some(usage())));
    body.push_str("data: [DONE]\n\n");
    body
}

/// A request body shaped like a chat tool's (system prompt + user prompt).
pub fn request_body(stream: bool) -> Bytes {
    let system = "You are a senior engineer and thinking partner, consulted by another AI coding \
        assistant on behalf of its user. Give direct, well-reasoned, practical answers grounded in \
        the code and context provided. Point out risks, trade-offs and better alternatives when you \
        see them; say so plainly when you are unsure or when information is missing, and ask for \
        the specific files you need. Reference code by file and line. Be concise: no preamble, no \
        restating the question.";
    let mut body = serde_json::json!({
        "model": CHAT_MODEL,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "Say hi."},
        ],
        "stream": stream,
    });
    if stream {
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    Bytes::from(body.to_string())
}

/// `n` direct calls (after `warmup` unmeasured ones) from one client, one after another: when
/// each started and how long it took.
pub async fn direct_calls(
    base_url: &str,
    stream: bool,
    warmup: usize,
    n: usize,
) -> Result<Vec<(Instant, Duration)>, String> {
    let client = direct_client()?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let span = timed_direct_call(&client, base_url, stream).await?;
        if i >= warmup {
            samples.push(span);
        }
    }
    Ok(samples)
}

/// `clients` threads, each calling the mock directly (SSE) back to back: after `warmup`, for
/// `measure`. Returns the latencies of the calls completed in the window (one per call): what
/// the upstream alone serves to that many concurrent clients.
pub fn direct_load(
    base_url: &str,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<Vec<Duration>, String> {
    let url = format!("{base_url}/chat/completions");
    let body = request_body(true);
    let items = (0..clients)
        .map(|_| {
            let runtime = client_runtime()?;
            let client = direct_client()?;
            // One call to open the connection before the clock starts.
            runtime.block_on(direct_call(&client, &url, &body, true))?;
            Ok((runtime, client))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let (samples, _, _) = crate::stats::window(items, warmup, measure, |(runtime, client)| {
        let t = runtime.block_on(direct_call(client, &url, &body, true))?;
        Ok((t, true))
    })?;
    Ok(samples)
}

/// A current-thread runtime for one client (of the mock, or of zend over gRPC), as the shim runs.
pub fn client_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

/// One direct call on `client` (SSE when `stream`): when it started and how long it took.
pub async fn timed_direct_call(
    client: &reqwest::Client,
    base_url: &str,
    stream: bool,
) -> Result<(Instant, Duration), String> {
    let url = format!("{base_url}/chat/completions");
    let body = request_body(stream);
    let started = Instant::now();
    let took = direct_call(client, &url, &body, stream).await?;
    Ok((started, took))
}

pub fn direct_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A direct client of the mock through its HTTPS proxy, trusting only the run's CA: the path
/// the peer's own calls take.
pub fn tls_client(tls: &TlsMock) -> Result<reqwest::Client, String> {
    let ca = reqwest::Certificate::from_pem(tls.ca_pem.as_bytes())
        .map_err(|e| format!("cannot read the run's CA: {e}"))?;
    let proxy = reqwest::Proxy::https(&tls.proxy_url)
        .map_err(|e| format!("cannot use the mock's proxy: {e}"))?;
    reqwest::Client::builder()
        .proxy(proxy)
        .tls_certs_only([ca])
        .build()
        .map_err(|e| format!("cannot build the HTTPS client: {e}"))
}

/// `n` calls (after `warmup` unmeasured ones) through the HTTPS proxy, JSON as the peer asks:
/// when each started and how long it took.
pub async fn tls_calls(
    client: &reqwest::Client,
    warmup: usize,
    n: usize,
) -> Result<Vec<(Instant, Duration)>, String> {
    let url = format!("https://{TLS_HOST}/v1/chat/completions");
    let body = request_body(false);
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let started = Instant::now();
        let took = direct_call(client, &url, &body, false).await?;
        if i >= warmup {
            samples.push((started, took));
        }
    }
    Ok(samples)
}

/// One direct call, its answer read as a client would; how long it took.
async fn direct_call(
    client: &reqwest::Client,
    url: &str,
    body: &Bytes,
    stream: bool,
) -> Result<Duration, String> {
    let started = Instant::now();
    let response = client
        .post(url)
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .map_err(|e| format!("direct call failed: {e}"))?;
    let text = response
        .bytes()
        .await
        .map_err(|e| format!("direct call failed: {e}"))?;
    let ok = if stream {
        text.split(|b| *b == b'\n')
            .filter_map(|line| line.strip_prefix(b"data: "))
            .filter(|data| *data != b"[DONE]")
            .filter_map(|data| serde_json::from_slice::<serde_json::Value>(data).ok())
            .count()
            > 0
    } else {
        serde_json::from_slice::<serde_json::Value>(&text)
            .is_ok_and(|v| v["choices"][0]["message"]["content"] == ANSWER)
    };
    let elapsed = started.elapsed();
    if !ok {
        return Err("the mock's answer did not parse".into());
    }
    Ok(elapsed)
}
