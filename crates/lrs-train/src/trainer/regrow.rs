//! Hard thresholding with regrowth (DESIGN.md §1: "the option to regrow by gradient
//! magnitude"): a share of the budget goes to the positions where the loss is steepest
//! instead of to the largest current values, so a support fixed early can still move.

use candle_core::Tensor;
use lrs_nn::hard_threshold;

use super::error::Result;

/// Keeps `k` entries of `stepped` (`S − η∇S`), zeroing the rest: the `k − g` largest
/// magnitudes, then the `g = round(regrow · k)` not yet kept whose gradient `grad` is largest
/// in magnitude. `regrow = 0` is plain `H_k`. Ties go to the lower flat index. Returns a dense
/// tensor shaped like `stepped`.
pub fn threshold_with_regrow(
    stepped: &Tensor,
    grad: &Tensor,
    k: usize,
    regrow: f64,
) -> Result<Tensor> {
    let grown = ((regrow * k as f64).round() as usize).min(k);
    if grown == 0 {
        return Ok(hard_threshold(stepped, k)?.to_dense()?);
    }
    let values: Vec<f32> = stepped.flatten_all()?.to_vec1()?;
    let g: Vec<f32> = grad.flatten_all()?.to_vec1()?;
    let n = values.len();
    let kept = top(&values, k - grown, &vec![false; n]);
    let mut taken = vec![false; n];
    for &i in &kept {
        taken[i] = true;
    }
    let regrown = top(&g, grown, &taken);
    let mut out = vec![0f32; n];
    for i in kept.into_iter().chain(regrown) {
        out[i] = values[i];
    }
    Ok(Tensor::from_vec(out, stepped.shape(), stepped.device())?)
}

/// Indices of the `count` largest `|x|` among positions not `excluded` (lower index first on
/// ties).
fn top(x: &[f32], count: usize, excluded: &[bool]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..x.len()).filter(|&i| !excluded[i]).collect();
    let count = count.min(idx.len());
    if count == 0 {
        return Vec::new();
    }
    let order = |a: &usize, b: &usize| x[*b].abs().total_cmp(&x[*a].abs()).then_with(|| a.cmp(b));
    if count < idx.len() {
        idx.select_nth_unstable_by(count - 1, order);
        idx.truncate(count);
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn regrow_swaps_part_of_the_budget_to_the_steepest_positions() -> Result<()> {
        let dev = Device::Cpu;
        let stepped = Tensor::new(&[[5f32, 4.0, 3.0], [2.0, 1.0, 0.0]], &dev)?;
        let grad = Tensor::new(&[[0f32, 0.0, 0.0], [0.0, 0.5, -9.0]], &dev)?;
        // Plain H_3: the three largest values.
        let plain = threshold_with_regrow(&stepped, &grad, 3, 0.0)?;
        assert_eq!(plain.to_vec2::<f32>()?, [[5.0, 4.0, 3.0], [0.0, 0.0, 0.0]]);
        // One of three regrown: keep 5, 4 by value, then the steepest other position (1,2),
        // whose stepped value is 0 here — it is in the support, not yet non-zero.
        let grown = threshold_with_regrow(&stepped, &grad, 3, 1.0 / 3.0)?;
        assert_eq!(grown.to_vec2::<f32>()?, [[5.0, 4.0, 0.0], [0.0, 0.0, 0.0]]);
        let grad2 = Tensor::new(&[[0f32, 0.0, 0.0], [0.0, 7.0, 0.0]], &dev)?;
        let grown = threshold_with_regrow(&stepped, &grad2, 3, 0.34)?;
        assert_eq!(grown.to_vec2::<f32>()?, [[5.0, 4.0, 0.0], [0.0, 1.0, 0.0]]);
        // Never more than k non-zeros.
        let all = threshold_with_regrow(&stepped, &grad2, 2, 0.9)?;
        let nz = all
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .filter(|v| **v != 0.0)
            .count();
        assert!(nz <= 2);
        Ok(())
    }
}
