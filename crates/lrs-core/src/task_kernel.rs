//! The per-task kernel of the task phase: warm-started HTP with `range(X_i U)` projected out,
//! then least squares for `w_i`, on the task's row-major samples directly and in scratch
//! buffers reused from task to task (no allocation per iteration).
//!
//! `X U = Q R₁₁` (Gram–Schmidt, twice), `P = I − Q Qᵀ`, `z = P y`. An HTP step takes the
//! gradient `Xᵀ P (X b − y)` (one pass over `X`), keeps the `k` largest entries of
//! `b − η·gradient`, and refits on that support: `P X_S = Q₂ R₂₂`, `b_S = R₂₂⁻¹ Q₂ᵀ z`; the
//! refit's residual `e = z − Q₂ Q₂ᵀ z` is the next gradient's input. It is the same iteration
//! as [`crate::sparse_step::ProjectedTask::htp`] without forming `P X`, at `O(m d)` per step
//! and `O(m d r)` per task-round for `X U`.

use crate::hard_threshold::{support_of, top_k_support_into};
use crate::l1_homotopy::HomotopyScratch;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::linalg::{axpy, dot, gemv};
use crate::sparse_step::next_combination;
use std::ops::Range;

/// A column whose norm falls below this fraction of its norm before orthogonalisation counts
/// as dependent; the kernel then declines and the caller takes the general path.
pub(crate) const DEPENDENT: f64 = 1e-10;

/// The searches the kernel runs after the warm HTP when its fit is not certified.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Retry {
    /// Relative residual (of `‖z‖`) that certifies a fit.
    pub tol: f64,
    /// Relative residual (of `‖z‖`) a warm fit must also exceed for the searches to run.
    pub floor: f64,
    /// Breakpoints of the ℓ1 path ([`crate::l1_homotopy`]); 0 turns the searches off.
    pub l1_steps: usize,
    /// Paths with one index forced into the support, tried in order of the first path's
    /// magnitudes until one certifies (0 = none).
    pub forced_starts: usize,
    /// Then paths with two indices forced, every pair among this many first indices of that
    /// order (0 = none).
    pub pair_candidates: usize,
    /// Complete `(k − 2)`-subsets of the first indices of that order by every pair of other
    /// indices (on the task's Gram matrix, where it has one), before the forced paths and
    /// again before the pairs ([`COMPLETION_FIRST`]): it finds the supports of which the first
    /// path ranks `k − 2` near its top, which a forced path finds only once it frees one of
    /// the other two.
    pub completions: bool,
}

/// What the kernel found for one task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelFit {
    /// `‖y − X(U w + b)‖²` of the returned `(w, b)`.
    pub residual_sq: f64,
    /// `‖z‖ = ‖P y‖`, the scale of the sparse step's certificate.
    pub z_norm: f64,
}

/// The completion search ([`Retry::completions`]) takes as bases the `(k − 2)`-subsets of
/// the first indices of the plain path's order, the bases among the first `COMPLETION_FIRST`
/// (4 bases for `k = 5`) before the forced paths, then those among the first
/// [`COMPLETION_LAST`] (52 more) before the forced pairs. On the last task phase at d = 100,
/// m = 30, t = 1 000 the first 4 spared half of the forced paths; 10 or 20 (the first 5 or 6
/// indices) spared only a tenth more, while the tasks that reach the pairs, a handful at
/// most, run hundreds of paths each.
const COMPLETION_FIRST: usize = 4;

/// See [`COMPLETION_FIRST`]: 56 bases for `k = 5`, the cost of 56 paths against the 780 pair
/// paths; at t = 10 000 they certified 7 of the 24 tasks that went beyond 100 paths, 6 of the
/// 11 that none of the 880 paths certifies.
const COMPLETION_LAST: usize = 8;

