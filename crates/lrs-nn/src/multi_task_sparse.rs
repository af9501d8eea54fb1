//! The inference kernel for a batch that mixes many tasks' sparse parts: one in-place pass over
//! the batch adds every row's `x S_taskᵀ` with its own task's entries into the layer output,
//! instead of one gather, one sparse product and one scatter per task (30 000 small tensor ops
//! per forward pass for 1 000 tasks in MiniLM). Each batch row is one [`Csr`] block (its tokens
//! transposed, one vectorized `axpy` per stored entry); the tasks' values are read where they
//! are stored, never concatenated, and no output-sized temporary is allocated.
//!
//! Forward only: [`crate::LrsLinear::forward_tasks`] uses it for inference batches and when
//! nothing in the layer needs a gradient, and the per-task path otherwise.

use candle_core::{CpuStorage, InplaceOp2, Layout, Tensor};
use rayon::prelude::*;

use crate::csr::{Csr, Scratch};
use crate::sparse_apply::contiguous;

/// `y [rows·tokens, out] += x [rows·tokens, in] S_{task(row)}ᵀ`, in place in `y`.
#[derive(Debug)]
pub(crate) struct MultiTaskSparse<'a> {
    /// Per task: its positions and `[nnz]` f32 values.
    pub tasks: Vec<(&'a Csr, &'a [f32])>,
    /// Per batch row: the task whose entries it uses (`None`: no sparse part).
    pub row_task: Vec<Option<usize>>,
    /// Positions per batch row (the product of the middle dimensions).
    pub tokens: usize,
    pub in_dim: usize,
    pub out_dim: usize,
}

impl MultiTaskSparse<'_> {
    fn kernel(&self, x: &[f32], y: &mut [f32]) {
        let tokens = self.tokens.max(1);
        y.par_chunks_mut((tokens * self.out_dim).max(1))
            .zip(x.par_chunks((tokens * self.in_dim).max(1)))
            .zip(self.row_task.par_iter())
            .for_each_init(Scratch::default, |scratch, ((yb, xb), task)| {
                if let Some((csr, values)) = task.and_then(|t| self.tasks.get(t)) {
                    csr.gather_block(xb, values, yb, scratch);
                }
            });
    }
}

impl InplaceOp2 for MultiTaskSparse<'_> {
    fn name(&self) -> &'static str {
        "lrs-multi-task-sparse"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (lead, out_dim) = l1.shape().dims2()?;
        let (lead_x, in_dim) = l2.shape().dims2()?;
        let rows = lead / self.tokens.max(1);
        if out_dim != self.out_dim
            || in_dim != self.in_dim
            || lead != lead_x
            || rows != self.row_task.len()
            || rows * self.tokens != lead
            || self.tasks.iter().any(|(c, v)| c.nnz() != v.len())
        {
            candle_core::bail!(
                "multi-task sparse: shapes {:?}, {:?} do not fit {} rows × {} tokens",
                l1.shape(),
                l2.shape(),
                self.row_task.len(),
                self.tokens
            );
        }
        let Some((a, b)) = l1.contiguous_offsets() else {
            candle_core::bail!("multi-task sparse: the output must be contiguous");
        };
        match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(x)) => {
                self.kernel(contiguous(x, l2, "x")?, &mut y[a..b]);
                Ok(())
            }
            _ => candle_core::bail!("multi-task sparse: f32 on CPU only"),
        }
    }
}

/// Whether [`MultiTaskSparse`] can serve this call: CPU f32 input, and either an inference
/// batch ([`crate::TaskBatch::for_inference`]) or an input that needs no gradient.
pub(crate) fn fusable(x: &Tensor, inference: bool) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && (inference || !x.track_op())
}
