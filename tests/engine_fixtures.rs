//! The engine on `show stat` layouts of HAProxy 1.5 to 3.0 (fixtures built
//! from the management guide's field list) and on real captures (corpus).

use std::path::{Path, PathBuf};

use haproxystats::engine::{EngineOptions, SnapshotError, process_snapshot};

const TS: &str = "1700000000";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stat")
        .join(name)
}

/// A snapshot dir with `files` copied as `<socket>_stat` / `_info`.
fn snapshot(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(TS);
    std::fs::create_dir(&dir).unwrap();
    for (src, dst) in files {
        std::fs::copy(fixture(src), dir.join(dst)).unwrap();
    }
    (tmp, dir)
}

fn run(dir: &Path, opts: &EngineOptions) -> (String, haproxystats::engine::SnapshotReport) {
    let mut out = Vec::new();
    let report = process_snapshot(dir, opts, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), report)
}

fn has(text: &str, path_value: &str) -> bool {
    text.lines().any(|l| l == format!("{path_value} {TS}"))
}

fn has_path(text: &str, path: &str) -> bool {
    text.lines().any(|l| l.split(' ').next() == Some(path))
}

#[test]
fn every_layout_gives_the_same_lines() {
    for version in ["1.5", "1.6", "1.8", "2.0", "2.6", "3.0"] {
        let file = format!("{version}_show_stat.csv");
        let (_tmp, dir) = snapshot(&[(&file, "a.sock_stat"), (&file, "b.sock_stat")]);
        let mut opts = EngineOptions::with_prefix("ns.haproxy");
        opts.aggr_server_metrics = true;
        let (text, report) = run(&dir, &opts);
        assert!(
            report.warnings.is_empty(),
            "{version}: {:?}",
            report.warnings
        );
        let p = "ns.haproxy";
        for want in [
            "frontend.fe_main.bin 200",
            "frontend.fe_main.scur 6",
            "frontend.fe_main.hrsp_2xx 12",
            "backend.be_app.bin 80",
            "backend.be_app.weight 30.0",
            "backend.be_app.act 2.0",
            "backend.be_app.qtime 1.0",
            "backend.be_app.ttime 4.0",
            "backend.be_app.TotalServers 2",
            "backend.be_app.server.srv1.lbtot 8",
            "backend.be_app.server.srv1.qtime 2.0",
            "backend.be_app.server.srv1.ttime 8.0",
            "backend.be_app.server.srv_2.weight 20.0",
            "backend.be_app.server.srv_2.lbtot 0",
            "server.srv1.bin 80",
            "server.srv1.weight 10.0",
        ] {
            assert!(
                has(&text, &format!("{p}.{want}")),
                "{version}: missing {want}\n{text}"
            );
        }
        // Busy-only means over no busy row: no line.
        assert!(
            !has_path(&text, &format!("{p}.backend.be_app.server.srv_2.qtime")),
            "{version}"
        );
        // A column whose cells are all empty: empty is 0, so a mean of 0
        // (SPEC §4.2, the original's fillna(0)).
        assert!(
            has(
                &text,
                &format!("{p}.backend.be_app.server.srv1.throttle 0.0")
            ),
            "{version}"
        );
        // Listeners are ignored.
        assert!(!text.contains("sock-1"), "{version}");
        // Columns a layout lacks are absent; present ones are there.
        let has_conn_tot = !matches!(version, "1.5" | "1.6");
        assert_eq!(
            has(&text, &format!("{p}.frontend.fe_main.conn_tot 18")),
            has_conn_tot,
            "{version}"
        );
        assert!(has(
            &text,
            &format!(
                "{p}.haproxystats.MetricsServer {}",
                report.metrics.server + 1
            )
        ));
        for line in text.lines() {
            let cells: Vec<&str> = line.split(' ').collect();
            assert_eq!(cells.len(), 3, "{line}");
            assert_eq!(cells[2], TS);
            assert!(cells[1].parse::<f64>().is_ok(), "{line}");
        }
    }
}

