//! The watermark logic of an initial sync (DBLog's, also Debezium's incremental snapshots),
//! free of I/O so it can be tested event by event.
//!
//! For each chunk the reader task writes a *low* watermark row into the signal table, selects
//! the chunk (primary-key order, no locks), and writes a *high* watermark row; both carry the
//! chunk's attempt id. In the binlog, the changes between the two watermarks are exactly the
//! changes that may have happened while the chunk was read. So:
//! - between the low and the high watermark of the attempt, the keys of changed rows of the
//!   chunk's table are collected;
//! - at the high watermark those keys are dropped from the chunk (the binlog carries their
//!   newer state, before or after this point) and the rest is emitted *at that point of the
//!   stream*, behind every change read before it and ahead of every change after it.
//!
//! Watermarks of attempts this process did not plan (an earlier run's, read again after a
//! restart) are ignored, and so are attempts of a scan that was abandoned (cancel, failure).

use super::state::{KeyValue, Outcome, SyncJob, SyncState, TableProgress, TableState};
use change_message::Row;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// A row of a chunk, decoded like a live row.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    pub key: Row,
    /// `key` as compact JSON: the record's identity, compared with live changes' keys.
    pub key_text: String,
    pub after: Row,
    pub bytes: usize,
}

/// A record key as compact JSON, as [`SnapshotRow::key_text`] holds it (serialized from the map
/// itself: no copy of the key per row).
pub fn key_text(key: &Row) -> String {
    serde_json::to_string(key).unwrap_or_default()
}

/// The rows of one chunk, handed over before its high watermark is written.
#[derive(Debug, Clone)]
pub struct ChunkRows {
    pub generation: u64,
    pub attempt: String,
    pub rows: Vec<SnapshotRow>,
    /// Key of the chunk's last row (None for an empty chunk).
    pub last_key: Option<Vec<KeyValue>>,
    /// Fewer rows than asked for: the table has no more.
    pub last: bool,
    /// Columns whose values are base64.
    pub binary_columns: Vec<String>,
}

/// What the chunk reader task reports.
#[derive(Debug)]
pub enum DriverEvent {
    /// Sent before the low watermark is written.
    Planned {
        generation: u64,
        attempt: String,
        table: String,
    },
    Counted {
        generation: u64,
        total: u64,
    },
    /// Sent before the high watermark is written.
    Chunk(Box<ChunkRows>),
    Failed {
        generation: u64,
        message: String,
        /// The table cannot be synced (gone, no primary key...): the sync fails. Otherwise the
        /// scan is retried from the last confirmed chunk.
        fatal: bool,
    },
}

/// A signal row read back from the binlog.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    Start {
        sync_id: String,
        queue: String,
        tables: Vec<String>,
        requested_at: String,
    },
    Cancel {
        queue: String,
    },
    Low {
        attempt: String,
    },
    High {
        attempt: String,
    },
    Other,
}

/// What the caller must do.
#[derive(Debug, PartialEq)]
pub enum Effect {
    /// Start a reader task for a table of the active sync, from `after` (exclusive).
    Scan {
        generation: u64,
        sync_id: String,
        table: String,
        after: Option<Vec<KeyValue>>,
        delay: Duration,
    },
    /// Publish these snapshot rows to `queue`, here in the stream.
    Emit {
        sync_id: String,
        queue: String,
        table: String,
        rows: Vec<SnapshotRow>,
        binary_columns: Vec<String>,
        /// Rows of the chunk left out because the binlog carries a newer state.
        dropped: usize,
    },
    /// A chunk is done with: the reader may read one more ahead.
    ReleasePermit { generation: u64 },
    /// A sync ended (finished, cancelled or failed): for the log.
    Ended(Box<SyncJob>),
    /// A sync started: for the log.
    Started { sync_id: String, queue: String },
}

struct Window {
    attempt: String,
    table: String,
    changed: HashSet<String>,
}

pub struct Tracker {
    state: Arc<SyncState>,
    generation: u64,
    /// attempt -> table, for attempts of the current generation.
    planned: HashMap<String, String>,
    window: Option<Window>,
    chunks: HashMap<String, Box<ChunkRows>>,
    retry_delay: Duration,
}

fn now() -> String {
    crate::time_format::now_rfc3339()
}

