//! Watches zend's config directory (inotify on Linux, FSEvents on macOS,
//! through `notify`) and reloads the configuration when one of its files
//! changes: `.env`, `server.yaml`, `models.yaml`, `limits.yaml`, `clink.yaml`,
//! `tools/*.yaml`. Changes are taken together once the directory has been
//! quiet for [`DEBOUNCE`] (an editor's save is several events; `git checkout`
//! of a config repository many), and a notice whose files hold what is already
//! loaded does nothing. Nothing wakes zend while nothing changes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::daemon::Daemon;
use crate::tools::settings::{CONFIG_FILES, is_tool_file};

/// How long the directory must be quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Starts watching `daemon`'s config directory until zend shuts down. A
/// directory that cannot be watched is logged: `zend reload` and `SIGHUP` still work.
pub fn spawn(daemon: Arc<Daemon>) {
    use notify::Watcher;
    let dir = daemon.locations.config_dir.clone();
    let changed = Arc::new(Notify::new());
    let watcher = {
        let changed = Arc::clone(&changed);
        // FSEvents reports resolved paths (/private/var for /var).
        let dirs = [
            dir.clone(),
            std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone()),
        ];
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                if !matches!(event.kind, notify::EventKind::Access(_))
                    && event
                        .paths
                        .iter()
                        .any(|path| dirs.iter().any(|dir| is_config_file(dir, path)))
                {
                    changed.notify_one();
                }
            }
            // Events may have been lost (an overflowing queue): look at the files.
            Err(_) => changed.notify_one(),
        })
    };
    let watcher = watcher.and_then(|mut watcher| {
        watcher
            .watch(&dir, notify::RecursiveMode::Recursive)
            .map(|()| watcher)
    });
    let watcher = match watcher {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config directory; edits apply on `zend reload` or SIGHUP");
            return;
        }
    };
    tokio::spawn(async move {
        let _watching = watcher;
        loop {
            tokio::select! {
                () = changed.notified() => {}
                () = daemon.shutdown.cancelled() => return,
            }
            loop {
                tokio::select! {
                    () = tokio::time::sleep(DEBOUNCE) => break,
                    () = changed.notified() => {}
                    () = daemon.shutdown.cancelled() => return,
                }
            }
            let check = Arc::clone(&daemon);
            let needed = tokio::task::spawn_blocking(move || check.needs_reload())
                .await
                .unwrap_or(true);
            if needed {
                // The outcome is logged (and kept for `zend status`) by `reload`.
                let _ = daemon.reload("a configuration file changed").await;
            }
        }
    });
}

/// One of the files a reload reads (or the `tools` directory itself).
fn is_config_file(config_dir: &Path, path: &Path) -> bool {
    let tools = config_dir.join("tools");
    match path.parent() {
        Some(parent) if parent == config_dir => {
            path == tools
                || path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|name| CONFIG_FILES.contains(&name))
        }
        Some(parent) if parent == tools => is_tool_file(path),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configuration_files_count() {
        let dir = Path::new("/home/u/.config/zen");
        for yes in [
            "/home/u/.config/zen/.env",
            "/home/u/.config/zen/models.yaml",
            "/home/u/.config/zen/clink.yaml",
            "/home/u/.config/zen/tools",
            "/home/u/.config/zen/tools/mine.yaml",
        ] {
            assert!(is_config_file(dir, Path::new(yes)), "{yes}");
        }
        for no in [
            "/home/u/.config/zen/.models.yaml.swp",
            "/home/u/.config/zen/models.yaml~",
            "/home/u/.config/zen/http-token",
            "/home/u/.config/zen/tools/notes.txt",
            "/home/u/.config/zen/other/models.yaml",
        ] {
            assert!(!is_config_file(dir, Path::new(no)), "{no}");
        }
    }
}
