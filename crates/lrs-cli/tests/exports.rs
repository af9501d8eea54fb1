//! `lrs predict`, `lrs export peft|merged` and `lrs import peft` as processes, on real `lrs train`
//! runs of the seeded tiny model: predict against `lrs serve`, the merged export loaded by the
//! project's own plain BERT loader against `lrs predict --embeddings`, the PEFT adapter's
//! numbers against the run's files, the import round trip, and every bad input with its
//! one-line error and nothing written.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use candle_core::{DType, Device, Tensor};
use common::{config_toml, ok, temp_files, train_run, write_data, write_tiny_model};
use lrs_nn::bert::model::pool;
use lrs_nn::{BertCheckpoint, BertModel, BertTokenizer, Pooling};

/// `lrs` without backtraces, so an error is the one line a user sees.
fn lrs() -> std::process::Command {
    let mut cmd = common::lrs();
    cmd.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    cmd
}

const TEXTS: [&str; 3] = ["w10 w30 w44", "w31", "w12 w50 w61 w70 w80"];

/// A trained tiny run of `method` (3 tasks t0…t2, training seed `seed`) in `root/<name>`,
/// model in `root/model`.
fn train(root: &Path, name: &str, method: &str, seed: u64) -> PathBuf {
    let model = root.join("model");
    if !model.is_dir() {
        write_tiny_model(&model);
    }
    let data = root.join("data.jsonl");
    if !data.is_file() {
        write_data(&data, "t", 3, 16, false);
    }
    let cfg = root.join(format!("{name}.toml"));
    let toml = config_toml(&model, &data, 1)
        .replace("method = \"lrs\"", &format!("method = \"{method}\""))
        .replace("seed = 5", &format!("seed = {seed}\ntask_head = true"));
    std::fs::write(&cfg, toml).expect("config");
    let run = root.join(name);
    ok(&train_run(&cfg, &run));
    run
}

