//! MySQL 8 compressed transactions (TRANSACTION_PAYLOAD): the stream decompresses the payload
//! and hands its inner events over after it. Two of its failures are silent (a payload it
//! cannot parse or decompress yields no inner events), so the reader counts: the inner events
//! must add up to exactly the payload's uncompressed size before anything else arrives.
//! Inner events have no positions of their own: they are placed at the payload's position,
//! and their rows are numbered across the whole payload so message ids stay unique.

use mysql_common::binlog::consts::TransactionPayloadCompressionType;
use mysql_common::binlog::events::TransactionPayloadEvent;

/// The payload being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Where the payload event starts: the position of every inner event.
    pub pos: u64,
    /// Bytes the inner events must add up to.
    pub expected: u64,
    /// Bytes of the inner events seen so far.
    pub seen: u64,
    /// Rows numbered so far across the payload's rows events.
    pub rows: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the compressed transaction cannot be parsed: {0}")]
    Unparsable(String),
    #[error(
        "the compressed transaction yielded {seen} bytes of events where its header announces \
         {expected} (it failed to decompress, or is corrupt)"
    )]
    Incomplete { seen: u64, expected: u64 },
    #[error(
        "the compressed transaction's events overrun its announced size ({seen} bytes of \
         {expected})"
    )]
    Overrun { seen: u64, expected: u64 },
}

impl Payload {
    /// The size the inner events must add up to.
    pub fn expected_size(event: &TransactionPayloadEvent<'_>) -> u64 {
        if event.algorithm() == TransactionPayloadCompressionType::NONE {
            event.payload_size()
        } else {
            event.uncompressed_size()
        }
    }

    pub fn new(pos: u64, expected: u64) -> Payload {
        Payload {
            pos,
            expected,
            seen: 0,
            rows: 0,
        }
    }

    /// Counts an inner event of `size` bytes; true when the payload is complete.
    pub fn inner(&mut self, size: u64) -> Result<bool, PayloadError> {
        self.seen += size;
        if self.seen > self.expected {
            return Err(PayloadError::Overrun {
                seen: self.seen,
                expected: self.expected,
            });
        }
        Ok(self.seen == self.expected)
    }

    /// An event from outside arrived: the payload must be complete by now.
    pub fn finish(&self) -> Result<(), PayloadError> {
        if self.seen == self.expected {
            Ok(())
        } else {
            Err(PayloadError::Incomplete {
                seen: self.seen,
                expected: self.expected,
            })
        }
    }

    /// The next row number inside the payload.
    pub fn next_row(&mut self) -> u32 {
        let row = self.rows;
        self.rows += 1;
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_events_must_add_up_to_the_announced_size() {
        let mut payload = Payload::new(120, 100);
        assert_eq!(payload.inner(60), Ok(false));
        assert_eq!(
            payload.finish(),
            Err(PayloadError::Incomplete {
                seen: 60,
                expected: 100
            })
        );
        assert_eq!(payload.inner(40), Ok(true));
        assert_eq!(payload.finish(), Ok(()));
        assert!(matches!(
            payload.inner(1),
            Err(PayloadError::Overrun { .. })
        ));
        // A payload that yields nothing (the library's answer to a zstd error) is incomplete.
        assert!(Payload::new(4, 10).finish().is_err());
    }

    #[test]
    fn rows_are_numbered_across_the_payload() {
        let mut payload = Payload::new(120, 100);
        assert_eq!(
            (payload.next_row(), payload.next_row(), payload.next_row()),
            (0, 1, 2)
        );
    }

    #[test]
    fn expected_size_is_the_uncompressed_one_when_compressed() {
        let zstd = TransactionPayloadEvent::new(
            10,
            TransactionPayloadCompressionType::ZSTD,
            300,
            vec![0u8; 10],
        );
        assert_eq!(Payload::expected_size(&zstd), 300);
        let plain = TransactionPayloadEvent::new(
            10,
            TransactionPayloadCompressionType::NONE,
            0,
            vec![0u8; 10],
        );
        assert_eq!(Payload::expected_size(&plain), 10);
    }
}
