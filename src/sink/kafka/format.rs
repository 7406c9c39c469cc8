//! Kafka message values from a snapshot's Graphite lines (SPEC §5).
//!
//! - `graphite`: the lines as they are, whole newline-terminated lines per
//!   message, which go-carbon's Kafka receiver (`parse-protocol = "plain"`)
//!   and telegraf's `kafka_consumer` (`data_format = "graphite"`) read
//!   unchanged.
//! - `influx`: InfluxDB line protocol. The Graphite path is read back into a
//!   measurement per kind and tags: names from HAProxy never hold a `.`
//!   (the engine replaces it), so below the prefix every path component is
//!   one name or one keyword. One line per (measurement, tags, timestamp)
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

use std::fmt;

/// How lines are written into message values (`[kafka] format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Graphite plaintext lines, unchanged.
    #[default]
    Graphite,
    /// InfluxDB line protocol.
    Influx,
}

impl Format {
    /// The spelling in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Format::Graphite => "graphite",
            Format::Influx => "influx",
        }
    }

    /// Parses the configuration's spelling.
    pub fn parse(value: &str) -> Option<Format> {
        match value {
            "graphite" => Some(Format::Graphite),
            "influx" => Some(Format::Influx),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

/// Where the Graphite path of a line puts what: the parts of the path the
/// configuration decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathLayout {
    /// `P` of SPEC §4 without its trailing dot (`namespace[.host].haproxy`).
    pub prefix: String,
    /// The `host` tag: the load balancer, whether or not the path names it.
    pub host: String,
    /// `[graphite] group-namespace`, when groups are written under it.
    pub group_namespace: Option<String>,
    /// Central processing (SPEC §7): lines of many load balancers, each
    /// under `<prefix>.<lb>.haproxy.`, tagged with their own `lb`; `host`
    /// is then central's, for its own `<prefix>.<host>.haproxystats.` lines.
    pub lb_in_path: bool,
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

/// One Graphite line read back as a point.
#[derive(Debug, PartialEq, Eq)]
struct Point<'a> {
    series: Series<'a>,
    field: &'a str,
    value: &'a str,
}

/// Appends the line protocol of `lines` to `out`: consecutive lines of one
/// measurement, tag set and timestamp (the engine writes a name's metrics
/// together) become one line with a field each.
pub fn to_influx(lines: &[u8], layout: &PathLayout, out: &mut Vec<u8>) -> InfluxCount {
    let mut count = InfluxCount::default();
    let mut open: Option<Series<'_>> = None;
    let text = String::from_utf8_lossy(lines);
    for line in text.lines() {
        let Some(point) = read_point(line, layout) else {
            if !line.is_empty() {
                count.skipped += 1;
            }
            continue;
        };
        if open.as_ref() == Some(&point.series) {
            out.push(b',');
        } else {
            if let Some(series) = open.take() {
                end_line(out, series.timestamp);
                count.lines += 1;
            }
            escape(out, point.series.measurement, b", ");
            for (key, value) in &point.series.tags {
                out.push(b',');
                escape(out, key, b",= ");
                out.push(b'=');
                escape(out, value, b",= ");
            }
            out.push(b' ');
            open = Some(point.series);
        }
        escape(out, point.field, b",= ");
        out.push(b'=');
        out.extend_from_slice(point.value.as_bytes());
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

/// With [`PathLayout::lb_in_path`], the load balancer of a path (its parts
/// after the prefix), which is taken off the parts: `<lb>.haproxy.…` or
/// central's own `<host>.haproxystats.…`; `None` for central's own lines
/// without a host part (`haproxystats.…`).
fn lb_of<'a>(parts: &mut Vec<&'a str>) -> Option<&'a str> {
    let lb = *parts.first()?;
    let drop = match parts.get(1) {
        Some(&"haproxy") => 2,
        Some(&"haproxystats") => 1,
        _ => return None,
    };
    parts.drain(..drop);
    Some(lb)
}

/// `path value timestamp` → a point, or `None` when the path is not one
/// the engine writes under `layout` or the value is no finite number.
fn read_point<'a>(line: &'a str, layout: &'a PathLayout) -> Option<Point<'a>> {
    let mut fields = line.split(' ');
    let (path, value, timestamp) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some()
        || !value.parse::<f64>().is_ok_and(f64::is_finite)
        || timestamp.is_empty()
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let rest = path
        .strip_prefix(layout.prefix.as_str())?
        .strip_prefix('.')?;
    let mut parts: Vec<&str> = rest.split('.').collect();
    let host = if layout.lb_in_path {
        lb_of(&mut parts).unwrap_or(layout.host.as_str())
    } else {
        layout.host.as_str()
    };
    let mut tags = vec![("host", host)];
    if let Some(namespace) = &layout.group_namespace
        && parts.first() == Some(&namespace.as_str())
        && parts.len() > 3
    {
        tags.push(("group", parts[1]));
        parts.drain(..2);
    }
    let (measurement, field) = match parts.as_slice() {
        ["daemon", "process", id, key] => {
            tags.push(("process", id));
            ("haproxy_daemon", *key)
        }
        ["daemon", key] => ("haproxy_daemon", *key),
        ["frontend", name, metric] => {
            tags.push(("frontend", name));
            ("haproxy_frontend", *metric)
        }
        ["backend", backend, "server", server, metric] => {
            tags.push(("backend", backend));
            tags.push(("server", server));
            ("haproxy_server", *metric)
        }
        ["backend", name, metric] => {
            tags.push(("backend", name));
            ("haproxy_backend", *metric)
        }
        ["server", name, metric] => {
            tags.push(("server", name));
            ("haproxy_server", *metric)
        }
        ["haproxystats", metric] => ("haproxystats", *metric),
        _ => return None,
    };
    if tags.iter().any(|(_, v)| v.is_empty()) || field.is_empty() {
        return None;
    }
    Some(Point {
        series: Series {
            measurement,
            tags,
            timestamp,
        },
        field,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> PathLayout {
        PathLayout {
            prefix: "ns.lb1.haproxy".into(),
            host: "lb1".into(),
            group_namespace: Some("loadbalancers".into()),
            lb_in_path: false,
        }
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

    #[test]
    fn formats_are_spelt_as_in_the_configuration() {
        for format in [Format::Graphite, Format::Influx] {
            assert_eq!(Format::parse(format.name()), Some(format));
        }
        assert_eq!(Format::parse("json"), None);
    }
}
