//! Layer normalization from basic tensor ops, so gradients flow through it.
//!
//! candle-nn 0.11's fused `LayerNorm` has no backward pass: anything upstream of it (every
//! adapted layer below the last norm) would silently receive no gradient.
//! `y = (x − mean) / sqrt(var + eps) · γ + β` over the last dimension (biased variance, as in
//! PyTorch / HF BERT). f32 CPU inputs take the fused kernel
//! ([`FusedLayerNorm`](crate::fused::layer_norm::FusedLayerNorm), one pass each way); other
//! dtypes and devices the composite of candle ops.

use candle_core::{DType, Module, Tensor, D};
use candle_nn::VarBuilder;

use crate::fused::layer_norm::FusedLayerNorm;

/// Autograd-friendly layer norm over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
    fused: Option<FusedLayerNorm>,
}

impl LayerNorm {
    /// From `γ [h]`, `β [h]` and `eps`.
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        let fused = (crate::fused::fusable(&weight) && crate::fused::fusable(&bias))
            .then(|| FusedLayerNorm::new(&weight, &bias, eps).ok())
            .flatten();
        Self {
            weight,
            bias,
            eps,
            fused,
        }
    }

    /// `LN(a + b)`: one fused op (no graph node for the sum) on f32 CPU tensors.
    pub fn forward_residual(&self, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        match &self.fused {
            Some(op) if crate::fused::fusable(a) && crate::fused::fusable(b) => {
                op.forward_residual(a, b)
            }
            _ => self.forward(&(a + b)?),
        }
    }

    /// The composite of candle ops (any dtype and device).
    pub fn forward_composite(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dtype = x.dtype();
        let internal = match dtype {
            DType::F16 | DType::BF16 => DType::F32,
            d => d,
        };
        let x = x.to_dtype(internal)?;
        let centered = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed
            .to_dtype(dtype)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.fused {
            Some(op) if crate::fused::fusable(x) => op.forward(x),
            _ => self.forward_composite(x),
        }
    }
}

/// Loads `weight` and `bias` (`[size]`) under `vb` (HF names: `LayerNorm.weight`/`.bias`).
pub fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(size, "weight")?,
        vb.get(size, "bias")?,
        eps,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// N(0, 1) draws from the ChaCha20 stream keyed by `seed` (f32, CPU).
    fn seeded(shape: &[usize], seed: u64) -> Tensor {
        crate::testing::seeded_tensor(shape, 0.0, 1.0, seed).expect("seeded tensor")
    }

    #[test]
    fn matches_candle_and_passes_gradients() -> candle_core::Result<()> {
        let x = Var::from_tensor(&seeded(&[2, 3, 8], 1))?;
        let (g, b) = (seeded(&[8], 2), seeded(&[8], 3));
        let ours = LayerNorm::new(g.clone(), b.clone(), 1e-12).forward(&x)?;
        let fused = candle_nn::LayerNorm::new(g, b, 1e-12).forward(&x)?;
        let diff = (&ours - fused)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        let probe = seeded(&[2, 3, 8], 4);
        let grads = (ours * probe)?.sum_all()?.backward()?;
        let gx = grads.get(&x).expect("gradient reaches the input");
        assert!(gx.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        Ok(())
    }
}
