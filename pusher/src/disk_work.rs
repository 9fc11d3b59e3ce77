//! Blocking file work (the CDR ledger's appends with their fsync, its compaction on open) run
//! from async code without holding up an async worker: on the multi-threaded runtime the
//! worker hands its other tasks to another thread for the duration, so one slow disk does not
//! stall the deliveries of every other partner on that worker.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work`, which blocks on the disk, off the async worker where the runtime allows it
/// (a multi-threaded one); elsewhere (a single-threaded runtime, as in unit tests, or no
/// runtime) it runs in place.
pub fn off_worker<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_the_work_on_a_multi_threaded_runtime() {
        assert_eq!(off_worker(|| 6 * 7), 42);
    }

    #[tokio::test]
    async fn runs_the_work_in_place_on_a_single_threaded_runtime() {
        assert_eq!(off_worker(|| "in place"), "in place");
    }

    #[test]
    fn runs_the_work_without_a_runtime() {
        assert_eq!(off_worker(|| 1), 1);
    }
}
