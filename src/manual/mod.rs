//! The manual the Debian package ships: man pages and shell completions,
//! generated from the program itself, so that they follow the CLI definition
//! and the configuration defaults without being edited by hand.
//!
//! - `man`: `haproxystats(1)` (clap_mangen plus the configuration reference)
//!   and a page per subcommand.
//! - `options`: what every configuration option means; its default comes
//!   from the configuration `-p` prints.
//! - `differences`: the README's "Where we differ from the original".
//!
//! `haproxystats --generate-assets DIR` writes them all (contrib/deb/build.sh
//! runs it on the release binary before `cargo deb`); it is not part of the
//! CLI definition, so the completions do not offer it.

mod differences;
mod man;
pub mod options;

pub use man::main_page_with;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The packaging hook: `haproxystats --generate-assets DIR`.
pub const GENERATE_FLAG: &str = "--generate-assets";

/// Why the manual could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// The configuration used to render the defaults is refused: a bug in
    /// `options.rs`, caught by its tests.
    #[error("documenting the configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// Rendering into memory failed.
    #[error("rendering the manual: {0}")]
    Render(#[from] std::io::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One generated file, its path relative to the output directory.
#[derive(Debug)]
pub struct Asset {
    /// `man/haproxystats.1`, `completions/haproxystats.bash`, ...
    pub path: PathBuf,
    /// The file's contents.
    pub contents: Vec<u8>,
}

/// The output directory when argv is `haproxystats --generate-assets DIR`.
pub fn requested_dir(args: &[OsString]) -> Option<&Path> {
    match args {
        [_, flag, dir] if flag == GENERATE_FLAG => Some(Path::new(dir)),
        _ => None,
    }
}

/// Every man page and completion script.
pub fn assets() -> Result<Vec<Asset>, ManualError> {
    let mut assets: Vec<Asset> = man::pages()?
        .into_iter()
        .map(|(name, contents)| Asset {
            path: Path::new("man").join(name),
            contents,
        })
        .collect();
    for (shell, file) in [
        (Shell::Bash, "haproxystats.bash"),
        (Shell::Zsh, "_haproxystats"),
        (Shell::Fish, "haproxystats.fish"),
    ] {
        let mut contents = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "haproxystats", &mut contents);
        assets.push(Asset {
            path: Path::new("completions").join(file),
            contents,
        });
    }
    Ok(assets)
}

/// Writes every asset under `dir` and returns the paths written.
pub fn write_assets(dir: &Path) -> Result<Vec<PathBuf>, ManualError> {
    let mut written = Vec::new();
    for asset in assets()? {
        let path = dir.join(&asset.path);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&path, &asset.contents))
            .map_err(|source| ManualError::Write {
                path: path.clone(),
                source,
            })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_recognised_only_alone_with_its_directory() {
        let args = |list: &[&str]| -> Vec<OsString> { list.iter().map(OsString::from).collect() };
        assert_eq!(
            requested_dir(&args(&["haproxystats", GENERATE_FLAG, "out"])),
            Some(Path::new("out"))
        );
        assert_eq!(requested_dir(&args(&["haproxystats", GENERATE_FLAG])), None);
        assert_eq!(requested_dir(&args(&["haproxystats", "-f", "x"])), None);
    }

    #[test]
    fn completions_offer_the_subcommands_and_options_but_not_the_hook() {
        let assets = match assets() {
            Ok(assets) => assets,
            Err(error) => panic!("{error}"),
        };
        let completions: Vec<&Asset> = assets
            .iter()
            .filter(|a| a.path.starts_with("completions"))
            .collect();
        assert_eq!(completions.len(), 3);
        for asset in completions {
            let text = String::from_utf8_lossy(&asset.contents);
            // fish names long options without their dashes.
            for word in ["replay", "check", "print-conf", "queue-warning"] {
                assert!(text.contains(word), "{}: no {word}", asset.path.display());
            }
            assert!(!text.contains(GENERATE_FLAG), "{}", asset.path.display());
        }
    }

    #[test]
    fn write_assets_writes_every_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let written = write_assets(dir.path()).expect("assets written");
        assert!(written.len() >= 9, "{written:?}");
        for path in written {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            assert!(size > 100, "{} is {size} bytes", path.display());
        }
    }
}
