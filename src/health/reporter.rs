//! [`Reporter`]: the one object the supervisor keeps to tell the outside
//! world how it is doing: it owns the current [`Status`], rewrites the status
//! file and talks to systemd.
//!
//! ```text
//! start:   let mut health = Reporter::from_config(&config, pulling);
//!          health.ready();                       // children started
//! each WRITE_INTERVAL (run_interval on the supervisor's own context):
//!          health.status_mut().queue_depth = ...;  // and the other fields
//!          health.tick(unix_now());              // file + STATUS= + WATCHDOG=1
//! events:  health.status_mut().last_pull_ok = Some(unix_now()); ...
//! drain:   health.stopping();
//! ```
//!
//! Calling `tick` from the supervisor's own interval is what makes the
//! watchdog mean something: if the event loop stalls, the pings stop and
//! systemd restarts the unit. Failures to write the file are logged once
//! (and once more when writing works again), never every second.

use std::path::PathBuf;

use super::notify::Notifier;
use super::status::{Status, StatusWriter, status_path};
use crate::common::unix_now;
use crate::config::Config;

/// The status the supervisor reports, and where it reports it.
#[derive(Debug)]
pub struct Reporter {
    status: Status,
    writer: StatusWriter,
    notifier: Notifier,
    /// The last write failed (logged); the next success is logged too.
    write_failing: bool,
    /// The last `STATUS=` sent, so that an unchanged one is not resent.
    last_summary: String,
}

impl Reporter {
    /// A reporter for the status file of `config`
    /// (`<paths.base-dir>/haproxystats.status`), notifying systemd when run
    /// by it. Creates base-dir if needed (failing that, logs an error: the
    /// process runs on, and `check` reports it as not running).
    pub fn from_config(config: &Config, pulling: bool) -> Reporter {
        let base_dir = &config.paths.base_dir;
        if let Err(error) = std::fs::create_dir_all(base_dir) {
            tracing::error!(base_dir = %base_dir.display(), error = %error, "cannot create [paths] base-dir; no status file for `haproxystats check`");
        }
        Reporter::new(
            status_path(config),
            Notifier::from_env(),
            pulling,
            unix_now(),
        )
    }

    /// A reporter writing `path` and notifying through `notifier`, for a
    /// process started at `now` (epoch seconds).
    pub fn new(path: PathBuf, notifier: Notifier, pulling: bool, now: u64) -> Reporter {
        Reporter {
            status: Status::starting(std::process::id(), now, pulling),
            writer: StatusWriter::new(path),
            notifier,
            write_failing: false,
            last_summary: String::new(),
        }
    }

    /// The status, to update between ticks.
    pub fn status_mut(&mut self) -> &mut Status {
        &mut self.status
    }

    /// The status as last updated.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The notifier, e.g. for [`Notifier::watchdog_ping_interval`].
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Start-up is complete: writes the status file and sends `READY=1`.
    pub fn ready(&mut self, now: u64) {
        self.write(now);
        if let Err(error) = self.notifier.ready() {
            tracing::warn!(error = %error, "cannot tell systemd we are ready");
        }
        self.send_summary(now);
    }

    /// Every [`super::status::WRITE_INTERVAL`]: stamps the status with `now`,
    /// rewrites the file, sends `STATUS=` when it changed and `WATCHDOG=1`.
    pub fn tick(&mut self, now: u64) {
        self.write(now);
        self.send_summary(now);
        if let Err(error) = self.notifier.watchdog() {
            tracing::warn!(error = %error, "cannot ping systemd's watchdog");
        }
    }

    /// Draining has begun: `STOPPING=1` and a last status write. The file is
    /// left in place: once it goes stale, `check` reports "not running".
    pub fn stopping(&mut self, now: u64) {
        self.write(now);
        let sent = self
            .notifier
            .stopping()
            .and_then(|()| self.notifier.status("stopping: draining"));
        if let Err(error) = sent {
            tracing::warn!(error = %error, "cannot tell systemd we are stopping");
        }
    }

    fn write(&mut self, now: u64) {
        self.status.updated_at = now;
        match self.writer.write(&self.status) {
            Ok(()) if self.write_failing => {
                self.write_failing = false;
                tracing::info!(path = %self.writer.path().display(), "status file written again");
            }
            Ok(()) => {}
            Err(error) if !self.write_failing => {
                self.write_failing = true;
                tracing::error!(error = %error, kind = error.kind(), "status file not written; `haproxystats check` will report this process as not running");
            }
            Err(_) => {}
        }
    }

    fn send_summary(&mut self, now: u64) {
        if !self.notifier.is_enabled() {
            return;
        }
        let summary = self.status.summary(now);
        if summary == self.last_summary {
            return;
        }
        match self.notifier.status(&summary) {
            Ok(()) => self.last_summary = summary,
            Err(error) => tracing::debug!(error = %error, "cannot send STATUS= to systemd"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    use super::*;
    use crate::health::status::{STATUS_FILE_NAME, SinkStatus};

    fn receive_all(receiver: &UnixDatagram) -> Vec<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = receiver.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    }

    #[test]
    fn ready_tick_stopping_write_the_file_and_notify_systemd() {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&socket).expect("bind");
        receiver
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let notifier =
            Notifier::from_vars(Some(socket.as_os_str()), Some("30000000".as_ref()), None, 1)
                .expect("notifier");
        let path = dir.path().join(STATUS_FILE_NAME);
        let mut health = Reporter::new(path.clone(), notifier, true, 100);

        health.ready(100);
        assert_eq!(
            receive_all(&receiver),
            ["READY=1", "STATUS=queue 0, in flight 0, no pull yet"]
        );
        assert_eq!(Status::read(&path).expect("written").updated_at, 100);

        health.status_mut().queue_depth = 4;
        health.status_mut().last_pull_ok = Some(101);
        health.status_mut().sinks = vec![SinkStatus {
            name: "kafka".into(),
            backlog: 7,
            capacity: 100,
            dropped_lines: 0,
            last_push_ok: None,
            cannot_deliver: None,
        }];
        health.tick(102);
        assert_eq!(
            receive_all(&receiver),
            [
                "STATUS=queue 4, in flight 0, last pull 1s ago; kafka: backlog 7 lines, no push yet",
                "WATCHDOG=1"
            ]
        );
        let written = Status::read(&path).expect("rewritten");
        assert_eq!((written.updated_at, written.queue_depth), (102, 4));
        assert_eq!(written, *health.status());

        // Unchanged summary: only the watchdog ping.
        health.tick(102);
        assert_eq!(receive_all(&receiver), ["WATCHDOG=1"]);

        health.stopping(103);
        assert_eq!(
            receive_all(&receiver),
            ["STOPPING=1", "STATUS=stopping: draining"]
        );
        assert_eq!(Status::read(&path).expect("kept").updated_at, 103);
    }

    #[test]
    fn a_status_file_that_cannot_be_written_does_not_stop_anything() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing-dir").join(STATUS_FILE_NAME);
        let mut health = Reporter::new(path.clone(), Notifier::disabled(), false, 1);
        health.ready(1);
        health.tick(2);
        assert!(health.write_failing);
        std::fs::create_dir(dir.path().join("missing-dir")).expect("mkdir");
        health.tick(3);
        assert!(!health.write_failing);
        assert_eq!(Status::read(&path).expect("written").updated_at, 3);
    }

    #[test]
    fn from_config_creates_base_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::defaults();
        config.paths.base_dir = dir.path().join("state");
        let mut health = Reporter::from_config(&config, true);
        health.tick(unix_now());
        assert!(status_path(&config).is_file());
    }
}
