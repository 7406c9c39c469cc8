//! The bounded FIFO backlog in front of the Graphite connection (SPEC §5).
//!
//! Lines are kept as the chunks the engine produced, shared with the other
//! sinks ([`Bytes`]), never copied or split into per-line allocations. Order is preserved. When more than
//! `capacity` lines wait, the OLDEST are dropped and counted — the newest
//! data is the most useful once Graphite is back (vector's `WhenFull`
//! policies, made explicit).

use std::collections::VecDeque;

use bytes::Bytes;

/// Lines waiting for Graphite, oldest first.
#[derive(Debug)]
pub struct Backlog {
    batches: VecDeque<Batch>,
    lines: usize,
    capacity: usize,
    dropped: u64,
}

/// One pushed buffer, of which `bytes[start..]` still waits.
#[derive(Debug)]
struct Batch {
    bytes: Bytes,
    start: usize,
    lines: usize,
}

/// What one [`Backlog::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// Lines added.
    pub accepted: usize,
    /// Oldest lines dropped to stay within capacity.
    pub dropped: usize,
}

impl Backlog {
    /// An empty backlog holding at most `capacity` lines (at least one).
    pub fn new(capacity: usize) -> Backlog {
        Backlog {
            batches: VecDeque::new(),
            lines: 0,
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Appends newline-terminated lines; a final line without `\n` gets one.
    /// Drops the oldest lines if the backlog would hold more than capacity.
    pub fn push(&mut self, bytes: impl Into<Bytes>) -> Pushed {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Pushed {
                accepted: 0,
                dropped: 0,
            };
        }
        let bytes = terminated(bytes);
        let lines = memchr::memchr_iter(b'\n', &bytes).count();
        self.batches.push_back(Batch {
            bytes,
            start: 0,
            lines,
        });
        self.lines += lines;
        let dropped = self.drop_oldest(self.lines.saturating_sub(self.capacity));
        Pushed {
            accepted: lines,
            dropped,
        }
    }

    /// Puts lines taken out earlier back in front of everything else (a
    /// chunk a broken connection may not have delivered). They are the
    /// oldest, so they are the first dropped if capacity is exceeded.
    pub fn push_front(&mut self, bytes: impl Into<Bytes>) -> Pushed {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Pushed {
                accepted: 0,
                dropped: 0,
            };
        }
        let bytes = terminated(bytes);
        let lines = memchr::memchr_iter(b'\n', &bytes).count();
        self.batches.push_front(Batch {
            bytes,
            start: 0,
            lines,
        });
        self.lines += lines;
        let dropped = self.drop_oldest(self.lines.saturating_sub(self.capacity));
        Pushed {
            accepted: lines,
            dropped,
        }
    }

    fn drop_oldest(&mut self, mut excess: usize) -> usize {
        let mut dropped = 0;
        while excess > 0 {
            let Some(front) = self.batches.front_mut() else {
                break;
            };
            if front.lines <= excess {
                excess -= front.lines;
                dropped += front.lines;
                self.lines -= front.lines;
                self.batches.pop_front();
                continue;
            }
            // Skip `excess` whole lines of the front batch.
            let waiting = &front.bytes[front.start..];
            let cut = memchr::memchr_iter(b'\n', waiting)
                .nth(excess - 1)
                .map_or(waiting.len(), |newline| newline + 1);
            front.start += cut;
            front.lines -= excess;
            self.lines -= excess;
            dropped += excess;
            excess = 0;
        }
        self.dropped += dropped as u64;
        dropped
    }

    /// The oldest waiting bytes, whole lines only, at most `max_bytes` unless
    /// the first line alone is longer (it is returned whole).
    pub fn front_chunk(&self, max_bytes: usize) -> Option<&[u8]> {
        let front = self.batches.front()?;
        let waiting = &front.bytes[front.start..];
        if waiting.len() <= max_bytes {
            return Some(waiting);
        }
        let end = match memchr::memrchr(b'\n', &waiting[..max_bytes]) {
            Some(newline) => newline + 1,
            None => memchr::memchr(b'\n', waiting).map_or(waiting.len(), |n| n + 1),
        };
        Some(&waiting[..end])
    }

    /// Takes the front batch out whole, with its line count, when nothing of
    /// it was taken yet and it holds at most `max_bytes` (no copy).
    pub fn take_front_batch(&mut self, max_bytes: usize) -> Option<(Bytes, usize)> {
        let front = self.batches.front()?;
        if front.start != 0 || front.bytes.len() > max_bytes {
            return None;
        }
        let batch = self.batches.pop_front()?;
        self.lines -= batch.lines.min(self.lines);
        Some((batch.bytes, batch.lines))
    }

    /// Removes the first `len` bytes of the front chunk after they were
    /// written; `len` must be a length [`front_chunk`](Self::front_chunk)
    /// returned (whole lines).
    pub fn consume(&mut self, len: usize) {
        let Some(front) = self.batches.front_mut() else {
            return;
        };
        let end = (front.start + len).min(front.bytes.len());
        let lines = memchr::memchr_iter(b'\n', &front.bytes[front.start..end]).count();
        front.start = end;
        front.lines -= lines.min(front.lines);
        self.lines -= lines.min(self.lines);
        if front.start >= front.bytes.len() {
            self.batches.pop_front();
        }
    }

