//! The pusher's TOML configuration (`config/pusher.toml` documents every key): the broker, this
//! pusher's identity and state, and one `[[partner]]` per OCPI partner. Parsed strictly (unknown
//! keys are errors) and validated before anything connects; tokens come from the environment so
//! they never sit in the file.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tls_connect::TlsConfig;

use crate::mapping::{self, MappingConfig, Module, SourceTimeZone, TableMapping};
use crate::ocpi::{ClientConfig, OcpiVersion, TokenEncoding};
use crate::senders::Senders;
pub use crate::source_db::DatabaseConfig;

/// Overrides `broker.url`, so a broker password need not sit in the file.
pub const ENV_BROKER_URL: &str = "PUSHER_BROKER_URL";
/// Overrides `database.password`.
pub const ENV_DATABASE_PASSWORD: &str = "PUSHER_DATABASE_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("config file {path}: partner `{partner}`: mapping: {source}")]
    Mapping {
        path: PathBuf,
        partner: String,
        source: Box<mapping::ConfigError>,
    },
}

/// The whole configuration, validated; partners carry their loaded mapping and token.
#[derive(Debug, Clone)]
pub struct Config {
    pub broker: BrokerConfig,
    pub pusher: PusherSettings,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub bridge: BridgeLink,
    /// `[database]`: where composite objects are read; `None` when the section is absent (then
    /// no partner's mapping may have `[[table.children]]`).
    pub database: Option<DatabaseConfig>,
    /// `[source] time_zone`: the zone DATETIME values are written in (every partner's mapping
    /// reads them so). With `"server"`, UTC until [`Config::set_source_time_zone`] applies the
    /// zone read from the server.
    pub source_time_zone: SourceTimeZone,
    /// `[source] time_zone = "server"`: the zone is the source server's, read through
    /// `[database]` at start ([`crate::source_time_zone`]).
    pub source_time_zone_from_server: bool,
    pub partners: Vec<Arc<PartnerConfig>>,
}

/// `[metrics]`: the HTTP endpoints for operators (Prometheus `/metrics`, `/healthz`,
/// `/readyz`). Off when the key is absent, so no port is opened unless a configuration asks
/// for one (several pushers on one host need one address each); the shipped
/// `config/pusher.toml` serves on 127.0.0.1:9188.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `ip:port` to listen on; empty: no endpoints.
    #[serde(default)]
    pub listen: String,
}

/// `[bridge]`: where `pusher status` reads the bridge's part (position, lag, initial syncs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeLink {
    #[serde(default = "default_bridge_status_url")]
    pub status_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    #[serde(default = "default_broker_url")]
    pub url: String,
    #[serde(default = "default_exchange")]
    pub exchange: String,
    #[serde(default = "default_queue_prefix")]
    pub queue_prefix: String,
    #[serde(default = "default_delivery_limit")]
    pub delivery_limit: u32,
    #[serde(default = "default_presence_exchange")]
    pub presence_exchange: String,
    /// Broker users whose change messages are pushed (the bridge's); empty: the pusher's own.
    #[serde(default)]
    pub bridge_users: Vec<String>,
    /// Broker users whose presence announcements and replays count (the pushers'); the own
    /// user always does.
    #[serde(default)]
    pub pusher_users: Vec<String>,
    /// Resolved from the two above and the user `url` logs in as.
    #[serde(skip)]
    pub senders: Arc<Senders>,
    /// `[broker.tls]`: verification choice, CA file and client certificate of `amqps://` URLs.
    #[serde(default)]
    pub tls: TlsConfig,
    /// The management HTTP API (`http://host:15672`), for the backlog bound in bytes.
    #[serde(default)]
    pub management_url: Option<String>,
    /// Resolved from `management_url` and `url`.
    #[serde(skip)]
    pub management: Option<crate::management::ManagementApi>,
}

impl BrokerConfig {
    /// Opens a connection to the broker with `url` and `[broker.tls]`.
    pub async fn connect(
        &self,
        properties: lapin::ConnectionProperties,
    ) -> lapin::Result<lapin::Connection> {
        tls_connect::broker::connect(&self.url, properties, &self.tls).await
    }

