//! History for a model call: which turns of a thread go into the prompt, as
//! one text block, and which files the tools layer should embed.
//!
//! Pure functions; no store access. The rules follow Zen, minus its bug:
//! - [`token_budget_for`]: under 300k tokens of context, 60 % is for input and
//!   40 % for the answer; from 300k up, 80/20. History and files share the
//!   input part; the caller decides how much of it history gets.
//! - [`build`] presents turns oldest first, verbatim, and nothing in it changes
//!   from one call to the next but what the new turns add (no turn counts): a
//!   provider's prompt cache reuses it. When the turns do not fit the budget it
//!   drops the oldest in large steps and says in the text how many it left
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
    /// `text` without its closing [`HISTORY_END`] line, in pieces that stay the same from one
    /// call to the next (the header, then one per turn): a provider's prompt cache can reuse
    /// them when they are sent as they are, the closing line after them.
    pub blocks: Vec<String>,
    /// Every file the thread referenced, de-duplicated, newest reference first.
    pub files_newest_first: Vec<String>,
    /// The same files in the order the thread first named them (an order that only grows).
    pub files_first_seen: Vec<String>,
    /// Turns in `text` (the most recent ones).
    pub included_turns: usize,
    /// Earlier turns left out to fit the budget; `text` says so.
    pub omitted_turns: usize,
    /// Estimated tokens of `text`.
    pub tokens: u64,
}

/// Builds the history of `thread` within `budget_tokens`, estimating with `estimate`.
///
/// When the turns do not all fit, the oldest are dropped in steps of half the budget
/// (counted from the thread's first turn), not one by one: the cut stays where it is
/// while the next turns fill the half it freed, so those calls start with the same text
/// and a provider's prompt cache keeps serving it.
pub fn build(thread: &Thread, budget_tokens: u64, estimate: impl Fn(&str) -> u64) -> History {
    let turns = &thread.turns;
    let files_newest_first = files_newest_first(turns);
    let files_first_seen = files_first_seen(turns);
    if turns.is_empty() {
        return History {
            files_newest_first,
            files_first_seen,
            ..History::default()
        };
    }
    let has_files = !files_newest_first.is_empty();
    // Reserve room for the frame as if turns were omitted (the longer header).
    let worst_header = header(thread, turns.len(), has_files);
    let reserved = estimate(&worst_header) + estimate(HISTORY_END) + 2;
    let Some(room) = budget_tokens.checked_sub(reserved) else {
        return History {
            files_newest_first,
            files_first_seen,
            omitted_turns: turns.len(),
            ..History::default()
        };
    };

    let all: Vec<String> = turns
        .iter()
        .enumerate()
        .map(|(index, turn)| turn_block(index + 1, turn))
        .collect();
    let costs: Vec<u64> = all.iter().map(|block| estimate(block)).collect();
    let omitted = first_kept(&costs, room);

    let mut blocks = Vec::with_capacity(1 + all.len() - omitted);
    blocks.push(header(thread, omitted, has_files));
    blocks.extend(all.into_iter().skip(omitted));
    let mut text = blocks.concat();
    text.push('\n');
    text.push_str(HISTORY_END);
    text.push('\n');
    History {
        tokens: estimate(&text),
        text,
        blocks,
        files_newest_first,
        files_first_seen,
        included_turns: turns.len() - omitted,
        omitted_turns: omitted,
    }
}

/// The index of the first turn kept: 0 when all fit in `room`; else the first turn that
/// starts at or after the cut, the cut being the smallest multiple of half of `room`
/// (in tokens from the thread's start) that leaves at most `room` after it.
fn first_kept(costs: &[u64], room: u64) -> usize {
    let total: u64 = costs.iter().sum();
    if total <= room {
        return 0;
    }
    let step = (room / 2).max(1);
    let cut = (total - room).div_ceil(step) * step;
    let mut before = 0;
    for (index, cost) in costs.iter().enumerate() {
        if before >= cut {
            return index;
        }
        before += cost;
    }
    costs.len()
}

fn header(thread: &Thread, omitted: usize, has_files: bool) -> String {
    let summary = &thread.summary;
    let mut text = format!(
        "{HISTORY_START}\nThread {} (started with {}): \"{}\".\n",
        summary.id,
        summary.tool(),
        summary.title,
    );
    if omitted > 0 {
        text.push_str(&format!(
            "Turns 1–{omitted} were left out to fit the context window; the later ones follow, oldest first.\n",
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

fn files_first_seen(turns: &[Turn]) -> Vec<String> {
    let mut seen = HashSet::new();
    turns
        .iter()
        .flat_map(|turn| turn.files.iter())
        .filter(|file| seen.insert(file.as_str()))
        .cloned()
        .collect()
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
