//! `pusher sync`: adds a partner, or re-syncs one. Its queue is declared and bound first, so
//! live changes start to accumulate there; then the bridge is asked for an initial sync of the
//! partner's tables into that queue only (the request format and its path through the bridge
//! are in `change_message::sync_request`). The bridge interleaves the snapshot rows with the
//! live changes so no record ever goes back to an older state.

use change_message::sync_request::{requests_queue, SyncAction, SyncRequest};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};

use std::time::Duration;

use crate::config::{redact_url, Config};
use crate::parking::now_rfc3339;
use crate::topology;

#[derive(Debug, thiserror::Error)]
pub enum SyncRequestError {
    #[error(
        "no partner `{0}` in the configuration (partners: {1}); add its [[partner]] section first"
    )]
    UnknownPartner(String, String),
    #[error("cannot reach the broker at {url}: {error}; check broker.url / PUSHER_BROKER_URL")]
    Broker { url: String, error: String },
    #[error(
        "the bridge's request queue `{0}` does not exist: start the bridge (with [sync] enabled) \
         on exchange `{1}` once, then ask again"
    )]
    NoRequestsQueue(String, String),
    #[error("the broker did not confirm the sync request ({0}); ask again")]
    NotConfirmed(String),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error(transparent)]
    Backlog(#[from] crate::backlog::BacklogError),
}

/// How long the broker may take to confirm the request.
const CONFIRM_WAIT: Duration = Duration::from_secs(30);

/// What was done, for the operator.
pub struct Requested {
    pub request: SyncRequest,
    pub queue: String,
}

/// Declares the partner's queues, then publishes a start (or cancel) request to the bridge.
pub async fn request(
    config: &Config,
    partner_id: &str,
    cancel: bool,
) -> Result<Requested, SyncRequestError> {
    let Some(partner) = config.partners.iter().find(|p| p.id == partner_id) else {
        let ids: Vec<&str> = config.partners.iter().map(|p| p.id.as_str()).collect();
        return Err(SyncRequestError::UnknownPartner(
            partner_id.to_string(),
            ids.join(", "),
        ));
    };
    let url = redact_url(&config.broker.url);
    let connection = config
        .broker
        .connect(ConnectionProperties::default())
        .await
        .map_err(|e| SyncRequestError::Broker {
            url: url.clone(),
            error: config.broker.explain(&e),
        })?;
    // A re-sync (not a cancel) binds a cut-off partner's queue again.
    let bind = !cancel || crate::backlog::load(&config.pusher.state_dir, &partner.id)?.is_none();
    topology::declare_partner(&connection, &config.broker, partner, bind).await?;
    let action = if cancel {
        SyncAction::Cancel {
            queue: partner.queue.clone(),
        }
    } else {
        // In the mapping file's order, parents before children (Locations before their EVSEs
        // and Connectors): the bridge syncs tables in the order given, and a partner refuses
        // an EVSE of a Location it does not hold yet. The children of a composite tree are
        // left out: each snapshot row of its root is a PUT of the whole tree, children read
        // from the database (README "Composite objects").
        let tables: Vec<String> = partner
            .mapping
            .tables
            .iter()
            .filter(|t| partner.mapping.parent_of(t).is_none())
            .map(|t| t.qualified_name())
            .filter(|name| partner.tables.contains(name))
            .collect();
        SyncAction::Start {
            queue: partner.queue.clone(),
            tables,
        }
    };
    let request = SyncRequest::new(uuid::Uuid::new_v4().to_string(), action, now_rfc3339());
    let queue = requests_queue(&config.broker.exchange);
    // The broker refuses a user_id other than the connection's user; the bridge serves only
    // requests from the users of its `sync.requesters`.
    let user = tls_connect::broker::login_user(&config.broker.url).unwrap_or_default();
    let result = publish(
        &connection,
        (&url, &user),
        &queue,
        &request,
        &config.broker.exchange,
    )
    .await;
    tls_connect::broker::close(&connection, "done").await;
    result?;
    if !cancel {
        // Re-synced: a cut-off partner is whole again once the sync has run.
        crate::backlog::clear(&config.pusher.state_dir, &partner.id)?;
    }
    Ok(Requested {
        request,
        queue: partner.queue.clone(),
    })
}

