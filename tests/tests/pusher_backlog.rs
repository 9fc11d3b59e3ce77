//! One partner's backlog is bounded (README "Backlog limit: cutting a partner off"): MariaDB
//! (binlog) -> bridge -> RabbitMQ -> one pusher -> two partner doubles, one of which goes down.
//!
//! - `a_partner_down_past_its_backlog_limit_is_cut_off_and_re_synced_when_back`: partner `cut`
//!   (backlog_limit 30, prefetch 20) refuses connections while 100 tariffs are inserted: once
//!   more than 30 wait in its queue, the pusher cuts it off (logged, in `pusher partners`, its
//!   queue unbound: 60 more changes do not reach it), while partner `other` gets every change.
//!   When `cut` is back, it gets what waited, then the pusher binds its queue again and asks the
//!   bridge for its re-sync: both partners end equal to the database, nothing parked, and the
//!   partner is no longer shown cut off.
//!
//! - `a_partner_whose_waiting_bytes_reach_backlog_limit_bytes_is_cut_off`: on a private broker
//!   with the management plugin, partner `big` (no bound in messages, 10,000 bytes) is down
//!   while 60 tariff changes (about 40 KB) wait: the pusher reads their bytes from the
//!   management API and cuts the partner off, and `pusher partners` says it was for its bytes.
//!
//! Deadlines are generous (a shared 2-core machine): nothing here asserts a timing.

use std::time::{Duration, Instant};

use system_tests::changes::tariff_insert;
use system_tests::config::syncing_bridge_toml;
use system_tests::pusher_cli::{env_refs, partners_json, row, setup_queues};
use system_tests::{
    differences, partner_entry, publish_messages, pusher_config, queue_len, shared_amqp_url,
    BridgeProcess, BrokerCleanup, MariaDb, OcpiPartner, PartnerOptions, PusherProcess, RabbitNode,
};

const TOKEN_ENV: &str = "PUSHER_BACKLOG_TOKEN";
/// Upper bound for each phase (never asserted as a timing).
const PHASE: Duration = Duration::from_secs(120);

fn block<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

/// Inserts tariffs `first..first + count`, one transaction each.
fn insert_tariffs(db: &MariaDb, first: usize, count: usize) {
    let mut script = String::from("SET time_zone = '+00:00';\nUSE ocpi;\n");
    for i in first..first + count {
        script.push_str(&format!(
            "INSERT INTO tariffs (country_code, party_id, id, currency, type, elements) VALUES \
             ('NL', 'EXA', 'BT{i:04}', 'EUR', 'REGULAR', '[{{\"price_components\": [{{\"type\": \
             \"ENERGY\", \"price\": 0.30, \"step_size\": 1}}]}}]');\n"
        ));
    }
    block(|| db.exec(&script));
}

