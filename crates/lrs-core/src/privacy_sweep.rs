//! Utility against privacy: the relative error of Θ that private AMHT-LRS reaches at each
//! target ε, beside the non-private fit of the same instance, for several numbers of users
//! and samples per user. `lrs linear sweep --privacy` prints and draws what
//! [`PrivacySweep::run`] returns.

use std::time::Instant;

use crate::amht_lrs::AmhtConfig;
use crate::error::{ensure, Result};
use crate::methods::{fit, Method};
use crate::metrics::{relative_theta_error, subspace_distance};
use crate::private_amht::{private_amht_lrs, MechanismSettings, NoiseRng, NoiseSpec};
use crate::problem::{LrsParams, TaskData};
use crate::synthetic::SyntheticSpec;
use crate::CoreError;

/// The grid of a privacy sweep. Per samples value one noiseless instance of the largest
/// number of users is drawn; the smaller ones are its first users.
#[derive(Debug, Clone)]
pub struct PrivacySweep {
    /// Dimension d.
    pub dim: usize,
    /// Rank r.
    pub rank: usize,
    /// Sparsity k.
    pub sparsity: usize,
    /// Numbers of users t (sorted and deduplicated by [`Self::run`]).
    pub tasks: Vec<usize>,
    /// Samples per user m.
    pub samples: Vec<usize>,
    /// Target ε values (sorted by [`Self::run`]).
    pub epsilons: Vec<f64>,
    /// δ of every guarantee.
    pub delta: f64,
    /// Solver settings (the private fits start from a random factor).
    pub config: AmhtConfig,
    /// Clip, rounds, sampling rate, step schedule and accountant.
    pub mechanism: MechanismSettings,
    /// Seed of the instance, the user sampling and the noise.
    pub seed: u64,
}

/// One point of the privacy sweep.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrivacyPoint {
    /// Users t.
    pub tasks: usize,
    /// Samples per user m.
    pub samples: usize,
    /// Target ε (`None` for the non-private reference).
    pub target_epsilon: Option<f64>,
    /// ε achieved (≤ target).
    pub epsilon: Option<f64>,
    /// Noise multiplier σ.
    pub noise_multiplier: Option<f64>,
    /// Relative error of Θ.
    pub theta_error: f64,
    /// Subspace distance of the released U.
    pub subspace_distance: f64,
    /// Fit wall time, seconds.
    pub seconds: f64,
}

impl PrivacySweep {
    /// Checks the grid and puts `tasks` and `epsilons` in increasing order (the order of
    /// [`Self::run`]'s points).
    pub fn normalized(mut self) -> Result<Self> {
        ensure(!self.samples.is_empty(), "samples", || {
            "give at least one value".into()
        })?;
        ensure(!self.epsilons.is_empty(), "epsilons", || {
            "give at least one value".into()
        })?;
        ensure(
            self.epsilons.iter().all(|e| e.is_finite() && *e > 0.0),
            "epsilons",
            || "every value must be finite and > 0".into(),
        )?;
        ensure(
            !self.tasks.is_empty() && self.tasks.iter().all(|&t| t >= 1),
            "tasks",
            || "give at least one value, each at least 1".into(),
        )?;
        self.tasks.sort_unstable();
        self.tasks.dedup();
        self.epsilons.sort_by(f64::total_cmp);
        Ok(self)
    }

