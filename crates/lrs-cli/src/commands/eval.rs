//! `lrs eval`: per-task test AUC/accuracy of a run's task files.

use std::path::PathBuf;

use clap::Args;
use lrs_train::run::{evaluate_run, RunDir};
use lrs_train::trainer::{DataConfig, DataSource, TrainConfig};

/// Arguments of `lrs eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// Evaluate on this JSONL/CSV file (split by the run's protocol) instead of the run's data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print one JSON object per task.
    #[arg(long)]
    pub json: bool,
}

/// Runs `lrs eval`.
pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let run = RunDir::open(&a.run)?;
    let cfg = TrainConfig::from_file(&run.config_path())?;
    let data = a.data.as_ref().map(|p| DataConfig {
        source: DataSource::File,
        path: Some(p.clone()),
        ..cfg.data.clone()
    });
    let e = evaluate_run(&run, data.as_ref())?;
    if a.json {
        for t in &e.tasks {
            println!(
                "{}",
                serde_json::json!({"task": t.task, "rows": t.rows, "loss": t.loss,
                    "accuracy": t.accuracy, "auc": t.auc})
            );
        }
    }
    let (auc, n) = e.mean_auc().unwrap_or((f64::NAN, 0));
    let acc = e.tasks.iter().map(|t| t.accuracy).sum::<f64>() / e.tasks.len().max(1) as f64;
    println!(
        "{} tasks: mean test AUC {auc:.4} (over {n} with both labels), mean accuracy {acc:.4}, \
         mean loss {:.4}",
        e.tasks.len(),
        e.mean_loss()
    );
    Ok(())
}
