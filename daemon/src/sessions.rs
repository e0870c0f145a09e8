//! The live MCP sessions of this daemon: who is connected, since when, and how
//! many tool calls each has running. `zend status` reads it; the idle timer
//! watches its count; tools see their own entry as the session context.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use crate::util::lock;

/// How a session reaches zend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionTransport {
    /// A `Session` stream from zen-shim over the Unix socket.
    #[default]
    Shim,
    /// Streamable HTTP (`zend serve --http`); no shim, so no pids or cwd.
    Http,
}

/// What the shim told us when it opened the session (request metadata).
#[derive(Debug, Clone, Default)]
pub struct SessionMeta {
    pub transport: SessionTransport,
    pub shim_version: String,
    pub shim_pid: u32,
    pub client_pid: u32,
    pub cwd: PathBuf,
    /// Key variables the shim's environment has and zend does not (names).
    pub keys_missing: Vec<String>,
}

/// One live session.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub meta: SessionMeta,
    pub opened: Instant,
    client: Mutex<Option<(String, String)>>,
    in_flight: AtomicU32,
    registry: Arc<Registry>,
}

impl Session {
    /// The MCP client's name and version (from `initialize` or a request's
    /// `_meta`), once known.
    pub fn client(&self) -> Option<(String, String)> {
        lock(&self.client).clone()
    }

    /// A short label for logs and ledger records: client name, else "unknown".
    pub fn client_name(&self) -> String {
        self.client()
            .map(|(name, _)| name)
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Records the client; `false` when it was already the one recorded.
    pub fn set_client(&self, name: &str, version: &str) -> bool {
        let mut client = lock(&self.client);
        if client
            .as_ref()
            .is_some_and(|(n, v)| n == name && v == version)
        {
            return false;
        }
        *client = Some((name.to_owned(), version.to_owned()));
        true
    }

    /// The session's working directory, which the ledger counts as its project;
    /// `None` when the client has none (HTTP sessions).
    pub fn project(&self) -> Option<String> {
        (!self.meta.cwd.as_os_str().is_empty())
            .then(|| self.meta.cwd.to_string_lossy().into_owned())
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a tool call as running until the guard drops.
    pub fn begin_call(self: &Arc<Self>) -> CallGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.registry.in_flight.fetch_add(1, Ordering::Relaxed);
        CallGuard {
            session: Arc::clone(self),
        }
    }
}

/// Marks a tool call as finished when dropped.
#[derive(Debug)]
pub struct CallGuard {
    session: Arc<Session>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.session.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.session
            .registry
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Registry {
    live: Mutex<BTreeMap<u64, Arc<Session>>>,
    in_flight: AtomicU32,
}

/// The table of live sessions.
#[derive(Debug)]
pub struct Sessions {
    registry: Arc<Registry>,
    next_id: AtomicU64,
    count: watch::Sender<usize>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            registry: Arc::new(Registry {
                live: Mutex::new(BTreeMap::new()),
                in_flight: AtomicU32::new(0),
            }),
            next_id: AtomicU64::new(1),
            count: watch::channel(0).0,
        }
    }
}

