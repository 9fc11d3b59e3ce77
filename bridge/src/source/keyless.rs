//! Captured tables without a primary key that the operator chose to leave out
//! (`capture.on_keyless_table = "skip"`). Their changes reach no partner, so leaving them out
//! must never go quiet: every rows event of one is counted in the metrics, and a warning names
//! the count at the first one, then at most once a minute per table while such events arrive.

use crate::metrics::BridgeMetrics;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct KeylessTables {
    noticed: HashSet<String>,
    last_warned: HashMap<String, Instant>,
}

impl KeylessTables {
    /// A table map of keyless table `name` (`database.table`): warned the first time.
    pub fn noticed(&mut self, name: &str) {
        if self.noticed.insert(name.to_string()) {
            tracing::warn!(
                table = name,
                "captured table has no primary key: its changes are left out and reach no \
                 partner (capture.on_keyless_table = \"skip\"); add a primary key, then re-sync \
                 the partners for it"
            );
        }
    }

    /// A rows event of keyless table `name` left out.
    pub fn skipped(&mut self, name: &str, file: &str, pos: u64, metrics: &BridgeMetrics) {
        let count = metrics.count_keyless_skip(name);
        let now = Instant::now();
        let due = self
            .last_warned
            .get(name)
            .is_none_or(|at| now.duration_since(*at) >= WARN_EVERY);
        if due {
            tracing::warn!(
                table = name,
                file,
                pos,
                events_skipped = count,
                "still leaving out changes of a captured table without a primary key \
                 (capture.on_keyless_table = \"skip\"); add a primary key, then re-sync the \
                 partners for it"
            );
            self.last_warned.insert(name.to_string(), now);
        }
    }
}
