//! `lrs inspect` on a shared and a task file made with a tiny BERT.

use std::process::Command;

use candle_core::{DType, Device};
use lrs_nn::{
    hard_threshold, BertCheckpoint, BertModel, LayerDelta, LrsOptions, SparsePart, TaskDelta,
    TaskProvenance,
};

fn inspect(path: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_lrs"))
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A tiny seeded BERT with rank-4 adapters, its checkpoint written under `root/base`.
fn tiny_model(root: &std::path::Path) -> BertModel {
    std::fs::create_dir(root.join("base")).unwrap();
    lrs_nn::testing::write_seeded_checkpoint(
        &root.join("base"),
        &lrs_nn::testing::tiny_config(),
        1,
    )
    .unwrap();
    let ckpt = BertCheckpoint::from_dir(&root.join("base")).unwrap();
    BertModel::load(
        &ckpt,
        Some(&LrsOptions::bert_default(4)),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap()
}

#[test]
fn inspect_reports_format_nnz_and_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let model = tiny_model(root);
    let mut shared = model.shared_factor(None).unwrap();
    let shared_sha = shared.save(&root.join("shared.safetensors")).unwrap();
    let mut task = TaskDelta::new("alice", 4);
    let (name, (o, n)) = model.adapted_modules().into_iter().next().unwrap();
    let dense = lrs_nn::testing::seeded_tensor(&[o, n], 0.0, 1.0, 2).unwrap();
    task.layers.insert(
        name,
        LayerDelta {
            w: None,
            sparse: SparsePart::Sparse(hard_threshold(&dense, 9).unwrap()),
        },
    );
    let provenance = TaskProvenance {
        base_sha256: model.base_info().sha256.clone(),
        shared_sha256: shared_sha.clone(),
    };
    task.save(&root.join("alice.safetensors"), &provenance, DType::F16)
        .unwrap();

    let s = inspect(&root.join("shared.safetensors"));
    assert_eq!(s["format"], "lrs-shared");
    let t = inspect(&root.join("alice.safetensors"));
    assert_eq!(t["format"], "lrs-task");
    assert_eq!(t["nnz"], 9);
    let text = t.to_string();
    assert!(
        text.contains(&shared_sha),
        "task summary should carry the shared file's sha256: {text}"
    );

    let bad = root.join("bad.safetensors");
    std::fs::write(&bad, b"garbage").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lrs"))
        .arg("inspect")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn inspect_shows_the_privacy_guarantee_of_a_private_shared_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let model = tiny_model(root);
    let g = lrs_privacy::Accountant::Rdp
        .guarantee(1.1, 0.05, 300, 1e-5, 0.5)
        .unwrap();
    let mut shared = model
        .shared_factor(Some(serde_json::to_value(&g).unwrap()))
        .unwrap();
    let path = root.join("shared.safetensors");
    shared.save(&path).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lrs"))
        .arg("inspect")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("({}, 0.00001)-DP per user", g.epsilon)),
        "{text}"
    );
    assert!(
        text.contains("σ = 1.1, q = 0.05, 300 steps, clip 0.5"),
        "{text}"
    );
}
