//! A fleet of real HAProxy processes with stats sockets, for integration tests.
//!
//! Every instance runs the same proxies (same names, like the processes of one
//! multi-process HAProxy) on its own ports:
//! frontends `fe_0..`, backends `be_0..`, servers `srv_<backend>_<n>` that
//! point at one [`HttpResponder`], so they are UP and get traffic. Frontend
//! `fe_j` sends `/be_<k>/...` to `be_k` and everything else to `be_<j % backends>`.
//!
//! Each instance runs in the foreground (`haproxy -db -f <cfg>`) as our child,
//! with a UNIX stats socket `<tmp>/sockets/haproxy<i>.sock` (`level admin`)
//! and optionally a TCP one on `127.0.0.1:<free port>`. Its stdout/stderr go to
//! `<tmp>/logs/haproxy<i>.<generation>.log` and show up in every panic message.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{
    POLL, Proc, TempRoot, create_dir, free_ports, require_binary, tail, temp_root, wait_until,
    write_file,
};
use super::responder::HttpResponder;

/// How long [`HaproxyFleet::start`], `restart` and `reload` wait for a socket to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an old process may take to leave after a reload (`hard-stop-after` is 3 s).
pub const OLD_PROCESS_TIMEOUT: Duration = Duration::from_secs(6);

/// Timeout for one stats socket command or one HTTP request.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// `sizeof(sockaddr_un.sun_path)` on Linux.
const SUN_PATH_MAX: usize = 108;

/// How many times an instance is respawned with new ports after losing a port race.
const BIND_ATTEMPTS: usize = 3;

/// The shape of every instance of a fleet.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// Frontends per instance: `fe_0..fe_{n-1}`.
    pub frontends: usize,
    /// Backends per instance: `be_0..be_{n-1}`.
    pub backends: usize,
    /// Servers per backend: `srv_<backend>_0..`.
    pub servers_per_backend: usize,
    /// Index of the instance that also gets a TCP stats socket, if any.
    pub tcp_stats: Option<usize>,
    /// Health checks every second on every server (off for big fleets,
    /// where they would be most of the load).
    pub health_checks: bool,
}

impl Default for FleetOptions {
    /// 2 frontends, 2 backends, 2 servers per backend, no TCP stats socket.
    fn default() -> Self {
        FleetOptions {
            frontends: 2,
            backends: 2,
            servers_per_backend: 2,
            tcp_stats: None,
            health_checks: true,
        }
    }
}

impl FleetOptions {
    /// Gives instance `index` a TCP stats socket too.
    pub fn with_tcp_stats(mut self, index: usize) -> Self {
        self.tcp_stats = Some(index);
        self
    }

    /// Names of the frontends: `fe_0..`.
    pub fn frontend_names(&self) -> Vec<String> {
        (0..self.frontends).map(|j| format!("fe_{j}")).collect()
    }

    /// Names of the backends: `be_0..`.
    pub fn backend_names(&self) -> Vec<String> {
        (0..self.backends).map(|k| format!("be_{k}")).collect()
    }

    /// `(backend, server)` names of every server.
    pub fn server_names(&self) -> Vec<(String, String)> {
        (0..self.backends)
            .flat_map(|k| {
                (0..self.servers_per_backend)
                    .map(move |s| (format!("be_{k}"), format!("srv_{k}_{s}")))
            })
            .collect()
    }
}

/// One HAProxy instance: its files, ports and current process.
struct Instance {
    config: PathBuf,
    socket: PathBuf,
    frontend_ports: Vec<u16>,
    tcp_stats: Option<SocketAddr>,
    proc: Option<Proc>,
    generation: u32,
}

/// N real HAProxy processes, stopped by PID (SIGTERM, then SIGKILL) on drop.
pub struct HaproxyFleet {
    // Fields drop in order: processes first, then the responder, then the files.
    instances: Vec<Instance>,
    responder: HttpResponder,
    opts: FleetOptions,
    binary: PathBuf,
    pids_ever: Vec<u32>,
    root: TempRoot,
}

