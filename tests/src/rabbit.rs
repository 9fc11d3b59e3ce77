//! RabbitMQ: the shared broker on 127.0.0.1:5672, private nodes for tests that stop the broker,
//! and async helpers (lapin) to declare, drain, count and delete.

use std::future::poll_fn;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use change_message::{Message, RowChange};
use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};

use crate::tls::{Certificate, TestCa};
use crate::util::{
    cleanup_dir, find_program, free_port_with_offsets, fresh_dir, next_counter, pid_alive,
    running_as_root, send_signal, tail,
};

/// The shared broker every test may use (each with its own [`unique_name`]s):
/// `amqp://guest:guest@127.0.0.1:5672/%2f`, or env `TEST_AMQP_URL`.
pub fn shared_amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// `prefix-<pid>-<counter>-<random>`: exchange and queue names that no other test (in this or a
/// parallel test process) uses.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}-{:04x}",
        std::process::id(),
        next_counter(),
        fastrand::u16(..)
    )
}

/// Opens a connection (panics with the URL on failure).
pub async fn connect(url: &str) -> Connection {
    Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name("system-tests".into()),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to RabbitMQ at {url}: {e}"))
}

async fn channel(conn: &Connection) -> Channel {
    conn.create_channel()
        .await
        .unwrap_or_else(|e| panic!("cannot open a RabbitMQ channel: {e}"))
}

async fn close(conn: Connection) {
    let _ = conn.close(200, "OK".into()).await;
}

/// Declares a durable fanout exchange (idempotent).
pub async fn declare_exchange(url: &str, exchange: &str) {
    let conn = connect(url).await;
    let ch = channel(&conn).await;
    declare_fanout(&ch, exchange).await;
    close(conn).await;
}

async fn declare_fanout(ch: &Channel, exchange: &str) {
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot declare fanout exchange {exchange:?}: {e}"));
}

/// Declares a durable fanout exchange (idempotent) and a durable classic queue bound to it.
pub async fn declare_bound_queue(url: &str, exchange: &str, queue: &str) {
    declare_bound_queue_with_limit(url, exchange, queue, None).await
}

/// [`declare_bound_queue`], with `Some(n)`: at most `n` messages, and the broker refuses
/// (nacks) publishes beyond them (`x-overflow = reject-publish`), as a full partner queue
/// with such a policy does.
pub async fn declare_bound_queue_with_limit(
    url: &str,
    exchange: &str,
    queue: &str,
    max_length: Option<i64>,
) {
    let conn = connect(url).await;
    let ch = channel(&conn).await;
    declare_fanout(&ch, exchange).await;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    if let Some(max_length) = max_length {
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(max_length));
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
    }
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("cannot declare queue {queue:?}: {e}"));
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot bind queue {queue:?} to {exchange:?}: {e}"));
    close(conn).await;
}

/// One message taken from a queue, with what the broker said about it.
#[derive(Debug, Clone)]
pub struct Received {
    pub message: Message,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
    pub redelivered: bool,
}

impl Received {
    /// A header value as text (string or integer headers), e.g. `header("x-table")`.
    pub fn header(&self, name: &str) -> Option<String> {
        let headers = self.properties.headers().as_ref()?;
        let value = headers.inner().get(name)?;
        Some(match value {
            AMQPValue::LongString(s) => s.to_string(),
            AMQPValue::ShortString(s) => s.as_str().to_string(),
            AMQPValue::LongLongInt(i) => i.to_string(),
            AMQPValue::LongInt(i) => i.to_string(),
            AMQPValue::LongUInt(i) => i.to_string(),
            AMQPValue::ShortInt(i) => i.to_string(),
            AMQPValue::ShortUInt(i) => i.to_string(),
            other => format!("{other:?}"),
        })
    }
}

/// One consumer on a queue, kept open across batches. A consumer closed with deliveries it
/// has not acked hands them back to the queue, and a consumer opened right after may receive
/// newer messages before the broker has put those back: tests that read a queue while it
/// fills, and check the order, read it through one `QueueReader`.
pub struct QueueReader {
    queue: String,
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
}

impl QueueReader {
    pub async fn open(url: &str, queue: &str) -> QueueReader {
        let connection = connect(url).await;
        let channel = channel(&connection).await;
        channel
            .basic_qos(200, BasicQosOptions::default())
            .await
            .unwrap_or_else(|e| panic!("basic.qos: {e}"));
        let consumer = channel
            .basic_consume(
                queue.into(),
                unique_name("drain").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("cannot consume from queue {queue:?}: {e}"));
        QueueReader {
            queue: queue.to_string(),
            connection,
            channel,
            consumer,
        }
    }

