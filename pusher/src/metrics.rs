//! The pusher's numbers for operators, per partner (label `partner`), rendered on request as
//! the Prometheus text format by [`crate::http_endpoints`].
//!
//! Cost on the delivery path: one relaxed atomic add per finished call (pushes, failures,
//! parks), never a lock. The gauges (backlog, parked, paused, oldest message) are set by the
//! supervisor once per presence interval, from the same announcements `pusher partners` reads,
//! and from passive declarations of the partner queues (every [`DEPTH_POLL_EVERY`], only when
//! the endpoints are on). Rates and ages are computed when read.
//!
//! The text format and the HTTP server are shared with the other binary (`ops-endpoints`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ocpi::Outcome;
use crate::presence::Board;

pub use ops_endpoints::{unix_secs_now, Exposition, Kind, Rate};

// ---- helpers -----------------------------------------------------------------------------------

/// When the messages a consuming phase holds unacked were published (the AMQP `timestamp` the
/// bridge sets on each message), in delivery order, so the oldest one's age can be told
/// without a lock or a search: pushed at each delivery, trimmed at the once-a-second tick.
#[derive(Debug, Default)]
pub struct OldestHeld {
    held: VecDeque<(Instant, u64)>,
}

impl OldestHeld {
    /// A delivery arrived at `at`; `published`: its timestamp (seconds since the epoch).
    pub fn received(&mut self, at: Instant, published: Option<u64>) {
        self.held.push_back((at, published.unwrap_or(0)));
    }

    /// The publish time of the oldest delivery still held, given when that delivery arrived
    /// (`None`: nothing is held). `None` too when that message carried no timestamp.
    pub fn oldest(&mut self, oldest_received: Option<Instant>) -> Option<u64> {
        let Some(first) = oldest_received else {
            self.held.clear();
            return None;
        };
        while self.held.front().is_some_and(|(at, _)| *at < first) {
            self.held.pop_front();
        }
        self.held
            .front()
            .map(|(_, published)| *published)
            .filter(|p| *p > 0)
    }
}

// ---- per partner -------------------------------------------------------------------------------

/// Why a call (or a message) failed, as counted in `cdc_pusher_failures_total{class}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Retried in place: connection errors, timeouts, 5xx, 408, 429, OCPI 3000/4002/4003.
    Transient = 0,
    /// The partner refused the message (OCPI 2xxx, HTTP 400/404/422...): parked.
    Rejected = 1,
    /// The partner refuses us as a whole (401/403, OCPI 3001-3003, 4001): paused.
    PartnerLevel = 2,
    /// The message cannot become a call (malformed, unmapped, not expressible): parked.
    Unsendable = 3,
    /// A composite object could not be read from the source database: the call waits and is
    /// tried again (never parked for it).
    Database = 4,
}

impl FailureClass {
    pub const ALL: [FailureClass; 5] = [
        FailureClass::Transient,
        FailureClass::Rejected,
        FailureClass::PartnerLevel,
        FailureClass::Unsendable,
        FailureClass::Database,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Rejected => "rejected",
            FailureClass::PartnerLevel => "partner_level",
            FailureClass::Unsendable => "unsendable",
            FailureClass::Database => "database",
        }
    }
}

/// One partner's numbers. Counters belong to this pusher (since it started); gauges describe
/// the partner as a whole, as this pusher last saw it.
#[derive(Debug)]
pub struct PartnerMetrics {
    pushes: AtomicU64,
    failures: [AtomicU64; 5],
    parked: AtomicU64,
    /// CDRs of a sync not POSTed: older than what the CDR ledger remembers.
    cdrs_not_resent: AtomicU64,
    /// Composite objects read from the source database.
    database_reads: AtomicU64,
    /// Bits of an f64, set by the rate sampler.
    pushes_rate: AtomicU64,
    /// Messages ready in the partner queue; -1 unknown.
    ready: AtomicI64,
    /// Messages in the parking queue; -1 unknown.
    parked_depth: AtomicI64,
    /// Unacked, as the pusher consuming the partner reports it; -1 when none does.
    unacked: AtomicI64,
    active_here: AtomicBool,
    paused: AtomicBool,
    /// Cut off for its backlog (see `backlog`), as the consuming pusher last saw it.
    cut_off: AtomicBool,
    /// Publish time of the oldest message held by the consuming pusher; 0 unknown.
    oldest_published: AtomicU64,
}

