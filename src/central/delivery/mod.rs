//! Central's delivery as plain code (SPEC §7): what goes to which sink and
//! when, which partial goes to the broker and when, what may be committed,
//! and when consumption pauses. Events go in (a method each), [`Output`]s
//! come out for the Central actor to carry out; no actor, no I/O, no clock,
//! so every transition is unit-tested (tests.rs), and a proptest drives
//! random interleavings of all of them.
//!
//! A piece of work is a snapshot (stage 1) or a cluster's window (stage 2):
//!
//! ```text
//! snapshot: dispatched ──processed──► lines: per sink Held ─► Handed ─► Acked ─┐
//!               │                     partial: Ready ─► Sent ─► Acked ─────────┼─► done: offsets done
//!               └──unprocessable──► done at once (a bad message)               │
//! window:   emitted ──merged──► (after the cluster's earlier windows) lines ───┴─► done: Windows' Acked
//!               └──cannot be merged──► done at once
//! ```
//!
//! - **Sinks are never pushed past their `queue-size`.** Each sink owes
//!   lines (handed, not acknowledged: snapshots', windows' and self
//!   metrics'); lines that would take it past its capacity are *held* for
//!   it, in order, and handed over as it acknowledges. Held lines pause
//!   consumption: Kafka is the buffer, where the daemon's sinks drop their
//!   oldest lines instead.
//! - **An LB's partials leave in dispatch order**: a partition's partials
//!   wait for those of the snapshots dispatched before them (stage 2 reads
//!   an LB's later window as "it reported"). Once the partition is revoked
//!   (or the consumer replaced) there is no order to keep: what waited goes
//!   out at once, and so does what is processed later (copies are harmless
//!   to stage 2). A cluster's windows go to the sinks in emission order the
//!   same way.
//! - **Offsets are done** once every sink acknowledged the snapshot's lines
//!   and the broker its partial ([`Offsets`] then says what to commit).
//! - **Pause** while a sink holds lines or reports a full backlog, or while
//!   too many snapshots are in flight, with hysteresis: resumed once half of
//!   them are done (cluster windows do not count).
//! - A sink that dies loses the lines it had not acknowledged: they are
//!   handed to it again (its slot keeps them until it is back).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::offsets::{Epoch, Offsets};
use crate::sink::slot::{Backlog, WhenFull};

/// Snapshots in flight (processing or delivering) per processor beyond
/// which the consumer pauses: enough to keep every processor busy while
/// the sinks confirm, bounded so that memory is too.
pub const IN_FLIGHT_PER_WORKER: usize = 4;

/// A piece of work (a snapshot or a window) from its dispatch until it is
/// done; numbered in dispatch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkId(u64);

/// A sink: its place in Central's list of sinks.
pub type Sink = usize;

/// A snapshot given up: where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenUp {
    /// Its partition.
    pub partition: i32,
    /// Its messages' offsets.
    pub offsets: Vec<i64>,
}

/// What the actor is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<L, P> {
    /// Hand `lines` to `sink`; its answer is [`Delivery::sink_acked`], or
    /// [`Delivery::sink_lost`] when it dies first.
    HandLines {
        /// Whose lines.
        id: WorkId,
        /// To which sink.
        sink: Sink,
        /// The lines.
        lines: L,
    },
    /// Hand the self metrics to `sink` (they count as owed until it
    /// answers: [`Delivery::self_metrics_answered`]).
    HandSelfMetrics {
        /// To which sink.
        sink: Sink,
    },
    /// Send snapshot `id`'s partial to the broker; its answer is
    /// [`Delivery::partial_acked`], or, failed, [`Delivery::resend_partial`]
    /// after a while.
    SendPartial {
        /// Whose partial.
        id: WorkId,
        /// The partial.
        partial: P,
    },
    /// Every sink and the broker have the snapshot: its offsets are done.
    SnapshotDelivered {
        /// Its partition.
        partition: i32,
        /// Its messages' offsets.
        offsets: Vec<i64>,
    },
    /// Every sink has the window (or it could not be merged): to the
    /// windows as acknowledged.
    WindowDelivered {
        /// Its cluster.
        cluster: String,
        /// Its start.
        window: u64,
    },
    /// Pause both consumers.
    Pause,
    /// Resume both consumers.
    Resume,
    /// `sink` cannot take more: said once, until every sink drained.
    SinkFull {
        /// The first sink found full.
        sink: Sink,
    },
    /// No sink is full any more.
    SinksDrained,
}

