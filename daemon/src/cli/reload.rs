//! `zend reload [--json]`: the running zend reads its configuration files
//! again and swaps them in (as it does by itself when they change, and on
//! `SIGHUP`), and this prints how that went. Exit 0 when the new configuration
//! is in force, 1 when it did not load (the previous one stays; the message
//! names the file and line), 3 when no zend runs (the next one reads the files).

use std::io::Write;

use serde_json::json;

use super::connect::Target;
use super::{CliError, EXIT_ERROR, EXIT_NOT_RUNNING, EXIT_OK, query};
use crate::client::ClientError;

pub async fn run(target: &Target, as_json: bool, out: &mut dyn Write) -> Result<u8, CliError> {
    let mut client = match target.connect().await {
        Ok(client) => client,
        Err(CliError::Client(ClientError::NotRunning(path))) => {
            if as_json {
                writeln!(out, "{}", json!({ "running": false, "socket_path": path }))?;
            } else {
                writeln!(
                    out,
                    "zend is not running (socket {}); the next start reads the configuration",
                    path.display()
                )?;
            }
            return Ok(EXIT_NOT_RUNNING);
        }
        Err(e) => return Err(e),
    };
    let answer = query::request(&mut client, query::RELOAD, json!({})).await?;
    if as_json {
        writeln!(out, "{:#}", answer.json)?;
    } else {
        writeln!(out, "{}", answer.text)?;
    }
    Ok(if answer.json["ok"] == true {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}
