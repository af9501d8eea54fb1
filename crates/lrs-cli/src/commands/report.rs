//! `lrs report`: a markdown table of finished runs (their `summary.json`), one row per method
//! and scored task count, one column group per number of shots. Runs of the same method, task
//! count and shots with different seeds share a cell: their mean ± sample sd and count.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lrs_train::run::RunSummary;

/// Arguments of `lrs report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Directory whose sub-directories are runs (each with `summary.json`).
    #[arg(long)]
    pub runs: PathBuf,
}

/// Runs `lrs report`.
pub fn run(a: ReportArgs) -> anyhow::Result<()> {
    let mut found: Vec<RunSummary> = Vec::new();
    let entries =
        std::fs::read_dir(&a.runs).with_context(|| format!("reading {}", a.runs.display()))?;
    for e in entries.flatten() {
        let p = e.path().join("summary.json");
        if p.is_file() {
            let s: RunSummary = serde_json::from_slice(&std::fs::read(&p)?)
                .with_context(|| format!("parsing {}", p.display()))?;
            found.push(s);
        }
    }
    anyhow::ensure!(
        !found.is_empty(),
        "no run with summary.json under {}",
        a.runs.display()
    );
    let mut shots: Vec<usize> = found.iter().map(|s| s.shots).collect();
    shots.sort_unstable();
    shots.dedup();
    // (tasks desc, method) → shots → the runs (one per seed)
    type Cell<'a> = Vec<&'a RunSummary>;
    let mut rows: BTreeMap<(std::cmp::Reverse<usize>, String), BTreeMap<usize, Cell>> =
        BTreeMap::new();
    for s in &found {
        // Private runs are told apart by their guarantee.
        let label = match &s.privacy {
            Some(g) => format!("{} (ε = {:.3}, δ = {})", s.method, g.epsilon, g.delta),
            None => s.method.clone(),
        };
        let users = s.scored_tasks.unwrap_or(s.tasks);
        rows.entry((std::cmp::Reverse(users), label))
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
    Ok(())
}

/// A table cell for `values`: empty, the one value, or `mean ± sd (n)` with the sample sd.
fn mean_sd_cell(values: &[f64]) -> String {
    match values {
        [] => String::new(),
        [v] => format!("{v:.4}"),
        _ => {
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            format!("{mean:.4} ± {:.4} ({})", var.sqrt(), values.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mean_sd_cell;

    #[test]
    fn cells_show_one_value_or_mean_and_sample_sd() {
        assert_eq!(mean_sd_cell(&[]), "");
        assert_eq!(mean_sd_cell(&[0.61234]), "0.6123");
        // Mean 0.62, sample sd sqrt(((-0.01)² + 0 + 0.01²) / 2) = 0.01.
        assert_eq!(mean_sd_cell(&[0.61, 0.62, 0.63]), "0.6200 ± 0.0100 (3)");
    }
}
