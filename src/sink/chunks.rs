//! The lines of one snapshot as a list of chunks of whole lines, each at
//! most [`LINE_CHUNK`] bytes (a line is never split, so only a chunk of one
//! longer line is larger), from the Processor to the sinks.
//!
//! One contiguous buffer for a large snapshot (80 MB, 1.2 M lines) grew by
//! doubling, and the Graphite sink copied it again, chunk by chunk, to write
//! it, counting its lines twice more. Chunks of the sink's own write size
//! are written as they are, without a copy. Made with
//! [`LineChunks::recycling`], they come from a [`ChunkPool`] and go back to
//! it once every sink is done with them, so that the next snapshot fills
//! the same memory.
//!
//! Once made, the chunks are [`SharedLines`]: every sink gets the same
//! chunks (reference-counted, never copied per sink), and a chunk returns to
//! the pool when the last sink lets go of it.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;

use super::chunk_pool::ChunkPool;
use crate::engine::BufferSink;

/// The size of a chunk: the Graphite sink's write size.
pub const LINE_CHUNK: usize = 256 * 1024;

/// Room left in a chunk the engine writes into for the lines of the group
/// it is writing when the chunk is handed over: one group's lines (at most
/// ~100 metrics, times the number of group paths) rarely take 8 KiB. A
/// group that takes more makes its chunk grow (the sink copies it).
const GROUP_ROOM: usize = 32 * 1024;

/// Newline-terminated lines in chunks of whole lines.
#[derive(Debug, Default, Clone)]
pub struct LineChunks {
    chunks: Vec<Vec<u8>>,
    /// Where the unfinished line of the last chunk starts (its length when
    /// it ends with a line end; 0 while it holds no line end).
    line_start: usize,
    /// Where new chunks come from (else they are allocated).
    pool: Option<Arc<ChunkPool>>,
}

impl LineChunks {
    /// No lines.
    pub fn new() -> LineChunks {
        LineChunks::default()
    }

    /// No lines; chunks started by writes are taken from `pool`.
    pub fn recycling(pool: Arc<ChunkPool>) -> LineChunks {
        LineChunks {
            pool: Some(pool),
            ..LineChunks::default()
        }
    }

    /// Adds a chunk of whole lines as it is (an empty one is ignored).
    pub fn push_chunk(&mut self, chunk: Vec<u8>) {
        if !chunk.is_empty() {
            self.line_start = memchr::memrchr(b'\n', &chunk).map_or(0, |i| i + 1);
            self.chunks.push(chunk);
        }
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> &[Vec<u8>] {
        &self.chunks
    }

    /// The chunks, in order, owned.
    pub fn into_chunks(self) -> Vec<Vec<u8>> {
        self.chunks
    }

    /// All lines in one buffer (a copy).
    pub fn concat(&self) -> Vec<u8> {
        self.chunks.concat()
    }

    /// Starts a new chunk, moving into it the unfinished line that ends the
    /// current one (if any), so that every chunk holds whole lines.
    fn start_chunk(&mut self) {
        let mut next = self.fresh();
        if let Some(last) = self.chunks.last_mut() {
            if let Some(tail) = last.get(self.line_start..) {
                next.extend_from_slice(tail);
            }
            last.truncate(self.line_start);
        }
        self.line_start = 0;
        self.chunks.push(next);
    }
}

/// The engine writes straight into the chunks
/// ([`crate::engine::process_snapshot_into`]).
impl BufferSink for LineChunks {
    fn hand_over_at(&self) -> usize {
        LINE_CHUNK - GROUP_ROOM
    }

    fn fresh(&mut self) -> Vec<u8> {
        match &self.pool {
            Some(pool) => pool.take(),
            None => Vec::with_capacity(LINE_CHUNK),
        }
    }

    fn take(&mut self, lines: Vec<u8>) {
        if lines.is_empty() {
            if let Some(pool) = &self.pool {
                pool.give_back(lines);
            }
        } else {
            self.push_chunk(lines);
        }
    }

    fn copy(&mut self, lines: &[u8]) {
        // Writing to memory cannot fail.
        let _ = self.write_all(lines);
    }
}

/// A snapshot's lines as handed to the sinks: the chunks of a
/// [`LineChunks`], shared. Cloning one shares the chunks; a chunk made from
/// the pool goes back to it once no clone holds it any more.
#[derive(Debug, Clone, Default)]
pub struct SharedLines(Vec<Bytes>);

impl SharedLines {
    /// The chunks, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.0
    }

    /// The chunks, in order, owned (each still shared with the clones).
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.0
    }

    /// Newline-terminated lines in all.
    pub fn count_lines(&self) -> usize {
        self.0
            .iter()
            .map(|chunk| memchr::memchr_iter(b'\n', chunk).count())
            .sum()
    }
}

impl From<LineChunks> for SharedLines {
    fn from(lines: LineChunks) -> SharedLines {
        let LineChunks { chunks, pool, .. } = lines;
        SharedLines(
            chunks
                .into_iter()
                .map(|bytes| match &pool {
                    Some(pool) => Bytes::from_owner(Pooled {
                        bytes,
                        pool: Arc::clone(pool),
                    }),
                    None => Bytes::from(bytes),
                })
                .collect(),
        )
    }
}

impl From<Vec<u8>> for SharedLines {
    fn from(lines: Vec<u8>) -> SharedLines {
        SharedLines::from(LineChunks::from(lines))
    }
}

