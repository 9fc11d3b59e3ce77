//! Values as the binlog decoder reads them, on a real MariaDB: every column type published with
//! its exact value and the same JSON whether a row was captured live or read by an initial sync
//! (BINARY(16) key as the chunking key, latin1 and cp1251 text, negative TIME(6), six-digit
//! DATETIME(6)/TIMESTAMP(6), GEOMETRY as WKB); BINARY(16) keys through the dedup buffer; a row of
//! 20 MB.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use change_message::{Operation, RowChange};
use serde_json::{json, Value};
use system_tests::{
    drain_changes, start_sync, BridgeConfig, BridgeProcess, CaptureSetup, MariaDbOptions,
};

const ARRIVAL: Duration = Duration::from_secs(30);

type Setup = CaptureSetup;

/// From the oldest binlog, no merging, syncs in chunks of two rows.
fn toml(s: &Setup, change: impl FnOnce(&mut BridgeConfig)) -> String {
    let toml = s
        .config()
        .with(|c| {
            c.broker.heartbeat_secs = 3600;
            change(c);
        })
        .to_toml();
    format!("{toml}\n[sync]\nchunk_size = 2\nqueue_prefix = \"capture.\"\n")
}

fn b64(bytes: &[u8]) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The WKB of POINT(x y) (little-endian).
fn point_wkb(x: f64, y: f64) -> Vec<u8> {
    let mut wkb = vec![1, 1, 0, 0, 0];
    wkb.extend(x.to_le_bytes());
    wkb.extend(y.to_le_bytes());
    wkb
}

