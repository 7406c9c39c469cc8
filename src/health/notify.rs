//! systemd's notification protocol (`sd_notify(3)`) for `Type=notify` units:
//! `READY=1` once running, `WATCHDOG=1` while healthy, `STATUS=...` for
//! `systemctl status`, `STOPPING=1` when draining.
//!
//! Each notification is one datagram of `KEY=VALUE` lines sent to the unix
//! socket named by `$NOTIFY_SOCKET`: a path, or an abstract socket when it
//! starts with `@`. Without `$NOTIFY_SOCKET` (not started by systemd, or not
//! `Type=notify`) every call is a no-op that succeeds.
//!
//! The watchdog is on when `$WATCHDOG_USEC` is set (and `$WATCHDOG_PID`, if
//! set, is this process): systemd kills and restarts the unit when no
//! `WATCHDOG=1` arrives within that time. Send it from the code whose health
//! it vouches for (the supervisor's tick), at least every
//! [`Notifier::watchdog_ping_interval`].
//!
//! std's `UnixDatagram` is all this takes, so no crate: the protocol is one
//! `send_to` per message.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

/// Talks to systemd, or does nothing when not run by it. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<Arc<Target>>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `$NOTIFY_SOCKET` as given, for error messages.
    name: String,
}

/// Why `$NOTIFY_SOCKET` or `$WATCHDOG_USEC` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor `@name`.
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor an abstract socket (@name)")]
    BadSocket(String),
    /// The address could not be built (too long, NUL byte...).
    #[error("NOTIFY_SOCKET={name:?}: {source}")]
    Address {
        /// `$NOTIFY_SOCKET`.
        name: String,
        /// What the system said.
        source: io::Error,
    },
    /// No datagram socket could be created.
    #[error("cannot create a socket for NOTIFY_SOCKET={name:?}: {source}")]
    Socket {
        /// `$NOTIFY_SOCKET`.
        name: String,
        /// What the system said.
        source: io::Error,
    },
    /// `$WATCHDOG_USEC` is not a positive integer.
    #[error("WATCHDOG_USEC={0:?} is not a positive number of microseconds")]
    BadWatchdog(String),
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`. When they
    /// cannot be used, logs a warning and returns [`Notifier::disabled`]
    /// (systemd will then time the start-up out, which says more than we can).
    pub fn from_env() -> Notifier {
        let var = |name| std::env::var_os(name);
        match Notifier::from_vars(
            var("NOTIFY_SOCKET").as_deref(),
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        ) {
            Ok(notifier) => notifier,
            Err(error) => {
                tracing::warn!(error = %error, "systemd notification disabled");
                Notifier::disabled()
            }
        }
    }

    /// [`Notifier::from_env`] with the variables passed in (for tests).
    /// `pid` is this process' id, compared with `$WATCHDOG_PID`.
    pub fn from_vars(
        notify_socket: Option<&OsStr>,
        watchdog_usec: Option<&OsStr>,
        watchdog_pid: Option<&OsStr>,
        pid: u32,
    ) -> Result<Notifier, NotifyError> {
        let Some(socket) = notify_socket.filter(|s| !s.is_empty()) else {
            return Ok(Notifier::disabled());
        };
        let name = socket.to_string_lossy().into_owned();
        let address_error = |source| NotifyError::Address {
            name: name.clone(),
            source,
        };
        let bytes = socket.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]).map_err(address_error)?,
            Some(b'/') => SocketAddr::from_pathname(socket).map_err(address_error)?,
            _ => return Err(NotifyError::BadSocket(name)),
        };
        let socket = UnixDatagram::unbound().map_err(|source| NotifyError::Socket {
            name: name.clone(),
            source,
        })?;
        Ok(Notifier {
            target: Some(Arc::new(Target { socket, addr, name })),
            watchdog: watchdog_timeout(watchdog_usec, watchdog_pid, pid)?,
        })
    }

    /// `true` when notifications go somewhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog timeout systemd enforces (`WatchdogSec=`), when on.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often to send `WATCHDOG=1`: half the timeout, as `sd_watchdog_enabled(3)` advises.
    pub fn watchdog_ping_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    /// `READY=1`: start-up is complete (systemd's `start` returns now).
    pub fn ready(&self) -> io::Result<()> {
        self.send("READY=1")
    }

    /// `WATCHDOG=1`: still healthy. Does nothing when the watchdog is off.
    pub fn watchdog(&self) -> io::Result<()> {
        if self.watchdog.is_none() {
            return Ok(());
        }
        self.send("WATCHDOG=1")
    }

    /// `STATUS=<text>`: one line shown by `systemctl status` (newlines in
    /// `text` become spaces).
    pub fn status(&self, text: &str) -> io::Result<()> {
        if self.target.is_none() {
            return Ok(());
        }
        self.send(&format!("STATUS={}", text.replace(['\n', '\r'], " ")))
    }

    /// `STOPPING=1`: draining has begun.
    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1")
    }

    /// Sends `message` (`KEY=VALUE` lines) as one datagram.
    pub fn send(&self, message: &str) -> io::Result<()> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let sent = target
            .socket
            .send_to_addr(message.as_bytes(), &target.addr)
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot notify systemd at {}: {error}", target.name),
                )
            })?;
        if sent == message.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "cannot notify systemd at {}: sent {sent} of {} bytes",
                target.name,
                message.len()
            )))
        }
    }
}

/// The watchdog timeout, when `$WATCHDOG_USEC` is set and meant for `pid`.
fn watchdog_timeout(
    usec: Option<&OsStr>,
    watchdog_pid: Option<&OsStr>,
    pid: u32,
) -> Result<Option<Duration>, NotifyError> {
    let Some(usec) = usec.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    // Meant for another process (we were started by one that was watched).
    if let Some(watched) = watchdog_pid.filter(|p| !p.is_empty())
        && watched.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(pid)
    {
        return Ok(None);
    }
    let text = usec.to_string_lossy();
    match text.parse::<u64>() {
        Ok(micros) if micros > 0 => Ok(Some(Duration::from_micros(micros))),
        _ => Err(NotifyError::BadWatchdog(text.into_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    /// A receiver bound where systemd's would be, and a notifier pointing at it.
    fn receiver(dir: &tempfile::TempDir) -> (UnixDatagram, Notifier) {
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).expect("bind receiver");
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let notifier =
            Notifier::from_vars(Some(path.as_os_str()), os("30000000"), None, 1).expect("notifier");
        (receiver, notifier)
    }

    fn receive(receiver: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = receiver.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn each_notification_is_one_datagram() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (receiver, notifier) = receiver(&dir);
        assert!(notifier.is_enabled());
        notifier.ready().expect("ready");
        assert_eq!(receive(&receiver), "READY=1");
        notifier.watchdog().expect("watchdog");
        assert_eq!(receive(&receiver), "WATCHDOG=1");
        notifier.status("queue 0\nbacklog 0").expect("status");
        assert_eq!(receive(&receiver), "STATUS=queue 0 backlog 0");
        notifier.clone().stopping().expect("stopping");
        assert_eq!(receive(&receiver), "STOPPING=1");
    }

    #[test]
    fn abstract_sockets_start_with_at() {
        let name = format!("haproxystats-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract addr");
        let receiver = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let notifier =
            Notifier::from_vars(os(&format!("@{name}")), None, None, 1).expect("notifier");
        notifier.ready().expect("ready");
        assert_eq!(receive(&receiver), "READY=1");
    }

    #[test]
    fn without_notify_socket_everything_is_a_silent_no_op() {
        for socket in [None, os("")] {
            let notifier = Notifier::from_vars(socket, os("1000000"), None, 1).expect("notifier");
            assert!(!notifier.is_enabled());
            assert_eq!(notifier.watchdog_timeout(), None);
            notifier.ready().expect("ready");
            notifier.watchdog().expect("watchdog");
            notifier.status("x").expect("status");
            notifier.stopping().expect("stopping");
        }
    }

    #[test]
    fn a_vanished_receiver_is_an_error_naming_the_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (receiver, notifier) = receiver(&dir);
        drop(receiver);
        std::fs::remove_file(dir.path().join("notify.sock")).expect("remove");
        let error = notifier.ready().expect_err("nobody listens");
        assert!(error.to_string().contains("notify.sock"), "{error}");
    }

    #[test]
    fn bad_notify_socket_is_refused() {
        assert!(matches!(
            Notifier::from_vars(os("relative/path"), None, None, 1),
            Err(NotifyError::BadSocket(_))
        ));
        let long = format!("/{}", "x".repeat(200));
        assert!(matches!(
            Notifier::from_vars(os(&long), None, None, 1),
            Err(NotifyError::Address { .. })
        ));
    }

    #[test]
    fn watchdog_comes_from_watchdog_usec_for_this_pid_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("unbound.sock");
        let socket = Some(path.as_os_str());
        let timeout = |usec, pid| {
            Notifier::from_vars(socket, usec, pid, 42)
                .map(|n| (n.watchdog_timeout(), n.watchdog_ping_interval()))
        };
        let secs = Duration::from_secs;
        let cases = [
            (None, None, Some((None, None))),
            (os("30000000"), None, Some((Some(secs(30)), Some(secs(15))))),
            (
                os("30000000"),
                os("42"),
                Some((Some(secs(30)), Some(secs(15)))),
            ),
            (os("30000000"), os("43"), Some((None, None))),
            (os("30000000"), os("junk"), Some((None, None))),
            (os(""), None, Some((None, None))),
            (os("0"), None, None),
            (os("soon"), None, None),
        ];
        for (usec, pid, expected) in cases {
            let got = timeout(usec, pid);
            match expected {
                Some(expected) => assert_eq!(got.ok(), Some(expected), "{usec:?} {pid:?}"),
                None => assert!(
                    matches!(got, Err(NotifyError::BadWatchdog(_))),
                    "{usec:?} {pid:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn watchdog_pings_are_not_sent_when_the_watchdog_is_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).expect("bind receiver");
        receiver.set_nonblocking(true).expect("nonblocking");
        let notifier =
            Notifier::from_vars(Some(path.as_os_str()), None, None, 1).expect("notifier");
        notifier.watchdog().expect("no-op");
        let mut buf = [0u8; 64];
        let error = receiver.recv(&mut buf).expect_err("nothing sent");
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    }
}
