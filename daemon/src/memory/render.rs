//! Compact text for people and models: a listing of threads and one thread.
//! JSON needs nothing here; the types are `Serialize`.

use std::fmt::Write as _;

use super::{Role, Thread, ThreadSummary};
use crate::time::Timestamp;
use crate::util::human_duration;

/// One block per thread, most recent first:
///
/// ```text
/// 0b6c3a0e-…  2h 5m ago  7 turns  chat → codereview  gpt-5, o3  ~/src/zen
///     Why does the shim hang on EOF?
/// ```
pub fn render_list(threads: &[ThreadSummary], now: Timestamp) -> String {
    if threads.is_empty() {
        return "No conversation threads match.\n".to_owned();
    }
    let mut text = String::new();
    for summary in threads {
        let _ = write!(
            text,
            "{}  {} ago  {} turn{}  {}",
            summary.id,
            human_duration(now.since(summary.updated)),
            summary.turn_count,
            if summary.turn_count == 1 { "" } else { "s" },
            summary.tools.join(" → "),
        );
        if !summary.models.is_empty() {
            let _ = write!(text, "  {}", summary.models.join(", "));
        }
        if let Some(cwd) = &summary.cwd {
            let _ = write!(text, "  {cwd}");
        }
        let _ = writeln!(text, "\n    {}", summary.title);
    }
    text
}

/// A whole thread: a header, then each turn in order.
pub fn render_thread(thread: &Thread) -> String {
    let summary = &thread.summary;
    let mut text = String::new();
    let _ = writeln!(text, "Thread {}: {}", summary.id, summary.title);
    let _ = writeln!(
        text,
        "Started {} by {} ({}, session {}){}; updated {}; expires {}.",
        summary.created.display_minutes(),
        summary.tool(),
        summary.client,
        summary.session_id,
        summary
            .cwd
            .as_ref()
            .map(|cwd| format!(" in {cwd}"))
            .unwrap_or_default(),
        summary.updated.display_minutes(),
        summary.expires.display_minutes(),
    );
    if let Some(parent) = &summary.parent {
        let _ = writeln!(text, "Continues thread {parent}.");
    }
    for (index, turn) in thread.turns.iter().enumerate() {
        let role = match turn.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let _ = write!(text, "\n## {} · {role} · {}", index + 1, turn.tool);
        if let Some(model) = &turn.model {
            let _ = write!(text, " · {model}");
        }
        let _ = writeln!(text, " · {}", turn.time.display_minutes());
        if !turn.files.is_empty() {
            let _ = writeln!(text, "Files: {}", turn.files.join(", "));
        }
        if !turn.images.is_empty() {
            let _ = writeln!(text, "Images: {}", turn.images.join(", "));
        }
        let _ = writeln!(text, "{}", turn.text.trim_end());
    }
    text
}
