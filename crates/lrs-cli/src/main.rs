//! `lrs`: the command-line front end of the lrs workspace.
//!
//! Every subcommand is a thin layer over a library call: argument parsing and printing
//! live here, the work lives in `lrs-core`, `lrs-privacy` and friends.

mod commands;

use clap::{Parser, Subcommand};

/// Low-rank + sparse personalization of pretrained models.
#[derive(Debug, Parser)]
#[command(name = "lrs", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The paper's linear instance: generate data, fit AMHT-LRS and baselines, sweep.
    #[command(subcommand)]
    Linear(commands::linear::LinearCommand),
    /// Differential-privacy accounting: ε for a noise level, σ for a target ε.
    #[command(subcommand)]
    Privacy(commands::privacy::PrivacyCommand),
    /// Print a shared or task file's metadata, modules, nnz, bytes and hashes.
    Inspect(commands::inspect::InspectArgs),
    /// The main demo: AMHT-LRS and every baseline on one linear instance.
    Quickstart(commands::quickstart::QuickstartArgs),
    /// Benchmarks that print a table (`lrs bench linear`).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Linear(cmd) => commands::linear::run(cmd),
        Command::Privacy(cmd) => commands::privacy::run(cmd),
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Quickstart(args) => commands::quickstart::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
    }
}
