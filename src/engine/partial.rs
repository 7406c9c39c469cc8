//! Partial aggregates (SPEC §7): what one load balancer's snapshot adds to
//! its cluster's, so that merging the partials of a window gives exactly
//! what `replay` gives for one directory holding every reporting LB's files
//! renamed `<lb>_<file>` — never a mean of means or a sum of percentages.
//!
//! A [`Partial`] is the [`Gathered`] state of the snapshot itself: per kind
//! and group the exact sums, row counts, busy-row counts (for the means
//! over rows with `lbtot` > 0) and per-column counts of rows lacking the
//! column; per process (`<lb>_<socket>`) its `show info` values, from which
//! percentiles, std, per-process ids and percentages are decided on the
//! union; the server names per backend are the server groups' keys
//! (`TotalServers`). A hash of the options the sums depend on (the metric
//! lists) travels with it: partials of other options are not merged.
//!
//! [`Merge`] keeps one partial per LB (the newest `ts`; a duplicate is the
//! same partial again), so any order and any duplication merge alike.
//!
//! # Wire format `partial-ipc/1`
//!
//! Parts, each a complete Arrow IPC stream with ZSTD, LZ4_FRAME or no
//! buffer compression ([`BufferCodec`]), like the raw snapshots (src/raw)
//! and checked by the same walk before arrow reads them (which refuses
//! claims above fixed ratios of the compressed bytes). Columns are `Int64` or `Dictionary<Int32, Utf8>` only.
//! An exact `i128` is two `Int64`s: `low` (its low 64 bits) and `wraps`
//! (how many times 2^64 above them; null when 0).
//! - part 0, the daemon: `socket`, `key` (text), `value`, `value.wraps`.
//! - then per kind (`frontend`, `backend`, `server`), its groups in one or
//!   more parts: `key` (`px`, or `px` NUL `sv`), `rows`, `busy`, and per
//!   metric `<m>`, and `<m>.wraps`, `<m>.absent`, `<m>.overflowed` (nulls
//!   when 0; a column of zeros only is left out).
//!
//! Schema metadata of every part: `haproxystats.format` ([`PARTIAL_FORMAT`]),
//! `.lb`, `.cluster`, `.ts`, `.part`, `.parts`, `.options` (hex),
//! `.kind` (`daemon` or the kind), `.usable_stats`, `.metrics` (the kind's
//! metric names, comma-separated).

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, DictionaryArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};

use super::EngineOptions;
use super::aggregate::{KindAgg, SiteAgg, Specs};
use super::daemon::ProcessInfo;
use super::gather::{Gathered, specs_of};
use super::parse_info::InfoValues;
use crate::config::codec::BufferCodec;

/// The `format` header and metadata value of partial messages.
pub const PARTIAL_FORMAT: &str = "partial-ipc/1";

/// Groups encoded to estimate the size of many (see `split_groups`).
const SIZE_SAMPLE: usize = 1024;

/// Bytes kept free in a message for Kafka's own framing and headers.
const MESSAGE_MARGIN: usize = 8 * 1024;

/// Schema metadata keys.
mod keys {
    pub const FORMAT: &str = "haproxystats.format";
    pub const LB: &str = "haproxystats.lb";
    pub const CLUSTER: &str = "haproxystats.cluster";
    pub const TS: &str = "haproxystats.ts";
    pub const PART: &str = "haproxystats.part";
    pub const PARTS: &str = "haproxystats.parts";
    pub const OPTIONS: &str = "haproxystats.options";
    pub const KIND: &str = "haproxystats.kind";
    pub const USABLE_STATS: &str = "haproxystats.usable_stats";
    pub const METRICS: &str = "haproxystats.metrics";
}

/// The kinds of parts, in order.
const KINDS: [&str; 4] = ["daemon", "frontend", "backend", "server"];

