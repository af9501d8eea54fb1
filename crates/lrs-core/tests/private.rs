//! Private AMHT-LRS end to end: the Gaussian mechanism adds the calibrated noise, clipping
//! bounds one user's influence, the reported ε is the accountant's, utility improves with ε
//! and with the number of users, and bad parameters are errors.

use lrs_core::metrics::relative_theta_error;
use lrs_core::private_amht::{
    clipped_sum, poisson_sample, private_amht_lrs, release_sum, user_contributions, Accountant,
    NoiseRng, NoiseSpec, PrivateConfig,
};
use lrs_core::{AmhtConfig, CoreError, Init, Instance, SparseStepConfig, SyntheticSpec};
use lrs_privacy::{
    calibrate_sigma_rdp, Conversion, GaussianNoise, Orders, PldAccountant, RdpAccountant,
};
use rand::SeedableRng;

fn instance(tasks: usize, samples: usize) -> Instance {
    SyntheticSpec {
        dim: 20,
        rank: 2,
        sparsity: 2,
        tasks,
        samples,
        test_samples: 0,
        noise: 0.0,
        sparse_magnitude: 1.0,
        seed: 5,
    }
    .generate()
    .unwrap()
}

fn config(noise: NoiseSpec, samples: usize) -> PrivateConfig {
    PrivateConfig {
        base: AmhtConfig {
            rank: 2,
            sparse: SparseStepConfig {
                sparsity: 2,
                ..Default::default()
            },
            init: Init::Random,
            seed: 1,
            ..Default::default()
        },
        rounds: 40,
        sample_rate: 1.0,
        clip: samples as f64,
        noise,
        delta: 1e-6,
        step_size: None,
        warm_rounds: None,
        accountant: Accountant::Rdp,
        rng: NoiseRng::Seeded(7),
    }
}

/// Real contributions of one round at a random U (so most are clipped at a small C).
fn contributions(inst: &Instance) -> Vec<Vec<f64>> {
    let data = &inst.train;
    let u = lrs_core::synthetic::random_orthonormal(
        data.dim,
        2,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(3),
    );
    let all: Vec<usize> = (0..data.tasks).collect();
    let mut local_b = vec![0.0; data.tasks * data.dim];
    let cfg = SparseStepConfig {
        sparsity: 2,
        swap_passes: 0,
        ..Default::default()
    };
    user_contributions(data, u.as_ref(), &all, &mut local_b, &cfg)
        .into_iter()
        .map(|c| c.gradient)
        .collect()
}

#[test]
fn released_noise_has_the_calibrated_variance() {
    let inst = instance(50, 30);
    let contribs = contributions(&inst);
    let len = contribs[0].len();
    let (sigma, clip) = (1.7, 3.0);
    let mut noise = GaussianNoise::from_seed(sigma, clip, 11).unwrap();
    // (noisy − clean)/C should be i.i.d. N(0, σ²): Σ z²/σ² ~ χ²_N.
    let (mut n, mut sum, mut sum_sq) = (0usize, 0.0f64, 0.0f64);
    for _ in 0..2000 {
        let rel = release_sum(contribs.iter().map(|g| g.as_slice()), len, &mut noise).unwrap();
        let (clean, _) = clipped_sum(contribs.iter().map(|g| g.as_slice()), len, clip).unwrap();
        assert_eq!(rel.clean_sum, clean, "the clean sum is the clipped sum");
        for (a, b) in rel.noisy_sum.iter().zip(&rel.clean_sum) {
            let z = (a - b) / clip;
            sum += z;
            sum_sq += z * z;
            n += 1;
        }
    }
    let nf = n as f64;
    let chi2 = sum_sq / (sigma * sigma);
    // χ²_N has mean N and sd √(2N): a ±5 sd band.
    assert!(
        (chi2 - nf).abs() < 5.0 * (2.0 * nf).sqrt(),
        "chi2 {chi2} for N = {n}"
    );
    // …and the mean is zero within 5 standard errors.
    assert!(
        (sum / nf).abs() < 5.0 * sigma / nf.sqrt(),
        "mean {}",
        sum / nf
    );
    // A wrong σ would be caught: the band is ~±2 % of the variance here.
    assert!(5.0 * (2.0 * nf).sqrt() / nf < 0.03);
}

