//! The CSV front end: a snapshot directory of `*_info` / `*_stat` files →
//! [`Gathered`], the aggregated state the lines are written from. The
//! `_stat` files are parsed in parallel (`opts.parallelism` threads, each
//! taking the next file), streamed from disk in chunks into bounded Arrow
//! batches that the grouped kernels fold into per-thread accumulators,
//! merged at the end.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::aggregate::{SiteAgg, Specs};
use super::daemon::ProcessInfo;
use super::{EngineOptions, InputWarning, SnapshotError, WarningKind, parse_info, parse_stat};

/// One snapshot aggregated, whichever front end read it: the processes'
/// `show info` values and the grouped sums of the `show stat` rows. Lines
/// are written from it (`emit`); a partial aggregate is one
/// (`super::partial`).
#[derive(Debug, Clone)]
pub struct Gathered {
    /// Where the snapshot came from (in warnings and errors).
    pub source: PathBuf,
    /// The snapshot timestamp.
    pub timestamp: i64,
    /// One per usable `_info`, in file name order.
    pub procs: Vec<ProcessInfo>,
    /// The specs `sites` was built with.
    pub specs: Specs,
    /// Per kind, per group, the sums of the rows.
    pub sites: SiteAgg,
    /// `_stat` inputs with a header.
    pub usable_stats: usize,
    /// Problems survived so far.
    pub warnings: Vec<InputWarning>,
    /// Reading and parsing the `_info` inputs.
    pub daemon_parse: Duration,
    /// Reading, parsing and aggregating the `_stat` inputs.
    pub parse_stats: Duration,
    /// When processing started (for the self metrics).
    pub started: Instant,
}

impl Gathered {
    /// Nothing usable: an error naming why each input was rejected.
    pub(super) fn check_usable(self) -> Result<Gathered, SnapshotError> {
        if self.procs.is_empty() && self.usable_stats == 0 {
            return Err(SnapshotError::NothingUsable {
                dir: self.source,
                warnings: self.warnings,
            });
        }
        Ok(self)
    }
}

/// The specs of the options: which metrics each kind aggregates.
pub(super) fn specs_of(opts: &EngineOptions) -> Specs {
    Specs::new(
        &opts.frontend_metrics,
        &opts.backend_metrics,
        &opts.server_aggregated_metrics(),
    )
}

/// Reads and aggregates one snapshot directory.
pub(super) fn gather_dir(dir: &Path, opts: &EngineOptions) -> Result<Gathered, SnapshotError> {
    let started = Instant::now();
    let timestamp = timestamp_of(dir).ok_or_else(|| SnapshotError::BadTimestamp {
        dir: dir.to_path_buf(),
    })?;
    let (info_files, stat_files) = list_files(dir)?;
    let mut warnings = Vec::new();

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
    let specs = specs_of(opts);
    let (sites, usable_stats) = parse_stats(&stat_files, opts, &specs, &mut warnings);
    Gathered {
        source: dir.to_path_buf(),
        timestamp,
        procs,
        specs,
        sites,
        usable_stats,
        warnings,
        daemon_parse,
        parse_stats: t_stats.elapsed(),
        started,
    }
    .check_usable()
}

/// Reads the timestamp from a snapshot directory name (ASCII digits only).
pub(super) fn timestamp_of(dir: &Path) -> Option<i64> {
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
