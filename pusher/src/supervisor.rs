//! The pusher process: per session a consuming and a publishing broker connection
//! ([`crate::broker_links`]), the partners' topology declared, presence announced and heard,
//! and one delivery worker per partner this pusher owns.
//!
//! Ownership comes from [`crate::assignment`] over the live pushers on the presence board, so
//! partners spread evenly and move when a pusher comes or goes. A worker that loses ownership
//! stops gracefully (finishes its calls, closes its channel, which returns what it held to the
//! head of the queue); the new owner's consumer, registered meanwhile as the queue's single
//! active consumer in waiting, takes over from there. When the connection is lost, every worker
//! is dropped at once (the broker returns their messages) and the session starts again. While
//! a resource alarm blocks publishing, announcements are skipped and nobody's expire (the other
//! pushers are blocked alike): deliveries and acks go on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::{Connection, ConnectionProperties};

use crate::broker_links::BrokerLinks;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::assignment::{assign, PusherView};
use crate::cdr_ledger::CdrLedger;
use crate::config::{redact_url, Config, PartnerConfig};
use crate::delivery::{Worker, WorkerExit};
use crate::mapping::Module;
use crate::metrics::{Phase, PusherMetrics, DEPTH_POLL_EVERY};
use crate::parking::Parker;
use crate::presence::{self, Announcement, Board, PartnerStatus};
use crate::source_db::SourceDb;
use crate::topology::{self, TopologyError};

#[derive(Debug, thiserror::Error)]
pub enum PusherError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Database(#[from] crate::source_db::DbError),
    /// `broker.url` / `[broker.tls]` do not fit the broker.
    #[error("{0}")]
    BrokerTls(String),
}

enum SessionEnd {
    Stopped,
    Lost(String),
}

struct Running {
    stop: watch::Sender<bool>,
    handle: JoinHandle<WorkerExit>,
    releasing: bool,
    /// The partner's backlog watcher (see `backlog`), stopped with the worker.
    _backlog: SessionTask,
}

