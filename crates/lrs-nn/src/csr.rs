//! Sparse positions in compressed-row form and the CPU loops that apply them to blocks of rows.
//!
//! A sparse `S [out, in]` is stored as its strictly increasing row-major flat indices; row `r`'s
//! entries are `indices[row_ptr[r]..row_ptr[r + 1]]` and an entry's column is
//! `index − r·in`. No per-entry row or column arrays are kept: 4 bytes of position per entry.
//!
//! The loops work on a block of `n` positions (the tokens of one batch row, or a slice of a
//! flattened batch) transposed to `[in, n]`, so each stored entry becomes one length-`n` `axpy`
//! over contiguous memory — vectorized by the compiler — instead of `n` scattered scalar
//! multiply-adds.

use std::ops::{AddAssign, Mul};
use std::sync::Arc;

/// Element types the loops run on.
pub(crate) trait Elem:
    Copy + Default + Send + Sync + Mul<Output = Self> + AddAssign
{
}
impl Elem for f32 {}
impl Elem for f64 {}

/// Positions of a sparse `[out, in]` matrix: sorted flat indices plus row offsets.
#[derive(Debug, Clone)]
pub(crate) struct Csr {
    /// Strictly increasing row-major flat indices `r·in + c`.
    pub indices: Arc<Vec<u32>>,
    /// `[out + 1]`: row `r` owns `indices[row_ptr[r]..row_ptr[r + 1]]`.
    pub row_ptr: Arc<Vec<u32>>,
    pub in_dim: usize,
    pub out_dim: usize,
}

/// Per-thread buffers of the block loops (reused across blocks).
#[derive(Debug, Default)]
pub(crate) struct Scratch<T> {
    transposed: Vec<T>,
    acc: Vec<T>,
}

