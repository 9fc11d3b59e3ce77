//! Binlog headroom: how long until the server purges the binlog the bridge's checkpoint needs.
//!
//! A purged binlog is the usual way change capture fails on a restart, and it is noticed only
//! then: the bridge resumes from its checkpoint, the server no longer has that file, and every
//! partner needs a re-sync. The server decides by age, so the danger can be seen coming.
//! Every `source.binlog_headroom_check_secs` (60 s), on a connection of its own, this reads
//! the server's retention setting and its binlog files and measures, from the checkpoint (the
//! read position until the first one is saved):
//!
//! - **bytes**: binlog the server holds before the checkpoint (the files before its file, plus
//!   its position in that file): what must be purged before the checkpoint's file goes;
//! - **seconds**: how long until the checkpoint's file may be purged. The server removes a
//!   file once its last write is older than the retention (MySQL and MariaDB compare the file's
//!   modification time, at a rotation, a `FLUSH BINARY LOGS` or a start). A file's last write
//!   is the moment the next file began, which the next file's first event records
//!   ([`crate::source::binlog_file_time`]); so the headroom is the retention less the time
//!   since the checkpoint's file was closed. A checkpoint in the file being written has at
//!   least the whole retention ahead of it. Purges run only at rotations, so the real purge
//!   comes at or after the time given: the figure errs on the safe side.
//!
//! A server that never purges by age (every retention setting 0) is reported as such (`null`
//! in `/status`, `+Inf` in the gauges), not as zero headroom. The gauges live in
//! [`crate::metrics`]. It warns at each measurement while the headroom is below
//! `source.binlog_headroom_warning_secs`, and once (again when the setting changes) when the
//! retention is shorter than `source.min_binlog_retention_secs`, naming the statement that
//! raises it.

use crate::binlog_list::BinlogFile;
use crate::config::SourceConfig;
use crate::metrics::{BridgeMetrics, Position};
use crate::preflight;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where the server's retention comes from, named as an operator sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionSetting {
    /// MySQL 8, MariaDB 10.6+.
    BinlogExpireLogsSeconds,
    /// MySQL 5.7, MariaDB before 10.6 (a fraction of a day on MariaDB).
    ExpireLogsDays,
    /// MySQL 8.4+: `binlog_expire_logs_auto_purge = OFF` turns every age-based purge off.
    BinlogExpireLogsAutoPurge,
    /// Amazon RDS and Aurora: `binlog retention hours` (`mysql.rds_show_configuration`); the
    /// server's own variables are not what purges there.
    RdsBinlogRetentionHours,
}

impl RetentionSetting {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionSetting::BinlogExpireLogsSeconds => "binlog_expire_logs_seconds",
            RetentionSetting::ExpireLogsDays => "expire_logs_days",
            RetentionSetting::BinlogExpireLogsAutoPurge => "binlog_expire_logs_auto_purge",
            RetentionSetting::RdsBinlogRetentionHours => "binlog retention hours (RDS)",
        }
    }
}

/// How long the server keeps a binlog file after its last write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// `None`: never purged by age.
    pub seconds: Option<u64>,
    pub setting: RetentionSetting,
}

/// What the server says about retention; `None` where a variable does not exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionVariables {
    pub binlog_expire_logs_seconds: Option<u64>,
    pub expire_logs_days: Option<f64>,
    pub auto_purge: Option<bool>,
    /// `Some(None)`: RDS with `binlog retention hours` NULL (its default).
    pub rds_retention_hours: Option<Option<u64>>,
}

