//! `haproxystats pull` against real HAProxy instances (SPEC §3, issue 4):
//! the binary as users run it, its snapshot directories and its logs.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{FleetOptions, HaproxyFleet};

const BIN: &str = env!("CARGO_BIN_EXE_haproxystats");

/// A running `haproxystats pull` with its own base dir and captured log.
struct PullRun {
    child: Option<Child>,
    root: tempfile::TempDir,
}

impl PullRun {
    /// Starts `haproxystats pull` with a `[pull]` section pulling every
    /// socket of `socket_dir`; `extra` `[pull]` lines come from a `-d` file
    /// read after it, so they override (as an SRE's conf.d would).
    fn start(socket_dir: &Path, extra: &str) -> PullRun {
        PullRun::start_with_env(socket_dir, extra, &[])
    }

    /// [`PullRun::start`] with `env` set for the binary.
    fn start_with_env(socket_dir: &Path, extra: &str, env: &[(&str, &Path)]) -> PullRun {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let conf = root.path().join("haproxystats.conf");
        let text = format!(
            "[pull]\n\
             loglevel = debug\n\
             socket-dir = {sockets}\n\
             dst-dir = {root}/incoming\n\
             tmp-dst-dir = {root}/incoming.tmp\n\
             retries = 1\n\
             timeout = 0.2\n\
             interval = 0.1\n\
             pull-timeout = 0.9\n\
             pull-interval = 1\n",
            sockets = socket_dir.display(),
            root = root.path().display(),
        );
        fs::write(&conf, text).unwrap_or_else(|e| panic!("write conf: {e}"));
        let conf_d = root.path().join("conf.d");
        fs::create_dir(&conf_d).unwrap_or_else(|e| panic!("conf.d: {e}"));
        fs::write(conf_d.join("50-test.conf"), format!("[pull]\n{extra}\n"))
            .unwrap_or_else(|e| panic!("write conf.d: {e}"));
        let log = fs::File::create(root.path().join("pull.log"))
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(BIN)
            .args(["pull", "-f"])
            .arg(&conf)
            .arg("-d")
            .arg(&conf_d)
            .env_remove("HAPROXYSTATS_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN} pull: {e}"));
        PullRun {
            child: Some(child),
            root,
        }
    }

    fn dst(&self) -> PathBuf {
        self.root.path().join("incoming")
    }

    fn tmp(&self) -> PathBuf {
        self.root.path().join("incoming.tmp")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.root.path().join("pull.log")).unwrap_or_default()
    }

    /// Snapshot directory names in dst-dir, sorted.
    fn snapshots(&self) -> Vec<u64> {
        let mut names: Vec<u64> = fs::read_dir(self.dst())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort_unstable();
        names
    }

    /// Waits until dst-dir holds at least `n` snapshots.
    fn wait_snapshots(&self, n: usize, timeout: Duration) -> Vec<u64> {
        let start = Instant::now();
        loop {
            let found = self.snapshots();
            if found.len() >= n {
                return found;
            }
            if start.elapsed() > timeout {
                panic!(
                    "expected {n} snapshots within {timeout:?}, found {found:?}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_log(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            if start.elapsed() > timeout {
                panic!(
                    "'{needle}' not logged within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a log line holding `needle`, and answers it.
    fn wait_line(&self, needle: &str, timeout: Duration) -> String {
        self.wait_log(needle, timeout);
        let log = self.log();
        let line = log.lines().find(|l| l.contains(needle)).unwrap_or_default();
        line.to_owned()
    }

    /// SIGTERM, then waits for the exit (at most 10 s).
    fn stop(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("already stopped");
        };
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        // SAFETY: kill(2) on our own child's PID has no memory-safety concerns.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if start.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    panic!(
                        "pull did not exit within 10 s of SIGTERM; log:\n{}",
                        self.log()
                    );
                }
            }
        }
    }
}