    /// Acks and returns what arrives until `expected_changes` change messages have arrived or
    /// `timeout` passes (heartbeats included, they do not count). Panics on a body that is not
    /// a change message.
    pub async fn next_batch(
        &mut self,
        expected_changes: usize,
        timeout: Duration,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        let queue = &self.queue;
        let mut received = Vec::new();
        let mut changes = 0;
        while changes < expected_changes {
            let next = poll_fn(|cx| Pin::new(&mut self.consumer).poll_next(cx));
            let delivery = match tokio::time::timeout_at(deadline, next).await {
                Err(_) => break,
                Ok(None) => panic!("consumer on queue {queue:?} ended (channel closed?)"),
                Ok(Some(Err(e))) => panic!("consuming from queue {queue:?}: {e}"),
                Ok(Some(Ok(delivery))) => delivery,
            };
            let message = Message::from_slice(&delivery.data).unwrap_or_else(|e| {
                panic!(
                    "queue {queue:?} delivered something that is not a change message ({e}): {}",
                    String::from_utf8_lossy(&delivery.data)
                )
            });
            let acked = delivery
                .ack(BasicAckOptions::default())
                .await
                .unwrap_or_else(|e| panic!("ack on queue {queue:?}: {e}"));
            assert!(
                acked,
                "ack on queue {queue:?} was not accepted (channel closed)"
            );
            if matches!(message, Message::Change(_)) {
                changes += 1;
            }
            received.push(Received {
                message,
                body: delivery.data,
                properties: delivery.properties,
                redelivered: delivery.redelivered,
            });
        }
        received
    }

    /// Closes the consumer; messages delivered to it and not returned yet go back to the queue.
    pub async fn close(self) {
        drop(self.consumer);
        let _ = self.channel.close(200, "OK".into()).await;
        close(self.connection).await;
    }
}

/// Consumes and acks messages from `queue` until `expected_changes` change messages have arrived
/// or `timeout` passes; returns everything received (heartbeats included, they do not count),
/// with properties. Messages prefetched beyond the count are returned to the queue unacked.
/// Panics on a body that is not a change message.
pub async fn drain_received(
    url: &str,
    queue: &str,
    expected_changes: usize,
    timeout: Duration,
) -> Vec<Received> {
    if expected_changes == 0 {
        return Vec::new();
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut reader = QueueReader::open(url, queue).await;
    let received = reader
        .next_batch(
            expected_changes,
            deadline.saturating_duration_since(tokio::time::Instant::now()),
        )
        .await;
    reader.close().await;
    received
}

/// [`drain_received`] without the properties: change messages and heartbeats, in queue order.
pub async fn drain(url: &str, queue: &str, expected: usize, timeout: Duration) -> Vec<Message> {
    drain_received(url, queue, expected, timeout)
        .await
        .into_iter()
        .map(|r| r.message)
        .collect()
}

/// [`drain`] keeping only the row changes (heartbeats are consumed and dropped).
pub async fn drain_changes(
    url: &str,
    queue: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<RowChange> {
    drain(url, queue, expected, timeout)
        .await
        .into_iter()
        .filter_map(|m| match m {
            Message::Change(c) => Some(c),
            Message::Heartbeat(_) => None,
        })
        .collect()
}

/// Number of messages ready in `queue` (passive declare; unacked messages are not counted).
pub async fn queue_len(url: &str, queue: &str) -> u32 {
    let conn = connect(url).await;
    let ch = channel(&conn).await;
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("queue {queue:?} cannot be inspected: {e}"));
    close(conn).await;
    q.message_count()
}

/// Removes every ready message from `queue`; returns how many.
pub async fn purge_queue(url: &str, queue: &str) -> u32 {
    let conn = connect(url).await;
    let ch = channel(&conn).await;
    let n = ch
        .queue_purge(queue.into(), QueuePurgeOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot purge queue {queue:?}: {e}"));
    close(conn).await;
    n
}

/// Queues and exchanges of one test on the shared broker, deleted when dropped (also after a
/// panic, so a failing test leaves nothing behind).
pub struct BrokerCleanup {
    url: String,
    queues: Vec<String>,
    exchanges: Vec<String>,
}

impl BrokerCleanup {
    pub fn new(url: &str, queues: Vec<String>, exchanges: Vec<String>) -> BrokerCleanup {
        BrokerCleanup {
            url: url.to_string(),
            queues,
            exchanges,
        }
    }

    /// Every queue and exchange the pusher declares for `cfg`'s partners.
    pub fn of_pusher(url: &str, cfg: &crate::pusher_config::PusherConfig) -> BrokerCleanup {
        let queues = cfg
            .partners
            .iter()
            .flat_map(|p| [cfg.queue(&p.id), cfg.parking_queue(&p.id)])
            .collect();
        BrokerCleanup::new(
            url,
            queues,
            vec![cfg.exchange.clone(), cfg.presence_exchange.clone()],
        )
    }
}

impl Drop for BrokerCleanup {
    fn drop(&mut self) {
        let url = self.url.clone();
        let queues = self.queues.clone();
        let exchanges = self.exchanges.clone();
        // Dropped inside a tokio runtime: do the async cleanup on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                for queue in &queues {
                    delete_queue(&url, queue).await;
                }
                for exchange in &exchanges {
                    // Also deletes the bridge's `<exchange>.sync-requests` queue.
                    delete_exchange(&url, exchange).await;
                }
            });
        });
        if cleanup.join().is_err() {
            eprintln!(
                "could not delete queues {:?} / exchanges {:?}",
                self.queues, self.exchanges
            );
        }
    }
}

