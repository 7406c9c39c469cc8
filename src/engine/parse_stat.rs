//! `show stat` parsing: header-driven CSV → Arrow arrays of only the columns
//! the engine needs, one batch per row kind (frontend, backend, server).
//!
//! The header names the columns, so every layout from HAProxy 1.5 (33
//! columns) to 3.x works: unknown columns are ignored, missing ones are
//! absent, a duplicated name keeps its first position, `-` and `(null)` are
//! ignored.
//!
//! Streaming: a file is read in chunks of [`READ_CHUNK`] bytes
//! ([`parse_stat_reader`]) and rows leave in batches of at most `batch_rows`
//! rows, so memory does not grow with the file.
//!
//! Hot path: a line without `"` (every line HAProxy writes, bar exotic
//! names) is split on commas eight bytes at a time, and only the needed
//! cells are parsed, as integers, straight from the bytes; a line with `"`
//! goes through the `csv` crate, the exact fallback. Names do not become
//! strings per row: the [`StatSink`] maps the raw name bytes to a group id
//! (hashing them, sanitising and interning a name once per group), and a
//! batch carries those ids next to the numeric columns.
//!
//! Arrow stays on the hot path: a batch is a `UInt32Array` of group ids and
//! one `Int64Array` per needed column, without null buffers (an empty cell
//! is 0), built from vectors and recycled into them without copying. What
//! left Arrow is the names: they were `StringArray`s rebuilt into keys per
//! row, and are now group ids resolved while parsing.

use std::io::Read;
use std::path::Path;

use arrow::array::{Int64Array, UInt32Array};

use super::cells::{BadCell, bad_cell, fast_cell, parse_cell};
use super::warning::{InputWarning, WarningKind};
use crate::stat_line::{MAX_LINE, split_cells};

/// Most warnings kept per file; the rest are counted in one `Suppressed`.
const MAX_WARNINGS_PER_FILE: usize = 20;

/// Bytes read from a file at a time by [`parse_stat_reader`].
pub const READ_CHUNK: usize = 128 * 1024;

/// The kind of a `show stat` row the engine aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// `svname = FRONTEND`.
    Frontend = 0,
    /// `svname = BACKEND`.
    Backend = 1,
    /// `type = 2`.
    Server = 2,
}

impl RowKind {
    /// Every kind, in index order.
    pub const ALL: [RowKind; 3] = [RowKind::Frontend, RowKind::Backend, RowKind::Server];
}

/// The numeric columns needed per row kind, in a fixed order.
#[derive(Debug, Clone, Default)]
pub struct ColumnPlan {
    /// Column names per kind (index = `RowKind as usize`).
    pub columns: [Vec<&'static str>; 3],
}

/// Rows of one kind from one file, all under one header: group ids and the
/// needed numeric columns.
#[derive(Debug, Clone)]
pub struct StatBatch {
    /// Which kind all rows are.
    pub kind: RowKind,
    /// Per row, the group id the [`StatSink`] gave its name(s).
    pub group: UInt32Array,
    /// One array per column of the plan for this kind; `None` when the
    /// header has no such column. An empty cell is 0 (SPEC §4.2), so the
    /// arrays have no nulls.
    pub columns: Vec<Option<Int64Array>>,
    /// Cells above `i64::MAX` (HAProxy's counters are unsigned 64-bit):
    /// their column holds `i64::MAX`, and the rest of the value is here.
    /// Nearly always empty, so the columns stay plain `i64`s.
    pub wide: Vec<WideCell>,
}

/// The part of a cell above `i64::MAX` ([`StatBatch::wide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WideCell {
    /// Row in the batch.
    pub row: u32,
    /// Plan column.
    pub col: u32,
    /// The value minus `i64::MAX` (at most 2^63).
    pub rest: u64,
}

impl StatBatch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.group.len()
    }

    /// `true` when the batch has no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where parsed rows go: names become group ids, batches are consumed.
pub trait StatSink {
    /// The group id of a row of `kind` named `px` (frontends and backends)
    /// or `px`/`sv` (servers); the bytes are raw CSV cells.
    fn group(&mut self, kind: RowKind, px: &[u8], sv: &[u8]) -> u32;
    /// Consumes a batch of rows (its buffers are reused afterwards, unless
    /// the sink keeps a clone of the arrays).
    fn batch(&mut self, batch: &StatBatch);
}

