//! Binlog lag: how much of the server's binlog the bridge has not read yet.
//!
//! Every [`POLL_EVERY`] a plain SQL connection asks the server for its binlog files and their
//! sizes (`SHOW BINARY LOGS`: the last file's size is the end of the binlog). The lag in bytes
//! is what lies between the last transaction boundary the pipeline took from the reader and
//! that end, across files. [`crate::metrics::lag_seconds`] turns it into seconds.
//!
//! One case needs more than positions: a fresh binlog file starts with header events (format
//! description, GTID list, binlog checkpoint) that no transaction boundary follows until the
//! next write, so an idle bridge would look a few hundred bytes behind forever. The server's
//! replication heartbeats settle it: the server sends one only when it has nothing left to
//! send, so a heartbeat taken by the pipeline after one reading, with the end unchanged at the
//! next, proves the reader had everything up to that end.

use crate::config::SourceConfig;
use crate::metrics::{BridgeMetrics, LagReading, Position};
use crate::preflight;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const POLL_EVERY: Duration = Duration::from_secs(5);

pub use crate::binlog_list::BinlogFile;

/// Turns successive readings of the server's binlog files into lag readings.
#[derive(Debug, Default)]
pub struct LagTracker {
    previous_end: Option<(String, u64)>,
    marks_at_previous: u64,
    /// A point up to which the reader provably had everything (see the module doc).
    caught_up_to: Option<(String, u64)>,
    caught_up_at: Option<Instant>,
}

