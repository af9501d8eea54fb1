//! The swap step of a sparse support: after a round has grown a support to its budget, trade
//! one entry of it for one outside it where the task's loss says so ([`best_swap`]).
//!
//! Growth scores an entry alone (what it gains at the current values), so two correlated
//! entries can each look useful while one of them is the better choice given the other. The
//! swap step reads a *local quadratic model* of the loss instead — the Gauss–Newton curvature
//! between the support's entries and every other entry — and finds the exchange
//! `drop j, add i` whose re-fitted support the model scores lowest (the exchange step of
//! forward–backward selection; with the values re-fitted exactly, it is best-subset search one
//! exchange at a time).

use faer::Mat;
use lrs_core::linalg::solve_spd;

/// A sparse part's loss around its current values, as [`best_swap`] reads it: the
/// Gauss–Newton model `L(x) ≈ L₀ + g·(x − x₀) + ½ (x − x₀)ᵀ (H + ridge·I) (x − x₀)` over
/// every entry, with the rows of `H` of the current support in full.
pub struct SwapModel<'a> {
    /// The current support (flat indices) and its values `x₀`.
    pub support: &'a [u32],
    /// Values of the support, in its order.
    pub values: &'a [f32],
    /// Loss gradient `g` of every entry.
    pub grad: &'a [f32],
    /// Curvature `H_ii` of every entry.
    pub curvature: &'a [f32],
    /// `cross[j][i] = H[support[j], i]` for every entry `i`.
    pub cross: &'a [Vec<f64>],
    /// Added to `H`'s diagonal, so flat or collinear entries do not divide by zero.
    pub ridge: f64,
}

/// An exchange of one support entry for one outside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Swap {
    /// The entry dropped.
    pub drop: u32,
    /// The entry grown in its place.
    pub add: u32,
    /// The model's loss decrease, with the support's values re-fitted before and after.
    pub gain: f64,
    /// The new support (sorted) and the model's re-fitted values on it: where a value fit
    /// should start.
    pub support: Vec<u32>,
    /// Values of [`Self::support`], in its order.
    pub values: Vec<f32>,
}

