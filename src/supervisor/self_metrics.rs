//! The self metrics (SPEC §4.4) as Graphite lines, written the same way by
//! the daemon's Supervisor and by Central: each one
//! `<prefix>.haproxystats.<name> <value> <ts>`, its own first, then every
//! sink's ([`SinkSlot`]'s last health).

use std::fmt::{Display, Write as _};

use crate::sink::SinkSlot;

/// The self metrics of one moment, being written.
#[derive(Debug)]
pub struct SelfMetrics<'a> {
    prefix: &'a str,
    ts: u64,
    text: String,
    lines: u64,
}

impl<'a> SelfMetrics<'a> {
    /// None yet; each will be under `<prefix>.haproxystats.`, at `ts`.
    pub fn new(prefix: &'a str, ts: u64) -> SelfMetrics<'a> {
        SelfMetrics {
            prefix,
            ts,
            text: String::new(),
            lines: 0,
        }
    }

    /// One metric.
    pub fn add(&mut self, name: &str, value: impl Display) {
        let SelfMetrics { prefix, ts, .. } = *self;
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "{prefix}.haproxystats.{name} {value} {ts}");
        self.lines += 1;
    }

    /// One metric of each `(name, value)`.
    pub fn add_all<'n>(&mut self, metrics: impl IntoIterator<Item = (&'n str, u64)>) {
        for (name, value) in metrics {
            self.add(name, value);
        }
    }

    /// `name.<of>`: one of a family of metrics, one per `of` (an LB, ...).
    pub fn add_of(&mut self, name: &str, of: &str, value: impl Display) {
        self.add(&format!("{name}.{of}"), value);
    }

    /// Every sink's own, as each last reported them.
    pub fn add_sinks(&mut self, sinks: &[SinkSlot]) {
        for slot in sinks {
            self.add_all(slot.health.metrics.iter().copied());
        }
    }

    /// How many lines are written.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The lines, each ending in a newline.
    pub fn into_bytes(self) -> Vec<u8> {
        self.text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::SinkSpec;
    use crate::sink::messages::SinkHealth;
    use crate::sink::slot::WhenFull;

    fn text(metrics: SelfMetrics<'_>) -> String {
        String::from_utf8(metrics.into_bytes()).expect("utf-8")
    }

    #[test]
    fn each_metric_is_one_graphite_line_under_the_prefix_at_the_time_given() {
        let mut metrics = SelfMetrics::new("ns.host", 1_700_000_000);
        metrics.add_all([("QueueDepth", 3), ("ChildRestarts", 0)]);
        metrics.add_of("ClockSkewMs", "lb-1", -250i64);
        assert_eq!(metrics.lines(), 3);
        assert_eq!(
            text(metrics),
            "ns.host.haproxystats.QueueDepth 3 1700000000\n\
             ns.host.haproxystats.ChildRestarts 0 1700000000\n\
             ns.host.haproxystats.ClockSkewMs.lb-1 -250 1700000000\n"
        );
    }

    #[test]
    fn every_sinks_own_follow_in_slot_order() {
        let slot = |name: &'static str, metrics: Vec<(&'static str, u64)>| {
            let spec = SinkSpec::new(name, || -> crate::sink::local_store::LocalStoreSink {
                unreachable!("never started")
            });
            let mut slot = SinkSlot::new(spec, WhenFull::DropOldest);
            slot.health = SinkHealth {
                metrics,
                ..SinkHealth::default()
            };
            slot
        };
        let sinks = [
            slot("graphite", vec![("GraphiteDroppedLines", 7)]),
            slot("local-store", Vec::new()),
            slot("kafka", vec![("KafkaErrors", 1), ("KafkaBacklog", 2)]),
        ];
        let mut metrics = SelfMetrics::new("ns", 5);
        metrics.add("SnapshotsProcessed", 9);
        metrics.add_sinks(&sinks);
        assert_eq!(metrics.lines(), 4);
        assert_eq!(
            text(metrics),
            "ns.haproxystats.SnapshotsProcessed 9 5\n\
             ns.haproxystats.GraphiteDroppedLines 7 5\n\
             ns.haproxystats.KafkaErrors 1 5\n\
             ns.haproxystats.KafkaBacklog 2 5\n"
        );
    }

    #[test]
    fn none_written_is_no_line() {
        let metrics = SelfMetrics::new("ns", 5);
        assert_eq!(metrics.lines(), 0);
        assert!(metrics.into_bytes().is_empty());
    }
}
