//! History for a model call: which turns of a thread go into the prompt, as
//! one text block, and which files the tools layer should embed.
//!
//! Pure functions; no store access. The rules follow Zen, minus its bug:
//! - [`token_budget_for`]: under 300k tokens of context, 60 % is for input and
//!   40 % for the answer; from 300k up, 80/20. History and files share the
//!   input part; the caller decides how much of it history gets.
//! - [`build`] takes turns newest first while they fit the budget, presents
//!   them oldest first, and says in the text how many earlier turns it left
//!   out. It lists every file the thread referenced once, newest first
//!   (including files of omitted turns); the turns name their files but never
//!   embed them, so a file's contents go into the prompt exactly once.
//! - The block starts with [`HISTORY_START`] and ends with [`HISTORY_END`],
//!   and it is the only place history appears. Zen's server wrote
//!   "=== CONVERSATION HISTORY (CONTINUATION) ===" while its tools looked for
//!   "=== CONVERSATION HISTORY ===", so history went in three times and the
//!   user turn twice. Here: build history from the stored thread *before*
//!   appending the new prompt as a turn, put the new prompt after the block
//!   once, and append it (and the answer) after the call.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Role, Thread, Turn};

pub const HISTORY_START: &str = "=== CONVERSATION HISTORY ===";
pub const HISTORY_END: &str = "=== END CONVERSATION HISTORY ===";

/// Models with at least this much context give 80 % of it to input.
const LARGE_CONTEXT: u64 = 300_000;

/// The default token estimate: characters / 4, rounded up.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// `(input_budget, answer_budget)` for a model with this context window.
pub fn token_budget_for(context_window: u64) -> (u64, u64) {
    let input_percent = if context_window < LARGE_CONTEXT {
        60
    } else {
        80
    };
    let input = context_window.saturating_mul(input_percent) / 100;
    (input, context_window - input)
}

/// The history block for one model call.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct History {
    /// The block to put before the new prompt; empty for a thread with no turns.
    pub text: String,
    /// Every file the thread referenced, de-duplicated, newest reference first.
    pub files_newest_first: Vec<String>,
    /// Turns in `text` (the most recent ones).
    pub included_turns: usize,
    /// Earlier turns left out to fit the budget; `text` says so.
    pub omitted_turns: usize,
    /// Estimated tokens of `text`.
    pub tokens: u64,
}

/// Builds the history of `thread` within `budget_tokens`, estimating with `estimate`.
pub fn build(thread: &Thread, budget_tokens: u64, estimate: impl Fn(&str) -> u64) -> History {
    let turns = &thread.turns;
    let files_newest_first = files_newest_first(turns);
    if turns.is_empty() {
        return History {
            files_newest_first,
            ..History::default()
        };
    }
    // Reserve room for the frame as if turns were omitted (the longer header).
    let worst_header = header(thread, turns.len(), !files_newest_first.is_empty());
    let reserved = estimate(&worst_header) + estimate(HISTORY_END) + 2;
    let Some(mut room) = budget_tokens.checked_sub(reserved) else {
        return History {
            files_newest_first,
            omitted_turns: turns.len(),
            ..History::default()
        };
    };

    let mut blocks = Vec::new();
    for (index, turn) in turns.iter().enumerate().rev() {
        let block = turn_block(index + 1, turn);
        let cost = estimate(&block);
        if cost > room {
            break;
        }
        room -= cost;
        blocks.push(block);
    }
    let omitted = turns.len() - blocks.len();

    let mut text = header(thread, omitted, !files_newest_first.is_empty());
    for block in blocks.iter().rev() {
        text.push_str(block);
    }
    text.push('\n');
    text.push_str(HISTORY_END);
    text.push('\n');
    History {
        tokens: estimate(&text),
        text,
        files_newest_first,
        included_turns: blocks.len(),
        omitted_turns: omitted,
    }
}

fn header(thread: &Thread, omitted: usize, has_files: bool) -> String {
    let summary = &thread.summary;
    let total = thread.turns.len();
    let mut text = format!(
        "{HISTORY_START}\nThread {} (started with {}): \"{}\", {total} turn{} so far.\n",
        summary.id,
        summary.tool(),
        summary.title,
        if total == 1 { "" } else { "s" },
    );
    if omitted > 0 {
        text.push_str(&format!(
            "Turns 1–{omitted} were left out to fit the context window; the {} most recent follow, oldest first.\n",
            total - omitted
        ));
    }
    if has_files {
        text.push_str(
            "Files the turns name are not repeated in them; their current contents are provided once, separately.\n",
        );
    }
    text
}

/// One turn as the prompt shows it. Built piece by piece: it runs for every stored turn of
/// every continued call, and `format!` with its arguments cost ~3k instructions a turn.
fn turn_block(number: usize, turn: &Turn) -> String {
    let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let listed = |items: &[String]| items.iter().map(|i| i.len() + 2).sum::<usize>() + 10;
    let mut block = String::with_capacity(
        48 + turn.tool.len()
            + optional(&turn.model)
            + optional(&turn.provider)
            + listed(&turn.files)
            + listed(&turn.images)
            + turn.text.len(),
    );
    block.push_str("\n--- Turn ");
    let _ = write!(block, "{number}");
    block.push_str(": ");
    match (turn.role, &turn.model) {
        (Role::User, _) => block.push_str("user"),
        (Role::Assistant, Some(model)) => {
            block.push_str("assistant ");
            block.push_str(model);
            if let Some(provider) = &turn.provider {
                block.push_str(" (");
                block.push_str(provider);
                block.push(')');
            }
        }
        (Role::Assistant, None) => block.push_str("assistant"),
    }
    block.push_str(", via ");
    block.push_str(&turn.tool);
    block.push_str(" ---\n");
    for (label, items) in [("Files: ", &turn.files), ("Images: ", &turn.images)] {
        if let Some((first, rest)) = items.split_first() {
            block.push_str(label);
            block.push_str(first);
            for item in rest {
                block.push_str(", ");
                block.push_str(item);
            }
            block.push('\n');
        }
    }
    block.push_str(turn.text.trim_end());
    block.push('\n');
    block
}

fn files_newest_first(turns: &[Turn]) -> Vec<String> {
    let mut seen = HashSet::new();
    turns
        .iter()
        .rev()
        .flat_map(|turn| turn.files.iter())
        .filter(|file| seen.insert(file.as_str()))
        .cloned()
        .collect()
}
