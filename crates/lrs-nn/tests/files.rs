//! Shared/task files: bit-exact round trips and a typed error for every malformed case.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use lrs_nn::{
    hard_threshold, BertCheckpoint, BertModel, FileError, LayerDelta, LrsOptions, NnError,
    SharedFactor, SparsePart, TaskDelta, TaskProvenance,
};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    model: BertModel,
    shared: SharedFactor,
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
    let shared_vars = model.shared_vars().unwrap();
    let data = shared_vars.data().lock().unwrap();
    // Sorted by name, so each `U` gets the same seed in every process.
    let mut named: Vec<_> = data.iter().collect();
    named.sort_by(|x, y| x.0.cmp(y.0));
    for (j, (name, var)) in named.into_iter().enumerate() {
        if name.ends_with("lrs_u") {
            var.set(&lrs_nn::testing::seeded_tensor(var.dims(), 0.0, 0.3, 10 + j as u64).unwrap())
                .unwrap();
        }
    }
    drop(data);
    let mut shared = model
        .shared_factor(Some(serde_json::json!({"epsilon": 8.0, "delta": 1e-5})))
        .unwrap();
    let shared_sha = shared.save(&root.join("shared.safetensors")).unwrap();
    let mut task = TaskDelta::new("alice", 4);
    for (i, (name, (o, n))) in model.adapted_modules().into_iter().enumerate() {
        let dense = lrs_nn::testing::seeded_tensor(&[o, n], 0.0, 1.0, 100 + 2 * i as u64).unwrap();
        let w = (i % 2 == 0)
            .then(|| lrs_nn::testing::seeded_tensor(&[4], 1.0, 0.5, 101 + 2 * i as u64).unwrap());
        task.layers.insert(
            name,
            LayerDelta {
                w,
                sparse: SparsePart::Sparse(hard_threshold(&dense, 7 + i).unwrap()),
            },
        );
    }
    let provenance = TaskProvenance {
        base_sha256: model.base_info().sha256.clone(),
        shared_sha256: shared_sha,
    };
    task.save(&root.join("alice.safetensors"), &provenance, DType::F32)
        .unwrap();
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