/// Deletes a queue (no error if it does not exist).
pub async fn delete_queue(url: &str, queue: &str) {
    let conn = connect(url).await;
    let ch = channel(&conn).await;
    ch.queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot delete queue {queue:?}: {e}"));
    close(conn).await;
}

/// Deletes an exchange (no error if it does not exist), and the sync-requests queue a bridge
/// publishing to it declares.
pub async fn delete_exchange(url: &str, exchange: &str) {
    let conn = connect(url).await;
    let ch = channel(&conn).await;
    ch.queue_delete(
        change_message::sync_request::requests_queue(exchange)
            .as_str()
            .into(),
        QueueDeleteOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot delete the sync-requests queue of {exchange:?}: {e}"));
    ch.exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot delete exchange {exchange:?}: {e}"));
    close(conn).await;
}

/// Publishes raw bodies to `exchange` as persistent JSON messages with publisher confirms (the
/// way the bridge does, `user_id` included; for pusher tests). Panics on a nack or a return.
pub async fn publish_bodies(url: &str, exchange: &str, bodies: &[Vec<u8>]) {
    publish_bodies_routed(url, exchange, "", bodies).await;
}

/// [`publish_bodies`] with a routing key: `("", queue)` publishes straight into one queue.
/// The `user_id` is the user `url` logs in as (the broker refuses any other).
pub async fn publish_bodies_routed(
    url: &str,
    exchange: &str,
    routing_key: &str,
    bodies: &[Vec<u8>],
) {
    let user = tls_connect::broker::login_user(url)
        .unwrap_or_else(|| panic!("cannot read the user of broker URL {url:?}"));
    let conn = connect(url).await;
    let ch = channel(&conn).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap_or_else(|e| panic!("confirm.select: {e}"));
    let mut confirms = Vec::with_capacity(bodies.len());
    for body in bodies {
        let confirm = ch
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_user_id(user.as_str().into())
                    .with_content_type(change_message::CONTENT_TYPE.into()),
            )
            .await
            .unwrap_or_else(|e| panic!("publish to {exchange:?}: {e}"));
        confirms.push(confirm);
        if confirms.len() >= 500 {
            for c in confirms.drain(..) {
                check_confirm(exchange, c.await);
            }
        }
    }
    for c in confirms {
        check_confirm(exchange, c.await);
    }
    close(conn).await;
}

fn check_confirm(exchange: &str, confirmation: lapin::Result<Confirmation>) {
    match confirmation {
        Ok(Confirmation::Ack(None)) => {}
        Ok(Confirmation::Ack(Some(ret))) => {
            panic!("publish to {exchange:?} was returned (no queue bound?): {ret:?}")
        }
        Ok(other) => panic!("publish to {exchange:?} not acked: {other:?}"),
        Err(e) => panic!("publish to {exchange:?}: {e}"),
    }
}