impl HaproxyFleet {
    /// Starts `n` instances concurrently and returns once every stats socket
    /// answers `show info` with the PID of its process. Panics (with the logs)
    /// if one fails to start within [`START_TIMEOUT`].
    pub fn start(n: usize, opts: FleetOptions) -> HaproxyFleet {
        assert!(n > 0, "a fleet needs at least one instance");
        assert!(opts.frontends > 0 && opts.backends > 0 && opts.servers_per_backend > 0);
        if let Some(t) = opts.tcp_stats {
            assert!(
                t < n,
                "tcp_stats instance {t} out of range for {n} instances"
            );
        }
        let binary = require_binary("haproxy", "haproxy");
        let root = temp_root("haproxystats-fleet-");
        create_dir(&root.path().join("sockets"));
        create_dir(&root.path().join("logs"));
        create_dir(&root.path().join("conf"));
        let responder = HttpResponder::start();
        let mut fleet = HaproxyFleet {
            instances: Vec::with_capacity(n),
            responder,
            opts,
            binary,
            pids_ever: Vec::new(),
            root,
        };
        for i in 0..n {
            let instance = Instance {
                config: fleet.root.path().join(format!("conf/haproxy{i}.cfg")),
                socket: fleet.socket_dir().join(format!("haproxy{i}.sock")),
                frontend_ports: Vec::new(),
                tcp_stats: None,
                proc: None,
                generation: 0,
            };
            // HAProxy binds `<path>.<pid>.tmp` first; all must fit sun_path.
            assert!(
                instance.socket.as_os_str().len() + 16 < SUN_PATH_MAX,
                "socket path {} too long for a UNIX socket; set TMPDIR to a shorter dir",
                instance.socket.display()
            );
            fleet.instances.push(instance);
            fleet.assign_ports(i);
        }
        // Spawn everything first, then poll all sockets.
        for i in 0..n {
            fleet.spawn(i, None);
        }
        let mut attempts = vec![1usize; n];
        let mut pending: Vec<usize> = (0..n).collect();
        let deadline = Instant::now() + START_TIMEOUT;
        while !pending.is_empty() {
            let mut still = Vec::new();
            for &i in &pending {
                let proc = fleet.instances[i].proc.as_mut().expect("spawned");
                if proc.try_exited().is_some() {
                    let log = proc.log_tail();
                    let lost_port_race = log.contains("cannot bind socket")
                        || log.contains("Address already in use");
                    if lost_port_race && attempts[i] < BIND_ATTEMPTS {
                        attempts[i] += 1;
                        fleet.instances[i].proc = None;
                        fleet.assign_ports(i);
                        fleet.instances[i].generation += 1;
                        fleet.spawn(i, None);
                        still.push(i);
                        continue;
                    }
                    panic!("haproxy instance {i} exited during startup\n{log}");
                }
                let pid = proc.pid();
                if !fleet.answers_with_pid(i, pid) {
                    still.push(i);
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = pending.iter().map(|&i| fleet.log_tail(i)).collect();
                panic!(
                    "timed out after {START_TIMEOUT:?} waiting for the stats sockets of instances {pending:?}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(POLL);
        }
        fleet
    }

    /// How many instances the fleet has (running or not).
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// True if the fleet has no instances (never: `start` needs one).
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The options the fleet was started with.
    pub fn options(&self) -> &FleetOptions {
        &self.opts
    }

    /// The temporary directory holding configs, sockets and logs.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The directory holding every UNIX stats socket (what haproxystats is pointed at).
    pub fn socket_dir(&self) -> PathBuf {
        self.root.path().join("sockets")
    }

    /// The UNIX stats socket of instance `i`: `<socket_dir>/haproxy<i>.sock`.
    pub fn socket_path(&self, i: usize) -> PathBuf {
        self.instances[i].socket.clone()
    }

    /// The generated config file of instance `i`.
    pub fn config_path(&self, i: usize) -> PathBuf {
        self.instances[i].config.clone()
    }

    /// The TCP stats socket (`127.0.0.1:<port>`); panics if no instance has one
    /// (see [`FleetOptions::with_tcp_stats`]).
    pub fn tcp_stats_addr(&self) -> SocketAddr {
        self.instances
            .iter()
            .find_map(|inst| inst.tcp_stats)
            .expect("no instance has a TCP stats socket: use FleetOptions::with_tcp_stats")
    }

    /// Addresses of the frontends of instance `i`, in `fe_0..` order.
    pub fn frontend_addrs(&self, i: usize) -> Vec<SocketAddr> {
        self.instances[i]
            .frontend_ports
            .iter()
            .map(|&p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect()
    }

    /// Where every server of every backend points.
    pub fn responder_addr(&self) -> SocketAddr {
        self.responder.addr()
    }

    /// The PID of instance `i`'s current process; panics if it is stopped.
    pub fn pid(&self, i: usize) -> u32 {
        self.instances[i]
            .proc
            .as_ref()
            .unwrap_or_else(|| panic!("haproxy instance {i} is not running"))
            .pid()
    }

    /// Every PID this fleet ever started (reloaded and killed ones included).
    pub fn pids_ever(&self) -> Vec<u32> {
        self.pids_ever.clone()
    }

    /// True if instance `i` has a process that has not exited.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.instances[i]
            .proc
            .as_mut()
            .is_some_and(|p| p.is_running())
    }

    /// Stops instance `i` now (SIGTERM, then SIGKILL after 2 s) and reaps it.
    /// Its socket file stays, like after a crash. No-op if already stopped.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut proc) = self.instances[i].proc.take() {
            proc.stop();
        }
    }

    /// Stops instance `i` if running and starts it again with the same config
    /// and ports; returns once its socket answers with the new PID.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.instances[i].generation += 1;
        let pid = self.spawn(i, None);
        self.wait_ready(i, pid);
    }

