//! The sync request: how an operator (or the pusher, when it adds a partner) asks the bridge to
//! send every existing record of some tables to one partner queue, before and alongside the live
//! changes.
//!
//! A request is a JSON message published (persistent, confirmed) to the durable queue
//! [`requests_queue`]`(exchange)`, which the bridge declares and consumes. The bridge checks it
//! (the target queue must exist, the tables must be captured and have a primary key), writes it
//! into its signal table in the source database, and acknowledges it only once that row is
//! committed: from then on the request is part of the binlog, and survives any crash.
//!
//! ```json
//! {"version": 1, "request_id": "0b6f3c9e-5a57-4c39-9d0e-8e0f0f4a7f11", "action": "start",
//!  "queue": "ocpi.partner-b", "tables": ["app.locations", "app.evses"],
//!  "requested_at": "2026-11-21T14:22:56Z"}
//! {"version": 1, "request_id": "5f1e...", "action": "cancel", "queue": "ocpi.partner-b",
//!  "requested_at": "2026-11-21T15:00:00Z"}
//! ```
//!
//! The snapshot rows a sync produces reach only the target queue (published to the default
//! exchange with the queue's name as routing key); see `SnapshotMark` in the crate root.

use serde::{Deserialize, Serialize};

/// Version of the request layout. The bridge refuses versions it does not know.
pub const SYNC_REQUEST_VERSION: u32 = 1;

/// Name of the durable queue the bridge consumes sync requests from, for a bridge publishing
/// to `exchange`.
pub fn requests_queue(exchange: &str) -> String {
    format!("{exchange}.sync-requests")
}

/// One request to the bridge.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub version: u32,
    /// A UUID (text). It becomes the sync's id: snapshot messages carry it, and
    /// `bridge sync status` lists syncs by it.
    pub request_id: String,
    #[serde(flatten)]
    pub action: SyncAction,
    /// When it was asked for, RFC 3339 UTC (for operators; the bridge does not depend on it).
    pub requested_at: String,
}

/// What the request asks for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SyncAction {
    /// Send every record of `tables` (`database.table` entries, captured tables with a primary
    /// key) to `queue`, which must already exist and be bound to the bridge's exchange (so the
    /// live changes reach it too). Syncs run one at a time, in the order requested.
    Start { queue: String, tables: Vec<String> },
    /// Stop the running or waiting syncs of `queue`. Records already sent stay sent.
    Cancel { queue: String },
}

impl SyncAction {
    pub fn queue(&self) -> &str {
        match self {
            SyncAction::Start { queue, .. } | SyncAction::Cancel { queue } => queue,
        }
    }
}

/// Why a body is not a sync request this build understands.
#[derive(Debug)]
pub enum SyncRequestError {
    Json(serde_json::Error),
    UnknownVersion(u32),
    Invalid(String),
}

impl std::fmt::Display for SyncRequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncRequestError::Json(e) => write!(f, "not a sync request: {e}"),
            SyncRequestError::UnknownVersion(v) => write!(
                f,
                "sync request version {v} is not understood by this build (it reads version \
                 {SYNC_REQUEST_VERSION}): upgrade the bridge"
            ),
            SyncRequestError::Invalid(why) => write!(f, "invalid sync request: {why}"),
        }
    }
}

impl std::error::Error for SyncRequestError {}

impl SyncRequest {
    /// A request of the current version.
    pub fn new(request_id: String, action: SyncAction, requested_at: String) -> SyncRequest {
        SyncRequest {
            version: SYNC_REQUEST_VERSION,
            request_id,
            action,
            requested_at,
        }
    }

    /// Parses and checks a body: known version, non-empty id and queue, tables of the form
    /// `database.table`.
    pub fn from_slice(body: &[u8]) -> Result<SyncRequest, SyncRequestError> {
        let request: SyncRequest = serde_json::from_slice(body).map_err(SyncRequestError::Json)?;
        if request.version != SYNC_REQUEST_VERSION {
            return Err(SyncRequestError::UnknownVersion(request.version));
        }
        request.validate()?;
        Ok(request)
    }

    /// The checks `from_slice` makes, for requests built in code.
    pub fn validate(&self) -> Result<(), SyncRequestError> {
        let invalid = |why: String| Err(SyncRequestError::Invalid(why));
        if self.request_id.trim().is_empty() || self.request_id.len() > 64 {
            return invalid("request_id must be a UUID (1 to 64 characters)".into());
        }
        let queue = self.action.queue();
        if queue.trim().is_empty() || queue.len() > 255 {
            return invalid("queue must name an existing queue (1 to 255 bytes)".into());
        }
        if let SyncAction::Start { tables, .. } = &self.action {
            if tables.is_empty() {
                return invalid("tables must list at least one `database.table`".into());
            }
            for table in tables {
                let parts: Vec<&str> = table.split('.').collect();
                if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                    return invalid(format!("table {table:?} must have the form database.table"));
                }
            }
        }
        Ok(())
    }

    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_request_has_a_flat_documented_layout_and_round_trips() {
        let request = SyncRequest::new(
            "0b6f3c9e-5a57-4c39-9d0e-8e0f0f4a7f11".into(),
            SyncAction::Start {
                queue: "ocpi.b".into(),
                tables: vec!["app.locations".into()],
            },
            "2026-11-21T14:22:56Z".into(),
        );
        let text = String::from_utf8(request.to_vec()).unwrap();
        assert_eq!(
            text,
            r#"{"version":1,"request_id":"0b6f3c9e-5a57-4c39-9d0e-8e0f0f4a7f11","action":"start","queue":"ocpi.b","tables":["app.locations"],"requested_at":"2026-11-21T14:22:56Z"}"#
        );
        assert_eq!(SyncRequest::from_slice(text.as_bytes()).unwrap(), request);
    }

    #[test]
    fn cancel_request_parses() {
        let body = br#"{"version":1,"request_id":"x1","action":"cancel","queue":"ocpi.b","requested_at":""}"#;
        let request = SyncRequest::from_slice(body).unwrap();
        assert_eq!(
            request.action,
            SyncAction::Cancel {
                queue: "ocpi.b".into()
            }
        );
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let bad_table = br#"{"version":1,"request_id":"x","action":"start","queue":"q","tables":["nodot"],"requested_at":""}"#;
        let err = SyncRequest::from_slice(bad_table).unwrap_err().to_string();
        assert!(err.contains("database.table"), "{err}");
        let no_tables = br#"{"version":1,"request_id":"x","action":"start","queue":"q","tables":[],"requested_at":""}"#;
        assert!(SyncRequest::from_slice(no_tables).is_err());
        let version =
            br#"{"version":7,"request_id":"x","action":"cancel","queue":"q","requested_at":""}"#;
        assert!(matches!(
            SyncRequest::from_slice(version),
            Err(SyncRequestError::UnknownVersion(7))
        ));
        assert_eq!(requests_queue("cdc.changes"), "cdc.changes.sync-requests");
    }
}
