//! The task phase of one AMHT-LRS round: every task, in parallel, fits its sparse part `b_i`
//! (HTP with `U` projected out) and then its coordinates `w_i = argmin ‖y_i − X_i b_i − X_i U w‖`.
//!
//! The warm-started HTP runs in [`crate::task_kernel`] (per-thread scratch, no allocation per
//! task); the rescue searches of [`ProjectedTask::solve`] (cold start, OMP, swaps, basis
//! pursuit, random restarts) run only for the tasks whose warm fit is not certified, and only
//! when the caller asks for them ([`rescue_tasks`]).

use faer::MatRef;
use rayon::prelude::*;

use crate::linalg::{lstsq, mat_vec, norm2};
use crate::problem::TaskData;
use crate::sparse_step::{ProjectedTask, SparseStepConfig};
use crate::task_kernel::{Retry, TaskScratch};

/// Result of the task phase for one task.
#[derive(Debug, Clone)]
pub struct TaskFit {
    /// `w_i`, length `r`.
    pub w: Vec<f64>,
    /// `b_i`, length `d`.
    pub b: Vec<f64>,
    /// Squared training residual `‖y_i − X_i(U w_i + b_i)‖²`.
    pub residual_sq: f64,
    /// Whether the residual is below `accept_tol · ‖y_i‖` (an exact fit on noiseless data).
    pub certified: bool,
    /// `‖P y_i‖` with `U`'s directions projected out: the sparse step accepts a support
    /// without rescue when the residual is below `accept_tol` times this.
    pub projected_norm: f64,
    /// Whether the rescue searches ran for this task.
    pub rescued: bool,
    /// Orthonormal basis of `range [X_i U, X_{i,S}]` (`[r + |S|, m]`, column after column),
    /// for the Gauss–Newton shared step; empty where the fit took the general path.
    pub basis: Vec<f64>,
    /// `X_iᵀ r_i`, the image of the fit's residual (`[d]`), the task's share of the
    /// Gauss–Newton right-hand side, computed while `X_i` is in cache; empty where the fit took
    /// the general path.
    pub residual_image: Vec<f64>,
}

impl TaskFit {
    /// Whether the sparse step would try its rescue searches on this fit.
    pub fn needs_rescue(&self, cfg: &SparseStepConfig) -> bool {
        cfg.sparsity > 0 && self.residual_sq.sqrt() > cfg.accept_tol * self.projected_norm
    }
}

/// Breakpoints of the ℓ1 paths of the thorough sparse step (at least).
pub const THOROUGH_L1_STEPS: usize = 60;

/// Candidates of the forced-pair ℓ1 paths of the thorough rescue (`C(40, 2)` = 780 paths).
pub const FORCED_PAIR_CANDIDATES: usize = 40;

/// The kernel's searches for an uncertified warm fit: the ℓ1 path, plus the completion search
/// and the forced-index paths when `forced` (and the forced pairs when the step is thorough).
fn kernel_retry(cfg: &SparseStepConfig, forced: bool) -> Retry {
    Retry {
        tol: cfg.accept_tol,
        floor: cfg.path_floor,
        l1_steps: if !cfg.restarts || cfg.l1_steps == 0 {
            0
        } else if cfg.thorough {
            cfg.l1_steps.max(THOROUGH_L1_STEPS)
        } else {
            cfg.l1_steps
        },
        forced_starts: if forced { cfg.forced_starts } else { 0 },
        pair_candidates: if forced && cfg.thorough {
            FORCED_PAIR_CANDIDATES
        } else {
            0
        },
        completions: forced,
    }
}

/// Warm-started HTP (and the kernel's `retry` searches) and `w` for one task, without the
/// general path's rescue; `xs` holds `x` row-major.
#[allow(clippy::too_many_arguments)]
fn quick_fit(
    x: MatRef<'_, f64>,
    xs: &[f64],
    y: &[f64],
    u: MatRef<'_, f64>,
    warm_b: &[f64],
    cfg: &SparseStepConfig,
    retry: &Retry,
    scratch: &mut TaskScratch,
) -> TaskFit {
    let (m, d, r) = (x.nrows(), x.ncols(), u.ncols());
    let mut b = vec![0.0; d];
    let mut w = vec![0.0; r];
    let eta = cfg.step_scale / m as f64;
    let fast = scratch.fit(
        xs,
        y,
        u,
        warm_b,
        cfg.sparsity,
        eta,
        cfg.inner_steps,
        retry,
        &mut b,
        &mut w,
    );
    match fast {
        Some(k) => TaskFit {
            w,
            b,
            residual_sq: k.residual_sq,
            certified: k.residual_sq.sqrt() <= cfg.accept_tol * norm2(y),
            projected_norm: k.z_norm,
            rescued: false,
            basis: scratch.fitted_basis(),
            residual_image: scratch.residual_image(x),
        },
        None => {
            let quick = SparseStepConfig {
                restarts: false,
                ..cfg.clone()
            };
            general_fit(x, y, u, warm_b, &quick, false)
        }
    }
}