#[test]
fn clipping_bounds_one_users_influence() {
    let inst = instance(40, 30);
    let mut contribs = contributions(&inst);
    let len = contribs[0].len();
    let clip = 5.0;
    let (without, _) = clipped_sum(contribs.iter().map(|g| g.as_slice()), len, clip).unwrap();
    // One more user with an enormous gradient.
    contribs.push((0..len).map(|j| 1e12 * (j as f64 + 1.0)).collect());
    let (with, clipped) = clipped_sum(contribs.iter().map(|g| g.as_slice()), len, clip).unwrap();
    let diff = with
        .iter()
        .zip(&without)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    assert!(
        diff <= clip * (1.0 + 1e-12),
        "one user moved the sum by {diff} > C = {clip}"
    );
    assert!(
        diff >= clip * (1.0 - 1e-9),
        "the huge user is clipped to exactly C, got {diff}"
    );
    assert!(clipped >= 1);
    // Replacing a user's data (any two contributions) moves the sum by at most 2C.
    let mut other = contribs.clone();
    other[0] = (0..len).map(|j| -1e9 * (j as f64)).collect();
    let (replaced, _) = clipped_sum(other.iter().map(|g| g.as_slice()), len, clip).unwrap();
    let diff = with
        .iter()
        .zip(&replaced)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    assert!(diff <= 2.0 * clip * (1.0 + 1e-12));
    // Non-finite contributions are errors, not silent NaNs.
    other[1][0] = f64::NAN;
    assert!(matches!(
        clipped_sum(other.iter().map(|g| g.as_slice()), len, clip),
        Err(CoreError::Privacy(_))
    ));
}

#[test]
fn reported_epsilon_is_the_accountants() {
    let inst = instance(60, 30);
    let (sigma, q, rounds, delta) = (1.3, 0.5, 7, 1e-5);
    let mut cfg = config(NoiseSpec::Multiplier(sigma), 30);
    cfg.sample_rate = q;
    cfg.rounds = rounds;
    cfg.delta = delta;
    let res = private_amht_lrs(&inst.train, &cfg, None).unwrap();
    let mut acc = RdpAccountant::new(Orders::opacus());
    acc.add_steps(sigma, q, rounds as u64).unwrap();
    let want = acc.epsilon(delta, Conversion::Balle).unwrap();
    let p = &res.privacy;
    assert_eq!(p.epsilon, want.epsilon);
    assert_eq!(p.order, Some(want.order));
    assert_eq!(
        (
            p.noise_multiplier,
            p.sample_rate,
            p.steps,
            p.delta,
            p.clip_norm
        ),
        (sigma, q, rounds as u64, delta, 30.0)
    );
    assert_eq!((p.accountant.as_str(), p.unit.as_str()), ("rdp", "user"));
    assert_eq!(res.trace.len(), rounds);

    // A target ε: σ is calibrate_sigma_rdp's, and ε ≤ target.
    let cfg = PrivateConfig {
        noise: NoiseSpec::Target {
            epsilon: 2.0,
            delta,
        },
        ..cfg
    };
    let res = private_amht_lrs(&inst.train, &cfg, None).unwrap();
    let cal = calibrate_sigma_rdp(
        2.0,
        delta,
        q,
        rounds as u64,
        &Orders::opacus(),
        Conversion::Balle,
    )
    .unwrap();
    assert_eq!(res.privacy.noise_multiplier, cal.sigma);
    assert_eq!(res.privacy.epsilon, cal.epsilon);
    assert!(res.privacy.epsilon <= 2.0);

    // The PLD accountant reports its own figure (tighter than RDP's).
    let cfg = PrivateConfig {
        noise: NoiseSpec::Multiplier(sigma),
        accountant: Accountant::Pld,
        ..cfg
    };
    let report = cfg.privacy_report(sigma).unwrap();
    let mut pld = PldAccountant::new();
    pld.add_steps(sigma, q, rounds as u64).unwrap();
    assert_eq!(report.epsilon, pld.epsilon(delta).unwrap().epsilon);
    assert!(report.epsilon < want.epsilon && report.order.is_none());

    // PLD calibration for full participation over many rounds (where some small σ cannot be
    // evaluated at δ): σ meets the target, a slightly smaller σ does not.
    let cfg = PrivateConfig {
        noise: NoiseSpec::Target {
            epsilon: 2.0,
            delta: 1e-6,
        },
        sample_rate: 1.0,
        rounds: 40,
        ..cfg
    };
    let sigma = cfg.noise_multiplier().unwrap();
    let report = cfg.privacy_report(sigma).unwrap();
    assert!(report.epsilon <= 2.0 && report.epsilon > 1.9, "{report:?}");
    let below = cfg.privacy_report(sigma * 0.99).unwrap();
    assert!(below.epsilon > 2.0, "{below:?}");
}

