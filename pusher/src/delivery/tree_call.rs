//! One call for a lane of a Location > EVSE > Connector tree: read the target object's current
//! state with its children from the source database and PUT it whole (the rules and the
//! invariants are in [`crate::composite`]). A partner that does not hold the target's parent
//! gets the whole Location instead.

use change_message::Operation;

use super::{CallResult, Shared};
use crate::composite::{self, Target};
use crate::lanes::{coalesce, Pending};
use crate::mapping::{self, PlannedRequest};
use crate::metrics::FailureClass;
use crate::ocpi::{objects, refused_as_unknown, Outcome};
use crate::source_db::{DbError, SourceDb};

/// What reading and planning one target came to.
enum Planned {
    /// The request, and the target's row as read.
    Put(PlannedRequest, change_message::Row),
    /// Nothing to send now, and why (an EVSE without connectors yet).
    Nothing(String),
    /// The object is not in the database (any more).
    Gone,
    Stop(CallResult),
}

impl Shared {
    /// The call of a tree lane's batch: one record's changes, or the root's with every change
    /// of its tree (see [`crate::lanes`]).
    pub(super) async fn push_tree(&self, batch: &[Pending]) -> CallResult {
        let Some(newest) = batch.iter().max_by_key(|p| p.change.seq) else {
            return CallResult::Delivered { seq: 0, note: None };
        };
        let seq = newest.change.seq;
        let Some(db) = self.source_db.as_deref() else {
            return self
                .park(
                    batch,
                    "a composite object needs [database] in the pusher configuration",
                )
                .await;
        };
        let config = &self.partner.mapping;
        let target = match self.target(batch) {
            Ok(target) => target,
            Err(e) => {
                self.metrics.failed(FailureClass::Unsendable);
                return self
                    .park(batch, &format!("cannot be sent as OCPI: {e}"))
                    .await;
            }
        };
        // A deleted child may have held the tree's newest last_updated: its delete's commit time
        // keeps the object from looking older than what the partner holds.
        let floor = batch
            .iter()
            .any(|p| p.change.op == Operation::Delete)
            .then(|| newest_commit_time(batch))
            .flatten();
        if let Err(result) = self
            .replica_caught_up(db, batch.iter().map(|p| p.change.source.gtid.as_deref()))
            .await
        {
            return self.stop(batch, result).await;
        }
        let plan = match self.plan(db, &target, floor).await {
            Planned::Put(_, row) if read_before_commit(batch, &target, &row) => {
                // The binlog reaches the bridge before the server makes the transaction visible
                // to other sessions: this read may miss the change. Read again shortly.
                return CallResult::WaitDatabase {
                    reason: format!(
                        "the database does not show the change of {} yet (its commit is not \
                         visible): reading it again",
                        target.key()
                    ),
                };
            }
            Planned::Put(plan, _) => plan,
            Planned::Gone => return self.gone(batch, &target, seq).await,
            Planned::Nothing(note) => {
                return CallResult::Delivered {
                    seq,
                    note: Some(note),
                }
            }
            Planned::Stop(result) => return self.stop(batch, result).await,
        };
        let base = match self.module_url(target.mapping.module.identifier()) {
            Ok(base) => base,
            Err(result) => return result,
        };
        let root = composite::root_of(config, &target);
        let (plan, mut outcome) = self
            .send_tree(&base, plan, &tree_keys(&target, &root))
            .await;
        if let Outcome::Rejected { reason } = &outcome {
            if refused_as_unknown(reason) && root.key() != target.key() {
                tracing::info!(partner = %self.partner.id, request = %plan, reason, "the partner does not hold the parent: sending the whole Location");
                match self.plan(db, &root, floor).await {
                    Planned::Put(root_plan, _) => {
                        outcome = self.send_tree(&base, root_plan, &[root.key()]).await.1
                    }
                    Planned::Gone | Planned::Nothing(_) => {}
                    Planned::Stop(result) => return self.stop(batch, result).await,
                }
            }
        }
        self.answer(batch, &plan, outcome, seq, false).await
    }

