//! The data of a conversation: ids, threads, turns, summaries, filters.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ThreadError;
use crate::time::Timestamp;

/// A thread's id; handed to clients as `continuation_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ThreadId(Uuid);

impl ThreadId {
    /// A UUIDv7: time first, then 74 random bits. Time-ordered ids put a new
    /// thread's keys at the end of the `threads` and `turns` trees, so a
    /// write touches the B-tree's newest pages rather than random ones all
    /// over the file.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        Uuid::from_slice(bytes).ok().map(Self)
    }
}

impl Default for ThreadId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for ThreadId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for ThreadId {
    type Err = ThreadError;

    fn from_str(text: &str) -> Result<Self, ThreadError> {
        Uuid::parse_str(text.trim())
            .map(Self)
            .map_err(|_| ThreadError::InvalidId(text.to_owned()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// What the assistant (the MCP client's model) asked.
    User,
    /// What the consulted model answered.
    Assistant,
}

/// What [`super::Threads::create`] needs to start a thread.
#[derive(Clone, Debug, Default)]
pub struct NewThread {
    /// The tool that starts the thread (`chat`, `thinkdeep`, ...).
    pub tool: String,
    /// The MCP session that starts it.
    pub session_id: String,
    /// The client's name as it gave it in `initialize` (`claude-code`, ...).
    pub client: String,
    /// The client's working directory, when known.
    pub cwd: Option<String>,
    /// The thread this one continues from, if any.
    pub parent: Option<ThreadId>,
    /// The first prompt; its first non-empty line becomes the title.
    pub first_prompt: String,
}

/// A turn to append; [`super::Threads::append`] stamps its time.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTurn {
    pub role: Role,
    pub text: String,
    pub tool: String,
    /// The model that answered (assistant turns).
    pub model: Option<String>,
    pub provider: Option<String>,
    /// Paths of files the turn referenced; embedded by the tools layer.
    pub files: Vec<String>,
    /// Paths or data URLs of images the turn referenced.
    pub images: Vec<String>,
    /// Token estimate of `text`; `None` estimates it as chars / 4.
    pub tokens: Option<u64>,
}

impl NewTurn {
    pub fn user(tool: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            text: text.into(),
            tool: tool.into(),
            model: None,
            provider: None,
            files: Vec::new(),
            images: Vec::new(),
            tokens: None,
        }
    }

    pub fn assistant(
        tool: impl Into<String>,
        model: impl Into<String>,
        provider: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        Self {
            role: Role::Assistant,
            model: Some(model.into()),
            provider: Some(provider.into()),
            ..Self::user(tool, text)
        }
    }

    pub fn with_files(mut self, files: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.files = files.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_images(mut self, images: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.images = images.into_iter().map(Into::into).collect();
        self
    }
}

/// One stored turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    pub tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Token estimate of `text`.
    pub tokens: u64,
    pub time: Timestamp,
}

/// Everything about a thread but its turns; stored per thread, so listing
/// never reads turns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadSummary {
    pub id: ThreadId,
    pub title: String,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// `updated` plus the TTL in force when read (not stored: changing the
    /// TTL applies to existing threads).
    #[serde(default)]
    pub expires: Timestamp,
    pub session_id: String,
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ThreadId>,
    /// Tools that added turns, in order of first use; the first started it.
    pub tools: Vec<String>,
    /// Models that answered, in order of first use.
    #[serde(default)]
    pub models: Vec<String>,
    pub turn_count: u32,
}

impl ThreadSummary {
    /// The tool that started the thread.
    pub fn tool(&self) -> &str {
        self.tools.first().map_or("", String::as_str)
    }

    pub(crate) fn matches(&self, filter: &ThreadFilter) -> bool {
        if let Some(dir) = &filter.cwd {
            match &self.cwd {
                Some(cwd) if Path::new(cwd).starts_with(dir) => {}
                _ => return false,
            }
        }
        if let Some(tool) = &filter.tool
            && !self.tools.iter().any(|t| t.eq_ignore_ascii_case(tool))
        {
            return false;
        }
        if let Some(model) = &filter.model {
            let model = model.to_lowercase();
            if !self
                .models
                .iter()
                .any(|m| m.to_lowercase().contains(&model))
            {
                return false;
            }
        }
        true
    }
}

/// A thread with its turns, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    #[serde(flatten)]
    pub summary: ThreadSummary,
    pub turns: Vec<Turn>,
}

impl Thread {
    pub fn id(&self) -> ThreadId {
        self.summary.id
    }
}

/// What [`super::Threads::list`] returns: recent first, up to `limit`.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ThreadFilter {
    /// Threads started in this directory or below it.
    pub cwd: Option<String>,
    /// Threads any turn of which came from this tool (case-insensitive).
    pub tool: Option<String>,
    /// Threads a model whose name contains this answered (case-insensitive).
    pub model: Option<String>,
    /// Threads whose title or any turn contains this (case-insensitive);
    /// the only filter that reads turns.
    pub text: Option<String>,
    /// At most this many; 0 means [`ThreadFilter::DEFAULT_LIMIT`].
    pub limit: usize,
}

impl ThreadFilter {
    pub const DEFAULT_LIMIT: usize = 20;

    pub(crate) fn effective_limit(&self) -> usize {
        if self.limit == 0 {
            Self::DEFAULT_LIMIT
        } else {
            self.limit
        }
    }
}

/// What an append reports back; tools tell the client how many turns remain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AppendOutcome {
    pub turn_count: u32,
    pub remaining_turns: u32,
}

/// The title of a thread: the first non-empty line of its first prompt, at
/// most 80 characters.
pub(crate) fn title_from(prompt: &str) -> String {
    const MAX: usize = 80;
    let line = prompt
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if line.chars().count() <= MAX {
        line.to_owned()
    } else {
        let mut title: String = line.chars().take(MAX - 1).collect();
        title.push('…');
        title
    }
}
