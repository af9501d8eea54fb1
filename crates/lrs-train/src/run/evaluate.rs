//! [`evaluate_run`]: every task file of a run scored on rows it was not fitted on, each task
//! labelled trained or personalized; tasks that cannot be scored are listed with the reason,
//! and a task file that fails to load is reported for that task while the others are scored.

use std::collections::BTreeSet;

use serde::Serialize;

use super::data::{load_run_data, load_task_file, one_label_reason, SkippedTask};
use super::{trainer_for_run, Result, RunDir, RunError};
use crate::trainer::{DataConfig, Evaluation, Part, TaskMetrics, TrainConfig};
use crate::{count, split_task, LoadReport, Split, SplitConfig};

/// How a task of a run got its task file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Trained with the shared parts by `lrs train`.
    Trained,
    /// Fitted afterwards against the frozen shared file by `lrs personalize`.
    Personalized,
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskKind::Trained => "trained",
            TaskKind::Personalized => "personalized",
        })
    }
}

/// One scored task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredTask {
    /// Trained or personalized.
    pub kind: TaskKind,
    /// Its scores on the rows it was not fitted on.
    #[serde(flatten)]
    pub metrics: TaskMetrics,
}

/// A task whose files could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedTask {
    /// The task id.
    pub task: String,
    /// What went wrong (names the file).
    pub error: String,
}

/// What [`evaluate_run`] found.
#[derive(Debug, Clone)]
pub struct RunEvaluation {
    /// The scored tasks, in task order.
    pub scored: Vec<ScoredTask>,
    /// Tasks not scored, and why.
    pub skipped: Vec<SkippedTask>,
    /// Tasks whose task file (or personalize record) failed to load.
    pub failed: Vec<FailedTask>,
    /// The load reports of the data read.
    pub reports: Vec<LoadReport>,
}

impl RunEvaluation {
    /// The scored tasks' metrics (for [`Evaluation::mean_auc`] and friends).
    pub fn evaluation(&self) -> Evaluation {
        Evaluation {
            tasks: self.scored.iter().map(|t| t.metrics.clone()).collect(),
        }
    }

    /// The scored tasks of one kind.
    pub fn of_kind(&self, kind: TaskKind) -> Evaluation {
        Evaluation {
            tasks: self
                .scored
                .iter()
                .filter(|t| t.kind == kind)
                .map(|t| t.metrics.clone())
                .collect(),
        }
    }
}

/// Which rows [`evaluate_run`] scores.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Score the tasks of this data instead of the run's own: a trained task on its protocol
    /// test rows, a personalized one on every row of it that it was not fitted on.
    pub data: Option<DataConfig>,
    /// Refuse data with any rejected row.
    pub strict: bool,
}

/// Why a personalized task's `n` unseen rows cannot be scored.
fn one_label_unseen(n: usize) -> String {
    format!(
        "its {} not trained on {} one label only: AUC needs both",
        count(n, "row"),
        if n == 1 { "has" } else { "hold" }
    )
}

