//! Processes: the binaries under test, private zen homes, daemons, MCP clients
//! over a child's stdio, and what /proc says about a process (RSS, CPU time).

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long any single expected line may take before the bench gives up.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// The protocol version the bench's client speaks.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// Daemons this bench started (directly or through a shim), stopped at exit.
static DAEMONS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The binaries under test.
pub struct Bins {
    pub zend: PathBuf,
    pub shim: PathBuf,
    pub floor: PathBuf,
    /// `floor_server` as cargo built it, when `floor` is another build of it.
    pub floor_default: Option<PathBuf>,
    pub profile_dir: String,
}

impl Bins {
    /// `floor_server` as `cargo build --release -p zen-floor` builds it (or
    /// `$ZEN_BENCH_FLOOR`); `zend` and `zen-shim` beside it, or in `$ZEN_BENCH_BIN_DIR`
    /// (scripts/bench.sh builds all three first, each on its own, as scripts/install.sh
    /// would, and points these two variables at them).
    pub fn locate() -> Result<Self, String> {
        // This bench runs from target/release/deps/.
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
            .unwrap_or_default();
        let built = beside.join("floor_server");
        let floor = std::env::var_os("ZEN_BENCH_FLOOR")
            .map(PathBuf::from)
            .unwrap_or_else(|| built.clone());
        // The floor as cargo builds it, when another one (scripts/bench.sh: linked like the
        // shim) is the floor: the cold start is also shown against it.
        let floor_default = (floor != built && built.is_file()).then_some(built);
        let dir = std::env::var_os("ZEN_BENCH_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or(beside);
        let bins = Self {
            zend: dir.join("zend"),
            shim: dir.join("zen-shim"),
            profile_dir: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            floor,
            floor_default,
        };
        for (what, path) in [
            ("zend", &bins.zend),
            ("zen-shim", &bins.shim),
            ("floor_server", &bins.floor),
        ] {
            if !path.is_file() {
                return Err(format!(
                    "{what} is missing at {}: run scripts/bench.sh (it builds zen-shim and zend \
                     in release before running the bench)",
                    path.display()
                ));
            }
        }
        Ok(bins)
    }
}

/// Raises the open-file limit to its hard maximum (256 sessions need ~800 fds
/// here and ~260 in zend, which inherits the limit).
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

/// Makes this process the reaper of orphaned descendants, so auto-started
/// daemons (whose parent shim has exited) can be waited for here.
pub fn become_subreaper() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// A private zen home (config, data, state and socket under one short temp dir).
pub struct Home {
    dir: tempfile::TempDir,
    /// Extra environment for every process started from this home.
    pub env: Vec<(String, String)>,
    /// Daemons started in this home (by the bench, or found through the lock file).
    daemons: Mutex<Vec<u32>>,
}

impl Home {
    pub fn new() -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("zb").tempdir_in("/tmp")?;
        std::fs::create_dir_all(dir.path().join("config"))?;
        Ok(Self {
            dir,
            env: Vec::new(),
            daemons: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("run").join("zend.sock")
    }

    /// `program` with the stripped environment MCP clients give servers.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("HOME", self.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ZEN_HOME", self.path());
        // Experiments: ZEN_BENCH_ENV_X=v gives every zen process X=v (e.g. ZEN_LOG).
        for (key, value) in std::env::vars() {
            if let Some(key) = key.strip_prefix("ZEN_BENCH_ENV_") {
                command.env(key, value);
            }
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Starts `zend serve` the way a shim does (auto-started, no idle exit) and
    /// waits until its socket accepts; returns the pid and how long that took.
    pub fn start_daemon(&self, bins: &Bins) -> io::Result<(u32, Duration)> {
        let started = Instant::now();
        let child = self
            .command(&bins.zend)
            .args(["serve", "--auto-started", "--idle-timeout", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr_sink())
            .spawn()?;
        let pid = child.id();
        register_daemon(pid);
        if let Ok(mut daemons) = self.daemons.lock() {
            daemons.push(pid);
        }
        // Reaped in stop_daemon (we are its parent).
        std::mem::forget(child);
        let socket = self.socket();
        let lock = self.path().join("run/zend.lock");
        let ours = pid.to_string();
        loop {
            // Ready: the socket accepts and the lock file names this daemon
            // (zend writes it just after binding), not an earlier one.
            if std::os::unix::net::UnixStream::connect(&socket).is_ok()
                && std::fs::read_to_string(&lock).is_ok_and(|text| text.trim() == ours)
            {
                return Ok((pid, started.elapsed()));
            }
            if started.elapsed() > LINE_TIMEOUT || !alive(pid) {
                return Err(io::Error::other(format!(
                    "zend did not answer at {} (run with ZEN_BENCH_VERBOSE=1 to see its stderr)",
                    socket.display()
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The pid in the lock file (the daemon that holds or last held it).
    /// zend writes it just after binding its socket, so a client that has
    /// just connected may find it empty: this waits up to a second for it.
    pub fn daemon_pid(&self) -> Option<u32> {
        let path = self.path().join("run/zend.lock");
        let until = Instant::now() + Duration::from_secs(1);
        loop {
            let pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse().ok());
            if pid.is_some() || Instant::now() > until {
                if let (Some(pid), Ok(mut daemons)) = (pid, self.daemons.lock())
                    && !daemons.contains(&pid)
                {
                    daemons.push(pid);
                    register_daemon(pid);
                }
                return pid;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops every daemon started in this home (SIGTERM, then SIGKILL after
    /// 10 s) and reaps it, so that the home can be removed.
    pub fn stop_daemon(&self) {
        if !self.socket().exists() && self.daemons.lock().is_ok_and(|d| d.is_empty()) {
            return;
        }
        self.daemon_pid();
        let pids = self.daemons.lock().map(|d| d.clone()).unwrap_or_default();
        for pid in pids {
            stop_daemon(pid);
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // Any zend of this home, including one the bench never saw (a shim's
        // auto-start), then the directory; again if something re-created it.
        for _ in 0..5 {
            self.stop_daemon();
            for pid in processes_of(self.path()) {
                stop_daemon(pid);
            }
            let _ = std::fs::remove_dir_all(self.path());
            if !self.path().exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// zend processes whose environment has `ZEN_HOME=<home>`.
fn processes_of(home: &Path) -> Vec<u32> {
    let needle = format!("ZEN_HOME={}", home.display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if !is_zend(pid) {
            continue;
        }
        if std::fs::read(entry.path().join("environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        {
            pids.push(pid);
        }
    }
    pids
}

pub fn register_daemon(pid: u32) {
    if let Ok(mut daemons) = DAEMONS.lock()
        && !daemons.contains(&pid)
    {
        daemons.push(pid);
    }
}

/// Stops every daemon this bench started that is still running.
pub fn stop_all_daemons() {
    let pids = DAEMONS.lock().map(|d| d.clone()).unwrap_or_default();
    for pid in pids {
        stop_daemon(pid);
    }
}

fn is_zend(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            cmdline
                .split(|b| *b == 0)
                .next()
                .is_some_and(|argv0| argv0.ends_with(b"zend"))
        })
        .unwrap_or(false)
}

/// Whether `pid` runs (exists and is not a zombie); reaps it if it is our child.
///
/// A multi-threaded process whose main thread has exited shows a zombie main thread while its
/// other threads still finish (zend's store thread may be in an `fdatasync`); until the last one
/// is gone its files, and so zend's lock on its lock file, are still held. Such a process counts
/// as alive: a zend started right after it would otherwise find the lock taken and exit.
pub fn alive(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on a pid; a non-child just yields ECHILD.
    let reaped = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    if reaped == pid as libc::pid_t {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    if !state.starts_with(['Z', 'X']) {
        return true;
    }
    // A zombie main thread: alive while any other thread is left.
    std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| tasks.count() > 1)
}

pub fn stop_daemon(pid: u32) {
    if !alive(pid) || !is_zend(pid) {
        return;
    }
    signal(pid, libc::SIGTERM);
    let until = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if Instant::now() > until {
            signal(pid, libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(50));
            alive(pid);
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions; the pid was checked to be a zend.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

fn stderr_sink() -> Stdio {
    if std::env::var_os("ZEN_BENCH_VERBOSE").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// Reads newline-terminated lines from a child's stdout, with a timeout.
pub struct LineReader {
    out: ChildStdout,
    buf: Vec<u8>,
    start: usize,
}

impl LineReader {
    fn new(out: ChildStdout) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
        }
    }

    /// The next line, without its newline.
    pub fn read_line(&mut self, timeout: Duration) -> io::Result<&[u8]> {
        let deadline = Instant::now() + timeout;
        let mut scanned = self.start;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|b| *b == b'\n') {
                let end = scanned + pos;
                let line_start = self.start;
                self.start = end + 1;
                return Ok(&self.buf[line_start..end]);
            }
            scanned = self.buf.len();
            if self.start > 0 && self.start == self.buf.len() {
                self.buf.clear();
                self.start = 0;
                scanned = 0;
            } else if self.start > 32 * 1024 {
                self.buf.drain(..self.start);
                scanned -= self.start;
                self.start = 0;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no line from the child",
                ));
            }
            let mut pfd = libc::pollfd {
                fd: self.out.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(60_000) as i32) };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if ready == 0 {
                continue;
            }
            let len = self.buf.len();
            self.buf.resize(len + 16 * 1024, 0);
            let read = self.out.read(&mut self.buf[len..]);
            match read {
                Ok(0) => {
                    self.buf.truncate(len);
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the child closed its stdout",
                    ));
                }
                Ok(n) => self.buf.truncate(len + n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.buf.truncate(len),
                Err(e) => {
                    self.buf.truncate(len);
                    return Err(e);
                }
            }
        }
    }
}

/// An MCP client talking newline-delimited JSON-RPC to a child's stdio.
pub struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    pub out: LineReader,
    next_id: u64,
    send_buf: Vec<u8>,
}

impl Mcp {
    pub fn spawn(mut command: Command) -> io::Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr_sink())
            .spawn()?;
        let stdin = child.stdin.take();
        let out = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        Ok(Self {
            child,
            stdin,
            out: LineReader::new(out),
            next_id: 1,
            send_buf: Vec::with_capacity(4096),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, method: &str, params: Option<&str>) -> io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_buf.clear();
        write!(
            self.send_buf,
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}""#
        )?;
        if let Some(params) = params {
            write!(self.send_buf, r#","params":{params}"#)?;
        }
        self.send_buf.extend_from_slice(b"}\n");
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("stdin closed"))?;
        stdin.write_all(&self.send_buf)?;
        Ok(id)
    }

    pub fn notify(&mut self, method: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("stdin closed"))?;
        writeln!(stdin, r#"{{"jsonrpc":"2.0","method":"{method}"}}"#)
    }

    /// Sends a request and returns its response line (notifications that
    /// arrive first are skipped). The id check parses JSON; callers that time
    /// the round trip use [`Mcp::request_timed`], which stops the clock first.
    pub fn request(&mut self, method: &str, params: Option<&str>) -> io::Result<String> {
        self.request_timed(method, params).map(|(line, _)| line)
    }

    /// Like [`Mcp::request`], with the time from just before the write to the
    /// arrival of the response line.
    pub fn request_timed(
        &mut self,
        method: &str,
        params: Option<&str>,
    ) -> io::Result<(String, Duration)> {
        let started = Instant::now();
        let id = self.send(method, params)?;
        loop {
            let line = self.out.read_line(LINE_TIMEOUT)?;
            let elapsed = started.elapsed();
            let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
                io::Error::other(format!(
                    "non-JSON line from the server ({e}): {}",
                    String::from_utf8_lossy(line)
                ))
            })?;
            if value.get("method").is_none() && value.get("id") == Some(&id.into()) {
                return Ok((String::from_utf8_lossy(line).into_owned(), elapsed));
            }
        }
    }

    /// The MCP handshake; returns the initialize response line.
    pub fn initialize(&mut self) -> io::Result<String> {
        let line = self.request("initialize", Some(&initialize_params()))?;
        if !line.contains(r#""result""#) {
            return Err(io::Error::other(format!("initialize failed: {line}")));
        }
        self.notify("notifications/initialized")?;
        Ok(line)
    }

    /// Closes stdin and waits (up to 10 s, then kills) for the child to exit.
    pub fn close(mut self) {
        self.stdin.take();
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > until => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn initialize_params() -> String {
    format!(
        r#"{{"protocolVersion":"{PROTOCOL_VERSION}","capabilities":{{}},"clientInfo":{{"name":"zen-bench","version":"1.0"}}}}"#
    )
}

/// Spawns `command` and completes `initialize`; returns the client and the
/// time from just before the spawn to the initialize answer.
pub fn cold_start(command: Command) -> io::Result<(Mcp, Duration)> {
    let started = Instant::now();
    let mut client = Mcp::spawn(command)?;
    let id = client.send("initialize", Some(&initialize_params()))?;
    let line = client.out.read_line(LINE_TIMEOUT)?;
    let elapsed = started.elapsed();
    let expected = format!(r#""id":{id}"#);
    let line = String::from_utf8_lossy(line).into_owned();
    if !line.contains(&expected) || !line.contains(r#""result""#) {
        return Err(io::Error::other(format!(
            "unexpected answer to initialize: {line}"
        )));
    }
    client.notify("notifications/initialized")?;
    Ok((client, elapsed))
}

/// A `/proc/<pid>/status` field in bytes (VmRSS, VmHWM, ...).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, field)
}

/// Proportional set size (shared pages divided among their users), in bytes.
pub fn pss(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_field(&rollup, "Pss")
}

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    })
}

/// CPU time a process has used so far, in nanoseconds: the sum of its live
/// threads' scheduler run time (/proc/<pid>/task/*/schedstat, ns resolution),
/// or utime+stime from /proc/<pid>/stat (clock ticks) where schedstat is absent.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    cpu_ns_of(pid, |_| true)
}

/// CPU time of the threads of `pid` whose name (`comm`) `counted` accepts, in ns.
pub fn cpu_ns_of(pid: u32, counted: impl Fn(&str) -> bool) -> Option<u64> {
    let mut total = 0u64;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !counted(name.trim_end()) {
                found = true;
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat"))
                && let Some(ns) = text
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            {
                total += ns;
                found = true;
            }
        }
    }
    if found {
        return Some(total);
    }
    cpu_ticks_ns(pid)
}

/// Context switches (voluntary + involuntary) of a process's live threads.
pub fn ctx_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(rest) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += rest.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some(total)
}

/// utime+stime of the whole process (exited threads included), in ns.
pub fn cpu_ticks_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the comm field: state is index 0, utime 11, stime 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime + stime) * 1_000_000_000 / hz)
}

