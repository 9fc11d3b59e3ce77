//! The reader task: takes events from the binlog stream one by one and keeps the state that
//! turns them into our events (the file and position, the transaction and its GTID, the
//! tables' schemas, the compressed transaction being read), so the rest of the bridge sees
//! rows, signals and transaction boundaries, never binlog events.

use super::connect;
use super::ddl;
use super::events::{self, Kind};
use super::keyless::KeylessTables;
use super::payload::Payload;
use super::row_image::{self, present_columns};
use super::table_map::TableMap;
use super::table_schema::SchemaError;
use super::table_schema::{TableSchema, WireColumn};
use super::{
    column_bytes, split_change, Boundary, CapturedRow, GtidState, SignalRow, SourceError,
    SourceEvent, SourceParams, StartAt, Undecodable, CHANGE_OVERHEAD,
};
use change_message::Row;
use futures_lite::StreamExt;
use mysql_common::binlog::events::{
    Event, EventData, GtidEvent, PreviousGtidsEvent, QueryEvent, RotateEvent, TableMapEvent,
    TransactionPayloadEvent,
};
use mysql_common::io::ParseBuf;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

struct Captured {
    schema: Arc<TableSchema>,
    wire: Arc<[WireColumn]>,
    binary_columns: Arc<[String]>,
}

struct CachedTable {
    /// The table map's bytes: an identical map needs no new schema.
    raw: Vec<u8>,
    database: Arc<str>,
    table: Arc<str>,
    /// `None` for a table the bridge does not capture (its rows are never decoded).
    captured: Option<Captured>,
    signal: bool,
    /// A captured table without a primary key, left out by configuration.
    keyless: bool,
}

pub struct Reader {
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
    /// `file` and `pos` name a transaction boundary of this server's binlog. Not yet when
    /// reading began by GTID state: the server opens the stream at the start of the file that
    /// holds the state, whose transactions before it are not sent; only the end of the first
    /// transaction sent is a position to resume from.
    positioned: bool,
    tx_index: u32,
    tx_time: u32,
    tables: HashMap<u64, CachedTable>,
    /// The compressed transaction whose inner events are being read.
    payload: Option<Payload>,
    /// The last boundary, for the report of a crash.
    last_boundary: Arc<Mutex<(String, u64)>>,
    keyless: KeylessTables,
}

fn rows_kind(code: u8) -> (bool, bool) {
    // (has a before image, has an after image)
    match code {
        23 | 30 => (false, true),
        24 | 31 => (true, true),
        _ => (true, false),
    }
}

/// The file a rotate event names. The artificial rotate that opens a stream comes before the
/// format description event, so the parser cannot know it ends with a checksum: when its last
/// four bytes are the CRC32 of the event, they are not part of the name.
fn rotate_name(event: &Event, parsed: &str) -> String {
    use mysql_common::proto::MySerialize;
    let data = event.data();
    if data.len() >= 8 + 4 {
        let (body, crc) = data.split_at(data.len() - 4);
        let mut header = Vec::with_capacity(19);
        event.header().serialize(&mut header);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header);
        hasher.update(body);
        if crc == hasher.finalize().to_le_bytes() {
            return String::from_utf8_lossy(&body[8..]).into_owned();
        }
    }
    parsed.to_string()
}

impl Reader {
    pub fn new(params: SourceParams, last_boundary: Arc<Mutex<(String, u64)>>) -> Reader {
        let (file, pos) = match &params.start {
            StartAt::Position { file, pos } => (Arc::from(file.as_str()), *pos),
            _ => (Arc::from(""), 0),
        };
        let gtid_state = match &params.start {
            StartAt::Gtid(state) => Some(state.clone()),
            _ => params.start_gtid.clone(),
        };
        let gtid_text = gtid_state
            .as_ref()
            .map(|g| Arc::from(g.to_string().as_str()));
        let positioned = !matches!(params.start, StartAt::Gtid(_));
        Reader {
            params,
            file,
            pos,
            in_transaction: false,
            standalone: false,
            gtid: None,
            gtid_state,
            gtid_text,
            positioned,
            tx_index: 0,
            tx_time: 0,
            tables: HashMap::new(),
            payload: None,
            last_boundary,
            keyless: KeylessTables::default(),
        }
    }

