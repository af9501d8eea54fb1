//! Tiny random BERT: equivalence with the plain model, gradients, dropout, mixed-task batches.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use super::head::{head, HeadKind};
use super::model::{BertInput, BertModel, Pooling};
use super::LrsOptions;
use crate::hub::BertCheckpoint;
use crate::layer_delta::{LayerDelta, SparsePart};
use crate::sparse_delta::hard_threshold;
use crate::task_batch::TaskBatch;
use crate::testing::{seeded_tensor, seeded_weights, tiny_config, write_seeded_checkpoint};
use crate::TaskDelta;

fn input(dev: &Device) -> BertInput {
    let ids = Tensor::new(
        &[
            [1u32, 17, 42, 8, 2, 0],
            [1, 5, 99, 2, 0, 0],
            [1, 3, 4, 5, 6, 2],
        ],
        dev,
    )
    .unwrap();
    let mask = Tensor::new(
        &[
            [1u32, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 1],
        ],
        dev,
    )
    .unwrap();
    BertInput {
        token_type_ids: ids.zeros_like().unwrap(),
        input_ids: ids,
        attention_mask: mask,
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// N(`mean`, `std`²) draws of `shape` from the ChaCha20 stream keyed by `seed`, as `dtype` on
/// `device`.
fn seeded(
    shape: &[usize],
    mean: f32,
    std: f32,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Tensor {
    seeded_tensor(shape, mean, std, seed)
        .and_then(|t| Ok(t.to_device(device)?.to_dtype(dtype)?))
        .unwrap()
}

/// [`seeded_weights`] of `cfg` from `seed`, as `dtype` on `device`.
fn weights_as(
    cfg: &crate::bert::config::BertConfig,
    dtype: DType,
    device: &Device,
    seed: u64,
) -> HashMap<String, Tensor> {
    seeded_weights(cfg, seed)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.to_device(device).unwrap().to_dtype(dtype).unwrap()))
        .collect()
}

/// Seeded `U` and `V` for every adapted layer (a fresh model has both at zero, which hides the
/// factors' and `w`'s gradients and makes the adapter a no-op).
fn randomize_shared(vm: &VarMap) {
    let data = vm.data().lock().unwrap();
    // Sorted by name, so each factor gets the same seed in every process.
    let mut named: Vec<_> = data.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    for (j, (name, var)) in named.into_iter().enumerate() {
        let seed = if name.ends_with("lrs_u") {
            1000
        } else if name.ends_with("lrs_v") {
            3000
        } else {
            continue;
        };
        let t = seeded(
            var.dims(),
            0.0,
            0.3,
            seed + j as u64,
            var.dtype(),
            var.device(),
        );
        var.set(&t).unwrap();
    }
}

fn random_task(model: &BertModel, id: &str, k: usize, seed_shift: f64) -> TaskDelta {
    let opts = model.lrs_options().unwrap();
    let mut t = TaskDelta::new(id, opts.rank);
    let (dtype, device) = (model.dtype(), model.device());
    for (j, (name, (o, i))) in model.adapted_modules().into_iter().enumerate() {
        // Each task (`seed_shift`) and module draws from its own stream.
        let seed = 2000 + 100 * seed_shift as u64 + 2 * j as u64;
        let w = (seeded(&[opts.rank], 1.0, 0.5, seed, dtype, device) + seed_shift).unwrap();
        let dense = seeded(&[o, i], 0.0, 0.3, seed + 1, dtype, device);
        t.layers.insert(
            name,
            LayerDelta {
                w: Some(w),
                sparse: SparsePart::Sparse(hard_threshold(&dense, k).unwrap()),
            },
        );
    }
    t
}

#[test]
fn lrs_model_without_adapters_is_bit_identical_to_plain() {
    let dir = tempfile::tempdir().unwrap();
    write_seeded_checkpoint(dir.path(), &tiny_config(), 1).unwrap();
    let ckpt = BertCheckpoint::from_dir(dir.path()).unwrap();
    let dev = Device::Cpu;
    let plain = BertModel::load(&ckpt, None, &dev, DType::F32).unwrap();
    let lrs = BertModel::load(&ckpt, Some(&LrsOptions::bert_default(4)), &dev, DType::F32).unwrap();
    // query, value, intermediate.dense, and `output.dense` matches both output blocks.
    assert_eq!(lrs.adapted_modules().len(), 2 * 5);
    // Bit-identical on an unpadded batch. On a padded one the plain model runs its blocks
    // after attention on packed tokens (the adapted model cannot: every linear is adapted),
    // so only the real tokens are compared there, to rounding.
    let padded = input(&dev);
    let x = BertInput::from_ids(padded.input_ids.narrow(0, 2, 1).unwrap()).unwrap();
    let want = flat(&plain.forward_t(&x, None, false).unwrap());
    assert_eq!(want, flat(&lrs.forward_t(&x, None, false).unwrap()));
    let empty = TaskDelta::new("nobody", 4);
    let batch = TaskBatch::single(&empty, 1, &dev).unwrap();
    assert_eq!(want, flat(&lrs.forward_t(&x, Some(&batch), false).unwrap()));
    assert_eq!(
        want,
        flat(&plain.forward_t(&x, Some(&batch), false).unwrap())
    );
    let a = plain.forward_t(&padded, None, false).unwrap();
    let b = lrs.forward_t(&padded, None, false).unwrap();
    for (i, len) in [5usize, 4, 6].into_iter().enumerate() {
        let cut = |t: &Tensor| t.narrow(0, i, 1).unwrap().narrow(1, 0, len).unwrap();
        assert!(max_diff(&cut(&a), &cut(&b)) <= 1e-5, "row {i}");
    }

    // The same weights under a `bert.` prefix load to the same model.
    let dir2 = tempfile::tempdir().unwrap();
    let st = candle_core::safetensors::load(dir.path().join("model.safetensors"), &dev).unwrap();
    let prefixed: HashMap<String, Tensor> = st
        .into_iter()
        .map(|(k, v)| (format!("bert.{k}"), v))
        .collect();
    candle_core::safetensors::save(&prefixed, dir2.path().join("model.safetensors")).unwrap();
    std::fs::copy(
        dir.path().join("config.json"),
        dir2.path().join("config.json"),
    )
    .unwrap();
    let pre = BertModel::load(
        &BertCheckpoint::from_dir(dir2.path()).unwrap(),
        None,
        &dev,
        DType::F32,
    )
    .unwrap();
    assert_eq!(pre.base_info().key_prefix, "bert.");
    assert_eq!(want, flat(&pre.forward_t(&x, None, false).unwrap()));
}

#[test]
fn dropout_is_active_in_training_and_identity_in_eval() {
    let dev = Device::Cpu;
    let cfg = tiny_config();
    let base = VarBuilder::from_tensors(weights_as(&cfg, DType::F32, &dev, 1), DType::F32, &dev);
    let model = BertModel::new(&cfg, base, None).unwrap();
    let x = input(&dev);
    let e1 = model.forward_t(&x, None, false).unwrap();
    let e2 = model.forward_t(&x, None, false).unwrap();
    assert_eq!(flat(&e1), flat(&e2));
    let t1 = model.forward_t(&x, None, true).unwrap();
    let t2 = model.forward_t(&x, None, true).unwrap();
    assert!(
        max_diff(&t1, &t2) > 1e-3,
        "two training passes should differ"
    );
    assert!(
        max_diff(&t1, &e1) > 1e-3,
        "training pass should differ from eval"
    );
}

#[test]
fn every_trainable_variable_receives_a_gradient() {
    let dev = Device::Cpu;
    let cfg = tiny_config();
    let base = VarBuilder::from_tensors(weights_as(&cfg, DType::F32, &dev, 2), DType::F32, &dev);
    let shared = VarMap::new();
    let opts = LrsOptions::bert_default(3);
    let model = BertModel::new(&cfg, base, Some((&opts, &shared))).unwrap();
    let head = head(
        cfg.hidden_size,
        HeadKind::Classification { classes: 2 },
        VarBuilder::from_varmap(&shared, DType::F32, &dev).pp("head"),
    )
    .unwrap();
    randomize_shared(&shared);
    // Two tasks training at once: w and a dense S scratch on every adapted layer.
    let mut tasks = [TaskDelta::new("a", 3), TaskDelta::new("b", 3)];
    let mut task_vars = Vec::new();
    for (ti, t) in tasks.iter_mut().enumerate() {
        for (j, (name, shape)) in model.adapted_modules().into_iter().enumerate() {
            let seed = 3000 + 100 * ti as u64 + j as u64;
            let w = Var::from_tensor(&seeded(&[3], 1.0, 0.3, seed, DType::F32, &dev)).unwrap();
            let mut d = LayerDelta {
                w: Some(w.as_tensor().clone()),
                sparse: SparsePart::None,
            };
            let s = d.start_dense_scratch(shape, w.as_tensor()).unwrap();
            t.layers.insert(name.clone(), d);
            task_vars.push((format!("{}:{name}.w", t.task_id), w));
            task_vars.push((format!("{}:{name}.S", t.task_id), s));
        }
    }
    let x = input(&dev);
    let batch = TaskBatch::new(vec![&tasks[0], &tasks[1]], &[0, 1, 0], &dev).unwrap();
    let hidden = model.forward_t(&x, Some(&batch), true).unwrap();
    let pooled = super::model::pool(&hidden, &x.attention_mask, Pooling::Mean).unwrap();
    let loss = head
        .loss(
            &head.forward(&pooled).unwrap(),
            &Tensor::new(&[0u32, 1, 1], &dev).unwrap(),
        )
        .unwrap();
    let grads = loss.backward().unwrap();
    let mut all: Vec<(String, Var)> = shared
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        all.len(),
        2 * 5 * 2 + 2,
        "U, V per adapted layer + head weight/bias"
    );
    all.extend(task_vars);
    for (name, var) in all {
        let g = grads
            .get(&var)
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let norm: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(norm > 0.0, "{name}: zero gradient");
    }
}

