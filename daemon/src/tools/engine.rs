//! The execution engine: what every model-calling tool shares.
//!
//! A tool describes one model turn ([`ModelTurn`]); [`run_model_turn`] does the
//! rest in one place: pick and check the model, load the thread, budget history
//! and files against the model's context window, check the spend budget, call
//! `providers` (forwarding progress), write the ledger records and the turns
//! (one store transaction each, durable when the write returns), and return
//! a [`TurnResult`] that [`answer`] lays out for the assistant (paged to the
//! client's result budget by `pages`). A failed call's ledger records are
//! durable before the error is returned. Tools that make no model call use the thread helpers here
//! ([`open_thread`], [`record_turn`], [`workflow_state`]) so continuation works
//! the same everywhere.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::config::{ModelCategory, ToolConfig};
use super::files::{self, FileOutcome};
use super::pages::Answer;
use super::{CallContext, ToolError};
use crate::ledger::{LedgerRecord, Outcome};
use crate::memory::history::token_budget_for;
use crate::memory::{
    AppendOutcome, NewThread, NewTurn, Thread, ThreadError, ThreadId, ThreadTarget,
};
use crate::providers::{
    Attempt, AttemptOutcome, CacheHints, Category, Completion, CompletionRequest, ContentPart,
    Message, ReasoningEffort, ResolvedModel, Role, StreamEvent,
};
use crate::time::{Clock, SystemClock};

/// One model turn, as a tool asks for it.
#[derive(Debug, Clone, Default)]
pub struct ModelTurn {
    /// The tool's name (recorded on the thread and in the ledger).
    pub tool: String,
    /// The user's prompt (already taken from prompt.txt when one was sent).
    pub prompt: String,
    /// Text the tool adds after the prompt: workflow findings, a diff, ...
    pub extra_context: Option<String>,
    /// Replaces the tool config's system prompt when set.
    pub system_prompt: Option<String>,
    /// Requested model; `None` or `auto` = the tool's default.
    pub model: Option<String>,
    pub continuation_id: Option<String>,
    /// Files and directories as the client gave them (absolute).
    pub files: Vec<String>,
    pub images: Vec<String>,
    pub temperature: Option<f32>,
    pub thinking_mode: Option<String>,
    /// The output limit asked of the provider (`max_answer_tokens`).
    pub max_answer_tokens: Option<u64>,
}

/// What one model turn produced.
#[derive(Debug, Clone, Default)]
pub struct TurnResult {
    pub answer: String,
    pub continuation_id: String,
    /// The answer's turn on the thread, counted from 1 (where its pages are read).
    pub answer_turn: u32,
    pub remaining_turns: u32,
    /// `provider/model` that answered.
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// USD; `None` when the price is unknown.
    pub cost: Option<f64>,
    pub latency_ms: u64,
    /// One-line notes for the assistant: budget warnings, files left out, fallbacks taken.
    pub notes: Vec<String>,
}

