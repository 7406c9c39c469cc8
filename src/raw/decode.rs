//! [`decode`]: every part of a snapshot → its sockets (see the module
//! documentation of [`crate::raw`] for the format).
//!
//! Each part is walked first (whole messages up to the end-of-stream marker
//! and nothing after it, every buffer inside its message body, ZSTD, LZ4_FRAME
//! or no compression: what arrow's reader would otherwise panic on; claims
//! within fixed ratios of the compressed bytes: what it would otherwise
//! allocate blindly), then read
//! alone by arrow's stream reader (which verifies the flatbuffers and
//! validates every array), then checked against its own metadata: as many
//! batches and rows as it says, columns of the three allowed types with
//! `pxname` and `svname`. The parts are then put in order and must make one
//! snapshot: the same `ts` and `parts`, every number once, a socket's parts
//! together, its segments in order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use arrow::datatypes::{DataType, Metadata as SchemaMetadata, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_ipc::reader::StreamReader;

use super::{FORMAT, RawError, keys};

/// A decoded snapshot.
#[derive(Debug, Clone)]
pub struct DecodedSnapshot {
    /// The snapshot timestamp.
    pub ts: i64,
    /// Its sockets, in part order (by name, as encoded).
    pub sockets: Vec<DecodedSocket>,
}

/// One socket of a decoded snapshot.
#[derive(Debug, Clone)]
pub struct DecodedSocket {
    /// The socket name (the file name before `_info` / `_stat`).
    pub name: String,
    /// The `show info` pairs in file order (repeated keys kept); `None`
    /// when the snapshot had no readable `_info` for the socket.
    pub info: Option<Vec<(String, String)>>,
    /// `show info`'s `Version`, if any.
    pub version: Option<String>,
    /// The `show stat` rows per header segment (usually one); empty when the
    /// snapshot had no usable `_stat` for the socket.
    pub segments: Vec<StatSegment>,
}

impl DecodedSocket {
    /// Every record batch of the socket, segment after segment.
    pub fn batches(&self) -> impl Iterator<Item = &RecordBatch> {
        self.segments.iter().flat_map(|s| s.batches.iter())
    }

    /// The value of the first `show info` pair named `key`.
    pub fn info_value(&self, key: &str) -> Option<&str> {
        let pairs = self.info.as_ref()?;
        let (_, v) = pairs.iter().find(|(k, _)| k == key)?;
        Some(v)
    }
}

/// The rows under one `show stat` header line.
#[derive(Debug, Clone)]
pub struct StatSegment {
    /// One field per header field (no metadata).
    pub schema: SchemaRef,
    /// The rows, in file order; every batch has `schema`.
    pub batches: Vec<RecordBatch>,
}

impl StatSegment {
    /// The header fields, in order.
    pub fn field_names(&self) -> Vec<&str> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// One part, read and checked alone.
struct Part {
    ts: i64,
    number: usize,
    parts: usize,
    socket: String,
    segment: usize,
    info: Option<Vec<(String, String)>>,
    version: Option<String>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

/// The schema metadata of part `part`.
struct Metadata<'a> {
    part: usize,
    map: &'a SchemaMetadata,
}

impl Metadata<'_> {
    fn error(&self, key: &'static str, detail: impl Into<String>) -> RawError {
        RawError::Metadata {
            part: self.part,
            key,
            detail: detail.into(),
        }
    }

    fn text(&self, key: &'static str) -> Result<&str, RawError> {
        self.map
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| self.error(key, "missing"))
    }

    fn number<T: std::str::FromStr>(&self, key: &'static str) -> Result<T, RawError> {
        let text = self.text(key)?;
        text.parse()
            .map_err(|_| self.error(key, format!("not a number: {text:?}")))
    }
}

