//! Private training (docs/DESIGN.md §Private mode): user-level differential privacy for the shared
//! parameters.
//!
//! In private mode the shared phase is DP-SGD with the *user* as the privacy unit. Each step
//! Poisson-samples users (rate `q`), computes each sampled user's gradient of the trained
//! shared vars (`U`, `V`, shared head) over all of that user's training rows, clips it to L2
//! norm `C`, sums, adds `N(0, σ²C²)` per coordinate ([`GaussianNoise::privatize_sum`]),
//! divides by the expected sample size `q·n` and hands the result to AdamW (post-processing).
//! Per-task parts are trained in the task phase on their own task's rows only and never enter
//! a shared update; they are not released with the shared file.
//!
//! σ is given (`noise_multiplier`) or calibrated so that `rounds × shared.steps` steps meet
//! `(epsilon, delta)`; a run never takes a step past that plan, and the shared file's `dp`
//! metadata reports the guarantee of the steps actually taken ([`Guarantee`]). After every
//! step the change of the shared vars is checked to be finite, non-zero and no larger than
//! AdamW can move them ([`check_update`]).

use lrs_privacy::{Accountant, GaussianNoise, Guarantee};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::{Result, TrainError};

/// `[privacy]` of a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Target ε (σ is calibrated to it unless `noise_multiplier` is given, and a given σ
    /// must stay within it).
    pub epsilon: Option<f64>,
    /// δ of the guarantee.
    pub delta: f64,
    /// L2 clip norm `C` of one user's gradient.
    pub clip: f64,
    /// Poisson sampling rate `q` of users per step.
    pub sample_rate: f64,
    /// A fixed noise multiplier σ instead of calibrating one.
    pub noise_multiplier: Option<f64>,
    /// Accountant for calibration and reporting.
    pub accountant: Accountant,
    /// Seed of user sampling and noise (reproducible experiments, no protection against the
    /// seed holder); absent, both come from OS entropy.
    pub noise_seed: Option<u64>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            epsilon: Some(8.0),
            delta: 1e-5,
            clip: 1.0,
            sample_rate: 0.05,
            noise_multiplier: None,
            accountant: Accountant::Rdp,
            noise_seed: None,
        }
    }
}

impl PrivacyConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Err(TrainError::Config { field, reason });
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return bad(
                "privacy.delta",
                format!("must be in (0, 1), got {}", self.delta),
            );
        }
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return bad(
                "privacy.clip",
                format!("must be finite and > 0, got {}", self.clip),
            );
        }
        if !(self.sample_rate > 0.0 && self.sample_rate <= 1.0) {
            return bad(
                "privacy.sample_rate",
                format!("must be in (0, 1], got {}", self.sample_rate),
            );
        }
        if let Some(e) = self.epsilon {
            if !(e.is_finite() && e > 0.0) {
                return bad(
                    "privacy.epsilon",
                    format!("must be finite and > 0, got {e}"),
                );
            }
        }
        match self.noise_multiplier {
            Some(s) if !(s.is_finite() && s > 0.0) => bad(
                "privacy.noise_multiplier",
                format!("must be finite and > 0, got {s}"),
            ),
            None if self.epsilon.is_none() => bad(
                "privacy",
                "give `epsilon` (σ is calibrated) or `noise_multiplier`".into(),
            ),
            _ => Ok(()),
        }
    }

    /// σ for a plan of `steps` steps: the given one (checked against `epsilon` when both are
    /// set) or the calibrated one.
    pub fn sigma(&self, steps: u64) -> Result<f64> {
        let planned = |e: lrs_privacy::PrivacyError| TrainError::Privacy {
            reason: e.to_string(),
        };
        match (self.noise_multiplier, self.epsilon) {
            (Some(sigma), Some(target)) => {
                let g = self
                    .accountant
                    .guarantee(sigma, self.sample_rate, steps, self.delta, self.clip)
                    .map_err(planned)?;
                if g.epsilon > target {
                    return Err(TrainError::Privacy {
                        reason: format!(
                            "σ = {sigma} over {steps} steps gives ε = {:.4} > the budget {target}",
                            g.epsilon
                        ),
                    });
                }
                Ok(sigma)
            }
            (Some(sigma), None) => Ok(sigma),
            (None, Some(target)) => self
                .accountant
                .calibrate(target, self.delta, self.sample_rate, steps)
                .map_err(planned),
            (None, None) => Err(TrainError::Config {
                field: "privacy",
                reason: "give `epsilon` or `noise_multiplier`".into(),
            }),
        }
    }

    /// The guarantee after `steps` steps at noise multiplier `sigma`.
    pub fn guarantee(&self, sigma: f64, steps: u64) -> Result<Guarantee> {
        self.accountant
            .guarantee(sigma, self.sample_rate, steps, self.delta, self.clip)
            .map_err(|e| TrainError::Privacy {
                reason: e.to_string(),
            })
    }

    /// The sampling and noise generators of step `step` (0-based): seeded per step so a
    /// resumed run draws what an uninterrupted one would; from OS entropy without a seed.
    pub fn step_rngs(&self, sigma: f64, step: u64) -> Result<(ChaCha20Rng, GaussianNoise)> {
        let privacy = |e: lrs_privacy::PrivacyError| TrainError::Privacy {
            reason: e.to_string(),
        };
        Ok(match self.noise_seed {
            Some(seed) => {
                let mut sampler = ChaCha20Rng::seed_from_u64(seed);
                sampler.set_stream(2 * step);
                let noise_seed = ChaCha20Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15)
                    .gen::<u64>()
                    .wrapping_add(step);
                (
                    sampler,
                    GaussianNoise::from_seed(sigma, self.clip, noise_seed).map_err(privacy)?,
                )
            }
            None => (
                ChaCha20Rng::from_entropy(),
                GaussianNoise::from_entropy(sigma, self.clip).map_err(privacy)?,
            ),
        })
    }
}

