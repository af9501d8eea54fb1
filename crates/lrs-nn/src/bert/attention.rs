//! Multi-head self-attention (`attention.self.{query,key,value}`) and its output block
//! (`attention.output.{dense,LayerNorm}`).

use candle_core::{ModuleT, Tensor, D};
use candle_nn::Dropout;

use super::config::BertConfig;
use super::{apply, Builder};
use crate::fused::attention::Attention;
use crate::layer_norm::{layer_norm, LayerNorm};
use crate::lrs_linear::{LrsLinear, Projection};
use crate::task_batch::TaskBatch;

/// An attention block's [`Projection`]s of one input: what [`BertAttention::context_t`]
/// reuses over passes on a constant input.
#[derive(Debug, Clone)]
pub struct Projections {
    query: Projection,
    key: Projection,
    value: Projection,
}

/// `attention.*` of one encoder layer.
#[derive(Debug, Clone)]
pub struct BertAttention {
    query: LrsLinear,
    key: LrsLinear,
    value: LrsLinear,
    output: LrsLinear,
    norm: LayerNorm,
    heads: usize,
    probs_dropout_p: f32,
    probs_dropout: Dropout,
    hidden_dropout: Dropout,
}

impl BertAttention {
    pub(crate) fn load(cfg: &BertConfig, b: &Builder) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let s = b.pp("self");
        let o = b.pp("output");
        Ok(Self {
            query: s.pp("query").linear(h, h)?,
            key: s.pp("key").linear(h, h)?,
            value: s.pp("value").linear(h, h)?,
            output: o.pp("dense").linear(h, h)?,
            norm: layer_norm(h, cfg.layer_norm_eps, o.base.pp("LayerNorm"))?,
            heads: cfg.num_attention_heads,
            probs_dropout_p: cfg.attention_probs_dropout_prob,
            probs_dropout: Dropout::new(cfg.attention_probs_dropout_prob),
            hidden_dropout: Dropout::new(cfg.hidden_dropout_prob),
        })
    }

    /// The linear layers, in checkpoint order.
    pub fn linears(&self) -> [&LrsLinear; 4] {
        [&self.query, &self.key, &self.value, &self.output]
    }

    /// `x [b, s, h]`, `mask_bias [b, 1, 1, s]` (0 or −10000) → `[b, s, h]`.
    pub fn forward_t(
        &self,
        x: &Tensor,
        mask_bias: &Tensor,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let ctx = self.context_t(x, mask_bias, None, tasks, train)?;
        self.output_t(&ctx, x, tasks, train)
    }

    /// The attention context `softmax(q kᵀ / √d + mask) v` of `x [b, s, h]`: `[b, s, h]`, the
    /// input of `attention.output.dense`. `projections` ([`Self::projections`] of this `x`)
    /// saves the products with `x` when there are tasks.
    pub fn context_t(
        &self,
        x: &Tensor,
        mask_bias: &Tensor,
        projections: Option<&Projections>,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let project = |l: &LrsLinear, p: Option<&Projection>| match (p, tasks) {
            (Some(p), Some(t)) => l.forward_tasks_from(x, p, t),
            _ => apply(l, x, tasks),
        };
        let q = project(&self.query, projections.map(|p| &p.query))?;
        let k = project(&self.key, projections.map(|p| &p.key))?;
        let v = project(&self.value, projections.map(|p| &p.value))?;
        if crate::fused::fusable(x) && !(train && self.probs_dropout_p > 0.0) {
            let d = x.dim(D::Minus1)? / self.heads;
            Attention::new(self.heads, 1.0 / (d as f64).sqrt(), mask_bias)?.forward(&q, &k, &v)
        } else {
            self.composite_context(&q, &k, &v, mask_bias, train)
        }
    }

    /// The output block `LN(dense(ctx) + x)`: per token, so `ctx` and the residual `x` may be
    /// `[b, s, h]` or packed `[tokens, h]` ([`super::packing::TokenPacking`]).
    pub fn output_t(
        &self,
        ctx: &Tensor,
        x: &Tensor,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let out = self
            .hidden_dropout
            .forward_t(&apply(&self.output, ctx, tasks)?, train)?;
        self.norm.forward_residual(&out, x)
    }

    /// The query, key and value [`Projection`]s of `x [b, s, h]` (shared factors as they are
    /// now, taken as constants).
    pub fn projections(&self, x: &Tensor) -> candle_core::Result<Projections> {
        Ok(Projections {
            query: self.query.project(x)?,
            key: self.key.project(x)?,
            value: self.value.project(x)?,
        })
    }

    /// `attention.output.dense`.
    pub fn output_dense(&self) -> &LrsLinear {
        &self.output
    }

    /// `softmax(q kᵀ / √d + mask) v` from candle's ops (any dtype and device, and dropout on
    /// the probabilities): `q, k, v [b, s, h]` → `[b, s, h]`.
    fn composite_context(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask_bias: &Tensor,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let (b, s, h) = q.dims3()?;
        let d = h / self.heads;
        let split = |t: &Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, self.heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(q)?, split(k)?, split(v)?);
        let scores =
            (q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?.broadcast_add(mask_bias)?;
        // `ops::softmax` (not the fused `softmax_last_dim`) so gradients flow.
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let probs = self.probs_dropout.forward_t(&probs, train)?;
        probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, h))
    }
}
