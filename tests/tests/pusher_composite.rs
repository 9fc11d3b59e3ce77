//! Composite objects end to end: MariaDB (binlog) -> bridge -> RabbitMQ -> pusher (reading the
//! current Location > EVSE > Connector tree from the database) -> OCPI partner double.
//!
//! - `a_charger_added_changed_and_removed_reaches_the_partner_as_complete_evse_puts`: an EVSE
//!   inserted with its connectors in one transaction arrives as one EVSE PUT carrying them; a
//!   connector added or deleted later is a PUT of the EVSE with its new connector list; an EVSE
//!   set to REMOVED keeps its connectors; a new Location with EVSEs and connectors in one
//!   transaction arrives as one Location PUT with the whole tree. Checked from the partner's
//!   request log: no EVSE ever went out without connectors, no request was made at connector
//!   depth, nothing was parked, and the partner ends equal to the database.
//! - `a_partner_without_the_location_gets_the_whole_location_instead_of_a_refused_evse`: the
//!   partner never got the Location (written outside the binlog); a new EVSE of it is refused
//!   as of an unknown Location, and the pusher sends the whole Location instead: nothing parked.
//! - `partners_of_2_1_1_2_2_1_and_2_3_0_each_get_the_tree_as_their_version_defines_it`: one
//!   pusher, three strict partners of three versions: each holds the tree, in its version's
//!   fields, nothing refused or parked.
//! - `a_pusher_reading_a_replica_waits_until_the_replica_has_applied_each_change`: the pusher
//!   reads a replica of the bridge's source (`replica = true`); while the replica's SQL thread
//!   is stopped, a new EVSE is not sent (it is not on the replica yet), stays unacked and is not
//!   parked, and the pusher says it waits for the transaction; once the replica applies it, the
//!   EVSE arrives with its connectors.
//! - `composite_pushes_wait_for_an_unreachable_database_and_never_park`: a pusher whose
//!   `[database]` cannot be reached keeps the change unacked and parks nothing; restarted with
//!   the right port it delivers the change.
//! - `killing_the_pusher_mid_stream_leaves_every_composite_object_complete_and_equal_to_the_database`
//!   and `a_standby_pusher_taking_over_from_a_killed_one_leaves_every_composite_object_complete_and_equal_to_the_database`:
//!   while a writer adds EVSEs with connectors to existing and new Locations, adds connectors
//!   to existing EVSEs, removes EVSEs (with their connectors), changes EVSE statuses and renames
//!   Locations, the pusher delivering them is killed with SIGKILL mid-stream (the queue holds
//!   messages it had not taken, the writer is still writing) and either restarted or replaced
//!   by a standby pusher that takes the partner over. At the end the partner holds exactly
//!   what the database holds (every object and field, `consistency`), nothing was parked,
//!   nothing refused (but the removal of an EVSE the partner never got), and the request log
//!   shows that the partner never held an EVSE without connectors and never lost an EVSE or
//!   connector the database still had.
//! - `an_evse_removed_within_the_second_its_newest_connector_was_added_is_removed_at_the_partner`:
//!   the partner holds an EVSE whose newest `last_updated` is a connector's; the EVSE and its
//!   connectors are deleted within that same second (the delete's commit time is known to the
//!   second only). The removal must still reach the partner, not be refused as older than what
//!   it holds.
//! - `a_location_read_after_one_of_its_evses_was_removed_is_not_refused_as_older`: behind a
//!   backlog, a Location's PUT is read after one of its EVSEs (holding the tree's newest
//!   `last_updated`, which the partner got) was deleted, before the pusher sees that delete.
//!   The renamed Location must still reach the partner, not be refused as older.
//!
//! Deadlines are generous (a shared 2-core machine): nothing here asserts a timing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use serde_json::Value;
use system_tests::ocpi_partner::format_rfc3339;
use system_tests::ocpi_partner::module_requests;
use system_tests::pusher_cli::{env_refs, row, settled_owners, wait_for_rows, ACTIVE};
use system_tests::{
    bridge_config, differences, drain_received, logs_of, partner_entry, pusher_config, queue_len,
    shared_amqp_url, BridgeProcess, BrokerCleanup, DatabaseEntry, MariaDb, MariaDbOptions, Mode,
    OcpiPartner, PartnerOptions, PusherConfig, PusherProcess, RecordedRequest,
};

const DELIVERY: Duration = Duration::from_secs(90);

fn block<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

