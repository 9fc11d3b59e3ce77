//! One call for a lane's batch: render the coalesced change, guard CDR POSTs with the ledger,
//! send it, and turn the partner's answer into a [`CallResult`]. The worker in [`super`]
//! decides what happens to the deliveries next.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use change_message::RowChange;
use uuid::Uuid;

use super::{CallResult, Shared};
use crate::cdr_ledger::{CdrLedger, CdrState};
use crate::config::OldCdrsInSync;
use crate::lanes::{coalesce, Pending};
use crate::mapping::{self, render};
use crate::metrics::FailureClass;
use crate::ocpi::{join_url, objects, Endpoints, Outcome};

impl Shared {
    pub(super) fn endpoints(&self) -> Option<Arc<Endpoints>> {
        self.endpoints.read().ok().and_then(|e| e.clone())
    }

    /// The partner's endpoint URL of `module`, or what the call comes to without it.
    pub(super) fn module_url(&self, module: &str) -> Result<String, CallResult> {
        let Some(endpoints) = self.endpoints() else {
            return Err(CallResult::Retry {
                reason: "endpoints not discovered yet".into(),
                retry_after: None,
            });
        };
        match endpoints.url(module) {
            Some(url) => Ok(url.to_string()),
            None => Err(CallResult::PartnerLevel {
                reason: format!("the partner no longer offers a {module} endpoint"),
            }),
        }
    }

    /// One OCPI call for a lane's batch (its changes coalesced into the newest state).
    pub(super) async fn push(&self, batch: &[Pending], rediscover: bool) -> CallResult {
        let changes: Vec<Arc<RowChange>> = batch.iter().map(|p| p.change.clone()).collect();
        let Some(net) = coalesce(&changes) else {
            return CallResult::Delivered { seq: 0, note: None };
        };
        let partner = &self.partner;
        let Some(mapping) = partner.table(&net.database, &net.table) else {
            let reason = format!(
                "table `{}.{}` is not pushed to partner {}",
                net.database, net.table, partner.id
            );
            return self.park(batch, &reason).await;
        };
        // A snapshot row (initial sync) stands for a full state the partner may not hold.
        let snapshot = changes.iter().any(|c| c.snapshot.is_some());
        let rendered = render(mapping, &net, partner.version, snapshot);
        let rendered = match self.with_embeds(mapping, &net, rendered).await {
            Ok(rendered) => rendered,
            Err(result) => return result,
        };
        let plan = match self.sendable(batch, rendered, net.seq).await {
            Ok(plan) => plan,
            Err(result) => return result,
        };
        let base = match self.module_url(plan.module.identifier()) {
            Ok(base) => base,
            Err(result) => return result,
        };
        let base = base.as_str();
        let is_cdr_post = plan.method == mapping::Method::Post;
        if is_cdr_post {
            let from_sync = snapshot.then(|| cdr_last_updated(&plan));
            if let Some(result) = self
                .before_cdr_post(&plan.record_id, batch, net.seq, from_sync)
                .await
            {
                return result;
            }
        }
        let mut outcome = self.send(base, &plan).await;
        if let (mapping::Method::Patch, Outcome::Rejected { reason }) = (plan.method, &outcome) {
            // The partner may not hold the object (a partner still receiving its initial sync,
            // or one that lost data): the change carries the full row, so send all of it once.
            let rendered = render(mapping, &net, partner.version, true);
            let full = match self.with_embeds(mapping, &net, rendered).await {
                Ok(rendered) => rendered
                    .ok()
                    .filter(|full| full.method != mapping::Method::Patch)
                    .filter(|full| objects::check_request(partner.version, full).is_ok()),
                Err(result) => return result,
            };
            if let Some(full) = full {
                tracing::info!(partner = %partner.id, request = %plan, reason, "PATCH refused: sending the whole object instead");
                outcome = self.send(base, &full).await;
            }
        }
        match outcome {
            Outcome::Success { location, .. } => {
                if is_cdr_post {
                    if let Err(e) = self
                        .cdr_delivered(&plan.record_id, location.as_deref())
                        .await
                    {
                        tracing::error!(partner = %partner.id, record = %plan.record_id, error = %e, "CDR delivered but the ledger could not record it: a redelivery of it would be parked, not POSTed again");
                    }
                }
                CallResult::Delivered {
                    seq: net.seq,
                    note: None,
                }
            }
            Outcome::Transient {
                reason,
                retry_after,
            } => {
                if is_cdr_post {
                    if post_may_have_landed(&reason) {
                        let reason = format!(
                            "CDR {}: the POST has an unknown outcome (no usable answer: \
                             {reason}), so the partner may hold it; not POSTed again to avoid a \
                             duplicate CDR. Check the partner and replay this message if the CDR \
                             is missing",
                            plan.record_id
                        );
                        return self.park(batch, &reason).await;
                    }
                    self.cdr_not_delivered(&plan.record_id).await;
                }
                CallResult::Retry {
                    reason,
                    retry_after,
                }
            }
            Outcome::Rejected { reason } => {
                if is_cdr_post {
                    self.cdr_not_delivered(&plan.record_id).await;
                }
                if rediscover && reason.starts_with("HTTP 404") {
                    return CallResult::EndpointGone { reason };
                }
                if snapshot && plan.method == mapping::Method::Delete {
                    // A snapshot's removal of an object the partner never held: the partner
                    // is where the database is.
                    return CallResult::Delivered {
                        seq: net.seq,
                        note: Some(format!("{plan}: the partner does not hold it ({reason})")),
                    };
                }
                let reason = format!("{plan}: the partner rejected it: {reason}");
                self.park(batch, &reason).await
            }
            Outcome::PartnerLevel { reason } => {
                if is_cdr_post {
                    self.cdr_not_delivered(&plan.record_id).await;
                }
                CallResult::PartnerLevel { reason }
            }
        }
    }

