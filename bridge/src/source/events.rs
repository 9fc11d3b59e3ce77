//! What each binlog event type means to the reader, decided by its type code, and the MariaDB
//! events mysql_common does not parse (GTID, GTID_LIST), read from their documented layout.
//! The rule is to fail closed: a type that is not known to be harmless stops the bridge unless
//! the server marked the event ignorable, because an event we do not understand may carry rows.

/// `LOG_EVENT_IGNORABLE_F`: the server says a replica that does not know the event may skip it.
pub const IGNORABLE_FLAG: u16 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rotate,
    Query,
    Xid,
    /// MySQL's XA_PREPARE: the end of the events of an XA transaction.
    XaPrepare,
    TableMap,
    Rows,
    /// MySQL GTID (also tagged), or the anonymous marker that opens a transaction without one.
    MySqlGtid,
    AnonymousGtid,
    PreviousGtids,
    MariaDbGtid,
    MariaDbGtidList,
    Heartbeat,
    /// MySQL 8 TRANSACTION_PAYLOAD: a (compressed) transaction whose events follow it.
    Payload,
    /// Nothing the captured data depends on.
    Skip,
    /// The server lost events it should have logged.
    Incident,
    /// Rows the reader cannot see: fatal.
    Refuse {
        what: &'static str,
        fix: &'static str,
    },
}

/// The meaning of an event of type `code` with header flags `flags`.
pub fn kind(code: u8, flags: u16) -> Kind {
    match code {
        2 => Kind::Query,
        4 => Kind::Rotate,
        16 => Kind::Xid,
        38 => Kind::XaPrepare,
        19 => Kind::TableMap,
        23..=25 | 30..=32 => Kind::Rows,
        33 | 42 => Kind::MySqlGtid,
        34 => Kind::AnonymousGtid,
        35 => Kind::PreviousGtids,
        162 => Kind::MariaDbGtid,
        163 => Kind::MariaDbGtidList,
        27 | 41 => Kind::Heartbeat,
        40 => Kind::Payload,
        26 => Kind::Incident,
        // STOP, INTVAR/RAND/USER_VAR (context of a statement), FORMAT_DESCRIPTION (tracked by
        // the library), BEGIN_LOAD_QUERY and APPEND_BLOCK (file data of a LOAD statement),
        // IGNORABLE, ROWS_QUERY, TRANSACTION_CONTEXT, VIEW_CHANGE (group replication),
        // MariaDB ANNOTATE_ROWS, BINLOG_CHECKPOINT, START_ENCRYPTION (the dump thread sends
        // the events decrypted).
        3 | 5 | 9 | 13 | 14 | 15 | 17 | 28 | 29 | 36 | 37 | 160 | 161 | 164 => Kind::Skip,
        // EXECUTE_LOAD_QUERY: a LOAD DATA statement logged as a statement.
        18 => Kind::Query,
        1 | 6..=8 | 10..=12 => Kind::Refuse {
            what: "pre-MySQL-5.0",
            fix: "the server is too old for this bridge; upgrade it",
        },
        20..=22 => Kind::Refuse {
            what: "version 0 rows",
            fix: "the server is too old for this bridge (MySQL 5.1.x); upgrade it",
        },
        39 => Kind::Refuse {
            what: "partial JSON update",
            fix: "set binlog_row_value_options='' on the server",
        },
        165..=171 => Kind::Refuse {
            what: "MariaDB compressed",
            fix: "set log_bin_compress=OFF on the server; changes written while it was on \
                  cannot be read: re-sync partners after turning it off",
        },
        _ if flags & IGNORABLE_FLAG != 0 => Kind::Skip,
        _ => Kind::Refuse {
            what: "unknown",
            fix: "this bridge does not know the event type, which may carry changes; \
                  upgrade the bridge or report the server version",
        },
    }
}

/// A MariaDB GTID event: `domain-server-seq`, and whether the transaction is "standalone"
/// (DDL: one statement, no XID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaDbGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
    pub standalone: bool,
}

impl MariaDbGtid {
    pub fn text(&self) -> String {
        format!("{}-{}-{}", self.domain, self.server, self.seq)
    }
}

const FL_STANDALONE: u8 = 0x01;

/// GTID event body: sequence u64, domain u32, flags u8, then optional parts (LE integers).
pub fn mariadb_gtid(data: &[u8], server_id: u32) -> Option<MariaDbGtid> {
    let seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    let flags = *data.get(12)?;
    Some(MariaDbGtid {
        domain,
        server: server_id,
        seq,
        standalone: flags & FL_STANDALONE != 0,
    })
}

/// GTID_LIST event body: a count u32 (low 28 bits; the top 4 are flags), then per entry
/// domain u32, server u32, sequence u64. Returns the list as `d-s-n,...`.
pub fn mariadb_gtid_list(data: &[u8]) -> Option<String> {
    let count = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?) & 0x0FFF_FFFF;
    let mut items = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let at = 4 + i * 16;
        let entry = data.get(at..at + 16)?;
        let domain = u32::from_le_bytes(entry[0..4].try_into().ok()?);
        let server = u32::from_le_bytes(entry[4..8].try_into().ok()?);
        let seq = u64::from_le_bytes(entry[8..16].try_into().ok()?);
        items.push(format!("{domain}-{server}-{seq}"));
    }
    Some(items.join(","))
}

