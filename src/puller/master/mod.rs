//! The master CLI as a source (`servers = master:///path/to/master.sock`,
//! HAProxy started with `-W -S PATH`): every cycle `show proc` lists the
//! current workers, and each one's `show info` and `show stat` are asked
//! through the master (`@!<pid> show info`). Files are named
//! `<socket>@<relative process number>_info|_stat`, stable across reloads
//! (`<socket>@pid<PID>` for workers claiming one number: [`select`](mod@select)).
//!
//! Old (draining) workers are never pulled. A reload between `show proc`
//! and the end of the pull would let one in; so after the pull the master
//! is asked again, and a pulled worker that is no longer current fails the
//! cycle ([`check_still_current`]).
//!
//! - [`show_proc`]: the listing, both layouts (pure).
//! - [`select`](mod@select): which workers are pulled (at most `master-worker-limit`),
//!   named by PID where their relative numbers collide (pure).

pub mod select;
pub mod show_proc;

use std::path::Path;

use super::client::{self, Command, ConnectPolicy, QueryError};
use crate::config::StatsEndpoint;
pub use select::{Picked, Selection, select};
pub use show_proc::{ProcList, ShowProcError, Worker};

/// Why a master CLI could not be pulled.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// `show proc` failed (the master is gone, hangs, ...).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Its reply is not a usable listing.
    #[error("'show proc': {0}")]
    ShowProc(#[from] ShowProcError),
    /// A reload during the pull made pulled workers old.
    #[error(
        "worker(s) {pids} no longer current after the pull (a reload?): nothing of it published"
    )]
    Reloaded {
        /// The PIDs, comma-separated.
        pids: String,
    },
}

/// The master's current and old workers, from `show proc`.
pub async fn workers(
    master: &Path,
    policy: &ConnectPolicy,
    limit: usize,
) -> Result<ProcList, MasterError> {
    let endpoint = StatsEndpoint::Master(master.to_path_buf());
    let reply = client::query(&endpoint, Command::plain("show proc"), policy, limit).await?;
    Ok(show_proc::parse(&String::from_utf8_lossy(&reply))?)
}

/// Fails unless every one of `pulled` is still a current worker.
pub async fn check_still_current(
    master: &Path,
    pulled: &[Worker],
    policy: &ConnectPolicy,
    limit: usize,
) -> Result<(), MasterError> {
    let now = workers(master, policy, limit).await?;
    let gone: Vec<String> = pulled
        .iter()
        .filter(|worker| !now.current.contains(worker))
        .map(|worker| worker.pid.to_string())
        .collect();
    if gone.is_empty() {
        return Ok(());
    }
    // A few PIDs say what happened; thousands would make a line of kilobytes.
    const SHOWN: usize = 8;
    let mut pids = gone
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if gone.len() > SHOWN {
        pids.push_str(&format!(" and {} more", gone.len() - SHOWN));
    }
    Err(MasterError::Reloaded { pids })
}
