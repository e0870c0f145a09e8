//! The MCP surface of zend: one rmcp server per Session stream.
//!
//! **Boundary:** this is what clients see. Only this module (and `ipc`) touch
//! rmcp types; tools get domain types (`tools::CallContext`, `ToolOutput`).
//! The client's name is recorded on the session from whichever the client
//! gives: `initialize`'s `clientInfo`, or (MCP 2026-07-28, no `initialize`)
//! `io.modelcontextprotocol/clientInfo` in a request's `_meta`, which such a
//! client sends with every request, so a session that reconnected to a new
//! zend is attributed from its first call. `tools/list` and `tools/call` go to
//! the tool registry; a failing tool becomes an `isError`
//! result the assistant can read, never a dropped session.

pub mod http;
pub mod transport;

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, DiscoverResult,
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ProgressToken, Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, RequestMetaObject, Resource, ResourceContents,
    ResourceTemplate, Role, ServerCapabilities, ServerConfig, ToolAnnotations,
};
use rmcp::service::{NotificationContext, Peer, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use tokio_util::sync::CancellationToken;

use crate::daemon::Daemon;
use crate::memory::ThreadFilter;
use crate::sessions::{OwnedSessionGuard, Session};
use crate::tools::{CallContext, NoProgress, ProgressSink};

/// JSON-RPC error codes zend sends itself.
pub mod error_code {
    pub const PARSE_ERROR: i32 = -32700;
    pub const INVALID_REQUEST: i32 = -32600;
    pub const METHOD_NOT_FOUND: i32 = -32601;
    pub const INVALID_PARAMS: i32 = -32602;
}

/// Conversation threads as MCP resources.
pub const THREADS_URI: &str = "zen://threads";

/// Short instructions sent with `initialize`; every byte here costs each
/// assistant session context, so keep it tight.
pub const INSTRUCTIONS: &str = "zen lets you consult other AI models. Tools take an optional `model` \
(call `listmodels` when unsure which exist) and return a continuation_id: pass it back to continue \
the same conversation with any tool, in any session. Long answers come in pages; each names the \
`threads` call for the next. `max_answer_tokens` caps an answer.";

/// One session's MCP server.
#[derive(Clone)]
pub struct McpServer {
    daemon: Arc<Daemon>,
    session: Arc<Session>,
    /// Lists the session for as long as rmcp keeps this server (HTTP
    /// sessions; a Session stream's task holds its own guard).
    _listed: Option<Arc<OwnedSessionGuard>>,
    /// Ends this session's `tools/list_changed` sender once rmcp drops the server.
    announcer: Arc<Announcer>,
}

/// Cancels its token when the last clone of a session's server is dropped.
#[derive(Default)]
struct Announcer {
    ended: CancellationToken,
    started: std::sync::atomic::AtomicBool,
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.ended.cancel();
    }
}

impl McpServer {
    pub fn new(daemon: Arc<Daemon>, session: Arc<Session>) -> Self {
        Self {
            daemon,
            session,
            _listed: None,
            announcer: Arc::default(),
        }
    }

    /// A server that owns its session's place in the session table.
    pub fn owning(daemon: Arc<Daemon>, listed: OwnedSessionGuard) -> Self {
        Self {
            daemon,
            session: Arc::clone(&listed.session),
            _listed: Some(Arc::new(listed)),
            announcer: Arc::default(),
        }
    }

    /// Records the client a request names in its `_meta` (MCP 2026-07-28),
    /// when it is not the one already known.
    fn note_client(&self, meta: &RequestMetaObject) {
        if !meta.contains_key(CLIENT_INFO_META) {
            return;
        }
        let Some(info) = meta.client_info() else {
            return;
        };
        self.record_client(&info.name, &info.version, "request _meta");
    }

    fn record_client(&self, name: &str, version: &str, from: &'static str) {
        if !self.session.set_client(name, version) {
            return;
        }
        // The one INFO line a session writes: who connected (the ipc layer's
        // "session opened"/"closed" lines are debug).
        tracing::info!(
            session = %self.session.id,
            client = %name,
            client_version = %version,
            shim_pid = self.session.meta.shim_pid,
            from,
            "client"
        );
    }
}

