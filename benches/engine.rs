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
//!
//! `HS_BENCH_MODE=codecs` compares the buffer codecs in one run, for raw
//! snapshots (the columns of `HS_BENCH_FIELDS`, 1 MB messages) and for the
//! snapshot's partial: per codec the edge's encode CPU, central's decode
//! CPU (`raw::decode_columns` of the columns the engine reads; stage 2's
//! `Partial::decode`), the bytes, and the highest ratios the decoders'
//! walk sees (`raw::claims`). The rows `none + kafka …` approximate no
//! buffer compression with the producer's own `compression.type` (lz4 or
//! zstd at level 3, librdkafka's defaults) by compressing each message
//! whole with `lz4_flex`'s frame encoder or `zstd`, and decompressing it
//! before the decode: librdkafka compresses message sets, not messages.

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

/// Bytes of the files in `dir` (the snapshot's CSV).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Central's stage 1 on the snapshot, `runs` times.
fn central(dir: &std::path::Path, opts: &EngineOptions, runs: usize) {
    let csv = dir_bytes(dir);
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

/// How one row of the codecs table compresses: buffers with a codec, or
/// none and each message whole as the producer would.
#[derive(Clone, Copy)]
enum Wire {
    Buffers(haproxystats::raw::BufferCodec),
    Kafka(KafkaCompression),
}

#[derive(Clone, Copy)]
enum KafkaCompression {
    Lz4,
    Zstd,
}

impl Wire {
    fn name(self) -> String {
        match self {
            Wire::Buffers(c) => c.to_string(),
            Wire::Kafka(KafkaCompression::Lz4) => "none + kafka lz4".to_owned(),
            Wire::Kafka(KafkaCompression::Zstd) => "none + kafka zstd:3".to_owned(),
        }
    }

    fn codec(self) -> haproxystats::raw::BufferCodec {
        match self {
            Wire::Buffers(c) => c,
            Wire::Kafka(_) => haproxystats::raw::BufferCodec::None,
        }
    }

    /// The message as sent (compressed whole for `Kafka`).
    fn send(self, message: Vec<u8>) -> Vec<u8> {
        match self {
            Wire::Buffers(_) => message,
            Wire::Kafka(KafkaCompression::Lz4) => {
                let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
                enc.write_all(&message).expect("lz4 into a Vec");
                enc.finish().expect("lz4 into a Vec")
            }
            Wire::Kafka(KafkaCompression::Zstd) => {
                zstd::bulk::compress(&message, 3).expect("zstd into a Vec")
            }
        }
    }

    /// The message as received (decompressed whole for `Kafka`).
    fn receive(self, sent: &[u8]) -> std::borrow::Cow<'_, [u8]> {
        use std::io::Read;
        match self {
            Wire::Buffers(_) => std::borrow::Cow::Borrowed(sent),
            Wire::Kafka(KafkaCompression::Lz4) => {
                let mut out = Vec::new();
                lz4_flex::frame::FrameDecoder::new(sent)
                    .read_to_end(&mut out)
                    .expect("our own lz4");
                std::borrow::Cow::Owned(out)
            }
            Wire::Kafka(KafkaCompression::Zstd) => {
                let mut out = Vec::new();
                zstd::stream::copy_decode(sent, &mut out).expect("our own zstd");
                std::borrow::Cow::Owned(out)
            }
        }
    }
}

/// The median CPU time of `runs` calls of `f`, and its last result.
fn median_cpu<T>(runs: usize, mut f: impl FnMut() -> T) -> (std::time::Duration, T) {
    let mut cpu = Vec::new();
    let mut last = None;
    for _ in 0..runs.max(1) {
        let c = cpu_time();
        last = Some(f());
        cpu.push(cpu_time() - c);
    }
    cpu.sort();
    let median = cpu.get(cpu.len() / 2).copied().unwrap_or_default();
    (median, last.expect("at least one run"))
}

/// The highest buffer ratio and part ratio (claimed / part bytes) of
/// `messages` as the decoders' walk sees them.
fn largest_ratios(messages: &[Vec<u8>]) -> (f64, f64) {
    messages.iter().fold((0.0, 0.0), |(buffer, part), m| {
        let claims = haproxystats::raw::claims(m).unwrap_or_else(|e| {
            eprintln!("walk: {e}");
            std::process::exit(1);
        });
        (
            f64::max(buffer, claims.largest_ratio),
            f64::max(part, claims.bytes as f64 / m.len() as f64),
        )
    })
}

