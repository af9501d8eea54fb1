//! Private AMHT-LRS: user-level, joint differential privacy for the shared factor `U`
//! (docs/DESIGN.md §Private mode; Jain, Rush, Smith, Song & Thakurta 2021,
//! "Differentially private model personalization").
//!
//! Only `U` is released. Each round `ℓ = 1..L`:
//!
//! 1. the server samples users by Poisson sampling at rate `q` (each user independently);
//! 2. every sampled user fits its own `(w_i, b_i)` to its own data with the current `U`
//!    ([`crate::task_step::fit_task`], warm-started from its previous `b_i`, which never
//!    leaves the user) and contributes the gradient of its squared loss with respect to `U`,
//!    `G_i = X_iᵀ(X_i(U w_i + b_i) − y_i) w_iᵀ`, clipped to Frobenius norm `C`;
//! 3. the server releases `U ← QR(U − η (Σ_i clip_C(G_i) + N(0, σ²C² I)) / n)` with
//!    `n = q·t` the *expected* batch size (dividing by the realised size would leak it).
//!
//! Adding or removing one user changes the clipped sum by at most `C` in Frobenius norm, so
//! every round is one step of the Poisson-subsampled Gaussian mechanism with noise
//! multiplier `σ`; `L` rounds compose, and the accountant of `lrs-privacy` turns them into
//! `(ε, δ)` ([`PrivacyReport`]). After the last round each user fits its final `(w_i, b_i)`
//! locally; those are not released (joint DP: user `i`'s personal model may depend on user
//! `i`'s data), so they cost no privacy.
//!
//! **Initialisation.** The method of moments reads every user's data, so the private fit
//! starts from a random orthonormal `U₀` drawn from `base.seed` ([`private_initial_factor`];
//! data independent, so free);
//! a config asking for [`Init::MethodOfMoments`] is rejected rather than silently changed.
//!
//! **Step size.** For `x ∼ N(0, I)` the Hessian of one user's loss in `U` is about
//! `m · (w_i w_iᵀ ⊗ I)`, so with unit-scale `w_i` the step `η = 1/m` is the Newton step of
//! the averaged update ([`default_step_size`]). Full Newton steps escape the random start
//! fastest but leave `U` as noisy as one round's noise, so the schedule has two phases
//! ([`PrivateConfig::step_at`]): `η` for the first `warm_rounds` rounds (default `⌈L/2⌉`),
//! then `η / j` in the `j`-th round after them — the harmonic steps make `U` the running
//! average of the later rounds' Newton targets (Polyak averaging), which divides the noise
//! variance by their number. The noise per round, and hence the accounting, is unchanged.
//!
//! Everything is deterministic for a fixed seed ([`NoiseRng::Seeded`]): user sampling draws
//! from a ChaCha20 stream of the seed, the noise from `lrs_privacy::GaussianNoise`, and the
//! clipped contributions are summed in user order whatever the thread count. A seeded run
//! protects nothing against whoever holds the seed: release with [`NoiseRng::Entropy`].
//!
//! ```
//! use lrs_core::private_amht::{private_amht_lrs, NoiseSpec, PrivateConfig};
//! use lrs_core::{AmhtConfig, Init, SparseStepConfig, SyntheticSpec};
//!
//! let inst = SyntheticSpec { dim: 20, rank: 2, sparsity: 2, tasks: 400, samples: 30, ..Default::default() }.generate()?;
//! let cfg = PrivateConfig {
//!     base: AmhtConfig { rank: 2, sparse: SparseStepConfig { sparsity: 2, ..Default::default() }, init: Init::Random, ..Default::default() },
//!     clip: 30.0, // one per sample: G_i sums over the user's m = 30 samples
//!     noise: NoiseSpec::Target { epsilon: 8.0, delta: 1e-6 },
//!     ..Default::default()
//! };
//! let fit = private_amht_lrs(&inst.train, &cfg, None)?;
//! assert!(fit.privacy.epsilon <= 8.0);
//! let err = lrs_core::metrics::relative_theta_error(&fit.params, inst.truth.as_ref().unwrap());
//! assert!(err < 0.2, "{err}");
//! # Ok::<(), lrs_core::CoreError>(())
//! ```
//!
//! The per-round [`PrivateRoundTrace`] and the final `(w, b)` are diagnostics for whoever
//! runs the experiment; they are computed from the private data and are not covered by the
//! guarantee (only `params.u` and the [`PrivacyReport`] are).

