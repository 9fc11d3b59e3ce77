//! Checks made before reading the binlog, so that a server set up wrong is refused at start
//! with the fix spelled out, instead of failing (or, worse, silently losing changes) later.

use crate::capture_filter::CaptureFilter;
use crate::checkpoint::Checkpoint;
use crate::config::SourceConfig;
use crate::schema_catalog::{self, SchemaCatalog};
use mysql_async::prelude::Queryable;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Worth retrying: the server may be starting or the network may come back.
    #[error("database {address} is not reachable: {message}")]
    Unreachable { address: String, message: String },
    #[error(
        "database {address} refused user `{user}`: {message}; check source.user and the password \
         (source.password or the BRIDGE_SOURCE_PASSWORD environment variable){hint}"
    )]
    AccessDenied {
        address: String,
        user: String,
        message: String,
        /// What else can cause it with the TLS settings in use (empty when nothing).
        hint: String,
    },
    /// The TLS settings (`[source.tls]`) do not fit the server: waiting will not help.
    #[error("{0}")]
    Tls(String),
    #[error("database query failed during start-up checks: {0}")]
    Query(String),
    #[error(
        "the binary log is off on the database server; enable it with log_bin (e.g. \
         `log-bin=binlog` in the [mysqld] section) plus binlog_format=ROW, binlog_row_image=FULL, \
         binlog_row_metadata=FULL, and restart the server"
    )]
    BinlogOff,
    #[error(
        "server variable {variable} is {actual}, the bridge needs {expected}: set \
         `{variable}={expected}` in the server's [mysqld] section (or SET GLOBAL {variable}='{expected}' \
         and reconnect clients), then restart the bridge"
    )]
    WrongSetting {
        variable: &'static str,
        actual: String,
        expected: &'static str,
    },
    #[error(
        "the server has no binlog_row_metadata variable (MySQL before 8.0.1 or MariaDB before \
         10.5): column names are then missing from the binlog; upgrade the server"
    )]
    NoRowMetadata,
    #[error(
        "user `{user}` lacks the {missing} privilege; grant it with: GRANT REPLICATION SLAVE, \
         REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'<host>'"
    )]
    MissingGrant { user: String, missing: &'static str },
    #[error(
        "user `{user}` cannot read table {table} ({message}); grant SELECT on it: GRANT SELECT ON \
         {table} TO '{user}'@'<host>'"
    )]
    SelectDenied {
        user: String,
        table: String,
        message: String,
    },
    #[error(
        "source.server_id {0} is the database server's own server_id; choose another id, unique \
         among the server and all its replicas"
    )]
    ServerIdClash(u32),
    #[error("captured tables cannot be read from the binlog:\n{0}")]
    UnreadableColumns(String),
    #[error("captured tables have no primary key (records could not be told apart):\n{0}\nadd a primary key, or list them in capture.exclude_tables")]
    NoPrimaryKey(String),
    #[error(
        "the checkpoint names binlog file {file}, which the server no longer has (it keeps {oldest} \
         and later: the file was purged). Resuming would silently lose the changes in between. \
         To re-sync: stop the bridge, move the checkpoint file away, set source.start = \"end\", \
         start the bridge, then run an initial sync of every partner so they receive the current \
         state of every record"
    )]
    BinlogPurged { file: String, oldest: String },
    #[error("the server has no binary log files (SHOW BINARY LOGS is empty); is log_bin on?")]
    NoBinlogFiles,
    #[error(
        "the signal table {table} of initial syncs does not exist and user `{user}` cannot create \
         it ({message}). Either grant it: {grant}; or create the table yourself:\n{create};\n\
         (or turn initial syncs off with [sync] enabled = false)"
    )]
    SignalTableMissing {
        table: String,
        user: String,
        message: String,
        grant: String,
        create: String,
    },
    #[error(
        "user `{user}` cannot {action} the signal table {table} of initial syncs ({message}); \
         grant it with: {grant} (or turn initial syncs off with [sync] enabled = false)"
    )]
    SignalTableDenied {
        table: String,
        user: String,
        action: &'static str,
        message: String,
        grant: String,
    },
}

impl PreflightError {
    /// Only an unreachable server is worth waiting for; everything else needs a person.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PreflightError::Unreachable { .. })
    }
}

