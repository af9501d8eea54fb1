//! The crate's error type: every variant names the parameter at fault and its value.

use thiserror::Error;

/// Errors from privacy accounting, calibration and the noise mechanisms.
///
/// Every function that takes user-controlled numbers validates them and returns one of
/// these instead of panicking or silently producing NaN.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PrivacyError {
    /// The Poisson sampling rate `q` must lie in `(0, 1]`.
    #[error("sampling rate q must be in (0, 1], got {q}")]
    InvalidSamplingRate {
        /// The rejected value.
        q: f64,
    },
    /// The noise multiplier `σ` (noise std / L2 sensitivity) must be finite and `> 0`.
    #[error("noise multiplier sigma must be finite and > 0, got {sigma}")]
    InvalidNoiseMultiplier {
        /// The rejected value.
        sigma: f64,
    },
    /// `δ` must lie in the open interval `(0, 1)`.
    #[error("delta must be in (0, 1), got {delta}")]
    InvalidDelta {
        /// The rejected value.
        delta: f64,
    },
    /// `ε` must be finite and `> 0`.
    #[error("epsilon must be finite and > 0, got {epsilon}")]
    InvalidEpsilon {
        /// The rejected value.
        epsilon: f64,
    },
    /// The number of composed steps must be at least one.
    #[error("steps must be >= 1, got 0")]
    ZeroSteps,
    /// A Rényi order must be in `(1, 1e5]` or `+∞`.
    #[error("RDP order must be in (1, 1e5] or +inf, got {order}")]
    InvalidOrder {
        /// The rejected value.
        order: f64,
    },
    /// An order grid must hold at least one order.
    #[error("the grid of RDP orders is empty")]
    EmptyOrders,
    /// Two arrays that must line up (orders and RDP values) have different lengths.
    #[error("length mismatch: {orders} orders but {values} RDP values")]
    LengthMismatch {
        /// Number of orders.
        orders: usize,
        /// Number of RDP values.
        values: usize,
    },
    /// A contribution's length differs from the output buffer's.
    #[error("dimension mismatch: expected {expected} entries, got {got}")]
    DimensionMismatch {
        /// Length of the output buffer.
        expected: usize,
        /// Length of the offending contribution.
        got: usize,
    },
    /// An RDP value is NaN or negative infinity.
    #[error("RDP value at order {order} is not a number or -inf: {value}")]
    InvalidRdpValue {
        /// The order the value belongs to.
        order: f64,
        /// The rejected value.
        value: f64,
    },
    /// The clipping norm `C` must be finite and `> 0`.
    #[error("clip norm must be finite and > 0, got {clip_norm}")]
    InvalidClipNorm {
        /// The rejected value.
        clip_norm: f64,
    },
    /// An input vector holds NaN or infinity at `index`.
    #[error("input holds a non-finite value {value} at index {index}")]
    NonFiniteInput {
        /// Position of the first offending entry.
        index: usize,
        /// The offending entry.
        value: f64,
    },
    /// A PLD accuracy parameter (`eps_error`, `delta_error`) is out of range.
    #[error("PLD parameter {name} must be finite and > 0, got {value}")]
    InvalidPldParameter {
        /// Which parameter.
        name: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// The PLD discretisation would need more grid points than the accountant allows.
    #[error("PLD grid would need {needed} points, more than the limit of {limit}; raise eps_error or delta")]
    PldGridTooLarge {
        /// Points the requested accuracy needs.
        needed: usize,
        /// The limit.
        limit: usize,
    },
    /// δ is too small relative to the PLD's floating-point resolution (or its `delta_error`).
    #[error("delta {delta} is too small for the PLD accountant's numerical resolution")]
    PldDeltaTooSmall {
        /// The requested δ.
        delta: f64,
    },
    /// The composed PLD does not resolve the requested δ (its grid ends before the δ̂ curve
    /// crosses it); should not happen with the automatic domain, reported rather than guessed.
    #[error("PLD accountant cannot resolve delta {delta} on its grid")]
    PldUnresolved {
        /// The requested δ.
        delta: f64,
    },
    /// The accountant has not seen any mechanism yet.
    #[error("no steps have been added to the accountant")]
    NoSteps,
    /// Calibration could not bracket a noise multiplier reaching the target.
    #[error("no noise multiplier in [{sigma_min}, {sigma_max}] reaches epsilon {target_epsilon}")]
    CalibrationFailed {
        /// The target ε.
        target_epsilon: f64,
        /// Smallest σ tried.
        sigma_min: f64,
        /// Largest σ tried.
        sigma_max: f64,
    },
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, PrivacyError>;

/// Checks `q ∈ (0, 1]`.
pub(crate) fn check_q(q: f64) -> Result<()> {
    if q > 0.0 && q <= 1.0 {
        Ok(())
    } else {
        Err(PrivacyError::InvalidSamplingRate { q })
    }
}

/// Checks `σ` finite and `> 0`.
pub(crate) fn check_sigma(sigma: f64) -> Result<()> {
    if sigma.is_finite() && sigma > 0.0 {
        Ok(())
    } else {
        Err(PrivacyError::InvalidNoiseMultiplier { sigma })
    }
}

/// Checks `δ ∈ (0, 1)`.
pub(crate) fn check_delta(delta: f64) -> Result<()> {
    if delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(PrivacyError::InvalidDelta { delta })
    }
}

/// Checks `ε` finite and `> 0`.
pub(crate) fn check_epsilon(epsilon: f64) -> Result<()> {
    if epsilon.is_finite() && epsilon > 0.0 {
        Ok(())
    } else {
        Err(PrivacyError::InvalidEpsilon { epsilon })
    }
}

/// Checks `steps ≥ 1`.
pub(crate) fn check_steps(steps: u64) -> Result<()> {
    if steps == 0 {
        Err(PrivacyError::ZeroSteps)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_reject_bad_values() {
        for q in [0.0, -0.1, 1.0001, f64::NAN, f64::INFINITY] {
            assert!(check_q(q).is_err(), "q = {q}");
        }
        assert!(check_q(1.0).is_ok() && check_q(1e-9).is_ok());
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(check_sigma(s).is_err(), "sigma = {s}");
        }
        for d in [0.0, 1.0, -1e-5, f64::NAN] {
            assert!(check_delta(d).is_err(), "delta = {d}");
        }
        for e in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(check_epsilon(e).is_err(), "epsilon = {e}");
        }
        assert_eq!(check_steps(0), Err(PrivacyError::ZeroSteps));
        let msg = check_q(2.0).unwrap_err().to_string();
        assert!(
            msg.contains("sampling rate q") && msg.contains('2'),
            "{msg}"
        );
    }
}
