//! The pieces of `bench/run pusher`: a local OCPI partner that answers at once and times every
//! push, tariff change messages built by hand (the same JSON the bridge publishes for a row of
//! `ocpi.tariffs`), pushers run as child processes on generated configurations, and the broker's
//! raw consume+ack rate they are compared with.
//!
//! Every message is an update of a DIFFERENT tariff whose id is `{seq}-{publish_us}`: the
//! pusher sends it as `PUT /tariffs/NL/EXA/{seq}-{publish_us}`, so the partner knows which
//! message arrived (duplicates are told apart from first arrivals) and when it was published
//! (enqueue-to-partner latency), and no two messages coalesce into one call.
//!
//! Broker names of a phase all start with `{tag}.{phase}.`; each one is appended to the
//! `--declared` file before it is declared, and each pusher's pid to `{dir}/pids` when it
//! starts, so `bench/run` can remove whatever is left when a run is interrupted.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use change_message::{Message, Operation, Row, RowChange, Source, CONTRACT_VERSION};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, PublisherConfirm};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::{
    amqp_channel, check_confirm, proc_cpu_secs, proc_status_mb, thread_stats, unix_micros,
};

/// The environment variable the generated configurations name as the partners' token.
const TOKEN_ENV: &str = "PUSHER_BENCH_TOKEN";
const TOKEN: &str = "bench-partner-token";
/// What a 2.2.1 partner offers; the example mapping pushes all five modules.
const MODULES: [&str; 5] = ["locations", "sessions", "cdrs", "tariffs", "tokens"];
/// Publishes awaiting a confirm at most (as the bridge's default confirm window).
const CONFIRM_WINDOW: usize = 1000;

// ---- names -------------------------------------------------------------------------------------

/// The broker names of one benchmark phase, all under `{tag}.{phase}.`.
pub struct Names {
    prefix: String,
    declared: PathBuf,
}

impl Names {
    pub fn new(tag: &str, phase: &str, declared: &Path) -> Names {
        Names {
            prefix: format!("{tag}.{phase}."),
            declared: declared.to_path_buf(),
        }
    }

    fn exchange(&self) -> String {
        format!("{}changes", self.prefix)
    }

    fn presence(&self) -> String {
        format!("{}pushers", self.prefix)
    }

    pub(crate) fn queue(&self, partner: &str) -> String {
        format!("{}{partner}", self.prefix)
    }

    fn parking(&self, partner: &str) -> String {
        format!("{}{partner}.parked", self.prefix)
    }

    /// Appends `kind name` lines to the declared file (read by `bench/run` for its cleanup).
    fn note(&self, entries: &[(&str, String)]) -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.declared)
            .with_context(|| format!("opening {}", self.declared.display()))?;
        for (kind, name) in entries {
            writeln!(file, "{kind} {name}")?;
        }
        Ok(())
    }

    /// Notes everything `pusher setup` declares for these partners.
    fn note_partners(&self, partners: &[String]) -> anyhow::Result<()> {
        let mut entries = vec![("exchange", self.exchange()), ("exchange", self.presence())];
        for p in partners {
            entries.push(("queue", self.queue(p)));
            entries.push(("queue", self.parking(p)));
        }
        self.note(&entries)
    }

    /// Deletes the partners' queues and the phase's exchanges (missing ones are fine).
    pub(crate) async fn delete(&self, conn: &Connection, partners: &[String]) {
        for p in partners {
            for queue in [self.queue(p), self.parking(p)] {
                if let Ok(channel) = conn.create_channel().await {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
            }
        }
        for exchange in [self.exchange(), self.presence()] {
            if let Ok(channel) = conn.create_channel().await {
                let _ = channel
                    .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
            }
        }
    }
}

pub(crate) fn partner_ids(count: u32) -> Vec<String> {
    (1..=count.max(1)).map(|i| format!("p{i}")).collect()
}

// ---- change messages ---------------------------------------------------------------------------

/// A row of `ocpi.tariffs` (config/ocpi-example/schema.sql); `version` goes into the price and
/// into `last_updated`.
fn tariff_row(id: &str, version: u32) -> Row {
    let row = json!({
        "country_code": "NL", "party_id": "EXA", "id": id, "currency": "EUR",
        "type": "REGULAR", "tariff_alt_text": null, "tariff_alt_url": null,
        "elements": format!("[{{\"price_components\":[{{\"type\":\"ENERGY\",\"price\":{version}.25,\"step_size\":1}}]}}]"),
        "start_date_time": null, "end_date_time": null, "deleted": 0,
        "last_updated": format!("2026-02-01T12:00:{:02}.000", version % 60),
    });
    row.as_object().cloned().unwrap_or_default()
}

/// The tariff id of message `seq` published at `publish_us` (unix microseconds).
fn tariff_id(seq: u64, publish_us: i64) -> String {
    format!("{seq}-{publish_us}")
}

/// `(seq, publish_us)` back from a tariff id.
fn parse_tariff_id(id: &str) -> Option<(u64, i64)> {
    let (seq, us) = id.split_once('-')?;
    Some((seq.parse().ok()?, us.parse().ok()?))
}

