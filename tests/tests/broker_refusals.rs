//! A broker that refuses (nacks) publishes, on a real MariaDB and RabbitMQ: one queue bound to
//! the exchange holds at most two messages with `x-overflow = reject-publish`, as a full
//! partner queue under such a policy does. The bridge publishes the refused window again with
//! a pause, and once the broker has refused it for `broker.refused_publish_timeout_secs` it
//! stops naming the exchange, the likely cause and how to find the queue, instead of retrying
//! forever. Its checkpoint stays before the refused change: with the full queue gone, the
//! bridge started again delivers every change to the other queue, in order.

use std::collections::HashSet;
use std::time::Duration;

use system_tests::{
    bridge_failure, declare_bound_queue_with_limit, delete_queue, unique_name, BridgeProcess,
    BrokerCleanup, CaptureSetup,
};

const ROWS: i64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_refusing_publishes_stops_the_bridge_after_the_timeout_and_nothing_is_lost() {
    let s = CaptureSetup::new("CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL)").await;
    let full = unique_name("refusals.full");
    declare_bound_queue_with_limit(&s.url, &s.exchange, &full, Some(2)).await;
    let _full_name = BrokerCleanup::new(&s.url, vec![full.clone()], vec![]);
    for id in 1..=ROWS {
        s.db.exec(&format!("INSERT INTO items VALUES ({id}, {id})"));
    }
    let toml = s
        .config()
        .with(|c| c.broker.refused_publish_timeout_secs = Some(4))
        .to_toml();
    let mut bridge = BridgeProcess::start(&toml);

    let log = bridge_failure(&mut bridge);
    for part in [
        "refused (basic.nack)",
        &format!("a queue bound to exchange `{}`", s.exchange),
        "reject-publish",
        "rabbitmqctl list_queues",
        "broker.refused_publish_timeout_secs",
    ] {
        assert!(
            log.contains(part),
            "`{part}` missing from the bridge's log:\n{log}"
        );
    }
    assert!(
        log.contains("published unconfirmed messages again"),
        "the refused window was not published again before giving up:\n{log}"
    );

    // The operator removes the full queue; the bridge, started again, goes on from its
    // checkpoint: every change reaches the other queue, first copies in commit order.
    delete_queue(&s.url, &full).await;
    bridge.restart();
    let mut first_seen = Vec::new();
    let mut seen = HashSet::new();
    while seen.len() < ROWS as usize {
        let batch = s.rest(Duration::from_secs(15)).await;
        assert!(
            !batch.is_empty(),
            "changes missing after the restart: saw {first_seen:?}\n{}",
            bridge.log()
        );
        for change in batch {
            let id = change.key["id"].as_i64().expect("an integer id");
            if seen.insert(id) {
                first_seen.push(id);
            }
        }
    }
    assert_eq!(first_seen, (1..=ROWS).collect::<Vec<_>>());
    assert!(bridge.terminate().success(), "{}", bridge.log());
}
