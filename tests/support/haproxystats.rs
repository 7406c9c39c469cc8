//! Our own binary as a child process: `haproxystats [args] -f CONF`, logs in
//! a file, stopped by PID on drop like every other child of the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
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
        Haproxystats::start_bin(Path::new(BIN), args, conf, log)
    }

    /// The same with another build of the binary, e.g. [`fault_injection_bin`].
    pub fn start_bin(bin: &Path, args: &[&str], conf: &Path, log: &Path) -> Haproxystats {
        let mut cmd = Command::new(bin);
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

/// The binary built with the `fault-injection` feature (SIGUSR2 crashes the
/// next child: puller, watcher, graphite sink in turn; bench/soak.sh builds
/// the same), in a target dir of its own beside this build's, `fault-injection/`,
/// so that the normal build is never invalidated. Built once per test binary
/// by cargo (incremental; from scratch it takes minutes).
pub fn fault_injection_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // BIN is <target>/<profile>/haproxystats.
            let target = Path::new(BIN)
                .ancestors()
                .nth(2)
                .expect("the target dir of the binary")
                .join("fault-injection");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            eprintln!(
                "building haproxystats with --features fault-injection in {}",
                target.display()
            );
            let status = Command::new(cargo)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("CARGO_TARGET_DIR", &target)
                .args(["build", "--quiet", "--features", "fault-injection"])
                .args(["--bin", "haproxystats"])
                .status()
                .expect("run cargo build");
            assert!(
                status.success(),
                "cargo build --features fault-injection failed"
            );
            target.join("debug/haproxystats")
        })
        .clone()
}
