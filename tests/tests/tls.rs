//! TLS end to end: a private MariaDB with TLS (and `require_secure_transport=ON`), a private
//! RabbitMQ node with a TLS listener, certificates made for each run by a test CA. The bridge's
//! start-up checks, catalog and signal-table connections and its publishing, the pusher's
//! source-database reads and its broker connections, over TLS; and the mistakes a user can make
//! (another CA, another host name, plaintext against a server that requires TLS), each a clear,
//! fatal error naming the option to fix.

use std::time::Duration;

use pusher::source_db::{DatabaseConfig, DbError, Select, SourceDb};
use serde_json::json;
use system_tests::{
    bridge_config, declare_bound_queue, drain_changes, partner_entry, pusher_config, queue_len,
    shared_amqp_url, unique_name, BridgeConfig, BridgeProcess, BrokerCleanup, DatabaseEntry,
    MariaDb, MariaDbOptions, OcpiPartner, PartnerOptions, PusherConfig, PusherProcess, RabbitNode,
    TestCa, TlsEntry, READER_PASSWORD, READER_USER,
};
use tls_connect::TlsConfig;

const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
const ARRIVAL: Duration = Duration::from_secs(30);

/// A partner double `p1` (OCPI 2.2.1, its token in `TOKEN_P1`) and a pusher configuration that
/// serves it from `exchange` on the broker at `amqp_url` with `broker_tls`.
async fn pusher_for_one_partner(
    amqp_url: &str,
    exchange: &str,
    broker_tls: TlsEntry,
) -> (OcpiPartner, String, PusherConfig) {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let token = partner.options().token.clone();
    let config = pusher_config(amqp_url)
        .with(|c| {
            c.exchange = exchange.to_string();
            c.broker_tls = broker_tls;
        })
        .partner(partner_entry("p1", &partner, "TOKEN_P1"));
    (partner, token, config)
}

/// A MariaDB whose certificate (signed by `ca`) names `names`; TLS required when `require`.
fn tls_db(ca: &TestCa, names: &[&str], require: bool) -> MariaDb {
    let server = ca.server(&unique_name("db"), names);
    let db = MariaDb::start_with(MariaDbOptions::default().with_tls(&server, ca, require));
    db.exec("CREATE TABLE app.items (id INT PRIMARY KEY, name VARCHAR(20))");
    db
}

/// `bridge check` with `config`: (succeeded, output).
fn bridge_check(config: &BridgeConfig) -> (bool, String) {
    let (status, out) = BridgeProcess::run_to_exit(&config.to_toml(), &["check"], CHECK_TIMEOUT);
    (status.success(), out)
}

fn assert_refused(ok: bool, out: &str, needles: &[&str]) {
    assert!(!ok, "expected a refusal, got success:\n{out}");
    for needle in needles {
        assert!(
            out.contains(needle),
            "the error should say {needle:?}:\n{out}"
        );
    }
}

#[test]
fn bridge_checks_catalog_and_signal_table_run_over_tls_against_a_server_that_requires_it() {
    let ca = TestCa::new("Test CA");
    let db = tls_db(&ca, &["127.0.0.1"], true);
    let config = bridge_config(db.port(), &shared_amqp_url(), &unique_name("tls.x"))
        .with(|c| c.source.tls = TlsEntry::trusting("verify_identity", &ca));
    let (ok, out) = bridge_check(&config);
    assert!(ok, "bridge check over TLS failed:\n{out}");
    assert!(
        out.contains("database OK") && out.contains("signal table OK"),
        "{out}"
    );
    // The signal table was created through a TLS connection (the server refuses any other).
    assert_eq!(
        db.query_value(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'cdc_signal'"
        ),
        "1"
    );
}

