//! The Prometheus endpoint sink against the real programs: the daemon
//! (`haproxystats process`) processes snapshot fixtures with `[prometheus]`
//! and `[local-store]` on, a real Prometheus (Debian's `prometheus`)
//! scrapes it every second, and its query API must give, for every series,
//! the value of the Graphite line of the same snapshot (local-store holds
//! them); `promtool check metrics` finds nothing to say about the page;
//! names with quotes and backslashes come through escaped and read back
//! whole; a backend gone from the next snapshot is gone from Prometheus.
//! Also: a port in use stops the daemon with one line and exit 2, and the
//! field table agrees with what the real HAProxy says of its fields.
//! And, with a page of megabytes, every scrape of a real Prometheus that
//! starts while 500 idle connections are kept open, or while 64 clients ask
//! for the page and never read it, succeeds, and the daemon's memory stays
//! bounded (issue 24).

mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use haproxystats::sink::paths::{PathLayout, read_point};
use haproxystats::sink::prometheus::fields::{Field, INFO_FIELDS, MetricType, STAT_FIELDS, family};
use support::process::wait_until;
use support::prometheus::{Prometheus, Sample, VictoriaMetrics, http_get, promtool_check};
use support::{FleetOptions, HaproxyFleet, Haproxystats, free_port};

const STAT: &str = include_str!("fixtures/stat/2.6_show_stat.csv");
const INFO: &str = include_str!("fixtures/stat/2.5.5_show_info.txt");

/// A frontend whose name needs escaping in a label value (HAProxy's CSV
/// quotes it, doubling the quote).
const ODD_FRONTEND: &str = "fe\"q\\back";

/// `show stat` of the fixture, plus a frontend with an odd name and, when
/// `with_gone`, a backend `gone` with one server (rows copied from the
/// fixture's `fe.main` and `be.app`).
fn stat_csv(with_gone: bool) -> String {
    let mut csv = STAT.trim_end().to_owned();
    csv.push('\n');
    for line in STAT.lines() {
        if let Some(rest) = line.strip_prefix("fe.main,FRONTEND,") {
            csv.push_str(&format!("\"fe\"\"q\\back\",FRONTEND,{rest}\n"));
        }
        if with_gone && let Some(rest) = line.strip_prefix("be.app,") {
            if rest.starts_with("srv 2,") {
                continue;
            }
            csv.push_str(&format!("gone,{rest}\n"));
        }
    }
    csv
}

/// Publishes snapshot `ts` into `src` as the puller does (tmp + rename).
fn publish(src: &Path, ts: u64, with_gone: bool) {
    let tmp = src.with_file_name(format!("tmp-{ts}"));
    std::fs::create_dir_all(&tmp).expect("tmp");
    std::fs::write(tmp.join("lb.sock_stat"), stat_csv(with_gone)).expect("stat");
    std::fs::write(tmp.join("lb.sock_info"), INFO).expect("info");
    std::fs::rename(&tmp, src.join(ts.to_string())).expect("publish");
}

/// A series as this test compares them: its name and labels.
type Series = (String, BTreeMap<String, String>);

/// What Prometheus should hold after the Graphite lines `stats`: every
/// line's series (named by the sink's own mapping, which the unit tests pin
/// down) with Graphite's value.
fn expected_series(stats: &str, layout: &PathLayout) -> BTreeMap<Series, f64> {
    let mut expected = BTreeMap::new();
    for line in stats.lines() {
        let point = read_point(line, layout)
            .unwrap_or_else(|| panic!("a daemon line the sink cannot read: {line}"));
        let family = family(point.kind, point.metric);
        let labels = point
            .labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let value: f64 = point.value.parse().expect("a number");
        expected.insert((family.name, labels), value * family.scale.unwrap_or(1.0));
    }
    expected
}

fn stored(samples: Vec<Sample>) -> BTreeMap<Series, f64> {
    samples
        .into_iter()
        .map(|(mut labels, value)| {
            let name = labels.remove("__name__").unwrap_or_default();
            labels.remove("job");
            labels.remove("instance");
            (
                (name, labels),
                value.parse().expect("Prometheus prints numbers"),
            )
        })
        .collect()
}