impl RetentionVariables {
    /// The retention in force. RDS first (it purges by its own setting); then MySQL 8.4's
    /// switch; then `binlog_expire_logs_seconds` (it wins over `expire_logs_days` on MySQL 8,
    /// and the two are one setting on MariaDB 10.6+); then `expire_logs_days`.
    pub fn retention(&self) -> Retention {
        if let Some(hours) = self.rds_retention_hours {
            // NULL: RDS for MySQL keeps no binlog (Aurora cleans up lazily, usually within a
            // day): take it as none kept.
            return Retention {
                seconds: Some(hours.unwrap_or(0).saturating_mul(3600)),
                setting: RetentionSetting::RdsBinlogRetentionHours,
            };
        }
        if self.auto_purge == Some(false) {
            return Retention {
                seconds: None,
                setting: RetentionSetting::BinlogExpireLogsAutoPurge,
            };
        }
        if let Some(seconds) = self.binlog_expire_logs_seconds.filter(|s| *s > 0) {
            return Retention {
                seconds: Some(seconds),
                setting: RetentionSetting::BinlogExpireLogsSeconds,
            };
        }
        if let Some(days) = self.expire_logs_days.filter(|d| *d > 0.0) {
            return Retention {
                seconds: Some((days * 86_400.0).round() as u64),
                setting: RetentionSetting::ExpireLogsDays,
            };
        }
        let setting = if self.binlog_expire_logs_seconds.is_some() {
            RetentionSetting::BinlogExpireLogsSeconds
        } else {
            RetentionSetting::ExpireLogsDays
        };
        Retention {
            seconds: None,
            setting,
        }
    }
}

/// The statement that sets the retention to `seconds` on this server.
pub fn raise_statement(is_mariadb: bool, setting: RetentionSetting, seconds: u64) -> String {
    let hours = seconds.div_ceil(3600).max(1);
    let days = seconds.div_ceil(86_400).max(1);
    match (setting, is_mariadb) {
        (RetentionSetting::RdsBinlogRetentionHours, _) => {
            format!("CALL mysql.rds_set_configuration('binlog retention hours', {hours})")
        }
        (RetentionSetting::ExpireLogsDays, true) => format!(
            "SET GLOBAL expire_logs_days = {days}, and expire_logs_days = {days} in the server's \
             configuration file so that it survives a restart"
        ),
        (_, true) => format!(
            "SET GLOBAL binlog_expire_logs_seconds = {seconds}, and binlog_expire_logs_seconds = \
             {seconds} in the server's configuration file so that it survives a restart"
        ),
        (RetentionSetting::ExpireLogsDays, false) => format!(
            "SET GLOBAL expire_logs_days = {days}, and the same in the server's configuration \
             file (MySQL 8: SET PERSIST binlog_expire_logs_seconds = {seconds})"
        ),
        (_, false) => format!("SET PERSIST binlog_expire_logs_seconds = {seconds}"),
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headroom {
    /// The position measured from: the checkpoint, or the read position before the first
    /// checkpoint was saved.
    pub from: Position,
    /// "checkpoint" or "read position".
    pub from_kind: &'static str,
    /// Binlog bytes the server holds before `from` (0 when its file is gone).
    pub bytes: u64,
    /// Seconds until `from`'s file may be purged; `None` when the server never purges by age
    /// (see `never_purged`) or when its closing time could not be read.
    pub seconds: Option<u64>,
    /// The server purges no binlog by age: the headroom has no time limit.
    pub never_purged: bool,
    /// `from`'s file is no longer on the server.
    pub purged: bool,
    pub retention_s: Option<u64>,
    pub retention_setting: RetentionSetting,
    pub oldest_file: String,
    /// Seconds since the oldest file the server holds was started.
    pub oldest_age_s: Option<u64>,
    /// Binlog bytes from `from` to the server's end (what the bridge has yet to get past).
    pub behind_bytes: u64,
}

/// The first-event times (seconds since the epoch) of files that a measurement needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileTimes {
    /// When the file after `from`'s was started: when `from`'s file was closed.
    pub next_started: Option<u32>,
    /// When the oldest file was started.
    pub oldest_started: Option<u32>,
}

/// Which files' start times a measurement from `from` needs: the file after `from`'s (none when
/// `from` is in the last file or gone) and the oldest file.
pub fn files_to_time<'a>(
    files: &'a [BinlogFile],
    from: &str,
) -> (Option<&'a str>, Option<&'a str>) {
    let next = files
        .iter()
        .position(|(name, _)| name == from)
        .and_then(|i| files.get(i + 1))
        .map(|(name, _)| name.as_str());
    (next, files.first().map(|(name, _)| name.as_str()))
}

