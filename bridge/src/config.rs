//! The bridge's TOML configuration: parsed strictly (unknown keys are errors, so a typo never
//! silently falls back to a default) and validated before anything connects.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tls_connect::{TlsConfig, TlsConfigError};

/// Environment variables that override secrets, so they need not sit in the file.
pub const ENV_SOURCE_PASSWORD: &str = "BRIDGE_SOURCE_PASSWORD";
pub const ENV_BROKER_URL: &str = "BRIDGE_BROKER_URL";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    #[error("config file {path}: {source}")]
    Tls {
        path: PathBuf,
        source: TlsConfigError,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    #[serde(default)]
    pub capture: CaptureConfig,
    #[serde(default)]
    pub dedup: DedupConfig,
    #[serde(default)]
    pub broker: BrokerConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[metrics]`: the HTTP endpoints for operators (Prometheus `/metrics`, `/healthz`, `/readyz`,
/// `/status`). Off when the key is absent, so no port is opened unless a configuration asks
/// for one; the shipped `config/bridge.toml` serves on 127.0.0.1:9187.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `ip:port` to listen on; empty: no endpoints.
    #[serde(default)]
    pub listen: String,
}

/// Initial syncs (a new partner gets every existing record): the signal table and chunking.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    #[serde(default = "default_sync_enabled")]
    pub enabled: bool,
    /// Database of the signal table; empty means the first of `capture.databases`.
    #[serde(default)]
    pub database: String,
    #[serde(default = "default_signal_table")]
    pub signal_table: String,
    #[serde(default = "default_chunk_size")]
    pub chunk_size: usize,
    #[serde(default = "default_chunks_in_flight")]
    pub chunks_in_flight: usize,
    /// Bytes per chunk, about: large rows make chunks of fewer rows.
    #[serde(default = "default_chunk_bytes")]
    pub chunk_bytes: usize,
    /// Snapshot rows awaiting the broker's confirm at most (capped at `broker.confirm_window`).
    #[serde(default = "default_snapshot_window")]
    pub snapshot_window: usize,
    #[serde(default = "default_progress_secs")]
    pub progress_secs: u64,
    #[serde(default = "default_signal_retention_secs")]
    pub signal_retention_secs: u64,
    /// Syncs may only target queues whose name starts with this (the pusher's
    /// `broker.queue_prefix`): checked on each request and again on each signal row read back.
    #[serde(default = "default_sync_queue_prefix")]
    pub queue_prefix: String,
    /// Broker users whose sync requests are served (the `user_id` property, which the broker
    /// checks against the publishing connection's user); empty: the user of `broker.url`.
    #[serde(default)]
    pub requesters: Vec<String>,
}

/// Where the bridge starts reading when it has no checkpoint yet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPoint {
    /// The server's current end of binlog: only changes made from now on.
    End,
    /// The oldest binlog the server still has.
    Start,
    /// Just after the given GTID state (`{ gtid = "0-1-42" }`, MySQL `{ gtid = "uuid:1-42" }`):
    /// the transactions it does not hold.
    Gtid(String),
}

/// `file:pos` of a binlog position, as the bridge's messages name one.
pub fn parse_binlog_position(text: &str) -> Option<(String, u64)> {
    let (file, pos) = text.trim().rsplit_once(':')?;
    let pos = pos.parse().ok()?;
    (!file.is_empty()).then(|| (file.to_string(), pos))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_mysql_port")]
    pub port: u16,
    pub user: String,
    #[serde(default)]
    pub password: String,
    #[serde(default = "default_server_id")]
    pub server_id: u32,
    #[serde(default = "default_source_heartbeat")]
    pub heartbeat_secs: u64,
    #[serde(default = "default_start")]
    pub start: StartPoint,
    /// Warn at each headroom measurement while the server may purge the checkpoint's binlog
    /// file within this many seconds; 0: never.
    #[serde(default = "default_headroom_warning")]
    pub binlog_headroom_warning_secs: u64,
    /// Warn at start when the server keeps binlogs for less than this; 0: never.
    #[serde(default = "default_min_binlog_retention")]
    pub min_binlog_retention_secs: u64,
    /// How often the binlog headroom is measured.
    #[serde(default = "default_headroom_check")]
    pub binlog_headroom_check_secs: u64,
    /// `[source.tls]`: one set of TLS options for every connection to the database.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Binlog positions (`file:pos`) of table resets (TRUNCATE, DROP, RENAME... of a captured
    /// table) the operator has seen and lets the bridge pass.
    #[serde(default)]
    pub accept_table_resets_at: Vec<String>,
    /// Bytes of rows the binlog reader may read ahead of the pipeline.
    #[serde(default = "default_read_ahead_bytes")]
    pub read_ahead_bytes: usize,
}

fn default_read_ahead_bytes() -> usize {
    16 * 1024 * 1024
}

/// What the bridge does with a captured table that has no primary key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeylessTablePolicy {
    /// Refuse it at start, stop when one appears while running.
    #[default]
    Stop,
    /// Leave it out with a repeated warning and a metric.
    Skip,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    #[serde(default)]
    pub databases: Vec<String>,
    #[serde(default)]
    pub include_tables: Vec<String>,
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    #[serde(default)]
    pub exclude_columns: Vec<String>,
    #[serde(default)]
    pub on_keyless_table: KeylessTablePolicy,
    /// Foreign keys (`database.table.constraint`) whose cascades into a captured table the
    /// operator knows are not in the binlog.
    #[serde(default)]
    pub acknowledged_cascades: Vec<String>,
    /// Capture the shadow tables of online schema change tools (`_*_gho`, `_*_new`, ...) too.
    #[serde(default)]
    pub include_online_schema_change_tables: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    #[serde(default = "default_broker_url")]
    pub url: String,
    #[serde(default = "default_exchange")]
    pub exchange: String,
    #[serde(default = "default_confirm_window")]
    pub confirm_window: usize,
    /// Body bytes awaiting confirms at most (one message always goes out, however large).
    #[serde(default = "default_confirm_window_bytes")]
    pub confirm_window_bytes: usize,
    #[serde(default = "default_broker_heartbeat")]
    pub heartbeat_secs: u64,
    /// Largest message body published; keep it below the broker's `max_message_size`.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// What a change whose message would be larger than `max_message_bytes` does.
    #[serde(default)]
    pub on_too_large: OnTooLarge,
    /// How long the broker may refuse (nack) the same message before the bridge stops.
    #[serde(default = "default_refused_publish_timeout")]
    pub refused_publish_timeout_secs: u64,
    /// `[broker.tls]`: verification choice, CA file and client certificate of `amqps://` URLs.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// `broker.on_too_large`: a change too large for the broker stops the bridge, or goes out as a
/// small marker the pusher parks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTooLarge {
    #[default]
    Stop,
    Marker,
}