#[test]
fn deterministic_for_a_fixed_seed() {
    let inst = instance(60, 30);
    let cfg = PrivateConfig {
        rounds: 5,
        sample_rate: 0.5,
        ..config(NoiseSpec::Multiplier(2.0), 30)
    };
    let a = private_amht_lrs(&inst.train, &cfg, None).unwrap();
    let b = private_amht_lrs(&inst.train, &cfg, None).unwrap();
    assert_eq!(a.params, b.params);
    let c = private_amht_lrs(
        &inst.train,
        &PrivateConfig {
            rng: NoiseRng::Seeded(8),
            ..cfg.clone()
        },
        None,
    )
    .unwrap();
    assert_ne!(a.params.u, c.params.u);
    // Poisson sampling draws about q·t users.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
    let n: usize = (0..200)
        .map(|_| poisson_sample(1000, 0.1, &mut rng).len())
        .sum();
    assert!(
        (n as f64 / 200.0 - 100.0).abs() < 3.0,
        "mean batch {}",
        n as f64 / 200.0
    );
}

#[test]
fn error_shrinks_as_epsilon_and_users_grow() {
    let big = instance(2000, 30);
    let truth = big.truth.as_ref().unwrap();
    let err = |inst: &Instance, eps: f64| {
        let cfg = config(
            NoiseSpec::Target {
                epsilon: eps,
                delta: 1e-6,
            },
            30,
        );
        let res = private_amht_lrs(&inst.train, &cfg, inst.truth.as_ref()).unwrap();
        relative_theta_error(&res.params, inst.truth.as_ref().unwrap())
    };
    let (e1, e16) = (err(&big, 1.0), err(&big, 16.0));
    eprintln!("t=2000: ε=1 → {e1:.3e}, ε=16 → {e16:.3e}");
    assert!(e16 < 0.5 * e1, "ε=16: {e16} vs ε=1: {e1}");
    assert!(e16 < 0.1, "ε=16 should be accurate, got {e16}");
    // The first 250 users of the same instance, same ε.
    let small = instance(250, 30);
    assert_eq!(small.truth.as_ref().unwrap().u, truth.u);
    let e_small = err(&small, 4.0);
    let e_big = err(&big, 4.0);
    eprintln!("ε=4: t=250 → {e_small:.3e}, t=2000 → {e_big:.3e}");
    assert!(e_big < 0.5 * e_small, "t=2000: {e_big} vs t=250: {e_small}");
}

#[test]
fn invalid_parameters_are_errors() {
    let inst = instance(20, 30);
    let ok = config(NoiseSpec::Multiplier(1.0), 30);
    let bad = |cfg: PrivateConfig, name: &str| match private_amht_lrs(&inst.train, &cfg, None) {
        Err(CoreError::InvalidParameter { name: n, .. }) => assert_eq!(n, name),
        other => panic!(
            "{name}: expected an InvalidParameter error, got {:?}",
            other.map(|r| r.privacy)
        ),
    };
    for q in [0.0, -0.1, 1.5, f64::NAN] {
        bad(
            PrivateConfig {
                sample_rate: q,
                ..ok.clone()
            },
            "dp-sample-rate",
        );
    }
    for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        bad(
            PrivateConfig {
                noise: NoiseSpec::Multiplier(s),
                ..ok.clone()
            },
            "noise-multiplier",
        );
    }
    for d in [0.0, 1.0, -1e-6, f64::NAN] {
        bad(
            PrivateConfig {
                delta: d,
                ..ok.clone()
            },
            "dp-delta",
        );
        bad(
            PrivateConfig {
                noise: NoiseSpec::Target {
                    epsilon: 1.0,
                    delta: d,
                },
                ..ok.clone()
            },
            "dp-delta",
        );
    }
    for e in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        bad(
            PrivateConfig {
                noise: NoiseSpec::Target {
                    epsilon: e,
                    delta: 1e-6,
                },
                ..ok.clone()
            },
            "dp-epsilon",
        );
    }
    bad(
        PrivateConfig {
            rounds: 0,
            ..ok.clone()
        },
        "dp-rounds",
    );
    for c in [0.0, -2.0, f64::NAN] {
        bad(
            PrivateConfig {
                clip: c,
                ..ok.clone()
            },
            "clip",
        );
    }
    bad(
        PrivateConfig {
            step_size: Some(f64::NAN),
            ..ok.clone()
        },
        "dp-step",
    );
    bad(
        PrivateConfig {
            base: AmhtConfig {
                init: Init::MethodOfMoments,
                ..ok.base.clone()
            },
            ..ok.clone()
        },
        "init",
    );
    bad(
        PrivateConfig {
            base: AmhtConfig {
                rank: 0,
                ..ok.base.clone()
            },
            ..ok.clone()
        },
        "rank",
    );
    // A target no σ in range can meet surfaces the accountant's error.
    let tiny = PrivateConfig {
        noise: NoiseSpec::Target {
            epsilon: 1e-9,
            delta: 1e-6,
        },
        ..ok.clone()
    };
    assert!(matches!(
        private_amht_lrs(&inst.train, &tiny, None),
        Err(CoreError::Privacy(_))
    ));
}
