//! The flags of private AMHT-LRS: `lrs linear fit --dp-epsilon …` and
//! `lrs linear sweep --privacy`.

use clap::Args;
use lrs_core::private_amht::{Accountant, MechanismSettings, DEFAULT_ROUNDS, DEFAULT_SAMPLE_RATE};

use crate::commands::privacy::AccountantKind;

/// Settings of the private mechanism shared by `fit` and `sweep --privacy`.
#[derive(Debug, Args, Clone)]
pub struct MechanismArgs {
    /// Frobenius clip norm C of each user's contribution (default: m, one per sample).
    #[arg(long)]
    pub clip: Option<f64>,
    /// Number of private rounds L.
    #[arg(long, default_value_t = DEFAULT_ROUNDS)]
    pub dp_rounds: usize,
    /// Poisson sampling rate q of users per round, in (0, 1].
    #[arg(long, default_value_t = DEFAULT_SAMPLE_RATE)]
    pub dp_sample_rate: f64,
    /// Server step size η (default 1/m, the Newton step for isotropic features).
    #[arg(long)]
    pub dp_step: Option<f64>,
    /// Rounds at the full step before the averaging phase (steps η/j); default ⌈L/2⌉.
    #[arg(long)]
    pub dp_warm_rounds: Option<usize>,
    /// Accountant for calibration and the reported ε.
    #[arg(long, value_enum, default_value_t = AccountantKind::Rdp)]
    pub accountant: AccountantKind,
}

/// Differential-privacy flags of `lrs linear fit` (any of `--dp-epsilon` or
/// `--noise-multiplier` switches to private AMHT-LRS).
#[derive(Debug, Args, Clone)]
pub struct DpArgs {
    /// Target ε of user-level DP for the released U (σ is calibrated).
    #[arg(long)]
    pub dp_epsilon: Option<f64>,
    /// δ of the guarantee.
    #[arg(long, default_value_t = 1e-6)]
    pub dp_delta: f64,
    /// Fixed noise multiplier σ instead of a target ε (ε is then reported).
    #[arg(long, conflicts_with = "dp_epsilon")]
    pub noise_multiplier: Option<f64>,
    #[command(flatten)]
    pub mechanism: MechanismArgs,
    /// Seed user sampling and noise (reproducible, no privacy against the seed holder);
    /// without it both come from OS entropy.
    #[arg(long)]
    pub dp_seed: Option<u64>,
}

impl DpArgs {
    /// Whether any private option was given.
    pub fn enabled(&self) -> bool {
        self.dp_epsilon.is_some() || self.noise_multiplier.is_some()
    }
}

/// Flags of `lrs linear sweep --privacy`.
#[derive(Debug, Args, Clone)]
pub struct DpSweepArgs {
    /// Draw utility (relative error of Θ) vs ε for a fixed instance instead of the
    /// samples sweep (one curve per --dp-tasks value and --samples value).
    #[arg(long)]
    pub privacy: bool,
    /// Target ε values, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.5, 1.0, 2.0, 4.0, 8.0, 16.0])]
    pub epsilons: Vec<f64>,
    /// Numbers of users t, comma separated (default: --tasks). The smaller instances are
    /// the first t users of the largest.
    #[arg(long, value_delimiter = ',')]
    pub dp_tasks: Vec<usize>,
    /// δ of the guarantee.
    #[arg(long, default_value_t = 1e-6)]
    pub dp_delta: f64,
    #[command(flatten)]
    pub mechanism: MechanismArgs,
    /// Seed of the instance, the user sampling and the noise.
    #[arg(long, default_value_t = 0)]
    pub dp_seed: u64,
}

impl MechanismArgs {
    /// The mechanism settings these flags give.
    pub fn settings(&self) -> MechanismSettings {
        MechanismSettings {
            clip: self.clip,
            rounds: self.dp_rounds,
            sample_rate: self.dp_sample_rate,
            step_size: self.dp_step,
            warm_rounds: self.dp_warm_rounds,
            accountant: match self.accountant {
                AccountantKind::Rdp => Accountant::Rdp,
                AccountantKind::Pld => Accountant::Pld,
            },
        }
    }
}
