//! How the bridge connects to the database for everything but the binlog stream (checks,
//! catalog, snapshot reads, lag, signal table), and the small query helpers the checks share.

use super::PreflightError;
use crate::config::SourceConfig;
use mysql_async::prelude::Queryable;

/// The options of every connection the bridge makes to the database (checks, catalog,
/// snapshot reads, lag, signal table, binlog): address, credentials and `[source.tls]`.
pub fn connection_opts(source: &SourceConfig) -> mysql_async::Opts {
    let builder = mysql_async::OptsBuilder::default()
        .ip_or_hostname(source.host.clone())
        .tcp_port(source.port)
        .user(Some(source.user.clone()))
        .pass(Some(source.password.clone()))
        .prefer_socket(false);
    tls_connect::database::apply(builder, &source.tls).into()
}

fn address(source: &SourceConfig) -> String {
    format!("{}:{}", source.host, source.port)
}

/// A refused connection that is not a TLS problem (those are found by
/// `tls_connect::database::diagnose` first).
fn classify_connect_error(source: &SourceConfig, error: mysql_async::Error) -> PreflightError {
    match error {
        mysql_async::Error::Server(ref e) if e.code == 1045 || e.code == 1044 => {
            let hint = tls_connect::database::access_denied_hint(&source.tls);
            PreflightError::AccessDenied {
                address: address(source),
                user: source.user.clone(),
                message: e.message.clone(),
                hint,
            }
        }
        other => PreflightError::Unreachable {
            address: address(source),
            message: other.to_string(),
        },
    }
}

pub(super) fn query_error(error: mysql_async::Error) -> PreflightError {
    PreflightError::Query(error.to_string())
}

/// Opens one connection with [`connection_opts`]; in `verify_ca` mode the first connection
/// also learns the name the server's certificate carries (see `tls_connect::database`).
pub async fn connect(source: &SourceConfig) -> Result<mysql_async::Conn, PreflightError> {
    match tls_connect::database::connect(|| connection_opts(source), &source.tls).await {
        Ok(conn) => Ok(conn),
        Err(error) => {
            let address = address(source);
            let opts = connection_opts(source);
            let tls = &source.tls;
            match tls_connect::database::diagnose(&error, opts, tls, &address, &source.host).await {
                Some(problem) => Err(PreflightError::Tls(problem)),
                None => Err(classify_connect_error(source, error)),
            }
        }
    }
}

pub(super) async fn variable(
    conn: &mut mysql_async::Conn,
    name: &str,
) -> Result<Option<String>, PreflightError> {
    let row: Option<(String, String)> = conn
        .exec_first("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (name,))
        .await
        .map_err(query_error)?;
    Ok(row.map(|(_, value)| value))
}
