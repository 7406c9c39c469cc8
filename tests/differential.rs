//! Differential tests: our `haproxystats -f CONF replay DIR...` against the
//! original Python haproxystats 0.5.1 (`haproxystats-process`, driven
//! black-box by `tests/oracle/run_original.py`) on the same snapshots and the
//! same configuration file.
//!
//! Inputs: `tools/gen_snapshot.py` corpora (several seeds, 2, 4 and 7
//! processes, `--unique-ratio`, `--weird-names`, `--idle-ratio`; one of
//! `_info` files only), real 1.7 / 2.5.5 / 2.7.1 captures of
//! `tests/fixtures/stat`, and two captures of a live HAProxy 2.6 fleet
//! (before and after uneven traffic). One test per option set of SPEC §4;
//! the host name tests run both sides in a UTS namespace (`unshare`).
//!
//! Compared: the set of metric paths per timestamp and every value (floats
//! within 1e-6 relative), except
//! - self metrics (`P.haproxystats.*`): timings differ by nature;
//! - the original's `nan` lines: we emit no NaN, so such a path must be absent
//!   from our output (SPEC §4.2);
//! - ctime/qtime/rtime/ttime of backends and servers: 0.5.1 averaged them over
//!   all rows, we follow 0.5.2 (rows with lbtot > 0, SPEC §4.2), so our values
//!   are checked against a mean computed here from the CSV files instead, and
//!   must be absent when no row has lbtot > 0;
//! - `per-process-metrics` where processes share a `Process_num` (live 2.6
//!   captures: every instance says 1; a real capture copied as two
//!   processes): the original writes them all over `daemon.process.1.*`, ours
//!   uses the socket names (SPEC §4.1). Our per-socket values are compared, as
//!   a multiset, with the original's values of `process.1`.
//!
//! Not exercised, because ours deliberately differs (checked by hand against
//! 0.5.1 with this harness):
//! - a mean metric named in `backend-metrics` / `server-metrics` (e.g.
//!   `weight`): the original sums it and averages it, emitting `weight_x` and
//!   `weight_y` (a pandas merge artefact); ours emits `weight`, the mean;
//! - `_info` files with different key sets, names with white space (SPEC §4).
//!
//! The original must be installed (`.ci/install-oracle.sh`, venv at
//! `$HS_ORACLE_VENV`, default `/opt/hs-oracle/V`): without it these tests fail,
//! they never skip. Outputs of both sides stay in
//! `$CARGO_TARGET_TMPDIR/differential-<pid>/<test>/` for a post-mortem.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{FleetOptions, HaproxyFleet};

/// Where the original's virtualenv is unless `HS_ORACLE_VENV` says otherwise.
const DEFAULT_VENV: &str = "/opt/hs-oracle/V";

/// Response-time metrics averaged over busy rows only (SPEC §4.2, 0.5.2).
const TIME_METRICS: [&str; 4] = ["ctime", "qtime", "rtime", "ttime"];

/// How many differences a failure message lists.
const SHOWN_DIFFERENCES: usize = 40;

// ---------------------------------------------------------------------------
// The oracle

