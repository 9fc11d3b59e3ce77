//! The pieces of `bench/run sync`: an initial sync of a seeded table to a new partner queue
//! through the running bridge, while a writer commits live changes at a steady rate.
//!
//! - `sync-seed`: creates the benchmark schema, seeds `bench.items` with ids 1..=N (multi-row
//!   INSERTs) and the `bench.probe` rows the writer updates, and checks the table holds exactly
//!   those ids (so every snapshot row can be accounted for by its id);
//! - `sync-run`: consumes a live queue (timing every live change), runs the writer, asks the
//!   bridge for the sync with `bridge sync start`, and times from that request to the moment the
//!   last snapshot row is in the partner's queue, read from the queue's depth (polled every
//!   50 ms) less the live messages the exchange fanned out to it. The partner's queue is not
//!   consumed during the timing, so the broker does the same work per message as in the raw
//!   publish the rate is compared with; afterwards it is read and every snapshot row is
//!   counted by its key.
//!
//! The writer updates `bench.probe`, a captured table that is NOT synced: the synced table does
//! not change during the sync, so the partner's queue must receive exactly one snapshot row per
//! row of `bench.items`, and anything else is a fault the benchmark reports. (A live change of a
//! synced row between a chunk's watermarks would legitimately drop that row from the snapshot;
//! `tests/tests/bridge_sync.rs` covers that case for correctness.)

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use change_message::Message;
use futures_lite::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use mysql_async::prelude::Queryable;
use serde_json::Value;

use crate::pusher::ready;
use crate::{amqp_channel, drive, mysql_conn, proc_cpu_secs, proc_status_mb, unix_micros};

/// `bench.probe` rows the writer cycles through.
const PROBE_ROWS: u32 = 1000;
/// Leading seconds of the writer whose changes do not count for the baseline latency.
const WARMUP_SECS: u64 = 1;
/// How long rows may still come after the bridge logged `sync finished`.
const FINISH_GRACE: Duration = Duration::from_secs(30);

// ---- sync-seed ---------------------------------------------------------------------------------

pub async fn seed(url: &str, rows: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    // Schema (bench.items, bench.probe) and the items, 1,000 rows per INSERT.
    drive(url, rows, 0, 1000).await?;
    let mut conn = mysql_conn(url).await?;
    let values: Vec<String> = (1..=PROBE_ROWS).map(|i| format!("({i}, 0)")).collect();
    conn.query_drop(format!(
        "INSERT IGNORE INTO bench.probe (id, sent_us) VALUES {}",
        values.join(",")
    ))
    .await?;
    let row: Option<(i64, Option<i64>, Option<i64>)> = conn
        .query_first("SELECT COUNT(*), MIN(id), MAX(id) FROM bench.items")
        .await?;
    let (count, min, max) = row.context("no answer to COUNT(*)")?;
    if count != i64::from(rows) || (rows > 0 && (min != Some(1) || max != Some(i64::from(rows)))) {
        bail!(
            "bench.items holds {count} rows (ids {min:?}..{max:?}), expected exactly ids 1..={rows}: \
             start from an empty database"
        );
    }
    conn.disconnect().await?;
    println!("rows={rows} seed_s={:.2}", started.elapsed().as_secs_f64());
    Ok(())
}

// ---- sync-run ----------------------------------------------------------------------------------

pub struct SyncRun {
    pub mysql: String,
    pub amqp: String,
    /// The bridge binary (`bridge sync start` is run with it).
    pub bridge: PathBuf,
    pub config: PathBuf,
    pub bridge_pid: u32,
    pub bridge_log: PathBuf,
    /// The new partner's queue (declared and bound to the bridge's exchange beforehand).
    pub queue: String,
    /// A queue bound to the bridge's exchange before the sync, for the live latency.
    pub live_queue: String,
    /// `database.table` to sync; its rows must have the ids 1..=rows (`sync-seed`).
    pub table: String,
    pub rows: u32,
    /// Live changes committed per second.
    pub live_rate: u32,
    /// Seconds the writer runs before the request (baseline latency, first second discarded).
    pub baseline_secs: u64,
    /// Seconds without a new snapshot row after which the sync counts as stalled.
    pub stall_secs: u64,
    pub timeout_secs: u64,
}