    /// Reads until a failure (returned) or until the receiver is gone (`None`).
    pub async fn run(mut self, tx: mpsc::Sender<SourceEvent>) -> Option<SourceError> {
        let mut stream = match connect::open(&self.params).await {
            Ok(stream) => stream,
            Err(failure) => return Some(failure),
        };
        // The server sends a heartbeat at least this often when idle.
        let silence = self.params.heartbeat * 3 + Duration::from_secs(5);
        let mut out = Vec::new();
        loop {
            let next = tokio::select! {
                _ = tx.closed() => return None,
                next = tokio::time::timeout(silence, stream.next()) => next,
            };
            let event = match next {
                Err(_) => {
                    return Some(SourceError::Lost {
                        file: self.file.to_string(),
                        pos: self.pos,
                        message: format!(
                            "no event or server heartbeat for {}s: the connection is presumed dead",
                            silence.as_secs()
                        ),
                    })
                }
                Ok(None) => {
                    return Some(SourceError::Lost {
                        file: self.file.to_string(),
                        pos: self.pos,
                        message: "the server ended the binlog stream".into(),
                    })
                }
                Ok(Some(Err(error))) => return Some(self.read_error(error)),
                Ok(Some(Ok(event))) => event,
            };
            if let Err(failure) = self.handle(&event, &mut out).await {
                return Some(failure);
            }
            for item in out.drain(..) {
                if let SourceEvent::Row(row) = &item {
                    tokio::select! {
                        _ = tx.closed() => return None,
                        _ = self.params.read_ahead.reserve(row.approx_bytes) => {}
                    }
                }
                if tx.send(item).await.is_err() {
                    return None;
                }
            }
        }
    }

