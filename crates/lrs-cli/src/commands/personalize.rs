//! `lrs personalize`: fit new tasks against a run's frozen shared parts and write their task
//! files.

use std::path::PathBuf;

use clap::Args;
use lrs_train::run::{personalize_run, RunDir};

/// Arguments of `lrs personalize`.
#[derive(Debug, Args)]
pub struct PersonalizeArgs {
    /// The run directory (its config, shared file and `tasks/`).
    #[arg(long)]
    pub run: PathBuf,
    /// JSONL or CSV rows `{task, text, label}`; every row trains its task.
    #[arg(long)]
    pub task_data: PathBuf,
}

/// Runs `lrs personalize`.
pub fn run(a: PersonalizeArgs) -> anyhow::Result<()> {
    let run = RunDir::open(&a.run)?;
    for (task, path) in personalize_run(&run, &a.task_data)? {
        println!("{task} → {}", path.display());
    }
    Ok(())
}
