//! `zend ask` and `zend consensus`: call a model tool from the terminal.
//!
//! The CLI opens a `Session` stream itself and speaks MCP over it, as any
//! client does through zen-shim: `initialize`, then `tools/call` with a
//! progress token. So the call takes exactly the path an assistant's does
//! (admission limits, the ledger, conversation memory), and a thread started
//! here can be continued from any client. While it runs, progress goes to
//! stderr when stderr is a terminal; Ctrl-C cancels the call
//! (`notifications/cancelled`) and exits 130.
//!
//! Output: the whole answer on stdout (the session's client name, `zend-cli`,
//! has no result budget in the built-in server.yaml: a terminal takes any
//! length); the footer (model, tokens, cost, `continuation_id`) on stderr, so
//! `zend ask Q > answer.md` keeps only the answer; the header line that repeats
//! the footer for assistants is dropped. `--json` prints one object with both. A tool error (`isError`)
//! goes to stderr and exits 4.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use zen_proto::v1::Frame;

use super::connect::Target;
use super::{CliError, EXIT_OK, EXIT_TOOL_ERROR, Style};

/// Exit code after Ctrl-C cancelled the call (128 + SIGINT, as shells expect).
pub const EXIT_INTERRUPTED: u8 = 130;
/// The JSON-RPC id of the `tools/call` request.
const CALL_ID: u64 = 2;
/// How often the progress line redraws.
const SPINNER_EVERY: Duration = Duration::from_millis(120);
/// How long to wait for the tool to wind down after Ctrl-C.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// One tool call, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub tool: String,
    pub arguments: Map<String, Value>,
}

impl ToolCall {
    /// `chat` (or another model tool) with a prompt, model, continuation and files.
    pub fn ask(
        tool: &str,
        prompt: String,
        model: Option<String>,
        continuation_id: Option<String>,
        files: &[std::path::PathBuf],
    ) -> Result<Self, CliError> {
        let mut arguments = Map::new();
        arguments.insert("prompt".into(), Value::String(prompt));
        if let Some(model) = model {
            arguments.insert("model".into(), Value::String(model));
        }
        if let Some(id) = continuation_id {
            arguments.insert("continuation_id".into(), Value::String(id));
        }
        if !files.is_empty() {
            arguments.insert("absolute_file_paths".into(), json!(absolute(files)?));
        }
        Ok(Self {
            tool: tool.to_owned(),
            arguments,
        })
    }

    /// `consensus` with `MODEL[:for|against|neutral]` participants.
    pub fn consensus(
        prompt: String,
        models: &[String],
        continuation_id: Option<String>,
        files: &[std::path::PathBuf],
    ) -> Result<Self, CliError> {
        let participants: Vec<Value> = models.iter().map(|m| participant(m)).collect();
        let mut call = Self::ask("consensus", prompt, None, continuation_id, files)?;
        call.arguments
            .insert("models".into(), Value::Array(participants));
        Ok(call)
    }
}

/// `gpt-5:for` → `{"model": "gpt-5", "stance": "for"}`. Only a known stance is
/// split off, so Ollama tags such as `llama3:8b` stay whole.
fn participant(spec: &str) -> Value {
    match spec.rsplit_once(':') {
        Some((model, stance))
            if !model.is_empty()
                && ["for", "against", "neutral"]
                    .contains(&stance.to_ascii_lowercase().as_str()) =>
        {
            json!({"model": model, "stance": stance.to_ascii_lowercase()})
        }
        _ => json!({ "model": spec }),
    }
}

/// The tools take absolute paths only; relative ones are taken from the current directory.
fn absolute(files: &[std::path::PathBuf]) -> Result<Vec<String>, CliError> {
    files
        .iter()
        .map(|f| Ok(std::path::absolute(f)?.to_string_lossy().into_owned()))
        .collect()
}

/// The prompt argument: `-` reads all of stdin.
pub fn read_prompt(prompt: &str) -> Result<String, CliError> {
    let text = if prompt == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        text
    } else {
        prompt.to_owned()
    };
    if text.trim().is_empty() {
        return Err(CliError::Usage("the prompt is empty".into()));
    }
    Ok(text)
}

/// Where the output goes and how.
pub struct Output<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub json: bool,
    /// How to decorate what goes to `err`; a terminal there also gets the progress line.
    pub err_style: Style,
}