    fn read_error(&self, error: mysql_async::Error) -> SourceError {
        use mysql_async::{Error, IoError};
        let message = error.to_string();
        match error {
            Error::Server(e) => {
                let message = format!("ERROR {} ({}): {}", e.code, e.state, e.message);
                SourceError::Server {
                    hint: connect::server_error_hint(&message),
                    message,
                }
            }
            // The connection broke: worth reconnecting, as often as it takes.
            // (A closed connection reads as an unexpected end of file named so; the parser's
            // own end-of-buffer errors are read failures.)
            Error::Io(IoError::Io(ref io))
                if !matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData
                        | std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::Other
                ) || io.to_string().contains("connection closed") =>
            {
                SourceError::Lost {
                    file: self.file.to_string(),
                    pos: self.pos,
                    message,
                }
            }
            Error::Driver(mysql_async::DriverError::ConnectionClosed) => SourceError::Lost {
                file: self.file.to_string(),
                pos: self.pos,
                message,
            },
            // An event that cannot be parsed (or a packet the client refuses): read again once.
            _ => SourceError::Read {
                file: self.file.to_string(),
                pos: self.pos,
                message,
            },
        }
    }

    fn boundary(&self) -> SourceEvent {
        if let Ok(mut at) = self.last_boundary.lock() {
            *at = (self.file.to_string(), self.pos);
        }
        SourceEvent::Boundary(Boundary {
            file: self.file.clone(),
            pos: self.pos,
            gtid: self.gtid_text.clone(),
        })
    }

    /// A transaction finished: fold its GTID into the state the next boundary reports.
    fn commit(&mut self) {
        self.in_transaction = false;
        self.positioned = true;
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
            let merged = match self.gtid_state.take() {
                Some(mut tracked) => {
                    tracked.merge(state);
                    tracked
                }
                None => state,
            };
            self.gtid_text = Some(Arc::from(merged.to_string().as_str()));
            self.gtid_state = Some(merged);
        }
    }

    fn begin(&mut self, timestamp: u32) {
        self.in_transaction = true;
        self.standalone = false;
        self.tx_index = 0;
        self.tx_time = timestamp;
    }

    fn parse_error(&self, pos: u64, what: &str, error: std::io::Error) -> SourceError {
        SourceError::Read {
            file: self.file.to_string(),
            pos,
            message: format!("cannot parse the {what} event: {error}"),
        }
    }

    /// Handles one event, putting what it means for the bridge into `out`.
    async fn handle(
        &mut self,
        event: &Event,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        let header = event.header();
        let code = header.event_type_raw();
        let log_pos = u64::from(header.log_pos());
        let size = u64::from(header.event_size());
        // Inner events of a compressed transaction carry no position of their own.
        let inner = self.payload.is_some() && log_pos == 0;
        if !inner {
            if let Some(payload) = self.payload.take() {
                payload.finish().map_err(|source| SourceError::Payload {
                    file: self.file.to_string(),
                    pos: payload.pos,
                    source,
                })?;
            }
        }
        let event_pos = match &mut self.payload {
            Some(payload) if inner => {
                let at = payload.pos;
                payload.inner(size).map_err(|source| SourceError::Payload {
                    file: self.file.to_string(),
                    pos: at,
                    source,
                })?;
                at
            }
            _ => log_pos.saturating_sub(size),
        };
        let kind = events::kind(code, header.flags_raw());
        if kind == Kind::Rotate {
            let rotate: RotateEvent<'_> = event
                .read_event()
                .map_err(|e| self.parse_error(event_pos, "rotate", e))?;
            self.file = Arc::from(rotate_name(event, rotate.name().as_ref()).as_str());
            self.pos = rotate.position();
            // A rotation happens between transactions: the new file's start is a boundary.
            // (The artificial rotate at connection start names the start position, which is a
            // boundary too: saving it means a restart never falls back to `source.start`.)
            if !self.in_transaction && self.positioned {
                out.push(self.boundary());
            }
            return Ok(());
        }
        if log_pos > 0 && !inner {
            self.pos = log_pos;
        }
        match kind {
            Kind::Rotate => {}
            Kind::Skip => {
                if header.flags_raw() & events::IGNORABLE_FLAG != 0 {
                    tracing::debug!(code, file = %self.file, pos = event_pos, "skipping an event the server marks ignorable");
                }
            }
            Kind::Refuse { what, fix } => {
                return Err(SourceError::UnsupportedEvent {
                    what,
                    code,
                    file: self.file.to_string(),
                    pos: event_pos,
                    fix,
                })
            }
            Kind::Incident => {
                return Err(SourceError::Incident {
                    file: self.file.to_string(),
                    pos: event_pos,
                    message: String::from_utf8_lossy(event.data()).into_owned(),
                })
            }
            Kind::Heartbeat => out.push(SourceEvent::Alive),
            Kind::Payload => {
                let payload: TransactionPayloadEvent<'_> = event
                    .read_event()
                    .map_err(|e| self.parse_error(event_pos, "compressed transaction", e))?;
                self.payload = Some(Payload::new(event_pos, Payload::expected_size(&payload)));
            }
            Kind::MariaDbGtid => {
                let gtid =
                    events::mariadb_gtid(event.data(), header.server_id()).ok_or_else(|| {
                        self.parse_error(
                            event_pos,
                            "MariaDB GTID",
                            std::io::ErrorKind::UnexpectedEof.into(),
                        )
                    })?;
                self.begin(header.timestamp());
                self.standalone = gtid.standalone;
                self.gtid = Some(Arc::from(gtid.text().as_str()));
            }
            Kind::MariaDbGtidList => {
                if let Some(list) = events::mariadb_gtid_list(event.data()) {
                    if let Ok(state) = GtidState::parse_mariadb(&list) {
                        self.adopt_gtid_state(state);
                    }
                }
            }
            Kind::MySqlGtid => {
                let gtid: GtidEvent = event
                    .read_event()
                    .map_err(|e| self.parse_error(event_pos, "GTID", e))?;
                let uuid = uuid::Uuid::from_bytes(gtid.sid()).hyphenated().to_string();
                let text = match gtid.tag() {
                    Some(tag) => format!("{uuid}:{tag}:{}", gtid.gno()),
                    None => format!("{uuid}:{}", gtid.gno()),
                };
                self.gtid = Some(Arc::from(text.as_str()));
                self.tx_time = header.timestamp();
            }
            Kind::AnonymousGtid => {
                self.gtid = None;
                self.tx_time = header.timestamp();
            }
            Kind::PreviousGtids => {
                let previous: PreviousGtidsEvent<'_> = event
                    .read_event()
                    .map_err(|e| self.parse_error(event_pos, "previous GTIDs", e))?;
                let text = previous
                    .sids()
                    .iter()
                    .map(|sid| {
                        let uuid = uuid::Uuid::from_bytes(sid.uuid()).hyphenated().to_string();
                        let mut item = uuid;
                        if let Some(tag) = sid.tag() {
                            item.push(':');
                            item.push_str(tag);
                        }
                        for interval in sid.intervals() {
                            // Intervals are stored with an exclusive end.
                            let end = interval.end().saturating_sub(1);
                            if end == interval.start() {
                                item.push_str(&format!(":{end}"));
                            } else {
                                item.push_str(&format!(":{}-{end}", interval.start()));
                            }
                        }
                        item
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                if let Ok(state) = GtidState::parse_mysql(&text) {
                    self.adopt_gtid_state(state);
                }
            }
            Kind::Query => {
                let query: QueryEvent<'_> = event
                    .read_event()
                    .map_err(|e| self.parse_error(event_pos, "query", e))?;
                let sql = query.query();
                let sql = sql.trim();
                if let Some(target) = events::dml_target(sql, &query.schema()) {
                    let captured = match &target {
                        Some((database, table)) => {
                            self.params.filter.captures_table(database, table)
                        }
                        None => true,
                    };
                    if captured {
                        let mut statement: String = sql.chars().take(120).collect();
                        if statement.len() < sql.len() {
                            statement.push_str("...");
                        }
                        return Err(SourceError::StatementFormat {
                            table: target
                                .map(|(d, t)| format!("captured table {d}.{t}"))
                                .unwrap_or_else(|| "a table that may be captured".into()),
                            statement,
                            file: self.file.to_string(),
                            pos: event_pos,
                        });
                    }
                }
                self.check_table_resets(sql, &query.schema(), event_pos)?;
                if sql.eq_ignore_ascii_case("BEGIN") {
                    self.begin(header.timestamp());
                } else if sql.eq_ignore_ascii_case("COMMIT")
                    || sql.eq_ignore_ascii_case("ROLLBACK")
                    || !self.in_transaction
                    || self.standalone
                {
                    // COMMIT of a non-transactional engine, or DDL: the statement is the
                    // whole transaction.
                    self.commit();
                    out.push(self.boundary());
                }
            }
            Kind::Xid | Kind::XaPrepare => {
                self.commit();
                out.push(self.boundary());
            }
            Kind::TableMap => self.remember_table(event, event_pos).await?,
            Kind::Rows => self.rows(event, code, event_pos, inner, out)?,
        }
        Ok(())
    }

    /// Stops at a statement that changes captured tables without row events (TRUNCATE, DROP,
    /// RENAME...), unless the operator accepted it at this position.
    fn check_table_resets(
        &self,
        sql: &str,
        default_database: &str,
        event_pos: u64,
    ) -> Result<(), SourceError> {
        let unseen = ddl::unseen_changes(&ddl::effects(sql, default_database), &self.params.filter);
        if unseen.is_empty() {
            return Ok(());
        }
        let change = unseen.join(", ");
        let at = (self.file.to_string(), event_pos);
        if self.params.accepted_resets.contains(&at) {
            tracing::warn!(file = %self.file, pos = event_pos, %change, "passing a table reset accepted in source.accept_table_resets_at: re-sync the partners for it");
            return Ok(());
        }
        let mut statement: String = sql.chars().take(120).collect();
        if statement.len() < sql.len() {
            statement.push_str("...");
        }
        Err(SourceError::TableReset {
            change,
            statement,
            file: at.0,
            pos: event_pos,
        })
    }

    async fn remember_table(&mut self, event: &Event, event_pos: u64) -> Result<(), SourceError> {
        let map: TableMapEvent<'_> = event
            .read_event()
            .map_err(|e| self.parse_error(event_pos, "table map", e))?;
        let table_id = map.table_id();
        if self
            .tables
            .get(&table_id)
            .is_some_and(|cached| cached.raw == event.data())
        {
            return Ok(());
        }
        let database = map.database_name().into_owned();
        let table = map.table_name().into_owned();
        let signal = self
            .params
            .signal_table
            .as_ref()
            .is_some_and(|(db, t)| db == &database && t == &table);
        let captured = signal || self.params.filter.captures_table(&database, &table);
        let mut keyless = false;
        let schema_error = |file: &Arc<str>, source| SourceError::Schema {
            file: file.to_string(),
            pos: event_pos,
            source: Box::new(source),
        };
        let captured = if captured {
            let parsed = TableMap::read(&map, event.data())
                .map_err(|e| schema_error(&self.file, e.into()))?;
            let key = (database.clone(), table.clone());
            let names = parsed.optional.names.clone().unwrap_or_default();
            let known = self
                .params
                .catalog
                .get(&key)
                .is_some_and(|c| names.iter().all(|n| c.column(n).is_some()));
            if !known {
                if let Some(found) = (self.params.lookup)(database.clone(), table.clone()).await {
                    self.params.catalog.insert(key.clone(), found);
                }
            }
            match TableSchema::from_table_map(
                &parsed,
                &self.params.filter,
                self.params.catalog.get(&key),
            ) {
                Ok((schema, wire)) => Some(Captured {
                    binary_columns: Arc::from(schema.binary_columns.clone()),
                    schema: Arc::new(schema),
                    wire: Arc::from(wire),
                }),
                Err(SchemaError::NoPrimaryKey { .. })
                    if !signal && self.params.filter.skips_keyless_tables() =>
                {
                    keyless = true;
                    self.keyless.noticed(&format!("{database}.{table}"));
                    None
                }
                Err(e) => return Err(schema_error(&self.file, e)),
            }
        } else {
            None
        };
        self.tables.insert(
            table_id,
            CachedTable {
                raw: event.data().to_vec(),
                database: Arc::from(database.as_str()),
                table: Arc::from(table.as_str()),
                captured,
                signal,
                keyless,
            },
        );
        Ok(())
    }

    fn rows(
        &mut self,
        event: &Event,
        code: u8,
        event_pos: u64,
        inner: bool,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        let data = event
            .read_data()
            .map_err(|e| self.parse_error(event_pos, "rows", e))?;
        let Some(EventData::RowsEvent(rows)) = data else {
            return Err(self.parse_error(
                event_pos,
                "rows",
                std::io::ErrorKind::InvalidData.into(),
            ));
        };
        let table_id = rows.table_id();
        let Some(cached) = self.tables.get(&table_id) else {
            return Err(SourceError::UnknownTableId {
                table_id,
                file: self.file.to_string(),
                pos: event_pos,
            });
        };
        let Some(captured) = &cached.captured else {
            if cached.keyless {
                let name = format!("{}.{}", cached.database, cached.table);
                self.keyless
                    .skipped(&name, &self.file, event_pos, &self.params.metrics);
            }
            return Ok(());
        };
        let schema = captured.schema.clone();
        let wire = captured.wire.clone();
        let binary_columns = captured.binary_columns.clone();
        let (database, table, signal) =
            (cached.database.clone(), cached.table.clone(), cached.signal);
        let count = wire.len();
        let before_columns = rows
            .columns_before_image()
            .map(|bits| bits.iter().by_vals().collect::<Vec<bool>>());
        let after_columns = rows
            .columns_after_image()
            .map(|bits| bits.iter().by_vals().collect::<Vec<bool>>());
        let (has_before, has_after) = rows_kind(code);
        let present = |bits: &Option<Vec<bool>>| -> Vec<bool> {
            match bits {
                Some(bits) if bits.len() == count => bits.clone(),
                _ => present_columns(&[], count),
            }
        };
        let before_present = present(&before_columns);
        let after_present = present(&after_columns);
        for (image, present) in [(has_before, &before_present), (has_after, &after_present)] {
            let missing: Vec<&str> = schema
                .columns
                .iter()
                .zip(present.iter())
                .filter(|(_, p)| !**p)
                .map(|(c, _)| c.name.as_str())
                .collect();
            if image && !missing.is_empty() {
                return Err(SourceError::PartialImage {
                    database: database.to_string(),
                    table: table.to_string(),
                    file: self.file.to_string(),
                    pos: event_pos,
                    columns: missing.join(", "),
                });
            }
        }
        let mut buf = ParseBuf(rows.rows_data());
        let mut row_index = 0u32;
        while !buf.is_empty() {
            let before = if has_before {
                Some(self.image(&schema, &wire, &mut buf, &before_present, event_pos)?)
            } else {
                None
            };
            let after = if has_after {
                Some(self.image(&schema, &wire, &mut buf, &after_present, event_pos)?)
            } else {
                None
            };
            let row = match self.payload.as_mut() {
                Some(payload) if inner => payload.next_row(),
                _ => {
                    row_index += 1;
                    row_index - 1
                }
            };
            if signal {
                // Only inserts are signals; the bridge's own clean-up deletes are not.
                if let (None, Some((row, _))) = (before, after) {
                    out.push(SourceEvent::Signal(Box::new(SignalRow {
                        row,
                        file: self.file.clone(),
                        pos: event_pos,
                        gtid: self.gtid.clone(),
                        commit_time: self.tx_time,
                    })));
                }
                continue;
            }
            for (op, key, before, after, changed) in split_change(&schema, before, after) {
                let approx_bytes = before.as_ref().map_or(0, |(_, n)| *n)
                    + after.as_ref().map_or(0, |(_, n)| *n)
                    + CHANGE_OVERHEAD;
                out.push(SourceEvent::Row(Box::new(CapturedRow {
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
                    row,
                    gtid: self.gtid.clone(),
                    tx_index: self.tx_index,
                    commit_time: self.tx_time,
                    approx_bytes,
                })));
                self.tx_index += 1;
            }
        }
        Ok(())
    }

    /// Reads and decodes one row image; the published image leaves excluded columns out.
    fn image<'a>(
        &self,
        schema: &TableSchema,
        wire: &'a [WireColumn],
        buf: &mut ParseBuf<'a>,
        present: &[bool],
        event_pos: u64,
    ) -> Result<(Row, usize), SourceError> {
        let undecodable = |column: usize, cause: String| {
            SourceError::Undecodable(Box::new(Undecodable {
                database: schema.database.clone(),
                table: schema.table.clone(),
                columns: schema
                    .columns
                    .get(column)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                file: self.file.to_string(),
                pos: event_pos,
                cause,
                fix: "report this value and its column type; exclude the table to go on \
                      without it"
                    .into(),
            }))
        };
        let cells = row_image::read_image(buf, wire, present)
            .map_err(|e| undecodable(e.column, e.error.to_string()))?;
        let mut row = Row::with_capacity(cells.len());
        let mut bytes = 0;
        for (index, (spec, cell)) in schema.columns.iter().zip(cells).enumerate() {
            if spec.excluded {
                continue;
            }
            let value = match cell {
                None => Value::Null,
                Some(cell) => spec
                    .decoder
                    .decode(cell)
                    .map_err(|cause| undecodable(index, cause.to_string()))?,
            };
            bytes += column_bytes(&spec.name, &value);
            row.insert(spec.name.clone(), value);
        }
        Ok((row, bytes))
    }
}