    /// The rendered request if it may leave; else what the call comes to: nothing to send
    /// (delivered, with the reason), or parked because it cannot be sent as valid OCPI of the
    /// partner's version (the field and the rule named), without a call.
    pub(super) async fn sendable(
        &self,
        batch: &[Pending],
        rendered: Result<mapping::PlannedRequest, mapping::MappingError>,
        seq: u64,
    ) -> Result<mapping::PlannedRequest, CallResult> {
        let reason = match rendered {
            Ok(plan) => match objects::check_request(self.partner.version, &plan) {
                Ok(()) => return Ok(plan),
                Err(invalid) => format!("{plan}: not sent: {invalid}"),
            },
            Err(e) if e.is_nothing_to_send() => {
                return Err(CallResult::Delivered {
                    seq,
                    note: Some(e.to_string()),
                })
            }
            Err(e) => format!("cannot be sent as OCPI: {e}"),
        };
        self.metrics.failed(FailureClass::Unsendable);
        Err(self.park(batch, &reason).await)
    }

    /// One planned request to the module endpoint `base`.
    pub(super) async fn send(&self, base: &str, plan: &mapping::PlannedRequest) -> Outcome {
        let url = url_of(base, plan);
        let outcome = self
            .client
            .send(
                plan.method.into(),
                &url,
                plan.body.as_ref(),
                Some(Uuid::new_v4()),
            )
            .await;
        tracing::debug!(partner = %self.partner.id, request = %plan, outcome = outcome.kind(), "call done");
        self.metrics.call_answered(&outcome);
        outcome
    }

    /// The CDR guard: `Some(result)` when the POST must not happen. `from_sync`: the CDR comes
    /// from a sync, with its `last_updated` (`None` inside: unreadable).
    async fn before_cdr_post(
        &self,
        id: &str,
        batch: &[Pending],
        seq: u64,
        from_sync: Option<Option<SystemTime>>,
    ) -> Option<CallResult> {
        let Some(ledger) = &self.ledger else {
            return Some(CallResult::Retry {
                reason: "the CDR ledger is not open".into(),
                retry_after: None,
            });
        };
        let mut ledger = ledger.lock().await;
        let state = crate::disk_work::off_worker(|| ledger.state(id));
        match state {
            Some(CdrState::Delivered { .. }) => Some(CallResult::Delivered {
                seq,
                note: Some(format!(
                    "CDR {id} was already delivered to this partner (CDR ledger): not POSTed again"
                )),
            }),
            Some(CdrState::Attempted { .. }) => {
                drop(ledger);
                let reason = format!(
                    "CDR {id}: an earlier POST of it has an unknown outcome (the pusher stopped \
                     or lost the connection mid-call), so the partner may hold it; not POSTed \
                     again to avoid a duplicate CDR. Check the partner and replay this message \
                     if the CDR is missing"
                );
                Some(self.park(batch, &reason).await)
            }
            None => {
                if let Some(forgotten) = from_sync.and_then(|t| older_than_ledger(t, &ledger)) {
                    drop(ledger);
                    return Some(self.old_cdr_in_sync(id, batch, seq, forgotten).await);
                }
                match crate::disk_work::off_worker(|| ledger.record_attempt(id)) {
                    Ok(()) => None,
                    Err(e) => Some(CallResult::Retry {
                        reason: format!("cannot write the CDR ledger: {e}"),
                        retry_after: None,
                    }),
                }
            }
        }
    }