/// RabbitMQ refuses `max_message_size` above 512 MiB.
pub const MAX_MESSAGE_BYTES_CEILING: usize = 512 * 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    #[serde(default = "default_checkpoint_path")]
    pub path: PathBuf,
    #[serde(default = "default_checkpoint_interval")]
    pub interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_mysql_port() -> u16 {
    3306
}
fn default_server_id() -> u32 {
    4242
}
fn default_source_heartbeat() -> u64 {
    5
}
fn default_headroom_warning() -> u64 {
    24 * 3600
}
fn default_min_binlog_retention() -> u64 {
    3 * 24 * 3600
}
fn default_headroom_check() -> u64 {
    60
}
fn default_start() -> StartPoint {
    StartPoint::End
}
fn default_window_ms() -> u64 {
    200
}
fn default_max_rows() -> usize {
    10_000
}
fn default_max_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_broker_url() -> String {
    "amqp://guest:guest@127.0.0.1:5672/%2f".into()
}
fn default_exchange() -> String {
    "cdc.changes".into()
}
fn default_confirm_window() -> usize {
    1000
}
fn default_confirm_window_bytes() -> usize {
    32 * 1024 * 1024
}
fn default_refused_publish_timeout() -> u64 {
    120
}
fn default_broker_heartbeat() -> u64 {
    10
}
/// 15 MiB: below RabbitMQ's default `max_message_size` of 16 MiB, with room for the properties.
fn default_max_message_bytes() -> usize {
    15 * 1024 * 1024
}
fn default_checkpoint_path() -> PathBuf {
    PathBuf::from("bridge.checkpoint.json")
}
fn default_checkpoint_interval() -> u64 {
    500
}
fn default_sync_enabled() -> bool {
    true
}
fn default_signal_table() -> String {
    "cdc_signal".into()
}
fn default_chunk_size() -> usize {
    1024
}
fn default_chunk_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_chunks_in_flight() -> usize {
    4
}
fn default_snapshot_window() -> usize {
    500
}
fn default_progress_secs() -> u64 {
    5
}
fn default_signal_retention_secs() -> u64 {
    3600
}
fn default_sync_queue_prefix() -> String {
    "ocpi.".into()
}
fn default_log_format() -> LogFormat {
    LogFormat::Text
}
fn default_log_level() -> String {
    "info".into()
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            window_ms: default_window_ms(),
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            url: default_broker_url(),
            exchange: default_exchange(),
            confirm_window: default_confirm_window(),
            confirm_window_bytes: default_confirm_window_bytes(),
            heartbeat_secs: default_broker_heartbeat(),
            max_message_bytes: default_max_message_bytes(),
            on_too_large: OnTooLarge::default(),
            refused_publish_timeout_secs: default_refused_publish_timeout(),
            tls: TlsConfig::default(),
        }
    }
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            path: default_checkpoint_path(),
            interval_ms: default_checkpoint_interval(),
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            enabled: default_sync_enabled(),
            database: String::new(),
            signal_table: default_signal_table(),
            chunk_size: default_chunk_size(),
            chunks_in_flight: default_chunks_in_flight(),
            chunk_bytes: default_chunk_bytes(),
            snapshot_window: default_snapshot_window(),
            progress_secs: default_progress_secs(),
            signal_retention_secs: default_signal_retention_secs(),
            queue_prefix: default_sync_queue_prefix(),
            requesters: Vec::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file; secrets come from the environment when set
    /// (and are checked like values from the file), and relative paths (checkpoint, TLS files)
    /// are taken relative to the config file's directory so the bridge does not depend on the
    /// directory it was started from.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse_with_env(&text, path, &|name| std::env::var(name).ok())?;
        if config.checkpoint.path.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            config.checkpoint.path = base.join(&config.checkpoint.path);
        }
        Ok(config)
    }

    /// Parses `text` as if read from `path`, without looking at the environment.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, path, &|_| None)
    }

    /// Parses `text` as if read from `path`; `env` looks up the environment variables that
    /// override secrets ([`ENV_SOURCE_PASSWORD`], [`ENV_BROKER_URL`]).
    pub fn parse_with_env(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if let Some(password) = env(ENV_SOURCE_PASSWORD) {
            config.source.password = password;
        }
        if let Some(url) = env(ENV_BROKER_URL).filter(|u| !u.trim().is_empty()) {
            config.broker.url = url;
        }
        config.validate(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let tls_error = |source| ConfigError::Tls {
            path: path.to_owned(),
            source,
        };
        let host = config.source.host.clone();
        config
            .source
            .tls
            .resolve_database("source.tls", &host, base)
            .map_err(tls_error)?;
        let amqps = tls_connect::broker::check_url(&config.broker.url).unwrap_or(false);
        config
            .broker
            .tls
            .resolve_broker("broker.tls", amqps, base)
            .map_err(tls_error)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        if self.source.user.is_empty() {
            return Err(invalid(
                "source.user",
                "must name the replication user (it needs REPLICATION SLAVE, REPLICATION CLIENT \
                 and SELECT)"
                    .into(),
            ));
        }
        if self.source.server_id == 0 {
            return Err(invalid(
                "source.server_id",
                "must be a non-zero id that no other server or replica uses".into(),
            ));
        }
        if self.source.heartbeat_secs == 0 || self.source.heartbeat_secs > 4_294_967 {
            return Err(invalid(
                "source.heartbeat_secs",
                "must be between 1 and 4294967 seconds".into(),
            ));
        }
        if !(1..=86_400).contains(&self.source.binlog_headroom_check_secs) {
            return Err(invalid(
                "source.binlog_headroom_check_secs",
                "must be between 1 and 86400 seconds (60 is the default)".into(),
            ));
        }
        if let StartPoint::Gtid(text) = &self.source.start {
            let mariadb = crate::source::gtid::GtidState::parse_mariadb(text);
            let mysql = crate::source::gtid::GtidState::parse_mysql(text);
            if text.trim().is_empty() || (mariadb.is_err() && mysql.is_err()) {
                return Err(invalid(
                    "source.start",
                    format!(
                        "{{ gtid = {text:?} }} is not a GTID state: give a MariaDB GTID list \
                         (\"0-1-42,1-2-7\", as in @@gtid_binlog_pos) or a MySQL GTID set \
                         (\"uuid:1-42\", as in @@gtid_executed)"
                    ),
                ));
            }
        }
        if self.capture.databases.is_empty() {
            return Err(invalid(
                "capture.databases",
                "must list at least one database to capture".into(),
            ));
        }
        for (key, entries, parts) in [
            ("capture.include_tables", &self.capture.include_tables, 2),
            ("capture.exclude_tables", &self.capture.exclude_tables, 2),
            ("capture.exclude_columns", &self.capture.exclude_columns, 3),
            (
                "capture.acknowledged_cascades",
                &self.capture.acknowledged_cascades,
                3,
            ),
        ] {
            for entry in entries {
                let pieces: Vec<&str> = entry.split('.').collect();
                if pieces.len() != parts || pieces.iter().any(|p| p.is_empty()) {
                    let shape = match key {
                        "capture.acknowledged_cascades" => "database.table.constraint",
                        _ if parts == 2 => "database.table",
                        _ => "database.table.column",
                    };
                    return Err(invalid(
                        key,
                        format!("entry {entry:?} must have the form {shape}"),
                    ));
                }
            }
        }
        for entry in &self.source.accept_table_resets_at {
            if parse_binlog_position(entry).is_none() {
                return Err(invalid(
                    "source.accept_table_resets_at",
                    format!(
                        "entry {entry:?} must be a binlog position `file:pos` as the bridge's \
                         stop message names it"
                    ),
                ));
            }
        }
        if self.dedup.max_rows == 0 {
            return Err(invalid("dedup.max_rows", "must be at least 1".into()));
        }
        if self.dedup.max_bytes < 1024 {
            return Err(invalid("dedup.max_bytes", "must be at least 1024".into()));
        }
        if let Err(message) = tls_connect::broker::check_url(&self.broker.url) {
            return Err(invalid(
                "broker.url",
                format!(
                    "{} {message} (set in the file or in {ENV_BROKER_URL})",
                    redact_url(&self.broker.url)
                ),
            ));
        }
        if self.broker.exchange.is_empty() {
            return Err(invalid("broker.exchange", "must not be empty".into()));
        }
        if !(1..=65_535).contains(&self.broker.confirm_window) {
            return Err(invalid(
                "broker.confirm_window",
                "must be between 1 and 65535 (100 or more for speed)".into(),
            ));
        }
        if self.source.read_ahead_bytes < 65_536 {
            return Err(invalid(
                "source.read_ahead_bytes",
                "must be at least 65536 (the default, 16777216, lets 16 MiB of rows wait for the \
                 pipeline)"
                    .into(),
            ));
        }
        if self.broker.confirm_window_bytes < 65_536 {
            return Err(invalid(
                "broker.confirm_window_bytes",
                "must be at least 65536 (the default, 33554432, keeps 32 MiB awaiting confirms)"
                    .into(),
            ));
        }
        if self.broker.refused_publish_timeout_secs == 0 {
            return Err(invalid(
                "broker.refused_publish_timeout_secs",
                "must be at least 1 (the default, 120, lets a full queue drain)".into(),
            ));
        }
        if self.broker.heartbeat_secs == 0 {
            return Err(invalid(
                "broker.heartbeat_secs",
                "must be at least 1".into(),
            ));
        }
        if !(4096..=MAX_MESSAGE_BYTES_CEILING).contains(&self.broker.max_message_bytes) {
            return Err(invalid(
                "broker.max_message_bytes",
                format!(
                    "must be between 4096 and {MAX_MESSAGE_BYTES_CEILING} (RabbitMQ's ceiling), \
                     and below max_message_size in rabbitmq.conf"
                ),
            ));
        }
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        };
        if !self.sync.database.is_empty() && !name_ok(&self.sync.database) {
            return Err(invalid(
                "sync.database",
                "must be a plain database name (letters, digits, _ or $), or empty for the first \
                 of capture.databases"
                    .into(),
            ));
        }
        if !name_ok(&self.sync.signal_table) {
            return Err(invalid(
                "sync.signal_table",
                "must be a plain table name (letters, digits, _ or $)".into(),
            ));
        }
        if self.sync.chunk_bytes < 65_536 {
            return Err(invalid(
                "sync.chunk_bytes",
                "must be at least 65536 (the default, 4194304, keeps a chunk near 4 MiB)".into(),
            ));
        }
        if !(1..=100_000).contains(&self.sync.chunk_size) {
            return Err(invalid(
                "sync.chunk_size",
                "must be between 1 and 100000 (1024 is a good default)".into(),
            ));
        }
        if !(1..=16).contains(&self.sync.chunks_in_flight) {
            return Err(invalid(
                "sync.chunks_in_flight",
                "must be between 1 and 16".into(),
            ));
        }
        if self.sync.snapshot_window == 0 {
            return Err(invalid(
                "sync.snapshot_window",
                "must be at least 1 (500 is a good default)".into(),
            ));
        }
        if self.sync.progress_secs == 0 {
            return Err(invalid("sync.progress_secs", "must be at least 1".into()));
        }
        if self.sync.signal_retention_secs < 60 {
            return Err(invalid(
                "sync.signal_retention_secs",
                "must be at least 60".into(),
            ));
        }
        if self.sync.queue_prefix.trim().is_empty() {
            return Err(invalid(
                "sync.queue_prefix",
                "must not be empty: set it to the pusher's broker.queue_prefix (\"ocpi.\" by \
                 default), so that syncs can only target partner queues"
                    .into(),
            ));
        }
        if self.sync.requesters.iter().any(|u| u.trim().is_empty()) {
            return Err(invalid(
                "sync.requesters",
                "must not list an empty user name (an empty list means the user of broker.url)"
                    .into(),
            ));
        }
        if self.log.level.trim().is_empty() {
            return Err(invalid("log.level", "must not be empty".into()));
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "metrics.listen",
                format!(
                    "{:?} is not an address: use an IP address and port such as \
                     \"127.0.0.1:9187\", or \"\" to turn the HTTP endpoints off",
                    self.metrics.listen
                ),
            ));
        }
        Ok(())
    }

    /// The signal table (database, table) when initial syncs are enabled.
    pub fn signal_table(&self) -> Option<(String, String)> {
        self.sync.enabled.then(|| {
            (
                self.signal_database().to_string(),
                self.sync.signal_table.clone(),
            )
        })
    }

    /// The signal table's database: `sync.database`, or the first captured database.
    pub fn signal_database(&self) -> &str {
        if self.sync.database.is_empty() {
            self.capture
                .databases
                .first()
                .map(String::as_str)
                .unwrap_or("")
        } else {
            &self.sync.database
        }
    }

    /// The broker users whose sync requests are served: `sync.requesters`, or the user
    /// `broker.url` logs in as.
    pub fn sync_requesters(&self) -> Vec<String> {
        if self.sync.requesters.is_empty() {
            tls_connect::broker::login_user(&self.broker.url)
                .into_iter()
                .collect()
        } else {
            self.sync.requesters.clone()
        }
    }

    pub fn dedup_window(&self) -> Duration {
        Duration::from_millis(self.dedup.window_ms)
    }
}

