//! A partner that flaps 60 times, on the shared RabbitMQ: its versions endpoint answers, its
//! module endpoints answer 503, so the pusher pauses (no successful call for
//! `down_after_secs`), probes, finds the partner up, resumes and pauses again, while the same
//! messages wait. The partner queue's delivery limit is 3: had the pusher returned what it held
//! at each pause (every return counts toward the limit on RabbitMQ 3.x up to 4.2), healthy
//! messages would be dead-lettered into the parking queue after a few flaps, out of order with
//! their records' later changes. Once the partner is back, every tariff reaches its newest
//! version, each one's PUTs never go back to an older version, and nothing is parked.

use std::time::Duration;

use change_message::Message;
use system_tests::changes::{
    stored_tariff_version, tariff_insert, tariff_update, versions_per_tariff,
};
use system_tests::http_probe::eventually;
use system_tests::{
    partner_entry, publish_messages, pusher_config, queue_len, shared_amqp_url, BrokerCleanup,
    Mode, OcpiPartner, PartnerOptions, PusherProcess,
};

const TOKEN_ENV: &str = "PUSHER_FLAP_TOKEN";
const FLAPS: usize = 60;
const TARIFFS: usize = 10;
const VERSIONS: u32 = 3;
const PAUSED: &str = "partner paused";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_flapping_60_times_gets_every_change_in_order_and_nothing_is_parked() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    let token = partner.options().token.clone();
    let env = [(TOKEN_ENV, token.as_str())];
    let mut entry = partner_entry("flapping", &partner, TOKEN_ENV);
    entry.down_after_secs = 1;
    entry.probe_interval_secs = 1;
    entry.max_probe_interval_secs = 1;
    let cfg = pusher_config(&url).partner(entry).with(|c| {
        c.name = "flap-pusher".into();
        c.delivery_limit = 3;
    });
    let _names = BrokerCleanup::of_pusher(&url, &cfg);
    tokio::task::block_in_place(|| system_tests::pusher_cli::setup_queues(&cfg, &env));
    let mut messages: Vec<Message> = Vec::new();
    for version in 1..=VERSIONS {
        for i in 0..TARIFFS {
            let id = format!("FLAP-{i}");
            let seq = messages.len() as u64 + 1;
            messages.push(if version == 1 {
                tariff_insert(&id, version, seq)
            } else {
                tariff_update(&id, version, seq)
            });
        }
    }
    partner.set_mode_for_pushes(Mode::Http(503));
    publish_messages(&url, &cfg.exchange, &messages).await;

    let pusher =
        tokio::task::block_in_place(|| PusherProcess::start_with_env(&cfg.to_toml(), &env));
    let context = || pusher.log_tail(40);
    let parking = cfg.parking_queue("flapping");
    eventually(
        Duration::from_secs(600),
        "60 pauses of the flapping partner",
        async || {
            let pauses = pusher.log().matches(PAUSED).count();
            let parked = queue_len(&url, &parking).await;
            assert_eq!(
                parked,
                0,
                "healthy messages were parked after {pauses} pauses:\n{}",
                context()
            );
            (pauses >= FLAPS).then_some(())
        },
        context,
    )
    .await;
    assert!(
        pusher
            .log()
            .contains("consuming again, the held deliveries first"),
        "the pusher never resumed with what it held:\n{}",
        context()
    );

    partner.clear_mode();
    eventually(
        Duration::from_secs(90),
        "every tariff at its newest version at the partner",
        async || {
            (0..TARIFFS)
                .all(|i| stored_tariff_version(&partner, &format!("FLAP-{i}")) == Some(VERSIONS))
                .then_some(())
        },
        context,
    )
    .await;
    for (id, versions) in versions_per_tariff(&partner.requests()) {
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "tariff {id} went back to an older version: {versions:?}"
        );
    }
    let parked = queue_len(&url, &parking).await;
    assert_eq!(parked, 0, "healthy messages were parked:\n{}", context());
    eventually(
        Duration::from_secs(30),
        "the partner queue drained",
        async || (queue_len(&url, &cfg.queue("flapping")).await == 0).then_some(()),
        context,
    )
    .await;
}