impl Csr {
    /// Row offsets for already validated (sorted, in-range) `indices` of an `[out, in]` matrix.
    pub fn new(indices: Arc<Vec<u32>>, out_dim: usize, in_dim: usize) -> Self {
        let mut row_ptr = vec![0u32; out_dim + 1];
        let width = in_dim.max(1) as u32;
        for &i in indices.iter() {
            let r = (i / width) as usize;
            if r < out_dim {
                row_ptr[r + 1] += 1;
            }
        }
        for r in 0..out_dim {
            row_ptr[r + 1] += row_ptr[r];
        }
        Self {
            indices,
            row_ptr: Arc::new(row_ptr),
            in_dim,
            out_dim,
        }
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Row `r`'s entries: positions in `indices` and the flat index of column 0.
    fn row(&self, r: usize) -> (std::ops::Range<usize>, usize) {
        let range = self.row_ptr[r] as usize..self.row_ptr[r + 1] as usize;
        (range, r * self.in_dim)
    }

    /// `y += x Sᵀ` for one block: `x [n, in]`, `y [n, out]` (row-major), `values [nnz]`.
    pub fn gather_block<T: Elem>(
        &self,
        x: &[T],
        values: &[T],
        y: &mut [T],
        scratch: &mut Scratch<T>,
    ) {
        let n = x.len() / self.in_dim.max(1);
        if n == 1 {
            for (r, out) in y.iter_mut().enumerate().take(self.out_dim) {
                let (range, base) = self.row(r);
                let mut acc = T::default();
                for j in range {
                    acc += values[j] * x[self.indices[j] as usize - base];
                }
                *out += acc;
            }
            return;
        }
        let xt = transpose_into(x, n, self.in_dim, &mut scratch.transposed);
        scratch.acc.clear();
        scratch.acc.resize(n, T::default());
        let acc = &mut scratch.acc;
        for r in 0..self.out_dim {
            let (range, base) = self.row(r);
            if range.is_empty() {
                continue;
            }
            acc.fill(T::default());
            for j in range {
                let c = self.indices[j] as usize - base;
                axpy(acc, values[j], &xt[c * n..(c + 1) * n]);
            }
            for (p, &a) in acc.iter().enumerate() {
                y[p * self.out_dim + r] += a;
            }
        }
    }

    /// `dx += dy S` for one block: `dy [n, out]`, `dx [n, in]` (the transposed product).
    pub fn scatter_block<T: Elem>(
        &self,
        dy: &[T],
        values: &[T],
        dx: &mut [T],
        scratch: &mut Scratch<T>,
    ) {
        let n = dy.len() / self.out_dim.max(1);
        if n == 1 {
            for (r, &g) in dy.iter().enumerate().take(self.out_dim) {
                let (range, base) = self.row(r);
                for j in range {
                    dx[self.indices[j] as usize - base] += values[j] * g;
                }
            }
            return;
        }
        let dyt = transpose_into(dy, n, self.out_dim, &mut scratch.transposed);
        scratch.acc.clear();
        scratch.acc.resize(n * self.in_dim, T::default());
        let dxt = &mut scratch.acc;
        for r in 0..self.out_dim {
            let (range, base) = self.row(r);
            let g = &dyt[r * n..(r + 1) * n];
            for j in range {
                let c = self.indices[j] as usize - base;
                axpy(&mut dxt[c * n..(c + 1) * n], values[j], g);
            }
        }
        for c in 0..self.in_dim {
            for p in 0..n {
                dx[p * self.in_dim + c] += dxt[c * n + p];
            }
        }
    }

    /// `dvalues[j] = Σ_p dy[p, r_j] · x[p, c_j]` over `n` rows: the gradient of the stored
    /// values of `y = x Sᵀ`.
    pub fn value_grad<T: Elem>(&self, x: &[T], dy: &[T], dvalues: &mut [T]) {
        let n = x.len() / self.in_dim.max(1);
        for p in 0..n {
            let (xr, gr) = (
                &x[p * self.in_dim..(p + 1) * self.in_dim],
                &dy[p * self.out_dim..(p + 1) * self.out_dim],
            );
            for (r, &g) in gr.iter().enumerate() {
                let (range, base) = self.row(r);
                for j in range {
                    dvalues[j] += g * xr[self.indices[j] as usize - base];
                }
            }
        }
    }
}

/// `a += v · b`.
#[inline]
fn axpy<T: Elem>(a: &mut [T], v: T, b: &[T]) {
    for (a, &b) in a.iter_mut().zip(b) {
        *a += v * b;
    }
}

/// `m [n, k]` (row-major) → `buf [k, n]`.
fn transpose_into<'a, T: Elem>(m: &[T], n: usize, k: usize, buf: &'a mut Vec<T>) -> &'a [T] {
    buf.clear();
    buf.resize(n * k, T::default());
    for p in 0..n {
        for (c, &v) in m[p * k..(p + 1) * k].iter().enumerate() {
            buf[c * n + p] = v;
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dense `[out, in]` matrix with the given flat non-zeros.
    fn dense(out: usize, inp: usize, idx: &[u32], vals: &[f64]) -> Vec<f64> {
        let mut d = vec![0.0; out * inp];
        for (&i, &v) in idx.iter().zip(vals) {
            d[i as usize] = v;
        }
        d
    }

    fn csr(out: usize, inp: usize, idx: &[u32]) -> Csr {
        Csr::new(Arc::new(idx.to_vec()), out, inp)
    }

    #[test]
    fn blocks_match_dense_products() {
        let (out, inp) = (4, 5);
        let idx = [0u32, 3, 6, 7, 19];
        let vals = [1.5, -2.0, 0.5, 3.0, -1.0];
        let s = csr(out, inp, &idx);
        assert_eq!(*s.row_ptr, vec![0, 2, 4, 4, 5]);
        let d = dense(out, inp, &idx, &vals);
        for n in [1usize, 3] {
            let x: Vec<f64> = (0..n * inp).map(|i| (i as f64 * 0.37).sin()).collect();
            let dy: Vec<f64> = (0..n * out).map(|i| (i as f64 * 0.91).cos()).collect();
            let mut y = vec![1.0; n * out];
            s.gather_block(&x, &vals, &mut y, &mut Scratch::default());
            let mut dx = vec![0.0; n * inp];
            s.scatter_block(&dy, &vals, &mut dx, &mut Scratch::default());
            let mut dv = vec![0.0; idx.len()];
            s.value_grad(&x, &dy, &mut dv);
            for p in 0..n {
                for r in 0..out {
                    let want: f64 = (0..inp).map(|c| d[r * inp + c] * x[p * inp + c]).sum();
                    assert!((y[p * out + r] - 1.0 - want).abs() < 1e-12, "y n={n}");
                }
                for c in 0..inp {
                    let want: f64 = (0..out).map(|r| dy[p * out + r] * d[r * inp + c]).sum();
                    assert!((dx[p * inp + c] - want).abs() < 1e-12, "dx n={n}");
                }
            }
            for (j, &i) in idx.iter().enumerate() {
                let (r, c) = (i as usize / inp, i as usize % inp);
                let want: f64 = (0..n).map(|p| dy[p * out + r] * x[p * inp + c]).sum();
                assert!((dv[j] - want).abs() < 1e-12, "dv n={n}");
            }
        }
    }
}