/// An update of tariff `{seq}-{publish_us}` as the bridge publishes it: body and properties.
fn tariff_message(seq: u64, publish_us: i64) -> (Vec<u8>, BasicProperties) {
    let id = tariff_id(seq, publish_us);
    let before = tariff_row(&id, 1);
    let after = tariff_row(&id, 2);
    let mut key = Row::new();
    for column in ["country_code", "party_id", "id"] {
        key.insert(
            column.to_string(),
            after.get(column).cloned().unwrap_or(Value::Null),
        );
    }
    let message_id = format!("1-bench.000001-{}-0", 4 + seq);
    let change = RowChange {
        version: CONTRACT_VERSION,
        id: message_id.clone(),
        seq: seq + 1,
        op: Operation::Update,
        database: "ocpi".into(),
        table: "tariffs".into(),
        key,
        after: Some(after),
        before: Some(before),
        changed: vec!["elements".into(), "last_updated".into()],
        binary_columns: Vec::new(),
        merged: 1,
        source: Source {
            server_id: 1,
            file: "bench.000001".into(),
            pos: 4 + seq,
            row: 0,
            gtid: Some(format!("0-1-{}", seq + 1)),
            tx_index: 0,
            commit_time: "2026-02-01T12:00:02Z".into(),
        },
        snapshot: None,
        too_large: None,
    };
    let mut headers = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert("x-database".into(), text("ocpi"));
    headers.insert("x-table".into(), text("tariffs"));
    headers.insert("x-operation".into(), text("update"));
    headers.insert("x-seq".into(), AMQPValue::LongLongInt((seq + 1) as i64));
    let properties = BasicProperties::default()
        .with_content_type(change_message::CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(message_id))
        .with_type("change".into())
        .with_timestamp((publish_us / 1_000_000).max(0) as u64)
        .with_headers(headers);
    (Message::Change(change).to_vec(), properties)
}

// ---- publishing --------------------------------------------------------------------------------

/// Persistent, mandatory publishes with up to [`CONFIRM_WINDOW`] confirms outstanding.
pub(crate) struct Publisher {
    pub(crate) channel: Channel,
    /// The `user_id` of every publish: the user the connection logs in as, as the bridge sets
    /// it (the pusher parks changes from anyone but `broker.bridge_users`).
    pub(crate) user: ShortString,
    pending: VecDeque<PublisherConfirm>,
    bytes: u64,
    count: u64,
}

impl Publisher {
    /// A publisher on `conn`, opened with `url`.
    pub(crate) async fn new(conn: &Connection, url: &str) -> anyhow::Result<Publisher> {
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let user = tls_connect::broker::login_user(url).context("the broker URL does not parse")?;
        Ok(Publisher {
            channel,
            user: ShortString::from(user),
            pending: VecDeque::with_capacity(CONFIRM_WINDOW),
            bytes: 0,
            count: 0,
        })
    }

    /// Publishes tariff message `seq` stamped with the current time.
    async fn tariff(&mut self, exchange: &str, routing_key: &str, seq: u64) -> anyhow::Result<()> {
        let (body, properties) = tariff_message(seq, unix_micros());
        self.publish(exchange, routing_key, &body, properties).await
    }

    /// Publishes one message, waiting for the oldest confirm when the window is full.
    pub(crate) async fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> anyhow::Result<()> {
        if self.pending.len() >= CONFIRM_WINDOW {
            let confirm = self.pending.pop_front().expect("non-empty");
            check_confirm(confirm.await?)?;
        }
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties.with_user_id(self.user.clone()),
            )
            .await?;
        self.pending.push_back(confirm);
        self.bytes += body.len() as u64;
        self.count += 1;
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(confirm) = self.pending.pop_front() {
            check_confirm(confirm.await?)?;
        }
        Ok(())
    }

    pub(crate) fn mean_bytes(&self) -> u64 {
        self.bytes / self.count.max(1)
    }
}

/// Publishes `count` tariff messages round-robin straight into the partners' queues (default
/// exchange), so each partner gets its share; prints the confirmed publish rate to stderr.
async fn publish_backlog(
    conn: &Connection,
    url: &str,
    queues: &[String],
    count: u64,
) -> anyhow::Result<u64> {
    let mut publisher = Publisher::new(conn, url).await?;
    let started = Instant::now();
    let mut reported = Instant::now();
    for seq in 0..count {
        let queue = &queues[(seq % queues.len() as u64) as usize];
        publisher.tariff("", queue, seq).await?;
        if reported.elapsed() >= Duration::from_secs(10) {
            reported = Instant::now();
            eprintln!("publish: {seq} of {count} messages published");
        }
    }
    publisher.flush().await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "publish: {count} persistent tariff updates of {} B into {} quorum queue(s) in {secs:.1} s \
         ({:.0}/s confirmed)",
        publisher.mean_bytes(),
        queues.len(),
        count as f64 / secs
    );
    let _ = publisher.channel.close(200, "published".into()).await;
    Ok(publisher.mean_bytes())
}

/// Ready messages in a queue (passive declare).
pub(crate) async fn ready(channel: &Channel, queue: &str) -> anyhow::Result<u64> {
    Ok(u64::from(
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("queue {queue}"))?
            .message_count(),
    ))
}

