//! The fixture of the bridge's capture tests: a private MariaDB with the test's schema, a
//! fanout exchange with one bound queue on the shared broker, and the ways a test reads what
//! the bridge published or why it stopped.

use std::time::{Duration, Instant};

use change_message::RowChange;

use crate::{
    bridge_config, declare_bound_queue, drain_changes, shared_amqp_url, unique_name, BridgeConfig,
    BridgeProcess, BrokerCleanup, MariaDb, MariaDbOptions,
};

/// How long a test waits for messages it expects.
pub const ARRIVAL: Duration = Duration::from_secs(30);

pub struct CaptureSetup {
    pub db: MariaDb,
    pub url: String,
    pub exchange: String,
    pub queue: String,
    _names: BrokerCleanup,
}

impl CaptureSetup {
    /// A default private MariaDB with `schema` (may be empty) run in its `app` database.
    pub async fn new(schema: &str) -> CaptureSetup {
        CaptureSetup::with_options(MariaDbOptions::default(), schema).await
    }

    pub async fn with_options(options: MariaDbOptions, schema: &str) -> CaptureSetup {
        let db = MariaDb::start_with(options);
        if !schema.trim().is_empty() {
            db.exec(schema);
        }
        let url = shared_amqp_url();
        let exchange = unique_name("capture.x");
        let queue = unique_name("capture.q");
        declare_bound_queue(&url, &exchange, &queue).await;
        CaptureSetup {
            _names: BrokerCleanup::new(&url, vec![queue.clone()], vec![exchange.clone()]),
            db,
            url,
            exchange,
            queue,
        }
    }

    /// Reads from the oldest binlog (so the schema's statements are in it), no merging.
    pub fn config(&self) -> BridgeConfig {
        bridge_config(self.db.port(), &self.url, &self.exchange).with(|c| {
            c.source.start = "start".into();
        })
    }

    /// Waits until `n` row changes arrived (heartbeats are dropped) and asserts there are `n`.
    pub async fn changes(&self, n: usize) -> Vec<RowChange> {
        let got = drain_changes(&self.url, &self.queue, n, ARRIVAL).await;
        assert_eq!(
            got.len(),
            n,
            "expected {n} change message(s), got {}: {got:#?}",
            got.len()
        );
        got
    }

    /// Everything that arrives within `quiet`, as row changes.
    pub async fn rest(&self, quiet: Duration) -> Vec<RowChange> {
        drain_changes(&self.url, &self.queue, usize::MAX, quiet).await
    }

    /// Consumes until `done` holds for everything received so far (or `ARRIVAL` passes).
    pub async fn changes_until(&self, done: impl Fn(&[RowChange]) -> bool) -> Vec<RowChange> {
        let deadline = Instant::now() + ARRIVAL;
        let mut all = Vec::new();
        while !done(&all) && Instant::now() < deadline {
            all.extend(
                drain_changes(&self.url, &self.queue, usize::MAX, Duration::from_secs(1)).await,
            );
        }
        assert!(
            done(&all),
            "the expected messages did not arrive; got {all:#?}"
        );
        all
    }
}

/// Waits for the bridge to stop on its own and returns its log, asserting it failed with an
/// exit code (not a signal) and did not panic.
pub fn bridge_failure(bridge: &mut BridgeProcess) -> String {
    let status = bridge
        .wait_exit(ARRIVAL)
        .unwrap_or_else(|| panic!("the bridge keeps running:\n{}", bridge.log()));
    let log = bridge.log();
    assert!(
        !status.success() && status.code().is_some(),
        "{status:?}\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    log
}
