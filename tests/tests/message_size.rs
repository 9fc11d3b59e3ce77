//! `broker.max_message_bytes` on a real MariaDB and RabbitMQ: a row whose message would be
//! larger than the limit (64 KiB here, a 200 KiB row) is never published. With
//! `broker.on_too_large = "stop"` the bridge stops naming table, key, size, limit and binlog
//! position, and its checkpoint stays before the row; started again with `"marker"`, it
//! publishes a too-large marker (identity, no row data) in the row's place, counts it in
//! `cdc_bridge_too_large_markers_total`, and the changes after it flow.
//!
//! A broker whose own `max_message_size` is lower than `max_message_bytes` refuses the
//! message: the bridge stops at the first refusal naming both limits.
//!
//! Rows each larger than `source.read_ahead_bytes` and `broker.confirm_window_bytes` (64 KiB
//! here) are read and published one at a time, all of them, in commit order: the byte bounds
//! never stop a row.
//!
//! What the pusher does with a marker: tests/tests/pusher_parked.rs.

use std::time::Duration;

use serde_json::{json, Value};
use system_tests::http_probe::{eventually, http_get, sample};
use system_tests::{
    bridge_config, bridge_failure, declare_bound_queue, free_port, unique_name, BridgeProcess,
    CaptureSetup, MariaDb, RabbitNode,
};

const LIMIT: u64 = 64 * 1024;
const BIG_ROW: usize = 200 * 1024;

fn toml(s: &CaptureSetup, on_too_large: &str, metrics_port: u16) -> String {
    s.config()
        .with(|c| {
            c.broker.max_message_bytes = LIMIT;
            c.broker.on_too_large = on_too_large.into();
            c.metrics.listen = format!("127.0.0.1:{metrics_port}");
        })
        .to_toml()
}

