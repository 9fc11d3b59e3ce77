//! The binlog source: everything that knows about mysql_cdc lives below this module. It reads
//! the binlog as a replica on its own thread (the crate's API blocks) and hands the rest of the
//! bridge our own events through a bounded channel, so a slow broker slows reading instead of
//! filling memory.

pub mod decode;
pub mod gtid;
pub mod mysql_json;
pub mod sql_values;
pub mod table_schema;

use crate::capture_filter::CaptureFilter;
use crate::schema_catalog::TableCatalog;
use change_message::{Operation, Row};
use decode::{ColumnDecoder, DecodeError};
use gtid::GtidState;
use mysql_cdc::binlog_client::BinlogClient;
use mysql_cdc::binlog_options::BinlogOptions;
use mysql_cdc::errors::Error as CdcError;
use mysql_cdc::events::binlog_event::BinlogEvent;
use mysql_cdc::events::event_header::EventHeader;
use mysql_cdc::events::row_events::mysql_value::MySqlValue;
use mysql_cdc::events::row_events::row_data::RowData;
use mysql_cdc::events::table_map_event::TableMapEvent;
use mysql_cdc::replica_options::ReplicaOptions;
use mysql_cdc::ssl_mode::SslMode;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
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
        source: SchemaError,
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
        matches!(self, SourceError::Connect { .. } | SourceError::Lost { .. })
    }
}

/// Where to start reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    Position { file: String, pos: u64 },
    OldestBinlog,
}

/// Looks up catalog facts for a table the bridge did not know at start (created later).
pub type CatalogLookup = Box<dyn FnMut(&str, &str) -> Option<TableCatalog> + Send>;

pub struct SourceParams {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
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
}

/// Starts the reader thread. It ends after sending `Failed`, or when the receiver is dropped.
pub fn spawn(
    params: SourceParams,
    tx: mpsc::Sender<SourceEvent>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("binlog-reader".into())
        .spawn(move || {
            let address = format!("{}:{}", params.host, params.port);
            let mut reader = Reader::new(params);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                reader.run(&address, &tx)
            }));
            let failure = match result {
                Ok(Some(failure)) => failure,
                Ok(None) => return, // receiver gone: the bridge is shutting this reader down
                Err(panic) => SourceError::Panicked {
                    file: reader.file.to_string(),
                    pos: reader.pos,
                    message: panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into()),
                },
            };
            let _ = tx.blocking_send(SourceEvent::Failed(failure));
        })
}

struct CachedTable {
    column_types: Vec<u8>,
    column_metadata: Vec<u16>,
    schema: Option<Arc<TableSchema>>,
    binary_columns: Arc<[String]>,
    database: Arc<str>,
    table: Arc<str>,
    signal: bool,
}

struct Reader {
    params: SourceParams,
    file: Arc<str>,
    /// Position just after the last event handled.
    pos: u64,
    in_transaction: bool,
    /// MariaDB marks DDL transactions "standalone": a GTID event then one query, no XID.
    standalone: bool,
    /// GTID of the transaction being read.
    gtid: Option<Arc<str>>,
    /// GTID state after the last finished transaction, and its text.
    gtid_state: Option<GtidState>,
    gtid_text: Option<Arc<str>>,
    tx_index: u32,
    tx_time: u32,
    tables: HashMap<u64, CachedTable>,
    /// The table of the last table map: a failed rows event belongs to it.
    last_table_id: Option<u64>,
}

/// Event type codes that carry rows the reader cannot see: meeting one and going on would lose
/// changes silently.
fn unreadable_event(code: u8) -> Option<(&'static str, &'static str)> {
    match code {
        20..=22 => Some((
            "version 0 rows",
            "the server is too old for this bridge (MySQL 5.1.x); upgrade it",
        )),
        39 => Some((
            "partial JSON update",
            "set binlog_row_value_options='' on the server",
        )),
        40 => Some((
            "compressed transaction (TRANSACTION_PAYLOAD)",
            "set binlog_transaction_compression=OFF on the server; changes written while it was \
             on cannot be read: re-sync partners after turning it off",
        )),
        165..=171 => Some((
            "MariaDB compressed",
            "set log_bin_compress=OFF on the server; changes written while it was on cannot be \
             read: re-sync partners after turning it off",
        )),
        _ => None,
    }
}

fn approx_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 24,
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + approx_size(v)).sum(),
        Value::Array(items) => items.iter().map(approx_size).sum(),
        _ => 16,
    }
}

