//! The background task that removes expired threads.
//!
//! Expired threads are already refused by every read, so sweeping only
//! reclaims space; it runs off the async workers (`spawn_blocking`), in
//! batches, and never at startup's expense.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Threads;

/// Sweeps once right away, then every `sweep_interval_secs`, until `shutdown`.
pub fn spawn_sweeper(threads: Threads, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = threads.config().sweep_interval();
        loop {
            let sweeping = threads.clone();
            match tokio::task::spawn_blocking(move || sweeping.sweep_expired()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => {
                    tracing::info!(removed, "removed expired threads");
                    // Not needed for correctness (a lost sweep is redone), but
                    // sled no longer flushes by itself: reclaim the space now.
                    if let Err(error) = threads.flush().await {
                        tracing::warn!(%error, "cannot flush the sweep");
                    }
                }
                Ok(Err(error)) => tracing::warn!(%error, "cannot sweep expired threads"),
                Err(error) => tracing::warn!(%error, "the thread sweeper failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    })
}
