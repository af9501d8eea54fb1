//! Every error path the `lrs` binary can be driven into without a model: each fails with
//! one `error:` line naming the right thing, then at most one line per further cause, and no
//! line repeats what another already says. Also the help texts a newcomer reads first.

mod common;

use std::path::Path;

use common::lrs;
use lrs_train::trainer::Method;

/// Runs `lrs args…`, expects failure, checks the message's shape and returns stderr.
fn fails(args: &[&str]) -> String {
    let out = lrs().args(args).output().expect("lrs runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "lrs {args:?} succeeded:\n{err}");
    assert!(err.starts_with("error: "), "lrs {args:?}:\n{err}");
    assert!(!err.contains("panicked"), "lrs {args:?} panicked:\n{err}");
    assert!(!err.contains("Caused by"), "lrs {args:?}:\n{err}");
    let starts = err.lines().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(starts, 1, "lrs {args:?}:\n{err}");
    // The message's own lines (a TOML error's caret block is one message over several lines)
    // and each cause line: none may say what another says.
    let causes: Vec<&str> = err
        .trim_end()
        .split("\n  caused by: ")
        .map(|c| c.trim_start_matches("error: ").trim())
        .collect();
    for (i, a) in causes.iter().enumerate() {
        for (j, b) in causes.iter().enumerate() {
            assert!(
                i == j || !a.contains(b),
                "lrs {args:?}: cause {j} repeats what cause {i} says:\n{err}"
            );
        }
    }
    let lines: Vec<&str> = err.lines().filter(|l| l.trim().len() > 3).collect();
    for (i, l) in lines.iter().enumerate() {
        assert!(
            !lines[..i].contains(l),
            "lrs {args:?}: line repeated:\n{err}"
        );
    }
    err
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn every_error_path_says_each_cause_once_and_names_the_right_thing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let missing = dir.join("missing");
    let bad_toml = dir.join("bad.toml");
    std::fs::write(&bad_toml, "model = \"x\"\nrounds = \n").expect("bad toml");
    let bad_value = dir.join("bad-value.toml");
    std::fs::write(&bad_value, "model = \"x\"\nrounds = \"two\"\n").expect("bad value");
    let no_data = dir.join("no-data.toml");
    std::fs::write(
        &no_data,
        format!(
            "model = \"x\"\n[data]\nsource = \"file\"\npath = {:?}\n",
            s(&dir.join("nope.jsonl"))
        ),
    )
    .expect("config");
    // A directory that looks like a run (config.toml) but has no model or shared file.
    let run = dir.join("run");
    std::fs::create_dir_all(&run).expect("run dir");
    std::fs::copy(&no_data, run.join("config.toml")).expect("config");
    let garbage_run = dir.join("garbage-run");
    std::fs::create_dir_all(&garbage_run).expect("dir");
    std::fs::copy(&bad_toml, garbage_run.join("config.toml")).expect("config");
    let empty_dir = dir.join("empty");
    std::fs::create_dir_all(&empty_dir).expect("dir");
    let bad_rows = dir.join("bad.jsonl");
    std::fs::write(&bad_rows, "{\"task\": \"a\"}\nnot json\n").expect("rows");

    let err = fails(&["eval", "--run", s(&missing)]);
    assert!(err.contains("no such run directory"), "{err}");
    assert!(!err.contains("checkpoint"), "{err}");
    let err = fails(&[
        "personalize",
        "--run",
        s(&missing),
        "--task-data",
        "x.jsonl",
    ]);
    assert!(err.contains("no such run directory"), "{err}");
    assert!(!err.contains("checkpoint"), "{err}");
    let err = fails(&["eval", "--run", s(&empty_dir)]);
    assert!(err.contains("not a run directory (no config.toml"), "{err}");

    let err = fails(&["train", "--config", s(&dir.join("none.toml"))]);
    assert!(err.contains("none.toml: No such file"), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let err = fails(&["train", "--config", s(&bad_toml), "--run", s(&missing)]);
    assert_eq!(err.matches("TOML parse error").count(), 1, "{err}");
    assert!(
        !missing.exists(),
        "a failed config parse created the run directory"
    );
    let err = fails(&["train", "--config", s(&bad_value), "--run", s(&missing)]);
    assert_eq!(err.matches("TOML parse error").count(), 1, "{err}");
    let err = fails(&["eval", "--run", s(&garbage_run)]);
    assert_eq!(err.matches("TOML parse error").count(), 1, "{err}");

    // --resume on a missing run: nothing to resume, nothing created.
    let err = fails(&[
        "train",
        "--config",
        s(&no_data),
        "--run",
        s(&missing),
        "--resume",
    ]);
    assert!(err.contains("nothing to resume"), "{err}");
    assert!(!missing.exists(), "--resume created {}", missing.display());

    let err = fails(&[
        "train",
        "--config",
        s(&no_data),
        "--run",
        s(&dir.join("r2")),
    ]);
    assert!(err.contains("nope.jsonl: No such file"), "{err}");
    assert!(
        !dir.join("r2").exists(),
        "a run that wrote nothing left its directory"
    );
    let err = fails(&[
        "personalize",
        "--run",
        s(&run),
        "--task-data",
        s(&dir.join("x.jsonl")),
    ]);
    assert!(err.contains("x.jsonl: No such file"), "{err}");
    let err = fails(&["personalize", "--run", s(&run), "--task-data", s(&bad_rows)]);
    assert!(
        err.contains("no valid rows (2 rows read, 2 malformed)"),
        "{err}"
    );
    let err = fails(&[
        "personalize",
        "--run",
        s(&run),
        "--task-data",
        s(&bad_rows),
        "--holdout",
        "1.5",
    ]);
    assert!(err.contains("--holdout 1.5 must be"), "{err}");
    let err = fails(&["eval", "--run", s(&run), "--data", s(&dir.join("y.csv"))]);
    assert!(err.contains("y.csv: No such file"), "{err}");

    let err = fails(&["inspect", s(&dir.join("t.safetensors"))]);
    assert!(err.contains("t.safetensors"), "{err}");
    let err = fails(&["inspect", s(&bad_toml)]);
    assert!(err.contains("bad.toml"), "{err}");
    let err = fails(&[
        "linear",
        "fit",
        "--data",
        s(&dir.join("d.safetensors")),
        "--method",
        "amht-lrs",
        "--rank",
        "2",
        "--sparsity",
        "2",
    ]);
    assert!(err.contains("d.safetensors"), "{err}");
    fails(&["report", "--runs", s(&missing)]);
    // A plot that cannot be written is an error that names the file.
    let runs = dir.join("runs");
    std::fs::create_dir_all(runs.join("lrs-m5-s0")).expect("run dir");
    std::fs::write(
        runs.join("lrs-m5-s0/summary.json"),
        r#"{"method": "lrs", "tasks": 3, "shots": 5, "rounds": 1, "test_auc": 0.6,
            "test_accuracy": 0.5, "params_per_task": 1, "bytes_per_task": 1,
            "shared_bytes": 1, "train_s": 1}"#,
    )
    .expect("summary");
    let plot = dir.join("no-such-dir/auc.svg");
    let err = fails(&["report", "--runs", s(&runs), "--plot", s(&plot)]);
    assert!(err.contains("no-such-dir/auc.svg"), "{err}");
}

#[test]
fn help_says_what_lrs_is_and_lists_every_method() {
    let out = lrs().arg("--help").output().expect("lrs --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("shared factor"), "{help}");
    for cmd in [
        "quickstart",
        "train",
        "personalize",
        "eval",
        "serve",
        "linear demo",
    ] {
        assert!(
            help.contains(&format!("lrs {cmd}")),
            "{cmd} missing:\n{help}"
        );
    }
    let out = lrs()
        .args(["train", "--help"])
        .output()
        .expect("lrs train --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for m in Method::ALL {
        assert!(help.contains(m.name()), "{} missing:\n{help}", m.name());
    }
}
