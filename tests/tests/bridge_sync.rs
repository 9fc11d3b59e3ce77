//! Initial syncs (a new partner gets every existing record, then the live changes), against a
//! private MariaDB and the shared RabbitMQ, with the bridge binary as a child process.
//!
//! What is proven here:
//! - a new partner queue ends up with exactly the database's state of every row (soft-deleted
//!   rows included) while a writer keeps updating rows during the sync, and a consumer that
//!   applies messages in queue order never sees a row's version go back;
//! - a bridge killed (SIGKILL) in the middle of a sync resumes it from the last confirmed chunk
//!   and the result is the same;
//! - a partner queue that already existed receives the live changes and no snapshot row;
//! - a cancel stops a sync; a request naming a missing queue or an uncaptured table is refused
//!   with the reason; missing grants on the signal table stop the bridge naming the GRANT;
//! - a request for a queue outside `sync.queue_prefix`, without `user_id`, or from a broker
//!   user not in `sync.requesters` is refused, and the bridge serves a valid one after them;
//! - signal rows written into the signal table by someone else (a queue outside the prefix, a
//!   table not captured) start nothing while live changes keep flowing; the signal table in a
//!   schema of its own, not captured, works with least-privilege grants.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use change_message::{Message, RowChange};
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use system_tests::{
    bridge_config, declare_bound_queue, delete_exchange, delete_queue, shared_amqp_url, start_sync,
    unique_name, BridgeConfig, BridgeProcess, MariaDb, QueueReader,
};

const TABLE: &str = "items";

/// Exchange and queues of one test, deleted when it ends (passed or failed).
struct BrokerObjects {
    url: String,
    exchange: String,
    queues: Vec<String>,
}

impl BrokerObjects {
    async fn new(url: &str, prefix: &str, queues: usize) -> BrokerObjects {
        let exchange = unique_name(&format!("{prefix}.x"));
        let mut names = Vec::new();
        for i in 0..queues {
            // Partner queues: inside the bridge's default sync.queue_prefix.
            let queue = unique_name(&format!("ocpi.{prefix}.q{i}"));
            declare_bound_queue(url, &exchange, &queue).await;
            names.push(queue);
        }
        BrokerObjects {
            url: url.to_string(),
            exchange,
            queues: names,
        }
    }
}

impl Drop for BrokerObjects {
    fn drop(&mut self) {
        let url = self.url.clone();
        let exchange = self.exchange.clone();
        let queues = self.queues.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for cleanup");
            runtime.block_on(async {
                for queue in &queues {
                    delete_queue(&url, queue).await;
                }
                delete_exchange(&url, &exchange).await;
            });
        })
        .join();
    }
}

fn config(db: &MariaDb, url: &str, exchange: &str, chunk_size: usize) -> String {
    config_with(db, url, exchange, chunk_size, |_| {})
}

/// [`config`] with more changes (`[sync]` is the last section: keys appended go there).
fn config_with(
    db: &MariaDb,
    url: &str,
    exchange: &str,
    chunk_size: usize,
    change: impl FnOnce(&mut BridgeConfig),
) -> String {
    let toml = bridge_config(db.port(), url, exchange)
        .with(|c| {
            c.source.start = "end".into();
            c.dedup.window_ms = 0;
            c.broker.heartbeat_secs = 3600;
            change(c);
        })
        .to_toml();
    let toml = toml.replace("\n[checkpoint]\n", "\n[checkpoint]\ninterval_ms = 100\n");
    format!("{toml}\n[sync]\nchunk_size = {chunk_size}\nprogress_secs = 2\n")
}

/// `items` with `rows` rows (every 10th soft-deleted), inserted in multi-row statements.
fn create_items(db: &MariaDb, rows: i64) {
    db.exec(&format!(
        "CREATE TABLE {TABLE} (id INT PRIMARY KEY, version BIGINT NOT NULL, \
         deleted TINYINT NOT NULL, label VARCHAR(32) NOT NULL, amount DECIMAL(12,2) NOT NULL) \
         CHARACTER SET utf8mb4"
    ));
    let mut script = String::new();
    for start in (1..=rows).step_by(5000) {
        let values: Vec<String> = (start..(start + 5000).min(rows + 1))
            .map(|id| {
                format!(
                    "({id}, 0, {}, 'v0 é {id}', {}.25)",
                    i64::from(id % 10 == 0),
                    id % 1000
                )
            })
            .collect();
        script.push_str(&format!(
            "INSERT INTO {TABLE} VALUES {};\n",
            values.join(", ")
        ));
    }
    db.exec(&script);
}

