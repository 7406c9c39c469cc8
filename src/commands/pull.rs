//! `haproxystats pull`: the Puller alone, until SIGTERM, SIGINT or SIGHUP;
//! then the cycle in progress is cancelled (its tmp dir removed) and the
//! command exits 0. A second signal while stopping quits at once.

use actix::Actor;

use super::{CommandError, require_dir};
use crate::config::Config;
use crate::puller::actor::{Puller, StopPulling};
use crate::signals::StopSignals;

/// Runs the pull half until a stop signal.
pub fn run(config: &Config) -> Result<(), CommandError> {
    require_dir(&config.pull.dst_dir, "pull", "dst-dir", true)?;
    require_dir(&config.pull.tmp_dst_dir, "pull", "tmp-dst-dir", true)?;
    let system = actix::System::new();
    system.block_on(async {
        let mut signals = StopSignals::listen().map_err(CommandError::Signals)?;
        let mut puller = Puller::new(&config.pull);
        // The process half of a split deployment publishes these snapshots.
        if config.publishes_snapshots() {
            puller = puller.aligned_to_the_epoch(config.pull.pull_interval);
        }
        let puller = puller.start();
        let signal = signals.next().await;
        tracing::info!(signal, "stopping: cancelling the cycle in progress");
        tokio::select! {
            stopped = puller.send(StopPulling) => {
                if let Err(error) = stopped {
                    return Err(CommandError::Runtime(format!("puller did not stop cleanly: {error}")));
                }
            }
            second = signals.next() => {
                tracing::warn!(signal = second, "second signal: quitting now");
            }
        }
        tracing::info!("puller stopped");
        Ok(())
    })
}