/// Runs until `stop` turns true; returns an error only for what a restart cannot fix. Keeps
/// `metrics` up to date (phase, per-partner gauges, the workers' counters).
pub async fn run(
    config: Arc<Config>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<PusherMetrics>,
) -> Result<(), PusherError> {
    let mut delay = Duration::from_millis(200);
    metrics.set_phase(Phase::Connecting, redact_url(&config.broker.url));
    let source_db = open_source_db(&config, &metrics).await?;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let connect = BrokerLinks::open(&config.broker, &config.pusher.name, &metrics);
        let Some(connected) = unless_stopped(&mut stop, connect).await else {
            return Ok(()); // asked to stop while connecting (a broker that does not answer)
        };
        match connected {
            Ok(links) => {
                delay = Duration::from_millis(200);
                let end = session(&config, &links, &mut stop, &metrics, &source_db).await;
                links.close("pusher stopping").await;
                match end? {
                    SessionEnd::Stopped => return Ok(()),
                    SessionEnd::Lost(why) => {
                        tracing::warn!(why, "broker connection lost; reconnecting");
                        metrics.set_phase(Phase::Connecting, format!("connection lost: {why}"));
                    }
                }
            }
            Err(error) => {
                if let Some(problem) =
                    tls_connect::broker::problem(&error, &config.broker.tls, &config.broker.url)
                {
                    return Err(PusherError::BrokerTls(problem));
                }
                metrics.set_phase(
                    Phase::Connecting,
                    format!("{}: {error}", redact_url(&config.broker.url)),
                );
                tracing::warn!(
                    broker = %redact_url(&config.broker.url),
                    %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "waiting for the broker"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// The source database for composite objects, when `[database]` is configured. Every table and
/// column the partners' tree mappings read is checked now: a missing one stops the pusher with
/// its name. A server that cannot be reached yet is not fatal: composite pushes wait for it.
async fn open_source_db(
    config: &Config,
    metrics: &PusherMetrics,
) -> Result<Option<Arc<SourceDb>>, PusherError> {
    let Some(database) = &config.database else {
        return Ok(None);
    };
    let db = Arc::new(SourceDb::new(database));
    let mut tables = Vec::new();
    for partner in &config.partners {
        for table in &partner.mapping.tables {
            if partner.mapping.in_tree(table) {
                let columns = table.columns().into_iter().map(String::from).collect();
                let entry = (table.database.clone(), table.table.clone(), columns);
                if !tables.contains(&entry) {
                    tables.push(entry);
                }
            }
        }
    }
    match db.check_tables(&tables).await {
        Ok(()) => metrics.set_database(None),
        Err(
            e @ (crate::source_db::DbError::Schema { .. } | crate::source_db::DbError::Tls { .. }),
        ) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "the source database cannot be read yet; composite objects wait for it");
            metrics.set_database(Some(e.to_string()));
        }
    }
    Ok(Some(db))
}

/// Declares every partner's queues and exits: what `pusher setup` does, and what must happen
/// before the bridge publishes (it refuses to publish into an exchange with no queue bound).
pub async fn setup(config: &Config) -> anyhow::Result<()> {
    let connection = config
        .broker
        .connect(ConnectionProperties::default())
        .await
        .map_err(|e| anyhow::anyhow!(config.broker.explain(&e)))?;
    for partner in &config.partners {
        let cut_off = crate::backlog::load(&config.pusher.state_dir, &partner.id)?;
        topology::declare_partner(&connection, &config.broker, partner, cut_off.is_none()).await?;
        match cut_off {
            None => println!(
                "partner {}: queue {} bound to {}, parking queue {}",
                partner.id, partner.queue, config.broker.exchange, partner.parking_queue
            ),
            Some(cut) => println!(
                "partner {}: queue {} left UNBOUND: {} (run `pusher sync {}`), parking queue {}",
                partner.id,
                partner.queue,
                cut.describe(),
                partner.id,
                partner.parking_queue
            ),
        }
    }
    tls_connect::broker::close(&connection, "done").await;
    Ok(())
}

/// Aborts the task when dropped: a session's helper tasks end with the session.
struct SessionTask(JoinHandle<()>);

impl Drop for SessionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the partner queues' depths into the metrics every [`DEPTH_POLL_EVERY`].
async fn poll_depths(
    config: Arc<Config>,
    connection: Arc<Connection>,
    metrics: Arc<PusherMetrics>,
) {
    loop {
        let depths = crate::status::queue_depths(&connection, &config.partners).await;
        for (id, depth) in depths {
            metrics
                .partner(&id)
                .set_depths(depth.queue.map(|q| q.0), depth.parked);
        }
        tokio::time::sleep(DEPTH_POLL_EVERY).await;
    }
}

/// `work`, unless a stop is asked for first (then `None`): a pusher asked to stop never waits
/// on a broker that does not answer.
async fn unless_stopped<T>(
    stop: &mut watch::Receiver<bool>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        done = work => Some(done),
        _ = stop.changed() => None,
    }
}

/// How long a presence announcement may wait for the broker's confirmation.
const ANNOUNCE_LIMIT: Duration = Duration::from_secs(5);
/// The same for the announcement that says this pusher leaves, sent while it stops.
const LEAVING_ANNOUNCE_LIMIT: Duration = Duration::from_secs(2);

async fn session(
    config: &Arc<Config>,
    links: &BrokerLinks,
    stop: &mut watch::Receiver<bool>,
    metrics: &Arc<PusherMetrics>,
    source_db: &Option<Arc<SourceDb>>,
) -> Result<SessionEnd, PusherError> {
    let name = config.pusher.name.clone();
    let connection = &links.consume;
    for partner in &config.partners {
        // A cut-off partner's queue stays unbound until its re-sync (see `backlog`).
        let bind = !matches!(
            crate::backlog::load(&config.pusher.state_dir, &partner.id),
            Ok(Some(_))
        );
        let declared = topology::declare_partner(connection, &config.broker, partner, bind);
        match unless_stopped(stop, declared).await {
            None => return Ok(SessionEnd::Stopped),
            Some(Ok(())) => {}
            Some(Err(e @ TopologyError::QueueMismatch { .. })) => return Err(e.into()),
            Some(Err(e)) => return Ok(SessionEnd::Lost(e.to_string())),
        }
    }
    let listening = match unless_stopped(stop, connection.create_channel()).await {
        None => return Ok(SessionEnd::Stopped),
        Some(Ok(c)) => c,
        Some(Err(e)) => return Ok(SessionEnd::Lost(e.to_string())),
    };
    let channel = match unless_stopped(stop, links.publish.create_channel()).await {
        None => return Ok(SessionEnd::Stopped),
        Some(Ok(c)) => c,
        Some(Err(e)) => return Ok(SessionEnd::Lost(e.to_string())),
    };
    let listened = presence::listen(&listening, &config.broker.presence_exchange);
    let mut heard = match unless_stopped(stop, listened).await {
        None => return Ok(SessionEnd::Stopped),
        Some(Ok(c)) => c,
        Some(Err(e)) => return Ok(SessionEnd::Lost(e.to_string())),
    };
    let senders = config.broker.senders.clone();
    let parker = match Parker::new(links.publish.clone(), &name, senders.own()) {
        Ok(p) => p,
        Err(e) => return Ok(SessionEnd::Lost(e.to_string())),
    };
    tracing::info!(pusher = %name, partners = config.partners.len(), "pusher started");
    metrics.set_phase(Phase::Running, "");
    // Queue depths cost the broker a passive declaration per queue: only when someone reads them.
    let _depths = (!config.metrics.listen.is_empty()).then(|| {
        SessionTask(tokio::spawn(poll_depths(
            config.clone(),
            connection.clone(),
            metrics.clone(),
        )))
    });

    let serves: Vec<String> = config.partners.iter().map(|p| p.id.clone()).collect();
    let statuses: HashMap<String, Arc<Mutex<PartnerStatus>>> = serves
        .iter()
        .map(|id| (id.clone(), Arc::new(Mutex::new(PartnerStatus::default()))))
        .collect();
    let mut workers: HashMap<String, Running> = HashMap::new();
    let mut refused_until: HashMap<String, Instant> = HashMap::new();
    let mut board = Board::default();
    let mut strangers = presence::Strangers::default();
    let started = Instant::now();
    let interval = Duration::from_millis(config.pusher.presence_interval_ms);
    let expiry = Duration::from_millis(config.pusher.presence_expiry_ms);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let end = loop {
        tokio::select! {
            message = heard.next() => match message {
                Some(Ok(delivery)) => {
                    if let Err(refusal) = senders.presence(&delivery.properties) {
                        if strangers.first_time(refusal.user()) {
                            tracing::warn!(
                                sender = %refusal.user(),
                                pusher_users = ?senders.pushers(),
                                "ignoring presence announcements from a broker user not in \
                                 broker.pusher_users (they never change who owns a partner); if \
                                 it is another pusher's user, add it to broker.pusher_users. \
                                 Said once per user"
                            );
                        }
                    } else if let Ok(a) = serde_json::from_slice::<Announcement>(&delivery.data) {
                        if a.pusher != name {
                            board.record(a, Instant::now());
                        }
                    }
                }
                Some(Err(e)) => break SessionEnd::Lost(e.to_string()),
                None => break SessionEnd::Lost("presence consumer cancelled".into()),
            },
            _ = tick.tick() => {
                let mine = announcement(&name, &serves, &workers, &statuses, false);
                if let Err(lost) = announce(links, &channel, config, senders.own(), &mine).await {
                    break SessionEnd::Lost(lost);
                }
                let now = Instant::now();
                board.record(mine, now);
                // While publishing is blocked the others cannot announce either: keep them.
                if !links.publishing_blocked() {
                    board.expire(now, expiry);
                }
                if let Some(lost) = reap(&mut workers).await {
                    break SessionEnd::Lost(lost);
                }
                if let Some(lost) = links.lost() {
                    break SessionEnd::Lost(lost.into());
                }
                // Hear the others for a moment before claiming anything.
                if started.elapsed() >= interval * 2 {
                    reconcile(config, &name, &board, connection, &parker, &statuses, metrics, source_db, &mut workers, &mut refused_until);
                }
                metrics.observe_board(&board, |id| workers.contains_key(id));
                if let Some(db) = source_db {
                    metrics.set_database(db.unavailable_reason());
                }
                metrics.beat();
            },
            _ = stop.changed() => break SessionEnd::Stopped,
        }
    };

    match end {
        SessionEnd::Stopped => {
            metrics.set_phase(Phase::Stopping, "finishing calls in flight");
            for running in workers.values() {
                let _ = running.stop.send(true);
            }
            let bound =
                Duration::from_millis(config.pusher.shutdown_grace_ms) + Duration::from_secs(7);
            for (id, running) in workers.drain() {
                match tokio::time::timeout(bound, running.handle).await {
                    Ok(_) => {}
                    Err(_) => tracing::warn!(partner = %id, "worker did not stop in time"),
                }
            }
            let leaving = announcement(&name, &serves, &HashMap::new(), &statuses, true);
            // Bounded: on a channel the broker is closing, the publish may never be confirmed,
            // and a pusher asked to stop must stop (the others see it leave when its
            // announcements expire).
            let announced = tokio::time::timeout(
                LEAVING_ANNOUNCE_LIMIT,
                presence::announce(
                    &channel,
                    &config.broker.presence_exchange,
                    senders.own(),
                    &leaving,
                ),
            )
            .await;
            if announced.is_err() {
                tracing::warn!(
                    "the leaving announcement was not confirmed within 2 s: stopping without it"
                );
            }
            Ok(SessionEnd::Stopped)
        }
        lost @ SessionEnd::Lost(_) => {
            for (_, running) in workers.drain() {
                running.handle.abort();
            }
            Ok(lost)
        }
    }
}

/// Publishes this pusher's announcement, unless the broker blocks publishing (an alarm: it
/// would wait for the alarm to clear). Bounded: an announcement the broker never confirms (a
/// channel it is closing) must not keep the session loop from hearing a stop or noticing a
/// lost connection; it is an error unless the broker has blocked publishing meanwhile.
async fn announce(
    links: &BrokerLinks,
    channel: &lapin::Channel,
    config: &Config,
    user: &str,
    mine: &Announcement,
) -> Result<(), String> {
    if links.publishing_blocked() {
        return Ok(());
    }
    let exchange = &config.broker.presence_exchange;
    let announced = tokio::time::timeout(
        ANNOUNCE_LIMIT,
        presence::announce(channel, exchange, user, mine),
    );
    match announced.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) if links.publishing_blocked() => Ok(()),
        Err(_) => Err(format!(
            "the broker did not confirm a presence announcement within {} s",
            ANNOUNCE_LIMIT.as_secs()
        )),
    }
}

