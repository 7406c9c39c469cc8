//! Cells of one unquoted `show stat` line: their integer values
//! ([`fast_cell`], [`parse_cell`]), where
//! [`split_cells`](crate::stat_line::split_cells) says they start. The hot
//! path of the engine: every row of every file goes through here.

/// Parses cell `i` of a line split by
/// [`split_cells`](crate::stat_line::split_cells), as [`parse_cell`]
/// (`None` when the line has no such cell). A cell of 1 to 8 digits is
/// parsed eight bytes at once (SWAR).
#[inline]
pub(super) fn fast_cell(line: &[u8], bounds: &[u32], i: usize) -> Option<Result<Option<i64>, ()>> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    let start = *bounds.get(i)? as usize;
    let end = (*bounds.get(i + 1)? as usize).checked_sub(1)?;
    let len = end.checked_sub(start)?;
    if len == 0 {
        return Some(Ok(None));
    }
    if len <= 8
        && let Some(bytes) = line.get(start..start + 8)
    {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        // The cell's bytes moved to the top (its first digit, the most
        // significant, lowest): the bytes below are 0, leading zeros.
        let shift = 8 * (8 - len as u32);
        let x = u64::from_le_bytes(word) << shift;
        let cell = !0u64 << shift;
        let zeros = ZEROS & cell;
        // Every cell byte is 0x30..=0x3f, and stays below 0x40 plus 6: a digit.
        if x & HIGH_NIBBLES == zeros && (x + SIXES) & HIGH_NIBBLES & cell == zeros {
            let mut v = x - zeros;
            v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
            v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
            v = (v.wrapping_mul(10000) + (v >> 32)) & 0x0000_0000_ffff_ffff;
            return Some(Ok(Some(v as i64)));
        }
    }
    Some(parse_cell(line.get(start..end)?))
}

/// Parses an integer cell. `Ok(None)` for an empty cell, `Err` when the
/// cell is not an integer (or does not fit an `i64`).
#[inline]
pub(super) fn parse_cell(cell: &[u8]) -> Result<Option<i64>, ()> {
    let (neg, digits) = match cell.first() {
        None => return Ok(None),
        Some(b'-') => (true, cell.get(1..).unwrap_or_default()),
        _ => (false, cell),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(());
    }
    let v = if digits.len() < 19 {
        // At most 18 digits: cannot overflow, so no check per digit. A
        // byte that is no digit can (up to 255 per "digit"): it is found
        // after the loop and the value thrown away, so wrapping is fine.
        let mut v: i64 = 0;
        let mut bad = false;
        for &b in digits {
            let d = b.wrapping_sub(b'0');
            bad |= d > 9;
            v = v.wrapping_mul(10).wrapping_add(i64::from(d));
        }
        if bad {
            return Err(());
        }
        v
    } else {
        let mut v: i64 = 0;
        for &b in digits {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return Err(());
            }
            v = v
                .checked_mul(10)
                .ok_or(())?
                .checked_add(i64::from(d))
                .ok_or(())?;
        }
        v
    };
    Ok(Some(if neg { -v } else { v }))
}

/// Why a cell that [`parse_cell`] refused is not a value (the cold path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BadCell {
    /// Digits above `i64::MAX` that fit an unsigned 64-bit counter, as
    /// HAProxy's are: the value.
    Wide(u64),
    /// Digits beyond what any HAProxy counter can hold (over `u64::MAX`).
    TooLarge,
    /// Not an integer.
    NotANumber,
}

/// Classifies a cell [`parse_cell`] refused.
#[cold]
pub(super) fn bad_cell(cell: &[u8]) -> BadCell {
    let (neg, digits) = match cell.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, cell),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return BadCell::NotANumber;
    }
    // A negative number below i64::MIN is no counter: too large as well.
    let value = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok());
    match value {
        Some(v) if !neg && v > i64::MAX as u64 => BadCell::Wide(v),
        _ => BadCell::TooLarge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat_line::split_cells;

    #[test]
    fn fast_cells_agree_with_parse_cell() {
        let mut cells: Vec<String> = [
            "",
            "0",
            "7",
            "-1",
            "-",
            "x",
            "1x",
            "12345678",
            "123456789",
            "00000001",
            "99999999",
            "9/",
            ":9",
            "1.5",
            "1 2",
            "\u{7f}",
            "99999999999999999999",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect();
        cells.extend((0..200).map(|i| (i * 7_919_u64).pow(2).to_string()));
        for c in &cells {
            // Alone at the end of a line (too short for 8 bytes at once),
            // and followed by more cells.
            for line in [format!("a,{c}"), format!("a,{c},12345678,x,y")] {
                let mut b = Vec::new();
                let (_, n) = split_cells(line.as_bytes(), &mut b, 10).unwrap();
                assert_eq!(
                    fast_cell(line.as_bytes(), &b[..n], 1),
                    Some(parse_cell(c.as_bytes())),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn cells() {
        assert_eq!(parse_cell(b""), Ok(None));
        assert_eq!(parse_cell(b"-1"), Ok(Some(-1)));
        assert_eq!(parse_cell(b"-"), Err(()));
        assert_eq!(parse_cell(b"1.5"), Err(()));
        assert_eq!(parse_cell(b"1/"), Err(()));
        assert_eq!(parse_cell(b"99999999999999999999"), Err(()));
        assert_eq!(
            parse_cell(b"9223372036854775807"),
            Ok(Some(i64::MAX)),
            "19 digits"
        );
        assert_eq!(parse_cell(b"9223372036854775808"), Err(()));
        assert_eq!(
            bad_cell(b"9223372036854775808"),
            BadCell::Wide(1 << 63),
            "i64::MAX + 1 is a counter"
        );
        assert_eq!(bad_cell(b"18446744073709551615"), BadCell::Wide(u64::MAX));
        assert_eq!(bad_cell(b"18446744073709551616"), BadCell::TooLarge);
        assert_eq!(bad_cell(b"-9223372036854775809"), BadCell::TooLarge);
        assert_eq!(bad_cell(b"1.5"), BadCell::NotANumber);
        assert_eq!(bad_cell(b"-"), BadCell::NotANumber);
        assert_eq!(
            parse_cell(b"999999999999999999"),
            Ok(Some(999_999_999_999_999_999))
        );
    }
}
