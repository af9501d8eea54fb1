//! The fused CPU kernel for `y = x Sᵀ` with sparse `S` (a candle `CustomOp2`, so autograd works).
//!
//! The rows of `x [lead, in]` are cut into blocks processed in parallel by the [`Csr`] block
//! loops (each stored entry is one vectorized `axpy` over the block). No `[nnz, lead]`
//! temporary. Backward: `dx = dy S` is the same op transposed, and
//! `dvalues[j] = Σ_l dy[l, r_j] · x[l, c_j]` is [`ValueGrad`], summed over fixed chunks in a
//! fixed order so results do not depend on thread scheduling.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::csr::{Csr, Elem, Scratch};

/// Rows of `x` per parallel block.
const BLOCK: usize = 32;

/// `x [lead, in] , values [nnz] → x Sᵀ [lead, out]` for fixed sparse positions (or, when
/// `transposed`, `dy [lead, out] → dy S [lead, in]`).
#[derive(Debug, Clone)]
pub(crate) struct SparseApply {
    pub csr: Csr,
    pub transposed: bool,
}

impl SparseApply {
    /// `(input width, output width)` of the op.
    fn dims(&self) -> (usize, usize) {
        if self.transposed {
            (self.csr.out_dim, self.csr.in_dim)
        } else {
            (self.csr.in_dim, self.csr.out_dim)
        }
    }

    fn kernel<T: Elem>(&self, x: &[T], values: &[T]) -> Vec<T> {
        let (width_in, width_out) = self.dims();
        let lead = x.len() / width_in.max(1);
        let mut y = vec![T::default(); lead * width_out];
        y.par_chunks_mut((BLOCK * width_out).max(1))
            .zip(x.par_chunks((BLOCK * width_in).max(1)))
            .for_each_init(Scratch::default, |scratch, (yb, xb)| {
                if self.transposed {
                    self.csr.scatter_block(xb, values, yb, scratch);
                } else {
                    self.csr.gather_block(xb, values, yb, scratch);
                }
            });
        y
    }
}

/// The contiguous part of a storage slice that `l` describes.
pub(crate) fn contiguous<'a, T>(
    s: &'a [T],
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("sparse apply: {what} must be contiguous"),
    }
}

/// A kernel over two contiguous CPU slices of one float type (the ops of this file).
trait SliceKernel {
    /// Op name in errors.
    const WHAT: &'static str;
    /// Names of the two operands in errors.
    const OPERANDS: [&'static str; 2];
    /// The output for operands `a`, `b`.
    fn run<T: Elem>(&self, a: &[T], b: &[T]) -> Vec<T>;
}

/// Runs `k` on two CPU storages of the same float type (f32 or f64).
fn run_cpu<K: SliceKernel>(
    k: &K,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
) -> candle_core::Result<CpuStorage> {
    let [n1, n2] = K::OPERANDS;
    match (s1, s2) {
        (CpuStorage::F32(a), CpuStorage::F32(b)) => Ok(CpuStorage::F32(
            k.run(contiguous(a, l1, n1)?, contiguous(b, l2, n2)?),
        )),
        (CpuStorage::F64(a), CpuStorage::F64(b)) => Ok(CpuStorage::F64(
            k.run(contiguous(a, l1, n1)?, contiguous(b, l2, n2)?),
        )),
        _ => candle_core::bail!("{}: only f32 and f64 on CPU", K::WHAT),
    }
}

impl SliceKernel for SparseApply {
    const WHAT: &'static str = "sparse apply";
    const OPERANDS: [&'static str; 2] = ["x", "values"];
    fn run<T: Elem>(&self, x: &[T], values: &[T]) -> Vec<T> {
        self.kernel(x, values)
    }
}

impl SliceKernel for ValueGrad {
    const WHAT: &'static str = "sparse value grad";
    const OPERANDS: [&'static str; 2] = ["x", "dy"];
    fn run<T: Elem>(&self, x: &[T], dy: &[T]) -> Vec<T> {
        self.kernel(x, dy)
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
        let (lead, width) = l1.shape().dims2()?;
        let (width_in, width_out) = self.dims();
        if width != width_in || l2.shape().dims1()? != self.csr.nnz() {
            candle_core::bail!(
                "sparse apply: shapes {:?}, {:?} do not fit",
                l1.shape(),
                l2.shape()
            );
        }
        let y = run_cpu(self, (s1, l1), (s2, l2))?;
        Ok((y, Shape::from((lead, width_out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        values: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        if self.transposed {
            candle_core::bail!("sparse apply: no second-order gradient");
        }
        let grad = grad.contiguous()?;
        let transposed = Self {
            csr: self.csr.clone(),
            transposed: true,
        };
        let dx = grad.apply_op2(values, transposed)?;
        let dv = x
            .contiguous()?
            .apply_op2_no_bwd(&grad, &ValueGrad(self.csr.clone()))?;
        Ok((Some(dx), Some(dv)))
    }
}

/// `x [lead, in], dy [lead, out] → dvalues [nnz]`: the gradient of the stored values.
#[derive(Debug, Clone)]
pub(crate) struct ValueGrad(pub Csr);

impl ValueGrad {
    fn kernel<T: Elem>(&self, x: &[T], dy: &[T]) -> Vec<T> {
        let csr = &self.0;
        let lead = x.len() / csr.in_dim.max(1);
        // Fixed chunks, partial sums collected in order and added in order: deterministic.
        let chunk = lead.div_ceil(16).max(BLOCK);
        let partials: Vec<Vec<T>> = x
            .par_chunks((chunk * csr.in_dim).max(1))
            .zip(dy.par_chunks((chunk * csr.out_dim).max(1)))
            .map(|(xc, gc)| {
                let mut dv = vec![T::default(); csr.nnz()];
                csr.value_grad(xc, gc, &mut dv);
                dv
            })
            .collect();
        let mut dv = vec![T::default(); csr.nnz()];
        for p in partials {
            for (a, b) in dv.iter_mut().zip(p) {
                *a += b;
            }
        }
        dv
    }
}

impl CustomOp2 for ValueGrad {
    fn name(&self) -> &'static str {
        "lrs-sparse-value-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (lead, in_dim) = l1.shape().dims2()?;
        let (lead2, out_dim) = l2.shape().dims2()?;
        if lead != lead2 || in_dim != self.0.in_dim || out_dim != self.0.out_dim {
            candle_core::bail!(
                "sparse value grad: shapes {:?}, {:?} do not fit",
                l1.shape(),
                l2.shape()
            );
        }
        let dv = run_cpu(self, (s1, l1), (s2, l2))?;
        Ok((dv, Shape::from(self.0.nnz())))
    }
}
