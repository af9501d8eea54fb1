//! `lrs split --config FILE`: the rows a run of that config trains, validates and tests on, as
//! JSON lines on stdout, so a model outside lrs can be fitted and scored on exactly the same
//! split (docs/DESIGN.md §Data protocol).
//!
//! Every row of every kept task, in task order and time order within a part:
//! `{"task", "part", "text", "label", "timestamp", "scored"}` where `part` is `train` (what the
//! selection trains on), `validation` (the latest `[data] validation` share of the task's `m`
//! training rows: what early stopping reads; a refit trains on them too) or `test` (the
//! held-out latest rows), and `scored` says whether the task's test rows hold both labels (the
//! tasks a run's mean AUC averages over; the others are trained only, with
//! `[data] train_unscored`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use lrs_train::run::load_run_data;
use lrs_train::trainer::validation_len;
use lrs_train::{count, TrainConfig};
use serde::Serialize;

use super::data_report::{print_reports, print_skipped};
use super::train::DataArgs;

/// Arguments of `lrs split`.
#[derive(clap::Args, Debug)]
pub struct SplitArgs {
    /// The run's TOML config (its `[data]` table decides the split).
    #[arg(long)]
    pub config: PathBuf,
    /// Which rows, as for `lrs train`: `--shots`, `--max-tasks`, `--strict`.
    #[command(flatten)]
    pub data: DataArgs,
}

/// One output line.
#[derive(Serialize)]
struct SplitRow<'a> {
    task: &'a str,
    part: &'static str,
    text: &'a str,
    label: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
    scored: bool,
}

/// Runs `lrs split`.
pub fn run(a: SplitArgs) -> anyhow::Result<()> {
    let mut cfg = TrainConfig::from_file(&a.config)?;
    a.data.apply(&mut cfg);
    cfg.validate()?;
    let data = load_run_data(&cfg.data)?;
    print_reports(&data.reports);
    if a.data.strict {
        data.require_clean()?;
    }
    print_skipped(&data.skipped, "skipped");

    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let (mut counts, mut scored_tasks) = ([0usize; 3], 0);
    for split in &data.splits {
        let scored = split.test_has_both_labels();
        scored_tasks += usize::from(scored);
        let kept = split.train.len() - validation_len(split.train.len(), cfg.data.validation);
        let (train, validation) = split.train.split_at(kept);
        for (k, (part, rows)) in [
            ("train", train),
            ("validation", validation),
            ("test", &split.test[..]),
        ]
        .into_iter()
        .enumerate()
        {
            counts[k] += rows.len();
            for e in rows {
                let row = SplitRow {
                    task: &split.task,
                    part,
                    text: &e.text,
                    label: e.label,
                    timestamp: e.timestamp,
                    scored,
                };
                serde_json::to_writer(&mut out, &row)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush().context("writing the split to stdout")?;
    eprintln!(
        "{} ({scored_tasks} scored): {} / {} / {}",
        count(data.splits.len(), "task"),
        count(counts[0], "train row"),
        count(counts[1], "validation row"),
        count(counts[2], "test row"),
    );
    Ok(())
}