/// The original's virtualenv; panics with instructions when it is missing.
fn oracle_venv() -> PathBuf {
    let venv = std::env::var_os("HS_ORACLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV));
    for needed in ["bin/python", "bin/haproxystats-process"] {
        let path = venv.join(needed);
        assert!(
            path.is_file(),
            "the differential tests need the original haproxystats 0.5.1 but {} is missing: \
             run .ci/install-oracle.sh (it installs into $HS_ORACLE_VENV, default {DEFAULT_VENV})",
            path.display()
        );
    }
    venv
}

/// Runs the original over `snapshots` with `conf`; returns its lines.
fn run_original(
    conf: &Path,
    snapshots: &[&Snapshot],
    work: &Path,
    hostname: Option<&str>,
) -> String {
    let venv = oracle_venv();
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/run_original.py");
    let mut argv: Vec<OsString> = vec![
        venv.join("bin/python").into(),
        driver.into(),
        "--venv".into(),
        venv.into(),
        "--config".into(),
        conf.into(),
        "--work".into(),
        work.into(),
    ];
    argv.extend(snapshots.iter().map(|s| s.dir.clone().into()));
    run("the original", &argv, hostname)
}

/// Runs our binary: `haproxystats -f CONF replay DIR...`; returns its lines.
fn run_ours(conf: &Path, snapshots: &[&Snapshot], hostname: Option<&str>) -> String {
    let mut argv: Vec<OsString> = vec![
        env!("CARGO_BIN_EXE_haproxystats").into(),
        "-f".into(),
        conf.into(),
        "replay".into(),
    ];
    argv.extend(snapshots.iter().map(|s| s.dir.clone().into()));
    run("haproxystats replay", &argv, hostname)
}

/// Runs `argv`, with `hostname` as the host name if given (in a new UTS
/// namespace: `unshare`, as root or with unprivileged user namespaces);
/// returns its stdout and panics with its stderr if it fails.
fn run(what: &str, argv: &[OsString], hostname: Option<&str>) -> String {
    let mut cmd = match hostname {
        None => Command::new(&argv[0]),
        Some(host) => {
            let mut cmd = Command::new("unshare");
            cmd.args(["--user", "--map-root-user", "--uts", "sh", "-c"])
                .arg(r#"hostname "$0" && exec "$@""#)
                .arg(host)
                .arg(&argv[0]);
            cmd
        }
    };
    let output = cmd
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({argv:?}): {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {argv:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap_or_else(|e| panic!("{what} wrote non-UTF-8: {e}"))
}

// ---------------------------------------------------------------------------
// The corpus

/// One snapshot directory of the corpus.
#[derive(Debug)]
struct Snapshot {
    /// Short name used by the tests.
    label: &'static str,
    /// `<root>/snapshots/<timestamp>`.
    dir: PathBuf,
    /// The directory name.
    timestamp: String,
}

/// Every snapshot plus the exclusion files, built once per test binary.
struct Corpus {
    root: PathBuf,
    snapshots: Vec<Snapshot>,
    exclude_frontends: PathBuf,
    exclude_backends: PathBuf,
}

impl Corpus {
    fn get(&self, labels: &[&str]) -> Vec<&Snapshot> {
        labels
            .iter()
            .map(|l| {
                self.snapshots
                    .iter()
                    .find(|s| s.label == *l)
                    .unwrap_or_else(|| panic!("no snapshot {l} in the corpus"))
            })
            .collect()
    }
}

/// `gen_snapshot.py` corpora: label, timestamp, extra arguments.
const GENERATED: &[(&str, u32, &[&str])] = &[
    ("seed1", 1_700_000_001, &["--seed", "1"]),
    ("seed2", 1_700_000_002, &["--seed", "2"]),
    ("seed3", 1_700_000_003, &["--seed", "3"]),
    (
        "unique",
        1_700_000_004,
        &["--seed", "4", "--unique-ratio", "0.3"],
    ),
    ("weird", 1_700_000_005, &["--seed", "5", "--weird-names"]),
    (
        "idle",
        1_700_000_006,
        &["--seed", "6", "--idle-ratio", "0.5"],
    ),
    // Other process counts, for the CPU percentiles (nearest rank, ties to
    // even) and the standard deviation; later arguments win.
    (
        "procs2",
        1_700_000_007,
        &["--seed", "7", "--processes", "2"],
    ),
    (
        "procs7",
        1_700_000_008,
        &[
            "--seed",
            "8",
            "--processes",
            "7",
            "--frontends",
            "10",
            "--backends",
            "10",
        ],
    ),
];

/// Real captures of `tests/fixtures/stat` (label, timestamp, `show stat`,
/// `show info`), each copied as two processes `a.sock` and `b.sock`.
const REAL: &[(&str, u32, &str, Option<&str>)] = &[
    ("real-1.7", 1_700_000_201, "1.7_show_stat.csv", None),
    (
        "real-2.5.5",
        1_700_000_202,
        "2.5.5_show_stat.csv",
        Some("2.5.5_show_info.txt"),
    ),
    (
        "real-2.7.1",
        1_700_000_203,
        "2.7.1_show_stat.csv",
        Some("2.7.1_show_info.txt"),
    ),
];

/// Timestamp of the snapshot made of seed1's `_info` files only.
const INFO_ONLY_TS: u32 = 1_700_000_301;

/// Timestamps of the two live captures.
const LIVE_IDLE_TS: u32 = 1_700_000_101;
const LIVE_BUSY_TS: u32 = 1_700_000_102;

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(build_corpus)
}

fn build_corpus() -> Corpus {
    let started = Instant::now();
    let venv = oracle_venv();
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    remove_stale_roots(base);
    let root = base.join(format!("differential-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let snaps = root.join("snapshots");
    std::fs::create_dir_all(&snaps).expect("create corpus dir");

    let mut snapshots = Vec::new();
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/gen_snapshot.py");
    for (label, ts, extra) in GENERATED {
        let output = Command::new(venv.join("bin/python"))
            .arg(&generator)
            .arg("--out")
            .arg(&snaps)
            .args([
                "--processes",
                "4",
                "--frontends",
                "50",
                "--backends",
                "50",
                "--servers",
                "5",
                "--legacy-info",
                "--timestamp",
                &ts.to_string(),
            ])
            .args(*extra)
            .output()
            .expect("run gen_snapshot.py");
        assert!(
            output.status.success(),
            "gen_snapshot.py {extra:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        snapshots.push(Snapshot {
            label,
            dir: snaps.join(ts.to_string()),
            timestamp: ts.to_string(),
        });
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stat");
    for (label, ts, stat, info) in REAL {
        let dir = snaps.join(ts.to_string());
        std::fs::create_dir_all(&dir).expect("create snapshot dir");
        for socket in ["a.sock", "b.sock"] {
            std::fs::copy(fixtures.join(stat), dir.join(format!("{socket}_stat")))
                .expect("copy fixture");
            if let Some(info) = info {
                let text = std::fs::read_to_string(fixtures.join(info)).expect("read fixture");
                std::fs::write(dir.join(format!("{socket}_info")), with_zlib_keys(text))
                    .expect("write _info");
            }
        }
        snapshots.push(Snapshot {
            label,
            dir,
            timestamp: ts.to_string(),
        });
    }
    // Daemon statistics only: the `_info` files of seed1.
    let dir = snaps.join(INFO_ONLY_TS.to_string());
    std::fs::create_dir_all(&dir).expect("create snapshot dir");
    for entry in std::fs::read_dir(&snapshots[0].dir)
        .expect("read seed1")
        .flatten()
    {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with("_info") {
            std::fs::copy(entry.path(), dir.join(&name)).expect("copy _info");
        }
    }
    snapshots.push(Snapshot {
        label: "info-only",
        dir,
        timestamp: INFO_ONLY_TS.to_string(),
    });
    capture_live(&snaps, &mut snapshots);

    // Exclusion files: every 5th frontend / backend of each snapshot, raw
    // names (dots included), plus a comment and blank lines.
    let mut fe_names = BTreeSet::new();
    let mut be_names = BTreeSet::new();
    for s in &snapshots {
        if let Some(rows) = stat_files(&s.dir).into_values().next() {
            let fes = rows.iter().filter(|r| r.svname == "FRONTEND");
            fe_names.extend(fes.step_by(5).map(|r| r.pxname.clone()));
            let bes = rows.iter().filter(|r| r.svname == "BACKEND");
            be_names.extend(bes.step_by(5).map(|r| r.pxname.clone()));
        }
    }
    let exclusion = |names: &BTreeSet<String>| {
        let mut text = String::from("# names to skip\n\n");
        for n in names {
            let _ = writeln!(text, "  {n} ");
        }
        text.push_str("   # indented comment\n");
        text
    };
    let exclude_frontends = root.join("exclude-frontends");
    let exclude_backends = root.join("exclude-backends");
    std::fs::write(&exclude_frontends, exclusion(&fe_names)).expect("write exclusions");
    std::fs::write(&exclude_backends, exclusion(&be_names)).expect("write exclusions");
    eprintln!(
        "corpus of {} snapshots in {} built in {:?}",
        snapshots.len(),
        root.display(),
        started.elapsed()
    );
    Corpus {
        root,
        snapshots,
        exclude_frontends,
        exclude_backends,
    }
}

/// Removes `differential-<pid>` roots of test processes that are gone.
fn remove_stale_roots(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("differential-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !support::pid_exists(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Captures `show info` / `show stat` of a live HAProxy 2.6 fleet twice:
/// before any traffic (every server idle) and after uneven traffic (some
/// servers of a backend busy in one instance and idle in another, some
/// backends never used).
fn capture_live(snaps: &Path, snapshots: &mut Vec<Snapshot>) {
    let opts = FleetOptions {
        frontends: 3,
        backends: 4,
        servers_per_backend: 3,
        ..FleetOptions::default()
    };
    let mut fleet = HaproxyFleet::start(3, opts);
    fleet.wait_servers_up(Duration::from_secs(10));
    snapshots.push(write_capture(&fleet, snaps, "live-idle", LIVE_IDLE_TS));
    // Instance i: (i + 1) requests to be_0, 2·i to be_1, none to be_2/be_3
    // (frontends route by path, so only the paths matter).
    for i in 0..fleet.len() {
        let fe = fleet.frontend_addrs(i)[0];
        for (backend, count) in [(0, i + 1), (1, 2 * i)] {
            for r in 0..count {
                let path = format!("/be_{backend}/{r}");
                let status = support::haproxy::http_get(fe, &path)
                    .unwrap_or_else(|e| panic!("GET {path} on instance {i}: {e}"));
                assert_eq!(status, 200, "GET {path} on instance {i}");
            }
        }
    }
    snapshots.push(write_capture(&fleet, snaps, "live-busy", LIVE_BUSY_TS));
}

/// Writes `<socket>_info` / `<socket>_stat` of every instance into
/// `snaps/<ts>`, as the pull half names them, with the zlib keys the
/// original needs ([`with_zlib_keys`]).
fn write_capture(fleet: &HaproxyFleet, snaps: &Path, label: &'static str, ts: u32) -> Snapshot {
    let dir = snaps.join(ts.to_string());
    std::fs::create_dir_all(&dir).expect("create capture dir");
    for i in 0..fleet.len() {
        let socket = fleet.socket_path(i);
        let name = socket
            .file_name()
            .and_then(|n| n.to_str())
            .expect("socket name");
        let info = with_zlib_keys(fleet.show(i, "show info"));
        std::fs::write(dir.join(format!("{name}_info")), info).expect("write _info");
        std::fs::write(dir.join(format!("{name}_stat")), fleet.show(i, "show stat"))
            .expect("write _stat");
    }
    Snapshot {
        label,
        dir,
        timestamp: ts.to_string(),
    }
}

/// Adds `ZlibMemUsage: 0` / `MaxZlibMemUsage: 0` to a `show info` text
/// lacking them: HAProxy built without zlib (every 2.x here) has no such
/// lines and the original crashes without them.
fn with_zlib_keys(mut info: String) -> String {
    for key in ["ZlibMemUsage", "MaxZlibMemUsage"] {
        if !info.lines().any(|l| l.starts_with(&format!("{key}:"))) {
            info = format!("{key}: 0\n{info}");
        }
    }
    info
}

// ---------------------------------------------------------------------------
// CSV rows, for the exclusion files and the direct time means

/// The cells of one `show stat` row the tests need.
#[derive(Debug, Clone)]
struct StatRow {
    pxname: String,
    svname: String,
    kind: i64,
    lbtot: f64,
    times: [f64; 4],
}

/// Rows of every `*_stat` file of a snapshot, by file name.
fn stat_files(dir: &Path) -> BTreeMap<String, Vec<StatRow>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read snapshot dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with("_stat") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("read _stat");
        files.insert(name, parse_stat_rows(&text));
    }
    files
}

/// Header-driven parse of a `show stat` CSV (no quoting in our corpora);
/// empty numeric cells are 0.
fn parse_stat_rows(text: &str) -> Vec<StatRow> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .expect("`# pxname,...` header")
        .split(',')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} column"))
    };
    let (px, sv, ty, lb) = (col("pxname"), col("svname"), col("type"), col("lbtot"));
    let times = TIME_METRICS.map(col);
    let num = |cells: &[&str], i: usize| -> f64 {
        let cell = cells.get(i).copied().unwrap_or("");
        if cell.is_empty() {
            0.0
        } else {
            cell.parse()
                .unwrap_or_else(|_| panic!("not a number: {cell:?}"))
        }
    };
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            StatRow {
                pxname: cells[px].to_string(),
                svname: cells[sv].to_string(),
                kind: num(&cells, ty) as i64,
                lbtot: num(&cells, lb),
                times: times.map(|t| num(&cells, t)),
            }
        })
        .collect()
}

