//! When pull cycles start: every `pull-interval`, aligned to the phase of the
//! first start (SPEC §3) — or to the epoch when raw snapshots are published
//! (SPEC §5: every load balancer's snapshot of a slot carries the same `ts`)
//! —, skipping the beats a slow cycle overran instead of stacking cycles up.

use std::time::Duration;

/// The beat of the puller: tick `k` is at `origin + k × interval`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beat {
    origin: Duration,
    interval: Duration,
}

/// The next tick to wait for, and how many ticks were missed before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextTick {
    /// Time of the next tick, since the epoch.
    pub at: Duration,
    /// Ticks that fell while the previous cycle ran and are skipped.
    pub skipped: u64,
}

impl Beat {
    /// A beat starting at `origin` (time since the epoch of the first start).
    /// A zero interval is treated as one second: directories are named by
    /// epoch second, so a faster beat could only collide.
    pub fn new(origin: Duration, interval: Duration) -> Beat {
        let interval = if interval.is_zero() {
            Duration::from_secs(1)
        } else {
            interval
        };
        Beat { origin, interval }
    }

    /// The first tick strictly after `last` (the tick just served), given that
    /// it is `now`: normally `last + interval`; when the cycle of `last` ran
    /// past one or more ticks, the first tick after `now`, counting the ones
    /// skipped.
    pub fn after(&self, last: Duration, now: Duration) -> NextTick {
        // Floor, not ceiling: the first beat is served a moment after the
        // origin, and must still count as tick 0.
        let next = self.tick_index_at_or_before(last) + 1;
        let due = self.tick_index_at_or_after(now);
        if due <= next {
            return NextTick {
                at: self.tick(next),
                skipped: 0,
            };
        }
        NextTick {
            at: self.tick(due),
            skipped: due - next,
        }
    }

    /// The first tick at or after `now`.
    pub fn first_at_or_after(&self, now: Duration) -> Duration {
        self.tick(self.tick_index_at_or_after(now))
    }

    fn tick(&self, index: u64) -> Duration {
        self.origin + mul(self.interval, index)
    }

    /// Index of the last tick at or before `time` (0 for times before origin).
    fn tick_index_at_or_before(&self, time: Duration) -> u64 {
        let Some(since) = time.checked_sub(self.origin) else {
            return 0;
        };
        let whole = since.as_nanos() / self.interval.as_nanos().max(1);
        u64::try_from(whole).unwrap_or(u64::MAX)
    }

    /// Index of the first tick at or after `time` (0 for times before origin).
    fn tick_index_at_or_after(&self, time: Duration) -> u64 {
        let Some(since) = time.checked_sub(self.origin) else {
            return 0;
        };
        let nanos = self.interval.as_nanos().max(1);
        let whole = since.as_nanos() / nanos;
        let index = if since.as_nanos() % nanos == 0 {
            whole
        } else {
            whole + 1
        };
        u64::try_from(index).unwrap_or(u64::MAX)
    }
}

/// `interval × times`, exact: counted from the epoch, a 0.1 s beat is past
/// its 17-billionth tick.
fn mul(interval: Duration, times: u64) -> Duration {
    let nanos = interval.as_nanos().saturating_mul(u128::from(times));
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 10^9: it fits.
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn a_beat_from_the_epoch_ticks_on_multiples_of_the_interval() {
        let beat = Beat::new(Duration::ZERO, s(10.0));
        let now = Duration::new(1_764_000_003, 250_000_000);
        let first = beat.first_at_or_after(now);
        assert_eq!(first, Duration::from_secs(1_764_000_010));
        assert_eq!(beat.first_at_or_after(first), first);
        let next = beat.after(first, first + s(0.004));
        assert_eq!(next.at, Duration::from_secs(1_764_000_020));
        // Small intervals too, past 2^32 ticks since the epoch.
        let fast = Beat::new(Duration::ZERO, s(0.1));
        let next = fast.after(
            Duration::new(1_764_000_000, 0),
            Duration::new(1_764_000_000, 1),
        );
        assert_eq!(next.at, Duration::new(1_764_000_000, 100_000_000));
    }

    #[test]
    fn the_first_beat_served_just_after_the_origin_is_tick_zero() {
        // The actor starts a moment after the beat's origin was taken.
        let beat = Beat::new(s(1000.0), s(4.0));
        let next = beat.after(s(1000.002), s(1000.005));
        assert_eq!(
            next,
            NextTick {
                at: s(1004.0),
                skipped: 0
            }
        );
    }

    #[test]
    fn ticks_keep_the_phase_of_the_first_start() {
        let beat = Beat::new(s(1000.3), s(10.0));
        let next = beat.after(s(1000.3), s(1001.0));
        assert_eq!(
            next,
            NextTick {
                at: s(1010.3),
                skipped: 0
            }
        );
        let next = beat.after(next.at, s(1012.0));
        assert_eq!(
            next,
            NextTick {
                at: s(1020.3),
                skipped: 0
            }
        );
    }

    #[test]
    fn an_overrunning_cycle_skips_beats_instead_of_stacking() {
        let beat = Beat::new(s(1000.0), s(10.0));
        // The cycle of tick 1000 ran until 1025: 1010 and 1020 are missed.
        let next = beat.after(s(1000.0), s(1025.0));
        assert_eq!(
            next,
            NextTick {
                at: s(1030.0),
                skipped: 2
            }
        );
    }

    #[test]
    fn a_cycle_ending_exactly_on_a_tick_runs_that_tick() {
        let beat = Beat::new(s(1000.0), s(10.0));
        let next = beat.after(s(1000.0), s(1010.0));
        assert_eq!(
            next,
            NextTick {
                at: s(1010.0),
                skipped: 0
            }
        );
        let next = beat.after(s(1000.0), s(1020.0));
        assert_eq!(
            next,
            NextTick {
                at: s(1020.0),
                skipped: 1
            }
        );
    }

    #[test]
    fn a_clock_that_went_back_waits_for_the_next_tick() {
        let beat = Beat::new(s(1000.0), s(10.0));
        let next = beat.after(s(1010.0), s(900.0));
        assert_eq!(
            next,
            NextTick {
                at: s(1020.0),
                skipped: 0
            }
        );
    }

    #[test]
    fn zero_interval_means_one_second() {
        let beat = Beat::new(s(5.0), Duration::ZERO);
        assert_eq!(beat.after(s(5.0), s(5.5)).at, s(6.0));
    }
}
