//! [`Collected`]: a `BufferSink` that keeps every buffer the engine hands
//! over, for tests of `process_*_into`.

use haproxystats::engine::BufferSink;

/// Every buffer handed over, in order; `concat()` is the output.
#[derive(Default)]
pub struct Collected(pub Vec<Vec<u8>>);

impl BufferSink for Collected {
    fn hand_over_at(&self) -> usize {
        16 * 1024
    }
    fn fresh(&mut self) -> Vec<u8> {
        Vec::new()
    }
    fn take(&mut self, lines: Vec<u8>) {
        self.0.push(lines);
    }
    fn copy(&mut self, lines: &[u8]) {
        self.0.push(lines.to_vec());
    }
}