impl Reader {
    fn new(params: SourceParams) -> Reader {
        let (file, pos) = match &params.start {
            StartAt::Position { file, pos } => (Arc::from(file.as_str()), *pos),
            _ => (Arc::from(""), 0),
        };
        let gtid_state = params.start_gtid.clone();
        let gtid_text = gtid_state
            .as_ref()
            .map(|g| Arc::from(g.to_string().as_str()));
        Reader {
            params,
            file,
            pos,
            in_transaction: false,
            standalone: false,
            gtid: None,
            gtid_state,
            gtid_text,
            tx_index: 0,
            tx_time: 0,
            tables: HashMap::new(),
            last_table_id: None,
        }
    }

    /// Reads until a failure (returned) or until the receiver is gone (`None`).
    fn run(&mut self, address: &str, tx: &mpsc::Sender<SourceEvent>) -> Option<SourceError> {
        let binlog = match &self.params.start {
            StartAt::Position { file, pos } => {
                BinlogOptions::from_position(file.clone(), *pos as u32)
            }
            StartAt::OldestBinlog => BinlogOptions::from_start(),
        };
        let options = ReplicaOptions {
            hostname: self.params.host.clone(),
            port: self.params.port,
            username: self.params.user.clone(),
            password: self.params.password.clone(),
            database: None,
            server_id: self.params.server_id,
            blocking: true,
            heartbeat_interval: self.params.heartbeat,
            ssl_mode: SslMode::Disabled,
            binlog,
        };
        let mut client = BinlogClient::new(options);
        let events = match client.replicate() {
            Ok(events) => events,
            Err(e) => return Some(self.classify_start_error(address, e)),
        };
        // The same event failing again after a reconnect means it can never be read.
        for item in events {
            let result = match item {
                Ok((header, event)) => self.on_event(header, event, tx),
                Err(e) => self.on_error(e),
            };
            match result {
                Ok(true) => {}
                Ok(false) => return None,
                Err(failure) => return Some(failure),
            }
        }
        Some(SourceError::Lost {
            file: self.file.to_string(),
            pos: self.pos,
            message: "the server ended the binlog stream".into(),
        })
    }

    fn classify_start_error(&self, address: &str, error: CdcError) -> SourceError {
        match error {
            CdcError::IoError(e) => SourceError::Connect {
                address: address.to_string(),
                message: e.to_string(),
            },
            other => {
                let message = cdc_error_text(&other);
                SourceError::Server {
                    hint: server_error_hint(&message),
                    message,
                }
            }
        }
    }

    fn send(&self, tx: &mpsc::Sender<SourceEvent>, event: SourceEvent) -> bool {
        tx.blocking_send(event).is_ok()
    }

    fn boundary(&self) -> SourceEvent {
        SourceEvent::Boundary(Boundary {
            file: self.file.clone(),
            pos: self.pos,
            gtid: self.gtid_text.clone(),
        })
    }

    /// A transaction finished: fold its GTID into the state the next boundary reports.
    fn commit(&mut self) {
        self.in_transaction = false;
        self.standalone = false;
        if let (Some(state), Some(gtid)) = (self.gtid_state.as_mut(), self.gtid.take()) {
            match state.observe(&gtid) {
                Ok(()) => self.gtid_text = Some(Arc::from(state.to_string().as_str())),
                Err(error) => {
                    tracing::warn!(%error, "GTID state no longer tracked; checkpoints keep file and position only");
                    self.gtid_state = None;
                    self.gtid_text = None;
                }
            }
        }
    }

    fn adopt_gtid_state(&mut self, state: GtidState) {
        if !self.in_transaction {
            self.gtid_text = Some(Arc::from(state.to_string().as_str()));
            self.gtid_state = Some(state);
        }
    }

