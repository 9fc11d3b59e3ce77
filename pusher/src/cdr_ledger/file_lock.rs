//! Orders the processes that write one partner's CDR ledger.
//!
//! Why: more than one process writes a ledger. During a hand-over the pusher giving a partner
//! up still records the outcome of its last calls while the pusher taking it over has opened
//! the ledger already, and `pusher parked replay` appends releases while either runs. Appends of
//! whole lines are safe together, but a compaction rewrites the ledger by renaming a new file
//! over it, and a line appended to the old file at that moment would be gone, and with it the
//! knowledge that a CDR was POSTed. A lock file next to the ledger (never renamed or removed)
//! orders them: appending, and reading what others appended, share the lock; a compaction
//! holds it alone. The lock is advisory (`flock` on Unix), so it binds pushers and the
//! `pusher` command only, which are the only writers.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// The lock file of one ledger, opened once per ledger handle.
#[derive(Debug)]
pub(super) struct LedgerLock {
    file: File,
}

/// A lock taken on a [`LedgerLock`]; released when dropped.
pub(super) struct Held(File);

impl Drop for Held {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock too; unlocking first makes it immediate.
        let _ = self.0.unlock();
    }
}

impl LedgerLock {
    /// Opens (or creates) the lock file at `path`.
    pub(super) fn open(path: &Path) -> io::Result<LedgerLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        Ok(LedgerLock { file })
    }

    /// Waits for any compaction to end; appends and reads may hold this together.
    pub(super) fn shared(&self) -> io::Result<Held> {
        let handle = self.file.try_clone()?;
        handle.lock_shared()?;
        Ok(Held(handle))
    }

    /// Waits until nobody appends or reads, for a compaction.
    pub(super) fn exclusive(&self) -> io::Result<Held> {
        let handle = self.file.try_clone()?;
        handle.lock()?;
        Ok(Held(handle))
    }
}

/// Whether `path` still names the file `open` was opened from (not replaced by a compaction
/// in another process, nor removed).
pub(super) fn still_names(open: &File, path: &Path) -> io::Result<bool> {
    let now = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let held = open.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        Ok(now.dev() == held.dev() && now.ino() == held.ino())
    }
    #[cfg(not(unix))]
    {
        // Without inode numbers a replaced file cannot be told apart; sizes going back is the
        // one sign available.
        Ok(now.len() >= held.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_over_file_is_told_apart_from_the_one_held_open() {
        let dir = std::env::temp_dir().join(format!("ledger-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.jsonl");
        std::fs::write(&path, b"one\n").unwrap();
        let open = File::open(&path).unwrap();
        assert!(still_names(&open, &path).unwrap());
        let tmp = dir.join("a.jsonl.tmp");
        std::fs::write(&tmp, b"two\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(!still_names(&open, &path).unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(!still_names(&open, &path).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_exclusive_lock_waits_for_a_shared_one() {
        let dir = std::env::temp_dir().join(format!("ledger-lock-wait-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.lock");
        let reader = LedgerLock::open(&path).unwrap();
        let compactor = LedgerLock::open(&path).unwrap();
        let shared = reader.shared().unwrap();
        let probe = compactor.file.try_clone().unwrap();
        assert!(matches!(
            probe.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(shared);
        let alone = compactor.exclusive().unwrap();
        drop(alone);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
