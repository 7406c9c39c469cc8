//! One column of a `show stat` segment, filled cell by cell as the rows are
//! read and typed as it goes (the types are in the module documentation of
//! [`crate::raw`]): a column holds numbers until a cell says otherwise, then
//! text. Numbers are kept as numbers, not as text, because a canonical
//! integer written back is the very text it was read from: a column that
//! turns to text mid-way rebuilds its earlier cells exactly.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{ArrayRef, Int64Array, StringDictionaryBuilder, UInt64Array};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Int32Type};

use super::TEXT_COLUMNS;

/// How a column is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColumnKind {
    Text,
    Int64,
    UInt64,
}

impl ColumnKind {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnKind::Text => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::UInt64 => DataType::UInt64,
        }
    }
}

/// A canonical integer (see [`canonical`]): its 64 bits (two's complement
/// when negative) and whether it is negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Int {
    bits: u64,
    negative: bool,
}

/// The value of a cell written as HAProxy writes integers (`0`, or an
/// optional `-` and digits without a leading zero), if it is one and fits
/// in `i64` or `u64`.
fn canonical(cell: &[u8]) -> Option<Int> {
    let (negative, digits) = match cell.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, cell),
    };
    let leading_zero = digits.len() > 1 && digits.first() == Some(&b'0');
    if digits.is_empty() || digits.len() > 20 || leading_zero || (negative && digits == b"0") {
        return None;
    }
    // 19 digits always fit in a u64: only a 20th can overflow. Checked and
    // summed in one pass: this runs for every number cell of a snapshot.
    let (head, last) = digits.split_at(digits.len().min(19));
    let mut magnitude = 0u64;
    for &b in head {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        magnitude = magnitude * 10 + u64::from(d);
    }
    if let Some(&b) = last.first() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    if !negative {
        return Some(Int {
            bits: magnitude,
            negative,
        });
    }
    // -2^63 is the most negative i64: its magnitude is one above i64::MAX.
    (magnitude <= i64::MAX as u64 + 1).then(|| Int {
        bits: magnitude.wrapping_neg(),
        negative,
    })
}

/// The cells of a column while every non-empty one is a canonical integer.
pub(super) struct Ints {
    /// Per row its bits (0 for a null).
    values: Vec<u64>,
    valid: NullBufferBuilder,
    /// Some value is negative (the bits are then read as `i64`).
    negative: bool,
    /// Some value is above `i64::MAX` (the bits are then read as `u64`).
    above_i64: bool,
}

impl Ints {
    fn new() -> Self {
        Ints {
            values: Vec::new(),
            valid: NullBufferBuilder::new(0),
            negative: false,
            above_i64: false,
        }
    }

    fn push_null(&mut self) {
        self.values.push(0);
        self.valid.append_null();
    }

    /// Adds `v`; `false` (nothing added) when the column would then hold
    /// both negative values and values above `i64::MAX`, which no integer
    /// type of the format holds.
    fn push(&mut self, v: Int) -> bool {
        let above_i64 = !v.negative && v.bits > i64::MAX as u64;
        if (v.negative && self.above_i64) || (above_i64 && self.negative) {
            return false;
        }
        self.negative |= v.negative;
        self.above_i64 |= above_i64;
        self.values.push(v.bits);
        self.valid.append_non_null();
        true
    }

    /// The same cells as text, each written back as it was read.
    fn into_text(self) -> Texts {
        let mut texts = Texts::default();
        let mut digits = itoa::Buffer::new();
        for (row, &bits) in self.values.iter().enumerate() {
            let cell = match () {
                () if !self.valid.is_valid(row) => "",
                () if self.above_i64 => digits.format(bits),
                () => digits.format(bits as i64),
            };
            texts.push_str(cell);
        }
        texts
    }

    fn kind(&self) -> ColumnKind {
        if self.above_i64 {
            ColumnKind::UInt64
        } else {
            ColumnKind::Int64
        }
    }

