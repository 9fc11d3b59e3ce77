//! `pusher parked list|replay|discard` against the real broker, the pusher binary (as a child
//! process, for both `run` and the `parked` commands) and the OCPI partner double.
//!
//! Messages get parked the real way (the partner rejects them) where the test is about what
//! happens to them afterwards; the discard tests put them into the parking queue directly.
//! Counts come from the commands' own output (they read every message) or from polling the
//! broker: a passive declaration may lag a moment behind messages handed back by a closed
//! channel. Waits poll with generous deadlines; nothing asserts timings.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use change_message::Message;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use serde_json::{json, Value};
use system_tests::changes::{cdr_insert, tariff_insert, tariff_update};
use system_tests::rabbit::connect;
use system_tests::util::{cleanup_dir, fresh_dir};
use system_tests::{
    bridge_config, delete_exchange, delete_queue, partner_entry, publish_messages, pusher_bin,
    pusher_config, queue_len, shared_amqp_url, BridgeProcess, MariaDb, Mode, OcpiPartner,
    PartnerOptions, PusherConfig, PusherProcess, RecordedRequest,
};

const PARTNER: &str = "p1";
const TOKEN_ENV: &str = "PUSHER_PARKED_TOKEN";
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
/// More readings than RabbitMQ 4's default quorum-queue delivery limit (20): a parking queue
/// with a limit would start dropping messages before the end.
const READINGS: usize = 25;

/// Polls `$cond` (may `.await`) until it holds; panics after [`DEADLINE`] with the partner's
/// requests and the pusher's log tail.
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
                    $rig.report(&$pusher)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }};
}

/// One test's world: the partner double, a configuration with its own exchange and queues and
/// a state directory shared by the running pusher and the `parked` commands (the CDR ledger),
/// and the queues declared by `pusher setup`.
struct Rig {
    url: String,
    partner: OcpiPartner,
    cfg: PusherConfig,
    token: String,
    state_dir: PathBuf,
}

impl Rig {
    async fn new() -> Rig {
        Rig::with_setup(true).await
    }

    async fn with_setup(setup: bool) -> Rig {
        let partner = OcpiPartner::start(PartnerOptions::v221()).await;
        let url = shared_amqp_url();
        let token = partner.options().token.clone();
        let state_dir = fresh_dir("pusher-parked-state");
        let mut entry = partner_entry(PARTNER, &partner, TOKEN_ENV);
        entry.initial_backoff_ms = 100;
        entry.max_backoff_ms = 1000;
        let cfg = pusher_config(&url)
            .with(|c| c.state_dir = Some(state_dir.display().to_string()))
            .partner(entry);
        let rig = Rig {
            url,
            partner,
            cfg,
            token,
            state_dir,
        };
        if setup {
            let (status, out) = rig.command(&["setup"]);
            assert!(status.success(), "`pusher setup` failed:\n{out}");
        }
        rig
    }

    fn env(&self) -> [(&str, &str); 1] {
        [(TOKEN_ENV, self.token.as_str())]
    }

    /// Runs `pusher <args> --config <file>` to its end, stdin not a terminal; returns the exit
    /// status and stdout+stderr.
    fn command(&self, args: &[&str]) -> (ExitStatus, String) {
        let toml = self.cfg.to_toml();
        let env = self.env();
        tokio::task::block_in_place(|| {
            PusherProcess::run_to_exit_with_env(&toml, args, &env, DEADLINE)
        })
    }

    /// `pusher parked list p1 --json`, parsed; panics when it fails.
    fn list_json(&self) -> Value {
        let (status, out) = self.command(&["parked", "list", PARTNER, "--json"]);
        assert!(
            status.success(),
            "`pusher parked list --json` failed:\n{out}"
        );
        let start = out
            .find('{')
            .unwrap_or_else(|| panic!("no JSON in the output of `parked list --json`:\n{out}"));
        serde_json::from_str(&out[start..])
            .unwrap_or_else(|e| panic!("`parked list --json` printed no JSON object ({e}):\n{out}"))
    }

