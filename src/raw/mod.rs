//! Raw snapshots as Arrow IPC (SPEC §5 "Raw snapshots to Kafka", §7): the
//! codec the edge publishes with and the central consumer reads with. Pure
//! code: a snapshot directory in, message values out, and back.
//!
//! - [`encode`]: a snapshot directory (`<src-dir>/<ts>/`, files
//!   `<socket>_info` and `<socket>_stat`) → parts, each a complete Arrow IPC
//!   stream under a size limit, plus typed [`RawWarning`]s.
//! - [`decode`]: every part of a snapshot → per socket its name, `show info`
//!   pairs and record batches; any other input is a typed [`RawError`], never
//!   a panic.
//! - [`write_dir`]: a decoded snapshot → `<socket>_info` / `<socket>_stat`
//!   files that the engine (and `haproxystats replay`) reads into exactly the
//!   lines the original directory gives.
//!
//! # Wire format `arrow-ipc/1`
//!
//! A snapshot is sent as `parts` messages (the Kafka header `format` is
//! [`FORMAT`]). **Each part is one complete Arrow IPC stream** (the
//! *streaming* format: a Schema message, then DictionaryBatch and RecordBatch
//! messages, then the end-of-stream marker `0xFFFFFFFF 0x00000000`) that
//! `pyarrow.ipc.open_stream`, polars or DataFusion read as it is (metadata
//! version V5, buffers aligned to 8 bytes). Record batch and dictionary
//! buffers use the IPC format's own buffer compression, ZSTD or LZ4_FRAME, or
//! none ([`BufferCodec`]; a buffer that would not shrink is stored
//! uncompressed, length prefix `-1`, as the format allows); a reader reads
//! each whatever its own setting, and refuses a buffer claiming more than
//! [`MAX_COMPRESSION_RATIO`] times its compressed bytes before anything is
//! allocated for it. With buffer compression the Kafka topic itself should
//! not compress again. Every record
//! batch is preceded by the dictionary batches of its text columns
//! (replacing those before), so a batch never needs another part.
//!
//! A stream has one schema, and the schema carries the socket, so **a part
//! holds rows of one socket only**: a snapshot has at least one part per
//! socket, and a socket too big for one part spans several consecutive parts
//! (never splitting a record batch; a socket larger than the limit is cut
//! into several batches by rows). Parts are numbered `0..parts` in the order
//! they are meant to be read: sockets by name, then rows in file order.
//!
//! ## Columns
//!
//! One column per field of the `show stat` header line (`# pxname,svname,…`)
//! that the edge sends, in header order, named as in the header with white
//! space trimmed (names are kept as they are: a trailing comma gives a last
//! column named `""`, HAProxy 2.5's separator column is named `-`, a
//! duplicated name stays duplicated). **Which fields are sent is the edge's
//! choice** (`[kafka] snapshot-fields`, [`Fields`]); a reader finds columns
//! by name and must not expect any but `pxname` and `svname`:
//!
//! - `engine` (the default): every field the engine reads under any options
//!   (each metric of SPEC §4.2's frontend, backend and server lists, their
//!   means, `lbtot`, `type`) and the names and statuses
//!   ([`NAMES_AND_STATUSES`]: `pxname`, `svname`, `type`, `status`,
//!   `check_status`) — about half of HAProxy 2.6's fields. A central
//!   consumer gives the same lines from it as from `all`, whatever its own
//!   `*-metrics` options.
//! - `all`: every field of the header.
//!
//! Every column is nullable; **an empty cell is a null**. Types:
//!
//! - `Dictionary<Int32, Utf8>` (text) for the name and status fields
//!   [`TEXT_COLUMNS`] (`pxname`, `svname`, `status`, `check_status`, …)
//!   whatever they hold, and for any column with a non-empty cell that is not
//!   a canonical integer; cells are the CSV cells unquoted, as they were.
//! - `Int64` when every non-empty cell is a canonical decimal integer (`0`,
//!   or an optional `-` and digits without a leading zero: exactly how
//!   HAProxy writes numbers, so that writing a value back gives the same
//!   text) that fits in 64 signed bits.
//! - `UInt64` when every non-empty cell is such an integer, none is
//!   negative, and at least one is above `i64::MAX` (HAProxy's counters are
//!   unsigned 64-bit: such a value is kept, not clipped). Text when a column
//!   mixes negative numbers and values above `i64::MAX`, or holds a value
//!   above `u64::MAX`.
//!
//! The type of a column is decided over all rows of the socket (under one
//! header), so it is the same in every part of the socket; it may differ from
//! one snapshot to the next (a column of numbers that once holds text).
//! Rows are every data row of the file in order, listeners (`type` 3)
//! included; rows that are not valid CSV or do not have as many cells as the
//! header are left out, each with a warning (the engine skips them too).
//!
//! A socket whose `_stat` has no usable header (or is missing, empty or
//! unreadable) but whose `_info` exists is sent as a schema without fields
//! and no record batch. If a `_stat` file repeats its header line with other
//! fields, the rows after it are a new *segment* of the socket with its own
//! schema (a part holds one segment); segments are numbered from 0.
//!
//! ## Schema metadata (every part)
//!
//! | key | value |
//! |---|---|
//! | `haproxystats.format` | [`FORMAT`] (`arrow-ipc/1`) |
//! | `haproxystats.ts` | the snapshot timestamp (epoch seconds, the directory name) |
//! | `haproxystats.part` | this part's number, `0..parts` |
//! | `haproxystats.parts` | how many parts the snapshot has |
//! | `haproxystats.socket` | the socket name (the file name before `_info` / `_stat`) |
//! | `haproxystats.segment` | the header segment of the socket's `_stat`, from 0 |
//! | `haproxystats.batches` | how many record batches this part holds |
//! | `haproxystats.rows` | how many rows this part holds |
//! | `haproxystats.info` | present when the socket had a readable `_info`: its `Key: value` lines in file order, each ended by `\n` (the `show info` format itself: split a line at its first `": "`; repeated keys kept; values trimmed; lines without `": "` left out) |
//! | `haproxystats.haproxy_version` | the `Version` value of `show info`, when there is one |
//!
//! `batches` and `rows` let a reader tell a complete part from a truncated
//! one; `part`/`parts` let it tell a complete snapshot from a missing part.
//!
//! ## Size
//!
//! Each part is at most `max_message_bytes - `[`MESSAGE_MARGIN`] bytes: the
//! margin leaves room for the Kafka key, the headers and the record overhead,
//! which count against the same broker limit.
//!
//! ## What a round trip keeps
//!
//! [`write_dir`] writes a header line (of the fields sent) and the rows of
//! each segment, cells quoted only where needed (a `,`, `"`, CR or LF in a
//! cell, or a `#` starting a row), and the `show info` pairs as `Key: value` lines: the engine reads
//! the same cells and pairs, so `replay` of the written directory prints the
//! lines `replay` of the original prints (self metrics that measure time
//! aside). Not kept: rows the engine skips as broken, lines without `": "`
//! in `_info`, white space around `show info` values, and bytes that are not
//! UTF-8 (replaced by U+FFFD, with a warning); with `engine`, the fields the
//! engine never reads.

