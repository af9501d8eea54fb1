//! `lrs eval`: per-task test AUC/accuracy of every task file of a run, trained and
//! personalized, on rows the task was not fitted on.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use lrs_train::count;
use lrs_train::run::{evaluate_run, EvalOptions, RunDir, TaskKind};
use lrs_train::trainer::{DataConfig, DataSource, Evaluation, TrainConfig};

use super::data_report::{print_reports, print_skipped};

/// Arguments of `lrs eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// Score the tasks of this JSONL/CSV file instead of the run's data: a trained task on
    /// its protocol test rows, a personalized one on the rows it was not fitted on.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Refuse the data if any row is rejected.
    #[arg(long)]
    pub strict: bool,
    /// Print the load report, then one JSON object per task (scored, skipped or failed).
    #[arg(long)]
    pub json: bool,
}

/// One line of means over `e`'s tasks.
fn means(e: &Evaluation) -> String {
    let (auc, n) = e.mean_auc().unwrap_or((f64::NAN, 0));
    let acc = e.tasks.iter().map(|t| t.accuracy).sum::<f64>() / e.tasks.len().max(1) as f64;
    format!(
        "mean test AUC {auc:.4} (over {n} with both labels), mean accuracy {acc:.4}, mean loss \
         {:.4}",
        e.mean_loss()
    )
}

/// Runs `lrs eval`.
pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let run = RunDir::open(&a.run)?;
    let cfg = TrainConfig::from_file(&run.config_path())?;
    let data = a.data.as_ref().map(|p| DataConfig {
        source: DataSource::File,
        path: Some(p.clone()),
        max_tasks: 0,
        ..cfg.data.clone()
    });
    let e = evaluate_run(
        &run,
        &EvalOptions {
            data,
            strict: a.strict,
        },
    )?;
    print_reports(&e.reports);
    if a.json {
        let reports: Vec<_> = e.reports.iter().map(|r| r.to_json()).collect();
        println!("{}", serde_json::json!({ "data": reports }));
        for t in &e.scored {
            println!("{}", serde_json::to_string(t)?);
        }
        for s in &e.skipped {
            println!(
                "{}",
                serde_json::json!({"task": s.task, "skipped": s.reason})
            );
        }
        for f in &e.failed {
            println!("{}", serde_json::json!({"task": f.task, "failed": f.error}));
        }
    }
    print_skipped(&e.skipped, "not scored");
    for f in &e.failed {
        eprintln!("task {}: {}", f.task, f.error);
    }
    let all = e.evaluation();
    if all.tasks.is_empty() {
        bail!("no task was scored");
    }
    println!("{}: {}", count(all.tasks.len(), "task"), means(&all));
    for kind in [TaskKind::Trained, TaskKind::Personalized] {
        let part = e.of_kind(kind);
        if !part.tasks.is_empty() && part.tasks.len() < all.tasks.len() {
            println!(
                "  {} {kind}: {}",
                count(part.tasks.len(), "task"),
                means(&part)
            );
        }
    }
    if !e.failed.is_empty() {
        bail!(
            "{} could not be scored (see above); the other {} were",
            count(e.failed.len(), "task"),
            all.tasks.len()
        );
    }
    Ok(())
}