/// A chunk from the pool, given back when the last [`Bytes`] sharing it
/// is dropped.
struct Pooled {
    bytes: Vec<u8>,
    pool: Arc<ChunkPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.bytes));
    }
}

impl From<Vec<u8>> for LineChunks {
    fn from(lines: Vec<u8>) -> LineChunks {
        let mut chunks = LineChunks::new();
        chunks.push_chunk(lines);
        chunks
    }
}

impl Write for LineChunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.chunks.is_empty() {
                self.start_chunk();
            }
            let Some(last) = self.chunks.last_mut() else {
                break;
            };
            let room = LINE_CHUNK.saturating_sub(last.len());
            // Up to the last line end that fits. A chunk never goes past
            // LINE_CHUNK, except to hold one line longer than that whole:
            // the sink writes a chunk that fits as it is, and copies any
            // other (Backlog::take_front_batch).
            let take = if rest.len() <= room {
                rest.len()
            } else if let Some(i) = memchr::memrchr(b'\n', rest.get(..room).unwrap_or(rest)) {
                i + 1
            } else if self.line_start == 0 {
                // The chunk holds no line end: its one line goes on to its end.
                memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1)
            } else {
                self.start_chunk();
                continue;
            };
            let (now, later) = rest.split_at(take.min(rest.len()));
            if let Some(i) = memchr::memrchr(b'\n', now) {
                self.line_start = last.len() + i + 1;
            }
            last.extend_from_slice(now);
            rest = later;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk holds whole lines, and at most LINE_CHUNK bytes unless
    /// it is one longer line; together they are `want`.
    fn check(c: &LineChunks, want: &[u8]) {
        assert!(c.concat() == want);
        for chunk in c.chunks() {
            assert!(!chunk.is_empty());
            let whole = chunk.ends_with(b"\n") || std::ptr::eq(chunk, c.chunks().last().unwrap());
            assert!(whole, "a chunk ends inside a line");
            let body = chunk.len().saturating_sub(1);
            let one_line = memchr::memchr(b'\n', &chunk[..body]).is_none();
            assert!(
                chunk.len() <= LINE_CHUNK || one_line,
                "a chunk of {} bytes and several lines",
                chunk.len()
            );
        }
    }

    #[test]
    fn chunks_hold_whole_lines_whatever_the_writes() {
        let mut want = Vec::new();
        for i in 0..40_000 {
            want.extend_from_slice(format!("a.b.c{i} {} 1700000000\n", i * 7919).as_bytes());
        }
        // A line longer than a chunk, in the middle.
        want.extend_from_slice(&vec![b'x'; LINE_CHUNK + 10]);
        want.extend_from_slice(b" 1 2\nlast 1 2\n");
        for piece in [1, 7, 1000, 128 * 1024, LINE_CHUNK, 3 * LINE_CHUNK] {
            let mut c = LineChunks::new();
            for part in want.chunks(piece) {
                c.write_all(part).unwrap();
            }
            check(&c, &want);
            assert!(c.chunks().len() >= want.len() / LINE_CHUNK);
        }
        // A line at a time, as the engine writes.
        let mut c = LineChunks::new();
        for line in want.split_inclusive(|&b| b == b'\n') {
            c.write_all(line).unwrap();
        }
        check(&c, &want);
    }

    #[test]
    fn the_graphite_sink_takes_every_chunk_without_a_copy() {
        let mut c = LineChunks::new();
        for i in 0..40_000 {
            c.write_all(format!("some.metric.path{i} {} 1700000000\n", i * 31).as_bytes())
                .unwrap();
        }
        assert!(c.chunks().len() > 3);
        let mut backlog = crate::sink::backlog::Backlog::new(usize::MAX);
        for chunk in c.into_chunks() {
            let len = chunk.len();
            backlog.push(chunk);
            let (taken, _) = backlog.take_front_batch(LINE_CHUNK).unwrap();
            assert_eq!(taken.len(), len);
        }
    }

    #[test]
    fn shared_chunks_go_back_to_the_pool_once_the_last_sink_drops_them() {
        let pool = Arc::new(ChunkPool::new());
        pool.limit_to(4);
        let mut c = LineChunks::recycling(Arc::clone(&pool));
        c.write_all(b"a 1 2\nb 1 2\n").unwrap();
        let at = c.chunks()[0].as_ptr();
        let graphite = SharedLines::from(c);
        let local_store = graphite.clone();
        // The same memory for both sinks, not a copy.
        assert_eq!(graphite.chunks()[0].as_ptr(), at);
        assert_eq!(local_store.chunks()[0].as_ptr(), at);
        assert_eq!(local_store.count_lines(), 2);
        drop(graphite);
        assert_eq!(pool.spare(), 0, "local-store still holds the chunk");
        // A slice of it (a partly written chunk) holds it too.
        let tail = local_store.chunks()[0].slice(6..);
        drop(local_store);
        assert_eq!(pool.spare(), 0);
        drop(tail);
        assert_eq!(pool.spare(), 1);
        let again = pool.take();
        assert_eq!(again.as_ptr(), at);
    }

    #[test]
    fn pushed_chunks_stay_as_they_are() {
        let mut c = LineChunks::from(b"a 1 2\n".to_vec());
        c.push_chunk(Vec::new());
        c.push_chunk(b"b 1 2\n".to_vec());
        assert_eq!(c.chunks().len(), 2);
        assert_eq!(c.concat(), b"a 1 2\nb 1 2\n");
        assert!(LineChunks::new().chunks().is_empty());
    }
}
