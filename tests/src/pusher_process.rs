//! The pusher binary as a child process.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::{cleanup_dir, fresh_dir, send_signal, tail, wait_child, workspace_root};

static PUSHER_BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Path of the pusher binary, built once per test process with
/// `cargo build -p pusher --bin pusher` (a no-op when `tests/run` built it already).
/// Env `PUSHER_BIN` points at a prebuilt binary instead.
pub fn pusher_bin() -> PathBuf {
    let result = PUSHER_BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PUSHER_BIN").filter(|b| !b.is_empty()) {
            return Ok(PathBuf::from(bin));
        }
        let root = workspace_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(&cargo)
            .args(["build", "-p", "pusher", "--bin", "pusher"])
            .current_dir(&root)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {cargo}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`cargo build -p pusher --bin pusher` failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_relative() { root.join(t) } else { t })
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug").join("pusher");
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "built the pusher but {} does not exist",
                bin.display()
            ))
        }
    });
    match result {
        Ok(bin) => bin.clone(),
        Err(e) => panic!("{e}"),
    }
}

const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `pusher run --config <dir>/pusher.toml`, its output appended to `<dir>/pusher.log`.
/// Killed on drop if still running; the directory (config, checkpoint, log) is removed unless
/// the test failed.
pub struct PusherProcess {
    dir: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    status: Option<ExitStatus>,
}

impl PusherProcess {
    /// Writes `config_toml` to a fresh directory and starts `pusher run` on it (RUST_LOG=info).
    pub fn start(config_toml: &str) -> PusherProcess {
        PusherProcess::start_with_env(config_toml, &[])
    }

    /// As [`PusherProcess::start`], with extra environment variables
    /// (e.g. `PUSHER_SOURCE_PASSWORD`); they are kept for [`PusherProcess::restart`].
    pub fn start_with_env(config_toml: &str, env: &[(&str, &str)]) -> PusherProcess {
        let dir = fresh_dir("pusher");
        let mut pusher = PusherProcess {
            dir,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            status: None,
        };
        pusher.write_config(config_toml);
        pusher.spawn();
        pusher
    }

    /// Runs `pusher <args> --config <file>` on a fresh config directory to completion (for
    /// commands and configurations the pusher should refuse), returning its exit status and
    /// combined stdout+stderr. Panics (after killing it) if it is still running after `timeout`.
    pub fn run_to_exit(
        config_toml: &str,
        args: &[&str],
        timeout: Duration,
    ) -> (ExitStatus, String) {
        PusherProcess::run_to_exit_with_env(config_toml, args, &[], timeout)
    }

    /// [`PusherProcess::run_to_exit`] with extra environment variables.
    pub fn run_to_exit_with_env(
        config_toml: &str,
        args: &[&str],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> (ExitStatus, String) {
        let dir = fresh_dir("pusher");
        let config = dir.join("pusher.toml");
        std::fs::write(&config, config_toml).expect("write pusher config");
        let log_path = dir.join("pusher.log");
        let log = std::fs::File::create(&log_path).expect("create pusher.log");
        let log2 = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(pusher_bin());
        cmd.args(args)
            .arg("--config")
            .arg(&config)
            .current_dir(&dir)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("cannot spawn the pusher");
        let status = wait_child(&mut child, timeout);
        let output =
            String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).into_owned();
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`pusher {}` still running after {timeout:?} (expected it to exit); killed it. \
                 Output so far:\n{output}",
                args.join(" ")
            );
        };
        cleanup_dir(&dir, "pusher");
        (status, output)
    }

    /// The pusher's directory (config file, default checkpoint location, pusher.log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("pusher.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("pusher.log")
    }

    /// Replaces the config file (takes effect at the next [`PusherProcess::restart`]).
    pub fn write_config(&self, config_toml: &str) {
        std::fs::write(self.config_path(), config_toml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.config_path().display()));
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the pusher has written so far (all runs in this directory).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// Polls the log until it contains `needle`. Returns false after `timeout`, or as soon as
    /// the pusher has exited without writing it. Blocks the thread: in async tests with tasks
    /// running alongside, use [`PusherProcess::wait_for_log_async`].
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

    /// [`PusherProcess::wait_for_log`] that sleeps with tokio instead of blocking the thread.
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

    /// The exit status once the pusher has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.reap(Duration::ZERO);
        self.status
    }

    /// Waits up to `timeout` for the pusher to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.reap(timeout);
        self.status
    }

    /// SIGKILL, then waits: a crash at an arbitrary point.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.status = Some(child.wait().expect("wait for the killed pusher"));
        }
    }

    /// SIGTERM (`kill -TERM pid`), then waits up to 30 s for a graceful exit and returns its
    /// status. Panics (after SIGKILL) if the pusher ignores it. Returns the earlier status if the
    /// pusher had already exited.
    pub fn terminate(&mut self) -> ExitStatus {
        if self.is_running() {
            let pid = self.pid().expect("running pusher has a pid");
            send_signal(pid, "TERM");
            self.reap(TERMINATE_TIMEOUT);
            if self.child.is_some() {
                self.kill9();
                panic!(
                    "the pusher did not exit within {TERMINATE_TIMEOUT:?} of SIGTERM; killed it. \
                     Log tail:\n{}",
                    tail(&self.log_path(), 40)
                );
            }
        }
        self.status
            .expect("the pusher was started, so it has an exit status")
    }

    /// Starts the pusher again in the same directory with the same config file and environment
    /// (checkpoint and log carry over). Panics if it is still running.
    pub fn restart(&mut self) {
        assert!(
            !self.is_running(),
            "the pusher is still running: terminate or kill it first"
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
            .expect("open pusher.log");
        let _ = writeln!(log, "---- [system-tests] starting the pusher ----");
        let log2 = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(pusher_bin());
        cmd.arg("run")
            .arg("--config")
            .arg(self.config_path())
            .current_dir(&self.dir)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("cannot spawn the pusher"));
        self.status = None;
    }
}

impl Drop for PusherProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "[system-tests] pusher log tail ({}):\n{}",
                self.log_path().display(),
                tail(&self.log_path(), 30)
            );
        }
        cleanup_dir(&self.dir, "pusher");
    }
}
