//! `benchkit`: the pieces `bench/run` puts together to benchmark the bridge against a real
//! MariaDB and RabbitMQ, and the pusher against RabbitMQ and a local OCPI partner.
//!
//! Bridge:
//! - `raw-publish`: the broker's own confirmed-publish rate with lapin (the ceiling the bridge
//!   is compared with);
//! - `drive`: creates the benchmark schema and a backlog of single-row updates, server-side;
//! - `binlog-pos`: the server's current binlog end (`SHOW MASTER STATUS`);
//! - `setup`, `purge`, `teardown`, `count`, `sample-size`: broker chores;
//! - `watch`: waits for the bridge's checkpoint to reach a binlog position, sampling its RSS;
//! - `latency`: commit-to-delivery latency through the running bridge.
//!
//! Pusher (see `pusher.rs`; each runs its own OCPI partner and pushers as child processes):
//! - `raw-consume`: the broker's own consume+ack rate of a queue declared like a partner queue
//!   (the ceiling the pusher is compared with);
//! - `pusher-backlog`: pushes/s of pushers working off a backlog spread over partners, and
//!   their peak RSS;
//! - `pusher-latency`: publish-to-partner latency through one running pusher at a steady rate.
//!
//! Composite objects (see `composite.rs`; the pusher reads EVSEs with their connectors from a
//! private MariaDB that `bench/run` starts):
//! - `composite-mapping`: the example mapping with its Location > EVSE > Connector tree linked;
//! - `composite-seed`: Locations with EVSEs with Connectors in the example schema;
//! - `composite-backlog`: EVSE status changes and new EVSEs, written to the database and
//!   published as change messages, worked off by one pusher: messages acked per second and
//!   database reads per message.
//!
//! Initial sync (see `sync.rs`; the bridge runs, started by `bench/run`):
//! - `sync-seed`: the benchmark schema and a table of N rows to sync;
//! - `sync-run`: asks the bridge for the sync of that table to a new partner queue while a
//!   writer commits live changes at a steady rate; counts every snapshot row into the queue and
//!   times the live changes.

mod composite;
mod decode;
mod pusher;
mod sync;

