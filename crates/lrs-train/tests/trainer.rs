//! End-to-end checks of the alternating trainer on a tiny random BERT and generated tasks.

mod common;

use common::*;
use lrs_nn::SparsePart;
use lrs_train::trainer::{
    Method, Part, TaskData, TrainConfig, TrainError, Trainer, HEAD_BIAS, HEAD_WEIGHT,
};
use lrs_train::{Example, Split};

#[test]
fn one_round_reduces_training_loss_and_the_sparse_part_respects_the_budget() {
    let f = fixture();
    let data = tiny_data(4, 10);
    let cfg = tiny_config_toml(Method::Lrs);
    let mut t = trainer(&f, cfg.clone(), &data);
    let before = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    assert!((before - std::f64::consts::LN_2).abs() < 1e-6, "{before}");
    let stats = t.round(&data).expect("round");
    assert_eq!(stats.round, 0);
    assert!(stats.shared_loss.is_some() && stats.task_loss.is_some());
    let after = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    assert!(after < before - 1e-3, "loss {before} → {after}");

    // Round 0 of 2: budget 3·k; the last round: k.
    let check = |t: &Trainer, round: usize| {
        let mut total = 0;
        for task in t.tasks() {
            for (module, &(o, i)) in t.modules() {
                let k = cfg.sparsity.k_at_round(o, i, round, cfg.rounds);
                let nnz = task.layers.get(module).map_or(0, |l| l.nnz());
                assert!(nnz <= k, "{} {module}: {nnz} > {k}", task.task_id);
                assert!(matches!(
                    task.layers.get(module).map(|l| &l.sparse),
                    Some(SparsePart::Sparse(_))
                ));
                total += nnz;
            }
        }
        total
    };
    assert!(check(&t, 0) > 0, "the sparse fit kept nothing");
    t.round(&data).expect("round 2");
    assert_eq!(t.rounds_done(), 2);
    check(&t, 1);
    for task in t.tasks() {
        for (module, &(o, i)) in t.modules() {
            let nnz = task.layers.get(module).map_or(0, |l| l.nnz());
            assert!(nnz <= cfg.sparsity.k_final(o, i), "{module}: {nnz}");
        }
    }
}

#[test]
fn phases_touch_only_their_own_parameters() {
    let f = fixture();
    let data = tiny_data(3, 8);
    let mut t = trainer(&f, tiny_config_toml(Method::Lrs), &data);
    // A first round so that every part is non-trivial.
    t.round(&data).expect("round");

    let shared = shared_snapshot(&t);
    let tasks = task_snapshot(t.tasks());
    t.task_phase(&data).expect("task phase");
    assert_eq!(
        shared_snapshot(&t),
        shared,
        "task phase changed a shared var"
    );
    assert_ne!(
        task_snapshot(t.tasks()),
        tasks,
        "task phase changed nothing"
    );

    let shared = shared_snapshot(&t);
    let tasks = task_snapshot(t.tasks());
    t.shared_phase(&data).expect("shared phase");
    assert_eq!(
        task_snapshot(t.tasks()),
        tasks,
        "shared phase changed a task part"
    );
    assert_ne!(shared_snapshot(&t), shared, "shared phase changed nothing");
}

#[test]
fn same_seed_same_result() {
    let f = fixture();
    let data = tiny_data(3, 6);
    let mut a = trainer(&f, tiny_config_toml(Method::Lrs), &data);
    let mut b = trainer(&f, tiny_config_toml(Method::Lrs), &data);
    a.round(&data).expect("round a");
    b.round(&data).expect("round b");
    assert_eq!(shared_snapshot(&a), shared_snapshot(&b));
    assert_eq!(task_snapshot(a.tasks()), task_snapshot(b.tasks()));
}

