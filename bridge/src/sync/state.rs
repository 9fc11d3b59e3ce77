//! The sync state saved with the checkpoint: which syncs wait, which one runs and how far each
//! of its tables got (the primary key of the last chunk whose rows the broker confirmed), and
//! how recent syncs ended. It travels with the transaction boundaries through the dedup buffer
//! and the publisher, so it is saved exactly when the binlog position is: after the confirms.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// One primary-key value as read over SQL, kept exactly (for the next chunk's `WHERE`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyValue {
    Null,
    Int(i64),
    UInt(u64),
    /// Shortest text of the float (round-trips exactly).
    Float(String),
    /// Base64 of the bytes (text, decimals, binary).
    Bytes(String),
    /// year, month, day, hour, minute, second, microsecond
    Date([u32; 7]),
    /// negative, days, hours, minutes, seconds, microseconds
    Time(bool, [u32; 5]),
}

impl From<&mysql_async::Value> for KeyValue {
    fn from(value: &mysql_async::Value) -> KeyValue {
        use mysql_async::Value as V;
        match value {
            V::NULL => KeyValue::Null,
            V::Int(i) => KeyValue::Int(*i),
            V::UInt(u) => KeyValue::UInt(*u),
            V::Float(f) => KeyValue::Float(f.to_string()),
            V::Double(d) => KeyValue::Float(d.to_string()),
            V::Bytes(b) => KeyValue::Bytes(base64::engine::general_purpose::STANDARD.encode(b)),
            V::Date(y, mo, d, h, mi, s, us) => KeyValue::Date([
                u32::from(*y),
                u32::from(*mo),
                u32::from(*d),
                u32::from(*h),
                u32::from(*mi),
                u32::from(*s),
                *us,
            ]),
            V::Time(neg, d, h, mi, s, us) => KeyValue::Time(
                *neg,
                [*d, u32::from(*h), u32::from(*mi), u32::from(*s), *us],
            ),
        }
    }
}

impl KeyValue {
    /// The SQL parameter that compares equal to the value it was read from.
    pub fn to_sql(&self) -> mysql_async::Value {
        use mysql_async::Value as V;
        match self {
            KeyValue::Null => V::NULL,
            KeyValue::Int(i) => V::Int(*i),
            KeyValue::UInt(u) => V::UInt(*u),
            KeyValue::Float(text) => V::Double(text.parse().unwrap_or(0.0)),
            KeyValue::Bytes(b64) => V::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_default(),
            ),
            KeyValue::Date([y, mo, d, h, mi, s, us]) => V::Date(
                *y as u16, *mo as u8, *d as u8, *h as u8, *mi as u8, *s as u8, *us,
            ),
            KeyValue::Time(neg, [d, h, mi, s, us]) => {
                V::Time(*neg, *d, *h as u8, *mi as u8, *s as u8, *us)
            }
        }
    }
}

/// Where one table of a sync is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TableState {
    Waiting,
    Running,
    Done,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TableProgress {
    /// `database.table`
    pub table: String,
    pub state: TableState,
    /// Primary key of the last row of the last chunk whose rows are confirmed (in key order);
    /// `None` before the first chunk. The next chunk reads the rows after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<KeyValue>>,
    /// Rows read so far (published as snapshot rows, or left out because the binlog carried a
    /// newer state of them while their chunk was read).
    pub rows_done: u64,
    /// Snapshot rows published.
    #[serde(default)]
    pub rows_sent: u64,
    /// `SELECT COUNT(*)` when the table's first chunk was read (rows inserted later make
    /// `rows_done` end above it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_total: Option<u64>,
}

impl TableProgress {
    pub fn new(table: &str) -> TableProgress {
        TableProgress {
            table: table.to_string(),
            state: TableState::Waiting,
            after: None,
            rows_done: 0,
            rows_sent: 0,
            rows_total: None,
        }
    }

