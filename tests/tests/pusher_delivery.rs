//! The pusher's delivery behaviour, end to end: change messages published straight to the
//! exchange (no database), a real RabbitMQ (the shared broker), the pusher binary, and the
//! in-process OCPI partner double misbehaving on command.
//!
//! Every answer class is covered (transient: retried in place then delivered, nothing parked;
//! rejected: parked with the reason while the queue keeps flowing; partner-level: the partner
//! is paused, its messages wait held by the pusher, and it resumes once the partner behaves), as are
//! malformed messages, a partner outage (in-place retries and pause/probe/resume) with per-record
//! order and coalescing, CDRs (never POSTed twice) and SIGTERM with calls in flight.
//!
//! Waits poll with generous deadlines and never assert timings: the test machines are shared.
//! "Acked" is checked the only way that cannot be fooled by unacked deliveries: the pusher is
//! stopped (its channel closes, so whatever it had not acked returns to the queue) and the
//! partner queue must then be empty.

use std::time::{Duration, Instant};

use change_message::{Message, Operation};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::AMQPValue;
use serde_json::{json, Value};
use system_tests::changes::{cdr_insert, change, tariff_insert, tariff_row, tariff_update};
use system_tests::rabbit::connect;
use system_tests::{
    delete_exchange, delete_queue, partner_entry, publish_bodies, publish_messages, pusher_config,
    queue_len, shared_amqp_url, Mode, OcpiPartner, PartnerEntry, PartnerOptions, PusherConfig,
    PusherProcess, RecordedRequest,
};

/// The partner id in every test (queue names are unique per test anyway).
const PARTNER: &str = "p1";
/// The environment variable carrying the partner's token to the pusher.
const TOKEN_ENV: &str = "PUSHER_DELIVERY_TOKEN";
/// Deadline of every wait for something that should happen soon.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Polls `$cond` (an expression that may `.await`) until it holds; panics after [`DEADLINE`]
/// with the partner's recent requests and the pusher's log tail.
macro_rules! wait_until {
    ($rig:expr, $pusher:expr, $what:expr, $cond:expr) => {{
        let deadline = Instant::now() + DEADLINE;
        loop {
            if $cond {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out ({DEADLINE:?}) waiting until {}\n{}",
                    $what,
                    report(&$rig.partner, &$pusher)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }};
}

/// One test's world: the partner double, the pusher configuration (own exchange and queues),
/// the queues declared by `pusher setup`.
struct Rig {
    url: String,
    partner: OcpiPartner,
    cfg: PusherConfig,
    token: String,
}

impl Rig {
    /// A 2.2.1 partner, a pusher configuration with small retry settings (changed by `tweak`),
    /// and `pusher setup` run so the queues exist before anything is published.
    async fn new(tweak: impl FnOnce(&mut PartnerEntry)) -> Rig {
        let partner = OcpiPartner::start(PartnerOptions::v221()).await;
        let url = shared_amqp_url();
        let token = partner.options().token.clone();
        let mut entry = partner_entry(PARTNER, &partner, TOKEN_ENV);
        entry.initial_backoff_ms = 100;
        entry.max_backoff_ms = 1000;
        entry.probe_interval_secs = 1;
        entry.max_probe_interval_secs = 2;
        tweak(&mut entry);
        let cfg = pusher_config(&url).partner(entry);
        let rig = Rig {
            url,
            partner,
            cfg,
            token,
        };
        let toml = rig.cfg.to_toml();
        let env = rig.env();
        let (status, out) = tokio::task::block_in_place(|| {
            PusherProcess::run_to_exit_with_env(&toml, &["setup"], &env, DEADLINE)
        });
        assert!(status.success(), "`pusher setup` failed:\n{out}");
        rig
    }

    /// The pusher's environment: the token. (Its log level comes from the test configuration,
    /// `info,pusher=debug`, so a failure shows every call and its outcome.)
    fn env(&self) -> [(&str, &str); 1] {
        [(TOKEN_ENV, self.token.as_str())]
    }

    fn queue(&self) -> String {
        self.cfg.queue(PARTNER)
    }

    fn parking(&self) -> String {
        self.cfg.parking_queue(PARTNER)
    }

    /// Starts `pusher run` and waits until it consumes the partner's queue.
    async fn start(&self) -> PusherProcess {
        let mut pusher = PusherProcess::start_with_env(&self.cfg.to_toml(), &self.env());
        wait_consuming(&mut pusher, 1).await;
        pusher
    }

    async fn publish(&self, messages: &[Message]) {
        publish_messages(&self.url, &self.cfg.exchange, messages).await;
    }

    /// Messages ready in the partner queue (unacked ones are not counted).
    async fn ready(&self) -> u32 {
        queue_len(&self.url, &self.queue()).await
    }

    async fn parked_count(&self) -> u32 {
        queue_len(&self.url, &self.parking()).await
    }

    /// SIGTERM; then the pusher must have exited 0 saying so, every message must have been
    /// acked (nothing returned to the partner queue when its channel closed), and the parking
    /// queue must hold exactly `parked` messages.
    async fn stop_and_check_all_acked(&self, pusher: &mut PusherProcess, parked: u32) {
        self.stop(pusher);
        self.assert_all_acked(pusher, parked).await;
    }

    /// SIGTERM; the pusher must exit 0 and log "pusher stopped cleanly".
    fn stop(&self, pusher: &mut PusherProcess) {
        let status = tokio::task::block_in_place(|| pusher.terminate());
        assert!(
            status.success(),
            "the pusher exited with {status:?} on SIGTERM\n{}",
            report(&self.partner, pusher)
        );
        assert!(
            pusher.log().contains("pusher stopped cleanly"),
            "no \"pusher stopped cleanly\" in the log\n{}",
            report(&self.partner, pusher)
        );
    }

    /// After the pusher stopped: nothing back in the partner queue (every message was acked),
    /// exactly `parked` messages in the parking queue.
    async fn assert_all_acked(&self, pusher: &PusherProcess, parked: u32) {
        // Unacked deliveries go back to the queue when the channel closes; give the broker a
        // moment, then look twice.
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let ready = self.ready().await;
            assert_eq!(
                ready,
                0,
                "{ready} message(s) back in the partner queue after the pusher stopped: they were \
                 never acked\n{}",
                report(&self.partner, pusher)
            );
        }
        let in_parking = self.parked_count().await;
        assert_eq!(
            in_parking,
            parked,
            "parking queue holds {in_parking} message(s), expected {parked}\n{}",
            report(&self.partner, pusher)
        );
    }

    /// Removes this test's queues and exchanges from the shared broker (passing tests only).
    async fn cleanup(&self) {
        delete_queue(&self.url, &self.queue()).await;
        delete_queue(&self.url, &self.parking()).await;
        delete_exchange(&self.url, &self.cfg.exchange).await;
        delete_exchange(&self.url, &self.cfg.presence_exchange).await;
    }

    /// The version of tariff `id` the partner holds.
    fn stored_tariff(&self, id: &str) -> Option<u32> {
        self.partner
            .object("tariffs", &["NL", "EXA", id])
            .as_ref()
            .and_then(tariff_version)
    }

    /// Every PUT the partner received for tariff `id` (answered or refused), in arrival order.
    fn tariff_puts(&self, id: &str) -> Vec<RecordedRequest> {
        let suffix = format!("/tariffs/NL/EXA/{id}");
        self.partner
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with(&suffix))
            .collect()
    }

    /// Every POST of CDR `id` the partner received.
    fn cdr_posts(&self, id: &str) -> Vec<RecordedRequest> {
        self.partner
            .requests()
            .into_iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path.contains("/cdrs")
                    && r.body.as_ref().and_then(|b| b.get("id")) == Some(&json!(id))
            })
            .collect()
    }

    /// How many CDRs with this id the partner accepted (duplicates count).
    fn accepted_cdrs(&self, id: &str) -> usize {
        self.partner
            .cdrs()
            .iter()
            .filter(|c| c.get("id") == Some(&json!(id)))
            .count()
    }
}

