//! MiniLM (all-MiniLM-L6-v2) forward latency, batch 32 × 32 tokens, CPU:
//! base only / base + shared / base + shared + sparse (1 % density of the adapted layers),
//! with one task for the whole batch and with 32 different tasks. Also prints the size of a
//! task file at 1 % density. Needs `scripts/seed-minilm.sh` to have run.
//!
//! glibc's malloc hands the several-MB activation buffers back to the kernel after each op and
//! page-faults them in again, which adds more to a forward pass than the LRS paths themselves
//! (base 0.53 s → 0.33 s single-threaded). For numbers that measure the model, run with
//! `MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000` (or a server built with
//! a caching allocator).

use std::collections::BTreeMap;
use std::hint::black_box;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use lrs_nn::testing::{seed_shared_factors, seeded_tensor};
use lrs_nn::{
    hard_threshold, BertCheckpoint, BertInput, BertModel, LayerDelta, LrsOptions, SparsePart,
    TaskBatch, TaskDelta, TaskProvenance,
};

const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
const RANK: usize = 8;
const DENSITY: f64 = 0.01;

fn checkpoint() -> BertCheckpoint {
    let cache = hf_hub::Cache::from_env().model(MODEL.to_string());
    assert!(
        cache.get("model.safetensors").is_some(),
        "{MODEL} is not in the hf-hub cache; run `scripts/seed-minilm.sh` first"
    );
    BertCheckpoint::from_hub(MODEL, None).expect("cached checkpoint")
}

fn input(dev: &Device) -> BertInput {
    // Ids spread over 1000..29000 by a fixed multiplicative hash: the same batch every run.
    let mut ids: Vec<Vec<u32>> = (0..32u32)
        .map(|r| {
            (0..32u32)
                .map(|c| 1000 + (r * 32 + c).wrapping_mul(2_654_435_761) % 28_000)
                .collect()
        })
        .collect();
    for row in ids.iter_mut() {
        row[0] = 101;
        row[31] = 102;
    }
    BertInput::from_ids(Tensor::new(ids, dev).expect("ids")).expect("input")
}

/// A task with a random `w` and a random top-k `S` (k = 1 % of each adapted layer).
fn task(id: usize, modules: &BTreeMap<String, (usize, usize)>, dev: &Device) -> TaskDelta {
    let mut t = TaskDelta::new(format!("task{id}"), RANK);
    for (name, &(o, i)) in modules {
        let k = ((o * i) as f64 * DENSITY).round() as usize;
        let seed = (id * modules.len()) as u64 + t.layers.len() as u64;
        let dense = seeded_tensor(&[o, i], 0.0, 0.01, 2 * seed)
            .and_then(|d| Ok(d.to_device(dev)?))
            .expect("dense");
        t.layers.insert(
            name.clone(),
            LayerDelta {
                w: Some(
                    seeded_tensor(&[RANK], 1.0, 0.1, 2 * seed + 1)
                        .and_then(|w| Ok(w.to_device(dev)?))
                        .expect("w"),
                ),
                sparse: SparsePart::Sparse(hard_threshold(&dense, k).expect("H_k")),
            },
        );
    }
    t
}

fn report_task_bytes(ckpt: &BertCheckpoint, dev: &Device) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all_linear = LrsOptions::bert_default(RANK);
    all_linear.target_modules.push("attention.self.key".into());
    for (label, opts) in [
        (
            "targets query,value,intermediate.dense,output.dense (5 of 6 linears/layer)",
            LrsOptions::bert_default(RANK),
        ),
        ("all 6 linear layers per encoder layer", all_linear),
    ] {
        let model = BertModel::load(ckpt, Some(&opts), dev, DType::F32).expect("model");
        let modules = model.adapted_modules();
        let params: usize = modules.values().map(|(o, i)| o * i).sum();
        let t = task(0, &modules, dev);
        let prov = TaskProvenance {
            base_sha256: model.base_info().sha256.clone(),
            shared_sha256: "0".repeat(64),
        };
        for dtype in [DType::F16, DType::F32] {
            let p = dir.path().join("t.safetensors");
            t.save(&p, &prov, dtype).expect("save");
            let bytes = std::fs::metadata(&p).expect("stat").len();
            println!(
                "task file, {label}: {params} adapted weights, nnz {} (1 %), r = {RANK}, values {dtype:?}: {bytes} bytes",
                t.nnz()
            );
        }
    }
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let ckpt = checkpoint();
    report_task_bytes(&ckpt, &dev);
    let x = input(&dev);
    let plain = BertModel::load(&ckpt, None, &dev, DType::F32).expect("plain");
    let lrs = BertModel::load(
        &ckpt,
        Some(&LrsOptions::bert_default(RANK)),
        &dev,
        DType::F32,
    )
    .expect("lrs");
    seed_shared_factors(&lrs, 1).expect("factors");
    for (name, var) in lrs
        .shared_vars()
        .expect("vars")
        .data()
        .lock()
        .expect("lock")
        .iter()
    {
        if name.ends_with("lrs_u") {
            var.set(&seeded_tensor(var.dims(), 0.0, 0.01, 9).expect("u"))
                .expect("set");
        }
    }
    let modules = lrs.adapted_modules();
    let tasks: Vec<TaskDelta> = (0..32).map(|i| task(i, &modules, &dev)).collect();
    let shared_only: Vec<TaskDelta> = tasks
        .iter()
        .map(|t| {
            let mut s = t.clone();
            s.layers
                .values_mut()
                .for_each(|l| l.sparse = SparsePart::None);
            s
        })
        .collect();
    let single = TaskBatch::single(&tasks[0], 32, &dev).expect("batch");
    let rows: Vec<&TaskDelta> = tasks.iter().collect();
    let mixed = TaskBatch::per_row(&rows, &dev).expect("batch");
    let rows_w: Vec<&TaskDelta> = shared_only.iter().collect();
    let mixed_w = TaskBatch::per_row(&rows_w, &dev).expect("batch");

    let mut g = c.benchmark_group("minilm_forward_b32_s32");
    g.sample_size(10);
    g.bench_function("base_only", |b| {
        b.iter(|| black_box(plain.forward_t(&x, None, false).expect("fwd")))
    });
    g.bench_function("base+shared", |b| {
        b.iter(|| black_box(lrs.forward_t(&x, None, false).expect("fwd")))
    });
    g.bench_function("base+shared+w_32_tasks", |b| {
        b.iter(|| black_box(lrs.forward_t(&x, Some(&mixed_w), false).expect("fwd")))
    });
    g.bench_function("base+shared+sparse_1pct_1_task", |b| {
        b.iter(|| black_box(lrs.forward_t(&x, Some(&single), false).expect("fwd")))
    });
    g.bench_function("base+shared+sparse_1pct_32_tasks", |b| {
        b.iter(|| black_box(lrs.forward_t(&x, Some(&mixed), false).expect("fwd")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
