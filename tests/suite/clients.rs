//! What today's assistants do to zen (issue #33): both MCP lifecycles, the
//! capabilities clients read, registration, and the environment zend gets.

use crate::support::OutputWithin;
use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{McpClient, ZenHome, kill9, ok_text, pid_from_version, result_text};

fn status_json(home: &ZenHome) -> Value {
    serde_json::from_slice(&home.zend(&["status", "--json"]).stdout).unwrap_or(Value::Null)
}

fn continuation_id(text: &str) -> String {
    let start = text
        .find("continuation_id: ")
        .unwrap_or_else(|| panic!("no continuation in {text}"))
        + "continuation_id: ".len();
    text[start..].split_whitespace().next().unwrap().to_owned()
}

/// A client of MCP 2026-07-28: no `initialize`; every request names the
/// protocol version, the client and its capabilities in `_meta`.
struct ModernClient {
    client: McpClient,
    name: &'static str,
}

impl ModernClient {
    fn new(client: McpClient, name: &'static str) -> Self {
        Self { client, name }
    }

    fn request(&mut self, method: &str, mut params: Value) -> Value {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": self.name, "version": "2.1.33"},
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        self.client.request(method, params)
    }

    fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        let response = self.request("tools/call", json!({"name": name, "arguments": arguments}));
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("tools/call {name} failed: {response}"),
        }
    }
}

fn session_clients(home: &ZenHome) -> Vec<String> {
    let status = status_json(home);
    status["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{status}"))
        .iter()
        .map(|s| s["client_name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn thread_client(home: &ZenHome, id: &str) -> String {
    let out = home.zend(&["threads", "show", id, "--json"]);
    let thread: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let client = thread["client"]
        .as_str()
        .or_else(|| thread["summary"]["client"].as_str());
    client.unwrap_or_else(|| panic!("{thread}")).to_owned()
}

fn ledger_clients(home: &ZenHome) -> Value {
    let status = status_json(home);
    status["ledger"]["this_month"]["by_client"].clone()
}

#[test]
fn issue_33_a_2026_07_28_client_is_named_everywhere_and_survives_kill9() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "Use a B-tree.".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = ModernClient::new(home.shim(), "claude-code");

    let discover = client.request("server/discover", json!({}));
    let capabilities = &discover["result"]["capabilities"];
    assert!(capabilities["tools"].is_object(), "{discover}");
    assert!(capabilities["resources"].is_object(), "{discover}");
    assert_eq!(session_clients(&home), ["claude-code"]);

    let text = ok_text(&client.call_tool(
        "chat",
        json!({"prompt": "Which index for range scans?", "model": "gpt-5"}),
    ));
    assert!(text.contains("\n\nUse a B-tree.\n\n---\n"), "{text}");
    let thread = continuation_id(&text);
    assert_eq!(thread_client(&home, &thread), "claude-code");
    let ledger = ledger_clients(&home);
    assert_eq!(ledger["claude-code"]["calls"], 1, "{ledger}");
    assert!(ledger.get("unknown").is_none(), "{ledger}");

    // No `initialize` to replay: the next call alone must bring the new
    // zend the session and its client.
    let old_pid = pid_from_version(&ok_text(&client.call_tool("version", json!({}))));
    kill9(old_pid);
    assert!(home.wait_no_daemon_pid(old_pid, crate::support::WAIT));
    let mut response = client.request(
        "tools/call",
        json!({"name": "chat", "arguments": {"prompt": "And for point lookups?",
            "model": "gpt-5", "continuation_id": thread}}),
    );
    if response["error"]["code"] == -32603 {
        // The shim's "zend restarted, may be retried" for a call cut by the kill.
        response = client.request(
            "tools/call",
            json!({"name": "chat", "arguments": {"prompt": "And for point lookups?",
                "model": "gpt-5", "continuation_id": thread}}),
        );
    }
    let text = result_text(&response["result"]);
    assert_eq!(response["result"]["isError"], false, "{response}");
    assert_eq!(continuation_id(&text), thread, "{text}");
    let new_pid = pid_from_version(&ok_text(&client.call_tool("version", json!({}))));
    assert_ne!(new_pid, old_pid);
    assert_eq!(session_clients(&home), ["claude-code"]);
    assert_eq!(thread_client(&home, &thread), "claude-code");
    let ledger = ledger_clients(&home);
    assert_eq!(ledger["claude-code"]["calls"], 2, "{ledger}");
    assert!(ledger.get("unknown").is_none(), "{ledger}");
    assert!(client.client.close().success());
}

