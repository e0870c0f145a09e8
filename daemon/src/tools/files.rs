//! The files a tool call names: checked, expanded, read and embedded within a budget.
//!
//! [`FilePolicy`] is the one gate: every path a tool reads (named files and
//! directories, files re-read from earlier turns of a thread, workflow files,
//! images, `prompt.txt`, precommit's repository) is checked by it, and every
//! file is opened through it. Rules (Zen's, tightened): paths must be absolute;
//! zen's own directories (config with `.env` and `http-token`, data, logs,
//! runtime) are never read; system directories and special files (devices,
//! FIFOs, sockets) are refused; `server.yaml`'s `files` rules refuse credential
//! files (SSH keys, cloud credentials, ...) unless `files.allow` lets a path
//! through, and a file holding a PEM private key is refused by its content.
//! Directories are walked, skipping hidden entries and build/vendor folders,
//! without following symlinks; an explicitly named symlink is resolved and
//! both its name and its target checked. A file is opened non-blocking without
//! following a last symlink and must be a regular file once open (a FIFO
//! swapped in after the check cannot hang zend); binary files are skipped with
//! a note. Embedding goes in the order given (callers put the newest first)
//! until the token budget is spent; a file that cannot fit is not read, and a
//! call reads at most [`MAX_CALL_READ_BYTES`] in all.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::FilesConfig;

/// Folder names never descended into when expanding a directory.
const SKIPPED_DIRS: &[&str] = &[
    "node_modules",
    "target",
    "build",
    "dist",
    "out",
    "vendor",
    "__pycache__",
    "venv",
    "env",
    "site-packages",
    "bower_components",
    "coverage",
    "bin",
    "obj",
    "Pods",
    "DerivedData",
];
/// Directories that are never read, nor anything below them.
const SYSTEM_DIRS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/boot",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/libexec",
    "/var/log",
    "/var/lib",
    "/run",
    "/snap",
    "/System",
    "/private/etc",
];
/// Files expanded from directories beyond this are not listed one by one.
pub const MAX_FILES: usize = 2_000;
/// A single file larger than this is never read whole (10 MiB).
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// Bytes one tool call reads from files at most (64 MiB), whatever its budget.
pub const MAX_CALL_READ_BYTES: u64 = 64 * 1024 * 1024;
/// A `prompt.txt` larger than this is refused (2 MiB).
pub const MAX_PROMPT_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// Largest image accepted (20 MiB), as the providers' own limits.
pub const MAX_IMAGE_BYTES: u64 = 20 * 1024 * 1024;
/// Bytes looked at to tell a binary file from text.
const SNIFF_BYTES: usize = 8192;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum FileError {
    #[error("'{0}' is not an absolute path; pass full paths such as /home/me/project/src/main.rs")]
    NotAbsolute(String),
    #[error("'{0}' is a system location zen will not read; pass files from your project instead")]
    SystemPath(String),
    #[error("'{0}' does not exist; check the path")]
    Missing(String),
    #[error("'{0}' is a device, FIFO or socket, not a regular file")]
    Special(String),
    #[error("'{0}' is a directory where a file is expected; pass a file")]
    Directory(String),
    #[error("'{path}' is your home directory; pass the project directory or files instead")]
    HomeDirectory { path: String },
    #[error("too many paths ({0}); pass at most {MAX_FILES} files or a few directories")]
    TooMany(usize),
    #[error(
        "'{path}' is in zen's own {what} directory ({dir}), which tools never read: it holds your provider keys, conversations and logs"
    )]
    ZenOwn {
        path: String,
        what: &'static str,
        dir: String,
    },
    #[error(
        "'{path}' is refused by the files rule `{rule}` (credential files are never sent to a model); if it is safe to send, add it to `files.allow` in {config}"
    )]
    Denied {
        path: String,
        rule: String,
        config: String,
    },
    #[error(
        "'{path}' holds a private key, which is never sent to a model; if it is safe to send (a test fixture), add it to `files.allow` in {config}"
    )]
    PrivateKey { path: String, config: String },
    #[error("'{path}' is {size} bytes, over the {limit}-byte limit for {what}; {hint}")]
    TooLarge {
        path: String,
        size: u64,
        limit: u64,
        what: &'static str,
        hint: &'static str,
    },
    #[error("cannot read '{path}': {reason}")]
    Unreadable { path: String, reason: String },
}

/// A file to embed, with why some others were skipped.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Expanded {
    pub files: Vec<PathBuf>,
    /// (path, reason) for entries skipped during expansion.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files not listed because the expansion limit was reached.
    pub truncated: usize,
    /// The files named one by one (not found in a directory): a refusal of one
    /// of them fails the call instead of becoming a note.
    pub named: HashSet<PathBuf>,
}

