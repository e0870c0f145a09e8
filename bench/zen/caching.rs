//! Section "caching": what a continued thread costs at a provider that caches prompts as
//! OpenAI does (automatically: a prefix of at least 1,024 tokens seen before is billed at
//! the cached price, in steps of 128 tokens).
//!
//! A thread with ~25k tokens of files is started and continued ten times through the real
//! binaries against a mock that bills that way. Two bills come out of the same requests:
//! - after: each request as zend sent it;
//! - before: the same request with its shared prefix ending where zen's earlier layout
//!   ended it: that layout put the history's header, with the thread's turn count, right
//!   after the system prompt, so nothing after that point was ever the same as in the
//!   previous turn. The bench moves the count line (which the new layout keeps near the
//!   end) back to that place and bills the result.
//!
//! Prices are gpt-5's in LiteLLM's map; output tokens are the same in both bills.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::procs::{self, Bins, Home};
use crate::report::{Report, Target, Unit};

/// gpt-5 in LiteLLM's map, USD per token.
const INPUT: f64 = 1.25e-6;
const CACHED: f64 = 1.25e-7;
const OUTPUT: f64 = 1e-5;
/// OpenAI caches prefixes from this many tokens, in steps of `CACHE_STEP`.
const CACHE_MIN: u64 = 1024;
const CACHE_STEP: u64 = 128;
const ANSWER_TOKENS: u64 = 120;
/// Files of about this many bytes (4 bytes a token: ~25k tokens).
const FILE_BYTES: usize = 100_000;
const CONTINUATIONS: usize = 10;

/// One bill: input tokens, of which cached, and output tokens.
#[derive(Default, Clone, Copy)]
struct Bill {
    input: u64,
    cached: u64,
    output: u64,
}

impl Bill {
    fn add(&mut self, input: u64, cached: u64, output: u64) {
        self.input += input;
        self.cached += cached;
        self.output += output;
    }

    fn usd(&self) -> f64 {
        (self.input - self.cached) as f64 * INPUT
            + self.cached as f64 * CACHED
            + self.output as f64 * OUTPUT
    }
}

#[derive(Default)]
struct Billing {
    /// Every prompt billed so far, as each bill saw it.
    seen_after: Vec<String>,
    seen_before: Vec<String>,
    after: Bill,
    before: Bill,
    /// Per request: (input tokens, cached after, cached before).
    calls: Vec<(u64, u64, u64)>,
}

fn tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// What OpenAI's cache would serve of `prompt`, given the prompts it saw before.
fn cached_tokens(seen: &[String], prompt: &str) -> u64 {
    let longest = seen
        .iter()
        .map(|s| {
            s.bytes()
                .zip(prompt.bytes())
                .take_while(|(a, b)| a == b)
                .count()
        })
        .max()
        .unwrap_or(0);
    let tokens = longest as u64 / 4;
    if tokens < CACHE_MIN {
        0
    } else {
        tokens / CACHE_STEP * CACHE_STEP
    }
}

/// The prompt text of a chat completions body: every message's text, in order.
fn prompt_of(body: &Value) -> String {
    let mut text = String::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        match &message["content"] {
            Value::String(s) => text.push_str(s),
            Value::Array(parts) => {
                for part in parts {
                    text.push_str(part["text"].as_str().unwrap_or_default());
                }
            }
            _ => {}
        }
        text.push('\n');
    }
    text
}

/// The same prompt as the earlier layout broke it: the line that changes every turn
/// moved to right after the system prompt (the first message).
fn as_before(body: &Value) -> String {
    let prompt = prompt_of(body);
    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
    let Some(start) = prompt.find("(This thread has ") else {
        return prompt;
    };
    let end = prompt[start..]
        .find('\n')
        .map_or(prompt.len(), |e| start + e + 1);
    let line = &prompt[start..end];
    let mut before = String::with_capacity(prompt.len());
    before.push_str(system);
    before.push('\n');
    before.push_str(line);
    before.push_str(&prompt[system.len() + 1..start]);
    before.push_str(&prompt[end..]);
    before
}

fn bill(billing: &Mutex<Billing>, body: &Value) -> (u64, u64) {
    let mut b = billing.lock().unwrap_or_else(|e| e.into_inner());
    let after = prompt_of(body);
    let before = as_before(body);
    let input = tokens(&after);
    let cached_after = cached_tokens(&b.seen_after, &after).min(input);
    let cached_before = cached_tokens(&b.seen_before, &before).min(input);
    b.after.add(input, cached_after, ANSWER_TOKENS);
    b.before.add(input, cached_before, ANSWER_TOKENS);
    b.calls.push((input, cached_after, cached_before));
    b.seen_after.push(after);
    b.seen_before.push(before);
    (input, cached_after)
}

