//! Writes the committed seed corpus, `fuzz/seeds/<target>/`: valid files of each format (mode
//! byte 0, raw) written by the crates' own writers against the fuzz targets' fixed hashes, and
//! a few pseudo-random inputs for the structured modes (mode byte 1) and the HTTP target.
//!
//! `cargo +nightly run --manifest-path fuzz/Cargo.toml --bin gen_seeds -- fuzz/seeds`

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use lrs_core::data_file::{write_instance, write_params};
use lrs_core::linalg::mat_from_row_major;
use lrs_core::problem::{Instance, LrsParams, TaskData};
use lrs_fuzz::tiny::{tiny, RANK};
use lrs_nn::{hard_threshold, LayerDelta, LoraPart, SparsePart, TaskDelta, TaskProvenance};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Deterministic values in [-1, 1) from a counter.
fn wave(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2000) as f32) / 1000.0 - 1.0)
        .collect()
}

/// xorshift bytes for the structured seeds.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn put(dir: &Path, name: &str, mode: u8, body: &[u8]) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let mut bytes = vec![mode];
    bytes.extend_from_slice(body);
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn structured_seeds(dir: &Path, count: u64) -> Res<()> {
    for i in 0..count {
        put(
            dir,
            &format!("structured-{i}"),
            1,
            &noise(64 + 96 * i as usize, i + 1),
        )?;
    }
    Ok(())
}

fn task_seeds(dir: &Path, tmp: &Path) -> Res<()> {
    let t = tiny();
    let provenance = TaskProvenance {
        base_sha256: lrs_fuzz::base_sha256(),
        shared_sha256: lrs_fuzz::shared_sha256(),
    };
    let modules: Vec<(String, (usize, usize))> = t.task_check.modules.clone().into_iter().collect();
    let mut sparse = TaskDelta::new("alice", RANK);
    for (k, (name, (o, i))) in modules.iter().enumerate() {
        let dense = Tensor::from_vec(wave(o * i, k), (*o, *i), &Device::Cpu)?;
        let w = (k % 2 == 0).then(|| Tensor::from_vec(wave(RANK, k + 50), RANK, &Device::Cpu));
        sparse.layers.insert(
            name.clone(),
            LayerDelta {
                w: w.transpose()?,
                sparse: SparsePart::Sparse(hard_threshold(&dense, 3 + k)?),
            },
        );
    }
    let mut headed = sparse.clone();
    headed.head.insert(
        "head.weight".into(),
        Tensor::from_vec(wave(32, 9), (1, 32), &Device::Cpu)?,
    );
    headed
        .head
        .insert("head.bias".into(), Tensor::new(&[0.5f32], &Device::Cpu)?);
    let mut lora = TaskDelta::new("bob", RANK);
    for (k, (name, (o, i))) in modules.iter().take(2).enumerate() {
        let a = Tensor::from_vec(wave(2 * i, k), (2, *i), &Device::Cpu)?;
        let b = Tensor::from_vec(wave(o * 2, k + 1), (*o, 2), &Device::Cpu)?;
        lora.lora
            .insert(name.clone(), LoraPart::from_alpha(a, b, 8.0));
    }
    let empty = TaskDelta::new("empty", RANK);
    for (name, task, dtype) in [
        ("sparse-f32", &sparse, DType::F32),
        ("sparse-f16", &sparse, DType::F16),
        ("head-bf16", &headed, DType::BF16),
        ("lora-f32", &lora, DType::F32),
        ("empty", &empty, DType::F32),
    ] {
        let p = tmp.join(format!("{name}.safetensors"));
        task.save(&p, &provenance, dtype)?;
        put(dir, name, 0, &std::fs::read(&p)?)?;
    }
    structured_seeds(dir, 6)
}

fn shared_seeds(dir: &Path, tmp: &Path) -> Res<()> {
    let t = tiny();
    let mut shared = t.shared.clone();
    shared.base_sha256 = lrs_fuzz::base_sha256();
    for lr in shared.layers.values_mut() {
        let (o, r) = lr.u.dims2()?;
        lr.u = Tensor::from_vec(wave(o * r, o), (o, r), &Device::Cpu)?;
    }
    let p = tmp.join("shared.safetensors");
    shared.save(&p)?;
    put(dir, "plain", 0, &std::fs::read(&p)?)?;
    shared.dp = Some(serde_json::json!({"epsilon": 8.0, "delta": 1e-5}));
    shared.head.insert(
        "head.weight".into(),
        Tensor::from_vec(wave(32, 3), (1, 32), &Device::Cpu)?,
    );
    shared
        .head
        .insert("head.bias".into(), Tensor::new(&[0.1f32], &Device::Cpu)?);
    shared.save(&p)?;
    put(dir, "head-dp", 0, &std::fs::read(&p)?)?;
    structured_seeds(dir, 6)
}

fn linear_seeds(dir: &Path, tmp: &Path) -> Res<()> {
    let (t, m, d, r) = (2, 3, 4, 2);
    let f = |n: usize, s: usize| wave(n, s).into_iter().map(f64::from).collect::<Vec<_>>();
    let train = TaskData::new(t, m, d, f(t * m * d, 1), f(t * m, 2))?;
    let test = TaskData::new(t, 2, d, f(t * 2 * d, 3), f(t * 2, 4))?;
    let truth = LrsParams {
        u: mat_from_row_major(&f(d * r, 5), d, r),
        w: f(t * r, 6),
        b: f(t * d, 7),
    };
    let meta = HashMap::from([("seed".to_string(), "1".to_string())]);
    let p = tmp.join("data.safetensors");
    let full = Instance {
        train: train.clone(),
        test: Some(test),
        truth: Some(truth.clone()),
    };
    write_instance(&p, &full, meta.clone())?;
    put(dir, "data-full", 0, &std::fs::read(&p)?)?;
    let bare = Instance {
        train,
        test: None,
        truth: None,
    };
    write_instance(&p, &bare, meta.clone())?;
    put(dir, "data-bare", 0, &std::fs::read(&p)?)?;
    write_params(&p, &truth, meta)?;
    put(dir, "model", 0, &std::fs::read(&p)?)?;
    structured_seeds(dir, 6)
}

fn http_seeds(dir: &Path) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..12u64 {
        std::fs::write(
            dir.join(format!("noise-{i}")),
            noise(32 + 48 * i as usize, 100 + i),
        )?;
    }
    Ok(())
}

fn main() -> Res<()> {
    let root: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "seeds".into());
    let tmp = tempfile::tempdir()?;
    task_seeds(&root.join("task_file"), tmp.path())?;
    shared_seeds(&root.join("shared_file"), tmp.path())?;
    linear_seeds(&root.join("linear_data"), tmp.path())?;
    http_seeds(&root.join("http_request"))?;
    println!("seeds written under {}", root.display());
    Ok(())
}
