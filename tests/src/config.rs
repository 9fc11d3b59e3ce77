//! The bridge configuration file, as a struct with every key, rendered to TOML.
//!
//! ```no_run
//! use system_tests::{bridge_config, shared_amqp_url, unique_name, BridgeProcess, MariaDb};
//!
//! let db = MariaDb::start();
//! let exchange = unique_name("cdc");
//! let toml = bridge_config(db.port(), &shared_amqp_url(), &exchange)
//!     .with(|c| c.source.start = "start".into())
//!     .to_toml();
//! let bridge = BridgeProcess::start(&toml);
//! ```

use std::fmt;

use crate::tls::TlsEntry;

#[derive(Clone, Debug)]
pub struct BridgeConfig {
    pub source: SourceConfig,
    pub capture: CaptureConfig,
    pub dedup: DedupConfig,
    pub broker: BrokerConfig,
    pub checkpoint: CheckpointConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
}

#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// `None` leaves the key out (the bridge then reads env `BRIDGE_SOURCE_PASSWORD`).
    pub password: Option<String>,
    pub server_id: u32,
    pub heartbeat_secs: u64,
    /// Where to begin without a checkpoint: `"end"` or `"start"`, or an inline table written
    /// as is (`{ gtid = "0-1-42" }`).
    pub start: String,
    /// `binlog_headroom_warning_secs`, `min_binlog_retention_secs`,
    /// `binlog_headroom_check_secs`; `None`: left out (the bridge's defaults).
    pub binlog_headroom_warning_secs: Option<u64>,
    pub min_binlog_retention_secs: Option<u64>,
    pub binlog_headroom_check_secs: Option<u64>,
    /// `[source.tls]`; empty: left out (disabled on 127.0.0.1).
    pub tls: TlsEntry,
    /// `"file:pos"` entries of table resets the bridge may pass.
    pub accept_table_resets_at: Vec<String>,
    /// `None`: left out (the bridge's default).
    pub read_ahead_bytes: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub databases: Vec<String>,
    /// `"db.table"` entries; empty = every table of `databases`.
    pub include_tables: Vec<String>,
    pub exclude_tables: Vec<String>,
    /// `"db.table.column"` entries.
    pub exclude_columns: Vec<String>,
    /// `"stop"` (the default) or `"skip"`.
    pub on_keyless_table: String,
    /// `"db.table.constraint"` entries.
    pub acknowledged_cascades: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct DedupConfig {
    pub window_ms: u64,
    pub max_rows: u64,
    pub max_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub url: String,
    pub exchange: String,
    pub confirm_window: u32,
    /// `None`: left out (the bridge's default).
    pub confirm_window_bytes: Option<u64>,
    pub heartbeat_secs: u64,
    pub max_message_bytes: u64,
    /// "stop" or "marker".
    pub on_too_large: String,
    /// `None`: left out (the bridge's default).
    pub refused_publish_timeout_secs: Option<u64>,
    /// `[broker.tls]` (for `amqps://` URLs); empty: left out.
    pub tls: TlsEntry,
}

#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    /// Relative paths are relative to the config file's directory.
    pub path: String,
}

#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// `ip:port` of the HTTP endpoints; empty (the default here): off, so bridges running side
    /// by side never compete for a port. Tests that read them set a [`crate::free_port`].
    pub listen: String,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `"text"` or `"json"`.
    pub format: String,
    pub level: String,
}

impl Default for BridgeConfig {
    /// The documented example values.
    fn default() -> Self {
        BridgeConfig {
            source: SourceConfig {
                host: "127.0.0.1".into(),
                port: 3306,
                user: crate::mariadb::CDC_USER.into(),
                password: Some(crate::mariadb::CDC_PASSWORD.into()),
                server_id: 4242,
                heartbeat_secs: 5,
                start: "end".into(),
                binlog_headroom_warning_secs: None,
                min_binlog_retention_secs: None,
                binlog_headroom_check_secs: None,
                tls: TlsEntry::default(),
                accept_table_resets_at: Vec::new(),
                read_ahead_bytes: None,
            },
            capture: CaptureConfig {
                databases: vec![crate::mariadb::APP_DATABASE.into()],
                include_tables: Vec::new(),
                exclude_tables: Vec::new(),
                exclude_columns: Vec::new(),
                on_keyless_table: "stop".into(),
                acknowledged_cascades: Vec::new(),
            },
            dedup: DedupConfig {
                window_ms: 0,
                max_rows: 10_000,
                max_bytes: 16 * 1024 * 1024,
            },
            broker: BrokerConfig {
                url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                exchange: "cdc.changes".into(),
                confirm_window: 1000,
                confirm_window_bytes: None,
                heartbeat_secs: 10,
                max_message_bytes: 15 * 1024 * 1024,
                on_too_large: "stop".into(),
                refused_publish_timeout_secs: None,
                tls: TlsEntry::default(),
            },
            checkpoint: CheckpointConfig {
                path: "bridge.checkpoint.json".into(),
            },
            log: LogConfig {
                format: "text".into(),
                level: "info".into(),
            },
            metrics: MetricsConfig {
                listen: String::new(),
            },
        }
    }
}

