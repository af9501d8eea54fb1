//! A frozen feed-forward block, `GELU(a W1ᵀ + b1) W2ᵀ + b2`, as one op: for encoder layers
//! whose `intermediate.dense` and `output.dense` are not adapted (the usual query/value
//! configuration), so the `[tokens, intermediate]` activations never become graph nodes of
//! their own. The pre-activation is kept by the op for its backward:
//! `dx = ((dy W2) ⊙ GELU′(pre)) W1`.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};

use super::frozen_linear::FrozenLinear;
use super::gelu::{gelu_all, GeluGrad};

/// The op for one forward pass: both frozen linears and the pre-activation it saw.
#[derive(Debug, Clone)]
pub struct FrozenFfn {
    inner: FrozenLinear,
    outer: FrozenLinear,
    pre: Arc<Mutex<Option<Tensor>>>,
}

impl FrozenFfn {
    /// From `intermediate.dense` (`W1 [i, h]`, `b1`) and `output.dense` (`W2 [h, i]`, `b2`).
    pub fn new(inner: &FrozenLinear, outer: &FrozenLinear) -> Self {
        Self {
            inner: inner.clone(),
            outer: outer.clone(),
            pre: Arc::new(Mutex::new(None)),
        }
    }

    /// `a [.., h]` → `[.., h]`.
    pub fn forward(self, a: &Tensor) -> candle_core::Result<Tensor> {
        let dims = a.dims().to_vec();
        let Some((&h, lead_dims)) = dims.split_last() else {
            candle_core::bail!("frozen ffn: a scalar input");
        };
        let lead: usize = lead_dims.iter().product();
        a.contiguous()?
            .reshape((lead, h))?
            .apply_op1(self)?
            .reshape(dims)
    }
}

impl CustomOp1 for FrozenFfn {
    fn name(&self) -> &'static str {
        "lrs-frozen-ffn"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let lead = l.shape().dims2()?.0;
        let (pre, i) = self.inner.apply_cpu(s, l)?;
        let CpuStorage::F32(pre) = pre else {
            candle_core::bail!("frozen ffn: f32 only");
        };
        let act = CpuStorage::F32(gelu_all(&pre));
        let (y, h) = self.outer.apply_cpu(&act, &Layout::contiguous((lead, i)))?;
        let pre = Tensor::from_vec(pre, (lead, i), &Device::Cpu)?;
        *self
            .pre
            .lock()
            .map_err(|_| candle_core::Error::msg("frozen ffn: poisoned state"))? = Some(pre);
        Ok((y, Shape::from((lead, h))))
    }

    fn bwd(&self, _a: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let pre = self
            .pre
            .lock()
            .map_err(|_| candle_core::Error::msg("frozen ffn: poisoned state"))?
            .clone()
            .ok_or_else(|| candle_core::Error::msg("frozen ffn: backward before forward"))?;
        let d_act = grad.contiguous()?.matmul(self.outer.weight())?;
        let d_pre = pre.apply_op2_no_bwd(&d_act, &GeluGrad)?;
        Ok(Some(d_pre.matmul(self.inner.weight())?))
    }
}