impl Default for PartnerMetrics {
    fn default() -> Self {
        PartnerMetrics {
            pushes: AtomicU64::new(0),
            failures: Default::default(),
            parked: AtomicU64::new(0),
            cdrs_not_resent: AtomicU64::new(0),
            database_reads: AtomicU64::new(0),
            pushes_rate: AtomicU64::new(0f64.to_bits()),
            ready: AtomicI64::new(-1),
            parked_depth: AtomicI64::new(-1),
            unacked: AtomicI64::new(-1),
            active_here: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            cut_off: AtomicBool::new(false),
            oldest_published: AtomicU64::new(0),
        }
    }
}

impl PartnerMetrics {
    /// `n` messages acknowledged after the partner accepted them.
    pub fn pushed(&self, n: u64) {
        self.pushes.fetch_add(n, Relaxed);
    }

    /// One composite object read from the source database for a call.
    pub fn database_read(&self) {
        self.database_reads.fetch_add(1, Relaxed);
    }

    pub fn database_reads(&self) -> u64 {
        self.database_reads.load(Relaxed)
    }

    pub fn failed(&self, class: FailureClass) {
        self.failures[class as usize].fetch_add(1, Relaxed);
    }

    /// Counts a call's answer (successes are counted as pushes when their messages settle).
    pub fn call_answered(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Success { .. } => {}
            Outcome::Transient { .. } => self.failed(FailureClass::Transient),
            Outcome::Rejected { .. } => self.failed(FailureClass::Rejected),
            Outcome::PartnerLevel { .. } => self.failed(FailureClass::PartnerLevel),
        }
    }

    pub fn parked(&self, n: u64) {
        self.parked.fetch_add(n, Relaxed);
    }

    /// One CDR of a sync acknowledged without a POST (`old_cdrs_in_sync = "skip"`).
    pub fn cdr_not_resent(&self) {
        self.cdrs_not_resent.fetch_add(1, Relaxed);
    }

    pub fn cdrs_not_resent(&self) -> u64 {
        self.cdrs_not_resent.load(Relaxed)
    }

    pub fn pushes(&self) -> u64 {
        self.pushes.load(Relaxed)
    }

    pub fn failures(&self, class: FailureClass) -> u64 {
        self.failures[class as usize].load(Relaxed)
    }

    /// Queue depths from passive declarations (`None`: the queue does not exist).
    /// Whether the partner is cut off for its backlog.
    pub fn set_cut_off(&self, cut_off: bool) {
        self.cut_off.store(cut_off, Relaxed);
    }

    pub fn set_depths(&self, ready: Option<u32>, parked: Option<u32>) {
        self.ready
            .store(ready.map(i64::from).unwrap_or(-1), Relaxed);
        self.parked_depth
            .store(parked.map(i64::from).unwrap_or(-1), Relaxed);
    }
}

// ---- the process -------------------------------------------------------------------------------

/// What the supervisor is doing, for `/healthz` and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Connecting (or reconnecting) to the broker.
    Connecting = 0,
    /// A broker session runs: partners are consumed.
    Running = 1,
    Stopping = 2,
    /// The supervisor returned.
    Stopped = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            1 => Phase::Running,
            2 => Phase::Stopping,
            3 => Phase::Stopped,
            _ => Phase::Connecting,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connecting => "waiting for the broker",
            Phase::Running => "running",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}

/// Window of the recent-rate gauges.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How often the partner queues' depths are read while the endpoints are on.
pub const DEPTH_POLL_EVERY: Duration = Duration::from_secs(5);
/// `/healthz` fails when a running session's loop has not turned for this long (it turns every
/// presence interval).
pub const STUCK_AFTER: Duration = Duration::from_secs(60);