impl Drop for PullRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn file_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every published snapshot holds an `_info` and a `_stat` of every socket,
/// with HAProxy's real replies in them.
fn assert_complete(dir: &Path, sockets: &[String]) {
    let expected: BTreeSet<String> = sockets
        .iter()
        .flat_map(|s| [format!("{s}_info"), format!("{s}_stat")])
        .collect();
    assert_eq!(file_names(dir), expected, "{}", dir.display());
    for socket in sockets {
        let info = fs::read_to_string(dir.join(format!("{socket}_info"))).unwrap_or_default();
        assert!(info.contains("Name: HAProxy"), "{socket}_info: {info}");
        let stat = fs::read_to_string(dir.join(format!("{socket}_stat"))).unwrap_or_default();
        assert!(
            stat.starts_with("# pxname,svname,"),
            "{socket}_stat: {stat}"
        );
    }
}

fn unix_sockets(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("haproxy{i}.sock")).collect()
}

#[test]
fn pulls_unix_and_tcp_sockets_into_complete_snapshots_and_stops_cleanly() {
    let fleet = HaproxyFleet::start(4, FleetOptions::default().with_tcp_stats(3));
    // A plain file among the sockets is not a socket: ignored.
    fs::write(fleet.socket_dir().join("README"), b"not a socket").unwrap_or_else(|e| panic!("{e}"));
    let tcp = fleet.tcp_stats_addr();
    let mut pull = PullRun::start(&fleet.socket_dir(), &format!("servers = tcp://{tcp}"));
    let snapshots = pull.wait_snapshots(2, Duration::from_secs(10));
    let mut sockets = unix_sockets(4);
    sockets.push(tcp.to_string());
    for ts in &snapshots {
        assert_complete(&pull.dst().join(ts.to_string()), &sockets);
    }
    let status = pull.stop();
    assert_eq!(status.code(), Some(0), "log:\n{}", pull.log());
    assert!(file_names(&pull.tmp()).is_empty(), "tmp-dst-dir not empty");
    assert!(pull.log().contains("snapshot published"), "{}", pull.log());
}

