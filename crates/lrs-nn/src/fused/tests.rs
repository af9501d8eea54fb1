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
    let ours = op.forward(&x)?;
    let reference = x.broadcast_matmul(&w.t()?)?.broadcast_add(&b)?;
    assert_eq!(ours.dims(), &[3, 4, 5]);
    assert!(max_diff(&ours, &reference) < 1e-5);
    let probe = seeded(&[3, 4, 5], 4);
    let g_ours = (&ours * &probe)?.sum_all()?.backward()?;
    let g_ref = (&reference * &probe)?.sum_all()?.backward()?;
    let (go, gr) = (g_ours.get(&x).expect("dx"), g_ref.get(&x).expect("dx"));
    assert!(max_diff(go, gr) < 1e-5);
    let f = |xs: &[Tensor]| op.forward(&xs[0]).expect("forward");
    check_directional(
        &f,
        &[x.as_tensor().clone()],
        &[Some(go.clone())],
        &probe,
        "linear",
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
    let w = heads * d;
    let mask = Tensor::new(
        &[
            [0f32, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, -10_000.0, -10_000.0],
        ],
        &candle_core::Device::Cpu,
    )?;
    let vars: Vec<Var> = (0..3)
        .map(|i| Var::from_tensor(&seeded(&[b, s, w], 10 + i)))
        .collect::<candle_core::Result<_>>()?;
    let (q, k, v) = (
        vars[0].as_tensor(),
        vars[1].as_tensor(),
        vars[2].as_tensor(),
    );
    let op = Attention::new(heads, 1.0 / (d as f64).sqrt(), &mask)?;
    let ours = op.forward(q, k, v)?;
    let reference = attention_composite(q, k, v, &mask, heads)?;
    assert!(max_diff(&ours, &reference) < 1e-5);
    let probe = seeded(&[b, s, w], 20);
    let g_ours = (&ours * &probe)?.sum_all()?.backward()?;
    let g_ref = (&reference * &probe)?.sum_all()?.backward()?;
    let mut grads = Vec::new();
    for var in &vars {
        let (go, gr) = (
            g_ours.get(var).expect("grad"),
            g_ref.get(var).expect("grad"),
        );
        assert!(max_abs(go) > 1e-3, "a zero gradient");
        assert!(max_diff(go, gr) < 1e-4, "{}", max_diff(go, gr));
        grads.push(Some(go.clone()));
    }
    // Padded keys get no gradient: they carry no probability.
    let dk = g_ours.get(&vars[1]).expect("dk");
    assert!(max_abs(&dk.narrow(0, 1, 1)?.narrow(1, 3, 2)?) < 1e-6);
    let f = |xs: &[Tensor]| op.forward(&xs[0], &xs[1], &xs[2]).expect("forward");
    let xs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    check_directional(&f, &xs, &grads, &probe, "attention");
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
    let composite = crate::layer_norm::LayerNorm::new(gamma.clone(), beta.clone(), 1e-12);
    let ours = fused.forward(&x)?;
    let reference = composite.forward_composite(&x)?;
    assert!(max_diff(&ours, &reference) < 1e-5);
    let probe = seeded(&[3, 5, h], 4);
    let g_ours = (&ours * &probe)?.sum_all()?.backward()?;
    let g_ref = (&reference * &probe)?.sum_all()?.backward()?;
    let (go, gr) = (g_ours.get(&x).expect("dx"), g_ref.get(&x).expect("dx"));
    assert!(max_diff(go, gr) < 1e-4, "{}", max_diff(go, gr));
    let f = |xs: &[Tensor]| fused.forward(&xs[0]).expect("forward");
    check_directional(
        &f,
        &[x.as_tensor().clone()],
        &[Some(go.clone())],
        &probe,
        "layer norm",
    );
    Ok(())
}

