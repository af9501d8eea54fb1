//! `lrs train`: run a training config into a run directory, with progress bars, checkpoints
//! and plots.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lrs_train::run::{train, Event, RunDir, TrainOptions};
use lrs_train::trainer::Method;
use lrs_train::{count, TrainConfig};

use super::data_report::{print_reports, print_skipped};
use super::train_plots::plot_run;

/// The `--method` values: every [`Method`], by its config name.
fn method_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(Method::ALL.map(Method::name))
}

/// Arguments of `lrs train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The run's TOML config (see `configs/`).
    #[arg(long)]
    pub config: PathBuf,
    /// The run directory to write (default: `runs/<config name>`).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Continue the run in `--run` from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Which rows: `--shots`, `--max-tasks`, `--strict`.
    #[command(flatten)]
    pub data: DataArgs,
    /// Override the method.
    #[arg(long, value_parser = method_names())]
    pub method: Option<String>,
    /// Override `rounds`.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Override `seed` (initialisation and minibatch order; the data split keeps
    /// `[data] split_seed`).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// The data flags `lrs train` and `lrs split` share, so the same flags give both the same
/// split.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Refuse the data if any row is rejected (malformed, missing field, bad label…).
    #[arg(long)]
    pub strict: bool,
    /// Override `[data] shots`.
    #[arg(long)]
    pub shots: Option<usize>,
    /// Override `[data] max_tasks`.
    #[arg(long)]
    pub max_tasks: Option<usize>,
}

impl DataArgs {
    /// Applies `--shots` and `--max-tasks` to a config (`--strict` is for the loader).
    pub fn apply(&self, cfg: &mut TrainConfig) {
        if let Some(s) = self.shots {
            cfg.data.shots = s;
        }
        if let Some(t) = self.max_tasks {
            cfg.data.max_tasks = t;
        }
    }
}

/// Applies the command-line overrides to a config.
pub fn apply_overrides(cfg: &mut TrainConfig, a: &TrainArgs) -> anyhow::Result<()> {
    if let Some(m) = &a.method {
        cfg.method = m.parse().map_err(anyhow::Error::msg)?;
    }
    a.data.apply(cfg);
    if let Some(r) = a.rounds {
        cfg.rounds = r;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    cfg.validate()?;
    Ok(())
}

/// Runs `lrs train`.
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let mut cfg = TrainConfig::from_file(&a.config)?;
    apply_overrides(&mut cfg, &a)?;
    let root = a.run.clone().unwrap_or_else(|| {
        let stem = a
            .config
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        PathBuf::from("runs").join(stem)
    });
    if a.resume && !root.join("config.toml").is_file() {
        anyhow::bail!(
            "nothing to resume: {} holds no run (no config.toml); drop --resume to start one",
            root.display()
        );
    }
    let existed = root.exists();
    let run_dir = RunDir::create(&root)?;
    let options = TrainOptions {
        resume: a.resume,
        strict: a.data.strict,
    };
    let result = run_training(&cfg, &run_dir, options);
    if result.is_err() && !existed {
        // A run that failed before writing anything leaves no empty directory behind
        // (`remove_dir` removes only empty ones).
        let _ = std::fs::remove_dir(run_dir.tasks_dir());
        let _ = std::fs::remove_dir(&root);
    }
    result
}

/// Prints `msg` above the bar, or to stderr when the bar is hidden (output not a terminal),
/// so logs keep the per-round lines.
fn say(bar: &ProgressBar, msg: &str) {
    if bar.is_hidden() {
        eprintln!("{msg}");
    } else {
        bar.println(msg);
    }
}

/// Trains with a progress bar over rounds, then plots; prints the summary.
pub fn run_training(
    cfg: &TrainConfig,
    run_dir: &RunDir,
    options: TrainOptions,
) -> anyhow::Result<()> {
    let bar = ProgressBar::new(cfg.rounds as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] round {pos}/{len} {elapsed} {msg}")
            .context("progress template")?
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} m={}", cfg.method, cfg.data.shots));
    bar.set_message("loading model, data and prefix cache…");
    let mut on = |e: Event| match e {
        Event::Data(d) => {
            bar.suspend(|| {
                print_reports(&d.reports);
                print_skipped(&d.skipped, "skipped");
                if d.unscored > 0 {
                    eprintln!(
                        "{} with one test label trained but not scored (train_unscored)",
                        count(d.unscored, "task")
                    );
                }
                if d.beyond_max_tasks > 0 {
                    eprintln!(
                        "{} more left out by max_tasks = {}",
                        count(d.beyond_max_tasks, "usable task"),
                        cfg.data.max_tasks
                    );
                }
            });
        }
        Event::Ready {
            tasks,
            train_rows,
            test_rows,
            cached,
            start_round,
        } => {
            bar.set_position(start_round as u64);
            say(
                &bar,
                &format!(
                    "{}, {train_rows} train / {test_rows} test rows; prefix cache: {} texts, \
                     {:.1} MB{}",
                    count(tasks, "task"),
                    cached.0,
                    cached.1 as f64 / 1e6,
                    if start_round > 0 {
                        format!("; resumed after round {start_round}")
                    } else {
                        String::new()
                    }
                ),
            );
            bar.set_message("training…");
        }
        Event::Refit {
            rounds,
            train_rows,
            start_round,
        } => {
            bar.set_length(rounds as u64);
            bar.set_position(start_round as u64);
            bar.set_prefix(format!("{} m={} refit", cfg.method, cfg.data.shots));
            say(
                &bar,
                &format!(
                    "validation chose {}: training again on all {train_rows} training rows{}",
                    count(rounds, "round"),
                    if start_round > 0 {
                        format!("; resumed after round {start_round}")
                    } else {
                        String::new()
                    }
                ),
            );
        }
        Event::Round(r) => {
            bar.inc(1);
            let msg = format!(
                "round {}: train loss {:.4}, test AUC {} ({:.1} s)",
                r.round + 1,
                r.train_loss,
                r.test_auc.map_or("-".into(), |a| format!("{a:.4}")),
                r.round_s
            );
            say(&bar, &msg);
            bar.set_message(msg);
        }
        Event::Checkpoint(_) => {}
        Event::Done(_) => bar.finish_and_clear(),
    };
    let summary = train(cfg, run_dir, options, &mut on)?;
    let records = run_dir.read_metrics()?;
    plot_run(
        run_dir.root(),
        &records,
        &format!("{} m={}", cfg.method, cfg.data.shots),
    )?;
    println!(
        "{}: {}, mean test AUC {}, accuracy {:.4}, {:.0} params and {:.0} bytes per task, \
         {:.1} s training",
        summary.method,
        count(summary.tasks, "task"),
        summary.test_auc.map_or("-".into(), |a| format!("{a:.4}")),
        summary.test_accuracy,
        summary.params_per_task,
        summary.bytes_per_task,
        summary.train_s
    );
    println!(
        "wrote {0}/shared.safetensors, {0}/tasks/, metrics.jsonl, eval.jsonl, summary.json, \
         data-report.json, loss.svg, auc.svg",
        run_dir.root().display()
    );
    Ok(())
}
