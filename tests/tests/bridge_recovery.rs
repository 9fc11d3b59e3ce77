//! Recovery and refusal behaviour of the bridge, against real servers (a private MariaDB per
//! test, the shared RabbitMQ or a private node), with the bridge binary as a child process.
//!
//! What is proven here (design.md):
//! - invariant 1, no loss: a `kill -9` of the bridge, a broker restart and a database restart in
//!   the middle of a stream of changes lose nothing; the checkpoint never runs ahead of the
//!   broker's confirms, and a restart resumes exactly at it;
//! - invariant 2, order per record: a consumer that drops what it has already seen (by `id`, or
//!   any `seq` not above the record's highest) never sees an older state after a newer one;
//! - invariant 4, loud failure: a server set up wrong, a purged binlog, text the decoder cannot
//!   read, missing grants, a bad config: the bridge exits non-zero naming the problem and the fix.
//!
//! The stream tests run with the dedup window at 0 (every change is its own message) and broker
//! heartbeats pushed far away, so that the queue holds exactly the published changes, and with
//! `source.start = "start"` so that nothing depends on when the bridge begins reading.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use change_message::{Message, Operation, RowChange};
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use system_tests::changes::id_and_version;
use system_tests::{
    bridge_config, declare_bound_queue, delete_exchange, delete_queue, drain_received, queue_len,
    shared_amqp_url, test_servers_dir, unique_name, BridgeConfig, BridgeProcess, MariaDb,
    MariaDbOptions, RabbitNode, Received,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An exchange (and optionally a queue bound to it) on a broker, deleted when the test ends,
/// whether it passed or failed.
struct BrokerObjects {
    url: String,
    exchange: String,
    queue: Option<String>,
}

impl BrokerObjects {
    /// A durable fanout exchange with one durable queue bound to it (a partner).
    async fn bound(url: &str, prefix: &str) -> BrokerObjects {
        let exchange = unique_name(&format!("{prefix}.x"));
        let queue = unique_name(&format!("{prefix}.q"));
        declare_bound_queue(url, &exchange, &queue).await;
        BrokerObjects {
            url: url.to_string(),
            exchange,
            queue: Some(queue),
        }
    }

    /// Only a name: for bridges that should refuse to start (`run` may declare the exchange).
    fn exchange_only(url: &str, prefix: &str) -> BrokerObjects {
        BrokerObjects {
            url: url.to_string(),
            exchange: unique_name(&format!("{prefix}.x")),
            queue: None,
        }
    }

    fn queue(&self) -> &str {
        self.queue.as_deref().expect("declared with a queue")
    }
}

impl Drop for BrokerObjects {
    fn drop(&mut self) {
        let url = self.url.clone();
        let exchange = self.exchange.clone();
        let queue = self.queue.clone();
        // Drop may run inside a tokio runtime: delete from a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for cleanup");
            runtime.block_on(async {
                if let Some(queue) = &queue {
                    delete_queue(&url, queue).await;
                }
                delete_exchange(&url, &exchange).await;
            });
        })
        .join();
    }
}

/// Sets `[checkpoint] interval_ms` (the harness config renders only the path).
fn with_checkpoint_interval(toml: &str, interval_ms: u64) -> String {
    assert!(toml.contains("\n[checkpoint]\n"), "{toml}");
    toml.replace(
        "\n[checkpoint]\n",
        &format!("\n[checkpoint]\ninterval_ms = {interval_ms}\n"),
    )
}

/// The config of the stream tests: read the whole binlog, no dedup, no broker heartbeats (so
/// that the queue holds exactly the published changes), checkpoint saved at most every 100 ms.
fn stream_config(db_port: u16, amqp_url: &str, exchange: &str) -> String {
    stream_config_with(db_port, amqp_url, exchange, |_| {})
}

/// [`stream_config`] with more changes.
fn stream_config_with(
    db_port: u16,
    amqp_url: &str,
    exchange: &str,
    change: impl FnOnce(&mut BridgeConfig),
) -> String {
    let toml = bridge_config(db_port, amqp_url, exchange)
        .with(|c| {
            c.source.start = "start".into();
            c.dedup.window_ms = 0;
            c.broker.heartbeat_secs = 3600;
            change(c);
        })
        .to_toml();
    with_checkpoint_interval(&toml, 100)
}

/// A server that commits quickly (the tests stop it only cleanly, so nothing is at risk).
fn fast_db_options() -> MariaDbOptions {
    MariaDbOptions {
        extra_cnf: vec!["innodb_flush_log_at_trx_commit=2".into()],
        ..MariaDbOptions::default()
    }
}

/// What the checkpoint file says.
#[derive(Debug, Clone, PartialEq)]
struct SavedCheckpoint {
    file: String,
    pos: u64,
    next_seq: u64,
}

fn read_checkpoint(bridge_dir: &Path) -> Option<SavedCheckpoint> {
    let path = bridge_dir.join("bridge.checkpoint.json");
    let text = std::fs::read_to_string(&path).ok()?;
    let value: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("checkpoint {} is not JSON ({e}): {text}", path.display()));
    Some(SavedCheckpoint {
        file: value["file"].as_str().expect("checkpoint file").to_string(),
        pos: value["pos"].as_u64().expect("checkpoint pos"),
        next_seq: value["next_seq"].as_u64().expect("checkpoint next_seq"),
    })
}

/// The type of the binlog event that starts at `file:pos` (`None` at the end of the file). The
/// server refuses a position that is not the start of an event.
fn binlog_event_at(db: &MariaDb, file: &str, pos: u64) -> Option<String> {
    db.query_rows(&format!(
        "SHOW BINLOG EVENTS IN '{file}' FROM {pos} LIMIT 1"
    ))
    .into_iter()
    .next()
    .map(|row| row[2].clone())
}

/// A checkpoint must be a transaction boundary: the event there starts a transaction or lies
/// between transactions.
fn assert_transaction_boundary(db: &MariaDb, checkpoint: &SavedCheckpoint) {
    let event = binlog_event_at(db, &checkpoint.file, checkpoint.pos);
    assert!(
        matches!(
            event.as_deref(),
            None | Some("Gtid" | "Binlog_checkpoint" | "Rotate" | "Stop")
        ),
        "checkpoint {checkpoint:?} points at a {event:?} event: inside a transaction"
    );
}

/// The start and the end of a bridge log, for assertion messages (a log can be huge).
fn excerpt(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let cut = |l: &&str| -> String { l.chars().take(400).collect() };
    if lines.len() <= 60 {
        return lines.iter().map(cut).collect::<Vec<_>>().join("\n");
    }
    let head: Vec<String> = lines[..20].iter().map(cut).collect();
    let tail: Vec<String> = lines[lines.len() - 40..].iter().map(cut).collect();
    format!(
        "{}\n[... {} more lines ...]\n{}",
        head.join("\n"),
        lines.len() - 60,
        tail.join("\n")
    )
}

/// Number of OS threads of a process (`Threads:` in /proc/PID/status).
fn thread_count(pid: u32) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The log of the bridge's latest start only (the log file collects every run).
fn latest_run_log(bridge: &BridgeProcess) -> String {
    let log = bridge.log();
    let marker = "---- [system-tests] starting the bridge ----";
    match log.rfind(marker) {
        Some(at) => log[at..].to_string(),
        None => log,
    }
}

