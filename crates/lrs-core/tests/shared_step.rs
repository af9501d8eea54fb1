//! The dense and matrix-free shared steps solve the same least-squares problem.

use lrs_core::shared_step::{SharedProblem, TaskGrams};
use lrs_core::SyntheticSpec;

#[test]
fn conjugate_gradient_and_dense_normal_equations_agree() {
    let inst = SyntheticSpec {
        dim: 40,
        rank: 3,
        sparsity: 2,
        tasks: 200,
        samples: 15,
        noise: 0.1,
        seed: 5,
        ..Default::default()
    }
    .generate()
    .unwrap();
    let truth = inst.truth.unwrap();
    // Perturbed w and b so the problem is not trivially solved by U*.
    let w: Vec<f64> = truth
        .w
        .iter()
        .enumerate()
        .map(|(n, v)| v + 0.1 * ((n % 7) as f64 - 3.0))
        .collect();
    let weights: Vec<f64> = (0..200)
        .map(|i| if i % 10 == 0 { 0.0 } else { 1.0 })
        .collect();
    let problem = SharedProblem {
        data: &inst.train,
        w: &w,
        b: &truth.b,
        weights: &weights,
        rank: 3,
        grams: None,
    };
    let dense = problem.solve_dense();
    let zero = faer::Mat::<f64>::zeros(40, 3);
    let (cg, iters) = problem.solve_cg(zero.as_ref(), 1e-14, 1000);
    let diff = (&dense - &cg).norm_l2() / dense.norm_l2();
    assert!(
        diff < 1e-10,
        "relative difference {diff} after {iters} CG iterations"
    );
    // The cached Gram matrices assemble the same operator.
    let grams = TaskGrams::new(&inst.train).unwrap();
    let cached = SharedProblem {
        grams: Some(&grams),
        ..problem
    };
    let h_diff = (cached.assemble() - problem.assemble()).norm_l2() / problem.assemble().norm_l2();
    assert!(h_diff < 1e-13, "cached assembly differs by {h_diff}");
    // The dense solution satisfies the normal equations.
    let resid = (problem.apply(dense.as_ref()) - problem.rhs()).norm_l2() / problem.rhs().norm_l2();
    assert!(resid < 1e-10, "normal-equation residual {resid}");
}
