//! What precommit reads from a git repository: staged and unstaged changes, or
//! the changes since a ref, through the `git` command (always present where
//! people commit, and nothing to link).
//!
//! A repository's contents are not trusted: its `.git/config` and
//! `.gitattributes` can name programs (an fsmonitor, clean/smudge filters,
//! external diff and textconv drivers, hooks) that git would run for a plain
//! `git diff`, turning a read-only tool into command execution. So git runs
//! with all of those off (`core.fsmonitor=false`, `core.hooksPath=/dev/null`,
//! every filter the configuration names blanked, `--no-ext-diff
//! --no-textconv`), with no network (`protocol.allow=never`,
//! `GIT_NO_LAZY_FETCH=1`), in a cleared environment (no `GIT_*` variable, no
//! provider key) with the user's umask, in its own process group killed whole
//! on timeout or when the call is dropped, with prompts off, no pager, a cap on
//! what is read and stderr drained while capped. The diff given to the expert is cut per file to
//! a character budget, and the cut files are named.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Longest a git command may run.
const GIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes read from one git command (16 MiB); the rest is not read.
const MAX_GIT_OUTPUT: usize = 16 * 1024 * 1024;
/// Untracked files named one by one at most.
const MAX_UNTRACKED_LISTED: usize = 50;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GitError {
    #[error(
        "the git command was not found on zend's PATH; install git (zend runs it to read changes)"
    )]
    NoGit,
    #[error("'{0}' does not exist; pass the absolute path of a git repository in `path`")]
    Missing(String),
    #[error(
        "'{0}' is not inside a git repository; pass the absolute path of a repository (or a folder in one) in `path`"
    )]
    NotARepo(String),
    #[error(
        "`compare_to`: '{reference}' is not a commit, branch or tag in {repo}; pass one such as main or origin/main"
    )]
    UnknownRef { reference: String, repo: String },
    #[error(
        "the repository at {0} has no commits yet, so `compare_to` has nothing to compare; drop it to review staged and unstaged changes"
    )]
    NoCommits(String),
    #[error("git {command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("git {0} did not finish within {secs} s; review a smaller change", secs = GIT_TIMEOUT.as_secs())]
    TimedOut(String),
}

/// Which changes to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Changes between this ref and HEAD (from their merge base); overrides the two below.
    pub compare_to: Option<String>,
    pub staged: bool,
    pub unstaged: bool,
}

/// A repository, found from a path inside it.
#[derive(Debug, Clone)]
pub struct Repo {
    pub root: PathBuf,
    /// `-c filter.<name>.<program>=` for every filter the configuration names.
    overrides: Vec<String>,
}

struct GitOutput {
    stdout: Vec<u8>,
    /// More than `MAX_GIT_OUTPUT` bytes were written; the rest was not read.
    truncated: bool,
}

/// Settings given to every git command, over anything the repository says.
const HARDENING: &[&str] = &[
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.untrackedCache=false",
    "-c",
    "protocol.allow=never",
    "-c",
    "core.quotepath=off",
    "--no-pager",
];
/// The only variables git gets from zend's environment (its own config lives under these).
const GIT_ENV: &[&str] = &["PATH", "HOME", "XDG_CONFIG_HOME", "TMPDIR"];
/// Bytes of git's stderr kept for error messages.
const MAX_GIT_STDERR: usize = 64 * 1024;

/// Kills a git's whole process group when dropped (timeout, cancelled call, or done).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        super::clink::kill_group(self.0);
    }
}

/// Reads `reader` to its end, keeping the first `cap` bytes, so the writer never blocks.
async fn drain_capped(mut reader: impl tokio::io::AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..n.min(room)]);
            }
        }
    }
}

