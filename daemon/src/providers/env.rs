//! `Env`: the environment the providers layer reads, as one immutable snapshot.
//!
//! Keys and endpoints live with the daemon, not the client: at start zend takes the
//! process environment plus the `.env` file in its config directory. The process
//! environment wins over `.env` (so a one-off `OPENAI_API_KEY=... zend` overrides the
//! file), as python-dotenv does by default. Nothing here writes to the process
//! environment. Tests build an `Env` from a map.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

/// A snapshot of environment variables. Empty values count as unset.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    /// Names whose value came from the process environment (which wins over `.env`).
    from_process: HashSet<String>,
}

/// Where a variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// zen's `.env` (re-read on every reload).
    DotEnv,
    /// zend's own environment, fixed for the life of the process.
    Process,
}

impl Env {
    /// Only the given variables (tests).
    pub fn from_map<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            from_process: HashSet::new(),
        }
    }

    /// The process environment over `<config_dir>/.env` (if the file exists).
    pub fn load(config_dir: Option<&Path>) -> Self {
        let mut vars = HashMap::new();
        if let Some(dir) = config_dir
            && let Ok(text) = std::fs::read_to_string(dir.join(".env"))
        {
            vars.extend(parse_dotenv(&text));
        }
        let mut from_process = HashSet::new();
        for (name, value) in std::env::vars() {
            if !value.trim().is_empty() {
                from_process.insert(name.clone());
            }
            vars.insert(name, value);
        }
        Self { vars, from_process }
    }

    /// Where `name`'s value comes from, if it is set.
    pub fn source(&self, name: &str) -> Option<Source> {
        self.get(name)?;
        Some(if self.from_process.contains(name) {
            Source::Process
        } else {
            Source::DotEnv
        })
    }

    /// The variable's value, if set and not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set, with its name.
    pub fn first<'a>(&'a self, names: &'a [String]) -> Option<(&'a str, &'a str)> {
        names
            .iter()
            .find_map(|n| self.get(n).map(|v| (n.as_str(), v)))
    }

    /// Expands `${VAR}` references; `None` when a referenced variable is unset.
    pub fn expand(&self, text: &str) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}')?;
            out.push_str(self.get(&after[..end])?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

/// Values are never shown: `Env` holds keys.
impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

/// `KEY=VALUE` lines; `#` comments, blank lines, `export ` prefixes and matching quotes are handled.
pub fn parse_dotenv(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let mut value = value.trim();
        let quoted = value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')));
        if quoted {
            value = &value[1..value.len() - 1];
        } else if let Some(hash) = value.find(" #") {
            value = value[..hash].trim_end();
        }
        if !key.is_empty() {
            out.push((key.to_owned(), value.to_owned()));
        }
    }
    out
}

/// What replaces a key found in an outgoing request body.
pub const KEY_MARKER: &str = "[zen: key removed]";
/// Shorter values are not treated as secrets (placeholders such as Ollama's "ollama").
const MIN_SECRET_LEN: usize = 8;

/// The values of every configured provider key, so that none leaves zend in a
/// request body (a prompt or a file may hold one): see [`Secrets::scrub`].
#[derive(Clone, Default)]
pub struct Secrets {
    /// Each key as written and as a JSON string escapes it, longest first.
    values: Vec<String>,
}

impl Secrets {
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let mut values: Vec<String> = Vec::new();
        for key in keys.into_iter().map(str::trim) {
            if key.len() < MIN_SECRET_LEN {
                continue;
            }
            let escaped = serde_json::to_string(key).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            for form in [key, escaped] {
                if !form.is_empty() && !values.iter().any(|v| v == form) {
                    values.push(form.to_owned());
                }
            }
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Self { values }
    }

    /// `body` with every key replaced by [`KEY_MARKER`].
    pub fn scrub(&self, mut body: Vec<u8>) -> Vec<u8> {
        for value in &self.values {
            let finder = memchr::memmem::Finder::new(value.as_bytes());
            if finder.find(&body).is_none() {
                continue;
            }
            let mut out = Vec::with_capacity(body.len());
            let mut rest = 0;
            for at in finder.find_iter(&body) {
                if at < rest {
                    continue;
                }
                out.extend_from_slice(&body[rest..at]);
                out.extend_from_slice(KEY_MARKER.as_bytes());
                rest = at + value.len();
            }
            out.extend_from_slice(&body[rest..]);
            body = out;
        }
        body
    }
}

/// Values are never shown.
impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

/// An API key. It cannot be printed: `Debug` and `Display` show only `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the one place that puts it in a header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines() {
        let parsed =
            parse_dotenv("# c\nexport A=1\nB = \"two words\"\nC='x#y'\nD=v # note\n\nbad\n");
        assert_eq!(
            parsed,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x#y".into()),
                ("D".into(), "v".into())
            ]
        );
    }

    #[test]
    fn process_env_wins_over_dotenv() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "ZEN_TEST_ONLY_IN_DOTENV=a\nPATH=nope\n",
        )
        .unwrap();
        let env = Env::load(Some(dir.path()));
        assert_eq!(env.get("ZEN_TEST_ONLY_IN_DOTENV"), Some("a"));
        assert_ne!(env.get("PATH"), Some("nope"));
    }

    #[test]
    fn keys_in_a_body_are_replaced_short_placeholders_kept() {
        let secrets = Secrets::new(["sk-abcdef123", "ollama", "we\"ird-key-1"]);
        let body =
            serde_json::json!({"text": "a sk-abcdef123 b ollama c we\"ird-key-1"}).to_string();
        let scrubbed = String::from_utf8(secrets.scrub(body.into_bytes())).unwrap();
        assert!(
            !scrubbed.contains("sk-abcdef123") && !scrubbed.contains("ird-key-1"),
            "{scrubbed}"
        );
        assert!(scrubbed.contains("ollama") && scrubbed.contains(KEY_MARKER));
        assert_eq!(format!("{secrets:?}"), "Secrets(3 values)");
    }

    #[test]
    fn expand_and_secrets() {
        let env = Env::from_map([("K", "sk-123"), ("EMPTY", "")]);
        assert_eq!(env.expand("${K}").as_deref(), Some("sk-123"));
        assert_eq!(env.expand("${EMPTY}"), None);
        assert!(!format!("{env:?}").contains("sk-123"));
        let key = ApiKey::new("sk-123");
        assert_eq!(format!("{key} {key:?}"), "*** ApiKey(***)");
    }
}
