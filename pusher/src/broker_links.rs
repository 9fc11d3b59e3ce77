//! The pusher's two broker connections of a session: one that consumes and acks, one that
//! publishes.
//!
//! During a memory or disk alarm RabbitMQ stops reading from every connection that publishes,
//! acks included, while a connection that has never published keeps working. Were presence
//! announcements and parked messages published on the connection the pusher acks on, an alarm
//! would stop every partner from draining, and an alarm caused by a backlog would never clear.
//! So the partners' consumers, their acks, the topology and the presence listener live on
//! `consume`, which never publishes; announcements and parking go through `publish`, which an
//! alarm blocks (said loudly, in `/readyz` and in `cdc_pusher_broker_blocked`).

use std::sync::Arc;

use lapin::types::LongString;
use lapin::{Connection, ConnectionProperties};

use crate::config::BrokerConfig;
use crate::metrics::PusherMetrics;

pub struct BrokerLinks {
    /// Consumes and acks; never publishes.
    pub consume: Arc<Connection>,
    /// Presence announcements and parking.
    pub publish: Arc<Connection>,
}

impl BrokerLinks {
    /// Opens both connections (named for `pusher` in the broker's connection list) and starts
    /// reporting the publishing one's blocked state into `metrics`.
    pub async fn open(
        broker: &BrokerConfig,
        pusher: &str,
        metrics: &Arc<PusherMetrics>,
    ) -> Result<BrokerLinks, lapin::Error> {
        let consume = broker.connect(named(pusher, "consume")).await?;
        let publish = match broker.connect(named(pusher, "publish")).await {
            Ok(publish) => publish,
            Err(error) => {
                tls_connect::broker::close(&consume, "pusher stopping").await;
                return Err(error);
            }
        };
        metrics.set_broker_blocked(None);
        report_blocked(&publish, metrics.clone());
        Ok(BrokerLinks {
            consume: Arc::new(consume),
            publish: Arc::new(publish),
        })
    }

    /// Is the broker blocking publishes (a resource alarm)?
    pub fn publishing_blocked(&self) -> bool {
        self.publish.status().blocked()
    }

    /// Which connection has closed, if one has.
    pub fn lost(&self) -> Option<&'static str> {
        if !self.consume.status().connected() {
            Some("the consuming broker connection closed")
        } else if !self.publish.status().connected() {
            Some("the publishing broker connection closed")
        } else {
            None
        }
    }

    pub async fn close(&self, reason: &str) {
        tls_connect::broker::close(&self.publish, reason).await;
        tls_connect::broker::close(&self.consume, reason).await;
    }
}

fn named(pusher: &str, role: &str) -> ConnectionProperties {
    ConnectionProperties::default()
        .with_connection_name(LongString::from(format!("cdc-pusher {pusher} ({role})")))
}

/// Logs and records the broker's `connection.blocked` / `unblocked` of `connection` until it
/// closes.
fn report_blocked(connection: &Connection, metrics: Arc<PusherMetrics>) {
    tls_connect::broker::watch_blocked(connection, move |reason| {
        match &reason {
            Some(reason) => tracing::error!(
                %reason,
                "the broker BLOCKED publishing (resource alarm: disk or memory): deliveries and \
                 acks go on, but presence announcements and parking wait until an operator frees \
                 disk space or memory on the broker"
            ),
            None => tracing::warn!("the broker unblocked publishing"),
        }
        metrics.set_broker_blocked(reason);
    });
}
