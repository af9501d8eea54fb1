//! An adapted layer's base and shared low-rank paths as one op:
//! `y = x W0ᵀ + b0 + ((x V) ⊙ c) Uᵀ`, `c [tokens, r]` each token's scale (the factor's `s`
//! times its task's core `w`), for `x [tokens, in]`, `U [out, r]`, `V [in, r]`.
//!
//! The composite takes five graph nodes over `[tokens, out]`-sized tensors (the base product,
//! the rank-`r` products, the scaling, the sum); this op is one, and its backward gives
//! `dx = dy W0 + ((dy U) ⊙ c) Vᵀ`, `dU = dyᵀ ((x V) ⊙ c)`, `dV = xᵀ ((dy U) ⊙ c)` and no
//! gradient for the frozen `W0` or for `c` (used only where `c` is no training variable).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::frozen_linear::FrozenLinear;
use super::{f32_slice, simd};

/// Token rows per parallel task of the low-rank update.
const ROWS: usize = 16;

/// The op for one forward pass: the frozen base and the per-token scale.
#[derive(Debug, Clone)]
pub struct AdaptedLinear {
    base: FrozenLinear,
    /// `[tokens, r]`, contiguous.
    scale: Tensor,
}

impl AdaptedLinear {
    /// From the layer's frozen base and the per-token scale `c [tokens, r]`.
    pub fn new(base: &FrozenLinear, scale: Tensor) -> candle_core::Result<Self> {
        Ok(Self {
            base: base.clone(),
            scale: scale.contiguous()?,
        })
    }

    /// `x [tokens, in]`, `U [out, r]`, `V [in, r]` → `[tokens, out]`.
    pub fn forward(self, x: &Tensor, u: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?
            .apply_op3(&u.contiguous()?, &v.contiguous()?, self)
    }
}

impl CustomOp3 for AdaptedLinear {
    fn name(&self) -> &'static str {
        "lrs-adapted-linear"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        su: &CpuStorage,
        lu: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (tokens, in_dim) = lx.shape().dims2()?;
        let (out, r) = lu.shape().dims2()?;
        if lv.shape().dims2()? != (in_dim, r) || self.scale.dims2()? != (tokens, r) {
            candle_core::bail!(
                "adapted linear: x {:?}, U {:?}, V {:?}, scale {:?} do not fit",
                lx.shape(),
                lu.shape(),
                lv.shape(),
                self.scale.shape()
            );
        }
        let (w, _) = self.base.weight().dims2()?;
        if w != out {
            candle_core::bail!("adapted linear: U has {out} rows for a {w}-wide layer");
        }
        let (mut y, _) = self.base.apply_cpu(sx, lx)?;
        let xv = sx.matmul(sv, (1, tokens, r, in_dim), lx, lv)?;
        let (cs, cl) = self.scale.storage_and_layout();
        let Storage::Cpu(cs) = &*cs else {
            candle_core::bail!("adapted linear: the scale is not on the CPU");
        };
        let (xv, c) = (
            f32_slice(&xv, &Layout::contiguous((tokens, r)), "adapted linear xV")?,
            f32_slice(cs, cl, "adapted linear scale")?,
        );
        // Uᵀ rows, so each token's update is r contiguous axpys.
        let u = f32_slice(su, lu, "adapted linear U")?;
        let mut ut = vec![0f32; r * out];
        for (o, row) in u.chunks_exact(r.max(1)).enumerate() {
            for (k, &x) in row.iter().enumerate() {
                ut[k * out + o] = x;
            }
        }
        let CpuStorage::F32(yv) = &mut y else {
            candle_core::bail!("adapted linear: f32 only");
        };
        yv.par_chunks_mut((ROWS * out).max(1))
            .enumerate()
            .for_each(|(b, yb)| {
                simd::dispatch(
                    #[inline(always)]
                    || {
                        for (t, yt) in yb.chunks_exact_mut(out.max(1)).enumerate() {
                            let t = b * ROWS + t;
                            for k in 0..r {
                                let h = xv[t * r + k] * c[t * r + k];
                                simd::axpy(yt, h, &ut[k * out..(k + 1) * out]);
                            }
                        }
                    },
                )
            });
        Ok((y, Shape::from((tokens, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        u: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Only what the graph reads: a layer input that depends on no var (a cached state
        // below the first trained layer) gets no `dx`, the costliest of the three products.
        let g = grad.contiguous()?;
        let gw = (g.matmul(&u.detach())? * &self.scale)?;
        let dx = x
            .track_op()
            .then(|| g.matmul(self.base.weight())? + gw.matmul(&v.detach().t()?)?)
            .transpose()?;
        let x = x.detach();
        let du = u
            .track_op()
            .then(|| g.t()?.matmul(&(x.matmul(&v.detach())? * &self.scale)?))
            .transpose()?;
        let dv = v.track_op().then(|| x.t()?.matmul(&gw)).transpose()?;
        Ok((dx, du, dv))
    }
}