/// Scores `run`'s task files.
///
/// Without [`EvalOptions::data`]: every task file in `tasks/` — a trained task on its test
/// rows of the run's data, a personalized one on the rows `lrs personalize --holdout` kept out.
/// With it: every task of that data that has a task file. Tasks that cannot be scored (no task
/// file, no unseen rows, one label only) are in [`RunEvaluation::skipped`]; a task file that
/// fails to load is in [`RunEvaluation::failed`] and the rest are still scored.
pub fn evaluate_run(run: &RunDir, options: &EvalOptions) -> Result<RunEvaluation> {
    let config = TrainConfig::from_file(&run.config_path())?;
    let files: BTreeSet<String> = run.task_ids()?.into_iter().collect();
    let records = run.personalize_records()?;
    let mut skipped = Vec::new();
    let mut failed = Vec::new();
    let mut plan: Vec<(Split, TaskKind)> = Vec::new();
    let skip = |skipped: &mut Vec<SkippedTask>, task: &str, reason: String| {
        skipped.push(SkippedTask {
            task: task.to_string(),
            reason,
        })
    };
    let reports = match &options.data {
        None => {
            let run_data = load_run_data(&config.data)?;
            if options.strict {
                run_data.require_clean()?;
            }
            let mut own = BTreeSet::new();
            for split in run_data.splits {
                own.insert(split.task.clone());
                if files.contains(&split.task) {
                    plan.push((split, TaskKind::Trained));
                } else {
                    let reason = "trained on, but no task file in tasks/".to_string();
                    skip(&mut skipped, &split.task, reason);
                }
            }
            for task in files.iter().filter(|t| !own.contains(*t)) {
                match records.get(task) {
                    Some(Ok(r)) if !r.held_out.is_empty() => {
                        let split = Split {
                            task: task.clone(),
                            train: r.held_out.clone(),
                            test: r.held_out.clone(),
                        };
                        if split.test_has_both_labels() {
                            plan.push((split, TaskKind::Personalized));
                        } else {
                            skip(&mut skipped, task, one_label_unseen(split.test.len()));
                        }
                    }
                    Some(Ok(r)) => skip(
                        &mut skipped,
                        task,
                        format!(
                            "personalized on all {} (no --holdout): no unseen row to score",
                            count(r.trained_rows, "row")
                        ),
                    ),
                    Some(Err(e)) => failed.push(FailedTask {
                        task: task.clone(),
                        error: e.clone(),
                    }),
                    None => skip(
                        &mut skipped,
                        task,
                        "not in the run's data and not personalized here: no rows to score".into(),
                    ),
                }
            }
            run_data.reports
        }
        Some(cfg) => {
            let path = cfg
                .path
                .as_deref()
                .ok_or_else(|| RunError::Invalid("evaluation data needs a file path".into()))?;
            let loaded = load_task_file(path)?;
            if options.strict {
                loaded.report.require_clean()?;
            }
            let protocol = SplitConfig::new(cfg.shots, cfg.split_seed);
            for task in loaded.dataset.tasks() {
                let name = task.name();
                if !files.contains(name) {
                    let reason = "no task file in tasks/ (run `lrs personalize` first)";
                    skip(&mut skipped, name, reason.into());
                    continue;
                }
                let (split, kind) = match records.get(name) {
                    Some(Ok(r)) => {
                        let unseen: Vec<_> =
                            r.unseen(task.examples()).into_iter().cloned().collect();
                        if unseen.is_empty() {
                            skip(
                                &mut skipped,
                                name,
                                format!(
                                    "`lrs personalize` trained it on all {} here: none unseen \
                                     (keep some out with `--holdout`)",
                                    count(task.examples().len(), "row")
                                ),
                            );
                            continue;
                        }
                        let split = Split {
                            task: name.to_string(),
                            train: unseen.clone(),
                            test: unseen,
                        };
                        (split, TaskKind::Personalized)
                    }
                    Some(Err(e)) => {
                        failed.push(FailedTask {
                            task: name.to_string(),
                            error: e.clone(),
                        });
                        continue;
                    }
                    None => (split_task(task, &protocol), TaskKind::Trained),
                };
                if !split.test_has_both_labels() {
                    let reason = match kind {
                        TaskKind::Trained => one_label_reason(&split).unwrap_or_default(),
                        TaskKind::Personalized => one_label_unseen(split.test.len()),
                    };
                    skip(&mut skipped, name, reason);
                    continue;
                }
                plan.push((split, kind));
            }
            vec![loaded.report]
        }
    };
    plan.sort_by(|a, b| crate::task_order(&a.0.task, &b.0.task));
    let mut scored = Vec::new();
    if !plan.is_empty() {
        let splits: Vec<Split> = plan.iter().map(|(s, _)| s.clone()).collect();
        let (mut trainer, data, shared) = trainer_for_run(run, &splits, &[Part::Test])?;
        let mut tasks = Vec::with_capacity(splits.len());
        let mut ok = Vec::with_capacity(splits.len());
        for (i, split) in splits.iter().enumerate() {
            let path = run.task_path(&split.task)?;
            match trainer.model().load_task(&path, &shared) {
                Ok(t) => {
                    tasks.push(t);
                    ok.push(true);
                }
                Err(e) => {
                    failed.push(FailedTask {
                        task: split.task.clone(),
                        error: e.to_string(),
                    });
                    // A blank stand-in keeps the trainer's task order; its scores are dropped.
                    tasks.push(trainer.tasks()[i].clone());
                    ok.push(false);
                }
            }
        }
        trainer.install_tasks(tasks)?;
        let evaluation = trainer.evaluate(&data, Part::Test)?;
        for ((metrics, (_, kind)), ok) in evaluation.tasks.into_iter().zip(&plan).zip(ok) {
            if ok {
                scored.push(ScoredTask {
                    kind: *kind,
                    metrics,
                });
            }
        }
    }
    skipped.sort_by(|a, b| crate::task_order(&a.task, &b.task));
    failed.sort_by(|a, b| crate::task_order(&a.task, &b.task));
    Ok(RunEvaluation {
        scored,
        skipped,
        failed,
        reports,
    })
}