#[test]
fn baselines_train_only_their_parts() {
    let f = fixture();
    let data = tiny_data(3, 6);

    // shared-only: w and heads, never a sparse part.
    let mut t = trainer(&f, tiny_config_toml(Method::SharedOnly), &data);
    t.round(&data).expect("shared-only round");
    assert!(t.tasks().iter().all(|task| task.nnz() == 0));
    assert!(t.tasks().iter().all(|task| !task.head.is_empty()));

    // head-only: the shared vars (U = 0, so the base model) never move; heads learn.
    let mut t = trainer(&f, tiny_config_toml(Method::HeadOnly), &data);
    let shared = shared_snapshot(&t);
    let before = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    let stats = t.round(&data).expect("head-only round");
    assert_eq!(stats.shared_loss, None);
    assert_eq!(shared_snapshot(&t), shared);
    assert!(t.tasks().iter().all(|task| task.nnz() == 0));
    let after = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    assert!(after < before, "{before} → {after}");

    // global: one shared head, no task phase.
    let mut t = trainer(&f, tiny_config_toml(Method::Global), &data);
    let stats = t.round(&data).expect("global round");
    assert_eq!(stats.task_loss, None);
    assert!(t
        .tasks()
        .iter()
        .all(|task| task.head.is_empty() && task.nnz() == 0));

    // global-lora: the shared factor and head move, no task phase, every task at w = 1.
    let mut t = trainer(&f, tiny_config_toml(Method::GlobalLora), &data);
    let shared = shared_snapshot(&t);
    let before = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    let stats = t.round(&data).expect("global-lora round");
    assert_eq!(stats.task_loss, None);
    assert!(stats.shared_loss.is_some());
    assert_ne!(
        shared_snapshot(&t),
        shared,
        "global-lora trained nothing shared"
    );
    let after = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    assert!(after < before, "{before} → {after}");
    assert!(t.tasks().iter().all(|task| task.head.is_empty()
        && task.nnz() == 0
        && task.layers.values().all(|l| l.w.is_none())));
}

#[test]
fn personalizing_a_new_task_fits_it_with_shared_frozen() {
    let f = fixture();
    let data = tiny_data(3, 8);
    let mut t = trainer(&f, tiny_config_toml(Method::Lrs), &data);
    t.round(&data).expect("round");
    let shared = shared_snapshot(&t);
    let new = tiny_data(4, 8);
    let rows = &new.tasks[3].train;
    let (fitted, loss) = t.personalize("t3", rows).expect("personalize");
    assert!(loss < std::f64::consts::LN_2, "{loss}");
    assert_eq!(fitted.task_id, "t3");
    let cfg = t.config();
    for (module, &(o, i)) in t.modules() {
        let nnz = fitted.layers.get(module).map_or(0, |l| l.nnz());
        assert!(nnz <= cfg.sparsity.k_final(o, i), "{module}: {nnz}");
    }
    assert_eq!(shared_snapshot(&t), shared);
    let evaluation = t.evaluate(&data, Part::Test).expect("test eval");
    assert_eq!(evaluation.tasks.len(), 3);

    // The personalized part is a loadable task file for this base and shared file.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut shared_file = t.model().shared_factor(None).expect("shared factor");
    let shared_sha = shared_file
        .save(&dir.path().join("shared.safetensors"))
        .expect("save shared");
    let provenance = lrs_nn::TaskProvenance {
        base_sha256: t.model().base_info().sha256.clone(),
        shared_sha256: shared_sha,
    };
    let path = dir.path().join("t3.safetensors");
    fitted
        .save(&path, &provenance, candle_core::DType::F16)
        .expect("save task");
    let loaded_shared = t
        .model()
        .load_shared(&dir.path().join("shared.safetensors"))
        .expect("load shared");
    let loaded = t
        .model()
        .load_task(&path, &loaded_shared)
        .expect("load task");
    assert_eq!(loaded.task_id, "t3");
    assert_eq!(loaded.nnz(), fitted.nnz());
}

#[test]
fn mismatched_data_is_a_typed_error() {
    let f = fixture();
    let data = tiny_data(3, 4);
    let mut t = trainer(&f, tiny_config_toml(Method::Lrs), &data);
    let other = tiny_data(2, 4);
    assert!(matches!(
        t.round(&other),
        Err(lrs_train::trainer::TrainError::DataMismatch { .. })
    ));
}

