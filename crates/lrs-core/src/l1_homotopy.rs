//! The ℓ1 homotopy (LARS with the lasso's sign rule) for one task's sparse step, without
//! allocation: the path of `min ½‖z − A b‖² + λ‖b‖₁` from `λ = ‖Aᵀz‖_∞` down to `λ = 0`, where
//! on noiseless data it ends at the basis-pursuit solution `min ‖b‖₁ s.t. A b = z`.
//!
//! `A = P X` with `P = I − Q Qᵀ` the projector off `range(X U)`, never formed: every vector the
//! path correlates with `X` lies in `range(P)`, so `Aᵀ v = Xᵀ v`. The active columns' QR
//! (`P X_I = Q_I R`) grows one column per added index; the direction on the active set is
//! `d = R⁻¹ R⁻ᵀ s` (`s` the signs) and its image `A_I d = Q_I R⁻ᵀ s`.
//!
//! Where ℓ1 recovers the support (for Gaussian designs, up to the Donoho–Tanner curve), the
//! path typically reaches it in about `k` to `3k` steps of `O(m d)` each: the cost of a cold
//! HTP, at ℓ1's success rate rather than greedy pursuit's (on d = 100, m − r = 25, k = 5,
//! about 85 % of tasks against HTP's 40 %).

use crate::linalg::{axpy, dot, gemv};
use crate::task_kernel::{back_substitute, project_out, DEPENDENT};
use faer::MatRef;

/// Steps smaller than this fraction of the starting `λ` count as zero (a tie at a kink).
const TINY_STEP: f64 = 1e-12;

/// Scratch of the ℓ1 path for one thread.
pub struct HomotopyScratch {
    m: usize,
    d: usize,
    /// Most active indices (columns of `Q_I`): at most `m − r`, where `P X_I` is square.
    cap: usize,
    /// `Q_I`, `[cap, m]` column after column.
    q: Vec<f64>,
    /// `R`, `[cap, cap]` row-major (stride `cap`).
    r: Vec<f64>,
    /// Active indices, in the order of `q`'s columns.
    active: Vec<usize>,
    /// Whether each index is active.
    is_active: Vec<bool>,
    /// Signs of the active correlations.
    sign: Vec<f64>,
    /// `R⁻ᵀ s`, then the direction `R⁻¹ R⁻ᵀ s` on the active set.
    dir_u: Vec<f64>,
    dir: Vec<f64>,
    /// The path's `b`, `[d]`.
    b: Vec<f64>,
    /// Correlations `c = Aᵀ(z − A b)`, `[d]`.
    c: Vec<f64>,
    /// `Aᵀ a` for the direction's image `a`, `[d]`.
    v: Vec<f64>,
    /// The direction's image `a = A_I d`, `[m]`.
    a: Vec<f64>,
    /// Each index's step to the next breakpoint, `[d]`.
    ratio: Vec<f64>,
    /// Orthogonalisation coefficients (length `max(r, cap)`).
    coef: Vec<f64>,
    /// The projected columns `P x_p` met so far on the current task, `[d, m]` column after
    /// column (empty when `d·m` exceeds [`COLUMN_CACHE_MAX`]): the forced paths of one task
    /// meet the same columns again and again.
    columns: Vec<f64>,
    /// Whether `columns` holds column `p` for the current task.
    cached: Vec<bool>,
    /// `‖x_p‖` of the cached columns, before the projection, `[d]`.
    raw_norm: Vec<f64>,
    /// `AᵀA = Xᵀ P X`, `[d, d]`, of the current task once [`Self::use_gram`] formed it (empty
    /// where `d²` exceeds [`GRAM_MAX`]).
    gram: Vec<f64>,
    /// Whether the paths of the current task run on `gram`: `R` is then the Cholesky factor
    /// of the active Gram block (`Rᵀ R = A_Iᵀ A_I`, the same `R` as the QR's) and `Q` is not
    /// kept.
    on_gram: bool,
    /// The active indices' rows of `gram`, `[cap, d]`, in the order of `active`.
    panel: Vec<f64>,
    /// `Aᵀ z = Xᵀ z`, `[d]` (Gram mode).
    xz: Vec<f64>,
    /// A new Cholesky column, `[cap]`.
    h: Vec<f64>,
    /// Reciprocals of `R`'s diagonal, `[cap]`.
    rinv: Vec<f64>,
}

/// Largest `d²` for which the scratch can form a task's Gram matrix (2 MiB per thread).
pub const GRAM_MAX: usize = 1 << 18;

