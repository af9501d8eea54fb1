//! [`StagedDir`]: an output directory written in a hidden temp directory beside its target and
//! renamed into place only when complete, so a failed or killed export leaves no half-written
//! directory under the target's name (the temp directory is removed on drop).

use std::path::{Path, PathBuf};

use crate::error::FileError;
use crate::files::atomic::{write_atomic, TEMP_PREFIX};
use crate::{NnError, Result};

/// A directory being written: files go into [`Self::path`], [`Self::commit`] renames it to the
/// target.
#[derive(Debug)]
pub struct StagedDir {
    tmp: tempfile::TempDir,
    target: PathBuf,
}

fn io(file: &Path) -> impl Fn(std::io::Error) -> NnError + '_ {
    move |source| {
        NnError::File(FileError::Io {
            file: file.to_path_buf(),
            source,
        })
    }
}

/// Refuses a `target` that already exists (file, directory or link).
pub fn refuse_existing(target: &Path) -> Result<()> {
    if std::fs::symlink_metadata(target).is_ok() {
        return Err(NnError::Invalid(format!(
            "{} already exists; choose a new output path or remove it first",
            target.display()
        )));
    }
    Ok(())
}

impl StagedDir {
    /// A fresh hidden directory `.lrs-tmp-*` in `target`'s parent (created if missing);
    /// refuses a `target` that already exists.
    pub fn new(target: &Path) -> Result<Self> {
        refuse_existing(target)?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir_in(&parent)
            .map_err(io(&parent))?;
        Ok(Self {
            tmp,
            target: target.to_path_buf(),
        })
    }

    /// The staging directory.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes `bytes` to `name` (a relative path; parents created) inside the staging directory.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.tmp.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        write_atomic(&path, bytes)?;
        Ok(path)
    }

    /// Copies the file `from` (links followed) to `name` inside the staging directory.
    pub fn copy(&self, from: &Path, name: &str) -> Result<()> {
        let bytes = std::fs::read(from).map_err(io(from))?;
        self.write(name, &bytes).map(|_| ())
    }

    /// Renames the staging directory to the target (refused if the target appeared meanwhile)
    /// and makes the rename durable; returns the target.
    pub fn commit(self) -> Result<PathBuf> {
        refuse_existing(&self.target)?;
        let staged = self.tmp.keep();
        if let Err(e) = std::fs::rename(&staged, &self.target) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(io(&self.target)(e));
        }
        #[cfg(unix)]
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io(parent))?;
        }
        Ok(self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_drop_leaves_nothing() -> Result<()> {
        let root = tempfile::tempdir().map_err(io(Path::new("tempdir")))?;
        let target = root.path().join("out");
        let staged = StagedDir::new(&target)?;
        staged.write("a/b.json", b"{}")?;
        assert!(!target.exists());
        let done = staged.commit()?;
        assert_eq!(
            std::fs::read(done.join("a/b.json")).ok(),
            Some(b"{}".to_vec())
        );
        assert!(
            StagedDir::new(&target).is_err(),
            "an existing target is refused"
        );

        let other = root.path().join("other");
        let staged = StagedDir::new(&other)?;
        staged.write("x", b"1")?;
        drop(staged);
        let names: Vec<_> = std::fs::read_dir(root.path())
            .map_err(io(root.path()))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out")]);
        Ok(())
    }
}