/// Runs one model turn for `tool` (see the module docs for the steps).
pub async fn run_model_turn(
    context: &CallContext,
    config: &ToolConfig,
    turn: ModelTurn,
) -> Result<TurnResult, ToolError> {
    let threads = context.data.threads();
    let thread = match turn
        .continuation_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        Some(id) => {
            let id = id.parse::<ThreadId>().map_err(thread_error)?;
            Some(threads.get(&id).map_err(thread_error)?)
        }
        None => None,
    };
    if let Some(thread) = &thread {
        // The exchange adds two turns; refuse before paying for a model call
        // whose answer could not be recorded.
        let max = threads.config().max_turns;
        if thread.summary.turn_count.saturating_add(2) > max {
            return Err(thread_error(ThreadError::TooManyTurns {
                id: thread.id(),
                max,
            }));
        }
    }
    let model = resolve_model(context, config, turn.model.as_deref())?;
    let mut prepared = prepare(context, config, &model, thread.as_ref(), &turn)?;
    if turn.max_answer_tokens.is_some() {
        prepared.request.max_output_tokens = turn.max_answer_tokens;
    }
    let thread_id = thread.as_ref().map(Thread::id);
    let (completion, mut notes, records) =
        call_model_unrecorded(context, &turn.tool, &model, prepared.request, thread_id).await?;
    notes.extend(prepared.notes);

    // The call's ledger records and both turns (and the thread, when new) in
    // one transaction, durable before the client hears of them (invariant 3).
    let target = match thread_id {
        Some(id) => ThreadTarget::Existing(id),
        None => ThreadTarget::New(NewThread {
            tool: turn.tool.clone(),
            session_id: context.session.id.clone(),
            client: context.session.client_name(),
            cwd: Some(context.session.meta.cwd.to_string_lossy().into_owned()),
            parent: None,
            first_prompt: turn.prompt.clone(),
        }),
    };
    let user_turn = NewTurn::user(&turn.tool, &turn.prompt)
        .with_files(prepared.files_recorded)
        .with_images(turn.images.iter().map(|i| {
            if i.starts_with("data:") {
                "(inline image)".to_owned()
            } else {
                i.clone()
            }
        }));
    let mut answer_turn = NewTurn::assistant(
        &turn.tool,
        &completion.model,
        &completion.provider,
        &completion.text,
    );
    answer_turn.tokens = Some(completion.usage.output_tokens);
    let records = context
        .data
        .ledger()
        .stage(&records)
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    let (id, outcome) = context
        .data
        .write_exchange(
            records,
            threads.stage_turns(target, vec![user_turn, answer_turn]),
        )
        .await
        .map_err(thread_error)?;
    if let Some(note) = cache_note(context, &completion) {
        notes.push(note);
    }

    Ok(TurnResult {
        answer: completion.text.clone(),
        continuation_id: id.to_string(),
        answer_turn: outcome.turn_count,
        remaining_turns: outcome.remaining_turns / 2,
        model: completion.model.clone(),
        input_tokens: completion.usage.input_tokens,
        output_tokens: completion.usage.output_tokens,
        cost: completion.total_cost_usd(),
        latency_ms: completion.latency.as_millis() as u64,
        notes,
    })
}

/// One line on what the provider's prompt cache did for this call and what caching saved
/// today and this month; `None` when the call read nothing from a cache.
fn cache_note(context: &CallContext, completion: &Completion) -> Option<String> {
    let usage = completion.usage;
    if usage.cached_tokens == 0 {
        return None;
    }
    let saved: f64 = completion
        .attempts
        .iter()
        .filter_map(|a| a.cache_saved_usd)
        .sum();
    let usd = crate::util::usd;
    let mut note = format!(
        "prompt cache: {} of {} input tokens cached, saved {}",
        usage.cached_tokens,
        usage.input_tokens,
        usd(saved)
    );
    if let Ok(totals) = context.data.ledger().totals(SystemClock.now()) {
        note.push_str(&format!(
            " (caching saved {} today, {} this month)",
            usd(totals.today.total.cache_saved_usd),
            usd(totals.this_month.total.cache_saved_usd)
        ));
    }
    Some(note)
}

/// Picks the model: the request's, else the tool's default, else `DEFAULT_MODEL`,
/// else the best available in the tool's category ("auto"); then checks the
/// tool's allow-list. Errors list what is available.
pub fn resolve_model(
    context: &CallContext,
    config: &ToolConfig,
    requested: Option<&str>,
) -> Result<Arc<ResolvedModel>, ToolError> {
    let providers = &context.settings.providers;
    let is_auto = |name: &str| name.trim().is_empty() || name.trim().eq_ignore_ascii_case("auto");
    let named = requested
        .filter(|m| !is_auto(m))
        .or(config.model.as_deref().filter(|m| !is_auto(m)))
        .or(Some(providers.default_model()).filter(|m| !is_auto(m)));
    let model = match named {
        Some(name) => providers
            .resolve(name.trim())
            .map_err(|e| ToolError::Failed(e.to_string()))?,
        None => providers
            .pick_auto(category(config))
            .map(Arc::new)
            .ok_or_else(|| no_models(context))?,
    };
    if !config.allowed_models.is_empty() {
        let allowed = config.allowed_models.iter().any(|a| {
            a.eq_ignore_ascii_case(&model.name)
                || model
                    .aliases
                    .iter()
                    .any(|alias| alias.eq_ignore_ascii_case(a))
        });
        if !allowed {
            return Err(ToolError::InvalidArguments(format!(
                "model '{}' is not allowed for this tool; allowed: {}",
                model.name,
                config.allowed_models.join(", ")
            )));
        }
    }
    Ok(model)
}

