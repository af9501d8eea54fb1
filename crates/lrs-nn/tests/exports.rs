//! Export formats on a seeded tiny model: the merged Hugging Face directory (files, key names,
//! outputs of the plain model it loads as, the exported head), the PEFT adapter (PEFT's key
//! names and config fields, and PEFT's arithmetic on them reproducing the task), and the PEFT
//! import back to a shared factor. Every tensor is seeded; outputs are compared at 1e-5.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use lrs_nn::bert::binary_head::binary_logits;
use lrs_nn::bert::model::pool;
use lrs_nn::export::{
    combined_head, export_merged_dir, export_peft_dir, shared_from_peft, ExportExtras,
};
use lrs_nn::testing::{seeded_tensor, tiny_config, write_seeded_checkpoint};
use lrs_nn::{
    hard_threshold, BertCheckpoint, BertInput, BertModel, LayerDelta, LoraPart, LrsOptions,
    SharedFactor, SparsePart, TaskBatch, TaskDelta,
};

const RANK: usize = 3;

struct Fixture {
    dir: tempfile::TempDir,
    model: BertModel,
    shared: SharedFactor,
}

/// A seeded tiny checkpoint directory (with tokenizer and sentence-transformers files and a
/// stale `pytorch_model.bin` an export must not copy), an LRS model on it with seeded `U`
/// (scale 0.5) and its shared factor with a seeded head.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    write_seeded_checkpoint(p, &tiny_config(), 21).unwrap();
    std::fs::write(p.join("tokenizer.json"), b"{\"tok\": 1}").unwrap();
    std::fs::write(p.join("vocab.txt"), b"[PAD]\n").unwrap();
    std::fs::write(p.join("pytorch_model.bin"), b"stale").unwrap();
    std::fs::write(
        p.join("modules.json"),
        br#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]"#,
    )
    .unwrap();
    std::fs::create_dir(p.join("1_Pooling")).unwrap();
    std::fs::write(
        p.join("1_Pooling/config.json"),
        br#"{"pooling_mode_mean_tokens": true}"#,
    )
    .unwrap();
    std::fs::write(
        p.join("sentence_bert_config.json"),
        br#"{"max_seq_length": 32}"#,
    )
    .unwrap();
    let ckpt = BertCheckpoint::from_dir(p).unwrap();
    let opts = LrsOptions {
        scale: 0.5,
        ..LrsOptions::bert_default(RANK)
    };
    let model = BertModel::load(&ckpt, Some(&opts), &Device::Cpu, DType::F32).unwrap();
    lrs_nn::testing::seed_shared_factors(&model, 7).unwrap();
    let mut shared = model.shared_factor(None).unwrap();
    for (i, lr) in shared.layers.values_mut().enumerate() {
        lr.u = seeded_tensor(lr.u.dims(), 0.0, 0.3, 40 + i as u64).unwrap();
    }
    model.set_shared(&shared).unwrap();
    let h = tiny_config().hidden_size;
    shared.head.insert(
        "head.weight".into(),
        seeded_tensor(&[1, h], 0.0, 0.5, 5).unwrap(),
    );
    shared.head.insert(
        "head.bias".into(),
        Tensor::new(&[0.25f32], &Device::Cpu).unwrap(),
    );
    Fixture { dir, model, shared }
}

/// A task with a seeded core on every module, LoRA parts (ranks 1–3, α = 4) on every other
/// module, a head, and a 6-entry sparse part per module when `sparse`.
fn task(model: &BertModel, sparse: bool) -> TaskDelta {
    let mut task = TaskDelta::new("alice", RANK);
    let h = tiny_config().hidden_size;
    for (j, (name, (o, i))) in model.adapted_modules().into_iter().enumerate() {
        let seed = 300 + 4 * j as u64;
        let sparse_part = if sparse {
            SparsePart::Sparse(
                hard_threshold(&seeded_tensor(&[o, i], 0.0, 0.5, seed).unwrap(), 6).unwrap(),
            )
        } else {
            SparsePart::None
        };
        task.layers.insert(
            name.clone(),
            LayerDelta {
                w: Some(seeded_tensor(&[RANK], 1.0, 0.5, seed + 1).unwrap()),
                sparse: sparse_part,
            },
        );
        if j % 2 == 0 {
            let r_l = 1 + j % 3;
            task.lora.insert(
                name,
                LoraPart::from_alpha(
                    seeded_tensor(&[r_l, i], 0.0, 0.3, seed + 2).unwrap(),
                    seeded_tensor(&[o, r_l], 0.0, 0.3, seed + 3).unwrap(),
                    4.0,
                ),
            );
        }
    }
    task.head.insert(
        "head.weight".into(),
        seeded_tensor(&[1, h], 0.0, 0.5, 9).unwrap(),
    );
    task.head.insert(
        "head.bias".into(),
        Tensor::new(&[-0.5f32], &Device::Cpu).unwrap(),
    );
    task
}