/// Graphite path element of a name (SPEC §4: `.` and white space → `_`).
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '.' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Which rows a response-time path averages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TimeKey {
    /// `P.backend.<be>.<m>`.
    Backend(String),
    /// `P.backend.<be>.server.<srv>.<m>`.
    Server(String, String),
    /// `P.server.<srv>.<m>` (aggr-server-metrics).
    ByName(String),
}

/// Sum and number of busy rows (lbtot > 0) per response-time metric.
#[derive(Debug, Default, Clone, Copy)]
struct Busy {
    sums: [f64; 4],
    rows: u32,
}

/// Our expected response-time means of a snapshot, computed from its CSVs:
/// mean over the rows with lbtot > 0, empty cells 0 (SPEC §4.2).
fn direct_time_means(dir: &Path, excluded_backends: &HashSet<String>) -> HashMap<TimeKey, Busy> {
    let mut means: HashMap<TimeKey, Busy> = HashMap::new();
    for rows in stat_files(dir).values() {
        for r in rows {
            let px = sanitize(&r.pxname);
            let sv = sanitize(&r.svname);
            let mut keys = Vec::new();
            if r.svname == "BACKEND" {
                keys.push(TimeKey::Backend(px.clone()));
            }
            if r.kind == 2 && !excluded_backends.contains(&px) {
                keys.push(TimeKey::Server(px.clone(), sv.clone()));
            }
            // `P.server.*` counts servers of excluded backends too (as the
            // original does).
            if r.kind == 2 {
                keys.push(TimeKey::ByName(sv.clone()));
            }
            for key in keys {
                let busy = means.entry(key).or_default();
                if r.lbtot > 0.0 {
                    busy.rows += 1;
                    for (s, v) in busy.sums.iter_mut().zip(r.times) {
                        *s += v;
                    }
                }
            }
        }
    }
    means
}