/// The exchange of one entry of `model.support` for one outside it that lowers the model's
/// re-fitted loss most, if any lowers it. With `b = g − (H + ridge·I) x₀` (the model's
/// gradient at `x = 0`), the best values on a support `T` leave `L₀' − ½ b_Tᵀ H_TT⁻¹ b_T`
/// (`H_TT` with the ridge); for every exchange this value follows from `A = H_SS⁻¹` by
/// block-inverse identities, so all `k·(n − k)` exchanges cost `O(n·k²)` rather than a solve
/// each. Ties go to the lower indices (deterministic).
pub fn best_swap(model: &SwapModel<'_>) -> Option<Swap> {
    let k = model.support.len();
    let n = model.grad.len();
    if k == 0 || k >= n || model.cross.len() != k || model.values.len() != k {
        return None;
    }
    let s: Vec<usize> = model.support.iter().map(|&i| i as usize).collect();
    if s.iter().any(|&i| i >= n) || model.cross.iter().any(|row| row.len() != n) {
        return None;
    }
    let h = |j: usize, i: usize| model.cross[j][i];
    // b = g − (H + ridge·I) x₀ (x₀ is zero off the support).
    let mut b: Vec<f64> = (0..n)
        .map(|i| {
            f64::from(model.grad[i])
                - (0..k)
                    .map(|j| h(j, i) * f64::from(model.values[j]))
                    .sum::<f64>()
        })
        .collect();
    for (&i, &x) in s.iter().zip(model.values) {
        b[i] -= model.ridge * f64::from(x);
    }
    let hss = Mat::<f64>::from_fn(k, k, |j, l| {
        0.5 * (h(j, s[l]) + h(l, s[j])) + if j == l { model.ridge } else { 0.0 }
    });
    let a = solve_spd(&hss, &Mat::<f64>::identity(k, k));
    let bs: Vec<f64> = s.iter().map(|&i| b[i]).collect();
    let p: Vec<f64> = (0..k)
        .map(|j| (0..k).map(|l| a[(j, l)] * bs[l]).sum())
        .collect();
    let bp: f64 = bs.iter().zip(&p).map(|(x, y)| x * y).sum();
    // The model's value on S (up to the constant shared by every support).
    let value_s = -0.5 * bp;
    // Dropping j: value −½ (bᵀp − p_j²/A_jj).
    let value_without: Vec<f64> = (0..k)
        .map(|j| -0.5 * (bp - p[j] * p[j] / a[(j, j)]))
        .collect();
    let mut in_support = vec![false; n];
    for &i in &s {
        in_support[i] = true;
    }
    // The best exchange: (gain, j, i).
    let mut best: Option<(f64, usize, usize)> = None;
    let mut q = vec![0.0; k];
    for i in (0..n).filter(|&i| !in_support[i]) {
        let hi: Vec<f64> = (0..k).map(|j| h(j, i)).collect();
        for (j, qj) in q.iter_mut().enumerate() {
            *qj = (0..k).map(|l| a[(j, l)] * hi[l]).sum();
        }
        let hq: f64 = hi.iter().zip(&q).map(|(x, y)| x * y).sum();
        let hp: f64 = hi.iter().zip(&p).map(|(x, y)| x * y).sum();
        let hii = f64::from(model.curvature[i]) + model.ridge;
        for j in 0..k {
            let ajj = a[(j, j)];
            // Entry i given S without j: its Schur complement and its gradient there.
            let schur = hii - hq + q[j] * q[j] / ajj;
            if schur.is_nan() || schur <= 0.0 {
                continue;
            }
            let r = b[i] - hp + q[j] * p[j] / ajj;
            let gain = value_s - (value_without[j] - 0.5 * r * r / schur);
            if gain.is_finite() && best.is_none_or(|(g, ..)| gain > g) {
                best = Some((gain, j, i));
            }
        }
    }
    let (gain, j, i) = best?;
    if gain <= 1e-12 * value_s.abs().max(f64::MIN_POSITIVE) {
        return None;
    }
    // The re-fitted values on the new support T (S with i in j's place):
    // x_T = −(H_TT + ridge·I)⁻¹ b_T. H's rows for S are the cross rows; i's, by symmetry.
    let mut t = s.clone();
    t[j] = i;
    let htt = Mat::<f64>::from_fn(k, k, |u, v| {
        let value = match (u == j, v == j) {
            (true, true) => f64::from(model.curvature[i]),
            (true, false) => h(v, i),
            (false, true) => h(u, i),
            (false, false) => 0.5 * (h(u, s[v]) + h(v, s[u])),
        };
        value + if u == v { model.ridge } else { 0.0 }
    });
    let bt = Mat::<f64>::from_fn(k, 1, |u, _| b[t[u]]);
    let x = solve_spd(&htt, &bt);
    let mut refit: Vec<(u32, f32)> = (0..k).map(|u| (t[u] as u32, -x[(u, 0)] as f32)).collect();
    refit.sort_unstable_by_key(|&(e, _)| e);
    let (support, values) = refit.into_iter().unzip();
    Some(Swap {
        drop: model.support[j],
        add: i as u32,
        gain,
        support,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// `min over x_T of g·(x − x₀) + ½ (x − x₀)ᵀ H (x − x₀)` with `x` zero off `T`, by a
    /// direct solve.
    fn refit_value(hm: &[Vec<f64>], g: &[f64], s: &[usize], x0: &[f64], t: &[usize]) -> f64 {
        let n = g.len();
        let mut full = vec![0.0; n];
        for (j, &i) in s.iter().enumerate() {
            full[i] = x0[j];
        }
        // b = g − H x₀; value = −½ b_Tᵀ H_TT⁻¹ b_T + const.
        let b: Vec<f64> = (0..n)
            .map(|i| g[i] - (0..n).map(|l| hm[i][l] * full[l]).sum::<f64>())
            .collect();
        let htt = Mat::<f64>::from_fn(t.len(), t.len(), |a, c| hm[t[a]][t[c]]);
        let bt = Mat::<f64>::from_fn(t.len(), 1, |a, _| b[t[a]]);
        let x = solve_spd(&htt, &bt);
        -0.5 * (0..t.len()).map(|a| bt[(a, 0)] * x[(a, 0)]).sum::<f64>()
    }

    #[test]
    fn the_best_swap_matches_refitting_every_exchange() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for trial in 0..20 {
            let (n, k) = (9, 3);
            // H = XᵀX/m + 0.1 I from correlated features; g random.
            let rows: Vec<Vec<f64>> = (0..30)
                .map(|_| {
                    let common: f64 = rng.gen_range(-1.0..1.0);
                    (0..n).map(|_| common + rng.gen_range(-1.0..1.0)).collect()
                })
                .collect();
            let hm: Vec<Vec<f64>> = (0..n)
                .map(|i| {
                    (0..n)
                        .map(|j| {
                            rows.iter().map(|r| r[i] * r[j]).sum::<f64>() / 30.0
                                + if i == j { 0.1 } else { 0.0 }
                        })
                        .collect()
                })
                .collect();
            let g: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut s: Vec<usize> = rand::seq::index::sample(&mut rng, n, k).into_vec();
            s.sort_unstable();
            let x0: Vec<f64> = (0..k).map(|_| rng.gen_range(-1.0..1.0)).collect();
            // The model in f32 where the trainer keeps f32, H's diagonal apart from its ridge.
            let support: Vec<u32> = s.iter().map(|&i| i as u32).collect();
            let values: Vec<f32> = x0.iter().map(|&v| v as f32).collect();
            let x0: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
            let grad: Vec<f32> = g.iter().map(|&v| v as f32).collect();
            let g: Vec<f64> = grad.iter().map(|&v| f64::from(v)).collect();
            let curvature: Vec<f32> = (0..n).map(|i| (hm[i][i] - 0.1) as f32).collect();
            let mut hm = hm;
            for (i, row) in hm.iter_mut().enumerate() {
                row[i] = f64::from(curvature[i]) + 0.1;
            }
            let cross: Vec<Vec<f64>> = s
                .iter()
                .map(|&j| {
                    (0..n)
                        .map(|i| if i == j { hm[j][i] - 0.1 } else { hm[j][i] })
                        .collect()
                })
                .collect();
            let model = SwapModel {
                support: &support,
                values: &values,
                grad: &grad,
                curvature: &curvature,
                cross: &cross,
                ridge: 0.1,
            };
            // Brute force: every exchange re-fitted by a direct solve.
            let here = refit_value(&hm, &g, &s, &x0, &s);
            let mut brute: Option<(f64, usize, usize)> = None;
            for j in 0..k {
                for i in (0..n).filter(|i| !s.contains(i)) {
                    let mut t: Vec<usize> = s.clone();
                    t[j] = i;
                    let gain = here - refit_value(&hm, &g, &s, &x0, &t);
                    if brute.is_none_or(|(b, ..)| gain > b) {
                        brute = Some((gain, s[j], i));
                    }
                }
            }
            let (gain, drop, add) = brute.expect("exchanges");
            match best_swap(&model) {
                Some(sw) => {
                    assert_eq!(
                        (sw.drop as usize, sw.add as usize),
                        (drop, add),
                        "trial {trial}"
                    );
                    // The values minimise the model on the new support: its gradient there,
                    // g + H (x − x₀), vanishes.
                    let mut x = vec![0.0; n];
                    for (j, &i) in s.iter().enumerate() {
                        x[i] -= x0[j];
                    }
                    for (&i, &v) in sw.support.iter().zip(&sw.values) {
                        x[i as usize] += f64::from(v);
                    }
                    for &e in &sw.support {
                        let e = e as usize;
                        let grad = g[e] + (0..n).map(|c| hm[e][c] * x[c]).sum::<f64>();
                        assert!(grad.abs() < 1e-4, "trial {trial}: gradient {grad} at {e}");
                    }
                    assert!(
                        (sw.gain - gain).abs() < 1e-6 * gain.abs().max(1.0),
                        "trial {trial}: {sw:?} vs brute {gain} {drop} {add}"
                    );
                }
                None => assert!(gain <= 1e-9, "trial {trial}: missed a gain of {gain}"),
            }
        }
    }

    #[test]
    fn a_support_at_its_refitted_best_is_left_alone() {
        // Independent entries (H diagonal): the support holding the two largest |g|/√h
        // entries at their Newton values has no better exchange.
        let grad = [-4.0f32, 0.5, -3.0, 0.1];
        let curvature = [1.0f32; 4];
        let support = [0u32, 2];
        let values = [4.0f32, 3.0];
        let cross: Vec<Vec<f64>> = support
            .iter()
            .map(|&j| {
                (0..4)
                    .map(|i| if i == j as usize { 1.0 } else { 0.0 })
                    .collect()
            })
            .collect();
        // Fitted values: the gradient on the support is zero.
        let grad_fitted = [0.0f32, grad[1], 0.0, grad[3]];
        let model = SwapModel {
            support: &support,
            values: &values,
            grad: &grad_fitted,
            curvature: &curvature,
            cross: &cross,
            ridge: 0.0,
        };
        assert_eq!(best_swap(&model), None);
        // Move the weak entry 1 up: it now beats entry 2 (gain 3.5² − 3² over 2).
        let grad_strong = [0.0f32, -3.5, 0.0, grad[3]];
        let model = SwapModel {
            grad: &grad_strong,
            ..model
        };
        let sw = best_swap(&model).expect("a better exchange");
        assert_eq!((sw.drop, sw.add), (2, 1));
        // Newton values on {0, 1}: −b / h.
        assert_eq!(sw.support, [0, 1]);
        assert_eq!(sw.values, [4.0, 3.5]);
        assert!(
            (sw.gain - (3.5f64 * 3.5 - 9.0) / 2.0).abs() < 1e-9,
            "{sw:?}"
        );
    }
}
