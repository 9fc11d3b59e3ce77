//! Checks the harness itself: private MariaDB, the shared RabbitMQ, a private RabbitMQ node, the
//! bridge config builder and the bridge process plumbing.

use std::time::{Duration, Instant};

use change_message::{Heartbeat, Message, CONTRACT_VERSION};
use mysql_async::prelude::Queryable;
use system_tests::{
    bridge_config, declare_bound_queue, delete_exchange, delete_queue, drain, drain_received,
    publish_messages, queue_len, shared_amqp_url, unique_name, BridgeProcess, MariaDb,
    MariaDbOptions, RabbitNode,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_has_the_binlog_on_and_a_cdc_user() {
    let started = Instant::now();
    let db = MariaDb::start();
    eprintln!("MariaDb::start took {:?}", started.elapsed());

    let pool = db.pool().await;
    let mut conn = pool.get_conn().await.unwrap();
    let (log_bin, format): (i64, String) = conn
        .query_first("SELECT @@log_bin, @@binlog_format")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((log_bin, format.as_str()), (1, "ROW"));
    let (image, metadata): (String, String) = conn
        .query_first("SELECT @@binlog_row_image, @@binlog_row_metadata")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((image.as_str(), metadata.as_str()), ("FULL", "FULL"));
    drop(conn);
    pool.disconnect().await.unwrap();

    // Multi-statement scripts through the CLI, and reading back.
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20));\n\
         INSERT INTO t VALUES (1, 'a'), (2, 'é');\n\
         UPDATE t SET name = 'b' WHERE id = 1;",
    );
    assert_eq!(
        db.query_rows("SELECT id, name FROM t ORDER BY id"),
        vec![
            vec!["1".to_string(), "b".into()],
            vec!["2".into(), "é".into()]
        ]
    );

    // The replication user over TCP, as the bridge connects.
    let cdc = mysql_async::Pool::new(db.cdc_url().as_str());
    let mut conn = cdc.get_conn().await.expect("cdc can connect over TCP");
    let user: String = conn
        .query_first("SELECT CURRENT_USER()")
        .await
        .unwrap()
        .unwrap();
    assert!(user.starts_with("cdc@"), "{user}");
    let status: Vec<mysql_async::Row> = conn.query("SHOW MASTER STATUS").await.unwrap();
    assert_eq!(status.len(), 1, "cdc can read the binlog position");
    let names: Vec<String> = conn
        .query("SELECT name FROM app.t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(names, vec!["b", "é"]);
    drop(conn);
    cdc.disconnect().await.unwrap();
}

#[test]
fn mariadb_restarts_with_other_options_and_survives_kill() {
    let mut db = MariaDb::start_with(MariaDbOptions {
        log_bin: false,
        ..MariaDbOptions::default()
    });
    assert_eq!(db.query_value("SELECT @@log_bin"), "0");
    db.exec("CREATE TABLE k (id INT PRIMARY KEY); INSERT INTO k VALUES (1);");
    let port = db.port();

    db.restart_with(MariaDbOptions {
        extra_cnf: vec!["binlog_checksum=NONE".into()],
        ..MariaDbOptions::default()
    });
    assert_eq!(db.port(), port);
    assert_eq!(db.query_value("SELECT @@log_bin"), "1");
    assert_eq!(db.query_value("SELECT @@binlog_checksum"), "NONE");

    db.exec("INSERT INTO k VALUES (2);");
    db.kill();
    assert!(!db.is_running());
    db.start_again();
    assert_eq!(db.query_value("SELECT COUNT(*) FROM k"), "2");
    db.stop();
    assert!(!db.is_running());
}

