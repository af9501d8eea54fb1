//! The round loop of a run: train, evaluate, record each round in `metrics.jsonl`, keep the
//! best round's checkpoint (early stopping) and the latest one (resume).

use std::time::Instant;

use super::{auc_stats, mean_accuracy, Event, Result, RunDir, RunError};
use crate::run::dir::RoundRecord;
use crate::trainer::{Part, TaskData, TrainConfig, Trainer};

/// Which rounds a phase runs and how it ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phase {
    /// The most rounds it trains (counting rounds a resumed trainer already did).
    pub rounds: usize,
    /// Stop once this many rounds in a row have not lowered the best validation loss, and
    /// restore the best round's checkpoint; 0: run every round and keep the last.
    pub patience: usize,
}

/// Trains `trainer` on `data` round by round into `run` (metrics, checkpoints) until `phase`
/// ends; with early stopping, leaves the trainer at its best round. Returns the rounds kept.
pub(crate) fn run_rounds(
    trainer: &mut Trainer,
    data: &TaskData,
    run: &RunDir,
    config: &TrainConfig,
    phase: Phase,
    on: &mut dyn FnMut(Event),
) -> Result<usize> {
    let has_validation = data.tasks.iter().any(|t| !t.validation.is_empty());
    let mut best = if phase.patience > 0 {
        best_round(config, &run.read_metrics()?)
    } else {
        None
    };
    while trainer.rounds_done() < phase.rounds {
        if best.is_some_and(|(round, _)| trainer.rounds_done() > round + phase.patience) {
            break;
        }
        let start = Instant::now();
        let stats = trainer.round(data)?;
        let round_s = start.elapsed().as_secs_f64();
        let train_eval = trainer.evaluate(data, Part::Train)?;
        let test_eval = trainer.evaluate(data, Part::Test)?;
        let (test_auc, quartiles) = auc_stats(&test_eval);
        let validation = if has_validation {
            Some(trainer.evaluate(data, Part::Validation)?)
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
        if phase.patience > 0 {
            if let Some((round, loss)) = best_round(config, std::slice::from_ref(&record)) {
                if best.is_none_or(|(_, b)| loss < b) {
                    best = Some((round, loss));
                    trainer.save_checkpoint(&run.best_checkpoint_dir())?;
                }
            }
        }
        let done = trainer.rounds_done();
        let due = config.checkpoint_every > 0 && done % config.checkpoint_every == 0;
        if due || done == phase.rounds {
            let dir = trainer.save_checkpoint(&run.checkpoint_dir())?;
            on(Event::Checkpoint(&dir));
        }
    }
    if let Some((round, _)) = best.filter(|(round, _)| round + 1 != trainer.rounds_done()) {
        let dir = Trainer::latest_checkpoint(&run.best_checkpoint_dir())?.ok_or_else(|| {
            RunError::Invalid(format!(
                "{}: the checkpoint of the best round ({round}) is missing",
                run.best_checkpoint_dir().display()
            ))
        })?;
        trainer.restore_checkpoint(&dir)?;
    }
    Ok(trainer.rounds_done())
}

/// The round of `metrics` with the lowest mean validation loss among those that can be kept
/// (their sparse budget annealed to `k`, see [`TrainConfig::patience`]), and that loss.
fn best_round(config: &TrainConfig, metrics: &[RoundRecord]) -> Option<(usize, f64)> {
    let can_keep =
        |round| !config.method.trains_sparse() || config.sparsity.annealed(round, config.rounds);
    metrics
        .iter()
        .filter(|r| can_keep(r.round))
        .filter_map(|r| Some((r.round, r.validation_loss?)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}
