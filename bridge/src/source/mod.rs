//! The binlog source: everything that knows about the binlog decoder (mysql_async's binlog
//! stream, parsing by mysql_common) lives below this module. It reads the binlog as a replica in
//! its own task and hands the rest of the bridge our own events through a bounded channel, so a
//! slow broker slows reading instead of filling memory.

pub mod binlog_file_time;
pub mod charset;
pub mod connect;
pub mod ddl;
pub mod decode;
pub mod events;
pub mod gtid;
pub mod gtid_start;
mod keyless;
pub mod mysql_json;
pub mod payload;
pub mod read_ahead;
mod reader;
pub mod row_image;
pub mod sql_values;
pub mod table_map;
pub mod table_schema;

use crate::capture_filter::CaptureFilter;
use crate::metrics::BridgeMetrics;
use crate::schema_catalog::TableCatalog;
use change_message::{Operation, Row};
use gtid::GtidState;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use table_schema::{SchemaError, TableSchema};
use tokio::sync::mpsc;
/// One captured row change, decoded, with where it came from.
#[derive(Debug, Clone)]
pub struct CapturedRow {
    pub database: Arc<str>,
    pub table: Arc<str>,
    pub op: Operation,
    pub key: Row,
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub changed: Vec<String>,
    pub binary_columns: Arc<[String]>,
    pub file: Arc<str>,
    /// Position of the rows event that carried the change.
    pub pos: u64,
    pub row: u32,
    pub gtid: Option<Arc<str>>,
    pub tx_index: u32,
    /// Seconds since the epoch, from the transaction's first event.
    pub commit_time: u32,
    /// Rough in-memory size, for the dedup buffer's byte bound.
    pub approx_bytes: usize,
}

/// A transaction boundary: resuming from here replays nothing twice and misses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    pub file: Arc<str>,
    pub pos: u64,
    /// The server's GTID state here (MariaDB GTID list, MySQL GTID set), when known.
    pub gtid: Option<Arc<str>>,
}

/// A row inserted into the bridge's signal table (a sync request or watermark), read back from
/// the binlog: a control event, never published.
#[derive(Debug, Clone)]
pub struct SignalRow {
    pub row: Row,
    pub file: Arc<str>,
    /// Position of the rows event that carried it.
    pub pos: u64,
    pub gtid: Option<Arc<str>>,
    /// Seconds since the epoch, from the transaction's first event.
    pub commit_time: u32,
}

#[derive(Debug)]
pub enum SourceEvent {
    Row(Box<CapturedRow>),
    Signal(Box<SignalRow>),
    /// A transaction ended (captured rows or not), or the binlog rotated between transactions.
    Boundary(Boundary),
    /// The server's replication heartbeat: the connection lives, nothing new was written.
    Alive,
    /// The reader stopped; nothing follows.
    Failed(SourceError),
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot start replication from {address}: {message}")]
    Connect { address: String, message: String },
    #[error("replication connection lost after binlog {file}:{pos}: {message}")]
    Lost {
        file: String,
        pos: u64,
        message: String,
    },
    #[error("the database server ended replication: {message}{hint}")]
    Server { message: String, hint: String },
    #[error("{0}")]
    Undecodable(Box<Undecodable>),
    #[error("binlog {file}:{pos}: {source}")]
    Schema {
        file: String,
        pos: u64,
        source: Box<SchemaError>,
    },
    #[error(
        "binlog {file}:{pos} holds a {what} event (type {code}), whose rows the binlog reader \
         cannot see; {fix}"
    )]
    UnsupportedEvent {
        what: &'static str,
        code: u8,
        file: String,
        pos: u64,
        fix: &'static str,
    },
    #[error(
        "reading the binlog failed at {file}:{pos}: {message}; the bridge reconnects once to \
         read it again"
    )]
    Read {
        file: String,
        pos: u64,
        message: String,
    },
    #[error(
        "the binlog cannot be read at {file}:{pos}: reading it failed again after a reconnect \
         ({message}). The bridge stops rather than retry forever; if the server's log is \
         damaged there, re-sync: move the checkpoint away, set source.start = \"end\", then \
         run an initial sync of every partner"
    )]
    ReadFailedTwice {
        file: String,
        pos: u64,
        message: String,
    },
    #[error("binlog {file}:{pos}: {source}; the bridge stops rather than skip its changes")]
    Payload {
        file: String,
        pos: u64,
        source: payload::PayloadError,
    },
    #[error(
        "binlog {file}:{pos} holds an INCIDENT event ({message}): the server says changes may be \
         missing from its binlog. Check the server, then re-sync the partners"
    )]
    Incident {
        file: String,
        pos: u64,
        message: String,
    },
    #[error(
        "the rows event of captured table {database}.{table} at binlog {file}:{pos} lacks \
         columns {columns}: its row image is not FULL. Some session wrote it with \
         binlog_row_image other than FULL (SET SESSION binlog_row_image changes the global \
         setting the bridge checked at start); the bridge stops rather than publish NULLs. Make \
         every client keep binlog_row_image=FULL, then re-sync the partners for this table"
    )]
    PartialImage {
        database: String,
        table: String,
        file: String,
        pos: u64,
        columns: String,
    },
    #[error(
        "binlog {file}:{pos} holds a statement-format change of {table} ({statement}): its \
         rows are not in the binlog. Some session wrote it with binlog_format STATEMENT or MIXED \
         (SET SESSION binlog_format changes the global setting the bridge checked at start); the \
         bridge stops rather than miss the change. Make every client keep binlog_format=ROW, \
         then re-sync the partners for this table"
    )]
    StatementFormat {
        table: String,
        statement: String,
        file: String,
        pos: u64,
    },
    #[error(
        "binlog {file}:{pos}: {change} ({statement}) changes the table's rows without row \
         events, so partners would keep records the database no longer has (or miss ones it \
         now has). The bridge stops here rather than pass it as a plain transaction end. To go \
         on: add \"{file}:{pos}\" to source.accept_table_resets_at and restart the bridge, then \
         re-sync the partners for the table (`pusher sync <partner>` for each partner)"
    )]
    TableReset {
        change: String,
        statement: String,
        file: String,
        pos: u64,
    },
    #[error(
        "binlog {file}:{pos}: a rows event names table id {table_id}, which no table map \
         described; the binlog is not one this bridge can follow"
    )]
    UnknownTableId {
        table_id: u64,
        file: String,
        pos: u64,
    },
    #[error("the binlog reader crashed after binlog {file}:{pos}: {message}")]
    Panicked {
        file: String,
        pos: u64,
        message: String,
    },
}