    /// The whole column as one array of its kind.
    fn finish(mut self) -> ArrayRef {
        let nulls = self.valid.finish();
        let len = self.values.len();
        let buffer = arrow::buffer::Buffer::from_vec(self.values);
        // The same 64 bits read as the column's type: no copy.
        if self.above_i64 {
            Arc::new(UInt64Array::new(ScalarBuffer::new(buffer, 0, len), nulls))
        } else {
            Arc::new(Int64Array::new(ScalarBuffer::new(buffer, 0, len), nulls))
        }
    }
}

/// The cells of a text column, one after the other (an empty cell a null).
#[derive(Default)]
pub(super) struct Texts {
    text: String,
    /// Where each cell ends in `text`.
    ends: Vec<usize>,
}

impl Texts {
    fn push_str(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    /// Adds `cell`; `true` when it was not UTF-8 (replaced).
    fn push(&mut self, cell: &[u8]) -> bool {
        match std::str::from_utf8(cell) {
            Ok(s) => {
                self.push_str(s);
                false
            }
            Err(_) => {
                self.push_str(&String::from_utf8_lossy(cell));
                true
            }
        }
    }

    /// The text of row `row` (`""` out of range).
    fn cell(&self, row: usize) -> &str {
        let start = match row.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(row).copied().unwrap_or(start);
        self.text.get(start..end).unwrap_or_default()
    }

    /// Rows `rows` as a dictionary array with only their own texts (so a
    /// batch carries no text of other batches).
    fn dictionary(&self, rows: Range<usize>) -> ArrayRef {
        let mut b = StringDictionaryBuilder::<Int32Type>::new();
        for row in rows {
            match self.cell(row) {
                "" => b.append_null(),
                cell => b.append_value(cell),
            }
        }
        Arc::new(b.finish())
    }
}

/// One column being filled.
pub(super) enum Column {
    Ints(Ints),
    Text(Texts),
}

impl Column {
    /// An empty column of the field `name` ([`TEXT_COLUMNS`] are text
    /// whatever they hold).
    pub fn new(name: &str) -> Self {
        if TEXT_COLUMNS.contains(&name) {
            Column::Text(Texts::default())
        } else {
            Column::Ints(Ints::new())
        }
    }

    /// Adds the next row's cell; `true` when it was not UTF-8 (replaced).
    pub fn push(&mut self, cell: &[u8]) -> bool {
        if let Column::Ints(ints) = self {
            if cell.is_empty() {
                ints.push_null();
                return false;
            }
            if canonical(cell).is_some_and(|v| ints.push(v)) {
                return false;
            }
            // Not a number this column can hold: text from now on.
            let Column::Ints(ints) = std::mem::replace(self, Column::Text(Texts::default())) else {
                return false;
            };
            *self = Column::Text(ints.into_text());
        }
        match self {
            Column::Text(texts) => texts.push(cell),
            Column::Ints(_) => false,
        }
    }

    pub fn kind(&self) -> ColumnKind {
        match self {
            Column::Ints(ints) => ints.kind(),
            Column::Text(_) => ColumnKind::Text,
        }
    }

    /// The column, ready to be cut into batches.
    pub fn finish(self) -> Finished {
        match self {
            Column::Ints(ints) => Finished::Numbers(ints.finish()),
            Column::Text(texts) => Finished::Text(texts),
        }
    }