/// The codecs table: raw snapshots and partials, one row per codec.
fn codecs(dir: &std::path::Path, opts: &EngineOptions, runs: usize) {
    use haproxystats::engine::partial::Partial;
    use haproxystats::raw::BufferCodec;
    let fail = |e: String| -> ! {
        eprintln!("{e}");
        std::process::exit(1);
    };
    let csv = dir_bytes(dir);
    let fields = bench_fields();
    let columns = haproxystats::engine::columns_read(opts);
    let keep = |name: &str| columns.contains(name);
    let enc = haproxystats::raw::encode_fields(dir, 1_000_000, fields)
        .unwrap_or_else(|e| fail(e.to_string()));
    let parts: Vec<&[u8]> = enc.parts.iter().map(Vec::as_slice).collect();
    let dec =
        haproxystats::raw::decode_columns(&parts, &keep).unwrap_or_else(|e| fail(e.to_string()));
    let mut sink = CountBuffers(0, Vec::new());
    let (_, partial) =
        process_decoded_into(&dec, "lb", opts, &mut sink).unwrap_or_else(|e| fail(e.to_string()));
    println!(
        "codecs: {} ({csv} bytes of CSV), raw snapshot fields {fields}, 1 MB messages, median CPU of {runs} runs",
        dir.display()
    );
    println!(
        "| codec | raw: edge encode | raw: central decode | raw: bytes (× CSV) | partial: encode | partial: stage-2 decode | partial: bytes | total CPU | largest buffer ratio | largest part ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let wires = [
        Wire::Buffers(BufferCodec::Zstd(3)),
        Wire::Buffers(BufferCodec::Zstd(1)),
        Wire::Buffers(BufferCodec::Zstd(-1)),
        Wire::Buffers(BufferCodec::Zstd(-5)),
        Wire::Buffers(BufferCodec::Lz4Frame),
        Wire::Buffers(BufferCodec::None),
        Wire::Kafka(KafkaCompression::Lz4),
        Wire::Kafka(KafkaCompression::Zstd),
    ];
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    for wire in wires {
        let (raw_encode, raw) = median_cpu(runs, || {
            let enc = haproxystats::raw::encode_with(dir, 1_000_000, fields, wire.codec())
                .unwrap_or_else(|e| fail(e.to_string()));
            enc.parts
                .into_iter()
                .map(|p| wire.send(p))
                .collect::<Vec<_>>()
        });
        let (raw_decode, rows) = median_cpu(runs, || {
            let received: Vec<_> = raw.iter().map(|m| wire.receive(m)).collect();
            let parts: Vec<&[u8]> = received.iter().map(|m| &**m).collect();
            let dec = haproxystats::raw::decode_columns(&parts, &keep)
                .unwrap_or_else(|e| fail(e.to_string()));
            dec.sockets
                .iter()
                .flat_map(|s| &s.segments)
                .map(|s| s.rows())
                .sum::<usize>()
        });
        let (partial_encode, messages) = median_cpu(runs, || {
            let messages = partial
                .encode_with("c", 1_000_000, wire.codec())
                .unwrap_or_else(|e| fail(e.to_string()));
            messages
                .into_iter()
                .map(|m| wire.send(m))
                .collect::<Vec<_>>()
        });
        let (partial_decode, _) = median_cpu(runs, || {
            let received: Vec<_> = messages.iter().map(|m| wire.receive(m)).collect();
            let parts: Vec<&[u8]> = received.iter().map(|m| &**m).collect();
            Partial::decode(&parts, opts).unwrap_or_else(|e| fail(e.to_string()))
        });
        let raw_bytes: usize = raw.iter().map(Vec::len).sum();
        let partial_bytes: usize = messages.iter().map(Vec::len).sum();
        let plain = |sent: &[Vec<u8>]| -> Vec<Vec<u8>> {
            sent.iter().map(|m| wire.receive(m).into_owned()).collect()
        };
        let (raw_buffer, raw_part) = largest_ratios(&plain(&raw));
        let (partial_buffer, partial_part) = largest_ratios(&plain(&messages));
        let total = raw_encode + raw_decode + partial_encode + partial_decode;
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.1} MB ({:.3}×, {} parts, {rows} rows) | {:.1} ms | {:.1} ms | {:.2} MB ({} parts) | {:.0} ms | {:.0} (raw) / {:.0} (partial) | {:.1} / {:.1} |",
            wire.name(),
            ms(raw_encode),
            ms(raw_decode),
            raw_bytes as f64 / 1e6,
            raw_bytes as f64 / csv as f64,
            raw.len(),
            ms(partial_encode),
            ms(partial_decode),
            partial_bytes as f64 / 1e6,
            messages.len(),
            ms(total),
            raw_buffer,
            partial_buffer,
            raw_part,
            partial_part,
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
    if std::env::var("HS_BENCH_MODE").as_deref() == Ok("codecs") {
        opts.parallelism = 1;
        codecs(&dir, &opts, runs);
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
