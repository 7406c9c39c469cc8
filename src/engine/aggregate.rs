//! Grouped kernels over the Arrow batches of `parse_stat`: per frontend, per
//! backend, per (backend, server) accumulators of sum and counts, which merge
//! exactly across threads and files.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small multiplicative hasher (FxHash): group names are short and not
/// attacker-chosen in a way that matters here, SipHash is needlessly slow.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

use arrow::array::Array;

use crate::catalogue::{Aggregation, StatMetric};

use super::parse_stat::{ColumnPlan, RowKind, StatBatch};

/// Running totals of one metric in one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acc {
    /// Sum of the non-null values considered.
    pub sum: i64,
    /// Non-null values considered.
    pub valid: u32,
    /// Rows considered (null or not), for `mean_nulls_as_zero`.
    pub rows: u32,
}

impl Acc {
    fn merge(&mut self, o: &Acc) {
        self.sum = self.sum.wrapping_add(o.sum);
        self.valid += o.valid;
        self.rows += o.rows;
    }
}

/// The final value of one metric of one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregate {
    /// A sum (nulls count as 0).
    Sum(i64),
    /// A mean.
    Mean(f64),
}

/// Which metrics one kind aggregates and where their columns are in the plan.
#[derive(Debug, Clone)]
pub struct KindSpec {
    /// Emitted metrics, in output order.
    pub metrics: Vec<StatMetric>,
    /// Plan column of each metric.
    pub col: Vec<usize>,
    /// Plan column of `lbtot`, when a metric needs it.
    pub lbtot: Option<usize>,
}

impl KindSpec {
    /// Builds the spec of a kind and the plan columns it needs.
    pub fn new(metrics: &[StatMetric]) -> (KindSpec, Vec<&'static str>) {
        let mut cols: Vec<&'static str> = Vec::new();
        let index = |name: &'static str, cols: &mut Vec<&'static str>| {
            if let Some(p) = cols.iter().position(|c| *c == name) {
                p
            } else {
                cols.push(name);
                cols.len() - 1
            }
        };
        let col = metrics.iter().map(|m| index(m.name, &mut cols)).collect();
        let lbtot = metrics
            .iter()
            .any(|m| m.aggregation == Aggregation::MeanWhereLbtot)
            .then(|| index("lbtot", &mut cols));
        (
            KindSpec {
                metrics: metrics.to_vec(),
                col,
                lbtot,
            },
            cols,
        )
    }
}

/// Accumulators of one kind, grouped by name (`px` or `px\0sv`).
#[derive(Debug, Clone, Default)]
pub struct KindAgg {
    index: FxMap<Box<str>, u32>,
    /// Group keys, by group id.
    pub keys: Vec<Box<str>>,
    /// `keys.len() × metrics` accumulators, row-major.
    pub accs: Vec<Acc>,
    /// Per metric: its column was in at least one file's header.
    pub present: Vec<bool>,
    width: usize,
    key_buf: String,
}

impl KindAgg {
    /// Empty accumulators for `width` metrics.
    pub fn new(width: usize) -> Self {
        KindAgg {
            present: vec![false; width],
            width,
            ..Default::default()
        }
    }

    fn group(&mut self, key: &str) -> usize {
        if let Some(&g) = self.index.get(key) {
            return g as usize;
        }
        let g = self.keys.len();
        self.keys.push(key.into());
        self.index.insert(key.into(), g as u32);
        self.accs
            .resize(self.accs.len() + self.width, Acc::default());
        g
    }

    /// Adds one batch (the kernel): group ids per row, then one pass per
    /// metric column.
    pub fn add(
        &mut self,
        spec: &KindSpec,
        batch: &StatBatch,
        two_level: bool,
        gids: &mut Vec<usize>,
    ) {
        gids.clear();
        for r in 0..batch.len() {
            let mut buf = std::mem::take(&mut self.key_buf);
            buf.clear();
            buf.push_str(batch.pxname.value(r));
            if two_level {
                buf.push('\0');
                buf.push_str(batch.svname.value(r));
            }
            gids.push(self.group(&buf));
            self.key_buf = buf;
        }
        let lbtot = spec
            .lbtot
            .and_then(|c| batch.columns.get(c))
            .and_then(|c| c.as_ref());
        let w = self.width;
        for (m, metric) in spec.metrics.iter().enumerate() {
            let Some(Some(arr)) = spec.col.get(m).and_then(|&c| batch.columns.get(c)) else {
                continue;
            };
            if let Some(p) = self.present.get_mut(m) {
                *p = true;
            }
            let values = arr.values();
            for (r, &g) in gids.iter().enumerate() {
                if metric.aggregation == Aggregation::MeanWhereLbtot {
                    let busy = lbtot.is_some_and(|l| l.is_valid(r) && l.value(r) > 0);
                    if !busy {
                        continue;
                    }
                }
                let Some(acc) = self.accs.get_mut(g * w + m) else {
                    continue;
                };
                acc.rows += 1;
                if arr.is_valid(r)
                    && let Some(&v) = values.get(r)
                {
                    acc.sum = acc.sum.wrapping_add(v);
                    acc.valid += 1;
                }
            }
        }
    }

    /// Adds another set of accumulators of the same kind and spec.
    pub fn merge(&mut self, other: KindAgg) {
        for (p, o) in self.present.iter_mut().zip(&other.present) {
            *p |= *o;
        }
        let w = self.width;
        for (og, key) in other.keys.iter().enumerate() {
            let g = self.group(key);
            for m in 0..w {
                if let (Some(src), Some(dst)) = (
                    other.accs.get(og * w + m).copied(),
                    self.accs.get_mut(g * w + m),
                ) {
                    dst.merge(&src);
                }
            }
        }
    }