pub(crate) async fn ready_total(channel: &Channel, queues: &[String]) -> anyhow::Result<u64> {
    let mut total = 0;
    for q in queues {
        total += ready(channel, q).await?;
    }
    Ok(total)
}

/// Waits until the queues hold `expect` ready messages together (a quorum queue counts a
/// confirmed message a moment after the confirm).
pub(crate) async fn await_ready(
    channel: &Channel,
    queues: &[String],
    expect: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = ready_total(channel, queues).await?;
        if found == expect {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the queues hold {found} messages, expected {expect}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- raw consume -------------------------------------------------------------------------------

/// The broker's own consume+ack rate: `count` tariff messages in a queue declared like a
/// partner queue, consumed with prefetch `prefetch` and acked one by one, as the pusher does.
pub async fn raw_consume(
    amqp: &str,
    names: &Names,
    count: u64,
    prefetch: u16,
    delivery_limit: u32,
    broker_pid: Option<u32>,
) -> anyhow::Result<()> {
    let (conn, channel) = amqp_channel(amqp).await?;
    let (queue, parking) = (names.queue("p1"), names.parking("p1"));
    names.note(&[("queue", queue.clone()), ("queue", parking.clone())])?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    // Declared as the pusher declares them (the parking queue's arguments depend on the
    // broker's major version: RabbitMQ 4 gives quorum queues a default delivery limit).
    let broker_major =
        ::pusher::topology::broker_major_version(amqp, &tls_connect::TlsConfig::default()).await?;
    let parking_args = ::pusher::topology::parking_queue_arguments(broker_major);
    channel
        .queue_declare(parking.as_str().into(), durable, parking_args)
        .await
        .with_context(|| format!("declaring {parking}"))?;
    channel
        .queue_declare(
            queue.as_str().into(),
            durable,
            ::pusher::topology::partner_queue_arguments(delivery_limit, &parking),
        )
        .await
        .with_context(|| format!("declaring {queue}"))?;
    let size = publish_backlog(&conn, amqp, std::slice::from_ref(&queue), count).await?;
    await_ready(&channel, std::slice::from_ref(&queue), count).await?;

    let consumer_channel = conn.create_channel().await?;
    consumer_channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let cpu = CpuMeter::start(broker_pid);
    let started = Instant::now();
    let mut consumer = consumer_channel
        .basic_consume(
            queue.as_str().into(),
            "benchkit-raw-consume".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut acked = 0u64;
    while acked < count {
        let next = tokio::time::timeout(Duration::from_secs(60), consumer.next()).await;
        let delivery = match next {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => bail!("consuming {queue}: {e}"),
            Ok(None) => bail!("the consumer of {queue} was cancelled"),
            Err(_) => bail!("no delivery for 60 s after {acked} of {count}"),
        };
        if !delivery.acker.ack(BasicAckOptions::default()).await? {
            bail!("an ack was refused");
        }
        acked += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "raw-consume: {count} x {size} B, prefetch {prefetch}, one ack each: {secs:.2} s; {}",
        cpu.report(secs)
    );
    let _ = consumer_channel.close(200, "done".into()).await;
    let left = ready(&channel, &queue).await.unwrap_or(0);
    if left > 0 {
        eprintln!("raw-consume: {left} messages still in {queue} (acks lost?)");
    }
    for q in [&queue, &parking] {
        channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    let _ = conn.close(200, "bye".into()).await;
    println!(
        "raw_consume_per_s={:.1} message_bytes={size}",
        count as f64 / secs
    );
    Ok(())
}

// ---- CPU accounting ----------------------------------------------------------------------------

/// CPU seconds used by benchkit itself and the broker over a phase.
pub(crate) struct CpuMeter {
    broker_pid: Option<u32>,
    broker0: f64,
    own0: f64,
}

impl CpuMeter {
    pub(crate) fn start(broker_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            broker_pid,
            broker0: broker_pid.and_then(proc_cpu_secs).unwrap_or(0.0),
            own0: proc_cpu_secs(std::process::id()).unwrap_or(0.0),
        }
    }

    pub(crate) fn report(&self, secs: f64) -> String {
        let own = proc_cpu_secs(std::process::id()).unwrap_or(0.0) - self.own0;
        let mut out = format!(
            "benchkit (partner/publisher) cpu {own:.1} s ({:.0}% of a core)",
            100.0 * own / secs
        );
        if let Some(pid) = self.broker_pid {
            if let Some(now) = proc_cpu_secs(pid) {
                let used = now - self.broker0;
                let _ = write!(
                    out,
                    ", broker cpu {used:.1} s ({:.0}% of a core)",
                    100.0 * used / secs
                );
            }
        }
        out
    }
}

// ---- the OCPI partner --------------------------------------------------------------------------

/// What the partner saw of the pushes.
#[derive(Default)]
pub(crate) struct Seen {
    /// By message seq: whether it arrived already.
    first: Vec<bool>,
    distinct: u64,
    pub(crate) repeats: u64,
    pub(crate) unparsed: u64,
    first_at_us: i64,
    last_new_at_us: i64,
    per_partner: BTreeMap<String, u64>,
    /// (publish_us, publish-to-arrival us) of every first arrival.
    samples: Vec<(i64, i64)>,
    /// Calls of the locations module (composite objects; their ids are not tariff ids).
    pub(crate) composite: CompositeSeen,
}

/// What the partner saw of composite pushes (`/locations/...`).
#[derive(Default)]
pub(crate) struct CompositeSeen {
    /// PUTs of an EVSE (4 ids) and, of them, those whose body carries at least one connector.
    pub(crate) evse_puts: u64,
    pub(crate) evse_puts_with_connectors: u64,
    /// Connectors in all EVSE PUTs together.
    pub(crate) connectors: u64,
    /// PUTs of a whole Location (3 ids).
    pub(crate) location_puts: u64,
    /// Any other call of the module (a PATCH, a connector PUT, ...).
    pub(crate) other_calls: u64,
    /// PUT bodies that are not a JSON object.
    pub(crate) bad_bodies: u64,
    pub(crate) first_at_us: i64,
    pub(crate) last_at_us: i64,
}

impl CompositeSeen {
    fn record(&mut self, method: &str, ids: usize, body: &[u8], at_us: i64) {
        if self.first_at_us == 0 {
            self.first_at_us = at_us;
        }
        self.last_at_us = at_us;
        if method != "PUT" || !(3..=4).contains(&ids) {
            self.other_calls += 1;
            return;
        }
        let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
            self.bad_bodies += 1;
            return;
        };
        if ids == 3 {
            self.location_puts += 1;
            return;
        }
        self.evse_puts += 1;
        let connectors = object
            .get("connectors")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        self.connectors += connectors as u64;
        if connectors > 0 {
            self.evse_puts_with_connectors += 1;
        }
    }
}

pub(crate) struct PartnerShared {
    base_url: String,
    seen: Mutex<Seen>,
    discovery_gets: AtomicU64,
}

impl PartnerShared {
    pub(crate) fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An OCPI 2.2.1 receiver of all modules on 127.0.0.1 (random port); partner `pN` lives under
/// `/pN/ocpi/`. It answers every push at once with status_code 1000 and times it.
pub(crate) struct Partner {
    pub(crate) shared: Arc<PartnerShared>,
    task: tokio::task::JoinHandle<()>,
}

impl Partner {
    pub(crate) async fn start(expected: u64) -> anyhow::Result<Partner> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("OCPI partner: cannot listen on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(PartnerShared {
            base_url: format!("http://{addr}"),
            seen: Mutex::new(Seen {
                first: vec![false; expected as usize],
                samples: Vec::with_capacity(expected as usize),
                ..Seen::default()
            }),
            discovery_gets: AtomicU64::new(0),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("OCPI partner: {e}");
            }
        });
        Ok(Partner { shared, task })
    }

    fn versions_url(&self, partner: &str) -> String {
        format!("{}/{partner}/ocpi/versions", self.shared.base_url)
    }

    fn distinct(&self) -> u64 {
        self.shared.seen().distinct
    }
}