/// A user of its own on the shared broker (`rabbitmqctl add_user`, with every permission on
/// vhost `/`), for tests of who may publish what; deleted on drop. Needs `rabbitmqctl` and the
/// rights to run it (root here).
pub struct BrokerUser {
    pub name: String,
    pub password: String,
}

impl BrokerUser {
    /// A new user named `prefix-…` (unique per run).
    pub fn create(prefix: &str) -> BrokerUser {
        let user = BrokerUser {
            name: unique_name(prefix),
            password: format!("pw-{:08x}", fastrand::u32(..)),
        };
        rabbitmqctl(&["add_user", &user.name, &user.password]);
        rabbitmqctl(&["set_permissions", "-p", "/", &user.name, ".*", ".*", ".*"]);
        user
    }

    /// The shared broker's URL (host, port, vhost of [`shared_amqp_url`]) logged in as this user.
    pub fn url(&self) -> String {
        let shared = shared_amqp_url();
        let rest = shared
            .split_once('@')
            .map(|(_, host)| host.to_string())
            .unwrap_or_else(|| shared.trim_start_matches("amqp://").to_string());
        format!("amqp://{}:{}@{rest}", self.name, self.password)
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_user", &self.name])
            .output();
    }
}

fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rabbitmqctl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Publishes change messages (see [`publish_bodies`]).
pub async fn publish_messages(url: &str, exchange: &str, messages: &[Message]) {
    let bodies: Vec<Vec<u8>> = messages.iter().map(Message::to_vec).collect();
    publish_bodies(url, exchange, &bodies).await;
}

const RABBIT_READY_TIMEOUT: Duration = Duration::from_secs(90);
/// A node's VM writes its pid file within seconds of `rabbitmq-server -detached`.
const RABBIT_PID_TIMEOUT: Duration = Duration::from_secs(45);
const RABBIT_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A private RabbitMQ node (own name, port, mnesia and log directories) for tests that stop,
/// restart or kill the broker. Stopped, and its directory removed unless the test failed, on drop.
///
/// Needs root (the Debian scripts run the node as user `rabbitmq`) and the system erlang cookie;
/// the first start takes several seconds.
/// A node's TLS listener: the certificate it shows, the CA it checks client certificates
/// against, and whether a client must show one.
#[derive(Clone, Copy)]
struct TlsListener<'a> {
    server: &'a Certificate,
    ca: &'a TestCa,
    require_client_certificate: bool,
}

pub struct RabbitNode {
    dir: PathBuf,
    port: u16,
    /// The TLS listener's port (AMQP port + 1), when started with [`RabbitNode::start_with_tls`].
    tls_port: Option<u16>,
    node: String,
    running: bool,
}

impl RabbitNode {
    /// Starts a node on a free port (its distribution port, port + 20000, is free too). A node
    /// whose VM never comes up (no pid within [`RABBIT_PID_TIMEOUT`], nothing logged: seen
    /// rarely on busy machines) is given up and another started on another port.
    pub fn start() -> RabbitNode {
        RabbitNode::start_inner(None, "", false)
    }

    /// [`RabbitNode::start`] with `settings` (lines of rabbitmq.conf, e.g.
    /// `max_message_size = 131072`) added to its configuration.
    pub fn start_with_settings(settings: &str) -> RabbitNode {
        RabbitNode::start_inner(None, settings, false)
    }

    /// [`RabbitNode::start`] with the management plugin listening on
    /// [`RabbitNode::management_url`] (port + 2), its statistics sampled every second.
    pub fn start_with_management() -> RabbitNode {
        RabbitNode::start_inner(None, "", true)
    }

