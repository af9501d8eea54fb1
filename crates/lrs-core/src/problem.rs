//! The data of a linear multi-task problem and its ground truth.
//!
//! Layout follows the file format: `x` is `[t, m, d]` row-major (task, sample, feature),
//! `y` is `[t, m]`. Parameters are `u [d, r]`, `w [t, r]` and `b [t, d]`, all row-major,
//! so that `θ_i = U w_i + b_i` and `Θ = U Wᵀ + Bᵀ` in the `[d, t]` orientation of the paper.

use faer::{Mat, MatRef};

use crate::error::{ensure, Result};
use crate::samples::Samples;

/// Samples of `t` tasks with `m` samples of dimension `d` each.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskData {
    /// Number of tasks `t`.
    pub tasks: usize,
    /// Samples per task `m`.
    pub samples: usize,
    /// Feature dimension `d`.
    pub dim: usize,
    /// Features, `[t, m, d]` row-major (owned, or a view of a mapped data file).
    pub x: Samples,
    /// Responses, `[t, m]` row-major.
    pub y: Vec<f64>,
}

impl TaskData {
    /// Builds a data set, checking that the buffers match the shape.
    pub fn new(
        tasks: usize,
        samples: usize,
        dim: usize,
        x: impl Into<Samples>,
        y: Vec<f64>,
    ) -> Result<Self> {
        let x = x.into();
        ensure(tasks > 0 && samples > 0 && dim > 0, "shape", || {
            format!("tasks, samples and dim must be positive, got t={tasks}, m={samples}, d={dim}")
        })?;
        ensure(x.len() == tasks * samples * dim, "x", || {
            format!(
                "expected {} values for [t={tasks}, m={samples}, d={dim}], got {}",
                tasks * samples * dim,
                x.len()
            )
        })?;
        ensure(y.len() == tasks * samples, "y", || {
            format!(
                "expected {} values for [t={tasks}, m={samples}], got {}",
                tasks * samples,
                y.len()
            )
        })?;
        Ok(Self {
            tasks,
            samples,
            dim,
            x,
            y,
        })
    }

    /// The `[m, d]` design matrix of task `i`.
    pub fn x_task(&self, i: usize) -> MatRef<'_, f64> {
        let len = self.samples * self.dim;
        MatRef::from_row_major_slice(&self.x[i * len..(i + 1) * len], self.samples, self.dim)
    }

    /// The `m` responses of task `i`.
    pub fn y_task(&self, i: usize) -> &[f64] {
        &self.y[i * self.samples..(i + 1) * self.samples]
    }

    /// A view restricted to samples `rows` of every task (for sample splitting).
    pub fn slice_samples(&self, rows: std::ops::Range<usize>) -> TaskData {
        let (m, d) = (self.samples, self.dim);
        let n = rows.len();
        let mut x = Vec::with_capacity(self.tasks * n * d);
        let mut y = Vec::with_capacity(self.tasks * n);
        for i in 0..self.tasks {
            x.extend_from_slice(&self.x[(i * m + rows.start) * d..(i * m + rows.end) * d]);
            y.extend_from_slice(&self.y[i * m + rows.start..i * m + rows.end]);
        }
        TaskData {
            tasks: self.tasks,
            samples: n,
            dim: d,
            x: x.into(),
            y,
        }
    }
}

/// Parameters of a low-rank + sparse linear model: `θ_i = U w_i + b_i`.
#[derive(Debug, Clone, PartialEq)]
pub struct LrsParams {
    /// Shared factor `U`, `[d, r]` (orthonormal columns for AMHT-LRS outputs).
    pub u: Mat<f64>,
    /// Per-task coordinates `w`, `[t, r]` row-major.
    pub w: Vec<f64>,
    /// Per-task sparse parts `b`, `[t, d]` row-major.
    pub b: Vec<f64>,
}

impl LrsParams {
    /// Rank `r` of the shared factor.
    pub fn rank(&self) -> usize {
        self.u.ncols()
    }

    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.u.nrows()
    }

    /// Number of tasks.
    pub fn tasks(&self) -> usize {
        self.b.len() / self.dim().max(1)
    }

    /// `w_i`.
    pub fn w_task(&self, i: usize) -> &[f64] {
        let r = self.rank();
        &self.w[i * r..(i + 1) * r]
    }

    /// `b_i`.
    pub fn b_task(&self, i: usize) -> &[f64] {
        let d = self.dim();
        &self.b[i * d..(i + 1) * d]
    }

    /// `θ_i = U w_i + b_i`.
    pub fn theta_task(&self, i: usize) -> Vec<f64> {
        let mut theta = self.b_task(i).to_vec();
        self.add_low_rank(i, &mut theta);
        theta
    }

    /// All `θ_i` stacked as `[t, d]` row-major (row `i` is `θ_i`), in one buffer.
    pub fn theta(&self) -> Vec<f64> {
        let mut out = self.b.clone();
        for (i, theta) in out.chunks_exact_mut(self.dim().max(1)).enumerate() {
            self.add_low_rank(i, theta);
        }
        out
    }

    /// `theta ← theta + U w_i`.
    fn add_low_rank(&self, i: usize, theta: &mut [f64]) {
        let w = self.w_task(i);
        for (p, o) in theta.iter_mut().enumerate() {
            *o += (0..self.rank()).map(|a| self.u[(p, a)] * w[a]).sum::<f64>();
        }
    }
}

/// The instance a synthetic generator drew: training data, optional held-out data and the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Training samples.
    pub train: TaskData,
    /// Fresh held-out samples of the same tasks, if drawn.
    pub test: Option<TaskData>,
    /// The generating parameters `U*, w*, b*`, when known.
    pub truth: Option<LrsParams>,
}
