//! `haproxystats replay DIR...`: run the engine once on snapshot directories
//! and write the Graphite lines to a writer, deleting nothing.

use std::io::Write;
use std::path::PathBuf;

use crate::config::Config;
use crate::engine::{self, EngineOptions, OptionsError, SnapshotError};

/// Outcome of a replay run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Directories processed successfully.
    pub processed: usize,
    /// Directories that failed (each reported on stderr with its name).
    pub failed: usize,
    /// Input warnings over all directories (each reported on stderr).
    pub warnings: usize,
}

/// Errors that stop a replay as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The engine options could not be built (e.g. a missing exclude file).
    #[error("cannot set up processing: {0}")]
    Options(#[from] OptionsError),
    /// Writing to the output failed.
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
}

/// Runs the engine on each directory in order and streams its lines (self
/// metrics included) to `out`. A failing directory is reported on stderr in
/// one line naming it, and the others still run; input warnings are reported
/// on stderr too. Nothing is deleted.
pub fn run(
    config: &Config,
    hostname: &str,
    dirs: &[PathBuf],
    out: &mut dyn Write,
) -> Result<ReplaySummary, ReplayError> {
    let opts = EngineOptions::from_config(config, hostname)?;
    let mut summary = ReplaySummary::default();
    for dir in dirs {
        // Lines are streamed to `out` in chunks, not gathered per directory.
        match engine::process_snapshot_to(dir, &opts, out) {
            Ok(report) => {
                for w in &report.warnings {
                    eprintln!("warning: {w}");
                }
                summary.warnings += report.warnings.len();
                summary.processed += 1;
            }
            Err(SnapshotError::Write { source, .. }) => return Err(ReplayError::Write(source)),
            Err(e) => {
                eprintln!("error: {e}");
                summary.failed += 1;
            }
        }
    }
    out.flush()?;
    Ok(summary)
}