/// What the start-up checks learned about the server.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub version: String,
    pub is_mariadb: bool,
    pub server_id: u32,
    pub binlog_files: Vec<String>,
    /// The newest binlog file and its size: where the server writes its next event. Read with
    /// `SHOW BINARY LOGS`, which every supported server answers (MySQL 8.4 dropped
    /// `SHOW MASTER STATUS`).
    pub binlog_end: (String, u64),
    /// The server's current GTID state (MariaDB `gtid_binlog_pos`, MySQL `gtid_executed` when
    /// `gtid_mode` is on), read just before replication starts.
    pub gtid_position: Option<String>,
}

/// The options of every connection the bridge makes to the database (checks, catalog,
/// snapshot reads, lag, signal table, binlog): address, credentials and `[source.tls]`.
pub fn connection_opts(source: &SourceConfig) -> mysql_async::Opts {
    let builder = mysql_async::OptsBuilder::default()
        .ip_or_hostname(source.host.clone())
        .tcp_port(source.port)
        .user(Some(source.user.clone()))
        .pass(Some(source.password.clone()))
        .prefer_socket(false);
    tls_connect::database::apply(builder, &source.tls).into()
}

fn address(source: &SourceConfig) -> String {
    format!("{}:{}", source.host, source.port)
}

/// A refused connection that is not a TLS problem (those are found by
/// `tls_connect::database::diagnose` first).
fn classify_connect_error(source: &SourceConfig, error: mysql_async::Error) -> PreflightError {
    match error {
        mysql_async::Error::Server(ref e) if e.code == 1045 || e.code == 1044 => {
            let hint = tls_connect::database::access_denied_hint(&source.tls);
            PreflightError::AccessDenied {
                address: address(source),
                user: source.user.clone(),
                message: e.message.clone(),
                hint,
            }
        }
        other => PreflightError::Unreachable {
            address: address(source),
            message: other.to_string(),
        },
    }
}

fn query_error(error: mysql_async::Error) -> PreflightError {
    PreflightError::Query(error.to_string())
}

/// Opens one connection with [`connection_opts`]; in `verify_ca` mode the first connection
/// also learns the name the server's certificate carries (see `tls_connect::database`).
pub async fn connect(source: &SourceConfig) -> Result<mysql_async::Conn, PreflightError> {
    match tls_connect::database::connect(|| connection_opts(source), &source.tls).await {
        Ok(conn) => Ok(conn),
        Err(error) => {
            let address = address(source);
            let opts = connection_opts(source);
            let tls = &source.tls;
            match tls_connect::database::diagnose(&error, opts, tls, &address, &source.host).await {
                Some(problem) => Err(PreflightError::Tls(problem)),
                None => Err(classify_connect_error(source, error)),
            }
        }
    }
}

