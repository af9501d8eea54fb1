//! The shared step of AMHT-LRS: `U ← argmin_U Σ_i ω_i ‖r_i − X_i U w_i‖²` with
//! `r_i = y_i − X_i b_i` (ω_i are task weights, 1 unless the robust rule is on).
//!
//! The normal equations are `Σ_i ω_i X_iᵀX_i U w_i w_iᵀ = Σ_i ω_i X_iᵀ r_i w_iᵀ`. With the
//! column-major `vec`, the operator is `Σ_i ω_i (w_i w_iᵀ) ⊗ (X_iᵀ X_i)`: block `(a, b)` of the
//! `dr × dr` matrix is `Σ_i ω_i w_ia w_ib X_iᵀX_i`. Small `dr` assembles it and solves by
//! Cholesky; large `dr` runs conjugate gradient on the matrix-free operator
//! `V ↦ Σ_i ω_i X_iᵀ (X_i V w_i) w_iᵀ`, which costs `O(t(md + dr))` per application.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rayon::prelude::*;

use crate::linalg::{axpy, dot, gemv, mat_from_row_major, par_chunked_sum, solve_spd};
use crate::problem::TaskData;

/// Conjugate-gradient iterations per shared step. Warm-started from the previous `U`, a round
/// needs far fewer; the cap bounds the cost on ill-conditioned rounds (few samples per unknown).
pub const CG_MAX_ITERS: usize = 50;

/// How the shared least-squares problem is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SharedSolver {
    /// Dense normal equations when `d·r ≤ dense_max`, conjugate gradient above.
    Auto {
        /// Largest `d·r` solved densely.
        dense_max: usize,
    },
    /// Always assemble the `dr × dr` system.
    Dense,
    /// Always use matrix-free conjugate gradient.
    ConjugateGradient,
}

impl Default for SharedSolver {
    fn default() -> Self {
        SharedSolver::Auto { dense_max: 2048 }
    }
}

/// Largest number of values (`t·d²`) that [`TaskGrams`] holds: 256 MiB.
pub const GRAM_CACHE_MAX: usize = 1 << 25;

/// Every task's Gram matrix `X_iᵀX_i`, computed once per fit and reused by every dense shared
/// step (`[t, d, d]`, each full and symmetric).
pub struct TaskGrams {
    dim: usize,
    values: Vec<f64>,
}

impl TaskGrams {
    /// The Gram matrices of `data`'s tasks, or `None` when they would exceed
    /// [`GRAM_CACHE_MAX`] values.
    pub fn new(data: &TaskData) -> Option<Self> {
        let (t, d) = (data.tasks, data.dim);
        if t.saturating_mul(d * d) > GRAM_CACHE_MAX {
            return None;
        }
        let mut values = vec![0.0; t * d * d];
        values
            .par_chunks_mut(d * d)
            .enumerate()
            .for_each(|(i, g)| task_gram(data.x_task(i), g));
        Some(Self { dim: d, values })
    }

    /// `X_iᵀX_i`, `[d, d]`.
    pub fn gram(&self, i: usize) -> &[f64] {
        let dd = self.dim * self.dim;
        &self.values[i * dd..(i + 1) * dd]
    }
}

/// `XᵀX` of an `[m, d]` design into `out` (`[d, d]`, both triangles), by a triangular GEMM.
fn task_gram(x: MatRef<'_, f64>, out: &mut [f64]) {
    let d = x.ncols();
    triangular::matmul(
        MatMut::from_row_major_slice_mut(out, d, d),
        BlockStructure::TriangularLower,
        Accum::Replace,
        x.transpose(),
        BlockStructure::Rectangular,
        x,
        BlockStructure::Rectangular,
        1.0,
        Par::Seq,
    );
    for p in 0..d {
        for q in 0..p {
            out[q * d + p] = out[p * d + q];
        }
    }
}

/// Inputs of the shared step.
pub struct SharedProblem<'a> {
    /// The tasks' data.
    pub data: &'a TaskData,
    /// `w`, `[t, r]` row-major.
    pub w: &'a [f64],
    /// `b`, `[t, d]` row-major.
    pub b: &'a [f64],
    /// Task weights ω (all ones for plain least squares).
    pub weights: &'a [f64],
    /// Rank `r`.
    pub rank: usize,
    /// The tasks' Gram matrices, when cached (speeds up [`SharedProblem::assemble`]).
    pub grams: Option<&'a TaskGrams>,
}

