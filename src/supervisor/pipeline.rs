//! The snapshot pipeline as plain code: which snapshot directory is queued,
//! processed, waiting for which sinks, removed or quarantined. Events go in
//! (a method each), [`Action`]s come out for the Supervisor to carry out; no
//! actor, no I/O, no clock, so every transition is unit-tested below.
//!
//! A snapshot's life:
//!
//! ```text
//! found ──► Queued ──► Processing ──processed──► Delivering{owed sinks} ──all acked──► Removing ──► gone
//!             ▲            │  │                        │
//!             │  panicked  │  └─unusable / 2nd panic──► Quarantining ──► gone
//!             ├────once────┘
//!             ├── processor lost the request
//!             └── a sink it was owed to died (sink_lost)
//! ```
//!
//! Snapshots reach the sinks in the order they were dispatched (oldest
//! first): one processed before an older one still processing waits
//! (`Held`), so that with several Processors and a backlog a sink such as
//! Kafka, whose consumers read one load balancer's messages in order, never
//! goes back in time. Only a sink that loses snapshots (it died) gets them
//! again later, out of order.
//!
//! An edge (`[process] local = false`) makes no lines: its pipeline
//! ([`Pipeline::without_processing`]) hands a queued snapshot straight to
//! the sinks (the raw snapshots topic), at most `workers` at once, and
//! queues it again if a sink loses it.
//!
//! A snapshot is removed only once every enabled sink acknowledged it (a
//! sink acknowledges lines it dropped from a full backlog too, counted
//! there). A sink that dies loses what it had not acknowledged: the snapshot
//! is processed again and delivered to the sinks still owed it, so a sink
//! that acknowledged already does not get it twice unless it was on its way.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// A sink the snapshots go to: its place in the Supervisor's list of
/// enabled sinks (src/sink/mod.rs `configured`), at most [`SinkId::MAX`].
/// The pipeline needs no more than that: it only counts who still owes what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SinkId(pub u8);

impl SinkId {
    /// How many sinks a pipeline can wait for.
    pub const MAX: usize = 8;

    fn bit(self) -> u8 {
        // The Supervisor never numbers more than MAX sinks.
        1u8.checked_shl(u32::from(self.0)).unwrap_or(0)
    }

    /// Its place in the list.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A set of sinks (a bit each: copied freely, no allocation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkSet(u8);

impl SinkSet {
    /// No sink.
    pub const EMPTY: SinkSet = SinkSet(0);

    /// The first `count` sinks (at most [`SinkId::MAX`]).
    pub fn first(count: usize) -> SinkSet {
        (0..count.min(SinkId::MAX))
            .filter_map(|index| u8::try_from(index).ok().map(SinkId))
            .collect()
    }

    /// `self` and `sink`.
    #[must_use]
    pub fn with(self, sink: SinkId) -> SinkSet {
        SinkSet(self.0 | sink.bit())
    }

    /// `self` without `sink`.
    #[must_use]
    pub fn without(self, sink: SinkId) -> SinkSet {
        SinkSet(self.0 & !sink.bit())
    }

    /// Whether `sink` is in the set.
    pub fn contains(self, sink: SinkId) -> bool {
        self.0 & sink.bit() != 0
    }

    /// Whether the set holds no sink.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The sinks of the set, in list order.
    pub fn iter(self) -> impl Iterator<Item = SinkId> {
        (0..8u8)
            .map(SinkId)
            .filter(move |sink| self.contains(*sink))
    }
}

impl FromIterator<SinkId> for SinkSet {
    fn from_iter<I: IntoIterator<Item = SinkId>>(sinks: I) -> SinkSet {
        sinks.into_iter().fold(SinkSet::EMPTY, SinkSet::with)
    }
}

/// What the Supervisor is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hand the directory to a Processor.
    Process(PathBuf),
    /// Hand the lines just processed to these sinks, each to acknowledge.
    Deliver {
        /// The snapshot.
        dir: PathBuf,
        /// The sinks still owed it.
        sinks: SinkSet,
    },
    /// Every sink has it: move it out of src-dir and delete it.
    Remove(PathBuf),
    /// It cannot be processed: move it to the quarantine with this reason.
    Quarantine {
        /// The snapshot.
        dir: PathBuf,
        /// Why, for `<ts>.reason`.
        reason: String,
    },
}

