//! Bounds on what a misbehaving peer can make us log.
//!
//! - [`LogLimit`]: lines a peer can repeat many times a second (reconnects,
//!   resets): at most one line per interval, and the line that gets through
//!   says how many were held back since the last one, so the log stays
//!   readable and nothing goes unsaid. Pure: time comes in.
//! - [`Quoted`]: text a peer sent (a stats page, a master CLI), as a line
//!   quotes it: escaped and cut, so that a peer can neither break, forge nor
//!   colour a line, nor make one megabytes long.

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

/// How often a repeated line is written at most.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// One kind of repeated log line.
#[derive(Debug, Clone)]
pub struct LogLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for LogLimit {
    fn default() -> LogLimit {
        LogLimit::new(DEFAULT_INTERVAL)
    }
}

impl LogLimit {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> LogLimit {
        LogLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to write the line now: `Some(held back since the last line
    /// written)`, or `None` (counted, to be reported with the next one).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// The condition ended (e.g. a connection made progress): the next
    /// occurrence is written at once.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// The longest quote, escapes included, before its cut mark.
pub const QUOTE_BYTES: usize = 200;

/// What a peer said, ready for a log line: at most [`QUOTE_BYTES`] of
/// text in which line breaks, tabs, every other control character, the
/// Unicode line separators, backslashes and bytes that are not UTF-8 are
/// escaped (`\n`, `\r`, `\t`, `\x1b`, `\u{2028}`, `\\`, `\xff`); a longer
/// text ends in `...(N more bytes)`. Every line that quotes a source says
/// it through this type, so what comes from outside is escaped once, in
/// one place, whatever the error that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted(String);

impl Quoted {
    /// Quotes `said`, as received.
    pub fn new(said: &[u8]) -> Quoted {
        let mut out = String::new();
        let mut used = 0;
        'chunks: for chunk in said.utf8_chunks() {
            for c in chunk.valid().chars() {
                let before = out.len();
                escape_char(&mut out, c);
                if out.len() > QUOTE_BYTES {
                    out.truncate(before);
                    break 'chunks;
                }
                used += c.len_utf8();
            }
            for byte in chunk.invalid() {
                if out.len() + 4 > QUOTE_BYTES {
                    break 'chunks;
                }
                let _ = write!(out, "\\x{byte:02x}");
                used += 1;
            }
        }
        let more = said.len() - used;
        if more > 0 {
            let _ = write!(out, "...({more} more bytes)");
        }
        Quoted(out)
    }

    /// The escaped text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn escape_char(out: &mut String, c: char) {
    let _ = match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        '\\' => out.write_str("\\\\"),
        c if c.is_ascii_control() => write!(out, "\\x{:02x}", u32::from(c)),
        // C1 controls (a terminal reads U+009B as ESC [) and the
        // separators some viewers break lines at.
        c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
            write!(out, "\\u{{{:x}}}", u32::from(c))
        }
        c => out.write_char(c),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_next_one_counts_what_was_held_back() {
        let t0 = Instant::now();
        let mut limit = LogLimit::new(Duration::from_secs(10));
        assert_eq!(limit.allow(t0), Some(0));
        let held: Vec<Option<u64>> = (1..=5)
            .map(|s| limit.allow(t0 + Duration::from_secs(s)))
            .collect();
        assert_eq!(held, [None; 5]);
        assert_eq!(limit.allow(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(limit.allow(t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn after_a_reset_the_next_line_is_written_at_once_with_its_count() {
        let t0 = Instant::now();
        let mut limit = LogLimit::new(Duration::from_secs(10));
        limit.allow(t0);
        limit.allow(t0 + Duration::from_secs(1));
        limit.reset();
        assert_eq!(limit.allow(t0 + Duration::from_secs(2)), Some(1));
    }

    #[test]
    fn a_quote_escapes_every_control_byte_and_what_is_not_utf8() {
        let quoted = Quoted::new(
            b"\x1b[31mred\x1b[0m\r\nnext\tline \\ \xff\xfe \xc2\x9b \xe2\x80\xa8 \x7f \xc3\xa9",
        );
        assert_eq!(
            quoted.as_str(),
            "\\x1b[31mred\\x1b[0m\\r\\nnext\\tline \\\\ \\xff\\xfe \\u{9b} \\u{2028} \\x7f \u{e9}"
        );
        assert!(!quoted.as_str().chars().any(char::is_control));
    }

    #[test]
    fn a_long_quote_is_cut_and_says_how_much_was_left_out() {
        let quoted = Quoted::new(&[b'a'; 10_000]);
        assert_eq!(
            quoted.as_str(),
            format!("{}...(9800 more bytes)", "a".repeat(QUOTE_BYTES))
        );
        // Escapes count against the bound, and one is never cut in half.
        let quoted = Quoted::new(&[0x1b; 1_000]);
        assert_eq!(
            quoted.as_str(),
            format!("{}...(950 more bytes)", "\\x1b".repeat(50))
        );
        let quoted = Quoted::new(&[0xff; 1_000]);
        assert!(
            quoted.as_str().ends_with("\\xff...(950 more bytes)"),
            "{quoted}"
        );
        assert_eq!(Quoted::new(b"short").as_str(), "short");
        assert_eq!(Quoted::new(b"").as_str(), "");
    }
}
