//! How many rows the next chunk of an initial sync reads: at most `sync.chunk_size`, and few
//! enough that a chunk stays near `sync.chunk_bytes` (rows as held in memory), so that about
//! `chunks_in_flight` chunks of large rows cannot take gigabytes. A scan starts small and
//! doubles while chunks stay under half the byte bound, and shrinks in proportion when one goes
//! over it. A SELECT with LIMIT is the only control, so one chunk may overshoot once.

/// The first chunk of a scan reads at most this many rows.
const FIRST: usize = 16;

/// Rows per chunk, adapted to the sizes seen.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimit {
    rows: usize,
    max_rows: usize,
    max_bytes: usize,
}

impl ChunkLimit {
    pub fn new(max_rows: usize, max_bytes: usize) -> ChunkLimit {
        ChunkLimit {
            rows: FIRST.min(max_rows).max(1),
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// The LIMIT of the next chunk.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// A chunk of `rows` rows took `bytes`: sets the next chunk's limit.
    pub fn observe(&mut self, rows: usize, bytes: usize) {
        if rows == 0 {
            return;
        }
        if bytes > self.max_bytes {
            let fitting = (self.max_bytes as u128 * rows as u128 / bytes as u128) as usize;
            self.rows = fitting.clamp(1, self.max_rows);
        } else if bytes <= self.max_bytes / 2 {
            self.rows = (self.rows * 2).min(self.max_rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_rows_grow_the_chunk_to_chunk_size() {
        let mut limit = ChunkLimit::new(1024, 4 << 20);
        let mut seen = vec![limit.rows()];
        while limit.rows() < 1024 {
            let rows = limit.rows();
            limit.observe(rows, rows * 200);
            seen.push(limit.rows());
        }
        assert_eq!(seen, [16, 32, 64, 128, 256, 512, 1024]);
        limit.observe(1024, 1024 * 200);
        assert_eq!(limit.rows(), 1024);
    }

    #[test]
    fn large_rows_shrink_the_chunk_to_the_byte_bound() {
        let mut limit = ChunkLimit::new(1024, 4 << 20);
        limit.observe(16, 16 << 20);
        assert_eq!(limit.rows(), 4, "1 MiB rows: four fit in 4 MiB");
        limit.observe(4, 4 << 20);
        assert_eq!(limit.rows(), 4, "at the bound: unchanged");
        limit.observe(4, 40 << 20);
        assert_eq!(limit.rows(), 1, "never below one row");
    }
}
