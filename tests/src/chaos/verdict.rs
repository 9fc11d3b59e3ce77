//! What the run checks at the end, from each partner's request log and state, the database and
//! the parking queues:
//! - lost: what the partner holds differs from the database (missing, different or extra
//!   records);
//! - regressions: a record went back to an older state at the partner: an accepted PUT or
//!   PATCH whose `last_updated` is older than one accepted before for the same URL, or one the
//!   strict partner refused as older than what it stored;
//! - duplicate CDRs: POSTs of a CDR after its first accepted one;
//! - parked: messages in a parking queue, except CDRs whose POST has an unknown outcome (the
//!   pusher was killed during the POST, or the partner timed out or dropped the connection
//!   after receiving it): those are parked by design for a person to check the partner, and
//!   are counted apart, as is their CDR missing at the partner.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::consistency::{compare, DatabaseRows};
use crate::ocpi_partner::{parse_rfc3339, OcpiPartner, RecordedRequest};
use crate::pusher_cli::pusher_cmd;
use crate::pusher_config::PusherConfig;

/// The OCPI status of success.
const OCPI_SUCCESS: u32 = 1000;

/// One partner's findings.
#[derive(Debug, Default)]
pub struct PartnerVerdict {
    pub id: String,
    /// Differences from the database other than excused CDRs and duplicate POSTs.
    pub lost: Vec<String>,
    pub regressions: Vec<String>,
    pub duplicate_cdrs: usize,
    /// Parked messages other than CDRs with an unknown outcome: (table, key, reason).
    pub parked: Vec<String>,
    /// CDR ids parked with an unknown outcome.
    pub unknown_outcome_cdrs: BTreeSet<String>,
}

/// Regressions in the request log of one partner, in arrival order.
pub fn regressions(requests: &[RecordedRequest]) -> Vec<String> {
    let mut requests: Vec<&RecordedRequest> = requests.iter().collect();
    requests.sort_by_key(|r| r.seq);
    let mut newest: HashMap<&str, i128> = HashMap::new();
    let mut found = Vec::new();
    for r in requests {
        if r.method != "PUT" && r.method != "PATCH" {
            continue;
        }
        if let Some(reason) = &r.refusal {
            if reason.contains("older") {
                found.push(format!("{} {}: refused: {reason}", r.method, r.path));
            }
            continue;
        }
        if r.ocpi_status != Some(OCPI_SUCCESS) {
            continue;
        }
        let Some(at) = r
            .body
            .as_ref()
            .and_then(|b| b.get("last_updated"))
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
        else {
            continue;
        };
        let stored = newest.entry(r.path.as_str()).or_insert(at);
        if at < *stored {
            found.push(format!(
                "{} {} (request #{}): last_updated older than one accepted before",
                r.method, r.path, r.seq
            ));
        } else {
            *stored = at;
        }
    }
    found
}

/// The partner's CDR POSTs beyond the first of each id.
pub fn duplicate_cdrs(cdrs: &[Value]) -> usize {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for cdr in cdrs {
        let id = cdr.get("id").and_then(Value::as_str).unwrap_or_default();
        *seen.entry(id.to_uppercase()).or_default() += 1;
    }
    seen.values().map(|n| n - 1).sum()
}

/// The parked messages of partner `id`, split into unknown-outcome CDR ids and the others.
pub async fn parked(
    cfg: &PusherConfig,
    env: &[(String, String)],
    id: &str,
) -> (BTreeSet<String>, Vec<String>) {
    let (status, out) = pusher_cmd(cfg, &["parked", "list", id, "--json"], env).await;
    assert!(status.success(), "`pusher parked list {id}` failed:\n{out}");
    let start = out.find('{').unwrap_or(out.len());
    let listing: Value = serde_json::from_str(&out[start..])
        .unwrap_or_else(|e| panic!("`pusher parked list {id} --json`: {e}:\n{out}"));
    let mut cdrs = BTreeSet::new();
    let mut others = Vec::new();
    for m in listing["messages"].as_array().into_iter().flatten() {
        let reason = m["reason"].as_str().unwrap_or_default();
        let table = m["table"].as_str().unwrap_or_default();
        if table.ends_with(".cdrs") && reason.contains("unknown outcome") {
            let cdr_id = m["key"]["id"].as_str().unwrap_or_default();
            cdrs.insert(cdr_id.to_uppercase());
        } else {
            others.push(format!("{table} {}: {reason}", m["key"]));
        }
    }
    (cdrs, others)
}

