//! The snapshot processing engine (SPEC §4): one snapshot directory of
//! `*_info` / `*_stat` files in, Graphite plaintext lines out.
//!
//! Independent of actors and I/O scheduling: the caller hands a directory,
//! [`EngineOptions`] and an output ([`process_snapshot`] appends to a
//! buffer, [`process_snapshot_to`] streams to a writer in chunks of
//! [`OUT_CHUNK`] bytes, [`process_snapshot_into`] hands over the buffers it
//! writes into, a [`BufferSink`]'s). `show stat` files are parsed in parallel
//! (`opts.parallelism` threads, each taking the next file), each streamed
//! from disk in chunks and turned into bounded Arrow batches (group ids and
//! the needed numeric columns) that the grouped kernels fold into per-thread
//! accumulators, merged at the end; lines are then written group by group,
//! the self metrics of §4.4 last. Server lines (about 90% of the output) are
//! formatted in pieces of whole backends on a second thread too when
//! `opts.parallelism` allows, and written in order; on one thread they are
//! written straight to the output. Memory is bounded by the
//! number of groups, not by the size of the files or of the output.
//!
//! - [`parse_info`] — `Key: Value` lines → integer pairs.
//! - [`parse_stat`] — header-driven CSV → Arrow arrays of the needed columns.
//! - [`aggregate`] — grouped kernels (sum / mean / mean over busy rows).
//! - [`daemon`] — daemon sums, means, CPU percentiles, percentages.
//! - [`format`] — lines into one buffer with itoa / ryu.
//! - [`options`] — `EngineOptions::from_config`.

pub mod aggregate;
mod cells;
pub mod daemon;
pub mod format;
pub mod options;
pub mod parse_info;
pub mod parse_stat;
pub mod warning;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::catalogue::StatMetric;

use aggregate::{Aggregate, KindAgg, SiteAgg, Specs, finish};
use daemon::ProcessInfo;
use format::{LineWriter, Value};
pub use options::{EngineOptions, OptionsError, prefix_host};
pub use warning::{InputWarning, WarningKind};

/// Errors that make a whole snapshot unusable (the caller quarantines it).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The directory name is not an integer timestamp.
    #[error("snapshot {dir}: directory name is not an integer timestamp")]
    BadTimestamp {
        /// The snapshot directory.
        dir: PathBuf,
    },
    /// The directory could not be listed.
    #[error("snapshot {dir}: cannot list directory: {source}")]
    ReadDir {
        /// The snapshot directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing the lines failed ([`process_snapshot_to`] only).
    #[error("snapshot {dir}: cannot write output: {source}")]
    Write {
        /// The snapshot directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No file of the snapshot yielded anything.
    #[error("snapshot {dir}: nothing usable ({} input warnings{})", warnings.len(),
        warnings.first().map(|w| format!(", first: {w}")).unwrap_or_default())]
    NothingUsable {
        /// The snapshot directory.
        dir: PathBuf,
        /// Why each file was rejected.
        warnings: Vec<InputWarning>,
    },
}

impl SnapshotError {
    /// A short, stable name of the error kind (for metrics and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            SnapshotError::BadTimestamp { .. } => "bad_timestamp",
            SnapshotError::ReadDir { .. } => "read_dir",
            SnapshotError::NothingUsable { .. } => "nothing_usable",
            SnapshotError::Write { .. } => "write",
        }
    }
}

/// How many values were emitted per kind (double writes counted once, as
/// the original counted them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MetricCounts {
    /// Daemon (`show info`) values.
    pub daemon: usize,
    /// Frontend values.
    pub frontend: usize,
    /// Backend values.
    pub backend: usize,
    /// Server values (per backend, `TotalServers`, per server name).
    pub server: usize,
}

/// Wall-clock time per phase.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PhaseTimings {
    /// Reading, parsing and aggregating `_info` files and writing daemon lines.
    pub daemon: Duration,
    /// Reading, parsing and aggregating every `_stat` file (in parallel).
    pub parse_stats: Duration,
    /// Writing frontend lines.
    pub frontends: Duration,
    /// Writing backend lines.
    pub backends: Duration,
    /// Writing server lines.
    pub servers: Duration,
    /// Everything about `_stat` files (parse + the three above).
    pub all_stats: Duration,
    /// The whole snapshot.
    pub total: Duration,
}