/// Updates random rows (`version + 1`, now and then a soft delete) at about `per_second`
/// until `stop`; returns how many it committed.
async fn write_updates(
    url: String,
    rows: i64,
    per_second: u32,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
) {
    let mut conn = mysql_async::Conn::from_url(url.as_str())
        .await
        .expect("writer connects");
    let started = Instant::now();
    let mut done = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = fastrand::i64(1..=rows);
        let deleted = if fastrand::u8(..100) < 5 {
            "1"
        } else {
            "deleted"
        };
        conn.query_drop(format!(
            "UPDATE {TABLE} SET version = version + 1, deleted = {deleted}, \
             label = CONCAT('v', version + 1, ' é {id}') WHERE id = {id}"
        ))
        .await
        .expect("writer update");
        done += 1;
        count.store(done as usize, Ordering::Relaxed);
        let due = Duration::from_secs_f64(done as f64 / f64::from(per_second));
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
    let _ = conn.disconnect().await;
}

/// What a consumer of a partner queue holds, applying messages in queue order like the pusher:
/// per record the highest `seq` applied; a message with a lower or equal `seq` is a duplicate
/// or stale (republished after a crash) and is skipped.
#[derive(Default)]
struct Replica {
    rows: BTreeMap<i64, (u64, Value)>,
    snapshot_rows: usize,
    live: usize,
    skipped: usize,
    /// The first skipped messages, described, so a failure tells duplicates from reordering.
    first_skipped: Vec<String>,
    problems: Vec<String>,
}

impl Replica {
    fn apply(&mut self, change: &RowChange, redelivered: bool) {
        if change.table != TABLE {
            self.problems
                .push(format!("change of another table: {}", change.id));
            return;
        }
        if change.snapshot.is_some() {
            self.snapshot_rows += 1;
        } else {
            self.live += 1;
        }
        let id = change.key["id"].as_i64().expect("integer id");
        let Some(image) = change.latest_image() else {
            self.problems.push(format!("no image: {}", change.id));
            return;
        };
        let version = image["version"].as_i64().expect("version");
        if let Some((seq, old)) = self.rows.get(&id) {
            if change.seq <= *seq {
                self.skipped += 1;
                if self.first_skipped.len() < 10 {
                    self.first_skipped.push(format!(
                        "row {id}: seq {} ({}, redelivered: {redelivered}, version {version}) \
                         after seq {seq} (version {})",
                        change.seq,
                        if change.snapshot.is_some() {
                            "snapshot"
                        } else {
                            "live"
                        },
                        old["version"]
                    ));
                }
                return;
            }
            let old_version = old["version"].as_i64().unwrap_or(0);
            if version < old_version && self.problems.len() < 20 {
                self.problems.push(format!(
                    "row {id} went back from version {old_version} (seq {seq}) to {version} \
                     (seq {}, {})",
                    change.seq, change.id
                ));
            }
        }
        self.rows
            .insert(id, (change.seq, Value::Object(image.clone())));
    }

    fn take(&mut self, received: &[system_tests::Received]) -> usize {
        let mut n = 0;
        for r in received {
            if let Message::Change(change) = &r.message {
                self.apply(change, r.redelivered);
                n += 1;
            }
        }
        n
    }
}

fn rows_in_db(db: &MariaDb) -> BTreeMap<i64, Value> {
    db.query_rows(&format!(
        "SELECT id, version, deleted, label, amount FROM {TABLE} ORDER BY id"
    ))
    .into_iter()
    .map(|r| {
        let id: i64 = r[0].parse().expect("id");
        (
            id,
            json!({"id": id, "version": r[1].parse::<i64>().expect("version"),
                   "deleted": r[2].parse::<i64>().expect("deleted"), "label": r[3], "amount": r[4]}),
        )
    })
    .collect()
}

