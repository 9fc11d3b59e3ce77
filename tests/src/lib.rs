//! Test harness for end-to-end tests: private MariaDB servers with the binlog on, RabbitMQ (the
//! shared broker or private nodes), the bridge and pusher binaries as child processes, their
//! config files, an OCPI partner double, and the comparison of what a partner holds with the
//! database (shared with the demo).
//!
//! Everything panics with a clear message on failure: this is test code. Servers, bridges and pushers
//! keep their files under `<workspace>/target/test-servers/`; a passing test removes them, a failing
//! one keeps them and prints where they are.

pub mod capture_setup;
pub mod changes;
pub mod chaos;
pub mod config;
pub mod consistency;
pub mod example_mapping;
pub mod http_probe;
pub mod mariadb;
pub mod ocpi_partner;
pub mod pusher_cli;
pub mod pusher_config;
pub mod rabbit;
pub mod service_process;
pub mod stalling_proxy;
pub mod tls;
pub mod util;
pub mod workload;

pub use capture_setup::{bridge_failure, CaptureSetup};
pub use config::{
    bridge_config, BridgeConfig, BrokerConfig, CaptureConfig, CheckpointConfig, DedupConfig,
    LogConfig, MetricsConfig, SourceConfig,
};
pub use consistency::{compare, differences, Comparison, DatabaseRows};
pub use mariadb::{
    MariaDb, MariaDbOptions, APP_DATABASE, CDC_PASSWORD, CDC_USER, READER_PASSWORD, READER_USER,
};
pub use ocpi_partner::{
    Mode, OcpiPartner, PartnerOptions, PartnerState, PartnerVersion, RecordedRequest,
};
pub use pusher_config::{
    example_mapping_path, partner_entry, pusher_config, DatabaseEntry, PartnerEntry, PusherConfig,
};
pub use rabbit::{
    declare_bound_queue, declare_bound_queue_with_limit, declare_exchange, delete_exchange,
    delete_queue, drain, drain_changes, drain_received, publish_bodies, publish_bodies_routed,
    publish_messages, purge_queue, queue_len, shared_amqp_url, unique_name, BrokerCleanup,
    BrokerUser, QueueReader, RabbitNode, Received,
};
pub use service_process::{
    bridge_bin, logs_of, pusher_bin, start_sync, BridgeProcess, PusherProcess, ServiceProcess,
};
pub use tls::{Certificate, TestCa, TlsEntry};
pub use util::{free_port, last_logged_number, test_servers_dir, workspace_root};
