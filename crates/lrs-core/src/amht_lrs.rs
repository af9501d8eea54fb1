//! AMHT-LRS: alternating minimisation with hard thresholding for `Θ = U W + B`
//! (DESIGN.md §1, Pal et al. 2024).
//!
//! Each round: the task phase fits every `b_i` (HTP with `U` projected out) and `w_i`
//! ([`crate::task_step`]); the shared phase refits `U` by least squares over all tasks
//! ([`crate::shared_step`]) and re-orthonormalises it by QR, folding `R` into the `w_i` so that
//! `Θ` is unchanged. Optionally each round sees a fresh slice of every task's samples
//! (sample splitting), and the shared step can down-weight tasks whose fit is far worse than
//! the typical task's (a task whose support is still wrong would otherwise pull `U` off).

use std::time::Instant;

use crate::error::{ensure, Result};
use crate::init::{initial_factor, Init};
use crate::metrics::{relative_error, relative_theta_error};
use crate::problem::{LrsParams, TaskData};
use crate::shared_step::{SharedProblem, SharedSolver};
use crate::sparse_step::SparseStepConfig;
use crate::synthetic::orthonormalize;
use crate::task_step::fit_all_tasks;

/// Settings of AMHT-LRS.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AmhtConfig {
    /// Rank `r`.
    pub rank: usize,
    /// The sparse step (its `sparsity` is `k`; `k = 0` is the low-rank-only model).
    pub sparse: SparseStepConfig,
    /// Maximum number of rounds `L`.
    pub max_rounds: usize,
    /// Stop when `‖Θ_ℓ − Θ_{ℓ−1}‖_F / ‖Θ_ℓ‖_F < tol`.
    pub tol: f64,
    /// Initialisation of `U`.
    pub init: Init,
    /// Seed for random initialisation.
    pub seed: u64,
    /// Split each task's samples into this many disjoint folds and use one per round
    /// (`None`: every round sees all samples).
    pub sample_splitting: Option<usize>,
    /// Shared-step solver.
    pub solver: SharedSolver,
    /// Drop from the shared step every task whose residual exceeds this multiple of the
    /// median task residual (`None`: plain least squares over all tasks).
    pub robust_cutoff: Option<f64>,
}

impl Default for AmhtConfig {
    fn default() -> Self {
        Self {
            rank: 5,
            sparse: SparseStepConfig::default(),
            max_rounds: 100,
            tol: 1e-12,
            init: Init::MethodOfMoments,
            seed: 0,
            sample_splitting: None,
            solver: SharedSolver::default(),
            robust_cutoff: Some(10.0),
        }
    }
}

/// One row of the per-round trace.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RoundTrace {
    /// Round number, from 1.
    pub round: usize,
    /// Relative change of `Θ` in this round.
    pub relative_change: f64,
    /// Mean squared training residual after the task phase.
    pub train_mse: f64,
    /// Tasks dropped from the shared step by the robust rule.
    pub dropped_tasks: usize,
    /// `‖Θ̂ − Θ*‖_F / ‖Θ*‖_F`, when the truth was supplied.
    pub theta_error: Option<f64>,
    /// Seconds since the start of the fit.
    pub elapsed_s: f64,
}

/// A fitted model and how the fit went.
#[derive(Debug, Clone)]
pub struct AmhtResult {
    /// The estimate.
    pub params: LrsParams,
    /// One entry per round.
    pub trace: Vec<RoundTrace>,
    /// Whether the stopping rule fired before `max_rounds`.
    pub converged: bool,
}

impl AmhtConfig {
    /// Checks the settings against the data.
    pub fn validate(&self, data: &TaskData) -> Result<()> {
        ensure(self.rank >= 1 && self.rank <= data.dim, "rank", || {
            format!("must be in 1..=d={}, got {}", data.dim, self.rank)
        })?;
        ensure(self.sparse.sparsity <= data.dim, "sparsity", || {
            format!(
                "must be at most d={}, got {}",
                data.dim, self.sparse.sparsity
            )
        })?;
        ensure(self.max_rounds >= 1, "iters", || {
            "must be at least 1".into()
        })?;
        ensure(self.tol.is_finite() && self.tol >= 0.0, "tol", || {
            format!("must be finite and ≥ 0, got {}", self.tol)
        })?;
        ensure(
            self.sparse.step_scale.is_finite() && self.sparse.step_scale > 0.0,
            "step-scale",
            || format!("must be positive, got {}", self.sparse.step_scale),
        )?;
        if let Some(f) = self.sample_splitting {
            ensure(f >= 1 && f <= data.samples, "sample-splitting", || {
                format!("folds must be in 1..=m={}, got {f}", data.samples)
            })?;
        }
        if let Some(c) = self.robust_cutoff {
            ensure(c.is_finite() && c > 1.0, "robust-cutoff", || {
                format!("must be > 1, got {c}")
            })?;
        }
        Ok(())
    }
}