/// The saved checkpoint's (file, pos).
fn checkpoint_of(bridge: &BridgeProcess) -> (String, u64) {
    let path = bridge.dir().join("bridge.checkpoint.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no checkpoint at {}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (
        value["file"].as_str().unwrap_or_default().to_string(),
        value["pos"].as_u64().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_over_max_message_bytes_stops_the_bridge_before_it_and_a_marker_takes_its_place_when_configured(
) {
    let s = CaptureSetup::new(
        "CREATE TABLE docs (id INT PRIMARY KEY, body LONGTEXT NOT NULL, note VARCHAR(20) NOT NULL)",
    )
    .await;
    s.db.exec("INSERT INTO docs VALUES (1, 'small', 'first')");
    let port = free_port();
    let mut bridge = BridgeProcess::start(&toml(&s, "stop", port));
    let first = s.changes(1).await;
    assert_eq!(first[0].key.get("id"), Some(&json!(1)));

    // Where the server's binlog ends before the big row: the checkpoint may not pass it.
    let status = s.db.query_rows("SHOW MASTER STATUS");
    let (file, end_before) = (status[0][0].clone(), status[0][1].parse::<u64>().unwrap());
    s.db.exec(&format!(
        "INSERT INTO docs VALUES (2, REPEAT('x', {BIG_ROW}), 'big');
         INSERT INTO docs VALUES (3, 'small', 'after');"
    ));

    let log = bridge_failure(&mut bridge);
    for part in [
        "app.docs",
        r#"{"id":2}"#,
        "broker.max_message_bytes = 65536",
        &format!("binlog position {file}:"),
        "broker.on_too_large = \"marker\"",
        "max_message_size",
    ] {
        assert!(
            log.contains(part),
            "`{part}` missing from the bridge's log:\n{log}"
        );
    }
    let size: u64 = log
        .split("makes a message of ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in the error:\n{log}"));
    assert!(size > BIG_ROW as u64, "{size}");
    let (saved_file, saved_pos) = checkpoint_of(&bridge);
    assert_eq!(saved_file, file, "the checkpoint moved to another file");
    assert!(
        saved_pos <= end_before,
        "the checkpoint ({saved_pos}) passed the too-large row (the binlog ended at {end_before} before it)"
    );
    let nothing = s.rest(Duration::from_secs(2)).await;
    assert!(
        nothing.is_empty(),
        "published after the too-large row: {nothing:#?}"
    );

    // Started again with the marker: the big row's marker, then the row after it.
    bridge.write_config(&toml(&s, "marker", port));
    bridge.restart();
    let got = s
        .changes_until(|got| got.iter().any(|c| c.key.get("id") == Some(&json!(3))))
        .await;
    let got: Vec<_> = got
        .into_iter()
        .filter(|c| c.key.get("id") != Some(&json!(1)))
        .collect();
    assert_eq!(got.len(), 2, "{got:#?}");
    let marker = &got[0];
    assert_eq!(marker.key.get("id"), Some(&json!(2)), "{got:#?}");
    let too_large = marker
        .too_large
        .unwrap_or_else(|| panic!("not a marker: {marker:#?}"));
    assert_eq!((too_large.bytes, too_large.limit), (size, LIMIT));
    assert!(
        marker.after.is_none() && marker.before.is_none() && marker.changed.is_empty(),
        "a marker carries no row data: {marker:#?}"
    );
    assert_eq!(marker.database, "app");
    assert_eq!(marker.table, "docs");
    assert_eq!(marker.source.file, file);
    assert!(marker.source.pos >= end_before, "{marker:#?}");
    assert_eq!(
        got[1].after.clone().map(Value::Object),
        Some(json!({"id": 3, "body": "small", "note": "after"}))
    );
    assert!(got[1].seq > marker.seq);
    let markers = eventually(
        Duration::from_secs(30),
        "cdc_bridge_too_large_markers_total",
        async || {
            let (_, text) = http_get(port, "/metrics").await?;
            sample(&text, "cdc_bridge_too_large_markers_total").filter(|n| *n >= 1.0)
        },
        || bridge.log_tail(20),
    )
    .await;
    assert_eq!(markers, 1.0);
    assert!(bridge.terminate().success(), "{}", bridge.log());
}

/// A broker whose `max_message_size` (128 KiB) is below `broker.max_message_bytes` (1 MiB)
/// closes the channel on a 200 KiB row: the bridge stops at that first refusal naming both
/// limits, instead of publishing the row again after every reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_limit_below_max_message_bytes_stops_the_bridge_at_the_first_refusal() {
    let node = RabbitNode::start_with_settings("max_message_size = 131072");
    let db = MariaDb::start();
    db.exec("CREATE TABLE docs (id INT PRIMARY KEY, body LONGTEXT NOT NULL)");
    let url = node.amqp_url();
    let exchange = unique_name("size.x");
    let queue = unique_name("size.q");
    declare_bound_queue(&url, &exchange, &queue).await;
    let config = bridge_config(db.port(), &url, &exchange).with(|c| {
        c.source.start = "start".into();
        c.broker.max_message_bytes = 1024 * 1024;
    });
    let mut bridge = BridgeProcess::start(&config.to_toml());
    db.exec(&format!(
        "INSERT INTO docs VALUES (1, REPEAT('x', {BIG_ROW}))"
    ));
    let log = bridge_failure(&mut bridge);
    for part in [
        "larger than its max_message_size",
        "131072",
        "broker.max_message_bytes",
        "rabbitmq.conf",
    ] {
        assert!(
            log.contains(part),
            "`{part}` missing from the bridge's log:\n{log}"
        );
    }
    assert!(
        !log.contains("published unconfirmed messages again"),
        "the refused message was published again:\n{log}"
    );
}

/// `source.read_ahead_bytes` and `broker.confirm_window_bytes` at 65536 and twelve rows of
/// 100 KiB: the reader and the window hold one at a time, and every row arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_larger_than_the_byte_bounds_are_read_and_published_one_at_a_time_in_order() {
    const ROWS: i64 = 12;
    let s =
        CaptureSetup::new("CREATE TABLE docs (id INT PRIMARY KEY, body LONGTEXT NOT NULL)").await;
    for id in 1..=ROWS {
        s.db.exec(&format!(
            "INSERT INTO docs VALUES ({id}, REPEAT('x', 102400))"
        ));
    }
    let config = s.config().with(|c| {
        c.source.read_ahead_bytes = Some(65_536);
        c.broker.confirm_window_bytes = Some(65_536);
    });
    let mut bridge = BridgeProcess::start(&config.to_toml());
    let changes = s.changes(ROWS as usize).await;
    let ids: Vec<i64> = changes
        .iter()
        .map(|c| c.key["id"].as_i64().expect("an integer id"))
        .collect();
    assert_eq!(ids, (1..=ROWS).collect::<Vec<_>>());
    assert!(bridge.terminate().success(), "{}", bridge.log());
}