/// A column whose Cholesky pivot `‖P x_j‖² − ‖h‖²` falls below this fraction of `‖P x_j‖²`
/// counts as dependent on the active ones (the Gram matrix squares the QR's
/// [`DEPENDENT`] ratio, and resolves it only to about √ε).
const GRAM_DEPENDENT: f64 = 1e-12;

/// Largest `d·m` for which the scratch caches projected columns (8 MiB per thread).
pub const COLUMN_CACHE_MAX: usize = 1 << 20;

impl HomotopyScratch {
    /// Scratch for tasks of `m` samples in dimension `d` with `r` shared directions.
    pub fn new(m: usize, d: usize, r: usize) -> Self {
        let cap = m.saturating_sub(r).min(d);
        Self {
            m,
            d,
            cap,
            q: vec![0.0; cap * m],
            r: vec![0.0; cap * cap],
            active: Vec::with_capacity(cap),
            is_active: vec![false; d],
            sign: Vec::with_capacity(cap),
            dir_u: vec![0.0; cap],
            dir: vec![0.0; cap],
            b: vec![0.0; d],
            c: vec![0.0; d],
            v: vec![0.0; d],
            a: vec![0.0; m],
            ratio: vec![0.0; d],
            coef: vec![0.0; r.max(cap)],
            columns: if d * m <= COLUMN_CACHE_MAX {
                vec![0.0; d * m]
            } else {
                Vec::new()
            },
            cached: vec![false; d],
            raw_norm: vec![0.0; d],
            gram: if d * d <= GRAM_MAX && d * m <= COLUMN_CACHE_MAX {
                vec![0.0; d * d]
            } else {
                Vec::new()
            },
            on_gram: false,
            panel: if d * d <= GRAM_MAX {
                vec![0.0; cap * d]
            } else {
                Vec::new()
            },
            xz: vec![0.0; d],
            h: vec![0.0; cap],
            rinv: vec![0.0; cap],
        }
    }

    /// Forgets the cached columns: the next [`Self::run`] is for another task (or `U`).
    pub fn new_task(&mut self) {
        self.cached.fill(false);
        self.on_gram = false;
    }

    /// Forms the current task's Gram matrix `Xᵀ P X` (`O(d² m)`, once) so that its next paths
    /// cost `O(d·n)` a breakpoint instead of `O(d·m)`: worth it for a task that will follow
    /// many paths (the forced ones). `false`, and the paths stay on the QR, where `d` is too
    /// large for the matrix.
    pub fn use_gram(&mut self, x: &[f64], qu: &[f64]) -> bool {
        let (m, d) = (self.m, self.d);
        if self.gram.is_empty() {
            return false;
        }
        if !self.on_gram {
            for p in 0..d {
                self.cache_column(x, qu, p);
            }
            let a = MatRef::from_row_major_slice(&self.columns, d, m);
            faer::linalg::matmul::matmul(
                faer::MatMut::from_row_major_slice_mut(&mut self.gram, d, d),
                faer::Accum::Replace,
                a,
                a.transpose(),
                1.0,
                faer::Par::Seq,
            );
            self.on_gram = true;
        }
        true
    }

    /// `P x_p` of the current task (`qu` its `range(X U)` basis) and `‖x_p‖`, from the cache
    /// where a path or an earlier call met it (shared with the kernel's refits, which project
    /// the same columns); `None` where the scratch keeps no cache (`d·m` too large).
    pub(crate) fn projected_column(
        &mut self,
        x: &[f64],
        qu: &[f64],
        p: usize,
    ) -> Option<(&[f64], f64)> {
        if self.columns.is_empty() {
            return None;
        }
        self.cache_column(x, qu, p);
        let m = self.m;
        Some((&self.columns[p * m..(p + 1) * m], self.raw_norm[p]))
    }

    /// Puts `P x_p` into the (non-empty) cache unless it is there.
    fn cache_column(&mut self, x: &[f64], qu: &[f64], p: usize) {
        if self.cached[p] {
            return;
        }
        let (m, d) = (self.m, self.d);
        let col = &mut self.columns[p * m..(p + 1) * m];
        for (s, v) in col.iter_mut().enumerate() {
            *v = x[s * d + p];
        }
        self.raw_norm[p] = dot(col, col).sqrt();
        project_out(qu, m, col, &mut self.coef[..qu.len() / m]);
        self.cached[p] = true;
    }

