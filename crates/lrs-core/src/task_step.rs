//! The task phase of one AMHT-LRS round: every task, in parallel, fits its sparse part `b_i`
//! (HTP with `U` projected out) and then its coordinates `w_i = argmin ‖y_i − X_i b_i − X_i U w‖`.

use faer::MatRef;
use rayon::prelude::*;

use crate::linalg::{lstsq, mat_vec};
use crate::problem::TaskData;
use crate::sparse_step::{ProjectedTask, SparseStepConfig};

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
}

/// Fits one task given `U` and a warm start for `b_i`.
pub fn fit_task(
    x: MatRef<'_, f64>,
    y: &[f64],
    u: MatRef<'_, f64>,
    warm_b: &[f64],
    cfg: &SparseStepConfig,
) -> TaskFit {
    let b = if cfg.sparsity == 0 {
        vec![0.0; x.ncols()]
    } else {
        ProjectedTask::new(x, y, u).solve(warm_b, cfg)
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
    let certified = residual_sq.sqrt() <= cfg.accept_tol * crate::linalg::norm2(y);
    TaskFit {
        w,
        b,
        residual_sq,
        certified,
    }
}

/// Runs [`fit_task`] over all tasks in parallel (deterministic: each task is independent).
pub fn fit_all_tasks(
    data: &TaskData,
    u: MatRef<'_, f64>,
    warm_b: &[f64],
    cfg: &SparseStepConfig,
) -> Vec<TaskFit> {
    let d = data.dim;
    (0..data.tasks)
        .into_par_iter()
        .map(|i| {
            fit_task(
                data.x_task(i),
                data.y_task(i),
                u,
                &warm_b[i * d..(i + 1) * d],
                cfg,
            )
        })
        .collect()
}
