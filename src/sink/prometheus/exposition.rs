//! A snapshot's Graphite lines as Prometheus series (the text exposition
//! format, version 0.0.4), and the served page made of the latest
//! snapshots.
//!
//! The series are [`super::series`]'s (the mapping remote write shares);
//! each value is written as Graphite got it (converted only for the three
//! base units of [`super::fields::UNITS`]). A line the reading does not
//! know is skipped and counted.
//!
//! Pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fields::Family;
use super::series::each_series;
use crate::sink::paths::PathLayout;

/// One snapshot's series, by family.
#[derive(Debug, Default, PartialEq)]
pub struct Exposition {
    /// Family name → the family and its sample lines.
    families: BTreeMap<String, Samples>,
    /// Sample lines in all.
    series: u64,
}

#[derive(Debug, PartialEq)]
struct Samples {
    family: Family,
    lines: Vec<u8>,
}

impl Exposition {
    /// Sample lines in all.
    pub fn series(&self) -> u64 {
        self.series
    }
}

/// What [`convert`] made of a snapshot's lines.
#[derive(Debug, Default, PartialEq)]
pub struct Converted {
    /// The series.
    pub exposition: Exposition,
    /// Lines that are no metric the reading knows (central's
    /// `ClockSkewMs.<lb>`, a path outside the layout): not served.
    pub skipped: u64,
}

/// The series of a snapshot's lines (newline-terminated, in chunks of
/// whole lines); with `cluster` (a load balancer's lines in central), each
/// series of a host is labelled with its cluster too.
pub fn convert<C: AsRef<[u8]>>(
    chunks: &[C],
    layout: &PathLayout,
    cluster: Option<&str>,
) -> Converted {
    let mut converted = Converted::default();
    let exposition = &mut converted.exposition;
    let mut unconverted = 0;
    let skipped = each_series(chunks, layout, cluster, |series| {
        let Some(value) = value_of(series.graphite_value, series.family.scale) else {
            unconverted += 1;
            return;
        };
        let name = &series.family.name;
        if !exposition.families.contains_key(name) {
            exposition.families.insert(
                name.clone(),
                Samples {
                    family: series.family.clone(),
                    lines: Vec::new(),
                },
            );
        }
        if let Some(samples) = exposition.families.get_mut(name) {
            sample(&mut samples.lines, name, series.labels, &value);
            exposition.series += 1;
        }
    });
    converted.skipped = skipped + unconverted;
    converted
}

/// The value as Prometheus gets it: Graphite's text, or converted.
fn value_of(value: &str, scale: Option<f64>) -> Option<String> {
    match scale {
        None => Some(value.to_owned()),
        Some(scale) => {
            let scaled = value.parse::<f64>().ok()? * scale;
            scaled
                .is_finite()
                .then(|| ryu::Buffer::new().format_finite(scaled).to_owned())
        }
    }
}