fn announcement(
    name: &str,
    serves: &[String],
    workers: &HashMap<String, Running>,
    statuses: &HashMap<String, Arc<Mutex<PartnerStatus>>>,
    leaving: bool,
) -> Announcement {
    let mut partners = BTreeMap::new();
    for id in workers.keys() {
        if let Some(status) = statuses
            .get(id)
            .and_then(|s| s.lock().ok().map(|s| s.clone()))
        {
            partners.insert(id.clone(), status);
        }
    }
    Announcement {
        pusher: name.to_string(),
        serves: serves.to_vec(),
        partners,
        leaving,
    }
}

/// Removes finished workers; a worker that lost the connection ends the session.
async fn reap(workers: &mut HashMap<String, Running>) -> Option<String> {
    let finished: Vec<String> = workers
        .iter()
        .filter(|(_, r)| r.handle.is_finished())
        .map(|(id, _)| id.clone())
        .collect();
    let mut lost = None;
    for id in finished {
        if let Some(running) = workers.remove(&id) {
            match running.handle.await {
                Ok(WorkerExit::Stopped) => {
                    tracing::info!(partner = %id, "partner handed back");
                }
                Ok(WorkerExit::ConnectionLost(why)) => lost = Some(why),
                Err(e) => tracing::error!(partner = %id, error = %e, "partner worker failed"),
            }
        }
    }
    lost
}

