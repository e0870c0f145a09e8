//! zend's lifecycle: single-instance lock, store, socket, serve, shut down.
//!
//! Start-up order matters for the shims racing to start us: take the lock (the
//! loser says who holds it and exits 0), open the store, and only then remove
//! any stale socket and bind, so "the socket answers" means "zend is ready".
//! Only the lock holder ever removes a socket, and only the one it created.
//!
//! [`run`] takes an already bound listener and the daemon state, like
//! mini-redis's `server::run`, so tests and socket activation can supply their own.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use zen_proto::v1::zend_server::ZendServer;

use crate::config::ConfigError;
use crate::daemon::Daemon;
use crate::ipc::{self, ZendService};
use crate::locations::{LocationError, Locations, Overrides};

/// How `zend serve` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub overrides: Overrides,
    /// Started by a shim: exit when idle.
    pub auto_started: bool,
    /// Overrides server.yaml's `idle_timeout_secs`.
    pub idle_timeout_secs: Option<u64>,
    /// Also log to stderr (foreground use).
    pub log_to_stderr: bool,
    /// Run by a service manager: mark the socket as managed so shims never
    /// start a zend of their own beside it.
    pub service: bool,
    /// Also serve MCP over streamable HTTP (`--http`).
    pub http: Option<crate::mcp::http::HttpOptions>,
}