    fn queue(&self) -> String {
        self.cfg.queue(PARTNER)
    }

    fn parking(&self) -> String {
        self.cfg.parking_queue(PARTNER)
    }

    async fn start(&self) -> PusherProcess {
        let mut pusher = PusherProcess::start_with_env(&self.cfg.to_toml(), &self.env());
        let deadline = Instant::now() + DEADLINE;
        while !pusher.log().contains("partner active: consuming") {
            assert!(
                pusher.is_running() && Instant::now() < deadline,
                "the pusher did not start consuming\n{}",
                pusher.log()
            );
            tokio::time::sleep(POLL).await;
        }
        pusher
    }

    async fn publish(&self, messages: &[Message]) {
        publish_messages(&self.url, &self.cfg.exchange, messages).await;
    }

    async fn parked_count(&self) -> u32 {
        queue_len(&self.url, &self.parking()).await
    }

    /// The version (price) of tariff `id` the partner holds.
    fn stored_tariff(&self, id: &str) -> Option<u64> {
        self.partner
            .object("tariffs", &["NL", "EXA", id])
            .as_ref()
            .and_then(tariff_version)
    }

    fn tariff_puts(&self, id: &str) -> Vec<RecordedRequest> {
        let suffix = format!("/tariffs/NL/EXA/{id}");
        self.partner
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with(&suffix))
            .collect()
    }

    fn cdr_posts(&self, id: &str) -> usize {
        self.partner
            .requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path.contains("/cdrs")
                    && r.body.as_ref().and_then(|b| b.get("id")) == Some(&json!(id))
            })
            .count()
    }

    fn accepted_cdrs(&self, id: &str) -> usize {
        self.partner
            .cdrs()
            .iter()
            .filter(|c| c.get("id") == Some(&json!(id)))
            .count()
    }

    fn report(&self, pusher: &PusherProcess) -> String {
        let requests: Vec<String> = self
            .partner
            .requests()
            .iter()
            .rev()
            .take(30)
            .rev()
            .map(|r| {
                let version = r
                    .body
                    .as_ref()
                    .and_then(tariff_version)
                    .map(|v| format!(" (v{v})"))
                    .unwrap_or_default();
                format!("  #{} {} {}{version}", r.seq, r.method, r.path)
            })
            .collect();
        let log = pusher.log();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "partner requests (last 30):\n{}\npusher log (last 60 lines):\n{}",
            requests.join("\n"),
            lines[lines.len().saturating_sub(60)..].join("\n")
        )
    }

    /// SIGTERM; the pusher must exit 0.
    fn stop(&self, pusher: &mut PusherProcess) {
        let status = tokio::task::block_in_place(|| pusher.terminate());
        assert!(
            status.success(),
            "the pusher exited with {status:?}\n{}",
            self.report(pusher)
        );
    }

    async fn cleanup(&self) {
        delete_queue(&self.url, &self.queue()).await;
        delete_queue(&self.url, &self.parking()).await;
        delete_exchange(&self.url, &self.cfg.exchange).await;
        delete_exchange(&self.url, &self.cfg.presence_exchange).await;
        cleanup_dir(&self.state_dir, "pusher state");
    }
}

/// The tariff version of a tariff object or PUT body: the price of its first component.
fn tariff_version(tariff: &Value) -> Option<u64> {
    let price = tariff
        .get("elements")?
        .get(0)?
        .get("price_components")?
        .get(0)?
        .get("price")?
        .as_f64()?;
    Some(price as u64)
}

/// (seq, table, key) of every listed message, in listing order.
fn listed(listing: &Value) -> Vec<(u64, String, String)> {
    listing["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no `messages` in {listing}"))
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap_or(0),
                m["table"].as_str().unwrap_or_default().to_string(),
                m["key"].to_string(),
            )
        })
        .collect()
}

