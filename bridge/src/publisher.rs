//! Publishes to the fanout exchange on one channel with pipelined publisher confirms.
//!
//! Every message stays in `in_flight` until the broker confirms it, in publishing order, with
//! checkpoint markers between them. A marker reaches the head only once everything published
//! before it is confirmed: that is the moment its position may be saved. When the connection
//! fails, everything still in `in_flight` is published again, in the same order, on a new
//! connection (duplicates are allowed, losses are not).
//!
//! Publishing does not wait for lapin's I/O thread to write each message: lapin queues a
//! publish's frames, in call order, during the first poll of `basic_publish`, and only then
//! waits for the write. `publish_pipelined` polls once and keeps the rest of the future with
//! the message (`Sent::Writing`); the write and the broker's confirm are awaited together, at
//! the head of `in_flight`. Awaiting every write instead costs two thread switches per message,
//! which was half of the bridge's CPU during an initial sync. The order rests on that lapin
//! behaviour (4.12): the end-to-end order tests (tests/tests/bridge_*.rs) fail if an upgrade
//! changes it.

use crate::checkpoint::Checkpoint;
use crate::config::redact_url;
use crate::publish_refusals::{RefusalStreak, Verdict};
use crate::publish_window::ConfirmWindow;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_connect::TlsConfig;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "the broker returned a message as unroutable: no queue is bound to exchange `{exchange}`, \
         so the change would be dropped. Publishing stopped; bind at least one queue (add a \
         partner) and restart the bridge"
    )]
    Unroutable { exchange: String },
    #[error(
        "the broker returned a snapshot row of an initial sync as unroutable: queue `{queue}` no \
         longer exists. Publishing stopped; cancel the sync (`bridge sync cancel --queue {queue}`) \
         or declare the queue again, then restart the bridge"
    )]
    SnapshotQueueGone { queue: String },
    #[error(
        "the broker refused a message as larger than its max_message_size ({reply}), although \
         it is within broker.max_message_bytes: the broker's limit is lower than the bridge's. \
         Publishing stopped (it would be refused again after every reconnect); set \
         broker.max_message_bytes below the broker's max_message_size, or raise \
         max_message_size in rabbitmq.conf on every node, then start the bridge again"
    )]
    BrokerSizeLimit { reply: String },
    #[error(
        "the broker refused (basic.nack) the same message for {lasted_secs} s ({attempts} \
         attempts, broker.refused_publish_timeout_secs): {target} takes no more messages, \
         most likely because it has a length limit (x-max-length or x-max-length-bytes, as an \
         argument or a policy) with overflow = reject-publish and is full, for instance the \
         queue of a partner that has been offline. Publishing stopped; the checkpoint stays \
         before the message, so nothing is lost. Find the queue with `rabbitmqctl list_queues \
         name messages message_bytes policy arguments`, then let it drain (start its pusher), \
         raise or remove its limit, or delete the queue of a partner given up for good (it \
         needs a re-sync later); then start the bridge again"
    )]
    Refused {
        /// "a queue bound to exchange `x`" or "queue `q` (the target of an initial sync)".
        target: String,
        lasted_secs: u64,
        attempts: u32,
    },
    /// A change too large for `broker.max_message_bytes` with `broker.on_too_large = "stop"`.
    #[error(transparent)]
    TooLarge(#[from] crate::message_size::TooLargeError),
    #[error("stopped while waiting for the broker")]
    Interrupted,
    /// The TLS settings (`broker.url`, `[broker.tls]`) do not fit the broker.
    #[error("{0}")]
    Tls(String),
}

/// A message ready to publish; its body is kept until confirmed so it can be sent again.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub body: Arc<Vec<u8>>,
    pub properties: BasicProperties,
    /// `None`: to the fanout exchange (every partner). `Some(queue)`: to that one queue only,
    /// through the default exchange (snapshot rows of an initial sync).
    pub queue: Option<Arc<str>>,
}

enum InFlight {
    Message {
        message: Box<Outgoing>,
        /// `None`: not sent on the current link (it was down); `connect` sends it.
        confirm: Option<Sent>,
    },
    Marker(Checkpoint),
}