/// What processing one snapshot produced.
#[derive(Debug, Default, Clone)]
pub struct SnapshotReport {
    /// The snapshot timestamp (directory name).
    pub timestamp: i64,
    /// Values emitted per kind.
    pub metrics: MetricCounts,
    /// Time per phase.
    pub timings: PhaseTimings,
    /// Lines appended to the output (self metrics included).
    pub lines: usize,
    /// Problems in input files that were survived.
    pub warnings: Vec<InputWarning>,
}

/// Reads the timestamp from a snapshot directory name (ASCII digits only).
fn timestamp_of(dir: &Path) -> Option<i64> {
    let name = dir.file_name()?.to_str()?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Lists `*_info` and `*_stat` files (sorted; hidden files skipped).
fn list_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), SnapshotError> {
    let err = |source| SnapshotError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut info = Vec::new();
    let mut stat = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        if name.ends_with("_info") {
            info.push(entry.path());
        } else if name.ends_with("_stat") {
            stat.push(entry.path());
        }
    }
    info.sort();
    stat.sort();
    Ok((info, stat))
}

/// Reads a file into `buf`; a failure becomes a warning.
fn read_into(path: &Path, buf: &mut Vec<u8>, warnings: &mut Vec<InputWarning>) -> bool {
    use std::io::Read;
    buf.clear();
    match std::fs::File::open(path).and_then(|mut f| f.read_to_end(buf)) {
        Ok(_) => true,
        Err(e) => {
            warnings.push(unreadable(path, &e));
            false
        }
    }
}

/// The warning about a file that cannot be opened or read.
fn unreadable(path: &Path, e: &std::io::Error) -> InputWarning {
    InputWarning::new(path, None, WarningKind::Unreadable(e.to_string()))
}

/// What one parsing thread hands back: accumulators, usable files, warnings
/// per file index.
type ThreadResult = (SiteAgg, usize, Vec<(usize, Vec<InputWarning>)>);

/// Parses one `_stat` file, streamed from disk, into `agg`; `true` when the
/// file was usable.
fn parse_stat_file(
    path: &Path,
    opts: &EngineOptions,
    specs: &Specs,
    agg: &mut SiteAgg,
    warnings: &mut Vec<InputWarning>,
) -> bool {
    match std::fs::File::open(path) {
        Ok(file) => {
            parse_stat::parse_stat_reader(file, path, &specs.plan, opts.batch_rows, warnings, agg)
                .usable
        }
        Err(e) => {
            warnings.push(unreadable(path, &e));
            false
        }
    }
}

/// Parses the `_stat` files on `opts.parallelism` threads (each takes the
/// next file until none is left); returns merged accumulators and how many
/// files were usable.
fn parse_stats(
    files: &[PathBuf],
    opts: &EngineOptions,
    specs: &Specs,
    warnings: &mut Vec<InputWarning>,
) -> (SiteAgg, usize) {
    let threads = opts.parallelism.clamp(1, files.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<ThreadResult>> = Mutex::new(Vec::new());
    let work = || {
        let mut agg = SiteAgg::new(specs);
        let mut usable = 0usize;
        let mut warns = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = files.get(i) else { break };
            let mut w = Vec::new();
            usable += usize::from(parse_stat_file(path, opts, specs, &mut agg, &mut w));
            warns.push((i, w));
        }
        if let Ok(mut r) = results.lock() {
            r.push((agg, usable, warns));
        }
    };
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            work();
        });
    }
    let mut parts = results.into_inner().unwrap_or_else(|e| e.into_inner());
    // The biggest accumulators absorb the others (fewer groups to re-insert).
    parts.sort_by_key(|(agg, _, _)| {
        std::cmp::Reverse(agg.kinds.iter().map(|k| k.keys.len()).sum::<usize>())
    });
    let mut parts = parts.into_iter();
    let (mut total, mut usable, mut all_warns) = parts
        .next()
        .unwrap_or_else(|| (SiteAgg::new(specs), 0, Vec::new()));
    for (agg, u, w) in parts {
        total.merge(agg);
        usable += u;
        all_warns.extend(w);
    }
    all_warns.sort_by_key(|(i, _)| *i);
    warnings.extend(all_warns.into_iter().flat_map(|(_, w)| w));
    (total, usable)
}