fn compare(replica: &Replica, db: &BTreeMap<i64, Value>) {
    assert!(
        replica.problems.is_empty(),
        "problems in what the partner received:\n{}",
        replica.problems.join("\n")
    );
    let mut diffs = Vec::new();
    for (id, row) in db {
        match replica.rows.get(id) {
            None => diffs.push(format!("row {id} never arrived")),
            Some((_, got)) if got != row => diffs.push(format!("row {id}: got {got}, db {row}")),
            _ => {}
        }
        if diffs.len() >= 20 {
            break;
        }
    }
    assert!(
        diffs.is_empty() && replica.rows.len() == db.len(),
        "the partner's copy differs from the database ({} rows vs {}):\n{}",
        replica.rows.len(),
        db.len(),
        diffs.join("\n")
    );
}

/// Reads the queue into `replica` until it stays empty for a moment.
async fn drain_all(reader: &mut QueueReader, replica: &mut Replica) {
    let mut empty = 0;
    while empty < 3 {
        let batch = reader.next_batch(20_000, Duration::from_millis(700)).await;
        if replica.take(&batch) == 0 {
            empty += 1;
        } else {
            empty = 0;
        }
    }
}

async fn sync_under_writes(kill_mid_sync: bool, rows: i64) {
    let db = MariaDb::start();
    create_items(&db, rows);
    let url = shared_amqp_url();
    let prefix = if kill_mid_sync {
        "sync.kill"
    } else {
        "sync.full"
    };
    // q0: a partner that was there before; q1: the new partner.
    let broker = BrokerObjects::new(&url, prefix, 2).await;
    let (old_partner, new_partner) = (broker.queues[0].clone(), broker.queues[1].clone());
    let toml = config(&db, &url, &broker.exchange, 1024);
    let mut bridge = BridgeProcess::start(&toml);
    assert!(
        bridge
            .wait_for_log_async("listening for sync requests", Duration::from_secs(60))
            .await,
        "{}",
        bridge.log()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_updates(
        db.root_url(),
        rows,
        300,
        stop.clone(),
        written.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    start_sync(&toml, &new_partner, &format!("app.{TABLE}"));

    // One consumer for the whole test: see `QueueReader`.
    let mut reader = QueueReader::open(&url, &new_partner).await;
    let mut replica = Replica::default();
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let batch = reader.next_batch(20_000, Duration::from_millis(500)).await;
        replica.take(&batch);
        if kill_mid_sync && !killed && replica.snapshot_rows as i64 > rows / 3 {
            bridge.kill9();
            killed = true;
            eprintln!(
                "killed the bridge with {} snapshot rows received",
                replica.snapshot_rows
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            bridge.restart();
        }
        if bridge.log().contains("sync finished") {
            break;
        }
        assert!(
            bridge.is_running() && Instant::now() < deadline,
            "the sync did not finish (bridge running: {}); log:\n{}",
            bridge.is_running(),
            system_tests::util::tail(&bridge.log_path(), 40)
        );
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    eprintln!(
        "sync of {rows} rows finished in {:.1}s ({:.0} rows/s) with {} updates written",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        written.load(Ordering::Relaxed)
    );
    // Every update the writer made is in the binlog: wait until the bridge published them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drain_all(&mut reader, &mut replica).await;
    reader.close().await;
    compare(&replica, &rows_in_db(&db));
    assert!(
        replica.snapshot_rows as i64 >= rows / 2,
        "few snapshot rows: {}",
        replica.snapshot_rows
    );
    if !kill_mid_sync {
        assert_eq!(
            replica.skipped,
            0,
            "nothing is delivered twice without a crash; the first skipped:\n{}",
            replica.first_skipped.join("\n")
        );
    }
    eprintln!(
        "new partner: {} snapshot rows, {} live changes, {} skipped as older or duplicate",
        replica.snapshot_rows, replica.live, replica.skipped
    );

    // The partner that was there before got the live changes and not one snapshot row.
    let mut old = Replica::default();
    let mut reader = QueueReader::open(&url, &old_partner).await;
    drain_all(&mut reader, &mut old).await;
    reader.close().await;
    assert_eq!(
        old.snapshot_rows, 0,
        "snapshot rows reached another partner's queue"
    );
    assert!(old.live > 0, "the existing partner received no live change");

    // `bridge sync status` reads the confirmed state from the checkpoint.
    let status = Command::new(system_tests::bridge_bin())
        .args(["sync", "status", "--json", "--config"])
        .arg(bridge.config_path())
        .output()
        .expect("run bridge sync status");
    let text = String::from_utf8_lossy(&status.stdout);
    let state: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let ended = &state["ended"][0];
    assert_eq!(ended["state"], "finished", "{text}");
    assert_eq!(ended["queue"], new_partner.as_str(), "{text}");
    assert!(
        ended["tables"][0]["rows_done"].as_i64().unwrap_or(0) >= rows,
        "{text}"
    );
    assert!(bridge.terminate().success(), "{}", bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_partner_gets_every_row_then_live_changes_and_no_row_goes_back() {
    sync_under_writes(false, 100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_killed_mid_sync_resumes_from_the_last_confirmed_chunk() {
    sync_under_writes(true, 50_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_sync_and_bad_requests_are_refused() {
    let db = MariaDb::start();
    create_items(&db, 20_000);
    db.exec("CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY)");
    let url = shared_amqp_url();
    let broker = BrokerObjects::new(&url, "sync.cancel", 1).await;
    let queue = broker.queues[0].clone();
    // Small chunks: the sync takes long enough to be cancelled half-way.
    let toml = config(&db, &url, &broker.exchange, 20);
    let mut bridge = BridgeProcess::start(&toml);
    assert!(
        bridge
            .wait_for_log_async("listening for sync requests", Duration::from_secs(60))
            .await
    );

    // Refused by the CLI, before anything is published.
    let (status, output) = BridgeProcess::run_to_exit(
        &toml,
        &[
            "sync",
            "start",
            "--queue",
            "ocpi.no-such-queue-here",
            "--tables",
            "app.items",
        ],
        Duration::from_secs(60),
    );
    assert!(!status.success());
    assert!(
        output.contains("queue `ocpi.no-such-queue-here` does not exist"),
        "{output}"
    );
    let (status, output) = BridgeProcess::run_to_exit(
        &toml,
        &["sync", "start", "--queue", &queue, "--tables", "other.t"],
        Duration::from_secs(60),
    );
    assert!(!status.success());
    assert!(output.contains("other.t is not captured"), "{output}");

    // Refused by the bridge when the request comes straight to its queue.
    let request = change_message::sync_request::SyncRequest::new(
        "11111111-2222-3333-4444-555555555555".into(),
        change_message::sync_request::SyncAction::Start {
            queue: "ocpi.no-such-queue-here".into(),
            tables: vec!["app.items".into()],
        },
        String::new(),
    );
    publish_to_queue(
        &url,
        &change_message::sync_request::requests_queue(&broker.exchange),
        &request.to_vec(),
        Some("guest"),
    )
    .await;
    assert!(
        bridge
            .wait_for_log_async("sync request refused", Duration::from_secs(30))
            .await,
        "{}",
        bridge.log()
    );
    assert!(bridge
        .log()
        .contains("ocpi.no-such-queue-here` does not exist"));

    // A real sync, cancelled once it has sent some rows.
    start_sync(&toml, &queue, "app.items");
    let mut reader = QueueReader::open(&url, &queue).await;
    let mut replica = Replica::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while replica.snapshot_rows < 200 {
        replica.take(&reader.next_batch(1000, Duration::from_millis(300)).await);
        assert!(
            Instant::now() < deadline,
            "no snapshot rows; {}",
            bridge.log()
        );
    }
    let (status, output) = BridgeProcess::run_to_exit(
        &toml,
        &["sync", "cancel", "--queue", &queue],
        Duration::from_secs(60),
    );
    assert!(status.success(), "{output}");
    assert!(
        bridge
            .wait_for_log_async("sync cancelled", Duration::from_secs(30))
            .await,
        "{}",
        bridge.log()
    );
    drain_all(&mut reader, &mut replica).await;
    reader.close().await;
    assert!(
        replica.snapshot_rows < 20_000,
        "the cancelled sync sent every row ({})",
        replica.snapshot_rows
    );
    assert!(!bridge.log().contains("sync finished"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = Command::new(system_tests::bridge_bin())
        .args(["sync", "status", "--config"])
        .arg(bridge.config_path())
        .output()
        .expect("run bridge sync status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&queue) && text.contains("cancelled"),
        "{text}"
    );
    assert!(bridge.terminate().success());
}

/// Publishes `body` to `queue` through `url`, persistent and confirmed, with `user_id` (which
/// the broker accepts only when it is the connection's user).
async fn publish_to_queue(url: &str, queue: &str, body: &[u8], user_id: Option<&str>) {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    let conn = system_tests::rabbit::connect(url).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        match user_id {
            Some(user) => lapin::BasicProperties::default()
                .with_delivery_mode(2)
                .with_user_id(user.into()),
            None => lapin::BasicProperties::default().with_delivery_mode(2),
        },
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_grants_on_the_signal_table_name_the_grant() {
    let db = MariaDb::start();
    db.exec(
        "SET sql_log_bin = 0;\n\
         CREATE USER 'nosig'@'%' IDENTIFIED BY 'pw';\n\
         CREATE USER 'nosig'@'localhost' IDENTIFIED BY 'pw';\n\
         CREATE USER 'nosig'@'127.0.0.1' IDENTIFIED BY 'pw';\n\
         GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'nosig'@'%';\n\
         GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'nosig'@'localhost';\n\
         GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'nosig'@'127.0.0.1';",
    );
    let url = shared_amqp_url();
    let exchange = unique_name("sync.grant.x");
    let toml = bridge_config(db.port(), &url, &exchange)
        .with(|c| {
            c.source.user = "nosig".into();
            c.source.password = Some("pw".into());
        })
        .to_toml();
    // The table is missing and may not be created.
    let (status, output) = BridgeProcess::run_to_exit(&toml, &["check"], Duration::from_secs(60));
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(
            "GRANT SELECT, INSERT, DELETE, CREATE ON `app`.`cdc_signal` TO 'nosig'@'<host>'"
        ) && output.contains("CREATE TABLE IF NOT EXISTS `app`.`cdc_signal`"),
        "{output}"
    );
    // The table exists (an operator created it) but may not be written.
    db.exec(
        "CREATE TABLE app.cdc_signal (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         kind VARCHAR(16) NOT NULL, sync_id VARCHAR(64) NOT NULL, \
         attempt VARCHAR(64) NOT NULL DEFAULT '', queue VARCHAR(255) NOT NULL DEFAULT '', \
         detail TEXT NOT NULL, created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), \
         KEY created_at (created_at)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    );
    let (status, output) = BridgeProcess::run_to_exit(&toml, &["run"], Duration::from_secs(60));
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("cannot write (INSERT) the signal table")
            && output.contains("GRANT SELECT, INSERT, DELETE, CREATE ON `app`.`cdc_signal`"),
        "{output}"
    );
    // With the grant, the checks pass.
    db.exec("GRANT SELECT, INSERT, DELETE ON app.cdc_signal TO 'nosig'@'%'; GRANT SELECT, INSERT, DELETE ON app.cdc_signal TO 'nosig'@'localhost'; GRANT SELECT, INSERT, DELETE ON app.cdc_signal TO 'nosig'@'127.0.0.1';");
    let (status, output) = BridgeProcess::run_to_exit(&toml, &["check"], Duration::from_secs(60));
    assert!(output.contains("signal table OK"), "{status:?} {output}");
    delete_exchange(&url, &exchange).await;
}

/// A second user on the shared broker (administrator permissions on vhost `/`), deleted when
/// dropped.
struct BrokerUser {
    name: String,
    password: String,
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("run rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl BrokerUser {
    fn create() -> BrokerUser {
        let user = BrokerUser {
            name: unique_name("sync-requester"),
            password: "requester-pw".into(),
        };
        rabbitmqctl(&["add_user", &user.name, &user.password]);
        rabbitmqctl(&["set_permissions", "-p", "/", &user.name, ".*", ".*", ".*"]);
        user
    }

    /// `url` (the shared broker as guest) logged in as this user.
    fn url(&self, url: &str) -> String {
        url.replacen(
            "guest:guest@",
            &format!("{}:{}@", self.name, self.password),
            1,
        )
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_user", &self.name])
            .output();
    }
}

fn start_request(id: &str, queue: &str, tables: &[&str]) -> Vec<u8> {
    change_message::sync_request::SyncRequest::new(
        id.into(),
        change_message::sync_request::SyncAction::Start {
            queue: queue.into(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
        },
        String::new(),
    )
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_requests_outside_the_queue_prefix_or_from_unlisted_users_are_refused_then_a_valid_one_works(
) {
    let db = MariaDb::start();
    create_items(&db, 40);
    let url = shared_amqp_url();
    let broker = BrokerObjects::new(&url, "sync.trust", 1).await;
    let partner = broker.queues[0].clone();
    // A queue that exists and is bound, but is no partner's.
    let outside = unique_name("audit.sync.trust");
    declare_bound_queue(&url, &broker.exchange, &outside).await;
    let requests = change_message::sync_request::requests_queue(&broker.exchange);
    let toml = config(&db, &url, &broker.exchange, 16);
    let mut bridge = BridgeProcess::start(&toml);
    assert!(
        bridge
            .wait_for_log_async("listening for sync requests", Duration::from_secs(60))
            .await,
        "{}",
        bridge.log()
    );

    // The CLI refuses a queue outside the prefix before publishing anything.
    let (status, output) = BridgeProcess::run_to_exit(
        &toml,
        &[
            "sync",
            "start",
            "--queue",
            &outside,
            "--tables",
            "app.items",
        ],
        Duration::from_secs(60),
    );
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(&format!("queue `{outside}` is not a partner queue"))
            && output.contains("sync.queue_prefix"),
        "{output}"
    );

    // Straight to the requests queue: outside the prefix, no user_id, another broker user.
    publish_to_queue(
        &url,
        &requests,
        &start_request(
            "00000000-0000-0000-0000-000000000001",
            &outside,
            &["app.items"],
        ),
        Some("guest"),
    )
    .await;
    assert!(
        bridge
            .wait_for_log_async(
                &format!("queue `{outside}` is not a partner queue"),
                Duration::from_secs(30)
            )
            .await,
        "{}",
        bridge.log()
    );
    publish_to_queue(
        &url,
        &requests,
        &start_request(
            "00000000-0000-0000-0000-000000000002",
            &partner,
            &["app.items"],
        ),
        None,
    )
    .await;
    assert!(
        bridge
            .wait_for_log_async("the request carries no user_id", Duration::from_secs(30))
            .await,
        "{}",
        bridge.log()
    );
    let other = BrokerUser::create();
    publish_to_queue(
        &other.url(&url),
        &requests,
        &start_request(
            "00000000-0000-0000-0000-000000000003",
            &partner,
            &["app.items"],
        ),
        Some(&other.name),
    )
    .await;
    assert!(
        bridge
            .wait_for_log_async(
                &format!("broker user `{}` may not request syncs", other.name),
                Duration::from_secs(30)
            )
            .await,
        "{}",
        bridge.log()
    );
    let log = bridge.log();
    assert_eq!(log.matches("sync request refused").count(), 3, "{log}");
    assert!(!log.contains("sync started"), "{log}");
    assert!(bridge.is_running(), "{log}");

    // A valid request after the refused ones is served.
    start_sync(&toml, &partner, "app.items");
    assert!(
        bridge
            .wait_for_log_async("sync finished", Duration::from_secs(60))
            .await,
        "{}",
        bridge.log()
    );
    let mut reader = QueueReader::open(&url, &partner).await;
    let mut replica = Replica::default();
    drain_all(&mut reader, &mut replica).await;
    reader.close().await;
    assert_eq!(replica.snapshot_rows, 40);
    let mut reader = QueueReader::open(&url, &outside).await;
    let mut seen = Replica::default();
    drain_all(&mut reader, &mut seen).await;
    reader.close().await;
    assert_eq!(
        seen.snapshot_rows, 0,
        "a refused request sent snapshot rows"
    );
    delete_queue(&url, &outside).await;
    assert!(bridge.terminate().success(), "{}", bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signal_rows_start_nothing_and_a_signal_schema_of_its_own_works_with_least_privilege(
) {
    let db = MariaDb::start();
    create_items(&db, 30);
    db.exec(
        "CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY, version BIGINT NOT NULL); \
         INSERT INTO other.t VALUES (1, 0); CREATE DATABASE cdc_ctl;",
    );
    // Least privilege: replication globally, SELECT on the captured schema only, the signal
    // table's rights on its own schema only.
    let mut grants = String::from("SET sql_log_bin = 0;\n");
    for host in ["%", "localhost", "127.0.0.1"] {
        grants.push_str(&format!(
            "CREATE USER 'least'@'{host}' IDENTIFIED BY 'pw';\n\
             GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'least'@'{host}';\n\
             GRANT SELECT ON app.* TO 'least'@'{host}';\n\
             GRANT SELECT, INSERT, DELETE, CREATE ON cdc_ctl.cdc_signal TO 'least'@'{host}';\n"
        ));
    }
    db.exec(&grants);
    let url = shared_amqp_url();
    let broker = BrokerObjects::new(&url, "sync.forged", 2).await;
    let (live, partner) = (broker.queues[0].clone(), broker.queues[1].clone());
    let outside = unique_name("audit.sync.forged");
    declare_bound_queue(&url, &broker.exchange, &outside).await;
    let toml = config_with(&db, &url, &broker.exchange, 16, |c| {
        c.source.user = "least".into();
        c.source.password = Some("pw".into());
    });
    let toml = format!("{toml}database = \"cdc_ctl\"\n");
    let mut bridge = BridgeProcess::start(&toml);
    assert!(
        bridge
            .wait_for_log_async("listening for sync requests", Duration::from_secs(60))
            .await,
        "{}",
        bridge.log()
    );
    assert!(
        db.query_value(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'cdc_ctl' \
             AND TABLE_NAME = 'cdc_signal'"
        ) == "1",
        "the bridge did not create its signal table; {}",
        bridge.log()
    );

    // Rows nobody requested: a captured table into a queue outside the prefix, a table that
    // is not captured into a partner queue.
    db.exec(&format!(
        "INSERT INTO cdc_ctl.cdc_signal (kind, sync_id, queue, detail) VALUES \
         ('sync-start', 'forged-1', '{outside}', '{{\"tables\":[\"app.items\"]}}'), \
         ('sync-start', 'forged-2', '{partner}', '{{\"tables\":[\"other.t\"]}}');"
    ));
    assert!(
        bridge
            .wait_for_log_async("forged-2", Duration::from_secs(30))
            .await,
        "{}",
        bridge.log()
    );
    // Live changes keep flowing after them.
    db.exec("UPDATE app.items SET version = version + 1 WHERE id <= 5;");
    let mut reader = QueueReader::open(&url, &live).await;
    let mut replica = Replica::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while replica.live < 5 {
        replica.take(&reader.next_batch(5, Duration::from_millis(500)).await);
        assert!(
            Instant::now() < deadline,
            "live changes stopped; {}",
            bridge.log()
        );
    }
    reader.close().await;
    let log = bridge.log();
    assert_eq!(log.matches("signal row refused").count(), 2, "{log}");
    assert!(
        log.contains(&format!("queue `{outside}` is not a partner queue"))
            && log.contains("table other.t is not captured"),
        "{log}"
    );
    assert!(!log.contains("sync started"), "{log}");
    for queue in [&outside, &partner] {
        let mut reader = QueueReader::open(&url, queue).await;
        let mut seen = Replica::default();
        drain_all(&mut reader, &mut seen).await;
        reader.close().await;
        assert_eq!(
            seen.snapshot_rows, 0,
            "a forged signal row sent snapshot rows to {queue}"
        );
    }

    // A requested sync goes through the signal table in its own, uncaptured schema.
    start_sync(&toml, &partner, "app.items");
    assert!(
        bridge
            .wait_for_log_async("sync finished", Duration::from_secs(60))
            .await,
        "{}",
        bridge.log()
    );
    let mut reader = QueueReader::open(&url, &partner).await;
    let mut replica = Replica::default();
    drain_all(&mut reader, &mut replica).await;
    reader.close().await;
    assert_eq!(replica.snapshot_rows, 30, "{}", bridge.log());
    compare(&replica, &rows_in_db(&db));
    delete_queue(&url, &outside).await;
    assert!(bridge.terminate().success(), "{}", bridge.log());
}
