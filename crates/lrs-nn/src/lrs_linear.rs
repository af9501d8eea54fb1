//! A frozen linear layer with a shared low-rank path and per-task core scaling + sparse part.
//!
//! ```text
//! y = x W0ᵀ + b0  +  s · ((x V) ⊙ w_task) Uᵀ  +  x S_taskᵀ
//! W0 [out, in], b0 [out]   frozen base (plain tensors, shared by all tasks)
//! U  [out, r],  V [in, r]  shared factor (Vars while the shared phase trains)
//! w  [r]                   per task (ones when core = "shared")
//! S  [out, in]             per task, sparse (top-k), dense only while its task trains
//! ```
//!
//! A task may also carry a per-task LoRA term `+ s_l · (x Aᵀ) Bᵀ` for the layer
//! ([`LoraPart`], the per-task LoRA baseline); it runs per task group, like `S`.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use candle_nn::Module;
//! use lrs_nn::{LowRank, LrsLinear};
//! # fn main() -> candle_core::Result<()> {
//! let dev = Device::Cpu;
//! let seeded = |shape: &[usize], seed| {
//!     lrs_nn::testing::seeded_tensor(shape, 0.0, 1.0, seed).map_err(candle_core::Error::wrap)
//! };
//! let w0 = seeded(&[3, 4], 1)?;
//! let low_rank = LowRank::new(Tensor::zeros((3, 2), candle_core::DType::F32, &dev)?,
//!                             seeded(&[4, 2], 2)?, 0.5);
//! let layer = LrsLinear::new("dense", w0, None, Some(low_rank));
//! let y = layer.forward(&Tensor::ones((5, 4), candle_core::DType::F32, &dev)?)?;
//! assert_eq!(y.dims(), &[5, 3]);
//! # Ok(()) }
//! ```

