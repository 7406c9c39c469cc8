//! The sinks (SPEC §5): where processed lines go.
//!
//! - [`chunks`]: a snapshot's lines in chunks of whole lines, as handed over.
//! - [`chunk_pool`]: chunks the Graphite sink has sent, for the Processors
//!   to fill again.
//! - [`backlog`]: the bounded FIFO in front of Graphite; drops oldest (pure).
//! - [`retry`]: the reconnect schedule (pure).
//! - [`confirm`]: which written bytes count as delivered (pure).
//! - [`tcp_state`]: the kernel's view of a connection (`SIOCOUTQ`, `TCP_INFO`).
//! - [`graphite`]: the GraphiteSink actor: one connection, backlog, reconnects.
//! - [`local_store`]: `dir/<ts>/stats`, written atomically (debugging).
//! - [`kafka`]: Kafka message formats (the producer is not built yet).

pub mod backlog;
pub mod chunk_pool;
pub mod chunks;
pub mod confirm;
pub mod graphite;
pub mod kafka;
pub mod local_store;
pub mod retry;
pub mod tcp_state;