    /// Reloads instance `i` like `haproxy -sf`: starts a new process with
    /// `-sf <oldpid>`, waits until the socket answers with the new PID and
    /// until the old process has exited (and reaps it). Returns the new PID.
    pub fn reload(&mut self, i: usize) -> u32 {
        let mut old = self.instances[i]
            .proc
            .take()
            .unwrap_or_else(|| panic!("cannot reload haproxy instance {i}: it is not running"));
        self.instances[i].generation += 1;
        let new_pid = self.spawn(i, Some(old.pid()));
        self.wait_ready(i, new_pid);
        if old.wait_exit(OLD_PROCESS_TIMEOUT).is_none() {
            let log = old.log_tail();
            let new_log = self.log_tail(i);
            drop(old);
            panic!(
                "old haproxy process of instance {i} still running {OLD_PROCESS_TIMEOUT:?} after reload\n{log}\n{new_log}"
            );
        }
        new_pid
    }

    /// Sends `command` (e.g. `"show stat"`) to instance `i`'s UNIX stats socket
    /// and returns the reply; panics with the instance's log on error.
    pub fn show(&self, i: usize, command: &str) -> String {
        stats_command_unix(&self.instances[i].socket, command).unwrap_or_else(|e| {
            panic!(
                "stats command {command:?} on {}: {e}\n{}",
                self.instances[i].socket.display(),
                self.log_tail(i)
            )
        })
    }

    /// Like [`show`](Self::show) but returns the error instead of panicking.
    pub fn try_show(&self, i: usize, command: &str) -> io::Result<String> {
        stats_command_unix(&self.instances[i].socket, command)
    }

    /// Sends `command` to the TCP stats socket and returns the reply.
    pub fn show_tcp(&self, command: &str) -> String {
        let addr = self.tcp_stats_addr();
        stats_command_tcp(addr, command)
            .unwrap_or_else(|e| panic!("stats command {command:?} on tcp {addr}: {e}"))
    }

    /// `show stat` of instance `i`, parsed: one map per row, keyed by the CSV header.
    pub fn stats(&self, i: usize) -> Vec<BTreeMap<String, String>> {
        parse_show_stat(&self.show(i, "show stat"))
    }

    /// `show info` of instance `i`, parsed into `Name -> value`.
    pub fn info(&self, i: usize) -> BTreeMap<String, String> {
        parse_show_info(&self.show(i, "show info"))
    }

    /// One field of one `show stat` row of instance `i`, e.g.
    /// `stat(0, "fe_0", "FRONTEND", "stot")`; `None` if the row or field is missing.
    pub fn stat(&self, i: usize, pxname: &str, svname: &str, field: &str) -> Option<String> {
        self.stats(i)
            .into_iter()
            .find(|row| {
                row.get("pxname").map(String::as_str) == Some(pxname)
                    && row.get("svname").map(String::as_str) == Some(svname)
            })
            .and_then(|row| row.get(field).cloned())
    }

