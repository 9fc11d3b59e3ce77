//! The pusher configuration file for tests, as a struct with every key, rendered to TOML.
//! Each test gets its own exchange, queue prefix and presence exchange (from [`unique_name`]),
//! so tests running side by side on the shared broker never see each other's messages.
//!
//! [`unique_name`]: crate::rabbit::unique_name

use std::fmt::Write;

use crate::ocpi_partner::OcpiPartner;
use crate::rabbit::unique_name;
use crate::tls::TlsEntry;
use crate::util::workspace_root;

#[derive(Clone, Debug)]
pub struct PusherConfig {
    pub broker_url: String,
    /// `[broker.tls]` (for `amqps://` URLs); empty: left out.
    pub broker_tls: TlsEntry,
    pub exchange: String,
    pub queue_prefix: String,
    pub delivery_limit: u32,
    pub presence_exchange: String,
    pub name: String,
    pub presence_interval_ms: u64,
    pub presence_expiry_ms: u64,
    pub shutdown_grace_ms: u64,
    /// `None`: the pusher's default (a directory next to the config file).
    pub state_dir: Option<String>,
    pub log_level: String,
    /// `[metrics] listen`: empty (the default here) turns the endpoints off, so pushers running
    /// side by side never compete for a port.
    pub metrics_listen: String,
    /// `[bridge] status_url` for `pusher status`; `None` leaves the pusher's default.
    pub bridge_status_url: Option<String>,
    /// `[broker] management_url`; `None`: left out.
    pub management_url: Option<String>,
    /// `[database]`: where composite objects are read (mappings with `[[table.children]]`).
    /// Without it, a partner whose `modules` is empty gets no Locations (see
    /// [`PusherConfig::to_toml`]).
    pub database: Option<DatabaseEntry>,
    /// `[source] time_zone`; `None` leaves the pusher's default (UTC).
    pub source_time_zone: Option<String>,
    pub partners: Vec<PartnerEntry>,
}

/// `[database]` of the pusher: a server on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct DatabaseEntry {
    pub port: u16,
    pub user: String,
    pub password: String,
    /// `replica = true`: reads wait until the server applied each change's transaction.
    pub replica: bool,
    /// `timeout_ms`; `None` leaves the pusher's default.
    pub timeout_ms: Option<u64>,
    /// `[database.tls]`; empty: left out (disabled on 127.0.0.1).
    pub tls: TlsEntry,
}

impl DatabaseEntry {
    /// The harness's read-only user ([`crate::READER_USER`]) of the server on `port`.
    pub fn reader(port: u16) -> DatabaseEntry {
        DatabaseEntry {
            port,
            user: crate::READER_USER.into(),
            password: crate::READER_PASSWORD.into(),
            replica: false,
            timeout_ms: None,
            tls: TlsEntry::default(),
        }
    }
}

/// The modules of the example mapping a partner without `modules` of its own is pushed: what
/// the mapping can serve for its version. Without `[database]` no Locations (the pusher reads
/// their tree from the source database) and no 2.1.1 Sessions (they embed their Location);
/// CDRs only for 2.2.1 (the example stores 2.2.1 CDR objects, sent as they are).
fn default_modules(ocpi_version: &str, database: bool) -> Vec<String> {
    let mut modules = Vec::new();
    if database {
        modules.push("locations");
    }
    if database || ocpi_version != "2.1.1" {
        modules.push("sessions");
    }
    if ocpi_version == "2.2.1" {
        modules.push("cdrs");
    }
    modules.extend(["tariffs", "tokens"]);
    modules.into_iter().map(String::from).collect()
}

#[derive(Clone, Debug)]
pub struct PartnerEntry {
    pub id: String,
    pub ocpi_version: String,
    pub versions_url: String,
    pub token_env: String,
    pub token_encoding: String,
    pub our_country_code: String,
    pub our_party_id: String,
    pub country_code: String,
    pub party_id: String,
    pub mapping: String,
    pub tables: Vec<String>,
    pub modules: Vec<String>,
    pub concurrency: usize,
    pub prefetch: u32,
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub down_after_secs: u64,
    pub probe_interval_secs: u64,
    pub max_probe_interval_secs: u64,
    pub max_hold_secs: u64,
    /// `backlog_limit`; `None` leaves the pusher's default.
    pub backlog_limit: Option<u64>,
    /// `backlog_limit_bytes`; `None` leaves the pusher's default.
    pub backlog_limit_bytes: Option<u64>,
    /// `auto_resync`; `None` leaves the pusher's default (true).
    pub auto_resync: Option<bool>,
    /// `old_cdrs_in_sync` ("skip" or "park"); `None` leaves the pusher's default ("skip").
    pub old_cdrs_in_sync: Option<&'static str>,
}

