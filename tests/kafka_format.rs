//! The Kafka sink's `influx` format read by an independent parser
//! (InfluxDB IOx's `influxdb-line-protocol`): every line `replay` prints for
//! a generated snapshot becomes exactly one field of one point, with its
//! measurement, tags, value and timestamp.

mod support;

use std::collections::BTreeMap;
use std::fs;

use haproxystats::sink::kafka::format::{PathLayout, split_lines, to_influx};
use influxdb_line_protocol::{FieldValue, parse_lines};
use support::snapshots::{Shape, publish_snapshot, replay_lines};

const SHAPE: Shape = Shape {
    processes: 2,
    frontends: 5,
    backends: 5,
    servers: 3,
};

/// What a Graphite path must become: measurement, tags, field.
fn expected_point(path: &str) -> (String, Vec<(String, String)>, String) {
    let parts: Vec<&str> = path
        .strip_prefix("test.haproxy.")
        .expect("prefix")
        .split('.')
        .collect();
    let host = ("host".to_owned(), "lb1".to_owned());
    let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    match parts.as_slice() {
        ["daemon", "process", id, key] => (
            "haproxy_daemon".into(),
            vec![host, tag("process", id)],
            (*key).into(),
        ),
        ["daemon", key] => ("haproxy_daemon".into(), vec![host], (*key).into()),
        ["frontend", fe, m] => (
            "haproxy_frontend".into(),
            vec![host, tag("frontend", fe)],
            (*m).into(),
        ),
        ["backend", be, "server", srv, m] => (
            "haproxy_server".into(),
            vec![host, tag("backend", be), tag("server", srv)],
            (*m).into(),
        ),
        ["backend", be, m] => (
            "haproxy_backend".into(),
            vec![host, tag("backend", be)],
            (*m).into(),
        ),
        ["server", srv, m] => (
            "haproxy_server".into(),
            vec![host, tag("server", srv)],
            (*m).into(),
        ),
        ["haproxystats", m] => ("haproxystats".into(), vec![host], (*m).into()),
        other => panic!("a path the engine does not write: {other:?}"),
    }
}

#[test]
fn every_line_replay_prints_is_one_field_an_influx_parser_reads_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let src = root.path().join("incoming");
    fs::create_dir(&src).expect("src-dir");
    let dir = publish_snapshot(&src, 1_700_000_000, 7, SHAPE);
    let conf = root.path().join("haproxystats.conf");
    fs::write(
        &conf,
        format!(
            "[paths]\nbase-dir = {root}\n\n[process]\nsrc-dir = {src}\n\
             aggr-server-metrics = true\nper-process-metrics = true\n\n\
             [graphite]\nnamespace = test\nprefix-hostname = false\n",
            root = root.path().display(),
            src = src.display()
        ),
    )
    .expect("write conf");
    let graphite: Vec<String> = replay_lines(&conf, &[dir]).into_iter().collect();
    assert!(graphite.len() > 500, "{} lines", graphite.len());
    let mut text = String::new();
    for line in &graphite {
        text.push_str(line);
        text.push('\n');
    }
    let layout = PathLayout {
        prefix: "test.haproxy".into(),
        host: "lb1".into(),
        group_namespace: None,
        lb_in_path: false,
        cluster_namespace: None,
    };
    let mut influx = Vec::new();
    let count = to_influx(text.as_bytes(), &layout, &mut influx);
    assert_eq!(count.skipped, 0);

    // What the parser reads, keyed like the expectation.
    type Key = (String, Vec<(String, String)>, String);
    let mut read: BTreeMap<Key, (f64, i64)> = BTreeMap::new();
    // Messages of at most 4 KiB, each parsed on its own as a consumer would.
    let split = split_lines(&influx, 4096);
    assert_eq!(split.oversized_lines, 0);
    assert!(split.messages.len() > 1);
    let mut points = 0;
    for message in split.messages {
        let message = std::str::from_utf8(message).expect("utf-8");
        for parsed in parse_lines(message) {
            let parsed = parsed.unwrap_or_else(|e| panic!("influx parser: {e}"));
            points += 1;
            let tags: Vec<(String, String)> = parsed
                .series
                .tag_set
                .iter()
                .flatten()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            for (field, value) in &parsed.field_set {
                let FieldValue::F64(value) = value else {
                    panic!("{field} is not a float: {value:?}");
                };
                let key = (
                    parsed.series.measurement.to_string(),
                    tags.clone(),
                    field.to_string(),
                );
                let ts = parsed.timestamp.expect("timestamp");
                assert!(read.insert(key, (*value, ts)).is_none(), "{field} twice");
            }
        }
    }
    assert_eq!(points as u64, count.lines);
    assert_eq!(read.len(), graphite.len(), "one field per Graphite line");
    for line in &graphite {
        let mut fields = line.split(' ');
        let (path, value, ts) = (
            fields.next().expect("path"),
            fields.next().expect("value"),
            fields.next().expect("timestamp"),
        );
        let key = expected_point(path);
        let (got, got_ts) = read
            .get(&key)
            .unwrap_or_else(|| panic!("{line}: no field {key:?}"));
        let want: f64 = value.parse().expect("value");
        assert_eq!(*got, want, "{line}");
        assert_eq!(
            *got_ts,
            ts.parse::<i64>().expect("ts") * 1_000_000_000,
            "{line}"
        );
    }
}