/// Fits `Θ = U W + B` to `data` with AMHT-LRS. `truth` only feeds the trace's error column.
pub fn amht_lrs(
    data: &TaskData,
    cfg: &AmhtConfig,
    truth: Option<&LrsParams>,
) -> Result<AmhtResult> {
    cfg.validate(data)?;
    let start = Instant::now();
    let (t, d, r) = (data.tasks, data.dim, cfg.rank);
    let folds: Vec<TaskData> = match cfg.sample_splitting {
        Some(f) if f > 1 => (0..f)
            .map(|j| data.slice_samples(j * data.samples / f..(j + 1) * data.samples / f))
            .collect(),
        _ => Vec::new(),
    };
    let init_data = folds.first().unwrap_or(data);
    let mut u = initial_factor(init_data, r, cfg.init, cfg.seed)?;
    let mut params = LrsParams {
        u: u.clone(),
        w: vec![0.0; t * r],
        b: vec![0.0; t * d],
    };
    let mut theta_prev = params.theta();
    let mut trace = Vec::new();
    let mut converged = false;
    // Swap search is the expensive last resort of the sparse step: worth it only once most
    // tasks fit exactly, i.e. when U is right and the remaining misfits are wrong supports.
    let mut step_cfg = SparseStepConfig {
        swap_passes: 0,
        ..cfg.sparse.clone()
    };
    for round in 1..=cfg.max_rounds {
        let round_data = if folds.is_empty() {
            data
        } else {
            &folds[(round - 1) % folds.len()]
        };
        let fits = fit_all_tasks(round_data, u.as_ref(), &params.b, &step_cfg);
        let certified = fits.iter().filter(|f| f.certified).count();
        if 2 * certified > t {
            step_cfg.swap_passes = cfg.sparse.swap_passes;
        }
        for (i, f) in fits.iter().enumerate() {
            params.w[i * r..(i + 1) * r].copy_from_slice(&f.w);
            params.b[i * d..(i + 1) * d].copy_from_slice(&f.b);
        }
        let residuals: Vec<f64> = fits.iter().map(|f| f.residual_sq).collect();
        let train_mse = residuals.iter().sum::<f64>() / (t * round_data.samples) as f64;
        let weights = robust_weights(&residuals, cfg.robust_cutoff);
        let dropped_tasks = weights.iter().filter(|w| **w == 0.0).count();
        let problem = SharedProblem {
            data: round_data,
            w: &params.w,
            b: &params.b,
            weights: &weights,
            rank: r,
        };
        let u_ls = problem.solve(cfg.solver, u.as_ref());
        let (q, rmat) = orthonormalize(&u_ls);
        // U_ls w = Q (R w): keep Θ while U becomes orthonormal.
        for i in 0..t {
            let wi: Vec<f64> = params.w[i * r..(i + 1) * r].to_vec();
            for a in 0..r {
                params.w[i * r + a] = (a..r).map(|c| rmat[(a, c)] * wi[c]).sum();
            }
        }
        u = q;
        params.u = u.clone();
        let theta = params.theta();
        let relative_change = relative_error(&theta_prev, &theta);
        theta_prev = theta;
        trace.push(RoundTrace {
            round,
            relative_change,
            train_mse,
            dropped_tasks,
            theta_error: truth.map(|tr| relative_theta_error(&params, tr)),
            elapsed_s: start.elapsed().as_secs_f64(),
        });
        if relative_change < cfg.tol {
            converged = true;
            break;
        }
    }
    // A last task phase so that (w, b) are the best response to the final U.
    let final_cfg = SparseStepConfig {
        thorough: true,
        ..step_cfg
    };
    let fits = fit_all_tasks(data, u.as_ref(), &params.b, &final_cfg);
    for (i, f) in fits.into_iter().enumerate() {
        params.w[i * r..(i + 1) * r].copy_from_slice(&f.w);
        params.b[i * d..(i + 1) * d].copy_from_slice(&f.b);
    }
    Ok(AmhtResult {
        params,
        trace,
        converged,
    })
}

/// Weight 0 for tasks whose residual exceeds `cutoff ×` the median residual (and the
/// residual floor that noise-free data would leave), 1 otherwise.
fn robust_weights(residuals: &[f64], cutoff: Option<f64>) -> Vec<f64> {
    let Some(c) = cutoff else {
        return vec![1.0; residuals.len()];
    };
    let mut sorted = residuals.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    let floor = 1e-20 * mean.max(f64::MIN_POSITIVE);
    let limit = (c * median).max(floor);
    let w: Vec<f64> = residuals
        .iter()
        .map(|&x| if x > limit { 0.0 } else { 1.0 })
        .collect();
    // Never drop so many tasks that the shared problem loses its footing.
    if w.iter().sum::<f64>() < 0.5 * residuals.len() as f64 {
        vec![1.0; residuals.len()]
    } else {
        w
    }
}
