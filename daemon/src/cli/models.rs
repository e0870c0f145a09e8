//! `zend models [--json]`: the models the running zend can call and the
//! providers still to configure, as `listmodels` shows them. Asked of the daemon
//! because the keys (and so what is available) live with it.

use std::io::Write;

use serde_json::json;

use super::connect::Target;
use super::{CliError, EXIT_OK, Style, query};

pub async fn run(
    target: &Target,
    as_json: bool,
    style: Style,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let mut client = target.connect_or_start().await?;
    let answer = query::request(&mut client, query::MODELS, json!({})).await?;
    if as_json {
        writeln!(out, "{:#}", answer.json)?;
    } else {
        for line in answer.text.lines() {
            match line.strip_prefix("## ") {
                Some(heading) => writeln!(out, "{}", style.bold(heading))?,
                None => writeln!(out, "{line}")?,
            }
        }
    }
    Ok(EXIT_OK)
}