fn category(config: &ToolConfig) -> Category {
    match config.category {
        ModelCategory::Fast => Category::Fast,
        ModelCategory::Balanced => Category::Balanced,
        ModelCategory::Reasoning => Category::Reasoning,
    }
}

fn no_models(context: &CallContext) -> ToolError {
    let listing = context.settings.providers.listing();
    let hints: Vec<String> = listing
        .providers
        .iter()
        .filter(|p| !p.configured)
        .take(4)
        .filter_map(|p| p.reason.as_ref().map(|why| format!("{}: {why}", p.name)))
        .collect();
    ToolError::Failed(format!(
        "no model is available: no provider has a key. Configure one in zen's .env or environment, e.g. {}; \
         then call listmodels",
        hints.join("; ")
    ))
}

/// A request ready to send, with what the engine noted while building it.
pub struct Prepared {
    pub request: CompletionRequest,
    /// Notes for the assistant (files left out, ...).
    pub notes: Vec<String>,
    /// The files of this turn, as recorded on the thread (expanded, absolute).
    pub files_recorded: Vec<String>,
}

/// Builds the model request in a layout that only grows from one turn of a thread to the
/// next, so providers' prompt caches can reuse what was sent before:
///
/// 1. the system prompt;
/// 2. the files, all in one block in the order the thread first named them (this turn's
///    new ones last), each once with its current contents;
/// 3. the earlier turns verbatim, oldest first (cut in large steps when they do not fit);
/// 4. what changes every turn: the end of the history, notes on what was left out, the
///    turn count; then the new request, and images.
///
/// Each of 2 and 3's pieces is a part of the one user message, and the request's
/// [`CacheHints`] mark the system prompt and the end of the files and of the history as
/// stable. This turn's files must fit the context budget; history gets half of what is
/// left, earlier files the rest. Files are read off the async worker (see
/// `files::off_worker`).
pub fn prepare(
    context: &CallContext,
    config: &ToolConfig,
    model: &ResolvedModel,
    thread: Option<&Thread>,
    turn: &ModelTurn,
) -> Result<Prepared, ToolError> {
    files::off_worker(|| prepare_here(context, config, model, thread, turn))
}

