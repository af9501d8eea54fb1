//! The Gauss–Newton shared step: `U ← U + Δ` for the objective that the task phase leaves,
//! `f(U) = Σ_i ω_i min_{w, b_S} ‖y_i − X_i U w − X_{i,S_i} b‖²` (variable projection with
//! Kaufman's Jacobian, supports held at the task phase's).
//!
//! With `P_i` the projector off `range [X_i U, X_{i,S_i}]` and `r_i = P_i y_i` the task's
//! residual, the step solves `Σ_i ω_i X_iᵀ P_i X_i Δ w_i w_iᵀ = Σ_i ω_i X_iᵀ r_i w_iᵀ` over
//! `Δ ⊥ U` (directions inside `range U` only re-parametrise `w`). It is the least-squares
//! shared step with every task's `X_iᵀX_i` replaced by `X_iᵀ P_i X_i`: the least-squares step
//! moves `U` as if `w_i` and `b_i` stayed put, and converges linearly; this one accounts for
//! their re-fit and converges quadratically on noiseless data. Solved by conjugate gradient
//! on the matrix-free operator (the same Kronecker preconditioner, projected off `U`).

use faer::{Mat, MatRef};

use crate::linalg::{axpy, dot, gemv, mat_from_row_major, par_chunked_sum};
use crate::problem::TaskData;
use crate::shared_step::{add_outer, apply_kronecker, kronecker_preconditioner, pcg};

/// Inputs of one Gauss–Newton shared step.
pub struct GaussNewtonStep<'a> {
    /// The tasks' data.
    pub data: &'a TaskData,
    /// The current `U` (orthonormal columns).
    pub u: MatRef<'a, f64>,
    /// `w`, `[t, r]` row-major.
    pub w: &'a [f64],
    /// Task weights ω (0 drops a task).
    pub weights: &'a [f64],
    /// Per task, an orthonormal basis of `range [X_i U, X_{i,S_i}]` (`[n_i, m]`, column after
    /// column); an empty basis drops the task.
    pub bases: &'a [Vec<f64>],
    /// Per task, `X_iᵀ P_i y_i` where the task phase computed it (its `residual_image`; empty:
    /// computed here from the basis).
    pub residual_images: &'a [&'a [f64]],
    /// The inverse diagonal of `Σ_i X_iᵀX_i` (`shared_step::inverse_column_norms` of `data`):
    /// the data's part of the preconditioner, the same in every round.
    pub inv_column_norms: &'a [f64],
}

impl GaussNewtonStep<'_> {
    fn active(&self, i: usize) -> bool {
        self.weights[i] != 0.0 && !self.bases[i].is_empty()
    }

    /// `v ← P_i v`.
    fn project(&self, i: usize, v: &mut [f64]) {
        let m = self.data.samples;
        for q in self.bases[i].chunks_exact(m) {
            let h = dot(q, v);
            axpy(-h, q, v);
        }
    }

    /// `v ← v − U Uᵀ v` for `v` `[d, r]` row-major.
    fn project_off_u(&self, v: &mut [f64]) {
        let r = self.u.ncols();
        let mut utv = vec![0.0; r * r];
        for (p, row) in v.chunks_exact(r).enumerate() {
            for a in 0..r {
                let up = self.u[(p, a)];
                for (b, &vb) in row.iter().enumerate() {
                    utv[a * r + b] += up * vb;
                }
            }
        }
        for (p, row) in v.chunks_exact_mut(r).enumerate() {
            for a in 0..r {
                let up = self.u[(p, a)];
                for (b, o) in row.iter_mut().enumerate() {
                    *o -= up * utv[a * r + b];
                }
            }
        }
    }

    /// `Σ_i ω_i X_iᵀ r_i w_iᵀ`, `[d, r]` row-major.
    pub fn rhs(&self) -> Vec<f64> {
        let (d, r, m) = (self.data.dim, self.u.ncols(), self.data.samples);
        par_chunked_sum(self.data.tasks, d * r, |range, acc| {
            let (mut res, mut g) = (vec![0.0; m], vec![0.0; d]);
            for i in range {
                if !self.active(i) {
                    continue;
                }
                let image = match self.residual_images.get(i) {
                    Some(image) if image.len() == d => image,
                    _ => {
                        res.copy_from_slice(self.data.y_task(i));
                        self.project(i, &mut res);
                        gemv(&mut g, self.data.x_task(i).transpose(), &res, 1.0, false);
                        &g[..]
                    }
                };
                add_outer(acc, image, &self.w[i * r..(i + 1) * r], self.weights[i]);
            }
        })
    }

    /// `V ↦ Σ_i ω_i X_iᵀ P_i X_i V w_i w_iᵀ` on `[d, r]` row-major.
    pub fn apply(&self, v: &[f64]) -> Vec<f64> {
        let (d, r, m) = (self.data.dim, self.u.ncols(), self.data.samples);
        par_chunked_sum(self.data.tasks, d * r, |range, acc| {
            let (mut vw, mut xv, mut g) = (vec![0.0; d], vec![0.0; m], vec![0.0; d]);
            for i in range {
                if !self.active(i) {
                    continue;
                }
                let w = &self.w[i * r..(i + 1) * r];
                for (p, o) in vw.iter_mut().enumerate() {
                    *o = dot(&v[p * r..(p + 1) * r], w);
                }
                let x = self.data.x_task(i);
                gemv(&mut xv, x, &vw, 1.0, false);
                self.project(i, &mut xv);
                gemv(&mut g, x.transpose(), &xv, 1.0, false);
                add_outer(acc, &g, w, self.weights[i]);
            }
        })
    }

    /// The step `Δ` (`[d, r]`, orthogonal to `U`), solved to relative residual `tol` or
    /// `max_iter` conjugate-gradient iterations; returns `Δ` and the iterations taken.
    pub fn solve(&self, tol: f64, max_iter: usize) -> (Mat<f64>, usize) {
        let (d, r) = (self.data.dim, self.u.ncols());
        let mut rhs = self.rhs();
        self.project_off_u(&mut rhs);
        let active: Vec<f64> = (0..self.data.tasks)
            .map(|i| if self.active(i) { self.weights[i] } else { 0.0 })
            .collect();
        let kinv = kronecker_preconditioner(self.w, &active, r);
        let (delta, iters) = pcg(
            |v| self.apply(v),
            |res, out| {
                apply_kronecker(self.inv_column_norms, kinv.as_ref(), res, r, out);
                self.project_off_u(out);
            },
            &rhs,
            vec![0.0; d * r],
            tol,
            max_iter,
        );
        (mat_from_row_major(&delta, d, r), iters)
    }
}