fn predict(run: &Path, task: Option<&str>) -> Vec<serde_json::Value> {
    let mut cmd = lrs();
    cmd.args(["predict", "--json", "--embeddings", "--run"])
        .arg(run);
    if let Some(t) = task {
        cmd.args(["--task", t]);
    }
    for t in TEXTS {
        cmd.args(["--text", t]);
    }
    ok(&cmd.output().expect("lrs predict"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn column(rows: &[serde_json::Value], key: &str) -> Vec<f64> {
    rows.iter().map(|r| r[key].as_f64().expect(key)).collect()
}

fn embeddings(rows: &[serde_json::Value]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| serde_json::from_value(r["embedding"].clone()).expect("embedding"))
        .collect()
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f64::max)
}

/// The stderr of a failed command: exactly one line, which holds every `needle`.
fn one_line_error(out: &Output, needles: &[&str]) -> String {
    assert!(!out.status.success(), "expected a failure: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    err
}

fn files(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

/// Mean-pooled embeddings and head scores of `texts` by the project's plain BERT loader on a
/// merged export directory (its own config, weights, tokenizer and head file).
fn plain_outputs(dir: &Path) -> (Vec<Vec<f64>>, Vec<f64>) {
    let ckpt = BertCheckpoint::from_dir(dir).expect("a checkpoint directory");
    let model = BertModel::load(&ckpt, None, &Device::Cpu, DType::F32).expect("plain BERT");
    let tok = BertTokenizer::from_file(&dir.join("tokenizer.json"), 128).expect("tokenizer");
    let (mut embs, mut scores) = (Vec::new(), Vec::new());
    let head = candle_core::safetensors::load(dir.join("head.safetensors"), &Device::Cpu)
        .expect("head.safetensors");
    for text in TEXTS {
        let input = tok.encode_batch(&[text], &Device::Cpu).expect("encode");
        let hidden = model.forward_t(&input, None, false).expect("forward");
        let pooled = pool(&hidden, &input.attention_mask, Pooling::Mean).expect("pool");
        let z: f32 = pooled
            .matmul(&head["weight"].t().expect("t"))
            .and_then(|z| z.broadcast_add(&head["bias"]))
            .and_then(|z| z.flatten_all())
            .and_then(|z| z.get(0))
            .and_then(|z| z.to_scalar())
            .expect("logit");
        scores.push(1.0 / (1.0 + (-(z as f64)).exp()));
        let row: Vec<f32> = pooled.squeeze(0).and_then(|p| p.to_vec1()).expect("row");
        embs.push(row.into_iter().map(f64::from).collect());
    }
    (embs, scores)
}

#[test]
fn predict_matches_serve_and_merged_export_matches_predict() {
    let root = tempfile::tempdir().expect("tempdir");
    let run = train(root.path(), "run", "lrs", 5);
    let rows = predict(&run, Some("t0"));
    assert_eq!(rows.len(), TEXTS.len());
    for (r, t) in rows.iter().zip(TEXTS) {
        assert_eq!(r["text"], t);
        let (z, s) = (r["logit"].as_f64().unwrap(), r["score"].as_f64().unwrap());
        assert!((s - 1.0 / (1.0 + (-z).exp())).abs() < 1e-6, "{r}");
        assert_eq!(r["embedding"].as_array().map(Vec::len), Some(32));
    }
    // The task matters: the shared model alone scores differently.
    let shared_rows = predict(&run, None);
    assert!(max_diff(&embeddings(&rows), &embeddings(&shared_rows)) > 1e-4);

    // `lrs serve` on the same run returns the same numbers.
    let toml = root.path().join("serve.toml");
    let model = root.path().join("model");
    std::fs::write(
        &toml,
        format!(
            "model = {:?}\nshared = {:?}\ntasks_dir = {:?}\n",
            model,
            run.join("shared.safetensors"),
            run.join("tasks")
        ),
    )
    .expect("serve.toml");
    let (mut child, addr, lines) = common::http::start_serve_with(&toml, &[]);
    std::thread::spawn(move || lines.for_each(drop));
    let body = serde_json::json!({"task": "t0", "inputs": TEXTS, "embeddings": true}).to_string();
    let (status, reply) = common::http::request(
        &addr,
        "POST",
        "/v1/predict",
        "application/json",
        body.as_bytes(),
    )
    .expect("request");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let served: serde_json::Value = serde_json::from_slice(&reply).expect("json");
    let served_scores: Vec<f64> = serde_json::from_value(served["scores"].clone()).unwrap();
    let served_emb: Vec<Vec<f64>> = serde_json::from_value(served["embeddings"].clone()).unwrap();
    // Both are f32 numbers (JSON prints them at different lengths).
    let as_f32 = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
    assert_eq!(
        as_f32(&served_scores),
        as_f32(&column(&rows, "score")),
        "predict and serve differ"
    );
    let f32s = |v: Vec<Vec<f64>>| -> Vec<Vec<f32>> {
        v.into_iter()
            .map(|r| r.into_iter().map(|x| x as f32).collect())
            .collect()
    };
    assert_eq!(f32s(served_emb), f32s(embeddings(&rows)));

    // The merged export, loaded by the plain BERT loader, reproduces predict.
    let merged = root.path().join("merged-t0");
    let out = ok(&lrs()
        .args(["export", "merged", "--task", "t0", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&merged)
        .output()
        .expect("export merged"));
    assert!(out.contains("wrote"), "{out}");
    assert_eq!(
        files(&merged),
        [
            "config.json",
            "head.safetensors",
            "lrs_export.json",
            "model.safetensors",
            "tokenizer.json"
        ]
    );
    let prov: serde_json::Value =
        serde_json::from_slice(&std::fs::read(merged.join("lrs_export.json")).unwrap()).unwrap();
    assert_eq!(
        (prov["kind"].as_str(), prov["task"].as_str()),
        (Some("merged"), Some("t0"))
    );
    let (embs, scores) = plain_outputs(&merged);
    let d = max_diff(&embs, &embeddings(&rows));
    assert!(d <= 1e-5, "merged embeddings differ from predict by {d}");
    let ds = max_diff(&[scores], &[column(&rows, "score")]);
    assert!(ds <= 1e-5, "merged scores differ from predict by {ds}");

    // --all-tasks is refused with the size it would take.
    let out = lrs()
        .args(["export", "merged", "--all-tasks", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(root.path().join("all"))
        .output()
        .expect("export --all-tasks");
    one_line_error(&out, &["--all-tasks refused: 3 tasks", "MB"]);
    assert!(!root.path().join("all").exists());
}

#[test]
fn peft_export_folds_the_core_refuses_sparse_parts_and_imports_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let lrs_run = train(root.path(), "lrs", "lrs", 5);
    let run = train(root.path(), "shared-only", "shared-only", 5);

    // An lrs task has a sparse part: refused, pointing to the merged export; nothing written.
    let out_dir = root.path().join("peft-lrs");
    let out = lrs()
        .args(["export", "peft", "--task", "t1", "--run"])
        .arg(&lrs_run)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("export peft");
    one_line_error(&out, &["sparse part", "lrs export merged", "--drop-sparse"]);
    assert!(!out_dir.exists());
    let out = lrs()
        .args(["export", "peft", "--drop-sparse", "--task", "t1", "--run"])
        .arg(&lrs_run)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("export peft --drop-sparse");
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));

    // A shared-only task (core + head): lora_A = Vᵀ, lora_B = s·U·diag(w), PEFT scale 1.
    let adapter = root.path().join("peft-t1");
    ok(&lrs()
        .args(["export", "peft", "--task", "t1", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&adapter)
        .output()
        .expect("export peft"));
    assert_eq!(
        files(&adapter),
        [
            "adapter_config.json",
            "adapter_model.safetensors",
            "head.safetensors",
            "lrs_export.json"
        ]
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(adapter.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (cfg["peft_type"].as_str(), cfg["r"].as_u64()),
        (Some("LORA"), Some(2))
    );
    assert_eq!(cfg["lora_alpha"].as_u64(), Some(2));
    let model_dir = root.path().join("model");
    assert_eq!(cfg["base_model_name_or_path"].as_str(), model_dir.to_str());
    let check = common::RunCheck::new(&run);
    let shared = check
        .model()
        .load_shared(&run.join("shared.safetensors"))
        .expect("shared");
    let task = check
        .model()
        .load_task(&run.join("tasks/t1.safetensors"), &shared)
        .expect("task");
    let t = candle_core::safetensors::load(adapter.join("adapter_model.safetensors"), &Device::Cpu)
        .expect("adapter");
    assert_eq!(t.len(), 2 * shared.layers.len());
    for (m, lr) in &shared.layers {
        let w = task.layers[m].w.as_ref().expect("a core");
        let want_b = (lr.u.broadcast_mul(&w.unsqueeze(0).unwrap()).unwrap() * lr.scale).unwrap();
        let b = &t[&format!("base_model.model.{m}.lora_B.weight")];
        let a = &t[&format!("base_model.model.{m}.lora_A.weight")];
        let diff = |x: &Tensor, y: &Tensor| -> f32 {
            (x - y)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        assert!(diff(b, &want_b) <= 1e-6, "{m}: lora_B");
        assert_eq!(diff(a, &lr.v.t().unwrap()), 0.0, "{m}: lora_A");
    }

    // Import the shared adapter back: a copy of the run with the imported factor serves the
    // shared model's embeddings again.
    let shared_adapter = root.path().join("peft-shared");
    ok(&lrs()
        .args(["export", "peft", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&shared_adapter)
        .output()
        .expect("export peft"));
    let copy = root.path().join("imported-run");
    std::fs::create_dir_all(copy.join("tasks")).unwrap();
    std::fs::copy(run.join("config.toml"), copy.join("config.toml")).unwrap();
    let out = ok(&lrs()
        .args(["import", "peft", "--adapter"])
        .arg(&shared_adapter)
        .arg("--out")
        .arg(copy.join("shared.safetensors"))
        .output()
        .expect("import peft"));
    assert!(out.contains("rank 2"), "{out}");
    let d = max_diff(
        &embeddings(&predict(&copy, None)),
        &embeddings(&predict(&run, None)),
    );
    assert!(d <= 1e-5, "imported factor differs by {d}");
    // The import refuses an existing output file.
    let out = lrs()
        .args(["import", "peft", "--adapter"])
        .arg(&shared_adapter)
        .arg("--out")
        .arg(copy.join("shared.safetensors"))
        .output()
        .expect("import peft");
    one_line_error(&out, &["already exists"]);
}

#[test]
fn bad_inputs_give_one_line_errors_and_write_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let run = train(root.path(), "run", "lrs", 5);
    let other = train(root.path(), "other", "shared-only", 6);
    let out_dir = root.path().join("out");
    let export = |kind: &str, run: &Path, task: Option<&str>, out: &Path| {
        let mut cmd = lrs();
        cmd.args(["export", kind, "--run"])
            .arg(run)
            .arg("--out")
            .arg(out);
        if let Some(t) = task {
            cmd.args(["--task", t]);
        }
        cmd.output().expect("lrs export")
    };

    // Unknown task id: named, with the run's tasks.
    for kind in ["merged", "peft"] {
        let out = export(kind, &run, Some("nobody"), &out_dir);
        one_line_error(
            &out,
            &["unknown task \"nobody\"", "3 tasks in the run: t0, t1, t2"],
        );
    }
    let out = lrs()
        .args(["predict", "--task", "nobody", "--text", "w1", "--run"])
        .arg(&run)
        .output()
        .expect("predict");
    one_line_error(&out, &["unknown task \"nobody\""]);

    // An existing output directory is refused and left as it was.
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("keep"), b"mine").unwrap();
    for kind in ["merged", "peft"] {
        let out = export(kind, &run, Some("t0"), &out_dir);
        one_line_error(&out, &["already exists"]);
    }
    assert_eq!(files(&out_dir), ["keep"]);
    std::fs::remove_dir_all(&out_dir).unwrap();

    // A run directory without tasks.
    let empty = root.path().join("no-tasks");
    std::fs::create_dir_all(empty.join("tasks")).unwrap();
    for f in ["config.toml", "shared.safetensors"] {
        std::fs::copy(run.join(f), empty.join(f)).unwrap();
    }
    let out = export("merged", &empty, Some("t0"), &out_dir);
    one_line_error(&out, &["has no task files"]);

    // A task made against another shared file (same base): the other run's task files.
    let mixed = root.path().join("mixed");
    std::fs::create_dir_all(mixed.join("tasks")).unwrap();
    for f in ["config.toml", "shared.safetensors"] {
        std::fs::copy(run.join(f), mixed.join(f)).unwrap();
    }
    std::fs::copy(
        other.join("tasks/t0.safetensors"),
        mixed.join("tasks/t0.safetensors"),
    )
    .unwrap();
    for kind in ["merged", "peft"] {
        let out = export(kind, &mixed, Some("t0"), &out_dir);
        one_line_error(&out, &["task \"t0\"", "made against another shared file"]);
    }

    // A run whose base model is not the one its files were made on.
    let other_model = root.path().join("other-model");
    std::fs::create_dir_all(&other_model).unwrap();
    lrs_nn::testing::write_seeded_checkpoint(&other_model, &lrs_nn::testing::tiny_config(), 8)
        .unwrap();
    std::fs::copy(
        root.path().join("model/tokenizer.json"),
        other_model.join("tokenizer.json"),
    )
    .unwrap();
    let moved = root.path().join("moved");
    std::fs::create_dir_all(moved.join("tasks")).unwrap();
    let cfg = std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .replace(
            root.path().join("model").to_str().unwrap(),
            other_model.to_str().unwrap(),
        );
    std::fs::write(moved.join("config.toml"), cfg).unwrap();
    std::fs::copy(
        run.join("shared.safetensors"),
        moved.join("shared.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        run.join("tasks/t0.safetensors"),
        moved.join("tasks/t0.safetensors"),
    )
    .unwrap();
    let out = export("merged", &moved, Some("t0"), &out_dir);
    one_line_error(&out, &["made against another base model"]);

    // Not a run directory at all.
    let out = export("merged", root.path(), Some("t0"), &out_dir);
    one_line_error(&out, &["not a run directory"]);

    // Nothing was written for any of them: no output, no staging directory, no temp file.
    assert!(!out_dir.exists());
    let leftovers: Vec<String> = files(root.path())
        .into_iter()
        .filter(|n| n.starts_with(lrs_nn::files::atomic::TEMP_PREFIX))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(temp_files(root.path()).is_empty());
}
