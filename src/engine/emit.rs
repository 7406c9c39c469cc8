//! Writing the lines of one [`Gathered`] snapshot: daemon, frontends,
//! backends, servers (per backend, `TotalServers`, then per server name),
//! the self metrics of §4.4 last, group by group into a [`LineWriter`]
//! whose buffer goes to the [`Sink`] whenever it is full. Server lines
//! (about 90% of the output) are formatted in pieces of whole backends on a
//! second thread too when `opts.parallelism` allows, and written in order.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::catalogue::StatMetric;

use super::aggregate::{self, Aggregate, KindAgg, finish};
use super::daemon;
use super::format::{LineWriter, Value};
use super::gather::Gathered;
use super::{
    EngineOptions, InputWarning, MetricCounts, PhaseTimings, Sink, SnapshotError, SnapshotReport,
    WarningKind, options,
};

/// Writes the lines of `g` into `out`, handing it to `sink` whenever it
/// holds the sink's threshold, and once at the end.
pub(super) fn write_snapshot(
    g: &Gathered,
    opts: &EngineOptions,
    out: &mut Vec<u8>,
    sink: &mut Sink<'_>,
) -> Result<SnapshotReport, SnapshotError> {
    let mut warnings = g.warnings.clone();
    for ((agg, spec), kind) in g
        .sites
        .kinds
        .iter()
        .zip(&g.specs.kinds)
        .zip(["frontend", "backend", "server"])
    {
        warn_overflowed(&g.source, kind, agg, &spec.metrics, &mut warnings);
    }
    let mut e = Emitter {
        opts,
        source: &g.source,
        w: LineWriter::new(out, g.timestamp),
        sink,
        store: Vec::new(),
        prefixes: Prefixes::default(),
        counts: MetricCounts::default(),
        timings: PhaseTimings {
            parse_stats: g.parse_stats,
            ..Default::default()
        },
    };
    if !g.procs.is_empty() {
        let t = Instant::now();
        e.counts.daemon = daemon::emit_daemon(
            &g.procs,
            &opts.prefix,
            opts.per_process_metrics,
            opts.calculate_percentages,
            &mut e.w,
        );
        e.timings.daemon = g.daemon_parse + t.elapsed();
    }
    if g.usable_stats > 0 {
        let t_stats = Instant::now();
        let [fe, be, srv] = &g.sites.kinds;
        let [fe_spec, be_spec, srv_spec] = &g.specs.kinds;
        let t = Instant::now();
        e.counts.frontend = e.proxies(fe, &fe_spec.metrics, Proxies::FRONTENDS)?;
        e.timings.frontends = t.elapsed() + g.parse_stats;
        let t = Instant::now();
        e.counts.backend = e.proxies(be, &be_spec.metrics, Proxies::BACKENDS)?;
        e.timings.backends = t.elapsed();
        let t = Instant::now();
        e.counts.server = e.servers(srv, &srv_spec.metrics, g.timestamp)?;
        if opts.aggr_server_metrics {
            // Servers of excluded backends count here too, as in the
            // original: `exclude-backends` skips `P.backend.<be>.*`.
            let mut by_name = KindAgg::new(srv_spec);
            by_name.merge_mapped(srv, |key| split_key(key).1);
            warn_overflowed(
                &g.source,
                "server",
                &by_name,
                &srv_spec.metrics,
                &mut warnings,
            );
            e.counts.server += e.proxies(&by_name, &srv_spec.metrics, Proxies::SERVER_NAMES)?;
        }
        e.timings.servers = t.elapsed();
        e.timings.all_stats = g.parse_stats + t_stats.elapsed();
    }
    let has_procs = !g.procs.is_empty();
    e.self_metrics(has_procs, g.usable_stats > 0, g.started);
    let lines = e.w.lines();
    let (source, timings, metrics) = (e.source, e.timings, e.counts);
    e.w.take_if_over(0, &mut |b| e.sink.drain(b))
        .map_err(|err| write_error(source, err))?;
    Ok(SnapshotReport {
        timestamp: g.timestamp,
        metrics,
        timings,
        lines,
        warnings,
    })
}

/// A failed write, naming the snapshot.
fn write_error(source: &Path, err: std::io::Error) -> SnapshotError {
    SnapshotError::Write {
        dir: source.to_path_buf(),
        source: err,
    }
}

/// Which groups of one kind [`Emitter::proxies`] writes, and where.
struct Proxies {
    /// The path section after the prefix (`frontend`, `backend`, `server`).
    section: &'static str,
    /// Skip the names of `exclude-frontends` / `exclude-backends`.
    exclude: fn(&EngineOptions) -> &std::collections::HashSet<String>,
    /// The group rules of the names.
    rules: fn(&EngineOptions) -> &[options::GroupRule],
}

impl Proxies {
    const FRONTENDS: Proxies = Proxies {
        section: "frontend",
        exclude: |o| &o.exclude_frontends,
        rules: |o| &o.frontend_groups,
    };
    const BACKENDS: Proxies = Proxies {
        section: "backend",
        exclude: |o| &o.exclude_backends,
        rules: |o| &o.backend_groups,
    };
    /// `P.server.<name>` across backends (`aggr-server-metrics`): nothing
    /// excluded (an empty set).
    const SERVER_NAMES: Proxies = Proxies {
        section: "server",
        exclude: |_| no_names(),
        rules: |o| &o.server_groups,
    };
}

/// The empty set of names.
fn no_names() -> &'static std::collections::HashSet<String> {
    static EMPTY: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    EMPTY.get_or_init(Default::default)
}