/// What parsing one file gave, besides its batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatFileSummary {
    /// A header was found: the file counts as usable.
    pub usable: bool,
    /// Rows handed out in batches.
    pub rows: usize,
}

/// Positions of the columns of one header.
struct Header {
    cells: usize,
    /// Cell starts a row split needs: one past the last cell read, plus one.
    want: usize,
    px: usize,
    sv: usize,
    ty: Option<usize>,
    /// Per kind: (plan column, cell index) of every planned column present.
    idx: [Vec<(usize, usize)>; 3],
}

impl Header {
    /// Reads a header line (`# pxname,svname,...`); `None` without pxname/svname.
    fn parse(line: &[u8], plan: &ColumnPlan) -> Option<Header> {
        let line = line.strip_prefix(b"#").unwrap_or(line);
        let names: Vec<&[u8]> = line.split(|&b| b == b',').map(|c| c.trim_ascii()).collect();
        let find = |name: &str| names.iter().position(|n| *n == name.as_bytes());
        let px = find("pxname")?;
        let sv = find("svname")?;
        let idx = std::array::from_fn(|k| {
            plan.columns[k]
                .iter()
                .enumerate()
                .filter_map(|(c, name)| Some((c, find(name)?)))
                .collect()
        });
        let ty = find("type");
        let last = idx
            .iter()
            .flatten()
            .map(|&(_, i)| i)
            .chain([px, sv])
            .chain(ty)
            .max()
            .unwrap_or(0);
        Some(Header {
            cells: names.len(),
            want: last + 2,
            px,
            sv,
            ty,
            idx,
        })
    }
}

/// The kind of a row named `sv` whose `type` cell is `ty` (`None`: the
/// header has no `type`, as HAProxy 1.4's; `Some(None)`: no such cell);
/// `None` for rows the engine does not aggregate (listeners, `type` 3).
pub(super) fn row_kind(sv: &[u8], ty: Option<Option<Result<Option<i64>, ()>>>) -> Option<RowKind> {
    if sv == b"FRONTEND" {
        Some(RowKind::Frontend)
    } else if sv == b"BACKEND" {
        Some(RowKind::Backend)
    } else {
        match ty {
            Some(Some(Ok(Some(2)))) | None => Some(RowKind::Server),
            _ => None,
        }
    }
}

/// Accumulates rows of one kind: group ids and one vector per column.
/// Both front ends fill it: CSV lines here, Arrow record batches in
/// [`super::arrow_input`].
pub(super) struct KindBuilder {
    kind: RowKind,
    group: Vec<u32>,
    cols: Vec<Vec<i64>>,
    wide: Vec<WideCell>,
    /// Per plan column: the current header has it.
    present: Vec<bool>,
    cap: usize,
}

impl KindBuilder {
    pub(super) fn new(kind: RowKind, ncols: usize, cap: usize) -> Self {
        KindBuilder {
            kind,
            group: Vec::with_capacity(cap),
            cols: (0..ncols).map(|_| Vec::new()).collect(),
            wide: Vec::new(),
            present: vec![false; ncols],
            cap,
        }
    }

    /// Marks which columns the (new) header has; call on an empty builder.
    pub(super) fn set_header(&mut self, idx: &[(usize, usize)]) {
        self.present.iter_mut().for_each(|p| *p = false);
        for &(c, _) in idx {
            if let Some(p) = self.present.get_mut(c) {
                *p = true;
            }
            if let Some(col) = self.cols.get_mut(c) {
                col.reserve(self.cap);
            }
        }
    }

    /// Adds the cell of plan column `c` of the current row: `value` as the
    /// cell parsers give it (`None`: no such cell), `raw` the cell's bytes
    /// (asked for only when it is no `i64`). Returns the warning a bad cell
    /// gives; it counts as empty (0).
    #[inline(always)]
    pub(super) fn push_cell<'r>(
        &mut self,
        c: usize,
        value: Option<Result<Option<i64>, ()>>,
        raw: impl FnOnce() -> &'r [u8],
        names: &[&'static str],
    ) -> Option<WarningKind> {
        let row = self.group.len() as u32;
        self.push_cell_at(c, value, raw, names, row)
    }