    /// What the partner's answer to a tree call means for the batch. With `removal`, a refusal
    /// because the partner does not know the object is done: the object is gone on both sides.
    async fn answer(
        &self,
        batch: &[Pending],
        plan: &PlannedRequest,
        outcome: Outcome,
        seq: u64,
        removal: bool,
    ) -> CallResult {
        match outcome {
            Outcome::Success { .. } => CallResult::Delivered { seq, note: None },
            Outcome::Transient {
                reason,
                retry_after,
            } => CallResult::Retry {
                reason,
                retry_after,
            },
            Outcome::Rejected { reason } if removal && refused_as_unknown(&reason) => {
                CallResult::Delivered {
                    seq,
                    note: Some(format!("{plan}: the partner does not hold it ({reason})")),
                }
            }
            Outcome::Rejected { reason } => {
                let reason = format!("{plan}: the partner rejected it: {reason}");
                self.park(batch, &reason).await
            }
            Outcome::PartnerLevel { reason } => CallResult::PartnerLevel { reason },
        }
    }

    /// The object the batch makes us PUT: the tree's root when the batch holds a change of it,
    /// else the target of the batch's record.
    fn target(&self, batch: &[Pending]) -> Result<Target<'_>, mapping::MappingError> {
        let config = &self.partner.mapping;
        let mut found = None;
        for pending in batch {
            let change = &pending.change;
            let Some(table) = config.get(&change.database, &change.table) else {
                continue;
            };
            let Some(image) = change.latest_image() else {
                continue;
            };
            let target = composite::target_of(config, table, image)?;
            if config.parent_of(target.mapping).is_none() {
                return Ok(target); // the tree's root
            }
            found.get_or_insert(target);
        }
        found.ok_or_else(|| mapping::MappingError::Rejected {
            table: batch
                .first()
                .map(|p| format!("{}.{}", p.change.database, p.change.table))
                .unwrap_or_default(),
            reason: "the change carries no row image to name its object".into(),
        })
    }

    async fn plan(&self, db: &SourceDb, target: &Target<'_>, floor: Option<&str>) -> Planned {
        let config = &self.partner.mapping;
        let node = match composite::read(db, config, target).await {
            Ok(Some(node)) => node,
            Ok(None) => return Planned::Gone,
            Err(e @ (DbError::Unavailable { .. } | DbError::Tls { .. })) => {
                self.metrics.failed(FailureClass::Database);
                return Planned::Stop(CallResult::WaitDatabase {
                    reason: e.to_string(),
                });
            }
            Err(e @ (DbError::Schema { .. } | DbError::Unwaitable { .. })) => {
                return Planned::Stop(CallResult::Parked {
                    reason: e.to_string(),
                })
            }
        };
        self.metrics.database_read();
        match composite::plan_put(config, target.mapping, &node, self.partner.version, floor) {
            Ok(plan) => match objects::check_request(self.partner.version, &plan) {
                Ok(()) => Planned::Put(plan, node.row),
                Err(invalid) => Planned::Stop(CallResult::Parked {
                    reason: format!("{plan}: not sent: {invalid}"),
                }),
            },
            Err(e) if e.is_nothing_to_send() => Planned::Nothing(e.to_string()),
            Err(e) => Planned::Stop(CallResult::Parked {
                reason: format!("cannot be sent as OCPI: {e}"),
            }),
        }
    }

    /// On a replica, waits until it has applied the transactions of these changes (see
    /// [`SourceDb::wait_applied`]); `Err` with what the call comes to when it has not (wait) or
    /// cannot (park).
    pub(super) async fn replica_caught_up<'a>(
        &self,
        db: &SourceDb,
        gtids: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Result<(), CallResult> {
        match db.wait_applied(gtids).await {
            Ok(()) => Ok(()),
            Err(e @ (DbError::Unavailable { .. } | DbError::Tls { .. })) => {
                self.metrics.failed(FailureClass::Database);
                Err(CallResult::WaitDatabase {
                    reason: e.to_string(),
                })
            }
            Err(e) => Err(CallResult::Parked {
                reason: e.to_string(),
            }),
        }
    }

    /// A [`Planned::Stop`]: `Parked` still has to be parked.
    pub(super) async fn stop(&self, batch: &[Pending], result: CallResult) -> CallResult {
        match result {
            CallResult::Parked { reason } => {
                self.metrics.failed(FailureClass::Unsendable);
                self.park(batch, &reason).await
            }
            other => other,
        }
    }

    /// The target is not in the database. Its own delete goes out as the mapping's removal (an
    /// EVSE: PATCH status REMOVED); a child's change of a parent deleted since needs nothing
    /// (the parent's own delete follows in the queue).
    async fn gone(&self, batch: &[Pending], target: &Target<'_>, seq: u64) -> CallResult {
        let own_delete = batch.iter().any(|p| {
            p.change.op == Operation::Delete
                && p.change.database == target.mapping.database
                && p.change.table == target.mapping.table
        });
        if !own_delete {
            return CallResult::Delivered {
                seq,
                note: Some(format!(
                    "{} {} is no longer in the database: nothing to send for this change",
                    target.mapping.object(),
                    target.key()
                )),
            };
        }
        let changes: Vec<_> = batch.iter().map(|p| p.change.clone()).collect();
        let Some(net) = coalesce(&changes) else {
            return CallResult::Delivered { seq, note: None };
        };
        let rendered = mapping::render(target.mapping, &net, self.partner.version, false);
        let plan = match self.sendable(batch, rendered, seq).await {
            Ok(plan) => plan,
            Err(result) => return result,
        };
        let base = match self.module_url(target.mapping.module.identifier()) {
            Ok(base) => base,
            Err(result) => return result,
        };
        let root = composite::root_of(&self.partner.mapping, target);
        let (plan, outcome) = self.send_tree(&base, plan, &tree_keys(target, &root)).await;
        self.answer(batch, &plan, outcome, seq, true).await
    }

    /// Sends a request about the tree object `keys[0]` (its ancestors follow): its
    /// `last_updated` is raised to the newest this partner was sent for the object, if that is
    /// later (a deleted child may have held it, see [`crate::tree_clock`]); what went out is
    /// remembered for the object and its ancestors once the partner took it.
    async fn send_tree(
        &self,
        base: &str,
        mut plan: PlannedRequest,
        keys: &[String],
    ) -> (PlannedRequest, Outcome) {
        if let (Some(key), Some(serde_json::Value::Object(body))) = (keys.first(), &mut plan.body) {
            let raised = body
                .get("last_updated")
                .and_then(serde_json::Value::as_str)
                .and_then(|lu| self.tree_clock().at_least(key, lu));
            if let Some(raised) = raised {
                tracing::debug!(partner = %self.partner.id, record = %plan.record_id, last_updated = %raised, "last_updated raised to what the partner holds (a deleted child held the newest)");
                body.insert("last_updated".into(), serde_json::Value::String(raised));
            }
        }
        let mut outcome = self.send(base, &plan).await;
        if let Outcome::Rejected { reason } = &outcome {
            if !refused_as_unknown(reason) {
                if let Some(held) = self.held_later(base, &plan).await {
                    // The partner holds a later last_updated than this pusher knows of (an
                    // earlier process sent it, for a child deleted since): send the state again
                    // dated at that, which the partner does not find older.
                    tracing::info!(partner = %self.partner.id, request = %plan, reason, last_updated = %held, "refused; the partner holds a later last_updated: sending again with it");
                    if let Some(serde_json::Value::Object(body)) = &mut plan.body {
                        body.insert("last_updated".into(), serde_json::Value::String(held));
                    }
                    outcome = self.send(base, &plan).await;
                }
            }
        }
        if let (Outcome::Success { .. }, Some(lu)) = (
            &outcome,
            plan.body
                .as_ref()
                .and_then(|b| b.get("last_updated"))
                .and_then(serde_json::Value::as_str),
        ) {
            self.tree_clock().sent(keys, lu);
        }
        (plan, outcome)
    }

    /// The `last_updated` the partner holds for the object of `plan` (OCPI GET of the object
    /// at the receiver), when it is later than the one `plan` carries.
    async fn held_later(&self, base: &str, plan: &PlannedRequest) -> Option<String> {
        let ours = plan.body.as_ref()?.get("last_updated")?.as_str()?;
        let held = self
            .client
            .get_json(&super::call::url_of(base, plan))
            .await
            .ok()?;
        let held = held.get("last_updated")?.as_str()?;
        match (mapping::instant(held), mapping::instant(ours)) {
            (Some(h), Some(o)) if h > o => Some(held.to_string()),
            _ => None,
        }
    }

    fn tree_clock(&self) -> std::sync::MutexGuard<'_, crate::tree_clock::TreeClock> {
        // A poisoned lock only means a panic elsewhere mid-update: the map is still usable.
        self.tree_clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The target's key and, when it is not the root, its root's: the objects whose
