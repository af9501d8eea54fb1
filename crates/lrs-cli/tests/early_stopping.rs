//! `patience`: a run with validation rows stops once the validation loss has not improved for
//! `patience` rounds, and its outputs are those of the best round; `[data] refit` then trains
//! again on every training row for that many rounds.

mod common;

use std::path::{Path, PathBuf};

use common::{config_toml, content_hash, lrs, ok, train_run, write_data, write_tiny_model};
use lrs_train::run::{RoundRecord, RunDir, RunSummary};

/// The tiny run with learning rates far too high for it, so that its validation loss turns
/// upward within a few rounds; the budget anneals over two rounds.
fn fast_tiny_toml(model: &Path, data: &Path, rounds: usize) -> String {
    config_toml(model, data, rounds)
        .replace(
            "budget = { count = 6 }\n",
            "budget = { count = 6 }\nanneal_rounds = 2\n",
        )
        .replace("[shared]\n", "[shared]\nlr = 0.3\n")
        .replace("[task]\n", "[task]\nlr = 0.5\n")
}

/// [`fast_tiny_toml`] with early stopping (patience 1) on 4 of 16 rows per task.
fn early_stopping_toml(model: &Path, data: &Path, rounds: usize) -> String {
    fast_tiny_toml(model, data, rounds)
        .replace("seed = 5\n", "seed = 5\npatience = 1\n")
        .replace("shots = 8\n", "shots = 16\nvalidation = 0.25\n")
}

/// A finished run's `summary.json`.
fn summary(run: &Path) -> RunSummary {
    RunDir::open(run)
        .expect("run dir")
        .read_summary()
        .expect("summary.json")
        .expect("a finished run has a summary")
}

#[test]
fn a_run_stops_after_patience_rounds_and_keeps_the_best_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (dir.path().join("model"), dir.path().join("data.jsonl"));
    write_tiny_model(&model);
    write_data(&data, "t", 4, 24, false);
    let rounds = 10;
    let toml = early_stopping_toml(&model, &data, rounds);
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, toml).expect("config");
    let run = dir.path().join("run");
    ok(&train_run(&cfg, &run));

    let dir = RunDir::open(&run).expect("run dir");
    let metrics = dir.read_metrics().expect("metrics.jsonl");
    let loss = |r: &RoundRecord| r.validation_loss.expect("validation loss");
    // Round 0 still holds the annealing's 2·k entries: it cannot be the one kept.
    let best = metrics
        .iter()
        .filter(|r| r.round >= 1)
        .min_by(|a, b| loss(a).total_cmp(&loss(b)))
        .expect("a round past the annealing");
    let best_round = best.round;
    assert!(
        metrics.len() < rounds,
        "never stopped early: {:?}",
        metrics.iter().map(loss).collect::<Vec<_>>()
    );
    assert_eq!(
        metrics.len(),
        best_round + 2,
        "stops one round (patience) after the best"
    );

    let summary = summary(&run);
    assert_eq!(summary.rounds, best_round + 1);
    // The outputs were evaluated on the best round's parameters, not the last round's.
    assert_eq!(summary.test_auc, best.test_auc);
    assert_eq!(summary.validation_auc, best.validation_auc);
    assert_ne!(
        metrics.last().expect("a round").validation_auc,
        best.validation_auc,
        "the last round should differ from the best one here"
    );
}

/// The tiny model and 4 tasks of 24 rows in `dir`, and a config of [`early_stopping_toml`]
/// (at most `rounds` rounds) with `refit = true`: (model, data, config).
fn refit_setup(dir: &Path, rounds: usize) -> (PathBuf, PathBuf, PathBuf) {
    let (model, data) = (dir.join("model"), dir.join("data.jsonl"));
    write_tiny_model(&model);
    write_data(&data, "t", 4, 24, false);
    let cfg = dir.join("refit.toml");
    std::fs::write(
        &cfg,
        early_stopping_toml(&model, &data, rounds)
            .replace("validation = 0.25\n", "validation = 0.25\nrefit = true\n"),
    )
    .expect("config");
    (model, data, cfg)
}

/// Content hash of a run's shared file.
fn shared_hash(run: &Path) -> String {
    let path = run.join("shared.safetensors");
    content_hash(&std::fs::read(&path).expect("shared file"), &path)
}