/// The rows a response-time path refers to and the metric index, or `None`
/// for any other path. Names hold no dots, so the path is read from its end.
fn time_key(path: &str) -> Option<(TimeKey, usize)> {
    let parts: Vec<&str> = path.split('.').collect();
    let n = parts.len();
    let metric = TIME_METRICS.iter().position(|m| Some(m) == parts.last())?;
    let at = |back: usize| n.checked_sub(back).and_then(|i| parts.get(i)).copied();
    let key = if at(3) == Some("server") && at(5) == Some("backend") {
        TimeKey::Server(at(4)?.to_string(), at(2)?.to_string())
    } else if at(3) == Some("backend") {
        TimeKey::Backend(at(2)?.to_string())
    } else if at(3) == Some("server") {
        TimeKey::ByName(at(2)?.to_string())
    } else {
        return None;
    };
    Some((key, metric))
}

// ---------------------------------------------------------------------------
// Comparison

/// When the `*_info` files of a snapshot do not all have distinct
/// `Process_num`s: their socket names (sanitised) and `Process_num`s.
fn shared_process_nums(dir: &Path) -> Option<BTreeMap<String, String>> {
    let mut ids = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read snapshot dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(socket) = name.strip_suffix("_info") else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).expect("read _info");
        let num = text
            .lines()
            .find_map(|l| l.strip_prefix("Process_num:"))
            .map(|n| n.trim().to_string())
            .unwrap_or_else(|| panic!("{}: no Process_num", entry.path().display()));
        ids.insert(sanitize(socket), num);
    }
    let distinct: BTreeSet<&String> = ids.values().collect();
    (distinct.len() < ids.len()).then_some(ids)
}

