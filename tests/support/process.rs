//! Child processes, binaries, free ports and deadlines shared by the HAProxy
//! and carbon helpers.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long a process gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// How often the waits poll.
pub const POLL: Duration = Duration::from_millis(20);

/// Finds `name` in `PATH` or the usual Debian bin dirs, or panics saying which
/// Debian package provides it. Never skips silently.
pub fn require_binary(name: &str, debian_package: &str) -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let fallbacks = [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ];
    from_path
        .into_iter()
        .chain(fallbacks.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "`{name}` was not found in PATH nor in /usr/sbin or /usr/bin: these tests \
                 need the real program; install the Debian package `{debian_package}` \
                 (apt-get install {debian_package})"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Ports handed out by [`free_ports`] in this test binary, never handed out twice.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Where [`free_ports`] looks: below Linux's ephemeral range (32768-60999), so
/// that no outgoing connection of any process can take a port between the
/// moment it is handed out and the moment a child binds it (bind to port 0
/// would give exactly those ephemeral ports). `contrib/run-tests.py`, which
/// runs several test binaries at once, gives each its own block in
/// `HAPROXYSTATS_TEST_PORTS` ("FIRST-LAST") so that they cannot collide either.
fn port_block() -> (u16, u16) {
    const DEFAULT: (u16, u16) = (10_000, 32_767);
    let Ok(text) = std::env::var("HAPROXYSTATS_TEST_PORTS") else {
        return DEFAULT;
    };
    let parsed = text
        .split_once('-')
        .and_then(|(first, last)| Some((first.parse::<u16>().ok()?, last.parse::<u16>().ok()?)));
    match parsed {
        Some((first, last)) if first >= 1024 && last.saturating_sub(first) >= 100 => (first, last),
        _ => panic!(
            "HAPROXYSTATS_TEST_PORTS={text:?}: expected FIRST-LAST, 1024 <= FIRST, at least 100 ports"
        ),
    }
}

/// `n` distinct free TCP ports on 127.0.0.1, from [`port_block`].
///
/// Each candidate is bound to check it is free; all listeners are held until
/// every port is chosen, and a port is never handed out twice in one test
/// binary, so parallel tests do not collide. The walk starts at an offset
/// taken from the process id, so two binaries sharing a block (two `cargo
/// test` by hand) are unlikely to walk the same ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    static NEXT: OnceLock<Mutex<u32>> = OnceLock::new();
    let (first, last) = port_block();
    let span = u32::from(last - first) + 1;
    let mut next = NEXT
        .get_or_init(|| Mutex::new(std::process::id().wrapping_mul(7919) % span))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut used = handed_out().lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    let mut tries = 0;
    while ports.len() < n {
        tries += 1;
        assert!(
            tries <= span,
            "could not find {n} free ports on 127.0.0.1 in {first}-{last}"
        );
        // `span` fits a u16 offset from `first`: the sum stays within `last`.
        let port = first + u16::try_from(*next % span).expect("offset below span");
        *next = next.wrapping_add(1);
        if used.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            used.insert(port);
            ports.push(port);
            held.push(listener);
        }
    }
    ports
}

/// One free TCP port on 127.0.0.1; see [`free_ports`].
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// True if something accepts TCP connections on `addr` right now.
pub fn port_accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// True if a process with this PID exists (zombies included): `/proc/<pid>`.
pub fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls `probe` every [`POLL`] until it returns `Some`, or panics after
/// `timeout` with `what` and the text `context()` returns (logs of the children).
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
    context: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                context()
            );
        }
        thread::sleep(POLL);
    }
}

/// The last `max` bytes of a file, lossily decoded, for panic messages.
pub fn tail(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            let text = String::from_utf8_lossy(&bytes[start..]);
            if start > 0 {
                format!("[...]{text}")
            } else {
                text.into_owned()
            }
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// A child process we started: its stdout and stderr go to a log file, and it
/// is stopped by PID (SIGTERM, [`TERM_GRACE`], SIGKILL) and reaped on drop.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
    slow_stop_expected: bool,
}

impl Proc {
    /// Spawns `cmd` with stdin from /dev/null and stdout+stderr appended to `log`.
    pub fn spawn(name: impl Into<String>, cmd: &mut Command, log: &Path) -> Proc {
        let name = name.into();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{name}: cannot open log {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot spawn {cmd:?}: {e}"));
        Proc {
            name,
            child,
            log: log.to_path_buf(),
            status: None,
            slow_stop_expected: false,
        }
    }

    /// Do not report the SIGKILL after [`TERM_GRACE`]: for programs whose
    /// graceful shutdown is known to take longer (carbon-c-relay polls once
    /// a second while shutting down and needs about 3 s).
    pub fn expect_slow_stop(&mut self) {
        self.slow_stop_expected = true;
    }

    /// The PID of the child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Name used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the log file holding the child's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The end of the child's log.
    pub fn log_tail(&self) -> String {
        format!(
            "--- {} (pid {}) log {} ---\n{}\n--- end of log ---",
            self.name,
            self.pid(),
            self.log.display(),
            tail(&self.log, 4096)
        )
    }

    /// The exit status if the child has exited (and reaps it).
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        self.try_exited().is_none()
    }

    /// Sends `signal` to the child's PID unless it was already reaped.
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.try_exited().is_none() {
            let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
            // SAFETY: kill(2) has no memory-safety preconditions; the PID is
            // our own unreaped child, so it cannot have been recycled.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// Sends SIGTERM without waiting (so several children can stop in parallel).
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits up to `timeout` for the child to exit; reaps it.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// SIGTERM, up to [`TERM_GRACE`] to exit, then SIGKILL; always reaps.
    pub fn stop(&mut self) -> ExitStatus {
        self.terminate();
        if let Some(status) = self.wait_exit(TERM_GRACE) {
            return status;
        }
        if !self.slow_stop_expected {
            eprintln!(
                "{} (pid {}) still running {TERM_GRACE:?} after SIGTERM: sending SIGKILL",
                self.name,
                self.pid()
            );
        }
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("{}: wait after SIGKILL: {e}", self.name));
        self.status = Some(status);
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `contents` to `path`, panicking with the path on error.
pub fn write_file(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Creates `path` and its parents, panicking with the path on error.
pub fn create_dir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
}

/// A fresh temporary directory whose name starts with `prefix`. Set
/// `SUPPORT_KEEP_TMP=1` to keep it after the test (see [`TempRoot`]).
pub fn temp_root(prefix: &str) -> TempRoot {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir");
    TempRoot { dir: Some(dir) }
}

/// A temporary directory removed on drop, unless `SUPPORT_KEEP_TMP` is set.
pub struct TempRoot {
    dir: Option<tempfile::TempDir>,
}

impl TempRoot {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("temp dir present").path()
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if std::env::var_os("SUPPORT_KEEP_TMP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("SUPPORT_KEEP_TMP: keeping {}", dir.keep().display());
        }
    }
}
