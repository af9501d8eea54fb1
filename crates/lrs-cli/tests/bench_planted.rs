//! `lrs bench planted` end to end on a tiny case: every method's row, the oracle line, the
//! support line of each sparse method, and a clear error for bad arguments.

mod common;

use common::{lrs, ok};

const CONFIG: &str = r#"
model = "planted"
method = "lrs"
rank = 2
target_modules = ["value"]
rounds = 2
task_head = false
seed = 0
checkpoint_every = 0

[sparsity]
budget = { count = 4 }
anneal_start = 2.0
anneal_rounds = 1

[shared]
steps = 4
batch_size = 8
lr = 1e-2

[task]
steps = 3
lr = 5e-2
sparse_steps = 3
sparse_lr = 5e-2
"#;

#[test]
fn the_planted_benchmark_prints_every_method_and_the_support_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("planted.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let out = lrs()
        .args(["bench", "planted", "--config"])
        .arg(&config)
        .args([
            "--methods",
            "lrs,shared-only,global",
            "--shots",
            "8,4",
            "--seeds",
            "2",
            "--tasks",
            "4",
            "--test-rows",
            "8",
            "--lr-grid",
            "0.5,1",
            "--target-auc",
            "0.01",
        ])
        .output()
        .expect("lrs bench planted");
    let stdout = ok(&out);
    assert!(stdout.contains("teacher with parts removed"), "{stdout}");
    assert!(
        stdout.contains("| method | m = 4 | m = 8 | first m with AUC ≥ 0.01 | train s (m = 8) |"),
        "shots are sorted: {stdout}"
    );
    for method in ["lrs", "shared-only", "global"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {method} |")))
            .unwrap_or_else(|| panic!("no row for {method}: {stdout}"));
        // Every AUC is a number in [0, 1]; at a target of 0.01 every method reaches it at m = 4.
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for cell in &cells[2..4] {
            let mean: f64 = cell.split(' ').next().unwrap().parse().expect("mean");
            assert!((0.0..=1.0).contains(&mean), "{row}");
            assert!(cell.contains(" ± "), "{row}");
        }
        assert_eq!(cells[4], "4", "{row}");
    }
    assert!(
        stdout.contains("support of lrs (precision / recall):"),
        "{stdout}"
    );
    assert!(!stdout.contains("support of shared-only"), "{stdout}");
    // Seed 0 tunes every (method, m) with the grid; the chosen multiplier is printed per run.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("lr ×").count(), 3 * 2 * 2, "{stderr}");
}

#[test]
fn bad_planted_arguments_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("planted.toml");
    std::fs::write(&config, CONFIG).expect("config");
    for (args, message) in [
        (vec!["--lr-grid", "0"], "--lr-grid values must be positive"),
        (vec!["--methods", "nope"], "nope"),
        (
            vec!["--validation-only", "--lr-grid", "0.5,1"],
            "--validation-only takes one --lr-grid value",
        ),
        (
            vec!["--hidden", "30"],
            "--hidden must be a positive multiple of 4",
        ),
    ] {
        let out = lrs()
            .args(["bench", "planted", "--config"])
            .arg(&config)
            .args(&args)
            .output()
            .expect("lrs bench planted");
        assert!(!out.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn validation_only_scores_validation_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("planted.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let run = |extra: &[&str]| {
        let out = lrs()
            .args(["bench", "planted", "--config"])
            .arg(&config)
            .args(["--methods", "shared-only", "--shots", "8", "--seeds", "1"])
            .args([
                "--tasks",
                "4",
                "--test-rows",
                "8",
                "--lr-grid",
                "1",
                "--json",
            ])
            .args(extra)
            .output()
            .expect("lrs bench planted");
        ok(&out)
    };
    let auc = |stdout: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .expect("a JSON line");
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        v["auc"].as_f64().expect("auc")
    };
    let validation = run(&["--validation-only"]);
    assert!(
        validation.contains("scored: validation rows"),
        "{validation}"
    );
    let test = run(&[]);
    assert!(!test.contains("scored: validation rows"), "{test}");
    // Different rows scored (and fewer rows trained on): the figures differ.
    assert_ne!(auc(&validation), auc(&test));
}