#[test]
fn gelu_matches_candle_and_its_gradient() -> candle_core::Result<()> {
    let x = Var::from_tensor(&(seeded(&[4, 33], 5) * 2.5)?)?;
    let ours = FusedGelu::forward(&x)?;
    let reference = x.gelu_erf()?;
    assert!(
        max_diff(&ours, &reference) < 1e-6,
        "{}",
        max_diff(&ours, &reference)
    );
    let probe = seeded(&[4, 33], 6);
    let g_ours = (&ours * &probe)?.sum_all()?.backward()?;
    let g_ref = (&reference * &probe)?.sum_all()?.backward()?;
    let (go, gr) = (g_ours.get(&x).expect("dx"), g_ref.get(&x).expect("dx"));
    assert!(max_diff(go, gr) < 1e-5, "{}", max_diff(go, gr));
    let f = |xs: &[Tensor]| FusedGelu::forward(&xs[0]).expect("forward");
    check_directional(
        &f,
        &[x.as_tensor().clone()],
        &[Some(go.clone())],
        &probe,
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
    let (x, u, v) = (
        vars[0].as_tensor(),
        vars[1].as_tensor(),
        vars[2].as_tensor(),
    );
    let base = FrozenLinear::new(&w0, Some(&b0))?;
    let op = AdaptedLinear::new(&base, scale.clone())?;
    let ours = op.clone().forward(x, u, v)?;
    let reference =
        (x.matmul(&w0.t()?)?.broadcast_add(&b0)? + (x.matmul(v)? * &scale)?.matmul(&u.t()?)?)?;
    assert!(max_diff(&ours, &reference) < 1e-5);
    let probe = seeded(&[tokens, dout], 36);
    let g_ours = (&ours * &probe)?.sum_all()?.backward()?;
    let g_ref = (&reference * &probe)?.sum_all()?.backward()?;
    let mut grads = Vec::new();
    for var in &vars {
        let (go, gr) = (
            g_ours.get(var).expect("grad"),
            g_ref.get(var).expect("grad"),
        );
        assert!(max_abs(go) > 1e-3, "a zero gradient");
        assert!(max_diff(go, gr) < 1e-4, "{}", max_diff(go, gr));
        grads.push(Some(go.clone()));
    }
    let f = |xs: &[Tensor]| op.clone().forward(&xs[0], &xs[1], &xs[2]).expect("forward");
    let xs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    check_directional(&f, &xs, &grads, &probe, "adapted linear");
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
    let (inner, outer) = (
        FrozenLinear::new(&w1, Some(&b1))?,
        FrozenLinear::new(&w2, Some(&b2))?,
    );
    let a = Var::from_tensor(&seeded(&[2, 4, h], 44))?;
    let ours = FrozenFfn::new(&inner, &outer).forward(&a)?;
    let reference = a
        .broadcast_matmul(&w1.t()?)?
        .broadcast_add(&b1)?
        .gelu_erf()?
        .broadcast_matmul(&w2.t()?)?
        .broadcast_add(&b2)?;
    assert_eq!(ours.dims(), &[2, 4, h]);
    assert!(
        max_diff(&ours, &reference) < 1e-4,
        "{}",
        max_diff(&ours, &reference)
    );
    let probe = seeded(&[2, 4, h], 45);
    let g_ours = (&ours * &probe)?.sum_all()?.backward()?;
    let g_ref = (&reference * &probe)?.sum_all()?.backward()?;
    let (go, gr) = (g_ours.get(&a).expect("da"), g_ref.get(&a).expect("da"));
    assert!(max_diff(go, gr) < 1e-4, "{}", max_diff(go, gr));
    let f = |xs: &[Tensor]| {
        FrozenFfn::new(&inner, &outer)
            .forward(&xs[0])
            .expect("forward")
    };
    check_directional(
        &f,
        &[a.as_tensor().clone()],
        &[Some(go.clone())],
        &probe,
        "ffn",
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
    let (a, b) = (vars[0].as_tensor(), vars[1].as_tensor());
    let fused = FusedLayerNorm::new(&gamma, &beta, 1e-12)?;
    let composite = crate::layer_norm::LayerNorm::new(gamma.clone(), beta.clone(), 1e-12);
    let ours = fused.forward_residual(a, b)?;
    let reference = composite.forward_composite(&(a + b)?)?;
    assert!(max_diff(&ours, &reference) < 1e-5);
    let probe = seeded(&[2, 3, h], 54);
    let g_ours = (&ours * &probe)?.sum_all()?.backward()?;
    let g_ref = (&reference * &probe)?.sum_all()?.backward()?;
    let mut grads = Vec::new();
    for var in &vars {
        let (go, gr) = (
            g_ours.get(var).expect("grad"),
            g_ref.get(var).expect("grad"),
        );
        assert!(max_abs(go) > 1e-3, "a zero gradient");
        assert!(max_diff(go, gr) < 1e-4, "{}", max_diff(go, gr));
        grads.push(Some(go.clone()));
    }
    let f = |xs: &[Tensor]| fused.forward_residual(&xs[0], &xs[1]).expect("forward");
    let xs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    check_directional(&f, &xs, &grads, &probe, "residual layer norm");
    Ok(())
}
