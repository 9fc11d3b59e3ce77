//! Adding a partner, end to end: MariaDB (binlog) -> bridge -> RabbitMQ -> pusher -> OCPI partner
//! doubles, with `pusher sync PARTNER` asking the running bridge for the new partner's initial
//! sync (DBLog watermarks, README "Initial sync of a new partner").
//!
//! - `adding_a_partner_sends_every_existing_record_then_the_live_changes`: the example OCPI
//!   schema holds a few hundred records (tariffs, locations with their EVSEs and connectors,
//!   tokens, the seed session and CDR; some soft-deleted) before the bridge starts. Partner A
//!   is configured from the start and gets them through the binlog. Then, while a writer keeps
//!   updating records of every kind, partner B is added: its `[[partner]]` goes into the pusher
//!   config, `pusher sync b` runs (a child process: exit 0, says what it did) and the pusher is
//!   restarted with the new config. Once the writer stopped and the queues drained: B holds
//!   exactly what the database holds (the final-state comparison of `pusher_end_to_end`), B never
//!   got a record's older state after a newer one (the double refuses those, so nothing may be
//!   parked for B, and B's requests per record carry a `last_updated` that never goes back),
//!   and A got no snapshot row: not one request for a record the writer did not touch.
//! - `changes_after_the_bridge_lost_its_checkpoint_and_a_resync_reach_the_running_pusher`: the
//!   bridge is killed, its checkpoint deleted, a tariff changed while it is down, and the bridge
//!   started again from the end of the binlog, while the pusher runs throughout. Every change
//!   after the reset reaches the partner (a bridge numbering from 1 again made the pusher take
//!   them for old states and drop them), the partner differs only in the tariff changed in the
//!   gap, and after `pusher sync` it equals the database, nothing parked.
//! - `sync_of_an_unknown_partner_or_without_the_bridge_queue_fails_with_the_fix`: `pusher sync`
//!   of a partner missing from the config fails naming the configured partners; on an exchange
//!   whose bridge never ran (no `<exchange>.sync-requests` queue) it fails telling to start the
//!   bridge.
//!
//! Deadlines are generous (a shared 2-core machine): nothing here asserts a timing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::Value;
use system_tests::config::syncing_bridge_toml;
use system_tests::example_mapping::last_updated_of;
use system_tests::ocpi_partner::module_requests;
use system_tests::{
    differences, drain_received, partner_entry, pusher_config, queue_len, shared_amqp_url,
    BridgeProcess, BrokerCleanup, DatabaseEntry, MariaDb, OcpiPartner, PartnerOptions,
    PusherProcess, RecordedRequest,
};

/// Upper bound for the partners to catch up with the database (never asserted as a timing).
const DELIVERY: Duration = Duration::from_secs(90);
/// Nothing new at the partners and nothing ready in their queues for this long: drained.
const SETTLED: Duration = Duration::from_secs(4);
/// How long to keep watching, once everything expected arrived, for anything unexpected.
const QUIET: Duration = Duration::from_millis(1500);
/// Every OCPI request path of the 2.2.1 doubles starts with this.
const PREFIX: &str = "/ocpi/2.2.1/";

// ------------------------------------------------------------------------------------------------
// Broker names and the example data
// ------------------------------------------------------------------------------------------------

/// Runs blocking work (the mariadb client, child processes) without stalling the runtime's
/// other tasks, among them the partner doubles.
fn block<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

const TARIFFS_N: usize = 120;
const LOCATIONS_N: usize = 30;
const TOKENS_N: usize = 80;
/// `last_updated` of every generated row: older than anything the writer stamps.
const LOADED_AT: &str = "2026-01-05 09:00:00.000";

fn tariff_id(i: usize) -> String {
    format!("TAR-{i:03}")
}

fn location_id(i: usize) -> String {
    format!("LOC-{i:02}")
}

fn evse_uid(location: usize, e: usize) -> String {
    format!("LOC-{location:02}-E{e}")
}