use std::time::Instant;

use faer::{Mat, MatRef};
use lrs_privacy::{clip_l2, GaussianNoise};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::amht_lrs::AmhtConfig;
use crate::error::{ensure, Result};
use crate::init::Init;
use crate::linalg::{mat_t_vec, mat_vec};
use crate::metrics::subspace_distance;
use crate::problem::{LrsParams, TaskData};
use crate::sparse_step::SparseStepConfig;
use crate::synthetic::{orthonormalize, random_orthonormal};
use crate::task_step::{fit_all_tasks, fit_task, TaskFit};

/// How much noise the released updates carry.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum NoiseSpec {
    /// A fixed noise multiplier σ (noise std / clip norm); ε is reported at
    /// [`PrivateConfig::delta`].
    Multiplier(f64),
    /// The smallest σ whose `(ε, δ)` stays within this target for the configured rounds and
    /// sampling rate (calibrated with the chosen accountant).
    Target {
        /// Target ε.
        epsilon: f64,
        /// Target δ.
        delta: f64,
    },
}

pub use lrs_privacy::guarantee::Accountant;

/// Where the randomness of user sampling and noise comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NoiseRng {
    /// Reproducible experiments (no privacy against the seed holder).
    Seeded(u64),
    /// Operating-system entropy: the mode for anything released.
    Entropy,
}

/// Settings of private AMHT-LRS.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrivateConfig {
    /// Rank, sparse step and random-init seed (`init` must be [`Init::Random`];
    /// `max_rounds`, `tol`, `solver`, `robust_cutoff` and `sample_splitting` are unused).
    pub base: AmhtConfig,
    /// Number of released rounds `L`.
    pub rounds: usize,
    /// Poisson sampling rate `q ∈ (0, 1]` of users per round.
    pub sample_rate: f64,
    /// Frobenius clip norm `C` of each user's contribution `G_i`.
    pub clip: f64,
    /// Noise multiplier or target `(ε, δ)`.
    pub noise: NoiseSpec,
    /// δ at which ε is reported for [`NoiseSpec::Multiplier`] (a target carries its own).
    pub delta: f64,
    /// Server step size η (`None`: [`default_step_size`]).
    pub step_size: Option<f64>,
    /// Rounds at the full step before the averaging phase (`None`: `⌈L/2⌉`).
    pub warm_rounds: Option<usize>,
    /// Accountant for calibration and reporting.
    pub accountant: Accountant,
    /// Randomness of user sampling and noise.
    pub rng: NoiseRng,
}

impl Default for PrivateConfig {
    fn default() -> Self {
        Self {
            base: AmhtConfig {
                init: Init::Random,
                ..Default::default()
            },
            rounds: 40,
            sample_rate: 1.0,
            clip: 1.0,
            noise: NoiseSpec::Target {
                epsilon: 1.0,
                delta: 1e-6,
            },
            delta: 1e-6,
            step_size: None,
            warm_rounds: None,
            accountant: Accountant::Rdp,
            rng: NoiseRng::Seeded(0),
        }
    }
}

/// Default number of private rounds `L`.
pub const DEFAULT_ROUNDS: usize = 40;
/// Default Poisson sampling rate of users per round.
pub const DEFAULT_SAMPLE_RATE: f64 = 1.0;
/// Default clip norm per sample: `C = DEFAULT_CLIP_PER_SAMPLE · m` (the contribution
/// `G_i = X_iᵀ r_i w_iᵀ` is a sum over the user's `m` samples).
pub const DEFAULT_CLIP_PER_SAMPLE: f64 = 1.0;

/// The mechanism's settings that do not depend on the instance or the privacy target: what
/// `lrs linear fit --dp-…` and the privacy sweep share. [`Self::config`] completes them.
#[derive(Debug, Clone, PartialEq)]
pub struct MechanismSettings {
    /// Frobenius clip norm `C` (`None`: [`DEFAULT_CLIP_PER_SAMPLE`] · m).
    pub clip: Option<f64>,
    /// Number of released rounds `L`.
    pub rounds: usize,
    /// Poisson sampling rate `q ∈ (0, 1]` of users per round.
    pub sample_rate: f64,
    /// Server step size η (`None`: [`default_step_size`]).
    pub step_size: Option<f64>,
    /// Rounds at the full step before the averaging phase (`None`: `⌈L/2⌉`).
    pub warm_rounds: Option<usize>,
    /// Accountant for calibration and reporting.
    pub accountant: Accountant,
}

