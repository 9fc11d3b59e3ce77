//! A broker resource alarm, on a private RabbitMQ node: with a backlog in the partner queue, the
//! node's disk limit is raised above its free space (`rabbitmqctl set_disk_free_limit`), so the
//! broker blocks every connection that publishes. A pusher started then still drains the whole
//! backlog to the partner and acks it (it consumes and acks on a connection that never
//! publishes), says the broker blocked publishing in its log, `/readyz` and
//! `cdc_pusher_broker_blocked`, and when the limit is lowered again it says so and is ready.

use std::time::Duration;

use change_message::Message;
use system_tests::changes::tariff_insert;
use system_tests::http_probe::{eventually, http_get, sample};
use system_tests::{
    free_port, partner_entry, publish_messages, pusher_config, queue_len, OcpiPartner,
    PartnerOptions, PusherProcess, RabbitNode,
};

const TOKEN_ENV: &str = "PUSHER_ALARM_TOKEN";
const BACKLOG: usize = 30;
const WAIT: Duration = Duration::from_secs(90);

fn block<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

/// Whether the node reports a disk alarm.
fn disk_alarm(node: &RabbitNode) -> bool {
    let (ok, out) = node.rabbitmqctl(&["eval", "rabbit_alarm:get_alarms()."]);
    ok && out.contains("disk")
}

fn set_disk_free_limit(node: &RabbitNode, limit: &str) {
    let (ok, out) = node.rabbitmqctl(&["set_disk_free_limit", limit]);
    assert!(ok, "rabbitmqctl set_disk_free_limit {limit}: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_disk_alarm_the_pusher_drains_and_acks_its_backlog_and_reports_blocked() {
    let node = block(RabbitNode::start);
    let url = node.amqp_url();
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let token = partner.options().token.clone();
    let env = [(TOKEN_ENV, token.as_str())];
    let port = free_port();
    let cfg = pusher_config(&url)
        .partner(partner_entry("alarmed", &partner, TOKEN_ENV))
        .with(|c| {
            c.name = "alarmed-pusher".into();
            c.metrics_listen = format!("127.0.0.1:{port}");
        });
    block(|| system_tests::pusher_cli::setup_queues(&cfg, &env));
    let backlog: Vec<Message> = (0..BACKLOG)
        .map(|i| tariff_insert(&format!("ALARM-{i:02}"), 1, i as u64 + 1))
        .collect();
    publish_messages(&url, &cfg.exchange, &backlog).await;
    assert_eq!(queue_len(&url, &cfg.queue("alarmed")).await, BACKLOG as u32);

    // A disk limit far above any free space: the node raises its disk alarm.
    block(|| set_disk_free_limit(&node, "100000GB"));
    eventually(
        WAIT,
        "the node's disk alarm",
        async || block(|| disk_alarm(&node)).then_some(()),
        String::new,
    )
    .await;

    let mut pusher = block(|| PusherProcess::start_with_env(&cfg.to_toml(), &env));
    let context = || pusher.log_tail(40);
    eventually(
        WAIT,
        "every backlog message pushed and acked during the alarm",
        async || {
            let puts = partner
                .requests()
                .iter()
                .filter(|r| r.method == "PUT" && r.path.contains("/tariffs/"))
                .count();
            let left = queue_len(&url, &cfg.queue("alarmed")).await;
            (puts >= BACKLOG && left == 0).then_some(())
        },
        context,
    )
    .await;
    eventually(
        WAIT,
        "the blocked broker in the log, /readyz and the metrics",
        async || {
            let logged = pusher.log().contains("the broker BLOCKED publishing");
            let (code, why) = http_get(port, "/readyz").await?;
            let (_, metrics) = http_get(port, "/metrics").await?;
            let gauge = sample(&metrics, "cdc_pusher_broker_blocked");
            (logged && code == 503 && why.contains("blocks publishing") && gauge == Some(1.0))
                .then_some(())
        },
        context,
    )
    .await;
    assert!(
        !pusher.log().contains("reconnecting"),
        "the alarm cost the pusher its broker session:\n{}",
        context()
    );

    // The operator frees the alarm: the pusher says so and is ready again.
    block(|| set_disk_free_limit(&node, "1MB"));
    eventually(
        WAIT,
        "publishing unblocked and the pusher ready",
        async || {
            let logged = pusher.log().contains("the broker unblocked publishing");
            let (code, _) = http_get(port, "/readyz").await?;
            let (_, metrics) = http_get(port, "/metrics").await?;
            let gauge = sample(&metrics, "cdc_pusher_broker_blocked");
            (logged && code == 200 && gauge == Some(0.0)).then_some(())
        },
        context,
    )
    .await;
    let log = pusher.log_tail(40);
    assert!(pusher.terminate().success(), "{log}");
}
