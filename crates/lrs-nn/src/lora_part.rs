//! A per-task LoRA term of one layer — the per-task LoRA baseline, run through the same layer
//! ([`crate::LrsLinear::forward_tasks`]), task file and serving path as the LRS parts.
//!
//! ```text
//! y += s_l · (x Aᵀ) Bᵀ
//! A [r_l, in]   PEFT's lora_A (per task, per layer)
//! B [out, r_l]  PEFT's lora_B (per task, per layer)
//! s_l           lora_alpha / r_l (stored with the task)
//! ```
//!
//! Unlike the shared low-rank path, nothing is shared across tasks: a batch mixing `n` LoRA
//! tasks runs `n` pairs of narrow matmuls, one per task group — the cost the LRS design avoids.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use lrs_nn::LoraPart;
//! # fn main() -> lrs_nn::Result<()> {
//! let dev = Device::Cpu;
//! let (out_dim, in_dim, rank) = (3, 4, 2);
//! let lora = LoraPart::from_alpha(
//!     lrs_nn::testing::seeded_tensor(&[rank, in_dim], 0.0, 1.0, 1)?,
//!     lrs_nn::testing::seeded_tensor(&[out_dim, rank], 0.0, 1.0, 2)?,
//!     4.0,
//! );
//! assert_eq!(lora.scale, 2.0);
//! lora.check_shape((out_dim, in_dim))?;
//! let x = Tensor::ones((5, in_dim), DType::F32, &dev)?;
//! assert_eq!(lora.apply(&x)?.dims(), &[5, out_dim]);
//! assert_eq!(lora.delta_weight()?.dims(), &[out_dim, in_dim]);
//! assert_eq!(lora.num_params(), rank * (in_dim + out_dim));
//! # Ok(()) }
//! ```

use candle_core::{DType, Device, Tensor, Var};

use crate::matmul::matmul_last;
use crate::{NnError, Result};

/// One task's LoRA term for one layer: `s_l · (x Aᵀ) Bᵀ`, i.e. a dense weight update
/// `s_l · B A` of rank at most `r_l`.
///
/// `a` and `b` may be tensors of [`Var`]s while the task trains ([`LoraPart::trainable`]);
/// gradients then flow to both through [`crate::LrsLinear::forward_tasks`].
#[derive(Debug, Clone)]
pub struct LoraPart {
    /// `A [r_l, in]` (PEFT `lora_A.weight`).
    pub a: Tensor,
    /// `B [out, r_l]` (PEFT `lora_B.weight`).
    pub b: Tensor,
    /// `s_l = lora_alpha / r_l`.
    pub scale: f64,
}

impl LoraPart {
    /// Wraps the parts; `scale` is `s_l` itself.
    pub fn new(a: Tensor, b: Tensor, scale: f64) -> Self {
        Self { a, b, scale }
    }

    /// Wraps the parts with PEFT's scale `s_l = alpha / r_l` (`r_l` = rows of `a`; a rank-0
    /// part gets scale 0).
    pub fn from_alpha(a: Tensor, b: Tensor, alpha: f64) -> Self {
        let rank = a.dims().first().copied().unwrap_or(0);
        let scale = if rank == 0 { 0.0 } else { alpha / rank as f64 };
        Self { a, b, scale }
    }

