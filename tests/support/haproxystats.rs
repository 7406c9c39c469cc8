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
        Haproxystats::start_bin_with_env(bin, args, conf, log, &[])
    }

    /// The same with environment variables set for it alone.
    pub fn start_bin_with_env(
        bin: &Path,
        args: &[&str],
        conf: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Haproxystats {
        let mut cmd = Command::new(bin);
        cmd.envs(env.iter().copied());
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
/// by cargo; the first time, the dependencies come from this build (see
/// [`seed_from_this_build`]), so only our own crate is compiled.
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
            seed_from_this_build(&target);
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

/// Copies this build's compiled dependencies (`deps/lib*`, build scripts'
/// outputs, fingerprints) into the empty target dir `target`, so that cargo
/// finds them fresh there and compiles only our crate with the feature:
/// cargo's artifact names do not depend on the target dir, and from scratch
/// the dependencies (librdkafka, Arrow) take minutes on two cores. The test
/// executables are left behind (most of the gigabytes, of no use there).
/// Copied into a temporary dir renamed at the end: an interrupted copy is
/// never mistaken for a complete one.
fn seed_from_this_build(target: &Path) {
    let Some(profile_dir) = Path::new(BIN).parent() else {
        return;
    };
    let seeded = target.join("debug");
    if seeded.exists() {
        return;
    }
    let partial = target.join("debug.seeding");
    let _ = std::fs::remove_dir_all(&partial);
    // CMake refuses a cache made in another directory: a build script that
    // runs CMake again (rdkafka-sys, when its features differ) starts afresh.
    let copied = copy_tree(
        &profile_dir.join("build"),
        &partial.join("build"),
        &|name| name != "CMakeCache.txt",
    )
    .and_then(|()| {
        copy_tree(
            &profile_dir.join(".fingerprint"),
            &partial.join(".fingerprint"),
            &|_| true,
        )
    })
    .and_then(|()| {
        copy_tree(&profile_dir.join("deps"), &partial.join("deps"), &|name| {
            name.starts_with("lib")
        })
    })
    .and_then(|()| std::fs::rename(&partial, &seeded));
    if let Err(e) = copied {
        // Not fatal: cargo then builds every dependency itself.
        eprintln!("cannot seed {} from this build: {e}", seeded.display());
        let _ = std::fs::remove_dir_all(&partial);
    }
}

/// Copies the files of `from` (recursively) whose names `keep` accepts.
fn copy_tree(from: &Path, to: &Path, keep: &dyn Fn(&str) -> bool) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let dest = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest, keep)?;
        } else if keep(&name.to_string_lossy()) {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}