/// Why partial messages could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PartialError {
    /// Arrow refused to build or write a part.
    #[error("cannot encode the partial aggregate: {0}")]
    Encode(#[from] arrow::error::ArrowError),
    /// `max_message_bytes` cannot hold one group.
    #[error("max message bytes {limit} cannot hold one {kind} group of the partial aggregate")]
    LimitTooSmall {
        /// The limit given.
        limit: usize,
        /// The kind.
        kind: &'static str,
    },
    /// A part is not a readable stream of the format.
    #[error("partial part {part}: {detail}")]
    Bad {
        /// Index of the part in the input.
        part: usize,
        /// What is wrong.
        detail: String,
    },
    /// The partial was made with other metric lists than ours.
    #[error("partial of {lb}: made with other options (hash {theirs:016x}, ours {ours:016x})")]
    OptionsMismatch {
        /// The load balancer.
        lb: String,
        /// Its options hash.
        theirs: u64,
        /// Ours.
        ours: u64,
    },
}

/// One load balancer's snapshot, aggregated (see the module documentation).
#[derive(Debug, Clone)]
pub struct Partial {
    /// The load balancer.
    pub lb: String,
    /// The snapshot timestamp.
    pub ts: i64,
    /// [`options_hash`] of the options it was made with.
    pub options: u64,
    /// Its processes, sockets renamed `<lb>_<socket>`.
    pub procs: Vec<ProcessInfo>,
    /// Its sums.
    pub sites: SiteAgg,
    /// Its `_stat` inputs with a header.
    pub usable_stats: usize,
}

/// FNV-1a, 64 bits: a hash that is the same in every build and version,
/// unlike std's.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The hash of what a partial's sums depend on: each kind's metric list.
pub fn options_hash(opts: &EngineOptions) -> u64 {
    let specs = specs_of(opts);
    let text: String = specs
        .kinds
        .iter()
        .map(|k| {
            let names: Vec<&str> = k.metrics.iter().map(|m| m.name).collect();
            names.join(",") + ";"
        })
        .collect();
    fnv1a(text.bytes())
}

impl Partial {
    /// The partial of `lb`'s snapshot aggregated in `g`.
    pub fn from_gathered(g: Gathered, lb: &str, opts: &EngineOptions) -> Partial {
        let procs = g
            .procs
            .into_iter()
            .map(|p| ProcessInfo {
                socket: format!("{lb}_{}", p.socket),
                values: p.values,
            })
            .collect();
        Partial {
            lb: lb.to_owned(),
            ts: g.timestamp,
            options: options_hash(opts),
            procs,
            sites: g.sites,
            usable_stats: g.usable_stats,
        }
    }