impl Default for MechanismSettings {
    fn default() -> Self {
        Self {
            clip: None,
            rounds: DEFAULT_ROUNDS,
            sample_rate: DEFAULT_SAMPLE_RATE,
            step_size: None,
            warm_rounds: None,
            accountant: Accountant::Rdp,
        }
    }
}

impl MechanismSettings {
    /// The private configuration for `base` on users with `samples` samples each. Its init
    /// is forced to random: the method of moments would read every user's data unprotected.
    pub fn config(
        &self,
        base: AmhtConfig,
        samples: usize,
        noise: NoiseSpec,
        delta: f64,
        rng: NoiseRng,
    ) -> PrivateConfig {
        PrivateConfig {
            base: AmhtConfig {
                init: Init::Random,
                ..base
            },
            rounds: self.rounds,
            sample_rate: self.sample_rate,
            clip: self
                .clip
                .unwrap_or(DEFAULT_CLIP_PER_SAMPLE * samples as f64),
            noise,
            delta,
            step_size: self.step_size,
            warm_rounds: self.warm_rounds,
            accountant: self.accountant,
            rng,
        }
    }
}

/// The default server step `η = 1/m`: the Newton step for isotropic features and
/// unit-scale `w_i` (see the module docs).
pub fn default_step_size(samples: usize) -> f64 {
    1.0 / samples.max(1) as f64
}

/// What the release of `U` guarantees (the shared file's `dp` metadata, docs/FORMATS.md).
pub type PrivacyReport = lrs_privacy::guarantee::Guarantee;

/// One released round.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrivateRoundTrace {
    /// Round number, from 1.
    pub round: usize,
    /// Users sampled this round (diagnostic: not released).
    pub sampled_users: usize,
    /// Sampled users whose contribution was clipped (diagnostic: not released).
    pub clipped_users: usize,
    /// Frobenius norm of the released noisy step `η (Σ clip(G_i) + noise) / n`.
    pub step_norm: f64,
    /// `‖(I − ÛÛᵀ)U*‖₂` after the round, when the truth was supplied.
    pub subspace_distance: Option<f64>,
    /// Seconds since the start of the fit.
    pub elapsed_s: f64,
}

/// A private fit: the released `U`, every user's local `(w_i, b_i)`, and the guarantee.
#[derive(Debug, Clone)]
pub struct PrivateResult {
    /// `U` (released) and the users' final local `w`, `b` (not released).
    pub params: LrsParams,
    /// One entry per round.
    pub trace: Vec<PrivateRoundTrace>,
    /// The `(ε, δ)` guarantee of `params.u`.
    pub privacy: PrivacyReport,
    /// The base server step size η used (see [`PrivateConfig::step_at`]).
    pub step_size: f64,
}

impl PrivateConfig {
    /// Checks every setting against the data (never panics, NaN included).
    pub fn validate(&self, data: &TaskData) -> Result<()> {
        self.base.validate(data)?;
        ensure(self.base.init == Init::Random, "init", || {
            "the method of moments reads every user's data unprotected; the private fit needs Init::Random".into()
        })?;
        ensure(self.rounds >= 1, "dp-rounds", || {
            "must be at least 1".into()
        })?;
        ensure(
            self.sample_rate > 0.0 && self.sample_rate <= 1.0,
            "dp-sample-rate",
            || format!("must be in (0, 1], got {}", self.sample_rate),
        )?;
        ensure(self.clip.is_finite() && self.clip > 0.0, "clip", || {
            format!("must be finite and > 0, got {}", self.clip)
        })?;
        match self.noise {
            NoiseSpec::Multiplier(s) => {
                ensure(s.is_finite() && s > 0.0, "noise-multiplier", || {
                    format!("must be finite and > 0, got {s}")
                })?;
                check_delta(self.delta)?;
            }
            NoiseSpec::Target { epsilon, delta } => {
                ensure(epsilon.is_finite() && epsilon > 0.0, "dp-epsilon", || {
                    format!("must be finite and > 0, got {epsilon}")
                })?;
                check_delta(delta)?;
            }
        }
        if let Some(eta) = self.step_size {
            ensure(eta.is_finite() && eta > 0.0, "dp-step", || {
                format!("must be finite and > 0, got {eta}")
            })?;
        }
        Ok(())
    }

