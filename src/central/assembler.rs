//! Reassembling a snapshot from its parts (SPEC §5: a snapshot is `parts`
//! messages, keyed by its load balancer, so every part of it is on one
//! partition, in order). Pure: parts in, complete snapshots or abandoned
//! ones out.
//!
//! Parts wait by (partition, lb) for the rest of their snapshot (`ts`). A
//! snapshot is given up on — a bad message "missing part" — when:
//! - a part of another snapshot of the same load balancer arrives on the
//!   partition: an edge sends one snapshot at a time, so the parts of the
//!   older one are not coming any more;
//! - more than [`MAX_MESSAGES_WHILE_OPEN`] later messages arrived on its
//!   partition: counted in messages, not seconds, so that a paused
//!   partition (a full sink) does not make a snapshot "late";
//! - the parts waiting, all load balancers together, exceed
//!   [`MAX_OPEN_BYTES`]: the one waiting longest goes first.
//!
//! A part that comes again (an edge sends a whole snapshot again when one
//! part failed) replaces the earlier copy; both offsets belong to the
//! snapshot and are done with it.

use std::collections::HashMap;

use super::bad::{BadMessage, PartHeader};

/// Later messages on a partition after which a snapshot still missing
/// parts is given up on. An edge sends a snapshot's parts one right after
/// the other; other load balancers' messages in between are a few per
/// load balancer on the partition: 10 000 is far more than that.
pub const MAX_MESSAGES_WHILE_OPEN: u64 = 10_000;

/// Bytes of parts waiting for the rest of their snapshot, over every load
/// balancer: a bound on the memory a stream of incomplete snapshots holds.
pub const MAX_OPEN_BYTES: usize = 512 * 1024 * 1024;

/// One message of the snapshots topic, its headers checked.
#[derive(Debug, Clone)]
pub struct Part {
    /// Where it is.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its headers.
    pub header: PartHeader,
    /// Its value: one Arrow IPC stream.
    pub value: Vec<u8>,
}

/// Every part of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Where its parts are.
    pub partition: i32,
    /// The load balancer.
    pub lb: String,
    /// Its cluster.
    pub cluster: String,
    /// Its timestamp.
    pub ts: u64,
    /// Every offset that carried a part of it (copies sent again included).
    pub offsets: Vec<i64>,
    /// The parts' values, in part order.
    pub parts: Vec<Vec<u8>>,
}

/// A snapshot given up on, with the offsets its parts took.
#[derive(Debug)]
pub struct Abandoned {
    /// Where its parts are.
    pub partition: i32,
    /// Their offsets: done, skipped.
    pub offsets: Vec<i64>,
    /// Why ([`BadMessage::MissingPart`]).
    pub why: BadMessage,
}

/// What a part completed or ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The snapshot it completed, if it did.
    pub complete: Option<Snapshot>,
    /// The snapshots given up on because of it.
    pub abandoned: Vec<Abandoned>,
}

/// A snapshot waiting for parts.
#[derive(Debug)]
struct Open {
    cluster: String,
    ts: u64,
    parts: Vec<Option<Vec<u8>>>,
    offsets: Vec<i64>,
    bytes: usize,
    /// The partition's message count when its first part came.
    opened_at: u64,
}

impl Open {
    fn have(&self) -> usize {
        self.parts.iter().filter(|p| p.is_some()).count()
    }
}

/// Parts waiting for the rest of their snapshot.
#[derive(Debug, Default)]
pub struct Assembler {
    open: HashMap<(i32, String), Open>,
    /// Messages seen per partition (the clock of [`MAX_MESSAGES_WHILE_OPEN`]).
    seen: HashMap<i32, u64>,
    bytes: usize,
    max_bytes: Option<usize>,
}

impl Assembler {
    /// An assembler with the bounds of the module documentation.
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// The same with another bound on waiting bytes (tests).
    pub fn with_max_bytes(max_bytes: usize) -> Assembler {
        Assembler {
            max_bytes: Some(max_bytes),
            ..Assembler::default()
        }
    }