#[test]
fn issue_33_an_initialize_client_is_named_and_sees_resources() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let mut client = home.shim();
    let initialize = client.request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "codex-mcp-client", "version": "0.17.0"}}),
    );
    let capabilities = &initialize["result"]["capabilities"];
    assert!(capabilities["resources"].is_object(), "{initialize}");
    // zend sends no resource notifications, so it does not promise them.
    assert!(
        capabilities["resources"].get("listChanged").is_none(),
        "{initialize}"
    );
    client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let text = ok_text(&client.call_tool("chat", json!({"prompt": "Hi", "model": "gpt-5"})));
    let thread = continuation_id(&text);
    assert_eq!(thread_client(&home, &thread), "codex-mcp-client");
    assert_eq!(session_clients(&home), ["codex-mcp-client"]);
    assert_eq!(ledger_clients(&home)["codex-mcp-client"]["calls"], 1);
    let resources = client.request("resources/list", json!({}));
    let listed = resources["result"]["resources"].to_string();
    assert!(
        listed.contains(&format!("zen://threads/{thread}")),
        "{listed}"
    );
    assert!(client.close().success());
}

#[test]
fn issue_33_amounts_under_a_cent_keep_their_digits() {
    let mock = MockProvider::start();
    // gpt-5 at $1.25 / $10 per 1M tokens: 800 in, 20 out cost $0.0012.
    mock.set(Behaviour {
        prompt_tokens: 800,
        completion_tokens: 20,
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    home.write_config("limits.yaml", "budgets:\n  daily_usd: 0.001\n");
    let mut client = home.session();
    let first = ok_text(&client.call_tool("chat", json!({"prompt": "a", "model": "gpt-5"})));
    assert!(first.contains("· $0.0012 ·"), "the footer: {first}");

    let refused = client.call_tool("chat", json!({"prompt": "b", "model": "gpt-5"}));
    assert_eq!(refused["isError"], true);
    let text = result_text(&refused);
    assert!(
        text.contains("the daily budget of $0.001 ($0.0012 spent today)"),
        "{text}"
    );

    let status = home.zend(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("$0.0012 of $0.001 (120%)"), "{status}");
    assert!(!status.contains("$0.00 of $0.00"), "{status}");
    assert!(client.close().success());
}

#[test]
fn issue_33_zens_image_limits_count_and_total_size() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    home.write_config(
        "models.yaml",
        "settings:\n  max_retries: 1\n  backoff_base_ms: 5\n  backoff_max_ms: 20\n\
         models:\n  gpt-5:\n    capabilities: { max_image_mb: 1 }\n",
    );
    let mut client = home.session();
    let tiny = "data:image/png;base64,iVBORw0KGgo=";
    let six = vec![tiny; 6];
    let refused = client.call_tool(
        "chat",
        json!({"prompt": "look", "model": "gpt-5", "images": six}),
    );
    assert_eq!(refused["isError"], true);
    assert!(
        result_text(&refused).contains(
            "Too many images: Model 'gpt-5' supports a maximum of 5 images, but 6 were provided."
        ),
        "{}",
        result_text(&refused)
    );

    // Two images of 600 KB: 1.2 MB together, over the model's 1 MB.
    let images: Vec<String> = (0..2)
        .map(|i| {
            let path = home.path().join(format!("shot{i}.png"));
            std::fs::write(&path, vec![0u8; 600 * 1024]).unwrap();
            path.to_string_lossy().into_owned()
        })
        .collect();
    let refused = client.call_tool(
        "chat",
        json!({"prompt": "look", "model": "gpt-5", "images": images}),
    );
    assert_eq!(refused["isError"], true);
    assert!(
        result_text(&refused).contains(
            "Image size limit exceeded: Model 'gpt-5' supports maximum 1.0MB for all images \
             combined, but 1.2MB was provided."
        ),
        "{}",
        result_text(&refused)
    );
    assert!(mock.completions().is_empty(), "nothing went upstream");

    // Five small images, or one of 600 KB, go through.
    let five = vec![tiny; 5];
    let ok = client.call_tool(
        "chat",
        json!({"prompt": "look", "model": "gpt-5", "images": five}),
    );
    assert_eq!(ok["isError"], false, "{}", result_text(&ok));
    let ok = client.call_tool(
        "chat",
        json!({"prompt": "look", "model": "gpt-5", "images": [images[0]]}),
    );
    assert_eq!(ok["isError"], false, "{}", result_text(&ok));
    assert_eq!(mock.completions().len(), 2);
    assert!(client.close().success());
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `zend register` as a user runs it: no `ZEN_HOME` unless the test sets one.
fn register(home: &ZenHome, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = home.command(&crate::support::zend_bin());
    command.env_remove("ZEN_HOME").arg("register").args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output_within(crate::support::COMMAND_DEADLINE);
    assert!(output.status.success(), "{output:?}");
    output
}

#[test]
fn issue_33_register_writes_the_locations_the_shim_needs() {
    let user = ZenHome::new();
    let zen = ZenHome::new();
    let zen_home = zen.path().to_string_lossy().into_owned();
    let codex = user.path().join(".codex/config.toml");

    let print = register(&user, &["--home", &zen_home, "codex", "--print"], &[]);
    let line = format!("env = {{ ZEN_HOME = \"{zen_home}\" }}");
    assert!(stdout(&print).contains(&line), "{}", stdout(&print));
    assert!(!codex.exists(), "--print changes nothing");
    register(&user, &["--home", &zen_home, "codex"], &[]);
    let text = std::fs::read_to_string(&codex).unwrap();
    assert!(text.contains(&line), "{text}");

    // A shim given only what Codex gives it (its whitelist plus the entry's
    // `env`) reaches the zend of that home.
    let mut command = std::process::Command::new(crate::support::shim_bin());
    command
        .env_clear()
        .env("HOME", user.path())
        .env("PATH", crate::support::host_path())
        .env("ZEN_HOME", &zen_home);
    let mut client = McpClient::spawn(command);
    client.initialize();
    assert_eq!(client.call_tool("version", json!({}))["isError"], false);
    assert_eq!(session_clients(&zen), ["zen-e2e"]);
    assert!(client.close().success());

    // ZEN_SOCKET in effect goes into a JSON config's `env`; the defaults
    // write no `env` at all.
    let socket = zen.socket().to_string_lossy().into_owned();
    register(&user, &["cursor"], &[("ZEN_SOCKET", &socket)]);
    let cursor: Value = serde_json::from_str(
        &std::fs::read_to_string(user.path().join(".cursor/mcp.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        cursor["mcpServers"]["zen"]["env"],
        json!({"ZEN_SOCKET": socket})
    );
    let print = register(
        &user,
        &["claude-code", "--print"],
        &[("ZEN_SOCKET", &socket)],
    );
    assert!(
        stdout(&print).contains(&format!("--scope user zen -e ZEN_SOCKET={socket} -- ")),
        "{}",
        stdout(&print)
    );
    register(&user, &["claude-desktop"], &[]);
    let desktop: Value = serde_json::from_str(
        &std::fs::read_to_string(
            user.path()
                .join(".config/Claude/claude_desktop_config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        desktop["mcpServers"]["zen"].get("env").is_none(),
        "{desktop}"
    );
}

#[test]
fn issue_33_register_gemini_explains_trust_and_writes_it_only_when_asked() {
    let user = ZenHome::new();
    let settings = user.path().join(".gemini/settings.json");
    let read =
        || -> Value { serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap() };

    let output = register(&user, &["gemini"], &[]);
    let said = stdout(&output);
    assert!(
        said.contains("hides MCP servers it does not trust"),
        "{said}"
    );
    assert!(said.contains("zend register gemini --trust"), "{said}");
    assert!(read()["mcpServers"]["zen"].get("trust").is_none());

    let output = register(&user, &["gemini", "--trust"], &[]);
    assert!(
        !stdout(&output).contains("does not trust"),
        "{}",
        stdout(&output)
    );
    assert_eq!(read()["mcpServers"]["zen"]["trust"], true);
}

fn models_json(home: &ZenHome) -> Value {
    let out = home.zend(&["models", "--json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn listed<'a>(models: &'a Value, name: &str) -> Option<&'a Value> {
    models["models"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}

#[test]
fn issue_33_models_named_by_allow_list_custom_name_or_proxy_are_listed_and_auto() {
    let mock = MockProvider::start();
    mock.set_models(&["team-model"]);
    let home = ZenHome::new();
    home.write_config(
        ".env",
        &format!(
            "OPENAI_API_KEY={key}\nOPENAI_BASE_URL={url}\nOPENAI_ALLOWED_MODELS=gpt-4o-mini\n\
             CUSTOM_API_URL={url}\nCUSTOM_MODEL_NAME=my-local\n\
             LITELLM_BASE_URL={url}\nLITELLM_API_KEY={key}\n",
            key = crate::support::FAKE_KEY,
            url = mock.v1()
        ),
    );
    let mut client = home.session();
    let text = ok_text(&client.call_tool("listmodels", json!({})));
    assert!(text.contains("gpt-4o-mini"), "{text}");
    assert!(text.contains("custom/my-local"), "{text}");

    // What LiteLLM's map knows of gpt-4o-mini comes with it.
    let models = models_json(&home);
    let mini = listed(&models, "gpt-4o-mini").unwrap_or_else(|| panic!("{models}"));
    assert_eq!(mini["provider"], "openai");
    assert!(mini["context_window"].as_u64().is_some(), "{mini}");
    assert!(mini["input_per_million"].as_f64().is_some(), "{mini}");
    assert!(listed(&models, "gpt-5").is_none(), "not allowed: {models}");

    // The proxy's models arrive once zend has asked it (at start).
    let until = std::time::Instant::now() + crate::support::WAIT;
    while listed(&models_json(&home), "litellm/team-model").is_none() {
        assert!(std::time::Instant::now() < until, "{}", models_json(&home));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let asked = mock.requests();
    let list = asked.iter().find(|r| r.method == "GET").unwrap();
    assert!(
        list.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.ends_with(crate::support::FAKE_KEY)),
        "the proxy's key goes with the request"
    );

    let answer = client.call_tool(
        "chat",
        json!({"prompt": "hi", "model": "litellm/team-model"}),
    );
    assert_eq!(answer["isError"], false, "{}", result_text(&answer));
    assert!(client.close().success());

    // An allow-listed model is a candidate for auto: alone, auto picks it.
    let home = ZenHome::new();
    home.write_config(
        ".env",
        &format!(
            "OPENAI_API_KEY={}
OPENAI_BASE_URL={}
OPENAI_ALLOWED_MODELS=gpt-4o-mini
",
            crate::support::FAKE_KEY,
            mock.v1()
        ),
    );
    let mut client = home.session();
    let answer = client.call_tool("chat", json!({"prompt": "hi"}));
    assert_eq!(answer["isError"], false, "{}", result_text(&answer));
    assert_eq!(
        mock.completions().last().unwrap().body["model"],
        "gpt-4o-mini"
    );
    assert!(client.close().success());
}

/// The environment of process `pid`, as `NAME=value` strings.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// A shim as a client that keeps keys in its `env` block starts it: the
/// client's environment is the shim's.
fn shim_with_client_env(home: &ZenHome, vars: &[(&str, &str)]) -> McpClient {
    let mut command = std::process::Command::new(crate::support::shim_bin());
    command
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", crate::support::host_path())
        .env("ZEN_HOME", home.path())
        .env("LANG", "C.UTF-8");
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut client = McpClient::spawn(command);
    client.state_dir = Some(home.path().join("state"));
    client
}

#[test]
fn issue_33_zend_started_by_a_shim_gets_a_clean_environment_and_keys_from_dotenv() {
    let mock = MockProvider::start();
    let home = ZenHome::new();
    let key = crate::support::FAKE_KEY;
    let mut client = shim_with_client_env(
        &home,
        &[
            ("OPENAI_API_KEY", key),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/claude-code-own"),
            ("CLAUDECODE", "1"),
        ],
    );
    client.initialize();
    let text = ok_text(&client.call_tool("listmodels", json!({})));
    assert!(
        !text.contains("gpt-5"),
        "no OpenAI key reached zend: {text}"
    );
    let pid = pid_from_version(&ok_text(&client.call_tool("version", json!({}))));
    let env = environ(pid);
    assert!(env.iter().any(|v| v.starts_with("ZEN_HOME=")), "{env:?}");
    assert!(env.iter().any(|v| v == "LANG=C.UTF-8"), "{env:?}");
    for name in ["OPENAI_API_KEY=", "ANTHROPIC_BASE_URL=", "CLAUDECODE="] {
        assert!(
            !env.iter().any(|v| v.starts_with(name)),
            "{name} in {env:?}"
        );
    }

    // `zend doctor` names the session's key, never its value.
    let doctor = home.zend(&["doctor"]);
    let said = String::from_utf8_lossy(&doctor.stdout).into_owned();
    assert!(
        said.contains("OPENAI_API_KEY") && said.contains("zend keys import"),
        "{said}"
    );
    assert!(!said.contains(key), "{said}");

    // The shim said so once, with the command, and no value.
    client.close_stdin();
    assert!(client.wait().success());
    let stderr = client.stderr();
    assert_eq!(stderr.matches("zend keys import").count(), 1, "{stderr}");
    assert!(stderr.contains("OPENAI_API_KEY"), "{stderr}");
    assert!(!stderr.contains(key), "{stderr}");

    // `zend keys import` finds it in the client's config and writes .env 0600.
    let codex = home.path().join(".codex/config.toml");
    std::fs::create_dir_all(codex.parent().unwrap()).unwrap();
    std::fs::write(
        &codex,
        format!(
            "[mcp_servers.zen]\ncommand = \"zen-shim\"\n\
             env = {{ OPENAI_API_KEY = \"{key}\", OPENAI_BASE_URL = \"x\" }}\n"
        ),
    )
    .unwrap();
    home.write_config(".env", &format!("OPENAI_BASE_URL={}\n", mock.v1()));
    let mut import = home.command(&crate::support::zend_bin());
    import.env_remove("OPENAI_API_KEY").args(["keys", "import"]);
    let imported = import.output_within(crate::support::COMMAND_DEADLINE);
    let said = String::from_utf8_lossy(&imported.stdout).into_owned();
    assert!(imported.status.success(), "{imported:?}");
    assert!(
        said.contains("OPENAI_API_KEY: added (from Codex CLI"),
        "{said}"
    );
    assert!(!said.contains(key) && !String::from_utf8_lossy(&imported.stderr).contains(key));
    let dotenv = home.config_dir().join(".env");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dotenv).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let written = std::fs::read_to_string(&dotenv).unwrap();
    assert!(
        written.contains(&format!("OPENAI_API_KEY={key}")),
        "imported"
    );
    assert!(
        written.contains(&format!("OPENAI_BASE_URL={}", mock.v1())),
        "kept"
    );
    // The harness rewrites .env from what the test wrote: now this.
    home.write_config(".env", &written);

    // The next zend has it: the same client now sees OpenAI, and no notice.
    home.stop_daemon();
    let mut client = shim_with_client_env(&home, &[("OPENAI_API_KEY", key)]);
    client.initialize();
    let text = ok_text(&client.call_tool("listmodels", json!({})));
    assert!(text.contains("gpt-5"), "{text}");
    client.close_stdin();
    assert!(client.wait().success());
    assert!(
        !client.stderr().contains("zend keys import"),
        "{}",
        client.stderr()
    );
}
