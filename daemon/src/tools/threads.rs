//! `threads`: find earlier conversations (users lose continuation ids when they
//! clear their assistant's context), read one, or read a long answer page by
//! page (`turn` and `offset`, as the note after a first page names them; see
//! `pages`). No model call. The same data is offered as MCP resources
//! (`zen://threads/...`) and by `zend threads`. Whatever is shown fits the
//! client's result budget: long turns of a thread are shortened, each with the
//! call that reads the rest.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::args;
use super::config::ToolConfig;
use super::pages::{self, Splitter};
use super::{CallContext, Tool, ToolError, ToolOutput, ToolSpec, object_schema};
use crate::memory::{Role, Thread, ThreadFilter, ThreadId, render};
use crate::time::{Clock, SystemClock};

pub struct Threads {
    spec: ToolSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Args {
    query: Option<String>,
    working_directory_absolute_path: Option<String>,
    tool: Option<String>,
    model: Option<String>,
    limit: Option<usize>,
    continuation_id: Option<String>,
    turn: Option<u32>,
    offset: Option<usize>,
}

impl Threads {
    pub fn new(config: &ToolConfig) -> Self {
        let properties = [
            (
                "query",
                json!({"type": "string", "description": "Text to look for in titles and turns."}),
            ),
            (
                "working_directory_absolute_path",
                json!({"type": "string", "description": "Only threads started under this directory."}),
            ),
            ("tool", json!({"type": "string"})),
            ("model", json!({"type": "string"})),
            (
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 100}),
            ),
            (
                "continuation_id",
                json!({"type": "string", "description": "Show this thread's turns."}),
            ),
            // A page's note gives both; they need no description.
            ("turn", json!({"type": "integer"})),
            ("offset", json!({"type": "integer"})),
        ];
        Self {
            spec: ToolSpec::local("threads", config, object_schema(&properties, &[])),
        }
    }
}

#[async_trait::async_trait]
impl Tool for Threads {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        context: &CallContext,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let args: Args = args::parse(&arguments)?;
        let threads = context.data.threads();
        if let Some(id) = args
            .continuation_id
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            let id: ThreadId = id.parse().map_err(|e: crate::memory::ThreadError| {
                ToolError::InvalidArguments(e.to_string())
            })?;
            let thread = threads
                .get(&id)
                .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
            let budget = context.result_budget();
            if args.turn.is_some() || args.offset.is_some() {
                return read_turn(&thread, args.turn, args.offset.unwrap_or(0), budget)
                    .map(ToolOutput::text);
            }
            return Ok(ToolOutput::text(thread_within(&thread, budget)));
        }
        if args.turn.is_some() || args.offset.is_some() {
            return Err(ToolError::InvalidArguments(
                "`turn` and `offset` read a turn of a thread: pass its `continuation_id` too"
                    .into(),
            ));
        }
        let filter = ThreadFilter {
            cwd: args.working_directory_absolute_path,
            tool: args.tool,
            model: args.model,
            text: args.query,
            limit: args
                .limit
                .unwrap_or(ThreadFilter::DEFAULT_LIMIT)
                .clamp(1, 100),
        };
        let found = threads
            .list(&filter)
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let mut text = render::render_list(&found, SystemClock.now());
        if !found.is_empty() {
            text.push_str(
                "\nPass a thread's id as continuation_id to any zen tool to continue it.",
            );
        }
        Ok(ToolOutput::text(text))
    }
}

/// One page of a turn (the thread's last answer when `turn` is not given).
fn read_turn(
    thread: &Thread,
    turn: Option<u32>,
    offset: usize,
    budget: Option<usize>,
) -> Result<String, ToolError> {
    let count = thread.turns.len();
    let number = match turn {
        Some(number) => number,
        None => thread
            .turns
            .iter()
            .rposition(|t| t.role == Role::Assistant)
            .map_or(count, |index| index + 1) as u32,
    };
    let Some(stored) = (number as usize)
        .checked_sub(1)
        .and_then(|index| thread.turns.get(index))
    else {
        return Err(ToolError::InvalidArguments(format!(
            "thread {} has {count} turns; `turn` counts from 1",
            thread.id()
        )));
    };
    pages::read_page(
        &thread.id().to_string(),
        number,
        &stored.text,
        offset,
        budget,
    )
    .map_err(|e| ToolError::InvalidArguments(e.to_string()))
}

