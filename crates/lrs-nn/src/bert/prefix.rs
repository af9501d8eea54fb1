//! Frozen-prefix states. Everything a forward pass computes before the first adapted linear
//! depends only on the frozen base and the input, so a trainer can compute it once per text
//! ([`BertModel::prefix`](super::model::BertModel::prefix)) and run only the rest of the
//! network at every step ([`BertModel::forward_from`](super::model::BertModel::forward_from)).
//! Dropout in the prefix is therefore off.

use std::sync::Arc;

use candle_core::{Tensor, D};

use super::attention::Projections;
use super::encoder::LayerStage;

/// Where a forward pass resumes: inside `layer`, at `stage`; `None` (see
/// [`BertModel::resume_point`](super::model::BertModel::resume_point)) means nothing is
/// adapted and the prefix is the whole encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResumePoint {
    /// Encoder layer index.
    pub layer: usize,
    /// Position inside the layer.
    pub stage: LayerStage,
}

/// The activations at a [`ResumePoint`] for a `[batch, seq]` input.
#[derive(Debug, Clone)]
pub struct PrefixState {
    /// `[batch, seq, h]`: the layer input ([`LayerStage::Attention`], or the final hidden
    /// states when nothing is adapted) or the attention output (the other stages).
    pub hidden: Tensor,
    /// `[batch, seq, i]`: `output.dense`'s input, at [`LayerStage::FfnOutput`] only.
    pub inner: Option<Tensor>,
    /// At a layer input: the layer's attention projections of `hidden`, made with the shared
    /// factors of the time ([`BertModel::with_projections`](super::model::BertModel::with_projections)).
    /// Passes from this state then treat `U`, `V` of those projections as constants; a state
    /// cut or stacked from others has none.
    pub projections: Option<Arc<Projections>>,
}

impl PrefixState {
    /// Rows in the batch.
    pub fn rows(&self) -> candle_core::Result<usize> {
        self.hidden.dim(0)
    }

    /// Row `i`'s state trimmed to its first `len` tokens (`[1, len, ..]`), e.g. to cache one
    /// text's state without the padding of the batch it was computed in.
    pub fn row(&self, i: usize, len: usize) -> candle_core::Result<Self> {
        let cut = |t: &Tensor| t.narrow(0, i, 1)?.narrow(1, 0, len)?.contiguous();
        Ok(Self {
            hidden: cut(&self.hidden)?,
            inner: self.inner.as_ref().map(cut).transpose()?,
            projections: None,
        })
    }

    /// Concatenates single-row states along the batch, zero-padding each to the longest
    /// sequence (padded positions must be masked out by the attention mask, as usual).
    pub fn stack_padded(states: &[&PrefixState]) -> candle_core::Result<Self> {
        let seq = states
            .iter()
            .map(|s| s.hidden.dim(1))
            .collect::<candle_core::Result<Vec<_>>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        let pad = |t: &Tensor| -> candle_core::Result<Tensor> {
            let len = t.dim(1)?;
            if len == seq {
                Ok(t.clone())
            } else {
                t.pad_with_zeros(1, 0, seq - len)
            }
        };
        let hidden = states
            .iter()
            .map(|s| pad(&s.hidden))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let inner = if states.iter().all(|s| s.inner.is_some()) && !states.is_empty() {
            let parts = states
                .iter()
                .filter_map(|s| s.inner.as_ref().map(pad))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Some(Tensor::cat(&parts, 0)?)
        } else if states.iter().any(|s| s.inner.is_some()) {
            candle_core::bail!("cannot stack prefix states taken at different stages");
        } else {
            None
        };
        Ok(Self {
            hidden: Tensor::cat(&hidden, 0)?,
            inner,
            projections: None,
        })
    }

    /// Bytes held by the state's tensors.
    pub fn bytes(&self) -> usize {
        let size = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        size(&self.hidden) + self.inner.as_ref().map_or(0, size)
    }

    /// Width of the last dimension of [`Self::hidden`].
    pub fn hidden_size(&self) -> candle_core::Result<usize> {
        self.hidden.dim(D::Minus1)
    }
}
