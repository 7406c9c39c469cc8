//! Kafka message values from a snapshot's Graphite lines (SPEC §5).
//!
//! - `graphite`: the lines as they are, whole newline-terminated lines per
//!   message, which go-carbon's Kafka receiver (`parse-protocol = "plain"`)
//!   and telegraf's `kafka_consumer` (`data_format = "graphite"`) read
//!   unchanged.
//! - `influx`: InfluxDB line protocol. The Graphite path is read back into a
//!   measurement per kind and tags (src/sink/paths.rs). One line per (measurement, tags, timestamp)
//!   with every metric of it as a field, timestamps in nanoseconds. Values
//!   are written as floats (no `i` suffix): a metric that is a whole number
//!   in one snapshot and a mean with a fraction in the next keeps one field
//!   type, as Graphite has one.
//!
//! Either way a message never splits a line and holds at most
//! `message-max-bytes`; a single line longer than that cannot be sent and
//! is counted as dropped.
//!
//! Pure: bytes in, bytes out.

pub use crate::config::Format;
pub use crate::sink::paths::PathLayout;
use crate::sink::paths::{Kind, read_point};

/// Message values cut from newline-terminated lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split<'a> {
    /// Each at most the limit, of whole lines, in order.
    pub messages: Vec<&'a [u8]>,
    /// Lines longer than the limit on their own: not sent.
    pub oversized_lines: u64,
}

/// Cuts `lines` (newline-terminated; a trailing unterminated line counts as
/// one) into messages of whole lines of at most `max_bytes` each, without a
/// copy.
pub fn split_lines(lines: &[u8], max_bytes: usize) -> Split<'_> {
    let mut split = Split::default();
    let mut start = 0;
    let mut end = 0;
    while end < lines.len() {
        let line_end = memchr::memchr(b'\n', &lines[end..]).map_or(lines.len(), |i| end + i + 1);
        if line_end - end > max_bytes {
            if end > start {
                split.messages.push(&lines[start..end]);
            }
            split.oversized_lines += 1;
            start = line_end;
        } else if line_end - start > max_bytes {
            split.messages.push(&lines[start..end]);
            start = end;
        }
        end = line_end;
    }
    if end > start {
        split.messages.push(&lines[start..end]);
    }
    split
}

/// What [`to_influx`] did with a snapshot's lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InfluxCount {
    /// Influx lines written.
    pub lines: u64,
    /// Graphite lines whose path or value did not fit the layout: skipped.
    pub skipped: u64,
}

/// What one influx line is about: consecutive points of one series share it.
#[derive(Debug, PartialEq, Eq)]
struct Series<'a> {
    measurement: &'static str,
    tags: Vec<(&'static str, &'a str)>,
    timestamp: &'a str,
}

