//! Long answers (issue #38): every tool result fits the client's result budget,
//! carries the continuation id in its header and footer, and the rest of a long
//! answer reads back page by page, byte for byte, never splitting a code block.

use crate::support::OutputWithin;
use serde_json::{Value, json};

use crate::support::mock_provider::{Behaviour, MockProvider};
use crate::support::{McpClient, ZenHome, ok_text, result_text, zend_bin};

/// The built-in `result_budget_bytes`.
const DEFAULT_BUDGET: usize = 32 * 1024;

/// A model answer of about `words` words: paragraphs of varied length, Rust
/// code blocks with blank lines inside (tempting cuts), headings, non-ASCII text.
fn long_answer(words: usize) -> String {
    let vocabulary = [
        "index", "range", "scan", "B-tree", "page", "latch", "écart", "naïve", "split", "merge",
        "cache", "→", "fence",
    ];
    let mut text = String::from("# Review\n\n");
    let (mut written, mut paragraph) = (0, 0);
    while written < words {
        paragraph += 1;
        let count = 40 + (paragraph * 37) % 80;
        let line: Vec<&str> = (0..count)
            .map(|i| vocabulary[(i * 7 + paragraph) % vocabulary.len()])
            .collect();
        text.push_str(&line.join(" "));
        text.push_str("\n\n");
        written += count;
        if paragraph % 6 == 0 {
            text.push_str("```rust\nfn example() {\n\n");
            for i in 0..(paragraph % 40 + 3) {
                text.push_str(&format!(
                    "    let x{i} = {i}; // {}\n\n",
                    vocabulary[i % 13]
                ));
            }
            text.push_str("}\n```\n\n");
        }
        if paragraph % 15 == 0 {
            text.push_str(&format!("## Part {paragraph}\n\n"));
        }
    }
    text.push_str("The end.");
    text
}

/// What one result says about its page: the page's text, its byte range, and
/// the `threads` arguments for the next page (`None` after the last).
struct Page {
    text: String,
    start: usize,
    end: usize,
    next: Option<Value>,
}

/// Reads a paged result, checking what every result must carry.
fn page(result: &Value, budget: usize) -> Page {
    let text = result_text(result);
    assert_eq!(result["isError"], false, "{text}");
    assert!(text.len() <= budget, "{} bytes over {budget}", text.len());
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("[zen] continuation_id: "),
        "header: {header}"
    );
    let footer = &text[text.rfind("\n---\n").expect("a footer") + 5..];
    assert!(footer.contains("continuation_id: "), "footer: {footer}");
    let note = text.rfind("[zen] ").unwrap();
    let at = note + text[note..].find("bytes ").unwrap() + "bytes ".len();
    let (start, rest) = text[at..].split_once('-').unwrap();
    let end: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let (start, end): (usize, usize) = (start.parse().unwrap(), end.parse().unwrap());
    let body = text.find("\n\n").unwrap() + 2;
    let next = text[note..].find("{\"continuation_id\"").map(|open| {
        let object = &text[note + open..];
        serde_json::from_str(&object[..=object.find('}').unwrap()]).unwrap()
    });
    Page {
        text: text[body..body + end - start].to_owned(),
        start,
        end,
        next,
    }
}

/// Whether every fenced block that opens in `page` closes in it.
fn fences_balanced(page: &str) -> bool {
    page.lines()
        .filter(|line| line.trim_start().starts_with("```"))
        .count()
        % 2
        == 0
}

/// Reads the rest of a long answer through `threads`, page after page, and
/// returns the whole answer; checks each page on the way.
fn read_all(client: &mut McpClient, first: &Value, budget: usize) -> (String, String, usize) {
    let first = page(first, budget);
    assert_eq!(first.start, 0);
    let mut answer = first.text;
    let mut offset = first.end;
    let mut next = first.next.expect("a long answer says how to read on");
    let id = next["continuation_id"].as_str().unwrap().to_owned();
    let mut pages = 1;
    loop {
        assert_eq!(next["offset"].as_u64().unwrap() as usize, offset);
        let read = page(&client.call_tool("threads", next.clone()), budget);
        assert_eq!(read.start, offset, "pages follow each other");
        assert!(fences_balanced(&read.text), "page splits a code block");
        answer.push_str(&read.text);
        offset = read.end;
        pages += 1;
        match read.next {
            Some(following) => next = following,
            None => break,
        }
    }
    (answer, id, pages)
}