/// A whole thread within `budget`: turns too long for their share show their
/// beginning and the call that reads the rest; the share shrinks until the
/// thread fits (or is as small as is useful; `pages::fit` cuts the rest).
fn thread_within(thread: &Thread, budget: Option<usize>) -> String {
    let whole = render::render_thread(thread);
    let Some(budget) = budget.filter(|budget| whole.len() > *budget) else {
        return whole;
    };
    let id = thread.id().to_string();
    let mut share = budget / thread.turns.len().max(1);
    loop {
        let mut shown = thread.clone();
        for (index, turn) in shown.turns.iter_mut().enumerate() {
            if turn.text.len() > share {
                let end = Splitter::new(&turn.text).page_end(0, share);
                turn.text = format!(
                    "{}\n[zen] Turn {number} continues ({end} of {} bytes shown): call `threads` with \
                     {{\"continuation_id\": \"{id}\", \"turn\": {number}, \"offset\": {end}}}.",
                    turn.text[..end].trim_end(),
                    turn.text.len(),
                    number = index + 1,
                );
            }
        }
        let text = render::render_thread(&shown);
        if text.len() <= budget || share <= MIN_SHARE {
            return pages::fit(text, Some(budget));
        }
        share = (share * 3 / 4).max(MIN_SHARE);
    }
}

/// The least of a long turn shown when a thread is read whole.
const MIN_SHARE: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{ThreadSummary, Turn};
    use crate::time::Timestamp;

    fn thread(texts: &[String]) -> Thread {
        let turn = |(index, text): (usize, &String)| Turn {
            role: if index % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            },
            text: text.clone(),
            tool: "chat".into(),
            model: None,
            provider: None,
            files: Vec::new(),
            images: Vec::new(),
            tokens: 0,
            time: Timestamp::default(),
        };
        Thread {
            summary: ThreadSummary {
                id: ThreadId::new(),
                title: "t".into(),
                created: Timestamp::default(),
                updated: Timestamp::default(),
                expires: Timestamp::default(),
                session_id: "s".into(),
                client: "c".into(),
                cwd: None,
                parent: None,
                tools: vec!["chat".into()],
                models: Vec::new(),
                turn_count: texts.len() as u32,
            },
            turns: texts.iter().enumerate().map(turn).collect(),
        }
    }

    #[test]
    fn a_long_thread_shows_each_turn_within_the_budget() {
        let long = "a paragraph of words\n\n".repeat(5_000);
        let thread = thread(&["question".into(), long.clone(), "again".into(), long]);
        let text = thread_within(&thread, Some(8 * 1024));
        assert!(text.len() <= 8 * 1024, "{}", text.len());
        assert!(text.contains("question") && text.contains("again"));
        assert!(text.contains("\"turn\": 2, \"offset\": "), "{text}");
        assert!(text.contains("\"turn\": 4, \"offset\": "), "{text}");
        assert_eq!(thread_within(&thread, None), render::render_thread(&thread));
    }

    #[test]
    fn the_last_answer_is_the_default_turn_and_bad_turns_are_named() {
        let thread = thread(&["question".into(), "the answer".into(), "more".into()]);
        let page = read_turn(&thread, None, 0, None).unwrap();
        assert!(
            page.contains("turn 2") && page.contains("the answer"),
            "{page}"
        );
        let error = read_turn(&thread, Some(4), 0, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("has 3 turns"), "{error}");
        assert!(read_turn(&thread, Some(0), 0, None).is_err());
    }
}
