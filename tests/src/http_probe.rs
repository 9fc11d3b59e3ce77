//! Plain HTTP GETs of the binaries' operator endpoints (`/metrics`, `/status`, `/readyz`), and
//! reading one sample out of a Prometheus text, and polling until something is seen: what the
//! observability and binlog headroom tests ask.

use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET http://127.0.0.1:{port}{path}`: status code and body (`None` when nothing answers).
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((code, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the sample `series` (name with its labels, as printed) in a metrics text
/// (`+Inf` reads as infinity).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| match v.trim() {
            "+Inf" => Some(f64::INFINITY),
            other => other.parse().ok(),
        })
}

/// The bridge's `GET /status` as JSON; panics when it does not answer 200 with JSON.
pub async fn bridge_status(port: u16) -> Value {
    match http_get(port, "/status").await {
        Some((200, body)) => serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}")),
        other => panic!("GET /status on port {port}: {other:?}"),
    }
}

/// Polls `probe` every 250 ms until it returns `Some`, or panics after `timeout` with `what`
/// and the last thing `context` says.
pub async fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not seen within {timeout:?}\n{}", context());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
