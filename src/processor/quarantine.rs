//! Where unprocessable snapshots go: `<src-dir>.failed/<ts>`, with the
//! reason beside it in `<ts>.reason` — never deleted, never retried forever
//! (SPEC §4; the original deleted them). The reason is written first and the
//! snapshot moved in one rename, so a crash never leaves half a quarantine
//! entry nor half a snapshot. Symbolic links in src-dir are never followed:
//! the link itself is quarantined.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The quarantine directory of `src_dir`: a sibling named `<src-dir>.failed`,
/// so that moving a snapshot there is a rename on the same filesystem.
pub fn failed_dir(src_dir: &Path) -> PathBuf {
    let mut name = src_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".failed");
    src_dir.with_file_name(name)
}

/// Moves `snapshot` (a directory, or a symbolic link itself) into the
/// quarantine of `src_dir` with `reason` next to it; returns where it went.
/// A name already taken there gets a `.N` suffix, so nothing is overwritten.
pub fn quarantine(src_dir: &Path, snapshot: &Path, reason: &str) -> io::Result<PathBuf> {
    let failed = failed_dir(src_dir);
    fs::create_dir_all(&failed)?;
    let name = snapshot.file_name().unwrap_or_default().to_os_string();
    let mut target = failed.join(&name);
    let mut n = 1;
    while target.symlink_metadata().is_ok() || with_suffix(&target, ".reason").exists() {
        let mut numbered = name.clone();
        numbered.push(format!(".{n}"));
        target = failed.join(numbered);
        n += 1;
    }
    // The reason first, complete (temp file + rename), then the snapshot in
    // one rename: a crash in between leaves a reason without a snapshot,
    // which is harmless (the snapshot is quarantined again after restart).
    let reason_file = with_suffix(&target, ".reason");
    let partial = with_suffix(&target, ".reason.tmp");
    fs::write(&partial, format!("{reason}\n"))?;
    fs::rename(&partial, &reason_file)?;
    fs::rename(snapshot, &target)?;
    Ok(target)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// What waits in src-dir.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// Snapshot directories, oldest first.
    pub snapshots: Vec<PathBuf>,
    /// Symbolic links, never followed (a link to a directory elsewhere
    /// would make us process, then delete, what is not ours).
    pub links: Vec<PathBuf>,
}

/// Snapshot directories waiting in `src_dir`, oldest first: names that are
/// epoch timestamps in numeric order, then any other directory by name (the
/// engine rejects those and they are quarantined, not left forever).
pub fn pending(src_dir: &Path) -> io::Result<Pending> {
    let mut found: Vec<(Option<u64>, String, PathBuf)> = Vec::new();
    let mut links = Vec::new();
    for entry in fs::read_dir(src_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            links.push(entry.path());
            continue;
        }
        if !kind.is_dir() {
            continue;
        }
        found.push((name.parse().ok(), name, entry.path()));
    }
    found.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    links.sort();
    Ok(Pending {
        snapshots: found.into_iter().map(|(_, _, path)| path).collect(),
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_failed_dir_is_a_sibling() {
        assert_eq!(
            failed_dir(Path::new("/var/lib/haproxystats/incoming")),
            PathBuf::from("/var/lib/haproxystats/incoming.failed")
        );
    }

    #[test]
    fn a_quarantined_snapshot_keeps_its_files_and_gets_a_reason() -> io::Result<()> {
        let root = temp();
        let src = root.path().join("incoming");
        let snapshot = src.join("1700000000");
        fs::create_dir_all(&snapshot)?;
        fs::write(snapshot.join("a.sock_stat"), b"garbage")?;
        let moved = quarantine(&src, &snapshot, "nothing usable")?;
        assert_eq!(moved, root.path().join("incoming.failed/1700000000"));
        assert_eq!(fs::read(moved.join("a.sock_stat"))?, b"garbage");
        assert_eq!(
            fs::read_to_string(root.path().join("incoming.failed/1700000000.reason"))?,
            "nothing usable\n"
        );
        // The same name again is kept apart, not overwritten.
        fs::create_dir_all(&snapshot)?;
        let again = quarantine(&src, &snapshot, "again")?;
        assert_eq!(again, root.path().join("incoming.failed/1700000000.1"));
        Ok(())
    }

    #[test]
    fn pending_lists_oldest_first_and_skips_files_and_hidden_dirs() -> io::Result<()> {
        let root = temp();
        for name in ["1700000010", "1700000002", "junk", ".hidden"] {
            fs::create_dir(root.path().join(name))?;
        }
        fs::write(root.path().join("1700000001"), b"a file")?;
        let names: Vec<String> = pending(root.path())?
            .snapshots
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["1700000002", "1700000010", "junk"]);
        Ok(())
    }

    #[test]
    fn symbolic_links_are_listed_apart_and_quarantined_themselves() -> io::Result<()> {
        let root = temp();
        let src = root.path().join("incoming");
        let elsewhere = root.path().join("not-ours");
        fs::create_dir_all(&src)?;
        fs::create_dir_all(&elsewhere)?;
        fs::write(elsewhere.join("keep"), b"precious")?;
        std::os::unix::fs::symlink(&elsewhere, src.join("1700000000"))?;
        let found = pending(&src)?;
        assert!(found.snapshots.is_empty());
        assert_eq!(found.links, [src.join("1700000000")]);
        let moved = quarantine(&src, &found.links[0], "a symbolic link")?;
        assert!(moved.symlink_metadata()?.file_type().is_symlink());
        assert_eq!(fs::read(elsewhere.join("keep"))?, b"precious");
        assert_eq!(pending(&src)?, Pending::default());
        Ok(())
    }

    #[test]
    fn the_reason_is_complete_before_the_snapshot_moves() -> io::Result<()> {
        let root = temp();
        let src = root.path().join("incoming");
        let snapshot = src.join("1700000000");
        fs::create_dir_all(&snapshot)?;
        // A crash once left a reason and no snapshot: kept, not overwritten.
        let failed = failed_dir(&src);
        fs::create_dir_all(&failed)?;
        fs::write(failed.join("1700000000.reason"), "earlier\n")?;
        let moved = quarantine(&src, &snapshot, "now")?;
        assert_eq!(moved, failed.join("1700000000.1"));
        assert_eq!(
            fs::read_to_string(failed.join("1700000000.reason"))?,
            "earlier\n"
        );
        assert_eq!(
            fs::read_to_string(failed.join("1700000000.1.reason"))?,
            "now\n"
        );
        let leftovers: Vec<_> = fs::read_dir(&failed)?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        Ok(())
    }
}
