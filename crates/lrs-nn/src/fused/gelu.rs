//! The exact GELU, `x · Φ(x) = x/2 · (1 + erf(x/√2))`, and its backward
//! `dx = dy · (Φ(x) + x · φ(x))`, each one pass. erf is Abramowitz & Stegun 7.1.26
//! (absolute error below 1.5e-7, under f32's resolution of values near 1) with the vectorized
//! [`simd::exp`]; the `e^{−x²/2}` it needs is the one `φ(x)` needs, so the backward takes one.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, same_shape_f32, simd};

/// Elements per parallel task.
const CHUNK: usize = 4096;

/// erf(x) given `e = e^{−x²}`, |error| < 1.5e-7.
#[inline(always)]
fn erf_with(x: f32, e: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * e).copysign(x)
}

/// erf(x), |error| < 1.5e-7.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    erf_with(x, simd::exp(-x * x))
}

/// GELU (erf form) of `x`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// d GELU / dx at `x`.
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let e = simd::exp(-0.5 * x * x);
    0.5 * (1.0 + erf_with(x * std::f32::consts::FRAC_1_SQRT_2, e)) + x * INV_SQRT_2PI * e
}

/// GELU of every element of `x`, in parallel chunks.
pub(crate) fn gelu_all(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(yc, xc)| {
            simd::dispatch(
                #[inline(always)]
                || yc.iter_mut().zip(xc).for_each(|(y, &x)| *y = gelu(x)),
            )
        });
    y
}

/// The op.
#[derive(Debug, Clone, Copy)]
pub struct FusedGelu;

impl FusedGelu {
    /// GELU of every element of `x`.
    pub fn forward(x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1(FusedGelu)
    }
}

impl CustomOp1 for FusedGelu {
    fn name(&self) -> &'static str {
        "lrs-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = gelu_all(f32_slice(s, l, "gelu x")?);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

/// `x, dy` → `dx`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "lrs-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, g) = same_shape_f32("gelu grad", (s1, l1), (s2, l2))?;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(dc, (xc, gc))| {
                simd::dispatch(
                    #[inline(always)]
                    || {
                        for ((d, &x), &g) in dc.iter_mut().zip(xc).zip(gc) {
                            *d = g * gelu_grad(x);
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
