//! Small dense kernels shared by the solvers: least squares, products, deterministic sums.

use faer::linalg::solvers::SolveLstsq;
use faer::{Mat, MatRef, Side};
use rayon::prelude::*;

/// Least squares `argmin_x ‖A x − y‖₂`; minimum-norm when `A` is wide.
///
/// Tall or square `A` goes through Householder QR (accurate to machine precision on the
/// well-conditioned systems the solvers build); wide `A` through `x = Aᵀ (A Aᵀ)⁻¹ y`.
pub fn lstsq(a: MatRef<'_, f64>, y: &[f64]) -> Vec<f64> {
    let (m, n) = (a.nrows(), a.ncols());
    if n == 0 {
        return Vec::new();
    }
    let rhs = Mat::<f64>::from_fn(m, 1, |i, _| y[i]);
    if m >= n {
        let sol = a.qr().solve_lstsq(&rhs);
        (0..n).map(|i| sol[(i, 0)]).collect()
    } else {
        let gram = a * a.transpose();
        let z = solve_spd(&gram, &rhs);
        let x = a.transpose() * &z;
        (0..n).map(|i| x[(i, 0)]).collect()
    }
}

/// Solves `H x = rhs` for symmetric positive (semi)definite `H`: Cholesky, with a ridge of
/// `1e-12·tr(H)/n` added only when the plain factorisation fails.
pub fn solve_spd(h: &Mat<f64>, rhs: &Mat<f64>) -> Mat<f64> {
    use faer::linalg::solvers::Solve;
    if let Ok(llt) = h.llt(Side::Lower) {
        return llt.solve(rhs);
    }
    let n = h.nrows();
    let trace: f64 = (0..n)
        .map(|i| h[(i, i)])
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let mut ridge = 1e-12 * trace / n as f64;
    loop {
        let hr = Mat::<f64>::from_fn(n, n, |i, j| h[(i, j)] + if i == j { ridge } else { 0.0 });
        if let Ok(llt) = hr.llt(Side::Lower) {
            return llt.solve(rhs);
        }
        ridge *= 100.0;
    }
}

/// `A x` (faer's SIMD kernels, any layout of `A`).
pub fn mat_vec(a: MatRef<'_, f64>, x: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.nrows()];
    gemv(&mut out, a, x, 1.0, false);
    out
}

/// `Aᵀ x`.
pub fn mat_t_vec(a: MatRef<'_, f64>, x: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.ncols()];
    for (i, &xi) in x.iter().enumerate().take(a.nrows()) {
        if xi != 0.0 {
            for (j, o) in out.iter_mut().enumerate() {
                *o += a[(i, j)] * xi;
            }
        }
    }
    out
}

/// Euclidean norm.
pub fn norm2(v: &[f64]) -> f64 {
    dot(v, v).sqrt()
}

/// `aᵀ b` over the common length, with four independent partial sums (so the compiler can
/// keep several multiply-adds in flight; the summation order is fixed, so it is deterministic).
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}

/// `out ← alpha · A x` (`accumulate`: `out ← out + alpha · A x`) through faer's SIMD kernels,
/// for any layout of `A` (pass `a.transpose()` for `Aᵀ x`).
pub fn gemv(out: &mut [f64], a: MatRef<'_, f64>, x: &[f64], alpha: f64, accumulate: bool) {
    let n = out.len();
    faer::linalg::matmul::matmul(
        faer::MatMut::from_column_major_slice_mut(out, n, 1),
        if accumulate {
            faer::Accum::Add
        } else {
            faer::Accum::Replace
        },
        a,
        MatRef::from_column_major_slice(x, a.ncols(), 1),
        alpha,
        faer::Par::Seq,
    );
}

/// `y ← y + alpha · x` over the common length.
#[inline]
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Tasks per chunk in [`par_chunked_sum`]; fixed so results do not depend on the thread count.
pub const SUM_CHUNK: usize = 256;

/// `Σ_i f(i)` over `0..n` for vector-valued `f`, computed in parallel over fixed chunks of
/// [`SUM_CHUNK`] items and reduced in chunk order: bit-identical for any number of threads.
pub fn par_chunked_sum<F>(n: usize, len: usize, f: F) -> Vec<f64>
where
    F: Fn(std::ops::Range<usize>, &mut [f64]) + Sync,
{
    let chunks = n.div_ceil(SUM_CHUNK);
    let partials: Vec<Vec<f64>> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0.0; len];
            f(c * SUM_CHUNK..((c + 1) * SUM_CHUNK).min(n), &mut acc);
            acc
        })
        .collect();
    let mut total = vec![0.0; len];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

/// `[rows, cols]` column-major `Mat` from a row-major slice (copy).
pub fn mat_from_row_major(data: &[f64], rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_fn(rows, cols, |i, j| data[i * cols + j])
}

/// Row-major copy of a `Mat`.
pub fn mat_to_row_major(m: &Mat<f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            out.push(m[(i, j)]);
        }
    }
    out
}
