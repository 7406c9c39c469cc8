//! Cells of one unquoted `show stat` line: where they start
//! ([`split_cells`]) and their integer values ([`fast_cell`],
//! [`parse_cell`]). The hot path of the engine: every row of every file
//! goes through here, so the line is looked at 64 bytes at a time.

/// A 64-byte block's commas and quotes, one bit per byte (bit `i` = byte `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Masks {
    commas: u64,
    quotes: u64,
}

/// The masks of a block with SSE2, which every x86_64 CPU has: one compare
/// and one `movemask` per 16 bytes and character.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn masks(block: &[u8; 64]) -> Masks {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    let comma = set_splat_i8_m128i(b',' as i8);
    let quote = set_splat_i8_m128i(b'"' as i8);
    let (parts, _) = block.as_chunks::<16>();
    let mut m = Masks {
        commas: 0,
        quotes: 0,
    };
    for (i, part) in parts.iter().enumerate() {
        let v = load_unaligned_m128i(part);
        // movemask sets the low 16 bits only.
        let bits = |x| u64::from(move_mask_i8_m128i(x) as u32 & 0xffff) << (16 * i);
        m.commas |= bits(cmp_eq_mask_i8_m128i(v, comma));
        m.quotes |= bits(cmp_eq_mask_i8_m128i(v, quote));
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn masks(block: &[u8; 64]) -> Masks {
    masks_swar(block)
}

/// The masks of a block eight bytes at a time in plain integers (SWAR): the
/// portable fallback, and the reference the SSE2 version is tested against.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn masks_swar(block: &[u8; 64]) -> Masks {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    /// Bit `i` set where byte `i` of `x` is `c`.
    fn eq_bits(x: u64, c: u8) -> u64 {
        let x = x ^ (u64::from(c) * 0x0101_0101_0101_0101);
        // High bit of each byte set exactly where the byte is zero (no
        // false positives: no carries cross bytes).
        let zero = !(((x & LO7).wrapping_add(LO7)) | x) & HI;
        // Gathers the eight high bits into the top byte, byte 0 lowest.
        (zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
    }
    let (words, _) = block.as_chunks::<8>();
    let mut m = Masks {
        commas: 0,
        quotes: 0,
    };
    for (i, w) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*w);
        m.commas |= eq_bits(x, b',') << (8 * i);
        m.quotes |= eq_bits(x, b'"') << (8 * i);
    }
    m
}

/// Writes `base + position + 1` for each of the `count` commas of `commas`
/// (in order) from `bounds[n]` on, and returns `n + count`. `bounds` must
/// have room for 64 more entries past `n`.
///
/// Eight at a time, without a branch per comma (cell lengths are
/// irregular, so such a branch would often be mispredicted): the slots past
/// the last comma get `base + 65`, and are past the returned `n`.
#[inline(always)]
fn locate(bounds: &mut [u32], n: usize, mut commas: u64, base: u32, count: usize) -> usize {
    let Some(slots) = bounds.get_mut(n..n + 64) else {
        return n;
    };
    for eight in slots.as_chunks_mut::<8>().0 {
        for slot in eight {
            *slot = base + commas.trailing_zeros() + 1;
            commas &= commas.wrapping_sub(1);
        }
        if commas == 0 {
            break;
        }
    }
    n + count
}