#[test]
fn a_refit_trains_on_every_row_for_the_rounds_validation_chose() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rounds = 10;
    let (model, data, refit_cfg) = refit_setup(dir.path(), rounds);
    let refit = dir.path().join("refit");
    ok(&train_run(&refit_cfg, &refit));

    let selection = RunDir::open(&refit)
        .expect("run dir")
        .read_metrics()
        .expect("metrics.jsonl");
    let kept = summary(&refit);
    assert!(kept.refit);
    assert!(
        selection.len() < rounds,
        "the selection never stopped early"
    );
    assert_eq!(
        kept.rounds,
        selection.len() - 1,
        "patience 1: the best round"
    );
    let refit_metrics = RunDir::open(&refit)
        .expect("run dir")
        .refit_dir()
        .expect("refit dir")
        .read_metrics()
        .expect("refit/metrics.jsonl");
    assert_eq!(refit_metrics.len(), kept.rounds, "the refit's rounds");
    assert!(
        refit_metrics.iter().all(|r| r.validation_loss.is_none()),
        "the refit holds no validation rows"
    );
    assert_eq!(
        kept.test_auc,
        refit_metrics.last().and_then(|r| r.test_auc),
        "the outputs are the refit's"
    );

    // The refit is exactly a run on all 16 rows per task for that many rounds (the
    // annealing spans `anneal_rounds`, whatever the configured rounds).
    let direct_cfg = dir.path().join("direct.toml");
    std::fs::write(
        &direct_cfg,
        fast_tiny_toml(&model, &data, kept.rounds).replace("shots = 8\n", "shots = 16\n"),
    )
    .expect("config");
    let direct = dir.path().join("direct");
    ok(&train_run(&direct_cfg, &direct));
    let direct_summary = summary(&direct);
    assert!(!direct_summary.refit);
    assert_eq!(direct_summary.test_auc, kept.test_auc);
    assert_eq!(
        shared_hash(&direct),
        shared_hash(&refit),
        "the refit's shared factor is the direct run's"
    );
}

#[test]
fn a_refit_resumes_to_the_same_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _, cfg) = refit_setup(dir.path(), 10);
    let run = dir.path().join("run");
    ok(&train_run(&cfg, &run));
    let shared = || shared_hash(&run);
    let (first, kept) = (shared(), summary(&run));
    let resume = || {
        ok(&lrs()
            .args(["train", "--resume", "--config"])
            .arg(&cfg)
            .arg("--run")
            .arg(&run)
            .output()
            .expect("lrs train --resume"));
    };
    let refit_metrics = || {
        RunDir::open(&run)
            .expect("run dir")
            .refit_dir()
            .expect("refit dir")
            .read_metrics()
            .expect("refit/metrics.jsonl")
    };
    let trained = refit_metrics();
    // Killed after the refit's last round, before its outputs: the refit's checkpoint holds it,
    // so no round runs again (the recorded round times stay those of the first training).
    for output in ["summary.json", "shared.safetensors"] {
        std::fs::remove_file(run.join(output)).expect("remove an output");
    }
    resume();
    assert_eq!(shared(), first);
    assert_eq!(summary(&run), kept);
    assert_eq!(refit_metrics(), trained);
    // Killed before the refit began: it trains again from the start.
    std::fs::remove_dir_all(run.join("refit")).expect("remove refit/");
    std::fs::remove_file(run.join("summary.json")).expect("remove summary.json");
    resume();
    assert_eq!(shared(), first);
    assert_eq!(refit_metrics().len(), kept.rounds);
    assert_eq!(summary(&run).test_auc, kept.test_auc);
}

/// Trains the tiny config with `from` replaced by `to`, expecting a refusal: its stderr, after
/// checking that the refused run wrote no files.
fn refused(from: &str, to: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (dir.path().join("model"), dir.path().join("data.jsonl"));
    write_tiny_model(&model);
    write_data(&data, "t", 2, 12, false);
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, config_toml(&model, &data, 3).replace(from, to)).expect("config");
    let run = dir.path().join("run");
    let out = train_run(&cfg, &run);
    assert!(!out.status.success());
    assert!(
        !run.join("config.toml").exists(),
        "a refused run wrote files"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn refit_without_validation_rows_is_refused() {
    let err = refused("shots = 8\n", "shots = 8\nrefit = true\n");
    assert!(
        err.contains("data.refit") && err.contains("validation"),
        "{err}"
    );
}

#[test]
fn patience_without_validation_rows_is_refused() {
    let err = refused("seed = 5\n", "seed = 5\npatience = 1\n");
    assert!(
        err.contains("patience") && err.contains("validation"),
        "{err}"
    );
}
