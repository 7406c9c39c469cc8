//! The sinks (SPEC §5): where processed lines go.
//!
//! - [`backlog`]: the bounded FIFO in front of Graphite; drops oldest (pure).
//! - [`retry`]: the reconnect schedule (pure).
//! - [`graphite`]: the GraphiteSink actor: one connection, backlog, reconnects.

pub mod backlog;
pub mod graphite;
pub mod retry;
