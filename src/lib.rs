//! haproxystats: a HAProxy statistics collector.
//!
//! It pulls `show info` / `show stat` from every HAProxy stats socket, writes
//! each pull as one snapshot directory, aggregates the snapshot across HAProxy
//! processes and pushes the metrics to Graphite — in one supervised process.
//!
//! # Layout
//!
//! Every top-level module, from what everything uses up to what uses
//! everything. A module imports only from its own group and the groups
//! before it, and no import circle joins two modules, however long; so the
//! first group imports nothing from the others. `tests/module_graph.rs`
//! keeps it so (and this list complete).
//!
//! Used everywhere:
//! - [`common`]: what any module may use: the fault injection's `Crash`
//!   message, the text of a caught panic, the clock in epoch seconds.
//! - [`config`]: raw INI (with ConfigParser-compatible interpolation) → one
//!   validated [`config::Config`]; nothing later looks options up by name.
//!   The values the others are configured with are defined there (Kafka's
//!   format and compression, raw snapshots' fields, HTTP stats pages,
//!   stage 2's windows, the liveness interval), not where they are used;
//!   but for a sink's own section, which the sink describes
//!   (`config::SinkSection`) and the list of sinks hands in.
//! - [`catalogue`]: which metrics exist and how each one is aggregated.
//! - [`names`]: the one rule for names that become Graphite path elements
//!   (`lb-name`, `cluster`, group names, namespaces, central's headers).
//! - [`log_limit`]: bounds on what a peer can make us log (rate, escaping).
//! - [`logging`]: one line per event on stdout, a level per component.
//! - [`signals`]: SIGTERM/SIGINT/SIGHUP as one "drain, then exit" stream.
//!
//! Plain logic (no actor), each with its own tests:
//! - [`stat_line`]: one `show stat` CSV line as the engine and the raw
//!   encoder read it (its cells found 64 bytes at a time).
//! - [`raw`]: raw snapshots as Arrow IPC parts, both ways (SPEC §5).
//! - [`engine`]: one snapshot (CSV files, or Arrow columns) → Graphite lines
//!   and partial aggregates; [`replay`] runs it once on directories.
//!
//! The daemon's actors (the tree is in `actors.md`):
//! - [`health`]: the status file, sd_notify and `haproxystats check`.
//! - [`puller`]: the Puller actor and its sources (stats sockets, the master
//!   CLI, HTTP stats pages).
//! - [`watcher`]: the DirWatcher (inotify on src-dir).
//! - [`sink`]: every sink, one folder or file each (Graphite, local-store,
//!   Kafka, Prometheus, remote write, raw snapshots), and what they share
//!   (backlog, chunks, acknowledgements, the writer shell).
//! - [`processor`]: the Processors (the engine on `SyncArbiter` threads),
//!   quarantine and trash.
//! - [`supervisor`]: the root; its decisions in `supervisor::pipeline`.
//!   What Central's root shares with it: the supervision loop
//!   (`supervisor::children`, deciding in `supervisor::restart`) and the
//!   self metrics' text (`supervisor::self_metrics`).
//!
//! Central processing (`haproxystats central`, SPEC §7):
//! - [`central`]: its actor, consumers and processors; its decisions in
//!   `central::delivery`, `central::windows`, `central::assembler`,
//!   `central::offsets`.
//!
//! At the top:
//! - [`cli`]: command line parsing and the subcommand chosen by argv\[0\].
//! - [`commands`]: one file per command, wiring the above together.
//! - [`manual`]: man pages and shell completions, generated for the package.
//!
//! The actor trees (the daemon's and central's), every message and the
//! failure tables live in `actors.md` at the top of the repository.
#![deny(missing_docs)]

pub mod catalogue;
pub mod central;
pub mod cli;
pub mod commands;
pub mod common;
pub mod config;
pub mod engine;
pub mod health;
pub mod log_limit;
pub mod logging;
pub mod manual;
pub mod names;
pub mod processor;
pub mod puller;
pub mod raw;
pub mod replay;
pub mod signals;
pub mod sink;
pub mod stat_line;
pub mod supervisor;
pub mod watcher;