/// The sparse step on the general path ([`ProjectedTask`]), then `w` by least squares.
fn general_fit(
    x: MatRef<'_, f64>,
    y: &[f64],
    u: MatRef<'_, f64>,
    warm_b: &[f64],
    cfg: &SparseStepConfig,
    rescued: bool,
) -> TaskFit {
    let (b, projected_norm) = if cfg.sparsity == 0 {
        let p = ProjectedTask::new(x, y, u);
        (vec![0.0; x.ncols()], norm2(&p.z))
    } else {
        let p = ProjectedTask::new(x, y, u);
        (p.solve(warm_b, cfg), norm2(&p.z))
    };
    let xb = mat_vec(x, &b);
    let rest: Vec<f64> = y.iter().zip(&xb).map(|(p, q)| p - q).collect();
    let xu = x * u;
    let w = lstsq(xu.as_ref(), &rest);
    let fitted = mat_vec(xu.as_ref(), &w);
    let residual_sq: f64 = rest
        .iter()
        .zip(&fitted)
        .map(|(p, q)| (p - q) * (p - q))
        .sum();
    let certified = residual_sq.sqrt() <= cfg.accept_tol * norm2(y);
    TaskFit {
        w,
        b,
        residual_sq,
        certified,
        projected_norm,
        rescued,
        basis: Vec::new(),
        residual_image: Vec::new(),
    }
}

/// Runs the rescue searches for a task whose quick fit is not certified: the kernel's
/// forced-index ℓ1 paths, or, where those are off and swaps are on (or where the kernel
/// declined the task), the general path's searches; keeps the best.
fn rescue(
    x: MatRef<'_, f64>,
    xs: &[f64],
    y: &[f64],
    u: MatRef<'_, f64>,
    warm_b: &[f64],
    cfg: &SparseStepConfig,
    quick: TaskFit,
) -> TaskFit {
    let mut best = quick;
    let forced = cfg.forced_starts > 0 && cfg.l1_steps > 0;
    if forced {
        let mut scratch = TaskScratch::new(x.nrows(), x.ncols(), u.ncols(), cfg.sparsity);
        let fit = quick_fit(
            x,
            xs,
            y,
            u,
            warm_b,
            cfg,
            &kernel_retry(cfg, true),
            &mut scratch,
        );
        if fit.residual_sq < best.residual_sq {
            best = fit;
        }
    }
    if best.needs_rescue(cfg) && ((!forced && cfg.swap_passes > 0) || best.basis.is_empty()) {
        let full = general_fit(x, y, u, warm_b, cfg, true);
        if full.residual_sq < best.residual_sq {
            best = full;
        }
    }
    TaskFit {
        rescued: true,
        ..best
    }
}

/// Fits one task given `U` and a warm start for `b_i`: warm HTP, then the rescue searches when
/// the fit is not certified (and `cfg.restarts` is on).
pub fn fit_task(
    x: MatRef<'_, f64>,
    y: &[f64],
    u: MatRef<'_, f64>,
    warm_b: &[f64],
    cfg: &SparseStepConfig,
) -> TaskFit {
    let mut scratch = TaskScratch::new(x.nrows(), x.ncols(), u.ncols(), cfg.sparsity);
    let xs: Vec<f64> = (0..x.nrows())
        .flat_map(|s| (0..x.ncols()).map(move |p| x[(s, p)]))
        .collect();
    let quick = quick_fit(
        x,
        &xs,
        y,
        u,
        warm_b,
        cfg,
        &kernel_retry(cfg, false),
        &mut scratch,
    );
    if cfg.restarts && quick.needs_rescue(cfg) {
        rescue(x, &xs, y, u, warm_b, cfg, quick)
    } else {
        quick
    }
}

/// Warm HTP and `w` for every task in parallel, without rescue (deterministic: each task is
/// independent, and each thread's scratch is fully rewritten per task).
pub fn quick_fit_all_tasks(
    data: &TaskData,
    u: MatRef<'_, f64>,
    warm_b: &[f64],
    cfg: &SparseStepConfig,
) -> Vec<TaskFit> {
    let (m, d, r) = (data.samples, data.dim, u.ncols());
    let retry = kernel_retry(cfg, false);
    (0..data.tasks)
        .into_par_iter()
        .map_init(
            || TaskScratch::new(m, d, r, cfg.sparsity),
            |scratch, i| {
                quick_fit(
                    data.x_task(i),
                    &data.x[i * m * d..(i + 1) * m * d],
                    data.y_task(i),
                    u,
                    &warm_b[i * d..(i + 1) * d],
                    cfg,
                    &retry,
                    scratch,
                )
            },
        )
        .collect()
}

/// Runs the rescue searches (when `cfg.restarts` is on) for the tasks `select` picks among
/// those whose fit needs one; returns how many ran.
pub fn rescue_tasks(
    data: &TaskData,
    u: MatRef<'_, f64>,
    warm_b: &[f64],
    cfg: &SparseStepConfig,
    fits: &mut [TaskFit],
    select: impl Fn(usize, &TaskFit) -> bool + Sync,
) -> usize {
    if !cfg.restarts {
        return 0;
    }
    let (m, d) = (data.samples, data.dim);
    let picked: Vec<usize> = fits
        .iter()
        .enumerate()
        .filter(|(i, f)| f.needs_rescue(cfg) && select(*i, f))
        .map(|(i, _)| i)
        .collect();
    let rescued: Vec<TaskFit> = picked
        .par_iter()
        .map(|&i| {
            rescue(
                data.x_task(i),
                &data.x[i * m * d..(i + 1) * m * d],
                data.y_task(i),
                u,
                &warm_b[i * d..(i + 1) * d],
                cfg,
                fits[i].clone(),
            )
        })
        .collect();
    for (&i, f) in picked.iter().zip(rescued) {
        fits[i] = f;
    }
    picked.len()
}

/// [`fit_task`] over all tasks in parallel: warm HTP everywhere, rescue for every task left
/// uncertified.
pub fn fit_all_tasks(
    data: &TaskData,
    u: MatRef<'_, f64>,
    warm_b: &[f64],
    cfg: &SparseStepConfig,
) -> Vec<TaskFit> {
    let mut fits = quick_fit_all_tasks(data, u, warm_b, cfg);
    rescue_tasks(data, u, warm_b, cfg, &mut fits, |_, _| true);
    fits
}
