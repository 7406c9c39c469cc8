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

/// Running totals of one metric in one group ([`KindAgg::acc`]).
///
/// A row counts when its file's header has the metric's column (and, for
/// [`Aggregation::MeanWhereLbtot`], when its `lbtot` is > 0); an empty cell
/// counts as 0, as the original's `fillna(0)` (SPEC §4.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acc {
    /// Sum of the values of the rows counted (empty = 0), exact: HAProxy's
    /// counters are unsigned 64-bit, and a sum of them needs more.
    pub sum: i128,
    /// Rows counted.
    pub rows: u32,
    /// The sum did not fit in 128 bits (never with real counters): `sum`
    /// is meaningless and nothing is sent.
    pub overflow: bool,
}

/// [`KindAgg::columns`]: a group's accumulators, column by column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupColumns {
    /// Rows per group.
    pub rows: Vec<i64>,
    /// Busy rows per group.
    pub busy: Vec<i64>,
    /// Per metric, per group: the low 64 bits of the sum.
    pub sums: Vec<Vec<i64>>,
    /// Per metric, per group: wraps (empty when all zero).
    pub wraps: Vec<Vec<i64>>,
    /// Per metric, per group: absent rows (empty when all zero).
    pub absent: Vec<Vec<i64>>,
    /// Per metric, per group: 1 when overflowed (empty when all zero).
    pub overflowed: Vec<Vec<i64>>,
}

