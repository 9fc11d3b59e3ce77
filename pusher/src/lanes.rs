//! Per-record lanes: the bookkeeping that lets different records go out concurrently while each
//! record's changes go out one call at a time, in order, coalesced.
//!
//! Every delivery joins the lane of its record (table + primary key). A lane is either idle or
//! has one call in flight; changes that arrive meanwhile wait in the lane and go out together
//! with the next call, as one request carrying the newest state ([`coalesce`]). Lanes become
//! ready in the order their first waiting change arrived, so the queue order is kept as far as
//! per-record order allows.
//!
//! The lanes also remember the newest `seq` pushed per record (for a bounded number of recent
//! records): a change whose `seq` is not newer than what the partner already got (a duplicate
//! republished by the bridge after a crash, arriving behind the original's successor) is
//! acknowledged without a call, so it can never overwrite a newer state.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use change_message::{Operation, RowChange};

/// A delivery as it came from the broker, kept to park it unchanged.
#[derive(Debug, Default)]
pub struct Raw {
    pub body: Vec<u8>,
    pub properties: lapin::BasicProperties,
}

/// One delivery waiting in (or taken from) a lane.
#[derive(Debug, Clone)]
pub struct Pending {
    pub tag: u64,
    /// The record (table + primary key) the change is about.
    pub record: Arc<str>,
    pub change: Arc<RowChange>,
    pub raw: Arc<Raw>,
    /// The broker's redelivered flag: someone may have seen this message before.
    pub redelivered: bool,
    /// A change of a composite tree's table: `record` is its target object, and the call reads
    /// that object from the source database ([`crate::composite`]).
    pub tree: bool,
}

/// How a lane's waiting changes become calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LaneKind {
    /// The head record's run, coalesced into one call.
    #[default]
    Record,
    /// One message per call: a CDR POST is never merged with another, a Session keeps every
    /// state.
    OneAtATime,
    /// A Location's tree, keyed by the Location: the head record's run, or, when a change of
    /// the Location itself waits, every waiting change (one PUT of the whole Location covers
    /// them all).
    Tree,
}

#[derive(Debug, Default)]
struct Lane {
    pending: Vec<Pending>,
    busy: bool,
    kind: LaneKind,
}

/// What [`Lanes::add`] did with a delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Waiting in its lane.
    Queued,
    /// Older than (or the same as) what was already pushed for its record: ack it unsent.
    Stale { pushed_seq: u64 },
}

pub struct Lanes {
    lanes: HashMap<String, Lane>,
    ready: VecDeque<String>,
    pushed: SeqMemory,
}

impl Lanes {
    /// `remember` bounds how many records' last pushed `seq` are kept.
    pub fn new(remember: usize) -> Lanes {
        Lanes {
            lanes: HashMap::new(),
            ready: VecDeque::new(),
            pushed: SeqMemory::new(remember),
        }
    }

    /// Adds a delivery to lane `key`: its record's key, or a group of records whose changes
    /// must keep their relative order (a Location with its EVSEs and Connectors: a child must
    /// not reach the partner before its parent exists).
    pub fn add(&mut self, key: &str, pending: Pending, kind: LaneKind) -> Added {
        if let Some(pushed_seq) = self.pushed.get(&pending.record) {
            if pending.change.seq <= pushed_seq {
                return Added::Stale { pushed_seq };
            }
        }
        let lane = self.lanes.entry(key.to_string()).or_default();
        lane.kind = kind;
        let was_waiting = !lane.pending.is_empty();
        lane.pending.push(pending);
        if !lane.busy && !was_waiting {
            self.ready.push_back(key.to_string());
        }
        Added::Queued
    }

