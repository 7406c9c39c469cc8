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

use std::fmt::Write as _;
use std::path::PathBuf;

use super::assembler::Snapshot;
use super::bad::BadMessage;
use super::process::{self, Processed};
use super::windows::Emission;
use crate::common::panic_message;
use crate::engine::EngineOptions;
use crate::engine::partial::{Merge, Partial};
use crate::engine::{self, BufferSink};
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

/// A partial as read from the partials topic: its parts, decoded only when
/// its window is merged.
#[derive(Debug)]
pub struct PartialMessage {
    /// Its load balancer.
    pub lb: String,
    /// Its snapshot's timestamp.
    pub ts: u64,
    /// Its parts' values, in part order.
    pub parts: Vec<Vec<u8>>,
}

/// Merge the partials of a closed window and write the cluster's lines.
#[derive(Debug, Message)]
#[rtype(result = "Result<MergedWindow, BadMessage>")]
pub struct MergeWindow(pub Emission<Arc<PartialMessage>>);

/// A merged window: its lines, ready for the sinks.
#[derive(Debug)]
pub struct MergedWindow {
    /// Graphite lines of the cluster, its `LoadBalancers*` lines included.
    pub lines: LineChunks,
    /// How many lines.
    pub line_count: usize,
    /// LBs merged.
    pub reporting: usize,
    /// The partials that could not be read (`<lb>: why`), left out.
    pub unreadable: Vec<String>,
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
    /// `[central] cluster-namespace`.
    pub cluster_namespace: String,
    /// `[central] partials-compression`.
    pub partials_codec: crate::config::codec::BufferCodec,
}

/// `<namespace>.<lb>.haproxy`: moving processing to the centre changes no
/// path, whatever `prefix-hostname` says (SPEC §7).
pub fn lb_prefix(namespace: &str, lb: &str) -> String {
    format!("{namespace}.{lb}.haproxy")
}

/// `<namespace>.<cluster-namespace>.<cluster>`: a cluster's lines go under
/// `<this>.haproxy.`, `LoadBalancersReporting` and the like under
/// `<this>.haproxy.haproxystats.` with the engine's own (SPEC §7).
pub fn cluster_path(namespace: &str, cluster_namespace: &str, cluster: &str) -> String {
    format!("{namespace}.{cluster_namespace}.{cluster}")
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
            self.settings.partials_codec,
            &mut lines,
        )
        .map_err(|error| BadMessage::Unprocessable(error.to_string()))?;
        self.chunks.limit_to(lines.chunks().len());
        Ok(Done { lines, processed })
    }

    fn merge(&self, window: &Emission<Arc<PartialMessage>>) -> Result<MergedWindow, BadMessage> {
        let engine = &self.settings.engine;
        let mut merge = Merge::default();
        let mut unreadable = Vec::new();
        for (lb, message) in &window.partials {
            let parts: Vec<&[u8]> = message.parts.iter().map(Vec::as_slice).collect();
            match Partial::decode(&parts, engine) {
                Ok(partial) => merge.add(partial),
                Err(error) => unreadable.push(format!("{lb}: {error}")),
            }
        }
        let path = cluster_path(
            &self.settings.namespace,
            &self.settings.cluster_namespace,
            &window.cluster,
        );
        let mut options = EngineOptions::clone(engine);
        options.prefix = format!("{path}.haproxy");
        let ts = i64::try_from(window.window).unwrap_or(i64::MAX);
        let mut lines = LineChunks::recycling(Arc::clone(&self.chunks));
        let mut line_count = 0;
        let source = PathBuf::from(format!("kafka:{}/{}", window.cluster, window.window));
        if let Some(gathered) = merge.gathered(ts, source, &options) {
            let report = engine::process_gathered_into(&gathered, &options, &mut lines)
                .map_err(|error| BadMessage::Unprocessable(error.to_string()))?;
            line_count += report.lines;
        }
        let reporting = merge.lbs().count();
        let mut own = String::new();
        for (name, value) in [
            ("LoadBalancersReporting", reporting as u64),
            ("LoadBalancersExpected", window.expected as u64),
            ("LateSnapshots", window.late),
        ] {
            let _ = writeln!(
                own,
                "{}.haproxystats.{name} {value} {}",
                options.prefix, window.window
            );
            line_count += 1;
        }
        let mut buf = lines.fresh();
        buf.extend_from_slice(own.as_bytes());
        lines.take(buf);
        self.chunks.limit_to(lines.chunks().len());
        Ok(MergedWindow {
            lines,
            line_count,
            reporting,
            unreadable,
        })
    }
}

impl Actor for CentralProcessor {
    type Context = SyncContext<Self>;
}

impl Handler<MergeWindow> for CentralProcessor {
    type Result = Result<MergedWindow, BadMessage>;

    fn handle(&mut self, message: MergeWindow, ctx: &mut SyncContext<Self>) -> Self::Result {
        match catch_unwind(AssertUnwindSafe(|| self.merge(&message.0))) {
            Ok(outcome) => outcome,
            Err(panic) => {
                ctx.stop();
                Err(BadMessage::Panicked(panic_message(panic.as_ref())))
            }
        }
    }
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