/// The path prefixes of one group, each `<path>.<section>.` joined once,
/// so that a line is one copy of the prefix plus the metric name.
#[derive(Default)]
struct Prefixes {
    bufs: Vec<Vec<u8>>,
    used: usize,
}

impl Prefixes {
    fn set(&mut self, paths: &[String], section: &[&str]) -> &[Vec<u8>] {
        if self.bufs.len() < paths.len() {
            self.bufs.resize_with(paths.len(), Vec::new);
        }
        for (buf, path) in self.bufs.iter_mut().zip(paths) {
            buf.clear();
            buf.extend_from_slice(path.as_bytes());
            for part in section {
                buf.push(b'.');
                buf.extend_from_slice(part.as_bytes());
            }
            buf.push(b'.');
        }
        self.used = paths.len();
        self.bufs.get(..self.used).unwrap_or_default()
    }
}

/// Writes `<prefix><m> value` for every metric of a group, under each
/// prefix; returns the number of values (not lines).
fn emit_group(
    w: &mut LineWriter<'_>,
    prefixes: &[Vec<u8>],
    metrics: &[StatMetric],
    accs: impl Iterator<Item = aggregate::Acc>,
) -> usize {
    let mut count = 0;
    for (metric, acc) in metrics.iter().zip(accs) {
        let Some(v) = finish(metric, &acc) else {
            continue;
        };
        let value = match v {
            Aggregate::Sum(s) => Value::int(s),
            Aggregate::Mean(f) => Value::Float(f),
        };
        let mut wrote = false;
        for prefix in prefixes {
            wrote |= w.line_at(prefix, metric.name, value);
        }
        count += usize::from(wrote);
    }
    count
}

/// The paths a name is written under: `P` when there are no group rules
/// (without allocating), else as [`EngineOptions::paths_for`] says.
fn paths_of<'a>(
    opts: &'a EngineOptions,
    rules: &[options::GroupRule],
    name: &str,
    store: &'a mut Vec<String>,
) -> &'a [String] {
    if rules.is_empty() {
        std::slice::from_ref(&opts.prefix)
    } else {
        *store = opts.paths_for(rules, name);
        store
    }
}

/// Warns about every sum of `agg` that does not fit in 128 bits (see
/// [`aggregate::Acc::overflow`]): those are not sent.
fn warn_overflowed(
    dir: &Path,
    kind: &'static str,
    agg: &KindAgg,
    metrics: &[StatMetric],
    warnings: &mut Vec<InputWarning>,
) {
    for (g, m) in agg.overflowed() {
        let (Some(key), Some(metric)) = (agg.keys.get(g), metrics.get(m)) else {
            continue;
        };
        let (px, sv) = split_key(key);
        let group = if sv.is_empty() {
            px.to_owned()
        } else {
            format!("{px}/{sv}")
        };
        let kind = WarningKind::SumTooLarge {
            kind,
            group,
            metric: metric.name,
        };
        warnings.push(InputWarning::new(dir, None, kind));
    }
}

/// Splits a server group key `px\0sv`.
fn split_key(key: &str) -> (&str, &str) {
    key.split_once('\0').unwrap_or((key, ""))
}

/// Bytes of output handed to the writer at a time by [`process_snapshot_to`].
pub const OUT_CHUNK: usize = 128 * 1024;

