//! `zend service install | uninstall | status`: run zend under the user's
//! service manager instead of letting the first shim start it.
//!
//! Linux gets two systemd user units: `zend.socket` binds the socket path the
//! shims already use (so the first connection starts zend, see `activation`),
//! and `zend.service` runs `zend serve --service`. macOS gets a LaunchAgent that
//! keeps `zend serve --service` running. Either way a marker file sits beside
//! the socket (`zen_proto::paths::MANAGED_MARKER_NAME`): a shim that finds it
//! waits for the service's zend instead of starting a second one.
//!
//! Everything is planned first ([`plan`]: files and commands, no side effects),
//! then shown (`--print`) or applied through a [`Runner`], the seam tests use
//! so they never touch the real systemd or launchd.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::locations::{Locations, Overrides};

/// The service managers zend can install itself into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Manager {
    Systemd,
    Launchd,
}

impl Manager {
    /// The manager of this platform.
    pub fn native() -> Self {
        if cfg!(target_os = "macos") {
            Self::Launchd
        } else {
            Self::Systemd
        }
    }
}

/// The launchd label (and plist file name).
pub const LAUNCHD_LABEL: &str = "io.github.zen-mcp.zend";
pub const SYSTEMD_SERVICE: &str = "zend.service";
pub const SYSTEMD_SOCKET: &str = "zend.socket";

