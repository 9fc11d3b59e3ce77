//! The fault-injection run (`bench/run chaos`, and a short variant in the tests): the whole
//! system ([`system`]) under the example workload ([`crate::workload`]) for a bounded time while
//! a seeded scheduler injects faults ([`faults`]); then the workload stops, the partners drain,
//! and [`verdict`] checks that every committed change reached every partner, that no record
//! went back to an older state, that no CDR was POSTed twice and that nothing was parked that
//! should not be.
//!
//! The last line of [`Report`]'s text is the summary:
//! `chaos: seconds=... faults=... changes=... lost=0 regressions=0 duplicate_cdrs=0 parked=0
//! unknown_outcome_cdrs=...`.

pub mod faults;
pub mod system;
pub mod verdict;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::consistency::{compare, DatabaseRows};
use crate::workload::{self, Counters, OnError, DB};
use system::System;
use verdict::PartnerVerdict;

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// How long faults are injected (the workload runs as long).
    pub duration: Duration,
    /// Chooses the faults, their timing and the workload's changes.
    pub seed: u64,
    /// Changes per second of the workload.
    pub rate: u32,
    /// The gap between faults is drawn from this range (milliseconds).
    pub gap_ms: std::ops::Range<u64>,
    /// How long the partners may take to catch up once the workload stopped.
    pub drain: Duration,
}

impl ChaosOptions {
    pub fn new(duration: Duration, seed: u64) -> ChaosOptions {
        ChaosOptions {
            duration,
            seed,
            rate: 30,
            gap_ms: 3000..9000,
            drain: Duration::from_secs(300),
        }
    }
}

/// What the run found.
#[derive(Debug)]
pub struct Report {
    pub options: ChaosOptions,
    pub seconds: u64,
    /// The faults injected, with the second of the run each began at.
    pub faults: Vec<(u64, String)>,
    /// Rows changed by the workload.
    pub changes: u64,
    /// Workload statements that failed (the database was down).
    pub failed_statements: u64,
    /// Product processes that exited without being told to, with their log's last lines.
    pub unplanned_exits: Vec<String>,
    /// How long the partners took to catch up; `None`: they did not within the drain time.
    pub drained_after: Option<Duration>,
    pub partners: Vec<PartnerVerdict>,
    /// The product processes' last log lines, when something was found.
    pub logs: String,
}

impl Report {
    pub fn lost(&self) -> usize {
        self.partners.iter().map(|p| p.lost.len()).sum()
    }
    pub fn regressions(&self) -> usize {
        self.partners.iter().map(|p| p.regressions.len()).sum()
    }
    pub fn duplicate_cdrs(&self) -> usize {
        self.partners.iter().map(|p| p.duplicate_cdrs).sum()
    }
    pub fn parked(&self) -> usize {
        self.partners.iter().map(|p| p.parked.len()).sum()
    }
    pub fn unknown_outcome_cdrs(&self) -> usize {
        self.partners
            .iter()
            .map(|p| p.unknown_outcome_cdrs.len())
            .sum()
    }

    /// Nothing lost, regressed, duplicated or parked without reason.
    pub fn is_clean(&self) -> bool {
        self.lost() == 0
            && self.regressions() == 0
            && self.duplicate_cdrs() == 0
            && self.parked() == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chaos: seed {}", self.options.seed)?;
        for (at, fault) in &self.faults {
            writeln!(f, "  {at:>4} s  {fault}")?;
        }
        for exit in &self.unplanned_exits {
            writeln!(f, "unplanned exit: {exit}")?;
        }
        writeln!(
            f,
            "workload: {} rows changed, {} statements failed while the database was down",
            self.changes, self.failed_statements
        )?;
        match self.drained_after {
            Some(d) => writeln!(
                f,
                "the partners caught up {:.0} s after the workload stopped",
                d.as_secs_f64()
            )?,
            None => writeln!(
                f,
                "the partners did NOT catch up within {:?}",
                self.options.drain
            )?,
        }
        for p in &self.partners {
            writeln!(
                f,
                "partner {}: lost {}, regressions {}, duplicate CDRs {}, parked {}, CDRs with an \
                 unknown outcome (parked for a person, by design) {}",
                p.id,
                p.lost.len(),
                p.regressions.len(),
                p.duplicate_cdrs,
                p.parked.len(),
                p.unknown_outcome_cdrs.len()
            )?;
            let details = p.lost.iter().chain(&p.regressions).chain(&p.parked);
            for line in details.take(20) {
                writeln!(f, "    {line}")?;
            }
        }
        if !self.is_clean() {
            writeln!(f, "{}", self.logs)?;
        }
        write!(
            f,
            "chaos: seconds={} faults={} changes={} lost={} regressions={} duplicate_cdrs={} \
             parked={} unknown_outcome_cdrs={}",
            self.seconds,
            self.faults.len(),
            self.changes,
            self.lost(),
            self.regressions(),
            self.duplicate_cdrs(),
            self.parked(),
            self.unknown_outcome_cdrs()
        )
    }
}

