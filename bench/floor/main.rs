//! The benchmarks' floor: the smallest useful rmcp stdio MCP server.
//!
//! It answers `initialize`, lists one trivial tool (`version`, no arguments) and
//! answers it with a short text, over stdin/stdout, one process per session: what
//! any per-session stdio server written with rmcp costs at least. The benchmark
//! suite (`daemon/benches/zen`) puts every zen figure beside this one.
//!
//! The tokio runtime is current-thread and stdio goes through rmcp's
//! `stdio_pipes` (non-blocking pipes, no blocking-pool hand-off per message):
//! the cheapest setup rmcp offers. `--blocking-stdio` uses rmcp's plain `stdio()`
//! instead (the blocking-pool handles most servers use), for comparison.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};

#[derive(Clone)]
struct Floor;

impl ServerHandler for Floor {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("floor", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut schema = serde_json::Map::new();
        schema.insert("type".into(), "object".into());
        schema.insert(
            "properties".into(),
            serde_json::Value::Object(Default::default()),
        );
        Ok(ListToolsResult::with_all_items(vec![
            rmcp::model::Tool::new("version", "The server's version.", Arc::new(schema)),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name != "version" {
            return Err(McpError::invalid_params("unknown tool", None));
        }
        Ok(CallToolResponse::Complete(CallToolResult::success(vec![
            ContentBlock::text(concat!("floor ", env!("CARGO_PKG_VERSION"))),
        ])))
    }
}

fn main() -> std::process::ExitCode {
    let blocking = std::env::args().any(|a| a == "--blocking-stdio");
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return std::process::ExitCode::FAILURE;
    };
    let served = runtime.block_on(async move {
        let running = if blocking {
            Floor.serve(rmcp::transport::stdio()).await
        } else {
            Floor.serve(rmcp::transport::stdio_pipes()).await
        };
        match running {
            Ok(running) => {
                let _ = running.waiting().await;
                true
            }
            Err(_) => false,
        }
    });
    // A blocking stdin read may still be parked on the blocking pool.
    runtime.shutdown_background();
    if served {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
