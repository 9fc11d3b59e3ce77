//! The bridge's numbers for operators: a small registry of atomics that the pipeline updates
//! cheaply, rendered on request as the Prometheus text format (`GET /metrics`) and as the JSON
//! of `GET /status` (served by [`crate::http_endpoints`]).
//!
//! Cost on the data path: counters move by relaxed atomic adds once per batch of events, never
//! per change; the position, checkpoint and sync state are copied under a mutex only at the
//! pipeline's 250 ms tick. Everything derived (rates, ages, lag in seconds) is computed when
//! read, not when written.
//!
//! The text format and the HTTP server are shared with the other binary (`ops-endpoints`).

use crate::binlog_headroom::Headroom;
use crate::sync::state::{Outcome, SyncJob, SyncState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use ops_endpoints::{unix_secs_now, Exposition, Kind, Rate};

// ---- helpers -----------------------------------------------------------------------------------

/// An `f64` gauge in an atomic (its bits).
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }

    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Relaxed);
    }
}

// ---- the bridge's state ------------------------------------------------------------------------

/// What the main loop is doing, for `/healthz`, `/readyz` and `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    WaitingForBroker = 1,
    WaitingForDatabase = 2,
    /// A replication session was opened; no event came back yet.
    Connecting = 3,
    Streaming = 4,
    Stopping = 5,
    /// The main loop returned: nothing is captured any more.
    Stopped = 6,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            1 => Phase::WaitingForBroker,
            2 => Phase::WaitingForDatabase,
            3 => Phase::Connecting,
            4 => Phase::Streaming,
            5 => Phase::Stopping,
            6 => Phase::Stopped,
            _ => Phase::Starting,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::WaitingForBroker => "waiting for the broker",
            Phase::WaitingForDatabase => "waiting for the database",
            Phase::Connecting => "connecting to the binlog",
            Phase::Streaming => "streaming",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}

/// A binlog position (a transaction boundary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    pub file: String,
    pub pos: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
}

/// What the pipeline copies in at its tick.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    /// The last transaction boundary the pipeline took from the reader.
    pub read: Option<Position>,
    /// Commit time (seconds since the epoch) of the last captured change or signal row read.
    pub last_change_time: Option<u32>,
    /// The last checkpoint saved (or loaded at the session's start).
    pub checkpoint: Option<Position>,
    /// When it was saved (or when the session started from it).
    pub checkpoint_saved: Option<Instant>,
    /// Initial syncs as of the read position (rows read so far, not only confirmed ones).
    pub syncs: Option<Arc<SyncState>>,
}

/// The last reading of the server's binlog end, by [`crate::lag`].
#[derive(Debug, Clone)]
pub struct LagReading {
    /// Binlog bytes between what the bridge read and the server's end.
    pub bytes: u64,
    pub server_end: Position,
    /// The last reading that found the bridge caught up (`bytes` 0), if any.
    pub caught_up_at: Option<Instant>,
}

/// Window of the recent-rate gauges.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// `/healthz` fails when the streaming loop has not turned for this long (it turns every
/// 250 ms; even a broker that blocks publishing leaves it turning).
pub const STUCK_AFTER: Duration = Duration::from_secs(60);

