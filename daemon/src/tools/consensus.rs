//! `consensus`: several models answer the same proposal in parallel and blind
//! to each other (Zen asked them one after another, so later ones anchored on
//! the first), each with an optional stance and instructions; optional further
//! rounds let each see the others' answers; a chosen model then synthesizes.
//! One failing model does not sink the rest. Every model call goes through
//! `engine::call_model`, so each is budget-checked and in the ledger.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::args::{self, MAX_PROMPT_CHARS, schema};
use super::config::ToolConfig;
use super::engine::{self, ModelTurn};
use super::{CallContext, Tool, ToolError, ToolOutput, ToolSpec, object_schema};
use crate::memory::{NewThread, NewTurn, ThreadId};

/// At most this many models per consensus.
const MAX_MODELS: usize = 8;
const MAX_ROUNDS: u32 = 3;

pub struct Consensus {
    spec: ToolSpec,
    config: ToolConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Participant {
    model: String,
    #[serde(default)]
    stance: Option<Stance>,
    #[serde(default)]
    instructions: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Stance {
    For,
    Against,
    Neutral,
}

impl Stance {
    fn label(stance: Option<Self>) -> &'static str {
        match stance {
            Some(Self::For) => "for",
            Some(Self::Against) => "against",
            Some(Self::Neutral) | None => "neutral",
        }
    }

    fn instructions(stance: Option<Self>) -> &'static str {
        match stance {
            Some(Self::For) => {
                "Your assigned stance: SUPPORTIVE. Make the strongest honest case for the proposal and how to \
                 make it succeed. If it is genuinely harmful or unworkable, say so anyway: honesty beats the stance."
            }
            Some(Self::Against) => {
                "Your assigned stance: CRITICAL. Look hard for flaws, risks, hidden costs and better alternatives. \
                 If the proposal is genuinely sound, acknowledge it: honesty beats the stance."
            }
            Some(Self::Neutral) | None => {
                "Give a balanced assessment, weighing benefits against costs and risks."
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct Args {
    prompt: String,
    models: Vec<Participant>,
    #[serde(default)]
    rounds: Option<u32>,
    #[serde(default)]
    synthesis_model: Option<String>,
}

/// One participant's latest answer.
#[derive(Debug, Clone)]
struct Answer {
    label: String,
    result: Result<Reply, String>,
}

#[derive(Debug, Clone)]
struct Reply {
    text: String,
    model: String,
    input_tokens: u64,
    output_tokens: u64,
    cost: Option<f64>,
    latency_ms: u64,
}

impl Consensus {
    pub fn new(config: &ToolConfig) -> Self {
        let mut properties = vec![
            schema::prompt("The proposal or question, with the context the models need."),
            (
                "models",
                json!({"type": "array", "minItems": 1, "items": {"type": "object", "required": ["model"], "properties": {
                    "model": {"type": "string"},
                    "stance": {"type": "string", "enum": ["for", "against", "neutral"]},
                    "instructions": {"type": "string"}}},
                    "description": "Models to consult, each with an optional stance."}),
            ),
            (
                "rounds",
                json!({"type": "integer", "minimum": 1, "maximum": MAX_ROUNDS, "description": "Rounds; from 2 on, each sees the others' answers. Default 1."}),
            ),
            (
                "synthesis_model",
                json!({"type": "string", "description": "Model that writes the synthesis (default: auto)."}),
            ),
        ];
        properties.extend(
            schema::common()
                .into_iter()
                .filter(|(name, _)| *name != "model"),
        );
        Self {
            spec: ToolSpec::model(
                "consensus",
                config,
                object_schema(&properties, &["prompt", "models"]),
            ),
            config: config.clone(),
        }
    }

    async fn ask(
        &self,
        context: &CallContext,
        participant: &Participant,
        base: &ModelTurn,
        thread: Option<&crate::memory::Thread>,
        others: Option<&str>,
    ) -> Result<Reply, String> {
        let model = engine::resolve_model(context, &self.config, Some(&participant.model))
            .map_err(|e| e.to_string())?;
        let mut system = format!(
            "{}\n\n{}",
            self.config.system_prompt.trim_end(),
            Stance::instructions(participant.stance)
        );
        if let Some(extra) = participant
            .instructions
            .as_deref()
            .filter(|i| !i.trim().is_empty())
        {
            system.push_str(&format!("\n\nAdditional instructions: {extra}"));
        }
        let mut turn = base.clone();
        turn.system_prompt = Some(system);
        if let Some(others) = others {
            turn.extra_context = Some(format!(
                "Other reviewers answered the same proposal in the previous round:\n\n{others}\n\n\
                 Reconsider your assessment in light of their points: say what you now agree with, what you \
                 still dispute and why, and give your updated verdict."
            ));
        }
        let mut prepared = engine::prepare(context, &self.config, &model, thread, &turn)
            .map_err(|e| e.to_string())?;
        if turn.max_answer_tokens.is_some() {
            prepared.request.max_output_tokens = turn.max_answer_tokens;
        }
        let thread_id = thread.map(|t| t.id());
        let (completion, _notes) =
            engine::call_model(context, "consensus", &model, prepared.request, thread_id)
                .await
                .map_err(|e| e.to_string())?;
        Ok(Reply {
            cost: completion.total_cost_usd(),
            text: completion.text,
            model: completion.model,
            input_tokens: completion.usage.input_tokens,
            output_tokens: completion.usage.output_tokens,
            latency_ms: completion.latency.as_millis() as u64,
        })
    }
}

#[async_trait::async_trait]
impl Tool for Consensus {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        context: &CallContext,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let common: args::CommonArgs = args::parse(&arguments)?;
        let parsed: Args = args::parse(&arguments)?;
        if parsed.prompt.chars().count() > MAX_PROMPT_CHARS {
            return Ok(ToolOutput::text(args::resend_prompt_text(
                parsed.prompt.chars().count(),
            )));
        }
        let (prompt, files) = args::take_prompt_file(
            &context.settings.files,
            &context.reads,
            &parsed.prompt,
            &common.absolute_file_paths,
        )?;
        if prompt.trim().is_empty() {
            return Err(ToolError::InvalidArguments(
                "`prompt` is empty: state the proposal".into(),
            ));
        }
        if parsed.models.is_empty() || parsed.models.len() > MAX_MODELS {
            return Err(ToolError::InvalidArguments(format!(
                "`models` needs 1 to {MAX_MODELS} entries, got {}",
                parsed.models.len()
            )));
        }
        let rounds = parsed.rounds.unwrap_or(1);
        if !(1..=MAX_ROUNDS).contains(&rounds) {
            return Err(ToolError::InvalidArguments(format!(
                "`rounds` must be 1 to {MAX_ROUNDS}"
            )));
        }
        let threads = context.data.threads();
        let thread = match common
            .continuation_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(id) => {
                let id: ThreadId = id.parse().map_err(|e: crate::memory::ThreadError| {
                    ToolError::InvalidArguments(e.to_string())
                })?;
                Some(
                    threads
                        .get(&id)
                        .map_err(|e| ToolError::InvalidArguments(e.to_string()))?,
                )
            }
            None => None,
        };
        let base = ModelTurn {
            tool: "consensus".into(),
            prompt: prompt.clone(),
            files: files.clone(),
            images: common.images.clone(),
            temperature: common.temperature,
            thinking_mode: common.thinking_mode.clone(),
            max_answer_tokens: args::max_answer_tokens(common.max_answer_tokens)?,
            ..ModelTurn::default()
        };
        // Check the files once up front, so a bad path is one clear error, not one per model.
        let policy = &context.settings.files;
        super::files::off_worker(|| policy.expand(&files))
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;

        let labels: Vec<String> = parsed
            .models
            .iter()
            .map(|p| format!("{} ({})", p.model, Stance::label(p.stance)))
            .collect();
        let total = parsed.models.len() as f64 * f64::from(rounds) + 1.0;
        let mut done = 0.0;
        let mut answers: Vec<Answer> = Vec::new();
        for round in 1..=rounds {
            let others_for = |index: usize| -> Option<String> {
                (round > 1).then(|| {
                    answers
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != index)
                        .filter_map(|(_, a)| {
                            a.result
                                .as_ref()
                                .ok()
                                .map(|r| format!("--- {} ---\n{}", a.label, r.text))
                        })
                        .collect::<Vec<_>>()
                        .join("\n\n")
                })
            };
            let calls = parsed
                .models
                .iter()
                .enumerate()
                .map(|(index, participant)| {
                    let others = others_for(index);
                    let base = &base;
                    let thread = thread.as_ref();
                    let label = labels[index].clone();
                    async move {
                        let result = self
                            .ask(context, participant, base, thread, others.as_deref())
                            .await;
                        (label, result)
                    }
                });
            let mut pending: futures::stream::FuturesOrdered<_> = calls.collect();
            let mut round_answers = Vec::new();
            use futures::StreamExt;
            while let Some((label, result)) = pending.next().await {
                done += 1.0;
                let status = match &result {
                    Ok(reply) => format!(
                        "{label} answered in {:.1} s",
                        reply.latency_ms as f64 / 1000.0
                    ),
                    Err(_) => format!("{label} failed"),
                };
                context
                    .progress
                    .progress(done, Some(total), format!("round {round}: {status}"));
                round_answers.push(Answer { label, result });
            }
            if context.cancel.is_cancelled() {
                return Err(ToolError::Cancelled);
            }
            // A model that failed this round keeps its earlier answer, if any.
            if round > 1 {
                for (slot, new) in answers.iter_mut().zip(round_answers) {
                    if new.result.is_ok() || slot.result.is_err() {
                        *slot = new;
                    }
                }
            } else {
                answers = round_answers;
            }
        }
        let succeeded: Vec<&Answer> = answers.iter().filter(|a| a.result.is_ok()).collect();
        if succeeded.is_empty() {
            let reasons: Vec<String> = answers
                .iter()
                .filter_map(|a| a.result.as_ref().err().map(|e| format!("{}: {e}", a.label)))
                .collect();
            return Err(ToolError::Failed(format!(
                "every model failed: {}",
                reasons.join("; ")
            )));
        }

        // Synthesis.
        let answers_text: String = succeeded
            .iter()
            .filter_map(|a| {
                a.result
                    .as_ref()
                    .ok()
                    .map(|r| format!("--- {} ---\n{}\n", a.label, r.text))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let synthesis_turn = ModelTurn {
            tool: "consensus".into(),
            prompt: format!(
                "Proposal:\n{prompt}\n\nIndependent reviews:\n\n{answers_text}\n\
                 Write the synthesis: where the reviewers agree, where they disagree and who is more convincing, \
                 the key risks, and a final recommendation with concrete next steps."
            ),
            system_prompt: Some(
                "You synthesize independent expert reviews into one clear, balanced recommendation for an AI \
                 assistant and its user. Do not invent points nobody made; attribute disagreements."
                    .into(),
            ),
            temperature: Some(0.2),
            ..ModelTurn::default()
        };
        let synthesis_model =
            engine::resolve_model(context, &self.config, parsed.synthesis_model.as_deref())?;
        let mut prepared = engine::prepare(
            context,
            &self.config,
            &synthesis_model,
            None,
            &synthesis_turn,
        )?;
        if base.max_answer_tokens.is_some() {
            prepared.request.max_output_tokens = base.max_answer_tokens;
        }
        let synthesis = engine::call_model(
            context,
            "consensus",
            &synthesis_model,
            prepared.request,
            thread.as_ref().map(|t| t.id()),
        )
        .await;
        context
            .progress
            .progress(total, Some(total), "synthesis done".into());

        let mut text = String::new();
        let mut total_cost = Some(0.0);
        let mut add_cost = |cost: Option<f64>| {
            total_cost = match (total_cost, cost) {
                (Some(t), Some(c)) => Some(t + c),
                _ => None,
            }
        };
        match &synthesis {
            Ok((completion, _)) => {
                text.push_str(&format!(
                    "## Synthesis ({})\n\n{}\n\n",
                    completion.model,
                    completion.text.trim()
                ));
                add_cost(completion.total_cost_usd());
            }
            Err(e) => text.push_str(&format!(
                "## Synthesis failed\n\n{e}\nThe individual answers follow.\n\n"
            )),
        }
        let mut table = String::from("## Models\n");
        for answer in &answers {
            match &answer.result {
                Ok(reply) => {
                    add_cost(reply.cost);
                    text.push_str(&format!(
                        "## {} — {}\n\n{}\n\n",
                        answer.label,
                        reply.model,
                        reply.text.trim()
                    ));
                    table.push_str(&format!(
                        "- {}: {} in / {} out tokens, {}, {:.1} s\n",
                        answer.label,
                        reply.input_tokens,
                        reply.output_tokens,
                        reply
                            .cost
                            .map_or("cost unknown".to_owned(), crate::util::usd),
                        reply.latency_ms as f64 / 1000.0
                    ));
                }
                Err(e) => table.push_str(&format!("- {}: FAILED — {e}\n", answer.label)),
            }
        }
        text.push_str(&table);

        // Record the exchange on the thread: the proposal, then the synthesis with the answers.
        let id = match thread.as_ref() {
            Some(thread) => thread.id(),
            None => threads
                .create(NewThread {
                    tool: "consensus".into(),
                    session_id: context.session.id.clone(),
                    client: context.session.client_name(),
                    cwd: Some(context.session.meta.cwd.to_string_lossy().into_owned()),
                    parent: None,
                    first_prompt: prompt.clone(),
                })
                .await
                .map_err(|e| ToolError::Failed(e.to_string()))?,
        };
        let policy = &context.settings.files;
        let files_recorded: Vec<String> = super::files::off_worker(|| policy.expand(&files))
            .map(|e| {
                e.files
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        threads
            .append(
                &id,
                NewTurn::user("consensus", &prompt).with_files(files_recorded),
            )
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let synthesis_model_name = synthesis
            .as_ref()
            .map(|(c, _)| c.model.clone())
            .unwrap_or_else(|_| "consensus".into());
        let synthesis_provider = synthesis
            .as_ref()
            .map(|(c, _)| c.provider.clone())
            .unwrap_or_default();
        let outcome = threads
            .append(
                &id,
                NewTurn::assistant("consensus", synthesis_model_name, synthesis_provider, &text),
            )
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let total_cost = total_cost.map_or("cost unknown".to_owned(), crate::util::usd);
        let answer = super::pages::Answer {
            header: format!(
                "[zen] continuation_id: {id} · consensus of {} models · total {total_cost}",
                answers.len()
            ),
            before: String::new(),
            text,
            thread: id.to_string(),
            turn: outcome.turn_count,
            footer: format!(
                "total: {total_cost} · continuation_id: {id} ({} turns left) — pass it to any zen tool to continue.",
                outcome.remaining_turns / 2
            ),
        };
        Ok(ToolOutput::text(answer.to_text(context.result_budget())))
    }
}