    /// [`Partial::encode_with`] with [`BufferCodec::PARTIALS_DEFAULT`].
    pub fn encode(
        &self,
        cluster: &str,
        max_message_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, PartialError> {
        self.encode_with(cluster, max_message_bytes, BufferCodec::PARTIALS_DEFAULT)
    }

    /// The message values of the partial, each under `max_message_bytes`,
    /// every buffer compressed with `codec`.
    pub fn encode_with(
        &self,
        cluster: &str,
        max_message_bytes: usize,
        codec: BufferCodec,
    ) -> Result<Vec<Vec<u8>>, PartialError> {
        let opts = crate::raw::write_options(codec)?;
        let limit = max_message_bytes.saturating_sub(MESSAGE_MARGIN);
        let mut streams: Vec<(&'static str, RecordBatch)> = vec![("daemon", self.daemon_batch()?)];
        for (k, agg) in self.sites.kinds.iter().enumerate() {
            let kind = KINDS.get(k + 1).copied().unwrap_or("server");
            let names: Vec<&str> = self
                .sites
                .spec(k)
                .map(|s| s.metrics.iter().map(|m| m.name).collect())
                .unwrap_or_default();
            let groups: Vec<usize> = (0..agg.keys.len()).collect();
            streams.extend(
                split_groups(agg, &names, &groups, limit, kind, &opts)?
                    .into_iter()
                    .map(|b| (kind, b)),
            );
        }
        let parts = streams.len();
        streams
            .into_iter()
            .enumerate()
            .map(|(part, (kind, batch))| {
                let md = self.metadata(cluster, kind, part, parts, &batch);
                stream_bytes(&batch, md, &opts)
            })
            .collect()
    }

    fn metadata(
        &self,
        cluster: &str,
        kind: &str,
        part: usize,
        parts: usize,
        batch: &RecordBatch,
    ) -> std::collections::HashMap<String, String> {
        let metrics: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| !n.contains('.') && !matches!(*n, "key" | "rows" | "busy"))
            .collect();
        [
            (keys::FORMAT, PARTIAL_FORMAT.to_owned()),
            (keys::LB, self.lb.clone()),
            (keys::CLUSTER, cluster.to_owned()),
            (keys::TS, self.ts.to_string()),
            (keys::PART, part.to_string()),
            (keys::PARTS, parts.to_string()),
            (keys::OPTIONS, format!("{:016x}", self.options)),
            (keys::KIND, kind.to_owned()),
            (keys::USABLE_STATS, self.usable_stats.to_string()),
            (
                keys::METRICS,
                if kind == "daemon" {
                    String::new()
                } else {
                    metrics.join(",")
                },
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The daemon part: one row per (process, key).
    fn daemon_batch(&self) -> Result<RecordBatch, PartialError> {
        let mut sockets = Vec::new();
        let mut names = Vec::new();
        let mut values = Vec::new();
        for p in &self.procs {
            for (k, v) in &p.values.pairs {
                sockets.push(p.socket.as_str());
                names.push(k.as_str());
                values.push(*v);
            }
        }
        let (low, wraps) = split_all(&values);
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("socket", text_array(&sockets)),
            ("key", text_array(&names)),
            ("value", Arc::new(Int64Array::from(low))),
            ("value.wraps", Arc::new(Int64Array::from(wraps))),
        ];
        batch_of(columns)
    }

    /// Reads the parts of one partial (in any order), made with `opts`'s
    /// metric lists.
    pub fn decode(parts: &[&[u8]], opts: &EngineOptions) -> Result<Partial, PartialError> {
        let specs = specs_of(opts);
        let ours = options_hash(opts);
        let mut partial: Option<Partial> = None;
        let mut seen = vec![false; parts.len()];
        for (i, bytes) in parts.iter().enumerate() {
            let read = catch_unwind(AssertUnwindSafe(|| {
                read_part(i, bytes, parts.len(), &specs)
            }))
            .unwrap_or_else(|_| Err(bad(i, "arrow panicked reading it")))?;
            if read.options != ours {
                return Err(PartialError::OptionsMismatch {
                    lb: read.lb,
                    theirs: read.options,
                    ours,
                });
            }
            match seen.get_mut(read.number) {
                Some(s) if !*s => *s = true,
                _ => return Err(bad(i, format!("part number {} twice", read.number))),
            }
            let p = partial.get_or_insert_with(|| Partial {
                lb: read.lb.clone(),
                ts: read.ts,
                options: read.options,
                procs: Vec::new(),
                sites: SiteAgg::new(&specs),
                usable_stats: read.usable_stats,
            });
            if p.lb != read.lb || p.ts != read.ts {
                return Err(bad(
                    i,
                    format!(
                        "of {} at {} among parts of {} at {}",
                        read.lb, read.ts, p.lb, p.ts
                    ),
                ));
            }
            match read.content {
                Content::Daemon(procs) => p.procs = procs,
                Content::Groups(k, batches) => {
                    let names: Vec<&str> = specs
                        .kinds
                        .get(k)
                        .map(|s| s.metrics.iter().map(|m| m.name).collect())
                        .unwrap_or_default();
                    if let Some(agg) = p.sites.kinds.get_mut(k) {
                        for batch in &batches {
                            add_groups(i, agg, batch, &names)?;
                        }
                    }
                }
            }
        }
        partial.ok_or_else(|| bad(0, "no part"))
    }
}

/// What one part holds.
enum Content {
    Daemon(Vec<ProcessInfo>),
    /// The kind and its batches, their metric columns checked to be ours.
    Groups(usize, Vec<RecordBatch>),
}

/// One part, read and checked.
struct ReadPart {
    lb: String,
    ts: i64,
    number: usize,
    options: u64,
    usable_stats: usize,
    content: Content,
}

fn bad(part: usize, detail: impl Into<String>) -> PartialError {
    PartialError::Bad {
        part,
        detail: detail.into(),
    }
}

/// Reads part `i` of `parts`.
fn read_part(
    i: usize,
    bytes: &[u8],
    parts: usize,
    specs: &Specs,
) -> Result<ReadPart, PartialError> {
    let reader = StreamReader::try_new(bytes, None).map_err(|e| bad(i, e.to_string()))?;
    let schema = reader.schema();
    let md = |key: &str| {
        schema
            .metadata()
            .get(key)
            .cloned()
            .ok_or_else(|| bad(i, format!("schema metadata {key} missing")))
    };
    let number = |key: &str| -> Result<usize, PartialError> {
        let text = md(key)?;
        text.parse()
            .map_err(|_| bad(i, format!("schema metadata {key}: not a number: {text:?}")))
    };
    let format = md(keys::FORMAT)?;
    if format != PARTIAL_FORMAT {
        return Err(bad(
            i,
            format!("format {format:?} is not {PARTIAL_FORMAT:?}"),
        ));
    }
    for field in schema.fields() {
        let ok = match field.data_type() {
            DataType::Int64 => true,
            DataType::Dictionary(k, v) => **k == DataType::Int32 && **v == DataType::Utf8,
            _ => false,
        };
        if !ok {
            return Err(bad(
                i,
                format!("column {:?} of type {}", field.name(), field.data_type()),
            ));
        }
    }
    crate::raw::check_messages(bytes, &schema).map_err(|e| bad(i, e))?;
    let ts_text = md(keys::TS)?;
    let ts: i64 = ts_text
        .parse()
        .map_err(|_| bad(i, format!("ts {ts_text:?} is not a number")))?;
    let options_text = md(keys::OPTIONS)?;
    let options = u64::from_str_radix(&options_text, 16)
        .map_err(|_| bad(i, format!("options {options_text:?} is not a hash")))?;
    let number_of = number(keys::PART)?;
    if number(keys::PARTS)? != parts || number_of >= parts {
        return Err(bad(
            i,
            format!("part {number_of} of {}, {parts} given", md(keys::PARTS)?),
        ));
    }
    let mut batches = Vec::new();
    for batch in reader {
        batches.push(batch.map_err(|e| bad(i, e.to_string()))?);
    }
    let kind = md(keys::KIND)?;
    let content = match KINDS.iter().position(|k| *k == kind) {
        Some(0) => Content::Daemon(read_daemon(i, &batches)?),
        Some(k) => {
            let spec = specs
                .kinds
                .get(k - 1)
                .ok_or_else(|| bad(i, "no such kind"))?;
            let names: Vec<&str> = spec.metrics.iter().map(|m| m.name).collect();
            if md(keys::METRICS)? != names.join(",") {
                return Err(bad(i, format!("{kind} metrics are not ours")));
            }
            Content::Groups(k - 1, batches)
        }
        None => return Err(bad(i, format!("kind {kind:?}"))),
    };
    Ok(ReadPart {
        lb: md(keys::LB)?,
        ts,
        number: number_of,
        options,
        usable_stats: number(keys::USABLE_STATS)?,
        content,
    })
}

/// A column of a batch by name.
fn column<'a>(i: usize, batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, PartialError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| bad(i, format!("column {name:?} missing")))
}

/// An `Int64` column by name.
fn ints<'a>(i: usize, batch: &'a RecordBatch, name: &str) -> Result<&'a Int64Array, PartialError> {
    column(i, batch, name)?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| bad(i, format!("column {name:?} is not Int64")))
}

