//! Reads of concurrent callers gathered into one SELECT.
//!
//! Under a backlog many calls read objects of one table at once (every partner's lanes read
//! EVSEs, then their connectors). Each SELECT costs a round trip and the server's per-statement
//! work, far more than a few more keys in its `IN` list, so reads of the same *shape* (table,
//! columns, filter columns, order) that wait at the same time go out as one statement, and the
//! rows are handed back to each caller by its keys.
//!
//! - At most a quarter of `pool_size` gathered statements run at a time ([`slots_for`]). A caller queues its read, then
//!   waits for its answer or for a free slot; with a slot it takes every queued read with it
//!   into a task of its own (a caller that is cancelled does not cancel the others' reads).
//!   A read therefore always *starts* after it was asked for: it sees every change committed
//!   before its call began, as a read of its own would.
//! - Rows go back to the callers whose keys they match, compared as [`super::same_id`] compares
//!   ids. Only keys that compare alike in every usual collation are gathered (numbers, and text
//!   of printable ASCII without trailing spaces); two keys of one statement never differ only in
//!   case; a row that matches no caller's key (the server compared differently) makes every
//!   caller of that statement read alone. Other keys are read alone from the start.
//! - Key lists are rounded up to a power of two (the last key repeated), so a table needs a few
//!   prepared statements, not one per key count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use change_message::Row;
use serde_json::Value;
use tokio::sync::{oneshot, Semaphore};

use super::{same_id, DbError, DbSession, Inner, Select};

/// Keys of one gathered statement at most.
const MAX_KEYS: usize = 64;

/// Gathered statements that run at a time for a pool of `pool_size` connections: a quarter of
/// them (at least one). Reads that arrive while they run wait and go out together in the next
/// statement; each statement costs the server far more than the keys it carries, and the
/// server shares the machine with the pusher more often than not. The other connections serve
/// reads that cannot be gathered.
pub(super) fn slots_for(pool_size: usize) -> usize {
    (pool_size / 4).max(1)
}

pub(super) struct Gather {
    waiting: Mutex<HashMap<Shape, Vec<Waiter>>>,
    slots: Arc<Semaphore>,
}

impl Gather {
    pub(super) fn new(slots: usize) -> Gather {
        Gather {
            waiting: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(slots)),
        }
    }

    fn take(&self) -> HashMap<Shape, Vec<Waiter>> {
        self.waiting
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}

/// What makes reads share a statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    database: String,
    table: String,
    columns: Vec<String>,
    filter: Vec<String>,
    order_by: Vec<String>,
}

struct Waiter {
    keys: Vec<Vec<Value>>,
    answer: oneshot::Sender<Result<Vec<Row>, DbError>>,
}

/// See [`super::SourceDb::select_gathered`].
pub(super) async fn select(inner: &Arc<Inner>, select: &Select<'_>) -> Result<Vec<Row>, DbError> {
    if select.keys.is_empty() {
        return Ok(Vec::new());
    }
    if select.keys.len() > MAX_KEYS || !select.keys.iter().flatten().all(gatherable) {
        return inner.session().await?.select(select).await;
    }
    let owned = |list: &[&str]| list.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let shape = Shape {
        database: select.database.to_string(),
        table: select.table.to_string(),
        columns: owned(select.columns),
        filter: owned(select.filter),
        order_by: owned(select.order_by),
    };
    let (answer, mut answered) = oneshot::channel();
    let waiter = Waiter {
        keys: select.keys.to_vec(),
        answer,
    };
    let queued = match inner.gather.waiting.lock() {
        Ok(mut waiting) => {
            waiting.entry(shape).or_default().push(waiter);
            true
        }
        Err(_) => false,
    };
    if !queued {
        return inner.session().await?.select(select).await;
    }
    tokio::select! {
        biased;
        answer = &mut answered => return received(inner, answer),
        slot = inner.gather.slots.clone().acquire_owned() => {
            // Closed never: the semaphore lives as long as `inner`.
            if let Ok(slot) = slot {
                let work = inner.gather.take();
                if !work.is_empty() {
                    let inner = inner.clone();
                    tokio::spawn(async move {
                        run(&inner, work).await;
                        drop(slot);
                    });
                }
            }
        }
    }
    received(inner, answered.await)
}

