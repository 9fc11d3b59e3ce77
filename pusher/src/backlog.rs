//! One partner's backlog is bounded: a partner offline for days must not fill the broker until
//! a memory or disk alarm stops every partner (and the bridge).
//!
//! The pusher consuming a partner checks its queue every [`CHECK_EVERY`]. When the messages
//! ready reach `backlog_limit`, or their bytes reach `backlog_limit_bytes` (read from the
//! broker's management API, [`crate::management`], so only with `broker.management_url`; AMQP
//! tells counts, not bytes), the partner is **cut off**: its queue is unbound from the
//! bridge's exchange (it receives nothing more; the other partners are untouched), a marker
//! file `<state_dir>/<partner>.cut-off.json` records when and why (pushers that can take a
//! partner over share `state_dir`, so whoever holds it next knows), the pusher logs an error,
//! and the `cdc_pusher_partner_cut_off` gauge, `pusher partners` and the presence status say so.
//! What the queue held stays and is delivered when the partner is back.
//!
//! A cut-off partner has missed changes, so when it is back it needs a re-sync. With
//! `auto_resync` (the default), once the partner is consumed again and its queue has drained
//! (nothing ready, nothing unacked), the pusher binds the queue again and asks the bridge for
//! the partner's re-sync, as `pusher sync` does, then removes the marker. Without it, an
//! operator runs `pusher sync <partner>`, which does the same. While the marker exists the
//! queue is kept unbound (also after `pusher setup` or a restart bound it again).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::types::{FieldTable, ShortString};
use lapin::Connection;
use serde::{Deserialize, Serialize};

use crate::config::{Config, PartnerConfig};
use crate::metrics::PartnerMetrics;
use crate::parking::now_rfc3339;
use crate::presence::PartnerStatus;

/// How often the consuming pusher looks at the partner's backlog.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// After a failed re-sync request, the next one waits this long.
const RESYNC_RETRY: Duration = Duration::from_secs(60);

/// The marker of a cut-off partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutOff {
    /// When it was cut off, RFC 3339 UTC.
    pub at: String,
    /// Messages ready in its queue then.
    pub ready: u64,
    /// `backlog_limit` then.
    pub limit: u64,
    /// Bytes ready then, where the management API told them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// `backlog_limit_bytes` then, where it applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
}