fn prepare_here(
    context: &CallContext,
    config: &ToolConfig,
    model: &ResolvedModel,
    thread: Option<&Thread>,
    turn: &ModelTurn,
) -> Result<Prepared, ToolError> {
    let policy = &context.settings.files;
    let estimate = crate::providers::estimate_tokens;
    if !turn.images.is_empty() && !model.info.capabilities.vision {
        return Err(ToolError::InvalidArguments(format!(
            "model '{}' does not accept images; pick a vision model (listmodels shows which) or drop `images`",
            model.name
        )));
    }
    let system = turn
        .system_prompt
        .clone()
        .unwrap_or_else(|| config.system_prompt.clone());
    let mut request_text = turn.prompt.clone();
    if let Some(extra) = turn
        .extra_context
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        request_text.push_str("\n\n");
        request_text.push_str(extra);
    }
    let context_window = model.info.context_window.unwrap_or(DEFAULT_CONTEXT_WINDOW);
    let (input_budget, _answer_budget) = token_budget_for(context_window);
    let fixed = estimate(&system) + estimate(&request_text) + 64;
    let mut room = input_budget.saturating_sub(fixed);
    let mut notes = Vec::new();

    // This turn's files first: they are what the user asked about, and must fit.
    let expanded = policy
        .expand(&turn.files)
        .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
    let current = embed_each(context, &expanded.files, room);
    if let Some(refused) = current.embedded.refused_among(&expanded.named) {
        return Err(ToolError::InvalidArguments(refused.to_string()));
    }
    let too_big: Vec<_> = current.embedded.over_budget().collect();
    if !too_big.is_empty() {
        let mut listing: Vec<String> = current
            .embedded
            .reports
            .iter()
            .filter(|r| r.outcome == FileOutcome::Embedded || r.outcome == FileOutcome::OverBudget)
            .map(|r| format!("{} (~{} tokens)", r.path.display(), r.tokens))
            .collect();
        listing.truncate(50);
        return Err(ToolError::InvalidArguments(format!(
            "files too large: they need ~{} tokens but {} leaves ~{room} for files; send fewer or smaller files \
             (or name the relevant parts), or pick a model with a larger context window. Files: {}",
            current
                .embedded
                .reports
                .iter()
                .map(|r| r.tokens)
                .sum::<u64>(),
            model.name,
            listing.join(", ")
        )));
    }
    room = room.saturating_sub(current.embedded.tokens);
    notes.extend(current.embedded.notes());
    if expanded.truncated > 0 {
        notes.push(format!(
            "{}{} more files in the directories were not listed (limit {}); name subdirectories or files instead",
            if expanded.truncated > 10_000 { "over " } else { "" },
            expanded.truncated.min(10_000),
            files::MAX_FILES
        ));
    }
    let files_recorded: Vec<String> = expanded
        .files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();

    // Then the conversation so far, within half of what is left (rounded down to a
    // step, so a request a little longer or shorter does not move the history's cut),
    // then the files of earlier turns within the rest.
    let history = thread.map(|thread| {
        let share = (room / 2 + room % 2) / HISTORY_BUDGET_STEP * HISTORY_BUDGET_STEP;
        crate::memory::history::build(thread, share, estimate)
    });
    let mut earlier = Embedding::default();
    if let Some(history) = &history {
        room = room.saturating_sub(history.tokens);
        let paths: Vec<PathBuf> = history
            .files_newest_first
            .iter()
            .filter(|f| !files_recorded.contains(f))
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .collect();
        // Checked again as this turn's are (a rule may refuse them now).
        earlier = embed_each(context, &paths, room);
    }

    // The files in one block, in the order the thread first named them.
    let mut order: Vec<PathBuf> = history
        .iter()
        .flat_map(|h| h.files_first_seen.iter().map(PathBuf::from))
        .collect();
    for path in &expanded.files {
        if !order.contains(path) {
            order.push(path.clone());
        }
    }
    let mut stable: Vec<String> = Vec::new();
    let mut breakpoints = Vec::new();
    let mut files_block = String::new();
    for path in &order {
        if let Some(block) = current.block(path).or_else(|| earlier.block(path)) {
            files_block.push_str(block);
        }
    }
    if !files_block.is_empty() {
        let mut text = String::with_capacity(files_block.len() + 128);
        text.push_str(FILES_START);
        text.push_str(&files_block);
        text.push_str(FILES_END);
        stable.push(text);
        breakpoints.push(stable.len() - 1);
    }
    let mut tail = String::new();
    if let Some(history) = &history
        && !history.blocks.is_empty()
    {
        stable.extend(history.blocks.iter().cloned());
        breakpoints.push(stable.len() - 1);
        tail.push('\n');
        tail.push_str(crate::memory::history::HISTORY_END);
        tail.push_str("\n\n");
    }
    let left_out = earlier.embedded.notes();
    if !left_out.is_empty() {
        tail.push_str(&format!(
            "(Left out to fit the context window: {})\n\n",
            left_out.join("; ")
        ));
    }
    if !current.embedded.notes().is_empty() {
        tail.push_str(&format!(
            "(Not included: {})\n\n",
            current.embedded.notes().join("; ")
        ));
    }
    if let Some(thread) = thread {
        tail.push_str(&format!(
            "(This thread has {} turns so far.)\n\n",
            thread.turns.len()
        ));
    }
    if !stable.is_empty() || !tail.is_empty() {
        tail.push_str("=== NEW REQUEST ===\n");
    }
    tail.push_str(&request_text);

    check_images(policy, &turn.images, model)?;
    let mut content: Vec<ContentPart> = stable
        .into_iter()
        .map(|text| ContentPart::Text { text })
        .collect();
    content.push(ContentPart::Text { text: tail });
    for image in &turn.images {
        content.push(load_image(context, image)?);
    }
    let mut request = CompletionRequest::new(
        model.name.clone(),
        vec![Message {
            role: Role::User,
            content,
        }],
    );
    request.system = (!system.trim().is_empty()).then_some(system);
    request.cache = CacheHints {
        key: Some(cache_key(thread, &turn.prompt)),
        system: request.system.is_some(),
        breakpoints: breakpoints.into_iter().map(|part| (0, part)).collect(),
    };
    request.temperature = turn.temperature.or(config.temperature).map(f64::from);
    request.reasoning_effort = turn
        .thinking_mode
        .as_deref()
        .or(config.thinking_mode.as_deref())
        .map(reasoning_effort)
        .transpose()?
        .flatten();
    Ok(Prepared {
        request,
        notes,
        files_recorded,
    })
}

