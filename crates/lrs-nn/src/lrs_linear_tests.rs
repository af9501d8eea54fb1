//! Gradient checks (f64, central differences) and mixed-task batching for [`LrsLinear`].

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Module;

use super::*;
use crate::layer_delta::{LayerDelta, SparsePart};
use crate::lora_part::LoraPart;
use crate::sparse_delta::{hard_threshold, SparseDelta};
use crate::task_batch::TaskBatch;
use crate::TaskDelta;

const NAME: &str = "encoder.layer.0.attention.self.query";

/// N(0, 1) draws of `shape` from the ChaCha20 stream keyed by `seed`, as `dtype` on `dev`.
fn seeded(shape: &[usize], dev: &Device, dtype: DType, seed: u64) -> Tensor {
    crate::testing::seeded_tensor(shape, 0.0, 1.0, seed)
        .and_then(|t| Ok(t.to_device(dev)?.to_dtype(dtype)?))
        .expect("seeded tensor")
}

/// Checks `d loss / d var` from autograd against central finite differences.
fn check_grad(var: &Var, grad: &Tensor, loss: &dyn Fn() -> f64, what: &str) {
    let eps = 1e-6;
    let base = var
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let g = grad.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let shape = var.as_tensor().shape().clone();
    let mut max_err = 0f64;
    for i in 0..base.len() {
        let mut plus = base.clone();
        plus[i] += eps;
        var.set(&Tensor::from_vec(plus, &shape, &Device::Cpu).unwrap())
            .unwrap();
        let lp = loss();
        let mut minus = base.clone();
        minus[i] -= eps;
        var.set(&Tensor::from_vec(minus, &shape, &Device::Cpu).unwrap())
            .unwrap();
        let lm = loss();
        let fd = (lp - lm) / (2.0 * eps);
        max_err = max_err.max((fd - g[i]).abs() / (1.0 + fd.abs()));
    }
    var.set(&Tensor::from_vec(base, &shape, &Device::Cpu).unwrap())
        .unwrap();
    assert!(max_err < 1e-6, "{what}: max relative error {max_err}");
    assert!(
        g.iter().any(|v| *v != 0.0),
        "{what}: gradient is identically zero"
    );
}

