//! A real assistant, headless (opt-in: `ZEN_TEST_CLAUDE_CODE=1`, needs Node.js, npm and
//! network access to the npm registry): Claude Code from npm, installed into a
//! temporary directory, runs `claude -p` with zen as its MCP server. Its model
//! is a scripted Messages API on loopback that streams a `tool_use` of zen's
//! `chat`, then a final answer once it gets the tool's result; zen's own model
//! is the mock provider. The test checks the `tool_result` Claude Code sent
//! back to its model: zen's answer and a continuation id of a real thread.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{ZenHome, output_within, shim_bin};

/// What the scripted model asks zen, and what zen's model answers.
const QUESTION: &str = "What is 6 times 7? (asked through Claude Code)";
const ZEN_ANSWER: &str = "ZEN-ANSWER-42 from the mock provider";
const FINAL: &str = "FINAL-ANSWER of the scripted Messages API";
const TOOL: &str = "mcp__zen__chat";
const TOOL_USE_ID: &str = "toolu_zen_e2e_1";

/// A scripted Anthropic Messages API: `tool_use` of zen's chat while no
/// `tool_result` was sent, else a final text; every request recorded.
struct ScriptedModel {
    url: String,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
}

impl ScriptedModel {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &seen);
                });
            }
        });
        Self { url, requests }
    }

    fn requests(&self) -> Vec<(String, Value)> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<(String, Value)>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while let Some(request) = crate::support::mock_provider::read_request(&mut reader)? {
        let (path, body) = (request.path, request.body);
        seen.lock().unwrap().push((path.clone(), body.clone()));
        let (content_type, text) = if path.starts_with("/v1/messages") {
            ("text/event-stream", messages_answer(&body))
        } else {
            ("application/json", "{}".to_owned())
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nrequest-id: req_e2e\r\n\r\n",
            text.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(text.as_bytes())?;
        stream.flush()?;
    }
    Ok(())
}

/// The stream one Messages request gets.
fn messages_answer(body: &Value) -> String {
    let offers_zen = body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["name"] == TOOL));
    let answered = body["messages"].as_array().is_some_and(|messages| {
        messages.iter().any(|m| {
            m["content"]
                .as_array()
                .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
        })
    });
    let (block, delta, stop) = if offers_zen && !answered {
        (
            json!({"type": "tool_use", "id": TOOL_USE_ID, "name": TOOL, "input": {}}),
            json!({"type": "input_json_delta",
                   "partial_json": json!({"prompt": QUESTION, "model": "gpt-5"}).to_string()}),
            "tool_use",
        )
    } else {
        (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": FINAL}),
            "end_turn",
        )
    };
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_e2e", "type": "message",
            "role": "assistant", "model": body["model"], "content": [], "stop_reason": null,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": block}),
        json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
               "usage": {"output_tokens": 5}}),
        json!({"type": "message_stop"}),
    ];
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

/// `name` on the test's own PATH (not the hermetic one: that drops the
/// directories holding a real assistant CLI, which may also hold node).
fn on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// `npm install`s Claude Code into `dir`; the command that runs it, or `None`
/// (the test skips) when npm or node is missing.
fn install_claude_code(dir: &std::path::Path) -> Option<Command> {
    let (Some(npm), Some(node)) = (on_path("npm"), on_path("node")) else {
        eprintln!("skipped: npm and node are needed to install and run Claude Code");
        return None;
    };
    // npm keeps the host's environment (and any proxy): it needs the registry.
    let installed = output_within(
        Command::new(npm)
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)
            .arg("@anthropic-ai/claude-code"),
        Duration::from_secs(600),
    );
    assert!(
        installed.status.success(),
        "npm install @anthropic-ai/claude-code failed: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    // The wrapper runs the native binary whether or not npm ran the package's
    // postinstall (which puts it in place of `bin/claude.exe`).
    let wrapper = dir.join("node_modules/@anthropic-ai/claude-code/cli-wrapper.cjs");
    assert!(wrapper.is_file(), "{} is missing", wrapper.display());
    let mut claude = Command::new(node);
    claude.arg(wrapper);
    Some(claude)
}

#[test]
fn claude_code_calls_zen_and_sends_its_answer_and_continuation_id_to_its_model() {
    if std::env::var_os("ZEN_TEST_CLAUDE_CODE").is_none() {
        eprintln!(
            "skipped: set ZEN_TEST_CLAUDE_CODE=1 to run Claude Code from npm against zen \
             (needs npm and the npm registry)"
        );
        return;
    }
    let install = tempfile::tempdir().unwrap();
    let Some(claude) = install_claude_code(install.path()) else {
        return;
    };

    let provider = MockProvider::start();
    provider.set(Behaviour {
        reply: ZEN_ANSWER.into(),
        ..Behaviour::default()
    });
    let model = ScriptedModel::start();
    let home = ZenHome::with_mock(&provider);
    let mcp_config = home.path().join("mcp.json");
    std::fs::write(
        &mcp_config,
        json!({"mcpServers": {"zen": {"type": "stdio", "command": shim_bin(), "args": [],
            "env": {"ZEN_HOME": home.path()}}}})
        .to_string(),
    )
    .unwrap();

    // Claude Code's own files go to the zen home (its HOME here).
    let mut command = home.command(std::path::Path::new(claude.get_program()));
    command
        .args(claude.get_args())
        .args([
            "-p",
            "Ask zen what 6 times 7 is.",
            "--output-format",
            "json",
        ])
        .arg("--mcp-config")
        .arg(&mcp_config)
        .args(["--allowedTools", TOOL])
        .env("ANTHROPIC_BASE_URL", &model.url)
        .env("ANTHROPIC_API_KEY", "sk-ant-e2e-fake")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .current_dir(home.path())
        .stdin(Stdio::null());
    let out = output_within(&mut command, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "claude -p failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("claude's output is not JSON ({e}): {stdout}"));
    assert_eq!(result["result"], FINAL, "{result}");

    // The tool result Claude Code sent its model carries zen's whole answer.
    let requests = model.requests();
    let tool_result = requests
        .iter()
        .filter_map(|(_, body)| body["messages"].as_array())
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .find(|b| b["type"] == "tool_result" && b["tool_use_id"] == TOOL_USE_ID)
        .unwrap_or_else(|| panic!("no tool_result in {requests:?}"))
        .clone();
    assert_ne!(tool_result["is_error"], true, "{tool_result}");
    let text = match &tool_result["content"] {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        other => panic!("tool_result content {other}"),
    };
    assert!(text.contains(ZEN_ANSWER), "{text}");
    let id = text
        .strip_prefix("[zen] continuation_id: ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no continuation id first: {text}"))
        .to_owned();
    assert!(
        text.contains(&format!("continuation_id: {id} (24 turns left)")),
        "{text}"
    );

    // That id is the thread zen recorded: Claude's question, zen's answer.
    let shown = home.zend(&["threads", "show", &id, "--json"]);
    let thread: Value = serde_json::from_slice(&shown.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&shown.stderr)));
    assert_eq!(thread["turns"][0]["text"], QUESTION, "{thread}");
    assert_eq!(thread["turns"][1]["text"], ZEN_ANSWER, "{thread}");
    assert_eq!(provider.completions().len(), 1);
    home.stop_daemon();
}