    /// A fresh part for a `(out, in)` layer with PEFT's initialisation: `A` uniform in
    /// `±1/√in` (PEFT's Kaiming-uniform with `a = √5`) from a ChaCha20 stream keyed by `seed`
    /// (the same part for the same seed; candle's CPU RNG cannot be seeded), `B = 0`, so the
    /// layer starts unchanged. f32.
    pub fn seeded(
        shape: (usize, usize),
        rank: usize,
        alpha: f64,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        use rand::{Rng, SeedableRng};
        let (out_dim, in_dim) = shape;
        if rank == 0 || in_dim == 0 || out_dim == 0 {
            return Err(NnError::Invalid(format!(
                "LoRA part: rank {rank} for a [{out_dim}, {in_dim}] layer (all must be ≥ 1)"
            )));
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let bound = 1.0 / (in_dim as f32).sqrt();
        let a: Vec<f32> = (0..rank * in_dim)
            .map(|_| rng.gen_range(-bound..bound))
            .collect();
        Ok(Self::from_alpha(
            Tensor::from_vec(a, (rank, in_dim), device)?,
            Tensor::zeros((out_dim, rank), DType::F32, device)?,
            alpha,
        ))
    }

    /// [`Self::seeded`] in `dtype` with `A` and `B` as [`Var`]s. Returns the part and the
    /// `[A, B]` vars to hand to an optimizer.
    pub fn trainable(
        shape: (usize, usize),
        rank: usize,
        alpha: f64,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<(Self, [Var; 2])> {
        let part = Self::seeded(shape, rank, alpha, seed, device)?;
        let a = Var::from_tensor(&part.a.to_dtype(dtype)?)?;
        let b = Var::from_tensor(&part.b.to_dtype(dtype)?)?;
        let part = Self::new(a.as_tensor().clone(), b.as_tensor().clone(), part.scale);
        Ok((part, [a, b]))
    }

    /// The rank `r_l` (rows of `A`).
    pub fn rank(&self) -> usize {
        self.a.dims().first().copied().unwrap_or(0)
    }

    /// `lora_alpha = s_l · r_l`, the value task files record.
    pub fn alpha(&self) -> f64 {
        self.scale * self.rank() as f64
    }

    /// Trainable / stored parameters: `r_l · (in + out)` (the elements of `A` and `B`).
    pub fn num_params(&self) -> usize {
        self.a.elem_count() + self.b.elem_count()
    }

    /// Checks `A [r_l, in]`, `B [out, r_l]` with `r_l ≥ 1` for a layer of shape `(out, in)`.
    pub fn check_shape(&self, shape: (usize, usize)) -> Result<()> {
        let (out_dim, in_dim) = shape;
        let rank = self.rank();
        if rank == 0 || self.a.dims() != [rank, in_dim] || self.b.dims() != [out_dim, rank] {
            return Err(NnError::Invalid(format!(
                "LoRA part: A {:?}, B {:?} do not fit a [{out_dim}, {in_dim}] layer \
                 (need A [r_l, {in_dim}], B [{out_dim}, r_l], r_l ≥ 1)",
                self.a.dims(),
                self.b.dims()
            )));
        }
        Ok(())
    }

    /// `s_l · (x Aᵀ) Bᵀ` for `x [.., in]` → `[.., out]`. The scale multiplies the narrow
    /// `[.., r_l]` activations, not the wide output.
    pub fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = (matmul_last(x, &self.a.t()?)? * self.scale)?;
        matmul_last(&h, &self.b.t()?)
    }

    /// The dense weight update `s_l · B A` `[out, in]` (for merged exports and references).
    pub fn delta_weight(&self) -> candle_core::Result<Tensor> {
        self.b.matmul(&self.a)? * self.scale
    }

    /// A copy that owns its storage (no longer tied to training [`Var`]s).
    pub fn detached(&self) -> candle_core::Result<Self> {
        Ok(Self {
            a: self.a.detach().copy()?,
            b: self.b.detach().copy()?,
            scale: self.scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// N(0, 1) draws from the ChaCha20 stream keyed by `seed`, as f64 on the CPU.
    fn seeded_f64(shape: &[usize], seed: u64) -> Tensor {
        crate::testing::seeded_tensor(shape, 0.0, 1.0, seed)
            .and_then(|t| Ok(t.to_dtype(DType::F64)?))
            .expect("seeded tensor")
    }

    #[test]
    fn apply_equals_the_dense_update() {
        let lora = LoraPart::from_alpha(seeded_f64(&[3, 5], 1), seeded_f64(&[4, 3], 2), 6.0);
        assert_eq!((lora.rank(), lora.scale, lora.alpha()), (3, 2.0, 6.0));
        assert_eq!(lora.num_params(), 3 * 5 + 4 * 3);
        let x = seeded_f64(&[2, 7, 5], 3);
        let want = x
            .broadcast_matmul(&lora.delta_weight().unwrap().t().unwrap())
            .unwrap();
        let diff: f64 = (lora.apply(&x).unwrap() - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-12, "{diff}");
    }

    #[test]
    fn shapes_are_checked_and_trainable_starts_at_zero() {
        let dev = Device::Cpu;
        let (part, [a, b]) = LoraPart::trainable((4, 6), 2, 8.0, 3, DType::F32, &dev).unwrap();
        assert_eq!((a.dims(), b.dims()), (&[2usize, 6][..], &[4usize, 2][..]));
        assert_eq!(part.scale, 4.0);
        part.check_shape((4, 6)).unwrap();
        assert!(part.check_shape((6, 4)).is_err());
        assert!(part.check_shape((4, 5)).is_err());
        let zero: f32 = part
            .delta_weight()
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(zero, 0.0);
        assert!(LoraPart::trainable((4, 6), 0, 8.0, 3, DType::F32, &dev).is_err());
        // The same seed draws the same A; another seed another.
        let a_of = |seed| {
            let p = LoraPart::seeded((4, 6), 2, 8.0, seed, &dev).unwrap();
            p.a.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(
            a_of(3),
            a.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
        assert_ne!(a_of(3), a_of(4));
        let bound = 1.0 / 6f32.sqrt();
        assert!(a_of(3).iter().all(|v| v.abs() <= bound && *v != 0.0));
        // Mismatched inner ranks are rejected.
        let bad = LoraPart::new(
            Tensor::zeros((2, 6), DType::F32, &dev).unwrap(),
            Tensor::zeros((4, 3), DType::F32, &dev).unwrap(),
            1.0,
        );
        assert!(bad.check_shape((4, 6)).is_err());
    }
}
