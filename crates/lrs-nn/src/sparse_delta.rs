//! The sparse per-task correction `S_task` of one layer, held as sorted flat indices + values.
//!
//! `S ∈ R^{out×in}` with `nnz` non-zeros; `indices[j]` is the row-major flat position
//! `row * in + col`, strictly increasing. Applying it to `x [.., in]` costs `nnz × rows`:
//! gather the `in`-columns it touches, scale by the values, scatter-add into its `out`-rows —
//! the dense `[out, in]` matrix is never formed.
//!
//! [`hard_threshold`] is the `H_k` of AMHT-LRS: keep the `k` largest magnitudes of a dense
//! scratch matrix.

use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Tensor, D};

use crate::csr::Csr;
use crate::sparse_apply::SparseApply;
use crate::{NnError, Result};

/// Why a list of flat sparse indices is invalid for a given `[out, in]` shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexProblem {
    /// `index >= out * in`.
    OutOfRange {
        /// Position in the list.
        position: usize,
        /// The index.
        index: u64,
        /// `out * in`.
        bound: u64,
    },
    /// `indices[position] <= indices[position - 1]`.
    NotSorted {
        /// Position in the list.
        position: usize,
    },
}

/// Checks that `indices` are strictly increasing and below `bound = out * in`.
pub fn validate_indices(indices: &[u32], bound: u64) -> std::result::Result<(), IndexProblem> {
    let mut prev: Option<u32> = None;
    for (position, &index) in indices.iter().enumerate() {
        if u64::from(index) >= bound {
            return Err(IndexProblem::OutOfRange {
                position,
                index: u64::from(index),
                bound,
            });
        }
        if prev.is_some_and(|p| index <= p) {
            return Err(IndexProblem::NotSorted { position });
        }
        prev = Some(index);
    }
    Ok(())
}

/// A sparse `[out, in]` matrix: strictly increasing row-major flat indices and their values.
///
/// Resident cost per stored entry: its 4-byte index and its value (the row offsets are
/// `out + 1` integers). Row and column tensors for the tensor-op path (off CPU, half types)
/// are built on first use only.
#[derive(Debug, Clone)]
pub struct SparseDelta {
    /// Positions: the indices and their row offsets (shared with the fused kernels).
    csr: Csr,
    /// `[nnz]`, in the compute dtype.
    values: Tensor,
    /// `[nnz]` u32 output rows and input columns on the values' device, for
    /// [`Self::apply_gather`] only.
    gather: OnceLock<(Tensor, Tensor)>,
}

impl SparseDelta {
    /// Builds a sparse matrix of shape `[out_dim, in_dim]` from flat indices and `[nnz]` values.
    ///
    /// Fails if the indices are unsorted, repeated, out of range, or do not match `values`.
    pub fn new(out_dim: usize, in_dim: usize, indices: Vec<u32>, values: Tensor) -> Result<Self> {
        let bound = (out_dim as u64) * (in_dim as u64);
        if bound > u64::from(u32::MAX) + 1 {
            return Err(NnError::Invalid(format!(
                "sparse shape [{out_dim}, {in_dim}] does not fit u32 flat indices"
            )));
        }
        validate_indices(&indices, bound)
            .map_err(|p| NnError::Invalid(format!("sparse indices: {p:?}")))?;
        let nnz = values.dims1()?;
        if nnz != indices.len() {
            return Err(NnError::Invalid(format!(
                "sparse: {} indices but {nnz} values",
                indices.len()
            )));
        }
        Ok(Self {
            csr: Csr::new(Arc::new(indices), out_dim, in_dim),
            values,
            gather: OnceLock::new(),
        })
    }

    /// An all-zero sparse matrix (`nnz = 0`).
    pub fn empty(out_dim: usize, in_dim: usize, dtype: DType, device: &Device) -> Result<Self> {
        Self::new(
            out_dim,
            in_dim,
            Vec::new(),
            Tensor::zeros(0, dtype, device)?,
        )
    }