/// The example schema (`seed`: with its seed rows) and then `before`, outside the binlog.
fn load_example_schema(db: &MariaDb, seed: bool, before: &str) {
    let schema_path = system_tests::workspace_root().join("config/ocpi-example/schema.sql");
    let schema = std::fs::read_to_string(&schema_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", schema_path.display()));
    let schema = if seed {
        schema.as_str()
    } else {
        schema
            .split_once("-- Seed data")
            .map(|(ddl, _)| ddl)
            .expect("schema.sql has a seed data section")
    };
    block(|| {
        db.exec(&format!(
            "SET sql_log_bin = 0;\n{schema}\n\
             SET time_zone = '+00:00';\nUSE ocpi;\n{before}"
        ))
    });
}

/// Field order is drop order: processes first, then the database, then the broker names.
struct Chain {
    pusher: Option<PusherProcess>,
    _bridge: BridgeProcess,
    db: MariaDb,
    url: String,
    cfg: PusherConfig,
    /// Per partner: its id, token variable and token.
    partners: Vec<(String, String, String)>,
    _names: BrokerCleanup,
}

impl Chain {
    /// MariaDB with the example schema, `pusher setup`, the bridge and a pusher reading
    /// composite objects as the harness's read-only user (SELECT on `ocpi` only). `before` runs
    /// outside the binlog (what the partner never hears of).
    async fn start(
        partners: &[(&str, &OcpiPartner)],
        before: &str,
        database_port: Option<u16>,
    ) -> Chain {
        let mut chain = Chain::prepare(partners, true, before, database_port).await;
        chain.start_pusher();
        chain
    }

    /// [`Chain::start`] without a pusher. `seed`: the example schema's seed rows too (outside
    /// the binlog, like `before`); a test comparing the partner with the whole database goes
    /// without them.
    async fn prepare(
        partners: &[(&str, &OcpiPartner)],
        seed: bool,
        before: &str,
        database_port: Option<u16>,
    ) -> Chain {
        let db = MariaDb::start();
        load_example_schema(&db, seed, before);
        let url = shared_amqp_url();
        let mut cfg = pusher_config(&url)
            .with(|c| c.database = Some(DatabaseEntry::reader(database_port.unwrap_or(db.port()))));
        let mut tokens = Vec::new();
        for (id, partner) in partners {
            let token_env = format!("TOKEN_{}", id.to_uppercase());
            cfg = cfg.partner(partner_entry(id, partner, &token_env));
            tokens.push((id.to_string(), token_env, partner.options().token.clone()));
        }
        let names = BrokerCleanup::of_pusher(&url, &cfg);
        let env: Vec<(&str, &str)> = tokens
            .iter()
            .map(|(_, k, v)| (k.as_str(), v.as_str()))
            .collect();
        system_tests::pusher_cli::setup_queues(&cfg, &env);
        let bridge_toml = bridge_config(db.port(), &url, &cfg.exchange)
            .with(|c| {
                c.source.start = "start".into();
                c.capture.databases = vec!["ocpi".into()];
            })
            .to_toml();
        let bridge = BridgeProcess::start(&bridge_toml);
        Chain {
            pusher: None,
            _bridge: bridge,
            db,
            url,
            cfg,
            partners: tokens,
            _names: names,
        }
    }

    fn start_pusher(&mut self) {
        self.pusher = Some(self.spawn_pusher(&self.cfg.name.clone()));
    }

    /// A pusher of this chain named `name`, owned by the caller.
    fn spawn_pusher(&self, name: &str) -> PusherProcess {
        let cfg = self.cfg.clone().with(|c| c.name = name.to_string());
        PusherProcess::start_with_env(&cfg.to_toml(), &env_refs(&self.env()))
    }

    /// The partners' token variables, for the pushers and `pusher` commands.
    fn env(&self) -> Vec<(String, String)> {
        self.partners
            .iter()
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The id the configuration gives `partner`.
    fn id_of(&self, partner: &OcpiPartner) -> String {
        self.cfg
            .partners
            .iter()
            .find(|p| p.versions_url == partner.versions_url())
            .map(|p| p.id.clone())
            .unwrap_or_default()
    }

    fn sql(&self, script: &str) {
        block(|| {
            self.db
                .exec(&format!("SET time_zone = '+00:00';\nUSE ocpi;\n{script}"))
        });
    }

    fn log(&self) -> String {
        let log = self.pusher.as_ref().map(|p| p.log()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until `done` holds for the partner and the partner queue is empty. A parked
    /// message fails at once: none of these tests expects one, and it never comes back by itself.
    async fn until(&self, what: &str, partner: &OcpiPartner, done: impl Fn(&OcpiPartner) -> bool) {
        let queue = self.cfg.queue(&self.id_of(partner));
        let deadline = Instant::now() + DELIVERY;
        loop {
            if done(partner) && queue_len(&self.url, &queue).await == 0 {
                return;
            }
            self.fail_if_parked(what, partner).await;
            assert!(
                Instant::now() < deadline,
                "{what}: not reached; requests: {:#?}\npusher log:\n{}",
                summary(&partner.requests()),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Panics with the reasons when something was parked for `partner`.
    async fn fail_if_parked(&self, what: &str, partner: &OcpiPartner) {
        let parking = self.cfg.parking_queue(&self.id_of(partner));
        if queue_len(&self.url, &parking).await > 0 {
            panic!("{what}: parked instead: {:#?}", self.parked(partner).await);
        }
    }

    async fn parked(&self, partner: &OcpiPartner) -> Vec<String> {
        let parking = self.cfg.parking_queue(&self.id_of(partner));
        drain_received(&self.url, &parking, usize::MAX, Duration::from_secs(2))
            .await
            .iter()
            .map(|m| m.header("x-park-reason").unwrap_or_default())
            .collect()
    }
}

fn summary(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn location_sql(id: &str) -> String {
    format!(
        "INSERT INTO locations (country_code, party_id, id, address, city, country, latitude, \
         longitude, time_zone) VALUES ('NL', 'EXA', '{id}', 'Street 1', 'Utrecht', 'NLD', \
         52.0, 5.0, 'Europe/Amsterdam');\n"
    )
}

fn evse_sql(location: &str, uid: &str) -> String {
    format!(
        "INSERT INTO evses (country_code, party_id, location_id, uid, status) VALUES ('NL', \
         'EXA', '{location}', '{uid}', 'AVAILABLE');\n"
    )
}

fn connector_sql(location: &str, evse: &str, id: &str) -> String {
    format!(
        "INSERT INTO connectors (country_code, party_id, location_id, evse_uid, id, standard, \
         format, power_type, max_voltage, max_amperage) VALUES ('NL', 'EXA', '{location}', \
         '{evse}', '{id}', 'IEC_62196_T2', 'SOCKET', 'AC_3_PHASE', 230, 32);\n"
    )
}

/// The ids of the connectors of the partner's EVSE (in the partner's order).
fn connector_ids(partner: &OcpiPartner, location: &str, evse: &str) -> Vec<String> {
    partner
        .object("locations", &["NL", "EXA", location, evse])
        .and_then(|e| e.get("connectors").cloned())
        .and_then(|c| c.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn evse_status(partner: &OcpiPartner, location: &str, evse: &str) -> Option<String> {
    partner
        .object("locations", &["NL", "EXA", location, evse])
        .and_then(|e| e.get("status").and_then(Value::as_str).map(str::to_string))
}

/// Every module request the partner got: none at connector depth, every EVSE (alone or inside
/// a Location) with at least one connector, every Location PUT with its `evses`.
fn assert_every_object_complete(requests: &[RecordedRequest]) {
    for r in requests.iter().filter(|r| r.method != "GET") {
        let depth = r
            .path
            .trim_end_matches('/')
            .split("/locations/")
            .nth(1)
            .map(|ids| ids.split('/').count())
            .unwrap_or(0);
        assert!(
            depth != 5,
            "a request at connector depth: {} {}",
            r.method,
            r.path
        );
        let body = r.body.clone().unwrap_or(Value::Null);
        let evses: Vec<Value> = match depth {
            3 if r.method == "PUT" => body
                .get("evses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| panic!("Location PUT without evses: {} {body}", r.path)),
            4 if r.method == "PUT" => vec![body.clone()],
            _ => Vec::new(),
        };
        for evse in evses {
            let n = evse
                .get("connectors")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            assert!(
                n > 0,
                "an EVSE without connectors in {} {}: {evse}",
                r.method,
                r.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_charger_added_changed_and_removed_reaches_the_partner_as_complete_evse_puts() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let chain = Chain::start(&[("tree", &partner)], "", None).await;

    // An existing site, with one charger, as the partner would have had it for long.
    chain.sql(&format!(
        "START TRANSACTION;\n{}{}{}COMMIT;\n",
        location_sql("SITE-A"),
        evse_sql("SITE-A", "A-E1"),
        connector_sql("SITE-A", "A-E1", "1")
    ));
    chain
        .until("the existing site", &partner, |p| {
            connector_ids(p, "SITE-A", "A-E1") == ["1"]
        })
        .await;

    // A new charger with two connectors, in one transaction.
    chain.sql(&format!(
        "START TRANSACTION;\n{}{}{}COMMIT;\n",
        evse_sql("SITE-A", "A-E2"),
        connector_sql("SITE-A", "A-E2", "1"),
        connector_sql("SITE-A", "A-E2", "2")
    ));
    chain
        .until("the new charger", &partner, |p| {
            connector_ids(p, "SITE-A", "A-E2") == ["1", "2"]
        })
        .await;

    // A connector added, then one deleted: the EVSE's list follows the database.
    chain.sql(&connector_sql("SITE-A", "A-E2", "3"));
    chain
        .until("a connector added", &partner, |p| {
            connector_ids(p, "SITE-A", "A-E2") == ["1", "2", "3"]
        })
        .await;
    chain.sql("DELETE FROM connectors WHERE evse_uid = 'A-E2' AND id = '2';\n");
    chain
        .until("a connector deleted", &partner, |p| {
            connector_ids(p, "SITE-A", "A-E2") == ["1", "3"]
        })
        .await;

    // The charger removed: status REMOVED, still with its connectors.
    chain.sql("UPDATE evses SET status = 'REMOVED' WHERE uid = 'A-E2';\n");
    chain
        .until("the charger removed", &partner, |p| {
            evse_status(p, "SITE-A", "A-E2").as_deref() == Some("REMOVED")
        })
        .await;
    assert_eq!(connector_ids(&partner, "SITE-A", "A-E2"), ["1", "3"]);

    // A new site with two chargers of two connectors, in one transaction.
    let mut script = String::from("START TRANSACTION;\n");
    script.push_str(&location_sql("SITE-B"));
    for e in ["B-E1", "B-E2"] {
        script.push_str(&evse_sql("SITE-B", e));
        for c in ["1", "2"] {
            script.push_str(&connector_sql("SITE-B", e, c));
        }
    }
    script.push_str("COMMIT;\n");
    chain.sql(&script);
    chain
        .until("the new site", &partner, |p| {
            connector_ids(p, "SITE-B", "B-E1") == ["1", "2"]
                && connector_ids(p, "SITE-B", "B-E2") == ["1", "2"]
        })
        .await;

    let requests = partner.requests();
    assert_every_object_complete(&requests);
    let site_b_puts = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/locations/NL/EXA/SITE-B"))
        .count();
    assert_eq!(site_b_puts, 1, "{:#?}", summary(&requests));
    let parked = chain.parked(&partner).await;
    assert!(parked.is_empty(), "parked: {parked:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partner_without_the_location_gets_the_whole_location_instead_of_a_refused_evse() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    // The site exists in the database, but not in the binlog: the partner never got it.
    let before = format!(
        "{}{}{}",
        location_sql("SITE-C"),
        evse_sql("SITE-C", "C-E1"),
        connector_sql("SITE-C", "C-E1", "1")
    );
    let chain = Chain::start(&[("tree", &partner)], &before, None).await;
    chain.sql(&format!(
        "START TRANSACTION;\n{}{}COMMIT;\n",
        evse_sql("SITE-C", "C-E2"),
        connector_sql("SITE-C", "C-E2", "1")
    ));
    chain
        .until("the whole site", &partner, |p| {
            connector_ids(p, "SITE-C", "C-E1") == ["1"]
                && connector_ids(p, "SITE-C", "C-E2") == ["1"]
        })
        .await;
    let requests = partner.requests();
    assert_every_object_complete(&requests);
    let parked = chain.parked(&partner).await;
    assert!(parked.is_empty(), "parked: {parked:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pusher_reading_a_replica_waits_until_the_replica_has_applied_each_change() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let replica = MariaDb::start_with(MariaDbOptions {
        extra_cnf: vec!["server-id=2".into()],
        ..MariaDbOptions::default()
    });
    load_example_schema(&replica, true, "");
    let mut chain = Chain::prepare(&[("replica", &partner)], true, "", Some(replica.port())).await;
    chain.cfg.database = Some(DatabaseEntry {
        replica: true,
        timeout_ms: Some(1500),
        ..DatabaseEntry::reader(replica.port())
    });
    block(|| replica.replicate_from(&chain.db));
    chain.start_pusher();

    chain.sql(&format!(
        "START TRANSACTION;\n{}{}{}COMMIT;\n",
        location_sql("SITE-R"),
        evse_sql("SITE-R", "R-E1"),
        connector_sql("SITE-R", "R-E1", "1")
    ));
    chain
        .until("a site read from the replica", &partner, |p| {
            connector_ids(p, "SITE-R", "R-E1") == ["1"]
        })
        .await;

    // The replica stops applying: a new charger is in the primary's binlog (and the bridge
    // publishes it) but not on the replica. Read there now, it would not exist and nothing
    // would be sent for it.
    block(|| replica.exec("STOP SLAVE SQL_THREAD"));
    chain.sql(&format!(
        "START TRANSACTION;\n{}{}{}COMMIT;\n",
        evse_sql("SITE-R", "R-E2"),
        connector_sql("SITE-R", "R-E2", "1"),
        connector_sql("SITE-R", "R-E2", "2")
    ));
    let deadline = Instant::now() + DELIVERY;
    while !chain.log().contains("has not applied transaction") {
        assert!(
            Instant::now() < deadline,
            "the pusher never said it waits for the replica; log:\n{}",
            chain.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(connector_ids(&partner, "SITE-R", "R-E2").is_empty());
    chain
        .fail_if_parked("while the replica lags", &partner)
        .await;

    // Acknowledged unsent, it would never arrive: nothing else changes the charger.
    block(|| replica.exec("START SLAVE SQL_THREAD"));
    chain
        .until("the charger once the replica applied it", &partner, |p| {
            connector_ids(p, "SITE-R", "R-E2") == ["1", "2"]
        })
        .await;
    assert_every_object_complete(&partner.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn composite_pushes_wait_for_an_unreachable_database_and_never_park() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut chain = Chain::start(&[("tree", &partner)], "", Some(closed_port)).await;
    chain.sql(&format!(
        "START TRANSACTION;\n{}{}{}COMMIT;\n",
        location_sql("SITE-D"),
        evse_sql("SITE-D", "D-E1"),
        connector_sql("SITE-D", "D-E1", "1")
    ));
    let waiting = {
        let pusher = chain.pusher.as_mut().unwrap();
        pusher
            .wait_for_log_async("the source database cannot be read", DELIVERY)
            .await
    };
    assert!(waiting, "no word of the database:\n{}", chain.log());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(partner
        .object("locations", &["NL", "EXA", "SITE-D"])
        .is_none());
    let parked = chain.parked(&partner).await;
    assert!(
        parked.is_empty(),
        "parked while the database was away: {parked:#?}"
    );

    if let Some(mut pusher) = chain.pusher.take() {
        pusher.terminate();
    }
    let port = chain.db.port();
    if let Some(db) = chain.cfg.database.as_mut() {
        db.port = port;
    }
    chain.start_pusher();
    chain
        .until("the site once the database answers", &partner, |p| {
            connector_ids(p, "SITE-D", "D-E1") == ["1"]
        })
        .await;
    assert!(chain.parked(&partner).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partners_of_2_1_1_2_2_1_and_2_3_0_each_get_the_tree_as_their_version_defines_it() {
    let p211 = OcpiPartner::start(PartnerOptions::v211()).await;
    let p221 = OcpiPartner::start(PartnerOptions::v221()).await;
    let p230 = OcpiPartner::start(PartnerOptions::v230()).await;
    let chain = Chain::start(
        &[("p211", &p211), ("p221", &p221), ("p230", &p230)],
        "",
        None,
    )
    .await;
    // A site without parking type and postal code (2.1.1 requires both: the mapping sends
    // UNKNOWN and ""), two chargers of two connectors, in one transaction; then a change.
    let mut script = String::from("START TRANSACTION;\n");
    script.push_str(&location_sql("SITE-V"));
    for e in ["V-E1", "V-E2"] {
        script.push_str(&evse_sql("SITE-V", e));
        for c in ["1", "2"] {
            script.push_str(&connector_sql("SITE-V", e, c));
        }
    }
    script.push_str("COMMIT;\nUPDATE evses SET status = 'CHARGING' WHERE uid = 'V-E2';\n");
    chain.sql(&script);
    for partner in [&p211, &p221, &p230] {
        let version = partner.options().version.as_str();
        chain
            .until(
                &format!("the site at the {version} partner"),
                partner,
                |p| {
                    connector_ids(p, "SITE-V", "V-E1") == ["1", "2"]
                        && evse_status(p, "SITE-V", "V-E2").as_deref() == Some("CHARGING")
                },
            )
            .await;
        let requests = partner.requests();
        assert_every_object_complete(&requests);
        for r in &requests {
            assert_eq!(
                r.refusal, None,
                "{version}: refused {} {}",
                r.method, r.path
            );
        }
        let parked = chain.parked(partner).await;
        assert!(parked.is_empty(), "{version}: parked {parked:#?}");
        let location = partner
            .object("locations", &["NL", "EXA", "SITE-V"])
            .unwrap_or_default();
        let connector = partner
            .object("locations", &["NL", "EXA", "SITE-V", "V-E1", "1"])
            .unwrap_or_default();
        if version == "2.1.1" {
            assert_eq!(location["type"], "UNKNOWN", "{location}");
            assert_eq!(location["postal_code"], "", "{location}");
            assert!(location.get("country_code").is_none(), "{location}");
            assert_eq!(connector["voltage"], 230, "{connector}");
            assert!(connector.get("max_voltage").is_none(), "{connector}");
        } else {
            assert_eq!(location["country_code"], "NL", "{version}: {location}");
            assert_eq!(location["publish"], true, "{version}: {location}");
            assert_eq!(connector["max_voltage"], 230, "{version}: {connector}");
        }
    }
}

// ---- Killed mid-stream: a restart, and a hand-over to a standby pusher ------------------------

/// Locations in the database before the writer starts, each with 2 EVSEs of 2 connectors.
const SITES: usize = 6;
/// Transactions the writer commits, about `WRITES_PER_S` a second.
const WRITES: usize = 240;
const WRITES_PER_S: f64 = 40.0;
/// The partner answers this late while the writer runs, and the pusher keeps few calls in
/// flight: the queue holds a backlog when the pusher is killed.
const SLOW_PARTNER: Duration = Duration::from_millis(150);
const CONCURRENCY: usize = 4;
const PREFETCH: u32 = 16;
/// Module requests the partner has answered since the writer started when the pusher is
/// killed: it was delivering the writer's changes.
const REQUESTS_BEFORE_KILL: usize = 30;
const STATUSES: [&str; 6] = [
    "AVAILABLE",
    "CHARGING",
    "BLOCKED",
    "OUTOFORDER",
    "INOPERATIVE",
    "RESERVED",
];

/// The live Location trees as the writer knows them.
#[derive(Debug, Default)]
struct Trees {
    locations: Vec<String>,
    /// (Location id, uid, connectors so far: their ids are 1..=n).
    evses: Vec<(String, String, usize)>,
    /// For new ids.
    counter: usize,
}

/// What the writer did, for the assertions.
#[derive(Debug, Default, Clone)]
struct Written {
    /// Transactions committed.
    done: usize,
    /// Per EVSE removed, (Location id, uid) upper-cased: when its transaction began. A partner
    /// may lose the EVSE or its connectors only through a request that arrived later.
    removed: HashMap<(String, String), SystemTime>,
    /// Transactions per kind.
    kinds: BTreeMap<&'static str, usize>,
}

fn site_id(n: usize) -> String {
    format!("K-L{n}")
}

/// An EVSE with `connectors` connectors (ids 1..), its statements.
fn evse_with_connectors(location: &str, uid: &str, connectors: usize) -> Vec<String> {
    let mut sql = vec![evse_sql(location, uid)];
    for c in 1..=connectors {
        sql.push(connector_sql(location, uid, &c.to_string()));
    }
    sql
}

/// The Locations the partner gets before the writer starts.
fn initial_trees() -> (Trees, String) {
    let mut trees = Trees::default();
    let mut sql = String::from("START TRANSACTION;\n");
    for n in 0..SITES {
        let location = site_id(n);
        sql.push_str(&location_sql(&location));
        for e in 1..=2 {
            let uid = format!("{location}-E{e}");
            sql.push_str(&evse_with_connectors(&location, &uid, 2).concat());
            trees.evses.push((location.clone(), uid, 2));
        }
        trees.locations.push(location);
    }
    sql.push_str("COMMIT;\n");
    (trees, sql)
}

/// The next transaction of the writer: its kind, its statements, and the EVSE it removes.
fn next_write(
    rng: &mut fastrand::Rng,
    trees: &mut Trees,
) -> (&'static str, Vec<String>, Option<(String, String)>) {
    trees.counter += 1;
    let n = trees.counter;
    loop {
        match rng.u8(..100) {
            0..=29 => {
                let (location, uid, _) = &trees.evses[rng.usize(..trees.evses.len())];
                let status = STATUSES[rng.usize(..STATUSES.len())];
                let sql = format!(
                    "UPDATE evses SET status = '{status}' WHERE country_code = 'NL' AND \
                     party_id = 'EXA' AND location_id = '{location}' AND uid = '{uid}'"
                );
                return ("EVSE status changed", vec![sql], None);
            }
            30..=54 => {
                let location = trees.locations[rng.usize(..trees.locations.len())].clone();
                let uid = format!("{location}-E{n}");
                let connectors = rng.usize(1..=2);
                let sql = evse_with_connectors(&location, &uid, connectors);
                trees.evses.push((location, uid, connectors));
                return ("EVSE added to a Location", sql, None);
            }
            55..=74 => {
                let i = rng.usize(..trees.evses.len());
                let (location, uid, connectors) = &mut trees.evses[i];
                *connectors += 1;
                let sql = connector_sql(location, uid, &connectors.to_string());
                return ("connector added to an EVSE", vec![sql], None);
            }
            75..=84 => {
                // Never a Location's last EVSE: each keeps one to carry.
                let removable: Vec<usize> = (0..trees.evses.len())
                    .filter(|&i| {
                        let location = &trees.evses[i].0;
                        trees.evses.iter().filter(|e| &e.0 == location).count() > 1
                    })
                    .collect();
                if removable.is_empty() {
                    continue;
                }
                let (location, uid, _) =
                    trees.evses.remove(removable[rng.usize(..removable.len())]);
                let which = format!(
                    "country_code = 'NL' AND party_id = 'EXA' AND location_id = '{location}'"
                );
                let sql = vec![
                    format!("DELETE FROM connectors WHERE {which} AND evse_uid = '{uid}'"),
                    format!("DELETE FROM evses WHERE {which} AND uid = '{uid}'"),
                ];
                let removed = (location.to_uppercase(), uid.to_uppercase());
                return ("EVSE removed", sql, Some(removed));
            }
            85..=92 => {
                let location = format!("K-N{n}");
                let mut sql = vec![location_sql(&location)];
                for e in 1..=rng.usize(1..=2) {
                    let uid = format!("{location}-E{e}");
                    let connectors = rng.usize(1..=2);
                    sql.extend(evse_with_connectors(&location, &uid, connectors));
                    trees.evses.push((location.clone(), uid, connectors));
                }
                trees.locations.push(location);
                return ("Location added with EVSEs", sql, None);
            }
            _ => {
                // A PUT of the whole Location, carrying every EVSE it has now.
                let location = &trees.locations[rng.usize(..trees.locations.len())];
                let sql = format!(
                    "UPDATE locations SET name = 'Site v{n}' WHERE country_code = 'NL' AND \
                     party_id = 'EXA' AND id = '{location}'"
                );
                return ("Location renamed", vec![sql], None);
            }
        }
    }
}

/// Commits `WRITES` transactions at about `WRITES_PER_S`, each as an application would: an EVSE
/// with its connectors in one transaction, an EVSE's connectors deleted with it.
async fn write_trees(url: String, mut trees: Trees, written: Arc<Mutex<Written>>) {
    let mut conn = mysql_async::Conn::from_url(url.as_str())
        .await
        .expect("the writer connects");
    for sql in ["SET time_zone = '+00:00'", "USE ocpi"] {
        conn.query_drop(sql).await.expect("the writer's session");
    }
    let mut rng = fastrand::Rng::with_seed(20_260_301);
    let started = Instant::now();
    for n in 1..=WRITES {
        let (kind, statements, removed) = next_write(&mut rng, &mut trees);
        let began = SystemTime::now();
        let transaction = statements.len() > 1;
        if transaction {
            conn.query_drop("START TRANSACTION")
                .await
                .expect("writer: START TRANSACTION");
        }
        for sql in &statements {
            conn.query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("writer: {e}: {sql}"));
        }
        if transaction {
            conn.query_drop("COMMIT").await.expect("writer: COMMIT");
        }
        {
            let mut w = written.lock().expect("written");
            if let Some(evse) = removed {
                w.removed.insert(evse, began);
            }
            w.done = n;
            *w.kinds.entry(kind).or_default() += 1;
        }
        let due = Duration::from_secs_f64(n as f64 / WRITES_PER_S);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
    let _ = conn.disconnect().await;
}

/// The partner's answers that refused something, as "METHOD path: why".
fn refusals(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter_map(|r| {
            let why = r.refusal.as_ref()?;
            Some(format!("{} {}: {why}", r.method, r.path))
        })
        .collect()
}

/// Every EVSE or connector the partner lost (a PUT that no longer carried it) belonged to an EVSE
/// the writer removed, and the request arrived after the removal began: the partner never lost
/// a child the database still had.
fn assert_nothing_lost_that_the_database_had(
    partner: &OcpiPartner,
    requests: &[RecordedRequest],
    removed: &HashMap<(String, String), SystemTime>,
) {
    for dropped in partner.dropped_children() {
        let location = dropped
            .location
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_uppercase();
        let uid = dropped.evse_uid.to_uppercase();
        let what = match &dropped.connector_id {
            Some(c) => format!("connector {c} of EVSE {uid}"),
            None => format!("EVSE {uid}"),
        };
        let request = requests
            .iter()
            .find(|r| r.seq == dropped.request_seq)
            .unwrap_or_else(|| panic!("no request {} for {dropped:?}", dropped.request_seq));
        let removed_at = removed.get(&(location.clone(), uid.clone()));
        assert!(
            removed_at.is_some_and(|at| *at <= request.at),
            "the partner lost {what} of Location {location} through {} {} (arrived {}) while \
             the database still had it (removed: {})",
            request.method,
            request.path,
            format_rfc3339(request.at),
            removed_at.map_or("never".to_string(), |at| format!(
                "from {}",
                format_rfc3339(*at)
            ))
        );
    }
}

/// The writer's run around a kill: the partner gets the initial trees, the writer starts, and
/// once the partner is busy with its changes `kill` kills the pusher that delivers them.
struct Stream {
    /// When the test started, for the progress lines.
    t0: Instant,
    written: Arc<Mutex<Written>>,
    writer: tokio::task::JoinHandle<()>,
    /// Module requests before the writer started, and at the kill.
    requests_before: usize,
    requests_at_kill: usize,
}

impl Stream {
    /// Writes the initial trees through the binlog, waits until the partner holds exactly what
    /// the database holds, then starts the writer against a slow partner.
    async fn start(
        t0: Instant,
        chain: &Chain,
        partner: &OcpiPartner,
        pushers: &[&PusherProcess],
    ) -> Stream {
        let (trees, sql) = initial_trees();
        chain.sql(&sql);
        wait_equal(chain, partner, "the initial Locations", pushers).await;
        eprintln!(
            "[{:.1} s] the partner holds the initial Locations; the writer starts",
            t0.elapsed().as_secs_f64()
        );
        let requests_before = module_requests(partner).len();
        partner.set_mode(Mode::Slow(SLOW_PARTNER));
        let written = Arc::new(Mutex::new(Written::default()));
        let writer = tokio::spawn(write_trees(chain.db.root_url(), trees, written.clone()));
        Stream {
            t0,
            written,
            writer,
            requests_before,
            requests_at_kill: 0,
        }
    }

    /// Kills `victim` (SIGKILL) once the partner has answered `REQUESTS_BEFORE_KILL` requests of
    /// the writer's changes, asserting that the stream was not complete: the writer still
    /// writes and the partner's queue holds messages the pusher had not taken.
    async fn kill_mid_stream(
        &mut self,
        chain: &Chain,
        partner: &OcpiPartner,
        victim: &mut PusherProcess,
        others: &[&PusherProcess],
    ) {
        let queue = chain.cfg.queue(&chain.id_of(partner));
        let deadline = Instant::now() + DELIVERY;
        loop {
            let answered = module_requests(partner)[self.requests_before..]
                .iter()
                .filter(|r| r.http_status.is_some())
                .count();
            if answered >= REQUESTS_BEFORE_KILL {
                break;
            }
            assert!(
                !self.writer.is_finished(),
                "the writer ended before the pusher delivered {REQUESTS_BEFORE_KILL} of its \
                 changes: killing now would prove nothing ({answered} answered)"
            );
            assert!(
                Instant::now() < deadline,
                "the pusher did not deliver the writer's changes: {answered} requests answered\n{}",
                logs_of(&[&*victim])
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let waiting = queue_len(&chain.url, &queue).await;
        let writes_at_kill = self.written.lock().expect("written").done;
        victim.kill9();
        self.requests_at_kill = module_requests(partner).len();
        eprintln!(
            "[{:.1} s] killed {} after {} requests of the writer's changes; {waiting} messages \
             waiting in the queue, the writer at {writes_at_kill} of {WRITES}",
            self.t0.elapsed().as_secs_f64(),
            victim.log_path().display(),
            self.requests_at_kill - self.requests_before
        );
        assert!(
            // The writer goes on after the kill: what the killed pusher held unacked (ready
            // in the queue or not) and everything written after it must still arrive.
            !self.writer.is_finished() && writes_at_kill < WRITES,
            "the stream was already complete when the pusher was killed ({writes_at_kill} of \
             {WRITES} written, {waiting} messages waiting): this test proves nothing; make the \
             partner slower\n{}",
            logs_of(&[&[&*victim], others].concat())
        );
    }

    /// Lets the writer finish, the partner answer at once again and the queue drain, then
    /// checks the invariants over everything the partner received.
    async fn finish_and_check(
        self,
        chain: &Chain,
        partner: &OcpiPartner,
        survivor: &PusherProcess,
        others: &[&PusherProcess],
    ) {
        self.writer.await.expect("the writer failed");
        partner.clear_mode();
        eprintln!(
            "[{:.1} s] the writer is done",
            self.t0.elapsed().as_secs_f64()
        );
        let mut pushers = vec![survivor];
        pushers.extend_from_slice(others);
        wait_equal(chain, partner, "the database after the writer", &pushers).await;
        let id = chain.id_of(partner);
        let rows = wait_for_rows(
            &chain.cfg,
            &chain.env(),
            DELIVERY,
            "the partner drained: nothing ready, unacked or parked",
            &pushers,
            |rows| {
                let r = row(rows, &id);
                r["ready"] == 0 && r["unacked"] == 0 && r["parked"] == 0
            },
        )
        .await;
        let written = self.written.lock().expect("written").clone();
        let requests = partner.requests();
        let module = module_requests(partner);

        let diffs = block(|| differences(&chain.db, "ocpi", partner));
        assert!(
            diffs.is_empty(),
            "the partner differs from the database in {} places:\n{}\n{}",
            diffs.len(),
            diffs[..diffs.len().min(12)].join("\n"),
            logs_of(&pushers)
        );
        let parked = chain.parked(partner).await;
        assert!(
            parked.is_empty(),
            "{} messages parked: {parked:#?}\n{}",
            parked.len(),
            logs_of(&pushers)
        );
        assert!(
            module.len() > self.requests_at_kill,
            "no request after the kill, yet the stream was incomplete"
        );
        // The one refusal the pusher takes as done: the removal of an EVSE the partner never
        // got (added and removed before its turn came), answered as unknown.
        let removal_of_unknown = |r: &RecordedRequest| {
            let ids: Vec<&str> = r.path.rsplit('/').take(2).collect();
            r.method == "PATCH"
                && r.ocpi_status == Some(2003)
                && ids.len() == 2
                && written
                    .removed
                    .contains_key(&(ids[1].to_uppercase(), ids[0].to_uppercase()))
        };
        let others: Vec<RecordedRequest> = module
            .iter()
            .filter(|r| !removal_of_unknown(r))
            .cloned()
            .collect();
        let refused = refusals(&others);
        assert!(
            refused.is_empty(),
            "the partner refused {} requests:\n{}",
            refused.len(),
            refused[..refused.len().min(12)].join("\n")
        );
        assert_every_object_complete(&requests);
        assert_nothing_lost_that_the_database_had(partner, &requests, &written.removed);
        eprintln!(
            "[{:.1} s] checked: {} transactions ({:?}); {} requests to the partner, {} after \
             the kill; {} children dropped, each after its removal; {:?}",
            self.t0.elapsed().as_secs_f64(),
            written.done,
            written.kinds,
            module.len() - self.requests_before,
            module.len() - self.requests_at_kill,
            partner.dropped_children().len(),
            row(&rows, &id)
        );
    }
}

/// Waits until the partner holds exactly what the database holds and its queue has nothing
/// ready; panics with the differences after `DELIVERY`.
async fn wait_equal(chain: &Chain, partner: &OcpiPartner, what: &str, pushers: &[&PusherProcess]) {
    let queue = chain.cfg.queue(&chain.id_of(partner));
    let deadline = Instant::now() + DELIVERY;
    loop {
        let ready = queue_len(&chain.url, &queue).await;
        let diffs = if ready == 0 {
            block(|| differences(&chain.db, "ocpi", partner))
        } else {
            Vec::new()
        };
        if ready == 0 && diffs.is_empty() {
            return;
        }
        chain.fail_if_parked(what, partner).await;
        assert!(
            Instant::now() < deadline,
            "{what}: the partner did not come to hold it within {DELIVERY:?}: {ready} messages \
             ready, {} differences:\n{}\n{}",
            diffs.len(),
            diffs[..diffs.len().min(12)].join("\n"),
            logs_of(pushers)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A chain without the seed rows whose partner entry keeps few calls and messages in flight.
async fn kill_chain(partner: &OcpiPartner) -> Chain {
    let mut chain = Chain::prepare(&[("tree", partner)], false, "", None).await;
    for p in &mut chain.cfg.partners {
        p.concurrency = CONCURRENCY;
        p.prefetch = PREFETCH;
    }
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_pusher_mid_stream_leaves_every_composite_object_complete_and_equal_to_the_database(
) {
    let t0 = Instant::now();
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let chain = kill_chain(&partner).await;
    let mut pusher = chain.spawn_pusher("pusher-k");
    eprintln!("[{:.1} s] chain started", t0.elapsed().as_secs_f64());
    let mut stream = Stream::start(t0, &chain, &partner, &[&pusher]).await;
    stream
        .kill_mid_stream(&chain, &partner, &mut pusher, &[])
        .await;
    // The same pusher again: its unacked messages are back in the queue, redelivered.
    pusher.restart();
    stream
        .finish_and_check(&chain, &partner, &pusher, &[])
        .await;
    let status = block(|| pusher.terminate());
    assert!(status.success(), "exit {status:?}\n{}", pusher.log_tail(40));
    eprintln!("[{:.1} s] done", t0.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_pusher_taking_over_from_a_killed_one_leaves_every_composite_object_complete_and_equal_to_the_database(
) {
    let t0 = Instant::now();
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let chain = kill_chain(&partner).await;
    let mut a = chain.spawn_pusher("pusher-a");
    let mut b = chain.spawn_pusher("pusher-b");
    let id = chain.id_of(&partner);
    let rows = wait_for_rows(
        &chain.cfg,
        &chain.env(),
        DELIVERY,
        "one pusher consuming the partner",
        &[&a, &b],
        |rows| settled_owners(rows).is_some(),
    )
    .await;
    let owner = row(&rows, &id)["active_pusher"]
        .as_str()
        .expect("settled")
        .to_string();
    let (active, standby) = match owner.as_str() {
        "pusher-a" => (&mut a, &mut b),
        "pusher-b" => (&mut b, &mut a),
        other => panic!("unknown active pusher {other:?}"),
    };
    assert!(
        active.log().contains(ACTIVE),
        "`pusher partners` says {owner} is active but its log does not say so:\n{}",
        active.log_tail(40)
    );
    let standby_activations = standby.log().matches(ACTIVE).count();
    eprintln!(
        "[{:.1} s] {owner} consumes the partner",
        t0.elapsed().as_secs_f64()
    );

    let mut stream = Stream::start(t0, &chain, &partner, &[&*active, &*standby]).await;
    stream
        .kill_mid_stream(&chain, &partner, active, &[&*standby])
        .await;
    let deadline = Instant::now() + DELIVERY;
    while standby.log().matches(ACTIVE).count() <= standby_activations {
        assert!(
            Instant::now() < deadline,
            "the standby pusher did not take the partner over after the active one was killed\n{}",
            logs_of(&[&*standby, &*active])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "[{:.1} s] the standby consumes the partner",
        t0.elapsed().as_secs_f64()
    );
    stream
        .finish_and_check(&chain, &partner, standby, &[&*active])
        .await;
    let status = block(|| standby.terminate());
    assert!(
        status.success(),
        "exit {status:?}\n{}",
        standby.log_tail(40)
    );
    eprintln!("[{:.1} s] done", t0.elapsed().as_secs_f64());
}

// ---- last_updated after a delete ------------------------------------------------------------
//
// A partner that refuses an older last_updated (ocpi/ocpi issue 281) takes a child's
// last_updated into its parent's. Once a child is deleted, the rows left may all be older than
// what the partner holds, and the delete's commit time is known to the second only.

/// Sleeps until 20 ms into the next wall-clock second.
async fn sleep_into_next_second() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch");
    let rest = Duration::from_millis(1020) - Duration::from_millis(u64::from(now.subsec_millis()));
    tokio::time::sleep(rest).await;
}

fn unix_second(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs()
}

fn removal_sql(location: &str, uid: &str) -> String {
    format!(
        "START TRANSACTION;\nDELETE FROM connectors WHERE location_id = '{location}' AND \
         evse_uid = '{uid}';\nDELETE FROM evses WHERE location_id = '{location}' AND \
         uid = '{uid}';\nCOMMIT;\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_evse_removed_within_the_second_its_newest_connector_was_added_is_removed_at_the_partner(
) {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let mut chain = Chain::prepare(&[("tree", &partner)], false, "", None).await;
    chain.start_pusher();
    chain.sql(&format!(
        "START TRANSACTION;\n{}{}COMMIT;\n",
        location_sql("SITE-R"),
        evse_with_connectors("SITE-R", "R-E0", 1).concat()
    ));
    chain
        .until("the site", &partner, |p| {
            connector_ids(p, "SITE-R", "R-E0") == ["1"]
        })
        .await;
    // The partner holds the EVSE with the newest last_updated of its rows: the second
    // connector's. The removal must carry at least that, but the delete's commit time is known
    // to the second only: the case needs the removal in the same second as the connector.
    let mut set_up = None;
    for attempt in 1..=5 {
        let uid = format!("R-E{attempt}");
        chain.sql(&format!(
            "START TRANSACTION;\n{}COMMIT;\n",
            evse_with_connectors("SITE-R", &uid, 1).concat()
        ));
        chain
            .until("the charger", &partner, |p| {
                connector_ids(p, "SITE-R", &uid) == ["1"]
            })
            .await;
        sleep_into_next_second().await;
        let second = unix_second(SystemTime::now());
        chain.sql(&connector_sql("SITE-R", &uid, "2"));
        chain
            .until("the second connector", &partner, |p| {
                connector_ids(p, "SITE-R", &uid) == ["1", "2"]
            })
            .await;
        chain.sql(&removal_sql("SITE-R", &uid));
        if unix_second(SystemTime::now()) == second {
            set_up = Some(uid);
            break;
        }
        chain
            .until("a removal in a later second", &partner, |p| {
                evse_status(p, "SITE-R", &uid).as_deref() == Some("REMOVED")
            })
            .await;
    }
    let uid = set_up.expect(
        "5 times the partner got the second connector only after its second had passed: the \
         case was never set up",
    );
    chain
        .until("the charger removed", &partner, |p| {
            evse_status(p, "SITE-R", &uid).as_deref() == Some("REMOVED")
        })
        .await;
    let requests = partner.requests();
    assert_every_object_complete(&requests);
    let refused = refusals(&requests);
    assert!(refused.is_empty(), "refused: {refused:#?}");
    let parked = chain.parked(&partner).await;
    assert!(parked.is_empty(), "parked: {parked:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_location_read_after_one_of_its_evses_was_removed_is_not_refused_as_older() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let mut chain = Chain::prepare(&[("tree", &partner)], false, "", None).await;
    // One message at a time: each call starts after the previous one was answered, so a
    // backlog's reads run ahead of its messages, as they do behind any slow partner.
    for p in &mut chain.cfg.partners {
        p.concurrency = 1;
        p.prefetch = 1;
    }
    chain.start_pusher();
    chain.sql(&format!(
        "START TRANSACTION;\n{}{}{}COMMIT;\n",
        location_sql("SITE-Q"),
        evse_with_connectors("SITE-Q", "Q-E1", 1).concat(),
        evse_with_connectors("SITE-Q", "Q-E2", 1).concat()
    ));
    chain
        .until("the site", &partner, |p| {
            connector_ids(p, "SITE-Q", "Q-E2") == ["1"]
        })
        .await;

    // While the pusher is away: a connector added to Q-E2, the site renamed, then Q-E2's status
    // changed (its last_updated now the tree's newest).
    if let Some(mut pusher) = chain.pusher.take() {
        assert!(block(|| pusher.terminate()).success());
    }
    chain.sql(&connector_sql("SITE-Q", "Q-E2", "2"));
    chain.sql("UPDATE locations SET name = 'Site Q renamed' WHERE id = 'SITE-Q';\n");
    chain.sql("UPDATE evses SET status = 'CHARGING' WHERE uid = 'Q-E2';\n");
    // The first change's call reads Q-E2 as it is now, and the partner stores it at once but
    // answers late; meanwhile Q-E2 is removed, so the rename's call reads the site without it.
    partner.set_mode(Mode::Slow(Duration::from_secs(2)));
    let mark = partner.requests().len();
    chain.start_pusher();
    let deadline = Instant::now() + DELIVERY;
    while !partner.requests()[mark..]
        .iter()
        .any(|r| r.method == "PUT" && r.path.ends_with("/SITE-Q/Q-E2"))
    {
        assert!(
            Instant::now() < deadline,
            "no PUT of Q-E2 after the restart: {:#?}\n{}",
            summary(&partner.requests()[mark..]),
            chain.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        evse_status(&partner, "SITE-Q", "Q-E2").as_deref(),
        Some("CHARGING")
    );
    chain.sql(&removal_sql("SITE-Q", "Q-E2"));
    partner.clear_mode();

    chain
        .until("the site renamed, Q-E2 removed", &partner, |p| {
            let name = p
                .object("locations", &["NL", "EXA", "SITE-Q"])
                .and_then(|l| l.get("name").cloned());
            name == Some(Value::from("Site Q renamed"))
                && evse_status(p, "SITE-Q", "Q-E2").is_none_or(|s| s == "REMOVED")
        })
        .await;
    let diffs = block(|| differences(&chain.db, "ocpi", &partner));
    assert!(diffs.is_empty(), "differences: {diffs:#?}");
    let requests = partner.requests();
    assert_every_object_complete(&requests);
    // Q-E2's removal may come after the Location's PUT that no longer carried it: the partner
    // answers it as unknown, and the pusher takes that as done.
    let others: Vec<RecordedRequest> = requests
        .iter()
        .filter(|r| {
            !(r.method == "PATCH" && r.ocpi_status == Some(2003) && r.path.ends_with("/Q-E2"))
        })
        .cloned()
        .collect();
    let refused = refusals(&others);
    assert!(refused.is_empty(), "refused: {refused:#?}");
    let parked = chain.parked(&partner).await;
    assert!(parked.is_empty(), "parked: {parked:#?}");
}
