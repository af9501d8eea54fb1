//! What `lrs personalize` trained each new task on, so `lrs eval` scores it only on rows it
//! never saw: `<run>/personalized/<task>.json`, one [`PersonalizeRecord`] per personalized
//! task, written next to its task file.
//!
//! A record keeps the held-out rows themselves (scored by `lrs eval --run` on its own) and a
//! short fingerprint of every training row (so `lrs eval --data FILE` can drop the rows of
//! `FILE` the task was fitted on).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{RunDir, RunError};
use crate::{Example, Split, Task};

/// One personalized task's training record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonalizeRecord {
    /// The task id.
    pub task: String,
    /// The file the rows came from.
    pub source: String,
    /// The share of the task's latest rows kept out of training (`0` when none were).
    pub holdout: f64,
    /// Rows the task was fitted on.
    pub trained_rows: usize,
    /// [`row_fingerprint`] of every training row.
    pub trained: Vec<String>,
    /// The rows kept out of training, in time order: what `lrs eval` scores.
    pub held_out: Vec<Example>,
}

impl PersonalizeRecord {
    /// The record of a task fitted on `split.train` with `split.test` held out.
    pub fn new(split: &Split, source: &Path, holdout: f64) -> Self {
        PersonalizeRecord {
            task: split.task.clone(),
            source: source.display().to_string(),
            holdout,
            trained_rows: split.train.len(),
            trained: split.train.iter().map(row_fingerprint).collect(),
            held_out: split.test.clone(),
        }
    }

    /// The rows of `rows` this task was not fitted on.
    pub fn unseen<'a>(&self, rows: &'a [Example]) -> Vec<&'a Example> {
        let trained: HashSet<&str> = self.trained.iter().map(String::as_str).collect();
        rows.iter()
            .filter(|e| !trained.contains(row_fingerprint(e).as_str()))
            .collect()
    }
}

/// A short, stable fingerprint of a row (its task, text, label and timestamp): the first 16
/// hex digits of their sha256.
pub fn row_fingerprint(e: &Example) -> String {
    let key = format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        e.task,
        e.text,
        e.label,
        e.timestamp.map(|t| t.to_string()).unwrap_or_default()
    );
    lrs_nn::files::sha256_hex(key.as_bytes())[..16].to_string()
}

/// Splits a task for personalization: its latest `⌊n · holdout⌋` rows (at least one when
/// `holdout > 0`, and never all of them) are held out, every earlier row trains. Rows are
/// ordered by timestamp, stably, as the evaluation split orders them.
pub fn holdout_split(task: &Task, holdout: f64) -> Split {
    let mut rows = task.examples().to_vec();
    rows.sort_by_key(|e| e.timestamp);
    let n = rows.len();
    let k = if holdout > 0.0 {
        ((n as f64 * holdout).floor() as usize)
            .max(1)
            .min(n.saturating_sub(1))
    } else {
        0
    };
    let test = rows.split_off(n - k);
    Split {
        task: task.name().to_string(),
        train: rows,
        test,
    }
}

impl RunDir {
    /// `personalized/`.
    pub fn personalized_dir(&self) -> std::path::PathBuf {
        self.root().join("personalized")
    }

    /// Writes `record` to `personalized/<task>.json` atomically.
    pub fn write_personalize_record(&self, record: &PersonalizeRecord) -> Result<(), RunError> {
        let dir = self.personalized_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| RunError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
        self.task_path(&record.task)?;
        self.write_json(&dir.join(format!("{}.json", record.task)), record)?;
        Ok(())
    }

    /// Every record in `personalized/`, by task: a record that does not parse is an error
    /// message for that task, not a failure of the whole read.
    pub fn personalize_records(
        &self,
    ) -> Result<BTreeMap<String, Result<PersonalizeRecord, String>>, RunError> {
        let dir = self.personalized_dir();
        let mut out = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(RunError::Invalid(format!("{}: {e}", dir.display()))),
        };
        for entry in entries {
            let path = entry
                .map_err(|e| RunError::Invalid(format!("{}: {e}", dir.display())))?
                .path();
            let Some(task) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|n| super::valid_task_id(n))
            else {
                continue;
            };
            let record = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<PersonalizeRecord>(&b).map_err(|e| e.to_string())
                })
                .map_err(|e| format!("{}: {e}", path.display()));
            out.insert(task.to_string(), record);
        }
        Ok(out)
    }

    /// The ids of every task file in `tasks/` (temp files of killed writes skipped), sorted
    /// in task order.
    pub fn task_ids(&self) -> Result<Vec<String>, RunError> {
        let dir = self.tasks_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RunError::Invalid(format!("{}: {e}", dir.display()))),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| RunError::Invalid(format!("{}: {e}", dir.display())))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".safetensors"))
                .filter(|n| super::valid_task_id(n) && !n.starts_with('.'))
            {
                ids.push(id.to_string());
            }
        }
        ids.sort_by(|a, b| crate::task_order(a, b));
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskDataset;

    fn rows(n: usize) -> Vec<Example> {
        (0..n)
            .map(|i| Example {
                task: "u".into(),
                text: format!("t{i}"),
                label: (i % 2) as f32,
                // Reverse source order: the split must sort by time.
                timestamp: Some((n - i) as i64),
            })
            .collect()
    }

    #[test]
    fn holdout_keeps_the_latest_rows_out_and_always_trains_on_one() {
        let ds = TaskDataset::from_examples(rows(10));
        let s = holdout_split(&ds.tasks()[0], 0.25);
        assert_eq!((s.train.len(), s.test.len()), (8, 2));
        assert_eq!(s.test[1].timestamp, Some(10), "the latest row is held out");
        assert!(s.train.iter().all(|e| e.timestamp < Some(9)));
        assert_eq!(holdout_split(&ds.tasks()[0], 0.0).test.len(), 0);
        assert_eq!(holdout_split(&ds.tasks()[0], 0.01).test.len(), 1);
        let one = TaskDataset::from_examples(rows(1));
        let s = holdout_split(&one.tasks()[0], 0.5);
        assert_eq!((s.train.len(), s.test.len()), (1, 0));
    }

    #[test]
    fn a_record_knows_which_rows_were_trained_on() {
        let ds = TaskDataset::from_examples(rows(6));
        let split = holdout_split(&ds.tasks()[0], 0.5);
        let record = PersonalizeRecord::new(&split, Path::new("new.jsonl"), 0.5);
        assert_eq!(record.trained_rows, 3);
        let all = rows(6);
        let unseen: Vec<&str> = record
            .unseen(&all)
            .iter()
            .map(|e| e.text.as_str())
            .collect();
        let held: Vec<&str> = split.test.iter().map(|e| e.text.as_str()).collect();
        let mut unseen_sorted = unseen.clone();
        unseen_sorted.sort();
        let mut held_sorted = held.clone();
        held_sorted.sort();
        assert_eq!(unseen_sorted, held_sorted);
        let mut changed = all[0].clone();
        changed.label = 1.0 - changed.label;
        assert_ne!(row_fingerprint(&changed), row_fingerprint(&all[0]));
    }
}
