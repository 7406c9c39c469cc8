//! A real Graphite back end for integration tests: `carbon-cache` writing
//! whisper files into a temporary directory, fronted by `carbon-c-relay`.
//!
//! haproxystats sends to [`CarbonStack::relay_addr`]; the relay forwards every
//! line to the cache's line receiver; tests read points back from the whisper
//! files with `whisper-fetch`. Every whisper file keeps 1-second points for one
//! hour (`1s:1h`), so any timestamp within the last hour lands exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::process::{
    POLL, Proc, TempRoot, create_dir, free_ports, port_accepts, require_binary, tail, temp_root,
    write_file,
};

/// How long `start`/`start_relay` wait for the listening ports (python is slow
/// to start on a busy machine; typically about 1 s).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one `whisper-fetch` run may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Timeout for connecting to and writing to the relay.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a child is respawned with new ports after losing a port race.
const BIND_ATTEMPTS: usize = 3;

/// `carbon-cache` + `carbon-c-relay`, stopped by PID (SIGTERM, then SIGKILL) on drop.
pub struct CarbonStack {
    // Fields drop in order: processes first, then the files.
    relay: Option<Proc>,
    cache: Option<Proc>,
    relay_port: u16,
    line_port: u16,
    pickle_port: u16,
    query_port: u16,
    relay_binary: PathBuf,
    whisper_fetch: PathBuf,
    relay_generation: u32,
    pids_ever: Vec<u32>,
    root: TempRoot,
}

impl CarbonStack {
    /// Starts carbon-cache, waits until it listens, then starts the relay and
    /// waits until it listens. Panics with the logs on failure or after
    /// [`START_TIMEOUT`]; panics naming the Debian package if a binary is missing.
    pub fn start() -> CarbonStack {
        let cache_binary = require_binary("carbon-cache", "graphite-carbon");
        let relay_binary = require_binary("carbon-c-relay", "carbon-c-relay");
        let whisper_fetch = require_binary("whisper-fetch", "python3-whisper");
        let root = temp_root("haproxystats-carbon-");
        for dir in ["storage/whisper", "log", "run", "whitelists"] {
            create_dir(&root.path().join(dir));
        }
        write_file(
            &root.path().join("storage-schemas.conf"),
            "[everything]\npattern = .*\nretentions = 1s:1h\n",
        );
        let mut stack = CarbonStack {
            relay: None,
            cache: None,
            relay_port: 0,
            line_port: 0,
            pickle_port: 0,
            query_port: 0,
            relay_binary,
            whisper_fetch,
            relay_generation: 0,
            pids_ever: Vec::new(),
            root,
        };
        stack.start_cache(&cache_binary);
        stack.relay_port = free_ports(1)[0];
        for attempt in 1..=BIND_ATTEMPTS {
            match stack.try_start_relay() {
                Ok(()) => break,
                Err(log) if attempt < BIND_ATTEMPTS && log.contains("Address already in use") => {
                    stack.relay_port = free_ports(1)[0];
                }
                Err(log) => panic!("carbon-c-relay did not start\n{log}"),
            }
        }
        stack
    }