/// Graphite lines grouped by (timestamp, path), self metrics dropped.
type Lines = BTreeMap<(String, String), Vec<f64>>;

fn parse_lines(text: &str, side: &str, problems: &mut Vec<String>) -> Lines {
    let mut lines = Lines::new();
    for line in text.lines() {
        let mut fields = line.split(' ');
        let (Some(path), Some(value), Some(ts), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            problems.push(format!("{side}: malformed line {line:?}"));
            continue;
        };
        if path.contains(".haproxystats.") {
            continue;
        }
        let Ok(value) = value.parse::<f64>() else {
            problems.push(format!("{side}: value is not a number: {line:?}"));
            continue;
        };
        lines
            .entry((ts.to_string(), path.to_string()))
            .or_default()
            .push(value);
    }
    lines
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

fn show(values: &[f64]) -> String {
    let v: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    v.join(",")
}

/// What an option set changes in the comparison.
#[derive(Default, Clone, Copy)]
struct Expect<'a> {
    /// `per-process-metrics` is on.
    per_process: bool,
    /// The `exclude-backends` file, if any.
    excluded_backends: Option<&'a Path>,
    /// Run both sides with this host name (see [`run`]).
    hostname: Option<&'a str>,
}

/// What a comparison found.
#[derive(Debug, Default)]
struct Comparison {
    /// Every difference, one line each.
    diffs: Vec<String>,
    /// Paths of the original compared value by value.
    compared: usize,
    /// Response-time paths checked against the CSVs.
    times: usize,
}