pub(crate) mod cells;
mod column;
mod decode;
mod encode;
mod input;
#[cfg(test)]
mod tests;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::config::codec::BufferCodec;
pub use crate::config::{Fields, NAMES_AND_STATUSES};
pub(crate) use decode::check_messages;
pub use decode::{
    Claims, DecodedSnapshot, DecodedSocket, Keep, MAX_COMPRESSION_RATIO, MAX_PART_RATIO,
    StatSegment, claims, decode, decode_columns,
};
pub(crate) use encode::write_options;
pub use encode::{EncodedSnapshot, encode, encode_fields, encode_with};
pub use write::write_dir;

/// The `format` header value and `haproxystats.format` metadata value.
pub const FORMAT: &str = "arrow-ipc/1";

/// Bytes of `max_message_bytes` a part leaves free: Kafka counts the key, the
/// headers (`lb`, `cluster`, `ts`, `interval`, `part`, `parts`, `format`: a
/// few hundred bytes with host and cluster names) and the record and batch
/// overhead (under 100 bytes) against the same limit as the value. 8 KiB
/// holds a key and headers of several KiB.
pub const MESSAGE_MARGIN: usize = 8 * 1024;

/// Fields sent as text whatever their cells hold (names and statuses).
pub const TEXT_COLUMNS: &[&str] = &[
    "pxname",
    "svname",
    "status",
    "check_status",
    "last_chk",
    "last_agt",
    "agent_status",
    "mode",
    "addr",
    "cookie",
    "algo",
    "check_desc",
    "agent_desc",
];

