//! A durable, per-partner record of CDR POST attempts, so that a redelivered CDR is never POSTed
//! twice.
//!
//! Why: every other OCPI object is sent with PUT, which is idempotent, so a message redelivered
//! by RabbitMQ (the pusher stopped before its ack, the channel dropped, another pusher took over
//! the partner) can simply be sent again. A CDR is sent with POST, and the partner creates a new
//! CDR for every POST it receives: a second POST bills the driver twice. Whether a CDR already
//! reached the partner therefore has to be known from something that survives a restart.
//!
//! How the pusher uses it:
//! - before the POST it records the CDR as *attempted* and fsyncs; only then does it POST;
//! - after the partner confirmed the POST it records the CDR as *delivered* (with the `Location`
//!   the partner answered, if any), then acks the message;
//! - a redelivered CDR whose state is *delivered* is acked without a POST;
//! - a redelivered CDR whose state is *attempted* has an unknown outcome (the pusher stopped in
//!   the middle of the call, or the call timed out after the request was sent): it is parked for
//!   a person to check at the partner instead of risking a duplicate;
//! - when a POST is known not to have reached the partner (the connection was refused), the
//!   attempt is forgotten so a retry is allowed.
//!
//! Pushers that can take over a partner from each other must share the state directory
//! (`pusher.state_dir`): a pusher that cannot see the ledger of the pusher before it would POST
//! CDRs again.
//!
//! More than one process writes a ledger: during a hand-over the pusher giving the partner up
//! records the outcome of its last calls while its successor has the ledger open already, and
//! `pusher parked replay` appends releases ([`release`]). So the ledger in memory is never
//! trusted to be complete: before a CDR without a *delivered* entry is POSTed (or parked as
//! attempted), [`CdrLedger::state`] reads the lines other processes appended since it last
//! looked. A CDR whose POST another pusher started before the hand-over is therefore seen as
//! attempted, never POSTed a second time. The lock file `<partner>.cdr-ledger.lock`
//! ([`file_lock`]) keeps a compaction (which renames a new file over the ledger) from happening
//! while anyone appends or reads; a handle that finds the file replaced reads it again whole.
//!
//! The file is `<state_dir>/<partner>.cdr-ledger.jsonl`, JSON Lines, appended to and never edited
//! in place; a later line for a key overrides earlier ones:
//!
//! ```text
//! {"key":"<record key>","state":"attempted","at":"2024-05-01T12:00:00Z","location":null}
//! {"key":"<record key>","state":"delivered","at":"2024-05-01T12:00:01Z","location":"https://..."}
//! {"key":"<record key>","state":"cleared","at":"2024-05-01T12:00:02Z","location":null}
//! {"key":"","state":"forgotten","at":"2024-04-01T00:00:00Z","location":null}
//! ```
//!
//! Releasing a CDR for a replay: `pusher parked replay` is how a person says "I checked the
//! partner, this CDR is missing there, send it again". A CDR parked because its POST has an
//! unknown outcome is recorded as *attempted*, and would be parked again. [`release`] appends a
//! `cleared` line for such a CDR (never touching *delivered* ones: a CDR the partner confirmed
//! is never POSTed again, whoever asks), and the pusher holding the partner picks it up without
//! a restart.
//!
//! A crash while appending leaves at most a torn last line; it is ignored (with a warning) and
//! cut off when the ledger is opened. Entries older than the retention are dropped when the ledger
//! is opened, by rewriting the file (temporary file, fsync, rename, fsync of the directory); the
//! file is rewritten only when something was dropped or repaired. What was dropped is remembered
//! as one `forgotten` line: the time of the newest entry dropped ([`CdrLedger::forgotten_before`]).
//! A CDR the partner was sent before it is unknown to the ledger, which is what a re-sync of
//! CDRs needs to know (see `old_cdrs_in_sync` in the partner's configuration).

mod file_lock;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use change_message::calendar::{civil_from_days, days_from_civil};
use serde::{Deserialize, Serialize};

use file_lock::LedgerLock;

/// File name suffix after the partner id.
const FILE_SUFFIX: &str = ".cdr-ledger.jsonl";

/// What the ledger knows about one CDR; decides whether a redelivered CDR may be POSTed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CdrState {
    /// A POST was about to be sent (or was sent) and its outcome is unknown: do not POST again
    /// without a person checking the partner's side.
    Attempted {
        /// When the attempt was recorded (second precision).
        at: SystemTime,
    },
    /// The partner confirmed the POST: a redelivery is acked without sending anything.
    Delivered {
        /// When the delivery was recorded (second precision).
        at: SystemTime,
        /// The `Location` the partner answered with, kept so a person can find the CDR there.
        location: Option<String>,
    },
}

impl CdrState {
    fn at(&self) -> SystemTime {
        match self {
            CdrState::Attempted { at } | CdrState::Delivered { at, .. } => *at,
        }
    }
}

