//! From an RDP curve to an (ε, δ)-DP guarantee.
//!
//! Given `RDP(α)` on a grid, every order yields a valid bound and the best one is reported
//! together with the order that achieved it:
//!
//! * [`Conversion::Classic`] (Mironov 2017, Prop. 3): `ε = min_α RDP(α) + log(1/δ)/(α − 1)`;
//!   `δ = min_α exp((α − 1)(RDP(α) − ε))`.
//! * [`Conversion::Balle`] (Balle et al. 2020, Prop. 12; Asoodeh et al. 2020, Eq. 20):
//!   `ε = min_α RDP(α) + log((α − 1)/α) − (log δ + log α)/(α − 1)`, with dp_accounting's
//!   edge handling: a negative RDP value gives ε = 0; when `δ² > 1 − exp(−RDP(α))` the KL
//!   bound `δ ≤ √(1 − e^{−KL})` already gives ε = 0; orders `α ≤ 1.01` are skipped (the
//!   formula is unstable there and never the minimiser); the result is clamped at 0.
//!   At every order `α > 1.01` it is tighter than the classic bound. The δ direction mirrors dp_accounting's
//!   `compute_delta` (the same proposition, plus the KL bound).
//!
//! One deliberate difference from dp_accounting: at `α = +∞` its formula evaluates
//! `∞/∞ = NaN`; here the limit is taken (`ε = RDP(∞)`, i.e. pure DP).

use crate::error::{check_delta, check_epsilon, PrivacyError, Result};
use crate::orders::check_order;
use serde::{Deserialize, Serialize};

/// Which RDP → (ε, δ) conversion to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conversion {
    /// `ε = RDP(α) + log(1/δ)/(α − 1)` (TF Privacy before 2020, Abadi et al.'s moments
    /// accountant).
    Classic,
    /// Balle et al. 2020: tighter; the default of Opacus and dp_accounting.
    #[default]
    Balle,
}

/// ε for a target δ, and the Rényi order that attains it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpsilonReport {
    /// The ε of the (ε, δ)-DP guarantee (may be `+∞` when no order gives a finite bound).
    pub epsilon: f64,
    /// The order `α` that attains the minimum.
    pub order: f64,
    /// The δ it was computed for.
    pub delta: f64,
    /// The conversion used.
    pub conversion: Conversion,
}

/// δ for a target ε, and the Rényi order that attains it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeltaReport {
    /// The δ of the (ε, δ)-DP guarantee, at most 1.
    pub delta: f64,
    /// The order `α` that attains the minimum.
    pub order: f64,
    /// The ε it was computed for.
    pub epsilon: f64,
    /// The conversion used.
    pub conversion: Conversion,
}

fn check_curve(orders: &[f64], rdp: &[f64]) -> Result<()> {
    if orders.len() != rdp.len() {
        return Err(PrivacyError::LengthMismatch {
            orders: orders.len(),
            values: rdp.len(),
        });
    }
    if orders.is_empty() {
        return Err(PrivacyError::EmptyOrders);
    }
    for (&a, &r) in orders.iter().zip(rdp) {
        check_order(a)?;
        if r.is_nan() || r == f64::NEG_INFINITY {
            return Err(PrivacyError::InvalidRdpValue { order: a, value: r });
        }
    }
    Ok(())
}

/// The ε bound a single order gives.
fn epsilon_at(a: f64, r: f64, delta: f64, conversion: Conversion) -> f64 {
    if a.is_infinite() {
        // Limit α → ∞ of both formulas: ε = RDP(∞) (pure DP).
        return r.max(0.0);
    }
    match conversion {
        Conversion::Classic => r - delta.ln() / (a - 1.0),
        Conversion::Balle => {
            // A negative value (numerical noise) or one small enough that the KL bound
            // δ ≤ √(1 − e^{−RDP}) already covers δ: ε = 0.
            if r < 0.0 || delta * delta + (-r).exp_m1() > 0.0 {
                0.0
            } else if a > 1.01 {
                r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
            } else {
                f64::INFINITY
            }
        }
    }
}

/// The log-δ bound a single order gives.
fn log_delta_at(a: f64, r: f64, epsilon: f64, conversion: Conversion) -> f64 {
    if a.is_infinite() {
        return if r <= epsilon { f64::NEG_INFINITY } else { 0.0 };
    }
    match conversion {
        Conversion::Classic => (a - 1.0) * (r - epsilon),
        Conversion::Balle => {
            let kl_bound = if r <= 0.0 {
                f64::NEG_INFINITY
            } else {
                0.5 * (-(-r).exp()).ln_1p()
            };
            if a > 1.01 {
                let rdp_bound = (a - 1.0) * (r - epsilon + (-1.0 / a).ln_1p()) - a.ln();
                kl_bound.min(rdp_bound)
            } else {
                kl_bound
            }
        }
    }
}

