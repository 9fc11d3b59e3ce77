//! The GTID state at a transaction boundary, in the server's own notation, so the checkpoint
//! names a position that survives a failover to another server of the same topology:
//! MariaDB's GTID list (`domain-server-seq` per domain) or MySQL's GTID set
//! (`uuid:1-100:105,uuid2:1-7`).

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid GTID {text:?}: {reason}")]
pub struct GtidError {
    text: String,
    reason: &'static str,
}

fn invalid(text: &str, reason: &'static str) -> GtidError {
    GtidError {
        text: text.to_string(),
        reason,
    }
}

/// Executed transactions as the server counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidState {
    /// Per replication domain, the last GTID: domain -> (server_id, sequence).
    MariaDb(BTreeMap<u32, (u32, u64)>),
    /// Per source uuid, the executed transaction numbers as sorted, disjoint, non-adjacent
    /// inclusive intervals.
    MySql(BTreeMap<String, Vec<(u64, u64)>>),
}

impl GtidState {
    pub fn parse_mariadb(text: &str) -> Result<GtidState, GtidError> {
        let mut domains = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (domain, server, seq) = parse_mariadb_gtid(item)?;
            if domains.insert(domain, (server, seq)).is_some() {
                return Err(invalid(text, "a domain appears twice"));
            }
        }
        Ok(GtidState::MariaDb(domains))
    }

    pub fn parse_mysql(text: &str) -> Result<GtidState, GtidError> {
        let mut set: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for item in text.split(',').map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let mut parts = item.split(':');
            let uuid = parts.next().unwrap_or_default().trim().to_lowercase();
            if !is_uuid(&uuid) {
                return Err(invalid(text, "not a uuid before ':'"));
            }
            let mut any = false;
            for range in parts {
                any = true;
                let (start, end) = match range.split_once('-') {
                    Some((a, b)) => (a.trim().parse(), b.trim().parse()),
                    None => (range.trim().parse(), range.trim().parse()),
                };
                let (Ok(start), Ok(end)) = (start, end) else {
                    return Err(invalid(text, "interval is not numbers"));
                };
                if start == 0 || end < start {
                    return Err(invalid(text, "interval must be n or n-m with 1 <= n <= m"));
                }
                let intervals = set.entry(uuid.clone()).or_default();
                intervals.push((start, end));
                intervals.sort_unstable();
                coalesce(intervals);
            }
            if !any {
                return Err(invalid(text, "a uuid without intervals"));
            }
        }
        Ok(GtidState::MySql(set))
    }

    /// Records one committed transaction's GTID (`0-1-5` or `uuid:5`).
    pub fn observe(&mut self, gtid: &str) -> Result<(), GtidError> {
        match self {
            GtidState::MariaDb(domains) => {
                let (domain, server, seq) = parse_mariadb_gtid(gtid)?;
                domains.insert(domain, (server, seq));
            }
            GtidState::MySql(set) => {
                let (uuid, n) = gtid
                    .rsplit_once(':')
                    .ok_or_else(|| invalid(gtid, "expected uuid:number"))?;
                let uuid = uuid.trim().to_lowercase();
                if !is_uuid(&uuid) {
                    return Err(invalid(gtid, "not a uuid before ':'"));
                }
                let n: u64 = n
                    .trim()
                    .parse()
                    .map_err(|_| invalid(gtid, "transaction number is not a number"))?;
                insert_number(set.entry(uuid).or_default(), n);
            }
        }
        Ok(())
    }
}

fn parse_mariadb_gtid(item: &str) -> Result<(u32, u32, u64), GtidError> {
    let mut parts = item.trim().split('-');
    let (Some(d), Some(s), Some(n), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(item, "expected domain-server-sequence"));
    };
    match (d.parse(), s.parse(), n.parse()) {
        (Ok(d), Ok(s), Ok(n)) => Ok((d, s, n)),
        _ => Err(invalid(item, "domain, server and sequence must be numbers")),
    }
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.chars().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn insert_number(intervals: &mut Vec<(u64, u64)>, n: u64) {
    let at = intervals.partition_point(|&(_, end)| end.saturating_add(1) < n);
    match intervals.get_mut(at) {
        Some((start, end)) if *start <= n.saturating_add(1) => {
            *start = (*start).min(n);
            *end = (*end).max(n);
        }
        _ => intervals.insert(at, (n, n)),
    }
    coalesce(intervals);
}