fn input() -> BertInput {
    let ids = Tensor::new(&[[1u32, 7, 9, 30, 2], [1, 50, 60, 2, 0]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1], [1, 1, 1, 1, 0]], &Device::Cpu).unwrap();
    BertInput {
        token_type_ids: ids.zeros_like().unwrap(),
        attention_mask: mask,
        input_ids: ids,
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Last hidden states of the LRS model for `task` (`None`: the empty task).
/// `hidden` with its padded positions zeroed: what a padded position holds is not part of a
/// model's output (a plain model leaves it zero, an adapted one does not compute it apart).
fn real_tokens(hidden: Tensor) -> Tensor {
    let mask = input()
        .attention_mask
        .to_dtype(DType::F32)
        .unwrap()
        .unsqueeze(2)
        .unwrap();
    hidden.broadcast_mul(&mask).unwrap()
}

fn lrs_hidden(model: &BertModel, task: Option<&TaskDelta>) -> Tensor {
    let empty = TaskDelta::new("", RANK);
    let batch = TaskBatch::single(task.unwrap_or(&empty), 2, &Device::Cpu).unwrap();
    real_tokens(model.forward_t(&input(), Some(&batch), false).unwrap())
}

fn plain_hidden(dir: &Path) -> Tensor {
    let ckpt = BertCheckpoint::from_dir(dir).unwrap();
    let plain = BertModel::load(&ckpt, None, &Device::Cpu, DType::F32).unwrap();
    real_tokens(plain.forward_t(&input(), None, false).unwrap())
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn merged_dir_is_a_complete_plain_bert_with_the_task_outputs_and_head() {
    let f = fixture();
    let task = task(&f.model, true);
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("merged");
    let ckpt = BertCheckpoint::from_dir(f.dir.path()).unwrap();
    let extras = ExportExtras {
        head: combined_head(&f.shared, Some(&task), f.model.config().hidden_size).unwrap(),
        provenance: serde_json::json!({"kind": "merged"}),
    };
    export_merged_dir(&ckpt, &f.shared, Some(&task), &extras, &out).unwrap();
    assert_eq!(
        names(&out),
        [
            "1_Pooling",
            "config.json",
            "head.safetensors",
            "lrs_export.json",
            "model.safetensors",
            "modules.json",
            "sentence_bert_config.json",
            "tokenizer.json",
            "vocab.txt"
        ]
    );
    assert_eq!(names(root.path()), ["merged"], "no staging directory left");
    for file in ["config.json", "tokenizer.json", "1_Pooling/config.json"] {
        assert_eq!(
            std::fs::read(out.join(file)).unwrap(),
            std::fs::read(f.dir.path().join(file)).unwrap(),
            "{file}"
        );
    }
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
    assert_eq!(
        keys(&out.join("model.safetensors")),
        keys(&f.dir.path().join("model.safetensors"))
    );
    let want = lrs_hidden(&f.model, Some(&task));
    let got = plain_hidden(&out);
    let d = max_diff(&want, &got);
    assert!(d <= 1e-5, "hidden states differ by {d}");
    // The LoRA parts matter at this tolerance.
    let mut without = task.clone();
    without.lora.clear();
    assert!(max_diff(&lrs_hidden(&f.model, Some(&without)), &got) > 1e-3);

    // The exported head scores as the serving head does.
    let heads = candle_core::safetensors::load(out.join("head.safetensors"), &Device::Cpu).unwrap();
    let pooled = pool(&got, &input().attention_mask, lrs_nn::Pooling::Mean).unwrap();
    let exported = pooled
        .matmul(&heads["weight"].t().unwrap())
        .unwrap()
        .squeeze(1)
        .unwrap()
        .broadcast_add(&heads["bias"])
        .unwrap();
    let batch = TaskBatch::single(&task, 2, &Device::Cpu).unwrap();
    let shared_head = (&f.shared.head["head.weight"], &f.shared.head["head.bias"]);
    let want_pooled = pool(&want, &input().attention_mask, lrs_nn::Pooling::Mean).unwrap();
    let serving = binary_logits(&want_pooled, Some(shared_head), &batch, true).unwrap();
    let d = max_diff(&exported, &serving);
    assert!(d <= 1e-5, "head logits differ by {d}");

    // An existing output directory is refused and left as it was.
    let err = export_merged_dir(&ckpt, &f.shared, Some(&task), &extras, &out).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(names(root.path()), ["merged"]);
}

/// Applies a PEFT LoRA adapter directory to `base` the way PEFT does, read from its files alone:
/// `W += (alpha_m / r_m) · lora_B lora_A` with `r_m`, `alpha_m` from `rank_pattern` /
/// `alpha_pattern` (exact module names) or `r` / `lora_alpha`.
fn apply_peft(base: &Path, adapter: &Path, out: &Path) {
    let cfg = json(&adapter.join("adapter_config.json"));
    let t = candle_core::safetensors::load(adapter.join("adapter_model.safetensors"), &Device::Cpu)
        .unwrap();
    let mut w =
        candle_core::safetensors::load(base.join("model.safetensors"), &Device::Cpu).unwrap();
    let targets: Vec<String> = serde_json::from_value(cfg["target_modules"].clone()).unwrap();
    for m in targets {
        let a = &t[&format!("base_model.model.{m}.lora_A.weight")];
        let b = &t[&format!("base_model.model.{m}.lora_B.weight")];
        let r = cfg["rank_pattern"][&m]
            .as_f64()
            .unwrap_or(cfg["r"].as_f64().unwrap());
        let alpha = cfg["alpha_pattern"][&m]
            .as_f64()
            .unwrap_or(cfg["lora_alpha"].as_f64().unwrap());
        assert_eq!(a.dim(0).unwrap() as f64, r, "{m}: lora_A rows = its rank");
        let key = format!("{m}.weight");
        let delta = (b.matmul(a).unwrap() * (alpha / r)).unwrap();
        let merged = (&w[&key] + delta).unwrap();
        w.insert(key, merged);
    }
    std::fs::create_dir_all(out).unwrap();
    candle_core::safetensors::save(&w, out.join("model.safetensors")).unwrap();
    std::fs::copy(base.join("config.json"), out.join("config.json")).unwrap();
}

#[test]
fn peft_task_adapter_has_peft_names_and_reproduces_the_task_under_peft_arithmetic() {
    let f = fixture();
    let task = task(&f.model, false);
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("adapter");
    let (_, adapter) =
        export_peft_dir(&f.shared, Some(&task), &ExportExtras::default(), &out).unwrap();
    assert_eq!(adapter.dropped_nnz, 0);
    assert_eq!(
        names(&out),
        [
            "adapter_config.json",
            "adapter_model.safetensors",
            "lrs_export.json"
        ]
    );
    let cfg = json(&out.join("adapter_config.json"));
    for (k, v) in [
        ("peft_type", serde_json::json!("LORA")),
        ("task_type", serde_json::json!("FEATURE_EXTRACTION")),
        ("r", serde_json::json!(RANK)),
        ("lora_alpha", serde_json::json!(RANK)),
        ("fan_in_fan_out", serde_json::json!(false)),
        ("bias", serde_json::json!("none")),
        ("use_rslora", serde_json::json!(false)),
        ("inference_mode", serde_json::json!(true)),
    ] {
        assert_eq!(cfg[k], v, "{k}");
    }
    assert_eq!(
        cfg["base_model_name_or_path"].as_str(),
        Some(f.dir.path().to_str().unwrap())
    );
    let modules = f.model.adapted_modules();
    let targets: Vec<String> = serde_json::from_value(cfg["target_modules"].clone()).unwrap();
    assert_eq!(targets, modules.keys().cloned().collect::<Vec<_>>());
    // Modules with a LoRA part have rank r + r_l, recorded with α = rank (PEFT scale 1).
    let pattern: BTreeMap<String, usize> =
        serde_json::from_value(cfg["rank_pattern"].clone()).unwrap();
    let want: BTreeMap<String, usize> = task
        .lora
        .iter()
        .map(|(m, l)| (m.clone(), RANK + l.rank()))
        .collect();
    assert_eq!(pattern, want);
    assert_eq!(cfg["alpha_pattern"], cfg["rank_pattern"]);
    let bytes = std::fs::read(out.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut keys: Vec<String> = st.names().into_iter().map(String::from).collect();
    keys.sort();
    let mut want_keys: Vec<String> = modules
        .keys()
        .flat_map(|m| ["lora_A", "lora_B"].map(|p| format!("base_model.model.{m}.{p}.weight")))
        .collect();
    want_keys.sort();
    assert_eq!(keys, want_keys);

    let peft_dir = root.path().join("peft-applied");
    apply_peft(f.dir.path(), &out, &peft_dir);
    let d = max_diff(&lrs_hidden(&f.model, Some(&task)), &plain_hidden(&peft_dir));
    assert!(d <= 1e-5, "PEFT arithmetic differs from the task by {d}");

    // A task with a sparse part: the adapter leaves it out and says how much.
    let sparse = self::task(&f.model, true);
    let (_, adapter) = export_peft_dir(
        &f.shared,
        Some(&sparse),
        &ExportExtras::default(),
        &root.path().join("lossy"),
    )
    .unwrap();
    assert_eq!(adapter.dropped_nnz, sparse.nnz());
    assert!(sparse.nnz() > 0);
}

#[test]
fn peft_import_gives_back_the_same_model() {
    let f = fixture();
    let task = task(&f.model, false);
    let root = tempfile::tempdir().unwrap();
    let base = f.model.base_info().clone();
    let plain = BertModel::load(
        &BertCheckpoint::from_dir(f.dir.path()).unwrap(),
        None,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let linears: BTreeMap<String, (usize, usize)> = plain
        .linears()
        .into_iter()
        .map(|l| (l.name().to_string(), l.shape().unwrap()))
        .collect();
    for (name, t, want_rank, want_scale) in [
        ("shared", None, RANK, 1.0),
        ("task", Some(&task), RANK + 3, 1.0),
    ] {
        let dir = root.path().join(name);
        export_peft_dir(&f.shared, t, &ExportExtras::default(), &dir).unwrap();
        let imported = shared_from_peft(&dir, &linears, &base.model, &base.sha256).unwrap();
        assert_eq!(
            (imported.rank, imported.scale),
            (want_rank, want_scale),
            "{name}"
        );
        let opts = LrsOptions {
            target_modules: imported.target_modules.clone(),
            rank: imported.rank,
            scale: imported.scale,
        };
        let model = BertModel::load(
            &BertCheckpoint::from_dir(f.dir.path()).unwrap(),
            Some(&opts),
            &Device::Cpu,
            DType::F32,
        )
        .unwrap();
        model.set_shared(&imported).unwrap();
        let empty = TaskDelta::new("", imported.rank);
        let batch = TaskBatch::single(&empty, 2, &Device::Cpu).unwrap();
        let got = real_tokens(model.forward_t(&input(), Some(&batch), false).unwrap());
        let d = max_diff(&lrs_hidden(&f.model, t), &got);
        assert!(d <= 1e-5, "{name}: imported factor differs by {d}");
    }

    // A plain PEFT adapter (r = 2, α = 8): rank 2 and scale α / r = 4, U = lora_B, V = lora_Aᵀ.
    let dir = root.path().join("plain");
    std::fs::create_dir(&dir).unwrap();
    let m = "encoder.layer.1.attention.self.query";
    let (a, b) = (
        seeded_tensor(&[2, 32], 0.0, 0.2, 1).unwrap(),
        seeded_tensor(&[32, 2], 0.0, 0.2, 2).unwrap(),
    );
    let tensors = std::collections::HashMap::from([
        (format!("base_model.model.{m}.lora_A.weight"), a.clone()),
        (format!("base_model.model.{m}.lora_B.weight"), b.clone()),
    ]);
    candle_core::safetensors::save(&tensors, dir.join("adapter_model.safetensors")).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 8, "target_modules": ["query"],
            "bias": "none", "fan_in_fan_out": false, "base_model_name_or_path": "x"}"#,
    )
    .unwrap();
    let s = shared_from_peft(&dir, &linears, &base.model, &base.sha256).unwrap();
    assert_eq!((s.rank, s.scale, s.layers.len()), (2, 4.0, 1));
    assert_eq!(max_diff(&s.layers[m].u, &b), 0.0);
    assert_eq!(max_diff(&s.layers[m].v, &a.t().unwrap()), 0.0);

    // What a shared factor cannot hold is refused with the reason.
    for (cfg, why) in [
        (
            r#"{"peft_type": "IA3", "r": 2, "lora_alpha": 8}"#,
            "peft_type",
        ),
        (
            r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 8, "bias": "all"}"#,
            "bias",
        ),
        (
            r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 8, "use_dora": true}"#,
            "use_dora",
        ),
    ] {
        std::fs::write(dir.join("adapter_config.json"), cfg).unwrap();
        let err = shared_from_peft(&dir, &linears, &base.model, &base.sha256).unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
}
