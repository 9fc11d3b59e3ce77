//! `pusher` command line: `run` delivers partner queues to their OCPI APIs, `setup` declares
//! the partners' queues, `partners` lists their backlog and status, `status` shows the bridge's
//! position and lag next to every partner's backlog, oldest message and initial sync.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pusher::config::{Config, LogFormat};
use pusher::metrics::{Phase, PusherMetrics};

/// Allocation-heavy hot path (a JSON message in, an HTTP request out, per push): mimalloc
/// costs measurably less CPU per push than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pusher",
    version,
    about = "Delivers captured changes to OCPI partners"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the partners' queues and push to them until SIGTERM/SIGINT.
    Run {
        /// Path of the pusher's TOML configuration.
        #[arg(long, short, default_value = "config/pusher.toml")]
        config: PathBuf,
    },
    /// Declare every partner's queue (bound to the bridge's exchange) and parking queue, then exit.
    Setup {
        #[arg(long, short, default_value = "config/pusher.toml")]
        config: PathBuf,
    },
    /// Add a partner, or re-sync one: declare its queue (live changes start to accumulate), then
    /// ask the bridge for an initial sync of its tables into that queue only.
    Sync {
        /// The partner's `id` in the configuration.
        partner: String,
        #[arg(long, short, default_value = "config/pusher.toml")]
        config: PathBuf,
        /// Cancel the partner's running or waiting sync instead.
        #[arg(long)]
        cancel: bool,
    },
    /// Show the bridge's position and lag, and per partner: backlog, oldest message, parked,
    /// active pusher, endpoint state and initial sync.
    Status {
        #[arg(long, short, default_value = "config/pusher.toml")]
        config: PathBuf,
        /// Print JSON (one object) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A partner's parked messages: list them with their reasons, replay them into the
    /// partner's queue once the cause is fixed, or discard them.
    Parked {
        #[arg(long, short, default_value = "config/pusher.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: pusher::parked::ParkedCommand,
    },
    /// List partners: backlog (ready, unacked), parked, active pusher, endpoint status.
    Partners {
        #[arg(long, short, default_value = "config/pusher.toml")]
        config: PathBuf,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{},lapin=error", config.log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("cannot use configuration {}", path.display()))
}

/// For `status` and `partners`, which call no partner: tokens need not be set.
fn load_for_inspection(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load_for_inspection(path)
        .with_context(|| format!("cannot use configuration {}", path.display()))
}

async fn run(mut config: Config) -> anyhow::Result<()> {
    tracing::info!(
        broker = %pusher::config::redact_url(&config.broker.url),
        tls = %config.broker.tls.describe(),
        "broker.tls: broker connections"
    );
    if let Some(database) = &config.database {
        tracing::info!(
            database = %format!("{}:{}", database.host, database.port),
            tls = %database.tls.describe(),
            "database.tls: source database connections"
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every wait on the stop path is bounded; should one still hang, the process ends anyway
    // this long after the stop request (unacked messages return to their queues).
    let stop_limit =
        Duration::from_millis(config.pusher.shutdown_grace_ms) + Duration::from_secs(20);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        let mut requests = 0;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            requests += 1;
            if requests == 1 {
                tracing::info!("stop requested: finishing calls in flight");
                let _ = stop_tx.send(true);
                tokio::spawn(async move {
                    tokio::time::sleep(stop_limit).await;
                    tracing::error!(
                        limit_secs = stop_limit.as_secs(),
                        "the pusher did not stop within the limit after the stop request: exiting \
                         now; unacked messages return to their queues (please report this with \
                         the log)"
                    );
                    std::process::exit(1);
                });
            } else {
                tracing::warn!(
                    "second stop signal: exiting at once; unacked messages return to their queues"
                );
                std::process::exit(130);
            }
        }
    });
    let metrics = Arc::new(PusherMetrics::new(
        config.partners.iter().map(|p| p.id.as_str()),
    ));
    if !config.metrics.listen.is_empty() {
        let listener = pusher::http_endpoints::bind(&config.metrics.listen).await?;
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| config.metrics.listen.clone());
        pusher::http_endpoints::spawn(listener, metrics.clone());
        tokio::spawn(pusher::metrics::sample_rates(metrics.clone()));
        tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    }
    // Before anything is delivered (the endpoints above already answer meanwhile).
    let mut stopping = stop_rx.clone();
    tokio::select! {
        resolved = pusher::source_time_zone::resolve(&mut config) => resolved?,
        _ = stopping.wait_for(|stop| *stop) => {
            tracing::info!("pusher stopped before it started");
            return Ok(());
        }
    }
    let result = pusher::supervisor::run(Arc::new(config), stop_rx, metrics.clone()).await;
    metrics.set_phase(Phase::Stopped, "");
    result?;
    tracing::info!("pusher stopped cleanly");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => match load(&config) {
            Ok(config) => {
                init_logging(&config);
                run(config).await
            }
            Err(e) => Err(e),
        },
        Command::Setup { config } => match load(&config) {
            Ok(config) => pusher::supervisor::setup(&config).await,
            Err(e) => Err(e),
        },
        Command::Sync {
            partner,
            config,
            cancel,
        } => match load(&config) {
            Ok(config) => sync_and_wait(&config, &partner, cancel).await,
            Err(e) => Err(e),
        },
        Command::Status { config, json } => match load_for_inspection(&config) {
            Ok(loaded) => {
                let path = config.display().to_string();
                match pusher::status::status(&loaded, &path).await {
                    Ok(report) if json => serde_json::to_string_pretty(&report)
                        .map(|text| println!("{text}"))
                        .map_err(Into::into),
                    Ok(report) => {
                        print!("{}", pusher::status::render_status(&report));
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
        Command::Parked { config, action } => match load_for_inspection(&config) {
            Ok(config) => pusher::parked::run(&config, action)
                .await
                .map_err(Into::into),
            Err(e) => Err(e),
        },
        Command::Partners { config, json } => match load_for_inspection(&config) {
            Ok(config) => match pusher::status::partners(&config).await {
                Ok(rows) if json => serde_json::to_string_pretty(&rows)
                    .map(|text| println!("{text}"))
                    .map_err(Into::into),
                Ok(rows) => {
                    print!("{}", pusher::status::render_table(&rows));
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("pusher: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `pusher sync`: requests the sync, then shows the bridge's answer; a refusal is an error.
async fn sync_and_wait(
    config: &pusher::config::Config,
    partner: &str,
    cancel: bool,
) -> anyhow::Result<()> {
    use pusher::sync_request::{answer, request, Answer, ANSWER_WAIT};
    let done = request(config, partner, cancel).await?;
    let verb = if cancel {
        "cancel of its sync"
    } else {
        "initial sync"
    };
    let id = &done.request.request_id;
    println!(
        "partner {partner}: queue {} declared and bound; {verb} requested (request {id})",
        done.queue
    );
    match answer(config, id, ANSWER_WAIT).await {
        Answer::Accepted => {
            println!("the bridge accepted it; follow it with `bridge sync status`");
            Ok(())
        }
        Answer::Refused(reason) => Err(anyhow::anyhow!(
            "the bridge refused the sync request {id}: {reason}"
        )),
        Answer::NotSeen(why) => {
            println!("its answer is not known yet: {why}");
            Ok(())
        }
    }
}
