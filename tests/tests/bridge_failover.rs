//! Failover: the bridge pointed at another server than the one its checkpoint was written
//! against. Two private MariaDB servers with GTIDs (strict mode, the replica logging what it
//! applies) in primary/replica replication, the shared broker, the bridge binary.
//!
//! What is proven here (design.md invariants 1, 2 and 4):
//! - after the primary dies mid-stream and the replica is promoted, the bridge re-pointed at
//!   the replica resumes by the checkpoint's GTID state, not by the old primary's file and
//!   position: every committed change arrives, per record in order, `seq` counts on from the
//!   checkpoint and no number is given to two different changes;
//! - a checkpoint of another server without a GTID state stops the bridge, naming the choices,
//!   and one whose GTID state this server does not wholly hold stops it too;
//! - `source.start = { gtid = "..." }` starts after that state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use change_message::{Message, RowChange};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use system_tests::changes::id_and_version;
use system_tests::{
    bridge_config, bridge_failure, declare_bound_queue, shared_amqp_url, unique_name,
    BridgeProcess, BrokerCleanup, MariaDb, MariaDbOptions, QueueReader,
};

/// The captured tables: two, so that a transaction may change records of both.
const TABLES: [&str; 2] = ["meters", "stations"];
/// Rows each table starts with.
const INITIAL_ROWS: i64 = 200;

/// A server of the topology: its own server-id, GTIDs checked strictly, the replicated
/// transactions in its own binlog (so a promoted replica can serve them), quick commits.
fn topology_server(server_id: u32) -> MariaDbOptions {
    MariaDbOptions {
        extra_cnf: vec![
            format!("server-id={server_id}"),
            "gtid_strict_mode=1".into(),
            "log_slave_updates=ON".into(),
            "innodb_flush_log_at_trx_commit=2".into(),
        ],
        ..MariaDbOptions::default()
    }
}

fn schema() -> String {
    let mut sql = String::new();
    for table in TABLES {
        let rows: Vec<String> = (1..=INITIAL_ROWS)
            .map(|id| format!("({id}, 0, '{}')", note(0)))
            .collect();
        sql.push_str(&format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, version BIGINT NOT NULL, \
             note VARCHAR(200) NOT NULL) CHARACTER SET utf8mb4;\n\
             INSERT INTO {table} VALUES {};\n",
            rows.join(", ")
        ));
    }
    sql
}

fn note(version: i64) -> String {
    format!("v{version}-{}", "x".repeat((version % 97) as usize))
}

/// One change: table, row id, the version it wrote.
type Change = (String, i64, i64);

/// The changes of the initial rows (their inserts).
fn initial_changes() -> Vec<Change> {
    TABLES
        .iter()
        .flat_map(|t| (1..=INITIAL_ROWS).map(move |id| (t.to_string(), id, 0)))
        .collect()
}

/// Writes `total` changes to `url` in transactions of 1 to 3 changes (UPDATEs of random rows
/// of both tables, now and then an INSERT), each setting `version` to a counter starting
/// after `first_version`, so every change is one (table, id, version). Returns what committed.
async fn write(
    url: &str,
    first_version: i64,
    total: usize,
    progress: Arc<AtomicUsize>,
) -> Vec<Change> {
    let mut conn = mysql_async::Conn::from_url(url)
        .await
        .unwrap_or_else(|e| panic!("writer cannot connect to {url}: {e}"));
    let mut rng = fastrand::Rng::with_seed(first_version as u64);
    let mut version = first_version;
    let mut committed = Vec::with_capacity(total);
    while committed.len() < total {
        let mut sql = String::from("START TRANSACTION;");
        let mut changes = Vec::new();
        for _ in 0..rng.usize(1..=3).min(total - committed.len()) {
            version += 1;
            let table = TABLES[rng.usize(..TABLES.len())];
            let id = if rng.u8(..100) < 2 {
                let id = INITIAL_ROWS + version;
                sql.push_str(&format!(
                    "INSERT INTO {table} VALUES ({id}, {version}, '{}');",
                    note(version)
                ));
                id
            } else {
                let id = rng.i64(1..=INITIAL_ROWS);
                sql.push_str(&format!(
                    "UPDATE {table} SET version = {version}, note = '{}' WHERE id = {id};",
                    note(version)
                ));
                id
            };
            changes.push((table.to_string(), id, version));
        }
        sql.push_str("COMMIT;");
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("writer on {url}: {e}"));
        committed.extend(changes);
        progress.store(committed.len(), Ordering::Relaxed);
    }
    let _ = conn.disconnect().await;
    committed
}

