//! The one supervision loop, the daemon's Supervisor's and Central's: every
//! [`crate::config::LIVENESS_INTERVAL`] the supervisor looks at each child,
//! lets go of a dead one, starts it again after its backoff, or gives up
//! (the command exits 1). What to do is [`Restarts`]' decision; this
//! module carries it out on the supervisor's context. A supervisor says
//! what its children are and how to start its own ([`Supervises`]); its
//! sinks ([`SinkSlot`]s) are restarted here the same way for both.

use std::time::Instant;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::restart::{AfterDeath, Liveness, RestartLimit, Restarts};
use crate::sink::SinkSlot;

/// The children a supervisor restarts, the daemon's and Central's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// The daemon's Puller.
    Puller,
    /// The daemon's DirWatcher.
    Watcher,
    /// Central's consumer of the snapshots topic (stage 1).
    Consumer,
    /// Central's consumer of the partials topic (stage 2).
    MergeConsumer,
    /// The sink of this name (`graphite`, `kafka`, `local-store`, ...).
    Sink(&'static str),
}

impl ChildKind {
    /// Its name in the log.
    pub fn name(self) -> &'static str {
        match self {
            ChildKind::Puller => "puller",
            ChildKind::Watcher => "watcher",
            ChildKind::Consumer => "consumer",
            ChildKind::MergeConsumer => "merge-consumer",
            ChildKind::Sink(name) => name,
        }
    }
}

/// What the loop keeps for one supervisor.
#[derive(Debug)]
pub struct Supervision {
    restarts: Restarts<ChildKind>,
    /// Where it reports that it gave up (the command exits 1).
    fatal: mpsc::UnboundedSender<String>,
}

impl Supervision {
    /// No restart yet; more than `limit` and the supervisor gives up,
    /// reporting it on `fatal`.
    pub fn new(limit: RestartLimit, fatal: mpsc::UnboundedSender<String>) -> Supervision {
        Supervision {
            restarts: Restarts::new(limit),
            fatal,
        }
    }
}

/// What a supervisor gives the supervision loop; it only says what its
/// children are, how to start its own, and how to stop.
pub trait Supervises: Actor<Context = Context<Self>> {
    /// What the loop keeps for it.
    fn supervision(&mut self) -> &mut Supervision;
    /// Its sinks.
    fn sinks(&mut self) -> &mut [SinkSlot];
    /// Its own children (the sinks apart), each with its liveness.
    fn own_children(&self) -> Vec<(ChildKind, Liveness)>;
    /// Drops its handle of its own child, found dead.
    fn let_go(&mut self, child: ChildKind);
    /// Starts its own child (again); one that cannot start goes to
    /// [`child_died`].
    fn start_own(&mut self, child: ChildKind, ctx: &mut Context<Self>);
    /// Stopping (draining): a dead child is left dead.
    fn draining(&self) -> bool;
    /// Keeps the count of restarts since start (its `ChildRestarts`).
    fn count_restarts(&mut self, total: u64);
    /// Gave up: stops as it would on a signal.
    fn drain(&mut self, ctx: &mut Context<Self>);
}

/// Looks at every child of `supervisor` and restarts the dead ones (it
/// panicked or stopped).
pub fn check_children<S: Supervises>(supervisor: &mut S, ctx: &mut Context<S>) {
    if supervisor.draining() {
        return;
    }
    let mut children = supervisor.own_children();
    children.extend(supervisor.sinks().iter().map(|slot| {
        let liveness = match &slot.running {
            None => Liveness::NotRunning,
            Some(sink) if sink.alive() => Liveness::Alive,
            Some(_) => Liveness::Dead,
        };
        (ChildKind::Sink(slot.spec.name()), liveness)
    }));
    let dead = supervisor.supervision().restarts.dead(children);
    for child in dead {
        match child {
            ChildKind::Sink(name) => {
                if let Some(slot) = sink_named(supervisor, name) {
                    slot.running = None;
                }
            }
            own => supervisor.let_go(own),
        }
        if !child_died(supervisor, child, ctx) {
            return;
        }
    }
}

/// `child` died, or could not start: it is started again after its backoff,
/// unless this is one restart too many, on which `supervisor` reports a
/// fatal error and drains. Answers `false` when it gave up.
pub fn child_died<S: Supervises>(
    supervisor: &mut S,
    child: ChildKind,
    ctx: &mut Context<S>,
) -> bool {
    match supervisor
        .supervision()
        .restarts
        .died(child, Instant::now())
    {
        AfterDeath::AlreadyWaiting => true,
        AfterDeath::Restart { after, restarts } => {
            supervisor.count_restarts(restarts);
            tracing::error!(
                child = child.name(),
                restart_in_ms = after.as_millis() as u64,
                restarts,
                "child died; restarting it"
            );
            ctx.run_later(after, move |supervisor, ctx| {
                let draining = supervisor.draining();
                if supervisor.supervision().restarts.due(child, draining) {
                    start(supervisor, child, ctx);
                }
            });
            true
        }
        AfterDeath::GiveUp(exceeded) => {
            let total = supervisor.supervision().restarts.total();
            supervisor.count_restarts(total);
            tracing::error!(child = child.name(), "{exceeded}");
            let _ = supervisor.supervision().fatal.send(exceeded.to_string());
            supervisor.drain(ctx);
            false
        }
    }
}

