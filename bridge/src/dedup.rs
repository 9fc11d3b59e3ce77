//! The dedup buffer: coalesces repeated changes of one row inside a short window into one
//! message carrying the newest state, so a row updated 50 times a second costs the broker and
//! every partner one message instead of 50.
//!
//! Ordering argument: entries leave in FIFO order. A change merges only into its record's
//! *open* entry, which is the record's newest entry, so a record's states never overtake each
//! other. A merged change moves earlier in the stream, never later, and transaction boundaries
//! (checkpoint candidates) sit in the same FIFO behind every change read before them, so a
//! checkpoint never passes a change still waiting here.
//!
//! Merge rules (older entry + newer change -> published message):
//!
//! | older  | newer  | result                                                        |
//! |--------|--------|---------------------------------------------------------------|
//! | insert | update | insert with the newest image                                  |
//! | update | update | update: first `before`, last `after`, `changed` recomputed    |
//! | update | delete | delete with the row image just before the delete              |
//! | insert | delete | delete with that image (consumers that never saw the row may ignore it; nothing is dropped silently) |
//! | delete | insert | insert with the new image (the row was re-created)            |
//! | any other pair | | not merged: the older entry is closed and the newer starts a new one |
//!
//! The merged message takes the newest change's `id`, `seq` and `source`, and counts how many
//! changes it stands for in `merged`.
//!
//! Snapshot rows of an initial sync wait in a lane of their own beside the FIFO, so that a live
//! change does not queue behind a whole chunk of them: they go to one partner's queue while live
//! changes go to every queue, and the only order that matters between the two is per record
//! in that partner's queue. A snapshot row is released
//! - never before a FIFO entry that was queued before it (an earlier live change of its record
//!   holds an older state);
//! - always before a live change of its own record queued after it (the change is newer);
//! - otherwise when the publisher has room for snapshot rows and no live change is due, so the
//!   live stream keeps its latency during a sync.
//!
//! A transaction boundary is released only after every snapshot row queued before it: a
//! checkpoint must never pass a snapshot row that is not confirmed yet. Boundaries that wait
//! for snapshot rows are held aside (consecutive ones collapse into the newest), so live
//! changes flow on and the checkpoint advances chunk by chunk.

use crate::checkpoint::Checkpoint;
use crate::source::changed_columns;
use change_message::{Operation, RowChange};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What leaves the buffer, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Released {
    Change(Box<RowChange>),
    /// Every change read before this transaction boundary has been released.
    Boundary(Checkpoint),
}

#[derive(Debug)]
enum Entry {
    Change {
        change: Box<RowChange>,
        record: String,
        bytes: usize,
        since: Instant,
    },
    /// A transaction boundary, with how many snapshot rows had been queued before it.
    Boundary {
        checkpoint: Checkpoint,
        snapshots_before: u64,
    },
}

/// A snapshot row in its lane.
#[derive(Debug)]
struct SnapshotEntry {
    change: Box<RowChange>,
    record: String,
    bytes: usize,
    /// Absolute FIFO index of the first entry queued after this row: every entry before it
    /// must be released first.
    barrier: u64,
}

/// Snapshot rows of one record waiting in the lane.
#[derive(Debug, Clone, Copy)]
struct PendingRecord {
    rows: u32,
    /// Barrier of the record's newest snapshot row.
    last_barrier: u64,
}

/// Counters for operators: how much the buffer saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DedupStats {
    /// Row changes received.
    pub received: u64,
    /// Row changes absorbed into an earlier message (saved publishes).
    pub merged: u64,
}

pub struct DedupBuffer {
    window: Duration,
    max_rows: usize,
    max_bytes: usize,
    entries: VecDeque<Entry>,
    /// Absolute index of `entries[0]`, so `open` can point into the deque across pops.
    first: u64,
    /// Record -> absolute index of its open entry.
    open: HashMap<String, u64>,
    rows: usize,
    bytes: usize,
    stats: DedupStats,
    /// Snapshot rows, in the order they were read.
    snapshots: VecDeque<SnapshotEntry>,
    /// Records with snapshot rows in `snapshots`.
    pending: HashMap<String, PendingRecord>,
    snapshots_queued: u64,
    snapshots_released: u64,
    /// Boundaries that reached the head of the FIFO before the snapshot rows queued ahead of
    /// them were released: (snapshot rows that must be released first, checkpoint).
    held: VecDeque<(u64, Checkpoint)>,
}