/// Schema metadata keys (see the module documentation).
pub mod keys {
    /// [`super::FORMAT`].
    pub const FORMAT: &str = "haproxystats.format";
    /// Snapshot timestamp.
    pub const TS: &str = "haproxystats.ts";
    /// This part's number.
    pub const PART: &str = "haproxystats.part";
    /// Number of parts of the snapshot.
    pub const PARTS: &str = "haproxystats.parts";
    /// Socket name.
    pub const SOCKET: &str = "haproxystats.socket";
    /// Header segment of the socket's `_stat`.
    pub const SEGMENT: &str = "haproxystats.segment";
    /// Record batches in this part.
    pub const BATCHES: &str = "haproxystats.batches";
    /// Rows in this part.
    pub const ROWS: &str = "haproxystats.rows";
    /// `show info` as `Key: value\n` lines.
    pub const INFO: &str = "haproxystats.info";
    /// `show info`'s `Version`.
    pub const VERSION: &str = "haproxystats.haproxy_version";
}

/// The end-of-stream marker of the IPC streaming format.
const EOS: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];

/// Everything that stops [`encode`], [`decode`] or [`write_dir`].
#[derive(Debug, thiserror::Error)]
pub enum RawError {
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
        /// The cause.
        source: std::io::Error,
    },
    /// No socket has a readable `_info` or a `_stat` with a header.
    #[error("snapshot {dir}: no readable _info and no _stat with a header")]
    Empty {
        /// The snapshot directory.
        dir: PathBuf,
    },
    /// `max_message_bytes` cannot hold a part with what must go in it.
    #[error(
        "max message bytes {limit} is too small: socket {socket} needs {needed} bytes for {what} (plus a margin of {MESSAGE_MARGIN})"
    )]
    LimitTooSmall {
        /// The limit given.
        limit: usize,
        /// The socket.
        socket: String,
        /// Bytes the smallest part of it needs, margin excluded.
        needed: usize,
        /// What does not fit (`its schema`, `one row`).
        what: &'static str,
    },
    /// Arrow refused to build or write a socket's data.
    #[error("socket {socket}: cannot encode: {source}")]
    Encode {
        /// The socket.
        socket: String,
        /// The cause.
        source: arrow::error::ArrowError,
    },
    /// No part was given to [`decode`].
    #[error("no part to decode")]
    NoParts,
    /// A part is not a readable Arrow IPC stream (garbage, truncated,
    /// trailing bytes, an unsupported compression).
    #[error("part {part}: not a valid Arrow IPC stream: {detail}")]
    Ipc {
        /// Index of the part in the input.
        part: usize,
        /// What is wrong.
        detail: String,
    },
    /// A part's schema metadata lacks a key or has a bad value.
    #[error("part {part}: schema metadata {key}: {detail}")]
    Metadata {
        /// Index of the part in the input.
        part: usize,
        /// The metadata key.
        key: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A part's columns are not what the format allows.
    #[error("part {part}: column {column:?}: {detail}")]
    Column {
        /// Index of the part in the input.
        part: usize,
        /// The column name.
        column: String,
        /// What is wrong.
        detail: String,
    },
    /// The parts do not make one whole snapshot.
    #[error("part {part}: {detail}")]
    Parts {
        /// Index of the part in the input.
        part: usize,
        /// What is wrong (missing, duplicated, another snapshot, out of order).
        detail: String,
    },
    /// Decoding a part panicked inside Arrow (caught; a bug to report).
    #[error("part {part}: the Arrow reader panicked on it")]
    Panic {
        /// Index of the part in the input.
        part: usize,
    },
    /// A socket name or `show info` pair cannot be written as a file.
    #[error("socket {socket:?}: cannot write: {detail}")]
    Unwritable {
        /// The socket.
        socket: String,
        /// Why.
        detail: String,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What [`encode`] found wrong in an input file and how it coped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawWarningKind {
    /// The file could not be read; it is not sent.
    Unreadable(String),
    /// A `_stat` file is empty.
    EmptyFile,
    /// A `_stat` file does not start with a header naming `pxname` and
    /// `svname`; its rows are not sent (the engine skips the file too).
    NoHeader,
    /// A header line again, with the same fields; rows go on.
    RepeatedHeader,
    /// A header line with other fields; the rows after it form a new segment.
    NewHeader {
        /// The segment the rows after it form.
        segment: usize,
    },
    /// A row with a different number of cells than the header; not sent.
    CellCount {
        /// Cells in the header.
        expected: usize,
        /// Cells in the row.
        found: usize,
    },
    /// The last line is unterminated and incomplete; not sent.
    TruncatedLine,
    /// A line that is not valid CSV (or a `#` line that is no header); not sent.
    BadRow,
    /// A line longer than the engine reads; not sent.
    LineTooLong,
    /// Bytes that are not UTF-8, sent replaced by U+FFFD.
    NotUtf8,
    /// A `show info` line whose key is not UTF-8; not sent.
    InfoKeyNotUtf8,
    /// More warnings of this file were left out.
    Suppressed(usize),
}

/// A problem in one input file that [`encode`] survived, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawWarning {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number, when the problem is on one line.
    pub line: Option<usize>,
    /// What was wrong.
    pub kind: RawWarningKind,
}

impl RawWarning {
    fn new(file: &Path, line: Option<usize>, kind: RawWarningKind) -> Self {
        RawWarning {
            file: file.to_path_buf(),
            line,
            kind,
        }
    }
}

impl fmt::Display for RawWarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "cannot read file: {e}; not sent"),
            Self::EmptyFile => f.write_str("empty file"),
            Self::NoHeader => f.write_str("no CSV header naming pxname and svname; rows not sent"),
            Self::RepeatedHeader => f.write_str("repeated header line; rows go on"),
            Self::NewHeader { segment } => {
                write!(
                    f,
                    "header line with other fields; rows after it are segment {segment}"
                )
            }
            Self::CellCount { expected, found } => {
                write!(
                    f,
                    "row has {found} cells, header has {expected}; row not sent"
                )
            }
            Self::TruncatedLine => f.write_str("truncated last line; row not sent"),
            Self::BadRow => f.write_str("line is not a valid CSV row; not sent"),
            Self::LineTooLong => f.write_str("line too long; not sent"),
            Self::NotUtf8 => f.write_str("bytes not UTF-8; sent replaced by U+FFFD"),
            Self::InfoKeyNotUtf8 => f.write_str("key not UTF-8; line not sent"),
            Self::Suppressed(n) => {
                write!(f, "{n} more warnings for this file suppressed")
            }
        }
    }
}

impl fmt::Display for RawWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.line.map(|l| format!(":{l}")).unwrap_or_default();
        write!(f, "{}{line}: {}", self.file.display(), self.kind)
    }
}

/// Reads the timestamp from a snapshot directory name (ASCII digits only).
fn timestamp_of(dir: &Path) -> Option<i64> {
    let name = dir.file_name()?.to_str()?;
    let digits = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| name.parse().ok()).flatten()
}
