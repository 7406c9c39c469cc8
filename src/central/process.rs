//! The one place central calls the engine: a decoded snapshot of one load
//! balancer → its lines (into a [`BufferSink`], from the record batches
//! themselves: `engine::process_decoded_into`) and its partial aggregate as
//! message values for the partials topic (SPEC §7).

use crate::engine::partial::PartialError;
use crate::engine::{self, BufferSink, EngineOptions, SnapshotError, SnapshotReport};
use crate::raw::{DecodedSnapshot, RawError};

pub use crate::engine::partial::PARTIAL_FORMAT;

/// What processing one snapshot gives besides its lines.
#[derive(Debug)]
pub struct Processed {
    /// Counts, timings, input warnings.
    pub report: SnapshotReport,
    /// The partial aggregate, as message values for the partials topic.
    pub partial: Vec<Vec<u8>>,
}

/// Why a decoded snapshot gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The engine refused it (nothing usable).
    #[error(transparent)]
    Engine(#[from] SnapshotError),
    /// Its partial aggregate could not be encoded under the size limit.
    #[error(transparent)]
    Partial(#[from] PartialError),
}

/// Decodes the parts of a snapshot, reading only the columns the engine
/// reads with `opts` (the others are not decompressed).
pub fn decode(parts: &[&[u8]], opts: &EngineOptions) -> Result<DecodedSnapshot, RawError> {
    let columns = engine::columns_read(opts);
    crate::raw::decode_columns(parts, &|name| columns.contains(name))
}

/// Processes `snapshot` of load balancer `lb` of `cluster` with `opts`
/// (whose prefix is the load balancer's), writing its lines into `out`;
/// the partial's messages are at most `max_partial_bytes` each, their
/// buffers compressed with `codec`.
pub fn process(
    snapshot: &DecodedSnapshot,
    lb: &str,
    cluster: &str,
    opts: &EngineOptions,
    max_partial_bytes: usize,
    codec: crate::config::codec::BufferCodec,
    out: &mut dyn BufferSink,
) -> Result<Processed, ProcessError> {
    let (report, partial) = engine::process_decoded_into(snapshot, lb, opts, out)?;
    Ok(Processed {
        report,
        partial: partial.encode_with(cluster, max_partial_bytes, codec)?,
    })
}
