//! The local-store sink (`[local-store]`, SPEC §5): every line sent to
//! Graphite also lands in `dir/<timestamp>/stats`, for debugging. A file is
//! written under a temporary name and renamed, so a reader never sees half.

use std::fs;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use actix::prelude::*;

use super::chunks::SharedLines;
#[cfg(test)]
use super::messages::LinesOf;
use super::messages::{Flush, GetSinkHealth, SendLinesAcked, SinkHealth};
use crate::common::panic_message;
use crate::config::{Config, ConfigError, IniWriter, Reader, SectionOption, SinkSection};

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

/// A load balancer's name as one directory name: it comes from a Kafka
/// header, so a `/` or a name of `.`/`..` must not lead anywhere else.
fn lb_dir_name(lb: &str) -> String {
    let name: String = lb
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        return format!("_{name}");
    }
    name
}

/// Storing a snapshot of this timestamp panics (test builds only).
#[cfg(test)]
const INJECT_PANIC_TS: u64 = 13;

/// Where `[local-store] dir` points when the section exists without it.
const DEFAULT_DIR: &str = "/var/lib/haproxystats/local-store";

/// `[local-store]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalStoreConfig {
    /// `dir`: `dir/<timestamp>/stats` receives every line sent.
    pub dir: PathBuf,
}

/// The section `[local-store]`.
pub struct LocalStoreSection;

impl SinkSection for LocalStoreSection {
    type Value = LocalStoreConfig;
    const NAME: &'static str = "local-store";
    const ABOUT: &'static str = "Enabled when the section exists: every line sent also goes to \
         a file. For debugging; nothing cleans it up.";
    const OPTIONS: &'static [SectionOption] = &[SectionOption {
        name: "dir",
        // Not a built-in value: an empty `dir`, or none, is the default.
        default: None,
        doc: "Every line sent goes to `<dir>/<timestamp>/stats`.",
        when_unset: None,
    }];

    fn read(section: &Reader<'_>) -> Result<LocalStoreConfig, ConfigError> {
        let dir = section
            .optional_path("dir")?
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        Ok(LocalStoreConfig { dir })
    }

    fn print(value: &LocalStoreConfig, out: &mut IniWriter) {
        out.path("dir", &value.dir);
    }
}

/// The sink `[local-store]` configures, if there is the section.
pub fn spec(config: &Config, _: &super::Naming<'_>) -> super::Started {
    let Some(local_store) = config.sinks.get::<LocalStoreSection>() else {
        return Ok(None);
    };
    let dir = local_store.dir.clone();
    Ok(Some(super::SinkSpec::new("local-store", move || {
        LocalStoreSink::new(dir.clone())
    })))
}

/// The local-store sink. Every message is blocking file I/O, done inline:
/// the sink has a thread of its own (see [`super::RunningSink`]), which
/// nothing else shares.
pub struct LocalStoreSink {
    dir: PathBuf,
    /// Lines of failed writes, since start.
    dropped: u64,
    /// The last write that succeeded (epoch seconds).
    last_write: Option<u64>,
}

impl LocalStoreSink {
    /// A sink writing under `dir`.
    pub fn new(dir: PathBuf) -> LocalStoreSink {
        LocalStoreSink {
            dir,
            dropped: 0,
            last_write: None,
        }
    }

