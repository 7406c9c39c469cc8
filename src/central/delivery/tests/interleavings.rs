//! Random interleavings of every input (reads, processing, sinks' answers
//! and restarts, the broker's answers and failures, revocations, consumer
//! replacements, health reports, self metrics, cluster windows, commit
//! ticks), checking after each output that:
//!
//! - no offset is committed past a snapshot whose lines some sink has not
//!   acknowledged or whose partial the broker has not;
//! - a partition's (so an LB's) partials leave in dispatch order while the
//!   partition is assigned;
//! - pause and resume alternate;
//!
//! and at the end that pausing never deadlocks: once every sink drained and
//! all work in flight is processed and acknowledged, consumption resumes,
//! nothing is owed, and the commit reaches the end of every partition.

use std::collections::{BTreeSet, HashMap, HashSet};

use proptest::prelude::*;

use super::super::{Delivery, Output, Sink, WorkId};
use crate::central::offsets::Epoch;

const SINKS: usize = 2;
/// Per sink; 0: unbounded.
const CAPACITY: [u64; SINKS] = [10, 6];
const MAX_SNAPSHOTS: usize = 3;
const PARTITIONS: i32 = 2;

type D = Delivery<(), ()>;

#[derive(Debug, Clone)]
enum Step {
    Assign(i32),
    /// A snapshot of `parts` messages read and dispatched, or a bad message.
    Read {
        partition: i32,
        parts: usize,
        bad: bool,
    },
    Process {
        pick: usize,
        lines: u64,
        partial: bool,
        fails: bool,
    },
    SinkAck {
        pick: usize,
    },
    SinkRestart {
        sink: Sink,
    },
    PartialAnswer {
        pick: usize,
        fails: bool,
    },
    Revoke(i32),
    ReplaceConsumer,
    Health {
        sink: Sink,
        backlog: u64,
    },
    SelfMetrics {
        count: u64,
    },
    SelfMetricsAnswer {
        pick: usize,
    },
    Emit {
        cluster: u8,
    },
    Merge {
        pick: usize,
        lines: u64,
        fails: bool,
    },
    ReplaceMergeConsumer,
    Tick,
}

fn step() -> impl Strategy<Value = Step> {
    let partition = 0..PARTITIONS;
    let pick = any::<usize>();
    prop_oneof![
        1 => partition.clone().prop_map(Step::Assign),
        6 => (partition.clone(), 1..3usize, prop::bool::weighted(0.15))
            .prop_map(|(partition, parts, bad)| Step::Read { partition, parts, bad }),
        6 => (pick, 1..8u64, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(pick, lines, partial, fails)| Step::Process { pick, lines, partial, fails }),
        8 => pick.prop_map(|pick| Step::SinkAck { pick }),
        1 => (0..SINKS).prop_map(|sink| Step::SinkRestart { sink }),
        4 => (pick, prop::bool::weighted(0.2))
            .prop_map(|(pick, fails)| Step::PartialAnswer { pick, fails }),
        1 => partition.prop_map(Step::Revoke),
        1 => Just(Step::ReplaceConsumer),
        2 => (0..SINKS, 0..14u64).prop_map(|(sink, backlog)| Step::Health { sink, backlog }),
        1 => (1..4u64).prop_map(|count| Step::SelfMetrics { count }),
        2 => pick.prop_map(|pick| Step::SelfMetricsAnswer { pick }),
        2 => (0..2u8).prop_map(|cluster| Step::Emit { cluster }),
        2 => (pick, 1..4u64, prop::bool::weighted(0.1))
            .prop_map(|(pick, lines, fails)| Step::Merge { pick, lines, fails }),
        1 => Just(Step::ReplaceMergeConsumer),
        3 => Just(Step::Tick),
    ]
}

/// What the test knows of a snapshot it dispatched.
#[derive(Debug)]
struct Snapshot {
    partition: i32,
    epoch: Epoch,
    offsets: Vec<i64>,
    acked_by: BTreeSet<Sink>,
    /// `None`: no partial (yet); `Some(acked)`.
    partial: Option<bool>,
    partial_sent: bool,
    given_up: bool,
}

impl Snapshot {
    fn delivered(&self) -> bool {
        self.given_up || (self.acked_by.len() == SINKS && self.partial != Some(false))
    }
}

#[derive(Default)]
struct World {
    d: Option<D>,
    next_offset: HashMap<i32, i64>,
    /// Per assigned partition, the highest offset read in its epoch and
    /// the last commit.
    highest: HashMap<i32, i64>,
    committed: HashMap<i32, i64>,
    processing: Vec<WorkId>,
    merging: Vec<WorkId>,
    handed: Vec<(WorkId, Sink)>,
    self_metrics: Vec<(Sink, u64)>,
    with_broker: Vec<WorkId>,
    snapshots: HashMap<WorkId, Snapshot>,
    windows: HashMap<WorkId, (BTreeSet<Sink>, bool)>,
    ended: HashSet<Epoch>,
    last_partial: HashMap<Epoch, WorkId>,
    paused: bool,
}