/// How `serve` ended without error.
#[derive(Debug, PartialEq, Eq)]
pub enum ServeOutcome {
    /// Served until shut down.
    Stopped,
    /// Another zend holds the lock.
    AlreadyRunning { pid: Option<u32>, socket: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Settings(#[from] crate::tools::settings::SettingsError),
    #[error("cannot use the lock file {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start logging in {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Providers(#[from] crate::providers::ProviderError),
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] crate::mcp::http::HttpError),
    #[error(transparent)]
    Activation(#[from] crate::activation::ActivationError),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Runs zend until it is stopped (or finds another zend already running).
///
/// The process is hardened first (`hardening`: umask 077, no core dumps) and
/// leaves its working directory for `/` once its paths are resolved.
pub async fn serve(options: ServeOptions) -> Result<ServeOutcome, ServeError> {
    crate::hardening::private_umask();
    crate::hardening::no_core_dumps();
    let locations = Locations::resolve(&options.overrides)?;
    locations.prepare()?;
    let socket = locations.socket_path();
    crate::hardening::leave_working_dir();

    let lock_path = locations.lock_path();
    let lock_error = |source| ServeError::Lock {
        path: lock_path.clone(),
        source,
    };
    let mut lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(lock_error)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Ok(ServeOutcome::AlreadyRunning {
                pid: read_pid(&mut lock),
                socket,
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(lock_error(source)),
    }

    crate::logging::init(&locations.state_dir, options.log_to_stderr).map_err(|source| {
        ServeError::Log {
            path: locations.state_dir.clone(),
            source,
        }
    })?;
    crate::hardening::tighten(&locations, &[".env", crate::mcp::http::TOKEN_FILE]);
    let settings = crate::tools::settings::Settings::load(&locations, options.idle_timeout_secs)?;
    let store = crate::data::Data::open(&locations.data_dir, &settings.limits)?;

    // Bound before the socket, so a bad address leaves nothing behind.
    let http = match &options.http {
        Some(http) => {
            let token = crate::mcp::http::load_or_create_token(&locations.config_dir)?;
            let tls = http
                .tls
                .as_ref()
                .map(crate::mcp::http::tls_config)
                .transpose()?;
            let listener = crate::mcp::http::bind(http).await?;
            let gate = crate::mcp::http::Gate::new(token, http)
                .watching(crate::mcp::http::token_path(&locations.config_dir));
            Some((listener, tls, gate))
        }
        None => None,
    };

    // The pid goes into the lock file before the socket answers, so whoever
    // connects can already tell which process it reached.
    write_pid(&mut lock).map_err(lock_error)?;

    // A socket handed to us by the service manager is its own: never removed.
    let (listener, socket, created) = match crate::activation::listener_from_env()? {
        Some(listener) => {
            let socket = activated_path(&listener).unwrap_or(socket);
            tracing::info!(socket = %socket.display(), "using the socket passed by the service manager");
            (listen(listener, &socket)?, socket, None)
        }
        None => {
            let listener = bind(&socket)?;
            let created = socket_identity(&socket);
            (listener, socket, created)
        }
    };
    if options.service {
        crate::service::mark_managed(&socket);
    }
    tracing::info!(pid = std::process::id(), socket = %socket.display(), auto_started = options.auto_started, "zend serving");

    let daemon = Arc::new(Daemon::new(
        locations,
        socket.clone(),
        settings,
        options.idle_timeout_secs,
        options.auto_started,
        store,
    ));
    {
        // A LiteLLM proxy's models are listed once it answers; start-up does not wait.
        let settings = daemon.settings();
        tokio::spawn(async move { settings.providers.discover_models().await });
    }
    crate::watcher::spawn(Arc::clone(&daemon));
    if let Some((listener, tls, gate)) = http {
        if let Ok(addr) = listener.local_addr() {
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(%addr, "serving MCP over HTTP at {scheme}://{addr}{}", crate::mcp::http::MCP_PATH);
            crate::dashboard::served_at(&daemon, addr, tls.is_some()).await;
        }
        let gate = Arc::new(gate);
        let dashboard =
            crate::dashboard::router(Arc::clone(&daemon), Arc::clone(&gate), tls.is_some());
        let daemon = Arc::clone(&daemon);
        tokio::spawn(async move {
            if let Err(e) = crate::mcp::http::serve(listener, tls, daemon, gate, dashboard).await {
                tracing::error!(error = %e, "the HTTP endpoint stopped");
            }
        });
    }
    let result = run(listener, Arc::clone(&daemon)).await;

    if let Err(e) = daemon.store.close().await {
        tracing::error!(error = %e, "cannot flush the store on shutdown");
    }
    // Remove the socket only if it is still the one we created.
    if created.is_some() && socket_identity(&socket) == created {
        let _ = std::fs::remove_file(&socket);
    }
    tracing::info!("zend stopped");
    result.map(|()| ServeOutcome::Stopped)
}

/// Serves `listener` until `daemon.shutdown` is cancelled (by `Shutdown`, a
/// signal or the idle timer), then gives live calls the shutdown deadline.
pub async fn run(listener: UnixListener, daemon: Arc<Daemon>) -> Result<(), ServeError> {
    let incoming = ipc::accept::Incoming::new(listener);
    tokio::spawn(stop_on_signals(Arc::clone(&daemon)));
    tokio::spawn(reload_on_sighup(Arc::clone(&daemon)));
    crate::memory::spawn_sweeper(daemon.store.threads().clone(), daemon.shutdown.clone());
    if daemon.auto_started {
        tokio::spawn(exit_when_idle(Arc::clone(&daemon)));
    }
    let service = ZendServer::new(ZendService::new(Arc::clone(&daemon)))
        .max_decoding_message_size(zen_proto::MAX_FRAME_BYTES)
        .max_encoding_message_size(usize::MAX);
    let shutdown = daemon.shutdown.clone();
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
    // Sessions end themselves once their calls finish; this bounds the wait.
    let hard_stop = async {
        shutdown.cancelled().await;
        tokio::time::sleep(daemon.shutdown_deadline() + Duration::from_secs(2)).await;
    };
    // On a worker, not in the caller's future: `serve` is usually driven by
    // `block_on` on the main thread, and an accept loop there costs every new
    // connection two extra thread hops (worker epoll → main → worker).
    let mut server = tokio::spawn(server);
    tokio::select! {
        joined = &mut server => match joined {
            Ok(result) => result?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        },
        () = hard_stop => {
            server.abort();
            tracing::warn!("sessions did not close in time; stopping anyway");
        }
    }
    Ok(())
}

async fn stop_on_signals(daemon: Arc<Daemon>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        () = daemon.shutdown.cancelled() => return,
    }
    daemon.shutdown.cancel();
}

/// `SIGHUP` (`systemctl --user reload zend`, `kill -HUP`) reloads the configuration.
async fn reload_on_sighup(daemon: Arc<Daemon>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            received = hup.recv() => if received.is_none() { return },
            () = daemon.shutdown.cancelled() => return,
        }
        // The outcome is logged (and kept for `zend status`) by `reload`.
        let _ = daemon.reload("SIGHUP").await;
    }
}

