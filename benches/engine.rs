//! Timing of the engine on a big synthetic snapshot (plain main, no harness).
//!
//! `cargo bench --bench engine` generates (once) an 8-process HAProxy 2.6
//! snapshot with 1000 frontends, 1000 backends and 20 servers per backend
//! with the repository's `tools/gen_snapshot.py` (override the directory with
//! `HS_BENCH_DIR=/path/to/<timestamp>`), then processes it repeatedly with
//! `aggr-server-metrics` on, streaming the lines to a byte counter
//! (`process_snapshot_to`), and prints min/median wall time
//! (`HS_BENCH_RUNS=1` for one run, e.g. under `/usr/bin/time -v`;
//! `HS_BENCH_OUT=FILE` writes the lines of the last run to FILE).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use haproxystats::engine::{EngineOptions, process_snapshot_to};

fn snapshot_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("HS_BENCH_DIR") {
        return PathBuf::from(dir);
    }
    let root = std::env::temp_dir().join("hs-engine-bench");
    let dir = root.join("1700000000");
    if !dir.join("admin8.sock_stat").exists() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/gen_snapshot.py");
        let status = std::process::Command::new("python3")
            .arg(script)
            .arg("--out")
            .arg(&root)
            .args([
                "--processes",
                "8",
                "--frontends",
                "1000",
                "--backends",
                "1000",
                "--servers",
                "20",
            ])
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => {
                eprintln!("cannot generate the snapshot: {other:?}; set HS_BENCH_DIR");
                std::process::exit(1);
            }
        }
    }
    dir
}

/// Counts the bytes written and drops them (the output of a timed run).
struct Count(usize);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let dir = snapshot_dir();
    let mut opts = EngineOptions::with_prefix("graphite.host.haproxy");
    opts.aggr_server_metrics = true;
    opts.parallelism = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    let mut times = Vec::new();
    let runs: usize = std::env::var("HS_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let save = std::env::var("HS_BENCH_OUT").ok();
    let mut bytes = 0;
    for run in 0..runs {
        let mut count = Count(0);
        let mut file = None;
        let out: &mut dyn Write = match &save {
            Some(path) if run + 1 == runs => match std::fs::File::create(path) {
                Ok(f) => file.insert(std::io::BufWriter::new(f)),
                Err(e) => {
                    eprintln!("cannot write {path}: {e}");
                    std::process::exit(1);
                }
            },
            _ => &mut count,
        };
        let t = Instant::now();
        match process_snapshot_to(&dir, &opts, out) {
            Ok(report) => {
                times.push(t.elapsed());
                if times.len() == 1 {
                    println!(
                        "lines {} warnings {} metrics {:?} timings {:?}",
                        report.lines,
                        report.warnings.len(),
                        report.metrics,
                        report.timings
                    );
                }
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        bytes = bytes.max(count.0);
    }
    times.sort();
    println!(
        "engine/process_snapshot {}: min {:?} median {:?} ({} threads, {} bytes out)",
        dir.display(),
        times.first().copied().unwrap_or_default(),
        times.get(times.len() / 2).copied().unwrap_or_default(),
        opts.parallelism,
        bytes
    );
}