/// Processes one snapshot directory, appending Graphite lines to `out`.
///
/// Input problems become [`InputWarning`]s in the report; only a snapshot
/// with a bad name, an unlistable directory or no usable file is an error.
/// On error nothing is appended to `out`.
pub fn process_snapshot(
    dir: &Path,
    opts: &EngineOptions,
    out: &mut Vec<u8>,
) -> Result<SnapshotReport, SnapshotError> {
    let start = out.len();
    // `out` is the output: nothing to hand over while writing.
    let result = run(dir, opts, out, &mut Sink::Buffer);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Processes one snapshot directory, streaming Graphite lines to `out` in
/// chunks of about [`OUT_CHUNK`] bytes, so that memory does not grow with
/// the output (the streaming variant of [`process_snapshot`]).
///
/// Errors found before the first line (bad name, unlistable directory,
/// nothing usable) write nothing; a write error
/// ([`SnapshotError::Write`]) stops processing, with part of the lines
/// written.
pub fn process_snapshot_to(
    dir: &Path,
    opts: &EngineOptions,
    out: &mut dyn Write,
) -> Result<SnapshotReport, SnapshotError> {
    let mut buf = Vec::with_capacity(OUT_CHUNK + (OUT_CHUNK >> 3));
    run(dir, opts, &mut buf, &mut Sink::Stream(out))
}

/// Takes the engine's output buffers themselves, each once it holds
/// [`hand_over_at`](BufferSink::hand_over_at) bytes or more of whole lines,
/// instead of a copy of their bytes.
pub trait BufferSink {
    /// Bytes after which a buffer is handed over (checked between groups,
    /// so a buffer goes past it by up to one group's lines).
    fn hand_over_at(&self) -> usize;
    /// An empty buffer to write into.
    fn fresh(&mut self) -> Vec<u8>;
    /// Takes a buffer of whole lines (an empty one is a [`fresh`](Self::fresh)
    /// buffer given back unused).
    fn take(&mut self, lines: Vec<u8>);
    /// Adds lines formatted elsewhere (a copy).
    fn copy(&mut self, lines: &[u8]);
}

/// Processes one snapshot directory, writing Graphite lines straight into
/// buffers of `out` (no copy of the lines; see [`process_snapshot_to`]).
pub fn process_snapshot_into(
    dir: &Path,
    opts: &EngineOptions,
    out: &mut dyn BufferSink,
) -> Result<SnapshotReport, SnapshotError> {
    let mut buf = out.fresh();
    let result = run(dir, opts, &mut buf, &mut Sink::Buffers(out));
    // Empty after the last hand-over (or unused after an error).
    buf.clear();
    out.take(buf);
    result
}

/// Where [`run`] sends the lines it buffers.
enum Sink<'a> {
    /// The buffer is the output ([`process_snapshot`]).
    Buffer,
    /// Copied to a writer ([`process_snapshot_to`]).
    Stream(&'a mut dyn Write),
    /// Handed over whole ([`process_snapshot_into`]).
    Buffers(&'a mut dyn BufferSink),
}

impl Sink<'_> {
    /// Bytes after which the buffer is handed over.
    fn threshold(&self) -> usize {
        match self {
            Sink::Buffers(out) => out.hand_over_at(),
            Sink::Buffer | Sink::Stream(_) => OUT_CHUNK,
        }
    }

    /// Hands the buffered lines over and empties the buffer (unless the
    /// buffer is the output and keeps them).
    fn drain(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Sink::Buffer => {}
            Sink::Stream(w) => {
                w.write_all(buf)?;
                buf.clear();
            }
            Sink::Buffers(out) => {
                if !buf.is_empty() {
                    let fresh = out.fresh();
                    out.take(std::mem::replace(buf, fresh));
                }
            }
        }
        Ok(())
    }

    /// Adds `lines`, formatted elsewhere, after the buffered lines.
    fn append(&mut self, buf: &mut Vec<u8>, lines: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Buffer => {
                buf.extend_from_slice(lines);
                Ok(())
            }
            Sink::Stream(w) => {
                w.write_all(buf)?;
                buf.clear();
                w.write_all(lines)
            }
            Sink::Buffers(out) => {
                if !buf.is_empty() {
                    out.copy(buf);
                    buf.clear();
                }
                out.copy(lines);
                Ok(())
            }
        }
    }
}

/// Server lines formatted apart (possibly on another thread).
struct Piece {
    buf: Vec<u8>,
    lines: usize,
    values: usize,
}

/// Server groups per [`Piece`] (about 300 KB of lines with every metric).
const SERVERS_PER_PIECE: usize = 128;

