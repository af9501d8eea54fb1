//! The per-task sparse step of AMHT-LRS: hard-thresholding pursuit (HTP) on the problem with
//! the shared directions projected out.
//!
//! Given `U`, task `i` solves `min_b ‖A b − z‖` over `k`-sparse `b`, with `A = P X_i`,
//! `z = P y_i` and `P = I − Q Qᵀ` the projector off `range(X_i U)` (so the unknown `w_i` drops
//! out). One HTP step is `S ← supp H_k(b − η Aᵀ(A b − z))`, then `b ← argmin_{supp b ⊆ S}`.
//! The step is on the restricted-isometry scale `η = c/m` (docs/DESIGN.md §Linear setting):
//! `1/‖A‖²` would be `(1+√(d/m))²` times smaller and stall on a wrong support.
//!
//! In the noiseless case a zero residual certifies the support (for `m − r > 2k`, generically
//! unique), so when the warm start ends with a residual above `accept_tol·‖z‖` the step also
//! tries a cold start and orthogonal matching pursuit and keeps the smallest residual.

use faer::{Mat, MatRef};

use crate::hard_threshold::{support_of, top_k_support};
use crate::linalg::{lstsq, mat_t_vec, mat_vec, norm2};

/// Candidates of the exhaustive subset search of the thorough sparse step (`C(20, 5)` =
/// 15 504 least squares for `k = 5`).
pub const SUBSET_CANDIDATES: usize = 20;

/// Largest number of least-squares fits the subset search may take.
pub const SUBSET_MAX_FITS: u64 = 200_000;

/// Default breakpoints of the ℓ1 path of the sparse step.
pub const L1_STEPS: usize = 10;

/// Default forced-index ℓ1 paths of the rescue.
pub const FORCED_STARTS: usize = 100;

/// `C(n, k)`, saturating.
fn binomial(n: usize, k: usize) -> u64 {
    (0..k.min(n) as u64).fold(1u64, |acc, i| acc.saturating_mul(n as u64 - i) / (i + 1))
}

/// Steps `idx` (increasing, in `0..n`) to the next combination of its size in lexicographic
/// order; `false`, leaving it as it was, after the last.
pub(crate) fn next_combination(idx: &mut [usize], n: usize) -> bool {
    let k = idx.len();
    let Some(pos) = (0..k).rev().find(|&p| idx[p] + k < n + p) else {
        return false;
    };
    idx[pos] += 1;
    for q in pos + 1..k {
        idx[q] = idx[q - 1] + 1;
    }
    true
}

/// Settings of the sparse step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SparseStepConfig {
    /// Budget `k` of non-zeros.
    pub sparsity: usize,
    /// Step size times samples: `η = step_scale / m`.
    pub step_scale: f64,
    /// Maximum HTP iterations per start.
    pub inner_steps: usize,
    /// Search beyond the warm start when it leaves a residual above `accept_tol · ‖z‖` (the
    /// ℓ1 paths, and cold-start HTP, OMP and the rest of the general path); keep the best.
    /// Off: warm-started HTP alone.
    pub restarts: bool,
    /// Relative residual accepted without restarts.
    pub accept_tol: f64,
    /// Sweeps of one-for-one support swaps tried on a task still uncertified after the
    /// restarts (0 = off).
    pub swap_passes: usize,
    /// Random-support HTP starts tried (with swap search) when the swaps alone fail.
    pub random_restarts: usize,
    /// Spend more on tasks still uncertified: basis pursuit run to 5 000 iterations and a
    /// swap search after every random restart. AMHT-LRS turns it on for its last task
    /// phase, where each task's part is final and only a handful remain uncertified.
    pub thorough: bool,
    /// Breakpoints of the ℓ1 path ([`crate::l1_homotopy`]) tried, pruned to `k` entries and
    /// refined by HTP, on a task whose warm fit is not certified (0 = off).
    pub l1_steps: usize,
    /// ℓ1 paths with one index forced into the support that the rescue tries, one index after
    /// the other in order of the plain path's magnitudes, until one certifies (0 = off).
    pub forced_starts: usize,
    /// The ℓ1 path runs only for tasks whose relative residual `‖r‖ / ‖z‖` also exceeds this
    /// (0: every uncertified task); AMHT-LRS sets it each round from the last round's median.
    pub path_floor: f64,
}

