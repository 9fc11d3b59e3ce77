//! DATETIME values written in a source time zone other than UTC: a server in Europe/Amsterdam,
//! an application writing `NOW()` (the example schema's `ON UPDATE CURRENT_TIMESTAMP(3)`)
//! through both DST changes of 2026, and a pusher with `[source] time_zone =
//! "Europe/Amsterdam"`. The server's clock is set per statement (`SET timestamp`), which also
//! sets the binlog events' time, so the bridge's `commit_time` is the simulated one.
//!
//! - `last_updated_is_the_true_instant_and_never_goes_back_across_the_autumn_change`: an update
//!   every ten minutes from 00:20Z to 01:40Z on 2026-10-25 (local 02:20 CEST ... 02:00 CET
//!   ... 02:40 CET: the hour from 02:00 to 03:00 happens twice): each reaches the partner with
//!   the instant it was written at.
//! - `the_spring_change_is_crossed_and_a_local_time_in_the_gap_reads_as_after_it`: updates
//!   across 2026-03-29 01:00Z (02:00 CET becomes 03:00 CEST), and a value written as the
//!   non-existent 02:30 local; this pusher has `time_zone = "server"` and reads the zone from
//!   the server.

use std::time::{Duration, Instant};

use serde_json::Value;
use system_tests::ocpi_partner::module_requests;
use system_tests::pusher_cli::setup_queues;
use system_tests::{
    bridge_config, partner_entry, pusher_config, shared_amqp_url, BridgeProcess, BrokerCleanup,
    DatabaseEntry, MariaDb, OcpiPartner, PartnerOptions, PusherProcess,
};

/// Upper bound for a change to reach the partner (never asserted as a timing).
const DELIVERY: Duration = Duration::from_secs(120);

/// A private MariaDB in Europe/Amsterdam with the example schema, the bridge, one pusher
/// reading DATETIME values in the zone `[source] time_zone` gives (the name, or `"server"`),
/// and a strict 2.2.1 partner.
/// Field order is drop order: processes first, then the database, then the broker names.
struct AmsterdamChain {
    pusher: PusherProcess,
    bridge: BridgeProcess,
    db: MariaDb,
    partner: OcpiPartner,
    _names: BrokerCleanup,
}

impl AmsterdamChain {
    async fn start(time_zone: &str) -> AmsterdamChain {
        let db = MariaDb::start();
        tokio::task::block_in_place(|| {
            db.load_example_schema_unlogged();
            db.exec(&format!(
                "SET sql_log_bin = 0;\nUSE mysql;\n{}\nSET GLOBAL time_zone = 'Europe/Amsterdam';",
                amsterdam_zone_tables()
            ));
        });
        let partner = OcpiPartner::start(PartnerOptions::v221()).await;
        let url = shared_amqp_url();
        let token_env = "TOKEN_AMS";
        let cfg = pusher_config(&url)
            .with(|c| {
                c.database = Some(DatabaseEntry::reader(db.port()));
                c.source_time_zone = Some(time_zone.into());
            })
            .partner(partner_entry("ams", &partner, token_env));
        let names = BrokerCleanup::of_pusher(&url, &cfg);
        let env = [(token_env, partner.options().token.as_str())];
        setup_queues(&cfg, &env);
        let bridge = BridgeProcess::start(
            &bridge_config(db.port(), &url, &cfg.exchange)
                .with(|c| {
                    c.source.start = "start".into();
                    c.capture.databases = vec!["ocpi".into()];
                })
                .to_toml(),
        );
        let pusher = PusherProcess::start_with_env(&cfg.to_toml(), &env);
        AmsterdamChain {
            pusher,
            bridge,
            db,
            partner,
            _names: names,
        }
    }

    /// Runs `sql` in the Amsterdam zone with the server's clock at `at` (RFC 3339, UTC).
    fn write_at(&self, at: &str, sql: &str) {
        let unix = unix_seconds(at);
        tokio::task::block_in_place(|| {
            self.db.exec(&format!(
                "SET time_zone = 'Europe/Amsterdam';\nSET timestamp = {unix};\nUSE ocpi;\n{sql}"
            ))
        });
    }

