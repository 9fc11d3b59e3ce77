//! The bridge's durable progress: the binlog position up to which every captured change is
//! confirmed by the broker. Written atomically so a crash at any moment leaves either the old
//! or the new checkpoint, never a torn file.

use crate::sync::state::SyncState;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A resumable position: always a transaction boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Binlog file and the position of the first event after the last finished transaction.
    pub file: String,
    pub pos: u64,
    /// The server's GTID state at this position (MariaDB GTID list `0-1-42`, MySQL GTID set
    /// `uuid:1-42`), where the server uses GTIDs: the same position in terms that survive a
    /// failover to another server of the replication topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// The `seq` the next captured change will get: replaying from this position assigns the
    /// same numbers again, which is what makes `seq` stable across restarts.
    pub next_seq: u64,
    /// When it was written (RFC 3339 UTC), for operators.
    #[serde(default)]
    pub saved_at: String,
    /// Initial syncs (waiting, running with their cursors, recently ended), as of this
    /// position; absent when the bridge never ran one (and in checkpoints of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Arc<SyncState>>,
    /// The server `file` and `pos` belong to; absent in checkpoints of older versions (taken
    /// as the server the bridge is pointed at, and written at the next save).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerIdentity>,
}

/// Which server a binlog file and position belong to, read once when the bridge connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// `@@server_id`.
    pub server_id: u32,
    /// `@@server_uuid` (MySQL; MariaDB has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_uuid: Option<String>,
    /// `@@gtid_domain_id` (MariaDB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_domain_id: Option<u32>,
    /// `host:port` the bridge reached it at (`source.host`, `source.port`).
    pub address: String,
}

impl ServerIdentity {
    /// The same server: the same uuid where both have one (MySQL), else the same server_id,
    /// GTID domain and address. A replica promoted behind the same address (a VIP or DNS move)
    /// has its own server_id, as replication requires; two unrelated servers with the default
    /// server_id differ by address.
    pub fn is_same_server(&self, other: &ServerIdentity) -> bool {
        match (&self.server_uuid, &other.server_uuid) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => {
                self.server_id == other.server_id
                    && self.gtid_domain_id == other.gtid_domain_id
                    && self.address == other.address
            }
        }
    }
}

impl std::fmt::Display for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (server_id {}", self.address, self.server_id)?;
        if let Some(uuid) = &self.server_uuid {
            write!(f, ", server_uuid {uuid}")?;
        }
        if let Some(domain) = self.gtid_domain_id {
            write!(f, ", gtid_domain_id {domain}")?;
        }
        f.write_str(")")
    }
}

/// The `seq` of the first change when there is no checkpoint: the time now in microseconds
/// since the Unix epoch.
///
/// Without a checkpoint the bridge cannot know the numbers it gave before (a lost state
/// volume, a checkpoint moved away after a purged binlog, a re-point). Starting again at 1
/// would make every consumer that remembers the newest `seq` per record take the new changes
/// for old ones and drop them. A lineage started later starts higher than every number an
/// earlier one gave, as long as the earlier one gave fewer numbers than microseconds passed
/// since it started (a million changes per second, sustained since its start) and the clock
/// has not been set back by more than the time since then. It stays below 2^53 until the
/// year 2255, so JSON readers that hold numbers as doubles read it exactly.
pub fn first_seq_of_new_lineage() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
        .max(1)
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "cannot read checkpoint file {path}: {source}; fix its permissions, or move it away to \
         start over from `source.start` (changes since it was written would then be missed)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "checkpoint file {path} is not a valid checkpoint ({message}); restore it from a backup, \
         or move it away to start over from `source.start` (changes since it was written would \
         then be missed)"
    )]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write checkpoint file {path}: {source}; check free space and permissions of its directory")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    pub fn new(path: &Path) -> CheckpointStore {
        CheckpointStore {
            path: path.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| CheckpointError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    /// [`save`](Self::save) on tokio's blocking pool: the two fsyncs take milliseconds, which an
    /// async worker must not spend waiting for the disk.
    pub async fn save_off_thread(&self, checkpoint: Checkpoint) -> Result<(), CheckpointError> {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.save(&checkpoint)).await {
            Ok(result) => result,
            Err(error) => Err(CheckpointError::Write {
                path: self.path.clone(),
                source: std::io::Error::other(format!("the checkpoint writer failed: {error}")),
            }),
        }
    }

    /// Temp file, fsync, rename over the old one, fsync the directory: the rename is the commit.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let write_err = |source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(write_err)?;
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        let body = serde_json::to_vec_pretty(checkpoint).unwrap_or_default();
        {
            let mut file = File::create(&tmp).map_err(write_err)?;
            file.write_all(&body).map_err(write_err)?;
            file.write_all(b"\n").map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
        }
        fs::rename(&tmp, &self.path).map_err(write_err)?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(write_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bridge-cp-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn saved_checkpoint_loads_back_and_leaves_no_temp_file() {
        let dir = temp_dir("roundtrip");
        let store = CheckpointStore::new(&dir.join("sub/cp.json"));
        assert_eq!(store.load().unwrap(), None);
        let cp = Checkpoint {
            file: "binlog.000002".into(),
            pos: 1234,
            gtid: Some("0-1-9".into()),
            next_seq: 77,
            saved_at: "2026-01-01T00:00:00Z".into(),
            sync: None,
            server: Some(ServerIdentity {
                server_id: 1,
                server_uuid: None,
                gtid_domain_id: Some(0),
                address: "db:3306".into(),
            }),
        };
        store.save(&cp).unwrap();
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp));
        assert!(!dir.join("sub/cp.json.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checkpoints_without_sync_state_still_load_and_sync_state_round_trips() {
        let dir = temp_dir("sync");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cp.json");
        fs::write(&path, r#"{"file":"binlog.000001","pos":4,"next_seq":1}"#).unwrap();
        let store = CheckpointStore::new(&path);
        let old = store.load().unwrap().unwrap();
        assert_eq!(old.sync, None);
        assert_eq!(old.server, None);
        let mut state = SyncState::default();
        state.waiting.push(crate::sync::state::SyncJob {
            sync_id: "s1".into(),
            queue: "ocpi.b".into(),
            tables: vec![crate::sync::state::TableProgress::new("app.t")],
            state: crate::sync::state::Outcome::Waiting,
            reason: None,
            requested_at: String::new(),
            started_at: String::new(),
            ended_at: String::new(),
        });
        let cp = Checkpoint {
            sync: Some(Arc::new(state)),
            ..old
        };
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_checkpoint_is_a_clear_error() {
        let dir = temp_dir("corrupt");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cp.json");
        fs::write(&path, "{not json").unwrap();
        let err = CheckpointStore::new(&path).load().unwrap_err().to_string();
        assert!(err.contains("not a valid checkpoint"), "{err}");
        assert!(err.contains("cp.json"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
