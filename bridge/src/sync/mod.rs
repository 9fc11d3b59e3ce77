//! Initial syncs: a new partner queue gets every existing record of the tables it asks for,
//! then the live changes, with no gap and never an older state after a newer one. The
//! watermark technique of DBLog, inside the bridge:
//!
//! - [`requests`]: sync requests arrive on `<exchange>.sync-requests`, are checked, and are
//!   written into the signal table; they take effect when read back from the binlog;
//! - [`signal`]: the signal table (DDL, rows, clean-up);
//! - [`chunker`]: the task that reads a table chunk by chunk between watermarks;
//! - [`tracker`]: the watermark logic (which rows of a chunk are emitted, and where);
//! - [`state`]: what is saved with the checkpoint;
//! - [`trust`]: who may request a sync, of which tables, into which queues (checked on each
//!   request and again on each signal row read back).
//!
//! [`SyncEngine`] ties them to the pipeline's session.

pub mod chunk_limit;
pub mod chunker;
pub mod requests;
pub mod signal;
pub mod state;
pub mod tracker;
pub mod trust;

use crate::capture_filter::CaptureFilter;
use crate::config::Config;
use crate::source::{CapturedRow, SignalRow};
use chunker::{Scan, ScanContext};
use state::{Outcome, SyncState};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tracker::{DriverEvent, Effect, SnapshotRow, Tracker};

/// Snapshot rows to publish at the current point of the stream.
pub struct Emission {
    pub sync_id: String,
    pub database: String,
    pub table: String,
    pub rows: Vec<SnapshotRow>,
    pub binary_columns: Vec<String>,
}

struct Progress {
    sync_id: String,
    started: Instant,
    last_log: Instant,
    rows_at_last_log: u64,
}

/// The sync side of one pipeline session.
pub struct SyncEngine {
    tracker: Tracker,
    ctx: Arc<ScanContext>,
    chunks_in_flight: usize,
    permits: Arc<Semaphore>,
    permits_generation: u64,
    /// Chunks handled by the pipeline whose permits wait for the snapshot rows ahead to drain
    /// (see [`SyncEngine::pace`]).
    withheld: usize,
    queues: HashMap<String, Arc<str>>,
    progress_every: Duration,
    progress: Option<Progress>,
    /// `sync.queue_prefix`: signal rows naming another queue are refused.
    queue_prefix: String,
}

impl SyncEngine {
    /// Resumes the saved sync state; reader tasks start at once for a running sync.
    pub fn start(
        config: &Config,
        is_mariadb: bool,
        filter: Arc<CaptureFilter>,
        saved: Option<&SyncState>,
    ) -> (SyncEngine, mpsc::UnboundedReceiver<DriverEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(ScanContext {
            source: config.source.clone(),
            is_mariadb,
            filter,
            signal_database: config.signal_database().to_string(),
            signal_table: config.sync.signal_table.clone(),
            chunk_size: config.sync.chunk_size,
            chunk_bytes: config.sync.chunk_bytes,
            events,
            current: Arc::new(AtomicU64::new(0)),
        });
        let (tracker, effects) =
            Tracker::new(saved.cloned().unwrap_or_default(), Duration::from_secs(5));
        let mut engine = SyncEngine {
            tracker,
            ctx,
            chunks_in_flight: config.sync.chunks_in_flight,
            permits: Arc::new(Semaphore::new(0)),
            permits_generation: u64::MAX,
            withheld: 0,
            queues: HashMap::new(),
            progress_every: Duration::from_secs(config.sync.progress_secs),
            progress: None,
            queue_prefix: config.sync.queue_prefix.clone(),
        };
        if let Some(job) = &engine.tracker.state().active {
            tracing::info!(sync_id = %job.sync_id, queue = %job.queue, rows_done = job.rows_done(), "resuming the initial sync from its last confirmed chunk");
        }
        engine.remember_queues();
        engine.apply(effects);
        (engine, rx)
    }

    fn remember_queues(&mut self) {
        let state = self.tracker.state();
        for job in state.active.iter().chain(state.waiting.iter()) {
            self.queues
                .entry(job.sync_id.clone())
                .or_insert_with(|| Arc::from(job.queue.as_str()));
        }
    }

