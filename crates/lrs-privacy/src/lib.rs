//! Differential-privacy accounting, noise calibration and the Gaussian mechanism for
//! lrs's private training (docs/DESIGN.md §Private mode): each round releases a clipped
//! sum of per-user contributions plus Gaussian noise, over Poisson-sampled users.
//!
//! * [`RdpAccountant`] — Rényi DP of the Poisson-subsampled Gaussian ([`rdp`]), composed
//!   additively, converted to (ε, δ) by the classic or Balle et al. bound ([`conversion`])
//!   on an order grid ([`Orders`]); reproduces Opacus / TF Privacy / dp_accounting.
//! * [`PldAccountant`] — tighter numerical composition of privacy-loss distributions by FFT
//!   ([`pld`]); reproduces microsoft/prv_accountant (Opacus `PRVAccountant`).
//! * [`calibrate_sigma_rdp`], [`calibrate_sigma_pld`] — the smallest noise multiplier for
//!   a target (ε, δ) ([`calibration`]).
//! * [`clip_l2`], [`GaussianNoise`] — clipping and ChaCha20-driven noise ([`mechanisms`]).
//!
//! All inputs are validated; bad parameters come back as [`PrivacyError`] naming the
//! parameter, never as a panic or a NaN.
//!
//! ```
//! use lrs_privacy::{calibrate_sigma_rdp, Conversion, GaussianNoise, Orders, PldAccountant, RdpAccountant};
//!
//! // ε after 2250 steps at σ = 1.5, q = 0.04 (Opacus's own test case).
//! let mut rdp = RdpAccountant::new(Orders::opacus());
//! rdp.add_steps(1.5, 0.04, 2250)?;
//! let report = rdp.epsilon(1e-5, Conversion::Balle)?;
//! assert!((report.epsilon - 7.329).abs() < 1e-3);
//! println!("ε = {:.3} at order {}", report.epsilon, report.order);
//!
//! // The PLD accountant is tighter for the same run.
//! let mut pld = PldAccountant::new();
//! pld.add_steps(1.5, 0.04, 2250)?;
//! assert!(pld.epsilon(1e-5)?.epsilon < report.epsilon);
//!
//! // Noise for a target ε = 8, then one noisy, clipped release.
//! let cal = calibrate_sigma_rdp(8.0, 1e-5, 0.04, 2250, &Orders::opacus(), Conversion::Balle)?;
//! assert!(cal.epsilon <= 8.0);
//! let mut noise = GaussianNoise::from_seed(cal.sigma, 1.0, 0)?; // from_entropy() in production
//! let mut grad = vec![3.0, 4.0];
//! lrs_privacy::clip_l2(&mut grad, 1.0)?;
//! noise.add_noise(&mut grad);
//! # Ok::<(), lrs_privacy::PrivacyError>(())
//! ```

#![warn(missing_docs)]

pub mod accountant;
pub mod calibration;
pub mod conversion;
pub mod error;
pub mod guarantee;
pub mod mechanisms;
pub mod orders;
pub mod pld;
pub mod rdp;
mod special;

pub use accountant::{RdpAccountant, SubsampledGaussian};
pub use calibration::{
    calibrate_sigma, calibrate_sigma_pld, calibrate_sigma_rdp, Calibration, CalibrationOptions,
};
pub use conversion::{delta_from_rdp, epsilon_from_rdp, Conversion, DeltaReport, EpsilonReport};
pub use error::{PrivacyError, Result};
pub use guarantee::{Accountant, Guarantee};
pub use mechanisms::{clip_l2, l2_norm, GaussianNoise};
pub use orders::Orders;
pub use pld::{LossPair, PldAccountant, PldDeltaReport, PldEpsilonReport};
pub use rdp::{rdp_subsampled_gaussian, rdp_subsampled_gaussian_curve};