/// The arithmetic of one measurement (no I/O). `files`: `SHOW BINARY LOGS` in order.
pub fn measure(
    files: &[BinlogFile],
    from: &Position,
    from_kind: &'static str,
    retention: Retention,
    times: FileTimes,
    now_unix: u64,
) -> Headroom {
    let index = files.iter().position(|(name, _)| *name == from.file);
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    let (bytes, purged) = match index {
        Some(i) => (
            files[..i].iter().map(|(_, size)| size).sum::<u64>() + from.pos.min(files[i].1),
            false,
        ),
        None => (0, true),
    };
    let behind_bytes = if purged {
        total
    } else {
        total.saturating_sub(bytes)
    };
    let is_last = index.is_some_and(|i| i + 1 == files.len());
    let seconds = match (retention.seconds, purged) {
        (None, _) => None,
        (Some(_), true) => Some(0),
        (Some(keep), false) if is_last => Some(keep),
        (Some(keep), false) => times
            .next_started
            .map(|closed| keep.saturating_sub(now_unix.saturating_sub(u64::from(closed)))),
    };
    Headroom {
        from: from.clone(),
        from_kind,
        bytes,
        seconds,
        never_purged: retention.seconds.is_none(),
        purged,
        retention_s: retention.seconds,
        retention_setting: retention.setting,
        oldest_file: files.first().map(|(n, _)| n.clone()).unwrap_or_default(),
        oldest_age_s: times
            .oldest_started
            .map(|t| now_unix.saturating_sub(u64::from(t))),
        behind_bytes,
    }
}

/// The warning of a measurement below `warning_s`, or `None`.
pub fn headroom_warning(
    headroom: &Headroom,
    warning_s: u64,
    is_mariadb: bool,
    min_retention_s: u64,
) -> Option<String> {
    let seconds = headroom.seconds?;
    if warning_s == 0 || seconds >= warning_s {
        return None;
    }
    let from = &headroom.from;
    let raise = raise_statement(
        is_mariadb,
        headroom.retention_setting,
        min_retention_s.max(warning_s.saturating_mul(2)),
    );
    if headroom.purged {
        return Some(format!(
            "binlog file {} of the bridge's {} {}:{} is no longer on the server (it keeps {} and \
             later): the changes in between are lost to the bridge; it will stop at its next \
             start. Re-sync every partner (README \"Where it starts, and the checkpoint\")",
            from.file, headroom.from_kind, from.file, from.pos, headroom.oldest_file
        ));
    }
    let retention = headroom.retention_s.unwrap_or(0);
    Some(format!(
        "binlog headroom is {seconds} s ({}), below source.binlog_headroom_warning_secs \
         ({warning_s} s): the server may purge binlog file {}, which the bridge's {} {}:{} needs, \
         in {seconds} s or soon after (its retention is {retention} s, by {}). If that happens \
         before the bridge gets past it, the bridge cannot resume and every partner needs a \
         re-sync. Get the bridge caught up ({} binlog bytes from its {} to the server's end; \
         check the broker, the bridge's log and /status), or raise the retention now: {raise}",
        human(seconds),
        from.file,
        headroom.from_kind,
        from.file,
        from.pos,
        headroom.retention_setting.as_str(),
        headroom.behind_bytes,
        headroom.from_kind,
    ))
}

/// The start-up warning about a retention shorter than `min_retention_s`, or `None`.
pub fn retention_warning(
    retention: Retention,
    min_retention_s: u64,
    is_mariadb: bool,
) -> Option<String> {
    let seconds = retention.seconds?;
    if seconds >= min_retention_s {
        return None;
    }
    Some(format!(
        "the server keeps binlogs for {seconds} s ({}, by {}), less than \
         source.min_binlog_retention_secs ({min_retention_s} s, {}): a bridge stopped, or a \
         broker down, for longer than that loses its place in the binlog, and every partner then \
         needs a re-sync. Raise the retention: {} (managed services: README \"Managed servers\")",
        human(seconds),
        retention.setting.as_str(),
        human(min_retention_s),
        raise_statement(is_mariadb, retention.setting, min_retention_s)
    ))
}

/// `3 d 4 h`, `5 h 2 min`, `42 s`: for messages.
pub fn human(seconds: u64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {} s", seconds % 60)
    } else {
        format!("{seconds} s")
    }
}

