//! The long-running commands: `haproxystats` (the supervisor with the puller)
//! and `haproxystats process` (the same without it). Both run until SIGTERM,
//! SIGINT or SIGHUP, then drain: stop pulling, finish in-flight snapshots,
//! flush the sinks within [`SHUTDOWN_TIMEOUT`], exit 0. A second signal
//! while draining quits at once (nothing is lost: unprocessed snapshots stay
//! in src-dir).

use std::sync::Arc;
use std::time::Duration;

use actix::Actor;

use super::{CommandError, require_dir};
use crate::config::Config;
use crate::engine::EngineOptions;
use crate::signals::StopSignals;
use crate::sink::graphite::GraphiteSettings;
use crate::supervisor::restart::RestartLimit;
use crate::supervisor::{Shutdown, Supervisor, SupervisorSettings};

/// How long draining may take before the process exits anyway.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the supervisor; `pull` adds the puller (the one-unit deployment).
pub fn run(config: &Config, hostname: &str, pull: bool) -> Result<(), CommandError> {
    // The puller creates its directories (as the original's pull did); the
    // process half only checks src-dir, which is dst-dir in the usual setup.
    if pull {
        require_dir(&config.pull.dst_dir, "pull", "dst-dir", true)?;
        require_dir(&config.pull.tmp_dst_dir, "pull", "tmp-dst-dir", true)?;
    }
    require_dir(&config.process.src_dir, "process", "src-dir", false)?;
    let engine = EngineOptions::from_config(config, hostname)
        .map_err(|error| CommandError::Startup(error.to_string()))?;
    let system = actix::System::new();
    system.block_on(async {
        let mut signals = StopSignals::listen().map_err(CommandError::Signals)?;
        let (fatal, mut fatal_errors) = tokio::sync::mpsc::unbounded_channel();
        let supervisor = Supervisor::new(SupervisorSettings {
            src_dir: config.process.src_dir.clone(),
            workers: config.process.workers,
            engine: Arc::new(engine),
            pull: pull.then(|| config.pull.clone()),
            graphite: GraphiteSettings::from_config(&config.graphite),
            local_store: config.local_store.as_ref().map(|store| store.dir.clone()),
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            restart_limit: RestartLimit::default(),
            fatal,
        })
        .start();
        tokio::select! {
            signal = signals.next() => {
                tracing::info!(signal, "stopping: finishing in-flight snapshots and flushing the sinks");
            }
            Some(error) = fatal_errors.recv() => {
                // Snapshots not yet processed stay in src-dir for the next start.
                return Err(CommandError::Runtime(error));
            }
        }
        tokio::select! {
            left = supervisor.send(Shutdown) => match left {
                Ok(0) => tracing::info!("stopped; everything flushed"),
                Ok(left) => tracing::error!(unsent_lines = left, "stopped before graphite took every line; they are lost"),
                Err(error) => return Err(CommandError::Runtime(format!("supervisor did not stop cleanly: {error}"))),
            },
            second = signals.next() => {
                tracing::warn!(signal = second, "second signal: quitting now; unprocessed snapshots stay in src-dir");
            }
        }
        Ok(())
    })
}