/// Every number the bridge exposes. Shared by the pipeline (writer), the lag poller and the
/// HTTP endpoints (readers).
#[derive(Debug)]
pub struct BridgeMetrics {
    started: Instant,
    phase: AtomicU8,
    reason: Mutex<String>,
    broker_connected: AtomicBool,
    /// Milliseconds since `started` at the streaming loop's last turn.
    beat_ms: AtomicU64,
    changes_read: AtomicU64,
    dedup_merged: AtomicU64,
    published: AtomicU64,
    snapshot_rows: AtomicU64,
    confirmed: AtomicU64,
    unconfirmed: AtomicU64,
    /// Server heartbeats taken from the reader: each one says the reader had everything the
    /// server had written when it was sent.
    alive_marks: AtomicU64,
    changes_rate: AtomicF64,
    stream: Mutex<StreamState>,
    lag: Mutex<Option<LagReading>>,
    /// Rows events of captured tables without a primary key left out
    /// (`capture.on_keyless_table = "skip"`), per `database.table`.
    keyless_skipped: Mutex<BTreeMap<String, u64>>,
    /// Too-large markers published in place of changes over `broker.max_message_bytes`.
    too_large_markers: AtomicU64,
    /// The last binlog headroom measurement ([`crate::binlog_headroom`]) and when it was made.
    headroom: Mutex<Option<(Headroom, Instant)>>,
    /// The last [`ANSWERS_KEPT`] sync requests answered, newest last.
    sync_answers: Mutex<std::collections::VecDeque<SyncAnswer>>,
}

/// How many answered sync requests `/status` keeps.
const ANSWERS_KEPT: usize = 50;

/// What the bridge answered to one sync request: `pusher sync` looks for its request here, so
/// a refusal reaches the operator who asked, not only the bridge's log.
#[derive(Debug, Clone, Serialize)]
pub struct SyncAnswer {
    pub request_id: String,
    pub queue: String,
    /// "accepted" or "refused".
    pub outcome: &'static str,
    /// Why it was refused, and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When, RFC 3339 UTC.
    pub at: String,
}

impl Default for BridgeMetrics {
    fn default() -> Self {
        BridgeMetrics::new()
    }
}

impl BridgeMetrics {
    pub fn new() -> BridgeMetrics {
        BridgeMetrics {
            started: Instant::now(),
            phase: AtomicU8::new(Phase::Starting as u8),
            reason: Mutex::new("starting".into()),
            broker_connected: AtomicBool::new(false),
            beat_ms: AtomicU64::new(0),
            changes_read: AtomicU64::new(0),
            dedup_merged: AtomicU64::new(0),
            published: AtomicU64::new(0),
            snapshot_rows: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            unconfirmed: AtomicU64::new(0),
            alive_marks: AtomicU64::new(0),
            changes_rate: AtomicF64::default(),
            stream: Mutex::new(StreamState::default()),
            lag: Mutex::new(None),
            keyless_skipped: Mutex::new(BTreeMap::new()),
            too_large_markers: AtomicU64::new(0),
            headroom: Mutex::new(None),
            sync_answers: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Records the answer to a sync request (`reason` set: refused), for `/status`.
    pub fn sync_request_answered(&self, request_id: &str, queue: &str, reason: Option<String>) {
        if let Ok(mut answers) = self.sync_answers.lock() {
            if answers.len() == ANSWERS_KEPT {
                answers.pop_front();
            }
            answers.push_back(SyncAnswer {
                request_id: request_id.to_string(),
                queue: queue.to_string(),
                outcome: if reason.is_some() {
                    "refused"
                } else {
                    "accepted"
                },
                reason,
                at: crate::time_format::now_rfc3339(),
            });
        }
    }

    /// One more rows event of keyless table `table` (`database.table`) left out; returns the
    /// count so far.
    pub fn count_keyless_skip(&self, table: &str) -> u64 {
        let Ok(mut counts) = self.keyless_skipped.lock() else {
            return 0;
        };
        let count = counts.entry(table.to_string()).or_default();
        *count += 1;
        *count
    }

    // -- written by the pipeline --

    /// One more too-large marker published ([`crate::message_size`]).
    pub fn count_too_large_marker(&self) {
        self.too_large_markers.fetch_add(1, Relaxed);
    }

    /// `detail` says why the bridge is not ready in this phase (shown by `/readyz`).
    pub fn set_phase(&self, phase: Phase, detail: impl Into<String>) {
        self.phase.store(phase as u8, Relaxed);
        if let Ok(mut reason) = self.reason.lock() {
            *reason = detail.into();
        }
        self.beat();
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Relaxed))
    }