/// Every number the pusher exposes: per partner (fixed at start from the configuration) and
/// for the process.
#[derive(Debug)]
pub struct PusherMetrics {
    started: Instant,
    partners: BTreeMap<String, Arc<PartnerMetrics>>,
    phase: AtomicU8,
    reason: Mutex<String>,
    /// Milliseconds since `started` at the session loop's last turn.
    beat_ms: AtomicU64,
    /// Why the source database cannot be read (composite objects wait), or `None`.
    database_down: Mutex<Option<String>>,
    /// Whether a source database is configured at all.
    database_configured: AtomicBool,
    /// The broker's reason while it blocks this pusher's publishing connection (an alarm).
    broker_blocked: Mutex<Option<String>>,
}

impl PusherMetrics {
    pub fn new<'a>(partner_ids: impl IntoIterator<Item = &'a str>) -> PusherMetrics {
        PusherMetrics {
            started: Instant::now(),
            partners: partner_ids
                .into_iter()
                .map(|id| (id.to_string(), Arc::new(PartnerMetrics::default())))
                .collect(),
            phase: AtomicU8::new(Phase::Connecting as u8),
            reason: Mutex::new("starting".into()),
            beat_ms: AtomicU64::new(0),
            database_down: Mutex::new(None),
            database_configured: AtomicBool::new(false),
            broker_blocked: Mutex::new(None),
        }
    }

    /// The source database's state: `Some(reason)` while composite objects cannot be read.
    pub fn set_database(&self, down: Option<String>) {
        self.database_configured.store(true, Relaxed);
        if let Ok(mut d) = self.database_down.lock() {
            *d = down;
        }
    }

    /// The broker's blocked state: `Some(reason)` while a resource alarm blocks publishing.
    pub fn set_broker_blocked(&self, reason: Option<String>) {
        if let Ok(mut b) = self.broker_blocked.lock() {
            *b = reason;
        }
    }

    fn broker_blocked(&self) -> Option<String> {
        self.broker_blocked.lock().ok().and_then(|b| b.clone())
    }

    /// The partner's numbers (a detached set for an id not configured at start).
    pub fn partner(&self, id: &str) -> Arc<PartnerMetrics> {
        self.partners.get(id).cloned().unwrap_or_default()
    }

    /// `detail` says why the pusher is not ready in this phase (shown by `/readyz`).
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

    pub fn beat(&self) {
        self.beat_ms
            .store(self.started.elapsed().as_millis() as u64, Relaxed);
    }

    /// `Ok` while a broker session runs (the pusher can consume and announce itself), the
    /// broker does not block its publishing (an alarm: parking and presence wait) and, where
    /// one is configured, the source database answers (composite objects can be read).
    pub fn readiness(&self) -> Result<(), String> {
        let phase = self.phase();
        if phase == Phase::Running {
            if let Some(reason) = self.broker_blocked() {
                return Err(format!(
                    "the broker blocks publishing ({reason}): deliveries go on, parking and \
                     presence wait until disk space or memory is freed on the broker"
                ));
            }
            let down = self.database_down.lock().ok().and_then(|d| d.clone());
            return match down {
                None => Ok(()),
                Some(reason) => Err(format!("source database: {reason}")),
            };
        }
        let detail = self.reason.lock().map(|r| r.clone()).unwrap_or_default();
        Err(if detail.is_empty() {
            phase.as_str().to_string()
        } else {
            format!("{}: {detail}", phase.as_str())
        })
    }

    /// `Ok` while the supervisor lives (and, in a session, keeps turning).
    pub fn liveness(&self) -> Result<(), String> {
        match self.phase() {
            Phase::Stopped => Err("the main loop has ended".into()),
            Phase::Running => {
                let now = self.started.elapsed().as_millis() as u64;
                let idle = Duration::from_millis(now.saturating_sub(self.beat_ms.load(Relaxed)));
                if idle > STUCK_AFTER {
                    Err(format!(
                        "the supervisor loop has not turned for {} s",
                        idle.as_secs()
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Copies what the presence board says about each partner: which pusher consumes it, its
    /// unacked count, pause and oldest message (for partners of another pusher too, so every
    /// pusher's endpoint shows the whole picture). `active_here`: partners this pusher consumes.
    pub fn observe_board(&self, board: &Board, active_here: impl Fn(&str) -> bool) {
        for (id, partner) in &self.partners {
            let status = board.alive().find_map(|a| a.partners.get(id));
            partner.active_here.store(active_here(id), Relaxed);
            partner
                .unacked
                .store(status.map(|s| s.unacked as i64).unwrap_or(-1), Relaxed);
            partner
                .paused
                .store(status.is_some_and(|s| s.state == "paused"), Relaxed);
            partner.oldest_published.store(
                status.and_then(|s| s.oldest_published).unwrap_or(0),
                Relaxed,
            );
        }
    }

    /// The Prometheus text of every series.
    pub fn render(&self) -> String {
        let now = unix_secs_now();
        let mut out = Exposition::new();
        out.family(
            "cdc_pusher_ready",
            Kind::Gauge,
            "1 while the pusher is connected to the broker (as /readyz), else 0.",
        );
        out.sample(
            "cdc_pusher_ready",
            &[],
            if self.readiness().is_ok() { 1.0 } else { 0.0 },
        );
        out.family(
            "cdc_pusher_broker_blocked",
            Kind::Gauge,
            "1 while the broker blocks this pusher's publishing connection (a disk or memory \
             alarm: deliveries go on, parking and presence announcements wait), else 0.",
        );
        out.sample(
            "cdc_pusher_broker_blocked",
            &[],
            if self.broker_blocked().is_some() {
                1.0
            } else {
                0.0
            },
        );
        let each =
            |out: &mut Exposition, name: &str, value: &dyn Fn(&PartnerMetrics) -> Option<f64>| {
                for (id, partner) in &self.partners {
                    if let Some(v) = value(partner) {
                        out.sample(name, &[("partner", id)], v);
                    }
                }
            };
        out.family(
            "cdc_pusher_pushes_total",
            Kind::Counter,
            "Messages this pusher acknowledged as delivered: the partner accepted them (a \
             coalesced call counts every message it covers), or nothing needed sending.",
        );
        each(&mut out, "cdc_pusher_pushes_total", &|p| {
            Some(p.pushes.load(Relaxed) as f64)
        });
        out.family(
            "cdc_pusher_pushes_per_second",
            Kind::Gauge,
            "Messages pushed per second by this pusher over the last 10 seconds.",
        );
        each(&mut out, "cdc_pusher_pushes_per_second", &|p| {
            Some(f64::from_bits(p.pushes_rate.load(Relaxed)))
        });
        out.family(
            "cdc_pusher_failures_total",
            Kind::Counter,
            "Failed calls by class: transient (retried in place), rejected (parked), \
             partner_level (partner paused); unsendable counts messages parked without a call.",
        );
        for (id, partner) in &self.partners {
            for class in FailureClass::ALL {
                out.sample(
                    "cdc_pusher_failures_total",
                    &[("partner", id), ("class", class.label())],
                    partner.failures(class) as f64,
                );
            }
        }
        out.family(
            "cdc_pusher_database_reads_total",
            Kind::Counter,
            "Composite objects (an EVSE with its connectors, a Location with its EVSEs) this \
             pusher read from the source database for calls to the partner.",
        );
        each(&mut out, "cdc_pusher_database_reads_total", &|p| {
            Some(p.database_reads.load(Relaxed) as f64)
        });
        if self.database_configured.load(Relaxed) {
            out.family(
                "cdc_pusher_database_up",
                Kind::Gauge,
                "1 while the source database answers the pusher's reads, 0 while composite \
                 objects wait for it.",
            );
            let down = self
                .database_down
                .lock()
                .map(|d| d.is_some())
                .unwrap_or(false);
            out.sample("cdc_pusher_database_up", &[], if down { 0.0 } else { 1.0 });
        }
        out.family(
            "cdc_pusher_parked_total",
            Kind::Counter,
            "Messages this pusher put into the partner's parking queue.",
        );
        each(&mut out, "cdc_pusher_parked_total", &|p| {
            Some(p.parked.load(Relaxed) as f64)
        });
        out.family(
            "cdc_pusher_cdrs_not_resent_total",
            Kind::Counter,
            "CDRs of a sync acknowledged without a POST: older than the partner's CDR ledger \
             remembers, so the partner may hold them (old_cdrs_in_sync = \"skip\").",
        );
        each(&mut out, "cdc_pusher_cdrs_not_resent_total", &|p| {
            Some(p.cdrs_not_resent.load(Relaxed) as f64)
        });
        out.family(
            "cdc_pusher_backlog_messages",
            Kind::Gauge,
            "Messages waiting for the partner: state=ready in its queue (absent while unknown), \
             state=unacked held by the pusher consuming it (0 when no pusher announces it).",
        );
        for (id, partner) in &self.partners {
            let ready = partner.ready.load(Relaxed);
            if ready >= 0 {
                out.sample(
                    "cdc_pusher_backlog_messages",
                    &[("partner", id), ("state", "ready")],
                    ready as f64,
                );
            }
            out.sample(
                "cdc_pusher_backlog_messages",
                &[("partner", id), ("state", "unacked")],
                partner.unacked.load(Relaxed).max(0) as f64,
            );
        }
        out.family(
            "cdc_pusher_parked_messages",
            Kind::Gauge,
            "Messages in the partner's parking queue (absent while unknown).",
        );
        each(&mut out, "cdc_pusher_parked_messages", &|p| {
            let depth = p.parked_depth.load(Relaxed);
            (depth >= 0).then_some(depth as f64)
        });
        out.family(
            "cdc_pusher_partner_paused",
            Kind::Gauge,
            "1 while the pusher consuming the partner holds it paused (partner down, refusing \
             us, or a module missing), else 0.",
        );
        each(&mut out, "cdc_pusher_partner_paused", &|p| {
            Some(if p.paused.load(Relaxed) { 1.0 } else { 0.0 })
        });
        out.family(
            "cdc_pusher_partner_cut_off",
            Kind::Gauge,
            "1 while the partner is cut off because its backlog reached backlog_limit (its queue \
             is unbound and it needs a re-sync), else 0; set by the pusher consuming it.",
        );
        each(&mut out, "cdc_pusher_partner_cut_off", &|p| {
            Some(if p.cut_off.load(Relaxed) { 1.0 } else { 0.0 })
        });
        out.family(
            "cdc_pusher_partner_active",
            Kind::Gauge,
            "1 when this pusher consumes the partner, else 0.",
        );
        each(&mut out, "cdc_pusher_partner_active", &|p| {
            Some(if p.active_here.load(Relaxed) {
                1.0
            } else {
                0.0
            })
        });
        out.family(
            "cdc_pusher_oldest_message_age_seconds",
            Kind::Gauge,
            "Age (since the bridge published it) of the oldest message the consuming pusher \
             holds, kept while the partner is paused; 0 when nothing waits; absent while unknown.",
        );
        each(&mut out, "cdc_pusher_oldest_message_age_seconds", &|p| {
            let published = p.oldest_published.load(Relaxed);
            if published > 0 {
                return Some(now.saturating_sub(published) as f64);
            }
            let nothing_waits = p.ready.load(Relaxed) == 0 && p.unacked.load(Relaxed) <= 0;
            nothing_waits.then_some(0.0)
        });
        out.finish()
    }
}

/// Keeps the recent-rate gauges moving: samples the counters every second, for as long as the
/// process runs.
pub async fn sample_rates(metrics: Arc<PusherMetrics>) {
    let mut rates: BTreeMap<String, Rate> = metrics
        .partners
        .keys()
        .map(|id| (id.clone(), Rate::new(RATE_WINDOW)))
        .collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        for (id, rate) in rates.iter_mut() {
            if let Some(partner) = metrics.partners.get(id) {
                let value = rate.observe(now, partner.pushes());
                partner.pushes_rate.store(value.to_bits(), Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::{Announcement, PartnerStatus};

    #[test]
    fn the_oldest_held_message_follows_the_ack_window() {
        let mut oldest = OldestHeld::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        oldest.received(at(0), Some(100));
        oldest.received(at(1), Some(105));
        oldest.received(at(2), None);
        assert_eq!(oldest.oldest(Some(at(0))), Some(100));
        // The first was acked: the window's oldest now arrived at 1 ms.
        assert_eq!(oldest.oldest(Some(at(1))), Some(105));
        // The oldest held carried no timestamp: unknown.
        assert_eq!(oldest.oldest(Some(at(2))), None);
        // Nothing held.
        assert_eq!(oldest.oldest(None), None);
        oldest.received(at(3), Some(110));
        assert_eq!(oldest.oldest(Some(at(3))), Some(110));
    }

    #[test]
    fn partners_series_carry_their_label_and_every_failure_class() {
        let metrics = PusherMetrics::new(["acme", "beta"]);
        let acme = metrics.partner("acme");
        acme.pushed(7);
        acme.call_answered(&Outcome::Transient {
            reason: "timeout".into(),
            retry_after: None,
        });
        acme.call_answered(&Outcome::Rejected {
            reason: "2001".into(),
        });
        acme.parked(1);
        acme.set_depths(Some(12), Some(1));
        let mut board = Board::default();
        let mut partners = BTreeMap::new();
        partners.insert(
            "acme".to_string(),
            PartnerStatus {
                state: "paused".into(),
                unacked: 3,
                oldest_published: Some(unix_secs_now() - 30),
                ..PartnerStatus::default()
            },
        );
        board.record(
            Announcement {
                pusher: "p1".into(),
                serves: vec!["acme".into(), "beta".into()],
                partners,
                leaving: false,
            },
            Instant::now(),
        );
        metrics.observe_board(&board, |id| id == "acme");
        let text = metrics.render();
        for line in [
            "cdc_pusher_pushes_total{partner=\"acme\"} 7",
            "cdc_pusher_pushes_total{partner=\"beta\"} 0",
            "cdc_pusher_failures_total{partner=\"acme\",class=\"transient\"} 1",
            "cdc_pusher_failures_total{partner=\"acme\",class=\"rejected\"} 1",
            "cdc_pusher_failures_total{partner=\"acme\",class=\"partner_level\"} 0",
            "cdc_pusher_parked_total{partner=\"acme\"} 1",
            "cdc_pusher_backlog_messages{partner=\"acme\",state=\"ready\"} 12",
            "cdc_pusher_backlog_messages{partner=\"acme\",state=\"unacked\"} 3",
            "cdc_pusher_parked_messages{partner=\"acme\"} 1",
            "cdc_pusher_partner_paused{partner=\"acme\"} 1",
            "cdc_pusher_partner_paused{partner=\"beta\"} 0",
            "cdc_pusher_partner_active{partner=\"acme\"} 1",
            "cdc_pusher_partner_active{partner=\"beta\"} 0",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "{line} missing:\n{text}"
            );
        }
        let age_line = text
            .lines()
            .find(|l| l.starts_with("cdc_pusher_oldest_message_age_seconds{partner=\"acme\"}"))
            .unwrap_or_else(|| panic!("no age for acme:\n{text}"));
        let age: f64 = age_line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((30.0..40.0).contains(&age), "{age_line}");
        // beta: queue depth unknown, no pusher: no ready sample and no age.
        assert!(!text.contains("partner=\"beta\",state=\"ready\""), "{text}");
        assert!(!text.contains("cdc_pusher_oldest_message_age_seconds{partner=\"beta\"}"));
    }

    #[test]
    fn readiness_follows_the_broker_session() {
        let metrics = PusherMetrics::new(["acme"]);
        metrics.set_phase(Phase::Connecting, "connection refused");
        let why = metrics.readiness().unwrap_err();
        assert!(why.contains("broker") && why.contains("refused"), "{why}");
        metrics.set_phase(Phase::Running, "");
        assert_eq!(metrics.readiness(), Ok(()));
        assert_eq!(metrics.liveness(), Ok(()));
        metrics.set_phase(Phase::Stopped, "");
        assert!(metrics.liveness().is_err());
    }

    #[test]
    fn a_blocked_broker_makes_the_pusher_unready_and_shows_in_the_metrics() {
        let metrics = PusherMetrics::new(["acme"]);
        metrics.set_phase(Phase::Running, "");
        assert!(metrics.render().contains("\ncdc_pusher_broker_blocked 0\n"));
        metrics.set_broker_blocked(Some("low on disk".into()));
        let why = metrics.readiness().unwrap_err();
        assert!(
            why.contains("blocks publishing") && why.contains("low on disk"),
            "{why}"
        );
        assert!(metrics.render().contains("\ncdc_pusher_broker_blocked 1\n"));
        metrics.set_broker_blocked(None);
        assert_eq!(metrics.readiness(), Ok(()));
    }
}
