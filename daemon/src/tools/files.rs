//! The files a tool call names: checked, expanded and embedded within a budget.
//!
//! Rules (as Zen's, tightened): paths must be absolute; directories are walked,
//! skipping hidden entries and build/vendor folders, without following symlinks;
//! an explicitly named symlink is resolved and its target checked; system
//! directories and special files (devices, FIFOs, sockets) are refused; binary
//! files are skipped with a note. Embedding goes in the order given (callers put
//! the newest first) until the token budget is spent; what did not fit is listed.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

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

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FileError {
    #[error("'{0}' is not an absolute path; pass full paths such as /home/me/project/src/main.rs")]
    NotAbsolute(String),
    #[error("'{0}' is a system location zen will not read; pass files from your project instead")]
    SystemPath(String),
    #[error("'{0}' does not exist; check the path")]
    Missing(String),
    #[error("'{0}' is a device, FIFO or socket, not a regular file")]
    Special(String),
    #[error("'{path}' is your home directory; pass the project directory or files instead")]
    HomeDirectory { path: String },
    #[error("too many paths ({0}); pass at most {MAX_FILES} files or a few directories")]
    TooMany(usize),
}

/// A file to embed, with why some others were skipped.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Expanded {
    pub files: Vec<PathBuf>,
    /// (path, reason) for entries skipped during expansion.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files not listed because the expansion limit was reached.
    pub truncated: usize,
}

/// Checks one user-supplied path and resolves symlinks.
pub fn check_path(raw: &str) -> Result<PathBuf, FileError> {
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
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from)
        && std::fs::canonicalize(&home).is_ok_and(|h| h == resolved)
    {
        return Err(FileError::HomeDirectory {
            path: trimmed.to_owned(),
        });
    }
    let meta = std::fs::metadata(&resolved).map_err(|_| FileError::Missing(trimmed.to_owned()))?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(FileError::Special(trimmed.to_owned()));
    }
    Ok(resolved)
}

fn is_system(path: &Path) -> bool {
    // A path with `..` is judged after normalisation by canonicalize; here only the literal prefix.
    if path.components().any(|c| c == Component::ParentDir) {
        return false;
    }
    SYSTEM_DIRS.iter().any(|dir| path.starts_with(dir))
}

/// Checks every path and expands directories into files (de-duplicated, order kept).
pub fn expand(paths: &[String]) -> Result<Expanded, FileError> {
    if paths.len() > MAX_FILES {
        return Err(FileError::TooMany(paths.len()));
    }
    let mut expanded = Expanded::default();
    let mut seen = HashSet::new();
    for raw in paths {
        let path = check_path(raw)?;
        if path.is_dir() {
            walk(&path, &mut expanded, &mut seen);
        } else if seen.insert(path.clone()) {
            push(&mut expanded, path);
        }
    }
    Ok(expanded)
}

fn push(expanded: &mut Expanded, path: PathBuf) {
    if expanded.files.len() >= MAX_FILES {
        expanded.truncated += 1;
    } else {
        expanded.files.push(path);
    }
}

fn walk(root: &Path, expanded: &mut Expanded, seen: &mut HashSet<PathBuf>) {
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
                    FileOutcome::Unreadable(e) => format!("skipped: {e}"),
                };
                Some(format!("{} ({why})", r.path.display()))
            })
            .collect()
    }
}

/// Reads and embeds `files` in order while they fit in `budget_tokens`.
pub fn embed(files: &[PathBuf], budget_tokens: u64, estimate: impl Fn(&str) -> u64) -> Embedded {
    let mut embedded = Embedded::default();
    for path in files {
        let (bytes, outcome, block, tokens) = match read_text(path) {
            Ok((bytes, text)) => {
                let block = format_file(path, &text);
                let tokens = estimate(&block);
                if embedded.tokens + tokens > budget_tokens {
                    (bytes, FileOutcome::OverBudget, None, tokens)
                } else {
                    (bytes, FileOutcome::Embedded, Some(block), tokens)
                }
            }
            Err(ReadError::Binary(bytes)) => (bytes, FileOutcome::Binary, None, 0),
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

enum ReadError {
    Binary(u64),
    Other(String),
}

fn read_text(path: &Path) -> Result<(u64, String), ReadError> {
    let meta =
        std::fs::metadata(path).map_err(|e| ReadError::Other(format!("cannot read it ({e})")))?;
    if !meta.is_file() {
        return Err(ReadError::Other("not a regular file".into()));
    }
    let len = meta.len();
    if len > MAX_FILE_BYTES {
        return Err(ReadError::Other(format!(
            "{} MiB is over the 10 MiB per-file limit",
            len / (1024 * 1024)
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES).read_to_end(&mut bytes))
        .map_err(|e| ReadError::Other(format!("cannot read it ({e})")))?;
    if bytes.iter().take(8192).any(|b| *b == 0) {
        return Err(ReadError::Binary(len));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok((len, text)),
        Err(_) => Err(ReadError::Binary(len)),
    }
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
}
