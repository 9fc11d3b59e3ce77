//! The bridge's main loop: binlog source -> dedup buffer -> publisher, and the checkpoint that
//! follows broker confirms.
//!
//! A *session* is one replication connection. It starts from the saved checkpoint, and when it
//! ends (connection lost, stop requested, fatal error) everything it read is flushed and
//! confirmed before the checkpoint is saved, so the next session (or the next process) resumes
//! exactly there. Changes published after the checkpoint are published again by the next
//! session, with the same `id` and `seq`: duplicates are possible, losses are not.

use crate::capture_filter::CaptureFilter;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, ServerIdentity};
use crate::config::Config;
use crate::dedup::{DedupBuffer, DedupStats, Released};
use crate::message_size::{SizeLimit, TooLargeError};
use crate::metrics::{BridgeMetrics, Phase, Position};
use crate::preflight::{self, PreflightError};
use crate::publisher::{properties, text_header, Outgoing, PublishError, Publisher};
use crate::schema_catalog;
use crate::session_start;
use crate::source::read_ahead::ReadAhead;
use crate::source::{
    self, Boundary, CapturedRow, SignalRow, SourceError, SourceEvent, SourceParams,
};
use crate::sync::tracker::DriverEvent;
use crate::sync::{requests, Emission, SyncEngine};
use crate::time_format::{now_rfc3339, rfc3339_utc_millis, unix_millis_now, SecondsText};
use change_message::{
    headers, Heartbeat, Message, Operation, RowChange, SnapshotMark, Source, CONTRACT_VERSION,
};
use lapin::types::AMQPValue;
use lapin::BasicProperties;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// How many events the reader may run ahead of the pipeline. The dedup buffer behind it is the
/// real reservoir (`dedup.max_rows`); this only absorbs jitter between the two threads, and
/// every event held here is a decoded row in memory.
const SOURCE_CHANNEL: usize = 1024;
const STATS_EVERY: Duration = Duration::from_secs(30);
/// How often the session copies its state into the metrics (also done at every tick).
const REPORT_EVERY: Duration = Duration::from_millis(250);

enum SessionEnd {
    Stopped,
    SourceFailed(SourceError),
}

/// Runs until `stop` turns true (returns Ok) or a fatal error, keeping `metrics` up to date.
pub async fn run(
    config: Config,
    stop: watch::Receiver<bool>,
    metrics: Arc<BridgeMetrics>,
) -> Result<(), BridgeError> {
    let mut filter = CaptureFilter::new(&config.capture);
    let signal_table = config.signal_table();
    if let Some((database, table)) = &signal_table {
        // The signal table is never captured, whatever the filter says.
        filter.exclude_table(database, table);
    }
    let filter = Arc::new(filter);
    let store = CheckpointStore::new(&config.checkpoint.path);
    let mut publisher = Publisher::new(
        &config.broker.url,
        &config.broker.tls,
        &config.broker.exchange,
        crate::publish_window::ConfirmWindow::new(
            config.broker.confirm_window,
            config.broker.confirm_window_bytes,
        ),
        Duration::from_secs(config.broker.refused_publish_timeout_secs),
        stop.clone(),
    );
    metrics.set_phase(
        Phase::WaitingForBroker,
        crate::config::redact_url(&config.broker.url),
    );
    // Helper tasks stop with the bridge, also when it stops on an error: every broker connection
    // is closed before the runtime goes (lapin's I/O thread panics at a shutdown that finds a
    // connection still open).
    let (tasks_stop, tasks_stop_rx) = watch::channel(false);
    let forward = {
        let tasks_stop = tasks_stop.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
            let _ = tasks_stop.send(true);
        })
    };
    let mut tasks = Vec::new();
    let result = stream(
        &config,
        filter,
        &store,
        &mut publisher,
        (&stop, &tasks_stop_rx),
        &metrics,
        &mut tasks,
    )
    .await;
    let _ = tasks_stop.send(true);
    forward.abort();
    publisher.close().await;
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    result
}

