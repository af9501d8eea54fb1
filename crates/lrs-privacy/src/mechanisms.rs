//! The Gaussian mechanism's two halves: L2 clipping (bounds the sensitivity to `C`) and
//! Gaussian noise `N(0, (σC)²)` per coordinate.
//!
//! ## Randomness
//! Noise comes from ChaCha20 (`rand_chacha::ChaCha20Rng`), a cryptographically secure
//! stream cipher, in both modes:
//! * [`GaussianNoise::from_seed`] — seeded with `seed_from_u64` for **reproducible
//!   experiments**. Anyone who knows the seed can regenerate (and subtract) the noise, so a
//!   seeded run gives *no* privacy against whoever holds the seed: keep it secret or use
//!   the next mode for anything released.
//! * [`GaussianNoise::from_entropy`] — seeded from the operating system's entropy source
//!   (`getrandom`); the mode for **production** releases.
//!
//! Normal variates are drawn with `rand_distr::StandardNormal` (ziggurat) and scaled.
//!
//! ## Floating-point caveat
//! The accountants assume exact real-valued Gaussian noise. Sampling and adding it in
//! floating point leaves traces of the unnoised value in the low-order bits (Mironov 2012,
//! "On significance of the least significant bits for differential privacy"; Jin et al.
//! 2022 for Gaussian samplers), so the formal guarantee holds only up to this effect. It
//! is the standard practice of Opacus and TF Privacy as well; a discrete Gaussian or a
//! snapping mechanism would be needed to close the gap.

use crate::error::{check_sigma, PrivacyError, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::StandardNormal;

/// Euclidean norm of `v`, computed with scaling so huge or tiny entries neither overflow
/// nor underflow.
pub fn l2_norm(v: &[f64]) -> f64 {
    let scale = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if scale == 0.0 || !scale.is_finite() {
        return scale;
    }
    let sum: f64 = v.iter().map(|x| (x / scale) * (x / scale)).sum();
    scale * sum.sqrt()
}

fn check_finite(v: &[f64]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(PrivacyError::NonFiniteInput {
            index,
            value: v[index],
        }),
        None => Ok(()),
    }
}

fn check_clip_norm(clip_norm: f64) -> Result<()> {
    if clip_norm.is_finite() && clip_norm > 0.0 {
        Ok(())
    } else {
        Err(PrivacyError::InvalidClipNorm { clip_norm })
    }
}

/// Scales `v` (a vector, or a matrix in any flat layout — the Frobenius norm is the L2
/// norm of the entries) in place so that `‖v‖₂ ≤ clip_norm`, and returns the factor
/// applied: `min(1, C/‖v‖₂)`, so `1.0` when `v` was already inside the ball.
///
/// Errors on a non-positive or non-finite `clip_norm` and on NaN/∞ entries (left
/// untouched).
pub fn clip_l2(v: &mut [f64], clip_norm: f64) -> Result<f64> {
    check_clip_norm(clip_norm)?;
    check_finite(v)?;
    let norm = l2_norm(v);
    if norm <= clip_norm {
        return Ok(1.0);
    }
    let factor = clip_norm / norm;
    for x in v.iter_mut() {
        *x *= factor;
    }
    Ok(factor)
}

/// Adds `N(0, (σC)²)` noise, σ the noise multiplier and `C` the clip norm (L2 sensitivity).
///
/// Deliberately neither `Clone` nor a `Debug` that shows the generator: a copied or logged
/// RNG state reproduces the noise, and noise that can be reproduced can be subtracted.
pub struct GaussianNoise {
    noise_multiplier: f64,
    clip_norm: f64,
    rng: ChaCha20Rng,
}

impl std::fmt::Debug for GaussianNoise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaussianNoise")
            .field("noise_multiplier", &self.noise_multiplier)
            .field("clip_norm", &self.clip_norm)
            .field("rng", &"ChaCha20Rng { .. }")
            .finish()
    }
}