    /// Where haproxystats sends metrics: the relay's plaintext line port.
    pub fn relay_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.relay_port))
    }

    /// The cache's own plaintext line receiver (bypasses the relay).
    pub fn cache_line_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.line_port))
    }

    /// The cache's pickle receiver.
    pub fn cache_pickle_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.pickle_port))
    }

    /// The temporary directory holding configs, logs and whisper files.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The directory whisper files are written under (`<storage>/whisper`).
    pub fn whisper_dir(&self) -> PathBuf {
        self.root.path().join("storage/whisper")
    }

    /// The whisper file of a dotted metric path: `a.b.c` -> `<whisper>/a/b/c.wsp`.
    pub fn whisper_file(&self, path: &str) -> PathBuf {
        self.whisper_dir()
            .join(format!("{}.wsp", path.replace('.', "/")))
    }

    /// PID of carbon-cache.
    pub fn cache_pid(&self) -> u32 {
        self.cache.as_ref().expect("carbon-cache is running").pid()
    }

    /// PID of the current relay; panics if it is stopped.
    pub fn relay_pid(&self) -> u32 {
        self.relay
            .as_ref()
            .expect("carbon-c-relay is stopped (see stop_relay)")
            .pid()
    }

    /// Every PID this stack ever started (stopped relays included).
    pub fn pids_ever(&self) -> Vec<u32> {
        self.pids_ever.clone()
    }

    /// True while the relay runs.
    pub fn relay_running(&mut self) -> bool {
        self.relay.as_mut().is_some_and(|p| p.is_running())
    }

    /// Stops the relay now (SIGTERM, then SIGKILL after 2 s) and reaps it:
    /// connections to [`relay_addr`](Self::relay_addr) are refused until
    /// [`start_relay`](Self::start_relay). No-op if already stopped.
    pub fn stop_relay(&mut self) {
        if let Some(mut relay) = self.relay.take() {
            relay.stop();
        }
    }

    /// Starts the relay again on the same port and waits until it listens.
    pub fn start_relay(&mut self) {
        assert!(self.relay.is_none(), "carbon-c-relay is already running");
        if let Err(log) = self.try_start_relay() {
            panic!(
                "carbon-c-relay did not start again on {}\n{log}",
                self.relay_addr()
            );
        }
    }

    /// Sends plaintext lines (`path value timestamp`, newline added) to the
    /// relay in one connection. Errors (e.g. refused while the relay is
    /// stopped) are returned, not panicked on.
    pub fn send_lines(&self, lines: &[&str]) -> io::Result<()> {
        send_lines_to(self.relay_addr(), lines)
    }

    /// Every metric path that has a whisper file, dotted and sorted.
    pub fn metric_paths(&self) -> Vec<String> {
        let base = self.whisper_dir();
        let mut out = Vec::new();
        let mut stack = vec![base.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "wsp") {
                    let rel = path.strip_prefix(&base).expect("under whisper dir");
                    let rel = rel.with_extension("");
                    let parts: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    out.push(parts.join("."));
                }
            }
        }
        out.sort();
        out
    }

    /// Every non-empty point of `path` in the last hour, oldest first, as
    /// `(timestamp, value)`. Empty if the whisper file does not exist yet.
    pub fn fetch(&self, path: &str) -> Vec<(u64, f64)> {
        let now = unix_now();
        self.fetch_range(path, now.saturating_sub(3599), now)
    }

    /// Every non-empty point of `path` with `from < timestamp <= until`
    /// (whisper's interval), via `whisper-fetch --json`. Empty if no file.
    pub fn fetch_range(&self, path: &str, from: u64, until: u64) -> Vec<(u64, f64)> {
        if !self.whisper_file(path).exists() {
            return Vec::new();
        }
        self.try_fetch_range(path, from, until)
            .unwrap_or_else(|e| panic!("whisper-fetch {path}: {e}\n{}", self.logs()))
    }

    /// Polls until the point of `path` at `timestamp` is written (carbon-cache
    /// writes asynchronously) and returns its value, or `None` after `timeout`.
    /// Panics if carbon-cache died meanwhile.
    pub fn wait_for(&mut self, path: &str, timestamp: u64, timeout: Duration) -> Option<f64> {
        let deadline = Instant::now() + timeout;
        let file = self.whisper_file(path);
        loop {
            if file.exists()
                && let Ok(points) =
                    self.try_fetch_range(path, timestamp.saturating_sub(1), timestamp)
                && let Some(&(_, value)) = points.iter().find(|(t, _)| *t == timestamp)
            {
                return Some(value);
            }
            if let Some(cache) = self.cache.as_mut()
                && let Some(status) = cache.try_exited()
            {
                panic!(
                    "carbon-cache exited ({status}) while waiting for {path}\n{}",
                    self.logs()
                );
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every point of every whisper file with a timestamp in `from..=until`,
    /// read with whisper's own Python module (one interpreter for all files,
    /// not one `whisper-fetch` per metric): a whole test's worth at once.
    /// A file whose header cannot be read yet (carbon-cache is creating it
    /// right now) gives no points this time; callers poll, so its points
    /// come at a later call, or the caller names them as missing.
    pub fn points(&self, from: u64, until: u64) -> Points {
        // whisper-fetch's interpreter is the one with the `whisper` module.
        let shebang = fs::read_to_string(&self.whisper_fetch).unwrap_or_default();
        let python = shebang
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("#!"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no interpreter line in {}", self.whisper_fetch.display()));
        const DUMP: &str = "import os, sys, whisper\n\
            root, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n\
            for d, _, names in os.walk(root):\n\
            \x20   for name in names:\n\
            \x20       if not name.endswith('.wsp'):\n\
            \x20           continue\n\
            \x20       full = os.path.join(d, name)\n\
            \x20       path = os.path.relpath(full, root)[:-4].replace(os.sep, '.')\n\
            \x20       try:\n\
            \x20           (start, _, step), values = whisper.fetch(full, lo - 1, hi)\n\
            \x20       except whisper.CorruptWhisperFile:\n\
            \x20           continue\n\
            \x20       for i, v in enumerate(values):\n\
            \x20           if v is not None and lo <= start + i * step <= hi:\n\
            \x20               print(path, repr(v), start + i * step)\n";
        let output = Command::new(python)
            .args(["-c", DUMP])
            .arg(self.whisper_dir())
            .args([from.to_string(), until.to_string()])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap_or_else(|e| panic!("run {python}: {e}"));
        assert!(
            output.status.success(),
            "whisper dump failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                let (path, value, ts) = parse_line(line);
                ((path, ts), value)
            })
            .collect()
    }

    /// Polls the whisper files (carbon-cache writes in the background) until
    /// every one of `wanted` has a point in `from..=until`, then returns
    /// them all; panics after `timeout` naming some that never came.
    pub fn wait_points(
        &self,
        wanted: &BTreeSet<(String, u64)>,
        from: u64,
        until: u64,
        timeout: Duration,
    ) -> Points {
        let deadline = Instant::now() + timeout;
        loop {
            let points = self.points(from, until);
            let missing: Vec<&(String, u64)> =
                wanted.iter().filter(|k| !points.contains_key(*k)).collect();
            if missing.is_empty() {
                return points;
            }
            assert!(
                Instant::now() < deadline,
                "{} points never reached whisper, e.g. {:?}\n{}",
                missing.len(),
                &missing[..missing.len().min(5)],
                self.logs()
            );
            thread::sleep(Duration::from_millis(300));
        }
    }

    /// The end of both logs, for panic messages.
    pub fn logs(&self) -> String {
        let cache = match &self.cache {
            Some(p) => p.log_tail(),
            None => "carbon-cache is not running".to_string(),
        };
        let relay = match &self.relay {
            Some(p) => p.log_tail(),
            None => format!(
                "carbon-c-relay is stopped; last log:\n{}",
                tail(&self.relay_log(self.relay_generation), 4096)
            ),
        };
        format!("{cache}\n{relay}")
    }

    fn relay_log(&self, generation: u32) -> PathBuf {
        self.root
            .path()
            .join(format!("log/carbon-c-relay.{generation}.log"))
    }

    fn start_cache(&mut self, binary: &Path) {
        let root = self.root.path().to_path_buf();
        for attempt in 1..=BIND_ATTEMPTS {
            let ports = free_ports(3);
            (self.line_port, self.pickle_port, self.query_port) = (ports[0], ports[1], ports[2]);
            let conf = root.join("carbon.conf");
            write_file(&conf, &self.carbon_conf());
            let log = root.join(format!("log/carbon-cache.{attempt}.log"));
            let mut cmd = Command::new(binary);
            cmd.arg(format!("--config={}", conf.display()))
                .arg(format!(
                    "--pidfile={}",
                    root.join("run/carbon-cache-a.pid").display()
                ))
                .arg(format!("--logdir={}", root.join("log").display()))
                .arg("--nodaemon")
                .arg("start")
                .current_dir(&root)
                .env("PYTHONUNBUFFERED", "1")
                .env("PYTHONWARNINGS", "ignore")
                .env("PYTHONDONTWRITEBYTECODE", "1");
            let proc = Proc::spawn("carbon-cache", &mut cmd, &log);
            self.pids_ever.push(proc.pid());
            self.cache = Some(proc);
            let addrs = [self.line_port, self.pickle_port, self.query_port]
                .map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
            match self.wait_listening("carbon-cache", &addrs) {
                Ok(()) => return,
                Err(log) if attempt < BIND_ATTEMPTS && log.contains("Address already in use") => {
                    self.cache = None;
                }
                Err(log) => panic!("carbon-cache did not start\n{log}"),
            }
        }
    }

    /// Spawns the relay on `relay_port`; on failure returns its log (process reaped).
    fn try_start_relay(&mut self) -> Result<(), String> {
        let root = self.root.path().to_path_buf();
        let conf = root.join("relay.conf");
        write_file(
            &conf,
            &format!(
                "listen type linemode 127.0.0.1:{relay} proto tcp;\n\
                 cluster cache forward 127.0.0.1:{line} proto tcp;\n\
                 match * send to cache stop;\n",
                relay = self.relay_port,
                line = self.line_port,
            ),
        );
        self.relay_generation += 1;
        let log = self.relay_log(self.relay_generation);
        let mut cmd = Command::new(&self.relay_binary);
        // -s: submission mode, no statistics metrics of its own; -w 1: one worker.
        cmd.arg("-f")
            .arg(&conf)
            .args(["-s", "-w", "1", "-H", "haproxystats-tests"])
            .current_dir(&root);
        let mut proc = Proc::spawn("carbon-c-relay", &mut cmd, &log);
        // Its shutdown takes ~3 s of one-second polls; by the time it is
        // SIGKILLed (2 s) it has closed its listener and forwarded what it read.
        proc.expect_slow_stop();
        self.pids_ever.push(proc.pid());
        self.relay = Some(proc);
        let result = self.wait_listening("carbon-c-relay", &[self.relay_addr()]);
        if result.is_err() {
            self.relay = None;
        }
        result
    }

    /// Waits until every address accepts; Err(log) if the child exits or times out.
    fn wait_listening(&mut self, which: &str, addrs: &[SocketAddr]) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let proc = if which == "carbon-cache" {
                self.cache.as_mut()
            } else {
                self.relay.as_mut()
            }
            .expect("spawned");
            if let Some(status) = proc.try_exited() {
                return Err(format!(
                    "{which} exited ({status}) during startup\n{}",
                    proc.log_tail()
                ));
            }
            if addrs.iter().all(|&a| port_accepts(a)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {START_TIMEOUT:?} waiting for {which} to listen on {addrs:?}\n{}",
                    proc.log_tail()
                ));
            }
            thread::sleep(POLL);
        }
    }

    fn carbon_conf(&self) -> String {
        let root = self.root.path().display();
        format!(
            "[cache]\n\
             STORAGE_DIR = {root}/storage/\n\
             LOCAL_DATA_DIR = {root}/storage/whisper/\n\
             WHITELISTS_DIR = {root}/whitelists/\n\
             CONF_DIR = {root}/\n\
             LOG_DIR = {root}/log/\n\
             PID_DIR = {root}/run/\n\
             USER =\n\
             DATABASE = whisper\n\
             ENABLE_LOGROTATION = False\n\
             MAX_CACHE_SIZE = inf\n\
             MAX_UPDATES_PER_SECOND = inf\n\
             MAX_CREATES_PER_MINUTE = inf\n\
             MIN_TIMESTAMP_RESOLUTION = 1\n\
             LINE_RECEIVER_INTERFACE = 127.0.0.1\n\
             LINE_RECEIVER_PORT = {line}\n\
             ENABLE_UDP_LISTENER = False\n\
             PICKLE_RECEIVER_INTERFACE = 127.0.0.1\n\
             PICKLE_RECEIVER_PORT = {pickle}\n\
             CACHE_QUERY_INTERFACE = 127.0.0.1\n\
             CACHE_QUERY_PORT = {query}\n\
             USE_FLOW_CONTROL = True\n\
             CACHE_WRITE_STRATEGY = sorted\n\
             WHISPER_AUTOFLUSH = False\n\
             WHISPER_FALLOCATE_CREATE = True\n\
             CARBON_METRIC_INTERVAL = 0\n\
             ENABLE_TAGS = False\n\
             LOG_LISTENER_CONNECTIONS = False\n\
             LOG_UPDATES = False\n\
             LOG_CREATES = True\n\
             LOG_CACHE_HITS = False\n",
            line = self.line_port,
            pickle = self.pickle_port,
            query = self.query_port,
        )
    }

    /// One `whisper-fetch --json` run with a deadline; stdout goes to a file so
    /// a large reply can never block the child.
    fn try_fetch_range(
        &self,
        path: &str,
        from: u64,
        until: u64,
    ) -> Result<Vec<(u64, f64)>, String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let out_path = self.root.path().join(format!("run/fetch-{n}.out"));
        let err_path = self.root.path().join(format!("run/fetch-{n}.err"));
        let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
        let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
        let mut child = Command::new(&self.whisper_fetch)
            .arg("--json")
            .arg(format!("--from={from}"))
            .arg(format!("--until={until}"))
            .arg(self.whisper_file(path))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.whisper_fetch.display()))?;
        let deadline = Instant::now() + FETCH_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("whisper-fetch timed out after {FETCH_TIMEOUT:?}"));
            }
            thread::sleep(POLL);
        };
        let stdout = fs::read_to_string(&out_path).unwrap_or_default();
        let stderr = fs::read_to_string(&err_path).unwrap_or_default();
        let _ = fs::remove_file(&out_path);
        let _ = fs::remove_file(&err_path);
        if !status.success() {
            return Err(format!("whisper-fetch failed ({status}): {stderr}{stdout}"));
        }
        parse_whisper_json(&stdout)
    }
}