/// What the service runs and where its files go; resolved by the caller.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Absolute path of the `zend` binary.
    pub zend: PathBuf,
    /// The socket the shims connect to.
    pub socket: PathBuf,
    /// The user's home directory (unit and plist locations).
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME`, when set (systemd looks for user units there).
    pub xdg_config_home: Option<PathBuf>,
    /// zen's state directory (launchd writes zend's stderr there).
    pub state_dir: PathBuf,
    /// Variables the service must see to find the same directories (`ZEN_HOME`, ...).
    pub environment: Vec<(String, String)>,
    /// The user id (launchd's `gui/<uid>` domain).
    pub uid: u32,
}

impl ServiceSpec {
    /// The spec for this user and this `zend` binary: directories moved by
    /// flags or `ZEN_*` variables are passed on to the service as variables.
    pub fn for_this_user(
        locations: &Locations,
        overrides: &Overrides,
    ) -> Result<Self, ServiceError> {
        let zend = std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .map_err(ServiceError::Exe)?;
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()))
            .ok_or(ServiceError::NoHome)?;
        let xdg_config_home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let mut environment = Vec::new();
        let moved = [
            ("ZEN_HOME", &overrides.home),
            ("ZEN_CONFIG_DIR", &overrides.config_dir),
            ("ZEN_DATA_DIR", &overrides.data_dir),
            ("ZEN_STATE_DIR", &overrides.state_dir),
            ("ZEN_RUNTIME_DIR", &overrides.runtime_dir),
        ];
        for (key, dir) in moved {
            if let Some(dir) = dir {
                environment.push((key.to_owned(), absolute(dir).to_string_lossy().into_owned()));
            }
        }
        if let Some(socket) =
            std::env::var_os(zen_proto::paths::SOCKET_ENV).filter(|s| !s.is_empty())
        {
            environment.push((
                zen_proto::paths::SOCKET_ENV.to_owned(),
                absolute(Path::new(&socket)).to_string_lossy().into_owned(),
            ));
        }
        Ok(Self {
            zend,
            socket: absolute(&locations.socket_path()),
            home,
            xdg_config_home,
            state_dir: absolute(&locations.state_dir),
            environment,
            uid: zen_proto::paths::current_uid(),
        })
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub contents: String,
}

/// Files and commands of one manager, derived from a [`ServiceSpec`].
#[derive(Debug, Clone)]
pub struct Plan {
    pub manager: Manager,
    pub files: Vec<PlannedFile>,
    /// The socket the shims use, and the marker beside it.
    pub socket: PathBuf,
    pub marker: PathBuf,
    /// Commands that install (after the files are written).
    pub install: Vec<Vec<String>>,
    /// Commands that uninstall (before the files are removed); failures are ignored.
    pub uninstall: Vec<Vec<String>>,
    /// Commands run after the files are removed.
    pub after_uninstall: Vec<Vec<String>>,
    /// A command whose output `status` shows.
    pub status: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot find the zend binary to run: {0}")]
    Exe(#[source] std::io::Error),
    #[error("cannot find your home directory (is HOME set?)")]
    NoHome,
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run `{command}`: {source}; is {program} installed?")]
    Spawn {
        command: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

/// Runs the manager's commands (`systemctl`, `launchctl`); tests substitute one.
pub trait Runner {
    fn run(&self, argv: &[String]) -> std::io::Result<Output>;
}

/// Runs commands for real, found on PATH.
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, argv: &[String]) -> std::io::Result<Output> {
        let Some((program, args)) = argv.split_first() else {
            return Err(std::io::Error::other("empty command"));
        };
        std::process::Command::new(program).args(args).output()
    }
}

/// Plans the files and commands for `manager`.
pub fn plan(manager: Manager, spec: &ServiceSpec) -> Plan {
    let marker = zen_proto::paths::managed_marker(&spec.socket);
    let argv = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    match manager {
        Manager::Systemd => {
            let dir = spec
                .xdg_config_home
                .clone()
                .unwrap_or_else(|| spec.home.join(".config"))
                .join("systemd/user");
            Plan {
                manager,
                files: vec![
                    PlannedFile {
                        path: dir.join(SYSTEMD_SOCKET),
                        contents: systemd_socket_unit(spec),
                    },
                    PlannedFile {
                        path: dir.join(SYSTEMD_SERVICE),
                        contents: systemd_service_unit(spec),
                    },
                ],
                socket: spec.socket.clone(),
                marker,
                install: vec![
                    argv(&["systemctl", "--user", "daemon-reload"]),
                    argv(&["systemctl", "--user", "enable", "--now", SYSTEMD_SOCKET]),
                ],
                uninstall: vec![argv(&[
                    "systemctl",
                    "--user",
                    "disable",
                    "--now",
                    SYSTEMD_SOCKET,
                    SYSTEMD_SERVICE,
                ])],
                after_uninstall: vec![argv(&["systemctl", "--user", "daemon-reload"])],
                status: argv(&[
                    "systemctl",
                    "--user",
                    "--no-pager",
                    "status",
                    SYSTEMD_SOCKET,
                    SYSTEMD_SERVICE,
                ]),
            }
        }
        Manager::Launchd => {
            let path = spec
                .home
                .join("Library/LaunchAgents")
                .join(format!("{LAUNCHD_LABEL}.plist"));
            let domain = format!("gui/{}", spec.uid);
            let target = format!("{domain}/{LAUNCHD_LABEL}");
            let plist = path.to_string_lossy().into_owned();
            Plan {
                manager,
                files: vec![PlannedFile {
                    path,
                    contents: launchd_plist(spec),
                }],
                socket: spec.socket.clone(),
                marker,
                // bootout first so a re-install picks up the new plist.
                install: vec![
                    argv(&["launchctl", "bootout", &target]),
                    argv(&["launchctl", "bootstrap", &domain, &plist]),
                ],
                uninstall: vec![argv(&["launchctl", "bootout", &target])],
                after_uninstall: vec![],
                status: argv(&["launchctl", "print", &target]),
            }
        }
    }
}

fn systemd_socket_unit(spec: &ServiceSpec) -> String {
    format!(
        "# Written by `zend service install`; remove with `zend service uninstall`.\n\
         [Unit]\n\
         Description=zen daemon socket (zend)\n\
         \n\
         [Socket]\n\
         ListenStream={socket}\n\
         SocketMode=0600\n\
         DirectoryMode=0700\n\
         \n\
         [Install]\n\
         WantedBy=sockets.target\n",
        socket = spec.socket.to_string_lossy().replace('%', "%%"),
    )
}

fn systemd_service_unit(spec: &ServiceSpec) -> String {
    let mut environment = String::new();
    for (key, value) in &spec.environment {
        environment.push_str(&format!(
            "Environment={}\n",
            systemd_quote(&format!("{key}={value}"))
        ));
    }
    format!(
        "# Written by `zend service install`; remove with `zend service uninstall`.\n\
         [Unit]\n\
         Description=zen daemon: lets AI coding assistants consult other models over MCP\n\
         Requires={SYSTEMD_SOCKET}\n\
         After={SYSTEMD_SOCKET}\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={zend} serve --service\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         {environment}\
         Restart=on-failure\n\
         TimeoutStopSec=30\n\
         \n\
         [Install]\n\
         Also={SYSTEMD_SOCKET}\n",
        zend = systemd_quote(&spec.zend.to_string_lossy()),
    )
}

/// A systemd word: double-quoted, with `\`, `"` and the specifier `%` escaped.
fn systemd_quote(word: &str) -> String {
    let escaped = word
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("\"{escaped}\"")
}