/// What writing one snapshot's lines needs at hand.
struct Emitter<'a, 'o, 's> {
    opts: &'a EngineOptions,
    source: &'a Path,
    w: LineWriter<'o>,
    sink: &'a mut Sink<'s>,
    store: Vec<String>,
    prefixes: Prefixes,
    counts: MetricCounts,
    timings: PhaseTimings,
}

impl Emitter<'_, '_, '_> {
    /// Hands the buffer to the sink once it is over the sink's threshold.
    fn drain_full(&mut self) -> Result<(), SnapshotError> {
        let (sink, source) = (&mut *self.sink, self.source);
        self.w
            .take_if_over(sink.threshold(), &mut |b| sink.drain(b))
            .map_err(|err| write_error(source, err))
    }

    /// Writes every group of `agg` in name order under `P.<section>.<name>.`
    /// (and its group paths); returns the values written.
    fn proxies(
        &mut self,
        agg: &KindAgg,
        metrics: &[StatMetric],
        kind: Proxies,
    ) -> Result<usize, SnapshotError> {
        let opts = self.opts;
        let mut values = 0;
        for g in agg.sorted_groups() {
            let Some(name) = agg.keys.get(g) else {
                continue;
            };
            if (kind.exclude)(opts).contains(&**name) {
                continue;
            }
            let paths = paths_of(opts, (kind.rules)(opts), name, &mut self.store);
            values += emit_group(
                &mut self.w,
                self.prefixes.set(paths, &[kind.section, name]),
                metrics,
                agg.group_accs(g),
            );
            self.drain_full()?;
        }
        Ok(values)
    }

    /// Writes, per backend, `TotalServers` and each server's metrics,
    /// formatted in pieces of whole backends, on two threads if allowed;
    /// returns the values written.
    fn servers(
        &mut self,
        srv: &KindAgg,
        metrics: &[StatMetric],
        timestamp: i64,
    ) -> Result<usize, SnapshotError> {
        let opts = self.opts;
        let order = srv.sorted_groups();
        let backends = backends_of(srv, &order);
        let pieces = pieces_of(&backends);
        // The selection is the prefix of the spec (see
        // `server_aggregated_metrics`).
        let metrics = metrics.get(..opts.server_metrics.len()).unwrap_or_default();
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
                            metrics,
                            srv.group_accs(g),
                        );
                        between(w)?;
                    }
                }
                Ok(values)
            };
        let mut values = 0;
        if opts.parallelism > 1 {
            let format_piece = |k: usize, mut buf: Vec<u8>| -> Piece {
                let mut w = LineWriter::new(&mut buf, timestamp);
                // Nothing fails between backends of a piece in memory.
                let values = write_piece(k, &mut w, &mut |_| Ok(())).unwrap_or(0);
                let lines = w.lines();
                Piece { buf, lines, values }
            };
            let (w, sink, source) = (&mut self.w, &mut *self.sink, self.source);
            pieces_in_order(pieces.len(), true, &format_piece, &mut |piece: &Piece| {
                values += piece.values;
                w.add_lines(piece.lines);
                w.take_if_over(0, &mut |b| sink.append(b, &piece.buf))
                    .map_err(|err| write_error(source, err))
            })?;
        } else {
            // On one thread, straight into the output: no piece to copy, and
            // the buffer handed over between servers, as between the groups
            // above.
            let (sink, source) = (&mut *self.sink, self.source);
            for k in 0..pieces.len() {
                values += write_piece(k, &mut self.w, &mut |w| {
                    w.take_if_over(sink.threshold(), &mut |b| sink.drain(b))
                        .map_err(|err| write_error(source, err))
                })?;
            }
        }
        Ok(values)
    }

    /// The self metrics (§4.4); counts include the count line itself, as
    /// the original.
    fn self_metrics(&mut self, has_procs: bool, has_stats: bool, started: Instant) {
        let p = self.opts.prefix.as_str();
        let (m, t, w) = (self.counts, self.timings, &mut self.w);
        let seconds = |d: Duration| Value::Seconds(d.as_secs_f64());
        if has_procs {
            w.line(
                &[p, "haproxystats", "MetricsHAProxy"],
                Value::Int(m.daemon as i64 + 1),
            );
            w.line(
                &[p, "haproxystats", "WallClockTimeHAProxy"],
                seconds(t.daemon),
            );
        }
        if has_stats {
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
                w.line(&[p, "haproxystats", name], seconds(d));
            }
        }
        w.line(
            &[p, "haproxystats", "WallClockTimeAllStats"],
            seconds(t.daemon + t.all_stats),
        );
        self.timings.total = started.elapsed();
        w.line(
            &[p, "haproxystats", "TotalWallClockTime"],
            seconds(self.timings.total),
        );
    }
}

/// The backends of the server groups in `order` (sorted by key, so a
/// backend's servers are together): its name and its range of `order`.
fn backends_of<'k>(srv: &'k KindAgg, order: &[usize]) -> Vec<(&'k str, std::ops::Range<usize>)> {
    let backend_of = |i: usize| {
        order
            .get(i)
            .and_then(|&g| srv.keys.get(g))
            .map(|k| split_key(k).0)
    };
    let mut backends = Vec::new();
    let mut i = 0;
    while let Some(backend) = backend_of(i) {
        let mut j = i + 1;
        while backend_of(j) == Some(backend) {
            j += 1;
        }
        backends.push((backend, i..j));
        i = j;
    }
    backends
}

/// Pieces of whole backends of about [`SERVERS_PER_PIECE`] servers each, as
/// ranges of `backends`.
fn pieces_of(backends: &[(&str, std::ops::Range<usize>)]) -> Vec<std::ops::Range<usize>> {
    let mut pieces = Vec::new();
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
    pieces
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
