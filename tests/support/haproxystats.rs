//! Our own binary as a child process: `haproxystats [args] -f CONF`, logs in
//! a file, stopped by PID on drop like every other child of the tests.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::{Proc, tail};

/// The binary cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_haproxystats");

/// A running `haproxystats`.
pub struct Haproxystats {
    proc: Proc,
}

impl Haproxystats {
    /// Starts `haproxystats ARGS -f CONF` with stdout and stderr in `log`
    /// (and `HAPROXYSTATS_LOG` cleared so the configured levels apply).
    pub fn start(args: &[&str], conf: &Path, log: &Path) -> Haproxystats {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("-f")
            .arg(conf)
            .env_remove("HAPROXYSTATS_LOG");
        Haproxystats {
            proc: Proc::spawn("haproxystats", &mut cmd, log),
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        tail(self.proc.log_path(), usize::MAX)
    }

    /// The underlying child (signals, PID, exit status).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// SIGTERM, then waits up to `timeout` for the exit code; panics with
    /// the log when it does not exit in time.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        self.proc.terminate();
        match self.proc.wait_exit(timeout) {
            Some(status) => status.code(),
            None => panic!(
                "no exit within {timeout:?} of SIGTERM; log:\n{}",
                self.log()
            ),
        }
    }
}