impl World {
    fn new() -> World {
        let mut world = World {
            d: Some(D::new(SINKS, MAX_SNAPSHOTS)),
            ..World::default()
        };
        for (sink, capacity) in CAPACITY.into_iter().enumerate() {
            let out = world.d().sink_health(sink, 0, capacity);
            world.apply(out, 0);
        }
        world
    }

    fn d(&mut self) -> &mut D {
        self.d.get_or_insert_with(|| D::new(SINKS, MAX_SNAPSHOTS))
    }

    fn end_epoch(&mut self, partition: i32) {
        if let Some(epoch) = self.d().epoch(partition) {
            self.ended.insert(epoch);
        }
        self.highest.remove(&partition);
        self.committed.remove(&partition);
    }

    /// Carries out `out`, checking it; `self_count`: the self metrics'
    /// size, for `HandSelfMetrics`.
    fn apply(&mut self, out: Vec<Output<(), ()>>, self_count: u64) {
        for output in out {
            match output {
                Output::HandLines { id, sink, .. } => {
                    assert!(!self.handed.contains(&(id, sink)), "handed twice");
                    self.handed.push((id, sink));
                }
                Output::HandSelfMetrics { sink } => self.self_metrics.push((sink, self_count)),
                Output::SendPartial { id, .. } => {
                    self.with_broker.push(id);
                    let snapshot = self.snapshots.get_mut(&id).expect("a snapshot's partial");
                    assert_eq!(snapshot.partial, Some(false));
                    if !snapshot.partial_sent && !self.ended.contains(&snapshot.epoch) {
                        let last = self.last_partial.insert(snapshot.epoch, id);
                        assert!(last < Some(id), "partial {id:?} after {last:?}");
                    }
                    snapshot.partial_sent = true;
                }
                Output::SnapshotDelivered { partition, offsets } => {
                    let done = self
                        .snapshots
                        .values()
                        .find(|s| s.partition == partition && s.offsets == offsets && !s.given_up)
                        .expect("a snapshot dispatched");
                    assert!(done.delivered(), "delivered too early: {done:?}");
                }
                Output::WindowDelivered { .. } => {}
                Output::Pause => {
                    assert!(!self.paused, "paused twice");
                    self.paused = true;
                }
                Output::Resume => {
                    assert!(self.paused, "resumed twice");
                    self.paused = false;
                }
                Output::SinkFull { .. } | Output::SinksDrained => {}
            }
        }
        assert_eq!(self.d().paused(), self.paused);
    }

    /// Checks and records the commits of a tick.
    fn commit(&mut self) {
        for (partition, offset) in self.d().commit_tick() {
            let epoch = self.d().epoch(partition).expect("assigned");
            for s in self.snapshots.values() {
                if s.partition == partition
                    && s.epoch == epoch
                    && s.offsets.iter().any(|o| *o < offset)
                {
                    assert!(
                        s.delivered(),
                        "committed {offset} on {partition} past {s:?}"
                    );
                }
            }
            let last = self.committed.insert(partition, offset);
            assert!(last < Some(offset), "commits move forward");
        }
    }

