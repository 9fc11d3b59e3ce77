//! The source database, read by the pusher for composite OCPI objects.
//!
//! A change message says which record changed; for the tables of a Location > EVSE > Connector
//! tree the pusher sends the record's *current* state with all its children, read here, instead
//! of the row image in the message (see [`crate::composite`]). Reads only move forward in time,
//! so two pushes of one object can never go backwards, and a backlog of changes to one object
//! costs one read and one call.
//!
//! Values are typed like the bridge types them in change messages (the mapping's conversions
//! read both alike): integers exact, DECIMAL as its text, DATETIME as `YYYY-MM-DDTHH:MM:SS` with
//! the column's fractional digits, TIMESTAMP in UTC with a `Z`, text as text, binary as base64.
//! The connection uses `time_zone = '+00:00'`.
//!
//! Every failure to reach or query the server is [`DbError::Unavailable`]: the pusher waits and
//! tries again (a composite push never parks because the database is down). A table or column
//! the mapping names but the server lacks is [`DbError::Schema`], found at start by
//! [`SourceDb::check_tables`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use change_message::Row;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Value as SqlValue};
use serde_json::Value;

/// `[database]` of the pusher configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// Connections kept open at most.
    pub pool_size: usize,
    /// Limit for one read (connect included).
    pub timeout: Duration,
    /// The server is a replica of the bridge's source: every read first waits until it has
    /// applied the transactions of the changes it is for ([`replica_wait`]).
    pub replica: bool,
    /// `[database.tls]`, resolved when the configuration loaded.
    pub tls: tls_connect::TlsConfig,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("replica", &self.replica)
            .field("tls", &self.tls)
            .finish()
    }
}

mod gather;
mod replica_wait;

/// Why a read did not give rows.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// The server cannot be reached, refused us, or failed the query for a reason that may pass.
    #[error(
        "the source database {addr} did not answer the read of {what}: {reason} (composite \
         objects wait until it answers; check [database] in the pusher configuration, the \
         server, and the user's SELECT grant)"
    )]
    Unavailable {
        addr: String,
        what: String,
        reason: String,
    },
    /// The TLS settings (`[database.tls]`) do not fit the server: a restart with other settings
    /// is needed, so the pusher refuses to start; met later (a new certificate), reads wait.
    #[error("{reason}")]
    Tls { addr: String, reason: String },
    /// The server answers, but a table or column the mapping reads is not there.
    #[error(
        "the source database {addr} cannot give {what}: {reason}; fix the mapping or give the \
         pusher's user SELECT on the table"
    )]
    Schema {
        addr: String,
        what: String,
        reason: String,
    },
    /// The server is a replica (`[database] replica = true`) and the change does not say
    /// which transaction to wait for.
    #[error(
        "cannot read the replica {addr} for this change: {reason}; composite objects read from \
         a replica need the GTID of each change"
    )]
    Unwaitable { addr: String, reason: String },
}

/// A pool of read-only connections to the source database, with counters for operators.
pub struct SourceDb {
    inner: Arc<Inner>,
}

/// What [`SourceDb`] shares with the tasks that run gathered reads.
struct Inner {
    /// Replaced once in verify_ca mode, when the server's certificate name is learned.
    pool: Mutex<mysql_async::Pool>,
    config: DatabaseConfig,
    addr: String,
    timeout: Duration,
    reads: AtomicU64,
    reachable: AtomicBool,
    last_error: Mutex<Option<String>>,
    gather: gather::Gather,
    /// `Some` when the server is a replica: what its waits confirmed so far.
    applied: Option<replica_wait::Applied>,
}

/// One SELECT: columns of a table, rows whose `filter` columns equal one of `keys`, in
/// `order_by` order.
pub struct Select<'a> {
    pub database: &'a str,
    pub table: &'a str,
    pub columns: &'a [&'a str],
    pub filter: &'a [&'a str],
    /// One value per filter column, for each wanted row group; empty gives no rows.
    pub keys: &'a [Vec<Value>],
    pub order_by: &'a [&'a str],
}

/// A pool of connections with `config`'s address, credentials and `[database.tls]`, connecting
/// on first use.
fn pool(config: &DatabaseConfig) -> mysql_async::Pool {
    mysql_async::Pool::new(opts(config))
}

