//! `lrs report`: a markdown table of finished runs (their `summary.json`), one row per method
//! and task count, one column group per number of shots.

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
    // (tasks desc, method) → shots → summary
    let mut rows: BTreeMap<(std::cmp::Reverse<usize>, String), BTreeMap<usize, &RunSummary>> =
        BTreeMap::new();
    for s in &found {
        // Private runs are told apart by their guarantee.
        let label = match &s.privacy {
            Some(g) => format!("{} (ε = {:.3}, δ = {})", s.method, g.epsilon, g.delta),
            None => s.method.clone(),
        };
        rows.entry((std::cmp::Reverse(s.tasks), label))
            .or_default()
            .insert(s.shots, s);
    }
    let head: Vec<String> = shots.iter().map(|m| format!("m = {m}")).collect();
    println!("Mean per-user test ROC AUC\n");
    println!("| method | users | {} |", head.join(" | "));
    println!("|---|---|{}", "---|".repeat(shots.len()));
    for ((tasks, method), by) in &rows {
        let cells: Vec<String> = shots
            .iter()
            .map(|m| {
                by.get(m)
                    .and_then(|s| s.test_auc)
                    .map_or("".into(), |v| format!("{v:.4}"))
            })
            .collect();
        println!("| {method} | {} | {} |", tasks.0, cells.join(" | "));
    }
    println!("\nPersonal part per user and training wall time\n");
    let head: Vec<String> = shots.iter().map(|m| format!("time m = {m}")).collect();
    println!(
        "| method | users | trainable params / user | task file bytes / user | {} |",
        head.join(" | ")
    );
    println!("|---|---|---|---|{}", "---|".repeat(shots.len()));
    for ((tasks, method), by) in &rows {
        let any = by.values().next_back().copied();
        let cells: Vec<String> = shots
            .iter()
            .map(|m| {
                by.get(m)
                    .map_or("".into(), |s| format!("{:.0} s", s.train_s))
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