/// The example mapping shipped in `config/ocpi-example/mapping.toml`.
pub fn example_mapping_path() -> String {
    workspace_root()
        .join("config/ocpi-example/mapping.toml")
        .display()
        .to_string()
}

/// A configuration on `amqp_url` with fresh names and fast presence (200 ms, expiry 1.5 s).
pub fn pusher_config(amqp_url: &str) -> PusherConfig {
    PusherConfig {
        broker_url: amqp_url.to_string(),
        broker_tls: TlsEntry::default(),
        exchange: unique_name("cdc"),
        queue_prefix: format!("{}.", unique_name("ocpi")),
        delivery_limit: 50,
        presence_exchange: unique_name("pushers"),
        name: String::new(),
        presence_interval_ms: 200,
        presence_expiry_ms: 1500,
        shutdown_grace_ms: 5000,
        state_dir: None,
        log_level: "info,pusher=debug".into(),
        metrics_listen: String::new(),
        bridge_status_url: None,
        management_url: None,
        database: None,
        source_time_zone: None,
        partners: Vec::new(),
    }
}

/// A partner entry for the test double `partner`, version and token encoding as it expects;
/// the token is read from env `token_env` (give the process [`OcpiPartner::options`]'s token).
pub fn partner_entry(id: &str, partner: &OcpiPartner, token_env: &str) -> PartnerEntry {
    let options = partner.options();
    PartnerEntry {
        id: id.to_string(),
        ocpi_version: options.version.as_str().to_string(),
        versions_url: partner.versions_url(),
        token_env: token_env.to_string(),
        token_encoding: if options.expect_base64_token {
            "base64"
        } else {
            "plain"
        }
        .into(),
        our_country_code: "NL".into(),
        our_party_id: "EXA".into(),
        country_code: "DE".into(),
        party_id: "PRT".into(),
        mapping: example_mapping_path(),
        tables: Vec::new(),
        modules: Vec::new(),
        concurrency: 16,
        prefetch: 500,
        request_timeout_ms: 5000,
        connect_timeout_ms: 1000,
        initial_backoff_ms: 100,
        max_backoff_ms: 2000,
        down_after_secs: 120,
        probe_interval_secs: 1,
        max_probe_interval_secs: 5,
        max_hold_secs: 1200,
        backlog_limit: None,
        auto_resync: None,
        old_cdrs_in_sync: None,
        backlog_limit_bytes: None,
    }
}

impl PusherConfig {
    pub fn with(mut self, change: impl FnOnce(&mut PusherConfig)) -> PusherConfig {
        change(&mut self);
        self
    }

    pub fn partner(mut self, entry: PartnerEntry) -> PusherConfig {
        self.partners.push(entry);
        self
    }

    /// The queue the pusher declares for partner `id`.
    pub fn queue(&self, id: &str) -> String {
        format!("{}{id}", self.queue_prefix)
    }

    /// The parking queue of partner `id`.
    pub fn parking_queue(&self, id: &str) -> String {
        format!("{}{id}.parked", self.queue_prefix)
    }