fn same_values(expected: &BTreeMap<Series, f64>, got: &BTreeMap<Series, f64>) -> bool {
    expected.len() == got.len()
        && expected.iter().all(|(series, want)| {
            got.get(series)
                .is_some_and(|v| v == want || (v - want).abs() <= 1e-12 * want.abs())
        })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned()
}

fn write_config(root: &Path, listen: &str) -> std::path::PathBuf {
    write_config_with(root, listen, "")
}

/// The configuration, with `extra` options of `[prometheus]`.
fn write_config_with(root: &Path, listen: &str, extra: &str) -> std::path::PathBuf {
    let conf = root.join("haproxystats.conf");
    std::fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {root}\n\
             [pull]\nsocket-dir = {root}/sockets\n\
             [process]\nsrc-dir = {root}/incoming\n\
             [graphite]\nenabled = false\nnamespace = ns\nprefix-hostname = false\n\
             [local-store]\ndir = {root}/store\n\
             [prometheus]\nlisten = {listen}\n{extra}",
            root = root.display()
        ),
    )
    .expect("config");
    conf
}

#[test]
fn prometheus_stores_the_graphite_values_of_each_snapshot_and_forgets_a_vanished_backend() {
    let root = tempfile::tempdir().expect("tmp");
    let src = root.path().join("incoming");
    std::fs::create_dir_all(&src).expect("src");
    let endpoint: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let conf = write_config(root.path(), &endpoint.to_string());
    let ts = 1_700_000_000;
    publish(&src, ts, true);
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("log"));
    let prometheus = Prometheus::start(endpoint, "/metrics");
    let context = || format!("{}\n{}", daemon_log(root.path()), prometheus.log());

    let stats_of = |ts: u64| {
        let file = root.path().join(format!("store/{ts}/stats"));
        wait_until(
            Duration::from_secs(20),
            "the snapshot in local-store",
            || {
                let text = std::fs::read_to_string(&file).ok()?;
                (!src.join(ts.to_string()).exists()).then_some(text)
            },
            context,
        )
    };
    let layout = PathLayout {
        prefix: "ns.haproxy".into(),
        host: hostname().replace('.', "_"),
        group_namespace: None,
        lb_in_path: false,
        cluster_namespace: None,
    };
    let all = "{__name__=~\"haproxystats_.+\"}";

    let expected = expected_series(&stats_of(ts), &layout);
    assert!(expected.len() > 100, "{} series", expected.len());
    wait_until(
        Duration::from_secs(20),
        "Prometheus to hold every series with the Graphite line's value",
        || same_values(&expected, &stored(prometheus.query(all))).then_some(()),
        || {
            let got = stored(prometheus.query(all));
            let missing: Vec<_> = expected
                .iter()
                .filter(|(s, v)| got.get(*s) != Some(*v))
                .take(10)
                .collect();
            format!(
                "{} expected, {} stored; differing: {missing:?}\n{}",
                expected.len(),
                got.len(),
                context()
            )
        },
    );
    // A few by their literal names, labels read back whole.
    let host = layout.host.clone();
    let odd = prometheus.query(&format!(
        "haproxystats_frontend_req_tot_total{{frontend={ODD_FRONTEND:?}}}"
    ));
    let main = prometheus.query("haproxystats_frontend_req_tot_total{frontend=\"fe_main\"}");
    assert_eq!(odd.len(), 1, "{odd:?}");
    assert_eq!(
        odd[0].0.get("frontend").map(String::as_str),
        Some(ODD_FRONTEND)
    );
    assert_eq!(odd[0].0.get("host"), Some(&host));
    assert_eq!(odd[0].1, main[0].1);
    assert_eq!(
        prometheus.query("haproxystats_backend_stot_total{backend=\"gone\"}")[0].1,
        "4"
    );
    let (status, page) = http_get(endpoint, "/metrics").expect("scrape");
    assert_eq!(status, 200);
    assert!(
        page.contains("{host=\"") && page.contains(",frontend=\"fe\\\"q\\\\back\"}"),
        "escaped label value: {page}"
    );
    let (clean, said) = promtool_check(&page);
    assert!(clean && said.trim().is_empty(), "promtool: {said}");
    assert_eq!(http_get(endpoint, "/other").expect("404").0, 404);

    // The next snapshot has no backend `gone`: its series end.
    publish(&src, ts + 10, false);
    let expected = expected_series(&stats_of(ts + 10), &layout);
    wait_until(
        Duration::from_secs(20),
        "Prometheus to hold the next snapshot, without the vanished backend",
        || same_values(&expected, &stored(prometheus.query(all))).then_some(()),
        context,
    );
    assert!(prometheus.query("{backend=\"gone\"}").is_empty());
    assert!(!prometheus.query("{backend=\"be_app\"}").is_empty());
    let page = http_get(endpoint, "/metrics").expect("scrape").1;
    assert!(!page.contains("backend=\"gone\""), "{page}");
    assert_eq!(daemon.terminate(Duration::from_secs(15)), Some(0));
}

