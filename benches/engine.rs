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
//!
//! `HS_BENCH_MODE=central` times central's stage 1 on the same snapshot
//! instead (SPEC §7): the snapshot is encoded once as the edge publishes it
//! (`raw::encode_fields`, 1 MB messages, the columns of `HS_BENCH_FIELDS` =
//! `engine` (default) or `all`, as `[kafka] snapshot-fields`; timed
//! `HS_BENCH_RUNS` times too, printed as `edge: raw::encode …`), then each
//! run decodes the parts, writes the lines from the record batches
//! (`process_decoded_into`) and encodes the partial aggregate. Both modes
//! print the CPU time per run (`getrusage`) besides the wall time.
//!
//! `HS_BENCH_MODE=merge` times central's stage 2 per cluster window: the
//! snapshot's partial aggregate is made once per load balancer (as if each
//! of N LBs sent this snapshot), then each run decodes the N partials as
//! read from the partials topic, merges them and writes the cluster's
//! lines, for N = 1, 2, 4, 8.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use haproxystats::engine::{BufferSink, EngineOptions, process_decoded_into, process_snapshot_to};

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

/// Counts the bytes of the buffers handed over and reuses them.
struct CountBuffers(usize, Vec<u8>);

impl BufferSink for CountBuffers {
    fn hand_over_at(&self) -> usize {
        256 * 1024
    }
    fn fresh(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.1)
    }
    fn take(&mut self, mut lines: Vec<u8>) {
        self.0 += lines.len();
        lines.clear();
        self.1 = lines;
    }
    fn copy(&mut self, lines: &[u8]) {
        self.0 += lines.len();
    }
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> std::time::Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec as u64)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `HS_BENCH_FIELDS` (`engine`, the default, or `all`): the columns the
/// edge sends, as `[kafka] snapshot-fields`.
fn bench_fields() -> haproxystats::raw::Fields {
    let value = std::env::var("HS_BENCH_FIELDS").unwrap_or_default();
    if value.is_empty() {
        return haproxystats::raw::Fields::default();
    }
    haproxystats::raw::Fields::parse(&value).unwrap_or_else(|| {
        eprintln!("HS_BENCH_FIELDS={value}: not engine or all");
        std::process::exit(1);
    })
}

