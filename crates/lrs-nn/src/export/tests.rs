use candle_core::{DType, Device, Tensor};

use super::*;
use crate::layer_delta::{LayerDelta, SparsePart};
use crate::lora_part::LoraPart;
use crate::sparse_delta::hard_threshold;
use crate::testing::{seeded_tensor, tiny_config, write_seeded_checkpoint_prefixed};
use crate::FileError;
use crate::{BertCheckpoint, BertInput, BertModel, LrsOptions, TaskBatch};
use std::path::Path;

/// A seeded tiny LRS model (rank 3, scale 0.5, `U` drawn from seed 11), its shared factor and
/// a task with a core and a 10-entry sparse part on every adapted module (seeded per module).
fn setup(prefix: &str) -> (tempfile::TempDir, BertModel, SharedFactor, TaskDelta) {
    let dir = tempfile::tempdir().unwrap();
    write_seeded_checkpoint_prefixed(dir.path(), &tiny_config(), 3, prefix).unwrap();
    let ckpt = BertCheckpoint::from_dir(dir.path()).unwrap();
    let opts = LrsOptions {
        scale: 0.5,
        ..LrsOptions::bert_default(3)
    };
    let model = BertModel::load(&ckpt, Some(&opts), &Device::Cpu, DType::F32).unwrap();
    crate::testing::seed_shared_factors(&model, 7).unwrap();
    let data = model.shared_vars().unwrap().data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().filter(|n| n.ends_with("lrs_u")).collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let var = &data[name];
        var.set(&seeded_tensor(var.dims(), 0.0, 0.3, 11 + i as u64).unwrap())
            .unwrap();
    }
    drop(data);
    let shared = model.shared_factor(None).unwrap();
    let mut task = TaskDelta::new("t", 3);
    for (j, (name, (o, i))) in model.adapted_modules().into_iter().enumerate() {
        let seed = 100 + 2 * j as u64;
        let s = hard_threshold(&seeded_tensor(&[o, i], 0.0, 0.5, seed).unwrap(), 10).unwrap();
        let w = seeded_tensor(&[3], 1.0, 0.5, seed + 1).unwrap();
        task.layers.insert(
            name,
            LayerDelta {
                w: Some(w),
                sparse: SparsePart::Sparse(s),
            },
        );
    }
    (dir, model, shared, task)
}

#[test]
fn merged_task_loads_as_a_plain_bert_with_the_same_outputs() {
    for prefix in ["", "bert."] {
        let (dir, model, shared, task) = setup(prefix);
        let out = tempfile::tempdir().unwrap();
        let base = dir.path().join("model.safetensors");
        export_merged(
            &base,
            &shared,
            Some(&task),
            &out.path().join("model.safetensors"),
        )
        .unwrap();
        std::fs::copy(
            dir.path().join("config.json"),
            out.path().join("config.json"),
        )
        .unwrap();
        let keys = |p: &Path| {
            let b = std::fs::read(p).unwrap();
            let mut k: Vec<String> = safetensors::SafeTensors::deserialize(&b)
                .unwrap()
                .names()
                .into_iter()
                .map(String::from)
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&base), keys(&out.path().join("model.safetensors")));
        let plain = BertModel::load(
            &BertCheckpoint::from_dir(out.path()).unwrap(),
            None,
            &Device::Cpu,
            DType::F32,
        )
        .unwrap();
        let ids = Tensor::new(&[[1u32, 7, 9, 30, 2], [1, 50, 60, 2, 0]], &Device::Cpu).unwrap();
        let input = BertInput::from_ids(ids).unwrap();
        let want = model
            .forward_t(
                &input,
                Some(&TaskBatch::single(&task, 2, &Device::Cpu).unwrap()),
                false,
            )
            .unwrap();
        let got = plain.forward_t(&input, None, false).unwrap();
        let diff: f32 = (want - got)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff <= 1e-5, "prefix {prefix:?}: {diff}");
    }
}

#[test]
fn merged_export_refuses_another_base() {
    let (_dir, _, shared, task) = setup("");
    let other = tempfile::tempdir().unwrap();
    write_seeded_checkpoint_prefixed(other.path(), &tiny_config(), 4, "").unwrap();
    let err = export_merged(
        &other.path().join("model.safetensors"),
        &shared,
        Some(&task),
        &other.path().join("m.safetensors"),
    )
    .unwrap_err();
    assert!(
        matches!(err, NnError::File(FileError::HashMismatch { .. })),
        "{err}"
    );
}

