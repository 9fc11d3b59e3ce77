//! Several pushers side by side, and what operators see and get told: take-over after a crash
//! (redelivered runs, also on a broker that pauses inside them), CDRs across a hand-over, fair
//! spread of partners, `pusher partners`, a partner missing a module, loud configuration errors.
//!
//! Every test uses its own exchange, queue prefix and presence exchange (see `pusher_config`),
//! so tests run side by side on the shared broker.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use change_message::Message;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::Value;
use system_tests::changes::{
    cdr_insert, stored_tariff_version as stored_version, tariff_insert, tariff_puts, tariff_update,
    versions_per_tariff,
};
use system_tests::chaos::verdict::{duplicate_cdrs, parked};
use system_tests::pusher_cli::{
    env_refs, partners_json, pusher_cmd, row, settled_owners, wait_for_rows, ACTIVE,
};
use system_tests::stalling_proxy::{StallingProxy, Stalls};
use system_tests::util::send_signal;
use system_tests::{
    delete_exchange, delete_queue, logs_of, partner_entry, publish_messages, pusher_config,
    queue_len, shared_amqp_url, Mode, OcpiPartner, PartnerOptions, PusherConfig, PusherProcess,
};

/// Every double of these tests is a 2.2.1 receiver expecting the same token.
const TOKEN_ENV: &str = "PUSHER_MULTI_TOKEN";

// ---- helpers -----------------------------------------------------------------------------------

fn env_of(partner: &OcpiPartner) -> Vec<(String, String)> {
    vec![(TOKEN_ENV.to_string(), partner.options().token.clone())]
}

fn named(cfg: &PusherConfig, name: &str) -> PusherConfig {
    cfg.clone().with(|c| c.name = name.to_string())
}

fn start(cfg: &PusherConfig, env: &[(String, String)]) -> PusherProcess {
    PusherProcess::start_with_env(&cfg.to_toml(), &env_refs(env))
}

async fn setup(cfg: &PusherConfig, env: &[(String, String)]) {
    let (status, out) = pusher_cmd(cfg, &["setup"], env).await;
    assert!(status.success(), "`pusher setup` failed ({status}):\n{out}");
}

fn load_of(owners: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut load = BTreeMap::new();
    for owner in owners.values() {
        *load.entry(owner.clone()).or_insert(0) += 1;
    }
    load
}

fn tariff_id(i: usize) -> String {
    format!("T{i:03}")
}

// ---- 1. take-over after a crash ----------------------------------------------------------------

