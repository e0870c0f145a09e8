//! The dashboard (#36): its JSON API against a seeded ledger (the totals `zend status
//! --json` shows), who gets in (one-time link, cookie, token, Host and Origin), live
//! sessions and calls, threads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use zend::ledger::{LedgerRecord, Outcome};
use zend::time::Timestamp;

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{WAIT, ZenHome, result_text};

const DAY_MS: u64 = 86_400_000;
const PROJECT: &str = "/home/u/src/zen";

/// A plain HTTP/1.0 exchange (no redirects followed, headers as given).
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `http://127.0.0.1:PORT` and the path of `url`.
fn split_url(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let slash = rest.find('/').unwrap_or(rest.len());
    (&url[..7 + slash], &rest[slash..])
}

pub(crate) fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    let (base, path) = split_url(url);
    let authority = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).expect("the dashboard listens");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut text = format!("{method} {path} HTTP/1.0\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        text.push_str(&format!("Host: {authority}\r\n"));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(text.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP reply");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A fresh one-time login link from `zend dashboard` (which starts zend if need be).
pub(crate) fn login_link(home: &ZenHome) -> String {
    let url = stdout(&home.zend(&["dashboard"]));
    assert!(url.contains("/dashboard/login?code="), "{url}");
    url
}

pub(crate) fn base_of(url: &str) -> String {
    split_url(url).0.to_owned()
}

pub(crate) fn token(home: &ZenHome) -> String {
    stdout(&home.zend(&["http-token"]))
}