/// What a piece of work is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A snapshot: its offsets are done once delivered.
    Snapshot {
        partition: i32,
        epoch: Epoch,
        offsets: Vec<i64>,
    },
    /// A cluster's window: acknowledged to the windows once delivered.
    Window { cluster: String, window: u64 },
}

/// Where a piece of work's lines are, for one sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtSink {
    /// Waiting for room in the sink (in its held queue).
    Held,
    /// Handed over, counted as owed by the sink.
    Handed,
    /// Acknowledged.
    Acked,
}

/// Where a snapshot's partial is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PartialState<P> {
    /// Not processed yet (a window never has one).
    Unknown,
    /// It has none, or it went and the broker acknowledged it.
    Settled,
    /// Processed; waits for the partials dispatched before it.
    Ready(P),
    /// With the broker.
    Sent(P),
}

/// A piece of work's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lines<L> {
    /// Not processed (merged) yet.
    Pending,
    /// A merged window's, waiting for the cluster's earlier windows.
    Merged(L),
    /// With the sinks (per sink: [`Work::sinks`]), kept to hand them again.
    Handed(L),
}

#[derive(Debug)]
struct Work<L, P> {
    kind: Kind,
    lines: Lines<L>,
    line_count: u64,
    /// Per sink, once handed (empty before).
    sinks: Vec<AtSink>,
    partial: PartialState<P>,
}

impl<L, P> Work<L, P> {
    fn done(&self) -> bool {
        matches!(self.lines, Lines::Handed(_))
            && self.sinks.iter().all(|s| *s == AtSink::Acked)
            && matches!(self.partial, PartialState::Settled)
    }

    fn is_snapshot(&self) -> bool {
        matches!(self.kind, Kind::Snapshot { .. })
    }
}

/// One sink as delivery sees it.
#[derive(Debug, Default)]
struct SinkRoom {
    /// Lines handed to it and not acknowledged yet.
    owed: u64,
    /// Work whose lines it cannot take yet, in order.
    held: std::collections::VecDeque<WorkId>,
    /// Its last reported backlog.
    backlog: Backlog,
}

impl SinkRoom {
    /// It can take `lines` more without going past its capacity (or owes
    /// nothing: a snapshot bigger than its queue-size goes alone, as in the
    /// daemon). Its reported backlog counts too: it may hold lines Central
    /// did not count.
    fn can_take(&self, lines: u64) -> bool {
        self.owed == 0 || WhenFull::Hold.has_room(self.backlog, self.owed, lines)
    }

    /// It holds lines back, or reports a backlog at its capacity: what it
    /// is given now would push older lines out.
    fn full(&self) -> bool {
        !self.held.is_empty() || self.backlog.full()
    }
}

/// Central's delivery: `L` is a piece of work's lines, `P` a partial, both
/// cheap to clone (shared).
#[derive(Debug)]
pub struct Delivery<L, P> {
    sinks: Vec<SinkRoom>,
    work: BTreeMap<WorkId, Work<L, P>>,
    next_id: u64,
    offsets: Offsets,
    /// Per partition, its snapshots whose partial has not gone yet, in
    /// dispatch order.
    partial_order: BTreeMap<i32, BTreeSet<WorkId>>,
    /// Per cluster, its windows not yet handed to the sinks, in emission
    /// order.
    window_order: HashMap<String, BTreeSet<WorkId>>,
    /// Snapshots in flight at which consumption pauses.
    max_snapshots: usize,
    paused: bool,
    /// A sink was found full ([`Output::SinkFull`]), said once until every
    /// sink drained.
    sink_full: bool,
    /// Stopping: paused for good.
    draining: bool,
}

