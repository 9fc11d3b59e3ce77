//! `bridge` command line: `run` starts capturing, `check` runs only the start-up checks.

use anyhow::Context;
use bridge::config::{Config, LogFormat};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    bridge::pipeline::run(config, stop_rx).await?;
    tracing::info!("bridge stopped cleanly");
    Ok(())
}

async fn check(config: Config) -> anyhow::Result<()> {
    let filter = bridge::capture_filter::CaptureFilter::new(&config.capture);
    let store = bridge::checkpoint::CheckpointStore::new(&config.checkpoint.path);
    let checkpoint = store.load()?;
    let (facts, catalog) =
        bridge::preflight::run(&config.source, &filter, checkpoint.as_ref()).await?;
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
    lapin::Connection::connect(&config.broker.url, lapin::ConnectionProperties::default())
        .await
        .with_context(|| {
            format!(
                "broker {} is not reachable",
                bridge::config::redact_url(&config.broker.url)
            )
        })?;
    println!("broker OK");
    match checkpoint {
        Some(cp) => println!(
            "checkpoint: {}:{} (next seq {})",
            cp.file, cp.pos, cp.next_seq
        ),
        None => println!(
            "no checkpoint yet: will start at source.start = {:?}",
            config.source.start
        ),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (Command::Run { config: path } | Command::Check { config: path }) = &cli.command;
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
