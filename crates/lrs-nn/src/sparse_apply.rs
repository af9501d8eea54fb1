//! The fused CPU kernel for `y = x Sᵀ` with sparse `S` (a candle `CustomOp2`, so autograd works).
//!
//! Row by row of `x [lead, in]` (in parallel): `y[l, rows[j]] += values[j] · x[l, cols[j]]` for
//! every stored entry `j`. One pass, no `[nnz, lead]` temporary; both rows of `x` and `y` stay in
//! cache. Backward: `dx = dy S` is the same kernel with rows and columns swapped, and
//! `dvalues[j] = Σ_l dy[l, rows[j]] · x[l, cols[j]]`.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// `x [lead, in] , values [nnz] → x Sᵀ [lead, out]` for fixed sparse positions.
#[derive(Debug, Clone)]
pub(crate) struct SparseApply {
    /// Output row (`index / in`) of each entry.
    pub rows: Arc<Vec<u32>>,
    /// Input column (`index % in`) of each entry.
    pub cols: Arc<Vec<u32>>,
    pub in_dim: usize,
    pub out_dim: usize,
}

impl SparseApply {
    /// The op for `Sᵀ` (rows and columns swapped).
    fn transposed(&self) -> Self {
        Self {
            rows: self.cols.clone(),
            cols: self.rows.clone(),
            in_dim: self.out_dim,
            out_dim: self.in_dim,
        }
    }

    fn kernel<T>(&self, x: &[T], values: &[T]) -> Vec<T>
    where
        T: Copy + Default + Send + Sync + std::ops::Mul<Output = T> + std::ops::AddAssign,
    {
        let lead = x.len() / self.in_dim.max(1);
        let mut y = vec![T::default(); lead * self.out_dim];
        let (rows, cols) = (&self.rows[..], &self.cols[..]);
        // Row-major sorted entries (the forward direction) form CSR runs: one accumulator per
        // output, written once. Otherwise (the transposed op of backward) scatter-add.
        let sorted = rows.windows(2).all(|w| w[0] <= w[1]);
        let mut row_start = vec![0usize; self.out_dim + 1];
        if sorted {
            for &r in rows {
                row_start[r as usize + 1] += 1;
            }
            for i in 0..self.out_dim {
                row_start[i + 1] += row_start[i];
            }
        }
        y.par_chunks_mut(self.out_dim.max(1))
            .zip(x.par_chunks(self.in_dim.max(1)))
            .with_min_len(8)
            .for_each(|(yr, xr)| {
                if sorted {
                    for (out, bounds) in yr.iter_mut().zip(row_start.windows(2)) {
                        let mut acc = T::default();
                        for j in bounds[0]..bounds[1] {
                            acc += values[j] * xr[cols[j] as usize];
                        }
                        *out = acc;
                    }
                } else {
                    for ((&r, &c), &v) in rows.iter().zip(cols).zip(values) {
                        yr[r as usize] += v * xr[c as usize];
                    }
                }
            });
        y
    }
}

fn contiguous<'a, T>(s: &'a [T], l: &Layout, what: &str) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("sparse apply: {what} must be contiguous"),
    }
}

impl CustomOp2 for SparseApply {
    fn name(&self) -> &'static str {
        "lrs-sparse-apply"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (lead, in_dim) = l1.shape().dims2()?;
        if in_dim != self.in_dim || l2.shape().dims1()? != self.rows.len() {
            candle_core::bail!(
                "sparse apply: shapes {:?}, {:?} do not fit",
                l1.shape(),
                l2.shape()
            );
        }
        let shape = Shape::from((lead, self.out_dim));
        match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(v)) => {
                let y = self.kernel(contiguous(x, l1, "x")?, contiguous(v, l2, "values")?);
                Ok((CpuStorage::F32(y), shape))
            }
            (CpuStorage::F64(x), CpuStorage::F64(v)) => {
                let y = self.kernel(contiguous(x, l1, "x")?, contiguous(v, l2, "values")?);
                Ok((CpuStorage::F64(y), shape))
            }
            _ => candle_core::bail!("sparse apply: only f32 and f64 on CPU"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        values: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = grad.apply_op2(values, self.transposed())?;
        let n = self.rows.len();
        let rows = Tensor::from_slice(&self.rows[..], n, x.device())?;
        let cols = Tensor::from_slice(&self.cols[..], n, x.device())?;
        let dv = (grad.index_select(&rows, 1)? * x.index_select(&cols, 1)?)?.sum(0)?;
        Ok((Some(dx), Some(dv)))
    }
}