/// One line about the server's retention for `bridge check`: what it keeps, or the start-up
/// warning when that is less than `source.min_binlog_retention_secs`.
pub async fn retention_report(source: &SourceConfig) -> Result<String, String> {
    let mut conn = preflight::connect(source)
        .await
        .map_err(|e| e.to_string())?;
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| e.to_string())?;
    let is_mariadb = version
        .unwrap_or_default()
        .to_lowercase()
        .contains("mariadb");
    let retention = read_variables(&mut conn).await?.retention();
    let _ = conn.disconnect().await;
    let setting = retention.setting.as_str();
    Ok(match retention.seconds {
        None => {
            format!("binlog retention: none by age ({setting} = 0): the headroom has no time limit")
        }
        Some(seconds) => {
            match retention_warning(retention, source.min_binlog_retention_secs, is_mariadb) {
                Some(warning) => format!("WARNING: {warning}"),
                None => format!("binlog retention: {} ({setting})", human(seconds)),
            }
        }
    })
}

// ---- the watcher -------------------------------------------------------------------------------

/// What the watcher keeps between measurements.
struct Watcher {
    source: SourceConfig,
    metrics: Arc<BridgeMetrics>,
    conn: Option<mysql_async::Conn>,
    is_mariadb: bool,
    /// First-event times of files, by name (they never change).
    started: HashMap<String, u32>,
    /// The retention last warned about (or accepted), so the start-up warning is not repeated.
    judged: Option<Retention>,
    failing: bool,
}

/// Reads the retention variables over `conn`.
async fn read_variables(conn: &mut mysql_async::Conn) -> Result<RetentionVariables, String> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('binlog_expire_logs_seconds', \
             'expire_logs_days', 'binlog_expire_logs_auto_purge')",
        )
        .await
        .map_err(|e| format!("cannot read the binlog retention variables: {e}"))?;
    let mut vars = RetentionVariables::default();
    for (name, value) in rows {
        match name.to_ascii_lowercase().as_str() {
            "binlog_expire_logs_seconds" => vars.binlog_expire_logs_seconds = value.parse().ok(),
            "expire_logs_days" => vars.expire_logs_days = value.parse().ok(),
            "binlog_expire_logs_auto_purge" => {
                vars.auto_purge = Some(!matches!(value.to_ascii_uppercase().as_str(), "OFF" | "0"))
            }
            _ => {}
        }
    }
    // Amazon RDS and Aurora: the procedure exists only there; elsewhere (or when the user may
    // not call it) this fails and the server's own variables apply.
    if let Ok(rows) = conn
        .query::<mysql_async::Row, _>("CALL mysql.rds_show_configuration")
        .await
    {
        for row in rows {
            let name: Option<String> = row.get_opt(0).and_then(|r| r.ok());
            if name.as_deref() == Some("binlog retention hours") {
                let value: Option<String> = row.get_opt(1).and_then(|r| r.ok());
                vars.rds_retention_hours = Some(value.and_then(|v| v.trim().parse().ok()));
            }
        }
    }
    Ok(vars)
}

impl Watcher {
    async fn connection(&mut self) -> Result<&mut mysql_async::Conn, String> {
        if self.conn.is_none() {
            let mut conn = preflight::connect(&self.source)
                .await
                .map_err(|e| e.to_string())?;
            let version: Option<String> = conn
                .query_first("SELECT VERSION()")
                .await
                .map_err(|e| e.to_string())?;
            self.is_mariadb = version
                .unwrap_or_default()
                .to_lowercase()
                .contains("mariadb");
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| "no connection".to_string())
    }

