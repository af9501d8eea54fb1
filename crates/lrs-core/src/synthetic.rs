//! Synthetic instances of `y_ij = <x_ij, U* w*_i + b*_i> + z_ij`.
//!
//! `x_ij ~ N(0, I_d)`, `U*` a uniformly random orthonormal `[d, r]` matrix, `w*_i ~ N(0, I_r)`,
//! `b*_i` with `k` non-zeros at a uniformly random support, each `±magnitude`, and
//! `z_ij ~ N(0, σ²)`. Every task draws from its own ChaCha stream derived from `(seed, task)`,
//! so an instance is bit-reproducible whatever the number of threads.

use faer::Mat;
use rand::{seq::index::sample, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::error::{ensure, Result};
use crate::problem::{Instance, LrsParams, TaskData};

/// What to generate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SyntheticSpec {
    /// Feature dimension `d`.
    pub dim: usize,
    /// Rank `r` of the shared part.
    pub rank: usize,
    /// Non-zeros `k` of each sparse part.
    pub sparsity: usize,
    /// Number of tasks `t`.
    pub tasks: usize,
    /// Training samples per task `m`.
    pub samples: usize,
    /// Held-out samples per task (0 for none).
    pub test_samples: usize,
    /// Noise standard deviation `σ`.
    pub noise: f64,
    /// Magnitude of each non-zero of `b*_i` (random sign).
    pub sparse_magnitude: f64,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            dim: 100,
            rank: 5,
            sparsity: 5,
            tasks: 500,
            samples: 80,
            test_samples: 0,
            noise: 0.0,
            sparse_magnitude: 1.0,
            seed: 0,
        }
    }
}

impl SyntheticSpec {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        ensure(self.dim > 0, "d", || "must be positive".into())?;
        ensure(self.rank > 0 && self.rank <= self.dim, "r", || {
            format!("must be in 1..=d={}, got {}", self.dim, self.rank)
        })?;
        ensure(self.sparsity <= self.dim, "k", || {
            format!("must be at most d={}, got {}", self.dim, self.sparsity)
        })?;
        ensure(self.tasks > 0, "tasks", || "must be positive".into())?;
        ensure(self.samples > 0, "samples", || "must be positive".into())?;
        ensure(self.noise.is_finite() && self.noise >= 0.0, "noise", || {
            format!("must be finite and non-negative, got {}", self.noise)
        })?;
        ensure(
            self.sparse_magnitude.is_finite() && self.sparse_magnitude >= 0.0,
            "sparse-magnitude",
            || {
                format!(
                    "must be finite and non-negative, got {}",
                    self.sparse_magnitude
                )
            },
        )?;
        Ok(())
    }

    /// Draws the instance.
    pub fn generate(&self) -> Result<Instance> {
        self.validate()?;
        let (d, r, k, t) = (self.dim, self.rank, self.sparsity, self.tasks);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let u = random_orthonormal(d, r, &mut rng);
        let per_task: Vec<_> = (0..t)
            .into_par_iter()
            .map(|i| {
                let mut rng = task_rng(self.seed, i as u64);
                let w: Vec<f64> = (0..r).map(|_| rng.sample(StandardNormal)).collect();
                let mut b = vec![0.0; d];
                let mut support = sample(&mut rng, d, k).into_vec();
                support.sort_unstable();
                for p in support {
                    b[p] = if rng.gen::<bool>() {
                        self.sparse_magnitude
                    } else {
                        -self.sparse_magnitude
                    };
                }
                let theta: Vec<f64> = (0..d)
                    .map(|p| b[p] + (0..r).map(|a| u[(p, a)] * w[a]).sum::<f64>())
                    .collect();
                let (x, y) = draw_samples(&theta, self.samples, self.noise, &mut rng);
                let (xt, yt) = draw_samples(&theta, self.test_samples, self.noise, &mut rng);
                (w, b, x, y, xt, yt)
            })
            .collect();
        let mut w = Vec::with_capacity(t * r);
        let mut b = Vec::with_capacity(t * d);
        let mut x = Vec::with_capacity(t * self.samples * d);
        let mut y = Vec::with_capacity(t * self.samples);
        let mut xt = Vec::with_capacity(t * self.test_samples * d);
        let mut yt = Vec::with_capacity(t * self.test_samples);
        for (wi, bi, xi, yi, xti, yti) in per_task {
            w.extend(wi);
            b.extend(bi);
            x.extend(xi);
            y.extend(yi);
            xt.extend(xti);
            yt.extend(yti);
        }
        let train = TaskData::new(t, self.samples, d, x, y)?;
        let test = if self.test_samples > 0 {
            Some(TaskData::new(t, self.test_samples, d, xt, yt)?)
        } else {
            None
        };
        Ok(Instance {
            train,
            test,
            truth: Some(LrsParams { u, w, b }),
        })
    }
}

/// The random stream of task `task` under `seed`: independent of thread scheduling.
pub(crate) fn task_rng(seed: u64, task: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(task.wrapping_add(1));
    rng
}

/// `m` samples `x ~ N(0, I)`, `y = <x, θ> + N(0, σ²)`.
fn draw_samples(theta: &[f64], m: usize, noise: f64, rng: &mut ChaCha8Rng) -> (Vec<f64>, Vec<f64>) {
    let d = theta.len();
    let mut x = Vec::with_capacity(m * d);
    let mut y = Vec::with_capacity(m);
    for _ in 0..m {
        let row: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
        let z: f64 = rng.sample(StandardNormal);
        y.push(row.iter().zip(theta).map(|(a, b)| a * b).sum::<f64>() + noise * z);
        x.extend(row);
    }
    (x, y)
}

/// A `[d, r]` matrix with orthonormal columns drawn uniformly (QR of a Gaussian matrix,
/// signs fixed so that `R` has a positive diagonal).
pub fn random_orthonormal(d: usize, r: usize, rng: &mut impl Rng) -> Mat<f64> {
    let g = Mat::<f64>::from_fn(d, r, |_, _| rng.sample(StandardNormal));
    orthonormalize(&g).0
}

/// Thin QR `A = Q R` with `R`'s diagonal made non-negative; returns `(Q, R)`.
pub fn orthonormalize(a: &Mat<f64>) -> (Mat<f64>, Mat<f64>) {
    let qr = a.qr();
    let mut q = qr.compute_thin_Q();
    let mut rmat = qr.thin_R().to_owned();
    for j in 0..rmat.nrows() {
        if rmat[(j, j)] < 0.0 {
            for i in 0..q.nrows() {
                q[(i, j)] = -q[(i, j)];
            }
            for c in 0..rmat.ncols() {
                rmat[(j, c)] = -rmat[(j, c)];
            }
        }
    }
    (q, rmat)
}