/// What the consumer of the partner's queue has seen.
#[derive(Default)]
struct Snapshot {
    /// Arrivals per id (index = id; 0 unused).
    seen: Vec<u8>,
    distinct: u64,
    duplicates: u64,
    /// Snapshot rows of another table, an id outside 1..=rows, or without a numeric `id` key.
    unexpected: u64,
    /// Snapshot rows per sync id.
    sync_ids: BTreeMap<String, u64>,
    bytes: u64,
    messages: u64,
    /// Live changes that reached the partner's queue too (fanout).
    live: u64,
    /// Bodies that are not change messages of this contract.
    unreadable: u64,
}

impl Snapshot {
    fn missing_ids(&self, limit: usize) -> (u64, Vec<usize>) {
        let missing: Vec<usize> = (1..self.seen.len())
            .filter(|&i| self.seen[i] == 0)
            .collect();
        (
            missing.len() as u64,
            missing.into_iter().take(limit).collect(),
        )
    }
}

/// What the consumer of the live queue has seen: (sent_us, received_us) per probe change.
#[derive(Default)]
struct Live {
    samples: Vec<(i64, i64)>,
    snapshot_rows: u64,
}

/// The writer's record: (sent_us, commit duration in us) per committed update.
#[derive(Default)]
struct Written {
    commits: Vec<(i64, i64)>,
    late: u64,
}

fn percentile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

async fn consume(
    channel: &lapin::Channel,
    queue: &str,
    tag: &str,
) -> anyhow::Result<lapin::Consumer> {
    channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consuming queue {queue}"))
}

/// Counts every snapshot row of `table` by its `id` (after the timing, to check the queue's
/// contents).
fn count_snapshot_rows(
    mut consumer: lapin::Consumer,
    state: Arc<Mutex<Snapshot>>,
    distinct: Arc<AtomicU64>,
    database: String,
    table: String,
    rows: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(delivery) = consumer.next().await {
            let Ok(delivery) = delivery else { break };
            let mut s = state.lock().expect("snapshot lock");
            s.messages += 1;
            let change = match Message::from_slice(&delivery.data) {
                Ok(Message::Change(change)) => change,
                Ok(Message::Heartbeat(_)) => continue,
                Err(_) => {
                    s.unreadable += 1;
                    continue;
                }
            };
            let Some(mark) = &change.snapshot else {
                s.live += 1;
                continue;
            };
            *s.sync_ids.entry(mark.sync_id.clone()).or_default() += 1;
            s.bytes += delivery.data.len() as u64;
            let id = change
                .key
                .get("id")
                .and_then(Value::as_u64)
                .filter(|id| (1..=u64::from(rows)).contains(id));
            let (Some(id), true) = (
                id,
                change.database == database && change.table == table && change.key.len() == 1,
            ) else {
                s.unexpected += 1;
                continue;
            };
            let slot = &mut s.seen[id as usize];
            *slot = slot.saturating_add(1);
            if *slot == 1 {
                s.distinct += 1;
                distinct.store(s.distinct, Ordering::SeqCst);
            } else {
                s.duplicates += 1;
            }
        }
    })
}

