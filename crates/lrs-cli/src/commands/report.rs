//! `lrs report`: a markdown table of finished runs (their `summary.json`), one row per method
//! and scored task count, one column group per number of shots. Runs of the same method, task
//! count and shots with different seeds share a cell: their mean ± sample sd and count.
//! `--runs` may be given several times (say one directory per `m`); `--plot` also draws the
//! mean AUC against `m` per method ([`super::report_plot`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lrs_train::run::RunSummary;

use super::report_plot::{self, ShotsPoint, ShotsSeries};

/// Arguments of `lrs report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Directory whose sub-directories are runs (each with `summary.json`); repeat it to
    /// report runs from several directories together.
    #[arg(long, required = true)]
    pub runs: Vec<PathBuf>,
    /// Also write the mean test AUC against `m` per method to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Every `summary.json` one level under each of `dirs`.
fn read_summaries(dirs: &[PathBuf]) -> anyhow::Result<Vec<RunSummary>> {
    let mut found = Vec::new();
    for dir in dirs {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        let before = found.len();
        for e in entries.flatten() {
            let p = e.path().join("summary.json");
            if p.is_file() {
                let s: RunSummary = serde_json::from_slice(&std::fs::read(&p)?)
                    .with_context(|| format!("parsing {}", p.display()))?;
                found.push(s);
            }
        }
        anyhow::ensure!(
            found.len() > before,
            "no run with summary.json under {}",
            dir.display()
        );
    }
    Ok(found)
}

/// A run's row label: its method, and for private runs its guarantee.
fn label(s: &RunSummary) -> String {
    match &s.privacy {
        Some(g) => format!("{} (ε = {:.3}, δ = {})", s.method, g.epsilon, g.delta),
        None => s.method.clone(),
    }
}

/// Runs `lrs report`.
pub fn run(a: ReportArgs) -> anyhow::Result<()> {
    let found = read_summaries(&a.runs)?;
    let mut shots: Vec<usize> = found.iter().map(|s| s.shots).collect();
    shots.sort_unstable();
    shots.dedup();
    // (tasks desc, method) → shots → the runs (one per seed)
    type Cell<'a> = Vec<&'a RunSummary>;
    let mut rows: BTreeMap<(std::cmp::Reverse<usize>, String), BTreeMap<usize, Cell>> =
        BTreeMap::new();
    for s in &found {
        let users = s.scored_tasks.unwrap_or(s.tasks);
        rows.entry((std::cmp::Reverse(users), label(s)))
            .or_default()
            .entry(s.shots)
            .or_default()
            .push(s);
    }
    let head: Vec<String> = shots.iter().map(|m| format!("m = {m}")).collect();
    println!("Mean per-user test ROC AUC (several seeds: mean ± sd over seeds, seed count)\n");
    println!("| method | users | {} |", head.join(" | "));
    println!("|---|---|{}", "---|".repeat(shots.len()));
    for ((tasks, method), by) in &rows {
        let cells: Vec<String> = shots
            .iter()
            .map(|m| {
                let aucs: Vec<f64> = by
                    .get(m)
                    .map(|runs| runs.iter().filter_map(|s| s.test_auc).collect())
                    .unwrap_or_default();
                mean_sd_cell(&aucs)
            })
            .collect();
        println!("| {method} | {} | {} |", tasks.0, cells.join(" | "));
    }
    println!("\nPersonal part per user and training wall time (mean over seeds)\n");
    let head: Vec<String> = shots.iter().map(|m| format!("time m = {m}")).collect();
    println!(
        "| method | users | trainable params / user | task file bytes / user | {} |",
        head.join(" | ")
    );
    println!("|---|---|---|---|{}", "---|".repeat(shots.len()));
    for ((tasks, method), by) in &rows {
        let any = by
            .values()
            .next_back()
            .and_then(|runs| runs.first().copied());
        let cells: Vec<String> = shots
            .iter()
            .map(|m| {
                by.get(m).map_or("".into(), |runs| {
                    let mean = runs.iter().map(|s| s.train_s).sum::<f64>() / runs.len() as f64;
                    format!("{mean:.0} s")
                })
            })
            .collect();
        println!(
            "| {method} | {} | {} | {} | {} |",
            tasks.0,
            any.map_or("".into(), |s| format!("{:.0}", s.params_per_task)),
            any.map_or("".into(), |s| format!("{:.0}", s.bytes_per_task)),
            cells.join(" | ")
        );
    }
    print!("{}", runs_table(&found));
    if let Some(path) = &a.plot {
        report_plot::auc_vs_shots(path, &shots_series(&found))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nplot: {}", path.display());
    }
    Ok(())
}