    /// The file's text. Partners without `modules` of their own get the modules the example
    /// mapping can serve them (`default_modules`).
    pub fn to_toml(&self) -> String {
        let q = |s: &str| format!("{s:?}");
        let list = |v: &[String]| {
            format!(
                "[{}]",
                v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
            )
        };
        let mut out = String::new();
        let _ = writeln!(out, "[broker]");
        let _ = writeln!(out, "url = {}", q(&self.broker_url));
        let _ = writeln!(out, "exchange = {}", q(&self.exchange));
        let _ = writeln!(out, "queue_prefix = {}", q(&self.queue_prefix));
        let _ = writeln!(out, "delivery_limit = {}", self.delivery_limit);
        let _ = writeln!(out, "presence_exchange = {}", q(&self.presence_exchange));
        if let Some(url) = &self.management_url {
            let _ = writeln!(out, "management_url = {}", q(url));
        }
        let _ = writeln!(out, "\n[pusher]");
        let _ = writeln!(out, "name = {}", q(&self.name));
        if let Some(dir) = &self.state_dir {
            let _ = writeln!(out, "state_dir = {}", q(dir));
        }
        let _ = writeln!(out, "presence_interval_ms = {}", self.presence_interval_ms);
        let _ = writeln!(out, "presence_expiry_ms = {}", self.presence_expiry_ms);
        let _ = writeln!(out, "shutdown_grace_ms = {}", self.shutdown_grace_ms);
        let _ = writeln!(
            out,
            "\n[log]\nformat = \"text\"\nlevel = {}",
            q(&self.log_level)
        );
        let _ = writeln!(out, "\n[metrics]\nlisten = {}", q(&self.metrics_listen));
        if let Some(url) = &self.bridge_status_url {
            let _ = writeln!(out, "\n[bridge]\nstatus_url = {}", q(url));
        }
        if let Some(db) = &self.database {
            let _ = writeln!(out, "\n[database]\nhost = \"127.0.0.1\"");
            let _ = writeln!(out, "port = {}", db.port);
            let _ = writeln!(out, "user = {}", q(&db.user));
            let _ = writeln!(out, "password = {}", q(&db.password));
            let _ = writeln!(out, "replica = {}", db.replica);
            if let Some(ms) = db.timeout_ms {
                let _ = writeln!(out, "timeout_ms = {ms}");
            }
            out.push_str(&db.tls.section("database.tls"));
        }
        if let Some(zone) = &self.source_time_zone {
            let _ = writeln!(out, "\n[source]\ntime_zone = {}", q(zone));
        }
        out.push_str(&self.broker_tls.section("broker.tls"));
        for p in &self.partners {
            let _ = writeln!(out, "\n[[partner]]");
            let _ = writeln!(out, "id = {}", q(&p.id));
            let _ = writeln!(out, "ocpi_version = {}", q(&p.ocpi_version));
            let _ = writeln!(out, "versions_url = {}", q(&p.versions_url));
            let _ = writeln!(out, "token_env = {}", q(&p.token_env));
            let _ = writeln!(out, "token_encoding = {}", q(&p.token_encoding));
            let _ = writeln!(out, "our_country_code = {}", q(&p.our_country_code));
            let _ = writeln!(out, "our_party_id = {}", q(&p.our_party_id));
            let _ = writeln!(out, "country_code = {}", q(&p.country_code));
            let _ = writeln!(out, "party_id = {}", q(&p.party_id));
            let _ = writeln!(out, "mapping = {}", q(&p.mapping));
            let _ = writeln!(out, "tables = {}", list(&p.tables));
            let modules: Vec<String> = if p.modules.is_empty() {
                default_modules(&p.ocpi_version, self.database.is_some())
            } else {
                p.modules.clone()
            };
            let _ = writeln!(out, "modules = {}", list(&modules));
            let _ = writeln!(out, "concurrency = {}", p.concurrency);
            let _ = writeln!(out, "prefetch = {}", p.prefetch);
            let _ = writeln!(out, "request_timeout_ms = {}", p.request_timeout_ms);
            let _ = writeln!(out, "connect_timeout_ms = {}", p.connect_timeout_ms);
            if let Some(limit) = p.backlog_limit {
                let _ = writeln!(out, "backlog_limit = {limit}");
            }
            if let Some(limit) = p.backlog_limit_bytes {
                let _ = writeln!(out, "backlog_limit_bytes = {limit}");
            }
            if let Some(old) = p.old_cdrs_in_sync {
                let _ = writeln!(out, "old_cdrs_in_sync = {}", q(old));
            }
            if let Some(auto) = p.auto_resync {
                let _ = writeln!(out, "auto_resync = {auto}");
            }
            let _ = writeln!(out, "[partner.retry]");
            let _ = writeln!(out, "initial_backoff_ms = {}", p.initial_backoff_ms);
            let _ = writeln!(out, "max_backoff_ms = {}", p.max_backoff_ms);
            let _ = writeln!(out, "down_after_secs = {}", p.down_after_secs);
            let _ = writeln!(out, "probe_interval_secs = {}", p.probe_interval_secs);
            let _ = writeln!(
                out,
                "max_probe_interval_secs = {}",
                p.max_probe_interval_secs
            );
            let _ = writeln!(out, "max_hold_secs = {}", p.max_hold_secs);
        }
        out
    }
}
