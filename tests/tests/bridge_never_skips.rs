//! Changes the binlog does not carry as rows of a captured table are never passed over in
//! silence, on a real MariaDB: session-level STATEMENT format and MINIMAL images, table resets
//! (TRUNCATE, RENAME, DROP) that stop the bridge until their position is accepted, the cut-over
//! of an online schema change (which passes), keyless tables created while running (a stop, or
//! where configured a loud skip with a metric), and foreign keys that cascade into a captured
//! table (refused at start until acknowledged).

use std::collections::BTreeSet;
use std::time::Duration;

use change_message::Operation;
use serde_json::json;
use system_tests::http_probe::http_get;
use system_tests::{
    bridge_failure, drain_changes, free_port, BridgeConfig, BridgeProcess, CaptureSetup as Setup,
};

const ARRIVAL: Duration = Duration::from_secs(30);

fn toml(s: &Setup, change: impl FnOnce(&mut BridgeConfig)) -> String {
    s.config()
        .with(|c| {
            c.broker.heartbeat_secs = 3600;
            change(c);
        })
        .to_toml()
}

/// The `file:pos` a table-reset stop names (`binlog binlog.000001:1234: TRUNCATE of ...`).
fn reset_position(log: &str, change: &str) -> String {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(change))
        .unwrap_or_else(|| panic!("no stop naming {change:?}:\n{log}"));
    let at = line
        .find("binlog binlog.")
        .unwrap_or_else(|| panic!("no binlog position in {line}"));
    let rest = &line[at + "binlog ".len()..];
    rest.split(':').take(2).collect::<Vec<_>>().join(":")
}