    /// Runs the grid (after [`Self::normalized`]): per (m, t), the non-private reference then
    /// one private fit per ε, calling `on_point` as each point is done.
    pub fn run(self, mut on_point: impl FnMut(&PrivacyPoint)) -> Result<Vec<PrivacyPoint>> {
        let sweep = self.normalized()?;
        let t_max = sweep.tasks[sweep.tasks.len() - 1];
        let mut points = Vec::new();
        let mut push = |p: PrivacyPoint| {
            on_point(&p);
            points.push(p);
        };
        for &m in &sweep.samples {
            let full = SyntheticSpec {
                dim: sweep.dim,
                rank: sweep.rank,
                sparsity: sweep.sparsity,
                tasks: t_max,
                samples: m,
                test_samples: 0,
                noise: 0.0,
                sparse_magnitude: 1.0,
                seed: sweep.seed,
            }
            .generate()?;
            let truth_full = full.truth.as_ref().ok_or_else(|| CoreError::Numerical {
                step: "privacy sweep",
                reason: "synthetic instance without truth".into(),
            })?;
            for &t in &sweep.tasks {
                let (data, truth) = first_tasks(&full.train, truth_full, t);
                let reference = fit(Method::AmhtLrs, &data, &sweep.config, Some(&truth))?;
                let ref_params = reference
                    .params
                    .as_ref()
                    .ok_or_else(|| CoreError::Numerical {
                        step: "privacy sweep",
                        reason: "AMHT-LRS returned no parameters".into(),
                    })?;
                push(PrivacyPoint {
                    tasks: t,
                    samples: m,
                    target_epsilon: None,
                    epsilon: None,
                    noise_multiplier: None,
                    theta_error: relative_theta_error(ref_params, &truth),
                    subspace_distance: subspace_distance(&ref_params.u, &truth.u),
                    seconds: reference.seconds,
                });
                for &eps in &sweep.epsilons {
                    let cfg = sweep.mechanism.config(
                        sweep.config.clone(),
                        m,
                        NoiseSpec::Target {
                            epsilon: eps,
                            delta: sweep.delta,
                        },
                        sweep.delta,
                        NoiseRng::Seeded(sweep.seed),
                    );
                    let start = Instant::now();
                    let res = private_amht_lrs(&data, &cfg, Some(&truth))?;
                    push(PrivacyPoint {
                        tasks: t,
                        samples: m,
                        target_epsilon: Some(eps),
                        epsilon: Some(res.privacy.epsilon),
                        noise_multiplier: Some(res.privacy.noise_multiplier),
                        theta_error: relative_theta_error(&res.params, &truth),
                        subspace_distance: subspace_distance(&res.params.u, &truth.u),
                        seconds: start.elapsed().as_secs_f64(),
                    });
                }
            }
        }
        Ok(points)
    }
}

/// The first `t` users of an instance (data and truth).
fn first_tasks(data: &TaskData, truth: &LrsParams, t: usize) -> (TaskData, LrsParams) {
    let (m, d, r) = (data.samples, data.dim, truth.rank());
    let sub = TaskData {
        tasks: t,
        samples: m,
        dim: d,
        x: data.x[..t * m * d].to_vec().into(),
        y: data.y[..t * m].to_vec(),
    };
    let tr = LrsParams {
        u: truth.u.clone(),
        w: truth.w[..t * r].to_vec(),
        b: truth.b[..t * d].to_vec(),
    };
    (sub, tr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse_step::SparseStepConfig;

    fn sweep() -> PrivacySweep {
        PrivacySweep {
            dim: 10,
            rank: 1,
            sparsity: 1,
            tasks: vec![300, 100, 300],
            samples: vec![20],
            epsilons: vec![16.0, 1.0],
            delta: 1e-6,
            config: AmhtConfig {
                rank: 1,
                sparse: SparseStepConfig {
                    sparsity: 1,
                    ..Default::default()
                },
                ..Default::default()
            },
            mechanism: MechanismSettings {
                rounds: 10,
                ..Default::default()
            },
            seed: 3,
        }
    }

    #[test]
    fn points_come_per_users_reference_first_then_by_epsilon_within_the_target() -> Result<()> {
        let mut seen = 0;
        let points = sweep().run(|_| seen += 1)?;
        assert_eq!(seen, points.len());
        let keys: Vec<_> = points.iter().map(|p| (p.tasks, p.target_epsilon)).collect();
        assert_eq!(
            keys,
            [
                (100, None),
                (100, Some(1.0)),
                (100, Some(16.0)),
                (300, None),
                (300, Some(1.0)),
                (300, Some(16.0)),
            ]
        );
        for p in &points {
            if let (Some(target), Some(eps)) = (p.target_epsilon, p.epsilon) {
                assert!(eps <= target * (1.0 + 1e-9), "{eps} > {target}");
            } else {
                assert!(p.theta_error < 1e-6, "non-private error {}", p.theta_error);
            }
        }
        // More privacy budget, less error (same instance, same noise seed).
        let err = |t, e| {
            points
                .iter()
                .find(|p| p.tasks == t && p.target_epsilon == Some(e))
                .map(|p| p.theta_error)
                .unwrap_or(f64::NAN)
        };
        assert!(err(300, 16.0) < err(300, 1.0));
        Ok(())
    }

    #[test]
    fn bad_grids_are_errors() {
        let no_eps = PrivacySweep {
            epsilons: vec![],
            ..sweep()
        };
        assert!(no_eps.normalized().is_err());
        let bad_eps = PrivacySweep {
            epsilons: vec![1.0, 0.0],
            ..sweep()
        };
        assert!(bad_eps.normalized().is_err());
        let no_users = PrivacySweep {
            tasks: vec![0],
            ..sweep()
        };
        assert!(no_users.normalized().is_err());
    }
}
