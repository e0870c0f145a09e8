//! Declarative plugin tools: a YAML file in the user's `<config_dir>/tools/`
//! whose name is not a built-in tool becomes an MCP tool with no Rust code. It
//! behaves like `chat` (files, images, continuation, cost), with its own system
//! prompt, extra input fields and a prompt template:
//!
//! ```yaml
//! title: Explain
//! description: Explain code for a given audience.
//! system_prompt: You explain code clearly and briefly.
//! prompt_template: "Explain this for {{audience}}: {{prompt}}"
//! fields:
//!   - {name: audience, type: string, description: Who reads it, required: true}
//! model: auto
//! category: fast
//! ```
//!
//! A file that does not parse is reported with its path and line and skipped;
//! the other plugins still load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::config::{ModelCategory, ToolConfig, ToolLimits};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    #[default]
    String,
    Number,
    Integer,
    Boolean,
}

impl FieldKind {
    pub fn json_type(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Integer => "integer",
            Self::Boolean => "boolean",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: FieldKind,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
}

/// A plugin file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginFile {
    name: Option<String>,
    title: Option<String>,
    description: String,
    system_prompt: String,
    #[serde(default)]
    prompt_template: Option<String>,
    #[serde(default)]
    fields: Vec<FieldSpec>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    category: ModelCategory,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    thinking_mode: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    allowed_models: Vec<String>,
    #[serde(default)]
    limits: ToolLimits,
}

fn yes() -> bool {
    true
}

/// A loaded plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    pub name: String,
    pub fields: Vec<FieldSpec>,
    pub prompt_template: Option<String>,
    pub config: ToolConfig,
    pub file: PathBuf,
}

impl PluginSpec {
    /// Fills `{{field}}` placeholders; without a template, the prompt followed by the fields.
    pub fn render(&self, values: &BTreeMap<String, String>) -> String {
        match &self.prompt_template {
            Some(template) => {
                let mut text = template.clone();
                for (name, value) in values {
                    text = text.replace(&format!("{{{{{name}}}}}"), value);
                }
                text
            }
            None => {
                let mut text = values.get("prompt").cloned().unwrap_or_default();
                for field in &self.fields {
                    if let Some(value) = values.get(&field.name).filter(|v| !v.is_empty()) {
                        text.push_str(&format!("\n{}: {value}", field.name));
                    }
                }
                text
            }
        }
    }
}

/// Why a plugin file was skipped.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{file}:{line}: {message}; the plugin was skipped")]
pub struct PluginError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Loads every plugin in `<config_dir>/tools/` that is not a built-in override.
pub fn load_all(config_dir: &Path, builtin: &[&str]) -> (Vec<PluginSpec>, Vec<PluginError>) {
    let dir = config_dir.join("tools");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return (Vec::new(), Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let (mut plugins, mut errors) = (Vec::new(), Vec::new());
    for file in files {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if builtin.contains(&stem.as_str()) {
            continue;
        }
        match load_one(&file, &stem, builtin) {
            Ok(plugin) if plugin.config.enabled => plugins.push(plugin),
            Ok(_) => {}
            Err(error) => errors.push(error),
        }
    }
    (plugins, errors)
}

fn load_one(file: &Path, stem: &str, builtin: &[&str]) -> Result<PluginSpec, PluginError> {
    let error = |line: usize, message: String| PluginError {
        file: file.to_path_buf(),
        line,
        message,
    };
    let text =
        std::fs::read_to_string(file).map_err(|e| error(0, format!("cannot read it: {e}")))?;
    let parsed: PluginFile = yaml_serde::from_str(&text)
        .map_err(|e| error(e.location().map(|l| l.line()).unwrap_or(0), e.to_string()))?;
    let name = parsed.name.clone().unwrap_or_else(|| stem.to_owned());
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid_name {
        return Err(error(
            1,
            format!("tool name '{name}' must be 1-64 characters of a-z, 0-9, _ or -"),
        ));
    }
    if builtin.contains(&name.as_str()) {
        return Err(error(
            1,
            format!("'{name}' is a built-in tool; give the plugin another name"),
        ));
    }
    const RESERVED: &[&str] = &[
        "prompt",
        "model",
        "continuation_id",
        "absolute_file_paths",
        "images",
    ];
    if let Some(field) = parsed
        .fields
        .iter()
        .find(|f| RESERVED.contains(&f.name.as_str()))
    {
        return Err(error(
            1,
            format!(
                "field '{}' clashes with a common input; rename it",
                field.name
            ),
        ));
    }
    let config = ToolConfig {
        title: parsed.title.unwrap_or_else(|| name.clone()),
        description: parsed.description,
        system_prompt: parsed.system_prompt,
        model: parsed.model,
        category: parsed.category,
        temperature: parsed.temperature,
        thinking_mode: parsed.thinking_mode,
        enabled: parsed.enabled,
        allowed_models: parsed.allowed_models,
        limits: parsed.limits,
    };
    Ok(PluginSpec {
        name,
        fields: parsed.fields,
        prompt_template: parsed.prompt_template,
        config,
        file: file.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_plugins_load_and_broken_ones_are_reported_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let tools = dir.path().join("tools");
        std::fs::create_dir_all(&tools).unwrap();
        std::fs::write(
            tools.join("explain.yaml"),
            "description: Explain code.\nsystem_prompt: Be clear.\nprompt_template: 'For {{audience}}: {{prompt}}'\nfields:\n  - {name: audience, required: true}\n",
        )
        .unwrap();
        std::fs::write(
            tools.join("broken.yaml"),
            "description: x\nsystem_prompt: y\nbogus_key: 1\n",
        )
        .unwrap();
        std::fs::write(tools.join("chat.yaml"), "temperature: 0.1\n").unwrap();
        let (plugins, errors) = load_all(dir.path(), &["chat"]);
        assert_eq!(plugins.len(), 1);
        assert_eq!(plugins[0].name, "explain");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().contains("broken.yaml:3"),
            "{}",
            errors[0]
        );
        let mut values = BTreeMap::new();
        values.insert("prompt".to_owned(), "this fn".to_owned());
        values.insert("audience".to_owned(), "juniors".to_owned());
        assert_eq!(plugins[0].render(&values), "For juniors: this fn");
    }
}