impl SharedProblem<'_> {
    fn w_task(&self, i: usize) -> &[f64] {
        &self.w[i * self.rank..(i + 1) * self.rank]
    }

    fn x_rows(&self, i: usize) -> &[f64] {
        let len = self.data.samples * self.data.dim;
        &self.data.x[i * len..(i + 1) * len]
    }

    /// Right-hand side `Σ_i ω_i X_iᵀ r_i w_iᵀ` (`r_i = y_i − X_i b_i`), `[d, r]` row-major.
    fn rhs_flat(&self) -> Vec<f64> {
        let (d, r, m) = (self.data.dim, self.rank, self.data.samples);
        par_chunked_sum(self.data.tasks, d * r, |range, acc| {
            let (mut res, mut g) = (vec![0.0; m], vec![0.0; d]);
            for i in range {
                if self.weights[i] == 0.0 {
                    continue;
                }
                let x = self.x_rows(i);
                let b = &self.b[i * d..(i + 1) * d];
                res.copy_from_slice(self.data.y_task(i));
                for (p, &bp) in b.iter().enumerate().filter(|(_, v)| **v != 0.0) {
                    for (s, rs) in res.iter_mut().enumerate() {
                        *rs -= x[s * d + p] * bp;
                    }
                }
                gemv(&mut g, self.data.x_task(i).transpose(), &res, 1.0, false);
                add_outer(acc, &g, self.w_task(i), self.weights[i]);
            }
        })
    }

    /// Right-hand side `Σ_i ω_i X_iᵀ r_i w_iᵀ` as a `[d, r]` matrix.
    pub fn rhs(&self) -> Mat<f64> {
        mat_from_row_major(&self.rhs_flat(), self.data.dim, self.rank)
    }

    /// `out = Σ_i ω_i X_iᵀ X_i V w_i w_iᵀ` for `V` and `out` `[d, r]` row-major.
    fn apply_flat(&self, v: &[f64]) -> Vec<f64> {
        let (d, r, m) = (self.data.dim, self.rank, self.data.samples);
        par_chunked_sum(self.data.tasks, d * r, |range, acc| {
            let (mut vw, mut xv, mut g) = (vec![0.0; d], vec![0.0; m], vec![0.0; d]);
            for i in range {
                if self.weights[i] == 0.0 {
                    continue;
                }
                let w = self.w_task(i);
                for (p, o) in vw.iter_mut().enumerate() {
                    *o = dot(&v[p * r..(p + 1) * r], w);
                }
                let x = self.data.x_task(i);
                gemv(&mut xv, x, &vw, 1.0, false);
                gemv(&mut g, x.transpose(), &xv, 1.0, false);
                add_outer(acc, &g, w, self.weights[i]);
            }
        })
    }

    /// The operator `V ↦ Σ_i ω_i X_iᵀ X_i V w_i w_iᵀ`.
    pub fn apply(&self, v: MatRef<'_, f64>) -> Mat<f64> {
        let (d, r) = (self.data.dim, self.rank);
        let flat: Vec<f64> = (0..d)
            .flat_map(|p| (0..r).map(move |a| v[(p, a)]))
            .collect();
        mat_from_row_major(&self.apply_flat(&flat), d, r)
    }

    /// `(Σ ω_i w_ia w_ib)` for every pair `a ≤ b`, `[t, pairs]` row-major, with the pairs.
    fn pair_weights(&self) -> (Vec<(usize, usize)>, Vec<f64>) {
        let r = self.rank;
        let pairs: Vec<(usize, usize)> = (0..r).flat_map(|a| (a..r).map(move |b| (a, b))).collect();
        let coef = (0..self.data.tasks)
            .flat_map(|i| {
                let w = self.w_task(i);
                let om = self.weights[i];
                pairs.iter().map(move |&(a, b)| om * w[a] * w[b])
            })
            .collect();
        (pairs, coef)
    }

    /// The blocks `Σ_i ω_i w_ia w_ib X_iᵀX_i` for every pair `a ≤ b`, `[pairs, d²]`.
    fn blocks(&self, n_pairs: usize, coef: &[f64]) -> Vec<f64> {
        let (t, d) = (self.data.tasks, self.data.dim);
        let dd = d * d;
        match self.grams {
            Some(g) => {
                // One GEMM, (pairs × t)·(t × d²), split over column blocks of d².
                let lhs = MatRef::from_row_major_slice(coef, t, n_pairs);
                let rhs = MatRef::from_row_major_slice(&g.values, t, dd);
                let mut out = vec![0.0; n_pairs * dd];
                let cols = BLOCK_COLS.min(dd);
                let dst = MatMut::from_column_major_slice_mut(&mut out, dd, n_pairs);
                let parts: Vec<(usize, MatMut<'_, f64>)> = {
                    let mut v = Vec::new();
                    let mut rest = dst;
                    let mut at = 0;
                    while rest.nrows() > 0 {
                        let n = cols.min(rest.nrows());
                        let (head, tail) = rest.split_at_row_mut(n);
                        v.push((at, head));
                        rest = tail;
                        at += n;
                    }
                    v
                };
                parts.into_par_iter().for_each(|(at, dst)| {
                    let n = dst.nrows();
                    matmul(
                        dst,
                        Accum::Replace,
                        rhs.subcols(at, n).transpose(),
                        lhs,
                        1.0,
                        Par::Seq,
                    );
                });
                out
            }
            None => par_chunked_sum(t, n_pairs * dd, |range, acc| {
                let mut gram = vec![0.0; dd];
                for i in range {
                    if self.weights[i] == 0.0 {
                        continue;
                    }
                    task_gram(self.data.x_task(i), &mut gram);
                    for (n, block) in acc.chunks_exact_mut(dd).enumerate() {
                        let c = coef[i * n_pairs + n];
                        if c != 0.0 {
                            axpy(c, &gram, block);
                        }
                    }
                }
            }),
        }
    }

    /// The assembled `dr × dr` operator (column-major `vec` of `U`).
    pub fn assemble(&self) -> Mat<f64> {
        let (d, r) = (self.data.dim, self.rank);
        let (pairs, coef) = self.pair_weights();
        let flat = self.blocks(pairs.len(), &coef);
        let mut h = Mat::<f64>::zeros(d * r, d * r);
        for (n, &(a, b)) in pairs.iter().enumerate() {
            let block = &flat[n * d * d..(n + 1) * d * d];
            for q in 0..d {
                for p in 0..d {
                    let v = block[q * d + p];
                    h[(a * d + p, b * d + q)] = v;
                    h[(b * d + q, a * d + p)] = v;
                }
            }
        }
        h
    }

    /// Solves densely: assemble and Cholesky.
    pub fn solve_dense(&self) -> Mat<f64> {
        let (d, r) = (self.data.dim, self.rank);
        let h = self.assemble();
        let rhs = self.rhs_flat();
        let vec_rhs = Mat::<f64>::from_fn(d * r, 1, |n, _| rhs[(n % d) * r + n / d]);
        let sol = solve_spd(&h, &vec_rhs);
        Mat::from_fn(d, r, |p, a| sol[(a * d + p, 0)])
    }

    /// Solves by (preconditioned) conjugate gradient from `start`, to relative residual `tol`
    /// or `max_iter` iterations. Returns the solution and the number of iterations.
    pub fn solve_cg(&self, start: MatRef<'_, f64>, tol: f64, max_iter: usize) -> (Mat<f64>, usize) {
        let (d, r) = (self.data.dim, self.rank);
        let x0: Vec<f64> = (0..d)
            .flat_map(|p| (0..r).map(move |a| start[(p, a)]))
            .collect();
        let inv_diag = inverse_column_norms(self.data);
        let kinv = kronecker_preconditioner(self.w, self.weights, r);
        let (x, iters) = pcg(
            |v| self.apply_flat(v),
            |res, out| apply_kronecker(&inv_diag, kinv.as_ref(), res, r, out),
            &self.rhs_flat(),
            x0,
            tol,
            max_iter,
        );
        (mat_from_row_major(&x, d, r), iters)
    }

    /// Solves with the chosen solver; `start` warm-starts conjugate gradient.
    pub fn solve(&self, solver: SharedSolver, start: MatRef<'_, f64>) -> Mat<f64> {
        if self.uses_dense(solver) {
            self.solve_dense()
        } else {
            self.solve_cg(
                start,
                1e-13,
                CG_MAX_ITERS.min(4 * self.data.dim * self.rank),
            )
            .0
        }
    }

    /// Whether `solver` takes the dense path on this problem.
    pub fn uses_dense(&self, solver: SharedSolver) -> bool {
        uses_dense(solver, self.data.dim, self.rank)
    }
}

