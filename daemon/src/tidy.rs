//! Tidy checks on zend's own source, run by `cargo test`: the layers import one way, only
//! `providers` builds an HTTP client, `unsafe` stays in the files listed here (each one is
//! in ARCHITECTURE.md with its reason), and every module says what it is for (`//!`).
//!
//! The arrows are written down once, in [`ALLOWED`]; an import that is not among them fails with
//! the file and the line. Arrows that exist but should not are in [`KNOWN_BACK_EDGES`], each to be
//! removed by the change that removes the import (the test fails when one is no longer needed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each module of `daemon/src` may import (`use crate::...` or a
/// `crate::` path). Modules not named on the left may not import anything of the crate.
///
/// ipc → mcp → tools → providers / memory / ledger → store; below them the shared leaves
/// (config, locations, logging, util, malloc). `server` and `cli` assemble everything; `daemon`
/// is the state sessions share, so only the layers above `tools` see it whole.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "activation",
            "config",
            "daemon",
            "dashboard",
            "data",
            "hardening",
            "ipc",
            "ledger",
            "locations",
            "logging",
            "mcp",
            "memory",
            "providers",
            "service",
            "store",
            "tools",
            "watcher",
        ],
    ),
    (
        "cli",
        &[
            "client",
            "config",
            "daemon",
            "ipc",
            "ledger",
            "locations",
            "memory",
            "providers",
            "register",
            "service",
            "store",
            "time",
            "tools",
            "util",
        ],
    ),
    (
        "ipc",
        &[
            "daemon",
            "dashboard",
            "ledger",
            "logging",
            "malloc",
            "mcp",
            "memory",
            "providers",
            "sessions",
            "store",
            "time",
            "upgrade",
            "util",
        ],
    ),
    ("upgrade", &["daemon"]),
    // The dashboard is a boundary beside mcp: a browser's view of the same state.
    (
        "dashboard",
        &[
            "access", "daemon", "ledger", "mcp", "memory", "sessions", "store", "time", "util",
        ],
    ),
    ("watcher", &["daemon", "tools"]),
    (
        "mcp",
        &[
            "access", "daemon", "memory", "sessions", "store", "time", "tools", "util",
        ],
    ),
    (
        "daemon",
        &[
            "access",
            "config",
            "data",
            "locations",
            "providers",
            "sessions",
            "store",
            "tools",
            "util",
        ],
    ),
    (
        "tools",
        &[
            "config",
            "data",
            "hardening",
            "ledger",
            "locations",
            "logging",
            "memory",
            "providers",
            "sessions",
            "store",
            "time",
            "util",
        ],
    ),
    ("ledger", &["config", "memory", "store", "time", "util"]),
    ("memory", &["config", "store", "time", "util"]),
    ("providers", &["config", "logging", "util"]),
    ("sessions", &["util"]),
    ("access", &["util"]),
    ("store", &["util"]),
    ("data", &["config", "ledger", "memory", "store", "time"]),
    ("time", &[]),
    ("register", &["service"]),
    ("service", &["locations"]),
    ("hardening", &["locations"]),
    ("locations", &["logging"]),
    ("logging", &["time"]),
];

/// Imports against the layering that are still there, with the issue that removes them.
const KNOWN_BACK_EDGES: &[(&str, &str)] = &[];

/// The only files with `unsafe` in zend, the shim and the proto crate (see ARCHITECTURE.md).
const UNSAFE_FILES: &[&str] = &[
    "daemon/src/activation.rs",
    "daemon/src/hardening.rs",
    "daemon/src/malloc.rs",
    "daemon/src/tools/workflow/clink.rs",
    "daemon/src/cli/mod.rs",
    "proto/src/paths.rs",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Source without comments and string literals (replaced by spaces, lines kept), so that a
/// word in a doc comment or a message is not taken for code.
fn code_only(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            out.extend(std::iter::repeat_n(' ', end));
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            out.extend(
                rest[..end]
                    .chars()
                    .map(|c| if c == '\n' { '\n' } else { ' ' }),
            );
            i += end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            let end = rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            out.extend(
                rest[..end]
                    .chars()
                    .map(|c| if c == '\n' { '\n' } else { ' ' }),
            );
            i += end;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => {
                        j += 1;
                        break;
                    }
                    _ => j += 1,
                }
            }
            let end = j.min(rest.len());
            out.extend(
                rest[..end]
                    .chars()
                    .map(|c| if c == '\n' { '\n' } else { ' ' }),
            );
            i += end;
        } else if rest.starts_with("'\"'") {
            out.push_str("   ");
            i += 3;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The code before the file's `#[cfg(test)] mod ...` (tests may import what they like).
fn without_tests(code: &str) -> &str {
    match code.find("#[cfg(test)]\nmod ") {
        Some(at) => &code[..at],
        None => code,
    }
}

/// The top-level module a file of `daemon/src` belongs to (`tools` for `tools/engine.rs`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// The crate's top-level modules a piece of code names: `crate::x` paths, and every item of
/// `use crate::{x, y::z}` groups. Each with its line number.
fn imports(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let line = code[..at].matches('\n').count() + 1;
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphabetic() || c == '_') => {
                        item_start = false;
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.push((line + group[..i].matches('\n').count(), name));
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((line, name));
            }
        }
    }
    found
}

