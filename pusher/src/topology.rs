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
//!
//! The parking queue is a durable quorum queue whose messages must survive being read: `pusher
//! parked list` (and a replay or discard that is declined) takes messages without acking them
//! and closes its channel, which returns them to the head of the queue in order. Every such
//! return counts as a delivery, so the parking queue must have no delivery limit, and which
//! argument says "no limit" depends on the broker (measured on 3.10.8, documented for 4.x):
//! - RabbitMQ 3.x: no `x-delivery-limit` argument means no limit. `-1` would be taken as a
//!   limit below every count: the first return drops every message read;
//! - RabbitMQ 4.x: quorum queues without the argument get a default limit of 20, and the
//!   parking queue has nowhere to dead-letter to, so the 20th listing would drop the messages;
//!   `x-delivery-limit = -1` turns the limit off.
//!
//! So the pusher asks the broker its version (the AMQP handshake announces it) and declares
//! accordingly. A parking queue that already exists with other arguments (created under 3.x
//! before the broker moved to 4.x, or by an older pusher) is refused with the fix, since
//! RabbitMQ cannot change a queue's arguments in place.

use std::io::{Read as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use crate::config::{BrokerConfig, PartnerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(
        "queue `{queue}` exists with other arguments than this configuration asks for \
         ({detail}); RabbitMQ cannot change them in place: {fix}"
    )]
    QueueMismatch {
        queue: String,
        detail: String,
        /// What to do about it, for this kind of queue.
        fix: String,
    },
    #[error("declaring `{what}` on the broker failed: {source}")]
    Broker { what: String, source: lapin::Error },
    #[error(
        "cannot tell which RabbitMQ version runs at {url} (needed to declare parking queues \
         right): {reason}; check broker.url / PUSHER_BROKER_URL"
    )]
    BrokerVersion { url: String, reason: String },
}

/// The fix for a partner queue declared with other arguments.
fn partner_queue_fix(queue: &str) -> String {
    format!(
        "drain and delete the queue (rabbitmqctl delete_queue {queue}) and start the pusher \
         again, or set broker.delivery_limit back to the value the queue was created with"
    )
}

/// The fix for a parking queue declared with other arguments (see the module documentation).
pub fn parking_queue_fix(queue: &str, partner: &str) -> String {
    format!(
        "this pusher declares parking queues without a delivery limit (`x-delivery-limit = -1` \
         on RabbitMQ 4, no argument on 3.x), because reading parked messages returns them to \
         the queue and each return counts: with a limit (RabbitMQ 4 sets 20 by default) parked \
         messages are dropped after that many readings. Re-create it: empty it with `pusher \
         parked replay {partner}` (CDRs among them are released and POSTed again: check them \
         first with `pusher parked list {partner}`) or `pusher parked discard {partner}`, then \
         `rabbitmqctl delete_queue {queue}` and `pusher setup`"
    )
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

/// The arguments of a parking queue on a broker of major version `broker_major`: a quorum
/// queue without a delivery limit (see the module documentation).
pub fn parking_queue_arguments(broker_major: u32) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), long("quorum"));
    if broker_major >= 4 {
        args.insert(
            ShortString::from("x-delivery-limit"),
            AMQPValue::LongLongInt(-1),
        );
    }
    args
}

/// How long the version probe may take to connect and to read the broker's greeting.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a probed broker version is reused: a session declares all its partners within
/// moments, so they share one probe (each leaves a "client unexpectedly closed TCP connection"
/// line in the broker's log), while a broker restarted on a new version is probed afresh.
const PROBE_REUSE: Duration = Duration::from_secs(60);

/// The last probe: broker URL, when, major version.
static LAST_PROBE: Mutex<Option<(String, Instant, u32)>> = Mutex::new(None);

/// The major version of the RabbitMQ at `url` (3, 4, ...), read from the `version` server
/// property of the AMQP handshake's `connection.start`: the client library does not keep it.
/// Opens a TCP connection, reads the greeting and hangs up before authenticating.
pub async fn broker_major_version(
    url: &str,
    tls: &tls_connect::TlsConfig,
) -> Result<u32, TopologyError> {
    let cached = LAST_PROBE.lock().ok().and_then(|last| {
        last.as_ref()
            .filter(|(u, at, _)| u == url && at.elapsed() < PROBE_REUSE)
            .map(|(_, _, major)| *major)
    });
    if let Some(major) = cached {
        return Ok(major);
    }
    let error = |reason: String| TopologyError::BrokerVersion {
        url: crate::config::redact_url(url),
        reason,
    };
    let uri: lapin::uri::AMQPUri = url.parse().map_err(|e: String| error(e))?;
    let (host, port) = (uri.authority.host.clone(), uri.authority.port);
    let tls = tls.clone();
    let version = tokio::task::spawn_blocking(move || greeting_version(&host, port, &tls))
        .await
        .map_err(|e| error(e.to_string()))?
        .map_err(error)?;
    let major =
        parse_major(&version).ok_or_else(|| error(format!("unknown version {version:?}")))?;
    if let Ok(mut last) = LAST_PROBE.lock() {
        *last = Some((url.to_string(), Instant::now(), major));
    }
    Ok(major)
}