#[test]
fn a_too_large_sparse_step_does_not_raise_the_loss() {
    let f = fixture();
    let data = tiny_data(3, 8);
    let mut cfg = tiny_config_toml(Method::SparseOnly);
    cfg.task.steps = 0;
    cfg.task.sparse_lr = 50.0;
    let mut t = trainer(&f, cfg, &data);
    let before = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    t.task_phase(&data).expect("task phase");
    let after = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    assert!(after <= before + 1e-6, "{before} → {after}");
}

#[test]
fn bert_tokenizer_encodes_splits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vocab: serde_json::Map<String, serde_json::Value> =
        ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "red", "cat", "sun"]
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
            .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, tokenizer.to_string()).expect("write tokenizer");
    let tok = lrs_nn::BertTokenizer::from_file(&path, 4).expect("tokenizer");
    let ex = |text: &str, label: f32| Example {
        task: "a".into(),
        text: text.into(),
        label,
        timestamp: None,
    };
    let split = Split {
        task: "a".into(),
        train: vec![ex("red cat", 1.0), ex("sun dog red cat", 0.0)],
        test: vec![ex("cat", 1.0)],
    };
    let data = TaskData::from_splits(&[split], &tok).expect("encode");
    let train = &data.tasks[0].train;
    assert_eq!(train[0].ids, [1, 4, 5, 2]);
    assert!(train[0].positive);
    // Truncated to 4 tokens, special tokens included; unknown words map to [UNK].
    assert_eq!(train[1].ids, [1, 6, 3, 2]);
    assert!(!train[1].positive);
    assert_eq!(data.tasks[0].test[0].ids, [1, 5, 2]);

    let empty = Split {
        task: "b".into(),
        train: vec![],
        test: vec![],
    };
    assert!(matches!(
        TaskData::from_splits(&[empty], &tok),
        Err(lrs_train::trainer::TrainError::EmptyTask { .. })
    ));
}

