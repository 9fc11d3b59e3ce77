//! One partner's delivery: consume its queue, turn each change into the OCPI call the mapping
//! says, and acknowledge a message only once the partner confirmed it (or once it was parked
//! with a confirmed publish).
//!
//! The worker cycles through three phases:
//!
//! 1. **Discover** the partner's endpoints. Until every configured module has an endpoint the
//!    worker does not consume: a missing module pauses the partner (with an error naming it)
//!    rather than parking its messages, because parked changes would have to be replayed in
//!    order later and the module is usually missing by mistake. Discovery is retried with
//!    backoff and repeated every `discovery_refresh_secs` and after a 404.
//! 2. **Consume** with a prefetch window. Deliveries join per-record [`Lanes`]; up to
//!    `concurrency` lanes have a call in flight. A transient failure keeps the messages unacked
//!    and in place and retries the lane after a capped exponential backoff with jitter, taking
//!    in the record's newer changes (coalesced: the newest state goes out once and every older
//!    message is acked with it). A rejection parks the messages; a partner-level failure, or
//!    only transient failures for `down_after_secs`, ends consuming.
//! 3. **Pause** when the partner is down or refuses us: in-flight calls get the grace period,
//!    and the partner is probed (its versions URL) until it answers; then consuming resumes.
//!    What the pusher holds stays held on its channel ([`held`]): a return would count toward
//!    the queue's delivery limit, so a flapping partner would walk healthy messages into the
//!    parking queue. Held deliveries return to the head of the queue, in order, only before
//!    they outlive `max_hold_secs` (below the broker's 30-minute consumer timeout), when the
//!    pusher stops or hands the partner over, or when a call could not be waited for.
//!
//! A message held longer than `max_hold_secs` while the rest flows (one record failing) also
//! recycles the channel, for the same reason.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use change_message::{Message, RowChange};
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};
use tokio::sync::watch;

use crate::cdr_ledger::CdrLedger;
use crate::composite;
use crate::config::PartnerConfig;
use crate::lanes::{Added, LaneKind, Lanes, Pending, Raw};
use crate::mapping::{MappingConfig, Module, TableMapping};
use crate::metrics::{FailureClass, PartnerMetrics};
use crate::ocpi::{Endpoints, OcpiClient};
use crate::parking::{now_rfc3339, Parker};
use crate::presence::PartnerStatus;
use crate::senders::Senders;
use crate::source_db::SourceDb;
use crate::tree_clock::{TreeClock, REMEMBERED_OBJECTS};

mod call;
mod discover;
mod embeds;
mod held;
mod redelivery;
mod run;
mod tree_call;

use held::HeldRun;
pub use run::backoff;
use run::Run;

/// How many records' last pushed `seq` each partner remembers (about 100 bytes each).
const REMEMBERED_RECORDS: usize = 100_000;
/// A 404 triggers a new discovery at most this often.
const REDISCOVERY_MIN_GAP: Duration = Duration::from_secs(30);

/// Why a worker returned.
#[derive(Debug)]
pub enum WorkerExit {
    /// Asked to stop; everything that succeeded was acked.
    Stopped,
    /// The broker connection is gone; the session reconnects.
    ConnectionLost(String),
}

/// Everything a call needs, shared by the worker and its in-flight calls.
struct Shared {
    partner: Arc<PartnerConfig>,
    client: OcpiClient,
    endpoints: RwLock<Option<Arc<Endpoints>>>,
    parker: Parker,
    ledger: Option<tokio::sync::Mutex<CdrLedger>>,
    metrics: Arc<PartnerMetrics>,
    /// Where composite objects are read (mappings with `[[table.children]]`).
    source_db: Option<Arc<SourceDb>>,
    /// The newest `last_updated` sent per tree object.
    tree_clock: Mutex<TreeClock>,
    /// Whose messages are pushed (`broker.bridge_users`, `broker.pusher_users`).
    senders: Arc<Senders>,
}

pub struct Worker {
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    consumer_tag: String,
    grace: Duration,
    status: Arc<Mutex<PartnerStatus>>,
    discovered_at: Option<Instant>,
    pause: Option<Pause>,
    /// Pauses in a row without a successful call in between: each waits longer before probing.
    pause_streak: u32,
    /// Carried from one consuming phase to the next: the newest `seq` pushed per record.
    lanes: Option<Lanes>,
    /// A paused phase whose deliveries stay held (see [`held`]).
    held: Option<HeldRun>,
}