/// One path rule of `files.deny` / `files.allow`.
#[derive(Debug, Clone)]
struct Rule {
    /// As the user wrote it, for messages.
    text: String,
    /// From the root (`/...`, `~/...`), else anywhere in a path.
    anchored: bool,
    parts: Vec<String>,
}

impl Rule {
    /// `~/` rules become one rule per spelling of the home directory given.
    fn parse(text: &str, homes: &[PathBuf]) -> Vec<Self> {
        let trimmed = text.trim().trim_end_matches('/');
        let split = |path: &Path| -> Vec<String> {
            path.components()
                .filter_map(|c| match c {
                    Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect()
        };
        let rule = |anchored, parts: Vec<String>| Self {
            text: text.trim().to_owned(),
            anchored,
            parts,
        };
        if trimmed.is_empty() {
            return Vec::new();
        }
        if let Some(rest) = trimmed
            .strip_prefix("~/")
            .or(trimmed.strip_prefix("~").filter(|r| r.is_empty()))
        {
            return homes
                .iter()
                .map(|home| rule(true, split(&home.join(rest))))
                .collect();
        }
        vec![rule(trimmed.starts_with('/'), split(Path::new(trimmed)))]
    }

    fn matches(&self, path: &Path) -> bool {
        if self.parts.is_empty() {
            return false;
        }
        let parts: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let fits = |window: &[String]| {
            window
                .iter()
                .zip(&self.parts)
                .all(|(name, pattern)| glob(pattern, name))
        };
        if self.anchored {
            parts.len() >= self.parts.len() && fits(&parts[..self.parts.len()])
        } else {
            parts.windows(self.parts.len()).any(fits)
        }
    }
}

/// `*` (any run of characters) and `?` (one character) within one path component.
fn glob(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Counts the bytes one tool call has read from files, against [`MAX_CALL_READ_BYTES`].
#[derive(Debug, Default)]
pub struct ReadMeter(AtomicU64);

impl ReadMeter {
    fn take(&self, bytes: u64) -> bool {
        let before = self.0.fetch_add(bytes, Ordering::Relaxed);
        before.saturating_add(bytes) <= MAX_CALL_READ_BYTES
    }
}

/// What tools may read; see the module docs. Built once per zend.
#[derive(Debug, Clone)]
pub struct FilePolicy {
    /// zen's own directories (as configured and resolved), by what they hold.
    own: Vec<(&'static str, PathBuf)>,
    home: Option<PathBuf>,
    deny: Vec<Rule>,
    allow: Vec<Rule>,
    /// The user's `server.yaml`, named in refusals.
    config_file: String,
}

impl FilePolicy {
    /// `own`: zen's directories by what they hold ("config", "data", ...).
    pub fn new(own: &[(&'static str, &Path)], config: &FilesConfig, config_file: &Path) -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute());
        let mut homes: Vec<PathBuf> = home.iter().cloned().collect();
        if let Some(canonical) = home.as_ref().and_then(|h| std::fs::canonicalize(h).ok())
            && !homes.contains(&canonical)
        {
            homes.push(canonical);
        }
        let rules = |texts: &mut dyn Iterator<Item = &String>| -> Vec<Rule> {
            texts.flat_map(|t| Rule::parse(t, &homes)).collect()
        };
        let mut dirs = Vec::new();
        for (what, dir) in own {
            dirs.push((*what, dir.to_path_buf()));
            if let Ok(canonical) = std::fs::canonicalize(dir)
                && canonical != *dir
            {
                dirs.push((*what, canonical));
            }
        }
        Self {
            own: dirs,
            home: homes.last().cloned(),
            deny: rules(&mut config.default_deny.iter().chain(&config.deny)),
            allow: rules(&mut config.allow.iter()),
            config_file: config_file.display().to_string(),
        }
    }

    /// The shipped rules and no zen directories (tests).
    #[cfg(test)]
    pub fn shipped() -> Self {
        Self::new(&[], &Self::shipped_config(), Path::new("server.yaml"))
    }

    #[cfg(test)]
    pub fn shipped_config() -> FilesConfig {
        let dir = std::env::temp_dir().join("zen-no-such-config-dir");
        crate::config::ServerConfig::load(&dir)
            .expect("the shipped server.yaml parses")
            .files
    }

    fn allowed(&self, paths: &[&Path]) -> bool {
        self.allow
            .iter()
            .any(|rule| paths.iter().any(|p| rule.matches(p)))
    }

    /// Why `paths` (one file under its names: as given, resolved) may not be
    /// read, if they may not.
    fn refusal(&self, shown: &str, paths: &[&Path]) -> Option<FileError> {
        for (what, dir) in &self.own {
            if paths.iter().any(|p| p.starts_with(dir)) {
                return Some(FileError::ZenOwn {
                    path: shown.to_owned(),
                    what,
                    dir: dir.display().to_string(),
                });
            }
        }
        if self.allowed(paths) {
            return None;
        }
        let rule = self
            .deny
            .iter()
            .find(|rule| paths.iter().any(|p| rule.matches(p)))?;
        Some(FileError::Denied {
            path: shown.to_owned(),
            rule: rule.text.clone(),
            config: self.config_file.clone(),
        })
    }

    /// Checks one user-supplied path and resolves symlinks.
    pub fn check_path(&self, raw: &str) -> Result<PathBuf, FileError> {
        let trimmed = raw.trim();
        let path = Path::new(trimmed);
        if !path.is_absolute() {
            return Err(FileError::NotAbsolute(trimmed.to_owned()));
        }
        if is_system(path) {
            return Err(FileError::SystemPath(trimmed.to_owned()));
        }
        let resolved =
            std::fs::canonicalize(path).map_err(|_| FileError::Missing(trimmed.to_owned()))?;
        if is_system(&resolved) || resolved == Path::new("/") {
            return Err(FileError::SystemPath(trimmed.to_owned()));
        }
        if let Some(error) = self.refusal(trimmed, &[path, &resolved]) {
            return Err(error);
        }
        if self.home.as_ref().is_some_and(|h| *h == resolved)
            || std::env::var_os("HOME")
                .and_then(|h| std::fs::canonicalize(h).ok())
                .is_some_and(|h| h == resolved)
        {
            return Err(FileError::HomeDirectory {
                path: trimmed.to_owned(),
            });
        }
        let meta =
            std::fs::metadata(&resolved).map_err(|_| FileError::Missing(trimmed.to_owned()))?;
        if !meta.is_file() && !meta.is_dir() {
            return Err(FileError::Special(trimmed.to_owned()));
        }
        // A directory holding one of zen's own is refused too: walking it would skip
        // them, but the caller (a working directory, a repository) gets all of it.
        if meta.is_dir()
            && let Some((what, dir)) = self.own.iter().find(|(_, dir)| dir.starts_with(&resolved))
        {
            return Err(FileError::ZenOwn {
                path: trimmed.to_owned(),
                what,
                dir: dir.display().to_string(),
            });
        }
        Ok(resolved)
    }

    /// Refuses a path a rule forbids (zen's own, system, `files.deny`), without
    /// requiring that it exist: for paths recorded now and read later.
    pub fn check_refused(&self, raw: &str) -> Result<(), FileError> {
        match self.check_path(raw) {
            Err(
                refused @ (FileError::NotAbsolute(_)
                | FileError::SystemPath(_)
                | FileError::ZenOwn { .. }
                | FileError::Denied { .. }),
            ) => Err(refused),
            Err(_) => {
                let path = Path::new(raw.trim());
                match self.refusal(raw.trim(), &[path]) {
                    Some(refused) => Err(refused),
                    None if is_system(path) => Err(FileError::SystemPath(raw.trim().to_owned())),
                    None => Ok(()),
                }
            }
            Ok(_) => Ok(()),
        }
    }

    /// Checks every path and expands directories into files (de-duplicated, order kept).
    pub fn expand(&self, paths: &[String]) -> Result<Expanded, FileError> {
        if paths.len() > MAX_FILES {
            return Err(FileError::TooMany(paths.len()));
        }
        let mut expanded = Expanded::default();
        let mut seen = HashSet::new();
        for raw in paths {
            let path = self.check_directory_or_file(raw)?;
            if path.is_dir() {
                self.walk(&path, &mut expanded, &mut seen);
            } else if seen.insert(path.clone()) {
                expanded.named.insert(path.clone());
                push(&mut expanded, path);
            }
        }
        Ok(expanded)
    }

    /// [`check_path`](Self::check_path), except that a directory holding one of
    /// zen's own may be walked (the walk leaves zen's directories out).
    fn check_directory_or_file(&self, raw: &str) -> Result<PathBuf, FileError> {
        match self.check_path(raw) {
            Err(FileError::ZenOwn { .. })
                if std::fs::canonicalize(raw.trim()).is_ok_and(|resolved| {
                    resolved.is_dir() && !self.own.iter().any(|(_, d)| resolved.starts_with(d))
                }) =>
            {
                std::fs::canonicalize(raw.trim())
                    .map_err(|_| FileError::Missing(raw.trim().to_owned()))
            }
            other => other,
        }
    }

    fn walk(&self, root: &Path, expanded: &mut Expanded, seen: &mut HashSet<PathBuf>) {
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                expanded.skipped.push((dir, "cannot be read".into()));
                continue;
            };
            let mut entries: Vec<_> = entries.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            let mut subdirs = Vec::new();
            for entry in entries {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                // file_type() does not follow symlinks: links inside a tree are not followed.
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let path = entry.path();
                if (kind.is_dir() || kind.is_file())
                    && let Some(refused) = self.refusal(&path.display().to_string(), &[&path])
                {
                    expanded.skipped.push((path, format!("refused: {refused}")));
                    continue;
                }
                if kind.is_dir() {
                    if !SKIPPED_DIRS.contains(&name.as_ref()) {
                        subdirs.push(path);
                    }
                } else if kind.is_file() {
                    if seen.insert(path.clone()) {
                        push(expanded, path);
                    }
                } else if kind.is_symlink() {
                    expanded
                        .skipped
                        .push((path, "symlink inside a directory (not followed)".into()));
                }
                if expanded.truncated > 10_000 {
                    return;
                }
            }
            // Depth-first in name order.
            stack.extend(subdirs.into_iter().rev());
        }
    }

    /// Opens a file for reading, whatever path it came by (named, walked,
    /// recorded on a thread): resolved and refused again if a rule covers either
    /// name, opened non-blocking and not through a last symlink, and a regular
    /// file once open.
    fn open(&self, path: &Path) -> Result<(File, u64), FileError> {
        use std::os::unix::fs::OpenOptionsExt;
        let shown = path.display().to_string();
        if !path.is_absolute() {
            return Err(FileError::NotAbsolute(shown));
        }
        let resolved =
            std::fs::canonicalize(path).map_err(|_| FileError::Missing(shown.clone()))?;
        if is_system(path) || is_system(&resolved) {
            return Err(FileError::SystemPath(shown));
        }
        if let Some(refused) = self.refusal(&shown, &[path, &resolved]) {
            return Err(refused);
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
            .open(&resolved)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => FileError::Missing(shown.clone()),
                _ => FileError::Unreadable {
                    path: shown.clone(),
                    reason: e.to_string(),
                },
            })?;
        let meta = file.metadata().map_err(|e| FileError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        if meta.is_dir() {
            return Err(FileError::Directory(shown));
        }
        if !meta.is_file() {
            return Err(FileError::Special(shown));
        }
        Ok((file, meta.len()))
    }

    /// Refuses text holding a PEM private key, unless `files.allow` covers the file.
    fn check_content(&self, path: &Path, text: &[u8]) -> Result<(), FileError> {
        if holds_private_key(text) && !self.allowed(&[path]) {
            return Err(FileError::PrivateKey {
                path: path.display().to_string(),
                config: self.config_file.clone(),
            });
        }
        Ok(())
    }

    /// Reads and embeds `files` in order while they fit in `budget_tokens`.
    pub fn embed(
        &self,
        files: &[PathBuf],
        budget_tokens: u64,
        estimate: impl Fn(&str) -> u64,
        meter: &ReadMeter,
    ) -> Embedded {
        let mut embedded = Embedded::default();
        for path in files {
            let room = budget_tokens.saturating_sub(embedded.tokens);
            let (bytes, outcome, block, tokens) = match self.read_text(path, room, meter) {
                Ok(Text::Fits(bytes, text)) => {
                    let block = format_file(path, &text);
                    let tokens = estimate(&block);
                    if embedded.tokens + tokens > budget_tokens {
                        (bytes, FileOutcome::OverBudget, None, tokens)
                    } else {
                        (bytes, FileOutcome::Embedded, Some(block), tokens)
                    }
                }
                Ok(Text::TooBig(bytes)) => {
                    (bytes, FileOutcome::OverBudget, None, bytes.div_ceil(4))
                }
                Err(ReadError::Binary(bytes)) => (bytes, FileOutcome::Binary, None, 0),
                Err(ReadError::Refused(error)) => (0, FileOutcome::Refused(error), None, 0),
                Err(ReadError::Other(e)) => (0, FileOutcome::Unreadable(e), None, 0),
            };
            if let Some(block) = block {
                embedded.tokens += tokens;
                embedded.text.push_str(&block);
            }
            embedded.reports.push(FileReport {
                path: path.clone(),
                bytes,
                tokens,
                outcome,
            });
        }
        embedded
    }

    /// A file's text; not read past its first bytes when it cannot fit `room` tokens.
    fn read_text(&self, path: &Path, room: u64, meter: &ReadMeter) -> Result<Text, ReadError> {
        let (file, len) = self.open(path).map_err(|e| match e {
            refused @ (FileError::ZenOwn { .. }
            | FileError::Denied { .. }
            | FileError::SystemPath(_)) => ReadError::Refused(refused),
            FileError::Special(_) | FileError::Directory(_) => {
                ReadError::Other("not a regular file".into())
            }
            other => ReadError::Other(other.to_string()),
        })?;
        if len > MAX_FILE_BYTES {
            return Err(ReadError::Other(format!(
                "{} MiB is over the 10 MiB per-file limit",
                len / (1024 * 1024)
            )));
        }
        let mut limited = file.take(MAX_FILE_BYTES);
        let mut bytes = Vec::with_capacity((len as usize).min(SNIFF_BYTES));
        let sniffed = (&mut limited)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| ReadError::Other(format!("cannot read it ({e})")))?;
        if !meter.take(sniffed as u64) {
            return Err(ReadError::Other(over_call_limit()));
        }
        if bytes.contains(&0) {
            return Err(ReadError::Binary(len));
        }
        // Each byte is at least a quarter of a token as estimated: a file this size cannot fit.
        if len.div_ceil(4) > room {
            return Ok(Text::TooBig(len));
        }
        let rest = len.saturating_sub(sniffed as u64);
        if !meter.take(rest) {
            return Err(ReadError::Other(over_call_limit()));
        }
        bytes.reserve(rest as usize);
        limited
            .read_to_end(&mut bytes)
            .map_err(|e| ReadError::Other(format!("cannot read it ({e})")))?;
        self.check_content(path, &bytes)
            .map_err(ReadError::Refused)?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Text::Fits(len, text)),
            Err(_) => Err(ReadError::Binary(len)),
        }
    }

    /// A `prompt.txt` the client named: checked, capped at [`MAX_PROMPT_FILE_BYTES`].
    pub fn read_prompt_file(&self, raw: &str, meter: &ReadMeter) -> Result<String, FileError> {
        let bytes = self.read_whole(
            raw,
            MAX_PROMPT_FILE_BYTES,
            "prompt.txt",
            "put the material in other files and name them in `absolute_file_paths`",
            meter,
        )?;
        let path = Path::new(raw.trim());
        self.check_content(path, &bytes)?;
        String::from_utf8(bytes).map_err(|_| FileError::Unreadable {
            path: raw.trim().to_owned(),
            reason: "it is not UTF-8 text".into(),
        })
    }

    /// An image file the client named: checked, capped at [`MAX_IMAGE_BYTES`].
    pub fn read_image(&self, raw: &str, meter: &ReadMeter) -> Result<Vec<u8>, FileError> {
        self.read_whole(
            raw,
            MAX_IMAGE_BYTES,
            "an image",
            "send a smaller image",
            meter,
        )
    }

    fn read_whole(
        &self,
        raw: &str,
        limit: u64,
        what: &'static str,
        hint: &'static str,
        meter: &ReadMeter,
    ) -> Result<Vec<u8>, FileError> {
        let path = self.check_path(raw)?;
        let (file, len) = self.open(&path)?;
        let too_large = |size| FileError::TooLarge {
            path: raw.trim().to_owned(),
            size,
            limit,
            what,
            hint,
        };
        if len > limit {
            return Err(too_large(len));
        }
        if !meter.take(len) {
            return Err(FileError::Unreadable {
                path: raw.trim().to_owned(),
                reason: over_call_limit(),
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| FileError::Unreadable {
                path: raw.trim().to_owned(),
                reason: e.to_string(),
            })?;
        if bytes.len() as u64 > limit {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }
}

/// Runs `read` (file reads) so that other sessions' tasks do not wait on it:
/// on zend's multi-threaded runtime the worker hands its queue to another
/// thread for the duration (`block_in_place`); elsewhere (tests) it just runs.
pub fn off_worker<R>(read: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(read)
        }
        _ => read(),
    }
}

fn over_call_limit() -> String {
    format!(
        "this call already read {} MiB of files, the most one call reads; name fewer files",
        MAX_CALL_READ_BYTES / (1024 * 1024)
    )
}

/// A line opening a PEM private key block (`-----BEGIN ... PRIVATE KEY-----`,
/// OpenSSH's and PGP's included).
fn holds_private_key(text: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"PRIVATE KEY";
    text.split(|b| *b == b'\n').any(|line| {
        let line = line.trim_ascii_start();
        line.starts_with(b"-----BEGIN ") && line.windows(NEEDLE.len()).any(|w| w == NEEDLE)
    })
}

fn is_system(path: &Path) -> bool {
    // A path with `..` is judged after normalisation by canonicalize; here only the literal prefix.
    if path.components().any(|c| c == Component::ParentDir) {
        return false;
    }
    SYSTEM_DIRS.iter().any(|dir| path.starts_with(dir))
}

fn push(expanded: &mut Expanded, path: PathBuf) {
    if expanded.files.len() >= MAX_FILES {
        expanded.truncated += 1;
    } else {
        expanded.files.push(path);
    }
}

/// One file as it went into the prompt, or why it did not.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub tokens: u64,
    pub outcome: FileOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    Embedded,
    /// Did not fit the remaining budget.
    OverBudget,
    Binary,
    /// A rule (or a private key inside) forbids sending it.
    Refused(FileError),
    Unreadable(String),
}

/// Embedded file text plus what happened to every file.
#[derive(Debug, Default, Clone)]
pub struct Embedded {
    pub text: String,
    pub tokens: u64,
    pub reports: Vec<FileReport>,
}

impl Embedded {
    pub fn over_budget(&self) -> impl Iterator<Item = &FileReport> {
        self.reports
            .iter()
            .filter(|r| r.outcome == FileOutcome::OverBudget)
    }

