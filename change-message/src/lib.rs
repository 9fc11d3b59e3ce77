//! The change message: the one contract between the bridge, which produces it from the binlog,
//! and the pusher, which turns it into partner API calls.
//!
//! Both sides depend on this crate so that the JSON on the wire has exactly one definition. The
//! README documents the same format for consumers written in other languages; change both
//! together, and bump [`CONTRACT_VERSION`] for any change a consumer could notice.

pub mod calendar;
pub mod sync_request;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Version of the JSON layout. A consumer refuses messages whose version it does not know.
pub const CONTRACT_VERSION: u32 = 1;

/// AMQP content type of every message.
pub const CONTENT_TYPE: &str = "application/json";

/// AMQP header names the bridge sets so that operators (and broker-side filters) can see what a
/// message is about without parsing its body.
pub mod headers {
    pub const DATABASE: &str = "x-database";
    pub const TABLE: &str = "x-table";
    pub const OPERATION: &str = "x-operation";
    pub const SEQ: &str = "x-seq";
}

/// A column name to value map in table column order.
pub type Row = Map<String, Value>;

/// Everything that travels from the bridge to the pusher.
// Heartbeats are rare and short-lived; boxing the common variant would cost an allocation per
// change for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// One row change (possibly several changes of the same row coalesced into one).
    Change(RowChange),
    /// Sent when the source is idle so consumers can tell the bridge is alive and how far it read.
    Heartbeat(Heartbeat),
}

/// Reads `{"type": ..., ...}` without the copy serde makes for an internally tagged enum.
///
/// serde's derived reader for `#[serde(tag = "type")]` first buffers the whole object into a
/// generic tree, because the tag could come last, and then reads the variant from that tree:
/// every string of every row image is allocated twice. The bridge always writes `type` first, so
/// this reader takes the tag and hands the rest of the object straight to the variant. An object
/// whose `type` comes later (written by another producer) is still read, through a
/// `serde_json::Value`.
impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Message, D::Error> {
        deserializer.deserialize_map(MessageVisitor)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum MessageType {
    Change,
    Heartbeat,
}

const TYPE_FIELD: &str = "type";

struct MessageVisitor;

impl MessageVisitor {
    fn variant<'de, D: Deserializer<'de>>(kind: MessageType, rest: D) -> Result<Message, D::Error> {
        Ok(match kind {
            MessageType::Change => Message::Change(RowChange::deserialize(rest)?),
            MessageType::Heartbeat => Message::Heartbeat(Heartbeat::deserialize(rest)?),
        })
    }
}

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object with a \"type\" of \"change\" or \"heartbeat\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::missing_field(TYPE_FIELD));
        };
        if first == TYPE_FIELD {
            let kind: MessageType = map.next_value()?;
            return Self::variant(kind, MapAccessDeserializer::new(map));
        }
        let mut object = Map::new();
        object.insert(first, map.next_value()?);
        while let Some((name, value)) = map.next_entry::<String, Value>()? {
            object.insert(name, value);
        }
        let kind = object
            .remove(TYPE_FIELD)
            .ok_or_else(|| de::Error::missing_field(TYPE_FIELD))?;
        let kind = MessageType::deserialize(kind).map_err(de::Error::custom)?;
        Self::variant(kind, Value::Object(object)).map_err(de::Error::custom)
    }
}

/// What happened to the row.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Insert,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// One row change.
///
/// `seq` orders changes: a larger `seq` is a newer state. It is assigned to every row change the
/// bridge captures, in binlog order, and is stable across bridge restarts, so a consumer that
/// remembers the highest `seq` it applied per record can drop redelivered duplicates and stale
/// states alike.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RowChange {
    pub version: u32,
    /// Stable identity of the newest change this message carries: the same change published again
    /// (after a crash or a broker reconnect) has the same id.
    pub id: String,
    pub seq: u64,
    pub op: Operation,
    pub database: String,
    pub table: String,
    /// Primary-key columns and their values, in key order.
    pub key: Row,
    /// Full row image after the change (insert, update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Row>,
    /// Full row image before the change (update, delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Row>,
    /// Columns whose value differs between `before` and `after` (updates only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Columns whose values are base64 text of binary data (BLOB, BINARY, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binary_columns: Vec<String>,
    /// How many captured row changes this message stands for (1 unless coalesced).
    pub merged: u32,
    pub source: Source,
    /// Present only on snapshot rows of an initial sync: the row as it was read from the table,
    /// sent to the one partner queue that asked for it. A snapshot row is an `insert` with the
    /// full row in `after`, no `before`, no `changed`; its `seq` sits between the live changes
    /// around it, so "a larger seq is newer" holds for it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotMark>,
    /// Present only on a *too-large marker*: the bridge's message for this change would have
    /// been larger than its `broker.max_message_bytes`, so this one carries the change's
    /// identity (id, seq, op, database, table, key, source, snapshot) but no row data: no
    /// `after`, `before`, `changed` or `binary_columns`. A consumer must not apply it as the
    /// record's state; the pusher parks it, and the record needs a re-sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub too_large: Option<TooLarge>,
}

