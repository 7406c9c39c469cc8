//! The central Processor actor: one assembled snapshot → decoded
//! (`raw::decode`) → processed ([`super::process`]) under
//! `<namespace>.<lb>.haproxy`, on a thread of a `SyncArbiter`, so that CPU
//! work never stalls the event loop. Whatever is wrong with the snapshot
//! comes back as a [`BadMessage`]; a panic is caught, answered as a bad
//! message (never retried: the same bytes would panic again) and the actor
//! stops, so that the arbiter builds a fresh one.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use actix::prelude::*;

use super::assembler::Snapshot;
use super::bad::BadMessage;
use super::process::{self, Processed};
use crate::engine::EngineOptions;
use crate::processor::actor::panic_message;
use crate::sink::chunk_pool::ChunkPool;
use crate::sink::chunks::LineChunks;

/// Decode and process one snapshot.
#[derive(Debug, Message)]
#[rtype(result = "Result<Done, BadMessage>")]
pub struct ProcessParts(pub Arc<Snapshot>);

/// A processed snapshot: its lines, ready for the sinks, and its partial.
#[derive(Debug)]
pub struct Done {
    /// Graphite lines, the engine's self metrics included.
    pub lines: LineChunks,
    /// Report and partial.
    pub processed: Processed,
}

/// What every processor is started with.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// The engine options of the configuration (their prefix is replaced
    /// per load balancer).
    pub engine: Arc<EngineOptions>,
    /// `[graphite] namespace`.
    pub namespace: String,
    /// The largest message of the partials topic.
    pub max_partial_bytes: usize,
}

/// `<namespace>.<lb>.haproxy`: moving processing to the centre changes no
/// path, whatever `prefix-hostname` says (SPEC §7).
pub fn lb_prefix(namespace: &str, lb: &str) -> String {
    format!("{namespace}.{lb}.haproxy")
}

/// One processing thread.
pub struct CentralProcessor {
    settings: ProcessorSettings,
    chunks: Arc<ChunkPool>,
}

impl CentralProcessor {
    /// A processor writing lines into chunks of `chunks`.
    pub fn new(settings: ProcessorSettings, chunks: Arc<ChunkPool>) -> CentralProcessor {
        CentralProcessor { settings, chunks }
    }

    fn run(&self, snapshot: &Snapshot) -> Result<Done, BadMessage> {
        let parts: Vec<&[u8]> = snapshot.parts.iter().map(Vec::as_slice).collect();
        let decoded = process::decode(&parts, &self.settings.engine)?;
        if u64::try_from(decoded.ts).ok() != Some(snapshot.ts) {
            return Err(BadMessage::Unprocessable(format!(
                "its parts are of snapshot {}, its header says {}",
                decoded.ts, snapshot.ts
            )));
        }
        let mut options = EngineOptions::clone(&self.settings.engine);
        options.prefix = lb_prefix(&self.settings.namespace, &snapshot.lb);
        let mut lines = LineChunks::recycling(Arc::clone(&self.chunks));
        let processed = process::process(
            &decoded,
            &snapshot.lb,
            &snapshot.cluster,
            &options,
            self.settings.max_partial_bytes,
            &mut lines,
        )
        .map_err(|error| BadMessage::Unprocessable(error.to_string()))?;
        self.chunks.limit_to(lines.chunks().len());
        Ok(Done { lines, processed })
    }
}

impl Actor for CentralProcessor {
    type Context = SyncContext<Self>;
}

impl Handler<ProcessParts> for CentralProcessor {
    type Result = Result<Done, BadMessage>;

    fn handle(&mut self, message: ProcessParts, ctx: &mut SyncContext<Self>) -> Self::Result {
        match catch_unwind(AssertUnwindSafe(|| self.run(&message.0))) {
            Ok(outcome) => outcome,
            Err(panic) => {
                ctx.stop();
                Err(BadMessage::Panicked(panic_message(panic.as_ref())))
            }
        }
    }
}
