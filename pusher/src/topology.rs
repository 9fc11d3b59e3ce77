//! The broker objects a partner needs, declared idempotently by every pusher at start (and by
//! `pusher setup`): the bridge's fanout exchange, the partner's queue bound to it, its parking
//! queue, and the presence exchange pushers announce themselves on.
//!
//! The partner queue is a durable quorum queue with:
//! - `x-single-active-consumer`: with several pushers, only one consumes a partner at a time, so
//!   per-record order holds even while pushers disagree for a moment about who owns it;
//! - `x-delivery-limit` and a dead-letter route to the parking queue: a message that keeps
//!   coming back (say, one that kills every pusher that reads it) ends up parked instead of
//!   looping forever; with a delivery limit, a returned message also goes back to the head of
//!   a quorum queue, not to its back;
//! - `x-dead-letter-strategy = at-least-once`: the broker moves it to the parking queue with its
//!   own publisher confirms, so dead-lettering cannot lose it (this needs `x-overflow =
//!   reject-publish`, which only matters when a length limit is set; none is).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use crate::config::{BrokerConfig, PartnerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(
        "queue `{queue}` exists with other arguments than this configuration asks for \
         ({detail}); RabbitMQ cannot change them in place: drain and delete the queue \
         (rabbitmqctl delete_queue {queue}) and start the pusher again, or set \
         broker.delivery_limit back to the value the queue was created with"
    )]
    QueueMismatch { queue: String, detail: String },
    #[error("declaring `{what}` on the broker failed: {source}")]
    Broker { what: String, source: lapin::Error },
}

fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// The arguments of a partner queue; also used to recognise a mismatch.
pub fn partner_queue_arguments(delivery_limit: u32, parking_queue: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), long("quorum"));
    args.insert(
        ShortString::from("x-single-active-consumer"),
        AMQPValue::Boolean(true),
    );
    args.insert(
        ShortString::from("x-delivery-limit"),
        AMQPValue::LongLongInt(i64::from(delivery_limit)),
    );
    args.insert(ShortString::from("x-dead-letter-exchange"), long(""));
    args.insert(
        ShortString::from("x-dead-letter-routing-key"),
        long(parking_queue),
    );
    args.insert(
        ShortString::from("x-dead-letter-strategy"),
        long("at-least-once"),
    );
    args.insert(ShortString::from("x-overflow"), long("reject-publish"));
    args
}

fn parking_queue_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), long("quorum"));
    args
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declares the exchanges every pusher uses. Idempotent.
pub async fn declare_exchanges(
    channel: &Channel,
    broker: &BrokerConfig,
) -> Result<(), TopologyError> {
    for name in [&broker.exchange, &broker.presence_exchange] {
        channel
            .exchange_declare(
                ShortString::from(name.as_str()),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|source| TopologyError::Broker {
                what: format!("exchange {name}"),
                source,
            })?;
    }
    Ok(())
}

/// Declares and binds one partner's queues. Each declaration runs on a fresh channel, because a
/// refused declaration closes the channel it was made on.
pub async fn declare_partner(
    connection: &Connection,
    broker: &BrokerConfig,
    partner: &PartnerConfig,
) -> Result<(), TopologyError> {
    let channel = open(connection, &partner.queue).await?;
    declare_exchanges(&channel, broker).await?;
    channel
        .queue_declare(
            ShortString::from(partner.parking_queue.as_str()),
            durable(),
            parking_queue_arguments(),
        )
        .await
        .map_err(|source| mismatch_or_broker(&partner.parking_queue, source))?;
    channel
        .queue_declare(
            ShortString::from(partner.queue.as_str()),
            durable(),
            partner_queue_arguments(broker.delivery_limit, &partner.parking_queue),
        )
        .await
        .map_err(|source| mismatch_or_broker(&partner.queue, source))?;
    channel
        .queue_bind(
            ShortString::from(partner.queue.as_str()),
            ShortString::from(broker.exchange.as_str()),
            ShortString::from(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| TopologyError::Broker {
            what: format!("binding of {} to {}", partner.queue, broker.exchange),
            source,
        })?;
    let _ = channel.close(200, ShortString::from("declared")).await;
    Ok(())
}

async fn open(connection: &Connection, what: &str) -> Result<Channel, TopologyError> {
    connection
        .create_channel()
        .await
        .map_err(|source| TopologyError::Broker {
            what: format!("channel for {what}"),
            source,
        })
}

fn mismatch_or_broker(queue: &str, source: lapin::Error) -> TopologyError {
    let text = source.to_string();
    if text.contains("PRECONDITION_FAILED") || text.contains("inequivalent arg") {
        TopologyError::QueueMismatch {
            queue: queue.to_string(),
            detail: text,
        }
    } else {
        TopologyError::Broker {
            what: format!("queue {queue}"),
            source,
        }
    }
}
