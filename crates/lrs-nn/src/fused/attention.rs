//! Scaled dot-product attention over `q, k, v [batch, seq, heads·d]` with an additive key mask
//! `[batch, seq]` (0 for real tokens, a large negative number for padding), in one pass per
//! batch row: `ctx = softmax(q kᵀ · scale + mask) v`, heads side by side in the last dimension,
//! so no `[batch, heads, seq, d]` transposes or copies are needed.
//!
//! Backward recomputes each head's probabilities `P` (cheap at BERT sequence lengths) and
//! gives `dv = Pᵀ dctx`, `dS = P ⊙ (dctx vᵀ − rowsum(P ⊙ dctx vᵀ))`, `dq = dS k · scale`,
//! `dk = dSᵀ q · scale`, all three from one kernel.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, simd};

/// The op: head count, score scale and the key mask it applies.
#[derive(Debug, Clone)]
pub struct Attention {
    heads: usize,
    scale: f32,
    /// `[batch, seq]` additive key mask.
    mask: Arc<[f32]>,
}

impl Attention {
    /// `heads` heads, scores scaled by `scale`, key mask `mask_bias` (`[batch, seq]` or any
    /// shape with `batch · seq` elements, e.g. `[batch, 1, 1, seq]`).
    pub fn new(heads: usize, scale: f64, mask_bias: &Tensor) -> candle_core::Result<Self> {
        Ok(Self {
            heads,
            scale: scale as f32,
            mask: super::f32_values(mask_bias)?.into(),
        })
    }

