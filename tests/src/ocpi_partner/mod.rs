//! An in-process OCPI partner for tests: a receiver (eMSP side for locations, sessions, CDRs and
//! tariffs; CPO side for tokens) on 127.0.0.1 at a random port, speaking OCPI 2.3.0, 2.2.1 or
//! 2.1.1.
//!
//! It behaves like a strict but real receiver:
//! - object rules of its version (unless [`PartnerOptions::object_rules`] is off; see the
//!   `rules` module): a PUT or POST body must be a valid whole object, a PATCH body valid
//!   fields, and the object a PATCH leaves behind valid as a whole. Refusals as
//!   [`PartnerOptions::rejection`] says: HTTP 400 with OCPI 2001, or HTTP 422 with a web
//!   framework's body and no envelope. Either way the message names the field and the rule;
//! - an EVSE or connector PUT/PATCH needs its Location (and EVSE): else HTTP 404
//!   ([`PartnerOptions::unknown_parent_status`]) with OCPI 2003. A Location PUT replaces the
//!   whole Location with its `evses` (none when absent), an EVSE PUT its connectors; every EVSE
//!   or connector a write takes away is recorded ([`OcpiPartner::dropped_children`]);
//! - `GET /ocpi/versions` (the versions of [`PartnerOptions::offered_versions`], and its own) and
//!   `GET /ocpi/{version}/details` of each (2.2.1 and 2.3.0: each module is listed first as
//!   a SENDER endpoint under `/ocpi/{version}/sender/...`, which answers 404, then as a RECEIVER
//!   endpoint; a pusher that takes the first entry instead of the RECEIVER one is caught);
//! - receiver endpoints: locations (PUT/PATCH at location, EVSE and connector depth; a child
//!   update bumps the parents' `last_updated`), sessions (PUT/PATCH; PATCH appends
//!   `charging_periods`), cdrs (POST only; answers 201 with a `Location` header naming
//!   `{cdrs}/{id}`; every POST is kept, so duplicates are visible), tariffs (PUT, DELETE; 2.1.1
//!   also PATCH), tokens (PUT/PATCH with `?type=`, RFID when absent; 2.1.1 by uid alone). GET on an object URL
//!   returns it;
//!   Only its own version's modules are served: module URLs of another offered version answer
//!   404;
//! - checks `Authorization: Token ...` (401 on mismatch), for 2.2.1 and 2.3.0 module requests the
//!   `X-Request-ID`, `X-Correlation-ID` and four `OCPI-from/to-*` headers (OCPI 2001 when one is
//!   missing; echoes the two ids), `last_updated` on every PUT and PATCH (OCPI 2001 when missing;
//!   a 2.1.1 PATCH may leave it out),
//!   ids in the body against the URL (case-insensitively, as CiString), and, unless turned off,
//!   rejects a PUT or PATCH whose `last_updated` is older than the stored object's with OCPI 2001
//!   "older than stored" (ocpi/ocpi issue 281). Note that an EVSE or connector update bumps the
//!   location's `last_updated`, so a later location PUT with an older `last_updated` is rejected
//!   too, as a real receiver with that check would;
//! - answers envelopes `{data, status_code, status_message, timestamp}`.
//!
//! Every request is recorded in arrival order (also those refused or misbehaved on), with how it
//! was answered and, when refused, why ([`RecordedRequest::refusal`]).
//! Misbehaviour on command, for the next N requests or until cleared: see [`Mode`]. Requests
//! that a mode answers are not applied, except [`Mode::Slow`] (applied, then answered late) and
//! [`Mode::NoLocationHeader`]. [`OcpiPartner::go_down`] closes the listener and every open
//! connection (connection refused from then on); [`OcpiPartner::come_back`] listens on the same
//! port again with the stored state intact.
//!
//! Stored objects are keyed by their ids upper-cased and joined with '/': locations, sessions
//! and tariffs `CC/PID/ID`, tokens `CC/PID/UID/TYPE`, CDRs `ID`.
//!
//! The `demo_partner` binary serves the same double as a process of its own
//! ([`OcpiPartner::start_at`]): it keeps no request log ([`PartnerOptions::record_requests`])
//! and answers demo control requests under `/demo/` ([`PartnerOptions::demo_control`]):
//! `GET /demo/state` (what it holds, [`PartnerState`]; `?objects=false` for the counts only),
//! `POST /demo/offline` (from then on every OCPI request is answered HTTP 503 with a proxy's
//! error page, like a partner whose backend is down; nothing stored is lost) and
//! `POST /demo/online`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::{Extension, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub mod examples;
mod rules;

use rules::{Schema, Violation};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

/// The OCPI version the partner speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerVersion {
    /// OCPI 2.1.1: no roles, no request ids, no routing headers.
    V211,
    /// OCPI 2.2.1.
    V221,
    /// OCPI 2.3.0: headers and roles as 2.2.1; taxes in every Price.
    V230,
}

impl PartnerVersion {
    /// "2.1.1", "2.2.1" or "2.3.0".
    pub fn as_str(self) -> &'static str {
        match self {
            PartnerVersion::V211 => "2.1.1",
            PartnerVersion::V221 => "2.2.1",
            PartnerVersion::V230 => "2.3.0",
        }
    }

    /// Request ids, routing headers and endpoint roles (2.2.1 and later).
    fn has_roles_and_routing(self) -> bool {
        self != PartnerVersion::V211
    }
}

/// How the partner refuses an object that breaks the rules of its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// HTTP 400 with an OCPI envelope, status_code 2001, the message naming field and rule.
    Ocpi2001,
    /// HTTP 422 with a web framework's validation body and no envelope:
    /// `{"detail":[{"loc":["body","connectors"],"msg":"...","type":"..."}]}`.
    Http422,
}

/// An EVSE or connector the partner held and a write took away (see
/// [`OcpiPartner::dropped_children`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedChild {
    /// The [`RecordedRequest::seq`] of the request that dropped it.
    pub request_seq: usize,
    /// The Location's key, `CC/PID/ID` (upper-cased; see the module documentation).
    pub location: String,
    /// The EVSE's uid as it was stored (the EVSE dropped, or the one that lost a connector).
    pub evse_uid: String,
    /// The connector's id as it was stored; `None` when the whole EVSE was dropped.
    pub connector_id: Option<String>,
}

/// How the partner is set up.
#[derive(Debug, Clone)]
pub struct PartnerOptions {
    /// The version it speaks: the one whose modules it serves.
    pub version: PartnerVersion,
    /// Versions its versions list offers besides `version` (in this order, `version` added
    /// when missing), each with its details URL: a test can check that the pusher picks the
    /// one it is configured for. Module requests under another version than `version` get 404.
    pub offered_versions: Vec<PartnerVersion>,
    /// Check every received object against the rules of `version` (see the module
    /// documentation). Off: only the checks of the transport layer and ids remain.
    pub object_rules: bool,
    /// How an object that breaks the rules is refused.
    pub rejection: Rejection,
    /// The HTTP status of the OCPI 2003 answer to an EVSE or connector request whose Location
    /// or EVSE the partner does not hold, and to a PATCH of a Location, EVSE or connector it
    /// does not hold.
    pub unknown_parent_status: u16,
    /// The credentials token it expects.
    pub token: String,
    /// Expect `Token base64(token)` (else `Token token`).
    pub expect_base64_token: bool,
    /// Modules it receives: any of "locations", "sessions", "cdrs", "tariffs", "tokens".
    pub modules: Vec<&'static str>,
    /// Publish endpoint URLs with a trailing '/'; a POST to the CDRs endpoint without it is
    /// answered with a 307 redirect to the published URL.
    pub trailing_slash_urls: bool,
    /// Reject a PUT/PATCH whose `last_updated` is older than the stored object's (OCPI 2001).
    pub reject_older: bool,
    /// For 2.2.1 and 2.3.0 module requests, require X-Request-ID, X-Correlation-ID and the four
    /// routing headers (OCPI 2001 when one is missing).
    pub require_221_headers: bool,
    /// For 2.2.1 and 2.3.0 module requests, the (country code, party id) this partner is: a
    /// request whose `OCPI-to-country-code`/`OCPI-to-party-id` name another party is refused
    /// with OCPI 2001. `None`: any.
    pub expect_to: Option<(String, String)>,
    /// Keep every request for [`OcpiPartner::requests`]. A long-running partner process turns it
    /// off: the log would grow without bound.
    pub record_requests: bool,
    /// Answer the demo control requests under `/demo/` (see the module documentation). They need
    /// no token: for demos only.
    pub demo_control: bool,
    /// Log every request with its answer (tracing, info level), to follow a partner process.
    pub log_requests: bool,
}

