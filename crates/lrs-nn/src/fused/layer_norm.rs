//! Layer normalization over the last dimension with frozen `γ`, `β` (biased variance, as in
//! PyTorch / HF BERT): one pass per row forward; backward gives only
//! `dx = rstd · (gγ − mean(gγ) − x̂ · mean(gγ ⊙ x̂))`, `x̂ = (x − mean) · rstd`.
//! [`FusedLayerNorm::forward_residual`] normalizes a sum `a + b` (BERT's residual connections)
//! without a graph node for the sum; both summands get `dx`.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, same_shape_f32, simd};

/// Rows per parallel task.
const ROWS: usize = 16;

/// The op: `γ`, `β` and `eps`.
#[derive(Debug, Clone)]
pub struct FusedLayerNorm {
    gamma: Arc<[f32]>,
    beta: Arc<[f32]>,
    eps: f32,
}

impl FusedLayerNorm {
    /// From `γ [h]`, `β [h]` and `eps`.
    pub fn new(gamma: &Tensor, beta: &Tensor, eps: f64) -> candle_core::Result<Self> {
        let (gamma, beta) = (super::f32_values(gamma)?, super::f32_values(beta)?);
        if gamma.len() != beta.len() {
            candle_core::bail!(
                "layer norm: γ has {}, β {} entries",
                gamma.len(),
                beta.len()
            );
        }
        Ok(Self {
            gamma: gamma.into(),
            beta: beta.into(),
            eps: eps as f32,
        })
    }

    /// `x [.., h]` → normalized `[.., h]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1(self.clone())
    }

    /// `LN(a + b)` for `a`, `b [.., h]` of one shape.
    pub fn forward_residual(&self, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        a.contiguous()?
            .apply_op2(&b.contiguous()?, ResidualLayerNorm(self.clone()))
    }

    fn width(&self, l: &Layout) -> candle_core::Result<usize> {
        let h = self.gamma.len();
        if l.shape().dims().last() != Some(&h) {
            candle_core::bail!("layer norm: input {:?} for width {h}", l.shape());
        }
        Ok(h)
    }
}

/// `y = LN(x)` row by row, for contiguous `x`, `y` of whole rows of width `h`.
fn normalize(op: &FusedLayerNorm, x: &[f32], y: &mut [f32], h: usize) {
    y.par_chunks_mut(ROWS * h)
        .zip(x.par_chunks(ROWS * h))
        .for_each(|(yb, xb)| {
            simd::dispatch(
                #[inline(always)]
                || {
                    let mut scratch = Vec::with_capacity(h);
                    for (yr, xr) in yb.chunks_mut(h).zip(xb.chunks(h)) {
                        let (mean, rstd) = moments(xr, op.eps, &mut scratch);
                        for (((y, x), g), b) in yr.iter_mut().zip(xr).zip(&*op.gamma).zip(&*op.beta)
                        {
                            *y = (x - mean) * rstd * g + b;
                        }
                    }
                },
            )
        });
}

/// `a, b` → `LN(a + b)`.
#[derive(Debug, Clone)]
struct ResidualLayerNorm(FusedLayerNorm);

impl CustomOp2 for ResidualLayerNorm {
    fn name(&self) -> &'static str {
        "lrs-residual-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = self.0.width(l1)?;
        let (a, b) = same_shape_f32("layer norm of a sum", (s1, l1), (s2, l2))?;
        let mut sum = vec![0f32; a.len()];
        sum.par_chunks_mut(ROWS * h.max(1))
            .zip(
                a.par_chunks(ROWS * h.max(1))
                    .zip(b.par_chunks(ROWS * h.max(1))),
            )
            .for_each(|(s, (a, b))| {
                s.iter_mut()
                    .zip(a.iter().zip(b))
                    .for_each(|(s, (a, b))| *s = a + b)
            });
        let mut y = vec![0f32; a.len()];
        normalize(&self.0, &sum, &mut y, h);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let sum = (a.detach() + b.detach())?;
        let dx = sum.apply_op2_no_bwd(&grad.contiguous()?, &LayerNormGrad(self.0.clone()))?;
        Ok((Some(dx.clone()), Some(dx)))
    }
}

/// `(mean, 1 / sqrt(var + eps))` of one row.
#[inline(always)]
fn moments(row: &[f32], eps: f32, scratch: &mut Vec<f32>) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = simd::sum(row) / n;
    scratch.clear();
    scratch.extend(row.iter().map(|x| (x - mean) * (x - mean)));
    let var = simd::sum(scratch) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp1 for FusedLayerNorm {
    fn name(&self) -> &'static str {
        "lrs-layer-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = self.width(l)?;
        let x = f32_slice(s, l, "layer norm x")?;
        let mut y = vec![0f32; x.len()];
        normalize(self, x, &mut y, h);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &grad.contiguous()?,
            &LayerNormGrad(self.clone()),
        )?))
    }
}

/// `x, dy` → `dx`.
#[derive(Debug, Clone)]
struct LayerNormGrad(FusedLayerNorm);

impl CustomOp2 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "lrs-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let op = &self.0;
        let h = op.width(l1)?;
        let (x, g) = same_shape_f32("layer norm grad", (s1, l1), (s2, l2))?;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(ROWS * h)
            .zip(x.par_chunks(ROWS * h).zip(g.par_chunks(ROWS * h)))
            .for_each(|(db, (xb, gb))| {
                simd::dispatch(
                    #[inline(always)]
                    || {
                        let (mut scratch, mut gg, mut xhat) =
                            (Vec::with_capacity(h), vec![0f32; h], vec![0f32; h]);
                        for ((dr, xr), gr) in db.chunks_mut(h).zip(xb.chunks(h)).zip(gb.chunks(h)) {
                            let (mean, rstd) = moments(xr, op.eps, &mut scratch);
                            for (((gg, xh), (x, g)), gamma) in gg
                                .iter_mut()
                                .zip(xhat.iter_mut())
                                .zip(xr.iter().zip(gr))
                                .zip(&*op.gamma)
                            {
                                *gg = g * gamma;
                                *xh = (x - mean) * rstd;
                            }
                            let a = simd::sum(&gg) / h as f32;
                            let c = simd::dot(&gg, &xhat) / h as f32;
                            for ((d, gg), xh) in dr.iter_mut().zip(&gg).zip(&xhat) {
                                *d = rstd * (gg - a - xh * c);
                            }
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
