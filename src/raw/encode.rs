//! [`encode`]: a snapshot directory → parts (see the module documentation
//! of [`crate::raw`] for the format).
//!
//! Per socket and header segment: each column's type is decided over all its
//! rows; rows then go into record batches, each sized to fill what is left
//! of the current part (from the ratio of encoded to CSV bytes of the batch
//! before, shrunk in proportion until it fits), so that a part usually holds
//! one big batch (each batch costs about 150 bytes per column however few
//! its rows). Each batch is encoded once, alone, its dictionaries with it,
//! so that it is whole in any part; a part is then its own schema message
//! (with its metadata), its batches and the end-of-stream marker.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_ipc::{CompressionType, MetadataVersion};

use super::column::{ColumnKind, Finished};
use super::input::{FileWarnings, list_sockets, parse_info, parse_stat, read_file};
use super::{EOS, FORMAT, Fields, MESSAGE_MARGIN, RawError, RawWarning, keys};
use crate::config::codec::BufferCodec;

/// Most rows in one record batch.
const MAX_BATCH_ROWS: usize = 32 * 1024;

/// First guess of encoded bytes per CSV byte (learnt from each batch).
const FIRST_RATIO: f64 = 0.25;

/// Share of the room left that a batch is sized for (estimates err).
const SLACK: f64 = 0.9;

/// A snapshot encoded as parts.
#[derive(Debug, Clone)]
pub struct EncodedSnapshot {
    /// The snapshot timestamp (directory name).
    pub ts: i64,
    /// The message values, part 0 first: each a complete Arrow IPC stream.
    pub parts: Vec<Vec<u8>>,
    /// Problems in the input files that were survived.
    pub warnings: Vec<RawWarning>,
    /// Bytes of `_info` and `_stat` files read.
    pub input_bytes: usize,
}

/// The write options of every part: buffers compressed with `codec`.
pub(crate) fn write_options(codec: BufferCodec) -> Result<IpcWriteOptions, ArrowError> {
    let opts = IpcWriteOptions::try_new(8, false, MetadataVersion::V5)?;
    match codec {
        BufferCodec::Zstd(level) => opts
            .try_with_compression(Some(CompressionType::ZSTD))?
            .try_with_compression_level(Some(level)),
        BufferCodec::Lz4Frame => opts.try_with_compression(Some(CompressionType::LZ4_FRAME)),
        BufferCodec::None => Ok(opts),
    }
}

/// The schema message of a stream of `schema`.
fn schema_bytes(schema: &Schema, opts: &IpcWriteOptions) -> Result<Vec<u8>, ArrowError> {
    let writer = StreamWriter::try_new_with_options(Vec::new(), schema, opts.clone())?;
    Ok(writer.get_ref().clone())
}

/// The messages of one batch alone (its dictionaries, then the batch), as
/// they follow the schema message in a stream.
fn batch_bytes(batch: &RecordBatch, opts: &IpcWriteOptions) -> Result<Vec<u8>, ArrowError> {
    let mut writer =
        StreamWriter::try_new_with_options(Vec::new(), batch.schema_ref(), opts.clone())?;
    let start = writer.get_ref().len();
    writer.write(batch)?;
    Ok(writer.get_ref().get(start..).unwrap_or_default().to_vec())
}

/// A record batch, encoded.
struct EncodedBatch {
    rows: usize,
    bytes: Vec<u8>,
}

/// One socket's header segment, its batches encoded.
struct SegmentPlan {
    socket: usize,
    segment: usize,
    /// Fields only; metadata is per part.
    schema: SchemaRef,
    /// The batches of each part (one part without batches for no rows).
    parts: Vec<Vec<EncodedBatch>>,
}

/// What every part of a socket says about it.
struct SocketMeta {
    name: String,
    info: Option<String>,
    version: Option<String>,
}

/// Sizes: the limit given and what a part may use.
struct Budget {
    limit: usize,
    part: usize,
}

impl Budget {
    fn too_small(&self, socket: &str, needed: usize, what: &'static str) -> RawError {
        RawError::LimitTooSmall {
            limit: self.limit,
            socket: socket.to_owned(),
            needed,
            what,
        }
    }
}

