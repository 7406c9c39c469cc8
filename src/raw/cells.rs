//! The cells of one column of a decoded record batch, whichever of the
//! three types of the format it has: written back as CSV text
//! ([`super::write_dir`]) or read as numbers by the engine's Arrow front end
//! (`engine::arrow_input`).

use arrow::array::{Array, AsArray, Int32Array, Int64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Int32Type, Int64Type, UInt64Type};

/// One column's cells.
pub enum ColumnCells<'a> {
    /// Numbers that fit 64 signed bits.
    Int64(&'a Int64Array),
    /// Counters, some above `i64::MAX`.
    UInt64(&'a UInt64Array),
    /// Text, dictionary-encoded.
    Text {
        /// Per row, the index of its text in `values`.
        keys: &'a Int32Array,
        /// The dictionary.
        values: &'a StringArray,
    },
}

impl<'a> ColumnCells<'a> {
    /// The cells of `array`; `None` when its type is not one of the format.
    pub fn of(array: &'a dyn Array) -> Option<Self> {
        match array.data_type() {
            DataType::Int64 => Some(ColumnCells::Int64(array.as_primitive_opt::<Int64Type>()?)),
            DataType::UInt64 => Some(ColumnCells::UInt64(array.as_primitive_opt::<UInt64Type>()?)),
            _ => {
                let dict = array.as_dictionary_opt::<Int32Type>()?;
                Some(ColumnCells::Text {
                    keys: dict.keys(),
                    values: dict.values().as_string_opt::<i32>()?,
                })
            }
        }
    }

    /// The text of row `row` of a text column (`None`: null, out of range,
    /// or a number column).
    pub fn text(&self, row: usize) -> Option<&'a str> {
        match self {
            ColumnCells::Text { keys, values } if keys.is_valid(row) => {
                let key = usize::try_from(keys.value(row)).ok()?;
                (key < values.len() && values.is_valid(key)).then(|| values.value(key))
            }
            _ => None,
        }
    }

    /// The text of row `row` as bytes: borrowed from the dictionary of a
    /// text column, else written into `buf` (empty for a null).
    pub fn bytes<'x>(&'x self, row: usize, buf: &'x mut Vec<u8>) -> &'x [u8] {
        if let ColumnCells::Text { .. } = self {
            return self.text(row).unwrap_or_default().as_bytes();
        }
        buf.clear();
        self.write(row, buf);
        buf
    }

    /// Appends the text of row `row` (nothing for a null).
    pub fn write(&self, row: usize, out: &mut Vec<u8>) {
        let mut digits = itoa::Buffer::new();
        match self {
            ColumnCells::Int64(a) if a.is_valid(row) => {
                out.extend_from_slice(digits.format(a.value(row)).as_bytes());
            }
            ColumnCells::UInt64(a) if a.is_valid(row) => {
                out.extend_from_slice(digits.format(a.value(row)).as_bytes());
            }
            ColumnCells::Text { .. } => {
                if let Some(text) = self.text(row) {
                    out.extend_from_slice(text.as_bytes());
                }
            }
            _ => {}
        }
    }
}
