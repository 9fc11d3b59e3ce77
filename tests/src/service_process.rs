//! The product's binaries (bridge, pusher) as child processes: one harness, parameterised by
//! [`Service`], so both are started, watched, signalled and cleaned up the same way.

use std::fs::OpenOptions;
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::{cleanup_dir, fresh_dir, send_signal, tail, wait_child, workspace_root};

/// A binary of the workspace that runs as `<name> run --config <file>`.
pub trait Service {
    /// Binary and package name; also names the directory, config file and log.
    const NAME: &'static str;
    /// Path of the binary.
    fn bin() -> PathBuf;
    /// Sets the logging environment of a child.
    fn log_env(cmd: &mut Command);
}

/// The bridge: logs at info (RUST_LOG=info).
pub struct Bridge;
/// The pusher: logs at the level its config file sets (RUST_LOG is removed).
pub struct Pusher;

impl Service for Bridge {
    const NAME: &'static str = "bridge";
    fn bin() -> PathBuf {
        bridge_bin()
    }
    fn log_env(cmd: &mut Command) {
        cmd.env("RUST_LOG", "info");
    }
}

impl Service for Pusher {
    const NAME: &'static str = "pusher";
    fn bin() -> PathBuf {
        pusher_bin()
    }
    fn log_env(cmd: &mut Command) {
        cmd.env_remove("RUST_LOG");
    }
}

pub type BridgeProcess = ServiceProcess<Bridge>;

/// `bridge sync start --queue QUEUE --tables TABLES` with `toml`; asserts it succeeded and
/// returns its output.
pub fn start_sync(toml: &str, queue: &str, tables: &str) -> String {
    let (status, output) = BridgeProcess::run_to_exit(
        toml,
        &["sync", "start", "--queue", queue, "--tables", tables],
        Duration::from_secs(60),
    );
    assert!(status.success(), "`bridge sync start` failed:\n{output}");
    output
}
pub type PusherProcess = ServiceProcess<Pusher>;

static BRIDGE_BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
static PUSHER_BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Path of the bridge binary: env `BRIDGE_BIN`, or built once per test process.
pub fn bridge_bin() -> PathBuf {
    built_bin(&BRIDGE_BIN, "bridge", "BRIDGE_BIN")
}

/// Path of the pusher binary: env `PUSHER_BIN`, or built once per test process.
pub fn pusher_bin() -> PathBuf {
    built_bin(&PUSHER_BIN, "pusher", "PUSHER_BIN")
}

/// `env_var` when set (`tests/run` points it at the binary it built), else
/// `cargo build -p <name> --bin <name>` once per test process.
fn built_bin(cell: &OnceLock<Result<PathBuf, String>>, name: &str, env_var: &str) -> PathBuf {
    let result = cell.get_or_init(|| {
        if let Some(bin) = std::env::var_os(env_var).filter(|b| !b.is_empty()) {
            return Ok(PathBuf::from(bin));
        }
        let root = workspace_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(&cargo)
            .args(["build", "-p", name, "--bin", name])
            .current_dir(&root)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {cargo}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`cargo build -p {name} --bin {name}` failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_relative() { root.join(t) } else { t })
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug").join(name);
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("built {name} but {} does not exist", bin.display()))
        }
    });
    match result {
        Ok(bin) => bin.clone(),
        Err(e) => panic!("{e}"),
    }
}

const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `<name> run --config <dir>/<name>.toml`, its output appended to `<dir>/<name>.log`.
/// Killed on drop if still running; the directory (config, state, log) is removed unless the
/// test failed.
pub struct ServiceProcess<S: Service> {
    service: PhantomData<S>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    status: Option<ExitStatus>,
}

impl<S: Service> ServiceProcess<S> {
    /// Writes `config_toml` to a fresh directory and starts `<name> run` on it.
    pub fn start(config_toml: &str) -> Self {
        Self::start_with_env(config_toml, &[])
    }

    /// As [`Self::start`], with extra environment variables
    /// (e.g. `BRIDGE_SOURCE_PASSWORD`); they are kept for [`Self::restart`].
    pub fn start_with_env(config_toml: &str, env: &[(&str, &str)]) -> Self {
        let dir = fresh_dir(S::NAME);
        let mut process = ServiceProcess {
            service: PhantomData,
            dir,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            status: None,
        };
        process.write_config(config_toml);
        process.spawn();
        process
    }

    /// Runs `<name> <args> --config <file>` on a fresh config directory to completion (for
    /// commands and configurations it should refuse), returning its exit status and
    /// combined stdout+stderr. Panics (after killing it) if it is still running after `timeout`.
    pub fn run_to_exit(
        config_toml: &str,
        args: &[&str],
        timeout: Duration,
    ) -> (ExitStatus, String) {
        Self::run_to_exit_with_env(config_toml, args, &[], timeout)
    }

