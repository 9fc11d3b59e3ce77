//! Sync requests: the durable queue `<exchange>.sync-requests`, consumed by the bridge on its
//! own connection. A request is checked (its broker user, its queue, its tables: see
//! [`super::trust`]), written into the signal table, and acknowledged only once that row is
//! committed; a refused request is logged (error level, with the reason and the fix) and
//! acknowledged. `bridge sync start|cancel` publish requests here, with the `user_id` they log
//! in as, after making the same checks, so an operator sees a refusal at once.

use super::signal;
use super::trust::{self, TrustError};
use crate::capture_filter::CaptureFilter;
use crate::config::{redact_url, Config};
use crate::metrics::BridgeMetrics;
use crate::preflight;
use crate::source::sql_values::table_layout;
use change_message::sync_request::{requests_queue, SyncAction, SyncRequest};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(
        "queue `{queue}` does not exist on the broker: declare the partner's queue and bind it to \
         exchange `{exchange}` first (the pusher's `setup` does), then request the sync again"
    )]
    QueueMissing { queue: String, exchange: String },
    #[error(transparent)]
    Refused(#[from] TrustError),
    #[error("table {table} cannot be synced: {reason}")]
    BadTable { table: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("initial syncs are off in this bridge's config ([sync] enabled = false)")]
    Disabled,
    #[error("the broker {url} is not reachable: {message}")]
    Broker { url: String, message: String },
    #[error("the database is not reachable or refused a query: {0}")]
    Database(String),
    #[error("the broker did not confirm the request (it was {0}); try again")]
    NotConfirmed(String),
}

/// How long the broker may take to confirm a request.
const CONFIRM_WAIT: Duration = Duration::from_secs(30);

async fn broker(config: &Config) -> Result<Connection, RequestError> {
    let url = &config.broker.url;
    tls_connect::broker::connect(
        url,
        ConnectionProperties::default().with_connection_name("cdc-bridge-sync".into()),
        &config.broker.tls,
    )
    .await
    .map_err(|e| RequestError::Broker {
        url: redact_url(url),
        message: tls_connect::broker::problem(&e, &config.broker.tls, url)
            .unwrap_or_else(|| e.to_string()),
    })
}

fn broker_err(url: &str) -> impl Fn(lapin::Error) -> RequestError + '_ {
    move |e| RequestError::Broker {
        url: redact_url(url),
        message: e.to_string(),
    }
}

/// Declares the requests queue (durable, classic; idempotent).
async fn declare_requests_queue(
    channel: &lapin::Channel,
    exchange: &str,
) -> Result<(), lapin::Error> {
    channel
        .queue_declare(
            ShortString::from(requests_queue(exchange)),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|_| ())
}

