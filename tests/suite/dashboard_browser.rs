//! The dashboard page in a real headless Chromium (opt-in: skipped with a message
//! when no Chromium is installed; `ZEN_CHROMIUM` names one). It loads with a login
//! link and refuses without one, shows the seeded spend (checked in the rendered
//! DOM), and updates without a reload when a call starts and ends (read through the
//! DevTools protocol). With `ZEN_DASHBOARD_SCREENSHOTS=DIR` the screenshots of the
//! main views are written there (README's are in `docs/`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::dashboard::{api_get, base_of, login_link, seed, token};
use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{COMMAND_DEADLINE, WAIT, ZenHome, ok_text, output_within, result_text};

/// The Chromium to drive, if any.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ZEN_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name))
        })
        .find(|candidate| candidate.is_file())
}

macro_rules! chromium_or_skip {
    () => {
        match chromium() {
            Some(path) => path,
            None => {
                eprintln!(
                    "skipping: no Chromium found (apt-get install chromium, or set ZEN_CHROMIUM)"
                );
                return;
            }
        }
    };
}

/// Chromium as the tests run it: headless, no network of its own, a private profile.
fn browser(chromium: &Path, profile: &Path) -> Command {
    let mut command = Command::new(chromium);
    command
        .env("HOME", profile)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null());
    command
}

/// The DOM once the page has loaded and its script has had ten (virtual) seconds.
fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = output_within(
        browser(chromium, profile.path()).args(["--virtual-time-budget=10000", "--dump-dom", url]),
        COMMAND_DEADLINE,
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of the element with `id` in a dumped DOM.
fn text_of(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    dom[start..end].to_owned()
}

/// `zend status`'s rendering of a usage's cost (`$1.23`, `+N unpriced`).
fn cost_text(usage: &Value) -> String {
    let usd = zend::util::usd(usage["cost_usd"].as_f64().unwrap());
    match usage["unpriced_calls"].as_u64().unwrap() {
        0 => usd,
        n => format!("{usd} +{n} unpriced"),
    }
}

#[test]
fn the_page_shows_the_seeded_spend_and_refuses_without_a_login() {
    let chromium = chromium_or_skip!();
    let home = ZenHome::new();
    home.write_config(
        "limits.yaml",
        "budgets:\n  daily_usd: 50\n  per_model:\n    gpt-5:\n      daily_usd: 0.05\n",
    );
    seed(&home);
    let link = login_link(&home);
    let base = base_of(&link);
    let token = token(&home);
    let totals = api_get(&base, &token, "totals");

    let dom = dump_dom(&chromium, &link);
    assert!(dom.contains("data-ready=\"1\""), "the script ran:\n{dom}");
    for period in ["today", "this_month", "all_time"] {
        assert_eq!(
            text_of(&dom, &format!("{period}-cost")),
            cost_text(&totals[period]["total"]),
            "{period}"
        );
    }
    // One stacked bar a day for 30 days; today's is as tall as today's spend.
    let today = totals["today"]["period"].as_str().unwrap();
    assert_eq!(dom.matches("class=\"stack\"").count(), 30);
    let bar = dom
        .split("class=\"stack\"")
        .find(|part| part.contains(&format!("data-period=\"{today}\"")))
        .expect("a bar for today");
    let drawn: f64 = bar
        .split("data-usd=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|usd| usd.parse().ok())
        .expect("the bar's amount");
    let spent = totals["today"]["total"]["cost_usd"].as_f64().unwrap();
    assert!((drawn - spent).abs() < 1e-9, "{drawn} != {spent}");
    for model in ["gpt-5", "o3", "deepseek-chat"] {
        assert!(dom.contains(&format!("data-model=\"{model}\"")), "{model}");
    }
    assert!(dom.contains("data-budget=\"gpt-5 daily\""), "{dom}");

    // The link is spent, and without a session there is nothing to see.
    let again = dump_dom(&chromium, &link);
    assert!(again.contains("used already"), "{again}");
    let bare = dump_dom(&chromium, &format!("{base}/dashboard/"));
    assert!(bare.contains("Not logged in"), "{bare}");
    assert!(!bare.contains("this_month-cost"), "{bare}");
    home.stop_daemon();
}

/// A minimal WebSocket client for the DevTools protocol: text frames, masked with a zero key.
struct DevTools {
    stream: TcpStream,
    next_id: u64,
    /// The page's session, once attached (commands go to it).
    session: Option<String>,
}

impl DevTools {
    fn connect(ws_url: &str) -> Self {
        let rest = ws_url.strip_prefix("ws://").expect("a ws:// URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = TcpStream::connect(authority).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self {
            stream,
            next_id: 1,
            session: None,
        }
    }

    fn send(&mut self, text: &str) {
        self.try_send(text).expect("DevTools takes a message");
    }

    fn try_send(&mut self, text: &str) -> std::io::Result<()> {
        let bytes = text.as_bytes();
        let mut frame = vec![0x81u8];
        match bytes.len() {
            n @ 0..=125 => frame.push(0x80 | n as u8),
            n @ 126..=65535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(bytes);
        self.stream.write_all(&frame)
    }

    fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).unwrap();
            let len = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    self.stream.read_exact(&mut n).unwrap();
                    u64::from(u16::from_be_bytes(n))
                }
                127 => {
                    let mut n = [0u8; 8];
                    self.stream.read_exact(&mut n).unwrap();
                    u64::from_be_bytes(n)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).unwrap();
            message.extend_from_slice(&payload);
            if head[0] & 0x80 != 0 {
                return String::from_utf8(message).unwrap();
            }
        }
    }

    /// Calls `method`; its result, which must not be an error.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let answer = self.command(method, params);
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Sends `method` and waits for its answer, result or error (events in between are skipped).
    fn command(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            command["sessionId"] = json!(session);
        }
        self.send(&command.to_string());
        loop {
            let message: Value = serde_json::from_str(&self.receive()).unwrap();
            if message["id"] == id {
                return message;
            }
        }
    }

    /// Waits, in the page, until `condition` (a JS expression) holds; returns `value`'s.
    fn wait_for(&mut self, condition: &str, value: &str) -> Value {
        let expression = format!(
            "new Promise(resolve => {{ const check = () => {{ try {{ if ({condition}) return resolve({value}); }} \
             catch (e) {{}} setTimeout(check, 50); }}; check(); }})"
        );
        // While the page is still navigating, its context can go away under us: ask again.
        let until = Instant::now() + WAIT;
        loop {
            let answer = self.command(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            );
            match answer.get("error") {
                None => return answer["result"]["result"]["value"].clone(),
                Some(error) if error.to_string().contains("context") && Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Some(error) => panic!("the page cannot be read: {error}"),
            }
        }
    }
}