impl Drop for CarbonStack {
    fn drop(&mut self) {
        // SIGTERM both first so they stop in parallel, then reap each.
        for proc in [self.relay.as_mut(), self.cache.as_mut()]
            .into_iter()
            .flatten()
        {
            proc.terminate();
        }
        if let Some(mut relay) = self.relay.take() {
            relay.stop();
        }
        if let Some(mut cache) = self.cache.take() {
            cache.stop();
        }
    }
}

/// Points read back from whisper: `(path, timestamp)` → value.
pub type Points = BTreeMap<(String, u64), f64>;

/// `path value timestamp` read back, or a panic naming the line.
pub fn parse_line(line: &str) -> (String, f64, u64) {
    let fields: Vec<&str> = line.split(' ').collect();
    let [path, value, ts] = fields[..] else {
        panic!("not a Graphite line: {line:?}");
    };
    let value = value
        .parse()
        .unwrap_or_else(|e| panic!("value of {line:?}: {e}"));
    let ts = ts
        .parse()
        .unwrap_or_else(|e| panic!("timestamp of {line:?}: {e}"));
    (path.to_owned(), value, ts)
}

/// Sends plaintext lines (newline added) to `addr` in one connection.
pub fn send_lines_to(addr: SocketAddr, lines: &[&str]) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, SEND_TIMEOUT)?;
    stream.set_write_timeout(Some(SEND_TIMEOUT))?;
    let mut payload = String::new();
    for line in lines {
        payload.push_str(line);
        payload.push('\n');
    }
    stream.write_all(payload.as_bytes())?;
    stream.flush()?;
    stream.shutdown(Shutdown::Write)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Parses `whisper-fetch --json` output into the non-null `(timestamp, value)` points.
fn parse_whisper_json(text: &str) -> Result<Vec<(u64, f64)>, String> {
    let number = |key: &str| -> Result<u64, String> {
        let at = text
            .find(&format!("\"{key}\""))
            .ok_or_else(|| format!("no {key:?} in {text:?}"))?;
        let rest = &text[at + key.len() + 2..];
        let rest = rest.trim_start().strip_prefix(':').ok_or("expected ':'")?;
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .map_err(|e| format!("{key}: {e} in {text:?}"))
    };
    let start = number("start")?;
    let step = number("step")?;
    let open = text
        .find('[')
        .ok_or_else(|| format!("no values in {text:?}"))?;
    let close = text
        .rfind(']')
        .ok_or_else(|| format!("no values in {text:?}"))?;
    let body = text[open + 1..close].trim();
    let mut points = Vec::new();
    if body.is_empty() {
        return Ok(points);
    }
    for (k, raw) in body.split(',').enumerate() {
        let raw = raw.trim();
        if raw == "null" {
            continue;
        }
        let value: f64 = raw
            .parse()
            .map_err(|e| format!("value {raw:?}: {e} in {text:?}"))?;
        points.push((start + k as u64 * step, value));
    }
    Ok(points)
}