    /// Follows the path for `x` (`[m, d]` row-major), `qu` (the orthonormal basis of
    /// `range(X U)`, `[r, m]` column after column) and `z = P y`, for at most `max_steps`
    /// breakpoints (call [`Self::new_task`] first when `x` or `qu` changed); returns the path's last `b` (the basis-pursuit solution when the path
    /// reached `λ = 0`). The indices in `free` are not penalised (`min Σ_{j∉free} |b_j|`):
    /// they are active from the start, fitted by least squares, and never leave.
    pub fn run(
        &mut self,
        x: &[f64],
        qu: &[f64],
        z: &[f64],
        free: &[usize],
        max_steps: usize,
    ) -> &[f64] {
        let (m, d) = (self.m, self.d);
        let xm = MatRef::from_row_major_slice(x, m, d);
        self.b.fill(0.0);
        self.is_active.fill(false);
        self.active.clear();
        self.sign.clear();
        // The free indices' least-squares fit: b_F = R⁻¹ Q_Fᵀ z, residual z − Q_F Q_Fᵀ z.
        self.a.copy_from_slice(z);
        for &j in free.iter().take(self.cap) {
            if self.is_active[j] || !self.push(x, qu, j, 0.0) {
                return &self.b;
            }
        }
        let nf = self.active.len();
        if self.on_gram {
            // b_F = (A_Fᵀ A_F)⁻¹ A_Fᵀ z; c = Aᵀz − Aᵀ A_F b_F.
            gemv(&mut self.xz, xm.transpose(), z, 1.0, false);
            for (t, &j) in self.active.iter().enumerate() {
                self.coef[t] = self.xz[j];
            }
            forward_substitute(&self.r, self.cap, nf, &self.coef, &mut self.dir_u[..nf]);
        } else {
            for (t, q) in self.q.chunks_exact(m).take(nf).enumerate() {
                self.dir_u[t] = dot(q, z);
                axpy(-self.dir_u[t], q, &mut self.a);
            }
        }
        back_substitute(
            &self.r,
            self.cap,
            nf,
            &self.dir_u[..nf],
            &mut self.dir[..nf],
        );
        for t in 0..nf {
            self.b[self.active[t]] = self.dir[t];
        }
        if self.on_gram {
            self.c.copy_from_slice(&self.xz);
            for (t, row) in self.panel.chunks_exact(d).take(nf).enumerate() {
                axpy(-self.dir[t], row, &mut self.c);
            }
        } else {
            gemv(&mut self.c, xm.transpose(), &self.a, 1.0, false);
        }
        let Some(first) = argmax_abs_inactive(&self.c, &self.is_active) else {
            return &self.b;
        };
        let mut lambda = self.c[first].abs();
        let tiny = TINY_STEP * lambda;
        if lambda == 0.0 || nf == self.cap || !self.push(x, qu, first, self.c[first].signum()) {
            return &self.b;
        }
        for _ in 0..max_steps {
            let n = self.active.len();
            // u = R⁻ᵀ s, d = R⁻¹ u, a = Q_I u.
            self.direction(n);
            if self.on_gram {
                // v = Aᵀ A_I d from the active rows of the Gram matrix.
                let panel = MatRef::from_row_major_slice(&self.panel[..n * d], n, d);
                gemv(&mut self.v, panel.transpose(), &self.dir[..n], 1.0, false);
            } else {
                self.a.fill(0.0);
                for (j, q) in self.q.chunks_exact(m).take(n).enumerate() {
                    axpy(self.dir_u[j], q, &mut self.a);
                }
                gemv(&mut self.v, xm.transpose(), &self.a, 1.0, false);
            }
            // The next breakpoint: an inactive correlation reaches ±λ, or an active
            // coefficient crosses zero; none before λ = 0 ends the path.
            let mut gamma = lambda;
            let mut event: Option<(bool, usize)> = None;
            step_lengths(
                lambda,
                tiny,
                &self.c,
                &self.v,
                &self.is_active,
                &mut self.ratio,
            );
            for (j, &g) in self.ratio.iter().enumerate() {
                if g < gamma {
                    gamma = g;
                    event = Some((true, j));
                }
            }
            for (t, &j) in self.active.iter().enumerate() {
                if self.sign[t] == 0.0 {
                    continue;
                }
                let g = -self.b[j] / self.dir[t];
                if g > tiny && g < gamma {
                    gamma = g;
                    event = Some((false, t));
                }
            }
            for (t, &j) in self.active.iter().enumerate() {
                self.b[j] += gamma * self.dir[t];
            }
            axpy(-gamma, &self.v, &mut self.c);
            lambda -= gamma;
            match event {
                None => break,
                Some((true, j)) => {
                    if n == self.cap || !self.push(x, qu, j, self.c[j].signum()) {
                        break;
                    }
                }
                Some((false, t)) => {
                    let j = self.active.remove(t);
                    self.sign.remove(t);
                    self.is_active[j] = false;
                    self.b[j] = 0.0;
                    if !self.delete_column(t, n) && !self.refactor_from(x, qu, t) {
                        break;
                    }
                }
            }
            if lambda <= tiny {
                break;
            }
        }
        &self.b
    }