/// Smallest ε over the grid for a target `δ ∈ (0, 1)`.
///
/// `orders` and `rdp` must have equal, non-zero length; orders in `(1, 1e5]` or `+∞`;
/// RDP values not NaN or `−∞`.
/// Ties keep the first order.
pub fn epsilon_from_rdp(
    orders: &[f64],
    rdp: &[f64],
    delta: f64,
    conversion: Conversion,
) -> Result<EpsilonReport> {
    check_delta(delta)?;
    check_curve(orders, rdp)?;
    let mut best = (f64::INFINITY, orders[0]);
    for (&a, &r) in orders.iter().zip(rdp) {
        let e = epsilon_at(a, r, delta, conversion);
        if e < best.0 {
            best = (e, a);
        }
    }
    Ok(EpsilonReport {
        epsilon: best.0.max(0.0),
        order: best.1,
        delta,
        conversion,
    })
}

/// Smallest δ over the grid for a target `ε > 0`.
pub fn delta_from_rdp(
    orders: &[f64],
    rdp: &[f64],
    epsilon: f64,
    conversion: Conversion,
) -> Result<DeltaReport> {
    check_epsilon(epsilon)?;
    check_curve(orders, rdp)?;
    let mut best = (f64::INFINITY, orders[0]);
    for (&a, &r) in orders.iter().zip(rdp) {
        let ld = log_delta_at(a, r, epsilon, conversion);
        if ld < best.0 {
            best = (ld, a);
        }
    }
    Ok(DeltaReport {
        delta: best.0.exp().min(1.0),
        order: best.1,
        epsilon,
        conversion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dp_accounting `test_compute_epsilon_delta`-style golden: RDP ≡ 1.1 on orders 2..32.
    #[test]
    fn dp_accounting_constant_rdp_golden() {
        let orders: Vec<f64> = (2..=32).map(f64::from).collect();
        let rdp = vec![1.1; orders.len()];
        let rep = epsilon_from_rdp(&orders, &rdp, 1e-5, Conversion::Balle).unwrap();
        let want = 1.327_838_061_76;
        assert!((rep.epsilon - want).abs() / want < 1e-10, "{}", rep.epsilon);
        // and the δ direction inverts it
        let d = delta_from_rdp(&orders, &rdp, rep.epsilon, Conversion::Balle).unwrap();
        assert!((d.delta - 1e-5).abs() / 1e-5 < 1e-6, "{}", d.delta);
    }

    #[test]
    fn balle_is_never_looser_than_classic() {
        let orders: Vec<f64> = (2..64).map(f64::from).collect();
        let rdp: Vec<f64> = orders.iter().map(|a| 0.01 * a).collect();
        for delta in [1e-3, 1e-5, 1e-9] {
            let c = epsilon_from_rdp(&orders, &rdp, delta, Conversion::Classic).unwrap();
            let b = epsilon_from_rdp(&orders, &rdp, delta, Conversion::Balle).unwrap();
            assert!(b.epsilon <= c.epsilon);
        }
    }

    #[test]
    fn classic_delta_inverts_classic_epsilon() {
        let orders = [2.0, 4.0, 8.0, 16.0];
        let rdp = [0.1, 0.25, 0.6, 1.5];
        let e = epsilon_from_rdp(&orders, &rdp, 1e-6, Conversion::Classic).unwrap();
        let d = delta_from_rdp(&orders, &rdp, e.epsilon, Conversion::Classic).unwrap();
        assert!((d.delta - 1e-6).abs() / 1e-6 < 1e-9);
        assert_eq!(d.order, e.order);
    }

    #[test]
    fn edge_cases() {
        // tiny RDP: KL bound gives ε = 0
        let r = epsilon_from_rdp(&[2.0], &[1e-12], 1e-5, Conversion::Balle).unwrap();
        assert_eq!(r.epsilon, 0.0);
        // infinite order with infinite RDP never wins and never yields NaN
        let r = epsilon_from_rdp(
            &[2.0, f64::INFINITY],
            &[0.5, f64::INFINITY],
            1e-5,
            Conversion::Balle,
        )
        .unwrap();
        assert_eq!(r.order, 2.0);
        assert!(r.epsilon.is_finite());
        // all infinite → ε = ∞, not an error
        let r = epsilon_from_rdp(&[2.0], &[f64::INFINITY], 1e-5, Conversion::Classic).unwrap();
        assert!(r.epsilon.is_infinite());
        assert!(matches!(
            epsilon_from_rdp(&[2.0, 3.0], &[0.5], 1e-5, Conversion::Balle),
            Err(PrivacyError::LengthMismatch {
                orders: 2,
                values: 1
            })
        ));
        assert!(matches!(
            epsilon_from_rdp(&[2.0], &[f64::NAN], 1e-5, Conversion::Balle),
            Err(PrivacyError::InvalidRdpValue { .. })
        ));
        assert!(matches!(
            epsilon_from_rdp(&[2.0], &[0.5], 1.0, Conversion::Balle),
            Err(PrivacyError::InvalidDelta { .. })
        ));
        assert!(matches!(
            delta_from_rdp(&[2.0], &[0.5], -1.0, Conversion::Balle),
            Err(PrivacyError::InvalidEpsilon { .. })
        ));
    }
}