/// Merges `newer` into `older` when a rule allows it; gives `newer` back otherwise.
pub fn merge(older: &mut RowChange, newer: Box<RowChange>) -> Result<(), Box<RowChange>> {
    use Operation::*;
    let (op, before, after) = match (older.op, newer.op) {
        (Insert, Update) => (Insert, None, newer.after),
        (Update, Update) => (Update, older.before.take(), newer.after),
        (Update, Delete) | (Insert, Delete) => (Delete, newer.before, None),
        (Delete, Insert) => (Insert, None, newer.after),
        _ => return Err(newer),
    };
    older.changed = match (op, &before, &after) {
        (Update, Some(b), Some(a)) => changed_columns(b, a),
        _ => Vec::new(),
    };
    older.op = op;
    older.before = before;
    older.after = after;
    older.id = newer.id;
    older.seq = newer.seq;
    older.source = newer.source;
    older.binary_columns = newer.binary_columns;
    older.merged += newer.merged;
    Ok(())
}

impl DedupBuffer {
    pub fn new(window: Duration, max_rows: usize, max_bytes: usize) -> DedupBuffer {
        DedupBuffer {
            window,
            max_rows,
            max_bytes,
            entries: VecDeque::new(),
            first: 0,
            open: HashMap::new(),
            rows: 0,
            bytes: 0,
            stats: DedupStats::default(),
            snapshots: VecDeque::new(),
            pending: HashMap::new(),
            snapshots_queued: 0,
            snapshots_released: 0,
            held: VecDeque::new(),
        }
    }

    pub fn stats(&self) -> DedupStats {
        self.stats
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.snapshots.is_empty() && self.held.is_empty()
    }

    /// Snapshot rows waiting in their lane.
    pub fn snapshot_rows(&self) -> usize {
        self.snapshots.len()
    }

    /// Rows waiting to be published (live changes and snapshot rows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether another change may come in; when false, the reader waits for the buffer to drain.
    pub fn has_room(&self) -> bool {
        self.rows < self.max_rows && self.bytes < self.max_bytes
    }

    fn over_limits(&self) -> bool {
        self.rows > self.max_rows || self.bytes > self.max_bytes
    }

    pub fn push_change(&mut self, change: RowChange, bytes: usize, now: Instant) {
        self.stats.received += u64::from(change.merged);
        let change = Box::new(change);
        if self.window.is_zero() {
            self.entries.push_back(Entry::Change {
                change,
                record: String::new(),
                bytes,
                since: now,
            });
            self.rows += 1;
            self.bytes += bytes;
            return;
        }
        let record = change.record_key();
        let change = match self.open.get(&record).copied() {
            Some(index) => {
                let slot = (index - self.first) as usize;
                match self.entries.get_mut(slot) {
                    Some(Entry::Change {
                        change: older,
                        bytes: older_bytes,
                        ..
                    }) => {
                        let merged_count = change.merged;
                        match merge(older, change) {
                            Ok(()) => {
                                self.stats.merged += u64::from(merged_count);
                                // The entry now holds the newer image: account its size.
                                self.bytes = self.bytes - *older_bytes + bytes;
                                *older_bytes = bytes;
                                return;
                            }
                            Err(change) => change,
                        }
                    }
                    _ => change,
                }
            }
            None => change,
        };
        let index = self.first + self.entries.len() as u64;
        self.open.insert(record.clone(), index);
        self.entries.push_back(Entry::Change {
            change,
            record,
            bytes,
            since: now,
        });
        self.rows += 1;
        self.bytes += bytes;
    }

    /// Queues a snapshot row of an initial sync in the snapshot lane. It is never merged, nor
    /// merged into: it goes to one partner queue while live changes go to all. The record's
    /// open entry is closed, so a later live change of the record starts a new entry behind
    /// the row instead of merging into one ahead of it.
    pub fn push_snapshot(&mut self, change: RowChange, bytes: usize) {
        let record = change.record_key();
        if !self.window.is_zero() {
            self.open.remove(&record);
        }
        let barrier = self.first + self.entries.len() as u64;
        self.pending
            .entry(record.clone())
            .and_modify(|p| {
                p.rows += 1;
                p.last_barrier = barrier;
            })
            .or_insert(PendingRecord {
                rows: 1,
                last_barrier: barrier,
            });
        self.snapshots.push_back(SnapshotEntry {
            change: Box::new(change),
            record,
            bytes,
            barrier,
        });
        self.snapshots_queued += 1;
        self.rows += 1;
        self.bytes += bytes;
    }