    /// [`KindBuilder::push_cell`] when the columns are filled one after the
    /// other (the Arrow front end): `row` is the cell's row in the batch.
    #[inline(always)]
    pub(super) fn push_cell_at<'r>(
        &mut self,
        c: usize,
        value: Option<Result<Option<i64>, ()>>,
        raw: impl FnOnce() -> &'r [u8],
        names: &[&'static str],
        row: u32,
    ) -> Option<WarningKind> {
        // The hot path, inline in the parser's loop: a number (the cell's
        // bytes are not even looked up).
        if let Some(Ok(v)) = value {
            self.cols.get_mut(c)?.push(v.unwrap_or(0));
            return None;
        }
        self.push_odd_cell(c, raw(), names, row)
    }

    /// A cell that is no `i64`: a counter above `i64::MAX`, or no number.
    #[cold]
    #[inline(never)]
    fn push_odd_cell(
        &mut self,
        c: usize,
        raw: &[u8],
        names: &[&'static str],
        row: u32,
    ) -> Option<WarningKind> {
        let col = self.cols.get_mut(c)?;
        match bad_cell(raw) {
            BadCell::Wide(v) => {
                col.push(i64::MAX);
                self.wide.push(WideCell {
                    row,
                    col: c as u32,
                    rest: v - i64::MAX as u64,
                });
                None
            }
            bad => {
                col.push(0);
                let column = names.get(c).map_or_else(String::new, |n| (*n).to_string());
                Some(if bad == BadCell::TooLarge {
                    WarningKind::TooLarge { column }
                } else {
                    WarningKind::NotANumber { column }
                })
            }
        }
    }

    /// Rows held.
    pub(super) fn len(&self) -> usize {
        self.group.len()
    }

    /// Appends values to plan column `c` (the Arrow front end's fast path:
    /// a column of numbers, copied as they are).
    pub(super) fn extend_column(&mut self, c: usize, values: impl Iterator<Item = i64>) {
        if let Some(col) = self.cols.get_mut(c) {
            col.extend(values);
        }
    }

    /// Ends rows whose cells were pushed column by column, with their
    /// group ids.
    pub(super) fn end_rows(&mut self, groups: impl Iterator<Item = u32>) {
        self.group.extend(groups);
    }

    /// Ends the current row (its cells pushed) with its group id; `true`
    /// when the builder holds `batch_rows` rows and should be emitted.
    #[inline]
    pub(super) fn end_row(&mut self, group: u32, batch_rows: usize) -> bool {
        self.group.push(group);
        self.group.len() >= batch_rows
    }

    /// Hands the rows so far to `sink` as a batch, then takes the batch's
    /// buffers back for the next rows (no allocation per batch).
    pub(super) fn emit(&mut self, sink: &mut impl StatSink) {
        if self.group.is_empty() {
            return;
        }
        let columns = self
            .cols
            .iter_mut()
            .zip(&self.present)
            .map(|(col, &p)| p.then(|| Int64Array::new(std::mem::take(col).into(), None)))
            .collect();
        let batch = StatBatch {
            kind: self.kind,
            group: UInt32Array::new(std::mem::take(&mut self.group).into(), None),
            columns,
            wide: std::mem::take(&mut self.wide),
        };
        sink.batch(&batch);
        let cap = self.cap;
        self.wide = batch.wide;
        self.wide.clear();
        self.group = reuse(batch.group.into_parts().1, cap);
        for (col, arr) in self.cols.iter_mut().zip(batch.columns) {
            if let Some(arr) = arr {
                *col = reuse(arr.into_parts().1, cap);
            }
        }
    }
}

/// The vector behind an Arrow buffer, emptied, for reuse; a new one when the
/// buffer is shared (the sink kept the array).
fn reuse<T: arrow::datatypes::ArrowNativeType>(
    buf: arrow::buffer::ScalarBuffer<T>,
    cap: usize,
) -> Vec<T> {
    match buf.into_inner().into_vec::<T>() {
        Ok(mut v) => {
            v.clear();
            v
        }
        Err(_) => Vec::with_capacity(cap),
    }
}

/// The cells of one row, split by the fast path or by the `csv` crate.
enum Cells<'a> {
    Fast {
        line: &'a [u8],
        /// Starts of the first cells (see [`split_cells`]).
        bounds: &'a [u32],
        len: usize,
    },
    Slow(&'a csv::ByteRecord),
}

impl Cells<'_> {
    fn len(&self) -> usize {
        match self {
            Cells::Fast { len, .. } => *len,
            Cells::Slow(r) => r.len(),
        }
    }

