//! The chunk reader: one task per table scan. It reads the table in primary-key order, one
//! chunk at a time, each between a low and a high watermark, and hands the rows to the pipeline
//! before writing the high watermark. Plain consistent reads: no locks, nothing held between
//! chunks. At most `chunks_in_flight` chunks wait for their high watermark to come back through
//! the binlog (a permit each, returned when the pipeline has handled the chunk).

use super::chunk_limit::ChunkLimit;
use super::signal::{self, ident, quoted};
use super::state::KeyValue;
use super::tracker::{ChunkRows, DriverEvent, SnapshotRow};
use crate::capture_filter::CaptureFilter;
use crate::config::SourceConfig;
use crate::preflight;
use crate::source::sql_values::{decode_sql, table_layout, LayoutError};
use crate::source::table_schema::TableSchema;
use change_message::Row;
use mysql_async::prelude::Queryable;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// What every scan needs, shared.
pub struct ScanContext {
    pub source: SourceConfig,
    pub is_mariadb: bool,
    pub filter: Arc<CaptureFilter>,
    pub signal_database: String,
    pub signal_table: String,
    pub chunk_size: usize,
    /// Bytes per chunk at most, about (`sync.chunk_bytes`, see [`super::chunk_limit`]).
    pub chunk_bytes: usize,
    pub events: mpsc::UnboundedSender<DriverEvent>,
    /// The generation scans must belong to; a scan whose generation is no longer current
    /// stops at its next step.
    pub current: Arc<AtomicU64>,
}

pub struct Scan {
    pub generation: u64,
    pub sync_id: String,
    /// `database.table`
    pub table: String,
    pub after: Option<Vec<KeyValue>>,
    pub delay: Duration,
    pub permits: Arc<Semaphore>,
}

enum ScanError {
    Fatal(String),
    Retry(String),
}

impl From<mysql_async::Error> for ScanError {
    fn from(e: mysql_async::Error) -> ScanError {
        ScanError::Retry(e.to_string())
    }
}

/// The `WHERE` that selects the keys after `after` (lexicographic order over the key columns):
/// `k1 > ? OR (k1 = ? AND k2 > ?) OR ...`, which index range scans handle well.
pub fn after_condition(keys: &[String]) -> String {
    let mut terms = Vec::with_capacity(keys.len());
    for i in 0..keys.len() {
        let mut parts: Vec<String> = keys[..i].iter().map(|k| format!("{k} = ?")).collect();
        parts.push(format!("{} > ?", keys[i]));
        terms.push(format!("({})", parts.join(" AND ")));
    }
    terms.join(" OR ")
}

/// The parameters of [`after_condition`] for one key.
pub fn after_params(after: &[KeyValue]) -> Vec<mysql_async::Value> {
    let mut params = Vec::new();
    for i in 0..after.len() {
        for value in &after[..=i] {
            params.push(value.to_sql());
        }
    }
    params
}

pub async fn run(ctx: Arc<ScanContext>, scan: Scan) {
    if !scan.delay.is_zero() {
        tokio::time::sleep(scan.delay).await;
    }
    let generation = scan.generation;
    let result = read_table(&ctx, scan).await;
    let failure = match result {
        Ok(()) => return,
        Err(ScanError::Fatal(message)) => (message, true),
        Err(ScanError::Retry(message)) => (message, false),
    };
    let _ = ctx.events.send(DriverEvent::Failed {
        generation,
        message: failure.0,
        fatal: failure.1,
    });
}

