//! `lrs personalize`: fit new tasks against a run's frozen shared parts and write their task
//! files.

use std::path::PathBuf;

use clap::Args;
use lrs_train::run::{personalize_run, PersonalizeOptions, RunDir};

use super::data_report::print_reports;

/// Arguments of `lrs personalize`.
#[derive(Debug, Args)]
pub struct PersonalizeArgs {
    /// The run directory (its config, shared file and `tasks/`).
    #[arg(long)]
    pub run: PathBuf,
    /// JSONL or CSV rows `{task, text, label}` (CSV when the name ends in `.csv`).
    #[arg(long)]
    pub task_data: PathBuf,
    /// Keep this share of each task's latest rows out of training (in [0, 1)), so that
    /// `lrs eval` scores the task on rows it never saw. 0: every row trains.
    #[arg(long, default_value_t = 0.0)]
    pub holdout: f64,
    /// Refuse the file if any row is rejected (malformed JSON, missing field, bad label…).
    #[arg(long)]
    pub strict: bool,
    /// Print the load report and one JSON object per task on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `lrs personalize`.
pub fn run(a: PersonalizeArgs) -> anyhow::Result<()> {
    let run = RunDir::open(&a.run)?;
    let done = personalize_run(
        &run,
        &a.task_data,
        PersonalizeOptions {
            holdout: a.holdout,
            strict: a.strict,
        },
    )?;
    print_reports(std::slice::from_ref(&done.report));
    if a.json {
        println!("{}", serde_json::json!({"data": done.report.to_json()}));
    }
    for (i, (task, path, trained, held)) in done.tasks.iter().enumerate() {
        if a.json {
            let m = done.evaluation.tasks.get(i);
            println!(
                "{}",
                serde_json::json!({"task": task, "path": path, "trained_rows": trained,
                    "held_out_rows": held, "held_out_auc": m.and_then(|m| m.auc),
                    "held_out_accuracy": m.filter(|m| m.rows > 0).map(|m| m.accuracy)})
            );
        } else if *held > 0 {
            println!(
                "{task} → {} ({trained} rows trained, {held} held out for `lrs eval`)",
                path.display()
            );
        } else {
            println!("{task} → {} ({trained} rows trained)", path.display());
        }
    }
    Ok(())
}