/// The final value of one metric of one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregate {
    /// A sum (nulls count as 0).
    Sum(i128),
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
    /// `keys.len() × metrics` sums, row-major: a group's are contiguous.
    /// The low 64 bits of each sum: 8 bytes per metric keep the kernel's
    /// memory small; the wraps of a sum are counted in `carry`.
    sums: Vec<i64>,
    /// (group, metric) → how many times its sum wrapped past `i64::MAX`
    /// (negative: past `i64::MIN`). Empty unless sums exceed 2^63, so the
    /// exact sum is `sums + carry · 2^64` at no cost per row.
    carry: FxMap<(u32, u32), i64>,
    /// (group, metric) whose carry itself overflowed (more than 2^63 wraps,
    /// which real counters cannot reach): not sent, and warned about.
    overflowed: Vec<(u32, u32)>,
    /// Per group: its rows.
    rows: Vec<u32>,
    /// Per group: its rows with `lbtot` > 0.
    busy: Vec<u32>,
    /// (group, metric) → rows of the group that do not count for the metric
    /// because their file's header lacks its column (busy rows only, for a
    /// busy-only metric). Empty when every header has every column, as when
    /// all processes run one HAProxy version: row counts are then per
    /// group, not per metric, which halves the accumulators' memory.
    absent: FxMap<(u32, u32), u32>,
    /// Per metric: only rows with `lbtot` > 0 count.
    busy_only: Vec<bool>,
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
    /// Empty accumulators for the metrics of `spec`.
    pub fn new(spec: &KindSpec) -> Self {
        KindAgg {
            width: spec.metrics.len(),
            busy_only: spec
                .metrics
                .iter()
                .map(|m| m.aggregation == Aggregation::MeanWhereLbtot)
                .collect(),
            last: NO_GROUP,
            ..Default::default()
        }
    }

    /// The group of `key`, made (empty) when new.
    pub(super) fn group(&mut self, key: &str) -> usize {
        if let Some(&g) = self.index.get(key) {
            return g as usize;
        }
        let g = self.keys.len();
        let key: Arc<str> = key.into();
        self.keys.push(Arc::clone(&key));
        self.index.insert(key, g as u32);
        self.sums.resize(self.sums.len() + self.width, 0);
        self.rows.push(0);
        self.busy.push(0);
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

    /// Adds one batch (the kernel): row by row, each row's values into its
    /// group's sums, which are contiguous; the rows of a batch are nearly
    /// always consecutive groups, so the sums are walked in order, once.
    pub fn add(&mut self, spec: &KindSpec, batch: &StatBatch) {
        let gids = batch.group.values();
        let lbtot = spec
            .lbtot
            .and_then(|c| batch.columns.get(c))
            .and_then(|c| c.as_ref())
            .map(|l| l.values());
        // The metrics whose column the batch's header has (index, values,
        // busy only), and those whose column it lacks.
        let mut present: Vec<(usize, &[i64], bool)> = Vec::with_capacity(self.width);
        let mut lacking: Vec<usize> = Vec::new();
        for m in 0..spec.metrics.len() {
            let busy_only = self.busy_only.get(m).copied().unwrap_or(false);
            match spec.col.get(m).and_then(|&c| batch.columns.get(c)) {
                Some(Some(arr)) => present.push((m, arr.values(), busy_only)),
                _ => lacking.push(m),
            }
        }
        let w = self.width;
        for (r, &g) in gids.iter().enumerate() {
            let gi = g as usize;
            // An empty or absent lbtot is 0: the row is not busy.
            let busy = lbtot.and_then(|l| l.get(r)).is_some_and(|&l| l > 0);
            if let (Some(rows), Some(busy_rows)) = (self.rows.get_mut(gi), self.busy.get_mut(gi)) {
                *rows = rows.wrapping_add(1);
                *busy_rows = busy_rows.wrapping_add(u32::from(busy));
            }
            let Some(sums) = self.sums.get_mut(gi * w..(gi + 1) * w) else {
                continue;
            };
            // Wraps are only flagged here and found after the row: a
            // branch per value would cost the kernel about a tenth.
            let mut wrapped = false;
            for &(m, values, busy_only) in &present {
                if busy_only && !busy {
                    continue;
                }
                if let (Some(sum), Some(&v)) = (sums.get_mut(m), values.get(r)) {
                    let (s, o) = sum.overflowing_add(v);
                    *sum = s;
                    wrapped |= o;
                }
            }
            if wrapped {
                spill_row(
                    &mut self.carry,
                    &mut self.overflowed,
                    sums,
                    &present,
                    r,
                    g,
                    busy,
                );
            }
            for &m in &lacking {
                if busy || !self.busy_only.get(m).copied().unwrap_or(false) {
                    let n = self.absent.entry((g, m as u32)).or_insert(0);
                    *n = n.wrapping_add(1);
                }
            }
        }
        if !batch.wide.is_empty() {
            self.add_wide_cells(spec, batch, lbtot.map(|l| &l[..]));
        }
    }

    /// Adds what the cells above `i64::MAX` of a batch hold beyond the
    /// `i64::MAX` their column has (an `lbtot` that large is busy already).
    #[cold]
    fn add_wide_cells(&mut self, spec: &KindSpec, batch: &StatBatch, lbtot: Option<&[i64]>) {
        let gids = batch.group.values();
        for cell in &batch.wide {
            let r = cell.row as usize;
            let Some(&g) = gids.get(r) else { continue };
            let busy = lbtot.and_then(|l| l.get(r)).is_some_and(|&l| l > 0);
            for (m, &c) in spec.col.iter().enumerate() {
                let busy_only = self.busy_only.get(m).copied().unwrap_or(false);
                if c != cell.col as usize || (busy_only && !busy) {
                    continue;
                }
                if let Some(sum) = self.sums.get_mut(g as usize * self.width + m) {
                    let wraps = add_wide(sum, i128::from(cell.rest));
                    if wraps != 0 {
                        spill(&mut self.carry, &mut self.overflowed, g, m, wraps);
                    }
                }
            }
        }
    }

    /// Adds another set of accumulators of the same kind and spec.
    pub fn merge(&mut self, other: &KindAgg) {
        self.merge_mapped(other, |key| key);
    }

    /// Adds the accumulators of `other` (same metrics), each group of it to
    /// the group `key_of(its key)` here (several may go to one).
    pub fn merge_mapped<'k>(&mut self, other: &'k KindAgg, key_of: impl Fn(&'k str) -> &'k str) {
        let w = self.width;
        let mut to = Vec::with_capacity(other.keys.len());
        // Both sides met the groups in about the same order: try the group
        // after the previous one before hashing.
        let mut guess = 0usize;
        for (og, key) in other.keys.iter().enumerate() {
            let key = key_of(key);
            let g = match self.keys.get(guess) {
                Some(k) if &**k == key => guess,
                _ => self.group(key),
            };
            guess = g + 1;
            to.push(g as u32);
            if let (Some(dst), Some(src)) = (
                self.sums.get_mut(g * w..(g + 1) * w),
                other.sums.get(og * w..(og + 1) * w),
            ) {
                for (m, (d, s)) in dst.iter_mut().zip(src).enumerate() {
                    let (sum, wrapped) = d.overflowing_add(*s);
                    *d = sum;
                    if wrapped {
                        let wraps = if *s < 0 { -1 } else { 1 };
                        spill(&mut self.carry, &mut self.overflowed, g as u32, m, wraps);
                    }
                }
            }
            for (mine, theirs) in [(&mut self.rows, &other.rows), (&mut self.busy, &other.busy)] {
                if let (Some(d), Some(s)) = (mine.get_mut(g), theirs.get(og)) {
                    *d = d.wrapping_add(*s);
                }
            }
        }
        for (&(og, m), &n) in &other.absent {
            if let Some(&g) = to.get(og as usize) {
                let d = self.absent.entry((g, m)).or_insert(0);
                *d = d.wrapping_add(n);
            }
        }
        for (&(og, m), &wraps) in &other.carry {
            if let Some(&g) = to.get(og as usize) {
                spill(&mut self.carry, &mut self.overflowed, g, m as usize, wraps);
            }
        }
        for &(og, m) in &other.overflowed {
            if let Some(&g) = to.get(og as usize)
                && !self.overflowed.contains(&(g, m))
            {
                self.overflowed.push((g, m));
            }
        }
    }

    /// Adds, for each row `r`, `rows[r]` and `busy[r]` to group
    /// `groups[r]`: a partial's counts, a column at a time.
    pub(super) fn add_counts(&mut self, groups: &[u32], rows: &[u32], busy: &[u32]) {
        for ((&g, &r), &b) in groups.iter().zip(rows).zip(busy) {
            if let (Some(rows), Some(busy)) =
                (self.rows.get_mut(g as usize), self.busy.get_mut(g as usize))
            {
                *rows = rows.wrapping_add(r);
                *busy = busy.wrapping_add(b);
            }
        }
    }

    /// Adds, for each row `r`, `values[r]` to the sum of metric `m` of group
    /// `groups[r]`, exactly (wraps spill into the carry, as in
    /// the kernel): a partial's sums, a column at a time.
    pub(super) fn add_metric_column(
        &mut self,
        m: usize,
        groups: &[u32],
        values: impl IntoIterator<Item = i64>,
    ) {
        let w = self.width;
        if m >= w {
            return;
        }
        for (&g, v) in groups.iter().zip(values) {
            if let Some(d) = self.sums.get_mut(g as usize * w + m) {
                let (sum, wrapped) = d.overflowing_add(v);
                *d = sum;
                if wrapped {
                    spill(
                        &mut self.carry,
                        &mut self.overflowed,
                        g,
                        m,
                        if v < 0 { -1 } else { 1 },
                    );
                }
            }
        }
    }

    /// Adds `wraps` wraps past 64 bits to the sum of metric `m` of group `g`.
    pub(super) fn add_carry(&mut self, g: u32, m: usize, wraps: i64) {
        spill(&mut self.carry, &mut self.overflowed, g, m, wraps);
    }

    /// Adds `n` rows lacking metric `m`'s column to group `g`.
    pub(super) fn add_absent(&mut self, g: u32, m: usize, n: u32) {
        let d = self.absent.entry((g, m as u32)).or_insert(0);
        *d = d.wrapping_add(n);
    }

    /// Marks the sum of metric `m` of group `g` as past 128 bits.
    pub(super) fn mark_overflowed(&mut self, g: u32, m: usize) {
        let key = (g, m as u32);
        if !self.overflowed.contains(&key) {
            self.overflowed.push(key);
        }
    }

    /// Everything this holds about `groups`, exactly, column by column
    /// (what a partial aggregate carries, SPEC §7): `rows`, `busy`, then per
    /// metric its low sums, wraps past 64 bits, rows lacking the column and
    /// overflow flags (these three empty when all zero, as they nearly
    /// always are).
    pub fn columns(&self, groups: &[usize]) -> GroupColumns {
        let w = self.width;
        let of = |v: &[u32]| {
            groups
                .iter()
                .map(|&g| i64::from(v.get(g).copied().unwrap_or(0)))
                .collect()
        };
        let sparse = |f: &dyn Fn(u32, u32) -> i64, any: bool| -> Vec<Vec<i64>> {
            (0..w)
                .map(|m| {
                    let col: Vec<i64> = if any {
                        groups.iter().map(|&g| f(g as u32, m as u32)).collect()
                    } else {
                        Vec::new()
                    };
                    if col.iter().all(|&v| v == 0) {
                        Vec::new()
                    } else {
                        col
                    }
                })
                .collect()
        };
        GroupColumns {
            rows: of(&self.rows),
            busy: of(&self.busy),
            sums: (0..w)
                .map(|m| {
                    groups
                        .iter()
                        .map(|&g| self.sums.get(g * w + m).copied().unwrap_or(0))
                        .collect()
                })
                .collect(),
            wraps: sparse(
                &|g, m| self.carry.get(&(g, m)).copied().unwrap_or(0),
                !self.carry.is_empty(),
            ),
            absent: sparse(
                &|g, m| i64::from(self.absent.get(&(g, m)).copied().unwrap_or(0)),
                !self.absent.is_empty(),
            ),
            overflowed: sparse(
                &|g, m| i64::from(self.overflowed.contains(&(g, m))),
                !self.overflowed.is_empty(),
            ),
        }
    }

    /// Metrics per group.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Group ids sorted by key (the order pandas' groupby emits).
    pub fn sorted_groups(&self) -> Vec<usize> {
        let mut ids: Vec<usize> = (0..self.keys.len()).collect();
        ids.sort_unstable_by(|&a, &b| self.keys.get(a).cmp(&self.keys.get(b)));
        ids
    }

    /// The totals of metric `m` of group `g`.
    pub fn acc(&self, g: usize, m: usize) -> Acc {
        let busy_only = self.busy_only.get(m).copied().unwrap_or(false);
        let rows = if busy_only { &self.busy } else { &self.rows };
        let lacking = if self.absent.is_empty() {
            0
        } else {
            self.absent.get(&(g as u32, m as u32)).copied().unwrap_or(0)
        };
        let low = i128::from(self.sums.get(g * self.width + m).copied().unwrap_or(0));
        let rows = rows.get(g).copied().unwrap_or(0).wrapping_sub(lacking);
        // Called once per line written: no lookup unless some sum wrapped
        // (an overflowed sum always has a carry entry too).
        if self.carry.is_empty() {
            return Acc {
                sum: low,
                rows,
                overflow: false,
            };
        }
        let key = (g as u32, m as u32);
        let wraps = self.carry.get(&key).copied().unwrap_or(0);
        let sum = (i128::from(wraps) << 64).checked_add(low);
        Acc {
            sum: sum.unwrap_or(0),
            rows,
            overflow: sum.is_none() || self.overflowed.contains(&key),
        }
    }

    /// (group, metric) pairs whose sum does not fit in 128 bits (see
    /// [`Acc::overflow`]).
    pub fn overflowed(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let carried = self.carry.keys().filter(|&&(g, m)| {
            self.acc(g as usize, m as usize).overflow && !self.overflowed.contains(&(g, m))
        });
        self.overflowed
            .iter()
            .chain(carried)
            .map(|&(g, m)| (g as usize, m as usize))
    }

    /// The totals of every metric of group `g`, in metric order.
    pub fn group_accs(&self, g: usize) -> impl Iterator<Item = Acc> + '_ {
        (0..self.width).map(move |m| self.acc(g, m))
    }
}