    /// The `b` of the last [`Self::run`].
    pub fn last_b(&self) -> &[f64] {
        &self.b
    }

    /// Adds index `j` with the sign of its subgradient (0 for a free index) and its column
    /// to the QR; `false` when the column is (numerically) in the span of the active ones.
    fn push(&mut self, x: &[f64], qu: &[f64], j: usize, sign: f64) -> bool {
        self.active.push(j);
        self.sign.push(sign);
        self.is_active[j] = true;
        let n = self.active.len() - 1;
        if self.factor_column(x, qu, n) {
            true
        } else {
            self.active.pop();
            self.sign.pop();
            self.is_active[j] = false;
            false
        }
    }

    /// Removes column `t` of the `n`-column QR by Givens rotations: the columns after `t`
    /// shift left, which leaves `R` upper Hessenberg from `t` on; one rotation of rows (and of
    /// the matching `Q` columns) per shifted column restores it, at `O((n − t)(n + m))`
    /// instead of re-orthogonalising every later column. `false` (nothing usable written)
    /// when a rotation degenerates; the caller then refactors.
    fn delete_column(&mut self, t: usize, n: usize) -> bool {
        let (m, cap) = (self.m, self.cap);
        let r = &mut self.r;
        for i in 0..n {
            for l in t.max(i.saturating_sub(1))..n - 1 {
                r[i * cap + l] = r[i * cap + l + 1];
            }
        }
        for j in t..n - 1 {
            let (a, b) = (r[j * cap + j], r[(j + 1) * cap + j]);
            let h = a.hypot(b);
            if !h.is_finite() || h <= 0.0 {
                return false;
            }
            let (c, s) = (a / h, b / h);
            r[j * cap + j] = h;
            r[(j + 1) * cap + j] = 0.0;
            for l in j + 1..n - 1 {
                let (p, q) = (r[j * cap + l], r[(j + 1) * cap + l]);
                r[j * cap + l] = c * p + s * q;
                r[(j + 1) * cap + l] = c * q - s * p;
            }
            if !self.on_gram {
                let (head, tail) = self.q.split_at_mut((j + 1) * m);
                let (qj, qk) = (&mut head[j * m..], &mut tail[..m]);
                for (p, q) in qj.iter_mut().zip(qk.iter_mut()) {
                    let (u, v) = (*p, *q);
                    *p = c * u + s * v;
                    *q = c * v - s * u;
                }
            }
        }
        r[(n - 1) * cap..(n - 1) * cap + n].fill(0.0);
        if self.on_gram {
            let d = self.d;
            self.panel.copy_within((t + 1) * d..n * d, t * d);
        }
        true
    }

    /// Recomputes the QR columns from position `from` on (after a removal).
    fn refactor_from(&mut self, x: &[f64], qu: &[f64], from: usize) -> bool {
        (from..self.active.len()).all(|n| self.factor_column(x, qu, n))
    }

    /// Column `n` of `Q_I` and `R`: `P x_{active[n]}` orthogonalised against columns `0..n`.
    fn factor_column(&mut self, x: &[f64], qu: &[f64], n: usize) -> bool {
        let (m, d, cap) = (self.m, self.d, self.cap);
        let p = self.active[n];
        if self.on_gram {
            return self.factor_gram_column(n, p);
        }
        let (prev, rest) = self.q.split_at_mut(n * m);
        let col = &mut rest[..m];
        if self.columns.is_empty() {
            for (s, v) in col.iter_mut().enumerate() {
                *v = x[s * d + p];
            }
            project_out(qu, m, col, &mut self.coef[..qu.len() / m]);
        } else {
            if !self.cached[p] {
                let cache = &mut self.columns[p * m..(p + 1) * m];
                for (s, v) in cache.iter_mut().enumerate() {
                    *v = x[s * d + p];
                }
                self.raw_norm[p] = dot(cache, cache).sqrt();
                project_out(qu, m, cache, &mut self.coef[..qu.len() / m]);
                self.cached[p] = true;
            }
            col.copy_from_slice(&self.columns[p * m..(p + 1) * m]);
        }
        // One modified Gram–Schmidt pass: the path only proposes supports, which the kernel
        // refits in full precision.
        let before = dot(col, col).sqrt();
        let coef = &mut self.coef[..n];
        for (h, q) in coef.iter_mut().zip(prev.chunks_exact(m)) {
            *h = dot(q, col);
            axpy(-*h, q, col);
        }
        let norm = dot(col, col).sqrt();
        if norm.is_nan() || norm <= DEPENDENT * before {
            return false;
        }
        col.iter_mut().for_each(|v| *v /= norm);
        for (i, &h) in coef.iter().enumerate() {
            self.r[i * cap + n] = h;
        }
        self.r[n * cap + n] = norm;
        true
    }
}

