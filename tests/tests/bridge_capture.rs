//! What the bridge captures and how it publishes it: exact values of every column type, row
//! images, transaction order, primary-key changes, the dedup rules, capture filters, heartbeats,
//! AMQP properties, stopping with SIGTERM, checkpoint progress on idle tables, unroutable
//! messages and tables created while the bridge runs.
//!
//! Every test uses a private MariaDB and unique exchange/queue names on the shared RabbitMQ
//! (deleted when the test ends, also when it fails).

use std::path::Path;
use std::time::{Duration, Instant};

use change_message::{Heartbeat, Message, Operation, Row, RowChange};
use serde_json::{json, Value};
use system_tests::{
    bridge_config, drain, drain_changes, drain_received, last_logged_number, queue_len,
    shared_amqp_url, unique_name, BridgeConfig, BridgeProcess, BrokerCleanup, CaptureSetup,
    MariaDb, MariaDbOptions,
};

/// Generous upper bound for messages to show up (never asserted as a timing).
const ARRIVAL: Duration = Duration::from_secs(20);
/// How long to keep listening when checking that nothing more arrives.
const QUIET: Duration = Duration::from_millis(1500);
const STARTED: &str = "database checks passed";

// ------------------------------------------------------------------------------------------------
// Fixture
// ------------------------------------------------------------------------------------------------

/// The shared capture fixture; bridges start through [`start_bridge`].
type Setup = CaptureSetup;

fn start_bridge(config: BridgeConfig) -> BridgeProcess {
    BridgeProcess::start(&config.to_toml())
}

fn row(value: Value) -> Row {
    value
        .as_object()
        .cloned()
        .unwrap_or_else(|| panic!("not a JSON object: {value}"))
}

fn keys(row: &Row) -> Vec<&str> {
    row.keys().map(String::as_str).collect()
}

/// Asserts an image equals `expected` value by value and in column order.
fn assert_image(what: &str, got: Option<&Row>, expected: Value) {
    let expected = row(expected);
    let got = got.unwrap_or_else(|| panic!("{what}: image missing"));
    for (column, value) in &expected {
        assert_eq!(
            got.get(column),
            Some(value),
            "{what}: column `{column}` (whole image: {})",
            Value::Object(got.clone())
        );
    }
    assert_eq!(keys(got), keys(&expected), "{what}: columns or their order");
}

fn checkpoint_path(bridge: &BridgeProcess) -> std::path::PathBuf {
    bridge.dir().join("bridge.checkpoint.json")
}