/// Where a known snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for a Processor.
    Queued,
    /// A Processor has it.
    Processing,
    /// Processed; waits for the older snapshots still processing, to go
    /// to the sinks after them.
    Held,
    /// Its lines are with the sinks it is owed to.
    Delivering,
    /// Being moved out of src-dir and deleted.
    Removing,
    /// Being moved to the quarantine.
    Quarantining,
}

#[derive(Debug)]
struct Snapshot {
    stage: Stage,
    /// The sinks that have not acknowledged it yet.
    owed: SinkSet,
    /// Processor panics on it so far.
    panics: u32,
    /// Its place in the order of deliveries, from its first dispatch until
    /// it is delivered (kept when it is processed again after a panic).
    seq: Option<u64>,
}

/// What becomes of a snapshot a Processor answered for.
enum Next {
    /// To the sinks owed it (removed at once if none is).
    Deliver,
    /// To the quarantine, for this reason.
    Quarantine(String),
    /// Processed again, first in line.
    Requeue,
}

/// Processor panics on one snapshot before it is quarantined: one retry,
/// since a panic may come from the processor rather than the snapshot, but
/// a poison snapshot must not loop forever.
pub const PANICS_BEFORE_QUARANTINE: u32 = 2;

/// The pipeline of snapshot directories.
#[derive(Debug)]
pub struct Pipeline {
    workers: usize,
    sinks: SinkSet,
    queue: VecDeque<PathBuf>,
    snapshots: HashMap<PathBuf, Snapshot>,
    processing: usize,
    /// The next delivery order number.
    next_seq: u64,
    /// Order numbers of the snapshots dispatched and not yet processed
    /// (processing, or queued again after a panic): younger ones wait.
    unresolved: BTreeSet<u64>,
    /// Processed snapshots waiting for older ones, by order number.
    held: BTreeMap<u64, PathBuf>,
    /// `false` on an edge: snapshots go to the sinks unprocessed.
    processes: bool,
    /// Edge only: snapshots handed to the sinks and not yet acknowledged,
    /// which take a worker's place as processing ones do.
    publishing: usize,
    draining: bool,
}

impl Pipeline {
    /// At most `workers` (at least one) processed at once; each snapshot
    /// goes to every sink of `sinks` before it is removed.
    pub fn new(workers: usize, sinks: SinkSet) -> Pipeline {
        Pipeline {
            workers: workers.max(1),
            sinks,
            queue: VecDeque::new(),
            snapshots: HashMap::new(),
            processing: 0,
            next_seq: 0,
            unresolved: BTreeSet::new(),
            held: BTreeMap::new(),
            processes: true,
            publishing: 0,
            draining: false,
        }
    }

    /// An edge's pipeline: each snapshot goes to the sinks as it is (they
    /// read the directory), at most `workers` at once.
    pub fn without_processing(workers: usize, sinks: SinkSet) -> Pipeline {
        Pipeline {
            processes: false,
            ..Pipeline::new(workers, sinks)
        }
    }

    /// A directory appeared in src-dir (watcher or rescan). Queued oldest
    /// first, unless it is known already or the pipeline drains.
    pub fn found(&mut self, dir: PathBuf) -> Vec<Action> {
        if !self.draining && !self.snapshots.contains_key(&dir) {
            self.snapshots.insert(
                dir.clone(),
                Snapshot {
                    stage: Stage::Queued,
                    owed: self.sinks,
                    panics: 0,
                    seq: None,
                },
            );
            self.queue.push_back(dir);
        }
        self.dispatch()
    }

    /// A Processor made the lines of `dir`: to the sinks still owed it.
    pub fn processed(&mut self, dir: &Path) -> Vec<Action> {
        self.answered(dir, |snapshot| {
            snapshot.panics = 0;
            Next::Deliver
        })
    }