/// Scratch of [`TaskScratch::fit`] for one thread, sized for `(m, d, r, k)`.
pub struct TaskScratch {
    m: usize,
    d: usize,
    r: usize,
    /// `Q` of `X U`, `[r, m]` (column after column).
    q: Vec<f64>,
    /// `R₁₁`, `[r, r]` row-major.
    r11: Vec<f64>,
    /// `z = P y`.
    z: Vec<f64>,
    /// `Q₂` of `P X_S`, `[k, m]`.
    q2: Vec<f64>,
    /// `R₂₂`, `[k, k]` row-major.
    r22: Vec<f64>,
    /// Projection coefficients (length `max(r, k)`).
    coef: Vec<f64>,
    /// Values on the support (length `k`).
    beta: Vec<f64>,
    /// Residual / work vector of length `m`.
    e: Vec<f64>,
    /// Gradient step `b − η·gradient`, length `d`.
    c: Vec<f64>,
    /// Index scratch of the top-`k` selection.
    idx: Vec<usize>,
    support: Vec<usize>,
    next: Vec<usize>,
    /// The best support so far while [`Self::retry`] tries others.
    kept: Vec<usize>,
    /// Index order of the forced starts.
    order: Vec<usize>,
    /// The ℓ1 path of the retry.
    homotopy: HomotopyScratch,
}

impl TaskScratch {
    /// Scratch for tasks of `m` samples in dimension `d`, rank `r`, sparsity `k`.
    pub fn new(m: usize, d: usize, r: usize, k: usize) -> Self {
        Self {
            m,
            d,
            r,
            q: vec![0.0; r * m],
            r11: vec![0.0; r * r],
            z: vec![0.0; m],
            q2: vec![0.0; k * m],
            r22: vec![0.0; k * k],
            coef: vec![0.0; r.max(k)],
            beta: vec![0.0; k],
            e: vec![0.0; m],
            c: vec![0.0; d],
            idx: Vec::with_capacity(d),
            support: Vec::with_capacity(d),
            next: Vec::with_capacity(k),
            kept: Vec::with_capacity(k),
            order: Vec::with_capacity(d),
            homotopy: HomotopyScratch::new(m, d, r),
        }
    }

