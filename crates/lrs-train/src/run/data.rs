//! The run's data: load the configured source, split each task by the evaluation protocol
//! (DESIGN.md §4) and keep the tasks whose test set holds both labels.

use std::path::PathBuf;

use crate::trainer::{DataConfig, DataSource};
use crate::{
    load_csv, load_jsonl, load_movielens, split_dataset, with_both_test_labels, DataError,
    LoadReport, Split, SplitConfig,
};

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
            let loaded = match path.extension().and_then(|e| e.to_str()) {
                Some("csv") => load_csv(&path)?,
                _ => load_jsonl(&path)?,
            };
            (loaded.dataset, path, vec![loaded.report])
        }
    };
    let all = split_dataset(&dataset, &SplitConfig::new(cfg.shots, cfg.split_seed));
    let mut splits: Vec<Split> = with_both_test_labels(&all).cloned().collect();
    if cfg.max_tasks > 0 {
        splits.truncate(cfg.max_tasks);
    }
    if splits.is_empty() {
        return Err(DataError::Invalid {
            reason: format!(
                "{}: no task has both labels in its test rows",
                source.display()
            ),
        });
    }
    Ok(RunData {
        splits,
        source,
        reports,
        tasks_total: dataset.len(),
    })
}