struct Source {
    path: PathBuf,
    module: String,
    code: String,
}

fn daemon_sources() -> Vec<Source> {
    let src = workspace().join("daemon/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let module = top_module(&src, &path)?;
            let code = code_only(&std::fs::read_to_string(&path).ok()?);
            Some(Source { path, module, code })
        })
        .collect()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Test files: `tests.rs` beside a module, and this one.
fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == "tests.rs" || n == "tidy.rs")
}

#[test]
fn layers_import_one_way() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(from, to)| (*from, to.iter().copied().collect()))
        .collect();
    let mut used_known: BTreeSet<(&'static str, &'static str)> = BTreeSet::new();
    let mut wrong = Vec::new();
    for source in daemon_sources() {
        let module = source.module.as_str();
        if matches!(module, "lib" | "main") || is_test_file(&source.path) {
            continue;
        }
        for (line, target) in imports(without_tests(&source.code)) {
            if target == module || matches!(target.as_str(), "self" | "super") {
                continue;
            }
            let edge = (module, target.as_str());
            if allowed
                .get(module)
                .is_some_and(|to| to.contains(target.as_str()))
            {
                continue;
            }
            if let Some(known) = KNOWN_BACK_EDGES.iter().find(|known| **known == edge) {
                used_known.insert(*known);
                continue;
            }
            wrong.push(format!(
                "{}:{line}: {module} imports {target}",
                relative(&source.path)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering (ipc → mcp → tools → providers/memory/ledger → store; \
         the allowed arrows are ALLOWED in daemon/src/tidy.rs):\n{}",
        wrong.join("\n")
    );
    let stale: Vec<_> = KNOWN_BACK_EDGES
        .iter()
        .filter(|known| !used_known.contains(*known))
        .collect();
    assert!(
        stale.is_empty(),
        "these back-edges are gone: remove them from KNOWN_BACK_EDGES in daemon/src/tidy.rs: {stale:?}"
    );
}

#[test]
fn only_providers_builds_an_http_client() {
    let mut wrong = Vec::new();
    for source in daemon_sources() {
        if source.module == "providers" || is_test_file(&source.path) {
            continue;
        }
        let code = without_tests(&source.code);
        for needle in ["reqwest::Client", "reqwest::ClientBuilder", "hyper::client"] {
            if let Some(at) = code.find(needle) {
                let line = code[..at].matches('\n').count() + 1;
                wrong.push(format!("{}:{line}: {needle}", relative(&source.path)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "every provider call goes through `providers`; outside it nothing builds an HTTP client:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn locks_that_survive_a_panic_are_taken_through_util() {
    let mut wrong = Vec::new();
    for source in daemon_sources() {
        let tests = source
            .path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"));
        if source.path.ends_with("util.rs") || tests || is_test_file(&source.path) {
            continue;
        }
        let code = without_tests(&source.code);
        for needle in ["PoisonError", ".into_inner())"] {
            for (at, _) in code.match_indices(needle) {
                let line = code[..at].matches('\n').count() + 1;
                let text = code.lines().nth(line - 1).unwrap_or("").trim();
                // `into_inner` of anything else (a response, a stream) is not a lock's.
                if needle == "PoisonError" || text.contains("unwrap_or_else") {
                    wrong.push(format!("{}:{line}: {text}", relative(&source.path)));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a lock that survives a panic is `util::lock`, `util::read` or `util::write`, not a copy:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn unsafe_stays_in_the_listed_files() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["daemon/src", "shim/src", "proto/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let listed: BTreeSet<&str> = UNSAFE_FILES.iter().copied().collect();
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for path in files {
        let name = relative(&path);
        if is_test_file(&path) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let code = code_only(&text);
        let code = without_tests(&code);
        let has_unsafe = code
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == "unsafe");
        if has_unsafe {
            seen.insert(name.clone());
            if !listed.contains(name.as_str()) {
                wrong.push(name);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "`unsafe` outside the listed files (add it to UNSAFE_FILES in daemon/src/tidy.rs and to \
         ARCHITECTURE.md with its reason, if it cannot be avoided): {wrong:?}"
    );
    let stale: Vec<_> = listed.iter().filter(|f| !seen.contains(**f)).collect();
    assert!(
        stale.is_empty(),
        "no `unsafe` left in {stale:?}: remove them from UNSAFE_FILES in daemon/src/tidy.rs"
    );
}

#[test]
fn every_module_says_what_it_is_for() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["daemon/src", "shim/src", "proto/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let missing: Vec<_> = files
        .iter()
        .filter(|path| {
            std::fs::read_to_string(path)
                .map(|text| !text.trim_start().starts_with("//!"))
                .unwrap_or(true)
        })
        .map(|path| relative(path))
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a `//!` header saying what they are for: {missing:?}"
    );
}

#[test]
fn the_import_scan_reads_groups_and_skips_comments_and_strings() {
    let code = code_only(
        "use crate::{a::X, b, c::{d, e}};\n// crate::nope\nlet s = \"crate::nope\";\nf(crate::g::h());\n",
    );
    let names: Vec<_> = imports(&code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["a", "b", "c", "g"]);
}
