//! [`SinkSlot`]: one sink in a supervisor's list — the running sink, the
//! lines waiting while it restarts, its last health, and what is done when
//! its backlog is full ([`WhenFull`]). Shared by the daemon's Supervisor
//! and central's, so that both keep their sinks the same way and neither
//! has code of its own per sink.

use std::future::Future;

use super::messages::{SendLinesAcked, SinkHealth};
use super::{RunningSink, SinkSpec};
use crate::health::{SinkStatus, WRITE_INTERVAL};

/// What a supervisor does with lines for a sink whose backlog is full: the
/// one way the daemon's sinks and central's differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Hand them over all the same: the sink's backlog drops its oldest
    /// lines (counted, and acknowledged as done). The daemon: the newest
    /// data is the most useful once the sink is back, and pulls do not
    /// wait for a sink.
    DropOldest,
    /// Hold them back until the sink has room: nothing is dropped, the
    /// input pauses instead. Central: Kafka is the buffer.
    Hold,
}

/// A sink's backlog as it last reported it: what deciding whether it has
/// room needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Lines waiting in it.
    pub lines: u64,
    /// Lines it holds before it drops the oldest (0: no bound).
    pub capacity: u64,
}

impl Backlog {
    /// What `health` says of it.
    pub fn of(health: &SinkHealth) -> Backlog {
        Backlog {
            lines: health.backlog,
            capacity: health.capacity,
        }
    }

    /// At its capacity (when it has one): what it is given now would push
    /// older lines out.
    pub fn full(self) -> bool {
        self.capacity > 0 && self.lines >= self.capacity
    }
}

impl WhenFull {
    /// Whether `lines` more may go to a sink with `backlog`, `owed` lines
    /// handed to it not being acknowledged yet. Held back, they must fit in
    /// its capacity beside the larger of what it is owed and its backlog
    /// (which holds self metrics besides); a sink without a capacity takes
    /// everything.
    pub fn has_room(self, backlog: Backlog, owed: u64, lines: u64) -> bool {
        match self {
            WhenFull::DropOldest => true,
            WhenFull::Hold => {
                backlog.capacity == 0
                    || owed.max(backlog.lines).saturating_add(lines) <= backlog.capacity
            }
        }
    }
}

/// One sink in a supervisor's list.
pub struct SinkSlot {
    /// How to start it (again).
    pub spec: SinkSpec,
    /// What its supervisor does when its backlog is full.
    pub when_full: WhenFull,
    /// `None` while it is being restarted.
    pub running: Option<RunningSink>,
    /// Lines handed over while it was being restarted, for the new one.
    pub pending: Vec<SendLinesAcked>,
    /// Its latest answer, for the status file and the self metrics:
    /// refreshed every tick, but a slow answer never delays anything.
    pub health: SinkHealth,
}

impl SinkSlot {
    /// A slot for `spec`, not started yet; `when_full` is its supervisor's.
    pub fn new(spec: SinkSpec, when_full: WhenFull) -> SinkSlot {
        SinkSlot {
            spec,
            when_full,
            running: None,
            pending: Vec::new(),
            health: SinkHealth::default(),
        }
    }

    /// Starts the sink and hands it what waited for it.
    pub fn start(&mut self) {
        let sink = self.spec.start();
        for batch in self.pending.drain(..) {
            sink.send(batch);
        }
        self.running = Some(sink);
    }

    /// To the sink, or kept until it is back when it is being restarted.
    pub fn hand_over(&mut self, batch: SendLinesAcked) {
        match &self.running {
            Some(sink) if sink.alive() => sink.send(batch),
            _ => self.pending.push(batch),
        }
    }

    /// `false` while it is being restarted or once it died.
    pub fn alive(&self) -> bool {
        self.running.as_ref().is_some_and(RunningSink::alive)
    }

    /// Its backlog is full (at its capacity, when it has one): what it is
    /// given now would push out older lines.
    pub fn backlog_full(&self) -> bool {
        Backlog::of(&self.health).full()
    }

    /// Whether `lines` more may go to it now, `owed` lines handed to it
    /// not being acknowledged yet ([`WhenFull::has_room`]).
    pub fn has_room(&self, owed: u64, lines: u64) -> bool {
        self.when_full
            .has_room(Backlog::of(&self.health), owed, lines)
    }

    /// Its lines in the status file.
    pub fn status(&self) -> SinkStatus {
        SinkStatus {
            name: self.spec.name().to_owned(),
            backlog: self.health.backlog,
            capacity: self.health.capacity,
            dropped_lines: self.health.dropped,
            last_push_ok: self.health.last_delivery,
            cannot_deliver: self.health.cannot_deliver.clone(),
        }
    }
}

/// Asks every running sink of `slots` for its health, each answer within
/// one [`WRITE_INTERVAL`]; the answers in slot order (`None`: no answer).
pub fn ask_health(slots: &[SinkSlot]) -> impl Future<Output = Vec<Option<SinkHealth>>> + use<> {
    let answers: Vec<_> = slots
        .iter()
        .map(|slot| slot.running.as_ref().map(RunningSink::health))
        .collect();
    async move {
        let within_tick = |request| async move {
            match request {
                Some(request) => tokio::time::timeout(WRITE_INTERVAL, request)
                    .await
                    .ok()
                    .flatten(),
                None => None,
            }
        };
        futures_util::future::join_all(answers.into_iter().map(within_tick)).await
    }
}

/// Keeps each answer of [`ask_health`] in its slot.
pub fn keep_health(slots: &mut [SinkSlot], answers: Vec<Option<SinkHealth>>) {
    for (slot, answer) in slots.iter_mut().zip(answers) {
        if let Some(health) = answer {
            slot.health = health;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(lines: u64, capacity: u64) -> Backlog {
        Backlog { lines, capacity }
    }

    #[test]
    fn dropping_the_oldest_a_sink_takes_everything() {
        let full = backlog(100, 100);
        assert!(WhenFull::DropOldest.has_room(full, 100, 50));
        assert!(WhenFull::DropOldest.has_room(full, u64::MAX, u64::MAX));
    }

    #[test]
    fn holding_back_lines_must_fit_beside_what_is_owed_or_backlogged() {
        let hold = WhenFull::Hold;
        assert!(hold.has_room(backlog(0, 100), 60, 40), "exactly full");
        assert!(!hold.has_room(backlog(0, 100), 60, 41), "owed counts");
        assert!(
            !hold.has_room(backlog(70, 100), 10, 31),
            "so does the backlog"
        );
        assert!(hold.has_room(backlog(70, 100), 10, 30));
        assert!(
            !hold.has_room(backlog(0, 100), 0, 101),
            "too big even alone"
        );
        assert!(!hold.has_room(backlog(0, 100), u64::MAX, 1), "no overflow");
    }

    #[test]
    fn holding_back_a_sink_without_a_capacity_takes_everything() {
        assert!(WhenFull::Hold.has_room(backlog(1_000, 0), 1_000, 1_000));
    }
}