impl Default for SparseStepConfig {
    fn default() -> Self {
        Self {
            sparsity: 5,
            step_scale: 1.0,
            inner_steps: 20,
            restarts: true,
            accept_tol: 1e-9,
            swap_passes: 10,
            random_restarts: 32,
            thorough: false,
            l1_steps: L1_STEPS,
            forced_starts: FORCED_STARTS,
            path_floor: 0.0,
        }
    }
}

/// The problem of one task with `U`'s directions projected out.
pub struct ProjectedTask {
    /// `A = P X_i`, `[m, d]`.
    pub a: Mat<f64>,
    /// `z = P y`, `[m]`.
    pub z: Vec<f64>,
}

impl ProjectedTask {
    /// Projects `range(X U)` out of `x` and `y` (`x: [m, d]`, `u: [d, r]`).
    pub fn new(x: MatRef<'_, f64>, y: &[f64], u: MatRef<'_, f64>) -> Self {
        let xu = x * u;
        let q = if xu.ncols() > 0 {
            xu.qr().compute_thin_Q()
        } else {
            xu
        };
        let qt_x = q.transpose() * x;
        let a = x - &q * &qt_x;
        let qt_y = mat_t_vec(q.as_ref(), y);
        let q_qt_y = mat_vec(q.as_ref(), &qt_y);
        let z = y.iter().zip(&q_qt_y).map(|(a, b)| a - b).collect();
        Self { a, z }
    }

    /// Wraps an unprojected problem (no shared part: `r = 0`).
    pub fn plain(x: MatRef<'_, f64>, y: &[f64]) -> Self {
        Self {
            a: x.to_owned(),
            z: y.to_vec(),
        }
    }

    /// `‖A b − z‖`.
    pub fn residual(&self, b: &[f64]) -> f64 {
        let ab = mat_vec(self.a.as_ref(), b);
        norm2(
            &ab.iter()
                .zip(&self.z)
                .map(|(p, q)| p - q)
                .collect::<Vec<_>>(),
        )
    }

    /// Least squares on support `s`, scattered into a length-`d` vector.
    fn fit_on(&self, s: &[usize]) -> Vec<f64> {
        let sub = Mat::<f64>::from_fn(self.a.nrows(), s.len(), |i, j| self.a[(i, s[j])]);
        let coef = lstsq(sub.as_ref(), &self.z);
        let mut b = vec![0.0; self.a.ncols()];
        for (j, &p) in s.iter().enumerate() {
            b[p] = coef[j];
        }
        b
    }

    /// HTP from `start`; returns the final `b`.
    pub fn htp(&self, start: &[f64], k: usize, eta: f64, steps: usize) -> Vec<f64> {
        let mut b = start.to_vec();
        let mut support = support_of(&b);
        for _ in 0..steps.max(1) {
            let ab = mat_vec(self.a.as_ref(), &b);
            let resid: Vec<f64> = ab.iter().zip(&self.z).map(|(p, q)| p - q).collect();
            let grad = mat_t_vec(self.a.as_ref(), &resid);
            let c: Vec<f64> = b.iter().zip(&grad).map(|(bj, gj)| bj - eta * gj).collect();
            let next = top_k_support(&c, k);
            // Always refit: a warm start may have the right support but values fitted
            // against an older U.
            b = self.fit_on(&next);
            if next == support {
                break;
            }
            support = next;
        }
        b
    }

