//! The fault-injection run of `bench/run chaos`: the whole system under the example workload
//! while faults are injected, then the checks (see the `chaos` module of the harness).
//!
//! ```text
//! chaos [--seconds 600] [--seed N] [--rate 30] [--drain-secs 300]
//! ```
//!
//! Without `--seed` a random one is drawn and printed first, so a run can be repeated. The last
//! line is the summary `chaos: seconds=... faults=... changes=... lost=... regressions=...
//! duplicate_cdrs=... parked=... unknown_outcome_cdrs=...`. Exit status 0 when nothing was
//! lost, regressed, duplicated or wrongly parked, 1 otherwise; the binaries run are those of
//! `BRIDGE_BIN` and `PUSHER_BIN`.

use std::time::Duration;

use clap::Parser;
use system_tests::chaos::{run, ChaosOptions};

#[derive(Parser)]
#[command(name = "chaos", about = "Fault-injection run of the whole system")]
struct Cli {
    /// How long faults are injected while the workload runs.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Seed of the fault schedule and the workload; random when left out.
    #[arg(long)]
    seed: Option<u64>,
    /// Changes per second of the workload.
    #[arg(long, default_value_t = 30)]
    rate: u32,
    /// How long the partners may take to catch up after the workload stopped.
    #[arg(long, default_value_t = 300)]
    drain_secs: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(|| fastrand::u64(..1_000_000));
    println!(
        "chaos: seed {seed} ({} s of faults; repeat with --seed {seed})",
        cli.seconds
    );
    let mut options = ChaosOptions::new(Duration::from_secs(cli.seconds), seed);
    options.rate = cli.rate;
    options.drain = Duration::from_secs(cli.drain_secs);
    let report = run(options).await;
    println!("{report}");
    std::process::exit(if report.is_clean() && report.drained_after.is_some() {
        0
    } else {
        1
    });
}
