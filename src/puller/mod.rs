//! The pull half (SPEC §3): on every beat, one snapshot of every HAProxy
//! stats socket, published atomically into `dst-dir`.
//!
//! - [`schedule`]: phase-aligned beats that skip, never stack (pure).
//! - [`client`]: one request to one stats socket, with retries and limits.
//! - [`snapshot`]: assemble in `tmp-dst-dir`, publish by rename (blocking).
//! - [`cycle`]: one cycle over every socket, bounded by `pull-timeout`.

pub mod actor;
pub mod client;
pub mod cycle;
pub mod schedule;
pub mod snapshot;