/// `last_updated` a receiver bumps for a request about the target.
fn tree_keys(target: &Target<'_>, root: &Target<'_>) -> Vec<String> {
    let (own, root) = (target.key(), root.key());
    if own == root {
        vec![own]
    } else {
        vec![own, root]
    }
}

/// True when the target's row read from the database is older than a change of it in the
/// batch (its `last_updated` column holds an earlier value than the change's row image).
///
/// Only for changes committed in the last 10 s: a row whose `last_updated` an application set
/// backwards later must not make the change wait for ever.
fn read_before_commit(batch: &[Pending], target: &Target<'_>, read: &change_message::Row) -> bool {
    let Some(column) = last_updated_column(target.mapping) else {
        return false;
    };
    let Some(read_at) = read
        .get(column)
        .and_then(|v| v.as_str())
        .map(mapping::instant)
    else {
        return false;
    };
    let mut floor = None;
    batch.iter().any(|p| {
        let change = &p.change;
        let changed_at = change
            .after
            .as_ref()
            .and_then(|a| a.get(column))
            .and_then(|v| v.as_str())
            .map(mapping::instant);
        change.op != Operation::Delete
            && change.database == target.mapping.database
            && change.table == target.mapping.table
            && matches!(changed_at, Some(Some(c)) if read_at.is_some_and(|r| r < c))
            && target
                .mapping
                .path
                .iter()
                .all(|c| change.after.as_ref().and_then(|a| a.get(c)) == target.ids.get(c))
            && mapping::instant(&change.source.commit_time)
                >= *floor.get_or_insert_with(ten_seconds_ago)
    })
}

/// The instant 10 s ago, as [`mapping::instant`] gives it.
fn ten_seconds_ago() -> Option<mapping::Instant> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        - 10;
    mapping::instant(&change_message::calendar::rfc3339_from_unix_seconds(secs))
}

/// The column that feeds the mapping's top-level `last_updated`.
fn last_updated_column(mapping: &crate::mapping::TableMapping) -> Option<&str> {
    match &mapping.body {
        crate::mapping::Body::Fields(fields) => fields
            .iter()
            .find(|f| f.path == ["last_updated"])
            .and_then(|f| f.column()),
        crate::mapping::Body::Column { .. } => None,
    }
}

/// The newest commit time among the batch's changes (RFC 3339).
fn newest_commit_time(batch: &[Pending]) -> Option<&str> {
    let mut newest: Option<&str> = None;
    for p in batch {
        let t = p.change.source.commit_time.as_str();
        let later = match newest {
            None => mapping::instant(t).is_some(),
            Some(n) => {
                matches!((mapping::instant(t), mapping::instant(n)), (Some(a), Some(b)) if a > b)
            }
        };
        if later {
            newest = Some(t);
        }
    }
    newest
}