    /// Nothing usable in `dir`: quarantined.
    pub fn unusable(&mut self, dir: &Path, reason: String) -> Vec<Action> {
        self.answered(dir, |_| Next::Quarantine(reason))
    }

    /// The Processor panicked on `dir`: processed again once (first in
    /// line), quarantined the second time.
    pub fn panicked(&mut self, dir: &Path, reason: String) -> Vec<Action> {
        self.answered(dir, |snapshot| {
            snapshot.panics += 1;
            if snapshot.panics < PANICS_BEFORE_QUARANTINE {
                Next::Requeue
            } else {
                Next::Quarantine(reason)
            }
        })
    }

    /// The Processor pool lost the request (a thread died): the directory
    /// is still there, processed again first.
    pub fn processor_lost(&mut self, dir: &Path) -> Vec<Action> {
        self.answered(dir, |_| Next::Requeue)
    }

    /// `sink` has every line of `dir` (or dropped them, counted, from a
    /// full backlog). Once no sink is owed it, it is removed.
    pub fn acked(&mut self, sink: SinkId, dir: &Path) -> Vec<Action> {
        let Some(snapshot) = self.snapshots.get_mut(dir) else {
            return Vec::new();
        };
        // An acknowledgement of a delivery made before the snapshot was
        // requeued (another sink died) still counts: the lines are the same.
        snapshot.owed = snapshot.owed.without(sink);
        if snapshot.stage == Stage::Delivering && snapshot.owed.is_empty() {
            snapshot.stage = Stage::Removing;
            let mut actions = vec![Action::Remove(dir.to_path_buf())];
            if !self.processes {
                self.publishing -= 1;
                actions.extend(self.dispatch());
            }
            return actions;
        }
        Vec::new()
    }

    /// `sink` died before acknowledging `dir`: its lines are gone with it.
    /// The snapshot is processed again (first in line) and delivered to
    /// the sinks still owed it; never removed before they all acknowledge.
    pub fn sink_lost(&mut self, sink: SinkId, dir: &Path) -> Vec<Action> {
        let Some(snapshot) = self.snapshots.get_mut(dir) else {
            return Vec::new();
        };
        if snapshot.stage != Stage::Delivering || !snapshot.owed.contains(sink) {
            // Already queued again (another sink lost it first), or done.
            return Vec::new();
        }
        snapshot.stage = Stage::Queued;
        if !self.processes {
            self.publishing -= 1;
        }
        self.queue.push_front(dir.to_path_buf());
        self.dispatch()
    }

    /// The removal of `dir` ended, done or failed. A failed one leaves the
    /// directory in src-dir: forgotten here, it is found by the next rescan
    /// and processed again (at-least-once).
    pub fn removal_ended(&mut self, dir: &Path) {
        self.forget(dir, Stage::Removing);
    }

    /// The quarantine of `dir` ended (moved, or left in place and logged).
    pub fn quarantine_ended(&mut self, dir: &Path) {
        self.forget(dir, Stage::Quarantining);
    }

    /// Shutdown: nothing new is queued or dispatched; what is processing or
    /// delivering goes on to its end. A snapshot queued again after a panic
    /// stays for the next start: the younger ones waiting for it go now.
    pub fn drain(&mut self) -> Vec<Action> {
        self.draining = true;
        for dir in &self.queue {
            if let Some(seq) = self.snapshots.get(dir).and_then(|s| s.seq) {
                self.unresolved.remove(&seq);
            }
        }
        self.release()
    }

    /// Whether [`drain`](Self::drain) was called.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Directories waiting for a Processor.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Directories a Processor has.
    pub fn in_flight(&self) -> usize {
        self.processing
    }

    /// Snapshots past the queue (processing, delivering, being removed or
    /// quarantined): a drain waits until none is left.
    pub fn busy(&self) -> usize {
        self.snapshots.len() - self.queue.len()
    }

    /// Where `dir` is, if known.
    pub fn stage(&self, dir: &Path) -> Option<Stage> {
        self.snapshots.get(dir).map(|snapshot| snapshot.stage)
    }

