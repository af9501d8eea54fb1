//! `lrs personalize`: fit new tasks against a run's frozen shared parts and write their task
//! files.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lrs_serve::store::{Location, StoreOptions, TaskStore};
use lrs_serve::TaskId;
use lrs_train::run::{personalize_run, PersonalizeOptions, RunDir, Shard};

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
    /// Fit only shard I of N of the tasks (`0/4` … `3/4`), by a fixed hash of the task id:
    /// N workers with the same data and run, one per shard, fit every task exactly once.
    #[arg(long, default_value = "0/1")]
    pub shard: Shard,
    /// Also write each fitted task file to this registry: a directory, or an object-store
    /// prefix `s3://bucket/prefix` that `lrs serve --tasks` reads (credentials and endpoint
    /// from the AWS_* environment variables). Each file is one atomic write.
    #[arg(long)]
    pub out: Option<String>,
}

/// Runs `lrs personalize`.
pub fn run(a: PersonalizeArgs) -> anyhow::Result<()> {
    let run = RunDir::open(&a.run)?;
    // Reach the output registry before fitting anything: a wrong bucket fails at once.
    let out = match &a.out {
        Some(text) => {
            let location = Location::parse(text)?;
            let store = lrs_serve::store::open(&location, &StoreOptions::default())?;
            store
                .check()
                .with_context(|| format!("--out {location}: the registry does not answer"))?;
            Some(store)
        }
        None => None,
    };
    let done = personalize_run(
        &run,
        &a.task_data,
        PersonalizeOptions {
            holdout: a.holdout,
            strict: a.strict,
            shard: a.shard,
        },
    )?;
    print_reports(std::slice::from_ref(&done.report));
    if a.shard != Shard::all() {
        println!(
            "shard {}: {} of the file's tasks",
            a.shard,
            done.tasks.len()
        );
    }
    if let Some(store) = &out {
        for (task, path, _, _) in &done.tasks {
            upload(store.as_ref(), task, path)?;
        }
    }
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

/// Writes the task file at `path` to `store` as task `task`.
fn upload(store: &dyn TaskStore, task: &str, path: &std::path::Path) -> anyhow::Result<()> {
    let id = TaskId::parse(task)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    store
        .write(&id, &bytes)
        .with_context(|| format!("writing task {task} to {}", store.location()))?;
    Ok(())
}
