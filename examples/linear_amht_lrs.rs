//! The paper's linear instance with the library API: generate a seeded noiseless problem
//! `θ_i = U w_i + b_i` (shared rank-r subspace plus a k-sparse delta per task) with fewer
//! samples per task than dimensions, fit AMHT-LRS and per-task least squares, and compare.
//!
//! ```text
//! cargo run --example linear_amht_lrs
//! ```

use lrs_core::{fit, AmhtConfig, Method, SparseStepConfig, SyntheticSpec};

fn main() -> anyhow::Result<()> {
    let spec = SyntheticSpec {
        dim: 40,
        rank: 3,
        sparsity: 3,
        tasks: 200,
        samples: 25,
        test_samples: 10,
        seed: 1,
        ..Default::default()
    };
    let inst = spec.generate()?;
    println!(
        "d={}, r={}, k={}, {} tasks × {} samples (fewer samples than dimensions)",
        spec.dim, spec.rank, spec.sparsity, spec.tasks, spec.samples
    );
    let cfg = AmhtConfig {
        rank: spec.rank,
        sparse: SparseStepConfig {
            sparsity: spec.sparsity,
            ..Default::default()
        },
        seed: 3,
        ..Default::default()
    };
    let truth = inst.truth.as_ref();
    for method in [Method::AmhtLrs, Method::Lstsq] {
        let f = fit(method, &inst.train, &cfg, truth)?;
        let r = f.report(&inst.train, inst.test.as_ref(), truth);
        println!(
            "{:<10} relative error of Θ {:.2e}, held-out MSE {:.2e}, {:.2} s",
            method.name(),
            r.theta_error.unwrap_or(f64::NAN),
            r.test_mse.unwrap_or(f64::NAN),
            f.seconds
        );
    }
    Ok(())
}