fn opts(config: &DatabaseConfig) -> mysql_async::Opts {
    let constraints =
        mysql_async::PoolConstraints::new(0, config.pool_size.max(1)).unwrap_or_default();
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(config.host.clone())
        .tcp_port(config.port)
        .user(Some(config.user.clone()))
        .pass(Some(config.password.clone()))
        .prefer_socket(false)
        // Gathered reads use a few statement texts per table (key counts rounded up to a
        // power of two, see `gather`): all of them stay prepared.
        .stmt_cache_size(STATEMENT_CACHE)
        .init(vec![
            "SET time_zone = '+00:00'",
            "SET SESSION TRANSACTION READ ONLY",
        ])
        .pool_opts(
            mysql_async::PoolOpts::default()
                .with_constraints(constraints)
                .with_inactive_connection_ttl(Duration::from_secs(300))
                .with_reset_connection(false),
        );
    tls_connect::database::apply(opts, &config.tls).into()
}

impl SourceDb {
    /// A pool that connects on first use (nothing is tried here).
    pub fn new(config: &DatabaseConfig) -> SourceDb {
        SourceDb {
            inner: Arc::new(Inner {
                pool: Mutex::new(pool(config)),
                config: config.clone(),
                addr: format!("{}:{}", config.host, config.port),
                timeout: config.timeout,
                reads: AtomicU64::new(0),
                reachable: AtomicBool::new(true),
                last_error: Mutex::new(None),
                gather: gather::Gather::new(gather::slots_for(config.pool_size)),
                applied: config.replica.then(replica_wait::Applied::default),
            }),
        }
    }

    /// SELECTs run so far (each query counts once).
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    /// `None` while the last read worked, else why it did not.
    pub fn unavailable_reason(&self) -> Option<String> {
        if self.inner.reachable.load(Ordering::Relaxed) {
            return None;
        }
        self.inner.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Checks that every `(database, table, columns)` can be read: a missing table, column or
    /// grant is a [`DbError::Schema`]; a server that cannot be reached is
    /// [`DbError::Unavailable`] (the caller may go on and wait for it).
    pub async fn check_tables(
        &self,
        tables: &[(String, String, Vec<String>)],
    ) -> Result<(), DbError> {
        for (database, table, columns) in tables {
            let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
            let sql = format!(
                "SELECT {} FROM {}.{} WHERE 1 = 0",
                column_list(&cols),
                ident(database),
                ident(table)
            );
            let what = format!("`{database}.{table}`");
            self.session().await?.run(&what, &sql, Vec::new()).await?;
        }
        Ok(())
    }

    /// One connection of the pool for several reads, given back when the session is dropped.
    pub async fn session(&self) -> Result<DbSession<'_>, DbError> {
        self.inner.session().await
    }

    /// Runs one [`Select`] together with the reads of the same shape (table, columns, filter,
    /// order) that other callers ask for meanwhile: one SELECT for all of them, each caller
    /// getting exactly the rows of its own keys. A read always starts after it was asked for.
    pub async fn select_gathered(&self, select: &Select<'_>) -> Result<Vec<Row>, DbError> {
        gather::select(&self.inner, select).await
    }

    /// On a replica (`[database] replica = true`), waits until the server has applied the
    /// transactions of these changes (their GTIDs), so that a read after it sees them; at once
    /// otherwise. A wait that times out is [`DbError::Unavailable`].
    pub async fn wait_applied<'a>(
        &self,
        gtids: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Result<(), DbError> {
        let inner = &self.inner;
        let Some(applied) = &inner.applied else {
            return Ok(());
        };
        let queries = applied
            .needed(gtids)
            .map_err(|reason| DbError::Unwaitable {
                addr: inner.addr.clone(),
                reason,
            })?;
        for query in queries {
            inner.session().await?.wait(&query).await?;
            applied.confirm(&query);
        }
        Ok(())
    }

    /// Closes the pool's connections.
    pub async fn close(self) {
        let pool = self.inner.current_pool();
        let _ = pool.disconnect().await;
    }
}

impl Inner {
    fn current_pool(&self) -> mysql_async::Pool {
        match self.pool.lock() {
            Ok(pool) => pool.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn session(&self) -> Result<DbSession<'_>, DbError> {
        let connect = async {
            match self.current_pool().get_conn().await {
                // verify_ca: the first handshake taught the certificate's name; every
                // connection from now on is checked against it.
                Err(e) if tls_connect::database::learn_name(&self.config.tls, &e) => {
                    let fresh = pool(&self.config);
                    if let Ok(mut current) = self.pool.lock() {
                        *current = fresh.clone();
                    }
                    fresh.get_conn().await
                }
                other => other,
            }
        };
        let conn = tokio::time::timeout(self.timeout, connect).await;
        let conn = match conn {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                let config = &self.config;
                let diagnosed = tls_connect::database::diagnose(
                    &e,
                    opts(config),
                    &config.tls,
                    &self.addr,
                    &config.host,
                )
                .await;
                let error = match diagnosed {
                    Some(reason) => DbError::Tls {
                        addr: self.addr.clone(),
                        reason,
                    },
                    None => self.classify("a connection", e),
                };
                return Err(self.failed(error));
            }
            Err(_) => {
                return Err(self.failed(DbError::Unavailable {
                    addr: self.addr.clone(),
                    what: "a connection".into(),
                    reason: format!("no connection within {} ms", self.timeout.as_millis()),
                }))
            }
        };
        Ok(DbSession { db: self, conn })
    }

