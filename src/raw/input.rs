//! Reading a snapshot directory for [`super::encode`]: which sockets it has,
//! their `show info` pairs, and their `show stat` cells per header segment.
//!
//! Lines are taken as the engine takes them (`engine::parse_stat`): split at
//! LF, one trailing CR dropped, blank lines skipped, the first non-blank line
//! or any line starting with `#` read as a header (fields split at commas and
//! trimmed, `pxname` and `svname` required), a row without `"` split at
//! commas and a row with `"` read by the `csv` crate, a row kept only when it
//! has as many cells as the header. So every row sent is a row the engine
//! reads the same way, and every row it would refuse is reported here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::column::Column;
use super::{Fields, RawWarning, RawWarningKind};
use crate::stat_line::{MAX_LINE, split_cells};

/// Most warnings kept per file; the rest are counted in one `Suppressed`.
const MAX_WARNINGS_PER_FILE: usize = 20;

/// The files of one socket.
#[derive(Debug, Default)]
pub(super) struct SocketFiles {
    pub name: String,
    pub info: Option<PathBuf>,
    pub stat: Option<PathBuf>,
}

/// Lists the sockets of a snapshot directory, by name: every `<name>_info`
/// and `<name>_stat` (hidden and non-UTF-8 names skipped, as the engine does).
pub(super) fn list_sockets(dir: &Path) -> std::io::Result<Vec<SocketFiles>> {
    let mut sockets: BTreeMap<String, SocketFiles> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let (name, is_info) = if let Some(name) = file_name.strip_suffix("_info") {
            (name, true)
        } else if let Some(name) = file_name.strip_suffix("_stat") {
            (name, false)
        } else {
            continue;
        };
        let socket = sockets
            .entry(name.to_owned())
            .or_insert_with(|| SocketFiles {
                name: name.to_owned(),
                ..SocketFiles::default()
            });
        let slot = if is_info {
            &mut socket.info
        } else {
            &mut socket.stat
        };
        *slot = Some(entry.path());
    }
    Ok(sockets.into_values().collect())
}

/// Warnings of one file, at most [`MAX_WARNINGS_PER_FILE`] kept.
pub(super) struct FileWarnings<'a> {
    file: &'a Path,
    seen: usize,
    out: &'a mut Vec<RawWarning>,
}

impl<'a> FileWarnings<'a> {
    pub fn new(file: &'a Path, out: &'a mut Vec<RawWarning>) -> Self {
        FileWarnings { file, seen: 0, out }
    }

    pub fn warn(&mut self, line: Option<usize>, kind: RawWarningKind) {
        self.seen += 1;
        if self.seen <= MAX_WARNINGS_PER_FILE {
            self.out.push(RawWarning::new(self.file, line, kind));
        }
    }
}

impl Drop for FileWarnings<'_> {
    fn drop(&mut self) {
        if self.seen > MAX_WARNINGS_PER_FILE {
            let left_out = self.seen - MAX_WARNINGS_PER_FILE;
            let kind = RawWarningKind::Suppressed(left_out);
            self.out.push(RawWarning::new(self.file, None, kind));
        }
    }
}

/// Reads a whole file; a failure is a warning and `None`.
pub(super) fn read_file(path: &Path, warnings: &mut Vec<RawWarning>) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            let kind = RawWarningKind::Unreadable(e.to_string());
            warnings.push(RawWarning::new(path, None, kind));
            None
        }
    }
}

/// The `Key: value` pairs of a `show info` output, in file order, repeated
/// keys kept: each line split at its first `": "`, the value trimmed of
/// ASCII white space. Lines without `": "` are left out silently (the engine
/// ignores them too); a key that is not UTF-8 is left out with a warning (the
/// engine ignores it), a value that is not UTF-8 is replaced, with a warning.
pub(super) fn parse_info(bytes: &[u8], w: &mut FileWarnings<'_>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let Some(pos) = raw.windows(2).position(|w| w == b": ") else {
            continue;
        };
        let (key, rest) = raw.split_at(pos);
        let value = rest.get(2..).unwrap_or_default().trim_ascii();
        let Ok(key) = std::str::from_utf8(key) else {
            w.warn(Some(i + 1), RawWarningKind::InfoKeyNotUtf8);
            continue;
        };
        pairs.push((key.to_owned(), utf8_or_warn(value, Some(i + 1), w)));
    }
    pairs
}