async fn git(dir: &Path, overrides: &[String], args: &[&str]) -> Result<GitOutput, GitError> {
    let command_text = args.first().copied().unwrap_or("").to_owned();
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(HARDENING)
        .args(overrides)
        .args(args)
        .env_clear();
    for key in GIT_ENV {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_NO_LAZY_FETCH", "1")
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    // Whatever git writes in the repository gets the user's umask, not zend's 077.
    crate::hardening::user_umask(&mut command);
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => GitError::NoGit,
        _ => GitError::Failed {
            command: command_text.clone(),
            stderr: e.to_string(),
        },
    })?;
    let _group = GroupGuard(child.id());
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(GitError::Failed {
            command: command_text,
            stderr: "no pipes".into(),
        });
    };
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            let mut limited = stdout.take(MAX_GIT_OUTPUT as u64 + 1);
            let result = limited.read_to_end(&mut out).await;
            // Dropping the pipe here ends a git that writes more than we read.
            drop(limited);
            result
        };
        let read_err = async { err = drain_capped(stderr, MAX_GIT_STDERR).await };
        let (read, ()) = tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (read, status, out, err)
    };
    let (read, status, mut stdout, stderr) = tokio::time::timeout(GIT_TIMEOUT, run)
        .await
        .map_err(|_| GitError::TimedOut(command_text.clone()))?;
    let failed = |stderr: String| GitError::Failed {
        command: command_text.clone(),
        stderr,
    };
    read.map_err(|e| failed(e.to_string()))?;
    let truncated = stdout.len() > MAX_GIT_OUTPUT;
    stdout.truncate(MAX_GIT_OUTPUT);
    let status = status.map_err(|e| failed(e.to_string()))?;
    if !status.success() && !truncated {
        let text = String::from_utf8_lossy(&stderr).trim().to_owned();
        return Err(failed(if text.is_empty() {
            status.to_string()
        } else {
            text
        }));
    }
    Ok(GitOutput { stdout, truncated })
}

