//! Every row accounted for, on a tiny seeded BERT: `lrs train`, `lrs personalize` and
//! `lrs eval --data` report rows read, loaded and rejected by reason with their lines;
//! `--strict` refuses a file with a rejected row; `personalize --holdout` keeps rows out of
//! training and `eval` scores only those; `eval` scores every task file of the run, trained
//! and personalized, and a broken task file fails only that task.

mod common;

use std::path::Path;
use std::process::Output;

use common::{config_toml, lrs, ok, train_run, write_data, write_tiny_model};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// JSON objects printed one per line on stdout.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// 13 lines for two new users: `n0` with 6 good rows, `n1` with 4, and 3 bad lines (an
/// unclosed object at line 4, a string label at line 7, `txt` instead of `text` at line 9).
fn new_users() -> String {
    let row = |task: &str, i: usize| {
        let positive = i.is_multiple_of(2);
        let words = if positive {
            format!("w{} w20 w{}", 30 + i, 40 + i)
        } else {
            format!("w{} w{}", 30 + i, 40 + i)
        };
        format!(
            "{{\"task\": \"{task}\", \"text\": \"{words}\", \"label\": {}, \"timestamp\": {i}}}",
            u8::from(positive)
        )
    };
    let mut lines: Vec<String> = (0..3).map(|i| row("n0", i)).collect();
    lines.push("{\"task\": \"n0\", \"text\": \"w31 w20\", \"label\": 1".into());
    lines.extend((3..5).map(|i| row("n0", i)));
    lines.push("{\"task\": \"n0\", \"text\": \"w33\", \"label\": \"yes\"}".into());
    lines.push(row("n0", 5));
    lines.push("{\"task\": \"n1\", \"txt\": \"w34\", \"label\": 0}".into());
    lines.extend((0..4).map(|i| row("n1", i)));
    assert_eq!(lines.len(), 13);
    lines.join("\n") + "\n"
}

fn personalize(run: &Path, data: &Path, extra: &[&str]) -> Output {
    lrs()
        .args(["personalize", "--run"])
        .arg(run)
        .arg("--task-data")
        .arg(data)
        .args(extra)
        .output()
        .expect("lrs personalize")
}

fn eval(run: &Path, extra: &[&str]) -> Output {
    lrs()
        .args(["eval", "--run"])
        .arg(run)
        .args(extra)
        .output()
        .expect("lrs eval")
}