/// The `_meta` key a 2026-07-28 client names itself with on every request.
const CLIENT_INFO_META: &str = "io.modelcontextprotocol/clientInfo";

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut info = Implementation::new("zen", zen_proto::VERSION);
        info.title = Some("zen".into());
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                // A reload that changes the tools sends `notifications/tools/list_changed`.
                .enable_tool_list_changed()
                .enable_prompts()
                // No `listChanged`: zend sends no resource notifications
                // (clients list the threads when they look).
                .enable_resources()
                .build(),
        )
        .with_server_info(info)
        .with_instructions(INSTRUCTIONS)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        self.record_client(
            &request.client_info.name,
            &request.client_info.version,
            "initialize",
        );
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    /// From now on the client hears `notifications/tools/list_changed` when a
    /// reload changes the tools, until the session ends.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        use std::sync::atomic::Ordering;
        if self.announcer.started.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut tools = self.daemon.watch_tools();
        tools.borrow_and_update();
        let ended = self.announcer.ended.clone();
        let session = self.session.id.clone();
        let peer = context.peer;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = tools.changed() => if changed.is_err() { return },
                    () = ended.cancelled() => return,
                }
                if let Err(e) = peer.notify_tool_list_changed().await {
                    tracing::debug!(%session, error = %e, "cannot send tools/list_changed");
                    return;
                }
            }
        });
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, McpError> {
        self.note_client(&context.meta);
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.note_client(&context.meta);
        let settings = self.daemon.settings();
        let tools = settings
            .tools
            .iter()
            .map(|tool| {
                let spec = tool.spec();
                rmcp::model::Tool::new(
                    spec.name.clone(),
                    spec.description.clone(),
                    Arc::new(spec.input_schema.clone()),
                )
                .with_annotations(
                    ToolAnnotations::with_title(spec.title.clone())
                        .read_only(spec.read_only)
                        .open_world(spec.open_world),
                )
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        self.note_client(&context.meta);
        let prompts = crate::tools::prompts::list(&self.daemon.settings().tools)
            .into_iter()
            .map(|spec| {
                let arguments = spec
                    .arguments
                    .iter()
                    .map(|(name, description, required)| {
                        PromptArgument::new(*name)
                            .with_description(*description)
                            .with_required(*required)
                    })
                    .collect();
                let mut prompt = Prompt::new(spec.name, Some(spec.description), Some(arguments));
                prompt.title = Some(spec.title);
                prompt
            })
            .collect();
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        self.note_client(&context.meta);
        let arguments = request.arguments.unwrap_or_default();
        let text =
            crate::tools::prompts::render(&self.daemon.settings().tools, &request.name, &arguments)
                .map_err(|e| McpError::invalid_params(e.to_string(), None))?;
        Ok(GetPromptResponse::Complete(GetPromptResult::new(vec![
            PromptMessage::new_text(Role::User, text),
        ])))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.note_client(&context.meta);
        let filter = ThreadFilter {
            limit: 50,
            ..ThreadFilter::default()
        };
        let threads = self
            .daemon
            .store
            .threads()
            .list(&filter)
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        let mut resources = vec![
            Resource::new(THREADS_URI, "threads")
                .with_title("Recent zen conversations")
                .with_description("The 20 most recent conversation threads, any session or client.")
                .with_mime_type("text/plain"),
        ];
        resources.extend(threads.iter().map(|t| {
            Resource::new(format!("{THREADS_URI}/{}", t.id), t.title.clone())
                .with_description(format!("{} turns via {}", t.turn_count, t.tools.join(", ")))
                .with_mime_type("text/plain")
        }));
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        self.note_client(&context.meta);
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(format!("{THREADS_URI}/{{continuation_id}}"), "thread")
                .with_title("A zen conversation")
                .with_description("Every turn of one conversation thread.")
                .with_mime_type("text/plain"),
            ResourceTemplate::new(
                format!("{THREADS_URI}/{{continuation_id}}/turns/{{turn}}"),
                "turn",
            )
            .with_title("One turn of a zen conversation")
            .with_description("A turn's whole text, such as a long answer sent in pages.")
            .with_mime_type("text/plain"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.note_client(&context.meta);
        use crate::time::Clock;
        let uri = request.uri;
        let threads = self.daemon.store.threads();
        let text = if uri == THREADS_URI {
            let list = threads
                .list(&ThreadFilter::default())
                .map_err(|e| McpError::internal_error(e.to_string(), None))?;
            crate::memory::render::render_list(&list, crate::time::SystemClock.now())
        } else if let Some((id, turn)) = uri
            .strip_prefix(&format!("{THREADS_URI}/"))
            .and_then(|rest| rest.split_once("/turns/"))
        {
            // One turn's text exactly as stored: the whole of a long answer.
            let id: crate::memory::ThreadId =
                id.parse().map_err(|e: crate::memory::ThreadError| {
                    McpError::resource_not_found(e.to_string(), None)
                })?;
            let thread = threads
                .get(&id)
                .map_err(|e| McpError::resource_not_found(e.to_string(), None))?;
            let stored = turn
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|index| thread.turns.get(index))
                .ok_or_else(|| {
                    McpError::resource_not_found(
                        format!(
                            "thread {id} has {} turns; {uri} names none of them (turns count from 1)",
                            thread.turns.len()
                        ),
                        None,
                    )
                })?;
            stored.text.clone()
        } else if let Some(id) = uri.strip_prefix(&format!("{THREADS_URI}/")) {
            let id: crate::memory::ThreadId =
                id.parse().map_err(|e: crate::memory::ThreadError| {
                    McpError::resource_not_found(e.to_string(), None)
                })?;
            let thread = threads
                .get(&id)
                .map_err(|e| McpError::resource_not_found(e.to_string(), None))?;
            crate::memory::render::render_thread(&thread)
        } else {
            return Err(McpError::resource_not_found(
                format!(
                    "no resource {uri}; zen serves {THREADS_URI}, {THREADS_URI}/<continuation_id> and \
                     {THREADS_URI}/<continuation_id>/turns/<turn>"
                ),
                None,
            ));
        };
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(
            vec![ResourceContents::text(text, uri)],
        )))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.note_client(&context.meta);
        let name = request.name.to_string();
        // One snapshot for the whole call: a reload meanwhile changes the next call.
        let settings = self.daemon.settings();
        let Some(tool) = settings.tools.get(&name).cloned() else {
            let mut message = format!(
                "unknown tool '{name}'; available tools: {}",
                settings.tools.names().join(", ")
            );
            if let Some(note) = self.daemon.stale_note() {
                message = format!("{message} {note}");
            }
            return Err(McpError::invalid_params(message, None));
        };
        let _running = self.session.begin_call();
        let progress: Arc<dyn ProgressSink> = match context.meta.get_progress_token() {
            Some(token) => Arc::new(PeerProgress {
                peer: context.peer.clone(),
                token,
            }),
            None => Arc::new(NoProgress),
        };
        // Cancelled by the client (`notifications/cancelled` cancels the
        // request's token, and so this child) or when this call is dropped
        // (the session ended); no task per call to watch for either.
        let cancel = context.ct.child_token();
        let _cancel_on_drop = cancel.clone().drop_guard();
        let call = CallContext {
            host: Arc::clone(&self.daemon) as Arc<dyn crate::tools::Host>,
            data: self.daemon.store.clone(),
            settings,
            session: Arc::clone(&self.session),
            request_id: context.id.to_string(),
            progress,
            cancel,
            reads: Default::default(),
        };
        let arguments = request.arguments.unwrap_or_default();
        let outcome = crate::tools::execute(&tool, &call, arguments).await;
        // Text content only, never `structuredContent`: Claude Code shows its
        // model only the structured part when there is one, and the text (within
        // the result budget, see `tools::pages`) is what the assistant must read.
        // A failure while the last reload failed says so: the user's edit is not in force.
        let stale = |text: String| match self.daemon.stale_note() {
            Some(note) => format!("{text}\n\n{note}"),
            None => text,
        };
        let result = match outcome {
            Ok(output) if output.is_error => {
                CallToolResult::error(vec![ContentBlock::text(stale(output.text))])
            }
            Ok(output) => CallToolResult::success(vec![ContentBlock::text(output.text)]),
            // Cut at the shutdown deadline (a client's own cancellation gets no answer).
            Err(crate::tools::ToolError::Cancelled) if self.daemon.shutdown.is_cancelled() => {
                CallToolResult::error(vec![ContentBlock::text(STOPPED_MID_CALL)])
            }
            Err(error) => CallToolResult::error(vec![ContentBlock::text(stale(error.to_string()))]),
        };
        Ok(CallToolResponse::Complete(result))
    }
}