    #[inline]
    fn get(&self, i: usize) -> Option<&[u8]> {
        match self {
            Cells::Fast { line, bounds, .. } => {
                let start = *bounds.get(i)? as usize;
                let end = (*bounds.get(i + 1)? as usize).checked_sub(1)?;
                line.get(start..end)
            }
            Cells::Slow(r) => r.get(i),
        }
    }
}

/// Records a warning about `file`, unless the file already had
/// [`MAX_WARNINGS_PER_FILE`] (`seen` counts them all).
pub(super) fn warn_at(
    file: &Path,
    seen: &mut usize,
    warnings: &mut Vec<InputWarning>,
    line: Option<usize>,
    kind: WarningKind,
) {
    *seen += 1;
    if *seen <= MAX_WARNINGS_PER_FILE {
        warnings.push(InputWarning::new(file, line, kind));
    }
}

/// The state of parsing one file, fed line by line.
struct FileParser<'a> {
    file: &'a Path,
    plan: &'a ColumnPlan,
    batch_rows: usize,
    builders: [KindBuilder; 3],
    header: Option<Header>,
    bounds: Vec<u32>,
    record: csv::ByteRecord,
    lineno: usize,
    warnings_seen: usize,
    /// No header at the top: the rest of the file is skipped.
    stopped: bool,
    summary: StatFileSummary,
}

impl<'a> FileParser<'a> {
    fn new(file: &'a Path, plan: &'a ColumnPlan, batch_rows: usize) -> Self {
        let batch_rows = batch_rows.max(1);
        FileParser {
            file,
            plan,
            batch_rows,
            builders: std::array::from_fn(|k| {
                KindBuilder::new(RowKind::ALL[k], plan.columns[k].len(), batch_rows)
            }),
            header: None,
            bounds: Vec::with_capacity(256),
            record: csv::ByteRecord::new(),
            lineno: 0,
            warnings_seen: 0,
            stopped: false,
            summary: StatFileSummary::default(),
        }
    }

    fn warn(&mut self, line: Option<usize>, kind: WarningKind, warnings: &mut Vec<InputWarning>) {
        warn_at(self.file, &mut self.warnings_seen, warnings, line, kind);
    }

    /// Hands every non-empty builder's rows to the sink.
    fn flush(&mut self, sink: &mut impl StatSink) {
        for b in &mut self.builders {
            b.emit(sink);
        }
    }