impl<L: Clone, P: Clone> Delivery<L, P> {
    /// Delivery to `sinks` sinks, pausing at `max_snapshots` snapshots in
    /// flight (`workers ×` [`IN_FLIGHT_PER_WORKER`]).
    pub fn new(sinks: usize, max_snapshots: usize) -> Delivery<L, P> {
        Delivery {
            sinks: (0..sinks).map(|_| SinkRoom::default()).collect(),
            work: BTreeMap::new(),
            next_id: 0,
            offsets: Offsets::new(),
            partial_order: BTreeMap::new(),
            window_order: HashMap::new(),
            max_snapshots: max_snapshots.max(1),
            paused: false,
            sink_full: false,
            draining: false,
        }
    }

    // ---- the snapshots topic's partitions and offsets ----

    /// `partition` is assigned (again): a new epoch.
    pub fn assigned(&mut self, partition: i32) -> Vec<Output<L, P>> {
        self.offsets.assign(partition);
        self.settle()
    }

    /// `partition` is revoked: its offsets are forgotten, never committed;
    /// its partials waiting for order go at once. Its work goes on.
    pub fn revoked(&mut self, partition: i32) -> Vec<Output<L, P>> {
        self.offsets.revoke(partition);
        let mut out = Vec::new();
        if let Some(waiting) = self.partial_order.remove(&partition) {
            self.send_ready(waiting, &mut out);
        }
        self.settle_into(out)
    }

    /// The consumer was replaced: every partition is forgotten, as if
    /// revoked. The pause state stays: the new consumer starts where the
    /// other one is (both follow one pause state).
    pub fn consumer_replaced(&mut self) -> Vec<Output<L, P>> {
        self.offsets.clear();
        let mut out = Vec::new();
        for (_, waiting) in std::mem::take(&mut self.partial_order) {
            self.send_ready(waiting, &mut out);
        }
        self.settle_into(out)
    }

    /// A message at `offset` of `partition` was read: in flight until done.
    /// `None`: the partition is not assigned (dropped).
    pub fn received(&mut self, partition: i32, offset: i64) -> Option<Epoch> {
        self.offsets.received(partition, offset)
    }

    /// The current epoch of `partition`, if it is assigned.
    pub fn epoch(&self, partition: i32) -> Option<Epoch> {
        self.offsets.epoch(partition)
    }

    /// Bad messages (or a snapshot given up): their offsets are done.
    pub fn bad(&mut self, partition: i32, epoch: Epoch, offsets: &[i64]) {
        self.offsets.done(partition, epoch, offsets);
    }

    /// The commit tick: the offsets of the snapshots topic that may be
    /// committed now (partition, offset), each past every snapshot that
    /// every sink and the broker acknowledged; they count as committed.
    pub fn commit_tick(&mut self) -> Vec<(i32, i64)> {
        self.offsets.take_commits()
    }

    // ---- stage 1: snapshots ----

    /// A whole snapshot of `partition` (read in `epoch`, at `offsets`) goes
    /// to a processor.
    pub fn dispatched(
        &mut self,
        partition: i32,
        epoch: Epoch,
        offsets: Vec<i64>,
    ) -> (WorkId, Vec<Output<L, P>>) {
        let id = self.insert(Kind::Snapshot {
            partition,
            epoch,
            offsets,
        });
        // Kept in order only while the partition is ours in that epoch.
        if self.offsets.epoch(partition) == Some(epoch) {
            self.partial_order.entry(partition).or_default().insert(id);
        }
        (id, self.settle())
    }

