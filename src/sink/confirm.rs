//! Which bytes written to a plaintext-carbon connection count as delivered
//! (SPEC §5). Carbon never answers, so the best evidence there is comes
//! from the peer's TCP stack: bytes it acknowledged (Linux: written minus
//! `SIOCOUTQ`). An acknowledgement alone is not enough: a peer that stopped
//! reading still acknowledges what fits in its receive buffer, and those
//! bytes die with it. So bytes acknowledged at time `s` are *confirmed*
//! only once the connection shows it was still alive `settle` later:
//!
//! - it acknowledged more bytes at or after `s + settle` (the peer kept
//!   reading past them), or
//! - at or after `s + settle` nothing is outstanding: every byte is
//!   acknowledged (`SIOCOUTQ` = 0) and the peer's advertised receive window
//!   is at least half the largest it advertised (it read what it holds —
//!   a reading peer reopens its window, one that does not read cannot).
//!
//! A peer that stops reading fills its receive buffer within a few round
//! trips and acknowledges nothing more: nothing it took in its last
//! `settle` is confirmed, and after `write-timeout` without progress while
//! bytes are outstanding the connection counts as stalled. What cannot be
//! told apart is a peer that stops reading while it holds less than half
//! its buffer, and then dies: plaintext carbon gives no better evidence.
//!
//! Pure: time and socket readings come in as arguments.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The shortest settle time; a round-trip estimate can only lengthen it.
pub const MIN_SETTLE: Duration = Duration::from_millis(250);

/// One reading of a connection's send queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Bytes written to the connection since it was opened.
    pub written: u64,
    /// Bytes written but not yet acknowledged by the peer (`SIOCOUTQ`).
    pub unacked: u64,
    /// The kernel's smoothed round-trip time, if known.
    pub rtt: Option<Duration>,
    /// The receive window the peer advertised last (`tcpi_snd_wnd`), if
    /// the kernel tells.
    pub window: Option<u64>,
}

/// What a reading says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Alive; bytes `..confirmed` of the connection are delivered.
    Alive {
        /// Connection offset up to which every byte is confirmed.
        confirmed: u64,
    },
    /// Bytes are outstanding and nothing was acknowledged for the stall
    /// timeout: the peer stopped reading. Nothing more is confirmed.
    Stalled {
        /// How long nothing was acknowledged.
        for_: Duration,
    },
}

/// The acknowledgement history of one connection.
#[derive(Debug)]
pub struct Confirmation {
    stall_timeout: Duration,
    /// `(when first seen, acknowledged offset)`, increasing in both.
    acked_at: VecDeque<(Instant, u64)>,
    /// When the acknowledged offset last grew (or the connection opened).
    last_progress: Instant,
    acked: u64,
    confirmed: u64,
    /// The last and the largest window the peer advertised.
    window: u64,
    max_window: u64,
}

impl Confirmation {
    /// A connection opened at `now`; `stall_timeout` is `write-timeout`.
    pub fn new(now: Instant, stall_timeout: Duration) -> Confirmation {
        Confirmation {
            stall_timeout,
            acked_at: VecDeque::new(),
            last_progress: now,
            acked: 0,
            confirmed: 0,
            window: 0,
            max_window: 0,
        }
    }

    /// Connection offset up to which every byte is confirmed.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// Takes a reading made at `now`.
    pub fn observe(&mut self, now: Instant, reading: Reading) -> Verdict {
        let acked = reading.written.saturating_sub(reading.unacked);
        if acked > self.acked {
            self.acked = acked;
            self.last_progress = now;
            self.acked_at.push_back((now, acked));
        }
        let mut unread = false;
        if let Some(window) = reading.window {
            if window > self.window {
                // The peer read and reopened its window.
                self.last_progress = now;
            }
            self.window = window;
            self.max_window = self.max_window.max(window);
            unread = window < self.max_window / 2;
        }
        let outstanding = reading.unacked > 0 || unread;
        let idle = now.saturating_duration_since(self.last_progress);
        if outstanding && idle >= self.stall_timeout {
            return Verdict::Stalled { for_: idle };
        }
        let settle = settle_time(reading.rtt);
        // Evidence of life: the latest progress, or now if nothing waits.
        let alive_at = if outstanding { self.last_progress } else { now };
        if let Some(horizon) = alive_at.checked_sub(settle) {
            while let Some(&(seen, offset)) = self.acked_at.front() {
                if seen > horizon {
                    break;
                }
                self.confirmed = self.confirmed.max(offset);
                self.acked_at.pop_front();
            }
        }
        Verdict::Alive {
            confirmed: self.confirmed,
        }
    }
}