/// Runs one tool call through a fresh MCP session and prints its result.
pub async fn run(target: &Target, call: ToolCall, output: Output<'_>) -> Result<u8, CliError> {
    let mut client = target.connect_or_start().await?;
    let (outbound, outbound_rx) = mpsc::channel::<Frame>(16);
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(outbound_rx));
    add_session_metadata(request.metadata_mut());
    send(
        &outbound,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "zend-cli", "version": zen_proto::VERSION}
        }}),
    )
    .await?;
    let mut inbound = client
        .session(request)
        .await
        .map_err(|s| CliError::Session(s.message().to_owned()))?
        .into_inner();
    let initialized = next_response(&mut inbound, 1).await?;
    if let Some(error) = initialized.get("error") {
        return Err(CliError::Session(format!("initialize failed: {error}")));
    }
    send(
        &outbound,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    // Listening for Ctrl-C before the call goes out, so that one at any moment
    // of the call cancels it (tokio's `ctrl_c()` registers only once polled,
    // and until then SIGINT would kill the CLI without a word to zend).
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    send(
        &outbound,
        json!({"jsonrpc": "2.0", "id": CALL_ID, "method": "tools/call", "params": {
            "name": call.tool,
            "arguments": call.arguments,
            "_meta": {"progressToken": "zend-cli"}
        }}),
    )
    .await?;

    let Output {
        out,
        err,
        json: as_json,
        err_style: style,
    } = output;
    let started = Instant::now();
    let mut spinner = Spinner::new(&call.tool, style.tty);
    let mut tick = tokio::time::interval(SPINNER_EVERY);
    let mut cancelled_at: Option<Instant> = None;
    let response = loop {
        tokio::select! {
            frame = inbound.message() => {
                let frame = frame
                    .map_err(|s| CliError::Session(s.message().to_owned()))?
                    .ok_or_else(|| CliError::Session("zend ended the session before answering".into()))?;
                let message: Value = serde_json::from_slice(&frame.json)
                    .map_err(|e| CliError::Session(format!("zend sent a non-JSON frame: {e}")))?;
                if message.get("id") == Some(&json!(CALL_ID)) && message.get("method").is_none() {
                    break message;
                }
                if message.get("method").and_then(Value::as_str) == Some("notifications/progress")
                    && let Some(text) = message["params"]["message"].as_str()
                {
                    spinner.message = text.to_owned();
                }
            }
            _ = tick.tick() => {
                spinner.draw(err, started.elapsed());
                if cancelled_at.is_some_and(|at| at.elapsed() > CANCEL_WAIT) {
                    // The usual end: zend does not answer a call its client cancelled.
                    spinner.clear(err);
                    let _ = writeln!(err, "zend: cancelled");
                    return Ok(EXIT_INTERRUPTED);
                }
            }
            _ = interrupt.recv(), if cancelled_at.is_none() => {
                cancelled_at = Some(Instant::now());
                spinner.message = "cancelling…".into();
                send(&outbound, json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": CALL_ID, "reason": "interrupted (Ctrl-C)"}})).await?;
            }
        }
    };
    spinner.clear(err);
    drop(outbound);
    if cancelled_at.is_some() {
        let _ = writeln!(err, "zend: cancelled");
        return Ok(EXIT_INTERRUPTED);
    }
    if let Some(error) = response.get("error") {
        let message = error["message"].as_str().unwrap_or("unknown error");
        return Err(CliError::Session(format!(
            "{} refused the call: {message}",
            call.tool
        )));
    }
    let result = &response["result"];
    let text = result["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let is_error = result["isError"].as_bool().unwrap_or(false);
    let (answer, footer) = split_footer(without_header(&text));
    let code = if is_error { EXIT_TOOL_ERROR } else { EXIT_OK };
    if as_json {
        let value = json!({
            "tool": call.tool,
            "is_error": is_error,
            "answer": answer.trim_end(),
            "continuation_id": continuation_id(footer),
            "footer": footer,
            "text": text,
        });
        writeln!(out, "{value:#}")?;
    } else if is_error {
        writeln!(err, "{}", style.red(text.trim_end()))?;
    } else {
        writeln!(out, "{}", answer.trim_end())?;
        if !footer.is_empty() {
            writeln!(err, "{}", style.dim(footer.trim_end()))?;
        }
    }
    Ok(code)
}

/// A model tool's text without its header line (`[zen] continuation_id: …`,
/// which repeats the footer for assistants whose client keeps only the head).
pub fn without_header(text: &str) -> &str {
    if !text.starts_with("[zen] continuation_id: ") {
        return text;
    }
    match text.split_once('\n') {
        Some((_, rest)) => rest.strip_prefix('\n').unwrap_or(rest),
        None => "",
    }
}

/// Splits a model tool's text at its last `---` line: the answer, then the footer.
pub fn split_footer(text: &str) -> (&str, &str) {
    match text.rfind("\n---\n") {
        Some(at) => (&text[..at], &text[at + "\n---\n".len()..]),
        None => (text, ""),
    }
}

/// The `continuation_id` a footer offers.
pub fn continuation_id(footer: &str) -> Option<String> {
    let start = footer.find("continuation_id: ")? + "continuation_id: ".len();
    footer[start..].split_whitespace().next().map(str::to_owned)
}

async fn send(outbound: &mpsc::Sender<Frame>, message: Value) -> Result<(), CliError> {
    outbound
        .send(Frame {
            json: message.to_string().into_bytes().into(),
        })
        .await
        .map_err(|_| CliError::Session("zend closed the session".into()))
}

async fn next_response(inbound: &mut tonic::Streaming<Frame>, id: u64) -> Result<Value, CliError> {
    loop {
        let frame = inbound
            .message()
            .await
            .map_err(|s| CliError::Session(s.message().to_owned()))?
            .ok_or_else(|| CliError::Session("zend ended the session during initialize".into()))?;
        let message: Value = serde_json::from_slice(&frame.json)
            .map_err(|e| CliError::Session(format!("zend sent a non-JSON frame: {e}")))?;
        if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
            return Ok(message);
        }
    }
}

/// The metadata a shim sends, so `zend status` and the threads show this CLI
/// like any session (its working directory is where the thread was started).
fn add_session_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    use std::os::unix::ffi::OsStrExt;
    use tonic::metadata::{BinaryMetadataValue, MetadataValue};
    use zen_proto::meta;
    metadata.insert(
        meta::SHIM_VERSION,
        MetadataValue::from_static(zen_proto::VERSION),
    );
    metadata.insert(meta::SHIM_PID, MetadataValue::from(std::process::id()));
    metadata.insert(
        meta::CLIENT_PID,
        MetadataValue::from(std::os::unix::process::parent_id()),
    );
    if let Ok(cwd) = std::env::current_dir() {
        metadata.insert_bin(
            meta::CWD_BIN,
            BinaryMetadataValue::from_bytes(Path::new(&cwd).as_os_str().as_bytes()),
        );
    }
}