/// Times every live change of `bench.probe` (its `sent_us` is the writer's clock before the
/// commit).
///
/// `fanout` counts every message of the live queue that is not a snapshot row: the exchange
/// fans each of them out to the partner's queue too.
fn time_live_changes(
    mut consumer: lapin::Consumer,
    state: Arc<Mutex<Live>>,
    newest: Arc<AtomicI64>,
    fanout: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(delivery) = consumer.next().await {
            let received_us = unix_micros();
            let Ok(delivery) = delivery else { break };
            let Ok(Message::Change(change)) = Message::from_slice(&delivery.data) else {
                fanout.fetch_add(1, Ordering::SeqCst);
                continue;
            };
            if change.snapshot.is_some() {
                state.lock().expect("live lock").snapshot_rows += 1;
                continue;
            }
            fanout.fetch_add(1, Ordering::SeqCst);
            if change.table != "probe" {
                continue;
            }
            let Some(sent_us) = change
                .after
                .as_ref()
                .and_then(|a| a.get("sent_us"))
                .and_then(Value::as_i64)
                .filter(|&us| us > 0)
            else {
                continue;
            };
            newest.fetch_max(sent_us, Ordering::SeqCst);
            state
                .lock()
                .expect("live lock")
                .samples
                .push((sent_us, received_us));
        }
    })
}

/// Commits one autocommit UPDATE of `bench.probe` per period until `stop`, each carrying the
/// client clock just before the call.
fn write_live(
    mut conn: mysql_async::Conn,
    rate: u32,
    stop: Arc<AtomicBool>,
    written: Arc<Mutex<Written>>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let started = tokio::time::Instant::now();
        let mut i: u64 = 0;
        while !stop.load(Ordering::SeqCst) {
            let due = started + period.mul_f64(i as f64);
            let now = tokio::time::Instant::now();
            if due > now {
                tokio::time::sleep_until(due).await;
            } else if now - due > Duration::from_millis(10) {
                written.lock().expect("writer lock").late += 1;
            }
            let id = (i % u64::from(PROBE_ROWS)) as u32 + 1;
            let sent_us = unix_micros();
            conn.exec_drop(
                "UPDATE bench.probe SET sent_us = ? WHERE id = ?",
                (sent_us, id),
            )
            .await
            .context("the live writer's UPDATE failed")?;
            written
                .lock()
                .expect("writer lock")
                .commits
                .push((sent_us, unix_micros() - sent_us));
            i += 1;
        }
        conn.disconnect().await?;
        Ok(())
    })
}

