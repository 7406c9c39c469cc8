//! Why a configuration was refused, and what was tolerated with a warning.
//!
//! Every refusal prints as ONE line that names where the problem is (file,
//! section, option), the value and the reason, so that an SRE can fix it
//! from the journal alone (SPEC §2). What comes from the files (names,
//! values, paths) is shown with its control characters escaped ([`Esc`]),
//! so that a value holding a newline still makes one line.

use std::fmt;
use std::path::PathBuf;

/// A configuration that cannot be used; the program exits 2 with its text.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file (or the `-d` directory) could not be read.
    #[error("cannot read configuration {}: {source}", Esc(&.path.to_string_lossy()))]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `-f` or a `*.conf` of `-d` is not a regular file: a FIFO would block
    /// the start for good and a device like `/dev/zero` never ends.
    #[error("cannot read configuration {}: not a regular file ({kind})", Esc(&.path.to_string_lossy()))]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead (`a directory`, `a FIFO`, ...).
        kind: &'static str,
    },
    /// A configuration file larger than [`MAX_FILE_BYTES`]: no real one is.
    #[error("cannot read configuration {}: too large (more than {limit} bytes)", Esc(&.path.to_string_lossy()))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The most accepted, [`MAX_FILE_BYTES`].
        limit: u64,
    },
    /// The INI syntax is broken.
    #[error("invalid configuration: {}:{line}: {}", Esc(.path), Esc(.reason))]
    Syntax {
        /// The file (`<string>` for text given directly).
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// The same section or option appears twice in one file (ConfigParser's
    /// strict mode refuses this too; across files the later one wins).
    #[error("invalid configuration: {}: {} appears more than once", Esc(.path), Esc(.what))]
    Duplicate {
        /// The file.
        path: String,
        /// `[section]` or `[section] option`.
        what: String,
    },
    /// An option outside any section.
    #[error("invalid configuration: {}: option '{}' appears before any [section] header", Esc(.path), Esc(.option))]
    NoSection {
        /// The file.
        path: String,
        /// The option.
        option: String,
    },
    /// `${...}` could not be resolved.
    #[error("invalid configuration: [{}] {} = '{}': {}", Esc(.section), Esc(.option), Esc(.value), Esc(.reason))]
    Interpolation {
        /// Section of the option being read.
        section: String,
        /// The option being read.
        option: String,
        /// Its raw value.
        value: String,
        /// Missing reference, recursion or bad syntax.
        reason: String,
    },
    /// A value of the wrong type or out of range.
    #[error("invalid configuration: [{}] {} = '{}': {}", Esc(.section), Esc(.option), Esc(.value), Esc(.reason))]
    Invalid {
        /// The section.
        section: String,
        /// The option.
        option: String,
        /// The (interpolated) value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// Options that are valid alone but not together.
    #[error("invalid configuration: {}", Esc(.0))]
    Inconsistent(String),
    /// A directory a command needs is not readable and writable.
    #[error("invalid configuration: [{}] {} = '{}': read and write access is not granted: {source}", Esc(.section), Esc(.option), Esc(&.dir.to_string_lossy()))]
    Access {
        /// The section.
        section: String,
        /// The option naming the directory.
        option: String,
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ConfigError {
    /// A short stable name of the error kind, for tests and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "read",
            ConfigError::NotAFile { .. } => "not_a_file",
            ConfigError::TooLarge { .. } => "too_large",
            ConfigError::Syntax { .. } => "syntax",
            ConfigError::Duplicate { .. } => "duplicate",
            ConfigError::NoSection { .. } => "no_section",
            ConfigError::Interpolation { .. } => "interpolation",
            ConfigError::Invalid { .. } => "invalid",
            ConfigError::Inconsistent(_) => "inconsistent",
            ConfigError::Access { .. } => "access",
        }
    }

    pub(crate) fn invalid(
        section: &str,
        option: &str,
        value: &str,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            section: section.to_owned(),
            option: option.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Something in the configuration that is tolerated but probably not what
/// the user meant (an unknown option, an option the original ignored too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// `[section]` or `[section] option`.
    pub location: String,
    /// What is wrong and what happens instead.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "configuration: {}: {}",
            Esc(&self.location),
            Esc(&self.message)
        )
    }
}

/// The largest configuration file read, in bytes: real ones are a few KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Text from a configuration file shown in a message: line breaks, tabs and
/// other control characters are escaped (`\n`, `\t`, `\x1b`, `\u{2028}`) so
/// that the message stays one line and shows what is really there; the rest,
/// backslashes of a regex included, is shown as written.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_ascii_control() => write!(f, "\\x{:02x}", u32::from(c))?,
                // Other controls and the Unicode line and paragraph separators.
                c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                    write!(f, "\\u{{{:x}}}", u32::from(c))?
                }
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}
