//! `zen-mcp`, the one command of zen's npm package, is this shim under another name: with no
//! arguments it is the shim (`claude mcp add zen -- npx -y zen-mcp`); with arguments it becomes
//! the `zend` beside it (`npx -y zen-mcp register claude-code`), by `exec`, so nothing stands
//! between the user and zend. Under its own name the shim ignores arguments, as it always has.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::ExitCode;

/// The name under which arguments go to zend.
pub const MULTICALL_NAME: &str = "zen-mcp";

/// Whether this invocation is `zen-mcp` with arguments, i.e. a zend command.
pub fn wants_zend(argv0: &OsStr, rest: &[OsString]) -> bool {
    !rest.is_empty() && Path::new(argv0).file_name() == Some(OsStr::new(MULTICALL_NAME))
}

/// Runs zend with this process's arguments when [`wants_zend`]; `None` means: be the shim.
pub fn run_as_zend() -> Option<ExitCode> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let argv0 = args.next()?;
    let rest: Vec<OsString> = args.collect();
    if !wants_zend(&argv0, &rest) {
        return None;
    }
    let zend = match crate::find_zend() {
        Ok(zend) => zend,
        Err(reason) => {
            eprintln!("{MULTICALL_NAME}: {reason}");
            return Some(ExitCode::FAILURE);
        }
    };
    let error = std::process::Command::new(&zend).args(&rest).exec();
    eprintln!("{MULTICALL_NAME}: cannot run {}: {error}", zend.display());
    Some(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_zen_mcp_with_arguments_is_zend() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(wants_zend(
            OsStr::new("/x/node_modules/.bin/zen-mcp"),
            &args(&["register", "claude-code"])
        ));
        assert!(wants_zend(OsStr::new("zen-mcp"), &args(&["status"])));
        assert!(!wants_zend(OsStr::new("/x/zen-mcp"), &args(&[])));
        assert!(!wants_zend(OsStr::new("/x/zen-shim"), &args(&["status"])));
        assert!(!wants_zend(
            OsStr::new("/x/zen-mcp-old"),
            &args(&["status"])
        ));
    }
}