/// Appends the line protocol of `lines` to `out`: consecutive lines of one
/// measurement, tag set and timestamp (the engine writes a name's metrics
/// together) become one line with a field each.
pub fn to_influx(lines: &[u8], layout: &PathLayout, out: &mut Vec<u8>) -> InfluxCount {
    let mut count = InfluxCount::default();
    let mut open: Option<Series<'_>> = None;
    let text = String::from_utf8_lossy(lines);
    for line in text.lines() {
        let Some((series, field, value)) = influx_point(line, layout) else {
            if !line.is_empty() {
                count.skipped += 1;
            }
            continue;
        };
        if open.as_ref() == Some(&series) {
            out.push(b',');
        } else {
            if let Some(series) = open.take() {
                end_line(out, series.timestamp);
                count.lines += 1;
            }
            escape(out, series.measurement, b", ");
            for (key, tag) in &series.tags {
                out.push(b',');
                escape(out, key, b",= ");
                out.push(b'=');
                escape(out, tag, b",= ");
            }
            out.push(b' ');
            open = Some(series);
        }
        escape(out, field, b",= ");
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
    if let Some(series) = open {
        end_line(out, series.timestamp);
        count.lines += 1;
    }
    count
}

fn end_line(out: &mut Vec<u8>, timestamp_seconds: &str) {
    out.push(b' ');
    out.extend_from_slice(timestamp_seconds.as_bytes());
    out.extend_from_slice(b"000000000\n");
}

/// Backslash before every byte of `special` (the line protocol's escaping).
fn escape(out: &mut Vec<u8>, text: &str, special: &[u8]) {
    for &b in text.as_bytes() {
        if special.contains(&b) || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// The influx series of a point and its field.
fn influx_point<'a>(
    line: &'a str,
    layout: &'a PathLayout,
) -> Option<(Series<'a>, &'a str, &'a str)> {
    let point = read_point(line, layout)?;
    let measurement = match point.kind {
        Kind::Daemon => "haproxy_daemon",
        Kind::Frontend => "haproxy_frontend",
        Kind::Backend => "haproxy_backend",
        Kind::Server => "haproxy_server",
        Kind::SelfMetrics => "haproxystats",
    };
    let series = Series {
        measurement,
        tags: point.labels,
        timestamp: point.timestamp,
    };
    Some((series, point.metric, point.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> PathLayout {
        PathLayout::test_node()
    }

    fn influx(lines: &str) -> (String, InfluxCount) {
        let mut out = Vec::new();
        let count = to_influx(lines.as_bytes(), &layout(), &mut out);
        (String::from_utf8(out).expect("utf-8"), count)
    }

    #[test]
    fn messages_hold_whole_lines_and_stay_under_the_limit() {
        let lines = b"a 1 10\nbb 2 10\nccc 3 10\n";
        // "a 1 10\n" is 7 bytes, "bb 2 10\n" 8, "ccc 3 10\n" 9.
        let split = split_lines(lines, 15);
        assert_eq!(
            split.messages,
            vec![&b"a 1 10\nbb 2 10\n"[..], &b"ccc 3 10\n"[..]]
        );
        assert_eq!(split.oversized_lines, 0);
        let split = split_lines(lines, 1000);
        assert_eq!(split.messages, vec![&lines[..]]);
        for max in 9..40 {
            let split = split_lines(lines, max);
            assert!(
                split
                    .messages
                    .iter()
                    .all(|m| m.len() <= max && m.ends_with(b"\n"))
            );
            assert_eq!(split.messages.concat(), lines.to_vec(), "max {max}");
        }
    }

    #[test]
    fn a_line_longer_than_the_limit_is_counted_not_sent() {
        let split = split_lines(b"a 1 10\nlonger.path 2 10\nb 3 10\n", 8);
        assert_eq!(split.messages, vec![&b"a 1 10\n"[..], &b"b 3 10\n"[..]]);
        assert_eq!(split.oversized_lines, 1);
        assert_eq!(split_lines(b"", 8), Split::default());
    }

    #[test]
    fn central_tags_each_point_with_the_load_balancer_of_its_path() {
        let layout = PathLayout {
            prefix: "ns".into(),
            host: "central1".into(),
            group_namespace: None,
            lb_in_path: true,
            cluster_namespace: None,
        };
        let mut out = Vec::new();
        let count = to_influx(
            b"ns.lb1.haproxy.frontend.fe.req_tot 100 1700000000\n\
              ns.lb2.haproxy.frontend.fe.req_tot 7 1700000000\n\
              ns.lb2.haproxy.haproxystats.TotalWallClockTime 0.5 1700000000\n\
              ns.central1.haproxystats.BadMessages 3 1700000000\n\
              ns.haproxystats.SnapshotsProcessed 4 1700000000\n\
              ns.lb3.other.frontend.fe.req_tot 1 1700000000\n",
            &layout,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "haproxy_frontend,host=lb1,frontend=fe req_tot=100 1700000000000000000\n\
             haproxy_frontend,host=lb2,frontend=fe req_tot=7 1700000000000000000\n\
             haproxystats,host=lb2 TotalWallClockTime=0.5 1700000000000000000\n\
             haproxystats,host=central1 BadMessages=3,SnapshotsProcessed=4 1700000000000000000\n"
        );
        assert_eq!(
            count,
            InfluxCount {
                lines: 4,
                skipped: 1
            }
        );
    }

    #[test]
    fn each_kind_becomes_its_measurement_with_its_tags() {
        let (text, count) = influx(
            "ns.lb1.haproxy.daemon.CurrConns 12 1700000000\n\
             ns.lb1.haproxy.daemon.Idle_pct 97.5 1700000000\n\
             ns.lb1.haproxy.daemon.process.2.CurrConns 6 1700000000\n\
             ns.lb1.haproxy.frontend.fe_web.req_tot 100 1700000000\n\
             ns.lb1.haproxy.backend.be_app.qcur 0 1700000000\n\
             ns.lb1.haproxy.backend.be_app.server.s1.scur 3 1700000000\n\
             ns.lb1.haproxy.server.s1.scur 4 1700000000\n\
             ns.lb1.haproxy.haproxystats.TotalWallClockTime 0.012 1700000000\n",
        );
        assert_eq!(
            text,
            "haproxy_daemon,host=lb1 CurrConns=12,Idle_pct=97.5 1700000000000000000\n\
             haproxy_daemon,host=lb1,process=2 CurrConns=6 1700000000000000000\n\
             haproxy_frontend,host=lb1,frontend=fe_web req_tot=100 1700000000000000000\n\
             haproxy_backend,host=lb1,backend=be_app qcur=0 1700000000000000000\n\
             haproxy_server,host=lb1,backend=be_app,server=s1 scur=3 1700000000000000000\n\
             haproxy_server,host=lb1,server=s1 scur=4 1700000000000000000\n\
             haproxystats,host=lb1 TotalWallClockTime=0.012 1700000000000000000\n"
        );
        assert_eq!(
            count,
            InfluxCount {
                lines: 7,
                skipped: 0
            }
        );
    }

    #[test]
    fn grouped_names_get_a_group_tag() {
        let (text, _) = influx(
            "ns.lb1.haproxy.loadbalancers.web.frontend.fe_web.req_tot 100 1700000000\n\
             ns.lb1.haproxy.loadbalancers.web.backend.be.server.s1.scur 1 1700000000\n",
        );
        assert_eq!(
            text,
            "haproxy_frontend,host=lb1,group=web,frontend=fe_web req_tot=100 1700000000000000000\n\
             haproxy_server,host=lb1,group=web,backend=be,server=s1 scur=1 1700000000000000000\n"
        );
    }

    #[test]
    fn spaces_commas_and_equals_in_names_are_escaped() {
        let (text, _) = influx("ns.lb1.haproxy.frontend.a,b=c\\d.req_tot 1 1700000000\n");
        assert_eq!(
            text,
            "haproxy_frontend,host=lb1,frontend=a\\,b\\=c\\\\d req_tot=1 1700000000000000000\n"
        );
        let mut out = Vec::new();
        let layout = PathLayout {
            host: "lb one".into(),
            ..layout()
        };
        to_influx(
            b"ns.lb1.haproxy.daemon.Tasks 1 1700000000\n",
            &layout,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "haproxy_daemon,host=lb\\ one Tasks=1 1700000000000000000\n"
        );
    }

    #[test]
    fn a_new_timestamp_or_name_starts_a_new_line() {
        let (text, count) = influx(
            "ns.lb1.haproxy.frontend.a.req_tot 1 1700000000\n\
             ns.lb1.haproxy.frontend.a.req_tot 2 1700000010\n\
             ns.lb1.haproxy.frontend.b.req_tot 3 1700000010\n",
        );
        assert_eq!(count.lines, 3, "{text}");
    }

    #[test]
    fn lines_outside_the_layout_are_skipped_and_counted() {
        let (text, count) = influx(
            "other.prefix.daemon.Tasks 1 1700000000\n\
             ns.lb1.haproxy.unknown.kind.x 1 1700000000\n\
             ns.lb1.haproxy.daemon.Tasks nan 1700000000\n\
             ns.lb1.haproxy.daemon.Tasks 1\n\
             ns.lb1.haproxy.daemon.Tasks 1 17e8\n\
             ns.lb1.haproxy.daemon.Tasks 5 1700000000\n",
        );
        assert_eq!(
            text,
            "haproxy_daemon,host=lb1 Tasks=5 1700000000000000000\n"
        );
        assert_eq!(
            count,
            InfluxCount {
                lines: 1,
                skipped: 5
            }
        );
    }
}
