//! Reading a replica: wait until it has applied the change's transaction.
//!
//! A replica applies the primary's transactions some time after the bridge read them from the
//! primary's binlog. A composite read there may come too early: a new EVSE is not there yet
//! (and the change would send nothing), a changed one still holds its old state. With
//! `[database] replica = true` every read for a batch of changes first waits until the server
//! has applied the newest transaction of the batch, by the GTIDs the change messages carry:
//!
//! - MariaDB (`domain-server-seq`): `MASTER_GTID_WAIT('d-s-n', timeout)`, which returns once
//!   the replica's position in domain `d` has reached sequence `n`;
//! - MySQL (`uuid:n`, tagged `uuid:tag:n`): `WAIT_FOR_EXECUTED_GTID_SET('uuid:1-n', timeout)`,
//!   asked for the whole range up to `n` so that it also covers every earlier transaction of
//!   that source.
//!
//! What one wait confirmed is remembered per source (MariaDB domain, MySQL uuid and tag): a
//! later read whose changes are all at or below it does not ask again, so under a backlog the
//! waits cost far fewer queries than the reads. A wait that times out is
//! [`DbError::Unavailable`] (the push waits and tries again, never parks); a change without a
//! GTID cannot be waited for and is [`DbError::Unwaitable`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The two GTID forms, each waited for with its server's function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Flavor {
    MariaDb,
    MySql,
}

/// One transaction to wait for: its source (domain, or uuid with tag) and sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    flavor: Flavor,
    /// MariaDB: the domain; MySQL: `uuid` or `uuid:tag`.
    source: String,
    /// MariaDB only: the server id of the GTID (part of the text the function takes).
    server: String,
    seq: u64,
}

impl Wanted {
    fn parse(gtid: &str) -> Option<Wanted> {
        let gtid = gtid.trim();
        if let Some((source, seq)) = gtid.rsplit_once(':') {
            let seq = seq.parse().ok()?;
            return (!source.is_empty()).then(|| Wanted {
                flavor: Flavor::MySql,
                source: source.to_string(),
                server: String::new(),
                seq,
            });
        }
        let mut parts = gtid.splitn(3, '-');
        let (domain, server, seq) = (parts.next()?, parts.next()?, parts.next()?);
        domain.parse::<u32>().ok()?;
        server.parse::<u32>().ok()?;
        Some(Wanted {
            flavor: Flavor::MariaDb,
            source: domain.to_string(),
            server: server.to_string(),
            seq: seq.parse().ok()?,
        })
    }

    /// This transaction in the text its server's wait function takes.
    fn wait_text(&self) -> String {
        match self.flavor {
            Flavor::MariaDb => format!("{}-{}-{}", self.source, self.server, self.seq),
            Flavor::MySql => format!("{}:1-{}", self.source, self.seq),
        }
    }
}

/// The newest applied transaction per source that a wait confirmed.
#[derive(Default)]
pub(super) struct Applied {
    confirmed: Mutex<HashMap<(Flavor, String), u64>>,
}

/// One wait query to run: its SQL and its GTID argument.
#[derive(Debug, PartialEq)]
pub(super) struct WaitQuery {
    pub sql: &'static str,
    pub gtids: String,
    /// What was waited for, to remember once the wait succeeded.
    wanted: Vec<Wanted>,
}

impl Applied {
    /// The waits a read for changes with these GTIDs needs (none when every one is already
    /// confirmed). `Err` says why a change cannot be waited for (no usable GTID).
    pub(super) fn needed<'a>(
        &self,
        gtids: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Result<Vec<WaitQuery>, String> {
        let mut newest: HashMap<(Flavor, String), Wanted> = HashMap::new();
        for gtid in gtids {
            let wanted = match gtid.map(|g| (g, Wanted::parse(g))) {
                Some((_, Some(wanted))) => wanted,
                Some((text, None)) => {
                    return Err(format!(
                        "the change's GTID `{text}` is not one this pusher reads"
                    ))
                }
                None => {
                    return Err(
                        "the change carries no GTID (the source server does not use \
                                GTIDs: turn on gtid_mode there, or read the primary with \
                                `replica = false`)"
                            .into(),
                    )
                }
            };
            let key = (wanted.flavor, wanted.source.clone());
            if newest.get(&key).is_none_or(|n| n.seq < wanted.seq) {
                newest.insert(key, wanted);
            }
        }
        let confirmed = self.confirmed.lock().map(|c| c.clone()).unwrap_or_default();
        let mut per_flavor: HashMap<Flavor, Vec<Wanted>> = HashMap::new();
        for (key, wanted) in newest {
            if confirmed.get(&key).is_some_and(|&c| c >= wanted.seq) {
                continue;
            }
            per_flavor.entry(wanted.flavor).or_default().push(wanted);
        }
        let mut queries: Vec<WaitQuery> = per_flavor
            .into_iter()
            .map(|(flavor, mut wanted)| {
                wanted.sort_by(|a, b| a.source.cmp(&b.source));
                WaitQuery {
                    sql: match flavor {
                        Flavor::MariaDb => "SELECT MASTER_GTID_WAIT(?, ?)",
                        Flavor::MySql => "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
                    },
                    gtids: wanted
                        .iter()
                        .map(Wanted::wait_text)
                        .collect::<Vec<_>>()
                        .join(","),
                    wanted,
                }
            })
            .collect();
        queries.sort_by(|a, b| a.sql.cmp(b.sql));
        Ok(queries)
    }