/// Turns an accumulator into the value to emit, or `None` when no row
/// counted (a mean over zero rows, or a column no file of the group had).
pub fn finish(metric: &StatMetric, acc: &Acc) -> Option<Aggregate> {
    if acc.rows == 0 || acc.overflow {
        return None;
    }
    Some(match metric.aggregation {
        Aggregation::Sum => Aggregate::Sum(acc.sum),
        Aggregation::Mean | Aggregation::MeanWhereLbtot => {
            Aggregate::Mean(acc.sum as f64 / f64::from(acc.rows))
        }
    })
}

/// Adds `delta` to the 64-bit `sum`, keeping its low 64 bits; returns how
/// many times 2^64 the true sum is above (below, negative) them.
fn add_wide(sum: &mut i64, delta: i128) -> i64 {
    let total = i128::from(*sum) + delta;
    *sum = total as i64;
    ((total - i128::from(*sum)) >> 64) as i64
}

/// Finds which sums of a row wrapped (each value was already added: a sum
/// wrapped when taking the value off again overflows) and records them.
#[cold]
#[inline(never)]
fn spill_row(
    carry: &mut FxMap<(u32, u32), i64>,
    overflowed: &mut Vec<(u32, u32)>,
    sums: &[i64],
    present: &[(usize, &[i64], bool)],
    r: usize,
    g: u32,
    busy: bool,
) {
    for &(m, values, busy_only) in present {
        if busy_only && !busy {
            continue;
        }
        if let (Some(&sum), Some(&v)) = (sums.get(m), values.get(r))
            && sum.overflowing_sub(v).1
        {
            spill(carry, overflowed, g, m, if v < 0 { -1 } else { 1 });
        }
    }
}

