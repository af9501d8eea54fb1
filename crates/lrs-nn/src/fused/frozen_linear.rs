//! `y = x W0ᵀ + b0` for a frozen `W0 [out, in]`, as one 2-D matrix product over the flattened
//! leading dimensions.
//!
//! `candle_nn::Linear` on a `[batch, seq, in]` input broadcasts `W0` over the batch, so its
//! product runs as `batch` small ones, and the backward of candle's `matmul` computes the
//! gradient of its right-hand side even when, as here, nothing reads it: a `[batch, in, out]`
//! temporary per layer and a third of the layer's arithmetic. This op's backward returns
//! `dx = dy W0` only.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

/// The op: the frozen weight and bias it applies.
#[derive(Debug, Clone)]
pub struct FrozenLinear {
    weight: Tensor,
    bias: Option<Arc<[f32]>>,
}

impl FrozenLinear {
    /// From `W0 [out, in]` and `b0 [out]`.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Self> {
        Ok(Self {
            weight: weight.contiguous()?,
            bias: bias
                .map(|b| super::f32_values(b).map(Arc::from))
                .transpose()?,
        })
    }

    /// `x [.., in]` → `[.., out]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let Some((&k, lead_dims)) = dims.split_last() else {
            candle_core::bail!("frozen linear: a scalar input");
        };
        let lead: usize = lead_dims.iter().product();
        let (out, _) = self.weight.dims2()?;
        let mut shape = lead_dims.to_vec();
        shape.push(out);
        x.contiguous()?
            .reshape((lead, k))?
            .apply_op1(self.clone())?
            .reshape(shape)
    }
}

impl FrozenLinear {
    /// The frozen `W0 [out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `x [lead, in] · W0ᵀ + b0` on CPU storage, and the output width: the product every op
    /// over this frozen layer computes (this one, the FFN block, the adapted layer).
    pub(crate) fn apply_cpu(
        &self,
        x: &CpuStorage,
        l: &Layout,
    ) -> candle_core::Result<(CpuStorage, usize)> {
        let (lead, k) = l.shape().dims2()?;
        let (out, in_dim) = self.weight.dims2()?;
        if k != in_dim {
            candle_core::bail!("frozen linear: input width {k}, weight [{out}, {in_dim}]");
        }
        let wt = self.weight.t()?;
        let (ws, wl) = wt.storage_and_layout();
        let Storage::Cpu(w) = &*ws else {
            candle_core::bail!("frozen linear: the weight is not on the CPU");
        };
        let mut y = x.matmul(w, (1, lead, out, in_dim), l, wl)?;
        self.add_bias(&mut y, out)?;
        Ok((y, out))
    }

    /// Adds `b0` to every `out`-wide row of `y` in place.
    fn add_bias(&self, y: &mut CpuStorage, out: usize) -> candle_core::Result<()> {
        match (&self.bias, y) {
            (None, _) => Ok(()),
            (Some(b), CpuStorage::F32(v)) => {
                v.par_chunks_mut(out.max(1))
                    .with_min_len(64)
                    .for_each(|row| row.iter_mut().zip(b.iter()).for_each(|(y, b)| *y += b));
                Ok(())
            }
            _ => candle_core::bail!("frozen linear: the fused bias takes f32 only"),
        }
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "lrs-frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let lead = l.shape().dims2()?.0;
        let (y, out) = self.apply_cpu(s, l)?;
        Ok((y, Shape::from((lead, out))))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.matmul(&self.weight)?))
    }
}