/// Why the partner is not being consumed.
#[derive(Debug, Clone)]
enum Pause {
    /// Only transient failures for `down_after`.
    Down(String),
    /// 401/403, OCPI 3001-3003: the partner refuses us as a whole.
    PartnerLevel(String),
    /// A configured module has no endpoint at the partner.
    ModuleMissing(String),
}

impl Pause {
    fn reason(&self) -> &str {
        match self {
            Pause::Down(r) | Pause::PartnerLevel(r) | Pause::ModuleMissing(r) => r,
        }
    }
}

enum End {
    Stop,
    Pause(Pause),
    /// The periodic endpoint refresh: discover again, then go on (deliveries stay held).
    Refresh,
    /// Return what is held and consume on a fresh channel.
    Recycle(String),
    ChannelLost(String),
}

/// What one call (or park) came to.
enum CallResult {
    /// The partner holds the newest state of the batch (or nothing needed sending): ack all.
    Delivered { seq: u64, note: Option<String> },
    /// Every message of the batch is in the parking queue: ack all.
    Parked { reason: String },
    /// Try again later; the messages stay unacked.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The source database could not be read: try again later, without counting it against
    /// the partner (a database outage must not pause a healthy partner, nor park anything).
    WaitDatabase { reason: String },
    /// The partner refuses us as a whole; the messages stay unacked.
    PartnerLevel { reason: String },
    /// The endpoint answered 404: discover again, then retry once.
    EndpointGone { reason: String },
    /// Cancelled before sending (pause or stop).
    Aborted,
}

