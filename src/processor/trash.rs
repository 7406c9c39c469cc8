//! How a processed snapshot leaves src-dir: in one atomic rename into
//! `<src-dir>.trash/` (a sibling, so the same filesystem), and only then is
//! it deleted file by file. A crash (`kill -9`) in the middle of the delete
//! leaves a partial directory in the trash, never in src-dir, where it
//! would be processed again and overwrite right points with partial sums.
//! The trash is emptied at start.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The trash of `src_dir`: a sibling named `<src-dir>.trash`.
pub fn trash_dir(src_dir: &Path) -> PathBuf {
    let mut name = src_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".trash");
    src_dir.with_file_name(name)
}

/// Moves `snapshot` out of `src_dir` into its trash in one rename and
/// returns where it went. A name already in the trash (a delete that a
/// crash interrupted) gets a `.N` suffix.
pub fn move_to_trash(src_dir: &Path, snapshot: &Path) -> io::Result<PathBuf> {
    let trash = trash_dir(src_dir);
    fs::create_dir_all(&trash)?;
    let name = snapshot.file_name().unwrap_or_default().to_os_string();
    let mut target = trash.join(&name);
    let mut n = 1;
    while target.symlink_metadata().is_ok() {
        let mut numbered = name.clone();
        numbered.push(format!(".{n}"));
        target = trash.join(numbered);
        n += 1;
    }
    fs::rename(snapshot, &target)?;
    Ok(target)
}

/// Moves `snapshot` to the trash, then deletes it there (unless
/// [`empty_trash`], running at start, was quicker).
pub fn remove_snapshot(src_dir: &Path, snapshot: &Path) -> io::Result<()> {
    let trashed = move_to_trash(src_dir, snapshot)?;
    match fs::remove_dir_all(trashed) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Deletes whatever a crash left in the trash; answers how many entries.
pub fn empty_trash(src_dir: &Path) -> io::Result<usize> {
    let trash = trash_dir(src_dir);
    let entries = match fs::read_dir(&trash) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let deleted = if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())
        } else {
            fs::remove_file(entry.path())
        };
        match deleted {
            Ok(()) => removed += 1,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(src: &Path, name: &str) -> PathBuf {
        let dir = src.join(name);
        fs::create_dir_all(&dir).expect("snapshot dir");
        for file in ["a.sock_stat", "a.sock_info", "b.sock_stat", "b.sock_info"] {
            fs::write(dir.join(file), b"x").expect("snapshot file");
        }
        dir
    }

    #[test]
    fn the_trash_is_a_sibling() {
        assert_eq!(
            trash_dir(Path::new("/var/lib/haproxystats/incoming")),
            PathBuf::from("/var/lib/haproxystats/incoming.trash")
        );
    }

    #[test]
    fn a_snapshot_leaves_src_dir_whole_before_any_file_is_deleted() {
        let root = tempfile::tempdir().expect("tempdir");
        let src = root.path().join("incoming");
        let dir = snapshot(&src, "1700000000");
        let trashed = move_to_trash(&src, &dir).expect("move");
        // What a kill -9 right now leaves: nothing in src-dir, the whole
        // snapshot in the trash.
        assert_eq!(fs::read_dir(&src).expect("src").count(), 0);
        assert_eq!(fs::read_dir(&trashed).expect("trash").count(), 4);
    }

    #[test]
    fn a_delete_interrupted_by_a_crash_is_finished_at_start() {
        let root = tempfile::tempdir().expect("tempdir");
        let src = root.path().join("incoming");
        let dir = snapshot(&src, "1700000000");
        let trashed = move_to_trash(&src, &dir).expect("move");
        // The crash came after two files were deleted.
        fs::remove_file(trashed.join("a.sock_stat")).expect("rm");
        fs::remove_file(trashed.join("a.sock_info")).expect("rm");
        // The same name is processed and removed again before the restart.
        let again = snapshot(&src, "1700000000");
        remove_snapshot(&src, &again).expect("remove");
        assert_eq!(empty_trash(&src).expect("empty"), 1);
        assert_eq!(fs::read_dir(trash_dir(&src)).expect("trash").count(), 0);
        assert_eq!(empty_trash(&src).expect("empty again"), 0);
    }

    #[test]
    fn a_missing_trash_is_empty() {
        let root = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            empty_trash(&root.path().join("incoming")).expect("empty"),
            0
        );
    }
}