type Writing = Pin<Box<dyn Future<Output = Result<PublisherConfirm, lapin::Error>> + Send>>;

/// A message handed to lapin: its frames are queued; first the write, then the confirm.
pub enum Sent {
    Writing(Writing),
    Confirming(PublisherConfirm),
}

impl Sent {
    /// The broker's answer. Cancel-safe: a finished write is kept as `Confirming`, so dropping
    /// this future and calling it again goes on where it stopped.
    pub async fn confirmation(&mut self) -> Result<Confirmation, lapin::Error> {
        loop {
            match self {
                Sent::Writing(write) => *self = Sent::Confirming(write.await?),
                Sent::Confirming(confirm) => return confirm.await,
            }
        }
    }
}

struct Link {
    connection: Connection,
    channel: Arc<Channel>,
}

pub struct Publisher {
    url: String,
    exchange: String,
    window: ConfirmWindow,
    tls: TlsConfig,
    link: Option<Link>,
    in_flight: VecDeque<InFlight>,
    stop: watch::Receiver<bool>,
    /// When the head of `in_flight` last moved, to report stalls (e.g. a blocked broker).
    last_progress: Instant,
    blocked: Arc<std::sync::Mutex<Option<String>>>,
    /// What every message of this publisher carries, built once: see [`base_properties`].
    base: BasicProperties,
    /// Refusals (nacks) since the last confirm, and when to stop retrying them.
    refusals: RefusalStreak,
    /// A pause `connect` takes before it reconnects (after a refusal).
    pause_before_connect: Option<Duration>,
    /// Publishes confirmed so far.
    pub confirmed: u64,
}

/// The properties every message to `url` carries: content type, persistence, and `user_id`,
/// the broker user the connection logs in as. The broker refuses a publish whose `user_id` is
/// not the connection's user, so a pusher can tell the bridge's messages from anyone else's
/// (pusher `broker.bridge_users`). Built once per publisher; each message clones it.
pub fn base_properties(url: &str) -> BasicProperties {
    let base = BasicProperties::default()
        .with_content_type(ShortString::from(change_message::CONTENT_TYPE))
        .with_delivery_mode(2);
    match tls_connect::broker::login_user(url) {
        Some(user) => base.with_user_id(ShortString::from(user)),
        // Not reached: the URL was checked when the configuration loaded.
        None => base,
    }
}

/// Builds the AMQP properties of a change or heartbeat message on `base` ([`base_properties`]).
pub fn properties(
    base: &BasicProperties,
    id: &str,
    kind: &str,
    headers: &[(&str, AMQPValue)],
    timestamp: u64,
) -> BasicProperties {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        table.insert(ShortString::from(*name), value.clone());
    }
    base.clone()
        .with_message_id(ShortString::from(id))
        .with_type(ShortString::from(kind))
        .with_timestamp(timestamp)
        .with_headers(table)
}

