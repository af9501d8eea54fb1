//! End to end on the real all-MiniLM-L6-v2 from the (seeded) hf-hub cache: our mean-pooled,
//! normalised embeddings match an independent NumPy forward pass
//! (`scripts/reference/minilm_reference.py` → `tests/fixtures/minilm_reference.json`) to 1e-4,
//! and the LRS model with zero adapters is bit-identical to the plain one.

use candle_core::{DType, Device, Tensor};
use lrs_nn::bert::model::normalize_l2;
use lrs_nn::{BertCheckpoint, BertModel, BertTokenizer, LrsOptions, Pooling, TaskBatch, TaskDelta};

const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

#[derive(serde::Deserialize)]
struct Reference {
    sentences: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f64>>,
}

/// Resolves the checkpoint from the hf-hub cache only; never downloads, never skips.
fn checkpoint() -> BertCheckpoint {
    let cache = hf_hub::Cache::from_env().model(MODEL.to_string());
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(
            cache.get(file).is_some(),
            "{MODEL}/{file} is not in the hf-hub cache ({}); run `scripts/seed-minilm.sh` first",
            hf_hub::Cache::from_env().path().display()
        );
    }
    BertCheckpoint::from_hub(MODEL, None).expect("cached checkpoint resolves")
}

#[test]
fn minilm_embeddings_match_numpy_reference_and_zero_adapters_are_exact() {
    let reference: Reference =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let ckpt = checkpoint();
    assert!(ckpt.source.starts_with(MODEL));
    let dev = Device::Cpu;
    let tokenizer = BertTokenizer::from_file(ckpt.tokenizer.as_ref().unwrap(), 256).unwrap();
    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let input = tokenizer.encode_batch(&texts, &dev).unwrap();
    let ids: Vec<Vec<u32>> = input.input_ids.to_vec2().unwrap();
    let mask: Vec<Vec<u32>> = input.attention_mask.to_vec2().unwrap();
    for (i, want) in reference.input_ids.iter().enumerate() {
        let n = mask[i].iter().sum::<u32>() as usize;
        assert_eq!(&ids[i][..n], want.as_slice(), "token ids of sentence {i}");
    }

    let plain = BertModel::load(&ckpt, None, &dev, DType::F32).unwrap();
    let emb = normalize_l2(&plain.embed(&input, None, Pooling::Mean).unwrap()).unwrap();
    let got: Vec<Vec<f32>> = emb.to_vec2().unwrap();
    let mut worst = 0f64;
    for (g, w) in got.iter().zip(&reference.embeddings) {
        assert_eq!(g.len(), 384);
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((f64::from(*a) - b).abs());
        }
    }
    eprintln!("max abs deviation from the NumPy reference: {worst:.2e}");
    assert!(
        worst <= 1e-4,
        "max abs deviation from the NumPy reference: {worst}"
    );

    let lrs = BertModel::load(&ckpt, Some(&LrsOptions::bert_default(8)), &dev, DType::F32).unwrap();
    assert_eq!(lrs.adapted_modules().len(), 6 * 5);
    let empty = TaskDelta::new("nobody", 8);
    let batch = TaskBatch::single(&empty, texts.len(), &dev).unwrap();
    // Real tokens only: the plain model runs its blocks after attention on packed tokens and
    // leaves padded positions at zero; the adapted one (every FFN adapted) cannot pack.
    let mask = input
        .attention_mask
        .to_dtype(DType::F32)
        .unwrap()
        .unsqueeze(2)
        .unwrap();
    let flat = |t: Tensor| {
        t.broadcast_mul(&mask)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let want = flat(plain.forward_t(&input, None, false).unwrap());
    assert_eq!(want, flat(lrs.forward_t(&input, None, false).unwrap()));
    assert_eq!(
        want,
        flat(lrs.forward_t(&input, Some(&batch), false).unwrap())
    );
}
