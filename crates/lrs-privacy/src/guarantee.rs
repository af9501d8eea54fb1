//! A run's privacy guarantee: which accountant composes its subsampled-Gaussian steps, the σ
//! that meets a target `(ε, δ)`, and the report a released artefact carries (the `dp`
//! metadata of the shared file, docs/FORMATS.md). Shared by private AMHT-LRS and private deep
//! training.

use serde::{Deserialize, Serialize};

use crate::accountant::RdpAccountant;
use crate::calibration::{calibrate_sigma_pld, calibrate_sigma_rdp};
use crate::conversion::Conversion;
use crate::orders::Orders;
use crate::pld::{PldAccountant, DEFAULT_EPS_ERROR};
use crate::Result;

/// Which privacy accountant composes the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Accountant {
    /// Rényi DP on the Opacus order grid, Balle et al. conversion (Opacus compatible).
    #[default]
    Rdp,
    /// Privacy-loss distributions by FFT (tighter; prv_accountant compatible).
    Pld,
}

impl Accountant {
    /// `"rdp"` or `"pld"`.
    pub fn name(self) -> &'static str {
        match self {
            Accountant::Rdp => "rdp",
            Accountant::Pld => "pld",
        }
    }

    /// The smallest σ whose `steps` Poisson-subsampled (rate `q`) Gaussian steps stay within
    /// `(epsilon, delta)`.
    pub fn calibrate(self, epsilon: f64, delta: f64, q: f64, steps: u64) -> Result<f64> {
        Ok(match self {
            Accountant::Rdp => {
                calibrate_sigma_rdp(
                    epsilon,
                    delta,
                    q,
                    steps,
                    &Orders::opacus(),
                    Conversion::Balle,
                )?
                .sigma
            }
            Accountant::Pld => {
                calibrate_sigma_pld(epsilon, delta, q, steps, DEFAULT_EPS_ERROR)?.sigma
            }
        })
    }

    /// The guarantee of `steps` steps at noise multiplier `sigma`, rate `q`, clip `clip`.
    pub fn guarantee(
        self,
        sigma: f64,
        q: f64,
        steps: u64,
        delta: f64,
        clip: f64,
    ) -> Result<Guarantee> {
        let (epsilon, order) = match self {
            Accountant::Rdp => {
                let mut acc = RdpAccountant::new(Orders::opacus());
                acc.add_steps(sigma, q, steps)?;
                let rep = acc.epsilon(delta, Conversion::Balle)?;
                (rep.epsilon, Some(rep.order))
            }
            Accountant::Pld => {
                let mut acc = PldAccountant::new();
                acc.add_steps(sigma, q, steps)?;
                (acc.epsilon(delta)?.epsilon, None)
            }
        };
        Ok(Guarantee {
            epsilon,
            delta,
            accountant: self.name().to_string(),
            noise_multiplier: sigma,
            sample_rate: q,
            steps,
            clip_norm: clip,
            order,
            unit: "user".to_string(),
        })
    }
}

/// What a released artefact guarantees: user-level `(ε, δ)`-DP and how it was obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guarantee {
    /// ε of the `(ε, δ)` guarantee.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// `"rdp"` or `"pld"`.
    pub accountant: String,
    /// Noise multiplier σ (noise std / clip norm).
    pub noise_multiplier: f64,
    /// Poisson sampling rate q.
    pub sample_rate: f64,
    /// Composed subsampled-Gaussian steps.
    pub steps: u64,
    /// L2 clip norm C of one user's contribution.
    pub clip_norm: f64,
    /// Rényi order attaining ε (RDP accountant only).
    pub order: Option<f64>,
    /// Privacy unit: `"user"` (all of one task's examples).
    pub unit: String,
}
