//! `lrs-core`: the linear instance of low-rank + sparse multi-task learning,
//! `y_ij = <x_ij, U w_i + b_i> + z_ij`, solved by AMHT-LRS, with the baselines and metrics
//! to judge it (docs/DESIGN.md §Linear setting).
//!
//! ```
//! use lrs_core::{amht_lrs, AmhtConfig, SyntheticSpec, SparseStepConfig};
//!
//! let spec = SyntheticSpec { dim: 30, rank: 2, sparsity: 2, tasks: 60, samples: 25, ..Default::default() };
//! let inst = spec.generate()?;
//! let cfg = AmhtConfig { rank: 2, sparse: SparseStepConfig { sparsity: 2, ..Default::default() }, ..Default::default() };
//! let fit = amht_lrs(&inst.train, &cfg, None)?;
//! let err = lrs_core::metrics::relative_theta_error(&fit.params, inst.truth.as_ref().unwrap());
//! assert!(err < 1e-6);
//! # Ok::<(), lrs_core::CoreError>(())
//! ```

pub mod amht_lrs;
pub mod atomic;
pub mod baselines;
pub mod data_file;
pub mod error;
pub mod gauss_newton;
pub mod hard_threshold;
pub mod init;
pub mod l1_homotopy;
pub mod linalg;
pub mod methods;
pub mod metrics;
pub mod privacy_sweep;
pub mod private_amht;
pub mod problem;
pub mod recovery_sweep;
pub mod samples;
pub mod shared_step;
pub mod sparse_step;
pub mod synthetic;
pub mod task_kernel;
pub mod task_step;

pub use amht_lrs::{amht_lrs, AmhtConfig, AmhtResult, RoundTrace, UStep};
pub use error::{CoreError, Result};
pub use init::Init;
pub use methods::{fit, Fit, Method};
pub use problem::{Instance, LrsParams, TaskData};
pub use shared_step::SharedSolver;
pub use sparse_step::SparseStepConfig;
pub use synthetic::SyntheticSpec;
