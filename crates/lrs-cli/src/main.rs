//! `lrs`: the command-line front end of the lrs workspace.
//!
//! Every subcommand is a thin layer over a library call: argument parsing and printing
//! live here, the work lives in `lrs-core`, `lrs-privacy` and friends.

mod allocator;
mod commands;
mod error_report;

use clap::{Parser, Subcommand};

/// Low-rank + sparse personalization of pretrained models.
#[derive(Debug, Parser)]
#[command(
    name = "lrs",
    version,
    about = "Low-rank + sparse personalization of pretrained models.",
    long_about = LONG_ABOUT,
    after_help = MAIN_COMMANDS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The paragraph `lrs --help` opens with.
const LONG_ABOUT: &str = "Low-rank + sparse personalization of pretrained models.\n\n\
Many users (tasks) share one frozen base model and one low-rank shared factor; each user \
keeps only a small personal part (coordinates in the shared factor, a sparse delta, a head) in \
its own task file. \
`lrs train` fits the shared factor and the trained users' parts from a config, `lrs \
personalize` fits new users against the frozen shared factor, `lrs eval` scores every task \
file of a run, and `lrs serve` answers predictions for any mix of users over HTTP.";

/// The commands a first session needs, after the full list in `lrs --help`.
const MAIN_COMMANDS: &str = "Start here:\n  \
lrs quickstart                                   the main job end to end (MiniLM + MovieLens)\n  \
lrs train --config configs/X.toml --run runs/X   train a run directory\n  \
lrs personalize --run runs/X --task-data F.jsonl --holdout 0.2   fit new users\n  \
lrs eval --run runs/X                            score every task file of the run\n  \
lrs serve --model M --shared runs/X/shared.safetensors --tasks-dir runs/X/tasks   HTTP API\n  \
lrs linear demo                                  the paper's linear AMHT-LRS on generated data\n\n\
`lrs <command> --help` lists each command's options.";

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
    /// Test AUC/accuracy of every task file of a run, trained and personalized.
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
    /// Print the rows a config's runs train, validate and test on (JSON lines), to fit and
    /// score other tools on exactly the same split.
    Split(commands::split::SplitArgs),
    /// The main job: personalize all-MiniLM-L6-v2 for MovieLens-100k users with LRS and
    /// baselines, evaluate, write task files and print a table.
    Quickstart(commands::quickstart::QuickstartArgs),
    /// Serve the base model + shared file + task registry over HTTP (mixed-task batching).
    Serve(commands::serve::ServeArgs),
    /// Benchmarks that print a table (`lrs bench linear`).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    error_report::exit_with(run())
}

/// Parses the command line and runs the subcommand.
fn run() -> anyhow::Result<()> {
    // candle's CPU backend runs element-wise ops on a spinning barrier pool; under the
    // trainer's own task parallelism (rayon) most of the time went to spinning (measured:
    // a task phase 4.6× faster with one pool thread). Matrix products keep their threads.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    // candle asks for its matrix-product thread count on every product, and without
    // RAYON_NUM_THREADS it recounts the physical cores from /proc/cpuinfo each time (4 % of a
    // personalization profile). Count once, with candle's own rule, and keep the answer (rayon's
    // pool reads it too: one thread per physical core).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let cli = Cli::parse();
    let runs_model = match &cli.command {
        Command::Serve(_) => false,
        Command::Bench(b) => !matches!(
            b,
            commands::bench::BenchCommand::Load(_) | commands::bench::BenchCommand::Serve(_)
        ),
        _ => true,
    };
    if runs_model {
        allocator::keep_freed_memory();
    }
    match cli.command {
        Command::Linear(cmd) => commands::linear::run(cmd),
        Command::Privacy(cmd) => commands::privacy::run(cmd),
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Serve(args) => commands::serve::run(args),
        Command::Quickstart(args) => commands::quickstart::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Split(args) => commands::split::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Personalize(args) => commands::personalize::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Export(cmd) => commands::export::run(cmd),
        Command::Import(cmd) => commands::import::run(cmd),
    }
}