#[test]
fn a_user_that_requires_a_client_certificate_is_served_with_cert_file_and_key_file() {
    let ca = TestCa::new("Test CA");
    let db = tls_db(&ca, &["127.0.0.1"], true);
    db.exec(
        "SET sql_log_bin = 0; \
         CREATE USER 'x509'@'127.0.0.1' IDENTIFIED BY 'x509-pass' REQUIRE X509; \
         GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'x509'@'127.0.0.1'; \
         GRANT SELECT, INSERT, DELETE, CREATE ON app.cdc_signal TO 'x509'@'127.0.0.1';",
    );
    let client = ca.client("bridge", "cdc-bridge");
    let config = bridge_config(db.port(), &shared_amqp_url(), &unique_name("tls.x")).with(|c| {
        c.source.user = "x509".into();
        c.source.password = Some("x509-pass".into());
        c.source.tls = TlsEntry::trusting("verify_identity", &ca);
    });
    let (ok, out) = bridge_check(&config);
    assert_refused(
        ok,
        &out,
        &[
            "REQUIRE X509",
            "source.tls.cert_file",
            "source.tls.key_file",
        ],
    );
    let config = config
        .with(|c| c.source.tls = TlsEntry::trusting("verify_identity", &ca).with_client(&client));
    let (ok, out) = bridge_check(&config);
    assert!(ok, "with the client certificate:\n{out}");
}

#[test]
fn plaintext_against_a_server_that_requires_tls_stops_the_bridge_naming_source_tls() {
    let ca = TestCa::new("Test CA");
    let db = tls_db(&ca, &["127.0.0.1"], true);
    let url = shared_amqp_url();
    let exchange = unique_name("tls.x");
    let _names = BrokerCleanup::new(&url, Vec::new(), vec![exchange.clone()]);
    // No [source.tls]: disabled, the default for 127.0.0.1.
    let config = bridge_config(db.port(), &url, &exchange);
    let (status, out) =
        BridgeProcess::run_to_exit(&config.to_toml(), &["run"], Duration::from_secs(60));
    assert_refused(
        status.success(),
        &out,
        &[
            "requires TLS",
            "require_secure_transport=ON",
            "source.tls.mode = \"verify_identity\"",
        ],
    );
    assert!(
        !out.contains("waiting for the database"),
        "a TLS refusal is not worth waiting for:\n{out}"
    );
}

#[test]
fn a_server_certificate_from_another_ca_is_refused_naming_source_tls_ca_file() {
    let ca = TestCa::new("Test CA");
    let other = TestCa::new("Another CA");
    let db = tls_db(&ca, &["127.0.0.1"], true);
    let config = bridge_config(db.port(), &shared_amqp_url(), &unique_name("tls.x"))
        .with(|c| c.source.tls = TlsEntry::trusting("verify_ca", &other));
    let (ok, out) = bridge_check(&config);
    assert_refused(
        ok,
        &out,
        &["not signed by a CA it trusts", "source.tls.ca_file"],
    );
    // Without a CA file only the public roots are trusted: refused the same way.
    let config = config.with(|c| c.source.tls = TlsEntry::mode("verify_identity"));
    let (ok, out) = bridge_check(&config);
    assert_refused(
        ok,
        &out,
        &["not signed by a CA it trusts", "bundled public roots"],
    );
    // `required` encrypts without checking the certificate: accepted.
    let config = config.with(|c| c.source.tls = TlsEntry::mode("required"));
    let (ok, out) = bridge_check(&config);
    assert!(ok, "mode = required must accept any certificate:\n{out}");
}

