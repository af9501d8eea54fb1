//! `lrs train`, `lrs eval`, `lrs personalize` and `--resume` end to end on the real
//! all-MiniLM-L6-v2 and MovieLens-100k, on a handful of users. Both assets must be seeded
//! (`scripts/seed-minilm.sh`, `scripts/seed-movielens.sh`; `scripts/test.sh` does it): a
//! missing asset fails the test with that message, it is never skipped.

use std::path::Path;
use std::process::{Command, Output};

fn lrs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lrs"))
        .args(args)
        .output()
        .expect("lrs runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "lrs failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CONFIG: &str = r#"
model = "sentence-transformers/all-MiniLM-L6-v2"
method = "lrs"
rank = 4
target_modules = ["encoder.layer.5.output.dense"]
rounds = 2
task_head = false
seed = 3
[data]
shots = 5
max_tasks = 6
[sparsity]
budget = { count = 8 }
[shared]
steps = 4
batch_size = 16
[task]
steps = 3
sparse_steps = 2
"#;

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).expect("summary.json"))
        .expect("summary parses")
}

#[test]
fn train_eval_personalize_and_resume_on_minilm_and_movielens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, CONFIG).expect("config");
    let run = dir.path().join("run");
    let cfg_s = cfg.to_str().expect("utf-8");
    let run_s = run.to_str().expect("utf-8");

    let out = lrs(&["train", "--config", cfg_s, "--run", run_s]);
    let stdout = ok(&out);
    assert!(stdout.contains("6 tasks"), "{stdout}");
    for f in [
        "config.toml",
        "shared.safetensors",
        "metrics.jsonl",
        "eval.jsonl",
        "summary.json",
        "loss.svg",
        "auc.svg",
        "checkpoint/LATEST",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let s = summary(&run);
    assert_eq!(s["tasks"], 6);
    assert_eq!(s["rounds"], 2);
    let auc = s["test_auc"].as_f64().expect("an AUC");
    assert!((0.0..=1.0).contains(&auc));
    // w (4) + at most 8 sparse entries per task.
    let params = s["params_per_task"].as_f64().expect("params");
    assert!(params > 4.0 && params <= 12.0, "{params}");
    let tasks: Vec<_> = std::fs::read_dir(run.join("tasks"))
        .expect("tasks dir")
        .collect();
    assert_eq!(tasks.len(), 6);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    assert_eq!(metrics.lines().count(), 2);

    // eval re-scores the task files: the same mean AUC as the run's own summary.
    let out = ok(&lrs(&["eval", "--run", run_s]));
    assert!(
        out.contains(&format!("mean test AUC {auc:.4}")),
        "{out} vs {auc}"
    );

    // A second `train` into the same directory is refused; `--resume` with the run's own
    // config after its last round only rewrites the outputs, identically.
    let again = lrs(&["train", "--config", cfg_s, "--run", run_s]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let one = tasks[0].as_ref().expect("dir entry").path();
    let before = std::fs::read(&one).expect("task file");
    ok(&lrs(&[
        "train", "--config", cfg_s, "--run", run_s, "--resume",
    ]));
    let after = std::fs::read(&one).expect("task file");
    // Same tensors; only the `created` timestamp in the header may differ.
    assert_eq!(before.len(), after.len());
    assert_eq!(summary(&run)["test_auc"], s["test_auc"]);

    // personalize: new users from a JSONL file get loadable task files.
    let jsonl = dir.path().join("new.jsonl");
    std::fs::write(
        &jsonl,
        "{\"task\": \"newbie\", \"text\": \"Toy Story (1995) | Animation\", \"label\": 1}\n\
         {\"task\": \"newbie\", \"text\": \"Heat (1995) | Action\", \"label\": 0}\n\
         {\"task\": \"newbie\", \"text\": \"Babe (1995) | Comedy\", \"label\": 1}\n",
    )
    .expect("jsonl");
    let out = ok(&lrs(&[
        "personalize",
        "--run",
        run_s,
        "--task-data",
        jsonl.to_str().expect("utf-8"),
    ]));
    assert!(out.contains("newbie"), "{out}");
    let newbie = run.join("tasks/newbie.safetensors");
    let inspected = ok(&lrs(&[
        "inspect",
        "--json",
        newbie.to_str().expect("utf-8"),
    ]));
    let v: serde_json::Value = serde_json::from_str(&inspected).expect("inspect json");
    assert_eq!(v["format"], "lrs-task");

    // Bad input: a task id that would escape the run directory, and a missing run.
    std::fs::write(
        &jsonl,
        "{\"task\": \"../evil\", \"text\": \"Heat (1995)\", \"label\": 1}\n",
    )
    .expect("jsonl");
    let out = lrs(&[
        "personalize",
        "--run",
        run_s,
        "--task-data",
        jsonl.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot name a task file"));
    assert!(!dir.path().join("evil.safetensors").exists());
    let out = lrs(&[
        "eval",
        "--run",
        dir.path().join("nope").to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such run directory"));
}
