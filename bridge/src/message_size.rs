//! The broker's message size limit (`broker.max_message_bytes`).
//!
//! RabbitMQ closes the channel on a message above its `max_message_size`; the publisher would
//! reconnect and send the same message again, for ever. So a change is measured as it is
//! encoded, before it reaches the publisher, and one that is too large is never published:
//! per `broker.on_too_large` it stops the bridge naming table, key, size, limit and position,
//! or it is replaced by a *too-large marker* (the change's identity, no row data, a
//! `too_large` field with both sizes) that the pusher parks. Live changes and snapshot rows of
//! an initial sync both pass through here.

use crate::config::{BrokerConfig, OnTooLarge};
use change_message::{RowChange, TooLarge};

/// A change whose message is larger than the limit, with what an operator needs to find it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the change to {table} with key {key} ({what}) makes a message of {bytes} bytes, over \
     broker.max_message_bytes = {limit}. The bridge stopped without publishing it and the \
     checkpoint stays before it. To go on: raise broker.max_message_bytes above {bytes} (and \
     max_message_size in rabbitmq.conf above that), or leave the large column out \
     (capture.exclude_columns), or set broker.on_too_large = \"marker\" to publish a small \
     marker in its place that the pusher parks for a re-sync of the record; then start the \
     bridge again"
)]
pub struct TooLargeError {
    /// `database.table`.
    pub table: String,
    /// The primary key as JSON, e.g. `{"id":7}`.
    pub key: String,
    /// Operation and binlog position (or the sync of a snapshot row).
    pub what: String,
    pub bytes: usize,
    pub limit: usize,
}

/// The body to publish for a change, and whether it is a marker standing in for it.
pub struct Body {
    pub bytes: Vec<u8>,
    pub marker: Option<TooLarge>,
}

/// `broker.max_message_bytes` and `broker.on_too_large`.
#[derive(Debug, Clone, Copy)]
pub struct SizeLimit {
    limit: usize,
    on_too_large: OnTooLarge,
}

impl SizeLimit {
    pub fn new(broker: &BrokerConfig) -> SizeLimit {
        SizeLimit {
            limit: broker.max_message_bytes,
            on_too_large: broker.on_too_large,
        }
    }

    /// The JSON body of `change`, or of its marker, or the error that stops the bridge.
    pub fn encode(&self, change: &RowChange) -> Result<Body, TooLargeError> {
        let bytes = change.to_message_vec();
        if bytes.len() <= self.limit {
            return Ok(Body {
                bytes,
                marker: None,
            });
        }
        let size = bytes.len();
        if self.on_too_large == OnTooLarge::Stop {
            return Err(self.error(change, size));
        }
        let too_large = TooLarge {
            bytes: size as u64,
            limit: self.limit as u64,
        };
        let marker_bytes = marker_of(change, too_large).to_message_vec();
        if marker_bytes.len() > self.limit {
            // Only a key near the limit's size can do that; nothing smaller can stand in.
            return Err(self.error(change, size));
        }
        tracing::warn!(
            table = %format_args!("{}.{}", change.database, change.table),
            key = %key_text(change),
            bytes = size,
            limit = self.limit,
            position = %describe(change),
            "a change is larger than broker.max_message_bytes: publishing a too-large marker \
             in its place (broker.on_too_large = \"marker\"); the pusher parks it, and the record \
             needs a re-sync"
        );
        Ok(Body {
            bytes: marker_bytes,
            marker: Some(too_large),
        })
    }

    fn error(&self, change: &RowChange, bytes: usize) -> TooLargeError {
        TooLargeError {
            table: format!("{}.{}", change.database, change.table),
            key: key_text(change),
            what: describe(change),
            bytes,
            limit: self.limit,
        }
    }
}

/// The change without its row data, marked too large.
fn marker_of(change: &RowChange, too_large: TooLarge) -> RowChange {
    RowChange {
        version: change.version,
        id: change.id.clone(),
        seq: change.seq,
        op: change.op,
        database: change.database.clone(),
        table: change.table.clone(),
        key: change.key.clone(),
        after: None,
        before: None,
        changed: Vec::new(),
        binary_columns: Vec::new(),
        merged: change.merged,
        source: change.source.clone(),
        snapshot: change.snapshot.clone(),
        too_large: Some(too_large),
    }
}