/// The configuration of a daemon pushing to `url` by remote write.
fn remote_write_config(root: &Path, url: &str) -> std::path::PathBuf {
    let conf = root.join("haproxystats.conf");
    std::fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {root}\n\
             [pull]\nsocket-dir = {root}/sockets\n\
             [process]\nsrc-dir = {root}/incoming\n\
             [graphite]\nenabled = false\nnamespace = ns\nprefix-hostname = false\n\
             [local-store]\ndir = {root}/store\n\
             [remote-write]\nurl = {url}\nmax-samples-per-request = 50\n",
            root = root.display()
        ),
    )
    .expect("config");
    conf
}

/// Every series haproxystats writes.
const ALL: &str = "{__name__=~\"haproxystats_.+\"}";

/// The daemon's layout of `remote_write_config`.
fn remote_write_layout() -> PathLayout {
    PathLayout {
        prefix: "ns.haproxy".into(),
        host: hostname().replace('.', "_"),
        group_namespace: None,
        lb_in_path: false,
        cluster_namespace: None,
    }
}

/// `query` gives every series of snapshot `ts` (its lines in local-store)
/// at `ts`, with the Graphite line's value.
fn assert_stored(
    root: &Path,
    ts: u64,
    query: &dyn Fn(&str) -> Vec<Sample>,
    context: &dyn Fn() -> String,
) {
    let stats = std::fs::read_to_string(root.join(format!("store/{ts}/stats")))
        .expect("the snapshot in local-store");
    let expected = expected_series(&stats, &remote_write_layout());
    assert!(expected.len() > 100, "{} series", expected.len());
    let got = stored(query(&format!("{ALL} @ {ts}")));
    let differing: Vec<_> = expected
        .iter()
        .filter(|(s, v)| got.get(*s) != Some(*v))
        .take(10)
        .collect();
    assert!(
        differing.is_empty(),
        "{} expected, {} stored; differing: {differing:?}\n{}",
        expected.len(),
        got.len(),
        context()
    );
}