    /// Lets the readers take their next chunk once the snapshot rows still waiting to be
    /// published (`waiting`) are down to half a chunk. Live changes pass waiting snapshot
    /// rows (see the dedup buffer's snapshot lane), so this does not guard the live stream's
    /// latency: it keeps the bridge's memory at about `chunks_in_flight` chunks, and keeps the
    /// buffer from filling up with snapshot rows, which would stop the binlog reader and with it
    /// the live stream.
    pub fn pace(&mut self, waiting: usize) {
        if self.withheld > 0 && waiting <= self.ctx.chunk_size / 2 {
            self.permits.add_permits(self.withheld);
            self.withheld = 0;
        }
    }

    /// The queue a sync's snapshot rows go to.
    pub fn queue_of(&self, sync_id: &str) -> Option<Arc<str>> {
        self.queues.get(sync_id).cloned()
    }

    /// The sync state as of the current read position (for the next checkpoint candidate).
    pub fn snapshot(&self) -> Option<Arc<SyncState>> {
        self.tracker.snapshot()
    }

    /// Every live change of a captured table, before it is queued.
    pub fn on_change(&mut self, row: &CapturedRow) {
        self.tracker
            .on_change(&row.database, &row.table, || tracker::key_text(&row.key));
    }

    /// A report of a reader task.
    pub fn on_driver(&mut self, event: DriverEvent) {
        let effects = self.tracker.on_driver(event);
        self.apply(effects);
    }

    /// A signal row read from the binlog; returns whether it was a high watermark (which takes
    /// a `seq`, matched or not, so that numbering stays the same when the binlog is read
    /// again) and the snapshot rows to publish here.
    ///
    /// A start or cancel row is checked again here ([`trust::check_signal`]): the signal table
    /// may be written by others than the bridge, so a row naming a queue outside
    /// `sync.queue_prefix` or a table that is not captured is refused (an error naming the
    /// row) and starts nothing.
    pub fn on_signal(&mut self, row: &SignalRow) -> (bool, Vec<Emission>) {
        let signal = signal::parse(row);
        if let Err(error) = trust::check_signal(&self.queue_prefix, &self.ctx.filter, &signal) {
            tracing::error!(
                row_id = %row.row.get("id").map(|v| v.to_string()).unwrap_or_default(),
                kind = %row.row.get("kind").and_then(|v| v.as_str()).unwrap_or(""),
                sync_id = %row.row.get("sync_id").and_then(|v| v.as_str()).unwrap_or(""),
                queue = %row.row.get("queue").and_then(|v| v.as_str()).unwrap_or(""),
                binlog = %format!("{}:{}", row.file, row.pos),
                %error,
                "signal row refused; nothing is started for it. The bridge writes only requests \
                 that passed its checks: this row was written by someone else with INSERT on the \
                 signal table (grant INSERT on it to the bridge's user only), or accepted under \
                 another [sync]/[capture] configuration (request the sync again)"
            );
            return (false, Vec::new());
        }
        let is_high = matches!(signal, tracker::Signal::High { .. });
        let effects = self.tracker.on_signal(signal);
        self.remember_queues();
        (is_high, self.apply(effects))
    }

