//! The binary scoring head shared by training and serving: the logit of a row of task `i` is
//! `z = h·a + c  +  h·a_i + c_i`, with `h` the mean-pooled embedding, `(a, c)` the shared head
//! (`head.weight [1, h]`, `head.bias [1]` in the shared file) and `(a_i, c_i)` an optional
//! per-task head under the same names in the task file. A missing head contributes zero, so
//! an untrained model predicts `p = ½`.

use candle_core::{DType, Device, Tensor, D};

use crate::files::task_delta::TaskDelta;
use crate::task_batch::TaskBatch;

/// Name of a head's `[1, h]` weight (shared and task files alike).
pub const HEAD_WEIGHT: &str = "head.weight";
/// Name of a head's `[1]` bias.
pub const HEAD_BIAS: &str = "head.bias";

/// A task's head, or zeros when it has none: `([1, h], [1])`.
pub fn task_head(
    task: &TaskDelta,
    hidden: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    match (task.head.get(HEAD_WEIGHT), task.head.get(HEAD_BIAS)) {
        (Some(w), Some(b)) => Ok((w.clone(), b.clone())),
        _ => Ok((
            Tensor::zeros((1, hidden), DType::F32, device)?,
            Tensor::zeros(1, DType::F32, device)?,
        )),
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