    /// Takes one part; answers the snapshot it completes and those given up.
    pub fn add(&mut self, part: Part) -> Outcome {
        let mut outcome = Outcome::default();
        let clock = self.seen.entry(part.partition).or_default();
        *clock += 1;
        let now = *clock;
        let key = (part.partition, part.header.lb.clone());
        let same_snapshot = self
            .open
            .get(&key)
            .is_some_and(|open| open.ts == part.header.ts && open.parts.len() == part.header.parts);
        if !same_snapshot && let Some(older) = self.remove(&key) {
            outcome.abandoned.push(abandon(
                part.partition,
                older,
                "a part of another snapshot of this load balancer came after them",
            ));
        }
        let open = self.open.entry(key.clone()).or_insert_with(|| Open {
            cluster: part.header.cluster.clone(),
            ts: part.header.ts,
            parts: vec![None; part.header.parts],
            offsets: Vec::new(),
            bytes: 0,
            opened_at: now,
        });
        open.offsets.push(part.offset);
        open.bytes += part.value.len();
        self.bytes += part.value.len();
        if let Some(slot) = open.parts.get_mut(part.header.part)
            && let Some(earlier) = slot.replace(part.value)
        {
            // Sent again: the copy replaces it.
            open.bytes -= earlier.len();
            self.bytes -= earlier.len();
        }
        if open.have() == open.parts.len()
            && let Some(done) = self.remove(&key)
        {
            let Open {
                cluster,
                ts,
                parts,
                offsets,
                ..
            } = done;
            outcome.complete = Some(Snapshot {
                partition: key.0,
                lb: key.1,
                cluster,
                ts,
                offsets,
                parts: parts.into_iter().flatten().collect(),
            });
        }
        outcome.abandoned.extend(self.expire(part.partition, now));
        outcome
    }

    /// Forgets every part of `partition` (revoked: its new owner reads
    /// them again from the committed offset).
    pub fn revoke(&mut self, partition: i32) {
        let keys: Vec<_> = self
            .open
            .keys()
            .filter(|(p, _)| *p == partition)
            .cloned()
            .collect();
        for key in keys {
            self.remove(&key);
        }
        self.seen.remove(&partition);
    }

    /// Forgets everything (the consumer was replaced).
    pub fn clear(&mut self) {
        self.open.clear();
        self.seen.clear();
        self.bytes = 0;
    }

    /// Snapshots waiting for parts.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// The offsets of `partition` held by snapshots waiting for parts.
    pub fn open_offsets(&self, partition: i32) -> impl Iterator<Item = i64> + '_ {
        self.open
            .iter()
            .filter(move |((p, _), _)| *p == partition)
            .flat_map(|(_, open)| open.offsets.iter().copied())
    }

    fn remove(&mut self, key: &(i32, String)) -> Option<Open> {
        let open = self.open.remove(key)?;
        self.bytes -= open.bytes;
        Some(open)
    }

    /// Gives up on snapshots of `partition` open too long, and on the
    /// oldest ones while too many bytes wait.
    fn expire(&mut self, partition: i32, now: u64) -> Vec<Abandoned> {
        let mut abandoned = Vec::new();
        let stale: Vec<_> = self
            .open
            .iter()
            .filter(|((p, _), open)| {
                *p == partition && now - open.opened_at > MAX_MESSAGES_WHILE_OPEN
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(open) = self.remove(&key) {
                abandoned.push(abandon(
                    key.0,
                    open,
                    "too many other messages came after them",
                ));
            }
        }
        let max_bytes = self.max_bytes.unwrap_or(MAX_OPEN_BYTES);
        while self.bytes > max_bytes {
            // The one waiting longest on its partition's clock.
            let oldest = self
                .open
                .iter()
                .max_by_key(|((p, _), open)| {
                    self.seen.get(p).copied().unwrap_or(0) - open.opened_at
                })
                .map(|(key, _)| key.clone());
            let Some(key) = oldest else { break };
            if let Some(open) = self.remove(&key) {
                abandoned.push(abandon(
                    key.0,
                    open,
                    "too many bytes wait for parts of snapshots",
                ));
            }
        }
        abandoned
    }
}

