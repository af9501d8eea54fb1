//! `lrs`: the command-line front end of the lrs workspace.
//!
//! Every subcommand is a thin layer over a library call: argument parsing and printing
//! live here, the work lives in `lrs-core`, `lrs-privacy` and friends.

mod allocator;
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
    /// Train a run (LRS or a baseline) from a TOML config into a run directory.
    Train(commands::train::TrainArgs),
    /// Fit new tasks against a run's frozen shared parts and write their task files.
    Personalize(commands::personalize::PersonalizeArgs),
    /// Per-task test AUC/accuracy of a run's task files.
    Eval(commands::eval::EvalArgs),
    /// A markdown table of finished runs (method × shots: AUC, bytes and params per user).
    Report(commands::report::ReportArgs),
    /// Score or embed texts for one task of a run, without a server (the numbers `lrs serve`
    /// gives).
    Predict(commands::predict::PredictArgs),
    /// Export a run's shared factor or one task for other tools: a PEFT LoRA adapter or a
    /// merged Hugging Face model directory.
    #[command(subcommand)]
    Export(commands::export::ExportCommand),
    /// Import a shared factor from another tool's format (a PEFT LoRA adapter).
    #[command(subcommand)]
    Import(commands::import::ImportCommand),
    /// Print a shared or task file's metadata, modules, nnz, bytes and hashes.
    Inspect(commands::inspect::InspectArgs),
    /// The main job: personalize all-MiniLM-L6-v2 for MovieLens-100k users with LRS and
    /// baselines, evaluate, write task files and print a table.
    Quickstart(commands::quickstart::QuickstartArgs),
    /// Serve the base model + shared file + task registry over HTTP (mixed-task batching).
    Serve(commands::serve::ServeArgs),
    /// Benchmarks that print a table (`lrs bench linear`).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn main() -> anyhow::Result<()> {
    // candle's CPU backend runs element-wise ops on a spinning barrier pool; under the
    // trainer's own task parallelism (rayon) most of the time went to spinning (measured:
    // a task phase 4.6× faster with one pool thread). Matrix products keep their threads.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Linear(cmd) => commands::linear::run(cmd),
        Command::Privacy(cmd) => commands::privacy::run(cmd),
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Serve(args) => commands::serve::run(args),
        Command::Quickstart(args) => commands::quickstart::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Personalize(args) => commands::personalize::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Export(cmd) => commands::export::run(cmd),
        Command::Import(cmd) => commands::import::run(cmd),
    }
}