#[test]
fn full_model_gradients_match_finite_differences() {
    let dev = Device::Cpu;
    let cfg = tiny_config();
    let base = VarBuilder::from_tensors(weights_as(&cfg, DType::F64, &dev, 3), DType::F64, &dev);
    let shared = VarMap::new();
    let opts = LrsOptions::bert_default(2);
    let model = BertModel::new(&cfg, base, Some((&opts, &shared))).unwrap();
    randomize_shared(&shared);
    let name = "encoder.layer.0.intermediate.dense";
    let shape = model.adapted_modules()[name];
    let w = Var::from_tensor(&Tensor::new(&[0.7f64, 1.3], &dev).unwrap()).unwrap();
    let mut d = LayerDelta {
        w: Some(w.as_tensor().clone()),
        sparse: SparsePart::None,
    };
    let s = d.start_dense_scratch(shape, w.as_tensor()).unwrap();
    let mut task = TaskDelta::new("a", 2);
    task.layers.insert(name.into(), d);
    let x = input(&dev);
    let batch = TaskBatch::single(&task, 3, &dev).unwrap();
    let probe = seeded(&[3, 6, cfg.hidden_size], 0.0, 1.0, 4000, DType::F64, &dev);
    let loss_t = || {
        model
            .forward_t(&x, Some(&batch), false)
            .unwrap()
            .mul(&probe)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let grads = loss_t().backward().unwrap();
    let u = shared.data().lock().unwrap()[&format!("{name}.lrs_u")].clone();
    let v = shared.data().lock().unwrap()[&format!("{name}.lrs_v")].clone();
    for (var, what) in [(&u, "U"), (&v, "V"), (&w, "w"), (&s, "S")] {
        let g = grads
            .get(var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let shape = var.shape().clone();
        // A spread of entries (the whole tensor would be slow for S).
        for i in (0..base.len()).step_by((base.len() / 7).max(1)) {
            let eps = 1e-5;
            let at = |delta: f64| {
                let mut p = base.clone();
                p[i] += delta;
                var.set(&Tensor::from_vec(p, &shape, &dev).unwrap())
                    .unwrap();
                loss_t().to_scalar::<f64>().unwrap()
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), &shape, &dev).unwrap())
                .unwrap();
            let err = (fd - g[i]).abs() / (1.0 + fd.abs());
            assert!(
                err < 1e-5,
                "{what}[{i}]: autograd {} vs finite difference {fd}",
                g[i]
            );
        }
    }
}