use candle_core::{CpuStorage, Module, Storage, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::fused::adapted_linear::AdaptedLinear;
use crate::fused::frozen_linear::FrozenLinear;
use crate::layer_delta::{LayerDelta, SparsePart};
use crate::lora_part::LoraPart;
use crate::matmul::matmul_last;
use crate::multi_task_sparse::{self, MultiTaskSparse};
use crate::sparse_apply::contiguous;
use crate::sparse_delta::SparseDelta;
use crate::task_batch::TaskBatch;

/// The shared low-rank factor of one layer: `s · U Vᵀ` (rank `r`).
#[derive(Debug, Clone)]
pub struct LowRank {
    /// `[out, r]`.
    pub u: Tensor,
    /// `[in, r]`.
    pub v: Tensor,
    /// Fixed scale `s` (LoRA's α / r).
    pub scale: f64,
}

impl LowRank {
    /// Wraps the factor's parts.
    pub fn new(u: Tensor, v: Tensor, scale: f64) -> Self {
        Self { u, v, scale }
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.u.dims().get(1).copied().unwrap_or(0)
    }
}

/// A layer's products with an input `x` that stays constant over many passes (a cached
/// state below every trained part, in the task phase): `x W0ᵀ + b0` and, for an adapted layer,
/// `x V`. [`LrsLinear::forward_tasks_from`] then adds only the per-task terms. `U` and `V` are
/// constants there: no gradient reaches them through a projection.
#[derive(Debug, Clone)]
pub struct Projection {
    /// `[.., out]`: `x W0ᵀ + b0`.
    base: Tensor,
    /// `[.., r]`: `x V`, for an adapted layer.
    xv: Option<Tensor>,
}

/// A linear layer `y = x W0ᵀ + b0` plus the optional LRS paths. With no [`LowRank`] and no task
/// delta for its name it computes what [`candle_nn::Linear`] does; on f32 CPU tensors the base
/// product is the fused [`FrozenLinear`] (one 2-D product, no gradient for the frozen `W0`).
#[derive(Debug, Clone)]
pub struct LrsLinear {
    name: String,
    base: candle_nn::Linear,
    /// The base product as one fused op, when `W0` is f32 on the CPU.
    frozen: Option<FrozenLinear>,
    low_rank: Option<LowRank>,
}

impl LrsLinear {
    /// Builds the layer from its parts. `name` is the module name (e.g.
    /// `encoder.layer.3.attention.self.query`) under which task deltas are looked up.
    pub fn new(
        name: impl Into<String>,
        weight: Tensor,
        bias: Option<Tensor>,
        low_rank: Option<LowRank>,
    ) -> Self {
        let frozen = crate::fused::fusable(&weight)
            .then(|| FrozenLinear::new(&weight, bias.as_ref()).ok())
            .flatten();
        Self {
            name: name.into(),
            base: candle_nn::Linear::new(weight, bias),
            frozen,
            low_rank,
        }
    }

    /// The fused base product, when `W0` is f32 on the CPU.
    pub(crate) fn frozen_op(&self) -> Option<&FrozenLinear> {
        self.frozen.as_ref()
    }

    /// Whether this layer computes only `x W0ᵀ + b0` for every row of `tasks`: no shared
    /// factor, and no task in the batch carries a part for it.
    pub(crate) fn is_plain_for(&self, tasks: Option<&TaskBatch>) -> bool {
        self.low_rank.is_none()
            && tasks.is_none_or(|t| {
                t.tasks()
                    .iter()
                    .all(|d| !d.layers.contains_key(&self.name) && !d.lora.contains_key(&self.name))
            })
    }

    /// `x W0ᵀ + b0`: the fused op for f32 CPU inputs, else candle's `Linear`.
    fn base_forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.frozen {
            Some(op) if crate::fused::fusable(x) => op.forward(x),
            _ => self.base.forward(x),
        }
    }

    /// The module name used to find this layer's part of a task delta.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The frozen base weight `W0 [out, in]`.
    pub fn weight(&self) -> &Tensor {
        self.base.weight()
    }

    /// The frozen base bias `b0 [out]`.
    pub fn bias(&self) -> Option<&Tensor> {
        self.base.bias()
    }

    /// The shared factor, if this layer is adapted.
    pub fn low_rank(&self) -> Option<&LowRank> {
        self.low_rank.as_ref()
    }

    /// `(out, in)`.
    pub fn shape(&self) -> candle_core::Result<(usize, usize)> {
        self.base.weight().dims2()
    }

    /// `x W0ᵀ + b0 + s · ((x V) ⊙ w_row) Uᵀ`: one fused op on f32 CPU inputs whose task cores
    /// are not being trained, else candle's ops.
    fn shared_forward(
        &self,
        x: &Tensor,
        lr: &LowRank,
        tasks: &TaskBatch,
        deltas: &[Option<&LayerDelta>],
        cached: Option<&Projection>,
    ) -> candle_core::Result<Tensor> {
        // Inference records no autograd graph: `U`, `V` are training variables, and an op
        // on a variable keeps its inputs alive, so every intermediate of the forward pass
        // would stay resident until its output is dropped. Detaching shares the storage.
        // A cached projection took them as constants.
        let (u, v) = if tasks.is_inference() || cached.is_some() {
            (lr.u.detach(), lr.v.detach())
        } else {
            (lr.u.clone(), lr.v.clone())
        };
        let batch = x.dim(0)?;
        let with_w = deltas.iter().any(|d| d.is_some_and(|d| d.w.is_some()));
        // `[batch, r]`: each row's task core (ones for tasks without one).
        let w_rows = || -> candle_core::Result<Tensor> {
            let ones = Tensor::ones(lr.rank(), x.dtype(), x.device())?;
            let per_task = deltas
                .iter()
                .map(|d| d.and_then(|d| d.w.clone()).unwrap_or_else(|| ones.clone()))
                .collect::<Vec<_>>();
            Tensor::stack(&per_task, 0)?.index_select(tasks.row_task(), 0)
        };
        let trains_w = deltas
            .iter()
            .any(|d| d.and_then(|d| d.w.as_ref()).is_some_and(Tensor::track_op));
        if let (Some(base), true, false, None) =
            (&self.frozen, crate::fused::fusable(x), trains_w, cached)
        {
            let (out_dim, in_dim) = self.shape()?;
            let tokens = x.elem_count() / (batch * in_dim).max(1);
            let scale = if with_w {
                (w_rows()?
                    .reshape((batch, 1, lr.rank()))?
                    .broadcast_as((batch, tokens, lr.rank()))?
                    .reshape((batch * tokens, lr.rank()))?
                    * lr.scale)?
            } else {
                Tensor::full(lr.scale as f32, (batch * tokens, lr.rank()), x.device())?
            };
            let mut shape = x.dims().to_vec();
            if let Some(last) = shape.last_mut() {
                *last = out_dim;
            }
            let x2 = x.contiguous()?.reshape((batch * tokens, in_dim))?;
            return AdaptedLinear::new(base, scale)?
                .forward(&x2, &u, &v)?
                .reshape(shape);
        }
        let (y, xv) = match cached {
            Some(p) => (
                p.base.clone(),
                p.xv.clone().ok_or_else(|| {
                    candle_core::Error::msg(format!("{}: projection lacks x V", self.name))
                })?,
            ),
            None => (self.base_forward(x)?, matmul_last(x, &v)?),
        };
        // Scale the narrow `[.., r]` activations, not the wide output.
        let mut h = (xv * lr.scale)?;
        if with_w {
            // [batch, r] → [batch, 1, .., 1, r] to broadcast over the middle dimensions.
            let mut shape = vec![1usize; h.rank()];
            shape[0] = batch;
            shape[h.rank() - 1] = lr.rank();
            h = h.broadcast_mul(&w_rows()?.reshape(shape)?)?;
        }
        y + matmul_last(&h, &u.t()?)?
    }

    /// Adds `x Sᵀ` of every row with its own task's sparse part to `y`, in one
    /// [`MultiTaskSparse`] pass that reads each task's values where they are stored. `y` is
    /// updated in place when nothing will differentiate through it, else through a temporary.
    fn fused_sparse(
        &self,
        x: &Tensor,
        y: Tensor,
        y_owned: bool,
        tasks: &TaskBatch,
        deltas: &[Option<&LayerDelta>],
    ) -> candle_core::Result<Tensor> {
        let present: Vec<(usize, &SparseDelta)> = deltas
            .iter()
            .enumerate()
            .filter_map(|(g, d)| match d.map(|d| &d.sparse) {
                Some(SparsePart::Sparse(s)) if s.nnz() > 0 => Some((g, s)),
                _ => None,
            })
            .collect();
        if present.is_empty() {
            return Ok(y);
        }
        let guards: Vec<_> = present
            .iter()
            .map(|(_, s)| s.values().storage_and_layout())
            .collect();
        let mut slot = vec![None; deltas.len()];
        let mut parts = Vec::with_capacity(present.len());
        for ((g, s), (storage, layout)) in present.iter().zip(&guards) {
            let Storage::Cpu(CpuStorage::F32(values)) = &**storage else {
                candle_core::bail!("{}: fused sparse values must be f32 on CPU", self.name);
            };
            slot[*g] = Some(parts.len());
            parts.push((s.csr(), contiguous(values, layout, "values")?));
        }
        let (out_dim, in_dim) = self.shape()?;
        let batch = tasks.batch();
        let tokens = x.elem_count() / (batch * in_dim).max(1);
        let row_task = tasks
            .row_task_ids()
            .iter()
            .map(|&g| slot.get(g as usize).copied().flatten())
            .collect();
        let op = MultiTaskSparse {
            tasks: parts,
            row_task,
            tokens,
            in_dim,
            out_dim,
        };
        let x2 = x.contiguous()?.reshape((batch * tokens, in_dim))?;
        if y_owned && (tasks.is_inference() || !y.track_op()) {
            // `y` is this layer's own fresh output: nothing else holds its storage.
            let y = y.contiguous()?;
            y.reshape((batch * tokens, out_dim))?
                .inplace_op2(&x2, &op)?;
            Ok(y)
        } else {
            let delta = Tensor::zeros((batch * tokens, out_dim), y.dtype(), y.device())?;
            delta.inplace_op2(&x2, &op)?;
            let delta = delta.reshape(y.shape())?;
            y + delta
        }
    }

    /// Forward for a batch whose rows belong to (possibly different) tasks; `x` is
    /// `[batch, .., in]` with the batch dimension first.
    ///
    /// The shared path computes `x V` and `(·) Uᵀ` once for the whole batch and only scales
    /// rows by their task's `w` (a gathered `[batch, r]` matrix); the sparse path runs per
    /// task group over the touched columns/rows only, and so does a task's [`LoraPart`]
    /// (`s_l · (x Aᵀ) Bᵀ`, from [`crate::TaskDelta::lora`]).
    pub fn forward_tasks(&self, x: &Tensor, tasks: &TaskBatch) -> candle_core::Result<Tensor> {
        self.forward_tasks_with(x, tasks, None)
    }

    /// This layer's [`Projection`] of `x`, to reuse over passes on the same `x` while the
    /// shared factor stays fixed ([`Self::forward_tasks_from`]).
    pub fn project(&self, x: &Tensor) -> candle_core::Result<Projection> {
        let x = x.detach();
        Ok(Projection {
            base: self.base_forward(&x)?.detach(),
            xv: self
                .low_rank
                .as_ref()
                .map(|lr| matmul_last(&x, &lr.v.detach()))
                .transpose()?,
        })
    }

    /// [`Self::forward_tasks`] of the `x` that `projection` was made from ([`Self::project`],
    /// with the current shared factor): only the per-task terms are computed from `x`.
    /// Gradients reach the task parts, not `U`, `V` or `x`.
    pub fn forward_tasks_from(
        &self,
        x: &Tensor,
        projection: &Projection,
        tasks: &TaskBatch,
    ) -> candle_core::Result<Tensor> {
        let (out_dim, _) = self.shape()?;
        let mut want = x.dims().to_vec();
        if let Some(last) = want.last_mut() {
            *last = out_dim;
        }
        if projection.base.dims() != want.as_slice()
            || projection.xv.is_some() != self.low_rank.is_some()
        {
            candle_core::bail!(
                "{}: a projection of shape {:?} for an input of shape {:?}",
                self.name,
                projection.base.dims(),
                x.dims()
            );
        }
        self.forward_tasks_with(x, tasks, Some(projection))
    }

    fn forward_tasks_with(
        &self,
        x: &Tensor,
        tasks: &TaskBatch,
        cached: Option<&Projection>,
    ) -> candle_core::Result<Tensor> {
        let batch = x.dim(0)?;
        if batch != tasks.batch() {
            candle_core::bail!(
                "{}: input batch {batch} but task batch {}",
                self.name,
                tasks.batch()
            );
        }
        let deltas: Vec<_> = tasks
            .tasks()
            .iter()
            .map(|t| t.layers.get(&self.name))
            .collect();
        let (mut y, y_owned) = match (&self.low_rank, cached) {
            (None, None) => (self.base_forward(x)?, true),
            (None, Some(p)) => (p.base.clone(), false),
            (Some(lr), c) => (self.shared_forward(x, lr, tasks, &deltas, c)?, true),
        };
        // Nothing to differentiate (inference, or a frozen input with stored sparse parts):
        // every group's sparse part in one pass over the batch.
        let inference = tasks.is_inference();
        let fused = multi_task_sparse::fusable(x, inference)
            && deltas.iter().all(|d| match d.map(|d| &d.sparse) {
                None | Some(SparsePart::None) => true,
                Some(SparsePart::Sparse(s)) => {
                    (inference || !s.values().track_op())
                        && s.values().dtype() == x.dtype()
                        && s.values().device().is_cpu()
                }
                Some(SparsePart::Dense(_) | SparsePart::RowScratch(_)) => false,
            });
        if fused {
            y = self.fused_sparse(x, y, y_owned, tasks, &deltas)?;
        }
        // Per-group contributions are scatter-added into `y` once, together: one copy of the
        // wide output per layer rather than one per task.
        let (mut parts, mut part_rows) = (Vec::new(), Vec::new());
        let loras: Vec<Option<&LoraPart>> = tasks
            .tasks()
            .iter()
            .map(|t| t.lora.get(&self.name))
            .collect();
        for ((delta, lora), rows) in deltas.iter().zip(&loras).zip(tasks.groups()) {
            if delta.is_none() && lora.is_none() {
                continue;
            }
            // The group's own terms: `x Sᵀ` plus `s_l · (x Aᵀ) Bᵀ`, whichever it has.
            let contribution = |xg: &Tensor| -> candle_core::Result<Option<Tensor>> {
                let sparse = match delta.map(|d| &d.sparse) {
                    None | Some(SparsePart::None) => None,
                    Some(SparsePart::Sparse(s)) if s.nnz() == 0 || fused => None,
                    Some(SparsePart::Sparse(s)) => Some(s.apply(xg)?),
                    Some(SparsePart::Dense(d)) => Some(matmul_last(xg, &d.t()?)?),
                    Some(SparsePart::RowScratch(d)) => Some(per_row_product(xg, d)?),
                };
                let lora = lora.map(|l| l.apply(xg)).transpose()?;
                match (sparse, lora) {
                    (Some(s), Some(l)) => (s + l).map(Some),
                    (s, l) => Ok(s.or(l)),
                }
            };
            match rows {
                None => {
                    if let Some(c) = contribution(x)? {
                        y = (y + c)?;
                    }
                }
                Some(rows) => {
                    if let Some(c) = contribution(&x.index_select(rows, 0)?)? {
                        parts.push(c);
                        part_rows.push(rows.clone());
                    }
                }
            }
        }
        if !parts.is_empty() {
            y = y.index_add(&Tensor::cat(&part_rows, 0)?, &Tensor::cat(&parts, 0)?, 0)?;
        }
        Ok(y)
    }
}

