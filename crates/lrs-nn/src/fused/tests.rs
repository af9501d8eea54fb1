//! Every fused op against candle's composite ops (values and autograd gradients) and against
//! central finite differences of a random linear functional of its output.

use candle_core::{Tensor, Var, D};

use super::adapted_linear::AdaptedLinear;
use super::attention::Attention;
use super::frozen_ffn::FrozenFfn;
use super::frozen_linear::FrozenLinear;
use super::gelu::FusedGelu;
use super::layer_norm::FusedLayerNorm;
use super::simd;
use crate::testing::seeded_tensor;

fn seeded(shape: &[usize], seed: u64) -> Tensor {
    seeded_tensor(shape, 0.0, 1.0, seed).expect("seeded tensor")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
        .expect("max diff")
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .and_then(|d| d.flatten_all()?.max(0)?.to_scalar::<f32>())
        .expect("max abs")
}

/// `⟨f(x), probe⟩`.
fn functional(y: &Tensor, probe: &Tensor) -> f32 {
    (y * probe)
        .and_then(|t| t.sum_all()?.to_scalar::<f32>())
        .expect("functional")
}

/// Checks the gradients `grads[i]` of `⟨f(xs), probe⟩` against central differences along a
/// random direction per input: `(L(x + εd) − L(x − εd)) / 2ε ≈ ⟨∇L, d⟩`.
fn check_directional(
    f: &dyn Fn(&[Tensor]) -> Tensor,
    xs: &[Tensor],
    grads: &[Option<Tensor>],
    probe: &Tensor,
    what: &str,
) {
    let eps = 1e-2f64;
    for (i, g) in grads.iter().enumerate() {
        let Some(g) = g else { continue };
        let d = seeded(xs[i].dims(), 900 + i as u64);
        let shifted = |sign: f64| -> f32 {
            let mut ys: Vec<Tensor> = xs.to_vec();
            ys[i] = (&xs[i] + (&d * (sign * eps)).expect("step")).expect("shift");
            functional(&f(&ys), probe)
        };
        let fd = f64::from(shifted(1.0) - shifted(-1.0)) / (2.0 * eps);
        let analytic = f64::from(functional(g, &d));
        let tol = 2e-3 * analytic.abs().max(1.0);
        assert!(
            (fd - analytic).abs() <= tol,
            "{what} input {i}: autograd {analytic} vs finite difference {fd}"
        );
    }
}

/// Checks fused `op` against `composite` at the values of `vars`: outputs within `tol`;
/// the gradients of `⟨output, probe⟩` nonzero and within `10 · tol` of the composite's for
/// every input; and against central finite differences. Returns the fused gradients.
fn check_op(
    op: &dyn Fn(&[Tensor]) -> Tensor,
    composite: &dyn Fn(&[Tensor]) -> Tensor,
    vars: &[Var],
    tol: f32,
    what: &str,
) -> Vec<Tensor> {
    let xs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let (ours, reference) = (op(&xs), composite(&xs));
    assert!(
        max_diff(&ours, &reference) < tol,
        "{what}: values off by {}",
        max_diff(&ours, &reference)
    );
    let probe = seeded(ours.dims(), 999);
    let backward = |y: &Tensor| {
        (y * &probe)
            .and_then(|t| t.sum_all()?.backward())
            .expect("backward")
    };
    let (g_ours, g_ref) = (backward(&ours), backward(&reference));
    let grads: Vec<Tensor> = vars
        .iter()
        .enumerate()
        .map(|(i, var)| {
            let go = g_ours.get(var).expect("a fused gradient").clone();
            let gr = g_ref.get(var).expect("a composite gradient");
            assert!(max_abs(&go) > 1e-3, "{what} input {i}: a zero gradient");
            let d = max_diff(&go, gr);
            assert!(d < 10.0 * tol, "{what} input {i}: gradient off by {d}");
            go
        })
        .collect();
    let fused: Vec<Option<Tensor>> = grads.iter().cloned().map(Some).collect();
    check_directional(op, &xs, &fused, &probe, what);
    grads
}

