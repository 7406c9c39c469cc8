//! One real HAProxy in master-worker mode (`haproxy -W -S <master.sock>`),
//! the way HAProxy 2.5+ is run today: a master CLI socket, a stats socket
//! of the same worker (to compare with), an HTTP stats page with `stats uri
//! /stats` and `stats auth admin:s3cret`, and one frontend `fe_0` → backend
//! `be_0` (one server, the [`HttpResponder`], no health checks, so that an
//! instance left alone keeps its counters still).
//!
//! The master runs in the foreground as our child and is stopped by PID on
//! drop (SIGTERM: the master stops its workers).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::haproxy::{IO_TIMEOUT, START_TIMEOUT, http_get};
use super::process::{
    Proc, TempRoot, create_dir, free_ports, require_binary, temp_root, wait_until, write_file,
};
use super::responder::HttpResponder;

/// The `stats auth` of the stats page.
pub const STATS_USER: &str = "admin";
/// The `stats auth` password of the stats page.
pub const STATS_PASSWORD: &str = "s3cret";

/// A master-worker HAProxy.
pub struct MasterWorker {
    // Drops first: the processes, then the responder, then the files.
    proc: Option<Proc>,
    responder: HttpResponder,
    frontend: SocketAddr,
    stats_page: SocketAddr,
    tls_stats_page: SocketAddr,
    root: TempRoot,
}

impl MasterWorker {
    /// Starts it and returns once the master lists a worker and the
    /// worker's stats socket answers.
    pub fn start() -> MasterWorker {
        let binary = require_binary("haproxy", "haproxy");
        let root = temp_root("haproxystats-mw-");
        create_dir(&root.path().join("sockets"));
        let responder = HttpResponder::start();
        let ports = free_ports(3);
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let mut mw = MasterWorker {
            proc: None,
            responder,
            frontend: at(ports[0]),
            stats_page: at(ports[1]),
            tls_stats_page: at(ports[2]),
            root,
        };
        mw.make_certificate();
        let config = mw.root.path().join("haproxy.cfg");
        write_file(&config, &mw.config());
        let mut cmd = Command::new(binary);
        cmd.arg("-W")
            .arg("-S")
            .arg(mw.master_socket())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .current_dir(mw.root.path());
        mw.proc = Some(Proc::spawn(
            "haproxy-master",
            &mut cmd,
            &mw.root.path().join("haproxy.log"),
        ));
        wait_until(
            START_TIMEOUT,
            "the master to list a worker and its stats socket to answer",
            || {
                let worker = mw.current_worker().ok()?;
                let info = mw.stats_socket_command("show info").ok()?;
                info.contains(&format!("Pid: {worker}")).then_some(())
            },
            || mw.log_tail(),
        );
        mw
    }

    fn config(&self) -> String {
        format!(
            "global\n    nbthread 1\n    stats socket {socket} mode 600 level admin\n    \
             hard-stop-after 3s\n\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    \
             timeout server 10s\n    timeout http-request 10s\n\n\
             frontend fe_0\n    bind {frontend}\n    default_backend be_0\n\n\
             backend be_0\n    server srv_0_0 {responder}\n\n\
             listen stats\n    bind {stats_page}\n    bind {tls_stats_page} ssl crt {pem}\n    stats enable\n    stats uri /stats\n    \
             stats auth {STATS_USER}:{STATS_PASSWORD}\n",
            socket = self.stats_socket().display(),
            frontend = self.frontend,
            responder = self.responder.addr(),
            stats_page = self.stats_page,
            tls_stats_page = self.tls_stats_page,
            pem = self.root.path().join("site.pem").display(),
        )
    }

    /// A self-signed certificate for `127.0.0.1` (`ca.pem`) and HAProxy's
    /// `crt` file (certificate and key, `site.pem`).
    fn make_certificate(&self) {
        let openssl = require_binary("openssl", "openssl");
        let (key, ca) = (self.root.path().join("key.pem"), self.ca_file());
        let output = Command::new(openssl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&ca)
            .output()
            .unwrap_or_else(|e| panic!("openssl req: {e}"));
        assert!(output.status.success(), "openssl req: {output:?}");
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
        write_file(
            &self.root.path().join("site.pem"),
            &(read(&ca) + &read(&key)),
        );
    }

