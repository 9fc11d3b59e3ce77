//! Paths, ports and small process helpers shared by the server harnesses.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static COUNTER: AtomicU64 = AtomicU64::new(0);
static HANDED_OUT_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The cargo workspace root (the parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives inside the workspace")
        .to_path_buf()
}

/// `<workspace>/target/test-servers`: where every server and bridge started by the harness keeps
/// its files. `tests/run` kills leftover processes whose command line mentions this directory.
pub fn test_servers_dir() -> PathBuf {
    workspace_root().join("target").join("test-servers")
}

/// A number unique within this test process.
pub fn next_counter() -> u64 {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// A new empty directory `target/test-servers/<kind>-<pid>-<counter>`.
pub fn fresh_dir(kind: &str) -> PathBuf {
    let dir = test_servers_dir().join(format!("{kind}-{}-{}", std::process::id(), next_counter()));
    if dir.exists() {
        // Left over by an earlier process that had the same pid.
        std::fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot remove stale directory {}: {e}", dir.display()));
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create directory {}: {e}", dir.display()));
    dir
}

fn remember_port(port: u16) -> bool {
    let mut guard = HANDED_OUT_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    guard.get_or_insert_with(HashSet::new).insert(port)
}

/// True when nothing listens on `port`, neither on 127.0.0.1 nor on 0.0.0.0.
pub fn port_is_free(port: u16) -> bool {
    [Ipv4Addr::LOCALHOST, Ipv4Addr::UNSPECIFIED]
        .iter()
        .all(|ip| TcpListener::bind(SocketAddrV4::new(*ip, port)).is_ok())
}

/// A free TCP port on 127.0.0.1 that this process has not handed out before (the kernel picks
/// it: bind port 0).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        if port_is_free(port) && remember_port(port) {
            return port;
        }
    }
    panic!("could not find a free TCP port on 127.0.0.1");
}

/// A free port `p` in `range` such that every `p + offset` is free too (RabbitMQ needs its AMQP
/// port and its distribution port at AMQP port + 20000).
pub fn free_port_with_offsets(range: std::ops::Range<u16>, offsets: &[u16]) -> u16 {
    for _ in 0..1000 {
        let port = fastrand::u16(range.clone());
        let all_free = std::iter::once(0)
            .chain(offsets.iter().copied())
            .all(|off| port.checked_add(off).is_some_and(port_is_free));
        if all_free && remember_port(port) {
            for off in offsets {
                remember_port(port + off);
            }
            return port;
        }
    }
    panic!("could not find a free TCP port in {range:?} with offsets {offsets:?}");
}

/// The last `lines` lines of a text file (or a note saying it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return format!("<cannot read {}: {e}>", path.display()),
    };
    // Only the end matters; logs can be large.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 * 1024);
    let _ = file.seek(SeekFrom::Start(start));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Finds an executable by name on PATH, then in the sbin directories that a non-root PATH often
/// lacks (mariadbd and rabbitmq-server live in /usr/sbin on Debian).
pub fn find_program(name: &str) -> PathBuf {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let extra = [
        "/usr/sbin",
        "/usr/local/sbin",
        "/sbin",
        "/usr/bin",
        "/usr/local/bin",
    ];
    let candidates = std::env::split_paths(&path_var).chain(extra.iter().map(PathBuf::from));
    for dir in candidates {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` not found on PATH nor in /usr/sbin: install it (tests/run installs mariadb-server \
         and rabbitmq-server on Debian/Ubuntu)"
    );
}

/// Polls `child` until it exits or `timeout` passes.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Sends a signal (`TERM`, `KILL`, ...) with the `kill` command. Returns whether it was delivered.
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// True while a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3 (after the parenthesised command name) is the state.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// The effective user id of this process.
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Removes a server's directory after a passing test, keeps it (and says where) after a failure.
pub fn cleanup_dir(dir: &Path, what: &str) {
    if std::thread::panicking() {
        eprintln!(
            "[system-tests] test failed: keeping the {what} directory for debugging: {}",
            dir.display()
        );
    } else if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("[system-tests] could not remove {}: {e}", dir.display());
        }
    }
}

/// The number of the last `field=N` in a service's log (its text format), if any.
pub fn last_logged_number(log: &str, field: &str) -> Option<u64> {
    let needle = format!("{field}=");
    log.lines()
        .filter_map(|line| line.split(needle.as_str()).nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .next_back()
}