#[tokio::test]
async fn shared_rabbit_declares_counts_drains_and_deletes() {
    let url = shared_amqp_url();
    let exchange = unique_name("smoke.x");
    let queue = unique_name("smoke.q");
    declare_bound_queue(&url, &exchange, &queue).await;
    declare_bound_queue(&url, &exchange, &queue).await; // idempotent
    assert_eq!(queue_len(&url, &queue).await, 0);

    let heartbeat = Message::Heartbeat(Heartbeat {
        version: CONTRACT_VERSION,
        id: "hb-1".into(),
        seq: 0,
        time: "2024-01-01T00:00:00Z".into(),
        file: "binlog.000001".into(),
        pos: 4,
    });
    publish_messages(&url, &exchange, &[heartbeat.clone(), heartbeat.clone()]).await;
    assert_eq!(queue_len(&url, &queue).await, 2);
    // Heartbeats do not count toward `expected`: this waits for the timeout and returns both.
    let got = drain_received(&url, &queue, 1, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].message, heartbeat);
    assert_eq!(got[0].properties.delivery_mode(), &Some(2));
    assert_eq!(queue_len(&url, &queue).await, 0);
    assert!(drain(&url, &queue, 1, Duration::from_millis(200))
        .await
        .is_empty());

    delete_queue(&url, &queue).await;
    delete_exchange(&url, &exchange).await;
}

#[test]
fn private_rabbit_node_starts_stops_and_keeps_durable_queues() {
    let started = Instant::now();
    let mut node = RabbitNode::start();
    eprintln!("RabbitNode::start took {:?}", started.elapsed());
    let url = node.amqp_url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let exchange = unique_name("node.x");
    let queue = unique_name("node.q");
    let heartbeat = Message::Heartbeat(Heartbeat {
        version: CONTRACT_VERSION,
        id: "hb".into(),
        seq: 7,
        time: "2024-01-01T00:00:00Z".into(),
        file: "binlog.000001".into(),
        pos: 4,
    });
    rt.block_on(async {
        declare_bound_queue(&url, &exchange, &queue).await;
        publish_messages(&url, &exchange, std::slice::from_ref(&heartbeat)).await;
        assert_eq!(queue_len(&url, &queue).await, 1);
    });

    let stopping = Instant::now();
    node.stop();
    eprintln!("RabbitNode::stop took {:?}", stopping.elapsed());
    assert!(!node.is_running());

    let again = Instant::now();
    node.start_again();
    eprintln!("RabbitNode::start_again took {:?}", again.elapsed());
    rt.block_on(async {
        // Durable queue and persistent message survived the restart.
        assert_eq!(queue_len(&url, &queue).await, 1);
        let got = drain(&url, &queue, 1, Duration::from_millis(500)).await;
        assert_eq!(got, vec![heartbeat]);
    });

    node.kill();
    assert!(!node.is_running());
    node.start_again();
    rt.block_on(async { assert_eq!(queue_len(&url, &queue).await, 0) });
}

#[test]
fn bridge_config_renders_valid_toml_with_every_key() {
    let text = bridge_config(3307, "amqp://u:p@127.0.0.1:5673/%2f", "x\"1")
        .with(|c| {
            c.source.start = "start".into();
            c.capture.exclude_columns = vec!["app.t.secret".into()];
        })
        .to_toml();
    let value: toml::Table = text.parse().expect("valid TOML");
    assert_eq!(value["source"]["port"].as_integer(), Some(3307));
    assert_eq!(value["source"]["password"].as_str(), Some("cdc-pass"));
    assert_eq!(value["source"]["start"].as_str(), Some("start"));
    assert_eq!(value["broker"]["exchange"].as_str(), Some("x\"1"));
    assert_eq!(
        value["capture"]["exclude_columns"].as_array().unwrap()[0].as_str(),
        Some("app.t.secret")
    );
    for (section, keys) in [
        ("source", 8),
        ("capture", 6),
        ("dedup", 3),
        ("broker", 6),
        ("checkpoint", 1),
        ("log", 2),
    ] {
        assert_eq!(value[section].as_table().unwrap().len(), keys, "{section}");
    }
    let without_password = bridge_config(1, "amqp://x", "x")
        .with(|c| c.source.password = None)
        .to_toml();
    assert!(!without_password.contains("password"));
}

#[test]
fn bridge_binary_builds_and_runs() {
    // Only the harness plumbing: build, spawn with a config file, collect output and status.
    let config = bridge_config(1, &shared_amqp_url(), "unused").to_toml();
    let (status, output) =
        BridgeProcess::run_to_exit(&config, &["--help"], Duration::from_secs(60));
    assert!(
        status.code().is_some(),
        "exited normally: {status:?}\n{output}"
    );
}
