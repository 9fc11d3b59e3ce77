//! The GTID state at a transaction boundary, in the server's own notation, so the checkpoint
//! names a position that survives a failover to another server of the same topology:
//! MariaDB's GTID list (`domain-server-seq` per domain) or MySQL's GTID set
//! (`uuid:1-100:105,uuid2:1-7`, with MySQL 8.4's tagged GTIDs `uuid:1-5:tag:1-3`).

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
    /// Per source uuid (and tag: `uuid` or `uuid:tag`), the executed transaction numbers as
    /// sorted, disjoint, non-adjacent inclusive intervals.
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
            let mut key = uuid.clone();
            let mut pending_tag = false;
            let mut any = false;
            for range in parts.map(str::trim) {
                if range.starts_with(|c: char| c.is_ascii_digit()) {
                    any = true;
                    pending_tag = false;
                    let (start, end) = match range.split_once('-') {
                        Some((a, b)) => (a.trim().parse(), b.trim().parse()),
                        None => (range.parse(), range.parse()),
                    };
                    let (Ok(start), Ok(end)) = (start, end) else {
                        return Err(invalid(text, "interval is not numbers"));
                    };
                    if start == 0 || end < start {
                        return Err(invalid(text, "interval must be n or n-m with 1 <= n <= m"));
                    }
                    let intervals = set.entry(key.clone()).or_default();
                    intervals.push((start, end));
                    intervals.sort_unstable();
                    coalesce(intervals);
                } else {
                    if pending_tag {
                        return Err(invalid(text, "a tag without intervals"));
                    }
                    key = format!(
                        "{uuid}:{}",
                        tag(range).ok_or_else(|| invalid(text, "not a tag"))?
                    );
                    pending_tag = true;
                }
            }
            if !any || pending_tag {
                return Err(invalid(text, "a uuid or tag without intervals"));
            }
        }
        Ok(GtidState::MySql(set))
    }

    /// Takes in a state the server announces (a binlog file's GTID list or previous-GTIDs
    /// event), never going back: that event tells the state at the start of its file, which
    /// is behind the state already tracked when reading began inside the file (by GTID).
    /// MariaDB: per domain the higher sequence number; MySQL: the union of the sets.
    pub fn merge(&mut self, announced: GtidState) {
        match (self, announced) {
            (GtidState::MariaDb(mine), GtidState::MariaDb(theirs)) => {
                for (domain, (server, seq)) in theirs {
                    let newer = mine.get(&domain).is_none_or(|&(_, have)| seq > have);
                    if newer {
                        mine.insert(domain, (server, seq));
                    }
                }
            }
            (GtidState::MySql(mine), GtidState::MySql(theirs)) => {
                for (key, intervals) in theirs {
                    let held = mine.entry(key).or_default();
                    held.extend(intervals);
                    held.sort_unstable();
                    coalesce(held);
                }
            }
            (mine, theirs) => *mine = theirs,
        }
    }

    /// Records one committed transaction's GTID (`0-1-5` or `uuid:5`).
    pub fn observe(&mut self, gtid: &str) -> Result<(), GtidError> {
        match self {
            GtidState::MariaDb(domains) => {
                let (domain, server, seq) = parse_mariadb_gtid(gtid)?;
                domains.insert(domain, (server, seq));
            }
            GtidState::MySql(set) => {
                let parts: Vec<&str> = gtid.trim().split(':').collect();
                let (uuid, tag_part, n) = match parts.as_slice() {
                    [uuid, n] => (*uuid, None, *n),
                    [uuid, t, n] => (*uuid, Some(*t), *n),
                    _ => return Err(invalid(gtid, "expected uuid[:tag]:number")),
                };
                let uuid = uuid.trim().to_lowercase();
                if !is_uuid(&uuid) {
                    return Err(invalid(gtid, "not a uuid before ':'"));
                }
                let key = match tag_part {
                    Some(t) => format!(
                        "{uuid}:{}",
                        tag(t).ok_or_else(|| invalid(gtid, "not a tag"))?
                    ),
                    None => uuid,
                };
                let n: u64 = n
                    .trim()
                    .parse()
                    .map_err(|_| invalid(gtid, "transaction number is not a number"))?;
                insert_number(set.entry(key).or_default(), n);
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

/// A GTID tag (MySQL 8.4): a letter or `_`, then up to 31 letters, digits or `_`; compared
/// without case (normalised to lower case).
fn tag(text: &str) -> Option<String> {
    let text = text.trim().to_lowercase();
    let mut chars = text.chars();
    let first = chars.next()?;
    let ok = (first.is_ascii_lowercase() || first == '_')
        && text.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ok.then_some(text)
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
                let ranges = |intervals: &[(u64, u64)]| {
                    intervals
                        .iter()
                        .map(|&(a, b)| {
                            if a == b {
                                a.to_string()
                            } else {
                                format!("{a}-{b}")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(":")
                };
                // Keys sort with `uuid` before `uuid:tag`: one item per uuid, its untagged
                // intervals first, then each tag with its own.
                let mut items: Vec<(String, String)> = Vec::new();
                for (key, intervals) in set {
                    let (uuid, tag) = match key.split_once(':') {
                        Some((uuid, tag)) => (uuid, Some(tag)),
                        None => (key.as_str(), None),
                    };
                    let part = match tag {
                        Some(tag) => format!("{tag}:{}", ranges(intervals)),
                        None => ranges(intervals),
                    };
                    match items.last_mut() {
                        Some((last, text)) if last == uuid => {
                            text.push(':');
                            text.push_str(&part);
                        }
                        _ => items.push((uuid.to_string(), format!("{uuid}:{part}"))),
                    }
                }
                let texts: Vec<String> = items.into_iter().map(|(_, t)| t).collect();
                f.write_str(&texts.join(","))
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
    fn an_announced_state_never_takes_the_tracked_one_back() {
        let mut state = GtidState::parse_mariadb("0-1-100,1-2-7").unwrap();
        state.merge(GtidState::parse_mariadb("0-1-40,2-3-1").unwrap());
        assert_eq!(state.to_string(), "0-1-100,1-2-7,2-3-1");
        let mut set = GtidState::parse_mysql(&format!("{A}:1-50")).unwrap();
        set.merge(GtidState::parse_mysql(&format!("{A}:1-20:60,{B}:1")).unwrap());
        assert_eq!(set.to_string(), format!("{A}:1-50:60,{B}:1"));
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
    fn tagged_gtids_keep_their_own_intervals_beside_the_untagged_ones() {
        let mut state = GtidState::parse_mysql(&format!("{A}:1-5:Alpha:1-3:7")).unwrap();
        assert_eq!(state.to_string(), format!("{A}:1-5:alpha:1-3:7"));
        state.observe(&format!("{A}:alpha:4")).unwrap();
        state.observe(&format!("{A}:6")).unwrap();
        state.observe(&format!("{A}:b_2:1")).unwrap();
        state.observe(&format!("{B}:zz:9")).unwrap();
        assert_eq!(
            state.to_string(),
            format!("{A}:1-6:alpha:1-4:7:b_2:1,{B}:zz:9")
        );
        // The text it writes reads back the same.
        assert_eq!(GtidState::parse_mysql(&state.to_string()).unwrap(), state);
        assert!(GtidState::parse_mysql(&format!("{A}:tag")).is_err());
        assert!(GtidState::parse_mysql(&format!("{A}:1-2:9bad:1")).is_err());
        assert!(state.observe(&format!("{A}:bad-tag:1")).is_err());
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