/// New lines of the bridge's log since the last call.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    fn new(path: &Path) -> LogTail {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        LogTail {
            path: path.to_path_buf(),
            offset,
            partial: String::new(),
        }
    }

    fn lines(&mut self) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let complete: String = self.partial.drain(..=end).collect();
        complete.lines().map(str::to_string).collect()
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `bridge sync start`; returns the request id it printed.
async fn request_sync(run: &SyncRun) -> anyhow::Result<String> {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&run.bridge)
            .args([
                "sync", "start", "--queue", &run.queue, "--tables", &run.table,
            ])
            .arg("--config")
            .arg(&run.config)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("`bridge sync start` did not return within 60 s")?
    .context("running `bridge sync start`")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!("`bridge sync start` failed ({}):\n{text}", output.status);
    }
    let id = text
        .lines()
        .find_map(|l| l.split("sync request ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string);
    id.with_context(|| format!("`bridge sync start` printed no request id:\n{text}"))
}

pub async fn run(run: SyncRun) -> anyhow::Result<()> {
    let (database, table) = run
        .table
        .split_once('.')
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .context("--table must be database.table")?;
    if run.rows == 0 {
        bail!("--rows must be at least 1");
    }

    // The partner's queue is not consumed while the sync is timed: like the raw publish it is
    // compared with, the broker only stores what the bridge publishes. Snapshot rows in it are
    // its depth less what the exchange fanned out to it as well, which the live queue (consumed,
    // for the live latency) counts. Its contents are checked once the timing is over.
    let (amqp_conn, channel) = amqp_channel(&run.amqp).await?;
    let partner_before = ready(&channel, &run.queue).await?;
    let live_before = ready(&channel, &run.live_queue).await?;
    let fanout = Arc::new(AtomicU64::new(0));
    let live_channel = amqp_conn.create_channel().await?;
    let live = Arc::new(Mutex::new(Live::default()));
    let newest_live = Arc::new(AtomicI64::new(0));
    let live_task = time_live_changes(
        consume(&live_channel, &run.live_queue, "benchkit-sync-live").await?,
        live.clone(),
        newest_live.clone(),
        fanout.clone(),
    );
    let snapshot_rows_in_queue = |depth: u64| -> u64 {
        let fanned_out = fanout.load(Ordering::SeqCst).saturating_sub(live_before);
        depth
            .saturating_sub(partner_before)
            .saturating_sub(fanned_out)
    };

    // The writer, then a baseline of live latency without a sync.
    let stop_writer = Arc::new(AtomicBool::new(false));
    let written = Arc::new(Mutex::new(Written::default()));
    let writer_started_us = unix_micros();
    let writer = write_live(
        mysql_conn(&run.mysql).await?,
        run.live_rate,
        stop_writer.clone(),
        written.clone(),
    );
    tokio::time::sleep(Duration::from_secs(run.baseline_secs)).await;
    if writer.is_finished() {
        writer.await??;
        bail!("the live writer stopped before the sync");
    }

    // The request, and the wait for every snapshot row.
    let mut log = LogTail::new(&run.bridge_log);
    let cpu_before = proc_cpu_secs(run.bridge_pid).unwrap_or(0.0);
    let request_us = unix_micros();
    let started = Instant::now();
    let sync_id = request_sync(&run).await?;
    let requested_s = started.elapsed().as_secs_f64();
    eprintln!(
        "sync-run: sync {sync_id} requested ({requested_s:.2} s for `bridge sync start`), {} rows of {} to queue {}",
        run.rows, run.table, run.queue
    );
    let expected = u64::from(run.rows);
    let mut finished_logged: Option<Instant> = None;
    let mut warnings = 0;
    let mut last_progress = (0u64, Instant::now());
    let mut last_report = (0u64, Instant::now());
    let mut first_us = 0;
    let mut complete_us = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    let failure = loop {
        ticker.tick().await;
        let depth = match ready(&channel, &run.queue).await {
            Ok(depth) => depth,
            Err(e) => {
                break Some(format!(
                    "cannot read the depth of queue {}: {e:#}",
                    run.queue
                ))
            }
        };
        let done = snapshot_rows_in_queue(depth);
        if done > 0 && first_us == 0 {
            first_us = unix_micros();
        }
        if done >= expected {
            complete_us = unix_micros();
            break None;
        }
        if proc_status_mb(run.bridge_pid, "VmRSS:").is_none() {
            break Some(format!(
                "the bridge (pid {}) exited during the sync with {done} of {expected} snapshot rows in the queue",
                run.bridge_pid
            ));
        }
        if writer.is_finished() {
            break Some("the live writer stopped during the sync".to_string());
        }
        let mut bad = None;
        for line in log.lines() {
            if line.contains(" WARN ") && warnings < 10 {
                warnings += 1;
                eprintln!("sync-run: the bridge warned: {}", line.trim());
            }
            if line.contains("sync finished") && finished_logged.is_none() {
                eprintln!("sync-run: the bridge logged: {}", line.trim());
                finished_logged = Some(Instant::now());
            }
            if line.contains(" ERROR ") || line.contains("\"level\":\"ERROR\"") {
                bad.get_or_insert(line);
            }
        }
        if let Some(line) = bad {
            break Some(format!(
                "the bridge logged an error during the sync: {}",
                line.trim()
            ));
        }
        if finished_logged.is_some_and(|at| at.elapsed() > FINISH_GRACE) {
            break Some(format!(
                "the bridge logged `sync finished` {} s ago, but only {done} of {expected} \
                 snapshot rows reached queue {}",
                FINISH_GRACE.as_secs(),
                run.queue
            ));
        }
        if done != last_progress.0 {
            last_progress = (done, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(run.stall_secs) {
            break Some(format!(
                "no new snapshot row for {} s: {done} of {expected} in queue {} (the sync stalled)",
                run.stall_secs, run.queue
            ));
        }
        if started.elapsed() > Duration::from_secs(run.timeout_secs) {
            break Some(format!(
                "the sync did not complete within {} s: {done} of {expected} snapshot rows",
                run.timeout_secs
            ));
        }
        if last_report.1.elapsed() >= Duration::from_secs(5) {
            let rate = (done - last_report.0) as f64 / last_report.1.elapsed().as_secs_f64();
            eprintln!(
                "sync-run: {:.1} s, {done}/{expected} snapshot rows ({rate:.0}/s over the last 5 s), bridge cpu {:.1} s, rss {:.1} MB",
                started.elapsed().as_secs_f64(),
                proc_cpu_secs(run.bridge_pid).unwrap_or(0.0) - cpu_before,
                proc_status_mb(run.bridge_pid, "VmRSS:").unwrap_or(0.0)
            );
            last_report = (done, Instant::now());
        }
    };
    let cpu_sync = proc_cpu_secs(run.bridge_pid).unwrap_or(0.0) - cpu_before;
    let hwm = proc_status_mb(run.bridge_pid, "VmHWM:").unwrap_or(0.0);

    // The timing is over: read the partner's queue and check every row.
    let snapshot = Arc::new(Mutex::new(Snapshot {
        seen: vec![0; run.rows as usize + 1],
        ..Snapshot::default()
    }));
    let distinct = Arc::new(AtomicU64::new(0));
    let partner_task = count_snapshot_rows(
        consume(&channel, &run.queue, "benchkit-sync-partner").await?,
        snapshot.clone(),
        distinct.clone(),
        database,
        table,
        run.rows,
    );
    if failure.is_none() {
        let deadline = Instant::now() + Duration::from_secs(120);
        while distinct.load(Ordering::SeqCst) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Stop the writer; wait for its last change (10 s at most) and for late duplicates (1 s).
    stop_writer.store(true, Ordering::SeqCst);
    let writer_result = writer.await;
    let last_sent = written
        .lock()
        .expect("writer lock")
        .commits
        .last()
        .map_or(0, |c| c.0);
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while newest_live.load(Ordering::SeqCst) < last_sent && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    partner_task.abort();
    live_task.abort();
    let _ = amqp_conn.close(200, "bye".into()).await;

    let s = std::mem::take(&mut *snapshot.lock().expect("snapshot lock"));
    let l = std::mem::take(&mut *live.lock().expect("live lock"));
    let w = std::mem::take(&mut *written.lock().expect("writer lock"));
    let (missing, first_missing) = s.missing_ids(10);
    let foreign: u64 = s
        .sync_ids
        .iter()
        .filter(|(id, _)| **id != sync_id)
        .map(|(_, n)| *n)
        .sum();
    eprintln!(
        "sync-run: partner queue: {} messages, {} snapshot rows ({} distinct ids of {expected}, {} duplicates, {} unexpected, {foreign} of another sync), {} live changes, {} unreadable; live queue: {} live changes, {} snapshot rows",
        s.messages,
        s.sync_ids.values().sum::<u64>(),
        s.distinct,
        s.duplicates,
        s.unexpected,
        s.live,
        s.unreadable,
        l.samples.len(),
        l.snapshot_rows
    );
    if let Some(why) = failure {
        bail!(
            "{why}; {missing} ids never arrived (first: {first_missing:?}); last lines of the bridge log:\n{}",
            log_tail(&run.bridge_log, 15)
        );
    }
    writer_result??;

    // Live latency: changes in flight at some point of the sync (committed before the last
    // snapshot row arrived, arrived after the request), and a baseline before the request.
    let end_us = complete_us;
    let during: Vec<i64> = {
        let mut v: Vec<i64> = l
            .samples
            .iter()
            .filter(|(sent, recv)| *sent <= end_us && *recv >= request_us)
            .map(|(sent, recv)| recv - sent)
            .collect();
        v.sort_unstable();
        v
    };
    let baseline: Vec<i64> = {
        let from = writer_started_us + WARMUP_SECS as i64 * 1_000_000;
        let mut v: Vec<i64> = l
            .samples
            .iter()
            .filter(|(sent, recv)| *sent >= from && *recv < request_us)
            .map(|(sent, recv)| recv - sent)
            .collect();
        v.sort_unstable();
        v
    };
    let received: HashSet<i64> = l.samples.iter().map(|(sent, _)| *sent).collect();
    let committed_during: Vec<&(i64, i64)> = w
        .commits
        .iter()
        .filter(|(sent, _)| *sent >= request_us && *sent <= end_us)
        .collect();
    let live_missing = committed_during
        .iter()
        .filter(|(sent, _)| !received.contains(sent))
        .count();
    let mut commit_us: Vec<i64> = committed_during.iter().map(|(_, d)| *d).collect();
    commit_us.sort_unstable();
    if during.is_empty() {
        bail!(
            "no live change arrived on queue {} during the sync: is the bridge capturing bench.probe?",
            run.live_queue
        );
    }
    // Seconds of the sync whose live p99 exceeds 200 ms: tells a steady delay from stalls.
    let mut by_second: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (sent, recv) in &l.samples {
        if *sent <= end_us && *recv >= request_us {
            by_second
                .entry((sent - request_us).max(0) / 1_000_000)
                .or_default()
                .push(recv - sent);
        }
    }
    let mut slow_seconds = 0;
    for (second, mut latencies) in by_second {
        latencies.sort_unstable();
        if percentile(&latencies, 0.99) <= 200.0 {
            continue;
        }
        slow_seconds += 1;
        // The first ones and then every tenth: enough to tell a steady delay, a backlog that
        // drains (falling) and a few stalls apart.
        if slow_seconds <= 5 || slow_seconds % 10 == 0 {
            eprintln!(
                "sync-run: live changes committed in second {second} of the sync: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                percentile(&latencies, 1.0),
                latencies.len()
            );
        }
    }
    if slow_seconds > 0 {
        eprintln!(
            "sync-run: live p99 above 200 ms in {slow_seconds} of the sync's seconds (first five and every tenth shown)"
        );
    }

    let elapsed = (complete_us - request_us) as f64 / 1e6;
    let first_row = (first_us - request_us) as f64 / 1e6;
    let steady = if complete_us > first_us {
        (expected - 1) as f64 / ((complete_us - first_us) as f64 / 1e6)
    } else {
        0.0
    };
    let snapshot_rows: u64 = s.sync_ids.values().sum();
    let exact = s.distinct == expected && s.duplicates == 0 && s.unexpected == 0 && foreign == 0;
    println!(
        "rows={expected} snapshot_rows={snapshot_rows} distinct={} duplicates={} unexpected={} \
         foreign={foreign} exact={} live_queue_snapshot_rows={} sync_id={sync_id} \
         elapsed_s={elapsed:.3} rows_per_s={:.1} request_s={requested_s:.3} first_row_s={first_row:.3} \
         steady_per_s={steady:.1} message_bytes={} partner_live={} \
         live_p50_ms={:.3} live_p90_ms={:.3} live_p99_ms={:.3} live_max_ms={:.3} live_samples={} \
         live_missing={live_missing} live_late={} commit_p99_ms={:.3} \
         base_p50_ms={:.3} base_p99_ms={:.3} base_samples={} bridge_cpu_s={cpu_sync:.2} hwm_mb={hwm:.1}",
        s.distinct,
        s.duplicates,
        s.unexpected,
        u8::from(exact),
        l.snapshot_rows,
        expected as f64 / elapsed,
        s.bytes / snapshot_rows.max(1),
        s.live,
        percentile(&during, 0.5),
        percentile(&during, 0.9),
        percentile(&during, 0.99),
        percentile(&during, 1.0),
        during.len(),
        w.late,
        percentile(&commit_us, 0.99),
        percentile(&baseline, 0.5),
        percentile(&baseline, 0.99),
        baseline.len(),
    );
    Ok(())
}
