//! One task's parameters for one adapted layer: the core scaling `w` and the sparse part `S`.
//!
//! A per-task LoRA term for the same layer ([`crate::LoraPart`]) sits beside it in
//! [`crate::TaskDelta::lora`], keyed by the same module name.

use candle_core::{Tensor, Var};

use crate::sparse_delta::{hard_threshold, SparseDelta};
use crate::Result;

/// The sparse correction `S_task` of one layer, in one of its two lives.
#[derive(Debug, Clone, Default)]
pub enum SparsePart {
    /// No sparse correction.
    #[default]
    None,
    /// Inference form: top-k entries (what task files store).
    Sparse(SparseDelta),
    /// Training form: a dense `[out, in]` scratch (usually a [`Var`]'s tensor) that exists only
    /// while this task trains; [`LayerDelta::harden`] turns it back into [`SparsePart::Sparse`].
    Dense(Tensor),
    /// Scoring form: a `[batch, out, in]` dense scratch per row of a one-task batch, each
    /// applied to its own row only, so one backward pass gives every row's own gradient
    /// (the per-row logit gradients of the sparse part's Gauss–Newton scores). Never stored.
    RowScratch(Tensor),
}

/// What one task adds to one adapted layer: `s·((x V) ⊙ w) Uᵀ + x Sᵀ`.
#[derive(Debug, Clone, Default)]
pub struct LayerDelta {
    /// `[r]` per-task core scaling; `None` means all ones (`core = "shared"`).
    pub w: Option<Tensor>,
    /// The sparse part.
    pub sparse: SparsePart,
}

impl LayerDelta {
    /// Replaces the sparse part by a dense trainable scratch initialised from it (zeros if none)
    /// and returns the [`Var`] to hand to an optimizer. `shape` is the layer's `(out, in)`.
    pub fn start_dense_scratch(&mut self, shape: (usize, usize), like: &Tensor) -> Result<Var> {
        let var = Var::from_tensor(&self.current_dense(shape, like)?)?;
        self.sparse = SparsePart::Dense(var.as_tensor().clone());
        Ok(var)
    }

    /// Replaces the sparse part by one dense trainable scratch per row of a `rows`-row batch
    /// ([`SparsePart::RowScratch`]), each initialised from the current part (zeros if none),
    /// and returns the [`Var`]. `shape` is the layer's `(out, in)`.
    pub fn start_row_scratch(
        &mut self,
        shape: (usize, usize),
        rows: usize,
        like: &Tensor,
    ) -> Result<Var> {
        let dense = self.current_dense(shape, like)?;
        let var = Var::from_tensor(&dense.unsqueeze(0)?.repeat((rows, 1, 1))?)?;
        self.sparse = SparsePart::RowScratch(var.as_tensor().clone());
        Ok(var)
    }

    /// The sparse part as a detached dense `[out, in]` tensor (a row scratch's first row;
    /// zeros like `like` if there is none).
    fn current_dense(&self, shape: (usize, usize), like: &Tensor) -> Result<Tensor> {
        Ok(match &self.sparse {
            SparsePart::Sparse(s) => s.to_dense()?,
            SparsePart::Dense(d) => d.detach(),
            SparsePart::RowScratch(d) => d.get(0)?.detach(),
            SparsePart::None => Tensor::zeros(shape, like.dtype(), like.device())?,
        })
    }

    /// `H_k`: if the sparse part is a dense scratch, keep its `k` largest magnitudes.
    pub fn harden(&mut self, k: usize) -> Result<()> {
        if let SparsePart::Dense(d) = &self.sparse {
            self.sparse = SparsePart::Sparse(hard_threshold(&d.detach(), k)?);
        }
        Ok(())
    }

    /// Stored non-zeros of the sparse part (a dense scratch counts all its entries).
    pub fn nnz(&self) -> usize {
        match &self.sparse {
            SparsePart::None => 0,
            SparsePart::Sparse(s) => s.nnz(),
            SparsePart::Dense(d) | SparsePart::RowScratch(d) => d.elem_count(),
        }
    }
}
