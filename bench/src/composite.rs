//! The composite case of `bench/run pusher`: EVSE changes of a Location > EVSE > Connector tree
//! that the pusher turns into PUTs of whole EVSEs read from the source database.
//!
//! - `composite-mapping`: the mapping the case runs on: the example mapping when it links its
//!   tree with `[[table.children]]`, else a copy of it with the tree linked;
//! - `composite-seed`: Locations, each with EVSEs, each with Connectors, in the example schema
//!   (loaded by `bench/run`);
//! - `composite-backlog`: one round. Outside the timing it writes the round's changes to the
//!   database in bulk (status changes of seeded EVSEs spread over all of them, and new EVSEs
//!   with their connectors) and publishes the change messages the bridge would have published
//!   for them into the partners' queues; then it starts one pusher and times from its start
//!   until its metrics count every message acked. Composite pushes/s is messages acked per
//!   second, as the plain case's pushes/s is, so the two compare fairly; the partner's calls
//!   (fewer when changes of one EVSE coalesce) are reported beside it.
//!
//! Rows are built by one set of functions for the seed, the writes and the message images, so
//! the database holds exactly the state the messages claim.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use change_message::{Message, Operation, Row, RowChange, Source, CONTRACT_VERSION};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pusher::{
    await_ready, log_problems, partner_ids, ready_total, CpuMeter, Names, Partner, Publisher,
    PusherSetup,
};
use crate::{amqp_channel, mysql_conn, proc_cpu_secs, unix_micros};

const CC: &str = "NL";
const PARTY: &str = "EXA";
/// Statuses a status change moves through (never REMOVED: that is the EVSE's removal).
const STATUSES: [&str; 4] = ["AVAILABLE", "CHARGING", "OUTOFORDER", "INOPERATIVE"];
/// Rows per multi-row INSERT.
const CHUNK: usize = 1000;
/// When the seeded rows were last updated (message format).
const SEEDED_AT: &str = "2026-01-05T09:00:00.000";

// ---- the mapping -------------------------------------------------------------------------------

/// Whether a mapping links tables with `[[table.children]]` (a line of its own, not a comment).
fn is_linked(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "[[table.children]]")
}

/// The example mapping with its tree linked: a Location's `evses`, an EVSE's `connectors`
/// (`update = "patch"` is not allowed on linked tables: a composite object is always PUT).
fn link_tree(text: &str) -> String {
    let links = [
        (
            "table = \"ocpi.locations\"",
            "[[table.children]]\ntable = \"ocpi.evses\"\nfield = \"evses\"\njoin = { \
             country_code = \"country_code\", party_id = \"party_id\", location_id = \"id\" }\n",
        ),
        (
            "table = \"ocpi.evses\"",
            "[[table.children]]\ntable = \"ocpi.connectors\"\nfield = \"connectors\"\njoin = { \
             country_code = \"country_code\", party_id = \"party_id\", location_id = \
             \"location_id\", evse_uid = \"uid\" }\n",
        ),
    ];
    let mut entries: Vec<String> = text.split("\n[[table]]\n").map(str::to_string).collect();
    for entry in entries.iter_mut() {
        if let Some((_, block)) = links.iter().find(|(name, _)| entry.starts_with(name)) {
            let kept: Vec<&str> = entry
                .lines()
                .filter(|l| !l.trim_start().starts_with("update = \"patch\""))
                .collect();
            *entry = format!("{}\n\n{block}", kept.join("\n").trim_end());
        }
    }
    entries.join("\n[[table]]\n")
}

/// Prints the path of the mapping the composite case uses: `mapping` itself when it is
/// linked, else `out`, written with the tree linked.
pub fn mapping(mapping: &Path, out: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(mapping)
        .with_context(|| format!("reading {}", mapping.display()))?;
    if is_linked(&text) {
        eprintln!(
            "composite-mapping: {} links its tree already",
            mapping.display()
        );
        println!("{}", mapping.display());
        return Ok(());
    }
    let linked = link_tree(&text);
    if !is_linked(&linked) {
        bail!(
            "{} has no ocpi.locations / ocpi.evses entry to link",
            mapping.display()
        );
    }
    std::fs::write(out, linked).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "composite-mapping: {} does not link its tree: using {} (Location > EVSE > Connector \
         linked with [[table.children]])",
        mapping.display(),
        out.display()
    );
    println!("{}", out.display());
    Ok(())
}