async fn read_table(ctx: &ScanContext, scan: Scan) -> Result<(), ScanError> {
    let stale = || ctx.current.load(Ordering::SeqCst) != scan.generation;
    if stale() {
        return Ok(());
    }
    let (database, table) = scan
        .table
        .split_once('.')
        .ok_or_else(|| ScanError::Fatal(format!("{:?} is not database.table", scan.table)))?;
    let mut conn = preflight::connect(&ctx.source)
        .await
        .map_err(|e| ScanError::Retry(e.to_string()))?;
    conn.query_drop("SET SESSION time_zone = '+00:00'").await?;
    // Text of every character set arrives as UTF-8, which is what the decoders expect of SQL.
    conn.query_drop("SET NAMES utf8mb4").await?;
    let layout = table_layout(&mut conn, ctx.is_mariadb, &ctx.filter, database, table)
        .await
        .map_err(|e| match e {
            LayoutError::Query { .. } => ScanError::Retry(e.to_string()),
            other => ScanError::Fatal(other.to_string()),
        })?;
    let published: Vec<usize> = (0..layout.columns.len())
        .filter(|&i| !layout.columns[i].excluded)
        .collect();
    let key_names: Vec<String> = layout
        .key
        .iter()
        .map(|&i| ident(&layout.columns[i].name))
        .collect();
    let columns: Vec<String> = published
        .iter()
        .map(|&i| ident(&layout.columns[i].name))
        .collect();
    let from = quoted(database, table);
    let order = key_names.join(", ");
    let first_sql = format!(
        "SELECT {} FROM {from} ORDER BY {order} LIMIT ",
        columns.join(", ")
    );
    let next_sql = format!(
        "SELECT {} FROM {from} WHERE {} ORDER BY {order} LIMIT ",
        columns.join(", "),
        after_condition(&key_names)
    );
    let mut limit = ChunkLimit::new(ctx.chunk_size, ctx.chunk_bytes);
    if scan.after.is_none() {
        let total: Option<u64> = conn
            .query_first(format!("SELECT COUNT(*) FROM {from}"))
            .await?;
        let _ = ctx.events.send(DriverEvent::Counted {
            generation: scan.generation,
            total: total.unwrap_or(0),
        });
    }
    let mut after = scan.after;
    loop {
        if stale() {
            return Ok(());
        }
        let Ok(permit) = scan.permits.acquire().await else {
            return Ok(());
        };
        permit.forget();
        if stale() {
            return Ok(());
        }
        let attempt = uuid::Uuid::new_v4().to_string();
        let _ = ctx.events.send(DriverEvent::Planned {
            generation: scan.generation,
            attempt: attempt.clone(),
            table: scan.table.clone(),
        });
        signal::insert(
            &mut conn,
            (&ctx.signal_database, &ctx.signal_table),
            signal::KIND_LOW,
            &scan.sync_id,
            &attempt,
            "",
            &scan.table,
        )
        .await?;
        let rows_asked = limit.rows();
        let rows: Vec<mysql_async::Row> = match &after {
            None => conn.exec(format!("{first_sql}{rows_asked}"), ()).await?,
            Some(key) => {
                conn.exec(format!("{next_sql}{rows_asked}"), after_params(key))
                    .await?
            }
        };
        let last = rows.len() < rows_asked;
        let (snapshot, last_key) = decode_rows(&layout, &published, rows)?;
        limit.observe(snapshot.len(), snapshot.iter().map(|r| r.bytes).sum());
        if last_key.is_some() {
            after = last_key.clone();
        }
        let _ = ctx.events.send(DriverEvent::Chunk(Box::new(ChunkRows {
            generation: scan.generation,
            attempt: attempt.clone(),
            rows: snapshot,
            last_key,
            last,
            binary_columns: layout.binary_columns.clone(),
        })));
        signal::insert(
            &mut conn,
            (&ctx.signal_database, &ctx.signal_table),
            signal::KIND_HIGH,
            &scan.sync_id,
            &attempt,
            "",
            &scan.table,
        )
        .await?;
        if last {
            let _ = conn.disconnect().await;
            return Ok(());
        }
    }
}

type Decoded = (Vec<SnapshotRow>, Option<Vec<KeyValue>>);

fn decode_rows(
    layout: &TableSchema,
    published: &[usize],
    rows: Vec<mysql_async::Row>,
) -> Result<Decoded, ScanError> {
    let mut out = Vec::with_capacity(rows.len());
    let mut last_key = None;
    let count = rows.len();
    for (n, row) in rows.into_iter().enumerate() {
        let values = row.unwrap();
        if n + 1 == count {
            last_key = Some(
                layout
                    .key
                    .iter()
                    .map(|&k| {
                        published
                            .iter()
                            .position(|&p| p == k)
                            .and_then(|at| values.get(at))
                            .map(KeyValue::from)
                            .unwrap_or(KeyValue::Null)
                    })
                    .collect(),
            );
        }
        let mut after = Row::with_capacity(values.len());
        for (&column, value) in published.iter().zip(values) {
            let spec = &layout.columns[column];
            let json = decode_sql(&spec.decoder, value).map_err(|cause| {
                ScanError::Fatal(format!(
                    "cannot decode column `{}` of {}.{}: {cause}; exclude the column or the \
                     table, or report its type",
                    spec.name, layout.database, layout.table
                ))
            })?;
            after.insert(spec.name.clone(), json);
        }
        let key: Row = layout
            .key
            .iter()
            .map(|&k| {
                let name = &layout.columns[k].name;
                (
                    name.clone(),
                    after.get(name).cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        let key_text = super::tracker::key_text(&key);
        out.push(SnapshotRow {
            bytes: crate::source::row_bytes(&after) + crate::source::CHANGE_OVERHEAD,
            key,
            key_text,
            after,
        });
    }
    Ok((out, last_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_page_lexicographically() {
        let keys = vec!["`cc`".to_string(), "`pid`".to_string(), "`id`".to_string()];
        assert_eq!(
            after_condition(&keys),
            "(`cc` > ?) OR (`cc` = ? AND `pid` > ?) OR (`cc` = ? AND `pid` = ? AND `id` > ?)"
        );
        let after = vec![
            KeyValue::Bytes("Tkw=".into()),
            KeyValue::Bytes("RVhB".into()),
            KeyValue::Int(9),
        ];
        let params = after_params(&after);
        assert_eq!(params.len(), 6);
        assert_eq!(params[5], mysql_async::Value::Int(9));
        assert_eq!(params[3], mysql_async::Value::Bytes(b"NL".to_vec()));
        assert_eq!(after_condition(&keys[..1]), "(`cc` > ?)");
    }
}
