//! The raw layer: INI text → sections of uninterpolated strings, merged the
//! way Python's `ConfigParser.read()` merges several files.
//!
//! rust-ini does the lexing; on top of it this module adds what ConfigParser
//! does and rust-ini does not: option names are lower-cased, `[DEFAULT]` is
//! kept apart (its keys are inherited by every section), the built-in
//! defaults are loaded first as section values (the original's
//! `read_dict(DEFAULT_OPTIONS)`), a file may not repeat a section or an
//! option (strict mode), and later files override earlier ones key by key.

use indexmap::IndexMap;
use ini::{Ini, ParseOption};

use super::error::ConfigError;
use super::section::SinkOptions;

/// Name of the section whose keys every other section inherits.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// The original's `DEFAULT_OPTIONS` plus the options SPEC §2 adds defaults
/// for. These are section values: a user's `[DEFAULT]` fills only keys that
/// a section has no value for, exactly as with the original.
pub const BUILTIN_DEFAULTS: &[(&str, &[(&str, &str)])] = &[
    (
        DEFAULT_SECTION,
        &[
            ("retries", "2"),
            ("timeout", "1"),
            ("interval", "2"),
            ("loglevel", "info"),
        ],
    ),
    ("paths", &[("base-dir", "/var/lib/haproxystats")]),
    (
        "pull",
        &[
            ("socket-dir", "/run/haproxy"),
            ("retries", "1"),
            ("timeout", "0.1"),
            ("interval", "0.5"),
            ("pull-timeout", "2"),
            ("pull-interval", "10"),
            ("buffer-limit", "6291456"),
            ("dst-dir", "/var/lib/haproxystats/incoming"),
            ("tmp-dst-dir", "/var/lib/haproxystats/incoming.tmp"),
            ("workers", "8"),
            ("queue-size", "360"),
            ("master-worker-limit", "256"),
        ],
    ),
    (
        "process",
        &[
            ("workers", "4"),
            ("src-dir", "/var/lib/haproxystats/incoming"),
            ("aggr-server-metrics", "false"),
            ("per-process-metrics", "false"),
            ("calculate-percentages", "false"),
            ("liveness-check-interval", "10"),
            ("local", "true"),
        ],
    ),
    (
        "graphite",
        &[
            ("enabled", "true"),
            ("server", "127.0.0.1"),
            ("port", "3002"),
            ("retries", "3"),
            ("interval", "1.8"),
            ("connect-timeout", "1.0"),
            ("write-timeout", "1.0"),
            ("delay", "10"),
            ("backoff", "2"),
            ("namespace", "loadbalancers"),
            ("prefix-hostname", "true"),
            ("fqdn", "true"),
            ("queue-size", "1000000"),
            ("replay-bytes", "16777216"),
        ],
    ),
    // Used only when the user declares [kafka] (it is off otherwise).
    (
        "kafka",
        &[
            ("brokers", ""),
            ("topic", "haproxystats.metrics"),
            ("format", "graphite"),
            ("key", ""),
            ("message-max-bytes", "1000000"),
            ("compression", "zstd"),
            ("queue-size", "1000000"),
            ("message-timeout", "300"),
            ("snapshots-topic", ""),
            ("cluster", "default"),
            ("lb-name", ""),
            ("snapshot-fields", "engine"),
            ("snapshot-compression", "lz4"),
        ],
    ),
];

/// The built-in defaults of one section, in their order.
pub fn builtin_section(section: &str) -> impl Iterator<Item = (&'static str, &'static str)> {
    BUILTIN_DEFAULTS
        .iter()
        .filter(move |(name, _)| *name == section)
        .flat_map(|(_, options)| options.iter().copied())
}

/// One section's options, in the order they were first set.
pub type Options = IndexMap<String, String>;

/// Every section read so far, plus which options the user set himself (the
/// built-in defaults are not the user's and are never warned about).
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    /// `[DEFAULT]`.
    pub defaults: Options,
    /// Every other section, in the order first seen.
    pub sections: IndexMap<String, Options>,
    /// Sections that appeared in a file, with the options set there.
    pub user: IndexMap<String, Options>,
}

impl RawConfig {
    /// The built-in defaults only, with those of the sinks' own sections
    /// in `sinks`: what runs without any file.
    pub fn builtin(sinks: &[SinkOptions]) -> Self {
        let mut raw = RawConfig::default();
        for (section, options) in BUILTIN_DEFAULTS {
            let target = if *section == DEFAULT_SECTION {
                &mut raw.defaults
            } else {
                raw.sections.entry((*section).to_owned()).or_default()
            };
            for (key, value) in *options {
                target.insert((*key).to_owned(), (*value).to_owned());
            }
        }
        for sink in sinks {
            let SinkOptions::Own(section) = sink else {
                continue;
            };
            for option in section.options() {
                if let Some(default) = option.default {
                    raw.sections
                        .entry(section.name().to_owned())
                        .or_default()
                        .insert(option.name.to_owned(), default.to_owned());
                }
            }
        }
        raw
    }