    /// [`Self::run_to_exit`] with extra environment variables.
    pub fn run_to_exit_with_env(
        config_toml: &str,
        args: &[&str],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> (ExitStatus, String) {
        let dir = fresh_dir(S::NAME);
        let config = dir.join(format!("{}.toml", S::NAME));
        std::fs::write(&config, config_toml).expect("write the config");
        let log_path = dir.join(format!("{}.log", S::NAME));
        let log = std::fs::File::create(&log_path).expect("create the log");
        let log2 = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(S::bin());
        S::log_env(&mut cmd);
        cmd.args(args)
            .arg("--config")
            .arg(&config)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", S::NAME));
        let status = wait_child(&mut child, timeout);
        let output =
            String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).into_owned();
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{} {}` still running after {timeout:?} (expected it to exit); killed it. \
                 Output so far:\n{output}",
                S::NAME,
                args.join(" ")
            );
        };
        cleanup_dir(&dir, S::NAME);
        (status, output)
    }

    /// The process's directory (config file, default state location, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join(format!("{}.toml", S::NAME))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", S::NAME))
    }

    /// Replaces the config file (takes effect at the next [`Self::restart`]).
    pub fn write_config(&self, config_toml: &str) {
        std::fs::write(self.config_path(), config_toml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.config_path().display()));
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the process has written so far (all runs in this directory).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// The last `lines` lines of [`Self::log`], for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Polls the log until it contains `needle`. Returns false after `timeout`, or as soon as
    /// the process has exited without writing it. Blocks the thread: in async tests with tasks
    /// running alongside, use [`Self::wait_for_log_async`].
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if !self.is_running() {
                return self.log().contains(needle);
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`Self::wait_for_log`] that sleeps with tokio instead of blocking the thread.
    pub async fn wait_for_log_async(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if !self.is_running() {
                return self.log().contains(needle);
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.reap(Duration::ZERO);
        self.child.is_some()
    }

    /// The exit status once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.reap(Duration::ZERO);
        self.status
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.reap(timeout);
        self.status
    }

    /// SIGKILL, then waits: a crash at an arbitrary point.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.status = Some(child.wait().expect("wait for the killed child"));
        }
    }

    /// SIGTERM (`kill -TERM pid`), then waits up to 30 s for a graceful exit and returns its
    /// status. Panics (after SIGKILL) if the process ignores it. Returns the earlier status if it
    /// had already exited.
    pub fn terminate(&mut self) -> ExitStatus {
        if self.is_running() {
            let pid = self.pid().expect("a running child has a pid");
            send_signal(pid, "TERM");
            self.reap(TERMINATE_TIMEOUT);
            if self.child.is_some() {
                self.kill9();
                panic!(
                    "{} did not exit within {TERMINATE_TIMEOUT:?} of SIGTERM; killed it. \
                     Log tail:\n{}",
                    S::NAME,
                    tail(&self.log_path(), 40)
                );
            }
        }
        self.status
            .expect("the child was started, so it has an exit status")
    }

    /// Starts the process again in the same directory with the same config file and environment
    /// (checkpoint and log carry over). Panics if it is still running.
    pub fn restart(&mut self) {
        assert!(
            !self.is_running(),
            "{} is still running: terminate or kill it first",
            S::NAME
        );
        self.spawn();
    }

    fn reap(&mut self, timeout: Duration) {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = wait_child(child, timeout) {
                self.status = Some(status);
                self.child = None;
            }
        }
    }

    fn spawn(&mut self) {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the log");
        let _ = writeln!(log, "---- [system-tests] starting the {} ----", S::NAME);
        let log2 = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(S::bin());
        S::log_env(&mut cmd);
        cmd.arg("run")
            .arg("--config")
            .arg(self.config_path())
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", S::NAME)),
        );
        self.status = None;
    }
}

/// The tails of several processes' logs, each under its log's path, for failure messages.
pub fn logs_of<S: Service>(processes: &[&ServiceProcess<S>]) -> String {
    processes
        .iter()
        .map(|p| format!("---- {} ----\n{}", p.log_path().display(), p.log_tail(60)))
        .collect::<Vec<_>>()
        .join("\n")
}

impl<S: Service> Drop for ServiceProcess<S> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "[system-tests] {} log tail ({}):\n{}",
                S::NAME,
                self.log_path().display(),
                tail(&self.log_path(), 30)
            );
        }
        cleanup_dir(&self.dir, S::NAME);
    }
}