    /// `q, k, v [batch, seq, heads·d]` → `ctx [batch, seq, heads·d]`.
    pub fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
        q.contiguous()?
            .apply_op3(&k.contiguous()?, &v.contiguous()?, self.clone())
    }

    /// `(batch, seq, width, d)` after checking the three operands agree with the op.
    fn dims(&self, layouts: [&Layout; 3]) -> candle_core::Result<(usize, usize, usize, usize)> {
        let (b, s, w) = layouts[0].shape().dims3()?;
        if layouts.iter().any(|l| l.shape().dims() != [b, s, w]) {
            candle_core::bail!("attention: q, k, v must share one [batch, seq, width] shape");
        }
        if self.heads == 0 || w % self.heads != 0 {
            candle_core::bail!(
                "attention: width {w} is not a multiple of {} heads",
                self.heads
            );
        }
        if self.mask.len() != b * s {
            candle_core::bail!("attention: mask of {} for [{b}, {s}]", self.mask.len());
        }
        Ok((b, s, w, w / self.heads))
    }

    /// Head `h`'s probabilities of every query row into `p [seq, stride]` (`stride`: `seq`
    /// rounded up to whole vectors; the extra columns get probability 0), for one batch
    /// row's `q`, `k` (`[seq, width]`) and key mask (`[seq]`); heads are `d` wide. `kt
    /// [d, stride]` is scratch for the head's keys transposed, so each score row is `d`
    /// full-width `axpy`s over the keys rather than `seq` dot products.
    #[inline(always)]
    fn head_probs(
        &self,
        (q, k, mask): (&[f32], &[f32], &[f32]),
        h: usize,
        d: usize,
        kt: &mut [f32],
        p: &mut [f32],
    ) {
        let s = mask.len();
        let stride = kt.len() / d.max(1);
        let w = q.len() / s.max(1);
        transpose_head(k, h, d, w, stride, kt);
        for (i, pi) in p.chunks_exact_mut(stride.max(1)).enumerate() {
            pi[..s].copy_from_slice(mask);
            pi[s..].iter_mut().for_each(|x| *x = f32::NEG_INFINITY);
            let qi = &q[i * w + h * d..i * w + h * d + d];
            for (c, &qc) in qi.iter().enumerate() {
                simd::axpy(pi, qc * self.scale, &kt[c * stride..(c + 1) * stride]);
            }
            let max = pi.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            pi.iter_mut().for_each(|x| *x = simd::exp(*x - max));
            let inv = 1.0 / simd::sum(pi);
            pi.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// `seq` rounded up to a whole number of 8-lane vectors (AVX2 width, half an AVX-512 one).
fn padded(s: usize) -> usize {
    s.div_ceil(8) * 8
}

/// Head `h`'s columns of `x [seq, w]` as `xt [d, stride]` (columns past `seq` zero).
#[inline(always)]
fn transpose_head(x: &[f32], h: usize, d: usize, w: usize, stride: usize, xt: &mut [f32]) {
    let s = x.len() / w.max(1);
    for c in 0..d {
        let row = &mut xt[c * stride..(c + 1) * stride];
        for (j, out) in row.iter_mut().enumerate() {
            *out = if j < s { x[j * w + h * d + c] } else { 0.0 };
        }
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "lrs-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, s, w, d) = self.dims([l1, l2, l3])?;
        let (q, k, v) = (
            f32_slice(s1, l1, "attention q")?,
            f32_slice(s2, l2, "attention k")?,
            f32_slice(s3, l3, "attention v")?,
        );
        let mut out = vec![0f32; b * s * w];
        let per_row = (s * w).max(1);
        out.par_chunks_mut(per_row).enumerate().for_each(|(bi, o)| {
            let at = bi * s * w..(bi + 1) * s * w;
            let (q, k, v) = (&q[at.clone()], &k[at.clone()], &v[at]);
            let mask = &self.mask[bi * s..(bi + 1) * s];
            simd::dispatch(
                #[inline(always)]
                || {
                    let sp = padded(s);
                    let (mut p, mut kt) = (vec![0f32; s * sp], vec![0f32; d * sp]);
                    for h in 0..self.heads {
                        self.head_probs((q, k, mask), h, d, &mut kt, &mut p);
                        for (i, pi) in p.chunks_exact(sp).enumerate() {
                            let oi = &mut o[i * w + h * d..i * w + h * d + d];
                            // Masked keys have probability exactly 0: nothing to add.
                            for (j, &pj) in pi[..s].iter().enumerate().filter(|(_, &p)| p != 0.0) {
                                simd::axpy(oi, pj, &v[j * w + h * d..j * w + h * d + d]);
                            }
                        }
                    }
                },
            )
        });
        Ok((CpuStorage::F32(out), Shape::from((b, s, w))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _ctx: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, s, w) = q.dims3()?;
        // q and grad side by side, so the backward kernel is one CustomOp3 over (q|dctx, k, v).
        let qg = Tensor::stack(&[q, &grad.contiguous()?], 1)?; // [b, 2, s, w]
                                                               // Keys that depend on no var (a cached layer input's frozen projection) need no `dk`.
        let op = AttentionGrad {
            op: self.clone(),
            with_dk: k.track_op(),
        };
        let all = qg.apply_op3_no_bwd(k, v, &op)?; // [b, 3, s, w]
        let part = |i| all.narrow(1, i, 1)?.reshape((b, s, w));
        let dk = op.with_dk.then(|| part(1)).transpose()?;
        Ok((Some(part(0)?), dk, Some(part(2)?)))
    }
}

/// `(q | dctx) [b, 2, s, w], k, v` → `(dq | dk | dv) [b, 3, s, w]` (`dk` left zero unless
/// `with_dk`).
#[derive(Debug, Clone)]
struct AttentionGrad {
    op: Attention,
    with_dk: bool,
}

impl CustomOp3 for AttentionGrad {
    fn name(&self) -> &'static str {
        "lrs-attention-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (op, with_dk) = (&self.op, self.with_dk);
        let (b, s, w, d) = op.dims([l2, l2, l3])?;
        if l1.shape().dims() != [b, 2, s, w] {
            candle_core::bail!("attention grad: (q | dctx) has shape {:?}", l1.shape());
        }
        let (qg, k, v) = (
            f32_slice(s1, l1, "attention grad q")?,
            f32_slice(s2, l2, "attention grad k")?,
            f32_slice(s3, l3, "attention grad v")?,
        );
        let n = s * w;
        let mut out = vec![0f32; b * 3 * n];
        out.par_chunks_mut((3 * n).max(1))
            .enumerate()
            .for_each(|(bi, o)| {
                let q = &qg[bi * 2 * n..bi * 2 * n + n];
                let g = &qg[bi * 2 * n + n..(bi + 1) * 2 * n];
                let (k, v) = (&k[bi * n..(bi + 1) * n], &v[bi * n..(bi + 1) * n]);
                let mask = &op.mask[bi * s..(bi + 1) * s];
                let (dq, rest) = o.split_at_mut(n);
                let (dk, dv) = rest.split_at_mut(n);
                simd::dispatch(
                    #[inline(always)]
                    || {
                        let sp = padded(s);
                        let (mut p, mut kt, mut vt) =
                            (vec![0f32; s * sp], vec![0f32; d * sp], vec![0f32; d * sp]);
                        let mut ds = vec![0f32; sp];
                        for h in 0..op.heads {
                            let col = |j: usize| j * w + h * d..j * w + h * d + d;
                            op.head_probs((q, k, mask), h, d, &mut kt, &mut p);
                            transpose_head(v, h, d, w, sp, &mut vt);
                            for (i, pi) in p.chunks_exact(sp).enumerate() {
                                let gi = &g[col(i)];
                                // A query whose output gets no gradient (padding, whose
                                // outputs nothing reads) adds nothing to any of the three.
                                if gi.iter().all(|&x| x == 0.0) {
                                    continue;
                                }
                                // dP_i = dctx_i vᵀ, then dS_i = P_i ⊙ (dP_i − P_i · dP_i).
                                ds.iter_mut().for_each(|x| *x = 0.0);
                                for (c, &gc) in gi.iter().enumerate() {
                                    simd::axpy(&mut ds, gc, &vt[c * sp..(c + 1) * sp]);
                                }
                                let inner = simd::dot(pi, &ds);
                                for (dsj, pj) in ds.iter_mut().zip(pi) {
                                    *dsj = pj * (*dsj - inner) * op.scale;
                                }
                                let qi = &q[col(i)];
                                for (j, (&dsj, &pj)) in ds[..s].iter().zip(pi).enumerate() {
                                    // A masked key (probability exactly 0, so dS 0 too).
                                    if pj == 0.0 {
                                        continue;
                                    }
                                    let r = col(j);
                                    simd::axpy(&mut dq[col(i)], dsj, &k[r.clone()]);
                                    if with_dk {
                                        simd::axpy(&mut dk[r.clone()], dsj, qi);
                                    }
                                    simd::axpy(&mut dv[r], pj, gi);
                                }
                            }
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(out), Shape::from((b, 3, s, w))))
    }
}
