//! One encoder layer (attention + GELU feed-forward, `intermediate.dense` / `output.dense`) and
//! the stack of them.

use candle_core::{ModuleT, Tensor};
use candle_nn::{Dropout, Module};

use super::attention::BertAttention;
use super::config::{BertConfig, HiddenAct};
use super::{apply, Builder};
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

    /// `[b, s, h]` → `[b, s, h]`.
    pub fn forward_t(
        &self,
        x: &Tensor,
        mask_bias: &Tensor,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let a = self.attention.forward_t(x, mask_bias, tasks, train)?;
        let inner = apply(&self.intermediate, &a, tasks)?;
        let inner = match self.act {
            HiddenAct::Gelu => inner.gelu_erf()?,
            HiddenAct::GeluNew => inner.gelu()?,
            HiddenAct::Relu => inner.relu()?,
        };
        let out = self
            .dropout
            .forward_t(&apply(&self.output, &inner, tasks)?, train)?;
        self.norm.forward(&(out + a)?)
    }
}
