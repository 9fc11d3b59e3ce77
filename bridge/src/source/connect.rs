//! Opening the replication connection: the bridge's connection options with what a binlog
//! reader needs on top (packets up to 1 GiB, the server's heartbeat, MariaDB's real GTID
//! events), registration as a replica and the dump request; and what the server's refusals
//! mean for an operator.

use super::{gtid_start, SourceError, SourceParams, StartAt};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, OptsBuilder};

/// The largest packet (row) a server can send: MySQL's and MariaDB's own maximum.
pub const MAX_PACKET: usize = 1 << 30;

/// `MARIA_SLAVE_CAPABILITY_GTID`: without it MariaDB replaces its GTID events by dummy queries.
const MARIADB_GTID_CAPABILITY: u32 = 4;

pub fn address(params: &SourceParams) -> String {
    format!(
        "{}:{}",
        params.opts.ip_or_hostname(),
        params.opts.tcp_port()
    )
}

/// Connects, registers and asks for the binlog from the start position.
pub async fn open(params: &SourceParams) -> Result<BinlogStream, SourceError> {
    let address = address(params);
    let opts = OptsBuilder::from_opts(params.opts.clone()).max_allowed_packet(Some(MAX_PACKET));
    let mut conn = Conn::new(opts)
        .await
        .map_err(|e| start_error(&address, e))?;
    let period_ns = params.heartbeat.as_nanos().min(u128::from(u64::MAX)) as u64;
    let mut setup = vec![format!("SET @master_heartbeat_period = {period_ns}")];
    if params.is_mariadb {
        setup.push(format!(
            "SET @mariadb_slave_capability = {MARIADB_GTID_CAPABILITY}"
        ));
        if let StartAt::Gtid(state) = &params.start {
            setup.extend(gtid_start::mariadb_setup(state));
        }
    }
    for statement in setup {
        conn.query_drop(statement)
            .await
            .map_err(|e| start_error(&address, e))?;
    }
    let (file, pos) = match &params.start {
        StartAt::Position { file, pos } => (file.clone(), *pos),
        // By GTID: no file name; the server finds where the state ends in its own binlog.
        StartAt::OldestBinlog | StartAt::Gtid(_) => (String::new(), 4),
    };
    let mut request = BinlogStreamRequest::new(params.server_id)
        .with_filename(file.as_bytes())
        .with_pos(pos);
    if let (StartAt::Gtid(state), false) = (&params.start, params.is_mariadb) {
        let sids = gtid_start::mysql_sids(state).ok_or_else(|| SourceError::Server {
            message: format!("the GTID state {state} is not a MySQL GTID set"),
            hint: "; set source.start = { gtid = \"uuid:1-42\" } as in @@gtid_executed".into(),
        })?;
        request = request.with_gtid().with_gtid_set(sids);
    }
    let gtid_start = matches!(params.start, StartAt::Gtid(_));
    conn.get_binlog_stream(request).await.map_err(|e| {
        let mut error = start_error(&address, e);
        if gtid_start {
            if let SourceError::Server { message, hint } = &mut error {
                *hint = gtid_hint(message);
            }
        }
        error
    })
}

/// The fix for a refused dump by GTID state (the server lacks part of it, or purged what
/// follows it).
fn gtid_hint(message: &str) -> String {
    if message.contains("1236") {
        "; the server cannot send the transactions after the GTID state the bridge resumes \
         from: it purged the binlog holding them, or it does not hold every transaction of the \
         state (a replica that had not applied everything, or another topology). Point the \
         bridge at a server that holds them, or move the checkpoint away, set source.start = \
         \"end\" and re-sync every partner (`pusher sync <partner>`)"
            .into()
    } else {
        server_error_hint(message)
    }
}

/// An error before any event was read.
pub fn start_error(address: &str, error: mysql_async::Error) -> SourceError {
    match error {
        mysql_async::Error::Server(e) => {
            let message = format!("ERROR {} ({}): {}", e.code, e.state, e.message);
            SourceError::Server {
                hint: server_error_hint(&message),
                message,
            }
        }
        other => SourceError::Connect {
            address: address.to_string(),
            message: other.to_string(),
        },
    }
}

/// Adds the fix for the server errors an operator can meet.
pub fn server_error_hint(message: &str) -> String {
    let lower = message.to_lowercase();
    if lower.contains("1236") || lower.contains("could not find") || lower.contains("purged") {
        "; the binlog the bridge needs is no longer on the server (purged). To re-sync: move the \
         checkpoint file away, set source.start = \"end\", restart the bridge, then run an initial \
         sync of every partner"
            .into()
    } else if lower.contains("access denied") || lower.contains("1045") {
        "; check source.user and its password".into()
    } else if lower.contains("replication slave") || lower.contains("1227") {
        "; grant it: GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO the bridge's user"
            .into()
    } else if lower.contains("server_id") || lower.contains("server id") {
        "; choose a source.server_id no other replica uses".into()
    } else if lower.contains("max_allowed_packet") || lower.contains("1153") {
        "; a row is larger than the server lets its binlog dump send: raise max_allowed_packet \
         on the server (up to 1G)"
            .into()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purged_binlog_server_errors_explain_the_resync() {
        let hint = server_error_hint(
            "ERROR 1236 (HY000): Could not find first log file name in binary log index file",
        );
        assert!(
            hint.contains("purged") && hint.contains("initial sync"),
            "{hint}"
        );
        assert!(server_error_hint("ERROR 1045: Access denied").contains("source.user"));
    }

    #[test]
    fn a_refused_gtid_dump_explains_what_the_server_lacks() {
        let hint = gtid_hint(
            "ERROR 1236 (HY000): Error: connecting slave requested to start from GTID 0-1-90, \
             which is not in the master's binlog",
        );
        assert!(
            hint.contains("GTID state") && hint.contains("re-sync"),
            "{hint}"
        );
    }
}
