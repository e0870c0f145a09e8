//! Daemon-wide rate limits, token limits and concurrency caps per tool, across
//! all sessions.
//!
//! Each tool may set `limits: {rpm, tpm, concurrency}` in its YAML (limits.yaml's
//! `tools:` section overrides them). [`Limiter::admit`] runs before every tool
//! call: a call over the rpm is refused at once with when to retry; a call over
//! the concurrency cap waits in a bounded queue (twice the cap) for up to
//! `QUEUE_WAIT`, and beyond that is refused as busy — never unbounded memory.
//!
//! tpm is checked per model call ([`Limiter::reserve_tokens`], from the engine),
//! because only then is the prompt known: the call's estimated prompt tokens
//! are reserved in the tool's one-minute window, and once the call is over the
//! reservation is corrected to what the provider reported (prompt + answer
//! tokens of every attempt; 0 for attempts that consumed nothing; a cancelled
//! call keeps its estimate). A call is admitted while the window's tokens
//! (finished calls' real usage plus running calls' estimates) plus its own
//! estimate stay within the tpm; otherwise it is refused with when to retry.
//! So one call may overshoot by its answer, never more.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ToolError;
use super::config::ToolLimits;
use crate::providers::{Attempt, Completion, CompletionFailure};

/// Longest a call waits for a concurrency slot.
pub const QUEUE_WAIT: Duration = Duration::from_secs(30);
const WINDOW: Duration = Duration::from_secs(60);

struct ToolLimiter {
    rpm: Option<u32>,
    recent: Mutex<VecDeque<Instant>>,
    tokens: Option<Arc<TokenWindow>>,
    slots: Option<(Arc<Semaphore>, u32)>,
    waiting: AtomicUsize,
}

/// The tokens one tool's model calls used (or, while running, are expected to
/// use) in the last minute.
struct TokenWindow {
    tpm: u64,
    entries: Mutex<VecDeque<TokenEntry>>,
    next_id: AtomicU64,
}

struct TokenEntry {
    at: Instant,
    id: u64,
    tokens: u64,
}

/// A model call's place in its tool's tpm window. [`TokenReservation::settle`]
/// corrects the estimate to the real usage; dropped unsettled, the estimate stays.
#[must_use = "settle the reservation with the call's real usage"]
pub struct TokenReservation {
    slot: Option<(Arc<TokenWindow>, u64)>,
}

impl TokenReservation {
    /// Replaces the estimate with the tokens the call really used.
    pub fn settle(self, used: u64) {
        let Some((window, id)) = &self.slot else {
            return;
        };
        let mut entries = crate::util::lock(&window.entries);
        if let Some(entry) = entries.iter_mut().find(|e| e.id == *id) {
            entry.tokens = used;
        }
    }

    /// Settles with the usage of every attempt of a finished call; a call that
    /// never finished (`None`: cancelled) keeps its estimate.
    pub fn settle_outcome(self, outcome: Option<&Result<Completion, CompletionFailure>>) {
        let attempts: &[Attempt] = match outcome {
            Some(Ok(completion)) => &completion.attempts,
            Some(Err(failure)) => &failure.attempts,
            None => return,
        };
        self.settle(tokens_used(attempts));
    }
}

