use crate::support::OutputWithin;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::mock_provider::MockProvider;
use crate::support::{McpClient, ZenHome, result_text};

/// The step-protocol tools (clink is tested on its own).
const STEP_TOOLS: &[&str] = &[
    "analyze",
    "codereview",
    "debug",
    "docgen",
    "precommit",
    "refactor",
    "secaudit",
    "testgen",
    "tracer",
];

/// A home whose OpenAI provider is the mock.
fn home_with(mock: &MockProvider) -> ZenHome {
    let mut home = ZenHome::new();
    home.env
        .push(("OPENAI_API_KEY".into(), "sk-test-workflow".into()));
    home.env.push(("OPENAI_BASE_URL".into(), mock.v1()));
    home
}

/// A project folder with one source file.
fn project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lib.rs");
    std::fs::write(&file, "fn answer() -> u32 { 41 } // WORKFLOW_FILE_MARKER\n").unwrap();
    (dir, file)
}

fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output_within(crate::support::COMMAND_DEADLINE);
    assert!(output.status.success(), "git {args:?}: {output:?}");
}

/// A git repository with one commit, a staged change, an unstaged change and an untracked file.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    std::fs::write(root.join("a.txt"), "base\n").unwrap();
    std::fs::write(root.join("b.txt"), "base\n").unwrap();
    git(root, &["add", "."]);
    git(root, &["commit", "-qm", "base"]);
    std::fs::write(root.join("a.txt"), "base\nSTAGED_LINE\n").unwrap();
    git(root, &["add", "a.txt"]);
    std::fs::write(root.join("b.txt"), "base\nUNSTAGED_LINE\n").unwrap();
    std::fs::write(root.join("new.txt"), "untracked\n").unwrap();
    dir
}

