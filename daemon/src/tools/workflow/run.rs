//! The state of one run of a step-protocol tool, as stored on its thread
//! (keyed by thread and tool, so runs never see each other), and the findings
//! block the expert reads at the end.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::step::{Issue, Severity, Step};

/// Longest step or findings text kept per step; the turn on the thread has it whole.
const MAX_STEP_CHARS: usize = 12_000;
/// Longest findings block sent to the expert; the oldest steps go first.
pub const MAX_FINDINGS_CHARS: usize = 48_000;

/// One step as the run remembers it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step_number: u32,
    pub step: String,
    pub findings: String,
    #[serde(default)]
    pub files_checked: Vec<String>,
    #[serde(default)]
    pub relevant_files: Vec<String>,
    #[serde(default)]
    pub relevant_context: Vec<String>,
    #[serde(default)]
    pub issues: Vec<Issue>,
    #[serde(default)]
    pub confidence: Option<String>,
    #[serde(default)]
    pub hypothesis: Option<String>,
}

/// A run: its steps so far and the tool's own fields (latest value wins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub steps: Vec<StepRecord>,
    #[serde(default)]
    pub own: Map<String, Value>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub completed: bool,
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{} […]", &text[..cut]),
        None => text.to_owned(),
    }
}

impl Run {
    /// Adds a step. Re-sending a step number (a retry, or backtracking) drops
    /// that step and every later one first.
    pub fn push(&mut self, step: &Step, own: Map<String, Value>) {
        self.steps.retain(|s| s.step_number < step.step_number);
        self.own.extend(own);
        if step.model.is_some() {
            self.model.clone_from(&step.model);
        }
        self.steps.push(StepRecord {
            step_number: step.step_number,
            step: clip(&step.step, MAX_STEP_CHARS),
            findings: clip(&step.findings, MAX_STEP_CHARS),
            files_checked: step.files_checked.clone(),
            relevant_files: step.relevant_files.clone(),
            relevant_context: step.relevant_context.clone(),
            issues: step.issues_found.clone(),
            confidence: step.confidence.clone(),
            hypothesis: step.hypothesis.clone().filter(|h| !h.trim().is_empty()),
        });
    }

    /// Relevant files, newest step first, each once.
    pub fn relevant_files(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.steps
            .iter()
            .rev()
            .flat_map(|s| &s.relevant_files)
            .map(|f| f.trim().to_owned())
            .filter(|f| seen.insert(f.clone()))
            .collect()
    }

    fn distinct(&self, pick: impl Fn(&StepRecord) -> &Vec<String>) -> Vec<String> {
        let mut seen = HashSet::new();
        self.steps
            .iter()
            .flat_map(|s| pick(s).iter())
            .filter(|x| seen.insert(x.as_str()))
            .cloned()
            .collect()
    }

    /// Every issue reported, once, worst first.
    pub fn issues(&self) -> Vec<Issue> {
        let mut seen = HashSet::new();
        let mut issues: Vec<Issue> = self
            .steps
            .iter()
            .flat_map(|s| &s.issues)
            .filter(|i| seen.insert((i.severity, i.description.trim().to_owned())))
            .cloned()
            .collect();
        issues.sort_by_key(|i| i.severity);
        issues
    }

    /// The latest confidence given.
    pub fn confidence(&self) -> Option<&str> {
        self.steps
            .iter()
            .rev()
            .find_map(|s| s.confidence.as_deref())
    }

    pub fn hypothesis(&self) -> Option<&str> {
        self.steps
            .iter()
            .rev()
            .find_map(|s| s.hypothesis.as_deref())
    }

    /// "3 steps, 2 relevant files, 2 issues (1 high, 1 low), confidence high".
    pub fn summary(&self) -> String {
        let issues = self.issues();
        let mut text = format!(
            "{} step{}, {} files checked, {} relevant files, {} issue{}",
            self.steps.len(),
            if self.steps.len() == 1 { "" } else { "s" },
            self.distinct(|s| &s.files_checked).len(),
            self.relevant_files().len(),
            issues.len(),
            if issues.len() == 1 { "" } else { "s" },
        );
        if !issues.is_empty() {
            let counts: Vec<String> = [
                Severity::Critical,
                Severity::High,
                Severity::Medium,
                Severity::Low,
            ]
            .into_iter()
            .filter_map(|severity| {
                let n = issues.iter().filter(|i| i.severity == severity).count();
                (n > 0).then(|| format!("{n} {}", severity.as_str()))
            })
            .collect();
            text.push_str(&format!(" ({})", counts.join(", ")));
        }
        if let Some(confidence) = self.confidence() {
            text.push_str(&format!(", confidence {confidence}"));
        }
        text
    }