struct CallDone {
    /// The record's lane; `None` for a delivery parked before joining a lane.
    key: Option<String>,
    batch: Vec<Pending>,
    attempt: u32,
    result: CallResult,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        partner: Arc<PartnerConfig>,
        connection: Arc<Connection>,
        parker: Parker,
        ledger: Option<CdrLedger>,
        pusher_name: &str,
        grace: Duration,
        status: Arc<Mutex<PartnerStatus>>,
        metrics: Arc<PartnerMetrics>,
        source_db: Option<Arc<SourceDb>>,
        senders: Arc<Senders>,
    ) -> Result<Worker, crate::ocpi::OcpiError> {
        let client = OcpiClient::new(partner.client_config())?;
        Ok(Worker {
            consumer_tag: format!("{pusher_name}/{}", partner.id),
            shared: Arc::new(Shared {
                partner,
                client,
                endpoints: RwLock::new(None),
                parker,
                ledger: ledger.map(tokio::sync::Mutex::new),
                metrics,
                source_db,
                tree_clock: Mutex::new(TreeClock::new(REMEMBERED_OBJECTS)),
                senders,
            }),
            connection,
            grace,
            status,
            discovered_at: None,
            pause: None,
            pause_streak: 0,
            lanes: Some(Lanes::new(REMEMBERED_RECORDS)),
            held: None,
        })
    }

    fn partner(&self) -> &PartnerConfig {
        &self.shared.partner
    }

    fn set_status(&self, f: impl FnOnce(&mut PartnerStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> WorkerExit {
        let exit = self.phases(&mut stop).await;
        match &exit {
            WorkerExit::Stopped => {
                self.release_held("the pusher stops consuming the partner")
                    .await
            }
            WorkerExit::ConnectionLost(_) => self.drop_held(),
        }
        exit
    }

    async fn phases(&mut self, stop: &mut watch::Receiver<bool>) -> WorkerExit {
        loop {
            if *stop.borrow() {
                return WorkerExit::Stopped;
            }
            if !self.connection.status().connected() {
                return WorkerExit::ConnectionLost("the broker connection closed".into());
            }
            if (self.pause.is_some() || self.discovered_at.is_none())
                && !self.discover_until_ready(stop).await
            {
                return WorkerExit::Stopped;
            }
            match self.consume(stop).await {
                End::Stop => {
                    self.set_status(|s| s.state = "stopped".into());
                    return WorkerExit::Stopped;
                }
                End::Pause(pause) => {
                    tracing::error!(
                        partner = %self.partner().id,
                        reason = pause.reason(),
                        held = self.held.as_ref().map_or(0, |h| h.run.held.len()),
                        "partner paused: stopped sending; its messages wait, in order (held \
                         ones stay held), while the partner is probed until it answers"
                    );
                    self.set_status(|s| {
                        s.state = "paused".into();
                        s.reason = Some(pause.reason().to_string());
                    });
                    self.pause = Some(pause);
                    // A partner that answers discovery but refuses every push would otherwise
                    // be resumed and paused again in a tight loop.
                    let policy = &self.shared.partner.retry;
                    let wait = policy
                        .probe_interval
                        .saturating_mul(1u32 << self.pause_streak.min(16))
                        .min(policy.max_probe_interval);
                    self.pause_streak += 1;
                    self.release_held_if_due().await;
                    if wait_or_stop(wait, stop).await {
                        return WorkerExit::Stopped;
                    }
                }
                End::Refresh => {
                    tracing::info!(partner = %self.partner().id, "refreshing the partner's endpoints");
                }
                End::Recycle(why) => {
                    tracing::info!(partner = %self.partner().id, why, "consuming again on a fresh channel");
                }
                End::ChannelLost(error) => {
                    if !self.connection.status().connected() {
                        return WorkerExit::ConnectionLost(error);
                    }
                    tracing::warn!(partner = %self.partner().id, %error, "channel lost; consuming again in 1 s");
                    if wait_or_stop(Duration::from_secs(1), stop).await {
                        return WorkerExit::Stopped;
                    }
                }
            }
        }
    }

    async fn open_consumer(&self) -> Result<(Channel, lapin::Consumer), lapin::Error> {
        let channel = self.connection.create_channel().await?;
        channel
            .basic_qos(self.partner().prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                ShortString::from(self.partner().queue.as_str()),
                ShortString::from(self.consumer_tag.as_str()),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((channel, consumer))
    }

    /// The kept phase of a pause, or a fresh channel and consumer.
    async fn open_phase(&mut self) -> Result<HeldRun, End> {
        if let Some(held) = self.resume_held() {
            tracing::info!(partner = %self.partner().id, queue = %self.partner().queue, held = held.run.held.len(), "partner active: consuming again, the held deliveries first");
            return Ok(held);
        }
        let (channel, consumer) = self.open_consumer().await.map_err(|e| {
            End::ChannelLost(format!("cannot consume {}: {e}", self.partner().queue))
        })?;
        tracing::info!(partner = %self.partner().id, queue = %self.partner().queue, "partner active: consuming");
        let mut lanes = self
            .lanes
            .take()
            .unwrap_or_else(|| Lanes::new(REMEMBERED_RECORDS));
        // What was held before went back to the queue with the old channel.
        lanes.clear();
        let run = Run::new(lanes, usize::from(self.partner().prefetch));
        Ok(HeldRun {
            channel,
            consumer,
            run,
        })
    }

    async fn consume(&mut self, stop: &mut watch::Receiver<bool>) -> End {
        let HeldRun {
            channel,
            mut consumer,
            mut run,
        } = match self.open_phase().await {
            Ok(phase) => phase,
            Err(end) => return end,
        };
        self.set_status(|s| {
            s.state = "consuming".into();
            s.reason = None;
        });
        let mut abandoned = false;
        let concurrency = self.partner().concurrency;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if run.end.is_none() {
                if run.redelivery.window_full(run.held.len()) {
                    self.widen_redelivery_window(&channel, &mut consumer, &mut run)
                        .await;
                }
                let hold = run.redelivery.is_open();
                while run.calls.len() < concurrency {
                    let Some((key, batch)) = run.lanes.next_ready(hold) else {
                        break;
                    };
                    self.spawn_call(&mut run, key, batch, 0, Duration::ZERO, true);
                }
            } else if run.calls.is_empty() {
                break;
            }
            let deadline = run.deadline;
            let ack_due = run.held.next_due().map(tokio::time::Instant::from_std);
            let redelivery_quiet = run.redelivery.quiet_at().filter(|_| run.end.is_none());
            tokio::select! {
                Some(joined) = run.calls.join_next(), if !run.calls.is_empty() => {
                    match joined {
                        Ok(done) => self.settle(&mut run, done).await,
                        Err(e) => tracing::error!(partner = %self.partner().id, error = %e, "a call task failed; its messages stay unacked"),
                    }
                }
                next = consumer.next(), if run.end.is_none() => match next {
                    Some(Ok(delivery)) => self.accept(&mut run, delivery),
                    Some(Err(e)) => run.finish(End::ChannelLost(e.to_string()), Duration::ZERO),
                    None => run.finish(End::ChannelLost("the consumer was cancelled by the broker".into()), Duration::ZERO),
                },
                _ = stop.changed(), if run.end.is_none() => {
                    tracing::info!(partner = %self.partner().id, in_flight = run.calls.len(), "stopping: finishing calls in flight");
                    self.set_status(|s| s.state = "stopping".into());
                    run.finish(End::Stop, self.grace);
                }
                _ = sleep_until(ack_due), if ack_due.is_some() => {
                    self.flush_acks(&mut run, false).await;
                }
                _ = tick.tick() => {
                    if run.end.is_none() {
                        self.check_health(&mut run);
                    }
                    self.report_pushed(&mut run);
                    let (unacked, in_flight) = (run.held.len() as u64, run.calls.len() as u64);
                    let oldest = run.oldest.oldest(run.held.oldest_received());
                    self.set_status(|s| { s.unacked = unacked; s.in_flight = in_flight; s.oldest_published = oldest; });
                    tracing::trace!(
                        partner = %self.partner().id, unacked, in_flight,
                        waiting = run.lanes.waiting(), redelivery_open = run.redelivery.is_open(),
                        "delivery state"
                    );
                }
                _ = sleep_until(redelivery_quiet), if redelivery_quiet.is_some() => {
                    self.check_redelivery_quiet(&channel, &mut consumer, &mut run).await;
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    tracing::warn!(partner = %self.partner().id, abandoned = run.calls.len(), "calls still in flight at the end of the grace period: abandoned, their messages return to the queue");
                    abandoned = true;
                    break;
                }
            }
        }
        // Wait for the aborted calls to be gone: none may record a CDR attempt or send after
        // this worker's messages go back to the queue for the next owner.
        run.calls.shutdown().await;
        self.flush_acks(&mut run, true).await;
        self.report_pushed(&mut run);
        if run.delivered_any {
            self.pause_streak = 0;
        }
        // What is still held keeps its place at the queue's head: its oldest stays the oldest.
        let oldest = run.oldest.oldest(run.held.oldest_received());
        let end = run.end.take().unwrap_or(End::Stop);
        let keep = !abandoned
            && matches!(end, End::Pause(_) | End::Refresh)
            && channel.status().connected();
        let unacked = if keep { run.held.len() as u64 } else { 0 };
        self.set_status(|s| {
            s.unacked = unacked;
            s.in_flight = 0;
            s.oldest_published = oldest;
        });
        if keep {
            self.held = Some(HeldRun {
                channel,
                consumer,
                run,
            });
        } else {
            held::close_returning(&channel, "pusher hands the partner back").await;
            self.lanes = Some(run.lanes);
        }
        end
    }

    /// The window is full of redelivered messages while their run is open: a pusher with a
    /// larger prefetch held more. Widen it (see [`redelivery`]) so that the rest can arrive.
    async fn widen_redelivery_window(
        &mut self,
        channel: &Channel,
        consumer: &mut lapin::Consumer,
        run: &mut Run,
    ) {
        let (queue, tag) = (self.partner().queue.clone(), self.consumer_tag.clone());
        if matches!(redelivery::ready(channel, &queue).await, Ok(0)) {
            // Nothing else in the queue: the run is all here (the window was just its size).
            return self.complete_redelivery(consumer, run).await;
        }
        let prefetch = self.partner().prefetch;
        match run
            .redelivery
            .widen(channel, consumer, &queue, &tag, prefetch)
            .await
        {
            Ok(Some(taken)) => {
                tracing::info!(partner = %self.partner().id, held = run.held.len(), "the prefetch window is full of redelivered messages: consuming with a wider window until the redelivered run has arrived");
                for delivery in taken {
                    self.accept(run, delivery);
                }
            }
            Ok(None) => {
                tracing::warn!(partner = %self.partner().id, held = run.held.len(), "redelivered messages still fill the widest window: sending them now; a record among them may reach the partner in an older state than a stopped pusher sent it. Give every pusher the same partner.prefetch");
                run.redelivery.close();
            }
            Err(e) => run.finish(
                End::ChannelLost(format!("cannot widen the consumer's window: {e}")),
                Duration::ZERO,
            ),
        }
    }

    /// No delivery for a moment while the redelivered run is open: complete when the queue
    /// has nothing ready (what was delivered before the answer is taken first).
    async fn check_redelivery_quiet(
        &mut self,
        channel: &Channel,
        consumer: &mut lapin::Consumer,
        run: &mut Run,
    ) {
        let queue = self.partner().queue.clone();
        match run.redelivery.check_quiet(channel, &queue).await {
            redelivery::Quiet::Complete => self.complete_redelivery(consumer, run).await,
            redelivery::Quiet::Waiting => {}
            redelivery::Quiet::GaveUp => {
                tracing::warn!(partner = %self.partner().id, "messages stayed ready in the queue without being delivered while the redelivered run was open: sending what arrived");
                run.redelivery.close();
            }
        }
    }

    /// The redelivered run has all arrived: what the consumer buffered is taken, then the run
    /// closes and its records may be sent.
    async fn complete_redelivery(&mut self, consumer: &mut lapin::Consumer, run: &mut Run) {
        let (taken, ended) = redelivery::buffered(consumer).await;
        for delivery in taken {
            self.accept(run, delivery);
        }
        match ended {
            None => {}
            Some(Ok(())) => run.finish(
                End::ChannelLost("the consumer was cancelled by the broker".into()),
                Duration::ZERO,
            ),
            Some(Err(e)) => run.finish(End::ChannelLost(e.to_string()), Duration::ZERO),
        }
        run.redelivery.close();
    }

    /// Down for too long, a message held too long, endpoints due for a refresh.
    fn check_health(&mut self, run: &mut Run) {
        let now = Instant::now();
        let policy = &self.shared.partner.retry;
        if let Some(since) = run.failing_since {
            if now.duration_since(since) >= policy.down_after {
                let reason = format!(
                    "no successful call for {} s, only transient failures",
                    policy.down_after.as_secs()
                );
                run.finish(End::Pause(Pause::Down(reason)), self.grace);
                return;
            }
        }
        if let Some(received) = run.held.oldest_received() {
            if now.duration_since(received) >= policy.max_hold {
                run.finish(
                    End::Recycle(format!(
                        "a message was held unacked for {} s (retry.max_hold_secs): returning \
                         what this pusher holds to the queue before the broker's consumer timeout",
                        policy.max_hold.as_secs()
                    )),
                    self.grace,
                );
                return;
            }
        }
        if self
            .discovered_at
            .is_some_and(|at| now.duration_since(at) >= self.shared.partner.discovery_refresh)
        {
            run.finish(End::Refresh, self.grace);
            self.discovered_at = None;
        }
    }

    fn accept(&mut self, run: &mut Run, delivery: lapin::message::Delivery) {
        let tag = delivery.delivery_tag;
        let now = Instant::now();
        run.held.insert(tag, delivery.acker.clone(), now);
        run.oldest.received(now, *delivery.properties.timestamp());
        run.redelivery.delivered(delivery.redelivered);
        let raw = Arc::new(Raw {
            body: delivery.data,
            properties: delivery.properties,
        });
        // Before anything is read from it: a message from an unexpected sender is parked
        // whatever it says, so its `seq` never reaches the lanes' memory of what was pushed.
        // The park is logged with the reason, which names the sender.
        if let Err(refusal) = self.shared.senders.change(&raw.properties) {
            let reason = self.shared.senders.change_reason(&refusal);
            return self.spawn_park(run, tag, raw, reason);
        }
        let partner = self.shared.partner.clone();
        let change = match Message::from_slice(&raw.body) {
            Err(e) => {
                let reason = format!("not a change message: {e}");
                return self.spawn_park(run, tag, raw, reason);
            }
            Ok(Message::Heartbeat(_)) => {
                run.settle(&[tag]);
                return;
            }
            Ok(Message::Change(change)) => change,
        };
        if change.key.is_empty() {
            let reason = format!(
                "change {} of `{}.{}` carries no primary key: its record cannot be addressed",
                change.id, change.database, change.table
            );
            return self.spawn_park(run, tag, raw, reason);
        }
        let Some(mapping) = partner.mapping.get(&change.database, &change.table) else {
            let reason = format!(
                "no mapping for table `{}.{}` in {}: add a [[table]] for it, or stop capturing it \
                 in the bridge",
                change.database, change.table, partner.mapping.origin
            );
            return self.spawn_park(run, tag, raw, reason);
        };
        if !partner.tables.contains(&mapping.qualified_name()) {
            tracing::debug!(partner = %partner.id, table = %mapping.qualified_name(), "not pushed to this partner: acknowledged");
            run.settle(&[tag]);
            return;
        }
        if let Some(too_large) = change.too_large {
            // No row data to push: parked like any message that cannot become a call, so it
            // never joins (or coalesces into) the record's lane; later changes flow as usual.
            return self.spawn_park(run, tag, raw, too_large_reason(&change, too_large));
        }
        let (key, record, kind) = match lane_of(&partner.mapping, mapping, &change) {
            Ok(lane) => lane,
            Err(reason) => return self.spawn_park(run, tag, raw, reason),
        };
        let pending = Pending {
            tag,
            record: Arc::from(record.as_str()),
            change: Arc::new(change),
            raw,
            redelivered: delivery.redelivered,
            tree: kind == LaneKind::Tree,
        };
        if let Added::Stale { pushed_seq } = run.lanes.add(&key, pending, kind) {
            tracing::debug!(partner = %partner.id, record = %key, pushed_seq, "older than what the partner holds: acknowledged unsent");
            run.settle(&[tag]);
        }
    }

    fn spawn_call(
        &self,
        run: &mut Run,
        key: String,
        batch: Vec<Pending>,
        attempt: u32,
        delay: Duration,
        rediscover: bool,
    ) {
        let shared = self.shared.clone();
        let mut cancel = run.cancel.subscribe();
        run.calls.spawn(async move {
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.wait_for(|c| *c) => {
                        return CallDone { key: Some(key), batch, attempt, result: CallResult::Aborted };
                    }
                }
            }
            if *cancel.borrow() {
                return CallDone {
                    key: Some(key),
                    batch,
                    attempt,
                    result: CallResult::Aborted,
                };
            }
            let result = if batch.first().is_some_and(|p| p.tree) {
                shared.push_tree(&batch).await
            } else {
                shared.push(&batch, rediscover).await
            };
            CallDone {
                key: Some(key),
                batch,
                attempt,
                result,
            }
        });
    }

    fn spawn_park(&self, run: &mut Run, tag: u64, raw: Arc<Raw>, reason: String) {
        self.shared.metrics.failed(FailureClass::Unsendable);
        let shared = self.shared.clone();
        run.calls.spawn(async move {
            let pending = Pending {
                tag,
                record: Arc::from(""),
                change: Arc::new(placeholder_change()),
                raw,
                redelivered: false,
                tree: false,
            };
            let batch = vec![pending];
            let result = shared.park(&batch, &reason).await;
            CallDone {
                key: None,
                batch,
                attempt: 0,
                result,
            }
        });
    }

    async fn settle(&mut self, run: &mut Run, done: CallDone) {
        let CallDone {
            key,
            mut batch,
            attempt,
            result,
        } = done;
        let tags: Vec<u64> = batch.iter().map(|p| p.tag).collect();
        let partner = self.shared.partner.clone();
        match result {
            CallResult::Delivered { seq, note } => {
                run.failing_since = None;
                run.delivered_any = true;
                run.settle(&tags);
                if let Some(note) = note {
                    tracing::info!(partner = %partner.id, record = key.as_deref().unwrap_or(""), note, "acknowledged without a call");
                }
                run.pushed_since_tick += tags.len() as u64;
                self.shared.metrics.pushed(tags.len() as u64);
                if let Some(key) = key {
                    let record = batch
                        .first()
                        .map(|p| p.record.clone())
                        .unwrap_or_else(|| Arc::from(""));
                    let stale = run.lanes.finish(&key, Some((&record, seq)));
                    let stale: Vec<u64> = stale.iter().map(|p| p.tag).collect();
                    run.settle(&stale);
                }
            }
            CallResult::Parked { reason } => {
                tracing::warn!(partner = %partner.id, record = key.as_deref().unwrap_or("-"), messages = tags.len(), reason, "parked");
                run.settle(&tags);
                self.set_status(|s| s.parked += tags.len() as u64);
                self.shared.metrics.parked(tags.len() as u64);
                if let Some(key) = key {
                    run.lanes.finish(&key, None);
                }
            }
            CallResult::Retry {
                reason,
                retry_after,
            } => {
                let since = *run.failing_since.get_or_insert_with(Instant::now);
                let Some(key) = key else {
                    // A park that failed: try the park again.
                    let delay = backoff(&partner.retry, attempt);
                    tracing::warn!(partner = %partner.id, reason, retry_in_ms = delay.as_millis() as u64, "parking failed; retrying");
                    if let Some(p) = batch.pop() {
                        self.spawn_park_later(run, p, delay, reason);
                    }
                    return;
                };
                if run.end.is_some() {
                    run.lanes.put_back(&key, batch);
                    return;
                }
                let delay = retry_after
                    .unwrap_or_else(|| backoff(&partner.retry, attempt))
                    .min(partner.retry.max_backoff.max(Duration::from_secs(1)) * 4);
                if attempt == 0 || attempt % 10 == 0 {
                    tracing::warn!(
                        partner = %partner.id, record = %key, attempt = attempt + 1, reason,
                        failing_for_s = since.elapsed().as_secs(), retry_in_ms = delay.as_millis() as u64,
                        "transient failure; the message stays in place and is retried"
                    );
                }
                self.set_status(|s| s.reason = Some(reason));
                run.lanes.absorb(&key, &mut batch);
                self.spawn_call(run, key, batch, attempt + 1, delay, true);
            }
            CallResult::WaitDatabase { reason } => {
                let Some(key) = key else { return };
                if run.end.is_some() {
                    run.lanes.put_back(&key, batch);
                    return;
                }
                let delay = backoff(&partner.retry, attempt);
                if attempt == 0 || attempt % 10 == 0 {
                    tracing::warn!(partner = %partner.id, record = %key, attempt = attempt + 1, reason, retry_in_ms = delay.as_millis() as u64, "the source database cannot be read; the change waits in place");
                }
                self.set_status(|s| s.reason = Some(reason));
                run.lanes.absorb(&key, &mut batch);
                self.spawn_call(run, key, batch, attempt + 1, delay, true);
            }
            CallResult::PartnerLevel { reason } => {
                if let Some(key) = key {
                    run.lanes.put_back(&key, batch);
                }
                if run.end.is_none() {
                    run.finish(End::Pause(Pause::PartnerLevel(reason)), self.grace);
                }
            }
            CallResult::EndpointGone { reason } => {
                let Some(key) = key else { return };
                if run.end.is_some() {
                    run.lanes.put_back(&key, batch);
                    return;
                }
                let recent = self
                    .discovered_at
                    .is_some_and(|at| at.elapsed() < REDISCOVERY_MIN_GAP);
                if !recent {
                    tracing::info!(partner = %partner.id, reason, "endpoint answered 404: discovering the endpoints again");
                    if let Err(pause) = self.discover_once().await {
                        tracing::warn!(partner = %partner.id, reason = pause.reason(), "discovery after a 404 failed");
                    }
                }
                self.spawn_call(run, key, batch, attempt + 1, Duration::ZERO, false);
            }
            CallResult::Aborted => {
                if let Some(key) = key {
                    run.lanes.put_back(&key, batch);
                }
            }
        }
    }

    fn spawn_park_later(&self, run: &mut Run, pending: Pending, delay: Duration, reason: String) {
        let shared = self.shared.clone();
        let mut cancel = run.cancel.subscribe();
        run.calls.spawn(async move {
            let batch = vec![pending];
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.wait_for(|c| *c) => {
                    return CallDone { key: None, batch, attempt: 1, result: CallResult::Aborted };
                }
            }
            let result = shared.park(&batch, &reason).await;
            CallDone {
                key: None,
                batch,
                attempt: 1,
                result,
            }
        });
    }

    /// Sends the acks that are due (see [`AckWindow`]); `everything` when the phase ends. A
    /// refused ack (closed channel, consumer timeout) ends consuming, and the broker hands the
    /// message out again.
    async fn flush_acks(&self, run: &mut Run, everything: bool) {
        let due = run.held.take_due(Instant::now(), everything);
        let head = due.head.map(|acker| (acker, true));
        let singles = due.singles.into_iter().map(|acker| (acker, false));
        for (acker, multiple) in head.into_iter().chain(singles) {
            match acker.ack(BasicAckOptions { multiple }).await {
                Ok(true) => {}
                Ok(false) => {
                    run.finish(
                        End::ChannelLost(
                            "an ack was refused: the channel is closed (consumer timeout?)".into(),
                        ),
                        Duration::ZERO,
                    );
                    return;
                }
                Err(e) => {
                    run.finish(End::ChannelLost(format!("ack failed: {e}")), Duration::ZERO);
                    return;
                }
            }
        }
    }

    /// Moves the pushes counted since the last tick into the shared status.
    fn report_pushed(&self, run: &mut Run) {
        if run.pushed_since_tick > 0 {
            let pushed = std::mem::take(&mut run.pushed_since_tick);
            let now = now_rfc3339();
            self.set_status(|s| {
                s.pushed += pushed;
                s.last_success = Some(now);
            });
        }
    }
}

