//! The snapshot processing engine (SPEC §4): one snapshot in, Graphite
//! plaintext lines out.
//!
//! Independent of actors and I/O scheduling. Two front ends aggregate a
//! snapshot into one [`Gathered`] state (the processes' `show info` values
//! and, per frontend, backend and server, exact sums and row counts), and
//! one writer turns that state into lines:
//!
//! - `gather` — the CSV front end: a snapshot directory of `*_info` /
//!   `*_stat` files (local processing, `replay`); `show stat` files are
//!   parsed in parallel (`opts.parallelism` threads), streamed from disk
//!   into bounded Arrow batches of group ids and the needed Int64 columns.
//! - `arrow_input` — the Arrow front end: a raw snapshot decoded from
//!   Kafka ([`crate::raw`], SPEC §7 stage 1), its record batches read by the
//!   same rules into the same batches.
//! - [`aggregate`] — the grouped kernels both feed (sum / mean / mean over
//!   busy rows), merging exactly across threads, files and load balancers.
//! - `emit` — the lines of a [`Gathered`]: daemon, frontends, backends,
//!   servers (in pieces of whole backends, on two threads when allowed),
//!   the self metrics of §4.4 last, handed out in chunks.
//! - [`partial`] — a [`Gathered`] as a load balancer's partial aggregate
//!   (SPEC §7), its wire format and the merge of a cluster's partials.
//! - [`parse_info`], [`parse_stat`], [`daemon`], [`format`], [`options`].
//!
//! The output goes to a buffer ([`process_snapshot`]), a writer in chunks
//! of [`OUT_CHUNK`] bytes ([`process_snapshot_to`]) or a [`BufferSink`]
//! taking the buffers themselves ([`process_snapshot_into`],
//! [`process_decoded_into`], [`process_gathered_into`]). Memory is bounded
//! by the number of groups, not by the size of the files or of the output.

pub mod aggregate;
mod arrow_input;
pub(crate) mod cells;
pub mod daemon;
mod emit;
pub mod format;
mod gather;
pub mod options;
pub mod parse_info;
pub mod parse_stat;
pub mod partial;
pub mod warning;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use gather::Gathered;
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

/// The engine on a directory: lines are buffered in `out`, handed to `sink`
/// whenever it holds its threshold, and once at the end.
fn run(
    dir: &Path,
    opts: &EngineOptions,
    out: &mut Vec<u8>,
    sink: &mut Sink<'_>,
) -> Result<SnapshotReport, SnapshotError> {
    emit::write_snapshot(&gather::gather_dir(dir, opts)?, opts, out, sink)
}

/// Processes a raw snapshot decoded from Kafka (SPEC §7 stage 1): the lines
/// `replay` gives for the files it was encoded from (under `opts.prefix`),
/// written into buffers of `out` as [`process_snapshot_into`] does, and
/// the load balancer `lb`'s [`partial::Partial`] of it.
pub fn process_decoded_into(
    snapshot: &crate::raw::DecodedSnapshot,
    lb: &str,
    opts: &EngineOptions,
    out: &mut dyn BufferSink,
) -> Result<(SnapshotReport, partial::Partial), SnapshotError> {
    let source = PathBuf::from(format!("kafka:{lb}/{}", snapshot.ts));
    let g = arrow_input::gather_decoded(snapshot, &source, opts)?;
    let report = process_gathered_into(&g, opts, out)?;
    Ok((report, partial::Partial::from_gathered(g, lb, opts)))
}

/// The `show stat` columns the engine reads with `opts` (besides `pxname`
/// and `svname`): a decoder may leave the others out.
pub fn columns_read(opts: &EngineOptions) -> std::collections::HashSet<&'static str> {
    let specs = gather::specs_of(opts);
    let mut columns: std::collections::HashSet<&'static str> =
        specs.plan.columns.iter().flatten().copied().collect();
    columns.insert("type");
    columns
}

/// Writes the lines of an aggregated snapshot (a decoded one, or merged
/// partials) into buffers of `out`.
pub fn process_gathered_into(
    g: &Gathered,
    opts: &EngineOptions,
    out: &mut dyn BufferSink,
) -> Result<SnapshotReport, SnapshotError> {
    let mut buf = out.fresh();
    let result = emit::write_snapshot(g, opts, &mut buf, &mut Sink::Buffers(out));
    buf.clear();
    out.take(buf);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use gather::timestamp_of;

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
