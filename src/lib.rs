//! haproxystats: a HAProxy statistics collector.
//!
//! It pulls `show info` / `show stat` from every HAProxy stats socket, writes
//! each pull as one snapshot directory, aggregates the snapshot across HAProxy
//! processes and pushes the metrics to Graphite — in one supervised process.
//!
//! # Layout
//!
//! - [`config`]: raw INI (with ConfigParser-compatible interpolation) → one
//!   validated [`config::Config`]; nothing later looks options up by name.
//! - [`catalogue`]: which metrics exist and how each one is aggregated.
//! - [`logging`]: one line per event on stdout, a level per component.
//! - [`cli`]: command line parsing and the subcommand chosen by argv\[0\].
//! - [`manual`]: man pages and shell completions, generated for the package.
//! - [`names`]: the one rule for names that become Graphite path elements
//!   (`lb-name`, `cluster`, group names, namespaces, central's headers).
//!
//! The actor tree (Supervisor, Puller, DirWatcher, Processors, GraphiteSink),
//! every message and the failure table live in `actors.md` at the top of the
//! repository.
#![deny(missing_docs)]

pub mod catalogue;
pub mod central;
pub mod cli;
pub mod commands;
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
pub mod supervisor;
pub mod watcher;