/// Prompt + answer tokens the provider reported over all attempts.
pub fn tokens_used(attempts: &[Attempt]) -> u64 {
    attempts
        .iter()
        .filter_map(|a| a.usage)
        .map(|u| u.input_tokens + u.output_tokens)
        .sum()
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
            .filter(|(_, l)| l.rpm.is_some() || l.concurrency.is_some() || l.tpm.is_some())
            .map(|(name, l)| {
                let slots = l
                    .concurrency
                    .filter(|c| *c > 0)
                    .map(|c| (Arc::new(Semaphore::new(c as usize)), c));
                let limiter = ToolLimiter {
                    rpm: l.rpm.filter(|r| *r > 0),
                    recent: Mutex::new(VecDeque::new()),
                    tokens: l.tpm.filter(|t| *t > 0).map(|tpm| {
                        Arc::new(TokenWindow {
                            tpm,
                            entries: Mutex::new(VecDeque::new()),
                            next_id: AtomicU64::new(0),
                        })
                    }),
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
            let mut recent = crate::util::lock(&limiter.recent);
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

    /// Reserves `estimate` prompt tokens in `tool`'s tpm window for one model
    /// call, or refuses the call with when to retry (see the module doc).
    pub fn reserve_tokens(&self, tool: &str, estimate: u64) -> Result<TokenReservation, ToolError> {
        let Some(window) = self.tools.get(tool).and_then(|l| l.tokens.as_ref()) else {
            return Ok(TokenReservation { slot: None });
        };
        let tpm = window.tpm;
        if estimate > tpm {
            return Err(ToolError::Failed(format!(
                "`{tool}` allows {tpm} tokens per minute and this call's prompt alone is about {estimate} tokens; \
                 send fewer files or less text, or raise `tpm` for `{tool}` in limits.yaml"
            )));
        }
        let now = Instant::now();
        let mut entries = crate::util::lock(&window.entries);
        while entries
            .front()
            .is_some_and(|e| now.duration_since(e.at) >= WINDOW)
        {
            entries.pop_front();
        }
        let used: u64 = entries.iter().map(|e| e.tokens).sum();
        if used + estimate > tpm {
            // The call fits once enough of the oldest entries have left the window.
            let mut left = used;
            let mut retry = WINDOW;
            for entry in entries.iter() {
                left -= entry.tokens;
                if left + estimate <= tpm {
                    retry = WINDOW.saturating_sub(now.duration_since(entry.at));
                    break;
                }
            }
            return Err(ToolError::Busy(format!(
                "rate limit: `{tool}` allows {tpm} tokens per minute across all sessions; {used} were used in \
                 the last minute and this call needs about {estimate}; retry in {} s",
                retry.as_secs().max(1)
            )));
        }
        let id = window.next_id.fetch_add(1, Ordering::Relaxed);
        entries.push_back(TokenEntry {
            at: now,
            id,
            tokens: estimate,
        });
        Ok(TokenReservation {
            slot: Some((Arc::clone(window), id)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rpm_refuses_with_a_retry_hint() {
        let limits = ToolLimits {
            rpm: Some(2),
            ..ToolLimits::default()
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
            concurrency: Some(1),
            ..ToolLimits::default()
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

    #[test]
    fn tpm_counts_estimates_then_real_usage_and_says_when_to_retry() {
        let limits = ToolLimits {
            tpm: Some(1000),
            ..ToolLimits::default()
        };
        let limiter = Limiter::new([("chat", &limits)]);
        // Two running calls' estimates count: 400 + 400, then 300 more does not fit.
        let first = limiter.reserve_tokens("chat", 400).ok();
        let second = limiter.reserve_tokens("chat", 400).ok();
        assert!(first.is_some() && second.is_some());
        let refused = limiter
            .reserve_tokens("chat", 300)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("1000 tokens per minute")
                && refused.contains("800 were used")
                && refused.contains("retry in "),
            "{refused}"
        );
        // The first used far less than estimated: corrected, the call fits.
        if let Some(first) = first {
            first.settle(50);
        }
        let third = limiter.reserve_tokens("chat", 300).ok();
        assert!(third.is_some(), "450 + 300 fits in 1000");
        // The second used far more (a long answer): the window is full.
        if let Some(second) = second {
            second.settle(900);
        }
        assert!(limiter.reserve_tokens("chat", 1).is_err());
        // Other tools are not limited; a prompt bigger than the whole tpm can never fit.
        assert!(limiter.reserve_tokens("other", 1_000_000).is_ok());
        let never = limiter
            .reserve_tokens("chat", 5000)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(never.contains("raise `tpm`"), "{never}");
        drop(third);
    }

    #[test]
    fn a_cancelled_call_keeps_its_estimate_and_failed_attempts_count_what_they_used() {
        use crate::providers::{AttemptOutcome, Cost, ProviderError, Usage};
        let limits = ToolLimits {
            tpm: Some(1000),
            ..ToolLimits::default()
        };
        let limiter = Limiter::new([("chat", &limits)]);
        let cancelled = limiter.reserve_tokens("chat", 600);
        assert!(cancelled.is_ok());
        if let Ok(cancelled) = cancelled {
            cancelled.settle_outcome(None);
        }
        assert!(limiter.reserve_tokens("chat", 500).is_err(), "600 stayed");

        let limiter = Limiter::new([("chat", &limits)]);
        let attempt = |usage: Option<Usage>| Attempt {
            model: "m".into(),
            provider: "p".into(),
            outcome: AttemptOutcome::Failed {
                kind: "server".into(),
                message: "503".into(),
            },
            usage,
            cost: Cost::UNKNOWN,
            cache_saved_usd: None,
            latency: Duration::ZERO,
        };
        let failure = CompletionFailure {
            error: ProviderError::Cancelled,
            attempts: vec![
                attempt(None),
                attempt(Some(Usage {
                    input_tokens: 300,
                    output_tokens: 100,
                    ..Usage::default()
                })),
            ],
        };
        let reservation = limiter.reserve_tokens("chat", 900);
        assert!(reservation.is_ok());
        if let Ok(reservation) = reservation {
            reservation.settle_outcome(Some(&Err(failure)));
        }
        assert!(limiter.reserve_tokens("chat", 600).is_ok(), "400 + 600");
        assert!(limiter.reserve_tokens("chat", 1).is_err());
    }
}
