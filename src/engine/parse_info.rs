//! `show info` parsing: `Key: Value` lines, integer values only.
//!
//! Values are `i128`: HAProxy's counters are unsigned 64-bit, so a value
//! may exceed `i64::MAX`, and sums of them must not wrap.

use super::warning::{InputWarning, WarningKind};
use std::path::Path;

/// The integer `Key: Value` pairs of one `show info` output, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InfoValues {
    /// `(key, value)`; keys may contain spaces; a repeated key keeps the first.
    pub pairs: Vec<(String, i128)>,
}

impl InfoValues {
    /// The value of `key`, if the file had it as an integer.
    pub fn get(&self, key: &str) -> Option<i128> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// Parses a `show info` output. Lines are split at the first `": "`; the
/// value, stripped of white space, is kept when it is an integer (as Python's
/// `int()` reads it); other lines are ignored silently (`Version`, `Uptime`,
/// ...). A file with no integer pair yields a warning and `None`.
pub fn parse_info(
    bytes: &[u8],
    file: &Path,
    warnings: &mut Vec<InputWarning>,
) -> Option<InfoValues> {
    let mut pairs: Vec<(String, i128)> = Vec::with_capacity(64);
    for raw in bytes.split(|&b| b == b'\n') {
        let Some(pos) = raw.windows(2).position(|w| w == b": ") else {
            continue;
        };
        let (key, rest) = raw.split_at(pos);
        let Some(value) = rest.get(2..).and_then(parse_python_int) else {
            continue;
        };
        let Ok(key) = std::str::from_utf8(key) else {
            continue;
        };
        if !pairs.iter().any(|(k, _)| k == key) {
            pairs.push((key.to_string(), value));
        }
    }
    if pairs.is_empty() {
        warnings.push(InputWarning::new(file, None, WarningKind::NoInfoValues));
        return None;
    }
    Some(InfoValues { pairs })
}

/// Largest magnitude kept: HAProxy's counters are unsigned 64-bit; anything
/// larger is no counter (and bounding it keeps every sum of them exact).
const MAX_MAGNITUDE: i128 = u64::MAX as i128;

/// Reads an integer the way Python's `int(str)` does for the values HAProxy
/// writes: surrounding white space allowed, optional sign, ASCII digits
/// (single `_` between digits allowed), magnitude up to `u64::MAX`.
fn parse_python_int(bytes: &[u8]) -> Option<i128> {
    let s = bytes.trim_ascii();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    if digits.is_empty() || digits.first() == Some(&b'_') || digits.last() == Some(&b'_') {
        return None;
    }
    let mut v: i128 = 0;
    let mut prev_underscore = false;
    for &b in digits {
        if b == b'_' {
            if prev_underscore {
                return None;
            }
            prev_underscore = true;
            continue;
        }
        prev_underscore = false;
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        if v > MAX_MAGNITUDE {
            return None;
        }
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_integer_values_and_keys_with_spaces() {
        let text = b"Name: HAProxy\nVersion: 2.5.5\nNbproc: 1\nUptime: 0d 0h00m16s\n\
Unstoppable Jobs: 2\nIdle_pct: 100\nnode: x\nBuild info: 2.5.5\nMemmax_MB:  7 \r\nCumReq: -1\n";
        let mut w = Vec::new();
        let info = parse_info(text, Path::new("a_info"), &mut w).unwrap();
        assert!(w.is_empty());
        assert_eq!(info.get("Nbproc"), Some(1));
        assert_eq!(info.get("Unstoppable Jobs"), Some(2));
        assert_eq!(info.get("Idle_pct"), Some(100));
        assert_eq!(info.get("Memmax_MB"), Some(7));
        assert_eq!(info.get("CumReq"), Some(-1));
        assert_eq!(info.get("Version"), None);
        assert_eq!(info.pairs.len(), 5);
    }

    #[test]
    fn no_pairs_is_a_warning() {
        let mut w = Vec::new();
        assert!(parse_info(b"garbage\n\0\xff", Path::new("x_info"), &mut w).is_none());
        assert_eq!(w.len(), 1);
        assert!(w[0].to_string().contains("x_info"));
    }

    #[test]
    fn python_int_rules() {
        assert_eq!(parse_python_int(b" 1_000\n"), Some(1000));
        assert_eq!(parse_python_int(b"1__0"), None);
        assert_eq!(parse_python_int(b"1.5"), None);
        assert_eq!(parse_python_int(b""), None);
        assert_eq!(parse_python_int(b"99999999999999999999"), None);
        assert_eq!(
            parse_python_int(b"9223372036854775808"),
            Some(1 << 63),
            "above i64::MAX: a u64 counter"
        );
        assert_eq!(
            parse_python_int(b"18446744073709551615"),
            Some(i128::from(u64::MAX))
        );
        assert_eq!(parse_python_int(b"18446744073709551616"), None);
    }
}
