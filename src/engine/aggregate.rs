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
///
/// A row counts when its file's header has the metric's column (and, for
/// [`Aggregation::MeanWhereLbtot`], when its `lbtot` is > 0); an empty cell
/// counts as 0, as the original's `fillna(0)` (SPEC §4.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acc {
    /// Sum of the values of the rows counted (empty = 0).
    pub sum: i64,
    /// Rows counted.
    pub rows: u32,
}

impl Acc {
    fn merge(&mut self, o: &Acc) {
        self.sum = self.sum.wrapping_add(o.sum);
        self.rows = self.rows.wrapping_add(o.rows);
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
    width: usize,
    key_buf: String,
}

impl KindAgg {
    /// Empty accumulators for `width` metrics.
    pub fn new(width: usize) -> Self {
        KindAgg {
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
            // A column the file's header lacks: its rows do not count.
            let Some(Some(arr)) = spec.col.get(m).and_then(|&c| batch.columns.get(c)) else {
                continue;
            };
            let values = arr.values();
            for (r, &g) in gids.iter().enumerate() {
                // An empty (or absent) lbtot is 0: the row is not busy.
                if metric.aggregation == Aggregation::MeanWhereLbtot
                    && !lbtot.is_some_and(|l| l.is_valid(r) && l.value(r) > 0)
                {
                    continue;
                }
                let Some(acc) = self.accs.get_mut(g * w + m) else {
                    continue;
                };
                acc.rows = acc.rows.wrapping_add(1);
                if arr.is_valid(r)
                    && let Some(&v) = values.get(r)
                {
                    acc.sum = acc.sum.wrapping_add(v);
                }
            }
        }
    }

    /// Adds another set of accumulators of the same kind and spec.
    pub fn merge(&mut self, other: KindAgg) {
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

/// Turns an accumulator into the value to emit, or `None` when no row
/// counted (a mean over zero rows, or a column no file of the group had).
pub fn finish(metric: &StatMetric, acc: &Acc) -> Option<Aggregate> {
    if acc.rows == 0 {
        return None;
    }
    Some(match metric.aggregation {
        Aggregation::Sum => Aggregate::Sum(acc.sum),
        Aggregation::Mean | Aggregation::MeanWhereLbtot => {
            Aggregate::Mean(acc.sum as f64 / f64::from(acc.rows))
        }
    })
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
    use crate::engine::WarningKind;
    use std::path::Path;

    /// Parses `files` (one `show stat` text each) into server accumulators
    /// and returns a lookup `(group, metric) → value`.
    fn servers(files: &[&[u8]]) -> impl Fn(&str, &str) -> Option<Aggregate> {
        let specs = Specs::new(&[], &[], ProxyKind::Server.all_metrics());
        let mut agg = SiteAgg::new(&specs);
        for text in files {
            let mut w = Vec::new();
            super::super::parse_stat::parse_stat(
                text,
                Path::new("x"),
                &specs.plan,
                2,
                &mut w,
                |b| agg.add(&specs, &b),
            );
            let unexpected = w.iter().filter(|w| w.kind != WarningKind::RepeatedHeader);
            assert_eq!(unexpected.count(), 0, "{w:?}");
        }
        let k = agg.kinds[2].clone();
        let spec = specs.kinds[2].clone();
        move |group: &str, name: &str| {
            let g = k.keys.iter().position(|key| &**key == group).unwrap();
            let m = spec.metrics.iter().position(|m| m.name == name).unwrap();
            finish(&spec.metrics[m], &k.group_accs(g)[m])
        }
    }

    #[test]
    fn sums_and_means_count_empty_cells_as_zero() {
        let get = servers(&[b"# pxname,svname,type,lbtot,bin,weight,qtime,throttle\n\
b,s,2,0,1,,100,\nb,s,2,2,2,4,10,\nb,s,2,3,,2,20,\nb,t,2,0,,,5,\n"]);
        assert_eq!(get("b\0s", "bin"), Some(Aggregate::Sum(3)));
        assert_eq!(get("b\0s", "lbtot"), Some(Aggregate::Sum(5)));
        assert_eq!(get("b\0t", "bin"), Some(Aggregate::Sum(0)));
        // Mean over every row of the group, the empty cell counting as 0.
        assert_eq!(get("b\0s", "weight"), Some(Aggregate::Mean(2.0)));
        // Every cell empty: a mean of zeros, still emitted.
        assert_eq!(get("b\0s", "throttle"), Some(Aggregate::Mean(0.0)));
        assert_eq!(get("b\0t", "weight"), Some(Aggregate::Mean(0.0)));
    }

    #[test]
    fn time_means_are_over_busy_rows_only() {
        let get = servers(&[b"# pxname,svname,type,lbtot,qtime,ctime\n\
b,s,2,0,100,1\nb,s,2,2,10,\nb,s,2,3,20,3\nb,s,2,,40,4\nb,t,2,0,5,5\nb,u,2,,5,5\n"]);
        // Rows with lbtot 0 or empty are left out; an empty time cell in a
        // busy row counts as 0.
        assert_eq!(get("b\0s", "qtime"), Some(Aggregate::Mean(15.0)));
        assert_eq!(get("b\0s", "ctime"), Some(Aggregate::Mean(1.5)));
        // No busy row (lbtot 0, or empty): a mean over zero rows, not emitted.
        assert_eq!(get("b\0t", "qtime"), None);
        assert_eq!(get("b\0u", "ctime"), None);
    }

    #[test]
    fn columns_absent_from_a_header_are_not_emitted_for_its_rows() {
        let get = servers(&[
            b"# pxname,svname,type,lbtot,weight,bin,qtime\nb,s,2,1,4,10,6\nb,old,2,1,9,1,2\n",
            b"# pxname,svname,type,lbtot,bin\nb,s,2,1,20\nb,new,2,1,5\n",
        ]);
        // `s` is in both files: the rows of the file without the column do
        // not count (no 0 dragging the mean down).
        assert_eq!(get("b\0s", "weight"), Some(Aggregate::Mean(4.0)));
        assert_eq!(get("b\0s", "qtime"), Some(Aggregate::Mean(6.0)));
        assert_eq!(get("b\0s", "bin"), Some(Aggregate::Sum(30)));
        // `new` only appears in the file without the columns.
        assert_eq!(get("b\0new", "weight"), None);
        assert_eq!(get("b\0new", "qtime"), None);
        assert_eq!(get("b\0new", "bin"), Some(Aggregate::Sum(5)));
        // No file has the column: not emitted at all.
        assert_eq!(get("b\0s", "ctime"), None);
        assert_eq!(get("b\0old", "throttle"), None);
    }

    #[test]
    fn header_change_inside_a_file_splits_the_rows() {
        // A second header without `weight`: the rows after it do not count
        // for `weight`, even within one batch.
        let get = servers(&[b"# pxname,svname,type,weight\nb,s,2,4\n\
# pxname,svname,type\nb,s,2\n"]);
        assert_eq!(get("b\0s", "weight"), Some(Aggregate::Mean(4.0)));
    }
}
