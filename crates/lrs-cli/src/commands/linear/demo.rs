//! `lrs linear demo`: the paper's linear instance. One noiseless instance with fewer samples per task than
//! dimensions (d=100, r=5, k=5, t=500, m=40), every method fitted, a table of errors and times.

use clap::Args;
use lrs_core::{fit, Method, SyntheticSpec};

use super::solver_args::SolverArgs;

/// Arguments of `lrs linear demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Samples per task.
    #[arg(long, default_value_t = 40)]
    pub samples: usize,
    /// Number of tasks.
    #[arg(long, default_value_t = 500)]
    pub tasks: usize,
    /// Seed of the instance.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    #[command(flatten)]
    pub solver: SolverArgs,
}

/// Runs the demo.
pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    let spec = SyntheticSpec {
        dim: 100,
        rank: 5,
        sparsity: 5,
        tasks: a.tasks,
        samples: a.samples,
        test_samples: 20,
        seed: a.data_seed,
        ..Default::default()
    };
    println!(
        "lrs linear demo: θ_i = U w_i + b_i with d={}, r={}, k={}, t={} tasks and m={} samples per task (m < d: per-task least squares cannot recover θ_i)\n",
        spec.dim, spec.rank, spec.sparsity, spec.tasks, spec.samples
    );
    let inst = spec.generate()?;
    let cfg = a.solver.config(spec.rank, spec.sparsity);
    let truth = inst.truth.as_ref();
    println!(
        "{:<10} {:>14} {:>14} {:>12} {:>10}",
        "method", "rel. error Θ", "held-out MSE", "support F1", "time (s)"
    );
    for method in Method::ALL {
        let f = fit(method, &inst.train, &cfg, truth)?;
        let r = f.report(&inst.train, inst.test.as_ref(), truth);
        println!(
            "{:<10} {:>14.3e} {:>14.3e} {:>12} {:>10.2}",
            method.name(),
            r.theta_error.unwrap_or(f64::NAN),
            r.test_mse.unwrap_or(f64::NAN),
            r.support
                .map(|s| format!("{:.4}", s.f1))
                .unwrap_or_else(|| "-".into()),
            f.seconds
        );
    }
    println!("\nNext: `lrs linear sweep` draws success vs samples per task for every method.");
    Ok(())
}
