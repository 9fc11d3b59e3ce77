//! Parking: what a partner permanently refused, or what cannot become an OCPI call at all
//! (malformed JSON, an unmapped table, a missing key), is published to the partner's parking
//! queue with the reason in its headers, and only then acknowledged. Nothing is dropped
//! silently: an operator lists the parking queue, fixes the cause and replays, or discards
//! (`pusher parked`, [`crate::parked`]).
//!
//! Publishes go through a small pool (deadpool) of confirm-mode channels shared by all partners
//! of this pusher: a park waits for the broker's confirm (the message is on disk in the parking
//! queue) before the original is acked, and a channel that failed is dropped, not reused.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use deadpool::managed::{self, Metrics, Pool, RecycleError, RecycleResult};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use crate::senders::HEADER_PUBLISHED_BY;

/// Header carrying why a message was parked.
pub const HEADER_REASON: &str = "x-park-reason";
/// Header naming the partner whose queue the message came from.
pub const HEADER_PARTNER: &str = "x-park-partner";
/// Header naming the pusher that parked it.
pub const HEADER_PARKED_BY: &str = "x-parked-by";
/// Header with the parking time, RFC 3339 UTC.
pub const HEADER_PARKED_AT: &str = "x-parked-at";

#[derive(Debug, thiserror::Error)]
pub enum ParkError {
    #[error("no channel to the broker for parking: {0}")]
    Channel(String),
    #[error("publishing to parking queue `{queue}` failed: {source}")]
    Publish { queue: String, source: lapin::Error },
    #[error(
        "parking queue `{queue}` does not exist (the broker returned the message): run \
         `pusher setup` or restart the pusher to declare it"
    )]
    NoQueue { queue: String },
    #[error("the broker refused (nacked) the parked message for `{queue}`")]
    Nacked { queue: String },
}

/// Opens confirm-mode channels on the pusher's connection.
pub struct ConfirmChannels {
    connection: Arc<Connection>,
}

impl managed::Manager for ConfirmChannels {
    type Type = Channel;
    type Error = lapin::Error;

    async fn create(&self) -> Result<Channel, lapin::Error> {
        let channel = self.connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }

    async fn recycle(&self, channel: &mut Channel, _: &Metrics) -> RecycleResult<lapin::Error> {
        if channel.status().connected() {
            Ok(())
        } else {
            Err(RecycleError::message("channel closed"))
        }
    }
}

/// Publishes parked messages; cheap to clone.
#[derive(Clone)]
pub struct Parker {
    pool: Pool<ConfirmChannels>,
    pusher: String,
    /// The broker user this pusher logs in as: the `user_id` of what it parks.
    user: ShortString,
}

impl Parker {
    pub fn new(connection: Arc<Connection>, pusher: &str, user: &str) -> Result<Parker, ParkError> {
        let pool = Pool::builder(ConfirmChannels { connection })
            .max_size(4)
            .build()
            .map_err(|e| ParkError::Channel(e.to_string()))?;
        Ok(Parker {
            pool,
            pusher: pusher.to_string(),
            user: ShortString::from(user),
        })
    }

    /// Publishes `body` (the original message, unchanged) with its properties and the reason;
    /// returns once the broker confirmed it. Its `user_id` becomes this pusher's (the broker
    /// refuses any other); who first published it stays in
    /// [`crate::senders::HEADER_PUBLISHED_BY`].
    pub async fn park(
        &self,
        queue: &str,
        partner: &str,
        body: &[u8],
        original: &BasicProperties,
        reason: &str,
    ) -> Result<(), ParkError> {
        let channel = self
            .pool
            .get()
            .await
            .map_err(|e| ParkError::Channel(e.to_string()))?;
        let mut headers = original.headers().clone().unwrap_or_default();
        let text = |v: &str| AMQPValue::LongString(LongString::from(v));
        headers.insert(ShortString::from(HEADER_REASON), text(reason));
        headers.insert(ShortString::from(HEADER_PARTNER), text(partner));
        headers.insert(ShortString::from(HEADER_PARKED_BY), text(&self.pusher));
        headers.insert(ShortString::from(HEADER_PARKED_AT), text(&now_rfc3339()));
        if let Some(first) = crate::senders::published_by(original) {
            headers.insert(ShortString::from(HEADER_PUBLISHED_BY), first);
        }
        let properties = original
            .clone()
            .with_delivery_mode(2)
            .with_user_id(self.user.clone())
            .with_headers(headers);
        let publish_error = |source| ParkError::Publish {
            queue: queue.to_string(),
            source,
        };
        let confirm = channel
            .basic_publish(
                ShortString::from(""),
                ShortString::from(queue),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .map_err(publish_error)?;
        match confirm.await.map_err(publish_error)? {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(ParkError::NoQueue {
                queue: queue.to_string(),
            }),
            Confirmation::Nack(_) => Err(ParkError::Nacked {
                queue: queue.to_string(),
            }),
        }
    }
}

/// Now as RFC 3339 UTC, second precision.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    change_message::calendar::rfc3339_from_unix_seconds(secs)
}