/// Checks a request against the broker and the database: the target queue exists, the tables
/// are captured, exist and have a primary key of readable columns.
pub async fn check(
    config: &Config,
    filter: &CaptureFilter,
    connection: &Connection,
    db: &mut mysql_async::Conn,
    is_mariadb: bool,
    request: &SyncRequest,
) -> Result<(), RequestError> {
    if !config.sync.enabled {
        return Err(RequestError::Disabled);
    }
    request
        .validate()
        .map_err(|e| RequestError::Invalid(e.to_string()))?;
    trust::check_queue(&config.sync.queue_prefix, request.action.queue())?;
    let SyncAction::Start { queue, tables } = &request.action else {
        return Ok(());
    };
    trust::check_tables(filter, tables)?;
    // A passive declare that fails closes its channel: use a throwaway one.
    let channel = connection
        .create_channel()
        .await
        .map_err(broker_err(&config.broker.url))?;
    let exists = channel
        .queue_declare(
            ShortString::from(queue.as_str()),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    if exists.is_err() {
        return Err(RequestError::QueueMissing {
            queue: queue.clone(),
            exchange: config.broker.exchange.clone(),
        });
    }
    let _ = channel.close(200, ShortString::from("ok")).await;
    for entry in tables {
        let (database, table) = entry.split_once('.').unwrap_or(("", entry));
        table_layout(db, is_mariadb, filter, database, table)
            .await
            .map_err(|e| RequestError::BadTable {
                table: entry.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

/// Publishes a request to the requests queue, persistent and confirmed.
pub async fn publish(config: &Config, request: &SyncRequest) -> Result<(), RequestError> {
    let url = &config.broker.url;
    let connection = broker(config).await?;
    let channel = connection.create_channel().await.map_err(broker_err(url))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(broker_err(url))?;
    declare_requests_queue(&channel, &config.broker.exchange)
        .await
        .map_err(broker_err(url))?;
    let confirm = channel
        .basic_publish(
            ShortString::from(""),
            ShortString::from(requests_queue(&config.broker.exchange)),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &request.to_vec(),
            BasicProperties::default()
                .with_content_type(ShortString::from(change_message::CONTENT_TYPE))
                .with_delivery_mode(2)
                .with_message_id(ShortString::from(request.request_id.as_str()))
                .with_user_id(ShortString::from(
                    tls_connect::broker::login_user(url).unwrap_or_default(),
                )),
        )
        .await
        .map_err(broker_err(url))?;
    let confirm = tokio::time::timeout(CONFIRM_WAIT, confirm).await;
    tls_connect::broker::close(&connection, "bye").await;
    let confirm = confirm
        .map_err(|_| {
            RequestError::NotConfirmed(format!(
                "not answered within {} s; `bridge sync status` tells whether it arrived",
                CONFIRM_WAIT.as_secs()
            ))
        })?
        .map_err(broker_err(url))?;
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => Err(RequestError::NotConfirmed("returned".into())),
        Confirmation::Nack(_) => Err(RequestError::NotConfirmed("refused".into())),
    }
}

/// The CLI's path: check, then publish. Returns the request as published.
pub async fn submit(config: &Config, action: SyncAction) -> Result<SyncRequest, RequestError> {
    let request = SyncRequest::new(
        uuid::Uuid::new_v4().to_string(),
        action,
        crate::time_format::now_rfc3339(),
    );
    let mut filter = CaptureFilter::new(&config.capture);
    filter.exclude_table(config.signal_database(), &config.sync.signal_table);
    let user = tls_connect::broker::login_user(&config.broker.url);
    trust::check_requester(&config.sync_requesters(), user.as_deref())?;
    let connection = broker(config).await?;
    let mut db = preflight::connect(&config.source)
        .await
        .map_err(|e| RequestError::Database(e.to_string()))?;
    let is_mariadb = is_mariadb(&mut db).await?;
    let checked = check(config, &filter, &connection, &mut db, is_mariadb, &request).await;
    tls_connect::broker::close(&connection, "bye").await;
    let _ = db.disconnect().await;
    checked?;
    publish(config, &request).await?;
    Ok(request)
}

async fn is_mariadb(db: &mut mysql_async::Conn) -> Result<bool, RequestError> {
    use mysql_async::prelude::Queryable;
    let version: Option<String> = db
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| RequestError::Database(e.to_string()))?;
    Ok(version
        .unwrap_or_default()
        .to_lowercase()
        .contains("mariadb"))
}

/// Writes an accepted request into the signal table.
async fn record(
    config: &Config,
    db: &mut mysql_async::Conn,
    request: &SyncRequest,
) -> Result<(), mysql_async::Error> {
    let (kind, detail) = match &request.action {
        SyncAction::Start { tables, .. } => (
            signal::KIND_START,
            serde_json::json!({"tables": tables, "requested_at": request.requested_at}).to_string(),
        ),
        SyncAction::Cancel { .. } => (signal::KIND_CANCEL, String::new()),
    };
    signal::insert(
        db,
        (config.signal_database(), &config.sync.signal_table),
        kind,
        &request.request_id,
        "",
        request.action.queue(),
        &detail,
    )
    .await
}

/// Consumes the requests queue until `stop`; reconnects on failures.
pub async fn serve(
    config: Arc<Config>,
    filter: Arc<CaptureFilter>,
    metrics: Arc<BridgeMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return;
        }
        match serve_once(&config, &filter, &metrics, &mut stop).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "sync requests: reconnecting");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn serve_once(
    config: &Config,
    filter: &CaptureFilter,
    metrics: &BridgeMetrics,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), RequestError> {
    let url = &config.broker.url;
    let connection = broker(config).await?;
    let channel = connection.create_channel().await.map_err(broker_err(url))?;
    declare_requests_queue(&channel, &config.broker.exchange)
        .await
        .map_err(broker_err(url))?;
    channel
        .basic_qos(1, BasicQosOptions::default())
        .await
        .map_err(broker_err(url))?;
    let queue = requests_queue(&config.broker.exchange);
    let mut consumer = channel
        .basic_consume(
            ShortString::from(queue.as_str()),
            ShortString::from("cdc-bridge"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker_err(url))?;
    let requesters = config.sync_requesters();
    tracing::info!(%queue, requesters = ?requesters, queue_prefix = %config.sync.queue_prefix, "listening for sync requests");
    let mut db: Option<mysql_async::Conn> = None;
    loop {
        let delivery = tokio::select! {
            next = consumer.next() => next,
            _ = stop.changed() => {
                if *stop.borrow() {
                    tls_connect::broker::close(&connection, "bye").await;
                    return Ok(());
                }
                continue;
            }
        };
        let delivery = match delivery {
            None => {
                return Err(RequestError::Broker {
                    url: redact_url(url),
                    message: "the consumer was cancelled".into(),
                })
            }
            Some(Err(e)) => return Err(broker_err(url)(e)),
            Some(Ok(delivery)) => delivery,
        };
        let request = match SyncRequest::from_slice(&delivery.data) {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(%error, body = %String::from_utf8_lossy(&delivery.data).chars().take(300).collect::<String>(), "sync request refused");
                let _ = delivery.ack(BasicAckOptions::default()).await;
                continue;
            }
        };
        let user_id = delivery.properties.user_id().as_ref().map(|u| u.as_str());
        if let Err(error) = trust::check_requester(&requesters, user_id) {
            tracing::error!(request_id = %request.request_id, queue = %request.action.queue(), user = user_id.unwrap_or("(none)"), %error, "sync request refused");
            metrics.sync_request_answered(
                &request.request_id,
                request.action.queue(),
                Some(error.to_string()),
            );
            let _ = delivery.ack(BasicAckOptions::default()).await;
            continue;
        }
        if db.is_none() {
            match preflight::connect(&config.source).await {
                Ok(conn) => db = Some(conn),
                Err(error) => {
                    tracing::warn!(%error, "sync requests: the database is not reachable; the request waits");
                    let _ = delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            }
        }
        let Some(conn) = db.as_mut() else { continue };
        let mariadb = is_mariadb(conn).await.unwrap_or(true);
        match check(config, filter, &connection, conn, mariadb, &request).await {
            Err(RequestError::Database(message)) | Err(RequestError::Broker { message, .. }) => {
                tracing::warn!(%message, request_id = %request.request_id, "sync request not checked yet; retrying");
                db = None;
                let _ = delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(error) => {
                tracing::error!(request_id = %request.request_id, queue = %request.action.queue(), %error, "sync request refused");
                metrics.sync_request_answered(
                    &request.request_id,
                    request.action.queue(),
                    Some(error.to_string()),
                );
                let _ = delivery.ack(BasicAckOptions::default()).await;
                continue;
            }
            Ok(()) => {}
        }
        match record(config, conn, &request).await {
            Ok(()) => {
                tracing::info!(request_id = %request.request_id, queue = %request.action.queue(), action = ?request.action, "sync request accepted");
                metrics.sync_request_answered(&request.request_id, request.action.queue(), None);
                let _ = delivery.ack(BasicAckOptions::default()).await;
            }
            Err(error) => {
                tracing::warn!(%error, request_id = %request.request_id, "cannot write the sync request into the signal table; retrying");
                db = None;
                let _ = delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Deletes old signal rows every minute until `stop`.
pub async fn clean_signals(config: Arc<Config>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        let result = async {
            let mut conn = preflight::connect(&config.source)
                .await
                .map_err(|e| e.to_string())?;
            let deleted = signal::clean_up(
                &mut conn,
                config.signal_database(),
                &config.sync.signal_table,
                config.sync.signal_retention_secs,
            )
            .await
            .map_err(|e| e.to_string())?;
            let _ = conn.disconnect().await;
            Ok::<u64, String>(deleted)
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "old signal rows deleted"),
            Err(error) => tracing::warn!(%error, "cannot delete old signal rows"),
        }
    }
}
