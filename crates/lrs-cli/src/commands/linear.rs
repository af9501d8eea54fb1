//! `lrs linear …`: generate synthetic instances, fit AMHT-LRS or a baseline, sweep the
//! phase transition.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use lrs_core::data_file::{read_instance, write_instance, write_params};
use lrs_core::{
    fit, AmhtConfig, Init, Method, SharedSolver, SparseStepConfig, SyntheticSpec, UStep,
};
use serde_json::json;

use crate::commands::sweep::{run_sweep, SweepArgs};

/// Linear-instance subcommands.
#[derive(Debug, Subcommand)]
pub enum LinearCommand {
    /// Draw a synthetic instance `y = <x, U* w* + b*> + z` and write it as safetensors.
    Generate(GenerateArgs),
    /// Fit one method to a data file and print recovery metrics and the fit's wall time.
    Fit(FitArgs),
    /// Success probability vs samples per task for every method (CSV + SVG plot).
    Sweep(SweepArgs),
    /// One noiseless instance with m < d, every method fitted: a table of errors and times.
    Demo(crate::commands::linear_demo::DemoArgs),
}

/// Arguments of `lrs linear generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Dimension d.
    #[arg(long, default_value_t = 100)]
    pub d: usize,
    /// Rank r of the shared part.
    #[arg(long, default_value_t = 5)]
    pub r: usize,
    /// Non-zeros k of each sparse part.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Number of tasks t.
    #[arg(long, default_value_t = 500)]
    pub tasks: usize,
    /// Training samples per task m.
    #[arg(long, default_value_t = 80)]
    pub samples: usize,
    /// Held-out samples per task.
    #[arg(long, default_value_t = 0)]
    pub test_samples: usize,
    /// Noise standard deviation σ.
    #[arg(long, default_value_t = 0.0)]
    pub noise: f64,
    /// Magnitude of each sparse non-zero.
    #[arg(long, default_value_t = 1.0)]
    pub sparse_magnitude: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

impl GenerateArgs {
    fn spec(&self) -> SyntheticSpec {
        SyntheticSpec {
            dim: self.d,
            rank: self.r,
            sparsity: self.k,
            tasks: self.tasks,
            samples: self.samples,
            test_samples: self.test_samples,
            noise: self.noise,
            sparse_magnitude: self.sparse_magnitude,
            seed: self.seed,
        }
    }
}

/// Solver settings shared by `fit` and `sweep`.
#[derive(Debug, Args, Clone)]
pub struct SolverArgs {
    /// Maximum number of rounds.
    #[arg(long, default_value_t = 100)]
    pub iters: usize,
    /// Stop when the relative change of Θ falls below this.
    #[arg(long, default_value_t = 1e-12)]
    pub tol: f64,
    /// Initialisation of U: method of moments or random.
    #[arg(long, default_value = "mom", value_parser = ["mom", "random"])]
    pub init: String,
    /// Seed (random init).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// HTP iterations per start in the sparse step.
    #[arg(long, default_value_t = 20)]
    pub inner_steps: usize,
    /// HTP step size times m (η = step_scale / m).
    #[arg(long, default_value_t = 1.0)]
    pub step_scale: f64,
    /// Disable the cold-start/OMP restarts of the sparse step.
    #[arg(long)]
    pub no_restarts: bool,
    /// Split each task's samples into this many folds, one per round.
    #[arg(long)]
    pub sample_splitting: Option<usize>,
    /// Shared-step solver: auto (dense when d·r ≤ 2048), dense or cg.
    #[arg(long, default_value = "auto", value_parser = ["auto", "dense", "cg"])]
    pub solver: String,
    /// U update of the shared step: gauss-newton (w, b re-fitted) or ls (alternating least
    /// squares, w and b held).
    #[arg(long, default_value = "gauss-newton", value_parser = ["gauss-newton", "ls"])]
    pub u_step: String,
    /// Drop tasks with residual above this multiple of the median from the U-step (0 = off).
    #[arg(long, default_value_t = 10.0)]
    pub robust_cutoff: f64,
}

impl SolverArgs {
    /// The AMHT-LRS configuration for rank `r` and sparsity `k`.
    pub fn config(&self, rank: usize, sparsity: usize) -> AmhtConfig {
        AmhtConfig {
            rank,
            sparse: SparseStepConfig {
                sparsity,
                step_scale: self.step_scale,
                inner_steps: self.inner_steps,
                restarts: !self.no_restarts,
                ..Default::default()
            },
            max_rounds: self.iters,
            tol: self.tol,
            init: if self.init == "random" {
                Init::Random
            } else {
                Init::MethodOfMoments
            },
            seed: self.seed,
            sample_splitting: self.sample_splitting,
            solver: match self.solver.as_str() {
                "dense" => SharedSolver::Dense,
                "cg" => SharedSolver::ConjugateGradient,
                _ => SharedSolver::default(),
            },
            u_step: if self.u_step == "ls" {
                UStep::LeastSquares
            } else {
                UStep::GaussNewton
            },
            robust_cutoff: (self.robust_cutoff > 0.0).then_some(self.robust_cutoff),
        }
    }
}

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
    pub dp: crate::commands::private_linear::DpArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a linear subcommand.
pub fn run(cmd: LinearCommand) -> anyhow::Result<()> {
    match cmd {
        LinearCommand::Generate(a) => generate(a),
        LinearCommand::Fit(a) => fit_cmd(a),
        LinearCommand::Sweep(a) => run_sweep(a),
        LinearCommand::Demo(a) => crate::commands::linear_demo::run(a),
    }
}

fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let spec = a.spec();
    let inst = spec.generate()?;
    let meta: HashMap<String, String> = [
        ("d", a.d.to_string()),
        ("r", a.r.to_string()),
        ("k", a.k.to_string()),
        ("tasks", a.tasks.to_string()),
        ("samples", a.samples.to_string()),
        ("test_samples", a.test_samples.to_string()),
        ("noise", a.noise.to_string()),
        ("sparse_magnitude", a.sparse_magnitude.to_string()),
        ("seed", a.seed.to_string()),
        ("generator", "lrs linear generate".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    write_instance(&a.out, &inst, meta).with_context(|| format!("writing {}", a.out.display()))?;
    if a.json {
        println!("{}", json!({ "out": a.out, "spec": spec }));
    } else {
        println!(
            "wrote {} (d={}, r={}, k={}, tasks={}, samples={}, test_samples={}, noise={}, seed={})",
            a.out.display(),
            a.d,
            a.r,
            a.k,
            a.tasks,
            a.samples,
            a.test_samples,
            a.noise,
            a.seed
        );
    }
    Ok(())
}

fn fit_cmd(a: FitArgs) -> anyhow::Result<()> {
    if a.dp.enabled() {
        return crate::commands::private_linear::run_private_fit(&a);
    }
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
