use serde_json::json;

use crate::support::{ZenHome, result_text};

#[test]
fn prompts_list_one_per_tool_plus_continue_and_expand_to_a_user_message() {
    let home = ZenHome::new();
    let mut client = home.session();
    let listed = client.request("prompts/list", json!({}));
    let names: Vec<&str> = listed["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"challenge") && names.contains(&"continue"),
        "{names:?}"
    );

    let got = client.request(
        "prompts/get",
        json!({"name": "challenge", "arguments": {"request": "is X true?"}}),
    );
    let text = got["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("`challenge`") && text.contains("is X true?"),
        "{text}"
    );

    let unknown = client.request("prompts/get", json!({"name": "nope"}));
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("available prompts"),
        "{unknown}"
    );
}

#[test]
fn challenge_wraps_the_statement_without_a_model_call() {
    let home = ZenHome::new();
    let mut client = home.session();
    let result = client.call_tool(
        "challenge",
        json!({"prompt": "Rust has no undefined behaviour"}),
    );
    let text = result_text(&result);
    assert!(
        text.contains("CRITICAL REASSESSMENT") && text.contains("Rust has no undefined behaviour")
    );

    let missing = client.call_tool("challenge", json!({}));
    assert_eq!(missing["isError"], true);
    assert!(result_text(&missing).contains("prompt"), "{missing}");
}

#[test]
fn disabled_tools_are_hidden_but_version_stays() {
    let mut home = ZenHome::new();
    home.env
        .push(("DISABLED_TOOLS".into(), "challenge,version".into()));
    home.write_config("tools/apilookup.yaml", "enabled: false\n");
    let mut client = home.session();
    let tools = client.request("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"challenge") && !names.contains(&"apilookup"),
        "{names:?}"
    );
    assert!(names.contains(&"version"), "{names:?}");
}
