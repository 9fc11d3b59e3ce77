//! How much the binlog reader may read ahead of the pipeline, in bytes: the channel between
//! them holds at most `source.read_ahead_bytes` of rows (their approximate in-memory size), as
//! well as at most a fixed number of events. Without a byte bound, rows of a megabyte would let
//! the channel hold a gigabyte. A row larger than the whole budget still passes, alone.
//!
//! The reader reserves a row's share before sending it; the pipeline gives it back once it has
//! taken the row (into the dedup buffer, which has its own bound).

use std::sync::Arc;

use tokio::sync::Semaphore;

/// The budget is counted in units of this many bytes (a semaphore's permits are a `u32`).
const UNIT: usize = 1024;

#[derive(Clone, Debug)]
pub struct ReadAhead {
    budget: Arc<Semaphore>,
    max_units: u32,
}

impl ReadAhead {
    pub fn new(max_bytes: usize) -> ReadAhead {
        let max_units = u32::try_from(max_bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        ReadAhead {
            budget: Arc::new(Semaphore::new(max_units as usize)),
            max_units,
        }
    }

    fn units(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.max_units)
    }

    /// Waits until a row of `bytes` fits (reader side).
    pub async fn reserve(&self, bytes: usize) {
        if let Ok(permit) = self.budget.acquire_many(self.units(bytes)).await {
            permit.forget();
        }
    }

    /// Gives a taken row's share back (pipeline side).
    pub fn release(&self, bytes: usize) {
        self.budget.add_permits(self.units(bytes) as usize);
    }

    /// Bytes that may still be read ahead now.
    pub fn available_bytes(&self) -> usize {
        self.budget.available_permits() * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn rows_wait_while_the_budget_is_spent_and_go_on_when_it_is_given_back() {
        let ahead = ReadAhead::new(4 * UNIT);
        ahead.reserve(3 * UNIT).await;
        let blocked = tokio::time::timeout(Duration::from_millis(50), ahead.reserve(2 * UNIT));
        assert!(
            blocked.await.is_err(),
            "2 KiB more do not fit in 1 KiB left"
        );
        ahead.release(3 * UNIT);
        ahead.reserve(2 * UNIT).await;
        assert_eq!(ahead.available_bytes(), 2 * UNIT);
    }

    #[tokio::test]
    async fn a_row_larger_than_the_budget_passes_alone() {
        let ahead = ReadAhead::new(4 * UNIT);
        ahead.reserve(100 * UNIT).await;
        assert_eq!(ahead.available_bytes(), 0);
        ahead.release(100 * UNIT);
        assert_eq!(ahead.available_bytes(), 4 * UNIT);
    }
}