/// Waits until the log says "partner active: consuming" `times` times (one per start).
async fn wait_consuming(pusher: &mut PusherProcess, times: usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = pusher.log();
        if log.matches("partner active: consuming").count() >= times {
            return;
        }
        assert!(
            pusher.is_running() && Instant::now() < deadline,
            "the pusher did not start consuming (running: {})\n{}",
            pusher.is_running(),
            log_tail(&log, 80)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The tariff version of a tariff object or PUT body: the price of its first component
/// (see [`tariff_row`]).
fn tariff_version(tariff: &Value) -> Option<u32> {
    let price = tariff
        .get("elements")?
        .get(0)?
        .get("price_components")?
        .get(0)?
        .get("price")?
        .as_f64()?;
    Some(price as u32)
}

fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What a failure message shows: the partner's last requests and the pusher's log tail.
fn report(partner: &OcpiPartner, pusher: &PusherProcess) -> String {
    let requests = partner.requests();
    let shown: Vec<String> = requests
        .iter()
        .skip(requests.len().saturating_sub(40))
        .map(|r| {
            let version = r
                .body
                .as_ref()
                .and_then(tariff_version)
                .map(|v| format!(" (tariff v{v})"))
                .unwrap_or_default();
            format!("  #{} {} {}{version}", r.seq, r.method, r.path)
        })
        .collect();
    format!(
        "partner requests (last {} of {}):\n{}\npusher log (last 80 lines):\n{}",
        shown.len(),
        requests.len(),
        shown.join("\n"),
        log_tail(&pusher.log(), 80)
    )
}

/// A message taken from a parking queue, with its park headers.
struct Parked {
    body: Vec<u8>,
    reason: String,
    partner: Option<String>,
}

impl Parked {
    /// The `id` key column of the parked change.
    fn record_id(&self) -> String {
        match Message::from_slice(&self.body) {
            Ok(Message::Change(c)) => c
                .key
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => panic!(
                "parked body is not a change message: {}",
                String::from_utf8_lossy(&self.body)
            ),
        }
    }
}

/// Takes (gets and acks) every message of `queue`, in queue order. Unlike the harness's drain it
/// accepts bodies that are not change messages (parked garbage).
async fn take_parked(url: &str, queue: &str) -> Vec<Parked> {
    let conn = connect(url).await;
    let ch = conn
        .create_channel()
        .await
        .unwrap_or_else(|e| panic!("cannot open a channel: {e}"));
    let mut out = Vec::new();
    while let Some(message) = ch
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .unwrap_or_else(|e| panic!("basic.get on {queue:?}: {e}"))
    {
        let delivery = message.delivery;
        let header = |name: &str| -> Option<String> {
            let headers = delivery.properties.headers().as_ref()?;
            match headers.inner().get(name)? {
                AMQPValue::LongString(s) => Some(s.to_string()),
                AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
                other => Some(format!("{other:?}")),
            }
        };
        let reason = header("x-park-reason").unwrap_or_else(|| {
            panic!(
                "a message in {queue:?} has no x-park-reason header: {:?}",
                delivery.properties.headers()
            )
        });
        let partner = header("x-park-partner");
        delivery
            .ack(BasicAckOptions::default())
            .await
            .unwrap_or_else(|e| panic!("ack on {queue:?}: {e}"));
        out.push(Parked {
            body: delivery.data.clone(),
            reason,
            partner,
        });
    }
    let _ = ch.close(200, "OK".into()).await;
    let _ = conn.close(200, "OK".into()).await;
    out
}

/// Checks that for every record, the tariff versions in the partner's PUT requests never go
/// down (per-record order), and returns how many PUTs there were in all.
fn assert_puts_in_order(rig: &Rig, pusher: &PusherProcess, ids: &[String]) -> usize {
    let mut total = 0;
    for id in ids {
        let versions: Vec<u32> = rig
            .tariff_puts(id)
            .iter()
            .map(|r| {
                r.body.as_ref().and_then(tariff_version).unwrap_or_else(|| {
                    panic!(
                        "a PUT of tariff {id} without a readable version: {:?}",
                        r.body
                    )
                })
            })
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "tariff {id}: an older state was sent after a newer one; PUT versions in arrival \
             order: {versions:?}\n{}",
            report(&rig.partner, pusher)
        );
        total += versions.len();
    }
    total
}

// ---- transient answers ---------------------------------------------------------------------

/// The partner answers every module request with `mode` (a transient failure): the pusher keeps
/// both records' messages in place and tries them again; once the partner behaves, they are
/// delivered and acked, and nothing is parked or paused.
async fn transient_answer_is_retried_in_place_then_delivered(
    mode: Mode,
    reason_in_log: &str,
    tweak: impl FnOnce(&mut PartnerEntry),
) {
    let rig = Rig::new(tweak).await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode(mode.clone());
    rig.publish(&[tariff_insert("T1", 1, 1), tariff_insert("T2", 1, 2)])
        .await;

    wait_until!(
        rig,
        pusher,
        format!("each record was tried at least twice under {mode:?}"),
        rig.tariff_puts("T1").len() >= 2 && rig.tariff_puts("T2").len() >= 2
    );
    assert!(
        pusher.is_running(),
        "the pusher died on {mode:?}\n{}",
        report(&rig.partner, &pusher)
    );
    assert_eq!(
        rig.parked_count().await,
        0,
        "a transient failure ({mode:?}) parked a message\n{}",
        report(&rig.partner, &pusher)
    );
    let log = pusher.log();
    assert!(
        log.contains("transient failure; the message stays in place"),
        "{mode:?} was not handled as a transient failure\n{}",
        report(&rig.partner, &pusher)
    );
    assert!(
        log.contains(reason_in_log),
        "the log does not give the reason {reason_in_log:?} for {mode:?}\n{}",
        report(&rig.partner, &pusher)
    );

    rig.partner.clear_mode();
    let mark = rig.partner.requests().len();
    wait_until!(
        rig,
        pusher,
        "both records were sent again after the partner recovered and are stored",
        ["T1", "T2"].iter().all(|id| {
            rig.stored_tariff(id) == Some(1) && rig.tariff_puts(id).iter().any(|r| r.seq >= mark)
        })
    );
    rig.stop_and_check_all_acked(&mut pusher, 0).await;
    assert!(
        !pusher.log().contains("partner paused"),
        "a short transient failure paused the partner\n{}",
        report(&rig.partner, &pusher)
    );
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500_is_retried_in_place_then_delivered_and_nothing_parked() {
    transient_answer_is_retried_in_place_then_delivered(Mode::Http(500), "HTTP 500", |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_429_with_retry_after_is_retried_then_delivered_and_nothing_parked() {
    transient_answer_is_retried_in_place_then_delivered(
        Mode::TooManyRequests {
            retry_after_secs: 1,
        },
        "HTTP 429",
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocpi_3000_in_http_200_is_retried_then_delivered_and_nothing_parked() {
    transient_answer_is_retried_in_place_then_delivered(
        Mode::Ocpi(3000),
        "OCPI status_code 3000",
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_is_retried_then_delivered_and_nothing_parked() {
    transient_answer_is_retried_in_place_then_delivered(
        Mode::DropConnection,
        "connection failed",
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_slower_than_request_timeout_is_retried_then_delivered_and_nothing_parked() {
    transient_answer_is_retried_in_place_then_delivered(
        Mode::Slow(Duration::from_secs(3)),
        "no complete answer within",
        |p| p.request_timeout_ms = 1000,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_answer_does_not_crash_and_is_retried_until_the_partner_behaves() {
    transient_answer_is_retried_in_place_then_delivered(
        Mode::Garbage,
        "body is not an OCPI envelope",
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_answer_body_does_not_crash_and_is_retried_until_the_partner_behaves() {
    // Above the pusher's 1 MiB read limit: the envelope (a success) is never read to its end,
    // so it cannot count as a success.
    transient_answer_is_retried_in_place_then_delivered(
        Mode::HugeBody(3 * 1024 * 1024),
        "larger than",
        |_| {},
    )
    .await;
}

// ---- rejections ----------------------------------------------------------------------------

/// The partner rejects the first module request with `mode`: that record's message is parked
/// (once, not retried) with a reason naming each of `cause`; the other messages published with
/// it, and one published later, are delivered.
async fn rejection_is_parked_with_its_reason_and_the_queue_keeps_flowing(
    mode: Mode,
    cause: &[&str],
) {
    let rig = Rig::new(|_| {}).await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode_for(mode.clone(), 1);
    rig.publish(&[
        tariff_insert("T1", 1, 1),
        tariff_insert("T2", 1, 2),
        tariff_insert("T3", 1, 3),
    ])
    .await;
    wait_until!(
        rig,
        pusher,
        format!("one message parked ({mode:?}) and the two others delivered"),
        rig.parked_count().await == 1
            && ["T1", "T2", "T3"]
                .iter()
                .filter(|id| rig.stored_tariff(id) == Some(1))
                .count()
                == 2
    );
    rig.publish(&[tariff_insert("T4", 1, 4)]).await;
    wait_until!(
        rig,
        pusher,
        "a message published after the rejection was delivered",
        rig.stored_tariff("T4") == Some(1)
    );
    rig.stop_and_check_all_acked(&mut pusher, 1).await;

    let parked = take_parked(&rig.url, &rig.parking()).await;
    assert_eq!(parked.len(), 1, "exactly one message parked");
    let parked = &parked[0];
    let id = parked.record_id();
    assert!(
        rig.stored_tariff(&id).is_none(),
        "tariff {id} was parked but the partner holds it"
    );
    assert_eq!(
        rig.tariff_puts(&id).len(),
        1,
        "a rejected message ({mode:?}) was sent again instead of parked once\n{}",
        report(&rig.partner, &pusher)
    );
    for needle in cause {
        assert!(
            parked.reason.contains(needle),
            "x-park-reason does not name the cause {needle:?}: {:?}",
            parked.reason
        );
    }
    assert_eq!(parked.partner.as_deref(), Some(PARTNER), "x-park-partner");
    assert!(
        !pusher.log().contains("partner paused"),
        "a rejection paused the partner\n{}",
        report(&rig.partner, &pusher)
    );
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocpi_2001_rejection_is_parked_with_its_reason_and_the_queue_keeps_flowing() {
    rejection_is_parked_with_its_reason_and_the_queue_keeps_flowing(
        Mode::Ocpi(2001),
        &["OCPI status_code 2001"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_400_rejection_is_parked_with_its_reason_and_the_queue_keeps_flowing() {
    rejection_is_parked_with_its_reason_and_the_queue_keeps_flowing(Mode::Http(400), &["HTTP 400"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_422_without_envelope_is_parked_with_its_reason_and_the_queue_keeps_flowing() {
    rejection_is_parked_with_its_reason_and_the_queue_keeps_flowing(
        Mode::Http(422),
        &["HTTP 422", "not an OCPI envelope"],
    )
    .await;
}

// ---- partner-level failures ----------------------------------------------------------------

/// Publishes version 1 of each tariff of `ids` and waits until the pusher pauses the partner.
async fn publish_inserts_until_paused(rig: &Rig, pusher: &mut PusherProcess, ids: &[&str]) {
    let inserts: Vec<Message> = ids
        .iter()
        .zip(1u64..)
        .map(|(id, seq)| tariff_insert(id, 1, seq))
        .collect();
    rig.publish(&inserts).await;
    assert!(
        pusher.wait_for_log_async("partner paused", DEADLINE).await,
        "the partner was not paused\n{}",
        report(&rig.partner, pusher)
    );
}

/// The partner answers everything with `mode` (it refuses us as a whole): the pusher pauses the
/// partner without parking anything, the messages wait held by the pusher (none returned to
/// the queue: a return would count toward the delivery limit), and once the partner behaves
/// again the pusher's probe succeeds and everything is delivered.
async fn partner_level_failure_pauses_the_partner_then_resumes(mode: Mode, cause: &str) {
    let rig = Rig::new(|_| {}).await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode(mode.clone());
    let ids = ["T1", "T2", "T3"];
    publish_inserts_until_paused(&rig, &mut pusher, &ids).await;
    assert_eq!(
        rig.parked_count().await,
        0,
        "a partner-level failure ({mode:?}) parked messages\n{}",
        report(&rig.partner, &pusher)
    );
    assert!(
        ids.iter().all(|id| rig.stored_tariff(id).is_none()),
        "the partner holds tariffs although it refused everything"
    );
    assert!(
        pusher.log().contains(cause),
        "the log does not name the cause {cause:?}\n{}",
        report(&rig.partner, &pusher)
    );
    // Still paused a little later: the messages stay held (the probe keeps failing).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rig.ready().await,
        0,
        "messages returned to the queue while paused"
    );
    assert!(pusher.is_running(), "the pusher died while paused");

    rig.partner.clear_mode();
    wait_until!(
        rig,
        pusher,
        "every message was delivered after the partner recovered",
        ids.iter().all(|id| rig.stored_tariff(id) == Some(1))
    );
    assert!(
        pusher.log().contains("partner answers again: resuming"),
        "no resume in the log\n{}",
        report(&rig.partner, &pusher)
    );
    rig.stop_and_check_all_acked(&mut pusher, 0).await;
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_401_pauses_the_partner_holds_its_messages_and_resumes_when_fixed() {
    partner_level_failure_pauses_the_partner_then_resumes(Mode::Http(401), "HTTP 401").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_403_pauses_the_partner_holds_its_messages_and_resumes_when_fixed() {
    partner_level_failure_pauses_the_partner_then_resumes(Mode::Http(403), "HTTP 403").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocpi_3001_pauses_the_partner_holds_its_messages_and_resumes_when_fixed() {
    partner_level_failure_pauses_the_partner_then_resumes(
        Mode::Ocpi(3001),
        "OCPI status_code 3001",
    )
    .await;
}

// ---- malformed messages ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_parked_with_their_reason_and_a_valid_one_after_them_is_delivered() {
    let rig = Rig::new(|_| {}).await;
    let mut pusher = rig.start().await;
    let not_json = b"this is not JSON {\"op\": ".to_vec();
    let unmapped = Message::Change(change(
        "no_such_table",
        Operation::Insert,
        1,
        &["id"],
        None,
        Some(json!({"id": "X1", "name": "nobody maps me"})),
    ));
    let no_key = Message::Change(change(
        "tariffs",
        Operation::Insert,
        2,
        &[],
        None,
        Some(tariff_row("T0", 1)),
    ));
    publish_bodies(
        &rig.url,
        &rig.cfg.exchange,
        &[
            not_json.clone(),
            unmapped.to_vec(),
            no_key.to_vec(),
            tariff_insert("T1", 1, 3).to_vec(),
        ],
    )
    .await;
    wait_until!(
        rig,
        pusher,
        "three malformed messages parked and the valid one after them delivered",
        rig.parked_count().await == 3 && rig.stored_tariff("T1") == Some(1)
    );
    assert!(pusher.is_running(), "a malformed message killed the pusher");
    rig.stop_and_check_all_acked(&mut pusher, 3).await;

    let parked = take_parked(&rig.url, &rig.parking()).await;
    assert_eq!(parked.len(), 3);
    let find = |needle: &str| {
        parked
            .iter()
            .find(|p| p.reason.contains(needle))
            .unwrap_or_else(|| {
                panic!(
                    "no parked message with a reason containing {needle:?}; reasons: {:?}",
                    parked.iter().map(|p| &p.reason).collect::<Vec<_>>()
                )
            })
    };
    let garbage = find("not a change message");
    assert_eq!(
        garbage.body, not_json,
        "the garbage was not parked unchanged"
    );
    let unmapped_parked = find("no mapping for table `ocpi.no_such_table`");
    assert_eq!(unmapped_parked.body, unmapped.to_vec());
    let no_key_parked = find("no primary key");
    assert_eq!(no_key_parked.body, no_key.to_vec());
    assert!(parked.iter().all(|p| p.partner.as_deref() == Some(PARTNER)));
    assert!(
        rig.stored_tariff("T0").is_none(),
        "a change without a key reached the partner"
    );
    rig.cleanup().await;
}

// ---- partner outages -------------------------------------------------------------------------

/// Updates `from..=to` of every record, interleaved across records, with seqs from `seq`.
fn interleaved_updates(ids: &[String], from: u32, to: u32, seq: &mut u64) -> Vec<Message> {
    let mut out = Vec::new();
    for version in from..=to {
        for id in ids {
            *seq += 1;
            out.push(tariff_update(id, version, *seq));
        }
    }
    out
}

/// Inserts every record at version 1 and waits until the partner holds them.
async fn deliver_inserts(rig: &Rig, pusher: &PusherProcess, ids: &[String], seq: &mut u64) {
    let inserts: Vec<Message> = ids
        .iter()
        .map(|id| {
            *seq += 1;
            tariff_insert(id, 1, *seq)
        })
        .collect();
    rig.publish(&inserts).await;
    wait_until!(
        rig,
        pusher,
        "the inserts were delivered",
        ids.iter().all(|id| rig.stored_tariff(id) == Some(1))
    );
}

/// Default `down_after_secs` (120): during a one-minute outage the pusher retries in place
/// (never pauses); when the partner is back every record ends at its newest state, per-record
/// order held, and the queued updates of each record were coalesced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_minute_outage_is_ridden_out_in_place_newest_state_wins_in_order_and_coalesced() {
    let rig = Rig::new(|p| p.down_after_secs = 120).await;
    let mut pusher = rig.start().await;
    let ids: Vec<String> = (1..=4).map(|i| format!("T{i}")).collect();
    let mut seq = 0;
    deliver_inserts(&rig, &pusher, &ids, &mut seq).await;

    let outage = Duration::from_secs(60);
    let down_at = Instant::now();
    rig.partner.go_down().await;
    let first = interleaved_updates(&ids, 2, 6, &mut seq);
    let second = interleaved_updates(&ids, 7, 12, &mut seq);
    let updates = first.len() + second.len();
    rig.publish(&first).await;
    tokio::time::sleep(outage / 2).await;
    assert!(
        pusher.is_running(),
        "the pusher died during the outage\n{}",
        report(&rig.partner, &pusher)
    );
    // More changes arrive while the first ones are being retried.
    rig.publish(&second).await;
    tokio::time::sleep(outage.saturating_sub(down_at.elapsed())).await;
    let log = pusher.log();
    assert!(
        log.contains("transient failure; the message stays in place"),
        "no in-place retries during the outage\n{}",
        report(&rig.partner, &pusher)
    );
    assert!(
        !log.contains("partner paused"),
        "the partner was paused although down_after_secs (120) had not passed\n{}",
        report(&rig.partner, &pusher)
    );
    let before_back = rig.partner.requests().len();
    rig.partner.come_back().await;

    wait_until!(
        rig,
        pusher,
        "every record reached its newest version (12) after the outage",
        ids.iter().all(|id| rig.stored_tariff(id) == Some(12))
    );
    rig.stop(&mut pusher);
    assert_puts_in_order(&rig, &pusher, &ids);
    let puts_after: usize = ids
        .iter()
        .map(|id| {
            rig.tariff_puts(id)
                .iter()
                .filter(|r| r.seq >= before_back)
                .count()
        })
        .sum();
    eprintln!("outage ridden out in place: {puts_after} PUTs after the outage for {updates} queued updates");
    assert!(
        puts_after < updates,
        "no coalescing: {puts_after} PUTs for {updates} queued updates\n{}",
        report(&rig.partner, &pusher)
    );
    rig.assert_all_acked(&pusher, 0).await;
    rig.cleanup().await;
}

/// A pause that outlasts `max_hold_secs` (4 s here): the pusher holds what it had while the
/// partner is down, then returns it to the queue, in order, before it would outlive the
/// broker's consumer timeout; once the partner is back everything is delivered, nothing parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_longer_than_max_hold_returns_the_held_messages_to_the_queue_then_delivers_them() {
    let rig = Rig::new(|p| {
        p.down_after_secs = 1;
        p.max_hold_secs = 4;
        p.probe_interval_secs = 1;
        p.max_probe_interval_secs = 1;
    })
    .await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode(Mode::Http(503));
    let ids = ["H1", "H2", "H3"];
    publish_inserts_until_paused(&rig, &mut pusher, &ids).await;
    wait_until!(
        rig,
        pusher,
        "the held messages back in the queue after max_hold_secs",
        rig.ready().await == 3
    );
    assert!(
        pusher
            .log()
            .contains("returning the held deliveries to the queue"),
        "{}",
        report(&rig.partner, &pusher)
    );
    rig.partner.clear_mode();
    wait_until!(
        rig,
        pusher,
        "every message delivered after the partner recovered",
        ids.iter().all(|id| rig.stored_tariff(id) == Some(1))
    );
    assert_eq!(rig.parked_count().await, 0, "a long pause parked messages");
    rig.stop_and_check_all_acked(&mut pusher, 0).await;
    rig.cleanup().await;
}

/// `down_after_secs = 2`: the pusher gives up retrying in place, pauses the partner (what it
/// holds stays held, none returned to the queue), probes, and resumes once the partner is back;
/// the newest state wins, per-record order holds, and the queued updates were coalesced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_past_down_after_pauses_probes_and_resumes_newest_state_wins_in_order() {
    let rig = Rig::new(|p| p.down_after_secs = 2).await;
    let mut pusher = rig.start().await;
    let ids: Vec<String> = (1..=4).map(|i| format!("T{i}")).collect();
    let mut seq = 0;
    deliver_inserts(&rig, &pusher, &ids, &mut seq).await;

    let down_at = Instant::now();
    rig.partner.go_down().await;
    let updates = interleaved_updates(&ids, 2, 15, &mut seq);
    rig.publish(&updates).await;
    assert!(
        pusher.wait_for_log_async("partner paused", DEADLINE).await,
        "the partner was not paused after down_after_secs\n{}",
        report(&rig.partner, &pusher)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rig.ready().await,
        0,
        "the paused partner's messages were returned to the queue\n{}",
        report(&rig.partner, &pusher)
    );
    assert_eq!(rig.parked_count().await, 0, "an outage parked messages");
    // Keep the partner down a little longer, so the pusher probes in vain.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down_at.elapsed())).await;
    let before_back = rig.partner.requests().len();
    rig.partner.come_back().await;

    wait_until!(
        rig,
        pusher,
        "every record reached its newest version (15) after the partner came back",
        ids.iter().all(|id| rig.stored_tariff(id) == Some(15))
    );
    assert!(
        pusher.log().contains("partner answers again: resuming"),
        "no resume in the log\n{}",
        report(&rig.partner, &pusher)
    );
    rig.stop(&mut pusher);
    assert_puts_in_order(&rig, &pusher, &ids);
    let puts_after: usize = ids
        .iter()
        .map(|id| {
            rig.tariff_puts(id)
                .iter()
                .filter(|r| r.seq >= before_back)
                .count()
        })
        .sum();
    eprintln!(
        "outage with pause: {puts_after} PUTs after the outage for {} queued updates",
        updates.len()
    );
    assert!(
        puts_after < updates.len(),
        "no coalescing: {puts_after} PUTs for {} queued updates\n{}",
        updates.len(),
        report(&rig.partner, &pusher)
    );
    rig.assert_all_acked(&pusher, 0).await;
    rig.cleanup().await;
}

// ---- CDRs ------------------------------------------------------------------------------------

/// The same CDR message twice in the queue, and once more after a restart of the pusher (the
/// CDR ledger survives it): exactly one POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_cdr_published_twice_and_again_after_a_restart_is_posted_exactly_once() {
    let rig = Rig::new(|_| {}).await;
    let mut pusher = rig.start().await;
    let cdr = cdr_insert("CDR1", 1);
    rig.publish(&[cdr.clone(), cdr.clone()]).await;
    wait_until!(
        rig,
        pusher,
        "the CDR was POSTed",
        rig.accepted_cdrs("CDR1") >= 1
    );
    rig.stop_and_check_all_acked(&mut pusher, 0).await;
    assert_eq!(
        rig.cdr_posts("CDR1").len(),
        1,
        "a CDR published twice was POSTed more than once\n{}",
        report(&rig.partner, &pusher)
    );

    // A redelivery after a restart (same state directory): still no second POST.
    pusher.restart();
    wait_consuming(&mut pusher, 2).await;
    rig.publish(&[cdr.clone(), cdr_insert("CDR2", 2)]).await;
    wait_until!(
        rig,
        pusher,
        "the second CDR was POSTed",
        rig.accepted_cdrs("CDR2") == 1
    );
    rig.stop_and_check_all_acked(&mut pusher, 0).await;
    assert_eq!(
        rig.cdr_posts("CDR1").len(),
        1,
        "a CDR redelivered after a restart was POSTed again\n{}",
        report(&rig.partner, &pusher)
    );
    assert_eq!(rig.accepted_cdrs("CDR1"), 1, "duplicate CDR at the partner");
    rig.cleanup().await;
}

/// A CDR POST that times out may have landed (here it did: the partner stored it and answered
/// too late): the CDR is parked with a reason saying the outcome is unknown and never POSTed
/// again, not even when the same message comes again; the queue keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdr_post_that_times_out_is_parked_as_unknown_outcome_and_never_posted_twice() {
    let rig = Rig::new(|p| p.request_timeout_ms = 1000).await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode(Mode::Slow(Duration::from_secs(3)));
    let cdr = cdr_insert("CDR1", 1);
    rig.publish(std::slice::from_ref(&cdr)).await;
    wait_until!(
        rig,
        pusher,
        "the timed-out CDR was parked",
        rig.parked_count().await == 1
    );
    rig.partner.clear_mode();
    assert_eq!(
        rig.cdr_posts("CDR1").len(),
        1,
        "a CDR whose POST timed out was POSTed again\n{}",
        report(&rig.partner, &pusher)
    );

    // The same CDR again (a redelivery or a duplicate from the bridge): parked, not POSTed.
    rig.publish(&[cdr.clone(), cdr_insert("CDR2", 2)]).await;
    wait_until!(
        rig,
        pusher,
        "the repeated CDR was parked (or POSTed again) and the next CDR delivered",
        (rig.parked_count().await == 2 || rig.cdr_posts("CDR1").len() > 1)
            && rig.accepted_cdrs("CDR2") == 1
    );
    rig.stop_and_check_all_acked(&mut pusher, 2).await;
    assert_eq!(
        rig.cdr_posts("CDR1").len(),
        1,
        "a CDR with an unknown outcome was POSTed twice\n{}",
        report(&rig.partner, &pusher)
    );
    assert_eq!(rig.accepted_cdrs("CDR1"), 1);

    let parked = take_parked(&rig.url, &rig.parking()).await;
    assert_eq!(parked.len(), 2);
    for p in &parked {
        assert_eq!(p.record_id(), "CDR1");
        assert!(
            p.reason.contains("CDR1")
                && p.reason.contains("may hold it")
                && p.reason.contains("not POSTed again"),
            "the reason does not say the CDR's outcome is unknown: {:?}",
            p.reason
        );
    }
    assert!(
        parked[0].reason.contains("timeout"),
        "the first park does not name the timeout: {:?}",
        parked[0].reason
    );
    assert!(
        parked[1].reason.contains("unknown outcome"),
        "the repeated CDR's park does not say its earlier POST has an unknown outcome: {:?}",
        parked[1].reason
    );
    rig.cleanup().await;
}

/// A sync of CDRs after the ledger dropped entries for their age (`cdr_ledger_days`): a CDR the
/// ledger knows as delivered is not POSTed; one updated after the newest entry it dropped
/// cannot have been sent before, and is POSTed; one older than that may be at the partner
/// already and is not POSTed (counted) with the default `old_cdrs_in_sync = "skip"`, or is
/// parked with that reason with `"park"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_after_the_ledgers_retention_posts_only_the_cdrs_the_partner_cannot_hold() {
    for (choice, parked) in [(None, 0), (Some("park"), 1)] {
        let mut rig = Rig::new(|p| p.old_cdrs_in_sync = choice).await;
        let state_dir = system_tests::util::fresh_dir("pusher-cdr-resync-state");
        rig.cfg.state_dir = Some(state_dir.display().to_string());
        // What a compaction leaves: entries up to 12:00:00 dropped; KNOWN delivered (at a time
        // no retention drops).
        let (known_key, delivered_at) = ("cdrs/NL/EXA/KNOWN", "2099-01-01T00:00:00Z");
        std::fs::write(
            state_dir.join(format!("{PARTNER}.cdr-ledger.jsonl")),
            format!(
                "{{\"key\":\"\",\"state\":\"forgotten\",\"at\":\"2026-02-01T12:00:00Z\"}}\n\
                 {{\"key\":{known_key:?},\"state\":\"delivered\",\"at\":\"{delivered_at}\"}}\n"
            ),
        )
        .expect("the ledger written");
        let mut pusher = rig.start().await;
        // last_updated: 12:00:01 (OLD, KNOWN: within the hour of clock skew allowed), 14:00:01.
        let synced = |id: &str, version: u32, seq: u64| {
            let Message::Change(mut change) = cdr_insert(id, seq) else {
                unreachable!("cdr_insert builds a change")
            };
            change.after = system_tests::changes::cdr_row(id, version)
                .as_object()
                .cloned();
            change.snapshot = Some(change_message::SnapshotMark {
                sync_id: "resync-1".into(),
            });
            Message::Change(change)
        };
        rig.publish(&[
            synced("KNOWN", 1, 1),
            synced("OLD", 1, 2),
            synced("NEW", 7201, 3),
        ])
        .await;
        wait_until!(
            rig,
            pusher,
            "the recent CDR was POSTed",
            rig.accepted_cdrs("NEW") == 1
        );
        rig.stop_and_check_all_acked(&mut pusher, parked).await;
        for id in ["KNOWN", "OLD"] {
            assert!(
                rig.cdr_posts(id).is_empty(),
                "CDR {id} was POSTed ({choice:?}) though the partner may hold it\n{}",
                report(&rig.partner, &pusher)
            );
        }
        let log = pusher.log();
        let said = match choice {
            None => "not POSTed (old_cdrs_in_sync",
            Some(_) => "replay this message if the CDR is missing (old_cdrs_in_sync",
        };
        assert!(
            log.contains("CDR cdrs/NL/EXA/OLD comes from a sync and is older")
                && log.contains(said),
            "no line saying why CDR OLD was not POSTed ({said})\n{}",
            report(&rig.partner, &pusher)
        );
        rig.cleanup().await;
    }
}

// ---- SIGTERM ---------------------------------------------------------------------------------

/// SIGTERM while five calls are in flight (the partner answers after 2 s, within the grace
/// period): exit 0, "pusher stopped cleanly", the five messages acked (none back in the queue),
/// and a new pusher sends none of them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_calls_in_flight_finishes_them_acks_and_exits_cleanly() {
    let rig = Rig::new(|_| {}).await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode(Mode::Slow(Duration::from_secs(2)));
    let ids: Vec<String> = (1..=5).map(|i| format!("T{i}")).collect();
    let inserts: Vec<Message> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| tariff_insert(id, 1, i as u64 + 1))
        .collect();
    rig.publish(&inserts).await;
    wait_until!(
        rig,
        pusher,
        "all five calls reached the partner (and are in flight)",
        ids.iter().all(|id| !rig.tariff_puts(id).is_empty())
    );
    rig.stop_and_check_all_acked(&mut pusher, 0).await;
    let log = pusher.log();
    let in_flight = log
        .lines()
        .find(|l| l.contains("stopping: finishing calls in flight"))
        .and_then(|l| l.split("in_flight=").nth(1))
        .and_then(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<usize>()
                .ok()
        });
    assert!(
        in_flight.is_some_and(|n| n > 0),
        "the stop did not happen with calls in flight (in_flight = {in_flight:?})\n{}",
        log_tail(&log, 80)
    );
    assert!(
        !log.contains("abandoned"),
        "calls were abandoned although they finished within the grace period\n{}",
        log_tail(&log, 80)
    );
    assert!(ids.iter().all(|id| rig.stored_tariff(id) == Some(1)));

    // A new pusher finds nothing to send again: only the sentinel goes out.
    rig.partner.clear_mode();
    let mut second = rig.start().await;
    rig.publish(&[tariff_insert("SENTINEL", 1, 100)]).await;
    wait_until!(
        rig,
        second,
        "the sentinel published after the restart was delivered",
        rig.stored_tariff("SENTINEL") == Some(1)
    );
    rig.stop_and_check_all_acked(&mut second, 0).await;
    for id in &ids {
        assert_eq!(
            rig.tariff_puts(id).len(),
            1,
            "tariff {id} was sent again by the next pusher: its message was not acked\n{}",
            report(&rig.partner, &second)
        );
    }
    rig.cleanup().await;
}
