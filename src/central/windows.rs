//! Stage 2's windows (SPEC §7) as a plain state machine: inputs (a partial,
//! a clock tick, an assignment, a revocation, a sink's acknowledgement, a
//! stored state) go in; outputs (emit a window, store a cluster's state,
//! count a late, replayed or skewed partial, drop open windows) come out, and
//! [`Windows::take_commits`] says which offsets may be committed. No broker,
//! no clock, no I/O: the actor in `stage2` does those.
//!
//! Per cluster (never per partition):
//! - a partial of load balancer `lb` at `ts` goes to window
//!   `T = ts - ts % window`, which keeps one partial per LB (the newest) —
//!   unless `ts` is more than `max-clock-skew` ahead of its *reference
//!   time* `r` (the message timestamp, or the reader's clock when that is
//!   earlier: a clock nobody sending can move forward); then it goes to the
//!   window of `r` and is counted ([`Output::Skewed`]);
//! - a cluster's progress — its newest window, which LBs are active, when
//!   a new cluster stops learning — follows `min(ts, r)` of each partial,
//!   never a `ts` past the reference time, so that one forged `ts` cannot
//!   move it (issue 24 item 1);
//! - the oldest open window closes when every *active* LB placed a partial
//!   in `T` or a later window, or — only while the cluster's partition is
//!   caught up — `grace` after the window's first partial; later windows
//!   wait for it, so a cluster's windows are emitted in `T` order;
//! - an LB is active while its progress is within `lb_timeout` of the
//!   cluster's newest window; a cluster read from no stored state trusts its set of
//!   LBs only once it saw `expected_windows` windows after its first (before,
//!   only grace closes), so that the first LB to report is not the only one
//!   expected.
//!
//! Exactness (at-least-once, never a wrong value): `H`, the highest window
//! emitted *and* acknowledged by every sink with none below it waiting, is
//! stored with the cluster's LBs ([`Output::Store`]) before any offset it
//! covers is committed; the committed offset never passes a partial of a
//! window above the stored `H`. A new owner starts from the stored `H`:
//! partials of windows `≤ H` are replayed (skipped), the others are read
//! again from the commit, whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::offsets::{Epoch, Offsets};
pub use crate::config::WindowSettings;

/// Where a partial goes ([`WindowSettings::place`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The window its partial goes to.
    pub window: u64,
    /// The time it was placed by (its `ts`, or its reference time when
    /// skewed): of an LB's partials in one window, the latest is kept.
    pub at: u64,
    /// The window its LB reached, as far as the cluster's progress goes:
    /// that of `min(ts, reference)`.
    pub progress: u64,
    /// Seconds its `ts` is ahead of its reference time, when that is more
    /// than `max-clock-skew`.
    pub skewed: Option<u64>,
}

/// What the settings (`[central]`, defined with the configuration) mean
/// for a partial: stage 2's logic, kept here with the rest of it.
impl WindowSettings {
    /// The window of `ts`.
    pub fn window_of(&self, ts: u64) -> u64 {
        ts - ts % self.window.max(1)
    }

    /// Where a partial of `ts` read at reference time `reference` goes.
    ///
    /// A `ts` behind the reference time is placed by `ts`: a slow clock or
    /// a snapshot published late can only make its own partial late. One
    /// ahead by at most `max-clock-skew` too (an LB a little fast lands in
    /// later windows, which count as reported for the earlier ones). One
    /// further ahead is a clock far off or a forged `ts`: placed by the
    /// reference time, where the LB's other partials are, not in a window
    /// nobody else reached.
    pub fn place(&self, ts: u64, reference: u64) -> Placement {
        let ahead = ts.saturating_sub(reference);
        let skewed = ahead > self.max_clock_skew;
        let at = if skewed { reference } else { ts };
        Placement {
            window: self.window_of(at),
            at,
            progress: self.window_of(ts.min(reference)),
            skewed: skewed.then_some(ahead),
        }
    }
}

/// What is stored per cluster in the state topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// `H`: the highest window emitted and acknowledged.
    pub emitted: u64,
    /// Per LB, the newest window it reported: the expected set.
    pub lbs: BTreeMap<String, u64>,
}

/// A partial of one load balancer, as read from the partials topic.
#[derive(Debug, Clone)]
pub struct PartialIn<P> {
    /// Where it was read.
    pub partition: i32,
    /// The offsets of its parts.
    pub offsets: Vec<i64>,
    /// Its cluster (the message key).
    pub cluster: String,
    /// Its load balancer.
    pub lb: String,
    /// The snapshot's timestamp.
    pub ts: u64,
    /// Its reference time, seconds: the message timestamp (stage 1 sets it
    /// to its raw snapshot's), or the reader's clock when that is earlier.
    pub reference: u64,
    /// Wall-clock time it was read, ms.
    pub now_ms: u64,
    /// The partial itself.
    pub payload: P,
}