/// Why the ledger could not be opened or written; each message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The partner id would not make a plain file name.
    #[error(
        "partner id {partner:?} cannot name a CDR ledger file: use a non-empty id without path \
         separators that does not start with '.'"
    )]
    InvalidPartner {
        /// The rejected partner id.
        partner: String,
    },
    /// The state directory could not be created.
    #[error(
        "cannot create the CDR ledger directory {}: {source}; check that pusher.state_dir is \
         writable by the pusher",
        dir.display()
    )]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The ledger file exists but could not be read or opened.
    #[error(
        "cannot open the CDR ledger {}: {source}; check that pusher.state_dir is readable and \
         writable by the pusher",
        path.display()
    )]
    Open {
        /// The ledger file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A line before the last one is damaged: this is not a torn write from a crash, so the
    /// ledger cannot be trusted and is not repaired automatically.
    #[error(
        "the CDR ledger {} is damaged at line {line}: {reason}; fix or delete that line, or move \
         the file aside to start with an empty ledger (CDRs redelivered after that may be POSTed \
         again, so check the partner's CDRs first)",
        path.display()
    )]
    Garbled {
        /// The ledger file.
        path: PathBuf,
        /// 1-based line number of the damaged line.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing the compacted ledger failed; the original file is left as it was.
    #[error(
        "cannot rewrite the CDR ledger {} while dropping old entries: {source}; check that \
         pusher.state_dir is writable and the disk is not full",
        path.display()
    )]
    Compact {
        /// The ledger file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Appending or fsyncing an entry failed: the entry is not durable, so the caller must not
    /// POST (or must not ack) on its strength.
    #[error(
        "cannot write to the CDR ledger {}: {source}; check that pusher.state_dir is writable and \
         the disk is not full, then restart the pusher",
        path.display()
    )]
    Write {
        /// The ledger file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An earlier write failed, so the end of the file is in an unknown state; further appends
    /// could glue onto a torn line.
    #[error(
        "an earlier write to the CDR ledger {} failed; restart the pusher (reopening the ledger \
         repairs a torn last line) before sending more CDRs",
        path.display()
    )]
    Poisoned {
        /// The ledger file.
        path: PathBuf,
    },
    /// The lock file next to the ledger could not be opened or locked.
    #[error(
        "cannot lock the CDR ledger {}: {source}; check that pusher.state_dir is writable by \
         the pusher and is on a filesystem with file locks (a local disk, or NFSv4)",
        path.display()
    )]
    Lock {
        /// The ledger file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// What [`release`] found for one CDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// It was recorded as attempted (unknown outcome): now cleared, the next delivery POSTs it.
    Released,
    /// The ledger holds nothing for it: the next delivery POSTs it anyway.
    NotRecorded,
    /// The partner confirmed it: it stays recorded, and its next delivery is acknowledged
    /// without a POST.
    Delivered {
        /// The `Location` the partner answered with, if any.
        location: Option<String>,
    },
}

/// The durable CDR POST ledger of one partner. Used from one task at a time.
#[derive(Debug)]
pub struct CdrLedger {
    path: PathBuf,
    file: File,
    lock: LedgerLock,
    known: Known,
    /// Set after a failed append (or a ledger found damaged by another process): the file's
    /// tail is unknown until it is reopened.
    poisoned: bool,
    /// How far the file has been read: lines after it were appended since (by this pusher, by
    /// the pusher that held the partner before, or by a `pusher parked replay`).
    read_to: u64,
}

/// The `state` field of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum LineState {
    Attempted,
    Delivered,
    Cleared,
    /// Entries recorded at or before `at` were dropped by a compaction (no key).
    Forgotten,
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    key: String,
    state: LineState,
    at: String,
    #[serde(default)]
    location: Option<String>,
}

/// What the lines of a ledger file come to.
#[derive(Debug, Default)]
struct Known {
    entries: HashMap<String, CdrState>,
    /// The newest time of an entry dropped for its age: what was recorded before is unknown.
    forgotten_before: Option<SystemTime>,
}

impl CdrLedger {
    /// Opens (or creates) the ledger of `partner` in `dir`, dropping entries older than
    /// `retention` so the file does not grow without bound.
    pub fn open(dir: &Path, partner: &str, retention: Duration) -> Result<CdrLedger, LedgerError> {
        let path = ledger_path(dir, partner)?;
        fs::create_dir_all(dir).map_err(|source| LedgerError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let open_err = |source| LedgerError::Open {
            path: path.clone(),
            source,
        };
        let lock_err = |source| LedgerError::Lock {
            path: path.clone(),
            source,
        };
        let lock = LedgerLock::open(&lock_path(&path)).map_err(lock_err)?;
        // Alone from reading to renaming: a line appended in between would not be in the
        // rewritten file.
        let alone = lock.exclusive().map_err(lock_err)?;

        let (bytes, existed) = match fs::read(&path) {
            Ok(bytes) => (bytes, true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), false),
            Err(e) => return Err(open_err(e)),
        };
        let parsed = parse(&path, &bytes)?;
        let mut known = parsed.known;
        let dropped = known.drop_older(SystemTime::now().checked_sub(retention));

        let mut read_to = bytes.len() as u64;
        if dropped > 0 || parsed.needs_repair {
            if dropped > 0 {
                tracing::info!(
                    path = %path.display(),
                    dropped,
                    kept = known.entries.len(),
                    "dropping CDR ledger entries older than the retention"
                );
            }
            read_to = rewrite(dir, &path, &known).map_err(|source| LedgerError::Compact {
                path: path.clone(),
                source,
            })?;
        }

        let file = open_for_append(&path).map_err(open_err)?;
        if !existed {
            // The new file's directory entry must be durable before the first attempt is
            // trusted, or a crash could lose the whole file along with its fsynced lines.
            sync_dir(dir).map_err(open_err)?;
        }
        drop(alone);
        Ok(CdrLedger {
            path,
            file,
            lock,
            known,
            poisoned: false,
            read_to,
        })
    }