    fn failed(&self, error: DbError) -> DbError {
        if let DbError::Unavailable { .. } | DbError::Tls { .. } = &error {
            self.reachable.store(false, Ordering::Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(error.to_string());
            }
        }
        error
    }
}

/// A connection taken from [`SourceDb`]'s pool.
pub struct DbSession<'a> {
    db: &'a Inner,
    conn: mysql_async::Conn,
}

impl DbSession<'_> {
    /// Runs one [`Select`].
    pub async fn select(&mut self, select: &Select<'_>) -> Result<Vec<Row>, DbError> {
        if select.keys.is_empty() {
            return Ok(Vec::new());
        }
        let (sql, params) = select_sql(select);
        let what = format!("`{}.{}`", select.database, select.table);
        self.run(&what, &sql, params).await
    }

    /// The server's global time zone settings: `@@global.time_zone` and `@@system_time_zone`
    /// (what `SYSTEM` stands for), as the server writes them.
    pub async fn time_zone_settings(&mut self) -> Result<(String, String), DbError> {
        let sql = "SELECT @@global.time_zone AS time_zone, @@system_time_zone AS system_time_zone";
        let rows = self.run("the server's time zone", sql, Vec::new()).await?;
        let text = |name: &str| {
            rows.first()
                .and_then(|row| row.get(name))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        Ok((text("time_zone"), text("system_time_zone")))
    }

    /// Runs one wait of [`replica_wait`]: the server waits at most 80% of the read limit, so
    /// that its answer comes before the read limit ends the query.
    async fn wait(&mut self, query: &replica_wait::WaitQuery) -> Result<(), DbError> {
        let db = self.db;
        let limit = db.timeout.mul_f64(0.8);
        let what = format!("transaction {}", query.gtids);
        db.reads.fetch_add(1, Ordering::Relaxed);
        let params = vec![
            SqlValue::Bytes(query.gtids.clone().into_bytes()),
            SqlValue::Double(limit.as_secs_f64()),
        ];
        let read = self.conn.exec_first::<Option<i64>, _, _>(query.sql, params);
        let result = match tokio::time::timeout(db.timeout, read).await {
            Ok(Ok(value)) => {
                replica_wait::answer(query, value.flatten(), limit).map_err(|reason| {
                    DbError::Unavailable {
                        addr: db.addr.clone(),
                        what: what.clone(),
                        reason,
                    }
                })
            }
            Ok(Err(e)) => Err(db.classify(&what, e)),
            Err(_) => Err(DbError::Unavailable {
                addr: db.addr.clone(),
                what,
                reason: format!("no answer within {} ms", db.timeout.as_millis()),
            }),
        };
        result.map_err(|e| db.failed(e))
    }

    async fn run(
        &mut self,
        what: &str,
        sql: &str,
        params: Vec<SqlValue>,
    ) -> Result<Vec<Row>, DbError> {
        let db = self.db;
        db.reads.fetch_add(1, Ordering::Relaxed);
        let conn = &mut self.conn;
        let read = async {
            let rows: Vec<mysql_async::Row> = if params.is_empty() {
                conn.query(sql).await?
            } else {
                conn.exec(sql, params).await?
            };
            Ok::<_, mysql_async::Error>(rows)
        };
        let (addr, timeout) = (&db.addr, db.timeout);
        let result = match tokio::time::timeout(timeout, read).await {
            Ok(Ok(rows)) => typed_rows(rows).map_err(|reason| DbError::Schema {
                addr: addr.clone(),
                what: what.to_string(),
                reason,
            }),
            Ok(Err(e)) => Err(db.classify(what, e)),
            Err(_) => Err(DbError::Unavailable {
                addr: addr.clone(),
                what: what.to_string(),
                reason: format!("no answer within {} ms", timeout.as_millis()),
            }),
        };
        match result {
            Err(e) => Err(db.failed(e)),
            Ok(rows) => {
                db.reachable.store(true, Ordering::Relaxed);
                Ok(rows)
            }
        }
    }
}

