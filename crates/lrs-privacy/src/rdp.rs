//! Rényi DP of the Poisson-subsampled Gaussian mechanism (add/remove neighbours).
//!
//! One step releases `f(batch) + N(0, σ²C²)` where each record joins the batch independently
//! with probability `q` and `f` has L2 sensitivity `C`. Its RDP at order `α` is
//! `log(A_α)/(α − 1)` with `A_α = E_{z∼μ0}[(μ(z)/μ0(z))^α]`, `μ0 = N(0, σ²)`,
//! `μ = (1 − q)μ0 + q N(1, σ²)` (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of
//! the Sampled Gaussian Mechanism"). Two evaluations:
//!
//! * integer `α`: the binomial expansion
//!   `A_α = Σ_{k=0..α} C(α,k) (1−q)^{α−k} q^k exp((k² − k)/(2σ²))`, summed exactly in log space;
//! * fractional `α`: the two-sided generalised-binomial series of MTZ §3.3 with `log erfc`
//!   weights and signed coefficients (as TF Privacy / Opacus, and as dp_accounting's golden
//!   vector), truncated when both halves are decreasing and 30 nats below the running total
//!   (dp_accounting's `_compute_log_a_frac` rule, 1000 terms at most; a non-converging order
//!   yields `+∞`, which the conversion then simply never selects).
//!
//! Special cases follow dp_accounting: `q = 1` is the plain Gaussian, `α/(2σ²)`; `α = ∞` is
//! `+∞`. RDP composes additively: `T` steps give `T·RDP`, and different mechanisms add their
//! curves order by order.

use crate::error::{check_q, check_sigma, check_steps, Result};
/// Re-exported from [`crate::orders`], where the accepted orders are defined.
pub use crate::orders::MAX_FINITE_ORDER;
use crate::orders::{check_order, Orders};
use crate::special::{log_add, log_comb, log_erfc};

/// Most terms of the fractional-order series before the order is given up as `+∞`.
const MAX_TERMS_FRAC: usize = 1000;

/// `(k² − k)/(2σ²)`, defined as 0 for `k ∈ {0, 1}` even when `2σ²` underflows to 0.
fn quad_term(k: f64, two_s2: f64) -> f64 {
    let num = k * k - k;
    if num == 0.0 {
        0.0
    } else {
        num / two_s2
    }
}

/// RDP at order `order` of **one** step of the Poisson-subsampled Gaussian mechanism with
/// sampling rate `q ∈ (0, 1]` and noise multiplier `σ > 0`. `order` must be in
/// `(1, MAX_FINITE_ORDER]` or `+∞`.
pub fn rdp_subsampled_gaussian(q: f64, sigma: f64, order: f64) -> Result<f64> {
    check_q(q)?;
    check_sigma(sigma)?;
    check_order(order)?;
    if order.is_infinite() {
        return Ok(f64::INFINITY);
    }
    if q == 1.0 {
        return Ok(order / (2.0 * sigma * sigma));
    }
    let log_a = if order.fract() == 0.0 {
        log_a_int(q, sigma, order)
    } else {
        log_a_frac(q, sigma, order)
    };
    Ok(log_a / (order - 1.0))
}

/// RDP curve of `steps` identical steps at every order of `orders` (`steps · RDP(α)`).
pub fn rdp_subsampled_gaussian_curve(
    q: f64,
    sigma: f64,
    steps: u64,
    orders: &Orders,
) -> Result<Vec<f64>> {
    check_steps(steps)?;
    orders
        .as_slice()
        .iter()
        .map(|&a| rdp_subsampled_gaussian(q, sigma, a).map(|r| r * steps as f64))
        .collect()
}

/// `log A_α` for integer `α ≥ 2` and `0 < q < 1`: the binomial expansion in log space.
fn log_a_int(q: f64, sigma: f64, alpha: f64) -> f64 {
    let log_q = q.ln();
    let log_1mq = (-q).ln_1p();
    let two_s2 = 2.0 * sigma * sigma;
    // alpha is an integer-valued float > 1 (checked by the caller), so the cast is exact
    // for every order anyone would use; the loop bound is the order itself.
    let n = alpha as u64;
    let mut log_a = f64::NEG_INFINITY;
    for k in 0..=n {
        let kf = k as f64;
        let log_coef = log_comb(alpha, kf) + kf * log_q + (alpha - kf) * log_1mq;
        log_a = log_add(log_a, log_coef + quad_term(kf, two_s2));
    }
    log_a
}