// ---- rows --------------------------------------------------------------------------------------

fn location_id(location: u32) -> String {
    format!("BL{location:05}")
}

fn row(value: Value) -> Row {
    value.as_object().cloned().unwrap_or_default()
}

fn location_row(location: u32) -> Row {
    row(json!({
        "country_code": CC, "party_id": PARTY, "id": location_id(location), "publish": 1,
        "name": format!("Bench location {location}"), "address": format!("Benchstraat {location}"),
        "city": "Utrecht", "postal_code": "3511 ED", "state": null, "country": "NLD",
        "latitude": format!("52.{:06}", location % 1_000_000), "longitude": "5.110278",
        "parking_type": "PARKING_LOT", "operator_name": "Example Charging",
        "time_zone": "Europe/Amsterdam", "opening_times": "{\"twentyfourseven\": true}",
        "charging_when_closed": 1, "last_updated": SEEDED_AT,
    }))
}

/// An EVSE row as the bridge types it (SET and ENUM as text, DATETIME without a zone).
fn evse_row(location: u32, uid: &str, status: &str, last_updated: &str) -> Row {
    row(json!({
        "country_code": CC, "party_id": PARTY, "location_id": location_id(location), "uid": uid,
        "evse_id": format!("NL*EXA*{uid}"), "status": status,
        "capabilities": "RFID_READER,REMOTE_START_STOP_CAPABLE", "floor_level": "0",
        "latitude": null, "longitude": null, "physical_reference": "1",
        "parking_restrictions": null, "last_updated": last_updated,
    }))
}

fn connector_row(location: u32, evse_uid: &str, id: u32, last_updated: &str) -> Row {
    row(json!({
        "country_code": CC, "party_id": PARTY, "location_id": location_id(location),
        "evse_uid": evse_uid, "id": id.to_string(), "standard": "IEC_62196_T2",
        "format": "SOCKET", "power_type": "AC_3_PHASE", "max_voltage": 230, "max_amperage": 32,
        "max_electric_power": 22000, "tariff_ids": "[\"TARIFF_AC\"]",
        "terms_and_conditions": null, "last_updated": last_updated,
    }))
}

fn seeded_uid(location: u32, evse: u32) -> String {
    format!("{}-{evse}", location_id(location))
}

fn seeded_status(location: u32, evse: u32) -> &'static str {
    STATUSES[((location + evse) as usize) % STATUSES.len()]
}

fn next_status(status: &str) -> &'static str {
    let at = STATUSES.iter().position(|s| *s == status).unwrap_or(0);
    STATUSES[(at + 1) % STATUSES.len()]
}

/// A value as an SQL literal (text quoted; a `...T...` date-time is accepted by the server).
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
        other => format!("'{}'", other.to_string().replace('\'', "''")),
    }
}

/// Multi-row INSERTs of `rows` (all with the columns of the first) into `table`, CHUNK rows
/// each; `suffix` follows every statement (`ON DUPLICATE KEY UPDATE ...`).
async fn insert_rows(
    conn: &mut mysql_async::Conn,
    table: &str,
    rows: &[Row],
    suffix: &str,
) -> anyhow::Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let columns: Vec<&String> = first.keys().collect();
    let column_list = columns
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    for chunk in rows.chunks(CHUNK) {
        let values: Vec<String> = chunk
            .iter()
            .map(|r| {
                let vals: Vec<String> = columns
                    .iter()
                    .map(|c| literal(r.get(*c).unwrap_or(&Value::Null)))
                    .collect();
                format!("({})", vals.join(", "))
            })
            .collect();
        conn.query_drop(format!(
            "INSERT INTO ocpi.{table} ({column_list}) VALUES {} {suffix}",
            values.join(", ")
        ))
        .await
        .with_context(|| format!("inserting into ocpi.{table}"))?;
    }
    Ok(())
}

// ---- composite-seed ----------------------------------------------------------------------------

