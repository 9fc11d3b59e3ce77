//! `bridge` command line: `run` starts capturing, `check` runs only the start-up checks,
//! `sync` asks for an initial sync of a partner queue (or cancels one, or shows them).

use bridge::config::{Config, LogFormat};
use bridge::metrics::{BridgeMetrics, Phase};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Every captured row is built, serialized and kept until confirmed, then freed on another
/// thread: mimalloc costs measurably less CPU per row than the system allocator here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "bridge",
    version,
    about = "MySQL/MariaDB binlog to RabbitMQ change bridge"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture changes and publish them until SIGTERM/SIGINT.
    Run {
        /// Path of the bridge's TOML configuration.
        #[arg(long, short, default_value = "config/bridge.toml")]
        config: PathBuf,
    },
    /// Check the configuration, the database server's settings and the broker, then exit.
    Check {
        #[arg(long, short, default_value = "config/bridge.toml")]
        config: PathBuf,
    },
    /// Initial syncs: send every existing record of some tables to one partner queue.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
}

#[derive(Subcommand)]
enum SyncCommand {
    /// Ask the running bridge to sync tables to a queue (which must exist and be bound).
    Start {
        /// The partner's queue.
        #[arg(long)]
        queue: String,
        /// Comma-separated `database.table` list (captured tables with a primary key).
        #[arg(long, value_delimiter = ',', required = true)]
        tables: Vec<String>,
        #[arg(long, short, default_value = "config/bridge.toml")]
        config: PathBuf,
    },
    /// Stop the running or waiting syncs of a queue.
    Cancel {
        #[arg(long)]
        queue: String,
        #[arg(long, short, default_value = "config/bridge.toml")]
        config: PathBuf,
    },
    /// Show the syncs the bridge's checkpoint records (as confirmed by the broker).
    Status {
        /// Print the state as JSON.
        #[arg(long)]
        json: bool,
        #[arg(long, short, default_value = "config/bridge.toml")]
        config: PathBuf,
    },
}

async fn sync_request(
    config: Config,
    action: change_message::sync_request::SyncAction,
) -> anyhow::Result<()> {
    let request = bridge::sync::requests::submit(&config, action).await?;
    println!(
        "sync request {} sent to queue {} ({}); the bridge logs its progress, `bridge sync status` shows it",
        request.request_id,
        change_message::sync_request::requests_queue(&config.broker.exchange),
        String::from_utf8_lossy(&request.to_vec())
    );
    Ok(())
}

fn sync_status(config: Config, json: bool) -> anyhow::Result<()> {
    let store = bridge::checkpoint::CheckpointStore::new(&config.checkpoint.path);
    let state = store
        .load()?
        .and_then(|cp| cp.sync)
        .map(|s| (*s).clone())
        .unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&state)?);
        return Ok(());
    }
    let all = state.all();
    if all.is_empty() {
        println!("no initial sync recorded in {}", store.path().display());
        return Ok(());
    }
    for job in all {
        let state_text = format!("{:?}", job.state).to_lowercase();
        println!(
            "sync {}  queue {}  {}{}",
            job.sync_id,
            job.queue,
            state_text,
            job.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        for table in &job.tables {
            let total = table
                .rows_total
                .map(|t| t.to_string())
                .unwrap_or_else(|| "?".into());
            println!(
                "  {:<40} {:<8} {}/{} rows ({} sent)",
                table.table,
                format!("{:?}", table.state).to_lowercase(),
                table.rows_done,
                total,
                table.rows_sent
            );
        }
    }
    Ok(())
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    // lapin logs every returned message in full at WARN; the bridge reports them itself.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{},lapin=error", config.log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    tracing::info!(
        database = %format!("{}:{}", config.source.host, config.source.port),
        tls = %config.source.tls.describe(),
        "source.tls: database connections"
    );
    tracing::info!(
        broker = %bridge::config::redact_url(&config.broker.url),
        tls = %config.broker.tls.describe(),
        "broker.tls: broker connections"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
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
                let _ = stop_tx.send(true);
            } else {
                tracing::warn!("second stop signal: exiting at once; unconfirmed changes will be published again on the next start");
                std::process::exit(130);
            }
        }
    });
    let metrics = Arc::new(BridgeMetrics::new());
    if !config.metrics.listen.is_empty() {
        let listener = bridge::http_endpoints::bind(&config.metrics.listen).await?;
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| config.metrics.listen.clone());
        bridge::http_endpoints::spawn(listener, metrics.clone());
        tokio::spawn(bridge::metrics::sample_rates(metrics.clone()));
        tokio::spawn(bridge::lag::poll(
            config.source.clone(),
            metrics.clone(),
            stop_rx.clone(),
        ));
        tracing::info!(%address, "serving /metrics, /healthz, /readyz and /status");
    }
    tokio::spawn(bridge::binlog_headroom::watch(
        config.source.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));
    let result = bridge::pipeline::run(config, stop_rx, metrics.clone()).await;
    metrics.set_phase(Phase::Stopped, "");
    result?;
    tracing::info!("bridge stopped cleanly");
    Ok(())
}