/// `log A_α` for fractional `α > 1` and `0 < q < 1` (MTZ 2019 §3.3).
///
/// `A_α` splits at `z0 = σ² log(1/q − 1) + 1/2`, where the two mixture components cross;
/// on each side `(1 − q + q e^{…})^α` expands into a generalised binomial series whose
/// Gaussian integrals over the half-line are `½ erfc(·)`. The coefficients `C(α, k)` change
/// sign for `k > α + 1`; the exact (signed) series is what TF Privacy / Opacus evaluate and
/// what the dp_accounting golden vector encodes. Should a signed partial sum ever fail to
/// stay positive (a numerical anomaly), the series with `|C(α, k)|`, an upper bound on
/// `A_α` that current dp_accounting uses throughout, is returned instead.
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    log_a_frac_series(q, sigma, alpha, true)
        .unwrap_or_else(|| log_a_frac_series(q, sigma, alpha, false).unwrap_or(f64::INFINITY))
}

/// The MTZ series, signed (`signed = true`) or with absolute coefficients. `None` when a
/// signed partial sum would become non-positive; `Some(+∞)` when it does not converge
/// within [`MAX_TERMS_FRAC`] terms.
fn log_a_frac_series(q: f64, sigma: f64, alpha: f64, signed: bool) -> Option<f64> {
    let mut log_a0 = f64::NEG_INFINITY;
    let mut log_a1 = f64::NEG_INFINITY;
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let log_q = q.ln();
    let log_1mq = (-q).ln_1p();
    let two_s2 = 2.0 * sigma * sigma;
    let sqrt2_sigma = std::f64::consts::SQRT_2 * sigma;
    let log_half = 0.5f64.ln();
    let alpha_floor = alpha.floor();

    let mut last_s0 = f64::NEG_INFINITY;
    let mut last_s1 = f64::NEG_INFINITY;
    for i in 0..MAX_TERMS_FRAC {
        let fi = i as f64;
        let log_coef = log_comb(alpha, fi);
        let j = alpha - fi;
        // C(α, i) = Π_{k<i} (α − k)/i!: one negative factor for each k in (α, i − 1].
        let negative =
            signed && fi - 1.0 - alpha_floor > 0.0 && (fi - 1.0 - alpha_floor) % 2.0 == 1.0;

        let log_t0 = log_coef + fi * log_q + j * log_1mq;
        let log_t1 = log_coef + j * log_q + fi * log_1mq;

        let log_e0 = log_half + log_erfc((fi - z0) / sqrt2_sigma);
        let log_e1 = log_half + log_erfc((z0 - j) / sqrt2_sigma);

        let log_s0 = log_t0 + quad_term(fi, two_s2) + log_e0;
        let log_s1 = log_t1 + quad_term(j, two_s2) + log_e1;

        if negative {
            log_a0 = log_sub(log_a0, log_s0)?;
            log_a1 = log_sub(log_a1, log_s1)?;
        } else {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        }
        let total = log_add(log_a0, log_a1);

        // Stop when both halves are decreasing and 30 nats below the total (dp_accounting).
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return Some(total);
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    Some(f64::INFINITY)
}

/// `log(exp(a) − exp(b))`, `None` unless `a > b` (or `b = −∞`).
fn log_sub(a: f64, b: f64) -> Option<f64> {
    if b == f64::NEG_INFINITY {
        return Some(a);
    }
    if b >= a {
        return None;
    }
    Some((-(b - a).exp_m1()).ln() + a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PrivacyError;

    /// dp_accounting `rdp_privacy_accountant_test`: σ = 2.5, q = 0.01, 50 steps.
    #[test]
    fn dp_accounting_rdp_vector_golden() {
        let orders = Orders::custom(vec![1.5, 2.5, 5.0, 50.0, 100.0, f64::INFINITY]).unwrap();
        let got = rdp_subsampled_gaussian_curve(0.01, 2.5, 50, &orders).unwrap();
        let want = [
            6.5007e-4,
            1.0854e-3,
            2.1808e-3,
            2.3846e-2,
            1.6742e+2,
            f64::INFINITY,
        ];
        for (g, w) in got.iter().zip(want) {
            if w.is_infinite() {
                assert!(g.is_infinite() && *g > 0.0);
            } else {
                assert!((g - w).abs() / w < 1e-4, "got {g}, want {w}");
            }
        }
    }

    #[test]
    fn signed_series_is_below_the_absolute_bound() {
        let exact = log_a_frac_series(0.01, 2.5, 1.5, true).unwrap();
        let bound = log_a_frac_series(0.01, 2.5, 1.5, false).unwrap();
        assert!(exact < bound);
        // the |C| series reproduces current dp_accounting's 6.70580e-4 for this case
        assert!((bound / 0.5 * 50.0 - 6.705_797e-4).abs() < 1e-9);
        assert_eq!(log_sub(1.0, 1.0), None);
        assert!((log_sub(2f64.ln(), 0.0).unwrap()).abs() < 1e-15);
    }

    #[test]
    fn full_batch_is_plain_gaussian() {
        let r = rdp_subsampled_gaussian(1.0, 2.0, 3.5).unwrap();
        assert!((r - 3.5 / 8.0).abs() < 1e-15);
    }

    #[test]
    fn integer_and_fractional_paths_agree_near_integers() {
        // The fractional series is continuous in α; at α = 3 ± 1e-7 it must match α = 3.
        for (q, s) in [(0.01, 1.0), (0.1, 2.0), (0.5, 0.7)] {
            let at = rdp_subsampled_gaussian(q, s, 3.0).unwrap();
            let near = rdp_subsampled_gaussian(q, s, 3.0 + 1e-7).unwrap();
            assert!((at - near).abs() / at < 1e-5, "q={q} s={s}: {at} vs {near}");
        }
    }

    #[test]
    fn small_q_limit_is_quadratic() {
        // For q → 0, RDP(α) ≈ q² α (e^{1/σ²} − 1) / 2 (MTZ 2019, small-q expansion).
        let (q, s, a) = (1e-5, 1.0, 2.0);
        let r = rdp_subsampled_gaussian(q, s, a).unwrap();
        let approx = q * q * a * ((1.0 / (s * s)).exp() - 1.0) / 2.0;
        assert!((r - approx).abs() / approx < 1e-3, "{r} vs {approx}");
    }

    #[test]
    fn rdp_is_monotone_in_q_sigma_and_order() {
        let r = |q, s, a| rdp_subsampled_gaussian(q, s, a).unwrap();
        assert!(r(0.01, 1.0, 8.0) < r(0.02, 1.0, 8.0));
        assert!(r(0.01, 1.0, 8.0) > r(0.01, 1.2, 8.0));
        assert!(r(0.01, 1.0, 8.0) < r(0.01, 1.0, 8.5));
        assert!(r(0.01, 1.0, 1.5) > 0.0);
    }

    #[test]
    fn invalid_parameters_error() {
        assert!(matches!(
            rdp_subsampled_gaussian(0.0, 1.0, 2.0),
            Err(PrivacyError::InvalidSamplingRate { .. })
        ));
        assert!(matches!(
            rdp_subsampled_gaussian(0.1, -1.0, 2.0),
            Err(PrivacyError::InvalidNoiseMultiplier { .. })
        ));
        assert!(matches!(
            rdp_subsampled_gaussian(0.1, 1.0, 1.0),
            Err(PrivacyError::InvalidOrder { .. })
        ));
        assert!(matches!(
            rdp_subsampled_gaussian(0.1, 1.0, f64::NAN),
            Err(PrivacyError::InvalidOrder { .. })
        ));
        assert!(matches!(
            rdp_subsampled_gaussian(0.1, 1.0, 1e12),
            Err(PrivacyError::InvalidOrder { .. })
        ));
        // a noise multiplier whose square underflows gives +∞, not NaN
        for a in [2.0, 2.5] {
            let r = rdp_subsampled_gaussian(0.1, 1e-200, a).unwrap();
            assert!(r.is_infinite() && r > 0.0, "order {a}: {r}");
        }
        assert_eq!(
            rdp_subsampled_gaussian_curve(0.1, 1.0, 0, &Orders::opacus()),
            Err(PrivacyError::ZeroSteps)
        );
    }
}