    /// A CDR of a sync that the ledger cannot vouch for: skipped or parked, as configured.
    async fn old_cdr_in_sync(
        &self,
        id: &str,
        batch: &[Pending],
        seq: u64,
        forgotten: SystemTime,
    ) -> CallResult {
        let why = format!(
            "CDR {id} comes from a sync and is older than what this partner's CDR ledger \
             remembers (it dropped entries up to {}, after cdr_ledger_days), so the partner may \
             hold it already",
            crate::cdr_ledger::format_time(forgotten)
        );
        match self.partner.old_cdrs_in_sync {
            OldCdrsInSync::Skip => {
                self.metrics.cdr_not_resent();
                CallResult::Delivered {
                    seq,
                    note: Some(format!("{why}: not POSTed (old_cdrs_in_sync = \"skip\")")),
                }
            }
            OldCdrsInSync::Park => {
                let reason = format!(
                    "{why}. Check the partner and replay this message if the CDR is missing \
                     (old_cdrs_in_sync = \"park\")"
                );
                self.park(batch, &reason).await
            }
        }
    }

    async fn cdr_delivered(
        &self,
        id: &str,
        location: Option<&str>,
    ) -> Result<(), crate::cdr_ledger::LedgerError> {
        match &self.ledger {
            Some(ledger) => {
                let mut ledger = ledger.lock().await;
                crate::disk_work::off_worker(|| ledger.record_delivered(id, location))
            }
            None => Ok(()),
        }
    }

    async fn cdr_not_delivered(&self, id: &str) {
        if let Some(ledger) = &self.ledger {
            let mut ledger = ledger.lock().await;
            if let Err(e) = crate::disk_work::off_worker(|| ledger.forget(id)) {
                tracing::warn!(partner = %self.partner.id, record = id, error = %e, "cannot clear the CDR ledger entry: a later delivery of this CDR will be parked, not POSTed");
            }
        }
    }

    /// Parks every message of the batch; `Parked` once all are confirmed.
    pub(super) async fn park(&self, batch: &[Pending], reason: &str) -> CallResult {
        for p in batch {
            if let Err(e) = self
                .parker
                .park(
                    &self.partner.parking_queue,
                    &self.partner.id,
                    &p.raw.body,
                    &p.raw.properties,
                    reason,
                )
                .await
            {
                return CallResult::Retry {
                    reason: format!("{e} (while parking: {reason})"),
                    retry_after: None,
                };
            }
        }
        CallResult::Parked {
            reason: reason.to_string(),
        }
    }
}

/// Whether a transient failure of a POST may hide a CDR the partner stored: anything but a
/// refused connection or an HTTP error answer (4xx/5xx, or 200 with an OCPI error code).
pub(super) fn post_may_have_landed(reason: &str) -> bool {
    if reason.starts_with("could not connect") {
        return false;
    }
    if reason.contains("reading the response body failed") {
        return true;
    }
    if let Some(rest) = reason.strip_prefix("HTTP ") {
        let answered_error = rest.starts_with('4')
            || rest.starts_with('5')
            || (rest.starts_with('2') && rest.contains("OCPI status_code"));
        return !answered_error;
    }
    true
}

/// The URL of `plan` at the module endpoint `base`.
pub(super) fn url_of(base: &str, plan: &mapping::PlannedRequest) -> String {
    let ids: Vec<&str> = plan.path_ids.iter().map(String::as_str).collect();
    with_query(&join_url(base, &ids), &plan.query)
}

/// `url` with the query parameters appended, each escaped.
pub(super) fn with_query(url: &str, query: &[(String, String)]) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    // RFC 3986 unreserved characters stay as they are.
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let mut out = url.to_string();
    for (i, (k, v)) in query.iter().enumerate() {
        out.push(if i == 0 && !url.contains('?') {
            '?'
        } else {
            '&'
        });
        out.push_str(&utf8_percent_encode(k, QUERY).to_string());
        out.push('=');
        out.push_str(&utf8_percent_encode(v, QUERY).to_string());
    }
    out
}

/// How far a CDR's `last_updated` may be ahead of the moment it was POSTed (clocks of the
/// application and of the pusher differ) and still be taken as a proof.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The `last_updated` of a CDR request; `None` when missing or unreadable.
fn cdr_last_updated(plan: &mapping::PlannedRequest) -> Option<SystemTime> {
    let text = plan.body.as_ref()?.get("last_updated")?.as_str()?;
    mapping::instant(text).map(mapping::Instant::to_system_time)
}

/// `Some(forgotten)` when the ledger cannot tell whether a CDR last updated at `last_updated`
/// (`None`: unknown) was POSTed before: it dropped entries up to `forgotten`, and a CDR is
/// POSTed after its `last_updated`, so only one updated before that (within the clock skew) can
/// have had its entry dropped.
fn older_than_ledger(last_updated: Option<SystemTime>, ledger: &CdrLedger) -> Option<SystemTime> {
    let forgotten = ledger.forgotten_before()?;
    match last_updated {
        Some(t) if t > forgotten + CLOCK_SKEW => None,
        _ => Some(forgotten),
    }
}
