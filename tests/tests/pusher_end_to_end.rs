//! The whole chain: MariaDB (binlog) -> bridge -> RabbitMQ -> pusher -> OCPI partner double.
//!
//! Each test starts a private MariaDB with the example OCPI schema (`config/ocpi-example/`,
//! loaded outside the binlog so only the test's own changes are captured), runs `pusher setup`
//! so the partner queues are bound before the bridge publishes (the bridge stops on an
//! unroutable publish), then starts the bridge (reading from the start of the binlog) and one
//! pusher. Changes are made with SQL; what the partner doubles received and hold is compared
//! with the database.
//!
//! - `every_module_reaches_a_221_and_a_211_partner_of_one_pusher_as_the_mapping_says`: inserts,
//!   updates, soft deletes and deletes of every example table, pushed to a 2.2.1 and a 2.1.1
//!   partner by one pusher: the requests (method, path, query, body per version), the headers
//!   per version, what was parked and why, and the objects each partner holds at the end.
//! - `ten_thousand_changes_of_a_thousand_tariffs_leave_the_partner_equal_to_the_database`:
//!   1,000 tariffs inserted and updated 9,000 times in 90 transactions; the partner's final
//!   state equals the database's, in order per record, nothing parked, the queue drained.
//! - `a_backlog_of_ten_thousand_changes_drains_coalesced_to_the_database_state`: the same
//!   with the pusher started once all 10,000 changes wait in the queue (a partner back after
//!   an outage).
//! - `locations_created_with_their_evses_and_connectors_in_one_transaction_arrive_whole`:
//!   new sites (Location, EVSEs, Connectors) created in one transaction each reach the
//!   partner, nothing parked: a child must not overtake its parent (the receiver answers
//!   2003 "Unknown Location/EVSE" to a child whose parent it does not hold yet).
//! - `a_location_updated_just_before_its_evses_is_not_refused_as_older_than_stored`: a
//!   Location PATCH followed by its EVSEs' PATCHes (newer `last_updated`) in one transaction:
//!   the receiver copies an EVSE's `last_updated` into its Location, so a Location PATCH that
//!   arrives after its EVSE's is refused as "older than stored" and must not happen.
//!
//! - `changes_and_presence_from_an_unexpected_broker_user_are_refused_and_never_mute_a_record`:
//!   a second broker user (made for the test) publishes a forged change of a record (newer
//!   `seq`, other content) into the partner queue: it is parked with a reason naming that user
//!   and `broker.bridge_users`, never pushed, and the bridge's next change of the record still
//!   reaches the partner; its presence announcements (a pusher name the assignment would give
//!   the partner to) are ignored with a warning and the partner stays with the running pusher.
//!
//! Deadlines are generous (a shared 2-core machine): nothing here asserts a timing.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use system_tests::example_mapping::{
    expected_object, normalize, patch_fields, without, Row, TableSpec, CONNECTORS, LOCATIONS,
    SESSIONS, TARIFFS, TOKENS,
};
use system_tests::ocpi_partner::module_requests;
use system_tests::ocpi_partner::parse_rfc3339;
use system_tests::{
    bridge_config, drain_changes, drain_received, partner_entry, publish_bodies_routed,
    pusher_config, queue_len, shared_amqp_url, unique_name, BridgeProcess, BrokerCleanup,
    BrokerUser, DatabaseEntry, MariaDb, OcpiPartner, PartnerOptions, PusherConfig, PusherProcess,
    RecordedRequest,
};
use uuid::Uuid;

/// Upper bound for one phase of changes to reach the partners (never asserted as a timing).
const DELIVERY: Duration = Duration::from_secs(180);
/// Upper bound for the 10,000-change run to drain.
const BULK_DELIVERY: Duration = Duration::from_secs(900);
/// How long to keep watching, once everything expected arrived, for anything unexpected.
const QUIET: Duration = Duration::from_millis(1500);

// ------------------------------------------------------------------------------------------------
// The chain
// ------------------------------------------------------------------------------------------------

/// MariaDB with the example schema, bridge and pusher running, partner queues bound.
/// Field order is drop order: processes first, then the database, then the broker names.
struct Chain {
    /// `None` until started (see [`Chain::start_pusher`]).
    pusher: Option<PusherProcess>,
    bridge: BridgeProcess,
    db: MariaDb,
    url: String,
    cfg: PusherConfig,
    env: Vec<(String, String)>,
    _names: BrokerCleanup,
}

impl Chain {
    /// Starts everything for `partners` (id, double), in the order the system needs.
    async fn start(partners: &[(&str, &OcpiPartner)]) -> Chain {
        let mut chain = Chain::start_without_pusher(partners).await;
        chain.start_pusher();
        chain
    }