    /// The step of round `round` (from 1) for base step `eta`: `eta` in the warm phase,
    /// `eta / j` in the `j`-th round after it.
    pub fn step_at(&self, round: usize, eta: f64) -> f64 {
        let warm = self.warm_rounds.unwrap_or(self.rounds.div_ceil(2));
        if round <= warm {
            eta
        } else {
            eta / (round - warm + 1) as f64
        }
    }

    /// The noise multiplier σ: the given one, or the calibrated one for a target.
    pub fn noise_multiplier(&self) -> Result<f64> {
        match self.noise {
            NoiseSpec::Multiplier(s) => Ok(s),
            NoiseSpec::Target { epsilon, delta } => Ok(self.accountant.calibrate(
                epsilon,
                delta,
                self.sample_rate,
                self.rounds as u64,
            )?),
        }
    }

    /// The δ the guarantee is stated at.
    pub fn report_delta(&self) -> f64 {
        match self.noise {
            NoiseSpec::Multiplier(_) => self.delta,
            NoiseSpec::Target { delta, .. } => delta,
        }
    }

    /// The guarantee of a run with noise multiplier `sigma` under these settings.
    pub fn privacy_report(&self, sigma: f64) -> Result<PrivacyReport> {
        Ok(self.accountant.guarantee(
            sigma,
            self.sample_rate,
            self.rounds as u64,
            self.report_delta(),
            self.clip,
        )?)
    }
}

fn check_delta(delta: f64) -> Result<()> {
    ensure(delta > 0.0 && delta < 1.0, "dp-delta", || {
        format!("must be in (0, 1), got {delta}")
    })
}

/// One user's gradient of `½‖X_i(U w_i + b_i) − y_i‖²` with respect to `U`:
/// `G_i = X_iᵀ(X_i θ_i − y_i) w_iᵀ`, as a `[d, r]` row-major buffer (unclipped).
pub fn user_gradient(
    x: MatRef<'_, f64>,
    y: &[f64],
    u: MatRef<'_, f64>,
    w: &[f64],
    b: &[f64],
) -> Vec<f64> {
    let (d, r) = (u.nrows(), u.ncols());
    let theta: Vec<f64> = (0..d)
        .map(|p| b[p] + (0..r).map(|a| u[(p, a)] * w[a]).sum::<f64>())
        .collect();
    let resid: Vec<f64> = mat_vec(x, &theta)
        .iter()
        .zip(y)
        .map(|(f, t)| f - t)
        .collect();
    let g = mat_t_vec(x, &resid);
    let mut out = vec![0.0; d * r];
    for p in 0..d {
        for a in 0..r {
            out[p * r + a] = g[p] * w[a];
        }
    }
    out
}

/// What one sampled user computes locally: its best response `(w_i, b_i)` to `U` and its
/// unclipped contribution `G_i`.
#[derive(Debug, Clone)]
pub struct UserContribution {
    /// The local fit (stays with the user).
    pub fit: TaskFit,
    /// `G_i`, `[d, r]` row-major, unclipped.
    pub gradient: Vec<f64>,
}

/// The local work of the users in `sampled` (in parallel; output in the order of
/// `sampled`): each fits `(w_i, b_i)` warm-started from its row of `local_b` (`[t, d]`),
/// stores the new `b_i` back, and returns its unclipped contribution.
pub fn user_contributions(
    data: &TaskData,
    u: MatRef<'_, f64>,
    sampled: &[usize],
    local_b: &mut [f64],
    cfg: &SparseStepConfig,
) -> Vec<UserContribution> {
    let d = data.dim;
    let out: Vec<UserContribution> = sampled
        .par_iter()
        .map(|&i| {
            let (x, y) = (data.x_task(i), data.y_task(i));
            let fit = fit_task(x, y, u, &local_b[i * d..(i + 1) * d], cfg);
            let gradient = user_gradient(x, y, u, &fit.w, &fit.b);
            UserContribution { fit, gradient }
        })
        .collect();
    for (&i, c) in sampled.iter().zip(&out) {
        local_b[i * d..(i + 1) * d].copy_from_slice(&c.fit.b);
    }
    out
}

