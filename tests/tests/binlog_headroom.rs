//! The binlog headroom, measured by a running bridge against a private MariaDB:
//!
//! - `a_running_bridge_shows_its_binlog_headroom_in_the_gauges_and_status`: a server keeping
//!   binlogs for 7 days; the headroom is measured from the checkpoint (bytes = its position in
//!   the only file, seconds = the whole retention while the checkpoint is in the file being
//!   written), no retention warning;
//! - `a_server_that_never_purges_binlogs_is_reported_as_unlimited_not_as_zero`: every retention
//!   setting 0: `/status` says so, the seconds gauge is `+Inf`;
//! - `a_retention_below_min_binlog_retention_warns_at_start_naming_the_statement`: a server with
//!   `binlog_expire_logs_seconds = 3600` under the default three-day minimum; raising it while
//!   the bridge runs is noticed;
//! - `a_checkpoint_held_back_with_a_short_retention_warns_at_each_measurement`: the broker
//!   stops, the checkpoint stays in a file the server then closes, and the headroom (retention
//!   less the time since the close) drops below the threshold: warned, with what to do, at
//!   every measurement; once the broker is back and the bridge caught up, the warnings stop.
//!
//! The bridge measures every second here (`binlog_headroom_check_secs = 1`); deadlines are
//! generous and nothing asserts a timing.

use std::time::Duration;

use serde_json::Value;
use system_tests::http_probe::{bridge_status, eventually, http_get, sample};
use system_tests::{
    bridge_config, declare_bound_queue, free_port, shared_amqp_url, unique_name, BridgeProcess,
    BrokerCleanup, MariaDb, MariaDbOptions, RabbitNode,
};

const WAIT: Duration = Duration::from_secs(90);

fn block<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

fn server_with(extra: &[&str]) -> MariaDb {
    let options = MariaDbOptions {
        extra_cnf: extra.iter().map(|s| s.to_string()).collect(),
        ..MariaDbOptions::default()
    };
    block(|| MariaDb::start_with(options))
}

/// `/status` once its `binlog_headroom` is measured from the checkpoint and `ready` holds.
async fn headroom_when(
    port: u16,
    what: &str,
    bridge: &BridgeProcess,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    eventually(
        WAIT,
        what,
        async || {
            http_get(port, "/status")
                .await
                .filter(|(code, _)| *code == 200)?;
            let status = bridge_status(port).await;
            let headroom = &status["binlog_headroom"];
            (headroom["from_kind"] == "checkpoint" && ready(headroom)).then_some(status)
        },
        || bridge.log_tail(40),
    )
    .await
}