/// The schema metadata of one part.
struct PartMeta {
    part: usize,
    parts: usize,
    batches: usize,
    rows: usize,
}

fn metadata(ts: i64, socket: &SocketMeta, segment: usize, p: &PartMeta) -> HashMap<String, String> {
    let mut m = HashMap::from([
        (keys::FORMAT.to_owned(), FORMAT.to_owned()),
        (keys::TS.to_owned(), ts.to_string()),
        (keys::PART.to_owned(), p.part.to_string()),
        (keys::PARTS.to_owned(), p.parts.to_string()),
        (keys::SOCKET.to_owned(), socket.name.clone()),
        (keys::SEGMENT.to_owned(), segment.to_string()),
        (keys::BATCHES.to_owned(), p.batches.to_string()),
        (keys::ROWS.to_owned(), p.rows.to_string()),
    ]);
    if let Some(info) = &socket.info {
        m.insert(keys::INFO.to_owned(), info.clone());
    }
    if let Some(version) = &socket.version {
        m.insert(keys::VERSION.to_owned(), version.clone());
    }
    m
}

/// The largest schema message any part of this segment can have: its
/// numbers written with the most digits they can have.
fn schema_bound(
    ts: i64,
    socket: &SocketMeta,
    segment: usize,
    schema: &Schema,
    opts: &IpcWriteOptions,
) -> Result<usize, ArrowError> {
    let widest = PartMeta {
        part: usize::MAX,
        parts: usize::MAX,
        batches: usize::MAX,
        rows: usize::MAX,
    };
    let schema = schema
        .clone()
        .with_metadata(metadata(ts, socket, segment, &widest));
    Ok(schema_bytes(&schema, opts)?.len())
}

/// Rows of a segment and the bytes of their lines.
struct Rows {
    /// `line_end[i]`: bytes of the lines of rows `0..i`.
    line_end: Vec<usize>,
}

impl Rows {
    fn new(line_bytes: &[usize]) -> Self {
        let mut line_end = Vec::with_capacity(line_bytes.len() + 1);
        let mut end = 0;
        line_end.push(end);
        for &b in line_bytes {
            end += b;
            line_end.push(end);
        }
        Rows { line_end }
    }

    /// Number of rows.
    fn len(&self) -> usize {
        self.line_end.len() - 1
    }

    fn at(&self, i: usize) -> usize {
        self.line_end.get(i).copied().unwrap_or(0)
    }

    /// The most rows from `start` whose lines hold at most `bytes` (one at
    /// least, [`MAX_BATCH_ROWS`] at most).
    fn fitting(&self, start: usize, bytes: f64) -> Range<usize> {
        let want = self.at(start).saturating_add(bytes as usize);
        let end = self
            .line_end
            .partition_point(|&e| e <= want)
            .saturating_sub(1);
        let last = self.len().min(start + MAX_BATCH_ROWS);
        start..end.clamp(start + 1, last)
    }
}