/// Publishes `request` to the bridge's request queue `queue`, persistent and confirmed, with
/// `user_id` set to `user` (the connection's user); `url` (redacted) names the broker in errors.
async fn publish(
    connection: &Connection,
    (url, user): (&str, &str),
    queue: &str,
    request: &SyncRequest,
    exchange: &str,
) -> Result<(), SyncRequestError> {
    let broker_error = |error: lapin::Error| SyncRequestError::Broker {
        url: url.to_string(),
        error: error.to_string(),
    };
    let channel = connection.create_channel().await.map_err(broker_error)?;
    // The bridge owns the queue and its arguments: only check that it is there.
    let exists = topology::passive_declare(&channel, queue).await;
    if exists.is_err() {
        return Err(SyncRequestError::NoRequestsQueue(
            queue.to_string(),
            exchange.to_string(),
        ));
    }
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(broker_error)?;
    let body = request.to_vec();
    let confirmation = channel
        .basic_publish(
            ShortString::from(""),
            ShortString::from(queue),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &body,
            BasicProperties::default()
                .with_content_type(ShortString::from(change_message::CONTENT_TYPE))
                .with_delivery_mode(2)
                .with_message_id(ShortString::from(request.request_id.as_str()))
                .with_user_id(ShortString::from(user)),
        )
        .await
        .map_err(broker_error)?;
    let confirmation = tokio::time::timeout(CONFIRM_WAIT, confirmation)
        .await
        .map_err(|_| {
            SyncRequestError::NotConfirmed(format!(
                "no answer within {} s; `bridge sync status` tells whether it arrived",
                CONFIRM_WAIT.as_secs()
            ))
        })?
        .map_err(broker_error)?;
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => {
            Err(SyncRequestError::NotConfirmed("returned unroutable".into()))
        }
        Confirmation::Nack(_) => Err(SyncRequestError::NotConfirmed("refused".into())),
    }
}

/// How long `pusher sync` waits for the bridge to answer its request in `/status`.
pub const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// What the bridge answered to a request, as its `/status` (`[bridge] status_url`) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Recorded: the sync starts (or is cancelled) as requested.
    Accepted,
    /// Refused, with the bridge's reason (which says what to fix).
    Refused(String),
    /// No answer seen: why (the bridge's status unreachable, or the request still waiting).
    NotSeen(String),
}

/// Waits up to `wait` for the bridge's answer to request `request_id`. An unreachable status
/// endpoint ends the wait at once: the request stays queued for the bridge either way.
pub async fn answer(config: &Config, request_id: &str, wait: Duration) -> Answer {
    let url = &config.bridge.status_url;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let status = crate::status::fetch_bridge_json(url).await;
        match status {
            Err(e) => {
                return Answer::NotSeen(format!(
                    "the bridge's status cannot be read ({e}): the request stays \
                     queued until a bridge takes it up; see the bridge's log or `bridge sync \
                     status` ([bridge] status_url points `pusher sync` at the bridge)"
                ))
            }
            Ok(status) => {
                if let Some(answer) = find_answer(&status, request_id) {
                    return answer;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Answer::NotSeen(format!(
                "the bridge at {url} has not answered it within {} s (busy, or its [sync] is \
                 off); see its log or `bridge sync status`",
                wait.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The answer to `request_id` in a bridge `/status` document, if it lists one.
fn find_answer(status: &serde_json::Value, request_id: &str) -> Option<Answer> {
    let answers = status.get("sync_requests")?.as_array()?;
    let found = answers
        .iter()
        .find(|a| a.get("request_id").and_then(|v| v.as_str()) == Some(request_id))?;
    match found.get("outcome").and_then(|v| v.as_str()) {
        Some("accepted") => Some(Answer::Accepted),
        _ => Some(Answer::Refused(
            found
                .get("reason")
                .and_then(|v| v.as_str())
                .unwrap_or("no reason given")
                .to_string(),
        )),
    }
}

#[cfg(test)]
mod answer_tests {
    use super::*;

    #[test]
    fn the_answer_to_a_request_is_found_by_its_id_in_the_bridge_status() {
        let status = serde_json::json!({"state": "streaming", "sync_requests": [
            {"request_id": "r2", "queue": "x.p1", "outcome": "refused", "reason": "queue x.p1 is outside sync.queue_prefix \"ocpi.\"", "at": "t"},
            {"request_id": "r1", "queue": "ocpi.p1", "outcome": "accepted", "at": "t"}
        ]});
        assert_eq!(find_answer(&status, "r1"), Some(Answer::Accepted));
        assert!(
            matches!(find_answer(&status, "r2"), Some(Answer::Refused(r)) if r.contains("queue_prefix"))
        );
        assert_eq!(find_answer(&status, "r3"), None);
        assert_eq!(
            find_answer(&serde_json::json!({"state": "streaming"}), "r1"),
            None
        );
    }
}