/// Blanks every program a `filter.<name>.*` setting names (reading config runs
/// nothing): git then passes file contents through unfiltered.
async fn filter_overrides(root: &Path) -> Result<Vec<String>, GitError> {
    let listed = git(
        root,
        &[],
        &["config", "--name-only", "-z", "--get-regexp", r"^filter\."],
    )
    .await;
    let keys = match listed {
        Ok(output) => text(&output),
        // Exit code 1: no such setting.
        Err(GitError::Failed { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut overrides = Vec::new();
    for key in keys.split('\0').filter(|k| !k.is_empty()) {
        let Some((name, _)) = key
            .strip_prefix("filter.")
            .and_then(|rest| rest.rsplit_once('.'))
        else {
            continue;
        };
        for setting in ["clean=", "smudge=", "process=", "required=false"] {
            let value = format!("filter.{name}.{setting}");
            if !overrides.contains(&value) {
                overrides.push("-c".to_owned());
                overrides.push(value);
            }
        }
    }
    Ok(overrides)
}

fn text(output: &GitOutput) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Repo {
    /// The repository holding `path` (absolute; a file or a folder).
    pub async fn open(path: &str) -> Result<Self, GitError> {
        let given = Path::new(path.trim());
        let resolved =
            std::fs::canonicalize(given).map_err(|_| GitError::Missing(path.trim().to_owned()))?;
        let dir = if resolved.is_dir() {
            resolved.clone()
        } else {
            resolved
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or(resolved.clone())
        };
        match git(&dir, &[], &["rev-parse", "--show-toplevel"]).await {
            Ok(output) => {
                let root = PathBuf::from(text(&output).trim());
                let overrides = filter_overrides(&root).await?;
                Ok(Self { root, overrides })
            }
            Err(GitError::Failed { stderr, .. }) if stderr.contains("not a git repository") => {
                Err(GitError::NotARepo(path.trim().to_owned()))
            }
            Err(e) => Err(e),
        }
    }

    async fn run(&self, args: &[&str]) -> Result<GitOutput, GitError> {
        git(&self.root, &self.overrides, args).await
    }

    pub async fn has_commits(&self) -> bool {
        self.run(&["rev-parse", "--verify", "-q", "HEAD"])
            .await
            .is_ok()
    }

    /// The current branch, if any (also on a repository with no commits).
    pub async fn branch(&self) -> Option<String> {
        let output = self.run(&["symbolic-ref", "--short", "-q", "HEAD"]).await;
        output
            .ok()
            .map(|o| text(&o).trim().to_owned())
            .filter(|b| !b.is_empty())
    }

    async fn check_ref(&self, reference: &str) -> Result<(), GitError> {
        let unknown = || GitError::UnknownRef {
            reference: reference.to_owned(),
            repo: self.root.display().to_string(),
        };
        if reference.is_empty() || reference.starts_with('-') {
            return Err(unknown());
        }
        if !self.has_commits().await {
            return Err(GitError::NoCommits(self.root.display().to_string()));
        }
        let spec = format!("{reference}^{{commit}}");
        self.run(&["rev-parse", "--verify", "-q", &spec])
            .await
            .map(drop)
            .map_err(|_| unknown())
    }

    /// The diffs selected, one section per kind of change.
    pub async fn changes(&self, selection: &Selection) -> Result<Changes, GitError> {
        let base = [
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--find-renames",
        ];
        let mut changes = Changes {
            root: self.root.clone(),
            branch: self.branch().await,
            ..Changes::default()
        };
        if let Some(reference) = selection.compare_to.as_deref().map(str::trim) {
            self.check_ref(reference).await?;
            let range = format!("{reference}...HEAD");
            let mut args = base.to_vec();
            args.extend([range.as_str(), "--"]);
            let output = self.run(&args).await?;
            changes.push(format!("changes from {reference} to HEAD"), &output);
            return Ok(changes);
        }
        if selection.staged {
            let mut args = base.to_vec();
            args.push("--cached");
            let output = self.run(&args).await?;
            changes.push("staged changes".into(), &output);
        }
        if selection.unstaged {
            let output = self.run(&base).await?;
            changes.push("unstaged changes".into(), &output);
            let output = self
                .run(&["ls-files", "--others", "--exclude-standard", "-z"])
                .await?;
            changes.untracked = output
                .stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
        }
        Ok(changes)
    }
}

/// One file's part of a diff.
#[derive(Debug, Clone, PartialEq)]
pub struct FileDiff {
    pub path: String,
    pub text: String,
    pub added: usize,
    pub removed: usize,
    pub binary: bool,
}

/// The changes read from a repository.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub root: PathBuf,
    pub branch: Option<String>,
    /// (label, per-file diffs)
    pub sections: Vec<(String, Vec<FileDiff>)>,
    pub untracked: Vec<String>,
    /// Labels of sections whose git output was over the read cap.
    pub truncated: Vec<String>,
}

/// Splits `git diff` output into per-file parts.
pub fn split_diff(diff: &str) -> Vec<FileDiff> {
    let mut files: Vec<FileDiff> = Vec::new();
    for line in diff.split_inclusive('\n') {
        if let Some(header) = line.strip_prefix("diff --git ") {
            let path = header
                .trim_end()
                .rsplit_once(" b/")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_else(|| header.trim_end().to_owned());
            files.push(FileDiff {
                path,
                text: String::new(),
                added: 0,
                removed: 0,
                binary: false,
            });
        }
        let Some(file) = files.last_mut() else {
            continue;
        };
        file.text.push_str(line);
        if line.starts_with("+++ ") || line.starts_with("--- ") {
            continue;
        }
        if line.starts_with('+') {
            file.added += 1;
        } else if line.starts_with('-') {
            file.removed += 1;
        } else if line.starts_with("Binary files ") || line.starts_with("GIT binary patch") {
            file.binary = true;
        }
    }
    files
}

impl Changes {
    fn push(&mut self, label: String, output: &GitOutput) {
        if output.truncated {
            self.truncated.push(label.clone());
        }
        self.sections.push((label, split_diff(&text(output))));
    }

    pub fn is_empty(&self) -> bool {
        self.sections.iter().all(|(_, files)| files.is_empty()) && self.untracked.is_empty()
    }

    /// One line: "repository /r (branch main): staged 2 files (+10/-3); unstaged ...".
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .sections
            .iter()
            .map(|(label, files)| {
                let added: usize = files.iter().map(|f| f.added).sum();
                let removed: usize = files.iter().map(|f| f.removed).sum();
                let binary = files.iter().filter(|f| f.binary).count();
                let mut part = format!(
                    "{label}: {} file{} (+{added}/-{removed})",
                    files.len(),
                    if files.len() == 1 { "" } else { "s" }
                );
                if binary > 0 {
                    part.push_str(&format!(", {binary} binary"));
                }
                part
            })
            .collect();
        if !self.untracked.is_empty() {
            parts.push(format!("{} untracked", self.untracked.len()));
        }
        let branch = self
            .branch
            .as_deref()
            .map(|b| format!(" (branch {b})"))
            .unwrap_or_default();
        format!(
            "repository {}{branch}: {}",
            self.root.display(),
            if parts.is_empty() {
                "nothing selected".into()
            } else {
                parts.join("; ")
            }
        )
    }

    /// The diff as the expert reads it, cut per file to `budget_chars`, and one
    /// note per thing cut or not shown.
    pub fn render(&self, budget_chars: usize) -> (String, Vec<String>) {
        let mut text = format!("=== GIT CHANGES: {} ===\n", self.summary());
        let mut notes = Vec::new();
        let mut used = 0;
        let mut cut = Vec::new();
        for (label, files) in &self.sections {
            text.push_str(&format!("\n--- {label} ---\n"));
            if files.is_empty() {
                text.push_str("(none)\n");
            }
            for file in files {
                if used + file.text.len() > budget_chars {
                    cut.push(format!(
                        "{} ({label}, +{}/-{} lines)",
                        file.path, file.added, file.removed
                    ));
                    continue;
                }
                used += file.text.len();
                text.push_str(&file.text);
            }
        }
        if !cut.is_empty() {
            let list = cut.join(", ");
            text.push_str(&format!(
                "\n(over the {budget_chars}-character diff budget, left out: {list})\n"
            ));
            notes.push(format!(
                "the diff was over its {budget_chars}-character budget; left out of the expert's view: \
                 {list}. Review those yourself or run precommit on fewer changes."
            ));
        }
        for label in &self.truncated {
            notes.push(format!(
                "{label}: git wrote more than {} MiB; the rest was not read",
                MAX_GIT_OUTPUT / (1024 * 1024)
            ));
        }
        let binary: Vec<&str> = self
            .sections
            .iter()
            .flat_map(|(_, files)| files.iter().filter(|f| f.binary))
            .map(|f| f.path.as_str())
            .collect();
        if !binary.is_empty() {
            notes.push(format!(
                "binary changes (content not reviewed): {}",
                binary.join(", ")
            ));
        }
        if !self.untracked.is_empty() {
            let shown: Vec<&str> = self
                .untracked
                .iter()
                .take(MAX_UNTRACKED_LISTED)
                .map(String::as_str)
                .collect();
            let more = self.untracked.len().saturating_sub(shown.len());
            let mut list = shown.join(", ");
            if more > 0 {
                list.push_str(&format!(" and {more} more"));
            }
            text.push_str(&format!("\nuntracked files (not in the diff): {list}\n"));
            notes.push(format!(
                "untracked files are not in the diff: {list}; `git add` them (or pass them in \
                 relevant_files) to have them reviewed"
            ));
        }
        text.push_str("=== END GIT CHANGES ===\n");
        (text, notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap();
        assert!(status.success(), "{script}");
    }

    fn all() -> Selection {
        Selection {
            compare_to: None,
            staged: true,
            unstaged: true,
        }
    }

    #[tokio::test]
    async fn a_repository_with_no_commits_has_staged_unstaged_and_untracked_changes() {
        let dir = tempfile::tempdir().unwrap();
        sh(
            dir.path(),
            "git init -q -b main && printf 'one\\n' > a.txt && git add a.txt && \
             printf 'two\\n' >> a.txt && printf 'new\\n' > u.txt && printf '\\000\\001' > b.bin && git add b.bin",
        );
        let repo = Repo::open(&dir.path().join("a.txt").to_string_lossy())
            .await
            .unwrap();
        assert!(!repo.has_commits().await);
        let changes = repo.changes(&all()).await.unwrap();
        let summary = changes.summary();
        assert!(
            summary.contains("(branch main)")
                && summary.contains("staged changes: 2 files (+1/-0), 1 binary")
                && summary.contains("unstaged changes: 1 file (+1/-0)")
                && summary.contains("1 untracked"),
            "{summary}"
        );
        let (text, notes) = changes.render(100_000);
        assert!(text.contains("+two"), "{text}");
        assert!(
            notes
                .iter()
                .any(|n| n.contains("binary changes") && n.contains("b.bin"))
        );
        assert!(notes.iter().any(|n| n.contains("u.txt")));

        let compare = Selection {
            compare_to: Some("main".into()),
            ..Selection::default()
        };
        assert_eq!(
            repo.changes(&compare).await.unwrap_err(),
            GitError::NoCommits(repo.root.display().to_string())
        );
    }

    #[tokio::test]
    async fn compare_to_reads_committed_changes_and_refuses_unknown_refs() {
        let dir = tempfile::tempdir().unwrap();
        sh(
            dir.path(),
            "git init -q -b main && echo a > a && git add a && git commit -qm one && \
             git checkout -qb feature && echo b >> a && git commit -qam two",
        );
        let repo = Repo::open(&dir.path().to_string_lossy()).await.unwrap();
        let compare = |r: &str| Selection {
            compare_to: Some(r.into()),
            ..Selection::default()
        };
        let changes = repo.changes(&compare("main")).await.unwrap();
        assert!(
            changes
                .summary()
                .contains("changes from main to HEAD: 1 file (+1/-0)"),
            "{}",
            changes.summary()
        );
        for bad in ["nope", "--output=/tmp/x"] {
            assert!(matches!(
                repo.changes(&compare(bad)).await,
                Err(GitError::UnknownRef { .. })
            ));
        }
    }

    #[tokio::test]
    async fn a_path_outside_a_repository_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_string_lossy().into_owned();
        assert_eq!(
            Repo::open(&path).await.unwrap_err(),
            GitError::NotARepo(path.clone())
        );
        let missing = format!("{path}/missing");
        assert_eq!(
            Repo::open(&missing).await.unwrap_err(),
            GitError::Missing(missing)
        );
    }

    #[test]
    fn a_huge_diff_is_cut_per_file_and_says_what_was_cut() {
        let big = format!(
            "diff --git a/big.rs b/big.rs\n--- a/big.rs\n+++ b/big.rs\n{}",
            "+x\n".repeat(5_000)
        );
        let small = "diff --git a/s.rs b/s.rs\n--- a/s.rs\n+++ b/s.rs\n+y\n-z\n";
        let files = split_diff(&format!("{big}{small}"));
        assert_eq!(files.len(), 2);
        assert_eq!(
            (files[0].added, files[1].added, files[1].removed),
            (5_000, 1, 1)
        );
        let changes = Changes {
            sections: vec![("staged changes".into(), files)],
            ..Changes::default()
        };
        let (text, notes) = changes.render(1_000);
        assert!(text.contains("+y") && !text.contains("+x\n+x"), "{text}");
        assert!(text.contains("left out: big.rs (staged changes, +5000/-0 lines)"));
        assert!(notes[0].contains("big.rs"), "{notes:?}");
    }
}