    fn forget(&mut self, dir: &Path, stage: Stage) {
        if self.stage(dir) == Some(stage) {
            self.snapshots.remove(dir);
        }
    }

    /// A Processor answered for `dir`: `decide` says what comes next, and
    /// the Processor takes the next directory waiting.
    fn answered(&mut self, dir: &Path, decide: impl FnOnce(&mut Snapshot) -> Next) -> Vec<Action> {
        let mut actions = Vec::new();
        let draining = self.draining;
        if let Some(snapshot) = self.finish_processing(dir) {
            let next = decide(snapshot);
            let owed = snapshot.owed;
            let path = dir.to_path_buf();
            let seq = snapshot.seq;
            // Whether younger snapshots no longer wait for this one.
            let mut resolved = true;
            match next {
                Next::Deliver if owed.is_empty() => {
                    snapshot.stage = Stage::Removing;
                    snapshot.seq = None;
                    actions.push(Action::Remove(path));
                }
                Next::Deliver => {
                    snapshot.stage = Stage::Held;
                    if let Some(seq) = seq {
                        self.held.insert(seq, path);
                    }
                }
                Next::Quarantine(reason) => {
                    snapshot.stage = Stage::Quarantining;
                    snapshot.seq = None;
                    actions.push(Action::Quarantine { dir: path, reason });
                }
                // Not dispatched again while draining: left for the next start.
                Next::Requeue => {
                    snapshot.stage = Stage::Queued;
                    self.queue.push_front(path);
                    resolved = draining;
                }
            }
            if resolved && let Some(seq) = seq {
                self.unresolved.remove(&seq);
            }
        }
        actions.extend(self.release());
        actions.extend(self.dispatch());
        actions
    }