impl Inner {
    fn classify(&self, what: &str, error: mysql_async::Error) -> DbError {
        let tls = &self.config.tls;
        if let Some(reason) =
            tls_connect::database::problem(&error, tls, &self.addr, &self.config.host)
        {
            return DbError::Tls {
                addr: self.addr.clone(),
                reason,
            };
        }
        // 1054 unknown column, 1146 no such table, 1142/1143 SELECT denied, 1049 unknown
        // database: the mapping or the grants are wrong, waiting will not help.
        if let mysql_async::Error::Server(server) = &error {
            if matches!(server.code, 1049 | 1054 | 1142 | 1143 | 1146) {
                return DbError::Schema {
                    addr: self.addr.clone(),
                    what: what.to_string(),
                    reason: format!("server error {}: {}", server.code, server.message),
                };
            }
        }
        DbError::Unavailable {
            addr: self.addr.clone(),
            what: what.to_string(),
            reason: error.to_string(),
        }
    }
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Whether two ids are the same the way the database compares them: case-insensitively for
/// text (the example schema's collations are case-insensitive, as OCPI's CiString is).
pub fn same_id(a: Option<&Value>, b: &Value) -> bool {
    match (a, b) {
        (Some(Value::String(x)), Value::String(y)) => x.eq_ignore_ascii_case(y),
        (Some(x), y) => x == y,
        (None, _) => false,
    }
}

/// `SELECT cols FROM db.t WHERE (f1, f2) IN ((?, ?), ...) ORDER BY o1, o2` and its parameters.
fn select_sql(select: &Select<'_>) -> (String, Vec<SqlValue>) {
    let mut sql = String::with_capacity(128 + 8 * select.keys.len() * select.filter.len());
    sql.push_str("SELECT ");
    push_column_list(&mut sql, select.columns);
    sql.push_str(" FROM ");
    push_ident(&mut sql, select.database);
    sql.push('.');
    push_ident(&mut sql, select.table);
    sql.push_str(" WHERE ");
    if select.keys.len() == 1 {
        for (i, column) in select.filter.iter().enumerate() {
            if i > 0 {
                sql.push_str(" AND ");
            }
            push_ident(&mut sql, column);
            sql.push_str(" = ?");
        }
    } else {
        sql.push('(');
        push_column_list(&mut sql, select.filter);
        sql.push_str(") IN (");
        for k in 0..select.keys.len() {
            if k > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for i in 0..select.filter.len() {
                sql.push_str(if i > 0 { ", ?" } else { "?" });
            }
            sql.push(')');
        }
        sql.push(')');
    }
    if !select.order_by.is_empty() {
        sql.push_str(" ORDER BY ");
        push_column_list(&mut sql, select.order_by);
    }
    let params = select
        .keys
        .iter()
        .flat_map(|key| key.iter().map(sql_param))
        .collect();
    (sql, params)
}

fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_ident(&mut out, name);
    out
}

fn push_ident(sql: &mut String, name: &str) {
    sql.push('`');
    if name.contains('`') {
        sql.push_str(&name.replace('`', "``"));
    } else {
        sql.push_str(name);
    }
    sql.push('`');
}

fn column_list(columns: &[&str]) -> String {
    let mut out = String::new();
    push_column_list(&mut out, columns);
    out
}

fn push_column_list(sql: &mut String, columns: &[&str]) {
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        push_ident(sql, column);
    }
}

fn sql_param(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::NULL,
        Value::Bool(b) => SqlValue::Int(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => SqlValue::Int(i),
            (_, Some(u), _) => SqlValue::UInt(u),
            (_, _, Some(f)) => SqlValue::Double(f),
            _ => SqlValue::Bytes(n.to_string().into_bytes()),
        },
        Value::String(s) => SqlValue::Bytes(s.clone().into_bytes()),
        other => SqlValue::Bytes(other.to_string().into_bytes()),
    }
}

/// The rows of one result set in the change messages' JSON form. The rows share their
/// columns: the names are decoded once.
fn typed_rows(rows: Vec<mysql_async::Row>) -> Result<Vec<Row>, String> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns = first.columns();
    let names: Vec<String> = columns.iter().map(|c| c.name_str().into_owned()).collect();
    rows.into_iter()
        .map(|row| {
            let mut out = Row::with_capacity(names.len());
            for ((column, name), value) in columns.iter().zip(&names).zip(row.unwrap()) {
                out.insert(name.clone(), typed_value(column, value)?);
            }
            Ok(out)
        })
        .collect()
}

