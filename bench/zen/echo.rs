//! The round-trip floor: a raw Unix-socket echo (one server thread, one client),
//! carrying the same bytes as the MCP request.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Round trips of `message` through a Unix-socket echo server thread.
pub fn round_trips(message: &[u8], warmup: usize, n: usize) -> io::Result<Vec<Duration>> {
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
    let mut client = UnixStream::connect(&path)?;
    let mut reply = vec![0u8; message.len()];
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let started = Instant::now();
        client.write_all(message)?;
        client.read_exact(&mut reply)?;
        let elapsed = started.elapsed();
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    drop(client);
    let _ = server.join();
    Ok(samples)
}
