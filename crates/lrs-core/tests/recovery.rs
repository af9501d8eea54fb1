//! End-to-end recovery on the reference instance: d=100, r=5, k=5, t=500, m=80.
//! Fewer samples than dimensions, so per-task least squares cannot succeed.

use lrs_core::{amht_lrs, fit, AmhtConfig, Method, SparseStepConfig, SyntheticSpec, UStep};

fn config(rank: usize, k: usize) -> AmhtConfig {
    AmhtConfig {
        rank,
        sparse: SparseStepConfig {
            sparsity: k,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn spec(noise: f64) -> SyntheticSpec {
    SyntheticSpec {
        dim: 100,
        rank: 5,
        sparsity: 5,
        tasks: 500,
        samples: 80,
        test_samples: 20,
        noise,
        sparse_magnitude: 1.0,
        seed: 11,
    }
}

#[test]
fn amht_lrs_recovers_exactly_where_baselines_fail() {
    let inst = spec(0.0).generate().unwrap();
    let truth = inst.truth.as_ref();
    let cfg = config(5, 5);
    let err = |m: Method| {
        let f = fit(m, &inst.train, &cfg, truth).unwrap();
        f.report(&inst.train, inst.test.as_ref(), truth)
            .theta_error
            .unwrap()
    };
    let amht = err(Method::AmhtLrs);
    assert!(amht < 1e-8, "AMHT-LRS error {amht}");
    let oracle = err(Method::Oracle);
    assert!(oracle < 1e-10, "oracle error {oracle}");
    for m in [
        Method::Lowrank,
        Method::Sparse,
        Method::Lstsq,
        Method::Global,
    ] {
        let e = err(m);
        assert!(e > 0.1, "{} should fail this instance, error {e}", m.name());
    }
}

#[test]
fn noisy_recovery_is_within_a_small_constant_of_the_oracle() {
    let inst = spec(0.1).generate().unwrap();
    let truth = inst.truth.as_ref();
    let cfg = AmhtConfig {
        tol: 1e-8,
        ..config(5, 5)
    };
    let amht = fit(Method::AmhtLrs, &inst.train, &cfg, truth).unwrap();
    let oracle = fit(Method::Oracle, &inst.train, &cfg, truth).unwrap();
    let ra = amht.report(&inst.train, inst.test.as_ref(), truth);
    let ro = oracle.report(&inst.train, inst.test.as_ref(), truth);
    let (ea, eo) = (ra.theta_error.unwrap(), ro.theta_error.unwrap());
    assert!(ea < 2.0 * eo, "AMHT-LRS {ea} vs oracle {eo}");
    assert!(ea > 0.0 && eo > 0.0);
    // Held-out error near the noise floor σ² = 0.01.
    assert!(
        ra.test_mse.unwrap() < 1.5 * 0.01 * (1.0 + 2.0 * ea.powi(2) * 10.0),
        "test mse {}",
        ra.test_mse.unwrap()
    );
    let s = ra.support.unwrap();
    assert!(s.precision > 0.99 && s.recall > 0.99, "support {s:?}");
}

#[test]
fn gauss_newton_and_least_squares_u_steps_reach_the_same_exact_fit() {
    let inst = spec(0.0).generate().unwrap();
    let truth = inst.truth.as_ref();
    let run = |u_step: UStep| {
        let cfg = AmhtConfig {
            u_step,
            ..config(5, 5)
        };
        let f = amht_lrs(&inst.train, &cfg, truth).unwrap();
        let err = lrs_core::metrics::relative_theta_error(&f.params, truth.unwrap());
        let last = f.trace.last().unwrap().clone();
        (err, f.trace.len(), last)
    };
    let (gn_err, gn_rounds, gn_last) = run(UStep::GaussNewton);
    let (ls_err, ls_rounds, ls_last) = run(UStep::LeastSquares);
    assert!(gn_err < 1e-8 && ls_err < 1e-8, "errors {gn_err}, {ls_err}");
    // Both stop on the residual certificate: every task fits.
    assert_eq!(gn_last.certified_tasks, 500);
    assert_eq!(ls_last.certified_tasks, 500);
    // Gauss–Newton converges quadratically, least squares linearly.
    assert!(
        2 * gn_rounds < ls_rounds,
        "Gauss-Newton {gn_rounds} rounds, least squares {ls_rounds}"
    );
}

#[test]
fn the_l1_path_recovers_exactly_at_thirty_samples_where_plain_htp_stalls() {
    // m = 30 is below HTP's phase transition (m − r = 25 projected samples for k = 5 of
    // d = 100) but within ℓ1's: with the ℓ1 path and its forced starts every task is exact.
    let inst = SyntheticSpec {
        samples: 30,
        test_samples: 0,
        ..spec(0.0)
    }
    .generate()
    .unwrap();
    let truth = inst.truth.as_ref();
    let err = |cfg: &AmhtConfig| {
        let f = fit(Method::AmhtLrs, &inst.train, cfg, truth).unwrap();
        f.report(&inst.train, None, truth).theta_error.unwrap()
    };
    let with_path = err(&config(5, 5));
    assert!(with_path < 1e-8, "AMHT-LRS error at m = 30: {with_path}");
    let mut plain = config(5, 5);
    plain.sparse.l1_steps = 0;
    plain.sparse.forced_starts = 0;
    let without = err(&plain);
    assert!(
        without > 0.1,
        "plain HTP should stall at m = 30, error {without}"
    );
}
