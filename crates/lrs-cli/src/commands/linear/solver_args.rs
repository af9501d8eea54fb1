//! The AMHT-LRS solver flags every linear command (and `lrs bench linear`) shares.

use clap::Args;
use lrs_core::{AmhtConfig, Init, SharedSolver, SparseStepConfig, UStep};

/// Solver settings shared by `fit`, `sweep`, `demo` and `lrs bench linear`.
#[derive(Debug, Args, Clone)]
pub struct SolverArgs {
    /// Maximum number of rounds.
    #[arg(long, default_value_t = 100)]
    pub iters: usize,
    /// Stop when the relative change of Θ falls below this.
    #[arg(long, default_value_t = 1e-12)]
    pub tol: f64,
    /// Initialisation of U: method of moments or random.
    #[arg(long, default_value = "mom", value_parser = ["mom", "random"])]
    pub init: String,
    /// Seed (random init).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// HTP iterations per start in the sparse step.
    #[arg(long, default_value_t = 20)]
    pub inner_steps: usize,
    /// HTP step size times m (η = step_scale / m).
    #[arg(long, default_value_t = 1.0)]
    pub step_scale: f64,
    /// Disable every search of the sparse step beyond warm-started HTP (ℓ1 paths, cold start,
    /// OMP, swaps).
    #[arg(long)]
    pub no_restarts: bool,
    /// Breakpoints of the ℓ1 path tried on a task whose warm HTP fits worse than the round's
    /// median task (0 = off; the last task phase uses at least 60).
    #[arg(long, default_value_t = lrs_core::sparse_step::L1_STEPS)]
    pub l1_steps: usize,
    /// Forced-index ℓ1 paths tried on a task still uncertified in the last task phase
    /// (0 = off: the swap, basis-pursuit and random-restart searches run instead).
    #[arg(long, default_value_t = lrs_core::sparse_step::FORCED_STARTS)]
    pub forced_starts: usize,
    /// Split each task's samples into this many folds, one per round.
    #[arg(long)]
    pub sample_splitting: Option<usize>,
    /// Shared-step solver: auto (dense when d·r ≤ 2048), dense or cg.
    #[arg(long, default_value = "auto", value_parser = ["auto", "dense", "cg"])]
    pub solver: String,
    /// U update of the shared step: gauss-newton (w, b re-fitted) or ls (alternating least
    /// squares, w and b held).
    #[arg(long, default_value = "gauss-newton", value_parser = ["gauss-newton", "ls"])]
    pub u_step: String,
    /// Drop tasks with residual above this multiple of the median from the U-step (0 = off).
    #[arg(long, default_value_t = 10.0)]
    pub robust_cutoff: f64,
}

impl SolverArgs {
    /// The AMHT-LRS configuration for rank `r` and sparsity `k`.
    pub fn config(&self, rank: usize, sparsity: usize) -> AmhtConfig {
        AmhtConfig {
            rank,
            sparse: SparseStepConfig {
                sparsity,
                step_scale: self.step_scale,
                inner_steps: self.inner_steps,
                restarts: !self.no_restarts,
                l1_steps: self.l1_steps,
                forced_starts: self.forced_starts,
                ..Default::default()
            },
            max_rounds: self.iters,
            tol: self.tol,
            init: if self.init == "random" {
                Init::Random
            } else {
                Init::MethodOfMoments
            },
            seed: self.seed,
            sample_splitting: self.sample_splitting,
            solver: match self.solver.as_str() {
                "dense" => SharedSolver::Dense,
                "cg" => SharedSolver::ConjugateGradient,
                _ => SharedSolver::default(),
            },
            u_step: if self.u_step == "ls" {
                UStep::LeastSquares
            } else {
                UStep::GaussNewton
            },
            robust_cutoff: (self.robust_cutoff > 0.0).then_some(self.robust_cutoff),
        }
    }
}
