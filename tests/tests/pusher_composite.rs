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
//! - `composite_pushes_wait_for_an_unreachable_database_and_never_park`: a pusher whose
//!   `[database]` cannot be reached keeps the change unacked and parks nothing; restarted with
//!   the right port it delivers the change.
//!
//! Deadlines are generous (a shared 2-core machine): nothing here asserts a timing.

use std::time::{Duration, Instant};

use serde_json::Value;
use system_tests::{
    bridge_config, drain_received, partner_entry, pusher_config, queue_len, shared_amqp_url,
    BridgeProcess, BrokerCleanup, DatabaseEntry, MariaDb, OcpiPartner, PartnerOptions,
    PusherConfig, PusherProcess, RecordedRequest,
};

const DELIVERY: Duration = Duration::from_secs(90);

fn block<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
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
        let db = MariaDb::start();
        let schema_path = system_tests::workspace_root().join("config/ocpi-example/schema.sql");
        let schema = std::fs::read_to_string(&schema_path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", schema_path.display()));
        block(|| {
            db.exec(&format!(
                "SET sql_log_bin = 0;\n{schema}\n\
                 SET time_zone = '+00:00';\nUSE ocpi;\n{before}"
            ))
        });
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
        let (status, out) = block(|| {
            PusherProcess::run_to_exit_with_env(
                &cfg.to_toml(),
                &["setup"],
                &env,
                Duration::from_secs(60),
            )
        });
        assert!(status.success(), "`pusher setup` failed ({status}):\n{out}");
        let bridge_toml = bridge_config(db.port(), &url, &cfg.exchange)
            .with(|c| {
                c.source.start = "start".into();
                c.capture.databases = vec!["ocpi".into()];
            })
            .to_toml();
        let bridge = BridgeProcess::start(&bridge_toml);
        let mut chain = Chain {
            pusher: None,
            _bridge: bridge,
            db,
            url,
            cfg,
            partners: tokens,
            _names: names,
        };
        chain.start_pusher();
        chain
    }

    fn start_pusher(&mut self) {
        let env: Vec<(&str, &str)> = self
            .partners
            .iter()
            .map(|(_, k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.pusher = Some(PusherProcess::start_with_env(&self.cfg.to_toml(), &env));
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

    /// Waits until `done` holds for the partner and the partner queue is empty.
    async fn until(&self, what: &str, partner: &OcpiPartner, done: impl Fn(&OcpiPartner) -> bool) {
        let queue = self.cfg.queue(&self.id_of(partner));
        let deadline = Instant::now() + DELIVERY;
        loop {
            if done(partner) && queue_len(&self.url, &queue).await == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not reached; requests: {:#?}\npusher log:\n{}",
                summary(&partner.requests()),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
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
