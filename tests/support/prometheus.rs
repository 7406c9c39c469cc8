//! A real Prometheus (Debian's `prometheus`) scraping one target every
//! second, from a generated configuration in a temporary directory, read
//! back through its HTTP query API; and `promtool check metrics`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{Proc, free_port, require_binary, tail, wait_until};

/// One series of a query's answer: its labels (`__name__` included) and
/// its value as Prometheus prints it.
pub type Sample = (BTreeMap<String, String>, String);

/// A running Prometheus.
pub struct Prometheus {
    dir: tempfile::TempDir,
    log: PathBuf,
    addr: SocketAddr,
    flags: Vec<String>,
    proc: Option<Proc>,
}

impl Prometheus {
    /// Starts Prometheus scraping `http://<target><path>` every second;
    /// returns once it is ready.
    pub fn start(target: SocketAddr, path: &str) -> Prometheus {
        Prometheus::start_every(target, path, 1)
    }

    /// Starts Prometheus scraping `http://<target><path>` every `seconds`
    /// (each scrape given as long); returns once it is ready.
    pub fn start_every(target: SocketAddr, path: &str, seconds: u32) -> Prometheus {
        Prometheus::launch(
            &format!(
                "global:\n  scrape_interval: {seconds}s\n  scrape_timeout: {seconds}s\n\
                 scrape_configs:\n  - job_name: haproxystats\n    metrics_path: {path}\n\
                 \x20   static_configs:\n      - targets: ['{target}']\n"
            ),
            &[],
        )
    }

    /// Starts Prometheus as a remote-write receiver
    /// (`--web.enable-remote-write-receiver`, `/api/v1/write`), scraping
    /// nothing; returns once it is ready.
    pub fn receiver() -> Prometheus {
        Prometheus::launch("global: {}\n", &["--web.enable-remote-write-receiver"])
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn launch(configuration: &str, flags: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().expect("prometheus dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, configuration).expect("prometheus.yml");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = dir.path().join("prometheus.log");
        let mut prometheus = Prometheus {
            dir,
            log,
            addr,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            proc: None,
        };
        prometheus.start_again();
        prometheus
    }

    /// Stops it (SIGTERM): its data stays, for [`Prometheus::start_again`].
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Starts it again on the same address and data; returns once ready.
    pub fn start_again(&mut self) {
        let bin = require_binary("prometheus", "prometheus");
        let mut cmd = Command::new(bin);
        cmd.arg(format!(
            "--config.file={}",
            self.dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            self.dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={}", self.addr))
        .args(&self.flags);
        self.proc = Some(Proc::spawn("prometheus", &mut cmd, &self.log));
        wait_until(
            Duration::from_secs(30),
            "prometheus to be ready",
            || (http_get(self.addr, "/-/ready").ok()?.0 == 200).then_some(()),
            || self.log(),
        );
    }

    /// Its log, for panic messages.
    pub fn log(&self) -> String {
        tail(&self.log, 20_000)
    }

    /// The instant vector `query` evaluates to now.
    pub fn query(&self, query: &str) -> Vec<Sample> {
        query_api(self.addr, query)
    }
}

/// A running VictoriaMetrics (Debian's `victoria-metrics`), single node,
/// its remote-write receiver at `/api/v1/write`, its Prometheus query API
/// answering at once (`-search.latencyOffset=0s`).
pub struct VictoriaMetrics {
    _dir: tempfile::TempDir,
    log: PathBuf,
    addr: SocketAddr,
    _proc: Proc,
}

impl VictoriaMetrics {
    /// Starts it; returns once it answers.
    pub fn start() -> VictoriaMetrics {
        let bin = require_binary("victoria-metrics", "victoria-metrics");
        let dir = tempfile::tempdir().expect("victoria-metrics dir");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = dir.path().join("victoria-metrics.log");
        let mut cmd = Command::new(bin);
        cmd.arg(format!(
            "-storageDataPath={}",
            dir.path().join("data").display()
        ))
        .arg(format!("-httpListenAddr={addr}"))
        .arg("-search.latencyOffset=0s")
        .arg("-search.disableCache")
        .arg("-retentionPeriod=100y");
        let proc = Proc::spawn("victoria-metrics", &mut cmd, &log);
        let vm = VictoriaMetrics {
            _dir: dir,
            log,
            addr,
            _proc: proc,
        };
        wait_until(
            Duration::from_secs(30),
            "victoria-metrics to answer",
            || (http_get(vm.addr, "/health").ok()?.0 == 200).then_some(()),
            || vm.log(),
        );
        vm
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its log, for panic messages.
    pub fn log(&self) -> String {
        tail(&self.log, 20_000)
    }

    /// The instant vector `query` evaluates to now.
    pub fn query(&self, query: &str) -> Vec<Sample> {
        query_api(self.addr, query)
    }
}

/// The instant vector `query` evaluates to now, by the Prometheus query
/// API at `addr`.
fn query_api(addr: SocketAddr, query: &str) -> Vec<Sample> {
    let path = format!("/api/v1/query?query={}", url_encode(query));
    let (status, body) = http_get(addr, &path).expect("query the query API");
    assert_eq!(status, 200, "{query}: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON answer");
    let result = answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    result
        .iter()
        .map(|series| {
            let labels = series["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let value = series["value"][1].as_str().unwrap_or("").to_owned();
            (labels, value)
        })
        .collect()
}

/// `promtool check metrics` of `text`: its exit status and what it said.
pub fn promtool_check(text: &str) -> (bool, String) {
    let bin = require_binary("promtool", "prometheus");
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool output");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// `GET path` over HTTP/1.0: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// The samples of the range vector `selector` (e.g. `up[60s]`) of its
    /// first series, evaluated now: (timestamp in Unix seconds, value).
    pub fn samples(&self, selector: &str) -> Vec<(f64, String)> {
        let path = format!("/api/v1/query?query={}", url_encode(selector));
        let (status, body) = http_get(self.addr, &path).expect("query prometheus");
        assert_eq!(status, 200, "{selector}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON answer");
        answer["data"]["result"][0]["values"]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .map(|v| {
                        (
                            v[0].as_f64().unwrap_or(0.0),
                            v[1].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