impl Sessions {
    /// Registers a session; it stays listed until the returned guard drops.
    pub fn open(&self, meta: SessionMeta) -> SessionGuard<'_> {
        let (number, session) = self.insert(meta);
        SessionGuard {
            sessions: self,
            number,
            session,
        }
    }

    /// Like [`Sessions::open`], unless `max` sessions are live already.
    pub fn try_open(&self, meta: SessionMeta, max: usize) -> Option<SessionGuard<'_>> {
        let (number, session) = self.try_insert(meta, max)?;
        Some(SessionGuard {
            sessions: self,
            number,
            session,
        })
    }

    /// Like [`Sessions::open_owned`], unless `max` sessions are live already.
    pub fn try_open_owned(&self, meta: SessionMeta, max: usize) -> Option<OwnedSessionGuard> {
        let (number, session) = self.try_insert(meta, max)?;
        Some(OwnedSessionGuard {
            registry: Arc::clone(&self.registry),
            count: self.count.clone(),
            number,
            session,
        })
    }

    fn insert(&self, meta: SessionMeta) -> (u64, Arc<Session>) {
        self.try_insert(meta, usize::MAX)
            .unwrap_or_else(|| unreachable!("no table holds usize::MAX sessions"))
    }

    /// Adds a session unless `max` are live: checked and added under one lock.
    fn try_insert(&self, meta: SessionMeta, max: usize) -> Option<(u64, Arc<Session>)> {
        let number = self.next_id.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(Session {
            id: format!("s{number}"),
            meta,
            opened: Instant::now(),
            client: Mutex::new(None),
            in_flight: AtomicU32::new(0),
            registry: Arc::clone(&self.registry),
        });
        let count = {
            let mut live = lock(&self.registry.live);
            if live.len() >= max {
                return None;
            }
            live.insert(number, Arc::clone(&session));
            live.len()
        };
        self.count.send_replace(count);
        Some((number, session))
    }

    /// Like [`Sessions::open`], for a session whose owner cannot hold a
    /// borrow (an HTTP session lives as long as rmcp keeps its handler).
    pub fn open_owned(&self, meta: SessionMeta) -> OwnedSessionGuard {
        let (number, session) = self.insert(meta);
        OwnedSessionGuard {
            registry: Arc::clone(&self.registry),
            count: self.count.clone(),
            number,
            session,
        }
    }

    /// Live sessions, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Session>> {
        lock(&self.registry.live).values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        *self.count.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tool calls running across all sessions.
    pub fn in_flight(&self) -> u32 {
        self.registry.in_flight.load(Ordering::Relaxed)
    }

    /// Watches the number of live sessions (the idle timer uses it).
    pub fn watch_count(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }
}

/// Why a session beyond `max_sessions` is refused, and what to do.
pub fn too_many(max: usize) -> String {
    format!(
        "zend already serves {max} sessions (max_sessions in server.yaml); close some (`zend status` lists them) or raise max_sessions"
    )
}

/// Removes its session from the table when dropped.
#[derive(Debug)]
pub struct SessionGuard<'a> {
    sessions: &'a Sessions,
    number: u64,
    pub session: Arc<Session>,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        close(&self.sessions.registry, &self.sessions.count, self.number);
    }
}

/// Removes its session from the table when dropped; owns what it needs.
#[derive(Debug)]
pub struct OwnedSessionGuard {
    registry: Arc<Registry>,
    count: watch::Sender<usize>,
    number: u64,
    pub session: Arc<Session>,
}

impl Drop for OwnedSessionGuard {
    fn drop(&mut self) {
        close(&self.registry, &self.count, self.number);
    }
}

fn close(registry: &Registry, count: &watch::Sender<usize>, number: u64) {
    let live = {
        let mut live = lock(&registry.live);
        live.remove(&number);
        live.len()
    };
    count.send_replace(live);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_listed_while_open_and_calls_are_counted() {
        let sessions = Sessions::default();
        let first = sessions.open(SessionMeta::default());
        let second = sessions.open(SessionMeta::default());
        assert_eq!(sessions.len(), 2);
        let call = second.session.begin_call();
        assert_eq!(sessions.in_flight(), 1);
        assert_eq!(second.session.in_flight(), 1);
        drop(call);
        assert_eq!(sessions.in_flight(), 0);
        drop(first);
        let ids: Vec<String> = sessions.snapshot().iter().map(|s| s.id.clone()).collect();
        assert_eq!(ids, vec!["s2".to_owned()]);
    }

    #[test]
    fn an_owned_guard_lists_its_session_until_dropped() {
        let sessions = Sessions::default();
        let owned = sessions.open_owned(SessionMeta {
            transport: SessionTransport::Http,
            ..SessionMeta::default()
        });
        assert_eq!(sessions.len(), 1);
        assert_eq!(
            sessions.snapshot()[0].meta.transport,
            SessionTransport::Http
        );
        drop(owned);
        assert!(sessions.is_empty());
        assert!(sessions.snapshot().is_empty());
    }
}