/// `Key: value\n` lines → pairs.
fn info_pairs(md: &Metadata<'_>, text: &str) -> Result<Vec<(String, String)>, RawError> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split('\n')
        .map(|line| {
            let (k, v) = line
                .split_once(": ")
                .ok_or_else(|| md.error(keys::INFO, format!("line without \": \": {line:?}")))?;
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// A socket name that is a plain file name prefix (no `/`, NUL, leading `.`).
pub(super) fn valid_socket_name(name: &str) -> bool {
    !name.contains(['/', '\0']) && !name.starts_with('.')
}

/// Checks the columns: the three types the format allows, and `pxname` and
/// `svname` unless there is no field at all (a socket with info alone).
fn check_columns(part: usize, schema: &Schema) -> Result<(), RawError> {
    let text = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    for field in schema.fields() {
        let ok = matches!(field.data_type(), DataType::Int64 | DataType::UInt64)
            || *field.data_type() == text;
        if !ok {
            return Err(RawError::Column {
                part,
                column: field.name().clone(),
                detail: format!("type {} is not in the format", field.data_type()),
            });
        }
    }
    if !schema.fields().is_empty() {
        for name in ["pxname", "svname"] {
            if schema.field_with_name(name).is_err() {
                return Err(RawError::Column {
                    part,
                    column: name.to_owned(),
                    detail: "missing".to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Most bytes a compressed buffer may say it holds (what is allocated
/// for it before decompressing).
const MAX_BUFFER_BYTES: i64 = 1 << 30;

/// Most uncompressed bytes a compressed buffer may claim per byte of its
/// compressed data. Both decompressors allocate what a buffer claims before
/// reading it, so a crafted buffer of 20 bytes claiming a GiB would be
/// allocated; the claim is refused first. Real buffers stay far below: on
/// the bench snapshot (8 × 1000/1000/20) the highest is 3,402 with zstd
/// (raw parts; 2,667 in partials) and 223 with LZ4; on an idle snapshot
/// (2 × 2000 backends of 20 servers, no traffic) 10,667 with zstd and 250
/// with LZ4 (BENCHMARKS.md, "Buffer codecs"). Neither format can reach 2^16
/// at all: a zstd block of at most 128 KiB costs at least 4 bytes (32,768),
/// an LZ4 sequence at least one byte per 255.
pub const MAX_COMPRESSION_RATIO: i64 = 1 << 16;

/// Most uncompressed bytes the buffers of a part may claim in all, per byte
/// of the part: what one part can make the reader allocate (a GiB for a
/// part of 1 MB, what one buffer alone could claim before the ratios).
/// Parts reach 4.3 on the bench snapshot and 59 on the idle one
/// (`snapshot-fields = all`; a row's names do not compress away).
pub const MAX_PART_RATIO: u64 = 1024;

/// What the buffers of a part claim once decompressed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Claims {
    /// Bytes of every buffer, decompressed.
    pub bytes: u64,
    /// The highest ratio of one compressed buffer's claim to its
    /// compressed bytes (0 without compressed buffers).
    pub largest_ratio: f64,
}

/// Reads a little-endian `u32` at `at`.
fn word(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// The element width of each buffer of a record batch of `schema` (whose
/// types [`check_columns`] allowed): validity (bits), then values (8 bytes)
/// or dictionary keys (4 bytes) per field.
fn batch_widths(schema: &Schema) -> Vec<usize> {
    schema
        .fields()
        .iter()
        .flat_map(|f| {
            [
                1,
                if matches!(f.data_type(), DataType::Dictionary(..)) {
                    4
                } else {
                    8
                },
            ]
        })
        .collect()
}

/// The element width of each buffer of a dictionary batch (Utf8 values):
/// validity, offsets, bytes.
const DICTIONARY_WIDTHS: [usize; 3] = [1, 4, 1];

/// Checks the buffers of a record or dictionary batch against its body:
/// each inside it, compressed with ZSTD or LZ4_FRAME if at all, claiming at
/// most [`MAX_BUFFER_BYTES`] and [`MAX_COMPRESSION_RATIO`] times its
/// compressed bytes once decompressed, and a whole number of elements of
/// its width (arrow 60 panics on a buffer that is not); adds what they
/// claim to `claims`.
fn check_buffers(
    batch: arrow_ipc::RecordBatch<'_>,
    body: &[u8],
    widths: &[usize],
    claims: &mut Claims,
) -> Result<(), String> {
    let compressed = match batch.compression() {
        Some(c)
            if c.codec() != arrow_ipc::CompressionType::ZSTD
                && c.codec() != arrow_ipc::CompressionType::LZ4_FRAME =>
        {
            return Err(format!(
                "compression {:?} is neither ZSTD nor LZ4_FRAME",
                c.codec()
            ));
        }
        c => c.is_some(),
    };
    for (i, buffer) in batch.buffers().iter().flatten().enumerate() {
        let range = usize::try_from(buffer.offset())
            .ok()
            .zip(usize::try_from(buffer.length()).ok())
            .and_then(|(start, len)| Some(start..start.checked_add(len)?));
        let Some(data) = range.and_then(|r| body.get(r)) else {
            return Err(format!("buffer {i} lies outside its message body"));
        };
        let claimed = data
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_le_bytes);
        let packed = data.len().saturating_sub(8) as i64;
        let len = match claimed {
            _ if !compressed || data.is_empty() => data.len() as i64,
            Some(-1) => packed,
            Some(n) if n > MAX_BUFFER_BYTES => {
                return Err(format!(
                    "buffer {i} claims more than {MAX_BUFFER_BYTES} bytes"
                ));
            }
            Some(n) if n > packed.saturating_mul(MAX_COMPRESSION_RATIO) => {
                return Err(format!(
                    "buffer {i} claims {n} bytes from {packed}, more than {MAX_COMPRESSION_RATIO} times"
                ));
            }
            Some(n) => {
                if n > 0 {
                    let ratio = n as f64 / packed as f64;
                    claims.largest_ratio = claims.largest_ratio.max(ratio);
                }
                n
            }
            None => 0,
        };
        claims.bytes = claims.bytes.saturating_add(len.unsigned_abs());
        let width = widths.get(i).copied().unwrap_or(1) as i64;
        if len % width != 0 {
            return Err(format!(
                "buffer {i} of {len} bytes holds no whole {width}-byte values"
            ));
        }
    }
    Ok(())
}

/// Walks the messages of a stream before arrow reads its batches: whole
/// messages up to the end-of-stream marker, nothing after it, and buffers
/// arrow can read without panicking or allocating blindly
/// ([`check_buffers`]), claiming at most [`MAX_PART_RATIO`] times the
/// stream's bytes in all.
pub(crate) fn check_messages(bytes: &[u8], schema: &Schema) -> Result<Claims, String> {
    let truncated = |what: &str| format!("truncated: {what} cut at byte {}", bytes.len());
    let widths = batch_widths(schema);
    let mut claims = Claims::default();
    let most = (bytes.len() as u64).saturating_mul(MAX_PART_RATIO);
    let mut pos = 0usize;
    loop {
        let mut len = word(bytes, pos).ok_or_else(|| truncated("no end-of-stream marker;"))?;
        pos += 4;
        if len == u32::MAX {
            len = word(bytes, pos).ok_or_else(|| truncated("a message length"))?;
            pos += 4;
        }
        if len == 0 {
            let after = bytes.len().saturating_sub(pos);
            return match after {
                0 => Ok(claims),
                n => Err(format!("{n} bytes after the end of the stream")),
            };
        }
        let len = usize::try_from(i32::from_le_bytes(len.to_le_bytes()))
            .map_err(|_| format!("negative message length at byte {}", pos - 4))?;
        let meta = bytes
            .get(pos..pos.saturating_add(len))
            .ok_or_else(|| truncated("a message"))?;
        let message = arrow_ipc::root_as_message(meta)
            .map_err(|e| format!("bad message at byte {pos}: {e}"))?;
        pos += len;
        let body_len = usize::try_from(message.bodyLength())
            .map_err(|_| format!("negative body length at byte {pos}"))?;
        let body = bytes
            .get(pos..pos.saturating_add(body_len))
            .ok_or_else(|| truncated("a message body"))?;
        pos += body_len;
        if let Some(batch) = message.header_as_record_batch() {
            check_buffers(batch, body, &widths, &mut claims)?;
        } else if let Some(batch) = message.header_as_dictionary_batch().and_then(|d| d.data()) {
            check_buffers(batch, body, &DICTIONARY_WIDTHS, &mut claims)?;
        }
        if claims.bytes > most {
            return Err(format!(
                "buffers claim {} bytes, more than {MAX_PART_RATIO} times the part's {}",
                claims.bytes,
                bytes.len()
            ));
        }
    }
}

/// What the buffers of `part` (a raw snapshot's or a partial's) claim, as
/// the walk before every decode sees them; `Err` when the walk refuses the
/// part. For measurements: the decoders walk parts themselves.
pub fn claims(part: &[u8]) -> Result<Claims, String> {
    let reader = StreamReader::try_new(part, None).map_err(|e| e.to_string())?;
    check_messages(part, &reader.schema())
}

/// Which columns [`decode_columns`] keeps.
pub type Keep<'a> = &'a (dyn Fn(&str) -> bool + Sync);

/// Reads and checks part `part` alone; only the columns `keep` accepts are
/// read (the others are not even decompressed).
fn read_part(part: usize, bytes: &[u8], keep: Option<Keep<'_>>) -> Result<Part, RawError> {
    let ipc = |detail: String| RawError::Ipc { part, detail };
    // Reads the schema message only.
    let reader = StreamReader::try_new(bytes, None).map_err(|e| ipc(e.to_string()))?;
    let full = reader.schema();
    let md = Metadata {
        part,
        map: full.metadata(),
    };
    let format = md.text(keys::FORMAT)?;
    if format != FORMAT {
        return Err(md.error(keys::FORMAT, format!("{format:?} is not {FORMAT:?}")));
    }
    let socket = md.text(keys::SOCKET)?.to_owned();
    if !valid_socket_name(&socket) {
        return Err(md.error(keys::SOCKET, format!("{socket:?} is not a file name")));
    }
    let number: usize = md.number(keys::PART)?;
    let parts: usize = md.number(keys::PARTS)?;
    if number >= parts {
        return Err(md.error(keys::PART, format!("{number} is not below parts {parts}")));
    }
    let (want_batches, want_rows): (usize, usize) =
        (md.number(keys::BATCHES)?, md.number(keys::ROWS)?);
    let info = match md.map.get(keys::INFO) {
        Some(text) => Some(info_pairs(&md, text)?),
        None => None,
    };
    check_columns(part, &full)?;
    check_messages(bytes, &full).map_err(ipc)?;
    let (schema, reader) = match keep {
        None => (Arc::new(Schema::new(full.fields().clone())), reader),
        Some(keep) => {
            let projection: Vec<usize> = full
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| keep(f.name()))
                .map(|(i, _)| i)
                .collect();
            let fields: Vec<_> = projection
                .iter()
                .filter_map(|&i| full.fields().get(i).cloned())
                .collect();
            let reader =
                StreamReader::try_new(bytes, Some(projection)).map_err(|e| ipc(e.to_string()))?;
            (Arc::new(Schema::new(fields)), reader)
        }
    };
    let mut batches = Vec::new();
    let mut rows = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| ipc(e.to_string()))?;
        rows += batch.num_rows();
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(|e| ipc(e.to_string()))?;
        batches.push(batch);
    }
    if batches.len() != want_batches || rows != want_rows {
        return Err(ipc(format!(
            "{} batches of {rows} rows where its metadata says {want_batches} of {want_rows}",
            batches.len()
        )));
    }
    Ok(Part {
        ts: md.number(keys::TS)?,
        number,
        parts,
        segment: md.number(keys::SEGMENT)?,
        version: md.map.get(keys::VERSION).cloned(),
        socket,
        info,
        schema,
        batches,
    })
}

/// Decodes every part of one snapshot (in any order) into its sockets.
///
/// Every part must be there exactly once; anything else (garbage, a
/// truncated stream, a schema without the socket metadata, parts of two
/// snapshots, a column of another type) is a [`RawError`] naming the part
/// by its index in `parts`. Never panics: a panic inside Arrow is caught and
/// returned as [`RawError::Panic`].
pub fn decode(parts: &[&[u8]]) -> Result<DecodedSnapshot, RawError> {
    decode_parts(parts, None)
}

/// [`decode`], keeping only the columns `keep` accepts (and `pxname`,
/// `svname`): what central's engine reads, without decompressing the rest.
pub fn decode_columns(parts: &[&[u8]], keep: Keep<'_>) -> Result<DecodedSnapshot, RawError> {
    let with_names = |name: &str| matches!(name, "pxname" | "svname") || keep(name);
    decode_parts(parts, Some(&with_names))
}

fn decode_parts(parts: &[&[u8]], keep: Option<Keep<'_>>) -> Result<DecodedSnapshot, RawError> {
    if parts.is_empty() {
        return Err(RawError::NoParts);
    }
    // (index in `parts`, part), by part number.
    let mut slots: Vec<Option<(usize, Part)>> = Vec::new();
    for (i, bytes) in parts.iter().enumerate() {
        let part = catch_unwind(AssertUnwindSafe(|| read_part(i, bytes, keep)))
            .unwrap_or(Err(RawError::Panic { part: i }))?;
        let parts_err = |detail: String| RawError::Parts { part: i, detail };
        if part.parts != parts.len() {
            return Err(parts_err(format!(
                "says the snapshot has {} parts, {} given",
                part.parts,
                parts.len()
            )));
        }
        if slots.is_empty() {
            slots.resize_with(part.parts, || None);
        }
        if let Some(Some((_, first))) = slots.iter().find(|s| s.is_some())
            && first.ts != part.ts
        {
            return Err(parts_err(format!(
                "snapshot {} among parts of snapshot {}",
                part.ts, first.ts
            )));
        }
        match slots.get_mut(part.number) {
            Some(Some((j, _))) => {
                return Err(parts_err(format!(
                    "part number {} again (also part {j})",
                    part.number
                )));
            }
            Some(slot) => *slot = Some((i, part)),
            None => return Err(parts_err(format!("part number {} too high", part.number))),
        }
    }
    let mut snapshot = DecodedSnapshot {
        ts: 0,
        sockets: Vec::new(),
    };
    for (i, part) in slots.into_iter().flatten() {
        snapshot.ts = part.ts;
        add_part(&mut snapshot.sockets, i, part)?;
    }
    Ok(snapshot)
}

/// Adds part `i` (the next by number) to the sockets so far.
fn add_part(sockets: &mut Vec<DecodedSocket>, i: usize, part: Part) -> Result<(), RawError> {
    let parts_err = |detail: String| RawError::Parts { part: i, detail };
    let continues = sockets.last().is_some_and(|s| s.name == part.socket);
    if !continues {
        if sockets.iter().any(|s| s.name == part.socket) {
            return Err(parts_err(format!(
                "socket {:?} again after another socket",
                part.socket
            )));
        }
        sockets.push(DecodedSocket {
            name: part.socket,
            info: part.info,
            version: part.version,
            segments: Vec::new(),
        });
        if part.schema.fields().is_empty() {
            return Ok(());
        }
    } else if let Some(s) = sockets.last()
        && (s.info != part.info || s.version != part.version)
    {
        return Err(parts_err(format!(
            "socket {:?} with other info than in its first part",
            s.name
        )));
    }
    let Some(socket) = sockets.last_mut() else {
        return Ok(());
    };
    let next = socket.segments.len();
    let last = next.checked_sub(1);
    if last == Some(part.segment) {
        let same = socket
            .segments
            .last()
            .is_some_and(|s| s.schema.fields() == part.schema.fields());
        if !same {
            return Err(parts_err(format!(
                "socket {:?} segment {} with other fields than in its first part",
                socket.name, part.segment
            )));
        }
        if let Some(s) = socket.segments.last_mut() {
            s.batches.extend(part.batches);
        }
    } else if part.segment == next && !part.schema.fields().is_empty() {
        socket.segments.push(StatSegment {
            schema: part.schema,
            batches: part.batches,
        });
    } else {
        return Err(parts_err(format!(
            "socket {:?} segment {} out of order",
            socket.name, part.segment
        )));
    }
    Ok(())
}
