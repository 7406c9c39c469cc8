//! A sink as the Supervisor holds it: [`SinkSpec`], how to start a
//! configured sink (again, after a crash), and [`RunningSink`], the started
//! actor on a thread (arbiter) of its own, reached through the messages
//! every sink handles ([`super::messages`]). With these the Supervisor
//! keeps one list of sinks and no code of its own per sink.

use std::future::Future;
use std::time::Duration;

use actix::prelude::*;

use super::messages::{Flush, GetSinkHealth, SendLinesAcked, SinkHealth};

/// What a sink actor handles. Implemented for every actor that handles
/// the messages; a new sink only writes its handlers.
#[cfg(any(test, feature = "fault-injection"))]
pub trait SinkActor:
    Actor<Context = Context<Self>>
    + Handler<SendLinesAcked>
    + Handler<Flush>
    + Handler<GetSinkHealth>
    + Handler<crate::common::Crash>
    + Send
{
}

#[cfg(any(test, feature = "fault-injection"))]
impl<A> SinkActor for A where
    A: Actor<Context = Context<A>>
        + Handler<SendLinesAcked>
        + Handler<Flush>
        + Handler<GetSinkHealth>
        + Handler<crate::common::Crash>
        + Send
{
}

/// What a sink actor handles. Implemented for every actor that handles
/// the messages; a new sink only writes its handlers.
#[cfg(not(any(test, feature = "fault-injection")))]
pub trait SinkActor:
    Actor<Context = Context<Self>>
    + Handler<SendLinesAcked>
    + Handler<Flush>
    + Handler<GetSinkHealth>
    + Send
{
}

#[cfg(not(any(test, feature = "fault-injection")))]
impl<A> SinkActor for A where
    A: Actor<Context = Context<A>>
        + Handler<SendLinesAcked>
        + Handler<Flush>
        + Handler<GetSinkHealth>
        + Send
{
}

/// A configured sink: its name (logs, status file, `check`) and how to
/// start it.
pub struct SinkSpec {
    name: &'static str,
    start: Box<dyn Fn() -> RunningSink + Send>,
}

impl SinkSpec {
    /// A sink called `name`, started by running the actor `make` builds.
    pub fn new<A: SinkActor>(
        name: &'static str,
        make: impl Fn() -> A + Send + 'static,
    ) -> SinkSpec {
        SinkSpec {
            name,
            start: Box::new(move || RunningSink::start(make())),
        }
    }

    /// The sink's name: `graphite`, `kafka`, `local-store`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Starts the sink on a thread of its own.
    pub fn start(&self) -> RunningSink {
        (self.start)()
    }
}

impl std::fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSpec")
            .field("name", &self.name)
            .finish()
    }
}

/// A started sink; dropping it stops the sink's thread.
pub struct RunningSink {
    send: Recipient<SendLinesAcked>,
    flush: Recipient<Flush>,
    health: Recipient<GetSinkHealth>,
    #[cfg(any(test, feature = "fault-injection"))]
    crash: Recipient<crate::common::Crash>,
    arbiter: Arbiter,
}

impl RunningSink {
    /// Runs `actor` on an arbiter of its own: a panic there ends this sink
    /// only (its mailbox closes; the Supervisor sees it and restarts it).
    pub fn start<A: SinkActor>(actor: A) -> RunningSink {
        let arbiter = Arbiter::new();
        let addr = A::start_in_arbiter(&arbiter.handle(), move |_| actor);
        RunningSink {
            send: addr.clone().recipient(),
            flush: addr.clone().recipient(),
            health: addr.clone().recipient(),
            #[cfg(any(test, feature = "fault-injection"))]
            crash: addr.recipient(),
            arbiter,
        }
    }

    /// `false` once the actor stopped or panicked.
    pub fn alive(&self) -> bool {
        self.send.connected()
    }

    /// Hands a snapshot's lines over; an answer comes on its `written`.
    pub fn send(&self, batch: SendLinesAcked) {
        self.send.do_send(batch);
    }

    /// Waits at most `timeout` for everything queued to be delivered;
    /// answers the lines left (`u64::MAX` when the sink did not answer).
    pub fn flush(&self, timeout: Duration) -> impl Future<Output = u64> + use<> {
        let request = self.flush.send(Flush { timeout });
        async move { request.await.unwrap_or(u64::MAX) }
    }

    /// The sink's health; `None` when it did not answer.
    pub fn health(&self) -> impl Future<Output = Option<SinkHealth>> + use<> {
        let request = self.health.send(GetSinkHealth);
        async move { request.await.ok() }
    }

    /// Makes the sink panic (fault injection).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn crash(&self) {
        self.crash.do_send(crate::common::Crash);
    }
}

impl Drop for RunningSink {
    fn drop(&mut self) {
        self.arbiter.stop();
    }
}