    /// (database, table)
    pub fn names(&self) -> (&str, &str) {
        self.table.split_once('.').unwrap_or(("", &self.table))
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Waiting,
    Running,
    Finished,
    Cancelled,
    Failed,
}

/// One sync: waiting, running, or ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SyncJob {
    pub sync_id: String,
    pub queue: String,
    pub tables: Vec<TableProgress>,
    pub state: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub requested_at: String,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub ended_at: String,
}

impl SyncJob {
    pub fn rows_done(&self) -> u64 {
        self.tables.iter().map(|t| t.rows_done).sum()
    }

    pub fn rows_sent(&self) -> u64 {
        self.tables.iter().map(|t| t.rows_sent).sum()
    }

    /// Sum of the counted tables' totals, if every table was counted.
    pub fn rows_total(&self) -> Option<u64> {
        self.tables.iter().map(|t| t.rows_total).sum()
    }

    /// The table being read, if any.
    pub fn current(&self) -> Option<usize> {
        self.tables.iter().position(|t| t.state != TableState::Done)
    }
}

/// Everything about syncs the checkpoint keeps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The running sync, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<SyncJob>,
    /// Requested syncs, first come first served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<SyncJob>,
    /// The most recent ended syncs (finished, cancelled, failed), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ended: Vec<SyncJob>,
}

/// How many ended syncs the checkpoint remembers.
pub const ENDED_KEPT: usize = 20;

impl SyncState {
    pub fn is_empty(&self) -> bool {
        self.active.is_none() && self.waiting.is_empty() && self.ended.is_empty()
    }

    /// True when a sync with this id is known (requests read again after a restart are not
    /// started twice).
    pub fn knows(&self, sync_id: &str) -> bool {
        self.active.iter().any(|j| j.sync_id == sync_id)
            || self.waiting.iter().any(|j| j.sync_id == sync_id)
            || self.ended.iter().any(|j| j.sync_id == sync_id)
    }

    pub fn end(&mut self, mut job: SyncJob, outcome: Outcome, reason: Option<String>, at: String) {
        job.state = outcome;
        job.reason = reason;
        job.ended_at = at;
        self.ended.push(job);
        if self.ended.len() > ENDED_KEPT {
            let extra = self.ended.len() - ENDED_KEPT;
            self.ended.drain(..extra);
        }
    }

    /// Every sync, for `bridge sync status`: running, waiting, then ended (newest first).
    pub fn all(&self) -> Vec<&SyncJob> {
        self.active
            .iter()
            .chain(self.waiting.iter())
            .chain(self.ended.iter().rev())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_round_trip_through_json_and_back_to_sql() {
        let values = vec![
            mysql_async::Value::Int(-7),
            mysql_async::Value::UInt(u64::MAX),
            mysql_async::Value::Bytes(b"NL\x00\xff".to_vec()),
            mysql_async::Value::Date(2024, 2, 29, 23, 59, 58, 123_456),
            mysql_async::Value::Time(true, 1, 2, 3, 4, 5),
            mysql_async::Value::Double(0.1),
        ];
        let keys: Vec<KeyValue> = values.iter().map(KeyValue::from).collect();
        let text = serde_json::to_string(&keys).unwrap();
        let back: Vec<KeyValue> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, keys);
        let sql: Vec<mysql_async::Value> = back.iter().map(KeyValue::to_sql).collect();
        assert_eq!(sql, values);
    }

    #[test]
    fn ended_syncs_are_capped_and_listed_newest_first() {
        let mut state = SyncState::default();
        for i in 0..(ENDED_KEPT + 5) {
            let job = SyncJob {
                sync_id: format!("s{i}"),
                queue: "q".into(),
                tables: vec![TableProgress::new("app.t")],
                state: Outcome::Running,
                reason: None,
                requested_at: String::new(),
                started_at: String::new(),
                ended_at: String::new(),
            };
            state.end(job, Outcome::Finished, None, "now".into());
        }
        assert_eq!(state.ended.len(), ENDED_KEPT);
        assert!(!state.knows("s0"));
        assert!(state.knows("s24"));
        assert_eq!(state.all()[0].sync_id, "s24");
    }
}