/// Central's stage 1 on the snapshot, `runs` times.
fn central(dir: &std::path::Path, opts: &EngineOptions, runs: usize) {
    let csv: u64 = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    // The edge's cost: encoding as it publishes, `runs` times.
    let fields = bench_fields();
    println!("raw snapshot fields: {fields}");
    let mut encodes = Vec::new();
    let mut enc = None;
    for _ in 0..runs.max(1) {
        let (t, c) = (Instant::now(), cpu_time());
        match haproxystats::raw::encode_fields(dir, 1_000_000, fields) {
            Ok(e) => enc = Some(e),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        encodes.push((cpu_time() - c, t.elapsed()));
    }
    encodes.sort();
    let Some(enc) = enc else {
        return;
    };
    let (min, median) = (encodes[0], encodes[encodes.len() / 2]);
    println!(
        "edge: raw::encode CPU min {:?} median {:?} (wall median {:?})",
        min.0, median.0, median.1
    );
    let message_bytes: usize = enc.parts.iter().map(Vec::len).sum();
    println!(
        "raw snapshot: {} parts, {message_bytes} bytes for {csv} bytes of CSV ({:.3}×)",
        enc.parts.len(),
        message_bytes as f64 / csv as f64
    );
    let parts: Vec<&[u8]> = enc.parts.iter().map(Vec::as_slice).collect();
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut out = CountBuffers(0, Vec::new());
    let mut partial_bytes = 0;
    let mut phases = Vec::new();
    for _ in 0..runs {
        out.0 = 0;
        let (t, c) = (Instant::now(), cpu_time());
        let fail = |e: String| -> ! {
            eprintln!("{e}");
            std::process::exit(1);
        };
        let columns = haproxystats::engine::columns_read(opts);
        let dec = haproxystats::raw::decode_columns(&parts, &|name| columns.contains(name))
            .unwrap_or_else(|e| fail(e.to_string()));
        let decoded = cpu_time();
        let (report, partial) = process_decoded_into(&dec, "lb", opts, &mut out)
            .unwrap_or_else(|e| fail(e.to_string()));
        if phases.is_empty() {
            println!("first run: {:?}", report.timings);
        }
        let written = cpu_time();
        let messages = partial
            .encode("c", 1_000_000)
            .unwrap_or_else(|e| fail(e.to_string()));
        partial_bytes = messages.iter().map(Vec::len).sum();
        phases.push([decoded - c, written - decoded, cpu_time() - written]);
        times.push(t.elapsed());
        cpu.push(cpu_time() - c);
    }
    times.sort();
    cpu.sort();
    phases.sort();
    if let Some([decode, lines, partial]) = phases.get(phases.len() / 2) {
        println!(
            "central phases (CPU, the run of the median decode): decode {decode:?}, lines {lines:?}, partial {partial:?}"
        );
    }
    println!(
        "engine/central {}: min {:?} median {:?} cpu min {:?} median {:?} ({} bytes of lines, partial {partial_bytes} bytes)",
        dir.display(),
        times.first().copied().unwrap_or_default(),
        times.get(times.len() / 2).copied().unwrap_or_default(),
        cpu.first().copied().unwrap_or_default(),
        cpu.get(cpu.len() / 2).copied().unwrap_or_default(),
        out.0
    );
}

/// Central's stage 2 on windows of N copies of the snapshot's partial.
fn merge(dir: &std::path::Path, opts: &EngineOptions, runs: usize) {
    use haproxystats::engine::partial::{Merge, Partial};
    let fail = |e: String| -> ! {
        eprintln!("{e}");
        std::process::exit(1);
    };
    let enc = haproxystats::raw::encode(dir, 1_000_000).unwrap_or_else(|e| fail(e.to_string()));
    let parts: Vec<&[u8]> = enc.parts.iter().map(Vec::as_slice).collect();
    let dec = haproxystats::raw::decode(&parts).unwrap_or_else(|e| fail(e.to_string()));
    for n in [1usize, 2, 4, 8] {
        let partials: Vec<Vec<Vec<u8>>> = (0..n)
            .map(|i| {
                let mut sink = CountBuffers(0, Vec::new());
                let (_, partial) = process_decoded_into(&dec, &format!("lb{i}"), opts, &mut sink)
                    .unwrap_or_else(|e| fail(e.to_string()));
                partial
                    .encode("c", 1_000_000)
                    .unwrap_or_else(|e| fail(e.to_string()))
            })
            .collect();
        let bytes: usize = partials.iter().flatten().map(Vec::len).sum();
        let mut cpu = Vec::new();
        let mut lines = 0;
        for _ in 0..runs {
            let c = cpu_time();
            let mut merged = Merge::default();
            for messages in &partials {
                let parts: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
                merged.add(Partial::decode(&parts, opts).unwrap_or_else(|e| fail(e.to_string())));
            }
            let mut out = CountBuffers(0, Vec::new());
            if let Some(g) = merged.gathered(1_700_000_000, PathBuf::from("window"), opts) {
                haproxystats::engine::process_gathered_into(&g, opts, &mut out)
                    .unwrap_or_else(|e| fail(e.to_string()));
            }
            lines = out.0;
            cpu.push(cpu_time() - c);
        }
        cpu.sort();
        println!(
            "stage 2, window of {n} LBs ({bytes} bytes of partials): cpu min {:?} median {:?} ({lines} bytes of lines)",
            cpu.first().copied().unwrap_or_default(),
            cpu.get(cpu.len() / 2).copied().unwrap_or_default(),
        );
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
    if std::env::var("HS_BENCH_MODE").as_deref() == Ok("central") {
        // As `haproxystats central` runs it: one thread per snapshot, as
        // many snapshots at once as workers.
        opts.parallelism = 1;
        central(&dir, &opts, runs);
        return;
    }
    if std::env::var("HS_BENCH_MODE").as_deref() == Ok("merge") {
        opts.parallelism = 1;
        merge(&dir, &opts, runs);
        return;
    }
    let save = std::env::var("HS_BENCH_OUT").ok();
    let mut bytes = 0;
    let mut cpu = Vec::new();
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
        let (t, c) = (Instant::now(), cpu_time());
        match process_snapshot_to(&dir, &opts, out) {
            Ok(report) => {
                times.push(t.elapsed());
                cpu.push(cpu_time() - c);
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
    cpu.sort();
    println!(
        "engine/process_snapshot {}: min {:?} median {:?} cpu min {:?} median {:?} ({} threads, {} bytes out)",
        dir.display(),
        times.first().copied().unwrap_or_default(),
        times.get(times.len() / 2).copied().unwrap_or_default(),
        cpu.first().copied().unwrap_or_default(),
        cpu.get(cpu.len() / 2).copied().unwrap_or_default(),
        opts.parallelism,
        bytes
    );
}
