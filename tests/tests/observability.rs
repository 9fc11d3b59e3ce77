//! What operators see: the bridge's and the pusher's HTTP endpoints (`/metrics`, `/healthz`,
//! `/readyz`, the bridge's `/status`) and `pusher status`, checked against a known state.
//!
//! - `bridge_metrics_and_status_count_known_traffic_and_show_position_lag_and_a_sync`: 20
//!   inserts, then 10 updates of one row inside the dedup window: the counters say 30 changes
//!   read, 9 merged, 21 published and confirmed; caught up, the lag is 0 s and 0 bytes, the
//!   position and the binlog end are the server's `SHOW MASTER STATUS`, the checkpoint is there
//!   too; an initial sync of the 20 rows shows up finished with 20 of 20 rows.
//! - `bridge_readyz_says_why_while_the_database_is_down`: alive but not ready, with the reason,
//!   until the database is back.
//! - `pusher_metrics_count_pushes_failures_and_parks_per_partner`: known answers of a partner
//!   double (success, 500, OCPI 2001) become pushes, transient and rejected failures and parks
//!   under the partner's label, with the queue depths beside them.
//! - `pusher_status_shows_the_bridge_and_each_partner_backlog_oldest_message_and_sync`: one
//!   partner synced and consuming, one paused holding a message: `pusher status` (text and
//!   `--json`) shows the bridge's position and lag, each partner's backlog, oldest message,
//!   active pusher, state and sync; with the bridge stopped it says the bridge part is unknown
//!   and still lists the partners. The pusher's metrics agree.
//!
//! Every endpoint listens on a free port; deadlines are generous and nothing asserts a timing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use system_tests::changes::tariff_insert;
use system_tests::http_probe::{bridge_status, eventually, http_get, sample};
use system_tests::{
    bridge_config, declare_bound_queue, free_port, partner_entry, publish_messages, pusher_config,
    queue_len, shared_amqp_url, unique_name, BridgeProcess, BrokerCleanup, MariaDb, Mode,
    OcpiPartner, PartnerOptions, PusherConfig, PusherProcess,
};

const WAIT: Duration = Duration::from_secs(90);

// ---- helpers -----------------------------------------------------------------------------------

/// Runs blocking work (the mariadb client, child processes) off the async workers.
fn block<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

/// `/metrics` when it answers 200 (the process may still be starting).
async fn try_metrics(port: u16) -> Option<String> {
    match http_get(port, "/metrics").await {
        Some((200, body)) => Some(body),
        _ => None,
    }
}

async fn metrics_text(port: u16) -> String {
    match http_get(port, "/metrics").await {
        Some((200, body)) => body,
        other => panic!("GET /metrics on port {port}: {other:?}"),
    }
}

/// The server's binlog end: `SHOW MASTER STATUS` file and position.
fn master_status(db: &MariaDb) -> (String, u64) {
    let rows = block(|| db.query_rows("SHOW MASTER STATUS"));
    let row = rows.first().expect("SHOW MASTER STATUS returns a row");
    (row[0].clone(), row[1].parse().expect("a position"))
}