/// An input.
#[derive(Debug, Clone)]
pub enum Input<P> {
    /// `partition` is ours; `restored` is the state topic read to its end.
    Assigned {
        /// The partition.
        partition: i32,
        /// Every cluster's stored state.
        restored: BTreeMap<String, ClusterState>,
    },
    /// `partition` is no longer ours: its clusters' open windows are dropped.
    Revoked {
        /// The partition.
        partition: i32,
    },
    /// A partial.
    Partial(PartialIn<P>),
    /// Whether `partition` is at its high watermark (wall-clock rules apply
    /// only then).
    CaughtUp {
        /// The partition.
        partition: i32,
        /// At the high watermark.
        caught_up: bool,
    },
    /// A part of a partial still waiting for its other parts: in flight.
    Part {
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
    },
    /// Messages that are no partial (bad): done at once.
    Skipped {
        /// Their partition.
        partition: i32,
        /// Their offsets.
        offsets: Vec<i64>,
    },
    /// The wall clock, ms: grace is checked.
    Tick {
        /// Now, ms.
        now_ms: u64,
    },
    /// Every sink acknowledged the lines of `window` of `cluster`.
    Acked {
        /// The cluster.
        cluster: String,
        /// The window.
        window: u64,
    },
    /// The state topic has `emitted = window` for `cluster`.
    Stored {
        /// The cluster.
        cluster: String,
        /// The window stored.
        window: u64,
    },
}

/// Why a window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Close {
    /// Every active LB reported it or a later window.
    AllReported,
    /// `grace` passed since its first partial, the partition caught up.
    Grace,
}

impl Close {
    /// The self metric's name part.
    pub fn name(self) -> &'static str {
        match self {
            Close::AllReported => "AllReported",
            Close::Grace => "Grace",
        }
    }
}

/// A closed window: its partials, to be merged and sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Emission<P> {
    /// The cluster.
    pub cluster: String,
    /// `T`.
    pub window: u64,
    /// One partial per reporting LB (its newest), by LB name.
    pub partials: Vec<(String, P)>,
    /// LBs expected when it closed.
    pub expected: usize,
    /// Why it closed.
    pub reason: Close,
    /// Late partials of the cluster so far (a counter).
    pub late: u64,
}

/// An output.
#[derive(Debug, Clone, PartialEq)]
pub enum Output<P> {
    /// Merge and send these; answer [`Input::Acked`] once every sink has them.
    Emit(Emission<P>),
    /// Write this state of `cluster` to the state topic; answer
    /// [`Input::Stored`] once the broker has it.
    Store {
        /// The cluster.
        cluster: String,
        /// Its state.
        state: ClusterState,
    },
    /// A partial of a window already emitted (its per-LB lines went out in
    /// stage 1 anyway).
    Late {
        /// The cluster.
        cluster: String,
        /// The LB.
        lb: String,
        /// Its window.
        window: u64,
    },
    /// A partial whose `ts` is more than `max-clock-skew` ahead of its
    /// reference time, placed by the reference time (its per-LB lines went
    /// out in stage 1 as they are).
    Skewed {
        /// The cluster.
        cluster: String,
        /// The LB.
        lb: String,
        /// Seconds its `ts` is ahead.
        ahead: u64,
        /// The window it went to.
        window: u64,
    },
    /// A partial of a window `≤ H` read again after a restart or rebalance.
    Replayed {
        /// The cluster.
        cluster: String,
        /// Its window.
        window: u64,
    },
    /// Open windows of `cluster` dropped unemitted (its partition was
    /// revoked): the next owner builds them.
    Dropped {
        /// The cluster.
        cluster: String,
        /// How many.
        windows: usize,
    },
}

#[derive(Debug)]
struct Window<P> {
    first_ms: u64,
    /// Per LB, the time it was placed by and the partial kept (the newest).
    by_lb: BTreeMap<String, (u64, P)>,
}

/// What a cluster knows of one of its LBs.
#[derive(Debug, Clone, Copy)]
struct Lb {
    /// The newest window it placed a partial in: it reported every window
    /// up to this one (an LB's partials come in order).
    placed: u64,
    /// Its newest progress window ([`Placement::progress`]): whether it is
    /// active, and the cluster's newest window.
    progress: u64,
}

/// Offsets in flight, of the assignment they were read in.
#[derive(Debug, Clone)]
struct Pending {
    partition: i32,
    epoch: Epoch,
    offsets: Vec<i64>,
}

