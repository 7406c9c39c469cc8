//! The one place central calls the engine: a decoded snapshot of one load
//! balancer → its lines (into a [`BufferSink`]) and its partial aggregate,
//! as message values for the partials topic.
//!
//! SHIM, until `engine::process_decoded_into` and
//! `engine::partial::Partial::encode` land: the snapshot is written back as
//! files ([`raw::write_dir`]) into a temporary directory named `<ts>` and
//! processed as `replay` processes a directory (the round trip is exact,
//! see [`crate::raw`]); the partial is empty (no message). Swapping this
//! function body is all the real engine needs:
//!
//! ```text
//! let (report, partial) = engine::process_decoded_into(snapshot, lb, opts, out)?;
//! let partial = partial.encode(cluster, max_partial_bytes)?;
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::{self, BufferSink, EngineOptions, SnapshotError, SnapshotReport};
use crate::raw::{self, DecodedSnapshot, RawError};

/// The `format` header of partials (SPEC §7), as the engine will name it.
pub const PARTIAL_FORMAT: &str = "partial-ipc/1";

/// What processing one snapshot gives besides its lines.
#[derive(Debug)]
pub struct Processed {
    /// Counts, timings, input warnings.
    pub report: SnapshotReport,
    /// The partial aggregate, as message values for the partials topic
    /// (none while the engine does not make partials yet).
    pub partial: Vec<Vec<u8>>,
}

/// Why a decoded snapshot gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The engine refused it (nothing usable).
    #[error(transparent)]
    Engine(#[from] SnapshotError),
    /// Writing it back as files failed (shim only).
    #[error(transparent)]
    Raw(#[from] RawError),
}

/// Processes `snapshot` of load balancer `lb` of `cluster` with `opts`
/// (whose prefix is the load balancer's), writing its lines into `out`;
/// the partial's messages are at most `max_partial_bytes` each.
pub fn process(
    snapshot: &DecodedSnapshot,
    lb: &str,
    cluster: &str,
    opts: &EngineOptions,
    max_partial_bytes: usize,
    out: &mut dyn BufferSink,
) -> Result<Processed, ProcessError> {
    // The real engine takes lb, cluster and the size limit for the partial.
    let _ = (lb, cluster, max_partial_bytes);
    let scratch = Scratch::new();
    let dir = scratch.0.join(snapshot.ts.to_string());
    let processed = raw::write_dir(snapshot, &dir)
        .map_err(ProcessError::from)
        .and_then(|()| Ok(engine::process_snapshot_into(&dir, opts, out)?));
    Ok(Processed {
        report: processed?,
        partial: Vec::new(),
    })
}

/// A temporary directory of its own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Scratch(
            std::env::temp_dir().join(format!("haproxystats-central-{}-{n}", std::process::id())),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