async fn variable(
    conn: &mut mysql_async::Conn,
    name: &str,
) -> Result<Option<String>, PreflightError> {
    let row: Option<(String, String)> = conn
        .exec_first("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (name,))
        .await
        .map_err(query_error)?;
    Ok(row.map(|(_, value)| value))
}

fn require(
    variable: &'static str,
    actual: Option<String>,
    expected: &'static str,
) -> Result<(), PreflightError> {
    match actual {
        Some(value) if value.eq_ignore_ascii_case(expected) => Ok(()),
        Some(value) => Err(PreflightError::WrongSetting {
            variable,
            actual: value,
            expected,
        }),
        None => Err(PreflightError::WrongSetting {
            variable,
            actual: "not set".into(),
            expected,
        }),
    }
}

/// True when any grant line gives the privilege globally.
fn has_global_privilege(grants: &[String], names: &[&str]) -> bool {
    grants.iter().any(|line| {
        let upper = line.to_uppercase();
        let global = upper.contains(" ON *.* ");
        global && (upper.contains("ALL PRIVILEGES") || names.iter().any(|n| upper.contains(n)))
    })
}

fn is_denied(error: &mysql_async::Error) -> bool {
    // 1142 table command denied, 1143 column denied, 1044 database denied, 1227 needs privilege
    matches!(error, mysql_async::Error::Server(e) if matches!(e.code, 1142 | 1143 | 1044 | 1227))
}

/// Makes sure the signal table of initial syncs exists (creating it when missing) and that the
/// bridge's user may read, insert and delete its rows. The check writes nothing: the probe
/// statements run in a transaction that is rolled back (and so never reaches the binlog).
pub async fn signal_table(
    source: &SourceConfig,
    database: &str,
    table: &str,
) -> Result<(), PreflightError> {
    use crate::sync::signal::{create_statement, grant_statement, quoted};
    let mut conn = connect(source).await?;
    let name = quoted(database, table);
    let grant = grant_statement(database, table, &source.user);
    let exists: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (database, table),
        )
        .await
        .map_err(query_error)?;
    if exists.unwrap_or(0) == 0 {
        if let Err(error) = conn.query_drop(create_statement(database, table)).await {
            if is_denied(&error) {
                return Err(PreflightError::SignalTableMissing {
                    table: name,
                    user: source.user.clone(),
                    message: error.to_string(),
                    grant,
                    create: create_statement(database, table),
                });
            }
            return Err(query_error(error));
        }
        tracing::info!(table = %name, "created the signal table of initial syncs");
    }
    let probes: [(&'static str, String); 3] = [
        ("read (SELECT)", format!("SELECT id FROM {name} LIMIT 1")),
        (
            "write (INSERT)",
            format!("INSERT INTO {name} (kind, sync_id, detail) VALUES ('probe', '', '')"),
        ),
        (
            "clean up (DELETE)",
            format!("DELETE FROM {name} WHERE id = 0"),
        ),
    ];
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(query_error)?;
    let mut outcome = Ok(());
    for (action, sql) in probes {
        if let Err(error) = conn.query_drop(sql).await {
            outcome = Err(if is_denied(&error) {
                PreflightError::SignalTableDenied {
                    table: name.clone(),
                    user: source.user.clone(),
                    action,
                    message: error.to_string(),
                    grant: grant.clone(),
                }
            } else {
                query_error(error)
            });
            break;
        }
    }
    let _ = conn.query_drop("ROLLBACK").await;
    let _ = conn.disconnect().await;
    outcome
}

/// Runs every check; returns the server facts and the catalog of captured tables.
pub async fn run(
    source: &SourceConfig,
    filter: &CaptureFilter,
    checkpoint: Option<&Checkpoint>,
) -> Result<(ServerFacts, SchemaCatalog), PreflightError> {
    let mut conn = connect(source).await?;

    let version = variable(&mut conn, "version").await?.unwrap_or_default();
    let is_mariadb = version.to_lowercase().contains("mariadb");
    let log_bin = variable(&mut conn, "log_bin").await?;
    if !matches!(log_bin.as_deref(), Some("ON") | Some("1")) {
        return Err(PreflightError::BinlogOff);
    }
    require(
        "binlog_format",
        variable(&mut conn, "binlog_format").await?,
        "ROW",
    )?;
    require(
        "binlog_row_image",
        variable(&mut conn, "binlog_row_image").await?,
        "FULL",
    )?;
    match variable(&mut conn, "binlog_row_metadata").await? {
        None => return Err(PreflightError::NoRowMetadata),
        value => require("binlog_row_metadata", value, "FULL")?,
    }
    // MySQL 8.0.20+ compressed transactions (binlog_transaction_compression) are decoded.
    // MariaDB: compressed events are a different event type the reader does not know.
    if let Some(value) = variable(&mut conn, "log_bin_compress").await? {
        require("log_bin_compress", Some(value), "OFF")?;
    }
    // MySQL: partial JSON updates are a different rows event the reader does not know.
    if let Some(value) = variable(&mut conn, "binlog_row_value_options").await? {
        if !value.is_empty() {
            return Err(PreflightError::WrongSetting {
                variable: "binlog_row_value_options",
                actual: value,
                expected: "",
            });
        }
    }

    let server_id: u32 = variable(&mut conn, "server_id")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if server_id == source.server_id {
        return Err(PreflightError::ServerIdClash(source.server_id));
    }

    let grants: Vec<String> = conn.query("SHOW GRANTS").await.map_err(query_error)?;
    if !has_global_privilege(&grants, &["REPLICATION SLAVE"]) {
        return Err(PreflightError::MissingGrant {
            user: source.user.clone(),
            missing: "REPLICATION SLAVE",
        });
    }
    if !has_global_privilege(
        &grants,
        &[
            "REPLICATION CLIENT",
            "BINLOG MONITOR",
            "SUPER",
            "REPLICA MONITOR",
        ],
    ) {
        return Err(PreflightError::MissingGrant {
            user: source.user.clone(),
            missing: "REPLICATION CLIENT",
        });
    }

    // Another replica registered with our id: the server disconnects one of the two whenever
    // the other connects. Only a warning: the registration of this bridge's own previous
    // connection (a crash a moment ago, a reconnect) lingers until the server notices it is gone.
    // (SHOW SLAVE HOSTS needs REPLICATION MASTER ADMIN on MariaDB; skipped when not allowed.)
    if let Ok(rows) = conn.query::<mysql_async::Row, _>("SHOW SLAVE HOSTS").await {
        for row in rows {
            let id: Option<u32> = row.get(0);
            if id == Some(source.server_id) {
                tracing::warn!(
                    server_id = source.server_id,
                    "a replica with this bridge's source.server_id is registered on the server; \
                     unless it is this bridge's own previous connection, give one of them \
                     another id, or they will keep disconnecting each other"
                );
            }
        }
    }

    let binlog_rows: Vec<mysql_async::Row> =
        conn.query("SHOW BINARY LOGS").await.map_err(query_error)?;
    let binlog_end = binlog_rows
        .last()
        .and_then(|row| Some((row.get::<String, _>(0)?, row.get::<u64, _>(1)?)))
        .unwrap_or_default();
    let binlog_files: Vec<String> = binlog_rows
        .into_iter()
        .filter_map(|row| row.get::<String, _>(0))
        .collect();
    if binlog_files.is_empty() {
        return Err(PreflightError::NoBinlogFiles);
    }
    if let Some(cp) = checkpoint {
        if !binlog_files.contains(&cp.file) {
            return Err(PreflightError::BinlogPurged {
                file: cp.file.clone(),
                oldest: binlog_files[0].clone(),
            });
        }
    }

    let gtid_position = if is_mariadb {
        variable(&mut conn, "gtid_binlog_pos").await?
    } else if variable(&mut conn, "gtid_mode").await?.as_deref() == Some("ON") {
        variable(&mut conn, "gtid_executed").await?
    } else {
        None
    };

    let databases: Vec<String> = filter.databases().cloned().collect();
    let catalog = schema_catalog::inspect(&mut conn, is_mariadb, &databases, None)
        .await
        .map_err(query_error)?;
    let mut unreadable = Vec::new();
    let mut keyless = Vec::new();
    let mut names: Vec<&(String, String)> = catalog.tables.keys().collect();
    names.sort();
    for key in names {
        let (database, table) = key;
        if !filter.captures_table(database, table) {
            continue;
        }
        let Some(info) = catalog.table(database, table) else {
            continue;
        };
        if !info.has_primary_key {
            keyless.push(format!("  {database}.{table}"));
        }
        for (column, facts) in &info.columns {
            if let Some(reason) = facts.unreadable_reason() {
                unreadable.push(format!("  {database}.{table}.{column}: {reason}"));
            }
        }
        let probe = format!("SELECT 1 FROM `{database}`.`{table}` LIMIT 0");
        if let Err(e) = conn.query_drop(probe).await {
            return Err(PreflightError::SelectDenied {
                user: source.user.clone(),
                table: format!("{database}.{table}"),
                message: e.to_string(),
            });
        }
    }
    if !unreadable.is_empty() {
        return Err(PreflightError::UnreadableColumns(unreadable.join("\n")));
    }
    if !keyless.is_empty() {
        return Err(PreflightError::NoPrimaryKey(keyless.join("\n")));
    }
    let _ = conn.disconnect().await;
    Ok((
        ServerFacts {
            version,
            is_mariadb,
            server_id,
            binlog_files,
            binlog_end,
            gtid_position,
        },
        catalog,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_read_globally_only() {
        let grants = vec![
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`".to_string(),
            "GRANT SELECT ON `app`.* TO `cdc`@`%`".to_string(),
        ];
        assert!(has_global_privilege(&grants, &["REPLICATION SLAVE"]));
        assert!(has_global_privilege(&grants, &["REPLICATION CLIENT"]));
        let local_only = vec!["GRANT ALL PRIVILEGES ON `app`.* TO `cdc`@`%`".to_string()];
        assert!(!has_global_privilege(&local_only, &["REPLICATION SLAVE"]));
        let root = vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`".to_string()];
        assert!(has_global_privilege(&root, &["REPLICATION SLAVE"]));
    }

    #[test]
    fn errors_say_how_to_fix_them() {
        let e = PreflightError::WrongSetting {
            variable: "binlog_format",
            actual: "MIXED".into(),
            expected: "ROW",
        };
        let text = e.to_string();
        assert!(text.contains("binlog_format=ROW"), "{text}");
        let text = PreflightError::BinlogPurged {
            file: "binlog.000001".into(),
            oldest: "binlog.000004".into(),
        }
        .to_string();
        assert!(
            text.contains("purged") && text.contains("initial sync"),
            "{text}"
        );
    }
}