    /// Reads one file's text over what is there (`origin` names it in errors).
    pub fn read_str(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let text = blank_comment_lines(text);
        check_lines(&text).map_err(|(line, reason)| ConfigError::Syntax {
            path: origin.to_owned(),
            line,
            reason,
        })?;
        let ini = Ini::load_from_str_opt(&text, parse_options()).map_err(|error| {
            // rust-ini's messages are Rust debug text ("expecting
            // \"[Some(']')]\" but found EOF."); `check_lines` refuses what
            // leads there first, this is the backstop.
            ConfigError::Syntax {
                path: origin.to_owned(),
                line: error.line,
                reason: if error.msg.starts_with("expecting") {
                    "unexpected end of file".to_owned()
                } else {
                    error.msg.to_string()
                },
            }
        })?;
        let mut seen_sections: Vec<&str> = Vec::new();
        for (section, properties) in ini.iter() {
            let Some(section) = section else {
                if let Some((key, _)) = properties.iter().next() {
                    return Err(ConfigError::NoSection {
                        path: origin.to_owned(),
                        option: key.to_owned(),
                    });
                }
                continue;
            };
            if seen_sections.contains(&section) {
                return Err(ConfigError::Duplicate {
                    path: origin.to_owned(),
                    what: format!("[{section}]"),
                });
            }
            seen_sections.push(section);
            let mut in_this_file: Vec<String> = Vec::new();
            for (key, value) in properties.iter() {
                let key = key.trim().to_lowercase();
                if in_this_file.contains(&key) {
                    return Err(ConfigError::Duplicate {
                        path: origin.to_owned(),
                        what: format!("[{section}] {key}"),
                    });
                }
                in_this_file.push(key.clone());
                self.set(section, &key, value);
            }
            // An empty section still exists ([local-store] alone enables it).
            self.user.entry(section.to_owned()).or_default();
            if section != DEFAULT_SECTION {
                self.sections.entry(section.to_owned()).or_default();
            }
        }
        Ok(())
    }

    fn set(&mut self, section: &str, key: &str, value: &str) {
        let target = if section == DEFAULT_SECTION {
            &mut self.defaults
        } else {
            self.sections.entry(section.to_owned()).or_default()
        };
        target.insert(key.to_owned(), value.to_owned());
        self.user
            .entry(section.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
    }

    /// The raw value of `key` as `section` sees it: its own, else `[DEFAULT]`'s.
    /// `None` also when the section does not exist.
    pub fn raw_get(&self, section: &str, key: &str) -> Option<&str> {
        if section == DEFAULT_SECTION {
            return self.defaults.get(key).map(String::as_str);
        }
        self.sections
            .get(section)?
            .get(key)
            .or_else(|| self.defaults.get(key))
            .map(String::as_str)
    }

    /// Whether the section exists (built in or read from a file).
    pub fn has_section(&self, section: &str) -> bool {
        section == DEFAULT_SECTION || self.sections.contains_key(section)
    }

    /// Whether the user's files declared the section.
    pub fn user_declared(&self, section: &str) -> bool {
        self.user.contains_key(section)
    }

    /// The options the user set in `section` itself (not inherited).
    pub fn user_options(&self, section: &str) -> impl Iterator<Item = (&str, &str)> {
        self.user
            .get(section)
            .into_iter()
            .flat_map(|options| options.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// ConfigParser treats a line whose first non-blank character is `#` or `;`
/// as a comment wherever it is, even indented; rust-ini refuses indented
/// ones. Blanking them (rather than deleting) keeps line numbers right.
fn blank_comment_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            if line.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Refuses, with its 1-based line number, a line that is neither blank, a
/// `[section]` header, an `option = value` (or `option: value`) line nor an
/// indented continuation line, as ConfigParser does. rust-ini would read
/// such a line on as part of a name up to the next `=` or `]`, and report
/// the end of the file instead.
fn check_lines(text: &str) -> Result<(), (usize, String)> {
    for (n, line) in text.lines().enumerate() {
        let bad = |reason: String| Err((n + 1, reason));
        if line.trim().is_empty() || line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim_end();
        if let Some(header) = line.strip_prefix('[') {
            match header.find(']') {
                None => return bad(format!("section header '{line}' is not closed with ']'")),
                Some(0) => return bad("empty section name '[]'".to_owned()),
                Some(_) => continue,
            }
        }
        match line.find(['=', ':']) {
            None => {
                return bad(format!(
                    "'{line}' is neither a [section] header nor an 'option = value' line"
                ));
            }
            Some(at) if line.get(..at).is_none_or(|key| key.trim().is_empty()) => {
                return bad(format!("'{line}' has no option name before '='"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// As ConfigParser: no quoting, no escapes (a group regex keeps its `\d`),
/// indented lines continue the previous value.
fn parse_options() -> ParseOption {
    ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: true,
        enabled_preserve_key_leading_whitespace: false,
    }
}