#[allow(clippy::too_many_arguments)]
fn reconcile(
    config: &Arc<Config>,
    name: &str,
    board: &Board,
    connection: &Arc<Connection>,
    parker: &Parker,
    statuses: &HashMap<String, Arc<Mutex<PartnerStatus>>>,
    metrics: &PusherMetrics,
    source_db: &Option<Arc<SourceDb>>,
    workers: &mut HashMap<String, Running>,
    refused_until: &mut HashMap<String, Instant>,
) {
    let alive: Vec<&Announcement> = board.alive().collect();
    let mut all: Vec<&str> = alive
        .iter()
        .flat_map(|a| a.serves.iter().map(String::as_str))
        .collect();
    all.sort_unstable();
    all.dedup();
    let views: Vec<PusherView> = alive
        .iter()
        .map(|a| PusherView {
            name: a.pusher.as_str(),
            serves: a.serves.iter().map(String::as_str).collect(),
        })
        .collect();
    let owners = assign(&all, &views);
    for partner in &config.partners {
        let mine = owners.get(partner.id.as_str()) == Some(&name);
        match workers.get_mut(&partner.id) {
            Some(running) if !mine && !running.releasing => {
                tracing::info!(partner = %partner.id, to = owners.get(partner.id.as_str()).copied().unwrap_or("-"), "handing the partner over");
                running.releasing = true;
                let _ = running.stop.send(true);
            }
            Some(_) => {}
            None if mine => {
                if refused_until
                    .get(&partner.id)
                    .is_some_and(|t| Instant::now() < *t)
                {
                    continue;
                }
                let started = start_worker(
                    config, partner, name, connection, parker, statuses, metrics, source_db,
                );
                match started {
                    Ok(running) => {
                        workers.insert(partner.id.clone(), running);
                    }
                    Err(error) => {
                        tracing::error!(partner = %partner.id, %error, "cannot start pushing to the partner; trying again in 30 s");
                        refused_until
                            .insert(partner.id.clone(), Instant::now() + Duration::from_secs(30));
                    }
                }
            }
            None => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn start_worker(
    config: &Arc<Config>,
    partner: &Arc<PartnerConfig>,
    name: &str,
    connection: &Arc<Connection>,
    parker: &Parker,
    statuses: &HashMap<String, Arc<Mutex<PartnerStatus>>>,
    metrics: &PusherMetrics,
    source_db: &Option<Arc<SourceDb>>,
) -> anyhow::Result<Running> {
    let ledger = if partner.modules.contains(&Module::Cdrs) {
        Some(crate::disk_work::off_worker(|| {
            CdrLedger::open(
                &config.pusher.state_dir,
                &partner.id,
                Duration::from_secs(config.pusher.cdr_ledger_days.saturating_mul(86_400)),
            )
        })?)
    } else {
        None
    };
    let status = statuses
        .get(&partner.id)
        .cloned()
        .unwrap_or_else(|| Arc::new(Mutex::new(PartnerStatus::default())));
    if let Ok(mut s) = status.lock() {
        *s = PartnerStatus {
            state: "discovering".into(),
            endpoint: "not discovered yet".into(),
            ..PartnerStatus::default()
        };
    }
    let backlog = SessionTask(tokio::spawn(crate::backlog::watch(
        config.clone(),
        partner.clone(),
        connection.clone(),
        status.clone(),
        metrics.partner(&partner.id),
    )));
    let worker = Worker::new(
        partner.clone(),
        connection.clone(),
        parker.clone(),
        ledger,
        name,
        Duration::from_millis(config.pusher.shutdown_grace_ms),
        status,
        metrics.partner(&partner.id),
        source_db.clone(),
        config.broker.senders.clone(),
    )?;
    let (stop, stop_rx) = watch::channel(false);
    let handle = tokio::spawn(worker.run(stop_rx));
    Ok(Running {
        stop,
        handle,
        releasing: false,
        _backlog: backlog,
    })
}