    /// Parses the complete lines of `text`; with `eof`, the text after the
    /// last newline is the (unterminated) last line. Returns the bytes
    /// consumed: everything up to and including the last newline, or all
    /// with `eof`.
    fn lines(
        &mut self,
        text: &[u8],
        eof: bool,
        warnings: &mut Vec<InputWarning>,
        sink: &mut impl StatSink,
    ) -> usize {
        let mut pos = 0usize;
        while pos < text.len() && !self.stopped {
            let rest = text.get(pos..).unwrap_or_default();
            let (raw, unterminated) = match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    pos += i + 1;
                    (rest.get(..i).unwrap_or_default(), false)
                }
                None if eof => {
                    pos = text.len();
                    (rest, true)
                }
                None => return pos,
            };
            self.lineno += 1;
            self.line(raw, unterminated, warnings, sink);
        }
        if eof { text.len() } else { pos }
    }

    /// Parses one line (without its `\n`).
    fn line(
        &mut self,
        raw: &[u8],
        unterminated: bool,
        warnings: &mut Vec<InputWarning>,
        sink: &mut impl StatSink,
    ) {
        let lineno = self.lineno;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.trim_ascii().is_empty() {
            return;
        }
        if line.first() == Some(&b'#') || self.header.is_none() {
            match Header::parse(line, self.plan) {
                Some(h) => {
                    if self.header.is_some() {
                        self.warn(Some(lineno), WarningKind::RepeatedHeader, warnings);
                    }
                    // A batch holds the rows of one header: which columns
                    // exist is a property of the batch.
                    self.flush(sink);
                    for (b, idx) in self.builders.iter_mut().zip(&h.idx) {
                        b.set_header(idx);
                    }
                    self.header = Some(h);
                    self.summary.usable = true;
                }
                None if self.header.is_none() => {
                    self.warn(Some(lineno), WarningKind::NoHeader, warnings);
                    self.stopped = true;
                }
                None => self.warn(Some(lineno), WarningKind::BadRow, warnings),
            }
            return;
        }
        let Some(h) = self.header.as_ref() else {
            return;
        };
        let (file, seen) = (self.file, &mut self.warnings_seen);
        let mut warn = |kind| warn_at(file, seen, warnings, Some(lineno), kind);
        let cells = if let Some((len, n)) = split_cells(line, &mut self.bounds, h.want) {
            Cells::Fast {
                line,
                bounds: self.bounds.get(..n).unwrap_or_default(),
                len,
            }
        } else {
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(line);
            match rdr.read_byte_record(&mut self.record) {
                Ok(true) => Cells::Slow(&self.record),
                _ => return warn(WarningKind::BadRow),
            }
        };
        if cells.len() != h.cells {
            return warn(if unterminated {
                WarningKind::TruncatedLine
            } else {
                WarningKind::CellCount {
                    expected: h.cells,
                    found: cells.len(),
                }
            });
        }
        let (Some(px), Some(sv)) = (cells.get(h.px), cells.get(h.sv)) else {
            return;
        };
        if px.is_empty() || sv.is_empty() {
            return warn(WarningKind::BadRow);
        }
        let Some(kind) = row_kind(sv, h.ty.map(|t| cells.get(t).map(parse_cell))) else {
            return; // listeners (type 3) and anything else
        };
        let k = kind as usize;
        let (Some(b), Some(idx), Some(names)) = (
            self.builders.get_mut(k),
            h.idx.get(k),
            self.plan.columns.get(k),
        ) else {
            return;
        };
        for &(c, i) in idx {
            let value = match &cells {
                Cells::Fast { line, bounds, .. } => fast_cell(line, bounds, i),
                Cells::Slow(_) => cells.get(i).map(parse_cell),
            };
            if let Some(kind) = b.push_cell(c, value, || cells.get(i).unwrap_or_default(), names) {
                warn(kind);
            }
        }
        self.summary.rows += 1;
        if b.end_row(sink.group(kind, px, sv), self.batch_rows) {
            b.emit(sink);
        }
    }

    /// Hands out the last rows; adds the `Suppressed` warning if needed.
    fn finish(
        mut self,
        warnings: &mut Vec<InputWarning>,
        sink: &mut impl StatSink,
    ) -> StatFileSummary {
        self.flush(sink);
        if self.warnings_seen > MAX_WARNINGS_PER_FILE {
            warnings.push(InputWarning::new(
                self.file,
                None,
                WarningKind::Suppressed(self.warnings_seen - MAX_WARNINGS_PER_FILE),
            ));
        }
        self.summary
    }
}

/// Parses one `show stat` file held in memory. Batches of at most
/// `batch_rows` rows are handed to `sink` as they fill; problems are
/// appended to `warnings`.
pub fn parse_stat(
    bytes: &[u8],
    file: &Path,
    plan: &ColumnPlan,
    batch_rows: usize,
    warnings: &mut Vec<InputWarning>,
    sink: &mut impl StatSink,
) -> StatFileSummary {
    parse_stat_reader(bytes, file, plan, batch_rows, warnings, sink)
}