#[test]
fn mixed_task_batch_equals_per_row_merged_models() {
    let dev = Device::Cpu;
    let cfg = tiny_config();
    let weights = weights_as(&cfg, DType::F32, &dev, 4);
    let shared = VarMap::new();
    let opts = LrsOptions::bert_default(4);
    let model = BertModel::new(
        &cfg,
        VarBuilder::from_tensors(weights.clone(), DType::F32, &dev),
        Some((&opts, &shared)),
    )
    .unwrap();
    randomize_shared(&shared);
    let a = random_task(&model, "a", 20, 0.0);
    let b = random_task(&model, "b", 5, 1.0);
    let none = TaskDelta::new("none", 4);
    let rows = [&a, &b, &none];
    let x = input(&dev);
    let got = model
        .forward_t(&x, Some(&TaskBatch::per_row(&rows, &dev).unwrap()), false)
        .unwrap();
    for (i, task) in rows.iter().enumerate() {
        // Merge W0 + s·U diag(w) Vᵀ + S into a plain model and run row i alone.
        let mut merged = weights.clone();
        for l in model.linears() {
            if let Some(lr) = l.low_rank() {
                let d = task.layers.get(l.name());
                let w = d
                    .and_then(|d| d.w.clone())
                    .unwrap_or_else(|| Tensor::ones(4, DType::F32, &dev).unwrap());
                let mut m = (l.weight()
                    + (lr
                        .u
                        .broadcast_mul(&w.unsqueeze(0).unwrap())
                        .unwrap()
                        .matmul(&lr.v.t().unwrap())
                        .unwrap()
                        * lr.scale)
                        .unwrap())
                .unwrap();
                if let Some(SparsePart::Sparse(s)) = d.map(|d| &d.sparse) {
                    m = (m + s.to_dense().unwrap()).unwrap();
                }
                merged.insert(format!("{}.weight", l.name()), m);
            }
        }
        let plain = BertModel::new(
            &cfg,
            VarBuilder::from_tensors(merged, DType::F32, &dev),
            None,
        )
        .unwrap();
        let xi = BertInput {
            input_ids: x.input_ids.narrow(0, i, 1).unwrap(),
            attention_mask: x.attention_mask.narrow(0, i, 1).unwrap(),
            token_type_ids: x.token_type_ids.narrow(0, i, 1).unwrap(),
        };
        let want = plain.forward_t(&xi, None, false).unwrap();
        // Real tokens only: the merged plain model leaves its padded positions at zero.
        let len = [5usize, 4, 6][i];
        let diff = max_diff(
            &got.narrow(0, i, 1).unwrap().narrow(1, 0, len).unwrap(),
            &want.narrow(1, 0, len).unwrap(),
        );
        assert!(
            diff <= 1e-5,
            "row {i} ({}): max abs diff {diff}",
            task.task_id
        );
    }
}