/// The lane, the record and the kind of lane of a change.
///
/// Tables of a composite tree (`[[table.children]]`) share one lane per Location, and a change's
/// record is its target object (an EVSE for a Connector's change, see [`crate::composite`]), so
/// every change of one EVSE and its connectors becomes one read and one PUT. Other Locations
/// module tables (mapped without children) share a lane per Location too, so a child never
/// overtakes its parent (the partner answers 2003 "unknown location" to an EVSE of a Location it
/// does not hold yet). Sessions and CDRs go one message per call. Everything else: a lane per
/// record, coalesced.
fn lane_of(
    config: &MappingConfig,
    mapping: &TableMapping,
    change: &RowChange,
) -> Result<(String, String, LaneKind), String> {
    if config.in_tree(mapping) {
        let Some(image) = change.latest_image() else {
            return Err(format!(
                "change {} of `{}.{}` carries no row image to name its object",
                change.id, change.database, change.table
            ));
        };
        let target = composite::target_of(config, mapping, image)
            .map_err(|e| format!("cannot be sent as OCPI: {e}"))?;
        let root = composite::root_of(config, &target);
        return Ok((root.key(), target.key(), LaneKind::Tree));
    }
    let record = change.record_key();
    // Sessions and CDRs keep every state, in order (README "Delivery contract per module"):
    // one message per call, never merged.
    if matches!(mapping.module, Module::Cdrs | Module::Sessions) {
        return Ok((record.clone(), record, LaneKind::OneAtATime));
    }
    if mapping.module == Module::Locations && mapping.path.len() >= 3 {
        if let Some(image) = change.latest_image() {
            let mut key = String::from("locations");
            for column in &mapping.path[..3] {
                key.push('/');
                match image.get(column) {
                    Some(serde_json::Value::String(s)) => key.push_str(s),
                    Some(other) => key.push_str(&other.to_string()),
                    None => {}
                }
            }
            return Ok((key, record, LaneKind::Record));
        }
    }
    Ok((record.clone(), record, LaneKind::Record))
}

