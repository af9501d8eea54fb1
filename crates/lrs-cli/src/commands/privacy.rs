//! `lrs privacy …` (filled in by the privacy work).

use clap::Subcommand;

/// Privacy accounting subcommands.
#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {}

/// Runs a privacy subcommand.
pub fn run(cmd: PrivacyCommand) -> anyhow::Result<()> {
    match cmd {}
}