impl PartnerOptions {
    /// A 2.2.1 receiver of all five modules expecting a Base64-encoded token.
    pub fn v221() -> Self {
        Self {
            version: PartnerVersion::V221,
            offered_versions: Vec::new(),
            object_rules: true,
            rejection: Rejection::Ocpi2001,
            unknown_parent_status: 404,
            token: "partner-token-221".into(),
            expect_base64_token: true,
            modules: ALL_MODULES.to_vec(),
            trailing_slash_urls: false,
            reject_older: true,
            require_221_headers: true,
            expect_to: None,
            record_requests: true,
            demo_control: false,
            log_requests: false,
        }
    }

    /// These options as yesterday's lenient double: no object rules, an unknown parent
    /// answered HTTP 200 with OCPI 2003. For the tests whose mapping still sends row-shaped
    /// objects (an EVSE PUT without its connectors): the example mapping sends those until it
    /// links its Location > EVSE > Connector tree (`pusher_composite` tests that mapping against
    /// the strict rules).
    pub fn lenient(self) -> Self {
        Self {
            object_rules: false,
            unknown_parent_status: 200,
            ..self
        }
    }

    /// A 2.1.1 receiver of all five modules expecting the token as is.
    pub fn v211() -> Self {
        Self {
            version: PartnerVersion::V211,
            token: "partner-token-211".into(),
            expect_base64_token: false,
            ..Self::v221()
        }
    }

    /// A 2.3.0 receiver of all five modules expecting a Base64-encoded token.
    pub fn v230() -> Self {
        Self {
            version: PartnerVersion::V230,
            token: "partner-token-230".into(),
            ..Self::v221()
        }
    }

    /// The versions its versions list names: `offered_versions`, then `version` when missing.
    pub fn listed_versions(&self) -> Vec<PartnerVersion> {
        let mut listed = self.offered_versions.clone();
        if !listed.contains(&self.version) {
            listed.push(self.version);
        }
        listed
    }
}

impl Default for PartnerOptions {
    fn default() -> Self {
        Self::v221()
    }
}

/// Every module the double can receive.
pub const ALL_MODULES: [&str; 5] = ["locations", "sessions", "cdrs", "tariffs", "tokens"];

/// Misbehaviour on command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Answer this HTTP status with a non-OCPI body: a web framework's JSON validation error for
    /// 422, plain text for 401/403, an HTML error page otherwise.
    Http(u16),
    /// Answer this HTTP status with an OCPI envelope carrying `ocpi` as status_code.
    HttpEnvelope {
        /// The HTTP status.
        http: u16,
        /// The OCPI status_code.
        ocpi: u32,
    },
    /// HTTP 200 with an OCPI envelope carrying this status_code (2001, 3000, 3001, 4002, ...).
    Ocpi(u32),
    /// Apply the request normally, then wait this long before answering.
    Slow(Duration),
    /// Close the connection without answering.
    DropConnection,
    /// HTTP 200 with a body that is not JSON (text and binary bytes).
    Garbage,
    /// HTTP 200 with an (otherwise valid) envelope of about this many bytes.
    HugeBody(usize),
    /// HTTP 429 with `Retry-After: {retry_after_secs}`.
    TooManyRequests {
        /// The Retry-After value in seconds.
        retry_after_secs: u64,
    },
    /// Answer with this redirect status (301, 302, 303, 307, 308) to the same URL under
    /// `/redirected`, which is served like the original.
    Redirect(u16),
    /// Redirect (307) every request to the same URL again, forever.
    RedirectLoop,
    /// Apply CDR POSTs normally but answer without a `Location` header.
    NoLocationHeader,
}

/// One request as the partner received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Arrival order since the partner started, from 0 (not reset by
    /// [`OcpiPartner::clear_requests`]).
    pub seq: usize,
    /// "GET", "PUT", "PATCH", "POST", "DELETE", ...
    pub method: String,
    /// The path as received (percent-encoded).
    pub path: String,
    /// The query string, when there was one.
    pub query: Option<String>,
    /// Header names lower-cased, values as text (lossy), in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON, when it was JSON.
    pub body: Option<Value>,
    /// The raw body bytes.
    pub raw_body: Vec<u8>,
    /// When it arrived.
    pub at: SystemTime,
    /// The HTTP status it was answered with (`None`: not answered yet, or the connection was
    /// dropped on command).
    pub http_status: Option<u16>,
    /// The OCPI status_code of the answer, when it was an envelope.
    pub ocpi_status: Option<u32>,
    /// Why it was refused: the status_message of an error envelope, the rule an object broke
    /// (as in the 422 body), or the HTTP status of an answer without an envelope. `None` when
    /// it was answered with success (or a redirect), or not answered yet.
    pub refusal: Option<String>,
}

impl RecordedRequest {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a partner holds, as `GET /demo/state` answers it (and [`OcpiPartner::state`] returns
/// it): the demo's live display reads the counters, its consistency check the objects.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PartnerState {
    /// "2.3.0", "2.2.1" or "2.1.1".
    pub version: String,
    /// True while it answers every OCPI request with 503.
    pub offline: bool,
    /// Module requests other than GET answered with OCPI success: what was delivered.
    pub accepted: u64,
    /// Module requests other than GET answered otherwise (refused, offline, misbehaved on).
    pub failed: u64,
    /// Objects held per kind: locations, evses, connectors (nested in their parents), tariffs,
    /// sessions, tokens, and cdrs (every accepted POST, duplicates included).
    pub counts: BTreeMap<String, usize>,
    /// module -> key (see the module documentation) -> object; empty when asked without.
    #[serde(default)]
    pub objects: BTreeMap<String, BTreeMap<String, Value>>,
    /// Every CDR POSTed and accepted, in order; empty when asked without objects.
    #[serde(default)]
    pub cdrs: Vec<Value>,
}

impl PartnerState {
    /// A held object by its URL ids, as [`OcpiPartner::object`] finds it.
    pub fn object(&self, module: &str, path_ids: &[&str]) -> Option<&Value> {
        lookup(self.objects.get(module)?, module, path_ids)
    }
}

/// An object of one module's map by its URL ids (see [`OcpiPartner::object`]).
fn lookup<'a>(
    map: &'a BTreeMap<String, Value>,
    module: &str,
    path_ids: &[&str],
) -> Option<&'a Value> {
    match (module, path_ids.len()) {
        ("locations", 3..=5) => {
            let location = map.get(&key(&path_ids[..3]))?;
            let Some(evse_uid) = path_ids.get(3) else {
                return Some(location);
            };
            let evse = find_child(location, "evses", "uid", evse_uid)?;
            let Some(connector_id) = path_ids.get(4) else {
                return Some(evse);
            };
            find_child(evse, "connectors", "id", connector_id)
        }
        ("tokens", 3) => map.get(&key(&[path_ids[0], path_ids[1], path_ids[2], "RFID"])),
        _ => map.get(&key(path_ids)),
    }
}

