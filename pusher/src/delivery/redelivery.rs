//! The redelivered run at the head of a partner's queue, and when it is complete.
//!
//! Why: when a pusher stops or dies, the broker returns what it held (delivered, unacked) to
//! the head of the queue, flagged redelivered. That pusher may already have sent the newest of
//! those states to the partner, so the next owner must coalesce each record's redelivered
//! changes into its newest state before sending any of them: sending an older one first would
//! take the partner back in time. Its records therefore wait until the whole redelivered run has
//! arrived, and "arrived" has to be known, not guessed:
//!
//! - a fresh (not redelivered) delivery ends the run: everything before it in the queue came;
//! - a window full of redelivered messages (the dead pusher had a larger prefetch than this
//!   one) cannot end it: no more deliveries can come, so the window is widened (the consumer
//!   is cancelled, its deliveries stay held on the channel, and a new consumer starts with a
//!   fresh window) up to [`MAX_WINDOW`] held messages, after which the run ends with a warning
//!   naming the setting to align;
//! - a quiet moment (no delivery for [`QUIET`]) ends it only when the queue has nothing ready
//!   (a passive declare answers after every delivery sent before it), so a broker that pauses
//!   between deliveries does not end it; a queue that keeps messages ready without delivering
//!   them for [`MAX_WAIT`] ends it with a warning rather than stalling the partner.

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Consumer};
use tokio::time::Instant;

/// Without a delivery for this long, the queue is asked whether anything is still ready.
pub(super) const QUIET: Duration = Duration::from_millis(200);
/// Messages ready in the queue but not delivered for this long end the run anyway.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(30);
/// The most messages a widened window holds (their bodies are in memory).
pub(super) const MAX_WINDOW: usize = 20_000;

/// Where the redelivered run stands.
#[derive(Debug)]
pub(super) struct Redelivery {
    open: bool,
    /// The last delivery of the run (or its start).
    last: Instant,
    /// How many held messages fill the consumers' windows.
    window: usize,
    /// How many times the window was widened (each new consumer has a tag of its own).
    widened: u32,
}

/// What the quiet check found.
pub(super) enum Quiet {
    /// Nothing ready: the run has all arrived (once the buffered deliveries are taken).
    Complete,
    /// Still messages ready: wait for them.
    Waiting,
    /// Messages ready for [`MAX_WAIT`] without a delivery: end the run anyway.
    GaveUp,
}

impl Redelivery {
    /// A run on a fresh consumer of `prefetch`.
    pub(super) fn new(prefetch: usize) -> Redelivery {
        Redelivery {
            open: true,
            last: Instant::now(),
            window: prefetch,
            widened: 0,
        }
    }

    /// True while the run is open: records holding a redelivered change wait.
    pub(super) fn is_open(&self) -> bool {
        self.open
    }

    pub(super) fn close(&mut self) {
        self.open = false;
    }

    /// Takes note of a delivery: a fresh one ends the run.
    pub(super) fn delivered(&mut self, redelivered: bool) {
        if redelivered {
            self.last = Instant::now();
        } else {
            self.open = false;
        }
    }

    /// When to ask the queue whether the run is complete, while it is open.
    pub(super) fn quiet_at(&self) -> Option<Instant> {
        self.open.then_some(self.last + QUIET)
    }

    /// True while the run is open and `held` messages fill the window: no delivery can come.
    pub(super) fn window_full(&self, held: usize) -> bool {
        self.open && held >= self.window
    }

    /// The quiet check: asks the queue how many messages it has ready.
    pub(super) async fn check_quiet(&mut self, channel: &Channel, queue: &str) -> Quiet {
        match ready(channel, queue).await {
            Ok(0) => Quiet::Complete,
            // A failed check ends the phase elsewhere (the channel closes); until then, wait.
            _ if self.last.elapsed() < MAX_WAIT => {
                // Ask again after another quiet period.
                self.last = Instant::now() - QUIET.saturating_sub(Duration::from_millis(50));
                Quiet::Waiting
            }
            _ => Quiet::GaveUp,
        }
    }

    /// Widens the window by `prefetch` more messages on a new consumer; returns the
    /// deliveries the old consumer had buffered, or `None` when the window is at [`MAX_WINDOW`]
    /// already. The new consumer needs a tag of its own: a quorum queue takes a consumer
    /// registered again under its old tag as the old one, its window still full.
    pub(super) async fn widen(
        &mut self,
        channel: &Channel,
        consumer: &mut Consumer,
        queue: &str,
        tag: &str,
        prefetch: u16,
    ) -> Result<Option<Vec<Delivery>>, lapin::Error> {
        if self.window >= MAX_WINDOW {
            return Ok(None);
        }
        channel
            .basic_cancel(
                ShortString::from(self.consumer_tag(tag)),
                BasicCancelOptions::default(),
            )
            .await?;
        // The cancelled consumer yields what it had buffered, then ends.
        let mut taken = Vec::new();
        while let Some(delivery) = consumer.next().await {
            taken.push(delivery?);
        }
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        self.widened += 1;
        *consumer = channel
            .basic_consume(
                ShortString::from(queue),
                ShortString::from(self.consumer_tag(tag)),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.window += usize::from(prefetch);
        self.last = Instant::now();
        Ok(Some(taken))
    }

    /// The tag of the current consumer, `base` widened so many times.
    fn consumer_tag(&self, base: &str) -> String {
        match self.widened {
            0 => base.to_string(),
            n => format!("{base}#{n}"),
        }
    }
}

/// How many messages `queue` has ready (a passive declare, answered after every delivery the
/// broker sent on `channel` before it).
pub(super) async fn ready(channel: &Channel, queue: &str) -> Result<u32, lapin::Error> {
    crate::topology::passive_declare(channel, queue)
        .await
        .map(|q| q.message_count())
}

/// Deliveries the consumer has already buffered, without waiting for more; with `Some` when
/// the consumer ended (`Ok`: cancelled by the broker) or failed.
pub(super) async fn buffered(
    consumer: &mut Consumer,
) -> (Vec<Delivery>, Option<Result<(), lapin::Error>>) {
    let mut out = Vec::new();
    loop {
        match futures_lite::future::poll_once(consumer.next()).await {
            None => return (out, None),
            Some(Some(Ok(delivery))) => out.push(delivery),
            Some(Some(Err(e))) => return (out, Some(Err(e))),
            Some(None) => return (out, Some(Ok(()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_delivery_ends_the_run_and_a_redelivered_one_keeps_it_open() {
        let mut run = Redelivery::new(20);
        assert!(run.is_open());
        run.delivered(true);
        assert!(run.is_open());
        assert!(run.quiet_at().is_some());
        run.delivered(false);
        assert!(!run.is_open());
        assert!(run.quiet_at().is_none(), "a closed run has no quiet check");
        run.delivered(true);
        assert!(!run.is_open(), "a closed run never opens again");
    }

    #[test]
    fn the_window_is_full_only_while_the_run_is_open() {
        let mut run = Redelivery::new(20);
        assert!(!run.window_full(19));
        assert!(run.window_full(20));
        run.close();
        assert!(!run.window_full(20));
    }

    #[test]
    fn each_widened_consumer_has_a_tag_of_its_own() {
        let mut run = Redelivery::new(20);
        assert_eq!(run.consumer_tag("p/a"), "p/a");
        run.widened = 2;
        assert_eq!(run.consumer_tag("p/a"), "p/a#2");
    }
}