/// `locations` Locations with `evses` EVSEs of `connectors` Connectors each, in the example
/// schema (already loaded): prints locations=... evses=... connectors=... seed_s=...
pub async fn seed(url: &str, locations: u32, evses: u32, connectors: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = mysql_conn(url).await?;
    let existing: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM ocpi.locations WHERE id LIKE 'BL%'")
        .await
        .context("is the example schema loaded?")?;
    if existing.unwrap_or(0) > 0 {
        bail!("ocpi.locations holds bench rows already: start from a fresh database");
    }
    for first in (1..=locations).step_by(CHUNK) {
        let last = (first + CHUNK as u32 - 1).min(locations);
        let (mut ls, mut es, mut cs) = (Vec::new(), Vec::new(), Vec::new());
        for location in first..=last {
            ls.push(location_row(location));
            for evse in 1..=evses {
                let uid = seeded_uid(location, evse);
                es.push(evse_row(
                    location,
                    &uid,
                    seeded_status(location, evse),
                    SEEDED_AT,
                ));
                for id in 1..=connectors {
                    cs.push(connector_row(location, &uid, id, SEEDED_AT));
                }
            }
        }
        insert_rows(&mut conn, "locations", &ls, "").await?;
        insert_rows(&mut conn, "evses", &es, "").await?;
        insert_rows(&mut conn, "connectors", &cs, "").await?;
    }
    conn.disconnect().await?;
    println!(
        "locations={locations} evses={} connectors={} seed_s={:.2}",
        u64::from(locations) * u64::from(evses),
        u64::from(locations) * u64::from(evses) * u64::from(connectors),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---- change messages ---------------------------------------------------------------------------

/// One change message of the workload, for one partner's queue.
struct Change {
    partner: usize,
    op: Operation,
    table: &'static str,
    key_columns: &'static [&'static str],
    before: Option<Row>,
    after: Row,
    /// Binlog position and row of the rows event (a new EVSE's rows share one transaction).
    pos: u64,
    row: u32,
}

const EVSE_KEY: &[&str] = &["country_code", "party_id", "location_id", "uid"];
const CONNECTOR_KEY: &[&str] = &["country_code", "party_id", "location_id", "evse_uid", "id"];

/// The message as the bridge publishes it: body and properties.
fn message(change: &Change, seq: u64, commit_time: &str) -> (Vec<u8>, BasicProperties) {
    let mut key = Row::new();
    for column in change.key_columns {
        let value = change.after.get(*column).cloned().unwrap_or(Value::Null);
        key.insert((*column).to_string(), value);
    }
    let changed = match &change.before {
        Some(before) => change
            .after
            .iter()
            .filter(|(c, v)| before.get(*c) != Some(*v))
            .map(|(c, _)| c.clone())
            .collect(),
        None => Vec::new(),
    };
    let message_id = format!("1-bench.000001-{}-{}", change.pos, change.row);
    let body = RowChange {
        version: CONTRACT_VERSION,
        id: message_id.clone(),
        seq,
        op: change.op,
        database: "ocpi".into(),
        table: change.table.into(),
        key,
        after: Some(change.after.clone()),
        before: change.before.clone(),
        changed,
        binary_columns: Vec::new(),
        merged: 1,
        source: Source {
            server_id: 1,
            file: "bench.000001".into(),
            pos: change.pos,
            row: change.row,
            gtid: Some(format!("0-1-{}", change.pos)),
            tx_index: change.row,
            commit_time: commit_time.into(),
        },
        snapshot: None,
        too_large: None,
    };
    let mut headers = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert("x-database".into(), text("ocpi"));
    headers.insert("x-table".into(), text(change.table));
    headers.insert("x-operation".into(), text(change.op.as_str()));
    headers.insert("x-seq".into(), AMQPValue::LongLongInt(seq as i64));
    let properties = BasicProperties::default()
        .with_content_type(change_message::CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(message_id))
        .with_type("change".into())
        .with_timestamp((unix_micros() / 1_000_000).max(0) as u64)
        .with_headers(headers);
    (Message::Change(body).to_vec(), properties)
}

// ---- the workload ------------------------------------------------------------------------------

/// The shape of the seeded tree and of one round's changes.
pub struct Workload {
    pub locations: u32,
    pub evses: u32,
    pub connectors: u32,
    pub changes: u64,
    /// Every `new_every`-th change is a new EVSE (0: none).
    pub new_every: u64,
    pub round: u32,
}

/// What a round wrote and is about to publish.
struct Planned {
    messages: Vec<Change>,
    status_changes: u64,
    new_evses: u64,
    distinct_evses: u64,
}

/// Writes the round's changes to the database (bulk, before anything is published) and
/// returns their messages, each for partner `change index % partners`.
async fn write_round(
    conn: &mut mysql_async::Conn,
    work: &Workload,
    partners: usize,
    now: &str,
) -> anyhow::Result<Planned> {
    let total = u64::from(work.locations) * u64::from(work.evses);
    if total == 0 {
        bail!("no seeded EVSEs to change");
    }
    // The statuses the database holds now (earlier rounds changed them).
    let rows: Vec<(String, String)> = conn
        .query(
            "SELECT uid, CAST(status AS CHAR) FROM ocpi.evses WHERE country_code = 'NL' AND \
             party_id = 'EXA' AND location_id LIKE 'BL%'",
        )
        .await?;
    let mut status: HashMap<String, String> = rows.into_iter().collect();
    // The seeded EVSEs' last_updated is that of their last change: kept here for `before`.
    let mut updated: HashMap<String, String> = HashMap::new();
    let last_updated_rows: Vec<(String, String)> = conn
        .query(
            "SELECT uid, DATE_FORMAT(last_updated, '%Y-%m-%dT%H:%i:%s.%f') FROM ocpi.evses \
             WHERE country_code = 'NL' AND party_id = 'EXA' AND location_id LIKE 'BL%'",
        )
        .await?;
    for (uid, at) in last_updated_rows {
        // DATE_FORMAT gives 6 fractional digits; the column (and the bridge) has 3.
        updated.insert(uid, at.chars().take(23).collect());
    }
    let base_pos = 4 + u64::from(work.round) * 10_000_000;
    let mut messages = Vec::new();
    let (mut status_changes, mut new_evses) = (0u64, 0u64);
    let mut touched: HashMap<String, Row> = HashMap::new();
    let (mut new_evse_rows, mut new_connector_rows) = (Vec::new(), Vec::new());
    // A stride coprime with the EVSE count visits every EVSE before any comes again.
    let stride = coprime_stride(total);
    for i in 0..work.changes {
        let partner = (i % partners as u64) as usize;
        let pos = base_pos + i;
        if work.new_every > 0 && i % work.new_every == work.new_every - 1 {
            let location = ((new_evses * 7919 + u64::from(work.round) * 13)
                % u64::from(work.locations)) as u32
                + 1;
            let uid = format!("{}-N{}-{new_evses}", location_id(location), work.round);
            let evse = evse_row(location, &uid, "AVAILABLE", now);
            new_evse_rows.push(evse.clone());
            messages.push(Change {
                partner,
                op: Operation::Insert,
                table: "evses",
                key_columns: EVSE_KEY,
                before: None,
                after: evse,
                pos,
                row: 0,
            });
            for id in 1..=work.connectors {
                let connector = connector_row(location, &uid, id, now);
                new_connector_rows.push(connector.clone());
                messages.push(Change {
                    partner,
                    op: Operation::Insert,
                    table: "connectors",
                    key_columns: CONNECTOR_KEY,
                    before: None,
                    after: connector,
                    pos,
                    row: id,
                });
            }
            new_evses += 1;
        } else {
            let n = (status_changes * stride + u64::from(work.round) * 101) % total;
            let location = (n / u64::from(work.evses)) as u32 + 1;
            let evse = (n % u64::from(work.evses)) as u32 + 1;
            let uid = seeded_uid(location, evse);
            let old = status
                .get(&uid)
                .cloned()
                .unwrap_or_else(|| seeded_status(location, evse).to_string());
            let old_at = updated
                .get(&uid)
                .cloned()
                .unwrap_or_else(|| SEEDED_AT.to_string());
            let new = next_status(&old);
            let before = evse_row(location, &uid, &old, &old_at);
            let after = evse_row(location, &uid, new, now);
            status.insert(uid.clone(), new.to_string());
            updated.insert(uid.clone(), now.to_string());
            touched.insert(uid, after.clone());
            messages.push(Change {
                partner,
                op: Operation::Update,
                table: "evses",
                key_columns: EVSE_KEY,
                before: Some(before),
                after,
                pos,
                row: 0,
            });
            status_changes += 1;
        }
    }
    let started = Instant::now();
    let changed: Vec<Row> = touched.values().cloned().collect();
    insert_rows(
        conn,
        "evses",
        &changed,
        "ON DUPLICATE KEY UPDATE status = VALUES(status), last_updated = VALUES(last_updated)",
    )
    .await?;
    insert_rows(conn, "evses", &new_evse_rows, "").await?;
    insert_rows(conn, "connectors", &new_connector_rows, "").await?;
    eprintln!(
        "composite: wrote {} status changes ({} EVSEs) and {new_evses} new EVSEs with {} \
         connectors to the database in {:.2} s",
        status_changes,
        changed.len(),
        new_connector_rows.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(Planned {
        messages,
        status_changes,
        new_evses,
        distinct_evses: changed.len() as u64,
    })
}

fn coprime_stride(total: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    (7919..).find(|s| gcd(*s, total) == 1).unwrap_or(1)
}

// ---- counters ----------------------------------------------------------------------------------

/// Sums of the pusher's counters over its partners, from GET /metrics.
#[derive(Default, Debug, Clone, Copy)]
struct PusherCounters {
    pushes: f64,
    parked: f64,
    database_reads: f64,
    failures: f64,
}

async fn pusher_counters(listen: &str) -> anyhow::Result<PusherCounters> {
    let mut stream = tokio::net::TcpStream::connect(listen).await?;
    stream
        .write_all(
            format!("GET /metrics HTTP/1.0\r\nHost: {listen}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let mut counters = PusherCounters::default();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let family = name.split('{').next().unwrap_or("");
        match family {
            "cdc_pusher_pushes_total" => counters.pushes += value,
            "cdc_pusher_parked_total" => counters.parked += value,
            "cdc_pusher_database_reads_total" => counters.database_reads += value,
            "cdc_pusher_failures_total" => counters.failures += value,
            _ => {}
        }
    }
    Ok(counters)
}

/// Server counters of the source database.
async fn server_status(conn: &mut mysql_async::Conn) -> anyhow::Result<HashMap<String, u64>> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_select', 'Com_stmt_execute', \
             'Com_stmt_prepare', 'Connections')",
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.parse().ok()?)))
        .collect())
}

fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, key: &str) -> u64 {
    after
        .get(key)
        .copied()
        .unwrap_or(0)
        .saturating_sub(before.get(key).copied().unwrap_or(0))
}

/// A free port on 127.0.0.1 for the pusher's metrics endpoint.
fn free_local_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

// ---- composite-backlog -------------------------------------------------------------------------

/// The source database as the pushers and benchkit reach it.
pub struct Database {
    /// benchkit's own (admin) URL: writes the changes, reads the server counters.
    pub admin_url: String,
    /// The pushers' read-only user.
    pub reader: crate::pusher::SourceDatabase,
    /// The server's pid, for its CPU use.
    pub pid: Option<u32>,
}

/// One round of the composite case (see the module documentation): prints elapsed_s=...
/// composite_pushes_per_s=... db_reads_per_push=... db_queries_per_push=...
#[allow(clippy::too_many_arguments)]
pub async fn backlog(
    mut setup: PusherSetup,
    names: &Names,
    phase: &str,
    partners: u32,
    work: &Workload,
    db: Database,
    timeout_secs: u64,
    broker_pid: Option<u32>,
) -> anyhow::Result<()> {
    let partner_ids = partner_ids(partners);
    let queues: Vec<String> = partner_ids.iter().map(|p| names.queue(p)).collect();
    let mut conn = mysql_conn(&db.admin_url).await?;
    let now: Option<String> = conn
        .query_first("SELECT DATE_FORMAT(UTC_TIMESTAMP(3), '%Y-%m-%dT%H:%i:%s.%f')")
        .await?;
    let now: String = now.context("no UTC_TIMESTAMP")?.chars().take(23).collect();
    let planned = write_round(&mut conn, work, queues.len(), &now).await?;
    let count = planned.messages.len() as u64;

    let listen = format!("127.0.0.1:{}", free_local_port()?);
    setup.database = Some(db.reader);
    setup.metrics_listen = Some(listen.clone());
    let partner = Partner::start(0).await?;
    let configs = setup
        .prepare(names, phase, 1, &partner_ids, &partner)
        .await?;
    let (amqp, channel) = amqp_channel(&setup.amqp).await?;
    let mut publisher = Publisher::new(&amqp, &setup.amqp).await?;
    let published = Instant::now();
    let seq_base = u64::from(work.round) * 10_000_000;
    for (i, change) in planned.messages.iter().enumerate() {
        let (body, properties) = message(change, seq_base + i as u64 + 1, &format!("{now}Z"));
        publisher
            .publish("", &queues[change.partner], &body, properties)
            .await?;
    }
    publisher.flush().await?;
    eprintln!(
        "{phase}: {count} persistent change messages of {} B on average ({} EVSE status \
         changes over {} EVSEs, {} new EVSEs with {} connectors each) into {} quorum queue(s) \
         in {:.1} s",
        publisher.mean_bytes(),
        planned.status_changes,
        planned.distinct_evses,
        planned.new_evses,
        work.connectors,
        queues.len(),
        published.elapsed().as_secs_f64()
    );
    let size = publisher.mean_bytes();
    let _ = publisher.channel.close(200, "published".into()).await;
    await_ready(&channel, &queues, count).await?;

    let status_before = server_status(&mut conn).await?;
    let db_cpu_before = db.pid.and_then(proc_cpu_secs).unwrap_or(0.0);
    let cpu = CpuMeter::start(broker_pid);
    let start_us = unix_micros();
    let started = Instant::now();
    let mut pusher = setup.spawn(&configs[0].0, &configs[0].1)?;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut last_report = Instant::now();
    let (end_us, counters) = loop {
        ticker.tick().await;
        pusher.check()?;
        // The endpoint answers once the pusher has started it.
        if let Ok(c) = pusher_counters(&listen).await {
            if c.pushes + c.parked >= count as f64 {
                break (unix_micros(), c);
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                eprintln!(
                    "{phase}: {:.0} s, {} of {count} acked ({} parked), {} objects read",
                    started.elapsed().as_secs_f64(),
                    c.pushes,
                    c.parked,
                    c.database_reads
                );
            }
        }
        if started.elapsed() > Duration::from_secs(timeout_secs) {
            bail!(
                "{phase}: not every message was acked within {timeout_secs} s (see {})",
                pusher.log.display()
            );
        }
    };
    let status_after = server_status(&mut conn).await?;
    let db_cpu = db.pid.and_then(proc_cpu_secs).unwrap_or(0.0) - db_cpu_before;
    let wall = started.elapsed().as_secs_f64();
    let elapsed = (end_us - start_us) as f64 / 1e6;
    let seen = {
        let seen = partner.shared.seen();
        let c = &seen.composite;
        (
            c.evse_puts,
            c.evse_puts_with_connectors,
            c.connectors,
            c.location_puts,
            c.other_calls,
            c.bad_bodies,
            c.first_at_us,
            c.last_at_us,
            seen.repeats + seen.unparsed,
        )
    };
    let (evse_puts, with_connectors, connectors, location_puts, other, bad, first_us, last_us, odd) =
        seen;
    let calls = evse_puts + location_puts + other + bad;
    let first = (first_us - start_us) as f64 / 1e6;
    let steady = count as f64 / ((end_us - first_us) as f64 / 1e6).max(1e-3);
    let selects = delta(&status_before, &status_after, "com_select");
    let executes = delta(&status_before, &status_after, "com_stmt_execute");
    let prepares = delta(&status_before, &status_after, "com_stmt_prepare");
    let connections = delta(&status_before, &status_after, "connections");
    eprintln!(
        "{phase}: 1 pusher, {count} messages over {partners} partner(s): first call {first:.2} s \
         after start, last call {:.2} s, all acked {elapsed:.2} s ({steady:.0}/s from first call \
         to all acked); {}; database server cpu {db_cpu:.1} s ({:.0}% of a core)",
        (last_us - start_us) as f64 / 1e6,
        cpu.report(wall),
        100.0 * db_cpu / wall.max(1e-3)
    );
    eprintln!(
        "{phase}: partner calls {calls} ({:.3} per message): {evse_puts} EVSE PUTs ({with_connectors} \
         with connectors, {:.2} connectors each), {location_puts} Location PUTs, {other} other \
         calls, {bad} unreadable bodies, {odd} calls outside the locations module",
        calls as f64 / count as f64,
        connectors as f64 / evse_puts.max(1) as f64
    );
    eprintln!(
        "{phase}: objects read {} (pusher metric), server counters: {selects} Com_select, \
         {executes} Com_stmt_execute, {prepares} Com_stmt_prepare, {connections} new \
         connections (start-up checks included); pusher failures {}",
        counters.database_reads, counters.failures
    );
    let (hwm, pusher_cpu, threads) = pusher.usage();
    eprintln!(
        "{phase}: pusher (pid {}): peak rss {hwm:.1} MB, cpu {pusher_cpu:.1} s ({:.0}% of a core \
         over {elapsed:.1} s); by thread (cpu/voluntary context switches): {threads}",
        pusher.pid,
        100.0 * pusher_cpu / elapsed.max(1e-3)
    );
    log_problems(std::slice::from_ref(&pusher));
    pusher.stop().await?;
    let left = ready_total(&channel, &queues).await?;
    if left > 0 {
        eprintln!("{phase}: {left} messages back in the queues after the pusher stopped");
    }
    names.delete(&amqp, &partner_ids).await;
    let _ = amqp.close(200, "bye".into()).await;
    conn.disconnect().await?;
    let per = |n: f64| n / count as f64;
    println!(
        "elapsed_s={elapsed:.3} composite_pushes_per_s={:.1} steady_per_s={steady:.1} \
         first_push_s={first:.3} messages={count} status_changes={} new_evses={} \
         db_reads_per_push={:.3} db_queries_per_push={:.3} stmt_executes_per_push={:.3} \
         calls_per_push={:.3} evse_puts={evse_puts} evse_puts_with_connectors={with_connectors} \
         location_puts={location_puts} other_calls={other} parked={} failures={} \
         peak_rss_mb={hwm:.1} pusher_cpu_s={pusher_cpu:.2} db_cpu_s={db_cpu:.2} \
         message_bytes={size} unacked_left={left}",
        count as f64 / elapsed,
        planned.status_changes,
        planned.new_evses,
        per(counters.database_reads),
        per(selects as f64),
        per(executes as f64),
        per(calls as f64),
        counters.parked,
        counters.failures,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_mapping_gets_its_tree_linked_once() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/ocpi-example/mapping.toml");
        let Ok(text) = std::fs::read_to_string(path) else {
            panic!("no example mapping");
        };
        let linked = if is_linked(&text) {
            text
        } else {
            link_tree(&text)
        };
        assert!(is_linked(&linked));
        let entries: Vec<&str> = linked.split("\n[[table]]\n").collect();
        for table in ["ocpi.locations", "ocpi.evses"] {
            let Some(entry) = entries
                .iter()
                .find(|e| e.starts_with(&format!("table = \"{table}\"")))
            else {
                panic!("no {table}");
            };
            assert_eq!(entry.matches("[[table.children]]").count(), 1, "{table}");
            assert!(!entry.contains("update = \"patch\""), "{table}");
        }
    }

    #[test]
    fn a_status_change_names_its_evse_and_the_changed_columns() {
        let change = Change {
            partner: 0,
            op: Operation::Update,
            table: "evses",
            key_columns: EVSE_KEY,
            before: Some(evse_row(7, "BL00007-1", "AVAILABLE", SEEDED_AT)),
            after: evse_row(7, "BL00007-1", "CHARGING", "2026-02-01T12:00:00.000"),
            pos: 9,
            row: 0,
        };
        let (body, _) = message(&change, 3, "2026-02-01T12:00:00.000Z");
        let Ok(Message::Change(parsed)) = Message::from_slice(&body) else {
            panic!("not a change message");
        };
        assert_eq!(parsed.key["uid"], json!("BL00007-1"));
        assert_eq!(parsed.key["location_id"], json!("BL00007"));
        assert_eq!(parsed.changed, vec!["status", "last_updated"]);
        assert_eq!(literal(&json!("it's")), "'it''s'");
        assert_eq!(next_status("INOPERATIVE"), "AVAILABLE");
        assert_eq!(coprime_stride(20_000), 7919);
    }
}