    /// `(out, in)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.csr.out_dim, self.csr.in_dim)
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.csr.nnz()
    }

    /// The strictly increasing flat row-major indices.
    pub fn indices(&self) -> &[u32] {
        &self.csr.indices
    }

    /// Bytes this matrix holds in memory: values, indices and row offsets, plus the row and
    /// column tensors if the tensor-op path has built them.
    pub fn resident_bytes(&self) -> u64 {
        let tensor = |t: &Tensor| (t.elem_count() * t.dtype().size_in_bytes()) as u64;
        let positions = 4 * (self.csr.indices.len() + self.csr.row_ptr.len()) as u64;
        let gather = self
            .gather
            .get()
            .map_or(0, |(rows, cols)| tensor(rows) + tensor(cols));
        tensor(&self.values) + positions + gather
    }

    /// The positions in compressed-row form (shared with the fused kernels).
    pub(crate) fn csr(&self) -> &Csr {
        &self.csr
    }

    /// The `[nnz]` values.
    pub fn values(&self) -> &Tensor {
        &self.values
    }

    /// The same matrix with values converted to `dtype` and everything moved to `device`.
    pub fn to(&self, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            csr: self.csr.clone(),
            values: self.values.to_device(device)?.to_dtype(dtype)?,
            gather: OnceLock::new(),
        })
    }

    /// The dense `[out, in]` matrix (for tests, merging and training scratch only).
    pub fn to_dense(&self) -> candle_core::Result<Tensor> {
        let (out_dim, in_dim) = self.shape();
        let zeros = Tensor::zeros(out_dim * in_dim, self.values.dtype(), self.values.device())?;
        if self.nnz() == 0 {
            return zeros.reshape((out_dim, in_dim));
        }
        let idx = Tensor::new(self.indices(), self.values.device())?;
        zeros
            .index_add(&idx, &self.values, 0)?
            .reshape((out_dim, in_dim))
    }

    /// `x Sᵀ` for `x [.., in]` → `[.., out]`, by gather / scale / scatter-add over the non-zeros.
    pub fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = x.dim(D::Minus1)?;
        let out_dim = self.csr.out_dim;
        if in_dim != self.csr.in_dim {
            candle_core::bail!(
                "sparse apply: input has {in_dim} features, S is {:?}",
                self.shape()
            );
        }
        let lead: usize = dims[..dims.len() - 1].iter().product();
        let mut out_dims = dims.clone();
        *out_dims.last_mut().unwrap_or(&mut 0) = out_dim;
        if self.nnz() == 0 {
            return Tensor::zeros(out_dims, x.dtype(), x.device());
        }
        let fused = x.device().is_cpu()
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && self.values.dtype() == x.dtype();
        if fused {
            return x
                .reshape((lead, in_dim))?
                .contiguous()?
                .apply_op2(
                    &self.values.contiguous()?,
                    SparseApply {
                        csr: self.csr.clone(),
                        transposed: false,
                    },
                )?
                .reshape(out_dims);
        }
        self.apply_gather(x, lead, out_dims)
    }

    /// `x Sᵀ` from tensor ops only (any device and dtype): gather / scale / scatter-add.
    fn apply_gather(
        &self,
        x: &Tensor,
        lead: usize,
        out_dims: Vec<usize>,
    ) -> candle_core::Result<Tensor> {
        let (out_dim, in_dim) = self.shape();
        let (rows, cols) = self.gather_positions()?;
        // Work transposed, `[in, lead]` → `[out, lead]`: gathering and scatter-adding whole
        // contiguous rows is several times faster on CPU than doing it along the last dimension.
        let xt = x.reshape((lead, in_dim))?.t()?.contiguous()?;
        // Row j of `gathered` is x[:, cols[j]] · values[j].
        let weighted = xt
            .index_select(cols, 0)?
            .broadcast_mul(&self.values.unsqueeze(1)?)?;
        let zeros = Tensor::zeros((out_dim, lead), x.dtype(), x.device())?;
        zeros
            .index_add(rows, &weighted, 0)?
            .t()?
            .contiguous()?
            .reshape(out_dims)
    }
}

impl SparseDelta {
    /// `[nnz]` u32 rows and columns on the values' device, built on first use.
    fn gather_positions(&self) -> candle_core::Result<&(Tensor, Tensor)> {
        if let Some(p) = self.gather.get() {
            return Ok(p);
        }
        let width = self.csr.in_dim.max(1) as u32;
        let rows: Vec<u32> = self.indices().iter().map(|i| i / width).collect();
        let cols: Vec<u32> = self.indices().iter().map(|i| i % width).collect();
        let device = self.values.device();
        let built = (
            Tensor::new(rows.as_slice(), device)?,
            Tensor::new(cols.as_slice(), device)?,
        );
        Ok(self.gather.get_or_init(|| built))
    }
}