/// Every difference between the original's and our output.
fn differences(
    original: &str,
    ours: &str,
    snapshots: &[&Snapshot],
    expect: Expect<'_>,
) -> Comparison {
    let mut diffs = Vec::new();
    let (mut compared, mut times) = (0, 0);
    let theirs = parse_lines(original, "original", &mut diffs);
    let mut mine = parse_lines(ours, "ours", &mut diffs);

    let excluded: HashSet<String> = expect
        .excluded_backends
        .map(|p| {
            std::fs::read_to_string(p)
                .expect("read exclusions")
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .map(|l| sanitize(l.trim()))
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();

    // Processes that share a Process_num (HAProxy >= 2.5, or one capture
    // copied): ours names them by socket (SPEC §4.1), the original writes
    // them all over `process.<Process_num>`. Our per-socket values are moved
    // to the original's path and compared as a multiset there.
    if expect.per_process {
        for s in snapshots {
            let Some(ids) = shared_process_nums(&s.dir) else {
                continue;
            };
            let mut seen = BTreeSet::new();
            let keys: Vec<_> = mine
                .keys()
                .filter(|(ts, p)| *ts == s.timestamp && p.contains(".daemon.process."))
                .cloned()
                .collect();
            for key in keys {
                let (ts, path) = &key;
                let (head, rest) = path.split_once(".daemon.process.").expect("per-process");
                let Some((id, metric)) = rest.split_once('.') else {
                    diffs.push(format!("ours: bad per-process path {path}"));
                    continue;
                };
                let Some(num) = ids.get(id) else {
                    diffs.push(format!(
                        "{ts} {path}: process id {id:?} is not a socket name ({:?})",
                        ids.keys().collect::<Vec<_>>()
                    ));
                    continue;
                };
                seen.insert(id.to_string());
                let values = mine.remove(&key).unwrap_or_default();
                mine.entry((ts.clone(), format!("{head}.daemon.process.{num}.{metric}")))
                    .or_default()
                    .extend(values);
            }
            let sockets: BTreeSet<String> = ids.into_keys().collect();
            if seen != sockets {
                diffs.push(format!(
                    "ours ({}): per-process ids {seen:?}, want every socket {sockets:?}",
                    s.label
                ));
            }
        }
    }

    let timestamps: BTreeSet<&str> = snapshots.iter().map(|s| s.timestamp.as_str()).collect();
    for side in [&theirs, &mine] {
        for (ts, path) in side.keys() {
            if !timestamps.contains(ts.as_str()) {
                diffs.push(format!("{path}: unexpected timestamp {ts}"));
            }
        }
    }
    for s in snapshots {
        if !mine.keys().any(|(ts, _)| *ts == s.timestamp) {
            diffs.push(format!(
                "ours: no line for snapshot {} ({})",
                s.label, s.timestamp
            ));
        }
    }

    // Every path of the original except response times.
    for (key, want) in &theirs {
        let (ts, path) = key;
        if time_key(path).is_some() {
            continue;
        }
        let got = mine.get(key);
        if want.iter().any(|v| v.is_nan()) {
            if let Some(got) = got {
                diffs.push(format!(
                    "{ts} {path}: the original has nan, ours emits {}",
                    show(got)
                ));
            }
            continue;
        }
        let Some(got) = got else {
            diffs.push(format!("{ts} {path}: missing (original: {})", show(want)));
            continue;
        };
        compared += 1;
        let mut want = want.clone();
        let mut got = got.clone();
        want.sort_by(f64::total_cmp);
        got.sort_by(f64::total_cmp);
        if want.len() != got.len() || want.iter().zip(&got).any(|(a, b)| !close(*a, *b)) {
            diffs.push(format!(
                "{ts} {path}: ours {} != original {}",
                show(&got),
                show(&want)
            ));
        }
    }
    // Paths only we emit.
    for (key, got) in &mine {
        let (ts, path) = key;
        if !theirs.contains_key(key) {
            diffs.push(format!(
                "{ts} {path}: extra (ours: {}, the original has no such path)",
                show(got)
            ));
        }
        if got.iter().any(|v| !v.is_finite()) {
            diffs.push(format!("{ts} {path}: ours emits {}", show(got)));
        }
    }
    // Response times: the original's paths, our values against the CSVs.
    for s in snapshots {
        let busy = direct_time_means(&s.dir, &excluded);
        for (ts, path) in theirs.keys().filter(|(ts, _)| *ts == s.timestamp) {
            let Some((tk, m)) = time_key(path) else {
                continue;
            };
            times += 1;
            let got = mine.get(&(ts.clone(), path.clone()));
            let want = busy
                .get(&tk)
                .filter(|b| b.rows > 0)
                .and_then(|b| b.sums.get(m).map(|s| s / f64::from(b.rows)));
            match (want, got) {
                (None, None) => {}
                (None, Some(got)) => diffs.push(format!(
                    "{ts} {path}: ours {} but no row has lbtot > 0 (must not be emitted)",
                    show(got)
                )),
                (Some(want), None) => diffs.push(format!(
                    "{ts} {path}: missing (mean over rows with lbtot > 0: {want})"
                )),
                (Some(want), Some(got)) => {
                    if got.len() != 1 || !close(got[0], want) {
                        diffs.push(format!(
                            "{ts} {path}: ours {} != mean over rows with lbtot > 0 {want}",
                            show(got)
                        ));
                    }
                }
            }
        }
    }
    Comparison {
        diffs,
        compared,
        times,
    }
}

// ---------------------------------------------------------------------------
// The tests

/// Runs both sides over `labels` with the configuration `conf` and fails
/// listing every difference.
fn differential(test: &str, conf: &str, labels: &[&str], expect: Expect<'_>) {
    let started = Instant::now();
    let corpus = corpus();
    let snapshots = corpus.get(labels);
    let dir = corpus.root.join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("incoming")).expect("create test dir");
    // src-dir must exist for our validation; the oracle driver overrides it.
    let conf = format!(
        "[process]\nsrc-dir = {}\n{conf}",
        dir.join("incoming").display()
    );
    let conf = merge_sections(&conf);
    let conf_path = dir.join("haproxystats.conf");
    std::fs::write(&conf_path, &conf).expect("write conf");

    let original = run_original(&conf_path, &snapshots, &dir.join("oracle"), expect.hostname);
    std::fs::write(dir.join("original.txt"), &original).expect("write original.txt");
    let ours = run_ours(&conf_path, &snapshots, expect.hostname);
    std::fs::write(dir.join("ours.txt"), &ours).expect("write ours.txt");

    let Comparison {
        diffs,
        compared,
        times,
    } = differences(&original, &ours, &snapshots, expect);
    eprintln!(
        "{test}: {} snapshots, {} lines from the original, {} from ours: {compared} paths \
         compared, {times} response times checked, {} differences, {:?}",
        snapshots.len(),
        original.lines().count(),
        ours.lines().count(),
        diffs.len(),
        started.elapsed()
    );
    if !diffs.is_empty() {
        let shown: Vec<&String> = diffs.iter().take(SHOWN_DIFFERENCES).collect();
        panic!(
            "{test}: {} differences between ours and the original\nby kind:\n{}first {}:\n  {}\n\
             configuration:\n{conf}\noutputs: {}/{{original,ours}}.txt",
            diffs.len(),
            summary(&diffs),
            shown.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            dir.display()
        );
    }
}

/// Counts differences per (kind of path, metric, verdict), largest first.
fn summary(diffs: &[String]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for d in diffs {
        let mut fields = d.splitn(3, ' ');
        let category = match (fields.next(), fields.next(), fields.next()) {
            (Some(_ts), Some(path), Some(rest)) if path.ends_with(':') => {
                let path = path.trim_end_matches(':');
                let section = if path.contains(".daemon.process.") {
                    "daemon.process.<id>"
                } else if path.contains(".daemon.") {
                    "daemon"
                } else if path.contains(".frontend.") {
                    "frontend.<fe>"
                } else if path.contains(".backend.") && path.contains(".server.") {
                    "backend.<be>.server.<srv>"
                } else if path.contains(".backend.") {
                    "backend.<be>"
                } else if path.contains(".server.") {
                    "server.<srv>"
                } else {
                    "other"
                };
                let metric = path.rsplit('.').next().unwrap_or("");
                let verdict = rest.split([' ', '(']).next().unwrap_or("");
                format!("{section}.{metric}: {verdict}")
            }
            _ => d.clone(),
        };
        *counts.entry(category).or_default() += 1;
    }
    let mut sorted: Vec<_> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
        .iter()
        .map(|(c, n)| format!("  {n:6} {c}\n"))
        .collect()
}

/// Merges repeated `[section]` headers (the tests prepend `[process]`), since
/// ConfigParser rejects a section declared twice.
fn merge_sections(conf: &str) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut bodies: HashMap<String, String> = HashMap::new();
    let mut current = String::new();
    for line in conf.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            current = t.to_string();
            if !bodies.contains_key(&current) {
                order.push(current.clone());
                bodies.insert(current.clone(), String::new());
            }
            continue;
        }
        if t.is_empty() {
            continue;
        }
        let body = bodies.entry(current.clone()).or_default();
        body.push_str(line);
        body.push('\n');
    }
    let mut out = String::new();
    for section in order {
        let _ = write!(out, "{section}\n{}\n", bodies[&section]);
    }
    out
}

