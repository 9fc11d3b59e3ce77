//! RabbitMQ's management HTTP API, for what AMQP cannot tell: how many bytes wait in a queue.
//!
//! Why: a partner's backlog is bounded in messages through AMQP alone (a passive declaration
//! counts them), but a bound in bytes needs the broker's own figure, `message_bytes_ready` of
//! `GET /api/queues/{vhost}/{queue}` on the management plugin. It is optional
//! (`[broker] management_url`): without it only the message bound applies, and the pusher says
//! so at start. The API is asked with the broker URL's user and password unless the management
//! URL carries its own; neither is ever logged.

use std::fmt;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// How long one question to the management API may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where and as whom the management API is asked.
#[derive(Clone)]
pub struct ManagementApi {
    /// `scheme://host:port[/prefix]`, without credentials or a trailing '/'.
    base: String,
    user: String,
    password: String,
    vhost: String,
    client: reqwest::Client,
}

impl fmt::Debug for ManagementApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementApi")
            .field("base", &self.base)
            .field("user", &self.user)
            .field("vhost", &self.vhost)
            .finish_non_exhaustive()
    }
}

/// One queue's figures, as the management API reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBytes {
    /// Bytes of the message bodies ready for delivery.
    pub ready: u64,
}

impl ManagementApi {
    /// From `management_url` (`http(s)://[user:password@]host:port[/prefix]`) and the broker URL
    /// (its vhost, and its credentials when the management URL has none). The error says what
    /// is wrong with the management URL.
    pub fn new(management_url: &str, broker_url: &str) -> Result<ManagementApi, String> {
        let broker: lapin::uri::AMQPUri = broker_url
            .parse()
            .map_err(|e| format!("the broker URL does not parse ({e})"))?;
        let (scheme, rest) = management_url
            .split_once("://")
            .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
            .ok_or("must start with http:// or https:// (e.g. \"http://127.0.0.1:15672\")")?;
        let (userinfo, host) = match rest.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, rest),
        };
        let host = host.trim_end_matches('/');
        if host.is_empty() || host.starts_with('/') {
            return Err("names no host (e.g. \"http://127.0.0.1:15672\")".into());
        }
        let (user, password) = match userinfo {
            Some(info) => {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                (decode(user), decode(password))
            }
            None => (
                broker.authority.userinfo.username.clone(),
                broker.authority.userinfo.password.clone(),
            ),
        };
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| format!("cannot make an HTTP client for it ({e})"))?;
        Ok(ManagementApi {
            base: format!("{scheme}://{host}"),
            user,
            password,
            vhost: broker.vhost,
            client,
        })
    }

    /// The API's address, for logs (no credentials).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bytes waiting in `queue`; the error says what failed and what to check.
    pub async fn queue_bytes(&self, queue: &str) -> Result<QueueBytes, String> {
        let url = format!(
            "{}/api/queues/{}/{}",
            self.base,
            utf8_percent_encode(&self.vhost, NON_ALPHANUMERIC),
            utf8_percent_encode(queue, NON_ALPHANUMERIC)
        );
        let answer = self
            .client
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the management API at {} did not answer ({e}); check broker.management_url \
                     and that the rabbitmq_management plugin is enabled",
                    self.base
                )
            })?;
        let status = answer.status();
        if !status.is_success() {
            return Err(format!(
                "the management API at {} answered {status} for queue {queue}; check the \
                 user's management tag (monitoring is enough) and broker.management_url",
                self.base
            ));
        }
        let body = answer
            .bytes()
            .await
            .map_err(|e| format!("reading the management API's answer failed ({e})"))?;
        parse_queue_bytes(&body).ok_or_else(|| {
            format!(
                "the management API at {} answered for queue {queue} without message_bytes_ready \
                 (statistics may be disabled on the broker)",
                self.base
            )
        })
    }
}

/// `message_bytes_ready` of a `GET /api/queues/{vhost}/{queue}` answer.
fn parse_queue_bytes(body: &[u8]) -> Option<QueueBytes> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(QueueBytes {
        ready: value.get("message_bytes_ready")?.as_u64()?,
    })
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_vhost_come_from_the_broker_url_unless_the_management_url_has_its_own() {
        let api = ManagementApi::new(
            "http://127.0.0.1:15672/",
            "amqp://pusher:s%40cret@rabbit:5672/ocpi",
        )
        .unwrap();
        assert_eq!(api.base(), "http://127.0.0.1:15672");
        assert_eq!(
            (api.user.as_str(), api.password.as_str()),
            ("pusher", "s@cret")
        );
        assert_eq!(api.vhost, "ocpi");
        let own = ManagementApi::new(
            "https://mon:pw@rabbit.example.com:15671",
            "amqp://pusher:secret@rabbit:5672/%2f",
        )
        .unwrap();
        assert_eq!(own.base(), "https://rabbit.example.com:15671");
        assert_eq!((own.user.as_str(), own.password.as_str()), ("mon", "pw"));
        assert_eq!(own.vhost, "/");
        assert!(!format!("{own:?}").contains("pw"));
    }

    #[test]
    fn a_management_url_that_is_not_http_is_refused_with_an_example() {
        let err = ManagementApi::new("amqp://rabbit:15672", "amqp://u:p@rabbit/%2f").unwrap_err();
        assert!(err.contains("http://"), "{err}");
        let err = ManagementApi::new("http://", "amqp://u:p@rabbit/%2f").unwrap_err();
        assert!(err.contains("no host"), "{err}");
    }

    #[test]
    fn the_ready_bytes_are_read_from_the_queue_answer() {
        let body = br#"{"name":"ocpi.acme","messages_ready":3,"message_bytes_ready":3072,"message_bytes":4096}"#;
        assert_eq!(parse_queue_bytes(body), Some(QueueBytes { ready: 3072 }));
        assert_eq!(parse_queue_bytes(br#"{"name":"ocpi.acme"}"#), None);
    }
}
