//! The short account of a data load on stderr: per file, rows read, loaded and rejected by
//! reason with their first lines; then the tasks left out and why. The full detail is in the
//! command's `--json` output and in the run directory.

use lrs_train::run::SkippedTask;
use lrs_train::{count, LoadReport};

/// How many skipped tasks the stderr summary names before "… and N more".
const SHOWN_SKIPS: usize = 5;

/// Prints each report's summary to stderr.
pub fn print_reports(reports: &[LoadReport]) {
    for r in reports {
        eprintln!("data: {}", r.summary());
    }
}

/// Prints the skipped tasks to stderr (`N tasks {what}:`), the first few by name.
pub fn print_skipped(skipped: &[SkippedTask], what: &str) {
    if skipped.is_empty() {
        return;
    }
    eprintln!("{} {what}:", count(skipped.len(), "task"));
    for s in skipped.iter().take(SHOWN_SKIPS) {
        eprintln!("  {}: {}", s.task, s.reason);
    }
    if skipped.len() > SHOWN_SKIPS {
        eprintln!(
            "  … and {} more (all of them with --json)",
            skipped.len() - SHOWN_SKIPS
        );
    }
}