/// The texts of a dictionary column by name (a null is an error).
fn texts(i: usize, batch: &RecordBatch, name: &str) -> Result<Vec<String>, PartialError> {
    let dict = column(i, batch, name)?
        .as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| bad(i, format!("column {name:?} is not text")))?;
    let values = dict
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| bad(i, format!("column {name:?} is not text")))?;
    dict.keys()
        .iter()
        .map(|k| {
            k.and_then(|k| usize::try_from(k).ok())
                .filter(|&k| k < values.len() && values.is_valid(k))
                .map(|k| values.value(k).to_owned())
                .ok_or_else(|| bad(i, format!("column {name:?} has a null")))
        })
        .collect()
}

/// A value of an `Int64` column where null is 0.
fn int_or_zero(a: &Int64Array, row: usize) -> i64 {
    if a.is_valid(row) { a.value(row) } else { 0 }
}

fn read_daemon(i: usize, batches: &[RecordBatch]) -> Result<Vec<ProcessInfo>, PartialError> {
    let mut procs: Vec<ProcessInfo> = Vec::new();
    for batch in batches {
        let sockets = texts(i, batch, "socket")?;
        let names = texts(i, batch, "key")?;
        let low = ints(i, batch, "value")?;
        let wraps = ints(i, batch, "value.wraps")?;
        for (row, (socket, key)) in sockets.into_iter().zip(names).enumerate() {
            let value = join(int_or_zero(low, row), int_or_zero(wraps, row));
            match procs.last_mut() {
                Some(p) if p.socket == socket => p.values.pairs.push((key, value)),
                _ => procs.push(ProcessInfo {
                    socket,
                    values: InfoValues {
                        pairs: vec![(key, value)],
                    },
                }),
            }
        }
    }
    Ok(procs)
}