const FILES_START: &str =
    "=== FILES (current contents; the turns below name files without repeating them) ===\n";
const FILES_END: &str = "=== END FILES ===\n\n";

/// History budgets are whole multiples of this many tokens.
const HISTORY_BUDGET_STEP: u64 = 1024;

/// Files embedded one by one (so the prompt can order them), within a budget.
#[derive(Default)]
struct Embedding {
    blocks: Vec<(PathBuf, String)>,
    /// Every file's report, and the tokens of all.
    embedded: files::Embedded,
}

impl Embedding {
    fn block(&self, path: &std::path::Path) -> Option<&str> {
        self.blocks
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, block)| block.as_str())
    }
}

fn embed_each(context: &CallContext, paths: &[PathBuf], budget: u64) -> Embedding {
    let mut all = Embedding::default();
    for path in paths {
        let left = budget.saturating_sub(all.embedded.tokens);
        let one = context.settings.files.embed(
            std::slice::from_ref(path),
            left,
            crate::providers::estimate_tokens,
            &context.reads,
        );
        all.embedded.tokens += one.tokens;
        all.embedded.reports.extend(one.reports);
        if !one.text.is_empty() {
            all.blocks.push((path.clone(), one.text));
        }
    }
    all
}

/// What groups a thread's calls for a provider's prompt cache: derived from the thread's
/// first prompt, which is known before the thread has an id (its first call) and stays
/// the same after.
fn cache_key(thread: Option<&Thread>, prompt: &str) -> String {
    let first = thread
        .and_then(|t| t.turns.first())
        .map_or(prompt, |turn| turn.text.as_str());
    // FNV-1a: stable across builds and platforms (std's hasher promises neither).
    let hash = first.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("zen-{hash:016x}")
}

/// A context window to assume for a model nobody knows the size of.
const DEFAULT_CONTEXT_WINDOW: u64 = 128_000;

fn reasoning_effort(mode: &str) -> Result<Option<ReasoningEffort>, ToolError> {
    Ok(match mode.trim().to_ascii_lowercase().as_str() {
        "" => None,
        "minimal" | "low" => Some(ReasoningEffort::Low),
        "medium" => Some(ReasoningEffort::Medium),
        "high" | "max" => Some(ReasoningEffort::High),
        other => {
            return Err(ToolError::InvalidArguments(format!(
                "`thinking_mode` '{other}' is not one of minimal, low, medium, high, max"
            )));
        }
    })
}

/// Images one request may carry (Zen's limit).
const MAX_IMAGES: usize = 5;