/// GET `path` under the API with the bearer token; must answer 200.
pub(crate) fn api_get(base: &str, token: &str, path: &str) -> Value {
    let reply = request(
        "GET",
        &format!("{base}/dashboard/api/{path}"),
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.json()
}

fn status_ledger(home: &ZenHome) -> Value {
    let status: Value = serde_json::from_str(&stdout(&home.zend(&["status", "--json"]))).unwrap();
    let mut ledger = status["ledger"].clone();
    ledger.as_object_mut().unwrap().remove("summary");
    ledger
}

fn without_as_of(mut value: Value) -> Value {
    value.as_object_mut().unwrap().remove("as_of");
    value
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// Records over the last 40 days: three models, three tools, two clients, two
/// projects and calls with none, an error and a call of unknown price.
pub(crate) fn seed(home: &ZenHome) -> Vec<LedgerRecord> {
    let now = now().as_millis();
    let models = ["gpt-5", "o3", "deepseek-chat"];
    let tools = ["chat", "thinkdeep", "consensus"];
    let clients = ["claude-code", "codex"];
    let projects = [Some(PROJECT), Some("/home/u/src/site"), None];
    let mut records = Vec::new();
    for i in 0..60_u64 {
        let back = if i < 12 { 0 } else { (i * 7) % 40 };
        let time = if back == 0 {
            // Today, a few seconds ago (never before midnight unless the test starts at 00:00).
            now.saturating_sub(i * 100).max(now / DAY_MS * DAY_MS)
        } else {
            now - back * DAY_MS
        };
        let i = i as usize;
        records.push(LedgerRecord {
            time: Timestamp::from_millis(time),
            model: models[i % 3].into(),
            provider: "openai".into(),
            tool: tools[(i / 3) % 3].into(),
            thread: None,
            session_id: Some(format!("s{}", i % 4)),
            client: Some(clients[i % 2].into()),
            project: projects[i % 3].map(str::to_owned),
            input_tokens: 1000 + i as u64 * 10,
            output_tokens: 200 + i as u64,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cache_saved_usd: 0.0,
            cost_usd: if i == 7 {
                None
            } else {
                Some(0.01 * (i % 5 + 1) as f64)
            },
            latency_ms: 300 + 1000 * (i as u64 % 7),
            outcome: if i == 5 {
                Outcome::Error {
                    kind: "rate_limited".into(),
                }
            } else {
                Outcome::Ok
            },
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    std::fs::create_dir_all(home.path().join("data")).unwrap();
    runtime.block_on(async {
        let data = zend::data::Data::open(&home.path().join("data"), &Default::default()).unwrap();
        data.ledger().record_batch(&records).await.unwrap();
        data.close().await.unwrap();
    });
    records
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_api_agrees_with_zend_status_on_a_seeded_ledger() {
    let home = ZenHome::new();
    home.write_config(
        "limits.yaml",
        "budgets:\n  daily_usd: 50\n  monthly_usd: 500\n  per_model:\n    gpt-5:\n      daily_usd: 0.05\n",
    );
    let records = seed(&home);
    let base = base_of(&login_link(&home));
    let token = token(&home);

    // The totals are `zend status --json`'s ledger, to the last field.
    let totals = api_get(&base, &token, "totals");
    assert_eq!(
        without_as_of(totals.clone()),
        without_as_of(status_ledger(&home))
    );
    let cost: f64 = records.iter().filter_map(|r| r.cost_usd).sum();
    assert!(close(
        totals["all_time"]["total"]["cost_usd"].as_f64().unwrap(),
        cost
    ));
    assert_eq!(totals["all_time"]["total"]["calls"], records.len());
    assert_eq!(totals["all_time"]["total"]["errors"], 1);
    assert_eq!(totals["all_time"]["total"]["unpriced_calls"], 1);
    let in_project: f64 = records
        .iter()
        .filter(|r| r.project.as_deref() == Some(PROJECT))
        .filter_map(|r| r.cost_usd)
        .sum();
    let by_project = &totals["all_time"]["by_project"];
    assert!(
        close(
            by_project[PROJECT]["cost_usd"].as_f64().unwrap(),
            in_project
        ),
        "{by_project}"
    );
    assert_eq!(
        by_project.as_object().unwrap().len(),
        2,
        "calls without a directory have no project"
    );
    let gpt5 = &totals["this_month"]["by_model"]["gpt-5"];
    assert!(gpt5["p50_latency_ms"].as_u64() <= gpt5["p90_latency_ms"].as_u64());
    assert!(gpt5["p90_latency_ms"].as_u64() <= gpt5["p99_latency_ms"].as_u64());

    // Days: every seeded day, per model, as the records add up.
    let days = api_get(&base, &token, "series?unit=day&steps=45");
    let periods = days["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 45);
    assert_eq!(periods.last().unwrap()["period"], now().day_key());
    for period in periods {
        let day = period["period"].as_str().unwrap();
        for model in ["gpt-5", "o3", "deepseek-chat"] {
            let expected: f64 = records
                .iter()
                .filter(|r| r.time.day_key() == day && r.model == model)
                .filter_map(|r| r.cost_usd)
                .sum();
            let got = period["by_model"][model]["cost_usd"]
                .as_f64()
                .unwrap_or(0.0);
            assert!(close(got, expected), "{day} {model}: {got} != {expected}");
        }
    }
    assert_eq!(
        without_as_of(json!({"as_of": 0, "t": periods.last().unwrap()["total"]})),
        without_as_of(json!({"as_of": 0, "t": totals["today"]["total"]}))
    );
    // Weeks and months add up to all time (all records are within 40 days).
    for unit in ["week", "month"] {
        let series = api_get(&base, &token, &format!("series?unit={unit}"));
        let periods = series["periods"].as_array().unwrap();
        assert_eq!(periods.len(), 12, "{unit}");
        let calls: u64 = periods
            .iter()
            .map(|p| p["total"]["calls"].as_u64().unwrap())
            .sum();
        let usd: f64 = periods
            .iter()
            .map(|p| p["total"]["cost_usd"].as_f64().unwrap())
            .sum();
        assert_eq!(calls, records.len() as u64, "{unit}");
        assert!(close(usd, cost), "{unit}: {usd} != {cost}");
    }
    let months = api_get(&base, &token, "series?unit=month&steps=2");
    assert_eq!(months["periods"][1]["total"], totals["this_month"]["total"]);
    let bad = request(
        "GET",
        &format!("{base}/dashboard/api/series?unit=year"),
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(bad.status, 400, "{}", bad.body);

    // Budgets: the same caps and spend as status; an exhausted cap ran out already.
    let budgets = api_get(&base, &token, "budgets");
    let listed = budgets["budgets"].as_array().unwrap();
    let from_status = totals["budgets"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for (a, b) in listed.iter().zip(from_status) {
        assert_eq!(a["cap_usd"], b["cap_usd"]);
        assert_eq!(a["spent_usd"], b["spent_usd"]);
        assert_eq!(a["resets_at"], b["resets_at"]);
    }
    let gpt5_daily = listed.iter().find(|b| b["label"] == "gpt-5 daily").unwrap();
    // Today's gpt-5 records are seeds 0, 3, 6 and 9: $0.01 + $0.04 + $0.02 + $0.05.
    assert!(
        close(gpt5_daily["spent_usd"].as_f64().unwrap(), 0.12),
        "{gpt5_daily}"
    );
    assert!(
        close(gpt5_daily["fraction"].as_f64().unwrap(), 0.12 / 0.05),
        "{gpt5_daily}"
    );
    assert!(gpt5_daily["runs_out_at"].is_string(), "{gpt5_daily}");
    assert_eq!(budgets["warn_at"], 0.8);
    home.stop_daemon();
}

#[test]
fn only_a_one_time_link_a_session_or_the_token_gets_in() {
    let home = ZenHome::new();
    let link = login_link(&home);
    let base = base_of(&link);
    let token = token(&home);
    let bearer = format!("Bearer {token}");

    for path in [
        "/dashboard/",
        "/dashboard/app.js",
        "/dashboard/api/totals",
        "/dashboard/api/live",
    ] {
        let reply = request("GET", &format!("{base}{path}"), &[]);
        assert_eq!(reply.status, 401, "{path} without a login");
        assert!(!reply.body.contains("cost_usd"), "{path}");
    }
    let page = request("GET", &format!("{base}/dashboard/"), &[]);
    assert!(
        page.body.contains("zend dashboard"),
        "says how to log in: {}",
        page.body
    );
    let wrong = request(
        "GET",
        &format!("{base}/dashboard/api/totals"),
        &[("Authorization", "Bearer 0123456789abcdef0123456789abcdef")],
    );
    assert_eq!(wrong.status, 401);
    let forged = request(
        "GET",
        &format!("{base}/dashboard/"),
        &[("Cookie", "zen_dashboard=0123456789abcdef")],
    );
    assert_eq!(forged.status, 401);

    // The link sets an HttpOnly, SameSite=Strict cookie, then works no more.
    let (_, login_path) = split_url(&link);
    let bad_code = request("GET", &format!("{base}/dashboard/login?code=nope"), &[]);
    assert_eq!(bad_code.status, 401);
    let login = request("GET", &format!("{base}{login_path}"), &[]);
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.header("location"), Some("/dashboard/"));
    let cookie = login
        .header("set-cookie")
        .expect("a session cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_owned();
    let again = request("GET", &format!("{base}{login_path}"), &[]);
    assert_eq!(again.status, 401, "a link works once");
    assert!(
        !again
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
    );

    let page = request(
        "GET",
        &format!("{base}/dashboard/"),
        &[("Cookie", &session)],
    );
    assert_eq!(page.status, 200);
    assert!(page.body.contains("app.js"), "{}", page.body);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    for path in ["app.js", "app.css", "api/totals", "api/live"] {
        let reply = request(
            "GET",
            &format!("{base}/dashboard/{path}"),
            &[("Cookie", &session)],
        );
        assert_eq!(reply.status, 200, "{path}");
    }
    // Scripts use the token instead.
    assert_eq!(
        request(
            "GET",
            &format!("{base}/dashboard/api/totals"),
            &[("Authorization", &bearer)]
        )
        .status,
        200
    );

    // Host and Origin are checked before anything else, as for /mcp.
    let rebound = request(
        "GET",
        &format!("{base}/dashboard/api/totals"),
        &[("Host", "evil.example"), ("Cookie", &session)],
    );
    assert_eq!(rebound.status, 403);
    let cross_site = request(
        "GET",
        &format!("{base}/dashboard/api/totals"),
        &[
            ("Origin", "https://evil.example"),
            ("Authorization", &bearer),
        ],
    );
    assert_eq!(cross_site.status, 403);
    let same_site = request(
        "GET",
        &format!("{base}/dashboard/api/totals"),
        &[("Origin", &base), ("Cookie", &session)],
    );
    assert_eq!(same_site.status, 200);

    // Logging out ends the session.
    let out = request(
        "POST",
        &format!("{base}/dashboard/logout"),
        &[("Cookie", &session)],
    );
    assert_eq!(out.status, 204);
    let after = request(
        "GET",
        &format!("{base}/dashboard/api/totals"),
        &[("Cookie", &session)],
    );
    assert_eq!(after.status, 401);
    home.stop_daemon();
}

/// Polls `live` until `done` holds (the condition, not a fixed wait, ends it).
fn wait_live(base: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + WAIT;
    loop {
        let live = api_get(base, token, "live");
        if done(&live) {
            return live;
        }
        assert!(Instant::now() < until, "live never got there: {live}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn live_sessions_calls_in_flight_and_threads_show_as_they_happen() {
    let mock = MockProvider::start();
    mock.set(Behaviour {
        reply: "The dashboard answer.".into(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    let mut client = home.shim();
    client.initialize_as("claude-code");
    let base = base_of(&login_link(&home));
    let token = token(&home);
    let live = wait_live(&base, &token, |l| {
        l["sessions"].as_array().is_some_and(|s| s.len() == 1)
    });
    let session = &live["sessions"][0];
    assert_eq!(session["client"], "claude-code", "{live}");
    assert_eq!(session["transport"], "shim");
    let cwd = std::env::current_dir()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(session["project"], cwd.as_str());
    assert_eq!(live["calls_all_time"], 0);

    mock.hold();
    let id = client.send_tool_call(
        "chat",
        json!({"prompt": "Where did the zebra budget go?", "model": "gpt-5"}),
    );
    assert!(mock.wait_in_flight(1, WAIT));
    wait_live(&base, &token, |l| l["in_flight_calls"] == 1);
    mock.release();
    let answer = client.response_to(id);
    let text = result_text(&answer["result"]);
    let live = wait_live(&base, &token, |l| l["calls_all_time"] == 1);
    assert_eq!(live["in_flight_calls"], 0);

    let totals = api_get(&base, &token, "totals");
    assert_eq!(totals["today"]["by_project"][&cwd]["calls"], 1, "{totals}");
    assert_eq!(totals["today"]["by_client"]["claude-code"]["calls"], 1);
    let thread_id = text
        .split("continuation_id: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a continuation id")
        .to_owned();
    for query in [
        "text=zebra",
        "tool=chat",
        "model=gpt-5",
        &format!("project={cwd}"),
        "",
    ] {
        let found = api_get(&base, &token, &format!("threads?{query}"));
        assert_eq!(found[0]["id"], thread_id.as_str(), "{query}: {found}");
    }
    let none = api_get(&base, &token, "threads?text=no-such-words-anywhere");
    assert_eq!(none, json!([]));
    let thread = api_get(&base, &token, &format!("threads/{thread_id}"));
    let turns = thread["turns"].as_array().unwrap();
    assert!(
        turns[0]["text"].as_str().unwrap().contains("zebra budget"),
        "{thread}"
    );
    assert!(
        turns[1]["text"]
            .as_str()
            .unwrap()
            .contains("The dashboard answer."),
        "{thread}"
    );
    let missing = request(
        "GET",
        &format!("{base}/dashboard/api/threads/not-a-thread"),
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(missing.status, 400);
    drop(client);
    home.stop_daemon();
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn with_http_the_dashboard_is_served_beside_mcp() {
    let home = ZenHome::new();
    let port = free_port();
    let mut serve = home.command(&crate::support::zend_bin());
    serve.args(["serve", "--http", &format!("127.0.0.1:{port}")]);
    let mut daemon = crate::support::spawn_until_ready(serve, "zend serve --http", || {
        home.socket().exists() && crate::support::listening(port)
    });
    let link = login_link(&home);
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{port}/dashboard/login?code=")),
        "{link}"
    );
    let login = request("GET", &link, &[]);
    assert_eq!(login.status, 303);
    let session = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let base = base_of(&link);
    let live = request(
        "GET",
        &format!("{base}/dashboard/api/live"),
        &[("Cookie", &session)],
    );
    assert_eq!(live.status, 200, "{}", live.body);
    // The dashboard's cookie is not MCP's token.
    let mcp = request("POST", &format!("{base}/mcp"), &[("Cookie", &session)]);
    assert_eq!(mcp.status, 401);
    home.stop_daemon();
    crate::support::wait_within(&mut daemon, crate::support::WAIT, "zend serve");
}