/// `name{label="value",...} value\n`.
fn sample(out: &mut Vec<u8>, name: &str, labels: &[(&str, &str)], value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.push(b'{');
    for (i, (label, text)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(b"=\"");
        escape(out, text, true);
        out.push(b'"');
    }
    out.extend_from_slice(b"} ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// The format's escaping: `\` and newline in help texts, `"` too in label
/// values.
fn escape(out: &mut Vec<u8>, text: &str, quote: bool) {
    for &b in text.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

/// The page of `snapshots` (the latest of each load balancer, cluster or
/// node): every family once, with its `# HELP` and `# TYPE`, then the
/// samples of every snapshot that has it. Families are in name order.
pub fn render(snapshots: &[Arc<Exposition>]) -> Vec<u8> {
    let mut families: BTreeMap<&str, (&Family, Vec<&[u8]>)> = BTreeMap::new();
    let mut size = 0;
    for snapshot in snapshots {
        for (name, samples) in &snapshot.families {
            size += samples.lines.len();
            families
                .entry(name.as_str())
                .or_insert_with(|| (&samples.family, Vec::new()))
                .1
                .push(&samples.lines);
        }
    }
    let mut out = Vec::with_capacity(size + families.len() * 160);
    for (name, (family, lines)) in families {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        escape(&mut out, &family.help, false);
        out.extend_from_slice(b"\n# TYPE ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(family.metric_type.name().as_bytes());
        out.push(b'\n');
        for chunk in lines {
            out.extend_from_slice(chunk);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(lines: &str) -> (String, u64) {
        let converted = convert(&[lines.as_bytes()], &PathLayout::test_node(), None);
        let text = render(&[Arc::new(converted.exposition)]);
        (String::from_utf8(text).expect("utf-8"), converted.skipped)
    }

    #[test]
    fn each_kind_becomes_its_families_with_help_type_and_labels() {
        let (text, skipped) = page(
            "ns.lb1.haproxy.daemon.CurrConns 12 1700000000\n\
             ns.lb1.haproxy.daemon.process.2.CurrConns 6 1700000000\n\
             ns.lb1.haproxy.frontend.fe_web.req_tot 100 1700000000\n\
             ns.lb1.haproxy.backend.be_app.server.s1.scur 3 1700000000\n\
             ns.lb1.haproxy.loadbalancers.web.backend.be.rtime 1.5 1700000000\n\
             ns.lb1.haproxy.haproxystats.TotalWallClockTime 0.012 1700000000\n",
        );
        assert_eq!(skipped, 0);
        assert_eq!(
            text,
            "# HELP haproxystats_backend_rtime Time spent waiting for a server response, in milliseconds, averaged over the 1024 last requests (backend/server)\n\
             # TYPE haproxystats_backend_rtime gauge\n\
             haproxystats_backend_rtime{host=\"lb1\",group=\"web\",backend=\"be\"} 1.5\n\
             # HELP haproxystats_daemon_curr_conns Current number of connections on this worker process\n\
             # TYPE haproxystats_daemon_curr_conns gauge\n\
             haproxystats_daemon_curr_conns{host=\"lb1\"} 12\n\
             haproxystats_daemon_curr_conns{host=\"lb1\",process=\"2\"} 6\n\
             # HELP haproxystats_frontend_req_tot_total Total number of HTTP requests processed by this object since the worker process started\n\
             # TYPE haproxystats_frontend_req_tot_total counter\n\
             haproxystats_frontend_req_tot_total{host=\"lb1\",frontend=\"fe_web\"} 100\n\
             # HELP haproxystats_self_total_wall_clock_time haproxystats' own TotalWallClockTime (haproxystats.TotalWallClockTime in Graphite)\n\
             # TYPE haproxystats_self_total_wall_clock_time gauge\n\
             haproxystats_self_total_wall_clock_time{host=\"lb1\"} 0.012\n\
             # HELP haproxystats_server_scur Number of current sessions on the frontend, backend or server\n\
             # TYPE haproxystats_server_scur gauge\n\
             haproxystats_server_scur{host=\"lb1\",backend=\"be_app\",server=\"s1\"} 3\n"
        );
    }

    #[test]
    fn quotes_backslashes_and_newlines_are_escaped() {
        let mut out = Vec::new();
        sample(&mut out, "m", &[("frontend", "a\"b\\c\nd")], "1");
        assert_eq!(out, b"m{frontend=\"a\\\"b\\\\c\\nd\"} 1\n");
        let mut help = Vec::new();
        escape(&mut help, "a\"b\\c\nd", false);
        assert_eq!(help, b"a\"b\\\\c\\nd");
        let (text, _) = page("ns.lb1.haproxy.frontend.we\"b\\x.scur 1 1700000000\n");
        assert!(
            text.contains("haproxystats_frontend_scur{host=\"lb1\",frontend=\"we\\\"b\\\\x\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn base_units_are_converted_and_other_values_kept_as_written() {
        let (text, _) = page(
            "ns.lb1.haproxy.daemon.Memmax_MB 3 1700000000\n\
             ns.lb1.haproxy.daemon.Uptime_sec 7 1700000000\n\
             ns.lb1.haproxy.backend.be.qtime 0.30000000000000004 1700000000\n",
        );
        assert!(
            text.contains("haproxystats_daemon_memmax_bytes{host=\"lb1\"} 3145728.0\n"),
            "{text}"
        );
        assert!(text.contains("haproxystats_daemon_uptime_seconds{host=\"lb1\"} 7\n"));
        assert!(text.contains(
            "haproxystats_backend_qtime{host=\"lb1\",backend=\"be\"} 0.30000000000000004\n"
        ));
    }

    #[test]
    fn lines_the_reading_does_not_know_are_skipped_and_counted() {
        let (text, skipped) = page(
            "other.prefix.daemon.Tasks 1 1700000000\n\
             ns.lb1.haproxy.haproxystats.ClockSkewMs.lb2 5 1700000000\n\
             ns.lb1.haproxy.daemon.Tasks nan 1700000000\n\
             \n\
             ns.lb1.haproxy.daemon.Tasks 5 1700000000\n",
        );
        assert_eq!(skipped, 3);
        assert!(
            text.ends_with("haproxystats_daemon_tasks{host=\"lb1\"} 5\n"),
            "{text}"
        );
    }

    #[test]
    fn a_family_of_several_snapshots_is_written_once() {
        let central = PathLayout::test_central();
        let one = convert(
            &[&b"ns.lb1.haproxy.frontend.fe.scur 1 10\n"[..]],
            &central,
            None,
        );
        let two = convert(
            &[&b"ns.lb2.haproxy.frontend.fe.scur 2 10\nns.clusters.c1.haproxy.frontend.fe.scur 3 10\n"[..]],
            &central,
            // lb2's lines in central: its cluster labels its series.
            Some("c1"),
        );
        let text = render(&[Arc::new(one.exposition), Arc::new(two.exposition)]);
        let text = String::from_utf8(text).expect("utf-8");
        assert_eq!(text.matches("# TYPE").count(), 1, "{text}");
        assert!(text.ends_with(
            "haproxystats_frontend_scur{host=\"lb1\",frontend=\"fe\"} 1\n\
             haproxystats_frontend_scur{host=\"lb2\",cluster=\"c1\",frontend=\"fe\"} 2\n\
             haproxystats_frontend_scur{cluster=\"c1\",frontend=\"fe\"} 3\n"
        ));
    }
}