/// Waits until the bridge streams (`/readyz` 200): changes written after that are read.
async fn ready(port: u16, bridge: &BridgeProcess) {
    eventually(
        WAIT,
        "the bridge ready",
        async || (http_get(port, "/readyz").await?.0 == 200).then_some(()),
        || bridge.log_tail(40),
    )
    .await;
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_bridge_shows_its_binlog_headroom_in_the_gauges_and_status() {
    let week = 7 * 86_400u64;
    let db = server_with(&[&format!("binlog_expire_logs_seconds={week}")]);
    block(|| db.exec("CREATE TABLE hr_items (id INT PRIMARY KEY, v INT NOT NULL)"));
    let url = shared_amqp_url();
    let exchange = unique_name("hr.x");
    let queue = unique_name("hr.q");
    let _cleanup = BrokerCleanup::new(&url, vec![queue.clone()], vec![exchange.clone()]);
    declare_bound_queue(&url, &exchange, &queue).await;
    let port = free_port();
    let toml = bridge_config(db.port(), &url, &exchange)
        .with(|c| {
            c.metrics.listen = format!("127.0.0.1:{port}");
            c.source.binlog_headroom_check_secs = Some(1);
        })
        .to_toml();
    let bridge = block(|| BridgeProcess::start(&toml));
    ready(port, &bridge).await;
    block(|| db.exec("INSERT INTO hr_items VALUES (1, 1), (2, 2)"));
    block(|| db.exec("UPDATE hr_items SET v = 3 WHERE id = 1"));
    let end = || {
        let rows = block(|| db.query_rows("SHOW MASTER STATUS"));
        (rows[0][0].clone(), rows[0][1].parse::<u64>().unwrap())
    };
    let (file, pos) = end();
    let status = headroom_when(
        port,
        "the headroom measured from a checkpoint at the binlog's end",
        &bridge,
        |h| h["from"]["file"] == file.as_str() && h["from"]["pos"] == pos,
    )
    .await;
    let headroom = &status["binlog_headroom"];
    assert_eq!(status["checkpoint"]["pos"], pos, "{status:#}");
    // One file: everything before the checkpoint is its position in it.
    assert_eq!(headroom["bytes"], pos, "{status:#}");
    assert_eq!(headroom["behind_bytes"], 0, "{status:#}");
    // The checkpoint is in the file being written: the whole retention is ahead of it.
    assert_eq!(headroom["seconds"], week, "{status:#}");
    assert_eq!(headroom["retention_s"], week, "{status:#}");
    assert_eq!(
        headroom["retention_setting"], "binlog_expire_logs_seconds",
        "{status:#}"
    );
    assert_eq!(headroom["never_purged"], false, "{status:#}");
    assert_eq!(headroom["purged"], false, "{status:#}");
    assert_eq!(headroom["oldest_file"], file.as_str(), "{status:#}");
    let oldest_age = headroom["oldest_age_s"].as_u64().unwrap_or(u64::MAX);
    assert!(
        oldest_age < 3600,
        "the server started minutes ago: {status:#}"
    );

    let text = match http_get(port, "/metrics").await {
        Some((200, body)) => body,
        other => panic!("GET /metrics: {other:?}"),
    };
    assert_eq!(
        sample(&text, "cdc_bridge_binlog_headroom_bytes"),
        Some(pos as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "cdc_bridge_binlog_headroom_seconds"),
        Some(week as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "cdc_bridge_binlog_retention_seconds"),
        Some(week as f64),
        "{text}"
    );
    let age = sample(&text, "cdc_bridge_binlog_oldest_age_seconds").unwrap_or(f64::MAX);
    assert!(age < 3600.0, "{text}");
    assert!(
        text.contains("# TYPE cdc_bridge_binlog_headroom_seconds gauge"),
        "{text}"
    );
    let log = bridge.log();
    assert!(
        log.contains("the server keeps binlogs for 7 d 0 h"),
        "{}",
        bridge.log_tail(40)
    );
    assert_eq!(count(&log, "min_binlog_retention_secs"), 0, "{log}");
    assert_eq!(count(&log, "binlog headroom is"), 0, "{log}");
    // Reading a file's first events (a dump with server id 0) never disturbs the stream.
    assert_eq!(count(&log, "reconnecting"), 0, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_purges_binlogs_is_reported_as_unlimited_not_as_zero() {
    // The test servers' default: binlog_expire_logs_seconds = 0, expire_logs_days = 0.
    let db = server_with(&[]);
    assert_eq!(
        block(|| db.query_value("SELECT @@global.binlog_expire_logs_seconds")),
        "0"
    );
    block(|| db.exec("CREATE TABLE hr_items (id INT PRIMARY KEY)"));
    let url = shared_amqp_url();
    let exchange = unique_name("hr.x");
    let queue = unique_name("hr.q");
    let _cleanup = BrokerCleanup::new(&url, vec![queue.clone()], vec![exchange.clone()]);
    declare_bound_queue(&url, &exchange, &queue).await;
    let port = free_port();
    let toml = bridge_config(db.port(), &url, &exchange)
        .with(|c| {
            c.metrics.listen = format!("127.0.0.1:{port}");
            c.source.binlog_headroom_check_secs = Some(1);
        })
        .to_toml();
    let bridge = block(|| BridgeProcess::start(&toml));
    ready(port, &bridge).await;
    block(|| db.exec("INSERT INTO hr_items VALUES (1)"));
    let status = headroom_when(port, "a measured headroom", &bridge, |h| {
        h["bytes"].as_u64().is_some_and(|b| b > 0)
    })
    .await;
    let headroom = &status["binlog_headroom"];
    assert_eq!(headroom["never_purged"], true, "{status:#}");
    assert_eq!(headroom["seconds"], Value::Null, "{status:#}");
    assert_eq!(headroom["retention_s"], Value::Null, "{status:#}");
    let text = match http_get(port, "/metrics").await {
        Some((200, body)) => body,
        other => panic!("GET /metrics: {other:?}"),
    };
    assert_eq!(
        sample(&text, "cdc_bridge_binlog_headroom_seconds"),
        Some(f64::INFINITY),
        "{text}"
    );
    assert!(
        text.contains("\ncdc_bridge_binlog_retention_seconds +Inf\n"),
        "{text}"
    );
    let log = bridge.log();
    assert!(
        log.contains("purges no binlog by age"),
        "{}",
        bridge.log_tail(40)
    );
    assert_eq!(count(&log, "min_binlog_retention_secs"), 0, "{log}");
    assert_eq!(count(&log, "binlog headroom is"), 0, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_below_min_binlog_retention_warns_at_start_naming_the_statement() {
    let db = server_with(&["binlog_expire_logs_seconds=3600"]);
    let url = shared_amqp_url();
    let exchange = unique_name("hr.x");
    let queue = unique_name("hr.q");
    let _cleanup = BrokerCleanup::new(&url, vec![queue.clone()], vec![exchange.clone()]);
    declare_bound_queue(&url, &exchange, &queue).await;
    let toml = bridge_config(db.port(), &url, &exchange)
        .with(|c| c.source.binlog_headroom_check_secs = Some(1))
        .to_toml();
    let mut bridge = block(|| BridgeProcess::start(&toml));
    let warning = "less than source.min_binlog_retention_secs (259200 s";
    assert!(
        block(|| bridge.wait_for_log(warning, WAIT)),
        "no retention warning:\n{}",
        bridge.log_tail(40)
    );
    let log = bridge.log();
    let line = log
        .lines()
        .find(|l| l.contains(warning))
        .unwrap_or_default();
    for part in [
        "WARN",
        "keeps binlogs for 3600 s",
        "binlog_expire_logs_seconds",
        "SET GLOBAL binlog_expire_logs_seconds = 259200",
        "re-sync",
    ] {
        assert!(line.contains(part), "{part:?} missing: {line}");
    }
    // `bridge check` says the same.
    let (exit, out) =
        block(|| BridgeProcess::run_to_exit(&toml, &["check"], Duration::from_secs(60)));
    assert!(exit.success(), "`bridge check` failed: {out}");
    assert!(
        out.contains("WARNING: the server keeps binlogs for 3600 s")
            && out.contains("SET GLOBAL binlog_expire_logs_seconds = 259200"),
        "{out}"
    );
    // Raised while the bridge runs: noticed at the next measurement, and warned no more.
    block(|| db.exec("SET GLOBAL binlog_expire_logs_seconds = 259200"));
    assert!(
        block(|| bridge.wait_for_log("the server keeps binlogs for 3 d 0 h", WAIT)),
        "{}",
        bridge.log_tail(40)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(&bridge.log(), warning),
        1,
        "warned once, at start:\n{}",
        bridge.log_tail(40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_held_back_with_a_short_retention_warns_at_each_measurement() {
    let db = server_with(&["binlog_expire_logs_seconds=3600"]);
    block(|| db.exec("CREATE TABLE hr_items (id INT PRIMARY KEY, v INT NOT NULL)"));
    let mut node = block(RabbitNode::start);
    let url = node.amqp_url();
    let exchange = unique_name("hr.x");
    let queue = unique_name("hr.q");
    declare_bound_queue(&url, &exchange, &queue).await;
    let port = free_port();
    // A threshold equal to the retention: a checkpoint in the file being written (the whole
    // hour ahead) is not below it; one in a file closed even a second ago is.
    let toml = bridge_config(db.port(), &url, &exchange)
        .with(|c| {
            c.metrics.listen = format!("127.0.0.1:{port}");
            c.source.binlog_headroom_check_secs = Some(1);
            c.source.binlog_headroom_warning_secs = Some(3600);
            c.source.min_binlog_retention_secs = Some(3600);
        })
        .to_toml();
    let bridge = block(|| BridgeProcess::start(&toml));
    ready(port, &bridge).await;
    block(|| db.exec("INSERT INTO hr_items VALUES (1, 1)"));
    let end = || {
        let rows = block(|| db.query_rows("SHOW MASTER STATUS"));
        (rows[0][0].clone(), rows[0][1].parse::<u64>().unwrap())
    };
    let (first_file, pos) = end();
    let status = headroom_when(port, "caught up in the first file", &bridge, |h| {
        h["from"]["file"] == first_file.as_str() && h["from"]["pos"] == pos
    })
    .await;
    assert_eq!(status["binlog_headroom"]["seconds"], 3600, "{status:#}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(&bridge.log(), "binlog headroom is"),
        0,
        "caught up, the whole retention is ahead:\n{}",
        bridge.log_tail(40)
    );

    // The broker goes away: the next change cannot be confirmed, so the checkpoint stays in
    // the first file while the server closes it and writes on in the next ones.
    block(|| node.stop());
    block(|| db.exec("UPDATE hr_items SET v = 2 WHERE id = 1"));
    block(|| db.exec("FLUSH BINARY LOGS"));
    block(|| db.exec("UPDATE hr_items SET v = 3 WHERE id = 1"));
    block(|| db.exec("FLUSH BINARY LOGS"));
    let (last_file, _) = end();
    assert_ne!(last_file, first_file);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = headroom_when(port, "a headroom below the hour", &bridge, |h| {
        h["seconds"].as_u64().is_some_and(|s| s < 3600)
    })
    .await;
    let headroom = &status["binlog_headroom"];
    assert_eq!(headroom["from"]["file"], first_file.as_str(), "{status:#}");
    let seconds = headroom["seconds"].as_u64().unwrap_or(0);
    assert!(
        seconds > 3000,
        "the first file was closed seconds ago, most of the hour is left: {status:#}"
    );
    assert!(
        headroom["behind_bytes"].as_u64().is_some_and(|b| b > 0),
        "{status:#}"
    );
    // Warned at every measurement, with the file, the checkpoint and both remedies.
    let warned = eventually(
        WAIT,
        "two headroom warnings",
        async || {
            let log = bridge.log();
            (count(&log, "binlog headroom is") >= 2).then_some(log)
        },
        || bridge.log_tail(40),
    )
    .await;
    let line = warned
        .lines()
        .find(|l| l.contains("binlog headroom is"))
        .unwrap_or_default();
    for part in [
        "WARN",
        "below source.binlog_headroom_warning_secs (3600 s)",
        &format!("may purge binlog file {first_file}"),
        "Get the bridge caught up",
        "SET GLOBAL binlog_expire_logs_seconds = 7200",
    ] {
        assert!(line.contains(part), "{part:?} missing: {line}");
    }
    assert_eq!(
        count(&warned, "min_binlog_retention_secs ("),
        0,
        "the retention meets the minimum here: {warned}"
    );

    // The broker is back: the bridge catches up, its checkpoint reaches the last file, and the
    // warnings stop.
    block(|| node.start_again());
    block(|| db.exec("UPDATE hr_items SET v = 4 WHERE id = 1"));
    let (file, pos) = end();
    assert_eq!(file, last_file);
    headroom_when(port, "caught up again", &bridge, |h| {
        h["from"]["file"] == file.as_str() && h["from"]["pos"] == pos && h["seconds"] == 3600
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = count(&bridge.log(), "binlog headroom is");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        count(&bridge.log(), "binlog headroom is"),
        before,
        "no more warnings once caught up:\n{}",
        bridge.log_tail(40)
    );
}
