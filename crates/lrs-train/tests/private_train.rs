//! The private shared phase on a tiny random BERT: per-user clipping, noise scale, the
//! accountant's ε in the outputs, the budget, and per-task isolation.

mod common;

use candle_core::Var;
use common::*;
use lrs_privacy::{Accountant, RdpAccountant};
use lrs_train::trainer::privacy::PrivacyConfig;
use lrs_train::trainer::{Method, TrainConfig, TrainError, Trainer};

fn private_config(privacy: PrivacyConfig) -> TrainConfig {
    TrainConfig {
        privacy: Some(privacy),
        ..tiny_config_toml(Method::Lrs)
    }
}

fn shared_vars(t: &Trainer) -> Vec<Var> {
    let vars = t.model().shared_vars().expect("shared vars");
    let data = vars.data().lock().expect("lock");
    let mut named: Vec<_> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.into_iter().map(|(_, v)| v).collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn clipped_config(clip: f64) -> TrainConfig {
    // q = 1: every user in every step; σ ≈ 0 so sums compare exactly enough.
    private_config(PrivacyConfig {
        epsilon: None,
        noise_multiplier: Some(1e-9),
        sample_rate: 1.0,
        clip,
        noise_seed: Some(1),
        ..PrivacyConfig::default()
    })
}

#[test]
fn each_user_moves_the_clipped_sum_by_at_most_c() {
    let f = fixture();
    let data = tiny_data(4, 8);
    let clip = 2e-4;
    let mut t = trainer(&f, clipped_config(clip), &data);
    t.round(&data).expect("round");
    let vars = shared_vars(&t);
    // Every user's raw gradient is far above C: each is clipped.
    for task in 0..4 {
        let (g, _) = t.user_gradient(task, &data, &vars).expect("gradient");
        assert!(norm(&g) > 5.0 * clip, "user {task}: |g| = {}", norm(&g));
    }
    let (sampled, with, _) = t.private_sum(&data, &vars, 0).expect("sum");
    assert_eq!(sampled, vec![0, 1, 2, 3]);

    // The same shared parameters and task parts without user 3.
    let mut fewer = data.clone();
    fewer.tasks.truncate(3);
    let mut t3 = trainer(&f, clipped_config(clip), &fewer);
    t3.model()
        .set_shared(&t.model().shared_factor(None).expect("shared"))
        .expect("set shared");
    t3.install_tasks(t.tasks()[..3].to_vec()).expect("tasks");
    let vars3 = shared_vars(&t3);
    let (sampled, without, _) = t3.private_sum(&fewer, &vars3, 0).expect("sum");
    assert_eq!(sampled, vec![0, 1, 2]);
    let diff: Vec<f64> = with.iter().zip(&without).map(|(a, b)| a - b).collect();
    let d = norm(&diff);
    assert!(
        d <= clip * (1.0 + 1e-6) && d > 0.5 * clip,
        "user 3 moved the sum by {d}"
    );
}

#[test]
fn the_noise_has_the_calibrated_scale() {
    let f = fixture();
    let data = tiny_data(3, 6);
    let (sigma, clip) = (1.7, 0.3);
    // q tiny: no user is sampled, the released sum is pure noise N(0, (σC)²) per coordinate.
    let cfg = private_config(PrivacyConfig {
        epsilon: None,
        noise_multiplier: Some(sigma),
        sample_rate: 1e-12,
        clip,
        noise_seed: Some(9),
        ..PrivacyConfig::default()
    });
    let t = trainer(&f, cfg, &data);
    let vars = shared_vars(&t);
    let mut draws = Vec::new();
    for step in 0..20 {
        let (sampled, sum, _) = t.private_sum(&data, &vars, step).expect("sum");
        assert!(sampled.is_empty());
        draws.extend(sum);
    }
    let n = draws.len() as f64;
    let mean = draws.iter().sum::<f64>() / n;
    let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let want = (sigma * clip).powi(2);
    // Sample variance of n normals: relative s.d. √(2/n); allow 5 s.d.
    let tol = 5.0 * (2.0 / n).sqrt();
    assert!(n > 10_000.0, "{n} draws");
    assert!(
        (var / want - 1.0).abs() < tol,
        "variance {var} vs {want} (tol {tol})"
    );
    assert!(mean.abs() < 5.0 * (want / n).sqrt(), "mean {mean}");
}

#[test]
fn the_reported_epsilon_is_the_accountants_and_the_budget_is_enforced() {
    let f = fixture();
    let data = tiny_data(4, 6);
    let privacy = PrivacyConfig {
        epsilon: Some(4.0),
        delta: 1e-5,
        clip: 1.0,
        sample_rate: 0.5,
        noise_seed: Some(3),
        ..PrivacyConfig::default()
    };
    let cfg = private_config(privacy.clone());
    let mut t = trainer(&f, cfg.clone(), &data);
    let planned = (cfg.rounds * cfg.shared.steps) as u64;
    let state = t.private_state().expect("private");
    assert_eq!(state.planned, planned);
    for _ in 0..cfg.rounds {
        t.round(&data).expect("round");
    }
    let g = t.privacy_guarantee().expect("guarantee").expect("private");
    let mut acc = RdpAccountant::new(lrs_privacy::Orders::opacus());
    acc.add_steps(state.sigma, 0.5, planned).expect("steps");
    let independent = acc
        .epsilon(1e-5, lrs_privacy::Conversion::Balle)
        .expect("epsilon")
        .epsilon;
    assert_eq!(g.epsilon, independent);
    assert!(g.epsilon <= 4.0 + 1e-9 && g.epsilon > 3.9, "{}", g.epsilon);
    assert_eq!(
        (g.steps, g.accountant.as_str(), g.unit.as_str()),
        (planned, "rdp", "user")
    );
    assert_eq!(g.noise_multiplier, state.sigma);
    assert_eq!(
        Accountant::Rdp
            .guarantee(state.sigma, 0.5, planned, 1e-5, 1.0)
            .expect("g"),
        g
    );

    // The shared file carries it as `dp` metadata.
    let dir = tempfile::tempdir().expect("tempdir");
    let dp = serde_json::to_value(&g).expect("json");
    let mut shared = t.model().shared_factor(Some(dp.clone())).expect("shared");
    shared
        .save(&dir.path().join("shared.safetensors"))
        .expect("save");
    let loaded = t
        .model()
        .load_shared(&dir.path().join("shared.safetensors"))
        .expect("load");
    let got = loaded.dp.expect("dp metadata");
    let eps = got["epsilon"].as_f64().expect("epsilon");
    assert!(
        (eps - g.epsilon).abs() <= 1e-12 * g.epsilon,
        "{eps} vs {}",
        g.epsilon
    );
    for key in [
        "accountant",
        "unit",
        "steps",
        "sample_rate",
        "clip_norm",
        "delta",
    ] {
        assert_eq!(got[key], dp[key], "{key}");
    }

    // Every planned step is spent: one more shared phase is refused, nothing changes.
    let err = t.shared_phase(&data).expect_err("past the budget");
    assert!(matches!(err, TrainError::Privacy { .. }), "{err}");
    assert_eq!(t.private_state().expect("private").steps_done, planned);
}

#[test]
fn a_tasks_private_run_part_reads_only_its_own_data() {
    let f = fixture();
    let data = tiny_data(3, 8);
    let cfg = private_config(PrivacyConfig {
        epsilon: Some(8.0),
        sample_rate: 1.0,
        noise_seed: Some(5),
        ..PrivacyConfig::default()
    });
    let mut t = trainer(&f, cfg.clone(), &data);
    t.round(&data).expect("round");
    // Same shared parameters, other tasks' data changed: task 0's task-phase result is
    // bitwise the same.
    let mut other = data.clone();
    for task in &mut other.tasks[1..] {
        for row in &mut task.train {
            row.positive = !row.positive;
        }
        task.train.truncate(5);
    }
    let (a, _) = t
        .fit_task(&t.tasks()[0], &data.tasks[0].train, 1)
        .expect("fit");
    let (b, _) = t
        .fit_task(&t.tasks()[0], &other.tasks[0].train, 1)
        .expect("fit");
    assert_eq!(task_snapshot(std::slice::from_ref(&a)), task_snapshot(&[b]));
    let t2 = trainer(&f, cfg, &other);
    let src = t.model().shared_factor(None).expect("shared");
    t2.model().set_shared(&src).expect("set shared");
    let (c, _) = t2
        .fit_task(&t.tasks()[0], &other.tasks[0].train, 1)
        .expect("fit");
    assert_eq!(task_snapshot(&[a]), task_snapshot(&[c]));
}
