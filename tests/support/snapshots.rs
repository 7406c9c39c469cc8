//! Synthetic snapshot directories (tools/gen_snapshot.py) and what
//! `haproxystats replay` makes of them: the lines a sink must deliver.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::haproxystats::BIN;

/// The shape of a generated snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// HAProxy processes (one socket each).
    pub processes: u32,
    /// Frontends per process.
    pub frontends: u32,
    /// Backends per process.
    pub backends: u32,
    /// Servers per backend.
    pub servers: u32,
}

/// Writes snapshot `<out>/<timestamp>` of `shape`, complete, then renamed
/// into `out` as the puller does (so a watcher never sees half of it).
pub fn publish_snapshot(out: &Path, timestamp: u64, seed: u32, shape: Shape) -> PathBuf {
    let staging = out.with_extension("staging");
    std::fs::create_dir_all(&staging).expect("staging dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/gen_snapshot.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg("--out")
        .arg(&staging)
        .args(["--processes", &shape.processes.to_string()])
        .args(["--frontends", &shape.frontends.to_string()])
        .args(["--backends", &shape.backends.to_string()])
        .args(["--servers", &shape.servers.to_string()])
        .args(["--timestamp", &timestamp.to_string()])
        .args(["--seed", &seed.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", script.display()));
    assert!(status.success(), "gen_snapshot.py failed");
    let target = out.join(timestamp.to_string());
    std::fs::rename(staging.join(timestamp.to_string()), &target).expect("publish snapshot");
    target
}

/// The lines `haproxystats replay -f conf DIRS` prints: what the daemon
/// sends for these snapshots, besides its own self metrics.
pub fn replay_lines(conf: &Path, dirs: &[PathBuf]) -> BTreeSet<String> {
    let output = Command::new(BIN)
        .arg("replay")
        .arg("-f")
        .arg(conf)
        .args(dirs)
        .env_remove("HAPROXYSTATS_LOG")
        .output()
        .expect("run haproxystats replay");
    assert!(output.status.success(), "replay failed: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
