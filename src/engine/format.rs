//! Graphite plaintext formatting into one output buffer: `path value ts\n`.
//!
//! Integers are written without a decimal point (itoa), floats as the
//! shortest string that round-trips (ryu). Nothing allocates per line.

/// A metric value as it is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An integer (sums, counts).
    Int(i64),
    /// A float (means, standard deviation); never NaN or infinite.
    Float(f64),
    /// Seconds with exactly three decimals (wall clock times, §4.4).
    Seconds(f64),
}

/// Replaces in a frontend, backend or server name every `.` (the Graphite
/// path separator) and every character that would break the line protocol
/// (white space, control characters) by `_`.
pub fn sanitize_name(name: &str) -> String {
    name.chars()
        .map(|c| if needs_replacing(c) { '_' } else { c })
        .collect()
}

/// `true` when `c` must not appear in a path element.
pub(crate) fn needs_replacing(c: char) -> bool {
    c == '.' || c.is_whitespace() || c.is_control()
}

/// `true` when `name` is already a valid path element (the common case).
pub(crate) fn is_clean(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_graphic() && b != b'.') || !name.chars().any(needs_replacing)
}

/// Appends Graphite lines for one timestamp to a buffer.
pub struct LineWriter<'a> {
    out: &'a mut Vec<u8>,
    timestamp: i64,
    lines: usize,
}

impl<'a> LineWriter<'a> {
    /// A writer appending to `out` with `timestamp` on every line.
    pub fn new(out: &'a mut Vec<u8>, timestamp: i64) -> Self {
        LineWriter {
            out,
            timestamp,
            lines: 0,
        }
    }

    /// Lines written so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Writes `parts` joined by `.` as the path, then the value and timestamp.
    /// A NaN or infinite float writes nothing and returns `false`.
    pub fn line(&mut self, parts: &[&str], value: Value) -> bool {
        let finite = match value {
            Value::Int(_) => true,
            Value::Float(f) | Value::Seconds(f) => f.is_finite(),
        };
        if !finite {
            return false;
        }
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                self.out.push(b'.');
            }
            self.out.extend_from_slice(part.as_bytes());
        }
        self.out.push(b' ');
        match value {
            Value::Int(n) => {
                self.out
                    .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            }
            Value::Float(f) => {
                if f == f.trunc() && f.abs() < 1e16 {
                    // Python prints integral floats as `12.0`; ryu does too,
                    // but this is faster and exact.
                    self.out
                        .extend_from_slice(itoa::Buffer::new().format(f as i64).as_bytes());
                    self.out.extend_from_slice(b".0");
                } else {
                    self.out
                        .extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
                }
            }
            Value::Seconds(f) => {
                let millis = (f * 1000.0).round().max(0.0) as i64;
                self.out
                    .extend_from_slice(itoa::Buffer::new().format(millis / 1000).as_bytes());
                self.out.push(b'.');
                let frac = millis % 1000;
                self.out.push(b'0' + (frac / 100) as u8);
                self.out.push(b'0' + (frac / 10 % 10) as u8);
                self.out.push(b'0' + (frac % 10) as u8);
            }
        }
        self.out.push(b' ');
        self.out
            .extend_from_slice(itoa::Buffer::new().format(self.timestamp).as_bytes());
        self.out.push(b'\n');
        self.lines += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(parts: &[&str], v: Value) -> String {
        let mut buf = Vec::new();
        LineWriter::new(&mut buf, 1700000000).line(parts, v);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn values_are_formatted_like_the_original() {
        assert_eq!(one(&["a", "b"], Value::Int(-3)), "a.b -3 1700000000\n");
        assert_eq!(one(&["a"], Value::Float(12.0)), "a 12.0 1700000000\n");
        assert_eq!(
            one(&["a"], Value::Float(0.1 + 0.2)),
            "a 0.30000000000000004 1700000000\n"
        );
        assert_eq!(one(&["a"], Value::Float(-2.5)), "a -2.5 1700000000\n");
        assert_eq!(one(&["a"], Value::Seconds(0.0125)), "a 0.013 1700000000\n");
        assert_eq!(one(&["a"], Value::Seconds(2.0)), "a 2.000 1700000000\n");
        assert_eq!(one(&["a"], Value::Float(f64::NAN)), "");
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("a.b c\td\ne\u{7f}f"), "a_b_c_d_e_f");
        assert_eq!(sanitize_name("be-01:x"), "be-01:x");
        assert!(is_clean("be-01"));
        assert!(!is_clean("a.b"));
        assert!(!is_clean("a\u{2028}b"));
    }
}
