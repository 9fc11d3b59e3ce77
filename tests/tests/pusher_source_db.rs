//! The pusher's source-database reader against a real MariaDB: a warm pool serves reads
//! without a new connection per read (connecting costs more than the read itself).

use std::time::Duration;

use pusher::source_db::{DatabaseConfig, Select, SourceDb};
use serde_json::json;
use system_tests::{MariaDb, READER_PASSWORD, READER_USER};

fn connections(db: &MariaDb) -> u64 {
    tokio::task::block_in_place(|| {
        db.query_value(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'CONNECTIONS'",
        )
        .parse()
        .unwrap_or(0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_reuse_the_pools_connections() {
    let db = MariaDb::start();
    tokio::task::block_in_place(|| {
        db.exec(
            "CREATE DATABASE ocpi; CREATE TABLE ocpi.t (id INT PRIMARY KEY, v VARCHAR(10)); \
             INSERT INTO ocpi.t VALUES (1, 'a'), (2, 'b');",
        )
    });
    let source = SourceDb::new(&DatabaseConfig {
        host: "127.0.0.1".into(),
        port: db.port(),
        user: READER_USER.into(),
        password: READER_PASSWORD.into(),
        pool_size: 2,
        timeout: Duration::from_secs(5),
        replica: false,
        tls: Default::default(),
    });
    let read = |id: i64| {
        let source = &source;
        async move {
            let mut session = source.session().await.unwrap();
            session
                .select(&Select {
                    database: "ocpi",
                    table: "t",
                    columns: &["id", "v"],
                    filter: &["id"],
                    keys: &[vec![json!(id)]],
                    order_by: &[],
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(read(1).await[0]["v"], "a");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = connections(&db);
    for i in 0..50 {
        let rows = read(1 + i % 2).await;
        assert_eq!(rows.len(), 1);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let opened = connections(&db) - before;
    // The status query itself is one connection of the mariadb client.
    assert!(opened <= 3, "{opened} connections opened for 50 reads");
    assert_eq!(source.reads(), 51);
}