    pub fn push_boundary(&mut self, checkpoint: Checkpoint) {
        let snapshots_before = self.snapshots_queued;
        // Consecutive boundaries: only the newest matters.
        if let Some(Entry::Boundary {
            checkpoint: last,
            snapshots_before: before,
        }) = self.entries.back_mut()
        {
            *last = checkpoint;
            *before = snapshots_before;
            return;
        }
        self.entries.push_back(Entry::Boundary {
            checkpoint,
            snapshots_before,
        });
    }

    /// When the next entry can be released, if any waits. `snapshot_room`: whether the
    /// publisher takes snapshot rows now (see [`DedupBuffer::pop_ready`]).
    pub fn next_deadline(&self, snapshot_room: bool) -> Option<Instant> {
        if self.held_releasable() || (snapshot_room && self.snapshot_eligible()) {
            return Some(Instant::now());
        }
        match self.entries.front() {
            Some(Entry::Change { since, .. }) => Some(*since + self.window),
            Some(Entry::Boundary { .. }) => Some(Instant::now()),
            None => None,
        }
    }

    /// The next entry to publish, if one may go now: a held boundary whose snapshot rows are
    /// all out; the FIFO's head when its window has passed (or the buffer is over its bounds,
    /// or `flush`); otherwise a snapshot row, when `snapshot_room` (the publisher's share for
    /// snapshot rows is not used up) or `flush`.
    pub fn pop_ready(
        &mut self,
        now: Instant,
        flush: bool,
        snapshot_room: bool,
    ) -> Option<Released> {
        loop {
            if self.held_releasable() {
                return self.held.pop_front().map(|(_, cp)| Released::Boundary(cp));
            }
            let head_ready = match self.entries.front() {
                None => false,
                Some(Entry::Boundary { .. }) => true,
                Some(Entry::Change {
                    change,
                    record,
                    since,
                    ..
                }) => {
                    if self.snapshot_due_before(change, record) {
                        return self.pop_snapshot();
                    }
                    flush || self.over_limits() || now.duration_since(*since) >= self.window
                }
            };
            if !head_ready {
                return if (snapshot_room || flush) && self.snapshot_eligible() {
                    self.pop_snapshot()
                } else {
                    None
                };
            }
            let index = self.first;
            self.first += 1;
            match self.entries.pop_front()? {
                Entry::Boundary {
                    checkpoint,
                    snapshots_before,
                } => {
                    if self.snapshots_released >= snapshots_before && self.held.is_empty() {
                        return Some(Released::Boundary(checkpoint));
                    }
                    // Snapshot rows queued before it are not out yet: hold it aside.
                    match self.held.back_mut() {
                        Some(last) if last.0 == snapshots_before => {
                            *last = (snapshots_before, checkpoint)
                        }
                        _ => self.held.push_back((snapshots_before, checkpoint)),
                    }
                }
                Entry::Change {
                    change,
                    record,
                    bytes,
                    ..
                } => {
                    self.rows -= 1;
                    self.bytes -= bytes;
                    if self.open.get(&record) == Some(&index) {
                        self.open.remove(&record);
                    }
                    return Some(Released::Change(change));
                }
            }
        }
    }

    fn held_releasable(&self) -> bool {
        self.held
            .front()
            .is_some_and(|(before, _)| self.snapshots_released >= *before)
    }

    /// Whether the lane's first row may go: every FIFO entry queued before it is out.
    fn snapshot_eligible(&self) -> bool {
        self.snapshots
            .front()
            .is_some_and(|row| row.barrier <= self.first)
    }