#[test]
fn long_answers_page_back_byte_for_byte_within_the_budget() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let mut client = home.session();
    for words in [8_000, 30_000, 100_000] {
        let reply = long_answer(words);
        mock.set(Behaviour {
            reply: reply.clone(),
            ..Behaviour::default()
        });
        let result = client.call_tool(
            "chat",
            json!({"prompt": "Review the design at length.", "model": "gpt-5"}),
        );
        let first = ok_text(&result);
        assert!(
            first.starts_with("[zen] continuation_id: ")
                && first
                    .lines()
                    .next()
                    .unwrap()
                    .contains("100 in / 20 out tokens"),
            "{words} words: the header carries model, tokens and cost: {}",
            &first[..200]
        );
        assert!(fences_balanced(&page(&result, DEFAULT_BUDGET).text));
        let (answer, id, pages) = read_all(&mut client, &result, DEFAULT_BUDGET);
        assert!(
            answer == reply,
            "{words} words: the pages give the answer back"
        );
        assert!(pages >= reply.len() / DEFAULT_BUDGET, "{pages} pages");
        eprintln!("{words} words: {} bytes in {pages} pages", reply.len());

        // The whole answer is on the thread: as a resource, and page-free from the CLI.
        let resource = client.request(
            "resources/read",
            json!({"uri": format!("zen://threads/{id}/turns/2")}),
        );
        assert!(
            resource["result"]["contents"][0]["text"] == reply,
            "the turn's resource is the whole answer: {}",
            &resource.to_string()[..200.min(resource.to_string().len())]
        );
    }
}

#[test]
fn the_budget_is_per_client_and_the_cli_prints_whole_answers_and_turns() {
    let mock = MockProvider::start();
    let reply = long_answer(8_000);
    mock.set(Behaviour {
        reply: reply.clone(),
        ..Behaviour::default()
    });
    let home = ZenHome::with_mock(&mock);
    home.write_config(
        "server.yaml",
        "result_budget_by_client:\n  Tight-Client: 8192\n",
    );
    let mut tight = home.shim();
    tight.initialize_as("tight-client");
    let result = tight.call_tool("chat", json!({"prompt": "Explain.", "model": "gpt-5"}));
    assert_eq!(result["isError"], false, "{result}");
    let (answer, id, pages) = read_all(&mut tight, &result, 8192);
    assert!(answer == reply);
    assert!(pages >= reply.len() / 8192, "{pages} pages of 8 KB");

    // Another client of the same daemon keeps the default budget.
    let mut other = home.session();
    let whole = other.call_tool("threads", json!({"continuation_id": id, "turn": 2}));
    assert_eq!(whole["isError"], false, "{whole}");
    let default_page = page(&whole, DEFAULT_BUDGET);
    assert!(default_page.end > 8192, "{}", default_page.end);
    // Reading the whole thread also fits, with the way to the rest of the long turn.
    let thread = ok_text(&tight.call_tool("threads", json!({"continuation_id": id})));
    assert!(thread.len() <= 8192, "{}", thread.len());
    assert!(thread.contains("\"turn\": 2, \"offset\": "), "{thread}");

    // The terminal has no budget: `zend ask` prints the whole answer, no header.
    let asked = home.zend(&["ask", "--model", "gpt-5", "Explain."]);
    assert!(asked.status.success());
    let printed = String::from_utf8(asked.stdout).unwrap();
    assert!(
        printed == format!("{reply}\n"),
        "zend ask prints the whole answer"
    );
    let shown = home
        .command(&zend_bin())
        .args(["threads", "show", &id])
        .output_within(crate::support::COMMAND_DEADLINE);
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(
        shown.contains(&reply),
        "zend threads show prints whole turns"
    );
}

#[test]
fn max_answer_tokens_reaches_the_provider_and_tools_explain_paging() {
    let mock = MockProvider::start();
    let home = ZenHome::with_mock(&mock);
    let mut client = home.shim();
    let init = client.initialize();
    let instructions = init["result"]["instructions"].as_str().unwrap();
    assert!(instructions.contains("pages") && instructions.contains("max_answer_tokens"));
    let result = client.call_tool(
        "chat",
        json!({"prompt": "Briefly.", "model": "gpt-5", "max_answer_tokens": 500}),
    );
    assert_eq!(result["isError"], false, "{}", result_text(&result));
    let body = &mock.completions()[0].body;
    let limit = body
        .get("max_completion_tokens")
        .or(body.get("max_tokens"))
        .unwrap_or_else(|| panic!("no output limit sent: {body}"));
    assert_eq!(limit, 500);
    let refused = client.call_tool(
        "chat",
        json!({"prompt": "Briefly.", "model": "gpt-5", "max_answer_tokens": 0}),
    );
    assert_eq!(refused["isError"], true);
    assert!(result_text(&refused).contains("max_answer_tokens"));
    assert_eq!(mock.completions().len(), 1, "refused before any model call");
}
