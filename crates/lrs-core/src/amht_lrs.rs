//! AMHT-LRS: alternating minimisation with hard thresholding for `Θ = U W + B`
//! (docs/DESIGN.md §Linear setting, Pal et al. 2024).
//!
//! Each round: the task phase fits every `b_i` (HTP with `U` projected out) and `w_i`
//! ([`crate::task_step`]); the shared phase refits `U` by least squares over all tasks
//! ([`crate::shared_step`]) and re-orthonormalises it by QR, folding `R` into the `w_i` so that
//! `Θ` is unchanged. Optionally each round sees a fresh slice of every task's samples
//! (sample splitting), and the shared step can down-weight tasks whose fit is far worse than
//! the typical task's (a task whose support is still wrong would otherwise pull `U` off).
//!
//! The fit stops as soon as every task passes the residual certificate (its fit residual is
//! below `accept_tol · ‖y_i‖`: on noiseless data, an exact fit), or when `Θ` stops moving.

use std::time::Instant;

use crate::error::{ensure, Result};
use crate::gauss_newton::GaussNewtonStep;
use crate::init::{initial_factor, Init};
use crate::linalg::dot;
use crate::metrics::relative_error;
use crate::problem::{LrsParams, TaskData};
use crate::shared_step::{
    inverse_column_norms, uses_dense, SharedProblem, SharedSolver, TaskGrams,
};
use crate::sparse_step::SparseStepConfig;
use crate::synthetic::orthonormalize;
use crate::task_kernel::TaskScratch;
use crate::task_step::{quick_fit_all_tasks, rescue_tasks, TaskFit};

/// Settings of AMHT-LRS.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AmhtConfig {
    /// Rank `r`.
    pub rank: usize,
    /// The sparse step (its `sparsity` is `k`; `k = 0` is the low-rank-only model).
    pub sparse: SparseStepConfig,
    /// Maximum number of rounds `L`.
    pub max_rounds: usize,
    /// Stop when `‖Θ_ℓ − Θ_{ℓ−1}‖_F / ‖Θ_ℓ‖_F < tol` (or earlier, when every task's fit
    /// passes the residual certificate).
    pub tol: f64,
    /// Initialisation of `U`.
    pub init: Init,
    /// Seed for random initialisation.
    pub seed: u64,
    /// Split each task's samples into this many disjoint folds and use one per round
    /// (`None`: every round sees all samples).
    pub sample_splitting: Option<usize>,
    /// Shared-step solver (of the least-squares update).
    pub solver: SharedSolver,
    /// How the shared step updates `U`.
    pub u_step: UStep,
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
            u_step: UStep::default(),
            robust_cutoff: Some(10.0),
        }
    }
}

/// The shared step's update of `U`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum UStep {
    /// `U ← argmin_U Σ ω_i ‖r_i − X_i U w_i‖²` with `w`, `b` held (the alternating step).
    LeastSquares,
    /// A Gauss–Newton step on the objective with `w`, `b` re-fitted ([`crate::gauss_newton`]):
    /// the same fixed points, reached in far fewer rounds.
    #[default]
    GaussNewton,
}

/// Conjugate-gradient iterations of a Gauss–Newton shared step.
pub const GN_MAX_ITERS: usize = 25;

/// Loosest relative residual to which a Gauss–Newton step is solved. The step is solved to
/// `min(GN_TOL, ρ^GN_FORCING_EXPONENT)`, `ρ` the round's relative fit residual
/// `‖y − ŷ‖ / ‖y‖`, and never below [`GN_TOL_FLOOR`].
pub const GN_TOL: f64 = 1e-2;

/// Exponent of the inexact Newton forcing term `ρ^e`: `e = 1` keeps the quadratic
/// convergence, `e < 1` gives order `1 + e` for fewer conjugate-gradient iterations per step.
/// From the single-sample moment's start, a noiseless d=100, t=500, m=80 fit took the same 5
/// rounds at 0.75 as at 1, with 17 instead of 21 iterations in all.
pub const GN_FORCING_EXPONENT: f64 = 0.75;

