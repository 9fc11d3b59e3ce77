//! `benchkit decode`: the bridge's binlog read and decode alone, with no broker, no dedup and
//! no message building. It runs the bridge's own source (the same preflight, catalog, reader
//! and value decoders as `bridge run`) from a binlog position to another and counts the
//! captured rows, which tells how much of the bridge's backlog rate the reading side costs.

use anyhow::{bail, Context};
use bridge::capture_filter::CaptureFilter;
use bridge::config::Config;
use bridge::metrics::BridgeMetrics;
use bridge::source::{self, SourceEvent, SourceParams, StartAt};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What one read from `from` to `until` saw.
pub struct DecodeRun {
    pub rows: u64,
    pub elapsed: Duration,
}

/// Reads the binlog of the server in the bridge config `config` from `from` until the first
/// transaction boundary at or after `until`, and counts the captured rows.
pub async fn run(
    config: &Path,
    from: (String, u64),
    until: (String, u64),
    timeout: Duration,
) -> anyhow::Result<DecodeRun> {
    let config = Config::load(config).with_context(|| format!("loading {}", config.display()))?;
    let filter = Arc::new(CaptureFilter::new(&config.capture));
    let (facts, catalog) = bridge::preflight::run(&config.source, &filter, None)
        .await
        .context("the bridge's database checks")?;
    let read_ahead = bridge::source::read_ahead::ReadAhead::new(config.source.read_ahead_bytes);
    let params = SourceParams {
        opts: bridge::preflight::connection_opts(&config.source),
        is_mariadb: facts.is_mariadb,
        // Another replica id than the bridge's, so that both may read at once.
        server_id: config.source.server_id + 1,
        heartbeat: Duration::from_secs(config.source.heartbeat_secs),
        start: StartAt::Position {
            file: from.0,
            pos: from.1,
        },
        start_gtid: None,
        filter,
        catalog: catalog.tables,
        lookup: Box::new(|_, _| Box::pin(async { None })),
        signal_table: None,
        accepted_resets: Arc::new(HashSet::new()),
        metrics: Arc::new(BridgeMetrics::new()),
        read_ahead: read_ahead.clone(),
    };
    let (tx, mut rx) = mpsc::channel(1024);
    let started = Instant::now();
    let reader = source::spawn(params, tx);
    let mut rows = 0u64;
    let outcome = tokio::time::timeout(timeout, async {
        while let Some(event) = rx.recv().await {
            match event {
                SourceEvent::Row(row) => {
                    read_ahead.release(row.approx_bytes);
                    rows += 1;
                }
                SourceEvent::Boundary(at) if reached(&at.file, at.pos, &until) => return Ok(()),
                SourceEvent::Failed(error) => bail!("the binlog reader failed: {error}"),
                _ => {}
            }
        }
        bail!("the binlog reader ended before {}:{}", until.0, until.1)
    })
    .await;
    let elapsed = started.elapsed();
    reader.abort();
    match outcome {
        Ok(result) => result.map(|()| DecodeRun { rows, elapsed }),
        Err(_) => bail!(
            "{rows} rows read, {}:{} not reached within {}s",
            until.0,
            until.1,
            timeout.as_secs()
        ),
    }
}

/// Whether `file:pos` is at or after `until` (binlog file names sort in order).
fn reached(file: &str, pos: u64, until: &(String, u64)) -> bool {
    (file, pos) >= (until.0.as_str(), until.1)
}
