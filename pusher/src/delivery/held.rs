//! Pausing without returning: a paused partner's deliveries stay held on their channel.
//!
//! A partner queue has a delivery limit (`broker.delivery_limit`) so that a message that kills
//! every pusher reading it ends up parked instead of looping. RabbitMQ 3.x (measured on 3.10.8)
//! and 4.0 to 4.2 count every return toward that limit, a closed channel's included; 4.3
//! counts only returns it takes for failures, and which returns those are has changed between
//! releases. So the pusher does not rely on how a broker counts: it avoids returning what it
//! did not fail on. A returned message would otherwise walk towards the limit at every pause
//! for a partner outage and every endpoint refresh, until a healthy message is dead-lettered
//! into the parking queue, out of order with its record's later changes.
//!
//! When a consuming phase ends in a pause (the partner is down or refuses us) or in the
//! periodic endpoint refresh, and every call has come back, the channel, its consumer and the
//! phase's lanes are kept: nothing returns to the queue. The next phase resumes them, sending
//! the same deliveries first, in order. They are returned (one count) only when they would
//! otherwise outlive `retry.max_hold_secs` (below the broker's 30-minute consumer timeout,
//! which would close the channel anyway), when the pusher stops or hands the partner over,
//! or when a call could not be waited for.

use std::time::Duration;

use lapin::types::ShortString;
use lapin::{Channel, Consumer};

use super::{Run, Worker};

/// A consuming phase kept across a pause.
pub(super) struct HeldRun {
    pub(super) channel: Channel,
    pub(super) consumer: Consumer,
    pub(super) run: Run,
}

impl Worker {
    /// The kept phase, when its channel is still open, ready to consume again.
    pub(super) fn resume_held(&mut self) -> Option<HeldRun> {
        let mut held = self.held.take()?;
        if !held.channel.status().connected() {
            self.keep_lanes(held.run);
            return None;
        }
        held.run.resume();
        Some(held)
    }

    /// Returns what the kept phase holds to the queue (closing its channel), saying why.
    pub(super) async fn release_held(&mut self, why: &str) {
        let Some(held) = self.held.take() else {
            return;
        };
        let held_count = held.run.held.len();
        tracing::info!(partner = %self.partner().id, held = held_count, why, "returning the held deliveries to the queue");
        close_returning(&held.channel, why).await;
        self.keep_lanes(held.run);
        self.set_status(|s| s.unacked = 0);
    }

    /// Releases the kept phase when its oldest delivery has been held for `retry.max_hold_secs`.
    pub(super) async fn release_held_if_due(&mut self) {
        let max_hold = self.partner().retry.max_hold;
        let due = self.held.as_ref().is_some_and(|h| {
            h.run
                .held
                .oldest_received()
                .is_some_and(|at| at.elapsed() >= max_hold)
        });
        if due {
            let why = format!(
                "held for {} s (retry.max_hold_secs) while the partner is paused",
                max_hold.as_secs()
            );
            self.release_held(&why).await;
        }
    }

    /// Forgets a connection's kept phase without closing anything (the connection is gone).
    pub(super) fn drop_held(&mut self) {
        if let Some(held) = self.held.take() {
            self.keep_lanes(held.run);
        }
    }

    /// Keeps the lanes' memory of what was pushed; their deliveries went back to the queue.
    fn keep_lanes(&mut self, run: Run) {
        let mut lanes = run.lanes;
        lanes.clear();
        self.lanes = Some(lanes);
    }
}

/// Closes `channel`: every unacked delivery returns to the head of the queue, in order.
pub(super) async fn close_returning(channel: &Channel, why: &str) {
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        channel.close(
            200,
            ShortString::from(why.chars().take(200).collect::<String>()),
        ),
    )
    .await;
}
