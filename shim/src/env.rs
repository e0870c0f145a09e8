//! The environment a zend started by this shim gets, and the key variables the
//! shim tells zend about.
//!
//! An auto-started zend must not depend on which MCP client started it (one
//! passes its own `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL`, another strips
//! everything), so it gets only what locates and connects it: `HOME`, `PATH`,
//! the XDG base directories, locale, `TZ`, `ZEN_*`, proxy and CA variables.
//! Keys come from zen's `.env`. Key variables set in the shim's own
//! environment are named (never valued) to zend, which answers with those it
//! lacks; the shim says so once on stderr.

use std::ffi::OsStr;

pub use zen_proto::client::passed_to_zend;

/// The names of the provider key variables in `vars`, sorted, comma-separated
/// (`None` when there are none).
pub fn key_names<I, K>(vars: I) -> Option<String>
where
    I: IntoIterator<Item = K>,
    K: AsRef<OsStr>,
{
    let mut names: Vec<String> = vars
        .into_iter()
        .filter_map(|name| name.as_ref().to_str().map(str::to_owned))
        .filter(|name| zen_proto::meta::is_key_variable(name))
        .collect();
    names.sort();
    names.dedup();
    (!names.is_empty()).then(|| names.join(","))
}

/// The line the shim writes once when zend lacks keys its client set.
pub fn missing_keys_notice(names: &str) -> String {
    let (verb, it) = if names.contains(',') {
        ("are", "them")
    } else {
        ("is", "it")
    };
    format!(
        "zen-shim: {names} {verb} set in this MCP client's environment, but zend does not have \
         {it} (zend takes keys from zen's .env, not from the client that starts it); run \
         `zend keys import` once to copy {it} there"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_location_locale_zen_proxy_and_ca_variables_pass() {
        for name in [
            "HOME",
            "PATH",
            "LANG",
            "LC_ALL",
            "TZ",
            "ZEN_HOME",
            "ZEN_SOCKET",
            "https_proxy",
            "NO_PROXY",
            "SSL_CERT_FILE",
            "XDG_CONFIG_HOME",
        ] {
            assert!(passed_to_zend(OsStr::new(name)), "{name}");
        }
        for name in [
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            "OPENAI_API_KEY",
            "CLAUDECODE",
            "LD_PRELOAD",
            "USER",
            "home",
        ] {
            assert!(!passed_to_zend(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn key_names_are_names_only_sorted_once() {
        assert_eq!(
            key_names([
                "PATH",
                "OPENAI_API_KEY",
                "ANTHROPIC_API_KEY",
                "OPENAI_API_KEY",
                "_API_KEY"
            ]),
            Some("ANTHROPIC_API_KEY,OPENAI_API_KEY".to_owned())
        );
        assert_eq!(key_names(["HOME", "openai_api_key"]), None);
    }
}
