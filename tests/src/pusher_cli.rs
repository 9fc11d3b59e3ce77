//! `pusher` commands run to completion beside running pushers, as the tests of several pushers
//! use them: `pusher partners --json` read as rows, who consumes which partner, and polling it
//! until the pushers agree.

use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::pusher_config::PusherConfig;
use crate::service_process::{logs_of, PusherProcess};

/// What a pusher logs when it starts consuming a partner's queue.
pub const ACTIVE: &str = "partner active: consuming";

/// Environment pairs as the process starters take them.
pub fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `pusher <args>` to completion, off the async threads (it blocks while polling the child).
pub async fn pusher_cmd(
    cfg: &PusherConfig,
    args: &[&str],
    env: &[(String, String)],
) -> (ExitStatus, String) {
    let toml = cfg.to_toml();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env = env.to_vec();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        PusherProcess::run_to_exit_with_env(&toml, &args, &env_refs(&env), Duration::from_secs(60))
    })
    .await
    .expect("the pusher command thread panicked")
}

/// `pusher setup` for `cfg` (partner tokens in `env`), which declares and binds the queues so
/// that the bridge can publish; panics with its output when it fails. Runs off the async
/// threads (callable from a multi-threaded test runtime).
pub fn setup_queues(cfg: &PusherConfig, env: &[(&str, &str)]) {
    let toml = cfg.to_toml();
    let (status, out) = tokio::task::block_in_place(|| {
        PusherProcess::run_to_exit_with_env(&toml, &["setup"], env, Duration::from_secs(60))
    });
    assert!(status.success(), "`pusher setup` failed ({status}):\n{out}");
}

/// `pusher partners --json`, parsed.
pub async fn partners_json(cfg: &PusherConfig, env: &[(String, String)]) -> Vec<Value> {
    let (status, out) = pusher_cmd(cfg, &["partners", "--json"], env).await;
    assert!(
        status.success(),
        "`pusher partners --json` failed ({status}):\n{out}"
    );
    let start = out
        .find('[')
        .unwrap_or_else(|| panic!("`pusher partners --json` printed no JSON array:\n{out}"));
    let value = serde_json::Deserializer::from_str(&out[start..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("`pusher partners --json` printed no valid JSON:\n{out}"));
    value
        .as_array()
        .unwrap_or_else(|| panic!("`pusher partners --json` is not an array:\n{out}"))
        .clone()
}

/// The row of `partner`.
pub fn row<'a>(rows: &'a [Value], partner: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["partner"] == partner)
        .unwrap_or_else(|| panic!("no row for partner {partner}: {rows:#?}"))
}

/// Partner -> the single pusher consuming it, when every partner has exactly one active pusher
/// in state "consuming".
pub fn settled_owners(rows: &[Value]) -> Option<BTreeMap<String, String>> {
    let mut owners = BTreeMap::new();
    for r in rows {
        let owner = r["active_pusher"].as_str()?;
        if owner.contains(',') || r["state"] != "consuming" {
            return None;
        }
        owners.insert(r["partner"].as_str()?.to_string(), owner.to_string());
    }
    Some(owners)
}

/// Polls `pusher partners --json` until `accept` says yes twice in a row (so a moment of
/// agreement during a hand-over does not count); returns the last rows. Panics after
/// `timeout`, with the last rows and the logs of `pushers`.
pub async fn wait_for_rows(
    cfg: &PusherConfig,
    env: &[(String, String)],
    timeout: Duration,
    what: &str,
    pushers: &[&PusherProcess],
    accept: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    let mut agreed = 0;
    loop {
        let rows = partners_json(cfg, env).await;
        if accept(&rows) {
            agreed += 1;
            if agreed >= 2 {
                return rows;
            }
            continue;
        }
        agreed = 0;
        assert!(
            Instant::now() < deadline,
            "`pusher partners --json` never showed {what} within {timeout:?}; last rows:\n{rows:#?}\n{}",
            logs_of(pushers)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