/// Relative squared residual (of `‖z‖²`) below which [`HomotopyScratch::completions`]
/// proposes a completion: the Gram matrix resolves a residual only to about `√ε ‖z‖`, so the
/// caller's refit decides.
const COMPLETION_SCREEN: f64 = 1e-9;

/// Most completions [`HomotopyScratch::completions`] proposes for one base.
const COMPLETION_MAX: usize = 16;

impl HomotopyScratch {
    /// The completions of `base` to an exact fit of `z` (the current task's, as for
    /// [`Self::run`]): in index order, every pair `(j, Some(l))`, `j < l` (with `width` 2), or
    /// every single `(j, None)` (with `width` 1) of indices outside `base` for which `z` lies,
    /// to the Gram matrix's precision, in the span of `A_base` and their columns; at most
    /// [`COMPLETION_MAX`], appended to `out`. An exhaustive search on the Gram matrix of
    /// [`Self::use_gram`] at `O(d² |base|)`, about the cost of one path: where `base` holds
    /// all but two of a task's support, it finds the support that a hundred forced paths may
    /// miss. `false` (nothing proposed) without the Gram matrix, for a `width` other than 1 or
    /// 2, or where `A_base` is rank-deficient. Leaves the path's state undefined: the next
    /// [`Self::run`] starts afresh.
    pub fn completions(
        &mut self,
        x: &[f64],
        z: &[f64],
        base: &[usize],
        width: usize,
        out: &mut Vec<(usize, Option<usize>)>,
    ) -> bool {
        let (m, d, cap) = (self.m, self.d, self.cap);
        let f = base.len();
        if !self.on_gram || !(1..=2).contains(&width) || f + width > cap {
            return false;
        }
        self.is_active.fill(false);
        self.active.clear();
        self.sign.clear();
        // R (RᵀR = A_baseᵀ A_base) and the base's Gram rows in `panel`.
        if base
            .iter()
            .any(|&j| j >= d || self.is_active[j] || !self.push(x, &[], j, 0.0))
        {
            return false;
        }
        // W = R⁻ᵀ A_baseᵀ A in place of the rows: A_jᵀ P_base A_l = G_jl − W_jᵀ W_l.
        for t in 0..f {
            let (done, rest) = self.panel.split_at_mut(t * d);
            let row = &mut rest[..d];
            for (s, prev) in done.chunks_exact(d).enumerate() {
                axpy(-self.r[s * cap + t], prev, row);
            }
            let inv = 1.0 / self.r[t * cap + t];
            row.iter_mut().for_each(|v| *v *= inv);
        }
        let w = &self.panel[..f * d];
        // u = R⁻ᵀ A_baseᵀ z; the residual of z off A_base has ‖·‖² = zᵀz − uᵀu and
        // correlations c = Aᵀz − Wᵀu; hd_j = ‖P_base a_j‖² (NaN off the search).
        let xm = MatRef::from_row_major_slice(x, m, d);
        gemv(&mut self.xz, xm.transpose(), z, 1.0, false);
        for (t, &j) in base.iter().enumerate() {
            self.coef[t] = self.xz[j];
        }
        forward_substitute(&self.r, cap, f, &self.coef, &mut self.dir_u[..f]);
        let zz = dot(z, z);
        let rr = zz - dot(&self.dir_u[..f], &self.dir_u[..f]);
        let scale = COMPLETION_SCREEN * zz;
        self.c.copy_from_slice(&self.xz);
        for (t, row) in w.chunks_exact(d).enumerate() {
            axpy(-self.dir_u[t], row, &mut self.c);
        }
        for (j, hd) in self.v.iter_mut().enumerate() {
            let g = self.gram[j * d + j];
            let h = g - (0..f).map(|t| w[t * d + j] * w[t * d + j]).sum::<f64>();
            *hd = if self.is_active[j] || h <= GRAM_DEPENDENT * g {
                f64::NAN
            } else {
                h
            };
        }
        let (c, hd) = (&self.c, &self.v);
        let start = out.len();
        for j in 0..d {
            if out.len() - start >= COMPLETION_MAX {
                break;
            }
            let (c1, h1) = (c[j], hd[j]);
            if h1.is_nan() {
                continue;
            }
            if width == 1 {
                // ‖r‖² − c_j² / h_j ≤ screen.
                if rr * h1 - c1 * c1 <= scale * h1 {
                    out.push((j, None));
                }
                continue;
            }
            // h_jl = G_jl − W_jᵀ W_l for l > j, into `b`.
            let h = &mut self.b[j + 1..];
            h.copy_from_slice(&self.gram[j * d + j + 1..(j + 1) * d]);
            for row in w.chunks_exact(d) {
                axpy(-row[j], &row[j + 1..], h);
            }
            for (l, &h12) in h.iter().enumerate() {
                let l = j + 1 + l;
                let (c2, h2) = (c[l], hd[l]);
                // The pair's 2×2 system: ‖r‖² − [c_j c_l] H⁻¹ [c_j c_l]ᵀ ≤ screen, times det H.
                let det = h1 * h2 - h12 * h12;
                let fit = c1 * c1 * h2 - 2.0 * c1 * c2 * h12 + c2 * c2 * h1;
                if det > GRAM_DEPENDENT * h1 * h2 && rr * det - fit <= scale * det {
                    out.push((j, Some(l)));
                }
            }
        }
        true
    }