/// Connects to the broker, then reads, publishes and checkpoints session after session (a
/// session ends when the database connection fails) until a stop or a fatal error. Helper
/// tasks it starts (sync requests) take `tasks_stop` and join `tasks`.
async fn stream(
    config: &Config,
    filter: Arc<CaptureFilter>,
    store: &CheckpointStore,
    publisher: &mut Publisher,
    (stop, tasks_stop): (&watch::Receiver<bool>, &watch::Receiver<bool>),
    metrics: &Arc<BridgeMetrics>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), BridgeError> {
    match publisher.connect().await {
        Ok(()) => metrics.set_broker_connected(true),
        Err(PublishError::Interrupted) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(exchange = %config.broker.exchange, "connected to the broker");
    let signal_table = config.signal_table();

    let mut signal_ready = false;
    let mut backoff = Backoff::new();
    // A read that fails again at the same position after a reconnect is fatal.
    let mut retry_guard = source::RetryGuard::default();
    loop {
        if *stop.borrow() {
            break;
        }
        let checkpoint = store.load()?;
        let (facts, catalog) = match preflight::run(&config.source, &filter, checkpoint.as_ref())
            .await
        {
            Ok(found) => found,
            Err(error) if error.is_retryable() => {
                tracing::warn!(%error, retry_in_s = backoff.peek().as_secs_f32(), "waiting for the database");
                metrics.set_phase(Phase::WaitingForDatabase, error.to_string());
                if backoff.wait(stop).await {
                    break;
                }
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        if let (Some((database, table)), false) = (&signal_table, signal_ready) {
            match preflight::signal_table(&config.source, database, table).await {
                Ok(()) => {}
                Err(error) if error.is_retryable() => {
                    tracing::warn!(%error, retry_in_s = backoff.peek().as_secs_f32(), "waiting for the database");
                    metrics.set_phase(Phase::WaitingForDatabase, error.to_string());
                    if backoff.wait(stop).await {
                        break;
                    }
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
            signal_ready = true;
            let shared = Arc::new(config.clone());
            tasks.push(tokio::spawn(requests::serve(
                shared.clone(),
                filter.clone(),
                metrics.clone(),
                tasks_stop.clone(),
            )));
            tasks.push(tokio::spawn(requests::clean_signals(
                shared,
                tasks_stop.clone(),
            )));
        }
        let (start, next_seq, start_gtid) =
            session_start::start_of(config, &facts, checkpoint.as_ref(), store.path())?;
        tracing::info!(server = %facts.version, server_id = facts.server_id, "database checks passed");

        let read_ahead = ReadAhead::new(config.source.read_ahead_bytes);
        let lookup_config = config.source.clone();
        let is_mariadb = facts.is_mariadb;
        let params = SourceParams {
            opts: preflight::connection_opts(&config.source),
            is_mariadb,
            server_id: config.source.server_id,
            heartbeat: Duration::from_secs(config.source.heartbeat_secs),
            start,
            start_gtid,
            filter: filter.clone(),
            catalog: catalog.tables,
            lookup: Box::new(move |database, table| {
                let source = lookup_config.clone();
                Box::pin(async move {
                    let mut conn = preflight::connect(&source).await.ok()?;
                    let found = schema_catalog::inspect(
                        &mut conn,
                        is_mariadb,
                        std::slice::from_ref(&database),
                        Some(&table),
                    )
                    .await
                    .ok()?;
                    let _ = conn.disconnect().await;
                    found.table(&database, &table).cloned()
                })
            }),
            signal_table: signal_table.clone(),
            accepted_resets: Arc::new(
                config
                    .source
                    .accept_table_resets_at
                    .iter()
                    .filter_map(|at| crate::config::parse_binlog_position(at))
                    .collect(),
            ),
            metrics: metrics.clone(),
            read_ahead: read_ahead.clone(),
        };
        let sync = signal_table.as_ref().map(|_| {
            SyncEngine::start(
                config,
                is_mariadb,
                filter.clone(),
                checkpoint.as_ref().and_then(|c| c.sync.as_deref()),
            )
        });
        let (sync, driver_rx) = match sync {
            Some((engine, rx)) => (Some(engine), Some(rx)),
            None => (None, None),
        };
        metrics.set_phase(Phase::Connecting, "no binlog event received yet");
        metrics.update_stream(|s| {
            s.checkpoint = checkpoint
                .as_ref()
                .and_then(|cp| position_on(cp, &facts.identity));
            s.checkpoint_saved = Some(Instant::now());
            s.syncs = checkpoint.as_ref().and_then(|c| c.sync.clone());
        });
        let mut session = Session {
            config,
            metrics,
            publisher: &mut *publisher,
            read_ahead,
            store,
            dedup: DedupBuffer::new(
                config.dedup_window(),
                config.dedup.max_rows,
                config.dedup.max_bytes,
            ),
            next_seq,
            server: facts.identity.clone(),
            safe: checkpoint.clone(),
            saved: checkpoint,
            last_save: Instant::now(),
            last_publish: Instant::now(),
            last_boundary: None,
            published: 0,
            sync,
            snapshot_rows: 0,
            reported: Reported::default(),
            last_report: Instant::now(),
            last_change_time: None,
            commit_text: SecondsText::default(),
            streaming: false,
        };
        let session_started = Instant::now();
        let end = session.run(params, driver_rx, stop.clone()).await?;
        drop(session);
        if session_started.elapsed() > Duration::from_secs(60) {
            backoff = Backoff::new();
        }
        let end = match end {
            SessionEnd::SourceFailed(error) => SessionEnd::SourceFailed(retry_guard.check(error)),
            other => other,
        };
        match end {
            SessionEnd::Stopped => break,
            SessionEnd::SourceFailed(error) if error.is_retryable() => {
                tracing::error!(%error, retry_in_s = backoff.peek().as_secs_f32(), "binlog reading failed; reconnecting from the checkpoint");
                if backoff.wait(stop).await {
                    break;
                }
            }
            SessionEnd::SourceFailed(error) => return Err(error.into()),
        }
    }
    Ok(())
}

struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: Duration::from_millis(500),
        }
    }

    fn peek(&self) -> Duration {
        self.next
    }

    /// Sleeps; true when a stop was requested meanwhile.
    async fn wait(&mut self, stop: &watch::Receiver<bool>) -> bool {
        let mut stop = stop.clone();
        let delay = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(30));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
        let stopped = *stop.borrow();
        stopped
    }
}

/// The session's totals already added to the metrics.
#[derive(Default)]
struct Reported {
    dedup: DedupStats,
    published: u64,
    snapshot_rows: u64,
}

/// The checkpoint's position as this server's: none for a checkpoint of another server (after
/// a failover, until the first checkpoint on this one), whose file names mean nothing here
/// (the headroom would look for them on this server).
fn position_on(checkpoint: &Checkpoint, server: &ServerIdentity) -> Option<Position> {
    let other = checkpoint
        .server
        .as_ref()
        .is_some_and(|s| !s.is_same_server(server));
    (!other).then(|| position_of(checkpoint))
}

fn position_of(checkpoint: &Checkpoint) -> Position {
    Position {
        file: checkpoint.file.clone(),
        pos: checkpoint.pos,
        gtid: checkpoint.gtid.clone(),
    }
}

struct Session<'a> {
    config: &'a Config,
    metrics: &'a BridgeMetrics,
    publisher: &'a mut Publisher,
    /// The reader's byte budget: a row taken from the channel gives its share back.
    read_ahead: ReadAhead,
    store: &'a CheckpointStore,
    dedup: DedupBuffer,
    next_seq: u64,
    /// The server read from: its id goes into every message, its identity into every
    /// checkpoint.
    server: ServerIdentity,
    /// Newest position whose changes are all confirmed.
    safe: Option<Checkpoint>,
    saved: Option<Checkpoint>,
    last_save: Instant,
    last_publish: Instant,
    last_boundary: Option<Boundary>,
    published: u64,
    /// Initial syncs (None when `[sync] enabled = false`).
    sync: Option<SyncEngine>,
    snapshot_rows: u64,
    reported: Reported,
    last_report: Instant,
    /// Commit time of the last captured change or signal row read (for the lag in seconds).
    last_change_time: Option<u32>,
    /// The text of the current transaction's commit time, written once per transaction.
    commit_text: SecondsText,
    /// An event came from the reader: the replication connection streams.
    streaming: bool,
}

