//! `lrs split`: the rows a config's runs train, validate and test on, as JSON lines. They must
//! be the trainer's own parts (the same rows in the same parts), every row of a kept task
//! exactly once, validation rows the latest training rows and test rows later than both.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{config_toml, lrs, ok, write_data, write_tiny_model};
use lrs_train::run::{load_run_data, resolve_model};
use lrs_train::trainer::{Part, TaskData};
use lrs_train::TrainConfig;

#[test]
fn split_prints_the_trainers_parts_with_validation_after_train_and_test_after_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (dir.path().join("model"), dir.path().join("data.jsonl"));
    write_tiny_model(&model);
    write_data(&data, "t", 5, 30, false);
    let cfg_path = dir.path().join("run.toml");
    let toml =
        config_toml(&model, &data, 1).replace("shots = 8\n", "shots = 18\nvalidation = 0.25\n");
    std::fs::write(&cfg_path, toml).expect("config");

    let out = lrs()
        .args(["split", "--config"])
        .arg(&cfg_path)
        .output()
        .expect("lrs split");
    let lines: Vec<serde_json::Value> = ok(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();

    // Per task and part: the timestamps (the generated rows' index, unique within a task).
    let mut parts: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for l in &lines {
        let key = (
            l["task"].as_str().expect("task").to_string(),
            l["part"].as_str().expect("part").to_string(),
        );
        parts
            .entry(key)
            .or_default()
            .push(l["timestamp"].as_i64().expect("timestamp"));
        assert_eq!(
            l["scored"], true,
            "labels alternate, so every task is scored"
        );
    }
    let get = |task: &str, part: &str| {
        parts
            .get(&(task.into(), part.into()))
            .cloned()
            .unwrap_or_default()
    };

    // The trainer's view of the same config: its parts per task, by row count.
    let cfg = TrainConfig::from_file(&cfg_path).expect("config loads");
    let (_, tokenizer) = resolve_model(&cfg).expect("model");
    let run_data = load_run_data(&cfg.data).expect("data");
    let mut task_data = TaskData::from_splits(&run_data.splits, &tokenizer).expect("task data");
    task_data
        .carve_validation(cfg.data.validation)
        .expect("carve");
    assert_eq!(task_data.tasks.len(), 5);
    for t in &task_data.tasks {
        let (train, validation, test) = (
            get(&t.task, "train"),
            get(&t.task, "validation"),
            get(&t.task, "test"),
        );
        assert_eq!(train.len(), t.rows(Part::Train).len(), "{}", t.task);
        assert_eq!(
            validation.len(),
            t.rows(Part::Validation).len(),
            "{}",
            t.task
        );
        assert_eq!(test.len(), t.rows(Part::Test).len(), "{}", t.task);
        // 18 drawn training rows: ⌈0.25 · 18⌉ = 5 validate; 30 rows: the latest 6 test.
        assert_eq!(
            (train.len(), validation.len(), test.len()),
            (13, 5, 6),
            "{}",
            t.task
        );
        let all: BTreeSet<i64> = train
            .iter()
            .chain(&validation)
            .chain(&test)
            .copied()
            .collect();
        assert_eq!(all.len(), 24, "{}: a row in two parts", t.task);
        let max = |v: &[i64]| *v.iter().max().expect("rows");
        let min = |v: &[i64]| *v.iter().min().expect("rows");
        assert!(
            max(&train) < min(&validation),
            "{}: validation rows are the latest",
            t.task
        );
        assert!(
            max(&validation) < min(&test),
            "{}: test rows come after",
            t.task
        );
    }
}

#[test]
fn split_of_a_missing_config_fails_with_the_path_and_prints_no_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.toml");
    let out = lrs()
        .args(["split", "--config"])
        .arg(&missing)
        .output()
        .expect("lrs split");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.toml"), "{err}");
}