const ALL: &[&str] = &[
    "seed1",
    "seed2",
    "seed3",
    "unique",
    "weird",
    "idle",
    "procs2",
    "procs7",
    "real-1.7",
    "info-only",
    "real-2.5.5",
    "real-2.7.1",
    "live-idle",
    "live-busy",
];

#[test]
fn defaults() {
    differential("defaults", "", ALL, Expect::default());
}

#[test]
fn aggr_server_metrics() {
    differential(
        "aggr_server_metrics",
        "[process]\naggr-server-metrics = true\n",
        &["seed1", "weird", "idle", "live-busy"],
        Expect::default(),
    );
}

/// The original's `P.server.<srv>.*` carries every server metric whatever
/// `server-metrics` selects; ours too, so dashboards keep their paths.
#[test]
fn aggr_server_metrics_with_a_server_metric_list() {
    differential(
        "aggr_server_metrics_with_a_server_metric_list",
        "[process]\naggr-server-metrics = true\nserver-metrics = bin lbtot econ smax\n",
        &["seed1", "live-busy"],
        Expect::default(),
    );
}

/// `exclude-backends` skips `P.backend.<be>.*`; the original's
/// `P.server.<srv>.*` still counts those servers, and so do we.
#[test]
fn aggr_server_metrics_with_excluded_backends() {
    let c = corpus();
    differential(
        "aggr_server_metrics_with_excluded_backends",
        &format!(
            "[process]\naggr-server-metrics = true\nexclude-backends = {}\n",
            c.exclude_backends.display()
        ),
        &["seed2", "live-busy"],
        Expect {
            excluded_backends: Some(&c.exclude_backends),
            ..Expect::default()
        },
    );
}

