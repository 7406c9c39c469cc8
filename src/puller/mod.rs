//! The pull half (SPEC §3): on every beat, one snapshot of every HAProxy
//! source, published atomically into `dst-dir`.
//!
//! - [`schedule`]: phase-aligned beats that skip, never stack (pure).
//! - [`client`]: one request to one source, with retries and limits.
//! - [`master`]: a master CLI's current workers, pulled through it.
//! - [`http`]: an HTTP stats page (`show stat` only).
//! - [`snapshot`]: assemble in `tmp-dst-dir`, publish by rename (blocking).
//! - [`cycle`]: one cycle over every source, bounded by `pull-timeout`.

pub mod actor;
pub mod client;
pub mod cycle;
pub mod http;
pub mod master;
pub mod schedule;
pub mod snapshot;
