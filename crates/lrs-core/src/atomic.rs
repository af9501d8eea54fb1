//! Atomic file writes: temp file in the target's directory, fsync, rename, fsync the directory.
//! A reader sees the old file or the new one, never a torn write. The one writer of every
//! file the project writes (data files here; shared, task, export and run files through
//! `lrs_nn::files::atomic`), so one temp-file name covers them all.
//!
//! A process killed mid-write leaves its temp file (`.lrs-tmp-*`, see [`TEMP_PREFIX`]) behind,
//! never a partial file under the target's name; readers that list a directory must skip
//! such names, and [`remove_stale_temps`] deletes them.
//!
//! The file gets the mode any other tool's new file gets: `0666` less the process umask
//! (`0644` by default), not the `0600` of a private temp file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name prefix of the temp files [`write_atomic`] creates next to their target.
pub const TEMP_PREFIX: &str = ".lrs-tmp-";

/// Age after which a [`TEMP_PREFIX`] file is taken to belong to a killed writer (a write lasts
/// well under a second; other live processes may be writing into the same directory).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(15 * 60);

/// An i/o failure of [`write_atomic`] or [`remove_stale_temps`], with the path it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct IoAt {
    /// The file or directory.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` atomically (same-directory temp file, fsync, rename, directory fsync).
/// The new file's mode follows the umask, as `std::fs::write`'s does.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoAt> {
    let io = |source| IoAt {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    // Created with 0666 so the kernel applies the umask, like any `open(O_CREAT)`.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(&dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    // The rename is durable only once the directory entry is.
    #[cfg(unix)]
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// Deletes the temp files that interrupted [`write_atomic`] calls left in `dir`: regular files
/// named `.lrs-tmp-*` last modified at least `min_age` ago (a temp file lives only while its
/// write runs, so an old one belongs to a killed process; `Duration::ZERO` is for callers that
/// are the directory's only writer). Returns how many were removed; a missing `dir` has none,
/// and a file that vanishes meanwhile is not an error.
pub fn remove_stale_temps(dir: &Path, min_age: Duration) -> Result<usize, IoAt> {
    let io = |file: &Path| {
        let path = file.to_path_buf();
        move |source| IoAt { path, source }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
        };
        // A modification time in the future (clock step) counts as age zero.
        let age = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or(Duration::ZERO);
        if !meta.is_file() || age < min_age {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_files() -> Result<(), IoAt> {
        let dir = tempfile::tempdir().map_err(|source| IoAt {
            path: "tempdir".into(),
            source,
        })?;
        let p = dir.path().join("a.safetensors");
        write_atomic(&p, b"one")?;
        write_atomic(&p, b"two")?;
        assert_eq!(std::fs::read(&p).ok(), Some(b"two".to_vec()));
        let n = std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(n, 1);
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn the_written_file_follows_the_umask_like_any_new_file() -> Result<(), IoAt> {
        use std::os::unix::fs::PermissionsExt;
        let io = |source| IoAt {
            path: "test".into(),
            source,
        };
        let dir = tempfile::tempdir().map_err(io)?;
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").map_err(io)?;
        let atomic = dir.path().join("atomic");
        write_atomic(&atomic, b"x")?;
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .map_err(io)
        };
        assert_eq!(mode(&atomic)?, mode(&plain)?);
        Ok(())
    }

    #[test]
    fn stale_temps_are_removed_and_fresh_ones_and_other_files_kept() -> Result<(), IoAt> {
        let io = |source| IoAt {
            path: "test".into(),
            source,
        };
        let dir = tempfile::tempdir().map_err(io)?;
        let keep = dir.path().join("a.safetensors");
        write_atomic(&keep, b"kept")?;
        let old = dir.path().join(format!("{TEMP_PREFIX}old"));
        let fresh = dir.path().join(format!("{TEMP_PREFIX}fresh"));
        std::fs::write(&old, b"torn").map_err(io)?;
        std::fs::write(&fresh, b"in flight").map_err(io)?;
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .and_then(|f| f.set_modified(hour_ago))
            .map_err(io)?;
        assert_eq!(remove_stale_temps(dir.path(), Duration::from_secs(60))?, 1);
        assert!(!old.exists() && fresh.exists() && keep.exists());
        assert_eq!(remove_stale_temps(dir.path(), Duration::ZERO)?, 1);
        assert!(!fresh.exists() && keep.exists());
        assert_eq!(
            remove_stale_temps(&dir.path().join("none"), Duration::ZERO)?,
            0
        );
        Ok(())
    }
}
