//! `show stat` parsing: header-driven CSV → Arrow arrays of only the columns
//! the engine needs, one batch per row kind (frontend, backend, server).
//!
//! The header names the columns, so every layout from HAProxy 1.5 (33
//! columns) to 3.x works: unknown columns are ignored, missing ones are
//! absent, a duplicated name keeps its first position, `-` and `(null)` are
//! ignored. Common lines (no `"`) are split on bytes and only the needed cells
//! are parsed; a line containing `"` goes through the `csv` crate.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, Int64Builder, StringArray, StringBuilder};

use super::format::{is_clean, sanitize_name};
use super::warning::{InputWarning, WarningKind};

/// Most warnings kept per file; the rest are counted in one `Suppressed`.
const MAX_WARNINGS_PER_FILE: usize = 20;

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

/// Rows of one kind from one file: names and the needed numeric columns.
#[derive(Debug, Clone)]
pub struct StatBatch {
    /// Which kind all rows are.
    pub kind: RowKind,
    /// Sanitised `pxname`.
    pub pxname: StringArray,
    /// Sanitised `svname`.
    pub svname: StringArray,
    /// One array per column of the plan for this kind; `None` when the
    /// file's header has no such column. Empty cells are null.
    pub columns: Vec<Option<Arc<Int64Array>>>,
}

impl StatBatch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.pxname.len()
    }

    /// `true` when the batch has no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
    px: usize,
    sv: usize,
    ty: Option<usize>,
    /// Per kind, per planned column: the cell index.
    idx: [Vec<Option<usize>>; 3],
}

impl Header {
    /// Reads a header line (`# pxname,svname,...`); `None` without pxname/svname.
    fn parse(line: &[u8], plan: &ColumnPlan) -> Option<Header> {
        let line = line.strip_prefix(b"#").unwrap_or(line);
        let names: Vec<&[u8]> = line.split(|&b| b == b',').map(|c| c.trim_ascii()).collect();
        let find = |name: &str| names.iter().position(|n| *n == name.as_bytes());
        let px = find("pxname")?;
        let sv = find("svname")?;
        let idx = std::array::from_fn(|k| plan.columns[k].iter().map(|c| find(c)).collect());
        Some(Header {
            cells: names.len(),
            px,
            sv,
            ty: find("type"),
            idx,
        })
    }
}

/// Accumulates rows of one kind into Arrow builders.
struct KindBuilder {
    kind: RowKind,
    px: StringBuilder,
    sv: StringBuilder,
    cols: Vec<Int64Builder>,
    present: Vec<bool>,
    rows: usize,
}

impl KindBuilder {
    fn new(kind: RowKind, ncols: usize, cap: usize) -> Self {
        KindBuilder {
            kind,
            px: StringBuilder::with_capacity(cap, cap * 16),
            sv: StringBuilder::with_capacity(cap, cap * 16),
            cols: (0..ncols)
                .map(|_| Int64Builder::with_capacity(cap))
                .collect(),
            present: vec![false; ncols],
            rows: 0,
        }
    }

    fn finish(&mut self) -> Option<StatBatch> {
        if self.rows == 0 {
            return None;
        }
        self.rows = 0;
        let columns = self
            .cols
            .iter_mut()
            .zip(&mut self.present)
            .map(|(b, p)| {
                let arr = b.finish();
                std::mem::take(p).then(|| Arc::new(arr))
            })
            .collect();
        Some(StatBatch {
            kind: self.kind,
            pxname: self.px.finish(),
            svname: self.sv.finish(),
            columns,
        })
    }
}

/// The cells of one row, split by the fast path or by the `csv` crate.
enum Cells<'a> {
    Fast { line: &'a [u8], bounds: &'a [u32] },
    Slow(&'a csv::ByteRecord),
}

impl Cells<'_> {
    fn len(&self) -> usize {
        match self {
            Cells::Fast { bounds, .. } => bounds.len().saturating_sub(1),
            Cells::Slow(r) => r.len(),
        }
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        match self {
            Cells::Fast { line, bounds } => {
                let start = *bounds.get(i)? as usize;
                let end = (*bounds.get(i + 1)? as usize).checked_sub(1)?;
                line.get(start..end)
            }
            Cells::Slow(r) => r.get(i),
        }
    }
}

