//! [`RunDir`]: the files of one training run.
//!
//! ```text
//! <run>/config.toml            the run's config (eval and personalize rebuild from it)
//! <run>/shared.safetensors     U, V and the shared head (docs/FORMATS.md)
//! <run>/tasks/<id>.safetensors one task file per task (f16 values)
//! <run>/metrics.jsonl          one RoundRecord per round
//! <run>/eval.jsonl             per-task test metrics of the final model
//! <run>/summary.json           the RunSummary
//! <run>/data-report.json       rows read, loaded and rejected (by reason, with lines); tasks
//!                              skipped and why
//! <run>/personalized/<id>.json what `lrs personalize` fitted a new task on and held out
//! <run>/personalize-report.json the last `lrs personalize`'s load report and row counts
//! <run>/checkpoint/            resumable state (see trainer::Trainer::save_checkpoint)
//! <run>/best-checkpoint/       the best round's state (early stopping)
//! <run>/refit/                 a refit's metrics.jsonl and checkpoint/ ([data] refit)
//! ```
//!
//! Every file is replaced atomically (`lrs_nn::files::atomic::write_atomic`), `metrics.jsonl`
//! included: a process killed at any moment leaves each file either in its old or its new
//! complete version, plus possibly a `.lrs-tmp-*` temp file, which [`RunDir::create`] and
//! [`RunDir::open`] delete once it is [`STALE_TEMP_AGE`] old.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::trainer::error::io;
use crate::trainer::{Result, TrainError};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// 0-based round.
    pub round: usize,
    /// Mean minibatch loss of the shared phase.
    pub shared_loss: Option<f64>,
    /// Mean final training loss of the task phase.
    pub task_loss: Option<f64>,
    /// Mean per-task training loss after the round.
    pub train_loss: f64,
    /// Mean per-task training ROC AUC.
    pub train_auc: Option<f64>,
    /// Mean per-task test ROC AUC.
    pub test_auc: Option<f64>,
    /// 25th and 75th percentile of per-task test AUC.
    pub test_auc_quartiles: Option<(f64, f64)>,
    /// Mean per-task test accuracy.
    pub test_accuracy: f64,
    /// Mean per-task validation loss (runs with `[data] validation > 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
    /// Mean per-task validation ROC AUC (tasks whose validation rows hold both labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_auc: Option<f64>,
    /// Seconds this round took (training only).
    pub round_s: f64,
}

/// `summary.json`: what a finished run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The method's config name.
    pub method: String,
    /// Tasks trained.
    pub tasks: usize,
    /// Tasks scored: those whose test set holds both labels (fewer than `tasks` with
    /// `[data] train_unscored`).
    #[serde(default)]
    pub scored_tasks: Option<usize>,
    /// The config's seed (initialisation and minibatch order).
    #[serde(default)]
    pub seed: u64,
    /// Training rows per task.
    pub shots: usize,
    /// Rounds whose outputs were kept (with early stopping: up to the best round).
    pub rounds: usize,
    /// Mean per-task test ROC AUC (over tasks whose test set has both labels).
    pub test_auc: Option<f64>,
    /// Mean per-task test accuracy.
    pub test_accuracy: f64,
    /// Mean trainable parameters per task (its personal part).
    pub params_per_task: f64,
    /// Mean task-file bytes per task.
    pub bytes_per_task: f64,
    /// Shared-file bytes.
    pub shared_bytes: u64,
    /// Training wall time in seconds (all rounds of this invocation and earlier ones).
    pub train_s: f64,
    /// User-level `(ε, δ)` of the shared file, for private runs.
    #[serde(default)]
    pub privacy: Option<lrs_privacy::Guarantee>,
    /// Mean per-task validation ROC AUC after the round kept (the last one, or the best one
    /// with early stopping; runs with `[data] validation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_auc: Option<f64>,
    /// Mean per-task validation loss after each round, in round order (the curve that
    /// chooses the number of rounds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_loss_by_round: Vec<f64>,
    /// Whether the outputs come from a refit on every training row (`[data] refit`):
    /// `rounds` rounds, the number the validation rows chose.
    #[serde(default)]
    pub refit: bool,
}