    /// The text of row `row`, as it was read (`""` for a null).
    #[cfg(test)]
    pub fn cell(&self, row: usize) -> String {
        match self {
            Column::Text(texts) => texts.cell(row).to_owned(),
            Column::Ints(ints) => match ints.values.get(row) {
                Some(_) if !ints.valid.is_valid(row) => String::new(),
                Some(&bits) if ints.above_i64 => bits.to_string(),
                Some(&bits) => (bits as i64).to_string(),
                None => String::new(),
            },
        }
    }
}

/// A whole column, from which batches take their rows.
pub(super) enum Finished {
    /// One array for all rows: a batch takes a slice (no copy).
    Numbers(ArrayRef),
    /// Each batch gets a dictionary of its own rows' texts.
    Text(Texts),
}

impl Finished {
    /// Rows `rows` as an array.
    pub fn rows(&self, rows: Range<usize>) -> ArrayRef {
        match self {
            Finished::Numbers(array) => array.slice(rows.start, rows.len()),
            Finished::Text(texts) => texts.dictionary(rows),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    /// [`canonical`] as one number.
    fn canonical_int(cell: &str) -> Option<i128> {
        let v = canonical(cell.as_bytes())?;
        Some(if v.negative {
            i128::from(v.bits as i64)
        } else {
            i128::from(v.bits)
        })
    }

    #[test]
    fn canonical_integers_only() {
        assert_eq!(canonical_int("0"), Some(0));
        assert_eq!(canonical_int("-1"), Some(-1));
        assert_eq!(canonical_int("123"), Some(123));
        assert_eq!(
            canonical_int("18446744073709551615"),
            Some(i128::from(u64::MAX))
        );
        assert_eq!(
            canonical_int("-9223372036854775808"),
            Some(i128::from(i64::MIN))
        );
        for text in [
            "",
            "-",
            "-0",
            "007",
            "+5",
            " 5",
            "5 ",
            "1_000",
            "1.5",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901",
        ] {
            assert_eq!(canonical_int(text), None, "{text:?}");
        }
    }

    fn column(name: &str, cells: &[&str]) -> Column {
        let mut c = Column::new(name);
        for cell in cells {
            c.push(cell.as_bytes());
        }
        c
    }

    /// The cells of a dictionary array of rows `rows`.
    fn texts(c: Column, rows: Range<usize>) -> Vec<Option<String>> {
        let array = c.finish().rows(rows);
        let cells = super::super::cells::ColumnCells::of(array.as_ref()).unwrap();
        (0..array.len())
            .map(|row| cells.text(row).map(str::to_owned))
            .collect()
    }

    #[test]
    fn numbers_widen_then_turn_to_text() {
        let signed = ["5", "", "-9223372036854775808", "9223372036854775807"];
        let c = column("bin", &signed);
        assert_eq!(c.kind(), ColumnKind::Int64);
        let array = c.finish().rows(0..4);
        let want = Int64Array::from(vec![Some(5), None, Some(i64::MIN), Some(i64::MAX)]);
        assert_eq!(array.as_ref(), &want as &dyn Array);

        let unsigned = ["5", "", "18446744073709551615", "0"];
        let c = column("bin", &unsigned);
        assert_eq!(c.kind(), ColumnKind::UInt64);
        let array = c.finish().rows(1..4);
        let want = UInt64Array::from(vec![None, Some(u64::MAX), Some(0)]);
        assert_eq!(array.as_ref(), &want as &dyn Array);

        // Int64, then UInt64, then text: every cell as it was read.
        let mixed = ["7", "", "9223372036854775808", "0", "x", "-3", ""];
        let want: Vec<Option<String>> = mixed
            .iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect();
        let kinds = [ColumnKind::Int64, ColumnKind::UInt64, ColumnKind::Text];
        for (len, kind) in [2, 4, 7].into_iter().zip(kinds) {
            assert_eq!(column("bin", &mixed[..len]).kind(), kind, "{len}");
        }
        assert_eq!(texts(column("bin", &mixed), 0..7), want);
        assert_eq!(texts(column("bin", &mixed), 2..5), want[2..5]);
        // Negatives, then a value above i64::MAX: text too.
        let c = column("bin", &["-7", "", "9223372036854775808"]);
        assert_eq!(c.kind(), ColumnKind::Text);
        assert_eq!(
            texts(c, 0..3),
            [
                Some("-7".to_owned()),
                None,
                Some("9223372036854775808".to_owned())
            ]
        );
        // Named text columns stay text; a batch's dictionary holds its rows.
        let c = column("pxname", &["1", "2", "", "3"]);
        assert_eq!(c.kind(), ColumnKind::Text);
        let array = c.finish().rows(1..3);
        let dict = arrow::array::AsArray::as_dictionary::<Int32Type>(array.as_ref());
        assert_eq!(dict.values().len(), 1);
    }
}