    /// Waits until the partner holds tariff `id` with `last_updated` = `want`.
    async fn wait_for_last_updated(&self, id: &str, want: &str) {
        let deadline = Instant::now() + DELIVERY;
        loop {
            let held = self.partner.object("tariffs", &["NL", "EXA", id]);
            if held.as_ref().and_then(|t| t["last_updated"].as_str()) == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tariff {id}: last_updated {want} not held within {DELIVERY:?}; held: {:?}\n\
                 tariff requests: {:#?}\n--- bridge ---\n{}",
                held.map(|t| t["last_updated"].clone()),
                self.last_updated_sent(),
                self.bridge.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every `last_updated` the partner was sent for tariffs, in arrival order.
    fn last_updated_sent(&self) -> Vec<String> {
        module_requests(&self.partner)
            .iter()
            .filter(|r| r.path.contains("/tariffs/"))
            .filter_map(|r| r.body.as_ref()?["last_updated"].as_str().map(String::from))
            .collect()
    }
}

/// The zone tables of Europe/Amsterdam only, as the server's tool writes them.
fn amsterdam_zone_tables() -> String {
    let out = std::process::Command::new("mariadb-tzinfo-to-sql")
        .args(["/usr/share/zoneinfo/Europe/Amsterdam", "Europe/Amsterdam"])
        .output()
        .expect("mariadb-tzinfo-to-sql (MariaDB's client tools) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("SQL text")
}

fn unix_seconds(rfc3339: &str) -> i64 {
    let nanos = system_tests::ocpi_partner::parse_rfc3339(rfc3339)
        .unwrap_or_else(|| panic!("{rfc3339} is not RFC 3339"));
    i64::try_from(nanos / 1_000_000_000).expect("a time after 1970")
}

const NEW_TARIFF: &str = "INSERT INTO tariffs (country_code, party_id, id, currency, elements)
VALUES ('NL', 'EXA', 'TZ1', 'EUR',
        '[{\"price_components\": [{\"type\": \"ENERGY\", \"price\": 0.30, \"vat\": 21.0, \"step_size\": 1}]}]');";

/// An update that changes a column, so that `ON UPDATE CURRENT_TIMESTAMP(3)` sets
/// `last_updated` to the server's clock.
fn touch(n: usize) -> String {
    format!(
        "UPDATE tariffs SET tariff_alt_url = 'https://example.com/tariff/{n}' WHERE id = 'TZ1';"
    )
}

/// The instants of `times`, written one by one, each waited for at the partner; then every
/// `last_updated` the partner was sent must be one of them, in order.
async fn write_and_follow(chain: &AmsterdamChain, times: &[&str]) {
    for (n, at) in times.iter().enumerate() {
        let sql = if n == 0 {
            NEW_TARIFF.to_string()
        } else {
            touch(n)
        };
        chain.write_at(at, &sql);
        chain.wait_for_last_updated("TZ1", &millis(at)).await;
    }
    let sent = chain.last_updated_sent();
    let want: Vec<String> = times.iter().map(|t| millis(t)).collect();
    assert_eq!(
        sent, want,
        "every change, each with its true instant, in order"
    );
}

/// "2026-10-25T00:20:00Z" as the pusher writes a DATETIME(3): with milliseconds.
fn millis(at: &str) -> String {
    at.replace('Z', ".000Z")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_updated_is_the_true_instant_and_never_goes_back_across_the_autumn_change() {
    let chain = AmsterdamChain::start("Europe/Amsterdam").await;
    // Local: 02:20, 02:30, 02:40, 02:50 CEST, then 02:00, 02:10, 02:20, 02:30, 02:40 CET.
    let times = [
        "2026-10-25T00:20:00Z",
        "2026-10-25T00:30:00Z",
        "2026-10-25T00:40:00Z",
        "2026-10-25T00:50:00Z",
        "2026-10-25T01:00:00Z",
        "2026-10-25T01:10:00Z",
        "2026-10-25T01:20:00Z",
        "2026-10-25T01:30:00Z",
        "2026-10-25T01:40:00Z",
    ];
    write_and_follow(&chain, &times).await;
    let local = tokio::task::block_in_place(|| {
        chain
            .db
            .query_value("SELECT last_updated FROM ocpi.tariffs WHERE id = 'TZ1'")
    });
    assert_eq!(
        local, "2026-10-25 02:40:00.000",
        "the database holds local time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spring_change_is_crossed_and_a_local_time_in_the_gap_reads_as_after_it() {
    // The zone as the server tells it, not as configured.
    let chain = AmsterdamChain::start("server").await;
    // Local: 01:40, 01:50 CET, then 03:00, 03:10 CEST (02:00-03:00 never happens).
    let times = [
        "2026-03-29T00:40:00Z",
        "2026-03-29T00:50:00Z",
        "2026-03-29T01:00:00Z",
        "2026-03-29T01:10:00Z",
    ];
    write_and_follow(&chain, &times).await;
    // An application that writes the local time itself can write one that never happened:
    // it is read with the offset before the gap (+01:00), so 02:30 is 01:30Z (03:30 CEST).
    chain.write_at(
        "2026-03-29T01:20:00Z",
        "UPDATE tariffs SET last_updated = '2026-03-29 02:30:00' WHERE id = 'TZ1';",
    );
    chain
        .wait_for_last_updated("TZ1", "2026-03-29T01:30:00.000Z")
        .await;
    let held: Value = chain
        .partner
        .object("tariffs", &["NL", "EXA", "TZ1"])
        .expect("the partner holds the tariff");
    assert_eq!(held["currency"], "EUR");
    assert!(
        chain
            .pusher
            .log()
            .contains("read in the source server's zone"),
        "the pusher did not say it read the server's zone:\n{}",
        chain.pusher.log_tail(20)
    );
}