async fn check(config: Config) -> anyhow::Result<()> {
    let filter = bridge::capture_filter::CaptureFilter::new(&config.capture);
    let store = bridge::checkpoint::CheckpointStore::new(&config.checkpoint.path);
    let checkpoint = store.load()?;
    let (facts, catalog) =
        bridge::preflight::run(&config.source, &filter, checkpoint.as_ref()).await?;
    if config.sync.enabled {
        bridge::preflight::signal_table(
            &config.source,
            config.signal_database(),
            &config.sync.signal_table,
        )
        .await?;
        println!(
            "signal table OK: {}",
            bridge::sync::signal::quoted(config.signal_database(), &config.sync.signal_table)
        );
    }
    let captured = catalog
        .tables
        .keys()
        .filter(|(db, table)| filter.captures_table(db, table))
        .count();
    println!(
        "database OK: {} (server_id {}), {} captured table(s), binlog files {}..{}",
        facts.version,
        facts.server_id,
        captured,
        facts.binlog_files.first().map(String::as_str).unwrap_or(""),
        facts.binlog_files.last().map(String::as_str).unwrap_or("")
    );
    match bridge::binlog_headroom::retention_report(&config.source).await {
        Ok(line) => println!("{line}"),
        Err(error) => println!("binlog retention unknown: {error}"),
    }
    let broker = &config.broker;
    tls_connect::broker::connect(
        &broker.url,
        lapin::ConnectionProperties::default(),
        &broker.tls,
    )
    .await
    .map_err(
        |e| match tls_connect::broker::problem(&e, &broker.tls, &broker.url) {
            Some(problem) => anyhow::anyhow!(problem),
            None => anyhow::anyhow!(
                "broker {} is not reachable: {e}",
                bridge::config::redact_url(&broker.url)
            ),
        },
    )?;
    println!("broker OK");
    match (&checkpoint, &facts.resume) {
        (Some(cp), bridge::failover::ResumePlan::Gtid { gtid, .. }) => println!(
            "checkpoint of another server ({}): will resume by GTID after {gtid} on {} (next seq {})",
            cp.server.as_ref().map(|s| s.to_string()).unwrap_or_default(),
            facts.identity,
            cp.next_seq
        ),
        (Some(cp), _) => println!(
            "checkpoint: {}:{} (next seq {})",
            cp.file, cp.pos, cp.next_seq
        ),
        (None, _) => println!(
            "no checkpoint yet: will start at source.start = {:?}",
            config.source.start
        ),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = match &cli.command {
        Command::Run { config } | Command::Check { config } => config,
        Command::Sync { command } => match command {
            SyncCommand::Start { config, .. }
            | SyncCommand::Cancel { config, .. }
            | SyncCommand::Status { config, .. } => config,
        },
    };
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { .. } => run(config).await,
            Command::Check { .. } => check(config).await,
            Command::Sync { command } => match command {
                SyncCommand::Start { queue, tables, .. } => {
                    sync_request(
                        config,
                        change_message::sync_request::SyncAction::Start { queue, tables },
                    )
                    .await
                }
                SyncCommand::Cancel { queue, .. } => {
                    sync_request(
                        config,
                        change_message::sync_request::SyncAction::Cancel { queue },
                    )
                    .await
                }
                SyncCommand::Status { json, .. } => sync_status(config, json),
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "bridge stopped");
            ExitCode::FAILURE
        }
    }
}
