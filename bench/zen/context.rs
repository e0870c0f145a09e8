//! Section 5: context economy, the bytes of `tools/list` and the instructions.

use super::*;

/// The bytes an assistant's context pays for: tools/list plus the initialize
/// instructions; the floor is the same tools' names and input schemas alone.
pub(super) fn context_bytes(
    init_line: &str,
    tools_line: &str,
) -> Result<(usize, usize, usize, Value), String> {
    let init: Value = serde_json::from_str(init_line).map_err(|e| e.to_string())?;
    let tools: Value = serde_json::from_str(tools_line).map_err(|e| e.to_string())?;
    let instructions = init["result"]["instructions"].as_str().unwrap_or("").len();
    let result = &tools["result"];
    let list = result["tools"].as_array().cloned().unwrap_or_default();
    let skeleton: Vec<Value> = list
        .iter()
        .map(|t| json!({"name": t["name"], "inputSchema": t["inputSchema"]}))
        .collect();
    let per_tool: serde_json::Map<String, Value> = list
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or("?").to_owned(),
                json!(t.to_string().len()),
            )
        })
        .collect();
    Ok((
        result.to_string().len(),
        instructions,
        json!({"tools": skeleton}).to_string().len(),
        Value::Object(per_tool),
    ))
}

/// A session of `command` with its initialize answer and tools/list answer.
pub(super) fn listed(command: std::process::Command) -> Result<(Mcp, String, String), String> {
    let mut client = io(Mcp::spawn(command))?;
    let init = io(client.initialize())?;
    let tools_line = io(client.request("tools/list", Some("{}")))?;
    Ok((client, init, tools_line))
}

/// zen's initialize and tools/list answers, through the shim, in `home`.
pub(super) fn listing(bins: &Bins, home: &Home) -> Result<(String, String), String> {
    let (client, init, tools_line) = listed(home.command(&bins.shim))?;
    client.close();
    Ok((init, tools_line))
}

/// 5. tools/list + instructions with every tool enabled. Returns the tool names.
pub(super) fn context(
    bins: &Bins,
    home: &Home,
    report: &mut Report,
) -> Result<Vec<String>, String> {
    let (init, tools_line) = listing(bins, home)?;
    let (tools, instructions, skeleton, per_tool) = context_bytes(&init, &tools_line)?;
    let names: Vec<String> = per_tool
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    report.row(
        "context",
        format!("tools/list + instructions ({} tools)", names.len()),
        (tools + instructions) as f64,
        Unit::KiB,
        Some((skeleton as f64, "names + input schemas only")),
        Target::AtMost(16.0 * 1024.0),
        format!("tools/list {tools} B, instructions {instructions} B"),
    );
    report.detail(
        "context",
        json!({"tools_list_bytes": tools, "instructions_bytes": instructions, "skeleton_bytes": skeleton, "per_tool_bytes": per_tool}),
    );
    Ok(names)
}

/// 5b. The same with only `chat` enabled (`version` and `listmodels` cannot be
///     turned off): a daemon of its own, in a home of its own, with the same
///     provider environment. `names` are every tool's, from [`context`].
pub(super) fn context_chat_only(
    bins: &Bins,
    home: &Home,
    names: &[String],
    report: &mut Report,
    floors: &mut Floors,
) -> Result<(), String> {
    let mut narrow = io(Home::new())?;
    narrow.env = home.env.clone();
    let hidden: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "chat")
        .collect();
    // In server.yaml: an auto-started zend takes no variables but `ZEN_*` from its client.
    let server_yaml = format!("disabled_tools: [{}]\n", hidden.join(", "));
    std::fs::write(narrow.path().join("config/server.yaml"), server_yaml)
        .map_err(|e| format!("cannot write the narrow home's server.yaml: {e}"))?;
    let narrow_listing = listing(bins, &narrow);
    narrow.stop_daemon();
    let (init, tools_line) = narrow_listing?;
    let (tools, instructions, skeleton, per_tool) = context_bytes(&init, &tools_line)?;
    let shown: Vec<&str> = per_tool
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if !shown.contains(&"chat") || shown.len() >= names.len() {
        return Err(format!(
            "with disabled_tools the daemon still listed {shown:?}: the chat-only row would measure the wrong set"
        ));
    }
    floors.zen.context_chat_only = (tools + instructions) as f64;
    report.row(
        "context",
        format!(
            "tools/list + instructions, only chat enabled ({})",
            shown.join(", ")
        ),
        (tools + instructions) as f64,
        Unit::KiB,
        Some((skeleton as f64, "names + input schemas only")),
        Target::None,
        format!("tools/list {tools} B, instructions {instructions} B"),
    );
    report.detail(
        "context_chat_only",
        json!({"tools_list_bytes": tools, "instructions_bytes": instructions, "skeleton_bytes": skeleton, "per_tool_bytes": per_tool}),
    );
    Ok(())
}