/// Adds the groups of one batch of a kind's part to `agg`, a column at a
/// time: each key is interned once per batch (dictionary values), and each
/// metric column is added in place, with no per-row allocation.
fn add_groups(
    i: usize,
    agg: &mut KindAgg,
    batch: &RecordBatch,
    names: &[&str],
) -> Result<(), PartialError> {
    let groups = group_ids(i, agg, batch)?;
    let counts = |name: &str| -> Result<Vec<u32>, PartialError> {
        let a = ints(i, batch, name)?;
        (0..batch.num_rows())
            .map(|row| {
                u32::try_from(int_or_zero(a, row)).map_err(|_| bad(i, "a row count out of range"))
            })
            .collect()
    };
    let (rows, busy) = (counts("rows")?, counts("busy")?);
    // Every column is looked up before anything is added, so that a part
    // missing one adds nothing (the whole partial is refused anyway).
    let optional = |name: String| -> Result<Option<&Int64Array>, PartialError> {
        match batch.column_by_name(&name) {
            Some(_) => ints(i, batch, &name).map(Some),
            None => Ok(None),
        }
    };
    let per_metric = names
        .iter()
        .map(|m| {
            Ok((
                ints(i, batch, m)?,
                optional(format!("{m}.wraps"))?,
                optional(format!("{m}.absent"))?,
                optional(format!("{m}.overflowed"))?,
            ))
        })
        .collect::<Result<Vec<_>, PartialError>>()?;
    agg.add_counts(&groups, &rows, &busy);
    for (m, (sums, wraps, absent, overflowed)) in per_metric.into_iter().enumerate() {
        agg.add_metric_column(
            m,
            &groups,
            (0..sums.len()).map(|row| int_or_zero(sums, row)),
        );
        // Nearly always left out (all zero); sparse when present.
        for (row, &g) in groups.iter().enumerate() {
            if let Some(w) = wraps.map(|a| int_or_zero(a, row)).filter(|w| *w != 0) {
                agg.add_carry(g, m, w);
            }
            if let Some(n) = absent.map(|a| int_or_zero(a, row)).filter(|n| *n != 0) {
                let n = u32::try_from(n).map_err(|_| bad(i, "a row count out of range"))?;
                agg.add_absent(g, m, n);
            }
            if overflowed.is_some_and(|a| int_or_zero(a, row) != 0) {
                agg.mark_overflowed(g, m);
            }
        }
    }
    Ok(())
}