/// A row of a captured table that could not be decoded: always fatal, never skipped.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot decode a row of captured table {database}.{table} in the rows event at binlog \
     {file}:{pos}: {cause} (column {columns}). The bridge stops rather than skip the change; {fix}"
)]
pub struct Undecodable {
    pub database: String,
    pub table: String,
    pub columns: String,
    pub file: String,
    pub pos: u64,
    pub cause: String,
    pub fix: String,
}

impl SourceError {
    /// Connection trouble is worth a reconnect; everything else needs a person.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SourceError::Connect { .. } | SourceError::Lost { .. } | SourceError::Read { .. }
        )
    }
}

/// Where to start reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    Position {
        file: String,
        pos: u64,
    },
    OldestBinlog,
    /// After this GTID state, wherever the server holds what follows it.
    Gtid(GtidState),
}

/// Looks up catalog facts for a table the bridge did not know at start (created later).
pub type CatalogLookup = Box<
    dyn Fn(String, String) -> Pin<Box<dyn Future<Output = Option<TableCatalog>> + Send>>
        + Send
        + Sync,
>;

pub struct SourceParams {
    /// The options of every connection of the bridge (`preflight::connection_opts`); the
    /// binlog connection adds its own settings on top.
    pub opts: mysql_async::Opts,
    pub is_mariadb: bool,
    pub server_id: u32,
    pub heartbeat: Duration,
    pub start: StartAt,
    /// The GTID state at `start`, when known; kept up to date from there.
    pub start_gtid: Option<GtidState>,
    pub filter: Arc<CaptureFilter>,
    pub catalog: HashMap<(String, String), TableCatalog>,
    pub lookup: CatalogLookup,
    /// The signal table (database, table): its inserted rows come out as `Signal`, whatever
    /// the capture filter says.
    pub signal_table: Option<(String, String)>,
    /// Table resets the operator lets pass (`source.accept_table_resets_at`).
    pub accepted_resets: Arc<HashSet<(String, u64)>>,
    /// Where the reader counts what it leaves out (rows events of keyless tables).
    pub metrics: Arc<BridgeMetrics>,
    /// The byte bound of the rows sent but not yet taken (`source.read_ahead_bytes`).
    pub read_ahead: read_ahead::ReadAhead,
}

/// Starts the reader task. It ends after sending `Failed`, or when the receiver is dropped.
pub fn spawn(params: SourceParams, tx: mpsc::Sender<SourceEvent>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let last_boundary = Arc::new(Mutex::new((String::new(), 0u64)));
        let reader = reader::Reader::new(params, last_boundary.clone());
        let failure = match tokio::spawn(reader.run(tx.clone())).await {
            Ok(Some(failure)) => failure,
            Ok(None) => return, // receiver gone: the bridge is shutting this reader down
            Err(error) => {
                let (file, pos) = last_boundary
                    .lock()
                    .map(|at| at.clone())
                    .unwrap_or_default();
                let message = match error.try_into_panic() {
                    Ok(panic) => panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into()),
                    Err(error) => error.to_string(),
                };
                SourceError::Panicked { file, pos, message }
            }
        };
        let _ = tx.send(SourceEvent::Failed(failure)).await;
    })
}