/// What a statement-format query event changes: `None` when it is no row change (BEGIN, DDL,
/// SAVEPOINT...); otherwise the target table when the statement names one plainly
/// (`INSERT|REPLACE [INTO] t`, `UPDATE t`, `DELETE FROM t`, `LOAD DATA ... INTO TABLE t`),
/// `Some(None)` when it cannot be told (the caller then fails closed).
pub fn dml_target(sql: &str, default_database: &str) -> Option<Option<(String, String)>> {
    let mut text = sql.trim_start();
    // Leading comments (`/* ... */`) the server or a client may add.
    while let Some(rest) = text.strip_prefix("/*") {
        text = rest
            .split_once("*/")
            .map(|(_, r)| r)
            .unwrap_or("")
            .trim_start();
    }
    let lower = text.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let originals: Vec<&str> = text.split_whitespace().collect();
    let first = *words.first()?;
    let skip = |from: usize, fillers: &[&str]| {
        let mut i = from;
        while words.get(i).is_some_and(|w| fillers.contains(w)) {
            i += 1;
        }
        i
    };
    let at = match first {
        "insert" | "replace" => skip(
            1,
            &["low_priority", "delayed", "high_priority", "ignore", "into"],
        ),
        "update" => skip(1, &["low_priority", "ignore"]),
        "delete" => {
            let i = skip(1, &["low_priority", "quick", "ignore"]);
            if words.get(i) != Some(&"from") {
                return Some(None);
            }
            i + 1
        }
        "load" => match words.iter().position(|w| *w == "table") {
            Some(i) => i + 1,
            None => return Some(None),
        },
        _ => return None,
    };
    let Some(token) = originals.get(at) else {
        return Some(None);
    };
    let name = token.split(['(', ',', ';']).next().unwrap_or_default();
    if name.is_empty() || words.get(at + 1).is_some_and(|w| w.starts_with(',')) {
        return Some(None);
    }
    let parts: Vec<String> = name
        .split('.')
        .map(|p| p.trim_matches('`').to_string())
        .collect();
    Some(match parts.as_slice() {
        [table] => Some((default_database.to_string(), table.clone())),
        [database, table] => Some((database.clone(), table.clone())),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_that_hide_rows_are_refused_by_type() {
        assert!(matches!(kind(39, 0), Kind::Refuse { .. }));
        assert!(matches!(kind(20, 0), Kind::Refuse { .. }));
        for code in 165..=171 {
            match kind(code, 0) {
                Kind::Refuse { fix, .. } => assert!(fix.contains("log_bin_compress")),
                other => panic!("{code}: {other:?}"),
            }
        }
        assert_eq!(kind(40, 0), Kind::Payload);
        assert_eq!(kind(23, 0), Kind::Rows);
        assert_eq!(kind(32, 0), Kind::Rows);
    }

    #[test]
    fn unknown_types_are_fatal_unless_marked_ignorable() {
        assert!(matches!(
            kind(200, 0),
            Kind::Refuse {
                what: "unknown",
                ..
            }
        ));
        assert_eq!(kind(200, IGNORABLE_FLAG), Kind::Skip);
        assert_eq!(kind(41, 0), Kind::Heartbeat);
        assert_eq!(kind(26, 0), Kind::Incident);
    }

    #[test]
    fn statement_changes_name_their_table() {
        let t = |sql: &str| dml_target(sql, "app");
        assert_eq!(t("BEGIN"), None);
        assert_eq!(t("CREATE TABLE x (id INT)"), None);
        assert_eq!(
            t("INSERT INTO items VALUES (1)"),
            Some(Some(("app".into(), "items".into())))
        );
        assert_eq!(
            t("/* app */ insert ignore into `shop`.`items`(id) values (1)"),
            Some(Some(("shop".into(), "items".into())))
        );
        assert_eq!(
            t("UPDATE items SET n = 1"),
            Some(Some(("app".into(), "items".into())))
        );
        assert_eq!(
            t("DELETE FROM items WHERE id = 2"),
            Some(Some(("app".into(), "items".into())))
        );
        assert_eq!(t("DELETE a FROM items a JOIN other b"), Some(None));
        assert_eq!(t("UPDATE a , b SET a.n = b.n"), Some(None));
    }

    #[test]
    fn mariadb_gtid_events_are_read_from_their_layout() {
        let mut data = 42u64.to_le_bytes().to_vec();
        data.extend(7u32.to_le_bytes());
        data.push(FL_STANDALONE | 0x02);
        let gtid = mariadb_gtid(&data, 3).unwrap();
        assert_eq!(gtid.text(), "7-3-42");
        assert!(gtid.standalone);
        assert!(mariadb_gtid(&data[..10], 3).is_none());

        let mut list = (2u32 | 0x1000_0000).to_le_bytes().to_vec();
        for (d, s, n) in [(0u32, 1u32, 100u64), (5, 2, 9)] {
            list.extend(d.to_le_bytes());
            list.extend(s.to_le_bytes());
            list.extend(n.to_le_bytes());
        }
        assert_eq!(mariadb_gtid_list(&list).unwrap(), "0-1-100,5-2-9");
        assert!(mariadb_gtid_list(&list[..20]).is_none());
        assert_eq!(mariadb_gtid_list(&0u32.to_le_bytes()).unwrap(), "");
    }
}