#[test]
fn a_killed_instance_fails_every_cycle_over_1_5_s_with_retries_until_it_is_back() {
    let mut fleet = HaproxyFleet::start(2, FleetOptions::default());
    let pull = PullRun::start(&fleet.socket_dir(), "");
    pull.wait_snapshots(1, Duration::from_secs(10));
    fleet.kill(1);
    pull.wait_log("pull cycle failed", Duration::from_secs(5));
    let during_outage = pull.snapshots();
    // At most the cycle already running when the instance died published:
    // checked all along for 1.5 s, not once after a sleep.
    let watched = std::time::Instant::now();
    while watched.elapsed() < Duration::from_millis(1500) {
        assert!(
            pull.snapshots().len() <= during_outage.len() + 1,
            "snapshots published while an instance was down: {:?}",
            pull.snapshots()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = pull.log();
    assert!(log.contains("retrying"), "no retry in log:\n{log}");
    assert!(
        log.contains("haproxy1.sock"),
        "failing socket not named:\n{log}"
    );
    fleet.restart(1);
    let count = pull.snapshots().len();
    pull.wait_snapshots(count + 2, Duration::from_secs(10));
    for ts in pull.snapshots() {
        assert_complete(&pull.dst().join(ts.to_string()), &unix_sockets(2));
    }
    assert!(
        file_names(&pull.tmp()).len() <= 1,
        "partial dirs left in tmp"
    );
}

#[test]
fn reloads_during_pulls_leave_only_complete_snapshots() {
    let mut fleet = HaproxyFleet::start(1, FleetOptions::default());
    let pull = PullRun::start(&fleet.socket_dir(), "");
    pull.wait_snapshots(1, Duration::from_secs(10));
    // Reload back to back until two pull cycles ran from start to end
    // while a reload was in progress (the new process started, the old one
    // not yet gone).
    let mut reloads = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let overlapping = loop {
        let started = SystemTime::now();
        fleet.reload(0);
        reloads.push((started, SystemTime::now()));
        let overlapping = cycles_during(&pull.log(), &reloads);
        if overlapping.len() >= 2 {
            break overlapping;
        }
        assert!(
            Instant::now() < deadline,
            "no pull cycle within any of {} reloads; log:\n{}",
            reloads.len(),
            pull.log()
        );
    };
    eprintln!(
        "{} reloads; cycles during one: {overlapping:?}",
        reloads.len()
    );
    let count = pull.snapshots().len();
    pull.wait_snapshots(count + 2, Duration::from_secs(10));
    for ts in pull.snapshots() {
        assert_complete(&pull.dst().join(ts.to_string()), &unix_sockets(1));
    }
}

/// The `ts` of the pull cycles that started ("pull cycle started") and
/// ended ("snapshot published" or "pull cycle failed") within one of the
/// `reloads` (start, end) windows, by the log's timestamps.
fn cycles_during(log: &str, reloads: &[(SystemTime, SystemTime)]) -> Vec<u64> {
    let mut started = std::collections::HashMap::new();
    let mut during = Vec::new();
    for line in log.lines() {
        let (Some(at), Some(ts)) = (log_time(line), field_ts(line)) else {
            continue;
        };
        if line.contains("pull cycle started") {
            started.insert(ts, at);
        } else if (line.contains("snapshot published") || line.contains("pull cycle failed"))
            && let Some(&start) = started.get(&ts)
            && reloads.iter().any(|&(from, to)| from <= start && at <= to)
        {
            during.push(ts);
        }
    }
    during
}

/// The `ts=` field of a log line.
fn field_ts(line: &str) -> Option<u64> {
    let rest = &line[line.find(" ts=")? + 4..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The time a log line starts with (`2026-11-29T00:38:46.734644Z`, UTC).
fn log_time(line: &str) -> Option<SystemTime> {
    let stamp = line.split(' ').next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, min, s) = (hms.next()??, hms.next()??, hms.next()??);
    let nanos: u32 = format!("{fraction:0<9}").get(..9)?.parse().ok()?;
    // Days since the epoch of a civil date (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + min * 60 + s;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[test]
fn a_socket_that_never_answers_is_cancelled_by_pull_timeout() {
    let fleet = HaproxyFleet::start(1, FleetOptions::default());
    let mute_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mute_path = mute_dir.path().join("mute.sock");
    let listener = UnixListener::bind(&mute_path).unwrap_or_else(|e| panic!("bind: {e}"));
    // Accepts every connection and never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let mut pull = PullRun::start(
        &fleet.socket_dir(),
        &format!("servers = unix://{}", mute_path.display()),
    );
    pull.wait_log("pull-timeout reached", Duration::from_secs(6));
    std::thread::sleep(Duration::from_millis(1200));
    assert!(pull.snapshots().is_empty(), "{:?}", pull.snapshots());
    assert!(pull.log().contains("mute.sock"), "{}", pull.log());
    assert_eq!(pull.stop().code(), Some(0));
    assert!(file_names(&pull.tmp()).is_empty(), "tmp-dst-dir not empty");
}

#[test]
fn a_reply_larger_than_buffer_limit_fails_the_cycle() {
    let fleet = HaproxyFleet::start(1, FleetOptions::default());
    let pull = PullRun::start(&fleet.socket_dir(), "buffer-limit = 600");
    pull.wait_log("buffer-limit", Duration::from_secs(6));
    assert!(pull.snapshots().is_empty(), "{:?}", pull.snapshots());
}

#[test]
fn a_full_queue_suspends_pulling_until_the_consumer_catches_up() {
    let fleet = HaproxyFleet::start(1, FleetOptions::default());
    let pull = PullRun::start(&fleet.socket_dir(), "queue-size = 2");
    let first = pull.wait_snapshots(2, Duration::from_secs(10));
    pull.wait_log("pulling suspended", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(pull.snapshots().len(), 2, "pulled past queue-size");
    // The consumer takes one: pulling resumes.
    fs::remove_dir_all(pull.dst().join(first[0].to_string())).unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    while !pull.snapshots().iter().any(|ts| *ts > first[1]) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "pulling did not resume; log:\n{}",
            pull.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_removed_dst_dir_is_recreated() {
    let fleet = HaproxyFleet::start(1, FleetOptions::default());
    let pull = PullRun::start(&fleet.socket_dir(), "");
    pull.wait_snapshots(1, Duration::from_secs(10));
    fs::remove_dir_all(pull.dst()).unwrap_or_else(|e| panic!("{e}"));
    let again = pull.wait_snapshots(1, Duration::from_secs(5));
    assert_complete(&pull.dst().join(again[0].to_string()), &unix_sockets(1));
}

#[test]
fn directory_names_follow_the_interval_phase_without_duplicates() {
    let fleet = HaproxyFleet::start(1, FleetOptions::default());
    let pull = PullRun::start(&fleet.socket_dir(), "pull-interval = 4");
    let names = pull.wait_snapshots(4, Duration::from_secs(20));
    let distinct: BTreeSet<_> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "duplicates: {names:?}");
    for pair in names.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (3..=5).contains(&gap),
            "not on a 4 s beat (±1 s): {names:?}\nlog:\n{}",
            pull.log()
        );
    }
    // Every name is within 1 s of first + 4k: the phase of the first start.
    for name in &names {
        let offset = (name - names[0]) % 4;
        assert!(offset != 2, "off the beat's phase by 2 s: {names:?}");
    }
}

// ---- master CLI and HTTP stats page sources (issue 17) ----

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};

use support::master_worker::{MasterWorker, STATS_PASSWORD, STATS_USER};
use support::{parse_show_info, parse_show_stat};

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

/// `show stat` fields that stay still on an idle instance, for the rows
/// of `fe_0`, `be_0` and its server.
fn still_fields(stat: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for row in parse_show_stat(stat) {
        let (Some(px), Some(sv)) = (row.get("pxname"), row.get("svname")) else {
            continue;
        };
        if px == "stats" {
            continue; // the page's own proxy counts the HTTP pulls
        }
        for field in [
            "stot", "bin", "bout", "req_tot", "hrsp_2xx", "status", "lbtot", "scur", "econ",
        ] {
            if let Some(value) = row.get(field) {
                fields.insert(format!("{px}/{sv}/{field}"), value.clone());
            }
        }
    }
    fields
}

fn master_servers(mw: &MasterWorker) -> String {
    format!("servers = master://{}", mw.master_socket().display())
}

#[test]
fn the_master_the_stats_socket_and_the_stats_pages_of_one_worker_give_the_same_numbers() {
    let mw = MasterWorker::start();
    mw.generate_traffic(20);
    let page = mw.stats_page();
    let tls_page = mw.tls_stats_page();
    let ca_file = mw.ca_file();
    let pull = PullRun::start_with_env(
        &mw.socket_dir(),
        &format!(
            "{}, http://{STATS_USER}:{STATS_PASSWORD}@{page}/stats, \
             https://{STATS_USER}:{STATS_PASSWORD}@{tls_page}/stats",
            master_servers(&mw)
        ),
        &[("SSL_CERT_FILE", &ca_file)],
    );
    let worker = mw
        .current_worker()
        .unwrap_or_else(|e| panic!("show proc: {e}"));
    for ts in pull.wait_snapshots(2, Duration::from_secs(10)) {
        let dir = pull.dst().join(ts.to_string());
        let http_file = format!("{page}_stat");
        let https_file = format!("{tls_page}_stat");
        let expected: BTreeSet<String> = [
            "stats.sock_info",
            "stats.sock_stat",
            "master.sock@1_info",
            "master.sock@1_stat",
            http_file.as_str(),
            https_file.as_str(),
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(file_names(&dir), expected, "{}", dir.display());

        let socket_info = parse_show_info(&read(&dir, "stats.sock_info"));
        let master_info = parse_show_info(&read(&dir, "master.sock@1_info"));
        for key in [
            "Name",
            "Version",
            "Pid",
            "Process_num",
            "Nbthread",
            "Maxconn",
        ] {
            assert_eq!(socket_info.get(key), master_info.get(key), "{key}");
        }
        assert_eq!(master_info.get("Pid"), Some(&worker.to_string()));

        let socket = still_fields(&read(&dir, "stats.sock_stat"));
        assert_eq!(
            socket.get("fe_0/FRONTEND/stot").map(String::as_str),
            Some("20"),
            "{socket:?}"
        );
        assert_eq!(still_fields(&read(&dir, "master.sock@1_stat")), socket);
        assert_eq!(still_fields(&read(&dir, &http_file)), socket);
        assert_eq!(still_fields(&read(&dir, &https_file)), socket);
    }
    let log = pull.log();
    assert_eq!(log.matches("no daemon metrics").count(), 2, "{log}");
    assert!(
        !log.contains(STATS_PASSWORD) && !log.contains("admin:"),
        "{log}"
    );
}

#[test]
fn a_master_that_is_gone_fails_the_cycle_naming_it() {
    let mut mw = MasterWorker::start();
    let pull = PullRun::start(
        &mw.socket_dir(),
        &format!("socket-dir =\n{}", master_servers(&mw)),
    );
    let first = pull.wait_snapshots(1, Duration::from_secs(10));
    assert_complete(
        &pull.dst().join(first[0].to_string()),
        &["master.sock@1".into()],
    );
    mw.stop();
    let failed = pull.wait_line("pull cycle failed", Duration::from_secs(6));
    assert!(
        failed.contains("failed_sockets=master.sock") && failed.contains("cannot connect"),
        "{failed}"
    );
}

#[test]
fn reloads_on_the_master_cli_during_pulls_leave_only_complete_snapshots_of_current_workers() {
    let mw = MasterWorker::start();
    let pull = PullRun::start(
        &mw.socket_dir(),
        &format!("socket-dir =\n{}", master_servers(&mw)),
    );
    pull.wait_snapshots(1, Duration::from_secs(10));
    let before = pull.snapshots().len();
    let mut held = Vec::new();
    let mut reloads_leaving_an_old_worker = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        // A connection in progress keeps the worker alive, old, after the reload.
        held.push(mw.hold_a_connection());
        let previous = mw
            .current_worker()
            .unwrap_or_else(|e| panic!("show proc: {e}"));
        // The master re-executes itself: its answer may be cut; what counts
        // is the new worker.
        let _ = mw.master_command("reload");
        let Some(old_listed) = poll(Duration::from_secs(10), || {
            let (current, old) = mw.workers().ok()?;
            (!current.is_empty() && !current.contains(&previous)).then(|| old.contains(&previous))
        }) else {
            panic!("no new worker after a reload\n{}", mw.log_tail());
        };
        reloads_leaving_an_old_worker += usize::from(old_listed);
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(
        reloads_leaving_an_old_worker >= 2,
        "old workers never seen: the test did not test anything\n{}",
        mw.log_tail()
    );
    pull.wait_snapshots(pull.snapshots().len() + 2, Duration::from_secs(10));
    let snapshots = pull.snapshots();
    assert!(
        snapshots.len() >= before + 4,
        "too few snapshots during the reloads: {snapshots:?}\n{}",
        pull.log()
    );
    for ts in snapshots {
        let dir = pull.dst().join(ts.to_string());
        assert_complete(&dir, &["master.sock@1".into()]);
        // An old worker says it is stopping, and its frontend is stopped.
        let info = parse_show_info(&read(&dir, "master.sock@1_info"));
        assert_eq!(
            info.get("Stopping").map(String::as_str),
            Some("0"),
            "{ts}: {info:?}"
        );
        let stat = still_fields(&read(&dir, "master.sock@1_stat"));
        assert_eq!(
            stat.get("fe_0/FRONTEND/status").map(String::as_str),
            Some("OPEN"),
            "{ts}: {stat:?}"
        );
    }
    let log = pull.log();
    eprintln!(
        "{} cycles refused a worker made old during the pull",
        log.matches("no longer current").count()
    );
    drop(held);
}

/// Polls `probe` every 20 ms for at most `timeout`.
fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn wrong_credentials_fail_the_cycle_with_a_401_line_that_does_not_show_them() {
    let mw = MasterWorker::start();
    let page = mw.stats_page();
    let pull = PullRun::start(
        &mw.socket_dir(),
        &format!("socket-dir =\nservers = http://{STATS_USER}:not-the-password@{page}/stats"),
    );
    let failed = pull.wait_line("pull cycle failed", Duration::from_secs(6));
    let log = pull.log();
    assert!(
        failed.contains(&format!("failed_sockets={page}")) && failed.contains("401 Unauthorized"),
        "{failed}"
    );
    assert!(pull.snapshots().is_empty(), "{:?}", pull.snapshots());
    assert!(!log.contains("not-the-password"), "{log}");
}

#[test]
fn a_stats_page_that_answers_slowly_is_cut_by_pull_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    // Answers 200 at once, then one byte of body every 100 ms, forever.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                            Transfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                while stream.write_all(b"1\r\n#\r\n").is_ok() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    });
    let mut pull = PullRun::start(
        Path::new("/nonexistent"),
        &format!("socket-dir =\nservers = http://{addr}/stats"),
    );
    let failed = pull.wait_line("pull-timeout reached", Duration::from_secs(6));
    assert!(
        failed.contains(&format!("failed_sockets={addr}")),
        "{failed}"
    );
    assert!(pull.snapshots().is_empty(), "{:?}", pull.snapshots());
    assert_eq!(pull.stop().code(), Some(0));
    assert!(file_names(&pull.tmp()).is_empty(), "tmp-dst-dir not empty");
}

#[test]
fn a_stats_page_obeys_buffer_limit_and_retries_and_a_wrong_page_or_untrusted_certificate_fails() {
    let mw = MasterWorker::start();
    let auth = format!("{STATS_USER}:{STATS_PASSWORD}");
    let page = mw.stats_page();
    let limited = PullRun::start(
        &mw.socket_dir(),
        &format!("socket-dir =\nservers = http://{auth}@{page}/stats\nbuffer-limit = 600"),
    );
    // Not the stats uri: the proxy has no server for it.
    let elsewhere = PullRun::start(
        &mw.socket_dir(),
        &format!("socket-dir =\nservers = http://{auth}@{page}/not-stats"),
    );
    let tls_page = mw.tls_stats_page();
    let untrusted = PullRun::start(
        &mw.socket_dir(),
        &format!("socket-dir =\nservers = https://{auth}@{tls_page}/stats"),
    );
    let failed = limited.wait_line("pull cycle failed", Duration::from_secs(6));
    assert!(
        failed.contains(&format!("failed_sockets={page}"))
            && failed.contains("larger than buffer-limit (600 bytes)"),
        "{failed}"
    );
    let failed = untrusted.wait_line("pull cycle failed", Duration::from_secs(6));
    assert!(
        failed.contains("cannot connect after 2 attempt(s)")
            && failed.contains("certificate verify failed"),
        "{failed}"
    );
    assert!(untrusted.log().contains("retrying"), "{}", untrusted.log());
    let failed = elsewhere.wait_line("pull cycle failed", Duration::from_secs(6));
    assert!(
        failed.contains("the stats page answered 503 Service Unavailable"),
        "{failed}"
    );
    for run in [&limited, &untrusted, &elsewhere] {
        assert!(run.snapshots().is_empty(), "{:?}", run.snapshots());
    }
}

// Issue 24: what a hostile source can make the puller log, and masters that
// list what no HAProxy lists.

use support::fake_master::{self, FakeMaster};

/// The longest line a failure quoting hostile sources may take: three
/// sources, each quoted at most 200 bytes, and our own words.
const LONGEST_LINE: usize = 2_048;

/// Fails unless every byte of `log` is printable (newlines end lines) and
/// no line is longer than [`LONGEST_LINE`].
fn assert_log_is_clean_and_bounded(log: &str) {
    let raw: Vec<(usize, u8)> = log
        .bytes()
        .enumerate()
        .filter(|(_, b)| (*b < 0x20 && *b != b'\n') || *b == 0x7f)
        .collect();
    assert!(
        raw.is_empty(),
        "{} raw control byte(s) in the log, first at {:?}\n{log}",
        raw.len(),
        raw.first()
    );
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(
        longest <= LONGEST_LINE,
        "a line of {longest} bytes\n{}",
        log.lines()
            .map(|line| line.chars().take(300).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// [`assert_log_is_clean_and_bounded`], and a few lines a cycle in all,
/// not one per worker of a master listing thousands.
fn assert_small_clean_log(log: &str) {
    assert_log_is_clean_and_bounded(log);
    assert!(log.len() < 32 * 1024, "{} bytes of log:\n{log}", log.len());
}

/// A TCP server answering every request with `200 OK` and `body`.
fn page_answering(body: Vec<u8>) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            });
        }
    });
    addr
}