/// One line per run, by method, `m` and seed: the rounds the selection ran and kept, the
/// validation loss of the kept round (runs with validation rows), whether the outputs come
/// from a refit on all `m` rows, the test AUC and the training time.
fn runs_table(found: &[RunSummary]) -> String {
    use std::fmt::Write;
    let mut runs: Vec<&RunSummary> = found.iter().collect();
    runs.sort_by_key(|s| (label(s), s.shots, s.seed));
    let mut out = String::from(
        "\nPer run\n\n| method | m | seed | rounds run / kept | validation loss (kept) | refit \
         | test AUC | train s |\n|---|---|---|---|---|---|---|---|\n",
    );
    for s in runs {
        let losses = &s.validation_loss_by_round;
        let run = if losses.is_empty() {
            s.rounds
        } else {
            losses.len()
        };
        let kept_loss = s
            .rounds
            .checked_sub(1)
            .and_then(|r| losses.get(r))
            .map_or(String::new(), |l| format!("{l:.4}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {run} / {} | {kept_loss} | {} | {} | {:.0} |",
            label(s),
            s.shots,
            s.seed,
            s.rounds,
            if s.refit { "yes" } else { "no" },
            s.test_auc.map_or(String::new(), |a| format!("{a:.4}")),
            s.train_s
        );
    }
    out
}

/// Per method (label), the mean and sd of the test AUC over seeds at each `m`, in increasing
/// `m`; runs without a test AUC are left out.
fn shots_series(found: &[RunSummary]) -> Vec<ShotsSeries> {
    let mut by: BTreeMap<String, BTreeMap<usize, Vec<f64>>> = BTreeMap::new();
    for s in found {
        if let Some(auc) = s.test_auc {
            by.entry(label(s))
                .or_default()
                .entry(s.shots)
                .or_default()
                .push(auc);
        }
    }
    by.into_iter()
        .map(|(label, per_m)| {
            let points = per_m
                .into_iter()
                .map(|(shots, aucs)| {
                    let (mean, sd) = mean_sd(&aucs);
                    ShotsPoint {
                        shots,
                        mean,
                        sd,
                        seeds: aucs.len(),
                    }
                })
                .collect();
            (label, points)
        })
        .collect()
}

/// Mean and sample sd of `values` (sd 0 for fewer than two; mean NaN for none).
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// A table cell for `values`: empty, the one value, or `mean ± sd (n)` with the sample sd.
fn mean_sd_cell(values: &[f64]) -> String {
    match values {
        [] => String::new(),
        [v] => format!("{v:.4}"),
        _ => {
            let (mean, sd) = mean_sd(values);
            format!("{mean:.4} ± {sd:.4} ({})", values.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_one_value_or_mean_and_sample_sd() {
        assert_eq!(mean_sd_cell(&[]), "");
        assert_eq!(mean_sd_cell(&[0.61234]), "0.6123");
        // Mean 0.62, sample sd sqrt(((-0.01)² + 0 + 0.01²) / 2) = 0.01.
        assert_eq!(mean_sd_cell(&[0.61, 0.62, 0.63]), "0.6200 ± 0.0100 (3)");
    }

    fn run(method: &str, shots: usize, seed: u64, auc: Option<f64>) -> RunSummary {
        RunSummary {
            method: method.into(),
            tasks: 10,
            scored_tasks: Some(8),
            seed,
            shots,
            rounds: 2,
            test_auc: auc,
            test_accuracy: 0.5,
            params_per_task: 1.0,
            bytes_per_task: 1.0,
            shared_bytes: 1,
            train_s: 1.0,
            privacy: None,
            validation_auc: None,
            validation_loss_by_round: Vec::new(),
            refit: false,
        }
    }

    #[test]
    fn the_per_run_table_shows_the_rounds_kept_and_their_validation_loss() {
        let mut selected = run("lrs", 20, 1, Some(0.65));
        selected.rounds = 2;
        selected.refit = true;
        selected.validation_loss_by_round = vec![0.66, 0.63, 0.64];
        let table = runs_table(&[selected, run("global", 20, 0, None)]);
        let lines: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(
            lines[1..],
            [
                "| global | 20 | 0 | 2 / 2 |  | no |  | 1 |",
                "| lrs | 20 | 1 | 3 / 2 | 0.6300 | yes | 0.6500 | 1 |",
            ]
        );
    }

    #[test]
    fn the_plot_series_pool_seeds_per_method_and_m() {
        let series = shots_series(&[
            run("lrs", 20, 0, Some(0.64)),
            run("lrs", 5, 0, Some(0.60)),
            run("lrs", 20, 1, Some(0.66)),
            run("global", 20, 0, Some(0.62)),
            run("global", 10, 0, None),
        ]);
        let names: Vec<&str> = series.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(names, ["global", "lrs"]);
        // A run without a test AUC adds no point.
        assert_eq!(series[0].1.len(), 1);
        let lrs = &series[1].1;
        assert_eq!(lrs.iter().map(|p| p.shots).collect::<Vec<_>>(), [5, 20]);
        assert_eq!((lrs[0].seeds, lrs[0].sd), (1, 0.0));
        assert_eq!(lrs[1].seeds, 2);
        assert!((lrs[1].mean - 0.65).abs() < 1e-12);
        // Sample sd of {0.64, 0.66}: sqrt(2 · 0.01² / 1) = 0.02 / √2.
        assert!((lrs[1].sd - 0.02 / 2f64.sqrt()).abs() < 1e-12);
    }
}
