//! The final step's token budget: how much of the expert model's context
//! window the findings, the tool's own context (precommit's diff) and the
//! relevant files may take.
//!
//! The engine refuses a turn whose own files do not fit; a workflow run
//! collects files over many steps, so here they are cut to fit instead: newest
//! first, the oldest left out with a note. The engine's rules are reused
//! (`resolve_model`, `token_budget_for`, `files::expand`/`embed`), so the two
//! agree on what fits.

use super::run::MAX_FINDINGS_CHARS;
use crate::memory::history::token_budget_for;
use crate::providers::estimate_tokens;
use crate::tools::config::ToolConfig;
use crate::tools::files::{self, FileOutcome, FilePolicy, ReadMeter};
use crate::tools::{CallContext, ToolError, engine};

/// Most characters of diff sent to the expert (~25k tokens), whatever the window.
pub const MAX_DIFF_CHARS: usize = 100_000;
/// Assumed when a model does not say (as the engine does).
const DEFAULT_CONTEXT_WINDOW: u64 = 128_000;
/// Characters per token, for turning token room into a character cap.
const CHARS_PER_TOKEN: u64 = 4;
/// Tokens kept free for the framing the engine adds around the request.
const FRAMING_TOKENS: u64 = 64;

/// The input budget of the expert call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub input_tokens: u64,
}

impl Budget {
    /// The budget of the model the final step will call.
    pub fn for_call(
        context: &CallContext,
        config: &ToolConfig,
        model: Option<&str>,
    ) -> Result<Self, ToolError> {
        let model = engine::resolve_model(context, config, model)?;
        let window = model.info.context_window.unwrap_or(DEFAULT_CONTEXT_WINDOW);
        Ok(Self::for_window(window))
    }

    pub fn for_window(context_window: u64) -> Self {
        Self {
            input_tokens: token_budget_for(context_window).0,
        }
    }

    fn chars(&self, share_percent: u64) -> usize {
        (self.input_tokens * CHARS_PER_TOKEN * share_percent / 100) as usize
    }

    /// At most a third of the input for the tool's own context (a diff).
    pub fn diff_chars(&self) -> usize {
        MAX_DIFF_CHARS.min(self.chars(33))
    }

    /// At most a fifth of the input for the findings.
    pub fn findings_chars(&self) -> usize {
        MAX_FINDINGS_CHARS.min(self.chars(20))
    }

    /// The files (in order, newest first) that fit beside `fixed` text, and a
    /// note per file left out. Paths are checked as the engine will check them.
    pub fn fit_files(
        &self,
        policy: &FilePolicy,
        meter: &ReadMeter,
        paths: &[String],
        fixed: &[&str],
    ) -> Result<(Vec<String>, Vec<String>), ToolError> {
        let used: u64 = fixed.iter().map(|t| estimate_tokens(t)).sum::<u64>() + FRAMING_TOKENS;
        // Leave a tenth of the room for the thread's history.
        let room = self.input_tokens.saturating_sub(used) * 9 / 10;
        // The walk and the reads both, off the worker: a slow directory stalls no one else.
        let (expanded, embedded) = files::off_worker(|| {
            let expanded = policy.expand(paths)?;
            let embedded = policy.embed(&expanded.files, room, estimate_tokens, meter);
            Ok((expanded, embedded))
        })
        .map_err(|e: files::FileError| {
            ToolError::InvalidArguments(format!("`relevant_files`: {e}"))
        })?;
        if let Some(refused) = embedded.refused_among(&expanded.named) {
            return Err(ToolError::InvalidArguments(format!(
                "`relevant_files`: {refused}"
            )));
        }
        let mut kept = Vec::new();
        let mut left_out = Vec::new();
        for report in &embedded.reports {
            let path = report.path.to_string_lossy().into_owned();
            if report.outcome == FileOutcome::OverBudget {
                left_out.push(format!("{path} (~{} tokens)", report.tokens));
            } else {
                kept.push(path);
            }
        }
        let mut notes = Vec::new();
        if !left_out.is_empty() {
            notes.push(format!(
                "relevant files left out to fit the expert model's context window (oldest first): {}; \
                 name fewer files, or pick a model with a larger window",
                left_out.join(", ")
            ));
        }
        Ok((kept, notes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_windows_get_smaller_caps() {
        let large = Budget::for_window(1_000_000);
        assert_eq!(large.diff_chars(), MAX_DIFF_CHARS);
        assert_eq!(large.findings_chars(), MAX_FINDINGS_CHARS);
        let small = Budget::for_window(16_000);
        assert!(
            small.diff_chars() < 16_000 * 4 / 3,
            "{}",
            small.diff_chars()
        );
        assert!(small.findings_chars() < small.diff_chars());
    }

    #[test]
    fn files_that_do_not_fit_are_left_out_newest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let newest = dir.path().join("newest.rs");
        let big = dir.path().join("big.rs");
        std::fs::write(&newest, "fn a() {}\n").unwrap();
        std::fs::write(&big, "let x = 1;\n".repeat(20_000)).unwrap();
        let paths = [
            newest.to_string_lossy().into_owned(),
            big.to_string_lossy().into_owned(),
        ];
        let budget = Budget::for_window(16_000);
        let (kept, notes) = budget
            .fit_files(
                &FilePolicy::shipped(),
                &ReadMeter::default(),
                &paths,
                &["prompt"],
            )
            .unwrap();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].ends_with("newest.rs"));
        assert!(notes[0].contains("big.rs"), "{notes:?}");

        let roomy = Budget::for_window(1_000_000);
        let (kept, notes) = roomy
            .fit_files(
                &FilePolicy::shipped(),
                &ReadMeter::default(),
                &paths,
                &["prompt"],
            )
            .unwrap();
        assert_eq!((kept.len(), notes.len()), (2, 0));
    }
}
