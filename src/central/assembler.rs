//! Reassembling a snapshot from its parts (SPEC §5: a snapshot is `parts`
//! messages, keyed by its load balancer, so every part of it is on one
//! partition, in order). Pure: parts in, complete snapshots or abandoned
//! ones out.
//!
//! Parts wait by (partition, lb) for the rest of their snapshot (`ts`): at
//! most one snapshot per load balancer and partition is open, so the bound
//! per load balancer is one per partition its key was ever hashed to. A
//! snapshot is given up on — a bad message "missing part", its offsets
//! done, so that the commit moves past it — when:
//! - a part of another snapshot of the same load balancer arrives on the
//!   partition: an edge sends one snapshot at a time, so the parts of the
//!   older one are not coming any more;
//! - a later message on its partition is stamped (its Kafka timestamp)
//!   more than [`MAX_OPEN_MS`] away from the snapshot's first part: an edge
//!   produces a snapshot's parts back to back, so they carry the same
//!   timestamp give or take milliseconds, and one whose other parts did not
//!   follow within two minutes of the partition's own time never will (an
//!   edge that failed resends the whole snapshot, which completes on its
//!   own). Either way: a part stamped in the future (forged, or a clock far
//!   off) is given up at the next message stamped now, not held until the
//!   future comes. Time is the messages' stamps, not this host's clock: the
//!   decision is the same on every replay of the partition, and a paused
//!   partition (a full sink) or a consumer catching up after an outage
//!   does not see its snapshots age while nothing is read. The bound is
//!   larger than any sane clock skew between two edges sharing a partition
//!   (with the default `CreateTime`, each edge stamps its own messages;
//!   with `LogAppendTime` the broker does), and it is about how long a lone
//!   part holds the partition's commit once later messages come;
//! - more than [`MAX_MESSAGES_WHILE_OPEN`] later messages arrived on its
//!   partition: the bound for messages without a timestamp (and a
//!   backstop), counted in messages for the same reason;
//! - more than [`MAX_OPEN_PER_PARTITION`] snapshots are open on its
//!   partition, or the open snapshots, all partitions together, hold more
//!   than [`MAX_OPEN_BYTES`]: the one waiting longest goes first.
//!
//! Memory: nothing is reserved for the parts a header claims (one message
//! may claim 10 000 parts); an open snapshot holds what came, and what it
//! holds is accounted — values, plus [`OPEN_OVERHEAD`] per snapshot and
//! [`PART_OVERHEAD`] per message for the bookkeeping — against
//! [`MAX_OPEN_BYTES`].
//!
//! A part that comes again (an edge sends a whole snapshot again when one
//! part failed) replaces the earlier copy; both offsets belong to the
//! snapshot and are done with it.

use std::collections::HashMap;

use super::bad::{BadMessage, PartHeader};

/// How far from a snapshot's first part (in message timestamps, later or
/// earlier) a message on its partition may be stamped while the snapshot
/// still waits for parts. Parts of one snapshot are stamped within
/// milliseconds of each other; two minutes is well beyond the clock skew
/// of two edges on one partition, and short enough that a forged lone part
/// holds the partition's commit only briefly.
pub const MAX_OPEN_MS: i64 = 120_000;

// The reason logged for it says "2 minutes".
const _: () = assert!(MAX_OPEN_MS == 120_000);

/// Later messages on a partition after which a snapshot still missing
/// parts is given up on, whatever their timestamps say. An edge sends a
/// snapshot's parts one right after the other; other load balancers'
/// messages in between are a few per load balancer on the partition:
/// 10 000 is far more than that.
pub const MAX_MESSAGES_WHILE_OPEN: u64 = 10_000;

/// Snapshots open at once on one partition. Only a snapshot of several
/// parts is ever open, and only between its first and last part; edges
/// pull at the same instants, so every large load balancer of a partition
/// may be mid-snapshot at once, but a thousand of them on one partition is
/// far beyond any deployment (a partition of a 12-partition topic with a
/// thousand load balancers carries about 80).
pub const MAX_OPEN_PER_PARTITION: usize = 1_000;