#[cfg(test)]
mod tests {
    //! Compressed transactions (MySQL 8 TRANSACTION_PAYLOAD), built from the documented event
    //! layouts and fed to the reader as the binlog stream hands them over.
    use super::*;
    use crate::capture_filter::CaptureFilter;
    use crate::config::CaptureConfig;
    use mysql_common::binlog::consts::{BinlogVersion, TransactionPayloadCompressionType};
    use mysql_common::binlog::EventStreamReader;
    use mysql_common::proto::MySerialize;

    const QUERY: u8 = 2;
    const XID: u8 = 16;
    const TABLE_MAP: u8 = 19;
    const WRITE_ROWS: u8 = 30;
    const PAYLOAD: u8 = 40;
    const HEARTBEAT: u8 = 27;

    fn event(code: u8, log_pos: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(1_700_000_000u32.to_le_bytes());
        out.push(code);
        out.extend(1u32.to_le_bytes());
        out.extend(((19 + body.len()) as u32).to_le_bytes());
        out.extend(log_pos.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    fn query(sql: &str) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(7u32.to_le_bytes()); // thread id
        body.extend(0u32.to_le_bytes()); // execution time
        body.push(3); // schema length
        body.extend(0u16.to_le_bytes()); // error code
        body.extend(0u16.to_le_bytes()); // status vars length
        body.extend(b"app\0");
        body.extend(sql.as_bytes());
        event(QUERY, 0, &body)
    }

    /// `app.t (id INT PRIMARY KEY)`, table id 42, with FULL row metadata.
    fn table_map() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(&42u64.to_le_bytes()[..6]);
        body.extend(1u16.to_le_bytes());
        body.extend(b"\x03app\0\x01t\0");
        body.push(1); // one column
        body.push(3); // LONG
        body.push(0); // no metadata
        body.push(0); // null bitmap
        body.extend([1, 1, 0x00]); // SIGNEDNESS: signed
        body.extend([4, 3, 2, b'i', b'd']); // COLUMN_NAME
        body.extend([8, 1, 0]); // SIMPLE_PRIMARY_KEY: column 0
        event(TABLE_MAP, 0, &body)
    }

