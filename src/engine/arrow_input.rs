//! The Arrow front end: a raw snapshot decoded from Kafka (src/raw, SPEC §5)
//! → [`Gathered`], exactly what the CSV front end (`gather`) gives
//! for the files the snapshot was encoded from. Rows are classified, named
//! and their cells read by the same rules as the CSV parser's (the same
//! [`KindBuilder`]s and [`row_kind`]), so that the lines are those of
//! `replay`.

use std::path::Path;
use std::time::Instant;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;

use crate::raw::cells::ColumnCells;
use crate::raw::{DecodedSnapshot, DecodedSocket, StatSegment};

use super::aggregate::SiteAgg;
use super::cells::parse_cell;
use super::daemon::ProcessInfo;
use super::gather::{Gathered, specs_of};
use super::parse_stat::{ColumnPlan, KindBuilder, RowKind, StatSink, row_kind, warn_at};
use super::{EngineOptions, InputWarning, SnapshotError, WarningKind, parse_info};

/// Aggregates a decoded snapshot; `source` names it in warnings and errors
/// (its files are `<source>/<socket>_info|_stat`).
pub(super) fn gather_decoded(
    snapshot: &DecodedSnapshot,
    source: &Path,
    opts: &EngineOptions,
) -> Result<Gathered, SnapshotError> {
    let started = Instant::now();
    let mut warnings = Vec::new();
    let t_daemon = Instant::now();
    let mut procs: Vec<(String, ProcessInfo)> = snapshot
        .sockets
        .iter()
        .filter_map(|socket| process_info(socket, source, &mut warnings))
        .collect();
    // In the order of the CSV front end: by file name.
    procs.sort_by(|a, b| a.0.cmp(&b.0));
    let daemon_parse = t_daemon.elapsed();

    let t_stats = Instant::now();
    let specs = specs_of(opts);
    let mut sites = SiteAgg::new(&specs);
    let mut usable_stats = 0;
    for socket in &snapshot.sockets {
        if socket.segments.is_empty() {
            continue;
        }
        usable_stats += 1;
        let file = source.join(format!("{}_stat", socket.name));
        let mut seen = 0;
        for segment in &socket.segments {
            let mut rows = SegmentRows::new(segment, &specs.plan, opts.batch_rows);
            for batch in &segment.batches {
                rows.add(batch, &file, &mut seen, &mut warnings, &mut sites);
            }
            rows.finish(&mut sites);
        }
    }
    Gathered {
        source: source.to_path_buf(),
        timestamp: snapshot.ts,
        procs: procs.into_iter().map(|(_, p)| p).collect(),
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

/// The process of a socket with `show info` pairs, and its file name.
fn process_info(
    socket: &DecodedSocket,
    source: &Path,
    warnings: &mut Vec<InputWarning>,
) -> Option<(String, ProcessInfo)> {
    let pairs = socket.info.as_ref()?;
    let file_name = format!("{}_info", socket.name);
    let path = source.join(&file_name);
    if pairs.is_empty() {
        warnings.push(InputWarning::new(&path, None, WarningKind::EmptyFile));
        return None;
    }
    let mut text = Vec::new();
    for (k, v) in pairs {
        text.extend_from_slice(k.as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(v.as_bytes());
        text.push(b'\n');
    }
    let values = parse_info::parse_info(&text, &path, warnings)?;
    let info = ProcessInfo {
        socket: socket.name.clone(),
        values,
    };
    Some((file_name, info))
}

/// The rows of one header segment, into a [`KindBuilder`] per kind.
struct SegmentRows<'a> {
    plan: &'a ColumnPlan,
    batch_rows: usize,
    builders: [KindBuilder; 3],
    /// Field indexes of `pxname`, `svname` and `type` (the first of a name,
    /// as the CSV header is read).
    px: Option<usize>,
    sv: Option<usize>,
    ty: Option<usize>,
    /// Per kind: (plan column, field index) of every planned column present.
    idx: [Vec<(usize, usize)>; 3],
    px_buf: Vec<u8>,
    sv_buf: Vec<u8>,
    cell_buf: Vec<u8>,
}

impl<'a> SegmentRows<'a> {
    fn new(segment: &StatSegment, plan: &'a ColumnPlan, batch_rows: usize) -> Self {
        let batch_rows = batch_rows.max(1);
        let names = segment.field_names();
        let find = |name: &str| names.iter().position(|n| *n == name);
        let idx: [Vec<(usize, usize)>; 3] = std::array::from_fn(|k| {
            plan.columns[k]
                .iter()
                .enumerate()
                .filter_map(|(c, name)| Some((c, find(name)?)))
                .collect()
        });
        let builders = std::array::from_fn(|k| {
            let mut b = KindBuilder::new(RowKind::ALL[k], plan.columns[k].len(), batch_rows);
            b.set_header(&idx[k]);
            b
        });
        SegmentRows {
            plan,
            batch_rows,
            builders,
            px: find("pxname"),
            sv: find("svname"),
            ty: find("type"),
            idx,
            px_buf: Vec::new(),
            sv_buf: Vec::new(),
            cell_buf: Vec::new(),
        }
    }

    /// Adds the rows of one record batch.
    fn add(
        &mut self,
        batch: &RecordBatch,
        file: &Path,
        seen: &mut usize,
        warnings: &mut Vec<InputWarning>,
        sink: &mut impl StatSink,
    ) {
        // `raw::decode` checked every column is of the format and that
        // pxname and svname exist.
        let columns: Vec<Option<ColumnCells<'_>>> = batch
            .columns()
            .iter()
            .map(|a| ColumnCells::of(a.as_ref()))
            .collect();
        let cells = |i: Option<usize>| i.and_then(|i| columns.get(i)).and_then(Option::as_ref);
        let (Some(px_cells), Some(sv_cells)) = (cells(self.px), cells(self.sv)) else {
            return;
        };
        let ty_cells = self.ty.map(|t| cells(Some(t)));
        // Each row's kind and group first, then the rows of each kind
        // column by column: a column of numbers is copied in one loop.
        let mut rows: [Vec<(u32, u32)>; 3] = Default::default();
        for row in 0..batch.num_rows() {
            let px = px_cells.bytes(row, &mut self.px_buf);
            let sv = sv_cells.bytes(row, &mut self.sv_buf);
            if px.is_empty() || sv.is_empty() {
                warn_at(file, seen, warnings, None, WarningKind::BadRow);
                continue;
            }
            let ty = ty_cells.map(|c| c.map(|c| value(c, row, &mut self.cell_buf)));
            let Some(kind) = row_kind(sv, ty) else {
                continue; // listeners (type 3) and anything else
            };
            if let Some(of_kind) = rows.get_mut(kind as usize) {
                of_kind.push((row as u32, sink.group(kind, px, sv)));
            }
        }
        for (k, of_kind) in rows.iter().enumerate() {
            let (Some(b), Some(idx), Some(names)) = (
                self.builders.get_mut(k),
                self.idx.get(k),
                self.plan.columns.get(k),
            ) else {
                continue;
            };
            let mut todo = of_kind.as_slice();
            while !todo.is_empty() {
                let room = self.batch_rows.saturating_sub(b.len()).max(1);
                let (chunk, rest) = todo.split_at(room.min(todo.len()));
                for &(c, i) in idx {
                    let column = cells(Some(i));
                    if let Some(ColumnCells::Int64(a)) = column {
                        let values = a.values();
                        let nulls = a.nulls();
                        b.extend_column(
                            c,
                            chunk.iter().map(|&(r, _)| {
                                let r = r as usize;
                                // An empty cell is 0 (SPEC §4.2).
                                if nulls.is_some_and(|n| n.is_null(r)) {
                                    0
                                } else {
                                    values.get(r).copied().unwrap_or(0)
                                }
                            }),
                        );
                        continue;
                    }
                    let first = b.len() as u32;
                    for (n, &(r, _)) in chunk.iter().enumerate() {
                        let v = column.map(|cells| value(cells, r as usize, &mut self.cell_buf));
                        let at = first + n as u32;
                        let raw = &self.cell_buf;
                        if let Some(w) = b.push_cell_at(c, v, || raw, names, at) {
                            warn_at(file, seen, warnings, None, w);
                        }
                    }
                }
                b.end_rows(chunk.iter().map(|&(_, g)| g));
                if b.len() >= self.batch_rows {
                    b.emit(sink);
                }
                todo = rest;
            }
        }
    }

    /// Hands out the last rows of the segment.
    fn finish(mut self, sink: &mut impl StatSink) {
        for b in &mut self.builders {
            b.emit(sink);
        }
    }
}

/// The value of a cell as the CSV cell parsers give it; when it is no
/// `i64` (text, or a counter above `i64::MAX`), its text is left in `buf`
/// for [`KindBuilder::push_cell`].
fn value(cells: &ColumnCells<'_>, row: usize, buf: &mut Vec<u8>) -> Result<Option<i64>, ()> {
    match cells {
        ColumnCells::Int64(a) => Ok(a.is_valid(row).then(|| a.value(row))),
        ColumnCells::UInt64(a) if !a.is_valid(row) => Ok(None),
        ColumnCells::UInt64(a) => match i64::try_from(a.value(row)) {
            Ok(v) => Ok(Some(v)),
            Err(_) => {
                buf.clear();
                cells.write(row, buf);
                Err(())
            }
        },
        ColumnCells::Text { .. } => {
            buf.clear();
            cells.write(row, buf);
            parse_cell(buf)
        }
    }
}