    /// MariaDB, `pusher setup` and the bridge: changes pile up in the partner queues.
    async fn start_without_pusher(partners: &[(&str, &OcpiPartner)]) -> Chain {
        let db = MariaDb::start();
        let schema_path = system_tests::workspace_root().join("config/ocpi-example/schema.sql");
        let schema = std::fs::read_to_string(&schema_path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", schema_path.display()));
        // Outside the binlog: the partners start empty and get only what the test changes.
        block(|| db.exec(&format!("SET sql_log_bin = 0;\n{schema}")));

        let url = shared_amqp_url();
        let mut cfg =
            pusher_config(&url).with(|c| c.database = Some(DatabaseEntry::reader(db.port())));
        let mut env = Vec::new();
        for (id, partner) in partners {
            let token_env = format!("TOKEN_{}", id.to_uppercase());
            env.push((token_env.clone(), partner.options().token.clone()));
            cfg = cfg.partner(partner_entry(id, partner, &token_env));
        }
        let names = BrokerCleanup::of_pusher(&url, &cfg);
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        system_tests::pusher_cli::setup_queues(&cfg, &env_refs);

        let bridge_toml = bridge_config(db.port(), &url, &cfg.exchange)
            .with(|c| {
                c.source.start = "start".into();
                c.capture.databases = vec!["ocpi".into()];
            })
            .to_toml();
        let bridge = BridgeProcess::start(&bridge_toml);
        Chain {
            pusher: None,
            bridge,
            db,
            url,
            cfg,
            env,
            _names: names,
        }
    }

    /// Waits until `done` holds for `partner` and its queue has nothing ready.
    async fn wait_state(&self, p: &Partner, what: &str, done: impl Fn(&OcpiPartner) -> bool) {
        let deadline = Instant::now() + DELIVERY;
        loop {
            if done(&p.double) && self.ready(&self.cfg.queue(p.id)).await == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not reached within {DELIVERY:?}; requests {:#?}\n{}",
                summary(&module_requests(&p.double)[p.mark..]),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn start_pusher(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.pusher = Some(PusherProcess::start_with_env(&self.cfg.to_toml(), &env));
    }

    /// Runs SQL in database `ocpi` with UTC session time (as the schema asks of applications).
    fn sql(&self, script: &str) {
        block(|| {
            self.db
                .exec(&format!("SET time_zone = '+00:00';\nUSE ocpi;\n{script}"))
        });
    }

    /// Rows of `table` (columns of its spec) matching `filter`, NULL as `None`.
    fn rows(&self, spec: &TableSpec, filter: &str) -> Vec<Row> {
        let sql = format!(
            "USE ocpi;\nSELECT {} FROM {} WHERE {filter} ORDER BY {}",
            spec.columns.join(", "),
            spec.table,
            spec.path.join(", ")
        );
        block(|| self.db.query_rows(&sql))
            .into_iter()
            .map(|values| {
                assert_eq!(values.len(), spec.columns.len(), "{sql}: {values:?}");
                spec.columns
                    .iter()
                    .zip(values)
                    .map(|(c, v)| (c.to_string(), (v != "NULL").then_some(v)))
                    .collect()
            })
            .collect()
    }

    /// The one row of `table` at these path ids, if it exists.
    fn row(&self, spec: &TableSpec, ids: &[&str]) -> Option<Row> {
        let filter = spec
            .path
            .iter()
            .zip(ids)
            .map(|(c, v)| format!("{c} = '{v}'"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut rows = self.rows(spec, &filter);
        assert!(
            rows.len() <= 1,
            "more than one {} row at {ids:?}",
            spec.table
        );
        rows.pop()
    }

    /// The CDR's `ocpi_object` column, parsed.
    fn cdr_object(&self, id: &str) -> Value {
        let text = block(|| {
            self.db.query_value(&format!(
                "SELECT ocpi_object FROM ocpi.cdrs WHERE id = '{id}'"
            ))
        });
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("CDR {id}: not JSON ({e}): {text}"))
    }

    async fn ready(&self, queue: &str) -> u32 {
        queue_len(&self.url, queue).await
    }

    /// The tail of the pusher's and the bridge's logs, for failure messages.
    fn logs(&self) -> String {
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        format!(
            "--- pusher log (tail) ---\n{}\n--- bridge log (tail) ---\n{}",
            self.pusher
                .as_ref()
                .map(|p| tail(p.log()))
                .unwrap_or_else(|| "(not started)".into()),
            tail(self.bridge.log())
        )
    }
}

/// Runs blocking work (the mariadb client, child processes) without stalling the runtime's
/// other tasks, among them the partner doubles.
fn block<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

fn summary(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| match &r.query {
            Some(q) => format!("{} {}?{q}", r.method, r.path),
            None => format!("{} {}", r.method, r.path),
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Assertions against the example mapping (written out independently of the pusher in the
// harness's `example_mapping`, shared with the demo's consistency check)
// ------------------------------------------------------------------------------------------------

fn assert_same(what: &str, got: &Value, expected: &Value) {
    assert_eq!(
        normalize(got),
        normalize(expected),
        "{what}:\n  got      {got}\n  expected {expected}"
    );
}

fn instant_of(value: Option<&Value>, what: &str) -> i128 {
    value
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .unwrap_or_else(|| panic!("{what}: no readable last_updated in {value:?}"))
}

fn row_instant(row: &Row, what: &str) -> i128 {
    row.get("last_updated")
        .and_then(|v| v.as_deref())
        .and_then(parse_rfc3339)
        .unwrap_or_else(|| panic!("{what}: row without last_updated: {row:?}"))
}

// ------------------------------------------------------------------------------------------------
// Expected requests
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Body {
    /// The whole object made of the current row.
    Full,
    /// The fields of these changed columns, made of the current row.
    Patch(&'static [&'static str]),
    /// `{field: value, last_updated}`, last_updated at least the instant (a delete event: the
    /// later of the row's and the commit time).
    Removal(&'static str, Value, i128),
    /// No body (DELETE).
    Empty,
    /// The CDR's `ocpi_object`, as stored.
    Cdr(&'static str),
}

#[derive(Clone, Debug)]
struct Expect {
    method: &'static str,
    spec: &'static TableSpec,
    ids: Vec<&'static str>,
    body: Body,
}

fn put(spec: &'static TableSpec, ids: &[&'static str]) -> Expect {
    Expect {
        method: "PUT",
        spec,
        ids: ids.to_vec(),
        body: Body::Full,
    }
}

fn patch(
    spec: &'static TableSpec,
    ids: &[&'static str],
    changed: &'static [&'static str],
) -> Expect {
    Expect {
        method: "PATCH",
        spec,
        ids: ids.to_vec(),
        body: Body::Patch(changed),
    }
}

fn removal(
    spec: &'static TableSpec,
    ids: &[&'static str],
    field: &'static str,
    value: Value,
    lu: i128,
) -> Expect {
    Expect {
        method: "PATCH",
        spec,
        ids: ids.to_vec(),
        body: Body::Removal(field, value, lu),
    }
}

fn delete(spec: &'static TableSpec, ids: &[&'static str]) -> Expect {
    Expect {
        method: "DELETE",
        spec,
        ids: ids.to_vec(),
        body: Body::Empty,
    }
}

fn post_cdr(id: &'static str) -> Expect {
    Expect {
        method: "POST",
        spec: &CDRS_MODULE,
        ids: Vec::new(),
        body: Body::Cdr(id),
    }
}

/// CDRs are POSTed to the bare endpoint; their body is a column, not fields.
const CDRS_MODULE: TableSpec = TableSpec {
    table: "cdrs",
    module: "cdrs",
    path: &[],
    columns: &[],
    fields: &[],
};

/// A partner double under test, with where the current phase began in its request list.
struct Partner {
    id: &'static str,
    version: &'static str,
    double: OcpiPartner,
    mark: usize,
}

impl Partner {
    /// Path and query the pusher must use for `expect`.
    fn target(&self, chain: &Chain, expect: &Expect) -> (String, Option<String>) {
        let mut path = format!("/ocpi/{}/{}", self.version, expect.spec.module);
        for id in &expect.ids {
            path.push('/');
            path.push_str(id);
        }
        let mut query = None;
        if expect.spec.table == "tokens" && self.version == "2.2.1" {
            let token_type = match chain.row(expect.spec, &expect.ids) {
                Some(row) => row["type"].clone().expect("type is NOT NULL"),
                // A deleted token: its ids say which one (see the test data).
                None => token_type_of(expect.ids[2]).to_string(),
            };
            if token_type != "RFID" {
                query = Some(format!("type={token_type}"));
            }
        }
        (path, query)
    }

    /// Checks the requests of the phase against `expected`, one request each, nothing else.
    fn check_phase(
        &self,
        chain: &Chain,
        phase: &str,
        requests: &[RecordedRequest],
        expected: &[Expect],
    ) {
        let got = summary(requests);
        let mut unmatched: Vec<&RecordedRequest> = requests.iter().collect();
        for expect in expected {
            let (path, query) = self.target(chain, expect);
            // The query is compared decoded: the pusher sends `type=APP%5FUSER` (it
            // percent-encodes the unreserved '_', which RFC 3986 2.3 says producers should not,
            // but which every URL decoder reads as `APP_USER`).
            let position = unmatched.iter().position(|r| {
                r.method == expect.method && r.path == path && decoded(&r.query) == query
            });
            let Some(position) = position else {
                panic!(
                    "{phase}, partner {} ({}): no {} {path} (query {query:?}); the phase's \
                     requests: {got:#?}\n{}",
                    self.id,
                    self.version,
                    expect.method,
                    chain.logs()
                );
            };
            let request = unmatched.remove(position);
            let what = format!(
                "{phase}, partner {} ({}): {} {path}",
                self.id, self.version, expect.method
            );
            self.check_body(chain, &what, request, expect);
        }
        assert!(
            unmatched.is_empty(),
            "{phase}, partner {} ({}): unexpected requests {:#?} (all: {got:#?})\n{}",
            self.id,
            self.version,
            summary(&unmatched.into_iter().cloned().collect::<Vec<_>>()),
            chain.logs()
        );
    }

    fn check_body(&self, chain: &Chain, what: &str, request: &RecordedRequest, expect: &Expect) {
        let body = || {
            request
                .body
                .clone()
                .unwrap_or_else(|| panic!("{what}: body is not JSON: {:?}", request.raw_body))
        };
        let current_row = || {
            chain
                .row(expect.spec, &expect.ids)
                .unwrap_or_else(|| panic!("{what}: the row is gone"))
        };
        match &expect.body {
            Body::Full => {
                let row = current_row();
                let expected = expected_object(expect.spec, self.version, &row);
                let body = body();
                if expect.spec.table == "sessions" && self.version == "2.1.1" {
                    check_embedded_location(what, &body, &row);
                }
                assert_same(
                    what,
                    &without(&body, &["location"]),
                    &Value::Object(expected),
                );
            }
            Body::Patch(changed) => {
                let fields = patch_fields(expect.spec, self.version, changed);
                let mut expected = expected_object(expect.spec, self.version, &current_row());
                expected.retain(|k, _| fields.contains(k));
                assert_eq!(
                    expected.keys().cloned().collect::<BTreeSet<_>>(),
                    fields,
                    "{what}: test data leaves a patched field NULL"
                );
                assert_same(what, &body(), &Value::Object(expected));
            }
            Body::Removal(field, value, lu) => {
                let body = body();
                let keys: BTreeSet<&str> = body
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                assert_eq!(
                    keys,
                    BTreeSet::from([*field, "last_updated"]),
                    "{what}: a removal carries the one field and last_updated: {body}"
                );
                assert_eq!(&body[*field], value, "{what}: {body}");
                let at = instant_of(body.get("last_updated"), what);
                assert!(
                    at >= *lu,
                    "{what}: last_updated older than the row's last state: {body}"
                );
            }
            Body::Empty => assert!(
                request.raw_body.is_empty(),
                "{what}: a DELETE carries no body, got {:?}",
                String::from_utf8_lossy(&request.raw_body)
            ),
            Body::Cdr(id) => assert_eq!(body(), chain.cdr_object(id), "{what}: the CDR as stored"),
        }
        if request.method != "DELETE" {
            assert_eq!(
                request.header("content-type"),
                Some("application/json"),
                "{what}: Content-Type"
            );
        }
    }
}

fn decoded(query: &Option<String>) -> Option<String> {
    query.as_ref().map(|q| {
        percent_encoding::percent_decode_str(q)
            .decode_utf8_lossy()
            .into_owned()
    })
}

fn token_type_of(uid: &str) -> &'static str {
    if uid.starts_with("xapp") {
        "APP_USER"
    } else {
        "RFID"
    }
}

/// Waits until every partner received `counts[i]` module requests since its mark and holds
/// `parked[i]` messages in its parking queue, and its queue has nothing ready; then watches for
/// `QUIET` and returns each partner's requests of the phase (moving the marks).
async fn wait_phase(
    chain: &Chain,
    partners: &mut [&mut Partner],
    phase: &str,
    counts: &[usize],
    parked: &[u32],
) -> Vec<Vec<RecordedRequest>> {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let mut done = true;
        for (i, p) in partners.iter().enumerate() {
            let got = module_requests(&p.double).len() - p.mark;
            let parked_now = chain.ready(&chain.cfg.parking_queue(p.id)).await;
            let ready = chain.ready(&chain.cfg.queue(p.id)).await;
            done &= got >= counts[i] && parked_now >= parked[i] && ready == 0;
        }
        if done {
            break;
        }
        if Instant::now() >= deadline {
            let mut state = String::new();
            for p in partners.iter() {
                state.push_str(&format!(
                    "partner {} ({}): requests of the phase {:#?}, parked {}, ready {}\n",
                    p.id,
                    p.version,
                    summary(&module_requests(&p.double)[p.mark..]),
                    chain.ready(&chain.cfg.parking_queue(p.id)).await,
                    chain.ready(&chain.cfg.queue(p.id)).await,
                ));
            }
            panic!(
                "{phase}: not delivered within {DELIVERY:?} (expected {counts:?} requests, \
                 {parked:?} parked):\n{state}{}",
                chain.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "[pusher_end_to_end] {phase}: delivered in {:?}",
        DELIVERY.saturating_sub(deadline.saturating_duration_since(Instant::now()))
    );
    tokio::time::sleep(QUIET).await;
    let mut out = Vec::new();
    for (i, p) in partners.iter_mut().enumerate() {
        let all = module_requests(&p.double);
        let parked_now = chain.ready(&chain.cfg.parking_queue(p.id)).await;
        assert_eq!(
            parked_now,
            parked[i],
            "{phase}: partner {} ({}) parking queue (requests of the phase: {:#?})\n{}",
            p.id,
            p.version,
            summary(&all[p.mark..]),
            chain.logs()
        );
        out.push(all[p.mark..].to_vec());
        p.mark = all.len();
    }
    out
}

/// Headers of every module request: 2.2.1 Base64 token, request and correlation ids (UUIDs,
/// request ids unique), routing headers from our party to the partner's; 2.1.1 the plain token
/// and none of those.
fn check_headers(p: &Partner) {
    let requests = module_requests(&p.double);
    assert!(!requests.is_empty(), "partner {}: no requests", p.id);
    let token = &p.double.options().token;
    let mut request_ids = BTreeSet::new();
    for r in &requests {
        let what = format!("partner {} ({}): {} {}", p.id, p.version, r.method, r.path);
        let header = |name: &str| r.header(name).map(str::to_string);
        if p.version == "2.2.1" {
            let encoded = base64::engine::general_purpose::STANDARD.encode(token.as_bytes());
            assert_eq!(
                header("authorization"),
                Some(format!("Token {encoded}")),
                "{what}: Base64 token"
            );
            for name in ["x-request-id", "x-correlation-id"] {
                let value = header(name).unwrap_or_else(|| panic!("{what}: no {name}"));
                Uuid::parse_str(&value)
                    .unwrap_or_else(|e| panic!("{what}: {name} {value:?} is no UUID: {e}"));
            }
            assert!(
                request_ids.insert(header("x-request-id")),
                "{what}: X-Request-ID reused"
            );
            for (name, value) in [
                ("ocpi-from-country-code", "NL"),
                ("ocpi-from-party-id", "EXA"),
                ("ocpi-to-country-code", "DE"),
                ("ocpi-to-party-id", "PRT"),
            ] {
                assert_eq!(header(name).as_deref(), Some(value), "{what}: {name}");
            }
        } else {
            assert_eq!(
                header("authorization"),
                Some(format!("Token {token}")),
                "{what}: plain token"
            );
            for name in [
                "x-request-id",
                "x-correlation-id",
                "ocpi-from-country-code",
                "ocpi-from-party-id",
                "ocpi-to-country-code",
                "ocpi-to-party-id",
            ] {
                assert_eq!(header(name), None, "{what}: 2.1.1 has no {name}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Test 1: every module, two versions, one pusher
// ------------------------------------------------------------------------------------------------

const TOKEN_RFID: &str = "X04AABBCC";
const TOKEN_APP: &str = "xapp-1234";
/// The `ocpi_object` of the test's CDR, or of its credit CDR.
fn cdr_json(credit: bool) -> String {
    let sign = if credit { -1.0 } else { 1.0 };
    let mut cdr = serde_json::json!({
        "country_code": "NL", "party_id": "EXA",
        "id": if credit { "XCDR-1-CR" } else { "XCDR-1" },
        "start_date_time": "2026-03-01T10:00:00Z", "end_date_time": "2026-03-01T10:45:00.500Z",
        "session_id": "XSES-A",
        "cdr_token": {"country_code": "DE", "party_id": "MSP", "uid": TOKEN_RFID, "type": "RFID",
                      "contract_id": "DE-MSP-C00000001-1"},
        "auth_method": "WHITELIST",
        "cdr_location": {"id": "XLOC-A", "address": "Stationsplein 1", "city": "Utrecht",
                         "country": "NLD",
                         "coordinates": {"latitude": "52.089999", "longitude": "5.110278"},
                         "evse_uid": "XEVSE-A1", "evse_id": "NL*EXA*EXA1", "connector_id": "1",
                         "connector_standard": "IEC_62196_T2", "connector_format": "SOCKET",
                         "connector_power_type": "AC_3_PHASE"},
        "currency": "EUR",
        "charging_periods": [{"start_date_time": "2026-03-01T10:00:00Z",
                              "dimensions": [{"type": "ENERGY", "volume": 12.3456}],
                              "tariff_id": "XTAR-A"}],
        "total_cost": {"excl_vat": sign * 4.321, "incl_vat": sign * 5.2284},
        "total_energy": 12.3456, "total_time": 0.75,
        "last_updated": if credit { "2026-03-02T09:00:00Z" } else { "2026-03-01T10:46:00Z" },
    });
    if credit {
        cdr["credit"] = Value::Bool(true);
        cdr["credit_reference_id"] = Value::from("XCDR-1");
    }
    cdr.to_string()
}

/// The tariff whose elements carry a 2.2.1 field (`vat` in a price component): not a valid
/// 2.1.1 Tariff, so the pusher parks it for the 2.1.1 partner, with the field named, unsent.
const TARIFF_221_ONLY: &str = "XTAR-V";

/// The 2.2.1 partner's expected requests of a phase as the 2.1.1 partner gets them: the
/// example's CDRs are stored 2.2.1 objects, so a 2.1.1 partner is not pushed CDRs, nor the
/// tariff it cannot receive.
fn as_211_gets(expected: &[Expect]) -> Vec<Expect> {
    expected
        .iter()
        .filter(|e| e.spec.module != "cdrs" && !e.ids.contains(&TARIFF_221_ONLY))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_cdrs_tariffs_and_tokens_reach_strict_221_and_211_partners_as_the_mapping_says() {
    let mut p221 = Partner {
        id: "p221",
        version: "2.2.1",
        double: OcpiPartner::start(PartnerOptions::v221()).await,
        mark: 0,
    };
    let mut p211 = Partner {
        id: "p211",
        version: "2.1.1",
        double: OcpiPartner::start(PartnerOptions::v211()).await,
        mark: 0,
    };
    // How rows of every module but Locations render for both versions, against receivers
    // that enforce the object rules of their version. The Location tree (composite objects,
    // all three versions) is `pusher_composite.rs`'s; its rows are written here all the same,
    // for the 2.1.1 Sessions that embed their Location.
    let mut chain =
        Chain::start_without_pusher(&[("p221", &p221.double), ("p211", &p211.double)]).await;
    for partner in &mut chain.cfg.partners {
        partner.modules = if partner.id == "p211" {
            vec!["sessions".into(), "tariffs".into(), "tokens".into()]
        } else {
            vec![
                "sessions".into(),
                "cdrs".into(),
                "tariffs".into(),
                "tokens".into(),
            ]
        };
    }
    chain.start_pusher();

    // ---- Phase 1: top-level objects (Locations, Tariffs, Tokens) ---------------------------
    chain.sql(&format!(
        r#"
INSERT INTO locations (country_code, party_id, id, publish, name, address, city, postal_code,
                       state, country, latitude, longitude, parking_type, operator_name,
                       time_zone, opening_times, charging_when_closed)
VALUES ('NL', 'EXA', 'XLOC-A', 1, 'Stationsplein', 'Stationsplein 1', 'Utrecht', '3511 ED',
        'Utrecht', 'NLD', 52.089444, 5.110278, 'PARKING_LOT', 'Example Charging',
        'Europe/Amsterdam', '{{"twentyfourseven": true}}', 1);
INSERT INTO locations (country_code, party_id, id, address, city, country, latitude, longitude,
                       time_zone)
VALUES ('NL', 'EXA', 'XLOC-B', 'Havenkade 12', 'Rotterdam', 'NLD', 51.917222, 4.484722,
        'Europe/Amsterdam');
INSERT INTO tariffs (country_code, party_id, id, currency, type, tariff_alt_text, tariff_alt_url,
                     elements, start_date_time, end_date_time)
VALUES ('NL', 'EXA', 'XTAR-A', 'EUR', 'REGULAR', '[{{"language": "en", "text": "0.35 EUR/kWh"}}]',
        'https://example.com/tariffs/a',
        '[{{"price_components": [{{"type": "ENERGY", "price": 0.35, "step_size": 1}}]}}]',
        '2026-01-01 00:00:00.000', NULL),
       ('NL', 'EXA', 'XTAR-V', 'EUR', 'REGULAR', NULL, NULL,
        '[{{"price_components": [{{"type": "ENERGY", "price": 0.30, "vat": 21.0, "step_size": 1}}]}}]',
        NULL, NULL),
       ('NL', 'EXA', 'XTAR-B', 'EUR', NULL, NULL, NULL,
        '[{{"price_components": [{{"type": "TIME", "price": 2.0, "step_size": 60}}]}}]', NULL, NULL),
       ('NL', 'EXA', 'XTAR-C', 'EUR', 'AD_HOC_PAYMENT', NULL, NULL,
        '[{{"price_components": [{{"type": "FLAT", "price": 1.5, "step_size": 1}}]}}]', NULL,
        '2027-12-31 23:59:59.999');
INSERT INTO tokens (country_code, party_id, uid, type, contract_id, visual_number, issuer,
                    group_id, valid, whitelist, language, default_profile_type)
VALUES ('DE', 'MSP', '{TOKEN_RFID}', 'RFID', 'DE-MSP-C00000001-1', 'DE-MSP-00000001',
        'Example MSP', 'GRP-1', 1, 'ALLOWED', 'de', 'GREEN'),
       ('DE', 'MSP', '{TOKEN_APP}', 'APP_USER', 'DE-MSP-C00000002-2', NULL, 'Example MSP', NULL,
        1, 'ALWAYS', NULL, NULL);
"#
    ));
    let phase1 = vec![
        put(&TARIFFS, &["NL", "EXA", "XTAR-A"]),
        put(&TARIFFS, &["NL", "EXA", "XTAR-B"]),
        put(&TARIFFS, &["NL", "EXA", "XTAR-C"]),
        put(&TARIFFS, &["NL", "EXA", TARIFF_221_ONLY]),
        put(&TOKENS, &["DE", "MSP", TOKEN_RFID]),
        put(&TOKENS, &["DE", "MSP", TOKEN_APP]),
    ];
    // The APP_USER token is an OTHER token for 2.1.1, addressed by uid alone.
    let got = wait_phase(
        &chain,
        &mut [&mut p221, &mut p211],
        "phase 1 (inserts)",
        &[6, 5],
        &[0, 1],
    )
    .await;
    p221.check_phase(&chain, "phase 1", &got[0], &phase1);
    p211.check_phase(&chain, "phase 1", &got[1], &as_211_gets(&phase1));

    // ---- Phase 2: EVSEs (not pushed here; the tree of the 2.1.1 sessions' Locations) ------
    chain.sql(
        r#"
INSERT INTO evses (country_code, party_id, location_id, uid, evse_id, status, capabilities,
                   floor_level, latitude, longitude, physical_reference, parking_restrictions)
VALUES ('NL', 'EXA', 'XLOC-A', 'XEVSE-A1', 'NL*EXA*EXA1', 'AVAILABLE',
        'RFID_READER,REMOTE_START_STOP_CAPABLE', '-1', 52.089500, 5.110300, '1', '["EV_ONLY"]'),
       ('NL', 'EXA', 'XLOC-A', 'XEVSE-A2', NULL, 'AVAILABLE', '', NULL, NULL, NULL, NULL, NULL),
       ('NL', 'EXA', 'XLOC-B', 'XEVSE-B1', 'NL*EXA*EXB1', 'AVAILABLE', 'CREDIT_CARD_PAYABLE',
        NULL, NULL, NULL, 'B1', NULL);
"#,
    );

    // ---- Phase 3: Connectors and Sessions ---------------------------------------------------
    chain.sql(
        r#"
INSERT INTO connectors (country_code, party_id, location_id, evse_uid, id, standard, format,
                        power_type, max_voltage, max_amperage, max_electric_power, tariff_ids,
                        terms_and_conditions)
VALUES ('NL', 'EXA', 'XLOC-A', 'XEVSE-A1', '1', 'IEC_62196_T2', 'SOCKET', 'AC_3_PHASE', 230, 32,
        22000, '["XTAR-A"]', 'https://example.com/terms'),
       ('NL', 'EXA', 'XLOC-A', 'XEVSE-A1', '2', 'CHADEMO', 'CABLE', 'DC', 500, 125, 50000, NULL,
        NULL),
       ('NL', 'EXA', 'XLOC-B', 'XEVSE-B1', '1', 'IEC_62196_T2', 'SOCKET', 'AC_1_PHASE', 230, 16,
        NULL, '["XTAR-B"]', NULL);
INSERT INTO sessions (country_code, party_id, id, start_date_time, kwh, cdr_token, auth_method,
                      authorization_reference, location_id, evse_uid, connector_id, meter_id,
                      currency, status)
VALUES ('NL', 'EXA', 'XSES-A', '2026-03-01 10:00:00.000', 0,
        '{"country_code": "DE", "party_id": "MSP", "uid": "X04AABBCC", "type": "RFID", "contract_id": "DE-MSP-C00000001-1"}',
        'WHITELIST', 'AUTH-1', 'XLOC-A', 'XEVSE-A1', '1', 'M-1', 'EUR', 'ACTIVE'),
       ('NL', 'EXA', 'XSES-B', '2026-03-01 11:00:00.250', 0,
        '{"country_code": "DE", "party_id": "MSP", "uid": "xapp-1234", "type": "APP_USER", "contract_id": "DE-MSP-C00000002-2"}',
        'AUTH_REQUEST', NULL, 'XLOC-B', 'XEVSE-B1', '1', NULL, 'EUR', 'PENDING');
"#,
    );
    let phase3 = vec![
        put(&SESSIONS, &["NL", "EXA", "XSES-A"]),
        put(&SESSIONS, &["NL", "EXA", "XSES-B"]),
    ];
    let got = wait_phase(
        &chain,
        &mut [&mut p221, &mut p211],
        "phase 3 (connectors, sessions)",
        &[2, 2],
        &[0, 1],
    )
    .await;
    p221.check_phase(&chain, "phase 3", &got[0], &phase3);
    p211.check_phase(&chain, "phase 3", &got[1], &phase3);

    // ---- Phase 4: updates (children before parents, so no parent's last_updated is older
    // than a child's that the partner copied into it) ------------------------------------------
    chain.sql(
        r#"
UPDATE connectors SET max_electric_power = 11000
 WHERE location_id = 'XLOC-A' AND evse_uid = 'XEVSE-A1' AND id = '1';
UPDATE evses SET status = 'CHARGING' WHERE uid = 'XEVSE-A1';
UPDATE sessions SET kwh = 12.3456, end_date_time = '2026-03-01 10:45:00.500',
                    total_cost_excl_vat = 4.3210, total_cost_incl_vat = 5.2284,
                    status = 'COMPLETED'
 WHERE id = 'XSES-A';
UPDATE tariffs
   SET elements = '[{"price_components": [{"type": "ENERGY", "price": 0.39, "step_size": 1}]}]',
       tariff_alt_text = '[{"language": "en", "text": "0.39 EUR/kWh"}]'
 WHERE id = 'XTAR-A';
UPDATE tokens SET whitelist = 'ALLOWED_OFFLINE' WHERE uid = 'X04AABBCC';
UPDATE locations SET name = 'Stationsplein Oost', latitude = 52.089999 WHERE id = 'XLOC-A';
UPDATE locations SET publish = 0 WHERE id = 'XLOC-B';
"#,
    );
    let phase4 = vec![
        patch(
            &SESSIONS,
            &["NL", "EXA", "XSES-A"],
            &[
                "kwh",
                "end_date_time",
                "total_cost_excl_vat",
                "total_cost_incl_vat",
                "status",
                "last_updated",
            ],
        ),
        put(&TARIFFS, &["NL", "EXA", "XTAR-A"]),
        put(&TOKENS, &["DE", "MSP", TOKEN_RFID]),
    ];
    let got = wait_phase(
        &chain,
        &mut [&mut p221, &mut p211],
        "phase 4 (updates)",
        &[3, 3],
        &[0, 1],
    )
    .await;
    p221.check_phase(&chain, "phase 4", &got[0], &phase4);
    p211.check_phase(&chain, "phase 4", &got[1], &phase4);

    // ---- Phase 5: a CDR, and soft deletes ----------------------------------------------------
    chain.sql(&format!(
        r#"
INSERT INTO cdrs (country_code, party_id, id, session_id, start_date_time, end_date_time,
                  currency, total_energy, total_cost_excl_vat, credit, ocpi_object)
VALUES ('NL', 'EXA', 'XCDR-1', 'XSES-A', '2026-03-01 10:00:00.000', '2026-03-01 10:45:00.500',
        'EUR', 12.3456, 4.3210, 0, '{}');
UPDATE evses SET status = 'REMOVED' WHERE uid = 'XEVSE-B1';
UPDATE tariffs SET deleted = 1 WHERE id IN ('XTAR-B', 'XTAR-C');
UPDATE tokens SET valid = 0 WHERE uid = '{TOKEN_RFID}';
"#,
        cdr_json(false)
    ));
    let phase5 = vec![
        post_cdr("XCDR-1"),
        delete(&TARIFFS, &["NL", "EXA", "XTAR-B"]),
        delete(&TARIFFS, &["NL", "EXA", "XTAR-C"]),
        // Tokens have no soft-delete column in the example: valid = 0 is an update (PUT).
        put(&TOKENS, &["DE", "MSP", TOKEN_RFID]),
    ];
    let got = wait_phase(
        &chain,
        &mut [&mut p221, &mut p211],
        "phase 5 (CDR, soft deletes)",
        &[4, 3],
        &[0, 1],
    )
    .await;
    p221.check_phase(&chain, "phase 5", &got[0], &phase5);
    p211.check_phase(&chain, "phase 5", &got[1], &as_211_gets(&phase5));

    // ---- Phase 6: deletes, a revival, a credit CDR -------------------------------------------
    let last_state = |spec: &TableSpec, ids: &[&str]| {
        row_instant(
            &chain
                .row(spec, ids)
                .expect("the row exists before its delete"),
            spec.table,
        )
    };
    let ses_b_lu = last_state(&SESSIONS, &["NL", "EXA", "XSES-B"]);
    let app_lu = last_state(&TOKENS, &["DE", "MSP", TOKEN_APP]);
    chain.sql(&format!(
        r#"
DELETE FROM evses WHERE uid = 'XEVSE-A2';
DELETE FROM sessions WHERE id = 'XSES-B';
DELETE FROM tokens WHERE uid = '{TOKEN_APP}';
DELETE FROM tariffs WHERE id IN ('XTAR-A', 'XTAR-B');
UPDATE tariffs SET deleted = 0 WHERE id = 'XTAR-C';
INSERT INTO cdrs (country_code, party_id, id, session_id, start_date_time, end_date_time,
                  currency, total_energy, total_cost_excl_vat, credit, credit_reference_id,
                  ocpi_object)
VALUES ('NL', 'EXA', 'XCDR-1-CR', 'XSES-A', '2026-03-01 10:00:00.000',
        '2026-03-01 10:45:00.500', 'EUR', 12.3456, -4.3210, 1, 'XCDR-1', '{}');
"#,
        cdr_json(true)
    ));
    let phase6 = vec![
        removal(
            &SESSIONS,
            &["NL", "EXA", "XSES-B"],
            "status",
            Value::from("INVALID"),
            ses_b_lu,
        ),
        removal(
            &TOKENS,
            &["DE", "MSP", TOKEN_APP],
            "valid",
            Value::Bool(false),
            app_lu,
        ),
        delete(&TARIFFS, &["NL", "EXA", "XTAR-A"]),
        // XTAR-B: its removal went out with the soft delete; the row's delete sends nothing.
        // XTAR-C revived: the partner deleted it, so the whole Tariff is PUT again.
        put(&TARIFFS, &["NL", "EXA", "XTAR-C"]),
        post_cdr("XCDR-1-CR"),
    ];
    let got = wait_phase(
        &chain,
        &mut [&mut p221, &mut p211],
        "phase 6 (deletes, revival, credit CDR)",
        &[5, 4],
        &[0, 1],
    )
    .await;
    p221.check_phase(&chain, "phase 6", &got[0], &phase6);
    p211.check_phase(&chain, "phase 6", &got[1], &as_211_gets(&phase6));

    // ---- Headers, stored objects, parked messages --------------------------------------------
    check_headers(&p221);
    check_headers(&p211);
    check_final_state(&chain, &p221);
    check_final_state(&chain, &p211);

    let parked = drain_received(
        &chain.url,
        &chain.cfg.parking_queue("p211"),
        1,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(parked.len(), 1, "the 2.1.1 partner's parked messages");
    let reason = parked[0].header("x-park-reason").unwrap_or_default();
    assert!(
        reason.contains(TARIFF_221_ONLY)
            && reason.contains("not sent")
            && reason.contains("`elements[0].price_components[0].vat`"),
        "the park reason names the object, the field and that nothing was sent: {reason}"
    );

    eprintln!(
        "[pusher_end_to_end] module requests: 2.2.1 partner {}, 2.1.1 partner {}",
        module_requests(&p221.double).len(),
        module_requests(&p211.double).len()
    );
}

/// A 2.1.1 Session's `location`: the Location the row names, with only the EVSE and the
/// connector the session used (the strict double checked it as a Location object).
fn check_embedded_location(what: &str, session: &Value, row: &Row) {
    let column = |c: &str| row[c].clone().unwrap_or_default();
    let location = &session["location"];
    assert_eq!(
        location["id"],
        Value::from(column("location_id")),
        "{what}: {session}"
    );
    let evses = location["evses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let uids: Vec<&Value> = evses.iter().map(|e| &e["uid"]).collect();
    assert_eq!(
        uids,
        [&Value::from(column("evse_uid"))],
        "{what}: its EVSEs {location}"
    );
    let connectors: Vec<&Value> = evses[0]["connectors"]
        .as_array()
        .map(|c| c.iter().map(|c| &c["id"]).collect())
        .unwrap_or_default();
    assert_eq!(
        connectors,
        [&Value::from(column("connector_id"))],
        "{what}: its connectors {location}"
    );
}

/// What the partner holds at the end equals the database (and the removals it was sent).
fn check_final_state(chain: &Chain, p: &Partner) {
    let v = p.version;
    let who = format!("partner {} ({v})", p.id);
    let stored = |module: &str, ids: &[&str]| p.double.object(module, ids);
    // Tariffs: the live ones as in the database (XTAR-C revived); deleted ones gone.
    for row in chain.rows(&TARIFFS, "id LIKE 'X%'") {
        let id = row["id"].clone().unwrap();
        let what = format!("{who}: tariff {id}");
        if v == "2.1.1" && id == TARIFF_221_ONLY {
            assert_eq!(
                stored("tariffs", &["NL", "EXA", &id]),
                None,
                "{what}: parked"
            );
            continue;
        }
        assert_eq!(row["deleted"].as_deref(), Some("0"), "{what}: test data");
        let got =
            stored("tariffs", &["NL", "EXA", &id]).unwrap_or_else(|| panic!("{what}: missing"));
        assert_same(
            &what,
            &got,
            &Value::Object(expected_object(&TARIFFS, v, &row)),
        );
    }
    for id in ["XTAR-A", "XTAR-B"] {
        assert_eq!(
            stored("tariffs", &["NL", "EXA", id]),
            None,
            "{who}: tariff {id} was deleted"
        );
    }
    // Sessions: XSES-A as in the database, the deleted XSES-B INVALID.
    let row = chain
        .row(&SESSIONS, &["NL", "EXA", "XSES-A"])
        .expect("XSES-A");
    let got =
        stored("sessions", &["NL", "EXA", "XSES-A"]).unwrap_or_else(|| panic!("{who}: XSES-A"));
    assert_same(
        &format!("{who}: session XSES-A"),
        &without(&got, &["location"]),
        &Value::Object(expected_object(&SESSIONS, v, &row)),
    );
    if v == "2.1.1" {
        check_embedded_location(&format!("{who}: session XSES-A"), &got, &row);
    }
    let ses_b =
        stored("sessions", &["NL", "EXA", "XSES-B"]).unwrap_or_else(|| panic!("{who}: XSES-B"));
    assert_eq!(ses_b["status"], "INVALID", "{who}: deleted session {ses_b}");
    // Tokens: the RFID one as in the database (valid false); the deleted APP_USER one invalid
    // (2.1.1: an OTHER token, addressed by uid alone).
    let row = chain
        .row(&TOKENS, &["DE", "MSP", TOKEN_RFID])
        .expect("RFID token");
    let got =
        stored("tokens", &["DE", "MSP", TOKEN_RFID]).unwrap_or_else(|| panic!("{who}: RFID token"));
    assert_same(
        &format!("{who}: token {TOKEN_RFID}"),
        &got,
        &Value::Object(expected_object(&TOKENS, v, &row)),
    );
    assert_eq!(got["valid"], false);
    let (app_ids, app_type): (&[&str], &str) = if v == "2.2.1" {
        (&["DE", "MSP", TOKEN_APP, "APP_USER"], "APP_USER")
    } else {
        (&["DE", "MSP", TOKEN_APP], "OTHER")
    };
    let app = stored("tokens", app_ids).unwrap_or_else(|| panic!("{who}: APP_USER token missing"));
    assert_eq!(app["valid"], false, "{who}: deleted token {app}");
    assert_eq!(app["type"], app_type, "{who}: token type {app}");
    // CDRs: each POSTed once, as stored, in order (2.2.1 objects: not pushed to 2.1.1).
    let expected_cdrs = if v == "2.2.1" {
        vec![chain.cdr_object("XCDR-1"), chain.cdr_object("XCDR-1-CR")]
    } else {
        Vec::new()
    };
    assert_eq!(p.double.cdrs(), expected_cdrs, "{who}: CDRs");
}

// ------------------------------------------------------------------------------------------------
// Test 2: 10,000 changes over 1,000 records
// ------------------------------------------------------------------------------------------------

const RECORDS: usize = 1_000;
const UPDATES: usize = 9_000;
const UPDATES_PER_TRANSACTION: usize = 100;

/// The elements of bulk tariff `version`: the price grows with every update.
fn bulk_elements(version: u32) -> String {
    format!(
        r#"[{{"price_components": [{{"type": "ENERGY", "price": {version}, "step_size": 1}}]}}]"#
    )
}

fn bulk_id(i: usize) -> String {
    format!("BULK-{i:04}")
}

fn price_of(tariff: &Value) -> Option<u64> {
    tariff["elements"][0]["price_components"][0]["price"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_changes_of_a_thousand_tariffs_leave_the_partner_equal_to_the_database() {
    bulk_run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_of_ten_thousand_changes_drains_coalesced_to_the_database_state() {
    bulk_run(true).await;
}

/// 10,000 changes of 1,000 tariffs, pushed live (`backlog` false: the pusher runs while the
/// changes are made) or from a backlog (the pusher starts once all of them wait in the queue).
async fn bulk_run(backlog: bool) {
    let partner = Partner {
        id: "bulk",
        version: "2.2.1",
        double: OcpiPartner::start(PartnerOptions::v221()).await,
        mark: 0,
    };
    let mut chain = Chain::start_without_pusher(&[("bulk", &partner.double)]).await;
    if !backlog {
        chain.start_pusher();
    }
    let mut started = Instant::now();

    // 1,000 inserts in 10 transactions, then 9,000 updates in 90 transactions of 100, spread
    // over the records at random (fixed seed): some records change often, some never.
    let mut versions = vec![0u32; RECORDS];
    for chunk in 0..RECORDS / 100 {
        let values: Vec<String> = (chunk * 100..(chunk + 1) * 100)
            .map(|i| {
                format!(
                    "('NL', 'EXA', '{}', 'EUR', 'REGULAR', '{}')",
                    bulk_id(i),
                    bulk_elements(0)
                )
            })
            .collect();
        chain.sql(&format!(
            "INSERT INTO tariffs (country_code, party_id, id, currency, type, elements) VALUES\n{};",
            values.join(",\n")
        ));
    }
    let mut rng = fastrand::Rng::with_seed(20_260_301);
    for _ in 0..UPDATES / UPDATES_PER_TRANSACTION {
        let mut script = String::from("START TRANSACTION;\n");
        for _ in 0..UPDATES_PER_TRANSACTION {
            let i = rng.usize(..RECORDS);
            versions[i] += 1;
            script.push_str(&format!(
                "UPDATE tariffs SET elements = '{}' WHERE country_code = 'NL' AND party_id = 'EXA' AND id = '{}';\n",
                bulk_elements(versions[i]),
                bulk_id(i)
            ));
        }
        script.push_str("COMMIT;\n");
        chain.sql(&script);
    }
    let written = started.elapsed();
    let changes = RECORDS + UPDATES;
    assert_eq!(versions.iter().map(|v| *v as usize).sum::<usize>(), UPDATES);

    let queue = chain.cfg.queue("bulk");
    let parking = chain.cfg.parking_queue("bulk");
    if backlog {
        // Every change in the queue (heartbeats of the bridge may come on top), then the pusher.
        let deadline = Instant::now() + BULK_DELIVERY;
        while chain.ready(&queue).await < changes as u32 {
            assert!(
                Instant::now() < deadline,
                "the bridge did not publish {changes} changes\n{}",
                chain.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        started = Instant::now();
        chain.start_pusher();
    }

    // Wait until the partner holds every record at its last version and the queue is empty.
    let deadline = Instant::now() + BULK_DELIVERY;
    loop {
        let objects = partner.double.objects("tariffs");
        let at_last_version = (0..RECORDS)
            .filter(|i| {
                objects
                    .get(&format!("NL/EXA/{}", bulk_id(*i)))
                    .and_then(price_of)
                    == Some(u64::from(versions[*i]))
            })
            .count();
        let ready = chain.ready(&queue).await;
        let parked = chain.ready(&parking).await;
        if at_last_version == RECORDS && ready == 0 {
            break;
        }
        assert_eq!(
            parked,
            0,
            "messages parked (an older state refused, or a mapping problem); see the log\n{}",
            chain.logs()
        );
        assert!(
            Instant::now() < deadline,
            "after {BULK_DELIVERY:?}: {at_last_version} of {RECORDS} records at their last \
             version, {ready} messages ready, {} requests received\n{}",
            module_requests(&partner.double).len(),
            chain.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let delivered = started.elapsed();
    tokio::time::sleep(QUIET).await;

    // The partner's state equals the database's, field by field, last_updated included.
    let rows = chain.rows(&TARIFFS, "id LIKE 'BULK-%'");
    assert_eq!(rows.len(), RECORDS);
    for row in &rows {
        let id = row["id"].clone().unwrap();
        let what = format!("tariff {id}");
        let got = partner
            .double
            .object("tariffs", &["NL", "EXA", &id])
            .unwrap_or_else(|| panic!("{what}: missing at the partner"));
        assert_same(
            &what,
            &got,
            &Value::Object(expected_object(&TARIFFS, "2.2.1", row)),
        );
    }

    // Order per record: each record's PUTs went out with rising prices and last_updated
    // never going back; every request was a tariff PUT.
    let requests = module_requests(&partner.double);
    let mut last: HashMap<String, (u64, i128)> = HashMap::new();
    for r in &requests {
        assert_eq!(r.method, "PUT", "{} {}", r.method, r.path);
        let body = r
            .body
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no JSON body", r.path));
        let id = body["id"].as_str().unwrap_or_default().to_string();
        assert!(
            r.path.ends_with(&format!("/tariffs/NL/EXA/{id}")),
            "{}",
            r.path
        );
        let price = price_of(body).unwrap_or_else(|| panic!("{}: no price in {body}", r.path));
        let at = instant_of(body.get("last_updated"), &r.path);
        // The first request may already carry a later version (the insert coalesced with
        // updates that were waiting behind it).
        if let Some((prev_price, prev_at)) = last.get(&id) {
            assert!(
                price > *prev_price && at >= *prev_at,
                "tariff {id}: version {price} (last_updated {at}) sent after version \
                 {prev_price} ({prev_at})"
            );
        }
        last.insert(id, (price, at));
    }
    assert_eq!(last.len(), RECORDS, "records that got requests");
    assert!(
        requests.len() <= changes,
        "{} requests for {changes} changes: something was sent twice",
        requests.len()
    );
    check_headers(&partner);

    // Nothing parked; once the pusher has stopped (returning anything it held), no change is
    // left in the queue (heartbeats of the bridge may be).
    assert_eq!(chain.ready(&parking).await, 0, "parked messages");
    let pusher = chain.pusher.as_mut().expect("the pusher runs");
    let status = block(|| pusher.terminate());
    assert!(status.success(), "pusher exit {status:?}\n{}", chain.logs());
    let left = drain_changes(&chain.url, &queue, usize::MAX, Duration::from_secs(2)).await;
    assert!(
        left.is_empty(),
        "{} changes left unacknowledged in the queue, e.g. {:?}",
        left.len(),
        left.first()
    );
    eprintln!(
        "[pusher_end_to_end] {changes} changes over {RECORDS} records ({}) reached the partner \
         as {} requests ({:.1}% of the changes) in {:.1} s from {}",
        if backlog {
            "from a backlog".to_string()
        } else {
            format!("live; SQL written in {:.1} s", written.as_secs_f64())
        },
        requests.len(),
        100.0 * requests.len() as f64 / changes as f64,
        delivered.as_secs_f64(),
        if backlog {
            "the pusher's start"
        } else {
            "the first insert"
        }
    );
}

// ------------------------------------------------------------------------------------------------
// Test 3: parents and children created in one transaction
// ------------------------------------------------------------------------------------------------

const NEW_SITES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn locations_created_with_their_evses_and_connectors_in_one_transaction_arrive_whole() {
    let partner = Partner {
        id: "sites",
        version: "2.2.1",
        double: OcpiPartner::start(PartnerOptions::v221()).await,
        mark: 0,
    };
    let chain = Chain::start(&[("sites", &partner.double)]).await;
    // What an application does when new sites open: per site the Location, its EVSEs and
    // their Connectors, parents first, all in one transaction.
    let mut script = String::from("START TRANSACTION;\n");
    let (mut locations, mut evses, mut connectors) = (0, 0, 0);
    for s in 0..NEW_SITES {
        let site = format!("SITE-{s:02}");
        script.push_str(&format!(
            "INSERT INTO locations (country_code, party_id, id, address, city, country, \
             latitude, longitude, time_zone) VALUES ('NL', 'EXA', '{site}', 'Street {s}', \
             'Utrecht', 'NLD', 52.0, 5.0, 'Europe/Amsterdam');\n"
        ));
        locations += 1;
        for e in 1..=2 {
            script.push_str(&format!(
                "INSERT INTO evses (country_code, party_id, location_id, uid, status) \
                 VALUES ('NL', 'EXA', '{site}', '{site}-E{e}', 'AVAILABLE');\n"
            ));
            evses += 1;
            for c in 1..=2 {
                script.push_str(&format!(
                    "INSERT INTO connectors (country_code, party_id, location_id, evse_uid, id, \
                     standard, format, power_type, max_voltage, max_amperage) VALUES ('NL', \
                     'EXA', '{site}', '{site}-E{e}', '{c}', 'IEC_62196_T2', 'SOCKET', \
                     'AC_3_PHASE', 230, 32);\n"
                ));
                connectors += 1;
            }
        }
    }
    script.push_str("COMMIT;\n");
    chain.sql(&script);
    let expected = locations + evses + connectors;
    let parking = chain.cfg.parking_queue("sites");
    // Each site is one Location PUT with its whole tree (or EVSE PUTs with their connectors):
    // done when the partner holds every connector.
    let all_connectors: Vec<Vec<String>> = chain
        .rows(&CONNECTORS, "location_id LIKE 'SITE-%'")
        .iter()
        .map(|row| {
            CONNECTORS
                .path
                .iter()
                .map(|c| row[*c].clone().unwrap_or_default())
                .collect()
        })
        .collect();
    assert_eq!(all_connectors.len(), connectors);
    chain
        .wait_state(&partner, "every site at the partner", |double| {
            all_connectors.iter().all(|ids| {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                double.object("locations", &ids).is_some()
            })
        })
        .await;
    let requests = module_requests(&partner.double);
    // At most one call per change: the pusher never sends more than it was given. How many of
    // a tree's changes one call covers depends on how many were in the pusher's window when
    // the call began (timing: on a loaded machine a Connector can come after its EVSE's PUT,
    // and the EVSE goes out again), so fewer is not asserted.
    assert!(
        requests.len() <= expected,
        "{} requests for {expected} changes of {locations} sites: {:#?}",
        requests.len(),
        summary(&requests)
    );
    for r in &requests {
        assert_eq!(r.refusal, None, "refused: {} {}", r.method, r.path);
    }
    tokio::time::sleep(QUIET).await;
    let parked = drain_received(&chain.url, &parking, usize::MAX, Duration::from_secs(2)).await;
    let reasons: Vec<String> = parked
        .iter()
        .map(|m| m.header("x-park-reason").unwrap_or_default())
        .collect();
    assert!(
        parked.is_empty(),
        "{} of {expected} changes parked, e.g. {:#?}",
        parked.len(),
        &reasons[..reasons.len().min(3)]
    );
    for row in chain.rows(&CONNECTORS, "location_id LIKE 'SITE-%'") {
        let ids: Vec<&str> = CONNECTORS
            .path
            .iter()
            .map(|c| row[*c].as_deref().unwrap())
            .collect();
        let got = partner
            .double
            .object("locations", &ids)
            .unwrap_or_else(|| panic!("connector {ids:?} missing at the partner"));
        assert_same(
            &format!("connector {ids:?}"),
            &got,
            &Value::Object(expected_object(&CONNECTORS, "2.2.1", &row)),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_location_updated_just_before_its_evses_is_not_refused_as_older_than_stored() {
    let mut partner = Partner {
        id: "upd",
        version: "2.2.1",
        double: OcpiPartner::start(PartnerOptions::v221()).await,
        mark: 0,
    };
    let chain = Chain::start(&[("upd", &partner.double)]).await;
    // The sites exist at the partner first (parents delivered before children).
    let mut locations = Vec::new();
    let mut evses = Vec::new();
    let mut connectors = Vec::new();
    for s in 0..NEW_SITES {
        locations.push(format!(
            "('NL', 'EXA', 'SITE-{s:02}', 'Street {s}', 'Utrecht', 'NLD', 52.0, 5.0, \
             'Europe/Amsterdam')"
        ));
        for e in 1..=2 {
            evses.push(format!(
                "('NL', 'EXA', 'SITE-{s:02}', 'SITE-{s:02}-E{e}', 'AVAILABLE')"
            ));
            connectors.push(format!(
                "('NL', 'EXA', 'SITE-{s:02}', 'SITE-{s:02}-E{e}', '1', 'IEC_62196_T2', 'SOCKET', \
                 'AC_3_PHASE', 230, 32)"
            ));
        }
    }
    chain.sql(&format!(
        "INSERT INTO locations (country_code, party_id, id, address, city, country, latitude, \
         longitude, time_zone) VALUES\n{};",
        locations.join(",\n")
    ));
    wait_phase(&chain, &mut [&mut partner], "locations", &[NEW_SITES], &[0]).await;
    chain.sql(&format!(
        "START TRANSACTION;\n\
         INSERT INTO evses (country_code, party_id, location_id, uid, status) VALUES\n{};\n\
         INSERT INTO connectors (country_code, party_id, location_id, evse_uid, id, standard, \
         format, power_type, max_voltage, max_amperage) VALUES\n{};\nCOMMIT;",
        evses.join(",\n"),
        connectors.join(",\n")
    ));
    let evse_status = |double: &OcpiPartner, s: usize, e: usize| {
        let (site, uid) = (format!("SITE-{s:02}"), format!("SITE-{s:02}-E{e}"));
        double
            .object("locations", &["NL", "EXA", &site, &uid])
            .and_then(|evse| {
                evse.get("status")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
    };
    chain
        .wait_state(&partner, "EVSEs", |double| {
            (0..NEW_SITES).all(|s| (1..=2).all(|e| evse_status(double, s, e).is_some()))
        })
        .await;
    // Per site, in one transaction: the Location renamed, then its EVSEs' status, the
    // application stamping them a millisecond later (each EVSE's last_updated is newer than
    // its Location's, as it is whenever the statements do not share a millisecond). The receiver copies an EVSE's
    // last_updated into its Location; a Location PATCH sent after its EVSE's would be older
    // than stored, and refused.
    let mut script = String::from("START TRANSACTION;\n");
    for s in 0..NEW_SITES {
        script.push_str(&format!(
            "UPDATE locations SET name = 'Site {s}' WHERE id = 'SITE-{s:02}';\n\
             UPDATE evses SET status = 'CHARGING', \
             last_updated = NOW(3) + INTERVAL 1000 MICROSECOND WHERE location_id = 'SITE-{s:02}';\n"
        ));
    }
    script.push_str("COMMIT;\n");
    chain.sql(&script);
    let parking = chain.cfg.parking_queue("upd");
    chain
        .wait_state(&partner, "renamed sites with charging EVSEs", |double| {
            (0..NEW_SITES).all(|s| {
                let name = double
                    .object("locations", &["NL", "EXA", &format!("SITE-{s:02}")])
                    .and_then(|l| l.get("name").and_then(Value::as_str).map(str::to_string));
                name.as_deref() == Some(&format!("Site {s}"))
                    && (1..=2).all(|e| evse_status(double, s, e).as_deref() == Some("CHARGING"))
            })
        })
        .await;
    tokio::time::sleep(QUIET).await;
    let parked = drain_received(&chain.url, &parking, usize::MAX, Duration::from_secs(2)).await;
    let reasons: Vec<String> = parked
        .iter()
        .map(|m| m.header("x-park-reason").unwrap_or_default())
        .collect();
    assert!(
        parked.is_empty(),
        "{} of {} changes parked, e.g. {:#?}",
        parked.len(),
        3 * NEW_SITES,
        &reasons[..reasons.len().min(3)]
    );
    for row in chain.rows(&LOCATIONS, "id LIKE 'SITE-%'") {
        let id = row["id"].clone().unwrap();
        let got = partner
            .double
            .object("locations", &["NL", "EXA", &id])
            .unwrap_or_else(|| panic!("location {id} missing"));
        let expected = Value::Object(expected_object(&LOCATIONS, "2.2.1", &row));
        let newest_evse = got["evses"]
            .as_array()
            .map(|evses| {
                evses
                    .iter()
                    .map(|e| instant_of(e.get("last_updated"), &id))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        assert_same(
            &format!("location {id}"),
            &without(&got, &["evses", "last_updated"]),
            &without(&expected, &["last_updated"]),
        );
        assert_eq!(
            instant_of(got.get("last_updated"), &id),
            row_instant(&row, &id).max(newest_evse),
            "location {id}: last_updated {got}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Who published: changes and presence announcements from an unexpected broker user
// ------------------------------------------------------------------------------------------------

/// Requests a partner received for tariff `id`.
fn tariff_puts(double: &OcpiPartner, id: &str) -> usize {
    let path = format!("/tariffs/NL/EXA/{id}");
    module_requests(double)
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with(&path))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_and_presence_from_an_unexpected_broker_user_are_refused_and_never_mute_a_record() {
    let partner = Partner {
        id: "ids",
        version: "2.2.1",
        double: OcpiPartner::start(PartnerOptions::v221()).await,
        mark: 0,
    };
    let mut chain = Chain::start_without_pusher(&[("ids", &partner.double)]).await;
    chain.cfg.name = unique_name("pusher");
    chain.start_pusher();
    // Another user of the same broker, allowed to publish everywhere (the broker checks only
    // that its messages carry its own user_id).
    let stranger = BrokerUser::create("stranger");
    let id = "SENDER-1";
    let price = |d: &OcpiPartner| {
        d.object("tariffs", &["NL", "EXA", id])
            .and_then(|t| price_of(&t))
    };
    chain.sql(&format!(
        "INSERT INTO tariffs (country_code, party_id, id, currency, type, elements) VALUES \
         ('NL', 'EXA', '{id}', 'EUR', 'REGULAR', '{}');",
        bulk_elements(1)
    ));
    chain
        .wait_state(&partner, "the bridge's insert", |d| price(d) == Some(1))
        .await;

    // A newer-looking change with other content, straight into the partner queue; dated
    // after everything, so the partner would take it.
    let mut forged = system_tests::changes::tariff_update(id, 999, 1 << 60);
    if let change_message::Message::Change(change) = &mut forged {
        if let Some(after) = change.after.as_mut() {
            after.insert("last_updated".into(), "2099-01-01T00:00:00.000".into());
        }
    }
    publish_bodies_routed(
        &stranger.url(),
        "",
        &chain.cfg.queue("ids"),
        &[forged.to_vec()],
    )
    .await;
    let parked = drain_received(&chain.url, &chain.cfg.parking_queue("ids"), 1, DELIVERY).await;
    assert_eq!(
        parked.len(),
        1,
        "the forged change is parked\n{}",
        chain.logs()
    );
    let reason = parked[0].header("x-park-reason").unwrap_or_default();
    assert!(
        reason.contains(&format!("`{}`", stranger.name)) && reason.contains("broker.bridge_users"),
        "the reason names the sender and the option: {reason}"
    );
    assert_eq!(
        parked[0].header("x-published-by").as_deref(),
        Some(stranger.name.as_str())
    );
    assert_eq!(
        tariff_puts(&partner.double, id),
        1,
        "the forged change was pushed"
    );

    // The forged seq muted nothing: the bridge's next change of the record still goes out.
    chain.sql(&format!(
        "UPDATE tariffs SET elements = '{}' WHERE id = '{id}';",
        bulk_elements(2)
    ));
    chain
        .wait_state(
            &partner,
            "the bridge's update after the forged change",
            |d| price(d) == Some(2),
        )
        .await;

    // Presence of a pusher the assignment would hand the partner to, if it counted.
    let real = chain.cfg.name.clone();
    let forger = (0..)
        .map(|i| format!("forger-{i}"))
        .find(|n| pusher::assignment::weight("ids", n) > pusher::assignment::weight("ids", &real))
        .unwrap_or_default();
    let announcement = serde_json::json!({
        "pusher": forger, "serves": ["ids"], "partners": {}, "leaving": false,
    });
    let body = serde_json::to_vec(&announcement).unwrap_or_default();
    for _ in 0..15 {
        publish_bodies_routed(
            &stranger.url(),
            &chain.cfg.presence_exchange,
            "",
            std::slice::from_ref(&body),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    chain.sql(&format!(
        "UPDATE tariffs SET elements = '{}' WHERE id = '{id}';",
        bulk_elements(3)
    ));
    chain
        .wait_state(&partner, "the update after the forged presence", |d| {
            price(d) == Some(3)
        })
        .await;
    let log = chain.pusher.as_ref().map(|p| p.log()).unwrap_or_default();
    assert!(
        !log.contains("handing the partner over"),
        "the forged presence took the partner away\n{}",
        chain.logs()
    );
    assert!(
        log.contains("ignoring presence announcements") && log.contains(&stranger.name),
        "the pusher warns about the stranger's announcements\n{}",
        chain.logs()
    );
    assert_eq!(
        queue_len(&chain.url, &chain.cfg.parking_queue("ids")).await,
        0
    );
}
