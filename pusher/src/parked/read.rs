//! Reading a parking queue in bounded memory, however many messages it holds.
//!
//! Why: a partner refusing a whole table for a week can leave millions of messages parked, and
//! `pusher parked list/replay/discard` must work on them without holding them all. The commands
//! pull one message at a time (`basic.get`) and keep every message they read unacked, so a
//! message is never lost and what a command does not remove goes back to the head of the
//! queue, in order, when its channel closes. Not a consumer: a consumer's prefetch counts the
//! unacked messages, so one holding them all would need an unbounded prefetch, and the broker
//! would push the whole queue into the client's memory. What they keep in
//! memory is up to the caller: `list` a description per message shown, `discard` counts, and
//! `replay` one window of bodies at a time ([`ParkedReader::window`]).
//!
//! A command reads at most the messages that were ready when it began: anything parked later
//! is behind them, and is left for the next run.

use lapin::options::BasicGetOptions;
use lapin::types::ShortString;
use lapin::Channel;

use super::{Held, ParkedError};

/// A replay's window: at most this many messages by default (`--window`)...
pub const WINDOW_MESSAGES: usize = 10_000;
/// ...and about this many bytes of bodies (a message larger than that comes alone).
pub const WINDOW_BYTES: usize = 64 << 20;

/// Reads the messages of one parking queue, oldest first, holding them unacked.
pub struct ParkedReader<'c> {
    channel: &'c Channel,
    queue: String,
    /// Messages still to read (ready when the command began, minus those read).
    left: usize,
}

impl<'c> ParkedReader<'c> {
    /// Reads at most `max` messages of `queue` on `channel`.
    pub fn new(channel: &'c Channel, queue: &str, max: usize) -> ParkedReader<'c> {
        ParkedReader {
            channel,
            queue: queue.to_string(),
            left: max,
        }
    }

    /// The next message, or `None` once `max` were read (or the queue holds no more).
    pub async fn next(&mut self) -> Result<Option<Held>, ParkedError> {
        if self.left == 0 {
            return Ok(None);
        }
        let got = self
            .channel
            .basic_get(
                ShortString::from(self.queue.as_str()),
                BasicGetOptions { no_ack: false },
            )
            .await
            .map_err(|source| ParkedError::Broker {
                what: format!("reading parked messages from {}", self.queue),
                source,
            })?;
        let Some(message) = got else {
            self.left = 0;
            return Ok(None);
        };
        self.left -= 1;
        let delivery = message.delivery;
        Ok(Some(Held {
            tag: delivery.delivery_tag,
            body: delivery.data,
            properties: delivery.properties,
        }))
    }

    /// The next messages, up to `messages` of them and about `bytes` of bodies; empty at the
    /// end. Their bodies are the only ones held: a replay plans, publishes and acks one window
    /// before it reads the next.
    pub async fn window(
        &mut self,
        messages: usize,
        bytes: usize,
    ) -> Result<Vec<Held>, ParkedError> {
        let mut window = Vec::new();
        let mut size = 0;
        while window.len() < messages && (window.is_empty() || size < bytes) {
            let Some(held) = self.next().await? else {
                break;
            };
            size += held.body.len();
            window.push(held);
        }
        Ok(window)
    }
}
