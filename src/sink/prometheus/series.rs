//! A snapshot's Graphite lines as Prometheus series: the one mapping the
//! `[prometheus]` page ([`super::exposition`]) and remote write share, so
//! that both carry the same names, labels and values by construction.
//!
//! Each line is read back with the other sinks' reading
//! (src/sink/paths.rs): its kind and metric give the family
//! ([`super::fields`]), its path's names the labels. In central, a load
//! balancer's series are labelled with its cluster too.
//!
//! Pure.

use std::collections::HashMap;

use super::fields::{Family, family};
use crate::sink::paths::{Kind, PathLayout, read_point};

/// One series of a snapshot, as [`each_series`] gives it.
#[derive(Debug)]
pub struct Series<'a> {
    /// Its family (name, type, help, unit conversion).
    pub family: &'a Family,
    /// `host` or `cluster` first (in central `host`, `cluster`), then
    /// `group`, `process`, `frontend`, `backend`, `server` as the path has
    /// them.
    pub labels: &'a [(&'static str, &'a str)],
    /// The value as Graphite got it (a finite number).
    pub graphite_value: &'a str,
    /// Epoch seconds, as Graphite got them.
    pub timestamp: &'a str,
}

impl Series<'_> {
    /// The value in the family's unit (converted only for the three base
    /// units of [`super::fields::UNITS`]); `None` if that is not finite.
    pub fn value(&self) -> Option<f64> {
        let value = self.graphite_value.parse::<f64>().ok()? * self.family.scale.unwrap_or(1.0);
        value.is_finite().then_some(value)
    }
}

/// Calls `each` with every series of a snapshot's lines (newline-terminated,
/// in chunks of whole lines); with `cluster` (a load balancer's lines in
/// central), each series of a host is labelled with its cluster too.
/// Returns how many lines were no metric the reading knows (central's
/// `ClockSkewMs.<lb>`, a path outside the layout): skipped.
pub fn each_series<C: AsRef<[u8]>>(
    chunks: &[C],
    layout: &PathLayout,
    cluster: Option<&str>,
    mut each: impl FnMut(Series<'_>),
) -> u64 {
    let mut skipped = 0;
    // The family of (kind, metric), made once per snapshot.
    let mut families: HashMap<Kind, HashMap<String, Family>> = HashMap::new();
    for chunk in chunks {
        let text = String::from_utf8_lossy(chunk.as_ref());
        for line in text.lines() {
            let Some(point) = read_point(line, layout) else {
                if !line.is_empty() {
                    skipped += 1;
                }
                continue;
            };
            let by_metric = families.entry(point.kind).or_default();
            if !by_metric.contains_key(point.metric) {
                by_metric.insert(point.metric.to_owned(), family(point.kind, point.metric));
            }
            let Some(family) = by_metric.get(point.metric) else {
                continue;
            };
            let mut labels = point.labels;
            if let Some(cluster) = cluster
                && labels.first().is_some_and(|(label, _)| *label == "host")
            {
                labels.insert(1, ("cluster", cluster));
            }
            each(Series {
                family,
                labels: &labels,
                graphite_value: point.value,
                timestamp: point.timestamp,
            });
        }
    }
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_is_one_series_with_its_family_labels_and_value_in_base_units() {
        let lines = "ns.lb1.haproxy.daemon.Memmax_MB 2 1700000000\n\
                     ns.lb1.haproxy.backend.be_app.server.s1.rtime 1500 1700000000\n\
                     ns.lb1.haproxy.frontend.fe.req_tot 100 1700000000\n\
                     ns.lb1.haproxy.haproxystats.ClockSkewMs.lb2.x 1 1700000000\n\
                     not a line\n";
        let mut seen = Vec::new();
        let skipped = each_series(
            &[lines.as_bytes()],
            &PathLayout::test_node(),
            Some("c1"),
            |s| {
                seen.push((
                    s.family.name.clone(),
                    s.labels
                        .iter()
                        .map(|(l, v)| format!("{l}={v}"))
                        .collect::<Vec<_>>(),
                    s.value(),
                    s.timestamp.to_owned(),
                ));
            },
        );
        assert_eq!(skipped, 2);
        assert_eq!(
            seen,
            vec![
                (
                    "haproxystats_daemon_memmax_bytes".to_owned(),
                    vec!["host=lb1".into(), "cluster=c1".into()],
                    Some(2.0 * 1024.0 * 1024.0),
                    "1700000000".to_owned(),
                ),
                (
                    "haproxystats_server_rtime".to_owned(),
                    vec![
                        "host=lb1".into(),
                        "cluster=c1".into(),
                        "backend=be_app".into(),
                        "server=s1".into()
                    ],
                    Some(1500.0),
                    "1700000000".to_owned(),
                ),
                (
                    "haproxystats_frontend_req_tot_total".to_owned(),
                    vec!["host=lb1".into(), "cluster=c1".into(), "frontend=fe".into()],
                    Some(100.0),
                    "1700000000".to_owned(),
                ),
            ]
        );
    }
}
