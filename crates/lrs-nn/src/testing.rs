//! Tiny random BERT checkpoints for tests, examples and benchmarks (no download needed).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::bert::config::BertConfig;
use crate::{NnError, Result};

/// A small BERT config: hidden 32, 2 layers, 4 heads, FFN 64, vocab 100, 32 positions.
pub fn tiny_config() -> BertConfig {
    BertConfig {
        vocab_size: 100,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 64,
        hidden_act: crate::bert::config::HiddenAct::Gelu,
        hidden_dropout_prob: 0.1,
        attention_probs_dropout_prob: 0.1,
        max_position_embeddings: 32,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
    }
}

/// Random weights under HF BERT names (no prefix) for `cfg`: N(0, 0.2²) everywhere, LayerNorm
/// scales around 1, from a ChaCha20 stream keyed by `seed`: the same weights every time (f32,
/// CPU).
pub fn seeded_weights(cfg: &BertConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let normal = rand_distr::Normal::new(0f32, 0.2).map_err(|e| NnError::Invalid(e.to_string()))?;
    weights_from(cfg, |shape| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| normal.sample(&mut rng)).collect();
        Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
    })
}

/// A `shape` tensor of N(`mean`, `std`²) draws from a ChaCha20 stream keyed by `seed` (f32,
/// CPU): the same values every time, for test inputs candle's unseedable RNG cannot give.
pub fn seeded_tensor(shape: &[usize], mean: f32, std: f32, seed: u64) -> Result<Tensor> {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let normal = rand_distr::Normal::new(mean, std).map_err(|e| NnError::Invalid(e.to_string()))?;
    let v: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| normal.sample(&mut rng))
        .collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// Every BERT weight of `cfg`, each `draw(shape)` (zero-centred) plus its centre.
fn weights_from(
    cfg: &BertConfig,
    mut draw: impl FnMut(&[usize]) -> Result<Tensor>,
) -> Result<HashMap<String, Tensor>> {
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let mut w = HashMap::new();
    let mut put = |name: String, shape: &[usize], center: f64| -> Result<()> {
        let t = (draw(shape)? + center)?;
        w.insert(name, t);
        Ok(())
    };
    put(
        "embeddings.word_embeddings.weight".into(),
        &[cfg.vocab_size, h],
        0.0,
    )?;
    put(
        "embeddings.position_embeddings.weight".into(),
        &[cfg.max_position_embeddings, h],
        0.0,
    )?;
    put(
        "embeddings.token_type_embeddings.weight".into(),
        &[cfg.type_vocab_size, h],
        0.0,
    )?;
    put("embeddings.LayerNorm.weight".into(), &[h], 1.0)?;
    put("embeddings.LayerNorm.bias".into(), &[h], 0.0)?;
    for l in 0..cfg.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        for (m, o, n) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            put(format!("{p}.{m}.weight"), &[o, n], 0.0)?;
            put(format!("{p}.{m}.bias"), &[o], 0.0)?;
        }
        for m in ["attention.output.LayerNorm", "output.LayerNorm"] {
            put(format!("{p}.{m}.weight"), &[h], 1.0)?;
            put(format!("{p}.{m}.bias"), &[h], 0.0)?;
        }
    }
    Ok(w)
}

/// Writes `config.json` and `model.safetensors` for `cfg` with [`seeded_weights`] into `dir`: the
/// same checkpoint for the same seed.
pub fn write_seeded_checkpoint(dir: &Path, cfg: &BertConfig, seed: u64) -> Result<()> {
    write_weights(dir, cfg, "", seeded_weights(cfg, seed)?)
}

/// [`write_seeded_checkpoint`] with every key prefixed by `key_prefix` (e.g. `"bert."`).
pub fn write_seeded_checkpoint_prefixed(
    dir: &Path,
    cfg: &BertConfig,
    seed: u64,
    key_prefix: &str,
) -> Result<()> {
    write_weights(dir, cfg, key_prefix, seeded_weights(cfg, seed)?)
}

fn write_weights(
    dir: &Path,
    cfg: &BertConfig,
    key_prefix: &str,
    weights: HashMap<String, Tensor>,
) -> Result<()> {
    let weights: HashMap<String, Tensor> = weights
        .into_iter()
        .map(|(k, v)| (format!("{key_prefix}{k}"), v))
        .collect();
    candle_core::safetensors::save(&weights, dir.join("model.safetensors"))?;
    let config = serde_json::json!({
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": cfg.hidden_dropout_prob,
        "attention_probs_dropout_prob": cfg.attention_probs_dropout_prob,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": cfg.type_vocab_size,
        "layer_norm_eps": cfg.layer_norm_eps,
        "position_embedding_type": "absolute",
    });
    std::fs::write(dir.join("config.json"), config.to_string()).map_err(|e| NnError::Config {
        file: dir.join("config.json"),
        reason: e.to_string(),
    })
}

/// Draws `model`'s shared factors from a ChaCha20 stream of `seed`
/// ([`crate::BertModel::init_shared_factors`]: `V` uniform, `U = 0`), as a trainer does.
pub fn seed_shared_factors(model: &crate::BertModel, seed: u64) -> Result<()> {
    use rand::SeedableRng;
    model.init_shared_factors(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}
