//! `config.json` of a Hugging Face BERT checkpoint (the fields this encoder uses).

use std::path::Path;

use serde::Deserialize;

use crate::{NnError, Result};

/// Hidden activation of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// Exact (erf) GELU — HF `"gelu"`.
    Gelu,
    /// Tanh-approximated GELU — HF `"gelu_new"` / `"gelu_pytorch_tanh"`.
    #[serde(alias = "gelu_pytorch_tanh")]
    GeluNew,
    /// ReLU.
    Relu,
}

/// BERT hyper-parameters, as in HF `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size `h`.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads (`h` divisible by it).
    pub num_attention_heads: usize,
    /// Feed-forward inner size.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    #[serde(default = "default_act")]
    pub hidden_act: HiddenAct,
    /// Dropout on hidden states (training only).
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f32,
    /// Dropout on attention probabilities (training only).
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f32,
    /// Positions in the position-embedding table.
    pub max_position_embeddings: usize,
    /// Token types (segments).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn default_act() -> HiddenAct {
    HiddenAct::Gelu
}
fn default_dropout() -> f32 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Reads and checks a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let err = |reason: String| NnError::Config {
            file: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        if let Some(kind) = value
            .get("position_embedding_type")
            .and_then(|v| v.as_str())
        {
            if kind != "absolute" {
                return Err(err(format!(
                    "position_embedding_type {kind:?} is not supported"
                )));
            }
        }
        let cfg: Self = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
        cfg.validate().map_err(err)?;
        Ok(cfg)
    }

    /// Checks internal consistency (head count divides the hidden size, nothing is zero).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.hidden_size.checked_rem(self.num_attention_heads) != Some(0) {
            return Err(format!(
                "hidden_size {} not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(0.0..1.0).contains(&self.hidden_dropout_prob)
            || !(0.0..1.0).contains(&self.attention_probs_dropout_prob)
        {
            return Err("dropout probabilities must be in [0, 1)".into());
        }
        Ok(())
    }
}