    /// What is known about the CDR with this record key; `None`: it may be POSTed.
    ///
    /// Anything but *delivered* (which is final) is checked against the file first: another
    /// pusher may have recorded an attempt of it before handing the partner over, or a person
    /// may have released it for a replay ([`release`]) while this pusher held the ledger open.
    /// Reads the disk: call it off the async workers.
    pub fn state(&mut self, key: &str) -> Option<CdrState> {
        if !matches!(
            self.known.entries.get(key),
            Some(CdrState::Delivered { .. })
        ) {
            self.catch_up();
        }
        self.known.entries.get(key).cloned()
    }

    /// The newest time of an entry dropped for its age: a CDR POSTed before it is unknown to
    /// the ledger. `None` while nothing was ever dropped (the ledger knows every POST).
    pub fn forgotten_before(&self) -> Option<SystemTime> {
        self.known.forgotten_before
    }

    /// Applies the complete lines appended to the file since it was last read (the whole file
    /// when another process compacted it). Lines this pusher wrote itself are applied again,
    /// which changes nothing: the file's order is the truth either way. A failure keeps the
    /// state in memory and poisons the ledger where appending could lose a line.
    fn catch_up(&mut self) {
        if self.poisoned {
            return;
        }
        let _shared = match self.lock.shared() {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot lock the CDR ledger to read its new lines; keeping what is known");
                return;
            }
        };
        match file_lock::still_names(&self.file, &self.path) {
            Ok(true) => self.read_new_lines(),
            Ok(false) => self.reload(),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot check the CDR ledger file; keeping what is known");
            }
        }
    }

    /// The lines appended since `read_to`, from the file this handle has open.
    fn read_new_lines(&mut self) {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut tail = Vec::new();
        let mut file = &self.file;
        let read = file
            .seek(SeekFrom::Start(self.read_to))
            .and_then(|_| file.read_to_end(&mut tail));
        if let Err(error) = read {
            tracing::warn!(path = %self.path.display(), %error, "cannot read the CDR ledger's new lines; keeping what is known");
            return;
        }
        // A line still being written by another process is left for the next look.
        let Some(end) = tail.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        for raw in tail[..end].split(|b| *b == b'\n') {
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_line(raw) {
                Ok((state, key, at, location)) => self.known.apply(state, key, at, location),
                Err(reason) => {
                    tracing::warn!(path = %self.path.display(), reason, "ignoring an unreadable line appended to the CDR ledger")
                }
            }
        }
        self.read_to += end as u64 + 1;
    }

    /// Another process replaced the file (a compaction when it took the partner over) or
    /// removed it: read the new one whole, and append to it from now on. Called with the
    /// shared lock held, so no compaction runs meanwhile.
    fn reload(&mut self) {
        let fail = |ledger: &mut CdrLedger, why: String| {
            tracing::error!(path = %ledger.path.display(), why, "the CDR ledger was replaced and cannot be read again: no CDR is POSTed until the pusher is restarted");
            ledger.poisoned = true;
        };
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) => return fail(self, format!("cannot read it: {e}")),
        };
        let parsed = match parse(&self.path, &bytes) {
            // A torn last line of another process would have our next line glued to it.
            Ok(parsed) if parsed.needs_repair => {
                return fail(self, "it ends with a torn line".into())
            }
            Ok(parsed) => parsed,
            Err(e) => return fail(self, e.to_string()),
        };
        match open_for_append(&self.path) {
            Ok(file) => self.file = file,
            Err(e) => return fail(self, format!("cannot open it: {e}")),
        }
        tracing::info!(path = %self.path.display(), entries = parsed.known.entries.len(), "the CDR ledger was rewritten by another pusher: read again");
        self.known = parsed.known;
        self.read_to = bytes.len() as u64;
    }

    /// Durably records that a POST is about to be sent. The caller POSTs only after this
    /// returned `Ok`, so a crash at any later point leaves the CDR marked as attempted.
    pub fn record_attempt(&mut self, key: &str) -> Result<(), LedgerError> {
        let at = now_seconds();
        self.append(key, LineState::Attempted, None, at)?;
        self.known
            .entries
            .insert(key.to_string(), CdrState::Attempted { at });
        Ok(())
    }

    /// Durably records that the partner confirmed the POST; call before acking the message.
    pub fn record_delivered(
        &mut self,
        key: &str,
        location: Option<&str>,
    ) -> Result<(), LedgerError> {
        let at = now_seconds();
        self.append(key, LineState::Delivered, location, at)?;
        self.known.entries.insert(
            key.to_string(),
            CdrState::Delivered {
                at,
                location: location.map(str::to_string),
            },
        );
        Ok(())
    }

    /// Durably forgets a CDR whose POST is known not to have reached the partner (for example
    /// the connection was refused), so that a retry is allowed.
    pub fn forget(&mut self, key: &str) -> Result<(), LedgerError> {
        let at = now_seconds();
        self.append(key, LineState::Cleared, None, at)?;
        self.known.entries.remove(key);
        Ok(())
    }

    /// Number of CDRs with a state (attempted or delivered).
    pub fn len(&self) -> usize {
        self.known.entries.len()
    }

    /// Whether no CDR has a state.
    pub fn is_empty(&self) -> bool {
        self.known.entries.is_empty()
    }

    /// The ledger file, for log messages that send a person to check it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and fsyncs it, into the file the path names now (never into one a
    /// compaction has replaced); the in-memory state is only changed by the caller after this
    /// succeeded.
    fn append(
        &mut self,
        key: &str,
        state: LineState,
        location: Option<&str>,
        at: SystemTime,
    ) -> Result<(), LedgerError> {
        let write_err = |path: &Path, source| LedgerError::Write {
            path: path.to_path_buf(),
            source,
        };
        let text = line_text(key, state, location, at).map_err(|e| write_err(&self.path, e))?;
        let _shared = self.lock.shared().map_err(|source| LedgerError::Lock {
            path: self.path.clone(),
            source,
        })?;
        if !self.poisoned
            && !file_lock::still_names(&self.file, &self.path)
                .map_err(|e| write_err(&self.path, e))?
        {
            self.reload();
        }
        if self.poisoned {
            return Err(LedgerError::Poisoned {
                path: self.path.clone(),
            });
        }
        let result = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush())
            .and_then(|()| self.file.sync_data());
        if let Err(source) = result {
            // A partial line may now end the file, and after a failed fsync the page cache is
            // not to be trusted: refuse further appends until the ledger is reopened.
            self.poisoned = true;
            return Err(write_err(&self.path, source));
        }
        Ok(())
    }
}

