//! Asking a server for its binlog from a GTID state instead of a file and position (after a
//! failover, or `source.start = { gtid = ... }`): MariaDB takes the GTID list in
//! `@slave_connect_state` before an ordinary dump with no file name; MySQL takes the GTID set
//! as SID blocks of COM_BINLOG_DUMP_GTID. Either way the server sends every transaction the
//! state does not hold, from its own binlog files and positions.

use super::gtid::GtidState;
use mysql_common::packets::{GnoInterval, Sid, Tag};

/// The session statements that make a MariaDB dump start after `state`: in strict mode, so a
/// server that lacks a transaction of the state refuses (error 1236) instead of starting
/// somewhere else.
pub fn mariadb_setup(state: &GtidState) -> Vec<String> {
    let list = state.to_string();
    vec![
        format!("SET @slave_connect_state = '{}'", list.replace('\'', "")),
        "SET @slave_gtid_strict_mode = 1".into(),
        "SET @slave_gtid_ignore_duplicates = 0".into(),
    ]
}

/// The SID blocks of a MySQL GTID set (interval ends exclusive, as the protocol has them).
/// Returns None for a MariaDB state.
pub fn mysql_sids(state: &GtidState) -> Option<Vec<Sid<'static>>> {
    let GtidState::MySql(set) = state else {
        return None;
    };
    let mut sids = Vec::with_capacity(set.len());
    for (key, intervals) in set {
        let (uuid_text, tag) = match key.split_once(':') {
            Some((uuid, tag)) => (uuid, Some(tag)),
            None => (key.as_str(), None),
        };
        let uuid = uuid::Uuid::parse_str(uuid_text).ok()?;
        let mut sid = Sid::new(*uuid.as_bytes());
        if let Some(tag) = tag {
            sid = sid.with_tag(Tag::new(tag.to_string()).ok()?);
        }
        let intervals = intervals
            .iter()
            .map(|&(start, end)| GnoInterval::new(start, end.saturating_add(1)))
            .collect();
        sids.push(sid.with_intervals(intervals));
    }
    Some(sids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4a6f7b2c-0d1e-11ee-8c90-0242ac120002";

    #[test]
    fn mysql_sid_blocks_carry_each_uuid_and_tag_with_exclusive_interval_ends() {
        let state = GtidState::parse_mysql(&format!("{A}:1-5:7,{B}:3-9:blue:1-2")).unwrap();
        let sids = mysql_sids(&state).unwrap();
        type Described = (String, Option<String>, Vec<(u64, u64)>);
        let described: Vec<Described> = sids
            .iter()
            .map(|sid| {
                (
                    uuid::Uuid::from_bytes(sid.uuid()).hyphenated().to_string(),
                    sid.tag().map(|t| t.to_string()),
                    sid.intervals()
                        .iter()
                        .map(|i| (i.start(), i.end()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            described,
            vec![
                (A.to_string(), None, vec![(1, 6), (7, 8)]),
                (B.to_string(), None, vec![(3, 10)]),
                (B.to_string(), Some("blue".to_string()), vec![(1, 3)]),
            ]
        );
        assert!(mysql_sids(&GtidState::parse_mariadb("0-1-5").unwrap()).is_none());
    }

    #[test]
    fn mariadb_dump_starts_from_the_gtid_list_in_strict_mode() {
        let state = GtidState::parse_mariadb("0-1-100,2-5-7").unwrap();
        let setup = mariadb_setup(&state);
        assert_eq!(setup[0], "SET @slave_connect_state = '0-1-100,2-5-7'");
        assert!(setup.contains(&"SET @slave_gtid_strict_mode = 1".to_string()));
    }
}