/// Tightest relative residual of a Gauss–Newton step.
pub const GN_TOL_FLOOR: f64 = 1e-12;

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
    /// Tasks whose fit passed the residual certificate this round.
    pub certified_tasks: usize,
    /// Tasks for which the sparse step ran its rescue searches this round.
    pub rescued_tasks: usize,
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
    // The truth's Θ, formed once for the trace's error column.
    let truth_theta = truth.map(LrsParams::theta);
    let theta_error = |theta: &[f64]| truth_theta.as_deref().map(|tt| relative_error(theta, tt));
    let mut trace = Vec::new();
    let mut converged = false;
    let mut all_fit = false;
    // The dense shared step reuses every task's Gram matrix: computed once, for each fold.
    let grams: Vec<Option<TaskGrams>> =
        if cfg.u_step == UStep::LeastSquares && uses_dense(cfg.solver, d, r) {
            per_fold(data, &folds, TaskGrams::new)
        } else {
            Vec::new()
        };
    // The data's part of the Gauss–Newton preconditioner, for each fold.
    let column_norms: Vec<Vec<f64>> = if cfg.u_step == UStep::GaussNewton {
        per_fold(data, &folds, inverse_column_norms)
    } else {
        Vec::new()
    };
    // The rescue's searches (forced ℓ1 paths, or swaps, basis pursuit and random restarts where
    // the ℓ1 searches are off) are the expensive last resort of the sparse step: they run in
    // the last task phase only, once U is final.
    let mut step_cfg = SparseStepConfig {
        swap_passes: 0,
        forced_starts: 0,
        // Round 1 has no median to compare with yet: its warm HTP runs alone.
        path_floor: f64::INFINITY,
        ..cfg.sparse.clone()
    };
    for round in 1..=cfg.max_rounds {
        let round_data = if folds.is_empty() {
            data
        } else {
            &folds[(round - 1) % folds.len()]
        };
        let mut fits = quick_fit_all_tasks(round_data, u.as_ref(), &params.b, &step_cfg);
        let rescued_tasks = rescue_misfits(round_data, u.as_ref(), &params.b, &step_cfg, &mut fits);
        // The next round's ℓ1 paths run for the tasks that fit worse than this round's median
        // task: where HTP finds the supports (m well above the transition) most tasks fit
        // alike and few pay for a path; below it, the wrong supports are the worse half.
        step_cfg.path_floor = median_relative_residual(&fits);
        let certified = fits.iter().filter(|f| f.certified).count();
        for (i, f) in fits.iter().enumerate() {
            params.w[i * r..(i + 1) * r].copy_from_slice(&f.w);
            params.b[i * d..(i + 1) * d].copy_from_slice(&f.b);
        }
        let residuals: Vec<f64> = fits.iter().map(|f| f.residual_sq).collect();
        let train_mse = residuals.iter().sum::<f64>() / (t * round_data.samples) as f64;
        // Every task fits its samples exactly (the residual certificate): U, w and b are a
        // solution, and the task phase just run is the best response to U.
        if certified == t && folds.is_empty() {
            let theta = params.theta();
            trace.push(RoundTrace {
                round,
                relative_change: relative_error(&theta_prev, &theta),
                train_mse,
                dropped_tasks: 0,
                certified_tasks: certified,
                rescued_tasks,
                theta_error: theta_error(&theta),
                elapsed_s: start.elapsed().as_secs_f64(),
            });
            converged = true;
            all_fit = true;
            break;
        }
        let weights = robust_weights(&residuals, cfg.robust_cutoff);
        let dropped_tasks = weights.iter().filter(|w| **w == 0.0).count();
        let problem = SharedProblem {
            data: round_data,
            w: &params.w,
            b: &params.b,
            weights: &weights,
            rank: r,
            grams: grams
                .get((round - 1) % grams.len().max(1))
                .and_then(Option::as_ref),
        };
        let u_ls = match cfg.u_step {
            UStep::LeastSquares => problem.solve(cfg.solver, u.as_ref()),
            UStep::GaussNewton => {
                let bases =
                    task_bases(round_data, u.as_ref(), &fits, &weights, cfg.sparse.sparsity);
                // Empty where the fit took the general path: the step then computes the task's
                // right-hand side from the basis recomputed above.
                let images: Vec<&[f64]> = fits.iter().map(|f| &f.residual_image[..]).collect();
                let step = GaussNewtonStep {
                    data: round_data,
                    u: u.as_ref(),
                    w: &params.w,
                    weights: &weights,
                    bases: &bases,
                    residual_images: &images,
                    inv_column_norms: &column_norms[(round - 1) % column_norms.len()],
                };
                let y_sq = dot(&round_data.y, &round_data.y).max(f64::MIN_POSITIVE);
                let rho = (residuals.iter().sum::<f64>() / y_sq).sqrt();
                let forcing = rho.powf(GN_FORCING_EXPONENT);
                let (delta, _) = step.solve(forcing.clamp(GN_TOL_FLOOR, GN_TOL), GN_MAX_ITERS);
                &u + &delta
            }
        };
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
        let error = theta_error(&theta);
        theta_prev = theta;
        trace.push(RoundTrace {
            round,
            relative_change,
            train_mse,
            dropped_tasks,
            certified_tasks: certified,
            rescued_tasks,
            theta_error: error,
            elapsed_s: start.elapsed().as_secs_f64(),
        });
        if relative_change < cfg.tol {
            converged = true;
            break;
        }
        // A task's ℓ1 path depends on U alone, not on its warm start: once Θ has settled, the
        // paths would repeat the last round's, which the warm fits already reflect.
        step_cfg.l1_steps = if relative_change < PATHS_SETTLED {
            0
        } else {
            cfg.sparse.l1_steps
        };
    }
    if !all_fit {
        // A last task phase so that (w, b) are the best response to the final U.
        let final_cfg = SparseStepConfig {
            thorough: true,
            ..cfg.sparse.clone()
        };
        let mut fits = quick_fit_all_tasks(data, u.as_ref(), &params.b, &final_cfg);
        rescue_misfits(data, u.as_ref(), &params.b, &final_cfg, &mut fits);
        for (i, f) in fits.into_iter().enumerate() {
            params.w[i * r..(i + 1) * r].copy_from_slice(&f.w);
            params.b[i * d..(i + 1) * d].copy_from_slice(&f.b);
        }
    }
    Ok(AmhtResult {
        params,
        trace,
        converged,
    })
}