/// Ends an auto-started zend after `idle_timeout_secs` (server.yaml, read
/// again after each reload; 0 = never) with no session.
async fn exit_when_idle(daemon: Arc<Daemon>) {
    let mut count = daemon.sessions.watch_count();
    let mut settings = daemon.watch_settings();
    loop {
        while *count.borrow_and_update() > 0 {
            tokio::select! {
                changed = count.changed() => if changed.is_err() { return },
                () = daemon.shutdown.cancelled() => return,
            }
        }
        settings.borrow_and_update();
        let secs = daemon.settings().server.idle_timeout_secs;
        let idle = async {
            if secs == 0 {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_secs(secs)).await;
        };
        tokio::select! {
            () = idle => {
                if daemon.sessions.is_empty() {
                    tracing::info!(idle_secs = secs, "no sessions for the idle timeout: exiting");
                    daemon.shutdown.cancel();
                    return;
                }
            }
            changed = count.changed() => if changed.is_err() { return },
            // A reload may have changed the timeout: start counting again.
            changed = settings.changed() => if changed.is_err() { return },
            () = daemon.shutdown.cancelled() => return,
        }
    }
}

/// Binds the socket (mode 0600), replacing a stale one: we hold the lock, so
/// any socket already there belongs to a daemon that is gone.
fn bind(socket: &Path) -> Result<UnixListener, ServeError> {
    use std::os::unix::fs::PermissionsExt;
    let bind_error = |source| ServeError::Bind {
        path: socket.to_path_buf(),
        source,
    };
    if socket.as_os_str().len() > zen_proto::paths::MAX_SOCKET_PATH {
        return Err(bind_error(std::io::Error::other(format!(
            "the path is longer than {} bytes; set ZEN_SOCKET or ZEN_HOME to a shorter place",
            zen_proto::paths::MAX_SOCKET_PATH
        ))));
    }
    match std::fs::remove_file(socket) {
        Ok(()) => tracing::info!(socket = %socket.display(), "removed a stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_error(e)),
    }
    let listener = UnixListener::bind(socket).map_err(bind_error)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    Ok(listener)
}

/// The path of an activated socket, for status and logs.
fn activated_path(listener: &std::os::unix::net::UnixListener) -> Option<PathBuf> {
    listener
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_pathname().map(Path::to_path_buf))
}

fn listen(
    listener: std::os::unix::net::UnixListener,
    socket: &Path,
) -> Result<UnixListener, ServeError> {
    let bind_error = |source| ServeError::Bind {
        path: socket.to_path_buf(),
        source,
    };
    listener.set_nonblocking(true).map_err(bind_error)?;
    UnixListener::from_std(listener).map_err(bind_error)
}

fn socket_identity(socket: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(socket)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn write_pid(lock: &mut File) -> std::io::Result<()> {
    lock.set_len(0)?;
    lock.rewind()?;
    writeln!(lock, "{}", std::process::id())?;
    lock.flush()
}

fn read_pid(lock: &mut File) -> Option<u32> {
    let mut text = String::new();
    lock.rewind().ok()?;
    lock.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