#[test]
fn exp_matches_std_to_a_few_ulp() {
    // Normal f32 results: e^x ≥ 2^−126 for x ≥ −87.3.
    let (mut worst, mut at) = (0f32, 0f32);
    for i in -8700..8800 {
        let x = i as f32 / 100.0 + 0.003;
        let (ours, std) = (simd::exp(x), x.exp());
        let rel = (ours - std).abs() / std;
        if rel > worst {
            (worst, at) = (rel, x);
        }
    }
    assert!(worst < 5e-7, "relative error {worst} at {at}");
    assert_eq!(simd::exp(-1e4), 0.0);
    assert_eq!(simd::exp(f32::NEG_INFINITY), 0.0);
}

#[test]
fn reductions_match_plain_sums_at_every_length() {
    for n in 0..70 {
        let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((simd::dot(&a, &b) - dot).abs() < 1e-5, "dot at n = {n}");
        assert!(
            (simd::sum(&a) - a.iter().sum::<f32>()).abs() < 1e-5,
            "sum at n = {n}"
        );
    }
}

#[test]
fn frozen_linear_matches_matmul_and_its_input_gradient() -> candle_core::Result<()> {
    let (w, b) = (seeded(&[5, 7], 1), seeded(&[5], 2));
    let x = Var::from_tensor(&seeded(&[3, 4, 7], 3))?;
    let op = FrozenLinear::new(&w, Some(&b))?;
    assert_eq!(op.forward(&x)?.dims(), &[3, 4, 5]);
    check_op(
        &|xs| op.forward(&xs[0]).expect("forward"),
        &|xs| {
            xs[0]
                .broadcast_matmul(&w.t().expect("t"))
                .and_then(|y| y.broadcast_add(&b))
                .expect("reference")
        },
        &[x],
        1e-5,
        "frozen linear",
    );
    Ok(())
}

/// Attention from candle ops: heads split, `softmax(q kᵀ · scale + mask) v`, heads joined.
fn attention_composite(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: usize,
) -> candle_core::Result<Tensor> {
    let (b, s, w) = q.dims3()?;
    let d = w / heads;
    let split = |t: &Tensor| t.reshape((b, s, heads, d))?.transpose(1, 2)?.contiguous();
    let (q, k, v) = (split(q)?, split(k)?, split(v)?);
    let scores = (q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?
        .broadcast_add(&mask.reshape((b, 1, 1, s))?)?;
    let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
    probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, w))
}

#[test]
fn attention_matches_the_composite_with_padding_and_its_gradients() -> candle_core::Result<()> {
    // Two rows: the second has its last 2 of 5 tokens padded.
    let (b, s, heads, d) = (2, 5, 3, 4);
    let mask = Tensor::new(
        &[
            [0f32, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, -10_000.0, -10_000.0],
        ],
        &candle_core::Device::Cpu,
    )?;
    let vars: Vec<Var> = (0..3)
        .map(|i| Var::from_tensor(&seeded(&[b, s, heads * d], 10 + i)))
        .collect::<candle_core::Result<_>>()?;
    let op = Attention::new(heads, 1.0 / (d as f64).sqrt(), &mask)?;
    let grads = check_op(
        &|xs| op.forward(&xs[0], &xs[1], &xs[2]).expect("forward"),
        &|xs| attention_composite(&xs[0], &xs[1], &xs[2], &mask, heads).expect("reference"),
        &vars,
        1e-5,
        "attention",
    );
    // Padded keys get no gradient: they carry no probability.
    assert!(max_abs(&grads[1].narrow(0, 1, 1)?.narrow(1, 3, 2)?) < 1e-6);
    Ok(())
}

#[test]
fn attention_rejects_mismatched_shapes() -> candle_core::Result<()> {
    let mask = Tensor::zeros((2, 5), candle_core::DType::F32, &candle_core::Device::Cpu)?;
    let op = Attention::new(3, 0.5, &mask)?;
    let (q, k) = (seeded(&[2, 5, 12], 1), seeded(&[2, 4, 12], 2));
    assert!(op.forward(&q, &k, &q).is_err());
    let op = Attention::new(5, 0.5, &mask)?;
    assert!(
        op.forward(&q, &q, &q).is_err(),
        "12 is not a multiple of 5 heads"
    );
    Ok(())
}

#[test]
fn layer_norm_matches_the_composite_and_its_gradient() -> candle_core::Result<()> {
    let h = 24;
    let (gamma, beta) = (seeded(&[h], 1), seeded(&[h], 2));
    let x = Var::from_tensor(&(seeded(&[3, 5, h], 3) * 3.0)?)?;
    let fused = FusedLayerNorm::new(&gamma, &beta, 1e-12)?;
    let composite = crate::layer_norm::LayerNorm::new(gamma, beta, 1e-12);
    check_op(
        &|xs| fused.forward(&xs[0]).expect("forward"),
        &|xs| composite.forward_composite(&xs[0]).expect("reference"),
        &[x],
        1e-5,
        "layer norm",
    );
    Ok(())
}