/// Publishes change messages straight into the parking queue with park headers, as a pusher
/// would have parked them (for tests about what happens to parked messages, not how they got
/// there).
async fn park_directly(url: &str, queue: &str, messages: &[Message]) {
    let conn = connect(url).await;
    let ch = conn.create_channel().await.expect("a channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    for message in messages {
        let mut headers = FieldTable::default();
        let text = |v: &str| AMQPValue::LongString(LongString::from(v));
        headers.insert("x-park-reason".into(), text("test: parked by hand"));
        headers.insert("x-park-partner".into(), text(PARTNER));
        headers.insert("x-parked-by".into(), text("the test"));
        headers.insert("x-parked-at".into(), text("2026-02-01T12:00:00Z"));
        let confirm = ch
            .basic_publish(
                ShortString::from(""),
                ShortString::from(queue),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &message.to_vec(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_headers(headers),
            )
            .await
            .expect("publish to the parking queue");
        let confirmation = confirm.await.expect("a confirm");
        assert!(
            matches!(confirmation, lapin::Confirmation::Ack(None)),
            "parking by hand into {queue} was not confirmed: {confirmation:?}"
        );
    }
    let _ = conn.close(200, "OK".into()).await;
}

/// Polls the broker until `queue` reports `expected` ready messages.
async fn wait_len(url: &str, queue: &str, expected: u32) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let len = queue_len(url, queue).await;
        if len == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{queue} holds {len} message(s), expected {expected}"
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---- list --------------------------------------------------------------------------------------

/// The partner rejects three changes: they are parked; `list` shows each with its table, key,
/// seq, operation, reason and who parked it, and the count; listing again (25 times, more than
/// RabbitMQ 4's default delivery limit) leaves every message in place and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_changes_are_listed_with_their_reasons_and_stay_parked_in_order_however_often_listed(
) {
    let rig = Rig::new().await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode(Mode::Ocpi(2001));
    rig.publish(&[
        tariff_insert("T1", 1, 1),
        tariff_insert("T2", 1, 2),
        tariff_insert("T3", 1, 3),
    ])
    .await;
    wait_until!(
        rig,
        pusher,
        "the three rejected changes were parked",
        rig.parked_count().await == 3
    );
    rig.stop(&mut pusher);

    let (status, text) = rig.command(&["parked", "list", PARTNER]);
    assert!(status.success(), "`pusher parked list` failed:\n{text}");
    assert!(
        text.contains(&format!("3 parked message(s) in {}", rig.parking())),
        "the listing does not give the count:\n{text}"
    );
    assert!(
        text.contains("OCPI status_code 2001") && text.contains("ocpi.tariffs"),
        "the listing does not show the table and the reason:\n{text}"
    );

    let first = rig.list_json();
    assert_eq!(first["total"], 3, "{first}");
    assert_eq!(first["shown"], 3, "{first}");
    let messages = first["messages"].as_array().expect("messages");
    for m in messages {
        assert_eq!(m["table"], "ocpi.tariffs", "{m}");
        assert_eq!(m["operation"], "insert", "{m}");
        assert!(
            m["reason"]
                .as_str()
                .is_some_and(|r| r.contains("the partner rejected it") && r.contains("2001")),
            "reason: {m}"
        );
        assert!(
            m["parked_by"].as_str().is_some_and(|b| !b.is_empty()),
            "{m}"
        );
        assert!(
            m["parked_at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{m}"
        );
        assert!(m["key"]["id"].is_string(), "{m}");
    }
    let order = listed(&first);
    let mut seqs: Vec<u64> = order.iter().map(|(s, _, _)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2, 3], "{first}");

    for reading in 2..=READINGS {
        let again = rig.list_json();
        assert_eq!(
            (again["total"].as_u64(), listed(&again)),
            (Some(3), order.clone()),
            "reading {reading} of the parking queue found other messages or another order"
        );
    }
    let limited = rig
        .command(&["parked", "list", PARTNER, "--limit", "1", "--json"])
        .1;
    assert!(
        limited.contains("\"total\": 3") && limited.contains("\"shown\": 1"),
        "--limit 1 must show one and still count three:\n{limited}"
    );
    wait_len(&rig.url, &rig.parking(), 3).await;
    rig.cleanup().await;
}