#[test]
fn forward_from_a_cached_prefix_equals_the_full_forward_at_every_resume_point() {
    use super::encoder::LayerStage;
    use super::prefix::{PrefixState, ResumePoint};
    let dev = Device::Cpu;
    let cfg = tiny_config();
    let weights = weights_as(&cfg, DType::F32, &dev, 5);
    let cases: [(&[&str], Option<ResumePoint>); 5] = [
        (
            &["query", "value"],
            Some(ResumePoint {
                layer: 0,
                stage: LayerStage::Attention,
            }),
        ),
        (
            &["encoder.layer.1.attention.output.dense"],
            Some(ResumePoint {
                layer: 1,
                stage: LayerStage::Attention,
            }),
        ),
        (
            &[
                "encoder.layer.1.intermediate.dense",
                "encoder.layer.1.output.dense",
            ],
            Some(ResumePoint {
                layer: 1,
                stage: LayerStage::Ffn,
            }),
        ),
        (
            &["encoder.layer.1.output.dense"],
            Some(ResumePoint {
                layer: 1,
                stage: LayerStage::FfnOutput,
            }),
        ),
        (&["no.such.module"], None),
    ];
    for (targets, want_point) in cases {
        let shared = VarMap::new();
        let opts = LrsOptions {
            target_modules: targets.iter().map(|s| s.to_string()).collect(),
            ..LrsOptions::bert_default(4)
        };
        let model = BertModel::new(
            &cfg,
            VarBuilder::from_tensors(weights.clone(), DType::F32, &dev),
            Some((&opts, &shared)),
        )
        .unwrap();
        assert_eq!(model.resume_point(), want_point, "{targets:?}");
        randomize_shared(&shared);
        let a = random_task(&model, "a", 7, 0.0);
        let b = random_task(&model, "b", 3, 1.0);
        let rows = [&a, &b, &a];
        let tb = TaskBatch::per_row(&rows, &dev).unwrap();
        let x = input(&dev);
        let want = model.forward_t(&x, Some(&tb), false).unwrap();
        let prefix = model.prefix(&x).unwrap();
        let got = model
            .forward_from(&prefix, &x.attention_mask, Some(&tb), false)
            .unwrap();
        let diff = max_diff(&got, &want);
        assert!(diff <= 1e-5, "{targets:?}: batch prefix, diff {diff}");

        // Per-row states trimmed to their own length, then re-stacked with zero padding:
        // what a trainer caching one state per text does.
        let lens = [5usize, 4, 6];
        let singles: Vec<PrefixState> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| prefix.row(i, len).unwrap())
            .collect();
        let stacked = PrefixState::stack_padded(&singles.iter().collect::<Vec<_>>()).unwrap();
        let got = model
            .forward_from(&stacked, &x.attention_mask, Some(&tb), false)
            .unwrap();
        for (i, &len) in lens.iter().enumerate() {
            let d = max_diff(
                &got.narrow(0, i, 1).unwrap().narrow(1, 0, len).unwrap(),
                &want.narrow(0, i, 1).unwrap().narrow(1, 0, len).unwrap(),
            );
            assert!(
                d <= 1e-5,
                "{targets:?}: row {i} from a re-stacked prefix, diff {d}"
            );
        }
    }
}