/// Cuts a segment's rows into parts of encoded batches, each part holding
/// at most `room` bytes of batches. A batch is sized to fill what is left of
/// its part (from the ratio of encoded to CSV bytes of the batch before),
/// and shrunk in proportion until it fits; a part with less than an eighth
/// left is closed first. `Err` with the bytes of one row alone when even
/// that does not fit.
fn encode_rows(
    all: &Rows,
    schema: &SchemaRef,
    columns: &[Finished],
    room: usize,
    opts: &IpcWriteOptions,
) -> Result<Result<Vec<Vec<EncodedBatch>>, usize>, ArrowError> {
    let encode = |rows: &Range<usize>| -> Result<Vec<u8>, ArrowError> {
        let columns = columns.iter().map(|c| c.rows(rows.clone())).collect();
        batch_bytes(&RecordBatch::try_new(schema.clone(), columns)?, opts)
    };
    let mut parts = Vec::new();
    let mut part: Vec<EncodedBatch> = Vec::new();
    let mut left = room;
    let mut ratio = FIRST_RATIO;
    let mut start = 0;
    while start < all.len() {
        if !part.is_empty() && left < room / 8 {
            parts.push(std::mem::take(&mut part));
            left = room;
        }
        let mut rows = all.fitting(start, SLACK * left as f64 / ratio);
        let bytes = loop {
            let bytes = encode(&rows)?;
            if bytes.len() <= left {
                break bytes;
            }
            let fewer = (rows.len() as f64 * SLACK * left as f64 / bytes.len() as f64) as usize;
            if fewer > 0 && rows.len() > 1 {
                rows.end = rows.start + fewer.min(rows.len() - 1);
                continue;
            }
            // Not even one row fits what is left: a new part, if this
            // one has batches.
            if part.is_empty() {
                return Ok(Err(bytes.len()));
            }
            parts.push(std::mem::take(&mut part));
            left = room;
            if bytes.len() <= left {
                break bytes;
            }
        };
        let csv = all.at(rows.end).saturating_sub(all.at(rows.start)).max(1);
        ratio = (bytes.len() as f64 / csv as f64).max(1e-3);
        left -= bytes.len();
        start = rows.end;
        part.push(EncodedBatch {
            rows: rows.len(),
            bytes,
        });
    }
    parts.push(part);
    Ok(Ok(parts))
}

/// [`encode_with`] with every column of the header ([`Fields::All`]) and
/// [`BufferCodec::SNAPSHOTS_DEFAULT`].
pub fn encode(dir: &Path, max_message_bytes: usize) -> Result<EncodedSnapshot, RawError> {
    encode_with(
        dir,
        max_message_bytes,
        Fields::All,
        BufferCodec::SNAPSHOTS_DEFAULT,
    )
}

/// [`encode_with`] with [`BufferCodec::SNAPSHOTS_DEFAULT`].
pub fn encode_fields(
    dir: &Path,
    max_message_bytes: usize,
    fields: Fields,
) -> Result<EncodedSnapshot, RawError> {
    encode_with(
        dir,
        max_message_bytes,
        fields,
        BufferCodec::SNAPSHOTS_DEFAULT,
    )
}