/// The bridge, with `broker.max_message_bytes` = 64 KiB and `on_too_large = "marker"`, reads
/// a 200 KiB tariff from a real MariaDB and publishes a marker in its place; the update that
/// makes it small is a marker too (its `before` holds the 200 KiB). The pusher parks both with
/// the "too large at source" reason and never pushes them as the tariff; another tariff and
/// the big one's next change reach the partner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_large_marker_from_the_bridge_is_parked_with_its_reason_and_later_changes_flow() {
    let rig = Rig::new().await;
    let db = MariaDb::start();
    db.load_example_schema_unlogged();
    let bridge_toml = bridge_config(db.port(), &rig.url, &rig.cfg.exchange)
        .with(|c| {
            c.source.start = "start".into();
            c.capture.databases = vec!["ocpi".into()];
            c.broker.max_message_bytes = 65_536;
            c.broker.on_too_large = "marker".into();
        })
        .to_toml();
    let mut bridge = BridgeProcess::start(&bridge_toml);
    let mut pusher = rig.start().await;
    let elements = |price: u32| {
        format!(
            r#"'[{{"price_components":[{{"type":"ENERGY","price":{price}.0,"step_size":1}}]}}]'"#
        )
    };
    db.exec(&format!(
        "INSERT INTO ocpi.tariffs (country_code, party_id, id, currency, type, tariff_alt_text, \
         elements) VALUES ('NL', 'EXA', 'T1', 'EUR', 'REGULAR', \
         JSON_ARRAY(JSON_OBJECT('language', 'en', 'text', REPEAT('x', 204800))), {});
         INSERT INTO ocpi.tariffs (country_code, party_id, id, currency, type, elements) \
         VALUES ('NL', 'EXA', 'T2', 'EUR', 'REGULAR', {});
         UPDATE ocpi.tariffs SET tariff_alt_text = NULL, elements = {} WHERE id = 'T1';
         UPDATE ocpi.tariffs SET elements = {} WHERE id = 'T1';",
        elements(1),
        elements(2),
        elements(3),
        elements(4)
    ));
    wait_until!(
        rig,
        pusher,
        "T2 and T1's change after the markers reached the partner",
        rig.stored_tariff("T1") == Some(4) && rig.stored_tariff("T2") == Some(2)
    );
    wait_until!(
        rig,
        pusher,
        "both markers were parked",
        rig.parked_count().await == 2
    );
    assert!(
        rig.tariff_puts("T1")
            .iter()
            .all(|r| r.body.as_ref().and_then(tariff_version) == Some(4)),
        "a marker went out as the tariff:\n{}",
        rig.report(&pusher)
    );
    rig.stop(&mut pusher);
    assert!(bridge.terminate().success(), "{}", bridge.log());

    let listing = rig.list_json();
    assert_eq!(listing["total"], 2, "{listing}");
    let mut operations = Vec::new();
    for parked in listing["messages"].as_array().expect("messages") {
        assert_eq!(parked["table"], "ocpi.tariffs", "{parked}");
        assert_eq!(parked["key"]["id"], "T1", "{parked}");
        let reason = parked["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("too large at source")
                && reason.contains("broker.max_message_bytes = 65536")
                && reason.contains("re-sync this record"),
            "reason: {parked}"
        );
        operations.push(parked["operation"].as_str().unwrap_or_default().to_string());
    }
    operations.sort();
    assert_eq!(operations, ["insert", "update"], "{listing}");
    rig.cleanup().await;
}

// ---- replay ------------------------------------------------------------------------------------

