//! Word + position + token-type embeddings, LayerNorm, dropout.

use candle_core::{ModuleT, Tensor};
use candle_nn::{Dropout, Embedding, Module};

use super::config::BertConfig;
use super::Builder;
use crate::layer_norm::{layer_norm, LayerNorm};

/// BERT input embeddings (frozen).
#[derive(Debug, Clone)]
pub struct BertEmbeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
    dropout: Dropout,
}

impl BertEmbeddings {
    pub(crate) fn load(cfg: &BertConfig, b: &Builder) -> candle_core::Result<Self> {
        let vb = &b.base;
        let h = cfg.hidden_size;
        let emb = |n: usize, name: &str| -> candle_core::Result<Embedding> {
            Ok(Embedding::new(vb.pp(name).get((n, h), "weight")?, h))
        };
        Ok(Self {
            word: emb(cfg.vocab_size, "word_embeddings")?,
            position: emb(cfg.max_position_embeddings, "position_embeddings")?,
            token_type: emb(cfg.type_vocab_size, "token_type_embeddings")?,
            norm: layer_norm(h, cfg.layer_norm_eps, vb.pp("LayerNorm"))?,
            dropout: Dropout::new(cfg.hidden_dropout_prob),
        })
    }

    /// `[batch, seq]` ids and token types → `[batch, seq, h]`.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let (_, seq) = input_ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, input_ids.device())?;
        let x = self
            .word
            .forward(input_ids)?
            .broadcast_add(&self.position.forward(&positions)?)?
            .add(&self.token_type.forward(token_type_ids)?)?;
        self.dropout.forward_t(&self.norm.forward(&x)?, train)
    }
}
