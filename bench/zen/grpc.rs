//! A Session straight to zend over gRPC, as the shim opens one but without the
//! shim's stdio: separates what the shim costs from what zend (and gRPC) cost.

use std::path::Path;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use zen_proto::v1::Frame;
use zen_proto::v1::zend_client::ZendClient;

/// Opens a session on `socket`, initializes it, then times `warmup + n`
/// round trips of `line` (a JSON-RPC request whose answer is one frame).
/// Runs on a current-thread runtime, like the shim.
pub fn round_trips(
    socket: &Path,
    line: &[u8],
    warmup: usize,
    n: usize,
) -> Result<Vec<Duration>, String> {
    let runtime = crate::mock::client_runtime()?;
    runtime.block_on(session(socket, line, warmup, n))
}

async fn session(
    socket: &Path,
    line: &[u8],
    warmup: usize,
    n: usize,
) -> Result<Vec<Duration>, String> {
    let socket = socket.to_path_buf();
    let channel = Endpoint::from_static("http://zend.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .map_err(|e| format!("cannot connect to zend: {e}"))?;
    let mut client = ZendClient::new(channel);
    let (outbound, outbound_rx) = mpsc::channel::<Frame>(32);
    let mut inbound = client
        .session(ReceiverStream::new(outbound_rx))
        .await
        .map_err(|s| format!("zend refused the session: {}", s.message()))?
        .into_inner();
    let frame = |json: Vec<u8>| Frame { json: json.into() };
    let init = format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}}"#,
        crate::procs::initialize_params()
    );
    outbound
        .send(frame(init.into_bytes()))
        .await
        .map_err(|e| e.to_string())?;
    next(&mut inbound).await?;
    outbound
        .send(frame(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let started = Instant::now();
        outbound
            .send(frame(line.to_vec()))
            .await
            .map_err(|e| e.to_string())?;
        next(&mut inbound).await?;
        let elapsed = started.elapsed();
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    Ok(samples)
}

async fn next(inbound: &mut tonic::Streaming<Frame>) -> Result<Frame, String> {
    match tokio::time::timeout(crate::procs::LINE_TIMEOUT, inbound.message()).await {
        Ok(Ok(Some(frame))) => Ok(frame),
        Ok(Ok(None)) => Err("zend ended the session".into()),
        Ok(Err(status)) => Err(format!("zend ended the session: {}", status.message())),
        Err(_) => Err("no answer from zend".into()),
    }
}