/// Bytes held by snapshots waiting for the rest of their parts, over every
/// load balancer, as accounted (values and bookkeeping): a bound on the
/// memory a stream of incomplete snapshots holds.
pub const MAX_OPEN_BYTES: usize = 512 * 1024 * 1024;

/// Bytes accounted for one open snapshot besides its parts and names: its
/// map entry (144 bytes on x86_64, in a table that may be less than half
/// full after growing), the first allocations of its two vectors (160
/// bytes). tests/assembler_memory.rs measures 472 bytes held for a snapshot
/// of one one-byte part named in 13 bytes, against 622 accounted.
pub const OPEN_OVERHEAD: usize = 512;

/// Bytes accounted for each message of an open snapshot besides its value:
/// its part's entry (32 bytes) and its offset (8), twice over for the
/// vectors' doubling.
pub const PART_OVERHEAD: usize = 96;

/// One message of the snapshots topic, its headers checked.
#[derive(Debug, Clone)]
pub struct Part {
    /// Where it is.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its Kafka timestamp, epoch ms ([`MAX_OPEN_MS`] is measured in them).
    pub timestamp_ms: Option<i64>,
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
    /// How many parts it has (its `parts` header): nothing is reserved.
    parts: usize,
    /// The parts that came, sorted by number (they come in order: each
    /// is pushed at the end).
    have: Vec<(usize, Vec<u8>)>,
    offsets: Vec<i64>,
    /// What it holds, as accounted ([`OPEN_OVERHEAD`], [`PART_OVERHEAD`]).
    bytes: usize,
    /// The partition's message count when its first part came.
    opened_at: u64,
    /// The timestamp of its first part, or of the first stamped message
    /// after it ([`MAX_OPEN_MS`] counts from there).
    first_ms: Option<i64>,
}

/// The snapshots open on one partition, and its clock.
#[derive(Debug, Default)]
struct Partition {
    open: HashMap<String, Open>,
    /// Messages seen (the clock of [`MAX_MESSAGES_WHILE_OPEN`]).
    seen: u64,
}

/// The bounds of the module documentation, changeable for tests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// [`MAX_OPEN_MS`].
    pub open_ms: i64,
    /// [`MAX_MESSAGES_WHILE_OPEN`].
    pub messages: u64,
    /// [`MAX_OPEN_PER_PARTITION`].
    pub per_partition: usize,
    /// [`MAX_OPEN_BYTES`].
    pub bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            open_ms: MAX_OPEN_MS,
            messages: MAX_MESSAGES_WHILE_OPEN,
            per_partition: MAX_OPEN_PER_PARTITION,
            bytes: MAX_OPEN_BYTES,
        }
    }
}

/// Parts waiting for the rest of their snapshot.
#[derive(Debug, Default)]
pub struct Assembler {
    partitions: HashMap<i32, Partition>,
    /// Bytes held by every open snapshot, as accounted.
    bytes: usize,
    limits: Limits,
}

impl Assembler {
    /// An assembler with the bounds of the module documentation.
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// The same with other bounds (tests).
    pub fn with_limits(limits: Limits) -> Assembler {
        Assembler {
            limits,
            ..Assembler::default()
        }
    }