impl Known {
    /// One line's effect on the state.
    fn apply(&mut self, state: LineState, key: String, at: SystemTime, location: Option<String>) {
        match state {
            LineState::Attempted => {
                self.entries.insert(key, CdrState::Attempted { at });
            }
            LineState::Delivered => {
                self.entries
                    .insert(key, CdrState::Delivered { at, location });
            }
            LineState::Cleared => {
                self.entries.remove(&key);
            }
            LineState::Forgotten => self.forgot(at),
        }
    }

    fn forgot(&mut self, at: SystemTime) {
        self.forgotten_before = Some(self.forgotten_before.map_or(at, |t| t.max(at)));
    }

    /// Drops the entries recorded before `cutoff`, remembering the newest of them; returns how
    /// many were dropped.
    fn drop_older(&mut self, cutoff: Option<SystemTime>) -> usize {
        let Some(cutoff) = cutoff else {
            return 0;
        };
        let old: Vec<(String, SystemTime)> = self
            .entries
            .iter()
            .filter(|(_, state)| state.at() < cutoff)
            .map(|(key, state)| (key.clone(), state.at()))
            .collect();
        for (key, at) in &old {
            self.entries.remove(key);
            self.forgot(*at);
        }
        old.len()
    }
}

/// The ledger file opened for appending and for reading what others appended.
fn open_for_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
}

/// The lock file of the ledger at `path`: `<partner>.cdr-ledger.lock` beside it.
fn lock_path(path: &Path) -> PathBuf {
    path.with_extension("lock")
}

/// One serialized line, newline included.
fn line_text(
    key: &str,
    state: LineState,
    location: Option<&str>,
    at: SystemTime,
) -> io::Result<String> {
    let line = Line {
        key: key.to_string(),
        state,
        at: format_rfc3339(at),
        location: location.map(str::to_string),
    };
    let mut text = serde_json::to_string(&line).map_err(io::Error::other)?;
    text.push('\n');
    Ok(text)
}

/// The replayed content of a ledger file.
struct Parsed {
    known: Known,
    /// The file ends with a torn or garbled line (or without a newline) and must be rewritten
    /// before appending, or the next line would be glued onto it.
    needs_repair: bool,
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, LedgerError> {
    let mut known = Known::default();
    let mut needs_repair = !bytes.is_empty() && !bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let last_content = lines
        .iter()
        .rposition(|l| !l.iter().all(u8::is_ascii_whitespace));
    for (index, raw) in lines.iter().enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let number = index + 1;
        let (state, key, at, location) = match parse_line(raw) {
            Ok(parts) => parts,
            Err(reason) if Some(index) == last_content => {
                tracing::warn!(
                    path = %path.display(),
                    line = number,
                    reason = %reason,
                    "ignoring a torn last line in the CDR ledger (left by a crash while writing); \
                     it is cut off now"
                );
                needs_repair = true;
                continue;
            }
            Err(reason) => {
                return Err(LedgerError::Garbled {
                    path: path.to_path_buf(),
                    line: number,
                    reason,
                })
            }
        };
        known.apply(state, key, at, location);
    }
    Ok(Parsed {
        known,
        needs_repair,
    })
}