    /// Adds accumulators (same metrics) to the group `key`.
    pub fn push_group(&mut self, key: &str, accs: &[Acc]) {
        let g = self.group(key);
        let w = self.width;
        for (m, src) in accs.iter().enumerate().take(w) {
            if let Some(dst) = self.accs.get_mut(g * w + m) {
                dst.merge(src);
            }
        }
    }

    /// Group ids sorted by key (the order pandas' groupby emits).
    pub fn sorted_groups(&self) -> Vec<usize> {
        let mut ids: Vec<usize> = (0..self.keys.len()).collect();
        ids.sort_unstable_by(|&a, &b| self.keys.get(a).cmp(&self.keys.get(b)));
        ids
    }

    /// The accumulators of one group.
    pub fn group_accs(&self, g: usize) -> &[Acc] {
        self.accs
            .get(g * self.width..(g + 1) * self.width)
            .unwrap_or(&[])
    }
}

/// Turns an accumulator into the value to emit, or `None` (a mean over
/// nothing, or a column no file had).
pub fn finish(
    metric: &StatMetric,
    acc: &Acc,
    present: bool,
    mean_nulls_as_zero: bool,
) -> Option<Aggregate> {
    if !present {
        return None;
    }
    match metric.aggregation {
        Aggregation::Sum => Some(Aggregate::Sum(acc.sum)),
        Aggregation::Mean | Aggregation::MeanWhereLbtot => {
            let n = if mean_nulls_as_zero {
                acc.rows
            } else {
                acc.valid
            };
            (n > 0).then(|| Aggregate::Mean(acc.sum as f64 / f64::from(n)))
        }
    }
}

/// Per-kind specs and the column plan they need.
#[derive(Debug, Clone)]
pub struct Specs {
    /// Per kind (index = `RowKind as usize`).
    pub kinds: [KindSpec; 3],
    /// The columns the parser extracts.
    pub plan: ColumnPlan,
}

impl Specs {
    /// Builds specs from the emitted metric lists.
    pub fn new(fe: &[StatMetric], be: &[StatMetric], srv: &[StatMetric]) -> Specs {
        let (f, fc) = KindSpec::new(fe);
        let (b, bc) = KindSpec::new(be);
        let (s, sc) = KindSpec::new(srv);
        Specs {
            kinds: [f, b, s],
            plan: ColumnPlan {
                columns: [fc, bc, sc],
            },
        }
    }
}

/// Accumulators of all three kinds.
#[derive(Debug, Clone)]
pub struct SiteAgg {
    /// Per kind (index = `RowKind as usize`).
    pub kinds: [KindAgg; 3],
    gids: Vec<usize>,
}

impl SiteAgg {
    /// Empty accumulators for `specs`.
    pub fn new(specs: &Specs) -> Self {
        SiteAgg {
            kinds: std::array::from_fn(|k| {
                KindAgg::new(specs.kinds.get(k).map_or(0, |s| s.metrics.len()))
            }),
            gids: Vec::new(),
        }
    }

    /// Adds one batch to the accumulators of its kind.
    pub fn add(&mut self, specs: &Specs, batch: &StatBatch) {
        let k = batch.kind as usize;
        if let (Some(agg), Some(spec)) = (self.kinds.get_mut(k), specs.kinds.get(k)) {
            agg.add(spec, batch, batch.kind == RowKind::Server, &mut self.gids);
        }
    }

    /// Merges another thread's accumulators.
    pub fn merge(&mut self, other: SiteAgg) {
        for (a, b) in self.kinds.iter_mut().zip(other.kinds) {
            a.merge(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::ProxyKind;
    use std::path::Path;

    #[test]
    fn sums_means_and_busy_means() {
        let srv = ProxyKind::Server.all_metrics();
        let specs = Specs::new(&[], &[], srv);
        let text = b"# pxname,svname,type,lbtot,bin,weight,qtime,throttle\n\
b,s,2,0,1,,100,\nb,s,2,2,2,4,10,\nb,s,2,3,,2,20,\nb,t,2,0,,,5,\n";
        let mut agg = SiteAgg::new(&specs);
        let mut w = Vec::new();
        super::super::parse_stat::parse_stat(text, Path::new("x"), &specs.plan, 2, &mut w, |b| {
            agg.add(&specs, &b)
        });
        assert!(w.is_empty());
        let k = &agg.kinds[2];
        let spec = &specs.kinds[2];
        let get = |g: usize, name: &str, z: bool| {
            let m = spec.metrics.iter().position(|m| m.name == name).unwrap();
            finish(&spec.metrics[m], &k.group_accs(g)[m], k.present[m], z)
        };
        let order = k.sorted_groups();
        assert_eq!(&*k.keys[order[0]], "b\0s");
        let s = order[0];
        let t = order[1];
        assert_eq!(get(s, "bin", false), Some(Aggregate::Sum(3)));
        assert_eq!(get(s, "lbtot", false), Some(Aggregate::Sum(5)));
        assert_eq!(get(s, "weight", false), Some(Aggregate::Mean(3.0)));
        assert_eq!(get(s, "weight", true), Some(Aggregate::Mean(2.0)));
        assert_eq!(get(s, "qtime", false), Some(Aggregate::Mean(15.0)));
        assert_eq!(get(s, "throttle", false), None);
        assert_eq!(get(s, "throttle", true), Some(Aggregate::Mean(0.0)));
        assert_eq!(get(t, "bin", false), Some(Aggregate::Sum(0)));
        assert_eq!(get(t, "qtime", false), None, "no busy row");
        assert_eq!(get(s, "ctime", false), None, "no such column");
    }
}
