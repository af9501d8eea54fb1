//! `lrs linear fit`: one method fitted to a data file, with recovery metrics and wall time.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lrs_core::data_file::{read_instance, write_params};
use lrs_core::{fit, Method};
use serde_json::json;

use super::dp_args::DpArgs;
use super::solver_args::SolverArgs;

/// Arguments of `lrs linear fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// Data file written by `lrs linear generate` (or any file of that format).
    #[arg(long)]
    pub data: PathBuf,
    /// Method: amht-lrs, lowrank, sparse, lstsq, global or oracle.
    #[arg(long, default_value = "amht-lrs")]
    pub method: String,
    /// Rank r.
    #[arg(long, default_value_t = 5)]
    pub rank: usize,
    /// Sparsity k per task.
    #[arg(long, default_value_t = 5)]
    pub sparsity: usize,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// Write the fitted `u`, `w`, `b` here (methods with a structured estimate).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the per-round trace too.
    #[arg(long)]
    pub trace: bool,
    #[command(flatten)]
    pub dp: DpArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the non-private `lrs linear fit`.
pub fn run(a: FitArgs) -> anyhow::Result<()> {
    let method: Method = a.method.parse()?;
    let file = read_instance(&a.data)?;
    let inst = &file.instance;
    let cfg = a.solver.config(a.rank, a.sparsity);
    let truth = inst.truth.as_ref();
    let result = fit(method, &inst.train, &cfg, truth)?;
    let report = result.report(&inst.train, inst.test.as_ref(), truth);
    if let Some(out) = &a.out {
        let params = result.params.as_ref().with_context(|| {
            format!(
                "--out: method {} has no (u, w, b) estimate to write",
                method.name()
            )
        })?;
        let meta = HashMap::from([
            ("method".to_string(), method.name().to_string()),
            ("data".to_string(), a.data.display().to_string()),
        ]);
        write_params(out, params, meta)?;
    }
    if a.json {
        let mut v = json!({
            "method": method.name(),
            "tasks": inst.train.tasks, "samples": inst.train.samples, "dim": inst.train.dim,
            "rank": a.rank, "sparsity": a.sparsity,
            "fit_seconds": result.seconds,
            "rounds": result.trace.len(),
            "metrics": report,
        });
        if a.trace {
            v["trace"] = serde_json::to_value(&result.trace)?;
        }
        println!("{v}");
        return Ok(());
    }
    if a.trace {
        println!(
            "{:>5} {:>12} {:>12} {:>8} {:>9} {:>8} {:>12} {:>8}",
            "round",
            "rel_change",
            "train_mse",
            "dropped",
            "certified",
            "rescued",
            "theta_err",
            "time_s"
        );
        for t in &result.trace {
            println!(
                "{:>5} {:>12.3e} {:>12.3e} {:>8} {:>9} {:>8} {:>12} {:>8.3}",
                t.round,
                t.relative_change,
                t.train_mse,
                t.dropped_tasks,
                t.certified_tasks,
                t.rescued_tasks,
                t.theta_error
                    .map(|e| format!("{e:.3e}"))
                    .unwrap_or_else(|| "-".into()),
                t.elapsed_s
            );
        }
    }
    println!("method            {}", method.name());
    println!(
        "instance          t={} m={} d={} (rank {}, sparsity {})",
        inst.train.tasks, inst.train.samples, inst.train.dim, a.rank, a.sparsity
    );
    print_metrics(&report);
    if !result.trace.is_empty() {
        println!("rounds            {}", result.trace.len());
    }
    println!("fit time          {:.3} s", result.seconds);
    Ok(())
}

/// Prints the recovery metrics block shared by the plain and the private `fit`.
pub fn print_metrics(report: &lrs_core::metrics::Report) {
    let opt = |v: Option<f64>| {
        v.map(|e| format!("{e:.3e}"))
            .unwrap_or_else(|| "n/a".into())
    };
    println!("theta rel. error  {}", opt(report.theta_error));
    println!("subspace dist.    {}", opt(report.subspace_distance));
    match report.support {
        Some(s) => println!(
            "support P/R/F1    {:.4} / {:.4} / {:.4}",
            s.precision, s.recall, s.f1
        ),
        None => println!("support P/R/F1    n/a"),
    }
    println!("train MSE         {:.3e}", report.train_mse);
    println!("held-out MSE      {}", opt(report.test_mse));
}