/// One value in the change messages' JSON form (see the module documentation).
pub fn typed_value(column: &Column, value: SqlValue) -> Result<Value, String> {
    let kind = column.column_type();
    Ok(match value {
        SqlValue::NULL => Value::Null,
        SqlValue::Int(i) => Value::from(i),
        SqlValue::UInt(u) => Value::from(u),
        SqlValue::Float(f) => float(f64::from(f)),
        SqlValue::Double(d) => float(d),
        SqlValue::Date(year, month, day, hour, minute, second, micros) => {
            let date = format!("{year:04}-{month:02}-{day:02}");
            let fsp = u32::from(column.decimals()).min(6);
            match kind {
                ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => Value::String(date),
                _ => {
                    let mut text = format!("{date}T{hour:02}:{minute:02}:{second:02}");
                    push_fraction(&mut text, micros, fsp);
                    if matches!(
                        kind,
                        ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2
                    ) {
                        text.push('Z');
                    }
                    Value::String(text)
                }
            }
        }
        SqlValue::Time(negative, days, hours, minutes, seconds, micros) => {
            let hours = days * 24 + u32::from(hours);
            let mut text = format!(
                "{}{hours:02}:{minutes:02}:{seconds:02}",
                if negative { "-" } else { "" }
            );
            push_fraction(&mut text, micros, u32::from(column.decimals()).min(6));
            Value::String(text)
        }
        SqlValue::Bytes(bytes) => bytes_value(column, kind, bytes)?,
    })
}

fn bytes_value(column: &Column, kind: ColumnType, bytes: Vec<u8>) -> Result<Value, String> {
    let flags = column.flags();
    let name = column.name_str();
    Ok(match kind {
        ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        ColumnType::MYSQL_TYPE_JSON => serde_json::from_slice(&bytes)
            .map_err(|e| format!("column `{name}` holds JSON that does not parse: {e}"))?,
        ColumnType::MYSQL_TYPE_BIT => {
            Value::from(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        }
        ColumnType::MYSQL_TYPE_GEOMETRY => base64(&bytes),
        _ if flags.contains(ColumnFlags::ENUM_FLAG) || flags.contains(ColumnFlags::SET_FLAG) => {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        // Character set 63 is `binary`: BINARY, VARBINARY, BLOB.
        _ if column.character_set() == 63 => base64(&bytes),
        _ => Value::String(String::from_utf8(bytes).map_err(|_| {
            format!("column `{name}` holds text that is not UTF-8 on a utf8mb4 connection")
        })?),
    })
}

fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn base64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn push_fraction(text: &mut String, micros: u32, fsp: u32) {
    if fsp == 0 {
        return;
    }
    let digits = format!("{micros:06}");
    text.push('.');
    text.push_str(&digits[..fsp as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_key_is_an_equality_and_several_are_a_row_in_list() {
        let keys = vec![vec![json!("NL"), json!(7)]];
        let (sql, params) = select_sql(&Select {
            database: "ocpi",
            table: "evses",
            columns: &["uid", "status"],
            filter: &["country_code", "location_id"],
            keys: &keys,
            order_by: &["uid"],
        });
        assert_eq!(
            sql,
            "SELECT `uid`, `status` FROM `ocpi`.`evses` WHERE `country_code` = ? AND \
             `location_id` = ? ORDER BY `uid`"
        );
        assert_eq!(
            params,
            vec![SqlValue::Bytes(b"NL".to_vec()), SqlValue::Int(7)]
        );
        let keys = vec![vec![json!("a")], vec![json!("b")]];
        let (sql, params) = select_sql(&Select {
            database: "d",
            table: "t`x",
            columns: &["c"],
            filter: &["k"],
            keys: &keys,
            order_by: &[],
        });
        assert_eq!(sql, "SELECT `c` FROM `d`.`t``x` WHERE (`k`) IN ((?), (?))");
        assert_eq!(params.len(), 2);
    }

    #[test]
    fn fractions_keep_the_columns_digits() {
        let mut text = "10:00:00".to_string();
        push_fraction(&mut text, 123_456, 3);
        assert_eq!(text, "10:00:00.123");
        let mut text = "x".to_string();
        push_fraction(&mut text, 5, 6);
        assert_eq!(text, "x.000005");
        let mut text = "x".to_string();
        push_fraction(&mut text, 5, 0);
        assert_eq!(text, "x");
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let config = DatabaseConfig {
            host: "h".into(),
            port: 1,
            user: "u".into(),
            password: "s3cret".into(),
            pool_size: 1,
            timeout: Duration::from_secs(1),
            replica: false,
            tls: tls_connect::TlsConfig::default(),
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