    /// Snapshot `id` is processed: `count` lines to every sink (as far as
    /// they can take them), its partial (if any) to the broker after the
    /// earlier ones of its partition.
    pub fn processed(
        &mut self,
        id: WorkId,
        lines: L,
        count: u64,
        partial: Option<P>,
    ) -> Vec<Output<L, P>> {
        let mut out = Vec::new();
        let Some(work) = self.work.get_mut(&id) else {
            return out;
        };
        if !matches!(work.lines, Lines::Pending) {
            return out;
        }
        let Kind::Snapshot { partition, .. } = work.kind else {
            return out;
        };
        work.partial = match partial {
            Some(partial) => PartialState::Ready(partial),
            None => PartialState::Settled,
        };
        self.hand_lines(id, lines, count, &mut out);
        match self.partial_order.get_mut(&partition) {
            Some(waiting) if waiting.contains(&id) => self.release_partials(partition, &mut out),
            // Revoked since: nothing to keep in order with.
            _ => self.send_ready([id], &mut out),
        }
        self.finish_if_done(id, &mut out);
        self.settle_into(out)
    }

    /// Snapshot `id` cannot be processed: given up, its offsets done (as a
    /// bad message). Answers where it was, for the log.
    pub fn unprocessable(&mut self, id: WorkId) -> (Option<GivenUp>, Vec<Output<L, P>>) {
        let mut out = Vec::new();
        let given_up = match self.work.get(&id) {
            Some(work) if work.is_snapshot() && matches!(work.lines, Lines::Pending) => {
                self.work.remove(&id)
            }
            _ => None,
        };
        let Some(Work {
            kind:
                Kind::Snapshot {
                    partition,
                    epoch,
                    offsets,
                },
            ..
        }) = given_up
        else {
            return (None, out);
        };
        self.offsets.done(partition, epoch, &offsets);
        if self
            .partial_order
            .get_mut(&partition)
            .is_some_and(|waiting| waiting.remove(&id))
        {
            self.release_partials(partition, &mut out);
        }
        (Some(GivenUp { partition, offsets }), self.settle_into(out))
    }

    /// Whether `id` is still in flight (a processor that lost it processes
    /// it again only then).
    pub fn in_flight_contains(&self, id: WorkId) -> bool {
        self.work.contains_key(&id)
    }

    /// The broker has snapshot `id`'s partial.
    pub fn partial_acked(&mut self, id: WorkId) -> Vec<Output<L, P>> {
        let mut out = Vec::new();
        if let Some(work) = self.work.get_mut(&id)
            && matches!(work.partial, PartialState::Sent(_))
        {
            work.partial = PartialState::Settled;
            self.finish_if_done(id, &mut out);
        }
        self.settle_into(out)
    }

    /// Snapshot `id`'s partial failed a while ago: sent again, unless the
    /// snapshot is done since.
    pub fn resend_partial(&self, id: WorkId) -> Vec<Output<L, P>> {
        match self.work.get(&id).map(|w| &w.partial) {
            Some(PartialState::Sent(partial)) => vec![Output::SendPartial {
                id,
                partial: partial.clone(),
            }],
            _ => Vec::new(),
        }
    }

    // ---- stage 2: windows ----

    /// The windows closed `window` of `cluster`: it goes to a processor to
    /// be merged.
    pub fn window_emitted(&mut self, cluster: String, window: u64) -> WorkId {
        let id = self.insert(Kind::Window {
            cluster: cluster.clone(),
            window,
        });
        self.window_order.entry(cluster).or_default().insert(id);
        id
    }

    /// Window `id` is merged into `count` lines: to every sink after the
    /// cluster's windows emitted before it.
    pub fn merged(&mut self, id: WorkId, lines: L, count: u64) -> Vec<Output<L, P>> {
        let mut out = Vec::new();
        let cluster = match self.work.get_mut(&id) {
            Some(work) if matches!(work.lines, Lines::Pending) => {
                let Kind::Window { cluster, .. } = &work.kind else {
                    return out;
                };
                work.line_count = count;
                work.partial = PartialState::Settled;
                work.lines = Lines::Merged(lines);
                cluster.clone()
            }
            _ => return out,
        };
        match self.window_order.get(&cluster) {
            Some(waiting) if waiting.contains(&id) => self.release_windows(&cluster, &mut out),
            // Emitted by a consumer replaced since: no order to keep.
            _ => self.hand_window(id, &mut out),
        }
        self.settle_into(out)
    }