#[test]
fn a_certificate_for_another_host_fails_verify_identity_and_passes_verify_ca() {
    let ca = TestCa::new("Test CA");
    let db = tls_db(&ca, &["db.example.test"], true);
    let config = bridge_config(db.port(), &shared_amqp_url(), &unique_name("tls.x"))
        .with(|c| c.source.tls = TlsEntry::trusting("verify_identity", &ca));
    let (ok, out) = bridge_check(&config);
    assert_refused(
        ok,
        &out,
        &[
            "not valid for the host name `127.0.0.1`",
            "db.example.test",
            "source.tls.mode = \"verify_ca\"",
        ],
    );
    let config = config.with(|c| c.source.tls = TlsEntry::trusting("verify_ca", &ca));
    let (ok, out) = bridge_check(&config);
    assert!(ok, "verify_ca checks the CA only:\n{out}");
    // verify_ca still refuses a certificate of another CA.
    let other = TestCa::new("Another CA");
    let config = config.with(|c| c.source.tls = TlsEntry::trusting("verify_ca", &other));
    let (ok, out) = bridge_check(&config);
    assert_refused(ok, &out, &["not signed by a CA it trusts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_publishes_over_amqps_and_broker_tls_mistakes_are_clear_errors() {
    let ca = TestCa::new("Test CA");
    // The broker's certificate names only `localhost`; the bridge connects to 127.0.0.1.
    let broker_cert = ca.server("broker", &["localhost"]);
    let node = RabbitNode::start_with_tls(&broker_cert, &ca);
    let plain = node.amqp_url();
    let amqps = node.amqps_url("127.0.0.1");
    let db = tls_db(&ca, &["127.0.0.1"], false);
    let exchange = unique_name("tls.x");
    let queue = unique_name("tls.q");
    declare_bound_queue(&plain, &exchange, &queue).await;
    let base = bridge_config(db.port(), &amqps, &exchange).with(|c| {
        c.source.start = "start".into();
        c.source.tls = TlsEntry::trusting("verify_identity", &ca);
    });

    let wrong_ca = TestCa::new("Another CA");
    let config = base
        .clone()
        .with(|c| c.broker.tls = TlsEntry::trusting("verify_ca", &wrong_ca));
    let (ok, out) = bridge_check(&config);
    assert_refused(
        ok,
        &out,
        &[
            "the broker 127.0.0.1",
            "not signed by a CA it trusts",
            "broker.tls.ca_file",
        ],
    );
    let config = base
        .clone()
        .with(|c| c.broker.tls = TlsEntry::trusting("verify_identity", &ca));
    let (ok, out) = bridge_check(&config);
    assert_refused(
        ok,
        &out,
        &[
            "not valid for the host name `127.0.0.1`",
            "localhost",
            "broker.tls.mode",
        ],
    );
    // Plaintext AMQP against the TLS port: the broker does not answer AMQP there.
    let config = base
        .clone()
        .with(|c| c.broker.url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", node.tls_port()));
    let (ok, out) = bridge_check(&config);
    assert_refused(ok, &out, &["broker"]);

    // A running bridge with a broker certificate it cannot trust stops (never waits).
    let config = base
        .clone()
        .with(|c| c.broker.tls = TlsEntry::trusting("verify_ca", &wrong_ca));
    let (status, out) =
        BridgeProcess::run_to_exit(&config.to_toml(), &["run"], Duration::from_secs(60));
    assert_refused(status.success(), &out, &["broker.tls.ca_file"]);
    assert!(!out.contains("waiting for the broker"), "{out}");

    let config = base.with(|c| c.broker.tls = TlsEntry::trusting("verify_ca", &ca));
    let (ok, out) = bridge_check(&config);
    assert!(ok && out.contains("broker OK"), "{out}");
    let bridge = BridgeProcess::start(&config.to_toml());
    db.exec("INSERT INTO app.items VALUES (1, 'over tls'), (2, 'still tls')");
    let changes = drain_changes(&plain, &queue, 2, ARRIVAL).await;
    assert_eq!(
        changes.len(),
        2,
        "changes published over amqps: {changes:?}\nlog:\n{}",
        bridge.log()
    );
    assert_eq!(
        changes[0].after.as_ref().unwrap()["name"],
        json!("over tls")
    );
    assert!(
        bridge.log().contains("broker.tls") && bridge.log().contains("verify_ca (configured)"),
        "the modes in use are logged at start:\n{}",
        bridge.log()
    );

    // The pusher's broker connections use the same options.
    let (_partner, token, cfg) =
        pusher_for_one_partner(&amqps, &exchange, TlsEntry::trusting("verify_ca", &ca)).await;
    let env = [("TOKEN_P1", token.as_str())];
    let (status, out) =
        PusherProcess::run_to_exit_with_env(&cfg.to_toml(), &["setup"], &env, CHECK_TIMEOUT);
    assert!(status.success(), "pusher setup over amqps:\n{out}");
    // The partner's queue was declared over amqps and bound: the changes above went out
    // before it existed, so it is empty.
    assert_eq!(queue_len(&plain, &cfg.queue("p1")).await, 0);
    let cfg = cfg.with(|c| c.broker_tls = TlsEntry::trusting("verify_ca", &wrong_ca));
    let (status, out) =
        PusherProcess::run_to_exit_with_env(&cfg.to_toml(), &["setup"], &env, CHECK_TIMEOUT);
    assert_refused(status.success(), &out, &["broker.tls.ca_file"]);
}

/// A broker whose TLS listener requires a client certificate (`ssl_options.verify =
/// verify_peer`, `fail_if_no_peer_cert = true`): without `[broker.tls] cert_file`/`key_file`
/// the bridge (`check` and `run`) and the pusher (`setup` and `run`) stop at once naming both
/// keys; with a certificate the test CA signed, the bridge publishes and the pusher sets up and
/// consumes over amqps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_requires_a_client_certificate_takes_bridge_and_pusher_with_cert_file_and_key_file(
) {
    let ca = TestCa::new("Test CA");
    let node =
        RabbitNode::start_requiring_client_certificates(&ca.server("broker", &["127.0.0.1"]), &ca);
    let plain = node.amqp_url();
    let amqps = node.amqps_url("127.0.0.1");
    let db = tls_db(&ca, &["127.0.0.1"], false);
    let exchange = unique_name("tls.x");
    let queue = unique_name("tls.q");
    declare_bound_queue(&plain, &exchange, &queue).await;
    let needles = ["broker.tls.cert_file", "broker.tls.key_file"];

    let without = bridge_config(db.port(), &amqps, &exchange).with(|c| {
        c.source.start = "start".into();
        c.broker.tls = TlsEntry::trusting("verify_identity", &ca);
    });
    let (ok, out) = bridge_check(&without);
    assert_refused(ok, &out, &needles);
    let (status, out) =
        BridgeProcess::run_to_exit(&without.to_toml(), &["run"], Duration::from_secs(60));
    assert_refused(status.success(), &out, &needles);
    assert!(!out.contains("waiting for the broker"), "{out}");

    let bridge_client = ca.client("bridge", "cdc-bridge");
    let with = without.with(|c| {
        c.broker.tls = TlsEntry::trusting("verify_identity", &ca).with_client(&bridge_client)
    });
    let (ok, out) = bridge_check(&with);
    assert!(ok && out.contains("broker OK"), "{out}");
    let bridge = BridgeProcess::start(&with.to_toml());
    db.exec("INSERT INTO app.items VALUES (1, 'client cert')");
    let changes = drain_changes(&plain, &queue, 1, ARRIVAL).await;
    assert_eq!(
        changes.len(),
        1,
        "published over amqps with a client certificate: {changes:?}\nlog:\n{}",
        bridge.log()
    );

    let (_partner, token, without) = pusher_for_one_partner(
        &amqps,
        &exchange,
        TlsEntry::trusting("verify_identity", &ca),
    )
    .await;
    let env = [("TOKEN_P1", token.as_str())];
    for command in ["setup", "run"] {
        let (status, out) = PusherProcess::run_to_exit_with_env(
            &without.to_toml(),
            &[command],
            &env,
            CHECK_TIMEOUT,
        );
        assert_refused(status.success(), &out, &needles);
    }
    let pusher_client = ca.client("pusher", "cdc-pusher");
    let with = without.with(|c| {
        c.broker_tls = TlsEntry::trusting("verify_identity", &ca).with_client(&pusher_client)
    });
    let (status, out) =
        PusherProcess::run_to_exit_with_env(&with.to_toml(), &["setup"], &env, CHECK_TIMEOUT);
    assert!(
        status.success(),
        "pusher setup with a client certificate:\n{out}"
    );
    assert_eq!(queue_len(&plain, &with.queue("p1")).await, 0);
    let mut pusher = PusherProcess::start_with_env(&with.to_toml(), &env);
    assert!(
        pusher
            .wait_for_log_async("partner active: consuming", CHECK_TIMEOUT)
            .await,
        "the pusher did not consume over amqps with a client certificate:\n{}",
        pusher.log()
    );
    assert!(pusher.terminate().success(), "{}", pusher.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pusher_without_tls_against_a_server_that_requires_it_stops_naming_database_tls() {
    let ca = TestCa::new("Test CA");
    let db = tls_db(&ca, &["127.0.0.1"], true);
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let token = partner.options().token.clone();
    let env = [("TOKEN_P1", token.as_str())];
    // The example mapping's Locations are read from [database]: checked at start.
    let cfg = pusher_config(&shared_amqp_url())
        .with(|c| c.database = Some(DatabaseEntry::reader(db.port())))
        .partner(partner_entry("p1", &partner, "TOKEN_P1"));
    let (status, out) =
        PusherProcess::run_to_exit_with_env(&cfg.to_toml(), &["run"], &env, CHECK_TIMEOUT);
    assert_refused(
        status.success(),
        &out,
        &["requires TLS", "database.tls.mode = \"verify_identity\""],
    );
    // With [database.tls] it starts (and reads the tables it checks over TLS).
    let cfg = cfg.with(|c| {
        if let Some(database) = c.database.as_mut() {
            database.tls = TlsEntry::trusting("verify_identity", &ca);
        }
    });
    let schema_path = system_tests::workspace_root().join("config/ocpi-example/schema.sql");
    let schema = std::fs::read_to_string(&schema_path).expect("the example schema");
    db.exec(&format!("SET sql_log_bin = 0;\n{schema}"));
    let _names = BrokerCleanup::of_pusher(&shared_amqp_url(), &cfg);
    let mut pusher = PusherProcess::start_with_env(&cfg.to_toml(), &env);
    assert!(
        pusher
            .wait_for_log_async("database.tls: source database connections", ARRIVAL)
            .await,
        "{}",
        pusher.log()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        pusher.is_running() && !pusher.log().contains("cannot be read yet"),
        "the pusher reads the source database over TLS:\n{}",
        pusher.log()
    );
}

/// The pusher's `[database]` as its configuration file gives it, TLS section included.
fn reader_config(port: u16, tls: &str, host_for_tls: &str) -> DatabaseConfig {
    let mut parsed: TlsConfig = toml::from_str(tls).expect("a [database.tls] section");
    parsed
        .resolve_database("database.tls", host_for_tls, std::path::Path::new("/"))
        .expect("valid TLS options");
    DatabaseConfig {
        host: "127.0.0.1".into(),
        port,
        user: READER_USER.into(),
        password: READER_PASSWORD.into(),
        pool_size: 2,
        timeout: Duration::from_secs(10),
        replica: false,
        tls: parsed,
    }
}

async fn read_items(source: &SourceDb) -> Result<usize, DbError> {
    let mut session = source.session().await?;
    let rows = session
        .select(&Select {
            database: "ocpi",
            table: "items",
            columns: &["id", "name"],
            filter: &["id"],
            keys: &[vec![json!(1)], vec![json!(2)]],
            order_by: &["id"],
        })
        .await?;
    Ok(rows.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pusher_reads_the_source_database_over_tls_and_names_database_tls_when_it_cannot() {
    let ca = TestCa::new("Test CA");
    let db = tls_db(&ca, &["db.example.test"], true);
    db.exec(
        "CREATE DATABASE ocpi; CREATE TABLE ocpi.items (id INT PRIMARY KEY, name VARCHAR(20)); \
         INSERT INTO ocpi.items VALUES (1, 'a'), (2, 'b');",
    );
    let ca_file = ca.cert_path().display().to_string();

    // The certificate names db.example.test: verify_ca reads (the name is learned once).
    let source = SourceDb::new(&reader_config(
        db.port(),
        &format!("mode = \"verify_ca\"\nca_file = {ca_file:?}"),
        "127.0.0.1",
    ));
    for _ in 0..3 {
        assert_eq!(read_items(&source).await.expect("reads over TLS"), 2);
    }
    source.close().await;

    // verify_identity against 127.0.0.1: the certificate's names are given.
    let source = SourceDb::new(&reader_config(
        db.port(),
        &format!("mode = \"verify_identity\"\nca_file = {ca_file:?}"),
        "127.0.0.1",
    ));
    let err = read_items(&source).await.expect_err("another host name");
    assert!(matches!(err, DbError::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("db.example.test") && text.contains("database.tls.mode"),
        "{text}"
    );
    source.close().await;

    // No TLS against require_secure_transport=ON.
    let source = SourceDb::new(&reader_config(db.port(), "", "127.0.0.1"));
    let err = read_items(&source).await.expect_err("plaintext is refused");
    let text = err.to_string();
    assert!(matches!(err, DbError::Tls { .. }), "{err:?}");
    assert!(
        text.contains("requires TLS") && text.contains("database.tls.mode"),
        "{text}"
    );
    source.close().await;

    // Another CA.
    let other = TestCa::new("Another CA");
    let source = SourceDb::new(&reader_config(
        db.port(),
        &format!(
            "mode = \"verify_ca\"\nca_file = {:?}",
            other.cert_path().display().to_string()
        ),
        "127.0.0.1",
    ));
    let err = read_items(&source).await.expect_err("another CA");
    assert!(err.to_string().contains("database.tls.ca_file"), "{err}");
    source.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_captures_and_syncs_end_to_end_from_a_server_that_requires_tls() {
    let ca = TestCa::new("Test CA");
    let node = RabbitNode::start_with_tls(&ca.server("broker", &["127.0.0.1"]), &ca);
    let plain = node.amqp_url();
    let db = tls_db(&ca, &["127.0.0.1"], true);
    db.exec("INSERT INTO app.items VALUES (1, 'before the bridge'), (2, 'also before')");
    let exchange = unique_name("tls.x");
    let live = unique_name("tls.live");
    let synced = unique_name("ocpi.tls.sync");
    declare_bound_queue(&plain, &exchange, &live).await;
    declare_bound_queue(&plain, &exchange, &synced).await;
    let config = bridge_config(db.port(), &node.amqps_url("127.0.0.1"), &exchange).with(|c| {
        c.source.tls = TlsEntry::trusting("verify_identity", &ca);
        c.broker.tls = TlsEntry::trusting("verify_identity", &ca);
    });
    let bridge = BridgeProcess::start(&config.to_toml());
    let mut bridge = bridge;
    assert!(
        bridge
            .wait_for_log_async("database checks passed", ARRIVAL)
            .await,
        "the bridge did not start:\n{}",
        bridge.log()
    );
    // Live capture: the binlog connection over TLS.
    db.exec("INSERT INTO app.items VALUES (3, 'live over tls')");
    let changes = drain_changes(&plain, &live, 1, ARRIVAL).await;
    assert_eq!(
        changes.len(),
        1,
        "live change over TLS: {changes:?}\nlog:\n{}",
        bridge.log()
    );
    assert_eq!(changes[0].after.as_ref().unwrap()["id"], json!(3));
    // An initial sync: snapshot reads over TLS, published over amqps.
    let (status, out) = BridgeProcess::run_to_exit(
        &config.to_toml(),
        &["sync", "start", "--queue", &synced, "--tables", "app.items"],
        CHECK_TIMEOUT,
    );
    assert!(status.success(), "`bridge sync start` over TLS:\n{out}");
    let rows = drain_changes(&plain, &synced, 4, ARRIVAL).await;
    let snapshot = rows.iter().filter(|c| c.snapshot.is_some()).count();
    assert_eq!(
        snapshot,
        3,
        "every existing row as a snapshot row: {rows:?}\nlog:\n{}",
        bridge.log()
    );
}