/// Zen's checks before any image is read: at most [`MAX_IMAGES`], and all of
/// them together within the model's image limit, with Zen's messages.
fn check_images(
    policy: &files::FilePolicy,
    images: &[String],
    model: &ResolvedModel,
) -> Result<(), ToolError> {
    if images.len() > MAX_IMAGES {
        return Err(ToolError::InvalidArguments(format!(
            "Too many images: Model '{}' supports a maximum of {MAX_IMAGES} images, but {} were \
             provided. Please reduce the number of images.",
            model.name,
            images.len()
        )));
    }
    const MB: f64 = 1024.0 * 1024.0;
    let total_mb: f64 = images
        .iter()
        .map(|image| match image.split_once(";base64,") {
            // Decoded size of a data URL (base64 is 4 bytes per 3).
            Some((_, data)) if image.starts_with("data:") => (data.len() as f64) * 0.75 / MB,
            // A file refused or not there fails when it is read.
            _ => policy
                .check_path(image)
                .ok()
                .and_then(|path| std::fs::metadata(path).ok())
                .map_or(0.0, |m| m.len() as f64 / MB),
        })
        .sum();
    let limit = model.info.capabilities.max_image_mb;
    if total_mb > limit {
        return Err(ToolError::InvalidArguments(format!(
            "Image size limit exceeded: Model '{}' supports maximum {limit:.1}MB for all images \
             combined, but {total_mb:.1}MB was provided. Please reduce image sizes or count and \
             try again.",
            model.name
        )));
    }
    Ok(())
}