    /// Takes one part; answers the snapshot it completes and those given up.
    pub fn add(&mut self, part: Part) -> Outcome {
        let mut outcome = Outcome::default();
        let Part {
            partition,
            offset,
            timestamp_ms,
            header,
            value,
        } = part;
        let state = self.partitions.entry(partition).or_default();
        state.seen += 1;
        let now = state.seen;
        let same_snapshot = state
            .open
            .get(&header.lb)
            .is_some_and(|open| open.ts == header.ts && open.parts == header.parts);
        if !same_snapshot && let Some(older) = state.open.remove(&header.lb) {
            self.bytes -= older.bytes;
            outcome.abandoned.push(abandon(
                partition,
                older,
                "a part of another snapshot of this load balancer came after them",
            ));
        }
        let open = state.open.entry(header.lb.clone()).or_insert_with(|| {
            let bytes = OPEN_OVERHEAD + header.lb.len() + header.cluster.len();
            self.bytes += bytes;
            Open {
                cluster: header.cluster.clone(),
                ts: header.ts,
                parts: header.parts,
                have: Vec::new(),
                offsets: Vec::new(),
                bytes,
                opened_at: now,
                first_ms: timestamp_ms,
            }
        });
        open.offsets.push(offset);
        let added = value.len() + PART_OVERHEAD;
        open.bytes += added;
        self.bytes += added;
        match open.have.binary_search_by_key(&header.part, |(n, _)| *n) {
            Ok(at) => {
                // Sent again: the copy replaces it (its offset stays).
                let earlier = std::mem::replace(&mut open.have[at].1, value);
                open.bytes -= earlier.len();
                self.bytes -= earlier.len();
            }
            Err(at) => open.have.insert(at, (header.part, value)),
        }
        if open.have.len() == open.parts
            && let Some(done) = state.open.remove(&header.lb)
        {
            self.bytes -= done.bytes;
            outcome.complete = Some(Snapshot {
                partition,
                lb: header.lb,
                cluster: done.cluster,
                ts: done.ts,
                offsets: done.offsets,
                parts: done.have.into_iter().map(|(_, value)| value).collect(),
            });
        }
        outcome
            .abandoned
            .extend(self.expire(partition, now, timestamp_ms));
        outcome
    }

    /// Forgets every part of `partition` (revoked: its new owner reads
    /// them again from the committed offset).
    pub fn revoke(&mut self, partition: i32) {
        if let Some(state) = self.partitions.remove(&partition) {
            self.bytes -= state.open.values().map(|open| open.bytes).sum::<usize>();
        }
    }

    /// Forgets everything (the consumer was replaced).
    pub fn clear(&mut self) {
        self.partitions.clear();
        self.bytes = 0;
    }

    /// Snapshots waiting for parts.
    pub fn open(&self) -> usize {
        self.partitions.values().map(|p| p.open.len()).sum()
    }

    /// Bytes the snapshots waiting for parts hold, as accounted: what
    /// [`MAX_OPEN_BYTES`] bounds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The offsets of `partition` held by snapshots waiting for parts.
    pub fn open_offsets(&self, partition: i32) -> impl Iterator<Item = i64> + '_ {
        self.partitions
            .get(&partition)
            .into_iter()
            .flat_map(|p| p.open.values())
            .flat_map(|open| open.offsets.iter().copied())
    }

    /// Gives up on snapshots of `partition` open too long (in messages or
    /// in message time, `now` and `stamp` being the message just taken),
    /// the oldest ones while too many are open on it, and the oldest of
    /// all while too many bytes wait.
    fn expire(&mut self, partition: i32, now: u64, stamp: Option<i64>) -> Vec<Abandoned> {
        let limits = self.limits;
        let mut abandoned = Vec::new();
        let mut give_up = |state: &mut Partition, bytes: &mut usize, lb: &str, why| {
            if let Some(open) = state.open.remove(lb) {
                *bytes -= open.bytes;
                abandoned.push(abandon(partition, open, why));
            }
        };
        if let Some(state) = self.partitions.get_mut(&partition) {
            let mut stale = Vec::new();
            for (lb, open) in &mut state.open {
                if now - open.opened_at > limits.messages {
                    stale.push((lb.clone(), "too many other messages came after them"));
                    continue;
                }
                match (open.first_ms, stamp) {
                    (Some(first), Some(stamp))
                        if stamp.saturating_sub(first).saturating_abs() > limits.open_ms =>
                    {
                        stale.push((
                            lb.clone(),
                            "a message stamped over 2 minutes away from their first came on the partition",
                        ));
                    }
                    // Opened by a message without a timestamp: its clock
                    // starts with the first stamped one.
                    (None, Some(stamp)) => open.first_ms = Some(stamp),
                    _ => {}
                }
            }
            // Oldest first, so that the log reads in order.
            stale.sort_by_key(|(lb, _)| state.open.get(lb).map(|open| open.opened_at));
            for (lb, why) in stale {
                give_up(state, &mut self.bytes, &lb, why);
            }
            while state.open.len() > limits.per_partition {
                let Some(oldest) = oldest(state) else { break };
                give_up(
                    state,
                    &mut self.bytes,
                    &oldest,
                    "too many snapshots wait for parts on the partition",
                );
            }
        }
        while self.bytes > limits.bytes {
            // The one waiting longest on its partition's clock.
            let oldest = self
                .partitions
                .iter()
                .flat_map(|(p, state)| {
                    state
                        .open
                        .iter()
                        .map(move |(lb, open)| (state.seen - open.opened_at, *p, lb))
                })
                .max()
                .map(|(_, p, lb)| (p, lb.clone()));
            let Some((p, lb)) = oldest else { break };
            if let Some(open) = self.partitions.get_mut(&p).and_then(|s| s.open.remove(&lb)) {
                self.bytes -= open.bytes;
                abandoned.push(abandon(
                    p,
                    open,
                    "too many bytes wait for parts of snapshots",
                ));
            }
        }
        abandoned
    }
}