    /// The next lane with waiting changes and no call in flight, and the changes its call
    /// carries (its head record's run, sorted by `seq`); the lane is busy until
    /// [`Lanes::finish`].
    ///
    /// With `hold_redelivered`, lanes holding a redelivered change wait: the partner may
    /// already hold a newer state of that record (sent by a pusher that died before acking),
    /// so its call must wait until every redelivered change of the record has arrived and can
    /// be coalesced into the newest one.
    pub fn next_ready(&mut self, hold_redelivered: bool) -> Option<(String, Vec<Pending>)> {
        let mut skipped = Vec::new();
        let mut found = None;
        while let Some(key) = self.ready.pop_front() {
            let Some(lane) = self.lanes.get_mut(&key) else {
                continue;
            };
            if lane.busy || lane.pending.is_empty() {
                continue;
            }
            if hold_redelivered && lane.pending.iter().any(|p| p.redelivered) {
                skipped.push(key);
                continue;
            }
            found = Some(key);
            break;
        }
        for key in skipped.into_iter().rev() {
            self.ready.push_front(key);
        }
        let key = found?;
        if let Some(lane) = self.lanes.get_mut(&key) {
            lane.busy = true;
            let batch = take(lane, &key);
            return Some((key, batch));
        }
        None
    }

    /// Moves the changes that arrived while a call was in flight into its batch, so a retry
    /// sends the newest state. CDR lanes keep theirs for later calls.
    pub fn absorb(&mut self, key: &str, batch: &mut Vec<Pending>) {
        let Some(record) = batch.first().map(|p| p.record.clone()) else {
            return;
        };
        if let Some(lane) = self.lanes.get_mut(key) {
            if lane.kind != LaneKind::OneAtATime {
                lane.pending.sort_by_key(|p| p.tag);
                let whole_tree =
                    lane.kind == LaneKind::Tree && batch.iter().any(|p| &*p.record == key);
                let run = if whole_tree {
                    lane.pending.len()
                } else {
                    lane.pending
                        .iter()
                        .take_while(|p| p.record == record)
                        .count()
                };
                batch.extend(lane.pending.drain(..run));
                batch.sort_by_key(|p| (p.change.seq, p.tag));
            }
        }
    }

    /// Ends the lane's call. `pushed_seq` is the newest `seq` the partner now holds (None when
    /// nothing reached it). The lane is ready again when changes are waiting.
    pub fn finish(&mut self, key: &str, pushed: Option<(&str, u64)>) -> Vec<Pending> {
        let mut stale = Vec::new();
        if let Some((record, seq)) = pushed {
            self.pushed.record(record, seq);
        }
        let Some(lane) = self.lanes.get_mut(key) else {
            return stale;
        };
        lane.busy = false;
        if let Some((record, seq)) = pushed {
            let (old, keep): (Vec<Pending>, Vec<Pending>) = lane
                .pending
                .drain(..)
                .partition(|p| &*p.record == record && p.change.seq <= seq);
            lane.pending = keep;
            stale = old;
        }
        if lane.pending.is_empty() {
            self.lanes.remove(key);
        } else {
            self.ready.push_back(key.to_string());
        }
        stale
    }

    /// Ends the lane's call with nothing delivered and puts its batch back at the lane's head,
    /// in queue order: the lane is ready again with the same deliveries (a paused phase keeps
    /// them held, see `delivery::held`).
    pub fn put_back(&mut self, key: &str, batch: Vec<Pending>) {
        let lane = self.lanes.entry(key.to_string()).or_default();
        lane.busy = false;
        lane.pending.extend(batch);
        lane.pending.sort_by_key(|p| p.tag);
        if lane.pending.is_empty() {
            self.lanes.remove(key);
        } else {
            self.ready.push_back(key.to_string());
        }
    }

    /// Deliveries in the lanes, waiting or in a call.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    /// Forgets every lane (their deliveries went back to the queue) but keeps the memory of
    /// what was pushed.
    pub fn clear(&mut self) {
        self.lanes.clear();
        self.ready.clear();
    }

    /// Changes waiting (not in flight), for status.
    pub fn waiting(&self) -> usize {
        self.lanes.values().map(|l| l.pending.len()).sum()
    }
}

