//! [`LocalDir`]: task files `<task_id>.safetensors` in one directory (a single machine, or a
//! shared file system).
//!
//! A version is the file's `(size, inode, mtime)`: uploads replace files by rename, so a new
//! version always has a new inode. Reads take the version from the open handle, so it always
//! describes the bytes read.

use std::io::Read;
use std::path::{Path, PathBuf};

use lrs_nn::NnError;

use super::{Fetched, TaskStore, Version};
use crate::error::{Result, ServeError};
use crate::task_id::TaskId;

/// A directory of task files.
#[derive(Debug, Clone)]
pub struct LocalDir {
    dir: PathBuf,
}

fn io(file: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Io {
        file: file.to_path_buf(),
        source,
    }
}

/// The version of a file from its metadata.
fn version_of(meta: &std::fs::Metadata) -> Version {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Version {
        len: meta.len(),
        tag: format!("{inode}:{modified}"),
    }
}

impl LocalDir {
    /// The directory `dir` (created if missing), with the temporary files of writes a crash
    /// interrupted removed.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        lrs_nn::files::atomic::remove_stale_temps(dir, lrs_nn::files::atomic::STALE_TEMP_AGE)
            .map_err(|e| ServeError::Model(NnError::File(e)))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl TaskStore for LocalDir {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn path(&self, id: &TaskId) -> PathBuf {
        self.dir.join(id.file_name())
    }

    fn head(&self, id: &TaskId) -> Result<Option<Version>> {
        let path = self.path(id);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(version_of(&m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn read(&self, id: &TaskId, max_bytes: u64) -> Result<Option<Fetched>> {
        let path = self.path(id);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let meta = file.metadata().map_err(io(&path))?;
        if !meta.is_file() {
            return Ok(None);
        }
        let version = version_of(&meta);
        let mut bytes = Vec::new();
        if version.len <= max_bytes {
            bytes.reserve(usize::try_from(version.len).unwrap_or(0));
            // Never past the limit, even if the file grew since its metadata was read.
            (&mut file)
                .take(max_bytes.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(io(&path))?;
        }
        Ok(Some(Fetched { version, bytes }))
    }

    fn write(&self, id: &TaskId, bytes: &[u8]) -> Result<Version> {
        let path = self.path(id);
        lrs_nn::files::atomic::write_atomic(&path, bytes)
            .map_err(|e| ServeError::Model(NnError::File(e)))?;
        Ok(version_of(&std::fs::metadata(&path).map_err(io(&path))?))
    }

    fn delete(&self, id: &TaskId) -> Result<bool> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn list(&self) -> Result<Vec<(TaskId, u64)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let Some(id) = entry.file_name().to_str().and_then(TaskId::from_file_name) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                out.push((id, meta.len()));
            }
        }
        Ok(out)
    }

    fn check(&self) -> Result<()> {
        let meta = std::fs::metadata(&self.dir).map_err(io(&self.dir))?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(ServeError::Config(format!(
                "{}: the task registry is not a directory",
                self.dir.display()
            )))
        }
    }

    fn remote(&self) -> bool {
        false
    }
}