const EVERY_TYPE: &str = "CREATE TABLE every_type (
    id BINARY(16) NOT NULL PRIMARY KEY,
    y YEAR NULL, iu INT UNSIGNED NULL, ti TINYINT NULL, mi MEDIUMINT NULL, bi BIGINT NULL,
    biu BIGINT UNSIGNED NULL, de DECIMAL(30,10) NULL, f FLOAT NULL, d DOUBLE NULL,
    l1 VARCHAR(40) CHARACTER SET latin1 NULL, cy VARCHAR(40) CHARACTER SET cp1251 NULL,
    c CHAR(10) NULL, vc VARCHAR(100) NULL, tx TEXT NULL, lt TEXT CHARACTER SET latin1 NULL,
    bl BLOB NULL, vb VARBINARY(20) NULL, j JSON NULL,
    e ENUM('a','b','c') NULL, st SET('x','y','z') NULL, bt BIT(10) NULL,
    dt DATE NULL, tm TIME(6) NULL, tm0 TIME NULL, tm1 TIME(1) NULL, dtm DATETIME(6) NULL,
    ts TIMESTAMP(6) NULL DEFAULT NULL, g GEOMETRY NULL
) DEFAULT CHARSET = utf8mb4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_reads_the_same_live_and_in_a_snapshot_with_a_binary_key() {
    let s = Setup::with_options(MariaDbOptions::default(), EVERY_TYPE).await;
    s.db.exec(
        "SET time_zone = '+00:00';
         INSERT INTO every_type VALUES (UNHEX('00112233445566778899AABBCCDDEEFF'),
            2024, 4294967295, -1, -8388608, -9223372036854775808, 18446744073709551615,
            '-12345678901234567890.0123456789', 1.5, -2.25,
            'café €', 'Привет', 'héllo', 'Grüße 🚗', 'emoji 😀', 'naïve',
            0x00FF80, 0xDEADBEEF, '{\"a\": [1, 2.5, \"ü\"], \"b\": null}',
            'c', 'y,z', b'1000000001',
            '2024-02-29', '-838:59:59.000000', '-00:00:01', '-00:00:01.5',
            '2024-02-29 23:59:58.123456', '2024-02-29 23:59:58.000001',
            ST_GeomFromText('POINT(1 2)'));
         INSERT INTO every_type VALUES (UNHEX('FFEEDDCCBBAA99887766554433221100'),
            0, 0, 127, 8388607, 9223372036854775807, 0,
            '0.0000000001', -0.25, 1e-300,
            '', '', '', '', '', '',
            '', '', '[]',
            'a', '', b'0',
            '1000-01-01', '-00:00:01.500000', '838:59:59', '00:00:00.0',
            '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.999999',
            ST_GeomFromText('POINT(-0.5 1e10)'));
         INSERT INTO every_type (id) VALUES (UNHEX('80000000000000000000000000000000'));",
    );
    let toml = toml(&s, |_| {});
    let mut bridge = BridgeProcess::start(&toml);
    let live = s.changes(3).await;
    let first = &live[0];
    let key = hex("00112233445566778899AABBCCDDEEFF");
    assert_eq!(first.key.get("id"), Some(&b64(&key)));
    for column in ["id", "bl", "vb", "g"] {
        assert!(
            first.binary_columns.contains(&column.to_string()),
            "{column} is not listed as binary: {:?}",
            first.binary_columns
        );
    }
    let expected = json!({
        "id": b64(&key), "y": 2024, "iu": 4294967295u64, "ti": -1, "mi": -8388608,
        "bi": -9223372036854775808i64, "biu": 18446744073709551615u64,
        "de": "-12345678901234567890.0123456789", "f": 1.5, "d": -2.25,
        "l1": "café €", "cy": "Привет", "c": "héllo", "vc": "Grüße 🚗", "tx": "emoji 😀",
        "lt": "naïve", "bl": b64(&[0x00, 0xFF, 0x80]), "vb": b64(&[0xDE, 0xAD, 0xBE, 0xEF]),
        "j": {"a": [1, 2.5, "ü"], "b": null}, "e": "c", "st": "y,z", "bt": 513,
        "dt": "2024-02-29", "tm": "-838:59:59.000000", "tm0": "-00:00:01", "tm1": "-00:00:01.5",
        "dtm": "2024-02-29T23:59:58.123456", "ts": "2024-02-29T23:59:58.000001Z",
        "g": b64(&point_wkb(1.0, 2.0))
    });
    assert_eq!(first.after.clone().map(Value::Object), Some(expected));
    let second = live[1].after.clone().map(Value::Object).unwrap_or_default();
    for (column, value) in [
        ("y", json!(0)),
        ("de", json!("0.0000000001")),
        ("d", json!(1e-300)),
        ("tm", json!("-00:00:01.500000")),
        ("tm0", json!("838:59:59")),
        ("tm1", json!("00:00:00.0")),
        ("dtm", json!("1000-01-01T00:00:00.000000")),
        ("ts", json!("1970-01-01T00:00:01.999999Z")),
        ("g", b64(&point_wkb(-0.5, 1e10))),
    ] {
        assert_eq!(second[column], value, "row 2, column {column}");
    }
    let nulls = live[2].after.clone().unwrap_or_default();
    assert!(
        nulls.iter().all(|(k, v)| k == "id" || v.is_null()),
        "{nulls:?}"
    );

    // The same rows read by an initial sync (BINARY(16) chunking key, two rows per chunk).
    start_sync(&toml, &s.queue, "app.every_type");
    let snapshot = s.changes(3).await;
    let live_by_key: BTreeMap<String, &RowChange> = live
        .iter()
        .map(|c| (Value::Object(c.key.clone()).to_string(), c))
        .collect();
    for row in &snapshot {
        assert!(row.is_snapshot(), "{row:?}");
        let key = Value::Object(row.key.clone()).to_string();
        let live = live_by_key.get(&key).unwrap_or_else(|| {
            panic!(
                "snapshot key {key} was not captured live: {:?}",
                live_by_key.keys()
            )
        });
        assert_eq!(
            row.after, live.after,
            "snapshot and live rows differ for {key}"
        );
        assert_eq!(row.binary_columns, live.binary_columns);
    }
    assert!(bridge.terminate().success(), "{}", bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_keys_are_deduplicated_by_their_bytes() {
    let s = Setup::with_options(
        MariaDbOptions::default(),
        "CREATE TABLE tokens (id BINARY(16) NOT NULL PRIMARY KEY, n INT NOT NULL)",
    )
    .await;
    let mut bridge = BridgeProcess::start(&toml(&s, |c| c.dedup.window_ms = 2000));
    assert!(
        bridge
            .wait_for_log_async("database checks passed", ARRIVAL)
            .await,
        "{}",
        bridge.log()
    );
    // Two keys that differ only in a byte that is not UTF-8; the first is updated in the window.
    s.db.exec(
        "INSERT INTO tokens VALUES (UNHEX('F0000000000000000000000000000001'), 1);
         INSERT INTO tokens VALUES (UNHEX('F0000000000000000000000000000002'), 1);
         UPDATE tokens SET n = 2 WHERE id = UNHEX('F0000000000000000000000000000001');",
    );
    let got = s.changes(2).await;
    let one = b64(&hex("F0000000000000000000000000000001"));
    let two = b64(&hex("F0000000000000000000000000000002"));
    assert_eq!(got[0].op, Operation::Insert);
    assert_eq!(
        got[0].after.clone().map(Value::Object),
        Some(json!({"id": one, "n": 2}))
    );
    assert_eq!(
        got[1].after.clone().map(Value::Object),
        Some(json!({"id": two, "n": 1}))
    );
    let rest = drain_changes(&s.url, &s.queue, usize::MAX, Duration::from_millis(2500)).await;
    assert!(rest.is_empty(), "{rest:#?}");
    assert!(bridge.terminate().success(), "{}", bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_of_20_mb_is_read_and_the_stream_goes_on() {
    let options = MariaDbOptions {
        extra_cnf: vec!["max_allowed_packet=64M".into()],
        ..MariaDbOptions::default()
    };
    let s = Setup::with_options(
        options,
        "CREATE TABLE docs (id INT PRIMARY KEY, body LONGBLOB NOT NULL, note VARCHAR(20) NOT NULL)",
    )
    .await;
    s.db.exec(
        "INSERT INTO docs VALUES (1, REPEAT('x', 20971520), 'first');
         INSERT INTO docs VALUES (2, 'small', 'second');",
    );
    assert_eq!(
        s.db.query_value("SELECT LENGTH(body) FROM docs WHERE id = 1"),
        "20971520"
    );
    // The 20 MB column is read (one binlog packet of more than 16 MB) but not published, so the
    // test does not depend on the broker's message size limit.
    let mut bridge = BridgeProcess::start(&toml(&s, |c| {
        c.capture.exclude_columns = vec!["app.docs.body".into()]
    }));
    let got = s.changes(2).await;
    assert_eq!(
        got[0].after.clone().map(Value::Object),
        Some(json!({"id": 1, "note": "first"}))
    );
    assert_eq!(
        got[1].after.clone().map(Value::Object),
        Some(json!({"id": 2, "note": "second"}))
    );
    assert!(bridge.terminate().success(), "{}", bridge.log());
}
