//! Drives the demo (`./demo`): creates an OCPI-shaped demo schema, keeps changing records at a
//! steady rate, plays a partner that reads its queue, shows live counts, and finally checks the
//! partner's view of every record it received against the database.

use anyhow::{bail, Context, Result};
use change_message::{Message, Operation, Row};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use mysql_async::prelude::Queryable;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DB: &str = "ocpi_demo";
const LOCATIONS: usize = 100;
const EVSES: usize = 300;
const STATUSES: [&str; 3] = ["AVAILABLE", "CHARGING", "OUTOFORDER"];

fn usage() -> ! {
    eprintln!(
        "usage:\n  demo-driver setup MYSQL_URL\n  demo-driver declare AMQP_URL EXCHANGE QUEUE\n  demo-driver run MYSQL_URL AMQP_URL EXCHANGE QUEUE DURATION_SECS RATE_PER_SEC"
    );
    std::process::exit(2);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") if args.len() == 2 => setup(&args[1]).await,
        Some("declare") if args.len() == 4 => {
            system_tests::declare_bound_queue(&args[1], &args[2], &args[3]).await;
            Ok(())
        }
        Some("run") if args.len() == 7 => {
            let duration = Duration::from_secs(args[5].parse().context("DURATION_SECS")?);
            let rate: u64 = args[6].parse().context("RATE_PER_SEC")?;
            run(&args[1], &args[2], &args[3], &args[4], duration, rate).await
        }
        _ => usage(),
    }
}

async fn setup(mysql_url: &str) -> Result<()> {
    let pool = mysql_async::Pool::new(mysql_url);
    let mut conn = pool
        .get_conn()
        .await
        .context("connecting to the demo MariaDB")?;
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {DB} CHARACTER SET utf8mb4;
         CREATE TABLE IF NOT EXISTS {DB}.locations (
           id VARCHAR(36) PRIMARY KEY, name VARCHAR(100) NOT NULL, city VARCHAR(60) NOT NULL,
           country CHAR(3) NOT NULL, latitude DECIMAL(9,6) NOT NULL, longitude DECIMAL(9,6) NOT NULL,
           last_updated DATETIME(3) NOT NULL);
         CREATE TABLE IF NOT EXISTS {DB}.evses (
           uid VARCHAR(36) PRIMARY KEY, location_id VARCHAR(36) NOT NULL,
           status ENUM('AVAILABLE','CHARGING','OUTOFORDER','REMOVED') NOT NULL,
           last_updated DATETIME(3) NOT NULL);"
    ))
    .await?;
    for i in 0..LOCATIONS {
        conn.exec_drop(
            format!(
                "INSERT IGNORE INTO {DB}.locations VALUES (?, ?, 'Utrecht', 'NLD', ?, ?, NOW(3))"
            ),
            (
                format!("LOC{i:04}"),
                format!("Charging hub {i}"),
                format!("52.{:06}", 90_000 + i),
                format!("5.{:06}", 120_000 + i),
            ),
        )
        .await?;
    }
    for i in 0..EVSES {
        conn.exec_drop(
            format!("INSERT IGNORE INTO {DB}.evses VALUES (?, ?, 'AVAILABLE', NOW(3))"),
            (format!("EVSE{i:04}"), format!("LOC{:04}", i % LOCATIONS)),
        )
        .await?;
    }
    println!("demo schema {DB}: {LOCATIONS} locations, {EVSES} EVSEs");
    Ok(())
}

/// The partner's view: per record, the newest state received (by `seq`).
#[derive(Default)]
struct PartnerView {
    records: HashMap<String, (u64, Operation, Option<Row>)>,
    messages: u64,
    changes: u64,
    stale_or_duplicate: u64,
}

