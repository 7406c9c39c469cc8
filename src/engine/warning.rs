//! [`InputWarning`]: a problem in one input file that the engine survived.

use std::fmt;
use std::path::{Path, PathBuf};

/// What was wrong with the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// The file could not be read.
    Unreadable(String),
    /// The file is empty.
    EmptyFile,
    /// A `_stat` file has no header line naming `pxname` and `svname`.
    NoHeader,
    /// A second header line appeared; the new one is used from here on.
    RepeatedHeader,
    /// A row has a different number of cells than the header; it is skipped.
    CellCount {
        /// Cells in the header.
        expected: usize,
        /// Cells in the row.
        found: usize,
    },
    /// The last line has no line terminator and is incomplete; it is skipped.
    TruncatedLine,
    /// A cell of a numeric column is not an integer; it is treated as empty.
    NotANumber {
        /// Column name.
        column: String,
    },
    /// A cell of a numeric column is an integer above `u64::MAX`, more than
    /// any HAProxy counter holds; it is treated as empty.
    TooLarge {
        /// Column name.
        column: String,
    },
    /// A sum does not fit in 128 bits (it cannot happen with counters of
    /// 64 bits in fewer than 2^63 rows); it is not sent.
    SumTooLarge {
        /// `frontend`, `backend` or `server`.
        kind: &'static str,
        /// The group (sanitised name; `backend/server` for a server).
        group: String,
        /// The metric.
        metric: &'static str,
    },
    /// A row could not be parsed as CSV (bad quoting or encoding); skipped.
    BadRow,
    /// A `_info` file has no integer `Key: Value` line.
    NoInfoValues,
    /// More warnings of this file were left out.
    Suppressed(usize),
}

/// A problem in one input file, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputWarning {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number, when the problem is on one line.
    pub line: Option<usize>,
    /// What was wrong.
    pub kind: WarningKind,
}

impl InputWarning {
    /// A warning about `file` (at `line`, if known).
    pub fn new(file: &Path, line: Option<usize>, kind: WarningKind) -> Self {
        InputWarning {
            file: file.to_path_buf(),
            line,
            kind,
        }
    }
}

impl fmt::Display for InputWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        match &self.kind {
            WarningKind::Unreadable(e) => write!(f, "cannot read file: {e}"),
            WarningKind::EmptyFile => f.write_str("empty file"),
            WarningKind::NoHeader => {
                f.write_str("no CSV header naming pxname and svname; file skipped")
            }
            WarningKind::RepeatedHeader => {
                f.write_str("repeated header line; using it from here on")
            }
            WarningKind::CellCount { expected, found } => {
                write!(
                    f,
                    "row has {found} cells, header has {expected}; row skipped"
                )
            }
            WarningKind::TruncatedLine => f.write_str("truncated last line; row skipped"),
            WarningKind::NotANumber { column } => {
                write!(
                    f,
                    "cell of column {column} is not an integer; treated as empty"
                )
            }
            WarningKind::TooLarge { column } => write!(
                f,
                "cell of column {column} is larger than 18446744073709551615; treated as empty"
            ),
            WarningKind::SumTooLarge {
                kind,
                group,
                metric,
            } => write!(
                f,
                "sum of {metric} for {kind} {group} does not fit in 128 bits; not sent"
            ),
            WarningKind::BadRow => f.write_str("row is not valid CSV; row skipped"),
            WarningKind::NoInfoValues => f.write_str("no integer `Key: Value` line; file skipped"),
            WarningKind::Suppressed(n) => write!(f, "{n} more warnings for this file suppressed"),
        }
    }
}