/// Formats pieces `0..n` with `format` and hands them to `put` in order.
/// In `parallel`, a helper thread formats the odd pieces while this one
/// formats the even ones; at most one finished piece waits for `put`, so
/// memory stays bounded. A `put` error stops both.
fn pieces_in_order<E>(
    n: usize,
    parallel: bool,
    format: &(dyn Fn(usize, Vec<u8>) -> Piece + Sync),
    put: &mut dyn FnMut(&Piece) -> Result<(), E>,
) -> Result<(), E> {
    if !parallel || n < 2 {
        let mut buf = Vec::new();
        for k in 0..n {
            let piece = format(k, std::mem::take(&mut buf));
            put(&piece)?;
            buf = piece.buf;
            buf.clear();
        }
        return Ok(());
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(1);
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        s.spawn(move || {
            for k in (1..n).step_by(2) {
                let buf = back_rx.try_recv().unwrap_or_default();
                // The receiver is gone when `put` failed: stop.
                if tx.send(format(k, buf)).is_err() {
                    break;
                }
            }
        });
        let mut own = Vec::new();
        for k in 0..n {
            let piece = if k % 2 == 0 {
                format(k, std::mem::take(&mut own))
            } else {
                match rx.recv() {
                    Ok(piece) => piece,
                    Err(_) => break, // the helper panicked; the scope re-raises it
                }
            };
            put(&piece)?;
            let mut buf = piece.buf;
            buf.clear();
            if k % 2 == 0 {
                own = buf;
            } else {
                let _ = back_tx.send(buf);
            }
        }
        Ok(())
    })
}