/// Everything about one partner at the end of the run.
pub async fn judge(
    id: &str,
    partner: &OcpiPartner,
    rows: &DatabaseRows,
    cfg: &PusherConfig,
    env: &[(String, String)],
) -> PartnerVerdict {
    let state = partner.state(true);
    let (unknown_outcome_cdrs, parked) = parked(cfg, env, id).await;
    let lost = unexcused(
        compare(&state, rows, &state.version).diffs,
        &unknown_outcome_cdrs,
    );
    PartnerVerdict {
        id: id.to_string(),
        lost,
        regressions: regressions(&partner.requests()),
        duplicate_cdrs: duplicate_cdrs(&state.cdrs),
        parked,
        unknown_outcome_cdrs,
    }
}

/// The differences that count as lost: not a CDR missing because its POST has an unknown
/// outcome (parked for a person), not a CDR POSTed more than once (counted as a duplicate).
pub fn unexcused(diffs: Vec<String>, unknown_outcome_cdrs: &BTreeSet<String>) -> Vec<String> {
    diffs
        .into_iter()
        .filter(|d| {
            let excused = d
                .strip_prefix("CDR ")
                .and_then(|rest| rest.strip_suffix(": missing at the partner"))
                .is_some_and(|cdr| unknown_outcome_cdrs.contains(cdr));
            !excused && !d.contains("times (a CDR must be sent once)")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use serde_json::json;

    use super::*;

    fn put(seq: usize, path: &str, last_updated: &str, refusal: Option<&str>) -> RecordedRequest {
        RecordedRequest {
            seq,
            method: "PUT".into(),
            path: path.into(),
            query: None,
            headers: Vec::new(),
            body: Some(json!({"last_updated": last_updated})),
            raw_body: Vec::new(),
            at: SystemTime::now(),
            http_status: Some(200),
            ocpi_status: Some(if refusal.is_some() { 2001 } else { 1000 }),
            refusal: refusal.map(str::to_string),
        }
    }

    #[test]
    fn an_accepted_older_state_of_one_url_is_a_regression_and_other_urls_are_apart() {
        let requests = [
            put(2, "/t/A", "2026-01-01T10:00:02Z", None),
            put(1, "/t/A", "2026-01-01T10:00:01Z", None),
            put(3, "/t/B", "2026-01-01T09:00:00Z", None),
            put(4, "/t/A", "2026-01-01T10:00:02Z", None),
            put(5, "/t/A", "2026-01-01T10:00:00Z", None),
        ];
        let found = regressions(&requests);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("#5"), "{found:?}");
    }

    #[test]
    fn a_refusal_as_older_than_stored_is_a_regression_and_other_refusals_are_not() {
        let requests = [
            put(1, "/t/A", "2026-01-01T10:00:00Z", Some("older than stored")),
            put(2, "/t/B", "2026-01-01T10:00:00Z", Some("missing field")),
        ];
        assert_eq!(regressions(&requests).len(), 1);
    }

    #[test]
    fn every_post_of_a_cdr_after_its_first_is_a_duplicate() {
        let cdrs = [
            json!({"id": "C1"}),
            json!({"id": "c1"}),
            json!({"id": "C2"}),
            json!({"id": "C1"}),
        ];
        assert_eq!(duplicate_cdrs(&cdrs), 2);
    }

    #[test]
    fn only_missing_cdrs_parked_with_an_unknown_outcome_are_excused() {
        let parked: BTreeSet<String> = ["C1".to_string()].into();
        let diffs = vec![
            "CDR C1: missing at the partner".to_string(),
            "CDR C2: missing at the partner".to_string(),
            "CDR C3: POSTed 2 times (a CDR must be sent once)".to_string(),
            "tariff NL/EXA/T1: missing at the partner".to_string(),
        ];
        let left = unexcused(diffs, &parked);
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left[0].starts_with("CDR C2"));
    }
}
