//! Per-task LoRA parts in task files: round trips (F32 bit-exact, F16/BF16 to rounding), the
//! serving path (load → mixed-task forward), `lrs inspect`'s summary, and a typed error naming
//! the file and tensor for every malformed or unsavable case.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use lrs_nn::files::summary::summarize;
use lrs_nn::files::task_delta::LORA_ALPHA_KEY;
use lrs_nn::{
    hard_threshold, BertCheckpoint, BertInput, BertModel, FileError, LayerDelta, LoraPart,
    LrsOptions, NnError, SharedFactor, SparsePart, TaskBatch, TaskDelta, TaskProvenance,
};

const ALPHA: f64 = 8.0;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    model: BertModel,
    shared: SharedFactor,
    /// LoRA on every other module (ranks 1..3), sparse parts and `w` on some.
    task: TaskDelta,
    provenance: TaskProvenance,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir(root.join("base")).unwrap();
    lrs_nn::testing::write_seeded_checkpoint(
        &root.join("base"),
        &lrs_nn::testing::tiny_config(),
        1,
    )
    .unwrap();
    let ckpt = BertCheckpoint::from_dir(&root.join("base")).unwrap();
    let model = BertModel::load(
        &ckpt,
        Some(&LrsOptions::bert_default(4)),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    lrs_nn::testing::seed_shared_factors(&model, 3).unwrap();
    let mut shared = model.shared_factor(None).unwrap();
    let shared_sha = shared.save(&root.join("shared.safetensors")).unwrap();
    let mut task = TaskDelta::new("carol", 4);
    for (i, (name, (o, n))) in model.adapted_modules().into_iter().enumerate() {
        if i % 3 == 0 {
            let dense =
                lrs_nn::testing::seeded_tensor(&[o, n], 0.0, 1.0, 100 + 4 * i as u64).unwrap();
            task.layers.insert(
                name.clone(),
                LayerDelta {
                    w: Some(
                        lrs_nn::testing::seeded_tensor(&[4], 1.0, 0.5, 101 + 4 * i as u64).unwrap(),
                    ),
                    sparse: SparsePart::Sparse(hard_threshold(&dense, 5 + i).unwrap()),
                },
            );
        }
        if i % 2 == 0 {
            let r_l = 1 + i % 3;
            task.lora.insert(
                name,
                LoraPart::from_alpha(
                    lrs_nn::testing::seeded_tensor(&[r_l, n], 0.0, 0.5, 102 + 4 * i as u64)
                        .unwrap(),
                    lrs_nn::testing::seeded_tensor(&[o, r_l], 0.0, 0.5, 103 + 4 * i as u64)
                        .unwrap(),
                    ALPHA,
                ),
            );
        }
    }
    let provenance = TaskProvenance {
        base_sha256: model.base_info().sha256.clone(),
        shared_sha256: shared_sha,
    };
    task.save(&root.join("carol.safetensors"), &provenance, DType::F32)
        .unwrap();
    let shared = SharedFactor {
        sha256: Some(provenance.shared_sha256.clone()),
        ..shared
    };
    Fixture {
        _dir: dir,
        root,
        model,
        shared,
        task,
        provenance,
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn metadata(p: &Path) -> HashMap<String, String> {
    let bytes = std::fs::read(p).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().clone().unwrap_or_default()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn lora_parts_round_trip_and_serve_the_same_outputs() {
    let f = fixture();
    let path = f.root.join("carol.safetensors");
    assert_eq!(metadata(&path)[LORA_ALPHA_KEY], "8");
    let loaded = f.model.load_task(&path, &f.shared).unwrap();
    assert_eq!(loaded.nnz(), f.task.nnz());
    assert_eq!(loaded.lora_params(), f.task.lora_params());
    assert_eq!(
        loaded.lora.keys().collect::<Vec<_>>(),
        f.task.lora.keys().collect::<Vec<_>>()
    );
    for (name, want) in &f.task.lora {
        let got = &loaded.lora[name];
        assert_eq!(bits(&want.a), bits(&got.a), "{name} A");
        assert_eq!(bits(&want.b), bits(&got.b), "{name} B");
        assert_eq!(got.rank(), want.rank(), "{name} rank");
        assert!(
            (got.scale - want.scale).abs() <= 1e-12 * want.scale,
            "{name}"
        );
    }
    for (name, want) in &f.task.layers {
        let got = &loaded.layers[name];
        assert_eq!(
            want.w.as_ref().map(bits),
            got.w.as_ref().map(bits),
            "{name}"
        );
    }

    // Serving path: a batch mixing the loaded LoRA task with a plain task gives, row by row,
    // what the in-memory task alone gives.
    let plain = TaskDelta::new("plain", 4);
    let ids = Tensor::new(&[[1u32, 7, 9, 30, 2], [1, 50, 60, 2, 0]], &Device::Cpu).unwrap();
    let input = BertInput::from_ids(ids).unwrap();
    let dev = Device::Cpu;
    let mixed = f
        .model
        .forward_t(
            &input,
            Some(&TaskBatch::per_row(&[&loaded, &plain], &dev).unwrap()),
            false,
        )
        .unwrap();
    let alone = f
        .model
        .forward_t(
            &input,
            Some(&TaskBatch::single(&f.task, 2, &dev).unwrap()),
            false,
        )
        .unwrap();
    let base = f
        .model
        .forward_t(
            &input,
            Some(&TaskBatch::single(&plain, 2, &dev).unwrap()),
            false,
        )
        .unwrap();
    let row = |t: &Tensor, i| t.narrow(0, i, 1).unwrap();
    assert!(max_diff(&row(&mixed, 0), &row(&alone, 0)) <= 1e-5);
    assert!(max_diff(&row(&mixed, 1), &row(&base, 1)) <= 1e-5);
    assert!(max_diff(&row(&alone, 0), &row(&base, 0)) > 1e-3);

    // F16 / BF16 storage: exact to that dtype's rounding.
    for dtype in [DType::F16, DType::BF16] {
        let p = f.root.join(format!("carol-{dtype:?}.safetensors"));
        f.task.save(&p, &f.provenance, dtype).unwrap();
        let got = f.model.load_task(&p, &f.shared).unwrap();
        for (name, want) in &f.task.lora {
            for (w, g) in [(&want.a, &got.lora[name].a), (&want.b, &got.lora[name].b)] {
                let rounded = w.to_dtype(dtype).unwrap();
                assert_eq!(bits(&rounded), bits(g), "{name} {dtype:?}");
            }
        }
    }

    // Without LoRA parts there is no `lora_alpha` and nothing LoRA comes back.
    let mut no_lora = f.task.clone();
    no_lora.lora.clear();
    let p = f.root.join("nolora.safetensors");
    no_lora.save(&p, &f.provenance, DType::F32).unwrap();
    assert!(!metadata(&p).contains_key(LORA_ALPHA_KEY));
    let got = f.model.load_task(&p, &f.shared).unwrap();
    assert!(got.lora.is_empty());
    assert_eq!(got.lora_params(), 0);
}

#[test]
fn summary_groups_lora_tensors_by_module() {
    let f = fixture();
    let s = summarize(&f.root.join("carol.safetensors")).unwrap();
    assert_eq!(s.format.as_deref(), Some("lrs-task"));
    assert_eq!(s.nnz, f.task.nnz());
    assert_eq!(s.lora_params, f.task.lora_params());
    assert!(s.modules.iter().all(|m| !m.module.is_empty()), "{s:?}");
    for (name, lora) in &f.task.lora {
        let m = s.modules.iter().find(|m| &m.module == name).unwrap();
        assert_eq!(m.lora_params, lora.num_params(), "{name}");
        let a = m.tensors.iter().find(|t| t.name == "lora_a").unwrap();
        let b = m.tensors.iter().find(|t| t.name == "lora_b").unwrap();
        assert_eq!(a.shape, lora.a.dims());
        assert_eq!(b.shape, lora.b.dims());
    }
}

/// Rewrites a valid file with tensors/metadata edited by `edit`.
fn rewrite(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut HashMap<String, Tensor>, &mut HashMap<String, String>),
) {
    let bytes = std::fs::read(src).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
    edit(&mut tensors, &mut meta);
    let out = safetensors::serialize(
        tensors
            .iter()
            .map(|(k, v)| (k.clone(), v))
            .collect::<Vec<_>>(),
        Some(meta),
    )
    .unwrap();
    std::fs::write(dst, out).unwrap();
}

/// Loads `p` expecting a file error that names the file and `mentions`.
fn load_err(f: &Fixture, p: &Path, mentions: &str) -> FileError {
    let e = match f.model.load_task(p, &f.shared) {
        Err(NnError::File(e)) => e,
        other => panic!("expected a file error for {}, got {other:?}", p.display()),
    };
    let text = e.to_string();
    let file = p.file_name().unwrap().to_string_lossy();
    assert!(
        text.contains(file.as_ref()),
        "does not name the file: {text}"
    );
    assert!(
        text.contains(mentions),
        "does not name {mentions:?}: {text}"
    );
    e
}

#[test]
fn malformed_lora_tensors_are_typed_errors() {
    let f = fixture();
    let good = f.root.join("carol.safetensors");
    let bad = f.root.join("bad.safetensors");
    // A module with rank-2 LoRA (index 4 of the adapted modules) and its names.
    let (m, lora) = f.task.lora.iter().find(|(_, l)| l.rank() == 2).unwrap();
    let (out_dim, in_dim) = (lora.b.dim(0).unwrap(), lora.a.dim(1).unwrap());
    let (a, b) = (format!("{m}.lora_a"), format!("{m}.lora_b"));
    let cpu = Device::Cpu;

    // Only one of the pair.
    rewrite(&good, &bad, |t, _| {
        t.remove(&b);
    });
    let e = load_err(&f, &bad, &b);
    assert!(
        matches!(e, FileError::MissingTensor { ref tensor, .. } if *tensor == b),
        "{e}"
    );
    rewrite(&good, &bad, |t, _| {
        t.remove(&a);
    });
    let e = load_err(&f, &bad, &a);
    assert!(
        matches!(e, FileError::MissingTensor { ref tensor, .. } if *tensor == a),
        "{e}"
    );

    // Shapes: A's `in`, B's `out`, the shared r_l, rank 0, wrong rank of tensor.
    let shape_cases: Vec<(&str, &String, Tensor)> = vec![
        (
            "A in",
            &a,
            Tensor::zeros((2, in_dim + 1), DType::F32, &cpu).unwrap(),
        ),
        (
            "A 1-D",
            &a,
            Tensor::zeros(2 * in_dim, DType::F32, &cpu).unwrap(),
        ),
        (
            "A rank 0",
            &a,
            Tensor::zeros((0, in_dim), DType::F32, &cpu).unwrap(),
        ),
        (
            "B out",
            &b,
            Tensor::zeros((out_dim + 1, 2), DType::F32, &cpu).unwrap(),
        ),
        (
            "B r_l",
            &b,
            Tensor::zeros((out_dim, 3), DType::F32, &cpu).unwrap(),
        ),
        (
            "B 3-D",
            &b,
            Tensor::zeros((out_dim, 2, 1), DType::F32, &cpu).unwrap(),
        ),
    ];
    for (what, name, replacement) in shape_cases {
        rewrite(&good, &bad, |t, _| {
            t.insert(name.clone(), replacement);
        });
        let e = load_err(&f, &bad, name);
        assert!(
            matches!(e, FileError::Shape { ref tensor, .. } if tensor == name),
            "{what}: {e}"
        );
    }
    // A and B swapped.
    rewrite(&good, &bad, |t, _| {
        let (ta, tb) = (t[&a].clone(), t[&b].clone());
        t.insert(a.clone(), tb);
        t.insert(b.clone(), ta);
    });
    assert!(matches!(load_err(&f, &bad, &a), FileError::Shape { .. }));

    // Dtypes: integers and F64 are refused.
    for dtype in [DType::U32, DType::F64, DType::I64] {
        rewrite(&good, &bad, |t, _| {
            let v = t[&b].to_dtype(dtype).unwrap();
            t.insert(b.clone(), v);
        });
        let e = load_err(&f, &bad, &b);
        assert!(
            matches!(e, FileError::DType { ref tensor, .. } if *tensor == b),
            "{e}"
        );
    }

    // Non-finite values, in either tensor, in any float storage.
    for (name, value) in [(&a, f32::NAN), (&b, f32::INFINITY), (&a, f32::NEG_INFINITY)] {
        rewrite(&good, &bad, |t, _| {
            let mut v: Vec<f32> = t[name].flatten_all().unwrap().to_vec1().unwrap();
            v[1] = value;
            let shape = t[name].shape().clone();
            let v = Tensor::from_vec(v, shape, &cpu)
                .unwrap()
                .to_dtype(DType::F16)
                .unwrap();
            t.insert(name.clone(), v);
        });
        let e = load_err(&f, &bad, name);
        assert!(
            matches!(e, FileError::Tensor { ref tensor, .. } if tensor == name),
            "{e}"
        );
        assert!(e.to_string().contains("non-finite"), "{e}");
    }

    // `lora_alpha`: missing, unparsable, non-finite, or present without LoRA tensors.
    rewrite(&good, &bad, |_, meta| {
        meta.remove(LORA_ALPHA_KEY);
    });
    let e = load_err(&f, &bad, LORA_ALPHA_KEY);
    assert!(
        matches!(e, FileError::BadMetadata { ref key, .. } if key == LORA_ALPHA_KEY),
        "{e}"
    );
    for value in ["eight", "inf", "NaN", ""] {
        rewrite(&good, &bad, |_, meta| {
            meta.insert(LORA_ALPHA_KEY.into(), value.into());
        });
        let e = load_err(&f, &bad, LORA_ALPHA_KEY);
        assert!(
            matches!(e, FileError::BadMetadata { ref key, .. } if key == LORA_ALPHA_KEY),
            "{value:?}: {e}"
        );
    }
    rewrite(&good, &bad, |t, _| {
        t.retain(|k, _| !k.ends_with(".lora_a") && !k.ends_with(".lora_b"));
    });
    let e = load_err(&f, &bad, LORA_ALPHA_KEY);
    assert!(matches!(e, FileError::BadMetadata { .. }), "{e}");

    // LoRA tensors for a module the model does not adapt.
    let stray = "encoder.layer.0.attention.self.key.lora_a";
    rewrite(&good, &bad, |t, _| {
        t.insert(stray.into(), t[&a].clone());
    });
    let e = load_err(&f, &bad, stray);
    assert!(matches!(e, FileError::UnknownModule { .. }), "{e}");

    // The good file still loads after all that (the rewrites wrote elsewhere).
    f.model.load_task(&good, &f.shared).unwrap();
}

#[test]
fn unsavable_lora_parts_are_typed_errors() {
    let f = fixture();
    let p = f.root.join("out.safetensors");
    let (m, lora) = f.task.lora.iter().next().unwrap();
    let save = |task: &TaskDelta, dtype| task.save(&p, &f.provenance, dtype).unwrap_err();

    // One α per file: a part whose scale gives another α is refused.
    let mut t = f.task.clone();
    let other = t.lora.keys().nth(1).unwrap().clone();
    t.lora.get_mut(&other).unwrap().scale *= 2.0;
    let e = save(&t, DType::F32);
    assert!(
        matches!(e, FileError::BadMetadata { ref key, .. } if key == LORA_ALPHA_KEY),
        "{e}"
    );

    // Mismatched inner ranks.
    let mut t = f.task.clone();
    let b = Tensor::zeros(
        (lora.b.dim(0).unwrap(), lora.rank() + 1),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    t.lora.get_mut(m).unwrap().b = b;
    let e = save(&t, DType::F32);
    assert!(
        matches!(e, FileError::Shape { ref tensor, .. } if *tensor == format!("{m}.lora_b")),
        "{e}"
    );

    // A NaN, and a finite f32 that overflows F16 storage.
    for (value, dtype) in [(f32::NAN, DType::F32), (1e6, DType::F16)] {
        let mut t = f.task.clone();
        let part = t.lora.get_mut(m).unwrap();
        let mut v: Vec<f32> = part.a.flatten_all().unwrap().to_vec1().unwrap();
        v[0] = value;
        part.a = Tensor::from_vec(v, part.a.shape(), &Device::Cpu).unwrap();
        let e = save(&t, dtype);
        assert!(
            matches!(e, FileError::Tensor { ref tensor, .. } if *tensor == format!("{m}.lora_a")),
            "{e}"
        );
    }

    // Value dtypes other than F16 / BF16 / F32.
    assert!(matches!(save(&f.task, DType::F64), FileError::DType { .. }));
    assert!(!p.exists(), "a refused save must not leave a file behind");
}
