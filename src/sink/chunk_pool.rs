//! Line chunks back from the sinks once every one of them is done with
//! them (the last [`SharedLines`](super::chunks::SharedLines) holding a
//! chunk gives it back), for the Processors to fill again.
//!
//! Each snapshot's lines are fresh memory otherwise: with glibc's mmap
//! threshold pinned below a chunk's size (main.rs), every 256 KiB chunk is
//! mapped, faulted in page by page and unmapped again, some 70 MB per cycle
//! on the engine benchmark's shape, which cost about a fifth of the daemon's
//! CPU (BENCHMARKS.md, "Steady-state CPU"). The pool keeps at most as many
//! chunks as the latest snapshot needed, so that it never holds more than
//! one snapshot's lines, and a Graphite outage draining a long backlog
//! returns the surplus to the system.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::chunks::LINE_CHUNK;

/// Spare chunks of [`LINE_CHUNK`] bytes' capacity, shared by the
/// Processors (which take) and the sinks' shared chunks (which give back).
#[derive(Debug, Default)]
pub struct ChunkPool {
    spare: Mutex<Vec<Vec<u8>>>,
    /// How many spare chunks to keep at most.
    limit: AtomicUsize,
}

impl ChunkPool {
    /// An empty pool keeping no chunk until [`limit_to`](Self::limit_to)
    /// says how many a snapshot needs.
    pub fn new() -> ChunkPool {
        ChunkPool::default()
    }

    /// The spare chunks. A panic while they were locked cannot have left
    /// them inconsistent (a push or pop of one Vec), so poisoning is ignored.
    fn locked(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.spare.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An empty chunk of [`LINE_CHUNK`] bytes' capacity: a spare one if any.
    pub fn take(&self) -> Vec<u8> {
        let spare = self.locked().pop();
        spare.unwrap_or_else(|| Vec::with_capacity(LINE_CHUNK))
    }

    /// Keeps `chunk` for a later [`take`](Self::take) if it is one of the
    /// pool's size and the pool is not full; else it is freed.
    pub fn give_back(&self, mut chunk: Vec<u8>) {
        if chunk.capacity() != LINE_CHUNK {
            return;
        }
        let mut spare = self.locked();
        if spare.len() < self.limit.load(Ordering::Relaxed) {
            chunk.clear();
            spare.push(chunk);
        }
    }

    /// The latest snapshot took `chunks` chunks: keep at most that many,
    /// freeing the surplus now.
    pub fn limit_to(&self, chunks: usize) {
        self.limit.store(chunks, Ordering::Relaxed);
        let mut spare = self.locked();
        spare.truncate(chunks);
        spare.shrink_to(chunks);
    }

    /// Spare chunks held now.
    pub fn spare(&self) -> usize {
        self.locked().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_given_back_is_taken_again_without_a_new_allocation() {
        let pool = ChunkPool::new();
        pool.limit_to(2);
        let mut chunk = pool.take();
        assert_eq!(chunk.capacity(), LINE_CHUNK);
        chunk.extend_from_slice(b"a 1 2\n");
        let at = chunk.as_ptr();
        pool.give_back(chunk);
        assert_eq!(pool.spare(), 1);
        let again = pool.take();
        assert_eq!(again.as_ptr(), at);
        assert!(again.is_empty(), "a recycled chunk comes back empty");
        assert_eq!(pool.spare(), 0);
    }

    #[test]
    fn the_pool_keeps_no_more_than_the_latest_snapshot_needed() {
        let pool = ChunkPool::new();
        // Nothing is kept before a snapshot said how many it needs.
        pool.give_back(pool.take());
        assert_eq!(pool.spare(), 0);
        pool.limit_to(3);
        let chunks: Vec<Vec<u8>> = (0..5).map(|_| pool.take()).collect();
        for chunk in chunks {
            pool.give_back(chunk);
        }
        assert_eq!(pool.spare(), 3);
        // A smaller snapshot frees the surplus at once.
        pool.limit_to(1);
        assert_eq!(pool.spare(), 1);
    }

    #[test]
    fn chunks_of_another_size_are_not_kept() {
        let pool = ChunkPool::new();
        pool.limit_to(4);
        pool.give_back(Vec::with_capacity(100));
        let mut grown = pool.take();
        grown.resize(LINE_CHUNK + 1, b'x');
        pool.give_back(grown);
        assert_eq!(pool.spare(), 0);
    }
}
