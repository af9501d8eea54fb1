//! The binary scoring head shared by training and serving: the logit of a row of task `i` is
//! `z = h·a + c  +  h·a_i + c_i`, with `h` the mean-pooled embedding, `(a, c)` the shared head
//! (`head.weight [1, h]`, `head.bias [1]` in the shared file) and `(a_i, c_i)` an optional
//! per-task head under the same names in the task file (a task head may be a bias alone: a
//! per-task intercept). A missing head contributes zero, so an untrained model predicts `p = ½`.

use candle_core::{DType, Device, Tensor, D};

use crate::files::task_delta::TaskDelta;
use crate::task_batch::TaskBatch;

/// Name of a head's `[1, h]` weight (shared and task files alike).
pub const HEAD_WEIGHT: &str = "head.weight";
/// Name of a head's `[1]` bias.
pub const HEAD_BIAS: &str = "head.bias";

/// A task's head `([1, h], [1])`: zeros when it has none, a zero weight when it has only a
/// bias (an intercept-only head).
pub fn task_head(
    task: &TaskDelta,
    hidden: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let zero_weight = || Tensor::zeros((1, hidden), DType::F32, device);
    match (task.head.get(HEAD_WEIGHT), task.head.get(HEAD_BIAS)) {
        (Some(w), Some(b)) => Ok((w.clone(), b.clone())),
        (None, Some(b)) => Ok((zero_weight()?.to_dtype(b.dtype())?, b.clone())),
        _ => Ok((zero_weight()?, Tensor::zeros(1, DType::F32, device)?)),
    }
}

/// `[batch]` logits of pooled `[batch, h]` embeddings: the shared head (if any) plus, when
/// `with_task_heads`, each row's task head (gathered through the batch's row → task map).
pub fn binary_logits(
    pooled: &Tensor,
    shared: Option<(&Tensor, &Tensor)>,
    tasks: &TaskBatch,
    with_task_heads: bool,
) -> candle_core::Result<Tensor> {
    let (batch, hidden) = pooled.dims2()?;
    let z = match shared {
        Some((w, b)) => pooled.matmul(&w.t()?)?.squeeze(1)?.broadcast_add(b)?,
        None => Tensor::zeros(batch, pooled.dtype(), pooled.device())?,
    };
    if !with_task_heads {
        return Ok(z);
    }
    let mut ws = Vec::new();
    let mut bs = Vec::new();
    for t in tasks.tasks() {
        let (w, b) = task_head(t, hidden, pooled.device())?;
        ws.push(w.to_dtype(pooled.dtype())?);
        bs.push(b.to_dtype(pooled.dtype())?);
    }
    let w_rows = Tensor::cat(&ws, 0)?.index_select(tasks.row_task(), 0)?;
    let b_rows = Tensor::cat(&bs, 0)?.index_select(tasks.row_task(), 0)?;
    (z + (pooled * w_rows)?.sum(D::Minus1)?)? + b_rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_vec1::<f32>().expect("f32 vector")
    }

    /// Rows of three tasks in one batch: a full head, an intercept alone and no head. Each row
    /// gets the shared logit plus its own task's part, and nothing of the others'.
    #[test]
    fn each_row_adds_its_own_task_head_an_intercept_alone_included() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let pooled = Tensor::new(&[[1f32, 2.0], [3.0, -1.0], [0.5, 0.5], [1.0, 1.0]], &dev)?;
        let shared_w = Tensor::new(&[[0.5f32, -0.25]], &dev)?;
        let shared_b = Tensor::new(&[0.1f32], &dev)?;
        let mut full = TaskDelta::new("full", 2);
        full.head
            .insert(HEAD_WEIGHT.into(), Tensor::new(&[[1f32, 1.0]], &dev)?);
        full.head
            .insert(HEAD_BIAS.into(), Tensor::new(&[-1f32], &dev)?);
        let mut bias = TaskDelta::new("bias", 2);
        bias.head
            .insert(HEAD_BIAS.into(), Tensor::new(&[2f32], &dev)?);
        let none = TaskDelta::new("none", 2);
        let batch = TaskBatch::new(vec![&full, &bias, &none], &[0, 1, 2, 1], &dev)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let shared = values(&binary_logits(
            &pooled,
            Some((&shared_w, &shared_b)),
            &batch,
            false,
        )?);
        let z = values(&binary_logits(
            &pooled,
            Some((&shared_w, &shared_b)),
            &batch,
            true,
        )?);
        let own = [1.0 + 2.0 - 1.0, 2.0, 0.0, 2.0];
        for (row, ((z, s), own)) in z.iter().zip(&shared).zip(own).enumerate() {
            assert!((z - s - own).abs() < 1e-6, "row {row}: {z} = {s} + {own}?");
        }
        Ok(())
    }
}
