//! Stop signals: SIGTERM, SIGINT and SIGHUP all mean "drain and exit 0"
//! (SPEC §6); a second one while draining means "quit now" (STYLE habit 9).

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;

/// The stop signals of a running command.
pub struct StopSignals {
    signals: Signals,
}

impl StopSignals {
    /// Starts listening; from now on the default action (terminate) of these
    /// signals is replaced.
    pub fn listen() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            signals: Signals::new([SIGTERM, SIGINT, SIGHUP])?,
        })
    }

    /// Waits for the next stop signal and returns its name.
    pub async fn next(&mut self) -> &'static str {
        match self.signals.next().await {
            Some(SIGTERM) => "SIGTERM",
            Some(SIGINT) => "SIGINT",
            Some(SIGHUP) => "SIGHUP",
            Some(_) => "signal",
            // The stream ends only when closed; treat that as a stop too.
            None => "closed",
        }
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        self.signals.handle().close();
    }
}