/// A lane-less delivery (malformed) still travels as a [`Pending`]; its change is never read.
/// The park reason of a too-large marker (see `change_message::RowChange::too_large`).
pub fn too_large_reason(change: &RowChange, too_large: change_message::TooLarge) -> String {
    format!(
        "too large at source: the bridge's message for this {} of `{}.{}` was {} bytes, over \
         its broker.max_message_bytes = {}, so it came without row data; re-sync this record \
         (raise the limit or leave the large column out, then touch the row or run an initial \
         sync)",
        change.op.as_str(),
        change.database,
        change.table,
        too_large.bytes,
        too_large.limit
    )
}

fn placeholder_change() -> RowChange {
    RowChange {
        version: change_message::CONTRACT_VERSION,
        id: String::new(),
        seq: 0,
        op: change_message::Operation::Update,
        database: String::new(),
        table: String::new(),
        key: Default::default(),
        after: None,
        before: None,
        changed: Vec::new(),
        binary_columns: Vec::new(),
        merged: 1,
        source: change_message::Source {
            server_id: 0,
            file: String::new(),
            pos: 0,
            row: 0,
            gtid: None,
            tx_index: 0,
            commit_time: String::new(),
        },
        snapshot: None,
        too_large: None,
    }
}

/// Sleeps `delay`; true when a stop came first.
async fn wait_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::call::{post_may_have_landed, with_query};

    #[test]
    fn a_post_counts_as_unsent_only_when_refused_or_answered_with_an_error() {
        assert!(!post_may_have_landed("could not connect: refused"));
        assert!(!post_may_have_landed(
            "HTTP 503 Service Unavailable, body is not an OCPI envelope: x"
        ));
        assert!(!post_may_have_landed(
            "HTTP 200 OK, OCPI status_code 3000 (generic server error): x"
        ));
        assert!(post_may_have_landed(
            "no complete answer within 10s (timeout): x"
        ));
        assert!(post_may_have_landed("connection failed: reset"));
        assert!(post_may_have_landed(
            "HTTP 200 OK, body is not an OCPI envelope: <html>"
        ));
        assert!(post_may_have_landed(
            "HTTP 200, reading the response body failed: reset"
        ));
    }

    #[test]
    fn query_parameters_are_appended_and_escaped() {
        let q = vec![("type".to_string(), "APP USER".to_string())];
        assert_eq!(
            with_query("http://h/t/1", &q),
            "http://h/t/1?type=APP%20USER"
        );
        assert_eq!(with_query("http://h/t/1", &[]), "http://h/t/1");
    }
}
