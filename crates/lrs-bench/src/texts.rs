//! Random input texts made of whole words from a tokenizer's vocabulary.

use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use lrs_serve::error::{Result, ServeError};

/// `n` texts of `words` random whole-word vocabulary entries each (no `##` pieces, no
/// `[SPECIAL]` tokens), seeded.
pub fn random_texts(tokenizer: &Path, n: usize, words: usize, seed: u64) -> Result<Vec<String>> {
    let tok = tokenizers::Tokenizer::from_file(tokenizer).map_err(|e| {
        ServeError::Model(lrs_nn::NnError::Tokenizer(format!(
            "{}: {e}",
            tokenizer.display()
        )))
    })?;
    let mut vocab: Vec<String> = tok
        .get_vocab(false)
        .into_keys()
        .filter(|w| w.len() > 1 && w.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    vocab.sort();
    if vocab.is_empty() {
        return Err(ServeError::Config(format!(
            "{}: no whole words in the vocabulary",
            tokenizer.display()
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    Ok((0..n)
        .map(|_| {
            (0..words)
                .filter_map(|_| vocab.choose(&mut rng).cloned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect())
}