#[derive(Debug)]
struct Cluster<P> {
    partition: i32,
    /// `H` as read from the state topic when the cluster was first seen:
    /// partials at or below it are replays.
    restored: Option<u64>,
    /// `H` stored in the state topic.
    stored: Option<u64>,
    /// Windows emitted above `stored`: `true` once acknowledged.
    emitted: BTreeMap<u64, bool>,
    /// The highest window emitted.
    last_emitted: Option<u64>,
    /// Per LB, how far it reported.
    lbs: BTreeMap<String, Lb>,
    /// Until this window was seen, the LBs are not trusted to be all
    /// (`None`: trusted).
    learning_until: Option<u64>,
    open: BTreeMap<u64, Window<P>>,
    /// Offsets waiting for `stored` to reach their window.
    pending: BTreeMap<u64, Vec<Pending>>,
    late: u64,
}

impl<P> Cluster<P> {
    /// The cluster's newest window: its LBs' newest progress, never past
    /// the reference time of what was read.
    fn newest(&self) -> Option<u64> {
        self.lbs.values().map(|lb| lb.progress).max()
    }

    fn is_active(&self, lb: &Lb, newest: u64, settings: &WindowSettings) -> bool {
        newest.saturating_sub(lb.progress) <= settings.lb_timeout
    }

    fn expected(&self, settings: &WindowSettings) -> usize {
        let newest = self.newest().unwrap_or(0);
        self.lbs
            .values()
            .filter(|lb| self.is_active(lb, newest, settings))
            .count()
    }

    /// Every active LB reported `window` or a later one, and the set of
    /// LBs is trusted.
    fn all_reported(&self, window: u64, settings: &WindowSettings) -> bool {
        let newest = self.newest().unwrap_or(0);
        if self.learning_until.is_some_and(|until| newest < until) {
            return false;
        }
        self.lbs
            .values()
            .filter(|lb| self.is_active(lb, newest, settings))
            .all(|lb| lb.placed >= window)
    }

    /// LBs no longer active are forgotten (they come back by reporting).
    fn forget_inactive(&mut self, settings: &WindowSettings) {
        let Some(newest) = self.newest() else {
            return;
        };
        self.lbs
            .retain(|_, lb| newest.saturating_sub(lb.progress) <= settings.lb_timeout);
    }

    /// The highest emitted window with none at or below it unacknowledged.
    fn acked_through(&self) -> Option<u64> {
        self.emitted
            .iter()
            .take_while(|(_, acked)| **acked)
            .map(|(w, _)| *w)
            .last()
    }
}

/// Stage 2's windows of every cluster of the assigned partitions.
#[derive(Debug)]
pub struct Windows<P> {
    settings: WindowSettings,
    clusters: HashMap<String, Cluster<P>>,
    /// The state topic as read at the last assignment.
    restored: BTreeMap<String, ClusterState>,
    /// Partitions at their high watermark (wall-clock rules apply).
    caught_up: BTreeSet<i32>,
    offsets: Offsets,
}

