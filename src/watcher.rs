//! The DirWatcher actor: inotify on `src-dir` (SPEC §4). Every directory
//! created in or moved into it is reported to the supervisor as it appears;
//! the supervisor rescans the whole directory whenever the watch is
//! (re-)established or the kernel's event queue overflowed, so nothing that
//! appeared while nobody was watching is missed.
//!
//! If `src-dir` is deleted or moved away, the kernel drops the watch
//! (`IN_IGNORED`); the watcher then retries every [`REWATCH_INTERVAL`] until
//! the directory exists again (the puller re-creates its dst-dir).

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use inotify::{EventMask, Inotify, WatchMask};

/// How often a lost watch is tried again.
pub const REWATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What the watcher tells the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum WatchEvent {
    /// A directory appeared in src-dir.
    Appeared(PathBuf),
    /// Events may have been missed: list src-dir again.
    Rescan {
        /// Why (logged).
        reason: &'static str,
    },
}

/// Watches one directory for new subdirectories.
pub struct DirWatcher {
    src_dir: PathBuf,
    report: Recipient<WatchEvent>,
}

impl DirWatcher {
    /// A watcher of `src_dir` reporting to `report`.
    pub fn new(src_dir: PathBuf, report: Recipient<WatchEvent>) -> DirWatcher {
        DirWatcher { src_dir, report }
    }
}

impl Actor for DirWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.spawn(watch(self.src_dir.clone(), self.report.clone()).into_actor(self));
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<crate::common::Crash> for DirWatcher {
    type Result = ();

    fn handle(&mut self, _: crate::common::Crash, _: &mut Context<Self>) {
        panic!("injected watcher crash");
    }
}

/// Why one watch ended.
enum WatchEnd {
    /// The directory went away (deleted, moved, unmounted).
    Lost,
    /// Reading events failed.
    Failed(std::io::Error),
}

/// Watches `src_dir` forever, re-establishing the watch whenever it breaks.
async fn watch(src_dir: PathBuf, report: Recipient<WatchEvent>) {
    let mut failing_since_logged = false;
    loop {
        match watch_once(&src_dir, &report).await {
            Ok(WatchEnd::Lost) => {
                tracing::warn!(src_dir = %src_dir.display(), "src-dir went away; watching again once it is back");
                failing_since_logged = false;
            }
            Ok(WatchEnd::Failed(error)) => {
                tracing::error!(src_dir = %src_dir.display(), error = %error, "reading inotify events failed; watching again");
            }
            Err(error) => {
                // Logged once per outage, not once per retry.
                if !failing_since_logged {
                    tracing::error!(src_dir = %src_dir.display(), error = %error, "cannot watch src-dir; retrying every second");
                    failing_since_logged = true;
                }
            }
        }
        tokio::time::sleep(REWATCH_INTERVAL).await;
    }
}

/// One watch: set up, announce (a rescan), forward events until it breaks.
async fn watch_once(src_dir: &Path, report: &Recipient<WatchEvent>) -> std::io::Result<WatchEnd> {
    let inotify = Inotify::init()?;
    inotify.watches().add(
        src_dir,
        WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR,
    )?;
    let mut events = inotify.into_event_stream(vec![0u8; 64 * 1024])?;
    tracing::info!(src_dir = %src_dir.display(), "watching src-dir");
    report.do_send(WatchEvent::Rescan {
        reason: "watch established",
    });
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => return Ok(WatchEnd::Failed(error)),
        };
        if event.mask.contains(EventMask::Q_OVERFLOW) {
            tracing::warn!("inotify queue overflowed; rescanning src-dir");
            report.do_send(WatchEvent::Rescan {
                reason: "inotify queue overflow",
            });
            continue;
        }
        if event.mask.intersects(
            EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::UNMOUNT,
        ) {
            return Ok(WatchEnd::Lost);
        }
        let appeared = event.mask.contains(EventMask::ISDIR)
            && event
                .mask
                .intersects(EventMask::CREATE | EventMask::MOVED_TO);
        if let (true, Some(name)) = (appeared, event.name) {
            report.do_send(WatchEvent::Appeared(src_dir.join(name)));
        }
    }
    Ok(WatchEnd::Lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records what the watcher reports.
    struct Recorder(Arc<Mutex<Vec<WatchEvent>>>);

    impl Actor for Recorder {
        type Context = Context<Self>;
    }

    impl Handler<WatchEvent> for Recorder {
        type Result = ();
        fn handle(&mut self, event: WatchEvent, _: &mut Context<Self>) {
            if let Ok(mut events) = self.0.lock() {
                events.push(event);
            }
        }
    }

    async fn wait_for(events: &Arc<Mutex<Vec<WatchEvent>>>, want: &WatchEvent) {
        for _ in 0..100 {
            if events.lock().map(|e| e.contains(want)).unwrap_or(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!(
            "{want:?} not reported; got {:?}",
            events.lock().map(|e| e.clone())
        );
    }

    #[actix_rt::test]
    async fn reports_created_and_moved_in_directories_and_survives_recreation() {
        let root = tempfile::tempdir().expect("tempdir");
        let src = root.path().join("incoming");
        std::fs::create_dir(&src).expect("src");
        let events = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder(Arc::clone(&events)).start();
        let _watcher = DirWatcher::new(src.clone(), recorder.recipient()).start();
        let established = WatchEvent::Rescan {
            reason: "watch established",
        };
        wait_for(&events, &established).await;

        std::fs::create_dir(src.join("100")).expect("mkdir");
        wait_for(&events, &WatchEvent::Appeared(src.join("100"))).await;
        let tmp = root.path().join("tmp-200");
        std::fs::create_dir(&tmp).expect("tmp");
        std::fs::rename(&tmp, src.join("200")).expect("rename");
        wait_for(&events, &WatchEvent::Appeared(src.join("200"))).await;
        // Files are not snapshots: neither a file created in src-dir nor
        // one moved into it is reported.
        files_are_never_reported(&events, root.path(), &src, "before").await;

        // src-dir deleted and re-created: the watch comes back with a rescan.
        std::fs::remove_dir_all(&src).expect("rm");
        events.lock().expect("lock").clear();
        std::fs::create_dir(&src).expect("recreate");
        wait_for(&events, &established).await;
        std::fs::create_dir(src.join("300")).expect("mkdir");
        wait_for(&events, &WatchEvent::Appeared(src.join("300"))).await;
        files_are_never_reported(&events, root.path(), &src, "after").await;
    }

    /// Creates a file in `src` and moves another one in, then a directory:
    /// inotify reports in order, so once the directory is reported every
    /// event about the files was handled, and none may have been reported.
    async fn files_are_never_reported(
        events: &Arc<Mutex<Vec<WatchEvent>>>,
        root: &Path,
        src: &Path,
        tag: &str,
    ) {
        std::fs::write(src.join(format!("created-file-{tag}")), b"x").expect("file");
        let outside = root.join(format!("moved-file-{tag}"));
        std::fs::write(&outside, b"x").expect("file");
        std::fs::rename(&outside, src.join(format!("moved-file-{tag}"))).expect("rename");
        let marker = src.join(format!("marker-{tag}"));
        std::fs::create_dir(&marker).expect("marker");
        wait_for(events, &WatchEvent::Appeared(marker)).await;
        let seen = events.lock().expect("lock").clone();
        assert!(
            !seen.iter().any(
                |e| matches!(e, WatchEvent::Appeared(p) if p.to_string_lossy().contains("-file-"))
            ),
            "a file was reported as a snapshot: {seen:?}"
        );
    }
}