    /// Orthogonal matching pursuit: `k` greedy picks by correlation with the residual.
    pub fn omp(&self, k: usize) -> Vec<f64> {
        let mut support: Vec<usize> = Vec::with_capacity(k);
        let mut b = vec![0.0; self.a.ncols()];
        for _ in 0..k {
            let ab = mat_vec(self.a.as_ref(), &b);
            let resid: Vec<f64> = self.z.iter().zip(&ab).map(|(p, q)| p - q).collect();
            let corr = mat_t_vec(self.a.as_ref(), &resid);
            let pick = (0..corr.len())
                .filter(|j| !support.contains(j))
                .max_by(|&i, &j| corr[i].abs().total_cmp(&corr[j].abs()).then(j.cmp(&i)));
            let Some(p) = pick else { break };
            support.push(p);
            support.sort_unstable();
            b = self.fit_on(&support);
        }
        b
    }

    /// The sparse step: warm-started HTP, with restarts when the residual is not certified.
    pub fn solve(&self, warm: &[f64], cfg: &SparseStepConfig) -> Vec<f64> {
        let k = cfg.sparsity;
        if k == 0 {
            return vec![0.0; self.a.ncols()];
        }
        let eta = cfg.step_scale / self.a.nrows() as f64;
        let scale = norm2(&self.z).max(f64::MIN_POSITIVE);
        let mut best = self.htp(warm, k, eta, cfg.inner_steps);
        let mut best_res = self.residual(&best);
        if !cfg.restarts || best_res <= cfg.accept_tol * scale {
            return best;
        }
        let zero = vec![0.0; self.a.ncols()];
        let cold = self.htp(&zero, k, eta, cfg.inner_steps);
        let omp = self.omp(k);
        let omp_htp = self.htp(&omp, k, eta, cfg.inner_steps);
        for cand in [cold, omp_htp] {
            let res = self.residual(&cand);
            if res < best_res {
                best = cand;
                best_res = res;
            }
        }
        let accept = cfg.accept_tol * scale;
        if best_res > accept && cfg.swap_passes > 0 {
            best = self.swap_search(best, cfg.swap_passes, accept);
            best_res = self.residual(&best);
            // Seeded by the data so the result does not depend on task order or threads.
            let seed = self
                .z
                .iter()
                .fold(0u64, |h, v| h.rotate_left(5) ^ v.to_bits());
            if best_res > accept {
                let iters = if cfg.thorough { 5000 } else { 500 };
                let cand = self.swap_search(self.basis_pursuit(k, iters), cfg.swap_passes, accept);
                let res = self.residual(&cand);
                if res < best_res {
                    best = cand;
                    best_res = res;
                }
            }
            if best_res > accept && !cfg.thorough {
                let (cand, _) =
                    self.random_restarts(k, eta, cfg.inner_steps, cfg.random_restarts, seed);
                let cand = self.swap_search(cand, cfg.swap_passes, accept);
                if self.residual(&cand) < best_res {
                    best = cand;
                }
            }
            if cfg.thorough
                && best_res > accept
                && binomial(SUBSET_CANDIDATES, k) <= SUBSET_MAX_FITS
            {
                // ℓ1 usually ranks the true support among its largest entries even when its
                // top k are wrong: search the subsets of its top 20.
                let bp = self.l1_solution(5000);
                let candidates = top_k_support(&bp, SUBSET_CANDIDATES);
                let (cand, res) = self.subset_search(&candidates, k, accept);
                if res < best_res {
                    best = cand;
                    best_res = res;
                }
            }
            if cfg.thorough {
                for n in 0..cfg.random_restarts as u64 {
                    if best_res <= accept {
                        break;
                    }
                    let (cand, _) =
                        self.random_restarts(k, eta, cfg.inner_steps, 1, seed.wrapping_add(n));
                    let cand = self.swap_search(cand, cfg.swap_passes, accept);
                    let res = self.residual(&cand);
                    if res < best_res {
                        best = cand;
                        best_res = res;
                    }
                }
            }
        }
        best
    }