#[test]
fn corpus_captures_parse_without_warnings() {
    let cases: &[(&str, &[&str])] = &[
        (
            "1.7_show_stat.csv",
            &[
                "frontend.http-in.bin 813557487",
                "backend.www.lbtot 1716488",
                "backend.www.TotalServers 2",
                "backend.git.server.www.qtime 1268.0",
                "backend.demo.qtime", // lbtot 0: not emitted (checked below)
            ],
        ),
        (
            "1.4_quoted_show_stat.csv",
            &[
                "backend.b.TotalServers 5",
                "backend.b.lbtot 421",
                "frontend.a.bin 11",
            ],
        ),
        (
            "2.5.5_show_stat.csv",
            &[
                "frontend.http-frontend.bin 0",
                "backend.tcp-listen.TotalServers 1",
            ],
        ),
        (
            "2.7.1_show_stat.csv",
            &[
                "frontend.myfrontend.bin 85470",
                "backend.webservers.server.s3.lbtot 44",
                "backend.webservers.TotalServers 3",
            ],
        ),
    ];
    for (file, wants) in cases {
        let (_tmp, dir) = snapshot(&[(file, "x_stat")]);
        let (text, report) = run(&dir, &EngineOptions::with_prefix("P"));
        if file.starts_with("1.4") {
            // Line 10 carries a quoted text cell ("space, afterspace") in the
            // hrsp_2xx column: parsed by the csv fallback, warned about, empty.
            assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
            assert_eq!(report.warnings[0].line, Some(10));
            assert!(report.warnings[0].to_string().contains("hrsp_2xx"));
        } else {
            assert!(report.warnings.is_empty(), "{file}: {:?}", report.warnings);
        }
        for want in *wants {
            if want.ends_with("demo.qtime") {
                assert!(!has_path(&text, &format!("P.{want}")), "{file}");
            } else {
                assert!(
                    has(&text, &format!("P.{want}")),
                    "{file}: missing {want}\n{text}"
                );
            }
        }
        assert!(!text.contains("IPv4-direct"), "listeners are ignored");
    }
}

#[test]
fn daemon_from_real_info_files() {
    let (_tmp, dir) = snapshot(&[
        ("2.5.5_show_info.txt", "a.sock_info"),
        ("2.7.1_show_info.txt", "b.sock_info"),
    ]);
    let mut opts = EngineOptions::with_prefix("P");
    opts.per_process_metrics = true;
    opts.calculate_percentages = true;
    let (text, report) = run(&dir, &opts);
    assert!(report.warnings.is_empty());
    // Both report Process_num 1: the socket name is the process id.
    assert!(
        has_path(&text, "P.daemon.process.a_sock.Idle_pct"),
        "{text}"
    );
    assert!(
        has_path(&text, "P.daemon.process.b_sock.CpuUsagePct"),
        "{text}"
    );
    assert!(has(&text, "P.daemon.Idle_pct 99.5"), "{text}");
    assert!(has(&text, "P.daemon.50PercentileCpuUsagePct 0"), "{text}");
    assert!(has_path(&text, "P.daemon.StdCpuUsagePct"));
    assert!(has_path(&text, "P.daemon.ConnPercentage"));
    assert!(has_path(&text, "P.haproxystats.TotalWallClockTime"));
    assert!(has(
        &text,
        &format!(
            "P.haproxystats.MetricsHAProxy {}",
            report.metrics.daemon + 1
        )
    ));
}

#[test]
fn nothing_usable_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(TS);
    std::fs::create_dir(&dir).unwrap();
    let mut out = Vec::new();
    let err = process_snapshot(&dir, &EngineOptions::with_prefix("P"), &mut out).unwrap_err();
    assert!(matches!(err, SnapshotError::NothingUsable { .. }));
    std::fs::write(dir.join("a_stat"), b"\0\xff\xfe garbage\n").unwrap();
    std::fs::write(dir.join("a_info"), b"no pairs here\n").unwrap();
    let err = process_snapshot(&dir, &EngineOptions::with_prefix("P"), &mut out).unwrap_err();
    match err {
        SnapshotError::NothingUsable { warnings, .. } => {
            assert_eq!(warnings.len(), 2, "{warnings:?}")
        }
        e => panic!("{e}"),
    }
    assert!(out.is_empty());
    let bad = tmp.path().join("notanumber");
    std::fs::create_dir(&bad).unwrap();
    assert!(matches!(
        process_snapshot(&bad, &EngineOptions::with_prefix("P"), &mut out),
        Err(SnapshotError::BadTimestamp { .. })
    ));
}