fn token_uid(i: usize) -> String {
    format!("TOK-{i:03}")
}

fn elements(price: usize) -> String {
    format!(r#"[{{"price_components": [{{"type": "ENERGY", "price": {price}, "step_size": 1}}]}}]"#)
}

/// The generated records: 120 tariffs (every tenth soft-deleted), 30 locations with 2 EVSEs
/// (some REMOVED) of 2 connectors each, 80 tokens (RFID and APP_USER, some invalid). Parents
/// before children, as an application writes them.
fn generated_rows_sql() -> String {
    let mut sql = String::new();
    let tariffs: Vec<String> = (0..TARIFFS_N)
        .map(|i| {
            format!(
                "('NL', 'EXA', '{}', 'EUR', 'REGULAR', '{}', {}, '{LOADED_AT}')",
                tariff_id(i),
                elements(i),
                u8::from(i % 10 == 9)
            )
        })
        .collect();
    sql.push_str(&format!(
        "INSERT INTO tariffs (country_code, party_id, id, currency, type, elements, deleted, \
         last_updated) VALUES\n{};\n",
        tariffs.join(",\n")
    ));
    let (mut locations, mut evses, mut connectors) = (Vec::new(), Vec::new(), Vec::new());
    for l in 0..LOCATIONS_N {
        locations.push(format!(
            "('NL', 'EXA', '{}', 'Site {l}', 'Street {l}', 'Utrecht', 'NLD', 52.{l:06}, \
             5.{l:06}, 'Europe/Amsterdam', '{LOADED_AT}')",
            location_id(l)
        ));
        for e in 1..=2 {
            let status = if l % 7 == 3 && e == 2 {
                "REMOVED"
            } else {
                "AVAILABLE"
            };
            evses.push(format!(
                "('NL', 'EXA', '{}', '{}', 'NL*EXA*L{l:02}{e}', '{status}', 'RFID_READER', \
                 '{LOADED_AT}')",
                location_id(l),
                evse_uid(l, e)
            ));
            for c in 1..=2 {
                connectors.push(format!(
                    "('NL', 'EXA', '{}', '{}', '{c}', 'IEC_62196_T2', 'SOCKET', 'AC_3_PHASE', \
                     230, 32, 11000, '[\"TAR-000\"]', '{LOADED_AT}')",
                    location_id(l),
                    evse_uid(l, e)
                ));
            }
        }
    }
    sql.push_str(&format!(
        "INSERT INTO locations (country_code, party_id, id, name, address, city, country, \
         latitude, longitude, time_zone, last_updated) VALUES\n{};\n",
        locations.join(",\n")
    ));
    sql.push_str(&format!(
        "INSERT INTO evses (country_code, party_id, location_id, uid, evse_id, status, \
         capabilities, last_updated) VALUES\n{};\n",
        evses.join(",\n")
    ));
    sql.push_str(&format!(
        "INSERT INTO connectors (country_code, party_id, location_id, evse_uid, id, standard, \
         format, power_type, max_voltage, max_amperage, max_electric_power, tariff_ids, \
         last_updated) VALUES\n{};\n",
        connectors.join(",\n")
    ));
    let tokens: Vec<String> = (0..TOKENS_N)
        .map(|t| {
            format!(
                "('DE', 'MSP', '{}', '{}', 'DE-MSP-C{t:08}', 'Example MSP', {}, 'ALLOWED', \
                 '{LOADED_AT}')",
                token_uid(t),
                if t % 3 == 1 { "APP_USER" } else { "RFID" },
                u8::from(t % 9 != 4)
            )
        })
        .collect();
    sql.push_str(&format!(
        "INSERT INTO tokens (country_code, party_id, uid, type, contract_id, issuer, valid, \
         whitelist, last_updated) VALUES\n{};\n",
        tokens.join(",\n")
    ));
    sql
}

// ------------------------------------------------------------------------------------------------
// A partner against the database
// ------------------------------------------------------------------------------------------------

/// Rows a sync reads: the mapped tables but the children of the Location tree (each Location's
/// snapshot row is a PUT of the whole tree, read from the database).
fn record_count(db: &MariaDb) -> usize {
    let counts = block(|| {
        db.query_value(
            "SELECT (SELECT COUNT(*) FROM ocpi.locations) + (SELECT COUNT(*) FROM ocpi.tariffs) + \
             (SELECT COUNT(*) FROM ocpi.sessions) + (SELECT COUNT(*) FROM ocpi.cdrs) + \
             (SELECT COUNT(*) FROM ocpi.tokens)",
        )
    });
    counts.parse().expect("a count")
}

fn summary(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| match &r.query {
            Some(q) => format!("{} {}?{q}", r.method, r.path),
            None => format!("{} {}", r.method, r.path),
        })
        .collect()
}