/// Marks a too-large marker (see [`RowChange::too_large`]).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// Size in bytes of the message the full change would have been.
    pub bytes: u64,
    /// The bridge's `broker.max_message_bytes` it exceeded.
    pub limit: u64,
}

/// Marks a snapshot row (see [`RowChange::snapshot`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMark {
    /// The sync that produced the row: the `request_id` of its [`sync_request::SyncRequest`].
    pub sync_id: String,
}

/// Where a change came from in the source database's binlog.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Source {
    /// `server_id` of the database server that wrote the binlog.
    pub server_id: u32,
    /// Binlog file and the position of the rows event that carried the change.
    pub file: String,
    pub pos: u64,
    /// Index of the row inside its rows event.
    pub row: u32,
    /// GTID of the transaction, where the server uses GTIDs (MariaDB `domain-server-seq`,
    /// MySQL `uuid:n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// Order of this change inside its transaction, from 0.
    pub tx_index: u32,
    /// Commit time of the transaction, RFC 3339 UTC, second precision (the binlog's own precision).
    pub commit_time: String,
}

/// Liveness and progress signal.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Heartbeat {
    pub version: u32,
    pub id: String,
    /// The highest `seq` assigned so far; the next change will carry a larger one.
    pub seq: u64,
    /// When the heartbeat was produced, RFC 3339 UTC.
    pub time: String,
    /// The binlog position the bridge has read up to.
    pub file: String,
    pub pos: u64,
}

impl Message {
    /// Parses a message body, refusing contract versions this build does not understand.
    pub fn from_slice(body: &[u8]) -> Result<Message, ContractError> {
        let message: Message = serde_json::from_slice(body).map_err(ContractError::Json)?;
        let version = match &message {
            Message::Change(change) => change.version,
            Message::Heartbeat(heartbeat) => heartbeat.version,
        };
        if version != CONTRACT_VERSION {
            return Err(ContractError::UnknownVersion(version));
        }
        Ok(message)
    }

    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing these types cannot fail: every map key is a string and no value is a
        // non-finite float (serde_json turns those into null). A change message is rarely
        // below 300 bytes: starting at 1 KiB saves the first reallocations of every message.
        let mut body = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut body, self) {
            Ok(()) => body,
            Err(_) => Vec::new(),
        }
    }
}

/// `Message::Change` of a borrowed change: the same JSON without moving or copying the change.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BorrowedMessage<'a> {
    Change(&'a RowChange),
}

impl RowChange {
    /// The message body of this change, exactly as `Message::Change(change).to_vec()` writes it.
    pub fn to_message_vec(&self) -> Vec<u8> {
        // As `Message::to_vec`: serializing these types cannot fail.
        serde_json::to_vec(&BorrowedMessage::Change(self)).unwrap_or_default()
    }

    /// Identity of the record this change is about: database, table and primary key. Two changes
    /// of the same record always have equal keys, whatever their operation.
    pub fn record_key(&self) -> String {
        // Written like `Value::Object(key).to_string()`, without copying the key first. Writing
        // a map of strings to JSON values into a Vec cannot fail.
        let mut text = format!("{}.{}/", self.database, self.table).into_bytes();
        let _ = serde_json::to_writer(&mut text, &self.key);
        String::from_utf8(text).unwrap_or_default()
    }

    /// True for a too-large marker: the change without its row data.
    pub fn is_too_large_marker(&self) -> bool {
        self.too_large.is_some()
    }

    /// True for a snapshot row of an initial sync.
    pub fn is_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }

    /// The newest known state of the row: `after` for inserts and updates, `before` for deletes.
    pub fn latest_image(&self) -> Option<&Row> {
        match self.op {
            Operation::Delete => self.before.as_ref(),
            Operation::Insert | Operation::Update => self.after.as_ref(),
        }
    }
}

/// Why a message body could not be read as a change message.
#[derive(Debug)]
pub enum ContractError {
    Json(serde_json::Error),
    UnknownVersion(u32),
}

impl std::fmt::Display for ContractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContractError::Json(e) => write!(f, "not a change message: {e}"),
            ContractError::UnknownVersion(v) => write!(
                f,
                "change message version {v} is not understood by this build (it reads version \
                 {CONTRACT_VERSION}): upgrade the consumer"
            ),
        }
    }
}