    /// Fits one task: `x` is `[m, d]` row-major, `u` is `[d, r]`, `warm` the
    /// previous `b`. Writes `b` and `w` and returns the residual, or `None` when a
    /// least-squares system of the kernel is rank-deficient (then nothing useful was written).
    /// A warm fit whose residual exceeds `max(retry.tol, retry.floor) · ‖z‖` gets the
    /// searches of `retry`.
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        &mut self,
        x: &[f64],
        y: &[f64],
        u: MatRef<'_, f64>,
        warm: &[f64],
        k: usize,
        eta: f64,
        steps: usize,
        retry: &Retry,
        b_out: &mut [f64],
        w_out: &mut [f64],
    ) -> Option<KernelFit> {
        let (m, d, r) = (self.m, self.d, self.r);
        if r + k > m || self.q2.len() < k * m {
            return None;
        }
        let xm = MatRef::from_row_major_slice(x, m, d);
        self.factor_xu(xm, u)?;
        self.z.copy_from_slice(y);
        project_out(&self.q, m, &mut self.z, &mut self.coef[..r]);
        let z_norm = dot(&self.z, &self.z).sqrt();

        b_out.fill(0.0);
        self.support.clear();
        if k > 0 {
            self.support.extend(support_of(warm));
            // e = z − P X_S b_warm, so that the gradient is −Xᵀe as after every refit.
            self.e.copy_from_slice(y);
            for (s, e) in self.e.iter_mut().enumerate() {
                let row = &x[s * d..(s + 1) * d];
                *e -= self.support.iter().map(|&p| row[p] * warm[p]).sum::<f64>();
            }
            project_out(&self.q, m, &mut self.e, &mut self.coef[..r]);
            self.c.copy_from_slice(warm);
            self.htp(x, k, eta, steps)?;
            let gate = retry.tol.max(retry.floor) * z_norm;
            if retry.l1_steps > 0 && dot(&self.e, &self.e).sqrt() > gate {
                self.retry(x, k, eta, steps, retry)?;
            }
            b_out.copy_from_slice(&self.c);
        }
        // w = R₁₁⁻¹ Qᵀ (y − X b); the residual is what Q leaves of y − X b.
        let nz: &[usize] = if k > 0 { &self.support } else { &[] };
        self.e.copy_from_slice(y);
        for (s, e) in self.e.iter_mut().enumerate() {
            let row = &x[s * d..(s + 1) * d];
            *e -= nz.iter().map(|&p| row[p] * b_out[p]).sum::<f64>();
        }
        let coef = &mut self.coef[..r];
        for (a, c) in coef.iter_mut().enumerate() {
            *c = dot(&self.q[a * m..(a + 1) * m], &self.e);
        }
        for (a, q) in self.q.chunks_exact(m).enumerate() {
            axpy(-coef[a], q, &mut self.e);
        }
        back_substitute(&self.r11, r, r, coef, w_out);
        Some(KernelFit {
            residual_sq: dot(&self.e, &self.e),
            z_norm,
        })
    }

    /// HTP from the current `(support, c, e)`: `c` the start's `b`, `e = z − P X b`. Leaves the
    /// refitted support in `support`, its `b` in `c` and its residual in `e`.
    fn htp(&mut self, x: &[f64], k: usize, eta: f64, steps: usize) -> Option<()> {
        let xm = MatRef::from_row_major_slice(x, self.m, self.d);
        for _ in 0..steps.max(1) {
            // c = b − η Xᵀ P (X b − y) = b + η Xᵀ e.
            gemv(&mut self.c, xm.transpose(), &self.e, eta, true);
            top_k_support_into(&self.c, k, &mut self.idx, &mut self.next);
            self.refit(x)?;
            self.scatter_beta();
            let settled = self.next == self.support;
            // `support` is now the refitted one.
            std::mem::swap(&mut self.support, &mut self.next);
            if settled {
                break;
            }
        }
        Some(())
    }

    /// `c ← ` the refitted `b` of support `next` (values in `beta`).
    fn scatter_beta(&mut self) {
        self.c.fill(0.0);
        for (j, &p) in self.next.iter().enumerate() {
            self.c[p] = self.beta[j];
        }
    }

    /// The searches of `retry` for a task the warm HTP left uncertified: the ℓ1 path
    /// pruned to its `k` largest entries and refined by HTP, then (with `forced_starts`) the
    /// completion search of [`Self::complete`] (with `completions`), then the path with one
    /// index left unpenalised, for the indices in order of the first path's magnitudes, then
    /// (with `pair_candidates`) the completions of more bases and the paths with every pair
    /// of the first indices left unpenalised. The plain path's fit is kept
    /// when its residual is smaller than the warm fit's; a completed or forced path's only when
    /// it certifies, and the first that does ends the search: among hundreds of starts, one
    /// that merely beats the warm residual may fit an inexact `U`'s error rather than the task.
    /// The scratch (basis, residual) is left describing the kept fit.
    fn retry(&mut self, x: &[f64], k: usize, eta: f64, steps: usize, retry: &Retry) -> Option<()> {
        let accept = retry.tol * retry.tol * dot(&self.z, &self.z);
        let warm_res = dot(&self.e, &self.e);
        self.kept.clear();
        self.kept.extend_from_slice(&self.support);
        let plain = self.try_path(x, k, eta, steps, retry.l1_steps, &[], warm_res)?;
        if plain.min(warm_res) > accept && retry.forced_starts > 0 {
            self.order_by_path(x);
            // Up to hundreds of forced paths follow on this task: on its Gram matrix, each
            // breakpoint costs O(d·n) instead of O(d·m).
            let complete = self.homotopy.use_gram(x, &self.q) && retry.completions;
            // A completion that certifies ends the search; one that does not leaves the
            // forced paths to rewrite the scratch.
            if complete && self.complete(x, k, accept, 0..COMPLETION_FIRST) {
                return Some(());
            }
            let n = retry.pair_candidates.min(self.d);
            let n_singles = retry.forced_starts.min(self.d);
            let singles = (0..n_singles).map(|a| (a, None));
            let pairs = (0..n).flat_map(|a| (a + 1..n).map(move |c| (a, Some(c))));
            for (i, (a, c)) in singles.chain(pairs).enumerate() {
                // Before the hundreds of pair paths, the completions of the bases drawn from
                // more of the first indices.
                if i == n_singles
                    && complete
                    && self.complete(x, k, accept, COMPLETION_FIRST..COMPLETION_LAST)
                {
                    return Some(());
                }
                let free = [self.order[a], c.map_or(0, |c| self.order[c])];
                let free = &free[..if c.is_some() { 2 } else { 1 }];
                if self.try_path(x, k, eta, steps, retry.l1_steps, free, accept)? < accept {
                    break;
                }
            }
        }
        if self.support != self.kept {
            std::mem::swap(&mut self.next, &mut self.kept);
            self.refit(x)?;
            self.scatter_beta();
            std::mem::swap(&mut self.support, &mut self.next);
        }
        Some(())
    }

    /// The completion search of [`Retry::completions`] over the bases whose last index (in
    /// `order`) lies in `last`, in that order (colexicographic: the bases among the first
    /// indices first): `true`, with the scratch describing the fit and `kept` its support,
    /// once a completed support certifies. Any support that certifies is the one a forced path
    /// would find (for `m − r > 2k` the exact `k`-sparse fit is generically unique), so the
    /// search only spares paths.
    fn complete(&mut self, x: &[f64], k: usize, accept: f64, last: Range<usize>) -> bool {
        let width = k.min(2);
        let f = k - width;
        let mut found = Vec::new();
        if f == 0 {
            // One base, the empty one: an exhaustive search of the supports of `width`.
            return last.start == 0 && self.complete_base(x, &[], width, accept, &mut found);
        }
        for top in last.start.max(f - 1)..last.end.min(self.d) {
            let mut head: Vec<usize> = (0..f - 1).collect();
            loop {
                let mut picked: Vec<usize> = head.iter().map(|&a| self.order[a]).collect();
                picked.push(self.order[top]);
                if self.complete_base(x, &picked, width, accept, &mut found) {
                    return true;
                }
                if !next_combination(&mut head, top) {
                    break;
                }
            }
        }
        false
    }

    /// The completions of one `base` ([`HomotopyScratch::completions`]), each refitted:
    /// `true`, as [`Self::complete`], once one certifies.
    fn complete_base(
        &mut self,
        x: &[f64],
        base: &[usize],
        width: usize,
        accept: f64,
        found: &mut Vec<(usize, Option<usize>)>,
    ) -> bool {
        found.clear();
        self.homotopy.completions(x, &self.z, base, width, found);
        for &(j, l) in found.iter() {
            self.next.clear();
            self.next.extend_from_slice(base);
            self.next.push(j);
            self.next.extend(l);
            self.next.sort_unstable();
            // A refit that finds the columns dependent proves nothing: try the next.
            if self.refit(x).is_some() && dot(&self.e, &self.e) < accept {
                self.scatter_beta();
                std::mem::swap(&mut self.support, &mut self.next);
                self.kept.clear();
                self.kept.extend_from_slice(&self.support);
                return true;
            }
        }
        false
    }

    /// `order ←` the indices by the last ℓ1 path's magnitudes, ties by `|Xᵀz|`.
    fn order_by_path(&mut self, x: &[f64]) {
        let xm = MatRef::from_row_major_slice(x, self.m, self.d);
        gemv(&mut self.c, xm.transpose(), &self.z, 1.0, false);
        let path = self.homotopy.last_b();
        self.order.clear();
        self.order.extend(0..self.d);
        let (c, order) = (&self.c, &mut self.order);
        order.sort_by(|&i, &j| {
            path[j]
                .abs()
                .total_cmp(&path[i].abs())
                .then(c[j].abs().total_cmp(&c[i].abs()))
                .then(i.cmp(&j))
        });
    }

    /// One candidate of [`Self::retry`]: the ℓ1 path (with `free` unpenalised), pruned to `k`
    /// entries and refitted (and, for the plain path, refined by HTP); records its support in `kept` when its residual is below
    /// `limit`, and returns that residual.
    #[allow(clippy::too_many_arguments)]
    fn try_path(
        &mut self,
        x: &[f64],
        k: usize,
        eta: f64,
        steps: usize,
        l1_steps: usize,
        free: &[usize],
        limit: f64,
    ) -> Option<f64> {
        let path = self.homotopy.run(x, &self.q, &self.z, free, l1_steps);
        top_k_support_into(path, k, &mut self.idx, &mut self.next);
        self.refit(x)?;
        self.scatter_beta();
        std::mem::swap(&mut self.support, &mut self.next);
        // The plain path's pruning is refined by HTP; a forced path's is taken as it is
        // (HTP after it certified no task the pruning had not).
        if free.is_empty() {
            self.htp(x, k, eta, steps)?;
        }
        let res = dot(&self.e, &self.e);
        if res < limit {
            self.kept.clear();
            self.kept.extend_from_slice(&self.support);
        }
        Some(res)
    }

    /// `Q R₁₁ = X U` into `q` and `r11`.
    fn factor_xu(&mut self, xm: MatRef<'_, f64>, u: MatRef<'_, f64>) -> Option<()> {
        let (m, r) = (self.m, self.r);
        // A new Q: the projected columns cached for the last one are stale.
        self.homotopy.new_task();
        matmul(
            MatMut::from_column_major_slice_mut(&mut self.q, m, r),
            Accum::Replace,
            xm,
            u,
            1.0,
            Par::Seq,
        );
        for a in 0..r {
            let (prev, rest) = self.q.split_at_mut(a * m);
            let col = &mut rest[..m];
            let coef = &mut self.coef[..a];
            let norm = orthonormalize_column(prev, m, col, coef)?;
            for (j, &h) in coef.iter().enumerate() {
                self.r11[j * r + a] = h;
            }
            self.r11[a * r + a] = norm;
        }
        Some(())
    }

    /// The orthonormal basis `[Q, Q₂]` (`[r + |S|, m]`, column after column) of
    /// `range [X U, X_S]` after a successful [`Self::fit`]; the Gauss–Newton shared step
    /// projects it out.
    pub fn fitted_basis(&self) -> Vec<f64> {
        let m = self.m;
        let mut out = Vec::with_capacity((self.r + self.support.len()) * m);
        out.extend_from_slice(&self.q);
        out.extend_from_slice(&self.q2[..self.support.len() * m]);
        out
    }

    /// `Xᵀ e` for the residual `e` that a successful [`Self::fit`] left (`x` the task's
    /// `[m, d]` samples).
    pub fn residual_image(&self, x: MatRef<'_, f64>) -> Vec<f64> {
        let mut out = vec![0.0; self.d];
        gemv(&mut out, x.transpose(), &self.e, 1.0, false);
        out
    }

    /// The basis of [`Self::fitted_basis`] for a given `U` and support (`None` when
    /// `[X U, X_S]` is rank-deficient).
    pub fn basis(&mut self, x: &[f64], u: MatRef<'_, f64>, support: &[usize]) -> Option<Vec<f64>> {
        if self.r + support.len() > self.m || self.q2.len() < support.len() * self.m {
            return None;
        }
        let xm = MatRef::from_row_major_slice(x, self.m, self.d);
        self.factor_xu(xm, u)?;
        self.z.fill(0.0);
        self.next.clear();
        self.next.extend_from_slice(support);
        self.refit(x)?;
        std::mem::swap(&mut self.support, &mut self.next);
        Some(self.fitted_basis())
    }

    /// Least squares of `z` on `P X_S` for `S = self.next`: values into `beta`, the residual
    /// `z − P X_S beta` into `e`.
    fn refit(&mut self, x: &[f64]) -> Option<()> {
        let (m, d, r) = (self.m, self.d, self.r);
        let k = self.next.len();
        for j in 0..k {
            let (prev, rest) = self.q2.split_at_mut(j * m);
            let col = &mut rest[..m];
            let p = self.next[j];
            let before = if let Some((pc, raw)) = self.homotopy.projected_column(x, &self.q, p) {
                col.copy_from_slice(pc);
                raw
            } else {
                for (s, v) in col.iter_mut().enumerate() {
                    *v = x[s * d + p];
                }
                let raw = dot(col, col).sqrt();
                project_out(&self.q, m, col, &mut self.coef[..r]);
                raw
            };
            let coef = &mut self.coef[..j];
            let norm = orthonormalize_column(prev, m, col, coef)?;
            if norm <= DEPENDENT * before {
                return None;
            }
            for (i, &h) in coef.iter().enumerate() {
                self.r22[i * k + j] = h;
            }
            self.r22[j * k + j] = norm;
        }
        self.e.copy_from_slice(&self.z);
        let coef = &mut self.coef[..k];
        for (j, c) in coef.iter_mut().enumerate() {
            *c = dot(&self.q2[j * m..(j + 1) * m], &self.e);
        }
        for (j, q) in self.q2[..k * m].chunks_exact(m).enumerate() {
            axpy(-coef[j], q, &mut self.e);
        }
        back_substitute(&self.r22[..k * k], k, k, coef, &mut self.beta[..k]);
        Some(())
    }
}