fn change_of(change: &RowChange) -> Change {
    let (id, version) = id_and_version(change);
    (change.table.clone(), id, version)
}

/// Reads the queue until every change of `expected` arrived (or `timeout` passed).
async fn receive_until(
    reader: &mut QueueReader,
    received: &mut Vec<RowChange>,
    expected: &HashSet<Change>,
    timeout: Duration,
) {
    let mut missing: HashSet<Change> = expected.clone();
    for change in received.iter() {
        missing.remove(&change_of(change));
    }
    let deadline = Instant::now() + timeout;
    while !missing.is_empty() && Instant::now() < deadline {
        for message in reader.next_batch(5000, Duration::from_secs(2)).await {
            if let Message::Change(change) = message.message {
                missing.remove(&change_of(&change));
                received.push(change);
            }
        }
    }
}

/// Nothing lost, order per record, and no `seq` given to two different changes.
fn check_stream(received: &[RowChange], expected: &HashSet<Change>) {
    let arrived: HashSet<Change> = received.iter().map(change_of).collect();
    let mut lost: Vec<&Change> = expected.difference(&arrived).collect();
    lost.sort();
    assert!(
        lost.is_empty(),
        "{} committed change(s) never arrived, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let mut by_seq: HashMap<u64, Change> = HashMap::new();
    let mut per_record: BTreeMap<(String, i64), BTreeMap<u64, i64>> = BTreeMap::new();
    for message in received {
        let change = change_of(message);
        if let Some(other) = by_seq.insert(message.seq, change.clone()) {
            assert_eq!(
                other, change,
                "seq {} was given to two different changes",
                message.seq
            );
        }
        per_record
            .entry((change.0.clone(), change.1))
            .or_default()
            .insert(message.seq, change.2);
    }
    for (record, versions) in per_record {
        let in_seq_order: Vec<i64> = versions.values().copied().collect();
        assert!(
            in_seq_order.windows(2).all(|w| w[0] < w[1]),
            "record {record:?}: versions in seq order are not increasing: {in_seq_order:?}"
        );
    }
}

/// Waits until the bridge saved its first checkpoint.
async fn wait_for_checkpoint(bridge: &mut BridgeProcess) {
    let path = bridge.dir().join("bridge.checkpoint.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline && bridge.is_running(),
            "the bridge saved no checkpoint:\n{}",
            bridge.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the bridge's checkpoint records a GTID state: it has read part of the stream
/// (the checkpoint it saves at start, before reading, has none).
async fn wait_for_checkpoint_with_gtid(bridge: &mut BridgeProcess) {
    let path = bridge.dir().join("bridge.checkpoint.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let gtid = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|c| c["gtid"].as_str().map(str::to_string));
        if gtid.is_some_and(|g| !g.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < deadline && bridge.is_running(),
            "the bridge's checkpoint never recorded a GTID state:\n{}",
            bridge.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn read_checkpoint(bridge_dir: &Path) -> Value {
    let path = bridge_dir.join("bridge.checkpoint.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no checkpoint at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("checkpoint is not JSON ({e}): {text}"))
}

/// The stream tests' config: no merging (one message per change), no broker heartbeats.
fn stream_config(db_port: u16, url: &str, exchange: &str, start: &str) -> String {
    bridge_config(db_port, url, exchange)
        .with(|c| {
            c.source.start = start.into();
            c.dedup.window_ms = 0;
            c.broker.heartbeat_secs = 3600;
        })
        .to_toml()
}

struct Broker {
    url: String,
    exchange: String,
    queue: String,
    _cleanup: BrokerCleanup,
}

async fn broker(prefix: &str) -> Broker {
    let url = shared_amqp_url();
    let exchange = unique_name(&format!("{prefix}.x"));
    let queue = unique_name(&format!("{prefix}.q"));
    declare_bound_queue(&url, &exchange, &queue).await;
    Broker {
        _cleanup: BrokerCleanup::new(&url, vec![queue.clone()], vec![exchange.clone()]),
        url,
        exchange,
        queue,
    }
}

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_to_the_promoted_replica_the_bridge_resumes_by_gtid_and_loses_nothing() {
    let mut primary = MariaDb::start_with(topology_server(1));
    let replica = MariaDb::start_with(topology_server(2));
    // The replica's binlog files get other names than the primary's, so a file and position
    // of the primary cannot by chance read the same events there.
    replica.exec("FLUSH BINARY LOGS; FLUSH BINARY LOGS;");
    let replica_first_file = block(|| replica.query_rows("SHOW BINARY LOGS"))
        .last()
        .map(|row| row[0].clone())
        .expect("the replica has binlog files");
    block(|| replica.replicate_from(&primary));
    primary.exec(&schema());
    let broker = broker("failover").await;
    let mut reader = QueueReader::open(&broker.url, &broker.queue).await;

    // The bridge follows the primary while the writer writes there.
    let mut bridge = BridgeProcess::start(&stream_config(
        primary.port(),
        &broker.url,
        &broker.exchange,
        "start",
    ));
    let progress = Arc::new(AtomicUsize::new(0));
    let url = primary.root_url();
    let writer = tokio::spawn(write_on(url.clone(), 0, 12_000, progress.clone()));
    wait_for_checkpoint(&mut bridge).await;
    while progress.load(Ordering::Relaxed) < 4_000 && !writer.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Mid-stream: the bridge has read part of what was written (on a loaded machine the writer
    // can be done with 4,000 before the bridge read the first transaction).
    wait_for_checkpoint_with_gtid(&mut bridge).await;
    // The bridge's host goes down mid-stream: its checkpoint is behind what the primary holds.
    bridge.kill9();
    let mut committed = writer.await.expect("writer on the primary");
    let old_checkpoint = read_checkpoint(bridge.dir());
    assert_eq!(old_checkpoint["server"]["server_id"], 1, "{old_checkpoint}");

    // The primary dies once the replica has everything it committed; the replica is promoted.
    let primary_end = block(|| primary.query_value("SELECT @@gtid_binlog_pos"));
    block(|| replica.wait_for_gtid(&primary_end));
    primary.kill();
    block(|| replica.promote());

    // The bridge is re-pointed at the promoted replica; writing goes on there.
    bridge.write_config(&stream_config(
        replica.port(),
        &broker.url,
        &broker.exchange,
        "start",
    ));
    bridge.restart();
    let more = write_on(
        replica.root_url(),
        100_000,
        8_000,
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    committed.extend(more);

    let mut expected: HashSet<Change> = committed.into_iter().collect();
    expected.extend(initial_changes());
    let mut received = Vec::new();
    receive_until(
        &mut reader,
        &mut received,
        &expected,
        Duration::from_secs(180),
    )
    .await;
    let log = bridge.log();
    check_stream(&received, &expected);
    assert!(
        log.contains("resuming by GTID on another server"),
        "the bridge did not log a GTID resume:\n{}",
        bridge.log_tail(60)
    );

    // What came from the replica names the replica's own binlog files only, and includes
    // changes written on the primary that the bridge had not published before it died.
    let from_replica: Vec<&RowChange> = received
        .iter()
        .filter(|c| c.source.server_id == 2)
        .collect();
    assert!(
        !from_replica.is_empty(),
        "nothing was read from the replica"
    );
    for change in &from_replica {
        assert!(
            change.source.file.as_str() >= replica_first_file.as_str(),
            "a change read from the replica names binlog file {} (the replica's files start at \
             {replica_first_file}): {change:?}",
            change.source.file
        );
    }
    assert!(
        from_replica.iter().any(|c| change_of(c).2 < 100_000),
        "no change written on the primary was read from the replica: the test proved nothing"
    );
    let old_next_seq = old_checkpoint["next_seq"].as_u64().expect("next_seq");
    let first_from_replica = from_replica.iter().map(|c| c.seq).min().unwrap_or(0);
    assert_eq!(
        first_from_replica, old_next_seq,
        "the first change read from the replica must take the checkpoint's next_seq"
    );

    bridge.terminate();
    let new_checkpoint = read_checkpoint(bridge.dir());
    assert_eq!(new_checkpoint["server"]["server_id"], 2, "{new_checkpoint}");
    assert!(
        new_checkpoint["file"].as_str().unwrap_or_default() >= replica_first_file.as_str(),
        "{new_checkpoint}"
    );
    reader.close().await;
}

/// [`write`] as a task of its own.
async fn write_on(
    url: String,
    first_version: i64,
    total: usize,
    progress: Arc<AtomicUsize>,
) -> Vec<Change> {
    write(&url, first_version, total, progress).await
}

/// Runs the bridge until it saved a checkpoint on a fresh server, rewrites that checkpoint with
/// `edit` (as if another server had written it), restarts the bridge and returns the log of
/// its failure.
async fn failure_on_a_checkpoint_edited_by(
    name: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> String {
    let db = MariaDb::start_with(topology_server(1));
    db.exec(&schema());
    let broker = broker(name).await;
    let mut bridge = BridgeProcess::start(&stream_config(
        db.port(),
        &broker.url,
        &broker.exchange,
        "start",
    ));
    wait_for_checkpoint(&mut bridge).await;
    bridge.terminate();
    let mut checkpoint = read_checkpoint(bridge.dir());
    edit(checkpoint.as_object_mut().expect("a JSON object"));
    std::fs::write(
        bridge.dir().join("bridge.checkpoint.json"),
        serde_json::to_vec_pretty(&checkpoint).expect("JSON"),
    )
    .expect("rewrite the checkpoint");
    bridge.restart();
    bridge_failure(&mut bridge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_servers_checkpoint_without_gtid_state_stops_the_bridge_naming_the_choices() {
    // The same checkpoint, as if written against another server by a bridge that kept no
    // GTID state.
    let log = failure_on_a_checkpoint_edited_by("failover-nogtid", |object| {
        object.remove("gtid");
        object.insert(
            "server".into(),
            serde_json::json!({"server_id": 77, "address": "10.0.0.7:3306"}),
        );
    })
    .await;
    for needle in [
        "10.0.0.7:3306",
        "no GTID state",
        "source.host",
        "source.start = { gtid",
        "re-sync",
    ] {
        assert!(log.contains(needle), "{needle:?} missing from:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_start_gtid_starts_after_that_gtid_state() {
    let db = MariaDb::start_with(topology_server(1));
    db.exec(&schema());
    db.exec("UPDATE meters SET version = 1 WHERE id = 1;");
    let state = db.query_value("SELECT @@gtid_binlog_pos");
    db.exec(
        "UPDATE meters SET version = 2 WHERE id = 2; UPDATE stations SET version = 3 WHERE id = 3;",
    );
    let broker = broker("failover-start").await;
    let mut bridge = BridgeProcess::start(&stream_config(
        db.port(),
        &broker.url,
        &broker.exchange,
        &format!("{{ gtid = \"{state}\" }}"),
    ));
    let mut reader = QueueReader::open(&broker.url, &broker.queue).await;
    let mut received = Vec::new();
    let expected: HashSet<Change> = [("meters".into(), 2, 2), ("stations".into(), 3, 3)]
        .into_iter()
        .collect();
    receive_until(
        &mut reader,
        &mut received,
        &expected,
        Duration::from_secs(30),
    )
    .await;
    let got: Vec<Change> = received.iter().map(change_of).collect();
    assert_eq!(
        got,
        vec![("meters".to_string(), 2, 2), ("stations".to_string(), 3, 3)],
        "only the transactions after {state}:\n{}",
        bridge.log_tail(30)
    );
    assert!(
        bridge.log().contains("starting by GTID"),
        "{}",
        bridge.log_tail(30)
    );
    bridge.terminate();
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_server_that_lacks_part_of_the_checkpoints_gtid_state_stops_the_bridge() {
    // As if written against a primary that got further than this server (a replica that had
    // not applied everything when it was promoted).
    let log = failure_on_a_checkpoint_edited_by("failover-behind", |object| {
        object.insert("gtid".into(), "0-1-999999".into());
        object.insert(
            "server".into(),
            serde_json::json!({"server_id": 77, "gtid_domain_id": 0, "address": "10.0.0.7:3306"}),
        );
    })
    .await;
    for needle in [
        "cannot resume by GTID",
        "0-1-999999",
        "had not applied everything",
        "most advanced replica",
    ] {
        assert!(log.contains(needle), "{needle:?} missing from:\n{log}");
    }
}
