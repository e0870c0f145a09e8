//! zen-shim: what an MCP client launches. It frames bytes and nothing else.
//!
//! Each newline-terminated line on stdin becomes one `Frame` on a `Zend.Session`
//! stream; each frame from the daemon becomes one line on stdout. The shim never
//! parses JSON-RPC (invariant 1): validation, errors and all MCP logic live in
//! zend. If no daemon answers, the shim starts `zend serve` detached and waits for
//! its socket (see [`connect`]). Stdout belongs to the protocol: diagnostics go to
//! stderr, and only when something goes wrong or `ZEN_SHIM_DEBUG` is set.
//!
//! Exit codes: 0 when stdin ended and the daemon finished answering; 1 when the
//! daemon could not be reached or went away mid-session.

mod connect;

use std::process::ExitCode;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use zen_proto::v1::Frame;
use zen_proto::v1::zend_client::ZendClient;

/// Frames buffered from stdin while the daemon is busy. Small: a client waits
/// for answers anyway, and backpressure on stdin is the right signal.
const OUTBOUND_CAPACITY: usize = 32;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("zen-shim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run());
    // The stdin reader sits in a blocking read that nothing can interrupt;
    // waiting for it would keep the shim alive after its session has ended.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("zen-shim: {reason}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let socket = zen_proto::paths::socket_path();
    let channel = connect::connect_or_start(&socket).await?;
    let mut client = ZendClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);

    let (outbound, outbound_rx) = mpsc::channel::<Frame>(OUTBOUND_CAPACITY);
    tokio::spawn(pump_stdin(outbound));

    let mut request = tonic::Request::new(ReceiverStream::new(outbound_rx));
    add_session_metadata(request.metadata_mut());
    let mut inbound = client
        .session(request)
        .await
        .map_err(|status| {
            format!(
                "zend refused the session at {}: {}",
                socket.display(),
                status.message()
            )
        })?
        .into_inner();

    let mut stdout = tokio::io::stdout();
    loop {
        match inbound.message().await {
            Ok(Some(frame)) => {
                let mut line = Vec::with_capacity(frame.json.len() + 1);
                line.extend_from_slice(&frame.json);
                line.push(b'\n');
                if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                    // The client closed our stdout: nobody is listening any more.
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(status) => {
                return Err(format!(
                    "lost the connection to zend ({}); restart your MCP client's zen server",
                    status.message()
                ));
            }
        }
    }
}

/// Sends each stdin line as one frame; dropping `outbound` at EOF half-closes the
/// stream, and the daemon ends it once every reply is written.
async fn pump_stdin(outbound: mpsc::Sender<Frame>) {
    let mut stdin = BufReader::with_capacity(64 * 1024, tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                if line.is_empty() {
                    continue;
                }
                let frame = Frame {
                    json: line.clone().into(),
                };
                if outbound.send(frame).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn add_session_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    use tonic::metadata::{BinaryMetadataValue, MetadataValue};
    use zen_proto::meta;
    metadata.insert(
        meta::SHIM_VERSION,
        MetadataValue::from_static(zen_proto::VERSION),
    );
    metadata.insert(meta::SHIM_PID, MetadataValue::from(std::process::id()));
    metadata.insert(
        meta::CLIENT_PID,
        MetadataValue::from(std::os::unix::process::parent_id()),
    );
    if let Ok(cwd) = std::env::current_dir() {
        use std::os::unix::ffi::OsStrExt;
        metadata.insert_bin(
            meta::CWD_BIN,
            BinaryMetadataValue::from_bytes(cwd.as_os_str().as_bytes()),
        );
    }
}