impl GaussianNoise {
    /// Reproducible noise: ChaCha20 seeded with `seed` (`seed_from_u64`). See the module
    /// docs: the seed holder can remove the noise.
    pub fn from_seed(noise_multiplier: f64, clip_norm: f64, seed: u64) -> Result<Self> {
        Self::with_rng(
            noise_multiplier,
            clip_norm,
            ChaCha20Rng::seed_from_u64(seed),
        )
    }

    /// Production noise: ChaCha20 seeded from operating-system entropy.
    pub fn from_entropy(noise_multiplier: f64, clip_norm: f64) -> Result<Self> {
        Self::with_rng(noise_multiplier, clip_norm, ChaCha20Rng::from_entropy())
    }

    fn with_rng(noise_multiplier: f64, clip_norm: f64, rng: ChaCha20Rng) -> Result<Self> {
        check_sigma(noise_multiplier)?;
        check_clip_norm(clip_norm)?;
        Ok(GaussianNoise {
            noise_multiplier,
            clip_norm,
            rng,
        })
    }

    /// The noise multiplier σ.
    pub fn noise_multiplier(&self) -> f64 {
        self.noise_multiplier
    }

    /// The clip norm `C`.
    pub fn clip_norm(&self) -> f64 {
        self.clip_norm
    }

    /// The standard deviation of each noise coordinate, `σC`.
    pub fn std_dev(&self) -> f64 {
        self.noise_multiplier * self.clip_norm
    }

    /// One draw of `N(0, (σC)²)`.
    pub fn sample(&mut self) -> f64 {
        let z: f64 = self.rng.sample(StandardNormal);
        z * self.std_dev()
    }

    /// Adds an independent `N(0, (σC)²)` draw to every entry of `v`.
    pub fn add_noise(&mut self, v: &mut [f64]) {
        let sd = self.std_dev();
        for x in v.iter_mut() {
            let z: f64 = self.rng.sample(StandardNormal);
            *x += sd * z;
        }
    }

