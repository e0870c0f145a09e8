//! The CLI's side of the `Query` RPC (answered in zend by `ipc::query`).

use serde_json::Value;
use zen_proto::v1::QueryRequest;

use super::CliError;
pub use crate::ipc::query::{Answer, DASHBOARD, DOCTOR, MODELS, RELOAD, THREADS_GET, THREADS_LIST};

/// Asks the daemon behind `client` one query.
pub async fn request(
    client: &mut crate::client::Client,
    command: &str,
    args: Value,
) -> Result<Answer, CliError> {
    let reply = client
        .query(QueryRequest {
            command: command.to_owned(),
            args_json: args.to_string(),
        })
        .await
        .map_err(|status| CliError::Query(status.message().to_owned()))?
        .into_inner();
    let json = if reply.json.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&reply.json)
            .map_err(|e| CliError::Query(format!("zend sent JSON this CLI cannot read: {e}")))?
    };
    Ok(Answer {
        json,
        text: reply.text,
    })
}