struct ActiveMode {
    mode: Mode,
    remaining: Option<usize>,
    /// Only requests other than GET (pushes) misbehave; discovery is answered normally.
    pushes_only: bool,
}

#[derive(Default)]
struct Store {
    /// Requests received so far (the next one's [`RecordedRequest::seq`]).
    received: usize,
    requests: Vec<RecordedRequest>,
    dropped: Vec<DroppedChild>,
    /// module -> key -> object
    objects: HashMap<&'static str, BTreeMap<String, Value>>,
    cdrs: Vec<Value>,
    mode: Option<ActiveMode>,
    /// Module requests other than GET answered with OCPI success.
    accepted: u64,
    /// Module requests other than GET answered otherwise (refused, misbehaved on, offline).
    failed: u64,
}

struct Shared {
    options: PartnerOptions,
    base_url: String,
    reject_older: AtomicBool,
    /// See [`OcpiPartner::set_offline`].
    offline: AtomicBool,
    store: Mutex<Store>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn version(&self) -> &'static str {
        self.options.version.as_str()
    }

    /// See [`OcpiPartner::state`].
    fn state(&self, with_objects: bool) -> PartnerState {
        let store = self.lock();
        let mut counts = BTreeMap::new();
        for kind in [
            "locations",
            "evses",
            "connectors",
            "tariffs",
            "sessions",
            "tokens",
        ] {
            counts.insert(kind.to_string(), 0);
        }
        counts.insert("cdrs".to_string(), store.cdrs.len());
        for (module, map) in &store.objects {
            if *module == "cdrs" {
                continue;
            }
            *counts.entry(module.to_string()).or_default() += map.len();
            if *module == "locations" {
                for location in map.values() {
                    for evse in location["evses"].as_array().into_iter().flatten() {
                        *counts.entry("evses".into()).or_default() += 1;
                        *counts.entry("connectors".into()).or_default() +=
                            evse["connectors"].as_array().map_or(0, Vec::len);
                    }
                }
            }
        }
        PartnerState {
            version: self.version().to_string(),
            offline: self.offline.load(Ordering::SeqCst),
            accepted: store.accepted,
            failed: store.failed,
            counts,
            objects: if with_objects {
                store
                    .objects
                    .iter()
                    .map(|(module, map)| (module.to_string(), map.clone()))
                    .collect()
            } else {
                BTreeMap::new()
            },
            cdrs: if with_objects {
                store.cdrs.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// The published RECEIVER URL of a module.
    fn module_url(&self, module: &str) -> String {
        self.module_url_of(self.options.version, module)
    }

    /// The RECEIVER URL of a module under an offered version.
    fn module_url_of(&self, version: PartnerVersion, module: &str) -> String {
        let mut url = format!("{}/ocpi/{}/{module}", self.base_url, version.as_str());
        if self.options.trailing_slash_urls {
            url.push('/');
        }
        url
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The running partner. Dropping it stops the server.
pub struct OcpiPartner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
}

impl OcpiPartner {
    /// Starts the partner on 127.0.0.1 at a port the kernel picks.
    pub async fn start(options: PartnerOptions) -> OcpiPartner {
        let addr = "127.0.0.1:0".parse().expect("an address");
        OcpiPartner::start_at(addr, None, options)
            .await
            .unwrap_or_else(|e| panic!("OCPI partner: cannot listen on 127.0.0.1: {e}"))
    }

    /// Starts the partner on `addr`; it publishes URLs under `public_url` (default
    /// `http://{the bound address}`), the address the pusher reaches it at.
    pub async fn start_at(
        addr: SocketAddr,
        public_url: Option<String>,
        options: PartnerOptions,
    ) -> std::io::Result<OcpiPartner> {
        let listener = listen(addr)?;
        let addr = listener.local_addr()?;
        let base_url = public_url
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{addr}"));
        let shared = Arc::new(Shared {
            base_url,
            reject_older: AtomicBool::new(options.reject_older),
            offline: AtomicBool::new(false),
            options,
            store: Mutex::new(Store::default()),
        });
        let partner = OcpiPartner {
            shared,
            addr,
            running: Mutex::new(None),
        };
        partner.spawn(listener);
        Ok(partner)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn spawn(&self, listener: TcpListener) {
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, self.shared.clone(), stop_rx));
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running { stop, task });
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `http://127.0.0.1:{port}/ocpi/versions`.
    pub fn versions_url(&self) -> String {
        format!("{}/ocpi/versions", self.shared.base_url)
    }

    /// The RECEIVER URL the partner publishes for a module (with a trailing '/' when so set).
    pub fn module_url(&self, module: &str) -> String {
        self.shared.module_url(module)
    }

    /// The options it was started with.
    pub fn options(&self) -> &PartnerOptions {
        &self.shared.options
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the recorded requests (stored objects stay).
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Waits until at least `count` requests were received, and returns them all. Panics after
    /// `timeout` with what did arrive.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = requests
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect();
                panic!(
                    "OCPI partner: expected {count} requests within {timeout:?}, got {}: {seen:?}",
                    requests.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A stored object by its URL ids (case-insensitive): locations `[cc, pid, location_id]`,
    /// `[.., evse_uid]` or `[.., evse_uid, connector_id]`; sessions and tariffs
    /// `[cc, pid, id]`; tokens `[cc, pid, uid]` (type RFID) or `[cc, pid, uid, type]`; cdrs
    /// `[id]` (the latest CDR POSTed with that id).
    pub fn object(&self, module: &str, path_ids: &[&str]) -> Option<Value> {
        let store = self.shared.lock();
        lookup(store.objects.get(module)?, module, path_ids).cloned()
    }

    /// What the partner holds now, with (`with_objects`) or without the objects themselves.
    pub fn state(&self, with_objects: bool) -> PartnerState {
        self.shared.state(with_objects)
    }

    /// Offline, every OCPI request is answered HTTP 503 with a proxy's error page (not
    /// applied); stored state stays. Demo control requests are still answered.
    pub fn set_offline(&self, offline: bool) {
        self.shared.offline.store(offline, Ordering::SeqCst);
    }

    /// True while offline (see [`OcpiPartner::set_offline`]).
    pub fn is_offline(&self) -> bool {
        self.shared.offline.load(Ordering::SeqCst)
    }

    /// Every stored object of a module, by key (see the module documentation).
    pub fn objects(&self, module: &str) -> HashMap<String, Value> {
        self.shared
            .lock()
            .objects
            .get(module)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Every EVSE a Location lost and every connector an EVSE lost while the partner held
    /// them (a PUT without them, or a PATCH of `evses`/`connectors`), in order: what a
    /// receiver storing the tree would have lost. Kept also when requests are not recorded.
    pub fn dropped_children(&self) -> Vec<DroppedChild> {
        self.shared.lock().dropped.clone()
    }

    /// Every CDR POSTed and accepted, in order, duplicates included.
    pub fn cdrs(&self) -> Vec<Value> {
        self.shared.lock().cdrs.clone()
    }

    /// Misbehave on every request from now on, until [`OcpiPartner::clear_mode`].
    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().mode = Some(ActiveMode {
            mode,
            remaining: None,
            pushes_only: false,
        });
    }

    /// Misbehave on every push (any request but a GET) from now on, until
    /// [`OcpiPartner::clear_mode`], while discovery and GETs are answered normally: a partner
    /// whose versions endpoint answers but whose module endpoints fail, so a pusher resumes
    /// and pauses again and again.
    pub fn set_mode_for_pushes(&self, mode: Mode) {
        self.shared.lock().mode = Some(ActiveMode {
            mode,
            remaining: None,
            pushes_only: true,
        });
    }

    /// Misbehave on the next `requests` requests only (any request counts, discovery included).
    pub fn set_mode_for(&self, mode: Mode, requests: usize) {
        self.shared.lock().mode = Some(ActiveMode {
            mode,
            remaining: Some(requests),
            pushes_only: false,
        });
    }

    /// Behave again.
    pub fn clear_mode(&self) {
        self.shared.lock().mode = None;
    }

    /// Turns the "older than stored" check (ocpi/ocpi issue 281) on or off.
    pub fn set_reject_older(&self, on: bool) {
        self.shared.reject_older.store(on, Ordering::SeqCst);
    }

    /// Stops listening and closes every open connection: from now on connecting is refused.
    /// Stored state and recorded requests stay.
    pub async fn go_down(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(running) = running {
            let _ = running.stop.send(true);
            let _ = running.task.await;
        }
    }

    /// Listens again on the same port (after [`OcpiPartner::go_down`]).
    pub async fn come_back(&self) {
        if self.is_up() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match listen(self.addr) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("OCPI partner: port {} not free yet: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("OCPI partner: cannot listen on {} again: {e}", self.addr),
            }
        };
        self.spawn(listener);
    }

    /// True while listening.
    pub fn is_up(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl Drop for OcpiPartner {
    fn drop(&mut self) {
        if let Some(running) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = running.stop.send(true);
            running.task.abort();
        }
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Closes the connection it belongs to when notified.
#[derive(Clone)]
struct ConnectionKill(Arc<Notify>);

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let router = Router::new().fallback(handle).with_state(shared);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let kill = Arc::new(Notify::new());
                let service = hyper_util::service::TowerToHyperService::new(
                    router.clone().layer(Extension(ConnectionKill(kill.clone()))),
                );
                connections.spawn(async move {
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        _ = kill.notified() => {}
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(kill): Extension<ConnectionKill>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if shared.options.demo_control && uri.path().starts_with("/demo/") {
        return demo_control(&shared, &method, &uri);
    }
    let request = RecordedRequest {
        seq: 0,
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&body).ok(),
        raw_body: body.to_vec(),
        at: SystemTime::now(),
        http_status: None,
        ocpi_status: None,
        refusal: None,
    };
    let (seq, mode) = {
        let mut store = shared.lock();
        let seq = store.received;
        store.received += 1;
        if shared.options.record_requests {
            store.requests.push(RecordedRequest { seq, ..request });
        }
        let mode = if shared.offline.load(Ordering::SeqCst) {
            Some(Mode::Http(503))
        } else {
            take_mode(&mut store, &method)
        };
        (seq, mode)
    };
    let mut response = match mode {
        Some(Mode::DropConnection) => {
            kill.0.notify_one();
            return std::future::pending::<Response>().await;
        }
        Some(Mode::Slow(delay)) => {
            let response = respond(&shared, seq, &method, &uri, &headers, &body, false);
            tokio::time::sleep(delay).await;
            response
        }
        Some(Mode::NoLocationHeader) => respond(&shared, seq, &method, &uri, &headers, &body, true),
        Some(other) => misbehave(&shared, other, &uri),
        None => respond(&shared, seq, &method, &uri, &headers, &body, false),
    };
    if shared.options.version.has_roles_and_routing() {
        for name in ["x-request-id", "x-correlation-id"] {
            if let Some(value) = headers.get(name) {
                response.headers_mut().insert(name, value.clone());
            }
        }
    }
    let ocpi_status = response.extensions().get::<OcpiStatus>().map(|s| s.0);
    if shared.options.log_requests {
        tracing::info!(
            %method,
            path = uri.path(),
            query = uri.query().unwrap_or(""),
            http = response.status().as_u16(),
            ocpi = ocpi_status.unwrap_or(0),
            "OCPI request"
        );
    }
    let http = response.status();
    let refused = http.is_client_error()
        || http.is_server_error()
        || ocpi_status.is_some_and(|code| !(1000..2000).contains(&code));
    let refusal = refused.then(|| match response.extensions().get::<AnswerNote>() {
        Some(note) => note.0.clone(),
        None => format!("HTTP {http} without an OCPI envelope"),
    });
    let mut store = shared.lock();
    if method != Method::GET {
        let accepted = ocpi_status.is_some_and(|code| (1000..2000).contains(&code));
        if accepted {
            store.accepted += 1;
        } else {
            store.failed += 1;
        }
    }
    if let Some(recorded) = store.requests.iter_mut().rev().find(|r| r.seq == seq) {
        recorded.http_status = Some(http.as_u16());
        recorded.ocpi_status = ocpi_status;
        recorded.refusal = refusal;
    }
    drop(store);
    response
}

/// The OCPI status code of an envelope answer, kept on the response for the counters.
#[derive(Clone, Copy)]
struct OcpiStatus(u32);

/// What an answer said in words (an envelope's status_message, a refused object's rule), kept on
/// the response for [`RecordedRequest::refusal`].
#[derive(Clone)]
struct AnswerNote(String);

/// `/demo/...`: state, offline, online (see the module documentation).
fn demo_control(shared: &Shared, method: &Method, uri: &Uri) -> Response {
    match (method.clone(), uri.path()) {
        (Method::GET, "/demo/state") => {
            let with_objects = query_param(uri.query(), "objects").as_deref() != Some("false");
            match serde_json::to_string(&shared.state(with_objects)) {
                Ok(body) => raw(StatusCode::OK, "application/json", body),
                Err(e) => raw(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("cannot serialise the state: {e}"),
                ),
            }
        }
        (Method::POST, "/demo/offline" | "/demo/online") => {
            let offline = uri.path() == "/demo/offline";
            shared.offline.store(offline, Ordering::SeqCst);
            tracing::info!(offline, "demo partner: offline switched");
            raw(
                StatusCode::OK,
                "application/json",
                json!({ "offline": offline }).to_string(),
            )
        }
        _ => raw(
            StatusCode::NOT_FOUND,
            "text/plain",
            "demo control: GET /demo/state[?objects=false], POST /demo/offline, POST /demo/online",
        ),
    }
}

fn take_mode(store: &mut Store, method: &Method) -> Option<Mode> {
    let active = store.mode.as_mut()?;
    if active.pushes_only && method == Method::GET {
        return None;
    }
    let mode = active.mode.clone();
    if let Some(remaining) = active.remaining.as_mut() {
        *remaining = remaining.saturating_sub(1);
        if *remaining == 0 {
            store.mode = None;
        }
    }
    Some(mode)
}

fn misbehave(shared: &Shared, mode: Mode, uri: &Uri) -> Response {
    match mode {
        Mode::Http(code) => {
            let status = status(code);
            match code {
                422 => raw(
                    status,
                    "application/json",
                    r#"{"detail":[{"loc":["body","last_updated"],"msg":"field required","type":"value_error.missing"}]}"#,
                ),
                401 | 403 => raw(status, "text/plain", status.canonical_reason().unwrap_or("")),
                _ => raw(
                    status,
                    "text/html",
                    format!(
                        "<html>\n<head><title>{code} {reason}</title></head>\n<body>\n<center><h1>{code} {reason}</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n",
                        reason = status.canonical_reason().unwrap_or("Error")
                    ),
                ),
            }
        }
        Mode::HttpEnvelope { http, ocpi } => {
            envelope(status(http), ocpi, "error on command", Value::Null)
        }
        Mode::Ocpi(code) => envelope(StatusCode::OK, code, "error on command", Value::Null),
        Mode::Garbage => {
            let mut body = b"<<< this is not JSON >>> \x00\xff\xfe".to_vec();
            body.extend((0u8..=255).rev());
            raw(StatusCode::OK, "text/plain", body)
        }
        Mode::HugeBody(size) => {
            let mut body = Vec::with_capacity(size + 64);
            body.extend_from_slice(br#"{"status_code":1000,"status_message":""#);
            body.resize(body.len() + size, b'x');
            body.extend_from_slice(br#"","data":null}"#);
            raw(StatusCode::OK, "application/json", body)
        }
        Mode::TooManyRequests { retry_after_secs } => {
            let mut response = raw(StatusCode::TOO_MANY_REQUESTS, "text/plain", "slow down");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Mode::Redirect(code) => {
            let target = format!(
                "{}/redirected{}",
                shared.base_url,
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            );
            redirect(status(code), &target)
        }
        Mode::RedirectLoop => {
            let target = format!(
                "{}{}",
                shared.base_url,
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            );
            redirect(StatusCode::TEMPORARY_REDIRECT, &target)
        }
        Mode::Slow(_) | Mode::DropConnection | Mode::NoLocationHeader => {
            unreachable!("handled by the caller")
        }
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or_else(|_| panic!("OCPI partner: {code} is no HTTP status"))
}

fn raw(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn redirect(status: StatusCode, target: &str) -> Response {
    let mut response = raw(status, "text/plain", "");
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(target).expect("a URL is a header value"),
    );
    response
}

fn envelope(status: StatusCode, code: u32, message: &str, data: Value) -> Response {
    let body = json!({
        "data": data,
        "status_code": code,
        "status_message": message,
        "timestamp": format_rfc3339(SystemTime::now()),
    });
    let mut response = raw(status, "application/json", body.to_string());
    response.extensions_mut().insert(OcpiStatus(code));
    response
        .extensions_mut()
        .insert(AnswerNote(format!("OCPI {code}: {message}")));
    response
}

fn success(status: StatusCode, data: Value) -> Response {
    envelope(status, 1000, "Success", data)
}

/// HTTP 200 with an OCPI error code (a request that reached the OCPI layer).
fn ocpi_error(code: u32, message: impl AsRef<str>) -> Response {
    envelope(StatusCode::OK, code, message.as_ref(), Value::Null)
}

/// The normal behaviour of a receiver.
fn respond(
    shared: &Shared,
    seq: usize,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    no_location: bool,
) -> Response {
    let raw_path = uri.path();
    let path = raw_path.strip_prefix("/redirected").unwrap_or(raw_path);
    let trailing_slash = path.len() > 1 && path.ends_with('/');
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();

    if !authorized(shared, headers) {
        return envelope(
            StatusCode::UNAUTHORIZED,
            2000,
            "Invalid or missing credentials token",
            Value::Null,
        );
    }
    let version = shared.version();
    match segments.as_slice() {
        ["ocpi", "versions"] => {
            if method != Method::GET {
                return raw(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only");
            }
            let listed: Vec<Value> = shared
                .options
                .listed_versions()
                .into_iter()
                .map(|offered| {
                    let mut url = format!("{}/ocpi/{}/details", shared.base_url, offered.as_str());
                    if shared.options.trailing_slash_urls {
                        url.push('/');
                    }
                    json!({"version": offered.as_str(), "url": url})
                })
                .collect();
            success(StatusCode::OK, Value::Array(listed))
        }
        ["ocpi", v, "details"] => {
            let Some(offered) = shared
                .options
                .listed_versions()
                .into_iter()
                .find(|offered| offered.as_str() == *v)
            else {
                return raw(StatusCode::NOT_FOUND, "text/plain", "version not offered");
            };
            if method != Method::GET {
                return raw(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only");
            }
            success(StatusCode::OK, version_details(shared, offered))
        }
        ["ocpi", v, "sender", ..] if *v == version => raw(
            StatusCode::NOT_FOUND,
            "text/plain",
            "this is a SENDER endpoint of the test partner: push to its RECEIVER endpoints",
        ),
        ["ocpi", v, module, ids @ ..] if *v == version => {
            let Some(module) = shared.options.modules.iter().copied().find(|m| m == module) else {
                return raw(StatusCode::NOT_FOUND, "text/plain", "no such module");
            };
            if shared.options.version.has_roles_and_routing() && shared.options.require_221_headers
            {
                for name in [
                    "x-request-id",
                    "x-correlation-id",
                    "ocpi-from-country-code",
                    "ocpi-from-party-id",
                    "ocpi-to-country-code",
                    "ocpi-to-party-id",
                ] {
                    let present = headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| !v.trim().is_empty());
                    if !present {
                        return ocpi_error(2001, format!("missing header {name}"));
                    }
                }
                if let Some((country_code, party_id)) = &shared.options.expect_to {
                    for (name, expected) in [
                        ("ocpi-to-country-code", country_code),
                        ("ocpi-to-party-id", party_id),
                    ] {
                        let found = headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        if !found.eq_ignore_ascii_case(expected) {
                            return ocpi_error(
                                2001,
                                format!("{name} {found:?} is not this party ({expected})"),
                            );
                        }
                    }
                }
            }
            let call = Call {
                shared,
                seq,
                method,
                ids,
                query: uri.query(),
                body,
                trailing_slash,
                raw_path,
                no_location,
            };
            module_request(module, call)
        }
        _ => raw(StatusCode::NOT_FOUND, "text/plain", "no such endpoint"),
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let token = &shared.options.token;
    let expected = if shared.options.expect_base64_token {
        base64::engine::general_purpose::STANDARD.encode(token.as_bytes())
    } else {
        token.clone()
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Token {expected}"))
}

/// The details of an offered version; module URLs of another version than the partner's own
/// answer 404.
fn version_details(shared: &Shared, offered: PartnerVersion) -> Value {
    let version = offered.as_str();
    let mut endpoints = Vec::new();
    let roles = offered.has_roles_and_routing();
    let credentials = format!("{}/ocpi/{version}/credentials", shared.base_url);
    if roles {
        endpoints.push(json!({"identifier": "credentials", "role": "SENDER", "url": credentials}));
    } else {
        endpoints.push(json!({"identifier": "credentials", "url": credentials}));
    }
    for module in &shared.options.modules {
        let url = shared.module_url_of(offered, module);
        if roles {
            let sender = format!("{}/ocpi/{version}/sender/{module}", shared.base_url);
            endpoints.push(json!({"identifier": module, "role": "SENDER", "url": sender}));
            endpoints.push(json!({"identifier": module, "role": "RECEIVER", "url": url}));
        } else {
            endpoints.push(json!({"identifier": module, "url": url}));
        }
    }
    json!({"version": version, "endpoints": endpoints})
}

/// A refusal of a request that reached the OCPI layer (small, unlike a `Response`).
struct Refusal {
    status: StatusCode,
    code: u32,
    message: String,
    /// For [`Rejection::Http422`]: the framework's body, answered instead of an envelope.
    framework_body: Option<Value>,
}

impl Refusal {
    /// HTTP 200 with an OCPI error code.
    fn ocpi(code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::OK,
            code,
            message: message.into(),
            framework_body: None,
        }
    }

    fn respond(self) -> Response {
        match self.framework_body {
            Some(body) => {
                let mut response = raw(self.status, "application/json", body.to_string());
                response.extensions_mut().insert(AnswerNote(format!(
                    "HTTP {}: {}",
                    self.status, self.message
                )));
                response
            }
            None => envelope(self.status, self.code, &self.message, Value::Null),
        }
    }
}

/// Which object table a request's body is checked against.
type PickSchema = fn(&rules::VersionRules) -> &'static Schema;

struct Call<'a> {
    shared: &'a Shared,
    /// The request's [`RecordedRequest::seq`].
    seq: usize,
    method: &'a Method,
    ids: &'a [&'a str],
    query: Option<&'a str>,
    body: &'a [u8],
    trailing_slash: bool,
    raw_path: &'a str,
    no_location: bool,
}

impl Call<'_> {
    fn is_patch(&self) -> bool {
        *self.method == Method::PATCH
    }

    /// The object rules of the partner's version, unless they are off.
    fn rules(&self) -> Option<&'static rules::VersionRules> {
        let options = &self.shared.options;
        options
            .object_rules
            .then(|| rules::for_version(options.version))
    }

    /// The body as a JSON object that keeps the rules of `schema` (whole for PUT and POST,
    /// field by field for PATCH), with its `last_updated` (absent only in a 2.1.1 PATCH), or
    /// the answer to give.
    fn object_body(
        &self,
        schema: PickSchema,
    ) -> Result<(Map<String, Value>, Option<i128>), Refusal> {
        let value: Value = serde_json::from_slice(self.body).map_err(|e| Refusal {
            status: StatusCode::BAD_REQUEST,
            code: 2001,
            message: format!("body is not valid JSON: {e}"),
            framework_body: None,
        })?;
        let Value::Object(map) = value else {
            return Err(Refusal::ocpi(2001, "body is not a JSON object"));
        };
        if let Some(rules) = self.rules() {
            let schema = schema(rules);
            let checked = if self.is_patch() {
                rules::check_patch(rules, schema, &map)
            } else {
                rules::check_whole(rules, schema, &map)
            };
            checked.map_err(|violation| self.broken_rule(schema, violation, false))?;
        }
        let Some(last_updated) = map.get("last_updated") else {
            if self.is_patch() && self.shared.options.version == PartnerVersion::V211 {
                return Ok((map, None));
            }
            return Err(Refusal::ocpi(2001, "last_updated is required"));
        };
        let Some(at) = last_updated.as_str().and_then(parse_rfc3339) else {
            return Err(Refusal::ocpi(
                2001,
                format!("last_updated {last_updated} is not an RFC 3339 date-time"),
            ));
        };
        Ok((map, Some(at)))
    }

    /// The object a PATCH leaves behind must still keep the rules as a whole.
    fn check_merged(&self, schema: PickSchema, merged: &Value) -> Result<(), Refusal> {
        let (Some(rules), Value::Object(map)) = (self.rules(), merged) else {
            return Ok(());
        };
        let schema = schema(rules);
        rules::check_whole(rules, schema, map)
            .map_err(|violation| self.broken_rule(schema, violation, true))
    }

    /// The refusal of an object that breaks a rule, in the configured style.
    fn broken_rule(&self, schema: &Schema, violation: Violation, after_patch: bool) -> Refusal {
        let version = self.shared.version();
        let message = if after_patch {
            format!(
                "the PATCH would leave the {} invalid (OCPI {version}): {violation}",
                schema.name
            )
        } else {
            format!(
                "{} breaks the OCPI {version} object rules: {violation}",
                schema.name
            )
        };
        match self.shared.options.rejection {
            Rejection::Ocpi2001 => Refusal {
                status: StatusCode::BAD_REQUEST,
                code: 2001,
                message,
                framework_body: None,
            },
            Rejection::Http422 => Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: 2001,
                framework_body: Some(json!({"detail": [{
                    "loc": violation.loc(),
                    "msg": violation.rule,
                    "type": violation.kind,
                }]})),
                message,
            },
        }
    }

    /// OCPI 2003 for a Location, EVSE or connector the partner does not hold, at the
    /// configured HTTP status.
    fn unknown(&self, what: &str) -> Refusal {
        Refusal {
            status: StatusCode::from_u16(self.shared.options.unknown_parent_status)
                .unwrap_or(StatusCode::NOT_FOUND),
            code: 2003,
            message: format!("Unknown {what}"),
            framework_body: None,
        }
    }

    fn reject_older(&self) -> bool {
        self.shared.reject_older.load(Ordering::SeqCst)
    }

    /// OCPI 2001 when the new state is older than the stored one (and the check is on). A
    /// 2.1.1 PATCH without `last_updated` (`new_at` None) is not compared.
    fn check_not_older(&self, stored: Option<&Value>, new_at: Option<i128>) -> Result<(), Refusal> {
        let Some(new_at) = new_at else {
            return Ok(());
        };
        if !self.reject_older() {
            return Ok(());
        }
        let stored_at = stored
            .and_then(|s| s.get("last_updated"))
            .and_then(Value::as_str)
            .and_then(parse_rfc3339);
        match stored_at {
            Some(stored_at) if new_at < stored_at => Err(Refusal::ocpi(
                2001,
                format!(
                    "last_updated is older than stored ({})",
                    stored
                        .and_then(|s| s.get("last_updated"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The body's id field must match the id in the URL (case-insensitively), and the
/// country_code/party_id fields (2.2.1 and 2.3.0), when present, must match the URL's.
fn check_ids(
    call: &Call<'_>,
    body: &Map<String, Value>,
    field: &str,
    id: &str,
) -> Result<(), Refusal> {
    match body.get(field).and_then(Value::as_str) {
        Some(found) if found.eq_ignore_ascii_case(id) => {}
        Some(found) => {
            return Err(Refusal::ocpi(
                2001,
                format!("{field} {found:?} in the body does not match {id:?} in the URL"),
            ))
        }
        None => return Err(Refusal::ocpi(2001, format!("{field} is required"))),
    }
    if call.ids.len() >= 2 {
        for (field, expected) in [("country_code", call.ids[0]), ("party_id", call.ids[1])] {
            if let Some(found) = body.get(field).and_then(Value::as_str) {
                if !found.eq_ignore_ascii_case(expected) {
                    return Err(Refusal::ocpi(
                        2001,
                        format!(
                            "{field} {found:?} in the body does not match {expected:?} in the URL"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The ids of the object a PATCH leaves behind must still match the URL: a PATCH cannot move
/// an object to another id.
fn check_merged_ids(call: &Call<'_>, merged: &Value, field: &str, id: &str) -> Result<(), Refusal> {
    match merged {
        Value::Object(map) => check_ids(call, map, field, id),
        _ => Ok(()),
    }
}

fn module_request(module: &'static str, call: Call<'_>) -> Response {
    let method = call.method.clone();
    let ids = call.ids;
    match (module, ids.len()) {
        ("cdrs", 0) => match method {
            Method::POST => post_cdr(&call),
            _ => raw(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "POST only"),
        },
        ("cdrs", 1) if method == Method::GET => {
            let store = call.shared.lock();
            match store.objects.get("cdrs").and_then(|m| m.get(&key(ids))) {
                Some(cdr) => success(StatusCode::OK, cdr.clone()),
                None => envelope(StatusCode::NOT_FOUND, 2001, "unknown CDR", Value::Null),
            }
        }
        ("locations", 3..=5) => locations(&call),
        ("sessions" | "tariffs" | "tokens", 3) => flat_object(module, &call),
        _ => raw(StatusCode::NOT_FOUND, "text/plain", "no such object URL"),
    }
}

fn post_cdr(call: &Call<'_>) -> Response {
    if call.shared.options.trailing_slash_urls && !call.trailing_slash {
        let target = format!("{}{}/", call.shared.base_url, call.raw_path);
        return redirect(StatusCode::TEMPORARY_REDIRECT, &target);
    }
    let (body, _) = match call.object_body(|rules| rules.cdr) {
        Ok(b) => b,
        Err(refusal) => return refusal.respond(),
    };
    let Some(id) = body.get("id").and_then(Value::as_str).map(str::to_string) else {
        return ocpi_error(2001, "id is required");
    };
    let value = Value::Object(body);
    {
        let mut store = call.shared.lock();
        store.cdrs.push(value.clone());
        store
            .objects
            .entry("cdrs")
            .or_default()
            .insert(key(&[&id]), value);
    }
    let mut response = success(StatusCode::CREATED, Value::Null);
    if !call.no_location {
        let location = format!(
            "{}/{}",
            call.shared.module_url("cdrs").trim_end_matches('/'),
            percent_encoding::utf8_percent_encode(&id, ID_SEGMENT)
        );
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
    }
    response
}

fn locations(call: &Call<'_>) -> Response {
    let ids = call.ids;
    let location_key = key(&ids[..3]);
    if *call.method == Method::GET {
        let store = call.shared.lock();
        let found = store
            .objects
            .get("locations")
            .and_then(|map| lookup(map, "locations", ids));
        return match found {
            Some(v) => success(StatusCode::OK, v.clone()),
            None => envelope(StatusCode::NOT_FOUND, 2003, "Unknown Location", Value::Null),
        };
    }
    if !matches!(*call.method, Method::PUT | Method::PATCH) {
        return raw(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "PUT, PATCH or GET",
        );
    }
    let schema: PickSchema = match ids.len() {
        3 => |rules| rules.location,
        4 => |rules| rules.evse,
        _ => |rules| rules.connector,
    };
    let (body, at) = match call.object_body(schema) {
        Ok(b) => b,
        Err(refusal) => return refusal.respond(),
    };
    let mut store = call.shared.lock();
    let map = store.objects.entry("locations").or_default();
    let stored = map.get(&location_key);
    let written = if ids.len() == 3 {
        write_location(call, stored, body, at)
    } else {
        match stored {
            Some(location) => write_child(call, location, body, at),
            None => Err(call.unknown("Location")),
        }
    };
    match written {
        Ok((location, created)) => {
            let dropped = stored
                .map(|old| dropped_children(old, &location, &location_key, call.seq))
                .unwrap_or_default();
            map.insert(location_key, location);
            store.dropped.extend(dropped);
            success(created_or_ok(created), Value::Null)
        }
        Err(refusal) => refusal.respond(),
    }
}

/// A Location PUT (the whole Location, `evses` included: none when absent) or PATCH (its
/// fields merged, the result checked whole): the new Location and whether it was created.
fn write_location(
    call: &Call<'_>,
    stored: Option<&Value>,
    body: Map<String, Value>,
    at: Option<i128>,
) -> Result<(Value, bool), Refusal> {
    call.check_not_older(stored, at)?;
    if call.is_patch() {
        let mut location = stored.cloned().ok_or_else(|| call.unknown("Location"))?;
        merge(&mut location, body, false);
        check_merged_ids(call, &location, "id", call.ids[2])?;
        call.check_merged(|rules| rules.location, &location)?;
        return Ok((location, false));
    }
    check_ids(call, &body, "id", call.ids[2])?;
    Ok((Value::Object(body), stored.is_none()))
}

/// An EVSE or connector PUT/PATCH as read-modify-write of its stored Location: the new
/// Location (the parents' `last_updated` bumped) and whether the child was created.
fn write_child(
    call: &Call<'_>,
    stored: &Value,
    body: Map<String, Value>,
    at: Option<i128>,
) -> Result<(Value, bool), Refusal> {
    let ids = call.ids;
    let last_updated = body.get("last_updated").cloned().unwrap_or(Value::Null);
    let mut location = stored.clone();
    let created;
    {
        let evses = children(&mut location, "evses");
        let evse_index = evses.iter().position(|e| id_matches(e, "uid", ids[3]));
        if ids.len() == 4 {
            call.check_not_older(evse_index.map(|i| &evses[i]), at)?;
            if call.is_patch() {
                let i = evse_index.ok_or_else(|| call.unknown("EVSE"))?;
                merge(&mut evses[i], body, false);
                check_merged_ids(call, &evses[i], "uid", ids[3])?;
                call.check_merged(|rules| rules.evse, &evses[i])?;
                created = false;
            } else {
                check_ids(call, &body, "uid", ids[3])?;
                created = replace_or_push(evses, evse_index, Value::Object(body));
            }
        } else {
            let evse_index = evse_index.ok_or_else(|| call.unknown("EVSE"))?;
            let evse = &mut evses[evse_index];
            let connectors = children(evse, "connectors");
            let connector_index = connectors.iter().position(|c| id_matches(c, "id", ids[4]));
            call.check_not_older(connector_index.map(|i| &connectors[i]), at)?;
            if call.is_patch() {
                let i = connector_index.ok_or_else(|| call.unknown("Connector"))?;
                merge(&mut connectors[i], body, false);
                check_merged_ids(call, &connectors[i], "id", ids[4])?;
                call.check_merged(|rules| rules.connector, &connectors[i])?;
                created = false;
            } else {
                check_ids(call, &body, "id", ids[4])?;
                created = replace_or_push(connectors, connector_index, Value::Object(body));
            }
            bump_last_updated(evse, &last_updated);
        }
    }
    bump_last_updated(&mut location, &last_updated);
    Ok((location, created))
}

/// The EVSEs of `old` that `new` no longer has, and the connectors of EVSEs both have that
/// `new` no longer has (ids compared case-insensitively).
fn dropped_children(
    old: &Value,
    new: &Value,
    location_key: &str,
    request_seq: usize,
) -> Vec<DroppedChild> {
    let list = |parent: &Value, field: &str| -> Vec<Value> {
        parent
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let id_of = |child: &Value, field: &str| -> String {
        child
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut dropped = Vec::new();
    for old_evse in list(old, "evses") {
        let uid = id_of(&old_evse, "uid");
        let Some(new_evse) = find_child(new, "evses", "uid", &uid) else {
            dropped.push(DroppedChild {
                request_seq,
                location: location_key.to_string(),
                evse_uid: uid,
                connector_id: None,
            });
            continue;
        };
        for old_connector in list(&old_evse, "connectors") {
            let id = id_of(&old_connector, "id");
            if find_child(new_evse, "connectors", "id", &id).is_none() {
                dropped.push(DroppedChild {
                    request_seq,
                    location: location_key.to_string(),
                    evse_uid: uid.clone(),
                    connector_id: Some(id),
                });
            }
        }
    }
    dropped
}

/// The requests that change something at the partner (discovery GETs left out).
pub fn module_requests(partner: &OcpiPartner) -> Vec<RecordedRequest> {
    partner
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect()
}

fn flat_object(module: &'static str, call: &Call<'_>) -> Response {
    let ids = call.ids;
    // OCPI 2.1.1 addresses a Token by uid alone: it has no `?type=` (its tokens are stored
    // under the RFID key, whatever their type).
    let uid_only = module == "tokens" && !call.shared.options.version.has_roles_and_routing();
    let token_type = if module == "tokens" && !uid_only {
        query_param(call.query, "type").unwrap_or_else(|| "RFID".to_string())
    } else if uid_only {
        "RFID".to_string()
    } else {
        String::new()
    };
    let object_key = if module == "tokens" {
        key(&[ids[0], ids[1], ids[2], &token_type])
    } else {
        key(ids)
    };
    let unknown = match module {
        "tokens" => (2004, "Unknown Token"),
        "sessions" => (2001, "Unknown Session"),
        _ => (2001, "Unknown Tariff"),
    };
    let schema: PickSchema = match module {
        "tokens" => |rules| rules.token,
        "sessions" => |rules| rules.session,
        _ => |rules| rules.tariff,
    };
    let v211 = call.shared.options.version == PartnerVersion::V211;
    let allowed = match (module, call.method.clone()) {
        (_, Method::GET | Method::PUT) => true,
        ("sessions" | "tokens", Method::PATCH) => true,
        ("tariffs", Method::PATCH) => v211,
        ("tariffs", Method::DELETE) => true,
        _ => false,
    };
    if !allowed {
        return raw(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            format!("{} not allowed on {module}", call.method),
        );
    }
    match *call.method {
        Method::GET => {
            let store = call.shared.lock();
            match store.objects.get(module).and_then(|m| m.get(&object_key)) {
                Some(v) => success(StatusCode::OK, v.clone()),
                None => envelope(StatusCode::NOT_FOUND, unknown.0, unknown.1, Value::Null),
            }
        }
        Method::DELETE => {
            let mut store = call.shared.lock();
            match store.objects.entry(module).or_default().remove(&object_key) {
                Some(_) => success(StatusCode::OK, Value::Null),
                None => ocpi_error(unknown.0, unknown.1),
            }
        }
        _ => {
            let (body, at) = match call.object_body(schema) {
                Ok(b) => b,
                Err(refusal) => return refusal.respond(),
            };
            let mut store = call.shared.lock();
            let map = store.objects.entry(module).or_default();
            if let Err(refusal) = call.check_not_older(map.get(&object_key), at) {
                return refusal.respond();
            }
            if call.is_patch() {
                let Some(stored) = map.get(&object_key) else {
                    return ocpi_error(unknown.0, unknown.1);
                };
                let mut merged = stored.clone();
                merge(&mut merged, body, module == "sessions");
                let id_field = if module == "tokens" { "uid" } else { "id" };
                let checked = check_merged_ids(call, &merged, id_field, ids[2])
                    .and_then(|()| call.check_merged(schema, &merged));
                if let Err(refusal) = checked {
                    return refusal.respond();
                }
                map.insert(object_key, merged);
                return success(StatusCode::OK, Value::Null);
            }
            let id_field = if module == "tokens" { "uid" } else { "id" };
            if let Err(refusal) = check_ids(call, &body, id_field, ids[2]) {
                return refusal.respond();
            }
            if module == "tokens" && !uid_only {
                if let Some(body_type) = body.get("type").and_then(Value::as_str) {
                    if !body_type.eq_ignore_ascii_case(&token_type) {
                        return ocpi_error(
                            2001,
                            format!(
                                "type {body_type:?} in the body does not match ?type={token_type}"
                            ),
                        );
                    }
                }
            }
            let created = map.insert(object_key, Value::Object(body)).is_none();
            success(created_or_ok(created), Value::Null)
        }
    }
}

/// What the partner percent-encodes in an id it puts into a URL.
const ID_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'*');

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The key an object is stored under: its ids upper-cased (CiString) and joined with '/'.
pub fn key(ids: &[&str]) -> String {
    ids.iter()
        .map(|s| s.to_uppercase())
        .collect::<Vec<_>>()
        .join("/")
}

fn id_matches(object: &Value, field: &str, id: &str) -> bool {
    object
        .get(field)
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case(id))
}

fn find_child<'a>(parent: &'a Value, list: &str, field: &str, id: &str) -> Option<&'a Value> {
    parent
        .get(list)?
        .as_array()?
        .iter()
        .find(|c| id_matches(c, field, id))
}

/// The child list of an object, created empty when missing or not a list.
fn children<'a>(parent: &'a mut Value, list: &str) -> &'a mut Vec<Value> {
    let object = parent
        .as_object_mut()
        .expect("stored objects are JSON objects");
    let entry = object.entry(list).or_insert_with(|| json!([]));
    if !entry.is_array() {
        *entry = json!([]);
    }
    entry.as_array_mut().expect("just made a list")
}

fn replace_or_push(list: &mut Vec<Value>, index: Option<usize>, value: Value) -> bool {
    match index {
        Some(i) => {
            list[i] = value;
            false
        }
        None => {
            list.push(value);
            true
        }
    }
}

/// Top-level fields of `patch` replace the stored ones; with `append_periods`,
/// `charging_periods` are appended instead (Session PATCH).
fn merge(stored: &mut Value, patch: Map<String, Value>, append_periods: bool) {
    let Some(object) = stored.as_object_mut() else {
        return;
    };
    for (field, value) in patch {
        if append_periods && field == "charging_periods" {
            if let (Some(Value::Array(existing)), Value::Array(new)) =
                (object.get_mut("charging_periods"), &value)
            {
                existing.extend(new.iter().cloned());
                continue;
            }
        }
        object.insert(field, value);
    }
}

/// A parent's `last_updated` becomes the child's when that is newer.
fn bump_last_updated(parent: &mut Value, child_last_updated: &Value) {
    let Some(child_at) = child_last_updated.as_str().and_then(parse_rfc3339) else {
        return;
    };
    let parent_at = parent
        .get("last_updated")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    if parent_at.is_none_or(|p| p < child_at) {
        if let Some(object) = parent.as_object_mut() {
            object.insert("last_updated".into(), child_last_updated.clone());
        }
    }
}

/// Nanoseconds since the epoch of an RFC 3339 date-time ("2015-06-29T20:39:09Z", fractions and
/// offsets allowed; no zone at all is read as UTC, as 2.1.1 examples have it).
pub fn parse_rfc3339(text: &str) -> Option<i128> {
    let b = text.trim().as_bytes();
    let digits = |from: usize, to: usize| -> Option<i64> {
        let part = b.get(from..to)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos: i128 = 0;
    if rest.first() == Some(&b'.') {
        let count = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if count == 0 {
            return None;
        }
        for (i, c) in rest[1..=count].iter().enumerate() {
            if i < 9 {
                nanos = nanos * 10 + i128::from(c - b'0');
            }
        }
        for _ in count..9 {
            nanos *= 10;
        }
        rest = &rest[1 + count..];
    }
    let offset_secs: i64 = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let all = [*h1, *h2, *m1, *m2];
            if !all.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let h = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let m = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            let secs = h * 3600 + m * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// "2024-05-01T12:00:00.123Z" (UTC, milliseconds).
pub fn format_rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60,
        since.subsec_millis()
    )
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    change_message::calendar::days_from_civil(year, month as u32, day as u32)
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let (y, m, d) = change_message::calendar::civil_from_days(days);
    (y, i64::from(m), i64::from(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parsing_orders_fractions_and_offsets_correctly() {
        let a = parse_rfc3339("2015-06-29T20:39:09Z").unwrap();
        let b = parse_rfc3339("2015-06-29T20:39:09.5Z").unwrap();
        let c = parse_rfc3339("2015-06-29T22:39:10+02:00").unwrap();
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(parse_rfc3339("2015-06-29T20:39:09"), Some(a));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00.000000001Z"),
            Some(951_868_800_000_000_001)
        );
        for bad in [
            "",
            "2015-06-29",
            "2015-13-01T00:00:00Z",
            "2015-06-29T20:39:09+0200",
            "x015-06-29T20:39:09Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn formatted_timestamps_parse_back() {
        let now = SystemTime::now();
        let text = format_rfc3339(now);
        let parsed = parse_rfc3339(&text).unwrap();
        let expected = now.duration_since(UNIX_EPOCH).unwrap().as_millis() as i128 * 1_000_000;
        assert_eq!(parsed, expected, "{text}");
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