impl Drop for Partner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn envelope(data: Option<Value>) -> Response {
    let mut body = String::from("{");
    if let Some(data) = data {
        let _ = write!(body, "\"data\":{data},");
    }
    body.push_str(
        "\"status_code\":1000,\"status_message\":\"Success\",\"timestamp\":\"2026-02-01T12:00:00Z\"}",
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn handle(
    State(shared): State<Arc<PartnerShared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let arrived_us = unix_micros();
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (partner, rest) = match segments.as_slice() {
        [partner, "ocpi", rest @ ..] => (*partner, rest),
        _ => return (StatusCode::NOT_FOUND, "not an OCPI path").into_response(),
    };
    let base = format!("{}/{partner}/ocpi", shared.base_url);
    match (method.as_str(), rest) {
        ("GET", ["versions"]) => {
            shared.discovery_gets.fetch_add(1, Ordering::Relaxed);
            envelope(Some(
                json!([{ "version": "2.2.1", "url": format!("{base}/2.2.1") }]),
            ))
        }
        ("GET", ["2.2.1"]) => {
            shared.discovery_gets.fetch_add(1, Ordering::Relaxed);
            let endpoints: Vec<Value> = MODULES
                .iter()
                .map(|m| json!({"identifier": m, "role": "RECEIVER", "url": format!("{base}/2.2.1/{m}")}))
                .collect();
            envelope(Some(json!({ "version": "2.2.1", "endpoints": endpoints })))
        }
        ("PUT" | "PATCH" | "POST" | "DELETE", ["2.2.1", "locations", ids @ ..]) => {
            let mut seen = shared.seen();
            *seen.per_partner.entry(partner.to_string()).or_default() += 1;
            seen.composite
                .record(method.as_str(), ids.len(), &body, arrived_us);
            drop(seen);
            envelope(None)
        }
        ("PUT" | "PATCH" | "POST" | "DELETE", ["2.2.1", _module, .., id]) => {
            let parsed = parse_tariff_id(id);
            let mut seen = shared.seen();
            *seen.per_partner.entry(partner.to_string()).or_default() += 1;
            match parsed {
                Some((seq, publish_us)) => {
                    let seq = seq as usize;
                    if seq >= seen.first.len() {
                        seen.first.resize(seq + 1, false);
                    }
                    if seen.first[seq] {
                        seen.repeats += 1;
                    } else {
                        seen.first[seq] = true;
                        seen.distinct += 1;
                        if seen.first_at_us == 0 {
                            seen.first_at_us = arrived_us;
                        }
                        seen.last_new_at_us = arrived_us;
                        seen.samples.push((publish_us, arrived_us - publish_us));
                    }
                }
                None => seen.unparsed += 1,
            }
            drop(seen);
            envelope(None)
        }
        _ => (StatusCode::NOT_FOUND, "unknown OCPI path").into_response(),
    }
}

// ---- pusher processes --------------------------------------------------------------------------

/// Where the pushers of a phase run from.
pub struct PusherSetup {
    pub amqp: String,
    pub bin: PathBuf,
    pub mapping: PathBuf,
    pub dir: PathBuf,
    pub presence_ms: u64,
    /// `[database]` of the pushers (composite objects), when set.
    pub database: Option<SourceDatabase>,
    /// `[metrics] listen` of the pushers, when set (one address: one pusher per phase).
    pub metrics_listen: Option<String>,
}

/// Where the pushers read composite objects: `[database]` of their configuration.
pub struct SourceDatabase {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl PusherSetup {
    fn config(&self, names: &Names, name: &str, partners: &[String], partner: &Partner) -> String {
        let q = |s: &str| format!("{s:?}");
        let mut out = String::from(
            "# Written by benchkit (bench/run pusher); keys as in config/pusher.toml.\n",
        );
        let _ = writeln!(out, "[broker]");
        let _ = writeln!(out, "url = {}", q(&self.amqp));
        let _ = writeln!(out, "exchange = {}", q(&names.exchange()));
        let _ = writeln!(out, "queue_prefix = {}", q(&names.prefix));
        let _ = writeln!(out, "presence_exchange = {}", q(&names.presence()));
        let _ = writeln!(out, "\n[pusher]");
        let _ = writeln!(out, "name = {}", q(name));
        let _ = writeln!(
            out,
            "state_dir = {}",
            q(&self.dir.join("state").display().to_string())
        );
        let _ = writeln!(out, "presence_interval_ms = {}", self.presence_ms);
        let _ = writeln!(
            out,
            "presence_expiry_ms = {}",
            (self.presence_ms * 5).max(2000)
        );
        let _ = writeln!(out, "\n[log]\nformat = \"text\"\nlevel = \"info\"");
        if let Some(listen) = &self.metrics_listen {
            let _ = writeln!(out, "\n[metrics]\nlisten = {}", q(listen));
        }
        if let Some(db) = &self.database {
            let _ = writeln!(out, "\n[database]");
            let _ = writeln!(out, "host = {}\nport = {}", q(&db.host), db.port);
            let _ = writeln!(
                out,
                "user = {}\npassword = {}",
                q(&db.user),
                q(&db.password)
            );
        }
        for id in partners {
            let _ = writeln!(out, "\n[[partner]]");
            let _ = writeln!(out, "id = {}", q(id));
            let _ = writeln!(out, "ocpi_version = \"2.2.1\"");
            let _ = writeln!(out, "versions_url = {}", q(&partner.versions_url(id)));
            let _ = writeln!(out, "token_env = {}", q(TOKEN_ENV));
            let _ = writeln!(out, "our_country_code = \"NL\"\nour_party_id = \"EXA\"");
            let _ = writeln!(out, "country_code = \"DE\"\nparty_id = \"PRT\"");
            let _ = writeln!(out, "mapping = {}", q(&self.mapping.display().to_string()));
            if self.database.is_none() {
                // The example mapping's Location tree needs [database]; the plain cases push
                // tariff updates only.
                let _ = writeln!(
                    out,
                    "modules = [\"sessions\", \"cdrs\", \"tariffs\", \"tokens\"]"
                );
            }
        }
        out
    }

    /// Writes the configuration of each pusher (`{dir}/{phase}-{i}.toml`, same partners, own
    /// name), notes the broker names and runs `pusher setup` on the first.
    pub(crate) async fn prepare(
        &self,
        names: &Names,
        phase: &str,
        pushers: u32,
        partners: &[String],
        partner: &Partner,
    ) -> anyhow::Result<Vec<(String, PathBuf)>> {
        std::fs::create_dir_all(&self.dir)?;
        let mut configs = Vec::new();
        for i in 1..=pushers.max(1) {
            let name = format!("bench-{phase}-{i}");
            let path = self.dir.join(format!("{phase}-{i}.toml"));
            std::fs::write(&path, self.config(names, &name, partners, partner))
                .with_context(|| format!("writing {}", path.display()))?;
            configs.push((name, path));
        }
        names.note_partners(partners)?;
        let out = Command::new(&self.bin)
            .arg("setup")
            .arg("--config")
            .arg(&configs[0].1)
            .env(TOKEN_ENV, TOKEN)
            .env("PUSHER_BROKER_URL", &self.amqp)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {} setup", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "`pusher setup --config {}` failed ({}): {}",
                configs[0].1.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(configs)
    }

    /// Starts `pusher run --config ...`, output appended to `{dir}/{name}.log`, pid to
    /// `{dir}/pids`.
    pub(crate) fn spawn(&self, name: &str, config: &Path) -> anyhow::Result<RunningPusher> {
        let log_path = self.dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let child = Command::new(&self.bin)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env(TOKEN_ENV, TOKEN)
            .env("PUSHER_BROKER_URL", &self.amqp)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let pid = child.id().context("the pusher has no pid")?;
        let mut pids = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("pids"))?;
        writeln!(pids, "{pid}")?;
        Ok(RunningPusher {
            name: name.to_string(),
            pid,
            child,
            log: log_path,
            peak_rss: 0.0,
        })
    }
}

pub(crate) struct RunningPusher {
    pub(crate) name: String,
    pub(crate) pid: u32,
    child: Child,
    pub(crate) log: PathBuf,
    peak_rss: f64,
}

impl RunningPusher {
    /// Samples RSS; an error when the pusher exited.
    pub(crate) fn check(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "pusher {} exited early ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 10)
            );
        }
        if let Some(rss) = proc_status_mb(self.pid, "VmRSS:") {
            self.peak_rss = self.peak_rss.max(rss);
        }
        Ok(())
    }