#[test]
fn gradients_match_finite_differences() {
    let dev = Device::Cpu;
    let dt = DType::F64;
    let (out_dim, in_dim, r) = (4, 5, 3);
    let u = Var::from_tensor(&seeded(&[out_dim, r], &dev, dt, 1)).unwrap();
    let v = Var::from_tensor(&seeded(&[in_dim, r], &dev, dt, 2)).unwrap();
    let layer = LrsLinear::new(
        NAME,
        seeded(&[out_dim, in_dim], &dev, dt, 3),
        Some(seeded(&[out_dim], &dev, dt, 4)),
        Some(LowRank::new(
            u.as_tensor().clone(),
            v.as_tensor().clone(),
            0.7,
        )),
    );
    // Task 0 trains: w and a dense S scratch. Task 1 is served: w and sparse S with values
    // held in a Var, so the gradient through the gather/scatter path is checked too.
    let w0 = Var::from_tensor(&seeded(&[r], &dev, dt, 5)).unwrap();
    let s0 = Var::from_tensor(&seeded(&[out_dim, in_dim], &dev, dt, 6)).unwrap();
    let w1 = Var::from_tensor(&seeded(&[r], &dev, dt, 7)).unwrap();
    let sparse1 = hard_threshold(&seeded(&[out_dim, in_dim], &dev, dt, 8), 6).unwrap();
    let vals1 = Var::from_tensor(sparse1.values()).unwrap();
    let sparse1 = SparseDelta::new(
        out_dim,
        in_dim,
        sparse1.indices().to_vec(),
        vals1.as_tensor().clone(),
    )
    .unwrap();
    let mut t0 = TaskDelta::new("a", r);
    t0.layers.insert(
        NAME.into(),
        LayerDelta {
            w: Some(w0.as_tensor().clone()),
            sparse: SparsePart::Dense(s0.as_tensor().clone()),
        },
    );
    let mut t1 = TaskDelta::new("b", r);
    t1.layers.insert(
        NAME.into(),
        LayerDelta {
            w: Some(w1.as_tensor().clone()),
            sparse: SparsePart::Sparse(sparse1),
        },
    );
    let x = seeded(&[3, 2, in_dim], &dev, dt, 9);
    let probe = seeded(&[3, 2, out_dim], &dev, dt, 10);
    let batch = TaskBatch::new(vec![&t0, &t1], &[1, 0, 1], &dev).unwrap();
    let loss_t = || {
        layer
            .forward_tasks(&x, &batch)
            .unwrap()
            .mul(&probe)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let loss = || loss_t().to_scalar::<f64>().unwrap();
    let grads = loss_t().backward().unwrap();
    for (var, what) in [
        (&u, "U"),
        (&v, "V"),
        (&w0, "w task a"),
        (&w1, "w task b"),
        (&s0, "dense S"),
        (&vals1, "sparse S values"),
    ] {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{what}: no gradient"));
        check_grad(var, g, &loss, what);
    }
}

/// Each row computed with its own task's merged dense weight `W0 + s U diag(w) Vᵀ + S`.
fn merged_reference(layer: &LrsLinear, x: &Tensor, rows: &[&TaskDelta]) -> Tensor {
    let lr = layer.low_rank().unwrap();
    let outs: Vec<Tensor> = rows
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let d = task.layers.get(layer.name());
            let w = d
                .and_then(|d| d.w.clone())
                .unwrap_or_else(|| Tensor::ones(lr.rank(), DType::F32, &Device::Cpu).unwrap());
            let low =
                lr.u.broadcast_mul(&w.unsqueeze(0).unwrap())
                    .unwrap()
                    .matmul(&lr.v.t().unwrap())
                    .unwrap();
            let mut merged = (layer.weight() + (low * lr.scale).unwrap()).unwrap();
            if let Some(SparsePart::Sparse(s)) = d.map(|d| &d.sparse) {
                merged = (merged + s.to_dense().unwrap()).unwrap();
            }
            let xi = x.get(i).unwrap();
            xi.matmul(&merged.t().unwrap())
                .unwrap()
                .broadcast_add(layer.bias().unwrap())
                .unwrap()
        })
        .collect();
    Tensor::stack(&outs, 0).unwrap()
}

#[test]
fn mixed_task_batch_equals_per_row_merged_weights() {
    let dev = Device::Cpu;
    let dt = DType::F32;
    let (out_dim, in_dim, r) = (6, 8, 3);
    let layer = LrsLinear::new(
        NAME,
        seeded(&[out_dim, in_dim], &dev, dt, 11),
        Some(seeded(&[out_dim], &dev, dt, 12)),
        Some(LowRank::new(
            seeded(&[out_dim, r], &dev, dt, 13),
            seeded(&[in_dim, r], &dev, dt, 14),
            0.5,
        )),
    );
    let mk = |id: &str, with_w: bool, k: usize| {
        let mut t = TaskDelta::new(id, r);
        let sparse = if k == 0 {
            SparsePart::None
        } else {
            SparsePart::Sparse(
                hard_threshold(&seeded(&[out_dim, in_dim], &dev, dt, 150 + k as u64), k).unwrap(),
            )
        };
        t.layers.insert(
            NAME.into(),
            LayerDelta {
                w: with_w.then(|| seeded(&[r], &dev, dt, 160 + k as u64)),
                sparse,
            },
        );
        t
    };
    let (a, b, c, empty) = (
        mk("a", true, 5),
        mk("b", false, 3),
        mk("c", true, 0),
        TaskDelta::new("none", r),
    );
    let rows = [&a, &b, &a, &c, &empty, &b];
    let x = seeded(&[rows.len(), 4, in_dim], &dev, dt, 17);
    let got = layer
        .forward_tasks(&x, &TaskBatch::per_row(&rows, &dev).unwrap())
        .unwrap();
    let want = merged_reference(&layer, &x, &rows);
    let diff = (got - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff <= 1e-5, "max abs diff {diff}");
    // A single task over the whole batch takes the no-gather path; same answer.
    let x2 = seeded(&[3, 4, in_dim], &dev, dt, 18);
    let got = layer
        .forward_tasks(&x2, &TaskBatch::single(&a, 3, &dev).unwrap())
        .unwrap();
    let want = merged_reference(&layer, &x2, &[&a, &a, &a]);
    let diff = (got - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff <= 1e-5, "single task: max abs diff {diff}");
}