/// `x [batch, .., in]` with row `b` times its own `d[b]ᵀ` (`d [batch, out, in]`) →
/// `[batch, .., out]`: a [`SparsePart::RowScratch`] applied to a one-task batch.
fn per_row_product(x: &Tensor, d: &Tensor) -> candle_core::Result<Tensor> {
    let (batch, out_dim, in_dim) = d.dims3()?;
    let dims = x.dims();
    if dims.first() != Some(&batch) || dims.last() != Some(&in_dim) {
        candle_core::bail!(
            "a per-row scratch [{batch}, {out_dim}, {in_dim}] takes the whole one-task batch, \
             got an input of shape {dims:?}"
        );
    }
    let tokens = x.elem_count() / (batch * in_dim).max(1);
    let mut out = dims.to_vec();
    if let Some(last) = out.last_mut() {
        *last = out_dim;
    }
    x.contiguous()?
        .reshape((batch, tokens, in_dim))?
        .matmul(&d.transpose(1, 2)?)?
        .reshape(out)
}

impl Module for LrsLinear {
    /// Base plus the shared path with `w = 1` and no sparse part (no task).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.base_forward(x)?;
        match &self.low_rank {
            None => Ok(y),
            Some(lr) => {
                let h = (matmul_last(x, &lr.v)? * lr.scale)?;
                y + matmul_last(&h, &lr.u.t()?)?
            }
        }
    }
}