const ITEMS: &str =
    "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, qty INT NOT NULL);
    CREATE TABLE other (id INT PRIMARY KEY, n INT NOT NULL)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_statement_format_stops_the_bridge_naming_table_position_and_setting() {
    let s = Setup::new(ITEMS).await;
    let mut bridge = BridgeProcess::start(&toml(&s, |c| {
        c.capture.include_tables = vec!["app.items".into()]
    }));
    s.db.exec(
        "INSERT INTO items VALUES (1, 'row format', 1);
         SET SESSION binlog_format = 'STATEMENT';
         INSERT INTO other VALUES (1, 1);
         INSERT INTO items VALUES (2, 'statement', 2);",
    );
    let got = s.changes(1).await;
    assert_eq!(got[0].key, json!({"id": 1}).as_object().cloned().unwrap());
    let log = bridge_failure(&mut bridge);
    for needle in [
        "statement-format change of captured table app.items",
        "binlog_format",
        "INSERT INTO items VALUES (2",
        "binlog.000001:",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    let rest = drain_changes(&s.url, &s.queue, usize::MAX, Duration::from_secs(1)).await;
    assert!(rest.is_empty(), "published past the statement: {rest:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_minimal_row_image_stops_the_bridge_naming_table_position_and_setting() {
    let s = Setup::new(ITEMS).await;
    let mut bridge = BridgeProcess::start(&toml(&s, |_| {}));
    s.db.exec(
        "INSERT INTO items VALUES (1, 'lamp', 1);
         SET SESSION binlog_row_image = 'MINIMAL';
         UPDATE items SET qty = 2 WHERE id = 1;",
    );
    let got = s.changes(1).await;
    assert_eq!(got[0].op, Operation::Insert);
    let log = bridge_failure(&mut bridge);
    for needle in [
        "captured table app.items",
        "binlog_row_image",
        "lacks columns",
        "binlog.000001:",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    let rest = drain_changes(&s.url, &s.queue, usize::MAX, Duration::from_secs(1)).await;
    assert!(rest.is_empty(), "published a partial image: {rest:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_resets_of_captured_tables_stop_the_bridge_until_their_position_is_accepted() {
    let s = Setup::new(ITEMS).await;
    s.db.exec(
        "INSERT INTO items VALUES (1, 'lamp', 1);
         TRUNCATE TABLE items;
         INSERT INTO items VALUES (2, 'desk', 1);
         RENAME TABLE other TO other_2024;
         DROP TABLE items;
         CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, qty INT NOT NULL);
         INSERT INTO items VALUES (3, 'chair', 1);",
    );
    let mut accepted: Vec<String> = Vec::new();
    let mut ids_seen = BTreeSet::new();
    let mut bridge = BridgeProcess::start(&toml(&s, |_| {}));
    for (change, ids_by_now) in [
        ("TRUNCATE of captured table app.items", vec![1]),
        (
            "RENAME of captured table app.other to app.other_2024",
            vec![1, 2],
        ),
        ("DROP TABLE of captured table app.items", vec![1, 2]),
    ] {
        let log = bridge_failure(&mut bridge);
        for needle in [change, "source.accept_table_resets_at", "re-sync"] {
            assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
        }
        // Everything before the reset was published (perhaps again, after a restart), nothing
        // after it.
        for got in drain_changes(&s.url, &s.queue, usize::MAX, Duration::from_secs(2)).await {
            ids_seen.insert(got.key["id"].as_i64().unwrap_or_default());
        }
        assert_eq!(
            ids_seen,
            ids_by_now.into_iter().collect::<BTreeSet<i64>>(),
            "stopped at {change}"
        );
        accepted.push(reset_position(&log, change));
        let list = accepted.clone();
        bridge.write_config(&toml(&s, |c| c.source.accept_table_resets_at = list));
        bridge.restart();
    }
    s.changes_until(|got| got.iter().any(|c| c.key["id"] == json!(3)))
        .await;
    assert!(bridge.is_running(), "{}", bridge.log());
    assert!(
        bridge.log().contains("passing a table reset accepted"),
        "{}",
        bridge.log()
    );
    assert!(bridge.terminate().success(), "{}", bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cut_over_of_an_online_schema_change_passes_and_its_shadow_table_is_not_captured() {
    let s = Setup::new(ITEMS).await;
    let mut bridge = BridgeProcess::start(&toml(&s, |_| {}));
    // What gh-ost does: a shadow copy with the new schema, filled from the original, swapped
    // in with one RENAME, the original dropped.
    s.db.exec(
        "INSERT INTO items VALUES (1, 'lamp', 1);
         CREATE TABLE _items_gho LIKE items;
         ALTER TABLE _items_gho ADD COLUMN note VARCHAR(20) NULL;
         INSERT INTO _items_gho (id, name, qty) SELECT id, name, qty FROM items;
         RENAME TABLE items TO _items_del, _items_gho TO items;
         DROP TABLE _items_del;
         UPDATE items SET note = 'new column', qty = 2 WHERE id = 1;",
    );
    let got = s.changes(2).await;
    assert_eq!(got[0].op, Operation::Insert);
    assert_eq!(got[1].op, Operation::Update);
    assert_eq!(got[1].table, "items");
    assert_eq!(
        got[1].after.clone().map(serde_json::Value::Object),
        Some(json!({"id": 1, "name": "lamp", "qty": 2, "note": "new column"}))
    );
    let rest = drain_changes(&s.url, &s.queue, usize::MAX, Duration::from_secs(1)).await;
    assert!(
        rest.is_empty(),
        "the shadow table's rows were published: {rest:#?}"
    );
    assert!(bridge.is_running(), "{}", bridge.log());
    assert!(bridge.terminate().success(), "{}", bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_table_created_while_running_stops_the_bridge_naming_it() {
    let s = Setup::new(ITEMS).await;
    let mut bridge = BridgeProcess::start(&toml(&s, |_| {}));
    assert!(
        bridge
            .wait_for_log_async("database checks passed", ARRIVAL)
            .await,
        "{}",
        bridge.log()
    );
    s.db.exec(
        "INSERT INTO items VALUES (1, 'lamp', 1);
         CREATE TABLE events (at DATETIME NOT NULL, what VARCHAR(20) NOT NULL);
         INSERT INTO events VALUES (NOW(), 'opened');
         INSERT INTO items VALUES (2, 'desk', 1);",
    );
    let got = s.changes(1).await;
    assert_eq!(got[0].key, json!({"id": 1}).as_object().cloned().unwrap());
    let log = bridge_failure(&mut bridge);
    for needle in [
        "app.events has no primary key",
        "on_keyless_table",
        "binlog.000001:",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    let rest = drain_changes(&s.url, &s.queue, usize::MAX, Duration::from_secs(1)).await;
    assert!(
        rest.is_empty(),
        "published past the keyless table: {rest:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_tables_are_skipped_loudly_with_a_metric_where_configured() {
    let s = Setup::new(&format!(
        "{ITEMS}; CREATE TABLE audit (at DATETIME NOT NULL, what VARCHAR(20) NOT NULL)"
    ))
    .await;
    let port = free_port();
    let mut bridge = BridgeProcess::start(&toml(&s, |c| {
        c.capture.on_keyless_table = "skip".into();
        c.metrics.listen = format!("127.0.0.1:{port}");
    }));
    assert!(
        bridge
            .wait_for_log_async("database checks passed", ARRIVAL)
            .await,
        "{}",
        bridge.log()
    );
    s.db.exec(
        "INSERT INTO audit VALUES (NOW(), 'one');
         CREATE TABLE events (at DATETIME NOT NULL, what VARCHAR(20) NOT NULL);
         INSERT INTO events VALUES (NOW(), 'opened');
         INSERT INTO events VALUES (NOW(), 'closed');
         INSERT INTO items VALUES (1, 'lamp', 1);",
    );
    let got = s.changes(1).await;
    assert_eq!(got[0].table, "items");
    let log = bridge.log();
    for needle in [
        "captured tables without a primary key are skipped",
        "app.audit",
        "its changes are left out and reach no partner",
        "still leaving out changes of a captured table without a primary key",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    let metrics = match http_get(port, "/metrics").await {
        Some((200, body)) => body,
        other => panic!("GET /metrics: {other:?}"),
    };
    for sample in [
        "cdc_bridge_keyless_events_skipped_total{table=\"app.audit\"} 1",
        "cdc_bridge_keyless_events_skipped_total{table=\"app.events\"} 2",
    ] {
        assert!(metrics.contains(sample), "no {sample:?} in:\n{metrics}");
    }
    assert!(bridge.terminate().success(), "{}", bridge.log());
}

const CASCADE: &str = "CREATE TABLE locations (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL);
    CREATE TABLE evses (id INT PRIMARY KEY, location_id INT NOT NULL,
      CONSTRAINT fk_evses_location FOREIGN KEY (location_id) REFERENCES locations (id)
        ON DELETE CASCADE);
    CREATE TABLE notes (id INT PRIMARY KEY, location_id INT NOT NULL,
      CONSTRAINT fk_notes_location FOREIGN KEY (location_id) REFERENCES locations (id))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_cascading_into_captured_tables_are_refused_until_acknowledged() {
    let s = Setup::new(CASCADE).await;
    let mut bridge = BridgeProcess::start(&toml(&s, |_| {}));
    let log = bridge_failure(&mut bridge);
    for needle in [
        "app.evses.fk_evses_location (ON DELETE CASCADE from app.locations)",
        "capture.acknowledged_cascades = [\"app.evses.fk_evses_location\"]",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    assert!(
        !log.contains("fk_notes_location"),
        "a RESTRICT key is no cascade:\n{log}"
    );

    bridge.write_config(&toml(&s, |c| {
        c.source.start = "end".into();
        c.capture.acknowledged_cascades = vec!["app.evses.fk_evses_location".into()];
    }));
    bridge.restart();
    assert!(
        bridge
            .wait_for_log_async("database checks passed", ARRIVAL)
            .await,
        "{}",
        bridge.log()
    );
    // Why the key is refused: the cascaded delete of the EVSE is not in the binlog.
    s.db.exec(
        "INSERT INTO locations VALUES (1, 'depot');
         INSERT INTO evses VALUES (10, 1);
         DELETE FROM locations WHERE id = 1;",
    );
    let got = s.changes(3).await;
    let seen: Vec<(String, Operation)> = got.iter().map(|c| (c.table.clone(), c.op)).collect();
    assert_eq!(
        seen,
        vec![
            ("locations".to_string(), Operation::Insert),
            ("evses".to_string(), Operation::Insert),
            ("locations".to_string(), Operation::Delete),
        ]
    );
    let rest = drain_changes(&s.url, &s.queue, usize::MAX, Duration::from_secs(2)).await;
    assert!(
        rest.is_empty(),
        "the cascade reached the binlog after all: {rest:#?}"
    );
    assert!(bridge
        .log()
        .contains("acknowledged: changes this foreign key makes"));
    assert!(bridge.terminate().success(), "{}", bridge.log());
}