    /// A numeric `show stat` field (empty counts as 0); panics if missing.
    pub fn stat_u64(&self, i: usize, pxname: &str, svname: &str, field: &str) -> u64 {
        let value = self
            .stat(i, pxname, svname, field)
            .unwrap_or_else(|| panic!("instance {i}: no {pxname}/{svname} {field} in show stat"));
        if value.is_empty() {
            0
        } else {
            value.parse().unwrap_or_else(|e| {
                panic!("instance {i}: {pxname}/{svname} {field}={value:?}: {e}")
            })
        }
    }

    /// Waits until every server of every running instance reports status `UP`
    /// (health checks run every second); panics after `timeout`.
    pub fn wait_servers_up(&mut self, timeout: Duration) {
        let running: Vec<usize> = (0..self.len()).filter(|&i| self.is_running(i)).collect();
        let servers = self.opts.server_names();
        wait_until(
            timeout,
            "every server to be UP",
            || {
                running
                    .iter()
                    .all(|&i| {
                        let rows = self.try_show(i, "show stat").map(|s| parse_show_stat(&s));
                        let Ok(rows) = rows else { return false };
                        servers.iter().all(|(be, srv)| {
                            rows.iter().any(|r| {
                                r.get("pxname") == Some(be)
                                    && r.get("svname") == Some(srv)
                                    && r.get("status").map(String::as_str) == Some("UP")
                            })
                        })
                    })
                    .then_some(())
            },
            || {
                running
                    .iter()
                    .map(|&i| {
                        format!(
                            "{}\n{}",
                            self.try_show(i, "show stat").unwrap_or_default(),
                            self.log_tail(i)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        );
    }

    /// Sends `requests` blocking HTTP/1.1 GETs (`Connection: close`, so
    /// `stot` and `req_tot` both grow by one each) to every frontend of every
    /// running instance, spreading paths over all backends. Panics unless each
    /// answer is `200`. Returns how many requests were sent.
    pub fn generate_traffic(&mut self, requests: usize) -> usize {
        let running: Vec<usize> = (0..self.len()).filter(|&i| self.is_running(i)).collect();
        running
            .iter()
            .map(|&i| self.generate_traffic_to(i, requests))
            .sum()
    }

    /// Like [`generate_traffic`](Self::generate_traffic) for instance `i` only.
    pub fn generate_traffic_to(&self, i: usize, requests: usize) -> usize {
        let backends = self.opts.backends;
        let mut sent = 0;
        for (j, addr) in self.frontend_addrs(i).into_iter().enumerate() {
            for r in 0..requests {
                let path = format!("/be_{}/fe_{j}/{r}", r % backends);
                let status = http_get(addr, &path).unwrap_or_else(|e| {
                    panic!(
                        "GET http://{addr}{path} (instance {i}, fe_{j}): {e}\n{}",
                        self.log_tail(i)
                    )
                });
                assert_eq!(
                    status,
                    200,
                    "GET http://{addr}{path} (instance {i}, fe_{j}) answered {status}\n{}",
                    self.log_tail(i)
                );
                sent += 1;
            }
        }
        sent
    }

    /// The end of instance `i`'s current log (or a note if it is stopped).
    pub fn log_tail(&self, i: usize) -> String {
        match &self.instances[i].proc {
            Some(proc) => proc.log_tail(),
            None => format!(
                "haproxy instance {i} is not running; its last log {}:\n{}",
                self.log_path(i).display(),
                tail(&self.log_path(i), 4096)
            ),
        }
    }

    /// Log file of the current (or last) process of instance `i`.
    fn log_path(&self, i: usize) -> PathBuf {
        let generation = self.instances[i].generation;
        self.root
            .path()
            .join(format!("logs/haproxy{i}.{generation}.log"))
    }

    fn assign_ports(&mut self, i: usize) {
        let wants_tcp = self.opts.tcp_stats == Some(i);
        let mut ports = free_ports(self.opts.frontends + usize::from(wants_tcp));
        let inst = &mut self.instances[i];
        inst.tcp_stats =
            wants_tcp.then(|| SocketAddr::from(([127, 0, 0, 1], ports.pop().expect("port"))));
        inst.frontend_ports = ports;
        let config = render_config(inst, &self.opts, self.responder.addr());
        write_file(&inst.config, &config);
    }

    fn spawn(&mut self, i: usize, sf: Option<u32>) -> u32 {
        let log = self.log_path(i);
        let inst = &mut self.instances[i];
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-db")
            .arg("-f")
            .arg(&inst.config)
            .current_dir(self.root.path());
        if let Some(old) = sf {
            cmd.arg("-sf").arg(old.to_string());
        }
        let proc = Proc::spawn(format!("haproxy{i}"), &mut cmd, &log);
        let pid = proc.pid();
        inst.proc = Some(proc);
        self.pids_ever.push(pid);
        pid
    }

    fn answers_with_pid(&self, i: usize, pid: u32) -> bool {
        self.try_show(i, "show info")
            .map(|info| info.lines().any(|l| l.trim() == format!("Pid: {pid}")))
            .unwrap_or(false)
    }

    fn wait_ready(&mut self, i: usize, pid: u32) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let proc = self.instances[i].proc.as_mut().expect("spawned");
            if let Some(status) = proc.try_exited() {
                panic!(
                    "haproxy instance {i} exited ({status}) while starting\n{}",
                    proc.log_tail()
                );
            }
            if self.answers_with_pid(i, pid) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {START_TIMEOUT:?} waiting for {} to answer with Pid {pid}\n{}",
                    self.instances[i].socket.display(),
                    self.log_tail(i)
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for HaproxyFleet {
    fn drop(&mut self) {
        // SIGTERM everyone first so they stop in parallel, then reap each.
        for inst in &mut self.instances {
            if let Some(proc) = inst.proc.as_mut() {
                proc.terminate();
            }
        }
        for inst in &mut self.instances {
            if let Some(mut proc) = inst.proc.take() {
                proc.stop();
            }
        }
    }
}

fn render_config(inst: &Instance, opts: &FleetOptions, responder: SocketAddr) -> String {
    let mut c = String::new();
    c.push_str("global\n    nbthread 1\n");
    c.push_str(&format!(
        "    stats socket {} mode 600 level admin\n",
        inst.socket.display()
    ));
    if let Some(addr) = inst.tcp_stats {
        c.push_str(&format!("    stats socket ipv4@{addr} level admin\n"));
    }
    c.push_str(
        "    stats timeout 10s\n    hard-stop-after 3s\n\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    \
         timeout server 10s\n    timeout http-request 5s\n\n",
    );
    for (j, port) in inst.frontend_ports.iter().enumerate() {
        c.push_str(&format!("frontend fe_{j}\n    bind 127.0.0.1:{port}\n"));
        for k in 0..opts.backends {
            c.push_str(&format!(
                "    use_backend be_{k} if {{ path_beg /be_{k}/ }}\n"
            ));
        }
        c.push_str(&format!("    default_backend be_{}\n\n", j % opts.backends));
    }
    for k in 0..opts.backends {
        c.push_str(&format!(
            "backend be_{k}\n    balance roundrobin\n    option httpchk GET /health\n"
        ));
        let check = if opts.health_checks {
            " check inter 1s"
        } else {
            ""
        };
        for s in 0..opts.servers_per_backend {
            c.push_str(&format!("    server srv_{k}_{s} {responder}{check}\n"));
        }
        c.push('\n');
    }
    c
}

/// Sends one command to a UNIX stats socket and reads the reply to EOF.
pub fn stats_command_unix(path: &Path, command: &str) -> io::Result<String> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Sends one command to a TCP stats socket and reads the reply to EOF.
pub fn stats_command_tcp(addr: SocketAddr, command: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Parses a `show stat` reply (`# pxname,svname,...` header then CSV rows)
/// into one map per row. Panics if the header is missing.
pub fn parse_show_stat(reply: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = reply.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .unwrap_or_else(|| panic!("show stat reply without `# pxname,...` header: {reply:?}"));
    let names: Vec<&str> = header.split(',').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            names
                .iter()
                .zip(line.split(','))
                .filter(|(name, _)| !name.is_empty())
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect()
        })
        .collect()
}

/// Parses a `show info` reply into `Name -> value`.
pub fn parse_show_info(reply: &str) -> BTreeMap<String, String> {
    reply
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// One blocking `GET path` with `Connection: close`; returns the status code.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    // One write: several small ones would meet Nagle and delayed ACKs (40 ms each).
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: haproxystats-tests\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    let reply = String::from_utf8_lossy(&reply);
    reply
        .lines()
        .next()
        .and_then(|status_line| status_line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad HTTP reply: {reply:?}"),
            )
        })
}