    fn write_rows(ids: &[i32]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(&42u64.to_le_bytes()[..6]);
        body.extend(1u16.to_le_bytes()); // flags
        body.extend(2u16.to_le_bytes()); // no extra data
        body.push(1); // one column
        body.push(0b1); // present
        for id in ids {
            body.push(0); // not NULL
            body.extend(id.to_le_bytes());
        }
        event(WRITE_ROWS, 0, &body)
    }

    fn xid() -> Vec<u8> {
        event(XID, 0, &99u64.to_le_bytes())
    }

    /// The inner events of one transaction with `ids` in two rows events.
    fn transaction(ids: &[i32]) -> Vec<u8> {
        let (a, b) = ids.split_at(ids.len() / 2);
        [
            query("BEGIN"),
            table_map(),
            write_rows(a),
            table_map(),
            write_rows(b),
            xid(),
        ]
        .concat()
    }

    /// A TRANSACTION_PAYLOAD at `pos` carrying `inner` compressed, announcing `announced` bytes.
    fn payload(pos: u32, inner: &[u8], announced: u64) -> Vec<u8> {
        let compressed = zstd::encode_all(inner, 3).unwrap();
        let mut body = Vec::new();
        TransactionPayloadEvent::new(
            compressed.len() as u64,
            TransactionPayloadCompressionType::ZSTD,
            announced,
            compressed,
        )
        .serialize(&mut body);
        let size = 19 + body.len() as u32;
        event(PAYLOAD, pos + size, &body)
    }

