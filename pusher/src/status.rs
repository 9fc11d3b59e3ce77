//! What operators ask the running system, without the broker's management plugin:
//!
//! - `pusher partners`: each partner's backlog, parked count, active pusher and endpoint
//!   status: queue depths from passive declarations, the rest from the presence announcements
//!   of the running pushers;
//! - `pusher status`: the same per partner plus the oldest waiting message and the partner's
//!   initial sync, next to the bridge's position and lag, fetched from the bridge's
//!   `GET /status` (`[bridge] status_url`). An unreachable bridge is reported on its own line
//!   and does not hide the partners.
//!
//! The queue depths are also what the metrics poll ([`queue_depths`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::{Channel, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};

use crate::config::{Config, PartnerConfig};
use crate::metrics::unix_secs_now;
use crate::presence::{self, Announcement};
use crate::senders::Senders;

/// One line of the listing.
#[derive(Debug, Clone, Serialize)]
pub struct PartnerRow {
    pub partner: String,
    pub queue: String,
    /// Messages waiting in the queue; `None` when the queue does not exist.
    pub ready: Option<u32>,
    /// Messages handed to a pusher and not acked yet, as the active pusher reports them.
    pub unacked: Option<u64>,
    /// Messages in the parking queue.
    pub parked: Option<u32>,
    /// Consumers on the queue (the active one and those waiting to take over).
    pub consumers: Option<u32>,
    /// The pusher(s) consuming the partner, by their announcements.
    pub active_pusher: Option<String>,
    /// "consuming", "paused", "discovering", ... or "unassigned" when no pusher runs it.
    pub state: String,
    pub reason: Option<String>,
    pub endpoint: String,
    pub pushed: Option<u64>,
    pub last_success: Option<String>,
    /// When the oldest message the active pusher holds was published (seconds since the
    /// epoch), as it last announced; kept while the partner is paused.
    pub oldest_published: Option<u64>,
    /// Its age in seconds now; `None` when unknown or when nothing waits (see
    /// [`PartnerRow::nothing_waits`]).
    pub oldest_age_s: Option<u64>,
    /// Set while the partner is cut off for its backlog (its marker in `pusher.state_dir`).
    pub cut_off: Option<String>,
}

impl PartnerRow {
    /// The queue is empty and no pusher holds anything: there is no oldest message.
    pub fn nothing_waits(&self) -> bool {
        self.ready == Some(0) && self.unacked.unwrap_or(0) == 0
    }
}

/// Depths of a partner's queues (`None`: the queue does not exist).
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueDepths {
    /// (ready, consumers) of the partner queue.
    pub queue: Option<(u32, u32)>,
    /// Messages in the parking queue.
    pub parked: Option<u32>,
}

/// Reads every partner's queue depths by passive declarations on one channel (opened again
/// only after a queue that does not exist closed it).
pub async fn queue_depths(
    connection: &Connection,
    partners: &[Arc<PartnerConfig>],
) -> BTreeMap<String, QueueDepths> {
    let mut channel = None;
    let mut depths = BTreeMap::new();
    for partner in partners {
        let queue = passive(connection, &mut channel, &partner.queue).await;
        let parked = passive(connection, &mut channel, &partner.parking_queue)
            .await
            .map(|(ready, _)| ready);
        depths.insert(partner.id.clone(), QueueDepths { queue, parked });
    }
    if let Some(channel) = channel {
        tls_connect::broker::close_channel(&channel, "done").await;
    }
    depths
}

/// (ready, consumers) of a queue, `None` when it does not exist (or the broker is gone).
async fn passive(
    connection: &Connection,
    channel: &mut Option<Channel>,
    queue: &str,
) -> Option<(u32, u32)> {
    if channel.as_ref().is_none_or(|c| !c.status().connected()) {
        *channel = connection.create_channel().await.ok();
    }
    let declared = crate::topology::passive_declare(channel.as_ref()?, queue).await;
    match declared {
        Ok(q) => Some((q.message_count(), q.consumer_count())),
        Err(_) => {
            // A missing queue closes the channel (404).
            *channel = None;
            None
        }
    }
}

