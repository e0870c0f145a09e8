//! Who may open the dashboard: one-time login codes and the browser sessions
//! they turn into.
//!
//! `zend dashboard` asks zend (over the owner-only Unix socket) for a login
//! link; the link carries a fresh code, good once and for [`CODE_TTL`]. The
//! browser trades it for a session cookie (HttpOnly, SameSite=Strict), which
//! zend keeps in memory only: a restart logs every browser out. Scripts use
//! the HTTP bearer token instead (`zend http-token`). Codes and cookies are
//! compared in constant time and never logged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::util::lock;

/// How long a login link works if nobody opens it.
pub const CODE_TTL: Duration = Duration::from_secs(600);
/// How long a browser stays logged in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// At most this many unused codes and this many browser sessions; the oldest go first.
const MAX_CODES: usize = 16;
const MAX_SESSIONS: usize = 32;

/// The dashboard's codes, sessions and where it listens.
#[derive(Debug, Default)]
pub struct DashboardAccess {
    codes: Mutex<Vec<(String, Instant)>>,
    sessions: Mutex<Vec<(String, Instant)>>,
    /// `http://127.0.0.1:PORT`, once the dashboard has a listener.
    base_url: tokio::sync::Mutex<Option<String>>,
}

/// 32 random bytes, hex.
pub fn random_secret() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Keeps the entries younger than `ttl`, then the newest `max - 1` (room for one more).
fn prune(entries: &mut Vec<(String, Instant)>, ttl: Duration, max: usize) {
    entries.retain(|(_, at)| at.elapsed() < ttl);
    if entries.len() >= max {
        let drop = entries.len() + 1 - max;
        entries.drain(..drop);
    }
}

impl DashboardAccess {
    /// A new one-time login code.
    pub fn issue_code(&self) -> std::io::Result<String> {
        let code = random_secret()?;
        let mut codes = lock(&self.codes);
        prune(&mut codes, CODE_TTL, MAX_CODES);
        codes.push((code.clone(), Instant::now()));
        Ok(code)
    }

    /// Spends `code`: a new session secret if it was valid (and is no longer), else `None`.
    pub fn redeem(&self, code: &str) -> std::io::Result<Option<String>> {
        let found = {
            let mut codes = lock(&self.codes);
            codes.retain(|(_, at)| at.elapsed() < CODE_TTL);
            let found = codes
                .iter()
                .position(|(c, _)| constant_time_eq(c.as_bytes(), code.as_bytes()));
            found.map(|i| codes.remove(i))
        };
        if found.is_none() {
            return Ok(None);
        }
        let session = random_secret()?;
        let mut sessions = lock(&self.sessions);
        prune(&mut sessions, SESSION_TTL, MAX_SESSIONS);
        sessions.push((session.clone(), Instant::now()));
        Ok(Some(session))
    }

    /// Whether `session` is a live browser session.
    pub fn admits(&self, session: &str) -> bool {
        let mut sessions = lock(&self.sessions);
        sessions.retain(|(_, at)| at.elapsed() < SESSION_TTL);
        sessions
            .iter()
            .any(|(s, _)| constant_time_eq(s.as_bytes(), session.as_bytes()))
    }

    /// Ends a browser session (logging out).
    pub fn forget(&self, session: &str) {
        lock(&self.sessions).retain(|(s, _)| !constant_time_eq(s.as_bytes(), session.as_bytes()));
    }

    /// Where the dashboard listens, guarded so that only one caller binds a listener.
    pub fn base_url(&self) -> &tokio::sync::Mutex<Option<String>> {
        &self.base_url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_and_its_session_is_admitted() {
        let access = DashboardAccess::default();
        let code = access.issue_code().unwrap();
        assert_eq!(code.len(), 64);
        assert_eq!(access.redeem("not-a-code").unwrap(), None);
        let session = access.redeem(&code).unwrap().expect("a fresh code is good");
        assert_eq!(access.redeem(&code).unwrap(), None, "a code is good once");
        assert!(access.admits(&session));
        assert!(!access.admits(&code));
        assert!(!access.admits(""));
        access.forget(&session);
        assert!(!access.admits(&session));
    }

    #[test]
    fn codes_and_sessions_are_bounded() {
        let access = DashboardAccess::default();
        let codes: Vec<String> = (0..MAX_CODES + 4)
            .map(|_| access.issue_code().unwrap())
            .collect();
        assert_eq!(access.redeem(&codes[0]).unwrap(), None, "oldest dropped");
        assert!(access.redeem(codes.last().unwrap()).unwrap().is_some());
        assert!(lock(&access.codes).len() <= MAX_CODES);
    }
}