    /// `http://127.0.0.1:PORT` of the management API of a node started with
    /// [`RabbitNode::start_with_management`].
    pub fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port + 2)
    }

    /// [`RabbitNode::start`] with a TLS listener too (on [`RabbitNode::tls_port`]) that shows
    /// `server`'s certificate and checks client certificates against `ca` when a client shows
    /// one (`verify_peer`, none required). The plain AMQP port stays open for the harness.
    pub fn start_with_tls(server: &Certificate, ca: &TestCa) -> RabbitNode {
        RabbitNode::start_inner(
            Some(TlsListener {
                server,
                ca,
                require_client_certificate: false,
            }),
            "",
            false,
        )
    }

    /// [`RabbitNode::start_with_tls`] whose TLS listener refuses a client that shows no
    /// certificate signed by `ca` (`ssl_options.fail_if_no_peer_cert = true`).
    pub fn start_requiring_client_certificates(server: &Certificate, ca: &TestCa) -> RabbitNode {
        RabbitNode::start_inner(
            Some(TlsListener {
                server,
                ca,
                require_client_certificate: true,
            }),
            "",
            false,
        )
    }

    fn start_inner(tls: Option<TlsListener>, settings: &str, management: bool) -> RabbitNode {
        for attempt in 1.. {
            let mut node = RabbitNode::prepare(tls, settings, management);
            match node.launch() {
                Ok(()) => return node,
                Err(why) if attempt < 3 => {
                    eprintln!("[system-tests] {why}; starting another node");
                    node.running = false;
                }
                Err(why) => panic!("{why} (3 attempts)"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// A node's directory, port and name, not started.
    fn prepare(tls: Option<TlsListener>, settings: &str, management: bool) -> RabbitNode {
        let dir = fresh_dir("rabbit");
        // Ephemeral ports start at 32768: stay below so that port + 20000 is a valid port and
        // unlikely to be taken by outgoing connections.
        let port = free_port_with_offsets(20_000..32_000, &[1, 2, 20_000]);
        let node = format!("t{port}@localhost");
        let plugins = if management {
            "[rabbitmq_management].\n"
        } else {
            "[].\n"
        };
        std::fs::write(dir.join("enabled_plugins"), plugins).expect("write enabled_plugins");
        let mut conf = String::from("loopback_users = none\n");
        if management {
            conf.push_str(&format!(
                "management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {}\n\
                 collect_statistics_interval = 1000\n",
                port + 2
            ));
        }
        let tls_port = tls.map(|tls| {
            // Copied into the node's directory, which becomes the rabbitmq user's.
            let copy = |from: &Path, name: &str| {
                let to = dir.join(name);
                std::fs::copy(from, &to)
                    .unwrap_or_else(|e| panic!("cannot copy {}: {e}", from.display()));
                to.display().to_string()
            };
            let tls_port = port + 1;
            conf.push_str(&format!(
                "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = {}\n",
                copy(tls.ca.cert_path(), "tls-ca.pem"),
                copy(&tls.server.cert, "tls-server.pem"),
                copy(&tls.server.key, "tls-server.key"),
                tls.require_client_certificate,
            ));
            tls_port
        });
        conf.push_str(settings);
        if !conf.ends_with('\n') {
            conf.push('\n');
        }
        std::fs::write(dir.join("rabbitmq.conf"), conf).expect("write rabbitmq.conf");
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create rabbit subdirectory");
        }
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "rabbitmq:rabbitmq"])
                .arg(&dir)
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown -R rabbitmq:rabbitmq {} failed",
                dir.display()
            );
        }
        RabbitNode {
            dir,
            port,
            tls_port,
            node,
            running: false,
        }
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f` (guest may connect: loopback_users = none).
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS listener's port; panics for a node started without TLS.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
            .expect("the node was started without TLS (use RabbitNode::start_with_tls)")
    }

    /// `amqps://guest:guest@127.0.0.1:TLS_PORT/%2f`; `host` replaces 127.0.0.1 in the URL
    /// (`localhost`, to check a certificate's name) and must reach this machine.
    pub fn amqps_url(&self, host: &str) -> String {
        format!("amqps://guest:guest@{host}:{}/%2f", self.tls_port())
    }

    /// Erlang node name, `t<PORT>@localhost` (for `rabbitmqctl -n`).
    pub fn node_name(&self) -> &str {
        &self.node
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node's main log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log").join(format!("{}.log", self.node))
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("rabbit.pid")
    }

    /// The node's OS pid, when its pid file names a live process.
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        pid_alive(pid).then_some(pid)
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Runs `rabbitmqctl -n NODE <args>`, returning (success, combined output).
    pub fn rabbitmqctl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(find_program("rabbitmqctl"))
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run rabbitmqctl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Stops the node cleanly (`rabbitmqctl -n NODE stop`) and waits until its process is gone.
    pub fn stop(&mut self) {
        if let Err(e) = self.try_stop(RABBIT_STOP_TIMEOUT) {
            panic!("{e}");
        }
    }

    fn try_stop(&mut self, timeout: Duration) -> Result<(), String> {
        let Some(pid) = self.pid() else {
            self.running = false;
            return Ok(());
        };
        let started = Instant::now();
        let (ok, out) = self.rabbitmqctl(&["stop", &self.pid_file().display().to_string()]);
        while pid_alive(pid) {
            if started.elapsed() > timeout {
                send_signal(pid, "KILL");
                self.running = false;
                return Err(format!(
                    "RabbitMQ node {} did not stop within {timeout:?} (rabbitmqctl stop: ok={ok}, \
                     {out}); killed it",
                    self.node
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.running = false;
        Ok(())
    }

    /// SIGKILL: the broker disappears without closing connections.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, "KILL");
            let deadline = Instant::now() + Duration::from_secs(10);
            while pid_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.running = false;
    }

    /// Starts the node again (same name, port and data: durable queues and persistent messages
    /// survive).
    pub fn start_again(&mut self) {
        assert!(
            !self.is_running(),
            "RabbitMQ node {} is still running",
            self.node
        );
        if let Err(why) = self.launch() {
            panic!("{why}");
        }
    }

    /// Starts the node and waits until it serves AMQP. `Err` only when its VM never came up
    /// (the caller may try another node); every other failure panics with the node's logs.
    fn launch(&mut self) -> Result<(), String> {
        let dir = self.dir.display().to_string();
        let startup_log = self.dir.join("startup.log");
        let out = Command::new(find_program("rabbitmq-server"))
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env(
                "RABBITMQ_DIST_PORT",
                (u32::from(self.port) + 20_000).to_string(),
            )
            .env("RABBITMQ_MNESIA_BASE", format!("{dir}/mnesia"))
            .env("RABBITMQ_LOG_BASE", format!("{dir}/log"))
            .env("RABBITMQ_PID_FILE", format!("{dir}/rabbit.pid"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                format!("{dir}/enabled_plugins"),
            )
            .env("RABBITMQ_CONFIG_FILE", format!("{dir}/rabbitmq"))
            .env(
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                format!("{dir}/advanced.config"),
            )
            .stdin(Stdio::null())
            .output()
            .expect("cannot run rabbitmq-server");
        let _ = std::fs::write(&startup_log, [&out.stdout[..], &out.stderr[..]].concat());
        assert!(
            out.status.success(),
            "rabbitmq-server -detached failed ({}) for node {}:\n{}",
            out.status,
            self.node,
            tail(&startup_log, 40)
        );
        self.running = true;
        let started = Instant::now();
        let mut saw_pid = false;
        loop {
            if amqp_answers(self.port) && self.tls_port.is_none_or(listens) {
                return Ok(());
            }
            match self.pid() {
                Some(_) => saw_pid = true,
                None if !saw_pid && started.elapsed() > RABBIT_PID_TIMEOUT => {
                    return Err(format!(
                        "RabbitMQ node {} (port {}) wrote no pid within {RABBIT_PID_TIMEOUT:?}; \
                         startup output: {}",
                        self.node,
                        self.port,
                        tail(&startup_log, 20)
                    ));
                }
                None if saw_pid => panic!(
                    "RabbitMQ node {} died while starting. Tail of {}:\n{}\nstartup output:\n{}",
                    self.node,
                    self.log_path().display(),
                    tail(&self.log_path(), 40),
                    tail(&startup_log, 20)
                ),
                None => {}
            }
            if started.elapsed() > RABBIT_READY_TIMEOUT {
                panic!(
                    "RabbitMQ node {} not accepting AMQP on port {} after {RABBIT_READY_TIMEOUT:?}. \
                     Tail of {}:\n{}\nstartup output:\n{}",
                    self.node,
                    self.port,
                    self.log_path().display(),
                    tail(&self.log_path(), 40),
                    tail(&startup_log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
fn listens(port: u16) -> bool {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    TcpStream::connect_timeout(&addr.into(), Duration::from_secs(1)).is_ok()
}

/// True when the port answers an AMQP 0-9-1 protocol header with a method frame
/// (Connection.Start): the broker is serving clients, not merely listening.
fn amqp_answers(port: u16) -> bool {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"AMQP\x00\x00\x09\x01").is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    matches!(stream.read_exact(&mut first), Ok(()) if first[0] == 1)
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        if self.running || self.is_running() {
            if let Err(e) = self.try_stop(Duration::from_secs(30)) {
                eprintln!("[system-tests] {e}");
            }
        }
        cleanup_dir(&self.dir, "RabbitMQ node");
    }
}