    /// Lines waiting.
    pub fn len(&self) -> usize {
        self.lines
    }

    /// `true` when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Lines dropped since the backlog was created.
    pub fn dropped_total(&self) -> u64 {
        self.dropped
    }
}

/// `bytes`, ending with a line end: a final line without one gets one (a
/// copy, for lines that did not come from the engine, which ends them all).
fn terminated(bytes: Bytes) -> Bytes {
    if bytes.last() == Some(&b'\n') {
        return bytes;
    }
    let mut ended = Vec::with_capacity(bytes.len() + 1);
    ended.extend_from_slice(&bytes);
    ended.push(b'\n');
    Bytes::from(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(range: std::ops::Range<u32>) -> Vec<u8> {
        range
            .map(|i| format!("m.{i} {i} 1\n"))
            .collect::<String>()
            .into_bytes()
    }

    fn drain(backlog: &mut Backlog, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(bytes) = backlog.front_chunk(chunk) {
            let len = bytes.len();
            out.extend_from_slice(bytes);
            backlog.consume(len);
        }
        out
    }

    #[test]
    fn keeps_order_across_batches() {
        let mut backlog = Backlog::new(100);
        backlog.push(lines(0..3));
        backlog.push(lines(3..5));
        assert_eq!(backlog.len(), 5);
        assert_eq!(drain(&mut backlog, 7), lines(0..5));
        assert!(backlog.is_empty());
    }

    #[test]
    fn when_full_exactly_the_oldest_lines_are_dropped_and_counted() {
        let mut backlog = Backlog::new(4);
        assert_eq!(
            backlog.push(lines(0..3)),
            Pushed {
                accepted: 3,
                dropped: 0
            }
        );
        assert_eq!(
            backlog.push(lines(3..6)),
            Pushed {
                accepted: 3,
                dropped: 2
            }
        );
        assert_eq!(backlog.len(), 4);
        assert_eq!(backlog.dropped_total(), 2);
        assert_eq!(drain(&mut backlog, 1000), lines(2..6));
    }

    #[test]
    fn a_batch_larger_than_capacity_keeps_its_newest_lines() {
        let mut backlog = Backlog::new(2);
        let pushed = backlog.push(lines(0..5));
        assert_eq!(pushed.dropped, 3);
        assert_eq!(drain(&mut backlog, 1000), lines(3..5));
    }

    #[test]
    fn small_untouched_batches_are_taken_whole() {
        let mut backlog = Backlog::new(100);
        backlog.push(lines(0..3));
        backlog.push(lines(3..40));
        let first = lines(0..3);
        // Too big for the limit: left in place.
        assert_eq!(backlog.take_front_batch(first.len() - 1), None);
        assert_eq!(
            backlog.take_front_batch(first.len()),
            Some((first.into(), 3))
        );
        assert_eq!(backlog.len(), 37);
        // Once a part of it was consumed, a batch is no longer taken whole.
        let chunk = backlog.front_chunk(20).map(<[u8]>::len).unwrap_or(0);
        backlog.consume(chunk);
        assert_eq!(backlog.take_front_batch(usize::MAX), None);
        assert!(drain(&mut backlog, 1000).ends_with(&lines(39..40)));
        assert!(backlog.is_empty());
    }

    #[test]
    fn chunks_end_on_line_boundaries() {
        let mut backlog = Backlog::new(100);
        backlog.push(lines(0..10));
        let chunk = backlog
            .front_chunk(20)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        assert!(chunk.ends_with(b"\n"));
        assert!(chunk.len() <= 20);
        // A line longer than the chunk size is still returned whole.
        let mut long = Backlog::new(10);
        long.push(b"a.very.long.metric.path 1 2\nx 1 2\n".to_vec());
        assert_eq!(
            long.front_chunk(4),
            Some(&b"a.very.long.metric.path 1 2\n"[..])
        );
    }

    #[test]
    fn a_missing_final_newline_is_added() {
        let mut backlog = Backlog::new(10);
        backlog.push(b"a 1 2\nb 1 2".to_vec());
        assert_eq!(backlog.len(), 2);
        assert_eq!(drain(&mut backlog, 100), b"a 1 2\nb 1 2\n".to_vec());
    }

    #[test]
    fn lines_put_back_go_first_and_are_dropped_first() {
        let mut backlog = Backlog::new(4);
        backlog.push(lines(0..3));
        let chunk = backlog
            .front_chunk(1000)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        backlog.consume(chunk.len());
        backlog.push(lines(3..6));
        let pushed = backlog.push_front(chunk);
        assert_eq!(pushed.dropped, 2);
        assert_eq!(drain(&mut backlog, 1000), lines(2..6));
    }

    #[test]
    fn dropping_after_a_partial_consume_counts_right() {
        let mut backlog = Backlog::new(5);
        backlog.push(lines(0..5));
        let first = backlog.front_chunk(8).map(<[u8]>::len).unwrap_or(0);
        backlog.consume(first); // "m.0 0 1\n" is 8 bytes: one line sent
        assert_eq!(backlog.len(), 4);
        let pushed = backlog.push(lines(5..8));
        assert_eq!(pushed.dropped, 2);
        assert_eq!(drain(&mut backlog, 1000), lines(3..8));
    }
}