#[test]
fn rows_are_reported_holdout_rows_are_the_only_ones_scored_and_every_task_file_is_evaluated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = tmp.path().join("base");
    write_tiny_model(&model);
    let data = tmp.path().join("data.jsonl");
    write_data(&data, "u", 3, 12, false);
    // One user whose 5 rows leave a single test row: skipped, with the reason.
    let mut text = std::fs::read_to_string(&data).expect("data");
    for i in 0..5 {
        text.push_str(&format!(
            "{{\"task\": \"short\", \"text\": \"w3{i}\", \"label\": {}, \"timestamp\": {i}}}\n",
            i % 2
        ));
    }
    text.push_str("not json\n");
    std::fs::write(&data, text).expect("data");
    let cfg = tmp.path().join("tiny.toml");
    std::fs::write(&cfg, config_toml(&model, &data, 1)).expect("config");
    let run = tmp.path().join("run");

    // train: the load report and the skipped task on stderr, the detail in the run directory.
    let out = train_run(&cfg, &run);
    let stdout = ok(&out);
    let err = stderr(&out);
    assert!(err.contains("42 rows read, 41 loaded, 1 rejected"), "{err}");
    assert!(err.contains("1 × expected ident: line 42"), "{err}");
    assert!(
        err.contains("1 task skipped:\n  short: its 1 test row"),
        "{err}"
    );
    assert!(stdout.contains("3 tasks,"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("data-report.json")).expect("report"))
            .expect("report json");
    assert_eq!(report["files"][0]["rejected"], 1);
    assert_eq!(report["files"][0]["rejected_rows"][0]["line"], 42);
    assert_eq!(report["skipped"][0]["task"], "short");
    // Run files get the mode any new file gets under this umask (0644 by default), as the
    // plots always did.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        let plain = tmp.path().join("plain");
        std::fs::write(&plain, b"x").expect("plain file");
        for f in [
            "summary.json",
            "config.toml",
            "shared.safetensors",
            "tasks/u0.safetensors",
        ] {
            assert_eq!(mode(&run.join(f)), mode(&plain), "{f}");
        }
        assert_eq!(mode(&run.join("auc.svg")), mode(&plain));
    }
    // --strict refuses the same data and names the first bad line.
    let strict = lrs()
        .args(["train", "--strict", "--config"])
        .arg(&cfg)
        .arg("--run")
        .arg(tmp.path().join("strict-run"))
        .output()
        .expect("lrs train --strict");
    assert!(!strict.status.success());
    let err = stderr(&strict);
    assert!(
        err.contains("1 of 42 rows rejected (--strict refuses any); first at line 42"),
        "{err}"
    );
    assert!(!tmp.path().join("strict-run/config.toml").exists());

    let users = tmp.path().join("new-users.jsonl");
    std::fs::write(&users, new_users()).expect("new users");

    // --strict: refused, nothing written.
    let out = personalize(&run, &users, &["--strict"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("3 of 13 rows rejected (--strict refuses any); first at line 4"),
        "{err}"
    );
    assert!(!run.join("tasks/n0.safetensors").exists());

    // Without --holdout: every loaded row trains; the report counts the three bad lines.
    let out = personalize(&run, &users, &[]);
    ok(&out);
    let err = stderr(&out);
    assert!(err.contains("13 rows read, 10 loaded, 3 rejected"), "{err}");
    assert!(
        err.contains("1 × EOF while parsing an object: line 4"),
        "{err}"
    );
    assert!(err.contains("expected f32: line 7"), "{err}");
    assert!(err.contains("1 × missing field `text`: line 9"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.join("personalize-report.json")).expect("personalize report"),
    )
    .expect("json");
    assert_eq!(report["file"]["rejected"], 3);
    assert_eq!(report["tasks"][0]["trained_rows"], 6);

    // eval --data: nothing unseen, each task says so.
    let out = eval(&run, &["--data", users.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "no task can be scored");
    let err = stderr(&out);
    assert!(err.contains("2 tasks not scored:"), "{err}");
    assert!(
        err.contains("n0: `lrs personalize` trained it on all 6 rows here: none unseen"),
        "{err}"
    );

    // --holdout 0.34: n0 keeps its 2 latest rows out, n1 its latest one.
    let out = personalize(&run, &users, &["--holdout", "0.34", "--json"]);
    ok(&out);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["data"]["loaded"], 10);
    assert_eq!(lines[1]["task"], "n0");
    assert_eq!(
        (
            lines[1]["trained_rows"].as_u64(),
            lines[1]["held_out_rows"].as_u64()
        ),
        (Some(4), Some(2))
    );
    assert_eq!(lines[2]["held_out_rows"], 1);

    // eval --data scores n0 on exactly its 2 unseen rows; n1's one unseen row has one label.
    let out = eval(&run, &["--data", users.to_str().expect("utf-8"), "--json"]);
    ok(&out);
    let lines = json_lines(&out);
    let n0 = lines.iter().find(|l| l["task"] == "n0").expect("n0 scored");
    assert_eq!(n0["rows"], 2);
    assert_eq!(n0["kind"], "personalized");
    let n1 = lines.iter().find(|l| l["task"] == "n1").expect("n1 listed");
    assert!(
        n1["skipped"]
            .as_str()
            .expect("a reason")
            .contains("one label"),
        "{n1}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 task: mean test AUC"), "{stdout}");

    // eval of the run: the 3 trained tasks and n0 (on its held-out rows), labelled.
    let out = eval(&run, &["--json"]);
    let stdout = ok(&out);
    assert!(stdout.contains("4 tasks: mean test AUC"), "{stdout}");
    assert!(stdout.contains("3 tasks trained:"), "{stdout}");
    assert!(stdout.contains("1 task personalized:"), "{stdout}");
    let lines = json_lines(&out);
    let kinds: Vec<(String, String)> = lines
        .iter()
        .filter(|l| l.get("kind").is_some())
        .map(|l| {
            (
                l["task"].as_str().unwrap_or("").into(),
                l["kind"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("n0".to_string(), "personalized".to_string()),
            ("u0".into(), "trained".into()),
            ("u1".into(), "trained".into()),
            ("u2".into(), "trained".into()),
        ]
    );
    assert_eq!(
        lines.iter().find(|l| l["task"] == "n0").expect("n0")["rows"],
        2
    );

    // A truncated task file fails that task only; the others are still scored.
    let u1 = run.join("tasks/u1.safetensors");
    let bytes = std::fs::read(&u1).expect("task file");
    std::fs::write(&u1, &bytes[..bytes.len() / 2]).expect("truncate");
    let out = eval(&run, &[]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = stderr(&out);
    assert!(stdout.contains("3 tasks: mean test AUC"), "{stdout}");
    assert!(err.contains("task u1: "), "{err}");
    assert!(
        err.contains("1 task could not be scored (see above); the other 3 were"),
        "{err}"
    );
}