    /// Window `id` cannot be merged: given up (as a bad snapshot is), so
    /// that its offsets do not stall.
    pub fn merge_failed(&mut self, id: WorkId) -> Vec<Output<L, P>> {
        let mut out = Vec::new();
        let given_up = match self.work.get(&id) {
            Some(work) if matches!(work.lines, Lines::Pending) => self.work.remove(&id),
            _ => None,
        };
        let Some(Work {
            kind: Kind::Window { cluster, window },
            ..
        }) = given_up
        else {
            return out;
        };
        if self
            .window_order
            .get_mut(&cluster)
            .is_some_and(|waiting| waiting.remove(&id))
        {
            self.release_windows(&cluster, &mut out);
        }
        out.push(Output::WindowDelivered { cluster, window });
        self.settle_into(out)
    }

    /// Stage 2's consumer was replaced: no window order to keep; the merged
    /// windows that waited go to the sinks at once.
    pub fn merge_consumer_replaced(&mut self) -> Vec<Output<L, P>> {
        let mut out = Vec::new();
        let waiting: Vec<WorkId> = std::mem::take(&mut self.window_order)
            .into_values()
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for id in waiting {
            if self
                .work
                .get(&id)
                .is_some_and(|w| !matches!(w.lines, Lines::Pending))
            {
                self.hand_window(id, &mut out);
            }
        }
        self.settle_into(out)
    }

    // ---- the sinks ----

    /// `sink` has `id`'s lines: no longer owed; what it held goes to it as
    /// far as its capacity allows.
    pub fn sink_acked(&mut self, id: WorkId, sink: Sink) -> Vec<Output<L, P>> {
        let mut out = Vec::new();
        if let Some(work) = self.work.get_mut(&id)
            && let Some(at) = work.sinks.get_mut(sink)
            && *at == AtSink::Handed
        {
            *at = AtSink::Acked;
            if let Some(room) = self.sinks.get_mut(sink) {
                room.owed = room.owed.saturating_sub(work.line_count);
            }
            self.finish_if_done(id, &mut out);
        }
        self.release_held(sink, &mut out);
        self.settle_into(out)
    }

    /// `sink` died before acknowledging `id`'s lines: the same lines go to
    /// it again (its slot keeps them for the restarted sink).
    pub fn sink_lost(&mut self, id: WorkId, sink: Sink) -> Vec<Output<L, P>> {
        match self.work.get(&id) {
            Some(Work {
                lines: Lines::Handed(lines),
                sinks,
                ..
            }) if sinks.get(sink) == Some(&AtSink::Handed) => vec![Output::HandLines {
                id,
                sink,
                lines: lines.clone(),
            }],
            _ => Vec::new(),
        }
    }

    /// `sink` reports `backlog` lines of at most `capacity` (0: unbounded).
    pub fn sink_health(&mut self, sink: Sink, backlog: u64, capacity: u64) -> Vec<Output<L, P>> {
        let mut out = Vec::new();
        if let Some(room) = self.sinks.get_mut(sink) {
            room.backlog = Backlog {
                lines: backlog,
                capacity,
            };
            self.release_held(sink, &mut out);
        }
        self.settle_into(out)
    }

    /// Self metrics of `count` lines: to every sink with room for them (no
    /// offset waits for them, but they count as owed until the sink
    /// answers, so that snapshot lines never find its backlog fuller than
    /// counted). A sink owed all it can hold gets none: they would push
    /// snapshot lines out, and are sent again next interval.
    pub fn self_metrics(&mut self, count: u64) -> Vec<Output<L, P>> {
        let mut out = Vec::new();
        for (sink, room) in self.sinks.iter_mut().enumerate() {
            if !WhenFull::Hold.has_room(room.backlog, room.owed, count) {
                continue;
            }
            room.owed += count;
            out.push(Output::HandSelfMetrics { sink });
        }
        out
    }

