//! The one rule for names that become Graphite path elements (issue 24
//! items 7 and 8): `[kafka] lb-name` and `cluster`, the `lb` and `cluster`
//! headers central reads, group names, and every element of the dotted
//! paths of the configuration (`[graphite] namespace` and
//! `group-namespace`, `[central] cluster-namespace`).
//!
//! A name is **1 to 255 bytes of `A-Z a-z 0-9 _ -`**, the characters every
//! part of Graphite stores and finds as a plain path element:
//!
//! - `.` separates elements: `eu.west` would be two;
//! - white space and control characters end a plaintext line's path;
//! - `;` makes carbon 1.1 (tags on by default) store the line as a tagged
//!   series (`x;evil=1` is series `x` with tag `evil`), and `=` belongs to
//!   the tag syntax;
//! - `* ? [ ] { }` are glob metacharacters of Graphite's queries: a series
//!   named `a*` cannot be asked for alone;
//! - `/` makes a directory in carbon's whisper tree (`lb/1` would be `lb`
//!   then `1`); `( ) , ' " \` are the syntax of render targets;
//! - anything beyond ASCII (U+200B, a zero-width space, looks like nothing
//!   at all) is a name no one can type back;
//! - carbon stores each element as a file or directory name: one over 255
//!   bytes is refused (ENAMETOOLONG). Our names are never the last element
//!   (`.wsp` is added to that one), so 255 is the bound.
//!
//! The set is the one Graphite's maintainers recommend (carbon issue 417)
//! and the one HAProxy leaves after our `.`→`_`: HAProxy itself allows only
//! `A-Z a-z 0-9 _ - . :` in proxy and server names, and those names, which
//! come from data, are sanitised by the engine rather than refused. The
//! host name, the default `lb-name`, is written as the Graphite prefix
//! writes it, dots as `_` (`fqdn`) or the short name: a host name of
//! letters, digits and `-` is a name.
//!
//! What breaks the rule is refused, never rewritten: an edge whose
//! `lb-name` central would refuse stops at start (exit 2) instead of
//! publishing snapshots nobody uses, and central counts a message with
//! such a header as bad instead of writing a path no one asked for.
//!
//! This module is a leaf: configuration and central both use it, it uses
//! neither.

use std::fmt;

/// The longest name, in bytes: carbon stores each path element as a file
/// name, and Linux refuses one over 255 bytes.
pub const MAX_LEN: usize = 255;

/// The characters of a name, as the documentation writes them.
pub const ALLOWED: &str = "A-Z a-z 0-9 _ -";

/// Why a name or a dotted path breaks the rule. [`NameError::reason`] is
/// the same text without the offending character or length, for callers
/// that show the value beside it anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Nothing at all.
    Empty,
    /// A path with an empty element (`a..b`, `.a`, `a.`).
    EmptyElement,
    /// Longer than [`MAX_LEN`] bytes (its length).
    TooLong(usize),
    /// A `.`: two elements, not one.
    Dot,
    /// White space or a control character: the line would break.
    Blank,
    /// `;`: carbon would store a tagged series.
    TagSeparator,
    /// One of `* ? [ ] { }`.
    Glob(char),
    /// `/`: a directory in carbon's tree.
    Slash,
    /// Any other character outside [`ALLOWED`].
    Other(char),
}

impl NameError {
    /// What is wrong, as a fixed text (for central's bad-message line,
    /// which shows the value escaped beside it).
    pub fn reason(&self) -> &'static str {
        match self {
            NameError::Empty => "must not be empty",
            NameError::EmptyElement => {
                "has an empty path component (a leading, trailing or doubled '.')"
            }
            NameError::TooLong(_) => {
                "is longer than 255 bytes (carbon stores each path element as a file name)"
            }
            NameError::Dot => "must not hold '.' (the Graphite path separator)",
            NameError::Blank => {
                "must not hold blanks or control characters (they end a Graphite line)"
            }
            NameError::TagSeparator => "must not hold ';' (carbon would store a tagged series)",
            NameError::Glob(_) => "must not hold * ? [ ] { } (Graphite's glob metacharacters)",
            NameError::Slash => "must not hold '/' (carbon would make it a directory)",
            NameError::Other(_) => {
                "must hold only A-Z a-z 0-9 _ - (what Graphite stores as a plain path element)"
            }
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())?;
        match self {
            NameError::TooLong(len) => write!(f, ": {len} bytes"),
            // The character itself: a U+200B would be invisible in the value.
            NameError::Other(c) if c.is_ascii_graphic() => write!(f, ": holds '{c}'"),
            NameError::Other(c) => write!(f, ": holds U+{:04X}", u32::from(*c)),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for NameError {}

/// Whether `name` is one Graphite path element by the rule of this module.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    match name.chars().find(|c| !is_name_char(*c)) {
        None => Ok(()),
        Some(c) => Err(classify(c)),
    }
}