/// Merges overlapping or adjacent intervals of a sorted list.
fn coalesce(intervals: &mut Vec<(u64, u64)>) {
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(a, b) in intervals.iter() {
        match merged.last_mut() {
            Some((_, end)) if a <= end.saturating_add(1) => *end = (*end).max(b),
            _ => merged.push((a, b)),
        }
    }
    *intervals = merged;
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidState::MariaDb(domains) => {
                let items: Vec<String> = domains
                    .iter()
                    .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
                    .collect();
                f.write_str(&items.join(","))
            }
            GtidState::MySql(set) => {
                let items: Vec<String> = set
                    .iter()
                    .map(|(uuid, intervals)| {
                        let ranges: Vec<String> = intervals
                            .iter()
                            .map(|&(a, b)| {
                                if a == b {
                                    a.to_string()
                                } else {
                                    format!("{a}-{b}")
                                }
                            })
                            .collect();
                        format!("{uuid}:{}", ranges.join(":"))
                    })
                    .collect();
                f.write_str(&items.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4a6f7b2c-0d1e-11ee-8c90-0242ac120002";

    #[test]
    fn mariadb_list_keeps_the_last_gtid_per_domain() {
        let mut state = GtidState::parse_mariadb("0-1-100,1-2-7").unwrap();
        state.observe("0-1-101").unwrap();
        state.observe("2-3-1").unwrap();
        assert_eq!(state.to_string(), "0-1-101,1-2-7,2-3-1");
        assert!(GtidState::parse_mariadb("0-1-1,0-2-2").is_err());
        assert!(GtidState::parse_mariadb("0-1").is_err());
        assert_eq!(GtidState::parse_mariadb("").unwrap().to_string(), "");
    }

    #[test]
    fn mysql_set_merges_adjacent_and_overlapping_intervals() {
        let mut state = GtidState::parse_mysql(&format!("{A}:1-5:7-9, {B}:3")).unwrap();
        state.observe(&format!("{A}:6")).unwrap();
        assert_eq!(state.to_string(), format!("{A}:1-9,{B}:3"));
        state.observe(&format!("{B}:5")).unwrap();
        state.observe(&format!("{B}:4")).unwrap();
        assert_eq!(state.to_string(), format!("{A}:1-9,{B}:3-5"));
        state.observe(&format!("{B}:1")).unwrap();
        assert_eq!(state.to_string(), format!("{A}:1-9,{B}:1:3-5"));
    }

    #[test]
    fn mysql_set_parsing_normalises_and_validates() {
        let state = GtidState::parse_mysql(&format!("{}:5-9:1-3:4", A.to_uppercase())).unwrap();
        assert_eq!(state.to_string(), format!("{A}:1-9"));
        assert!(GtidState::parse_mysql("not-a-uuid:1-3").is_err());
        assert!(GtidState::parse_mysql(&format!("{A}:5-3")).is_err());
        assert!(GtidState::parse_mysql(&format!("{A}:0")).is_err());
        assert!(GtidState::parse_mysql(A).is_err());
        let mut empty = GtidState::parse_mysql("").unwrap();
        empty.observe(&format!("{A}:1")).unwrap();
        assert_eq!(empty.to_string(), format!("{A}:1"));
    }

    #[test]
    fn observing_a_malformed_gtid_is_an_error() {
        let mut maria = GtidState::parse_mariadb("0-1-1").unwrap();
        assert!(maria.observe("x").is_err());
        let mut mysql = GtidState::parse_mysql("").unwrap();
        assert!(mysql.observe("abc:1").is_err());
        assert!(mysql.observe(&format!("{A}:x")).is_err());
    }
}