fn changes_of(received: &[Received]) -> Vec<&RowChange> {
    received
        .iter()
        .filter_map(|r| match &r.message {
            Message::Change(c) => Some(c),
            Message::Heartbeat(_) => None,
        })
        .collect()
}

/// Polls the queue until it holds at least `at_least` messages. Panics if the bridge exits.
async fn wait_for_queue_len(
    url: &str,
    queue: &str,
    at_least: u32,
    bridge: &mut BridgeProcess,
    timeout: Duration,
) -> u32 {
    let deadline = Instant::now() + timeout;
    loop {
        let len = queue_len(url, queue).await;
        if len >= at_least {
            return len;
        }
        assert!(
            bridge.is_running(),
            "the bridge exited ({:?}) while {at_least} messages were expected in {queue} (has \
             {len}); log:\n{}",
            bridge.exit_status(),
            excerpt(&bridge.log())
        );
        assert!(
            Instant::now() < deadline,
            "queue {queue} holds {len} messages, not {at_least}, after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The queue length once it stops moving (what a dead publisher had in flight has landed).
async fn settled_queue_len(url: &str, queue: &str) -> u32 {
    let mut last = queue_len(url, queue).await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = queue_len(url, queue).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

// ---------------------------------------------------------------------------------------------
// The stream: a table of rows, a writer that changes them, and the checks on what arrived
// ---------------------------------------------------------------------------------------------

const STREAM_TABLE: &str = "items";
/// Rows changed by the writer's occasional bulk UPDATE (ids are contiguous from 1).
const BULK_ROWS: i64 = 100;
/// About what the (debug build of the) bridge publishes per second on a busy 2-core machine.
const WRITES_PER_SECOND: u32 = 2_500;

fn label(version: i64) -> String {
    format!("v{version} é")
}

fn amount(version: i64) -> String {
    format!("{}.{:02}", version / 100, version % 100)
}

/// Creates `items` with `rows` rows at version 0; returns their (id, version) pairs.
fn create_items(db: &MariaDb, rows: i64) -> Vec<(i64, i64)> {
    let values: Vec<String> = (1..=rows)
        .map(|id| format!("({id}, 0, '{}', {})", label(0), amount(0)))
        .collect();
    db.exec(&format!(
        "CREATE TABLE {STREAM_TABLE} (id INT PRIMARY KEY, version BIGINT NOT NULL, \
         label VARCHAR(32) NOT NULL, amount DECIMAL(12,2) NOT NULL) CHARACTER SET utf8mb4;\n\
         INSERT INTO {STREAM_TABLE} VALUES {};",
        values.join(", ")
    ));
    (1..=rows).map(|id| (id, 0)).collect()
}

/// What the writer committed.
#[derive(Debug, Default)]
struct Written {
    /// (row id, version) of every committed change, in commit order.
    committed: Vec<(i64, i64)>,
    /// Transactions whose outcome was unknown (the connection failed) and were found committed
    /// or rolled back afterwards.
    found_committed: u32,
    found_rolled_back: u32,
}

async fn connect_retrying(url: &str) -> mysql_async::Conn {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match mysql_async::Conn::from_url(url).await {
            Ok(conn) => return conn,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the writer could not reconnect to {url}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Makes `total` changes to `items` in small transactions (1 to 4 changes each): single-row
/// UPDATEs of random rows, about 3% INSERTs of new rows, and in 0.5% of the transactions first
/// an UPDATE of 100 consecutive rows, at most `per_second` changes a
/// second (so that writing goes on while the test crashes and restarts things). Every change sets `version` to a
/// global counter, so each (id, version) pair names one change. On a connection error it
/// reconnects and finds out whether the transaction committed (it is the only writer: the row
/// it changed last holds that transaction's version exactly when it committed).
async fn write_changes(
    url: String,
    total: usize,
    initial_rows: i64,
    per_second: u32,
    progress: Arc<AtomicUsize>,
) -> Written {
    let started = Instant::now();
    let seed = fastrand::u64(..);
    eprintln!("writer: {total} changes, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut conn = connect_retrying(&url).await;
    let mut written = Written::default();
    let mut version: i64 = 0;
    let mut max_id = initial_rows;
    while written.committed.len() < total {
        let remaining = total - written.committed.len();
        let mut sql = String::from("START TRANSACTION;");
        let mut pairs = Vec::new();
        let mut tx_max_id = max_id;
        // Now and then one statement changes 100 rows: a transaction of several rows events.
        if remaining >= BULK_ROWS as usize && rng.u16(..1000) < 5 {
            version += 1;
            let first = rng.i64(1..=max_id - BULK_ROWS + 1);
            let last = first + BULK_ROWS - 1;
            sql.push_str(&format!(
                "UPDATE {STREAM_TABLE} SET version = {version}, label = '{}', amount = {} \
                 WHERE id BETWEEN {first} AND {last};",
                label(version),
                amount(version)
            ));
            pairs.extend((first..=last).map(|id| (id, version)));
        }
        let size = rng.usize(1..=4).min(remaining - pairs.len());
        for _ in 0..size {
            version += 1;
            let (label, amount) = (label(version), amount(version));
            let id = if rng.u8(..100) < 3 {
                tx_max_id += 1;
                sql.push_str(&format!(
                    "INSERT INTO {STREAM_TABLE} VALUES ({tx_max_id}, {version}, '{label}', {amount});"
                ));
                tx_max_id
            } else {
                let id = rng.i64(1..=tx_max_id);
                sql.push_str(&format!(
                    "UPDATE {STREAM_TABLE} SET version = {version}, label = '{label}', \
                     amount = {amount} WHERE id = {id};"
                ));
                id
            };
            pairs.push((id, version));
        }
        sql.push_str("COMMIT;");
        let committed = match conn.query_drop(&sql).await {
            Ok(()) => true,
            Err(_) => {
                let old = std::mem::replace(&mut conn, connect_retrying(&url).await);
                let _ = tokio::time::timeout(Duration::from_secs(5), old.disconnect()).await;
                let (id, last_version) = *pairs.last().expect("a transaction has changes");
                let now: Option<i64> = conn
                    .exec_first(
                        format!("SELECT version FROM {STREAM_TABLE} WHERE id = ?"),
                        (id,),
                    )
                    .await
                    .expect("reading back after a reconnect");
                let committed = now == Some(last_version);
                if committed {
                    written.found_committed += 1;
                } else {
                    written.found_rolled_back += 1;
                }
                committed
            }
        };
        if committed {
            written.committed.extend(pairs);
            max_id = tx_max_id;
            progress.store(written.committed.len(), Ordering::Relaxed);
        }
        let due = Duration::from_secs_f64(written.committed.len() as f64 / f64::from(per_second));
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
    let _ = conn.disconnect().await;
    written
}

/// Drains the queue (acking, like a partner) into `received` until every expected change has
/// arrived at least once. Returns false if that did not happen within `timeout` or the bridge
/// exited meanwhile; the caller's checks then say what is missing.
async fn collect_until_complete(
    url: &str,
    queue: &str,
    received: &mut Vec<Received>,
    expected: &HashSet<(i64, i64)>,
    bridge: &mut BridgeProcess,
    timeout: Duration,
) -> bool {
    let mut missing = expected.clone();
    for change in changes_of(received) {
        missing.remove(&id_and_version(change));
    }
    let deadline = Instant::now() + timeout;
    while !missing.is_empty() {
        if Instant::now() >= deadline || !bridge.is_running() {
            return false;
        }
        let batch = drain_received(url, queue, 5000, Duration::from_secs(2)).await;
        for change in changes_of(&batch) {
            missing.remove(&id_and_version(change));
        }
        received.extend(batch);
    }
    true
}

/// Receives until every committed change (the initial rows and what the writer committed) has
/// arrived or three minutes passed, then checks the whole stream against the database. Returns
/// the report and how many distinct changes were expected.
async fn receive_and_check_every_change(
    url: &str,
    queue: &str,
    received: &mut Vec<Received>,
    initial: &[(i64, i64)],
    committed: &[(i64, i64)],
    bridge: &mut BridgeProcess,
    db: &MariaDb,
) -> (StreamReport, usize) {
    let expected: HashSet<(i64, i64)> = initial.iter().chain(committed).copied().collect();
    let complete = collect_until_complete(
        url,
        queue,
        received,
        &expected,
        bridge,
        Duration::from_secs(180),
    )
    .await;
    eprintln!("complete: {complete}, {} messages received", received.len());
    let report = check_stream(received, &expected, &items_in_db(db));
    eprintln!("{report:?}");
    (report, expected.len())
}

/// Rows of `items` as the change messages should show them, by id.
fn items_in_db(db: &MariaDb) -> BTreeMap<i64, Value> {
    db.query_rows(&format!(
        "SELECT id, version, label, amount FROM {STREAM_TABLE} ORDER BY id"
    ))
    .into_iter()
    .map(|row| {
        let id: i64 = row[0].parse().expect("id");
        let version: i64 = row[1].parse().expect("version");
        (
            id,
            json!({"id": id, "version": version, "label": row[2], "amount": row[3]}),
        )
    })
    .collect()
}

#[derive(Debug)]
struct StreamReport {
    messages: usize,
    distinct: usize,
    duplicates: usize,
}

/// The checks every stream test makes on everything the partner queue delivered, in order:
/// - every committed change is there at least once, and nothing else is (no phantom changes);
/// - a duplicate (same `id`) has the same `seq` and the same body; two different changes never
///   share a `seq`; AMQP `message_id` and `x-seq` agree with the body;
/// - ignoring duplicates, per row `seq` and `version` strictly increase (a consumer that keeps
///   the highest `seq` per record never applies an older state after a newer one);
/// - for every row, the newest message's `after` is the row in the database, every column.
fn check_stream(
    received: &[Received],
    expected: &HashSet<(i64, i64)>,
    db_rows: &BTreeMap<i64, Value>,
) -> StreamReport {
    let mut problems: Vec<String> = Vec::new();
    let mut note = |problem: String| {
        if problems.len() < 30 {
            problems.push(problem);
        }
    };
    let mut first_seen: HashMap<&str, (u64, &[u8])> = HashMap::new();
    let mut id_of_seq: HashMap<u64, &str> = HashMap::new();
    let mut newest: HashMap<i64, (u64, i64, &RowChange)> = HashMap::new();
    let mut seen_pairs: HashSet<(i64, i64)> = HashSet::new();
    let mut messages = 0;
    let mut duplicates = 0;
    for (index, r) in received.iter().enumerate() {
        let Message::Change(change) = &r.message else {
            continue;
        };
        messages += 1;
        if change.database != "app" || change.table != STREAM_TABLE {
            note(format!(
                "#{index}: change of an unexpected table: {change:?}"
            ));
            continue;
        }
        if change.merged != 1 {
            note(format!(
                "#{index}: merged = {} with dedup off: {}",
                change.merged, change.id
            ));
        }
        if r.properties.message_id().as_ref().map(|s| s.as_str()) != Some(change.id.as_str()) {
            note(format!(
                "#{index}: AMQP message_id {:?} is not the change id {}",
                r.properties.message_id(),
                change.id
            ));
        }
        if r.header("x-seq") != Some(change.seq.to_string()) {
            note(format!(
                "#{index}: x-seq header {:?} is not the seq {}",
                r.header("x-seq"),
                change.seq
            ));
        }
        let pair = id_and_version(change);
        if !expected.contains(&pair) {
            note(format!(
                "#{index}: a change that was never committed (row {}, version {}): {}",
                pair.0, pair.1, change.id
            ));
        }
        seen_pairs.insert(pair);
        if let Some(&(seq, body)) = first_seen.get(change.id.as_str()) {
            duplicates += 1;
            if seq != change.seq || body != r.body.as_slice() {
                note(format!(
                    "#{index}: change {} published again with seq {} (first: {seq}) or another \
                     body:\n  first: {}\n  again: {}",
                    change.id,
                    change.seq,
                    String::from_utf8_lossy(body),
                    String::from_utf8_lossy(&r.body)
                ));
            }
            continue;
        }
        first_seen.insert(change.id.as_str(), (change.seq, r.body.as_slice()));
        if let Some(other) = id_of_seq.insert(change.seq, change.id.as_str()) {
            note(format!(
                "#{index}: seq {} names two changes: {other} and {}",
                change.seq, change.id
            ));
        }
        if let Some(&(seq, version, _)) = newest.get(&pair.0) {
            if change.seq <= seq || pair.1 <= version {
                note(format!(
                    "#{index}: row {} went back: seq {seq} (version {version}) was followed by \
                     seq {} (version {}), change {}",
                    pair.0, change.seq, pair.1, change.id
                ));
            }
        }
        let expected_op = if pair.1 == 0 || newest.contains_key(&pair.0) {
            None
        } else {
            Some(Operation::Insert)
        };
        if expected_op.is_some_and(|op| op != change.op) {
            note(format!(
                "#{index}: first change of new row {} is {:?}, not an insert",
                pair.0, change.op
            ));
        }
        newest.insert(pair.0, (change.seq, pair.1, change));
    }
    let mut missing: Vec<&(i64, i64)> = expected.difference(&seen_pairs).collect();
    missing.sort_by_key(|(_, version)| *version);
    if !missing.is_empty() {
        note(format!(
            "{} committed change(s) never arrived (row, version), oldest first: {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        ));
    }
    for (id, row) in db_rows {
        match newest.get(id) {
            None => note(format!(
                "row {id} is in the database but no change of it arrived"
            )),
            Some((seq, _, change)) => {
                let after = change.after.clone().map(Value::Object);
                let same_columns = change.after.as_ref().is_some_and(|a| {
                    a.keys()
                        .map(String::as_str)
                        .eq(["id", "version", "label", "amount"])
                });
                if after.as_ref() != Some(row) || !same_columns {
                    note(format!(
                        "row {id}: the newest message (seq {seq}) says {after:?}, the database \
                         has {row}"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in what the partner queue delivered ({messages} messages):\n{}",
        problems.len(),
        problems.join("\n")
    );
    StreamReport {
        messages,
        distinct: first_seen.len(),
        duplicates,
    }
}

// ---------------------------------------------------------------------------------------------
// Invariant 1 and 2: crashes and restarts lose nothing and keep order
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_and_resumes_from_the_checkpoint() {
    const ROWS: i64 = 1_000;
    const CHANGES: usize = 50_000;
    const KILL_AT: u32 = 15_000;
    let db = MariaDb::start_with(fast_db_options());
    let initial = create_items(&db, ROWS);
    let url = shared_amqp_url();
    let broker = BrokerObjects::bound(&url, "recovery.kill9").await;
    let queue = broker.queue().to_string();
    let mut bridge = BridgeProcess::start(&stream_config(db.port(), &url, &broker.exchange));

    let progress = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_changes(
        db.root_url(),
        CHANGES,
        ROWS,
        WRITES_PER_SECOND,
        progress.clone(),
    ));
    wait_for_queue_len(&url, &queue, KILL_AT, &mut bridge, Duration::from_secs(120)).await;
    bridge.kill9();
    let written_at_kill = progress.load(Ordering::Relaxed);
    let checkpoint = read_checkpoint(bridge.dir())
        .expect("the bridge saved a checkpoint before it was killed (interval_ms = 100)");
    eprintln!("killed with {written_at_kill} changes written; checkpoint {checkpoint:?}");
    assert_transaction_boundary(&db, &checkpoint);

    // Everything the killed bridge got into the queue: the first partner delivery.
    let before_kill = settled_queue_len(&url, &queue).await;
    let mut received =
        drain_received(&url, &queue, before_kill as usize, Duration::from_secs(120)).await;
    assert_eq!(received.len(), before_kill as usize);
    let first_run = received.len();

    bridge.restart();
    let written = writer.await.expect("writer task");
    let (report, expected) = receive_and_check_every_change(
        &url,
        &queue,
        &mut received,
        &initial,
        &written.committed,
        &mut bridge,
        &db,
    )
    .await;
    assert_eq!(
        report.distinct, expected,
        "one message id per committed change"
    );
    assert_eq!(report.messages, report.distinct + report.duplicates);

    // The restarted bridge resumed exactly at the checkpoint: its first change is the
    // checkpoint's next seq (nothing skipped, not started over).
    let second_run = changes_of(&received[first_run..]);
    let resumed_at = second_run.iter().map(|c| c.seq).min();
    assert_eq!(
        resumed_at,
        Some(checkpoint.next_seq),
        "the restarted bridge must resume at the checkpoint's next seq"
    );
    assert!(
        latest_run_log(&bridge).contains("resuming from checkpoint"),
        "{}",
        excerpt(&latest_run_log(&bridge))
    );
    // The checkpoint was never ahead of the broker's confirms: every change before it had
    // reached the queue before the kill, and its position is past all of them and before the
    // rest.
    let mut delivered_before_kill: HashSet<&str> = HashSet::new();
    for change in changes_of(&received[..first_run]) {
        delivered_before_kill.insert(change.id.as_str());
    }
    for change in changes_of(&received) {
        let at = (change.source.file.as_str(), change.source.pos);
        let checkpoint_at = (checkpoint.file.as_str(), checkpoint.pos);
        if change.seq < checkpoint.next_seq {
            assert!(
                delivered_before_kill.contains(change.id.as_str()),
                "change {} (seq {}) is before the checkpoint {checkpoint:?} but was not in the \
                 queue when the bridge was killed: the checkpoint ran ahead of the confirms",
                change.id,
                change.seq
            );
            assert!(at < checkpoint_at, "{change:?} vs {checkpoint:?}");
        } else {
            assert!(at >= checkpoint_at, "{change:?} vs {checkpoint:?}");
        }
    }
    assert!(
        first_run < expected,
        "the bridge had published everything before the kill: not mid-stream"
    );
    eprintln!(
        "writer at the kill: {written_at_kill} of {} changes",
        written.committed.len()
    );

    assert!(bridge.is_running(), "{}", excerpt(&bridge.log()));
    let status = bridge.terminate();
    assert!(
        status.success(),
        "{status:?}\n{}",
        excerpt(&latest_run_log(&bridge))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_before_the_first_checkpoint_save_loses_nothing() {
    let db = MariaDb::start();
    db.exec("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL)");
    let url = shared_amqp_url();
    let broker = BrokerObjects::bound(&url, "recovery.first").await;
    let queue = broker.queue().to_string();
    // First start, at the end of the binlog; checkpoints are due at most every 10 minutes.
    let toml = bridge_config(db.port(), &url, &broker.exchange)
        .with(|c| {
            c.source.start = "end".into();
            c.dedup.window_ms = 0;
            c.broker.heartbeat_secs = 3600;
        })
        .to_toml();
    let mut bridge = BridgeProcess::start(&with_checkpoint_interval(&toml, 600_000));

    // Once a change arrives, the bridge is capturing (changes made before it reached the end
    // of the binlog are not its business with start = "end").
    let mut id = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        id += 1;
        db.exec(&format!("INSERT INTO notes VALUES ({id}, 'probe')"));
        let got = drain_received(&url, &queue, 1, Duration::from_secs(1)).await;
        if !got.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline && bridge.is_running(),
            "no change arrives; log:\n{}",
            excerpt(&bridge.log())
        );
    }
    db.exec("INSERT INTO notes VALUES (100, 'captured before the crash')");
    let before = drain_received(&url, &queue, 1, Duration::from_secs(60)).await;
    assert_eq!(changes_of(&before).len(), 1, "{}", excerpt(&bridge.log()));

    bridge.kill9();
    db.exec(
        "INSERT INTO notes VALUES (200, 'committed while the bridge was down');\n\
         UPDATE notes SET body = 'changed while down' WHERE id = 100;",
    );
    bridge.restart();
    db.exec("INSERT INTO notes VALUES (300, 'after the restart')");

    let after = drain_received(&url, &queue, 10, Duration::from_secs(10)).await;
    let seen: Vec<(i64, String)> = changes_of(&after)
        .iter()
        .map(|c| {
            let row = c.latest_image().expect("image");
            (
                row["id"].as_i64().expect("id"),
                row["body"].as_str().expect("body").to_string(),
            )
        })
        .collect();
    for expected in [
        (200, "committed while the bridge was down"),
        (100, "changed while down"),
        (300, "after the restart"),
    ] {
        assert!(
            seen.iter().any(|(i, b)| (*i, b.as_str()) == expected),
            "change {expected:?}, committed after the crash, never arrived (got {seen:?}); \
             checkpoint file: {:?}; log of the restart:\n{}",
            read_checkpoint(bridge.dir()),
            excerpt(&latest_run_log(&bridge))
        );
    }
    assert!(bridge.terminate().success(), "{}", excerpt(&bridge.log()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_change_published_again_after_a_crash_keeps_its_id_and_seq() {
    let db = MariaDb::start();
    db.exec("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL)");
    let url = shared_amqp_url();
    let broker = BrokerObjects::bound(&url, "recovery.dup").await;
    let queue = broker.queue().to_string();
    // Checkpoints are saved at most every 10 minutes, and always at a clean stop: a kill within
    // the first 10 minutes of a run finds the checkpoint of the last clean stop.
    let toml = bridge_config(db.port(), &url, &broker.exchange)
        .with(|c| {
            c.source.start = "start".into();
            c.dedup.window_ms = 0;
            c.broker.heartbeat_secs = 3600;
        })
        .to_toml();
    let mut bridge = BridgeProcess::start(&with_checkpoint_interval(&toml, 600_000));
    let timeout = Duration::from_secs(60);

    // A: published, confirmed, checkpointed by a clean stop.
    let statements = |from: i32, to: i32, text: &str| -> String {
        (from..=to)
            .map(|i| format!("INSERT INTO notes VALUES ({i}, '{text} {i}');\n"))
            .collect()
    };
    db.exec(&statements(1, 20, "a"));
    let a = drain_received(&url, &queue, 20, timeout).await;
    assert_eq!(changes_of(&a).len(), 20, "{}", excerpt(&bridge.log()));
    assert!(bridge.terminate().success(), "{}", excerpt(&bridge.log()));
    let clean = read_checkpoint(bridge.dir()).expect("a clean stop saves the checkpoint");
    assert_transaction_boundary(&db, &clean);

    // B: published and confirmed, but the bridge dies before its next checkpoint.
    bridge.restart();
    db.exec(&(statements(21, 40, "b") + "UPDATE notes SET body = 'b again' WHERE id < 11;"));
    let b = drain_received(&url, &queue, 30, timeout).await;
    assert_eq!(changes_of(&b).len(), 30, "{}", excerpt(&bridge.log()));
    bridge.kill9();
    assert_eq!(
        read_checkpoint(bridge.dir()),
        Some(clean.clone()),
        "with interval_ms = 600000 no checkpoint is due before the kill"
    );

    // Restart: B is published again from the checkpoint, then C.
    bridge.restart();
    db.exec(&statements(41, 50, "c"));
    let again = drain_received(&url, &queue, 40, timeout).await;
    let rest = drain_received(&url, &queue, 1, Duration::from_secs(2)).await;
    assert!(rest.is_empty(), "more than B again and C: {rest:?}");
    assert_eq!(
        changes_of(&again).len(),
        40,
        "expected B again (30) and C (10); log:\n{}",
        excerpt(&bridge.log())
    );
    for (first, repeat) in b.iter().zip(&again[..30]) {
        let (Message::Change(f), Message::Change(r)) = (&first.message, &repeat.message) else {
            panic!("heartbeats are off")
        };
        assert_eq!(
            (&r.id, r.seq),
            (&f.id, f.seq),
            "same change, same id and seq"
        );
        assert_eq!(
            String::from_utf8_lossy(&repeat.body),
            String::from_utf8_lossy(&first.body),
            "the same change is published again with the same body"
        );
        assert_eq!(
            repeat.properties.message_id(),
            first.properties.message_id()
        );
        assert_eq!(repeat.header("x-seq"), first.header("x-seq"));
    }
    // A was not published again (the checkpoint is after it), and C follows B in seq.
    let a_ids: HashSet<&str> = changes_of(&a).iter().map(|c| c.id.as_str()).collect();
    assert!(changes_of(&again)
        .iter()
        .all(|c| !a_ids.contains(c.id.as_str())));
    let b_max = changes_of(&b).iter().map(|c| c.seq).max().unwrap();
    let c_changes = changes_of(&again[30..]);
    assert_eq!(c_changes[0].seq, b_max + 1, "C continues after B");
    assert!(c_changes.iter().all(|c| c.after.as_ref().unwrap()["body"]
        .as_str()
        .unwrap()
        .starts_with("c ")));
    assert_eq!(changes_of(&b)[0].seq, clean.next_seq);
    assert!(bridge.terminate().success(), "{}", excerpt(&bridge.log()));
}

/// How the broker goes away in [`broker_outage_scenario`].
#[derive(Clone, Copy, PartialEq, Debug)]
enum BrokerOutage {
    /// `rabbitmqctl stop`: connections are closed, then the node stops.
    CleanStop,
    /// The node hangs (SIGSTOP) long enough for the bridge's whole window of publishes to wait
    /// for confirms, then dies (SIGKILL): the connection fails with every message unconfirmed.
    HangThenCrash,
}

/// A private broker node goes away and comes back while changes stream in.
async fn broker_outage_scenario(prefix: &str, outage: BrokerOutage) {
    const ROWS: i64 = 500;
    const CHANGES: usize = 20_000;
    let db = MariaDb::start_with(fast_db_options());
    let initial = create_items(&db, ROWS);
    let mut node = tokio::task::block_in_place(RabbitNode::start);
    let url = node.amqp_url();
    let broker = BrokerObjects::bound(&url, prefix).await;
    let queue = broker.queue().to_string();
    let toml = stream_config_with(db.port(), &url, &broker.exchange, |c| {
        // Room for everything the writer makes while the broker is away: reading goes on.
        c.dedup.max_rows = 1_000_000;
        c.dedup.max_bytes = 1 << 30;
    });
    let mut bridge = BridgeProcess::start(&toml);

    let progress = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_changes(
        db.root_url(),
        CHANGES,
        ROWS,
        WRITES_PER_SECOND,
        progress.clone(),
    ));
    let queued_at_stop =
        wait_for_queue_len(&url, &queue, 5_000, &mut bridge, Duration::from_secs(120)).await;
    match outage {
        BrokerOutage::CleanStop => tokio::task::block_in_place(|| node.stop()),
        BrokerOutage::HangThenCrash => {
            let pid = node.pid().expect("broker pid");
            assert!(
                system_tests::util::send_signal(pid, "STOP"),
                "SIGSTOP {pid}"
            );
            // Changes keep coming (2,500 a second): the window of 1,000 fills at once.
            tokio::time::sleep(Duration::from_secs(2)).await;
            tokio::task::block_in_place(|| node.kill());
        }
    }
    eprintln!(
        "broker gone ({outage:?}) with {} changes written",
        progress.load(Ordering::Relaxed)
    );
    assert!(
        bridge
            .wait_for_log_async("waiting for the broker", Duration::from_secs(60))
            .await,
        "the bridge should say it waits for the broker; log:\n{}",
        excerpt(&bridge.log())
    );
    // While the broker is away the bridge waits with bounded resources (a healthy bridge runs
    // about 6 threads; every lapin connection has its own I/O thread).
    let pid = bridge.pid().expect("bridge pid");
    let mut most_threads = 0;
    for _ in 0..30 {
        most_threads = most_threads.max(thread_count(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        bridge.is_running(),
        "the bridge must wait for the broker, not exit ({:?}); log:\n{}",
        bridge.exit_status(),
        excerpt(&bridge.log())
    );
    tokio::task::block_in_place(|| node.start_again());
    // "connected to the broker again" after a failed attempt; what was unconfirmed is then
    // published again.
    let deadline = Instant::now() + Duration::from_secs(90);
    while ![
        "connected to the broker again",
        "published unconfirmed messages again",
    ]
    .iter()
    .any(|needle| bridge.log().contains(needle))
    {
        assert!(
            bridge.is_running() && Instant::now() < deadline,
            "the bridge should reconnect to the broker (running: {}); log:\n{}",
            bridge.is_running(),
            excerpt(&bridge.log())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let written = writer.await.expect("writer task");
    assert!(
        (queued_at_stop as usize) < written.committed.len(),
        "the bridge had published everything before the broker stopped: not mid-stream"
    );
    let mut received = Vec::new();
    let (report, expected) = receive_and_check_every_change(
        &url,
        &queue,
        &mut received,
        &initial,
        &written.committed,
        &mut bridge,
        &db,
    )
    .await;
    assert_eq!(
        report.distinct, expected,
        "one message id per committed change"
    );
    assert_eq!(report.messages, report.distinct + report.duplicates);

    // It waited for the broker with backoff and bounded resources: a reconnect loop doubling
    // its delay from 200 ms makes about 6 attempts in a 10 s outage, and a healthy bridge runs
    // about 6 threads.
    let log = bridge.log();
    let attempts = log.matches("waiting for the broker").count();
    let repolled = log.matches("future polled after completion").count();
    eprintln!(
        "broker outage ({outage:?}): {attempts} connection attempts, up to {most_threads} threads, \
         {repolled} \"future polled after completion\""
    );
    assert!(
        attempts <= 50 && most_threads <= 64,
        "during one broker outage ({outage:?}) the bridge made {attempts} connection attempts \
         (\"waiting for the broker\") and grew to {most_threads} threads; {repolled} times it \
         polled an already completed publisher confirm (\"future polled after completion\"). \
         It must wait with backoff and bounded resources. Attempt lines:\n{}",
        log.lines()
            .filter(|l| l.contains("bridge::publisher"))
            .take(12)
            .map(|l| l.chars().take(300).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        bridge.is_running(),
        "the bridge exited: {:?}\n{}",
        bridge.exit_status(),
        excerpt(&bridge.log())
    );
    let status = bridge.terminate();
    assert!(status.success(), "{status:?}\n{}", excerpt(&bridge.log()));
    assert_transaction_boundary(&db, &read_checkpoint(bridge.dir()).expect("checkpoint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() {
    broker_outage_scenario("recovery.broker", BrokerOutage::CleanStop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_hang_then_crash_is_waited_out_with_backoff_and_loses_nothing() {
    broker_outage_scenario("recovery.hang", BrokerOutage::HangThenCrash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_mid_stream_loses_nothing() {
    const ROWS: i64 = 500;
    const CHANGES: usize = 20_000;
    let mut db = MariaDb::start_with(fast_db_options());
    let initial = create_items(&db, ROWS);
    let url = shared_amqp_url();
    let broker = BrokerObjects::bound(&url, "recovery.db").await;
    let queue = broker.queue().to_string();
    let mut bridge = BridgeProcess::start(&stream_config(db.port(), &url, &broker.exchange));

    let progress = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_changes(
        db.root_url(),
        CHANGES,
        ROWS,
        WRITES_PER_SECOND,
        progress.clone(),
    ));
    // Stop the database on the writer's progress (not on the queue's, which lags on a loaded
    // machine), once the bridge is streaming: the restart must come mid-stream.
    wait_for_queue_len(&url, &queue, 1_000, &mut bridge, Duration::from_secs(120)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while progress.load(Ordering::Relaxed) < CHANGES / 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written_at_stop = progress.load(Ordering::Relaxed);
    tokio::task::block_in_place(|| db.stop());
    eprintln!("database stopped with {written_at_stop} changes written");
    assert!(
        bridge
            .wait_for_log_async("reconnecting from the checkpoint", Duration::from_secs(60))
            .await,
        "the bridge should notice the lost binlog connection; log:\n{}",
        excerpt(&bridge.log())
    );
    assert!(bridge.is_running(), "{}", excerpt(&bridge.log()));
    tokio::task::block_in_place(|| db.start_again());

    let written = writer.await.expect("writer task");
    eprintln!(
        "writer: {} committed, in doubt at the restart: {} committed, {} rolled back",
        written.committed.len(),
        written.found_committed,
        written.found_rolled_back
    );
    assert!(
        written_at_stop < written.committed.len(),
        "the database restart came after the writer had finished: not mid-stream"
    );
    let mut received = Vec::new();
    let (report, expected) = receive_and_check_every_change(
        &url,
        &queue,
        &mut received,
        &initial,
        &written.committed,
        &mut bridge,
        &db,
    )
    .await;
    assert_eq!(
        report.distinct, expected,
        "one message id per committed change"
    );
    assert_eq!(report.messages, report.distinct + report.duplicates);
    let log = bridge.log();
    assert!(
        log.matches("resuming from checkpoint").count() >= 1,
        "the bridge should resume from its checkpoint after the restart:\n{}",
        excerpt(&log)
    );
    assert!(bridge.is_running(), "{}", excerpt(&log));
    let status = bridge.terminate();
    assert!(status.success(), "{status:?}\n{}", excerpt(&bridge.log()));
    assert_transaction_boundary(&db, &read_checkpoint(bridge.dir()).expect("checkpoint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_waited_for_then_captured() {
    let mut db = MariaDb::start();
    db.exec("CREATE TABLE pings (id INT PRIMARY KEY, note VARCHAR(20) NOT NULL)");
    tokio::task::block_in_place(|| db.stop());
    let url = shared_amqp_url();
    let broker = BrokerObjects::bound(&url, "recovery.unreachable").await;
    let queue = broker.queue().to_string();
    let mut bridge = BridgeProcess::start(&stream_config(db.port(), &url, &broker.exchange));

    assert!(
        bridge
            .wait_for_log_async("waiting for the database", Duration::from_secs(60))
            .await,
        "log:\n{}",
        excerpt(&bridge.log())
    );
    assert!(
        bridge.is_running(),
        "the bridge must wait for the database, not exit; log:\n{}",
        excerpt(&bridge.log())
    );
    tokio::task::block_in_place(|| db.start_again());
    db.exec("INSERT INTO pings VALUES (1, 'hello')");

    let received = drain_received(&url, &queue, 1, Duration::from_secs(90)).await;
    let changes = changes_of(&received);
    assert_eq!(changes.len(), 1, "log:\n{}", excerpt(&bridge.log()));
    assert_eq!(changes[0].table, "pings");
    assert_eq!(changes[0].op, Operation::Insert);
    assert_eq!(
        changes[0].after.clone().map(Value::Object),
        Some(json!({"id": 1, "note": "hello"}))
    );
    let log = bridge.log();
    assert!(!log.contains("panicked"), "{}", excerpt(&log));
    assert!(bridge.terminate().success(), "{}", excerpt(&bridge.log()));
}

// ---------------------------------------------------------------------------------------------
// Invariant 4: loud failures, each naming what is wrong and how to fix it
// ---------------------------------------------------------------------------------------------

/// Runs `bridge check` and `bridge run` on `config`; both must exit non-zero (not by a signal,
/// not by a panic) with every needle in their output. Returns the `run` output.
fn assert_refused(config: &str, needles: &[&str]) -> String {
    let mut output = String::new();
    for command in ["check", "run"] {
        let (status, out) =
            BridgeProcess::run_to_exit(config, &[command], Duration::from_secs(120));
        assert!(
            !status.success() && status.code().is_some(),
            "`bridge {command}` should refuse, got {status:?}:\n{out}"
        );
        assert!(
            !out.contains("panicked"),
            "`bridge {command}` panicked:\n{out}"
        );
        for needle in needles {
            assert!(
                out.contains(needle),
                "`bridge {command}` output does not mention {needle:?}:\n{out}"
            );
        }
        output = out;
    }
    output
}

fn refusal_config(db_port: u16, broker: &BrokerObjects) -> String {
    bridge_config(db_port, &broker.url, &broker.exchange)
        .with(|c| c.broker.heartbeat_secs = 3600)
        .to_toml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_binlog_stops_the_bridge_with_a_resync_message() {
    let db = MariaDb::start();
    db.exec("CREATE TABLE pings (id INT PRIMARY KEY, note VARCHAR(20) NOT NULL)");
    let url = shared_amqp_url();
    let broker = BrokerObjects::bound(&url, "recovery.purged").await;
    let queue = broker.queue().to_string();
    let mut bridge = BridgeProcess::start(&stream_config(db.port(), &url, &broker.exchange));
    db.exec("INSERT INTO pings VALUES (1, 'a'), (2, 'b')");
    let got = drain_received(&url, &queue, 2, Duration::from_secs(60)).await;
    assert_eq!(changes_of(&got).len(), 2, "{}", excerpt(&bridge.log()));
    assert!(bridge.terminate().success(), "{}", excerpt(&bridge.log()));
    let checkpoint = read_checkpoint(bridge.dir()).expect("checkpoint after a clean stop");

    // The checkpoint's binlog disappears, with changes in it the bridge never read.
    db.exec(
        "INSERT INTO pings VALUES (3, 'lost');\n\
         FLUSH BINARY LOGS; FLUSH BINARY LOGS; FLUSH BINARY LOGS;",
    );
    let newest = db
        .query_rows("SHOW BINARY LOGS")
        .last()
        .expect("binlog files")[0]
        .clone();
    // MariaDB keeps the old files until its binlog checkpoint has moved on (a moment after
    // the flush), without a warning: purge until the checkpoint's file is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        db.exec(&format!("PURGE BINARY LOGS TO '{newest}'"));
        let files = db.query("SHOW BINARY LOGS");
        if !files.contains(&checkpoint.file) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} is still on the server: {files}",
            checkpoint.file
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.exec("INSERT INTO pings VALUES (4, 'after the purge')");

    bridge.restart();
    let status = bridge
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the bridge keeps running:\n{}", excerpt(&bridge.log())));
    let log = latest_run_log(&bridge);
    assert!(
        !status.success() && status.code().is_some(),
        "{status:?}\n{}",
        excerpt(&log)
    );
    for needle in ["purged", "initial sync", checkpoint.file.as_str()] {
        assert!(
            log.contains(needle),
            "the log lacks {needle:?}:\n{}",
            excerpt(&log)
        );
    }
    // It did not skip ahead: nothing after the purge was published.
    let after = drain_received(&url, &queue, 1, Duration::from_secs(2)).await;
    assert!(after.is_empty(), "published after a purge: {after:?}");
    assert_eq!(read_checkpoint(bridge.dir()), Some(checkpoint));
}

#[test]
fn binlog_off_is_refused_with_the_fix() {
    let db = MariaDb::start_with(MariaDbOptions {
        log_bin: false,
        ..MariaDbOptions::default()
    });
    let broker = BrokerObjects::exchange_only(&shared_amqp_url(), "refuse.binlog");
    assert_refused(
        &refusal_config(db.port(), &broker),
        &["binary log is off", "log_bin", "log-bin="],
    );
}

#[test]
fn statement_format_is_refused_with_the_fix() {
    let mut db = MariaDb::start_with(MariaDbOptions {
        binlog_format: "STATEMENT".into(),
        ..MariaDbOptions::default()
    });
    let broker = BrokerObjects::exchange_only(&shared_amqp_url(), "refuse.format");
    let config = refusal_config(db.port(), &broker);
    assert_refused(
        &config,
        &["binlog_format", "STATEMENT", "binlog_format=ROW"],
    );
    db.restart_with(MariaDbOptions {
        binlog_format: "MIXED".into(),
        ..MariaDbOptions::default()
    });
    assert_refused(&config, &["binlog_format", "MIXED", "binlog_format=ROW"]);
}

#[test]
fn minimal_row_image_is_refused_with_the_fix() {
    let db = MariaDb::start_with(MariaDbOptions {
        binlog_row_image: "MINIMAL".into(),
        ..MariaDbOptions::default()
    });
    let broker = BrokerObjects::exchange_only(&shared_amqp_url(), "refuse.image");
    assert_refused(
        &refusal_config(db.port(), &broker),
        &["binlog_row_image", "MINIMAL", "binlog_row_image=FULL"],
    );
}

#[test]
fn minimal_row_metadata_is_refused_with_the_fix() {
    let db = MariaDb::start_with(MariaDbOptions {
        binlog_row_metadata: "MINIMAL".into(),
        ..MariaDbOptions::default()
    });
    let broker = BrokerObjects::exchange_only(&shared_amqp_url(), "refuse.metadata");
    assert_refused(
        &refusal_config(db.port(), &broker),
        &["binlog_row_metadata", "MINIMAL", "binlog_row_metadata=FULL"],
    );
}

#[test]
fn text_in_a_charset_the_bridge_cannot_decode_is_refused_at_start_naming_the_column() {
    let db = MariaDb::start();
    db.exec(
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET gbk, \
         city VARCHAR(40) CHARACTER SET latin1, code VARBINARY(16)) CHARACTER SET utf8mb4",
    );
    let broker = BrokerObjects::exchange_only(&shared_amqp_url(), "refuse.gbk");
    let output = assert_refused(
        &refusal_config(db.port(), &broker),
        &["app.customers.name", "gbk", "utf8mb4"],
    );
    assert!(!output.contains("app.customers.city"), "{output}");
    assert!(!output.contains("app.customers.code"), "{output}");
}

/// `binlog.000001:1234` after `prefix` in `text`.
fn position_after(text: &str, prefix: &str) -> Option<(String, u64)> {
    let start = text.find(prefix)? + prefix.len();
    let rest = &text[start..];
    let (file, tail) = rest.split_once(':')?;
    let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
    Some((file.to_string(), digits.parse().ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_altered_to_an_undecodable_charset_stops_the_bridge_naming_table_and_position() {
    let db = MariaDb::start();
    db.exec(
        "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL) CHARACTER SET utf8mb4;\n\
         CREATE TABLE later (id INT PRIMARY KEY, note VARCHAR(20) NOT NULL) CHARACTER SET utf8mb4;\n\
         INSERT INTO people VALUES (1, 'before');",
    );
    let url = shared_amqp_url();
    let broker = BrokerObjects::bound(&url, "recovery.gbk").await;
    let queue = broker.queue().to_string();
    let mut bridge = BridgeProcess::start(&stream_config(db.port(), &url, &broker.exchange));
    let first = drain_received(&url, &queue, 1, Duration::from_secs(60)).await;
    assert_eq!(changes_of(&first).len(), 1, "{}", excerpt(&bridge.log()));

    // The client speaks utf8mb4; the server stores '中' in the gbk column as 0xD6D0.
    db.exec(
        "ALTER TABLE people MODIFY name VARCHAR(20) CHARACTER SET gbk NOT NULL;\n\
         INSERT INTO people VALUES (2, '中');\n\
         INSERT INTO later VALUES (1, 'after the bad row');\n\
         INSERT INTO people VALUES (3, 'plain');",
    );
    assert_eq!(
        db.query_value("SELECT HEX(name) FROM people WHERE id = 2"),
        "D6D0"
    );
    let status = bridge
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the bridge keeps running:\n{}", excerpt(&bridge.log())));
    let log = latest_run_log(&bridge);
    assert!(
        !status.success() && status.code().is_some(),
        "{status:?}\n{}",
        excerpt(&log)
    );
    assert!(!log.contains("panicked"), "{}", excerpt(&log));
    for needle in ["app.people", "`name`", "gbk", "utf8mb4"] {
        assert!(
            log.contains(needle),
            "the log lacks {needle:?}:\n{}",
            excerpt(&log)
        );
    }
    let failure = log
        .lines()
        .find(|line| line.contains("app.people") && line.contains("gbk"))
        .unwrap_or_default();
    let (file, pos) = position_after(failure, "binlog ")
        .unwrap_or_else(|| panic!("no binlog file:pos in the log:\n{}", excerpt(&log)));
    let event = binlog_event_at(&db, &file, pos);
    assert!(
        event.as_deref().is_some_and(|e| e.starts_with("Table_map")),
        "{file}:{pos} named in the log is a {event:?} event, not the table map of the rows"
    );

    // Nothing past the bad row was published, and the checkpoint is before it.
    let rest = drain_received(&url, &queue, 1, Duration::from_secs(2)).await;
    assert!(
        rest.is_empty(),
        "published past the undecodable row: {:?}",
        changes_of(&rest)
    );
    let checkpoint = read_checkpoint(bridge.dir()).expect("checkpoint");
    assert!(
        (checkpoint.file.as_str(), checkpoint.pos) < (file.as_str(), pos),
        "checkpoint {checkpoint:?} is not before the bad row at {file}:{pos}"
    );

    // It never skips it: restarted, it refuses the table (now gbk) at start, or stops at
    // the same row again; either way nothing more is published and the checkpoint stays.
    bridge.restart();
    let status = bridge
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| {
            panic!(
                "the restarted bridge keeps running:\n{}",
                excerpt(&bridge.log())
            )
        });
    let log = latest_run_log(&bridge);
    assert!(
        !status.success() && status.code().is_some(),
        "{}",
        excerpt(&log)
    );
    assert!(
        log.contains("app.people.name")
            || log
                .lines()
                .filter(|line| line.contains("gbk"))
                .any(|line| position_after(line, "binlog ") == Some((file.clone(), pos))),
        "the restarted bridge should name app.people.name or the same row:\n{}",
        excerpt(&log)
    );
    let rest = drain_received(&url, &queue, 1, Duration::from_secs(2)).await;
    assert!(rest.is_empty(), "published after a restart: {rest:?}");
    assert_eq!(read_checkpoint(bridge.dir()), Some(checkpoint));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_text_in_tables_that_are_not_captured_does_not_stop_the_bridge() {
    let db = MariaDb::start();
    db.exec(
        "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL) CHARACTER SET utf8mb4;\n\
         CREATE TABLE legacy (id INT PRIMARY KEY, name VARCHAR(20)) CHARACTER SET gbk;\n\
         CREATE DATABASE other CHARACTER SET gbk;\n\
         CREATE TABLE other.legacy (id INT PRIMARY KEY, name VARCHAR(20)) CHARACTER SET gbk;",
    );
    let url = shared_amqp_url();
    let broker = BrokerObjects::bound(&url, "recovery.uncaptured").await;
    let queue = broker.queue().to_string();
    let toml = bridge_config(db.port(), &url, &broker.exchange)
        .with(|c| {
            c.source.start = "start".into();
            c.dedup.window_ms = 0;
            c.broker.heartbeat_secs = 3600;
            c.capture.exclude_tables = vec!["app.legacy".into()];
        })
        .to_toml();
    let mut bridge = BridgeProcess::start(&toml);
    db.exec(
        "INSERT INTO legacy VALUES (1, '中');\n\
         INSERT INTO other.legacy VALUES (1, '中');\n\
         INSERT INTO people VALUES (1, 'after');",
    );
    assert_eq!(db.query_value("SELECT HEX(name) FROM other.legacy"), "D6D0");
    let received = drain_received(&url, &queue, 1, Duration::from_secs(60)).await;
    let changes = changes_of(&received);
    assert_eq!(changes.len(), 1, "{}", excerpt(&bridge.log()));
    assert_eq!(
        (
            changes[0].table.as_str(),
            changes[0].after.clone().map(Value::Object)
        ),
        ("people", Some(json!({"id": 1, "name": "after"})))
    );
    assert!(bridge.is_running(), "{}", excerpt(&bridge.log()));
    assert!(bridge.terminate().success(), "{}", excerpt(&bridge.log()));
}

#[test]
fn missing_replication_grant_is_refused_with_the_grant_statement() {
    let db = MariaDb::start();
    db.exec(
        "CREATE USER 'reader'@'%' IDENTIFIED BY 'reader-pass';\n\
         GRANT SELECT ON *.* TO 'reader'@'%';\n\
         CREATE USER 'halfway'@'%' IDENTIFIED BY 'halfway-pass';\n\
         GRANT REPLICATION SLAVE, SELECT ON *.* TO 'halfway'@'%';",
    );
    let broker = BrokerObjects::exchange_only(&shared_amqp_url(), "refuse.grant");
    let config = bridge_config(db.port(), &broker.url, &broker.exchange)
        .with(|c| {
            c.source.user = "reader".into();
            c.source.password = Some("reader-pass".into());
        })
        .to_toml();
    assert_refused(
        &config,
        &["reader", "REPLICATION SLAVE", "GRANT REPLICATION SLAVE"],
    );
    let config = bridge_config(db.port(), &broker.url, &broker.exchange)
        .with(|c| {
            c.source.user = "halfway".into();
            c.source.password = Some("halfway-pass".into());
        })
        .to_toml();
    assert_refused(
        &config,
        &["halfway", "REPLICATION CLIENT", "GRANT REPLICATION SLAVE"],
    );
}

#[test]
fn server_id_clash_is_refused() {
    let db = MariaDb::start();
    let broker = BrokerObjects::exchange_only(&shared_amqp_url(), "refuse.serverid");
    let config = bridge_config(db.port(), &broker.url, &broker.exchange)
        .with(|c| c.source.server_id = 1)
        .to_toml();
    assert_refused(&config, &["source.server_id 1", "server's own server_id"]);
}

#[test]
fn wrong_password_is_refused_with_a_clear_error() {
    let db = MariaDb::start();
    let broker = BrokerObjects::exchange_only(&shared_amqp_url(), "refuse.password");
    let config = bridge_config(db.port(), &broker.url, &broker.exchange)
        .with(|c| c.source.password = Some("not-the-password-7Q".into()))
        .to_toml();
    let output = assert_refused(
        &config,
        &["`cdc`", "source.password", "BRIDGE_SOURCE_PASSWORD"],
    );
    assert!(
        !output.contains("not-the-password-7Q"),
        "the password is in the output:\n{output}"
    );
}

#[test]
fn bad_config_names_the_file_and_key() {
    let base = bridge_config(1, &shared_amqp_url(), "never-declared").to_toml();
    let port_line = "port = 1\n";
    assert!(base.contains(port_line), "{base}");
    let empty_databases = bridge_config(1, &shared_amqp_url(), "never-declared")
        .with(|c| c.capture.databases.clear())
        .to_toml();
    let cases = [
        (
            "unknown key",
            base.replace("[dedup]\n", "[dedup]\nwindow = 5\n"),
            "window",
        ),
        (
            "wrong type",
            base.replace(port_line, "port = \"three-three-oh-six\"\n"),
            "port",
        ),
        ("empty databases", empty_databases, "capture.databases"),
    ];
    let servers_dir = test_servers_dir().display().to_string();
    for (what, config, key) in cases {
        for command in ["check", "run"] {
            let (status, output) =
                BridgeProcess::run_to_exit(&config, &[command], Duration::from_secs(60));
            assert_eq!(
                status.code(),
                Some(2),
                "{what}: `bridge {command}` should exit 2:\n{output}"
            );
            assert!(
                output.contains(&servers_dir) && output.contains("bridge.toml"),
                "{what}: `bridge {command}` does not name the config file:\n{output}"
            );
            assert!(
                output.contains(key),
                "{what}: `bridge {command}` does not name {key:?}:\n{output}"
            );
        }
    }
}