#[test]
fn shared_and_task_round_trip_bit_exact() {
    let f = fixture();
    // A second model on the same base loads the shared file and computes the same thing.
    let ckpt = BertCheckpoint::from_dir(&f.root.join("base")).unwrap();
    let other = BertModel::load(
        &ckpt,
        Some(&LrsOptions::bert_default(4)),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let shared = other
        .load_shared(&f.root.join("shared.safetensors"))
        .unwrap();
    assert_eq!(shared.sha256, f.shared.sha256);
    assert_eq!(shared.rank, 4);
    assert_eq!(shared.scale, 1.0);
    assert_eq!(shared.target_modules, f.shared.target_modules);
    assert_eq!(shared.dp, f.shared.dp);
    assert_eq!(shared.base_model, f.shared.base_model);
    for (name, lr) in &f.shared.layers {
        assert_eq!(bits(&lr.u), bits(&shared.layers[name].u), "{name} U");
        assert_eq!(bits(&lr.v), bits(&shared.layers[name].v), "{name} V");
    }
    for (a, b) in f.model.linears().iter().zip(other.linears()) {
        if let (Some(x), Some(y)) = (a.low_rank(), b.low_rank()) {
            assert_eq!(bits(&x.u), bits(&y.u));
        }
    }
    let task = other
        .load_task(&f.root.join("alice.safetensors"), &shared)
        .unwrap();
    assert_eq!(task.task_id, "alice");
    assert_eq!(task.nnz(), f.task.nnz());
    assert!(task.created.is_some());
    for (name, want) in &f.task.layers {
        let got = &task.layers[name];
        assert_eq!(
            want.w.as_ref().map(bits),
            got.w.as_ref().map(bits),
            "{name} w"
        );
        let (SparsePart::Sparse(a), SparsePart::Sparse(b)) = (&want.sparse, &got.sparse) else {
            panic!("{name}: not sparse")
        };
        assert_eq!(a.indices(), b.indices());
        assert_eq!(bits(a.values()), bits(b.values()));
    }
    // F16 values: exact to f16 rounding.
    let p = f.root.join("alice16.safetensors");
    f.task.save(&p, &f.provenance, DType::F16).unwrap();
    let t16 = other.load_task(&p, &shared).unwrap();
    let name = t16.layers.keys().next().unwrap().clone();
    let (SparsePart::Sparse(a), SparsePart::Sparse(b)) =
        (&f.task.layers[&name].sparse, &t16.layers[&name].sparse)
    else {
        panic!()
    };
    let want = a
        .values()
        .to_dtype(DType::F16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    assert_eq!(bits(&want), bits(b.values()));
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

fn load_task(f: &Fixture, p: &Path) -> FileError {
    let shared = SharedFactor {
        sha256: Some(f.provenance.shared_sha256.clone()),
        ..f.shared.clone()
    };
    match f.model.load_task(p, &shared) {
        Err(NnError::File(e)) => e,
        other => panic!("expected a file error for {}, got {other:?}", p.display()),
    }
}

fn first_module(f: &Fixture) -> String {
    f.task.layers.keys().next().unwrap().clone()
}

#[test]
fn malformed_task_files_are_typed_errors() {
    let f = fixture();
    let good = f.root.join("alice.safetensors");
    let bad = f.root.join("bad.safetensors");
    let m = first_module(&f);
    let named = |e: &FileError| {
        let s = e.to_string();
        assert!(
            s.contains("bad.safetensors") || s.contains("nothing.safetensors"),
            "error does not name the file: {s}"
        );
    };

    let e = load_task(&f, &f.root.join("nothing.safetensors"));
    assert!(matches!(e, FileError::Io { .. }), "{e}");
    named(&e);

    std::fs::write(
        &bad,
        b"\xff\xff\xff\xff\xff\xff\xff\xffnot a safetensors file",
    )
    .unwrap();
    let e = load_task(&f, &bad);
    assert!(matches!(e, FileError::Malformed { .. }), "{e}");
    named(&e);

    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() - 10]).unwrap();
    assert!(matches!(load_task(&f, &bad), FileError::Malformed { .. }));

    std::fs::write(&bad, &bytes[..4]).unwrap();
    assert!(matches!(load_task(&f, &bad), FileError::Malformed { .. }));

    let e = load_task(&f, &f.root.join("shared.safetensors"));
    assert!(
        matches!(
            e,
            FileError::WrongFormat {
                expected: "lrs-task",
                ..
            }
        ),
        "{e}"
    );

    rewrite(&good, &bad, |_, meta| {
        meta.insert("version".into(), "2".into());
    });
    assert!(matches!(
        load_task(&f, &bad),
        FileError::UnsupportedVersion { .. }
    ));

    rewrite(&good, &bad, |_, meta| {
        meta.insert("base_sha256".into(), "00".repeat(32));
    });
    assert!(matches!(
        load_task(&f, &bad),
        FileError::HashMismatch {
            what: "base_sha256",
            ..
        }
    ));

    rewrite(&good, &bad, |_, meta| {
        meta.insert("shared_sha256".into(), "11".repeat(32));
    });
    assert!(matches!(
        load_task(&f, &bad),
        FileError::HashMismatch {
            what: "shared_sha256",
            ..
        }
    ));

    rewrite(&good, &bad, |_, meta| {
        meta.remove("rank");
    });
    assert!(matches!(load_task(&f, &bad), FileError::BadMetadata { ref key, .. } if key == "rank"));

    rewrite(&good, &bad, |_, meta| {
        meta.insert("nnz".into(), "3".into());
    });
    assert!(matches!(load_task(&f, &bad), FileError::BadMetadata { ref key, .. } if key == "nnz"));

    let idx = format!("{m}.lrs_idx");
    rewrite(&good, &bad, |t, _| {
        let mut v: Vec<u32> = t[&idx].to_vec1().unwrap();
        *v.last_mut().unwrap() = u32::MAX;
        t.insert(
            idx.clone(),
            Tensor::new(v.as_slice(), &Device::Cpu).unwrap(),
        );
    });
    let e = load_task(&f, &bad);
    assert!(
        matches!(e, FileError::IndexOutOfRange { ref tensor, .. } if *tensor == idx),
        "{e}"
    );

    rewrite(&good, &bad, |t, _| {
        let mut v: Vec<u32> = t[&idx].to_vec1().unwrap();
        v.swap(0, 1);
        t.insert(
            idx.clone(),
            Tensor::new(v.as_slice(), &Device::Cpu).unwrap(),
        );
    });
    assert!(matches!(
        load_task(&f, &bad),
        FileError::IndicesNotSorted { position: 1, .. }
    ));

    rewrite(&good, &bad, |t, _| {
        let v = t[&idx].to_dtype(DType::F32).unwrap();
        t.insert(idx.clone(), v);
    });
    assert!(matches!(load_task(&f, &bad), FileError::DType { .. }));

    let val = format!("{m}.lrs_val");
    rewrite(&good, &bad, |t, _| {
        t.remove(&val);
    });
    assert!(
        matches!(load_task(&f, &bad), FileError::MissingTensor { ref tensor, .. } if *tensor == val)
    );

    rewrite(&good, &bad, |t, _| {
        let v = t[&val].narrow(0, 0, 2).unwrap();
        t.insert(val.clone(), v);
    });
    assert!(matches!(load_task(&f, &bad), FileError::Shape { .. }));

    let w = format!("{m}.lrs_w");
    rewrite(&good, &bad, |t, _| {
        t.insert(
            w.clone(),
            Tensor::ones(5, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert!(matches!(load_task(&f, &bad), FileError::Shape { ref tensor, .. } if *tensor == w));

    rewrite(&good, &bad, |t, _| {
        t.insert(
            "encoder.layer.9.attention.self.query.lrs_w".into(),
            Tensor::ones(4, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert!(matches!(
        load_task(&f, &bad),
        FileError::UnknownModule { .. }
    ));

    rewrite(&good, &bad, |t, _| {
        t.insert(
            format!("{m}.lrs_zzz"),
            Tensor::ones(4, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert!(matches!(
        load_task(&f, &bad),
        FileError::UnknownModule { .. }
    ));

    // A dense training scratch cannot be saved without hardening.
    let mut scratch = f.task.clone();
    let layer = scratch.layers.get_mut(&m).unwrap();
    layer
        .start_dense_scratch((1, 1), &Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    let e = scratch.save(&bad, &f.provenance, DType::F32).unwrap_err();
    assert!(matches!(e, FileError::DenseScratch { .. }), "{e}");
    scratch.harden(|_| 5).unwrap();
    scratch.save(&bad, &f.provenance, DType::F32).unwrap();
}

#[test]
fn malformed_shared_files_are_typed_errors() {
    let f = fixture();
    let good = f.root.join("shared.safetensors");
    let bad = f.root.join("bad.safetensors");
    let load = |p: &Path| match f.model.load_shared(p) {
        Err(NnError::File(e)) => e,
        other => panic!("expected a file error, got {other:?}"),
    };
    assert!(matches!(
        load(&f.root.join("alice.safetensors")),
        FileError::WrongFormat {
            expected: "lrs-shared",
            ..
        }
    ));
    rewrite(&good, &bad, |_, meta| {
        meta.insert("base_sha256".into(), "ab".repeat(32));
    });
    assert!(matches!(
        load(&bad),
        FileError::HashMismatch {
            what: "base_sha256",
            ..
        }
    ));
    rewrite(&good, &bad, |_, meta| {
        meta.insert("rank".into(), "5".into());
    });
    assert!(matches!(load(&bad), FileError::BadMetadata { .. }));
    let m = first_module(&f);
    let v = format!("{m}.lrs_v");
    rewrite(&good, &bad, |t, _| {
        t.remove(&v);
    });
    assert!(matches!(load(&bad), FileError::MissingTensor { ref tensor, .. } if *tensor == v));
    rewrite(&good, &bad, |t, _| {
        let x = t[&v].narrow(1, 0, 3).unwrap();
        t.insert(v.clone(), x);
    });
    assert!(matches!(load(&bad), FileError::Shape { .. }));
    rewrite(&good, &bad, |t, _| {
        t.insert(
            "pooler.dense.lrs_u".into(),
            Tensor::ones((2, 4), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert!(matches!(load(&bad), FileError::UnknownModule { .. }));
    rewrite(&good, &bad, |_, meta| {
        meta.insert("target_modules".into(), "not json".into());
    });
    assert!(matches!(load(&bad), FileError::BadMetadata { .. }));
}
