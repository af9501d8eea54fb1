//! What a load did: rows read, rows kept, and the rows rejected with their line and reason.
//! Loaders never drop a row silently; a caller decides whether a non-clean report is fatal.

use std::fmt;
use std::path::PathBuf;

use crate::{DataError, TaskDataset};

/// How many rejected rows a [`LoadReport`] keeps with their reasons; the rest are only counted
/// (in [`LoadReport::malformed_total`]), so a badly broken file cannot blow up memory.
pub const MAX_REPORTED_MALFORMED: usize = 100;

/// The account of one file's load.
///
/// `rows == loaded + malformed_total` always holds; blank lines and header lines are not rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The file read.
    pub path: PathBuf,
    /// Data rows read.
    pub rows: usize,
    /// Rows turned into examples (or items, for a MovieLens item file).
    pub loaded: usize,
    /// Rows rejected, all of them.
    pub malformed_total: usize,
    /// The first [`MAX_REPORTED_MALFORMED`] rejected rows: (1-based line, reason).
    pub malformed: Vec<(usize, String)>,
}

impl LoadReport {
    /// An empty report for `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LoadReport {
            path: path.into(),
            rows: 0,
            loaded: 0,
            malformed_total: 0,
            malformed: Vec::new(),
        }
    }

    /// Whether every row was loaded.
    pub fn is_clean(&self) -> bool {
        self.malformed_total == 0
    }

    /// Counts one row that was loaded.
    pub(crate) fn accept(&mut self) {
        self.rows += 1;
        self.loaded += 1;
    }

    /// Counts one rejected row, keeping its reason while under the cap.
    pub(crate) fn reject(&mut self, line: usize, reason: impl Into<String>) {
        self.rows += 1;
        self.malformed_total += 1;
        if self.malformed.len() < MAX_REPORTED_MALFORMED {
            self.malformed.push((line, reason.into()));
        }
    }

    /// Fails with [`DataError::NoValidRows`] when nothing was loaded.
    pub(crate) fn require_rows(&self) -> Result<(), DataError> {
        if self.loaded > 0 {
            return Ok(());
        }
        Err(DataError::NoValidRows {
            path: self.path.clone(),
            rows: self.rows,
            malformed: self.malformed_total,
            first: self.malformed.first().cloned(),
        })
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} rows, {} loaded, {} malformed",
            self.path.display(),
            self.rows,
            self.loaded,
            self.malformed_total
        )?;
        for (line, reason) in self.malformed.iter().take(5) {
            write!(f, "\n  line {line}: {reason}")?;
        }
        if self.malformed_total > 5 {
            write!(f, "\n  … and {} more", self.malformed_total - 5)?;
        }
        Ok(())
    }
}

/// A dataset together with the report of the load that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The examples, grouped by task.
    pub dataset: TaskDataset,
    /// Rows read, kept and rejected.
    pub report: LoadReport,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_capped_but_all_rejects_counted() {
        let mut r = LoadReport::new("f");
        for i in 0..(MAX_REPORTED_MALFORMED + 7) {
            r.reject(i + 1, "bad");
        }
        r.accept();
        assert_eq!(r.malformed.len(), MAX_REPORTED_MALFORMED);
        assert_eq!(r.malformed_total, MAX_REPORTED_MALFORMED + 7);
        assert_eq!(r.rows, r.loaded + r.malformed_total);
        assert!(!r.is_clean());
        assert!(r.to_string().contains("and 102 more"));
    }

    #[test]
    fn no_rows_is_an_error_naming_the_first_reject() {
        let mut r = LoadReport::new("data.jsonl");
        r.reject(3, "missing field `label`");
        let err = r.require_rows().unwrap_err().to_string();
        assert!(err.contains("data.jsonl"), "{err}");
        assert!(err.contains("line 3: missing field `label`"), "{err}");
    }
}
