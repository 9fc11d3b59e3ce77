//! The one-command demo (`./demo`) runs unattended for a bounded time and its consistency check
//! passes: a private MariaDB, the bridge, two pushers and two demo OCPI partners, partner alpha
//! offline for a while, partner beta added with its initial sync, a workload throughout, and
//! at the end both partners equal to the database.
//!
//! The demo uses the binaries this test run built (`DEMO_BIN_DIR`: the bridge and pusher the
//! harness uses, this package's demo_driver and demo_partner), so no release build happens here.
//! It uses fixed names (port 3407, `demo.*` on the shared broker, `.state/demo/`): one demo at
//! a time per machine.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use system_tests::util::{cleanup_dir, fresh_dir, pid_alive, send_signal};
use system_tests::{bridge_bin, pusher_bin, workspace_root};

/// Seconds of workload: long enough for the whole timeline (alpha offline from 25 % to 45 %,
/// beta added at 30 %) on a busy 2-core machine.
const DURATION_SECS: &str = "45";
/// Hard limit for the whole demo (setup, workload, catching up, check, stop).
const HARD_LIMIT: Duration = Duration::from_secs(360);

/// A directory with the four binaries the demo runs, as links to the ones this run built.
fn demo_bin_dir() -> PathBuf {
    let dir = fresh_dir("demo-bin");
    for (name, target) in [
        ("bridge", bridge_bin()),
        ("pusher", pusher_bin()),
        (
            "demo_driver",
            PathBuf::from(env!("CARGO_BIN_EXE_demo_driver")),
        ),
        (
            "demo_partner",
            PathBuf::from(env!("CARGO_BIN_EXE_demo_partner")),
        ),
    ] {
        std::os::unix::fs::symlink(&target, dir.join(name)).unwrap_or_else(|e| {
            panic!(
                "cannot link {} into {}: {e}",
                target.display(),
                dir.display()
            )
        });
    }
    dir
}

/// Pids of processes whose command line names the demo's state directory.
fn demo_processes() -> Vec<(u32, String)> {
    let state = workspace_root().join(".state/demo");
    let state = state.to_string_lossy();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(state.as_ref()) && pid_alive(pid) {
            found.push((pid, cmdline));
        }
    }
    found
}

#[test]
fn the_demo_runs_unattended_and_both_partners_end_equal_to_the_database() {
    let bin_dir = demo_bin_dir();
    let log_path = bin_dir.join("demo.out");
    let log = File::create(&log_path).expect("the demo's output file");
    let started = Instant::now();
    let mut demo = Command::new(workspace_root().join("demo"))
        .args(["--duration", DURATION_SECS])
        .env("DEMO_BIN_DIR", &bin_dir)
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the demo's output file"))
        .stderr(log)
        // Its own process group, so the whole demo can be killed if it hangs.
        .process_group(0)
        .spawn()
        .expect("./demo starts");
    let pid = demo.id();
    let status = loop {
        if let Some(status) = demo.try_wait().expect("waiting for ./demo") {
            break Some(status);
        }
        if started.elapsed() >= HARD_LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let output = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let Some(status) = status else {
        // SIGTERM: the demo stops everything it started; then the whole group, whatever is left.
        send_signal(pid, "TERM");
        let grace = Instant::now();
        while grace.elapsed() < Duration::from_secs(60) && demo.try_wait().ok().flatten().is_none()
        {
            std::thread::sleep(Duration::from_millis(500));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        let _ = demo.wait();
        panic!(
            "./demo --duration {DURATION_SECS} did not finish within {HARD_LIMIT:?}; its output:\n{}",
            output()
        );
    };
    let out = output();
    let elapsed = started.elapsed();

    assert!(
        status.success(),
        "./demo exited with {status}; its output:\n{out}"
    );
    // The timeline happened: alpha offline and back, beta added and synced.
    for expected in [
        "partner alpha goes offline",
        "| partner OFFLINE",
        "partner alpha is back online",
        "initial sync requested",
        "partner beta added",
        "initial sync finished",
    ] {
        assert!(
            out.contains(expected),
            "the demo's output lacks {expected:?}:\n{out}"
        );
    }
    // The consistency check compared both partners with the database, and both are equal.
    for partner in ["alpha", "beta"] {
        assert!(
            out.contains(&format!(
                "consistency check, partner {partner} (OCPI 2.2.1)"
            )) && out.contains(&format!("  {partner}: PASSED, all ")),
            "no passing consistency check for {partner}:\n{out}"
        );
        // Strict receivers, and still nothing parked: not during beta's initial sync either.
        let heading = out
            .lines()
            .find(|l| l.starts_with(&format!("consistency check, partner {partner} ")))
            .unwrap_or_default();
        assert!(
            heading.contains(" 0 parked"),
            "{partner} has parked messages: {heading}\n{out}"
        );
    }
    // The workload opened new sites (a Location with its chargers in one transaction): more
    // than the 150 seeded Locations were compared.
    let compared_locations = out
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("locations"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    assert!(
        compared_locations > 150,
        "no new site reached the partners ({compared_locations} locations compared):\n{out}"
    );
    assert!(
        out.contains("consistency check PASSED: alpha and beta equal to the database"),
        "{out}"
    );
    // Nothing the demo started is left running.
    let left = demo_processes();
    assert!(
        left.is_empty(),
        "the demo left processes running: {left:#?}\n{out}"
    );
    eprintln!(
        "[demo] ./demo --duration {DURATION_SECS} passed in {:.0} s",
        elapsed.as_secs_f64()
    );
    cleanup_dir(&bin_dir, "demo binaries");
}