/// The group in `agg` of each row of `batch`'s `key` column (a null is an
/// error). A dictionary value is interned the first time a row uses it, so
/// groups are made in row order and a value no row uses makes none.
fn group_ids(i: usize, agg: &mut KindAgg, batch: &RecordBatch) -> Result<Vec<u32>, PartialError> {
    let dict = column(i, batch, "key")?
        .as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| bad(i, "column \"key\" is not text"))?;
    let values = dict
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| bad(i, "column \"key\" is not text"))?;
    let mut interned: Vec<Option<u32>> = vec![None; values.len()];
    dict.keys()
        .iter()
        .map(|k| {
            let k = k
                .and_then(|k| usize::try_from(k).ok())
                .filter(|&k| k < values.len() && values.is_valid(k))
                .ok_or_else(|| bad(i, "column \"key\" has a null"))?;
            let slot = interned
                .get_mut(k)
                .ok_or_else(|| bad(i, "column \"key\" has a null"))?;
            Ok(*slot.get_or_insert_with(|| agg.group(values.value(k)) as u32))
        })
        .collect()
}

/// `v` as its low 64 bits and how many times 2^64 above them.
fn split(v: i128) -> (i64, i64) {
    let low = v as i64;
    (low, ((v - i128::from(low)) >> 64) as i64)
}

/// The inverse of [`split`].
fn join(low: i64, wraps: i64) -> i128 {
    (i128::from(wraps) << 64) + i128::from(low)
}

/// [`split`] of each value, wraps null when 0.
fn split_all(values: &[i128]) -> (Vec<i64>, Vec<Option<i64>>) {
    values
        .iter()
        .map(|&v| {
            let (low, wraps) = split(v);
            (low, (wraps != 0).then_some(wraps))
        })
        .unzip()
}

/// A dictionary-encoded text column.
fn text_array(values: &[&str]) -> ArrayRef {
    Arc::new(
        values
            .iter()
            .copied()
            .collect::<DictionaryArray<Int32Type>>(),
    )
}

