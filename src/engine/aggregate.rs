//! Grouped kernels over the Arrow batches of `parse_stat`: per frontend, per
//! backend, per (backend, server) accumulators of sum and counts, which merge
//! exactly across threads and files. Group ids are assigned from the raw
//! name bytes of the CSV ([`KindAgg::group_raw`]): a name is sanitised and
//! interned once per group, not once per row.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

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

use crate::catalogue::{Aggregation, StatMetric};

use super::format::{is_clean, sanitize_bytes};
use super::parse_stat::{ColumnPlan, RowKind, StatBatch, StatSink};

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

/// Accumulators of one kind, grouped by name (`px` or `px\0sv`, sanitised).
#[derive(Debug, Clone, Default)]
pub struct KindAgg {
    /// Sanitised key → group id.
    index: FxMap<Arc<str>, u32>,
    /// Raw CSV names that are not already clean path elements (as
    /// [`KindAgg::group_raw`] encodes them) → group id. Clean names (nearly
    /// all) are looked up in `index` directly.
    raw: FxMap<Box<[u8]>, u32>,
    /// Group keys, by group id (shared with `index`).
    pub keys: Vec<Arc<str>>,
    /// `keys.len() × metrics` accumulators, row-major.
    pub accs: Vec<Acc>,
    width: usize,
    key_buf: String,
    /// Per group id: the group that followed it last time.
    next: Vec<u32>,
    /// The group of the previous row ([`NO_GROUP`] at first).
    last: u32,
}

/// No group (before the first row).
const NO_GROUP: u32 = u32::MAX;

/// `true` when `key` is the key of the clean names `px` (`/sv`): a
/// sanitised key holds no NUL but the separator, so raw names holding one
/// never match.
fn key_is(key: &str, px: &[u8], sv: &[u8], two_level: bool) -> bool {
    let key = key.as_bytes();
    if !two_level {
        return key == px;
    }
    key.len() == px.len() + 1 + sv.len()
        && key.starts_with(px)
        && key.get(px.len()) == Some(&0)
        && key.ends_with(sv)
}

/// The cell as a `&str` when it is already a valid path element.
fn clean(cell: &[u8]) -> Option<&str> {
    std::str::from_utf8(cell).ok().filter(|s| is_clean(s))
}

impl KindAgg {
    /// Empty accumulators for `width` metrics.
    pub fn new(width: usize) -> Self {
        KindAgg {
            width,
            last: NO_GROUP,
            ..Default::default()
        }
    }

    fn group(&mut self, key: &str) -> usize {
        if let Some(&g) = self.index.get(key) {
            return g as usize;
        }
        let g = self.keys.len();
        let key: Arc<str> = key.into();
        self.keys.push(Arc::clone(&key));
        self.index.insert(key, g as u32);
        self.accs
            .resize(self.accs.len() + self.width, Acc::default());
        self.next.push(NO_GROUP);
        g
    }

    /// The group of a row named `px` (`two_level`: `px`/`sv`) from raw CSV
    /// cells. The first time raw names are seen they are sanitised (SPEC §4)
    /// and interned; raw names that sanitise alike share one group.
    ///
    /// Every HAProxy process of a snapshot lists its proxies in the same
    /// order, so the group that followed the previous row's group last time
    /// is tried first (a comparison of bytes); only when it is not that one
    /// are the names hashed.
    pub fn group_raw(&mut self, px: &[u8], sv: &[u8], two_level: bool) -> u32 {
        let guess = self.next.get(self.last as usize).copied();
        if let Some(g) = guess
            && let Some(key) = self.keys.get(g as usize)
            && key_is(key, px, sv, two_level)
        {
            self.last = g;
            return g;
        }
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        let g = match (clean(px), if two_level { clean(sv) } else { Some("") }) {
            (Some(p), Some(s)) => {
                key.push_str(p);
                if two_level {
                    key.push('\0');
                    key.push_str(s);
                }
                self.group(&key) as u32
            }
            _ => {
                // Length-prefixed, so that no pair of names encodes like another.
                let mut raw = Vec::with_capacity(8 + px.len() + sv.len());
                if two_level {
                    raw.extend_from_slice(&(px.len() as u64).to_le_bytes());
                    raw.extend_from_slice(px);
                    raw.extend_from_slice(sv);
                } else {
                    raw.extend_from_slice(px);
                }
                match self.raw.get(raw.as_slice()) {
                    Some(&g) => g,
                    None => {
                        key.push_str(&sanitize_bytes(px));
                        if two_level {
                            key.push('\0');
                            key.push_str(&sanitize_bytes(sv));
                        }
                        let g = self.group(&key) as u32;
                        self.raw.insert(raw.into(), g);
                        g
                    }
                }
            }
        };
        self.key_buf = key;
        if let Some(prev) = self.next.get_mut(self.last as usize) {
            *prev = g;
        }
        self.last = g;
        g
    }

