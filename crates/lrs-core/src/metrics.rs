//! Recovery metrics: relative error of `Θ`, subspace distance, support precision/recall,
//! held-out mean squared error.

use faer::Mat;

use crate::linalg::{gemv, par_chunked_sum};
use crate::problem::{LrsParams, TaskData};

/// `‖Θ̂ − Θ*‖_F / ‖Θ*‖_F`.
pub fn relative_theta_error(est: &LrsParams, truth: &LrsParams) -> f64 {
    relative_error(&est.theta(), &truth.theta())
}

/// `‖a − b‖ / ‖b‖` for flat buffers.
pub fn relative_error(est: &[f64], truth: &[f64]) -> f64 {
    let num: f64 = est.iter().zip(truth).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = truth.iter().map(|b| b * b).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// `‖(I − Û Ûᵀ) U*‖₂`: the sine of the largest principal angle between the subspaces
/// (`Û` must have orthonormal columns).
pub fn subspace_distance(u_hat: &Mat<f64>, u_star: &Mat<f64>) -> f64 {
    let proj = u_hat.transpose() * u_star;
    let resid = u_star - u_hat * &proj;
    resid
        .singular_values()
        .ok()
        .and_then(|s| s.first().copied())
        .unwrap_or(f64::NAN)
}

/// Support recovery of the sparse parts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SupportScore {
    /// Fraction of estimated non-zeros that are true non-zeros.
    pub precision: f64,
    /// Fraction of true non-zeros that were found.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
}

/// Precision/recall of `supp(B̂)` against `supp(B*)` (entries with `|b| > tol` count).
pub fn support_score(b_hat: &[f64], b_star: &[f64], tol: f64) -> SupportScore {
    let (mut tp, mut fp, mut fne) = (0usize, 0usize, 0usize);
    for (e, s) in b_hat.iter().zip(b_star) {
        match (e.abs() > tol, s.abs() > tol) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fne += 1,
            _ => {}
        }
    }
    let precision = if tp + fp == 0 {
        1.0
    } else {
        tp as f64 / (tp + fp) as f64
    };
    let recall = if tp + fne == 0 {
        1.0
    } else {
        tp as f64 / (tp + fne) as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    SupportScore {
        precision,
        recall,
        f1,
    }
}

/// Mean over tasks of the mean squared prediction error of `θ̂_i` on `data`.
/// `theta` is `[t, d]` row-major.
pub fn held_out_mse(theta: &[f64], data: &TaskData) -> f64 {
    let d = data.dim;
    let total = par_chunked_sum(data.tasks, 1, |range, acc| {
        let mut pred = vec![0.0; data.samples];
        for i in range {
            gemv(
                &mut pred,
                data.x_task(i),
                &theta[i * d..(i + 1) * d],
                1.0,
                false,
            );
            acc[0] += pred
                .iter()
                .zip(data.y_task(i))
                .map(|(p, y)| (p - y) * (p - y))
                .sum::<f64>()
                / data.samples as f64;
        }
    });
    total[0] / data.tasks as f64
}

/// All metrics of one fit that the truth and held-out data allow.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// Relative error of `Θ`.
    pub theta_error: Option<f64>,
    /// Subspace distance of `Û` to `U*` (methods with a shared factor only).
    pub subspace_distance: Option<f64>,
    /// Support recovery of `B` (methods with a sparse part only).
    pub support: Option<SupportScore>,
    /// Mean squared error on the training samples.
    pub train_mse: f64,
    /// Mean squared error on held-out samples.
    pub test_mse: Option<f64>,
}

/// Computes a [`Report`] for an estimate `theta` (`[t, d]`) with optional structured parts.
pub fn report(
    theta: &[f64],
    factor: Option<&Mat<f64>>,
    sparse: Option<&[f64]>,
    train: &TaskData,
    test: Option<&TaskData>,
    truth: Option<&LrsParams>,
) -> Report {
    Report {
        theta_error: truth.map(|t| relative_error(theta, &t.theta())),
        subspace_distance: truth.zip(factor).map(|(t, u)| subspace_distance(u, &t.u)),
        support: truth.zip(sparse).map(|(t, b)| {
            let scale = t.b.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            support_score(b, &t.b, 1e-6 * scale.max(f64::MIN_POSITIVE))
        }),
        train_mse: held_out_mse(theta, train),
        test_mse: test.map(|d| held_out_mse(theta, d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_score_counts() {
        let s = support_score(&[1.0, 0.0, 2.0, 0.0], &[1.0, 3.0, 0.0, 0.0], 1e-9);
        assert_eq!((s.precision, s.recall), (0.5, 0.5));
    }

    #[test]
    fn subspace_distance_zero_for_same_span_one_for_orthogonal() {
        let a = Mat::<f64>::from_fn(3, 1, |i, _| if i == 0 { 1.0 } else { 0.0 });
        let b = Mat::<f64>::from_fn(3, 1, |i, _| if i == 0 { -1.0 } else { 0.0 });
        let c = Mat::<f64>::from_fn(3, 1, |i, _| if i == 1 { 1.0 } else { 0.0 });
        assert!(subspace_distance(&a, &b) < 1e-15);
        assert!((subspace_distance(&a, &c) - 1.0).abs() < 1e-15);
    }
}