/// The answer to a call still running when zend's shutdown deadline passed.
const STOPPED_MID_CALL: &str = "zend was stopped before this call finished: its shutdown deadline \
     passed, so the model call was aborted (what it spent is in the ledger) and nothing was added to \
     the conversation. Please retry the call once zen is running again (your MCP client restarts it).";

/// Progress for one request, sent as `notifications/progress` on its session.
struct PeerProgress {
    peer: Peer<RoleServer>,
    token: ProgressToken,
}

impl ProgressSink for PeerProgress {
    fn progress(&self, progress: f64, total: Option<f64>, message: String) {
        let mut param = ProgressNotificationParam::new(self.token.clone(), progress);
        param.total = total;
        param.message = Some(message);
        let peer = self.peer.clone();
        tokio::spawn(async move {
            if let Err(e) = peer.notify_progress(param).await {
                tracing::debug!(error = %e, "cannot send progress");
            }
        });
    }
}

/// Why a session ended other than by the client closing it.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the session did not start: {0}")]
    Initialize(String),
}

/// Serves one MCP session over `transport` until the client closes it or `stop`
/// is cancelled (then calls still running are cancelled, every call's answer is
/// sent, and the caller ends the stream).
pub async fn serve<T, E, A>(
    server: McpServer,
    transport: T,
    stop: CancellationToken,
) -> Result<(), SessionError>
where
    T: rmcp::transport::IntoTransport<RoleServer, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let running = server
        .serve_with_ct(transport, stop.child_token())
        .await
        .map_err(|e| SessionError::Initialize(e.to_string()))?;
    let _ = running.waiting().await;
    Ok(())
}
