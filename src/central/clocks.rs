//! Time as central trusts it (issue 24 items 1 and 4).
//!
//! A message's *reference time* is its timestamp (the producer's
//! CreateTime, or the broker's with `LogAppendTime`), or this host's clock
//! when that is earlier: whoever writes to a topic can claim any time, but
//! not one ahead of the reader's clock; a backlog read after an outage
//! keeps its past timestamps, so a partial read again lands where it did
//! the first time. Stage 1 gives each partial the reference time of the raw
//! snapshot it came from as its timestamp, so that stage 2 sees when the
//! edge published, not when stage 1 got round to it.
//!
//! [`ClockSkews`] keeps `ClockSkewMs.<lb>`: per LB of a snapshot that
//! decoded, its reference time minus its `ts`, forgotten once the LB has
//! not been seen for `lb-timeout` (a forged or retired name does not stay
//! in the self metrics for ever).

use std::collections::BTreeMap;

/// The reference time of a message read at `now_ms`, ms: its timestamp,
/// unless it has none or one ahead of `now_ms`.
pub fn reference_ms(timestamp_ms: Option<i64>, now_ms: u64) -> u64 {
    timestamp_ms
        .and_then(|t| u64::try_from(t).ok())
        .map_or(now_ms, |t| t.min(now_ms))
}

/// `ClockSkewMs.<lb>` of the LBs seen lately.
#[derive(Debug, Default)]
pub struct ClockSkews {
    /// Per LB: its skew, ms, and when it was last recorded, epoch seconds.
    by_lb: BTreeMap<String, (i64, u64)>,
}

impl ClockSkews {
    /// A snapshot of `lb` at `ts` with reference time `reference_ms`
    /// decoded at `now` (epoch seconds).
    pub fn record(&mut self, lb: &str, ts: u64, reference_ms: u64, now: u64) {
        let skew = i64::try_from(reference_ms)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(ts.saturating_mul(1000)).unwrap_or(i64::MAX));
        match self.by_lb.get_mut(lb) {
            Some(entry) => *entry = (skew, now),
            None => {
                self.by_lb.insert(lb.to_owned(), (skew, now));
            }
        }
    }

    /// Forgets the LBs not recorded within `timeout` seconds of `now`;
    /// the others' skews, by LB.
    pub fn current(&mut self, now: u64, timeout: u64) -> Vec<(String, i64)> {
        self.by_lb
            .retain(|_, (_, seen)| now.saturating_sub(*seen) <= timeout);
        self.by_lb
            .iter()
            .map(|(lb, (skew, _))| (lb.clone(), *skew))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_time_is_the_timestamp_never_past_the_readers_clock() {
        assert_eq!(
            reference_ms(Some(1_000), 5_000),
            1_000,
            "a backlog keeps its time"
        );
        assert_eq!(
            reference_ms(Some(9_000), 5_000),
            5_000,
            "a future one is now"
        );
        assert_eq!(reference_ms(None, 5_000), 5_000);
        assert_eq!(reference_ms(Some(-1), 5_000), 5_000);
    }

    #[test]
    fn a_skew_is_the_reference_minus_ts_and_an_lb_quiet_for_lb_timeout_is_forgotten() {
        let mut skews = ClockSkews::default();
        skews.record("a", 100, 100_250, 1_000);
        skews.record("fast", 160, 100_300, 1_000);
        assert_eq!(
            skews.current(1_000, 30),
            [("a".to_owned(), 250), ("fast".to_owned(), -59_700)]
        );
        skews.record("a", 110, 110_100, 1_010);
        assert_eq!(
            skews.current(1_030, 30),
            [("a".to_owned(), 100), ("fast".to_owned(), -59_700)]
        );
        assert_eq!(skews.current(1_031, 30), [("a".to_owned(), 100)]);
        assert_eq!(skews.current(1_041, 30), []);
    }
}