    /// The start time of `file`, read once and remembered (`None` when it cannot be read:
    /// logged at debug level, tried again at the next measurement).
    async fn started_at(&mut self, file: &str) -> Option<u32> {
        if let Some(t) = self.started.get(file) {
            return Some(*t);
        }
        let conn = match preflight::connect(&self.source).await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::debug!(%error, file, "binlog headroom: cannot connect to read a file's start");
                return None;
            }
        };
        match crate::source::binlog_file_time::started_at(conn, file).await {
            Ok(t) => {
                self.started.insert(file.to_string(), t);
                Some(t)
            }
            Err(error) => {
                tracing::debug!(%error, file, "binlog headroom: cannot read when the file began");
                None
            }
        }
    }

    async fn measure_once(&mut self, settings: &Settings) -> Result<Option<Headroom>, String> {
        let conn = self.connection().await?;
        let vars = read_variables(conn).await?;
        let files = crate::binlog_list::show_binary_logs(conn).await?;
        let is_mariadb = self.is_mariadb;
        let retention = vars.retention();
        if self.judged != Some(retention) {
            self.judged = Some(retention);
            match retention.seconds {
                None => tracing::info!(
                    setting = retention.setting.as_str(),
                    "binlog retention: the server purges no binlog by age (every retention \
                     setting is 0): the binlog headroom has no time limit; mind the server's disk"
                ),
                Some(seconds) => {
                    match retention_warning(retention, settings.min_retention_s, is_mariadb) {
                        Some(warning) => tracing::warn!(retention_s = seconds, "{warning}"),
                        None => tracing::info!(
                            retention_s = seconds,
                            setting = retention.setting.as_str(),
                            "binlog retention: the server keeps binlogs for {}",
                            human(seconds)
                        ),
                    }
                }
            }
        }
        self.started
            .retain(|name, _| files.iter().any(|(n, _)| n == name));
        let (from, from_kind) = match self.metrics.headroom_position() {
            Some(found) => found,
            None => return Ok(None),
        };
        let (next, oldest) = files_to_time(&files, &from.file);
        let (next, oldest) = (next.map(str::to_string), oldest.map(str::to_string));
        let mut times = FileTimes::default();
        if let Some(next) = next {
            times.next_started = self.started_at(&next).await;
        }
        if let Some(oldest) = oldest {
            times.oldest_started = self.started_at(&oldest).await;
        }
        let now = crate::metrics::unix_secs_now();
        Ok(Some(measure(
            &files, &from, from_kind, retention, times, now,
        )))
    }
}

/// The watcher's settings, from `[source]`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub every: Duration,
    pub warning_s: u64,
    pub min_retention_s: u64,
}

impl Settings {
    pub fn of(source: &SourceConfig) -> Settings {
        Settings {
            every: Duration::from_secs(source.binlog_headroom_check_secs),
            warning_s: source.binlog_headroom_warning_secs,
            min_retention_s: source.min_binlog_retention_secs,
        }
    }
}