#[test]
fn resuming_from_a_checkpoint_continues_exactly_like_an_uninterrupted_run() {
    let f = fixture();
    let data = tiny_data(3, 8);
    let cfg = TrainConfig {
        rounds: 3,
        ..tiny_config_toml(Method::Lrs)
    };
    let mut straight = trainer(&f, cfg.clone(), &data);
    for _ in 0..3 {
        straight.round(&data).expect("round");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = trainer(&f, cfg.clone(), &data);
    first.round(&data).expect("round 0");
    first
        .save_checkpoint(dir.path())
        .expect("checkpoint after round 0");
    first.round(&data).expect("round 1");
    let saved = first
        .save_checkpoint(dir.path())
        .expect("checkpoint after round 1");
    drop(first);
    // Only the newest checkpoint stays, and LATEST names it.
    assert_eq!(
        Trainer::latest_checkpoint(dir.path()).expect("latest"),
        Some(saved.clone())
    );
    assert!(!dir.path().join("round-0001").exists());

    let mut resumed = trainer(&f, cfg.clone(), &data);
    resumed.restore_checkpoint(&saved).expect("restore");
    assert_eq!(resumed.rounds_done(), 2);
    resumed.round(&data).expect("round 2");
    assert_eq!(shared_snapshot(&resumed), shared_snapshot(&straight));
    assert_eq!(
        task_snapshot(resumed.tasks()),
        task_snapshot(straight.tasks())
    );

    // A checkpoint of another config or other tasks is refused.
    let mut other = trainer(
        &f,
        TrainConfig {
            seed: 12,
            ..cfg.clone()
        },
        &data,
    );
    assert!(matches!(
        other.restore_checkpoint(&saved),
        Err(TrainError::Checkpoint { .. })
    ));
    let fewer = tiny_data(2, 8);
    let mut other = trainer(&f, cfg, &fewer);
    assert!(matches!(
        other.restore_checkpoint(&saved),
        Err(TrainError::Checkpoint { .. })
    ));
}

#[test]
fn full_fine_tuning_learns_a_dense_update_per_task() {
    let f = fixture();
    let data = tiny_data(2, 8);
    let mut cfg = tiny_config_toml(Method::FullFt);
    cfg.task.lr = 1e-2;
    let mut t = trainer(&f, cfg, &data);
    let before = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    t.round(&data).expect("round");
    let after = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    assert!(after < before - 1e-3, "{before} → {after}");
    for task in t.tasks() {
        for (module, &(o, i)) in t.modules() {
            let nnz = task.layers.get(module).map_or(0, |l| l.nnz());
            assert_eq!(nnz, o * i, "{module}: the update is dense");
        }
    }
}

#[test]
fn regrowth_keeps_the_budget() {
    let f = fixture();
    let data = tiny_data(2, 8);
    let mut cfg = tiny_config_toml(Method::Lrs);
    cfg.task.regrow = 0.5;
    // A task's first round grows its whole support; regrowth moves it from the second on.
    let mut t = trainer(&f, cfg.clone(), &data);
    let mut plain = trainer(&f, tiny_config_toml(Method::Lrs), &data);
    for _ in 0..2 {
        t.round(&data).expect("round");
        plain.round(&data).expect("round");
    }
    for task in t.tasks() {
        for (module, &(o, i)) in t.modules() {
            let nnz = task.layers.get(module).map_or(0, |l| l.nnz());
            assert!(
                nnz <= cfg.sparsity.k_at_round(o, i, 1, cfg.rounds),
                "{module}: {nnz}"
            );
        }
    }
    assert_ne!(
        task_snapshot(t.tasks()),
        task_snapshot(plain.tasks()),
        "regrowth changed nothing"
    );
}

#[test]
fn staged_growth_fills_the_budget_in_rescored_stages() {
    let f = fixture();
    let data = tiny_data(2, 8);
    let mut cfg = tiny_config_toml(Method::Lrs);
    cfg.task.support_stages = 3;
    let run = || {
        let mut t = trainer(&f, cfg.clone(), &data);
        let before = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
        t.round(&data).expect("round");
        let after = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
        (t, before, after)
    };
    let (t, before, after) = run();
    assert!(after < before - 1e-3, "{before} → {after}");
    // Every stage grows, the last to the round's whole budget.
    for task in t.tasks() {
        for (module, &(o, i)) in t.modules() {
            let nnz = task.layers.get(module).map_or(0, |l| l.nnz());
            assert_eq!(
                nnz,
                cfg.sparsity.k_at_round(o, i, 0, cfg.rounds),
                "{module}"
            );
        }
    }
    // Later stages are scored at the values the earlier ones fitted: not one-shot growth.
    let mut plain = trainer(&f, tiny_config_toml(Method::Lrs), &data);
    plain.round(&data).expect("round");
    assert_ne!(task_snapshot(t.tasks()), task_snapshot(plain.tasks()));
    // And reproducible.
    assert_eq!(task_snapshot(t.tasks()), task_snapshot(run().0.tasks()));
    // Zero stages is a config error naming the key.
    let err = TrainConfig::from_toml_str("[task]\nsupport_stages = 0\n", "<inline>")
        .expect_err("zero stages refused");
    assert!(err.to_string().contains("task.support_stages"), "{err}");
}

#[test]
fn a_staged_sparse_head_ends_at_its_budget() {
    let f = fixture();
    let data = tiny_data(2, 8);
    let mut cfg = tiny_config_toml(Method::HeadOnly);
    cfg.task.head_nnz = 5;
    cfg.task.support_stages = 2;
    cfg.sparsity.anneal_start = 1.0;
    cfg.validate().expect("config");
    let heads = |cfg: &TrainConfig| {
        let mut t = trainer(&f, cfg.clone(), &data);
        t.round(&data).expect("round");
        t.tasks()
            .iter()
            .map(|task| {
                task.head[HEAD_WEIGHT]
                    .flatten_all()
                    .and_then(|w| w.to_vec1::<f32>())
                    .expect("head")
            })
            .collect::<Vec<_>>()
    };
    let staged = heads(&cfg);
    for head in &staged {
        assert_eq!(head.iter().filter(|v| **v != 0.0).count(), 5, "{head:?}");
    }
    cfg.task.support_stages = 1;
    assert_ne!(staged, heads(&cfg), "the stages changed nothing");
}

#[test]
fn swap_steps_keep_the_budget_and_never_raise_the_training_loss() {
    // The same round with and without swap steps, for S (lrs) and for a sparse head: the
    // shared phase comes first and is the same, so each task's swaps start from the grown
    // support and are kept only where its training loss falls.
    let f = fixture();
    let data = tiny_data(3, 8);
    let mut lrs = tiny_config_toml(Method::Lrs);
    lrs.sparsity.anneal_start = 1.0;
    let mut head = tiny_config_toml(Method::HeadOnly);
    head.task.head_nnz = 5;
    head.sparsity.anneal_start = 1.0;
    for cfg in [lrs, head] {
        let fitted = |swaps: usize| {
            let mut cfg = cfg.clone();
            cfg.task.support_swaps = swaps;
            cfg.validate().expect("config");
            let mut t = trainer(&f, cfg, &data);
            t.round(&data).expect("round");
            let loss = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
            (t, loss)
        };
        let (plain, plain_loss) = fitted(0);
        let (swapped, swapped_loss) = fitted(3);
        eprintln!(
            "{:?}: training loss {plain_loss:.5} → {swapped_loss:.5} with swaps",
            cfg.method
        );
        assert!(
            swapped_loss <= plain_loss + 1e-6,
            "{plain_loss} → {swapped_loss}"
        );
        assert_ne!(
            task_snapshot(swapped.tasks()),
            task_snapshot(plain.tasks()),
            "no swap was kept"
        );
        for task in swapped.tasks() {
            for (module, &(o, i)) in swapped.modules() {
                let nnz = task.layers.get(module).map_or(0, |l| l.nnz());
                let k = match cfg.method {
                    Method::Lrs => cfg.sparsity.k_at_round(o, i, 0, cfg.rounds),
                    _ => 0,
                };
                assert_eq!(nnz, k, "{module}");
            }
            if cfg.task.head_nnz > 0 {
                let w: Vec<f32> = task.head[HEAD_WEIGHT]
                    .flatten_all()
                    .and_then(|w| w.to_vec1())
                    .expect("head");
                assert_eq!(w.iter().filter(|v| **v != 0.0).count(), 5, "{w:?}");
            }
        }
        // Reproducible.
        assert_eq!(
            task_snapshot(swapped.tasks()),
            task_snapshot(fitted(3).0.tasks())
        );
    }
}

#[test]
fn per_task_lora_learns_a_pair_per_target_module_reproducibly() {
    let f = fixture();
    let data = tiny_data(2, 8);
    let mut cfg = tiny_config_toml(Method::Lora);
    cfg.lora_rank = Some(3);
    cfg.task.lr = 1e-2;
    let mut t = trainer(&f, cfg.clone(), &data);
    let before = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    t.round(&data).expect("round");
    let after = t.evaluate(&data, Part::Train).expect("eval").mean_loss();
    assert!(after < before - 1e-3, "{before} → {after}");
    for task in t.tasks() {
        assert_eq!(task.lora.len(), t.modules().len());
        for (module, part) in &task.lora {
            let (o, i) = t.modules()[module];
            assert_eq!((part.a.dims(), part.b.dims()), (&[3, i][..], &[o, 3][..]));
            let b_norm: f32 = part
                .b
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(b_norm > 0.0, "{module}: B never moved");
        }
        assert_eq!(task.nnz(), 0);
    }
    let mut again = trainer(&f, cfg, &data);
    again.round(&data).expect("round");
    let a_bits = |t: &Trainer| -> Vec<Vec<u32>> {
        t.tasks()
            .iter()
            .flat_map(|task| task.lora.values().map(|p| bits(&p.b)))
            .collect()
    };
    assert_eq!(a_bits(&t), a_bits(&again));
}

/// `task_layers = 1`: per-task parts only in the top layer, U and V in both. The task phase
/// and personalization run from cached top-layer states; their losses must equal the full
/// forward pass's, and no task may carry a part below the top layer.
#[test]
fn per_task_parts_in_the_top_layer_only_agree_with_the_full_forward() {
    let f = fixture();
    let data = tiny_data(3, 8);
    let cfg = TrainConfig {
        target_modules: vec!["query".into(), "value".into()],
        task_layers: 1,
        task_head: false,
        ..tiny_config_toml(Method::Lrs)
    };
    let mut t = trainer(&f, cfg, &data);
    assert_eq!(t.modules().len(), 4, "query and value of both layers");
    assert_eq!(t.task_modules().len(), 2);
    assert!(t
        .task_modules()
        .keys()
        .all(|m| m.starts_with("encoder.layer.1.")));
    t.round(&data).expect("round");
    for task in t.tasks() {
        assert!(
            task.layers
                .keys()
                .all(|m| m.starts_with("encoder.layer.1.")),
            "{:?}",
            task.layers.keys().collect::<Vec<_>>()
        );
        assert!(task.nnz() > 0, "the sparse part learned nothing");
    }
    let new = tiny_data(4, 8);
    let rows = &new.tasks[3].train;
    let full_loss = |t: &Trainer, fitted: &lrs_nn::TaskDelta| -> f64 {
        let z = t.logits_of(fitted, rows).expect("logits");
        z.iter()
            .zip(rows)
            .map(|(&z, r)| {
                let (z, y) = (f64::from(z), if r.positive { 1.0 } else { 0.0 });
                z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
            })
            .sum::<f64>()
            / rows.len() as f64
    };
    t.refresh_task_cache(rows).expect("refresh");
    let (fitted, loss) = t.personalize("t3", rows).expect("personalize");
    let full = full_loss(&t, &fitted);
    assert!(
        (full - loss).abs() < 1e-4,
        "cached {loss} vs full forward {full}"
    );
    // After another shared phase the cached states are stale and dropped; rows are then
    // computed on the fly at the same point, with the new factors.
    t.shared_phase(&data).expect("shared phase");
    let (fitted, loss) = t.personalize("t3", rows).expect("personalize");
    let full = full_loss(&t, &fitted);
    assert!(
        (full - loss).abs() < 1e-4,
        "after a shared phase: cached {loss} vs full forward {full}"
    );
    // Evaluation scores every row from states cached below the top layer: the same numbers as
    // the full forward pass, task by task.
    let eval = t.evaluate(&data, Part::Test).expect("evaluate");
    for ((task, rows), m) in t.tasks().iter().zip(&data.tasks).zip(&eval.tasks) {
        let z = t.logits_of(task, &rows.test).expect("logits");
        let labels: Vec<bool> = rows.test.iter().map(|r| r.positive).collect();
        let auc = lrs_train::trainer::roc_auc(&z, &labels);
        assert_eq!(m.rows, rows.test.len());
        match (m.auc, auc) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "AUC {a} vs full forward {b}"),
            (a, b) => assert_eq!(a, b),
        }
    }
    let bad = TrainConfig {
        task_layers: 3,
        ..tiny_config_toml(Method::Lrs)
    };
    let model = Trainer::load_model(&f.ckpt, &bad, &candle_core::Device::Cpu).expect("model");
    assert!(matches!(
        Trainer::new(model, bad, &data),
        Err(TrainError::Config {
            field: "task_layers",
            ..
        })
    ));
}