/// Records `wraps` more wraps of the sum of metric `m` of group `g`; the
/// rare path of the kernel, out of line.
#[cold]
#[inline(never)]
fn spill(
    carry: &mut FxMap<(u32, u32), i64>,
    overflowed: &mut Vec<(u32, u32)>,
    g: u32,
    m: usize,
    wraps: i64,
) {
    let key = (g, m as u32);
    let c = carry.entry(key).or_insert(0);
    match c.checked_add(wraps) {
        Some(sum) => *c = sum,
        None if !overflowed.contains(&key) => overflowed.push(key),
        None => {}
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
            kinds: specs.kinds.each_ref().map(KindAgg::new),
            specs: specs.kinds.clone(),
        }
    }

    /// The spec of kind `k` (`RowKind as usize`).
    pub fn spec(&self, k: usize) -> Option<&KindSpec> {
        self.specs.get(k)
    }

    /// Merges another thread's accumulators.
    pub fn merge(&mut self, other: SiteAgg) {
        for (a, b) in self.kinds.iter_mut().zip(&other.kinds) {
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

    /// Parses `files` (one `show stat` text each) into accumulators.
    fn parse_files(specs: &Specs, files: &[&[u8]]) -> SiteAgg {
        let mut agg = SiteAgg::new(specs);
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
        agg
    }

    /// Parses `files` (one `show stat` text each) into server accumulators
    /// and returns a lookup `(group, metric) → value`.
    fn servers(files: &[&[u8]]) -> impl Fn(&str, &str) -> Option<Aggregate> {
        let specs = Specs::new(&[], &[], ProxyKind::Server.all_metrics());
        let agg = parse_files(&specs, files);
        let k = agg.kinds[2].clone();
        let spec = specs.kinds[2].clone();
        move |group: &str, name: &str| {
            let g = k.keys.iter().position(|key| &**key == group).unwrap();
            let m = spec.metrics.iter().position(|m| m.name == name).unwrap();
            finish(&spec.metrics[m], &k.acc(g, m))
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

    /// Every (group key, metric, totals) of the server accumulators.
    fn totals(k: &KindAgg, spec: &KindSpec) -> Vec<(String, &'static str, Acc)> {
        let mut all: Vec<_> = (0..k.keys.len())
            .flat_map(|g| {
                spec.metrics
                    .iter()
                    .enumerate()
                    .map(move |(m, metric)| (k.keys[g].to_string(), metric.name, k.acc(g, m)))
            })
            .collect();
        all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        all
    }

    /// The totals of `name` in group `key` of a [`totals`] list.
    fn find(all: &[(String, &'static str, Acc)], key: &str, name: &str) -> Acc {
        all.iter()
            .find(|(k, n, _)| k == key && *n == name)
            .map(|(_, _, acc)| *acc)
            .unwrap_or_else(|| panic!("no {name} for {key:?}"))
    }

    #[test]
    fn merging_keeps_the_rows_of_headers_lacking_a_column_apart() {
        // Two HAProxy versions in one snapshot: the second lacks weight and
        // qtime (a busy-only mean), and has a server the first lacks.
        let files: [&[u8]; 2] = [
            b"# pxname,svname,type,lbtot,weight,bin,qtime\nb,s,2,1,4,10,6\nb,s,2,0,9,1,2\nb,old,2,1,9,1,2\n",
            b"# pxname,svname,type,lbtot,bin\nb,s,2,1,20\nb,s,2,0,3\nb,new,2,1,5\n",
        ];
        let specs = Specs::new(&[], &[], ProxyKind::Server.all_metrics());
        let parse = |texts: &[&[u8]]| parse_files(&specs, texts);
        let spec = &specs.kinds[2];
        let whole = totals(&parse(&files).kinds[2], spec);
        for (a, b) in [(0, 1), (1, 0)] {
            let mut merged = parse(&files[a..=a]);
            merged.merge(parse(&files[b..=b]));
            assert!(totals(&merged.kinds[2], spec) == whole, "{a} then {b}");
        }
        assert_eq!(
            find(&whole, "b\0s", "weight"),
            Acc {
                sum: 13,
                rows: 2,
                overflow: false
            }
        );
        assert_eq!(
            find(&whole, "b\0s", "qtime"),
            Acc {
                sum: 6,
                rows: 1,
                overflow: false
            }
        );
        assert_eq!(
            find(&whole, "b\0s", "bin"),
            Acc {
                sum: 34,
                rows: 4,
                overflow: false
            }
        );
        assert_eq!(find(&whole, "b\0new", "weight").rows, 0);
        // Regrouped by server name, as aggr-server-metrics does.
        let mut by_name = KindAgg::new(spec);
        by_name.merge_mapped(&parse(&files).kinds[2], |k| k.split_once('\0').unwrap().1);
        let by_name = totals(&by_name, spec);
        assert_eq!(
            find(&by_name, "s", "qtime"),
            Acc {
                sum: 6,
                rows: 1,
                overflow: false
            }
        );
        assert_eq!(
            find(&by_name, "new", "bin"),
            Acc {
                sum: 5,
                rows: 1,
                overflow: false
            }
        );
        assert_eq!(
            find(&by_name, "old", "weight"),
            Acc {
                sum: 9,
                rows: 1,
                overflow: false
            }
        );
    }

    #[test]
    fn sums_carry_past_64_bits_in_the_kernel_and_in_merges() {
        let (max, umax) = (i64::MAX, u64::MAX);
        let file = format!(
            "# pxname,svname,type,lbtot,bin,qtime\n\
             b,s,2,1,{max},{umax}\nb,s,2,{umax},{umax},{umax}\nb,s,2,1,-5,1\nb,s,2,0,{umax},{umax}\n"
        );
        let files = [file.as_bytes(), file.as_bytes()];
        let specs = Specs::new(&[], &[], ProxyKind::Server.all_metrics());
        let spec = &specs.kinds[2];
        let whole = totals(&parse_files(&specs, &files).kinds[2], spec);
        let mut merged = parse_files(&specs, &files[..1]);
        merged.merge(parse_files(&specs, &files[1..]));
        assert!(totals(&merged.kinds[2], spec) == whole);
        let one_file = i128::from(max) + 2 * i128::from(umax) - 5;
        let bin = find(&whole, "b\0s", "bin");
        assert_eq!((bin.sum, bin.rows, bin.overflow), (2 * one_file, 8, false));
        // The row with lbtot 0 is not busy; the one with lbtot above
        // i64::MAX is.
        let qtime = find(&whole, "b\0s", "qtime");
        assert_eq!(qtime.sum, 2 * (2 * i128::from(umax) + 1));
        assert_eq!(qtime.rows, 6);
        let lbtot = find(&whole, "b\0s", "lbtot");
        assert_eq!(lbtot.sum, 2 * (i128::from(umax) + 2));
    }

    #[test]
    fn a_sum_beyond_128_bits_is_flagged_not_sent() {
        let specs = Specs::new(&[], &[], ProxyKind::Server.all_metrics());
        let spec = &specs.kinds[2];
        let m = spec.metrics.iter().position(|m| m.name == "bin").unwrap();
        let file = format!("# pxname,svname,type,bin\nb,s,2,{}\n", i64::MAX);
        let mut agg = parse_files(&specs, &[file.as_bytes()]);
        // As if the sum had wrapped 2^63 - 1 times already.
        agg.kinds[2].carry.insert((0, m as u32), i64::MAX);
        agg.merge(parse_files(&specs, &[file.as_bytes()]));
        let k = &agg.kinds[2];
        assert!(k.acc(0, m).overflow);
        assert_eq!(finish(&spec.metrics[m], &k.acc(0, m)), None);
        assert_eq!(k.overflowed().collect::<Vec<_>>(), vec![(0, m)]);
        let other = spec.metrics.iter().position(|m| m.name == "bout").unwrap();
        assert!(!k.acc(0, other).overflow);
    }

    #[test]
    fn raw_names_that_sanitise_alike_share_a_group() {
        let mut k = KindAgg::new(&KindSpec::new(&[]).0);
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
        let mut k = KindAgg::new(&KindSpec::new(&[]).0);
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