/// How long an acknowledgement must be followed by signs of life: longer
/// than a stalled peer takes to fill its receive buffer (a few round trips).
fn settle_time(rtt: Option<Duration>) -> Duration {
    MIN_SETTLE.max(rtt.unwrap_or_default().saturating_mul(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn reading(written: u64, unacked: u64) -> Reading {
        Reading {
            written,
            unacked,
            rtt: None,
            window: None,
        }
    }

    fn with_window(written: u64, window: u64) -> Reading {
        Reading {
            written,
            unacked: 0,
            rtt: None,
            window: Some(window),
        }
    }

    fn confirmed(verdict: Verdict) -> u64 {
        match verdict {
            Verdict::Alive { confirmed } => confirmed,
            Verdict::Stalled { for_ } => panic!("stalled for {for_:?}"),
        }
    }

    #[test]
    fn a_reading_peer_confirms_what_it_acknowledged_a_settle_time_ago() {
        let t0 = Instant::now();
        let mut c = Confirmation::new(t0, STALL);
        // Streaming: 100 KB acknowledged every 100 ms, always more queued.
        for step in 1..=10u64 {
            let verdict = c.observe(
                t0 + ms(100 * step),
                reading(100_000 * step + 50_000, 50_000),
            );
            // 250 ms settle: what was acknowledged three readings back.
            let settled = step.saturating_sub(3);
            assert_eq!(confirmed(verdict), 100_000 * settled, "step {step}");
        }
    }

    #[test]
    fn an_idle_connection_with_nothing_outstanding_confirms_after_settling() {
        let t0 = Instant::now();
        let mut c = Confirmation::new(t0, STALL);
        assert_eq!(confirmed(c.observe(t0 + ms(10), reading(5_000, 0))), 0);
        assert_eq!(confirmed(c.observe(t0 + ms(200), reading(5_000, 0))), 0);
        assert_eq!(confirmed(c.observe(t0 + ms(260), reading(5_000, 0))), 5_000);
    }

    #[test]
    fn a_peer_that_stops_reading_gets_nothing_confirmed_then_stalls() {
        let t0 = Instant::now();
        let mut c = Confirmation::new(t0, STALL);
        // Its receive buffer fills within a few ms, in two readings.
        c.observe(t0 + ms(1), reading(300_000, 270_000));
        c.observe(t0 + ms(3), reading(300_000, 236_000));
        for step in 1..=9 {
            let verdict = c.observe(t0 + ms(100 * step), reading(300_000, 236_000));
            assert_eq!(confirmed(verdict), 0, "reading {step}");
        }
        assert_eq!(
            c.observe(t0 + ms(1_003), reading(300_000, 236_000)),
            Verdict::Stalled { for_: ms(1_000) }
        );
    }

    #[test]
    fn a_peer_that_stops_later_keeps_what_was_confirmed_before_only() {
        let t0 = Instant::now();
        let mut c = Confirmation::new(t0, STALL);
        // Reads for a second, then stops at 1 s with 64 KB in its buffer.
        for step in 1..=10u64 {
            c.observe(
                t0 + ms(100 * step),
                reading(100_000 * step + 64_000, 64_000),
            );
        }
        c.observe(t0 + ms(1_005), reading(2_000_000, 936_000));
        let mut last = 0;
        for step in 11..=19 {
            last = confirmed(c.observe(t0 + ms(100 * step), reading(2_000_000, 936_000)));
        }
        // Acknowledged at 1 005 ms (the buffer it never read) is never confirmed.
        assert!(last < 1_064_000, "confirmed {last}");
        assert!(matches!(
            c.observe(t0 + ms(2_005), reading(2_000_000, 936_000)),
            Verdict::Stalled { .. }
        ));
    }

    #[test]
    fn a_long_round_trip_lengthens_the_settle_time() {
        let t0 = Instant::now();
        let mut c = Confirmation::new(t0, Duration::from_secs(10));
        let slow = |written, unacked| Reading {
            written,
            unacked,
            rtt: Some(ms(100)),
            window: None,
        };
        c.observe(t0 + ms(10), slow(5_000, 0));
        assert_eq!(confirmed(c.observe(t0 + ms(500), slow(5_000, 0))), 0);
        assert_eq!(confirmed(c.observe(t0 + ms(810), slow(5_000, 0))), 5_000);
    }

    #[test]
    fn a_peer_holding_what_it_acknowledged_unread_is_not_confirmed_and_stalls() {
        let t0 = Instant::now();
        let mut c = Confirmation::new(t0, STALL);
        c.observe(t0, with_window(0, 65_536));
        // 60 KB acknowledged, all of it still in its buffer: window 5.5 KB.
        c.observe(t0 + ms(1), with_window(60_000, 5_536));
        for step in 1..=9 {
            let verdict = c.observe(t0 + ms(100 * step), with_window(60_000, 5_536));
            assert_eq!(confirmed(verdict), 0, "reading {step}");
        }
        assert!(matches!(
            c.observe(t0 + ms(1_001), with_window(60_000, 5_536)),
            Verdict::Stalled { .. }
        ));
    }

    #[test]
    fn a_peer_that_reads_and_reopens_its_window_is_confirmed() {
        let t0 = Instant::now();
        let mut c = Confirmation::new(t0, STALL);
        c.observe(t0, with_window(0, 65_536));
        c.observe(t0 + ms(1), with_window(60_000, 5_536));
        c.observe(t0 + ms(2), with_window(60_000, 65_536));
        assert_eq!(
            confirmed(c.observe(t0 + ms(100), with_window(60_000, 65_536))),
            0
        );
        assert_eq!(
            confirmed(c.observe(t0 + ms(300), with_window(60_000, 65_536))),
            60_000
        );
    }
}