#[test]
fn per_process_metrics() {
    differential(
        "per_process_metrics",
        "[process]\nper-process-metrics = true\n",
        &[
            "seed1",
            "unique",
            "procs7",
            "real-2.7.1",
            "live-idle",
            "live-busy",
        ],
        Expect {
            per_process: true,
            ..Expect::default()
        },
    );
}

#[test]
fn calculate_percentages() {
    differential(
        "calculate_percentages",
        "[process]\ncalculate-percentages = true\n",
        &["seed2", "procs2", "procs7", "live-busy"],
        Expect::default(),
    );
}

#[test]
fn per_process_metrics_with_percentages() {
    differential(
        "per_process_metrics_with_percentages",
        "[process]\nper-process-metrics = true\ncalculate-percentages = yes\n",
        &["seed3", "info-only", "live-busy"],
        Expect {
            per_process: true,
            ..Expect::default()
        },
    );
}

#[test]
fn metric_lists() {
    differential(
        "metric_lists",
        "[process]\n\
         frontend-metrics = bin bout req_tot scur stot\n\
         backend-metrics = bin bout lbtot qcur econ\n\
         server-metrics = bin lbtot econ smax\n",
        &["seed1", "weird", "live-busy"],
        Expect::default(),
    );
}

#[test]
fn exclusions() {
    let c = corpus();
    differential(
        "exclusions",
        // Both interpolation forms: `${section:key}` and `${key}` from [DEFAULT].
        &format!(
            "[DEFAULT]\ncorpus = {}\n[paths]\nbase-dir = ${{corpus}}\n\
             [process]\nexclude-frontends = ${{paths:base-dir}}/{}\n\
             exclude-backends = ${{corpus}}/{}\n",
            c.root.display(),
            file_name(&c.exclude_frontends),
            file_name(&c.exclude_backends),
        ),
        &["seed2", "weird", "live-busy"],
        Expect {
            excluded_backends: Some(&c.exclude_backends),
            ..Expect::default()
        },
    );
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("UTF-8 file name")
}

/// Group sections. Names in upper case because ConfigParser lowercases
/// option names, group names included; `$$` is ExtendedInterpolation's `$`.
/// A `[DEFAULT]` key is inherited by the group sections but is no group.
/// 0.5.1 has no default for `group-namespace-double-writes`: always given.
fn groups_conf(double_writes: bool) -> String {
    format!(
        "[DEFAULT]\nowner = ops\n\
         [process]\naggr-server-metrics = true\n\
         [graphite]\ngroup-namespace = groups\n\
         group-namespace-double-writes = {double_writes}\n\
         [frontend-groups]\nAPI = ^api-\nLow = fe0000[0-4]\nlive = ^fe_1$$\n\
         [backend-groups]\nfirst = be0000\nDotted = example_com$$\nlive_be = ^be_[13]$$\n\
         [server-groups]\nLow = srv00[01]\nlive = _0$$\n"
    )
}

#[test]
fn groups() {
    differential(
        "groups",
        &groups_conf(false),
        &["seed1", "weird", "live-busy"],
        Expect::default(),
    );
}

#[test]
fn groups_with_double_writes() {
    differential(
        "groups_with_double_writes",
        &groups_conf(true),
        &["seed2", "weird", "live-busy"],
        Expect::default(),
    );
}

#[test]
fn no_hostname_in_prefix() {
    differential(
        "no_hostname_in_prefix",
        "[graphite]\nnamespace = lb\nprefix-hostname = false\n",
        &["seed3", "live-idle"],
        Expect::default(),
    );
}

/// A host name with dots, set in a UTS namespace for both sides.
const FQDN: &str = "lb-01.dc1.example.com";

#[test]
fn fqdn_hostname() {
    differential(
        "fqdn_hostname",
        "",
        &["seed1", "live-busy"],
        Expect {
            hostname: Some(FQDN),
            ..Expect::default()
        },
    );
}

#[test]
fn short_hostname() {
    differential(
        "short_hostname",
        "[graphite]\nfqdn = false\n",
        &["seed2", "live-busy"],
        Expect {
            hostname: Some(FQDN),
            ..Expect::default()
        },
    );
}
