//! Prediction heads on pooled embeddings: classification (logits) or regression (a score).

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};

/// What a head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// `classes` logits, trained with cross-entropy.
    Classification {
        /// Number of classes.
        classes: usize,
    },
    /// One real value, trained with squared error.
    Regression,
}

/// A linear head `[batch, h] → [batch, classes]` or `[batch]`.
#[derive(Debug, Clone)]
pub struct Head {
    linear: Linear,
    kind: HeadKind,
}

impl Head {
    /// Wraps a `weight [n_out, h]`, `bias [n_out]` pair.
    pub fn new(weight: Tensor, bias: Tensor, kind: HeadKind) -> Self {
        Self {
            linear: Linear::new(weight, Some(bias)),
            kind,
        }
    }

    /// The head's kind.
    pub fn kind(&self) -> HeadKind {
        self.kind
    }

    /// The loss of predictions `out` (from [`Module::forward`]) against `targets`
    /// (u32 class ids, or float values for regression).
    pub fn loss(&self, out: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
        match self.kind {
            HeadKind::Classification { .. } => candle_nn::loss::cross_entropy(out, targets),
            HeadKind::Regression => candle_nn::loss::mse(out, &targets.to_dtype(out.dtype())?),
        }
    }
}

impl Module for Head {
    fn forward(&self, pooled: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.linear.forward(pooled)?;
        match self.kind {
            HeadKind::Classification { .. } => Ok(y),
            HeadKind::Regression => y.squeeze(1),
        }
    }
}

/// Creates (or loads) a head under `vb` (e.g. `vb.pp("head")` on the shared var map, so it is
/// saved as `head.weight` / `head.bias`).
pub fn head(hidden: usize, kind: HeadKind, vb: VarBuilder) -> candle_core::Result<Head> {
    let n_out = match kind {
        HeadKind::Classification { classes } => classes,
        HeadKind::Regression => 1,
    };
    let linear = candle_nn::linear(hidden, n_out, vb)?;
    Ok(Head { linear, kind })
}
