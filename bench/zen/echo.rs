//! The round-trip floor: a raw Unix-socket echo (one server thread, one client),
//! carrying the same bytes as the MCP request.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// A Unix-socket echo server thread and its client, kept open between round trips.
pub struct Echo {
    client: Option<UnixStream>,
    server: Option<std::thread::JoinHandle<io::Result<()>>>,
    reply: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Echo {
    pub fn start() -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("ze").tempdir_in("/tmp")?;
        let path = dir.path().join("echo.sock");
        let listener = UnixListener::bind(&path)?;
        let server = std::thread::spawn(move || -> io::Result<()> {
            let (mut stream, _) = listener.accept()?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                stream.write_all(&buf[..n])?;
            }
        });
        let client = UnixStream::connect(&path)?;
        Ok(Self {
            client: Some(client),
            server: Some(server),
            reply: Vec::new(),
            _dir: dir,
        })
    }

    /// One round trip of `message`: how long until all of it came back.
    pub fn round_trip(&mut self, message: &[u8]) -> io::Result<Duration> {
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| io::Error::other("the echo is closed"))?;
        self.reply.resize(message.len(), 0);
        let started = Instant::now();
        client.write_all(message)?;
        client.read_exact(&mut self.reply)?;
        Ok(started.elapsed())
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        drop(self.client.take());
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// Round trips of `message` through a Unix-socket echo server thread.
pub fn round_trips(message: &[u8], warmup: usize, n: usize) -> io::Result<Vec<Duration>> {
    let mut echo = Echo::start()?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let elapsed = echo.round_trip(message)?;
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    Ok(samples)
}
