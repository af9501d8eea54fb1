//! Batch tokenization for BERT: pad to the longest row, truncate to a maximum length, return
//! `input_ids`, `attention_mask`, `token_type_ids` as `[batch, seq]` u32 tensors.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::bert::model::BertInput;
use crate::{NnError, Result};

/// A `tokenizer.json` tokenizer configured for batched BERT input.
#[derive(Clone)]
pub struct BertTokenizer {
    inner: Tokenizer,
}

impl std::fmt::Debug for BertTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertTokenizer").finish_non_exhaustive()
    }
}

impl BertTokenizer {
    /// Loads `tokenizer.json`; rows are truncated to `max_len` tokens (special tokens
    /// included) and padded with `[PAD]` to the longest row of each batch.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| NnError::Tokenizer(format!("{}: {e}", path.display())))?;
        let pad_id = inner.token_to_id("[PAD]").unwrap_or(0);
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token: "[PAD]".into(),
            ..PaddingParams::default()
        }));
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| NnError::Tokenizer(e.to_string()))?;
        Ok(Self { inner })
    }

    /// The underlying tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Tokenizes `texts` (with `[CLS]`/`[SEP]`) into one padded batch on `device`.
    pub fn encode_batch(&self, texts: &[&str], device: &Device) -> Result<BertInput> {
        let enc = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| NnError::Tokenizer(e.to_string()))?;
        let batch = enc.len();
        let seq = enc.first().map(|e| e.get_ids().len()).unwrap_or(0);
        let stack = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor> {
            let flat: Vec<u32> = enc.iter().flat_map(|e| f(e).iter().copied()).collect();
            Ok(Tensor::from_vec(flat, (batch, seq), device)?)
        };
        Ok(BertInput {
            input_ids: stack(&|e| e.get_ids())?,
            attention_mask: stack(&|e| e.get_attention_mask())?,
            token_type_ids: stack(&|e| e.get_type_ids())?,
        })
    }
}
