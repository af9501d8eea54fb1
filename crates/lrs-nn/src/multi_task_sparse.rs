//! The inference kernel for a batch that mixes many tasks' sparse parts: one pass over the
//! batch computes every row's `x S_taskᵀ` with its own task's entries, instead of one gather,
//! one sparse product and one scatter per task (30 000 small tensor ops per forward pass for
//! 1 000 tasks in MiniLM). Forward only: [`crate::LrsLinear::forward_tasks`] uses it for
//! inference batches and when nothing in the layer needs a gradient, and the per-task path
//! otherwise.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// One task's entries: the output row and input column of each stored value.
pub(crate) type Entries = (Arc<Vec<u32>>, Arc<Vec<u32>>);

/// `x [rows·tokens, in]`, `values [Σ nnz]` → `[rows·tokens, out]`: row `b` (its `tokens`
/// positions) uses the entries of task `row_task[b]` (`None`: no sparse part).
#[derive(Debug, Clone)]
pub(crate) struct MultiTaskSparse {
    /// Per task: output row and input column of each entry.
    pub entries: Vec<Entries>,
    /// Per task: its first value in the concatenated `values`.
    pub offsets: Vec<usize>,
    /// Per batch row: the task whose entries it uses.
    pub row_task: Vec<Option<usize>>,
    /// Positions per batch row (the product of the middle dimensions).
    pub tokens: usize,
    pub in_dim: usize,
    pub out_dim: usize,
}

impl MultiTaskSparse {
    fn kernel(&self, x: &[f32], values: &[f32]) -> Vec<f32> {
        let lead = x.len() / self.in_dim.max(1);
        let mut y = vec![0f32; lead * self.out_dim];
        y.par_chunks_mut(self.out_dim.max(1))
            .zip(x.par_chunks(self.in_dim.max(1)))
            .enumerate()
            .with_min_len(8)
            .for_each(|(l, (yr, xr))| {
                let Some(Some(t)) = self.row_task.get(l / self.tokens.max(1)) else {
                    return;
                };
                let (rows, cols) = &self.entries[*t];
                let vals = &values[self.offsets[*t]..self.offsets[*t] + rows.len()];
                for ((&r, &c), &v) in rows.iter().zip(cols.iter()).zip(vals) {
                    yr[r as usize] += v * xr[c as usize];
                }
            });
        y
    }
}

impl CustomOp2 for MultiTaskSparse {
    fn name(&self) -> &'static str {
        "lrs-multi-task-sparse"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (lead, in_dim) = l1.shape().dims2()?;
        let total: usize = self.entries.iter().map(|(r, _)| r.len()).sum();
        if in_dim != self.in_dim
            || l2.shape().dims1()? != total
            || lead != self.row_task.len() * self.tokens
        {
            candle_core::bail!(
                "multi-task sparse: shapes {:?}, {:?} do not fit {} rows × {} tokens",
                l1.shape(),
                l2.shape(),
                self.row_task.len(),
                self.tokens
            );
        }
        let (Some((a1, b1)), Some((a2, b2))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("multi-task sparse: inputs must be contiguous");
        };
        match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(v)) => Ok((
                CpuStorage::F32(self.kernel(&x[a1..b1], &v[a2..b2])),
                Shape::from((lead, self.out_dim)),
            )),
            _ => candle_core::bail!("multi-task sparse: f32 on CPU only"),
        }
    }
}

/// Whether [`MultiTaskSparse`] can serve this call: CPU f32 input, and either an inference
/// batch ([`crate::TaskBatch::for_inference`]) or an input that needs no gradient.
pub(crate) fn fusable(x: &Tensor, inference: bool) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && (inference || !x.track_op())
}
