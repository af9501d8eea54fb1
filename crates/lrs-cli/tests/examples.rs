//! The programs of `examples/` run and print what they promise. `cargo test` builds a
//! package's examples before running its tests; this test runs the binaries it built.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/<name>`, next to this test's own `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test -p lrs-cli` (it builds the examples) or `cargo build \
         --examples`",
        path.display()
    );
    path
}

fn run(name: &str) -> String {
    let out = Command::new(example(name)).output().expect("example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn linear_amht_lrs_recovers_theta_where_least_squares_cannot() {
    let out = run("linear_amht_lrs");
    let error = |method: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(method))
            .unwrap_or_else(|| panic!("no {method} line in:\n{out}"));
        line.split("relative error of Θ ")
            .nth(1)
            .and_then(|t| t.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no error in {line}"))
    };
    assert!(error("amht-lrs") < 1e-6, "{out}");
    assert!(error("lstsq") > 0.1, "{out}");
}

#[test]
fn personalize_new_user_writes_a_task_file_and_scores_held_out_rows() {
    let out = run("personalize_new_user");
    assert!(out.contains("12 rows read, 12 loaded, 0 rejected"), "{out}");
    assert!(out.contains("alice: fitted on 9 rows"), "{out}");
    assert!(out.contains("on its 3 held-out rows"), "{out}");
    assert!(out.contains("alice  personalized 3 rows"), "{out}");
    assert_eq!(out.matches(" trained ").count(), 4, "{out}");
}

#[test]
fn mixed_batch_scores_every_row_as_if_alone() {
    let out = run("mixed_batch");
    assert!(out.contains("one forward pass over 6 rows"), "{out}");
    assert_eq!(out.matches("(alone:").count(), 6, "{out}");
}