fn log_tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---- the bridge --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_metrics_and_status_count_known_traffic_and_show_position_lag_and_a_sync() {
    let db = block(MariaDb::start);
    block(|| db.exec("CREATE TABLE obs_items (id INT PRIMARY KEY, v INT NOT NULL)"));
    let url = shared_amqp_url();
    let exchange = unique_name("obs.x");
    let live = unique_name("obs.live");
    let target = unique_name("ocpi.obs.target");
    declare_bound_queue(&url, &exchange, &live).await;
    declare_bound_queue(&url, &exchange, &target).await;
    let _names = BrokerCleanup::new(
        &url,
        vec![live.clone(), target.clone()],
        vec![exchange.clone()],
    );
    let port = free_port();
    let toml = bridge_config(db.port(), &url, &exchange)
        .with(|c| {
            c.source.start = "end".into();
            // Wide enough that ten updates of one row in one transaction merge into one.
            c.dedup.window_ms = 1000;
            // No heartbeat message: every publish is a change, so the counts are exact.
            c.broker.heartbeat_secs = 3600;
            c.metrics.listen = format!("127.0.0.1:{port}");
        })
        .to_toml();
    let bridge = block(|| BridgeProcess::start(&toml));
    let context = || log_tail(&bridge.log(), 40);

    eventually(
        WAIT,
        "/readyz 200",
        async || match http_get(port, "/readyz").await {
            Some((200, body)) => Some(body),
            _ => None,
        },
        context,
    )
    .await;
    assert_eq!(
        http_get(port, "/healthz").await.map(|r| r.0),
        Some(200),
        "/healthz while streaming"
    );

    // Known traffic: 20 rows, then 10 updates of row 1 in one transaction.
    let values: Vec<String> = (1..=20).map(|i| format!("({i}, 0)")).collect();
    block(|| {
        db.exec(&format!(
            "INSERT INTO obs_items VALUES {}",
            values.join(", ")
        ))
    });
    eventually(
        WAIT,
        "20 inserts in the live queue",
        async || (queue_len(&url, &live).await >= 20).then_some(()),
        context,
    )
    .await;
    let updates = "UPDATE obs_items SET v = v + 1 WHERE id = 1;\n".repeat(10);
    block(|| db.exec(&format!("BEGIN;\n{updates}COMMIT;")));

    let mut fastest = 0.0f64;
    let text = eventually(
        WAIT,
        "the counters of 30 changes, 9 merged, 21 published and confirmed, caught up",
        async || {
            let text = try_metrics(port).await?;
            fastest = fastest.max(sample(&text, "cdc_bridge_changes_per_second").unwrap_or(0.0));
            let done = sample(&text, "cdc_bridge_changes_read_total") == Some(30.0)
                && sample(&text, "cdc_bridge_publishes_confirmed_total") == Some(21.0)
                && sample(&text, "cdc_bridge_binlog_lag_bytes") == Some(0.0)
                && sample(&text, "cdc_bridge_checkpoint_age_seconds") == Some(0.0);
            done.then_some(text)
        },
        context,
    )
    .await;
    assert_eq!(
        queue_len(&url, &live).await,
        21,
        "20 inserts and one merged update"
    );
    for (series, expected) in [
        ("cdc_bridge_ready", 1.0),
        ("cdc_bridge_dedup_merged_total", 9.0),
        ("cdc_bridge_published_total", 21.0),
        ("cdc_bridge_unconfirmed_publishes", 0.0),
        ("cdc_bridge_binlog_lag_seconds", 0.0),
        ("cdc_bridge_snapshot_rows_total", 0.0),
        ("cdc_bridge_syncs_waiting", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(expected), "{series}:\n{text}");
    }
    assert!(
        fastest > 0.0 && fastest <= 60.0,
        "changes/s right after 30 changes should be positive and at most 30 per second-ish: \
         {fastest}\n{text}"
    );
    for family in [
        "# TYPE cdc_bridge_changes_read_total counter",
        "# TYPE cdc_bridge_binlog_lag_seconds gauge",
        "# HELP cdc_bridge_sync_rows_done ",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }

    // /status: the position is the server's end, and so is the checkpoint.
    let (file, pos) = master_status(&db);
    let status = bridge_status(port).await;
    assert_eq!(status["state"], "streaming", "{status:#}");
    assert_eq!(status["ready"], true, "{status:#}");
    assert_eq!(status["position"]["file"], file.as_str(), "{status:#}");
    assert_eq!(status["position"]["pos"], pos, "{status:#}");
    assert_eq!(
        status["lag"]["server_end"]["file"],
        file.as_str(),
        "{status:#}"
    );
    assert_eq!(status["lag"]["server_end"]["pos"], pos, "{status:#}");
    assert_eq!(status["lag"]["bytes"], 0, "{status:#}");
    assert_eq!(status["checkpoint"]["file"], file.as_str(), "{status:#}");
    assert_eq!(status["checkpoint"]["pos"], pos, "{status:#}");
    assert_eq!(status["changes_read"], 30, "{status:#}");
    assert_eq!(status["syncs"], serde_json::json!([]), "{status:#}");

    // An initial sync of the 20 rows into `target`.
    let (exit, out) = block(|| {
        BridgeProcess::run_to_exit(
            &toml,
            &[
                "sync",
                "start",
                "--queue",
                &target,
                "--tables",
                "app.obs_items",
            ],
            Duration::from_secs(60),
        )
    });
    assert!(exit.success(), "`bridge sync start` failed: {out}");
    let mut seen_running = Vec::new();
    let sync = eventually(
        WAIT,
        "the sync of `target` finished in /status",
        async || {
            // A running sync shows under its id; whatever is seen of it must be plausible.
            let text = try_metrics(port).await?;
            for line in text.lines().filter(|l| {
                l.starts_with("cdc_bridge_sync_rows_done{") && l.contains(target.as_str())
            }) {
                seen_running.push(line.to_string());
            }
            let status = bridge_status(port).await;
            let sync = status["syncs"]
                .as_array()?
                .iter()
                .find(|s| s["queue"] == target.as_str())?
                .clone();
            (sync["state"] == "finished").then_some(sync)
        },
        context,
    )
    .await;
    assert_eq!(sync["rows_done"], 20, "{sync:#}");
    assert_eq!(sync["rows_total"], 20, "{sync:#}");
    for line in &seen_running {
        let value: f64 = line
            .rsplit(' ')
            .next()
            .unwrap_or("x")
            .parse()
            .unwrap_or(-1.0);
        assert!(
            (0.0..=20.0).contains(&value),
            "implausible progress: {line}"
        );
    }
    let text = metrics_text(port).await;
    assert_eq!(
        sample(&text, "cdc_bridge_snapshot_rows_total"),
        Some(20.0),
        "{text}"
    );

    // The sync's watermark rows moved the binlog: the bridge follows to the new end.
    eventually(
        WAIT,
        "the position at the server's end again after the sync",
        async || {
            let (file, pos) = master_status(&db);
            let status = bridge_status(port).await;
            (status["position"]["file"] == file.as_str()
                && status["position"]["pos"] == pos
                && status["lag"]["bytes"] == 0)
                .then_some(())
        },
        context,
    )
    .await;
    let mut bridge = bridge;
    let exit = block(|| bridge.terminate());
    assert!(exit.success(), "bridge exit {exit:?}\n{}", bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_readyz_says_why_while_the_database_is_down() {
    let mut db = block(MariaDb::start);
    let url = shared_amqp_url();
    let exchange = unique_name("obs.down.x");
    let queue = unique_name("obs.down.q");
    declare_bound_queue(&url, &exchange, &queue).await;
    let _names = BrokerCleanup::new(&url, vec![queue], vec![exchange.clone()]);
    block(|| db.stop());
    let port = free_port();
    let toml = bridge_config(db.port(), &url, &exchange)
        .with(|c| c.metrics.listen = format!("127.0.0.1:{port}"))
        .to_toml();
    let bridge = block(|| BridgeProcess::start(&toml));
    let context = || log_tail(&bridge.log(), 40);

    let reason = eventually(
        WAIT,
        "/readyz 503 naming the database",
        async || match http_get(port, "/readyz").await {
            Some((503, body)) if body.contains("waiting for the database") => Some(body),
            _ => None,
        },
        context,
    )
    .await;
    assert_eq!(reason.lines().count(), 1, "one line: {reason:?}");
    assert!(
        reason.contains(&format!("127.0.0.1:{}", db.port())),
        "the reason names the database: {reason}"
    );
    assert_eq!(
        http_get(port, "/healthz").await,
        Some((200, "ok\n".to_string())),
        "waiting is alive"
    );
    let text = metrics_text(port).await;
    assert_eq!(sample(&text, "cdc_bridge_ready"), Some(0.0), "{text}");
    let status = bridge_status(port).await;
    assert_eq!(status["ready"], false, "{status:#}");
    assert_eq!(status["state"], "waiting for the database", "{status:#}");

    block(|| db.start_again());
    eventually(
        WAIT,
        "/readyz 200 once the database is back",
        async || (http_get(port, "/readyz").await?.0 == 200).then_some(()),
        context,
    )
    .await;
    let text = metrics_text(port).await;
    assert_eq!(sample(&text, "cdc_bridge_ready"), Some(1.0), "{text}");
    let mut bridge = bridge;
    assert!(block(|| bridge.terminate()).success());
}

// ---- the pusher --------------------------------------------------------------------------------

const TOKEN_ENV: &str = "OBS_PARTNER_TOKEN";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_metrics_count_pushes_failures_and_parks_per_partner() {
    let partner = OcpiPartner::start(PartnerOptions::v221()).await;
    let url = shared_amqp_url();
    let port = free_port();
    let cfg = pusher_config(&url)
        .partner(partner_entry("acme", &partner, TOKEN_ENV))
        .with(|c| {
            c.name = "obs-metrics".into();
            c.metrics_listen = format!("127.0.0.1:{port}");
        });
    let _names = BrokerCleanup::of_pusher(&url, &cfg);
    let env = [(TOKEN_ENV, partner.options().token.as_str())];
    let mut pusher = block(|| PusherProcess::start_with_env(&cfg.to_toml(), &env));
    assert!(
        pusher
            .wait_for_log_async("partner active: consuming", WAIT)
            .await,
        "the pusher did not start consuming:\n{}",
        log_tail(&pusher.log(), 40)
    );
    let context = || log_tail(&pusher.log(), 40);
    let acme = |series: &str| format!("{series}{{partner=\"acme\"}}");
    let failures =
        |class: &str| format!("cdc_pusher_failures_total{{partner=\"acme\",class=\"{class}\"}}");

    // Five accepted.
    let five: Vec<_> = (0..5)
        .map(|i| tariff_insert(&format!("OBS-{i}"), 1, i + 1))
        .collect();
    publish_messages(&url, &cfg.exchange, &five).await;
    let text = eventually(
        WAIT,
        "5 pushes",
        async || {
            let text = try_metrics(port).await?;
            (sample(&text, &acme("cdc_pusher_pushes_total")) == Some(5.0)
                && sample(&text, &acme("cdc_pusher_partner_active")) == Some(1.0))
            .then_some(text)
        },
        context,
    )
    .await;
    assert_eq!(sample(&text, "cdc_pusher_ready"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, &acme("cdc_pusher_partner_active")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &acme("cdc_pusher_partner_paused")),
        Some(0.0),
        "{text}"
    );
    for class in ["transient", "rejected", "partner_level", "unsendable"] {
        assert_eq!(
            sample(&text, &failures(class)),
            Some(0.0),
            "{class}:\n{text}"
        );
    }
    let rate = sample(&text, &acme("cdc_pusher_pushes_per_second")).unwrap_or(-1.0);
    assert!(
        (0.0..=10.0).contains(&rate),
        "pushes/s after 5 pushes: {rate}\n{text}"
    );

    // Two answers of HTTP 500, then success: transient failures, one more push.
    partner.set_mode_for(Mode::Http(500), 2);
    publish_messages(&url, &cfg.exchange, &[tariff_insert("OBS-T", 1, 10)]).await;
    let text = eventually(
        WAIT,
        "a push after transient failures",
        async || {
            let text = try_metrics(port).await?;
            (sample(&text, &acme("cdc_pusher_pushes_total")) == Some(6.0)).then_some(text)
        },
        context,
    )
    .await;
    let transient = sample(&text, &failures("transient")).unwrap_or(0.0);
    assert!(
        (1.0..=2.0).contains(&transient),
        "transient: {transient}\n{text}"
    );

    // Refused (OCPI 2001): parked, counted as rejected.
    partner.set_mode(Mode::Ocpi(2001));
    publish_messages(&url, &cfg.exchange, &[tariff_insert("OBS-R", 1, 11)]).await;
    let text = eventually(
        WAIT,
        "a rejected message parked, the parking queue's depth read",
        async || {
            let text = try_metrics(port).await?;
            (sample(&text, &acme("cdc_pusher_parked_total")) == Some(1.0)
                && sample(&text, &acme("cdc_pusher_parked_messages")) == Some(1.0))
            .then_some(text)
        },
        context,
    )
    .await;
    partner.clear_mode();
    assert_eq!(sample(&text, &failures("rejected")), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, &acme("cdc_pusher_pushes_total")),
        Some(6.0),
        "{text}"
    );
    assert_eq!(queue_len(&url, &cfg.parking_queue("acme")).await, 1);

    // A message the mapping cannot place: parked without a call.
    let mut unmapped = tariff_insert("OBS-U", 1, 12);
    if let change_message::Message::Change(change) = &mut unmapped {
        change.table = "not_mapped".into();
    }
    publish_messages(&url, &cfg.exchange, &[unmapped]).await;
    let text = eventually(
        WAIT,
        "the unmapped message parked as unsendable, nothing waiting",
        async || {
            let text = try_metrics(port).await?;
            (sample(&text, &failures("unsendable")) == Some(1.0)
                && sample(&text, &acme("cdc_pusher_parked_messages")) == Some(2.0)
                && sample(
                    &text,
                    "cdc_pusher_backlog_messages{partner=\"acme\",state=\"ready\"}",
                ) == Some(0.0)
                && sample(
                    &text,
                    "cdc_pusher_backlog_messages{partner=\"acme\",state=\"unacked\"}",
                ) == Some(0.0))
            .then_some(text)
        },
        context,
    )
    .await;
    assert_eq!(
        sample(&text, &acme("cdc_pusher_parked_total")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &acme("cdc_pusher_oldest_message_age_seconds")),
        Some(0.0),
        "nothing waits:\n{text}"
    );
    assert_eq!(http_get(port, "/healthz").await.map(|r| r.0), Some(200));
    assert_eq!(http_get(port, "/readyz").await.map(|r| r.0), Some(200));
    assert!(block(|| pusher.terminate()).success());
}

/// `pusher status --json`, parsed.
fn status_json(cfg: &PusherConfig, env: &[(&str, &str)]) -> Value {
    let (exit, out) = block(|| {
        PusherProcess::run_to_exit_with_env(
            &cfg.to_toml(),
            &["status", "--json"],
            env,
            Duration::from_secs(60),
        )
    });
    assert!(
        exit.success(),
        "`pusher status --json` failed ({exit}):\n{out}"
    );
    let start = out
        .find('{')
        .unwrap_or_else(|| panic!("no JSON object:\n{out}"));
    serde_json::Deserializer::from_str(&out[start..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("`pusher status --json` printed no valid JSON:\n{out}"))
}

fn partner_of<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["partners"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["partner"] == id))
        .unwrap_or_else(|| panic!("no partner {id}: {report:#}"))
}

