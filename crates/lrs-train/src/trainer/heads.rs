//! Binary classification heads on pooled embeddings and the logistic loss.
//!
//! The logit of a row of task `i` is `z = h·a + c  +  h·a_i + c_i`: a shared head `(a, c)`
//! (`head.weight [1, h]`, `head.bias [1]` in the shared var map, so the shared file stores it)
//! plus an optional per-task head `(a_i, c_i)` under the same names in the task's
//! `TaskDelta::head`. Both start at zero, so an untrained model predicts `p = ½`.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use lrs_nn::bert::binary_head::binary_logits;
use lrs_nn::{TaskBatch, TaskDelta};

use super::config::TrainConfig;
use super::error::{Result, TrainError};

pub use lrs_nn::bert::binary_head::{task_head, HEAD_BIAS, HEAD_WEIGHT};

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

/// The per-task head tensors a task trains under `config`, by name, from its current head
/// (zeros where it has none): none without a task head, else the weight and the bias, or the
/// bias alone with `[task] head_weight = false`.
pub(super) fn task_head_parts(
    task: &TaskDelta,
    config: &TrainConfig,
    hidden: usize,
    device: &Device,
) -> Result<Vec<(&'static str, Tensor)>> {
    if !config.task_heads() {
        return Ok(Vec::new());
    }
    let (w, b) = task_head(task, hidden, device)?;
    Ok(match config.task.head_weight {
        true => vec![(HEAD_WEIGHT, w), (HEAD_BIAS, b)],
        false => vec![(HEAD_BIAS, b)],
    })
}

/// `[batch]` logits of pooled `[batch, h]` embeddings ([`lrs_nn::bert::binary_head`]).
pub fn logits(
    pooled: &Tensor,
    shared: (&Tensor, &Tensor),
    tasks: &TaskBatch,
    with_task_heads: bool,
) -> Result<Tensor> {
    Ok(binary_logits(pooled, Some(shared), tasks, with_task_heads)?)
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