/// Splits a line on commas: `bounds` gets the start of the first cells (at
/// least `want` entries, the first being 0, when the line has that many;
/// with every cell, `line.len() + 1` last); returns the number of cells and
/// of entries written. Cells past the ones needed are only counted. Returns
/// `None` when the line contains a `"`: quoted cells need the `csv` crate.
///
/// The line is read 64 bytes at a time into bit masks of its commas and
/// quotes ([`masks`]); the last, partial block is copied into a zeroed one
/// (a zero byte is neither). Positions come from the comma masks until
/// `want` entries are written; past that the commas are only counted.
pub(crate) fn split_cells(
    line: &[u8],
    bounds: &mut Vec<u32>,
    want: usize,
) -> Option<(usize, usize)> {
    // Room for `want` entries, one block's commas past them and the end.
    if bounds.len() < want + 66 {
        bounds.resize(want + 66, 0);
    }
    if let Some(first) = bounds.first_mut() {
        *first = 0;
    }
    let mut n = 1usize;
    let mut commas = 0usize;
    let mut base = 0u32;
    let (blocks, tail) = line.as_chunks::<64>();
    let mut last = [0u8; 64];
    if let Some(dst) = last.get_mut(..tail.len()) {
        dst.copy_from_slice(tail);
    }
    for block in blocks.iter().chain((!tail.is_empty()).then_some(&last)) {
        let m = masks(block);
        if m.quotes != 0 {
            return None;
        }
        let count = m.commas.count_ones() as usize;
        if n < want {
            n = locate(bounds, n, m.commas, base, count);
        }
        commas += count;
        base += 64;
    }
    if n == commas + 1
        && let Some(end) = bounds.get_mut(n)
    {
        *end = line.len() as u32 + 1;
        n += 1;
    }
    Some((commas + 1, n))
}

/// Parses cell `i` of a line split by [`split_cells`], as [`parse_cell`]
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

    #[test]
    fn sse2_and_swar_masks_agree() {
        let mut blocks: Vec<[u8; 64]> = vec![[0; 64], [b','; 64], [b'"'; 64], [0xff; 64]];
        // Every byte value at every position, next to commas and quotes.
        for v in 0..=255u8 {
            let mut b = [0u8; 64];
            for (i, x) in b.iter_mut().enumerate() {
                *x = match i % 3 {
                    0 => v,
                    1 => b',',
                    _ => v.wrapping_add(i as u8),
                };
            }
            blocks.push(b);
            b[v as usize % 64] = b'"';
            blocks.push(b);
        }
        for b in &blocks {
            let want = Masks {
                commas: b
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b',')
                    .fold(0, |m, (i, _)| m | 1 << i),
                quotes: b
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b'"')
                    .fold(0, |m, (i, _)| m | 1 << i),
            };
            assert_eq!(masks(b), want, "{b:?}");
            assert_eq!(masks_swar(b), want, "{b:?}");
        }
    }

    #[test]
    fn split_on_commas() {
        let split = |line: &[u8], want: usize| -> Option<(usize, Vec<u32>)> {
            let mut b = Vec::new();
            let (cells, n) = split_cells(line, &mut b, want)?;
            Some((cells, b[..n].to_vec()))
        };
        assert_eq!(split(b"a,,bc,", 100), Some((4, vec![0, 2, 3, 6, 7])));
        assert_eq!(split(b"", 100), Some((1, vec![0, 1])));
        let long_commas = vec![b','; 3001];
        let long_cells = b"a,bc,".repeat(700);
        for line in [
            &b"0123456,89,,,,,,,,,,,,,,,,,,,,,abcdefgh,ijklmno,,p"[..],
            b",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,",
            b"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &long_commas,
            &long_cells,
        ] {
            let mut want = vec![0u32];
            want.extend(
                line.iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b',')
                    .map(|(i, _)| i as u32 + 1),
            );
            want.push(line.len() as u32 + 1);
            let cells = want.len() - 1;
            assert!(split(line, line.len() + 2) == Some((cells, want.clone())));
            // Only the first cells are located, all are counted.
            for w in 1..want.len() {
                let (c, got) = split(line, w).unwrap();
                assert_eq!(c, cells);
                assert!(got.len() >= w.min(want.len()), "{w}: {got:?}");
                assert!(got[..] == want[..got.len()], "{w}");
            }
        }
        assert_eq!(split(b"0123456789\"", 100), None);
        assert_eq!(split(b"\"a\",b", 1), None);
        // A quote in a full block, in the partial last one, at a block edge.
        for at in [0, 63, 64, 100, 127, 128, 130] {
            let mut line = b"1,".repeat(70);
            line[at] = b'"';
            assert_eq!(split(&line, 3), None, "{at}");
        }
    }

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