#[test]
fn peft_adapter_holds_v_transpose_and_scaled_u() {
    let (_dir, _, shared, _) = setup("");
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("adapter");
    let (_, adapter) = export_peft_dir(&shared, None, &ExportExtras::default(), &out).unwrap();
    assert_eq!(adapter.dropped_nnz, 0);
    let t = candle_core::safetensors::load(out.join("adapter_model.safetensors"), &Device::Cpu)
        .unwrap();
    assert_eq!(t.len(), 2 * shared.layers.len());
    for (m, lr) in &shared.layers {
        let a = &t[&format!("base_model.model.{m}.lora_A.weight")];
        let b = &t[&format!("base_model.model.{m}.lora_B.weight")];
        let da: f32 = (a - lr.v.t().unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        let db: f32 = (b - (&lr.u * 0.5).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!((da, db), (0.0, 0.0), "{m}");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 3);
    assert_eq!(cfg["lora_alpha"], 3);
    // Every adapted module by its full name (2 layers × 4 targets, `output.dense` twice).
    assert_eq!(cfg["target_modules"].as_array().unwrap().len(), 10);
    assert_eq!(cfg["rank_pattern"], serde_json::json!({}));
    assert!(cfg["base_model_name_or_path"].as_str().is_some());
}

#[test]
fn merged_export_folds_in_per_task_lora_parts() {
    let (dir, model, shared, mut task) = setup("bert.");
    // LoRA on half the modules (alone on one, beside w and S on the others), varying ranks.
    let modules = model.adapted_modules();
    for (i, (name, (o, n))) in modules.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let r_l = 1 + i % 3;
        let seed = 200 + 2 * i as u64;
        let lora = LoraPart::from_alpha(
            seeded_tensor(&[r_l, *n], 0.0, 0.3, seed).unwrap(),
            seeded_tensor(&[*o, r_l], 0.0, 0.3, seed + 1).unwrap(),
            8.0,
        );
        if i == 0 {
            task.layers.remove(name);
        }
        task.lora.insert(name.clone(), lora);
    }
    assert!(task.lora_params() > 0);
    let out = tempfile::tempdir().unwrap();
    export_merged(
        &dir.path().join("model.safetensors"),
        &shared,
        Some(&task),
        &out.path().join("model.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("config.json"),
        out.path().join("config.json"),
    )
    .unwrap();
    let plain = BertModel::load(
        &BertCheckpoint::from_dir(out.path()).unwrap(),
        None,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let ids = Tensor::new(&[[1u32, 7, 9, 30, 2], [1, 50, 60, 2, 0]], &Device::Cpu).unwrap();
    let input = BertInput::from_ids(ids).unwrap();
    let want = model
        .forward_t(
            &input,
            Some(&TaskBatch::single(&task, 2, &Device::Cpu).unwrap()),
            false,
        )
        .unwrap();
    let without_lora = TaskDelta {
        lora: Default::default(),
        ..task.clone()
    };
    let other = model
        .forward_t(
            &input,
            Some(&TaskBatch::single(&without_lora, 2, &Device::Cpu).unwrap()),
            false,
        )
        .unwrap();
    let got = plain.forward_t(&input, None, false).unwrap();
    let diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert!(diff(&want, &got) <= 1e-5, "{}", diff(&want, &got));
    // The LoRA parts matter: without them the outputs differ.
    assert!(diff(&want, &other) > 1e-3, "{}", diff(&want, &other));

    // A LoRA part on a module the shared factor does not adapt is refused.
    let mut stray = task.clone();
    let lora = stray.lora.values().next().unwrap().clone();
    stray.lora.insert("pooler.dense".into(), lora);
    let err = export_merged(
        &dir.path().join("model.safetensors"),
        &shared,
        Some(&stray),
        &out.path().join("m2.safetensors"),
    )
    .unwrap_err();
    assert!(matches!(err, NnError::Invalid(_)), "{err}");
}

/// The exported head is the shared head plus the task's: a full task head adds both parts, an
/// intercept alone adds its bias; with no shared head an intercept alone exports a zero weight
/// of the model's width.
#[test]
fn combined_head_adds_a_task_intercept_alone() {
    let (_dir, model, mut shared, task) = setup("");
    let hidden = model.config().hidden_size;
    let t = |v: &[f32], shape: &[usize]| Tensor::from_slice(v, shape, &Device::Cpu).unwrap();
    let vec = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let w: Vec<f32> = (0..hidden).map(|i| i as f32 / 10.0).collect();
    shared.head.insert(HEAD_WEIGHT.into(), t(&w, &[1, hidden]));
    shared.head.insert(HEAD_BIAS.into(), t(&[0.5], &[1]));

    let mut full = task.clone();
    full.head
        .insert(HEAD_WEIGHT.into(), t(&vec![1.0; hidden], &[1, hidden]));
    full.head.insert(HEAD_BIAS.into(), t(&[-2.0], &[1]));
    let (cw, cb) = combined_head(&shared, Some(&full), hidden)
        .unwrap()
        .unwrap();
    let plus_one: Vec<f32> = w.iter().map(|v| v + 1.0).collect();
    assert_eq!((vec(&cw), vec(&cb)), (plus_one, vec![-1.5]));

    let mut intercept = task.clone();
    intercept.head.insert(HEAD_BIAS.into(), t(&[-2.0], &[1]));
    let (cw, cb) = combined_head(&shared, Some(&intercept), hidden)
        .unwrap()
        .unwrap();
    assert_eq!((vec(&cw), vec(&cb)), (w.clone(), vec![-1.5]));

    let (cw, cb) = combined_head(&shared, Some(&task), hidden)
        .unwrap()
        .unwrap();
    assert_eq!(
        (vec(&cw), vec(&cb)),
        (w, vec![0.5]),
        "no task head: the shared one"
    );

    shared.head.clear();
    let (cw, cb) = combined_head(&shared, Some(&intercept), hidden)
        .unwrap()
        .unwrap();
    assert_eq!((vec(&cw), vec(&cb)), (vec![0.0; hidden], vec![-2.0]));
    assert!(combined_head(&shared, Some(&task), hidden)
        .unwrap()
        .is_none());
}