/// The text of `bytes`, replaced (with a warning) where it is not UTF-8.
fn utf8_or_warn(bytes: &[u8], line: Option<usize>, w: &mut FileWarnings<'_>) -> String {
    let text = String::from_utf8_lossy(bytes);
    if matches!(text, std::borrow::Cow::Owned(_)) {
        w.warn(line, RawWarningKind::NotUtf8);
    }
    text.into_owned()
}

/// The rows of a `_stat` file under one header line, column by column.
pub(super) struct Segment {
    /// Every field name of the header, trimmed: what tells a repeated
    /// header from a new one.
    header: Vec<String>,
    /// The names of the fields sent, in header order.
    pub names: Vec<String>,
    /// The header index of each field sent, ascending.
    keep: Vec<usize>,
    /// One per name sent, typed as its cells come.
    pub columns: Vec<Column>,
    /// Per row, the bytes of its line: what batch sizes are estimated from.
    pub line_bytes: Vec<usize>,
}

impl Segment {
    fn new(header: Vec<String>, fields: Fields) -> Self {
        let keep: Vec<usize> = (0..header.len())
            .filter(|&i| header.get(i).is_some_and(|name| fields.keeps(name)))
            .collect();
        let names: Vec<String> = keep
            .iter()
            .filter_map(|&i| header.get(i).cloned())
            .collect();
        Segment {
            columns: names.iter().map(|name| Column::new(name)).collect(),
            names,
            keep,
            header,
            line_bytes: Vec::new(),
        }
    }

    /// Cell starts [`split_cells`] must locate: one past the last field
    /// sent, plus one (the cells after it are only counted).
    fn wanted_bounds(&self) -> usize {
        self.keep.last().map_or(1, |&last| last + 2)
    }

    /// Number of rows.
    #[cfg(test)]
    pub fn rows(&self) -> usize {
        self.line_bytes.len()
    }

    /// Cell `col` (of the fields sent) of row `row` (`""` out of range).
    #[cfg(test)]
    pub fn cell(&self, row: usize, col: usize) -> String {
        self.columns
            .get(col)
            .map_or_else(String::new, |c| c.cell(row))
    }

    /// Adds one row, of as many cells as the header has: `cell(i)` is the
    /// header's field `i`, asked only of the fields sent.
    fn push_row<'c>(
        &mut self,
        cell: impl Fn(usize) -> &'c [u8],
        line_bytes: usize,
        lineno: usize,
        w: &mut FileWarnings<'_>,
    ) {
        let mut replaced = false;
        for (column, &i) in self.columns.iter_mut().zip(&self.keep) {
            replaced |= column.push(cell(i));
        }
        if replaced {
            w.warn(Some(lineno), RawWarningKind::NotUtf8);
        }
        self.line_bytes.push(line_bytes);
    }
}

/// Whether a row has the header's number of cells; if not, a warning.
fn cell_count_ok(
    expected: usize,
    found: usize,
    unterminated: bool,
    lineno: usize,
    w: &mut FileWarnings<'_>,
) -> bool {
    if found != expected {
        let kind = if unterminated {
            RawWarningKind::TruncatedLine
        } else {
            RawWarningKind::CellCount { expected, found }
        };
        w.warn(Some(lineno), kind);
    }
    found == expected
}

/// Cell `i` of `line` from the starts of its cells and the end mark that
/// [`split_cells`] wrote (each cell ends a byte before the next starts).
fn cell_at<'a>(line: &'a [u8], starts: &[u32], i: usize) -> &'a [u8] {
    let (Some(&start), Some(&next)) = (starts.get(i), starts.get(i + 1)) else {
        return &[];
    };
    line.get(start as usize..(next as usize).saturating_sub(1))
        .unwrap_or_default()
}

/// A header line's field names (`#` dropped, split at commas, trimmed), if
/// it names `pxname` and `svname` (the engine's rule).
fn header(line: &[u8], lineno: usize, w: &mut FileWarnings<'_>) -> Option<Vec<String>> {
    let line = line.strip_prefix(b"#").unwrap_or(line);
    let names: Vec<&[u8]> = line.split(|&b| b == b',').map(<[u8]>::trim_ascii).collect();
    let has = |name: &[u8]| names.contains(&name);
    if !has(b"pxname") || !has(b"svname") {
        return None;
    }
    let names = names
        .iter()
        .map(|n| String::from_utf8_lossy(n))
        .collect::<Vec<_>>();
    if names
        .iter()
        .any(|n| matches!(n, std::borrow::Cow::Owned(_)))
    {
        w.warn(Some(lineno), RawWarningKind::NotUtf8);
    }
    Some(names.into_iter().map(|n| n.into_owned()).collect())
}