impl CutOff {
    /// One line for logs and status.
    pub fn describe(&self) -> String {
        let bytes = match (self.bytes, self.limit_bytes) {
            (Some(bytes), Some(limit)) => format!(", {bytes} bytes (backlog_limit_bytes {limit})"),
            _ => String::new(),
        };
        format!(
            "cut off at {} with {} messages waiting (backlog_limit {}){bytes}: its queue \
             receives nothing until it is re-synced",
            self.at, self.ready, self.limit
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BacklogError {
    #[error("cannot {what} the cut-off marker {path}: {source}; check pusher.state_dir")]
    Marker {
        what: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("{0}")]
    Broker(String),
}

/// `<state_dir>/<partner>.cut-off.json`.
pub fn marker_path(state_dir: &Path, partner: &str) -> PathBuf {
    state_dir.join(format!("{partner}.cut-off.json"))
}

/// The partner's cut-off marker, if it is cut off. An unreadable marker counts as cut off (the
/// safe side: a re-sync is never skipped), with its problem as the reason.
pub fn load(state_dir: &Path, partner: &str) -> Result<Option<CutOff>, BacklogError> {
    let path = marker_path(state_dir, partner);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "the cut-off marker is not readable: taking the partner as cut off");
            CutOff {
                at: "unknown".into(),
                ready: 0,
                limit: 0,
                bytes: None,
                limit_bytes: None,
            }
        }))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(BacklogError::Marker {
            what: "read",
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes the marker durably (temporary file, fsync, rename).
fn save(state_dir: &Path, partner: &str, cut: &CutOff) -> Result<(), BacklogError> {
    let path = marker_path(state_dir, partner);
    let marker_error = |source| BacklogError::Marker {
        what: "write",
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    crate::disk_work::off_worker(|| -> io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let file = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&file, cut).map_err(io::Error::other)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })
    .map_err(marker_error)
}

/// Removes the marker (the partner was re-synced).
pub fn clear(state_dir: &Path, partner: &str) -> Result<(), BacklogError> {
    let path = marker_path(state_dir, partner);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BacklogError::Marker {
            what: "remove",
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Checks the backlog of `partner` every [`CHECK_EVERY`] while this pusher consumes it (the
/// task ends with the partner's worker).
pub async fn watch(
    config: Arc<Config>,
    partner: Arc<PartnerConfig>,
    connection: Arc<Connection>,
    status: Arc<Mutex<PartnerStatus>>,
    metrics: Arc<PartnerMetrics>,
) {
    let mut watcher = Watcher {
        config,
        partner,
        connection,
        status,
        metrics,
        next_resync: Instant::now(),
        bytes_unknown: false,
    };
    let limit_bytes = watcher.partner.backlog.limit_bytes;
    if limit_bytes > 0 && watcher.config.broker.management.is_none() {
        tracing::info!(partner = %watcher.partner.id, backlog_limit = watcher.partner.backlog.limit, backlog_limit_bytes = limit_bytes, "the partner's backlog is bounded in messages only: a bound in bytes needs broker.management_url");
    }
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        if let Err(e) = watcher.check().await {
            tracing::error!(partner = %watcher.partner.id, error = %e, "backlog check failed");
        }
    }
}

struct Watcher {
    config: Arc<Config>,
    partner: Arc<PartnerConfig>,
    connection: Arc<Connection>,
    status: Arc<Mutex<PartnerStatus>>,
    metrics: Arc<PartnerMetrics>,
    next_resync: Instant,
    /// The last question to the management API failed (said once, until it answers again).
    bytes_unknown: bool,
}

impl Watcher {
    async fn check(&mut self) -> Result<(), BacklogError> {
        let state_dir = &self.config.pusher.state_dir;
        let marker = load(state_dir, &self.partner.id)?;
        let ready = self.ready().await?;
        let bytes = self.ready_bytes().await;
        let backlog = &self.partner.backlog;
        let over = (backlog.limit > 0 && ready >= backlog.limit)
            || bytes.is_some_and(|b| backlog.limit_bytes > 0 && b >= backlog.limit_bytes);
        match marker {
            None if over => self.cut_off(ready, bytes).await,
            None => {
                self.show(None);
                Ok(())
            }
            Some(cut) => {
                self.show(Some(cut.describe()));
                if self.partner.backlog.auto_resync && self.drained(ready) {
                    self.resync().await
                } else {
                    // Kept unbound, whatever bound it again meanwhile.
                    self.unbind().await
                }
            }
        }
    }

    async fn cut_off(&mut self, ready: u64, bytes: Option<u64>) -> Result<(), BacklogError> {
        let limit_bytes = self.partner.backlog.limit_bytes;
        let cut = CutOff {
            at: now_rfc3339(),
            ready,
            limit: self.partner.backlog.limit,
            bytes,
            limit_bytes: bytes.map(|_| limit_bytes),
        };
        save(&self.config.pusher.state_dir, &self.partner.id, &cut)?;
        self.unbind().await?;
        tracing::error!(
            partner = %self.partner.id,
            queue = %self.partner.queue,
            ready,
            limit = self.partner.backlog.limit,
            bytes = bytes.map_or_else(|| "unknown".to_string(), |b| b.to_string()),
            limit_bytes,
            auto_resync = self.partner.backlog.auto_resync,
            "partner CUT OFF: its backlog reached backlog_limit or backlog_limit_bytes, so its \
             queue no longer receives changes (the other partners are not affected). What waits in the queue is still \
             delivered; the partner needs a re-sync when it is back: {}",
            if self.partner.backlog.auto_resync {
                "it is asked for automatically once the queue has drained"
            } else {
                "run `pusher sync <partner>` once it answers again"
            }
        );
        self.show(Some(cut.describe()));
        Ok(())
    }

    /// Consumed again and nothing waiting: the partner is back and has what the queue held.
    fn drained(&self, ready: u64) -> bool {
        ready == 0
            && Instant::now() >= self.next_resync
            && self
                .status
                .lock()
                .is_ok_and(|s| s.state == "consuming" && s.unacked == 0)
    }

    async fn resync(&mut self) -> Result<(), BacklogError> {
        tracing::info!(partner = %self.partner.id, "the cut-off partner has drained its queue: binding it again and asking the bridge for its re-sync");
        match crate::sync_request::request(&self.config, &self.partner.id, false).await {
            Ok(requested) => {
                clear(&self.config.pusher.state_dir, &self.partner.id)?;
                tracing::info!(partner = %self.partner.id, request = %requested.request.request_id, "re-sync requested; the partner is no longer cut off");
                self.show(None);
                Ok(())
            }
            Err(e) => {
                self.next_resync = Instant::now() + RESYNC_RETRY;
                // Its queue must not receive a part of the changes without the re-sync.
                self.unbind().await?;
                Err(BacklogError::Broker(format!(
                    "the re-sync of the cut-off partner could not be requested ({e}); trying \
                     again in {} s, or run `pusher sync {}`",
                    RESYNC_RETRY.as_secs(),
                    self.partner.id
                )))
            }
        }
    }

    /// Messages ready in the partner's queue.
    async fn ready(&self) -> Result<u64, BacklogError> {
        let channel = self.channel().await?;
        let declared = crate::topology::passive_declare(&channel, &self.partner.queue).await;
        tls_connect::broker::close_channel(&channel, "checked").await;
        declared.map(|q| u64::from(q.message_count())).map_err(|e| {
            BacklogError::Broker(format!(
                "cannot read the depth of {}: {e}",
                self.partner.queue
            ))
        })
    }

    /// Bytes ready in the partner's queue, where a bound in bytes applies and the management
    /// API answers; a failure is said once (the message bound still applies meanwhile).
    async fn ready_bytes(&mut self) -> Option<u64> {
        let api = self.config.broker.management.as_ref()?;
        if self.partner.backlog.limit_bytes == 0 {
            return None;
        }
        match api.queue_bytes(&self.partner.queue).await {
            Ok(bytes) => {
                if std::mem::take(&mut self.bytes_unknown) {
                    tracing::info!(partner = %self.partner.id, "the management API answers again: the backlog is bounded in bytes too");
                }
                Some(bytes.ready)
            }
            Err(e) => {
                if !std::mem::replace(&mut self.bytes_unknown, true) {
                    tracing::warn!(partner = %self.partner.id, error = %e, "the backlog's bytes are unknown: only backlog_limit (messages) applies until the management API answers");
                }
                None
            }
        }
    }

    async fn unbind(&self) -> Result<(), BacklogError> {
        let channel = self.channel().await?;
        let unbound = channel
            .queue_unbind(
                ShortString::from(self.partner.queue.as_str()),
                ShortString::from(self.config.broker.exchange.as_str()),
                ShortString::from(""),
                FieldTable::default(),
            )
            .await;
        tls_connect::broker::close_channel(&channel, "unbound").await;
        unbound.map_err(|e| {
            BacklogError::Broker(format!(
                "cannot unbind {} from {}: {e}",
                self.partner.queue, self.config.broker.exchange
            ))
        })
    }

    async fn channel(&self) -> Result<lapin::Channel, BacklogError> {
        self.connection
            .create_channel()
            .await
            .map_err(|e| BacklogError::Broker(format!("cannot open a channel: {e}")))
    }

    /// The cut-off state in the gauge and the announced status.
    fn show(&self, cut_off: Option<String>) {
        self.metrics.set_cut_off(cut_off.is_some());
        if let Ok(mut s) = self.status.lock() {
            s.cut_off = cut_off;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_saved_read_back_and_cleared() {
        let dir = std::env::temp_dir().join(format!("backlog-test-{}", std::process::id()));
        let cut = CutOff {
            at: "2026-12-03T10:00:00Z".into(),
            ready: 1200,
            limit: 1000,
            bytes: Some(5000),
            limit_bytes: Some(4096),
        };
        assert!(cut
            .describe()
            .contains("5000 bytes (backlog_limit_bytes 4096)"));
        assert_eq!(load(&dir, "acme").unwrap(), None);
        save(&dir, "acme", &cut).unwrap();
        assert_eq!(load(&dir, "acme").unwrap(), Some(cut));
        assert_eq!(load(&dir, "beta").unwrap(), None);
        clear(&dir, "acme").unwrap();
        assert_eq!(load(&dir, "acme").unwrap(), None);
        clear(&dir, "acme").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_marker_written_before_bytes_were_bounded_is_read() {
        let dir = std::env::temp_dir().join(format!("backlog-test-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            marker_path(&dir, "acme"),
            br#"{"at":"2026-12-03T10:00:00Z","ready":1200,"limit":1000}"#,
        )
        .unwrap();
        let cut = load(&dir, "acme").unwrap().unwrap();
        assert_eq!((cut.ready, cut.bytes), (1200, None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unreadable_marker_counts_as_cut_off() {
        let dir = std::env::temp_dir().join(format!("backlog-test-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(marker_path(&dir, "acme"), b"{not json").unwrap();
        assert!(load(&dir, "acme").unwrap().is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
