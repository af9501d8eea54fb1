//! [`TextEncoder`]: texts → token ids, refusing (never truncating) inputs over the token limit.
//!
//! `lrs_nn::BertTokenizer` truncates silently and pads per call, which suits training; a
//! server must instead tell the client its input was too long, and pads only once requests
//! from many clients meet in a batch. So padding and truncation are off here.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{Result, ServeError};

/// A `tokenizer.json` tokenizer with a per-input token limit.
#[derive(Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    max_tokens: usize,
    pad_id: u32,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder")
            .field("max_tokens", &self.max_tokens)
            .field("pad_id", &self.pad_id)
            .finish_non_exhaustive()
    }
}

impl TextEncoder {
    /// Loads `tokenizer.json`; inputs of more than `max_tokens` tokens (special tokens
    /// included) are refused.
    pub fn from_file(path: &Path, max_tokens: usize) -> Result<Self> {
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| {
            ServeError::Model(lrs_nn::NnError::Tokenizer(format!(
                "{}: {e}",
                path.display()
            )))
        })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| ServeError::Model(lrs_nn::NnError::Tokenizer(e.to_string())))?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        Ok(Self {
            tokenizer,
            max_tokens,
            pad_id,
        })
    }

    /// The same tokenizer with another token limit.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// The token limit.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Id of `[PAD]` (0 if the vocabulary has none).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Token ids of each text, with `[CLS]`/`[SEP]`.
    pub fn encode(&self, texts: &[String]) -> Result<Vec<Vec<u32>>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(refs, true)
            .map_err(|e| ServeError::InvalidRequest(format!("tokenizer: {e}")))?;
        encodings
            .into_iter()
            .enumerate()
            .map(|(index, e)| {
                let ids = e.get_ids();
                if ids.len() > self.max_tokens {
                    return Err(ServeError::InputTooLong {
                        index,
                        tokens: ids.len(),
                        max: self.max_tokens,
                    });
                }
                Ok(ids.to_vec())
            })
            .collect()
    }
}
