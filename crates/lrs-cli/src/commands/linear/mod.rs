//! `lrs linear …`: generate synthetic instances, fit AMHT-LRS or a baseline (privately too),
//! sweep the phase transition and the privacy–utility curve. The experiments themselves live
//! in `lrs_core` ([`lrs_core::recovery_sweep`], [`lrs_core::privacy_sweep`]); these modules
//! parse the flags and print.

use clap::Subcommand;

pub mod demo;
pub mod dp_args;
pub mod fit;
pub mod generate;
pub mod privacy_sweep;
pub mod private_fit;
pub mod solver_args;
pub mod sweep;

/// Linear-instance subcommands.
#[derive(Debug, Subcommand)]
pub enum LinearCommand {
    /// Draw a synthetic instance `y = <x, U* w* + b*> + z` and write it as safetensors.
    Generate(generate::GenerateArgs),
    /// Fit one method to a data file and print recovery metrics and the fit's wall time.
    Fit(fit::FitArgs),
    /// Success probability vs samples per task for every method (CSV + SVG plot).
    Sweep(sweep::SweepArgs),
    /// One noiseless instance with m < d, every method fitted: a table of errors and times.
    Demo(demo::DemoArgs),
}

/// Runs a linear subcommand.
pub fn run(cmd: LinearCommand) -> anyhow::Result<()> {
    match cmd {
        LinearCommand::Generate(a) => generate::run(a),
        LinearCommand::Fit(a) if a.dp.enabled() => private_fit::run(&a),
        LinearCommand::Fit(a) => fit::run(a),
        LinearCommand::Sweep(a) if a.dp.privacy => privacy_sweep::run(&a),
        LinearCommand::Sweep(a) => sweep::run(a),
        LinearCommand::Demo(a) => demo::run(a),
    }
}
