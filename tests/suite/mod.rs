//! One module per capability.

/// Spine: shim ↔ daemon, auto-start, single instance, status/stop, bad input.
mod foundation;

/// The tool engine, conversational tools, prompts and plugins.
mod tools;

/// Long answers: the result budget per client, pages read back byte for byte.
mod paging;

/// Operating zen: services, socket activation, client registration, logs, HTTP.
mod operate;

/// Step-protocol tools (codereview, precommit, debug, ...) and clink.
mod workflow;

/// The `zend` command line: models, threads, ask, consensus, doctor, exit codes.
mod cli;

/// Crash and restart recovery, version skew, shutdown, access, hostile input.
mod reliability;

/// Provider faults through the real binaries: retries, fallbacks, clear errors,
/// the ledger against the bill; secrets on every path.
mod faults;

/// rpm, tpm and concurrency caps across sessions; the bounded queue.
mod limits;

/// The shim's stdio as clients hand it over: socketpairs, pipes, regular files.
mod shim_io;

/// Today's assistants: both MCP lifecycles, capabilities, registration, zend's environment.
mod clients;

/// What tools may read, run and send: zen's files and credentials, one path
/// check, precommit's git, clink's directory, prompts out of the logs (#32).
mod tool_security;

/// Packages: the npm command `zen-mcp`, registering from a runner's cache,
/// `zend version --check`, and (opt-in) installed wheel and npm packages.
mod dist;

/// OpenAI's Responses API models (gpt-5-pro, o3-pro, codex) end to end: routing,
/// ledger and cost, failures, cancellation, consensus and workflow expert steps.
mod responses;

/// Private files, a hardened process, limits on what a peer can make zend hold.
mod hardening;

/// Prompts providers' caches can reuse: the layout consecutive turns share, cache
/// marks, and cached tokens in the ledger.
mod caching;

/// The harness itself: hermetic processes (no proxies, no real assistant CLI)
/// and a deadline on every command it runs.
mod harness;

/// `kill -9` under load: answered turns and exact ledger totals survive.
mod crash;

/// The local dashboard: its JSON API against seeded ledgers, who gets in, live
/// sessions and threads; the page in headless Chromium when it is installed.
mod dashboard;

/// The dashboard page in headless Chromium (skipped when none is installed).
mod dashboard_browser;

/// Anthropic and Gemini streamed end to end, priced from the map; a LiteLLM
/// proxy's cost header in the ledger.
mod wires;

/// Conversation threads' TTL and turn cap, through the binaries.
mod memory;

/// Clients trust nothing at the socket path: its directory, a service marker
/// and the server's uid are checked first; the shim's stdin buffer is bounded (#32).
mod security_client;

/// What clients and users read directly: listmodels, apilookup, thread
/// resources, `zend ask -` and `--json`, Ctrl-C, `zend doctor --live`.
mod surfaces;

/// Configuration edits applied live: the watcher, `zend reload`, SIGHUP,
/// tools/list_changed, a broken edit that changes nothing.
mod reload;

/// `consensus` on what the provider received: parallel and blind rounds, later
/// rounds informed, failures keeping earlier answers, the synthesis of the last.
mod consensus;

/// A thread longer than the context window: oldest turns dropped first, every
/// request within the input budget.
mod history;

/// Stopping zend with a call in flight: finished within the deadline and on disk,
/// or cut at it with a clear error and nothing half-written.
mod stopping;

/// Opt-in (`ZEN_TEST_CLAUDE_CODE=1`): Claude Code from npm calls zen, headless,
/// against a scripted Messages API.
mod claude_code;