/// What was parked in `queue`, as (table, key, reason); the queue is emptied.
async fn parked(url: &str, queue: &str) -> Vec<String> {
    drain_received(url, queue, usize::MAX, Duration::from_secs(2))
        .await
        .iter()
        .map(|m| match &m.message {
            change_message::Message::Change(c) => format!(
                "{} {}.{} {} (snapshot: {}): {}",
                c.op.as_str(),
                c.database,
                c.table,
                Value::Object(c.key.clone()),
                c.snapshot.is_some(),
                m.header("x-park-reason").unwrap_or_default()
            ),
            other => format!("{other:?}"),
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// The writer
// ------------------------------------------------------------------------------------------------

/// Updates records of every kind at about `per_second` until `stop`, on the even-numbered
/// records only (the odd-numbered and the seed records are never touched). Each statement
/// changes its row (so each is one binlog change) and stamps `last_updated`. Returns the
/// request path of every record it changed.
async fn write_updates(
    url: String,
    per_second: u32,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
    touched: Arc<Mutex<HashSet<String>>>,
) {
    let mut conn = mysql_async::Conn::from_url(url.as_str())
        .await
        .expect("the writer connects");
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .expect("UTC session");
    let mut rng = fastrand::Rng::with_seed(20_260_105);
    let started = Instant::now();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let even = |rng: &mut fastrand::Rng, below: usize| rng.usize(..below / 2) * 2;
        let (sql, path) = match rng.u8(..100) {
            0..=24 => {
                let i = even(&mut rng, TARIFFS_N);
                let set = if rng.u8(..10) == 0 {
                    // Soft delete, or revival of a soft-deleted one.
                    "deleted = 1 - deleted".to_string()
                } else {
                    format!("elements = '{}'", elements(1000 + n))
                };
                (
                    format!(
                        "UPDATE ocpi.tariffs SET {set} WHERE country_code = 'NL' AND \
                         party_id = 'EXA' AND id = '{}'",
                        tariff_id(i)
                    ),
                    format!("{PREFIX}tariffs/NL/EXA/{}", tariff_id(i)),
                )
            }
            25..=44 => {
                let t = even(&mut rng, TOKENS_N);
                let set = if rng.u8(..10) == 0 {
                    "valid = 1 - valid".to_string()
                } else {
                    format!("visual_number = 'V-{n}'")
                };
                (
                    format!(
                        "UPDATE ocpi.tokens SET {set} WHERE country_code = 'DE' AND \
                         party_id = 'MSP' AND uid = '{}'",
                        token_uid(t)
                    ),
                    format!("{PREFIX}tokens/DE/MSP/{}", token_uid(t)),
                )
            }
            45..=59 => {
                let l = even(&mut rng, LOCATIONS_N);
                (
                    format!(
                        "UPDATE ocpi.locations SET name = 'Site {l} v{n}' WHERE \
                         country_code = 'NL' AND party_id = 'EXA' AND id = '{}'",
                        location_id(l)
                    ),
                    format!("{PREFIX}locations/NL/EXA/{}", location_id(l)),
                )
            }
            60..=79 => {
                let (l, e) = (even(&mut rng, LOCATIONS_N), rng.usize(1..=2));
                // The status (REMOVED is the EVSE's soft delete) or another column, not both
                // at once: an update setting REMOVED is sent as the bare removal PATCH
                // (status, last_updated), whatever else it changed.
                let set = if rng.u8(..3) == 0 {
                    let status = ["AVAILABLE", "CHARGING", "BLOCKED", "REMOVED"][rng.usize(..4)];
                    format!("status = '{status}'")
                } else {
                    format!("physical_reference = 'P{n}'")
                };
                (
                    format!(
                        "UPDATE ocpi.evses SET {set} WHERE country_code = 'NL' AND \
                         party_id = 'EXA' AND location_id = '{}' AND uid = '{}'",
                        location_id(l),
                        evse_uid(l, e)
                    ),
                    format!(
                        "{PREFIX}locations/NL/EXA/{}/{}",
                        location_id(l),
                        evse_uid(l, e)
                    ),
                )
            }
            _ => {
                let (l, e, c) = (
                    even(&mut rng, LOCATIONS_N),
                    rng.usize(1..=2),
                    rng.usize(1..=2),
                );
                (
                    format!(
                        "UPDATE ocpi.connectors SET max_electric_power = {} WHERE \
                         country_code = 'NL' AND party_id = 'EXA' AND location_id = '{}' AND \
                         evse_uid = '{}' AND id = '{c}'",
                        2000 + n,
                        location_id(l),
                        evse_uid(l, e)
                    ),
                    // A connector's change is a PUT of its EVSE, which carries it.
                    format!(
                        "{PREFIX}locations/NL/EXA/{}/{}",
                        location_id(l),
                        evse_uid(l, e)
                    ),
                )
            }
        };
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("writer: {e}: {sql}"));
        touched.lock().expect("touched").insert(path);
        count.store(n, Ordering::Relaxed);
        let due = Duration::from_secs_f64(n as f64 / f64::from(per_second));
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
    let _ = conn.disconnect().await;
}

// ------------------------------------------------------------------------------------------------
// Test 1: adding a partner
// ------------------------------------------------------------------------------------------------

/// Waits until every partner holds the database's state and its queue has nothing ready, or,
/// failing that, until nothing moved for `SETTLED` (the assertions then say what differs).
async fn wait_drained(db: &MariaDb, url: &str, partners: &[(&OcpiPartner, String)]) {
    let deadline = Instant::now() + DELIVERY;
    let mut last_counts = Vec::new();
    let mut still_since = Instant::now();
    loop {
        let mut ready = 0;
        for (_, queue) in partners {
            ready += queue_len(url, queue).await;
        }
        let counts: Vec<usize> = partners.iter().map(|(p, _)| p.requests().len()).collect();
        if counts != last_counts || ready > 0 {
            last_counts = counts;
            still_since = Instant::now();
        }
        if ready == 0
            && partners
                .iter()
                .all(|(p, _)| block(|| differences(db, "ocpi", p)).is_empty())
        {
            return;
        }
        if still_since.elapsed() >= SETTLED || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A private MariaDB with the example schema (outside the binlog) and the generated records
/// (through it: a partner there from the start gets them as inserts).
fn example_database() -> MariaDb {
    let db = MariaDb::start();
    let schema_path = system_tests::workspace_root().join("config/ocpi-example/schema.sql");
    let schema = std::fs::read_to_string(&schema_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", schema_path.display()));
    let (ddl, seed) = schema
        .split_once("-- Seed data")
        .expect("schema.sql has a seed data section");
    block(|| {
        db.exec(&format!("SET sql_log_bin = 0;\n{ddl}"));
        db.exec(&format!(
            "SET time_zone = '+00:00';\nUSE ocpi;\n-- {seed}\n{}",
            generated_rows_sql()
        ));
    });
    db
}

/// `pusher ARGS` run to its end (at most 60 s) on `config`: its exit status and output.
fn run_pusher(
    config: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    block(|| PusherProcess::run_to_exit_with_env(config, args, env, Duration::from_secs(60)))
}

/// The tails of the bridge's and the pusher's logs, for failure messages.
fn logs(bridge: &BridgeProcess, pusher: &PusherProcess) -> String {
    let tail = |text: String| {
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    format!(
        "--- pusher log (tail) ---\n{}\n--- bridge log (tail) ---\n{}",
        tail(pusher.log()),
        tail(bridge.log())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_after_the_bridge_lost_its_checkpoint_and_a_resync_reach_the_running_pusher() {
    let a = OcpiPartner::start(PartnerOptions::v221()).await;
    let db = example_database();
    let url = shared_amqp_url();
    let env = [("TOKEN_A", a.options().token.clone())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cfg = pusher_config(&url)
        .with(|c| c.database = Some(DatabaseEntry::reader(db.port())))
        .partner(partner_entry("a", &a, "TOKEN_A"));
    let _names = BrokerCleanup::of_pusher(&url, &cfg);
    let queue = cfg.queue("a");
    let (status, out) = run_pusher(&cfg.to_toml(), &["setup"], &env);
    assert!(status.success(), "`pusher setup` failed ({status}):\n{out}");
    let mut bridge = BridgeProcess::start(&syncing_bridge_toml(
        &db,
        &url,
        (&cfg.exchange, &cfg.queue_prefix),
        "start",
    ));
    let pusher = PusherProcess::start_with_env(&cfg.to_toml(), &env);
    wait_drained(&db, &url, &[(&a, queue.clone())]).await;
    let diffs = block(|| differences(&db, "ocpi", &a));
    assert!(
        diffs.is_empty(),
        "A did not get the records: {diffs:#?}\n{}",
        logs(&bridge, &pusher)
    );

    // The bridge loses its state (a lost volume, or the recovery from a purged binlog): killed,
    // its checkpoint gone, started again from the end of the binlog. The pusher runs on and
    // remembers the numbers of the first run. A change made while no bridge runs is lost to
    // the binlog capture: the re-sync below brings it.
    block(|| bridge.kill9());
    std::fs::remove_file(bridge.dir().join("bridge.checkpoint.json"))
        .expect("the first run wrote a checkpoint");
    let gap_tariff = tariff_id(1);
    block(|| {
        db.exec(&format!(
            "UPDATE ocpi.tariffs SET elements = '{}' WHERE id = '{gap_tariff}'",
            elements(9999)
        ))
    });
    bridge.write_config(&syncing_bridge_toml(
        &db,
        &url,
        (&cfg.exchange, &cfg.queue_prefix),
        "end",
    ));
    bridge.restart();
    let resumed = bridge
        .wait_for_log_async("CURRENT END", Duration::from_secs(60))
        .await;
    assert!(
        resumed,
        "the bridge did not start again\n{}",
        logs(&bridge, &pusher)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Changes after the reset: every one reaches A (none is taken for an old one).
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let touched = Arc::new(Mutex::new(HashSet::new()));
    let writer = tokio::spawn(write_updates(
        db.root_url(),
        40,
        stop.clone(),
        written.clone(),
        touched.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the writer");
    assert!(
        written.load(Ordering::Relaxed) > 0,
        "the writer wrote nothing"
    );
    wait_drained(&db, &url, &[(&a, queue.clone())]).await;
    let diffs = block(|| differences(&db, "ocpi", &a));
    let after_reset: Vec<&String> = diffs.iter().filter(|d| !d.contains(&gap_tariff)).collect();
    assert!(
        after_reset.is_empty() && !diffs.is_empty(),
        "after the reset, A must differ only in the tariff changed while no bridge ran \
         ({gap_tariff}); differences: {diffs:#?}\n{}",
        logs(&bridge, &pusher)
    );

    // The re-sync the README prescribes brings the missed change: A equals the database.
    let (status, out) = run_pusher(&cfg.to_toml(), &["sync", "a"], &env);
    assert!(
        status.success(),
        "`pusher sync a` failed ({status}):\n{out}"
    );
    let finished = bridge
        .wait_for_log_async("sync finished", Duration::from_secs(90))
        .await;
    assert!(
        finished,
        "the bridge did not finish the sync\n{}",
        logs(&bridge, &pusher)
    );
    wait_drained(&db, &url, &[(&a, queue.clone())]).await;
    let diffs = block(|| differences(&db, "ocpi", &a));
    assert!(
        diffs.is_empty(),
        "after the re-sync: {diffs:#?}\n{}",
        logs(&bridge, &pusher)
    );
    let parked = parked(&url, &cfg.parking_queue("a")).await;
    assert!(parked.is_empty(), "parked: {parked:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adding_a_partner_sends_every_existing_record_then_the_live_changes() {
    let test_started = Instant::now();
    let a = OcpiPartner::start(PartnerOptions::v221()).await;
    let b = OcpiPartner::start(PartnerOptions::v221()).await;

    // ---- The database holds its records before the bridge starts ----------------------------
    let db = example_database();
    let records = record_count(&db);

    // ---- Partner A: queues, bridge, pusher --------------------------------------------------
    let url = shared_amqp_url();
    let env = [
        ("TOKEN_A", a.options().token.clone()),
        ("TOKEN_B", b.options().token.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cfg_a = pusher_config(&url)
        .with(|c| c.database = Some(DatabaseEntry::reader(db.port())))
        .partner(partner_entry("a", &a, "TOKEN_A"));
    let cfg_ab = cfg_a.clone().partner(partner_entry("b", &b, "TOKEN_B"));
    let _names = BrokerCleanup::of_pusher(&url, &cfg_ab);
    let (queue_a, queue_b) = (cfg_ab.queue("a"), cfg_ab.queue("b"));
    let (status, out) = run_pusher(&cfg_a.to_toml(), &["setup"], &env);
    assert!(status.success(), "`pusher setup` failed ({status}):\n{out}");
    let mut bridge = BridgeProcess::start(&syncing_bridge_toml(
        &db,
        &url,
        (&cfg_ab.exchange, &cfg_ab.queue_prefix),
        "start",
    ));
    let mut pusher = PusherProcess::start_with_env(&cfg_a.to_toml(), &env);

    wait_drained(&db, &url, &[(&a, queue_a.clone())]).await;
    let diffs = block(|| differences(&db, "ocpi", &a));
    assert!(
        diffs.is_empty(),
        "partner A did not get the records through the binlog ({} differences):\n{}\n{}",
        diffs.len(),
        diffs[..diffs.len().min(10)].join("\n"),
        logs(&bridge, &pusher)
    );
    let a_mark = module_requests(&a).len();
    eprintln!(
        "[pusher_sync] {records} records; partner A holds them ({a_mark} requests) after {:.1} s",
        test_started.elapsed().as_secs_f64()
    );

    // ---- A writer keeps changing records; partner B is added meanwhile -----------------------
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let touched = Arc::new(Mutex::new(HashSet::new()));
    let writer = tokio::spawn(write_updates(
        db.root_url(),
        40,
        stop.clone(),
        written.clone(),
        touched.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (status, out) = run_pusher(&cfg_ab.to_toml(), &["sync", "b"], &env);
    assert!(
        status.success(),
        "`pusher sync b` failed ({status}):\n{out}"
    );
    assert!(
        out.contains(&format!("partner b: queue {queue_b} declared and bound"))
            && out.contains("initial sync requested"),
        "`pusher sync b` says what it did:\n{out}"
    );
    let request_id = out
        .split_once("(request ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("`pusher sync b` names its request:\n{out}"));
    uuid::Uuid::parse_str(&request_id)
        .unwrap_or_else(|e| panic!("request id {request_id:?} is no UUID ({e}):\n{out}"));

    // The operator restarts the pusher with B in its config (B's queue fills meanwhile).
    let status = block(|| pusher.terminate());
    assert!(status.success(), "pusher exit {status:?}\n{}", pusher.log());
    pusher.write_config(&cfg_ab.to_toml());
    pusher.restart();

    let finished = bridge
        .wait_for_log_async("sync finished", Duration::from_secs(60))
        .await;
    assert!(
        finished,
        "the bridge did not finish the sync\n{}",
        logs(&bridge, &pusher)
    );
    // Live changes after the sync too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the writer");
    let written = written.load(Ordering::Relaxed);
    let touched = touched.lock().expect("touched").clone();

    // ---- Everything drained: compare -------------------------------------------------------
    wait_drained(&db, &url, &[(&a, queue_a.clone()), (&b, queue_b.clone())]).await;
    tokio::time::sleep(QUIET).await;

    // The bridge synced this request to B: every record of the five tables it asked for.
    let bridge_log = bridge.log();
    let line = |needle: &str| {
        bridge_log
            .lines()
            .find(|l| l.contains(needle) && l.contains(&request_id))
            .unwrap_or_else(|| {
                panic!("no `{needle}` line for sync {request_id} in the bridge log\n{bridge_log}")
            })
            .to_string()
    };
    assert!(line("sync started").contains(&queue_b), "sync of B's queue");
    let done = line("sync finished");
    assert!(
        done.contains(&format!("rows_done={records} ")),
        "the sync read every record ({records}): {done}"
    );

    // B: no record the writer left alone (itself and its children) was refused: those arrive
    // through their snapshot rows only. A record changed while the sync runs can be refused
    // before its snapshot row reaches B (an EVSE update before B holds its Location, a PATCH of
    // an object B does not hold yet, a Location whose EVSE update came first): a known limit
    // (README); the newer state follows and B must still end equal to the database (below).
    let b_parked = parked(&url, &cfg_ab.parking_queue("b")).await;
    let b_requests = module_requests(&b);
    let diffs = block(|| differences(&db, "ocpi", &b));
    let mut parked_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for p in &b_parked {
        let kind: Vec<&str> = p.split(' ').take(2).collect();
        let snapshot = p.contains("(snapshot: true)");
        *parked_by_kind
            .entry(format!("{} (snapshot row: {snapshot})", kind.join(" ")))
            .or_default() += 1;
    }
    let refused_untouched: Vec<&String> = b_parked
        .iter()
        .filter(|p| {
            let reason = p.split_once("): ").map(|(_, r)| r).unwrap_or("");
            let path = reason.split_whitespace().nth(1).unwrap_or("");
            let path = path.split('?').next().unwrap_or("");
            let full = format!("{PREFIX}{path}");
            let child = format!("{full}/");
            !touched.iter().any(|t| *t == full || t.starts_with(&child))
        })
        .collect();
    println!(
        "partner B: {} messages parked during the sync ({parked_by_kind:?})",
        b_parked.len()
    );
    assert!(
        refused_untouched.is_empty(),
        "{} messages parked for partner B of records nobody changed during the sync \
         ({parked_by_kind:?}), e.g.:\n{}\nB's requests: {}; \
         B differs from the database in {} places\n{}",
        refused_untouched.len(),
        refused_untouched
            .iter()
            .take(12)
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        b_requests.len(),
        diffs.len(),
        logs(&bridge, &pusher)
    );
    assert!(
        diffs.is_empty(),
        "partner B differs from the database ({} differences), e.g.:\n{}\n{}",
        diffs.len(),
        diffs[..diffs.len().min(10)].join("\n"),
        logs(&bridge, &pusher)
    );
    // No record of B ever went back: per object, last_updated never decreases.
    let mut newest: HashMap<String, i128> = HashMap::new();
    for r in &b_requests {
        let Some(at) = r.body.as_ref().and_then(last_updated_of) else {
            continue;
        };
        let previous = newest.entry(r.path.clone()).or_insert(at);
        assert!(
            at >= *previous,
            "partner B: {} {} carries last_updated {at}, older than the {previous} it got before",
            r.method,
            r.path
        );
        *previous = at;
    }
    // The untouched records reached B through the snapshot only, once each.
    let cold_puts = b_requests
        .iter()
        .filter(|r| r.method == "PUT" && !touched.contains(&r.path))
        .count();

    // A: the live changes only. Not one request for a record the writer never touched (a
    // snapshot row reaching A would be one), nothing parked, still equal to the database.
    let a_requests = module_requests(&a)[a_mark..].to_vec();
    let a_cold: Vec<RecordedRequest> = a_requests
        .iter()
        .filter(|r| !touched.contains(&r.path))
        .cloned()
        .collect();
    assert!(
        a_cold.is_empty(),
        "partner A got {} requests for records that did not change since it held them \
         (snapshot rows of B's sync?), e.g. {:#?}",
        a_cold.len(),
        &summary(&a_cold)[..a_cold.len().min(10)]
    );
    assert!(
        !a_requests.is_empty() && a_requests.len() <= written,
        "partner A got {} requests for {written} live changes",
        a_requests.len()
    );
    let a_parked = parked(&url, &cfg_ab.parking_queue("a")).await;
    assert!(
        a_parked.is_empty(),
        "{} messages parked for partner A, e.g.:\n{}",
        a_parked.len(),
        a_parked[..a_parked.len().min(12)].join("\n")
    );
    let diffs = block(|| differences(&db, "ocpi", &a));
    assert!(
        diffs.is_empty(),
        "partner A differs from the database ({} differences), e.g.:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(10)].join("\n")
    );

    assert!(block(|| pusher.terminate()).success(), "{}", pusher.log());
    assert!(block(|| bridge.terminate()).success(), "{}", bridge.log());
    eprintln!(
        "[pusher_sync] {records} records, {written} live changes to {} records; partner B: {} \
         requests ({cold_puts} PUTs of untouched records); partner A: {} requests since B was \
         added; {:.1} s",
        touched.len(),
        b_requests.len(),
        a_requests.len(),
        test_started.elapsed().as_secs_f64()
    );
}

// ------------------------------------------------------------------------------------------------
// Test 2: refusals
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_of_an_unknown_partner_or_without_the_bridge_queue_fails_with_the_fix() {
    let a = OcpiPartner::start(PartnerOptions::v221()).await;
    let b = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    // An exchange no bridge ever published to: no `<exchange>.sync-requests` queue.
    let cfg = pusher_config(&url)
        .partner(partner_entry("a", &a, "TOKEN_A"))
        .partner(partner_entry("b", &b, "TOKEN_B"));
    let _names = BrokerCleanup::of_pusher(&url, &cfg);
    let env = [
        ("TOKEN_A", a.options().token.clone()),
        ("TOKEN_B", b.options().token.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sync = |partner: &str| run_pusher(&cfg.to_toml(), &["sync", partner], &env);

    let (status, out) = sync("nosuch");
    assert!(!status.success(), "`pusher sync nosuch` succeeded:\n{out}");
    assert!(
        out.contains("no partner `nosuch` in the configuration (partners: a, b)")
            && out.contains("add its [[partner]] section first"),
        "`pusher sync nosuch` names the configured partners:\n{out}"
    );

    let (status, out) = sync("b");
    assert!(
        !status.success(),
        "`pusher sync b` succeeded without a bridge:\n{out}"
    );
    let requests_queue = change_message::sync_request::requests_queue(&cfg.exchange);
    assert!(
        out.contains(&format!(
            "the bridge's request queue `{requests_queue}` does not exist"
        )) && out.contains(&format!(
            "start the bridge (with [sync] enabled) on exchange `{}` once, then ask again",
            cfg.exchange
        )),
        "`pusher sync b` without a bridge says to start it:\n{out}"
    );
}