pub async fn partners(config: &Config) -> anyhow::Result<Vec<PartnerRow>> {
    let connection = config
        .broker
        .connect(ConnectionProperties::default())
        .await
        .map_err(|e| anyhow::anyhow!(config.broker.explain(&e)))?;
    let depths = queue_depths(&connection, &config.partners).await;
    let heard = listen_presence(
        &connection,
        &config.broker.presence_exchange,
        &config.broker.senders,
        Duration::from_millis(config.pusher.presence_interval_ms * 2 + 500),
    )
    .await?;
    tls_connect::broker::close(&connection, "done").await;

    let now = unix_secs_now();
    let mut rows = Vec::new();
    for partner in &config.partners {
        let QueueDepths { queue, parked } = depths.get(&partner.id).copied().unwrap_or_default();
        let mut active = Vec::new();
        let mut row = PartnerRow {
            partner: partner.id.clone(),
            queue: partner.queue.clone(),
            ready: queue.map(|q| q.0),
            unacked: None,
            parked,
            consumers: queue.map(|q| q.1),
            active_pusher: None,
            state: if queue.is_none() {
                "not declared (run `pusher setup`)".into()
            } else {
                "unassigned".into()
            },
            reason: None,
            endpoint: "-".into(),
            pushed: None,
            last_success: None,
            oldest_published: None,
            oldest_age_s: None,
            cut_off: crate::backlog::load(&config.pusher.state_dir, &partner.id)
                .unwrap_or_else(|e| {
                    Some(crate::backlog::CutOff {
                        at: e.to_string(),
                        ready: 0,
                        limit: 0,
                        bytes: None,
                        limit_bytes: None,
                    })
                })
                .map(|cut| cut.describe()),
        };
        for a in heard.values() {
            if let Some(s) = a.partners.get(&partner.id) {
                active.push(a.pusher.clone());
                row.unacked = Some(row.unacked.unwrap_or(0) + s.unacked);
                row.pushed = Some(row.pushed.unwrap_or(0) + s.pushed);
                row.state = s.state.clone();
                row.reason = s.reason.clone();
                row.endpoint = s.endpoint.clone();
                row.last_success = s.last_success.clone().or(row.last_success);
                row.oldest_published = match (row.oldest_published, s.oldest_published) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        row.oldest_age_s = row.oldest_published.map(|t| now.saturating_sub(t));
        if !active.is_empty() {
            row.active_pusher = Some(active.join(", "));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Announcements heard within `window`, from `broker.pusher_users` only (as the pushers
/// themselves hear them).
async fn listen_presence(
    connection: &Connection,
    exchange: &str,
    senders: &Senders,
    window: Duration,
) -> anyhow::Result<BTreeMap<String, Announcement>> {
    let channel = connection.create_channel().await?;
    let mut consumer = presence::listen(&channel, exchange).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on presence exchange `{exchange}`: {e}; is a pusher set up on this broker?")
    })?;
    let mut heard = BTreeMap::new();
    let until = Instant::now() + window;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, consumer.next()).await {
            Ok(Some(Ok(d))) => {
                if let Err(refusal) = senders.presence(&d.properties) {
                    tracing::debug!(sender = %refusal.user(), "presence announcement from a broker user not in broker.pusher_users: ignored");
                    continue;
                }
                if let Ok(a) = serde_json::from_slice::<Announcement>(&d.data) {
                    if a.leaving {
                        heard.remove(&a.pusher);
                    } else {
                        heard.insert(a.pusher.clone(), a);
                    }
                }
            }
            Ok(_) | Err(_) => break,
        }
    }
    tls_connect::broker::close_channel(&channel, "done").await;
    Ok(heard)
}

/// Lays out rows of cells in columns (the last column is not padded).
fn columns(lines: &[Vec<String>]) -> String {
    let count = lines.first().map(Vec::len).unwrap_or(0);
    let mut widths = vec![0usize; count];
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            if i + 1 < count {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

fn opt(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}

fn endpoint_cell(r: &PartnerRow) -> String {
    match &r.reason {
        Some(reason) => format!("{}; {reason}", r.endpoint),
        None => r.endpoint.clone(),
    }
}

/// The listing as a table for people.
pub fn render_table(rows: &[PartnerRow]) -> String {
    let mut lines = vec![vec![
        "PARTNER".to_string(),
        "READY".into(),
        "UNACKED".into(),
        "PARKED".into(),
        "CONSUMERS".into(),
        "ACTIVE PUSHER".into(),
        "STATE".into(),
        "ENDPOINT".into(),
    ]];
    for r in rows {
        lines.push(vec![
            r.partner.clone(),
            opt(r.ready.map(u64::from)),
            opt(r.unacked),
            opt(r.parked.map(u64::from)),
            opt(r.consumers.map(u64::from)),
            r.active_pusher.clone().unwrap_or_else(|| "-".into()),
            match &r.cut_off {
                Some(_) => format!("CUT OFF ({})", r.state),
                None => r.state.clone(),
            },
            endpoint_cell(r),
        ]);
    }
    columns(&lines)
}

// ---- pusher status -----------------------------------------------------------------------------

/// What `pusher status` reads of the bridge's `GET /status` (the bridge's `BridgeStatus`);
/// fields it does not know are ignored, fields missing are unknown.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BridgeView {
    pub state: String,
    pub ready: bool,
    pub reason: Option<String>,
    pub position: Option<PositionView>,
    pub checkpoint: Option<CheckpointView>,
    pub lag: Option<LagView>,
    pub changes_read: u64,
    pub changes_per_s: f64,
    pub unconfirmed: u64,
    pub syncs: Vec<SyncView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PositionView {
    pub file: String,
    pub pos: u64,
    pub gtid: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CheckpointView {
    pub file: String,
    pub pos: u64,
    pub gtid: Option<String>,
    pub age_s: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LagView {
    pub seconds: u64,
    pub bytes: u64,
}

/// An initial sync as the bridge reports it, and as `pusher status --json` shows it per
/// partner.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncView {
    pub sync_id: String,
    pub queue: String,
    /// "running", "waiting", "finished", "cancelled", "failed".
    pub state: String,
    pub rows_done: u64,
    pub rows_total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub started_at: String,
    pub ended_at: String,
}

/// `pusher status`: the bridge's part (or why it is unknown) and one line per partner.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub bridge_status_url: String,
    /// The bridge's `/status` as it answered; `null` when it could not be read.
    pub bridge: Option<serde_json::Value>,
    /// Why the bridge's part is unknown, with the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge_error: Option<String>,
    /// Why the partners' part is unknown (the broker could not be asked), with the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_error: Option<String>,
    /// Empty when `broker_error` is set.
    pub partners: Vec<PartnerStatusRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartnerStatusRow {
    #[serde(flatten)]
    pub row: PartnerRow,
    /// The partner queue's running or waiting initial sync, else its last one; `null` when the
    /// bridge records none for the queue, or when the bridge's part is unknown.
    pub sync: Option<SyncView>,
}

/// Reads the bridge's `/status`: the raw JSON (for `--json`) and its typed view.
async fn fetch_bridge(url: &str) -> Result<(serde_json::Value, BridgeView), String> {
    let value = fetch_bridge_json(url).await?;
    let view = serde_json::from_value(value.clone())
        .map_err(|e| format!("{url} did not answer the bridge's status JSON: {e}"))?;
    Ok((value, view))
}

/// The bridge's `/status` document as JSON; the error says what failed, naming `url`.
pub(crate) async fn fetch_bridge_json(url: &str) -> Result<serde_json::Value, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {}", error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered HTTP {}", response.status()));
    }
    response
        .json()
        .await
        .map_err(|e| format!("{url} did not answer the bridge's status JSON: {e}"))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The sync to show for a queue: the running one, else a waiting one, else the newest ended
/// (the bridge lists running, waiting, then ended newest first).
pub fn sync_of<'a>(syncs: &'a [SyncView], queue: &str) -> Option<&'a SyncView> {
    let of_queue = || syncs.iter().filter(move |s| s.queue == queue);
    of_queue()
        .find(|s| s.state == "running")
        .or_else(|| of_queue().find(|s| s.state == "waiting"))
        .or_else(|| of_queue().next())
}