    /// Adds one batch (the kernel): row by row, each row's metrics into
    /// its group's accumulators, which are contiguous; the rows of a batch
    /// are nearly always consecutive groups, so the accumulators are
    /// walked in order, once.
    pub fn add(&mut self, spec: &KindSpec, batch: &StatBatch) {
        let gids = batch.group.values();
        let lbtot = spec
            .lbtot
            .and_then(|c| batch.columns.get(c))
            .and_then(|c| c.as_ref())
            .map(|l| l.values());
        // Per metric whose column the file's header has (the others' rows
        // do not count): its index, values and whether only busy rows count.
        let cols: Vec<(usize, &[i64], bool)> = spec
            .metrics
            .iter()
            .enumerate()
            .filter_map(|(m, metric)| {
                let arr = spec.col.get(m).and_then(|&c| batch.columns.get(c))?.as_ref()?;
                let busy_only = metric.aggregation == Aggregation::MeanWhereLbtot;
                // An absent lbtot column: no row is busy.
                (!busy_only || lbtot.is_some()).then_some((m, &arr.values()[..], busy_only))
            })
            .collect();
        let w = self.width;
        for (r, &g) in gids.iter().enumerate() {
            let g = g as usize;
            let Some(accs) = self.accs.get_mut(g * w..(g + 1) * w) else {
                continue;
            };
            // An empty lbtot is 0: the row is not busy.
            let busy = lbtot.and_then(|l| l.get(r)).is_some_and(|&l| l > 0);
            for &(m, values, busy_only) in &cols {
                if busy_only && !busy {
                    continue;
                }
                if let (Some(acc), Some(&v)) = (accs.get_mut(m), values.get(r)) {
                    acc.sum = acc.sum.wrapping_add(v);
                    acc.rows = acc.rows.wrapping_add(1);
                }
            }
        }
    }

    /// Adds another set of accumulators of the same kind and spec.
    pub fn merge(&mut self, other: KindAgg) {
        // Both sides met the groups in about the same order: try the group
        // after the previous one before hashing.
        let mut guess = 0usize;
        for (og, key) in other.keys.iter().enumerate() {
            let g = match self.keys.get(guess) {
                Some(k) if k == key => guess,
                _ => self.group(key),
            };
            guess = g + 1;
            self.merge_accs(g, other.group_accs(og));
        }
    }

    /// Adds accumulators (same metrics) to the group `key`.
    pub fn push_group(&mut self, key: &str, accs: &[Acc]) {
        let g = self.group(key);
        self.merge_accs(g, accs);
    }

    /// Adds accumulators (same metrics) to group `g`.
    fn merge_accs(&mut self, g: usize, accs: &[Acc]) {
        let w = self.width;
        if let Some(dst) = self.accs.get_mut(g * w..(g + 1) * w) {
            for (d, s) in dst.iter_mut().zip(accs) {
                d.merge(s);
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

/// Accumulators of all three kinds; the [`StatSink`] of the parser.
#[derive(Debug, Clone)]
pub struct SiteAgg {
    /// Per kind (index = `RowKind as usize`).
    pub kinds: [KindAgg; 3],
    specs: [KindSpec; 3],
}

impl SiteAgg {
    /// Empty accumulators for `specs`.
    pub fn new(specs: &Specs) -> Self {
        SiteAgg {
            kinds: std::array::from_fn(|k| {
                KindAgg::new(specs.kinds.get(k).map_or(0, |s| s.metrics.len()))
            }),
            specs: specs.kinds.clone(),
        }
    }

    /// Merges another thread's accumulators.
    pub fn merge(&mut self, other: SiteAgg) {
        for (a, b) in self.kinds.iter_mut().zip(other.kinds) {
            a.merge(b);
        }
    }
}

impl StatSink for SiteAgg {
    fn group(&mut self, kind: RowKind, px: &[u8], sv: &[u8]) -> u32 {
        let two_level = kind == RowKind::Server;
        self.kinds
            .get_mut(kind as usize)
            .map_or(0, |agg| agg.group_raw(px, sv, two_level))
    }

    fn batch(&mut self, batch: &StatBatch) {
        let k = batch.kind as usize;
        if let (Some(agg), Some(spec)) = (self.kinds.get_mut(k), self.specs.get(k)) {
            agg.add(spec, batch);
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
                &mut agg,
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
    fn raw_names_that_sanitise_alike_share_a_group() {
        let mut k = KindAgg::new(1);
        let a = k.group_raw(b"a.b", b"s", true);
        assert_eq!(k.group_raw(b"a_b", b"s", true), a);
        assert_eq!(k.group_raw(b"a b", b"s", true), a);
        // The length prefix keeps ("a\0b", "c") and ("a", "b\0c") apart
        // before sanitising; after it they are one name.
        let x = k.group_raw(b"x\0y", b"z", true);
        let y = k.group_raw(b"x", b"y\0z", true);
        assert_ne!(&*k.keys[x as usize], &*k.keys[y as usize]);
        // The order of a previous file is guessed, and a wrong guess is
        // only a guess: every sequence gives the same ids.
        let order = [
            &b"p_"[..],
            b"q",
            b"r",
            b"p_",
            b"q",
            b"r",
            b"r",
            b"q",
            b"p.",
            b"p_",
        ];
        let mut k = KindAgg::new(1);
        let ids: Vec<u32> = order.iter().map(|n| k.group_raw(n, b"", false)).collect();
        assert_eq!(ids, vec![0, 1, 2, 0, 1, 2, 2, 1, 0, 0]);
        assert_eq!(&*k.keys[0], "p_");
        assert_eq!(k.keys.len(), 3);
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
