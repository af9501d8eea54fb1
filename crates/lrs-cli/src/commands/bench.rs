//! `lrs bench linear`: fit time of AMHT-LRS vs number of tasks and vs dimension; the other
//! benchmarks' entry points.

use std::time::Instant;

use clap::{Args, Subcommand};
use lrs_core::{fit, Method, SyntheticSpec};
use serde_json::json;

use crate::commands::linear::solver_args::SolverArgs;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// AMHT-LRS fit time vs t (at fixed d) and vs d (at fixed t).
    Linear(BenchLinearArgs),
    /// Serving: mixed-task throughput and latency, task load time, memory per task.
    Serve(crate::commands::bench_serve::BenchServeArgs),
    /// Load test: concurrent clients over many tasks while tasks change; every answer checked.
    Load(crate::commands::bench_load::BenchLoadArgs),
    /// Training: rows/s of one shared-phase step, optionally beside PyTorch + PEFT.
    Train(crate::commands::bench_train::BenchTrainArgs),
    /// The planted deep benchmark: students of every method against a teacher with planted
    /// low-rank and sparse parts, at several m and seeds.
    Planted(crate::commands::bench_planted::BenchPlantedArgs),
}

/// Arguments of `lrs bench linear`.
#[derive(Debug, Args)]
pub struct BenchLinearArgs {
    /// Task counts to time at d = `--d`.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100, 1000, 10_000, 100_000])]
    pub tasks: Vec<usize>,
    /// Dimensions to time at t = `--tasks-for-d`.
    #[arg(long, value_delimiter = ',', default_values_t = vec![50, 100, 200, 500, 1000, 2000, 5000])]
    pub dims: Vec<usize>,
    /// Dimension for the t-sweep.
    #[arg(long, default_value_t = 100)]
    pub d: usize,
    /// Task count for the d-sweep.
    #[arg(long, default_value_t = 1000)]
    pub tasks_for_d: usize,
    /// Rank r.
    #[arg(long, default_value_t = 5)]
    pub r: usize,
    /// Sparsity k.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Samples per task m.
    #[arg(long, default_value_t = 30)]
    pub samples: usize,
    /// Rounds per fit (fixed, so times compare across sizes).
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Linear(a) => bench_linear(a),
        BenchCommand::Serve(a) => crate::commands::bench_serve::run(a),
        BenchCommand::Load(a) => crate::commands::bench_load::run(a),
        BenchCommand::Train(a) => crate::commands::bench_train::run(a),
        BenchCommand::Planted(a) => crate::commands::bench_planted::run(a),
    }
}

fn bench_linear(a: BenchLinearArgs) -> anyhow::Result<()> {
    let mut cfg = a.solver.config(a.r, a.k);
    cfg.max_rounds = a.rounds;
    cfg.tol = 0.0;
    if !a.json {
        println!(
            "{:>8} {:>6} {:>4} {:>4} {:>10} {:>12} {:>14}",
            "t", "d", "m", "L", "fit_s", "s_per_round", "us_per_task_rd"
        );
    }
    let grid: Vec<(usize, usize)> = a
        .tasks
        .iter()
        .map(|&t| (t, a.d))
        .chain(a.dims.iter().map(|&d| (a.tasks_for_d, d)))
        .collect();
    for (t, d) in grid {
        let inst = SyntheticSpec {
            dim: d,
            rank: a.r,
            sparsity: a.k,
            tasks: t,
            samples: a.samples,
            ..Default::default()
        }
        .generate()?;
        let start = Instant::now();
        let f = fit(Method::AmhtLrs, &inst.train, &cfg, None)?;
        let total = start.elapsed().as_secs_f64();
        let rounds = f.trace.len().max(1);
        let per_round = f.seconds / rounds as f64;
        if a.json {
            println!(
                "{}",
                json!({"tasks": t, "dim": d, "samples": a.samples, "rounds": rounds, "fit_seconds": f.seconds, "seconds_per_round": per_round, "wall_seconds": total})
            );
        } else {
            println!(
                "{:>8} {:>6} {:>4} {:>4} {:>10.3} {:>12.4} {:>14.2}",
                t,
                d,
                a.samples,
                rounds,
                f.seconds,
                per_round,
                per_round / t as f64 * 1e6
            );
        }
    }
    Ok(())
}