    /// Writes the lines of snapshot `ts`; answers the lines dropped (0 when
    /// written). A debugging aid must never stop the pipeline: failures are
    /// logged and counted, not retried (a full disk must not keep snapshots
    /// in src-dir forever). A panic too: the snapshot would be processed
    /// again, and panic again, over and over.
    fn write(&mut self, lb: Option<&str>, ts: u64, lines: &SharedLines) -> u64 {
        // Central processing hands over many load balancers' snapshots of
        // one `ts`: each in a directory of its own, never one over another.
        let dir = match lb {
            Some(lb) => self.dir.join(lb_dir_name(lb)),
            None => self.dir.clone(),
        };
        let stored = catch_unwind(AssertUnwindSafe(|| {
            // Fault injection for the test below; not in releases.
            #[cfg(test)]
            if ts == INJECT_PANIC_TS {
                panic!("injected local-store panic");
            }
            store(&dir, ts, lines.chunks())
        }));
        let error = match stored {
            Ok(Ok(path)) => {
                tracing::debug!(path = %path.display(), "local-store written");
                self.last_write = Some(crate::common::unix_now());
                return 0;
            }
            Ok(Err(error)) => error.to_string(),
            Err(panic) => format!("local-store panicked: {}", panic_message(panic.as_ref())),
        };
        let dropped = lines.count_lines() as u64;
        self.dropped += dropped;
        tracing::error!(
            error,
            dropped_lines = dropped,
            "local-store write failed; lines dropped"
        );
        dropped
    }
}

impl Actor for LocalStoreSink {
    type Context = Context<Self>;
}

impl Handler<SendLinesAcked> for LocalStoreSink {
    type Result = ();

    fn handle(&mut self, message: SendLinesAcked, _: &mut Context<Self>) {
        self.write(message.of.lb(), message.ts, &message.lines);
        // Written or counted as dropped: either way done with the snapshot.
        let _ = message.written.send(());
    }
}

impl Handler<Flush> for LocalStoreSink {
    type Result = u64;

    /// Every write is done by the time its message is answered.
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> u64 {
        0
    }
}

impl Handler<GetSinkHealth> for LocalStoreSink {
    type Result = SinkHealth;

    fn handle(&mut self, _: GetSinkHealth, _: &mut Context<Self>) -> SinkHealth {
        SinkHealth {
            backlog: 0,
            capacity: 0,
            dropped: self.dropped,
            last_delivery: self.last_write,
            cannot_deliver: None,
            metrics: vec![("LocalStoreDroppedLines", self.dropped)],
        }
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<crate::common::Crash> for LocalStoreSink {
    type Result = ();

    fn handle(&mut self, _: crate::common::Crash, _: &mut Context<Self>) {
        panic!("injected local-store sink crash");
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
    async fn a_failed_or_panicking_write_is_acknowledged_counted_and_the_sink_goes_on() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sink = LocalStoreSink::new(root.path().to_path_buf()).start();
        let lines = || SharedLines::from(b"a 1 2\nb 1 2\n".to_vec());
        let store = |ts| {
            let (written, acknowledged) = tokio::sync::oneshot::channel();
            sink.do_send(SendLinesAcked {
                of: LinesOf::Own,
                ts,
                lines: lines(),
                written,
            });
            acknowledged
        };
        let dropped = || async { sink.send(GetSinkHealth).await.expect("health").dropped };
        assert!(store(INJECT_PANIC_TS).await.is_ok(), "acknowledged");
        assert_eq!(dropped().await, 2);
        // The actor goes on: it did not die with the panic.
        assert!(store(5).await.is_ok());
        assert!(root.path().join("5/stats").is_file());
        assert_eq!(dropped().await, 2);
        // A write that fails (a file where its directory should be).
        fs::write(root.path().join("6"), b"").unwrap_or_else(|e| panic!("{e}"));
        assert!(store(6).await.is_ok());
        let health = sink.send(GetSinkHealth).await.expect("health");
        assert_eq!(health.dropped, 4);
        assert_eq!(health.metrics, [("LocalStoreDroppedLines", 4)]);
        assert!(health.last_delivery.is_some(), "the write of 5");
    }

    #[test]
    fn a_load_balancers_name_is_one_directory_never_a_way_out() {
        assert_eq!(lb_dir_name("lb-1"), "lb-1");
        assert_eq!(lb_dir_name("../etc"), ".._etc");
        assert_eq!(lb_dir_name(".."), "_..");
        assert_eq!(lb_dir_name(""), "_");
        assert_eq!(lb_dir_name("a/b\n"), "a_b_");
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
