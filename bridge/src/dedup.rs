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
    Boundary(Checkpoint),
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
        }
    }

    pub fn stats(&self) -> DedupStats {
        self.stats
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Rows waiting to be published.
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

    /// Queues a snapshot row of an initial sync. It is never merged, nor merged into: it goes
    /// to one partner queue while live changes go to all. The record's open entry is closed,
    /// so a later live change of the record queues behind the snapshot row instead of merging
    /// into an entry ahead of it (which would put a newer state before an older one).
    pub fn push_snapshot(&mut self, change: RowChange, bytes: usize, now: Instant) {
        if !self.window.is_zero() {
            self.open.remove(&change.record_key());
        }
        self.entries.push_back(Entry::Change {
            change: Box::new(change),
            record: String::new(),
            bytes,
            // Nothing merges into it: no reason to hold it back.
            since: now.checked_sub(self.window).unwrap_or(now),
        });
        self.rows += 1;
        self.bytes += bytes;
    }

    pub fn push_boundary(&mut self, checkpoint: Checkpoint) {
        // Consecutive boundaries: only the newest matters.
        if let Some(Entry::Boundary(last)) = self.entries.back_mut() {
            *last = checkpoint;
            return;
        }
        self.entries.push_back(Entry::Boundary(checkpoint));
    }

    /// When the oldest waiting change is due, if any change waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.entries.front() {
            Some(Entry::Change { since, .. }) => Some(*since + self.window),
            Some(Entry::Boundary(_)) => Some(Instant::now()),
            None => None,
        }
    }

    /// The head entry, if its window has passed, or the buffer is over its bounds, or `flush`.
    pub fn pop_ready(&mut self, now: Instant, flush: bool) -> Option<Released> {
        let ready = match self.entries.front()? {
            Entry::Boundary(_) => true,
            Entry::Change { since, .. } => {
                flush || self.over_limits() || now.duration_since(*since) >= self.window
            }
        };
        if !ready {
            return None;
        }
        let index = self.first;
        self.first += 1;
        match self.entries.pop_front()? {
            Entry::Boundary(checkpoint) => Some(Released::Boundary(checkpoint)),
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
                Some(Released::Change(change))
            }
        }
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
        }
    }

    fn drain(buffer: &mut DedupBuffer) -> Vec<Released> {
        let mut out = Vec::new();
        while let Some(r) = buffer.pop_ready(Instant::now(), true) {
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
        assert_eq!(buffer.pop_ready(now, false), None, "window not over yet");
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
        buffer.push_snapshot(snapshot, 10, now);
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

    #[test]
    fn a_released_record_starts_a_new_entry_behind_the_others() {
        let mut buffer = DedupBuffer::new(Duration::from_secs(60), 100, 1 << 20);
        let now = Instant::now();
        buffer.push_change(change(1, 7, Update, Some(0), Some(1)), 10, now);
        assert!(matches!(
            buffer.pop_ready(now, true),
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
        assert_eq!(buffer.pop_ready(now, false), None);
        let later = now + Duration::from_secs(61);
        assert!(matches!(
            buffer.pop_ready(later, false),
            Some(Released::Change(_))
        ));
        assert!(matches!(
            buffer.pop_ready(later, false),
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
            buffer.pop_ready(now, false),
            None,
            "at the bound, not over it"
        );
        buffer.push_change(change(3, 3, Update, Some(0), Some(1)), 10, now);
        assert!(matches!(buffer.pop_ready(now, false), Some(Released::Change(c)) if c.seq == 1));
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
        let out: Vec<u64> = std::iter::from_fn(|| buffer.pop_ready(now, false))
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