#[test]
fn a_random_core_start_is_seeded_per_task_and_off_by_default() {
    let f = fixture();
    let core = |t: &Trainer, task: usize| -> Vec<f32> {
        let layer = t.tasks()[task].layers.values().next().expect("a layer");
        layer.w.as_ref().expect("w").to_vec1().expect("f32")
    };
    let data = tiny_data(3, 6);
    let ones = trainer(&f, tiny_config_toml(Method::Lrs), &data);
    assert!(core(&ones, 0).iter().all(|&w| w == 1.0));

    let mut cfg = tiny_config_toml(Method::Lrs);
    cfg.task.core_init_std = 0.5;
    let drawn = trainer(&f, cfg.clone(), &data);
    let (w0, w1) = (core(&drawn, 0), core(&drawn, 1));
    assert_ne!(w0, w1, "tasks draw their own start");
    assert!(w0.iter().all(|w| w.is_finite() && *w != 1.0), "{w0:?}");
    // The same task gets the same start in another task order (keyed by its id).
    let mut reversed = data.clone();
    reversed.tasks.reverse();
    let other = trainer(&f, cfg.clone(), &reversed);
    assert_eq!(core(&other, 2), w0);
    // Another seed draws another start.
    cfg.seed += 1;
    assert_ne!(core(&trainer(&f, cfg.clone(), &data), 0), w0);

    cfg.task.core_init_std = -1.0;
    let model = Trainer::load_model(&f.ckpt, &cfg, &candle_core::Device::Cpu).expect("model");
    let err = Trainer::new(model, cfg, &data).expect_err("negative std refused");
    assert!(err.to_string().contains("task.core_init_std"), "{err}");
}