    /// VmHWM (or the sampled peak when larger), CPU seconds, per-thread CPU.
    pub(crate) fn usage(&self) -> (f64, f64, String) {
        let hwm = proc_status_mb(self.pid, "VmHWM:").unwrap_or(0.0);
        let cpu = proc_cpu_secs(self.pid).unwrap_or(0.0);
        let threads: Vec<String> = thread_stats(self.pid)
            .iter()
            .map(|(name, secs, switches)| format!("{name} {secs:.1} s/{switches} sleeps"))
            .collect();
        (hwm.max(self.peak_rss), cpu, threads.join(", "))
    }

    /// SIGTERM, then SIGKILL after 30 s.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status();
            match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
                Ok(status) => {
                    let status = status?;
                    if !status.success() {
                        eprintln!("pusher {} stopped with {status}", self.name);
                    }
                }
                Err(_) => {
                    eprintln!("pusher {} did not stop within 30 s: killing it", self.name);
                    self.child.kill().await?;
                }
            }
        }
        Ok(())
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Which partners each pusher consumed (from its log), to show how they were spread.
pub(crate) fn log_assignments(phase: &str, pushers: &[RunningPusher]) {
    let spread: Vec<String> = pushers
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let partners: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("partner active: consuming"))
                .filter_map(|l| l.split("partner=").nth(1)?.split_whitespace().next())
                .collect();
            format!("{} consumed [{}]", p.name, partners.join(", "))
        })
        .collect();
    eprintln!("{phase}: {}", spread.join("; "));
}