    /// `sink` answered (or dropped) self metrics of `count` lines.
    pub fn self_metrics_answered(&mut self, sink: Sink, count: u64) -> Vec<Output<L, P>> {
        let mut out = Vec::new();
        if let Some(room) = self.sinks.get_mut(sink) {
            room.owed = room.owed.saturating_sub(count);
            self.release_held(sink, &mut out);
        }
        self.settle_into(out)
    }

    // ---- stop ----

    /// Stopping: consumption pauses for good; work in flight finishes.
    pub fn drain(&mut self) -> Vec<Output<L, P>> {
        self.draining = true;
        self.settle()
    }

    // ---- what the actor reports ----

    /// Stopping ([`Delivery::drain`]): a message read now is not taken in.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Snapshots and windows in flight.
    pub fn in_flight(&self) -> usize {
        self.work.len()
    }

    /// Whether consumption is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Lines `sink` owes now.
    pub fn owed(&self, sink: Sink) -> u64 {
        self.sinks.get(sink).map_or(0, |room| room.owed)
    }

    // ---- the transitions' common steps ----

    fn insert(&mut self, kind: Kind) -> WorkId {
        self.next_id += 1;
        let id = WorkId(self.next_id);
        self.work.insert(
            id,
            Work {
                kind,
                lines: Lines::Pending,
                line_count: 0,
                sinks: Vec::new(),
                partial: PartialState::Unknown,
            },
        );
        id
    }

    /// Hands `id`'s lines to every sink that can take them now, holds them
    /// for the others (behind what they hold already).
    fn hand_lines(&mut self, id: WorkId, lines: L, count: u64, out: &mut Vec<Output<L, P>>) {
        let Some(work) = self.work.get_mut(&id) else {
            return;
        };
        work.line_count = count;
        work.sinks = Vec::with_capacity(self.sinks.len());
        for (sink, room) in self.sinks.iter_mut().enumerate() {
            if room.held.is_empty() && room.can_take(count) {
                room.owed += count;
                work.sinks.push(AtSink::Handed);
                out.push(Output::HandLines {
                    id,
                    sink,
                    lines: lines.clone(),
                });
            } else {
                room.held.push_back(id);
                work.sinks.push(AtSink::Held);
            }
        }
        work.lines = Lines::Handed(lines);
    }

    /// Window `id`, merged, goes to the sinks now.
    fn hand_window(&mut self, id: WorkId, out: &mut Vec<Output<L, P>>) {
        let Some((lines, count)) = self.work.get(&id).and_then(|w| match &w.lines {
            Lines::Merged(lines) => Some((lines.clone(), w.line_count)),
            _ => None,
        }) else {
            return;
        };
        self.hand_lines(id, lines, count, out);
        self.finish_if_done(id, out);
    }

    /// Hands `sink` what it held, in order, as far as its capacity allows.
    fn release_held(&mut self, sink: Sink, out: &mut Vec<Output<L, P>>) {
        let Some(room) = self.sinks.get_mut(sink) else {
            return;
        };
        while let Some(&next) = room.held.front() {
            let Some(work) = self.work.get_mut(&next) else {
                room.held.pop_front();
                continue;
            };
            if !room.can_take(work.line_count) {
                break;
            }
            room.held.pop_front();
            let (Some(at), Lines::Handed(lines)) = (work.sinks.get_mut(sink), &work.lines) else {
                continue;
            };
            if *at != AtSink::Held {
                continue;
            }
            *at = AtSink::Handed;
            room.owed += work.line_count;
            out.push(Output::HandLines {
                id: next,
                sink,
                lines: lines.clone(),
            });
        }
    }

