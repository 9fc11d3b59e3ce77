//! Presence: running pushers announce themselves on a fanout exchange every
//! `presence_interval_ms`, with the partners they can serve and the status of the partners they
//! consume. Every pusher keeps the same board of who is alive, so they all compute the same
//! [`crate::assignment`]; `pusher partners` and `pusher status` read the same announcements to
//! show who is active, how each partner's endpoint is doing and how old its oldest waiting
//! message is, and so do the metrics of every pusher ([`crate::metrics`]). Nothing here is durable: a pusher that stops
//! announcing is forgotten after `presence_expiry_ms`.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Consumer};
use serde::{Deserialize, Serialize};

/// What one pusher says about one partner it consumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartnerStatus {
    /// "discovering", "consuming", "paused", "stopping".
    pub state: String,
    /// Why it is paused (or the last problem), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// "ok (2.2.1: cdrs, locations, ...)", "unreachable: ...", "not discovered yet".
    pub endpoint: String,
    /// Deliveries this pusher holds unacked (waiting or in flight).
    pub unacked: u64,
    /// Calls in flight.
    pub in_flight: u64,
    /// Messages acknowledged after a successful call since this pusher took the partner.
    pub pushed: u64,
    /// Messages this pusher parked.
    pub parked: u64,
    /// Last successful call, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
    /// When the oldest message this pusher holds unacked was published (the AMQP timestamp the
    /// bridge sets, seconds since the epoch); `None` when it holds none. Kept while the partner
    /// is paused: the message then waits at the head of the queue, still the oldest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_published: Option<u64>,
    /// Set while the partner is cut off for its backlog (see `backlog`): why and since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_off: Option<String>,
}

/// One presence announcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    pub pusher: String,
    /// Partner ids this pusher is configured for.
    pub serves: Vec<String>,
    /// Partners this pusher consumes now, with their status.
    pub partners: BTreeMap<String, PartnerStatus>,
    /// Sent once at a clean stop, so the others take over without waiting for the expiry.
    #[serde(default)]
    pub leaving: bool,
}

/// Who is alive, as far as this pusher has heard.
#[derive(Debug, Default)]
pub struct Board {
    seen: HashMap<String, (Instant, Announcement)>,
}

impl Board {
    pub fn record(&mut self, announcement: Announcement, now: Instant) {
        if announcement.leaving {
            self.seen.remove(&announcement.pusher);
        } else {
            self.seen
                .insert(announcement.pusher.clone(), (now, announcement));
        }
    }

    /// Forgets pushers silent for longer than `expiry`; true when someone was forgotten.
    pub fn expire(&mut self, now: Instant, expiry: Duration) -> bool {
        let before = self.seen.len();
        self.seen
            .retain(|_, (at, _)| now.saturating_duration_since(*at) <= expiry);
        self.seen.len() != before
    }

    pub fn alive(&self) -> impl Iterator<Item = &Announcement> {
        self.seen.values().map(|(_, a)| a)
    }
}

/// The senders of refused announcements already warned about, so each is said once (bounded:
/// past [`Strangers::LIMIT`] users, no more warnings).
#[derive(Debug, Default)]
pub struct Strangers {
    warned: std::collections::HashSet<String>,
}

impl Strangers {
    pub const LIMIT: usize = 100;

    /// True the first time `user` is seen (while fewer than `LIMIT` were).
    pub fn first_time(&mut self, user: &str) -> bool {
        if self.warned.len() >= Self::LIMIT || self.warned.contains(user) {
            return false;
        }
        self.warned.insert(user.to_string())
    }
}

/// Declares this pusher's private, self-deleting queue on the presence exchange and consumes it.
pub async fn listen(channel: &Channel, exchange: &str) -> Result<Consumer, lapin::Error> {
    let queue = channel
        .queue_declare(
            ShortString::from(""),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            ShortString::from(exchange),
            ShortString::from(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .basic_consume(
            queue.name().clone(),
            ShortString::from(""),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Publishes an announcement (transient: a lost one is replaced by the next) with `user_id`
/// `user`, the broker user this pusher logs in as: the others hear announcements only from
/// `broker.pusher_users` ([`crate::senders`]).
pub async fn announce(
    channel: &Channel,
    exchange: &str,
    user: &str,
    announcement: &Announcement,
) -> Result<(), lapin::Error> {
    let body = serde_json::to_vec(announcement).unwrap_or_default();
    channel
        .basic_publish(
            ShortString::from(exchange),
            ShortString::from(""),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default()
                .with_content_type(ShortString::from("application/json"))
                .with_user_id(ShortString::from(user))
                .with_expiration(ShortString::from("10000")),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &str, leaving: bool) -> Announcement {
        Announcement {
            pusher: name.into(),
            serves: vec!["p".into()],
            partners: BTreeMap::new(),
            leaving,
        }
    }

    #[test]
    fn silent_pushers_expire_and_leaving_ones_go_at_once() {
        let mut board = Board::default();
        let t0 = Instant::now();
        board.record(a("x", false), t0);
        board.record(a("y", false), t0 + Duration::from_secs(4));
        assert!(board.expire(t0 + Duration::from_secs(6), Duration::from_secs(5)));
        let names: Vec<_> = board.alive().map(|a| a.pusher.clone()).collect();
        assert_eq!(names, vec!["y"]);
        board.record(a("y", true), t0 + Duration::from_secs(7));
        assert_eq!(board.alive().count(), 0);
    }

    #[test]
    fn a_stranger_is_warned_about_once_and_the_list_is_bounded() {
        let mut strangers = Strangers::default();
        assert!(strangers.first_time("mallory"));
        assert!(!strangers.first_time("mallory"));
        for i in 1..Strangers::LIMIT {
            assert!(strangers.first_time(&format!("u{i}")));
        }
        assert!(!strangers.first_time("one-more"));
    }

    #[test]
    fn announcements_round_trip_as_json() {
        let mut ann = a("x", false);
        ann.partners.insert(
            "p".into(),
            PartnerStatus {
                state: "consuming".into(),
                endpoint: "ok".into(),
                unacked: 3,
                ..PartnerStatus::default()
            },
        );
        let text = serde_json::to_string(&ann).unwrap();
        assert_eq!(serde_json::from_str::<Announcement>(&text).unwrap(), ann);
    }
}