fn received(
    inner: &Inner,
    answer: Result<Result<Vec<Row>, DbError>, oneshot::error::RecvError>,
) -> Result<Vec<Row>, DbError> {
    answer.unwrap_or_else(|_| {
        Err(DbError::Unavailable {
            addr: inner.addr.clone(),
            what: "a gathered read".into(),
            reason: "the read was abandoned (the pusher is stopping)".into(),
        })
    })
}

/// Whether a key value compares alike under every usual collation and [`same_id`].
fn gatherable(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
        Value::String(s) => !s.ends_with(' ') && s.bytes().all(|b| (0x20..=0x7e).contains(&b)),
        _ => false,
    }
}

/// Runs the taken reads on one connection, statement by statement.
async fn run(inner: &Inner, work: HashMap<Shape, Vec<Waiter>>) {
    let mut session = match inner.session().await {
        Ok(session) => session,
        Err(e) => {
            for waiter in work.into_values().flatten() {
                let _ = waiter.answer.send(Err(e.clone()));
            }
            return;
        }
    };
    for (shape, waiters) in work {
        for group in groups(waiters) {
            run_group(&mut session, &shape, group).await;
        }
    }
}

/// Splits one shape's waiters into statements: at most [`MAX_KEYS`] distinct keys each, and no
/// two keys in one that differ only in case.
fn groups(waiters: Vec<Waiter>) -> Vec<(Vec<Vec<Value>>, Vec<Waiter>)> {
    let mut out: Vec<(Vec<Vec<Value>>, Vec<Waiter>)> = Vec::new();
    for waiter in waiters {
        let fits = out.last().is_some_and(|(keys, _)| {
            let new: Vec<&Vec<Value>> = waiter.keys.iter().filter(|k| !keys.contains(k)).collect();
            keys.len() + new.len() <= MAX_KEYS
                && !new.iter().any(|n| keys.iter().any(|k| same_key(k, n)))
        });
        if !fits {
            out.push((Vec::new(), Vec::new()));
        }
        if let Some((keys, members)) = out.last_mut() {
            for key in &waiter.keys {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
            members.push(waiter);
        }
    }
    out
}

fn borrowed(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

fn same_key(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_id(Some(x), y))
}

async fn run_group(
    session: &mut DbSession<'_>,
    shape: &Shape,
    (mut keys, waiters): (Vec<Vec<Value>>, Vec<Waiter>),
) {
    let filter = borrowed(&shape.filter);
    let order_by = borrowed(&shape.order_by);
    // The filter columns tell whose row a row is; columns the callers did not ask for are
    // taken out again.
    let mut columns = borrowed(&shape.columns);
    let extra: Vec<&str> = filter
        .iter()
        .filter(|c| !columns.contains(c))
        .copied()
        .collect();
    columns.extend(&extra);
    if let Some(last) = keys.last().cloned() {
        keys.resize(keys.len().next_power_of_two(), last);
    }
    let read = session
        .select(&Select {
            database: &shape.database,
            table: &shape.table,
            columns: &columns,
            filter: &filter,
            keys: &keys,
            order_by: &order_by,
        })
        .await;
    let rows = match read {
        Ok(rows) => rows,
        Err(e) => {
            for waiter in waiters {
                let _ = waiter.answer.send(Err(e.clone()));
            }
            return;
        }
    };
    let Some(mut answers) = split(&waiters, &filter, rows) else {
        // The server matched a row to a key differently: every caller reads alone.
        let own = borrowed(&shape.columns);
        for waiter in waiters {
            let read = session
                .select(&Select {
                    database: &shape.database,
                    table: &shape.table,
                    columns: &own,
                    filter: &filter,
                    keys: &waiter.keys,
                    order_by: &order_by,
                })
                .await;
            let _ = waiter.answer.send(read);
        }
        return;
    };
    for (waiter, mut rows) in waiters.into_iter().zip(answers.drain(..)) {
        if !extra.is_empty() {
            for row in &mut rows {
                for column in &extra {
                    row.remove(*column);
                }
            }
        }
        let _ = waiter.answer.send(Ok(rows));
    }
}

/// Each waiter's rows, in the statement's order; `None` when a row matches no waiter.
fn split(waiters: &[Waiter], filter: &[&str], rows: Vec<Row>) -> Option<Vec<Vec<Row>>> {
    let mut answers: Vec<Vec<Row>> = waiters.iter().map(|_| Vec::new()).collect();
    let mut owners = Vec::new();
    for row in rows {
        owners.clear();
        owners.extend(waiters.iter().enumerate().filter_map(|(i, w)| {
            w.keys
                .iter()
                .any(|key| {
                    filter
                        .iter()
                        .zip(key)
                        .all(|(column, value)| same_id(row.get(*column), value))
                })
                .then_some(i)
        }));
        let (&last, others) = owners.split_last()?;
        for &i in others {
            answers[i].push(row.clone());
        }
        answers[last].push(row);
    }
    Some(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn waiter(keys: Vec<Vec<Value>>) -> (Waiter, oneshot::Receiver<Result<Vec<Row>, DbError>>) {
        let (answer, rx) = oneshot::channel();
        (Waiter { keys, answer }, rx)
    }

    fn row(value: Value) -> Row {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_quarter_of_the_pool_runs_gathered_statements() {
        assert_eq!(slots_for(1), 1);
        assert_eq!(slots_for(8), 2);
        assert_eq!(slots_for(256), 64);
    }

    #[test]
    fn only_keys_that_compare_alike_everywhere_are_gathered() {
        assert!(gatherable(&json!("NL*EXA-1 a")));
        assert!(gatherable(&json!(7)));
        assert!(gatherable(&Value::Null));
        assert!(!gatherable(&json!("trailing ")));
        assert!(!gatherable(&json!("é")));
        assert!(!gatherable(&json!("tab\t")));
        assert!(!gatherable(&json!([1])));
    }

    #[test]
    fn keys_that_differ_only_in_case_or_overflow_go_to_another_statement() {
        let (a, _ra) = waiter(vec![vec![json!("abc")]]);
        let (b, _rb) = waiter(vec![vec![json!("abc")], vec![json!("x")]]);
        let (c, _rc) = waiter(vec![vec![json!("ABC")]]);
        let many: Vec<Vec<Value>> = (0..MAX_KEYS).map(|i| vec![json!(i)]).collect();
        let (d, _rd) = waiter(many);
        let groups = groups(vec![a, b, c, d]);
        let sizes: Vec<(usize, usize)> = groups.iter().map(|(k, w)| (k.len(), w.len())).collect();
        assert_eq!(sizes, vec![(2, 2), (1, 1), (MAX_KEYS, 1)]);
    }

    #[test]
    fn rows_go_to_every_waiter_whose_key_they_match_and_a_stranger_spoils_the_split() {
        let (a, _ra) = waiter(vec![vec![json!("NL"), json!("L1")]]);
        let (b, _rb) = waiter(vec![
            vec![json!("NL"), json!("L2")],
            vec![json!("NL"), json!("l1")],
        ]);
        let filter = ["cc", "loc"];
        let rows = vec![
            row(json!({"cc": "nl", "loc": "L1", "n": 1})),
            row(json!({"cc": "NL", "loc": "L2", "n": 2})),
        ];
        let Some(answers) = split(&[a, b], &filter, rows.clone()) else {
            panic!("every row has an owner");
        };
        assert_eq!(answers[0], vec![rows[0].clone()]);
        assert_eq!(answers[1], rows);
        let (c, _rc) = waiter(vec![vec![json!("NL"), json!("L1")]]);
        let stranger = vec![row(json!({"cc": "NL", "loc": "L1 ", "n": 3}))];
        assert!(split(&[c], &filter, stranger).is_none());
    }
}
