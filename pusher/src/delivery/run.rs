//! The state of one consuming phase of a partner's delivery: the lanes, the held (unacked)
//! deliveries, the calls in flight and how the phase ends; and the retry backoff.

use std::time::{Duration, Instant};

use lapin::Acker;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::redelivery::Redelivery;
use super::{CallDone, End};
use crate::ack_window::AckWindow;
use crate::config::RetryPolicy;
use crate::lanes::Lanes;
use crate::metrics::OldestHeld;

/// The state of one consuming phase.
pub(super) struct Run {
    pub(super) lanes: Lanes,
    /// Every unacked delivery; settled ones wait there for their gathered ack.
    pub(super) held: AckWindow<Acker>,
    /// Successful pushes not yet counted in the shared status (updated once a tick).
    pub(super) pushed_since_tick: u64,
    /// Publish times of the held deliveries, for the oldest message's age in the status.
    pub(super) oldest: OldestHeld,
    pub(super) calls: JoinSet<CallDone>,
    /// Set to true to cut the waits of calls that are backing off.
    pub(super) cancel: watch::Sender<bool>,
    pub(super) failing_since: Option<Instant>,
    /// Whether any call succeeded in this phase (resets the pause backoff).
    pub(super) delivered_any: bool,
    /// The redelivered run at the queue's head: while it is open, records holding a
    /// redelivered change wait (see [`Redelivery`]).
    pub(super) redelivery: Redelivery,
    pub(super) end: Option<End>,
    pub(super) deadline: Option<tokio::time::Instant>,
}

impl Run {
    /// A phase on a fresh channel: nothing held, the redelivery run open.
    pub(super) fn new(lanes: Lanes, prefetch: usize) -> Run {
        Run {
            lanes,
            delivered_any: false,
            redelivery: Redelivery::new(prefetch),
            held: AckWindow::new(prefetch),
            oldest: OldestHeld::default(),
            pushed_since_tick: 0,
            calls: JoinSet::new(),
            cancel: watch::channel(false).0,
            failing_since: None,
            end: None,
            deadline: None,
        }
    }

    /// Makes a phase kept across a pause consume again (see `held`): what it holds stays.
    pub(super) fn resume(&mut self) {
        self.end = None;
        self.deadline = None;
        self.cancel = watch::channel(false).0;
        self.failing_since = None;
        self.delivered_any = false;
    }

    /// Marks deliveries as ready to ack; the acks go out gathered (see [`AckWindow`]).
    pub(super) fn settle(&mut self, tags: &[u64]) {
        self.held.settle(tags, Instant::now());
    }

    /// Stops taking deliveries and starting calls; calls that are sending get `grace`.
    pub(super) fn finish(&mut self, end: End, grace: Duration) {
        if self.end.is_none() {
            self.end = Some(end);
            self.deadline = Some(tokio::time::Instant::now() + grace);
        }
        let _ = self.cancel.send(true);
    }
}

/// Capped exponential backoff with jitter: between half and all of `initial * 2^attempt`.
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let base = policy
        .initial_backoff
        .saturating_mul(1u32 << attempt.min(20))
        .min(policy.max_backoff);
    let half = base / 2;
    half + Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            down_after: Duration::from_secs(60),
            probe_interval: Duration::from_secs(1),
            max_probe_interval: Duration::from_secs(10),
            max_hold: Duration::from_secs(600),
        }
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_stays_capped() {
        let p = policy();
        for attempt in 0..40 {
            let base = (100u64 << attempt.min(20)).min(5000);
            for _ in 0..20 {
                let d = backoff(&p, attempt).as_millis() as u64;
                assert!(
                    d >= base / 2 && d <= base,
                    "attempt {attempt}: {d} vs {base}"
                );
            }
        }
    }
}
