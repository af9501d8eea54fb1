//! Noise calibration: the smallest noise multiplier σ whose ε stays within a target.
//!
//! ε(σ) decreases in σ, so a bracket `[lo, hi]` with `ε(lo) > target ≥ ε(hi)` is found by
//! doubling/halving from σ = 1 and then bisected until `hi − lo ≤ rel_tol · hi`.
//! The returned σ is always the `hi` end, so **`ε(σ) ≤ target` is guaranteed** for the
//! accountant used, and σ exceeds the exact crossing by at most `rel_tol` relative
//! (default 1e-6). Opacus's `get_noise_multiplier` instead stops once ε is within
//! `epsilon_tolerance = 0.01` below the target, so its σ is slightly larger than ours.

use crate::accountant::RdpAccountant;
use crate::conversion::Conversion;
use crate::error::{check_delta, check_epsilon, check_q, check_steps, PrivacyError, Result};
use crate::orders::Orders;
use crate::pld::PldAccountant;
use serde::{Deserialize, Serialize};

/// Search settings for [`calibrate_sigma`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationOptions {
    /// Stop when the bracket is narrower than `rel_tol · σ` (default 1e-6).
    pub rel_tol: f64,
    /// Smallest σ considered (default 1e-3). If even this σ meets the target it is returned.
    pub sigma_min: f64,
    /// Largest σ considered (default 1e4); beyond it calibration fails.
    pub sigma_max: f64,
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        CalibrationOptions {
            rel_tol: 1e-6,
            sigma_min: 1e-3,
            sigma_max: 1e4,
        }
    }
}

/// The calibrated noise multiplier and the ε it achieves (`≤` the target).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The noise multiplier σ.
    pub sigma: f64,
    /// ε(σ) from the accountant used; never above the target.
    pub epsilon: f64,
    /// Number of ε evaluations made.
    pub evaluations: u32,
}

/// Smallest σ (to `opts.rel_tol`) with `epsilon_of_sigma(σ) ≤ target_epsilon`, for any
/// accountant given as a closure σ ↦ ε. Errors from the closure are passed through.
pub fn calibrate_sigma<F>(
    target_epsilon: f64,
    mut epsilon_of_sigma: F,
    opts: CalibrationOptions,
) -> Result<Calibration>
where
    F: FnMut(f64) -> Result<f64>,
{
    check_epsilon(target_epsilon)?;
    let valid_opts = opts.rel_tol > 0.0
        && opts.rel_tol < 1.0
        && opts.sigma_min > 0.0
        && opts.sigma_max.is_finite()
        && opts.sigma_min < opts.sigma_max;
    if !valid_opts {
        return Err(PrivacyError::CalibrationFailed {
            target_epsilon,
            sigma_min: opts.sigma_min,
            sigma_max: opts.sigma_max,
        });
    }
    let mut evaluations = 0u32;
    let mut eval = |s: f64| {
        evaluations += 1;
        epsilon_of_sigma(s)
    };
    let fail = PrivacyError::CalibrationFailed {
        target_epsilon,
        sigma_min: opts.sigma_min,
        sigma_max: opts.sigma_max,
    };

    // Bracket: lo fails the target (ε > target), hi meets it.
    let start = 1.0f64.clamp(opts.sigma_min, opts.sigma_max);
    let e_start = eval(start)?;
    let (mut lo, mut hi, mut e_hi);
    if e_start > target_epsilon {
        // Double until the target is met; the previous σ is the failing end.
        lo = start;
        loop {
            if lo >= opts.sigma_max {
                return Err(fail);
            }
            hi = (lo * 2.0).min(opts.sigma_max);
            e_hi = eval(hi)?;
            if e_hi <= target_epsilon {
                break;
            }
            lo = hi;
        }
    } else {
        // Halve until the target breaks; the previous σ is the passing end.
        hi = start;
        e_hi = e_start;
        loop {
            if hi <= opts.sigma_min {
                return Ok(Calibration {
                    sigma: hi,
                    epsilon: e_hi,
                    evaluations,
                });
            }
            let cand = (hi / 2.0).max(opts.sigma_min);
            let e = eval(cand)?;
            if e > target_epsilon {
                lo = cand;
                break;
            }
            hi = cand;
            e_hi = e;
        }
    }

    while hi - lo > opts.rel_tol * hi {
        let mid = 0.5 * (lo + hi);
        let e = eval(mid)?;
        if e <= target_epsilon {
            hi = mid;
            e_hi = e;
        } else {
            lo = mid;
        }
    }
    Ok(Calibration {
        sigma: hi,
        epsilon: e_hi,
        evaluations,
    })
}

/// σ for a target (ε, δ) under the RDP accountant, `steps` steps at sampling rate `q`.
pub fn calibrate_sigma_rdp(
    target_epsilon: f64,
    delta: f64,
    q: f64,
    steps: u64,
    orders: &Orders,
    conversion: Conversion,
) -> Result<Calibration> {
    check_delta(delta)?;
    check_q(q)?;
    check_steps(steps)?;
    calibrate_sigma(
        target_epsilon,
        |sigma| {
            let mut acc = RdpAccountant::new(orders.clone());
            acc.add_steps(sigma, q, steps)?;
            Ok(acc.epsilon(delta, conversion)?.epsilon)
        },
        CalibrationOptions::default(),
    )
}