/// Splits a `show stat` file into header segments of rows, each holding
/// the columns of `fields`. A file without a header at the top gives no
/// segment (`NoHeader`).
pub(super) fn parse_stat(bytes: &[u8], fields: Fields, w: &mut FileWarnings<'_>) -> Vec<Segment> {
    if bytes.is_empty() {
        w.warn(None, RawWarningKind::EmptyFile);
        return Vec::new();
    }
    let mut segments: Vec<Segment> = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut bounds: Vec<u32> = Vec::new();
    let mut rest = bytes;
    let mut lineno = 0usize;
    while !rest.is_empty() {
        let (raw, unterminated) = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let raw = rest.get(..i).unwrap_or_default();
                rest = rest.get(i + 1..).unwrap_or_default();
                (raw, false)
            }
            None => (std::mem::take(&mut rest), true),
        };
        lineno += 1;
        if raw.len() >= MAX_LINE {
            w.warn(Some(lineno), RawWarningKind::LineTooLong);
            continue;
        }
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.trim_ascii().is_empty() {
            continue;
        }
        if line.first() == Some(&b'#') || segments.is_empty() {
            match (header(line, lineno, w), segments.last()) {
                (Some(names), None) => segments.push(Segment::new(names, fields)),
                (Some(names), Some(last)) if last.header == names => {
                    w.warn(Some(lineno), RawWarningKind::RepeatedHeader);
                }
                (Some(names), Some(_)) => {
                    let segment = segments.len();
                    w.warn(Some(lineno), RawWarningKind::NewHeader { segment });
                    segments.push(Segment::new(names, fields));
                }
                (None, None) => {
                    w.warn(Some(lineno), RawWarningKind::NoHeader);
                    return segments;
                }
                (None, Some(_)) => w.warn(Some(lineno), RawWarningKind::BadRow),
            }
            continue;
        }
        let Some(segment) = segments.last_mut() else {
            continue;
        };
        let expected = segment.header.len();
        let line_bytes = raw.len() + 1;
        let counted = |found: usize, w: &mut FileWarnings<'_>| {
            cell_count_ok(expected, found, unterminated, lineno, w)
        };
        // As the engine: commas found 64 bytes at a time, a line with a `"`
        // read by the csv crate (its first record). Only the cells sent are
        // located; the others are counted. Each branch pushes its own
        // closure, so that the cells are not a dynamic call each.
        if let Some((found, n)) = split_cells(line, &mut bounds, segment.wanted_bounds()) {
            if counted(found, w) {
                let starts = bounds.get(..n).unwrap_or_default();
                segment.push_row(|i| cell_at(line, starts, i), line_bytes, lineno, w);
            }
            continue;
        }
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(line);
        if !matches!(rdr.read_byte_record(&mut record), Ok(true)) {
            w.warn(Some(lineno), RawWarningKind::BadRow);
        } else if counted(record.len(), w) {
            segment.push_row(|i| record.get(i).unwrap_or_default(), line_bytes, lineno, w);
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<Segment>, Vec<String>) {
        let mut out = Vec::new();
        let segments = {
            let mut w = FileWarnings::new(Path::new("s_stat"), &mut out);
            parse_stat(text.as_bytes(), Fields::All, &mut w)
        };
        (segments, out.iter().map(ToString::to_string).collect())
    }

    fn row(s: &Segment, r: usize) -> Vec<String> {
        (0..s.names.len()).map(|c| s.cell(r, c)).collect()
    }

    #[test]
    fn rows_are_cells_as_the_engine_reads_them() {
        let text = "\n# pxname, svname ,bin,\r\n\
                    a,FRONTEND,1,\n\
                    \"b,c\",\"x \"\"y\"\"\",2,\n\
                    bad,row\n\
                    d,e,3,\n\
                    # nothing\n\
                    f,g,4";
        let (segs, warns) = parse(text);
        assert_eq!(segs.len(), 1);
        let s = &segs[0];
        assert_eq!(s.names, ["pxname", "svname", "bin", ""]);
        assert_eq!(s.rows(), 3);
        assert_eq!(row(s, 0), ["a", "FRONTEND", "1", ""]);
        assert_eq!(row(s, 1), ["b,c", "x \"y\"", "2", ""]);
        assert_eq!(row(s, 2), ["d", "e", "3", ""]);
        assert_eq!(
            warns,
            [
                "s_stat:5: row has 2 cells, header has 4; row not sent",
                "s_stat:7: line is not a valid CSV row; not sent",
                "s_stat:8: truncated last line; row not sent",
            ]
        );
    }

    #[test]
    fn engine_fields_take_their_cells_and_still_count_every_cell() {
        let text = "# pxname,svname,pid,bin,iid\n\
                    a,FRONTEND,1,10,2\n\
                    \"b,c\",BACKEND,\"x,y\",20,3\n\
                    d,BACKEND,1,30\n\
                    e,BACKEND,1,40,5,6\n";
        let mut out = Vec::new();
        let segs = {
            let mut w = FileWarnings::new(Path::new("s_stat"), &mut out);
            parse_stat(text.as_bytes(), Fields::Engine, &mut w)
        };
        let s = &segs[0];
        assert_eq!(s.names, ["pxname", "svname", "bin"]);
        assert_eq!(s.rows(), 2);
        assert_eq!(row(s, 0), ["a", "FRONTEND", "10"]);
        assert_eq!(row(s, 1), ["b,c", "BACKEND", "20"]);
        let kinds: Vec<&RawWarningKind> = out.iter().map(|w| &w.kind).collect();
        assert_eq!(
            kinds,
            [
                &RawWarningKind::CellCount {
                    expected: 5,
                    found: 4
                },
                &RawWarningKind::CellCount {
                    expected: 5,
                    found: 6
                },
            ]
        );
    }

    #[test]
    fn headers_start_segments() {
        let text = "# pxname,svname,a\np,s,1\n# pxname,svname,a\np,t,2\n\
                    # svname,pxname\nu,q\n";
        let (segs, warns) = parse(text);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].rows(), 2);
        assert_eq!(row(&segs[1], 0), ["u", "q"]);
        assert_eq!(
            warns,
            [
                "s_stat:3: repeated header line; rows go on",
                "s_stat:5: header line with other fields; rows after it are segment 1",
            ]
        );
    }

    #[test]
    fn no_header_no_rows_and_bytes_replaced() {
        let (segs, warns) = parse("a,b\n# pxname,svname\n");
        assert!(segs.is_empty());
        assert_eq!(
            warns,
            ["s_stat:1: no CSV header naming pxname and svname; rows not sent"]
        );
        let mut out = Vec::new();
        let segs = {
            let mut w = FileWarnings::new(Path::new("s_stat"), &mut out);
            parse_stat(b"# pxname,svname\nx\xff,y\n", Fields::All, &mut w)
        };
        assert_eq!(segs[0].cell(0, 0), "x\u{fffd}");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, RawWarningKind::NotUtf8);
    }

    #[test]
    fn warnings_are_bounded_per_file() {
        let text = format!("# pxname,svname\n{}", "x\n".repeat(30));
        let (_, warns) = parse(&text);
        assert_eq!(warns.len(), MAX_WARNINGS_PER_FILE + 1);
        assert_eq!(
            warns.last().unwrap(),
            "s_stat: 10 more warnings for this file suppressed"
        );
    }

    #[test]
    fn info_pairs_keep_order_and_repeats() {
        let mut out = Vec::new();
        let pairs = {
            let mut w = FileWarnings::new(Path::new("s_info"), &mut out);
            parse_info(
                b"Name: HAProxy\nVersion: 2.7.1\r\nno pair\nUnstoppable Jobs:  1 \n\
                  Nbproc: 1\nNbproc: 2\n\xff: 3\n: 4\n",
                &mut w,
            )
        };
        let want = [
            ("Name", "HAProxy"),
            ("Version", "2.7.1"),
            ("Unstoppable Jobs", "1"),
            ("Nbproc", "1"),
            ("Nbproc", "2"),
            ("", "4"),
        ];
        let got: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(got, want);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to_string(), "s_info:7: key not UTF-8; line not sent");
    }
}