/// Splits an unquoted line on commas: `bounds[..n]` gets the start of every
/// cell plus `line.len() + 1`; returns `n`. Commas are dense and irregular,
/// so eight bytes are tested at once (SWAR) and only the hits are visited.
fn split_cells(line: &[u8], bounds: &mut Vec<u32>) -> usize {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    const COMMAS: u64 = 0x2c2c_2c2c_2c2c_2c2c;
    bounds.clear();
    bounds.push(0);
    let mut chunks = line.chunks_exact(8);
    let mut base = 0u32;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ COMMAS;
        // High bit of each byte set exactly where the byte of x is zero.
        let mut hits = !(((x & LO7).wrapping_add(LO7)) | x) & HI;
        while hits != 0 {
            bounds.push(base + hits.trailing_zeros() / 8 + 1);
            hits &= hits - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == b',' {
            bounds.push(base + i as u32 + 1);
        }
    }
    bounds.push(line.len() as u32 + 1);
    bounds.len()
}

/// Parses an integer cell. `Ok(None)` for an empty cell, `Err` when the
/// cell is not an integer.
fn parse_cell(cell: &[u8]) -> Result<Option<i64>, ()> {
    let (neg, digits) = match cell.first() {
        None => return Ok(None),
        Some(b'-') => (true, cell.get(1..).unwrap_or_default()),
        _ => (false, cell),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(());
    }
    let mut v: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(());
        }
        v = v
            .checked_mul(10)
            .ok_or(())?
            .checked_add(i64::from(d))
            .ok_or(())?;
    }
    Ok(Some(if neg { -v } else { v }))
}

/// Appends a name to a string builder, sanitised.
fn append_name(b: &mut StringBuilder, cell: &[u8]) {
    match std::str::from_utf8(cell) {
        Ok(s) if is_clean(s) => b.append_value(s),
        Ok(s) => b.append_value(sanitize_name(s)),
        Err(_) => b.append_value(sanitize_name(&String::from_utf8_lossy(cell))),
    }
}