/// Measures the headroom until `stop`, keeping it in `metrics` (`None` while the server cannot
/// be asked) and warning as the module doc says.
pub async fn watch(
    source: SourceConfig,
    metrics: Arc<BridgeMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let settings = Settings::of(&source);
    let mut watcher = Watcher {
        source,
        metrics: metrics.clone(),
        conn: None,
        is_mariadb: false,
        started: HashMap::new(),
        judged: None,
        failing: false,
    };
    loop {
        match watcher.measure_once(&settings).await {
            Ok(reading) => {
                watcher.failing = false;
                if let Some(headroom) = &reading {
                    if let Some(warning) = headroom_warning(
                        headroom,
                        settings.warning_s,
                        watcher.is_mariadb,
                        settings.min_retention_s,
                    ) {
                        tracing::warn!(
                            headroom_s = headroom.seconds,
                            headroom_bytes = headroom.bytes,
                            file = %headroom.from.file,
                            "{warning}"
                        );
                    }
                }
                metrics.set_headroom(reading);
            }
            Err(error) => {
                if !watcher.failing {
                    tracing::warn!(%error, "binlog headroom unknown: cannot ask the server");
                }
                watcher.failing = true;
                metrics.set_headroom(None);
                if let Some(conn) = watcher.conn.take() {
                    let _ = conn.disconnect().await;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.every) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    if let Some(conn) = watcher.conn {
        let _ = conn.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::binlog_list::fixtures::{at, files};

    fn keep(seconds: u64) -> Retention {
        Retention {
            seconds: Some(seconds),
            setting: RetentionSetting::BinlogExpireLogsSeconds,
        }
    }

    const NEVER: Retention = Retention {
        seconds: None,
        setting: RetentionSetting::BinlogExpireLogsSeconds,
    };

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn bytes_are_the_files_before_the_checkpoint_plus_its_position() {
        let list = files(&[("b.1", 1000), ("b.2", 500), ("b.3", 300)]);
        let h = measure(
            &list,
            &at("b.1", 4),
            "checkpoint",
            keep(3600),
            FileTimes::default(),
            NOW,
        );
        assert_eq!((h.bytes, h.behind_bytes), (4, 1796));
        let h = measure(
            &list,
            &at("b.2", 120),
            "checkpoint",
            keep(3600),
            FileTimes::default(),
            NOW,
        );
        assert_eq!((h.bytes, h.behind_bytes), (1120, 680));
        let h = measure(
            &list,
            &at("b.3", 300),
            "checkpoint",
            keep(3600),
            FileTimes::default(),
            NOW,
        );
        assert_eq!((h.bytes, h.behind_bytes), (1800, 0));
        assert_eq!(h.oldest_file, "b.1");
    }

    #[test]
    fn seconds_are_the_retention_less_the_time_since_the_checkpoints_file_was_closed() {
        let list = files(&[("b.1", 1000), ("b.2", 500), ("b.3", 300)]);
        // b.2 was closed when b.3 began, 1000 s ago: 3600 - 1000 left.
        let times = FileTimes {
            next_started: Some((NOW - 1000) as u32),
            oldest_started: Some((NOW - 5000) as u32),
        };
        let h = measure(&list, &at("b.2", 120), "checkpoint", keep(3600), times, NOW);
        assert_eq!(h.seconds, Some(2600));
        assert_eq!(h.oldest_age_s, Some(5000));
        assert!(!h.never_purged && !h.purged);
        // Closed longer ago than the retention: due at the next purge, never negative.
        let times = FileTimes {
            next_started: Some((NOW - 9000) as u32),
            oldest_started: None,
        };
        let h = measure(&list, &at("b.2", 120), "checkpoint", keep(3600), times, NOW);
        assert_eq!(h.seconds, Some(0));
        // The closing time could not be read: unknown, not zero and not unlimited.
        let h = measure(
            &list,
            &at("b.2", 120),
            "checkpoint",
            keep(3600),
            FileTimes::default(),
            NOW,
        );
        assert_eq!(h.seconds, None);
        assert!(!h.never_purged);
    }

    #[test]
    fn a_checkpoint_in_the_file_being_written_has_the_whole_retention_ahead() {
        let list = files(&[("b.1", 1000), ("b.2", 500)]);
        let h = measure(
            &list,
            &at("b.2", 400),
            "checkpoint",
            keep(7200),
            FileTimes::default(),
            NOW,
        );
        assert_eq!(h.seconds, Some(7200));
    }

    #[test]
    fn a_server_that_never_purges_is_unlimited_not_zero() {
        let list = files(&[("b.1", 1000), ("b.2", 500)]);
        let times = FileTimes {
            next_started: Some((NOW - 1_000_000) as u32),
            oldest_started: None,
        };
        let h = measure(&list, &at("b.1", 400), "checkpoint", NEVER, times, NOW);
        assert_eq!(h.seconds, None);
        assert!(h.never_purged);
        assert_eq!(h.retention_s, None);
        assert_eq!(headroom_warning(&h, 86_400, true, 259_200), None);
    }

    #[test]
    fn a_checkpoint_whose_file_is_gone_has_no_headroom_and_says_to_resync() {
        let list = files(&[("b.5", 1000), ("b.6", 500)]);
        let h = measure(
            &list,
            &at("b.2", 400),
            "checkpoint",
            keep(3600),
            FileTimes::default(),
            NOW,
        );
        assert!(h.purged);
        assert_eq!((h.bytes, h.seconds, h.behind_bytes), (0, Some(0), 1500));
        let text = headroom_warning(&h, 86_400, true, 259_200).unwrap();
        assert!(
            text.contains("b.2") && text.contains("b.5") && text.contains("Re-sync"),
            "{text}"
        );
    }

    #[test]
    fn the_timed_files_are_the_one_after_the_checkpoints_and_the_oldest() {
        let list = files(&[("b.1", 1000), ("b.2", 500), ("b.3", 300)]);
        assert_eq!(files_to_time(&list, "b.2"), (Some("b.3"), Some("b.1")));
        assert_eq!(files_to_time(&list, "b.3"), (None, Some("b.1")));
        assert_eq!(files_to_time(&list, "b.0"), (None, Some("b.1")));
        assert_eq!(files_to_time(&[], "b.0"), (None, None));
    }

    #[test]
    fn the_headroom_warning_comes_below_the_threshold_with_what_to_do() {
        let list = files(&[("b.1", 1000), ("b.2", 500)]);
        let times = FileTimes {
            next_started: Some((NOW - 1000) as u32),
            oldest_started: None,
        };
        let h = measure(&list, &at("b.1", 400), "checkpoint", keep(3600), times, NOW);
        assert_eq!(h.seconds, Some(2600));
        assert_eq!(headroom_warning(&h, 2600, true, 259_200), None, "not below");
        assert_eq!(headroom_warning(&h, 0, true, 259_200), None, "turned off");
        let text = headroom_warning(&h, 86_400, true, 259_200).unwrap();
        for part in [
            "2600 s",
            "binlog_headroom_warning_secs",
            "b.1:400",
            "caught up",
            "1100 binlog bytes",
            "SET GLOBAL binlog_expire_logs_seconds = 259200",
        ] {
            assert!(text.contains(part), "{part:?} missing: {text}");
        }
    }

    #[test]
    fn the_retention_warning_names_the_setting_and_the_statement() {
        assert_eq!(retention_warning(keep(259_200), 259_200, true), None);
        assert_eq!(retention_warning(NEVER, 259_200, true), None);
        let text = retention_warning(keep(3600), 259_200, true).unwrap();
        for part in [
            "3600 s",
            "binlog_expire_logs_seconds",
            "min_binlog_retention_secs",
            "SET GLOBAL binlog_expire_logs_seconds = 259200",
        ] {
            assert!(text.contains(part), "{part:?} missing: {text}");
        }
        let text = retention_warning(keep(3600), 259_200, false).unwrap();
        assert!(
            text.contains("SET PERSIST binlog_expire_logs_seconds = 259200"),
            "{text}"
        );
        let rds = Retention {
            seconds: Some(0),
            setting: RetentionSetting::RdsBinlogRetentionHours,
        };
        let text = retention_warning(rds, 259_200, false).unwrap();
        assert!(
            text.contains("CALL mysql.rds_set_configuration('binlog retention hours', 72)"),
            "{text}"
        );
    }

    #[test]
    fn the_retention_in_force_follows_each_servers_rules() {
        // MariaDB 10.6+: the two variables are one setting.
        let vars = RetentionVariables {
            binlog_expire_logs_seconds: Some(43_200),
            expire_logs_days: Some(0.5),
            ..RetentionVariables::default()
        };
        assert_eq!(vars.retention(), keep(43_200));
        // MySQL 8: seconds win over days; days apply when seconds are 0.
        let vars = RetentionVariables {
            binlog_expire_logs_seconds: Some(0),
            expire_logs_days: Some(2.0),
            ..RetentionVariables::default()
        };
        assert_eq!(
            vars.retention(),
            Retention {
                seconds: Some(172_800),
                setting: RetentionSetting::ExpireLogsDays
            }
        );
        // MariaDB before 10.6: days only, fractions allowed.
        let vars = RetentionVariables {
            expire_logs_days: Some(0.25),
            ..RetentionVariables::default()
        };
        assert_eq!(vars.retention().seconds, Some(21_600));
        // Every setting 0: never purged, named by the variable the server has.
        let vars = RetentionVariables {
            binlog_expire_logs_seconds: Some(0),
            expire_logs_days: Some(0.0),
            ..RetentionVariables::default()
        };
        assert_eq!(vars.retention(), NEVER);
        // MySQL 8.4 with automatic purging off.
        let vars = RetentionVariables {
            binlog_expire_logs_seconds: Some(2_592_000),
            auto_purge: Some(false),
            ..RetentionVariables::default()
        };
        assert_eq!(vars.retention().seconds, None);
        // RDS: its own setting, NULL keeps nothing.
        let vars = RetentionVariables {
            binlog_expire_logs_seconds: Some(2_592_000),
            rds_retention_hours: Some(None),
            ..RetentionVariables::default()
        };
        assert_eq!(vars.retention().seconds, Some(0));
        let vars = RetentionVariables {
            rds_retention_hours: Some(Some(72)),
            ..RetentionVariables::default()
        };
        assert_eq!(vars.retention().seconds, Some(259_200));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(42), "42 s");
        assert_eq!(human(125), "2 min 5 s");
        assert_eq!(human(3600 * 5 + 120), "5 h 2 min");
        assert_eq!(human(86_400 * 3 + 3600 * 4), "3 d 4 h");
    }
}