/// Runs the whole system under faults as `options` say and reports what it found. Panics when
/// the system cannot be started (that is not a finding of the run).
pub async fn run(options: ChaosOptions) -> Report {
    let mut system = System::start().await;
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let writer = tokio::spawn(workload::run(
        system.mysql_url(),
        options.rate,
        options.seed,
        OnError::Reconnect,
        stop.clone(),
        counters.clone(),
    ));

    let started = Instant::now();
    let mut faults = Vec::new();
    let mut unplanned_exits = Vec::new();
    let mut undo = Vec::new();
    while started.elapsed() < options.duration {
        tokio::time::sleep(Duration::from_millis(rng.u64(options.gap_ms.clone()))).await;
        note_exits(&mut system, &mut unplanned_exits);
        let fault = faults::pick(&mut rng, system.partners.len());
        let at = started.elapsed().as_secs();
        println!("chaos: {at:>4} s  {fault}");
        undo.extend(faults::inject(&mut system, &fault, &mut rng).await);
        faults.push((at, fault.to_string()));
    }
    for task in undo {
        let _ = task.await;
    }
    stop.store(true, Ordering::Relaxed);
    if let Ok(Err(e)) = writer.await {
        panic!("the workload failed: {e:#}");
    }
    let seconds = started.elapsed().as_secs();
    note_exits(&mut system, &mut unplanned_exits);

    let drained_after = drain(&mut system, &options, &mut unplanned_exits).await;
    let rows = database_rows(&system).await;
    let mut partners = Vec::new();
    for p in &system.partners {
        partners.push(
            verdict::judge(
                &p.id,
                &p.double,
                &rows,
                &system.pusher_config(""),
                &system.env,
            )
            .await,
        );
    }
    let mut report = Report {
        options,
        seconds,
        faults,
        changes: counters.written.load(Ordering::Relaxed),
        failed_statements: counters.failed.load(Ordering::Relaxed),
        unplanned_exits,
        drained_after,
        partners,
        logs: String::new(),
    };
    if !report.is_clean() {
        report.logs = system.log_tails(40);
    }
    report
}

/// Records a product process that exited by itself and starts it again (as a supervisor would).
fn note_exits(system: &mut System, exits: &mut Vec<String>) {
    let tails: Vec<(String, String)> =
        std::iter::once(("bridge".to_string(), system.bridge.log_tail(15)))
            .chain(
                system
                    .pushers
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (system::PUSHER_NAMES[i].to_string(), p.log_tail(15))),
            )
            .collect();
    for name in system.restart_exited() {
        let tail = tails
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_default();
        println!("chaos: {name} exited by itself; started again. Its log ended:\n{tail}");
        exits.push(format!("{name}:\n{tail}"));
    }
}

/// Waits until every partner holds what the database holds (CDRs parked with an unknown
/// outcome excused), restarting processes that exit; `None` after `options.drain`.
async fn drain(
    system: &mut System,
    options: &ChaosOptions,
    exits: &mut Vec<String>,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < options.drain {
        note_exits(system, exits);
        if caught_up(system).await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    None
}

/// True when every partner equals the database but for CDRs parked with an unknown outcome.
async fn caught_up(system: &System) -> bool {
    let rows = database_rows(system).await;
    for p in &system.partners {
        let state = p.double.state(true);
        let diffs = compare(&state, &rows, &state.version).diffs;
        if diffs.is_empty() {
            continue;
        }
        if !diffs.iter().all(|d| d.starts_with("CDR ")) {
            return false;
        }
        let (cdrs, _) = verdict::parked(&system.pusher_config(""), &system.env, &p.id).await;
        if !verdict::unexcused(diffs, &cdrs).is_empty() {
            return false;
        }
    }
    true
}

async fn database_rows(system: &System) -> DatabaseRows {
    let url = system.mysql_url();
    let mut conn = mysql_async::Conn::from_url(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the run's MariaDB: {e}"));
    let rows = DatabaseRows::load(&mut conn, DB)
        .await
        .unwrap_or_else(|e| panic!("cannot read the run's database: {e:#}"));
    let _ = conn.disconnect().await;
    rows
}