/// Whether `solver` takes the dense path for dimension `d` and rank `r`.
pub fn uses_dense(solver: SharedSolver, d: usize, r: usize) -> bool {
    match solver {
        SharedSolver::Auto { dense_max } => d * r <= dense_max,
        SharedSolver::Dense => true,
        SharedSolver::ConjugateGradient => false,
    }
}

/// The Kronecker preconditioner `D ⊗ K` of conjugate gradient on `[d, r]` unknowns:
/// `K = Σ ω_i w_i w_iᵀ` and `D` the diagonal of `Σ_i X_iᵀX_i`, which is the shared operator
/// itself when every `X_iᵀX_i` is the same diagonal matrix. `1/D` depends on the data alone
/// ([`inverse_column_norms`], computed once per fit); this returns `K⁻¹`, `None` if `K` is
/// singular.
pub(crate) fn kronecker_preconditioner(w: &[f64], weights: &[f64], r: usize) -> Option<Mat<f64>> {
    use faer::linalg::solvers::Solve;
    let k = par_chunked_sum(weights.len(), r * r, |range, acc| {
        for i in range {
            let wi = &w[i * r..(i + 1) * r];
            add_outer(acc, wi, wi, weights[i]);
        }
    });
    let k = mat_from_row_major(&k, r, r);
    let llt = k.llt(Side::Lower).ok()?;
    Some(llt.solve(Mat::<f64>::identity(r, r)))
}

