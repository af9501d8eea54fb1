//! The shared step of AMHT-LRS: `U ← argmin_U Σ_i ω_i ‖r_i − X_i U w_i‖²` with
//! `r_i = y_i − X_i b_i` (ω_i are task weights, 1 unless the robust rule is on).
//!
//! The normal equations are `Σ_i ω_i X_iᵀX_i U w_i w_iᵀ = Σ_i ω_i X_iᵀ r_i w_iᵀ`. With the
//! column-major `vec`, the operator is `Σ_i ω_i (w_i w_iᵀ) ⊗ (X_iᵀ X_i)`: block `(a, b)` of the
//! `dr × dr` matrix is `Σ_i ω_i w_ia w_ib X_iᵀX_i`. Small `dr` assembles it and solves by
//! Cholesky; large `dr` runs conjugate gradient on the matrix-free operator
//! `V ↦ Σ_i ω_i X_iᵀ (X_i V w_i) w_iᵀ`, which costs `O(t(md + dr))` per application.

use faer::{Mat, MatRef};

use crate::linalg::{mat_from_row_major, mat_t_vec, mat_vec, par_chunked_sum, solve_spd};
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
}

impl SharedProblem<'_> {
    fn r_task(&self, i: usize) -> Vec<f64> {
        let d = self.data.dim;
        let xb = mat_vec(self.data.x_task(i), &self.b[i * d..(i + 1) * d]);
        self.data
            .y_task(i)
            .iter()
            .zip(xb)
            .map(|(y, v)| y - v)
            .collect()
    }

    fn w_task(&self, i: usize) -> &[f64] {
        &self.w[i * self.rank..(i + 1) * self.rank]
    }

    /// Right-hand side `Σ_i ω_i X_iᵀ r_i w_iᵀ` as a `[d, r]` matrix.
    pub fn rhs(&self) -> Mat<f64> {
        let (d, r) = (self.data.dim, self.rank);
        let flat = par_chunked_sum(self.data.tasks, d * r, |range, acc| {
            for i in range {
                if self.weights[i] == 0.0 {
                    continue;
                }
                let g = mat_t_vec(self.data.x_task(i), &self.r_task(i));
                let w = self.w_task(i);
                for p in 0..d {
                    for a in 0..r {
                        acc[p * r + a] += self.weights[i] * g[p] * w[a];
                    }
                }
            }
        });
        mat_from_row_major(&flat, d, r)
    }

    /// The operator `V ↦ Σ_i ω_i X_iᵀ X_i V w_i w_iᵀ`.
    pub fn apply(&self, v: MatRef<'_, f64>) -> Mat<f64> {
        let (d, r) = (self.data.dim, self.rank);
        let flat = par_chunked_sum(self.data.tasks, d * r, |range, acc| {
            for i in range {
                if self.weights[i] == 0.0 {
                    continue;
                }
                let w = self.w_task(i);
                let vw: Vec<f64> = (0..d)
                    .map(|p| (0..r).map(|a| v[(p, a)] * w[a]).sum())
                    .collect();
                let x = self.data.x_task(i);
                let g = mat_t_vec(x, &mat_vec(x, &vw));
                for p in 0..d {
                    for a in 0..r {
                        acc[p * r + a] += self.weights[i] * g[p] * w[a];
                    }
                }
            }
        });
        mat_from_row_major(&flat, d, r)
    }

    /// The assembled `dr × dr` operator (column-major `vec` of `U`).
    pub fn assemble(&self) -> Mat<f64> {
        let (d, r, m) = (self.data.dim, self.rank, self.data.samples);
        let pairs: Vec<(usize, usize)> = (0..r).flat_map(|a| (a..r).map(move |b| (a, b))).collect();
        // Accumulate Σ ω w_a w_b G_i for every pair a ≤ b; each block is symmetric, so only
        // its lower triangle is summed and mirrored afterwards.
        let flat = par_chunked_sum(self.data.tasks, pairs.len() * d * d, |range, acc| {
            let mut gram = vec![0.0; d * d];
            for i in range {
                if self.weights[i] == 0.0 {
                    continue;
                }
                let x = self.data.x_task(i);
                gram.iter_mut().for_each(|g| *g = 0.0);
                for s in 0..m {
                    for p in 0..d {
                        let xp = x[(s, p)];
                        if xp == 0.0 {
                            continue;
                        }
                        let row = &mut gram[p * d..p * d + p + 1];
                        for (q, g) in row.iter_mut().enumerate() {
                            *g += xp * x[(s, q)];
                        }
                    }
                }
                let w = self.w_task(i);
                for (n, &(a, b)) in pairs.iter().enumerate() {
                    let c = self.weights[i] * w[a] * w[b];
                    if c == 0.0 {
                        continue;
                    }
                    let block = &mut acc[n * d * d..(n + 1) * d * d];
                    for p in 0..d {
                        for q in 0..=p {
                            block[p * d + q] += c * gram[p * d + q];
                        }
                    }
                }
            }
        });
        let mut h = Mat::<f64>::zeros(d * r, d * r);
        for (n, &(a, b)) in pairs.iter().enumerate() {
            let block = &flat[n * d * d..(n + 1) * d * d];
            for p in 0..d {
                for q in 0..=p {
                    let v = block[p * d + q];
                    for (ra, rb) in [(a, b), (b, a)] {
                        h[(ra * d + p, rb * d + q)] = v;
                        h[(ra * d + q, rb * d + p)] = v;
                    }
                }
            }
        }
        h
    }

    /// Solves densely: assemble and Cholesky.
    pub fn solve_dense(&self) -> Mat<f64> {
        let (d, r) = (self.data.dim, self.rank);
        let h = self.assemble();
        let rhs = self.rhs();
        let vec_rhs = Mat::<f64>::from_fn(d * r, 1, |n, _| rhs[(n % d, n / d)]);
        let sol = solve_spd(&h, &vec_rhs);
        Mat::from_fn(d, r, |p, a| sol[(a * d + p, 0)])
    }

    /// Solves by conjugate gradient from `start`, to relative residual `tol` or `max_iter`
    /// iterations. Returns the solution and the number of iterations.
    pub fn solve_cg(&self, start: MatRef<'_, f64>, tol: f64, max_iter: usize) -> (Mat<f64>, usize) {
        let dot = |a: &Mat<f64>, b: &Mat<f64>| -> f64 {
            let mut s = 0.0;
            for j in 0..a.ncols() {
                for i in 0..a.nrows() {
                    s += a[(i, j)] * b[(i, j)];
                }
            }
            s
        };
        let rhs = self.rhs();
        let rhs_norm = dot(&rhs, &rhs).sqrt().max(f64::MIN_POSITIVE);
        let mut x = start.to_owned();
        let mut res = &rhs - self.apply(x.as_ref());
        let mut p = res.clone();
        let mut rr = dot(&res, &res);
        let mut iters = 0;
        while iters < max_iter && rr.sqrt() > tol * rhs_norm {
            let ap = self.apply(p.as_ref());
            let pap = dot(&p, &ap);
            if pap <= 0.0 {
                break;
            }
            let alpha = rr / pap;
            x += alpha * &p;
            res -= alpha * &ap;
            let rr_next = dot(&res, &res);
            p = &res + (rr_next / rr) * &p;
            rr = rr_next;
            iters += 1;
        }
        (x, iters)
    }

    /// Solves with the chosen solver; `start` warm-starts conjugate gradient.
    pub fn solve(&self, solver: SharedSolver, start: MatRef<'_, f64>) -> Mat<f64> {
        let dr = self.data.dim * self.rank;
        let dense = match solver {
            SharedSolver::Auto { dense_max } => dr <= dense_max,
            SharedSolver::Dense => true,
            SharedSolver::ConjugateGradient => false,
        };
        if dense {
            self.solve_dense()
        } else {
            self.solve_cg(start, 1e-13, CG_MAX_ITERS.min(4 * dr)).0
        }
    }
}