/// Whether `path` is dot-separated names, each one by [`check_name`] (a
/// namespace).
pub fn check_path(path: &str) -> Result<(), NameError> {
    if path.is_empty() {
        return Err(NameError::Empty);
    }
    if path.split('.').any(str::is_empty) {
        return Err(NameError::EmptyElement);
    }
    path.split('.').try_for_each(check_name)
}

/// A character a name may hold.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Why `c`, not a name character, is refused: the most specific reason.
fn classify(c: char) -> NameError {
    match c {
        '.' => NameError::Dot,
        ';' => NameError::TagSeparator,
        '/' => NameError::Slash,
        '*' | '?' | '[' | ']' | '{' | '}' => NameError::Glob(c),
        c if c.is_whitespace() || c.is_control() => NameError::Blank,
        c => NameError::Other(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 24 item 7: each name that reached Graphite, and why it is
    /// refused now.
    #[test]
    fn the_names_that_reached_graphite_are_refused() {
        let long = "a".repeat(300);
        for (name, want) in [
            ("x;evil=1", NameError::TagSeparator),
            ("c;k=v", NameError::TagSeparator),
            ("a*", NameError::Glob('*')),
            ("{a,b}", NameError::Glob('{')),
            ("b[1]", NameError::Glob('[')),
            ("lb?", NameError::Glob('?')),
            ("lb\u{200b}", NameError::Other('\u{200b}')),
            ("\u{200b}", NameError::Other('\u{200b}')),
            (long.as_str(), NameError::TooLong(300)),
            ("lb/1", NameError::Slash),
            ("eu/west", NameError::Slash),
            ("eu.west", NameError::Dot),
            ("a b", NameError::Blank),
            ("a\tb", NameError::Blank),
            ("a\u{85}b", NameError::Blank),
            ("a\u{1b}b", NameError::Blank),
            ("", NameError::Empty),
            ("k=v", NameError::Other('=')),
            ("sum(a)", NameError::Other('(')),
            ("a,b", NameError::Other(',')),
            ("a\\b", NameError::Other('\\')),
            ("é", NameError::Other('é')),
        ] {
            assert_eq!(check_name(name), Err(want), "{name:?}");
        }
    }

    #[test]
    fn plain_names_and_host_names_as_the_prefix_writes_them_pass() {
        let longest = "a".repeat(MAX_LEN);
        for name in [
            "lb-1",
            "eu-west-1",
            "default",
            "LB_07",
            "0",
            "-",
            // `fqdn = true`: dots become `_`; `fqdn = false`: the short name.
            "lb-01_example_com",
            "lb-01",
            longest.as_str(),
        ] {
            assert_eq!(check_name(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn a_path_is_names_between_dots() {
        for path in ["loadbalancers", "a.b-c", "dc.clusters", "x_1.y"] {
            assert_eq!(check_path(path), Ok(()), "{path:?}");
        }
        let long = format!("a.{}", "b".repeat(256));
        for (path, want) in [
            ("", NameError::Empty),
            ("a..b", NameError::EmptyElement),
            (".a", NameError::EmptyElement),
            ("a.", NameError::EmptyElement),
            ("a.b*", NameError::Glob('*')),
            ("a b.c", NameError::Blank),
            ("a;t=1.b", NameError::TagSeparator),
            (long.as_str(), NameError::TooLong(256)),
        ] {
            assert_eq!(check_path(path), Err(want), "{path:?}");
        }
    }

    #[test]
    fn every_refusal_is_one_line_that_shows_what_cannot_be_seen() {
        assert_eq!(
            NameError::Other('\u{200b}').to_string(),
            "must hold only A-Z a-z 0-9 _ - (what Graphite stores as a plain path element): holds U+200B"
        );
        assert_eq!(
            NameError::TooLong(300).to_string(),
            "is longer than 255 bytes (carbon stores each path element as a file name): 300 bytes"
        );
        for error in [
            NameError::Empty,
            NameError::EmptyElement,
            NameError::Dot,
            NameError::Blank,
            NameError::TagSeparator,
            NameError::Glob('*'),
            NameError::Slash,
            NameError::Other('\n'),
        ] {
            assert!(!error.to_string().contains('\n'), "{error:?}");
            assert!(error.to_string().starts_with(error.reason()));
        }
    }
}