/// Three changes of two tariffs are rejected and parked; meanwhile a newer change of T2 is
/// delivered. Once the partner is fixed, `replay --yes` empties the parking queue, the
/// pusher delivers T1's newest parked state in one call, does not send T2's older parked state
/// after the newer one, and the partner ends at the newest state of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_the_fix_delivers_the_parked_changes_and_the_partner_ends_at_the_newest_state()
{
    let rig = Rig::new().await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode(Mode::Ocpi(2001));
    rig.publish(&[
        tariff_insert("T1", 1, 1),
        tariff_update("T1", 2, 2),
        tariff_insert("T2", 1, 3),
    ])
    .await;
    wait_until!(
        rig,
        pusher,
        "the three rejected changes were parked",
        rig.parked_count().await == 3
    );
    rig.partner.clear_mode();
    // A newer state of T2 reaches the partner while the older one is parked.
    rig.publish(&[tariff_update("T2", 5, 10)]).await;
    wait_until!(
        rig,
        pusher,
        "the newer T2 was delivered",
        rig.stored_tariff("T2") == Some(5)
    );
    let before_replay = rig.partner.requests().len();

    let (status, out) = rig.command(&["parked", "replay", PARTNER, "--yes"]);
    assert!(
        status.success(),
        "`pusher parked replay --yes` failed:\n{out}"
    );
    assert!(
        out.contains("replayed 3 parked message(s)") && out.contains("as 2 message(s)"),
        "replay does not say it replayed 3 parked messages as 2 (one per record):\n{out}"
    );
    wait_until!(
        rig,
        pusher,
        "T1 reached its newest parked state",
        rig.stored_tariff("T1") == Some(2)
    );
    wait_len(&rig.url, &rig.parking(), 0).await;
    wait_len(&rig.url, &rig.queue(), 0).await;
    rig.stop(&mut pusher);
    // Nothing was parked again, nothing is left in the partner queue.
    wait_len(&rig.url, &rig.parking(), 0).await;
    wait_len(&rig.url, &rig.queue(), 0).await;

    assert_eq!(rig.stored_tariff("T1"), Some(2));
    assert_eq!(
        rig.stored_tariff("T2"),
        Some(5),
        "the replayed older T2 overwrote the newer one\n{}",
        rig.report(&pusher)
    );
    let t1_after: Vec<u64> = rig
        .tariff_puts("T1")
        .iter()
        .filter(|r| r.seq >= before_replay)
        .filter_map(|r| r.body.as_ref().and_then(tariff_version))
        .collect();
    assert_eq!(
        t1_after,
        vec![2],
        "T1's two parked states must go out as one PUT of the newest\n{}",
        rig.report(&pusher)
    );
    let t2_after = rig
        .tariff_puts("T2")
        .iter()
        .filter(|r| r.seq >= before_replay)
        .count();
    assert_eq!(
        t2_after,
        0,
        "T2's parked older state was sent after the newer one\n{}",
        rig.report(&pusher)
    );
    rig.cleanup().await;
}

/// A replay holds one window of parked messages at a time (`--window`, for a parking queue of
/// millions): five versions of each of five tariffs are parked interleaved (25 messages) and
/// replayed in windows of 4. The parking queue ends empty, every tariff reaches its newest
/// version, and no tariff's PUTs go back to an older one across windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_in_windows_smaller_than_the_parking_queue_delivers_everything_in_order() {
    let rig = Rig::new().await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode(Mode::Ocpi(2001));
    let mut changes = Vec::new();
    for version in 1..=5u32 {
        for t in 0..5 {
            let (id, seq) = (format!("W{t}"), u64::from(version) * 10 + t);
            changes.push(match version {
                1 => tariff_insert(&id, version, seq),
                _ => tariff_update(&id, version, seq),
            });
        }
    }
    rig.publish(&changes).await;
    wait_until!(
        rig,
        pusher,
        "the 25 rejected changes were parked",
        rig.parked_count().await == 25
    );
    rig.partner.clear_mode();
    let before_replay = rig.partner.requests().len();

    let (status, out) = rig.command(&["parked", "replay", PARTNER, "--yes", "--window", "4"]);
    assert!(
        status.success() && out.contains("replayed 25 parked message(s)"),
        "`pusher parked replay --yes --window 4` did not replay all 25:\n{out}"
    );
    wait_until!(
        rig,
        pusher,
        "every tariff reached its newest version",
        (0..5).all(|t| rig.stored_tariff(&format!("W{t}")) == Some(5))
    );
    wait_len(&rig.url, &rig.parking(), 0).await;
    wait_len(&rig.url, &rig.queue(), 0).await;
    rig.stop(&mut pusher);
    for t in 0..5 {
        let versions: Vec<u64> = rig
            .tariff_puts(&format!("W{t}"))
            .iter()
            .filter(|r| r.seq >= before_replay)
            .filter_map(|r| r.body.as_ref().and_then(tariff_version))
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "tariff W{t} went back to an older version across windows: PUT versions \
             {versions:?}\n{}",
            rig.report(&pusher)
        );
    }
    rig.cleanup().await;
}