    /// What the expert reads besides the files: the tool's settings, the
    /// assistant's steps (oldest dropped first when over the budget), issues,
    /// hypothesis and the context it named.
    pub fn findings_block(&self, tool: &str, max_chars: usize) -> String {
        let mut head = format!(
            "=== {} INVESTIGATION BY THE ASSISTANT ===\n",
            tool.to_uppercase()
        );
        for (key, value) in &self.own {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            head.push_str(&format!("{key}: {value}\n"));
        }
        if let Some(confidence) = self.confidence() {
            head.push_str(&format!("assistant's confidence: {confidence}\n"));
        }
        if let Some(hypothesis) = self.hypothesis() {
            head.push_str(&format!("current hypothesis: {hypothesis}\n"));
        }

        let mut tail = String::new();
        let issues = self.issues();
        if !issues.is_empty() {
            tail.push_str("\nISSUES FOUND:\n");
            for issue in &issues {
                tail.push_str(&format!(
                    "- [{}] {}",
                    issue.severity.as_str(),
                    issue.description.trim()
                ));
                for (key, value) in &issue.extra {
                    let value = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    tail.push_str(&format!(" ({key}: {value})"));
                }
                tail.push('\n');
            }
        }
        let context = self.distinct(|s| &s.relevant_context);
        if !context.is_empty() {
            tail.push_str(&format!("\nRELEVANT CODE: {}\n", context.join(", ")));
        }
        let checked = self.distinct(|s| &s.files_checked);
        if !checked.is_empty() {
            tail.push_str(&format!("\nFILES CHECKED: {}\n", checked.join(", ")));
        }
        tail.push_str(&format!(
            "=== END {} INVESTIGATION ===\n",
            tool.to_uppercase()
        ));

        let budget = max_chars.saturating_sub(head.len() + tail.len());
        let mut steps: Vec<String> = Vec::new();
        let mut used = 0;
        for record in self.steps.iter().rev() {
            let text = format!(
                "\n--- step {} ---\n{}\nfindings: {}\n",
                record.step_number,
                record.step.trim(),
                record.findings.trim()
            );
            if used + text.len() > budget {
                break;
            }
            used += text.len();
            steps.push(text);
        }
        let dropped = self.steps.len() - steps.len();
        if dropped > 0 {
            head.push_str(&format!(
                "\n({dropped} earlier step{} left out to fit the budget)\n",
                if dropped == 1 { "" } else { "s" }
            ));
        }
        steps.reverse();
        format!("{head}{}{tail}", steps.concat())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tools::workflow::step::Fields;

    fn step(number: u32, files: &[&str], issues: Value) -> Step {
        let args = json!({
            "step": format!("step {number} text"), "step_number": number, "total_steps": 3,
            "next_step_required": number < 3, "findings": format!("found {number}"),
            "relevant_files": files, "issues_found": issues, "confidence": "medium"
        });
        Step::parse(args.as_object().unwrap(), Fields::default()).unwrap()
    }

    #[test]
    fn files_are_newest_first_and_distinct() {
        let mut run = Run::default();
        run.push(&step(1, &["/p/a.rs", "/p/b.rs"], json!([])), Map::new());
        run.push(&step(2, &["/p/c.rs", "/p/a.rs"], json!([])), Map::new());
        assert_eq!(run.relevant_files(), vec!["/p/c.rs", "/p/a.rs", "/p/b.rs"]);
    }

    #[test]
    fn resending_a_step_replaces_it_and_later_ones() {
        let mut run = Run::default();
        run.push(&step(1, &[], json!([])), Map::new());
        run.push(&step(2, &["/p/x.rs"], json!([])), Map::new());
        run.push(&step(2, &["/p/y.rs"], json!([])), Map::new());
        assert_eq!(run.steps.len(), 2);
        assert_eq!(run.relevant_files(), vec!["/p/y.rs"]);
    }

    #[test]
    fn the_findings_block_has_issues_worst_first_and_own_fields() {
        let mut run = Run::default();
        let mut own = Map::new();
        own.insert("review_type".into(), json!("security"));
        run.push(
            &step(
                1,
                &[],
                json!([{"severity": "low", "description": "naming"}]),
            ),
            own,
        );
        run.push(
            &step(
                2,
                &[],
                json!([{"severity": "critical", "description": "sql injection", "location": "db.rs:3"},
                       {"severity": "low", "description": "naming"}]),
            ),
            Map::new(),
        );
        let block = run.findings_block("codereview", MAX_FINDINGS_CHARS);
        assert!(block.contains("review_type: security"), "{block}");
        let critical = block
            .find("[critical] sql injection (location: db.rs:3)")
            .unwrap();
        let low = block.find("[low] naming").unwrap();
        assert!(critical < low, "{block}");
        assert_eq!(block.matches("[low] naming").count(), 1);
        assert!(block.contains("found 2"));
        assert_eq!(
            run.summary(),
            "2 steps, 0 files checked, 0 relevant files, 2 issues (1 critical, 1 low), confidence medium"
        );
    }

    #[test]
    fn oldest_steps_are_dropped_first_when_over_budget() {
        let mut run = Run::default();
        for n in 1..=8 {
            let mut s = step(n.min(3), &[], json!([]));
            s.step_number = n;
            s.findings = "x".repeat(10_000);
            run.push(&s, Map::new());
        }
        let block = run.findings_block("debug", MAX_FINDINGS_CHARS);
        assert!(block.len() <= MAX_FINDINGS_CHARS + 200, "{}", block.len());
        assert!(block.contains("--- step 8 ---") && !block.contains("--- step 1 ---"));
        assert!(block.contains("earlier steps left out"));
    }
}