impl LagTracker {
    /// `files`: the server's binlog files in order, read just now. `read`: the last boundary
    /// the pipeline took. `alive_marks`: the server heartbeats it has taken so far, loaded
    /// after `files` was read.
    pub fn observe(
        &mut self,
        files: &[BinlogFile],
        read: Option<&Position>,
        alive_marks: u64,
        now: Instant,
    ) -> Option<LagReading> {
        let (end_file, end_pos) = files.last()?.clone();
        let end = (end_file.clone(), end_pos);
        if alive_marks > self.marks_at_previous && self.previous_end.as_ref() == Some(&end) {
            self.caught_up_to = Some(end.clone());
        }
        self.previous_end = Some(end);
        self.marks_at_previous = alive_marks;
        let read = read.map(|p| (p.file.as_str(), p.pos));
        let proven = self.caught_up_to.as_ref().map(|(f, p)| (f.as_str(), *p));
        let from = match (read, proven) {
            (Some(a), Some(b)) => {
                if order(files, a) >= order(files, b) {
                    a
                } else {
                    b
                }
            }
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        let bytes = bytes_after(files, from);
        if bytes == 0 {
            self.caught_up_at = Some(now);
        }
        Some(LagReading {
            bytes,
            server_end: Position {
                file: end_file,
                pos: end_pos,
                gtid: None,
            },
            caught_up_at: self.caught_up_at,
        })
    }
}

/// Sort key of a position in binlog order; a file the server no longer lists sorts first.
fn order(files: &[BinlogFile], (file, pos): (&str, u64)) -> (i64, u64) {
    let index = files
        .iter()
        .position(|(name, _)| name == file)
        .map(|i| i as i64)
        .unwrap_or(-1);
    (index, pos)
}

/// Bytes of binlog after `(file, pos)` up to the end of the last file.
pub fn bytes_after(files: &[BinlogFile], (file, pos): (&str, u64)) -> u64 {
    match files.iter().position(|(name, _)| name == file) {
        Some(i) => {
            files[i].1.saturating_sub(pos)
                + files[i + 1..].iter().map(|(_, size)| size).sum::<u64>()
        }
        // Read from a file the server no longer lists: everything it has is ahead.
        None => files.iter().map(|(_, size)| size).sum(),
    }
}

async fn binlog_files(
    source: &SourceConfig,
    connection: &mut Option<mysql_async::Conn>,
) -> Result<Vec<BinlogFile>, String> {
    if connection.is_none() {
        *connection = Some(
            preflight::connect(source)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let Some(conn) = connection.as_mut() else {
        return Err("no connection".into());
    };
    crate::binlog_list::show_binary_logs(conn).await
}

/// Polls the server's binlog end until `stop`, keeping the lag in `metrics` (`None` while the
/// server cannot be asked, which the endpoints show as unknown).
pub async fn poll(
    source: SourceConfig,
    metrics: Arc<BridgeMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tracker = LagTracker::default();
    let mut connection = None;
    let mut failing = false;
    loop {
        match binlog_files(&source, &mut connection).await {
            Ok(files) => {
                failing = false;
                let read = metrics.read_position();
                let marks = metrics.alive_marks();
                metrics.set_lag(tracker.observe(&files, read.as_ref(), marks, Instant::now()));
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "binlog lag unknown: cannot read the server's binlog end");
                }
                failing = true;
                metrics.set_lag(None);
                if let Some(conn) = connection.take() {
                    let _ = conn.disconnect().await;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    if let Some(conn) = connection {
        let _ = conn.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::binlog_list::fixtures::{at, files};

    #[test]
    fn bytes_are_counted_across_files() {
        let list = files(&[("b.1", 1000), ("b.2", 500), ("b.3", 300)]);
        assert_eq!(bytes_after(&list, ("b.3", 300)), 0);
        assert_eq!(bytes_after(&list, ("b.3", 100)), 200);
        assert_eq!(bytes_after(&list, ("b.1", 900)), 100 + 500 + 300);
        assert_eq!(bytes_after(&list, ("b.0", 4)), 1800);
    }

    #[test]
    fn a_reader_at_the_end_is_caught_up() {
        let mut tracker = LagTracker::default();
        let now = Instant::now();
        let list = files(&[("b.1", 1000), ("b.2", 700)]);
        let r = tracker
            .observe(&list, Some(&at("b.2", 700)), 0, now)
            .unwrap();
        assert_eq!(r.bytes, 0);
        assert_eq!(r.caught_up_at, Some(now));
        assert_eq!(r.server_end, at("b.2", 700));
        let r = tracker
            .observe(
                &list,
                Some(&at("b.1", 400)),
                0,
                now + Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(r.bytes, 600 + 700);
        assert_eq!(
            r.caught_up_at,
            Some(now),
            "the last caught-up reading is kept"
        );
    }

    #[test]
    fn the_header_of_a_fresh_file_counts_as_read_once_a_heartbeat_says_so() {
        let mut tracker = LagTracker::default();
        let now = Instant::now();
        // Rotated: the boundary is at 4, the file's header events end at 256.
        let list = files(&[("b.1", 1000), ("b.2", 256)]);
        let read = at("b.2", 4);
        assert_eq!(
            tracker.observe(&list, Some(&read), 3, now).unwrap().bytes,
            252
        );
        // No heartbeat since: still unproven.
        assert_eq!(
            tracker.observe(&list, Some(&read), 3, now).unwrap().bytes,
            252
        );
        // A heartbeat came and the end did not move: the reader had it all.
        assert_eq!(
            tracker.observe(&list, Some(&read), 4, now).unwrap().bytes,
            0
        );
        // A later write: behind again until the reader's boundary passes it.
        let list = files(&[("b.1", 1000), ("b.2", 900)]);
        assert_eq!(
            tracker.observe(&list, Some(&read), 4, now).unwrap().bytes,
            644
        );
        assert_eq!(
            tracker
                .observe(&list, Some(&at("b.2", 900)), 4, now)
                .unwrap()
                .bytes,
            0
        );
    }

    #[test]
    fn a_heartbeat_with_the_end_moving_proves_nothing() {
        let mut tracker = LagTracker::default();
        let now = Instant::now();
        let read = at("b.1", 100);
        tracker.observe(&files(&[("b.1", 500)]), Some(&read), 0, now);
        let r = tracker
            .observe(&files(&[("b.1", 800)]), Some(&read), 1, now)
            .unwrap();
        assert_eq!(r.bytes, 700);
    }

    #[test]
    fn nothing_read_and_nothing_proven_is_unknown() {
        let mut tracker = LagTracker::default();
        assert!(tracker
            .observe(&files(&[("b.1", 500)]), None, 0, Instant::now())
            .is_none());
        assert!(tracker.observe(&[], None, 0, Instant::now()).is_none());
    }
}