async fn run(
    mysql_url: &str,
    amqp_url: &str,
    exchange: &str,
    queue: &str,
    duration: Duration,
    rate: u64,
) -> Result<()> {
    system_tests::declare_bound_queue(amqp_url, exchange, queue).await;
    let view = Arc::new(Mutex::new(PartnerView::default()));
    let last_message = Arc::new(Mutex::new(Instant::now()));

    let conn = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default())
        .await
        .context("connecting to RabbitMQ")?;
    let channel = conn.create_channel().await?;
    channel.basic_qos(500, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "demo-partner".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    {
        let view = view.clone();
        let last_message = last_message.clone();
        tokio::spawn(async move {
            use futures_core::Stream;
            use std::pin::Pin;
            loop {
                let next = std::future::poll_fn(|cx| Pin::new(&mut consumer).poll_next(cx)).await;
                let Some(Ok(delivery)) = next else { break };
                if let Ok(Message::Change(change)) = Message::from_slice(&delivery.data) {
                    let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
                    v.messages += 1;
                    v.changes += u64::from(change.merged);
                    let key = change.record_key();
                    let newer = v
                        .records
                        .get(&key)
                        .is_none_or(|(seq, _, _)| change.seq > *seq);
                    if newer {
                        let image = change.latest_image().cloned();
                        v.records.insert(key, (change.seq, change.op, image));
                    } else {
                        v.stale_or_duplicate += 1;
                    }
                }
                *last_message.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                let _ = delivery.ack(BasicAckOptions::default()).await;
            }
        });
    }

    // The workload: EVSE status flips and location renames at a steady rate.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let pool = mysql_async::Pool::new(mysql_url);
    let writer = {
        let stop = stop.clone();
        let written = written.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.get_conn().await?;
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
            let mut n: usize = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                if n.is_multiple_of(10) {
                    conn.exec_drop(
                        format!("UPDATE {DB}.locations SET name = ?, last_updated = NOW(3) WHERE id = ?"),
                        (format!("Charging hub {} (rev {n})", n % LOCATIONS), format!("LOC{:04}", fastrand::usize(..LOCATIONS))),
                    )
                    .await?;
                } else {
                    conn.exec_drop(
                        format!(
                            "UPDATE {DB}.evses SET status = ?, last_updated = NOW(3) WHERE uid = ?"
                        ),
                        (
                            STATUSES[fastrand::usize(..STATUSES.len())],
                            format!("EVSE{:04}", fastrand::usize(..EVSES)),
                        ),
                    )
                    .await?;
                }
                written.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), mysql_async::Error>(())
        })
    };

    println!(
        "workload: {rate} updates/s for {}s; partner queue {queue}",
        duration.as_secs()
    );
    let started = Instant::now();
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let backlog = system_tests::queue_len(amqp_url, queue).await;
        let v = view.lock().unwrap_or_else(|e| e.into_inner());
        println!(
            "[{:>4}s] rows updated {:>7} | partner received {:>7} messages ({:>7} changes, dedup saved {:>5}) | backlog {:>6}",
            started.elapsed().as_secs(),
            written.load(Ordering::Relaxed),
            v.messages,
            v.changes,
            v.changes - v.messages,
            backlog
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer.await?.context("the workload failed")?;

    // Let the bridge and the partner catch up: quiet for 3 s.
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let quiet = last_message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        if quiet > Duration::from_secs(3) && system_tests::queue_len(amqp_url, queue).await == 0 {
            break;
        }
        if Instant::now() > drain_deadline {
            bail!("the partner queue did not drain within 60 s");
        }
    }

    let mut conn = pool.get_conn().await?;
    let mut database: HashMap<String, (String, String)> = HashMap::new();
    let evses: Vec<(String, String, String)> = conn
        .query(format!(
            "SELECT uid, CAST(status AS CHAR), DATE_FORMAT(last_updated, '%Y-%m-%dT%H:%i:%s.%f') FROM {DB}.evses"
        ))
        .await?;
    for (uid, status, updated) in evses {
        database.insert(
            format!("{DB}.evses/{{\"uid\":\"{uid}\"}}"),
            (status, updated[..23].to_string()),
        );
    }
    let locations: Vec<(String, String, String)> = conn
        .query(format!(
            "SELECT id, name, DATE_FORMAT(last_updated, '%Y-%m-%dT%H:%i:%s.%f') FROM {DB}.locations"
        ))
        .await?;
    for (id, name, updated) in locations {
        database.insert(
            format!("{DB}.locations/{{\"id\":\"{id}\"}}"),
            (name, updated[..23].to_string()),
        );
    }

    let v = view.lock().unwrap_or_else(|e| e.into_inner());
    let mut mismatches = Vec::new();
    for (key, (_, _, image)) in &v.records {
        let Some(image) = image else { continue };
        let field = if key.contains(".evses/") {
            "status"
        } else {
            "name"
        };
        let got = (
            image
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            image
                .get("last_updated")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
        match database.get(key) {
            Some(expected) if *expected == got => {}
            other => mismatches.push(format!(
                "{key}: partner has {got:?}, database has {other:?}"
            )),
        }
    }
    println!(
        "consistency check: rows updated {}, partner received {} messages standing for {} changes (dedup saved {}), {} duplicates or stale states ignored",
        written.load(Ordering::Relaxed),
        v.messages,
        v.changes,
        v.changes - v.messages,
        v.stale_or_duplicate
    );
    if mismatches.is_empty() {
        println!(
            "consistency check PASSED: all {} records the partner received match the database",
            v.records.len()
        );
        Ok(())
    } else {
        for m in mismatches.iter().take(20) {
            println!("  {m}");
        }
        bail!(
            "consistency check FAILED: {} records differ",
            mismatches.len()
        )
    }
}