/// Removes from `v` its components along the orthonormal columns of `basis` (`[n, m]`, column
/// after column), in two Gram–Schmidt passes; `coef` receives the removed coefficients.
pub(crate) fn project_out(basis: &[f64], m: usize, v: &mut [f64], coef: &mut [f64]) {
    coef.fill(0.0);
    for _ in 0..2 {
        for (j, q) in basis.chunks_exact(m).enumerate().take(coef.len()) {
            let h = dot(q, v);
            axpy(-h, q, v);
            coef[j] += h;
        }
    }
}

/// Orthogonalises `col` against `basis` (coefficients into `coef`) and normalises it; returns
/// its remaining norm, or `None` when it is (numerically) in the span of `basis`.
fn orthonormalize_column(
    basis: &[f64],
    m: usize,
    col: &mut [f64],
    coef: &mut [f64],
) -> Option<f64> {
    let before = dot(col, col).sqrt();
    project_out(basis, m, col, coef);
    let norm = dot(col, col).sqrt();
    if norm.is_nan() || norm <= DEPENDENT * before || norm == 0.0 {
        return None;
    }
    col.iter_mut().for_each(|v| *v /= norm);
    Some(norm)
}

/// Solves `R x = g` for the leading `n × n` block of upper-triangular `R` (row-major, rows
/// `stride` apart).
pub(crate) fn back_substitute(rm: &[f64], stride: usize, n: usize, g: &[f64], x: &mut [f64]) {
    for a in (0..n).rev() {
        let row = &rm[a * stride..a * stride + n];
        x[a] = (g[a] - dot(&row[a + 1..], &x[a + 1..n])) / row[a];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse_step::{ProjectedTask, SparseStepConfig};
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    #[test]
    fn kernel_matches_the_general_htp_and_recovers_an_exact_task() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let (m, d, r, k) = (40, 60, 3, 4);
        let x: Vec<f64> = (0..m * d).map(|_| rng.sample(StandardNormal)).collect();
        let u = crate::synthetic::random_orthonormal(d, r, &mut rng);
        let mut b_true = vec![0.0; d];
        for p in [2, 11, 30, 59] {
            b_true[p] = 1.0;
        }
        let w_true = [0.5, -1.0, 2.0];
        let theta: Vec<f64> = (0..d)
            .map(|p| b_true[p] + (0..r).map(|a| u[(p, a)] * w_true[a]).sum::<f64>())
            .collect();
        let xm = MatRef::from_row_major_slice(&x, m, d);
        let y = crate::linalg::mat_vec(xm, &theta);
        let mut scratch = TaskScratch::new(m, d, r, k);
        let (mut b, mut w) = (vec![0.0; d], vec![0.0; r]);
        let zero = vec![0.0; d];
        let eta = 1.0 / m as f64;
        let fit = scratch
            .fit(
                &x,
                &y,
                u.as_ref(),
                &zero,
                k,
                eta,
                20,
                &Retry::default(),
                &mut b,
                &mut w,
            )
            .unwrap();
        let general = ProjectedTask::new(xm, &y, u.as_ref()).htp(&zero, k, eta, 20);
        let diff: f64 = b.iter().zip(&general).map(|(p, q)| (p - q).abs()).sum();
        assert!(diff < 1e-10, "kernel and general HTP differ by {diff}");
        assert!(fit.residual_sq.sqrt() < 1e-10 * crate::linalg::norm2(&y));
        let werr: f64 = w.iter().zip(&w_true).map(|(p, q)| (p - q).abs()).sum();
        assert!(werr < 1e-10, "w error {werr}");
        // A support too large for the samples is declined, not fitted badly.
        let cfg = SparseStepConfig::default();
        let mut small = TaskScratch::new(m, d, r, m);
        let mut b2 = vec![0.0; d];
        assert!(small
            .fit(
                &x,
                &y,
                u.as_ref(),
                &zero,
                m,
                eta,
                cfg.inner_steps,
                &Retry::default(),
                &mut b2,
                &mut w
            )
            .is_none());
    }

    #[test]
    fn the_l1_searches_find_supports_that_warm_htp_misses() {
        // Below HTP's phase transition (m − r = 25 for k = 5 of d = 100), with the true U:
        // count the tasks each search certifies.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(30);
        let (m, d, r, k, tasks) = (30, 100, 5, 5, 60);
        let u = crate::synthetic::random_orthonormal(d, r, &mut rng);
        let forced = |completions| Retry {
            tol: 1e-9,
            floor: 0.0,
            l1_steps: 60,
            forced_starts: 100,
            pair_candidates: 40,
            completions,
        };
        let searches = [
            Retry::default(),
            Retry {
                forced_starts: 0,
                pair_candidates: 0,
                ..forced(false)
            },
            forced(false),
            forced(true),
        ];
        let mut certified = [0usize; 4];
        let mut scratch = TaskScratch::new(m, d, r, k);
        for _ in 0..tasks {
            let x: Vec<f64> = (0..m * d).map(|_| rng.sample(StandardNormal)).collect();
            let mut theta: Vec<f64> = (0..d)
                .map(|p| (0..r).map(|a| u[(p, a)] * (a as f64 - 2.0)).sum())
                .collect();
            let mut placed = 0;
            while placed < k {
                let p = rng.gen_range(0..d);
                if theta[p].abs() < 1.0 {
                    theta[p] += if placed % 2 == 0 { 1.0 } else { -1.0 } * 1.5;
                    placed += 1;
                }
            }
            let y = crate::linalg::mat_vec(MatRef::from_row_major_slice(&x, m, d), &theta);
            let fit = |scratch: &mut TaskScratch, retry: &Retry| {
                let (mut b, mut w) = (vec![0.0; d], vec![0.0; r]);
                let eta = 1.0 / m as f64;
                let zero = vec![0.0; d];
                let fit = scratch
                    .fit(&x, &y, u.as_ref(), &zero, k, eta, 20, retry, &mut b, &mut w)
                    .unwrap();
                (b, fit.residual_sq.sqrt() <= 1e-9 * crate::linalg::norm2(&y))
            };
            let got: Vec<(Vec<f64>, bool)> =
                searches.iter().map(|s| fit(&mut scratch, s)).collect();
            for (n, (_, exact)) in got.iter().enumerate() {
                certified[n] += usize::from(*exact);
            }
            // A task that both forced searches certify gets the same fit, to the bit: the
            // completions only find the support sooner.
            if got[2].1 {
                assert_eq!(got[2].0, got[3].0);
            }
        }
        let [htp, path, forced, completed] = certified;
        eprintln!(
            "certified of {tasks}: warm HTP {htp}, ℓ1 path {path}, forced paths {forced}, \
             with completions {completed}"
        );
        assert!(
            completed >= forced,
            "completions lost tasks: {completed} < {forced}"
        );
        assert!(htp <= tasks * 6 / 10, "warm HTP certified {htp} of {tasks}");
        assert!(
            path >= tasks * 3 / 4 && path > htp + tasks / 5,
            "ℓ1 path {path}, HTP {htp}"
        );
        assert!(
            forced >= tasks * 95 / 100,
            "forced paths certified {forced} of {tasks}"
        );
    }
}