    fn reader() -> Reader {
        reader_at(StartAt::Position {
            file: "binlog.000001".into(),
            pos: 1000,
        })
    }

    fn reader_at(start: StartAt) -> Reader {
        let filter = CaptureFilter::new(&CaptureConfig {
            databases: vec!["app".into()],
            ..CaptureConfig::default()
        });
        let params = SourceParams {
            opts: mysql_async::OptsBuilder::default().into(),
            is_mariadb: false,
            server_id: 7,
            heartbeat: Duration::from_secs(5),
            start,
            start_gtid: None,
            filter: Arc::new(filter),
            catalog: HashMap::new(),
            lookup: Box::new(|_, _| Box::pin(async { None })),
            signal_table: None,
            accepted_resets: Default::default(),
            metrics: Default::default(),
            read_ahead: super::super::read_ahead::ReadAhead::new(1 << 20),
        };
        Reader::new(params, Arc::new(Mutex::new((String::new(), 0))))
    }

    /// Feeds the payload event, then (as the stream does) its decompressed inner events, then
    /// `after` (the next event from outside).
    async fn feed(
        reader: &mut Reader,
        outer: &[u8],
        inner: Option<&[u8]>,
        after: &[u8],
    ) -> Result<Vec<SourceEvent>, SourceError> {
        let mut esr = EventStreamReader::new(BinlogVersion::Version4);
        let mut out = Vec::new();
        let event = esr.read(outer).unwrap().unwrap();
        reader.handle(&event, &mut out).await?;
        if let Some(mut inner) = inner {
            while let Some(event) = esr.read_decompressed(&mut inner).unwrap() {
                reader.handle(&event, &mut out).await?;
            }
        }
        let event = esr.read(after).unwrap().unwrap();
        reader.handle(&event, &mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn by_gtid_the_first_boundary_is_the_end_of_the_first_transaction_sent() {
        let state = GtidState::parse_mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-90").unwrap();
        let mut reader = reader_at(StartAt::Gtid(state));
        let mut rotate = 4u64.to_le_bytes().to_vec();
        rotate.extend(b"binlog.000009");
        let mut xid = xid();
        xid[13..17].copy_from_slice(&5000u32.to_le_bytes());
        let events = [
            event(4, 0, &rotate),
            query("BEGIN"),
            table_map(),
            write_rows(&[1]),
            xid,
        ];
        let mut esr = EventStreamReader::new(BinlogVersion::Version4);
        let mut boundaries = Vec::new();
        for (i, bytes) in events.iter().enumerate() {
            let event = esr.read(bytes.as_slice()).unwrap().unwrap();
            let mut out = Vec::new();
            reader.handle(&event, &mut out).await.unwrap();
            boundaries.extend(out.into_iter().filter_map(|e| match e {
                SourceEvent::Boundary(b) => Some((i, b.file.to_string(), b.pos, b.gtid)),
                _ => None,
            }));
        }
        // The stream opens at the start of the file holding the state: not a position whose
        // transactions before it were all read, so no boundary there.
        assert_eq!(boundaries.len(), 1, "{boundaries:?}");
        let (at, file, pos, gtid) = &boundaries[0];
        assert_eq!((*at, file.as_str(), *pos), (4, "binlog.000009", 5000));
        assert_eq!(
            gtid.as_deref(),
            Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-90")
        );
    }

    #[tokio::test]
    async fn a_compressed_transaction_is_decoded_with_ids_unique_across_its_rows() {
        let inner = transaction(&[1, 2, 3]);
        let outer = payload(1000, &inner, inner.len() as u64);
        let end = 1000 + outer.len() as u32;
        let out = feed(
            &mut reader(),
            &outer,
            Some(&inner),
            &event(HEARTBEAT, end, b"x"),
        )
        .await
        .unwrap();
        let rows: Vec<(u64, u32, Value)> = out
            .iter()
            .filter_map(|e| match e {
                SourceEvent::Row(r) => Some((r.pos, r.row, r.key["id"].clone())),
                _ => None,
            })
            .collect();
        // Every inner event sits at the payload's position; rows are numbered across it.
        assert_eq!(
            rows,
            vec![
                (1000, 0, Value::from(1)),
                (1000, 1, Value::from(2)),
                (1000, 2, Value::from(3))
            ]
        );
        let boundaries: Vec<u64> = out
            .iter()
            .filter_map(|e| match e {
                SourceEvent::Boundary(b) => Some(b.pos),
                _ => None,
            })
            .collect();
        assert_eq!(
            boundaries,
            vec![u64::from(end)],
            "one boundary, after the payload"
        );
    }

    #[tokio::test]
    async fn a_payload_that_yields_no_events_stops_the_reader() {
        // What the stream does when zstd fails: the payload event, then nothing of it.
        let inner = transaction(&[1, 2]);
        let outer = payload(1000, &inner, inner.len() as u64);
        let end = 1000 + outer.len() as u32;
        let err = feed(&mut reader(), &outer, None, &event(HEARTBEAT, end, b"x"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SourceError::Payload { pos: 1000, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("binlog.000001:1000"), "{err}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn inner_events_that_do_not_add_up_to_the_announced_size_stop_the_reader() {
        let inner = transaction(&[1, 2]);
        let outer = payload(1000, &inner, inner.len() as u64 + 10);
        let end = 1000 + outer.len() as u32;
        let err = feed(
            &mut reader(),
            &outer,
            Some(&inner),
            &event(HEARTBEAT, end, b"x"),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("announces"), "{err}");

        let outer = payload(1000, &inner, inner.len() as u64 - 10);
        let err = feed(
            &mut reader(),
            &outer,
            Some(&inner),
            &event(HEARTBEAT, end, b"x"),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("overrun"), "{err}");
    }

    #[tokio::test]
    async fn unknown_event_types_are_fatal_unless_marked_ignorable() {
        let mut esr = EventStreamReader::new(BinlogVersion::Version4);
        let mut out = Vec::new();
        let mut unknown = event(120, 1100, b"?");
        let err = reader()
            .handle(&esr.read(&unknown[..]).unwrap().unwrap(), &mut out)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("type 120"), "{err}");
        unknown[17] = 0x80; // LOG_EVENT_IGNORABLE_F
        reader()
            .handle(&esr.read(&unknown[..]).unwrap().unwrap(), &mut out)
            .await
            .unwrap();
        assert!(out.is_empty());
    }
}
