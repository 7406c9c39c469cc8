//! Daemon (`show info`) aggregation across processes (SPEC §4.1).

use crate::catalogue::{DAEMON_MEAN_METRICS, DAEMON_PERCENTAGES, DAEMON_SUM_METRICS};

use super::format::{LineWriter, Value, sanitize_name};
use super::parse_info::InfoValues;

/// One process: its socket name (file name minus `_info`) and its values.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// File name minus `_info`.
    pub socket: String,
    /// Integer values of the file.
    pub values: InfoValues,
}

/// Nearest-rank quantile as pandas `quantile(q, interpolation='nearest')`
/// (numpy's `nearest` method: virtual index `n·q + (1 − q) − 1`, rounded half
/// to even) over sorted values.
pub fn quantile_nearest(sorted: &[i128], q: f64) -> Option<i128> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let vi = n as f64 * q + (1.0 - q) - 1.0;
    let idx = vi.round_ties_even().clamp(0.0, (n - 1) as f64) as usize;
    sorted.get(idx).copied()
}

/// Sample standard deviation (ddof = 1) as pandas computes it.
pub fn sample_std(values: &[i128]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let sq: f64 = values.iter().map(|&v| (mean - v as f64).powi(2)).sum();
    Some((sq / (n - 1.0)).sqrt())
}

/// `int(100·a/b)`, 0 when b = 0.
fn percentage(a: i128, b: i128) -> i128 {
    if b == 0 {
        0
    } else {
        // Exact: |a| < 2^125 (see `emit_daemon`), so 100·a fits.
        ((100i128.saturating_mul(a)) as f64 / b as f64).trunc() as i128
    }
}

