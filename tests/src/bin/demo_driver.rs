//! Drives the demo (`./demo`): the demo data in the example OCPI schema, the workload that keeps
//! changing records while showing what reaches each partner, the demo partners' switches, and
//! the final consistency check of every partner against the database.
//!
//! ```text
//! demo_driver reset-broker --exchange E --presence-exchange P --queue Q...   leftovers of a run
//! demo_driver setup --mysql-url URL --schema schema.sql                       schema and data
//! demo_driver partner URL offline|online                                      a partner's switch
//! demo_driver run --mysql-url URL --pusher-config F --partner ID=URL... ...   workload + display
//! demo_driver check --mysql-url URL --pusher-config F --partner ID=URL...     drain, compare
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use system_tests::consistency::{compare, Comparison, DatabaseRows};
use system_tests::workload::{
    self, generated_rows_sql, CONNECTORS_PER_EVSE, DB, EVSES_PER_LOCATION, LOCATIONS, TARIFFS,
    TOKENS,
};
use system_tests::PartnerState;

#[derive(Parser)]
#[command(name = "demo_driver", about = "Drives ./demo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deletes the demo's queues and exchanges left by an earlier run.
    ResetBroker {
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp_url: String,
        /// The bridge's exchange (its sync-requests queue goes too).
        #[arg(long)]
        exchange: String,
        #[arg(long)]
        presence_exchange: String,
        /// Queues to delete.
        #[arg(long = "queue")]
        queues: Vec<String>,
    },
    /// Creates database `ocpi` from the example schema (outside the binlog) and fills it
    /// (through the binlog, so partners configured from the start receive every record).
    Setup {
        #[arg(long)]
        mysql_url: String,
        /// config/ocpi-example/schema.sql
        #[arg(long)]
        schema: PathBuf,
    },
    /// Switches a demo partner offline or online.
    Partner {
        /// The partner's base URL, e.g. http://127.0.0.1:18091.
        url: String,
        #[arg(value_parser = ["offline", "online"])]
        switch: String,
    },
    /// Runs the workload for `--duration` seconds (or until SIGTERM/SIGINT) and shows, every
    /// 2 s, what each partner got.
    Run {
        #[command(flatten)]
        common: Common,
        /// Seconds of workload.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Changes per second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
    },
    /// Waits for the partners to drain, then compares each with the database; exits 1 unless
    /// every partner equals it.
    Check {
        #[command(flatten)]
        common: Common,
        /// How long to wait for the partners to catch up.
        #[arg(long, default_value_t = 180)]
        drain_timeout: u64,
    },
}

#[derive(clap::Args)]
struct Common {
    #[arg(long)]
    mysql_url: String,
    /// A pusher configuration naming the partners (queues, presence exchange).
    #[arg(long)]
    pusher_config: PathBuf,
    /// The bridge binary and configuration, for `bridge sync status`.
    #[arg(long)]
    bridge_bin: PathBuf,
    #[arg(long)]
    bridge_config: PathBuf,
    /// A partner to show or check: its id in the pusher configuration and its demo partner's
    /// base URL (`alpha=http://127.0.0.1:18091`).
    #[arg(long = "partner", value_parser = parse_partner, required = true)]
    partners: Vec<(String, String)>,
}