/// The ledger file of `partner` in `dir`; refuses ids that would not make a plain file name.
fn ledger_path(dir: &Path, partner: &str) -> Result<PathBuf, LedgerError> {
    if partner.is_empty() || partner.starts_with('.') || partner.contains(['/', '\\', '\0']) {
        return Err(LedgerError::InvalidPartner {
            partner: partner.to_string(),
        });
    }
    Ok(dir.join(format!("{partner}{FILE_SUFFIX}")))
}

/// Releases the CDRs `keys` of `partner` for a replay: each one recorded as *attempted* gets a
/// `cleared` line, so its next delivery is POSTed (by a running pusher too, see
/// [`CdrLedger::state`]). *Delivered* CDRs stay as they are. Never creates nor rewrites the
/// ledger, so it is safe while a pusher holds it open; it holds the ledger's shared lock from
/// reading to appending, so no compaction can drop its lines. Returns what it found per key.
pub fn release(
    dir: &Path,
    partner: &str,
    keys: &[String],
) -> Result<Vec<(String, Release)>, LedgerError> {
    let path = ledger_path(dir, partner)?;
    if !path.exists() {
        return Ok(keys
            .iter()
            .map(|key| (key.clone(), Release::NotRecorded))
            .collect());
    }
    let lock_err = |source| LedgerError::Lock {
        path: path.clone(),
        source,
    };
    let lock = LedgerLock::open(&lock_path(&path)).map_err(lock_err)?;
    let _shared = lock.shared().map_err(lock_err)?;
    let entries = match fs::read(&path) {
        Ok(bytes) => parse(&path, &bytes)?.known.entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
        Err(source) => return Err(LedgerError::Open { path, source }),
    };
    let mut found = Vec::with_capacity(keys.len());
    let mut text = String::new();
    let mut cleared: Vec<&str> = Vec::new();
    for key in keys {
        let outcome = match entries.get(key) {
            None => Release::NotRecorded,
            Some(CdrState::Delivered { location, .. }) => Release::Delivered {
                location: location.clone(),
            },
            Some(CdrState::Attempted { .. }) => {
                if !cleared.contains(&key.as_str()) {
                    cleared.push(key);
                    let line = line_text(key, LineState::Cleared, None, now_seconds()).map_err(
                        |source| LedgerError::Write {
                            path: path.clone(),
                            source,
                        },
                    )?;
                    text.push_str(&line);
                }
                Release::Released
            }
        };
        found.push((key.clone(), outcome));
    }
    if !text.is_empty() {
        append_once(&path, &text).map_err(|source| LedgerError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(found)
}

/// Appends `text` to an existing file in one write and fsyncs it.
fn append_once(path: &Path, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// State, key, time and location of one line, or why it is not a valid line.
fn parse_line(raw: &[u8]) -> Result<(LineState, String, SystemTime, Option<String>), String> {
    let line: Line = serde_json::from_slice(raw).map_err(|e| format!("not a ledger entry: {e}"))?;
    let at = parse_rfc3339(&line.at)
        .ok_or_else(|| format!("invalid time {:?} (expected YYYY-MM-DDTHH:MM:SSZ)", line.at))?;
    Ok((line.state, line.key, at, line.location))
}

/// Writes the entries to a temporary file and renames it over the ledger, so a crash leaves
/// either the old or the new file, never a mix. Returns the new file's length.
fn rewrite(dir: &Path, path: &Path, known: &Known) -> io::Result<u64> {
    let mut sorted: Vec<(&String, &CdrState)> = known.entries.iter().collect();
    sorted.sort_by(|a, b| a.1.at().cmp(&b.1.at()).then_with(|| a.0.cmp(b.0)));
    let mut text = String::new();
    if let Some(at) = known.forgotten_before {
        text.push_str(&line_text("", LineState::Forgotten, None, at)?);
    }
    for (key, state) in sorted {
        let line = match state {
            CdrState::Attempted { at } => line_text(key, LineState::Attempted, None, *at)?,
            CdrState::Delivered { at, location } => {
                line_text(key, LineState::Delivered, location.as_deref(), *at)?
            }
        };
        text.push_str(&line);
    }
    let mut tmp_name = path.as_os_str().to_os_string();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(dir)?;
    Ok(text.len() as u64)
}

/// Makes renames and new files in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened for fsync here; renames are durable on their own.
        let _ = dir;
        Ok(())
    }
}

/// Now, cut to whole seconds so the state in memory equals the state read back from the file.
fn now_seconds() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A ledger time as the ledger writes it, for messages.
pub fn format_time(at: SystemTime) -> String {
    format_rfc3339(at)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds).
fn format_rfc3339(at: SystemTime) -> String {
    let secs = match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    change_message::calendar::rfc3339_from_unix_seconds(secs)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z`; the fraction is ignored.
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let rest = &b[19..];
    let valid_rest = match rest {
        [b'Z'] => true,
        [b'.', digits @ .., b'Z'] => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !valid_rest {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    // Rejects days past the month's end (2023-02-30 would silently become March 2).
    if civil_from_days(days) != (i64::from(year), month, day) {
        return None;
    }
    // A leap second (:60) counts as :59; second precision is all the ledger needs.
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second.min(59));
    Some(match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const DAY: Duration = Duration::from_secs(86_400);

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> TestDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("pusher-cdr-ledger-test-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            TestDir(dir)
        }

        fn file(&self, partner: &str) -> PathBuf {
            self.0.join(format!("{partner}{FILE_SUFFIX}"))
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn line(key: &str, state: &str, at: &str) -> String {
        format!("{{\"key\":\"{key}\",\"state\":\"{state}\",\"at\":\"{at}\",\"location\":null}}\n")
    }

    fn recent() -> String {
        format_rfc3339(now_seconds())
    }

    #[test]
    fn states_survive_reopen() {
        let dir = TestDir::new();
        let mut ledger = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert!(ledger.is_empty());
        ledger.record_attempt("cdr-1").unwrap();
        ledger.record_attempt("cdr-2").unwrap();
        ledger
            .record_delivered("cdr-2", Some("https://partner.example/cdrs/2"))
            .unwrap();
        let (one, two) = (ledger.state("cdr-1"), ledger.state("cdr-2"));
        drop(ledger);

        let mut reopened = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert_eq!(reopened.len(), 2);
        assert_eq!(reopened.state("cdr-1"), one);
        assert_eq!(reopened.state("cdr-2"), two);
        assert!(matches!(one, Some(CdrState::Attempted { .. })));
        assert!(matches!(
            two,
            Some(CdrState::Delivered { location: Some(ref l), .. }) if l == "https://partner.example/cdrs/2"
        ));
        assert_eq!(reopened.state("cdr-3"), None);
        assert_eq!(reopened.path(), dir.file("acme"));
    }

    #[test]
    fn delivered_overrides_attempted() {
        let dir = TestDir::new();
        let mut ledger = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        ledger.record_attempt("cdr-1").unwrap();
        assert!(matches!(
            ledger.state("cdr-1"),
            Some(CdrState::Attempted { .. })
        ));
        ledger.record_delivered("cdr-1", None).unwrap();
        assert!(matches!(
            ledger.state("cdr-1"),
            Some(CdrState::Delivered { location: None, .. })
        ));
        drop(ledger);
        let mut reopened = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert!(matches!(
            reopened.state("cdr-1"),
            Some(CdrState::Delivered { location: None, .. })
        ));
        assert_eq!(reopened.len(), 1);
    }

    #[test]
    fn forget_clears_the_state_and_survives_reopen() {
        let dir = TestDir::new();
        let mut ledger = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        ledger.record_attempt("cdr-1").unwrap();
        ledger.record_attempt("cdr-2").unwrap();
        ledger.forget("cdr-1").unwrap();
        assert_eq!(ledger.state("cdr-1"), None);
        assert_eq!(ledger.len(), 1);
        drop(ledger);
        let text = fs::read_to_string(dir.file("acme")).unwrap();
        assert!(text.contains("\"state\":\"cleared\""), "{text}");

        let mut reopened = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert_eq!(reopened.state("cdr-1"), None);
        assert!(reopened.state("cdr-2").is_some());
        // A forgotten CDR can be attempted again.
        reopened.record_attempt("cdr-1").unwrap();
        assert!(reopened.state("cdr-1").is_some());
    }

    #[test]
    fn entries_older_than_retention_are_dropped_on_open_and_the_file_is_compacted() {
        let dir = TestDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let now = recent();
        let content = [
            line("old", "attempted", "2000-01-01T00:00:00Z"),
            line("old", "delivered", "2000-01-01T00:00:05Z"),
            line("fresh", "attempted", &now),
            line("fresh", "delivered", &now),
        ]
        .concat();
        fs::write(dir.file("acme"), &content).unwrap();

        let mut ledger = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert_eq!(ledger.state("old"), None);
        assert!(matches!(
            ledger.state("fresh"),
            Some(CdrState::Delivered { .. })
        ));
        let text = fs::read_to_string(dir.file("acme")).unwrap();
        let forgotten =
            r#"{"key":"","state":"forgotten","at":"2000-01-01T00:00:05Z","location":null}"#;
        assert_eq!(
            text,
            format!("{forgotten}\n{}", line("fresh", "delivered", &now))
        );
        assert!(!dir.0.join(format!("acme{FILE_SUFFIX}.tmp")).exists());
        let newest_dropped = parse_rfc3339("2000-01-01T00:00:05Z");
        assert_eq!(ledger.forgotten_before(), newest_dropped);
        drop(ledger);
        let reopened = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert_eq!(reopened.forgotten_before(), newest_dropped);
    }

    #[test]
    fn a_ledger_that_never_dropped_anything_forgot_nothing() {
        let dir = TestDir::new();
        let mut ledger = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        ledger.record_attempt("cdr-1").unwrap();
        ledger.record_delivered("cdr-1", None).unwrap();
        drop(ledger);
        let reopened = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert_eq!(reopened.forgotten_before(), None);
    }

    #[test]
    fn a_cdr_the_previous_owner_attempted_after_this_pusher_opened_the_ledger_is_not_posted() {
        // The hand-over: the new owner opens the ledger while the old one still sends.
        let dir = TestDir::new();
        let mut new_owner = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        let mut old_owner = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        old_owner.record_attempt("cdr-in-flight").unwrap();
        old_owner.record_attempt("cdr-done").unwrap();
        old_owner.record_delivered("cdr-done", None).unwrap();
        assert!(matches!(
            new_owner.state("cdr-in-flight"),
            Some(CdrState::Attempted { .. })
        ));
        assert!(matches!(
            new_owner.state("cdr-done"),
            Some(CdrState::Delivered { .. })
        ));
        assert_eq!(new_owner.state("cdr-never-sent"), None);
    }

    #[test]
    fn a_line_the_previous_owner_appends_survives_the_new_owners_compaction() {
        let dir = TestDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        fs::write(
            dir.file("acme"),
            line("old", "delivered", "2000-01-01T00:00:00Z"),
        )
        .unwrap();
        let mut old_owner = CdrLedger::open(&dir.0, "acme", 100_000 * DAY).unwrap();
        // The new owner, with the usual retention, compacts the file (renames a new one over it).
        let mut new_owner = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        old_owner.record_attempt("cdr-in-flight").unwrap();
        old_owner.record_delivered("cdr-in-flight", None).unwrap();
        old_owner.record_attempt("cdr-cut-off").unwrap();

        assert!(matches!(
            new_owner.state("cdr-in-flight"),
            Some(CdrState::Delivered { .. })
        ));
        assert!(matches!(
            new_owner.state("cdr-cut-off"),
            Some(CdrState::Attempted { .. })
        ));
        let mut later = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert!(matches!(
            later.state("cdr-in-flight"),
            Some(CdrState::Delivered { .. })
        ));
        assert!(matches!(
            later.state("cdr-cut-off"),
            Some(CdrState::Attempted { .. })
        ));
        assert!(later.forgotten_before().is_some());
    }

    #[test]
    fn the_file_is_not_rewritten_when_nothing_is_dropped() {
        let dir = TestDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let now = recent();
        let content = [
            line("a", "attempted", &now),
            line("a", "delivered", &now),
            line("b", "attempted", &now),
            line("b", "cleared", &now),
        ]
        .concat();
        fs::write(dir.file("acme"), &content).unwrap();
        let ledger = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert_eq!(ledger.len(), 1);
        assert_eq!(fs::read_to_string(dir.file("acme")).unwrap(), content);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_repaired() {
        let dir = TestDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let now = recent();
        let good = line("a", "attempted", &now);
        fs::write(
            dir.file("acme"),
            format!("{good}{{\"key\":\"b\",\"state\":\"attem"),
        )
        .unwrap();

        let mut ledger = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert!(ledger.state("a").is_some());
        assert_eq!(ledger.state("b"), None);
        assert_eq!(fs::read_to_string(dir.file("acme")).unwrap(), good);

        // New lines start on a fresh line, so the file stays readable.
        ledger.record_attempt("c").unwrap();
        drop(ledger);
        let mut reopened = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert!(reopened.state("a").is_some());
        assert!(reopened.state("c").is_some());
    }

    #[test]
    fn a_zero_filled_last_line_is_ignored_and_repaired() {
        let dir = TestDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let good = line("a", "delivered", &recent());
        let mut content = good.clone().into_bytes();
        content.extend_from_slice(&[0; 40]);
        content.push(b'\n');
        fs::write(dir.file("acme"), &content).unwrap();

        let ledger = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert_eq!(ledger.len(), 1);
        assert_eq!(fs::read_to_string(dir.file("acme")).unwrap(), good);
    }

    #[test]
    fn a_garbled_middle_line_is_an_error_naming_the_file_and_line() {
        let dir = TestDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let now = recent();
        let content = format!(
            "{}this is not json\n{}",
            line("a", "attempted", &now),
            line("b", "attempted", &now)
        );
        fs::write(dir.file("acme"), &content).unwrap();

        let err = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap_err();
        assert!(
            matches!(err, LedgerError::Garbled { line: 2, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&dir.file("acme").display().to_string()),
            "{message}"
        );
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("move the file aside"), "{message}");
        // The damaged file is left untouched for a person to inspect.
        assert_eq!(fs::read_to_string(dir.file("acme")).unwrap(), content);
    }

    #[test]
    fn an_invalid_time_in_a_middle_line_is_an_error() {
        let dir = TestDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let now = recent();
        let content = [
            line("a", "attempted", "2024-02-30T00:00:00Z"),
            line("b", "attempted", &now),
        ]
        .concat();
        fs::write(dir.file("acme"), content).unwrap();
        let err = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap_err();
        assert!(
            matches!(err, LedgerError::Garbled { line: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn an_entry_is_in_the_file_when_record_returns() {
        let dir = TestDir::new();
        let mut ledger = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        ledger.record_attempt("cdr-1").unwrap();
        // Read through a separate handle while the ledger is still open: nothing is buffered.
        let text = fs::read_to_string(dir.file("acme")).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.starts_with("{\"key\":\"cdr-1\",\"state\":\"attempted\",\"at\":\""));
        assert!(text.ends_with("Z\",\"location\":null}\n"), "{text}");
        ledger
            .record_delivered("cdr-1", Some("https://p.example/cdrs/1"))
            .unwrap();
        let text = fs::read_to_string(dir.file("acme")).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with("\"location\":\"https://p.example/cdrs/1\"}\n"));
    }

    #[test]
    fn partner_ids_that_would_escape_the_directory_are_rejected() {
        let dir = TestDir::new();
        for partner in ["", "../acme", ".hidden", "a/b"] {
            let err = CdrLedger::open(&dir.0, partner, DAY).unwrap_err();
            assert!(matches!(err, LedgerError::InvalidPartner { .. }), "{err:?}");
        }
    }

    #[test]
    fn times_round_trip_through_the_file_format() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2099-12-31T12:00:00Z",
        ] {
            let at = parse_rfc3339(text).unwrap();
            assert_eq!(format_rfc3339(at), text);
        }
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59.250Z"),
            parse_rfc3339("2024-02-29T23:59:59Z")
        );
        for bad in [
            "2024-13-01T00:00:00Z",
            "2024-02-29 23:59:59Z",
            "2024-02-29T23:59:59",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_release_lets_an_open_ledger_post_an_attempted_cdr_again_but_never_a_delivered_one() {
        let dir = TestDir::new();
        // The pusher holding the partner: one CDR with an unknown outcome, one delivered.
        let mut held = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        held.record_attempt("unknown").unwrap();
        held.record_attempt("done").unwrap();
        held.record_delivered("done", Some("https://p.example/cdrs/done"))
            .unwrap();

        // `pusher parked replay`, another process, releases all three.
        let keys = ["unknown", "done", "never-seen"].map(String::from);
        let found = release(&dir.0, "acme", &keys).unwrap();
        assert_eq!(
            found,
            vec![
                ("unknown".to_string(), Release::Released),
                (
                    "done".to_string(),
                    Release::Delivered {
                        location: Some("https://p.example/cdrs/done".into())
                    }
                ),
                ("never-seen".to_string(), Release::NotRecorded),
            ]
        );

        // The running pusher sees the release without reopening; the delivered CDR stays.
        assert_eq!(held.state("unknown"), None);
        assert!(matches!(
            held.state("done"),
            Some(CdrState::Delivered { .. })
        ));
        // Its own next lines still count, after the foreign one.
        held.record_attempt("unknown").unwrap();
        assert!(matches!(
            held.state("unknown"),
            Some(CdrState::Attempted { .. })
        ));
        drop(held);
        let mut reopened = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        assert!(matches!(
            reopened.state("unknown"),
            Some(CdrState::Attempted { .. })
        ));
        assert!(matches!(
            reopened.state("done"),
            Some(CdrState::Delivered { .. })
        ));
    }

    #[test]
    fn a_release_without_a_ledger_file_finds_nothing_and_creates_no_file() {
        let dir = TestDir::new();
        let found = release(&dir.0, "acme", &["cdr-1".to_string()]).unwrap();
        assert_eq!(found, vec![("cdr-1".to_string(), Release::NotRecorded)]);
        assert!(!dir.file("acme").exists());
        assert!(matches!(
            release(&dir.0, "../acme", &[]),
            Err(LedgerError::InvalidPartner { .. })
        ));
    }

    #[test]
    fn a_line_being_written_by_another_process_is_read_once_complete() {
        let dir = TestDir::new();
        let mut held = CdrLedger::open(&dir.0, "acme", 30 * DAY).unwrap();
        held.record_attempt("a").unwrap();
        let cleared = line("a", "cleared", &recent());
        let (head, rest) = cleared.split_at(10);
        append_once(&dir.file("acme"), head).unwrap();
        assert!(
            matches!(held.state("a"), Some(CdrState::Attempted { .. })),
            "half a line changes nothing"
        );
        append_once(&dir.file("acme"), rest).unwrap();
        assert_eq!(held.state("a"), None);
    }

    #[test]
    fn the_ledger_can_move_between_tasks() {
        fn assert_send<T: Send>() {}
        assert_send::<CdrLedger>();
    }
}