/// Remote write (issue 28) into a real Prometheus: every series of the
/// snapshot, with the Graphite line's value, at the snapshot's `ts`, in
/// requests of at most 50 samples; acknowledged, so the snapshot leaves
/// src-dir. A snapshot Prometheus refuses (400, samples too old for its
/// head block) is counted, logged once and not retried: it leaves src-dir
/// too, and the next one is stored.
#[test]
fn remote_write_stores_every_series_of_a_snapshot_and_a_rejected_one_is_not_retried() {
    let root = tempfile::tempdir().expect("tmp");
    let src = root.path().join("incoming");
    std::fs::create_dir_all(&src).expect("src");
    let prometheus = Prometheus::receiver();
    let url = format!("http://{}/api/v1/write", prometheus.addr());
    let conf = remote_write_config(root.path(), &url);
    let now = unix_now();
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("log"));
    let context = || format!("{}\n{}", daemon_log(root.path()), prometheus.log());
    let acknowledged = |ts: u64| {
        wait_until(
            Duration::from_secs(30),
            "the snapshot acknowledged by every sink (gone from src-dir)",
            || (!src.join(ts.to_string()).exists()).then_some(()),
            context,
        )
    };
    let layout = remote_write_layout();
    let check_stored = |ts: u64| {
        assert_stored(root.path(), ts, &|q| prometheus.query(q), &context);
    };
    publish(&src, now, true);
    acknowledged(now);
    check_stored(now);

    // Three days old: before Prometheus' head block, answered 400.
    let rejected = "remote-write: the receiver rejected a request";
    let old = now - 3 * 24 * 3600;
    publish(&src, old, true);
    acknowledged(old);
    assert!(daemon_log(root.path()).contains(rejected), "{}", context());

    // The next one, without the backend `gone`, is stored again.
    publish(&src, now + 10, false);
    acknowledged(now + 10);
    let stats = std::fs::read_to_string(root.path().join(format!("store/{}/stats", now + 10)))
        .expect("local-store");
    let expected = expected_series(&stats, &layout);
    let got = stored(prometheus.query(&format!("{ALL} @ {}", now + 10)));
    for (series, value) in &expected {
        assert_eq!(got.get(series), Some(value), "{series:?}\n{}", context());
    }
    let log = daemon_log(root.path());
    assert_eq!(
        log.matches(rejected).count(),
        1,
        "one cause, logged once: {log}"
    );
    assert_eq!(daemon.terminate(Duration::from_secs(15)), Some(0));
}

/// The same into a real VictoriaMetrics (its `/api/v1/write`), read back
/// by its Prometheus query API.
#[test]
fn remote_write_into_victoria_metrics_stores_every_series_of_each_snapshot() {
    let root = tempfile::tempdir().expect("tmp");
    let src = root.path().join("incoming");
    std::fs::create_dir_all(&src).expect("src");
    let vm = VictoriaMetrics::start();
    let conf = remote_write_config(root.path(), &format!("http://{}/api/v1/write", vm.addr()));
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("log"));
    let context = || format!("{}\n{}", daemon_log(root.path()), vm.log());
    let now = unix_now();
    for ts in [now - 10, now] {
        publish(&src, ts, ts == now);
        wait_until(
            Duration::from_secs(30),
            "the snapshot acknowledged (gone from src-dir)",
            || (!src.join(ts.to_string()).exists()).then_some(()),
            context,
        );
    }
    for ts in [now - 10, now] {
        // VictoriaMetrics makes what it took searchable within a second or so.
        wait_until(
            Duration::from_secs(20),
            "VictoriaMetrics to hold every series of the snapshot",
            || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    assert_stored(root.path(), ts, &|q| vm.query(q), &context)
                }))
                .ok()
            },
            context,
        );
    }
    assert_stored(root.path(), now, &|q| vm.query(q), &context);
    assert_eq!(daemon.terminate(Duration::from_secs(15)), Some(0));
}