#[test]
fn without_adapter_it_is_exactly_the_plain_linear() {
    let dev = Device::Cpu;
    let (w, b) = (
        seeded(&[6, 8], &dev, DType::F32, 19),
        seeded(&[6], &dev, DType::F32, 20),
    );
    let plain = candle_nn::Linear::new(w.clone(), Some(b.clone()));
    let layer = LrsLinear::new(NAME, w, Some(b), None);
    let x = seeded(&[2, 5, 8], &dev, DType::F32, 21);
    let empty = TaskDelta::new("none", 0);
    let want = plain
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let got = layer
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(want, got);
    let batch = TaskBatch::single(&empty, 2, &dev).unwrap();
    let got = layer
        .forward_tasks(&x, &batch)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(want, got);
}

#[test]
fn builder_names_mirror_the_checkpoint() {
    let dev = Device::Cpu;
    let base = candle_nn::VarBuilder::zeros(DType::F32, &dev);
    let varmap = candle_nn::VarMap::new();
    let shared = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let init = LowRankInit {
        rank: 2,
        scale: 1.0,
    };
    let layer = lrs_linear(
        8,
        6,
        base.pp("encoder.layer.0").pp("output").pp("dense"),
        Some((init, shared.pp("encoder.layer.0.output.dense"))),
    )
    .unwrap();
    assert_eq!(layer.name(), "encoder.layer.0.output.dense");
    let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "encoder.layer.0.output.dense.lrs_u",
            "encoder.layer.0.output.dense.lrs_v"
        ]
    );
}

/// A served sparse part from a seeded dense draw, for the LoRA tests below.
fn sparse_part(out_dim: usize, in_dim: usize, k: usize, dt: DType, seed: u64) -> SparsePart {
    SparsePart::Sparse(
        hard_threshold(&seeded(&[out_dim, in_dim], &Device::Cpu, dt, seed), k).unwrap(),
    )
}