/// What a terminal obeys: clear the screen, a title, red, a carriage return
/// that would overwrite the line's start, then 10 KB more.
fn hostile(tag: &str) -> Vec<u8> {
    let mut said =
        format!("\x1b[2J\x1b]0;{tag}\x07\x1b[31m{tag}\rERROR forged\x1b[0m ").into_bytes();
    said.extend(std::iter::repeat_n(b'Z', 10_000));
    said.extend_from_slice(b"\nsecond line\n\n");
    said
}

#[test]
fn what_a_hostile_stats_page_or_master_cli_says_is_logged_escaped_and_cut() {
    let page = page_answering(hostile("page"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // A master whose `show proc` is garbage...
    let garbage = FakeMaster::start(dir.path(), "garbage.sock", |_| hostile("proc"));
    // ... and one whose worker answers for itself with it.
    let listing = fake_master::show_proc(&[(100, 1)]);
    let relaying = FakeMaster::start(dir.path(), "relay.sock", move |command| {
        if command == "show proc" {
            listing.clone().into_bytes()
        } else {
            hostile("worker")
        }
    });
    let pull = PullRun::start(
        Path::new("/nonexistent"),
        &format!(
            "socket-dir =\nservers = http://{page}/stats, master://{}, master://{}",
            garbage.path().display(),
            relaying.path().display()
        ),
    );
    let failed = pull.wait_line("pull cycle failed", Duration::from_secs(6));
    for (source, tag) in [
        (page.to_string(), "page"),
        ("garbage.sock".into(), "proc"),
        ("relay.sock@1".into(), "worker"),
    ] {
        // What each said is there, escaped, then cut.
        let quoted = format!("{source}: ");
        let escaped =
            format!("\\x1b[2J\\x1b]0;{tag}\\x07\\x1b[31m{tag}\\rERROR forged\\x1b[0m ZZZ");
        assert!(
            failed.contains(&quoted) && failed.contains(&escaped),
            "{source}: {escaped}\n{failed}"
        );
    }
    // Cut after a few hundred bytes.
    assert!(failed.contains("more bytes)"), "{failed}");
    assert!(!failed.contains(&"Z".repeat(200)), "{failed}");
    let two_failures = poll(Duration::from_secs(6), || {
        (pull.log().matches("pull cycle failed").count() >= 2).then_some(())
    });
    assert!(two_failures.is_some(), "{}", pull.log());
    assert_log_is_clean_and_bounded(&pull.log());
}

/// A fake master listing `workers` (PID, relative number) that relays
/// `show info` / `show stat` to each as HAProxy 2.7 answers them.
fn master_of(dir: &Path, workers: &[(u32, u32)]) -> FakeMaster {
    let listing = fake_master::show_proc(workers);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stat");
    let info = fs::read_to_string(fixtures.join("2.7.1_show_info.txt"))
        .unwrap_or_else(|e| panic!("show info fixture: {e}"));
    let stat = fs::read_to_string(fixtures.join("2.7.1_show_stat.csv"))
        .unwrap_or_else(|e| panic!("show stat fixture: {e}"));
    FakeMaster::start(dir, "master.sock", move |command| {
        let reply = if command == "show proc" {
            return listing.clone().into_bytes();
        } else if command.ends_with(" show info") {
            let pid = fake_master::target_pid(command).unwrap_or(0);
            info.replace("Pid: 10\n", &format!("Pid: {pid}\n"))
        } else if command.ends_with(" show stat") {
            stat.clone()
        } else {
            return b"Unknown command.\n\n".to_vec();
        };
        // A CLI reply through the master ends with an empty line.
        format!("{}\n\n", reply.trim_end()).into_bytes()
    })
}

#[test]
fn a_master_listing_5000_workers_gets_at_most_master_worker_limit_pulled_and_one_line_now_and_then()
{
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let workers: Vec<(u32, u32)> = (1..=5_000).map(|n| (10_000 + n, n)).collect();
    let master = master_of(dir.path(), &workers);
    let pull = PullRun::start(
        Path::new("/nonexistent"),
        &format!(
            "socket-dir =\nservers = master://{}\npull-timeout = 8",
            master.path().display()
        ),
    );
    let snapshots = pull.wait_snapshots(4, Duration::from_secs(30));
    let expected: BTreeSet<String> = (1..=256)
        .flat_map(|n| {
            [
                format!("master.sock@{n}_info"),
                format!("master.sock@{n}_stat"),
            ]
        })
        .collect();
    for ts in &snapshots {
        assert_eq!(
            file_names(&pull.dst().join(ts.to_string())),
            expected,
            "{ts}"
        );
    }
    let log = pull.log();
    // Said once every 10 s at most (a cycle logs as it ends, up to a
    // couple of seconds after its start): once if the cycles took under 8 s.
    let said = log
        .lines()
        .filter(|line| line.contains("5000 current workers listed, over master-worker-limit"))
        .count();
    let span = snapshots.last().unwrap_or(&0) - snapshots.first().unwrap_or(&0);
    let most = usize::try_from((span + 2) / 10 + 1).unwrap_or(usize::MAX);
    assert!(
        (1..=most).contains(&said),
        "said {said} times in {span} s\n{log}"
    );
    assert_small_clean_log(&log);
}

#[test]
fn a_master_listing_5000_workers_then_refusing_connections_costs_a_few_short_lines_a_cycle() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let listing = fake_master::show_proc(&(1..=5_000).map(|n| (10_000 + n, n)).collect::<Vec<_>>());
    let path = dir.path().join("master.sock");
    // It lists its workers once, then is gone: every request to a worker
    // fails to connect, and is retried.
    let _master = FakeMaster::start(dir.path(), "master.sock", move |_| {
        let _ = fs::remove_file(&path);
        listing.clone().into_bytes()
    });
    let pull = PullRun::start(
        Path::new("/nonexistent"),
        &format!(
            "socket-dir =\nservers = master://{}\nloglevel = info",
            dir.path().join("master.sock").display()
        ),
    );
    let three_failures = poll(Duration::from_secs(10), || {
        (pull.log().matches("pull cycle failed").count() >= 3).then_some(())
    });
    let log = pull.log();
    assert!(three_failures.is_some(), "{log}");
    let failed = log
        .lines()
        .find(|line| line.contains("pull cycle failed"))
        .unwrap_or_default();
    assert!(
        failed.contains("failed_sockets=master.sock@")
            && failed.contains(",+248 more")
            && failed.contains("and 504 more failed request(s)"),
        "{failed}"
    );
    let retries_to_workers = log
        .lines()
        .filter(|line| line.contains("retrying") && line.contains("command=@!"))
        .inspect(|line| assert!(line.contains(" WARN "), "{line}"))
        .count();
    assert_eq!(retries_to_workers, 1, "{log}");
    assert_small_clean_log(&log);
}

#[test]
fn workers_claiming_one_relative_number_are_pulled_apart_named_by_pid_and_warned_about() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let master = master_of(dir.path(), &[(101, 1), (102, 1), (103, 1), (104, 1)]);
    let pull = PullRun::start(
        Path::new("/nonexistent"),
        &format!(
            "socket-dir =\nservers = master://{}",
            master.path().display()
        ),
    );
    let ts = pull.wait_snapshots(1, Duration::from_secs(10))[0];
    let snapshot = pull.dst().join(ts.to_string());
    let expected: BTreeSet<String> = (101..=104)
        .flat_map(|pid| {
            [
                format!("master.sock@pid{pid}_info"),
                format!("master.sock@pid{pid}_stat"),
            ]
        })
        .collect();
    assert_eq!(file_names(&snapshot), expected);
    for pid in 101..=104 {
        let info = parse_show_info(&read(&snapshot, &format!("master.sock@pid{pid}_info")));
        assert_eq!(info.get("Pid"), Some(&pid.to_string()));
    }
    let warned = pull.wait_line("claimed more than once", Duration::from_secs(5));
    assert!(
        warned.contains("WARN") && warned.contains("(1 by 4 workers)"),
        "{warned}"
    );
    // The four are summed: four times one worker's sessions.
    let one = still_fields(&read(&snapshot, "master.sock@pid101_stat"));
    let sessions = |stat: &BTreeMap<String, String>| -> u64 {
        stat.get("myfrontend/FRONTEND/stot")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no myfrontend stot: {stat:?}"))
    };
    let replayed = replay_stot(&pull, &snapshot);
    assert_eq!(
        replayed,
        4 * sessions(&one),
        "replay of {}",
        snapshot.display()
    );
}

/// What `haproxystats replay` says of `myfrontend`'s `stot` in `snapshot`.
fn replay_stot(pull: &PullRun, snapshot: &Path) -> u64 {
    let output = Command::new(BIN)
        .arg("replay")
        .arg("-f")
        .arg(pull.root.path().join("haproxystats.conf"))
        .arg(snapshot)
        .env_remove("HAPROXYSTATS_LOG")
        .output()
        .unwrap_or_else(|e| panic!("replay: {e}"));
    let lines = String::from_utf8_lossy(&output.stdout).into_owned();
    lines
        .lines()
        .find(|line| line.contains(".frontend.myfrontend.") && line.contains(".stot "))
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no myfrontend stot in replay's lines: {output:?}"))
}