/// The broker URL with its password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[source]
user = "cdc"
[capture]
databases = ["app"]
"#;

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let config = Config::parse(MINIMAL, Path::new("bridge.toml")).unwrap();
        assert_eq!(config.source.port, 3306);
        assert_eq!(config.dedup.window_ms, 200);
        assert_eq!(config.broker.exchange, "cdc.changes");
        assert_eq!(config.broker.confirm_window, 1000);
        assert_eq!(config.source.start, StartPoint::End);
    }

    #[test]
    fn start_accepts_a_gtid_state_and_refuses_one_that_is_not() {
        let with_start =
            |start: &str| MINIMAL.replace("[source]\n", &format!("[source]\nstart = {start}\n"));
        let config =
            Config::parse(&with_start(r#"{ gtid = "0-1-42" }"#), Path::new("b.toml")).unwrap();
        assert_eq!(config.source.start, StartPoint::Gtid("0-1-42".into()));
        let config = Config::parse(&with_start(r#""start""#), Path::new("b.toml")).unwrap();
        assert_eq!(config.source.start, StartPoint::Start);
        let err = Config::parse(
            &with_start(r#"{ gtid = "yesterday" }"#),
            Path::new("b.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("source.start") && err.contains("@@gtid_binlog_pos"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_file_and_key() {
        let text = format!("{MINIMAL}\n[dedup]\nwindow = 5\n");
        let err = Config::parse(&text, Path::new("conf/bridge.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("conf/bridge.toml"), "{err}");
        assert!(err.contains("window"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let text = MINIMAL.replace("[\"app\"]", "[]");
        let err = Config::parse(&text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("capture.databases"), "{err}");

        let text = format!("{MINIMAL}\nexclude_columns = [\"app.t\"]\n");
        let err = Config::parse(&text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("capture.exclude_columns"), "{err}");
    }

    #[test]
    fn sync_requests_default_to_partner_queues_and_the_bridges_own_broker_user() {
        let config = Config::parse(MINIMAL, Path::new("b.toml")).unwrap();
        assert_eq!(config.sync.queue_prefix, "ocpi.");
        assert_eq!(config.sync_requesters(), vec!["guest".to_string()]);
        let text =
            format!("{MINIMAL}[broker]\nurl = \"amqp://cdc%2Dbridge:pw@127.0.0.1:5672/%2f\"\n");
        let config = Config::parse(&text, Path::new("b.toml")).unwrap();
        assert_eq!(config.sync_requesters(), vec!["cdc-bridge".to_string()]);
        let text = format!("{MINIMAL}[sync]\nrequesters = [\"ops\", \"pusher\"]\n");
        let config = Config::parse(&text, Path::new("b.toml")).unwrap();
        assert_eq!(config.sync_requesters(), vec!["ops", "pusher"]);
        for (bad, key) in [
            ("queue_prefix = \"\"", "sync.queue_prefix"),
            ("requesters = [\"\"]", "sync.requesters"),
        ] {
            let text = format!("{MINIMAL}[sync]\n{bad}\n");
            let err = Config::parse(&text, Path::new("b.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn the_message_size_limit_and_its_policy_are_read_and_checked() {
        let config = Config::parse(MINIMAL, Path::new("b.toml")).unwrap();
        assert_eq!(config.broker.max_message_bytes, 15 * 1024 * 1024);
        assert_eq!(config.broker.on_too_large, OnTooLarge::Stop);
        let text =
            format!("{MINIMAL}[broker]\nmax_message_bytes = 65536\non_too_large = \"marker\"\n");
        let config = Config::parse(&text, Path::new("b.toml")).unwrap();
        assert_eq!(config.broker.max_message_bytes, 65_536);
        assert_eq!(config.broker.on_too_large, OnTooLarge::Marker);
        for bad in ["100", "1073741824"] {
            let text = format!("{MINIMAL}[broker]\nmax_message_bytes = {bad}\n");
            let err = Config::parse(&text, Path::new("b.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("broker.max_message_bytes") && err.contains("max_message_size"),
                "{err}"
            );
        }
        let text = format!("{MINIMAL}[broker]\non_too_large = \"skip\"\n");
        let err = Config::parse(&text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("on_too_large"), "{err}");
    }

    #[test]
    fn wrong_types_are_reported_with_their_key() {
        let text = MINIMAL.replace("user = \"cdc\"", "user = \"cdc\"\nport = \"x\"");
        let err = Config::parse(&text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn shipped_example_config_is_valid_and_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/bridge.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let shipped = Config::parse(&text, &path).unwrap();
        let minimal = Config::parse(MINIMAL, Path::new("b.toml")).unwrap();
        assert_eq!(
            format!("{:?}", shipped.dedup),
            format!("{:?}", minimal.dedup)
        );
        assert_eq!(
            format!("{:?}", shipped.broker),
            format!("{:?}", minimal.broker)
        );
        assert_eq!(
            format!("{:?}", shipped.checkpoint),
            format!("{:?}", minimal.checkpoint)
        );
        assert_eq!(shipped.source.server_id, minimal.source.server_id);
        assert_eq!(shipped.source.heartbeat_secs, minimal.source.heartbeat_secs);
        assert_eq!(
            (
                shipped.source.binlog_headroom_warning_secs,
                shipped.source.min_binlog_retention_secs,
                shipped.source.binlog_headroom_check_secs
            ),
            (86_400, 259_200, 60)
        );
        assert_eq!(
            (
                minimal.source.binlog_headroom_warning_secs,
                minimal.source.min_binlog_retention_secs,
                minimal.source.binlog_headroom_check_secs
            ),
            (86_400, 259_200, 60)
        );
        assert_eq!(format!("{:?}", shipped.sync), format!("{:?}", minimal.sync));
        assert_eq!(minimal.signal_database(), "app");
    }

    #[test]
    fn metrics_are_off_unless_configured_and_the_address_is_checked() {
        let minimal = Config::parse(MINIMAL, Path::new("b.toml")).unwrap();
        assert_eq!(minimal.metrics.listen, "");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/bridge.toml");
        let shipped = Config::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        assert_eq!(shipped.metrics.listen, "127.0.0.1:9187");
        let text = format!("{MINIMAL}\n[metrics]\nlisten = \"localhost\"\n");
        let err = Config::parse(&text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.listen"), "{err}");
    }

    #[test]
    fn a_broker_url_from_the_environment_is_checked_like_one_in_the_file() {
        let env = |name: &str| (name == ENV_BROKER_URL).then(|| "rabbit:5672".to_string());
        let err = Config::parse_with_env(MINIMAL, Path::new("b.toml"), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("broker.url"), "{err}");
        assert!(err.contains(ENV_BROKER_URL), "{err}");
        let env = |name: &str| {
            (name == ENV_BROKER_URL).then(|| "amqps://u:p@broker.example.com/%2f".to_string())
        };
        let config = Config::parse_with_env(MINIMAL, Path::new("b.toml"), &env).unwrap();
        assert_eq!(
            config.broker.tls.mode(),
            tls_connect::TlsMode::VerifyIdentity
        );
    }

    #[test]
    fn tls_defaults_to_verify_identity_except_for_a_loopback_database() {
        let local = Config::parse(MINIMAL, Path::new("b.toml")).unwrap();
        assert_eq!(local.source.tls.mode(), tls_connect::TlsMode::Disabled);
        assert_eq!(local.broker.tls.mode(), tls_connect::TlsMode::Disabled);
        let remote = MINIMAL.replace(
            "user = \"cdc\"",
            "user = \"cdc\"\nhost = \"db.example.com\"",
        );
        let remote = Config::parse(&remote, Path::new("b.toml")).unwrap();
        assert_eq!(
            remote.source.tls.mode(),
            tls_connect::TlsMode::VerifyIdentity
        );
        let text = format!("{MINIMAL}\n[source.tls]\nca_file = \"ca.pem\"\n");
        let err = Config::parse(&text, Path::new("conf/b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("source.tls.ca_file"), "{err}");
        let text = format!("{MINIMAL}\n[source.tls]\nmode = \"verify_ca\"\nca_file = \"ca.pem\"\n");
        let err = Config::parse(&text, Path::new("conf/b.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("conf/ca.pem"),
            "relative to the config file: {err}"
        );
        let text = format!("{MINIMAL}\n[broker.tls]\nmode = \"verify_ca\"\n");
        let err = Config::parse(&text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("broker.tls.mode"), "{err}");
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://host/"), "amqp://host/");
    }
}