/// Starts `child` again.
fn start<S: Supervises>(supervisor: &mut S, child: ChildKind, ctx: &mut Context<S>) {
    match child {
        ChildKind::Sink(name) => {
            if let Some(slot) = sink_named(supervisor, name) {
                slot.start();
            }
        }
        own => supervisor.start_own(own, ctx),
    }
    tracing::info!(child = child.name(), "child restarted");
}

fn sink_named<'s, S: Supervises>(supervisor: &'s mut S, name: &str) -> Option<&'s mut SinkSlot> {
    supervisor
        .sinks()
        .iter_mut()
        .find(|slot| slot.spec.name() == name)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A supervisor of one child of its own, a flag: `Some(alive)` while
    /// it runs.
    struct Fake {
        supervision: Supervision,
        puller: Option<bool>,
        starts: u32,
        counted: u64,
        draining: bool,
    }

    impl Actor for Fake {
        type Context = Context<Fake>;
    }

    impl Supervises for Fake {
        fn supervision(&mut self) -> &mut Supervision {
            &mut self.supervision
        }

        fn sinks(&mut self) -> &mut [SinkSlot] {
            &mut []
        }

        fn own_children(&self) -> Vec<(ChildKind, Liveness)> {
            let liveness = match self.puller {
                None => Liveness::NotRunning,
                Some(true) => Liveness::Alive,
                Some(false) => Liveness::Dead,
            };
            vec![(ChildKind::Puller, liveness)]
        }

        fn let_go(&mut self, _: ChildKind) {
            self.puller = None;
        }

        fn start_own(&mut self, _: ChildKind, _: &mut Context<Fake>) {
            self.puller = Some(true);
            self.starts += 1;
        }

        fn draining(&self) -> bool {
            self.draining
        }

        fn count_restarts(&mut self, total: u64) {
            self.counted = total;
        }

        fn drain(&mut self, _: &mut Context<Fake>) {
            self.draining = true;
        }
    }

    /// Kills the puller, then runs the loop once.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct KillAndCheck;

    impl Handler<KillAndCheck> for Fake {
        type Result = ();

        fn handle(&mut self, _: KillAndCheck, ctx: &mut Context<Fake>) {
            if self.puller.is_some() {
                self.puller = Some(false);
            }
            check_children(self, ctx);
        }
    }

    /// (running, starts, counted, draining)
    #[derive(Message)]
    #[rtype(result = "(Option<bool>, u32, u64, bool)")]
    struct Look;

    impl Handler<Look> for Fake {
        type Result = MessageResult<Look>;

        fn handle(&mut self, _: Look, _: &mut Context<Fake>) -> Self::Result {
            MessageResult((self.puller, self.starts, self.counted, self.draining))
        }
    }

    fn start(max: usize) -> (Addr<Fake>, mpsc::UnboundedReceiver<String>) {
        let (fatal, gave_up) = mpsc::unbounded_channel();
        let limit = RestartLimit {
            max,
            window: Duration::from_secs(60),
        };
        let fake = Fake {
            supervision: Supervision::new(limit, fatal),
            puller: Some(true),
            starts: 0,
            counted: 0,
            draining: false,
        };
        (fake.start(), gave_up)
    }

    #[actix_rt::test]
    async fn a_dead_child_is_let_go_then_started_after_its_backoff() {
        let (fake, mut gave_up) = start(5);
        fake.send(KillAndCheck).await.expect("check");
        let (puller, starts, counted, _) = fake.send(Look).await.expect("look");
        assert_eq!((puller, starts, counted), (None, 0, 1), "let go, counted");
        // Looked at again while it waits: not running, so not dead again.
        fake.send(KillAndCheck).await.expect("check");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (puller, starts, counted, draining) = fake.send(Look).await.expect("look");
        assert_eq!(
            (puller, starts, counted),
            (Some(true), 1, 1),
            "started once"
        );
        assert!(!draining);
        assert!(gave_up.try_recv().is_err());
    }

    #[actix_rt::test]
    async fn one_death_too_many_reports_it_and_drains_and_nothing_restarts_after() {
        let (fake, mut gave_up) = start(1);
        fake.send(KillAndCheck).await.expect("check");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fake.send(Look).await.expect("look").1, 1, "first restart");
        fake.send(KillAndCheck).await.expect("check");
        let why = gave_up.recv().await.expect("a fatal report");
        assert!(why.contains("giving up"), "{why}");
        let (puller, starts, counted, draining) = fake.send(Look).await.expect("look");
        assert_eq!((puller, starts, counted, draining), (None, 1, 2, true));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fake.send(Look).await.expect("look").1, 1, "not restarted");
    }
}