    /// The first refusal among `named` files: it fails the call.
    pub fn refused_among(&self, named: &HashSet<PathBuf>) -> Option<FileError> {
        self.reports.iter().find_map(|r| match &r.outcome {
            FileOutcome::Refused(error) if named.contains(&r.path) => Some(error.clone()),
            _ => None,
        })
    }

    /// One line per file that was not embedded, for the prompt and the answer.
    pub fn notes(&self) -> Vec<String> {
        self.reports
            .iter()
            .filter_map(|r| {
                let why = match &r.outcome {
                    FileOutcome::Embedded => return None,
                    FileOutcome::OverBudget => {
                        format!("left out: ~{} tokens did not fit the budget", r.tokens)
                    }
                    FileOutcome::Binary => "skipped: binary file".to_owned(),
                    FileOutcome::Refused(e) => format!("refused: {e}"),
                    FileOutcome::Unreadable(e) => format!("skipped: {e}"),
                };
                Some(format!("{} ({why})", r.path.display()))
            })
            .collect()
    }
}

enum Text {
    Fits(u64, String),
    /// Too many bytes for the room left; not read past its first bytes.
    TooBig(u64),
}

enum ReadError {
    Binary(u64),
    Refused(FileError),
    Other(String),
}

/// A file as the model sees it: delimited, with line numbers for precise references.
pub fn format_file(path: &Path, text: &str) -> String {
    let mut block = format!("--- BEGIN FILE: {} ---\n", path.display());
    for (number, line) in text.lines().enumerate() {
        block.push_str(&format!("{:>5}│ {line}\n", number + 1));
    }
    block.push_str(&format!("--- END FILE: {} ---\n\n", path.display()));
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(text: &str) -> u64 {
        text.len() as u64 / 4
    }

    fn check_path(raw: &str) -> Result<PathBuf, FileError> {
        FilePolicy::shipped().check_path(raw)
    }

    fn expand(paths: &[String]) -> Result<Expanded, FileError> {
        FilePolicy::shipped().expand(paths)
    }

    fn embed(files: &[PathBuf], budget: u64, estimate: impl Fn(&str) -> u64) -> Embedded {
        FilePolicy::shipped().embed(files, budget, estimate, &ReadMeter::default())
    }

    fn policy(own: &Path, deny: &[&str], allow: &[&str]) -> FilePolicy {
        let mut config = FilePolicy::shipped_config();
        config.deny = deny.iter().map(|s| (*s).to_owned()).collect();
        config.allow = allow.iter().map(|s| (*s).to_owned()).collect();
        FilePolicy::new(&[("config", own)], &config, Path::new("/cfg/server.yaml"))
    }

    #[test]
    fn zen_dirs_credentials_and_private_keys_are_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let own = root.join("zen-config");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join(".env"), "OPENAI_API_KEY=sk-x").unwrap();
        std::fs::create_dir_all(root.join("p/.ssh")).unwrap();
        std::fs::create_dir_all(root.join("p/.aws")).unwrap();
        std::fs::write(root.join("p/.ssh/config"), "Host x").unwrap();
        std::fs::write(root.join("p/.aws/credentials"), "[default]").unwrap();
        std::fs::write(root.join("p/id_ed25519"), "key").unwrap();
        std::fs::write(root.join("p/secret.txt"), "s").unwrap();
        std::fs::write(
            root.join("p/key.pem"),
            "junk\n-----BEGIN RSA PRIVATE KEY-----\nMII\n",
        )
        .unwrap();
        std::fs::write(root.join("p/cert.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
        let policy = policy(&own, &["*.txt"], &["/never/**"]);
        let path = |p: &str| root.join(p).to_string_lossy().into_owned();
        let err = policy.check_path(&path("zen-config/.env")).unwrap_err();
        assert!(
            matches!(err, FileError::ZenOwn { what: "config", .. }),
            "{err}"
        );
        for (file, rule) in [
            ("p/.ssh/config", ".ssh"),
            ("p/.aws/credentials", ".aws/credentials"),
            ("p/id_ed25519", "id_ed25519"),
            ("p/secret.txt", "*.txt"),
        ] {
            let err = policy.check_path(&path(file)).unwrap_err();
            assert_eq!(
                err,
                FileError::Denied {
                    path: path(file),
                    rule: rule.into(),
                    config: "/cfg/server.yaml".into()
                }
            );
            assert!(err.to_string().contains("files.allow"), "{err}");
        }
        // Walking the project leaves the refused files out, with a reason.
        let expanded = policy.expand(&[path("p")]).unwrap();
        let names: Vec<_> = expanded
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["cert.pem", "key.pem"]);
        assert_eq!(expanded.skipped.len(), 2, "{:?}", expanded.skipped);
        // A private key is refused by its content, a certificate is not.
        let embedded = policy.embed(&expanded.files, 10_000, estimate, &ReadMeter::default());
        assert_eq!(embedded.reports[0].outcome, FileOutcome::Embedded);
        assert!(matches!(
            embedded.reports[1].outcome,
            FileOutcome::Refused(FileError::PrivateKey { .. })
        ));
        assert!(!embedded.text.contains("MII"));
        // `files.allow` lets a denied file and a key through, never zen's own.
        let allowing = FilePolicy::new(
            &[("config", &own)],
            &FilesConfig {
                allow: vec![path("p/id_ed25519"), "key.pem".into(), path("zen-config")],
                ..FilePolicy::shipped_config()
            },
            Path::new("/cfg/server.yaml"),
        );
        assert!(allowing.check_path(&path("p/id_ed25519")).is_ok());
        let embedded = allowing.embed(
            &[root.join("p/key.pem")],
            10_000,
            estimate,
            &ReadMeter::default(),
        );
        assert_eq!(embedded.reports[0].outcome, FileOutcome::Embedded);
        assert!(matches!(
            allowing.check_path(&path("zen-config/.env")),
            Err(FileError::ZenOwn { .. })
        ));
        // A directory holding zen's own may be walked; zen's own is left out.
        let expanded = allowing
            .expand(&[root.to_string_lossy().into_owned()])
            .unwrap();
        assert!(
            expanded.files.iter().all(|f| !f.starts_with(&own)),
            "{:?}",
            expanded.files
        );
    }

