//! Personalize a new user against a trained run's frozen shared file, with the library API.
//!
//! ```text
//! cargo run --example personalize_new_user                       # a seeded tiny setup
//! cargo run --example personalize_new_user -- RUN_DIR USER.jsonl  # your own run and rows
//! ```
//!
//! With no arguments it trains a tiny seeded run first (a few seconds). Then it fits the new
//! user's personal part on all but the latest 25 % of its rows (`holdout`), writes the task
//! file into the run, and scores the user on the held-out rows it never saw.

mod common;

use std::path::PathBuf;

use lrs_train::run::{evaluate_run, personalize_run, EvalOptions, PersonalizeOptions, RunDir};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tmp = tempfile::tempdir()?;
    let (run, rows) = match args.as_slice() {
        [run, rows] => (
            RunDir::open(std::path::Path::new(run))?,
            PathBuf::from(rows),
        ),
        [] => {
            let (_, run) = common::trained_run(tmp.path(), 4)?;
            let rows = tmp.path().join("new-user.jsonl");
            let text: String = (0..12).map(|i| common::row("alice", 25, i)).collect();
            std::fs::write(&rows, text)?;
            (run, rows)
        }
        _ => anyhow::bail!("usage: personalize_new_user [RUN_DIR USER_ROWS.jsonl]"),
    };

    let done = personalize_run(
        &run,
        &rows,
        PersonalizeOptions {
            holdout: 0.25,
            strict: false,
            shard: lrs_train::run::Shard::all(),
        },
    )?;
    println!("{}", done.report.summary());
    for ((task, path, trained, held), m) in done.tasks.iter().zip(&done.evaluation.tasks) {
        let bytes = std::fs::metadata(path)?.len();
        println!(
            "{task}: fitted on {trained} rows, task file {} ({bytes} bytes); on its {held} \
             held-out rows: AUC {}, accuracy {:.3}",
            path.display(),
            m.auc.map_or("-".into(), |a| format!("{a:.3}")),
            m.accuracy
        );
    }

    // `lrs eval --run` does the same scoring for every task file of the run.
    let e = evaluate_run(&run, &EvalOptions::default())?;
    for t in &e.scored {
        println!(
            "  {:<6} {:<12} {} rows, AUC {}",
            t.metrics.task,
            t.kind.to_string(),
            t.metrics.rows,
            t.metrics.auc.map_or("-".into(), |a| format!("{a:.3}"))
        );
    }
    Ok(())
}