    /// Remembers what a successful wait confirmed.
    pub(super) fn confirm(&self, query: &WaitQuery) {
        if let Ok(mut confirmed) = self.confirmed.lock() {
            for wanted in &query.wanted {
                let seq = confirmed
                    .entry((wanted.flavor, wanted.source.clone()))
                    .or_insert(0);
                *seq = (*seq).max(wanted.seq);
            }
        }
    }
}

/// What the server's answer to a wait query means: `Ok` when the transactions are applied.
/// MariaDB answers 0 (applied) or -1 (timed out); MySQL 0 or 1; NULL means an error (MySQL
/// without GTIDs, or a malformed set).
pub(super) fn answer(
    query: &WaitQuery,
    value: Option<i64>,
    waited: Duration,
) -> Result<(), String> {
    let wait_fn = query.sql.trim_start_matches("SELECT ");
    match value {
        Some(0) => Ok(()),
        Some(_) => Err(format!(
            "the server has not applied transaction {} within {} ms: is replication running \
             (SHOW REPLICA STATUS) and how far behind is it? Composite pushes wait for it",
            query.gtids,
            waited.as_millis()
        )),
        None => Err(format!(
            "the server cannot wait for transaction {} ({wait_fn} gave NULL): does it use \
             GTIDs, and is it a replica of the bridge's source?",
            query.gtids
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_and_mysql_gtids_become_their_servers_wait_arguments() {
        let applied = Applied::default();
        let queries = applied
            .needed([Some("0-1-5"), Some("0-1-9"), Some("1-2-3"), Some("0-1-7")])
            .unwrap();
        assert_eq!(queries.len(), 1);
        assert_eq!(queries[0].sql, "SELECT MASTER_GTID_WAIT(?, ?)");
        assert_eq!(queries[0].gtids, "0-1-9,1-2-3");

        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let queries = applied
            .needed([
                Some(format!("{uuid}:23").as_str()),
                Some(&format!("{uuid}:tag1:4")),
            ])
            .unwrap();
        assert_eq!(queries[0].sql, "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)");
        assert_eq!(queries[0].gtids, format!("{uuid}:1-23,{uuid}:tag1:1-4"));
    }

    #[test]
    fn a_confirmed_wait_covers_every_earlier_transaction_of_its_source() {
        let applied = Applied::default();
        let queries = applied.needed([Some("0-1-9")]).unwrap();
        applied.confirm(&queries[0]);
        assert!(applied
            .needed([Some("0-1-9"), Some("0-1-3")])
            .unwrap()
            .is_empty());
        let later = applied.needed([Some("0-1-4"), Some("0-2-10")]).unwrap();
        assert_eq!(later[0].gtids, "0-2-10");
        let other_domain = applied.needed([Some("5-1-1")]).unwrap();
        assert_eq!(other_domain[0].gtids, "5-1-1");
    }

    #[test]
    fn a_change_without_a_gtid_cannot_be_waited_for() {
        let applied = Applied::default();
        let err = applied.needed([Some("0-1-1"), None]).unwrap_err();
        assert!(err.contains("no GTID"), "{err}");
        let err = applied.needed([Some("not a gtid")]).unwrap_err();
        assert!(err.contains("not a gtid"), "{err}");
    }

    #[test]
    fn a_timed_out_or_failed_wait_says_what_to_check() {
        let applied = Applied::default();
        let query = applied.needed([Some("0-1-9")]).unwrap().remove(0);
        let waited = Duration::from_millis(4000);
        assert!(answer(&query, Some(0), waited).is_ok());
        let timed_out = answer(&query, Some(-1), waited).unwrap_err();
        assert!(timed_out.contains("0-1-9") && timed_out.contains("4000 ms"));
        let null = answer(&query, None, waited).unwrap_err();
        assert!(null.contains("GTIDs"), "{null}");
    }
}
