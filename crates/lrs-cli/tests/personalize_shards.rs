//! `lrs personalize --shard I/N` on a tiny seeded BERT: N workers over the same data fit
//! disjoint sets of tasks that together are every task of the file; `--out` writes each
//! shard's task files to a registry directory; a bad `--shard` is a clear error.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{config_toml, lrs, ok, train_run, write_data, write_tiny_model};

/// The tasks one `lrs personalize --json` run printed.
fn fitted(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["task"].as_str().map(str::to_string))
        .collect()
}

fn personalize(run: &Path, data: &Path, extra: &[&str]) -> std::process::Output {
    lrs()
        .args(["personalize", "--json", "--run"])
        .arg(run)
        .arg("--task-data")
        .arg(data)
        .args(extra)
        .output()
        .expect("lrs personalize")
}

#[test]
fn shards_are_disjoint_and_cover_every_task() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = tmp.path().join("base");
    write_tiny_model(&model);
    let data = tmp.path().join("train.jsonl");
    write_data(&data, "u", 2, 12, false);
    let cfg = tmp.path().join("tiny.toml");
    std::fs::write(&cfg, config_toml(&model, &data, 1)).expect("config");
    let run = tmp.path().join("run");
    ok(&train_run(&cfg, &run));

    let new_users = tmp.path().join("new.jsonl");
    write_data(&new_users, "n", 9, 8, false);
    let every: BTreeSet<String> = (0..9).map(|t| format!("n{t}")).collect();
    let registry = tmp.path().join("registry");
    let mut seen = BTreeSet::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let mut extra = vec!["--shard", &shard];
        let out_dir = registry.display().to_string();
        if i == 1 {
            extra.extend(["--out", &out_dir]);
        }
        let stdout = ok(&personalize(&run, &new_users, &extra));
        let mine = fitted(&stdout);
        assert!(!mine.is_empty(), "shard {shard} fitted nothing: {stdout}");
        assert!(mine.is_disjoint(&seen), "shard {shard} refitted {mine:?}");
        // Each worker keeps its own report.
        let report = run.join(format!("personalize-report.shard-{i}-of-3.json"));
        assert!(report.is_file(), "{}", report.display());
        if i == 1 {
            // --out: exactly this shard's task files, byte for byte the run's.
            let written: BTreeSet<String> = std::fs::read_dir(&registry)
                .expect("registry")
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".safetensors"))
                        .map(str::to_string)
                })
                .collect();
            assert_eq!(written, mine);
            for task in &mine {
                let name = format!("{task}.safetensors");
                assert_eq!(
                    std::fs::read(registry.join(&name)).ok(),
                    std::fs::read(run.join("tasks").join(&name)).ok(),
                    "{task}"
                );
            }
        }
        seen.extend(mine);
    }
    assert_eq!(seen, every);
    for task in &every {
        assert!(run
            .join("tasks")
            .join(format!("{task}.safetensors"))
            .is_file());
    }

    // Bad shards are refused before anything runs, saying what is wrong.
    for (bad, why) in [
        ("0/0", "the shard count N must be at least 1"),
        ("3/2", "shards of 2 are numbered 0 to 1"),
        ("x", "expected I/N"),
        ("1/2/3", "expected I/N"),
    ] {
        let out = personalize(&run, &new_users, &["--shard", bad]);
        assert!(!out.status.success(), "--shard {bad} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "--shard {bad}: {err}");
    }
}