fn launchd_plist(spec: &ServiceSpec) -> String {
    let mut environment = String::new();
    if !spec.environment.is_empty() {
        environment.push_str("    <key>EnvironmentVariables</key>\n    <dict>\n");
        for (key, value) in &spec.environment {
            environment.push_str(&format!(
                "        <key>{}</key>\n        <string>{}</string>\n",
                xml_escape(key),
                xml_escape(value)
            ));
        }
        environment.push_str("    </dict>\n");
    }
    let stderr = spec.state_dir.join("launchd.stderr.log");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by `zend service install`; remove with `zend service uninstall`. -->
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{LAUNCHD_LABEL}</string>
    <key>ProgramArguments</key>
    <array>
        <string>{zend}</string>
        <string>serve</string>
        <string>--service</string>
    </array>
{environment}    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <true/>
    <key>ProcessType</key>
    <string>Background</string>
    <key>StandardErrorPath</key>
    <string>{stderr}</string>
</dict>
</plist>
"#,
        zend = xml_escape(&spec.zend.to_string_lossy()),
        stderr = xml_escape(&stderr.to_string_lossy()),
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The command that restarts a service-managed zend (what a key set in the
/// service's own environment needs; `.env` edits need only a reload).
pub fn restart_command(manager: Manager) -> String {
    match manager {
        Manager::Systemd => "systemctl --user restart zend".to_owned(),
        Manager::Launchd => format!(
            "launchctl kickstart -k gui/{}/{LAUNCHD_LABEL}",
            zen_proto::paths::current_uid()
        ),
    }
}

/// Writes the marker that tells shims a service owns zend at `socket`.
/// Best effort: without it, a shim may start a zend of its own, which then
/// finds the service's lock and exits, so nothing breaks.
///
/// The socket's directory is created 0700 when missing, else only checked:
/// it may be one the user named (`ZEN_SOCKET=~/zen.sock`), never to be
/// changed; zend tightens its own when it starts.
pub fn mark_managed(socket: &Path) {
    let marker = zen_proto::paths::managed_marker(socket);
    let written = marker
        .parent()
        .map_or(Ok(()), |dir| {
            zen_proto::paths::prepare_dir(dir, zen_proto::paths::Chosen::ByUser)
        })
        .and_then(|()| std::fs::write(&marker, b"zend is run by a service manager\n"));
    if let Err(e) = written {
        tracing::warn!(marker = %marker.display(), error = %e, "cannot write the service marker");
    }
}

fn command_line(argv: &[String]) -> String {
    argv.join(" ")
}

fn run_checked(runner: &dyn Runner, argv: &[String]) -> Result<Output, ServiceError> {
    let output = runner.run(argv).map_err(|source| ServiceError::Spawn {
        command: command_line(argv),
        program: argv.first().cloned().unwrap_or_default(),
        source,
    })?;
    Ok(output)
}

/// Writes the files and runs the install commands (or, with `print`, only says so).
pub fn install(
    plan: &Plan,
    print: bool,
    runner: &dyn Runner,
    out: &mut dyn Write,
) -> Result<u8, ServiceError> {
    for file in &plan.files {
        if print {
            let _ = writeln!(out, "# would write {}", file.path.display());
            let _ = writeln!(out, "{}", file.contents);
        } else {
            write_file(&file.path, &file.contents)?;
            let _ = writeln!(out, "wrote {}", file.path.display());
        }
    }
    if print {
        let _ = writeln!(out, "# would create the marker {}", plan.marker.display());
    } else {
        mark_managed(&plan.socket);
    }
    for (i, argv) in plan.install.iter().enumerate() {
        if print {
            let _ = writeln!(out, "# would run: {}", command_line(argv));
            continue;
        }
        let output = run_checked(runner, argv)?;
        // launchd's leading bootout fails when nothing was loaded: expected.
        let tolerated = plan.manager == Manager::Launchd && i == 0;
        if !output.status.success() && !tolerated {
            return Err(ServiceError::Failed {
                command: command_line(argv),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let _ = writeln!(out, "ran {}", command_line(argv));
    }
    if !print {
        let _ = writeln!(
            out,
            "zend now runs under {}; shims connect to {}",
            manager_name(plan.manager),
            plan.socket.display()
        );
    }
    Ok(0)
}

/// Stops and disables the service, removes its files and the marker.
pub fn uninstall(
    plan: &Plan,
    print: bool,
    runner: &dyn Runner,
    out: &mut dyn Write,
) -> Result<u8, ServiceError> {
    for argv in &plan.uninstall {
        if print {
            let _ = writeln!(out, "# would run: {}", command_line(argv));
            continue;
        }
        match runner.run(argv) {
            Ok(output) if output.status.success() => {
                let _ = writeln!(out, "ran {}", command_line(argv));
            }
            Ok(output) => {
                let _ = writeln!(
                    out,
                    "`{}` failed (ignored): {}",
                    command_line(argv),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            Err(e) => {
                let _ = writeln!(out, "cannot run `{}` (ignored): {e}", command_line(argv));
            }
        }
    }
    let paths = plan
        .files
        .iter()
        .map(|f| &f.path)
        .chain(std::iter::once(&plan.marker));
    for path in paths {
        if print {
            let _ = writeln!(out, "# would remove {}", path.display());
            continue;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {
                let _ = writeln!(out, "removed {}", path.display());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ServiceError::Remove {
                    path: path.clone(),
                    source,
                });
            }
        }
    }
    for argv in &plan.after_uninstall {
        if print {
            let _ = writeln!(out, "# would run: {}", command_line(argv));
        } else if run_checked(runner, argv).is_ok() {
            let _ = writeln!(out, "ran {}", command_line(argv));
        }
    }
    Ok(0)
}

/// Exit code of `status` when the service is not installed.
pub const EXIT_NOT_INSTALLED: u8 = 3;

/// Says which files are installed and shows the manager's own status.
pub fn status(plan: &Plan, runner: &dyn Runner, out: &mut dyn Write) -> Result<u8, ServiceError> {
    let mut installed = true;
    for file in &plan.files {
        let state = match std::fs::read_to_string(&file.path) {
            Ok(text) if text == file.contents => "installed",
            Ok(_) => "installed (differs from what `zend service install` would write now)",
            Err(_) => {
                installed = false;
                "missing"
            }
        };
        let _ = writeln!(out, "{:<10} {}", state, file.path.display());
    }
    let marker = if plan.marker.exists() {
        "present"
    } else {
        "absent"
    };
    let _ = writeln!(out, "marker     {} ({marker})", plan.marker.display());
    if !installed {
        let _ = writeln!(
            out,
            "zend is not installed as a {} service; `zend service install` does it",
            manager_name(plan.manager)
        );
        return Ok(EXIT_NOT_INSTALLED);
    }
    let output = run_checked(runner, &plan.status)?;
    let _ = out.write_all(&output.stdout);
    let _ = out.write_all(&output.stderr);
    Ok(0)
}

fn manager_name(manager: Manager) -> &'static str {
    match manager {
        Manager::Systemd => "systemd user",
        Manager::Launchd => "launchd",
    }
}

fn write_file(path: &Path, contents: &str) -> Result<(), ServiceError> {
    let error = |source| ServiceError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(path, contents).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::os::unix::process::ExitStatusExt;

    fn spec(home: &Path) -> ServiceSpec {
        ServiceSpec {
            zend: PathBuf::from("/opt/zen bin/zend"),
            socket: home.join("run/zend.sock"),
            home: home.to_path_buf(),
            xdg_config_home: None,
            state_dir: home.join("state"),
            environment: vec![("ZEN_HOME".into(), "/srv/zen 100%".into())],
            uid: 1000,
        }
    }

    /// Records commands instead of running them.
    #[derive(Default)]
    struct Recorder {
        commands: RefCell<Vec<String>>,
    }

    impl Runner for Recorder {
        fn run(&self, argv: &[String]) -> std::io::Result<Output> {
            self.commands.borrow_mut().push(argv.join(" "));
            Ok(Output {
                status: std::process::ExitStatus::from_raw(0),
                stdout: b"active\n".to_vec(),
                stderr: Vec::new(),
            })
        }
    }

    #[test]
    fn systemd_units_listen_on_the_shims_socket_and_run_serve_service() {
        let home = Path::new("/home/u");
        let plan = plan(Manager::Systemd, &spec(home));
        assert_eq!(
            plan.files[0].path,
            PathBuf::from("/home/u/.config/systemd/user/zend.socket")
        );
        assert_eq!(
            plan.files[0].contents,
            "# Written by `zend service install`; remove with `zend service uninstall`.\n\
             [Unit]\nDescription=zen daemon socket (zend)\n\n\
             [Socket]\nListenStream=/home/u/run/zend.sock\nSocketMode=0600\nDirectoryMode=0700\n\n\
             [Install]\nWantedBy=sockets.target\n"
        );
        let service = &plan.files[1].contents;
        assert!(
            service.contains("ExecStart=\"/opt/zen bin/zend\" serve --service\nExecReload=/bin/kill -HUP $MAINPID\n"),
            "{service}"
        );
        assert!(
            service.contains("Environment=\"ZEN_HOME=/srv/zen 100%%\"\n"),
            "{service}"
        );
        assert!(service.contains("Requires=zend.socket"), "{service}");
        assert_eq!(plan.marker, PathBuf::from("/home/u/run/zend.managed"));
    }

    #[test]
    fn xdg_config_home_moves_the_units() {
        let mut spec = spec(Path::new("/home/u"));
        spec.xdg_config_home = Some(PathBuf::from("/xdg"));
        let plan = plan(Manager::Systemd, &spec);
        assert_eq!(
            plan.files[1].path,
            PathBuf::from("/xdg/systemd/user/zend.service")
        );
    }

    #[test]
    fn launchd_plist_keeps_zend_alive_and_escapes_xml() {
        let mut spec = spec(Path::new("/Users/u"));
        spec.environment = vec![("ZEN_HOME".into(), "/a&b".into())];
        let plan = plan(Manager::Launchd, &spec);
        assert_eq!(
            plan.files[0].path,
            PathBuf::from("/Users/u/Library/LaunchAgents/io.github.zen-mcp.zend.plist")
        );
        let plist = &plan.files[0].contents;
        for needle in [
            "<string>io.github.zen-mcp.zend</string>",
            "<string>/opt/zen bin/zend</string>\n        <string>serve</string>\n        <string>--service</string>",
            "<key>ZEN_HOME</key>\n        <string>/a&amp;b</string>",
            "<key>KeepAlive</key>\n    <true/>",
        ] {
            assert!(plist.contains(needle), "{needle} not in {plist}");
        }
        assert_eq!(
            plan.install[1],
            vec![
                "launchctl",
                "bootstrap",
                "gui/1000",
                "/Users/u/Library/LaunchAgents/io.github.zen-mcp.zend.plist"
            ]
        );
    }

    #[test]
    fn print_writes_nothing_and_runs_nothing() {
        let home = tempfile::tempdir().unwrap();
        let plan = plan(Manager::Systemd, &spec(home.path()));
        let runner = Recorder::default();
        let mut out = Vec::new();
        install(&plan, true, &runner, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("would run: systemctl --user enable --now zend.socket"));
        assert!(text.contains("ListenStream="));
        assert!(runner.commands.borrow().is_empty());
        assert!(std::fs::read_dir(home.path()).unwrap().next().is_none());
    }

    #[test]
    fn install_status_uninstall_round_trip() {
        let home = tempfile::tempdir().unwrap();
        let plan = plan(Manager::Systemd, &spec(home.path()));
        let runner = Recorder::default();
        let mut out = Vec::new();
        assert_eq!(
            status(&plan, &runner, &mut out).unwrap(),
            EXIT_NOT_INSTALLED
        );

        install(&plan, false, &runner, &mut out).unwrap();
        assert!(plan.files.iter().all(|f| f.path.is_file()));
        assert!(plan.marker.is_file());
        assert_eq!(status(&plan, &runner, &mut out).unwrap(), 0);

        uninstall(&plan, false, &runner, &mut out).unwrap();
        assert!(plan.files.iter().all(|f| !f.path.exists()));
        assert!(!plan.marker.exists());
        assert_eq!(
            *runner.commands.borrow(),
            vec![
                "systemctl --user daemon-reload",
                "systemctl --user enable --now zend.socket",
                "systemctl --user --no-pager status zend.socket zend.service",
                "systemctl --user disable --now zend.socket zend.service",
                "systemctl --user daemon-reload",
            ]
        );
    }
}
