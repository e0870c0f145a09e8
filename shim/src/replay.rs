//! What the shim remembers so that a daemon restart goes unnoticed by the client.
//!
//! Exactly three things, all learnt with [`scan`](crate::scan):
//!
//! - the raw bytes of the client's first `initialize` request, and whether it
//!   has been answered;
//! - the raw bytes of its `notifications/initialized`;
//! - the ids of requests sent to zend and not yet answered.
//!
//! When the connection is lost, every unanswered request gets a JSON-RPC error
//! saying zend restarted and the call may be retried ([`Book::lost`]); the new
//! daemon is then sent `initialize` and `notifications/initialized` again, and
//! its duplicate answer to `initialize` is dropped ([`Book::replay`]), so the
//! client carries on in the session it has. A client whose `initialize` was
//! still unanswered simply gets the new daemon's answer.
//!
//! Ids are compared as raw bytes. zend writes ids back as it read them, except
//! that it normalises numbers and string escapes (`1e2`, `"\u0041"`); such a
//! request stays listed as unanswered. So does one the client cancels (zend
//! does not answer it). Both only cost a spurious error for an id the client no
//! longer waits for, and the list is capped at [`MAX_PENDING`], oldest dropped.

use std::collections::VecDeque;

use crate::scan::scan;

/// Unanswered requests remembered at most; a client waits on far fewer.
pub const MAX_PENDING: usize = 1024;

/// The JSON-RPC code of the error sent for requests cut by a restart
/// ("Internal error": the request may not have run, or may have run in part).
pub const RESTARTED_CODE: i32 = -32603;

#[derive(Debug, Default)]
pub struct Book {
    initialize: Option<Vec<u8>>,
    initialize_id: Option<Vec<u8>>,
    initialize_answered: bool,
    initialized: Option<Vec<u8>>,
    pending: VecDeque<Vec<u8>>,
    /// The id of a replayed `initialize` whose answer the client must not see.
    swallow: Option<Vec<u8>>,
}

impl Book {
    /// Notes a line the client sent to zend.
    pub fn sent(&mut self, line: &[u8]) {
        let scan = scan(line);
        match scan.method {
            Some(b"initialize") if self.initialize.is_none() => {
                self.initialize = Some(line.to_vec());
                self.initialize_id = scan.id.map(<[u8]>::to_vec);
            }
            Some(b"notifications/initialized") if self.initialized.is_none() => {
                self.initialized = Some(line.to_vec());
            }
            _ => {}
        }
        if let (true, Some(id)) = (scan.is_request(), scan.id) {
            if self.pending.len() == MAX_PENDING {
                self.pending.pop_front();
            }
            self.pending.push_back(id.to_vec());
        }
    }

    /// Notes a frame zend sent; `false` when the client must not see it.
    pub fn received(&mut self, frame: &[u8]) -> bool {
        let Some(id) = scan(frame).response_id() else {
            return true;
        };
        if self.swallow.as_deref() == Some(id) {
            self.swallow = None;
            return false;
        }
        if let Some(at) = self.pending.iter().position(|p| p == id) {
            self.pending.remove(at);
        }
        if self.initialize_id.as_deref() == Some(id) {
            self.initialize_answered = true;
        }
        true
    }

    /// The connection is gone: error lines for every request still unanswered,
    /// except an unanswered `initialize`, which [`Book::replay`] sends again.
    pub fn lost(&mut self) -> Vec<Vec<u8>> {
        let keep = self
            .initialize_id
            .clone()
            .filter(|_| !self.initialize_answered);
        let mut errors = Vec::new();
        for id in std::mem::take(&mut self.pending) {
            if keep.as_ref() == Some(&id) {
                self.pending.push_back(id);
            } else {
                errors.push(restarted_error(&id));
            }
        }
        self.swallow = None;
        errors
    }

    /// What a new daemon must be sent first for this session to carry on.
    pub fn replay(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        if let Some(initialize) = &self.initialize {
            frames.push(initialize.clone());
            if self.initialize_answered {
                self.swallow = self.initialize_id.clone();
            }
        }
        frames.extend(self.initialized.clone());
        frames
    }

    /// Requests sent and not answered yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// The error a request cut by a daemon restart gets.
fn restarted_error(id: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(id.len() + 200);
    line.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    line.extend_from_slice(id);
    line.extend_from_slice(
        format!(
            r#","error":{{"code":{RESTARTED_CODE},"message":"zend (the zen daemon) restarted while this request was in flight; it may be retried","data":{{"retryable":true}}}}}}"#
        )
        .as_bytes(),
    );
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: &[u8] = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
    const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

    fn request(id: &str) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{}}}}"#).into_bytes()
    }

    fn response(id: &str) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#).into_bytes()
    }

    fn text(line: &[u8]) -> String {
        String::from_utf8_lossy(line).into_owned()
    }

    #[test]
    fn after_a_handshake_only_unanswered_requests_get_the_restart_error() {
        let mut book = Book::default();
        book.sent(INIT);
        assert!(book.received(&response("0")));
        book.sent(INITIALIZED);
        book.sent(&request("1"));
        book.sent(&request("\"two\""));
        book.sent(br#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#);
        assert!(book.received(&response("1")));
        assert_eq!(book.pending(), 1);

        let errors = book.lost();
        assert_eq!(errors.len(), 1);
        let error = text(&errors[0]);
        assert!(
            error.starts_with(r#"{"jsonrpc":"2.0","id":"two","error":{"code":-32603"#),
            "{error}"
        );
        assert!(
            error.contains("restarted") && error.contains("retried"),
            "{error}"
        );
        assert_eq!(book.pending(), 0);

        // The new daemon gets the handshake again; its answer is not shown.
        assert_eq!(book.replay(), vec![INIT.to_vec(), INITIALIZED.to_vec()]);
        assert!(!book.received(&response("0")));
        // Once only: a later request reusing id 0 is answered normally.
        book.sent(&request("0"));
        assert!(book.received(&response("0")));
        assert!(book.lost().is_empty());
    }

    #[test]
    fn an_unanswered_initialize_is_replayed_and_its_answer_shown() {
        let mut book = Book::default();
        book.sent(INIT);
        assert!(
            book.lost().is_empty(),
            "initialize is replayed, not errored"
        );
        assert_eq!(book.replay(), vec![INIT.to_vec()]);
        assert!(book.received(&response("0")));
        assert_eq!(book.pending(), 0);
        // A second loss now replays it and hides the answer.
        assert!(book.lost().is_empty());
        book.replay();
        assert!(!book.received(&response("0")));
    }

    #[test]
    fn notifications_server_requests_and_garbage_are_passed_through() {
        let mut book = Book::default();
        assert!(
            book.received(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#)
        );
        assert!(book.received(br#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#));
        assert!(book.received(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700}}"#));
        assert!(book.received(b"not json"));
        book.sent(b"{\"id\":1,\"method\":\"x\"");
        book.sent(br#"{"jsonrpc":"2.0","id":9,"result":{}}"#);
        assert_eq!(book.pending(), 0, "neither is a request");
        assert!(
            book.replay().is_empty(),
            "nothing to replay before initialize"
        );
    }

    #[test]
    fn the_pending_list_is_capped() {
        let mut book = Book::default();
        for id in 0..MAX_PENDING + 10 {
            book.sent(&request(&id.to_string()));
        }
        assert_eq!(book.pending(), MAX_PENDING);
        let errors = book.lost();
        let first = text(&errors[0]);
        assert!(first.contains(r#""id":10,"#), "{first}");
    }
}
