//! What a load did: rows read, rows kept, and the rows rejected with their line and reason.
//! Loaders never drop a row silently; a caller decides whether a non-clean report is fatal.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::{DataError, TaskDataset};

/// How many rejected rows a [`LoadReport`] keeps with their reasons; the rest are only counted
/// (in [`LoadReport::malformed_total`]), so a badly broken file cannot blow up memory.
pub const MAX_REPORTED_MALFORMED: usize = 100;

/// The account of one file's load.
///
/// `rows == loaded + malformed_total` always holds; blank lines and header lines are not rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Rejected rows that share one reason: how many, and the first of their lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectReason {
    /// The reason, without the parser's own position (always line 1 of a one-line row).
    pub reason: String,
    /// Rejected rows with this reason (among the [`MAX_REPORTED_MALFORMED`] itemised ones).
    pub rows: usize,
    /// Their first [`FIRST_LINES`] lines, ascending.
    pub first_lines: Vec<usize>,
}

/// How many line numbers a [`RejectReason`] lists.
pub const FIRST_LINES: usize = 5;

/// `reason` without a trailing `" at line L column C"` (serde_json's position inside the one
/// line it was given, which says nothing about the file).
fn general_reason(reason: &str) -> &str {
    let Some(at) = reason.rfind(" at line ") else {
        return reason;
    };
    let tail = &reason[at + " at line ".len()..];
    let mut parts = tail.split(" column ");
    let numeric =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    if numeric(parts.next()) && numeric(parts.next()) && parts.next().is_none() {
        &reason[..at]
    } else {
        reason
    }
}

impl LoadReport {
    /// The rejected rows grouped by reason, in order of each reason's first line.
    pub fn by_reason(&self) -> Vec<RejectReason> {
        let mut groups: Vec<RejectReason> = Vec::new();
        for (line, reason) in &self.malformed {
            let reason = general_reason(reason);
            match groups.iter_mut().find(|g| g.reason == reason) {
                Some(g) => {
                    g.rows += 1;
                    if g.first_lines.len() < FIRST_LINES {
                        g.first_lines.push(*line);
                    }
                }
                None => groups.push(RejectReason {
                    reason: reason.to_string(),
                    rows: 1,
                    first_lines: vec![*line],
                }),
            }
        }
        groups
    }

    /// Fails with [`DataError::RejectedRows`] when any row was rejected (`--strict`).
    pub fn require_clean(&self) -> Result<(), DataError> {
        match self.malformed.first() {
            None if self.malformed_total == 0 => Ok(()),
            first => Err(DataError::RejectedRows {
                path: self.path.clone(),
                rows: self.rows,
                rejected: self.malformed_total,
                first: first.map(|(l, r)| (*l, general_reason(r).to_string())),
            }),
        }
    }

    /// The report as JSON: counts, rejected rows grouped by reason, and every itemised row.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path,
            "rows": self.rows,
            "loaded": self.loaded,
            "rejected": self.malformed_total,
            "reasons": self.by_reason(),
            "rejected_rows": self.malformed.iter()
                .map(|(line, reason)| serde_json::json!({"line": line, "reason": reason}))
                .collect::<Vec<_>>(),
        })
    }

    /// A few lines for a terminal: `path: R rows read, L loaded, X rejected`, then one line
    /// per reason with its count and first line numbers.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} read, {} loaded, {} rejected",
            self.path.display(),
            count(self.rows, "row"),
            self.loaded,
            self.malformed_total
        );
        for g in self.by_reason() {
            let lines: Vec<String> = g.first_lines.iter().map(|l| l.to_string()).collect();
            let more = if g.rows > g.first_lines.len() {
                ", …"
            } else {
                ""
            };
            let noun = if g.rows == 1 { "line" } else { "lines" };
            s.push_str(&format!(
                "\n  {} × {}: {noun} {}{more}",
                g.rows,
                g.reason,
                lines.join(", ")
            ));
        }
        let itemised = self.malformed.len();
        if self.malformed_total > itemised {
            s.push_str(&format!(
                "\n  … and {} more rejected rows not itemised",
                self.malformed_total - itemised
            ));
        }
        s
    }
}

/// `n` and `noun`, plural unless `n == 1`: `count(1, "task")` is `"1 task"`, `count(3,
/// "row")` is `"3 rows"`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
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
    fn rejects_are_grouped_by_reason_without_the_parsers_position() {
        let mut r = LoadReport::new("d.jsonl");
        r.accept();
        r.reject(4, "EOF while parsing an object at line 1 column 30");
        r.reject(
            7,
            "invalid type: string \"yes\", expected f32 at line 1 column 40",
        );
        r.reject(9, "missing field `text` at line 1 column 28");
        r.reject(11, "EOF while parsing an object at line 1 column 12");
        r.reject(12, "label is not a number: \"at line 1 column 2\"");
        let g = r.by_reason();
        assert_eq!(g.len(), 4, "{g:?}");
        assert_eq!(g[0].reason, "EOF while parsing an object");
        assert_eq!((g[0].rows, g[0].first_lines.clone()), (2, vec![4, 11]));
        assert_eq!(g[2].reason, "missing field `text`");
        assert_eq!(g[3].reason, "label is not a number: \"at line 1 column 2\"");
        let s = r.summary();
        assert!(
            s.starts_with("d.jsonl: 6 rows read, 1 loaded, 5 rejected"),
            "{s}"
        );
        assert!(
            s.contains("2 × EOF while parsing an object: lines 4, 11"),
            "{s}"
        );
        assert!(s.contains("1 × missing field `text`: line 9"), "{s}");
        let j = r.to_json();
        assert_eq!(j["rejected"], 5);
        assert_eq!(j["reasons"][0]["first_lines"], serde_json::json!([4, 11]));
        assert_eq!(j["rejected_rows"][1]["line"], 7);

        let err = r.require_clean().unwrap_err().to_string();
        assert!(
            err.contains("5 of 6 rows rejected") && err.contains("line 4"),
            "{err}"
        );
        let mut clean = LoadReport::new("c.jsonl");
        clean.accept();
        assert!(clean.require_clean().is_ok());
        assert_eq!(
            (count(0, "task"), count(1, "task")),
            ("0 tasks".into(), "1 task".into())
        );
        assert_eq!(clean.summary(), "c.jsonl: 1 row read, 1 loaded, 0 rejected");
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