/// Poisson sampling: each of `n` users independently with probability `q`.
pub fn poisson_sample(n: usize, q: f64, rng: &mut impl Rng) -> Vec<usize> {
    (0..n).filter(|_| rng.gen::<f64>() < q).collect()
}

/// The privatised sum of per-user gradients (each clipped to `C`, then noise once), as f64.
pub fn noisy_clipped_sum(
    contributions: &[Vec<f64>],
    len: usize,
    noise: &mut GaussianNoise,
) -> Result<Vec<f64>> {
    let mut out = vec![0.0; len];
    noise
        .privatize_sum(contributions.iter().map(Vec::as_slice), &mut out)
        .map_err(|e| TrainError::Privacy {
            reason: e.to_string(),
        })?;
    Ok(out)
}

/// Guards against silently dropped or exploding private updates: the change `delta` of the
/// shared vars (flattened) must be finite and non-zero, and no longer than AdamW can move
/// `len` parameters in one step (`lr` per coordinate, plus weight decay of `theta_norm`).
pub fn check_update(delta: &[f64], lr: f64, weight_decay: f64, theta_norm: f64) -> Result<f64> {
    let norm = delta.par_iter().map(|d| d * d).sum::<f64>().sqrt();
    if !norm.is_finite() {
        return Err(TrainError::Privacy {
            reason: "the private update of the shared vars is not finite".into(),
        });
    }
    if norm == 0.0 {
        return Err(TrainError::Privacy {
            reason: "the private update left every shared var unchanged (dropped update: are \
                     the shared vars the optimizer's?)"
                .into(),
        });
    }
    // Adam moves each coordinate by at most about lr·(1−β₁)/√(1−β₂) ≈ 3.2·lr in one step.
    let bound = 4.0 * lr * (delta.len() as f64).sqrt() + lr * weight_decay * theta_norm + 1e-12;
    if norm > bound {
        return Err(TrainError::Privacy {
            reason: format!("the private update has norm {norm:.3e} > the AdamW bound {bound:.3e}"),
        });
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_check_catches_dropped_and_exploding_steps() {
        assert!(check_update(&[0.0; 10], 1e-3, 0.0, 1.0).is_err());
        assert!(check_update(&[f64::NAN, 1e-3], 1e-3, 0.0, 1.0).is_err());
        assert!(check_update(&[1.0; 4], 1e-3, 0.0, 1.0).is_err());
        assert!(check_update(&[1e-3; 4], 1e-3, 0.0, 1.0).is_ok());
    }

    #[test]
    fn config_needs_a_budget_or_a_noise_level_and_checks_a_given_sigma() {
        let mut c = PrivacyConfig {
            epsilon: None,
            ..PrivacyConfig::default()
        };
        assert!(c.validate().is_err());
        c.noise_multiplier = Some(0.5);
        c.validate().expect("σ alone is fine");
        c.epsilon = Some(1.0);
        // σ = 0.5 at q = 0.05 over 1000 steps spends far more than ε = 1.
        assert!(matches!(c.sigma(1000), Err(TrainError::Privacy { .. })));
        c.noise_multiplier = None;
        let sigma = c.sigma(1000).expect("calibrated");
        let g = c.guarantee(sigma, 1000).expect("guarantee");
        assert!(g.epsilon <= 1.0 + 1e-9 && g.epsilon > 0.99, "{}", g.epsilon);
    }
}