    /// Delivers the held snapshots older than every unresolved one, in order.
    fn release(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            let seq = *entry.key();
            if self.unresolved.first().is_some_and(|oldest| *oldest < seq) {
                break;
            }
            let dir = entry.remove();
            if let Some(snapshot) = self.snapshots.get_mut(&dir) {
                snapshot.stage = Stage::Delivering;
                snapshot.seq = None;
                actions.push(Action::Deliver {
                    dir,
                    sinks: snapshot.owed,
                });
            }
        }
        actions
    }

    /// The snapshot a Processor answered for, out of Processing; `None`
    /// for an answer nobody waits for (a bug in the caller, ignored).
    fn finish_processing(&mut self, dir: &Path) -> Option<&mut Snapshot> {
        let snapshot = self.snapshots.get_mut(dir)?;
        if snapshot.stage != Stage::Processing {
            return None;
        }
        self.processing -= 1;
        Some(snapshot)
    }

    /// Hands queued directories to Processors (on an edge: to the sinks),
    /// at most `workers` at once.
    fn dispatch(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        while !self.draining && self.processing + self.publishing < self.workers {
            let Some(dir) = self.queue.pop_front() else {
                break;
            };
            let Some(snapshot) = self.snapshots.get_mut(&dir) else {
                continue;
            };
            if self.processes {
                snapshot.stage = Stage::Processing;
                self.processing += 1;
                let seq = *snapshot.seq.get_or_insert_with(|| {
                    self.next_seq += 1;
                    self.next_seq
                });
                self.unresolved.insert(seq);
                actions.push(Action::Process(dir));
            } else if snapshot.owed.is_empty() {
                snapshot.stage = Stage::Removing;
                actions.push(Action::Remove(dir));
            } else {
                snapshot.stage = Stage::Delivering;
                self.publishing += 1;
                actions.push(Action::Deliver {
                    dir,
                    sinks: snapshot.owed,
                });
            }
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAPHITE: SinkId = SinkId(0);
    const LOCAL_STORE: SinkId = SinkId(1);
    const BOTH: SinkSet = SinkSet(1 | 2);
    const NONE: [Action; 0] = [];

    fn dir(name: &str) -> PathBuf {
        PathBuf::from("/src").join(name)
    }

    fn process(name: &str) -> Action {
        Action::Process(dir(name))
    }

    fn deliver(name: &str, sinks: SinkSet) -> Action {
        Action::Deliver {
            dir: dir(name),
            sinks,
        }
    }

    fn remove(name: &str) -> Action {
        Action::Remove(dir(name))
    }

    #[test]
    fn the_happy_path_walks_queued_processing_delivering_removing_gone() {
        let mut p = Pipeline::new(1, BOTH);
        assert_eq!(p.found(dir("1")), [process("1")]);
        assert_eq!(p.stage(&dir("1")), Some(Stage::Processing));
        assert_eq!(p.processed(&dir("1")), [deliver("1", BOTH)]);
        assert_eq!(p.stage(&dir("1")), Some(Stage::Delivering));
        assert_eq!(p.acked(GRAPHITE, &dir("1")), NONE);
        assert_eq!(p.acked(LOCAL_STORE, &dir("1")), [remove("1")]);
        assert_eq!(p.busy(), 1, "a drain waits for the removal too");
        p.removal_ended(&dir("1"));
        assert_eq!(p.stage(&dir("1")), None);
        assert_eq!(p.busy(), 0);
    }

    #[test]
    fn a_directory_found_twice_is_queued_once() {
        let mut p = Pipeline::new(1, BOTH);
        p.found(dir("1"));
        assert_eq!(p.found(dir("1")), NONE);
        p.found(dir("2"));
        assert_eq!(p.found(dir("2")), NONE);
        assert_eq!((p.in_flight(), p.queued()), (1, 1));
        // Still known while it is delivered: a rescan does not queue it.
        p.processed(&dir("1"));
        assert_eq!(p.found(dir("1")), NONE);
        assert_eq!(p.queued(), 0);
    }

    #[test]
    fn at_most_workers_are_processed_at_once_oldest_first() {
        let mut p = Pipeline::new(2, BOTH);
        assert_eq!(p.found(dir("1")), [process("1")]);
        assert_eq!(p.found(dir("2")), [process("2")]);
        assert_eq!(p.found(dir("3")), NONE);
        assert_eq!(p.found(dir("4")), NONE);
        assert_eq!((p.in_flight(), p.queued()), (2, 2));
        // A Processor free again takes the oldest waiting; 2 waits for 1.
        assert_eq!(p.processed(&dir("2")), [process("3")]);
        assert_eq!(p.stage(&dir("2")), Some(Stage::Held));
        assert_eq!(
            p.unusable(&dir("1"), "empty".into()),
            [
                Action::Quarantine {
                    dir: dir("1"),
                    reason: "empty".into()
                },
                deliver("2", BOTH),
                process("4")
            ]
        );
        assert_eq!((p.in_flight(), p.queued()), (2, 0));
    }

    #[test]
    fn snapshots_reach_the_sinks_in_the_order_they_were_dispatched() {
        let mut p = Pipeline::new(3, BOTH);
        for name in ["1", "2", "3"] {
            p.found(dir(name));
        }
        assert_eq!(p.processed(&dir("3")), NONE);
        assert_eq!(p.processed(&dir("2")), NONE);
        assert_eq!(p.busy(), 3, "a drain waits for the held ones too");
        assert_eq!(
            p.processed(&dir("1")),
            [deliver("1", BOTH), deliver("2", BOTH), deliver("3", BOTH)]
        );
        // The oldest processed first goes at once.
        p.found(dir("4"));
        p.found(dir("5"));
        assert_eq!(p.processed(&dir("4")), [deliver("4", BOTH)]);
    }

    #[test]
    fn a_snapshot_processed_again_after_a_panic_keeps_its_place_in_the_order() {
        let mut p = Pipeline::new(2, BOTH);
        p.found(dir("1"));
        p.found(dir("2"));
        // 1 panics and goes again, first in line, once 2 frees a Processor.
        assert_eq!(p.panicked(&dir("1"), "boom".into()), [process("1")]);
        assert_eq!(p.processed(&dir("2")), NONE, "2 still waits for 1");
        assert_eq!(
            p.processed(&dir("1")),
            [deliver("1", BOTH), deliver("2", BOTH)]
        );
        // Quarantined at its second panic: the younger one goes.
        p.found(dir("3"));
        p.found(dir("4"));
        p.panicked(&dir("3"), "boom".into());
        assert_eq!(p.processed(&dir("4")), NONE);
        assert_eq!(
            p.panicked(&dir("3"), "boom".into()),
            [
                Action::Quarantine {
                    dir: dir("3"),
                    reason: "boom".into()
                },
                deliver("4", BOTH)
            ]
        );
    }

    #[test]
    fn a_drain_leaves_a_snapshot_queued_again_and_delivers_the_younger_ones() {
        let mut p = Pipeline::new(2, BOTH);
        p.found(dir("1"));
        p.found(dir("2"));
        p.found(dir("3"));
        assert_eq!(p.processed(&dir("2")), [process("3")]);
        // 1 panicked: queued again behind nothing, but the drain began.
        assert_eq!(p.drain(), NONE);
        assert_eq!(p.panicked(&dir("1"), "boom".into()), [deliver("2", BOTH)]);
        assert_eq!(p.stage(&dir("1")), Some(Stage::Queued));
        assert_eq!(p.processed(&dir("3")), [deliver("3", BOTH)]);
    }

    #[test]
    fn zero_workers_still_means_one() {
        let mut p = Pipeline::new(0, BOTH);
        assert_eq!(p.found(dir("1")), [process("1")]);
    }

    #[test]
    fn an_unusable_snapshot_is_quarantined_and_then_forgotten() {
        let mut p = Pipeline::new(1, BOTH);
        p.found(dir("1"));
        let actions = p.unusable(&dir("1"), "nothing usable".into());
        assert_eq!(
            actions,
            [Action::Quarantine {
                dir: dir("1"),
                reason: "nothing usable".into()
            }]
        );
        assert_eq!(p.stage(&dir("1")), Some(Stage::Quarantining));
        assert_eq!(p.busy(), 1);
        p.quarantine_ended(&dir("1"));
        assert_eq!((p.stage(&dir("1")), p.busy()), (None, 0));
    }

    #[test]
    fn a_panic_is_retried_once_first_in_line_then_quarantined() {
        let mut p = Pipeline::new(1, BOTH);
        p.found(dir("1"));
        p.found(dir("2"));
        // The retry goes before the snapshot that was waiting.
        assert_eq!(p.panicked(&dir("1"), "boom".into()), [process("1")]);
        assert_eq!(
            p.panicked(&dir("1"), "boom again".into()),
            [
                Action::Quarantine {
                    dir: dir("1"),
                    reason: "boom again".into()
                },
                process("2")
            ]
        );
    }

    #[test]
    fn a_snapshot_processed_after_a_panic_may_panic_once_more_later() {
        let mut p = Pipeline::new(1, SinkSet::EMPTY.with(GRAPHITE));
        p.found(dir("1"));
        p.panicked(&dir("1"), "boom".into());
        p.processed(&dir("1"));
        // Graphite died with its lines: processed again, and a panic now
        // is a first one again (the earlier run succeeded).
        assert_eq!(p.sink_lost(GRAPHITE, &dir("1")), [process("1")]);
        assert_eq!(p.panicked(&dir("1"), "boom".into()), [process("1")]);
    }

    #[test]
    fn a_request_the_processor_pool_lost_is_processed_again_first() {
        let mut p = Pipeline::new(1, BOTH);
        p.found(dir("1"));
        p.found(dir("2"));
        assert_eq!(p.processor_lost(&dir("1")), [process("1")]);
        assert_eq!(p.queued(), 1);
    }

    #[test]
    fn a_snapshot_is_removed_only_once_every_enabled_sink_acknowledged() {
        let mut p = Pipeline::new(1, BOTH);
        p.found(dir("1"));
        p.processed(&dir("1"));
        assert_eq!(p.acked(LOCAL_STORE, &dir("1")), NONE);
        // A second acknowledgement from the same sink is not the other's.
        assert_eq!(p.acked(LOCAL_STORE, &dir("1")), NONE);
        assert_eq!(p.stage(&dir("1")), Some(Stage::Delivering));
        assert_eq!(p.acked(GRAPHITE, &dir("1")), [remove("1")]);
        // Late or unknown acknowledgements change nothing.
        assert_eq!(p.acked(GRAPHITE, &dir("1")), NONE);
        assert_eq!(p.acked(GRAPHITE, &dir("9")), NONE);
    }

    #[test]
    fn only_the_enabled_sinks_are_waited_for() {
        let local_only = SinkSet::EMPTY.with(LOCAL_STORE);
        let mut p = Pipeline::new(1, local_only);
        p.found(dir("1"));
        assert_eq!(p.processed(&dir("1")), [deliver("1", local_only)]);
        assert_eq!(p.acked(LOCAL_STORE, &dir("1")), [remove("1")]);
        // No sink at all (the configuration refuses it): removed at once.
        let mut none = Pipeline::new(1, SinkSet::EMPTY);
        none.found(dir("1"));
        assert_eq!(none.processed(&dir("1")), [remove("1")]);
    }

    #[test]
    fn a_sink_restart_loses_its_unacknowledged_snapshots_which_are_sent_again() {
        let mut p = Pipeline::new(2, BOTH);
        for name in ["1", "2", "3"] {
            p.found(dir(name));
        }
        p.processed(&dir("1"));
        p.processed(&dir("2"));
        p.processed(&dir("3"));
        // Local-store wrote 1 and 2; Graphite confirmed 1 only, then died:
        // 2 and 3 are lost for it (their acknowledgements never come).
        p.acked(LOCAL_STORE, &dir("1"));
        p.acked(LOCAL_STORE, &dir("2"));
        assert_eq!(p.acked(GRAPHITE, &dir("1")), [remove("1")]);
        assert_eq!(p.sink_lost(GRAPHITE, &dir("2")), [process("2")]);
        assert_eq!(p.sink_lost(GRAPHITE, &dir("3")), [process("3")]);
        // Local-store still had 3 on its way: its acknowledgement counts.
        assert_eq!(p.acked(LOCAL_STORE, &dir("3")), NONE);
        // Not removed early: processed again, each goes to Graphite alone.
        assert_eq!(p.stage(&dir("2")), Some(Stage::Processing));
        let graphite = SinkSet::EMPTY.with(GRAPHITE);
        assert_eq!(p.processed(&dir("2")), [deliver("2", graphite)]);
        assert_eq!(p.processed(&dir("3")), [deliver("3", graphite)]);
        assert_eq!(p.acked(GRAPHITE, &dir("3")), [remove("3")]);
        assert_eq!(p.acked(GRAPHITE, &dir("2")), [remove("2")]);
    }

    #[test]
    fn a_snapshot_both_sinks_lose_is_processed_again_once() {
        let mut p = Pipeline::new(1, BOTH);
        p.found(dir("1"));
        p.processed(&dir("1"));
        assert_eq!(p.sink_lost(LOCAL_STORE, &dir("1")), [process("1")]);
        assert_eq!(p.sink_lost(GRAPHITE, &dir("1")), NONE);
        assert_eq!(p.queued(), 0);
        assert_eq!(p.processed(&dir("1")), [deliver("1", BOTH)]);
        // A loss reported for a sink that already acknowledged is ignored.
        p.acked(LOCAL_STORE, &dir("1"));
        assert_eq!(p.sink_lost(LOCAL_STORE, &dir("1")), NONE);
        assert_eq!(p.stage(&dir("1")), Some(Stage::Delivering));
    }

    #[test]
    fn draining_stops_queueing_and_dispatch_but_lets_the_busy_ones_finish() {
        let mut p = Pipeline::new(1, BOTH);
        p.found(dir("1"));
        p.found(dir("2"));
        p.drain();
        assert!(p.draining());
        assert_eq!(p.found(dir("3")), NONE);
        assert_eq!(p.queued(), 1, "3 is not queued");
        // 1 goes to the sinks, but 2 is not dispatched.
        assert_eq!(p.processed(&dir("1")), [deliver("1", BOTH)]);
        assert_eq!(p.busy(), 1);
        // A snapshot lost by a sink during the drain waits for next start.
        assert_eq!(p.sink_lost(GRAPHITE, &dir("1")), NONE);
        assert_eq!(p.busy(), 0, "the drain does not wait for queued ones");
    }

    #[test]
    fn a_failed_removal_forgets_the_snapshot_so_a_rescan_finds_it_again() {
        let mut p = Pipeline::new(1, SinkSet::EMPTY.with(GRAPHITE));
        p.found(dir("1"));
        p.processed(&dir("1"));
        p.acked(GRAPHITE, &dir("1"));
        p.removal_ended(&dir("1"));
        assert_eq!(p.found(dir("1")), [process("1")]);
    }

    #[test]
    fn ends_reported_for_another_stage_change_nothing() {
        let mut p = Pipeline::new(1, BOTH);
        p.found(dir("1"));
        p.removal_ended(&dir("1"));
        p.quarantine_ended(&dir("1"));
        assert_eq!(p.stage(&dir("1")), Some(Stage::Processing));
        // An answer for a directory no Processor has is ignored.
        p.found(dir("2"));
        assert_eq!(p.processed(&dir("2")), NONE);
        assert_eq!(p.panicked(&dir("2"), "x".into()), NONE);
        assert_eq!(p.stage(&dir("2")), Some(Stage::Queued));
    }

    #[test]
    fn sink_sets_hold_what_was_put_in() {
        let set: SinkSet = [LOCAL_STORE].into_iter().collect();
        assert!(set.contains(LOCAL_STORE) && !set.contains(GRAPHITE));
        assert_eq!(BOTH.iter().collect::<Vec<_>>(), [GRAPHITE, LOCAL_STORE]);
        let all = SinkSet::first(SinkId::MAX + 3);
        assert_eq!(
            all.iter().collect::<Vec<_>>(),
            (0..8).map(SinkId).collect::<Vec<_>>()
        );
        assert_eq!(SinkSet::first(2), BOTH);
        assert!(BOTH.without(GRAPHITE).without(LOCAL_STORE).is_empty());
    }

    #[test]
    fn an_edge_hands_snapshots_to_the_sinks_unprocessed_at_most_workers_at_once() {
        let mut p = Pipeline::without_processing(2, BOTH);
        assert_eq!(p.found(dir("1")), [deliver("1", BOTH)]);
        assert_eq!(p.found(dir("2")), [deliver("2", BOTH)]);
        assert_eq!(p.found(dir("3")), NONE, "two at once");
        assert_eq!(p.stage(&dir("3")), Some(Stage::Queued));
        assert_eq!((p.queued(), p.in_flight(), p.busy()), (1, 0, 2));
        assert_eq!(p.acked(GRAPHITE, &dir("1")), NONE);
        // The last acknowledgement frees the place for the next one.
        assert_eq!(
            p.acked(LOCAL_STORE, &dir("1")),
            [remove("1"), deliver("3", BOTH)]
        );
        // A sink lost 2: queued again, first in line, for that sink only.
        assert_eq!(p.acked(GRAPHITE, &dir("2")), NONE);
        p.found(dir("4"));
        assert_eq!(
            p.sink_lost(LOCAL_STORE, &dir("2")),
            [deliver("2", SinkSet::EMPTY.with(LOCAL_STORE))]
        );
        assert_eq!(p.stage(&dir("4")), Some(Stage::Queued));
        assert_eq!(
            p.acked(LOCAL_STORE, &dir("2")),
            [remove("2"), deliver("4", BOTH)]
        );
        // Draining: nothing new goes out.
        p.drain();
        p.found(dir("5"));
        p.acked(GRAPHITE, &dir("3"));
        assert_eq!(p.acked(LOCAL_STORE, &dir("3")), [remove("3")]);
    }
}