    /// Whether snapshot rows must go before the FIFO's head: the head is a live change of a
    /// record whose snapshot row was queued before it.
    fn snapshot_due_before(&self, change: &RowChange, record: &str) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let key;
        let record = if record.is_empty() {
            // A zero window keeps no record keys in the FIFO.
            key = change.record_key();
            key.as_str()
        } else {
            record
        };
        self.pending
            .get(record)
            .is_some_and(|p| p.last_barrier <= self.first)
    }

    fn pop_snapshot(&mut self) -> Option<Released> {
        let row = self.snapshots.pop_front()?;
        self.rows -= 1;
        self.bytes -= row.bytes;
        self.snapshots_released += 1;
        if let Some(p) = self.pending.get_mut(&row.record) {
            p.rows -= 1;
            if p.rows == 0 {
                self.pending.remove(&row.record);
            }
        }
        Some(Released::Change(row.change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use change_message::{Row, Source, CONTRACT_VERSION};
    use serde_json::json;

    fn row(v: serde_json::Value) -> Row {
        v.as_object().cloned().unwrap()
    }

    fn change(
        seq: u64,
        id: i64,
        op: Operation,
        before: Option<i64>,
        after: Option<i64>,
    ) -> RowChange {
        let image = |x: i64| row(json!({"id": id, "v": x, "k": 1}));
        RowChange {
            version: CONTRACT_VERSION,
            id: format!("c{seq}"),
            seq,
            op,
            database: "app".into(),
            table: "t".into(),
            key: row(json!({ "id": id })),
            after: after.map(image),
            before: before.map(image),
            changed: if op == Operation::Update {
                vec!["v".into()]
            } else {
                vec![]
            },
            binary_columns: vec![],
            merged: 1,
            source: Source {
                server_id: 1,
                file: "binlog.000001".into(),
                pos: seq * 100,
                row: 0,
                gtid: None,
                tx_index: 0,
                commit_time: "2026-01-01T00:00:00Z".into(),
            },
            snapshot: None,
            too_large: None,
        }
    }

    fn checkpoint(pos: u64) -> Checkpoint {
        Checkpoint {
            file: "binlog.000001".into(),
            pos,
            gtid: None,
            next_seq: pos,
            saved_at: String::new(),
            sync: None,
            server: None,
        }
    }

    fn drain(buffer: &mut DedupBuffer) -> Vec<Released> {
        let mut out = Vec::new();
        while let Some(r) = buffer.pop_ready(Instant::now(), true, true) {
            out.push(r);
        }
        out
    }

    fn only_change(released: &[Released]) -> &RowChange {
        let changes: Vec<&RowChange> = released
            .iter()
            .filter_map(|r| match r {
                Released::Change(c) => Some(&**c),
                _ => None,
            })
            .collect();
        assert_eq!(changes.len(), 1, "{released:?}");
        changes[0]
    }

    use Operation::*;

    #[test]
    fn insert_then_update_is_an_insert_of_the_newest_image() {
        let mut older = change(1, 7, Insert, None, Some(1));
        merge(&mut older, Box::new(change(2, 7, Update, Some(1), Some(2)))).unwrap();
        assert_eq!(older.op, Insert);
        assert_eq!(older.after.as_ref().unwrap()["v"], json!(2));
        assert!(older.before.is_none());
        assert_eq!((older.seq, older.merged, older.id.as_str()), (2, 2, "c2"));
    }

    #[test]
    fn update_then_update_keeps_first_before_and_last_after() {
        let mut older = change(1, 7, Update, Some(1), Some(2));
        merge(&mut older, Box::new(change(2, 7, Update, Some(2), Some(3)))).unwrap();
        assert_eq!(older.op, Update);
        assert_eq!(older.before.as_ref().unwrap()["v"], json!(1));
        assert_eq!(older.after.as_ref().unwrap()["v"], json!(3));
        assert_eq!(older.changed, vec!["v".to_string()]);
        // changed back: no column differs any more
        merge(&mut older, Box::new(change(3, 7, Update, Some(3), Some(1)))).unwrap();
        assert!(older.changed.is_empty());
        assert_eq!(older.merged, 3);
    }

    #[test]
    fn update_then_delete_is_a_delete_with_the_last_image() {
        let mut older = change(1, 7, Update, Some(1), Some(2));
        merge(&mut older, Box::new(change(2, 7, Delete, Some(2), None))).unwrap();
        assert_eq!(older.op, Delete);
        assert_eq!(older.before.as_ref().unwrap()["v"], json!(2));
        assert!(older.after.is_none());
    }

    #[test]
    fn insert_then_delete_is_still_published_as_a_delete() {
        let mut older = change(1, 7, Insert, None, Some(1));
        merge(&mut older, Box::new(change(2, 7, Delete, Some(1), None))).unwrap();
        assert_eq!(older.op, Delete);
        assert_eq!(older.before.as_ref().unwrap()["v"], json!(1));
    }

    #[test]
    fn delete_then_insert_is_an_insert_of_the_new_row() {
        let mut older = change(1, 7, Delete, Some(1), None);
        merge(&mut older, Box::new(change(2, 7, Insert, None, Some(5)))).unwrap();
        assert_eq!(older.op, Insert);
        assert_eq!(older.after.as_ref().unwrap()["v"], json!(5));
        assert!(older.before.is_none());
    }

    #[test]
    fn impossible_pairs_are_not_merged() {
        for (a, b) in [
            (Insert, Insert),
            (Delete, Delete),
            (Delete, Update),
            (Update, Insert),
        ] {
            let mut older = change(1, 7, a, Some(1), Some(1));
            let newer = change(2, 7, b, Some(1), Some(2));
            assert!(merge(&mut older, Box::new(newer)).is_err(), "{a:?}+{b:?}");
            assert_eq!(older.seq, 1);
        }
    }

    #[test]
    fn changes_inside_the_window_are_coalesced_and_counted() {
        let mut buffer = DedupBuffer::new(Duration::from_secs(60), 100, 1 << 20);
        let now = Instant::now();
        buffer.push_change(change(1, 7, Update, Some(0), Some(1)), 10, now);
        buffer.push_change(change(2, 8, Update, Some(0), Some(1)), 10, now);
        buffer.push_change(change(3, 7, Update, Some(1), Some(2)), 10, now);
        buffer.push_boundary(checkpoint(3));
        assert_eq!(
            buffer.pop_ready(now, false, true),
            None,
            "window not over yet"
        );
        let out = drain(&mut buffer);
        assert_eq!(out.len(), 3);
        match (&out[0], &out[1], &out[2]) {
            (Released::Change(a), Released::Change(b), Released::Boundary(cp)) => {
                assert_eq!((a.seq, a.merged), (3, 2));
                assert_eq!(b.seq, 2);
                assert_eq!(cp.pos, 3);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            buffer.stats(),
            DedupStats {
                received: 3,
                merged: 1
            }
        );
    }

    #[test]
    fn a_snapshot_row_is_never_merged_and_later_changes_queue_behind_it() {
        let mut buffer = DedupBuffer::new(Duration::from_secs(60), 100, 1 << 20);
        let now = Instant::now();
        buffer.push_change(change(1, 7, Update, Some(0), Some(1)), 10, now);
        let mut snapshot = change(2, 7, Insert, None, Some(1));
        snapshot.snapshot = Some(change_message::SnapshotMark {
            sync_id: "s".into(),
        });
        buffer.push_snapshot(snapshot, 10);
        buffer.push_change(change(3, 7, Update, Some(1), Some(2)), 10, now);
        let out: Vec<(u64, bool)> = drain(&mut buffer)
            .into_iter()
            .map(|r| match r {
                Released::Change(c) => (c.seq, c.snapshot.is_some()),
                _ => (0, false),
            })
            .collect();
        assert_eq!(out, vec![(1, false), (2, true), (3, false)]);
    }

    fn snapshot_row(seq: u64, id: i64) -> RowChange {
        let mut row = change(seq, id, Insert, None, Some(1));
        row.snapshot = Some(change_message::SnapshotMark {
            sync_id: "s".into(),
        });
        row
    }

    fn seq_and_kind(released: Option<Released>) -> Option<(u64, &'static str)> {
        released.map(|r| match r {
            Released::Change(c) if c.snapshot.is_some() => (c.seq, "snapshot"),
            Released::Change(c) => (c.seq, "live"),
            Released::Boundary(cp) => (cp.pos, "boundary"),
        })
    }

    #[test]
    fn a_due_live_change_overtakes_waiting_snapshot_rows_of_other_records() {
        let mut buffer = DedupBuffer::new(Duration::from_millis(10), 10_000, 1 << 20);
        let now = Instant::now();
        for id in 100..110 {
            buffer.push_snapshot(snapshot_row(5, id), 10);
        }
        buffer.push_change(change(6, 7, Update, Some(0), Some(1)), 10, now);
        // The publisher's share for snapshot rows is used up: nothing but the live change goes.
        let later = now + Duration::from_millis(11);
        assert_eq!(
            seq_and_kind(buffer.pop_ready(later, false, false)),
            Some((6, "live"))
        );
        assert_eq!(buffer.pop_ready(later, false, false), None);
        assert_eq!(buffer.snapshot_rows(), 10);
        // With room, the snapshot rows follow.
        let rest: Vec<_> =
            std::iter::from_fn(|| seq_and_kind(buffer.pop_ready(later, false, true))).collect();
        assert_eq!(rest, vec![(5, "snapshot"); 10]);
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_snapshot_row_never_overtakes_a_change_queued_before_it() {
        let mut buffer = DedupBuffer::new(Duration::from_secs(60), 100, 1 << 20);
        let now = Instant::now();
        buffer.push_change(change(1, 8, Update, Some(0), Some(1)), 10, now);
        buffer.push_snapshot(snapshot_row(2, 9), 10);
        assert_eq!(
            buffer.pop_ready(now, false, true),
            None,
            "the live change is not due, and the snapshot row must not pass it"
        );
        let later = now + Duration::from_secs(61);
        assert_eq!(
            seq_and_kind(buffer.pop_ready(later, false, true)),
            Some((1, "live"))
        );
        assert_eq!(
            seq_and_kind(buffer.pop_ready(later, false, true)),
            Some((2, "snapshot"))
        );
    }

    #[test]
    fn a_live_change_of_a_record_waits_for_that_records_snapshot_row() {
        let mut buffer = DedupBuffer::new(Duration::ZERO, 100, 1 << 20);
        let now = Instant::now();
        buffer.push_snapshot(snapshot_row(2, 100), 10);
        buffer.push_snapshot(snapshot_row(2, 7), 10);
        buffer.push_snapshot(snapshot_row(2, 101), 10);
        buffer.push_change(change(3, 8, Update, Some(0), Some(1)), 10, now);
        buffer.push_change(change(4, 7, Update, Some(1), Some(2)), 10, now);
        let order: Vec<_> = std::iter::from_fn(|| {
            buffer.pop_ready(now, false, false).map(|r| match r {
                Released::Change(c) => (c.seq, c.key["id"].as_i64().unwrap_or(0)),
                Released::Boundary(_) => (0, 0),
            })
        })
        .collect();
        // Record 8 goes at once; record 7's live change pulls out the snapshot rows up to
        // and including 7's; record 101's row waits for snapshot room.
        assert_eq!(order, vec![(3, 8), (2, 100), (2, 7), (4, 7)]);
        assert_eq!(
            seq_and_kind(buffer.pop_ready(now, false, true)),
            Some((2, "snapshot"))
        );
    }

    #[test]
    fn a_boundary_is_held_until_the_snapshot_rows_before_it_are_out_while_live_changes_pass() {
        let mut buffer = DedupBuffer::new(Duration::ZERO, 100, 1 << 20);
        let now = Instant::now();
        buffer.push_boundary(checkpoint(1));
        buffer.push_snapshot(snapshot_row(2, 100), 10);
        buffer.push_snapshot(snapshot_row(2, 101), 10);
        buffer.push_change(change(3, 8, Update, Some(0), Some(1)), 10, now);
        buffer.push_boundary(checkpoint(3));
        buffer.push_change(change(4, 9, Update, Some(0), Some(1)), 10, now);
        buffer.push_boundary(checkpoint(4));
        let no_room: Vec<_> =
            std::iter::from_fn(|| seq_and_kind(buffer.pop_ready(now, false, false))).collect();
        assert_eq!(
            no_room,
            vec![(1, "boundary"), (3, "live"), (4, "live")],
            "boundaries 3 and 4 wait for the two snapshot rows"
        );
        assert!(!buffer.is_empty());
        let rest: Vec<_> =
            std::iter::from_fn(|| seq_and_kind(buffer.pop_ready(now, false, true))).collect();
        assert_eq!(
            rest,
            vec![(2, "snapshot"), (2, "snapshot"), (4, "boundary")],
            "the held boundaries collapse into the newest"
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_flush_releases_snapshot_rows_and_held_boundaries_without_room() {
        let mut buffer = DedupBuffer::new(Duration::from_secs(60), 100, 1 << 20);
        let now = Instant::now();
        buffer.push_snapshot(snapshot_row(2, 100), 10);
        buffer.push_change(change(3, 8, Update, Some(0), Some(1)), 10, now);
        buffer.push_boundary(checkpoint(3));
        let out: Vec<_> =
            std::iter::from_fn(|| seq_and_kind(buffer.pop_ready(now, true, false))).collect();
        assert_eq!(out, vec![(3, "live"), (2, "snapshot"), (3, "boundary")]);
        assert!(buffer.is_empty());
        assert_eq!(buffer.rows(), 0);
    }

    #[test]
    fn a_released_record_starts_a_new_entry_behind_the_others() {
        let mut buffer = DedupBuffer::new(Duration::from_secs(60), 100, 1 << 20);
        let now = Instant::now();
        buffer.push_change(change(1, 7, Update, Some(0), Some(1)), 10, now);
        assert!(matches!(
            buffer.pop_ready(now, true, true),
            Some(Released::Change(_))
        ));
        buffer.push_change(change(2, 8, Update, Some(0), Some(1)), 10, now);
        buffer.push_change(change(3, 7, Update, Some(1), Some(2)), 10, now);
        let seqs: Vec<u64> = drain(&mut buffer)
            .into_iter()
            .map(|r| match r {
                Released::Change(c) => c.seq,
                _ => 0,
            })
            .collect();
        assert_eq!(seqs, vec![2, 3]);
    }

    #[test]
    fn boundaries_never_overtake_a_waiting_change() {
        let mut buffer = DedupBuffer::new(Duration::from_secs(60), 100, 1 << 20);
        let now = Instant::now();
        buffer.push_change(change(1, 7, Update, Some(0), Some(1)), 10, now);
        buffer.push_boundary(checkpoint(1));
        // the boundary waits behind the change until the window passes
        assert_eq!(buffer.pop_ready(now, false, true), None);
        let later = now + Duration::from_secs(61);
        assert!(matches!(
            buffer.pop_ready(later, false, true),
            Some(Released::Change(_))
        ));
        assert!(matches!(
            buffer.pop_ready(later, false, true),
            Some(Released::Boundary(_))
        ));
    }

    #[test]
    fn a_full_buffer_releases_its_oldest_entries_early() {
        let mut buffer = DedupBuffer::new(Duration::from_secs(60), 2, 1 << 20);
        let now = Instant::now();
        buffer.push_change(change(1, 1, Update, Some(0), Some(1)), 10, now);
        assert!(buffer.has_room());
        buffer.push_change(change(2, 2, Update, Some(0), Some(1)), 10, now);
        assert!(!buffer.has_room());
        assert_eq!(
            buffer.pop_ready(now, false, true),
            None,
            "at the bound, not over it"
        );
        buffer.push_change(change(3, 3, Update, Some(0), Some(1)), 10, now);
        assert!(
            matches!(buffer.pop_ready(now, false, true), Some(Released::Change(c)) if c.seq == 1)
        );
    }

    #[test]
    fn byte_bound_counts_the_newest_image_of_merged_entries() {
        let mut buffer = DedupBuffer::new(Duration::from_secs(60), 100, 1000);
        let now = Instant::now();
        buffer.push_change(change(1, 1, Update, Some(0), Some(1)), 600, now);
        buffer.push_change(change(2, 1, Update, Some(1), Some(2)), 300, now);
        assert!(
            buffer.has_room(),
            "merged entry is accounted at its new size"
        );
        buffer.push_change(change(3, 2, Update, Some(0), Some(1)), 800, now);
        assert!(!buffer.has_room());
    }

    #[test]
    fn zero_window_passes_everything_through_unmerged() {
        let mut buffer = DedupBuffer::new(Duration::ZERO, 100, 1 << 20);
        let now = Instant::now();
        buffer.push_change(change(1, 7, Update, Some(0), Some(1)), 10, now);
        buffer.push_change(change(2, 7, Update, Some(1), Some(2)), 10, now);
        let out: Vec<u64> = std::iter::from_fn(|| buffer.pop_ready(now, false, true))
            .map(|r| match r {
                Released::Change(c) => c.seq,
                _ => 0,
            })
            .collect();
        assert_eq!(out, vec![1, 2]);
        assert_eq!(buffer.stats().merged, 0);
    }

    #[test]
    fn merged_message_of_a_single_record_is_released_once() {
        let mut buffer = DedupBuffer::new(Duration::from_secs(60), 100, 1 << 20);
        let now = Instant::now();
        for seq in 1..=50 {
            buffer.push_change(
                change(seq, 7, Update, Some(seq as i64 - 1), Some(seq as i64)),
                10,
                now,
            );
        }
        let out = drain(&mut buffer);
        let c = only_change(&out);
        assert_eq!((c.seq, c.merged), (50, 50));
        assert_eq!(c.before.as_ref().unwrap()["v"], json!(0));
        assert_eq!(c.after.as_ref().unwrap()["v"], json!(50));
    }
}