/// The engine: lines are buffered in `out`, handed to `sink` whenever it
/// holds [`OUT_CHUNK`] bytes or more, and once at the end.
fn run(
    dir: &Path,
    opts: &EngineOptions,
    out: &mut Vec<u8>,
    sink: &mut Sink<'_>,
) -> Result<SnapshotReport, SnapshotError> {
    let start = Instant::now();
    let timestamp = timestamp_of(dir).ok_or_else(|| SnapshotError::BadTimestamp {
        dir: dir.to_path_buf(),
    })?;
    let (info_files, stat_files) = list_files(dir)?;
    let mut report = SnapshotReport {
        timestamp,
        ..Default::default()
    };
    let mut warnings = Vec::new();

    // Daemon: read and parse first (small files), write after the check below.
    let t_daemon = Instant::now();
    let mut procs = Vec::new();
    let mut buf = Vec::new();
    for path in &info_files {
        if !read_into(path, &mut buf, &mut warnings) {
            continue;
        }
        if buf.is_empty() {
            warnings.push(InputWarning::new(path, None, WarningKind::EmptyFile));
            continue;
        }
        if let Some(values) = parse_info::parse_info(&buf, path, &mut warnings) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let socket = name.strip_suffix("_info").unwrap_or(name).to_string();
            procs.push(ProcessInfo { socket, values });
        }
    }
    let daemon_parse = t_daemon.elapsed();

    let t_stats = Instant::now();
    let server_aggregated = opts.server_aggregated_metrics();
    let specs = Specs::new(
        &opts.frontend_metrics,
        &opts.backend_metrics,
        &server_aggregated,
    );
    let (sites, usable_stats) = parse_stats(&stat_files, opts, &specs, &mut warnings);
    report.timings.parse_stats = t_stats.elapsed();
    for ((agg, spec), kind) in sites
        .kinds
        .iter()
        .zip(&specs.kinds)
        .zip(["frontend", "backend", "server"])
    {
        warn_overflowed(dir, kind, agg, &spec.metrics, &mut warnings);
    }

    if procs.is_empty() && usable_stats == 0 {
        return Err(SnapshotError::NothingUsable {
            dir: dir.to_path_buf(),
            warnings,
        });
    }

    let write_err = |source| SnapshotError::Write {
        dir: dir.to_path_buf(),
        source,
    };
    let mut w = LineWriter::new(out, timestamp);
    let drain_full = |w: &mut LineWriter<'_>, sink: &mut Sink<'_>| {
        w.take_if_over(sink.threshold(), &mut |b| sink.drain(b))
            .map_err(write_err)
    };
    let p = opts.prefix.as_str();
    if !procs.is_empty() {
        let t = Instant::now();
        report.metrics.daemon = daemon::emit_daemon(
            &procs,
            p,
            opts.per_process_metrics,
            opts.calculate_percentages,
            &mut w,
        );
        report.timings.daemon = daemon_parse + t.elapsed();
    }

    if usable_stats > 0 {
        let mut store = Vec::new();
        let mut prefixes = Prefixes::default();
        // Frontends.
        let t = Instant::now();
        let [fe, be, srv] = &sites.kinds;
        let [fe_spec, be_spec, srv_spec] = &specs.kinds;
        for g in fe.sorted_groups() {
            let Some(name) = fe.keys.get(g) else { continue };
            if opts.exclude_frontends.contains(&**name) {
                continue;
            }
            let paths = paths_of(opts, &opts.frontend_groups, name, &mut store);
            report.metrics.frontend += emit_group(
                &mut w,
                prefixes.set(paths, &["frontend", name]),
                &fe_spec.metrics,
                fe.group_accs(g),
            );
            drain_full(&mut w, sink)?;
        }
        report.timings.frontends = t.elapsed() + report.timings.parse_stats;

        // Backends.
        let t = Instant::now();
        for g in be.sorted_groups() {
            let Some(name) = be.keys.get(g) else { continue };
            if opts.exclude_backends.contains(&**name) {
                continue;
            }
            let paths = paths_of(opts, &opts.backend_groups, name, &mut store);
            report.metrics.backend += emit_group(
                &mut w,
                prefixes.set(paths, &["backend", name]),
                &be_spec.metrics,
                be.group_accs(g),
            );
            drain_full(&mut w, sink)?;
        }
        report.timings.backends = t.elapsed();

        // Servers: TotalServers per backend, then per (backend, server);
        // formatted in pieces of whole backends, on two threads if allowed.
        let t = Instant::now();
        let order = srv.sorted_groups();
        let backend_of = |i: usize| {
            order
                .get(i)
                .and_then(|&g| srv.keys.get(g))
                .map(|k| split_key(k).0)
        };
        // Backends as (name, range of `order`); pieces as ranges of those.
        let mut backends: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
        let mut i = 0;
        while let Some(backend) = backend_of(i) {
            let mut j = i + 1;
            while backend_of(j) == Some(backend) {
                j += 1;
            }
            backends.push((backend, i..j));
            i = j;
        }
        let mut pieces: Vec<std::ops::Range<usize>> = Vec::new();
        let mut first = 0;
        let mut groups = 0;
        for (b, (_, range)) in backends.iter().enumerate() {
            groups += range.len();
            if groups >= SERVERS_PER_PIECE || b + 1 == backends.len() {
                pieces.push(first..b + 1);
                first = b + 1;
                groups = 0;
            }
        }
        // The lines of the backends of piece `k`, into `w`; `between` runs
        // after each server. Returns the values written.
        let write_piece =
            |k: usize,
             w: &mut LineWriter<'_>,
             between: &mut dyn FnMut(&mut LineWriter<'_>) -> Result<(), SnapshotError>|
             -> Result<usize, SnapshotError> {
                let mut store = Vec::new();
                let mut prefixes = Prefixes::default();
                let mut values = 0;
                let piece = pieces.get(k).and_then(|r| backends.get(r.clone()));
                for (backend, range) in piece.unwrap_or_default() {
                    if opts.exclude_backends.contains(*backend) {
                        continue;
                    }
                    let paths = paths_of(opts, &opts.backend_groups, backend, &mut store);
                    let mut wrote = false;
                    for path in paths {
                        wrote |= w.line(
                            &[path, "backend", backend, "TotalServers"],
                            Value::Int(range.len() as i64),
                        );
                    }
                    values += usize::from(wrote);
                    for &g in order.get(range.clone()).unwrap_or_default() {
                        let Some(key) = srv.keys.get(g) else { continue };
                        let server = split_key(key).1;
                        values += emit_group(
                            w,
                            prefixes.set(paths, &["backend", backend, "server", server]),
                            // The selection is the prefix of the spec (see
                            // `server_aggregated_metrics`).
                            srv_spec
                                .metrics
                                .get(..opts.server_metrics.len())
                                .unwrap_or_default(),
                            srv.group_accs(g),
                        );
                        between(w)?;
                    }
                }
                Ok(values)
            };
        if opts.parallelism > 1 {
            let format_piece = |k: usize, mut buf: Vec<u8>| -> Piece {
                let mut w = LineWriter::new(&mut buf, timestamp);
                // Nothing fails between backends of a piece in memory.
                let values = write_piece(k, &mut w, &mut |_| Ok(())).unwrap_or(0);
                let lines = w.lines();
                Piece { buf, lines, values }
            };
            pieces_in_order(pieces.len(), true, &format_piece, &mut |piece: &Piece| {
                report.metrics.server += piece.values;
                w.add_lines(piece.lines);
                w.take_if_over(0, &mut |b| sink.append(b, &piece.buf))
                    .map_err(write_err)
            })?;
        } else {
            // On one thread, straight into the output: no piece to copy, and
            // the buffer handed over between servers, as between the groups
            // above.
            for k in 0..pieces.len() {
                report.metrics.server += write_piece(k, &mut w, &mut |w| drain_full(w, sink))?;
            }
        }
        if opts.aggr_server_metrics {
            let mut by_name = KindAgg::new(srv_spec);
            // Servers of excluded backends count here too, as in the
            // original: `exclude-backends` skips `P.backend.<be>.*`.
            by_name.merge_mapped(srv, |key| split_key(key).1);
            warn_overflowed(dir, "server", &by_name, &srv_spec.metrics, &mut warnings);
            for g in by_name.sorted_groups() {
                let Some(server) = by_name.keys.get(g) else {
                    continue;
                };
                let paths = paths_of(opts, &opts.server_groups, server, &mut store);
                report.metrics.server += emit_group(
                    &mut w,
                    prefixes.set(paths, &["server", server]),
                    &srv_spec.metrics,
                    by_name.group_accs(g),
                );
                drain_full(&mut w, sink)?;
            }
        }
        report.timings.servers = t.elapsed();
        report.timings.all_stats = t_stats.elapsed();
    }

    // Self metrics (§4.4); counts include the count line itself, as the original.
    let m = report.metrics;
    let t = report.timings;
    if !procs.is_empty() {
        w.line(
            &[p, "haproxystats", "MetricsHAProxy"],
            Value::Int(m.daemon as i64 + 1),
        );
        w.line(
            &[p, "haproxystats", "WallClockTimeHAProxy"],
            Value::Seconds(t.daemon.as_secs_f64()),
        );
    }
    if usable_stats > 0 {
        for (name, v) in [
            ("MetricsFrontend", m.frontend),
            ("MetricsBackend", m.backend),
            ("MetricsServer", m.server),
        ] {
            w.line(&[p, "haproxystats", name], Value::Int(v as i64 + 1));
        }
        for (name, d) in [
            ("WallClockTimeFrontends", t.frontends),
            ("WallClockTimeBackends", t.backends),
            ("WallClockTimeServers", t.servers),
        ] {
            w.line(&[p, "haproxystats", name], Value::Seconds(d.as_secs_f64()));
        }
    }
    w.line(
        &[p, "haproxystats", "WallClockTimeAllStats"],
        Value::Seconds((t.daemon + t.all_stats).as_secs_f64()),
    );
    report.timings.total = start.elapsed();
    w.line(
        &[p, "haproxystats", "TotalWallClockTime"],
        Value::Seconds(report.timings.total.as_secs_f64()),
    );
    report.lines = w.lines();
    w.take_if_over(0, &mut |b| sink.drain(b))
        .map_err(write_err)?;
    report.warnings = warnings;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot with `backends` × 10 servers in two `_stat` files.
    fn big_snapshot(backends: usize) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("1700000000");
        std::fs::create_dir(&dir).unwrap();
        for (f, factor) in [("a_stat", 1), ("b_stat", 3)] {
            let mut text = String::from("# pxname,svname,type,lbtot,bin,weight,qtime,\n");
            for b in 0..backends {
                text.push_str(&format!("be{b},BACKEND,1,{},{},1,2,\n", b * factor, b));
                for s in 0..10 {
                    let v = b * 10 + s;
                    text.push_str(&format!(
                        "be{b},s.{s},2,{},{},{},{},\n",
                        v % 3,
                        v * factor,
                        s,
                        v
                    ));
                }
            }
            std::fs::write(dir.join(f), text).unwrap();
        }
        tmp
    }

    /// The lines without the self metrics (they carry timings).
    fn without_self_metrics(out: &[u8]) -> String {
        String::from_utf8_lossy(out)
            .lines()
            .filter(|l| !l.contains(".haproxystats."))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn streamed_parallel_output_is_the_buffered_sequential_output() {
        let tmp = big_snapshot(97);
        let dir = tmp.path().join("1700000000");
        let mut opts = EngineOptions::with_prefix("P");
        opts.aggr_server_metrics = true;
        let mut buffered = b"kept ".to_vec();
        let report = process_snapshot(&dir, &opts, &mut buffered).unwrap();
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert!(buffered.starts_with(b"kept P."));
        let want = without_self_metrics(buffered.get(5..).unwrap());
        assert!(want.contains("P.backend.be96.TotalServers 10 1700000000\n"));
        assert!(want.contains("P.backend.be9.server.s_9.bin 396 1700000000\n"));
        opts.parallelism = 2;
        let mut streamed = Vec::new();
        let report2 = process_snapshot_to(&dir, &opts, &mut streamed).unwrap();
        assert_eq!(without_self_metrics(&streamed), want);
        assert_eq!(report2.lines, report.lines);
        assert_eq!(report2.metrics, report.metrics);
        assert_eq!(
            report.lines,
            String::from_utf8_lossy(&buffered).lines().count()
        );
    }

    /// Keeps every buffer it is handed, as it is.
    #[derive(Default)]
    struct Buffers {
        taken: Vec<Vec<u8>>,
        fresh: usize,
        given_back: usize,
    }

    impl BufferSink for Buffers {
        fn hand_over_at(&self) -> usize {
            4096
        }
        fn fresh(&mut self) -> Vec<u8> {
            self.fresh += 1;
            Vec::with_capacity(8192)
        }
        fn take(&mut self, lines: Vec<u8>) {
            if lines.is_empty() {
                self.given_back += 1;
            } else {
                self.taken.push(lines);
            }
        }
        fn copy(&mut self, lines: &[u8]) {
            self.taken.push(lines.to_vec());
        }
    }

    #[test]
    fn buffers_handed_over_hold_the_streamed_lines_whole() {
        let tmp = big_snapshot(97);
        let dir = tmp.path().join("1700000000");
        let mut opts = EngineOptions::with_prefix("P");
        opts.aggr_server_metrics = true;
        let mut want = Vec::new();
        process_snapshot_to(&dir, &opts, &mut want).unwrap();
        let want = without_self_metrics(&want);
        for parallelism in [1, 2] {
            opts.parallelism = parallelism;
            let mut out = Buffers::default();
            let report = process_snapshot_into(&dir, &opts, &mut out).unwrap();
            let all = out.taken.concat();
            assert_eq!(
                without_self_metrics(&all),
                want,
                "parallelism {parallelism}"
            );
            assert_eq!(report.lines, String::from_utf8_lossy(&all).lines().count());
            assert!(out.taken.iter().all(|b| b.ends_with(b"\n")));
            // Every fresh buffer was either handed over full or given back.
            assert_eq!(out.given_back, 1);
            if parallelism == 1 {
                // Handed over between groups: never past the hand-over size
                // by more than one server's lines, and never copied.
                assert_eq!(out.fresh, out.taken.len() + 1);
                assert!(out.taken.len() > 10, "{} buffers", out.taken.len());
                assert!(out.taken.iter().all(|b| b.len() < 4096 + 1024));
            }
        }
    }

    #[test]
    fn write_errors_stop_the_snapshot() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk full"));
                }
                self.0 -= 1;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let tmp = big_snapshot(300);
        let dir = tmp.path().join("1700000000");
        let mut opts = EngineOptions::with_prefix("P");
        for parallelism in [1, 2] {
            opts.parallelism = parallelism;
            for ok_writes in [0, 1, 3] {
                let err = process_snapshot_to(&dir, &opts, &mut Full(ok_writes)).unwrap_err();
                assert_eq!(err.kind(), "write", "{err}");
                assert!(err.to_string().contains("disk full"), "{err}");
            }
        }
    }

    #[test]
    fn timestamps_are_digit_names() {
        assert_eq!(timestamp_of(Path::new("/x/1700000000")), Some(1700000000));
        assert_eq!(timestamp_of(Path::new("/x/17a")), None);
        assert_eq!(timestamp_of(Path::new("/x/-1")), None);
        assert_eq!(timestamp_of(Path::new("/")), None);
    }
}
