//! The endpoint's connection slots (pure): a bounded number of connections
//! are served at once, and when every slot is taken a new connection still
//! gets one, the slot of the connection that has been idle the longest.
//!
//! Idle: waiting for a request (one that sent nothing yet, or a keep-alive
//! connection between scrapes). Busy: writing an answer. A client that
//! holds connections open without asking anything (or asks once and then
//! keeps the connection) so loses them to the next scraper, instead of
//! locking it out; a busy connection is only taken when none is idle (every
//! slot then writes to a client, and the write timeout ends the ones that
//! do not read), the one busy the longest first.
//!
//! The server (src/sink/prometheus/server.rs) tells the slots what each
//! connection does and closes the connection [`Slots::open`] names.

use std::collections::HashMap;

/// A connection, numbered in the order they were accepted.
pub type ConnectionId = u64;

/// What a connection does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Waiting for a request.
    Idle,
    /// Writing an answer.
    Busy,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    activity: Activity,
    /// When it started doing what it does (the slots' own clock: one tick
    /// per change, so that ties cannot happen).
    since: u64,
}

/// The connections being served.
#[derive(Debug)]
pub struct Slots {
    capacity: usize,
    clock: u64,
    next_id: ConnectionId,
    slots: HashMap<ConnectionId, Slot>,
}

impl Slots {
    /// Room for `capacity` connections (at least one).
    pub fn new(capacity: usize) -> Slots {
        Slots {
            capacity: capacity.max(1),
            clock: 0,
            next_id: 0,
            slots: HashMap::new(),
        }
    }

    /// A new connection, idle: its id, and the connection to close first
    /// to make room for it (with what it was doing), when every slot was
    /// taken. That one no longer holds a slot.
    pub fn open(&mut self) -> (ConnectionId, Option<(ConnectionId, Activity)>) {
        let closed = if self.slots.len() >= self.capacity {
            self.victim()
                .and_then(|id| Some((id, self.slots.remove(&id)?.activity)))
        } else {
            None
        };
        let id = self.next_id;
        self.next_id += 1;
        let since = self.tick();
        self.slots.insert(
            id,
            Slot {
                activity: Activity::Idle,
                since,
            },
        );
        (id, closed)
    }

    /// `id` now does `activity` (nothing if it no longer has a slot).
    pub fn set(&mut self, id: ConnectionId, activity: Activity) {
        let since = self.tick();
        if let Some(slot) = self.slots.get_mut(&id)
            && slot.activity != activity
        {
            *slot = Slot { activity, since };
        }
    }

    /// `id` ended; its slot is free.
    pub fn close(&mut self, id: ConnectionId) {
        self.slots.remove(&id);
    }

    /// Connections holding a slot.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no connection holds a slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The connection to close for a new one: idle the longest, else busy
    /// the longest.
    fn victim(&self) -> Option<ConnectionId> {
        self.slots
            .iter()
            .min_by_key(|(_, slot)| (slot.activity == Activity::Busy, slot.since))
            .map(|(id, _)| *id)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `slots.open()`: the new id and the one closed for it.
    fn open(slots: &mut Slots) -> (ConnectionId, Option<ConnectionId>) {
        let (id, closed) = slots.open();
        (id, closed.map(|(closed, _)| closed))
    }

    #[test]
    fn below_capacity_nobody_is_closed() {
        let mut slots = Slots::new(3);
        assert_eq!(open(&mut slots), (0, None));
        assert_eq!(open(&mut slots), (1, None));
        assert_eq!(open(&mut slots), (2, None));
        assert_eq!(slots.len(), 3);
        slots.close(1);
        assert_eq!(open(&mut slots), (3, None));
    }

    #[test]
    fn when_full_the_connection_idle_the_longest_is_closed() {
        let mut slots = Slots::new(3);
        for _ in 0..3 {
            open(&mut slots);
        }
        // 0 is the oldest connection, but it answered a request since: 1
        // has been idle the longest.
        slots.set(0, Activity::Busy);
        slots.set(0, Activity::Idle);
        assert_eq!(open(&mut slots), (3, Some(1)));
        assert_eq!(open(&mut slots), (4, Some(2)));
        assert_eq!(open(&mut slots), (5, Some(0)));
        assert_eq!(slots.len(), 3);
    }

    #[test]
    fn a_busy_connection_is_closed_only_when_none_is_idle_the_longest_busy_first() {
        let mut slots = Slots::new(3);
        for _ in 0..3 {
            open(&mut slots);
        }
        slots.set(2, Activity::Busy);
        slots.set(0, Activity::Busy);
        // 1 is idle: closed although it is newer than 0.
        assert_eq!(slots.open(), (3, Some((1, Activity::Idle))));
        slots.set(3, Activity::Busy);
        // All busy: 2 has been busy the longest, closed as busy.
        assert_eq!(slots.open(), (4, Some((2, Activity::Busy))));
        // 4, new, is idle.
        assert_eq!(open(&mut slots), (5, Some(4)));
    }

    #[test]
    fn staying_busy_keeps_the_time_busy_started() {
        let mut slots = Slots::new(2);
        open(&mut slots);
        open(&mut slots);
        slots.set(0, Activity::Busy);
        slots.set(1, Activity::Busy);
        // Told again (a second request in a pipeline): still busy since
        // its first.
        slots.set(0, Activity::Busy);
        assert_eq!(open(&mut slots), (2, Some(0)));
    }

    #[test]
    fn a_closed_or_replaced_connection_is_forgotten() {
        let mut slots = Slots::new(1);
        assert_eq!(open(&mut slots), (0, None));
        assert_eq!(open(&mut slots), (1, Some(0)));
        // 0's task ends after it was replaced: that frees nothing of 1's.
        slots.set(0, Activity::Busy);
        slots.close(0);
        assert_eq!(slots.len(), 1);
        assert_eq!(open(&mut slots), (2, Some(1)));
        slots.close(2);
        assert!(slots.is_empty());
    }

    #[test]
    fn five_hundred_idle_connections_never_lock_a_scraper_out() {
        // The attack of issue 24: far more idle connections than slots,
        // opened again as they are closed; each scrape gets a slot, and
        // keeps it while it is answered.
        let mut slots = Slots::new(256);
        let mut scrapes = 0;
        for round in 0..40 {
            for _ in 0..500 {
                open(&mut slots);
            }
            let (scrape, _) = open(&mut slots);
            slots.set(scrape, Activity::Busy);
            // More idle connections arrive while the page is written.
            for _ in 0..300 {
                let (_, closed) = open(&mut slots);
                assert_ne!(closed, Some(scrape), "round {round}");
            }
            slots.set(scrape, Activity::Idle);
            slots.close(scrape);
            scrapes += 1;
            assert!(slots.len() <= 256);
        }
        assert_eq!(scrapes, 40);
    }
}