/// A CDR POST the partner refuses is parked; replayed once the partner takes it, it is POSTed
/// again exactly once, and a second replay finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cdr_replayed_is_posted_again_exactly_once() {
    let rig = Rig::new().await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode(Mode::Ocpi(2001));
    rig.publish(&[cdr_insert("CDR1", 1)]).await;
    wait_until!(
        rig,
        pusher,
        "the refused CDR was parked",
        rig.parked_count().await == 1
    );
    assert_eq!(rig.cdr_posts("CDR1"), 1);
    assert_eq!(rig.accepted_cdrs("CDR1"), 0);
    rig.partner.clear_mode();

    let (status, out) = rig.command(&["parked", "replay", PARTNER, "--yes"]);
    assert!(
        status.success(),
        "`pusher parked replay --yes` failed:\n{out}"
    );
    wait_until!(
        rig,
        pusher,
        "the replayed CDR was accepted",
        rig.accepted_cdrs("CDR1") == 1
    );
    let (status, again) = rig.command(&["parked", "replay", PARTNER, "--yes"]);
    assert!(status.success(), "a second replay failed:\n{again}");
    assert!(again.contains("no parked messages"), "{again}");
    rig.stop(&mut pusher);
    wait_len(&rig.url, &rig.queue(), 0).await;
    wait_len(&rig.url, &rig.parking(), 0).await;
    assert_eq!(
        rig.cdr_posts("CDR1"),
        2,
        "one refused POST and exactly one after the replay\n{}",
        rig.report(&pusher)
    );
    assert_eq!(rig.accepted_cdrs("CDR1"), 1);
    rig.cleanup().await;
}

/// A CDR POST whose answer never came (the connection dropped) is parked as an unknown
/// outcome and would be parked again; replaying it (a person checked the partner) releases it
/// in the CDR ledger of the running pusher, and it is POSTed exactly once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdr_parked_with_an_unknown_outcome_is_released_by_replay_and_posted_once_more() {
    let rig = Rig::new().await;
    let mut pusher = rig.start().await;
    rig.partner.set_mode_for(Mode::DropConnection, 1);
    rig.publish(&[cdr_insert("CDR1", 1)]).await;
    wait_until!(
        rig,
        pusher,
        "the CDR with an unknown outcome was parked",
        rig.parked_count().await == 1
    );
    let listing = rig.list_json();
    assert!(
        listing["messages"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unknown outcome")),
        "{listing}"
    );

    let (status, out) = rig.command(&["parked", "replay", PARTNER, "--yes"]);
    assert!(
        status.success(),
        "`pusher parked replay --yes` failed:\n{out}"
    );
    assert!(
        out.contains("released in the CDR ledger"),
        "replay does not say it released the CDR:\n{out}"
    );
    wait_until!(
        rig,
        pusher,
        "the released CDR was accepted",
        rig.accepted_cdrs("CDR1") == 1
    );
    rig.stop(&mut pusher);
    wait_len(&rig.url, &rig.parking(), 0).await;
    assert_eq!(
        rig.cdr_posts("CDR1"),
        2,
        "one POST without an answer and exactly one after the replay\n{}",
        rig.report(&pusher)
    );
    assert_eq!(rig.accepted_cdrs("CDR1"), 1);
    rig.cleanup().await;
}

