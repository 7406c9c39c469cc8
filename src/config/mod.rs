//! Configuration (SPEC §2): INI files compatible with the original's
//! `ConfigParser(interpolation=ExtendedInterpolation())`, read once at start
//! into one validated, typed [`Config`].
//!
//! - [`raw`]: rust-ini lexing, `[DEFAULT]`, built-in defaults, file merging.
//! - [`interpolate`]: `${key}`, `${section:key}`, `$$`.
//! - `build`: typed parsing and validation, one-line errors.
//! - `render`: [`Config::to_ini`] and [`Config::defaults`] for `-p` / `-P`.
//! - [`stats_url`]: `servers` entries of HTTP stats pages, parsed.
//! - `section`: [`SinkSection`], a sink's own section as the sink
//!   describes it; the list of sinks is handed in ([`SinkOptions`]), and
//!   their values kept in [`Config::sinks`].
//!
//! The values the rest of the program is configured with are defined
//! here, not where they are used ([`Format`], [`Compression`], [`Fields`],
//! [`WindowSettings`], [`stats_url::StatsUrl`], [`LIVENESS_INTERVAL`],
//! ...): config imports only what sits beside it at the bottom of the
//! module graph (`catalogue`, `names`), never a module above it
//! (`tests/module_graph.rs`).

mod build;
mod central;
pub mod codec;
mod error;
mod fields;
pub mod interpolate;
mod kafka;
mod model;
pub mod raw;
mod render;
mod section;
pub mod stats_url;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use build::Reader;
pub use build::{KNOWN_OPTIONS, parse_python_bool, parse_python_float, parse_python_int};
pub use central::{
    CentralSettings, DEFAULT_CLUSTER_NAMESPACE, WindowSettings, resolve as resolve_central,
};
pub use error::{ConfigError, ConfigWarning, MAX_FILE_BYTES};
pub use fields::{Fields, NAMES_AND_STATUSES};
pub use kafka::{Compression, Format, LIBRDKAFKA_PREFIX, RECORD_OVERHEAD, client_config};
pub use model::*;
pub use render::{IniWriter, format_seconds};
pub use section::{Section, SectionOption, SectionValue, SinkConfigs, SinkOptions, SinkSection};

use raw::RawConfig;

/// Where the configuration is read from unless `-f` says otherwise.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/haproxystats.conf";

/// How often the daemon's Supervisor and Central look at their children's
/// mailboxes; here because `[process] liveness-check-interval`, which it
/// replaces, is warned about with it.
pub const LIVENESS_INTERVAL: Duration = Duration::from_millis(250);

/// Where the configuration comes from (`-f`, `-d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSources {
    /// The main file.
    pub file: PathBuf,
    /// `true` when given with `-f`: then a missing file is an error; the
    /// default file may be missing (all defaults).
    pub file_is_explicit: bool,
    /// `-d`: every `*.conf` in it is read after `file`, in sorted order.
    pub dir: Option<PathBuf>,
}

impl Default for ConfigSources {
    fn default() -> Self {
        ConfigSources {
            file: PathBuf::from(DEFAULT_CONFIG_FILE),
            file_is_explicit: false,
            dir: None,
        }
    }
}

/// A configuration that can be used, and what was tolerated on the way.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The validated configuration.
    pub config: Config,
    /// Unknown options and the like, to be logged once at start.
    pub warnings: Vec<ConfigWarning>,
}

/// Reads and validates the configuration from files, with the sinks'
/// sections `sinks` (`crate::sink::options()`: config names no sink).
/// Touches nothing but the files it reads (directory access is checked
/// when a command starts, with [`check_dir_access`]).
pub fn load(sources: &ConfigSources, sinks: &[SinkOptions]) -> Result<LoadedConfig, ConfigError> {
    let mut raw = RawConfig::builtin(sinks);
    match read_file(&sources.file) {
        Ok(text) => raw.read_str(&text, &sources.file.display().to_string())?,
        Err(ConfigError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && !sources.file_is_explicit => {}
        Err(error) => return Err(error),
    }
    if let Some(dir) = &sources.dir {
        for file in conf_files(dir)? {
            let text = read_file(&file)?;
            raw.read_str(&text, &file.display().to_string())?;
        }
    }
    finish(&raw, sinks)
}

/// Reads one configuration file: a regular file of at most
/// [`MAX_FILE_BYTES`], in UTF-8.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Non-blocking, so that opening a FIFO returns at once (and is refused
    // below) instead of waiting for a writer; a regular file ignores it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    let file_type = meta.file_type();
    if !file_type.is_file() {
        let kind = if file_type.is_dir() {
            "a directory"
        } else if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_char_device() {
            "a character device"
        } else if file_type.is_block_device() {
            "a block device"
        } else if file_type.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(ConfigError::NotAFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    let too_large = || ConfigError::TooLarge {
        path: path.to_path_buf(),
        limit: MAX_FILE_BYTES,
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    // The file may grow after the check: never read more than the limit.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|error| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({error})"),
        ))
    })
}

/// Reads and validates configuration text (as if it were the only file),
/// with the sinks' sections `sinks`.
pub fn load_str(text: &str, sinks: &[SinkOptions]) -> Result<LoadedConfig, ConfigError> {
    let mut raw = RawConfig::builtin(sinks);
    raw.read_str(text, "<string>")?;
    finish(&raw, sinks)
}

fn finish(raw: &RawConfig, sinks: &[SinkOptions]) -> Result<LoadedConfig, ConfigError> {
    let (config, warnings) = build::build(raw, sinks)?;
    Ok(LoadedConfig { config, warnings })
}

/// `*.conf` files directly in `dir`, sorted by name (the original's glob
/// was unsorted; sorted makes "later wins" predictable).
fn conf_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.extension().is_some_and(|ext| ext == "conf") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Checks that `dir` can be listed and written (a probe file is created and
/// removed), as the original did for src-dir before starting.
pub fn check_dir_access(dir: &Path, section: &str, option: &str) -> Result<(), ConfigError> {
    let error = |source| ConfigError::Access {
        section: section.to_owned(),
        option: option.to_owned(),
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::read_dir(dir).map_err(error)?;
    let probe = dir.join(".read_write_check");
    std::fs::write(&probe, b"").map_err(error)?;
    std::fs::remove_file(&probe).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_defaults_are_valid_and_round_trip() {
        let defaults = Config::defaults();
        let again = load_str(&defaults.to_ini(), &[]).expect("defaults re-read");
        assert_eq!(again.config, defaults);
        assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    }

    #[test]
    fn seconds_print_exactly_and_parse_back() {
        for text in [
            "0",
            "0.1",
            "1.8",
            "0.3",
            "2.675",
            "0.000000001",
            "0.123456789",
            "86400.5",
        ] {
            let secs: f64 = text.parse().expect("literal");
            let d = std::time::Duration::from_secs_f64(secs);
            let printed = format_seconds(d);
            let back = std::time::Duration::from_secs_f64(printed.parse().expect("printed"));
            assert_eq!(back, d, "{text} printed as {printed}");
        }
        assert_eq!(
            format_seconds(std::time::Duration::from_secs_f64(1.8)),
            "1.8"
        );
        assert_eq!(format_seconds(std::time::Duration::from_secs(10)), "10");
    }
}
