//! Atomic file writes: temp file in the target's directory, fsync, rename, fsync the directory.
//! A reader sees the old file or the new one, never a torn write.

use std::io::Write;
use std::path::Path;

use crate::error::FileError;

/// Writes `bytes` to `path` atomically (same-directory temp file, fsync, rename, directory fsync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let io = |source| FileError::Io {
        file: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".lrs-tmp-")
        .tempfile_in(&dir)
        .map_err(io)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_files() -> Result<(), FileError> {
        let dir = tempfile::tempdir().map_err(|source| FileError::Io {
            file: "tempdir".into(),
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
}