impl Tracker {
    /// Resumes from the saved state; the effects start the active (or next waiting) sync.
    pub fn new(state: SyncState, retry_delay: Duration) -> (Tracker, Vec<Effect>) {
        let mut tracker = Tracker {
            state: Arc::new(state),
            generation: 0,
            planned: HashMap::new(),
            window: None,
            chunks: HashMap::new(),
            retry_delay,
        };
        let mut effects = Vec::new();
        if tracker.state.active.is_some() {
            tracker.scan_current(Duration::ZERO, &mut effects);
        } else {
            tracker.activate_next(&mut effects);
        }
        (tracker, effects)
    }

    pub fn state(&self) -> &SyncState {
        &self.state
    }

    /// What a checkpoint taken now should carry (None when there was never a sync, so that
    /// checkpoints of bridges that never synced stay as they were).
    pub fn snapshot(&self) -> Option<Arc<SyncState>> {
        (!self.state.is_empty()).then(|| self.state.clone())
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Is a sync running or waiting?
    pub fn busy(&self) -> bool {
        self.state.active.is_some() || !self.state.waiting.is_empty()
    }

    fn abandon_scan(&mut self) {
        self.generation += 1;
        self.planned.clear();
        self.window = None;
        self.chunks.clear();
    }

    fn scan_current(&mut self, delay: Duration, effects: &mut Vec<Effect>) {
        self.abandon_scan();
        let generation = self.generation;
        let state = Arc::make_mut(&mut self.state);
        let Some(job) = state.active.as_mut() else {
            return;
        };
        let Some(index) = job.current() else {
            return;
        };
        let table = &mut job.tables[index];
        table.state = TableState::Running;
        effects.push(Effect::Scan {
            generation,
            sync_id: job.sync_id.clone(),
            table: table.table.clone(),
            after: table.after.clone(),
            delay,
        });
    }

    fn activate_next(&mut self, effects: &mut Vec<Effect>) {
        if self.state.active.is_some() || self.state.waiting.is_empty() {
            return;
        }
        let state = Arc::make_mut(&mut self.state);
        let mut job = state.waiting.remove(0);
        job.state = Outcome::Running;
        job.started_at = now();
        effects.push(Effect::Started {
            sync_id: job.sync_id.clone(),
            queue: job.queue.clone(),
        });
        state.active = Some(job);
        self.scan_current(Duration::ZERO, effects);
    }

    fn end_active(&mut self, outcome: Outcome, reason: Option<String>, effects: &mut Vec<Effect>) {
        self.abandon_scan();
        let state = Arc::make_mut(&mut self.state);
        if let Some(job) = state.active.take() {
            state.end(job, outcome, reason, now());
            if let Some(ended) = state.ended.last() {
                effects.push(Effect::Ended(Box::new(ended.clone())));
            }
        }
        self.activate_next(effects);
    }

    /// A row of a captured table changed (called for every live change, before it is queued).
    pub fn on_change(&mut self, database: &str, table: &str, key_text: impl FnOnce() -> String) {
        if let Some(window) = self.window.as_mut() {
            if window.table.len() == database.len() + 1 + table.len()
                && window.table.starts_with(database)
                && window.table[database.len()..].starts_with('.')
                && window.table.ends_with(table)
            {
                window.changed.insert(key_text());
            }
        }
    }

    /// A row of the signal table, in binlog order.
    pub fn on_signal(&mut self, signal: Signal) -> Vec<Effect> {
        let mut effects = Vec::new();
        match signal {
            Signal::Start {
                sync_id,
                queue,
                tables,
                requested_at,
            } => {
                if !self.state.knows(&sync_id) {
                    let state = Arc::make_mut(&mut self.state);
                    state.waiting.push(SyncJob {
                        sync_id,
                        queue,
                        tables: tables.iter().map(|t| TableProgress::new(t)).collect(),
                        state: Outcome::Waiting,
                        reason: None,
                        requested_at,
                        started_at: String::new(),
                        ended_at: String::new(),
                    });
                    self.activate_next(&mut effects);
                }
            }
            Signal::Cancel { queue } => {
                let state = Arc::make_mut(&mut self.state);
                let (cancelled, kept): (Vec<SyncJob>, Vec<SyncJob>) =
                    state.waiting.drain(..).partition(|j| j.queue == queue);
                state.waiting = kept;
                for job in cancelled {
                    state.end(job, Outcome::Cancelled, Some("cancelled".into()), now());
                    if let Some(ended) = state.ended.last() {
                        effects.push(Effect::Ended(Box::new(ended.clone())));
                    }
                }
                if self.state.active.as_ref().is_some_and(|j| j.queue == queue) {
                    self.end_active(Outcome::Cancelled, Some("cancelled".into()), &mut effects);
                }
            }
            Signal::Low { attempt } => {
                if let Some(table) = self.planned.get(&attempt) {
                    self.window = Some(Window {
                        attempt,
                        table: table.clone(),
                        changed: HashSet::new(),
                    });
                }
            }
            Signal::High { attempt } => self.on_high(attempt, &mut effects),
            Signal::Other => {}
        }
        effects
    }

    fn on_high(&mut self, attempt: String, effects: &mut Vec<Effect>) {
        let Some(window) = self.window.take_if(|w| w.attempt == attempt) else {
            return; // not ours (an earlier run's, or an abandoned scan's)
        };
        self.planned.remove(&attempt);
        let Some(chunk) = self.chunks.remove(&attempt) else {
            // The rows were never handed over: read the chunk again.
            let delay = self.retry_delay;
            self.scan_current(delay, effects);
            return;
        };
        effects.push(Effect::ReleasePermit {
            generation: self.generation,
        });
        let read = chunk.rows.len();
        let rows: Vec<SnapshotRow> = chunk
            .rows
            .into_iter()
            .filter(|row| !window.changed.contains(&row.key_text))
            .collect();
        let dropped = read - rows.len();
        let state = Arc::make_mut(&mut self.state);
        let Some(job) = state.active.as_mut() else {
            return;
        };
        let Some(index) = job.current() else {
            return;
        };
        let progress = &mut job.tables[index];
        progress.rows_done += read as u64;
        progress.rows_sent += rows.len() as u64;
        if let Some(last_key) = chunk.last_key {
            progress.after = Some(last_key);
        }
        let table = progress.table.clone();
        if chunk.last {
            progress.state = TableState::Done;
        }
        effects.push(Effect::Emit {
            sync_id: job.sync_id.clone(),
            queue: job.queue.clone(),
            table,
            rows,
            binary_columns: chunk.binary_columns,
            dropped,
        });
        if chunk.last {
            if job.current().is_some() {
                self.scan_current(Duration::ZERO, effects);
            } else {
                self.end_active(Outcome::Finished, None, effects);
            }
        }
    }

    /// A report of the chunk reader task.
    pub fn on_driver(&mut self, event: DriverEvent) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            DriverEvent::Planned {
                generation,
                attempt,
                table,
            } if generation == self.generation => {
                self.planned.insert(attempt, table);
            }
            DriverEvent::Counted { generation, total } if generation == self.generation => {
                let state = Arc::make_mut(&mut self.state);
                if let Some(job) = state.active.as_mut() {
                    if let Some(index) = job.current() {
                        job.tables[index].rows_total = Some(total);
                    }
                }
            }
            DriverEvent::Chunk(chunk) if chunk.generation == self.generation => {
                self.chunks.insert(chunk.attempt.clone(), chunk);
            }
            DriverEvent::Failed {
                generation,
                message,
                fatal,
            } if generation == self.generation => {
                if fatal {
                    self.end_active(Outcome::Failed, Some(message), &mut effects);
                } else {
                    let delay = self.retry_delay;
                    self.scan_current(delay, &mut effects);
                }
            }
            _ => {} // a report of an abandoned scan
        }
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_key_text_is_the_compact_json_of_the_key_in_column_order() {
        let key = json!({ "country_code": "NL", "id": "A\"1", "n": 7 })
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(
            key_text(&key),
            serde_json::Value::Object(key.clone()).to_string()
        );
        assert_eq!(key_text(&key), r#"{"country_code":"NL","id":"A\"1","n":7}"#);
    }

    fn row(id: i64, v: i64) -> SnapshotRow {
        let key = json!({ "id": id }).as_object().cloned().unwrap();
        SnapshotRow {
            key_text: serde_json::Value::Object(key.clone()).to_string(),
            key,
            after: json!({"id": id, "v": v}).as_object().cloned().unwrap(),
            bytes: 10,
        }
    }

    fn start(tracker: &mut Tracker, id: &str, tables: &[&str]) -> Vec<Effect> {
        tracker.on_signal(Signal::Start {
            sync_id: id.into(),
            queue: format!("q-{id}"),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            requested_at: String::new(),
        })
    }

    fn scan_of(effects: &[Effect]) -> (u64, String, Option<Vec<KeyValue>>) {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::Scan {
                    generation,
                    table,
                    after,
                    ..
                } => Some((*generation, table.clone(), after.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no scan in {effects:?}"))
    }

    fn emitted(effects: &[Effect]) -> Vec<i64> {
        effects
            .iter()
            .flat_map(|e| match e {
                Effect::Emit { rows, .. } => rows
                    .iter()
                    .map(|r| r.key["id"].as_i64().unwrap())
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn chunk(tracker: &mut Tracker, g: u64, attempt: &str, ids: &[i64], last: bool) {
        tracker.on_driver(DriverEvent::Planned {
            generation: g,
            attempt: attempt.into(),
            table: "app.t".into(),
        });
        tracker.on_driver(DriverEvent::Chunk(Box::new(ChunkRows {
            generation: g,
            attempt: attempt.into(),
            rows: ids.iter().map(|&i| row(i, 0)).collect(),
            last_key: ids.last().map(|&i| vec![KeyValue::Int(i)]),
            last,
            binary_columns: Vec::new(),
        })));
    }

    fn key(id: i64) -> String {
        json!({ "id": id }).to_string()
    }

    #[test]
    fn keys_changed_between_the_watermarks_are_dropped_from_the_chunk() {
        let (mut t, effects) = Tracker::new(SyncState::default(), Duration::ZERO);
        assert!(effects.is_empty());
        let effects = start(&mut t, "s1", &["app.t"]);
        let (g, table, after) = scan_of(&effects);
        assert_eq!((table.as_str(), after), ("app.t", None));
        chunk(&mut t, g, "a1", &[1, 2, 3, 4], false);
        // A change before the low watermark does not matter: the chunk is newer.
        t.on_change("app", "t", || key(1));
        t.on_signal(Signal::Low {
            attempt: "a1".into(),
        });
        t.on_change("app", "t", || key(2));
        t.on_change("app", "other", || key(3)); // another table: same key, other record
        t.on_change("app", "t", || key(99)); // not in the chunk
        let effects = t.on_signal(Signal::High {
            attempt: "a1".into(),
        });
        assert_eq!(emitted(&effects), vec![1, 3, 4]);
        assert!(effects.contains(&Effect::ReleasePermit { generation: g }));
        let job = t.state().active.clone().unwrap();
        assert_eq!(job.tables[0].rows_done, 4);
        assert_eq!(job.tables[0].rows_sent, 3);
        assert_eq!(job.tables[0].after, Some(vec![KeyValue::Int(4)]));
        // After the high watermark, changes are no longer collected.
        t.on_change("app", "t", || key(5));
        chunk(&mut t, g, "a2", &[5, 6], true);
        t.on_signal(Signal::Low {
            attempt: "a2".into(),
        });
        let effects = t.on_signal(Signal::High {
            attempt: "a2".into(),
        });
        assert_eq!(emitted(&effects), vec![5, 6]);
        assert!(
            matches!(effects.last(), Some(Effect::Ended(job)) if job.state == Outcome::Finished)
        );
        assert!(t.state().active.is_none());
        assert_eq!(t.state().ended[0].rows_done(), 6);
    }

    #[test]
    fn watermarks_of_unknown_or_abandoned_attempts_are_ignored() {
        let (mut t, _) = Tracker::new(SyncState::default(), Duration::ZERO);
        let g = scan_of(&start(&mut t, "s1", &["app.t"])).0;
        // An earlier run's watermarks, read again after a restart.
        t.on_signal(Signal::Low {
            attempt: "old".into(),
        });
        t.on_change("app", "t", || key(1));
        assert!(t
            .on_signal(Signal::High {
                attempt: "old".into()
            })
            .is_empty());
        // A failed scan abandons its attempts; the retry is a new generation from the cursor.
        chunk(&mut t, g, "a1", &[1, 2], false);
        let effects = t.on_driver(DriverEvent::Failed {
            generation: g,
            message: "connection lost".into(),
            fatal: false,
        });
        let (g2, _, after) = scan_of(&effects);
        assert!(g2 > g);
        assert_eq!(after, None);
        t.on_signal(Signal::Low {
            attempt: "a1".into(),
        });
        assert!(emitted(&t.on_signal(Signal::High {
            attempt: "a1".into()
        }))
        .is_empty());
        // Reports of the old generation are ignored too.
        chunk(&mut t, g, "a9", &[7], true);
        t.on_signal(Signal::Low {
            attempt: "a9".into(),
        });
        assert!(emitted(&t.on_signal(Signal::High {
            attempt: "a9".into()
        }))
        .is_empty());
        assert_eq!(t.state().active.as_ref().unwrap().rows_done(), 0);
    }

    #[test]
    fn the_cursor_survives_a_restart_and_the_scan_resumes_after_it() {
        let (mut t, _) = Tracker::new(SyncState::default(), Duration::ZERO);
        let g = scan_of(&start(&mut t, "s1", &["app.t", "app.u"])).0;
        chunk(&mut t, g, "a1", &[1, 2, 3], false);
        t.on_signal(Signal::Low {
            attempt: "a1".into(),
        });
        t.on_signal(Signal::High {
            attempt: "a1".into(),
        });
        // Saved with a checkpoint, loaded by the next process.
        let saved = serde_json::to_string(&*t.snapshot().unwrap()).unwrap();
        let loaded: SyncState = serde_json::from_str(&saved).unwrap();
        let (mut t2, effects) = Tracker::new(loaded, Duration::ZERO);
        let (g, table, after) = scan_of(&effects);
        assert_eq!(table, "app.t");
        assert_eq!(after, Some(vec![KeyValue::Int(3)]));
        // The same start signal read again is not a second sync.
        assert!(start(&mut t2, "s1", &["app.t", "app.u"]).is_empty());
        chunk(&mut t2, g, "b1", &[4], true);
        t2.on_signal(Signal::Low {
            attempt: "b1".into(),
        });
        let effects = t2.on_signal(Signal::High {
            attempt: "b1".into(),
        });
        assert_eq!(emitted(&effects), vec![4]);
        let (_, next, after) = scan_of(&effects);
        assert_eq!((next.as_str(), after), ("app.u", None));
    }

    #[test]
    fn composite_keys_are_matched_as_whole_keys() {
        let (mut t, _) = Tracker::new(SyncState::default(), Duration::ZERO);
        let g = scan_of(&start(&mut t, "s1", &["app.t"])).0;
        let composite = |a: &str, b: i64| {
            let key = json!({"cc": a, "id": b}).as_object().cloned().unwrap();
            SnapshotRow {
                key_text: serde_json::Value::Object(key.clone()).to_string(),
                after: key.clone(),
                key,
                bytes: 1,
            }
        };
        t.on_driver(DriverEvent::Planned {
            generation: g,
            attempt: "a".into(),
            table: "app.t".into(),
        });
        t.on_driver(DriverEvent::Chunk(Box::new(ChunkRows {
            generation: g,
            attempt: "a".into(),
            rows: vec![composite("NL", 1), composite("NL", 2), composite("DE", 1)],
            last_key: Some(vec![KeyValue::Bytes("REU=".into()), KeyValue::Int(1)]),
            last: true,
            binary_columns: Vec::new(),
        })));
        t.on_signal(Signal::Low {
            attempt: "a".into(),
        });
        t.on_change("app", "t", || json!({"cc": "NL", "id": 1}).to_string());
        let effects = t.on_signal(Signal::High {
            attempt: "a".into(),
        });
        let keys: Vec<String> = effects
            .iter()
            .flat_map(|e| match e {
                Effect::Emit { rows, .. } => rows.iter().map(|r| r.key_text.clone()).collect(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                r#"{"cc":"NL","id":2}"#.to_string(),
                r#"{"cc":"DE","id":1}"#.to_string()
            ]
        );
    }

    #[test]
    fn cancel_ends_the_active_sync_and_starts_the_next_in_line() {
        let (mut t, _) = Tracker::new(SyncState::default(), Duration::ZERO);
        start(&mut t, "s1", &["app.t"]);
        assert!(start(&mut t, "s2", &["app.t"])
            .iter()
            .all(|e| !matches!(e, Effect::Scan { .. })));
        let effects = t.on_signal(Signal::Cancel {
            queue: "q-s1".into(),
        });
        assert!(matches!(&effects[0], Effect::Ended(job) if job.state == Outcome::Cancelled));
        assert!(effects
            .iter()
            .any(|e| matches!(e, Effect::Started { sync_id, .. } if sync_id == "s2")));
        scan_of(&effects);
        assert_eq!(t.state().ended[0].sync_id, "s1");
        assert_eq!(t.state().active.as_ref().unwrap().sync_id, "s2");
    }
}