    /// `u = R⁻ᵀ s` (into `dir_u`) and the direction `d = R⁻¹ u` (into `dir`) on the `n`
    /// active indices. The diagonal's reciprocals come first, as independent divisions: the
    /// substitutions' dependency chains then multiply.
    fn direction(&mut self, n: usize) {
        let cap = self.cap;
        for (t, inv) in self.rinv[..n].iter_mut().enumerate() {
            *inv = 1.0 / self.r[t * cap + t];
        }
        // Rᵀ u = s column-oriented: once u_c is known, row c of R (contiguous) updates every
        // later right-hand side at once.
        let u = &mut self.dir_u[..n];
        u.copy_from_slice(&self.sign[..n]);
        for c in 0..n {
            let row = &self.r[c * cap..c * cap + n];
            u[c] *= self.rinv[c];
            let (head, tail) = u.split_at_mut(c + 1);
            axpy(-head[c], &row[c + 1..], tail);
        }
        let x = &mut self.dir[..n];
        for a in (0..n).rev() {
            let row = &self.r[a * cap..a * cap + n];
            x[a] = (u[a] - dot(&row[a + 1..], &x[a + 1..])) * self.rinv[a];
        }
    }

    /// Column `n` of the Cholesky factor of the active Gram block, for index `p`: `Rᵀ h =
    /// A_Iᵀ a_p`, pivot `√(‖a_p‖² − ‖h‖²)`; row `p` of the Gram matrix joins the panel.
    fn factor_gram_column(&mut self, n: usize, p: usize) -> bool {
        let (d, cap) = (self.d, self.cap);
        let row = &self.gram[p * d..(p + 1) * d];
        for (t, &j) in self.active[..n].iter().enumerate() {
            self.coef[t] = row[j];
        }
        forward_substitute(&self.r, cap, n, &self.coef, &mut self.h[..n]);
        let h = &self.h[..n];
        let pivot = row[p] - dot(h, h);
        if pivot.is_nan() || pivot <= GRAM_DEPENDENT * row[p] || pivot <= 0.0 {
            return false;
        }
        for (i, &hi) in h.iter().enumerate() {
            self.r[i * cap + n] = hi;
        }
        self.r[n * cap + n] = pivot.sqrt();
        self.panel[n * d..(n + 1) * d].copy_from_slice(row);
        true
    }
}

/// For every index, the step `γ` after which its correlation `c_j − γ v_j` reaches `±(λ − γ)`,
/// the smaller of the two where both do, `∞` where neither does beyond `tiny`, and for the
/// active indices. `|c_j| ≤ λ`, so both numerators are ≥ 0 and a step is positive only where
/// its denominator is. Written without branches (the signs are unpredictable), so that the
/// loop compiles to selects.
fn step_lengths(lambda: f64, tiny: f64, c: &[f64], v: &[f64], active: &[bool], out: &mut [f64]) {
    let n = out.len().min(c.len()).min(v.len()).min(active.len());
    let (c, v, active) = (&c[..n], &v[..n], &active[..n]);
    for (j, o) in out[..n].iter_mut().enumerate() {
        let (cj, vj) = (c[j], v[j]);
        let (den1, den2) = (1.0 - vj, 1.0 + vj);
        let (g1, g2) = ((lambda - cj) / den1, (lambda + cj) / den2);
        let g1 = if den1 > 0.0 && g1 > tiny {
            g1
        } else {
            f64::INFINITY
        };
        let g2 = if den2 > 0.0 && g2 > tiny {
            g2
        } else {
            f64::INFINITY
        };
        let g = if g2 < g1 { g2 } else { g1 };
        *o = if active[j] { f64::INFINITY } else { g };
    }
}

