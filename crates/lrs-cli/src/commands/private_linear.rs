//! `lrs linear fit --dp-epsilon …` and `lrs linear sweep --privacy`: private AMHT-LRS from
//! the command line.

use clap::Args;

/// Differential-privacy flags of `lrs linear fit`.
#[derive(Debug, Args, Clone, Default)]
pub struct DpArgs {
    /// Target ε of user-level DP for the released U (σ is calibrated).
    #[arg(long)]
    pub dp_epsilon: Option<f64>,
}

impl DpArgs {
    /// Whether any private option was given.
    pub fn enabled(&self) -> bool {
        self.dp_epsilon.is_some()
    }
}

/// Flags of `lrs linear sweep --privacy`.
#[derive(Debug, Args, Clone, Default)]
pub struct DpSweepArgs {
    /// Draw utility (relative error of Θ) vs ε for a fixed instance instead of the
    /// samples sweep.
    #[arg(long)]
    pub privacy: bool,
}

/// Runs a private fit (called by `lrs linear fit` when [`DpArgs::enabled`]).
pub fn run_private_fit(_fit: &crate::commands::linear::FitArgs) -> anyhow::Result<()> {
    anyhow::bail!("private fitting is not available yet")
}

/// Runs the privacy sweep (called by `lrs linear sweep --privacy`).
pub fn run_privacy_sweep(_sweep: &crate::commands::sweep::SweepArgs) -> anyhow::Result<()> {
    anyhow::bail!("the privacy sweep is not available yet")
}