/// `f` of the whole data, or of each fold when the fit splits samples.
fn per_fold<T>(data: &TaskData, folds: &[TaskData], f: impl Fn(&TaskData) -> T) -> Vec<T> {
    if folds.is_empty() {
        vec![f(data)]
    } else {
        folds.iter().map(f).collect()
    }
}

/// Relative change of `Θ` below which a round skips the ℓ1 paths of the task phase.
pub const PATHS_SETTLED: f64 = 1e-4;

/// Tasks whose warm fit is this many times worse (relative residual) than the round's median
/// task get the rescue searches even while most tasks are still uncertified.
pub const RESCUE_OUTLIER: f64 = 10.0;

/// Runs the sparse step's rescue searches where they can pay: for the uncertified tasks that
/// fit far worse (relative residual) than the round's median task. While `U` is still off
/// every task misfits a little and a search could not tell a right support from a wrong one;
/// once `U` is right, the tasks left with a wrong support stand out by orders of magnitude.
fn rescue_misfits(
    data: &TaskData,
    u: faer::MatRef<'_, f64>,
    warm_b: &[f64],
    cfg: &SparseStepConfig,
    fits: &mut [TaskFit],
) -> usize {
    let limit = RESCUE_OUTLIER * median_relative_residual(fits);
    rescue_tasks(data, u, warm_b, cfg, fits, |_, f| {
        relative_residual(f) > limit
    })
}

/// `‖r_i‖ / ‖z_i‖`: a task's fit residual relative to its data with `U` projected out.
fn relative_residual(f: &TaskFit) -> f64 {
    f.residual_sq.sqrt() / f.projected_norm.max(f64::MIN_POSITIVE)
}

/// The median over tasks of [`relative_residual`].
fn median_relative_residual(fits: &[TaskFit]) -> f64 {
    let mut sorted: Vec<f64> = fits.iter().map(relative_residual).collect();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Every task's basis of `range [X_i U, X_{i,S_i}]` for the Gauss–Newton step: the task
/// phase's where it has one, computed here otherwise (empty, dropping the task, where
/// `[X_i U, X_{i,S_i}]` is rank-deficient or the task's weight is 0).
fn task_bases(
    data: &TaskData,
    u: faer::MatRef<'_, f64>,
    fits: &[TaskFit],
    weights: &[f64],
    sparsity: usize,
) -> Vec<Vec<f64>> {
    use rayon::prelude::*;
    let (m, d, r) = (data.samples, data.dim, u.ncols());
    fits.par_iter()
        .enumerate()
        .map_init(
            || TaskScratch::new(m, d, r, sparsity),
            |scratch, (i, f)| {
                if weights[i] == 0.0 || !f.basis.is_empty() {
                    return f.basis.clone();
                }
                let support = crate::hard_threshold::support_of(&f.b);
                scratch
                    .basis(&data.x[i * m * d..(i + 1) * m * d], u, &support)
                    .unwrap_or_default()
            },
        )
        .collect()
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