/// A receiver down for 20 s: the snapshots pulled meanwhile stay in
/// src-dir (not acknowledged) for as long, then every one is delivered and
/// stored once it is back; nothing is lost.
#[test]
fn remote_write_keeps_snapshots_while_the_receiver_is_down_20_s_and_delivers_all_after() {
    let root = tempfile::tempdir().expect("tmp");
    let src = root.path().join("incoming");
    std::fs::create_dir_all(&src).expect("src");
    let mut prometheus = Prometheus::receiver();
    let conf = remote_write_config(
        root.path(),
        &format!("http://{}/api/v1/write", prometheus.addr()),
    );
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("log"));
    let log_of = |root: &Path| daemon_log(root);
    let now = unix_now();
    let gone = |ts: u64| !src.join(ts.to_string()).exists();
    publish(&src, now - 30, true);
    wait_until(
        Duration::from_secs(30),
        "the first snapshot acknowledged",
        || gone(now - 30).then_some(()),
        || log_of(root.path()),
    );
    prometheus.stop();
    let down = std::time::Instant::now();
    for ts in [now - 20, now - 10, now] {
        publish(&src, ts, true);
    }
    while down.elapsed() < Duration::from_secs(20) {
        assert!(
            [now - 20, now - 10, now].iter().all(|ts| !gone(*ts)),
            "a snapshot left src-dir while the receiver was down\n{}",
            log_of(root.path())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        log_of(root.path()).contains("does not take the request; retrying with backoff"),
        "{}",
        log_of(root.path())
    );
    prometheus.start_again();
    let context = || format!("{}\n{}", log_of(root.path()), prometheus.log());
    wait_until(
        Duration::from_secs(60),
        "every snapshot acknowledged once the receiver is back",
        || {
            [now - 20, now - 10, now]
                .iter()
                .all(|ts| gone(*ts))
                .then_some(())
        },
        context,
    );
    for ts in [now - 30, now - 20, now - 10, now] {
        assert_stored(root.path(), ts, &|q| prometheus.query(q), &context);
    }
    assert!(log_of(root.path()).contains("the receiver takes requests again"));
    assert_eq!(daemon.terminate(Duration::from_secs(15)), Some(0));
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn daemon_log(root: &Path) -> String {
    std::fs::read_to_string(root.join("log")).unwrap_or_default()
}

#[test]
fn a_port_in_use_stops_the_daemon_at_start_with_one_line_and_exit_2() {
    let root = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(root.path().join("incoming")).expect("src");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let conf = write_config(root.path(), &listen);
    let mut daemon = Haproxystats::start(&["process"], &conf, &root.path().join("log"));
    let status = daemon
        .proc()
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running:\n{}", daemon.log()));
    assert_eq!(status.code(), Some(2), "{}", daemon.log());
    let log = daemon.log();
    // The line on stderr (the same goes to the log on stdout).
    let line = format!(
        "cannot start: [prometheus] listen = '{listen}': cannot listen on it: \
         Address already in use (os error 98)"
    );
    assert!(log.lines().any(|l| l == line), "{log}");
    assert!(!log.contains("supervisor started"), "{log}");
}

/// `show stat typed desc` / `show info typed desc` lines: name → (nature,
/// description). The nature is the second letter of the second field.
fn typed(reply: &str, name_at: usize) -> BTreeMap<String, (char, String)> {
    let mut fields = BTreeMap::new();
    for line in reply.lines() {
        let Some((head, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(name) = head.split('.').nth(name_at) else {
            continue;
        };
        let nature = rest.chars().nth(1).unwrap_or(' ');
        let Some(description) = rest
            .rsplit_once(":\"")
            .map(|(_, d)| d.trim_end_matches('"').to_owned())
        else {
            continue;
        };
        fields.insert(name.to_owned(), (nature, description));
    }
    fields
}

/// Checks every field of `table` HAProxy reports against what it says;
/// answers the fields it did not report.
fn check_table(table: &[Field], typed: &BTreeMap<String, (char, String)>) -> Vec<&'static str> {
    let mut missing = Vec::new();
    for field in table {
        let Some((nature, description)) = typed.get(field.name) else {
            missing.push(field.name);
            continue;
        };
        assert_eq!(field.help, description, "{}", field.name);
        assert_eq!(
            field.metric_type == MetricType::Counter,
            *nature == 'C',
            "{}: nature {nature}",
            field.name
        );
    }
    missing
}

#[test]
fn the_field_table_is_what_the_real_haproxy_says_of_its_fields() {
    let mut fleet = HaproxyFleet::start(1, FleetOptions::default());
    fleet.wait_servers_up(Duration::from_secs(20));
    // `F.<iid>.<sid>.<field index>.<name>.<process>`; `<index>.<Name>.<process>`.
    let stat = typed(&fleet.show(0, "show stat typed desc"), 4);
    let info = typed(&fleet.show(0, "show info typed desc"), 1);
    // `throttle` is only reported during a server's slow start.
    assert_eq!(check_table(STAT_FIELDS, &stat), ["throttle"]);
    // Debian's HAProxy compresses with libslz, which has no zlib memory.
    assert_eq!(
        check_table(INFO_FIELDS, &info),
        ["MaxZlibMemUsage", "ZlibMemUsage"]
    );
}

/// `show stat` of the fixture with its backend `be.app` (and its two
/// servers) copied `copies` times, as `bk<n>`: a page of megabytes.
fn large_stat_csv(copies: usize) -> String {
    let mut csv = String::new();
    for line in STAT.lines() {
        csv.push_str(line);
        csv.push('\n');
    }
    let app: Vec<&str> = STAT
        .lines()
        .filter_map(|l| l.strip_prefix("be.app"))
        .collect();
    for n in 0..copies {
        for rest in &app {
            csv.push_str(&format!("bk{n:05}{rest}\n"));
        }
    }
    csv
}

/// Copies of `be.app` in the large snapshot: a page of about 5 MB, the
/// size of issue 24's.
const COPIES: usize = 700;

/// The daemon serving a page of megabytes.
struct LargePage {
    root: tempfile::TempDir,
    daemon: Haproxystats,
    endpoint: SocketAddr,
    /// Series on the page.
    series: usize,
}

impl LargePage {
    fn start(extra: &str) -> LargePage {
        let root = tempfile::tempdir().expect("tmp");
        let src = root.path().join("incoming");
        std::fs::create_dir_all(&src).expect("src");
        let endpoint: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let conf = write_config_with(root.path(), &endpoint.to_string(), extra);
        let tmp = root.path().join("tmp-snapshot");
        std::fs::create_dir_all(&tmp).expect("tmp");
        std::fs::write(tmp.join("lb.sock_stat"), large_stat_csv(COPIES)).expect("stat");
        std::fs::write(tmp.join("lb.sock_info"), INFO).expect("info");
        std::fs::rename(&tmp, src.join("1700000000")).expect("publish");
        let daemon = Haproxystats::start(&["process"], &conf, &root.path().join("log"));
        let last = format!("backend=\"bk{:05}\"", COPIES - 1);
        let page = wait_until(
            Duration::from_secs(60),
            "the large snapshot on the page",
            || {
                let (status, page) = http_get(endpoint, "/metrics").ok()?;
                (status == 200 && page.contains(&last)).then_some(page)
            },
            || daemon_log(root.path()),
        );
        assert!(page.len() > 4_000_000, "a page of {} bytes", page.len());
        let series = page
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        LargePage {
            root,
            daemon,
            endpoint,
            series,
        }
    }

    /// The daemon's resident memory (KiB).
    fn rss_kib(&mut self) -> u64 {
        let pid = self.daemon.proc().pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Starts a real Prometheus scraping the page every 2 s while `attack`
    /// goes on, waits for its first `scrapes` scrapes, and checks every one
    /// of them: up, with every series of the page; then the backends it
    /// holds; and the daemon's memory never more than [`MAX_GROWTH_KIB`]
    /// above `baseline_kib` meanwhile (sampled as it goes).
    fn check_scrapes_during(&mut self, attack: &Attack, scrapes: usize, baseline_kib: u64) {
        let prometheus = Prometheus::start_every(self.endpoint, "/metrics", 2);
        let root = self.root.path().to_owned();
        let context =
            |prometheus: &Prometheus| format!("{}\n{}", daemon_log(&root), prometheus.log());
        let selector = |metric: &str| format!("{metric}{{job=\"haproxystats\"}}[5m]");
        let values = |samples: Vec<(f64, String)>| -> Vec<String> {
            samples.into_iter().map(|(_, v)| v).collect()
        };
        let mut peak = baseline_kib;
        let deadline = std::time::Instant::now() + Duration::from_secs(scrapes as u64 * 2 + 60);
        let ups = loop {
            peak = peak.max(self.rss_kib());
            let ups = values(prometheus.samples(&selector("up")));
            if ups.len() >= scrapes {
                break ups;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {scrapes} scrapes: {ups:?}\n{}",
                ups.len(),
                context(&prometheus)
            );
            assert!(attack.running(), "the attack ended early");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            ups.iter().all(|up| up == "1"),
            "scrapes during the attack (1 = answered): {ups:?}\n{}",
            context(&prometheus)
        );
        let scraped = values(prometheus.samples(&selector("scrape_samples_scraped")));
        assert!(
            scraped.len() >= scrapes && scraped.iter().all(|n| *n == self.series.to_string()),
            "samples per scrape, {} expected: {scraped:?}",
            self.series
        );
        let backends = prometheus.query("count(haproxystats_backend_stot_total)");
        assert_eq!(
            backends.first().map(|(_, n)| n.as_str()),
            Some((COPIES + 1).to_string().as_str())
        );
        assert!(
            peak - baseline_kib <= MAX_GROWTH_KIB,
            "the daemon's memory grew from {baseline_kib} KiB to {peak} KiB"
        );
    }
}

/// The daemon's memory may grow by this much during an attack: a few
/// pages (the one served, one being written), never one per connection
/// (64 copies of the 5 MB page were 320 MB).
const MAX_GROWTH_KIB: u64 = 48 * 1024;

/// `count` connections to the endpoint, each sending `request` once and
/// never reading, opened again every 2 s once the server closes them, on a
/// thread of their own, for at most 3 minutes.
struct Attack {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Connections opened since the start.
    opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Attack {
    fn start(addr: SocketAddr, count: usize, request: &'static [u8]) -> Attack {
        use std::io::Write as _;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let thread = {
            let (stop, opened) = (stop.clone(), opened.clone());
            std::thread::spawn(move || {
                let mut connections: Vec<Option<std::net::TcpStream>> =
                    (0..count).map(|_| None).collect();
                // 90 rounds of 2 s.
                for _ in 0..90 {
                    for connection in &mut connections {
                        if connection.as_ref().is_some_and(is_open) {
                            continue;
                        }
                        *connection =
                            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                                .and_then(|mut stream| {
                                    stream.write_all(request)?;
                                    stream.set_nonblocking(true)?;
                                    Ok(stream)
                                })
                                .ok();
                        if connection.is_some() {
                            opened.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    for _ in 0..20 {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        };
        let attack = Attack {
            stop,
            opened,
            thread: Some(thread),
        };
        wait_until(
            Duration::from_secs(30),
            "the attack's connections to be open",
            || (attack.opened() >= count).then_some(()),
            || format!("{} opened", attack.opened()),
        );
        attack
    }

    fn opened(&self) -> usize {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether the server has not closed `stream` (reading nothing of it).
fn is_open(stream: &std::net::TcpStream) -> bool {
    // Reset: what the client did not read is still there to peek at.
    if !matches!(stream.take_error(), Ok(None)) {
        return false;
    }
    let mut byte = [0];
    match stream.peek(&mut byte) {
        Ok(n) => n > 0,
        Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
    }
}

const SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: attacker\r\n\r\n";

#[test]
fn prometheus_scrapes_are_answered_while_500_idle_connections_are_kept_open() {
    let mut world = LargePage::start("");
    let baseline = world.rss_kib();
    // Opened before Prometheus connects: it has no connection to keep.
    let attack = Attack::start(world.endpoint, 500, b"");
    world.check_scrapes_during(&attack, 10, baseline);
    // Connections were closed to make room (the top-ups opened more).
    assert!(attack.opened() > 500, "{} opened", attack.opened());
    drop(attack);
    assert_eq!(world.daemon.terminate(Duration::from_secs(15)), Some(0));
}

#[test]
fn prometheus_scrapes_are_answered_while_64_clients_never_read_the_page() {
    let mut world = LargePage::start("write-timeout = 4\n");
    let baseline = world.rss_kib();
    let attack = Attack::start(world.endpoint, 64, SCRAPE);
    world.check_scrapes_during(&attack, 10, baseline);
    // The write timeout dropped them, and they were opened again.
    wait_until(
        Duration::from_secs(30),
        "the clients that do not read to be dropped",
        || (attack.opened() >= 128).then_some(()),
        || {
            format!(
                "{} opened\n{}",
                attack.opened(),
                daemon_log(world.root.path())
            )
        },
    );
    drop(attack);
    assert_eq!(world.daemon.terminate(Duration::from_secs(15)), Some(0));
}