    fn apply(&mut self, effects: Vec<Effect>) -> Vec<Emission> {
        let mut emissions = Vec::new();
        for effect in effects {
            match effect {
                Effect::Scan {
                    generation,
                    sync_id,
                    table,
                    after,
                    delay,
                } => {
                    self.ctx.current.store(generation, Ordering::SeqCst);
                    self.permits.close();
                    self.permits = Arc::new(Semaphore::new(self.chunks_in_flight));
                    self.permits_generation = generation;
                    self.withheld = 0;
                    if !delay.is_zero() {
                        tracing::warn!(%sync_id, %table, retry_in_s = delay.as_secs(), "reading the table again from its last confirmed chunk");
                    }
                    let scan = Scan {
                        generation,
                        sync_id,
                        table,
                        after,
                        delay,
                        permits: self.permits.clone(),
                    };
                    tokio::spawn(chunker::run(self.ctx.clone(), scan));
                }
                Effect::ReleasePermit { generation } => {
                    if generation == self.permits_generation {
                        self.withheld += 1;
                    }
                }
                Effect::Started { sync_id, queue } => {
                    let tables = self
                        .tracker
                        .state()
                        .active
                        .as_ref()
                        .map(|j| {
                            j.tables
                                .iter()
                                .map(|t| t.table.as_str())
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    tracing::info!(%sync_id, %queue, %tables, "sync started");
                    self.progress = Some(Progress {
                        sync_id,
                        started: Instant::now(),
                        last_log: Instant::now(),
                        rows_at_last_log: 0,
                    });
                }
                Effect::Ended(job) => self.log_end(&job),
                Effect::Emit {
                    sync_id,
                    table,
                    rows,
                    binary_columns,
                    dropped,
                    ..
                } => {
                    if dropped > 0 {
                        tracing::debug!(%sync_id, %table, dropped, "chunk rows left out: the binlog carries a newer state");
                    }
                    let (database, table) = match table.split_once('.') {
                        Some((d, t)) => (d.to_string(), t.to_string()),
                        None => (String::new(), table),
                    };
                    emissions.push(Emission {
                        sync_id,
                        database,
                        table,
                        rows,
                        binary_columns,
                    });
                }
            }
        }
        emissions
    }

    fn log_end(&mut self, job: &state::SyncJob) {
        let elapsed = self
            .progress
            .as_ref()
            .filter(|p| p.sync_id == job.sync_id)
            .map(|p| p.started.elapsed())
            .unwrap_or_default();
        let rate = job.rows_done() as f64 / elapsed.as_secs_f64().max(0.001);
        match job.state {
            Outcome::Finished => tracing::info!(
                sync_id = %job.sync_id,
                queue = %job.queue,
                rows_done = job.rows_done(),
                rows_sent = job.rows_sent(),
                tables = job.tables.len(),
                elapsed_s = format!("{:.1}", elapsed.as_secs_f64()),
                rows_per_s = format!("{rate:.0}"),
                "sync finished"
            ),
            Outcome::Cancelled => tracing::warn!(
                sync_id = %job.sync_id,
                queue = %job.queue,
                rows_done = job.rows_done(),
                "sync cancelled"
            ),
            _ => tracing::error!(
                sync_id = %job.sync_id,
                queue = %job.queue,
                rows_done = job.rows_done(),
                reason = job.reason.as_deref().unwrap_or(""),
                "sync failed; fix the cause and request the sync again"
            ),
        }
        if self
            .progress
            .as_ref()
            .is_some_and(|p| p.sync_id == job.sync_id)
        {
            self.progress = None;
        }
    }

    /// Logs progress every `sync.progress_secs` while a sync runs.
    pub fn log_progress(&mut self) {
        let Some(job) = self.tracker.state().active.as_ref() else {
            return;
        };
        let progress = self.progress.get_or_insert_with(|| Progress {
            sync_id: job.sync_id.clone(),
            started: Instant::now(),
            last_log: Instant::now(),
            rows_at_last_log: job.rows_done(),
        });
        if progress.last_log.elapsed() < self.progress_every {
            return;
        }
        let done = job.rows_done();
        let rate = (done.saturating_sub(progress.rows_at_last_log)) as f64
            / progress.last_log.elapsed().as_secs_f64();
        progress.last_log = Instant::now();
        progress.rows_at_last_log = done;
        let total = job.rows_total();
        let eta = match total {
            Some(total) if rate > 0.0 => format!("{:.0}", total.saturating_sub(done) as f64 / rate),
            _ => "unknown".into(),
        };
        let table = job
            .current()
            .map(|i| job.tables[i].table.as_str())
            .unwrap_or("");
        tracing::info!(
            sync_id = %job.sync_id,
            queue = %job.queue,
            table,
            rows_done = done,
            rows_total = total.map(|t| t.to_string()).unwrap_or_else(|| "counting".into()),
            rows_per_s = format!("{rate:.0}"),
            eta_s = %eta,
            "sync progress (total: COUNT(*) of each table when its reading began)"
        );
    }
}

impl Drop for SyncEngine {
    fn drop(&mut self) {
        // Reader tasks of this session stop at their next step.
        self.ctx.current.store(u64::MAX, Ordering::SeqCst);
        self.permits.close();
    }
}