    /// The certificate a client must trust to reach the TLS stats page.
    pub fn ca_file(&self) -> PathBuf {
        self.root.path().join("ca.pem")
    }

    /// `127.0.0.1:<port>` of the stats page over TLS.
    pub fn tls_stats_page(&self) -> SocketAddr {
        self.tls_stats_page
    }

    /// The master CLI socket (`-S`).
    pub fn master_socket(&self) -> PathBuf {
        self.root.path().join("master.sock")
    }

    /// The directory holding only the worker's stats socket, `stats.sock`.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.path().join("sockets")
    }

    /// The worker's stats socket.
    pub fn stats_socket(&self) -> PathBuf {
        self.socket_dir().join("stats.sock")
    }

    /// `127.0.0.1:<port>` of the stats page (`/stats`).
    pub fn stats_page(&self) -> SocketAddr {
        self.stats_page
    }

    /// The frontend `fe_0`.
    pub fn frontend(&self) -> SocketAddr {
        self.frontend
    }

    /// Sends `requests` GETs through `fe_0`; panics unless each is a 200.
    pub fn generate_traffic(&self, requests: usize) {
        for r in 0..requests {
            let status = http_get(self.frontend, &format!("/r/{r}"))
                .unwrap_or_else(|e| panic!("GET via fe_0: {e}\n{}", self.log_tail()));
            assert_eq!(status, 200, "{}", self.log_tail());
        }
    }

    /// One command on the master CLI; the master answers once we shut our
    /// side for writing.
    pub fn master_command(&self, command: &str) -> io::Result<String> {
        let mut stream = UnixStream::connect(self.master_socket())?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(format!("{command}\n").as_bytes())?;
        stream.shutdown(Shutdown::Write)?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    }

    /// One command on the worker's stats socket.
    pub fn stats_socket_command(&self, command: &str) -> io::Result<String> {
        super::haproxy::stats_command_unix(&self.stats_socket(), command)
    }

    /// `(current, old)` worker PIDs from `show proc`.
    pub fn workers(&self) -> io::Result<(Vec<u32>, Vec<u32>)> {
        let reply = self.master_command("show proc")?;
        let (mut current, mut old) = (Vec::new(), Vec::new());
        let mut section = "";
        for line in reply.lines() {
            if let Some(title) = line.strip_prefix('#') {
                section = if title.trim() == "workers" {
                    "current"
                } else if title.trim() == "old workers" {
                    "old"
                } else {
                    ""
                };
                continue;
            }
            let pid = line.split_whitespace().next().and_then(|p| p.parse().ok());
            match (section, pid) {
                ("current", Some(pid)) => current.push(pid),
                ("old", Some(pid)) => old.push(pid),
                _ => {}
            }
        }
        Ok((current, old))
    }

    /// The PID of the one current worker.
    pub fn current_worker(&self) -> io::Result<u32> {
        let (current, _) = self.workers()?;
        current
            .first()
            .copied()
            .ok_or_else(|| io::Error::other("no current worker"))
    }

    /// Opens a connection to `fe_0` with a request never finished: it keeps
    /// the worker serving it alive, old, after a reload (until
    /// `hard-stop-after`, 3 s), like a long download would.
    pub fn hold_a_connection(&self) -> TcpStream {
        let mut stream = TcpStream::connect_timeout(&self.frontend, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect fe_0: {e}"));
        let _ = stream.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n");
        stream
    }

    /// Stops the master and its workers (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.stop();
        }
    }

    /// The end of HAProxy's log.
    pub fn log_tail(&self) -> String {
        super::process::tail(&self.root.path().join("haproxy.log"), 4096)
    }

    /// The temporary directory of its files.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for MasterWorker {
    fn drop(&mut self) {
        self.stop();
    }
}