    /// Local search over supports by steepest descent: each sweep tries every one-for-one
    /// exchange of a support index with an outside index and takes the one that lowers the
    /// residual most; stops after `passes` sweeps, when no exchange helps, or once the
    /// residual is certified below `accept`. A sweep is `k (d − k)` least squares of `k`
    /// columns; it runs only for the few tasks that HTP left uncertified.
    pub fn swap_search(&self, start: Vec<f64>, passes: usize, accept: f64) -> Vec<f64> {
        let d = self.a.ncols();
        let mut support = support_of(&start);
        let mut best = start;
        let mut best_res = self.residual(&best);
        for _ in 0..passes {
            let mut step: Option<(Vec<usize>, Vec<f64>, f64)> = None;
            for slot in 0..support.len() {
                for p in (0..d).filter(|p| !support.contains(p)) {
                    let mut trial = support.clone();
                    trial[slot] = p;
                    trial.sort_unstable();
                    let b = self.fit_on(&trial);
                    let res = self.residual(&b);
                    if res < step.as_ref().map_or(best_res * (1.0 - 1e-12), |s| s.2) {
                        step = Some((trial, b, res));
                    }
                }
            }
            let Some((trial, b, res)) = step else { break };
            support = trial;
            best = b;
            best_res = res;
            if best_res <= accept {
                break;
            }
        }
        best
    }

    /// Basis pursuit `min ‖b‖₁ s.t. A b = z` by ADMM (projection onto the affine set through
    /// the pseudo-inverse of `A`, then soft thresholding), pruned to the `k` largest entries
    /// and refitted. ℓ1 has a different failure set than greedy pursuit, so it rescues tasks
    /// on which HTP and the swaps stall.
    pub fn basis_pursuit(&self, k: usize, iters: usize) -> Vec<f64> {
        self.fit_on(&top_k_support(&self.l1_solution(iters), k))
    }

    /// The ADMM iterate for `min ‖b‖₁ s.t. A b = z` after `iters` iterations (not pruned).
    pub fn l1_solution(&self, iters: usize) -> Vec<f64> {
        let d = self.a.ncols();
        let Ok(svd) = self.a.thin_svd() else {
            return vec![0.0; d];
        };
        let (u, sv, v) = (svd.U(), svd.S().column_vector(), svd.V());
        let smax = (0..sv.nrows()).map(|i| sv[i]).fold(0.0f64, f64::max);
        let keep: Vec<usize> = (0..sv.nrows()).filter(|&i| sv[i] > 1e-10 * smax).collect();
        // x ↦ x − A⁺(A x − z), with A⁺ = V Σ⁻¹ Uᵀ on the kept singular triplets.
        let project = |x: &[f64]| -> Vec<f64> {
            let ax = mat_vec(self.a.as_ref(), x);
            let r: Vec<f64> = ax.iter().zip(&self.z).map(|(p, q)| p - q).collect();
            let mut out = x.to_vec();
            for &j in &keep {
                let c = (0..r.len()).map(|i| u[(i, j)] * r[i]).sum::<f64>() / sv[j];
                for (p, o) in out.iter_mut().enumerate() {
                    *o -= v[(p, j)] * c;
                }
            }
            out
        };
        let rho = 1.0
            / (self
                .z
                .iter()
                .map(|v| v.abs())
                .fold(0.0, f64::max)
                .max(1e-12)
                * 0.1);
        let (mut zv, mut uv) = (vec![0.0; d], vec![0.0; d]);
        for _ in 0..iters {
            let target: Vec<f64> = zv.iter().zip(&uv).map(|(a, b)| a - b).collect();
            let x = project(&target);
            for p in 0..d {
                let w = x[p] + uv[p];
                zv[p] = w.signum() * (w.abs() - 1.0 / rho).max(0.0);
                uv[p] += x[p] - zv[p];
            }
        }
        zv
    }