impl std::error::Error for ContractError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> RowChange {
        let mut key = Row::new();
        key.insert("id".into(), json!(7));
        RowChange {
            version: CONTRACT_VERSION,
            id: "1-binlog.000001-400-0".into(),
            seq: 42,
            op: Operation::Update,
            database: "ocpi".into(),
            table: "locations".into(),
            key,
            after: Some(json!({"id": 7, "name": "b"}).as_object().cloned().unwrap()),
            before: Some(json!({"id": 7, "name": "a"}).as_object().cloned().unwrap()),
            changed: vec!["name".into()],
            binary_columns: vec![],
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

    #[test]
    fn snapshot_mark_is_optional_and_absent_from_live_changes() {
        let live = Message::Change(sample()).to_vec();
        assert!(!String::from_utf8_lossy(&live).contains("snapshot"));
        let mut change = sample();
        change.snapshot = Some(SnapshotMark {
            sync_id: "s1".into(),
        });
        let body = Message::Change(change.clone()).to_vec();
        assert!(String::from_utf8_lossy(&body).contains(r#""snapshot":{"sync_id":"s1"}"#));
        assert_eq!(Message::from_slice(&body).unwrap(), Message::Change(change));
    }

    #[test]
    fn too_large_mark_is_optional_and_absent_from_ordinary_changes() {
        let plain = Message::Change(sample()).to_vec();
        assert!(!String::from_utf8_lossy(&plain).contains("too_large"));
        let mut marker = sample();
        marker.after = None;
        marker.before = None;
        marker.changed.clear();
        marker.too_large = Some(TooLarge {
            bytes: 204_800,
            limit: 65_536,
        });
        let body = Message::Change(marker.clone()).to_vec();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains(r#""too_large":{"bytes":204800,"limit":65536}"#),
            "{text}"
        );
        let read = Message::from_slice(&body).unwrap();
        assert_eq!(read, Message::Change(marker));
        let Message::Change(read) = read else {
            panic!("a change")
        };
        assert!(read.is_too_large_marker());
    }

    #[test]
    fn change_round_trips_through_json_with_its_type_tag() {
        let message = Message::Change(sample());
        let body = message.to_vec();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"type":"change","version":1"#),
            "{text}"
        );
        assert_eq!(Message::from_slice(&body).unwrap(), message);
    }

    #[test]
    fn a_borrowed_change_is_written_like_an_owned_one() {
        assert_eq!(
            sample().to_message_vec(),
            Message::Change(sample()).to_vec()
        );
    }

    #[test]
    fn type_tag_may_come_anywhere_in_the_object() {
        let message = Message::Change(sample());
        let Value::Object(mut object) = serde_json::to_value(&message).unwrap() else {
            panic!("a message is an object")
        };
        let kind = object.remove("type").unwrap();
        object.insert("type".into(), kind);
        let body = serde_json::to_vec(&object).unwrap();
        assert!(!String::from_utf8_lossy(&body).starts_with(r#"{"type""#));
        assert_eq!(Message::from_slice(&body).unwrap(), message);
    }

    #[test]
    fn heartbeats_round_trip() {
        let message = Message::Heartbeat(Heartbeat {
            version: CONTRACT_VERSION,
            id: "hb-1".into(),
            seq: 9,
            time: "2026-01-01T00:00:00Z".into(),
            file: "binlog.000002".into(),
            pos: 4,
        });
        assert_eq!(Message::from_slice(&message.to_vec()).unwrap(), message);
    }

    #[test]
    fn missing_or_unknown_types_are_refused_with_the_reason() {
        for (body, reason) in [
            (r#"{}"#, "missing field `type`"),
            (r#"{"version":1}"#, "missing field `type`"),
            (r#"{"type":"bogus","version":1}"#, "unknown variant `bogus`"),
            (r#"{"version":1,"type":"bogus"}"#, "unknown variant `bogus`"),
            (r#"{"type":"change","version":1}"#, "missing field"),
            (r#"[1]"#, "invalid type"),
        ] {
            let error = Message::from_slice(body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(error.contains(reason), "{body}: {error}");
        }
    }

    #[test]
    fn row_images_keep_column_order() {
        let body = Message::Change(sample()).to_vec();
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(r#""after":{"id":7,"name":"b"}"#), "{text}");
    }

    #[test]
    fn unknown_versions_are_refused() {
        let mut change = sample();
        change.version = 99;
        let body = Message::Change(change).to_vec();
        assert!(matches!(
            Message::from_slice(&body),
            Err(ContractError::UnknownVersion(99))
        ));
    }

    #[test]
    fn record_key_ignores_the_operation() {
        let a = sample();
        let mut b = sample();
        b.op = Operation::Delete;
        assert_eq!(a.record_key(), b.record_key());
        assert_eq!(a.record_key(), r#"ocpi.locations/{"id":7}"#);
    }
}