    #[test]
    fn globs_and_anchored_rules() {
        assert!(glob("id_*", "id_rsa") && glob("*.pem", "a.pem") && glob("a?c", "abc"));
        assert!(!glob("*.pem", "a.pem.txt") && !glob("id_rsa", "id_rsa.pub"));
        let homes = [PathBuf::from("/home/me")];
        let rule = &Rule::parse("~/.kube/config", &homes)[0];
        assert!(rule.matches(Path::new("/home/me/.kube/config")));
        assert!(!rule.matches(Path::new("/srv/home/me/.kube/config")));
        let anywhere = &Rule::parse(".kube/config", &homes)[0];
        assert!(anywhere.matches(Path::new("/srv/x/.kube/config/inner")));
        assert!(!anywhere.matches(Path::new("/srv/x/.kube/configs")));
    }

    #[test]
    fn a_fifo_is_refused_once_open_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("swapped");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .map(|s| s.success());
        if !made.unwrap_or(false) {
            eprintln!("skipped: no mkfifo");
            return;
        }
        // As if it had been a regular file when checked: read by the embedder directly.
        let embedded = embed(&[fifo], 10_000, estimate);
        assert_eq!(
            embedded.reports[0].outcome,
            FileOutcome::Unreadable("not a regular file".into())
        );
    }

    #[test]
    fn prompt_files_and_calls_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("prompt.txt");
        std::fs::write(&big, "x".repeat(MAX_PROMPT_FILE_BYTES as usize + 1)).unwrap();
        let err = FilePolicy::shipped()
            .read_prompt_file(big.to_str().unwrap(), &ReadMeter::default())
            .unwrap_err();
        assert!(matches!(err, FileError::TooLarge { .. }), "{err}");
        let meter = ReadMeter::default();
        assert!(meter.take(MAX_CALL_READ_BYTES));
        let small = dir.path().join("small.txt");
        std::fs::write(&small, "hello").unwrap();
        let embedded = FilePolicy::shipped().embed(&[small], 10_000, estimate, &meter);
        assert!(
            matches!(&embedded.reports[0].outcome, FileOutcome::Unreadable(e) if e.contains("MiB"))
        );
    }

    #[test]
    fn relative_system_missing_and_special_paths_are_refused() {
        assert!(matches!(
            check_path("src/main.rs"),
            Err(FileError::NotAbsolute(_))
        ));
        assert!(matches!(
            check_path("/etc/passwd"),
            Err(FileError::SystemPath(_))
        ));
        assert!(matches!(check_path("/"), Err(FileError::SystemPath(_))));
        assert!(matches!(
            check_path("/nonexistent/zen/file"),
            Err(FileError::Missing(_))
        ));
        assert!(matches!(
            check_path("/dev/zero"),
            Err(FileError::SystemPath(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .map(|s| s.success());
        if made.unwrap_or(false) {
            assert!(matches!(
                check_path(fifo.to_str().unwrap()),
                Err(FileError::Special(_))
            ));
        }
    }

    #[test]
    fn a_symlink_to_a_system_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("passwd");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        assert!(matches!(
            check_path(link.to_str().unwrap()),
            Err(FileError::SystemPath(_))
        ));
    }

    #[test]
    fn directories_expand_skipping_hidden_build_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/nested")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("node_modules/x")).unwrap();
        std::fs::write(root.join("src/a.rs"), "fn a() {}").unwrap();
        std::fs::write(root.join("src/nested/b.rs"), "fn b() {}").unwrap();
        std::fs::write(root.join(".git/config"), "x").unwrap();
        std::fs::write(root.join("node_modules/x/i.js"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("src/etc")).unwrap();
        let expanded = expand(&[root.to_string_lossy().into_owned()]).unwrap();
        let names: Vec<String> = expanded
            .files
            .iter()
            .map(|p| {
                p.strip_prefix(std::fs::canonicalize(root).unwrap())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, vec!["src/a.rs", "src/nested/b.rs"]);
        assert_eq!(expanded.skipped.len(), 1);
    }

    #[test]
    fn embedding_respects_the_budget_and_skips_binaries() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.txt");
        let big = dir.path().join("big.txt");
        let bin = dir.path().join("blob.bin");
        std::fs::write(&small, "hello\nworld\n").unwrap();
        std::fs::write(&big, "x".repeat(10_000)).unwrap();
        std::fs::write(&bin, [0u8, 1, 2, 3]).unwrap();
        let embedded = embed(&[small.clone(), big.clone(), bin.clone()], 200, estimate);
        assert!(embedded.text.contains("    1│ hello"));
        assert!(
            embedded
                .text
                .contains(&format!("--- END FILE: {} ---", small.display()))
        );
        let outcomes: Vec<_> = embedded.reports.iter().map(|r| r.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            vec![
                FileOutcome::Embedded,
                FileOutcome::OverBudget,
                FileOutcome::Binary
            ]
        );
        assert_eq!(embedded.notes().len(), 2);
    }

    #[test]
    fn too_many_paths_are_refused_before_touching_the_disk() {
        let many: Vec<String> = (0..MAX_FILES + 1).map(|i| format!("/tmp/{i}")).collect();
        assert_eq!(expand(&many), Err(FileError::TooMany(MAX_FILES + 1)));
    }

    /// zend runs one async worker: a read that blocks (a slow disk, a hung
    /// network mount) must leave it to the other sessions' tasks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocking_read_off_the_worker_stalls_no_other_task() {
        let (started, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let slow = tokio::spawn(async move {
            off_worker(move || {
                let _ = started.send(());
                released.recv().is_ok()
            })
        });
        // Runs only if the worker is free while the read blocks; it is what ends the read.
        let other = tokio::spawn(async move {
            let _ = started_rx.await;
            let _ = release.send(());
        });
        other.await.unwrap();
        assert!(slow.await.unwrap());
    }
}