/// Writes the daemon metrics; returns how many values were emitted.
pub fn emit_daemon(
    procs: &[ProcessInfo],
    prefix: &str,
    per_process: bool,
    percentages: bool,
    w: &mut LineWriter<'_>,
) -> usize {
    let mut count = 0usize;
    // Values are at most 2^64 in magnitude and there are fewer than 2^61
    // processes (a Vec of them fits in memory), so a sum stays below 2^125:
    // exact, never saturated.
    let sum_of = |key: &str| -> Option<i128> {
        let mut it = procs.iter().filter_map(|p| p.values.get(key)).peekable();
        it.peek()?;
        Some(it.fold(0i128, i128::saturating_add))
    };
    for key in DAEMON_SUM_METRICS {
        if let Some(s) = sum_of(key) {
            count += usize::from(w.line(&[prefix, "daemon", key], Value::int(s)));
        }
    }
    for key in DAEMON_MEAN_METRICS {
        let vals: Vec<i128> = procs.iter().filter_map(|p| p.values.get(key)).collect();
        if !vals.is_empty() {
            let mean = vals.iter().map(|&v| v as f64).sum::<f64>() / vals.len() as f64;
            count += usize::from(w.line(&[prefix, "daemon", key], Value::Float(mean)));
        }
    }
    let cpu = |p: &ProcessInfo| p.values.get("Idle_pct").map(|i| 100 - i);
    if procs.len() > 1 {
        let mut cpus: Vec<i128> = procs.iter().filter_map(cpu).collect();
        cpus.sort_unstable();
        for (q, name) in [
            (0.25, "25PercentileCpuUsagePct"),
            (0.50, "50PercentileCpuUsagePct"),
            (0.75, "75PercentileCpuUsagePct"),
            (0.95, "95PercentileCpuUsagePct"),
            (0.99, "99PercentileCpuUsagePct"),
        ] {
            if let Some(v) = quantile_nearest(&cpus, q) {
                count += usize::from(w.line(&[prefix, "daemon", name], Value::int(v)));
            }
        }
        if let Some(std) = sample_std(&cpus) {
            count += usize::from(w.line(&[prefix, "daemon", "StdCpuUsagePct"], Value::Float(std)));
        }
    }
    if percentages {
        for (title, a, b) in DAEMON_PERCENTAGES {
            if let (Some(sa), Some(sb)) = (sum_of(a), sum_of(b)) {
                count +=
                    usize::from(w.line(&[prefix, "daemon", title], Value::int(percentage(sa, sb))));
            }
        }
    }
    if per_process {
        let nums: Vec<Option<i128>> = procs.iter().map(|p| p.values.get("Process_num")).collect();
        let distinct = nums
            .iter()
            .enumerate()
            .all(|(i, n)| n.is_some() && !nums.iter().skip(i + 1).any(|m| m == n));
        for (p, num) in procs.iter().zip(&nums) {
            let id = match (distinct, num) {
                (true, Some(n)) => n.to_string(),
                _ => sanitize_name(&p.socket),
            };
            let base = [prefix, "daemon", "process", id.as_str()];
            let mut put = |key: &str, v: i128, w: &mut LineWriter<'_>| {
                let parts = [base[0], base[1], base[2], base[3], key];
                count += usize::from(w.line(&parts, Value::int(v)));
            };
            for key in DAEMON_SUM_METRICS {
                if let Some(v) = p.values.get(key) {
                    put(key, v, w);
                }
            }
            if let Some(c) = cpu(p) {
                put("CpuUsagePct", c, w);
            }
            for key in DAEMON_MEAN_METRICS {
                if let Some(v) = p.values.get(key) {
                    put(key, v, w);
                }
            }
            if percentages {
                for (title, a, b) in DAEMON_PERCENTAGES {
                    if let (Some(va), Some(vb)) = (p.values.get(a), p.values.get(b)) {
                        put(title, percentage(va, vb), w);
                    }
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_pandas_nearest() {
        let q = |v: &[i128]| [0.25, 0.5, 0.75, 0.95, 0.99].map(|x| quantile_nearest(v, x).unwrap());
        assert_eq!(q(&[10, 20, 30, 40]), [20, 30, 30, 40, 40]);
        assert_eq!(q(&[10, 20, 30]), [10, 20, 30, 30, 30]);
        assert_eq!(
            q(&[10, 20, 30, 40, 50, 60, 70, 80, 90]),
            [30, 50, 70, 90, 90]
        );
        assert_eq!(quantile_nearest(&[], 0.5), None);
    }

    #[test]
    fn std_and_percentages() {
        assert_eq!(sample_std(&[1, 2, 3]), Some(1.0));
        assert_eq!(sample_std(&[1]), None);
        assert_eq!(percentage(1, 3), 33);
        assert_eq!(percentage(5, 0), 0);
        assert_eq!(percentage(-1, 3), -33);
    }

    fn proc(socket: &str, pairs: &[(&str, i128)]) -> ProcessInfo {
        ProcessInfo {
            socket: socket.into(),
            values: InfoValues {
                pairs: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            },
        }
    }

    #[test]
    fn per_process_ids_and_missing_keys() {
        let procs = [
            proc(
                "a.sock",
                &[
                    ("Process_num", 1),
                    ("Idle_pct", 90),
                    ("CurrConns", 3),
                    ("Maxconn", 10),
                ],
            ),
            proc(
                "b.sock",
                &[("Process_num", 1), ("Idle_pct", 70), ("Maxconn", 10)],
            ),
        ];
        let mut buf = Vec::new();
        let mut w = LineWriter::new(&mut buf, 5);
        let n = emit_daemon(&procs, "P", true, true, &mut w);
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("P.daemon.CurrConns 3 5\n"), "{text}");
        assert!(text.contains("P.daemon.Maxconn 20 5\n"));
        assert!(text.contains("P.daemon.Idle_pct 80.0 5\n"));
        assert!(text.contains("P.daemon.ConnPercentage 15 5\n"));
        assert!(text.contains("P.daemon.StdCpuUsagePct 14.142135623730951 5\n"));
        assert!(text.contains("P.daemon.50PercentileCpuUsagePct 10 5\n"));
        assert!(text.contains("P.daemon.process.a_sock.CpuUsagePct 10 5\n"));
        assert!(!text.contains("P.daemon.process.b_sock.ConnPercentage"));
        assert!(text.contains("P.daemon.process.a_sock.ConnPercentage 30 5\n"));
        assert_eq!(n, text.lines().count());
    }
}