/// Errors and warnings the pushers logged (the first few).
pub(crate) fn log_problems(pushers: &[RunningPusher]) {
    for p in pushers {
        let text = std::fs::read_to_string(&p.log).unwrap_or_default();
        let problems: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            .collect();
        if !problems.is_empty() {
            eprintln!(
                "pusher {} logged {} warnings/errors ({}), first ones:",
                p.name,
                problems.len(),
                p.log.display()
            );
            for line in problems.iter().take(3) {
                eprintln!("  {line}");
            }
        }
    }
}

// ---- backlog throughput ------------------------------------------------------------------------

/// A backlog of `count` tariff updates (each for a different record) spread over `partners`
/// queues, worked off by `pushers` pushers started together: prints elapsed_s=... (pusher start
/// to the partner's last new request, the queues empty) pushes_per_s=... peak_rss_mb=...
#[allow(clippy::too_many_arguments)]
pub async fn backlog(
    setup: &PusherSetup,
    names: &Names,
    phase: &str,
    partners: u32,
    pushers: u32,
    count: u64,
    timeout_secs: u64,
    broker_pid: Option<u32>,
) -> anyhow::Result<()> {
    let partner_ids = partner_ids(partners);
    let queues: Vec<String> = partner_ids.iter().map(|p| names.queue(p)).collect();
    let partner = Partner::start(count).await?;
    let configs = setup
        .prepare(names, phase, pushers, &partner_ids, &partner)
        .await?;
    let (conn, channel) = amqp_channel(&setup.amqp).await?;
    let size = publish_backlog(&conn, &setup.amqp, &queues, count).await?;
    await_ready(&channel, &queues, count).await?;

    let cpu = CpuMeter::start(broker_pid);
    let start_us = unix_micros();
    let started = Instant::now();
    let mut running = Vec::new();
    for (name, config) in &configs {
        running.push(setup.spawn(name, config)?);
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    let mut last_report = Instant::now();
    let ready_zero_at_us = loop {
        ticker.tick().await;
        for p in &mut running {
            p.check()?;
        }
        let distinct = partner.distinct();
        if distinct >= count && ready_total(&channel, &queues).await? == 0 {
            break unix_micros();
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let rss: Vec<String> = running
                .iter()
                .map(|p| format!("{:.0} MB", proc_status_mb(p.pid, "VmRSS:").unwrap_or(0.0)))
                .collect();
            eprintln!(
                "{phase}: {:.0} s, {distinct} of {count} pushed, pusher rss {}",
                started.elapsed().as_secs_f64(),
                rss.join(", ")
            );
        }
        if started.elapsed() > Duration::from_secs(timeout_secs) {
            bail!("{phase}: only {distinct} of {count} pushes arrived within {timeout_secs} s");
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let (end_us, first_us, repeats, unparsed, per_partner, mut latencies) = {
        let seen = partner.shared.seen();
        // The queues were found empty right after the last new request when ready_zero_at_us is
        // within two polls of it; otherwise the end is when they were found empty.
        let end = if ready_zero_at_us - seen.last_new_at_us > 100_000 {
            ready_zero_at_us
        } else {
            seen.last_new_at_us
        };
        (
            end,
            seen.first_at_us,
            seen.repeats,
            seen.unparsed,
            seen.per_partner.clone(),
            seen.samples.iter().map(|(_, l)| *l).collect::<Vec<i64>>(),
        )
    };
    let elapsed = (end_us - start_us) as f64 / 1e6;
    let first = (first_us - start_us) as f64 / 1e6;
    let steady = count as f64 / (elapsed - first).max(1e-3);
    eprintln!(
        "{phase}: {pushers} pusher(s), {count} messages over {partners} partner(s): first push \
         {first:.2} s after start, last {elapsed:.2} s ({steady:.0}/s from first to last); {}",
        cpu.report(wall)
    );
    eprintln!(
        "{phase}: requests per partner {per_partner:?}; {repeats} repeated, {unparsed} unparsed, \
         {} discovery GETs",
        partner.shared.discovery_gets.load(Ordering::Relaxed)
    );
    latencies.sort_unstable();
    if !latencies.is_empty() {
        eprintln!(
            "{phase}: publish-to-partner in the backlog (waiting included): p50 {:.1} s, max {:.1} s",
            percentile(&latencies, 0.5) / 1000.0,
            percentile(&latencies, 1.0) / 1000.0
        );
    }
    let (mut peak, mut cpu_total) = (0f64, 0f64);
    for p in &running {
        let (hwm, cpu, threads) = p.usage();
        peak = peak.max(hwm);
        cpu_total += cpu;
        eprintln!(
            "{phase}: pusher {} (pid {}): peak rss {hwm:.1} MB, cpu {cpu:.1} s ({:.0}% of a core \
             over {elapsed:.1} s); by thread (cpu/voluntary context switches): {threads}",
            p.name,
            p.pid,
            100.0 * cpu / elapsed.max(1e-3)
        );
    }
    log_assignments(phase, &running);
    log_problems(&running);
    for p in running {
        p.stop().await?;
    }
    let left = ready_total(&channel, &queues).await?;
    if left > 0 {
        eprintln!("{phase}: {left} messages back in the queues after the pushers stopped: not all were acked");
    }
    names.delete(&conn, &partner_ids).await;
    let _ = conn.close(200, "bye".into()).await;
    println!(
        "elapsed_s={elapsed:.3} pushes_per_s={:.1} steady_per_s={steady:.1} first_push_s={first:.3} \
         peak_rss_mb={peak:.1} pusher_cpu_s={cpu_total:.2} message_bytes={size} unacked_left={left} \
         repeats={repeats}",
        count as f64 / elapsed
    );
    Ok(())
}

pub(crate) fn percentile(sorted: &[i64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

// ---- latency -----------------------------------------------------------------------------------

/// Publish-to-partner latency through one running pusher at a steady `rate` of tariff updates
/// (each for a different record) published to the bridge's exchange as the bridge does
/// (persistent, mandatory, confirms pipelined): prints p50_ms=... p99_ms=...
#[allow(clippy::too_many_arguments)]
pub async fn latency(
    setup: &PusherSetup,
    names: &Names,
    phase: &str,
    rate: u32,
    seconds: u64,
    warmup_secs: u64,
    broker_pid: Option<u32>,
) -> anyhow::Result<()> {
    let partner_ids = partner_ids(1);
    let queues = vec![names.queue(&partner_ids[0])];
    let total = u64::from(rate) * seconds;
    let partner = Partner::start(total + 100).await?;
    let configs = setup
        .prepare(names, phase, 1, &partner_ids, &partner)
        .await?;
    let (conn, channel) = amqp_channel(&setup.amqp).await?;
    let exchange = names.exchange();
    let mut pusher = setup.spawn(&configs[0].0, &configs[0].1)?;

    // Probes until the pusher consumes: one a second until one arrives.
    let mut publisher = Publisher::new(&conn, &setup.amqp).await?;
    let mut seq = 0u64;
    let ready_by = Instant::now() + Duration::from_secs(60);
    'probe: loop {
        publisher.tariff(&exchange, "", seq).await?;
        publisher.flush().await?;
        seq += 1;
        let next_probe = Instant::now() + Duration::from_secs(1);
        while Instant::now() < next_probe {
            pusher.check()?;
            if partner.distinct() > 0 {
                break 'probe;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if Instant::now() > ready_by {
            bail!(
                "the pusher pushed nothing within 60 s (see {})",
                pusher.log.display()
            );
        }
    }
    let probes = seq;
    // Let the probes drain.
    let drain_by = Instant::now() + Duration::from_secs(10);
    while partner.distinct() < probes && Instant::now() < drain_by {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Confirms are awaited by a task of their own, so a slow confirm never delays a publish.
    let (confirm_tx, mut confirm_rx) = tokio::sync::mpsc::unbounded_channel::<PublisherConfirm>();
    let confirmer = tokio::spawn(async move {
        let mut failures = 0u64;
        while let Some(confirm) = confirm_rx.recv().await {
            if confirm
                .await
                .map_err(anyhow::Error::from)
                .and_then(check_confirm)
                .is_err()
            {
                failures += 1;
            }
        }
        failures
    });
    let cpu = CpuMeter::start(broker_pid);
    let hwm_before = proc_status_mb(pusher.pid, "VmHWM:").unwrap_or(0.0);
    let started = tokio::time::Instant::now();
    let start_us = unix_micros();
    let measure_from = start_us + warmup_secs as i64 * 1_000_000;
    let (mut late, mut measured_sent, mut last_check) = (0u64, 0u64, Instant::now());
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / f64::from(rate.max(1)));
        let now = tokio::time::Instant::now();
        if due > now {
            tokio::time::sleep_until(due).await;
        } else if now - due > Duration::from_millis(10) {
            late += 1;
        }
        let publish_us = unix_micros();
        let (body, properties) = tariff_message(seq, publish_us);
        let confirm = publisher
            .channel
            .basic_publish(
                exchange.as_str().into(),
                "".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body,
                properties.with_user_id(publisher.user.clone()),
            )
            .await?;
        let _ = confirm_tx.send(confirm);
        seq += 1;
        if publish_us >= measure_from {
            measured_sent += 1;
        }
        if last_check.elapsed() >= Duration::from_millis(500) {
            last_check = Instant::now();
            pusher.check()?;
        }
    }
    let send_secs = started.elapsed().as_secs_f64();
    drop(confirm_tx);
    let failures = confirmer.await.unwrap_or(0);
    let drain_by = Instant::now() + Duration::from_secs(10);
    while partner.distinct() < seq && Instant::now() < drain_by {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let (samples, repeats): (Vec<(i64, i64)>, u64) = {
        let seen = partner.shared.seen();
        (
            seen.samples
                .iter()
                .filter(|(publish_us, _)| *publish_us >= measure_from)
                .copied()
                .collect(),
            seen.repeats,
        )
    };
    let (hwm, cpu_secs, threads) = pusher.usage();
    eprintln!(
        "{phase}: published {total} in {send_secs:.2} s ({:.0}/s, {late} more than 10 ms late, \
         {failures} not confirmed); {measured_sent} after the {warmup_secs} s warm-up, {} of them \
         pushed; {repeats} repeated; {}",
        total as f64 / send_secs,
        samples.len(),
        cpu.report(wall)
    );
    eprintln!(
        "{phase}: pusher peak rss {hwm:.1} MB (before the run {hwm_before:.1} MB), cpu {cpu_secs:.1} s \
         in all; by thread (cpu/voluntary context switches): {threads}"
    );
    log_problems(std::slice::from_ref(&pusher));
    pusher.stop().await?;
    let left = ready_total(&channel, &queues).await.unwrap_or(0);
    names.delete(&conn, &partner_ids).await;
    let _ = conn.close(200, "bye".into()).await;
    if samples.is_empty() {
        bail!("no push published after the warm-up reached the partner");
    }
    // Seconds whose p99 is 100 ms or more: tells a steady delay from a few stalls.
    let mut by_second: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (publish_us, latency) in &samples {
        by_second
            .entry((publish_us - start_us) / 1_000_000)
            .or_default()
            .push(*latency);
    }
    for (second, mut latencies) in by_second {
        latencies.sort_unstable();
        if percentile(&latencies, 0.99) >= 100.0 {
            eprintln!(
                "{phase}: second {second}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} pushes)",
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                percentile(&latencies, 1.0),
                latencies.len()
            );
        }
    }
    let mut latencies: Vec<i64> = samples.iter().map(|(_, l)| *l).collect();
    latencies.sort_unstable();
    println!(
        "p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} samples={} missing={} \
         peak_rss_mb={hwm:.1} unacked_left={left}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        latencies.len(),
        measured_sent.saturating_sub(latencies.len() as u64)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tariff_ids_round_trip_and_messages_parse_as_changes() {
        assert_eq!(
            parse_tariff_id(&tariff_id(42, 1_700_000_000_123_456)),
            Some((42, 1_700_000_000_123_456))
        );
        let (body, _) = tariff_message(7, 1_700_000_000_000_000);
        let Ok(Message::Change(change)) = Message::from_slice(&body) else {
            panic!("not a change message");
        };
        assert_eq!(change.table, "tariffs");
        assert_eq!(change.key["id"], json!("7-1700000000000000"));
        assert_eq!(change.seq, 8);
    }
}
