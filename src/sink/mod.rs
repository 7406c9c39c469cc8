//! The sinks (SPEC §5): where processed lines go.
//!
//! - [`chunks`]: a snapshot's lines in chunks of whole lines, as handed over,
//!   then shared by every sink ([`chunks::SharedLines`]).
//! - [`chunk_pool`]: chunks every sink is done with, for the Processors to
//!   fill again.
//! - [`backlog`]: the bounded FIFO in front of Graphite; drops oldest (pure).
//! - [`retry`]: the reconnect schedule (pure).
//! - [`confirm`]: which written bytes count as delivered (pure).
//! - [`tcp_state`]: the kernel's view of a connection (`SIOCOUTQ`, `TCP_INFO`).
//! - [`graphite`]: the GraphiteSink actor: one connection, backlog, reconnects.
//! - [`local_store`]: `dir/<ts>/stats`, written atomically (debugging).
//! - [`kafka`]: the KafkaSink: formats, settings, the producer actor.
//!
//! Every sink takes the same [`chunks::SharedLines`] and acknowledges each
//! snapshot once it is done with it; the Supervisor removes a snapshot once
//! every enabled sink did (src/supervisor/pipeline.rs).

pub mod backlog;
pub mod chunk_pool;
pub mod chunks;
pub mod confirm;
pub mod graphite;
pub mod kafka;
pub mod local_store;
pub mod retry;
pub mod tcp_state;