fn serve(stream: TcpStream, billing: &Mutex<Billing>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (input, cached) = bill(billing, &body);
        let usage = json!({"prompt_tokens": input, "completion_tokens": ANSWER_TOKENS,
            "total_tokens": input + ANSWER_TOKENS, "prompt_tokens_details": {"cached_tokens": cached}});
        let answer = "The code reads well; the second file's error path drops the context it had. "
            .repeat(6);
        let payload = if body["stream"] == true {
            let chunk = json!({"id": "c", "object": "chat.completion.chunk", "model": body["model"],
                "choices": [{"index": 0, "delta": {"content": answer}, "finish_reason": "stop"}]});
            let last = json!({"id": "c", "object": "chat.completion.chunk", "model": body["model"],
                "choices": [], "usage": usage});
            format!("data: {chunk}\n\ndata: {last}\n\ndata: [DONE]\n\n")
        } else {
            json!({"id": "c", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": usage})
            .to_string()
        };
        let kind = if body["stream"] == true {
            "text/event-stream"
        } else {
            "application/json"
        };
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n{payload}",
            payload.len()
        )?;
        stream.flush()?;
    }
}

/// Starts the billing mock; returns its `.../v1` URL.
fn start(billing: Arc<Mutex<Billing>>) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}/v1",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let billing = billing.clone();
            std::thread::spawn(move || {
                let _ = serve(stream, &billing);
            });
        }
    });
    Ok(url)
}

pub fn run(bins: &Bins, report: &mut Report) -> Result<(), String> {
    let billing = Arc::new(Mutex::new(Billing::default()));
    let url = start(billing.clone())?;
    let mut home = Home::new().map_err(|e| e.to_string())?;
    home.env = vec![
        ("OPENAI_BASE_URL".into(), url),
        ("OPENAI_API_KEY".into(), crate::mock::API_KEY.into()),
    ];
    let files: Vec<String> = (0..4)
        .map(|i| {
            let path = home.path().join(format!("module_{i}.rs"));
            let mut text = String::new();
            let mut line = 0;
            while text.len() < FILE_BYTES / 4 {
                text.push_str(&format!(
                    "pub fn step_{i}_{line}(state: &mut State) -> Result<(), Error> {{ state.advance({line}) }}\n"
                ));
                line += 1;
            }
            std::fs::write(&path, text).map(|()| path.to_string_lossy().into_owned())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let (zend, _) = home.start_daemon(bins).map_err(|e| e.to_string())?;
    let outcome = (|| {
        let mut shim = crate::shim_session(bins, &home)?;
        let mut continuation: Option<String> = None;
        for turn in 0..=CONTINUATIONS {
            let mut arguments = json!({
                "prompt": format!("Question {turn}: what would you change in these modules?"),
                "model": crate::mock::CHAT_MODEL,
                "absolute_file_paths": files,
            });
            if let Some(id) = &continuation {
                arguments["continuation_id"] = json!(id);
            }
            let params = json!({"name": "chat", "arguments": arguments}).to_string();
            let line = shim
                .request("tools/call", Some(&params))
                .map_err(|e| e.to_string())?;
            let reply: Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
            let text = reply["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default();
            if reply["result"]["isError"] != false {
                return Err(format!(
                    "chat failed: {}",
                    line.chars().take(300).collect::<String>()
                ));
            }
            continuation = procs::continuation_id(text);
        }
        shim.close();
        let status = home
            .command(&bins.zend)
            .args(["status", "--json"])
            .output()
            .map_err(|e| e.to_string())?;
        let status: Value = serde_json::from_slice(&status.stdout).map_err(|e| e.to_string())?;
        Ok::<_, String>(status["ledger"]["all_time"]["total"].clone())
    })();
    home.stop_daemon();
    let _ = zend;
    let ledger = outcome?;

    let b = billing.lock().unwrap_or_else(|e| e.into_inner());
    if b.calls.len() != CONTINUATIONS + 1 {
        return Err(format!(
            "{} provider calls, not {}",
            b.calls.len(),
            CONTINUATIONS + 1
        ));
    }
    for (turn, (input, after, before)) in b.calls.iter().enumerate() {
        println!(
            "  call {turn:>2}: {input:>6} input tokens, cached {after:>6} (before: {before:>5})"
        );
    }
    let (after, before) = (b.after.usd(), b.before.usd());
    let ratio = after / before;
    report.row(
        "caching",
        format!("thread with ~25k tokens of files, started + {CONTINUATIONS} continuations: cost"),
        after,
        Unit::Usd,
        Some((before, "the same requests as the earlier layout shared them")),
        Target::RatioAtMost(0.25),
        format!(
            "USD at gpt-5's prices: ${after:.4} vs ${before:.4} ({:.2}x); {} of {} input tokens cached (before: {}); \
             zend's ledger: ${:.4}, caching saved ${:.4}",
            ratio,
            b.after.cached,
            b.after.input,
            b.before.cached,
            ledger["cost_usd"].as_f64().unwrap_or(f64::NAN),
            ledger["cache_saved_usd"].as_f64().unwrap_or(f64::NAN),
        ),
    );
    report.detail(
        "caching",
        json!({
            "after_usd": after,
            "before_usd": before,
            "ratio": ratio,
            "input_tokens": b.after.input,
            "cached_after": b.after.cached,
            "cached_before": b.before.cached,
            "ledger_cost_usd": ledger["cost_usd"],
            "ledger_cache_saved_usd": ledger["cache_saved_usd"],
        }),
    );
    Ok(())
}
