//! Where zend keeps things: config, data (the store), state (logs) and
//! runtime (lock file and socket) directories.
//!
//! Defaults come from the `directories` crate's project dirs for "zen". One
//! variable, `ZEN_HOME`, relocates all four at once (tests use it to isolate
//! themselves); each can also be set alone by a flag or its own variable. The
//! runtime directory follows `zen_proto::paths`, the rule the shim uses too.

use std::path::{Path, PathBuf};

use zen_proto::paths;

/// Per-directory overrides, from flags or environment (`ZEN_CONFIG_DIR`, ...).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub home: Option<PathBuf>,
    pub config_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
}

/// The resolved directories of one zend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
    /// Which of them the user named by a flag or a variable of its own
    /// (rather than zen's default or `ZEN_HOME`'s layout): zend never changes
    /// the mode of a directory the user named.
    pub named: Named,
}

/// Which directories the user named (see [`Locations::named`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Named {
    pub config: bool,
    pub data: bool,
    pub state: bool,
    pub runtime: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error(
        "cannot find a home directory for zen's files (is HOME set?); set ZEN_HOME to a directory zen may use"
    )]
    NoHome,
    #[error("cannot prepare {path}: {source}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Locations {
    /// Resolves the directories: explicit override, else `ZEN_HOME`, else the platform default.
    /// Relative paths are made absolute (zend serves from `/`).
    pub fn resolve(overrides: &Overrides) -> Result<Self, LocationError> {
        let home = overrides
            .home
            .clone()
            .or_else(|| {
                std::env::var_os(paths::HOME_ENV)
                    .filter(|h| !h.is_empty())
                    .map(PathBuf::from)
            })
            .map(|home| absolute(&home));
        let (config, data, state) = match &home {
            Some(home) => (home.join("config"), home.join("data"), home.join("state")),
            None => {
                let dirs =
                    directories::ProjectDirs::from("", "", "zen").ok_or(LocationError::NoHome)?;
                let state = dirs
                    .state_dir()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| dirs.data_local_dir().join("state"));
                (
                    dirs.config_dir().to_path_buf(),
                    dirs.data_dir().to_path_buf(),
                    state,
                )
            }
        };
        let runtime = match (&overrides.runtime_dir, &home) {
            (Some(dir), _) => dir.clone(),
            (None, Some(home)) => home.join("run"),
            (None, None) => paths::default_runtime_dir(),
        };
        let named = |dir: &Option<PathBuf>| dir.as_ref().is_some_and(|d| !d.as_os_str().is_empty());
        let pick = |dir: &Option<PathBuf>, default: PathBuf| match dir {
            Some(dir) if !dir.as_os_str().is_empty() => absolute(dir),
            _ => default,
        };
        Ok(Self {
            config_dir: pick(&overrides.config_dir, config),
            data_dir: pick(&overrides.data_dir, data),
            state_dir: pick(&overrides.state_dir, state),
            runtime_dir: absolute(&runtime),
            named: Named {
                config: named(&overrides.config_dir),
                data: named(&overrides.data_dir),
                state: named(&overrides.state_dir),
                runtime: named(&overrides.runtime_dir),
            },
        })
    }

    /// The socket path: `ZEN_SOCKET` when set, else `<runtime_dir>/zend.sock`.
    pub fn socket_path(&self) -> PathBuf {
        self.socket().path
    }

    /// The socket and who chose its directory: the runtime directory's
    /// chooser when it lives there, else (`ZEN_SOCKET` elsewhere) the user.
    pub fn socket(&self) -> paths::Socket {
        let path = match std::env::var_os(paths::SOCKET_ENV) {
            Some(path) if !path.is_empty() => absolute(Path::new(&path)),
            _ => self.runtime_dir.join(paths::SOCKET_NAME),
        };
        let chosen = if path.parent() == Some(self.runtime_dir.as_path()) {
            self.runtime_chosen()
        } else {
            paths::Chosen::ByUser
        };
        paths::Socket { path, chosen }
    }

    fn runtime_chosen(&self) -> paths::Chosen {
        if self.named.runtime {
            paths::Chosen::ByUser
        } else {
            paths::Chosen::ByZen
        }
    }

    /// The single-instance lock file; it also records the holder's pid.
    pub fn lock_path(&self) -> PathBuf {
        self.runtime_dir.join("zend.lock")
    }

    /// Today's log file (rotated daily, a week kept).
    pub fn log_path(&self) -> PathBuf {
        crate::logging::current_log_file(&self.state_dir)
    }

    /// Creates the directories zend writes to, 0700 (zend's umask is 077 by
    /// then, see `hardening`); the runtime directory is checked private.
    pub fn prepare(&self) -> Result<(), LocationError> {
        use std::os::unix::fs::DirBuilderExt;
        for dir in [&self.config_dir, &self.data_dir, &self.state_dir] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| LocationError::Prepare {
                    path: dir.clone(),
                    source,
                })?;
        }
        paths::prepare_dir(&self.runtime_dir, self.runtime_chosen()).map_err(|source| {
            LocationError::Prepare {
                path: self.runtime_dir.clone(),
                source,
            }
        })?;
        let socket = self.socket();
        if socket.dir() != self.runtime_dir {
            socket
                .prepare_dir()
                .map_err(|source| LocationError::Prepare {
                    path: socket.dir().to_path_buf(),
                    source,
                })?;
        }
        Ok(())
    }
}

/// `path` made absolute against the current directory (unchanged when it
/// already is, or when the current directory is gone).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_relocates_everything_and_flags_win() {
        let overrides = Overrides {
            home: Some(PathBuf::from("/tmp/zh")),
            data_dir: Some(PathBuf::from("/srv/zen-data")),
            ..Overrides::default()
        };
        let locations = Locations::resolve(&overrides).unwrap();
        assert_eq!(locations.config_dir, PathBuf::from("/tmp/zh/config"));
        assert_eq!(locations.data_dir, PathBuf::from("/srv/zen-data"));
        assert_eq!(locations.state_dir, PathBuf::from("/tmp/zh/state"));
        assert_eq!(locations.runtime_dir, PathBuf::from("/tmp/zh/run"));
    }
}