    /// The privatised sum of clipped contributions: clips every row of `contributions` to
    /// `C`, sums them into `out` (overwritten; all rows must have `out.len()` entries), and
    /// adds the noise once — one step of the subsampled Gaussian mechanism.
    pub fn privatize_sum<'a, I>(&mut self, contributions: I, out: &mut [f64]) -> Result<()>
    where
        I: IntoIterator<Item = &'a [f64]>,
    {
        out.iter_mut().for_each(|x| *x = 0.0);
        let mut scratch = vec![0.0; out.len()];
        for row in contributions {
            if row.len() != out.len() {
                return Err(PrivacyError::DimensionMismatch {
                    expected: out.len(),
                    got: row.len(),
                });
            }
            scratch.copy_from_slice(row);
            clip_l2(&mut scratch, self.clip_norm)?;
            for (o, s) in out.iter_mut().zip(&scratch) {
                *o += s;
            }
        }
        self.add_noise(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_bounds_the_norm_and_leaves_small_vectors_alone() {
        let mut v = vec![3.0, 4.0];
        let f = clip_l2(&mut v, 1.0).unwrap();
        assert!((f - 0.2).abs() < 1e-15);
        assert!(l2_norm(&v) <= 1.0 + 1e-12);
        assert!((v[0] - 0.6).abs() < 1e-15 && (v[1] - 0.8).abs() < 1e-15);

        let mut w = vec![0.3, -0.4];
        assert_eq!(clip_l2(&mut w, 1.0).unwrap(), 1.0);
        assert_eq!(w, vec![0.3, -0.4]);

        let mut z = vec![0.0; 5];
        assert_eq!(clip_l2(&mut z, 1.0).unwrap(), 1.0);

        // a "matrix" of huge entries: no overflow in the norm
        let mut m = vec![1e300; 6];
        let f = clip_l2(&mut m, 2.0).unwrap();
        assert!(f > 0.0 && l2_norm(&m) <= 2.0 * (1.0 + 1e-12));
        let mut r = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        for _ in 0..100 {
            let mut v: Vec<f64> = (0..17)
                .map(|_| r.sample::<f64, _>(StandardNormal) * 10.0)
                .collect();
            clip_l2(&mut v, 1.5).unwrap();
            assert!(l2_norm(&v) <= 1.5 * (1.0 + 1e-12));
        }
    }

    #[test]
    fn clipping_rejects_bad_input() {
        let mut v = vec![1.0, f64::NAN];
        assert!(matches!(
            clip_l2(&mut v, 1.0),
            Err(PrivacyError::NonFiniteInput { index: 1, .. })
        ));
        let mut v = vec![1.0];
        assert!(matches!(
            clip_l2(&mut v, 0.0),
            Err(PrivacyError::InvalidClipNorm { .. })
        ));
        assert!(matches!(
            clip_l2(&mut v, f64::INFINITY),
            Err(PrivacyError::InvalidClipNorm { .. })
        ));
        assert!(matches!(
            GaussianNoise::from_seed(0.0, 1.0, 1),
            Err(PrivacyError::InvalidNoiseMultiplier { .. })
        ));
        assert!(matches!(
            GaussianNoise::from_seed(1.0, -1.0, 1),
            Err(PrivacyError::InvalidClipNorm { .. })
        ));
    }

    /// The sample variance of n draws satisfies (n−1)s²/σ² ∼ χ²(n−1) ≈ N(n−1, 2(n−1)):
    /// check it inside a 5-standard-deviation band (and the mean inside 5 standard errors).
    #[test]
    fn noise_variance_is_sigma_c_squared() {
        let (sigma, c) = (1.5, 2.0);
        let mut g = GaussianNoise::from_seed(sigma, c, 42).unwrap();
        let n = 200_000usize;
        let mut v = vec![0.0; n];
        g.add_noise(&mut v);
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
        let target = (sigma * c) * (sigma * c);
        let band = 5.0 * (2.0 / (n - 1) as f64).sqrt();
        assert!(
            (var / target - 1.0).abs() < band,
            "var {var} target {target}"
        );
        assert!(mean.abs() < 5.0 * (target / n as f64).sqrt(), "mean {mean}");
        assert_eq!(g.std_dev(), 3.0);
        let shown = format!("{g:?}");
        assert!(shown.contains("noise_multiplier: 1.5") && shown.contains("ChaCha20Rng { .. }"));
    }

    #[test]
    fn seeded_noise_is_reproducible_and_entropy_noise_is_not() {
        let draw = |seed| {
            let mut g = GaussianNoise::from_seed(1.0, 1.0, seed).unwrap();
            (0..8).map(|_| g.sample()).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        let mut a = GaussianNoise::from_entropy(1.0, 1.0).unwrap();
        let mut b = GaussianNoise::from_entropy(1.0, 1.0).unwrap();
        assert_ne!(a.sample(), b.sample());
    }

    #[test]
    fn privatize_sum_clips_each_row_then_adds_noise_once() {
        let rows = [vec![3.0, 4.0], vec![0.1, 0.0]];
        let mut g = GaussianNoise::from_seed(1e-9, 1.0, 0).unwrap();
        let mut out = vec![9.0; 2];
        g.privatize_sum(rows.iter().map(|r| r.as_slice()), &mut out)
            .unwrap();
        assert!(
            (out[0] - 0.7).abs() < 1e-6 && (out[1] - 0.8).abs() < 1e-6,
            "{out:?}"
        );
        let bad = [vec![1.0]];
        assert_eq!(
            g.privatize_sum(bad.iter().map(|r| r.as_slice()), &mut out),
            Err(PrivacyError::DimensionMismatch {
                expected: 2,
                got: 1
            })
        );
    }
}