fn read_checkpoint(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// The harness's config builder has no `checkpoint.interval_ms`: add it to the TOML text (the
/// `[checkpoint]` table is followed by `[log]`).
fn with_checkpoint_interval(toml: String, interval_ms: u64) -> String {
    let marker = "\n\n[log]\n";
    assert!(toml.contains(marker), "unexpected config layout:\n{toml}");
    toml.replacen(
        marker,
        &format!("\ninterval_ms = {interval_ms}\n{marker}"),
        1,
    )
}

/// The server's current binlog file and position.
fn master_position(db: &MariaDb) -> (String, u64) {
    let rows = db.query_rows("SHOW MASTER STATUS");
    let first = rows.first().expect("SHOW MASTER STATUS returned a row");
    (
        first[0].clone(),
        first[1].parse().expect("binlog position is a number"),
    )
}

/// Waits until the server's binlog dump thread (the bridge's replication connection) says it has
/// sent the whole binlog, then gives the bridge a moment to take in what it received. Only for
/// tests where nothing can be observed on the queue (everything is held in the dedup buffer).
async fn wait_until_binlog_sent(db: &MariaDb) {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let states = db.query(
            "SELECT COALESCE(STATE, '') FROM information_schema.PROCESSLIST \
             WHERE COMMAND LIKE 'Binlog Dump%'",
        );
        if states.contains("has sent all binlog") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge's binlog dump thread never caught up; processlist states: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// SIGTERM, exit 0, and the stop line with the dedup counters.
fn stop_cleanly(bridge: &mut BridgeProcess) -> String {
    let status = bridge.terminate();
    let log = bridge.log();
    assert!(
        status.success(),
        "the bridge did not exit 0 after SIGTERM: {status:?}\n{log}"
    );
    log
}

/// The `dedup_merged=N` value of the last stats line the bridge logged.
fn last_dedup_merged(log: &str) -> Option<u64> {
    last_logged_number(log, "dedup_merged")
}

// ------------------------------------------------------------------------------------------------
// Values
// ------------------------------------------------------------------------------------------------

const ALL_TYPES: &str = "CREATE TABLE all_types (
    id INT NOT NULL PRIMARY KEY,
    ti TINYINT NULL, si SMALLINT NULL, mi MEDIUMINT NULL, i INT NULL, bi BIGINT NULL,
    tiu TINYINT UNSIGNED NULL, siu SMALLINT UNSIGNED NULL, miu MEDIUMINT UNSIGNED NULL,
    iu INT UNSIGNED NULL, biu BIGINT UNSIGNED NULL,
    de DECIMAL(20,6) NULL, f FLOAT NULL, d DOUBLE NULL,
    c CHAR(10) NULL, vc VARCHAR(100) NULL, tx TEXT NULL, bl BLOB NULL, j JSON NULL,
    e ENUM('a','b','c') NULL, st SET('x','y','z') NULL, bt BIT(10) NULL, y YEAR NULL,
    dt DATE NULL, tm TIME(2) NULL, dtm DATETIME(6) NULL, ts TIMESTAMP(3) NULL DEFAULT NULL
) DEFAULT CHARSET = utf8mb4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_is_published_with_its_exact_value() {
    let s = Setup::new(ALL_TYPES).await;
    s.db.exec(
        "SET time_zone = '+00:00';
         INSERT INTO all_types VALUES (1,
            -128, -32768, -8388608, -2147483648, -9223372036854775808,
            255, 65535, 16777215, 4294967295, 18446744073709551615,
            '-12345678901234.123456', 1.1, -6.02214076e23,
            'héllo', 'Grüße 🚗 ñ', 'emoji 😀 and accents àéîõü ç', 0x00FF80,
            '{\"name\": \"Zoë 🚗\", \"nested\": {\"list\": [1, 2.5, \"ü\", null, true, {\"deep\": {\"é\": \"ñ\"}}], \"empty\": {}}, \"n\": -42}',
            'b', 'x,z', b'1000000001', 2155,
            '2024-02-29', '838:59:59.12', '2024-02-29 23:59:58.123456', '2024-02-29 23:59:58.129');
         INSERT INTO all_types VALUES (2,
            127, 32767, 8388607, 2147483647, 9223372036854775807,
            0, 0, 0, 0, 0,
            '99999999999999.999999', -0.25, 1e-300,
            '', 'plain ascii', '', '', '[]',
            'a', '', b'0', 1901,
            '1000-01-01', '00:00:00.00', '1000-01-01 00:00:00.999999', '1970-01-01 00:00:01.000');
         INSERT INTO all_types (id) VALUES (3);",
    );
    let mut bridge = start_bridge(s.config());
    let got = s.changes(3).await;

    let first = &got[0];
    assert_eq!(first.op, Operation::Insert);
    assert_eq!(
        (first.database.as_str(), first.table.as_str()),
        ("app", "all_types")
    );
    assert_eq!(first.key, row(json!({"id": 1})));
    assert_eq!(first.before, None);
    assert_eq!(first.binary_columns, vec!["bl".to_string()]);
    assert_image(
        "row 1 (minimums, unsigned maximums, unicode)",
        first.after.as_ref(),
        json!({
            "id": 1,
            "ti": -128, "si": -32768, "mi": -8388608, "i": -2147483648i64,
            "bi": -9223372036854775808i64,
            "tiu": 255, "siu": 65535, "miu": 16777215, "iu": 4294967295u64,
            "biu": 18446744073709551615u64,
            "de": "-12345678901234.123456", "f": 1.1, "d": -6.02214076e23,
            "c": "héllo", "vc": "Grüße 🚗 ñ", "tx": "emoji 😀 and accents àéîõü ç",
            "bl": "AP+A",
            "j": {"name": "Zoë 🚗",
                  "nested": {"list": [1, 2.5, "ü", null, true, {"deep": {"é": "ñ"}}], "empty": {}},
                  "n": -42},
            "e": "b", "st": "x,z", "bt": 513, "y": 2155,
            "dt": "2024-02-29", "tm": "838:59:59.12",
            "dtm": "2024-02-29T23:59:58.123456", "ts": "2024-02-29T23:59:58.129Z"
        }),
    );

    let second = &got[1];
    assert_eq!(second.key, row(json!({"id": 2})));
    assert_eq!(second.binary_columns, vec!["bl".to_string()]);
    assert_image(
        "row 2 (maximums, zeros, empty values)",
        second.after.as_ref(),
        json!({
            "id": 2,
            "ti": 127, "si": 32767, "mi": 8388607, "i": 2147483647,
            "bi": 9223372036854775807i64,
            "tiu": 0, "siu": 0, "miu": 0, "iu": 0, "biu": 0,
            "de": "99999999999999.999999", "f": -0.25, "d": 1e-300,
            "c": "", "vc": "plain ascii", "tx": "", "bl": "", "j": [],
            "e": "a", "st": "", "bt": 0, "y": 1901,
            "dt": "1000-01-01", "tm": "00:00:00.00",
            "dtm": "1000-01-01T00:00:00.999999", "ts": "1970-01-01T00:00:01.000Z"
        }),
    );

    let nulls = &got[2];
    assert_eq!(nulls.key, row(json!({"id": 3})));
    let mut expected = json!({"id": 3});
    for column in [
        "ti", "si", "mi", "i", "bi", "tiu", "siu", "miu", "iu", "biu", "de", "f", "d", "c", "vc",
        "tx", "bl", "j", "e", "st", "bt", "y", "dt", "tm", "dtm", "ts",
    ] {
        expected[column] = Value::Null;
    }
    assert_image("row 3 (all NULL)", nulls.after.as_ref(), expected);

    stop_cleanly(&mut bridge);
}

// ------------------------------------------------------------------------------------------------
// Row images
// ------------------------------------------------------------------------------------------------

const ITEMS: &str = "CREATE TABLE items (
    id INT NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT NOT NULL, note TEXT NULL
)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_carry_before_after_and_changed_columns() {
    let s = Setup::new(ITEMS).await;
    s.db.exec(
        "INSERT INTO items VALUES (1, 'lamp', 3, 'kept');
         UPDATE items SET name = 'lámpara', qty = -7 WHERE id = 1;
         UPDATE items SET note = NULL WHERE id = 1;",
    );
    let mut bridge = start_bridge(s.config());
    let got = s.changes(3).await;

    assert_eq!(got[0].op, Operation::Insert);
    let update = &got[1];
    assert_eq!(update.op, Operation::Update);
    assert_eq!(update.key, row(json!({"id": 1})));
    assert_image(
        "update before",
        update.before.as_ref(),
        json!({"id": 1, "name": "lamp", "qty": 3, "note": "kept"}),
    );
    assert_image(
        "update after",
        update.after.as_ref(),
        json!({"id": 1, "name": "lámpara", "qty": -7, "note": "kept"}),
    );
    assert_eq!(update.changed, vec!["name", "qty"]);
    assert_eq!(update.merged, 1);
    assert!(update.seq > got[0].seq);

    let to_null = &got[2];
    assert_eq!(to_null.op, Operation::Update);
    assert_image(
        "update to NULL, before",
        to_null.before.as_ref(),
        json!({"id": 1, "name": "lámpara", "qty": -7, "note": "kept"}),
    );
    assert_image(
        "update to NULL, after",
        to_null.after.as_ref(),
        json!({"id": 1, "name": "lámpara", "qty": -7, "note": null}),
    );
    assert_eq!(to_null.changed, vec!["note"]);
    assert!(to_null.seq > update.seq);

    stop_cleanly(&mut bridge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_carry_the_before_image() {
    let s = Setup::new(ITEMS).await;
    s.db.exec(
        "INSERT INTO items VALUES (1, 'lamp', 3, 'kept'), (2, 'desk', 1, NULL);
         DELETE FROM items WHERE id = 2;
         DELETE FROM items WHERE id = 1;",
    );
    let mut bridge = start_bridge(s.config());
    let got = s.changes(4).await;
    let deletes: Vec<&RowChange> = got.iter().filter(|c| c.op == Operation::Delete).collect();
    assert_eq!(deletes.len(), 2, "{got:#?}");

    assert_eq!(deletes[0].key, row(json!({"id": 2})));
    assert_image(
        "delete of 2",
        deletes[0].before.as_ref(),
        json!({"id": 2, "name": "desk", "qty": 1, "note": null}),
    );
    assert_eq!(deletes[1].key, row(json!({"id": 1})));
    assert_image(
        "delete of 1",
        deletes[1].before.as_ref(),
        json!({"id": 1, "name": "lamp", "qty": 3, "note": "kept"}),
    );
    for delete in deletes {
        assert_eq!(delete.after, None, "a delete has no after image");
        assert!(delete.changed.is_empty());
        assert!(delete.id.ends_with(":delete"), "{}", delete.id);
    }
    stop_cleanly(&mut bridge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_row_transactions_keep_their_order() {
    let s = Setup::new(
        "CREATE TABLE a (id INT NOT NULL PRIMARY KEY, v INT NOT NULL);
         CREATE TABLE b (id INT NOT NULL PRIMARY KEY, v VARCHAR(10) NOT NULL);",
    )
    .await;
    s.db.exec(
        "START TRANSACTION;
         INSERT INTO a VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5);
         INSERT INTO b VALUES (10, 'x'), (11, 'y'), (12, 'z');
         UPDATE a SET v = v + 100 WHERE id <= 3;
         DELETE FROM b WHERE id = 11;
         INSERT INTO a VALUES (6, 6);
         UPDATE b SET v = 'zz' WHERE id = 12;
         DELETE FROM a WHERE id = 5;
         UPDATE a SET v = 0 WHERE id = 1;
         COMMIT;",
    );
    let expected: Vec<(&str, Operation, i64)> = vec![
        ("a", Operation::Insert, 1),
        ("a", Operation::Insert, 2),
        ("a", Operation::Insert, 3),
        ("a", Operation::Insert, 4),
        ("a", Operation::Insert, 5),
        ("b", Operation::Insert, 10),
        ("b", Operation::Insert, 11),
        ("b", Operation::Insert, 12),
        ("a", Operation::Update, 1),
        ("a", Operation::Update, 2),
        ("a", Operation::Update, 3),
        ("b", Operation::Delete, 11),
        ("a", Operation::Insert, 6),
        ("b", Operation::Update, 12),
        ("a", Operation::Delete, 5),
        ("a", Operation::Update, 1),
    ];
    let mut bridge = start_bridge(s.config());
    let got = s.changes(expected.len()).await;

    let summary: Vec<(&str, Operation, i64)> = got
        .iter()
        .map(|c| (c.table.as_str(), c.op, c.key["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(summary, expected, "statement order inside the transaction");

    let gtid = got[0].source.gtid.clone();
    assert!(gtid.is_some(), "MariaDB transactions have a GTID");
    for (i, change) in got.iter().enumerate() {
        assert_eq!(
            change.source.tx_index as usize, i,
            "tx_index of {change:#?}"
        );
        assert_eq!(change.source.gtid, gtid, "same transaction: same GTID");
        assert_eq!(change.source.commit_time, got[0].source.commit_time);
        assert_eq!(change.merged, 1);
        assert_eq!(change.source.server_id, 1, "the harness server's server_id");
        assert_eq!(
            change.id,
            format!(
                "{}:{}:{}:{}",
                change.source.file,
                change.source.pos,
                change.source.row,
                change.op.as_str()
            ),
            "id is file:pos:row:op"
        );
        let t = change.source.commit_time.as_bytes();
        assert!(
            t.len() == 20 && t[4] == b'-' && t[10] == b'T' && t[19] == b'Z',
            "commit_time is RFC 3339 UTC with seconds: {}",
            change.source.commit_time
        );
        if i > 0 {
            assert!(
                change.seq > got[i - 1].seq,
                "seq must increase: {} then {}",
                got[i - 1].seq,
                change.seq
            );
        }
    }
    // The multi-row UPDATE is one rows event: rows 0, 1, 2 of it, in key order.
    let update_rows: Vec<(u64, u32)> = got[8..11]
        .iter()
        .map(|c| (c.source.pos, c.source.row))
        .collect();
    assert!(
        update_rows.iter().all(|(pos, _)| *pos == update_rows[0].0),
        "one rows event: {update_rows:?}"
    );
    assert_eq!(
        update_rows.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_image(
        "multi-row update, second row",
        got[9].after.as_ref(),
        json!({"id": 2, "v": 102}),
    );
    assert!(
        s.rest(QUIET).await.is_empty(),
        "nothing beyond the transaction"
    );
    stop_cleanly(&mut bridge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_primary_key_publishes_a_delete_then_an_insert() {
    let s = Setup::new(ITEMS).await;
    s.db.exec(
        "INSERT INTO items VALUES (1, 'lamp', 3, NULL);
         UPDATE items SET id = 2, qty = 4 WHERE id = 1;",
    );
    let mut bridge = start_bridge(s.config());
    let got = s.changes(3).await;

    assert_eq!(got[0].op, Operation::Insert);
    let (delete, insert) = (&got[1], &got[2]);
    assert_eq!(delete.op, Operation::Delete);
    assert_eq!(delete.key, row(json!({"id": 1})));
    assert_image(
        "delete of the old key",
        delete.before.as_ref(),
        json!({"id": 1, "name": "lamp", "qty": 3, "note": null}),
    );
    assert_eq!(delete.after, None);
    assert_eq!(insert.op, Operation::Insert);
    assert_eq!(insert.key, row(json!({"id": 2})));
    assert_image(
        "insert of the new key",
        insert.after.as_ref(),
        json!({"id": 2, "name": "lamp", "qty": 4, "note": null}),
    );
    assert_eq!(insert.before, None);
    assert!(insert.seq > delete.seq, "the delete comes first");
    assert_ne!(insert.id, delete.id, "two changes, two ids");
    assert_eq!(delete.source.gtid, insert.source.gtid);
    assert_eq!(insert.source.tx_index, delete.source.tx_index + 1);
    stop_cleanly(&mut bridge);
}

// ------------------------------------------------------------------------------------------------
// Dedup
// ------------------------------------------------------------------------------------------------

const ROWS: &str = "CREATE TABLE r (
    id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL, n INT NOT NULL
);
CREATE TABLE marker (id INT NOT NULL PRIMARY KEY);";

fn dedup_config(s: &Setup, window_ms: u64) -> BridgeConfig {
    s.config().with(|c| c.dedup.window_ms = window_ms)
}

/// Runs `burst` (one script of quick statements) while the bridge runs with a 3 s window, after
/// `before` (if any) was published; returns the single message the burst must produce. Checks
/// that nothing else is published, even after a SIGTERM flush, and the merge count in the log.
/// The message's `seq` is counted from the run's first change (1).
async fn one_merged_message(before: Option<&str>, burst: &str, merged_away: u64) -> RowChange {
    let s = Setup::new(ROWS).await;
    let mut bridge = start_bridge(dedup_config(&s, 3000));
    if let Some(sql) = before {
        s.db.exec(sql);
        let first = s.changes(1).await;
        assert_eq!(first[0].merged, 1);
    }
    s.db.exec(burst);
    let got = s.changes(1).await;
    let log = stop_cleanly(&mut bridge);
    let extra = s.rest(QUIET).await;
    assert!(
        extra.is_empty(),
        "the burst must be one message; also got {extra:#?}"
    );
    assert!(
        log.contains("dedup_merged"),
        "no dedup stats at stop:\n{log}"
    );
    assert_eq!(
        last_dedup_merged(&log),
        Some(merged_away),
        "dedup_merged at stop:\n{log}"
    );
    let first_seq = last_logged_number(&log, "first_seq").expect("the bridge logs its first seq");
    let mut msg = got.into_iter().next().unwrap();
    // Numbered from the lineage's first seq: the n-th change of the run is n.
    msg.seq = msg.seq - first_seq + 1;
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_merges_insert_then_update_into_one_insert() {
    let msg = one_merged_message(
        None,
        "INSERT INTO r VALUES (1, 'a', 0);
         UPDATE r SET v = 'b', n = 1 WHERE id = 1;
         UPDATE r SET n = 2 WHERE id = 1;",
        2,
    )
    .await;
    assert_eq!(msg.op, Operation::Insert);
    assert_eq!(msg.merged, 3);
    assert_eq!(msg.key, row(json!({"id": 1})));
    assert_image(
        "merged insert",
        msg.after.as_ref(),
        json!({"id": 1, "v": "b", "n": 2}),
    );
    assert_eq!(msg.before, None);
    assert!(msg.changed.is_empty());
    assert_eq!(msg.seq, 3, "the newest change's seq");
    assert!(
        msg.id.ends_with(":update"),
        "the newest change's id: {}",
        msg.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_merges_update_then_update_into_one_update() {
    let msg = one_merged_message(
        Some("INSERT INTO r VALUES (1, 'a', 0);"),
        "UPDATE r SET n = 1 WHERE id = 1;
         UPDATE r SET n = 2 WHERE id = 1;
         UPDATE r SET v = 'z' WHERE id = 1;
         UPDATE r SET n = 4 WHERE id = 1;",
        3,
    )
    .await;
    assert_eq!(msg.op, Operation::Update);
    assert_eq!(msg.merged, 4);
    assert_image(
        "first before",
        msg.before.as_ref(),
        json!({"id": 1, "v": "a", "n": 0}),
    );
    assert_image(
        "last after",
        msg.after.as_ref(),
        json!({"id": 1, "v": "z", "n": 4}),
    );
    assert_eq!(msg.changed, vec!["v", "n"]);
    assert_eq!(msg.seq, 5);
    assert!(msg.id.ends_with(":update"), "{}", msg.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_merges_update_then_delete_into_one_delete() {
    let msg = one_merged_message(
        Some("INSERT INTO r VALUES (1, 'a', 0);"),
        "UPDATE r SET v = 'b', n = 9 WHERE id = 1;
         DELETE FROM r WHERE id = 1;",
        1,
    )
    .await;
    assert_eq!(msg.op, Operation::Delete);
    assert_eq!(msg.merged, 2);
    assert_eq!(msg.key, row(json!({"id": 1})));
    assert_image(
        "image just before the delete",
        msg.before.as_ref(),
        json!({"id": 1, "v": "b", "n": 9}),
    );
    assert_eq!(msg.after, None);
    assert_eq!(msg.seq, 3);
    assert!(msg.id.ends_with(":delete"), "{}", msg.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_merges_insert_then_delete_into_one_delete() {
    let msg = one_merged_message(
        None,
        "INSERT INTO r VALUES (1, 'a', 0);
         DELETE FROM r WHERE id = 1;",
        1,
    )
    .await;
    assert_eq!(msg.op, Operation::Delete);
    assert_eq!(msg.merged, 2);
    assert_image(
        "inserted image",
        msg.before.as_ref(),
        json!({"id": 1, "v": "a", "n": 0}),
    );
    assert_eq!(msg.after, None);
    assert_eq!(msg.seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_merges_delete_then_insert_into_one_insert() {
    let msg = one_merged_message(
        Some("INSERT INTO r VALUES (1, 'a', 0);"),
        "DELETE FROM r WHERE id = 1;
         INSERT INTO r VALUES (1, 'new', 7);",
        1,
    )
    .await;
    assert_eq!(msg.op, Operation::Insert);
    assert_eq!(msg.merged, 2);
    assert_image(
        "new image",
        msg.after.as_ref(),
        json!({"id": 1, "v": "new", "n": 7}),
    );
    assert_eq!(msg.before, None);
    assert_eq!(msg.seq, 3);
    assert!(msg.id.ends_with(":insert"), "{}", msg.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_never_reorders_changes_of_one_row() {
    let s = Setup::new(ROWS).await;
    let mut bridge = start_bridge(dedup_config(&s, 3000));
    // Interleaved changes of rows 1, 2, 3 (and a key change 3 -> 4 -> 3), in rounds a little
    // apart so that some land in an open entry and some start new ones.
    let rounds = [
        "INSERT INTO r VALUES (1, 'a', 0); INSERT INTO r VALUES (2, 'a', 0);
         UPDATE r SET n = 1 WHERE id = 1; INSERT INTO r VALUES (3, 'a', 0);
         UPDATE r SET n = 1 WHERE id = 2;",
        "UPDATE r SET n = 2 WHERE id = 3; DELETE FROM r WHERE id = 2;
         UPDATE r SET n = 2 WHERE id = 1; INSERT INTO r VALUES (2, 'b', 5);",
        "UPDATE r SET id = 4 WHERE id = 3; UPDATE r SET n = 3 WHERE id = 1;
         UPDATE r SET n = 6 WHERE id = 2;",
        "UPDATE r SET v = 'c' WHERE id = 4; DELETE FROM r WHERE id = 1;
         UPDATE r SET n = 7 WHERE id = 2;",
        "INSERT INTO r VALUES (1, 'd', 10); UPDATE r SET id = 3 WHERE id = 4;
         UPDATE r SET n = 8 WHERE id = 2;",
        "UPDATE r SET n = 11 WHERE id = 1; UPDATE r SET n = 9 WHERE id = 3;
         DELETE FROM r WHERE id = 2; INSERT INTO marker VALUES (1);",
    ];
    for (i, sql) in rounds.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
        s.db.exec(sql);
    }
    let got = s
        .changes_until(|all| all.iter().any(|c| c.table == "marker"))
        .await;

    // Per record: seq strictly increases, updates continue from the previous state, and the
    // last state is the database's.
    let mut last: std::collections::BTreeMap<i64, (u64, Option<Row>)> = Default::default();
    for change in got.iter().filter(|c| c.table == "r") {
        let id = change.key["id"].as_i64().unwrap();
        if let Some((seq, state)) = last.get(&id) {
            assert!(
                change.seq > *seq,
                "row {id}: seq {} arrived after seq {seq}",
                change.seq
            );
            if change.op == Operation::Update {
                assert_eq!(
                    change.before.as_ref(),
                    state.as_ref(),
                    "row {id}: an update must start from the previous state (seq {})",
                    change.seq
                );
            }
        }
        let state = match change.op {
            Operation::Delete => None,
            _ => change.after.clone(),
        };
        last.insert(id, (change.seq, state));
    }
    let in_db: std::collections::BTreeMap<i64, Row> =
        s.db.query_rows("SELECT id, v, n FROM r ORDER BY id")
            .into_iter()
            .map(|r| {
                let id: i64 = r[0].parse().unwrap();
                let n: i64 = r[2].parse().unwrap();
                (id, row(json!({"id": id, "v": r[1], "n": n})))
            })
            .collect();
    assert_eq!(
        in_db.keys().copied().collect::<Vec<_>>(),
        vec![1, 3],
        "the script's end state"
    );
    for id in [1, 2, 3, 4] {
        let published = last
            .get(&id)
            .unwrap_or_else(|| panic!("row {id} never published: {got:#?}"))
            .1
            .clone();
        assert_eq!(
            published,
            in_db.get(&id).cloned(),
            "row {id}: the last published state must be the database's"
        );
    }
    let log = stop_cleanly(&mut bridge);
    assert!(
        last_dedup_merged(&log).is_some_and(|n| n > 0),
        "the interleaved bursts were merged at least once (else this proves little):\n{log}"
    );
    assert!(s.rest(QUIET).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_window_publishes_every_change() {
    let s = Setup::new(ROWS).await;
    let n = 10;
    let mut sql = String::from("INSERT INTO r VALUES (1, 'a', 0);\n");
    for i in 1..=n {
        sql.push_str(&format!("UPDATE r SET n = {i} WHERE id = 1;\n"));
    }
    let mut bridge = start_bridge(dedup_config(&s, 0));
    s.db.exec(&sql);
    let got = s.changes(n + 1).await;
    assert_eq!(got[0].op, Operation::Insert);
    for (i, change) in got.iter().enumerate().skip(1) {
        assert_eq!(change.op, Operation::Update);
        assert_eq!(change.merged, 1);
        assert_eq!(change.after.as_ref().unwrap()["n"], json!(i));
        assert_eq!(change.before.as_ref().unwrap()["n"], json!(i - 1));
        assert!(change.seq > got[i - 1].seq);
    }
    let log = stop_cleanly(&mut bridge);
    assert!(s.rest(QUIET).await.is_empty());
    assert_eq!(last_dedup_merged(&log), Some(0), "{log}");
}

// ------------------------------------------------------------------------------------------------
// Filters
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_and_exclude_tables_decide_what_is_captured() {
    let s = Setup::new(
        "CREATE TABLE a (id INT NOT NULL PRIMARY KEY, v INT NOT NULL);
         CREATE TABLE b (id INT NOT NULL PRIMARY KEY, v INT NOT NULL);
         CREATE TABLE c (id INT NOT NULL PRIMARY KEY, v INT NOT NULL);",
    )
    .await;
    let config = s.config().with(|c| {
        c.capture.include_tables = vec!["app.a".into(), "app.b".into()];
        c.capture.exclude_tables = vec!["app.b".into()];
    });
    s.db.exec(
        "INSERT INTO a VALUES (1, 1); INSERT INTO b VALUES (1, 1); INSERT INTO c VALUES (1, 1);
         START TRANSACTION; UPDATE c SET v = 2; UPDATE b SET v = 2; UPDATE a SET v = 2; COMMIT;
         DELETE FROM b; DELETE FROM c; INSERT INTO a VALUES (2, 2);",
    );
    let mut bridge = start_bridge(config);
    let got = s.changes(3).await;
    let summary: Vec<(&str, Operation)> = got.iter().map(|c| (c.table.as_str(), c.op)).collect();
    assert_eq!(
        summary,
        vec![
            ("a", Operation::Insert),
            ("a", Operation::Update),
            ("a", Operation::Insert)
        ],
        "only app.a: b is excluded (exclusion wins), c is not included"
    );
    stop_cleanly(&mut bridge);
    assert!(s.rest(QUIET).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_time_zone_other_than_utc_is_warned_about_at_start_and_utc_is_not() {
    let not_utc = "the database server's time zone is +01:00, not UTC";
    for (zone, warned) in [("+01:00", true), ("+00:00", false)] {
        let options = MariaDbOptions {
            extra_cnf: vec![format!("default-time-zone='{zone}'")],
            ..MariaDbOptions::default()
        };
        let s = CaptureSetup::with_options(options, "").await;
        let mut bridge = start_bridge(s.config());
        assert!(
            bridge.wait_for_log_async(STARTED, ARRIVAL).await,
            "{}",
            bridge.log()
        );
        let log = bridge.log();
        assert_eq!(
            log.contains("time zone") && log.contains("not UTC"),
            warned,
            "time_zone {zone}:\n{log}"
        );
        if warned {
            assert!(
                log.contains(not_utc) && log.contains("time_zone = '+00:00'"),
                "{log}"
            );
        }
        stop_cleanly(&mut bridge);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_excluded_column_stops_the_bridge_before_anything_is_published() {
    let s = Setup::new(
        "CREATE TABLE users (
            id INT NOT NULL PRIMARY KEY, secret VARCHAR(40) NOT NULL
         );",
    )
    .await;
    let config = s.config().with(|c| {
        c.capture.exclude_columns = vec![
            "app.users.secert".into(),
            "app.user.secret".into(),
            "app.users.secret".into(),
        ]
    });
    s.db.exec("INSERT INTO users VALUES (1, 's3cr3t');");
    let mut bridge = start_bridge(config);
    let log = system_tests::bridge_failure(&mut bridge);
    for needle in [
        "capture.exclude_columns",
        "app.users.secert: the table has no such column",
        "app.user.secret: no such table in the captured databases",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    assert!(
        !log.contains("app.users.secret:"),
        "the correct entry was reported too:\n{log}"
    );
    assert!(s.rest(QUIET).await.is_empty(), "published despite the typo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_columns_never_appear_in_messages() {
    let s = Setup::new(
        "CREATE TABLE users (
            id INT NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL,
            secret VARCHAR(40) NOT NULL, email VARCHAR(60) NOT NULL
         );",
    )
    .await;
    let config = s
        .config()
        .with(|c| c.capture.exclude_columns = vec!["app.users.secret".into()]);
    s.db.exec(
        "INSERT INTO users VALUES (1, 'ann', 's3cr3t-one', 'ann@example.com');
         UPDATE users SET secret = 's3cr3t-two', name = 'anna' WHERE id = 1;
         DELETE FROM users WHERE id = 1;",
    );
    let mut bridge = start_bridge(config);
    let got = drain_received(&s.url, &s.queue, 3, ARRIVAL).await;
    let changes: Vec<&RowChange> = got
        .iter()
        .filter_map(|r| match &r.message {
            Message::Change(c) => Some(c),
            Message::Heartbeat(_) => None,
        })
        .collect();
    assert_eq!(changes.len(), 3, "{changes:#?}");
    for received in &got {
        let body = String::from_utf8_lossy(&received.body);
        assert!(!body.contains("s3cr3t"), "secret value published: {body}");
        assert!(
            !body.contains("\"secret\""),
            "secret column published: {body}"
        );
    }
    assert_image(
        "insert",
        changes[0].after.as_ref(),
        json!({"id": 1, "name": "ann", "email": "ann@example.com"}),
    );
    assert_eq!(changes[1].op, Operation::Update);
    assert_eq!(changes[1].changed, vec!["name"]);
    assert_image(
        "update after",
        changes[1].after.as_ref(),
        json!({"id": 1, "name": "anna", "email": "ann@example.com"}),
    );
    assert_image(
        "delete before",
        changes[2].before.as_ref(),
        json!({"id": 1, "name": "anna", "email": "ann@example.com"}),
    );
    stop_cleanly(&mut bridge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_databases_are_not_captured() {
    let s = Setup::new(
        "CREATE DATABASE other;
         CREATE TABLE other.t (id INT NOT NULL PRIMARY KEY, v INT NOT NULL);
         CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT NOT NULL);",
    )
    .await;
    s.db.exec(
        "INSERT INTO other.t VALUES (1, 1);
         START TRANSACTION; INSERT INTO other.t VALUES (2, 2); INSERT INTO app.t VALUES (1, 1);
         COMMIT;
         UPDATE other.t SET v = 3; DELETE FROM other.t;
         INSERT INTO app.t VALUES (2, 2);",
    );
    let mut bridge = start_bridge(s.config());
    let got = s.changes(2).await;
    for change in &got {
        assert_eq!(
            (change.database.as_str(), change.table.as_str()),
            ("app", "t"),
            "{change:#?}"
        );
    }
    assert_eq!(got[0].key, row(json!({"id": 1})));
    assert_eq!(got[1].key, row(json!({"id": 2})));
    stop_cleanly(&mut bridge);
    assert!(s.rest(QUIET).await.is_empty());
}

// ------------------------------------------------------------------------------------------------
// Heartbeats and AMQP properties
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_published_when_idle() {
    let s = Setup::new("CREATE TABLE t (id INT NOT NULL PRIMARY KEY);").await;
    let mut bridge = start_bridge(s.config().with(|c| c.broker.heartbeat_secs = 1));
    s.db.exec("INSERT INTO t VALUES (1);");
    let change = s.changes(1).await.remove(0);

    let deadline = Instant::now() + ARRIVAL;
    let mut heartbeats: Vec<(Heartbeat, lapin::BasicProperties)> = Vec::new();
    while heartbeats.is_empty() && Instant::now() < deadline {
        for received in drain_received(&s.url, &s.queue, usize::MAX, Duration::from_secs(1)).await {
            match received.message {
                Message::Heartbeat(h) => heartbeats.push((h, received.properties)),
                Message::Change(c) => panic!("unexpected change while idle: {c:#?}"),
            }
        }
    }
    let (heartbeat, properties) = heartbeats
        .into_iter()
        .next()
        .expect("no heartbeat while idle with broker.heartbeat_secs = 1");
    assert_eq!(heartbeat.version, 1);
    assert_eq!(heartbeat.seq, change.seq, "the highest seq assigned so far");
    assert_eq!(heartbeat.file, change.source.file);
    assert!(
        heartbeat.pos > change.source.pos,
        "read past the change: heartbeat pos {} vs change pos {}",
        heartbeat.pos,
        change.source.pos
    );
    assert!(heartbeat.id.starts_with("heartbeat:"), "{}", heartbeat.id);
    assert!(heartbeat.time.ends_with('Z'), "{}", heartbeat.time);
    assert_eq!(
        properties.kind().as_ref().map(|k| k.as_str()),
        Some("heartbeat")
    );
    assert_eq!(
        properties.message_id().as_ref().map(|k| k.as_str()),
        Some(heartbeat.id.as_str())
    );
    stop_cleanly(&mut bridge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_properties_name_database_table_operation_and_the_publishing_user() {
    let s = Setup::new(ITEMS).await;
    s.db.exec(
        "INSERT INTO items VALUES (1, 'lamp', 3, NULL);
         UPDATE items SET qty = 4 WHERE id = 1;
         DELETE FROM items WHERE id = 1;",
    );
    let mut bridge = start_bridge(s.config());
    let got: Vec<_> = drain_received(&s.url, &s.queue, 3, ARRIVAL)
        .await
        .into_iter()
        .filter(|r| matches!(r.message, Message::Change(_)))
        .collect();
    assert_eq!(got.len(), 3);
    for (received, op) in got.iter().zip(["insert", "update", "delete"]) {
        let Message::Change(change) = &received.message else {
            unreachable!()
        };
        let p = &received.properties;
        assert_eq!(
            p.content_type().as_ref().map(|v| v.as_str()),
            Some("application/json")
        );
        assert_eq!(p.delivery_mode(), &Some(2), "persistent");
        assert_eq!(
            p.message_id().as_ref().map(|v| v.as_str()),
            Some(change.id.as_str())
        );
        assert_eq!(p.kind().as_ref().map(|v| v.as_str()), Some("change"));
        assert_eq!(
            p.user_id().as_ref().map(|v| v.as_str()),
            tls_connect::broker::login_user(&s.url).as_deref(),
            "user_id: the broker user the bridge logs in as"
        );
        assert_eq!(received.header("x-database").as_deref(), Some("app"));
        assert_eq!(received.header("x-table").as_deref(), Some("items"));
        assert_eq!(received.header("x-operation").as_deref(), Some(op));
        assert_eq!(change.op.as_str(), op);
        assert_eq!(
            received.header("x-seq"),
            Some(change.seq.to_string()),
            "x-seq header"
        );
        assert!(!received.redelivered);
    }
    stop_cleanly(&mut bridge);
}

// ------------------------------------------------------------------------------------------------
// Stopping, checkpoint, failures
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_buffer_and_saves_the_checkpoint() {
    let s = Setup::new(ROWS).await;
    s.db.exec("INSERT INTO r VALUES (1, 'held', 0);");
    let mut bridge = start_bridge(dedup_config(&s, 60_000));
    assert!(
        bridge.wait_for_log_async(STARTED, ARRIVAL).await,
        "{}",
        bridge.log()
    );
    // The change sits in the 60 s dedup window: nothing can show on the queue yet.
    wait_until_binlog_sent(&s.db).await;
    assert_eq!(queue_len(&s.url, &s.queue).await, 0, "held by the window");

    let log = stop_cleanly(&mut bridge);
    let got = drain_changes(&s.url, &s.queue, 1, Duration::from_secs(5)).await;
    assert_eq!(
        got.len(),
        1,
        "the buffered change was published at stop\n{log}"
    );
    assert_eq!(got[0].op, Operation::Insert);
    assert_image(
        "held change",
        got[0].after.as_ref(),
        json!({"id": 1, "v": "held", "n": 0}),
    );

    let path = checkpoint_path(&bridge);
    let checkpoint = read_checkpoint(&path)
        .unwrap_or_else(|| panic!("no readable checkpoint at {}\n{log}", path.display()));
    let pos = checkpoint["pos"].as_u64().unwrap_or(0);
    assert!(pos > 0, "checkpoint pos: {checkpoint}");
    assert!(
        pos > got[0].source.pos,
        "the checkpoint is past the published change: {checkpoint}"
    );
    assert_eq!(
        checkpoint["file"].as_str(),
        Some(got[0].source.file.as_str())
    );
    let first_seq = last_logged_number(&log, "first_seq").expect("the bridge logs its first seq");
    assert_eq!(
        checkpoint["next_seq"],
        json!(first_seq + 1),
        "one change numbered: {checkpoint}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_advances_while_captured_tables_are_idle() {
    let s = Setup::new(
        "CREATE TABLE captured (id INT NOT NULL PRIMARY KEY);
         CREATE TABLE busy (id INT NOT NULL PRIMARY KEY, n INT NOT NULL);",
    )
    .await;
    let config = s.config().with(|c| {
        c.capture.include_tables = vec!["app.captured".into()];
        c.broker.heartbeat_secs = 3600;
    });
    let mut bridge = BridgeProcess::start(&with_checkpoint_interval(config.to_toml(), 100));
    assert!(
        bridge.wait_for_log_async(STARTED, ARRIVAL).await,
        "{}",
        bridge.log()
    );
    let path = checkpoint_path(&bridge);
    let (file, end_before) = master_position(&s.db);
    let checkpoint_pos = |expected_file: &str| {
        read_checkpoint(&path).and_then(|c| {
            (c["file"].as_str() == Some(expected_file)).then(|| c["pos"].as_u64().unwrap_or(0))
        })
    };

    // The checkpoint first reaches the current end of the binlog...
    let deadline = Instant::now() + ARRIVAL;
    while checkpoint_pos(&file).is_none_or(|p| p < end_before) {
        assert!(
            Instant::now() < deadline,
            "checkpoint never reached {file}:{end_before}: {:?}\n{}",
            read_checkpoint(&path),
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = checkpoint_pos(&file).unwrap();

    // ...then follows changes of a table that is not captured.
    s.db.exec(
        "INSERT INTO busy VALUES (1, 0), (2, 0);
         UPDATE busy SET n = n + 1;
         DELETE FROM busy WHERE id = 2;",
    );
    let (file_after, end_after) = master_position(&s.db);
    assert_eq!(file_after, file);
    assert!(end_after > first);
    let deadline = Instant::now() + ARRIVAL;
    while checkpoint_pos(&file).is_none_or(|p| p < end_after) {
        assert!(
            Instant::now() < deadline,
            "checkpoint stayed at {:?} while the binlog grew to {file}:{end_after}\n{}",
            read_checkpoint(&path),
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(checkpoint_pos(&file), Some(end_after));
    let checkpoint = read_checkpoint(&path).unwrap();
    let first_seq =
        last_logged_number(&bridge.log(), "first_seq").expect("the bridge logs its first seq");
    assert_eq!(
        checkpoint["next_seq"],
        json!(first_seq),
        "no change was captured"
    );
    assert_eq!(
        checkpoint["gtid"],
        json!(s.db.query_value("SELECT @@gtid_binlog_pos")),
        "the checkpoint names the same position as the server's GTID state"
    );
    assert_eq!(queue_len(&s.url, &s.queue).await, 0, "nothing is published");
    stop_cleanly(&mut bridge);
    assert!(drain(&s.url, &s.queue, usize::MAX, QUIET).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_exchange_stops_the_bridge_with_a_clear_error() {
    let db = MariaDb::start();
    db.exec("CREATE TABLE t (id INT NOT NULL PRIMARY KEY); INSERT INTO t VALUES (1);");
    let url = shared_amqp_url();
    let exchange = unique_name("capture.unbound");
    let _names = BrokerCleanup::new(&url, vec![], vec![exchange.clone()]);
    let config =
        bridge_config(db.port(), &url, &exchange).with(|c| c.source.start = "start".into());
    let mut bridge = BridgeProcess::start(&config.to_toml());
    let status = bridge
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the bridge kept running:\n{}", bridge.log()));
    let log = bridge.log();
    assert!(!status.success(), "exit status {status:?}\n{log}");
    assert!(log.contains("no queue is bound"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_a_table_created_after_start_are_typed() {
    let s = Setup::new("").await;
    let mut bridge = start_bridge(s.config());
    assert!(
        bridge.wait_for_log_async(STARTED, ARRIVAL).await,
        "{}",
        bridge.log()
    );
    s.db.exec(
        "CREATE TABLE late (
            id INT NOT NULL PRIMARY KEY, doc JSON NULL, amount DECIMAL(10,2) NULL,
            u INT UNSIGNED NULL, e ENUM('on','off') NULL, b BLOB NULL
         ) DEFAULT CHARSET = utf8mb4;
         INSERT INTO late VALUES (1, '{\"a\": [1, 2], \"ü\": {\"x\": null}}', '12.50', 4294967295,
                                  'off', 0xFF00);
         UPDATE late SET doc = '[true, \"z\"]' WHERE id = 1;",
    );
    let got = s.changes(2).await;
    assert_eq!(got[0].table, "late");
    assert_image(
        "insert into the new table",
        got[0].after.as_ref(),
        json!({"id": 1, "doc": {"a": [1, 2], "ü": {"x": null}}, "amount": "12.50",
               "u": 4294967295u64, "e": "off", "b": "/wA="}),
    );
    assert_eq!(got[0].binary_columns, vec!["b".to_string()]);
    assert_eq!(got[1].op, Operation::Update);
    assert_eq!(got[1].after.as_ref().unwrap()["doc"], json!([true, "z"]));
    assert_eq!(got[1].changed, vec!["doc"]);
    stop_cleanly(&mut bridge);
}