/// Gathers `pusher status`; `config_path` names the file to fix in the bridge hint.
pub async fn status(config: &Config, config_path: &str) -> anyhow::Result<StatusReport> {
    let url = config.bridge.status_url.clone();
    let (rows, bridge) = tokio::join!(partners(config), fetch_bridge(&url));
    // An unreachable broker leaves the partners unknown but not the bridge: say both.
    let (rows, broker_error) = match rows {
        Ok(rows) => (rows, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    let (raw, view, error) = match bridge {
        Ok((raw, view)) => (Some(raw), Some(view), None),
        Err(e) => (
            None,
            None,
            Some(format!(
                "{e}. Is the bridge running with [metrics] listen set? If it listens elsewhere, \
                 set [bridge] status_url in {config_path} to http://<its metrics.listen>/status"
            )),
        ),
    };
    let partners = rows
        .into_iter()
        .map(|row| PartnerStatusRow {
            sync: view
                .as_ref()
                .and_then(|v| sync_of(&v.syncs, &row.queue))
                .cloned(),
            row,
        })
        .collect();
    Ok(StatusReport {
        bridge_status_url: url,
        bridge: raw,
        bridge_error: error,
        broker_error,
        partners,
    })
}

/// Seconds as people read them: `45s`, `12m05s`, `3h20m`, `2d04h`.
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn position_text(file: &str, pos: u64, gtid: Option<&str>) -> String {
    match gtid {
        Some(g) if !g.is_empty() => format!("{file}:{pos} (gtid {g})"),
        _ => format!("{file}:{pos}"),
    }
}

fn sync_cell(sync: Option<&SyncView>, bridge_known: bool) -> String {
    let Some(s) = sync else {
        return if bridge_known { "-" } else { "unknown" }.into();
    };
    let rows = match s.rows_total {
        Some(total) if total > 0 => format!(
            "{}/{} rows, {}%",
            s.rows_done,
            total,
            (s.rows_done.min(total) * 100) / total
        ),
        Some(total) => format!("{}/{total} rows", s.rows_done),
        None => format!("{}/? rows", s.rows_done),
    };
    match s.state.as_str() {
        "waiting" => "waiting".into(),
        "running" => format!("running ({rows})"),
        other => format!("{other} ({} rows)", s.rows_done),
    }
}

fn oldest_cell(r: &PartnerRow) -> String {
    match r.oldest_age_s {
        Some(age) => human_age(age),
        None if r.nothing_waits() => "none".into(),
        None => "unknown".into(),
    }
}

/// `pusher status` for people.
pub fn render_status(report: &StatusReport) -> String {
    let mut out = String::new();
    let bridge: Option<BridgeView> = report
        .bridge
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    match (&bridge, &report.bridge_error) {
        (Some(b), _) => {
            let readiness = if b.ready {
                "ready".to_string()
            } else {
                format!(
                    "NOT READY: {}",
                    b.reason.as_deref().unwrap_or("no reason given")
                )
            };
            out.push_str(&format!("bridge ({})\n", report.bridge_status_url));
            out.push_str(&format!("  state       {} ({readiness})\n", b.state));
            out.push_str(&format!(
                "  position    {}\n",
                b.position
                    .as_ref()
                    .map(|p| position_text(&p.file, p.pos, p.gtid.as_deref()))
                    .unwrap_or_else(|| "unknown (nothing read yet)".into())
            ));
            out.push_str(&format!(
                "  lag         {}\n",
                b.lag
                    .as_ref()
                    .map(|l| format!("{} s, {} bytes", l.seconds, l.bytes))
                    .unwrap_or_else(|| {
                        "unknown (the bridge cannot read the server's binlog end)".into()
                    })
            ));
            out.push_str(&format!(
                "  checkpoint  {}\n",
                b.checkpoint
                    .as_ref()
                    .map(|c| {
                        let saved = if c.age_s == 0 {
                            "up to date".to_string()
                        } else {
                            format!("last saved {} s ago", c.age_s)
                        };
                        format!(
                            "{}, {saved}",
                            position_text(&c.file, c.pos, c.gtid.as_deref())
                        )
                    })
                    .unwrap_or_else(|| "none yet".into())
            ));
            out.push_str(&format!(
                "  changes     {} read, {:.1}/s now, {} publishes unconfirmed\n",
                b.changes_read, b.changes_per_s, b.unconfirmed
            ));
        }
        (None, error) => {
            out.push_str(&format!(
                "bridge: unknown: {}\n",
                error.as_deref().unwrap_or("no answer")
            ));
        }
    }
    out.push('\n');
    if let Some(error) = &report.broker_error {
        out.push_str(&format!(
            "partners: unknown: the broker cannot be asked: {error}\n"
        ));
        return out;
    }
    let mut lines = vec![vec![
        "PARTNER".to_string(),
        "READY".into(),
        "UNACKED".into(),
        "OLDEST".into(),
        "PARKED".into(),
        "ACTIVE PUSHER".into(),
        "STATE".into(),
        "SYNC".into(),
        "ENDPOINT".into(),
    ]];
    for p in &report.partners {
        let r = &p.row;
        let unacked = match (r.unacked, &r.active_pusher) {
            (Some(n), _) => n.to_string(),
            (None, None) if r.consumers == Some(0) => "0".into(),
            (None, _) => "unknown".into(),
        };
        lines.push(vec![
            r.partner.clone(),
            r.ready
                .map(|n| n.to_string())
                .unwrap_or_else(|| "unknown".into()),
            unacked,
            oldest_cell(r),
            r.parked
                .map(|n| n.to_string())
                .unwrap_or_else(|| "unknown".into()),
            r.active_pusher.clone().unwrap_or_else(|| "none".into()),
            r.state.clone(),
            sync_cell(p.sync.as_ref(), bridge.is_some()),
            endpoint_cell(r),
        ]);
    }
    out.push_str(&columns(&lines));
    out.push_str(
        "\nOLDEST: age of the oldest message the active pusher holds (since the bridge published \
         it); unknown: no pusher reports the partner. SYNC: the partner queue's initial sync.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> PartnerRow {
        PartnerRow {
            partner: id.into(),
            queue: format!("ocpi.{id}"),
            ready: Some(0),
            unacked: Some(0),
            parked: Some(0),
            consumers: Some(1),
            active_pusher: Some("p-1".into()),
            state: "consuming".into(),
            reason: None,
            endpoint: "ok (2.2.1: locations)".into(),
            pushed: Some(10),
            last_success: None,
            oldest_published: None,
            oldest_age_s: None,
            cut_off: None,
        }
    }

    fn sync(queue: &str, state: &str, done: u64) -> SyncView {
        SyncView {
            sync_id: format!("{queue}-{state}"),
            queue: queue.into(),
            state: state.into(),
            rows_done: done,
            rows_total: Some(400),
            ..SyncView::default()
        }
    }

    #[test]
    fn the_running_sync_of_a_queue_wins_over_ended_ones() {
        let syncs = vec![
            sync("ocpi.b", "running", 100),
            sync("ocpi.a", "waiting", 0),
            sync("ocpi.a", "finished", 400),
        ];
        assert_eq!(sync_of(&syncs, "ocpi.b").unwrap().state, "running");
        assert_eq!(sync_of(&syncs, "ocpi.a").unwrap().state, "waiting");
        assert!(sync_of(&syncs, "ocpi.c").is_none());
        assert_eq!(
            sync_cell(Some(&syncs[0]), true),
            "running (100/400 rows, 25%)"
        );
        assert_eq!(sync_cell(None, true), "-");
        assert_eq!(sync_cell(None, false), "unknown");
    }

    #[test]
    fn ages_read_like_people_write_them() {
        assert_eq!(human_age(7), "7s");
        assert_eq!(human_age(125), "2m05s");
        assert_eq!(human_age(3 * 3600 + 20 * 60), "3h20m");
        assert_eq!(human_age(2 * 86_400 + 4 * 3600), "2d04h");
    }

    #[test]
    fn status_shows_the_bridge_and_each_partner_and_says_what_is_unknown() {
        let mut waiting = row("acme");
        waiting.ready = Some(5);
        waiting.unacked = Some(3);
        waiting.oldest_published = Some(1);
        waiting.oldest_age_s = Some(125);
        let mut unassigned = row("beta");
        unassigned.ready = Some(2);
        unassigned.unacked = None;
        unassigned.active_pusher = None;
        unassigned.consumers = Some(0);
        unassigned.state = "unassigned".into();
        let bridge = serde_json::json!({
            "state": "streaming", "ready": true,
            "position": {"file": "binlog.000002", "pos": 1234, "gtid": "0-1-9"},
            "checkpoint": {"file": "binlog.000002", "pos": 1000, "age_s": 1},
            "lag": {"seconds": 0, "bytes": 0, "server_end": {"file": "binlog.000002", "pos": 1234}},
            "changes_read": 50, "changes_per_s": 2.5, "unconfirmed": 0,
            "syncs": [{"sync_id": "s1", "queue": "ocpi.acme", "state": "running",
                       "rows_done": 100, "rows_total": 400, "started_at": "", "ended_at": ""}],
            "some_future_field": 1
        });
        let view: BridgeView = serde_json::from_value(bridge.clone()).unwrap();
        let report = StatusReport {
            bridge_status_url: "http://127.0.0.1:9187/status".into(),
            bridge: Some(bridge),
            bridge_error: None,
            broker_error: None,
            partners: vec![
                PartnerStatusRow {
                    sync: sync_of(&view.syncs, "ocpi.acme").cloned(),
                    row: waiting,
                },
                PartnerStatusRow {
                    sync: None,
                    row: unassigned,
                },
            ],
        };
        let text = render_status(&report);
        assert!(
            text.contains("position    binlog.000002:1234 (gtid 0-1-9)"),
            "{text}"
        );
        assert!(text.contains("lag         0 s, 0 bytes"), "{text}");
        let acme: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("acme"))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            &acme[..7],
            ["acme", "5", "3", "2m05s", "0", "p-1", "consuming"]
        );
        assert!(text.contains("running (100/400 rows, 25%)"), "{text}");
        let beta: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("beta"))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            &beta[..8],
            ["beta", "2", "0", "unknown", "0", "none", "unassigned", "-"]
        );

        let unreachable = StatusReport {
            bridge: None,
            bridge_error: Some("cannot reach http://127.0.0.1:9/status: refused".into()),
            ..report
        };
        let text = render_status(&unreachable);
        assert!(
            text.starts_with("bridge: unknown: cannot reach http://127.0.0.1:9/status"),
            "{text}"
        );
        assert!(text.lines().any(|l| l.starts_with("acme")), "{text}");

        let no_broker = StatusReport {
            broker_error: Some("broker amqp://cdc@127.0.0.1:9/ is not reachable".into()),
            partners: Vec::new(),
            ..unreachable
        };
        let text = render_status(&no_broker);
        assert!(
            text.starts_with("bridge: unknown: cannot reach"),
            "the bridge's part is still there:\n{text}"
        );
        assert!(
            text.contains("partners: unknown: the broker cannot be asked: broker amqp://cdc@127.0.0.1:9/ is not reachable"),
            "{text}"
        );
        assert!(!text.contains("PARTNER"), "no table of unknowns:\n{text}");
    }
}