/// Index of the largest `|v_j|` among the inactive ones (the first on ties), `None` when
/// there is none or `v` is not finite.
fn argmax_abs_inactive(v: &[f64], is_active: &[bool]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (j, x) in v.iter().enumerate() {
        if !x.is_finite() {
            return None;
        }
        if !is_active[j] && best.is_none_or(|b| x.abs() > v[b].abs()) {
            best = Some(j);
        }
    }
    best
}

/// Solves `Rᵀ u = s` for the leading `n × n` block of upper-triangular `R` (row-major,
/// stride `stride`).
fn forward_substitute(rm: &[f64], stride: usize, n: usize, s: &[f64], u: &mut [f64]) {
    // Column-oriented: once `u_c` is known, row `c` of `R` (contiguous) updates every later
    // right-hand side at once.
    let u = &mut u[..n];
    u.copy_from_slice(&s[..n]);
    for c in 0..n {
        let row = &rm[c * stride..c * stride + n];
        u[c] /= row[c];
        let (head, tail) = u.split_at_mut(c + 1);
        axpy(-head[c], &row[c + 1..], tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    /// Gaussian samples `x` (`[m, d]` row-major) and an orthonormal basis of `r` random
    /// directions in `R^m` to project out (`[r, m]`, column after column), drawn from `seed`.
    fn random_problem(seed: u64, m: usize, d: usize, r: usize) -> (Vec<f64>, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let x: Vec<f64> = (0..m * d).map(|_| rng.sample(StandardNormal)).collect();
        let mut qu: Vec<f64> = (0..r * m).map(|_| rng.sample(StandardNormal)).collect();
        for a in 0..r {
            let (prev, rest) = qu.split_at_mut(a * m);
            let col = &mut rest[..m];
            project_out(prev, m, col, &mut vec![0.0; a]);
            let n = dot(col, col).sqrt();
            col.iter_mut().for_each(|v| *v /= n);
        }
        (x, qu)
    }

    #[test]
    fn a_givens_deletion_gives_the_refactored_qr() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (m, d) = (12, 9);
        let x: Vec<f64> = (0..m * d).map(|_| rng.sample(StandardNormal)).collect();
        let mut h = HomotopyScratch::new(m, d, 0);
        for t in 0..6 {
            h.new_task();
            h.active.clear();
            h.sign.clear();
            h.is_active.fill(false);
            for j in [7usize, 1, 4, 0, 8, 3] {
                assert!(h.push(&x, &[], j, 1.0));
            }
            let n = h.active.len();
            h.active.remove(t);
            h.sign.remove(t);
            assert!(h.delete_column(t, n));
            let (q, r) = (h.q[..(n - 1) * m].to_vec(), h.r.clone());
            assert!(h.refactor_from(&x, &[], 0));
            for (a, b) in q.iter().zip(&h.q) {
                assert!((a - b).abs() < 1e-12, "Q differs after deleting {t}");
            }
            for i in 0..n - 1 {
                for l in 0..n - 1 {
                    let (a, b) = (r[i * h.cap + l], h.r[i * h.cap + l]);
                    assert!(
                        (a - b).abs() < 1e-12,
                        "R[{i}][{l}] differs after deleting {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_gram_factor_is_the_qr_factor_through_pushes_and_deletions() {
        let (m, d, r) = (14, 10, 2);
        let (x, qu) = random_problem(8, m, d, r);
        let mut qr = HomotopyScratch::new(m, d, r);
        let mut gram = HomotopyScratch::new(m, d, r);
        qr.new_task();
        gram.new_task();
        assert!(gram.use_gram(&x, &qu));
        let same_r = |a: &HomotopyScratch, b: &HomotopyScratch, n: usize| {
            for i in 0..n {
                for l in i..n {
                    let (p, q) = (a.r[i * a.cap + l], b.r[i * b.cap + l]);
                    assert!((p - q).abs() < 1e-9, "R[{i}][{l}]: QR {p}, Gram {q}");
                }
            }
        };
        for j in [3usize, 9, 0, 5, 7, 1] {
            assert!(qr.push(&x, &qu, j, 1.0));
            assert!(gram.push(&x, &qu, j, 1.0));
        }
        same_r(&qr, &gram, 6);
        for (t, n) in [(2usize, 6usize), (0, 5)] {
            for h in [&mut qr, &mut gram] {
                h.active.remove(t);
                h.sign.remove(t);
                assert!(h.delete_column(t, n));
            }
            same_r(&qr, &gram, n - 1);
            // The panel keeps the active indices' Gram rows in order.
            for (i, &j) in gram.active.iter().enumerate() {
                assert_eq!(
                    gram.panel[i * d..(i + 1) * d],
                    gram.gram[j * d..(j + 1) * d]
                );
            }
        }
    }

    #[test]
    fn completions_find_the_two_indices_a_base_misses() {
        let (m, d, r) = (18, 40, 2);
        let (x, qu) = random_problem(31, m, d, r);
        let support = [3usize, 11, 17, 26, 35];
        let mut b = vec![0.0; d];
        for (n, &p) in support.iter().enumerate() {
            b[p] = 1.0 + n as f64 * 0.3;
        }
        // z = P X b.
        let mut z = crate::linalg::mat_vec(MatRef::from_row_major_slice(&x, m, d), &b);
        project_out(&qu, m, &mut z, &mut vec![0.0; r]);
        let mut h = HomotopyScratch::new(m, d, r);
        h.new_task();
        let mut out = Vec::new();
        // Without the Gram matrix there is no search.
        assert!(!h.completions(&x, &z, &[3, 17, 35], 2, &mut out));
        assert!(h.use_gram(&x, &qu));
        assert!(h.completions(&x, &z, &[3, 17, 35], 2, &mut out));
        assert_eq!(out, vec![(11, Some(26))]);
        // All but one in the base: the missing index with any other one, or alone.
        out.clear();
        assert!(h.completions(&x, &z, &[3, 11, 17, 26], 1, &mut out));
        assert_eq!(out, vec![(35, None)]);
        // A base with a wrong index has no completion.
        out.clear();
        assert!(h.completions(&x, &z, &[3, 17, 20], 2, &mut out));
        assert!(out.is_empty(), "{out:?}");
        // The paths still run afterwards.
        let path = h.run(&x, &qu, &z, &[11, 26], 100).to_vec();
        let err: f64 = path.iter().zip(&b).map(|(p, q)| (p - q).abs()).sum();
        assert!(err < 1e-8, "forced path ends {err} away");
    }

    #[test]
    fn the_path_ends_at_the_sparse_solution_of_an_easy_system() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        let (m, d) = (40, 80);
        let x: Vec<f64> = (0..m * d).map(|_| rng.sample(StandardNormal)).collect();
        let mut b_true = vec![0.0; d];
        for (n, p) in [5usize, 19, 33, 60].into_iter().enumerate() {
            b_true[p] = if n % 2 == 0 { 1.0 } else { -0.7 };
        }
        let xm = MatRef::from_row_major_slice(&x, m, d);
        let z = crate::linalg::mat_vec(xm, &b_true);
        let mut h = HomotopyScratch::new(m, d, 0);
        h.new_task();
        let b = h.run(&x, &[], &z, &[], 100);
        let err: f64 = b.iter().zip(&b_true).map(|(p, q)| (p - q).abs()).sum();
        assert!(err < 1e-9, "path ends {err} from the sparse solution");
        // An unpenalised true index changes the path, not where it ends.
        let b = h.run(&x, &[], &z, &[33], 100).to_vec();
        let err: f64 = b.iter().zip(&b_true).map(|(p, q)| (p - q).abs()).sum();
        assert!(
            err < 1e-9,
            "forced path ends {err} from the sparse solution"
        );
        // Too few breakpoints stop early, short of the solution.
        let short = h.run(&x, &[], &z, &[], 1);
        assert!(short.iter().filter(|v| **v != 0.0).count() <= 2);
        // On the Gram matrix, the same paths.
        assert!(h.use_gram(&x, &[]));
        for free in [&[][..], &[33][..], &[19, 60][..]] {
            let b = h.run(&x, &[], &z, free, 100);
            let err: f64 = b.iter().zip(&b_true).map(|(p, q)| (p - q).abs()).sum();
            assert!(err < 1e-9, "Gram path with {free:?} free ends {err} away");
        }
    }
}