/// Remembers where the last read failure happened, across reconnects: the second failure at
/// the same position is fatal ([`SourceError::ReadFailedTwice`]), never an endless retry.
#[derive(Debug, Default)]
pub struct RetryGuard {
    last: Option<(String, u64)>,
}

impl RetryGuard {
    /// Passes a session's failure through, turning a repeated read failure into a fatal one.
    pub fn check(&mut self, error: SourceError) -> SourceError {
        match error {
            SourceError::Read { file, pos, message } => {
                let here = (file.clone(), pos);
                if self.last.as_ref() == Some(&here) {
                    SourceError::ReadFailedTwice { file, pos, message }
                } else {
                    self.last = Some(here);
                    SourceError::Read { file, pos, message }
                }
            }
            other => other,
        }
    }
}

/// What one column of a decoded row holds in memory beyond the bytes of its name and value:
/// its map entry (hash, the name's and the value's headers), its share of the map's index, and
/// the allocator's rounding of the two heap blocks. Measured: a row of six short columns
/// (the benchmark's table) holds about 840 B on the heap, of which its names and values are
/// about 240 B; without this the byte bounds on rows (`source.read_ahead_bytes`,
/// `dedup.max_bytes`, `sync.chunk_bytes`) counted a third of what rows take.
const COLUMN_OVERHEAD: usize = 96;

/// What a change holds beyond its row images: the message's own fields and strings (id, names,
/// position, commit time), its key and its list of changed columns.
pub const CHANGE_OVERHEAD: usize = 1024;

/// The in-memory size of one decoded column, about.
pub fn column_bytes(name: &str, value: &Value) -> usize {
    name.len() + approx_size(value) + COLUMN_OVERHEAD
}

/// The in-memory size of a decoded row image, about.
pub fn row_bytes(row: &Row) -> usize {
    row.iter()
        .map(|(name, value)| column_bytes(name, value))
        .sum()
}

fn approx_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 24,
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + approx_size(v)).sum(),
        Value::Array(items) => items.iter().map(approx_size).sum(),
        _ => 16,
    }
}

type SplitChange = (
    Operation,
    Row,
    Option<(Row, usize)>,
    Option<(Row, usize)>,
    Vec<String>,
);

fn key_of(schema: &TableSchema, image: &Row) -> Row {
    schema
        .key
        .iter()
        .map(|&i| {
            let name = &schema.columns[i].name;
            (
                name.clone(),
                image.get(name).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// Turns a raw change into the changes we publish: an update that changes the primary key is a
/// different record, so it becomes a delete of the old key and an insert of the new one.
fn split_change(
    schema: &TableSchema,
    before: Option<(Row, usize)>,
    after: Option<(Row, usize)>,
) -> Vec<SplitChange> {
    match (before, after) {
        (None, Some(after)) => vec![(
            Operation::Insert,
            key_of(schema, &after.0),
            None,
            Some(after),
            Vec::new(),
        )],
        (Some(before), None) => vec![(
            Operation::Delete,
            key_of(schema, &before.0),
            Some(before),
            None,
            Vec::new(),
        )],
        (Some(before), Some(after)) => {
            let old_key = key_of(schema, &before.0);
            let new_key = key_of(schema, &after.0);
            if old_key != new_key {
                return vec![
                    (Operation::Delete, old_key, Some(before), None, Vec::new()),
                    (Operation::Insert, new_key, None, Some(after), Vec::new()),
                ];
            }
            let changed = changed_columns(&before.0, &after.0);
            vec![(
                Operation::Update,
                new_key,
                Some(before),
                Some(after),
                changed,
            )]
        }
        (None, None) => Vec::new(),
    }
}

pub fn changed_columns(before: &Row, after: &Row) -> Vec<String> {
    after
        .iter()
        .filter(|(name, value)| before.get(*name) != Some(*value))
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_columns_lists_only_differing_values() {
        let before = json!({"id": 1, "a": 1, "b": "x"})
            .as_object()
            .cloned()
            .unwrap();
        let after = json!({"id": 1, "a": 2, "b": "x"})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(changed_columns(&before, &after), vec!["a".to_string()]);
    }

    #[test]
    fn a_read_failing_twice_at_one_position_is_fatal() {
        let read = |pos| SourceError::Read {
            file: "binlog.000001".into(),
            pos,
            message: "bad packet".into(),
        };
        let mut guard = RetryGuard::default();
        assert!(guard.check(read(100)).is_retryable());
        assert!(guard.check(read(200)).is_retryable());
        let twice = guard.check(read(200));
        assert!(!twice.is_retryable());
        assert!(twice.to_string().contains("binlog.000001:200"), "{twice}");
    }
}
