//! `lrs quickstart`: the README's main job. Finds all-MiniLM-L6-v2 (hf-hub cache, else the hub)
//! and MovieLens-100k (`$LRS_DATA/ml-100k`), trains LRS and baselines on a subset of users
//! (`configs/quickstart.toml`), personalizes users that took no part in training against each
//! run's frozen shared file, evaluates everyone on their held-out ratings, writes the task
//! files, and prints method × mean per-user AUC × bytes per user.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use lrs_train::run::{load_run_data, personalize_splits, resolve_model, RunDir, TrainOptions};
use lrs_train::trainer::{Method, TrainConfig};

use super::train::run_training;

/// The quickstart's training config (subset sized for a few minutes on 2 CPU cores).
const CONFIG: &str = include_str!("../../../../configs/quickstart.toml");

/// Arguments of `lrs quickstart`.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Where to write one run directory per method.
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Users to train on (the first ones, in task order); 0 keeps the config's value.
    #[arg(long, default_value_t = 0)]
    pub tasks: usize,
    /// Users after those to personalize against the frozen shared file.
    #[arg(long, default_value_t = 50)]
    pub new_tasks: usize,
    /// Methods to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "global,global-lora,head-only,shared-only,lrs"
    )]
    pub methods: Vec<String>,
}

/// Runs the quickstart.
pub fn run(a: QuickstartArgs) -> anyhow::Result<()> {
    let mut base = TrainConfig::from_toml_str(CONFIG, "configs/quickstart.toml")?;
    if a.tasks > 0 {
        base.data.max_tasks = a.tasks;
    }
    let methods = a
        .methods
        .iter()
        .map(|m| m.parse::<Method>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Fail early, with how to seed them, if the model or the data is missing.
    resolve_model(&base)?;
    let trained = base.data.max_tasks;
    let mut all = base.data.clone();
    all.max_tasks = trained + a.new_tasks;
    let data = load_run_data(&all)?;
    let new_users = data.splits.get(trained..).unwrap_or(&[]).to_vec();
    println!(
        "lrs quickstart: {} on MovieLens-100k ({}), {} users × m={} ratings for training, {} new \
         users personalized afterwards; score = mean per-user ROC AUC on each user's latest 20 % \
         of ratings\n",
        base.model,
        data.source.display(),
        trained,
        base.data.shots,
        new_users.len()
    );
    if a.out.exists() {
        std::fs::remove_dir_all(&a.out).with_context(|| format!("clearing {}", a.out.display()))?;
    }
    let mut rows = Vec::new();
    for method in methods {
        let cfg = TrainConfig {
            method,
            ..base.clone()
        };
        let run = RunDir::create(&a.out.join(method.name()))?;
        let start = Instant::now();
        run_training(&cfg, &run, TrainOptions::default())?;
        let summary = run
            .read_summary()?
            .context("the finished run wrote no summary.json")?;
        let new_auc = if new_users.is_empty() {
            None
        } else {
            let (_, e) = personalize_splits(&run, &new_users)?;
            e.mean_auc().map(|(auc, _)| auc)
        };
        rows.push((
            method,
            summary.test_auc,
            new_auc,
            summary.params_per_task,
            summary.bytes_per_task,
            start.elapsed().as_secs_f64(),
        ));
        println!();
    }
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    println!(
        "{:<12} {:>14} {:>14} {:>12} {:>12} {:>8}",
        "method", "AUC (trained)", "AUC (new)", "params/user", "bytes/user", "time s"
    );
    for (m, auc, new_auc, params, bytes, secs) in &rows {
        println!(
            "{:<12} {:>14} {:>14} {:>12.0} {:>12.0} {:>8.1}",
            m.name(),
            fmt(*auc),
            fmt(*new_auc),
            params,
            bytes,
            secs
        );
    }
    println!(
        "\nruns, task files and plots: {}/<method>/ (`lrs eval --run …`, `lrs inspect …`)",
        a.out.display()
    );
    Ok(())
}