#[test]
fn every_adapter_variable_gets_a_gradient_through_forward_from() {
    let dev = Device::Cpu;
    let cfg = tiny_config();
    let weights = weights_as(&cfg, DType::F32, &dev, 6);
    let shared = VarMap::new();
    let opts = LrsOptions {
        target_modules: vec!["encoder.layer.1.output.dense".into()],
        ..LrsOptions::bert_default(4)
    };
    let model = BertModel::new(
        &cfg,
        VarBuilder::from_tensors(weights, DType::F32, &dev),
        Some((&opts, &shared)),
    )
    .unwrap();
    randomize_shared(&shared);
    let mut task = random_task(&model, "a", 5, 0.0);
    let name = "encoder.layer.1.output.dense";
    let w = Var::from_tensor(&Tensor::new(&[1f32, 0.5, 2.0, 1.0], &dev).unwrap()).unwrap();
    let layer = task.layers.get_mut(name).unwrap();
    layer.w = Some(w.as_tensor().clone());
    let s = layer.start_dense_scratch((32, 64), w.as_tensor()).unwrap();
    let x = input(&dev);
    let prefix = model.prefix(&x).unwrap();
    let tb = TaskBatch::single(&task, 3, &dev).unwrap();
    let out = model
        .forward_from(&prefix, &x.attention_mask, Some(&tb), false)
        .unwrap();
    let grads = out.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let norm = |v: &Var| -> f32 {
        grads
            .get(v)
            .map(|g| {
                g.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .unwrap_or(0.0)
    };
    assert!(norm(&w) > 0.0, "w gets no gradient");
    assert!(norm(&s) > 0.0, "S gets no gradient");
    for (n, v) in shared.data().lock().unwrap().iter() {
        assert!(norm(v) > 0.0, "{n} gets no gradient");
    }
}

/// A tiny rank-4 LRS model (default targets) with random base weights and a random shared
/// factor; the var map owning `U`, `V` comes along.
fn random_lrs_model(dev: &Device) -> (BertModel, VarMap) {
    let cfg = tiny_config();
    let weights = weights_as(&cfg, DType::F32, dev, 7);
    let shared = VarMap::new();
    let opts = LrsOptions::bert_default(4);
    let model = BertModel::new(
        &cfg,
        VarBuilder::from_tensors(weights, DType::F32, dev),
        Some((&opts, &shared)),
    )
    .unwrap();
    randomize_shared(&shared);
    (model, shared)
}

#[test]
fn inference_batches_use_the_fused_kernel_and_agree_with_the_per_task_path() {
    let dev = Device::Cpu;
    let (model, _shared) = random_lrs_model(&dev);
    let a = random_task(&model, "a", 20, 0.0);
    let b = random_task(&model, "b", 5, 1.0);
    let none = TaskDelta::new("none", 4);
    let rows = [&b, &a, &none];
    let x = input(&dev);
    let per_task = TaskBatch::per_row(&rows, &dev).unwrap();
    assert!(!per_task.is_inference());
    // U and V are vars: past the first adapted layer only an inference batch fuses.
    let want = model.forward_t(&x, Some(&per_task), false).unwrap();
    let fused = TaskBatch::per_row(&rows, &dev).unwrap().for_inference();
    let got = model.forward_t(&x, Some(&fused), false).unwrap();
    let diff = max_diff(&got, &want);
    assert!(diff <= 1e-5, "fused vs per-task: {diff}");
}

#[test]
fn inference_batches_record_no_autograd_graph() {
    // A recorded graph keeps every intermediate of the forward pass alive until the output
    // is dropped: a server's peak memory per batch would be all layers' activations at once.
    let dev = Device::Cpu;
    let (model, _shared) = random_lrs_model(&dev);
    let a = random_task(&model, "a", 20, 0.0);
    let none = TaskDelta::new("none", 4);
    let rows = [&a, &none, &a];
    let x = input(&dev);
    let training = TaskBatch::per_row(&rows, &dev).unwrap();
    let tracked = model.forward_t(&x, Some(&training), false).unwrap();
    assert!(tracked.track_op(), "training batches must record the graph");
    let inference = TaskBatch::per_row(&rows, &dev).unwrap().for_inference();
    let out = model.forward_t(&x, Some(&inference), false).unwrap();
    assert!(
        !out.track_op(),
        "an inference forward recorded an autograd graph"
    );
    assert!(max_diff(&out, &tracked) <= 1e-5);
}

/// The query/value configuration in f32 runs the fused kernels (adapted linear, attention,
/// layer norm, frozen FFN block); the same model in f64 runs candle's composite ops. Their
/// outputs and the gradients of every `U` and `V` in every layer must agree, and none may be
/// zero.
#[test]
fn fused_f32_pass_matches_the_f64_composite_and_reaches_every_adapted_layer() {
    let dev = Device::Cpu;
    let cfg = tiny_config();
    let opts = LrsOptions {
        target_modules: vec!["query".into(), "value".into()],
        rank: 3,
        scale: 0.5,
    };
    let build = |dtype| {
        let base = VarBuilder::from_tensors(weights_as(&cfg, dtype, &dev, 5), dtype, &dev);
        let shared = VarMap::new();
        let model = BertModel::new(&cfg, base, Some((&opts, &shared))).unwrap();
        (model, shared)
    };
    let (m32, s32) = build(DType::F32);
    let (m64, s64) = build(DType::F64);
    randomize_shared(&s32);
    for (name, var) in s32.data().lock().unwrap().iter() {
        s64.data().lock().unwrap()[name]
            .set(&var.as_tensor().to_dtype(DType::F64).unwrap())
            .unwrap();
    }
    // Two tasks with cores, as in the shared phase (plain tensors, not variables).
    let tasks_as = |model: &BertModel, dtype| {
        ["a", "b"].map(|id| {
            let mut t = TaskDelta::new(id, 3);
            for (j, name) in model.adapted_modules().into_keys().enumerate() {
                let seed = 7000 + 10 * u64::from(id == "b") + j as u64;
                let w = seeded(&[3], 1.0, 0.4, seed, dtype, &dev);
                t.layers.insert(
                    name,
                    LayerDelta {
                        w: Some(w),
                        sparse: SparsePart::None,
                    },
                );
            }
            t
        })
    };
    let (t32, t64) = (tasks_as(&m32, DType::F32), tasks_as(&m64, DType::F64));
    assert_eq!(m32.adapted_modules().len(), 2 * cfg.num_hidden_layers);
    let x = input(&dev);
    let run = |model: &BertModel, tasks: &[TaskDelta; 2], dtype| {
        let batch = TaskBatch::new(vec![&tasks[0], &tasks[1]], &[0, 1, 0], &dev).unwrap();
        let hidden = model.forward_t(&x, Some(&batch), false).unwrap();
        let probe = seeded(hidden.dims(), 0.0, 1.0, 7100, dtype, &dev);
        let grads = (&hidden * probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        (hidden, grads)
    };
    let (h32, g32) = run(&m32, &t32, DType::F32);
    let (h64, g64) = run(&m64, &t64, DType::F64);
    assert!(max_diff(&h32.to_dtype(DType::F64).unwrap(), &h64) < 1e-4);
    let vars64 = s64.data().lock().unwrap().clone();
    let vars32 = s32.data().lock().unwrap().clone();
    assert_eq!(
        vars32.len(),
        2 * 2 * cfg.num_hidden_layers,
        "U and V per adapted layer"
    );
    for (name, v32) in &vars32 {
        let a = g32
            .get(v32)
            .unwrap_or_else(|| panic!("{name}: no gradient in the fused pass"))
            .to_dtype(DType::F64)
            .unwrap();
        let b = g64
            .get(&vars64[name])
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let scale = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(scale > 1e-6, "{name}: zero gradient");
        let err = max_diff(&a, b) / scale;
        assert!(err < 1e-3, "{name}: fused gradient off by {err} (relative)");
    }
}

/// A query/value model of the tiny config with a seeded shared factor, and two tasks with
/// cores and sparse parts on every adapted layer.
fn qv_model_and_tasks(dev: &Device) -> (BertModel, VarMap, TaskDelta, TaskDelta) {
    let cfg = tiny_config();
    let opts = LrsOptions {
        target_modules: vec!["query".into(), "value".into()],
        rank: 3,
        scale: 0.5,
    };
    let shared = VarMap::new();
    let model = BertModel::new(
        &cfg,
        VarBuilder::from_tensors(weights_as(&cfg, DType::F32, dev, 11), DType::F32, dev),
        Some((&opts, &shared)),
    )
    .unwrap();
    randomize_shared(&shared);
    let a = random_task(&model, "a", 9, 0.0);
    let b = random_task(&model, "b", 4, 1.0);
    (model, shared, a, b)
}

/// Token packing: in a padded batch the blocks after attention run on the real tokens only.
/// Every row must equal the same row run alone without padding (values and the gradient of a
/// task core), and the padded positions of the output must be zero.
#[test]
fn padded_batches_skip_padding_after_attention_and_match_each_row_alone() {
    let dev = Device::Cpu;
    let (model, _shared, a, b) = qv_model_and_tasks(&dev);
    let name = "encoder.layer.1.attention.self.value";
    let mut a = a;
    let w = Var::from_tensor(&Tensor::new(&[1.2f32, 0.7, -0.4], &dev).unwrap()).unwrap();
    a.layers.get_mut(name).unwrap().w = Some(w.as_tensor().clone());
    let x = input(&dev);
    let rows = [&a, &b, &a];
    let batch = model
        .forward_t(&x, Some(&TaskBatch::per_row(&rows, &dev).unwrap()), false)
        .unwrap();
    let probe = seeded(batch.dims(), 0.0, 1.0, 7200, DType::F32, &dev);
    let lens = [5usize, 4, 6];
    let mut alone_loss = Tensor::zeros((), DType::F32, &dev).unwrap();
    for (i, &len) in lens.iter().enumerate() {
        let cut = |t: &Tensor| t.narrow(0, i, 1).unwrap().narrow(1, 0, len).unwrap();
        let one = BertInput::from_ids(cut(&x.input_ids)).unwrap();
        let tb = TaskBatch::single(rows[i], 1, &dev).unwrap();
        let got = model.forward_t(&one, Some(&tb), false).unwrap();
        let d = max_diff(&got, &cut(&batch));
        assert!(d <= 1e-5, "row {i}: padded batch vs alone, diff {d}");
        let pads = batch
            .narrow(0, i, 1)
            .unwrap()
            .narrow(1, len, 6 - len)
            .unwrap();
        assert!(
            flat(&pads).iter().all(|&v| v == 0.0),
            "row {i}: padding not zero"
        );
        let term = (got * cut(&probe)).unwrap().sum_all().unwrap();
        alone_loss = (alone_loss + term).unwrap();
    }
    let batch_loss = (batch * probe).unwrap().sum_all().unwrap();
    let g_batch = batch_loss.backward().unwrap().get(&w).unwrap().clone();
    let g_alone = alone_loss.backward().unwrap().get(&w).unwrap().clone();
    let scale = f64::from(
        g_alone
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    );
    assert!(scale > 1e-6, "the core gets no gradient");
    assert!(max_diff(&g_batch, &g_alone) / scale < 1e-4);
}

/// A prefix state with its attention projections attached gives the same outputs and the
/// same gradients of the task parts (core and sparse values) as one without, and refuses
/// projections of another input.
#[test]
fn attached_projections_change_nothing_but_the_work() {
    use super::prefix::ResumePoint;
    let dev = Device::Cpu;
    let (model, _shared, a, _b) = qv_model_and_tasks(&dev);
    let x = input(&dev);
    let point = Some(ResumePoint {
        layer: 1,
        stage: super::encoder::LayerStage::Attention,
    });
    let plain = model.prefix_at(&x, point).unwrap();
    let cached = model.with_projections(plain.clone(), point).unwrap();
    assert!(cached.projections.is_some() && plain.projections.is_none());
    let run = |state: &super::prefix::PrefixState| {
        let mut task = a.clone();
        let mut vars = Vec::new();
        for (name, layer) in task.layers.iter_mut() {
            if !name.starts_with("encoder.layer.1.") {
                continue;
            }
            let w = Var::from_tensor(&layer.w.as_ref().unwrap().copy().unwrap()).unwrap();
            layer.w = Some(w.as_tensor().clone());
            vars.push(w);
            if let SparsePart::Sparse(s) = &layer.sparse {
                let v = Var::from_tensor(&s.values().copy().unwrap()).unwrap();
                let (o, i) = s.shape();
                let part =
                    crate::SparseDelta::new(o, i, s.indices().to_vec(), v.as_tensor().clone());
                layer.sparse = SparsePart::Sparse(part.unwrap());
                vars.push(v);
            }
        }
        let tb = TaskBatch::single(&task, 3, &dev).unwrap();
        let out = model
            .forward_from_at(state, &x.attention_mask, point, Some(&tb), false)
            .unwrap();
        let probe = seeded(out.dims(), 0.0, 1.0, 7300, DType::F32, &dev);
        let grads = (&out * probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g: Vec<Tensor> = vars.iter().map(|v| grads.get(v).unwrap().clone()).collect();
        (out, g)
    };
    let (want, want_g) = run(&plain);
    let (got, got_g) = run(&cached);
    assert!(max_diff(&got, &want) <= 1e-5);
    assert_eq!(want_g.len(), 4, "core and sparse values of query and value");
    for (g, w) in got_g.iter().zip(&want_g) {
        let scale = f64::from(
            w.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        );
        assert!(scale > 1e-6);
        assert!(max_diff(g, w) / scale < 1e-4);
    }
    // Projections of a shorter input do not fit this state's hidden states.
    let short = BertInput::from_ids(x.input_ids.narrow(1, 0, 4).unwrap()).unwrap();
    let mut wrong = plain.clone();
    wrong.projections = model
        .with_projections(model.prefix_at(&short, point).unwrap(), point)
        .unwrap()
        .projections;
    let tb = TaskBatch::single(&a, 3, &dev).unwrap();
    assert!(model
        .forward_from_at(&wrong, &x.attention_mask, point, Some(&tb), false)
        .is_err());
}
