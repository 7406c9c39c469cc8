//! The Processor actor: the engine on one snapshot directory, on a thread of
//! its own (`SyncArbiter`), so that CPU work never stalls the event loop.
//!
//! A panic in the engine is caught and answered as [`ProcessFailure::Panicked`]
//! and the actor stops, so the arbiter builds a fresh one: an uncaught panic
//! would kill the thread for good and silently shrink the pool (STYLE.md).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;

use crate::common::panic_message;
use crate::engine::{self, EngineOptions, SnapshotError, SnapshotReport};
use crate::sink::chunk_pool::ChunkPool;
use crate::sink::chunks::LineChunks;

/// A snapshot holding a file of this name makes the processor panic (test
/// builds only).
#[cfg(test)]
pub const INJECT_PANIC_FILE: &str = "INJECT_PANIC";

/// Process this snapshot directory (the caller removes or quarantines it).
#[derive(Debug, Message)]
#[rtype(result = "Result<Processed, ProcessFailure>")]
pub struct ProcessSnapshot {
    /// The snapshot directory, named by its epoch timestamp.
    pub dir: PathBuf,
}

/// A processed snapshot: its lines, ready for the sinks.
#[derive(Debug)]
pub struct Processed {
    /// The snapshot directory.
    pub dir: PathBuf,
    /// Graphite lines, self metrics of the engine included.
    pub lines: LineChunks,
    /// Counts, timings and the input warnings survived.
    pub report: SnapshotReport,
}

/// Why a snapshot was not processed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessFailure {
    /// The snapshot itself is unusable: quarantine it.
    #[error(transparent)]
    Unusable(#[from] SnapshotError),
    /// The engine panicked (a bug): the snapshot may be fine; it is kept.
    #[error("engine panicked on {dir}: {message}")]
    Panicked {
        /// The snapshot directory.
        dir: PathBuf,
        /// The panic message.
        message: String,
    },
}

/// Runs the engine; one instance per pool thread.
pub struct Processor {
    options: Arc<EngineOptions>,
    chunks: Arc<ChunkPool>,
}

impl Processor {
    /// A processor using `options` (shared by the whole pool), writing lines
    /// into chunks from `chunks` (where they go back once every sink is done).
    pub fn new(options: Arc<EngineOptions>, chunks: Arc<ChunkPool>) -> Processor {
        Processor { options, chunks }
    }
}

impl Actor for Processor {
    type Context = SyncContext<Self>;
}

impl Handler<ProcessSnapshot> for Processor {
    type Result = Result<Processed, ProcessFailure>;

    fn handle(&mut self, message: ProcessSnapshot, ctx: &mut SyncContext<Self>) -> Self::Result {
        let dir = message.dir;
        let mut lines = LineChunks::recycling(Arc::clone(&self.chunks));
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // Fault injection for the supervision tests; not in releases.
            #[cfg(test)]
            if dir.join(INJECT_PANIC_FILE).exists() {
                panic!("injected processor panic");
            }
            engine::process_snapshot_into(&dir, &self.options, &mut lines)
        }));
        match outcome {
            Ok(Ok(report)) => {
                self.chunks.limit_to(lines.chunks().len());
                Ok(Processed { dir, lines, report })
            }
            Ok(Err(error)) => Err(ProcessFailure::Unusable(error)),
            Err(panic) => {
                // A fresh actor replaces this one; its state may be broken.
                ctx.stop();
                Err(ProcessFailure::Panicked {
                    dir,
                    message: panic_message(panic.as_ref()),
                })
            }
        }
    }
}