#[test]
fn residual_layer_norm_matches_norm_of_the_sum_and_both_gradients() -> candle_core::Result<()> {
    let h = 20;
    let (gamma, beta) = (seeded(&[h], 50), seeded(&[h], 51));
    let vars: Vec<Var> = (0..2)
        .map(|i| Var::from_tensor(&seeded(&[2, 3, h], 52 + i)))
        .collect::<candle_core::Result<_>>()?;
    let fused = FusedLayerNorm::new(&gamma, &beta, 1e-12)?;
    let composite = crate::layer_norm::LayerNorm::new(gamma, beta, 1e-12);
    check_op(
        &|xs| fused.forward_residual(&xs[0], &xs[1]).expect("forward"),
        &|xs| {
            (&xs[0] + &xs[1])
                .and_then(|sum| composite.forward_composite(&sum))
                .expect("reference")
        },
        &vars,
        1e-5,
        "residual layer norm",
    );
    Ok(())
}

#[test]
fn gelu_matches_candle_and_its_gradient() -> candle_core::Result<()> {
    let x = Var::from_tensor(&(seeded(&[4, 33], 5) * 2.5)?)?;
    check_op(
        &|xs| FusedGelu::forward(&xs[0]).expect("forward"),
        &|xs| xs[0].gelu_erf().expect("reference"),
        &[x],
        1e-6,
        "gelu",
    );
    Ok(())
}

#[test]
fn adapted_linear_matches_the_composite_and_its_three_gradients() -> candle_core::Result<()> {
    let (tokens, din, dout, r) = (6, 7, 5, 3);
    let (w0, b0) = (seeded(&[dout, din], 30), seeded(&[dout], 31));
    let scale = (seeded(&[tokens, r], 32) * 0.5)?;
    let vars: Vec<Var> = [[tokens, din], [dout, r], [din, r]]
        .iter()
        .enumerate()
        .map(|(i, s)| Var::from_tensor(&seeded(s, 33 + i as u64)))
        .collect::<candle_core::Result<_>>()?;
    let op = AdaptedLinear::new(&FrozenLinear::new(&w0, Some(&b0))?, scale.clone())?;
    let reference = |xs: &[Tensor]| -> candle_core::Result<Tensor> {
        let (x, u, v) = (&xs[0], &xs[1], &xs[2]);
        x.matmul(&w0.t()?)?.broadcast_add(&b0)? + (x.matmul(v)? * &scale)?.matmul(&u.t()?)?
    };
    check_op(
        &|xs| op.clone().forward(&xs[0], &xs[1], &xs[2]).expect("forward"),
        &|xs| reference(xs).expect("reference"),
        &vars,
        1e-5,
        "adapted linear",
    );
    Ok(())
}

#[test]
fn frozen_ffn_matches_the_composite_and_its_input_gradient() -> candle_core::Result<()> {
    let (h, i) = (6, 10);
    let (w1, b1, w2, b2) = (
        seeded(&[i, h], 40),
        seeded(&[i], 41),
        seeded(&[h, i], 42),
        seeded(&[h], 43),
    );
    let inner = FrozenLinear::new(&w1, Some(&b1))?;
    let outer = FrozenLinear::new(&w2, Some(&b2))?;
    let a = Var::from_tensor(&seeded(&[2, 4, h], 44))?;
    assert_eq!(
        FrozenFfn::new(&inner, &outer).forward(&a)?.dims(),
        &[2, 4, h]
    );
    let reference = |a: &Tensor| -> candle_core::Result<Tensor> {
        a.broadcast_matmul(&w1.t()?)?
            .broadcast_add(&b1)?
            .gelu_erf()?
            .broadcast_matmul(&w2.t()?)?
            .broadcast_add(&b2)
    };
    check_op(
        &|xs| {
            FrozenFfn::new(&inner, &outer)
                .forward(&xs[0])
                .expect("forward")
        },
        &|xs| reference(&xs[0]).expect("reference"),
        &[a],
        1e-4,
        "frozen ffn",
    );
    Ok(())
}