fn abandon(partition: i32, open: Open, why: &'static str) -> Abandoned {
    Abandoned {
        partition,
        why: BadMessage::MissingPart {
            ts: open.ts,
            have: open.have(),
            parts: open.parts.len(),
            why,
        },
        offsets: open.offsets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(partition: i32, offset: i64, lb: &str, ts: u64, n: usize, of: usize) -> Part {
        Part {
            partition,
            offset,
            header: PartHeader {
                lb: lb.into(),
                cluster: "eu".into(),
                ts,
                part: n,
                parts: of,
            },
            value: format!("{lb}:{ts}:{n}").into_bytes(),
        }
    }

    fn missing(abandoned: &Abandoned) -> (i32, Vec<i64>, usize, usize) {
        match &abandoned.why {
            BadMessage::MissingPart { have, parts, .. } => (
                abandoned.partition,
                abandoned.offsets.clone(),
                *have,
                *parts,
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parts_of_interleaved_load_balancers_make_whole_snapshots_in_part_order() {
        let mut a = Assembler::new();
        assert!(a.add(part(0, 10, "a", 100, 1, 2)).complete.is_none());
        assert!(a.add(part(0, 11, "b", 100, 0, 2)).complete.is_none());
        // One part alone is a whole snapshot.
        let single = a.add(part(0, 12, "c", 100, 0, 1)).complete.expect("c");
        assert_eq!(
            (single.lb.as_str(), single.offsets.clone()),
            ("c", vec![12])
        );
        let whole = a.add(part(0, 13, "a", 100, 0, 2));
        assert!(whole.abandoned.is_empty());
        let whole = whole.complete.expect("a complete");
        assert_eq!(whole.offsets, [10, 13]);
        assert_eq!(whole.parts, [b"a:100:0".to_vec(), b"a:100:1".to_vec()]);
        assert_eq!((whole.cluster.as_str(), whole.ts), ("eu", 100));
        assert_eq!(a.open(), 1);
        assert_eq!(a.open_offsets(0).collect::<Vec<_>>(), [11]);
        assert_eq!(a.bytes, b"b:100:0".len());
    }

    #[test]
    fn the_same_lb_on_two_partitions_is_two_snapshots() {
        let mut a = Assembler::new();
        assert!(a.add(part(0, 1, "a", 100, 0, 2)).complete.is_none());
        let other = a.add(part(1, 1, "a", 100, 0, 2));
        assert!(other.abandoned.is_empty() && other.complete.is_none());
        assert_eq!(a.open(), 2);
    }

    #[test]
    fn a_newer_snapshot_of_the_lb_gives_up_the_older_one_as_missing_a_part() {
        let mut a = Assembler::new();
        a.add(part(0, 5, "a", 100, 0, 3));
        a.add(part(0, 6, "a", 100, 2, 3));
        let newer = a.add(part(0, 7, "a", 110, 0, 1));
        assert_eq!(newer.abandoned.len(), 1);
        assert_eq!(missing(&newer.abandoned[0]), (0, vec![5, 6], 2, 3));
        assert_eq!(newer.complete.expect("110").offsets, [7]);
        assert_eq!((a.open(), a.bytes), (0, 0));
    }

    #[test]
    fn a_part_sent_again_replaces_its_copy_and_both_offsets_are_the_snapshots() {
        let mut a = Assembler::new();
        a.add(part(0, 1, "a", 100, 0, 2));
        a.add(part(0, 2, "a", 100, 0, 2));
        let whole = a.add(part(0, 3, "a", 100, 1, 2)).complete.expect("whole");
        assert_eq!(whole.offsets, [1, 2, 3]);
        assert_eq!(whole.parts.len(), 2);
        assert_eq!(a.bytes, 0);
    }

    #[test]
    fn a_snapshot_open_for_too_many_messages_is_given_up() {
        let mut a = Assembler::new();
        a.add(part(0, 0, "a", 100, 0, 2));
        let mut given_up = Vec::new();
        for offset in 1..=MAX_MESSAGES_WHILE_OPEN as i64 + 1 {
            // Other partitions do not age it.
            given_up.extend(a.add(part(1, offset, "b", offset as u64, 0, 1)).abandoned);
            given_up.extend(a.add(part(0, offset, "b", offset as u64, 0, 1)).abandoned);
        }
        assert_eq!(given_up.len(), 1);
        assert_eq!(missing(&given_up[0]), (0, vec![0], 1, 2));
    }

    #[test]
    fn too_many_waiting_bytes_give_up_the_oldest_first() {
        let mut a = Assembler::with_max_bytes(20);
        a.add(part(0, 0, "a", 100, 0, 2)); // 7 bytes
        a.add(part(0, 1, "b", 100, 0, 2)); // 14
        let over = a.add(part(0, 2, "c", 100, 0, 2)); // 21 > 20
        assert_eq!(over.abandoned.len(), 1);
        assert_eq!(missing(&over.abandoned[0]), (0, vec![0], 1, 2));
        assert_eq!(a.open(), 2);
    }

    #[test]
    fn a_revoked_partition_forgets_its_parts() {
        let mut a = Assembler::new();
        a.add(part(0, 0, "a", 100, 0, 2));
        a.add(part(1, 0, "b", 100, 0, 2));
        a.revoke(0);
        assert_eq!(a.open(), 1);
        assert_eq!(a.open_offsets(0).count(), 0);
        // Its parts read again by the next assignment make the snapshot.
        a.add(part(0, 0, "a", 100, 0, 2));
        assert!(a.add(part(0, 1, "a", 100, 1, 2)).complete.is_some());
        a.clear();
        assert_eq!((a.open(), a.bytes), (0, 0));
    }
}