    /// What a failed [`BrokerConfig::connect`] means and what to check.
    pub fn explain(&self, error: &lapin::Error) -> String {
        tls_connect::broker::problem(error, &self.tls, &self.url).unwrap_or_else(|| {
            format!(
                "cannot connect to the broker at {}: {error}; check broker.url / {ENV_BROKER_URL}",
                redact_url(&self.url)
            )
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PusherSettings {
    /// This pusher's name among the running pushers; empty: host name and process id.
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_presence_interval_ms")]
    pub presence_interval_ms: u64,
    #[serde(default = "default_presence_expiry_ms")]
    pub presence_expiry_ms: u64,
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    #[serde(default = "default_cdr_ledger_days")]
    pub cdr_ledger_days: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// One partner, ready to use: mapping loaded, token read from the environment.
#[derive(Clone)]
pub struct PartnerConfig {
    pub id: String,
    pub version: OcpiVersion,
    pub versions_url: String,
    /// Endpoints at `http://` are used behind an `https://` versions URL (the token then
    /// travels in plain text); refused otherwise.
    pub allow_http_endpoints: bool,
    /// Name of the environment variable the token came from (for messages; never the token).
    pub token_env: String,
    pub token: String,
    pub token_encoding: TokenEncoding,
    pub our_country_code: String,
    pub our_party_id: String,
    pub country_code: String,
    pub party_id: String,
    pub mapping: Arc<MappingConfig>,
    /// Qualified table names pushed to this partner (a subset of the mapping's tables).
    pub tables: HashSet<String>,
    /// The modules of those tables: each must be offered by the partner.
    pub modules: Vec<Module>,
    pub concurrency: usize,
    pub prefetch: u16,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub discovery_refresh: Duration,
    pub retry: RetryPolicy,
    /// When the partner's backlog is too large and it is cut off (see `backlog`).
    pub backlog: BacklogPolicy,
    /// A sync's CDRs older than what the CDR ledger remembers (see [`OldCdrsInSync`]).
    pub old_cdrs_in_sync: OldCdrsInSync,
    /// Queue the bridge's exchange fills for this partner.
    pub queue: String,
    /// Queue of what this partner permanently refused, or what could not be sent.
    pub parking_queue: String,
}

impl fmt::Debug for PartnerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerConfig")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("versions_url", &self.versions_url)
            .field("token", &"***")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl PartnerConfig {
    /// The mapping of a table when this partner receives it.
    pub fn table(&self, database: &str, table: &str) -> Option<&TableMapping> {
        let mapping = self.mapping.get(database, table)?;
        self.tables
            .contains(&mapping.qualified_name())
            .then_some(mapping)
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            version: self.version,
            token: self.token.clone(),
            token_encoding: self.token_encoding,
            from_country_code: self.our_country_code.clone(),
            from_party_id: self.our_party_id.clone(),
            to_country_code: self.country_code.clone(),
            to_party_id: self.party_id.clone(),
            timeout: self.request_timeout,
            connect_timeout: self.connect_timeout,
            idle_connections: self.concurrency,
        }
    }
}

/// How failures are retried and when a partner counts as down.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// No success and only transient failures for this long: stop consuming, probe.
    pub down_after: Duration,
    pub probe_interval: Duration,
    pub max_probe_interval: Duration,
    /// A delivery held unacked this long goes back to the queue (channel recycled) before the
    /// broker's consumer timeout closes the channel itself.
    pub max_hold: Duration,
}

/// `[source] time_zone` that means: read it from the source server.
pub const TIME_ZONE_FROM_SERVER: &str = "server";

/// `[source]`: what the pusher must know of the database the bridge captures.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(default)]
    time_zone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    broker: Option<BrokerConfig>,
    #[serde(default)]
    pusher: Option<PusherSettings>,
    #[serde(default)]
    log: Option<LogConfig>,
    #[serde(default)]
    metrics: Option<MetricsConfig>,
    #[serde(default)]
    bridge: Option<BridgeLink>,
    #[serde(default)]
    database: Option<RawDatabase>,
    #[serde(default)]
    source: Option<RawSource>,
    #[serde(default, rename = "partner")]
    partners: Vec<RawPartner>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    #[serde(default = "default_database_host")]
    host: String,
    #[serde(default = "default_database_port")]
    port: u16,
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default = "default_database_pool_size")]
    pool_size: usize,
    #[serde(default = "default_database_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    replica: bool,
    #[serde(default)]
    tls: TlsConfig,
}

impl fmt::Debug for RawDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawDatabase")
            .field("host", &self.host)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn default_database_host() -> String {
    "127.0.0.1".into()
}
fn default_database_port() -> u16 {
    3306
}
fn default_database_pool_size() -> usize {
    8
}
fn default_database_timeout_ms() -> u64 {
    5000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    id: String,
    ocpi_version: String,
    versions_url: String,
    #[serde(default)]
    allow_http_endpoints: bool,
    token_env: String,
    #[serde(default = "default_token_encoding")]
    token_encoding: String,
    our_country_code: String,
    our_party_id: String,
    country_code: String,
    party_id: String,
    mapping: PathBuf,
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default)]
    modules: Vec<Module>,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_prefetch")]
    prefetch: u16,
    #[serde(default = "default_request_timeout_ms")]
    request_timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    connect_timeout_ms: u64,
    #[serde(default = "default_discovery_refresh_secs")]
    discovery_refresh_secs: u64,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default = "default_backlog_limit")]
    backlog_limit: u64,
    #[serde(default = "default_backlog_limit_bytes")]
    backlog_limit_bytes: u64,
    #[serde(default = "default_true")]
    auto_resync: bool,
    #[serde(default)]
    old_cdrs_in_sync: OldCdrsInSync,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default = "default_initial_backoff_ms")]
    initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    max_backoff_ms: u64,
    #[serde(default = "default_down_after_secs")]
    down_after_secs: u64,
    #[serde(default = "default_probe_interval_secs")]
    probe_interval_secs: u64,
    #[serde(default = "default_max_probe_interval_secs")]
    max_probe_interval_secs: u64,
    #[serde(default = "default_max_hold_secs")]
    max_hold_secs: u64,
}