    /// Exhaustive search over the `k`-subsets of `candidates` (at most `C(|candidates|, k)`
    /// least squares), stopping at the first certified fit; returns the best fit found.
    pub fn subset_search(&self, candidates: &[usize], k: usize, accept: f64) -> (Vec<f64>, f64) {
        let n = candidates.len();
        let mut best = (vec![0.0; self.a.ncols()], f64::INFINITY);
        if k == 0 || k > n {
            return best;
        }
        let mut idx: Vec<usize> = (0..k).collect();
        loop {
            let mut support: Vec<usize> = idx.iter().map(|&i| candidates[i]).collect();
            support.sort_unstable();
            let b = self.fit_on(&support);
            let res = self.residual(&b);
            if res < best.1 {
                best = (b, res);
                if res <= accept {
                    return best;
                }
            }
            if !next_combination(&mut idx, n) {
                return best;
            }
        }
    }

    /// HTP from `tries` random `k`-supports (seeded), keeping the smallest residual.
    pub fn random_restarts(
        &self,
        k: usize,
        eta: f64,
        steps: usize,
        tries: usize,
        seed: u64,
    ) -> (Vec<f64>, f64) {
        use rand::{seq::index::sample, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let d = self.a.ncols();
        let mut best = (vec![0.0; d], f64::INFINITY);
        for _ in 0..tries {
            let mut s = sample(&mut rng, d, k.min(d)).into_vec();
            s.sort_unstable();
            let b = self.htp(&self.fit_on(&s), k, eta, steps);
            let res = self.residual(&b);
            if res < best.1 {
                best = (b, res);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    #[test]
    fn htp_recovers_a_sparse_vector_from_few_measurements() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (m, d, k) = (40, 100, 5);
        let x = Mat::<f64>::from_fn(m, d, |_, _| rng.sample(StandardNormal));
        let mut b = vec![0.0; d];
        for (n, p) in [3usize, 17, 40, 41, 90].into_iter().enumerate() {
            b[p] = if n % 2 == 0 { 1.0 } else { -1.5 };
        }
        let y = mat_vec(x.as_ref(), &b);
        let task = ProjectedTask::plain(x.as_ref(), &y);
        let cfg = SparseStepConfig {
            sparsity: k,
            ..Default::default()
        };
        let got = task.solve(&vec![0.0; d], &cfg);
        let err: f64 = got
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(err < 1e-10, "error {err}");
    }

    #[test]
    fn subset_search_finds_the_support_among_candidates() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let (m, d) = (12, 30);
        let x = Mat::<f64>::from_fn(m, d, |_, _| rng.sample(StandardNormal));
        let mut b = vec![0.0; d];
        b[4] = 2.0;
        b[21] = -1.0;
        b[9] = 0.5;
        let y = mat_vec(x.as_ref(), &b);
        let task = ProjectedTask::plain(x.as_ref(), &y);
        let (got, res) = task.subset_search(&[1, 4, 9, 13, 21, 28], 3, 1e-9);
        assert!(res < 1e-9, "residual {res}");
        assert_eq!(support_of(&got), vec![4, 9, 21]);
        assert_eq!(super::binomial(20, 5), 15_504);
        assert_eq!(super::binomial(5, 9), 1);
    }

    #[test]
    fn projection_removes_the_shared_directions() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let (m, d) = (30, 20);
        let x = Mat::<f64>::from_fn(m, d, |_, _| rng.sample(StandardNormal));
        let u = crate::synthetic::random_orthonormal(d, 3, &mut rng);
        let w = [1.0, -2.0, 0.5];
        let theta: Vec<f64> = (0..d)
            .map(|p| (0..3).map(|a| u[(p, a)] * w[a]).sum())
            .collect();
        let y = mat_vec(x.as_ref(), &theta);
        let task = ProjectedTask::new(x.as_ref(), &y, u.as_ref());
        assert!(norm2(&task.z) < 1e-10 * norm2(&y));
    }
}