    /// Sends the partials of `partition` whose earlier ones all went.
    fn release_partials(&mut self, partition: i32, out: &mut Vec<Output<L, P>>) {
        let Some(waiting) = self.partial_order.get_mut(&partition) else {
            return;
        };
        let mut sendable = Vec::new();
        while let Some(&first) = waiting.first() {
            match self.work.get(&first).map(|w| &w.partial) {
                Some(PartialState::Unknown) => break,
                _ => {
                    waiting.pop_first();
                    sendable.push(first);
                }
            }
        }
        self.send_ready(sendable, out);
    }

    /// Sends the ready partials among `ids`, in that order.
    fn send_ready(&mut self, ids: impl IntoIterator<Item = WorkId>, out: &mut Vec<Output<L, P>>) {
        for id in ids {
            let Some(work) = self.work.get_mut(&id) else {
                continue;
            };
            if let PartialState::Ready(partial) = &work.partial {
                let partial = partial.clone();
                work.partial = PartialState::Sent(partial.clone());
                out.push(Output::SendPartial { id, partial });
            }
        }
    }

    /// Hands `cluster`'s merged windows with none before them still merging.
    fn release_windows(&mut self, cluster: &str, out: &mut Vec<Output<L, P>>) {
        let Some(waiting) = self.window_order.get_mut(cluster) else {
            return;
        };
        let mut ready = Vec::new();
        while let Some(&first) = waiting.first() {
            if self
                .work
                .get(&first)
                .is_some_and(|w| matches!(w.lines, Lines::Pending))
            {
                break;
            }
            waiting.pop_first();
            ready.push(first);
        }
        if waiting.is_empty() {
            self.window_order.remove(cluster);
        }
        for id in ready {
            self.hand_window(id, out);
        }
    }

    /// Once every sink (and the broker) has `id`, it is done.
    fn finish_if_done(&mut self, id: WorkId, out: &mut Vec<Output<L, P>>) {
        if !self.work.get(&id).is_some_and(Work::done) {
            return;
        }
        let Some(work) = self.work.remove(&id) else {
            return;
        };
        match work.kind {
            Kind::Snapshot {
                partition,
                epoch,
                offsets,
            } => {
                self.offsets.done(partition, epoch, &offsets);
                out.push(Output::SnapshotDelivered { partition, offsets });
            }
            Kind::Window { cluster, window } => {
                out.push(Output::WindowDelivered { cluster, window });
            }
        }
    }

    fn settle(&mut self) -> Vec<Output<L, P>> {
        self.settle_into(Vec::new())
    }

    /// `out`, then a pause or resume if the state calls for it.
    fn settle_into(&mut self, mut out: Vec<Output<L, P>>) -> Vec<Output<L, P>> {
        let full = self.sinks.iter().position(SinkRoom::full);
        // Said once per episode, whatever paused consumption first.
        match full {
            Some(sink) if !self.sink_full => {
                self.sink_full = true;
                out.push(Output::SinkFull { sink });
            }
            None if self.sink_full => {
                self.sink_full = false;
                out.push(Output::SinksDrained);
            }
            _ => {}
        }
        // Hysteresis on the work in flight: a pause drops what librdkafka
        // had fetched ahead, and a resume fetches it again, so pausing and
        // resuming at every snapshot would leave the processors waiting on
        // the broker (measured: 1 snapshot in 7 s of a 5-per-second stream).
        // Snapshots only: a cluster's windows are small, bounded by the
        // sinks' backlogs, and come in bursts when several close at once,
        // which would pause stage 1 for nothing.
        let snapshots = self.work.values().filter(|w| w.is_snapshot()).count();
        let busy = if self.paused {
            snapshots > self.max_snapshots / 2
        } else {
            snapshots >= self.max_snapshots
        };
        let pause = self.draining || full.is_some() || busy;
        if pause != self.paused {
            self.paused = pause;
            out.push(if pause { Output::Pause } else { Output::Resume });
        }
        out
    }
}

#[cfg(test)]
mod tests;
