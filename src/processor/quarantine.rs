//! Where unprocessable snapshots go: `<src-dir>.failed/<ts>`, with the
//! reason beside it in `<ts>.reason` — never deleted, never retried forever
//! (SPEC §4; the original deleted them).

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

/// Moves `snapshot` into the quarantine of `src_dir` and writes `reason`
/// next to it; returns where it went. A name already taken there gets a
/// `.N` suffix, so nothing is overwritten.
pub fn quarantine(src_dir: &Path, snapshot: &Path, reason: &str) -> io::Result<PathBuf> {
    let failed = failed_dir(src_dir);
    fs::create_dir_all(&failed)?;
    let name = snapshot.file_name().unwrap_or_default().to_os_string();
    let mut target = failed.join(&name);
    let mut n = 1;
    while target.exists() {
        let mut numbered = name.clone();
        numbered.push(format!(".{n}"));
        target = failed.join(numbered);
        n += 1;
    }
    fs::rename(snapshot, &target)?;
    let mut reason_file = target.clone().into_os_string();
    reason_file.push(".reason");
    fs::write(PathBuf::from(reason_file), format!("{reason}\n"))?;
    Ok(target)
}

/// Snapshot directories waiting in `src_dir`, oldest first: names that are
/// epoch timestamps in numeric order, then any other directory by name (the
/// engine rejects those and they are quarantined, not left forever).
pub fn pending(src_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found: Vec<(Option<u64>, String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(src_dir)? {
        let entry = entry?;
        if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
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
    Ok(found.into_iter().map(|(_, _, path)| path).collect())
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
}