pub fn text_header(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

impl Publisher {
    pub fn new(
        url: &str,
        tls: &TlsConfig,
        exchange: &str,
        window: ConfirmWindow,
        refused_timeout: Duration,
        stop: watch::Receiver<bool>,
    ) -> Publisher {
        Publisher {
            url: url.to_string(),
            tls: tls.clone(),
            exchange: exchange.to_string(),
            window,
            link: None,
            in_flight: VecDeque::new(),
            stop,
            last_progress: Instant::now(),
            blocked: Arc::new(std::sync::Mutex::new(None)),
            base: base_properties(url),
            refusals: RefusalStreak::new(refused_timeout),
            pause_before_connect: None,
            confirmed: 0,
        }
    }

    /// The properties every message of this publisher starts from ([`base_properties`]).
    pub fn base(&self) -> &BasicProperties {
        &self.base
    }

    pub fn has_room(&self) -> bool {
        self.window.has_room()
    }

    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    pub fn unconfirmed(&self) -> usize {
        self.window.messages()
    }

    /// How long the oldest unconfirmed message has waited, and why if the broker said.
    pub fn stall(&self) -> Option<(Duration, Option<String>)> {
        if self.window.messages() == 0 {
            return None;
        }
        let reason = self.blocked.lock().ok().and_then(|b| b.clone());
        Some((self.last_progress.elapsed(), reason))
    }

    async fn open_link(&self) -> Result<Link, lapin::Error> {
        let properties =
            ConnectionProperties::default().with_connection_name(LongString::from("cdc-bridge"));
        let connection = tls_connect::broker::connect(&self.url, properties, &self.tls).await?;
        let blocked = self.blocked.clone();
        tls_connect::broker::watch_blocked(&connection, move |reason| {
            match &reason {
                Some(reason) => tracing::error!(
                    %reason,
                    "the broker BLOCKED publishing (resource alarm: disk or memory). No change \
                     can be published until an operator frees disk space or memory on the broker"
                ),
                None => tracing::warn!("the broker unblocked publishing"),
            }
            if let Ok(mut b) = blocked.lock() {
                *b = reason;
            }
        });
        match self.open_channel(&connection).await {
            Ok(channel) => Ok(Link {
                connection,
                channel: Arc::new(channel),
            }),
            Err(error) => {
                tls_connect::broker::close(&connection, "reconnecting").await;
                Err(error)
            }
        }
    }

    async fn open_channel(&self, connection: &Connection) -> Result<Channel, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .exchange_declare(
                ShortString::from(self.exchange.as_str()),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(channel)
    }

    /// True after a failed publish or confirm: `connect` must run before anything else moves.
    pub fn needs_reconnect(&self) -> bool {
        self.link.is_none()
    }

    /// Connects (or reconnects) with capped exponential backoff, saying what it waits for, then
    /// publishes everything unconfirmed again in order.
    ///
    /// Never call it from a `select!` branch: it must run to completion, or the backoff state
    /// and half-open connections are lost.
    pub async fn connect(&mut self) -> Result<(), PublishError> {
        if let Some(link) = self.link.take() {
            tls_connect::broker::close(&link.connection, "reconnecting").await;
        }
        if let Some(pause) = self.pause_before_connect.take() {
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0u32;
        loop {
            if *self.stop.borrow() {
                return Err(PublishError::Interrupted);
            }
            attempt += 1;
            match self.open_link().await {
                Ok(link) => {
                    if attempt > 1 {
                        tracing::info!(attempt, "connected to the broker again");
                    }
                    self.link = Some(link);
                    match self.republish().await {
                        Ok(()) => return Ok(()),
                        Err(error) => {
                            tracing::warn!(%error, "publishing again after reconnect failed; retrying");
                            if let Some(link) = self.link.take() {
                                tls_connect::broker::close(&link.connection, "reconnecting").await;
                            }
                        }
                    }
                }
                Err(error) => {
                    if let Some(problem) =
                        tls_connect::broker::problem(&error, &self.tls, &self.url)
                    {
                        return Err(PublishError::Tls(problem));
                    }
                    tracing::warn!(
                        broker = %redact_url(&self.url),
                        exchange = %self.exchange,
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        %error,
                        "waiting for the broker"
                    );
                }
            }
            let jitter = Duration::from_millis(fastrand::u64(0..=delay.as_millis() as u64 / 4));
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(delay + jitter) => {}
                _ = stop.changed() => {}
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    async fn republish(&mut self) -> Result<(), lapin::Error> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        let mut count = 0usize;
        for entry in self.in_flight.iter_mut() {
            if let InFlight::Message { message, confirm } = entry {
                *confirm = Some(send(&link.channel, &self.exchange, message).await?);
                count += 1;
            }
        }
        if count > 0 {
            tracing::info!(
                count,
                "published unconfirmed messages again after reconnecting"
            );
        }
        self.last_progress = Instant::now();
        Ok(())
    }

    /// Queues a message and sends it; the caller checks `has_room` first to bound memory. When
    /// the link is down the message waits in the queue for `connect`.
    pub async fn publish(&mut self, message: Outgoing) -> Result<(), PublishError> {
        self.window.sent(message.body.len());
        if self.window.messages() == 1 {
            self.last_progress = Instant::now();
        }
        let sent = match &self.link {
            Some(link) => send(&link.channel, &self.exchange, &message).await.ok(),
            None => None,
        };
        if sent.is_none() {
            // The reconnect publishes this one too, with everything before it.
            self.mark_broken().await;
        }
        self.in_flight.push_back(InFlight::Message {
            message: Box::new(message),
            confirm: sent,
        });
        Ok(())
    }

    async fn mark_broken(&mut self) {
        if let Some(link) = self.link.take() {
            tls_connect::broker::close(&link.connection, "reconnecting").await;
        }
    }

    pub fn push_marker(&mut self, checkpoint: Checkpoint) {
        match self.in_flight.back_mut() {
            Some(InFlight::Marker(last)) => *last = checkpoint,
            _ => self.in_flight.push_back(InFlight::Marker(checkpoint)),
        }
    }

    /// Waits for the head of the queue to be confirmed, then takes every later confirmation that
    /// is already in, without waiting again. Returns the newest checkpoint that became safe to
    /// save, if any. Cancel-safe: it only waits while nothing has been taken yet, and a failure
    /// only marks the link broken (see `needs_reconnect`); reconnecting is the caller's next step.
    pub async fn next_confirmation(&mut self) -> Result<Option<Checkpoint>, PublishError> {
        let mut reached = None;
        let mut progressed = false;
        loop {
            let may_wait = !progressed && reached.is_none();
            let outcome = match self.in_flight.front_mut() {
                None => return Ok(reached),
                Some(InFlight::Marker(_)) => None,
                Some(InFlight::Message {
                    confirm: Some(pending),
                    ..
                }) => {
                    if may_wait {
                        Some(pending.confirmation().await)
                    } else {
                        match futures_lite::future::poll_once(pending.confirmation()).await {
                            Some(result) => Some(result),
                            None => return Ok(reached),
                        }
                    }
                }
                Some(InFlight::Message { confirm: None, .. }) => {
                    // Never sent (the link was down): `connect` sends it.
                    return Ok(reached);
                }
            };
            match outcome {
                None => {
                    if let Some(InFlight::Marker(checkpoint)) = self.in_flight.pop_front() {
                        reached = Some(checkpoint);
                    }
                }
                Some(Ok(Confirmation::Ack(None))) | Some(Ok(Confirmation::NotRequested)) => {
                    if let Some(InFlight::Message { message, .. }) = self.in_flight.pop_front() {
                        self.window.confirmed(message.body.len());
                    }
                    self.confirmed += 1;
                    self.last_progress = Instant::now();
                    self.refusals.progressed();
                    progressed = true;
                }
                Some(Ok(Confirmation::Ack(Some(_)))) => {
                    if let Some(InFlight::Message { message, .. }) = self.in_flight.front() {
                        if let Some(queue) = &message.queue {
                            return Err(PublishError::SnapshotQueueGone {
                                queue: queue.to_string(),
                            });
                        }
                    }
                    return Err(PublishError::Unroutable {
                        exchange: self.exchange.clone(),
                    });
                }
                Some(Ok(Confirmation::Nack(_))) => {
                    self.refused().await?;
                    return Ok(reached);
                }
                Some(Err(error)) => {
                    if let Some(reply) = size_refusal(&error) {
                        return Err(PublishError::BrokerSizeLimit { reply });
                    }
                    tracing::warn!(%error, unconfirmed = self.window.messages(), "lost the broker connection; reconnecting");
                    self.forget_confirms();
                    self.mark_broken().await;
                    return Ok(reached);
                }
            }
        }
    }

    /// The broker refused the head message: publish it and every later one again in order
    /// after a pause, or stop once refusals have lasted `broker.refused_publish_timeout_secs`.
    async fn refused(&mut self) -> Result<(), PublishError> {
        match self.refusals.refused(Instant::now()) {
            Verdict::RetryAfter { pause, attempt } => {
                tracing::warn!(
                    attempt,
                    retry_in_ms = pause.as_millis() as u64,
                    exchange = %self.exchange,
                    "the broker refused (nack) a message: a queue it routes to takes no more \
                     (a full queue with overflow = reject-publish?); publishing it and every \
                     later one again in order"
                );
                self.forget_confirms();
                self.mark_broken().await;
                self.pause_before_connect = Some(pause);
                Ok(())
            }
            Verdict::GiveUp { lasted, attempts } => {
                let target = match self.in_flight.front() {
                    Some(InFlight::Message { message, .. }) if message.queue.is_some() => format!(
                        "queue `{}` (the target of an initial sync)",
                        message.queue.as_deref().unwrap_or_default()
                    ),
                    _ => format!("a queue bound to exchange `{}`", self.exchange),
                };
                Err(PublishError::Refused {
                    target,
                    lasted_secs: lasted.as_secs(),
                    attempts,
                })
            }
        }
    }

    /// Drops the confirm futures of a dead link, so a finished future is never polled again.
    fn forget_confirms(&mut self) {
        for entry in self.in_flight.iter_mut() {
            if let InFlight::Message { confirm, .. } = entry {
                *confirm = None;
            }
        }
    }

    pub async fn close(&mut self) {
        if let Some(link) = self.link.take() {
            // Closing the connection closes its channel too. Closing the channel first made
            // lapin log an ERROR ("invalid channel") at every clean stop, for the broker's
            // late frames on the channel it had just forgotten.
            tls_connect::broker::close(&link.connection, "bye").await;
        }
    }
}

/// The broker's words when it closed the channel over a message above its
/// `max_message_size` (RabbitMQ: `PRECONDITION_FAILED - message size N is larger than
/// configured max size M`).
fn size_refusal(error: &lapin::Error) -> Option<String> {
    let lapin::ErrorKind::ProtocolError(amqp) = error.kind() else {
        return None;
    };
    let message = amqp.get_message().as_str();
    message
        .contains("larger than configured max size")
        .then(|| message.to_string())
}

async fn send(
    channel: &Arc<Channel>,
    exchange: &str,
    message: &Outgoing,
) -> Result<Sent, lapin::Error> {
    let (exchange, routing_key) = match &message.queue {
        None => (exchange, ""),
        Some(queue) => ("", &**queue),
    };
    publish_pipelined(
        channel,
        exchange,
        routing_key,
        message.body.clone(),
        message.properties.clone(),
    )
    .await
}

/// Publishes (mandatory) and returns once lapin has queued the frames, without waiting for
/// the write (see the module comment); await [`Sent::confirmation`] for the broker's answer.
/// An error here means the channel is already closed.
pub async fn publish_pipelined(
    channel: &Arc<Channel>,
    exchange: &str,
    routing_key: &str,
    body: Arc<Vec<u8>>,
    properties: BasicProperties,
) -> Result<Sent, lapin::Error> {
    let channel = channel.clone();
    let exchange = ShortString::from(exchange);
    let routing_key = ShortString::from(routing_key);
    let mut write: Writing = Box::pin(async move {
        channel
            .basic_publish(
                exchange,
                routing_key,
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body,
                properties,
            )
            .await
    });
    match futures_lite::future::poll_once(&mut write).await {
        Some(Ok(confirm)) => Ok(Sent::Confirming(confirm)),
        Some(Err(error)) => Err(error),
        None => Ok(Sent::Writing(write)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_carries_the_user_the_connection_logs_in_as() {
        let base = base_properties("amqp://cdc%2Dbridge:secret@127.0.0.1:5672/%2f");
        let props = properties(&base, "id-1", "change", &[], 7);
        assert_eq!(
            props.user_id().as_ref().map(|u| u.as_str()),
            Some("cdc-bridge")
        );
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(
            props.message_id().as_ref().map(|u| u.as_str()),
            Some("id-1")
        );
        let guest = base_properties("amqp://127.0.0.1:5672/%2f");
        assert_eq!(guest.user_id().as_ref().map(|u| u.as_str()), Some("guest"));
    }
}
