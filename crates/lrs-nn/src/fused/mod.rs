//! Fused CPU kernels with their own backward passes, for the training step's hot ops.
//!
//! candle's graph records every elementwise op of a composite (a layer norm from means and
//! broadcasts, a softmax from `exp`, `sum` and `div`) and its backward walks them all, and its
//! `matmul` backward also computes the gradient of a frozen weight that nothing reads. These
//! ops replace the composites on f32 CPU tensors with one pass forward and one backward:
//!
//! * [`frozen_linear`]: `x W0ᵀ + b0` as one 2-D product; backward gives `dx = dy W0` only.
//! * [`frozen_ffn`]: a feed-forward block with neither linear adapted, `GELU(a W1ᵀ + b1) W2ᵀ
//!   + b2`, as one op (its wide activations are no graph nodes).
//! * [`attention`]: scaled dot-product attention over `[batch, seq, heads·d]` with an additive
//!   key mask; backward recomputes the probabilities and gives `dq`, `dk`, `dv` in one pass.
//! * [`layer_norm`]: per-row normalization with frozen `γ`, `β`; backward gives `dx`.
//! * [`gelu`]: the exact (erf) GELU; backward gives `dx`.
//!
//! Each has a finite-difference test (`tests.rs`). Anything they do not cover (other dtypes or
//! devices, dropout inside attention) keeps candle's composite ops.

pub mod adapted_linear;
pub mod attention;
pub mod frozen_ffn;
pub mod frozen_linear;
pub mod gelu;
pub mod layer_norm;
pub mod simd;

#[cfg(test)]
mod tests;

use candle_core::{CpuStorage, Layout, Tensor};

use crate::sparse_apply::contiguous;

/// Whether `t` can go through the fused kernels (f32 on the CPU).
pub fn fusable(t: &Tensor) -> bool {
    t.dtype() == candle_core::DType::F32 && t.device().is_cpu()
}

/// The f32 slice of a CPU storage that the (contiguous) layout `l` describes.
pub(crate) fn f32_slice<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) => contiguous(v, l, what),
        _ => candle_core::bail!("{what}: the fused kernels take f32 only"),
    }
}

/// The f32 slices of two CPU operands that must share one shape (an elementwise op's input
/// and its gradient, or two summands).
pub(crate) fn same_shape_f32<'a>(
    what: &str,
    (s1, l1): (&'a CpuStorage, &Layout),
    (s2, l2): (&'a CpuStorage, &Layout),
) -> candle_core::Result<(&'a [f32], &'a [f32])> {
    if l1.shape() != l2.shape() {
        candle_core::bail!(
            "{what}: operands {:?} and {:?} differ",
            l1.shape(),
            l2.shape()
        );
    }
    Ok((f32_slice(s1, l1, what)?, f32_slice(s2, l2, what)?))
}

/// A tensor's values as an f32 vector (for the small frozen parameters an op captures).
pub(crate) fn f32_values(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()
}