impl<P: Clone> Windows<P> {
    /// No partition assigned yet.
    pub fn new(settings: WindowSettings) -> Windows<P> {
        Windows {
            settings,
            clusters: HashMap::new(),
            restored: BTreeMap::new(),
            caught_up: BTreeSet::new(),
            offsets: Offsets::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &WindowSettings {
        &self.settings
    }

    /// Handles one input; what to do comes back in order.
    pub fn handle(&mut self, input: Input<P>) -> Vec<Output<P>> {
        let mut out = Vec::new();
        match input {
            Input::Assigned {
                partition,
                restored,
            } => {
                self.offsets.assign(partition);
                self.restored = restored;
                self.caught_up.remove(&partition);
            }
            Input::Revoked { partition } => self.revoke(partition, &mut out),
            Input::Partial(partial) => self.partial(partial, &mut out),
            Input::CaughtUp {
                partition,
                caught_up,
            } => {
                if caught_up {
                    self.caught_up.insert(partition);
                } else {
                    self.caught_up.remove(&partition);
                }
            }
            Input::Part { partition, offset } => {
                self.offsets.received(partition, offset);
            }
            Input::Skipped { partition, offsets } => {
                for offset in &offsets {
                    self.offsets.received(partition, *offset);
                }
                if let Some(epoch) = self.offsets.epoch(partition) {
                    self.offsets.done(partition, epoch, &offsets);
                }
            }
            Input::Tick { now_ms } => {
                let names: Vec<String> = self.clusters.keys().cloned().collect();
                for name in names {
                    self.close(&name, Some(now_ms), &mut out);
                }
            }
            Input::Acked { cluster, window } => self.acked(&cluster, window, &mut out),
            Input::Stored { cluster, window } => self.stored(&cluster, window),
        }
        out
    }

    /// The (partition, next offset) pairs that may be committed now.
    pub fn take_commits(&mut self) -> Vec<(i32, i64)> {
        self.offsets.take_commits()
    }

    /// Open windows over every cluster.
    pub fn open_windows(&self) -> usize {
        self.clusters.values().map(|c| c.open.len()).sum()
    }

    /// Open windows per cluster.
    pub fn open_per_cluster(&self) -> impl Iterator<Item = (&str, usize)> {
        self.clusters
            .iter()
            .map(|(name, c)| (name.as_str(), c.open.len()))
    }

    fn revoke(&mut self, partition: i32, out: &mut Vec<Output<P>>) {
        self.offsets.revoke(partition);
        self.caught_up.remove(&partition);
        let gone: Vec<String> = self
            .clusters
            .iter()
            .filter(|(_, c)| c.partition == partition)
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(cluster) = self.clusters.remove(&name)
                && !cluster.open.is_empty()
            {
                out.push(Output::Dropped {
                    cluster: name,
                    windows: cluster.open.len(),
                });
            }
        }
    }

    /// The cluster `name`, from its stored state when first seen; a
    /// cluster with none learns its LBs from `window` on.
    fn cluster_for(&mut self, name: &str, partition: i32, window: u64) -> &mut Cluster<P> {
        let settings = self.settings;
        let restored = &self.restored;
        let cluster = self.clusters.entry(name.to_owned()).or_insert_with(|| {
            let state = restored.get(name);
            Cluster {
                partition,
                restored: state.map(|s| s.emitted),
                stored: state.map(|s| s.emitted),
                emitted: BTreeMap::new(),
                last_emitted: state.map(|s| s.emitted),
                lbs: state
                    .map(|s| {
                        s.lbs
                            .iter()
                            .map(|(lb, w)| {
                                let lb_state = Lb {
                                    placed: *w,
                                    progress: *w,
                                };
                                (lb.clone(), lb_state)
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                learning_until: state.is_none().then(|| {
                    window.saturating_add(settings.expected_windows.saturating_mul(settings.window))
                }),
                open: BTreeMap::new(),
                pending: BTreeMap::new(),
                late: 0,
            }
        });
        // Keyed by cluster, a cluster stays on one partition unless the
        // partitioner changed: it follows its newest partial.
        cluster.partition = partition;
        cluster
    }

    fn partial(&mut self, p: PartialIn<P>, out: &mut Vec<Output<P>>) {
        let mut epoch = None;
        for offset in &p.offsets {
            epoch = self.offsets.received(p.partition, *offset);
        }
        let Some(epoch) = epoch else {
            return;
        };
        let at = Pending {
            partition: p.partition,
            epoch,
            offsets: p.offsets,
        };
        let placement = self.settings.place(p.ts, p.reference);
        let window = placement.window;
        if let Some(ahead) = placement.skewed {
            out.push(Output::Skewed {
                cluster: p.cluster.clone(),
                lb: p.lb.clone(),
                ahead,
                window,
            });
        }
        let cluster = self.cluster_for(&p.cluster, p.partition, placement.progress);
        let lb = cluster.lbs.entry(p.lb.clone()).or_insert(Lb {
            placed: window,
            progress: placement.progress,
        });
        lb.placed = lb.placed.max(window);
        lb.progress = lb.progress.max(placement.progress);
        if cluster
            .learning_until
            .is_some_and(|until| cluster.newest().is_some_and(|n| n >= until))
        {
            cluster.learning_until = None;
        }
        let mut done = None;
        if cluster.restored.is_some_and(|h| window <= h) {
            // Read again after a restart or a rebalance: its window went
            // out before, and `H` is stored.
            out.push(Output::Replayed {
                cluster: p.cluster.clone(),
                window,
            });
            done = Some(at);
        } else if cluster.last_emitted.is_some_and(|h| window <= h) {
            cluster.late += 1;
            out.push(Output::Late {
                cluster: p.cluster.clone(),
                lb: p.lb.clone(),
                window,
            });
            if cluster.stored.is_some_and(|h| window <= h) {
                done = Some(at);
            } else {
                cluster.pending.entry(window).or_default().push(at);
            }
        } else {
            cluster.pending.entry(window).or_default().push(at);
            let open = cluster.open.entry(window).or_insert_with(|| Window {
                first_ms: p.now_ms,
                by_lb: BTreeMap::new(),
            });
            match open.by_lb.get(&p.lb) {
                Some((kept, _)) if *kept >= placement.at => {}
                _ => {
                    open.by_lb.insert(p.lb, (placement.at, p.payload));
                }
            }
        }
        if let Some(at) = done {
            self.offsets.done(at.partition, at.epoch, &at.offsets);
        }
        self.close(&p.cluster, None, out);
    }

    /// Closes the cluster's oldest open windows while a closing rule holds
    /// (grace only with `now_ms`, and only while its partition caught up).
    fn close(&mut self, name: &str, now_ms: Option<u64>, out: &mut Vec<Output<P>>) {
        let settings = self.settings;
        let Some(cluster) = self.clusters.get_mut(name) else {
            return;
        };
        let caught_up = self.caught_up.contains(&cluster.partition);
        while let Some((&window, open)) = cluster.open.first_key_value() {
            let reason = if cluster.all_reported(window, &settings) {
                Close::AllReported
            } else if caught_up
                && now_ms.is_some_and(|now| now.saturating_sub(open.first_ms) >= settings.grace_ms)
            {
                Close::Grace
            } else {
                break;
            };
            let Some((_, open)) = cluster.open.pop_first() else {
                break;
            };
            cluster.emitted.insert(window, false);
            cluster.last_emitted = cluster.last_emitted.max(Some(window));
            out.push(Output::Emit(Emission {
                cluster: name.to_owned(),
                window,
                partials: open
                    .by_lb
                    .into_iter()
                    .map(|(lb, (_, partial))| (lb, partial))
                    .collect(),
                expected: cluster.expected(&settings),
                reason,
                late: cluster.late,
            }));
        }
        cluster.forget_inactive(&settings);
    }

    fn acked(&mut self, name: &str, window: u64, out: &mut Vec<Output<P>>) {
        let Some(cluster) = self.clusters.get_mut(name) else {
            // Revoked since: the next owner emits it again.
            return;
        };
        let before = cluster.acked_through();
        if let Some(acked) = cluster.emitted.get_mut(&window) {
            *acked = true;
        }
        if let Some(through) = cluster.acked_through()
            && Some(through) > before
        {
            out.push(Output::Store {
                cluster: name.to_owned(),
                state: ClusterState {
                    emitted: through,
                    // What was read past `H` is read again after a restart:
                    // a stored report past it would close a window early.
                    lbs: cluster
                        .lbs
                        .iter()
                        .map(|(name, lb)| (name.clone(), lb.placed.min(through)))
                        .collect(),
                },
            });
        }
    }

    fn stored(&mut self, name: &str, window: u64) {
        let Some(cluster) = self.clusters.get_mut(name) else {
            return;
        };
        if cluster.stored.is_some_and(|h| h >= window) {
            return;
        }
        cluster.stored = Some(window);
        cluster.emitted.retain(|w, _| *w > window);
        let covered: Vec<u64> = cluster.pending.range(..=window).map(|(w, _)| *w).collect();
        for w in covered {
            for at in cluster.pending.remove(&w).unwrap_or_default() {
                self.offsets.done(at.partition, at.epoch, &at.offsets);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: WindowSettings = WindowSettings {
        window: 10,
        grace_ms: 20_000,
        lb_timeout: 30,
        expected_windows: 1,
        max_clock_skew: 30,
    };

    struct Run {
        w: Windows<u32>,
        next_offset: i64,
    }

    impl Run {
        fn new(restored: BTreeMap<String, ClusterState>) -> Run {
            let mut w = Windows::new(SETTINGS);
            w.handle(Input::Assigned {
                partition: 0,
                restored,
            });
            Run { w, next_offset: 0 }
        }

        fn partial(&mut self, cluster: &str, lb: &str, ts: u64, value: u32) -> Vec<Output<u32>> {
            self.partial_at(cluster, lb, ts, value, 0)
        }

        fn partial_at(
            &mut self,
            cluster: &str,
            lb: &str,
            ts: u64,
            value: u32,
            now_ms: u64,
        ) -> Vec<Output<u32>> {
            self.read(cluster, lb, ts, ts, value, now_ms)
        }

        /// A partial of `ts` read at reference time `reference`.
        fn read(
            &mut self,
            cluster: &str,
            lb: &str,
            ts: u64,
            reference: u64,
            value: u32,
            now_ms: u64,
        ) -> Vec<Output<u32>> {
            let offset = self.next_offset;
            self.next_offset += 1;
            self.w.handle(Input::Partial(PartialIn {
                partition: 0,
                offsets: vec![offset],
                cluster: cluster.into(),
                lb: lb.into(),
                ts,
                reference,
                now_ms,
                payload: value,
            }))
        }

        /// Acknowledges and stores every emission in `outputs`.
        fn deliver(&mut self, outputs: &[Output<u32>]) {
            for output in outputs {
                if let Output::Emit(e) = output {
                    let stores = self.w.handle(Input::Acked {
                        cluster: e.cluster.clone(),
                        window: e.window,
                    });
                    for store in stores {
                        if let Output::Store { cluster, state } = store {
                            self.w.handle(Input::Stored {
                                cluster,
                                window: state.emitted,
                            });
                        }
                    }
                }
            }
        }
    }

    /// (cluster, window, partials, reason) of each emission.
    type Closed = (String, u64, Vec<(String, u32)>, Close);

    fn emitted(outputs: &[Output<u32>]) -> Vec<Closed> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Emit(e) => {
                    Some((e.cluster.clone(), e.window, e.partials.clone(), e.reason))
                }
                _ => None,
            })
            .collect()
    }

    fn state(emitted: u64, lbs: &[(&str, u64)]) -> BTreeMap<String, ClusterState> {
        BTreeMap::from([(
            "eu".to_owned(),
            ClusterState {
                emitted,
                lbs: lbs.iter().map(|(l, w)| (l.to_string(), *w)).collect(),
            },
        )])
    }

    #[test]
    fn a_window_closes_once_every_expected_lb_reported_and_commits_wait_for_the_store() {
        let mut r = Run::new(state(90, &[("a", 90), ("b", 90)]));
        assert!(
            r.partial("eu", "a", 101, 1).is_empty(),
            "b has not reported"
        );
        let out = r.partial("eu", "b", 103, 2);
        assert_eq!(
            emitted(&out),
            [(
                "eu".into(),
                100,
                vec![("a".into(), 1), ("b".into(), 2)],
                Close::AllReported
            )]
        );
        assert_eq!(r.w.take_commits(), [], "not acknowledged yet");
        let store = r.w.handle(Input::Acked {
            cluster: "eu".into(),
            window: 100,
        });
        assert!(
            matches!(&store[..], [Output::Store { state, .. }] if state.emitted == 100 && state.lbs.len() == 2)
        );
        assert_eq!(r.w.take_commits(), [], "not stored yet");
        r.w.handle(Input::Stored {
            cluster: "eu".into(),
            window: 100,
        });
        assert_eq!(r.w.take_commits(), [(0, 2)]);
    }

    #[test]
    fn a_silent_lb_holds_a_window_for_grace_only_while_caught_up_then_is_no_longer_expected() {
        let mut r = Run::new(state(90, &[("a", 90), ("b", 90)]));
        r.partial_at("eu", "a", 100, 1, 1_000);
        // Behind the high watermark: the wall clock does not close it.
        let out = r.w.handle(Input::Tick { now_ms: 60_000 });
        assert!(emitted(&out).is_empty());
        r.w.handle(Input::CaughtUp {
            partition: 0,
            caught_up: true,
        });
        assert!(emitted(&r.w.handle(Input::Tick { now_ms: 20_999 })).is_empty());
        let out = r.w.handle(Input::Tick { now_ms: 21_000 });
        let Some(Output::Emit(e)) = out.first() else {
            panic!("not closed: {out:?}");
        };
        assert_eq!(
            (e.window, e.reason, e.expected, e.partials.len()),
            (100, Close::Grace, 2, 1)
        );
        // b last reported 90: waited for by grace while within 30 s of
        // the newest window, then no longer expected.
        let closes = |out: &[Output<u32>]| -> Vec<(u64, usize, Close)> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Emit(e) => Some((e.window, e.expected, e.reason)),
                    _ => None,
                })
                .collect()
        };
        for (ts, now) in [(110, 30_000), (120, 60_000)] {
            assert!(r.partial_at("eu", "a", ts, 1, now).is_empty());
            assert!(
                closes(&r.w.handle(Input::Tick {
                    now_ms: now + 19_999
                }))
                .is_empty()
            );
            let out = r.w.handle(Input::Tick {
                now_ms: now + 20_000,
            });
            assert_eq!(closes(&out), [(ts, 2, Close::Grace)]);
        }
        let out = r.partial_at("eu", "a", 130, 1, 90_000);
        assert_eq!(closes(&out), [(130, 1, Close::AllReported)]);
    }

    #[test]
    fn a_partial_of_an_emitted_window_is_late_and_changes_nothing() {
        let mut r = Run::new(state(90, &[("a", 90)]));
        let out = r.partial("eu", "a", 100, 1);
        r.deliver(&out);
        let out = r.partial("eu", "b", 100, 5);
        assert_eq!(
            out,
            [Output::Late {
                cluster: "eu".into(),
                lb: "b".into(),
                window: 100
            }]
        );
        assert_eq!(r.w.take_commits(), [(0, 2)], "stored already: done");
        assert!(
            r.partial("eu", "a", 110, 1).is_empty(),
            "b is expected from now on"
        );
        let out = r.partial("eu", "b", 110, 5);
        let Some(Output::Emit(e)) = out.first() else {
            panic!("{out:?}")
        };
        assert_eq!((e.late, e.expected, e.partials.len()), (1, 2, 2));
    }

    #[test]
    fn after_a_restart_windows_up_to_h_are_replayed_and_the_rest_rebuilt() {
        let mut r = Run::new(state(100, &[("a", 100), ("b", 100)]));
        let out = r.partial("eu", "a", 100, 1);
        assert_eq!(
            out,
            [Output::Replayed {
                cluster: "eu".into(),
                window: 100
            }]
        );
        r.partial("eu", "a", 110, 1);
        let out = r.partial("eu", "b", 110, 2);
        assert_eq!(emitted(&out).len(), 1);
        assert_eq!(r.w.take_commits(), [(0, 1)], "the replayed one only");
    }

    #[test]
    fn a_new_cluster_waits_a_window_before_trusting_the_lbs_it_saw() {
        let mut r = Run::new(BTreeMap::new());
        assert!(
            r.partial("eu", "a", 100, 1).is_empty(),
            "b may report 100 too"
        );
        assert!(r.partial("eu", "b", 100, 2).is_empty());
        // A window later, both are trusted to be all: 100 has both.
        let out = r.partial("eu", "a", 110, 1);
        let got = emitted(&out);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].1, got[0].2.len()), (100, 2));
        let out = r.partial("eu", "b", 110, 2);
        let windows: Vec<u64> = emitted(&out).iter().map(|e| e.1).collect();
        assert_eq!(windows, [110]);
    }

    #[test]
    fn an_lb_with_a_fast_clock_does_not_make_the_others_late() {
        let mut r = Run::new(state(90, &[("a", 90), ("b", 90), ("fast", 110)]));
        // `fast` is 25 s ahead (within max-clock-skew): its 125, read at
        // 101, lands in 120 while a and b are at 100.
        assert!(r.read("eu", "fast", 125, 101, 9, 0).is_empty());
        assert!(r.read("eu", "a", 100, 101, 1, 0).is_empty());
        let out = r.read("eu", "b", 100, 101, 2, 0);
        let got = emitted(&out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, [("a".into(), 1), ("b".into(), 2)]);
        let out = r.read("eu", "a", 110, 111, 1, 0);
        assert!(out.iter().all(|o| !matches!(o, Output::Late { .. })));
    }

    /// Two real LBs report 7 windows from 100 on, each read a second after
    /// its `ts` (`fast_by` seconds ahead for b); `forged` adds, after a's
    /// first, one partial of a made-up LB at `ts = 100 + forged`. Every
    /// output, and whether each of the 7 windows went out with a and b.
    fn seven_windows(fast_by: u64, forged: Option<u64>) -> (Vec<Output<u32>>, Vec<bool>) {
        let mut r = Run::new(state(90, &[("a", 90), ("b", 90)]));
        let mut out = Vec::new();
        for k in 0..8 {
            let t = 100 + 10 * k;
            let mut now = r.read("eu", "a", t + 1, t + 2, 1, 0);
            if let Some(ahead) = forged.filter(|_| k == 0) {
                now.extend(r.read("eu", "evil", t + ahead, t + 2, 666, 0));
            }
            now.extend(r.read("eu", "b", t + 1 + fast_by, t + 2, 2, 0));
            r.deliver(&now);
            out.extend(now);
        }
        let closed = emitted(&out);
        let right = (0..7)
            .map(|k| {
                closed.iter().any(|(_, w, partials, _)| {
                    *w == 100 + 10 * k
                        && partials.contains(&("a".into(), 1))
                        && partials.contains(&("b".into(), 2))
                })
            })
            .collect();
        (out, right)
    }

    fn late(out: &[Output<u32>]) -> usize {
        out.iter()
            .filter(|o| matches!(o, Output::Late { .. }))
            .count()
    }

    #[test]
    fn a_forged_future_ts_is_placed_by_the_reference_time_and_moves_nothing() {
        // Issue 24 item 1: 0 of 7 windows right, 14 late, a window at T+600.
        let (out, right) = seven_windows(0, Some(600));
        assert_eq!(right, [true; 7], "{out:?}");
        assert_eq!(late(&out), 0, "{out:?}");
        let windows: Vec<u64> = emitted(&out).iter().map(|e| e.1).collect();
        assert!(windows.iter().all(|w| *w < 200), "{windows:?}");
        let skewed: Vec<&Output<u32>> = out
            .iter()
            .filter(|o| matches!(o, Output::Skewed { .. }))
            .collect();
        assert_eq!(
            skewed,
            [&Output::Skewed {
                cluster: "eu".into(),
                lb: "evil".into(),
                ahead: 598,
                window: 100,
            }]
        );
        // It went where its reference time is: the window of its arrival.
        let first = emitted(&out).into_iter().find(|e| e.1 == 100);
        assert!(first.is_some_and(|e| e.2.contains(&("evil".into(), 666))));
    }

    #[test]
    fn an_lb_60_s_fast_is_placed_by_the_reference_time_and_nobody_is_late() {
        // Issue 24 item 1: 1 of 7 windows right, 12 late.
        let (out, right) = seven_windows(60, None);
        assert_eq!(right, [true; 7], "{out:?}");
        assert_eq!(late(&out), 0, "{out:?}");
        let skewed = out
            .iter()
            .filter(|o| matches!(o, Output::Skewed { lb, ahead: 59, .. } if lb == "b"))
            .count();
        assert_eq!(skewed, 8, "counted each time");
    }

    #[test]
    fn a_placement_follows_ts_up_to_max_clock_skew_ahead_and_progress_never_passes_the_reference() {
        let place = |ts, reference| SETTINGS.place(ts, reference);
        // Behind: by ts (a slow clock makes only itself late).
        assert_eq!(
            place(100, 500),
            Placement {
                window: 100,
                at: 100,
                progress: 100,
                skewed: None
            }
        );
        // Ahead within 30 s: by ts; progress by the reference.
        assert_eq!(
            place(135, 105),
            Placement {
                window: 130,
                at: 135,
                progress: 100,
                skewed: None
            }
        );
        // Further: by the reference, counted.
        assert_eq!(
            place(136, 105),
            Placement {
                window: 100,
                at: 105,
                progress: 100,
                skewed: Some(31)
            }
        );
        assert_eq!(place(u64::MAX, 105).window, 100);
    }

    #[test]
    fn clusters_sharing_a_partition_close_apart_and_their_commit_waits_for_both() {
        let mut r = Run::new(BTreeMap::from([
            (
                "eu".to_owned(),
                ClusterState {
                    emitted: 90,
                    lbs: [("a".to_owned(), 90)].into(),
                },
            ),
            (
                "us".to_owned(),
                ClusterState {
                    emitted: 90,
                    lbs: [("x".to_owned(), 90), ("y".to_owned(), 90)].into(),
                },
            ),
        ]));
        assert!(r.partial("us", "x", 100, 1).is_empty());
        let out = r.partial("eu", "a", 100, 1);
        assert_eq!(emitted(&out).len(), 1, "us does not hold eu back");
        r.deliver(&out);
        assert_eq!(r.w.take_commits(), [], "offset 0 (us 100) is still open");
        let out = r.partial("us", "y", 100, 2);
        r.deliver(&out);
        assert_eq!(r.w.take_commits(), [(0, 3)]);
    }

    #[test]
    fn h_moves_only_over_windows_all_acknowledged_below_it() {
        let mut r = Run::new(state(90, &[("a", 90)]));
        let mut out = r.partial("eu", "a", 100, 1);
        out.extend(r.partial("eu", "a", 110, 1));
        assert_eq!(emitted(&out).len(), 2);
        let store = r.w.handle(Input::Acked {
            cluster: "eu".into(),
            window: 110,
        });
        assert!(store.is_empty(), "100 not acknowledged: H stays 90");
        let store = r.w.handle(Input::Acked {
            cluster: "eu".into(),
            window: 100,
        });
        assert!(matches!(&store[..], [Output::Store { state, .. }] if state.emitted == 110));
    }

    #[test]
    fn a_revoked_partition_drops_its_open_windows_and_late_answers_are_ignored() {
        let mut r = Run::new(state(90, &[("a", 90), ("b", 90)]));
        r.partial("eu", "a", 100, 1);
        let out = r.w.handle(Input::Revoked { partition: 0 });
        assert_eq!(
            out,
            [Output::Dropped {
                cluster: "eu".into(),
                windows: 1
            }]
        );
        assert!(
            r.w.handle(Input::Acked {
                cluster: "eu".into(),
                window: 100
            })
            .is_empty()
        );
        assert_eq!(r.w.take_commits(), []);
        assert_eq!(r.w.open_windows(), 0);
    }
}
