//! Baselines fitted in the same harness as AMHT-LRS.
//!
//! - per-task least squares (minimum-norm when `m < d`),
//! - sparse-only: per-task HTP with budget `k` (no shared part),
//! - one global `θ` for all tasks (pooled least squares),
//! - the oracle: knows `U*` and every support, so each task is an `(r + k)`-unknown least squares.
//!
//! The low-rank-only model (FedRep/MLLAM) is AMHT-LRS with `k = 0`, see [`crate::methods`].

use faer::Mat;
use rayon::prelude::*;

use crate::hard_threshold::support_of;
use crate::linalg::{lstsq, mat_t_vec, par_chunked_sum, solve_spd};
use crate::problem::{LrsParams, TaskData};
use crate::sparse_step::{ProjectedTask, SparseStepConfig};

/// Per-task least squares; `[t, d]` estimates. With `m < d` this is the minimum-norm
/// interpolant (the ridge limit `λ → 0`), which cannot recover `θ_i` in general.
pub fn per_task_least_squares(data: &TaskData) -> Vec<f64> {
    (0..data.tasks)
        .into_par_iter()
        .flat_map_iter(|i| lstsq(data.x_task(i), data.y_task(i)))
        .collect()
}

/// Sparse-only: each `θ_i` modelled as `k`-sparse, fitted by HTP with restarts.
///
/// The exact-fit polish of AMHT-LRS (swap search, basis pursuit, random restarts) is turned
/// off: it exists to certify an exact fit, which a misspecified sparse model never reaches, so
/// it would only multiply the cost on every task.
pub fn sparse_only(data: &TaskData, cfg: &SparseStepConfig) -> Vec<f64> {
    let zero = vec![0.0; data.dim];
    let cfg = &SparseStepConfig {
        swap_passes: 0,
        random_restarts: 0,
        ..cfg.clone()
    };
    (0..data.tasks)
        .into_par_iter()
        .flat_map_iter(|i| ProjectedTask::plain(data.x_task(i), data.y_task(i)).solve(&zero, cfg))
        .collect()
}

/// One `θ` for every task: `argmin_θ Σ_i ‖y_i − X_i θ‖²`, repeated for every task.
pub fn global_model(data: &TaskData) -> Vec<f64> {
    let d = data.dim;
    let gram = par_chunked_sum(data.tasks, d * d + d, |range, acc| {
        for i in range {
            let x = data.x_task(i);
            let y = data.y_task(i);
            for s in 0..data.samples {
                for p in 0..d {
                    for q in 0..d {
                        acc[p * d + q] += x[(s, p)] * x[(s, q)];
                    }
                }
            }
            for (p, v) in mat_t_vec(x, y).into_iter().enumerate() {
                acc[d * d + p] += v;
            }
        }
    });
    let h = Mat::<f64>::from_fn(d, d, |p, q| gram[p * d + q]);
    let rhs = Mat::<f64>::from_fn(d, 1, |p, _| gram[d * d + p]);
    let theta = solve_spd(&h, &rhs);
    (0..data.tasks)
        .flat_map(|_| (0..d).map(|p| theta[(p, 0)]))
        .collect::<Vec<_>>()
}

/// The oracle: `U*` and `supp(b*_i)` known; `(w_i, b_i)` by least squares. Returns the
/// estimate with `U = U*`.
pub fn oracle(data: &TaskData, truth: &LrsParams) -> LrsParams {
    let (d, r) = (data.dim, truth.rank());
    let per_task: Vec<(Vec<f64>, Vec<f64>)> = (0..data.tasks)
        .into_par_iter()
        .map(|i| {
            let support = support_of(truth.b_task(i));
            let x = data.x_task(i);
            let xu = x * &truth.u;
            let design = Mat::<f64>::from_fn(data.samples, r + support.len(), |s, j| {
                if j < r {
                    xu[(s, j)]
                } else {
                    x[(s, support[j - r])]
                }
            });
            let coef = lstsq(design.as_ref(), data.y_task(i));
            let mut b = vec![0.0; d];
            for (j, &p) in support.iter().enumerate() {
                b[p] = coef[r + j];
            }
            (coef[..r].to_vec(), b)
        })
        .collect();
    let mut w = Vec::with_capacity(data.tasks * r);
    let mut b = Vec::with_capacity(data.tasks * d);
    for (wi, bi) in per_task {
        w.extend(wi);
        b.extend(bi);
    }
    LrsParams {
        u: truth.u.clone(),
        w,
        b,
    }
}
