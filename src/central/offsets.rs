//! Which offsets may be committed (SPEC §7: "offsets are committed once
//! the lines are acknowledged by every sink and the partial by the
//! broker"). Pure.
//!
//! Per assigned partition, every offset received is *in flight* until it
//! is done: a snapshot's offsets once every sink acknowledged its lines and
//! the broker its partial; a bad message's at once. The committable offset
//! is one past the highest offset below which everything is done — the
//! first offset still in flight, or one past the highest received when
//! none is — so a slow snapshot holds back the commit of faster ones after
//! it, never the other way round (at-least-once: after a crash, whatever is
//! past the commit is read and delivered again).
//!
//! Each assignment of a partition has an *epoch*: work started under an
//! earlier assignment (revoked since, maybe given back) never marks the
//! offsets of the new one done.

use std::collections::{BTreeSet, HashMap};

/// The assignment a piece of work belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(u64);

#[derive(Debug)]
struct Partition {
    epoch: Epoch,
    in_flight: BTreeSet<i64>,
    highest: Option<i64>,
    committed: Option<i64>,
}

/// The offsets of every assigned partition.
#[derive(Debug, Default)]
pub struct Offsets {
    partitions: HashMap<i32, Partition>,
    next_epoch: u64,
}

impl Offsets {
    /// An empty table: nothing assigned.
    pub fn new() -> Offsets {
        Offsets::default()
    }

    /// `partition` is ours (again): a new epoch, nothing in flight.
    pub fn assign(&mut self, partition: i32) -> Epoch {
        self.next_epoch += 1;
        let epoch = Epoch(self.next_epoch);
        self.partitions.insert(
            partition,
            Partition {
                epoch,
                in_flight: BTreeSet::new(),
                highest: None,
                committed: None,
            },
        );
        epoch
    }

    /// `partition` is no longer ours: its in-flight offsets are forgotten,
    /// never committed.
    pub fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// Every partition is forgotten (the consumer was replaced).
    pub fn clear(&mut self) {
        self.partitions.clear();
    }

    /// The current epoch of `partition`, if it is assigned.
    pub fn epoch(&self, partition: i32) -> Option<Epoch> {
        self.partitions.get(&partition).map(|p| p.epoch)
    }

    /// A message at `offset` of `partition` was received: in flight. Answers
    /// its epoch; `None` when the partition is not assigned (a message
    /// that crossed a revocation: dropped).
    pub fn received(&mut self, partition: i32, offset: i64) -> Option<Epoch> {
        let p = self.partitions.get_mut(&partition)?;
        // The first message is where the group's position already is:
        // nothing to commit until something is done.
        if p.highest.is_none() && p.committed.is_none() {
            p.committed = Some(offset);
        }
        p.in_flight.insert(offset);
        p.highest = p.highest.max(Some(offset));
        Some(p.epoch)
    }

    /// `offsets` of `partition`, received in `epoch`, are done. Ignored when
    /// the partition was revoked or assigned again since.
    pub fn done(&mut self, partition: i32, epoch: Epoch, offsets: &[i64]) {
        let Some(p) = self.partitions.get_mut(&partition) else {
            return;
        };
        if p.epoch != epoch {
            return;
        }
        for offset in offsets {
            p.in_flight.remove(offset);
        }
    }

    /// Offsets in flight, over every partition.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.in_flight.len()).sum()
    }

    /// The offset to commit for `partition`: one past everything done.
    pub fn committable(&self, partition: i32) -> Option<i64> {
        let p = self.partitions.get(&partition)?;
        match p.in_flight.first() {
            Some(first) => Some(*first),
            None => p.highest.map(|h| h + 1),
        }
    }

    /// The commits to make: each partition whose committable offset moved
    /// past its last commit, with that offset; they count as committed.
    pub fn take_commits(&mut self) -> Vec<(i32, i64)> {
        let mut commits = Vec::new();
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        for partition in partitions {
            let Some(offset) = self.committable(partition) else {
                continue;
            };
            if let Some(p) = self.partitions.get_mut(&partition)
                && p.committed.is_none_or(|c| offset > c)
            {
                p.committed = Some(offset);
                commits.push((partition, offset));
            }
        }
        commits.sort_unstable();
        commits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_stops_at_the_first_offset_still_in_flight() {
        let mut o = Offsets::new();
        let e = o.assign(0);
        for offset in 10..15 {
            assert_eq!(o.received(0, offset), Some(e));
        }
        assert_eq!(o.committable(0), Some(10));
        assert_eq!(o.take_commits(), []);
        // Later ones done first: nothing to commit past 10 yet.
        o.done(0, e, &[11, 13]);
        assert_eq!(o.committable(0), Some(10));
        o.done(0, e, &[10]);
        assert_eq!(o.take_commits(), [(0, 12)]);
        assert_eq!(o.take_commits(), [], "committed once");
        o.done(0, e, &[12, 14]);
        assert_eq!(o.take_commits(), [(0, 15)]);
        assert_eq!(o.in_flight(), 0);
    }

    #[test]
    fn gaps_in_offsets_do_not_hold_the_commit_back() {
        let mut o = Offsets::new();
        let e = o.assign(3);
        o.received(3, 100);
        o.received(3, 105);
        o.done(3, e, &[100, 105]);
        assert_eq!(o.take_commits(), [(3, 106)]);
    }

    #[test]
    fn a_snapshots_offsets_are_done_together_and_interleaved_ones_wait() {
        let mut o = Offsets::new();
        let e = o.assign(0);
        // a: 1, 3 (two parts); b: 2.
        for offset in 1..=3 {
            o.received(0, offset);
        }
        o.done(0, e, &[2]);
        assert_eq!(o.take_commits(), []);
        o.done(0, e, &[1, 3]);
        assert_eq!(o.take_commits(), [(0, 4)]);
    }

    #[test]
    fn work_of_a_revoked_assignment_never_marks_the_new_one_done() {
        let mut o = Offsets::new();
        let old = o.assign(0);
        o.received(0, 7);
        o.revoke(0);
        assert_eq!(o.received(0, 8), None, "not ours");
        assert_eq!(o.committable(0), None);
        o.done(0, old, &[7]);
        assert_eq!(o.take_commits(), []);
        let new = o.assign(0);
        assert_ne!(new, old);
        o.received(0, 7);
        o.done(0, old, &[7]);
        assert_eq!(o.committable(0), Some(7), "the old epoch's done is ignored");
        o.done(0, new, &[7]);
        assert_eq!(o.take_commits(), [(0, 8)]);
    }

    #[test]
    fn partitions_commit_independently() {
        let mut o = Offsets::new();
        let e0 = o.assign(0);
        let e1 = o.assign(1);
        o.received(0, 0);
        o.received(1, 0);
        o.received(1, 1);
        o.done(1, e1, &[0, 1]);
        assert_eq!(o.take_commits(), [(1, 2)]);
        o.done(0, e0, &[0]);
        assert_eq!(o.take_commits(), [(0, 1)]);
        o.clear();
        assert_eq!(o.epoch(0), None);
    }
}