fn batch_of(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch, PartialError> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// The batch of `groups` of `agg`.
fn groups_batch(
    agg: &KindAgg,
    names: &[&str],
    groups: &[usize],
) -> Result<RecordBatch, PartialError> {
    let cols = agg.columns(groups);
    let keys: Vec<&str> = groups
        .iter()
        .map(|&g| agg.keys.get(g).map_or("", |k| &**k))
        .collect();
    let nonzero = |v: &i64| (*v != 0).then_some(*v);
    let mut columns: Vec<(String, ArrayRef)> = vec![
        ("key".into(), text_array(&keys)),
        ("rows".into(), Arc::new(Int64Array::from(cols.rows))),
        ("busy".into(), Arc::new(Int64Array::from(cols.busy))),
    ];
    let mut sums = cols.sums.into_iter();
    for (m, name) in names.iter().enumerate() {
        columns.push((
            (*name).into(),
            Arc::new(Int64Array::from(sums.next().unwrap_or_default())),
        ));
        // Nearly always all zero: left out (read as zeros), which saves
        // three quarters of the columns to compress.
        for (suffix, all) in [
            ("wraps", &cols.wraps),
            ("absent", &cols.absent),
            ("overflowed", &cols.overflowed),
        ] {
            if let Some(v) = all.get(m).filter(|v| !v.is_empty()) {
                let a: Int64Array = v.iter().map(nonzero).collect();
                columns.push((format!("{name}.{suffix}"), Arc::new(a)));
            }
        }
    }
    batch_of(
        columns
            .iter()
            .map(|(n, a)| (n.as_str(), a.clone()))
            .collect(),
    )
}

/// `groups` of `agg` in batches whose streams stay under `limit` bytes.
fn split_groups(
    agg: &KindAgg,
    names: &[&str],
    groups: &[usize],
    limit: usize,
    kind: &'static str,
    opts: &IpcWriteOptions,
) -> Result<Vec<RecordBatch>, PartialError> {
    // Many groups: their size estimated from the first ones, so that each
    // piece is encoded once (a stream of all of them would be thrown away).
    if let Some(sample) = groups.get(..SIZE_SAMPLE)
        && groups.len() > 4 * SIZE_SAMPLE
    {
        let bytes =
            stream_bytes(&groups_batch(agg, names, sample)?, Default::default(), opts)?.len();
        let estimate = bytes / SIZE_SAMPLE * groups.len();
        if estimate > limit {
            let pieces = (estimate * 10 / 9).div_ceil(limit).clamp(2, groups.len());
            let mut out = Vec::new();
            for piece in groups.chunks(groups.len().div_ceil(pieces)) {
                out.extend(split_groups(agg, names, piece, limit, kind, opts)?);
            }
            return Ok(out);
        }
    }
    let batch = groups_batch(agg, names, groups)?;
    let bytes = stream_bytes(&batch, Default::default(), opts)?.len();
    if bytes <= limit {
        return Ok(vec![batch]);
    }
    if groups.len() <= 1 {
        return Err(PartialError::LimitTooSmall {
            limit: limit + MESSAGE_MARGIN,
            kind,
        });
    }
    // Pieces of the size that should fit (with a tenth to spare), each
    // split again only if it does not: most groups are encoded twice, not
    // once per halving.
    let pieces = (bytes * 10 / 9).div_ceil(limit).clamp(2, groups.len());
    let mut out = Vec::new();
    for piece in groups.chunks(groups.len().div_ceil(pieces)) {
        out.extend(split_groups(agg, names, piece, limit, kind, opts)?);
    }
    Ok(out)
}

/// One complete IPC stream of `batch` with `metadata` on its schema.
fn stream_bytes(
    batch: &RecordBatch,
    metadata: std::collections::HashMap<String, String>,
    opts: &IpcWriteOptions,
) -> Result<Vec<u8>, PartialError> {
    let schema = Schema::new(batch.schema_ref().fields().clone()).with_metadata(metadata);
    let batch = RecordBatch::try_new(Arc::new(schema.clone()), batch.columns().to_vec())?;
    let mut writer = StreamWriter::try_new_with_options(Vec::new(), &schema, opts.clone())?;
    writer.write(&batch)?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// The partials of one window of one cluster, merged (see the module
/// documentation).
#[derive(Debug, Default)]
pub struct Merge {
    /// Per LB, its newest partial.
    by_lb: BTreeMap<String, Partial>,
    /// Partials refused for their options.
    pub mismatched: usize,
    /// Partials given again, or older than one kept.
    pub duplicates: usize,
}

impl Merge {
    /// Adds a partial (one made with other options than the first is
    /// refused and counted).
    pub fn add(&mut self, partial: Partial) {
        if let Some(first) = self.by_lb.values().next()
            && first.options != partial.options
        {
            self.mismatched += 1;
            return;
        }
        match self.by_lb.get(&partial.lb) {
            Some(kept) if kept.ts >= partial.ts => self.duplicates += 1,
            _ => {
                self.by_lb.insert(partial.lb.clone(), partial);
            }
        }
    }

    /// The load balancers merged.
    pub fn lbs(&self) -> impl Iterator<Item = &str> {
        self.by_lb.keys().map(String::as_str)
    }

    /// The union as one snapshot at `ts`, its lines written by the engine
    /// as any other ([`super::process_gathered_into`]); `None` without
    /// any partial.
    pub fn gathered(&self, ts: i64, source: PathBuf, opts: &EngineOptions) -> Option<Gathered> {
        let started = Instant::now();
        let specs = specs_of(opts);
        let mut sites = SiteAgg::new(&specs);
        let mut procs: Vec<(String, ProcessInfo)> = Vec::new();
        let mut usable_stats = 0;
        for p in self.by_lb.values() {
            for (into, from) in sites.kinds.iter_mut().zip(&p.sites.kinds) {
                into.merge(from);
            }
            procs.extend(
                p.procs
                    .iter()
                    .map(|q| (format!("{}_info", q.socket), q.clone())),
            );
            usable_stats += p.usable_stats;
        }
        if self.by_lb.is_empty() {
            return None;
        }
        // The file name order of the union directory.
        procs.sort_by(|a, b| a.0.cmp(&b.0));
        Some(Gathered {
            source,
            timestamp: ts,
            procs: procs.into_iter().map(|(_, p)| p).collect(),
            specs,
            sites,
            usable_stats,
            warnings: Vec::new(),
            daemon_parse: Duration::ZERO,
            parse_stats: Duration::ZERO,
            started,
        })
    }
}