#[test]
fn lora_gradients_reach_a_and_b() {
    let dev = Device::Cpu;
    let dt = DType::F64;
    let (out_dim, in_dim, r, r_l) = (4, 5, 2, 3);
    let layer = LrsLinear::new(
        NAME,
        seeded(&[out_dim, in_dim], &dev, dt, 23),
        Some(seeded(&[out_dim], &dev, dt, 24)),
        Some(LowRank::new(
            seeded(&[out_dim, r], &dev, dt, 25),
            seeded(&[in_dim, r], &dev, dt, 26),
            0.7,
        )),
    );
    // Task 0 has LoRA only (trainable A, B); task 1 has LoRA and a sparse part, so the LoRA
    // term is checked both alone and summed with S, on gathered row groups.
    let a0 = Var::from_tensor(&seeded(&[r_l, in_dim], &dev, dt, 27)).unwrap();
    let b0 = Var::from_tensor(&seeded(&[out_dim, r_l], &dev, dt, 28)).unwrap();
    let a1 = Var::from_tensor(&seeded(&[2, in_dim], &dev, dt, 29)).unwrap();
    let b1 = Var::from_tensor(&seeded(&[out_dim, 2], &dev, dt, 30)).unwrap();
    let mut t0 = TaskDelta::new("a", r);
    t0.lora.insert(
        NAME.into(),
        LoraPart::from_alpha(a0.as_tensor().clone(), b0.as_tensor().clone(), 6.0),
    );
    let mut t1 = TaskDelta::new("b", r);
    t1.layers.insert(
        NAME.into(),
        LayerDelta {
            w: Some(seeded(&[r], &dev, dt, 31)),
            sparse: sparse_part(out_dim, in_dim, 4, dt, 22),
        },
    );
    t1.lora.insert(
        NAME.into(),
        LoraPart::new(a1.as_tensor().clone(), b1.as_tensor().clone(), 0.5),
    );
    let x = seeded(&[3, 2, in_dim], &dev, dt, 32);
    let probe = seeded(&[3, 2, out_dim], &dev, dt, 33);
    let batch = TaskBatch::new(vec![&t0, &t1], &[1, 0, 1], &dev).unwrap();
    let loss_t = || {
        layer
            .forward_tasks(&x, &batch)
            .unwrap()
            .mul(&probe)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let loss = || loss_t().to_scalar::<f64>().unwrap();
    let grads = loss_t().backward().unwrap();
    for (var, what) in [
        (&a0, "A task a"),
        (&b0, "B task a"),
        (&a1, "A task b"),
        (&b1, "B task b"),
    ] {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{what}: no gradient"));
        check_grad(var, g, &loss, what);
    }
    // The whole-batch (no gather) path carries gradients too.
    let single = TaskBatch::single(&t0, 3, &dev).unwrap();
    let grads = layer
        .forward_tasks(&x, &single)
        .unwrap()
        .mul(&probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (var, what) in [(&a0, "A single"), (&b0, "B single")] {
        let g = grads.get(var).unwrap_or_else(|| panic!("{what}: no grad"));
        let max: f64 = g.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(max > 0.0, "{what}: zero gradient");
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn lora_sparse_and_plain_tasks_mix_row_by_row() {
    let dev = Device::Cpu;
    let dt = DType::F32;
    let (out_dim, in_dim, r) = (6, 8, 3);
    let (w0, b0) = (
        seeded(&[out_dim, in_dim], &dev, dt, 34),
        seeded(&[out_dim], &dev, dt, 35),
    );
    let shared = LowRank::new(
        seeded(&[out_dim, r], &dev, dt, 36),
        seeded(&[in_dim, r], &dev, dt, 37),
        0.5,
    );
    let lora = LoraPart::from_alpha(
        seeded(&[2, in_dim], &dev, dt, 38),
        seeded(&[out_dim, 2], &dev, dt, 39),
        4.0,
    );
    let mut with_lora = TaskDelta::new("lora", r);
    with_lora.lora.insert(NAME.into(), lora.clone());
    let mut sparse = TaskDelta::new("sparse", r);
    sparse.layers.insert(
        NAME.into(),
        LayerDelta {
            w: Some(seeded(&[r], &dev, dt, 40)),
            sparse: sparse_part(out_dim, in_dim, 5, dt, 43),
        },
    );
    let mut both = sparse.clone();
    both.task_id = "both".into();
    both.lora.insert(
        NAME.into(),
        LoraPart::new(
            seeded(&[3, in_dim], &dev, dt, 41),
            seeded(&[out_dim, 3], &dev, dt, 42),
            0.25,
        ),
    );
    let plain = TaskDelta::new("plain", r);
    let rows = [
        &with_lora, &sparse, &plain, &with_lora, &both, &plain, &sparse,
    ];
    // The per-task LoRA baseline has no shared path; the same tasks also run on an LRS layer.
    for low_rank in [None, Some(shared)] {
        let layer = LrsLinear::new(NAME, w0.clone(), Some(b0.clone()), low_rank.clone());
        let x = seeded(&[rows.len(), 4, in_dim], &dev, dt, 43);
        let got = layer
            .forward_tasks(&x, &TaskBatch::per_row(&rows, &dev).unwrap())
            .unwrap();
        for (i, task) in rows.iter().enumerate() {
            let xi = x.narrow(0, i, 1).unwrap();
            let alone = layer
                .forward_tasks(&xi, &TaskBatch::single(task, 1, &dev).unwrap())
                .unwrap();
            let row = got.narrow(0, i, 1).unwrap();
            let d = max_abs_diff(&row, &alone);
            assert!(
                d <= 1e-5,
                "row {i} ({}), shared {}: {d}",
                task.task_id,
                low_rank.is_some()
            );
            if task.task_id == "lora" {
                // Dense formula x (W0 + s·U Vᵀ + s_l·B A)ᵀ + b0 (no shared term without U, V).
                let mut merged = (&w0 + lora.delta_weight().unwrap()).unwrap();
                if let Some(lr) = &low_rank {
                    let low = (lr.u.matmul(&lr.v.t().unwrap()).unwrap() * lr.scale).unwrap();
                    merged = (merged + low).unwrap();
                }
                let want = xi
                    .broadcast_matmul(&merged.t().unwrap())
                    .unwrap()
                    .broadcast_add(&b0)
                    .unwrap();
                let d = max_abs_diff(&row, &want);
                assert!(d <= 1e-5, "row {i} vs dense formula: {d}");
            }
            if task.task_id == "plain" && low_rank.is_none() {
                let want = candle_nn::Linear::new(w0.clone(), Some(b0.clone()))
                    .forward(&xi)
                    .unwrap();
                assert!(max_abs_diff(&row, &want) <= 1e-6, "plain row {i}");
            }
        }
    }
}

#[test]
fn a_row_scratch_gives_each_row_the_gradient_of_its_own_pass() {
    let dev = Device::Cpu;
    let dt = DType::F64;
    let (out_dim, in_dim, r, rows) = (4, 5, 3, 3);
    let layer = LrsLinear::new(
        NAME,
        seeded(&[out_dim, in_dim], &dev, dt, 21),
        Some(seeded(&[out_dim], &dev, dt, 22)),
        Some(LowRank::new(
            seeded(&[out_dim, r], &dev, dt, 23),
            seeded(&[in_dim, r], &dev, dt, 24),
            0.5,
        )),
    );
    let start = hard_threshold(&seeded(&[out_dim, in_dim], &dev, dt, 25), 7).unwrap();
    let mut task = TaskDelta::new("a", r);
    task.layers.insert(
        NAME.into(),
        LayerDelta {
            w: Some(seeded(&[r], &dev, dt, 26)),
            sparse: SparsePart::Sparse(start.clone()),
        },
    );
    let x = seeded(&[rows, 2, in_dim], &dev, dt, 27);
    let probe = seeded(&[rows, 2, out_dim], &dev, dt, 28);

    // All rows at once, one scratch per row.
    let mut batched = task.clone();
    let layer_delta = batched.layers.get_mut(NAME).unwrap();
    let var = layer_delta
        .start_row_scratch((out_dim, in_dim), rows, &x)
        .unwrap();
    assert_eq!(var.as_tensor().dims(), &[rows, out_dim, in_dim]);
    let tb = TaskBatch::single(&batched, rows, &dev).unwrap();
    let y = layer.forward_tasks(&x, &tb).unwrap();
    let grads = (&y * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let per_row = grads.get(&var).expect("a gradient for the row scratch");

    // The same value and gradient from each row alone, with a plain dense scratch.
    let dense = start.to_dense().unwrap();
    for row in 0..rows {
        let mut single = task.clone();
        let d = single.layers.get_mut(NAME).unwrap();
        let dvar = d.start_dense_scratch((out_dim, in_dim), &x).unwrap();
        let xr = x.narrow(0, row, 1).unwrap();
        let tb = TaskBatch::single(&single, 1, &dev).unwrap();
        let yr = layer.forward_tasks(&xr, &tb).unwrap();
        let diff = max_abs_diff(&yr, &y.narrow(0, row, 1).unwrap());
        assert!(diff < 1e-12, "row {row}: output differs by {diff}");
        let g = (&yr * probe.narrow(0, row, 1).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let want = g.get(&dvar).expect("dense gradient");
        let got = per_row.get(row).unwrap();
        let err = max_abs_diff(&got, want);
        assert!(err < 1e-12, "row {row}: gradient differs by {err}");
        let norm = max_abs_diff(want, &want.zeros_like().unwrap());
        assert!(norm > 1e-6, "row {row}: the gradient is zero");
        assert_eq!(
            dvar.as_tensor().to_vec2::<f64>().unwrap(),
            dense.to_vec2::<f64>().unwrap(),
            "the dense scratch starts at the sparse part"
        );
    }
    // A row scratch refuses a batch it does not match.
    let wrong = x.narrow(0, 0, 2).unwrap();
    let tb = TaskBatch::single(&batched, 2, &dev).unwrap();
    assert!(layer.forward_tasks(&wrong, &tb).is_err());
}