    /// Handles one event; `Ok(false)` when the receiver is gone.
    fn on_event(
        &mut self,
        header: EventHeader,
        event: BinlogEvent,
        tx: &mpsc::Sender<SourceEvent>,
    ) -> Result<bool, SourceError> {
        let event_pos =
            u64::from(header.next_event_position).saturating_sub(u64::from(header.event_length));
        if let BinlogEvent::RotateEvent(rotate) = &event {
            self.file = Arc::from(rotate.binlog_filename.as_str());
            self.pos = rotate.binlog_position;
            // A rotation happens between transactions: the new file's start is a boundary.
            // (The artificial rotate at connection start names the start position, which is a
            // boundary too: saving it means a restart never falls back to `source.start`.)
            return Ok(if self.in_transaction {
                true
            } else {
                self.send(tx, self.boundary())
            });
        }
        if header.next_event_position > 0 {
            self.pos = u64::from(header.next_event_position);
        }
        if let Some((what, fix)) = unreadable_event(header.event_type) {
            return Err(SourceError::UnsupportedEvent {
                what,
                code: header.event_type,
                file: self.file.to_string(),
                pos: event_pos,
                fix,
            });
        }
        match event {
            BinlogEvent::MariaDbGtidEvent(e) => {
                self.begin(header.timestamp);
                self.standalone = e.flags & 0x01 != 0;
                self.gtid = Some(Arc::from(e.gtid.to_string().as_str()));
            }
            BinlogEvent::MySqlGtidEvent(e) => {
                self.gtid = Some(Arc::from(e.gtid.to_string().as_str()));
                self.tx_time = header.timestamp;
            }
            BinlogEvent::QueryEvent(q) => {
                let sql = q.sql_statement.trim();
                if sql.eq_ignore_ascii_case("BEGIN") {
                    self.begin(header.timestamp);
                } else if sql.eq_ignore_ascii_case("COMMIT")
                    || sql.eq_ignore_ascii_case("ROLLBACK")
                    || !self.in_transaction
                    || self.standalone
                {
                    // COMMIT of a non-transactional engine, or DDL: the statement is the
                    // whole transaction.
                    self.commit();
                    return Ok(self.send(tx, self.boundary()));
                }
            }
            BinlogEvent::XidEvent(_) => {
                self.commit();
                return Ok(self.send(tx, self.boundary()));
            }
            // The state at the start of each binlog file, authoritative for what follows.
            BinlogEvent::MariaDbGtidListEvent(e) => {
                if let Ok(state) = GtidState::parse_mariadb(&e.gtid_list.to_string()) {
                    self.adopt_gtid_state(state);
                }
            }
            BinlogEvent::MySqlPrevGtidsEvent(e) => {
                if let Ok(state) = GtidState::parse_mysql(&e.gtid_set.to_string()) {
                    self.adopt_gtid_state(state);
                }
            }
            BinlogEvent::TableMapEvent(map) => {
                self.last_table_id = Some(map.table_id);
                self.remember_table(map, event_pos)?;
            }
            BinlogEvent::WriteRowsEvent(e) => {
                return self.emit_rows(
                    e.table_id,
                    event_pos,
                    tx,
                    e.rows.into_iter().map(|r| (None, Some(r))),
                );
            }
            BinlogEvent::UpdateRowsEvent(e) => {
                return self.emit_rows(
                    e.table_id,
                    event_pos,
                    tx,
                    e.rows
                        .into_iter()
                        .map(|r| (Some(r.before_update), Some(r.after_update))),
                );
            }
            BinlogEvent::DeleteRowsEvent(e) => {
                return self.emit_rows(
                    e.table_id,
                    event_pos,
                    tx,
                    e.rows.into_iter().map(|r| (Some(r), None)),
                );
            }
            BinlogEvent::HeartbeatEvent(_) => {
                return Ok(self.send(tx, SourceEvent::Alive));
            }
            _ => {}
        }
        Ok(true)
    }

    fn begin(&mut self, timestamp: u32) {
        self.in_transaction = true;
        self.standalone = false;
        self.tx_index = 0;
        self.tx_time = timestamp;
    }

    fn remember_table(&mut self, map: TableMapEvent, event_pos: u64) -> Result<(), SourceError> {
        if let Some(cached) = self.tables.get(&map.table_id) {
            if cached.column_types == map.column_types
                && cached.column_metadata == map.column_metadata
                && &*cached.database == map.database_name.as_str()
                && &*cached.table == map.table_name.as_str()
            {
                return Ok(());
            }
        }
        let signal = self
            .params
            .signal_table
            .as_ref()
            .is_some_and(|(db, table)| db == &map.database_name && table == &map.table_name);
        let captured = signal
            || self
                .params
                .filter
                .captures_table(&map.database_name, &map.table_name);
        let schema = if captured {
            let key = (map.database_name.clone(), map.table_name.clone());
            let names = map
                .table_metadata
                .as_ref()
                .and_then(|m| m.column_names.clone())
                .unwrap_or_default();
            let known = self
                .params
                .catalog
                .get(&key)
                .is_some_and(|c| names.iter().all(|n| c.column(n).is_some()));
            if !known {
                if let Some(found) = (self.params.lookup)(&key.0, &key.1) {
                    self.params.catalog.insert(key.clone(), found);
                }
            }
            let schema = TableSchema::from_table_map(
                &map,
                &self.params.filter,
                self.params.catalog.get(&key),
            )
            .map_err(|source| SourceError::Schema {
                file: self.file.to_string(),
                pos: event_pos,
                source,
            })?;
            Some(Arc::new(schema))
        } else {
            None
        };
        let binary_columns: Arc<[String]> = schema
            .as_ref()
            .map(|s| Arc::from(s.binary_columns.clone()))
            .unwrap_or_else(|| Arc::from(Vec::new()));
        self.tables.insert(
            map.table_id,
            CachedTable {
                column_types: map.column_types,
                column_metadata: map.column_metadata,
                schema,
                binary_columns,
                database: Arc::from(map.database_name.as_str()),
                table: Arc::from(map.table_name.as_str()),
                signal,
            },
        );
        Ok(())
    }

