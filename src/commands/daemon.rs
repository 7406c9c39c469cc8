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
use crate::health::Reporter;
use crate::signals::StopSignals;
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
    let engine = daemon_engine_options(config, hostname)?;
    let host = crate::engine::prefix_host(&config.graphite, hostname);
    // An edge publishing under a name central refuses would publish for
    // nothing: a host name outside the name rule stops it here.
    if config.publishes_snapshots()
        && let Some(kafka) = &config.kafka
    {
        kafka
            .check_lb_name(&host)
            .map_err(|error| CommandError::Unusable(error.to_string()))?;
    }
    let sinks = crate::sink::configured(config, &engine.prefix, &host)
        .map_err(|error| CommandError::Unusable(error.to_string()))?;
    let system = actix::System::new();
    system.block_on(async {
        let mut signals = StopSignals::listen().map_err(CommandError::Signals)?;
        let (fatal, mut fatal_errors) = tokio::sync::mpsc::unbounded_channel();
        let supervisor = Supervisor::new(SupervisorSettings {
            src_dir: config.process.src_dir.clone(),
            workers: config.process.workers,
            engine: Arc::new(engine),
            pull: pull.then(|| config.pull.clone()),
            align_pulls: config.publishes_snapshots(),
            local: config.process.local,
            sinks,
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            restart_limit: RestartLimit::default(),
            fatal,
            health: Some(Reporter::from_config(config, pull)),
        })
        .start();
        #[cfg(feature = "fault-injection")]
        crash_children_on_sigusr2(supervisor.clone());
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
                Ok(unconfirmed) => report_stop(&config.process.src_dir, unconfirmed),
                Err(error) => return Err(CommandError::Runtime(format!("supervisor did not stop cleanly: {error}"))),
            },
            second = signals.next() => {
                tracing::warn!(signal = second, "second signal: quitting now; unprocessed snapshots stay in src-dir");
            }
        }
        Ok(())
    })
}

/// The stop's last word: how many snapshots stay in src-dir for the next
/// start. Counted on disk, after the drain, so that it is the truth: a
/// snapshot leaves src-dir only once every sink confirmed its lines.
fn report_stop(src_dir: &std::path::Path, unconfirmed_lines: u64) {
    match crate::processor::quarantine::pending(src_dir) {
        Ok(pending) if pending.snapshots.is_empty() => {
            tracing::info!("stopped; every snapshot delivered");
        }
        Ok(pending) => tracing::info!(
            kept_snapshots = pending.snapshots.len(),
            unconfirmed_lines,
            src_dir = %src_dir.display(),
            "stopped; snapshots not yet delivered (unprocessed, or not confirmed by graphite) stay in src-dir for the next start"
        ),
        Err(error) => tracing::error!(
            src_dir = %src_dir.display(),
            error = %error,
            "stopped; cannot list src-dir to count the snapshots kept for the next start"
        ),
    }
}

/// The engine's options for the Processors: each snapshot on one thread.
///
/// `replay` splits a snapshot across every core, to finish it sooner. The
/// daemon has `workers` Processors for that, and a snapshot every few
/// seconds: there, merging the threads' accumulators and waking a helper
/// would cost a quarter more CPU (159 vs 127 ms per snapshot of
/// bench/cpu.sh's shape, `perf stat -r 15`) to save some 20 ms of a
/// cycle's idle time.
fn daemon_engine_options(config: &Config, hostname: &str) -> Result<EngineOptions, CommandError> {
    let mut engine = EngineOptions::from_config(config, hostname)
        .map_err(|error| CommandError::Startup(error.to_string()))?;
    engine.parallelism = 1;
    Ok(engine)
}

/// Fault injection for soak tests: each SIGUSR2 crashes the next child in
/// turn (puller, watcher, graphite sink; a sink that is off is skipped). Compiled only with the
/// `fault-injection` feature.
#[cfg(feature = "fault-injection")]
fn crash_children_on_sigusr2(supervisor: actix::Addr<Supervisor>) {
    use crate::supervisor::{ChildKind, CrashChild};
    use futures_util::StreamExt;

    tracing::warn!("fault injection enabled: SIGUSR2 crashes a child");
    let Ok(mut usr2) = signal_hook_tokio::Signals::new([signal_hook::consts::SIGUSR2]) else {
        tracing::error!("cannot listen for SIGUSR2");
        return;
    };
    actix::spawn(async move {
        let kinds = [
            ChildKind::Puller,
            ChildKind::Watcher,
            ChildKind::Sink("graphite"),
        ];
        let mut next = 0;
        while usr2.next().await.is_some() {
            let kind = kinds[next % kinds.len()];
            next += 1;
            tracing::warn!(child = ?kind, "fault injection: crashing a child");
            supervisor.do_send(CrashChild(kind));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_processes_each_snapshot_on_one_thread() {
        let config = Config::defaults();
        let replay = EngineOptions::from_config(&config, "lb-1").unwrap();
        let daemon = daemon_engine_options(&config, "lb-1").unwrap();
        assert_eq!(daemon.parallelism, 1);
        assert_eq!(daemon.prefix, replay.prefix);
        assert_eq!(daemon.server_metrics, replay.server_metrics);
    }
}