/// `connection.start`'s `version` server property from the broker at `host:port`.
fn greeting_version(host: &str, port: u16, tls: &tls_connect::TlsConfig) -> Result<String, String> {
    use std::net::ToSocketAddrs as _;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} resolves to no address"))?;
    let mut stream = tls_connect::broker::blocking_stream(addr, host, PROBE_TIMEOUT, tls)
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let io = |e: std::io::Error| format!("reading the AMQP greeting of {host}:{port}: {e}");
    stream.write_all(b"AMQP\x00\x00\x09\x01").map_err(io)?;
    let mut header = [0u8; 7];
    stream.read_exact(&mut header).map_err(io)?;
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
    if header[0] != 1 || size > 1 << 20 {
        return Err(format!(
            "{host}:{port} did not answer with an AMQP 0-9-1 greeting"
        ));
    }
    let mut payload = vec![0u8; size + 1];
    stream.read_exact(&mut payload).map_err(io)?;
    version_from_start(&payload[..size])
        .ok_or_else(|| format!("{host}:{port} sent a greeting without a version"))
}

/// The `version` server property of a `connection.start` method payload.
fn version_from_start(payload: &[u8]) -> Option<String> {
    // class 10 (connection), method 10 (start), protocol major and minor, server properties.
    if payload.get(..4)? != [0, 10, 0, 10] {
        return None;
    }
    let (_, properties) = lapin::types::parsing::parse_field_table(payload.get(6..)?).ok()?;
    match properties.inner().get("version")? {
        AMQPValue::LongString(v) => Some(v.to_string()),
        AMQPValue::ShortString(v) => Some(v.as_str().to_string()),
        _ => None,
    }
}

/// 3 for "3.10.8", 4 for "4.1.0-rc.1".
fn parse_major(version: &str) -> Option<u32> {
    version.split('.').next()?.trim().parse().ok()
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
    bind: bool,
) -> Result<(), TopologyError> {
    let broker_major = broker_major_version(&broker.url, &broker.tls).await?;
    let channel = open(connection, &partner.queue).await?;
    declare_exchanges(&channel, broker).await?;
    channel
        .queue_declare(
            ShortString::from(partner.parking_queue.as_str()),
            durable(),
            parking_queue_arguments(broker_major),
        )
        .await
        .map_err(|source| {
            mismatch_or_broker(
                &partner.parking_queue,
                source,
                parking_queue_fix(&partner.parking_queue, &partner.id),
            )
        })?;
    channel
        .queue_declare(
            ShortString::from(partner.queue.as_str()),
            durable(),
            partner_queue_arguments(broker.delivery_limit, &partner.parking_queue),
        )
        .await
        .map_err(|source| {
            mismatch_or_broker(&partner.queue, source, partner_queue_fix(&partner.queue))
        })?;
    if !bind {
        tls_connect::broker::close_channel(&channel, "declared").await;
        return Ok(());
    }
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
    tls_connect::broker::close_channel(&channel, "declared").await;
    Ok(())
}

/// A passive declaration of `queue` on `channel`: whether it exists, and its ready messages and
/// consumers. A queue that does not exist closes the channel (404).
pub async fn passive_declare(channel: &Channel, queue: &str) -> Result<lapin::Queue, lapin::Error> {
    channel
        .queue_declare(
            ShortString::from(queue),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
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

/// A refused declaration: a mismatch (with `fix`) when the broker says the queue exists with
/// other arguments.
pub fn mismatch_or_broker(queue: &str, source: lapin::Error, fix: String) -> TopologyError {
    let text = source.to_string();
    if text.contains("PRECONDITION_FAILED") || text.contains("inequivalent arg") {
        TopologyError::QueueMismatch {
            queue: queue.to_string(),
            detail: text,
            fix,
        }
    } else {
        TopologyError::Broker {
            what: format!("queue {queue}"),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parking_queues_have_no_delivery_limit_on_either_broker_line() {
        let v3 = parking_queue_arguments(3);
        assert!(v3.inner().get("x-delivery-limit").is_none(), "{v3:?}");
        let v4 = parking_queue_arguments(4);
        assert_eq!(
            v4.inner().get("x-delivery-limit"),
            Some(&AMQPValue::LongLongInt(-1))
        );
        for args in [v3, v4] {
            assert_eq!(
                args.inner().get("x-queue-type"),
                Some(&long("quorum")),
                "still a quorum queue"
            );
        }
    }

    /// A `connection.start` payload carrying these long-string server properties.
    fn start_payload(properties: &[(&str, &str)]) -> Vec<u8> {
        let mut table = Vec::new();
        for (key, value) in properties {
            table.push(key.len() as u8);
            table.extend_from_slice(key.as_bytes());
            table.push(b'S');
            table.extend_from_slice(&(value.len() as u32).to_be_bytes());
            table.extend_from_slice(value.as_bytes());
        }
        let mut payload = vec![0, 10, 0, 10, 0, 9];
        payload.extend_from_slice(&(table.len() as u32).to_be_bytes());
        payload.extend_from_slice(&table);
        payload.extend_from_slice(&[0, 0, 0, 5]);
        payload.extend_from_slice(b"PLAIN");
        payload
    }

    #[test]
    fn the_major_version_is_read_from_the_greeting() {
        let payload = start_payload(&[("product", "RabbitMQ"), ("version", "3.10.8")]);
        assert_eq!(version_from_start(&payload).as_deref(), Some("3.10.8"));
        assert_eq!(parse_major("3.10.8"), Some(3));
        assert_eq!(parse_major("4.1.0-rc.1"), Some(4));
        assert_eq!(parse_major("garbage"), None);
        assert_eq!(
            version_from_start(&start_payload(&[("product", "X")])),
            None
        );
        assert_eq!(
            version_from_start(&[0, 10, 0, 11, 0, 9]),
            None,
            "not connection.start"
        );
    }
}
