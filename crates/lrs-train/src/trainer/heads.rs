//! Binary classification heads on pooled embeddings and the logistic loss.
//!
//! The logit of a row of task `i` is `z = h·a + c  +  h·a_i + c_i`: a shared head `(a, c)`
//! (`head.weight [1, h]`, `head.bias [1]` in the shared var map, so the shared file stores it)
//! plus an optional per-task head `(a_i, c_i)` under the same names in the task's
//! [`TaskDelta::head`]. Both start at zero, so an untrained model predicts `p = ½`.

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarMap;
use lrs_nn::{TaskBatch, TaskDelta};

use super::error::{Result, TrainError};

/// Name of a head's `[1, h]` weight (shared var map and task files alike).
pub const HEAD_WEIGHT: &str = "head.weight";
/// Name of a head's `[1]` bias.
pub const HEAD_BIAS: &str = "head.bias";

/// Creates (zeros) or finds the shared head's vars in `vars`.
pub fn shared_head(vars: &VarMap, hidden: usize, device: &Device) -> Result<(Var, Var)> {
    let w = vars.get(
        (1, hidden),
        HEAD_WEIGHT,
        candle_nn::Init::Const(0.0),
        DType::F32,
        device,
    )?;
    let b = vars.get(
        1,
        HEAD_BIAS,
        candle_nn::Init::Const(0.0),
        DType::F32,
        device,
    )?;
    let data = vars.data().lock().map_err(|_| TrainError::Model {
        reason: "shared var map poisoned".into(),
    })?;
    match (data.get(HEAD_WEIGHT), data.get(HEAD_BIAS)) {
        (Some(wv), Some(bv)) if wv.as_tensor().id() == w.id() && bv.as_tensor().id() == b.id() => {
            Ok((wv.clone(), bv.clone()))
        }
        _ => Err(TrainError::Model {
            reason: "shared head vars missing after creation".into(),
        }),
    }
}

/// A task's head, or zeros when it has none: `([1, h], [1])`.
pub fn task_head(task: &TaskDelta, hidden: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    match (task.head.get(HEAD_WEIGHT), task.head.get(HEAD_BIAS)) {
        (Some(w), Some(b)) => Ok((w.clone(), b.clone())),
        _ => Ok((
            Tensor::zeros((1, hidden), DType::F32, device)?,
            Tensor::zeros(1, DType::F32, device)?,
        )),
    }
}

/// `[batch]` logits of pooled `[batch, h]` embeddings: the shared head plus, per row, its
/// task's head (gathered through the batch's row → task map).
pub fn logits(
    pooled: &Tensor,
    shared: (&Tensor, &Tensor),
    tasks: &TaskBatch,
    with_task_heads: bool,
) -> Result<Tensor> {
    let (_, hidden) = pooled.dims2()?;
    let z = pooled
        .matmul(&shared.0.t()?)?
        .squeeze(1)?
        .broadcast_add(shared.1)?;
    if !with_task_heads {
        return Ok(z);
    }
    let mut ws = Vec::new();
    let mut bs = Vec::new();
    for t in tasks.tasks() {
        let (w, b) = task_head(t, hidden, pooled.device())?;
        ws.push(w);
        bs.push(b);
    }
    let w_rows = Tensor::cat(&ws, 0)?.index_select(tasks.row_task(), 0)?;
    let b_rows = Tensor::cat(&bs, 0)?.index_select(tasks.row_task(), 0)?;
    Ok(((z + (pooled * w_rows)?.sum(D::Minus1)?)? + b_rows)?)
}

/// Mean logistic loss `softplus(z) − y·z`, computed stably as
/// `max(z, 0) + log(1 + e^{−|z|}) − y·z`.
pub fn logistic_loss(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let softplus = (logits.relu()? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok((softplus - (logits * targets)?)?.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_loss_matches_the_formula_and_is_stable() -> Result<()> {
        let dev = Device::Cpu;
        let z = Tensor::new(&[0f32, 2.0, -3.0, 100.0], &dev)?;
        let y = Tensor::new(&[1f32, 0.0, 0.0, 1.0], &dev)?;
        let got = logistic_loss(&z, &y)?.to_scalar::<f32>()?;
        let sp = |z: f64| (1.0 + z.exp()).ln();
        let want = (sp(0.0) + sp(2.0) + sp(-3.0) + 0.0) / 4.0;
        assert!((f64::from(got) - want).abs() < 1e-6, "{got} vs {want}");
        Ok(())
    }
}