/// A one-line progress indicator on stderr: spinner, elapsed time, latest news.
struct Spinner {
    tool: String,
    enabled: bool,
    frame: usize,
    message: String,
    drawn: bool,
}

impl Spinner {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

    fn new(tool: &str, enabled: bool) -> Self {
        Self {
            tool: tool.to_owned(),
            enabled,
            frame: 0,
            message: "waiting for the model".into(),
            drawn: false,
        }
    }

    fn draw(&mut self, err: &mut dyn Write, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        self.frame = (self.frame + 1) % Self::FRAMES.len();
        let line = format!(
            "{} {} {:>4}s  {}",
            Self::FRAMES[self.frame],
            self.tool,
            elapsed.as_secs(),
            self.message
        );
        let _ = write!(err, "\r\x1b[2K{}", super::truncate(&line, 78));
        let _ = err.flush();
        self.drawn = true;
    }

    fn clear(&mut self, err: &mut dyn Write) {
        if self.drawn {
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stances_split_off_but_tags_stay() {
        assert_eq!(
            participant("gpt-5:for"),
            json!({"model": "gpt-5", "stance": "for"})
        );
        assert_eq!(
            participant("o3:AGAINST"),
            json!({"model": "o3", "stance": "against"})
        );
        assert_eq!(
            participant("ollama/llama3:8b"),
            json!({"model": "ollama/llama3:8b"})
        );
        assert_eq!(participant("gpt-5"), json!({"model": "gpt-5"}));
    }

    #[test]
    fn footer_and_continuation_id() {
        let text = "Use a B-tree.\n---\nnot the footer\n\n---\nmodel: gpt-5\ncontinuation_id: abc (9 turns left) — pass it";
        let (answer, footer) = split_footer(text);
        assert_eq!(answer, "Use a B-tree.\n---\nnot the footer\n");
        assert_eq!(continuation_id(footer).as_deref(), Some("abc"));
        assert_eq!(split_footer("plain"), ("plain", ""));
        let text = "[zen] continuation_id: abc · gpt-5\n\nUse a B-tree.\n\n---\nmodel: gpt-5";
        assert_eq!(split_footer(without_header(text)).0, "Use a B-tree.\n");
        assert_eq!(without_header("[zen] other\n\nx"), "[zen] other\n\nx");
    }
}
