//! The on-disk side of a pull cycle: a snapshot is assembled in
//! `tmp-dst-dir/<ts>` and appears in `dst-dir/<ts>` by one atomic rename, so
//! nothing partial is ever visible to the processing half (SPEC §3).
//!
//! Every function here blocks; the puller runs them on the blocking pool.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A filesystem step of a cycle that failed, with the path it failed on.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotIoError {
    /// Creating or emptying a directory failed.
    #[error("cannot prepare directory {path}: {source}")]
    Prepare {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Writing a reply file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The final rename failed.
    #[error("cannot move {from} to {to}: {source}")]
    Publish {
        /// The assembled snapshot.
        from: PathBuf,
        /// Where it should have appeared.
        to: PathBuf,
        /// The error (EXDEV: dst-dir and tmp-dst-dir are on different filesystems).
        source: io::Error,
    },
    /// Removing an unpublished snapshot failed.
    #[error("cannot remove {path}: {source}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The blocking task doing the work died (a bug, reported not hidden).
    #[error("filesystem task failed: {0}")]
    TaskFailed(String),
    /// Listing dst-dir for the queue check failed.
    #[error("cannot list {path}: {source}")]
    List {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Creates an empty `tmp_dst_dir/<ts>`, emptying it first if a previous run
/// left it behind.
pub fn prepare(tmp_dst_dir: &Path, ts: u64) -> Result<PathBuf, SnapshotIoError> {
    let dir = tmp_dst_dir.join(ts.to_string());
    let prepare = |source| SnapshotIoError::Prepare {
        path: dir.clone(),
        source,
    };
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(prepare(error)),
    }
    fs::create_dir_all(&dir).map_err(prepare)?;
    Ok(dir)
}

/// Removes what a previous run left in `tmp_dst_dir` (a cycle cut short by
/// a crash or `kill -9`): only the puller writes there, and nothing in it is
/// complete. Answers how many entries were removed.
pub fn clear_leftovers(tmp_dst_dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(tmp_dst_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
        removed += 1;
    }
    Ok(removed)
}

/// Creates (or empties) the file of one reply in the snapshot being
/// assembled, to be filled by [`append_reply`].
pub fn create_reply(path: &Path) -> Result<fs::File, SnapshotIoError> {
    fs::File::create(path).map_err(|source| SnapshotIoError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Appends `bytes` to a reply file made by [`create_reply`].
pub fn append_reply(file: &mut fs::File, path: &Path, bytes: &[u8]) -> Result<(), SnapshotIoError> {
    use std::io::Write;
    file.write_all(bytes)
        .map_err(|source| SnapshotIoError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Moves the assembled snapshot into `dst_dir` in one rename, re-creating
/// `dst_dir` if it was removed while running.
pub fn publish(assembled: &Path, dst_dir: &Path) -> Result<PathBuf, SnapshotIoError> {
    let name = assembled.file_name().unwrap_or_default();
    let target = dst_dir.join(name);
    let publish_error = |source| SnapshotIoError::Publish {
        from: assembled.to_path_buf(),
        to: target.clone(),
        source,
    };
    match fs::rename(assembled, &target) {
        Ok(()) => Ok(target),
        Err(error) if error.kind() == io::ErrorKind::NotFound && !dst_dir.exists() => {
            fs::create_dir_all(dst_dir).map_err(|source| SnapshotIoError::Prepare {
                path: dst_dir.to_path_buf(),
                source,
            })?;
            fs::rename(assembled, &target).map_err(publish_error)?;
            Ok(target)
        }
        Err(error) => Err(publish_error(error)),
    }
}

/// Removes a snapshot that will not be published. Errors are returned for
/// logging; a leftover is emptied by `prepare` if the same second comes again.
pub fn discard(assembled: &Path) -> Result<(), SnapshotIoError> {
    match fs::remove_dir_all(assembled) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => Err(SnapshotIoError::Remove {
            path: assembled.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

/// Number of directories waiting in `dst_dir` (0 when it does not exist: it
/// is created by the next publish).
pub fn queued(dst_dir: &Path) -> Result<usize, SnapshotIoError> {
    let entries = match fs::read_dir(dst_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(SnapshotIoError::List {
                path: dst_dir.to_path_buf(),
                source,
            });
        }
    };
    Ok(entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One whole reply into the snapshot being assembled, as a cycle
    /// writes it chunk by chunk.
    fn write_reply(dir: &Path, file_name: &str, reply: &[u8]) -> Result<(), SnapshotIoError> {
        let path = dir.join(file_name);
        let mut file = create_reply(&path)?;
        append_reply(&mut file, &path, reply)
    }

    #[test]
    fn leftovers_of_a_crashed_cycle_are_cleared() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(clear_leftovers(&tmp.path().join("missing")).ok(), Some(0));
        let partial = prepare(tmp.path(), 42).expect("prepare");
        write_reply(&partial, "a.sock_info", b"Name: HAProxy\n").expect("write");
        assert_eq!(clear_leftovers(tmp.path()).ok(), Some(1));
        assert_eq!(fs::read_dir(tmp.path()).map(|d| d.count()).ok(), Some(0));
    }

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    #[test]
    fn a_snapshot_appears_whole_by_rename() -> Result<(), SnapshotIoError> {
        let root = temp();
        let tmp = root.path().join("incoming.tmp");
        let dst = root.path().join("incoming");
        let dir = prepare(&tmp, 1700000000)?;
        write_reply(&dir, "a.sock_info", b"Name: HAProxy\n")?;
        assert_eq!(queued(&dst)?, 0);
        let published = publish(&dir, &dst)?;
        assert_eq!(published, dst.join("1700000000"));
        assert_eq!(
            fs::read(published.join("a.sock_info")).ok(),
            Some(b"Name: HAProxy\n".to_vec())
        );
        assert!(!dir.exists());
        assert_eq!(queued(&dst)?, 1);
        Ok(())
    }

    #[test]
    fn prepare_empties_a_leftover() -> Result<(), SnapshotIoError> {
        let root = temp();
        let dir = prepare(root.path(), 5)?;
        write_reply(&dir, "stale_stat", b"x")?;
        let dir = prepare(root.path(), 5)?;
        assert_eq!(fs::read_dir(&dir).map(|d| d.count()).ok(), Some(0));
        Ok(())
    }

    #[test]
    fn a_removed_dst_dir_is_recreated() -> Result<(), SnapshotIoError> {
        let root = temp();
        let dst = root.path().join("gone/incoming");
        let dir = prepare(&root.path().join("tmp"), 7)?;
        assert!(publish(&dir, &dst)?.is_dir());
        Ok(())
    }

    #[test]
    fn queue_counts_directories_only() -> Result<(), SnapshotIoError> {
        let root = temp();
        for name in ["1", "2"] {
            fs::create_dir(root.path().join(name)).map_err(|source| SnapshotIoError::Prepare {
                path: root.path().into(),
                source,
            })?;
        }
        write_reply(root.path(), "not-a-dir", b"")?;
        assert_eq!(queued(root.path())?, 2);
        Ok(())
    }

    #[test]
    fn discard_removes_and_tolerates_absence() {
        let root = temp();
        let dir = root.path().join("9");
        assert!(discard(&dir).is_ok());
        assert!(fs::create_dir(&dir).is_ok());
        assert!(discard(&dir).is_ok());
        assert!(!dir.exists());
    }
}
