//! `pusher partners`: each partner's backlog, parked count, active pusher and endpoint status,
//! gathered without the management plugin: queue depths from passive declarations, the rest
//! from the presence announcements of the running pushers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::types::{FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties};
use serde::Serialize;

use crate::config::{redact_url, Config};
use crate::presence::{self, Announcement};

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
}

pub async fn partners(config: &Config) -> anyhow::Result<Vec<PartnerRow>> {
    let connection = Connection::connect(&config.broker.url, ConnectionProperties::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to the broker at {}: {e}; check broker.url / PUSHER_BROKER_URL",
                redact_url(&config.broker.url)
            )
        })?;
    let mut depths = BTreeMap::new();
    for partner in &config.partners {
        let queue = passive(&connection, &partner.queue).await;
        let parked = passive(&connection, &partner.parking_queue).await;
        depths.insert(partner.id.clone(), (queue, parked));
    }
    let heard = listen_presence(
        &connection,
        &config.broker.presence_exchange,
        Duration::from_millis(config.pusher.presence_interval_ms * 2 + 500),
    )
    .await?;
    let _ = connection.close(200, "done".into()).await;

    let mut rows = Vec::new();
    for partner in &config.partners {
        let (queue, parked) = depths.get(&partner.id).copied().unwrap_or((None, None));
        let mut active = Vec::new();
        let mut row = PartnerRow {
            partner: partner.id.clone(),
            queue: partner.queue.clone(),
            ready: queue.map(|q| q.0),
            unacked: None,
            parked: parked.map(|q| q.0),
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
            }
        }
        if !active.is_empty() {
            row.active_pusher = Some(active.join(", "));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// (ready, consumers) of a queue, `None` when it does not exist.
async fn passive(connection: &Connection, queue: &str) -> Option<(u32, u32)> {
    let channel = connection.create_channel().await.ok()?;
    let declared = channel
        .queue_declare(
            ShortString::from(queue),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .ok()?;
    let _ = channel.close(200, "done".into()).await;
    Some((declared.message_count(), declared.consumer_count()))
}

async fn listen_presence(
    connection: &Connection,
    exchange: &str,
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
    let _ = channel.close(200, "done".into()).await;
    Ok(heard)
}

/// The listing as a table for people.
pub fn render_table(rows: &[PartnerRow]) -> String {
    let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    let mut lines = vec![[
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
        let state = r.state.clone();
        let endpoint = match &r.reason {
            Some(reason) => format!("{}; {reason}", r.endpoint),
            None => r.endpoint.clone(),
        };
        lines.push([
            r.partner.clone(),
            opt(r.ready.map(u64::from)),
            opt(r.unacked),
            opt(r.parked.map(u64::from)),
            opt(r.consumers.map(u64::from)),
            r.active_pusher.clone().unwrap_or_else(|| "-".into()),
            state,
            endpoint,
        ]);
    }
    let mut widths = [0usize; 8];
    for line in &lines {
        for (i, cell) in line.iter().enumerate().take(7) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        for (i, cell) in line.iter().enumerate() {
            if i < 7 {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}
