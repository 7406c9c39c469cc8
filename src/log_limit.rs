//! Rate limits for log lines that a misbehaving peer can repeat many times a
//! second (reconnects, resets): at most one line per interval, and the line
//! that gets through says how many were held back since the last one, so
//! the log stays readable and nothing goes unsaid. Pure: time comes in.

use std::time::{Duration, Instant};

/// How often a repeated line is written at most.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// One kind of repeated log line.
#[derive(Debug, Clone)]
pub struct LogLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for LogLimit {
    fn default() -> LogLimit {
        LogLimit::new(DEFAULT_INTERVAL)
    }
}

impl LogLimit {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> LogLimit {
        LogLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to write the line now: `Some(held back since the last line
    /// written)`, or `None` (counted, to be reported with the next one).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// The condition ended (e.g. a connection made progress): the next
    /// occurrence is written at once.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_next_one_counts_what_was_held_back() {
        let t0 = Instant::now();
        let mut limit = LogLimit::new(Duration::from_secs(10));
        assert_eq!(limit.allow(t0), Some(0));
        let held: Vec<Option<u64>> = (1..=5)
            .map(|s| limit.allow(t0 + Duration::from_secs(s)))
            .collect();
        assert_eq!(held, [None; 5]);
        assert_eq!(limit.allow(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(limit.allow(t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn after_a_reset_the_next_line_is_written_at_once_with_its_count() {
        let t0 = Instant::now();
        let mut limit = LogLimit::new(Duration::from_secs(10));
        limit.allow(t0);
        limit.allow(t0 + Duration::from_secs(1));
        limit.reset();
        assert_eq!(limit.allow(t0 + Duration::from_secs(2)), Some(1));
    }
}