use anyhow::{bail, Context};
use bridge::publisher::{publish_pipelined, Sent};
use clap::{Parser, Subcommand};
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "benchkit",
    about = "Benchmark helpers for the bridge and the pusher (used by bench/run)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Confirmed publishing straight to the broker: prints raw_publish_per_s=...
    RawPublish {
        #[arg(long)]
        amqp: String,
        #[arg(long)]
        exchange: String,
        #[arg(long)]
        queue: String,
        #[arg(long, default_value_t = 200_000)]
        count: u64,
        /// Body size in bytes (use the bridge's message size).
        #[arg(long, default_value_t = 700)]
        size: usize,
        /// Publishes awaiting a confirm at most.
        #[arg(long, default_value_t = 1000)]
        window: usize,
        /// Delete the queue and the exchange afterwards.
        #[arg(long)]
        delete: bool,
    },
    /// Creates database `bench` (tables items, probe), seeds items, runs single-row updates.
    Drive {
        #[arg(long)]
        mysql: String,
        #[arg(long, default_value_t = 10_000)]
        rows: u32,
        #[arg(long, default_value_t = 0)]
        updates: u64,
        #[arg(long, default_value_t = 1000)]
        tx_size: u64,
    },
    /// Prints the server's current binlog end as `FILE POS`.
    BinlogPos {
        #[arg(long)]
        mysql: String,
    },
    /// Reads and decodes the binlog with the bridge's own source, from FILE:POS to the first
    /// transaction boundary at or after UNTIL_FILE:UNTIL_POS, and prints
    /// `decode_rows=N elapsed_s=S decode_rows_per_s=R` (no broker involved).
    Decode {
        /// A bridge configuration (its [source] and [capture] are used).
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        from_file: String,
        #[arg(long)]
        from_pos: u64,
        #[arg(long)]
        until_file: String,
        #[arg(long)]
        until_pos: u64,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Declares a durable fanout exchange and a durable quorum queue bound to it.
    Setup {
        #[arg(long)]
        amqp: String,
        #[arg(long)]
        exchange: String,
        #[arg(long)]
        queue: String,
    },
    /// Purges a queue; prints how many messages it dropped.
    Purge {
        #[arg(long)]
        amqp: String,
        #[arg(long)]
        queue: String,
    },
    /// Deletes queues and exchanges (missing ones are fine).
    Teardown {
        #[arg(long)]
        amqp: String,
        #[arg(long)]
        exchange: Vec<String>,
        #[arg(long)]
        queue: Vec<String>,
    },
    /// Polls a queue's message count until it reaches `expect`; prints the elapsed time.
    Count {
        #[arg(long)]
        amqp: String,
        #[arg(long)]
        queue: String,
        #[arg(long)]
        expect: u32,
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Takes up to `count` messages off a queue and prints the mean body size of the change
    /// messages of `table`: message_bytes=...
    SampleSize {
        #[arg(long)]
        amqp: String,
        #[arg(long)]
        queue: String,
        #[arg(long, default_value = "items")]
        table: String,
        #[arg(long, default_value_t = 100)]
        count: u32,
    },
    /// Waits until the bridge's checkpoint reaches FILE:POS, sampling the bridge's RSS every
    /// 100 ms; prints elapsed_s=... peak_rss_mb=...
    Watch {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        until_file: String,
        #[arg(long)]
        until_pos: u64,
        /// The bridge's process id.
        #[arg(long)]
        pid: u32,
        /// When the bridge was started, in unix microseconds (default: now).
        #[arg(long)]
        start_us: Option<i64>,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Commit-to-delivery latency through the running bridge: prints p50_ms=... p99_ms=...
    Latency {
        #[arg(long)]
        mysql: String,
        #[arg(long)]
        amqp: String,
        #[arg(long)]
        queue: String,
        /// Transactions per second.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Leading seconds whose samples are discarded.
        #[arg(long, default_value_t = 2)]
        warmup_secs: u64,
    },
    /// Consume+ack rate of a quorum queue declared like a partner queue (tariff messages,
    /// prefetch 500, one ack each): prints raw_consume_per_s=... message_bytes=...
    RawConsume {
        #[arg(long)]
        amqp: String,
        /// Broker names start with `{tag}.{phase}.`.
        #[arg(long)]
        tag: String,
        #[arg(long, default_value = "raw")]
        phase: String,
        /// Every broker name is appended here before it is declared (for cleanup).
        #[arg(long)]
        declared: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        count: u64,
        #[arg(long, default_value_t = 500)]
        prefetch: u16,
        /// x-delivery-limit of the queue (broker.delivery_limit of the pusher).
        #[arg(long, default_value_t = 50)]
        delivery_limit: u32,
        /// The broker's process id, to report its CPU use.
        #[arg(long)]
        broker_pid: Option<u32>,
    },
    /// Pushers working off a backlog of tariff updates (one per record) spread over partners:
    /// prints elapsed_s=... pushes_per_s=... peak_rss_mb=...
    PusherBacklog {
        #[command(flatten)]
        run: PusherRun,
        #[arg(long, default_value_t = 4)]
        partners: u32,
        #[arg(long, default_value_t = 1)]
        pushers: u32,
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        #[arg(long, default_value_t = 1800)]
        timeout_secs: u64,
    },
    /// Creates the benchmark schema, seeds bench.items with ids 1..=rows and the bench.probe rows
    /// of the live writer: prints rows=... seed_s=...
    SyncSeed {
        #[arg(long)]
        mysql: String,
        #[arg(long, default_value_t = 200_000)]
        rows: u32,
    },
    /// Initial sync through the running bridge: `bridge sync start`, every snapshot row counted
    /// into the partner queue, live changes timed meanwhile: prints rows_per_s=...
    /// live_p99_ms=...
    SyncRun {
        #[arg(long)]
        mysql: String,
        #[arg(long)]
        amqp: String,
        /// The bridge binary.
        #[arg(long)]
        bridge: PathBuf,
        /// The running bridge's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The running bridge's process id.
        #[arg(long)]
        bridge_pid: u32,
        /// The running bridge's log file.
        #[arg(long)]
        bridge_log: PathBuf,
        /// The new partner's queue (declared and bound to the bridge's exchange).
        #[arg(long)]
        queue: String,
        /// A queue bound to the bridge's exchange, for the live latency.
        #[arg(long)]
        live_queue: String,
        #[arg(long, default_value = "bench.items")]
        table: String,
        #[arg(long, default_value_t = 200_000)]
        rows: u32,
        /// Live changes committed per second during the sync.
        #[arg(long, default_value_t = 200)]
        live_rate: u32,
        /// Seconds of live changes before the request (baseline latency).
        #[arg(long, default_value_t = 5)]
        baseline_secs: u64,
        /// Seconds without a new snapshot row after which the sync counts as stalled.
        #[arg(long, default_value_t = 120)]
        stall_secs: u64,
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
    /// Prints the path of the mapping the composite case runs on: `mapping` when it links its
    /// tree with `[[table.children]]`, else `out`, written as `mapping` with the tree linked.
    CompositeMapping {
        #[arg(long)]
        mapping: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Seeds the example schema (loaded beforehand) with Locations, EVSEs and Connectors:
    /// prints locations=... evses=... connectors=... seed_s=...
    CompositeSeed {
        #[arg(long)]
        mysql: String,
        #[arg(long, default_value_t = 10_000)]
        locations: u32,
        /// EVSEs per Location.
        #[arg(long, default_value_t = 2)]
        evses: u32,
        /// Connectors per EVSE.
        #[arg(long, default_value_t = 2)]
        connectors: u32,
    },
    /// One round of the composite case: EVSE status changes and new EVSEs written to the
    /// database, their change messages in the partners' queues, one pusher timed until every
    /// message is acked: prints composite_pushes_per_s=... db_reads_per_push=...
    CompositeBacklog {
        #[command(flatten)]
        run: PusherRun,
        #[arg(long, default_value_t = 4)]
        partners: u32,
        /// benchkit's own (admin) connection to the source database.
        #[arg(long)]
        mysql: String,
        /// The pushers' read-only user: `[database]` of their configuration.
        #[arg(long, default_value = "127.0.0.1")]
        db_host: String,
        #[arg(long)]
        db_port: u16,
        #[arg(long)]
        db_user: String,
        #[arg(long)]
        db_password: String,
        /// The database server's process id, to report its CPU use.
        #[arg(long)]
        db_pid: Option<u32>,
        /// The seeded tree (as `composite-seed` made it).
        #[arg(long, default_value_t = 10_000)]
        locations: u32,
        #[arg(long, default_value_t = 2)]
        evses: u32,
        #[arg(long, default_value_t = 2)]
        connectors: u32,
        /// Changes of the round: EVSE status changes, and every `new_every`-th a new EVSE
        /// (an EVSE insert and one insert per connector).
        #[arg(long, default_value_t = 20_000)]
        changes: u64,
        #[arg(long, default_value_t = 20)]
        new_every: u64,
        /// Round number (1, 2, ...): names the new EVSEs and spreads the status changes.
        #[arg(long, default_value_t = 1)]
        round: u32,
        #[arg(long, default_value_t = 1800)]
        timeout_secs: u64,
    },
    /// Publish-to-partner latency through one running pusher at a steady rate: prints
    /// p50_ms=... p99_ms=...
    PusherLatency {
        #[command(flatten)]
        run: PusherRun,
        /// Changes per second.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Leading seconds whose samples are discarded.
        #[arg(long, default_value_t = 2)]
        warmup_secs: u64,
    },
}

/// What every pusher phase needs.
#[derive(clap::Args)]
struct PusherRun {
    #[arg(long)]
    amqp: String,
    /// The pusher binary.
    #[arg(long)]
    pusher: PathBuf,
    /// The mapping file the partners use (absolute path).
    #[arg(long)]
    mapping: PathBuf,
    /// Where configurations, logs, pids and state go.
    #[arg(long)]
    dir: PathBuf,
    /// Broker names start with `{tag}.{phase}.`.
    #[arg(long)]
    tag: String,
    #[arg(long)]
    phase: String,
    /// Every broker name is appended here before it is declared (for cleanup).
    #[arg(long)]
    declared: PathBuf,
    /// presence_interval_ms of the pushers (they wait two intervals before consuming).
    #[arg(long, default_value_t = 250)]
    presence_ms: u64,
    /// The broker's process id, to report its CPU use.
    #[arg(long)]
    broker_pid: Option<u32>,
}

impl PusherRun {
    fn setup(&self) -> (pusher::PusherSetup, pusher::Names) {
        (
            pusher::PusherSetup {
                amqp: self.amqp.clone(),
                bin: self.pusher.clone(),
                mapping: self.mapping.clone(),
                dir: self.dir.clone(),
                presence_ms: self.presence_ms,
                database: None,
                metrics_listen: None,
            },
            pusher::Names::new(&self.tag, &self.phase, &self.declared),
        )
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::RawPublish {
                amqp,
                exchange,
                queue,
                count,
                size,
                window,
                delete,
            } => raw_publish(&amqp, &exchange, &queue, count, size, window, delete).await,
            Command::Drive {
                mysql,
                rows,
                updates,
                tx_size,
            } => drive(&mysql, rows, updates, tx_size).await,
            Command::BinlogPos { mysql } => {
                let mut conn = mysql_conn(&mysql).await?;
                let (file, pos) = binlog_pos(&mut conn).await?;
                println!("{file} {pos}");
                conn.disconnect().await?;
                Ok(())
            }
            Command::Decode {
                config,
                from_file,
                from_pos,
                until_file,
                until_pos,
                timeout_secs,
            } => {
                let run = decode::run(
                    &config,
                    (from_file, from_pos),
                    (until_file, until_pos),
                    Duration::from_secs(timeout_secs),
                )
                .await?;
                let secs = run.elapsed.as_secs_f64();
                println!(
                    "decode_rows={} elapsed_s={secs:.3} decode_rows_per_s={:.1}",
                    run.rows,
                    run.rows as f64 / secs.max(1e-9)
                );
                Ok(())
            }
            Command::Setup {
                amqp,
                exchange,
                queue,
            } => {
                let (conn, channel) = amqp_channel(&amqp).await?;
                declare(&channel, &exchange, &queue).await?;
                conn.close(200, "bye".into()).await?;
                Ok(())
            }
            Command::Purge { amqp, queue } => {
                let (conn, channel) = amqp_channel(&amqp).await?;
                let dropped = channel
                    .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                    .await
                    .with_context(|| format!("purging queue {queue}"))?;
                println!("purged={dropped}");
                conn.close(200, "bye".into()).await?;
                Ok(())
            }
            Command::Teardown {
                amqp,
                exchange,
                queue,
            } => teardown(&amqp, &exchange, &queue).await,
            Command::Count {
                amqp,
                queue,
                expect,
                timeout_secs,
            } => count(&amqp, &queue, expect, timeout_secs).await,
            Command::SampleSize {
                amqp,
                queue,
                table,
                count,
            } => sample_size(&amqp, &queue, &table, count).await,
            Command::Watch {
                checkpoint,
                until_file,
                until_pos,
                pid,
                start_us,
                timeout_secs,
            } => {
                watch(
                    &checkpoint,
                    &until_file,
                    until_pos,
                    pid,
                    start_us.unwrap_or_else(unix_micros),
                    timeout_secs,
                )
                .await
            }
            Command::Latency {
                mysql,
                amqp,
                queue,
                rate,
                seconds,
                warmup_secs,
            } => latency(&mysql, &amqp, &queue, rate, seconds, warmup_secs).await,
            Command::RawConsume {
                amqp,
                tag,
                phase,
                declared,
                count,
                prefetch,
                delivery_limit,
                broker_pid,
            } => {
                let names = pusher::Names::new(&tag, &phase, &declared);
                pusher::raw_consume(&amqp, &names, count, prefetch, delivery_limit, broker_pid)
                    .await
            }
            Command::PusherBacklog {
                run,
                partners,
                pushers,
                count,
                timeout_secs,
            } => {
                let (setup, names) = run.setup();
                pusher::backlog(
                    &setup,
                    &names,
                    &run.phase,
                    partners,
                    pushers,
                    count,
                    timeout_secs,
                    run.broker_pid,
                )
                .await
            }
            Command::SyncSeed { mysql, rows } => sync::seed(&mysql, rows).await,
            Command::SyncRun {
                mysql,
                amqp,
                bridge,
                config,
                bridge_pid,
                bridge_log,
                queue,
                live_queue,
                table,
                rows,
                live_rate,
                baseline_secs,
                stall_secs,
                timeout_secs,
            } => {
                sync::run(sync::SyncRun {
                    mysql,
                    amqp,
                    bridge,
                    config,
                    bridge_pid,
                    bridge_log,
                    queue,
                    live_queue,
                    table,
                    rows,
                    live_rate,
                    baseline_secs,
                    stall_secs,
                    timeout_secs,
                })
                .await
            }
            Command::CompositeMapping { mapping, out } => composite::mapping(&mapping, &out),
            Command::CompositeSeed {
                mysql,
                locations,
                evses,
                connectors,
            } => composite::seed(&mysql, locations, evses, connectors).await,
            Command::CompositeBacklog {
                run,
                partners,
                mysql,
                db_host,
                db_port,
                db_user,
                db_password,
                db_pid,
                locations,
                evses,
                connectors,
                changes,
                new_every,
                round,
                timeout_secs,
            } => {
                let (setup, names) = run.setup();
                let work = composite::Workload {
                    locations,
                    evses,
                    connectors,
                    changes,
                    new_every,
                    round,
                };
                let db = composite::Database {
                    admin_url: mysql,
                    reader: pusher::SourceDatabase {
                        host: db_host,
                        port: db_port,
                        user: db_user,
                        password: db_password,
                    },
                    pid: db_pid,
                };
                composite::backlog(
                    setup,
                    &names,
                    &run.phase,
                    partners,
                    &work,
                    db,
                    timeout_secs,
                    run.broker_pid,
                )
                .await
            }
            Command::PusherLatency {
                run,
                rate,
                seconds,
                warmup_secs,
            } => {
                let (setup, names) = run.setup();
                pusher::latency(
                    &setup,
                    &names,
                    &run.phase,
                    rate,
                    seconds,
                    warmup_secs,
                    run.broker_pid,
                )
                .await
            }
        }
    })
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

// ---- broker helpers ----------------------------------------------------------------------------

async fn amqp_channel(url: &str) -> anyhow::Result<(Connection, Channel)> {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let channel = conn.create_channel().await?;
    Ok((conn, channel))
}

async fn declare(channel: &Channel, exchange: &str, queue: &str) -> anyhow::Result<()> {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("declaring exchange {exchange}"))?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .with_context(|| format!("declaring quorum queue {queue}"))?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("binding {queue} to {exchange}"))?;
    Ok(())
}

async fn teardown(url: &str, exchanges: &[String], queues: &[String]) -> anyhow::Result<()> {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {url}"))?;
    // A fresh channel for each deletion: a failed one closes its channel.
    for queue in queues {
        let channel = conn.create_channel().await?;
        match channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
        {
            Ok(n) => println!("deleted queue {queue} ({n} messages)"),
            Err(e) => eprintln!("queue {queue}: {e}"),
        }
    }
    for exchange in exchanges {
        let channel = conn.create_channel().await?;
        match channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
        {
            Ok(()) => println!("deleted exchange {exchange}"),
            Err(e) => eprintln!("exchange {exchange}: {e}"),
        }
    }
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}

fn check_confirm(confirmation: Confirmation) -> anyhow::Result<()> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => bail!("a message came back unroutable"),
        Confirmation::Nack(_) => bail!("the broker nacked a message"),
        Confirmation::NotRequested => bail!("publisher confirms are off"),
    }
}

