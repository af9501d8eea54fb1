//! `patience`: a run with validation rows stops once the validation loss has not improved for
//! `patience` rounds, and its outputs are those of the best round.

mod common;

use common::{config_toml, ok, train_run, write_data, write_tiny_model};
use lrs_train::run::{RoundRecord, RunDir, RunSummary};

#[test]
fn a_run_stops_after_patience_rounds_and_keeps_the_best_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (dir.path().join("model"), dir.path().join("data.jsonl"));
    write_tiny_model(&model);
    write_data(&data, "t", 4, 24, false);
    let rounds = 10;
    // Learning rates far too high for the tiny task, so the validation loss turns upward.
    let toml = config_toml(&model, &data, rounds)
        .replace("seed = 5\n", "seed = 5\npatience = 1\n")
        .replace("shots = 8\n", "shots = 16\nvalidation = 0.25\n")
        .replace(
            "budget = { count = 6 }\n",
            "budget = { count = 6 }\nanneal_rounds = 2\n",
        )
        .replace("[shared]\n", "[shared]\nlr = 0.3\n")
        .replace("[task]\n", "[task]\nlr = 0.5\n");
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

    let summary: RunSummary =
        serde_json::from_str(&std::fs::read_to_string(dir.summary_path()).expect("summary.json"))
            .expect("summary JSON");
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

#[test]
fn patience_without_validation_rows_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (dir.path().join("model"), dir.path().join("data.jsonl"));
    write_tiny_model(&model);
    write_data(&data, "t", 2, 12, false);
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        config_toml(&model, &data, 3).replace("seed = 5\n", "seed = 5\npatience = 1\n"),
    )
    .expect("config");
    let run = dir.path().join("run");
    let out = train_run(&cfg, &run);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("patience") && err.contains("validation"),
        "{err}"
    );
    assert!(
        !run.join("config.toml").exists(),
        "a refused run wrote files"
    );
}