/// Waits until `done` holds, failing with `what` and the logs after [`PHASE`].
async fn wait_until(what: &str, logs: impl Fn() -> String, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + PHASE;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {PHASE:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_down_past_its_backlog_limit_is_cut_off_and_re_synced_when_back() {
    let db = block(MariaDb::start);
    let schema_path = system_tests::workspace_root().join("config/ocpi-example/schema.sql");
    let schema = std::fs::read_to_string(&schema_path).expect("the example schema");
    let (ddl, _) = schema.split_once("-- Seed data").expect("a seed data line");
    block(|| db.exec(&format!("SET sql_log_bin = 0;\n{ddl}")));

    let cut = OcpiPartner::start(PartnerOptions::v221()).await;
    let other = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    let mut cut_entry = partner_entry("cut", &cut, TOKEN_ENV);
    cut_entry.backlog_limit = Some(30);
    cut_entry.prefetch = 20;
    cut_entry.down_after_secs = 3;
    // `pusher partners` reads the cut-off marker where the running pusher keeps it.
    let state_dir = system_tests::util::fresh_dir("pusher-backlog-state");
    let cfg = pusher_config(&url)
        .with(|c| c.state_dir = Some(state_dir.display().to_string()))
        .partner(cut_entry)
        .partner(partner_entry("other", &other, TOKEN_ENV));
    let _names = BrokerCleanup::of_pusher(&url, &cfg);
    let env = vec![(TOKEN_ENV.to_string(), cut.options().token.clone())];
    assert_eq!(cut.options().token, other.options().token);
    setup_queues(&cfg, &env_refs(&env));
    let bridge = BridgeProcess::start(&syncing_bridge_toml(
        &db,
        &url,
        (&cfg.exchange, &cfg.queue_prefix),
        "start",
    ));
    let mut pusher = PusherProcess::start_with_env(&cfg.to_toml(), &env_refs(&env));
    let logs = || {
        format!(
            "--- pusher ---\n{}\n--- bridge ---\n{}",
            pusher.log_tail(40),
            bridge.log_tail(20)
        )
    };

    // `cut` goes down; 100 tariffs pile up in its queue.
    cut.go_down().await;
    insert_tariffs(&db, 0, 100);
    wait_until("partner `cut` cut off", &logs, async || {
        pusher.log().contains("partner CUT OFF")
    })
    .await;
    let rows = partners_json(&cfg, &env).await;
    assert!(
        row(&rows, "cut")["cut_off"].is_string() && row(&rows, "other")["cut_off"].is_null(),
        "`pusher partners --json` does not show `cut` (only) cut off: {rows:#?}"
    );
    let waiting = queue_len(&url, &cfg.queue("cut")).await;

    // Changes after the cut-off reach `other` only.
    insert_tariffs(&db, 100, 60);
    wait_until("partner `other` equal to the database", &logs, async || {
        block(|| differences(&db, "ocpi", &other)).is_empty()
    })
    .await;
    let after = queue_len(&url, &cfg.queue("cut")).await;
    assert!(
        after <= waiting,
        "the cut-off queue still receives changes: {waiting} messages at the cut-off, {after} \
         after 60 more changes\n{}",
        logs()
    );

    // Back: what waited arrives, then the re-sync brings it up to date.
    cut.come_back().await;
    wait_until(
        "partner `cut` re-synced to the database",
        &logs,
        async || block(|| differences(&db, "ocpi", &cut)).is_empty(),
    )
    .await;
    assert!(
        pusher.log().contains("re-sync requested"),
        "no re-sync was requested\n{}",
        logs()
    );
    let rows = partners_json(&cfg, &env).await;
    assert!(
        row(&rows, "cut")["cut_off"].is_null(),
        "`cut` still shown cut off after its re-sync: {rows:#?}"
    );
    for id in ["cut", "other"] {
        assert_eq!(
            queue_len(&url, &cfg.parking_queue(id)).await,
            0,
            "messages parked for {id}\n{}",
            logs()
        );
    }
    assert!(block(|| differences(&db, "ocpi", &other)).is_empty());
    pusher.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_whose_waiting_bytes_reach_backlog_limit_bytes_is_cut_off() {
    let node = block(RabbitNode::start_with_management);
    let url = node.amqp_url();
    let big = OcpiPartner::start(PartnerOptions::v221()).await;
    let mut entry = partner_entry("big", &big, TOKEN_ENV);
    entry.backlog_limit = Some(0);
    entry.backlog_limit_bytes = Some(10_000);
    entry.down_after_secs = 3;
    let state_dir = system_tests::util::fresh_dir("pusher-backlog-bytes-state");
    let cfg = pusher_config(&url)
        .with(|c| {
            c.state_dir = Some(state_dir.display().to_string());
            c.management_url = Some(node.management_url());
        })
        .partner(entry);
    let env = vec![(TOKEN_ENV.to_string(), big.options().token.clone())];
    setup_queues(&cfg, &env_refs(&env));
    big.go_down().await;
    let mut pusher = PusherProcess::start_with_env(&cfg.to_toml(), &env_refs(&env));
    let changes: Vec<_> = (0..60u32)
        .map(|i| tariff_insert(&format!("BB{i:03}"), 1, u64::from(i) + 1))
        .collect();
    publish_messages(&url, &cfg.exchange, &changes).await;

    let logs = || pusher.log_tail(40);
    wait_until("partner `big` cut off for its bytes", &logs, async || {
        pusher.log().contains("partner CUT OFF")
    })
    .await;
    let rows = partners_json(&cfg, &env).await;
    let shown = row(&rows, "big")["cut_off"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        shown.contains("bytes (backlog_limit_bytes 10000)"),
        "`pusher partners` does not say `big` was cut off for its bytes: {rows:#?}\n{}",
        logs()
    );
    assert!(
        queue_len(&url, &cfg.queue("big")).await >= 1,
        "what waited must stay in the queue"
    );
    pusher.terminate();
}