const TARIFFS: usize = 200;
const VERSIONS: u32 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_active_pusher_mid_stream_lets_the_other_finish_in_order_with_nothing_lost_or_parked(
) {
    let t0 = Instant::now();
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    let mut env = env_of(&partner);
    // Per-call debug lines in the logs (the harness sets RUST_LOG=info otherwise).
    env.push((
        "RUST_LOG".into(),
        "info,pusher=debug,pusher::delivery=trace".into(),
    ));
    let base = pusher_config(&url).partner(partner_entry("p1", &partner, TOKEN_ENV));
    setup(&base, &env).await;
    let mut a = start(&named(&base, "pusher-a"), &env);
    let mut b = start(&named(&base, "pusher-b"), &env);

    let rows = wait_for_rows(
        &base,
        &env,
        Duration::from_secs(60),
        "one pusher consuming p1",
        &[&a, &b],
        |rows| settled_owners(rows).is_some(),
    )
    .await;
    let owner = row(&rows, "p1")["active_pusher"]
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
    eprintln!("[{:?}] {owner} consumes p1", t0.elapsed());

    // 200 inserts, then 9 rounds of updates of every tariff: 2,000 messages, all up front. A
    // slow partner keeps the stream in progress when the active pusher dies.
    let mut messages: Vec<Message> = Vec::new();
    let mut seq = 0u64;
    for version in 1..=VERSIONS {
        for i in 0..TARIFFS {
            seq += 1;
            let id = tariff_id(i);
            messages.push(if version == 1 {
                tariff_insert(&id, version, seq)
            } else {
                tariff_update(&id, version, seq)
            });
        }
    }
    partner.set_mode(Mode::Slow(Duration::from_millis(40)));
    publish_messages(&url, &base.exchange, &messages).await;
    eprintln!("[{:?}] published {} messages", t0.elapsed(), messages.len());

    let deadline = Instant::now() + Duration::from_secs(60);
    while tariff_puts(&partner.requests()).len() < 250 {
        assert!(
            Instant::now() < deadline,
            "the active pusher did not start delivering: {} tariff PUTs\n{}",
            tariff_puts(&partner.requests()).len(),
            logs_of(&[active, standby])
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    active.kill9();
    let puts_at_kill = tariff_puts(&partner.requests()).len();
    let newest_at_kill = (0..TARIFFS)
        .filter(|i| stored_version(&partner, &tariff_id(*i)) == Some(VERSIONS))
        .count();
    eprintln!(
        "[{:?}] killed {owner} after {puts_at_kill} PUTs; {newest_at_kill} tariffs at the newest version",
        t0.elapsed()
    );
    assert!(
        newest_at_kill < TARIFFS,
        "the stream was already complete when the active pusher was killed: this test proves \
         nothing; make the partner slower"
    );

    // The other one takes over.
    let deadline = Instant::now() + Duration::from_secs(60);
    while standby.log().matches(ACTIVE).count() <= standby_activations {
        assert!(
            Instant::now() < deadline,
            "the standby pusher did not take p1 over after the active one was killed\n{}",
            logs_of(&[standby, active])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("[{:?}] the standby consumes p1", t0.elapsed());
    partner.clear_mode();

    // Everything arrives, newest state per tariff, queue empty.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let behind: Vec<String> = (0..TARIFFS)
            .map(tariff_id)
            .filter(|id| stored_version(&partner, id) != Some(VERSIONS))
            .collect();
        let ready = queue_len(&url, &base.queue("p1")).await;
        if behind.is_empty() && ready == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the take-over, {} tariffs are not at version {VERSIONS} (first: {:?}) and {ready} \
             messages are ready\n{}",
            behind.len(),
            behind.iter().take(5).collect::<Vec<_>>(),
            logs_of(&[standby, active])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = wait_for_rows(
        &base,
        &env,
        Duration::from_secs(60),
        "p1 drained: nothing ready or unacked",
        &[standby],
        |rows| {
            let r = row(rows, "p1");
            r["ready"] == 0 && r["unacked"] == 0
        },
    )
    .await;
    eprintln!("[{:?}] drained", t0.elapsed());

    let requests = partner.requests();
    let puts = tariff_puts(&requests).len();
    assert!(
        puts > puts_at_kill,
        "no tariff PUT after the kill, yet the stream was incomplete"
    );
    // Per-record order: a tariff's versions never go back, across the take-over.
    let regressions: Vec<String> = versions_per_tariff(&requests)
        .into_iter()
        .filter(|(_, v)| v.windows(2).any(|w| w[1] < w[0]))
        .map(|(id, v)| format!("{id}: {v:?}"))
        .collect();
    let parked = queue_len(&url, &base.parking_queue("p1")).await;
    assert!(
        regressions.is_empty() && parked == 0 && row(&rows, "p1")["parked"] == 0,
        "per-record order broken across the take-over: {} tariffs got an older version after a \
         newer one (PUT versions in arrival order; the partner rejects the older ones with OCPI \
         2001), {parked} messages parked. First ones:\n{}\nstandby log:\n{}",
        regressions.len(),
        regressions
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        standby
            .log()
            .lines()
            .filter(|l| l.contains(ACTIVE) || l.contains("parked") || l.contains("older"))
            .take(6)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let status = standby.terminate();
    assert!(
        status.success(),
        "exit {status:?}\n{}",
        standby.log_tail(40)
    );
    eprintln!("[{:?}] done ({puts} tariff PUTs)", t0.elapsed());
}

/// Publishes `run` changes of one tariff and has `a` hold them all unacked while it sends
/// version 1 and then the newest to a slow partner; then kills `a`. Returns how many messages
/// came back to the queue, redelivered.
async fn kill_a_pusher_holding_a_run(
    url: &str,
    base: &PusherConfig,
    partner: &OcpiPartner,
    a: &mut PusherProcess,
    id: &str,
    run: u32,
) -> u32 {
    let messages: Vec<Message> = (1..=run)
        .map(|v| {
            if v == 1 {
                tariff_insert(id, v, u64::from(v))
            } else {
                tariff_update(id, v, u64::from(v))
            }
        })
        .collect();
    partner.set_mode(Mode::Slow(Duration::from_secs(2)));
    publish_messages(url, &base.exchange, &messages).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_version(partner, id) != Some(run) {
        assert!(
            Instant::now() < deadline,
            "the first pusher did not deliver version {run}: PUT versions {:?}\n{}",
            versions_per_tariff(&partner.requests()),
            a.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill9();
    partner.clear_mode();
    let redelivered = queue_len(url, &base.queue("p1")).await;
    assert!(
        redelivered > 20,
        "only {redelivered} messages came back when the first pusher was killed (its acks went \
         out first): this test proves nothing"
    );
    redelivered
}

/// Starts a pusher under `base`'s exchange as `pusher-a` and waits until it consumes p1.
async fn first_owner(base: &PusherConfig, env: &[(String, String)]) -> PusherProcess {
    let a = start(&named(base, "pusher-a"), env);
    wait_for_rows(
        base,
        env,
        Duration::from_secs(60),
        "pusher-a consuming p1",
        &[&a],
        |rows| settled_owners(rows).is_some(),
    )
    .await;
    a
}

/// One tariff's run of changes on partner p1, and where it is pushed.
#[derive(Clone, Copy)]
struct RunScene<'a> {
    url: &'a str,
    base: &'a PusherConfig,
    env: &'a [(String, String)],
    partner: &'a OcpiPartner,
    id: &'a str,
    run: u32,
}

/// After `b` took p1 over and drained it: the tariff's PUTs never went back, it ends at `run`,
/// nothing was parked, and `b` widened its window (else the case was not exercised).
async fn assert_run_sent_in_order(scene: &RunScene<'_>, b: &PusherProcess, redelivered: u32) {
    let RunScene {
        url,
        base,
        env,
        partner,
        id,
        run,
    } = *scene;
    wait_for_rows(
        base,
        env,
        Duration::from_secs(120),
        "p1 drained by pusher-b",
        &[b],
        |rows| {
            let r = row(rows, "p1");
            r["active_pusher"] == "pusher-b" && r["ready"] == 0 && r["unacked"] == 0
        },
    )
    .await;
    let versions = versions_per_tariff(&partner.requests())
        .remove(id)
        .unwrap_or_default();
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "tariff {id} went back to an older version after the take-over (PUT versions in arrival \
         order: {versions:?}; {redelivered} redelivered)\n{}",
        b.log_tail(40)
    );
    assert_eq!(stored_version(partner, id), Some(run));
    assert_eq!(queue_len(url, &base.parking_queue("p1")).await, 0);
    assert!(
        b.log().contains("wider window"),
        "pusher-b never widened its window, so the case was not exercised:\n{}",
        b.log_tail(40)
    );
}

/// On broker `url`: a first owner of p1 holding `run` changes of one tariff is killed, the
/// successor (as `successor` configures `pusher-b`) takes over, and the run must reach the
/// partner in order (see [`assert_run_sent_in_order`]). Returns the successor, still running.
async fn take_over_a_killed_run(
    url: &str,
    run: u32,
    successor: impl FnOnce(PusherConfig) -> PusherConfig,
) -> PusherProcess {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let env = env_of(&partner);
    let base = pusher_config(url).partner(partner_entry("p1", &partner, TOKEN_ENV));
    setup(&base, &env).await;
    let mut a = first_owner(&base, &env).await;
    let id = tariff_id(0);
    let redelivered = kill_a_pusher_holding_a_run(url, &base, &partner, &mut a, &id, run).await;
    let b = start(&successor(named(&base, "pusher-b")), &env);
    let scene = RunScene {
        url,
        base: &base,
        env: &env,
        partner: &partner,
        id: &id,
        run,
    };
    assert_run_sent_in_order(&scene, &b, redelivered).await;
    b
}

/// The stopped pusher's redelivered run must have arrived whole before the next owner sends any
/// record of it, also when the next owner's prefetch window is smaller than the run (it widens
/// its window rather than sending the first 20 of 50 changes of a tariff the partner already
/// holds at version 50).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successor_with_a_smaller_prefetch_waits_for_the_whole_redelivered_run() {
    let url = shared_amqp_url();
    let mut b = take_over_a_killed_run(&url, 50, |c| c.with(|c| c.partners[0].prefetch = 20)).await;
    b.terminate();
}

/// A broker that pauses for longer than the 200 ms after which the next owner asks the queue
/// whether its redelivered run is complete: the successor (prefetch 10, so the 200-change run
/// comes in 20 windows) reaches the broker through a proxy that stalls for 400 ms after every
/// 3 KB the broker sends, so the pauses fall inside its windows. The queue's answer comes after
/// the stalled deliveries, and the broker still has redelivered messages ready, so the hold
/// stays closed until the whole run has arrived, and the partner never goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_pausing_for_longer_than_the_quiet_period_does_not_end_a_redelivered_run_early() {
    let node = tokio::task::block_in_place(system_tests::RabbitNode::start);
    let stalls = Stalls {
        every_bytes: 3 * 1024,
        pause: Duration::from_millis(400),
        at_most: 40,
    };
    let proxy = StallingProxy::start(node.port(), stalls).await;
    let through_proxy = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port());
    let mut b = take_over_a_killed_run(&node.amqp_url(), 200, |c| {
        c.with(|c| {
            c.broker_url = through_proxy;
            c.partners[0].prefetch = 10;
            c.partners[0].concurrency = 4;
        })
    })
    .await;
    eprintln!(
        "{} stalls of {:?}; pusher-b widened its window {} times",
        proxy.stalls(),
        stalls.pause,
        b.log().matches("wider window").count()
    );
    assert!(
        proxy.stalls() > 5,
        "the proxy stalled only {} times: this test proves nothing",
        proxy.stalls()
    );
    b.terminate();
}

/// A partner handed from one live pusher to another while its CDR POSTs hang: the old owner
/// abandons them at the end of its grace period (their messages return to the queue), and the
/// new owner, which opened the shared ledger before those attempts were written, must see them
/// and park the CDRs as of unknown outcome rather than POST them a second time. The partner
/// that stays keeps its calls and gets every CDR once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_handed_over_with_cdr_posts_in_flight_never_gets_a_cdr_twice() {
    const CDRS: usize = 4;
    const HANG: Duration = Duration::from_secs(12);
    let doubles = [
        OcpiPartner::start(PartnerOptions::v221()).await,
        OcpiPartner::start(PartnerOptions::v221()).await,
    ];
    let url = shared_amqp_url();
    let env = env_of(&doubles[0]);
    let state_dir = system_tests::util::fresh_dir("shared-state");
    let base = pusher_config(&url)
        .partner(partner_entry("p1", &doubles[0], TOKEN_ENV))
        .partner(partner_entry("p2", &doubles[1], TOKEN_ENV))
        .with(|c| {
            c.state_dir = Some(state_dir.display().to_string());
            c.shutdown_grace_ms = 1000;
            for partner in &mut c.partners {
                partner.request_timeout_ms = HANG.as_millis() as u64 + 10_000;
            }
        });
    setup(&base, &env).await;
    let a = start(&named(&base, "pusher-a"), &env);
    let owned_by = |load: &'static [(&'static str, usize)]| {
        move |rows: &[Value]| {
            settled_owners(rows).is_some_and(|owners| {
                owners.len() == 2
                    && load_of(&owners) == load.iter().map(|(n, k)| (n.to_string(), *k)).collect()
            })
        }
    };
    wait_for_rows(
        &base,
        &env,
        Duration::from_secs(60),
        "pusher-a owning both partners",
        &[&a],
        owned_by(&[("pusher-a", 2)]),
    )
    .await;

    // Every POST hangs for far longer than the grace period (1 s) and than pusher-b takes to
    // join, and is answered within the request timeout.
    for double in &doubles {
        double.set_mode(Mode::Slow(HANG));
    }
    let cdrs: Vec<Message> = (0..CDRS)
        .map(|i| cdr_insert(&format!("CDR{i}"), i as u64 + 1))
        .collect();
    publish_messages(&url, &base.exchange, &cdrs).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while doubles.iter().any(|d| d.state(true).cdrs.len() < CDRS) {
        assert!(
            Instant::now() < deadline,
            "pusher-a did not POST every CDR to both partners\n{}",
            a.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // pusher-b joins: one partner moves to it while pusher-a's POSTs to it hang.
    let b = start(&named(&base, "pusher-b"), &env);
    let rows = wait_for_rows(
        &base,
        &env,
        Duration::from_secs(60),
        "one partner on each pusher",
        &[&a, &b],
        owned_by(&[("pusher-a", 1), ("pusher-b", 1)]),
    )
    .await;
    let moved = if row(&rows, "p1")["active_pusher"] == "pusher-b" {
        0
    } else {
        1
    };
    let stayed = 1 - moved;
    for double in &doubles {
        double.clear_mode();
    }
    wait_for_rows(
        &base,
        &env,
        Duration::from_secs(60),
        "both queues drained",
        &[&a, &b],
        |rows| {
            ["p1", "p2"].iter().all(|id| {
                let r = row(rows, id);
                r["ready"] == 0 && r["unacked"] == 0
            })
        },
    )
    .await;

    let all: BTreeSet<String> = (0..CDRS).map(|i| format!("CDR{i}")).collect();
    for (i, double) in doubles.iter().enumerate() {
        let id = format!("p{}", i + 1);
        let posted = double.state(true).cdrs;
        let (unknown_outcome, other_parked) = parked(&base, &env, &id).await;
        assert_eq!(
            duplicate_cdrs(&posted),
            0,
            "{id} got a CDR twice ({}): POSTed ids {:?}; parked with an unknown outcome: \
             {unknown_outcome:?}\npusher-b:\n{}",
            if i == moved {
                "the partner that moved"
            } else {
                "the partner that stayed"
            },
            posted.iter().map(|c| c["id"].clone()).collect::<Vec<_>>(),
            b.log_tail(40)
        );
        assert!(
            other_parked.is_empty(),
            "{id}: parked for another reason: {other_parked:?}"
        );
        if i == stayed {
            assert!(
                unknown_outcome.is_empty(),
                "{id} stayed with pusher-a, yet {unknown_outcome:?} were parked"
            );
        } else {
            assert_eq!(
                unknown_outcome,
                all,
                "{id} moved while pusher-a's POSTs of every CDR hung: pusher-b must park each \
                 one as of unknown outcome (unless the POSTs were answered before the hand-over, \
                 {HANG:?} after they began: then the case was not exercised)\npusher-b:\n{}",
                b.log_tail(40)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&state_dir);
}

// ---- 2. fair spread ----------------------------------------------------------------------------

const SPREAD_PARTNERS: [&str; 4] = ["p1", "p2", "p3", "p4"];
const PER_BATCH: usize = 10;

/// Batch `k`: inserts of tariffs `B{k}-0..` and an update of tariff `COMMON` to version `k + 1`.
fn spread_batch(k: u32, seq: &mut u64) -> Vec<Message> {
    let mut out = Vec::new();
    for i in 0..PER_BATCH {
        *seq += 1;
        out.push(tariff_insert(&format!("B{k}-{i}"), 1, *seq));
    }
    *seq += 1;
    out.push(if k == 0 {
        tariff_insert("COMMON", 1, *seq)
    } else {
        tariff_update("COMMON", k + 1, *seq)
    });
    out
}

fn owners_with<'a>(load: &'a [(&'a str, usize)]) -> impl Fn(&[Value]) -> bool + 'a {
    move |rows: &[Value]| {
        let Some(owners) = settled_owners(rows) else {
            return false;
        };
        let got = load_of(&owners);
        owners.len() == SPREAD_PARTNERS.len()
            && got.len() == load.len()
            && load
                .iter()
                .all(|(name, n)| got.get(*name).copied() == Some(*n))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_partners_spread_two_and_two_move_to_the_survivor_and_back_without_losing_messages() {
    let t0 = Instant::now();
    let url = shared_amqp_url();
    let mut doubles = Vec::new();
    for _ in SPREAD_PARTNERS {
        doubles.push(OcpiPartner::start(PartnerOptions::v221()).await);
    }
    let env = env_of(&doubles[0]);
    let mut base = pusher_config(&url);
    for (id, double) in SPREAD_PARTNERS.iter().zip(&doubles) {
        base = base.partner(partner_entry(id, double, TOKEN_ENV));
    }
    setup(&base, &env).await;
    let mut a = start(&named(&base, "pusher-a"), &env);
    let b = start(&named(&base, "pusher-b"), &env);

    wait_for_rows(
        &base,
        &env,
        Duration::from_secs(60),
        "2 partners on each pusher",
        &[&a, &b],
        owners_with(&[("pusher-a", 2), ("pusher-b", 2)]),
    )
    .await;
    eprintln!("[{:?}] 2/2", t0.elapsed());

    let mut seq = 0;
    let mut batches = 0u32;
    let mut publish = |seq: &mut u64| {
        let batch = spread_batch(batches, seq);
        batches += 1;
        batch
    };
    publish_messages(&url, &base.exchange, &publish(&mut seq)).await;

    // SIGTERM pusher-a; publish while it stops and after.
    let pid = a.pid().expect("pusher-a runs");
    assert!(send_signal(pid, "TERM"), "cannot signal pusher-a");
    publish_messages(&url, &base.exchange, &publish(&mut seq)).await;
    let status = a
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("pusher-a ignored SIGTERM\n{}", a.log_tail(40)));
    assert!(
        status.success(),
        "pusher-a exit {status:?}\n{}",
        a.log_tail(40)
    );
    publish_messages(&url, &base.exchange, &publish(&mut seq)).await;
    wait_for_rows(
        &base,
        &env,
        Duration::from_secs(60),
        "all 4 partners on pusher-b",
        &[&b, &a],
        owners_with(&[("pusher-b", 4)]),
    )
    .await;
    eprintln!("[{:?}] 0/4", t0.elapsed());

    // pusher-a comes back; publish during the move and after.
    a.restart();
    publish_messages(&url, &base.exchange, &publish(&mut seq)).await;
    wait_for_rows(
        &base,
        &env,
        Duration::from_secs(60),
        "2 partners on each pusher again",
        &[&a, &b],
        owners_with(&[("pusher-a", 2), ("pusher-b", 2)]),
    )
    .await;
    eprintln!("[{:?}] 2/2 again", t0.elapsed());
    publish_messages(&url, &base.exchange, &publish(&mut seq)).await;

    // Every message reached every partner.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut missing = Vec::new();
        for (id, double) in SPREAD_PARTNERS.iter().zip(&doubles) {
            for k in 0..batches {
                for i in 0..PER_BATCH {
                    let tariff = format!("B{k}-{i}");
                    if double.object("tariffs", &["NL", "EXA", &tariff]).is_none() {
                        missing.push(format!("{id}:{tariff}"));
                    }
                }
            }
            if stored_version(double, "COMMON") != Some(batches) {
                missing.push(format!(
                    "{id}:COMMON at {:?}, not {batches}",
                    stored_version(double, "COMMON")
                ));
            }
            if queue_len(&url, &base.queue(id)).await != 0 {
                missing.push(format!("{id}: queue not empty"));
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "messages published during the moves were not all delivered: {} missing, e.g. {:?}\n{}",
            missing.len(),
            missing.iter().take(10).collect::<Vec<_>>(),
            logs_of(&[&a, &b])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in SPREAD_PARTNERS {
        assert_eq!(
            queue_len(&url, &base.parking_queue(id)).await,
            0,
            "partner {id}: messages were parked\n{}",
            logs_of(&[&a, &b])
        );
    }
    eprintln!("[{:?}] all delivered", t0.elapsed());
    let mut b = b;
    for p in [&mut a, &mut b] {
        let status = p.terminate();
        assert!(status.success(), "exit {status:?}\n{}", p.log_tail(40));
    }
}

// ---- 3. `pusher partners` ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_without_a_running_pusher_shows_the_backlog_unassigned_in_json_and_as_a_table() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    let env = env_of(&partner);
    let cfg = pusher_config(&url)
        .partner(partner_entry("p1", &partner, TOKEN_ENV))
        .partner(partner_entry("p2", &partner, TOKEN_ENV));
    setup(&cfg, &env).await;
    const N: usize = 7;
    let messages: Vec<Message> = (0..N)
        .map(|i| tariff_insert(&tariff_id(i), 1, i as u64 + 1))
        .collect();
    publish_messages(&url, &cfg.exchange, &messages).await;

    let rows = partners_json(&cfg, &env).await;
    assert_eq!(rows.len(), 2, "one row per partner: {rows:#?}");
    for id in ["p1", "p2"] {
        let r = row(&rows, id);
        assert_eq!(r["ready"], N, "{id}: {r:#}");
        assert!(r["active_pusher"].is_null(), "{id}: {r:#}");
        assert_eq!(r["parked"], 0, "{id}: {r:#}");
        assert_eq!(r["queue"], cfg.queue(id), "{id}: {r:#}");
    }

    let (status, out) = pusher_cmd(&cfg, &["partners"], &env).await;
    assert!(
        status.success(),
        "`pusher partners` failed ({status}):\n{out}"
    );
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        3,
        "a header line and one line per partner:\n{out}"
    );
    assert!(
        lines[0].starts_with("PARTNER") && lines[0].contains("READY"),
        "header line:\n{out}"
    );
    for (line, id) in lines[1..].iter().zip(["p1", "p2"]) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.first().copied(), Some(id), "partner line:\n{out}");
        assert_eq!(cells.get(1).copied(), Some("7"), "READY column:\n{out}");
    }
}

/// A started pusher that has discovered `partner` and consumes it.
async fn running_pusher(cfg: &PusherConfig, env: &[(String, String)]) -> PusherProcess {
    let mut pusher = start(cfg, env);
    assert!(
        pusher
            .wait_for_log_async(ACTIVE, Duration::from_secs(60))
            .await,
        "the pusher did not start consuming\n{}",
        pusher.log_tail(40)
    );
    pusher
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_shows_a_partner_answering_401_to_calls_as_paused_with_a_reason_and_nothing_parked(
) {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    let env = env_of(&partner);
    let cfg = pusher_config(&url)
        .partner(partner_entry("p1", &partner, TOKEN_ENV))
        .with(|c| c.name = "pusher-401".into());
    setup(&cfg, &env).await;
    let mut pusher = running_pusher(&cfg, &env).await;
    partner.set_mode(Mode::Http(401));
    let messages: Vec<Message> = (0..3)
        .map(|i| tariff_insert(&tariff_id(i), 1, i as u64 + 1))
        .collect();
    publish_messages(&url, &cfg.exchange, &messages).await;

    let rows = wait_for_rows(
        &cfg,
        &env,
        Duration::from_secs(60),
        "p1 paused with its messages held by its pusher, none returned to the queue",
        &[&pusher],
        |rows| {
            let r = row(rows, "p1");
            r["state"] == "paused"
                && r["ready"] == 0
                && r["unacked"].as_u64().is_some_and(|held| held >= 1)
        },
    )
    .await;
    let r = row(&rows, "p1");
    assert_eq!(r["active_pusher"], "pusher-401", "{r:#}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("401"),
        "the reason should say why (HTTP 401): {r:#}"
    );
    assert_eq!(
        r["parked"], 0,
        "a partner-level failure parks nothing: {r:#}"
    );
    assert_eq!(queue_len(&url, &cfg.parking_queue("p1")).await, 0);
    assert!(pusher.is_running());
    let status = pusher.terminate();
    assert!(status.success(), "exit {status:?}\n{}", pusher.log_tail(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_shows_a_partner_refusing_us_with_401_from_the_start_as_paused_with_a_reason() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    partner.set_mode(Mode::Http(401));
    let url = shared_amqp_url();
    let env = env_of(&partner);
    let cfg = pusher_config(&url)
        .partner(partner_entry("p1", &partner, TOKEN_ENV))
        .with(|c| c.name = "pusher-401".into());
    setup(&cfg, &env).await;
    let messages: Vec<Message> = (0..3)
        .map(|i| tariff_insert(&tariff_id(i), 1, i as u64 + 1))
        .collect();
    publish_messages(&url, &cfg.exchange, &messages).await;
    let mut pusher = start(&cfg, &env);
    assert!(
        pusher
            .wait_for_log_async("cannot push to partner", Duration::from_secs(60))
            .await,
        "no error about the refusing partner\n{}",
        pusher.log_tail(40)
    );

    // Give the status a few announcements to settle, then it must say "paused".
    let rows = wait_for_rows(
        &cfg,
        &env,
        Duration::from_secs(30),
        "p1 with a reason and its messages waiting",
        &[&pusher],
        |rows| {
            let r = row(rows, "p1");
            r["active_pusher"] == "pusher-401" && r["reason"].is_string() && r["ready"] == 3
        },
    )
    .await;
    let r = row(&rows, "p1");
    assert_eq!(
        r["state"], "paused",
        "a partner answering 401 is refusing us: `pusher partners` must show it paused (as the \
         configuration says: partner-level failures pause at once), not {}: {r:#}",
        r["state"]
    );
    assert!(
        r["reason"].as_str().unwrap_or_default().contains("401"),
        "{r:#}"
    );
    assert_eq!(r["parked"], 0, "{r:#}");
    assert!(pusher.is_running());
    let status = pusher.terminate();
    assert!(status.success(), "exit {status:?}\n{}", pusher.log_tail(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_counts_the_messages_parked_after_a_rejection() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    let env = env_of(&partner);
    let cfg = pusher_config(&url).partner(partner_entry("p1", &partner, TOKEN_ENV));
    setup(&cfg, &env).await;
    let mut pusher = running_pusher(&cfg, &env).await;
    // Discovery is done: from now on every call is rejected (HTTP 200, OCPI 2001).
    partner.set_mode(Mode::Ocpi(2001));
    const N: usize = 4;
    let messages: Vec<Message> = (0..N)
        .map(|i| tariff_insert(&tariff_id(i), 1, i as u64 + 1))
        .collect();
    publish_messages(&url, &cfg.exchange, &messages).await;

    let rows = wait_for_rows(
        &cfg,
        &env,
        Duration::from_secs(60),
        "4 parked, nothing ready",
        &[&pusher],
        |rows| {
            let r = row(rows, "p1");
            r["parked"] == N && r["ready"] == 0
        },
    )
    .await;
    assert_eq!(row(&rows, "p1")["state"], "consuming", "{rows:#?}");
    assert_eq!(queue_len(&url, &cfg.parking_queue("p1")).await, N as u32);
    assert_eq!(
        tariff_puts(&partner.requests()).len(),
        N,
        "each rejected message was sent once, then parked"
    );
    let status = pusher.terminate();
    assert!(status.success(), "exit {status:?}\n{}", pusher.log_tail(40));
}

// ---- 4. a partner missing a configured module --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_without_a_configured_module_is_not_consumed_and_the_error_names_the_module() {
    let partner = OcpiPartner::start(PartnerOptions {
        modules: vec!["locations", "sessions", "cdrs", "tokens"],
        ..PartnerOptions::v221()
    })
    .await;
    let url = shared_amqp_url();
    let env = env_of(&partner);
    let cfg = pusher_config(&url).partner(partner_entry("p1", &partner, TOKEN_ENV));
    setup(&cfg, &env).await;
    const N: u32 = 5;
    let messages: Vec<Message> = (0..N as usize)
        .map(|i| tariff_insert(&tariff_id(i), 1, i as u64 + 1))
        .collect();
    publish_messages(&url, &cfg.exchange, &messages).await;
    let mut pusher = start(&cfg, &env);

    assert!(
        pusher
            .wait_for_log_async("cannot push to partner", Duration::from_secs(60))
            .await,
        "no error about the partner\n{}",
        pusher.log_tail(40)
    );
    // A few more discovery rounds (probe interval 1 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let log = pusher.log();
    let error = log
        .lines()
        .find(|l| l.contains("cannot push to partner"))
        .expect("seen above");
    assert!(
        error.contains("tariffs") && error.contains("ERROR"),
        "the error must name the missing module \"tariffs\": {error}"
    );
    assert!(
        pusher.is_running(),
        "the pusher must not stop for one partner's missing module\n{}",
        pusher.log_tail(40)
    );
    assert!(
        !log.contains(ACTIVE),
        "the pusher consumed the partner although a module is missing\n{}",
        pusher.log_tail(40)
    );
    assert_eq!(
        queue_len(&url, &cfg.queue("p1")).await,
        N,
        "the messages must wait in the queue"
    );
    // `pusher partners` tells the operator why.
    let rows = partners_json(&cfg, &env).await;
    let r = row(&rows, "p1");
    assert!(
        r["reason"].as_str().unwrap_or_default().contains("tariffs") && r["ready"] == N,
        "`pusher partners` must show the missing module as the reason and the waiting messages: {r:#}"
    );
    assert!(
        partner.requests().iter().all(|r| r.method == "GET"),
        "only discovery requests expected: {:?}",
        partner
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    let status = pusher.terminate();
    assert!(status.success(), "exit {status:?}\n{}", pusher.log_tail(40));
}

// ---- 5. configuration errors are loud ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_the_token_environment_variable_exits_non_zero_naming_it() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    let missing = format!("PUSHER_MULTI_UNSET_TOKEN_{}", std::process::id());
    let cfg = pusher_config(&url).partner(partner_entry("p1", &partner, &missing));
    let (status, out) = pusher_cmd(&cfg, &["run"], &[]).await;
    assert!(
        !status.success(),
        "`pusher run` must refuse to start:\n{out}"
    );
    assert!(
        out.contains(&missing) && out.contains("not set"),
        "the message must name the variable {missing} and say it is not set:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_and_run_refuse_a_partner_queue_that_exists_with_other_arguments_and_say_how_to_fix_it(
) {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    let env = env_of(&partner);
    let cfg = pusher_config(&url).partner(partner_entry("p1", &partner, TOKEN_ENV));
    let queue = cfg.queue("p1");

    // Someone declared the partner's queue by hand: a plain classic durable queue.
    let conn = system_tests::rabbit::connect(&url).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare a classic queue");
    let _ = conn.close(200, "OK".into()).await;

    for command in ["setup", "run"] {
        let (status, out) = pusher_cmd(&cfg, &[command], &env).await;
        assert!(
            !status.success(),
            "`pusher {command}` must refuse a queue with other arguments:\n{out}"
        );
        assert!(
            out.contains(&queue) && out.contains("exists with other arguments"),
            "`pusher {command}` must say that queue {queue} exists with other arguments:\n{out}"
        );
        assert!(
            out.contains("delete"),
            "`pusher {command}` must say how to fix it (delete the queue):\n{out}"
        );
    }

    delete_queue(&url, &queue).await;
    delete_queue(&url, &cfg.parking_queue("p1")).await;
    delete_exchange(&url, &cfg.exchange).await;
    delete_exchange(&url, &cfg.presence_exchange).await;
}