#[test]
fn bad_files_do_not_spoil_the_rest() {
    let (_tmp, dir) = snapshot(&[
        ("2.7.1_show_stat.csv", "good_stat"),
        ("2.7.1_show_info.txt", "good_info"),
    ]);
    std::fs::write(dir.join("empty_stat"), b"").unwrap();
    std::fs::write(dir.join("empty_info"), b"").unwrap();
    let mut trunc = std::fs::read(fixture("2.7.1_show_stat.csv")).unwrap();
    trunc.truncate(trunc.len() - 300);
    std::fs::write(dir.join("trunc_stat"), &trunc).unwrap();
    std::fs::write(dir.join("nohdr_stat"), b"a,FRONTEND,1,2\n").unwrap();
    let (text, report) = run(&dir, &EngineOptions::with_prefix("P"));
    let files: Vec<String> = report
        .warnings
        .iter()
        .map(|w| w.file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for f in ["empty_stat", "empty_info", "trunc_stat", "nohdr_stat"] {
        assert!(files.iter().any(|x| x == f), "{f}: {files:?}");
    }
    let truncated = report
        .warnings
        .iter()
        .find(|w| w.file.ends_with("trunc_stat"))
        .unwrap();
    assert!(truncated.line.is_some());
    assert!(truncated.to_string().contains("trunc_stat:"), "{truncated}");
    assert!(has_path(&text, "P.frontend.myfrontend.bin"));
    assert!(has_path(&text, "P.daemon.CurrConns"));
}

#[test]
fn groups_and_exclusions() {
    let (_tmp, dir) = snapshot(&[("2.6_show_stat.csv", "a_stat")]);
    let mut opts = EngineOptions::with_prefix("P");
    opts.group_namespace = Some("G".into());
    opts.backend_groups = vec![
        haproxystats::engine::options::GroupRule {
            name: "apps".into(),
            pattern: regex::Regex::new("app").unwrap(),
        },
        haproxystats::engine::options::GroupRule {
            name: "other".into(),
            pattern: regex::Regex::new("be").unwrap(),
        },
    ];
    opts.exclude_frontends.insert("fe_main".into());
    let (text, _) = run(&dir, &opts);
    assert!(
        has(&text, "P.G.apps.backend.be_app.TotalServers 2"),
        "{text}"
    );
    assert!(has(&text, "P.G.apps.backend.be_app.server.srv1.lbtot 4"));
    assert!(!has_path(&text, "P.backend.be_app.TotalServers"));
    assert!(!text.contains("fe_main"));
    opts.group_double_writes = true;
    opts.exclude_backends.insert("be_app".into());
    let (text, _) = run(&dir, &opts);
    assert!(!text.contains("be_app"), "{text}");
}

/// Issue 12 item 6: HAProxy's counters are unsigned 64-bit; sums of them
/// are exact (no wrap to `bin -2`), values above `i64::MAX` are read, in
/// `show stat` cells and in `show info` values alike.
#[test]
fn sums_of_64_bit_counters_are_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(TS);
    std::fs::create_dir(&dir).unwrap();
    let max = i64::MAX;
    let umax = u64::MAX;
    for socket in ["a", "b"] {
        std::fs::write(
            dir.join(format!("{socket}_stat")),
            format!(
                "# pxname,svname,type,lbtot,bin,bout,qtime,weight,\n\
                 fe,FRONTEND,0,,{max},{umax},,,\n\
                 be,BACKEND,1,{umax},{umax},1,,,\n\
                 be,s1,2,{umax},{max},2,{umax},{umax},\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{socket}_info")),
            format!("Name: HAProxy\nCumConns: {umax}\nCurrConns: {max}\nIdle_pct: 100\n"),
        )
        .unwrap();
    }
    let mut opts = EngineOptions::with_prefix("P");
    opts.aggr_server_metrics = true;
    let (text, report) = run(&dir, &opts);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let two_max = 2 * i128::from(max);
    let two_umax = 2 * i128::from(umax);
    for want in [
        format!("P.frontend.fe.bin {two_max}"),
        format!("P.frontend.fe.bout {two_umax}"),
        format!("P.backend.be.bin {two_umax}"),
        format!("P.backend.be.lbtot {two_umax}"),
        format!("P.backend.be.server.s1.bin {two_max}"),
        format!("P.backend.be.server.s1.lbtot {two_umax}"),
        // Means stay right: lbtot above i64::MAX still makes a row busy.
        "P.backend.be.server.s1.qtime 1.8446744073709552e19".to_owned(),
        "P.backend.be.server.s1.weight 1.8446744073709552e19".to_owned(),
        format!("P.server.s1.bin {two_max}"),
        format!("P.daemon.CumConns {two_umax}"),
        format!("P.daemon.CurrConns {two_max}"),
    ] {
        assert!(has(&text, &want), "missing {want}\n{text}");
    }
    // One more digit is more than a counter holds: warned, treated as empty.
    std::fs::write(
        dir.join("a_stat"),
        "# pxname,svname,type,bin,\nfe,FRONTEND,0,184467440737095516150,\n",
    )
    .unwrap();
    let (_, report) = run(&dir, &opts);
    let warnings: Vec<String> = report.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("a_stat:2: cell of column bin is larger than")),
        "{warnings:?}"
    );
}