/// `[shared] task_parts = false`: the shared phase computes every row with neutral per-task
/// parts, so what the tasks hold cannot change it; with the default it does.
#[test]
fn a_neutral_shared_phase_ignores_the_task_parts() {
    let f = fixture();
    let data = tiny_data(3, 8);
    let shared_after = |task_parts: bool, perturb: bool| {
        let mut cfg = tiny_config_toml(Method::Lrs);
        cfg.shared.task_parts = task_parts;
        let mut t = trainer(&f, cfg, &data);
        t.round(&data).expect("round");
        if perturb {
            // Another task phase moves every task's parts (w, S) further.
            t.task_phase(&data).expect("task phase");
        }
        let before = task_snapshot(t.tasks());
        t.shared_phase(&data).expect("shared phase");
        assert_eq!(task_snapshot(t.tasks()), before);
        shared_snapshot(&t)
    };
    assert_eq!(shared_after(false, false), shared_after(false, true));
    assert_ne!(shared_after(true, false), shared_after(true, true));
}

#[test]
fn an_intercept_only_task_head_learns_each_tasks_base_rate() {
    // Two tasks over the same texts: 3 of every 4 rows positive in one, 1 of 4 in the other.
    let f = fixture();
    let splits: Vec<Split> = [("many", 3), ("few", 1)]
        .into_iter()
        .map(|(task, positives)| {
            let rows = |n: usize, offset: usize| -> Vec<Example> {
                (offset..offset + n)
                    .map(|i| Example {
                        task: task.into(),
                        text: format!("{} {}", WORDS[i % 8], WORDS[(i * 3 + 1) % 8]),
                        label: if i % 4 < positives { 1.0 } else { 0.0 },
                        timestamp: None,
                    })
                    .collect()
            };
            Split {
                task: task.into(),
                train: rows(16, 0),
                test: rows(4, 16),
            }
        })
        .collect();
    let data = TaskData::from_splits(&splits, &HashEncoder).expect("data");
    let mut cfg = tiny_config_toml(Method::Lrs);
    cfg.task_head = true;
    cfg.task.head_weight = false;
    cfg.validate().expect("config");
    let mut t = trainer(&f, cfg.clone(), &data);
    t.round(&data).expect("round");
    let bias: Vec<f32> = t
        .tasks()
        .iter()
        .map(|task| {
            let names: Vec<&str> = task.head.keys().map(String::as_str).collect();
            assert_eq!(
                names,
                [HEAD_BIAS],
                "{}: only the bias is kept",
                task.task_id
            );
            task.head[HEAD_BIAS].to_vec1::<f32>().expect("bias")[0]
        })
        .collect();
    // Same texts, so the shared parts score both tasks alike: the intercepts carry the base
    // rates, apart by more than the steps' noise.
    eprintln!("intercepts {bias:?}");
    assert!(bias[0] > bias[1] + 0.1, "intercepts {bias:?}");

    cfg.task.head_nnz = 2;
    let err = cfg.validate().expect_err("a sparse weight needs a weight");
    assert!(err.to_string().contains("task.head_nnz"), "{err}");
    cfg.task.head_nnz = 0;
    cfg.method = Method::Global;
    let err = cfg.validate().expect_err("global has no task head");
    assert!(err.to_string().contains("task.head_weight"), "{err}");
}
