//! Atomic file writes for the model's files: [`lrs_core::atomic`]'s writer, with its errors as
//! [`FileError`]s. A reader sees the old file or the new one, never a torn write; a process
//! killed mid-write leaves a `.lrs-tmp-*` temp file ([`TEMP_PREFIX`]) that readers listing a
//! directory skip and [`remove_stale_temps`] deletes.

use std::path::Path;
use std::time::Duration;

pub use lrs_core::atomic::{STALE_TEMP_AGE, TEMP_PREFIX};

use crate::error::FileError;

impl From<lrs_core::atomic::IoAt> for FileError {
    fn from(e: lrs_core::atomic::IoAt) -> Self {
        FileError::Io {
            file: e.path,
            source: e.source,
        }
    }
}

/// Writes `bytes` to `path` atomically ([`lrs_core::atomic::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    Ok(lrs_core::atomic::write_atomic(path, bytes)?)
}

/// Deletes the temp files interrupted writes left in `dir`
/// ([`lrs_core::atomic::remove_stale_temps`]); returns how many.
pub fn remove_stale_temps(dir: &Path, min_age: Duration) -> Result<usize, FileError> {
    Ok(lrs_core::atomic::remove_stale_temps(dir, min_age)?)
}