/// The clipped sum `Σ_i clip_C(G_i)` (summed in the given order) and the number of
/// contributions that were clipped. Adding or removing one contribution moves the sum by at
/// most `C` in Frobenius norm: the sensitivity the noise is calibrated to.
pub fn clipped_sum<'a, I>(contributions: I, len: usize, clip: f64) -> Result<(Vec<f64>, usize)>
where
    I: IntoIterator<Item = &'a [f64]>,
{
    let mut sum = vec![0.0; len];
    let mut scratch = vec![0.0; len];
    let mut clipped = 0;
    for (n, g) in contributions.into_iter().enumerate() {
        ensure(g.len() == len, "contribution", || {
            format!("contribution {n} has {} entries, expected {len}", g.len())
        })?;
        scratch.copy_from_slice(g);
        if clip_l2(&mut scratch, clip)? < 1.0 {
            clipped += 1;
        }
        for (s, v) in sum.iter_mut().zip(&scratch) {
            *s += v;
        }
    }
    Ok((sum, clipped))
}

/// One round's aggregate before and after the Gaussian mechanism.
#[derive(Debug, Clone)]
pub struct Release {
    /// `Σ_i clip_C(G_i)` (never released).
    pub clean_sum: Vec<f64>,
    /// `clean_sum + N(0, σ²C² I)` (released, up to the public scaling by η/n).
    pub noisy_sum: Vec<f64>,
    /// Contributions that were clipped.
    pub clipped: usize,
}

/// The Gaussian mechanism of one round: clip every contribution to `noise.clip_norm()`,
/// sum, add `N(0, σ²C²)` to every entry.
pub fn release_sum<'a, I>(
    contributions: I,
    len: usize,
    noise: &mut GaussianNoise,
) -> Result<Release>
where
    I: IntoIterator<Item = &'a [f64]>,
{
    let (clean_sum, clipped) = clipped_sum(contributions, len, noise.clip_norm())?;
    let mut noisy_sum = clean_sum.clone();
    noise.add_noise(&mut noisy_sum);
    Ok(Release {
        clean_sum,
        noisy_sum,
        clipped,
    })
}

/// The server step `U ← QR(U − η S / n)` for a released sum `S` (`[d, r]` row-major) and
/// the expected batch size `n`; returns the new orthonormal `U`.
pub fn shared_update(
    u: &Mat<f64>,
    released_sum: &[f64],
    step_size: f64,
    expected_batch: f64,
) -> Mat<f64> {
    let r = u.ncols();
    let scale = step_size / expected_batch;
    let moved = Mat::<f64>::from_fn(u.nrows(), r, |p, a| {
        u[(p, a)] - scale * released_sum[p * r + a]
    });
    orthonormalize(&moved).0
}

/// Relative training residual below which a user's local fit counts as certified in the
/// private fit (see [`SparseStepConfig::accept_tol`]): a wrong support leaves a residual of
/// tens of percent, a right one under a slightly noisy `U` about its subspace error.
pub const PRIVATE_ACCEPT_TOL: f64 = 0.1;

/// The private fit's `U₀`: uniformly random orthonormal from its own ChaCha stream of
/// `seed` (not the stream [`crate::init::initial_factor`] and the synthetic generator draw
/// from, so that a seed shared with a synthetic instance does not hand over `U*`).
pub fn private_initial_factor(dim: usize, rank: usize, seed: u64) -> Mat<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(INIT_STREAM);
    random_orthonormal(dim, rank, &mut rng)
}

const INIT_STREAM: u64 = 0x5052_4956_494e_4954; // "PRIVINIT"

/// Poisson sampling: every user of `0..tasks` independently with probability `q`.
pub fn poisson_sample(tasks: usize, q: f64, rng: &mut impl Rng) -> Vec<usize> {
    (0..tasks).filter(|_| rng.gen::<f64>() < q).collect()
}