impl Default for RawRetry {
    fn default() -> Self {
        RawRetry {
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            down_after_secs: default_down_after_secs(),
            probe_interval_secs: default_probe_interval_secs(),
            max_probe_interval_secs: default_max_probe_interval_secs(),
            max_hold_secs: default_max_hold_secs(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_backlog_limit() -> u64 {
    1_000_000
}
fn default_backlog_limit_bytes() -> u64 {
    1 << 30
}

/// What a sync does with a CDR the partner's CDR ledger cannot vouch for: one older than the
/// newest entry the ledger dropped for its age (`cdr_ledger_days`), which the partner may have
/// been sent before. CDRs the ledger can tell about are never affected: delivered ones are
/// never POSTed again, unknown recent ones are POSTed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OldCdrsInSync {
    /// Acknowledge it without a POST (logged, `cdc_pusher_cdrs_not_resent_total`).
    #[default]
    Skip,
    /// Park it with that reason, for a person to check the partner and replay it.
    Park,
}

/// One partner's backlog bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogPolicy {
    /// Messages ready in the partner's queue at which it is cut off; 0: never.
    pub limit: u64,
    /// Bytes ready in the partner's queue at which it is cut off (read from the management
    /// API, so only with `broker.management_url`); 0: never.
    pub limit_bytes: u64,
    /// Once a cut-off partner has drained its queue, bind it again and ask the bridge for its
    /// re-sync (otherwise an operator runs `pusher sync`).
    pub auto_resync: bool,
}

fn default_broker_url() -> String {
    "amqp://guest:guest@127.0.0.1:5672/%2f".into()
}
fn default_exchange() -> String {
    "cdc.changes".into()
}
fn default_queue_prefix() -> String {
    "ocpi.".into()
}
fn default_delivery_limit() -> u32 {
    50
}
fn default_presence_exchange() -> String {
    "cdc.pushers".into()
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("pusher-state")
}
fn default_presence_interval_ms() -> u64 {
    1000
}
fn default_presence_expiry_ms() -> u64 {
    5000
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}
fn default_cdr_ledger_days() -> u64 {
    30
}
fn default_bridge_status_url() -> String {
    "http://127.0.0.1:9187/status".into()
}
fn default_log_format() -> LogFormat {
    LogFormat::Text
}
fn default_log_level() -> String {
    "info".into()
}
fn default_token_encoding() -> String {
    "base64".into()
}
fn default_concurrency() -> usize {
    16
}
fn default_prefetch() -> u16 {
    500
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_connect_timeout_ms() -> u64 {
    3_000
}
fn default_discovery_refresh_secs() -> u64 {
    3600
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    30_000
}
fn default_down_after_secs() -> u64 {
    120
}
fn default_probe_interval_secs() -> u64 {
    10
}
fn default_max_probe_interval_secs() -> u64 {
    300
}
fn default_max_hold_secs() -> u64 {
    1200
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            url: default_broker_url(),
            exchange: default_exchange(),
            queue_prefix: default_queue_prefix(),
            delivery_limit: default_delivery_limit(),
            presence_exchange: default_presence_exchange(),
            bridge_users: Vec::new(),
            pusher_users: Vec::new(),
            senders: Arc::default(),
            tls: TlsConfig::default(),
            management_url: None,
            management: None,
        }
    }
}

impl Default for PusherSettings {
    fn default() -> Self {
        PusherSettings {
            name: String::new(),
            state_dir: default_state_dir(),
            presence_interval_ms: default_presence_interval_ms(),
            presence_expiry_ms: default_presence_expiry_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            cdr_ledger_days: default_cdr_ledger_days(),
        }
    }
}

impl Default for BridgeLink {
    fn default() -> Self {
        BridgeLink {
            status_url: default_bridge_status_url(),
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

/// The broker closes a channel whose delivery stayed unacked for 30 minutes (its default
/// `consumer_timeout`); `max_hold_secs` must stay clearly below it.
const BROKER_CONSUMER_TIMEOUT_SECS: u64 = 30 * 60;

impl Config {
    /// Reads, parses and validates the file; relative paths in it are relative to its directory.
    /// Tokens are read from the environment variables the partners name.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] for commands that only look (`partners`, `status`): they call no
    /// partner, so a token variable that is not set is no error there. Everything else is
    /// checked as usual.
    pub fn load_for_inspection(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, &|name| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| (name != ENV_BROKER_URL).then(|| "unused: no call is made".into()))
        })
    }

    /// Parses `text` as if read from `path`; `env` looks up environment variables.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };

        let mut broker = raw.broker.unwrap_or_default();
        if let Some(url) = env(ENV_BROKER_URL).filter(|u| !u.trim().is_empty()) {
            broker.url = url;
        }
        let amqps = tls_connect::broker::check_url(&broker.url).map_err(|message| {
            invalid(
                "broker.url".into(),
                format!(
                    "{:?} {message} (set in the file or in {ENV_BROKER_URL})",
                    redact_url(&broker.url)
                ),
            )
        })?;
        for (key, users) in [
            ("broker.bridge_users", &broker.bridge_users),
            ("broker.pusher_users", &broker.pusher_users),
        ] {
            if users.iter().any(|u| u.trim().is_empty()) {
                return Err(invalid(
                    key.into(),
                    "holds an empty name: list broker user names, as in [\"cdc-bridge\"]".into(),
                ));
            }
        }
        // check_url accepted it, so it parses; None is a certificate login.
        let Some(own) = tls_connect::broker::login_user(&broker.url) else {
            return Err(invalid(
                "broker.url".into(),
                "logs in with a certificate (auth_mechanism=external): the pusher tells the \
                 bridge's messages from anyone else's by the broker user that published them \
                 (README \"Broker users\"), which it cannot know for a certificate login; log \
                 in with a user name and password"
                    .into(),
            ));
        };
        broker.senders = Arc::new(Senders::new(
            &own,
            &broker.bridge_users,
            &broker.pusher_users,
        ));
        broker.management = match broker.management_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(
                crate::management::ManagementApi::new(url, &broker.url)
                    .map_err(|message| invalid("broker.management_url".into(), message))?,
            ),
        };
        let tls_invalid = |e: tls_connect::TlsConfigError| invalid(e.key, e.message);
        broker
            .tls
            .resolve_broker("broker.tls", amqps, base)
            .map_err(tls_invalid)?;
        for (key, value) in [
            ("broker.exchange", &broker.exchange),
            ("broker.presence_exchange", &broker.presence_exchange),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key.into(), "must not be empty".into()));
            }
        }
        if broker.delivery_limit == 0 {
            return Err(invalid(
                "broker.delivery_limit".into(),
                "must be at least 1 (how many times a message may be handed out before it is parked)"
                    .into(),
            ));
        }

        let mut pusher = raw.pusher.unwrap_or_default();
        if pusher.state_dir.is_relative() {
            pusher.state_dir = base.join(&pusher.state_dir);
        }
        if pusher.presence_interval_ms == 0
            || pusher.presence_expiry_ms < 2 * pusher.presence_interval_ms
        {
            return Err(invalid(
                "pusher.presence_expiry_ms".into(),
                "must be at least twice pusher.presence_interval_ms (and the interval above 0)"
                    .into(),
            ));
        }
        let log = raw.log.unwrap_or_default();
        let metrics = raw.metrics.unwrap_or_default();
        if !metrics.listen.is_empty() && metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "metrics.listen".into(),
                format!(
                    "{:?} is not an address: use an IP address and port such as \
                     \"127.0.0.1:9188\", or \"\" to turn the HTTP endpoints off",
                    metrics.listen
                ),
            ));
        }
        let bridge = raw.bridge.unwrap_or_default();
        if !(bridge.status_url.starts_with("http://") || bridge.status_url.starts_with("https://"))
        {
            return Err(invalid(
                "bridge.status_url".into(),
                format!(
                    "{:?} is not an http(s) URL: use the bridge's [metrics] listen address, as \
                     in \"http://127.0.0.1:9187/status\"",
                    bridge.status_url
                ),
            ));
        }
        let zone_setting = raw.source.unwrap_or_default().time_zone;
        let source_time_zone_from_server = zone_setting
            .as_deref()
            .is_some_and(|z| z.trim().eq_ignore_ascii_case(TIME_ZONE_FROM_SERVER));
        let source_time_zone = match zone_setting {
            None => SourceTimeZone::utc(),
            Some(_) if source_time_zone_from_server => {
                if raw.database.is_none() {
                    return Err(invalid(
                        "source.time_zone".into(),
                        "\"server\" reads the zone from the source database, and there is no \
                         [database] section: add one (a user with no grants is enough), or write \
                         the zone, such as \"Europe/Amsterdam\""
                            .into(),
                    ));
                }
                SourceTimeZone::utc()
            }
            Some(text) => SourceTimeZone::parse(&text).map_err(|problem| {
                invalid(
                    "source.time_zone".into(),
                    format!("{problem}, or \"server\" to read it from the source database"),
                )
            })?,
        };

        if raw.partners.is_empty() {
            return Err(invalid(
                "partner".into(),
                "no [[partner]] configured: add one per OCPI partner".into(),
            ));
        }
        let mut ids = HashSet::new();
        let mut partners = Vec::new();
        for p in raw.partners {
            let key = |name: &str| format!("partner `{}`: {name}", p.id);
            if p.id.is_empty()
                || p.id.len() > 64
                || !p
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                return Err(invalid(
                    "partner.id".into(),
                    format!(
                        "{:?}: use 1-64 characters of a-z, 0-9, '-' and '_' (it names the partner's queues)",
                        p.id
                    ),
                ));
            }
            if !ids.insert(p.id.clone()) {
                return Err(invalid(
                    "partner.id".into(),
                    format!("{:?} is configured twice", p.id),
                ));
            }
            let version: OcpiVersion = p
                .ocpi_version
                .parse()
                .map_err(|e: String| invalid(key("ocpi_version"), e))?;
            if !(p.versions_url.starts_with("http://") || p.versions_url.starts_with("https://")) {
                return Err(invalid(
                    key("versions_url"),
                    format!("{:?} is not an http(s) URL", p.versions_url),
                ));
            }
            let token = env(&p.token_env).unwrap_or_default();
            if token.trim().is_empty() {
                return Err(invalid(
                    key("token_env"),
                    format!(
                        "environment variable {} is not set or empty: export the partner's OCPI token in it",
                        p.token_env
                    ),
                ));
            }
            let token_encoding = match p.token_encoding.as_str() {
                "base64" => TokenEncoding::Base64,
                "plain" => TokenEncoding::Plain,
                other => {
                    return Err(invalid(
                        key("token_encoding"),
                        format!("{other:?}: use \"base64\" (OCPI 2.2.x) or \"plain\" (2.1.1 and many 2.2 systems)"),
                    ))
                }
            };
            for (name, value, len) in [
                ("our_country_code", &p.our_country_code, 2),
                ("country_code", &p.country_code, 2),
                ("our_party_id", &p.our_party_id, 3),
                ("party_id", &p.party_id, 3),
            ] {
                if value.chars().count() != len || !value.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(invalid(
                        key(name),
                        format!("{value:?}: expected {len} letters or digits"),
                    ));
                }
            }
            let mapping_path = if p.mapping.is_relative() {
                base.join(&p.mapping)
            } else {
                p.mapping.clone()
            };
            let mut mapping =
                MappingConfig::load(&mapping_path).map_err(|source| ConfigError::Mapping {
                    path: path.to_path_buf(),
                    partner: p.id.clone(),
                    source: Box::new(source),
                })?;
            mapping.set_time_zone(&source_time_zone);
            let all: Vec<&TableMapping> = mapping.tables.iter().collect();
            for t in &p.tables {
                if !all.iter().any(|m| &m.qualified_name() == t) {
                    return Err(invalid(
                        key("tables"),
                        format!(
                            "{t:?} is not in the mapping file {}; mapped tables: {}",
                            mapping_path.display(),
                            all.iter()
                                .map(|m| m.qualified_name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
            let tables: HashSet<String> = all
                .iter()
                .filter(|m| p.tables.is_empty() || p.tables.contains(&m.qualified_name()))
                .filter(|m| p.modules.is_empty() || p.modules.contains(&m.module))
                .map(|m| m.qualified_name())
                .collect();
            if tables.is_empty() {
                return Err(invalid(
                    key("tables"),
                    "no mapped table is left to push after `tables` and `modules`".into(),
                ));
            }
            for m in all.iter().filter(|m| tables.contains(&m.qualified_name())) {
                crate::mapping::coverage::check(m, version).map_err(|problem| {
                    invalid(
                        key("mapping"),
                        format!(
                            "{} cannot be pushed as OCPI {version}: {problem}",
                            m.qualified_name()
                        ),
                    )
                })?;
            }
            let mut modules: Vec<Module> = Vec::new();
            for m in &all {
                if tables.contains(&m.qualified_name()) && !modules.contains(&m.module) {
                    modules.push(m.module);
                }
            }
            if p.concurrency == 0 || p.concurrency > 1024 {
                return Err(invalid(key("concurrency"), "must be 1..=1024".into()));
            }
            if (p.prefetch as usize) < p.concurrency {
                return Err(invalid(
                    key("prefetch"),
                    format!(
                        "{} is below concurrency {}: prefetch must be at least concurrency",
                        p.prefetch, p.concurrency
                    ),
                ));
            }
            if p.request_timeout_ms == 0 || p.connect_timeout_ms == 0 {
                return Err(invalid(
                    key("request_timeout_ms"),
                    "timeouts must be above 0".into(),
                ));
            }
            let r = &p.retry;
            if r.initial_backoff_ms == 0 || r.max_backoff_ms < r.initial_backoff_ms {
                return Err(invalid(
                    key("retry.max_backoff_ms"),
                    "need 0 < initial_backoff_ms <= max_backoff_ms".into(),
                ));
            }
            if r.probe_interval_secs == 0 || r.max_probe_interval_secs < r.probe_interval_secs {
                return Err(invalid(
                    key("retry.max_probe_interval_secs"),
                    "need 0 < probe_interval_secs <= max_probe_interval_secs".into(),
                ));
            }
            if r.max_hold_secs == 0 || r.max_hold_secs + 120 > BROKER_CONSUMER_TIMEOUT_SECS {
                return Err(invalid(
                    key("retry.max_hold_secs"),
                    format!(
                        "{}: must be between 1 and {} (two minutes below the broker's 30-minute consumer timeout)",
                        r.max_hold_secs,
                        BROKER_CONSUMER_TIMEOUT_SECS - 120
                    ),
                ));
            }
            if r.down_after_secs == 0 || r.down_after_secs >= r.max_hold_secs {
                return Err(invalid(
                    key("retry.down_after_secs"),
                    "must be above 0 and below retry.max_hold_secs".into(),
                ));
            }
            let queue = format!("{}{}", broker.queue_prefix, p.id);
            partners.push(Arc::new(PartnerConfig {
                parking_queue: format!("{queue}.parked"),
                queue,
                id: p.id,
                version,
                versions_url: p.versions_url,
                allow_http_endpoints: p.allow_http_endpoints,
                token_env: p.token_env,
                token,
                token_encoding,
                our_country_code: p.our_country_code,
                our_party_id: p.our_party_id,
                country_code: p.country_code,
                party_id: p.party_id,
                mapping: Arc::new(mapping),
                tables,
                modules,
                concurrency: p.concurrency,
                prefetch: p.prefetch,
                request_timeout: Duration::from_millis(p.request_timeout_ms),
                connect_timeout: Duration::from_millis(p.connect_timeout_ms),
                discovery_refresh: Duration::from_secs(p.discovery_refresh_secs.max(1)),
                retry: RetryPolicy {
                    initial_backoff: Duration::from_millis(r.initial_backoff_ms),
                    max_backoff: Duration::from_millis(r.max_backoff_ms),
                    down_after: Duration::from_secs(r.down_after_secs),
                    probe_interval: Duration::from_secs(r.probe_interval_secs),
                    max_probe_interval: Duration::from_secs(r.max_probe_interval_secs),
                    max_hold: Duration::from_secs(r.max_hold_secs),
                },
                backlog: BacklogPolicy {
                    limit: p.backlog_limit,
                    limit_bytes: p.backlog_limit_bytes,
                    auto_resync: p.auto_resync,
                },
                old_cdrs_in_sync: p.old_cdrs_in_sync,
            }));
        }
        if pusher.name.trim().is_empty() {
            pusher.name = default_pusher_name();
        }
        let database = match raw.database {
            None => None,
            Some(d) => {
                if d.user.trim().is_empty() {
                    return Err(invalid(
                        "database.user".into(),
                        "must not be empty: the read-only user the pusher reads composite \
                         objects with (README \"Composite objects\")"
                            .into(),
                    ));
                }
                if d.pool_size == 0 || d.pool_size > 256 {
                    return Err(invalid(
                        "database.pool_size".into(),
                        format!("{} is out of range: 1 to 256 connections", d.pool_size),
                    ));
                }
                if d.timeout_ms == 0 {
                    return Err(invalid(
                        "database.timeout_ms".into(),
                        "must be at least 1".into(),
                    ));
                }
                let password = env(ENV_DATABASE_PASSWORD)
                    .filter(|p| !p.is_empty())
                    .unwrap_or(d.password);
                let mut tls = d.tls;
                tls.resolve_database("database.tls", &d.host, base)
                    .map_err(tls_invalid)?;
                Some(DatabaseConfig {
                    host: d.host,
                    port: d.port,
                    user: d.user,
                    password,
                    pool_size: d.pool_size,
                    timeout: Duration::from_millis(d.timeout_ms),
                    replica: d.replica,
                    tls,
                })
            }
        };
        if database.is_none() {
            let pushes_a_tree = |p: &&Arc<PartnerConfig>| {
                p.mapping.tables.iter().any(|t| {
                    p.tables.contains(&t.qualified_name())
                        && (p.mapping.in_tree(t)
                            || t.embeds.iter().any(|e| e.applies_to(p.version)))
                })
            };
            if let Some(p) = partners.iter().find(pushes_a_tree) {
                return Err(invalid(
                    "database".into(),
                    format!(
                        "missing: partner `{}` is pushed tables that its mapping {} links with \
                         [[table.children]] or [[table.embed]], whose objects (an EVSE with \
                         its connectors, a Location with its EVSEs, a 2.1.1 Session's \
                         Location) the pusher reads from the source database; \
                         add a [database] section with a read-only user (README \"Composite \
                         objects\"), or leave the modules of those tables out of the \
                         partner's `modules`",
                        p.id, p.mapping.origin
                    ),
                ));
            }
        }
        Ok(Config {
            broker,
            pusher,
            log,
            metrics,
            bridge,
            database,
            source_time_zone,
            source_time_zone_from_server,
            partners,
        })
    }

    /// Makes `zone` the source's time zone, for every partner's mapping.
    pub fn set_source_time_zone(&mut self, zone: SourceTimeZone) {
        for partner in &mut self.partners {
            let partner = Arc::make_mut(partner);
            Arc::make_mut(&mut partner.mapping).set_time_zone(&zone);
        }
        self.source_time_zone = zone;
    }

    pub fn partner(&self, id: &str) -> Option<&Arc<PartnerConfig>> {
        self.partners.iter().find(|p| p.id == id)
    }
}

/// Host name and process id: unique among the pushers of a deployment, readable in listings.
fn default_pusher_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pusher".into());
    format!("{host}-{}", std::process::id())
}

/// The URL with its password replaced by `***`, for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/ocpi-example/mapping.toml")
    }

    fn partner_toml(extra: &str) -> String {
        format!(
            r#"
[database]
user = "ocpi_reader"

[[partner]]
id = "acme"
ocpi_version = "2.2.1"
versions_url = "http://127.0.0.1:9/versions"
token_env = "ACME_TOKEN"
our_country_code = "NL"
our_party_id = "EXA"
country_code = "DE"
party_id = "ACM"
mapping = "{}"
{extra}
"#,
            mapping_path().display()
        )
    }

    #[test]
    fn a_partner_whose_version_the_mapping_cannot_serve_is_refused_naming_table_and_fix() {
        let p211 = partner_toml("").replace("ocpi_version = \"2.2.1\"", "ocpi_version = \"2.1.1\"");
        let err = Config::parse(&p211, Path::new("p.toml"), &env_with_token)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("acme") && err.contains("ocpi.cdrs") && err.contains("body_version"),
            "{err}"
        );
        assert!(err.contains("modules"), "the fix is named: {err}");
        let without_cdrs = p211.replace(
            "mapping = ",
            "modules = [\"locations\", \"sessions\", \"tariffs\", \"tokens\"]\nmapping = ",
        );
        Config::parse(&without_cdrs, Path::new("p.toml"), &env_with_token).unwrap();
        // 2.1.1 Sessions embed their Location, read from the database.
        let sessions_without_db = without_cdrs.replace("[database]\nuser = \"ocpi_reader\"\n", "");
        let sessions_without_db = sessions_without_db.replace(
            "[\"locations\", \"sessions\", \"tariffs\", \"tokens\"]",
            "[\"sessions\"]",
        );
        let err = Config::parse(&sessions_without_db, Path::new("p.toml"), &env_with_token)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[[table.embed]]") && err.contains("[database]"),
            "{err}"
        );
    }

    fn env_with_token(name: &str) -> Option<String> {
        (name == "ACME_TOKEN").then(|| "secret-token".to_string())
    }

    #[test]
    fn minimal_partner_gets_documented_defaults() {
        let c =
            Config::parse(&partner_toml(""), Path::new("/etc/p.toml"), &env_with_token).unwrap();
        let p = &c.partners[0];
        assert_eq!(p.queue, "ocpi.acme");
        assert_eq!(p.parking_queue, "ocpi.acme.parked");
        assert_eq!(p.concurrency, 16);
        assert_eq!(p.token, "secret-token");
        assert_eq!(p.token_encoding, TokenEncoding::Base64);
        assert_eq!(p.tables.len(), 7);
        assert_eq!(c.broker.exchange, "cdc.changes");
        assert_eq!(c.pusher.state_dir, PathBuf::from("/etc/pusher-state"));
        assert!(!format!("{p:?}").contains("secret-token"));
    }

    #[test]
    fn database_tls_has_the_bridge_defaults_and_names_its_keys() {
        let local = Config::parse(&partner_toml(""), Path::new("p.toml"), &env_with_token).unwrap();
        let db = local.database.as_ref().unwrap();
        assert_eq!(db.tls.mode(), tls_connect::TlsMode::Disabled);
        let remote = partner_toml("").replace(
            "user = \"ocpi_reader\"\n",
            "user = \"ocpi_reader\"\nhost = \"db.example.com\"\n",
        );
        let remote = Config::parse(&remote, Path::new("p.toml"), &env_with_token).unwrap();
        let db = remote.database.as_ref().unwrap();
        assert_eq!(db.tls.mode(), tls_connect::TlsMode::VerifyIdentity);
        let with_file = partner_toml("").replace(
            "user = \"ocpi_reader\"\n",
            "user = \"ocpi_reader\"\ntls = { mode = \"verify_ca\", ca_file = \"ca.pem\" }\n",
        );
        let err = Config::parse(&with_file, Path::new("/etc/p.toml"), &env_with_token)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("database.tls.ca_file") && err.contains("/etc/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn change_publishers_default_to_the_user_the_pushers_own_url_logs_in_as() {
        let env = |name: &str| match name {
            ENV_BROKER_URL => Some("amqp://cdc-pusher:pw@127.0.0.1:5672/%2f".to_string()),
            other => env_with_token(other),
        };
        let c = Config::parse(&partner_toml(""), Path::new("p.toml"), &env).unwrap();
        assert_eq!(c.broker.senders.own(), "cdc-pusher");
        assert_eq!(c.broker.senders.bridges(), ["cdc-pusher".to_string()]);
        let text = format!(
            "[broker]\nbridge_users = [\"cdc-bridge\"]\npusher_users = [\"pusher-b\"]\n{}",
            partner_toml("")
        );
        let c = Config::parse(&text, Path::new("p.toml"), &env).unwrap();
        assert_eq!(c.broker.senders.bridges(), ["cdc-bridge".to_string()]);
        assert_eq!(
            c.broker.senders.pushers(),
            ["pusher-b".to_string(), "cdc-pusher".to_string()]
        );
        let empty = format!("[broker]\nbridge_users = [\"\"]\n{}", partner_toml(""));
        let err = Config::parse(&empty, Path::new("p.toml"), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("broker.bridge_users"), "{err}");
    }

    #[test]
    fn a_broker_url_from_the_environment_is_checked_like_one_in_the_file() {
        let env = |name: &str| match name {
            ENV_BROKER_URL => Some("rabbit.example.com:5672".to_string()),
            other => env_with_token(other),
        };
        let err = Config::parse(&partner_toml(""), Path::new("p.toml"), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("broker.url") && err.contains(ENV_BROKER_URL),
            "{err}"
        );
        let env = |name: &str| match name {
            ENV_BROKER_URL => Some("amqps://u:p@rabbit.example.com/%2f".to_string()),
            other => env_with_token(other),
        };
        let c = Config::parse(&partner_toml(""), Path::new("p.toml"), &env).unwrap();
        assert_eq!(c.broker.tls.mode(), tls_connect::TlsMode::VerifyIdentity);
    }

    #[test]
    fn missing_token_names_the_variable() {
        let err = Config::parse(&partner_toml(""), Path::new("p.toml"), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ACME_TOKEN") && err.contains("not set"),
            "{err}"
        );
    }

    #[test]
    fn tables_and_modules_narrow_what_is_pushed() {
        let c = Config::parse(
            &partner_toml("modules = [\"tariffs\", \"cdrs\"]"),
            Path::new("p.toml"),
            &env_with_token,
        )
        .unwrap();
        let p = &c.partners[0];
        assert_eq!(p.modules.len(), 2);
        assert!(p.table("ocpi", "tariffs").is_some());
        assert!(p.table("ocpi", "locations").is_none());
        let err = Config::parse(
            &partner_toml("tables = [\"ocpi.nope\"]"),
            Path::new("p.toml"),
            &env_with_token,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ocpi.nope") && err.contains("ocpi.locations"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_partner_and_key() {
        for (extra, key) in [
            ("concurrency = 0", "concurrency"),
            ("prefetch = 4", "prefetch"),
            ("token_encoding = \"hex\"", "token_encoding"),
            ("[partner.retry]\nmax_hold_secs = 1790", "max_hold_secs"),
            ("[partner.retry]\nbogus = 1", "bogus"),
        ] {
            let err = Config::parse(&partner_toml(extra), Path::new("p.toml"), &env_with_token)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        let partner = partner_toml("");
        let once = partner.split("[[partner]]").nth(1).unwrap_or_default();
        let twice = format!("{partner}[[partner]]{once}");
        let err = Config::parse(&twice, Path::new("p.toml"), &env_with_token)
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
    }

    fn assert_every_table_reads_in(config: &Config, zone: &str) {
        for table in &config.partners[0].mapping.tables {
            assert_eq!(table.time_zone.name(), zone, "{}", table.table);
        }
    }

    #[test]
    fn the_source_time_zone_reaches_every_mapping_and_an_unknown_zone_names_the_key() {
        let utc = Config::parse(&partner_toml(""), Path::new("p.toml"), &env_with_token).unwrap();
        assert!(utc.source_time_zone.is_utc());
        let zoned = format!(
            "[source]\ntime_zone = \"Europe/Amsterdam\"\n{}",
            partner_toml("")
        );
        let config = Config::parse(&zoned, Path::new("p.toml"), &env_with_token).unwrap();
        assert_eq!(config.source_time_zone.name(), "Europe/Amsterdam");
        assert_every_table_reads_in(&config, "Europe/Amsterdam");
        let bad = format!("[source]\ntime_zone = \"CEST\"\n{}", partner_toml(""));
        let err = Config::parse(&bad, Path::new("p.toml"), &env_with_token)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source.time_zone") && err.contains("Europe/Amsterdam"),
            "{err}"
        );
    }

    #[test]
    fn a_time_zone_from_the_server_needs_the_database_and_applies_to_every_mapping() {
        let from_server = format!("[source]\ntime_zone = \"server\"\n{}", partner_toml(""));
        let mut config = Config::parse(&from_server, Path::new("p.toml"), &env_with_token).unwrap();
        assert!(config.source_time_zone_from_server);
        assert!(
            config.source_time_zone.is_utc(),
            "UTC until the server is read"
        );
        config.set_source_time_zone(SourceTimeZone::parse("Europe/Amsterdam").unwrap());
        assert_every_table_reads_in(&config, "Europe/Amsterdam");
        let without_db = from_server.replace("[database]\nuser = \"ocpi_reader\"\n", "");
        let err = Config::parse(&without_db, Path::new("p.toml"), &env_with_token)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source.time_zone") && err.contains("[database]"),
            "{err}"
        );
    }

    #[test]
    fn a_partner_pushed_a_tree_needs_the_database_and_one_without_locations_does_not() {
        let without_db = partner_toml("").replace("[database]\nuser = \"ocpi_reader\"\n", "");
        let err = Config::parse(&without_db, Path::new("p.toml"), &env_with_token)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("database") && err.contains("[[table.children]]") && err.contains("acme"),
            "{err}"
        );
        let tariffs_only = partner_toml("modules = [\"tariffs\"]")
            .replace("[database]\nuser = \"ocpi_reader\"\n", "");
        let c = Config::parse(&tariffs_only, Path::new("p.toml"), &env_with_token).unwrap();
        assert!(c.database.is_none());
        let with_db = Config::parse(&partner_toml(""), Path::new("p.toml"), &|n| match n {
            ENV_DATABASE_PASSWORD => Some("from-env".into()),
            other => env_with_token(other),
        })
        .unwrap();
        let db = with_db.database.unwrap();
        assert_eq!(
            (db.host.as_str(), db.port, db.pool_size),
            ("127.0.0.1", 3306, 8)
        );
        assert_eq!(db.password, "from-env");
        let bad = partner_toml("").replace("user = \"ocpi_reader\"", "user = \"\"");
        let err = Config::parse(&bad, Path::new("p.toml"), &env_with_token)
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.user"), "{err}");
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/pusher.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c =
            Config::parse(&text, &path, &|n| (n != ENV_BROKER_URL).then(|| "t".into())).unwrap();
        assert!(!c.partners.is_empty());
    }

    #[test]
    fn metrics_and_the_bridge_link_have_documented_defaults_and_are_checked() {
        let c = Config::parse(&partner_toml(""), Path::new("p.toml"), &env_with_token).unwrap();
        assert_eq!(c.metrics.listen, "");
        assert_eq!(c.bridge.status_url, "http://127.0.0.1:9187/status");
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/pusher.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let shipped =
            Config::parse(&text, &path, &|n| (n != ENV_BROKER_URL).then(|| "t".into())).unwrap();
        assert_eq!(shipped.metrics.listen, "127.0.0.1:9188");
        assert_eq!(shipped.bridge.status_url, c.bridge.status_url);
        for (extra, key) in [
            ("[metrics]\nlisten = \"nowhere\"", "metrics.listen"),
            (
                "[bridge]\nstatus_url = \"127.0.0.1:9187\"",
                "bridge.status_url",
            ),
        ] {
            let text = format!("{extra}\n{}", partner_toml(""));
            let err = Config::parse(&text, Path::new("p.toml"), &env_with_token)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
    }

    #[test]
    fn broker_password_is_redacted() {
        assert_eq!(
            redact_url("amqp://u:pw@h:5672/%2f"),
            "amqp://u:***@h:5672/%2f"
        );
    }
}
