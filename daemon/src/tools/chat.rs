//! `chat`, `thinkdeep` and declarative plugin tools: one prompt in, one model
//! turn out, through `engine::run_model_turn` (files, images, continuation,
//! cost and the ledger are all handled there).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::args::{self, CommonArgs, MAX_PROMPT_CHARS, schema};
use super::config::ToolConfig;
use super::engine::{self, ModelTurn};
use super::plugin::PluginSpec;
use super::{CallContext, Tool, ToolError, ToolOutput, ToolSpec, object_schema};

/// How a tool turns its arguments into the prompt.
enum Shape {
    Chat,
    ThinkDeep,
    Plugin(Box<PluginSpec>),
}

pub struct ModelTool {
    spec: ToolSpec,
    config: ToolConfig,
    shape: Shape,
}

/// thinkdeep's own fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ThinkDeepArgs {
    problem_context: Option<String>,
    focus_areas: Vec<String>,
}

impl ModelTool {
    pub fn chat(config: &ToolConfig) -> Self {
        let mut properties = vec![schema::prompt(
            "Your question or idea, with the context the other model needs.",
        )];
        properties.extend(schema::common());
        Self::new(
            "chat",
            config,
            object_schema(&properties, &["prompt"]),
            Shape::Chat,
        )
    }

    pub fn thinkdeep(config: &ToolConfig) -> Self {
        let mut properties = vec![
            schema::prompt("Your current analysis and question."),
            (
                "problem_context",
                json!({"type": "string", "description": "Background: constraints, what was tried."}),
            ),
            (
                "focus_areas",
                json!({"type": "array", "items": {"type": "string"}, "description": "e.g. performance, security."}),
            ),
        ];
        properties.extend(schema::common());
        Self::new(
            "thinkdeep",
            config,
            object_schema(&properties, &["prompt"]),
            Shape::ThinkDeep,
        )
    }

    pub fn plugin(plugin: PluginSpec) -> Self {
        let mut properties = vec![schema::prompt("Your request.")];
        let extra: Vec<(String, Value)> = plugin
            .fields
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    json!({"type": f.kind.json_type(), "description": f.description}),
                )
            })
            .collect();
        let mut required = vec!["prompt"];
        for field in &plugin.fields {
            if field.required {
                required.push(field.name.as_str());
            }
        }
        properties.extend(schema::common());
        let mut input_schema = object_schema(&properties, &required);
        if let Some(Value::Object(props)) = input_schema.get_mut("properties") {
            for (name, field_schema) in extra {
                props.insert(name, field_schema);
            }
        }
        let name = plugin.name.clone();
        let config = plugin.config.clone();
        Self::new(
            &name,
            &config,
            input_schema,
            Shape::Plugin(Box::new(plugin)),
        )
    }

    fn new(
        name: &str,
        config: &ToolConfig,
        input_schema: Map<String, Value>,
        shape: Shape,
    ) -> Self {
        Self {
            spec: ToolSpec::model(name, config, input_schema),
            config: config.clone(),
            shape,
        }
    }

    fn build_prompt(
        &self,
        prompt: &str,
        arguments: &Map<String, Value>,
    ) -> Result<String, ToolError> {
        match &self.shape {
            Shape::Chat => Ok(prompt.to_owned()),
            Shape::ThinkDeep => {
                let extra: ThinkDeepArgs = args::parse(arguments)?;
                let mut text = prompt.to_owned();
                if let Some(context) = extra.problem_context.filter(|c| !c.trim().is_empty()) {
                    text.push_str(&format!("\n\nProblem context:\n{context}"));
                }
                if !extra.focus_areas.is_empty() {
                    text.push_str(&format!(
                        "\n\nFocus areas: {}",
                        extra.focus_areas.join(", ")
                    ));
                }
                Ok(text)
            }
            Shape::Plugin(plugin) => {
                let mut values = BTreeMap::new();
                values.insert("prompt".to_owned(), prompt.to_owned());
                for field in &plugin.fields {
                    match arguments.get(&field.name) {
                        Some(Value::String(s)) => {
                            values.insert(field.name.clone(), s.clone());
                        }
                        Some(Value::Null) | None if field.required => {
                            return Err(ToolError::InvalidArguments(format!(
                                "`{}` is required",
                                field.name
                            )));
                        }
                        Some(Value::Null) | None => {
                            values.insert(field.name.clone(), String::new());
                        }
                        Some(other) => {
                            values.insert(field.name.clone(), other.to_string());
                        }
                    }
                }
                Ok(plugin.render(&values))
            }
        }
    }
}

#[async_trait::async_trait]
impl Tool for ModelTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        context: &CallContext,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let common: CommonArgs = args::parse(&arguments)?;
        let raw_prompt = common.prompt.clone().unwrap_or_default();
        if raw_prompt.chars().count() > MAX_PROMPT_CHARS {
            return Ok(ToolOutput::text(args::resend_prompt_text(
                raw_prompt.chars().count(),
            )));
        }
        let (prompt, files) = args::take_prompt_file(
            &context.settings.files,
            &context.reads,
            &raw_prompt,
            &common.absolute_file_paths,
        )?;
        if prompt.trim().is_empty() {
            return Err(ToolError::InvalidArguments(
                "`prompt` is empty: say what you want to ask".into(),
            ));
        }
        let prompt = self.build_prompt(&prompt, &arguments)?;
        let turn = ModelTurn {
            tool: self.spec.name.clone(),
            prompt,
            extra_context: None,
            system_prompt: None,
            model: common.model,
            continuation_id: common.continuation_id,
            files,
            images: common.images,
            temperature: common.temperature,
            thinking_mode: common.thinking_mode,
            max_answer_tokens: args::max_answer_tokens(common.max_answer_tokens)?,
        };
        let result = engine::run_model_turn(context, &self.config, turn).await?;
        Ok(ToolOutput::text(
            engine::answer(&result).to_text(context.result_budget()),
        ))
    }
}
