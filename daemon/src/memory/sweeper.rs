//! The background task that removes expired threads.
//!
//! Expired threads are already refused by every read, so sweeping only
//! reclaims space; it removes a batch of threads per store transaction, so
//! calls' writes queue behind one batch at most.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Threads;

/// Sweeps once right away, then every `sweep_interval_secs`, until `shutdown`.
pub fn spawn_sweeper(threads: Threads, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = threads.config().sweep_interval();
        loop {
            match threads.sweep_expired().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed expired threads"),
                Err(error) => tracing::warn!(%error, "cannot sweep expired threads"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    })
}