/// How a new shared factor is created for an adapted layer.
#[derive(Debug, Clone, Copy)]
pub struct LowRankInit {
    /// Rank `r`.
    pub rank: usize,
    /// Scale `s`.
    pub scale: f64,
}

/// Builds an [`LrsLinear`] named by `base.prefix()`: `weight`/`bias` come from the frozen `base`
/// builder; when `shared` is given, `lrs_u` and `lrs_v` come from it under the same prefix,
/// both zero unless the builder holds values: the seeded starting point is drawn once, by
/// [`crate::BertModel::init_shared_factors`], or a shared file is loaded over them.
pub fn lrs_linear(
    in_dim: usize,
    out_dim: usize,
    base: VarBuilder,
    shared: Option<(LowRankInit, VarBuilder)>,
) -> candle_core::Result<LrsLinear> {
    let weight = base.get((out_dim, in_dim), "weight")?;
    let bias = base.get(out_dim, "bias")?;
    let low_rank = match shared {
        None => None,
        Some((init, vb)) => {
            let u = vb.get_with_hints((out_dim, init.rank), "lrs_u", Init::Const(0.0))?;
            let v = vb.get_with_hints((in_dim, init.rank), "lrs_v", Init::Const(0.0))?;
            Some(LowRank::new(u, v, init.scale))
        }
    };
    Ok(LrsLinear::new(base.prefix(), weight, Some(bias), low_rank))
}

#[cfg(test)]
#[path = "lrs_linear_tests.rs"]
mod tests;