/// σ for a target (ε, δ) under the PLD accountant (its upper bound on ε, with
/// `eps_error`; see [`PldAccountant`]). Each evaluation is two FFT compositions, so this
/// takes seconds for long runs. A σ whose grid would exceed the accountant's size limit, or
/// whose privacy loss is too large for the grid to resolve δ, is treated as missing the target.
pub fn calibrate_sigma_pld(
    target_epsilon: f64,
    delta: f64,
    q: f64,
    steps: u64,
    eps_error: f64,
) -> Result<Calibration> {
    check_delta(delta)?;
    check_q(q)?;
    check_steps(steps)?;
    PldAccountant::with_eps_error(eps_error)?;
    calibrate_sigma(
        target_epsilon,
        |sigma| {
            let mut acc = PldAccountant::with_eps_error(eps_error)?;
            acc.add_steps(sigma, q, steps)?;
            match acc.epsilon(delta) {
                Ok(rep) => Ok(rep.epsilon),
                // Only very small σ (huge ε) need such grids or leave δ unresolved: count the
                // point as failing the target, which can only make σ larger, never unsafe.
                Err(PrivacyError::PldGridTooLarge { .. } | PrivacyError::PldUnresolved { .. }) => {
                    Ok(f64::INFINITY)
                }
                Err(e) => Err(e),
            }
        },
        CalibrationOptions::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opacus `get_noise_multiplier(target_epsilon=8, target_delta=1e-5, sample_rate=0.04,
    /// epochs=90, accountant="rdp")` ≈ 1.416 (its tolerance is 0.01 in ε).
    #[test]
    fn opacus_calibration_golden() {
        let steps = (90.0f64 / 0.04).round() as u64;
        assert_eq!(steps, 2250);
        let c = calibrate_sigma_rdp(8.0, 1e-5, 0.04, steps, &Orders::opacus(), Conversion::Balle)
            .unwrap();
        assert!((c.sigma - 1.416).abs() < 0.01, "{c:?}");
        assert!(c.epsilon <= 8.0 && c.epsilon > 7.99, "{c:?}");
        // the bracket is tight: a σ 1e-5 lower breaks the target
        let mut acc = RdpAccountant::new(Orders::opacus());
        acc.add_steps(c.sigma * (1.0 - 1e-5), 0.04, steps).unwrap();
        assert!(acc.epsilon(1e-5, Conversion::Balle).unwrap().epsilon > 8.0);
    }

    #[test]
    fn pld_calibration_meets_target_with_less_noise_than_rdp() {
        let rdp = calibrate_sigma_rdp(2.0, 1e-5, 0.01, 500, &Orders::opacus(), Conversion::Balle)
            .unwrap();
        let pld = calibrate_sigma_pld(2.0, 1e-5, 0.01, 500, 0.01).unwrap();
        assert!(pld.epsilon <= 2.0 && rdp.epsilon <= 2.0);
        assert!(pld.sigma < rdp.sigma, "{pld:?} {rdp:?}");
    }

    #[test]
    fn generic_search_on_a_known_curve() {
        // ε(σ) = 3/σ → σ* = 3/target
        let c = calibrate_sigma(0.75, |s| Ok(3.0 / s), CalibrationOptions::default()).unwrap();
        assert!((c.sigma - 4.0).abs() <= 4.0 * 1e-6 && c.epsilon <= 0.75);
        let c = calibrate_sigma(30.0, |s| Ok(3.0 / s), CalibrationOptions::default()).unwrap();
        assert!((c.sigma - 0.1).abs() <= 0.1 * 1e-6 && c.epsilon <= 30.0);
        // a target below the curve's floor cannot be met
        let err =
            calibrate_sigma(0.5, |s| Ok(1.0 + 1.0 / s), CalibrationOptions::default()).unwrap_err();
        assert!(matches!(err, PrivacyError::CalibrationFailed { .. }));
        // huge target: the smallest allowed σ is returned
        let c = calibrate_sigma(1e9, |s| Ok(1.0 / s), CalibrationOptions::default()).unwrap();
        assert_eq!(c.sigma, 1e-3);
    }

    #[test]
    fn invalid_input_errors() {
        let o = Orders::opacus();
        assert!(matches!(
            calibrate_sigma_rdp(0.0, 1e-5, 0.1, 10, &o, Conversion::Balle),
            Err(PrivacyError::InvalidEpsilon { .. })
        ));
        assert!(matches!(
            calibrate_sigma_rdp(1.0, 0.0, 0.1, 10, &o, Conversion::Balle),
            Err(PrivacyError::InvalidDelta { .. })
        ));
        assert!(matches!(
            calibrate_sigma_rdp(1.0, 1e-5, 2.0, 10, &o, Conversion::Balle),
            Err(PrivacyError::InvalidSamplingRate { .. })
        ));
        assert!(matches!(
            calibrate_sigma_pld(1.0, 1e-5, 0.1, 0, 0.01),
            Err(PrivacyError::ZeroSteps)
        ));
        assert!(matches!(
            calibrate_sigma_pld(1.0, 1e-5, 0.1, 10, -1.0),
            Err(PrivacyError::InvalidPldParameter { .. })
        ));
    }
}