/// The cells of the text line of partner `id`: columns are separated by two spaces or more,
/// so a cell holding single spaces ("finished (17 rows)") stays whole.
fn partner_line<'a>(text: &'a str, id: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .unwrap_or_else(|| panic!("no line for {id}:\n{text}"))
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_status_shows_the_bridge_and_each_partner_backlog_oldest_message_and_sync() {
    const N: usize = 15;
    let synced = OcpiPartner::start(PartnerOptions::v221()).await;
    let refusing = OcpiPartner::start(PartnerOptions::v221()).await;
    let db = block(MariaDb::start);
    let schema_path = system_tests::workspace_root().join("config/ocpi-example/schema.sql");
    let schema = std::fs::read_to_string(&schema_path).expect("the example schema");
    let tariffs: Vec<String> = (0..N)
        .map(|i| {
            format!(
                "('NL', 'EXA', 'OBS-{i:02}', 'EUR', 'REGULAR', \
                 '[{{\"price_components\": [{{\"type\": \"ENERGY\", \"price\": 0.3, \"step_size\": 1}}]}}]', \
                 0, '2026-01-05 09:00:00.000')"
            )
        })
        .collect();
    // Outside the binlog: only the sync brings them to a partner.
    block(|| {
        db.exec(&format!(
            "SET sql_log_bin = 0;\n{schema}\nUSE ocpi;\nINSERT INTO tariffs (country_code, \
             party_id, id, currency, type, elements, deleted, last_updated) VALUES {};",
            tariffs.join(", ")
        ))
    });
    let total: u64 = block(|| db.query_value("SELECT COUNT(*) FROM ocpi.tariffs"))
        .parse()
        .expect("a count");

    let url = shared_amqp_url();
    let bridge_port = free_port();
    let pusher_port = free_port();
    let token = synced.options().token.clone();
    assert_eq!(
        token,
        refusing.options().token,
        "one token for both doubles"
    );
    let mut synced_entry = partner_entry("synced", &synced, TOKEN_ENV);
    synced_entry.tables = vec!["ocpi.tariffs".into()];
    let mut refusing_entry = partner_entry("refusing", &refusing, TOKEN_ENV);
    refusing_entry.tables = vec!["ocpi.tariffs".into()];
    refusing_entry.probe_interval_secs = 60;
    refusing_entry.max_probe_interval_secs = 60;
    let cfg = pusher_config(&url)
        .partner(synced_entry)
        .partner(refusing_entry)
        .with(|c| {
            c.name = "obs-status".into();
            c.metrics_listen = format!("127.0.0.1:{pusher_port}");
            c.bridge_status_url = Some(format!("http://127.0.0.1:{bridge_port}/status"));
        });
    let _names = BrokerCleanup::of_pusher(&url, &cfg);
    let env = [(TOKEN_ENV, token.as_str())];
    system_tests::pusher_cli::setup_queues(&cfg, &env);
    let bridge_toml = bridge_config(db.port(), &url, &cfg.exchange)
        .with(|c| {
            c.source.start = "end".into();
            c.capture.databases = vec!["ocpi".into()];
            c.metrics.listen = format!("127.0.0.1:{bridge_port}");
        })
        .to_toml();
    // Syncs may target only the pusher's partner queues.
    let bridge_toml = format!(
        "{bridge_toml}\n[sync]\nqueue_prefix = \"{}\"\n",
        cfg.queue_prefix
    );
    let mut bridge = block(|| BridgeProcess::start(&bridge_toml));
    // The pusher's own endpoints stay on the run config; `status` needs no listener.
    let mut pusher = block(|| PusherProcess::start_with_env(&cfg.to_toml(), &env));
    let context = || {
        format!(
            "--- pusher ---\n{}\n--- bridge ---\n{}",
            log_tail(&pusher.log(), 40),
            log_tail(&bridge.log(), 30)
        )
    };
    eventually(
        WAIT,
        "the bridge ready and both partners consuming",
        async || {
            let log = pusher.log();
            let consuming = ["synced", "refusing"].iter().all(|id| {
                log.lines().any(|l| {
                    l.contains("partner active: consuming") && l.contains(&format!("partner={id}"))
                })
            });
            let text = try_metrics(pusher_port).await?;
            let active = ["synced", "refusing"].iter().all(|id| {
                sample(
                    &text,
                    &format!("cdc_pusher_partner_active{{partner=\"{id}\"}}"),
                ) == Some(1.0)
            });
            let ready = http_get(bridge_port, "/readyz").await?.0 == 200;
            (consuming && active && ready).then_some(())
        },
        context,
    )
    .await;

    // A request for a queue outside the bridge's sync.queue_prefix is refused by the bridge:
    // `pusher sync` shows the refusal and fails (it used to say "requested" and exit 0).
    let outside = cfg
        .clone()
        .with(|c| c.queue_prefix = format!("outside-{}", c.queue_prefix));
    let _outside_names = BrokerCleanup::of_pusher(&url, &outside);
    let (exit, out) = block(|| {
        PusherProcess::run_to_exit_with_env(&outside.to_toml(), &["sync", "synced"], &env, WAIT)
    });
    assert!(
        !exit.success()
            && out.contains("the bridge refused the sync request")
            && out.contains("queue_prefix"),
        "`pusher sync` of a queue the bridge refuses did not fail with the bridge's reason:\n{out}\n{}",
        context()
    );

    // The sync of `synced`: the bridge accepts it, and `pusher sync` says so.
    let (exit, out) = block(|| {
        PusherProcess::run_to_exit_with_env(&cfg.to_toml(), &["sync", "synced"], &env, WAIT)
    });
    assert!(
        exit.success() && out.contains("the bridge accepted it"),
        "`pusher sync synced` failed or did not show the bridge's answer: {out}"
    );
    eventually(
        WAIT,
        "every synced tariff PUT to the synced partner",
        async || {
            let puts = synced
                .requests()
                .iter()
                .filter(|r| r.method == "PUT")
                .count();
            (puts >= total as usize).then_some(())
        },
        context,
    )
    .await;

    // The refusing partner answers 401 from now on; one new tariff reaches both queues.
    refusing.set_mode(Mode::Http(401));
    let written_at = unix_now();
    block(|| {
        db.exec(
            "USE ocpi;\nINSERT INTO tariffs (country_code, party_id, id, currency, type, \
             elements, deleted, last_updated) VALUES ('NL', 'EXA', 'OBS-NEW', 'EUR', 'REGULAR', \
             '[{\"price_components\": [{\"type\": \"ENERGY\", \"price\": 0.4, \"step_size\": 1}]}]', \
             0, '2026-02-01 09:00:00.000');",
        )
    });
    eventually(
        WAIT,
        "the refusing partner paused holding its message, the bridge caught up",
        async || {
            let text = try_metrics(pusher_port).await?;
            let paused =
                sample(&text, "cdc_pusher_partner_paused{partner=\"refusing\"}") == Some(1.0);
            let waiting = sample(
                &text,
                "cdc_pusher_backlog_messages{partner=\"refusing\",state=\"unacked\"}",
            ) == Some(1.0)
                && sample(
                    &text,
                    "cdc_pusher_backlog_messages{partner=\"refusing\",state=\"ready\"}",
                ) == Some(0.0);
            let synced_idle = sample(
                &text,
                "cdc_pusher_backlog_messages{partner=\"synced\",state=\"ready\"}",
            ) == Some(0.0)
                && sample(
                    &text,
                    "cdc_pusher_backlog_messages{partner=\"synced\",state=\"unacked\"}",
                ) == Some(0.0);
            let status = bridge_status(bridge_port).await;
            let caught_up = status["lag"]["bytes"] == 0;
            (paused && waiting && synced_idle && caught_up).then_some(())
        },
        context,
    )
    .await;
    let text = metrics_text(pusher_port).await;
    let age = sample(
        &text,
        "cdc_pusher_oldest_message_age_seconds{partner=\"refusing\"}",
    )
    .unwrap_or_else(|| panic!("the paused partner's oldest message age is known:\n{text}"));
    assert!(
        age >= 0.0 && age <= (unix_now() - written_at + 2) as f64,
        "oldest age {age} s, written {} s ago\n{text}",
        unix_now() - written_at
    );
    assert_eq!(
        sample(
            &text,
            "cdc_pusher_failures_total{partner=\"refusing\",class=\"partner_level\"}"
        ),
        Some(1.0),
        "{text}"
    );

    // `pusher status --json` against the known state.
    let (file, pos) = master_status(&db);
    let report = status_json(&cfg, &env);
    assert!(report["bridge_error"].is_null(), "{report:#}");
    let bridge_part = &report["bridge"];
    assert_eq!(bridge_part["state"], "streaming", "{report:#}");
    assert_eq!(bridge_part["ready"], true, "{report:#}");
    assert_eq!(bridge_part["position"]["file"], file.as_str(), "{report:#}");
    assert_eq!(bridge_part["position"]["pos"], pos, "{report:#}");
    assert_eq!(bridge_part["lag"]["seconds"], 0, "{report:#}");
    assert_eq!(bridge_part["lag"]["bytes"], 0, "{report:#}");

    let s = partner_of(&report, "synced");
    assert_eq!(s["ready"], 0, "{s:#}");
    assert_eq!(s["unacked"], 0, "{s:#}");
    assert_eq!(s["parked"], 0, "{s:#}");
    assert_eq!(s["active_pusher"], "obs-status", "{s:#}");
    assert_eq!(s["state"], "consuming", "{s:#}");
    assert!(s["oldest_age_s"].is_null(), "nothing waits: {s:#}");
    assert_eq!(s["sync"]["state"], "finished", "{s:#}");
    assert_eq!(s["sync"]["queue"], cfg.queue("synced"), "{s:#}");
    assert_eq!(s["sync"]["rows_done"], total, "{s:#}");
    assert_eq!(s["sync"]["rows_total"], total, "{s:#}");

    let r = partner_of(&report, "refusing");
    assert_eq!(r["ready"], 0, "{r:#}");
    assert_eq!(r["unacked"], 1, "{r:#}");
    assert_eq!(r["parked"], 0, "{r:#}");
    assert_eq!(r["active_pusher"], "obs-status", "{r:#}");
    assert_eq!(r["state"], "paused", "{r:#}");
    assert!(
        r["reason"].as_str().is_some_and(|why| why.contains("401")),
        "{r:#}"
    );
    let published = r["oldest_published"].as_u64().expect("oldest_published");
    assert!(
        published + 1 >= written_at && published <= unix_now(),
        "published {published}, written at {written_at}: {r:#}"
    );
    assert!(r["sync"].is_null(), "no sync for this queue: {r:#}");

    // The same as text.
    let (exit, out) =
        block(|| PusherProcess::run_to_exit_with_env(&cfg.to_toml(), &["status"], &env, WAIT));
    assert!(exit.success(), "`pusher status` failed: {out}");
    assert!(
        out.contains(&format!("  position    {file}:{pos}")),
        "the position line:\n{out}"
    );
    assert!(
        out.contains("  lag         0 s, 0 bytes"),
        "the lag line:\n{out}"
    );
    let header = out
        .lines()
        .find(|l| l.starts_with("PARTNER"))
        .unwrap_or_else(|| panic!("no header:\n{out}"));
    for column in [
        "READY",
        "UNACKED",
        "OLDEST",
        "PARKED",
        "ACTIVE PUSHER",
        "STATE",
        "SYNC",
    ] {
        assert!(header.contains(column), "{column} in the header:\n{out}");
    }
    let cells = partner_line(&out, "synced");
    assert_eq!(
        &cells[..7],
        ["synced", "0", "0", "none", "0", "obs-status", "consuming"],
        "{out}"
    );
    assert_eq!(cells[7], format!("finished ({total} rows)"), "{out}");
    let cells = partner_line(&out, "refusing");
    assert_eq!(&cells[..3], ["refusing", "0", "1"], "{out}");
    assert!(
        cells[3].ends_with('s') && cells[3] != "unknown",
        "a known age: {:?}\n{out}",
        cells[3]
    );
    assert_eq!(&cells[4..8], ["0", "obs-status", "paused", "-"], "{out}");

    // Without the bridge: its part is unknown, said with the fix; the partners are still there.
    assert!(block(|| bridge.terminate()).success());
    let (exit, out) =
        block(|| PusherProcess::run_to_exit_with_env(&cfg.to_toml(), &["status"], &env, WAIT));
    assert!(
        exit.success(),
        "`pusher status` without the bridge failed: {out}"
    );
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("bridge: unknown: cannot reach")
            && first.contains(&format!("127.0.0.1:{bridge_port}"))
            && first.contains("status_url"),
        "{out}"
    );
    let cells = partner_line(&out, "synced");
    assert_eq!(
        cells[7], "unknown",
        "the sync is unknown without the bridge:\n{out}"
    );
    let report = status_json(&cfg, &env);
    assert!(report["bridge"].is_null(), "{report:#}");
    assert!(report["bridge_error"].is_string(), "{report:#}");
    assert_eq!(partner_of(&report, "refusing")["unacked"], 1, "{report:#}");
    assert!(block(|| pusher.terminate()).success());

    // Without the broker: the partners are unknown, said with the broker's address (never its
    // password); the command still answers.
    let dead_port = free_port();
    let no_broker =
        cfg.with(|c| c.broker_url = format!("amqp://guest:guest@127.0.0.1:{dead_port}/%2f"));
    let (exit, out) = block(|| {
        PusherProcess::run_to_exit_with_env(&no_broker.to_toml(), &["status"], &env, WAIT)
    });
    assert!(
        exit.success(),
        "`pusher status` without the broker failed: {out}"
    );
    assert!(out.starts_with("bridge: unknown:"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("partners: unknown: the broker cannot be asked"))
        .unwrap_or_else(|| panic!("the broker's part is not said:\n{out}"));
    assert!(line.contains(&format!("127.0.0.1:{dead_port}")), "{out}");
    assert!(
        !out.contains("guest:guest"),
        "the password was printed:\n{out}"
    );
}
