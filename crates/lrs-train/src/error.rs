//! The crate's error type: fatal problems that stop a load, each naming the file (and the
//! line, where there is one) at fault. Bad rows are not errors: loaders count them in a
//! [`LoadReport`](crate::LoadReport) and go on.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Fatal errors from the data loaders.
///
/// A malformed row never produces one of these; only a problem that leaves nothing sensible to
/// load does (a missing or unreadable file, a header without a required column, a file with no
/// valid row at all).
#[derive(Debug, Error)]
pub enum DataError {
    /// A file could not be opened or read.
    #[error("{}{}: {source}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Io {
        /// The file.
        path: PathBuf,
        /// The 1-based line being read when the error happened, if reading had started.
        line: Option<usize>,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The header (or the first line, which should be a header) lacks a required column.
    #[error("{}:{line}: header lacks required column `{column}` (found: {found})", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the header.
        line: usize,
        /// The missing column's name.
        column: String,
        /// The header's columns, comma-separated, for the message.
        found: String,
    },
    /// The file is empty, so it has no header.
    #[error("{}: empty file, expected a header line", path.display())]
    MissingHeader {
        /// The file.
        path: PathBuf,
    },
    /// Every row was malformed (or there were none).
    #[error(
        "{}: no valid rows ({rows} rows read, {malformed} malformed){}",
        path.display(),
        first.as_ref().map(|(l, r)| format!("; first at line {l}: {r}")).unwrap_or_default()
    )]
    NoValidRows {
        /// The file.
        path: PathBuf,
        /// Rows read (blank lines and the header excluded).
        rows: usize,
        /// Rows rejected.
        malformed: usize,
        /// The first rejected row's line and reason, if any.
        first: Option<(usize, String)>,
    },
    /// Some rows were rejected and the caller asked for a clean load (`--strict`).
    #[error(
        "{}: {rejected} of {rows} rows rejected (--strict refuses any){}",
        path.display(),
        first.as_ref().map(|(l, r)| format!("; first at line {l}: {r}")).unwrap_or_default()
    )]
    RejectedRows {
        /// The file.
        path: PathBuf,
        /// Rows read.
        rows: usize,
        /// Rows rejected.
        rejected: usize,
        /// The first rejected row's line and reason.
        first: Option<(usize, String)>,
    },
    /// A directory holds neither MovieLens-100k layout.
    #[error(
        "{}: no MovieLens-100k files (expected u.data + u.item, or ml-100k.inter + ml-100k.item; \
         run scripts/seed-movielens.sh)",
        dir.display()
    )]
    UnknownLayout {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The data configuration cannot be served (missing directory, no usable task, …).
    #[error("{reason}")]
    Invalid {
        /// What is wrong and how to fix it.
        reason: String,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, line: Option<usize>, source: io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            line,
            source,
        }
    }
}
