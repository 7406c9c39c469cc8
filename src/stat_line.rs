//! One line of `show stat` CSV as it is read from a snapshot, by the
//! engine and by the raw snapshot encoder alike: the longest line held
//! ([`MAX_LINE`]) and where its cells start (`split_cells`, 64 bytes at a
//! time: the hot path of both). Below both, so that neither imports the
//! other for it.

/// The longest line a reader of `show stat` holds (HAProxy's are below
/// 4 KiB): a longer one is skipped with a warning.
pub const MAX_LINE: usize = 1 << 20;

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
}