/// The arguments of one step.
fn step(number: u32, total: u32, extra: Value) -> Value {
    let mut args = json!({
        "step": format!("step {number}: look at the code"),
        "step_number": number,
        "total_steps": total,
        "next_step_required": number < total,
        "findings": format!("finding of step {number}"),
    });
    if let (Some(base), Some(extra)) = (args.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    args
}

/// What each tool needs besides the common fields.
fn own_fields(tool: &str, repo: &Path) -> Value {
    match tool {
        "precommit" => json!({"path": repo}),
        "docgen" => json!({"num_files_documented": 1, "total_files_to_document": 1}),
        "tracer" => json!({"trace_mode": "precision", "target_description": "answer()"}),
        "codereview" => json!({"review_type": "full"}),
        _ => json!({}),
    }
}

fn continuation_id(text: &str) -> String {
    let start = text
        .find("continuation_id: ")
        .unwrap_or_else(|| panic!("no continuation_id in: {text}"))
        + "continuation_id: ".len();
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

/// Calls a tool and returns (text, is_error).
fn call(client: &mut McpClient, tool: &str, arguments: Value) -> (String, bool) {
    let result = client.call_tool(tool, arguments);
    (result_text(&result), result["isError"] == true)
}

fn ok(client: &mut McpClient, tool: &str, arguments: Value) -> String {
    let (text, is_error) = call(client, tool, arguments);
    assert!(!is_error, "{tool} failed: {text}");
    text
}

fn error(client: &mut McpClient, tool: &str, arguments: Value) -> String {
    let (text, is_error) = call(client, tool, arguments);
    assert!(is_error, "{tool} should have failed: {text}");
    text
}

fn with_id(mut arguments: Value, id: &str) -> Value {
    arguments["continuation_id"] = json!(id);
    arguments
}

#[test]
fn each_step_tool_makes_no_upstream_request_before_the_last_step_and_one_at_it() {
    let mock = MockProvider::start();
    let home = home_with(&mock);
    let mut client = home.session();
    let (_project, file) = project();
    let repo = repo();
    for tool in STEP_TOOLS {
        let before = mock.completions().len();
        let own = own_fields(tool, repo.path());
        let mut first = step(1, 3, own.clone());
        first["relevant_files"] = json!([file]);
        first["findings"] = json!(format!("{tool}-FIRST-FINDING"));
        let text = ok(&mut client, tool, first);
        assert!(
            text.starts_with(&format!("status: pause_for_{tool}\n")),
            "{text}"
        );
        assert!(text.contains("next: "), "{text}");
        let id = continuation_id(&text);

        let text = ok(&mut client, tool, with_id(step(2, 3, own.clone()), &id));
        assert!(
            text.starts_with(&format!("status: pause_for_{tool}")),
            "{text}"
        );
        assert_eq!(continuation_id(&text), id);
        assert_eq!(
            mock.completions().len(),
            before,
            "{tool} called a model before its last step"
        );

        let text = ok(&mut client, tool, with_id(step(3, 3, own), &id));
        let (header, status) = text.split_once("\n\n").unwrap();
        assert!(
            header.starts_with(&format!("[zen] continuation_id: {id} · ")),
            "{text}"
        );
        assert!(
            status.starts_with(&format!("status: {tool}_complete")),
            "{text}"
        );
        assert!(text.contains("mock answer"), "{text}");
        let completions = mock.completions();
        assert_eq!(completions.len(), before + 1, "{tool}: one expert call");
        let sent = completions.last().unwrap().body.to_string();
        assert!(
            sent.contains(&format!("{tool}-FIRST-FINDING")),
            "{tool}: findings sent"
        );
        assert!(sent.contains("finding of step 3"), "{tool}: last step sent");
        assert!(
            sent.contains("WORKFLOW_FILE_MARKER"),
            "{tool}: relevant file sent"
        );
        if *tool == "precommit" {
            assert!(sent.contains("STAGED_LINE") && sent.contains("UNSTAGED_LINE"));
        }

        // The run is over: continuing it is refused, a new run on the same thread is fine.
        let again = error(
            &mut client,
            tool,
            with_id(step(2, 3, own_fields(tool, repo.path())), &id),
        );
        assert!(again.contains("already complete"), "{again}");
        let restart = ok(
            &mut client,
            tool,
            with_id(step(1, 2, own_fields(tool, repo.path())), &id),
        );
        assert_eq!(continuation_id(&restart), id);
    }
}

#[test]
fn each_skip_rule_answers_without_an_expert_call() {
    let mock = MockProvider::start();
    let home = home_with(&mock);
    let mut client = home.session();
    let repo = repo();
    let cases = [
        (
            "debug",
            json!({"confidence": "certain"}),
            "confidence is certain",
        ),
        (
            "refactor",
            json!({"confidence": "complete"}),
            "confidence is complete",
        ),
        (
            "analyze",
            json!({"use_assistant_model": false}),
            "use_assistant_model is false",
        ),
        (
            "codereview",
            json!({"review_validation_type": "internal"}),
            "review_validation_type is internal",
        ),
        (
            "precommit",
            json!({"path": repo.path(), "precommit_type": "internal"}),
            "precommit_type is internal",
        ),
    ];
    for (tool, extra, reason) in cases {
        let text = ok(&mut client, tool, step(1, 2, extra.clone()));
        let id = continuation_id(&text);
        let text = ok(&mut client, tool, with_id(step(2, 2, extra), &id));
        assert!(
            text.starts_with(&format!("status: {tool}_complete")),
            "{text}"
        );
        assert!(
            text.contains(&format!("expert analysis skipped: {reason}")),
            "{text}"
        );
        assert_eq!(continuation_id(&text), id);
    }
    // A one-step run that is certain at once makes no call either.
    let text = ok(
        &mut client,
        "debug",
        step(1, 1, json!({"confidence": "certain"})),
    );
    assert!(text.contains("expert analysis skipped"), "{text}");
    assert!(mock.completions().is_empty(), "{:?}", mock.completions());
}

#[test]
fn two_sessions_running_the_same_tool_at_once_keep_their_own_state() {
    let mock = MockProvider::start();
    let home = home_with(&mock);
    let mut alice = home.session();
    let mut bob = home.session();
    let start = |client: &mut McpClient, marker: &str| {
        let mut first = step(1, 2, json!({"hypothesis": format!("{marker}-HYPOTHESIS")}));
        first["findings"] = json!(format!("{marker}-FINDING"));
        continuation_id(&ok(client, "debug", first))
    };
    let alice_id = start(&mut alice, "ALICE");
    let bob_id = start(&mut bob, "BOB");
    assert_ne!(alice_id, bob_id);

    ok(
        &mut alice,
        "debug",
        with_id(step(2, 2, json!({})), &alice_id),
    );
    let alice_sent = mock.completions().last().unwrap().body.to_string();
    ok(&mut bob, "debug", with_id(step(2, 2, json!({})), &bob_id));
    let bob_sent = mock.completions().last().unwrap().body.to_string();
    assert_eq!(mock.completions().len(), 2);
    assert!(alice_sent.contains("ALICE-FINDING") && alice_sent.contains("ALICE-HYPOTHESIS"));
    assert!(
        !alice_sent.contains("BOB-"),
        "Bob's state leaked into Alice's run"
    );
    assert!(bob_sent.contains("BOB-FINDING") && !bob_sent.contains("ALICE-"));
}

#[test]
fn precommit_reads_the_repository_itself() {
    let mock = MockProvider::start();
    let home = home_with(&mock);
    let mut client = home.session();
    let repo = repo();

    let text = ok(
        &mut client,
        "precommit",
        step(1, 2, json!({"path": repo.path()})),
    );
    assert!(
        text.contains("staged changes: 1 file (+1/-0)")
            && text.contains("unstaged changes: 1 file (+1/-0)")
            && text.contains("1 untracked"),
        "{text}"
    );
    let id = continuation_id(&text);
    let text = ok(
        &mut client,
        "precommit",
        with_id(step(2, 2, json!({})), &id),
    );
    assert!(
        text.contains("new.txt"),
        "untracked files are named: {text}"
    );
    let sent = mock.completions().last().unwrap().body.to_string();
    assert!(
        sent.contains("STAGED_LINE") && sent.contains("UNSTAGED_LINE"),
        "{sent}"
    );

    // Staged only: the unstaged line is not sent.
    let staged_only = json!({"path": repo.path(), "include_unstaged": false});
    ok(&mut client, "precommit", step(1, 1, staged_only));
    let sent = mock.completions().last().unwrap().body.to_string();
    assert!(sent.contains("STAGED_LINE") && !sent.contains("UNSTAGED_LINE"));

    // A repository with no commits yet.
    let fresh = tempfile::tempdir().unwrap();
    git(fresh.path(), &["init", "-q"]);
    std::fs::write(fresh.path().join("first.txt"), "FIRST_FILE_LINE\n").unwrap();
    git(fresh.path(), &["add", "first.txt"]);
    ok(
        &mut client,
        "precommit",
        step(1, 1, json!({"path": fresh.path()})),
    );
    let sent = mock.completions().last().unwrap().body.to_string();
    assert!(sent.contains("FIRST_FILE_LINE"), "{sent}");
    let compare = error(
        &mut client,
        "precommit",
        step(1, 1, json!({"path": fresh.path(), "compare_to": "main"})),
    );
    assert!(compare.contains("no commits yet"), "{compare}");

    // A huge change is cut to the diff budget, and the answer says what was cut.
    let huge = tempfile::tempdir().unwrap();
    git(huge.path(), &["init", "-q"]);
    std::fs::write(huge.path().join("big.txt"), "HUGE_LINE\n".repeat(30_000)).unwrap();
    std::fs::write(huge.path().join("small.txt"), "SMALL_LINE\n").unwrap();
    git(huge.path(), &["add", "."]);
    let text = ok(
        &mut client,
        "precommit",
        step(1, 1, json!({"path": huge.path()})),
    );
    assert!(
        text.contains("character budget") && text.contains("big.txt"),
        "{text}"
    );
    let sent = mock.completions().last().unwrap().body.to_string();
    assert!(sent.contains("SMALL_LINE") && !sent.contains("HUGE_LINE"));

    // Outside a repository, and a relative path.
    let outside = tempfile::tempdir().unwrap();
    let text = error(
        &mut client,
        "precommit",
        step(1, 2, json!({"path": outside.path()})),
    );
    assert!(text.contains("not inside a git repository"), "{text}");
    let text = error(
        &mut client,
        "precommit",
        step(1, 2, json!({"path": "repo"})),
    );
    assert!(
        text.contains("`path`") && text.contains("absolute"),
        "{text}"
    );
    let text = error(&mut client, "precommit", step(1, 2, json!({})));
    assert!(text.contains("`path` is required"), "{text}");
}

#[test]
fn bad_steps_get_clear_errors_naming_the_field() {
    let mock = MockProvider::start();
    let home = home_with(&mock);
    let mut client = home.session();

    let mut missing = step(1, 2, json!({}));
    missing.as_object_mut().unwrap().remove("findings");
    let text = error(&mut client, "codereview", missing);
    assert!(text.contains("findings"), "{text}");

    let text = error(&mut client, "debug", step(3, 2, json!({})));
    assert!(
        text.contains("`step_number` (3) is above `total_steps` (2)"),
        "{text}"
    );

    let text = error(
        &mut client,
        "analyze",
        step(1, 2, json!({"relevant_files": ["src/main.rs"]})),
    );
    assert!(
        text.contains("`relevant_files`") && text.contains("not an absolute path"),
        "{text}"
    );

    let text = error(&mut client, "debug", step(2, 2, json!({})));
    assert!(text.contains("`continuation_id` is required"), "{text}");

    let text = error(
        &mut client,
        "debug",
        step(
            2,
            2,
            json!({"continuation_id": "00000000-0000-4000-8000-000000000000"}),
        ),
    );
    assert!(
        text.contains("no conversation thread 00000000-0000-4000-8000-000000000000"),
        "{text}"
    );
    let text = error(
        &mut client,
        "codereview",
        step(1, 2, json!({"continuation_id": "not-an-id"})),
    );
    assert!(text.contains("is not a thread id"), "{text}");

    let text = error(
        &mut client,
        "refactor",
        step(1, 2, json!({"confidence": "certain"})),
    );
    assert!(
        text.contains("`confidence`") && text.contains("complete"),
        "{text}"
    );

    let text = error(
        &mut client,
        "docgen",
        step(
            1,
            1,
            json!({"num_files_documented": 1, "total_files_to_document": 3}),
        ),
    );
    assert!(text.contains("1 of 3 files"), "{text}");
    assert!(mock.completions().is_empty());
}

/// Writes an executable script.
fn script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn clink_runs_a_cli_found_on_path_and_records_the_turn() {
    let mock = MockProvider::start();
    let mut home = home_with(&mock);
    let bin = tempfile::tempdir().unwrap();
    // The fake CLI shows its arguments, whether zend's provider key leaked, and the prompt it read.
    script(
        bin.path(),
        "gemini",
        "echo \"FAKE GEMINI args=[$*] key=${OPENAI_API_KEY:-unset}\"; cat",
    );
    script(bin.path(), "claude", "sleep 30");
    let path = format!("{}:{}", bin.path().display(), crate::support::host_path());
    home.env.push(("PATH".into(), path));
    home.write_config(
        "clink.yaml",
        "clis:\n  claude:\n    timeout_secs: 1\n  codex:\n    command: zen-no-such-codex\n",
    );
    let mut client = home.session();
    let (_project, file) = project();

    let text = ok(
        &mut client,
        "clink",
        json!({"prompt": "CLINK_REQUEST", "role": "planner", "absolute_file_paths": [file]}),
    );
    assert!(text.contains("FAKE GEMINI args=[] key=unset"), "{text}");
    assert!(
        text.contains("planning sub-agent") && text.contains("CLINK_REQUEST"),
        "{text}"
    );
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("clink: gemini as planner"), "{text}");
    let id = continuation_id(&text);

    let text = ok(
        &mut client,
        "clink",
        json!({"prompt": "SECOND_REQUEST", "cli_name": "gemini", "continuation_id": id}),
    );
    assert_eq!(continuation_id(&text), id);

    // The exchange is on the thread: another tool continuing it sees it.
    ok(
        &mut client,
        "chat",
        json!({"prompt": "what did gemini say?", "continuation_id": id}),
    );
    let sent = mock.completions().last().unwrap().body.to_string();
    assert!(
        sent.contains("SECOND_REQUEST") && sent.contains("FAKE GEMINI"),
        "{sent}"
    );

    let missing = error(
        &mut client,
        "clink",
        json!({"prompt": "x", "cli_name": "codex"}),
    );
    assert!(
        missing.contains("`codex` CLI was not found") && missing.contains("zen-no-such-codex"),
        "{missing}"
    );
    let slow = error(
        &mut client,
        "clink",
        json!({"prompt": "x", "cli_name": "claude"}),
    );
    assert!(slow.contains("did not finish within 1 s"), "{slow}");
    let role = error(&mut client, "clink", json!({"prompt": "x", "role": "poet"}));
    assert!(
        role.contains("`role`") && role.contains("planner"),
        "{role}"
    );
    assert_eq!(
        mock.completions().len(),
        1,
        "only the chat call reached a model"
    );
}

#[test]
fn the_workflow_tools_stay_within_their_share_of_tools_list() {
    let home = ZenHome::new();
    let mut client = home.shim();
    let init = client.initialize();
    let instructions = init["result"]["instructions"].as_str().unwrap_or("").len();
    let listed = client.request("tools/list", json!({}));
    let tools = listed["result"]["tools"].as_array().unwrap();
    let mut total = 0;
    let mut names = Vec::new();
    for tool in tools {
        let name = tool["name"].as_str().unwrap();
        if STEP_TOOLS.contains(&name) || name == "clink" {
            total += tool.to_string().len();
            names.push(name.to_owned());
        }
    }
    assert_eq!(names.len(), STEP_TOOLS.len() + 1, "{names:?}");
    eprintln!(
        "workflow tools: {total} of {} bytes of tools/list",
        listed["result"].to_string().len()
    );
    let surface = listed["result"].to_string().len() + instructions;
    assert!(
        surface <= 16 * 1024,
        "tools/list + instructions: {surface} bytes"
    );
    assert!(
        total <= 9_600,
        "the workflow tools take {total} bytes of tools/list"
    );
}