/// The head of the lane: its first record's changes up to the first change of another record
/// (all of them in a one-record lane; one for CDRs), sorted by `seq`.
///
/// Across records the lane keeps queue order (delivery tags), not `seq` order: the bridge's
/// dedup buffer publishes a merged change (a Location inserted, then updated) at its first
/// change's place but with its last change's `seq`, so a child written in between (an EVSE
/// of that Location) has a smaller `seq` yet must not go first. Within one record, `seq`
/// decides: a duplicate republished by the bridge may arrive behind a newer change.
///
/// A tree lane whose Location itself has a change waiting gives all its changes: the PUT of
/// the whole Location, read after all of them were committed, covers every one.
fn take(lane: &mut Lane, key: &str) -> Vec<Pending> {
    lane.pending.sort_by_key(|p| p.tag);
    let Some(record) = lane.pending.first().map(|p| p.record.clone()) else {
        return Vec::new();
    };
    let run = match lane.kind {
        LaneKind::OneAtATime => 1,
        LaneKind::Tree if lane.pending.iter().any(|p| &*p.record == key) => lane.pending.len(),
        LaneKind::Record | LaneKind::Tree => lane
            .pending
            .iter()
            .take_while(|p| p.record == record)
            .count(),
    };
    let mut batch: Vec<Pending> = lane.pending.drain(..run).collect();
    batch.sort_by_key(|p| (p.change.seq, p.tag));
    batch
}

