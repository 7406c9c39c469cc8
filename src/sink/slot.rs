//! [`SinkSlot`]: one sink in a supervisor's list — the running sink, the
//! lines waiting while it restarts, its last health. Shared by the daemon's
//! Supervisor and central's, so that both keep their sinks the same way and
//! neither has code of its own per sink.

use std::future::Future;

use super::messages::{SendLinesAcked, SinkHealth};
use super::{RunningSink, SinkSpec};
use crate::health::{SinkStatus, WRITE_INTERVAL};

/// One sink in a supervisor's list.
pub struct SinkSlot {
    /// How to start it (again).
    pub spec: SinkSpec,
    /// `None` while it is being restarted.
    pub running: Option<RunningSink>,
    /// Lines handed over while it was being restarted, for the new one.
    pub pending: Vec<SendLinesAcked>,
    /// Its latest answer, for the status file and the self metrics:
    /// refreshed every tick, but a slow answer never delays anything.
    pub health: SinkHealth,
}

impl SinkSlot {
    /// A slot for `spec`, not started yet.
    pub fn new(spec: SinkSpec) -> SinkSlot {
        SinkSlot {
            spec,
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
        self.health.capacity > 0 && self.health.backlog >= self.health.capacity
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
