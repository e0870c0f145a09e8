//! The design's floor for a cold start: the shim against a bare `zen.v1.Zend` server.
//!
//! zen's shape puts a second process behind every session: the shim opens an HTTP/2 connection
//! and a gRPC `Session` stream to zend, and the client's `initialize` crosses it both ways. The
//! floor server answers `initialize` in-process, so part of zen's cold start is the shape itself,
//! not zend's work. This server measures that part: the same tonic service, served the way zend
//! serves it (its accept loop; one worker thread, as zend
//! runs), answering each request frame at once with a canned `initialize` answer of zend's size
//! and nothing else (no MCP, no session registry, no store, no log). The shim launched against it
//! is the real one, so the row shows what the shim, HTTP/2 and the socket cost before zend does
//! anything.

use std::path::Path;
use std::pin::Pin;

use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use zen_proto::v1::zend_server::{Zend, ZendServer};
use zen_proto::v1::{
    Frame, QueryReply, QueryRequest, ShutdownReply, ShutdownRequest, StatusReply, StatusRequest,
};

/// The bare server on its own thread; stopped when dropped.
pub struct Bare {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bare {
    /// Serves `socket` (its directory is created 0700).
    pub fn start(socket: &Path) -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(dir) = socket.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the bare server's runtime: {e}"))?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::UnixListener::bind(socket)
                .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let incoming = zend::ipc::accept::Incoming::new(listener);
                let server = tonic::transport::Server::builder()
                    .add_service(ZendServer::new(BareZend))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stopped.await;
                    });
                // On the worker, as zend runs it (not in block_on's own future).
                let _ = tokio::spawn(server).await;
            });
        });
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct BareZend;

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

#[tonic::async_trait]
impl Zend for BareZend {
    type SessionStream = FrameStream;

    async fn session(
        &self,
        request: Request<Streaming<Frame>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let (outbound, outbound_rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(Ok(frame)) = inbound.next().await {
                // A request (it has an id) gets the canned answer; a notification nothing.
                let Some(id) = serde_json::from_slice::<serde_json::Value>(&frame.json)
                    .ok()
                    .and_then(|message| message.get("id").cloned())
                else {
                    continue;
                };
                let answer = canned_answer(&id);
                if outbound
                    .send(Ok(Frame {
                        json: answer.into(),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let stream = ReceiverStream::new(outbound_rx);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        Err(Status::unimplemented("bare server"))
    }

    async fn shutdown(
        &self,
        _: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownReply>, Status> {
        Err(Status::unimplemented("bare server"))
    }

    async fn query(&self, _: Request<QueryRequest>) -> Result<Response<QueryReply>, Status> {
        Err(Status::unimplemented("bare server"))
    }
}

/// An `initialize` result as long as zend's (~400 bytes), for request `id`.
fn canned_answer(id: &serde_json::Value) -> Vec<u8> {
    let mut answer = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":"2025-06-18","capabilities":{{"prompts":{{}},"resources":{{}},"tools":{{}}}},"serverInfo":{{"name":"bare","version":"0"}},"instructions":""#
    );
    while answer.len() < 380 {
        answer.push('x');
    }
    answer.push_str(r#""}}"#);
    answer.into_bytes()
}