/// The default config pointed at a test's MariaDB port, broker URL and exchange.
pub fn bridge_config(db_port: u16, amqp_url: &str, exchange: &str) -> BridgeConfig {
    let mut config = BridgeConfig::default();
    config.source.port = db_port;
    config.broker.url = amqp_url.to_string();
    config.broker.exchange = exchange.to_string();
    config
}

impl BridgeConfig {
    /// Applies `change` and returns the config, for one-expression overrides.
    pub fn with(mut self, change: impl FnOnce(&mut BridgeConfig)) -> BridgeConfig {
        change(&mut self);
        self
    }

    /// The TOML text of the config file.
    pub fn to_toml(&self) -> String {
        self.to_string()
    }
}

/// A TOML basic string. JSON string escapes are a subset of TOML's, so serde_json does it.
fn s(value: &str) -> String {
    serde_json::to_string(value).expect("strings serialize")
}

fn list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| s(v)).collect();
    format!("[{}]", items.join(", "))
}

impl fmt::Display for BridgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let src = &self.source;
        writeln!(f, "[source]")?;
        writeln!(f, "host = {}", s(&src.host))?;
        writeln!(f, "port = {}", src.port)?;
        writeln!(f, "user = {}", s(&src.user))?;
        if let Some(password) = &src.password {
            writeln!(f, "password = {}", s(password))?;
        }
        writeln!(f, "server_id = {}", src.server_id)?;
        writeln!(f, "heartbeat_secs = {}", src.heartbeat_secs)?;
        if src.start.trim_start().starts_with('{') {
            writeln!(f, "start = {}", src.start)?;
        } else {
            writeln!(f, "start = {}", s(&src.start))?;
        }
        writeln!(
            f,
            "accept_table_resets_at = {}",
            list(&src.accept_table_resets_at)
        )?;
        for (key, value) in [
            (
                "binlog_headroom_warning_secs",
                src.binlog_headroom_warning_secs,
            ),
            ("min_binlog_retention_secs", src.min_binlog_retention_secs),
            ("binlog_headroom_check_secs", src.binlog_headroom_check_secs),
            ("read_ahead_bytes", src.read_ahead_bytes),
        ] {
            if let Some(value) = value {
                writeln!(f, "{key} = {value}")?;
            }
        }
        let cap = &self.capture;
        writeln!(f, "\n[capture]")?;
        writeln!(f, "databases = {}", list(&cap.databases))?;
        writeln!(f, "include_tables = {}", list(&cap.include_tables))?;
        writeln!(f, "exclude_tables = {}", list(&cap.exclude_tables))?;
        writeln!(f, "exclude_columns = {}", list(&cap.exclude_columns))?;
        writeln!(f, "on_keyless_table = {}", s(&cap.on_keyless_table))?;
        writeln!(
            f,
            "acknowledged_cascades = {}",
            list(&cap.acknowledged_cascades)
        )?;
        let d = &self.dedup;
        writeln!(f, "\n[dedup]")?;
        writeln!(f, "window_ms = {}", d.window_ms)?;
        writeln!(f, "max_rows = {}", d.max_rows)?;
        writeln!(f, "max_bytes = {}", d.max_bytes)?;
        let b = &self.broker;
        writeln!(f, "\n[broker]")?;
        writeln!(f, "url = {}", s(&b.url))?;
        writeln!(f, "exchange = {}", s(&b.exchange))?;
        writeln!(f, "confirm_window = {}", b.confirm_window)?;
        if let Some(bytes) = b.confirm_window_bytes {
            writeln!(f, "confirm_window_bytes = {bytes}")?;
        }
        writeln!(f, "heartbeat_secs = {}", b.heartbeat_secs)?;
        writeln!(f, "max_message_bytes = {}", b.max_message_bytes)?;
        writeln!(f, "on_too_large = {}", s(&b.on_too_large))?;
        if let Some(secs) = b.refused_publish_timeout_secs {
            writeln!(f, "refused_publish_timeout_secs = {secs}")?;
        }
        writeln!(f, "\n[checkpoint]")?;
        writeln!(f, "path = {}", s(&self.checkpoint.path))?;
        writeln!(f, "\n[log]")?;
        writeln!(f, "format = {}", s(&self.log.format))?;
        writeln!(f, "level = {}", s(&self.log.level))?;
        writeln!(f, "\n[metrics]")?;
        writeln!(f, "listen = {}", s(&self.metrics.listen))?;
        write!(f, "{}", self.source.tls.section("source.tls"))?;
        write!(f, "{}", self.broker.tls.section("broker.tls"))
    }
}

/// A bridge for the tests of initial syncs: capturing `ocpi`, `source.start` as given, initial syncs on with
/// the signal table where the test's `cdc` user has its grants and small chunks (a sync
/// interleaves with a writer's changes), into the queues of the pusher's `queue_prefix`.
pub fn syncing_bridge_toml(
    db: &crate::mariadb::MariaDb,
    url: &str,
    (exchange, queue_prefix): (&str, &str),
    start: &str,
) -> String {
    let bridge_toml = bridge_config(db.port(), url, exchange)
        .with(|c| {
            c.source.start = start.into();
            c.capture.databases = vec!["ocpi".into()];
        })
        .to_toml();
    format!(
        "{bridge_toml}\n[sync]\ndatabase = \"app\"\nchunk_size = 16\nprogress_secs = 2\n\
         queue_prefix = \"{queue_prefix}\"\n"
    )
}