async fn next_driver_event(
    rx: &mut Option<mpsc::UnboundedReceiver<DriverEvent>>,
) -> Option<DriverEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Session<'_> {
    async fn run(
        &mut self,
        params: SourceParams,
        mut driver_rx: Option<mpsc::UnboundedReceiver<DriverEvent>>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<SessionEnd, BridgeError> {
        let (tx, mut rx) = mpsc::channel(SOURCE_CHANNEL);
        source::spawn(params, tx);
        let watchdog = Duration::from_secs(self.config.source.heartbeat_secs * 3 + 5);
        let heartbeat_every = Duration::from_secs(self.config.broker.heartbeat_secs);
        let mut last_event = Instant::now();
        let mut last_stats = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        // Created once: re-arming these futures on every pass costs more than the work itself.
        let stopped = async {
            loop {
                if stop.changed().await.is_err() || *stop.borrow() {
                    return;
                }
            }
        };
        tokio::pin!(stopped);

        let end = loop {
            // Outside `select!`: a reconnect must never be cancelled half-way.
            if self.publisher.needs_reconnect() {
                self.metrics.set_broker_connected(false);
                match self.publisher.connect().await {
                    Ok(()) => self.metrics.set_broker_connected(true),
                    Err(PublishError::Interrupted) => break SessionEnd::Stopped,
                    Err(e) => return Err(e.into()),
                }
            }
            if let Err(error) = self.feed(false).await {
                if matches!(error, PublishError::TooLarge(_)) {
                    self.settle_before_stop().await;
                }
                return Err(error.into());
            }
            if let Some(sync) = self.sync.as_mut() {
                sync.pace(self.dedup.snapshot_rows());
            }
            // A due deadline only helps when the publisher can take what it releases.
            let deadline = self
                .dedup
                .next_deadline(self.snapshot_room())
                .filter(|_| self.publisher.has_room())
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                _ = &mut stopped => {
                    tracing::info!("stop requested: flushing, waiting for broker confirms, saving the checkpoint");
                    break SessionEnd::Stopped;
                }
                confirmed = self.publisher.next_confirmation(), if self.publisher.has_in_flight() && !self.publisher.needs_reconnect() => {
                    if let Some(checkpoint) = confirmed? {
                        self.safe = Some(checkpoint);
                        self.save(false).await?;
                    }
                }
                Some(report) = next_driver_event(&mut driver_rx) => {
                    if let Some(sync) = self.sync.as_mut() {
                        sync.on_driver(report);
                    }
                }
                event = rx.recv(), if self.dedup.has_room() => {
                    last_event = Instant::now();
                    if let Some(end) = self.handle_event(event, &mut driver_rx) {
                        break end;
                    }
                    // Take what is already waiting in one go.
                    let mut end = None;
                    for _ in 0..512 {
                        if !self.dedup.has_room() {
                            break;
                        }
                        match rx.try_recv() {
                            Ok(event) => {
                                if let Some(e) = self.handle_event(Some(event), &mut driver_rx) {
                                    end = Some(e);
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    if let Some(end) = end {
                        break end;
                    }
                    if self.last_report.elapsed() >= REPORT_EVERY {
                        self.report();
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => {}
                _ = ticker.tick() => {
                    // Silence only counts while we are listening: with the buffer full, or
                    // events waiting in the channel, the reader is blocked by us, not dead.
                    if !self.dedup.has_room() || !rx.is_empty() {
                        last_event = Instant::now();
                    }
                    if last_event.elapsed() > watchdog {
                        let (file, pos) = self.position();
                        break SessionEnd::SourceFailed(SourceError::Lost {
                            file,
                            pos,
                            message: format!(
                                "no event or server heartbeat for {}s (heartbeat every {}s): the connection is presumed dead",
                                last_event.elapsed().as_secs(),
                                self.config.source.heartbeat_secs
                            ),
                        });
                    }
                    if self.dedup.is_empty() && self.last_publish.elapsed() >= heartbeat_every && self.publisher.has_room() {
                        self.publish_heartbeat().await?;
                    }
                    self.save(false).await?;
                    if let Some(sync) = self.sync.as_mut() {
                        sync.log_progress();
                    }
                    self.report();
                    if last_stats.elapsed() >= STATS_EVERY {
                        last_stats = Instant::now();
                        self.log_stats();
                    }
                }
            }
        };
        drop(rx);
        // Not streaming any more: winding down may wait long for the broker, which is no
        // reason for /healthz to call the process stuck.
        match &end {
            SessionEnd::Stopped => self
                .metrics
                .set_phase(Phase::Stopping, "flushing and saving the checkpoint"),
            SessionEnd::SourceFailed(error) => self
                .metrics
                .set_phase(Phase::WaitingForDatabase, error.to_string()),
        }
        self.wind_down().await?;
        Ok(end)
    }

    /// Takes one event from the reader; returns how the session ends if it does.
    fn handle_event(
        &mut self,
        event: Option<SourceEvent>,
        driver_rx: &mut Option<mpsc::UnboundedReceiver<DriverEvent>>,
    ) -> Option<SessionEnd> {
        self.streaming = true;
        match event {
            Some(SourceEvent::Row(row)) => {
                self.read_ahead.release(row.approx_bytes);
                self.push_row(*row)
            }
            Some(SourceEvent::Signal(signal)) => {
                // A chunk's rows are handed over before its high watermark is written, so
                // they are in the channel by now: take every report first.
                if let (Some(sync), Some(rx)) = (self.sync.as_mut(), driver_rx.as_mut()) {
                    while let Ok(report) = rx.try_recv() {
                        sync.on_driver(report);
                    }
                }
                self.on_signal(*signal);
            }
            Some(SourceEvent::Boundary(boundary)) => {
                self.dedup.push_boundary(Checkpoint {
                    file: boundary.file.to_string(),
                    pos: boundary.pos,
                    gtid: boundary.gtid.as_deref().map(str::to_string),
                    next_seq: self.next_seq,
                    saved_at: String::new(),
                    sync: self.sync.as_ref().and_then(SyncEngine::snapshot),
                    server: Some(self.server.clone()),
                });
                self.last_boundary = Some(boundary);
            }
            Some(SourceEvent::Alive) => self.metrics.server_alive(),
            Some(SourceEvent::Failed(error)) => return Some(SessionEnd::SourceFailed(error)),
            None => {
                let (file, pos) = self.position();
                return Some(SessionEnd::SourceFailed(SourceError::Lost {
                    file,
                    pos,
                    message: "the binlog reader stopped".into(),
                }));
            }
        }
        None
    }

    fn position(&self) -> (String, u64) {
        match (&self.last_boundary, &self.safe) {
            (Some(b), _) => (b.file.to_string(), b.pos),
            (None, Some(cp)) => (cp.file.clone(), cp.pos),
            (None, None) => (String::new(), 0),
        }
    }

    /// Publishes everything still buffered and waits for every confirm, then saves.
    async fn wind_down(&mut self) -> Result<(), BridgeError> {
        let result = async {
            loop {
                if self.publisher.needs_reconnect() {
                    self.publisher.connect().await?;
                }
                self.feed(true).await?;
                if !self.publisher.has_in_flight() {
                    break;
                }
                if let Some(checkpoint) = self.publisher.next_confirmation().await? {
                    self.safe = Some(checkpoint);
                }
            }
            Ok::<(), PublishError>(())
        }
        .await;
        match result {
            Ok(()) => {}
            Err(PublishError::Interrupted) => {
                tracing::warn!(
                    unconfirmed = self.publisher.unconfirmed(),
                    "stopped while the broker was unreachable: unconfirmed changes will be published again on the next start"
                );
            }
            Err(e) => {
                self.save(true).await?;
                return Err(e.into());
            }
        }
        self.save(true).await?;
        self.report();
        self.log_stats();
        Ok(())
    }

    /// Before a fatal stop at a change that may not be published: waits (a bounded time) for
    /// the confirms of what went out before it and saves the checkpoint they allow. Nothing is
    /// fed any more, so the checkpoint stays before that change.
    async fn settle_before_stop(&mut self) {
        let settle = async {
            loop {
                if self.publisher.needs_reconnect() && self.publisher.connect().await.is_err() {
                    return;
                }
                if !self.publisher.has_in_flight() {
                    return;
                }
                match self.publisher.next_confirmation().await {
                    Ok(Some(checkpoint)) => self.safe = Some(checkpoint),
                    Ok(None) => {}
                    Err(_) => return,
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(30), settle)
            .await
            .is_err()
        {
            tracing::warn!("the broker did not confirm everything before the stop; those changes are published again on the next start");
        }
        if let Err(error) = self.save(true).await {
            tracing::error!(%error, "saving the checkpoint before the stop failed");
        }
    }

    /// A signal row: sync requests and watermarks. A high watermark takes one `seq` (matched or
    /// not, so numbering is the same when the binlog is read again); the snapshot rows it
    /// releases carry it, which puts them after every change read before and before every
    /// change read after.
    fn on_signal(&mut self, signal: SignalRow) {
        self.last_change_time = Some(signal.commit_time);
        let Some(sync) = self.sync.as_mut() else {
            return;
        };
        let (is_high, emissions) = sync.on_signal(&signal);
        if !is_high {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        for emission in emissions {
            self.push_snapshot(&signal, seq, emission);
        }
    }

    fn push_snapshot(&mut self, at: &SignalRow, seq: u64, emission: Emission) {
        let Emission {
            sync_id,
            database,
            table,
            rows,
            binary_columns,
        } = emission;
        let commit_time = rfc3339_utc_millis(i64::from(at.commit_time) * 1000, 0);
        for row in rows {
            let change = RowChange {
                version: CONTRACT_VERSION,
                id: format!("snapshot:{sync_id}:{database}.{table}:{}", row.key_text),
                seq,
                op: Operation::Insert,
                database: database.clone(),
                table: table.clone(),
                key: row.key,
                after: Some(row.after),
                before: None,
                changed: Vec::new(),
                binary_columns: binary_columns.clone(),
                merged: 1,
                source: Source {
                    server_id: self.server.server_id,
                    file: at.file.to_string(),
                    pos: at.pos,
                    row: 0,
                    gtid: at.gtid.as_deref().map(str::to_string),
                    tx_index: 0,
                    commit_time: commit_time.clone(),
                },
                snapshot: Some(SnapshotMark {
                    sync_id: sync_id.clone(),
                }),
                too_large: None,
            };
            self.snapshot_rows += 1;
            self.dedup.push_snapshot(change, row.bytes);
        }
    }

    fn push_row(&mut self, row: CapturedRow) {
        if let Some(sync) = self.sync.as_mut() {
            sync.on_change(&row);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.last_change_time = Some(row.commit_time);
        let bytes = row.approx_bytes;
        let change = RowChange {
            version: CONTRACT_VERSION,
            id: format!("{}:{}:{}:{}", row.file, row.pos, row.row, row.op.as_str()),
            seq,
            op: row.op,
            database: row.database.to_string(),
            table: row.table.to_string(),
            key: row.key,
            after: row.after,
            before: row.before,
            changed: row.changed,
            binary_columns: row.binary_columns.to_vec(),
            merged: 1,
            source: Source {
                server_id: self.server.server_id,
                file: row.file.to_string(),
                pos: row.pos,
                row: row.row,
                gtid: row.gtid.as_deref().map(str::to_string),
                tx_index: row.tx_index,
                commit_time: self.commit_text.get(row.commit_time),
            },
            snapshot: None,
            too_large: None,
        };
        self.dedup.push_change(change, bytes, Instant::now());
    }

    /// Moves released entries from the dedup buffer to the publisher while it has room.
    async fn feed(&mut self, flush: bool) -> Result<(), PublishError> {
        let now = Instant::now();
        while self.publisher.has_room() && !self.publisher.needs_reconnect() {
            let snapshot_room = self.snapshot_room();
            match self.dedup.pop_ready(now, flush, snapshot_room) {
                Some(Released::Change(change)) => {
                    let queue = match &change.snapshot {
                        None => None,
                        Some(mark) => self.sync.as_ref().and_then(|s| s.queue_of(&mark.sync_id)),
                    };
                    let (outgoing, marker) = encode_change(
                        &change,
                        queue,
                        SizeLimit::new(&self.config.broker),
                        self.publisher.base(),
                    )?;
                    if marker {
                        self.metrics.count_too_large_marker();
                    }
                    self.publisher.publish(outgoing).await?;
                    self.published += 1;
                    self.last_publish = now;
                }
                Some(Released::Boundary(checkpoint)) => self.publisher.push_marker(checkpoint),
                None => break,
            }
        }
        Ok(())
    }

    /// Snapshot rows may fill at most `sync.snapshot_window` of the publisher's confirm window:
    /// a live change released meanwhile finds room at once (when that is less than
    /// `broker.confirm_window`) and waits behind at most that many snapshot rows at the broker,
    /// whatever the size of the sync.
    fn snapshot_room(&self) -> bool {
        self.publisher.unconfirmed() < self.config.sync.snapshot_window
    }

    async fn publish_heartbeat(&mut self) -> Result<(), PublishError> {
        let (file, pos) = self.position();
        let now_ms = unix_millis_now();
        let heartbeat = Heartbeat {
            version: CONTRACT_VERSION,
            id: format!("heartbeat:{now_ms}"),
            seq: self.next_seq.saturating_sub(1),
            time: now_rfc3339(),
            file,
            pos,
        };
        let props = properties(
            self.publisher.base(),
            &heartbeat.id,
            "heartbeat",
            &[],
            (now_ms / 1000) as u64,
        );
        let body = Message::Heartbeat(heartbeat).to_vec();
        self.publisher
            .publish(Outgoing {
                body: Arc::new(body),
                properties: props,
                queue: None,
            })
            .await?;
        self.last_publish = Instant::now();
        Ok(())
    }

    /// Saves the newest confirmed position, at most every `checkpoint.interval_ms` unless forced.
    async fn save(&mut self, force: bool) -> Result<(), CheckpointError> {
        let Some(safe) = &self.safe else {
            return Ok(());
        };
        let unchanged = self.saved.as_ref().is_some_and(|s| {
            s.file == safe.file && s.pos == safe.pos && s.next_seq == safe.next_seq
        });
        if unchanged {
            return Ok(());
        }
        // The first checkpoint is written at once: until it exists, a crash would restart
        // from `source.start` and miss what happened meanwhile.
        let first = self.saved.is_none();
        if !force
            && !first
            && self.last_save.elapsed() < Duration::from_millis(self.config.checkpoint.interval_ms)
        {
            return Ok(());
        }
        let mut checkpoint = safe.clone();
        checkpoint.saved_at = now_rfc3339();
        self.store.save_off_thread(checkpoint.clone()).await?;
        tracing::debug!(file = %checkpoint.file, pos = checkpoint.pos, "checkpoint saved");
        self.saved = Some(checkpoint);
        self.last_save = Instant::now();
        Ok(())
    }

    /// Copies what happened since the last report into the metrics: counters as deltas, the
    /// positions and sync state as they are now.
    fn report(&mut self) {
        let metrics = self.metrics;
        let stats = self.dedup.stats();
        metrics.add_counts(
            stats.received.saturating_sub(self.reported.dedup.received),
            stats.merged.saturating_sub(self.reported.dedup.merged),
            self.published.saturating_sub(self.reported.published),
            self.snapshot_rows
                .saturating_sub(self.reported.snapshot_rows),
        );
        self.reported = Reported {
            dedup: stats,
            published: self.published,
            snapshot_rows: self.snapshot_rows,
        };
        metrics.set_publisher(
            self.publisher.confirmed,
            self.publisher.unconfirmed() as u64,
        );
        metrics.set_broker_connected(!self.publisher.needs_reconnect());
        if self.streaming && metrics.phase() == Phase::Connecting {
            metrics.set_phase(Phase::Streaming, "");
        }
        metrics.beat();
        let read = self.last_boundary.as_ref().map(|b| Position {
            file: b.file.to_string(),
            pos: b.pos,
            gtid: b.gtid.as_deref().map(str::to_string),
        });
        let sync = self.sync.as_ref().and_then(SyncEngine::snapshot);
        metrics.update_stream(|s| {
            if read.is_some() {
                s.read = read;
            }
            if self.last_change_time.is_some() {
                s.last_change_time = self.last_change_time;
            }
            if let Some(saved) = &self.saved {
                s.checkpoint = position_on(saved, &self.server);
                s.checkpoint_saved = Some(self.last_save);
            }
            if sync.is_some() {
                s.syncs = sync;
            }
        });
        self.last_report = Instant::now();
    }

    fn log_stats(&self) {
        let stats = self.dedup.stats();
        let saved_pct = if stats.received == 0 {
            0.0
        } else {
            stats.merged as f64 * 100.0 / stats.received as f64
        };
        let (file, pos) = self.position();
        let stall = self.publisher.stall();
        tracing::info!(
            changes_read = stats.received,
            dedup_merged = stats.merged,
            dedup_saved_pct = format!("{saved_pct:.1}"),
            published = self.published,
            snapshot_rows = self.snapshot_rows,
            confirmed = self.publisher.confirmed,
            unconfirmed = self.publisher.unconfirmed(),
            read_file = %file,
            read_pos = pos,
            checkpoint_pos = self.saved.as_ref().map(|c| c.pos).unwrap_or(0),
            "bridge progress"
        );
        if let Some((waited, reason)) = stall {
            if waited > Duration::from_secs(10) {
                tracing::error!(
                    waited_s = waited.as_secs(),
                    blocked = reason.as_deref().unwrap_or("no"),
                    "the broker has not confirmed anything for a while"
                );
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The message of a change (or its too-large marker: the `bool` says which).
fn encode_change(
    change: &RowChange,
    queue: Option<Arc<str>>,
    limit: SizeLimit,
    base: &BasicProperties,
) -> Result<(Outgoing, bool), TooLargeError> {
    let body = limit.encode(change)?;
    let timestamp = (unix_millis_now() / 1000) as u64;
    let props = properties(
        base,
        &change.id,
        "change",
        &[
            (headers::DATABASE, text_header(&change.database)),
            (headers::TABLE, text_header(&change.table)),
            (headers::OPERATION, text_header(change.op.as_str())),
            (headers::SEQ, AMQPValue::LongLongInt(change.seq as i64)),
        ],
        timestamp,
    );
    let outgoing = Outgoing {
        body: Arc::new(body.bytes),
        properties: props,
        queue,
    };
    Ok((outgoing, body.marker.is_some()))
}
