//! `lrs linear generate`: draw a synthetic instance and write it as a data file.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lrs_core::data_file::write_instance;
use lrs_core::SyntheticSpec;
use serde_json::json;

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

/// Runs `lrs linear generate`.
pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
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