/// Fits private AMHT-LRS to `data`; `truth` only feeds the trace's subspace distance.
pub fn private_amht_lrs(
    data: &TaskData,
    cfg: &PrivateConfig,
    truth: Option<&LrsParams>,
) -> Result<PrivateResult> {
    cfg.validate(data)?;
    let start = Instant::now();
    let (t, d, r) = (data.tasks, data.dim, cfg.base.rank);
    let sigma = cfg.noise_multiplier()?;
    let privacy = cfg.privacy_report(sigma)?;
    let step_size = cfg
        .step_size
        .unwrap_or_else(|| default_step_size(data.samples));
    let expected_batch = cfg.sample_rate * t as f64;
    let (mut sampler, mut noise) = match cfg.rng {
        NoiseRng::Seeded(seed) => {
            let mut s = ChaCha20Rng::seed_from_u64(seed);
            // Stream 0 of the same key drives the noise: keep sampling on its own stream.
            s.set_stream(1);
            (s, GaussianNoise::from_seed(sigma, cfg.clip, seed)?)
        }
        NoiseRng::Entropy => (
            ChaCha20Rng::from_entropy(),
            GaussianNoise::from_entropy(sigma, cfg.clip)?,
        ),
    };
    let mut u = private_initial_factor(d, r, cfg.base.seed);
    let mut local_b = vec![0.0; t * d];
    // A noisy U never fits exactly, so "certified" (which skips the restarts, and ends the
    // swap search) has to mean "close": within PRIVATE_ACCEPT_TOL relative residual.
    let final_cfg = SparseStepConfig {
        accept_tol: cfg.base.sparse.accept_tol.max(PRIVATE_ACCEPT_TOL),
        ..cfg.base.sparse.clone()
    };
    // The swap search is the expensive last resort for users whose support is still wrong:
    // worth it once, in the final local fit, not every round.
    let step_cfg = SparseStepConfig {
        swap_passes: 0,
        ..final_cfg.clone()
    };
    let mut trace = Vec::with_capacity(cfg.rounds);
    for round in 1..=cfg.rounds {
        let sampled = poisson_sample(t, cfg.sample_rate, &mut sampler);
        let contributions = user_contributions(data, u.as_ref(), &sampled, &mut local_b, &step_cfg);
        let release = release_sum(
            contributions.iter().map(|c| c.gradient.as_slice()),
            d * r,
            &mut noise,
        )?;
        let eta = cfg.step_at(round, step_size);
        let step_norm = eta / expected_batch * crate::linalg::norm2(&release.noisy_sum);
        u = shared_update(&u, &release.noisy_sum, eta, expected_batch);
        trace.push(PrivateRoundTrace {
            round,
            sampled_users: sampled.len(),
            clipped_users: release.clipped,
            step_norm,
            subspace_distance: truth.map(|tr| subspace_distance(&u, &tr.u)),
            elapsed_s: start.elapsed().as_secs_f64(),
        });
    }
    // Every user's final best response to the released U: local, not released.
    let fits = fit_all_tasks(data, u.as_ref(), &local_b, &final_cfg);
    let mut params = LrsParams {
        u,
        w: vec![0.0; t * r],
        b: vec![0.0; t * d],
    };
    for (i, f) in fits.into_iter().enumerate() {
        params.w[i * r..(i + 1) * r].copy_from_slice(&f.w);
        params.b[i * d..(i + 1) * d].copy_from_slice(&f.b);
    }
    Ok(PrivateResult {
        params,
        trace,
        privacy,
        step_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::SyntheticSpec;

    #[test]
    fn gradient_matches_finite_differences() {
        let inst = SyntheticSpec {
            dim: 6,
            rank: 2,
            sparsity: 1,
            tasks: 1,
            samples: 5,
            ..Default::default()
        }
        .generate()
        .unwrap();
        let (x, y) = (inst.train.x_task(0), inst.train.y_task(0));
        let u = Mat::<f64>::from_fn(6, 2, |p, a| 0.1 * (p as f64) - 0.3 * a as f64);
        let (w, b) = ([0.7, -1.2], [0.0, 0.5, 0.0, 0.0, -0.2, 0.0]);
        let loss = |u: &Mat<f64>| {
            let th: Vec<f64> = (0..6)
                .map(|p| b[p] + u[(p, 0)] * w[0] + u[(p, 1)] * w[1])
                .collect();
            mat_vec(x, &th)
                .iter()
                .zip(y)
                .map(|(f, t)| 0.5 * (f - t) * (f - t))
                .sum::<f64>()
        };
        let g = user_gradient(x, y, u.as_ref(), &w, &b);
        for p in 0..6 {
            for a in 0..2 {
                let mut up = u.clone();
                up[(p, a)] += 1e-6;
                let mut um = u.clone();
                um[(p, a)] -= 1e-6;
                let fd = (loss(&up) - loss(&um)) / 2e-6;
                assert!(
                    (fd - g[p * 2 + a]).abs() < 1e-5 * (1.0 + fd.abs()),
                    "{p},{a}: {fd} vs {}",
                    g[p * 2 + a]
                );
            }
        }
    }
}