/// Parses one `show stat` file from a reader, [`READ_CHUNK`] bytes at a
/// time (a line longer than that grows the buffer to hold it, up to
/// [`MAX_LINE`]: a longer line is skipped with a `BadRow` warning, so that
/// a file without line breaks is never held whole). A read error becomes an
/// `Unreadable` warning; the rows read before it count.
pub fn parse_stat_reader(
    mut reader: impl Read,
    file: &Path,
    plan: &ColumnPlan,
    batch_rows: usize,
    warnings: &mut Vec<InputWarning>,
    sink: &mut impl StatSink,
) -> StatFileSummary {
    let mut p = FileParser::new(file, plan, batch_rows);
    let mut buf = vec![0u8; READ_CHUNK];
    // `buf[..filled]` holds bytes read but not parsed yet (a partial line).
    let mut filled = 0usize;
    let mut total = 0usize;
    // In a line longer than MAX_LINE, until its end.
    let mut skipping = false;
    loop {
        if filled == buf.len() {
            if buf.len() >= MAX_LINE {
                p.lineno += 1;
                let line = Some(p.lineno);
                p.warn(line, WarningKind::BadRow, warnings);
                skipping = true;
                filled = 0;
            } else {
                buf.resize((buf.len() * 2).min(MAX_LINE), 0);
            }
        }
        let n = match reader.read(buf.get_mut(filled..).unwrap_or_default()) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                p.warn(None, WarningKind::Unreadable(e.to_string()), warnings);
                break;
            }
        };
        total += n;
        let eof = n == 0;
        if eof && total == 0 {
            p.warn(None, WarningKind::EmptyFile, warnings);
            return p.summary;
        }
        filled += n;
        if skipping {
            match memchr::memchr(b'\n', buf.get(..filled).unwrap_or_default()) {
                Some(i) => {
                    buf.copy_within(i + 1..filled, 0);
                    filled -= i + 1;
                    skipping = false;
                }
                None if eof => break,
                None => {
                    filled = 0;
                    continue;
                }
            }
        }
        let text = buf.get(..filled).unwrap_or_default();
        let used = p.lines(text, eof, warnings, sink);
        if eof || p.stopped {
            break;
        }
        buf.copy_within(used..filled, 0);
        filled -= used;
    }
    p.finish(warnings, sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn plan() -> ColumnPlan {
        ColumnPlan {
            columns: [
                vec!["scur", "bin"],
                vec!["lbtot", "qtime"],
                vec!["lbtot", "qtime", "weight"],
            ],
        }
    }

    /// Names each group `px` or `px/sv`, keeps the batches.
    #[derive(Default)]
    struct Collect {
        names: Vec<String>,
        ids: HashMap<String, u32>,
        batches: Vec<StatBatch>,
    }

    impl StatSink for Collect {
        fn group(&mut self, kind: RowKind, px: &[u8], sv: &[u8]) -> u32 {
            let mut name = String::from_utf8_lossy(px).into_owned();
            if kind == RowKind::Server {
                name = format!("{name}/{}", String::from_utf8_lossy(sv));
            }
            let next = self.names.len() as u32;
            *self.ids.entry(name.clone()).or_insert_with(|| {
                self.names.push(name);
                next
            })
        }
        fn batch(&mut self, batch: &StatBatch) {
            self.batches.push(batch.clone());
        }
    }

    impl Collect {
        fn names(&self, b: &StatBatch) -> Vec<&str> {
            b.group
                .values()
                .iter()
                .map(|&g| self.names[g as usize].as_str())
                .collect()
        }
    }

    fn parse(text: &[u8]) -> (Collect, Vec<InputWarning>, StatFileSummary) {
        let mut w = Vec::new();
        let mut out = Collect::default();
        let s = parse_stat(text, Path::new("f_stat"), &plan(), 2, &mut w, &mut out);
        // The streaming parser gives the same result, whatever the chunking.
        let mut w2 = Vec::new();
        let mut out2 = Collect::default();
        let s2 = parse_stat_reader(
            OneByteAtATime(text),
            Path::new("f_stat"),
            &plan(),
            2,
            &mut w2,
            &mut out2,
        );
        assert_eq!((s, &w), (s2, &w2));
        assert_eq!(out.names, out2.names);
        assert_eq!(out.batches.len(), out2.batches.len());
        for (a, b) in out.batches.iter().zip(&out2.batches) {
            assert_eq!(
                (a.kind, &a.group, &a.columns),
                (b.kind, &b.group, &b.columns)
            );
        }
        (out, w, s)
    }

    /// A reader returning one byte per call.
    struct OneByteAtATime<'a>(&'a [u8]);

    impl Read for OneByteAtATime<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((&b, rest)), Some(slot)) => {
                    *slot = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn col(b: &StatBatch, c: usize) -> Vec<i64> {
        b.columns[c].as_ref().unwrap().values().to_vec()
    }

    #[test]
    fn header_driven_rows_by_kind() {
        let text = b"\n# pxname,svname,bin,scur,type,lbtot,-,weight,\n\
fe.1,FRONTEND,10,1,0,,-,,\n\
be,s 1,5,2,2,3,-,7,\n\
be,BACKEND,1,1,1,9,-,,\n\
li,sock-1,1,1,3,,-,,\n\n";
        let (out, w, s) = parse(text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.rows, 3);
        let fe = out
            .batches
            .iter()
            .find(|b| b.kind == RowKind::Frontend)
            .unwrap();
        assert_eq!(out.names(fe), vec!["fe.1"], "raw names go to the sink");
        assert_eq!(col(fe, 0), vec![1]);
        assert_eq!(col(fe, 1), vec![10]);
        let srv = out
            .batches
            .iter()
            .find(|b| b.kind == RowKind::Server)
            .unwrap();
        assert_eq!(out.names(srv), vec!["be/s 1"]);
        assert_eq!(col(srv, 0), vec![3]);
        assert!(srv.columns[1].is_none(), "qtime is not in this header");
        assert_eq!(col(srv, 2), vec![7]);
        let be = out
            .batches
            .iter()
            .find(|b| b.kind == RowKind::Backend)
            .unwrap();
        assert_eq!(col(be, 1 - 1), vec![9]);
        assert!(!out.names.iter().any(|n| n.starts_with("li")));
    }

    #[test]
    fn quoted_cells_and_duplicate_headers() {
        let text = b"# pxname,svname,scur,scur,bin,type\n\"a,b\",FRONTEND,4,5,\"6\",0\n";
        let (out, w, _) = parse(text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(out.names(&out.batches[0]), vec!["a,b"]);
        assert_eq!(col(&out.batches[0], 0), vec![4]);
        assert_eq!(col(&out.batches[0], 1), vec![6]);
    }

    #[test]
    fn bad_rows_are_warned_and_skipped() {
        let text = b"# pxname,svname,scur,bin,type\nf,FRONTEND,x,1,0\nf,FRONTEND,1\ng,FRONTEND,2,2,0\nh,FRONT";
        let (out, w, s) = parse(text);
        assert_eq!(s.rows, 2);
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(w[0].line, Some(2));
        assert_eq!(
            w[0].kind,
            WarningKind::NotANumber {
                column: "scur".into()
            }
        );
        assert_eq!(
            w[1].kind,
            WarningKind::CellCount {
                expected: 5,
                found: 3
            }
        );
        assert_eq!(w[2].kind, WarningKind::TruncatedLine);
        assert_eq!(w[2].line, Some(5));
        // The non-numeric cell is treated as empty: 0.
        assert_eq!(col(&out.batches[0], 0), vec![0, 2]);
    }

    #[test]
    fn rows_leave_in_bounded_batches_one_header_each() {
        let text = b"# pxname,svname,scur,bin\na,FRONTEND,1,1\nb,FRONTEND,2,2\nc,FRONTEND,3,3\n\
# pxname,svname,bin\nd,FRONTEND,4\n";
        let (out, w, s) = parse(text);
        assert_eq!(s.rows, 4);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, WarningKind::RepeatedHeader);
        let sizes: Vec<usize> = out.batches.iter().map(StatBatch::len).collect();
        assert_eq!(sizes, vec![2, 1, 1]);
        assert_eq!(col(&out.batches[1], 0), vec![3]);
        assert!(out.batches[2].columns[0].is_none());
        assert_eq!(col(&out.batches[2], 1), vec![4]);
    }

    #[test]
    fn no_header_and_empty_file() {
        let (_, w, s) = parse(b"a,b,c\n1,2,3\n");
        assert!(!s.usable);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, WarningKind::NoHeader);
        let (_, w, s) = parse(b"");
        assert!(!s.usable);
        assert_eq!(w[0].kind, WarningKind::EmptyFile);
    }

    #[test]
    fn overlong_lines_are_skipped_without_holding_them() {
        // (Not through `parse`: one byte per read would take long.)
        let parse = |text: &[u8]| {
            let mut w = Vec::new();
            let mut out = Collect::default();
            let s = parse_stat(text, Path::new("f_stat"), &plan(), 2, &mut w, &mut out);
            (out, w, s)
        };
        let mut text = b"# pxname,svname,scur,bin\na,FRONTEND,1,1\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE + 5));
        text.extend_from_slice(b"\nb,FRONTEND,2,2\n");
        let (out, w, s) = parse(&text);
        assert_eq!(s.rows, 2);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].line, &w[0].kind), (Some(3), &WarningKind::BadRow));
        assert_eq!(out.names.len(), 2);
        // Unterminated: skipped too, and the file still counts.
        let mut text = b"# pxname,svname,scur,bin\na,FRONTEND,1,1\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
        let (_, w, s) = parse(&text);
        assert!(s.usable);
        assert_eq!(s.rows, 1);
        assert_eq!((w[0].line, &w[0].kind), (Some(3), &WarningKind::BadRow));
    }

    #[test]
    fn read_errors_are_warnings() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("boom"))
            }
        }
        let mut w = Vec::new();
        let s = parse_stat_reader(
            Failing,
            Path::new("f_stat"),
            &plan(),
            2,
            &mut w,
            &mut Collect::default(),
        );
        assert!(!s.usable);
        assert!(matches!(&w[0].kind, WarningKind::Unreadable(e) if e.contains("boom")));
    }
}