    pub fn set_broker_connected(&self, connected: bool) {
        self.broker_connected.store(connected, Relaxed);
    }

    /// The streaming loop turned.
    pub fn beat(&self) {
        self.beat_ms
            .store(self.started.elapsed().as_millis() as u64, Relaxed);
    }

    /// Adds what happened since the last report.
    pub fn add_counts(&self, changes: u64, merged: u64, published: u64, snapshot_rows: u64) {
        for (counter, n) in [
            (&self.changes_read, changes),
            (&self.dedup_merged, merged),
            (&self.published, published),
            (&self.snapshot_rows, snapshot_rows),
        ] {
            if n > 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
    }

    /// The publisher's totals: confirmed since the process started, unconfirmed now.
    pub fn set_publisher(&self, confirmed: u64, unconfirmed: u64) {
        self.confirmed.store(confirmed, Relaxed);
        self.unconfirmed.store(unconfirmed, Relaxed);
    }

    pub fn server_alive(&self) {
        self.alive_marks.fetch_add(1, Relaxed);
    }

    pub fn update_stream(&self, update: impl FnOnce(&mut StreamState)) {
        if let Ok(mut stream) = self.stream.lock() {
            update(&mut stream);
        }
    }

    // -- written by the lag poller and the rate sampler --

    pub fn alive_marks(&self) -> u64 {
        self.alive_marks.load(Relaxed)
    }

    pub fn read_position(&self) -> Option<Position> {
        self.stream.lock().ok().and_then(|s| s.read.clone())
    }

    pub fn set_lag(&self, reading: Option<LagReading>) {
        if let Ok(mut lag) = self.lag.lock() {
            *lag = reading;
        }
    }

    pub fn set_headroom(&self, headroom: Option<Headroom>) {
        if let Ok(mut slot) = self.headroom.lock() {
            *slot = headroom.map(|h| (h, Instant::now()));
        }
    }

    /// What the binlog headroom is measured from: the checkpoint, or the read position until
    /// the first checkpoint is saved.
    pub fn headroom_position(&self) -> Option<(Position, &'static str)> {
        let stream = self.stream.lock().ok()?;
        match (&stream.checkpoint, &stream.read) {
            (Some(checkpoint), _) => Some((checkpoint.clone(), "checkpoint")),
            (None, Some(read)) => Some((read.clone(), "read position")),
            (None, None) => None,
        }
    }

    pub fn changes_read(&self) -> u64 {
        self.changes_read.load(Relaxed)
    }

    pub fn set_changes_rate(&self, rate: f64) {
        self.changes_rate.set(rate);
    }

    // -- read by the endpoints --

    /// `Ok` when the bridge does its job: the binlog is streaming and the broker connected.
    pub fn readiness(&self) -> Result<(), String> {
        let phase = self.phase();
        if phase != Phase::Streaming {
            let detail = self.reason.lock().map(|r| r.clone()).unwrap_or_default();
            return Err(if detail.is_empty() {
                phase.as_str().to_string()
            } else {
                format!("{}: {detail}", phase.as_str())
            });
        }
        if !self.broker_connected.load(Relaxed) {
            return Err("the broker connection is lost; reconnecting".into());
        }
        Ok(())
    }

    /// `Ok` while the main loop lives (and, when streaming, keeps turning).
    pub fn liveness(&self) -> Result<(), String> {
        match self.phase() {
            Phase::Stopped => Err("the main loop has ended".into()),
            Phase::Streaming => {
                let now = self.started.elapsed().as_millis() as u64;
                let idle = Duration::from_millis(now.saturating_sub(self.beat_ms.load(Relaxed)));
                if idle > STUCK_AFTER {
                    Err(format!(
                        "the streaming loop has not turned for {} s",
                        idle.as_secs()
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn lag_view(&self, stream: &StreamState) -> Option<LagView> {
        let reading = self.lag.lock().ok()?.clone()?;
        let seconds = lag_seconds(
            &reading,
            stream.last_change_time,
            unix_secs_now(),
            Instant::now(),
            self.started,
        );
        Some(LagView {
            seconds,
            bytes: reading.bytes,
            server_end: reading.server_end,
        })
    }

    /// Everything `/status` shows, read now.
    pub fn status(&self) -> BridgeStatus {
        let stream = self.stream.lock().map(|s| s.clone()).unwrap_or_default();
        let lag = self.lag_view(&stream);
        let checkpoint_age = checkpoint_age(&stream);
        let binlog_headroom =
            self.headroom
                .lock()
                .ok()
                .and_then(|h| h.clone())
                .map(|(headroom, at)| HeadroomView {
                    headroom,
                    measured_s_ago: at.elapsed().as_secs(),
                });
        let readiness = self.readiness();
        BridgeStatus {
            state: self.phase().as_str(),
            ready: readiness.is_ok(),
            reason: readiness.err(),
            position: stream.read.clone(),
            checkpoint: stream.checkpoint.clone().map(|position| CheckpointView {
                position,
                age_s: checkpoint_age,
            }),
            lag,
            binlog_headroom,
            changes_read: self.changes_read.load(Relaxed),
            changes_per_s: self.changes_rate.get(),
            dedup_merged: self.dedup_merged.load(Relaxed),
            published: self.published.load(Relaxed),
            unconfirmed: self.unconfirmed.load(Relaxed),
            syncs: stream
                .syncs
                .as_deref()
                .map(|state| state.all().into_iter().map(SyncView::from).collect())
                .unwrap_or_default(),
            sync_requests: self
                .sync_answers
                .lock()
                .map(|answers| answers.iter().rev().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// The Prometheus text of every series.
    pub fn render(&self) -> String {
        let status = self.status();
        let mut out = Exposition::new();
        out.single(
            "cdc_bridge_ready",
            Kind::Gauge,
            "1 while the bridge streams the binlog with the broker connected (as /readyz), else 0.",
            if status.ready { 1.0 } else { 0.0 },
        );
        if let Some(lag) = &status.lag {
            out.single(
                "cdc_bridge_binlog_lag_seconds",
                Kind::Gauge,
                "How far behind the server the bridge reads: 0 when it has read everything, else \
                 the age of the last change it read (at most the time since it was last seen \
                 caught up). Absent while the server's binlog end is unknown.",
                lag.seconds as f64,
            );
            out.single(
                "cdc_bridge_binlog_lag_bytes",
                Kind::Gauge,
                "Binlog bytes the server has written beyond the last transaction the bridge read \
                 (across files).",
                lag.bytes as f64,
            );
        }
        if let Ok(skipped) = self.keyless_skipped.lock() {
            if !skipped.is_empty() {
                out.family(
                    "cdc_bridge_keyless_events_skipped_total",
                    Kind::Counter,
                    "Rows events of captured tables without a primary key that the bridge left \
                     out (capture.on_keyless_table = \"skip\"): their changes reach no partner.",
                );
                for (table, count) in skipped.iter() {
                    out.sample(
                        "cdc_bridge_keyless_events_skipped_total",
                        &[("table", table)],
                        *count as f64,
                    );
                }
            }
        }
        out.single(
            "cdc_bridge_too_large_markers_total",
            Kind::Counter,
            "Changes whose message was larger than broker.max_message_bytes, published as a \
             too-large marker without row data (broker.on_too_large = \"marker\"): each record \
             needs a re-sync.",
            self.too_large_markers.load(Relaxed) as f64,
        );
        if let Some(view) = &status.binlog_headroom {
            let headroom = &view.headroom;
            let unlimited = |value: Option<u64>| value.map(|v| v as f64).unwrap_or(f64::INFINITY);
            out.single(
                "cdc_bridge_binlog_headroom_bytes",
                Kind::Gauge,
                "Binlog bytes the server holds before the bridge's checkpoint: what it must purge \
                 before the checkpoint's file goes (0 when that file is gone).",
                headroom.bytes as f64,
            );
            if headroom.never_purged || headroom.seconds.is_some() {
                out.single(
                    "cdc_bridge_binlog_headroom_seconds",
                    Kind::Gauge,
                    "Seconds until the server may purge the binlog file of the bridge's \
                     checkpoint: its retention less the time since that file was closed (+Inf \
                     when the server purges no binlog by age).",
                    unlimited(headroom.seconds),
                );
            }
            out.single(
                "cdc_bridge_binlog_retention_seconds",
                Kind::Gauge,
                "How long the server keeps a binlog file after its last write (+Inf: never \
                 purged by age).",
                unlimited(headroom.retention_s),
            );
            if let Some(age) = headroom.oldest_age_s {
                out.single(
                    "cdc_bridge_binlog_oldest_age_seconds",
                    Kind::Gauge,
                    "Seconds since the oldest binlog file the server still holds was started.",
                    age as f64,
                );
            }
        }
        out.single(
            "cdc_bridge_changes_read_total",
            Kind::Counter,
            "Row changes of captured tables read from the binlog.",
            status.changes_read as f64,
        );
        out.single(
            "cdc_bridge_changes_per_second",
            Kind::Gauge,
            "Row changes read per second over the last 10 seconds.",
            status.changes_per_s,
        );
        out.single(
            "cdc_bridge_dedup_merged_total",
            Kind::Counter,
            "Row changes merged into a newer change of the same row by the dedup buffer (messages \
             saved).",
            status.dedup_merged as f64,
        );
        out.single(
            "cdc_bridge_published_total",
            Kind::Counter,
            "Messages published: changes and snapshot rows (heartbeats not counted).",
            status.published as f64,
        );
        out.single(
            "cdc_bridge_snapshot_rows_total",
            Kind::Counter,
            "Snapshot rows of initial syncs handed to the publisher.",
            self.snapshot_rows.load(Relaxed) as f64,
        );
        out.single(
            "cdc_bridge_publishes_confirmed_total",
            Kind::Counter,
            "Publishes the broker confirmed.",
            self.confirmed.load(Relaxed) as f64,
        );
        out.single(
            "cdc_bridge_unconfirmed_publishes",
            Kind::Gauge,
            "Publishes waiting for the broker's confirm now.",
            status.unconfirmed as f64,
        );
        out.single(
            "cdc_bridge_checkpoint_age_seconds",
            Kind::Gauge,
            "Seconds since the checkpoint was last saved, or 0 while it is at the last \
             transaction read (nothing waits to be saved).",
            status.checkpoint.as_ref().map(|c| c.age_s).unwrap_or(0) as f64,
        );
        let running: Vec<&SyncView> = status
            .syncs
            .iter()
            .filter(|s| s.state == "running")
            .collect();
        out.family(
            "cdc_bridge_sync_rows_done",
            Kind::Gauge,
            "Rows of the running initial sync read so far (per sync and target queue).",
        );
        for sync in &running {
            out.sample(
                "cdc_bridge_sync_rows_done",
                &[("sync_id", &sync.sync_id), ("queue", &sync.queue)],
                sync.rows_done as f64,
            );
        }
        out.family(
            "cdc_bridge_sync_rows_total",
            Kind::Gauge,
            "Rows of the running initial sync in all (COUNT(*) of each table when its reading \
             began); absent until every table was counted.",
        );
        for sync in &running {
            if let Some(total) = sync.rows_total {
                out.sample(
                    "cdc_bridge_sync_rows_total",
                    &[("sync_id", &sync.sync_id), ("queue", &sync.queue)],
                    total as f64,
                );
            }
        }
        out.single(
            "cdc_bridge_syncs_waiting",
            Kind::Gauge,
            "Initial syncs requested and waiting for the running one to end.",
            status.syncs.iter().filter(|s| s.state == "waiting").count() as f64,
        );
        out.finish()
    }
}

/// Keeps the recent-rate gauges moving: samples the counters every second, for as long as
/// the process runs.
pub async fn sample_rates(metrics: Arc<BridgeMetrics>) {
    let mut changes = Rate::new(RATE_WINDOW);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rate = changes.observe(Instant::now(), metrics.changes_read());
        metrics.set_changes_rate(rate);
    }
}

/// Seconds since the checkpoint was saved, 0 while it is at the read position: an idle
/// database leaves nothing to save, which is no reason to alert.
fn checkpoint_age(stream: &StreamState) -> u64 {
    let at_read = match (&stream.checkpoint, &stream.read) {
        (Some(cp), Some(read)) => cp.file == read.file && cp.pos == read.pos,
        (_, None) => true,
        (None, Some(_)) => false,
    };
    if at_read {
        return 0;
    }
    stream
        .checkpoint_saved
        .map(|at| at.elapsed().as_secs())
        .unwrap_or(0)
}

/// Lag in seconds: 0 when caught up; else the age of the last change read, at most the time
/// since a reading last found the bridge caught up (after an idle hour, the first new write
/// is not an hour of lag). Without either, the time since the bridge started.
pub fn lag_seconds(
    reading: &LagReading,
    last_change_time: Option<u32>,
    now_unix: u64,
    now: Instant,
    started: Instant,
) -> u64 {
    if reading.bytes == 0 {
        return 0;
    }
    let since_change = last_change_time.map(|t| now_unix.saturating_sub(u64::from(t)));
    let since_caught_up = reading
        .caught_up_at
        .map(|at| now.saturating_duration_since(at).as_secs());
    match (since_change, since_caught_up) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => now.saturating_duration_since(started).as_secs(),
    }
}

// ---- the JSON of /status -----------------------------------------------------------------------

/// `GET /status`: what `pusher status` shows of the bridge.
#[derive(Debug, Clone, Serialize)]
pub struct BridgeStatus {
    /// The main loop's phase ("streaming", "waiting for the database", ...).
    pub state: &'static str,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last transaction boundary read.
    pub position: Option<Position>,
    pub checkpoint: Option<CheckpointView>,
    /// `None` while the server's binlog end is unknown (database unreachable).
    pub lag: Option<LagView>,
    /// `None` until measured, and while the server cannot be asked.
    pub binlog_headroom: Option<HeadroomView>,
    pub changes_read: u64,
    pub changes_per_s: f64,
    pub dedup_merged: u64,
    pub published: u64,
    pub unconfirmed: u64,
    /// Running, waiting, then recently ended syncs (newest first).
    pub syncs: Vec<SyncView>,
    /// The last sync requests answered (newest first), refused ones with their reason.
    pub sync_requests: Vec<SyncAnswer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointView {
    #[serde(flatten)]
    pub position: Position,
    pub age_s: u64,
}

/// The last binlog headroom measurement, and how long ago it was made.
#[derive(Debug, Clone, Serialize)]
pub struct HeadroomView {
    #[serde(flatten)]
    pub headroom: Headroom,
    pub measured_s_ago: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LagView {
    pub seconds: u64,
    pub bytes: u64,
    pub server_end: Position,
}

/// One initial sync, by its target queue (a partner's queue).
#[derive(Debug, Clone, Serialize)]
pub struct SyncView {
    pub sync_id: String,
    pub queue: String,
    /// "running", "waiting", "finished", "cancelled", "failed".
    pub state: String,
    pub rows_done: u64,
    /// `None` until every table was counted.
    pub rows_total: Option<u64>,
    /// The table being read (running syncs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub started_at: String,
    pub ended_at: String,
}

impl From<&SyncJob> for SyncView {
    fn from(job: &SyncJob) -> SyncView {
        let state = match job.state {
            Outcome::Waiting => "waiting",
            Outcome::Running => "running",
            Outcome::Finished => "finished",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "failed",
        };
        SyncView {
            sync_id: job.sync_id.clone(),
            queue: job.queue.clone(),
            state: state.into(),
            rows_done: job.rows_done(),
            rows_total: job.rows_total(),
            table: (job.state == Outcome::Running)
                .then(|| job.current().map(|i| job.tables[i].table.clone()))
                .flatten(),
            reason: job.reason.clone(),
            started_at: job.started_at.clone(),
            ended_at: job.ended_at.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::state::TableProgress;

    fn reading(bytes: u64, caught_up_ago: Option<u64>, now: Instant) -> LagReading {
        LagReading {
            bytes,
            server_end: Position {
                file: "binlog.000001".into(),
                pos: 4,
                gtid: None,
            },
            caught_up_at: caught_up_ago.map(|s| now - Duration::from_secs(s)),
        }
    }

    #[test]
    fn lag_seconds_is_zero_when_caught_up_and_bounded_by_the_last_caught_up_reading() {
        let now = Instant::now() + Duration::from_secs(10_000);
        let started = now - Duration::from_secs(7200);
        let unix = 1_800_000_000u64;
        // Caught up: 0 whatever the last change's age.
        assert_eq!(
            lag_seconds(
                &reading(0, None, now),
                Some((unix - 900) as u32),
                unix,
                now,
                started
            ),
            0
        );
        // Reading an old backlog: the age of the last change read.
        assert_eq!(
            lag_seconds(
                &reading(5000, None, now),
                Some((unix - 900) as u32),
                unix,
                now,
                started
            ),
            900
        );
        // An idle hour, then a write: caught up 3 s ago, so at most 3 s behind.
        assert_eq!(
            lag_seconds(
                &reading(300, Some(3), now),
                Some((unix - 3600) as u32),
                unix,
                now,
                started
            ),
            3
        );
        // Nothing read yet: the time since start.
        assert_eq!(
            lag_seconds(&reading(300, None, now), None, unix, now, started),
            7200
        );
    }

    #[test]
    fn checkpoint_age_is_zero_while_nothing_waits_to_be_saved() {
        let position = |pos| Position {
            file: "binlog.000001".into(),
            pos,
            gtid: None,
        };
        let mut stream = StreamState {
            read: Some(position(100)),
            checkpoint: Some(position(100)),
            checkpoint_saved: Some(Instant::now() - Duration::from_secs(3600)),
            ..StreamState::default()
        };
        assert_eq!(checkpoint_age(&stream), 0);
        stream.read = Some(position(200));
        assert!(checkpoint_age(&stream) >= 3600);
    }

    #[test]
    fn the_binlog_headroom_gauges_say_unlimited_and_disappear_when_unknown() {
        use crate::binlog_headroom::{measure, FileTimes, Retention, RetentionSetting};
        let metrics = BridgeMetrics::new();
        let files = vec![("b.1".to_string(), 1000u64), ("b.2".to_string(), 500)];
        let from = Position {
            file: "b.2".into(),
            pos: 300,
            gtid: None,
        };
        let never = Retention {
            seconds: None,
            setting: RetentionSetting::BinlogExpireLogsSeconds,
        };
        let times = FileTimes {
            next_started: None,
            oldest_started: Some(1_799_999_000),
        };
        metrics.set_headroom(Some(measure(
            &files,
            &from,
            "checkpoint",
            never,
            times,
            1_800_000_000,
        )));
        let text = metrics.render();
        for line in [
            "\ncdc_bridge_binlog_headroom_bytes 1300\n",
            "\ncdc_bridge_binlog_headroom_seconds +Inf\n",
            "\ncdc_bridge_binlog_retention_seconds +Inf\n",
            "\ncdc_bridge_binlog_oldest_age_seconds 1000\n",
        ] {
            assert!(text.contains(line), "{line:?} missing:\n{text}");
        }
        let status = serde_json::to_value(metrics.status()).unwrap();
        assert_eq!(status["binlog_headroom"]["never_purged"], true);
        assert_eq!(
            status["binlog_headroom"]["seconds"],
            serde_json::Value::Null
        );
        assert_eq!(status["binlog_headroom"]["from"]["file"], "b.2");
        // A closed file whose closing time could not be read: bytes known, seconds absent.
        let keep = Retention {
            seconds: Some(3600),
            setting: RetentionSetting::BinlogExpireLogsSeconds,
        };
        let from = Position {
            file: "b.1".into(),
            pos: 10,
            gtid: None,
        };
        let unknown = FileTimes::default();
        metrics.set_headroom(Some(measure(&files, &from, "checkpoint", keep, unknown, 0)));
        let text = metrics.render();
        assert!(
            text.contains("\ncdc_bridge_binlog_headroom_bytes 10\n"),
            "{text}"
        );
        assert!(
            !text.contains("cdc_bridge_binlog_headroom_seconds"),
            "{text}"
        );
        metrics.set_headroom(None);
        let text = metrics.render();
        assert!(!text.contains("cdc_bridge_binlog_headroom_bytes"), "{text}");
        assert!(metrics.status().binlog_headroom.is_none());
    }

    #[test]
    fn readiness_needs_streaming_and_the_broker_and_says_why_not() {
        let metrics = BridgeMetrics::new();
        let why = metrics.readiness().unwrap_err();
        assert!(why.starts_with("starting"), "{why}");
        metrics.set_phase(
            Phase::WaitingForDatabase,
            "database 127.0.0.1:1 is not reachable",
        );
        let why = metrics.readiness().unwrap_err();
        assert!(why.contains("waiting for the database") && why.contains("127.0.0.1:1"));
        metrics.set_phase(Phase::Streaming, "");
        assert!(metrics.readiness().unwrap_err().contains("broker"));
        metrics.set_broker_connected(true);
        assert_eq!(metrics.readiness(), Ok(()));
        assert_eq!(metrics.liveness(), Ok(()));
        metrics.set_phase(Phase::Stopped, "");
        assert!(metrics.liveness().is_err());
    }

    #[test]
    fn the_running_sync_is_exposed_with_its_queue_and_progress() {
        let metrics = BridgeMetrics::new();
        let mut table = TableProgress::new("app.locations");
        table.rows_done = 120;
        table.rows_total = Some(1000);
        let job = SyncJob {
            sync_id: "s-1".into(),
            queue: "ocpi.acme".into(),
            tables: vec![table],
            state: Outcome::Running,
            reason: None,
            requested_at: String::new(),
            started_at: String::new(),
            ended_at: String::new(),
        };
        metrics.update_stream(|s| {
            s.syncs = Some(Arc::new(SyncState {
                active: Some(job),
                ..SyncState::default()
            }))
        });
        metrics.add_counts(7, 2, 5, 0);
        let text = metrics.render();
        assert!(
            text.contains("cdc_bridge_sync_rows_done{sync_id=\"s-1\",queue=\"ocpi.acme\"} 120"),
            "{text}"
        );
        assert!(
            text.contains("cdc_bridge_sync_rows_total{sync_id=\"s-1\",queue=\"ocpi.acme\"} 1000"),
            "{text}"
        );
        assert!(
            text.contains("\ncdc_bridge_changes_read_total 7\n"),
            "{text}"
        );
        assert!(
            text.contains("\ncdc_bridge_dedup_merged_total 2\n"),
            "{text}"
        );
        // No lag series while the server's end is unknown.
        assert!(!text.contains("cdc_bridge_binlog_lag_bytes"), "{text}");
        let status = metrics.status();
        assert_eq!(status.syncs[0].table.as_deref(), Some("app.locations"));
    }
}