    fn emit_rows(
        &mut self,
        table_id: u64,
        event_pos: u64,
        tx: &mpsc::Sender<SourceEvent>,
        rows: impl Iterator<Item = (Option<RowData>, Option<RowData>)>,
    ) -> Result<bool, SourceError> {
        let Some(cached) = self.tables.get(&table_id) else {
            return Ok(true);
        };
        let Some(schema) = cached.schema.clone() else {
            return Ok(true);
        };
        if cached.signal {
            // Only inserts are signals; the bridge's own clean-up deletes are not.
            for (before, after) in rows {
                let (None, Some(after)) = (before, after) else {
                    continue;
                };
                let (row, _) = self.image(&schema, after.cells, event_pos)?;
                let signal = SignalRow {
                    row,
                    file: self.file.clone(),
                    pos: event_pos,
                    gtid: self.gtid.clone(),
                    commit_time: self.tx_time,
                };
                if !self.send(tx, SourceEvent::Signal(Box::new(signal))) {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let database = cached.database.clone();
        let table = cached.table.clone();
        let binary_columns = cached.binary_columns.clone();
        for (row_index, (before, after)) in rows.enumerate() {
            let before = before
                .map(|r| self.image(&schema, r.cells, event_pos))
                .transpose()?;
            let after = after
                .map(|r| self.image(&schema, r.cells, event_pos))
                .transpose()?;
            let changes = split_change(&schema, before, after);
            for (op, key, before, after, changed) in changes {
                let approx_bytes = before.as_ref().map_or(0, |(_, n)| *n)
                    + after.as_ref().map_or(0, |(_, n)| *n)
                    + 256;
                let row = CapturedRow {
                    database: database.clone(),
                    table: table.clone(),
                    op,
                    key,
                    before: before.map(|(r, _)| r),
                    after: after.map(|(r, _)| r),
                    changed,
                    binary_columns: binary_columns.clone(),
                    file: self.file.clone(),
                    pos: event_pos,
                    row: row_index as u32,
                    gtid: self.gtid.clone(),
                    tx_index: self.tx_index,
                    commit_time: self.tx_time,
                    approx_bytes,
                };
                self.tx_index += 1;
                if !self.send(tx, SourceEvent::Row(Box::new(row))) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Decodes one row image; the published image leaves excluded columns out.
    fn image(
        &self,
        schema: &TableSchema,
        cells: Vec<Option<MySqlValue>>,
        event_pos: u64,
    ) -> Result<(Row, usize), SourceError> {
        let mut row = Row::with_capacity(cells.len());
        let mut bytes = 0;
        for (spec, cell) in schema.columns.iter().zip(cells) {
            if spec.excluded {
                continue;
            }
            let value = match cell {
                None => Value::Null,
                Some(raw) => spec.decoder.decode(raw).map_err(|cause| {
                    self.undecodable(schema, &spec.name, event_pos, cause.to_string(), &cause)
                })?,
            };
            bytes += spec.name.len() + approx_size(&value);
            row.insert(spec.name.clone(), value);
        }
        Ok((row, bytes))
    }

    fn undecodable(
        &self,
        schema: &TableSchema,
        columns: &str,
        event_pos: u64,
        cause: String,
        kind: &DecodeError,
    ) -> SourceError {
        let fix = match kind {
            DecodeError::NotUtf8 => {
                "convert the column to utf8mb4 (or BLOB for binary data), or exclude the table"
            }
            _ => "report this value's column type; exclude the table to go on without it",
        };
        SourceError::Undecodable(Box::new(Undecodable {
            database: schema.database.clone(),
            table: schema.table.clone(),
            columns: columns.to_string(),
            file: self.file.to_string(),
            pos: event_pos,
            cause,
            fix: fix.to_string(),
        }))
    }

    /// A read error: the connection failed, or mysql_cdc could not parse an event. The latter
    /// is skipped only for tables we do not capture.
    fn on_error(&mut self, error: CdcError) -> Result<bool, SourceError> {
        let decode_problem = match &error {
            CdcError::FromUtf8Error(_) | CdcError::Utf8Error(_) => Some(DecodeError::NotUtf8),
            CdcError::String(s) if s.contains("negative TIME") => Some(DecodeError::Mismatch {
                expected: "time",
                found: "negative time",
            }),
            _ => None,
        };
        let message = cdc_error_text(&error);
        if let CdcError::String(text) = &error {
            if text.starts_with("Event stream error") {
                return Err(SourceError::Server {
                    hint: server_error_hint(text),
                    message,
                });
            }
        }
        let Some(problem) = decode_problem else {
            return Err(SourceError::Lost {
                file: self.file.to_string(),
                pos: self.pos,
                message,
            });
        };
        let schema = self
            .last_table_id
            .and_then(|id| self.tables.get(&id))
            .and_then(|t| t.schema.clone());
        match schema {
            None => {
                let table = self
                    .last_table_id
                    .and_then(|id| self.tables.get(&id))
                    .map(|t| format!("{}.{}", t.database, t.table))
                    .unwrap_or_else(|| "an unknown table".into());
                tracing::debug!(
                    table,
                    file = %self.file,
                    pos = self.pos,
                    error = %message,
                    "skipping an undecodable rows event of a table that is not captured"
                );
                Ok(true)
            }
            Some(schema) => {
                let suspects = match problem {
                    DecodeError::NotUtf8 => schema.columns_matching(|d| {
                        matches!(d, ColumnDecoder::Text | ColumnDecoder::Binary)
                    }),
                    _ => schema.columns_matching(|d| matches!(d, ColumnDecoder::Time { .. })),
                };
                let columns = if suspects.is_empty() {
                    "unknown".to_string()
                } else {
                    format!("one of: {}", suspects.join(", "))
                };
                Err(self.undecodable(&schema, &columns, self.pos, message, &problem))
            }
        }
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

fn cdc_error_text(error: &CdcError) -> String {
    match error {
        CdcError::IoError(e) => format!("I/O error: {e}"),
        CdcError::Utf8Error(e) => format!("text is not UTF-8: {e}"),
        CdcError::FromUtf8Error(e) => format!("text is not UTF-8: {e}"),
        CdcError::FromHexError(e) => format!("bad hex: {e}"),
        CdcError::ParseIntError(e) => format!("bad number: {e}"),
        CdcError::ErrorStack(e) => format!("crypto error: {e}"),
        CdcError::String(s) => s.clone(),
    }
}

/// Adds the fix for the server errors an operator can meet.
fn server_error_hint(message: &str) -> String {
    let lower = message.to_lowercase();
    if lower.contains("1236") || lower.contains("could not find") || lower.contains("purged") {
        "; the binlog the bridge needs is no longer on the server (purged). To re-sync: move the \
         checkpoint file away, set source.start = \"end\", restart the bridge, then run an initial \
         sync of every partner"
            .into()
    } else if lower.contains("access denied") || lower.contains("1045") {
        "; check source.user and its password".into()
    } else if lower.contains("replication slave") || lower.contains("1227") {
        "; grant it: GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO the bridge's user"
            .into()
    } else if lower.contains("server_id") || lower.contains("server id") {
        "; choose a source.server_id no other replica uses".into()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_that_hide_rows_are_refused_by_type() {
        assert!(unreadable_event(40)
            .unwrap()
            .1
            .contains("binlog_transaction_compression=OFF"));
        assert!(unreadable_event(39).is_some());
        assert!(unreadable_event(169)
            .unwrap()
            .1
            .contains("log_bin_compress"));
        // table map, rows v1/v2, xid, gtid: readable
        for code in [19u8, 23, 24, 25, 30, 31, 32, 16, 162, 163] {
            assert!(unreadable_event(code).is_none(), "{code}");
        }
    }

    #[test]
    fn purged_binlog_server_errors_explain_the_resync() {
        let hint = server_error_hint(
            "Event stream error. ErrorPacket { error_code: 1236, error_message: \"Could not find first log file name in binary log index file\" }",
        );
        assert!(
            hint.contains("purged") && hint.contains("initial sync"),
            "{hint}"
        );
    }

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
}