/// `1/D` of [`kronecker_preconditioner`]: the inverse diagonal of `Σ_i X_iᵀX_i` (1 where a
/// column is all zero). It depends on the data alone, so a fit computes it once.
pub(crate) fn inverse_column_norms(data: &TaskData) -> Vec<f64> {
    let d = data.dim;
    let diag = par_chunked_sum(data.tasks, d, |range, acc| {
        for row in
            data.x[range.start * data.samples * d..range.end * data.samples * d].chunks_exact(d)
        {
            for (o, v) in acc.iter_mut().zip(row) {
                *o += v * v;
            }
        }
    });
    diag.iter()
        .map(|&v| if v > 0.0 { 1.0 / v } else { 1.0 })
        .collect()
}

/// `out = D⁻¹ res K⁻¹` for `res` `[d, r]` row-major, `inv_diag` = `1/D` and `kinv` = `K⁻¹`
/// (a copy of `res` without `K⁻¹`).
pub(crate) fn apply_kronecker(
    inv_diag: &[f64],
    kinv: Option<&Mat<f64>>,
    res: &[f64],
    r: usize,
    out: &mut Vec<f64>,
) {
    out.clear();
    match kinv {
        Some(kinv) => {
            for (p, row) in res.chunks_exact(r).enumerate() {
                for a in 0..r {
                    let v: f64 = (0..r).map(|b| row[b] * kinv[(b, a)]).sum();
                    out.push(v * inv_diag[p]);
                }
            }
        }
        None => out.extend_from_slice(res),
    }
}

/// Preconditioned conjugate gradient for `H x = rhs` from `x`, until `‖rhs − H x‖ ≤
/// tol·‖rhs‖` or `max_iter` iterations; returns the solution and the iterations taken.
pub(crate) fn pcg(
    apply: impl Fn(&[f64]) -> Vec<f64>,
    precondition: impl Fn(&[f64], &mut Vec<f64>),
    rhs: &[f64],
    mut x: Vec<f64>,
    tol: f64,
    max_iter: usize,
) -> (Vec<f64>, usize) {
    let rhs_norm = dot(rhs, rhs).sqrt().max(f64::MIN_POSITIVE);
    // From zero (the Gauss–Newton step's start) the residual is the right-hand side: no
    // product, which costs a pass over every task's samples.
    let mut res: Vec<f64> = if x.iter().all(|v| *v == 0.0) {
        rhs.to_vec()
    } else {
        let hx = apply(&x);
        rhs.iter().zip(&hx).map(|(b, h)| b - h).collect()
    };
    let mut zres = Vec::with_capacity(res.len());
    precondition(&res, &mut zres);
    let mut p = zres.clone();
    let mut rz = dot(&res, &zres);
    let mut iters = 0;
    while iters < max_iter && dot(&res, &res).sqrt() > tol * rhs_norm {
        let ap = apply(&p);
        let pap = dot(&p, &ap);
        if !(pap > 0.0 && rz > 0.0) {
            break;
        }
        let alpha = rz / pap;
        axpy(alpha, &p, &mut x);
        axpy(-alpha, &ap, &mut res);
        precondition(&res, &mut zres);
        let rz_next = dot(&res, &zres);
        let beta = rz_next / rz;
        for (pi, zi) in p.iter_mut().zip(&zres) {
            *pi = zi + beta * *pi;
        }
        rz = rz_next;
        iters += 1;
    }
    (x, iters)
}

/// Columns of `d²` per parallel piece of the cached-Gram assembly.
const BLOCK_COLS: usize = 2048;

/// `acc[p, a] += c · g[p] · w[a]` (`acc` `[len(g), len(w)]` row-major).
pub(crate) fn add_outer(acc: &mut [f64], g: &[f64], w: &[f64], c: f64) {
    let r = w.len();
    for (p, &gp) in g.iter().enumerate() {
        let s = c * gp;
        for (o, &wa) in acc[p * r..(p + 1) * r].iter_mut().zip(w) {
            *o += s * wa;
        }
    }
}