/// `H_k`: the `k` entries of a dense `[out, in]` matrix with the largest magnitudes, as a
/// [`SparseDelta`]. Exact zeros are never kept (so `nnz ≤ k`); ties in magnitude go to the
/// smaller flat index, so the result is deterministic.
pub fn hard_threshold(dense: &Tensor, k: usize) -> Result<SparseDelta> {
    let (out_dim, in_dim) = dense.dims2()?;
    let dtype = dense.dtype();
    let flat: Vec<f64> = dense.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    let mut order: Vec<u32> = (0..flat.len() as u32)
        .filter(|&i| flat[i as usize] != 0.0)
        .collect();
    let keep = k.min(order.len());
    if keep < order.len() {
        let by_magnitude = |a: &u32, b: &u32| {
            flat[*b as usize]
                .abs()
                .total_cmp(&flat[*a as usize].abs())
                .then(a.cmp(b))
        };
        order.select_nth_unstable_by(keep, by_magnitude);
        order.truncate(keep);
    }
    order.sort_unstable();
    let values: Vec<f64> = order.iter().map(|&i| flat[i as usize]).collect();
    let values = Tensor::from_vec(values, order.len(), dense.device())?.to_dtype(dtype)?;
    SparseDelta::new(out_dim, in_dim, order, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_catches_unsorted_and_out_of_range() {
        assert_eq!(validate_indices(&[0, 3, 5], 6), Ok(()));
        assert_eq!(
            validate_indices(&[0, 3, 3], 6),
            Err(IndexProblem::NotSorted { position: 2 })
        );
        assert_eq!(
            validate_indices(&[0, 6], 6),
            Err(IndexProblem::OutOfRange {
                position: 1,
                index: 6,
                bound: 6
            })
        );
    }

    #[test]
    fn hard_threshold_keeps_top_k_with_deterministic_ties() -> Result<()> {
        let d = Tensor::new(&[[0.5f32, -2.0, 0.0], [2.0, 0.1, -0.5]], &Device::Cpu)?;
        let s = hard_threshold(&d, 3)?;
        // |−2| and |2| tie → both kept; then 0.5 at flat 0 beats −0.5 at flat 5.
        assert_eq!(s.indices(), &[0, 1, 3]);
        assert_eq!(s.values().to_vec1::<f32>()?, vec![0.5, -2.0, 2.0]);
        let back = s.to_dense()?.to_vec2::<f32>()?;
        assert_eq!(back, vec![vec![0.5, -2.0, 0.0], vec![2.0, 0.0, 0.0]]);
        // k larger than the non-zeros: zeros are not kept.
        assert_eq!(hard_threshold(&d, 100)?.nnz(), 5);
        Ok(())
    }

    /// N(0, 1) draws from the ChaCha20 stream keyed by `seed`, as f64 on the CPU.
    fn seeded_f64(shape: &[usize], seed: u64) -> Result<Tensor> {
        Ok(crate::testing::seeded_tensor(shape, 0.0, 1.0, seed)?.to_dtype(DType::F64)?)
    }

    #[test]
    fn apply_gradients_match_the_dense_product() -> Result<()> {
        let dense = seeded_f64(&[5, 7], 1)?;
        let s = hard_threshold(&dense, 12)?;
        let vals = candle_core::Var::from_tensor(s.values())?;
        let s = SparseDelta::new(5, 7, s.indices().to_vec(), vals.as_tensor().clone())?;
        let x = candle_core::Var::from_tensor(&seeded_f64(&[2, 3, 7], 2)?)?;
        let probe = seeded_f64(&[2, 3, 5], 3)?;
        let g = (s.apply(&x)? * &probe)?.sum_all()?.backward()?;
        // d/dx (x Sᵀ · P) = P S;  d/dS_ij = Σ P_i x_j at the stored positions.
        let sd = s.to_dense()?;
        let want_dx = probe.broadcast_matmul(&sd)?;
        let got_dx = g.get(&x).expect("dx");
        assert!((want_dx - got_dx)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-12);
        let full = probe
            .reshape((6, 5))?
            .t()?
            .matmul(&x.as_tensor().reshape((6, 7))?)?;
        let want_dv: Vec<f64> = full.flatten_all()?.to_vec1()?;
        let got_dv: Vec<f64> = g.get(&vals).expect("dv").to_vec1()?;
        for (k, &i) in s.indices().iter().enumerate() {
            assert!((want_dv[i as usize] - got_dv[k]).abs() < 1e-12);
        }
        Ok(())
    }

    #[test]
    fn apply_equals_dense_matmul() -> Result<()> {
        let dev = Device::Cpu;
        let dense = Tensor::new(
            &[[0.0f64, 1.5, 0.0, -1.0], [2.0, 0.0, 0.0, 0.25], [0.0; 4]],
            &dev,
        )?;
        let s = hard_threshold(&dense, 10)?;
        let x = Tensor::arange(0f64, 24.0, &dev)?.reshape((2, 3, 4))?;
        let want = x.broadcast_matmul(&dense.t()?)?;
        let got = s.apply(&x)?;
        let diff = (want - got)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-12, "{diff}");
        // The tensor-op path (used off CPU and for half types) agrees with the fused kernel.
        let gathered = s.apply_gather(&x, 6, vec![2, 3, 3])?;
        let diff = (gathered - s.apply(&x)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f64>()?;
        assert!(diff < 1e-12, "{diff}");
        Ok(())
    }
}
