//! Why a configuration was refused, and what was tolerated with a warning.
//!
//! Every refusal prints as ONE line that names where the problem is (file,
//! section, option), the value and the reason, so that an SRE can fix it
//! from the journal alone (SPEC §2).

use std::fmt;
use std::path::PathBuf;

/// A configuration that cannot be used; the program exits 2 with its text.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file (or the `-d` directory) could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The INI syntax is broken.
    #[error("invalid configuration: {path}:{line}:{column}: {reason}")]
    Syntax {
        /// The file (`<string>` for text given directly).
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected.
        reason: String,
    },
    /// The same section or option appears twice in one file (ConfigParser's
    /// strict mode refuses this too; across files the later one wins).
    #[error("invalid configuration: {path}: {what} appears more than once")]
    Duplicate {
        /// The file.
        path: String,
        /// `[section]` or `[section] option`.
        what: String,
    },
    /// An option outside any section.
    #[error("invalid configuration: {path}: option '{option}' appears before any [section] header")]
    NoSection {
        /// The file.
        path: String,
        /// The option.
        option: String,
    },
    /// `${...}` could not be resolved.
    #[error("invalid configuration: [{section}] {option} = '{value}': {reason}")]
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
    #[error("invalid configuration: [{section}] {option} = '{value}': {reason}")]
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
    #[error("invalid configuration: {0}")]
    Inconsistent(String),
    /// A directory a command needs is not readable and writable.
    #[error("invalid configuration: [{section}] {option} = '{}': read and write access is not granted: {source}", dir.display())]
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
        write!(f, "configuration: {}: {}", self.location, self.message)
    }
}
