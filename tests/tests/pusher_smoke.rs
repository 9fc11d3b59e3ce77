//! The pusher's basic path: changes published to the exchange reach the partner, coalesced,
//! and the queue empties.

use std::time::{Duration, Instant};

use system_tests::changes::{tariff_insert, tariff_update};
use system_tests::{
    partner_entry, publish_messages, pusher_config, queue_len, shared_amqp_url, OcpiPartner,
    PartnerOptions, PusherProcess,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tariff_changes_reach_the_partner_and_the_queue_empties() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    let token = partner.options().token.clone();
    let cfg = pusher_config(&url).partner(partner_entry("p1", &partner, "TOKEN_P1"));
    let t0 = Instant::now();
    let env = [("TOKEN_P1", token.as_str())];
    let (status, out) = PusherProcess::run_to_exit_with_env(
        &cfg.to_toml(),
        &["setup"],
        &env,
        Duration::from_secs(60),
    );
    assert!(status.success(), "{out}");
    eprintln!("setup {:?}", t0.elapsed());
    publish_messages(
        &url,
        &cfg.exchange,
        &[
            tariff_insert("T1", 1, 1),
            tariff_update("T1", 2, 2),
            tariff_insert("T2", 1, 3),
        ],
    )
    .await;
    let mut pusher = PusherProcess::start_with_env(&cfg.to_toml(), &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t1 = partner.object("tariffs", &["NL", "EXA", "T1"]);
        let t2 = partner.object("tariffs", &["NL", "EXA", "T2"]);
        let done = t2.is_some()
            && t1.as_ref().is_some_and(|t| t.to_string().contains("2.0"))
            && queue_len(&url, &cfg.queue("p1")).await == 0;
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered; requests: {:?}\nlog:\n{}",
            partner
                .requests()
                .iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect::<Vec<_>>(),
            pusher.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("delivered {:?}", t0.elapsed());
    let status = pusher.terminate();
    eprintln!("terminated {:?}", t0.elapsed());
    assert!(status.success(), "exit {status:?}\n{}", pusher.log());
    assert!(pusher.log().contains("pusher stopped cleanly"));
}

/// A broker address that accepts connections and never answers (a half-dead broker, a firewall
/// that swallows packets after the handshake): the pusher waits for it, and a SIGTERM still
/// stops it at once and cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pusher_waiting_for_a_broker_that_never_answers_stops_on_sigterm() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a silent listener");
    let port = silent.local_addr().expect("its address").port();
    let held = std::thread::spawn(move || {
        // Accept and hold every connection without a byte in return, until the test ends.
        let mut open = Vec::new();
        for stream in silent.incoming().take(8).flatten() {
            open.push(stream);
        }
    });
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let cfg = pusher_config(&url).partner(partner_entry("p1", &partner, "TOKEN_P1"));
    let token = partner.options().token.clone();
    let env = [("TOKEN_P1", token.as_str())];
    let mut pusher = PusherProcess::start_with_env(&cfg.to_toml(), &env);
    // Long enough to be inside the AMQP handshake with the silent listener.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pusher.is_running(), "the pusher exited:\n{}", pusher.log());
    let asked = Instant::now();
    let status = tokio::task::block_in_place(|| pusher.terminate());
    assert!(status.success(), "exit {status:?}:\n{}", pusher.log());
    // Far below the watchdog's limit: the stop came through, not the last resort.
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "stopping took {:?}:\n{}",
        asked.elapsed(),
        pusher.log()
    );
    drop(held);
}
