//! Graphite plaintext formatting into one output buffer: `path value ts\n`.
//!
//! Integers are written without a decimal point (itoa), floats as the
//! shortest string that round-trips (ryu). Nothing allocates per line: the
//! ` <timestamp>\n` tail is formatted once, and the hot path
//! ([`LineWriter::line_at`]) appends a pre-joined path prefix and the metric
//! name. The caller drains the buffer to its writer between groups
//! ([`LineWriter::take_if_over`]), so the output is streamed in chunks.

/// A metric value as it is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An integer (sums, counts).
    Int(i64),
    /// An integer beyond `i64` (a sum of 64-bit counters), written exactly.
    Wide(i128),
    /// A float (means, standard deviation); never NaN or infinite.
    Float(f64),
    /// Seconds with exactly three decimals (wall clock times, §4.4).
    Seconds(f64),
}

impl Value {
    /// An integer value: [`Value::Int`] when it fits, the common case that
    /// formats faster, else [`Value::Wide`].
    pub fn int(n: i128) -> Value {
        i64::try_from(n).map_or(Value::Wide(n), Value::Int)
    }
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

/// A name cell of a CSV as a path element: sanitised like [`sanitize_name`],
/// invalid UTF-8 replaced by U+FFFD first. Borrows in the common case.
pub(crate) fn sanitize_bytes(cell: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(cell) {
        Ok(s) if is_clean(s) => s.into(),
        Ok(s) => sanitize_name(s).into(),
        Err(_) => sanitize_name(&String::from_utf8_lossy(cell)).into(),
    }
}

/// Appends Graphite lines for one timestamp to a buffer.
pub struct LineWriter<'a> {
    out: &'a mut Vec<u8>,
    /// ` <timestamp>\n`.
    tail: Vec<u8>,
    lines: usize,
}

impl<'a> LineWriter<'a> {
    /// A writer appending to `out` with `timestamp` on every line.
    pub fn new(out: &'a mut Vec<u8>, timestamp: i64) -> Self {
        let mut tail = Vec::with_capacity(24);
        tail.push(b' ');
        tail.extend_from_slice(itoa::Buffer::new().format(timestamp).as_bytes());
        tail.push(b'\n');
        LineWriter {
            out,
            tail,
            lines: 0,
        }
    }

    /// Lines written so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Counts `n` lines written to the buffer by other means.
    pub fn add_lines(&mut self, n: usize) {
        self.lines += n;
    }

    /// When at least `threshold` bytes are buffered, hands them to `sink`
    /// (which empties the buffer, or keeps it when the buffer is the output).
    pub fn take_if_over<E, F>(&mut self, threshold: usize, sink: &mut F) -> Result<(), E>
    where
        F: FnMut(&mut Vec<u8>) -> Result<(), E> + ?Sized,
    {
        if self.out.len() >= threshold {
            sink(self.out)?;
        }
        Ok(())
    }

    /// Writes `prefix` (a path ending in `.`, already joined) and `name` as
    /// the path, then the value and timestamp; the hot path of the engine.
    /// A NaN or infinite float writes nothing and returns `false`.
    pub fn line_at(&mut self, prefix: &[u8], name: &str, value: Value) -> bool {
        if !is_finite(value) {
            return false;
        }
        self.out.extend_from_slice(prefix);
        self.out.extend_from_slice(name.as_bytes());
        self.value_and_tail(value);
        true
    }

    /// Writes `parts` joined by `.` as the path, then the value and timestamp.
    /// A NaN or infinite float writes nothing and returns `false`.
    pub fn line(&mut self, parts: &[&str], value: Value) -> bool {
        if !is_finite(value) {
            return false;
        }
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                self.out.push(b'.');
            }
            self.out.extend_from_slice(part.as_bytes());
        }
        self.value_and_tail(value);
        true
    }

    /// ` value timestamp\n`.
    fn value_and_tail(&mut self, value: Value) {
        self.out.push(b' ');
        match value {
            Value::Int(n) => {
                self.out
                    .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            }
            Value::Wide(n) => {
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
        self.out.extend_from_slice(&self.tail);
        self.lines += 1;
    }
}

/// `false` for a NaN or infinite float (never written).
fn is_finite(value: Value) -> bool {
    match value {
        Value::Int(_) | Value::Wide(_) => true,
        Value::Float(f) | Value::Seconds(f) => f.is_finite(),
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
            one(&["a"], Value::int(2 * i128::from(u64::MAX))),
            "a 36893488147419103230 1700000000\n"
        );
        assert_eq!(Value::int(-5), Value::Int(-5));
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
    fn prefixed_lines_and_draining() {
        let mut buf = Vec::new();
        let mut w = LineWriter::new(&mut buf, 7);
        assert!(w.line_at(b"P.backend.b.", "bin", Value::Int(3)));
        assert!(!w.line_at(b"P.backend.b.", "qtime", Value::Float(f64::INFINITY)));
        let mut drained = Vec::new();
        let mut sink = |b: &mut Vec<u8>| -> Result<(), ()> {
            drained.append(b);
            Ok(())
        };
        w.take_if_over(1000, &mut sink).unwrap();
        w.line(&["P", "x"], Value::Float(0.5));
        w.take_if_over(10, &mut sink).unwrap();
        assert_eq!(w.lines(), 2);
        assert!(buf.is_empty());
        assert_eq!(drained, b"P.backend.b.bin 3 7\nP.x 0.5 7\n");
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("a.b c\td\ne\u{7f}f"), "a_b_c_d_e_f");
        assert_eq!(sanitize_name("be-01:x"), "be-01:x");
        assert!(is_clean("be-01"));
        assert!(!is_clean("a.b"));
        assert!(!is_clean("a\u{2028}b"));
        assert_eq!(sanitize_bytes(b"be-1"), "be-1");
        assert_eq!(sanitize_bytes(b"a.b c"), "a_b_c");
        assert_eq!(sanitize_bytes(b"a\xffb.c"), "a\u{fffd}b_c");
    }
}