fn parse_partner(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(id, url)| (id.to_string(), url.trim_end_matches('/').to_string()))
        .ok_or_else(|| format!("{text:?}: give ID=URL, e.g. alpha=http://127.0.0.1:18091"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::ResetBroker {
            amqp_url,
            exchange,
            presence_exchange,
            queues,
        } => reset_broker(&amqp_url, &exchange, &presence_exchange, &queues).await,
        Command::Setup { mysql_url, schema } => setup(&mysql_url, &schema).await,
        Command::Partner { url, switch } => {
            let url = format!("{}/demo/{switch}", url.trim_end_matches('/'));
            let response = reqwest::Client::new()
                .post(&url)
                .send()
                .await
                .with_context(|| format!("POST {url}: is the demo partner running?"))?;
            if !response.status().is_success() {
                bail!("POST {url} answered {}", response.status());
            }
            Ok(())
        }
        Command::Run {
            common,
            duration,
            rate,
        } => run(&common, Duration::from_secs(duration), rate).await,
        Command::Check {
            common,
            drain_timeout,
        } => {
            if check(&common, Duration::from_secs(drain_timeout)).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Broker leftovers
// ------------------------------------------------------------------------------------------------

async fn reset_broker(
    url: &str,
    exchange: &str,
    presence_exchange: &str,
    queues: &[String],
) -> Result<()> {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("cannot connect to RabbitMQ at {url}: is it running?"))?;
    let channel = conn.create_channel().await?;
    let requests = change_message::sync_request::requests_queue(exchange);
    for queue in queues.iter().chain(std::iter::once(&requests)) {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .with_context(|| format!("cannot delete queue {queue}"))?;
    }
    for name in [exchange, presence_exchange] {
        channel
            .exchange_delete(name.into(), ExchangeDeleteOptions::default())
            .await
            .with_context(|| format!("cannot delete exchange {name}"))?;
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Schema and data
// ------------------------------------------------------------------------------------------------

async fn setup(mysql_url: &str, schema_path: &Path) -> Result<()> {
    let schema = std::fs::read_to_string(schema_path)
        .with_context(|| format!("cannot read the example schema {}", schema_path.display()))?;
    let Some((ddl, seed)) = schema.split_once("-- Seed data") else {
        bail!(
            "{} has no `-- Seed data` line separating the tables from their rows",
            schema_path.display()
        );
    };
    let mut conn = mysql_async::Conn::from_url(mysql_url)
        .await
        .with_context(|| format!("cannot connect to the demo MariaDB at {mysql_url}"))?;
    // The tables outside the binlog (the bridge captures rows, not DDL); the rows through it.
    conn.query_drop(format!(
        "SET sql_log_bin = 0; DROP DATABASE IF EXISTS {DB};\n{ddl}\nSET sql_log_bin = 1;"
    ))
    .await
    .context("creating the example schema")?;
    conn.query_drop(format!(
        "SET time_zone = '+00:00'; USE {DB}; -- {seed}\n{}",
        generated_rows_sql()
    ))
    .await
    .context("loading the demo data")?;
    let rows = DatabaseRows::load(&mut conn, DB).await?;
    println!(
        "demo database {DB}: {} records ({LOCATIONS} generated locations with {} EVSEs and {} \
         connectors, {TARIFFS} tariffs, {TOKENS} tokens, and the example rows)",
        rows.record_count(),
        LOCATIONS * EVSES_PER_LOCATION,
        LOCATIONS * EVSES_PER_LOCATION * CONNECTORS_PER_EVSE
    );
    let _ = conn.disconnect().await;
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// ------------------------------------------------------------------------------------------------
// What the partners got: the live display
// ------------------------------------------------------------------------------------------------

/// One partner's numbers at one moment; `None` where a source did not answer.
struct PartnerView {
    id: String,
    /// In the pusher configuration (declared) yet?
    configured: bool,
    state: Option<PartnerState>,
    ready: Option<u32>,
    unacked: Option<u64>,
    parked: Option<u32>,
    pusher_state: String,
    active_pusher: Option<String>,
    /// "running 640/1362 rows" for a partner whose queue has a sync recorded by the bridge.
    sync: Option<String>,
}

impl PartnerView {
    fn backlog(&self) -> Option<u64> {
        Some(u64::from(self.ready?) + self.unacked.unwrap_or(0))
    }
}

/// Everything the display and the drain wait need, from the partners, the broker (through the
/// pushers' own status code) and the bridge's checkpoint.
async fn observe(common: &Common, http: &reqwest::Client) -> Vec<PartnerView> {
    let rows = async {
        let config = pusher::config::Config::load(&common.pusher_config).ok()?;
        let rows = pusher::status::partners(&config).await.ok()?;
        Some((config, rows))
    };
    let states = async {
        let mut states = Vec::new();
        for (_, url) in &common.partners {
            states.push(partner_state(http, url, false).await);
        }
        states
    };
    let (listing, states, syncs) = tokio::join!(rows, states, sync_status(common));
    let mut views = Vec::new();
    for ((id, _), state) in common.partners.iter().zip(states) {
        let row = listing
            .as_ref()
            .and_then(|(_, rows)| rows.iter().find(|r| &r.partner == id));
        let configured = listing
            .as_ref()
            .is_some_and(|(config, _)| config.partners.iter().any(|p| &p.id == id));
        let queue = listing.as_ref().and_then(|(config, _)| {
            config
                .partners
                .iter()
                .find(|p| &p.id == id)
                .map(|p| p.queue.clone())
        });
        let sync = queue.and_then(|q| syncs.as_ref().and_then(|s| sync_line(s, &q)));
        views.push(PartnerView {
            id: id.clone(),
            configured,
            state: state.ok(),
            ready: row.and_then(|r| r.ready),
            unacked: row.and_then(|r| r.unacked),
            parked: row.and_then(|r| r.parked),
            pusher_state: row
                .map(|r| match &r.reason {
                    Some(reason) => format!("{} ({})", r.state, short(reason)),
                    None => r.state.clone(),
                })
                .unwrap_or_else(|| "?".into()),
            active_pusher: row.and_then(|r| r.active_pusher.clone()),
            sync,
        });
    }
    views
}

async fn partner_state(http: &reqwest::Client, url: &str, objects: bool) -> Result<PartnerState> {
    let url = format!("{url}/demo/state?objects={objects}");
    let state = http
        .get(&url)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .with_context(|| format!("GET {url}: is the demo partner running?"))?
        .error_for_status()?
        .json::<PartnerState>()
        .await
        .with_context(|| format!("GET {url}: not a partner state"))?;
    Ok(state)
}

/// `bridge sync status --json`: the syncs the bridge's checkpoint records.
async fn sync_status(common: &Common) -> Option<Value> {
    let out = tokio::process::Command::new(&common.bridge_bin)
        .args(["sync", "status", "--json", "--config"])
        .arg(&common.bridge_config)
        .output()
        .await
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// The newest sync of `queue` the status lists, as "running 640/1362 rows" or "finished, 1362
/// rows".
fn sync_line(status: &Value, queue: &str) -> Option<String> {
    let jobs = status["active"]
        .as_object()
        .map(|_| &status["active"])
        .into_iter()
        .chain(status["waiting"].as_array().into_iter().flatten())
        .chain(status["ended"].as_array().into_iter().flatten().rev());
    let job = jobs.into_iter().find(|j| j["queue"] == queue)?;
    let sum = |field: &str| -> Option<u64> {
        job["tables"]
            .as_array()?
            .iter()
            .map(|t| t[field].as_u64())
            .sum()
    };
    let done = sum("rows_done").unwrap_or(0);
    let state = job["state"].as_str().unwrap_or("?");
    Some(match (state, sum("rows_total")) {
        ("running", Some(total)) => format!("sync running {done}/{total} rows"),
        ("running", None) => format!("sync running {done} rows read"),
        ("waiting", _) => "sync waiting".to_string(),
        (other, _) => format!(
            "sync {other}, {done} rows read{}",
            job["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    })
}

/// The start of a pusher's reason for a partner's state (they run long: the whole error).
fn short(reason: &str) -> String {
    // "... failed (transient): HTTP 503 Service Unavailable, body is ...": the HTTP answer.
    if let Some(at) = reason.find("HTTP ") {
        let answer = &reason[at..];
        if answer
            .as_bytes()
            .get(5..8)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        {
            let end = answer.find([',', ';', ':']).unwrap_or(answer.len());
            return format!("partner answers {}", &answer[..end]);
        }
    }
    let end = [", body", "; ", ": <"]
        .iter()
        .filter_map(|cut| reason.find(cut))
        .min()
        .unwrap_or(reason.len());
    let mut text: String = reason[..end].chars().take(60).collect();
    if text.len() < reason.len() {
        text.push_str("...");
    }
    text
}

fn partner_line(view: &PartnerView) -> String {
    if !view.configured {
        return format!("  {:<6} not added yet", view.id);
    }
    let opt = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |n| n.to_string());
    let delivered = opt(view.state.as_ref().map(|s| s.accepted));
    let mut line = format!(
        "  {:<6} delivered {delivered:>6} | backlog {:>5} | parked {:>3} | {}",
        view.id,
        opt(view.backlog()),
        opt(view.parked.map(u64::from)),
        view.pusher_state
    );
    if let Some(pusher) = &view.active_pusher {
        line.push_str(&format!(" by {pusher}"));
    }
    if view.state.as_ref().is_some_and(|s| s.offline) {
        line.push_str(" | partner OFFLINE");
    }
    if let Some(sync) = &view.sync {
        line.push_str(&format!(" | {sync}"));
    }
    line
}

/// Waits until the partners configured from the start hold the demo data: nothing left in
/// their queues and nothing accepted between two observations.
async fn wait_initial_load(common: &Common, http: &reqwest::Client) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last: Option<Vec<Option<u64>>> = None;
    loop {
        let views = observe(common, http).await;
        let configured: Vec<&PartnerView> = views.iter().filter(|v| v.configured).collect();
        let accepted: Vec<Option<u64>> = configured
            .iter()
            .map(|v| v.state.as_ref().map(|s| s.accepted))
            .collect();
        let empty = configured
            .iter()
            .all(|v| v.backlog() == Some(0) && v.state.as_ref().is_some_and(|s| s.accepted > 0));
        if empty && last.as_ref() == Some(&accepted) {
            for view in configured {
                println!(
                    "{} holds the demo data ({} requests accepted)",
                    view.id,
                    view.state.as_ref().map_or(0, |s| s.accepted)
                );
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the partners did not receive the demo data within 300 s: see the pushers' logs");
        }
        last = Some(accepted);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run(common: &Common, duration: Duration, rate: u32) -> Result<()> {
    let http = reqwest::Client::new();
    // The demo data first (open defect 1 in `workload`'s documentation).
    wait_initial_load(common, &http).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(workload::Counters::default());
    let mut writer = tokio::spawn(workload::run(
        common.mysql_url.clone(),
        rate,
        2026,
        workload::OnError::Fail,
        stop.clone(),
        counters.clone(),
    ));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    println!(
        "workload: about {rate} changes/s for {} s (Ctrl-C stops it early); every 2 s, per \
         partner: requests delivered, backlog (ready + unacked), parked, who pushes",
        duration.as_secs()
    );
    let started = Instant::now();
    let mut last_written = 0;
    let mut last_at = started;
    let end = started + duration;
    let interrupted = loop {
        let tick = Instant::now() + Duration::from_secs(2);
        let views = observe(common, &http).await;
        let total = counters.written.load(Ordering::Relaxed);
        let per_s = (total - last_written) as f64 / last_at.elapsed().as_secs_f64().max(0.1);
        (last_written, last_at) = (total, Instant::now());
        let mut block = format!(
            "[{:>4} s] changes written {total:>7} ({per_s:>4.0}/s)\n",
            started.elapsed().as_secs()
        );
        for view in &views {
            block.push_str(&partner_line(view));
            block.push('\n');
        }
        print!("{block}");
        let until = tick.min(end).max(Instant::now());
        tokio::select! {
            _ = tokio::time::sleep_until(until.into()) => {}
            _ = term.recv() => break true,
            _ = tokio::signal::ctrl_c() => break true,
            result = &mut writer => {
                return Err(match result {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => anyhow::anyhow!("the workload stopped by itself"),
                    Err(e) => anyhow::anyhow!("the workload failed: {e}"),
                });
            }
        }
        if Instant::now() >= end {
            break false;
        }
    };
    stop.store(true, Ordering::Relaxed);
    writer.await.context("the workload")??;
    println!(
        "workload {} after {} s: {} changes written",
        if interrupted { "interrupted" } else { "done" },
        started.elapsed().as_secs(),
        counters.written.load(Ordering::Relaxed)
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The consistency check
// ------------------------------------------------------------------------------------------------

/// What is parked for `partner`, grouped by reason without the record ("EVSE PATCH: the
/// partner rejected it: ... 2003 ..." -> count), read as `pusher parked list` reads it (every
/// message goes back to its place); at most 10,000 are looked at.
async fn parked_summary(
    config: &pusher::config::Config,
    partner: &str,
) -> Result<BTreeMap<String, usize>> {
    let listing = pusher::parked::list(config, partner, 10_000)
        .await
        .with_context(|| format!("cannot list what is parked for {partner}"))?;
    let mut summary = BTreeMap::new();
    for message in &listing.messages {
        *summary.entry(park_group(&message.reason)).or_default() += 1;
    }
    Ok(summary)
}

/// "PATCH locations/NL/EXA/L1/E1 (EVSE locations/...): the partner rejected it: ..." ->
/// "EVSE PATCH: the partner rejected it: ...".
fn park_group(reason: &str) -> String {
    let method = reason.split_whitespace().next().unwrap_or("");
    match (reason.find(" ("), reason.find("): ")) {
        (Some(open), Some(close)) if open < close => {
            let kind = reason[open + 2..close]
                .split_whitespace()
                .next()
                .unwrap_or("");
            format!("{kind} {method}: {}", &reason[close + 3..])
        }
        _ => reason.to_string(),
    }
}

/// Nothing ready or unacked and no request accepted for this long: drained.
const SETTLED: Duration = Duration::from_secs(3);
/// Drained but not equal: wait this long for stragglers before comparing anyway.
const UNEQUAL_GRACE: Duration = Duration::from_secs(10);

async fn check(common: &Common, drain_timeout: Duration) -> Result<bool> {
    let http = reqwest::Client::new();
    let mut conn = mysql_async::Conn::from_url(common.mysql_url.as_str())
        .await
        .with_context(|| format!("cannot connect to the demo MariaDB at {}", common.mysql_url))?;
    let ids: Vec<&str> = common.partners.iter().map(|(id, _)| id.as_str()).collect();
    println!(
        "waiting for {} to catch up with the database (at most {} s)",
        ids.join(" and "),
        drain_timeout.as_secs()
    );
    let started = Instant::now();
    let deadline = started + drain_timeout;
    let mut last_accepted: Vec<Option<u64>> = Vec::new();
    let mut quiet_since = Instant::now();
    let mut drained_since: Option<Instant> = None;
    let drained = loop {
        let views = observe(common, &http).await;
        let accepted: Vec<Option<u64>> = views
            .iter()
            .map(|v| v.state.as_ref().map(|s| s.accepted))
            .collect();
        let empty = views
            .iter()
            .all(|v| v.configured && v.backlog() == Some(0) && v.state.is_some());
        if accepted != last_accepted || !empty {
            last_accepted = accepted;
            quiet_since = Instant::now();
        }
        if empty && quiet_since.elapsed() >= SETTLED {
            let since = *drained_since.get_or_insert_with(Instant::now);
            let rows = DatabaseRows::load(&mut conn, DB).await?;
            let mut equal = true;
            for (_, url) in &common.partners {
                let state = partner_state(&http, url, true).await?;
                equal &= compare(&state, &rows, &state.version).is_equal();
            }
            if equal || since.elapsed() >= UNEQUAL_GRACE {
                break true;
            }
        } else {
            drained_since = None;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let views = observe(common, &http).await;
    if drained {
        println!(
            "the partners caught up after {:.0} s",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "the partners did NOT catch up within {} s (backlog: {}); comparing what they hold",
            drain_timeout.as_secs(),
            views
                .iter()
                .map(|v| format!(
                    "{} {}",
                    v.id,
                    v.backlog().map_or("?".into(), |b| b.to_string())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let rows = DatabaseRows::load(&mut conn, DB).await?;
    let _ = conn.disconnect().await;
    let config = pusher::config::Config::load(&common.pusher_config)
        .with_context(|| format!("cannot read {}", common.pusher_config.display()))?;
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for ((id, url), view) in common.partners.iter().zip(&views) {
        let state = partner_state(&http, url, true).await?;
        let comparison = compare(&state, &rows, &state.version);
        let parked = if config.partners.iter().any(|p| &p.id == id) {
            parked_summary(&config, id).await?
        } else {
            BTreeMap::new()
        };
        print_comparison(id, &state, view, &comparison, &parked);
        if comparison.is_equal() {
            passed.push(id.as_str());
        } else {
            failed.push(id.as_str());
        }
    }
    if failed.is_empty() {
        println!(
            "consistency check PASSED: {} equal to the database",
            passed.join(" and ")
        );
        Ok(true)
    } else {
        println!(
            "consistency check FAILED: {} differ from the database",
            failed.join(" and ")
        );
        Ok(false)
    }
}

fn print_comparison(
    id: &str,
    state: &PartnerState,
    view: &PartnerView,
    cmp: &Comparison,
    parked: &BTreeMap<String, usize>,
) {
    let mut out = format!(
        "\nconsistency check, partner {id} (OCPI {}): {} requests accepted, {} parked{}\n",
        state.version,
        state.accepted,
        view.parked.map_or("?".into(), |p| p.to_string()),
        view.sync
            .as_ref()
            .map(|s| format!(", initial {s}"))
            .unwrap_or_default()
    );
    for (reason, count) in parked {
        out.push_str(&format!("  parked {count:>4} x {reason}\n"));
    }
    if !parked.is_empty() && view.sync.is_some() && cmp.is_equal() {
        out.push_str(
            "  (refused during the initial sync: live changes that came before the Location \
             they belong to, snapshot rows older than what a live change had delivered; the \
             partner got each record's newest state the other way; README, \"Guarantees and \
             honest limits\")\n",
        );
    }
    out.push_str(&format!(
        "  {:<12} {:>9} {:>8} {:>10} {:>6}\n",
        "records", "compared", "missing", "differing", "extra"
    ));
    let mut total = 0;
    for (kind, count) in &cmp.counts {
        total += count.compared;
        out.push_str(&format!(
            "  {kind:<12} {:>9} {:>8} {:>10} {:>6}\n",
            count.compared, count.missing, count.differing, count.extra
        ));
    }
    for diff in cmp.diffs.iter().take(10) {
        out.push_str(&format!("  - {}\n", diff.replace('\n', "\n    ")));
    }
    if cmp.diffs.len() > 10 {
        out.push_str(&format!("  ... and {} more\n", cmp.diffs.len() - 10));
    }
    if cmp.is_equal() {
        out.push_str(&format!(
            "  {id}: PASSED, all {total} records equal to the database\n"
        ));
    } else {
        out.push_str(&format!(
            "  {id}: FAILED, {} differences\n",
            cmp.diffs.len()
        ));
    }
    print!("{out}");
}