/// Runs `command` to completion, killing it after `timeout`; returns stdout.
pub fn run_with_timeout(mut command: Command, timeout: Duration) -> Result<String, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_to_string(&mut text);
        }
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(err) = stderr.as_mut() {
            let _ = err.read_to_string(&mut text);
        }
        text
    });
    let until = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > until => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{command:?} took longer than {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{command:?} failed ({status}): {}",
            err.lines().last().unwrap_or("")
        ))
    }
}

/// The thread id in a zen answer's footer ("continuation_id: <id> (<n> turns left) …").
pub fn continuation_id(text: &str) -> Option<String> {
    text.split("continuation_id: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// Whether the ELF executable at `path` is statically linked: it asks for no program
/// interpreter (no `PT_INTERP` program header). `None` if it is not a 64-bit
/// little-endian ELF file (e.g. on macOS).
pub fn statically_linked(path: &Path) -> Option<bool> {
    // The ELF header and the program headers sit at the start of the file (zend is 18 MB).
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).ok()?, 64 * 1024),
        &mut bytes,
    )
    .ok()?;
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let (phoff, phentsize, phnum) = (
        usize::try_from(u64_at(0x20)?).ok()?,
        usize::from(u16_at(0x36)?),
        usize::from(u16_at(0x38)?),
    );
    const PT_INTERP: u32 = 3;
    let mut interp = false;
    for i in 0..phnum {
        interp |= u32_at(phoff + i * phentsize)? == PT_INTERP;
    }
    Some(!interp)
}

/// How the executable at `path` is linked, in words.
pub fn linkage(path: &Path) -> &'static str {
    match statically_linked(path) {
        Some(true) => "statically linked",
        Some(false) => "dynamically linked",
        None => "linkage unknown",
    }
}
