//! `zend keys import`: copies provider keys into zen's `.env`.
//!
//! An auto-started zend gets a clean environment (see zen-shim's `env.rs`), so
//! keys that Zen users put in their MCP client's `env` block for the server no
//! longer reach it. This command finds them where they are — the `env` of zen's
//! entry in each client config `zend register` knows, then this shell's
//! environment — and appends those `.env` lacks. `.env` is written 0600 through
//! a temporary file; a variable it already sets is kept. Only names are ever
//! printed, never values.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::CliError;
use crate::providers::parse_dotenv;
use crate::register::{self, Client, RegisterSpec, SERVER_NAME};

/// A key found somewhere, and where.
struct Found {
    name: String,
    value: String,
    source: String,
}

/// Imports keys into `<config_dir>/.env`; `shell` is this process's environment.
pub fn import(
    config_dir: &Path,
    spec: &RegisterSpec,
    shell: impl IntoIterator<Item = (String, String)>,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let mut found: Vec<Found> = Vec::new();
    for (source, path) in client_configs(spec) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let source = format!("{source} ({})", path.display());
        for (name, value) in zen_entry_env(&path, &text) {
            found.push(Found {
                name,
                value,
                source: source.clone(),
            });
        }
    }
    let mut shell: Vec<(String, String)> = shell.into_iter().collect();
    shell.sort();
    found.extend(shell.into_iter().map(|(name, value)| Found {
        name,
        value,
        source: "this shell's environment".into(),
    }));

    let path = config_dir.join(".env");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let mut have: Vec<String> = parse_dotenv(&existing)
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, _)| name)
        .collect();
    let mut added = Vec::new();
    for key in found {
        if !zen_proto::meta::is_key_variable(&key.name) || key.value.trim().is_empty() {
            continue;
        }
        if have.contains(&key.name) {
            continue;
        }
        let Some(line) = dotenv_line(&key.name, key.value.trim()) else {
            writeln!(
                out,
                "{}: its value (from {}) cannot be written to .env as is; add it by hand",
                key.name, key.source
            )?;
            continue;
        };
        writeln!(out, "{}: added (from {})", key.name, key.source)?;
        have.push(key.name);
        added.push(line);
    }
    if added.is_empty() {
        writeln!(
            out,
            "nothing to import: {} already has every provider key found \
             (in zen's entry of each client config, and in this shell)",
            path.display()
        )?;
        return Ok(super::EXIT_OK);
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# imported by `zend keys import`\n");
    for line in &added {
        text.push_str(line);
        text.push('\n');
    }
    write_private(&path, &text)?;
    writeln!(
        out,
        "wrote {} (mode 0600); a running zend loads the keys in a moment (`zend reload` \
         does it now)",
        path.display()
    )?;
    Ok(super::EXIT_OK)
}

/// The client configs `zend register` writes, by client name; Claude Code's
/// user-scope servers are in `~/.claude.json`.
fn client_configs(spec: &RegisterSpec) -> Vec<(&'static str, PathBuf)> {
    let mut configs = vec![("Claude Code", spec.home.join(".claude.json"))];
    for (name, client) in [
        ("Claude Desktop", Client::ClaudeDesktop),
        ("Codex CLI", Client::Codex),
        ("Gemini CLI", Client::Gemini),
        ("Cursor", Client::Cursor),
    ] {
        if let Some(path) = register::config_path(client, spec) {
            configs.push((name, path));
        }
    }
    configs
}

/// The `env` of zen's entry in a client config (JSON `mcpServers.zen.env`, or
/// TOML `mcp_servers.zen.env`); nothing when the file does not parse.
fn zen_entry_env(path: &Path, text: &str) -> Vec<(String, String)> {
    if path.extension().is_some_and(|e| e == "toml") {
        let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
            return Vec::new();
        };
        let Some(env) = doc
            .get("mcp_servers")
            .and_then(|s| s.get(SERVER_NAME))
            .and_then(|z| z.get("env"))
            .and_then(toml_edit::Item::as_table_like)
        else {
            return Vec::new();
        };
        return env
            .iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value.as_str()?.to_owned())))
            .collect();
    }
    let Ok(root) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    root["mcpServers"][SERVER_NAME]["env"]
        .as_object()
        .map(|env| {
            env.iter()
                .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// `NAME=value` as `parse_dotenv` reads it back, quoted when it must be;
/// `None` when it cannot be (a line break, or both kinds of quote).
fn dotenv_line(name: &str, value: &str) -> Option<String> {
    if value.contains(['\n', '\r']) {
        return None;
    }
    let plain = !value.contains([' ', '\t', '#', '"', '\'']);
    Some(if plain {
        format!("{name}={value}")
    } else if !value.contains('\'') {
        format!("{name}='{value}'")
    } else if !value.contains('"') {
        format!("{name}=\"{value}\"")
    } else {
        return None;
    })
}

/// Writes `text` to `path` with mode 0600, through a temporary file beside it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".env.zend-keys-{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_so_dotenv_reads_them_back() {
        for value in ["sk-abc", "with space", "it's", "a#b", "\"q\""] {
            let line = dotenv_line("K_API_KEY", value).unwrap();
            assert_eq!(
                parse_dotenv(&line),
                vec![("K_API_KEY".to_owned(), value.to_owned())],
                "{line}"
            );
        }
        assert_eq!(dotenv_line("K", "a\nb"), None);
        assert_eq!(dotenv_line("K", "'\""), None);
    }

    #[test]
    fn zen_entry_env_from_json_and_toml() {
        let json = r#"{"mcpServers": {"zen": {"env": {"OPENAI_API_KEY": "a", "N": 1}}, "x": {"env": {"B_API_KEY": "b"}}}}"#;
        assert_eq!(
            zen_entry_env(Path::new("c.json"), json),
            vec![("OPENAI_API_KEY".to_owned(), "a".to_owned())]
        );
        let toml = "[mcp_servers.zen]\ncommand = \"s\"\nenv = { GEMINI_API_KEY = \"g\" }\n";
        assert_eq!(
            zen_entry_env(Path::new("config.toml"), toml),
            vec![("GEMINI_API_KEY".to_owned(), "g".to_owned())]
        );
        assert!(zen_entry_env(Path::new("c.json"), "{ nope").is_empty());
    }
}