// ---- discard -----------------------------------------------------------------------------------

/// Without --yes and without a terminal on stdin, `discard` (and `replay`) refuse, saying to
/// pass --yes, and every parked message stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_without_yes_and_without_a_terminal_refuses_and_leaves_them() {
    let rig = Rig::new().await;
    park_directly(
        &rig.url,
        &rig.parking(),
        &[tariff_insert("T1", 1, 1), tariff_insert("T2", 1, 2)],
    )
    .await;
    wait_len(&rig.url, &rig.parking(), 2).await;
    for action in ["discard", "replay"] {
        let (status, out) = rig.command(&["parked", action, PARTNER]);
        assert!(
            !status.success(),
            "`parked {action}` without --yes succeeded:\n{out}"
        );
        assert!(
            out.contains("not a terminal") && out.contains("--yes"),
            "`parked {action}` does not say to pass --yes:\n{out}"
        );
    }
    assert_eq!(rig.list_json()["total"], 2, "messages were removed");
    wait_len(&rig.url, &rig.parking(), 2).await;
    rig.cleanup().await;
}

/// `discard --yes` removes exactly the messages it counted: one held by someone else while it
/// runs (as a message parked after the count would be) is not counted and stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_with_yes_removes_exactly_the_counted_messages() {
    let rig = Rig::new().await;
    park_directly(
        &rig.url,
        &rig.parking(),
        &[
            tariff_insert("T1", 1, 1),
            tariff_insert("T2", 1, 2),
            tariff_insert("T3", 1, 3),
        ],
    )
    .await;
    wait_len(&rig.url, &rig.parking(), 3).await;
    // Hold the first one while discarding: it is not there to be counted.
    let conn = connect(&rig.url).await;
    let holder = conn.create_channel().await.expect("a channel");
    let held = holder
        .basic_get(rig.parking().as_str().into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
        .expect("a parked message");
    let held_body = held.delivery.data.clone();

    let (status, out) = rig.command(&["parked", "discard", PARTNER, "--yes"]);
    assert!(
        status.success(),
        "`pusher parked discard --yes` failed:\n{out}"
    );
    assert!(
        out.contains("discarded 2 parked message(s)"),
        "discard does not report the 2 messages it counted:\n{out}"
    );
    let _ = holder.close(200, "OK".into()).await;
    let _ = conn.close(200, "OK".into()).await;

    let left = rig.list_json();
    assert_eq!(left["total"], 1, "{left}");
    let Message::Change(kept) = Message::from_slice(&held_body).expect("a change") else {
        panic!("the held message is not a change");
    };
    assert_eq!(left["messages"][0]["seq"], kept.seq, "{left}");

    let (status, out) = rig.command(&["parked", "discard", PARTNER, "--yes"]);
    assert!(status.success(), "{out}");
    assert!(out.contains("discarded 1 parked message(s)"), "{out}");
    let (status, out) = rig.command(&["parked", "discard", PARTNER, "--yes"]);
    assert!(status.success(), "{out}");
    assert!(out.contains("no parked messages"), "{out}");
    wait_len(&rig.url, &rig.parking(), 0).await;
    rig.cleanup().await;
}

