//! Daemon-wide rate limits and concurrency caps per tool, across all sessions.
//!
//! Each tool may set `limits: {rpm, concurrency}` in its YAML. A call over the
//! rpm is refused at once with when to retry; a call over the concurrency cap
//! waits in a bounded queue (twice the cap) for up to `QUEUE_WAIT`, and beyond
//! that is refused as busy — never unbounded memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ToolError;
use super::config::ToolLimits;

/// Longest a call waits for a concurrency slot.
pub const QUEUE_WAIT: Duration = Duration::from_secs(30);
const WINDOW: Duration = Duration::from_secs(60);

struct ToolLimiter {
    rpm: Option<u32>,
    recent: Mutex<VecDeque<Instant>>,
    slots: Option<(Arc<Semaphore>, u32)>,
    waiting: AtomicUsize,
}

/// Admission control for every tool call.
#[derive(Default)]
pub struct Limiter {
    tools: HashMap<String, ToolLimiter>,
}

/// Holds a concurrency slot until dropped.
pub struct Admission {
    _slot: Option<OwnedSemaphorePermit>,
}

impl Limiter {
    pub fn new<'a>(limits: impl IntoIterator<Item = (&'a str, &'a ToolLimits)>) -> Self {
        let tools = limits
            .into_iter()
            .filter(|(_, l)| l.rpm.is_some() || l.concurrency.is_some())
            .map(|(name, l)| {
                let slots = l
                    .concurrency
                    .filter(|c| *c > 0)
                    .map(|c| (Arc::new(Semaphore::new(c as usize)), c));
                let limiter = ToolLimiter {
                    rpm: l.rpm.filter(|r| *r > 0),
                    recent: Mutex::new(VecDeque::new()),
                    slots,
                    waiting: AtomicUsize::new(0),
                };
                (name.to_owned(), limiter)
            })
            .collect();
        Self { tools }
    }

    /// Admits a call to `tool`, or says why not and when to retry.
    pub async fn admit(&self, tool: &str) -> Result<Admission, ToolError> {
        let Some(limiter) = self.tools.get(tool) else {
            return Ok(Admission { _slot: None });
        };
        if let Some(rpm) = limiter.rpm {
            let now = Instant::now();
            let mut recent = limiter
                .recent
                .lock()
                .map_err(|_| ToolError::Failed("rate limiter poisoned".into()))?;
            while recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                recent.pop_front();
            }
            if recent.len() >= rpm as usize {
                let retry = recent
                    .front()
                    .map(|t| WINDOW.saturating_sub(now.duration_since(*t)))
                    .unwrap_or(WINDOW);
                return Err(ToolError::Busy(format!(
                    "rate limit: `{tool}` allows {rpm} calls per minute across all sessions; retry in {} s",
                    retry.as_secs().max(1)
                )));
            }
            recent.push_back(now);
        }
        let Some((slots, cap)) = &limiter.slots else {
            return Ok(Admission { _slot: None });
        };
        if let Ok(slot) = Arc::clone(slots).try_acquire_owned() {
            return Ok(Admission { _slot: Some(slot) });
        }
        let busy = || {
            ToolError::Busy(format!(
                "busy: `{tool}` already runs {cap} calls (its concurrency cap) and the queue is full; retry in 10 s"
            ))
        };
        if limiter.waiting.fetch_add(1, Ordering::SeqCst) >= 2 * *cap as usize {
            limiter.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(busy());
        }
        let acquired = tokio::time::timeout(QUEUE_WAIT, Arc::clone(slots).acquire_owned()).await;
        limiter.waiting.fetch_sub(1, Ordering::SeqCst);
        match acquired {
            Ok(Ok(slot)) => Ok(Admission { _slot: Some(slot) }),
            _ => Err(busy()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rpm_refuses_with_a_retry_hint() {
        let limits = ToolLimits {
            rpm: Some(2),
            concurrency: None,
        };
        let limiter = Limiter::new([("chat", &limits)]);
        assert!(limiter.admit("chat").await.is_ok());
        assert!(limiter.admit("chat").await.is_ok());
        let err = limiter
            .admit("chat")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("2 calls per minute") && err.contains("retry in"),
            "{err}"
        );
        assert!(limiter.admit("other").await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_queues_then_refuses_when_the_queue_is_full() {
        let limits = ToolLimits {
            rpm: None,
            concurrency: Some(1),
        };
        let limiter = Arc::new(Limiter::new([("chat", &limits)]));
        let first = limiter.admit("chat").await.ok();
        assert!(first.is_some());
        // Two may wait (2 × cap); the third is refused at once.
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move { limiter.admit("chat").await.is_ok() })
            })
            .collect();
        tokio::task::yield_now().await;
        let refused = limiter
            .admit("chat")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("busy"), "{refused}");
        drop(first);
        let mut admitted = 0;
        for waiter in waiters {
            if waiter.await.unwrap_or(false) {
                admitted += 1;
            }
        }
        assert!(admitted >= 1);
    }
}
