//! The local-store sink (`[local-store]`, SPEC §5): every line sent to
//! Graphite also lands in `dir/<timestamp>/stats`, for debugging. A file is
//! written under a temporary name and renamed, so a reader never sees half.

use std::fs;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use actix::prelude::*;

use super::chunks::SharedLines;
use crate::processor::actor::panic_message;

/// Writing one snapshot's lines failed.
#[derive(Debug, thiserror::Error)]
#[error("local-store: cannot write {path}: {source}")]
pub struct LocalStoreError {
    /// The file or directory involved.
    pub path: PathBuf,
    /// The error.
    pub source: std::io::Error,
}

/// Writes the chunks of `lines`, in order, to `dir/<ts>/stats` atomically;
/// returns the file written.
pub fn store<C: AsRef<[u8]>>(dir: &Path, ts: u64, lines: &[C]) -> Result<PathBuf, LocalStoreError> {
    let snapshot_dir = dir.join(ts.to_string());
    let error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LocalStoreError { path, source }
    };
    fs::create_dir_all(&snapshot_dir).map_err(error(&snapshot_dir))?;
    let target = snapshot_dir.join("stats");
    let temporary = snapshot_dir.join(".stats.tmp");
    let written = fs::File::create(&temporary)
        .and_then(|mut file| {
            for chunk in lines {
                file.write_all(chunk.as_ref())?;
            }
            file.sync_data()
        })
        .map_err(error(&temporary))
        .and_then(|()| fs::rename(&temporary, &target).map_err(error(&target)));
    if written.is_err() {
        // A disk that filled up must not stay full of half-written files.
        let _ = fs::remove_file(&temporary);
    }
    written.map(|()| target)
}

/// Store these lines of snapshot `ts`. Answered once the write was
/// attempted, with the lines it dropped (0 when written): the snapshot is
/// removed from src-dir only after this answer, and a failed write is
/// counted, not retried, since a full disk must not keep snapshots forever.
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub struct StoreLines {
    /// The snapshot's timestamp (its directory name).
    pub ts: u64,
    /// The lines, exactly as sent to Graphite: the same chunks, shared.
    pub lines: SharedLines,
}

/// Storing a snapshot of this timestamp panics (test builds only).
#[cfg(test)]
const INJECT_PANIC_TS: u64 = 13;

/// The local-store sink: a synchronous actor, run on its own thread
/// (`SyncArbiter`), since every message is blocking file I/O.
pub struct LocalStoreSink {
    dir: PathBuf,
}

impl LocalStoreSink {
    /// A sink writing under `dir`.
    pub fn new(dir: PathBuf) -> LocalStoreSink {
        LocalStoreSink { dir }
    }
}

impl Actor for LocalStoreSink {
    type Context = SyncContext<Self>;
}

impl Handler<StoreLines> for LocalStoreSink {
    type Result = u64;

    fn handle(&mut self, message: StoreLines, _: &mut SyncContext<Self>) -> u64 {
        // A debugging aid must never stop the pipeline: failures are logged
        // and counted. A panic too: it would end this thread for good, and
        // every later snapshot would be lost for local-store and processed
        // again, over and over.
        let stored = catch_unwind(AssertUnwindSafe(|| {
            // Fault injection for the test below; not in releases.
            #[cfg(test)]
            if message.ts == INJECT_PANIC_TS {
                panic!("injected local-store panic");
            }
            store(&self.dir, message.ts, message.lines.chunks())
        }));
        let error = match stored {
            Ok(Ok(path)) => {
                tracing::debug!(path = %path.display(), "local-store written");
                return 0;
            }
            Ok(Err(error)) => error.to_string(),
            Err(panic) => format!("local-store panicked: {}", panic_message(panic.as_ref())),
        };
        let dropped = message.lines.count_lines() as u64;
        tracing::error!(
            error,
            dropped_lines = dropped,
            "local-store write failed; lines dropped"
        );
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_land_in_dir_ts_stats_and_nothing_else() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let written = store(
            root.path(),
            1700000000,
            &[&b"a.b 1 "[..], &b"1700000000\n"[..]],
        );
        let path = written.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(path, root.path().join("1700000000/stats"));
        assert_eq!(fs::read(&path).ok(), Some(b"a.b 1 1700000000\n".to_vec()));
        let names: Vec<_> = fs::read_dir(root.path().join("1700000000"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["stats"]);
    }

    #[actix_rt::test]
    async fn a_failed_or_panicking_write_is_answered_with_its_lines_and_the_sink_goes_on() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = root.path().to_path_buf();
        let sink = SyncArbiter::start(1, move || LocalStoreSink::new(dir.clone()));
        let lines = || SharedLines::from(b"a 1 2\nb 1 2\n".to_vec());
        let ask = |ts| sink.send(StoreLines { ts, lines: lines() });
        assert_eq!(ask(INJECT_PANIC_TS).await.ok(), Some(2));
        // The same thread goes on: it did not die with the panic.
        assert_eq!(ask(5).await.ok(), Some(0));
        assert!(root.path().join("5/stats").is_file());
        // A write that fails (a file where its directory should be).
        fs::write(root.path().join("6"), b"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ask(6).await.ok(), Some(2));
    }

    #[test]
    fn an_unwritable_dir_is_an_error_naming_the_path() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let blocker = root.path().join("file");
        fs::write(&blocker, b"").unwrap_or_else(|e| panic!("{e}"));
        let error = store(&blocker, 5, &[b"x 1 5\n"])
            .err()
            .map(|e| e.to_string());
        assert!(error.unwrap_or_default().contains("file/5"));
    }
}