/// On a terminal, discard says how many it will remove and asks: an answer other than that
/// number (or `yes`) removes nothing; typing the number removes them. (`script` gives the
/// command a pseudo-terminal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_discard_asks_for_the_count_and_only_that_answer_discards() {
    let rig = Rig::new().await;
    park_directly(
        &rig.url,
        &rig.parking(),
        &[tariff_insert("T1", 1, 1), tariff_insert("T2", 1, 2)],
    )
    .await;
    wait_len(&rig.url, &rig.parking(), 2).await;
    let dir = fresh_dir("pusher-parked-tty");
    let config = dir.join("pusher.toml");
    std::fs::write(&config, rig.cfg.to_toml()).expect("write the config");
    let on_terminal = |answer: &str| -> (bool, String) {
        let command = format!(
            "{} parked discard {PARTNER} --config {}",
            pusher_bin().display(),
            config.display()
        );
        let mut child = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env(TOKEN_ENV, &rig.token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run `script` (util-linux) to give the command a terminal");
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write as _;
            let _ = writeln!(stdin, "{answer}");
        }
        let out = tokio::task::block_in_place(|| child.wait_with_output()).expect("wait");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };

    let (ok, out) = on_terminal("3");
    assert!(!ok, "a wrong count was taken as a confirmation:\n{out}");
    assert!(
        out.contains("2 parked message(s)") && out.contains("Type 2 (or yes)"),
        "discard does not say how many and ask for that number:\n{out}"
    );
    assert!(out.contains("nothing discarded"), "{out}");
    assert_eq!(
        rig.list_json()["total"],
        2,
        "a declined discard removed messages"
    );

    let (ok, out) = on_terminal("2");
    assert!(ok, "typing the count did not confirm:\n{out}");
    assert!(out.contains("discarded 2 parked message(s)"), "{out}");
    wait_len(&rig.url, &rig.parking(), 0).await;
    cleanup_dir(&dir, "pusher config");
    rig.cleanup().await;
}

// ---- errors ------------------------------------------------------------------------------------

/// Every error says what is wrong and what to do: an unknown partner names the configured
/// ones, missing queues send to `pusher setup`, an unreachable broker is named with its
/// password hidden.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_is_wrong_and_how_to_fix_it() {
    let rig = Rig::with_setup(false).await;
    let (status, out) = rig.command(&["parked", "list", "nobody"]);
    assert!(!status.success());
    assert!(
        out.contains("partner `nobody` is not in the configuration") && out.contains(PARTNER),
        "{out}"
    );

    for args in [
        vec!["parked", "list", PARTNER],
        vec!["parked", "replay", PARTNER, "--yes"],
        vec!["parked", "discard", PARTNER, "--yes"],
    ] {
        let (status, out) = rig.command(&args);
        assert!(
            !status.success(),
            "{args:?} succeeded without queues:\n{out}"
        );
        assert!(
            out.contains("does not exist") && out.contains("pusher setup"),
            "{args:?} does not send to `pusher setup`:\n{out}"
        );
    }

    let unreachable = rig.cfg.clone().with(|c| {
        c.broker_url = "amqp://guest:secret-pw@127.0.0.1:1/%2f".into();
    });
    let toml = unreachable.to_toml();
    let env = rig.env();
    let (status, out) = tokio::task::block_in_place(|| {
        PusherProcess::run_to_exit_with_env(&toml, &["parked", "list", PARTNER], &env, DEADLINE)
    });
    assert!(!status.success());
    assert!(
        out.contains("cannot connect to the broker at amqp://guest:***@127.0.0.1:1/")
            && !out.contains("secret-pw"),
        "{out}"
    );
    rig.cleanup().await;
}

/// A parking queue that exists with a delivery limit (it would drop parked messages that are
/// read too often) stops `pusher setup` with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parking_queue_declared_with_a_delivery_limit_is_refused_with_the_fix() {
    let rig = Rig::with_setup(false).await;
    let conn = connect(&rig.url).await;
    let ch = conn.create_channel().await.expect("a channel");
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(20));
    ch.queue_declare(
        rig.parking().as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
    .expect("declare the old parking queue");

    let (status, out) = rig.command(&["setup"]);
    assert!(
        !status.success(),
        "setup accepted a parking queue with a delivery limit:\n{out}"
    );
    assert!(
        out.contains(&rig.parking())
            && out.contains("x-delivery-limit")
            && out.contains(&format!("pusher parked replay {PARTNER}"))
            && out.contains(&format!("rabbitmqctl delete_queue {}", rig.parking())),
        "setup does not name the queue, the cause and the fix:\n{out}"
    );
    let _ = ch
        .queue_delete(rig.parking().as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "OK".into()).await;
    rig.cleanup().await;
}
