//! The commands, one file each: `daemon` (the supervisor, with or without
//! the puller), `central` (central processing, SPEC §7), `pull` (the puller alone), `check` (the Nagios plugin, reads
//! the status file). `replay` runs no actor and lives in [`crate::replay`].

pub mod central;
pub mod check;
pub mod daemon;
pub mod pull;

/// Why a command could not start or ended in failure (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A directory the command needs is missing or not writable.
    #[error("cannot start: {0}")]
    Startup(String),
    /// Installing the signal handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// Something the configuration names cannot be used (a port in use):
    /// like a bad configuration, exit 2.
    #[error("cannot start: {0}")]
    Unusable(String),
    /// The actor system failed.
    #[error("{0}")]
    Runtime(String),
}

/// Checks that a directory a command needs is readable and writable, creating
/// it first when `create`, so that a wrong path fails at start with one line
/// naming the option rather than on every cycle.
fn require_dir(
    dir: &std::path::Path,
    section: &str,
    option: &str,
    create: bool,
) -> Result<(), CommandError> {
    if create {
        std::fs::create_dir_all(dir).map_err(|error| {
            CommandError::Startup(format!("[{section}] {option} {}: {error}", dir.display()))
        })?;
    }
    crate::config::check_dir_access(dir, section, option)
        .map_err(|error| CommandError::Startup(error.to_string()))
}