/// A headless Chromium with the DevTools protocol on a port it picks, showing `url`.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    devtools: DevTools,
}

impl Browser {
    fn open(chromium: &Path, url: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = browser(chromium, profile.path())
            .args(["--remote-debugging-port=0", "--window-size=1280,1000", url])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..." on stderr.
        let (found, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = found.send(url.trim().to_owned());
                }
            }
        });
        let browser_ws = lines
            .recv_timeout(WAIT)
            .expect("Chromium's DevTools address");
        let mut devtools = DevTools::connect(&browser_ws);
        let until = Instant::now() + WAIT;
        let page = loop {
            let targets = devtools.call("Target.getTargets", json!({}));
            let page = targets["targetInfos"].as_array().and_then(|targets| {
                targets
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["targetId"].as_str())
                    .map(str::to_owned)
            });
            if let Some(page) = page {
                break page;
            }
            assert!(Instant::now() < until, "no page target: {targets}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let attached = devtools.call(
            "Target.attachToTarget",
            json!({"targetId": page, "flatten": true}),
        );
        devtools.session = attached["sessionId"].as_str().map(str::to_owned);
        Self {
            child,
            _profile: profile,
            devtools,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Browser.close lets Chromium take its helpers (renderers, the crash handler)
        // down with it; a browser that does not go is killed (its own pid only).
        self.devtools.session = None;
        let close = json!({"id": 0, "method": "Browser.close"}).to_string();
        let _ = self.devtools.try_send(&close);
        let until = Instant::now() + WAIT;
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() > until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn the_page_updates_when_a_call_starts_and_ends() {
    let chromium = chromium_or_skip!();
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "Counted.".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = home.shim();
    client.initialize_as("claude-code");
    let link = login_link(&home);
    let base = base_of(&link);
    let token = token(&home);
    let mut browser = Browser::open(&chromium, &link);
    let page = &mut browser.devtools;
    let shown = page.wait_for(
        "document.body.dataset.ready === '1' && document.getElementById('all_time-cost').dataset.calls === '0'",
        "document.getElementById('live-sessions-count').textContent",
    );
    assert!(
        shown.as_str().unwrap().starts_with("1 live sessions"),
        "{shown}"
    );

    mock.hold();
    let id = client.send_tool_call("chat", json!({"prompt": "Count me", "model": "gpt-5"}));
    assert!(mock.wait_in_flight(1, WAIT));
    let in_flight = page.wait_for(
        "document.getElementById('live-inflight').dataset.inflight === '1'",
        "document.getElementById('live-inflight').textContent",
    );
    assert_eq!(in_flight, "1 in flight");
    mock.release();
    let answer = client.response_to(id);
    assert_eq!(
        answer["result"]["isError"],
        false,
        "{}",
        result_text(&answer["result"])
    );

    let after = page.wait_for(
        "document.getElementById('all_time-cost').dataset.calls === '1' && document.getElementById('live-inflight').dataset.inflight === '0' \
         && document.querySelectorAll('#thread-list li[data-id]').length > 0",
        "[document.getElementById('all_time-cost').textContent, document.querySelectorAll('#thread-list li[data-id]').length]",
    );
    let totals = api_get(&base, &token, "totals");
    assert_eq!(after[0], cost_text(&totals["all_time"]["total"]).as_str());
    assert_eq!(after[1], 1, "the new thread is listed");
    drop(browser);
    drop(client);
    home.stop_daemon();
}

#[test]
fn screenshots_of_the_main_views() {
    let chromium = chromium_or_skip!();
    let out = std::env::var_os("ZEN_DASHBOARD_SCREENSHOTS").map(PathBuf::from);
    let scratch = tempfile::tempdir().unwrap();
    let dir = out.unwrap_or_else(|| scratch.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply:
            "Range scans favour the B-tree: its leaves are ordered, so a scan is one seek and a \
                sequential read. An LSM tree must merge every level's iterator for the same range."
                .into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    home.write_config(
        "limits.yaml",
        "budgets:\n  daily_usd: 2\n  monthly_usd: 25\n  per_model:\n    gpt-5:\n      daily_usd: 0.3\n",
    );
    seed(&home);
    let mut client = home.shim();
    client.initialize_as("claude-code");
    let answer = client.call_tool(
        "chat",
        json!({"prompt": "Is a B-tree or an LSM tree better for range scans?", "model": "gpt-5"}),
    );
    let text = ok_text(&answer);
    let thread = text
        .split("continuation_id: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();

    let shoot = |name: &str, size: &str, dark: bool, fragment: &str| {
        let profile = tempfile::tempdir().unwrap();
        let path = dir.join(name);
        let mut command = browser(&chromium, profile.path());
        if dark {
            command.arg("--force-dark-mode");
        }
        command
            .arg(format!("--window-size={size}"))
            .arg("--virtual-time-budget=10000")
            .arg(format!("--screenshot={}", path.display()))
            .arg(format!("{}{fragment}", login_link(&home)));
        let output = output_within(&mut command, COMMAND_DEADLINE);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "no screenshot {} ({e}): {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert!(bytes.starts_with(b"\x89PNG"), "{name} is a PNG");
    };
    shoot("dashboard-light.png", "1280,1500", false, "");
    shoot("dashboard-dark.png", "1280,1500", true, "");
    // A laptop's width, with one thread open (linked by its continuation id).
    shoot(
        "dashboard-thread.png",
        "1024,2300",
        false,
        &format!("#thread={thread}"),
    );
    drop(client);
    home.stop_daemon();
}