/// The load balancer of `state`'s snapshot open longest.
fn oldest(state: &Partition) -> Option<String> {
    state
        .open
        .iter()
        .min_by_key(|(_, open)| open.opened_at)
        .map(|(lb, _)| lb.clone())
}

fn abandon(partition: i32, open: Open, why: &'static str) -> Abandoned {
    Abandoned {
        partition,
        why: BadMessage::MissingPart {
            ts: open.ts,
            have: open.have.len(),
            parts: open.parts,
            why,
        },
        offsets: open.offsets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part without a Kafka timestamp (see [`stamped`]).
    fn part(partition: i32, offset: i64, lb: &str, ts: u64, n: usize, of: usize) -> Part {
        Part {
            partition,
            offset,
            timestamp_ms: None,
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

    /// `part` stamped `ms`.
    fn stamped(part: Part, ms: i64) -> Part {
        Part {
            timestamp_ms: Some(ms),
            ..part
        }
    }

    /// What one open snapshot of `lb` (cluster "eu") with these values
    /// accounts for.
    fn accounted(lb: &str, values: &[usize]) -> usize {
        OPEN_OVERHEAD
            + lb.len()
            + "eu".len()
            + values.iter().map(|v| v + PART_OVERHEAD).sum::<usize>()
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

    fn why(abandoned: &Abandoned) -> &'static str {
        match &abandoned.why {
            BadMessage::MissingPart { why, .. } => why,
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
        assert_eq!(a.bytes(), accounted("b", &[b"b:100:0".len()]));
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
        assert_eq!((a.open(), a.bytes()), (0, 0));
    }

    #[test]
    fn a_part_sent_again_replaces_its_copy_and_both_offsets_are_the_snapshots() {
        let mut a = Assembler::new();
        a.add(part(0, 1, "a", 100, 0, 2));
        a.add(part(0, 2, "a", 100, 0, 2));
        // The copy's value replaced the first; both offsets are held.
        assert_eq!(a.bytes(), accounted("a", &[7, 0]));
        let whole = a.add(part(0, 3, "a", 100, 1, 2)).complete.expect("whole");
        assert_eq!(whole.offsets, [1, 2, 3]);
        assert_eq!(whole.parts, [b"a:100:0".to_vec(), b"a:100:1".to_vec()]);
        assert_eq!(a.bytes(), 0);
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

    /// Issue 24 item 2: one forged part with a made-up lb no other part
    /// will follow held its partition's commit for good.
    #[test]
    fn a_lone_part_is_given_up_once_a_later_message_is_stamped_over_max_open_ms_after_it() {
        const T: i64 = 1_700_000_000_000;
        let mut a = Assembler::new();
        assert!(
            a.add(stamped(part(0, 0, "forged", 100, 0, 2), T))
                .abandoned
                .is_empty()
        );
        let mut offset = 0;
        let mut next = |a: &mut Assembler, partition: i32, ms: i64| {
            offset += 1;
            a.add(stamped(part(partition, offset, "real", 100, 0, 1), ms))
        };
        // Other partitions' time does not age it, nor messages just within
        // the bound, earlier (an edge whose clock is behind) or later.
        assert!(next(&mut a, 1, T + 10 * MAX_OPEN_MS).abandoned.is_empty());
        assert!(next(&mut a, 0, T - MAX_OPEN_MS).abandoned.is_empty());
        assert!(next(&mut a, 0, T + MAX_OPEN_MS).abandoned.is_empty());
        assert_eq!(a.open_offsets(0).collect::<Vec<_>>(), [0]);
        let later = next(&mut a, 0, T + MAX_OPEN_MS + 1);
        assert!(later.complete.is_some(), "the message itself is processed");
        assert_eq!(later.abandoned.len(), 1);
        assert_eq!(missing(&later.abandoned[0]), (0, vec![0], 1, 2));
        assert!(why(&later.abandoned[0]).contains("stamped over"));
        assert_eq!((a.open(), a.bytes()), (0, 0));
    }

    #[test]
    fn a_lone_part_stamped_in_the_future_is_given_up_at_the_next_message_stamped_now() {
        const T: i64 = 1_700_000_000_000;
        let mut a = Assembler::new();
        for (offset, ahead) in [(0, i64::MAX - T), (2, 3_600_000)] {
            a.add(stamped(part(0, offset, "forged", 100, 0, 2), T + ahead));
            let now = a.add(stamped(part(0, offset + 1, "real", 100, 0, 1), T));
            assert!(now.complete.is_some());
            assert_eq!(missing(&now.abandoned[0]), (0, vec![offset], 1, 2));
        }
        // And one stamped in the far past at the next one stamped now.
        a.add(stamped(part(0, 4, "behind", 100, 0, 2), i64::MIN));
        let now = a.add(stamped(part(0, 5, "real", 101, 0, 1), T));
        assert_eq!(missing(&now.abandoned[0]), (0, vec![4], 1, 2));
    }

    #[test]
    fn a_part_that_completes_its_snapshot_completes_it_however_late_it_is_stamped() {
        const T: i64 = 1_700_000_000_000;
        let mut a = Assembler::new();
        a.add(stamped(part(0, 0, "a", 100, 0, 2), T));
        let late = a.add(stamped(part(0, 1, "a", 100, 1, 2), T + 2 * MAX_OPEN_MS));
        assert!(late.abandoned.is_empty());
        assert_eq!(late.complete.expect("whole").offsets, [0, 1]);
    }

    #[test]
    fn a_part_without_a_timestamp_ages_from_the_first_stamped_message_after_it() {
        const T: i64 = 1_700_000_000_000;
        let mut a = Assembler::new();
        a.add(part(0, 0, "a", 100, 0, 2));
        // Unstamped messages move no clock but the message count.
        assert!(a.add(part(0, 1, "b", 100, 0, 1)).abandoned.is_empty());
        assert!(
            a.add(stamped(part(0, 2, "b", 100, 0, 1), T))
                .abandoned
                .is_empty()
        );
        let within = a.add(stamped(part(0, 3, "b", 100, 0, 1), T + MAX_OPEN_MS));
        assert!(within.abandoned.is_empty());
        let after = a.add(stamped(part(0, 4, "b", 100, 0, 1), T + MAX_OPEN_MS + 1));
        assert_eq!(missing(&after.abandoned[0]), (0, vec![0], 1, 2));
    }

    #[test]
    fn too_many_waiting_bytes_give_up_the_oldest_first() {
        let one = accounted("a", &[7]);
        let mut a = Assembler::with_limits(Limits {
            bytes: 2 * one + 1,
            ..Limits::default()
        });
        a.add(part(0, 0, "a", 100, 0, 2));
        a.add(part(1, 1, "b", 100, 0, 2));
        let over = a.add(part(0, 2, "c", 100, 0, 2));
        assert_eq!(over.abandoned.len(), 1);
        assert_eq!(missing(&over.abandoned[0]), (0, vec![0], 1, 2));
        assert_eq!((a.open(), a.bytes()), (2, 2 * one));
    }

    /// Issue 24 item 3: each made-up lb opened a snapshot for good.
    #[test]
    fn too_many_open_snapshots_on_a_partition_give_up_the_oldest_first() {
        let mut a = Assembler::with_limits(Limits {
            per_partition: 3,
            ..Limits::default()
        });
        for (offset, lb) in ["a", "b", "c"].into_iter().enumerate() {
            assert!(
                a.add(part(0, offset as i64, lb, 100, 0, 2))
                    .abandoned
                    .is_empty()
            );
        }
        // Another partition's are its own.
        for lb in ["d", "e", "f"] {
            assert!(a.add(part(1, 0, lb, 100, 0, 2)).abandoned.is_empty());
        }
        let over = a.add(part(0, 3, "g", 100, 0, 2));
        assert_eq!(over.abandoned.len(), 1);
        assert_eq!(missing(&over.abandoned[0]), (0, vec![0], 1, 2));
        assert!(why(&over.abandoned[0]).contains("too many snapshots"));
        assert_eq!(a.open(), 6);
        // A part of one still open completes it.
        assert!(a.add(part(0, 4, "b", 100, 1, 2)).complete.is_some());
    }

    /// Issue 24 item 3: 2 000 one-byte messages claiming 10 000 parts each,
    /// each of another lb, took 478 MB; now what a snapshot holds does not
    /// depend on the parts it claims, and all of it is accounted.
    #[test]
    fn what_a_snapshot_claims_reserves_nothing_and_what_it_holds_is_bounded() {
        let mut two = Assembler::new();
        let mut many = Assembler::new();
        two.add(part(0, 0, "a", 100, 0, 2));
        many.add(part(0, 0, "a", 100, 0, MAX_PARTS_CLAIMED));
        assert_eq!(two.bytes(), many.bytes());
        assert_eq!(many.bytes(), accounted("a", &[7]));

        let mut a = Assembler::new();
        let mut given_up = 0;
        for n in 0..2_000 {
            let lb = format!("forged-{n:04}");
            let outcome = a.add(Part {
                value: vec![0],
                ..part(0, n, &lb, 100, 0, MAX_PARTS_CLAIMED)
            });
            given_up += outcome.abandoned.len();
        }
        assert_eq!(a.open(), MAX_OPEN_PER_PARTITION);
        assert_eq!(given_up, 2_000 - MAX_OPEN_PER_PARTITION);
        assert_eq!(
            a.bytes(),
            MAX_OPEN_PER_PARTITION * accounted("forged-0000", &[1])
        );
        assert!(a.bytes() < 1024 * 1024, "{} bytes", a.bytes());
    }

    const MAX_PARTS_CLAIMED: usize = crate::central::bad::MAX_PARTS;

    #[test]
    fn a_revoked_partition_forgets_its_parts() {
        let mut a = Assembler::new();
        a.add(part(0, 0, "a", 100, 0, 2));
        a.add(part(1, 0, "b", 100, 0, 2));
        a.revoke(0);
        assert_eq!(a.open(), 1);
        assert_eq!(a.bytes(), accounted("b", &[7]));
        assert_eq!(a.open_offsets(0).count(), 0);
        // Its parts read again by the next assignment make the snapshot.
        a.add(part(0, 0, "a", 100, 0, 2));
        assert!(a.add(part(0, 1, "a", 100, 1, 2)).complete.is_some());
        a.clear();
        assert_eq!((a.open(), a.bytes()), (0, 0));
    }
}