/// The newest pushed `seq` of the most recently pushed records, forgetting the oldest first.
/// Records are kept as a 64-bit hash of their key (about 40 bytes per record instead of the
/// key's text): a collision would need two live records with equal hashes, about 1 in 10^9
/// even with 10^5 records remembered.
struct SeqMemory {
    seqs: HashMap<u64, u64>,
    order: VecDeque<u64>,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl SeqMemory {
    fn new(capacity: usize) -> SeqMemory {
        SeqMemory {
            seqs: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn hash(&self, key: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }

    fn get(&self, key: &str) -> Option<u64> {
        self.seqs.get(&self.hash(key)).copied()
    }

    fn record(&mut self, key: &str, seq: u64) {
        let hash = self.hash(key);
        match self.seqs.get_mut(&hash) {
            Some(old) => *old = (*old).max(seq),
            None => {
                self.seqs.insert(hash, seq);
                self.order.push_back(hash);
                while self.order.len() > self.capacity {
                    if let Some(oldest) = self.order.pop_front() {
                        self.seqs.remove(&oldest);
                    }
                }
            }
        }
    }
}

/// One change that has the effect of the whole run (sorted by `seq`, one record):
///
/// - ends in a delete: the delete (the object is removed whatever came before);
/// - otherwise the newest row image, as an insert when the run holds an insert or a delete (the
///   partner may not hold the object, so it gets all of it), else as an update from the first
///   change's `before` to the newest `after`, with every column any of them changed (so a PATCH
///   carries every field that moved, and soft-delete transitions are seen from start to end).
///
/// Its `id`, `seq` and `source` are the newest change's; `merged` counts them all.
/// `None` for an empty run.
pub fn coalesce(run: &[Arc<RowChange>]) -> Option<Arc<RowChange>> {
    let (first, last) = (run.first()?, run.last()?);
    if run.len() == 1 || last.op == Operation::Delete {
        return Some(last.clone());
    }
    let mut net = (**last).clone();
    net.merged = run.iter().map(|c| c.merged.max(1)).sum();
    if run.iter().any(|c| c.op != Operation::Update) {
        net.op = Operation::Insert;
        net.before = None;
        net.changed = Vec::new();
    } else {
        net.op = Operation::Update;
        net.before = first.before.clone();
        let mut seen = HashSet::new();
        net.changed = run
            .iter()
            .flat_map(|c| c.changed.iter())
            .filter(|c| seen.insert(c.as_str()))
            .cloned()
            .collect();
    }
    Some(Arc::new(net))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(seq: u64, op: Operation, changed: &[&str]) -> Arc<RowChange> {
        let row = |v: u64| json!({"id": 1, "v": v}).as_object().unwrap().clone();
        Arc::new(RowChange {
            version: 1,
            id: format!("c{seq}"),
            seq,
            op,
            database: "db".into(),
            table: "t".into(),
            key: json!({"id": 1}).as_object().unwrap().clone(),
            after: (op != Operation::Delete).then(|| row(seq)),
            before: (op != Operation::Insert).then(|| row(seq - 1)),
            changed: changed.iter().map(|s| s.to_string()).collect(),
            binary_columns: vec![],
            merged: 1,
            source: change_message::Source {
                server_id: 1,
                file: "f".into(),
                pos: seq,
                row: 0,
                gtid: None,
                tx_index: 0,
                commit_time: "2026-01-01T00:00:00Z".into(),
            },
            snapshot: None,
            too_large: None,
        })
    }

    fn pending(tag: u64, c: Arc<RowChange>) -> Pending {
        pending_of("r", tag, c)
    }

    fn pending_of(record: &str, tag: u64, c: Arc<RowChange>) -> Pending {
        Pending {
            tag,
            record: Arc::from(record),
            change: c,
            raw: Arc::new(Raw::default()),
            redelivered: false,
            tree: false,
        }
    }

    #[test]
    fn a_tree_lane_goes_one_object_at_a_time_until_its_location_itself_waits() {
        let root = "locations/NL/EXA/L1";
        let evse = "locations/NL/EXA/L1/E1";
        let mut lanes = Lanes::new(100);
        let add = |lanes: &mut Lanes, record: &str, tag: u64| {
            let p = pending_of(record, tag, change(tag, Operation::Update, &[]));
            lanes.add(root, p, LaneKind::Tree)
        };
        add(&mut lanes, evse, 1);
        add(&mut lanes, "locations/NL/EXA/L1/E2", 2);
        add(&mut lanes, evse, 3);
        let (_, batch) = lanes.next_ready(false).unwrap();
        let tags: Vec<u64> = batch.iter().map(|p| p.tag).collect();
        assert_eq!(tags, [1], "one object's adjacent run");
        lanes.finish(root, Some((evse, 1)));
        // The Location itself waits now: its one PUT covers every change of its tree.
        add(&mut lanes, root, 4);
        let (_, batch) = lanes.next_ready(false).unwrap();
        let tags: Vec<u64> = batch.iter().map(|p| p.tag).collect();
        assert_eq!(tags, [2, 3, 4]);
    }

    #[test]
    fn updates_coalesce_into_the_newest_state_with_every_changed_column() {
        let run = [
            change(2, Operation::Update, &["a"]),
            change(3, Operation::Update, &["b", "a"]),
            change(4, Operation::Update, &["c"]),
        ];
        let net = coalesce(&run).unwrap();
        assert_eq!(net.op, Operation::Update);
        assert_eq!(net.seq, 4);
        assert_eq!(net.after, run[2].after);
        assert_eq!(net.before, run[0].before);
        assert_eq!(net.changed, vec!["a", "b", "c"]);
        assert_eq!(net.merged, 3);
    }

    #[test]
    fn a_run_with_an_insert_becomes_an_insert_of_the_newest_state() {
        let run = [
            change(2, Operation::Insert, &[]),
            change(3, Operation::Update, &["a"]),
        ];
        let net = coalesce(&run).unwrap();
        assert_eq!(net.op, Operation::Insert);
        assert_eq!(net.after, run[1].after);
        assert!(net.before.is_none());
    }

    #[test]
    fn a_run_ending_in_a_delete_is_the_delete() {
        let run = [
            change(2, Operation::Update, &["a"]),
            change(3, Operation::Delete, &[]),
        ];
        assert_eq!(coalesce(&run).unwrap().seq, 3);
        assert_eq!(coalesce(&run).unwrap().op, Operation::Delete);
        // delete then re-insert: the object must be sent whole again
        let run = [
            change(2, Operation::Delete, &[]),
            change(3, Operation::Insert, &[]),
        ];
        assert_eq!(coalesce(&run).unwrap().op, Operation::Insert);
    }

    #[test]
    fn one_call_per_record_at_a_time_and_later_changes_wait_for_it() {
        let mut lanes = Lanes::new(100);
        lanes.add(
            "r1",
            pending(1, change(1, Operation::Update, &[])),
            LaneKind::Record,
        );
        lanes.add(
            "r2",
            pending(2, change(2, Operation::Update, &[])),
            LaneKind::Record,
        );
        let (k, batch) = lanes.next_ready(false).unwrap();
        assert_eq!((k.as_str(), batch.len()), ("r1", 1));
        lanes.add(
            "r1",
            pending(3, change(3, Operation::Update, &[])),
            LaneKind::Record,
        );
        lanes.add(
            "r1",
            pending(4, change(4, Operation::Update, &[])),
            LaneKind::Record,
        );
        let (k, _) = lanes.next_ready(false).unwrap();
        assert_eq!(k, "r2");
        assert!(lanes.next_ready(false).is_none(), "r1 is busy");
        assert!(lanes.finish("r1", Some(("r", 1))).is_empty());
        let (k, batch) = lanes.next_ready(false).unwrap();
        assert_eq!(k, "r1");
        assert_eq!(batch.iter().map(|p| p.tag).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn changes_not_newer_than_what_was_pushed_are_stale() {
        let mut lanes = Lanes::new(100);
        lanes.add(
            "r1",
            pending(1, change(5, Operation::Update, &[])),
            LaneKind::Record,
        );
        let (_, _) = lanes.next_ready(false).unwrap();
        // a duplicate of an older change arrives while the newer one is in flight
        lanes.add(
            "r1",
            pending(2, change(4, Operation::Update, &[])),
            LaneKind::Record,
        );
        let stale = lanes.finish("r1", Some(("r", 5)));
        assert_eq!(stale.len(), 1);
        assert_eq!(
            lanes.add(
                "r1",
                pending(3, change(5, Operation::Update, &[])),
                LaneKind::Record
            ),
            Added::Stale { pushed_seq: 5 }
        );
        assert_eq!(
            lanes.add(
                "r1",
                pending(4, change(6, Operation::Update, &[])),
                LaneKind::Record
            ),
            Added::Queued
        );
    }

    #[test]
    fn cdr_lanes_send_one_message_per_call() {
        let mut lanes = Lanes::new(100);
        lanes.add(
            "c",
            pending(1, change(1, Operation::Insert, &[])),
            LaneKind::OneAtATime,
        );
        lanes.add(
            "c",
            pending(2, change(2, Operation::Insert, &[])),
            LaneKind::OneAtATime,
        );
        let (_, batch) = lanes.next_ready(false).unwrap();
        assert_eq!(batch.len(), 1);
        let mut batch = batch;
        lanes.absorb("c", &mut batch);
        assert_eq!(batch.len(), 1);
        lanes.finish("c", Some(("r", 1)));
        let (_, batch) = lanes.next_ready(false).unwrap();
        assert_eq!(batch[0].tag, 2);
    }

    #[test]
    fn retries_absorb_what_arrived_meanwhile() {
        let mut lanes = Lanes::new(100);
        lanes.add(
            "r",
            pending(1, change(1, Operation::Update, &[])),
            LaneKind::Record,
        );
        let (_, mut batch) = lanes.next_ready(false).unwrap();
        lanes.add(
            "r",
            pending(2, change(2, Operation::Update, &[])),
            LaneKind::Record,
        );
        lanes.absorb("r", &mut batch);
        assert_eq!(batch.len(), 2);
        assert_eq!(lanes.waiting(), 0);
    }

    #[test]
    fn lanes_with_redelivered_changes_wait_while_redeliveries_arrive() {
        let mut lanes = Lanes::new(100);
        let mut p = pending(1, change(3, Operation::Update, &[]));
        p.redelivered = true;
        lanes.add("old", p, LaneKind::Record);
        lanes.add(
            "new",
            pending(2, change(9, Operation::Update, &[])),
            LaneKind::Record,
        );
        let (k, _) = lanes.next_ready(true).unwrap();
        assert_eq!(k, "new");
        assert!(lanes.next_ready(true).is_none());
        let mut p = pending(3, change(6, Operation::Update, &[]));
        p.redelivered = true;
        lanes.add("old", p, LaneKind::Record);
        let (k, batch) = lanes.next_ready(false).unwrap();
        assert_eq!(k, "old");
        assert_eq!(batch.len(), 2, "the redelivered run goes out as one call");
    }

    #[test]
    fn a_group_lane_sends_its_records_in_queue_order_coalescing_only_adjacent_changes() {
        let mut lanes = Lanes::new(100);
        lanes.add(
            "loc",
            pending_of("L", 1, change(1, Operation::Insert, &[])),
            LaneKind::Record,
        );
        lanes.add(
            "loc",
            pending_of("E", 2, change(2, Operation::Insert, &[])),
            LaneKind::Record,
        );
        lanes.add(
            "loc",
            pending_of("E", 3, change(3, Operation::Update, &[])),
            LaneKind::Record,
        );
        lanes.add(
            "loc",
            pending_of("L", 4, change(4, Operation::Update, &[])),
            LaneKind::Record,
        );
        let (_, batch) = lanes.next_ready(false).unwrap();
        assert_eq!(batch.iter().map(|p| p.tag).collect::<Vec<_>>(), vec![1]);
        assert!(
            lanes.next_ready(false).is_none(),
            "the child waits for its parent"
        );
        assert!(lanes.finish("loc", Some(("L", 1))).is_empty());
        let (_, batch) = lanes.next_ready(false).unwrap();
        assert_eq!(batch.iter().map(|p| p.tag).collect::<Vec<_>>(), vec![2, 3]);
        lanes.finish("loc", Some(("E", 3)));
        let (_, batch) = lanes.next_ready(false).unwrap();
        assert_eq!(batch.iter().map(|p| p.tag).collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn a_merged_parent_goes_before_a_child_with_a_smaller_seq_queued_behind_it() {
        let mut lanes = Lanes::new(100);
        // Location inserted (seq 1), EVSE inserted (seq 2), Location updated (seq 3): the
        // bridge merged the Location's two changes into one message at the insert's place,
        // carrying seq 3.
        lanes.add(
            "loc",
            pending_of("L", 1, change(3, Operation::Insert, &[])),
            LaneKind::Record,
        );
        lanes.add(
            "loc",
            pending_of("E", 2, change(2, Operation::Insert, &[])),
            LaneKind::Record,
        );
        let (_, batch) = lanes.next_ready(false).unwrap();
        assert_eq!(batch.iter().map(|p| p.tag).collect::<Vec<_>>(), vec![1]);
        lanes.finish("loc", Some(("L", 3)));
        let (_, batch) = lanes.next_ready(false).unwrap();
        assert_eq!(batch.iter().map(|p| p.tag).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn within_a_record_a_duplicate_behind_a_newer_change_never_becomes_the_newest() {
        let mut lanes = Lanes::new(100);
        lanes.add(
            "r",
            pending(1, change(10, Operation::Update, &["v"])),
            LaneKind::Record,
        );
        lanes.add(
            "r",
            pending(2, change(11, Operation::Update, &["v"])),
            LaneKind::Record,
        );
        // The bridge republished seq 10 after a crash.
        lanes.add(
            "r",
            pending(3, change(10, Operation::Update, &["v"])),
            LaneKind::Record,
        );
        let (_, batch) = lanes.next_ready(false).unwrap();
        assert_eq!(batch.last().map(|p| p.change.seq), Some(11));
    }

    #[test]
    fn a_batch_put_back_is_sent_again_first_with_what_arrived_meanwhile() {
        let mut lanes = Lanes::new(100);
        let c = |seq| change(seq, Operation::Update, &["price"]);
        lanes.add("T1", pending(1, c(1)), LaneKind::Record);
        let (key, batch) = lanes.next_ready(false).expect("ready");
        assert!(
            lanes.next_ready(false).is_none(),
            "busy while its call runs"
        );
        lanes.add("T1", pending(2, c(2)), LaneKind::Record);
        lanes.put_back(&key, batch);
        let (_, again) = lanes.next_ready(false).expect("ready again");
        let tags: Vec<u64> = again.iter().map(|p| p.tag).collect();
        assert_eq!(tags, [1, 2]);
        lanes.put_back("T1", again);
        assert!(!lanes.is_empty());
        lanes.clear();
        assert!(lanes.is_empty());
    }

    #[test]
    fn seq_memory_forgets_the_oldest_records_first() {
        let mut m = SeqMemory::new(2);
        m.record("a", 1);
        m.record("b", 2);
        m.record("c", 3);
        assert_eq!(m.get("a"), None);
        assert_eq!(m.get("c"), Some(3));
        m.record("c", 1);
        assert_eq!(m.get("c"), Some(3), "never goes backwards");
    }
}
