//! One encoder layer (attention + GELU feed-forward, `intermediate.dense` / `output.dense`) and
//! the stack of them.

use candle_core::{ModuleT, Tensor};
use candle_nn::Dropout;

use super::attention::{BertAttention, Projections};
use super::config::{BertConfig, HiddenAct};
use super::packing::TokenPacking;
use super::{apply, Builder};
use crate::fused::frozen_ffn::FrozenFfn;
use crate::layer_norm::{layer_norm, LayerNorm};
use crate::lrs_linear::LrsLinear;
use crate::task_batch::TaskBatch;

/// `encoder.layer.N`.
#[derive(Debug, Clone)]
pub struct BertLayer {
    attention: BertAttention,
    intermediate: LrsLinear,
    output: LrsLinear,
    norm: LayerNorm,
    act: HiddenAct,
    dropout: Dropout,
}

impl BertLayer {
    pub(crate) fn load(cfg: &BertConfig, b: &Builder) -> candle_core::Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            attention: BertAttention::load(cfg, &b.pp("attention"))?,
            intermediate: b.pp("intermediate").pp("dense").linear(h, i)?,
            output: b.pp("output").pp("dense").linear(i, h)?,
            norm: layer_norm(h, cfg.layer_norm_eps, b.base.pp("output").pp("LayerNorm"))?,
            act: cfg.hidden_act,
            dropout: Dropout::new(cfg.hidden_dropout_prob),
        })
    }

    /// The linear layers, in checkpoint order.
    pub fn linears(&self) -> Vec<&LrsLinear> {
        let mut v = self.attention.linears().to_vec();
        v.push(&self.intermediate);
        v.push(&self.output);
        v
    }

    /// `[b, s, h]` → `[b, s, h]`. With `packing` (the batch's real tokens), the per-token
    /// blocks after attention run on the real tokens alone when no task adapts them (the
    /// padded positions of the output are then zero).
    /// `projections` ([`Self::projections`] of this `x`) saves recomputing the attention
    /// projections of a constant input.
    pub fn forward_t(
        &self,
        x: &Tensor,
        mask_bias: &Tensor,
        packing: Option<&TokenPacking>,
        projections: Option<&Projections>,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let ctx = self
            .attention
            .context_t(x, mask_bias, projections, tasks, train)?;
        match packing.filter(|_| self.plain_after_attention(tasks)) {
            Some(p) => {
                let a = self
                    .attention
                    .output_t(&p.pack(&ctx)?, &p.pack(x)?, None, train)?;
                p.unpack(&self.forward_from_ffn(&a, None, train)?)
            }
            None => {
                let a = self.attention.output_t(&ctx, x, tasks, train)?;
                self.forward_from_ffn(&a, tasks, train)
            }
        }
    }

    /// The attention [`Projections`] of the layer input `x [b, s, h]`.
    pub fn projections(&self, x: &Tensor) -> candle_core::Result<Projections> {
        self.attention.projections(x)
    }

    /// Whether the blocks after attention compute the same for every row, so they can run on
    /// packed tokens without `tasks`: no task is given, or none of their linears is adapted.
    fn plain_after_attention(&self, tasks: Option<&TaskBatch>) -> bool {
        tasks.is_none()
            || [
                self.attention.output_dense(),
                &self.intermediate,
                &self.output,
            ]
            .iter()
            .all(|l| l.is_plain_for(tasks))
    }

    /// The feed-forward half from the attention output `a` (`[b, s, h]`, the input of
    /// `intermediate.dense` and the residual of `output.dense`).
    pub fn forward_from_ffn(
        &self,
        a: &Tensor,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        if let Some(ffn) = self.frozen_ffn(a, tasks) {
            let out = self.dropout.forward_t(&ffn.forward(a)?, train)?;
            return self.norm.forward_residual(&out, a);
        }
        let inner = self.ffn_inner(a, tasks)?;
        self.forward_from_ffn_output(&inner, a, tasks, train)
    }

    /// The whole feed-forward block as one fused op, when neither of its linears is adapted
    /// for this batch and the input is f32 on the CPU.
    fn frozen_ffn(&self, a: &Tensor, tasks: Option<&TaskBatch>) -> Option<FrozenFfn> {
        let plain = self.act == HiddenAct::Gelu
            && crate::fused::fusable(a)
            && self.intermediate.is_plain_for(tasks)
            && self.output.is_plain_for(tasks);
        match (
            plain,
            self.intermediate.frozen_op(),
            self.output.frozen_op(),
        ) {
            (true, Some(inner), Some(outer)) => Some(FrozenFfn::new(inner, outer)),
            _ => None,
        }
    }

    /// `GELU(intermediate.dense(a))`: `[b, s, i]`, the input of `output.dense`.
    pub fn ffn_inner(&self, a: &Tensor, tasks: Option<&TaskBatch>) -> candle_core::Result<Tensor> {
        let inner = apply(&self.intermediate, a, tasks)?;
        match self.act {
            HiddenAct::Gelu if crate::fused::fusable(&inner) => {
                crate::fused::gelu::FusedGelu::forward(&inner)
            }
            HiddenAct::Gelu => inner.gelu_erf(),
            HiddenAct::GeluNew => inner.gelu(),
            HiddenAct::Relu => inner.relu(),
        }
    }

    /// The rest of the layer from `output.dense`'s input `inner` and the residual `a`.
    pub fn forward_from_ffn_output(
        &self,
        inner: &Tensor,
        a: &Tensor,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let out = self
            .dropout
            .forward_t(&apply(&self.output, inner, tasks)?, train)?;
        self.norm.forward_residual(&out, a)
    }

    /// The attention half: `[b, s, h]` → the attention output `a`.
    pub fn attention_t(
        &self,
        x: &Tensor,
        mask_bias: &Tensor,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        self.attention.forward_t(x, mask_bias, tasks, train)
    }

    /// Where, inside this layer, the first adapted linear sits (`None`: nothing adapted).
    pub fn first_adapted(&self) -> Option<LayerStage> {
        let adapted = |l: &LrsLinear| l.low_rank().is_some();
        if self.attention.linears().into_iter().any(adapted) {
            Some(LayerStage::Attention)
        } else if adapted(&self.intermediate) {
            Some(LayerStage::Ffn)
        } else if adapted(&self.output) {
            Some(LayerStage::FfnOutput)
        } else {
            None
        }
    }
}

/// A point inside an encoder layer where a forward pass can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LayerStage {
    /// The layer input (before `attention.self.{query,key,value}`).
    Attention,
    /// The attention output (before `intermediate.dense`).
    Ffn,
    /// `output.dense`'s input (the GELU activations), with the attention output as residual.
    FfnOutput,
}