/// Publishes `count` persistent messages with up to `window` confirms outstanding, awaiting them
/// in order: the same pattern, properties and publish call as the bridge's publisher (the
/// publish does not wait for each write), without the rest of the bridge.
async fn raw_publish(
    url: &str,
    exchange: &str,
    queue: &str,
    count: u64,
    size: usize,
    window: usize,
    delete: bool,
) -> anyhow::Result<()> {
    let (conn, channel) = amqp_channel(url).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare(&channel, exchange, queue).await?;
    let channel = Arc::new(channel);
    let body = Arc::new(vec![b'x'; size]);
    let window = window.max(1);
    let mut pending: VecDeque<Sent> = VecDeque::with_capacity(window);
    let started = Instant::now();
    for i in 0..count {
        if pending.len() >= window {
            let mut sent = pending.pop_front().expect("non-empty");
            check_confirm(sent.confirmation().await?)?;
        }
        let mut headers = FieldTable::default();
        headers.insert("x-database".into(), AMQPValue::LongString("bench".into()));
        headers.insert("x-table".into(), AMQPValue::LongString("items".into()));
        headers.insert("x-operation".into(), AMQPValue::LongString("update".into()));
        headers.insert("x-seq".into(), AMQPValue::LongLongInt(i as i64));
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(ShortString::from(format!("binlog.000001:{i}:0:update")))
            .with_type("change".into())
            .with_timestamp((unix_micros() / 1_000_000) as u64)
            .with_headers(headers);
        let sent = publish_pipelined(&channel, exchange, "", body.clone(), properties).await?;
        pending.push_back(sent);
    }
    while let Some(mut sent) = pending.pop_front() {
        check_confirm(sent.confirmation().await?)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "raw-publish: {count} x {size} B persistent, mandatory, window {window}, quorum queue: \
         {elapsed:.2} s, benchkit cpu {:.2} s ({})",
        proc_cpu_secs(std::process::id()).unwrap_or(0.0),
        thread_stats(std::process::id())
            .iter()
            .map(|(name, secs, switches)| format!("{name} {secs:.1} s/{switches} sleeps"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if delete {
        let deleter = conn.create_channel().await?;
        deleter
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await?;
        deleter
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await?;
    }
    let _ = conn.close(200, "bye".into()).await;
    println!("raw_publish_per_s={:.1}", count as f64 / elapsed);
    Ok(())
}

async fn count(url: &str, queue: &str, expect: u32, timeout_secs: u64) -> anyhow::Result<()> {
    let (conn, channel) = amqp_channel(url).await?;
    let started = Instant::now();
    loop {
        let found = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("queue {queue}"))?
            .message_count();
        if found >= expect {
            println!(
                "messages={found} elapsed_s={:.3}",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        if started.elapsed() > Duration::from_secs(timeout_secs) {
            bail!("queue {queue} holds {found} messages after {timeout_secs} s, expected {expect}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}

async fn sample_size(url: &str, queue: &str, table: &str, count: u32) -> anyhow::Result<()> {
    let (conn, channel) = amqp_channel(url).await?;
    let (mut total, mut samples) = (0usize, 0usize);
    for _ in 0..count {
        let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await?
        else {
            break;
        };
        let body = &message.delivery.data;
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if parsed["type"] == "change" && parsed["table"] == table {
            total += body.len();
            samples += 1;
        }
    }
    let _ = conn.close(200, "bye".into()).await;
    if samples == 0 {
        bail!("no change message of table {table} in queue {queue}");
    }
    println!("message_bytes={} samples={samples}", total / samples);
    Ok(())
}

// ---- database helpers --------------------------------------------------------------------------

async fn mysql_conn(url: &str) -> anyhow::Result<mysql_async::Conn> {
    let opts = mysql_async::Opts::from_url(url).with_context(|| format!("bad MySQL URL {url}"))?;
    mysql_async::Conn::new(opts)
        .await
        .with_context(|| format!("connecting to {url}"))
}

async fn binlog_pos(conn: &mut mysql_async::Conn) -> anyhow::Result<(String, u64)> {
    let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await?;
    let row = row.context("SHOW MASTER STATUS is empty: is the binlog on?")?;
    let file: String = row.get(0).context("no file")?;
    let pos: u64 = row.get(1).context("no position")?;
    Ok((file, pos))
}

const SCHEMA: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS bench CHARACTER SET utf8mb4",
    "CREATE TABLE IF NOT EXISTS bench.items (id INT PRIMARY KEY, name VARCHAR(64), \
     price DECIMAL(10,2), qty INT, updated_at DATETIME(3), note VARCHAR(128))",
    "CREATE TABLE IF NOT EXISTS bench.probe (id INT PRIMARY KEY, sent_us BIGINT)",
    // Server-side loop: a million single-row updates take seconds instead of a million round
    // trips. Each UPDATE is its own rows event; a transaction commits every `tx` updates.
    "CREATE PROCEDURE IF NOT EXISTS bench.bench_updates(IN n BIGINT, IN tx BIGINT, IN nrows INT)
     BEGIN
       DECLARE i BIGINT DEFAULT 0;
       START TRANSACTION;
       WHILE i < n DO
         UPDATE bench.items SET qty = qty + 1, updated_at = NOW(3) WHERE id = (i MOD nrows) + 1;
         SET i = i + 1;
         IF i MOD tx = 0 THEN
           COMMIT;
           START TRANSACTION;
         END IF;
       END WHILE;
       COMMIT;
     END",
];

async fn drive(url: &str, rows: u32, updates: u64, tx_size: u64) -> anyhow::Result<()> {
    let mut conn = mysql_conn(url).await?;
    for statement in SCHEMA {
        conn.query_drop(*statement)
            .await
            .with_context(|| format!("running {}", statement.lines().next().unwrap_or("")))?;
    }
    let existing: Option<i64> = conn
        .query_first("SELECT COALESCE(MAX(id), 0) FROM bench.items")
        .await?;
    let existing = existing.unwrap_or(0).max(0) as u32;
    let seed_started = Instant::now();
    let mut id = existing + 1;
    while id <= rows {
        let last = (id + 999).min(rows);
        let values: Vec<String> = (id..=last)
            .map(|i| {
                format!(
                    "({i}, 'item-{i}', {}.{:02}, 0, NOW(3), 'seeded row {i} of the bridge benchmark')",
                    i % 1000 + 1,
                    i % 100
                )
            })
            .collect();
        conn.query_drop(format!(
            "INSERT INTO bench.items (id, name, price, qty, updated_at, note) VALUES {}",
            values.join(",")
        ))
        .await?;
        id = last + 1;
    }
    let seeded = rows.saturating_sub(existing);
    if seeded > 0 {
        eprintln!(
            "drive: seeded {seeded} rows in {:.2} s",
            seed_started.elapsed().as_secs_f64()
        );
    }
    if updates > 0 {
        let nrows = rows.max(existing);
        if nrows == 0 {
            bail!("no rows to update: use --rows");
        }
        let started = Instant::now();
        conn.exec_drop(
            "CALL bench.bench_updates(?, ?, ?)",
            (updates, tx_size.max(1), nrows),
        )
        .await
        .context("running the update procedure")?;
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "drive: updates={updates} tx_size={tx_size} elapsed_s={elapsed:.2} updates_per_s={:.0}",
            updates as f64 / elapsed
        );
    }
    conn.disconnect().await?;
    Ok(())
}

// ---- bridge progress ---------------------------------------------------------------------------

fn read_checkpoint(path: &Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    Some((value["file"].as_str()?.to_string(), value["pos"].as_u64()?))
}

/// User + system CPU seconds used so far by a process (clock ticks of 1/100 s).
fn proc_cpu_secs(pid: u32) -> Option<f64> {
    proc_cpu_secs_at(&format!("/proc/{pid}/stat"))
}

fn proc_cpu_secs_at(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Per thread name of a process (threads of the same name summed), largest CPU first: CPU
/// seconds and voluntary context switches (each one a sleep: waiting for work or a lock).
fn thread_stats(pid: u32) -> Vec<(String, f64, u64)> {
    let mut by_name: Vec<(String, f64, u64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let Some(cpu) = proc_cpu_secs_at(&dir.join("stat").to_string_lossy()) else {
            continue;
        };
        let switches = std::fs::read_to_string(dir.join("status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let name = name.trim().to_string();
        match by_name.iter_mut().find(|(n, _, _)| *n == name) {
            Some(entry) => {
                entry.1 += cpu;
                entry.2 += switches;
            }
            None => by_name.push((name, cpu, switches)),
        }
    }
    by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
    by_name
}

/// A field of /proc/PID/status in MiB, `None` once the process is gone.
fn proc_status_mb(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn watch(
    checkpoint: &Path,
    until_file: &str,
    until_pos: u64,
    pid: u32,
    start_us: i64,
    timeout_secs: u64,
) -> anyhow::Result<()> {
    let target = (until_file.to_string(), until_pos);
    let mut peak_rss = 0f64;
    let mut last_report = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticker.tick().await;
        let now_us = unix_micros();
        let elapsed = (now_us - start_us) as f64 / 1e6;
        let Some(rss) = proc_status_mb(pid, "VmRSS:") else {
            bail!("the bridge (pid {pid}) exited before its checkpoint reached {until_file}:{until_pos}");
        };
        peak_rss = peak_rss.max(rss);
        let current = read_checkpoint(checkpoint);
        if current.as_ref().is_some_and(|c| *c >= target) {
            let hwm = proc_status_mb(pid, "VmHWM:").unwrap_or(0.0);
            let cpu = proc_cpu_secs(pid).unwrap_or(0.0);
            let threads: Vec<String> = thread_stats(pid)
                .iter()
                .map(|(name, secs, switches)| format!("{name} {secs:.1} s/{switches} sleeps"))
                .collect();
            eprintln!(
                "watch: bridge cpu {cpu:.1} s in {elapsed:.1} s; by thread (cpu/voluntary context switches): {}",
                threads.join(", ")
            );
            println!(
                "elapsed_s={elapsed:.3} peak_rss_mb={:.1} sampled_rss_mb={peak_rss:.1} hwm_mb={hwm:.1} bridge_cpu_s={cpu:.2}",
                peak_rss.max(hwm)
            );
            return Ok(());
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let (file, pos) = current.unwrap_or_default();
            let cpu = proc_cpu_secs(pid).unwrap_or(0.0);
            eprintln!(
                "watch: {elapsed:.1} s, checkpoint {file}:{pos} of {until_file}:{until_pos}, rss {rss:.1} MB, bridge cpu {cpu:.1} s"
            );
        }
        if elapsed > timeout_secs as f64 {
            bail!("the checkpoint did not reach {until_file}:{until_pos} within {timeout_secs} s");
        }
    }
}

// ---- latency -----------------------------------------------------------------------------------

/// Updates one `probe` row per transaction at a steady rate, each carrying the client's clock
/// just before the (autocommit) commit, and times the arrival of the matching change messages.
///
/// This measures commit-to-DELIVERY latency: the broker delivers a persistent message to a
/// consumer of a quorum queue only after it is committed there, which is also when it confirms
/// the publish, so this bounds the bridge's commit-to-confirm latency from above.
async fn latency(
    mysql: &str,
    amqp: &str,
    queue: &str,
    rate: u32,
    seconds: u64,
    warmup_secs: u64,
) -> anyhow::Result<()> {
    const IDS: u32 = 1000;
    let mut conn = mysql_conn(mysql).await?;
    conn.query_drop(SCHEMA[0]).await?;
    conn.query_drop(SCHEMA[2]).await?;
    let values: Vec<String> = (1..=IDS).map(|i| format!("({i}, 0)")).collect();
    conn.query_drop(format!(
        "INSERT IGNORE INTO bench.probe (id, sent_us) VALUES {}",
        values.join(",")
    ))
    .await?;

    let (amqp_conn, channel) = amqp_channel(amqp).await?;
    channel.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "benchkit-latency".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    // (sent_us, latency_us) of every measured change.
    let samples: Arc<Mutex<Vec<(i64, i64)>>> = Arc::default();
    let newest_seen = Arc::new(AtomicI64::new(0));
    let measure_from = Arc::new(AtomicI64::new(i64::MAX));
    let consumer_task = {
        let samples = samples.clone();
        let newest_seen = newest_seen.clone();
        let measure_from = measure_from.clone();
        tokio::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                let received_us = unix_micros();
                let Ok(delivery) = delivery else { break };
                let Ok(message) = serde_json::from_slice::<Value>(&delivery.data) else {
                    continue;
                };
                if message["type"] != "change" || message["table"] != "probe" {
                    continue;
                }
                let sent = &message["after"]["sent_us"];
                let Some(sent_us) = sent
                    .as_i64()
                    .or_else(|| sent.as_str().and_then(|s| s.parse().ok()))
                else {
                    continue;
                };
                if sent_us <= 0 {
                    continue;
                }
                newest_seen.fetch_max(sent_us, Ordering::SeqCst);
                if sent_us >= measure_from.load(Ordering::SeqCst) {
                    samples
                        .lock()
                        .expect("samples lock")
                        .push((sent_us, received_us - sent_us));
                }
            }
        })
    };

    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = tokio::time::Instant::now();
    let start_us = unix_micros();
    measure_from.store(start_us + warmup_secs as i64 * 1_000_000, Ordering::SeqCst);
    let total = u64::from(rate) * seconds;
    let (mut sent, mut measured_sent, mut last_sent_us) = (0u64, 0u64, 0i64);
    let mut late = 0u64;
    let mut commit_us = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = started + period * i as u32;
        if due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
        } else if tokio::time::Instant::now() - due > Duration::from_millis(10) {
            late += 1;
        }
        let id = (i % u64::from(IDS)) as u32 + 1;
        let sent_us = unix_micros();
        conn.exec_drop(
            "UPDATE bench.probe SET sent_us = ? WHERE id = ?",
            (sent_us, id),
        )
        .await?;
        commit_us.push(unix_micros() - sent_us);
        sent += 1;
        last_sent_us = sent_us;
        if sent_us >= measure_from.load(Ordering::SeqCst) {
            measured_sent += 1;
        }
    }
    let send_secs = started.elapsed().as_secs_f64();
    // Wait for the last change to come through (or give up after 10 s).
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while newest_seen.load(Ordering::SeqCst) < last_sent_us && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer_task.abort();
    let _ = amqp_conn.close(200, "bye".into()).await;
    conn.disconnect().await?;

    let measured = std::mem::take(&mut *samples.lock().expect("samples lock"));
    if measured.is_empty() {
        bail!("no probe change arrived on queue {queue}: is the bridge running and capturing bench.probe?");
    }
    let mut samples: Vec<i64> = measured.iter().map(|(_, latency)| *latency).collect();
    samples.sort_unstable();
    let pick = |sorted: &[i64], q: f64| {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1000.0
    };
    commit_us.sort_unstable();
    eprintln!(
        "latency: sent {sent} updates in {send_secs:.2} s ({:.0}/s, {late} more than 10 ms late); \
         {measured_sent} after the {warmup_secs} s warm-up, {} of them received; the UPDATE \
         (autocommit) itself took p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        sent as f64 / send_secs,
        samples.len(),
        pick(&commit_us, 0.5),
        pick(&commit_us, 0.99),
        pick(&commit_us, 1.0),
    );
    // Seconds whose p99 exceeds 50 ms: tells a steady delay from a few stalls.
    let mut by_second: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for (sent_us, latency) in &measured {
        by_second
            .entry((sent_us - start_us) / 1_000_000)
            .or_default()
            .push(*latency);
    }
    for (second, mut latencies) in by_second {
        latencies.sort_unstable();
        if pick(&latencies, 0.99) > 50.0 {
            eprintln!(
                "latency: second {second}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
                pick(&latencies, 0.5),
                pick(&latencies, 0.99),
                pick(&latencies, 1.0),
                latencies.len()
            );
        }
    }
    println!(
        "p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} samples={} missing={}",
        pick(&samples, 0.50),
        pick(&samples, 0.90),
        pick(&samples, 0.99),
        pick(&samples, 1.0),
        samples.len(),
        measured_sent.saturating_sub(samples.len() as u64)
    );
    Ok(())
}
