//! The phase-transition experiment: for every method and every number of samples per task,
//! the fraction of seeds on which a noiseless synthetic instance is recovered (relative error
//! of Θ below a threshold). `lrs linear sweep` prints and draws what [`RecoverySweep::run`]
//! returns.

use crate::amht_lrs::AmhtConfig;
use crate::error::{ensure, Result};
use crate::methods::{fit, Method};
use crate::synthetic::SyntheticSpec;

/// The grid of a recovery sweep: one noiseless instance per (m, seed), shared by every method.
#[derive(Debug, Clone)]
pub struct RecoverySweep {
    /// Dimension d.
    pub dim: usize,
    /// Rank r of the planted shared part.
    pub rank: usize,
    /// Non-zeros k of each planted sparse part.
    pub sparsity: usize,
    /// Number of tasks t.
    pub tasks: usize,
    /// Samples per task to try.
    pub samples: Vec<usize>,
    /// Instances per grid point (seeds `0..seeds`).
    pub seeds: u64,
    /// Methods fitted at every grid point.
    pub methods: Vec<Method>,
    /// A fit succeeds when the relative error of Θ is below this.
    pub threshold: f64,
    /// Solver settings of every fit.
    pub config: AmhtConfig,
}

/// One grid point's outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SweepPoint {
    /// Method name.
    pub method: &'static str,
    /// Samples per task.
    pub samples: usize,
    /// Fraction of seeds recovered.
    pub success: f64,
    /// Median relative error over seeds.
    pub median_error: f64,
    /// Mean fit time, seconds.
    pub mean_seconds: f64,
}

impl RecoverySweep {
    /// Number of fits the sweep runs (for a progress bar).
    pub fn fits(&self) -> u64 {
        (self.methods.len() * self.samples.len()) as u64 * self.seeds
    }

    /// Runs every fit, calling `on_fit(method, m)` before each; points in grid order
    /// (samples outer, methods inner).
    pub fn run(&self, mut on_fit: impl FnMut(Method, usize)) -> Result<Vec<SweepPoint>> {
        ensure(!self.samples.is_empty(), "samples", || {
            "give at least one value".into()
        })?;
        ensure(self.seeds >= 1, "seeds", || "must be at least 1".into())?;
        ensure(!self.methods.is_empty(), "methods", || {
            "give at least one method".into()
        })?;
        let mut points = Vec::new();
        for &m in &self.samples {
            let instances: Vec<_> = (0..self.seeds)
                .map(|seed| {
                    SyntheticSpec {
                        dim: self.dim,
                        rank: self.rank,
                        sparsity: self.sparsity,
                        tasks: self.tasks,
                        samples: m,
                        test_samples: 0,
                        noise: 0.0,
                        sparse_magnitude: 1.0,
                        seed,
                    }
                    .generate()
                })
                .collect::<Result<_>>()?;
            for &method in &self.methods {
                let mut errors = Vec::with_capacity(instances.len());
                let mut seconds = 0.0;
                for inst in &instances {
                    on_fit(method, m);
                    let f = fit(method, &inst.train, &self.config, inst.truth.as_ref())?;
                    let e = f
                        .report(&inst.train, None, inst.truth.as_ref())
                        .theta_error
                        .unwrap_or(f64::NAN);
                    errors.push(e);
                    seconds += f.seconds;
                }
                let success = errors.iter().filter(|e| **e < self.threshold).count() as f64
                    / errors.len() as f64;
                errors.sort_by(f64::total_cmp);
                points.push(SweepPoint {
                    method: method.name(),
                    samples: m,
                    success,
                    median_error: errors[errors.len() / 2],
                    mean_seconds: seconds / self.seeds as f64,
                });
            }
        }
        Ok(points)
    }
}

/// Smallest grid `m` from which on `method`'s success rate stays ≥ `level` (at every larger
/// `m` of the grid too); `None` if the largest `m` misses it.
pub fn first_m_reaching(points: &[SweepPoint], method: &str, level: f64) -> Option<usize> {
    let mut pts: Vec<_> = points.iter().filter(|p| p.method == method).collect();
    pts.sort_by_key(|p| p.samples);
    let mut answer = None;
    for p in pts.iter().rev() {
        if p.success >= level {
            answer = Some(p.samples);
        } else {
            break;
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse_step::SparseStepConfig;

    fn point(samples: usize, success: f64) -> SweepPoint {
        SweepPoint {
            method: "amht-lrs",
            samples,
            success,
            median_error: 0.0,
            mean_seconds: 0.0,
        }
    }

    #[test]
    fn the_first_m_is_the_start_of_the_last_run_above_the_level() {
        let pts = [
            point(30, 1.0),
            point(20, 0.2),
            point(40, 0.8),
            point(50, 1.0),
            point(60, 0.96),
        ];
        assert_eq!(first_m_reaching(&pts, "amht-lrs", 0.95), Some(50));
        assert_eq!(first_m_reaching(&pts, "amht-lrs", 0.9), Some(50));
        assert_eq!(first_m_reaching(&pts, "amht-lrs", 0.5), Some(30));
        assert_eq!(first_m_reaching(&pts, "amht-lrs", 0.99), None);
        assert_eq!(first_m_reaching(&pts, "lowrank", 0.5), None);
    }

    #[test]
    fn plenty_of_samples_recover_and_too_few_do_not() -> Result<()> {
        let sweep = RecoverySweep {
            dim: 20,
            rank: 2,
            sparsity: 2,
            tasks: 60,
            samples: vec![4, 30],
            seeds: 2,
            methods: vec![Method::AmhtLrs, Method::Oracle],
            threshold: 1e-3,
            config: AmhtConfig {
                rank: 2,
                sparse: SparseStepConfig {
                    sparsity: 2,
                    ..Default::default()
                },
                ..Default::default()
            },
        };
        let mut calls = 0;
        let points = sweep.run(|_, _| calls += 1)?;
        assert_eq!(calls as u64, sweep.fits());
        assert_eq!(points.len(), 4);
        let at = |method: &str, m| {
            points
                .iter()
                .find(|p| p.method == method && p.samples == m)
                .map(|p| p.success)
        };
        assert_eq!(at("amht-lrs", 30), Some(1.0));
        assert_eq!(at("oracle", 30), Some(1.0));
        assert_eq!(at("amht-lrs", 4), Some(0.0));
        Ok(())
    }

    #[test]
    fn an_empty_grid_is_an_error() {
        let sweep = RecoverySweep {
            dim: 10,
            rank: 1,
            sparsity: 1,
            tasks: 5,
            samples: vec![],
            seeds: 1,
            methods: vec![Method::AmhtLrs],
            threshold: 1e-3,
            config: AmhtConfig::default(),
        };
        assert!(sweep.run(|_, _| {}).is_err());
    }
}