/// Encodes the snapshot directory `dir` as parts of at most
/// `max_message_bytes - `[`MESSAGE_MARGIN`] bytes each, with the columns
/// `fields` keeps, every buffer compressed with `codec` (see the module
/// documentation of [`crate::raw`]).
///
/// Input problems become warnings; only a bad directory name, an unlistable
/// directory, a snapshot with nothing to send or a limit too small for a
/// socket's schema or for one row is an error.
pub fn encode_with(
    dir: &Path,
    max_message_bytes: usize,
    fields: Fields,
    codec: BufferCodec,
) -> Result<EncodedSnapshot, RawError> {
    let ts = super::timestamp_of(dir).ok_or_else(|| RawError::BadTimestamp {
        dir: dir.to_path_buf(),
    })?;
    let sockets = list_sockets(dir).map_err(|source| RawError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let budget = Budget {
        limit: max_message_bytes,
        part: max_message_bytes.saturating_sub(MESSAGE_MARGIN),
    };
    let opts = write_options(codec).map_err(|source| RawError::Encode {
        socket: String::new(),
        source,
    })?;
    let mut warnings = Vec::new();
    let mut input_bytes = 0;
    let mut metas: Vec<SocketMeta> = Vec::new();
    let mut plans: Vec<SegmentPlan> = Vec::new();
    for files in sockets {
        let info = files.info.as_deref().and_then(|path| {
            let bytes = read_file(path, &mut warnings)?;
            input_bytes += bytes.len();
            Some(parse_info(
                &bytes,
                &mut FileWarnings::new(path, &mut warnings),
            ))
        });
        let segments = files.stat.as_deref().map_or_else(Vec::new, |path| {
            let Some(bytes) = read_file(path, &mut warnings) else {
                return Vec::new();
            };
            input_bytes += bytes.len();
            parse_stat(&bytes, fields, &mut FileWarnings::new(path, &mut warnings))
        });
        if info.is_none() && segments.is_empty() {
            continue;
        }
        let meta = SocketMeta {
            version: info.as_ref().and_then(|pairs| {
                let (_, v) = pairs.iter().find(|(k, _)| k == "Version")?;
                Some(v.clone())
            }),
            info: info.map(|pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}\n"))
                    .collect::<String>()
            }),
            name: files.name,
        };
        let socket = metas.len();
        let err = |source| RawError::Encode {
            socket: meta.name.clone(),
            source,
        };
        if segments.is_empty() {
            // Info alone: a schema without fields and no batch.
            let schema = Arc::new(Schema::empty());
            let bound = schema_bound(ts, &meta, 0, &schema, &opts).map_err(err)?;
            if bound + EOS.len() > budget.part {
                return Err(budget.too_small(&meta.name, bound + EOS.len(), "its schema"));
            }
            plans.push(SegmentPlan {
                socket,
                segment: 0,
                schema,
                parts: vec![Vec::new()],
            });
        }
        for (segment, seg) in segments.into_iter().enumerate() {
            let kinds: Vec<ColumnKind> = seg.columns.iter().map(|c| c.kind()).collect();
            let fields: Vec<Field> = seg
                .names
                .iter()
                .zip(&kinds)
                .map(|(name, kind)| Field::new(name, kind.data_type(), true))
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let bound = schema_bound(ts, &meta, segment, &schema, &opts).map_err(err)?;
            let Some(room) = budget
                .part
                .checked_sub(bound + EOS.len())
                .filter(|&r| r > 0)
            else {
                return Err(budget.too_small(&meta.name, bound + EOS.len(), "its schema"));
            };
            let rows = Rows::new(&seg.line_bytes);
            let columns: Vec<Finished> = seg.columns.into_iter().map(|c| c.finish()).collect();
            let parts = match encode_rows(&rows, &schema, &columns, room, &opts).map_err(err)? {
                Ok(parts) => parts,
                Err(row) => {
                    return Err(budget.too_small(&meta.name, bound + EOS.len() + row, "one row"));
                }
            };
            plans.push(SegmentPlan {
                socket,
                segment,
                schema,
                parts,
            });
        }
        metas.push(meta);
    }
    if plans.is_empty() {
        return Err(RawError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    let parts = assemble(ts, &metas, &plans, &budget, &opts)?;
    Ok(EncodedSnapshot {
        ts,
        parts,
        warnings,
        input_bytes,
    })
}

/// Makes the parts, in order: each a schema message with its metadata, its
/// batches and the end-of-stream marker.
fn assemble(
    ts: i64,
    metas: &[SocketMeta],
    plans: &[SegmentPlan],
    budget: &Budget,
    opts: &IpcWriteOptions,
) -> Result<Vec<Vec<u8>>, RawError> {
    let layout: Vec<(&SegmentPlan, &[EncodedBatch])> = plans
        .iter()
        .flat_map(|plan| plan.parts.iter().map(move |p| (plan, p.as_slice())))
        .collect();
    let parts = layout.len();
    let mut out = Vec::with_capacity(parts);
    for (part, (plan, batches)) in layout.into_iter().enumerate() {
        let Some(meta) = metas.get(plan.socket) else {
            continue;
        };
        let p = PartMeta {
            part,
            parts,
            batches: batches.len(),
            rows: batches.iter().map(|b| b.rows).sum(),
        };
        let schema =
            plan.schema
                .as_ref()
                .clone()
                .with_metadata(metadata(ts, meta, plan.segment, &p));
        let mut bytes = schema_bytes(&schema, opts).map_err(|e| encode_error(meta, e))?;
        for batch in batches {
            bytes.extend_from_slice(&batch.bytes);
        }
        bytes.extend_from_slice(&EOS);
        debug_assert!(bytes.len() <= budget.part, "part {part}: {}", bytes.len());
        out.push(bytes);
    }
    Ok(out)
}

fn encode_error(meta: &SocketMeta, source: ArrowError) -> RawError {
    RawError::Encode {
        socket: meta.name.clone(),
        source,
    }
}