/// Parses one `show stat` file. Batches of at most `batch_rows` rows are
/// handed to `sink` as they fill; problems are appended to `warnings`.
pub fn parse_stat(
    bytes: &[u8],
    file: &Path,
    plan: &ColumnPlan,
    batch_rows: usize,
    warnings: &mut Vec<InputWarning>,
    mut sink: impl FnMut(StatBatch),
) -> StatFileSummary {
    let batch_rows = batch_rows.max(1);
    let mut summary = StatFileSummary::default();
    let mut local_warnings = 0usize;
    let mut warn = |line: Option<usize>, kind: WarningKind, warnings: &mut Vec<InputWarning>| {
        local_warnings += 1;
        if local_warnings <= MAX_WARNINGS_PER_FILE {
            warnings.push(InputWarning::new(file, line, kind));
        }
    };
    if bytes.is_empty() {
        warn(None, WarningKind::EmptyFile, warnings);
        return summary;
    }
    let mut builders: [KindBuilder; 3] = std::array::from_fn(|k| {
        KindBuilder::new(RowKind::ALL[k], plan.columns[k].len(), batch_rows)
    });
    let mut header: Option<Header> = None;
    let mut bounds: Vec<u32> = Vec::with_capacity(1024);
    let mut record = csv::ByteRecord::new();
    let ends_with_newline = bytes.last() == Some(&b'\n');
    let mut lineno = 0usize;
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = bytes.get(pos..).unwrap_or_default();
        let (raw, is_last) = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                pos += i + 1;
                (rest.get(..i).unwrap_or_default(), pos >= bytes.len())
            }
            None => {
                pos = bytes.len();
                (rest, true)
            }
        };
        lineno += 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.trim_ascii().is_empty() {
            continue;
        }
        if line.first() == Some(&b'#') || header.is_none() {
            match Header::parse(line, plan) {
                Some(h) => {
                    if header.is_some() {
                        warn(Some(lineno), WarningKind::RepeatedHeader, warnings);
                        // A batch holds the rows of one header: which
                        // columns exist is a property of the batch.
                        for b in &mut builders {
                            if let Some(batch) = b.finish() {
                                sink(batch);
                            }
                        }
                    }
                    header = Some(h);
                    summary.usable = true;
                }
                None if header.is_none() => {
                    warn(Some(lineno), WarningKind::NoHeader, warnings);
                    break;
                }
                None => warn(Some(lineno), WarningKind::BadRow, warnings),
            }
            continue;
        }
        let Some(h) = header.as_ref() else { continue };
        let cells = if memchr::memchr(b'"', line).is_some() {
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(line);
            match rdr.read_byte_record(&mut record) {
                Ok(true) => Cells::Slow(&record),
                _ => {
                    warn(Some(lineno), WarningKind::BadRow, warnings);
                    continue;
                }
            }
        } else {
            let n = split_cells(line, &mut bounds);
            Cells::Fast {
                line,
                bounds: bounds.get(..n).unwrap_or_default(),
            }
        };
        if cells.len() != h.cells {
            let kind = if is_last && !ends_with_newline {
                WarningKind::TruncatedLine
            } else {
                WarningKind::CellCount {
                    expected: h.cells,
                    found: cells.len(),
                }
            };
            warn(Some(lineno), kind, warnings);
            continue;
        }
        let (Some(px), Some(sv)) = (cells.get(h.px), cells.get(h.sv)) else {
            continue;
        };
        if px.is_empty() || sv.is_empty() {
            warn(Some(lineno), WarningKind::BadRow, warnings);
            continue;
        }
        let kind = if sv == b"FRONTEND" {
            RowKind::Frontend
        } else if sv == b"BACKEND" {
            RowKind::Backend
        } else {
            match h.ty.map(|t| cells.get(t).map(parse_cell)) {
                Some(Some(Ok(Some(2)))) | None => RowKind::Server,
                _ => continue, // listeners (type 3) and anything else
            }
        };
        let k = kind as usize;
        let (Some(b), Some(idx), Some(names)) =
            (builders.get_mut(k), h.idx.get(k), plan.columns.get(k))
        else {
            continue;
        };
        append_name(&mut b.px, px);
        append_name(&mut b.sv, sv);
        for (c, (col, name)) in idx.iter().zip(names).enumerate() {
            let (Some(builder), Some(present)) = (b.cols.get_mut(c), b.present.get_mut(c)) else {
                continue;
            };
            match col.and_then(|i| cells.get(i)) {
                None => builder.append_null(),
                Some(cell) => {
                    *present = true;
                    match parse_cell(cell) {
                        Ok(v) => builder.append_option(v),
                        Err(()) => {
                            builder.append_null();
                            warn(
                                Some(lineno),
                                WarningKind::NotANumber {
                                    column: (*name).to_string(),
                                },
                                warnings,
                            );
                        }
                    }
                }
            }
        }
        b.rows += 1;
        summary.rows += 1;
        if b.rows >= batch_rows
            && let Some(batch) = b.finish()
        {
            sink(batch);
        }
    }
    for b in &mut builders {
        if let Some(batch) = b.finish() {
            sink(batch);
        }
    }
    if local_warnings > MAX_WARNINGS_PER_FILE {
        warnings.push(InputWarning::new(
            file,
            None,
            WarningKind::Suppressed(local_warnings - MAX_WARNINGS_PER_FILE),
        ));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ColumnPlan {
        ColumnPlan {
            columns: [
                vec!["scur", "bin"],
                vec!["lbtot", "qtime"],
                vec!["lbtot", "qtime", "weight"],
            ],
        }
    }

    fn parse(text: &[u8]) -> (Vec<StatBatch>, Vec<InputWarning>, StatFileSummary) {
        let mut w = Vec::new();
        let mut out = Vec::new();
        let s = parse_stat(text, Path::new("f_stat"), &plan(), 2, &mut w, |b| {
            out.push(b)
        });
        (out, w, s)
    }

    fn col(b: &StatBatch, c: usize) -> Vec<Option<i64>> {
        b.columns[c].as_ref().unwrap().iter().collect()
    }

    #[test]
    fn header_driven_rows_by_kind() {
        let text = b"\n# pxname,svname,bin,scur,type,lbtot,-,weight,\n\
fe.1,FRONTEND,10,1,0,,-,,\n\
be,s 1,5,2,2,3,-,7,\n\
be,BACKEND,1,1,1,9,-,,\n\
li,sock-1,1,1,3,,-,,\n\n";
        let (batches, w, s) = parse(text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.rows, 3);
        let fe = batches
            .iter()
            .find(|b| b.kind == RowKind::Frontend)
            .unwrap();
        assert_eq!(fe.pxname.value(0), "fe_1");
        assert_eq!(col(fe, 0), vec![Some(1)]);
        assert_eq!(col(fe, 1), vec![Some(10)]);
        let srv = batches.iter().find(|b| b.kind == RowKind::Server).unwrap();
        assert_eq!(srv.svname.value(0), "s_1");
        assert_eq!(col(srv, 0), vec![Some(3)]);
        assert!(srv.columns[1].is_none(), "qtime is not in this header");
        assert_eq!(col(srv, 2), vec![Some(7)]);
    }

    #[test]
    fn quoted_cells_and_duplicate_headers() {
        let text = b"# pxname,svname,scur,scur,bin,type\n\"a,b\",FRONTEND,4,5,\"6\",0\n";
        let (batches, w, _) = parse(text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(batches[0].pxname.value(0), "a,b");
        assert_eq!(col(&batches[0], 0), vec![Some(4)]);
        assert_eq!(col(&batches[0], 1), vec![Some(6)]);
    }

    #[test]
    fn bad_rows_are_warned_and_skipped() {
        let text = b"# pxname,svname,scur,bin,type\nf,FRONTEND,x,1,0\nf,FRONTEND,1\ng,FRONTEND,2,2,0\nh,FRONT";
        let (batches, w, s) = parse(text);
        assert_eq!(s.rows, 2);
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(w[0].line, Some(2));
        assert!(matches!(w[0].kind, WarningKind::NotANumber { .. }));
        assert!(matches!(
            w[1].kind,
            WarningKind::CellCount {
                expected: 5,
                found: 3
            }
        ));
        assert_eq!(w[2].kind, WarningKind::TruncatedLine);
        assert_eq!(col(&batches[0], 0), vec![None, Some(2)]);
    }

    #[test]
    fn no_header_and_empty_file() {
        let (_, w, s) = parse(b"a,b,c\n1,2,3\n");
        assert!(!s.usable);
        assert_eq!(w[0].kind, WarningKind::NoHeader);
        let (_, w, s) = parse(b"");
        assert!(!s.usable);
        assert_eq!(w[0].kind, WarningKind::EmptyFile);
    }

    #[test]
    fn split_on_commas() {
        let mut b = Vec::new();
        let n = split_cells(b"a,,bc,", &mut b);
        assert_eq!(&b[..n], &[0, 2, 3, 6, 7]);
        let n = split_cells(b"", &mut b);
        assert_eq!(&b[..n], &[0, 1]);
        let line = b"0123456,89,,,,,,,,,,,,,,,,,,,,,abcdefgh,ijklmno,,p";
        let n = split_cells(line, &mut b);
        let mut want = vec![0u32];
        want.extend(
            line.iter()
                .enumerate()
                .filter(|(_, c)| **c == b',')
                .map(|(i, _)| i as u32 + 1),
        );
        want.push(line.len() as u32 + 1);
        assert_eq!(&b[..n], &want[..]);
    }

    #[test]
    fn cells() {
        assert_eq!(parse_cell(b""), Ok(None));
        assert_eq!(parse_cell(b"-1"), Ok(Some(-1)));
        assert_eq!(parse_cell(b"-"), Err(()));
        assert_eq!(parse_cell(b"1.5"), Err(()));
        assert_eq!(parse_cell(b"99999999999999999999"), Err(()));
    }
}