fn key_text(change: &RowChange) -> String {
    serde_json::Value::Object(change.key.clone()).to_string()
}

/// Where the change came from, as an operator looks for it.
fn describe(change: &RowChange) -> String {
    let source = &change.source;
    let gtid = source
        .gtid
        .as_deref()
        .map(|g| format!(", GTID {g}"))
        .unwrap_or_default();
    match &change.snapshot {
        Some(mark) => format!(
            "snapshot row of initial sync {}, read at binlog position {}:{}{gtid}",
            mark.sync_id, source.file, source.pos
        ),
        None => format!(
            "{} at binlog position {}:{}, row {} of that rows event{gtid}",
            change.op.as_str(),
            source.file,
            source.pos,
            source.row
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use change_message::{Message, Operation, Row, Source, CONTRACT_VERSION};
    use serde_json::json;

    fn change_with(body: usize) -> RowChange {
        let mut key = Row::new();
        key.insert("id".into(), json!(7));
        let mut after = Row::new();
        after.insert("id".into(), json!(7));
        after.insert("doc".into(), json!("x".repeat(body)));
        RowChange {
            version: CONTRACT_VERSION,
            id: "binlog.000001:400:0:insert".into(),
            seq: 42,
            op: Operation::Insert,
            database: "app".into(),
            table: "docs".into(),
            key,
            after: Some(after),
            before: None,
            changed: vec![],
            binary_columns: vec!["doc".into()],
            merged: 1,
            source: Source {
                server_id: 1,
                file: "binlog.000001".into(),
                pos: 400,
                row: 0,
                gtid: Some("0-1-5".into()),
                tx_index: 0,
                commit_time: "2026-01-01T00:00:00Z".into(),
            },
            snapshot: None,
            too_large: None,
        }
    }

    fn limit(on_too_large: OnTooLarge) -> SizeLimit {
        SizeLimit {
            limit: 4096,
            on_too_large,
        }
    }

    #[test]
    fn a_change_within_the_limit_is_encoded_whole() {
        let body = limit(OnTooLarge::Stop).encode(&change_with(100)).unwrap();
        assert!(body.marker.is_none());
        let Message::Change(read) = Message::from_slice(&body.bytes).unwrap() else {
            panic!("a change")
        };
        assert_eq!(read, change_with(100));
    }

    #[test]
    fn a_change_over_the_limit_stops_naming_table_key_size_limit_and_position() {
        let error = limit(OnTooLarge::Stop)
            .encode(&change_with(10_000))
            .err()
            .unwrap();
        assert!(error.bytes > 10_000, "{error}");
        let text = error.to_string();
        for part in [
            "app.docs",
            r#"{"id":7}"#,
            &format!("{} bytes", error.bytes),
            "broker.max_message_bytes = 4096",
            "binlog.000001:400",
            "broker.on_too_large = \"marker\"",
            "max_message_size",
        ] {
            assert!(text.contains(part), "{part} missing from: {text}");
        }
    }

    #[test]
    fn a_change_over_the_limit_becomes_a_marker_without_row_data() {
        let body = limit(OnTooLarge::Marker)
            .encode(&change_with(10_000))
            .unwrap();
        let too_large = body.marker.unwrap();
        assert_eq!(too_large.limit, 4096);
        assert!(too_large.bytes > 10_000);
        assert!(body.bytes.len() < 1024, "{}", body.bytes.len());
        let Message::Change(marker) = Message::from_slice(&body.bytes).unwrap() else {
            panic!("a change")
        };
        let original = change_with(10_000);
        assert_eq!(marker.too_large, Some(too_large));
        assert_eq!(
            (
                &marker.id,
                marker.seq,
                marker.op,
                &marker.key,
                &marker.source
            ),
            (
                &original.id,
                original.seq,
                original.op,
                &original.key,
                &original.source
            )
        );
        assert!(marker.after.is_none() && marker.before.is_none());
        assert!(marker.binary_columns.is_empty() && marker.changed.is_empty());
    }
}
