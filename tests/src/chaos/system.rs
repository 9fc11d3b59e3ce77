//! The whole system the fault-injection run works on: a private MariaDB with the example schema,
//! a private RabbitMQ node (so that it can be restarted), the bridge, two pushers sharing their
//! state directory (and so the CDR ledger) and three OCPI partner doubles, one of them strict
//! about `last_updated`.

use std::sync::Arc;
use std::time::Duration;

use crate::mariadb::MariaDb;
use crate::ocpi_partner::{OcpiPartner, PartnerOptions};
use crate::pusher_cli::env_refs;
use crate::pusher_config::{partner_entry, pusher_config, DatabaseEntry, PusherConfig};
use crate::rabbit::RabbitNode;
use crate::service_process::{BridgeProcess, PusherProcess};
use crate::util::fresh_dir;
use crate::workload::{generated_rows_sql, DB};
use crate::{bridge_config, workspace_root};

/// The names of the pushers (`[pusher] name`).
pub const PUSHER_NAMES: [&str; 2] = ["chaos-a", "chaos-b"];

/// One partner double and its id in the pushers' configuration.
pub struct Partner {
    pub id: String,
    pub double: Arc<OcpiPartner>,
}

/// Everything running. Field order is drop order: processes first, then the servers.
pub struct System {
    pub pushers: Vec<PusherProcess>,
    pub bridge: BridgeProcess,
    pub db: MariaDb,
    pub broker: RabbitNode,
    pub partners: Vec<Partner>,
    /// The pushers' configuration without a name (see [`System::pusher_config`]).
    pub cfg: PusherConfig,
    /// The partners' tokens, as the pushers read them.
    pub env: Vec<(String, String)>,
}

impl System {
    /// Starts everything in the order the system needs: servers, partners, `pusher setup`
    /// (queues bound before the bridge publishes), the generated records through the binlog,
    /// the bridge from the start of the binlog, the pushers.
    pub async fn start() -> System {
        let broker = tokio::task::block_in_place(RabbitNode::start);
        let db = tokio::task::block_in_place(MariaDb::start);
        let schema_path = workspace_root().join("config/ocpi-example/schema.sql");
        let schema = std::fs::read_to_string(&schema_path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", schema_path.display()));
        let (ddl, _seed) = schema
            .split_once("-- Seed data")
            .expect("the example schema separates its tables from its rows");
        tokio::task::block_in_place(|| db.exec(&format!("SET sql_log_bin = 0;\n{ddl}")));

        let mut partners = Vec::new();
        for (id, reject_older) in [("strict", true), ("p2", false), ("p3", false)] {
            let mut options = PartnerOptions::v221();
            options.reject_older = reject_older;
            partners.push(Partner {
                id: id.to_string(),
                double: Arc::new(OcpiPartner::start(options).await),
            });
        }

        let url = broker.amqp_url();
        let state_dir = fresh_dir("chaos-pusher-state");
        let mut cfg = pusher_config(&url).with(|c| {
            c.database = Some(DatabaseEntry::reader(db.port()));
            c.state_dir = Some(state_dir.display().to_string());
            c.log_level = "info".into();
        });
        let mut env = Vec::new();
        for p in &partners {
            let token_env = format!("TOKEN_{}", p.id.to_uppercase());
            env.push((token_env.clone(), p.double.options().token.clone()));
            let mut entry = partner_entry(&p.id, &p.double, &token_env);
            // A partner failing for 20 s is taken as down: held messages go back to the
            // queue and it is probed (the production default waits 120 s).
            entry.down_after_secs = 20;
            cfg = cfg.partner(entry);
        }
        crate::pusher_cli::setup_queues(&cfg, &env_refs(&env));

        tokio::task::block_in_place(|| {
            db.exec(&format!(
                "SET time_zone = '+00:00';\nUSE {DB};\n{}",
                generated_rows_sql()
            ))
        });
        let bridge_toml = bridge_config(db.port(), &url, &cfg.exchange)
            .with(|c| {
                c.source.start = "start".into();
                c.capture.databases = vec![DB.into()];
            })
            .to_toml();
        let bridge = BridgeProcess::start(&bridge_toml);
        let mut system = System {
            pushers: Vec::new(),
            bridge,
            db,
            broker,
            partners,
            cfg,
            env,
        };
        for name in PUSHER_NAMES {
            let toml = system.pusher_config(name).to_toml();
            let pusher = PusherProcess::start_with_env(&toml, &env_refs(&system.env));
            system.pushers.push(pusher);
        }
        system
    }

    /// The configuration of the pusher called `name`.
    pub fn pusher_config(&self, name: &str) -> PusherConfig {
        self.cfg.clone().with(|c| c.name = name.into())
    }

    /// The MariaDB URL of the workload (root, the example database).
    pub fn mysql_url(&self) -> String {
        self.db.root_url()
    }

    /// Restarts every product process that is not running (one that exited by itself is
    /// reported by the caller first); returns the names of those restarted.
    pub fn restart_exited(&mut self) -> Vec<String> {
        let mut restarted = Vec::new();
        if !self.bridge.is_running() {
            self.bridge.restart();
            restarted.push("bridge".to_string());
        }
        for (i, pusher) in self.pushers.iter_mut().enumerate() {
            if !pusher.is_running() {
                pusher.restart();
                restarted.push(PUSHER_NAMES[i].to_string());
            }
        }
        restarted
    }

    /// The last lines of every product process's log, for a report.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = format!(
            "--- bridge ({}) ---\n{}\n",
            self.bridge.log_path().display(),
            self.bridge.log_tail(lines)
        );
        for (i, pusher) in self.pushers.iter().enumerate() {
            out.push_str(&format!(
                "--- {} ({}) ---\n{}\n",
                PUSHER_NAMES[i],
                pusher.log_path().display(),
                pusher.log_tail(lines)
            ));
        }
        out
    }
}

/// How long the harness waits between stopping a process and starting it again.
pub fn restart_pause(rng: &mut fastrand::Rng) -> Duration {
    Duration::from_millis(rng.u64(200..3000))
}
