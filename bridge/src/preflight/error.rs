//! The errors of the start-up checks: each names what is wrong and how to fix it.

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
    #[error(
        "capture.exclude_columns names columns that no captured table has:\n{0}\nthe bridge \
         would publish the column the entry was meant to hide: correct the entry (database.table.\
         column, as the server spells them) or remove it"
    )]
    UnknownExcludedColumns(String),
    #[error(
        "captured tables have no primary key (records could not be told apart):\n{0}\nadd a \
         primary key, list them in capture.exclude_tables, or set capture.on_keyless_table = \
         \"skip\" to leave them out with a warning"
    )]
    NoPrimaryKey(String),
    #[error(
        "foreign keys change rows of captured tables without row events in the binlog (the \
         storage engine applies their cascades and never logs them):\n{keys}\npartners would \
         keep rows the database deleted or changed. Either replace the cascade with statements \
         the application runs itself, or acknowledge it with capture.acknowledged_cascades = \
         [{names}] and re-sync those tables regularly (README \"Foreign keys with cascades\")"
    )]
    CascadingForeignKeys { keys: String, names: String },
    #[error(
        "the checkpoint names binlog file {file}, which the server no longer has (it keeps {oldest} \
         and later: the file was purged). Resuming would silently lose the changes in between. \
         To re-sync: stop the bridge, move the checkpoint file away, set source.start = \"end\", \
         start the bridge, then run an initial sync of every partner so they receive the current \
         state of every record"
    )]
    BinlogPurged { file: String, oldest: String },
    #[error(transparent)]
    Resume(Box<crate::failover::FailoverError>),
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
        "the database `{database}` of the signal table of initial syncs does not exist: create \
         it once with CREATE DATABASE `{database}` (it need not be captured), or set \
         sync.database to an existing one (or turn initial syncs off with [sync] enabled = false)"
    )]
    SignalDatabaseMissing { database: String },
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

impl From<crate::failover::FailoverError> for PreflightError {
    fn from(error: crate::failover::FailoverError) -> Self {
        PreflightError::Resume(Box::new(error))
    }
}

impl PreflightError {
    /// Only an unreachable server is worth waiting for; everything else needs a person.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PreflightError::Unreachable { .. })
    }
}