fn load_image(context: &CallContext, image: &str) -> Result<ContentPart, ToolError> {
    use base64::Engine;
    if image.starts_with("data:") {
        return ContentPart::image_data_url(image).ok_or_else(|| {
            ToolError::InvalidArguments(
                "an image data URL must look like data:image/png;base64,...".into(),
            )
        });
    }
    let mime = match std::path::Path::new(image.trim())
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => {
            return Err(ToolError::InvalidArguments(format!(
                "{image} is not a PNG, JPEG, GIF or WebP image"
            )));
        }
    };
    let bytes = context
        .settings
        .files
        .read_image(image, &context.reads)
        .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
    Ok(ContentPart::Image {
        mime: mime.to_owned(),
        data_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

/// One model call with everything around it: budget check, progress
/// notifications, cancellation, and a ledger record per attempt (failed ones
/// included) written durably before returning. Returns the completion and
/// notes for the assistant (budget warnings, fallbacks).
pub async fn call_model(
    context: &CallContext,
    tool: &str,
    model: &ResolvedModel,
    request: CompletionRequest,
    thread: Option<ThreadId>,
) -> Result<(Completion, Vec<String>), ToolError> {
    let (completion, notes, records) =
        call_model_unrecorded(context, tool, model, request, thread).await?;
    context
        .data
        .ledger()
        .record_batch(&records)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    Ok((completion, notes))
}

/// [`call_model`], except that a successful call's ledger records are
/// returned rather than written, for the caller to write in the same
/// transaction as the turns the answer adds (failed and cancelled calls are
/// recorded here, as in `call_model`).
async fn call_model_unrecorded(
    context: &CallContext,
    tool: &str,
    model: &ResolvedModel,
    request: CompletionRequest,
    thread: Option<ThreadId>,
) -> Result<(Completion, Vec<String>, Vec<LedgerRecord>), ToolError> {
    let ledger = context.data.ledger();
    let mut notes = Vec::new();
    match ledger.check_budget(&model.name, SystemClock.now()) {
        Ok(Some(warning)) => notes.push(warning),
        Ok(None) => {}
        Err(refused) => return Err(ToolError::Busy(refused.to_string())),
    }
    let started = std::time::Instant::now();
    let estimated_input = crate::providers::estimate_request_tokens(&request);
    // tpm (limits.rs): the estimate now, corrected to the real usage below.
    let tokens = context
        .settings
        .limiter
        .reserve_tokens(tool, estimated_input)?;
    let (events, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let call = context
        .settings
        .providers
        .complete_detailed(request, Some(events));
    tokio::pin!(call);
    // Progress, stream events and cancellation are watched in this task, not
    // a reporter task of their own: one spawn and a wake-up per stream event
    // fewer per call.
    let mut current = model.name.clone();
    // No timer at all when the client asked for no progress.
    let mut tick = context
        .progress
        .wanted()
        .then(|| tokio::time::interval(PROGRESS_EVERY));
    let mut last = 0.0;
    let mut output_chars = 0_u64;
    let mut events_open = true;
    let outcome = loop {
        tokio::select! {
            biased;
            () = context.cancel.cancelled() => break None,
            outcome = &mut call => break Some(outcome),
            event = events_rx.recv(), if events_open => match event {
                Some(StreamEvent::Started { model, .. }) => current = model,
                Some(StreamEvent::Delta(text)) => output_chars += text.len() as u64,
                Some(_) => {}
                None => events_open = false,
            },
            () = next_tick(tick.as_mut()) => {
                let tokens = output_chars / 4;
                let elapsed = started.elapsed().as_secs();
                // Progress must increase: seconds elapsed (never 0) plus a sliver per token.
                let value = started.elapsed().as_secs_f64().max(0.001) + (tokens as f64 / 1e9);
                if value > last {
                    last = value;
                    context.progress.progress(value, None, format!("{current}: ~{tokens} tokens so far, {elapsed} s"));
                }
            }
        }
    };
    while let Ok(event) = events_rx.try_recv() {
        if let StreamEvent::Delta(text) = event {
            output_chars += text.len() as u64;
        }
    }
    tokens.settle_outcome(outcome.as_ref());
    let now = SystemClock.now();
    let record = |attempt: &Attempt| LedgerRecord {
        time: now,
        model: attempt.model.clone(),
        provider: attempt.provider.clone(),
        tool: tool.to_owned(),
        thread,
        session_id: Some(context.session.id.clone()),
        client: Some(context.session.client_name()),
        project: context.session.project(),
        input_tokens: attempt.usage.map_or(0, |u| u.input_tokens),
        output_tokens: attempt.usage.map_or(0, |u| u.output_tokens),
        cached_tokens: attempt.usage.map_or(0, |u| u.cached_tokens),
        cache_write_tokens: attempt.usage.map_or(0, |u| u.cache_write_tokens),
        reasoning_tokens: attempt.usage.map_or(0, |u| u.reasoning_tokens),
        cache_saved_usd: attempt.cache_saved_usd.unwrap_or(0.0),
        // A failed attempt that consumed no tokens cost nothing (known), not "unknown".
        cost_usd: match (&attempt.outcome, attempt.usage) {
            (AttemptOutcome::Failed { .. }, None) => Some(0.0),
            _ => attempt.cost.usd,
        },
        latency_ms: attempt.latency.as_millis() as u64,
        outcome: match &attempt.outcome {
            AttemptOutcome::Ok => Outcome::Ok,
            AttemptOutcome::Failed { kind, .. } if kind == "cancelled" => Outcome::Cancelled,
            AttemptOutcome::Failed { kind, .. } => Outcome::Error { kind: kind.clone() },
        },
    };
    match outcome {
        Some(Ok(completion)) => {
            let records: Vec<LedgerRecord> = completion.attempts.iter().map(record).collect();
            if completion.model != model.name {
                notes.push(format!(
                    "{} failed; answered by fallback {}",
                    model.name, completion.model
                ));
            }
            Ok((completion, notes, records))
        }
        Some(Err(failure)) => {
            let records: Vec<LedgerRecord> = failure.attempts.iter().map(record).collect();
            if let Err(e) = ledger.record_batch(&records).await {
                tracing::error!(error = %e, "cannot record failed attempts in the ledger");
            }
            Err(ToolError::Failed(failure.error.to_string()))
        }
        None => {
            // Cancelled: the upstream request is dropped (aborted). What it had
            // consumed is unknown upstream, so record our estimate, cost unknown.
            let cancelled = LedgerRecord {
                time: now,
                model: model.name.clone(),
                provider: model.provider.clone(),
                tool: tool.to_owned(),
                thread,
                session_id: Some(context.session.id.clone()),
                client: Some(context.session.client_name()),
                project: context.session.project(),
                input_tokens: estimated_input,
                output_tokens: output_chars / 4,
                cached_tokens: 0,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
                cache_saved_usd: 0.0,
                cost_usd: model.info.prices.as_ref().map(|p| {
                    p.cost(&crate::providers::Usage {
                        input_tokens: estimated_input,
                        output_tokens: output_chars / 4,
                        ..Default::default()
                    })
                }),
                latency_ms: started.elapsed().as_millis() as u64,
                outcome: Outcome::Cancelled,
            };
            if let Err(e) = ledger.record_batch(std::slice::from_ref(&cancelled)).await {
                tracing::error!(error = %e, "cannot record a cancelled call in the ledger");
            }
            Err(ToolError::Cancelled)
        }
    }
}

/// The next tick of `tick`, or never.
async fn next_tick(tick: Option<&mut tokio::time::Interval>) {
    match tick {
        Some(tick) => {
            tick.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// How often a running model call reports progress (clients time out at 60 s).
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn thread_error(error: ThreadError) -> ToolError {
    match error {
        ThreadError::Store(e) => ToolError::Failed(e.to_string()),
        other => ToolError::InvalidArguments(other.to_string()),
    }
}

/// How the assistant reads a model turn: a header line (continuation id,
/// model, tokens, cost: first, so a client that keeps only the head still has
/// it), the answer, then the footer (the same, with notes and turns left).
pub fn answer(result: &TurnResult) -> Answer {
    let cost = match result.cost {
        Some(cost) => crate::util::usd(cost),
        None => "cost unknown".to_owned(),
    };
    let tokens = format!(
        "{} in / {} out tokens",
        result.input_tokens, result.output_tokens
    );
    let mut footer = format!(
        "model: {} · {tokens} · {cost} · {:.1} s\n",
        result.model,
        result.latency_ms as f64 / 1000.0
    );
    for note in &result.notes {
        footer.push_str(&format!("note: {note}\n"));
    }
    footer.push_str(&format!(
        "continuation_id: {} ({} turns left) — pass it to any zen tool to continue this conversation.",
        result.continuation_id, result.remaining_turns
    ));
    Answer {
        header: format!(
            "[zen] continuation_id: {} · {} · {tokens} · {cost}",
            result.continuation_id, result.model
        ),
        before: String::new(),
        text: result.answer.clone(),
        thread: result.continuation_id.clone(),
        turn: result.answer_turn,
        footer,
    }
}

/// Opens the thread to continue (checking the id) or starts a new one; returns its id.
pub async fn open_thread(
    context: &CallContext,
    tool: &str,
    continuation_id: Option<&str>,
    first_prompt: &str,
) -> Result<String, ToolError> {
    let threads = context.data.threads();
    match continuation_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => {
            let id = id.parse::<ThreadId>().map_err(thread_error)?;
            threads.summary(&id).map_err(thread_error)?;
            Ok(id.to_string())
        }
        None => {
            let id = threads
                .create(NewThread {
                    tool: tool.to_owned(),
                    session_id: context.session.id.clone(),
                    client: context.session.client_name(),
                    cwd: Some(context.session.meta.cwd.to_string_lossy().into_owned()),
                    parent: None,
                    first_prompt: first_prompt.to_owned(),
                })
                .await
                .map_err(thread_error)?;
            Ok(id.to_string())
        }
    }
}

/// Records one turn on a thread, durably; returns its number and the turns left.
pub async fn record_turn(
    context: &CallContext,
    thread: &str,
    tool: &str,
    role_is_user: bool,
    text: &str,
    files: &[String],
) -> Result<AppendOutcome, ToolError> {
    let id = thread.parse::<ThreadId>().map_err(thread_error)?;
    let turn = if role_is_user {
        NewTurn::user(tool, text)
    } else {
        NewTurn {
            role: crate::memory::Role::Assistant,
            ..NewTurn::user(tool, text)
        }
    }
    .with_files(files.iter().cloned());
    context
        .data
        .threads()
        .append(&id, turn)
        .await
        .map_err(thread_error)
}

/// A multi-step tool's state on a thread (`None` before its first step).
pub async fn workflow_state(
    context: &CallContext,
    thread: &str,
    tool: &str,
) -> Result<Option<Value>, ToolError> {
    let id = thread.parse::<ThreadId>().map_err(thread_error)?;
    context
        .data
        .threads()
        .workflow_state(&id, tool)
        .map_err(thread_error)
}

/// Stores a multi-step tool's state on a thread, durably.
pub async fn set_workflow_state(
    context: &CallContext,
    thread: &str,
    tool: &str,
    state: Value,
) -> Result<(), ToolError> {
    let id = thread.parse::<ThreadId>().map_err(thread_error)?;
    context
        .data
        .threads()
        .set_workflow_state(&id, tool, &state)
        .await
        .map_err(thread_error)
}