/// Whether `id` can name a task file: `[A-Za-z0-9_.-]{1,128}`, not `.` or `..`.
pub fn valid_task_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub use lrs_nn::files::atomic::STALE_TEMP_AGE;

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates `root` and `root/tasks` if needed, and deletes stale temp files of killed
    /// writes there (see [`STALE_TEMP_AGE`]).
    pub fn create(root: &Path) -> Result<Self> {
        let tasks = root.join("tasks");
        std::fs::create_dir_all(&tasks).map_err(io(&tasks))?;
        let run = Self {
            root: root.to_path_buf(),
        };
        run.remove_stale_temps()?;
        Ok(run)
    }

    /// An existing run (it must hold `config.toml`); deletes stale temp files of killed
    /// writes in it (see [`STALE_TEMP_AGE`]).
    pub fn open(root: &Path) -> Result<Self> {
        let run = Self {
            root: root.to_path_buf(),
        };
        if !run.config_path().is_file() {
            let what = if root.is_dir() {
                "not a run directory (no config.toml; `lrs train --run` writes one)"
            } else {
                "no such run directory (`lrs train --run` creates one)"
            };
            return Err(TrainError::Io {
                path: root.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, what),
            });
        }
        run.remove_stale_temps()?;
        Ok(run)
    }

    /// Deletes `.lrs-tmp-*` files at least [`STALE_TEMP_AGE`] old in the run directory and
    /// `tasks/` (`checkpoint/` is cleaned by every checkpoint save); returns how many.
    pub fn remove_stale_temps(&self) -> Result<usize> {
        let mut n = 0;
        for dir in [self.root.clone(), self.tasks_dir()] {
            n += lrs_nn::files::atomic::remove_stale_temps(&dir, STALE_TEMP_AGE)?;
        }
        Ok(n)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `shared.safetensors`.
    pub fn shared_path(&self) -> PathBuf {
        self.root.join("shared.safetensors")
    }

    /// `tasks/`.
    pub fn tasks_dir(&self) -> PathBuf {
        self.root.join("tasks")
    }

    /// `tasks/<id>.safetensors`; ids that are not safe file names are an error.
    pub fn task_path(&self, id: &str) -> Result<PathBuf> {
        if !valid_task_id(id) {
            return Err(TrainError::Config {
                field: "task id",
                reason: format!("`{id}` cannot name a task file (use 1–128 of A-Z a-z 0-9 _ . -)"),
            });
        }
        Ok(self.tasks_dir().join(format!("{id}.safetensors")))
    }

    /// `refit/`, created if needed: the refit's own `metrics.jsonl` and `checkpoint/`
    /// (`[data] refit`; the outputs stay at the top of the run).
    pub fn refit_dir(&self) -> Result<RunDir> {
        let root = self.root.join("refit");
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        let refit = Self { root };
        refit.remove_stale_temps()?;
        Ok(refit)
    }

    /// `metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `eval.jsonl`.
    pub fn eval_path(&self) -> PathBuf {
        self.root.join("eval.jsonl")
    }

    /// `summary.json`.
    pub fn summary_path(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    /// `data-report.json`.
    pub fn data_report_path(&self) -> PathBuf {
        self.root.join("data-report.json")
    }

    /// `checkpoint/`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.root.join("checkpoint")
    }

    /// `best-checkpoint/`: the checkpoint of the best round so far (runs with early stopping,
    /// [`crate::trainer::TrainConfig::patience`]).
    pub fn best_checkpoint_dir(&self) -> PathBuf {
        self.root.join("best-checkpoint")
    }

    /// Appends one record to `metrics.jsonl` by replacing the file atomically (old records
    /// plus the new one), so a crash never leaves a torn line.
    pub fn append_metrics(&self, record: &RoundRecord) -> Result<()> {
        let path = self.metrics_path();
        let mut text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(&path)(e)),
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        let line = serde_json::to_string(record).map_err(|e| TrainError::Checkpoint {
            reason: e.to_string(),
        })?;
        text.push_str(&line);
        text.push('\n');
        lrs_nn::files::atomic::write_atomic(&path, text.as_bytes())?;
        Ok(())
    }

    /// Every record of `metrics.jsonl` (none if it does not exist).
    pub fn read_metrics(&self) -> Result<Vec<RoundRecord>> {
        let path = self.metrics_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| TrainError::Checkpoint {
                    reason: format!("{} line {}: {e}", path.display(), i + 1),
                })
            })
            .collect()
    }

    /// The run's `summary.json` (`None` if it has none yet: a run in progress).
    pub fn read_summary(&self) -> Result<Option<RunSummary>> {
        let path = self.summary_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TrainError::Checkpoint {
                reason: format!("{}: {e}", path.display()),
            })
    }

    /// Keeps the first `rounds` records of `metrics.jsonl` (a resumed run rewrites the rest).
    pub fn truncate_metrics(&self, rounds: usize) -> Result<()> {
        let kept: Vec<_> = self
            .read_metrics()?
            .into_iter()
            .filter(|r| r.round < rounds)
            .collect();
        let mut text = String::new();
        for r in &kept {
            text.push_str(
                &serde_json::to_string(r).map_err(|e| TrainError::Checkpoint {
                    reason: e.to_string(),
                })?,
            );
            text.push('\n');
        }
        lrs_nn::files::atomic::write_atomic(&self.metrics_path(), text.as_bytes())?;
        Ok(())
    }

    /// Writes `value` as pretty JSON to `path` atomically.
    pub fn write_json(&self, path: &Path, value: &impl Serialize) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| TrainError::Checkpoint {
            reason: e.to_string(),
        })?;
        lrs_nn::files::atomic::write_atomic(path, &bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(round: usize) -> RoundRecord {
        RoundRecord {
            round,
            shared_loss: Some(0.5),
            task_loss: None,
            train_loss: 0.25,
            train_auc: None,
            test_auc: Some(0.75),
            test_auc_quartiles: None,
            test_accuracy: 0.5,
            validation_loss: None,
            validation_auc: None,
            round_s: 0.125,
        }
    }

    #[test]
    fn metrics_append_keeps_every_record_and_opening_removes_stale_temps() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(io(Path::new("tempdir")))?;
        let run = RunDir::create(tmp.path())?;
        // A file whose last line lacks its newline (as an older writer could leave it).
        let first = serde_json::to_string(&record(0)).map_err(|e| TrainError::Checkpoint {
            reason: e.to_string(),
        })?;
        std::fs::write(run.metrics_path(), first).map_err(io(&run.metrics_path()))?;
        run.append_metrics(&record(1))?;
        run.append_metrics(&record(2))?;
        assert_eq!(run.read_metrics()?, vec![record(0), record(1), record(2)]);

        let stale = run.tasks_dir().join(".lrs-tmp-killed");
        let fresh = run.root().join(".lrs-tmp-writing");
        for p in [&stale, &fresh] {
            std::fs::write(p, b"partial").map_err(io(p))?;
        }
        let old = std::time::SystemTime::now() - 2 * STALE_TEMP_AGE;
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .and_then(|f| f.set_modified(old))
            .map_err(io(&stale))?;
        std::fs::write(run.config_path(), "").map_err(io(&run.config_path()))?;
        RunDir::open(tmp.path())?;
        assert!(
            !stale.exists(),
            "a stale temp file survives opening the run"
        );
        assert!(fresh.exists(), "a temp file being written was deleted");
        Ok(())
    }

    #[test]
    fn a_summary_reads_back_and_a_missing_or_broken_one_is_told_apart() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(io(Path::new("tempdir")))?;
        let run = RunDir::create(tmp.path())?;
        assert!(run.read_summary()?.is_none());
        let summary = RunSummary {
            method: "lrs".into(),
            tasks: 3,
            scored_tasks: Some(2),
            seed: 7,
            shots: 20,
            rounds: 2,
            test_auc: Some(0.625),
            test_accuracy: 0.5,
            params_per_task: 80.0,
            bytes_per_task: 1343.0,
            shared_bytes: 10,
            train_s: 1.5,
            privacy: None,
            validation_auc: Some(0.5),
            validation_loss_by_round: vec![0.75, 0.625],
            refit: true,
        };
        run.write_json(&run.summary_path(), &summary)?;
        let back = run.read_summary()?.expect("written");
        assert_eq!(
            (
                back.method.as_str(),
                back.scored_tasks,
                back.seed,
                back.rounds
            ),
            ("lrs", Some(2), 7, 2)
        );
        assert_eq!(back.validation_loss_by_round, [0.75, 0.625]);
        std::fs::write(run.summary_path(), b"{").map_err(io(&run.summary_path()))?;
        assert!(run.read_summary().is_err());
        Ok(())
    }

    #[test]
    fn task_ids_that_could_escape_the_directory_are_refused() {
        for ok in ["42", "user_7", "a.b-c", &"x".repeat(128)] {
            assert!(valid_task_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "é",
            "a b",
            &"x".repeat(129),
        ] {
            assert!(!valid_task_id(bad), "{bad}");
        }
    }
}