    fn take<T>(list: &mut Vec<T>, pick: usize) -> Option<T> {
        if list.is_empty() {
            None
        } else {
            Some(list.swap_remove(pick % list.len()))
        }
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Assign(partition) => {
                self.end_epoch(partition);
                let out = self.d().assigned(partition);
                self.apply(out, 0);
            }
            Step::Read {
                partition,
                parts,
                bad,
            } => {
                let Some(epoch) = self.d().epoch(partition) else {
                    let offset = self.next_offset.entry(partition).or_default();
                    *offset += 1;
                    let offset = *offset;
                    assert_eq!(self.d().received(partition, offset), None);
                    return;
                };
                let mut offsets = Vec::new();
                for _ in 0..parts {
                    let offset = self.next_offset.entry(partition).or_default();
                    *offset += 1;
                    let offset = *offset;
                    assert_eq!(self.d().received(partition, offset), Some(epoch));
                    self.highest.insert(partition, offset);
                    offsets.push(offset);
                }
                if bad {
                    self.d().bad(partition, epoch, &offsets);
                    return;
                }
                let (id, out) = self.d().dispatched(partition, epoch, offsets.clone());
                self.snapshots.insert(
                    id,
                    Snapshot {
                        partition,
                        epoch,
                        offsets,
                        acked_by: BTreeSet::new(),
                        partial: None,
                        partial_sent: false,
                        given_up: false,
                    },
                );
                self.processing.push(id);
                self.apply(out, 0);
            }
            Step::Process {
                pick,
                lines,
                partial,
                fails,
            } => {
                let Some(id) = Self::take(&mut self.processing, pick) else {
                    return;
                };
                let out = if fails {
                    let (at, out) = self.d().unprocessable(id);
                    assert!(at.is_some());
                    if let Some(s) = self.snapshots.get_mut(&id) {
                        s.given_up = true;
                    }
                    out
                } else {
                    if let Some(s) = self.snapshots.get_mut(&id) {
                        s.partial = partial.then_some(false);
                    }
                    self.d().processed(id, (), lines, partial.then_some(()))
                };
                self.apply(out, 0);
            }
            Step::SinkAck { pick } => {
                let Some((id, sink)) = Self::take(&mut self.handed, pick) else {
                    return;
                };
                if let Some(s) = self.snapshots.get_mut(&id) {
                    s.acked_by.insert(sink);
                }
                if let Some((acked_by, _)) = self.windows.get_mut(&id) {
                    acked_by.insert(sink);
                }
                let out = self.d().sink_acked(id, sink);
                self.apply(out, 0);
            }
            Step::SinkRestart { sink } => {
                let (lost, kept) = self.handed.drain(..).partition(|(_, s)| *s == sink);
                self.handed = kept;
                let (answered, kept) = self.self_metrics.drain(..).partition(|(s, _)| *s == sink);
                self.self_metrics = kept;
                for (id, sink) in lost {
                    let out = self.d().sink_lost(id, sink);
                    assert_eq!(out.len(), 1, "handed again");
                    self.apply(out, 0);
                }
                for (sink, count) in answered {
                    let out = self.d().self_metrics_answered(sink, count);
                    self.apply(out, 0);
                }
            }
            Step::PartialAnswer { pick, fails } => {
                let Some(id) = Self::take(&mut self.with_broker, pick) else {
                    return;
                };
                let out = if fails {
                    self.d().resend_partial(id)
                } else {
                    if let Some(s) = self.snapshots.get_mut(&id) {
                        s.partial = Some(true);
                    }
                    self.d().partial_acked(id)
                };
                self.apply(out, 0);
            }
            Step::Revoke(partition) => {
                self.end_epoch(partition);
                let out = self.d().revoked(partition);
                self.apply(out, 0);
            }
            Step::ReplaceConsumer => {
                for partition in 0..PARTITIONS {
                    self.end_epoch(partition);
                }
                let out = self.d().consumer_replaced();
                self.apply(out, 0);
            }
            Step::Health { sink, backlog } => {
                let capacity = CAPACITY.get(sink).copied().unwrap_or(0);
                let out = self.d().sink_health(sink, backlog, capacity);
                self.apply(out, 0);
            }
            Step::SelfMetrics { count } => {
                let out = self.d().self_metrics(count);
                self.apply(out, count);
            }
            Step::SelfMetricsAnswer { pick } => {
                let Some((sink, count)) = Self::take(&mut self.self_metrics, pick) else {
                    return;
                };
                let out = self.d().self_metrics_answered(sink, count);
                self.apply(out, 0);
            }
            Step::Emit { cluster } => {
                let id = self.d().window_emitted(format!("c{cluster}"), 0);
                self.windows.insert(id, (BTreeSet::new(), false));
                self.merging.push(id);
            }
            Step::Merge { pick, lines, fails } => {
                let Some(id) = Self::take(&mut self.merging, pick) else {
                    return;
                };
                let out = if fails {
                    self.d().merge_failed(id)
                } else {
                    self.d().merged(id, (), lines)
                };
                self.apply(out, 0);
            }
            Step::ReplaceMergeConsumer => {
                let out = self.d().merge_consumer_replaced();
                self.apply(out, 0);
            }
            Step::Tick => self.commit(),
        }
    }

    /// Every sink drains, and everything in flight is processed and
    /// acknowledged, as long as anything is left.
    fn finish(&mut self) {
        for (sink, capacity) in CAPACITY.into_iter().enumerate() {
            let out = self.d().sink_health(sink, 0, capacity);
            self.apply(out, 0);
        }
        for _ in 0..10_000 {
            if let Some(id) = self.processing.first().copied() {
                self.run(Step::Process {
                    pick: 0,
                    lines: 1,
                    partial: true,
                    fails: false,
                });
                let _ = id;
            } else if !self.merging.is_empty() {
                self.run(Step::Merge {
                    pick: 0,
                    lines: 1,
                    fails: false,
                });
            } else if !self.handed.is_empty() {
                self.run(Step::SinkAck { pick: 0 });
            } else if !self.with_broker.is_empty() {
                self.run(Step::PartialAnswer {
                    pick: 0,
                    fails: false,
                });
            } else if !self.self_metrics.is_empty() {
                self.run(Step::SelfMetricsAnswer { pick: 0 });
            } else {
                break;
            }
        }
        self.run(Step::Tick);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_interleaving_commits_only_what_is_delivered_keeps_partials_in_order_and_drains(
        steps in prop::collection::vec(step(), 0..300),
    ) {
        let mut world = World::new();
        for step in steps {
            world.run(step);
        }
        world.finish();
        let d = world.d();
        prop_assert_eq!(d.in_flight(), 0, "work left in flight");
        prop_assert!(!d.paused(), "still paused with nothing in flight");
        for sink in 0..SINKS {
            prop_assert_eq!(d.owed(sink), 0);
        }
        for partition in 0..PARTITIONS {
            if let Some(highest) = world.highest.get(&partition) {
                prop_assert_eq!(
                    world.committed.get(&partition).copied(),
                    Some(highest + 1),
                    "partition {} committed to its end", partition
                );
            }
        }
    }
}
