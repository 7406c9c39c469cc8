//! `haproxystats central`, stage 1 (SPEC §7): a consumer group on the
//! snapshots topic; each snapshot, reassembled from its parts, gives the
//! lines `replay` gives for it under `<namespace>.<lb>.haproxy.` and one
//! partial aggregate to the partials topic; offsets are committed once
//! every sink acknowledged the lines and the broker the partial.
//!
//! Plain logic, no actor, each with its tests; the decisions are here:
//! - [`delivery`]: the state machine of delivery, both stages: lines to
//!   the sinks within their `queue-size`, partials in dispatch order, what
//!   is done and may be committed, pause and resume.
//! - [`windows`]: stage 2's state machine: partials → windows per
//!   cluster, when each closes, what may be committed on the partials topic.
//! - [`state`]: stage 2's state topic (each cluster's last emitted window).
//! - [`offsets`]: which offsets are done, what to commit.
//! - [`bad`]: what makes a message bad; logged and counted in one place.
//! - [`assembler`]: parts → whole snapshots, or "missing part".
//! - [`clocks`]: a message's reference time; `ClockSkewMs.<lb>`.
//! - [`partials`]: the partials topic's key and headers.
//! - [`process`]: the one call into the engine.
//! - [`topics`]: the partials and state topics, created when missing.
//!
//! Actors and threads (the tree is in actors.md):
//! - [`actor`]: Central, the root: reads, processes, carries out what
//!   [`delivery`] and [`windows`] decide, supervises.
//! - [`consumer`]: librdkafka's consumer on a thread of its own.
//! - [`processor`]: decode and process on `SyncArbiter` threads.

pub mod actor;
pub mod assembler;
pub mod bad;
pub mod clocks;
pub mod consumer;
pub mod delivery;
pub mod offsets;
pub mod partials;
pub mod process;
pub mod processor;
pub mod state;
pub mod topics;
pub mod windows;
