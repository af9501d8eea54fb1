//! The `lrs` binary end to end: generate → fit with JSON output, clear errors on bad input.

use std::process::Command;

fn lrs(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lrs"))
        .args(args)
        .output()
        .expect("run lrs")
}

#[test]
fn generate_then_fit_reports_metrics_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.safetensors");
    let model = dir.path().join("m.safetensors");
    let data_s = data.to_str().unwrap();
    let out = lrs(&[
        "linear",
        "generate",
        "--d",
        "30",
        "--r",
        "2",
        "--k",
        "2",
        "--tasks",
        "80",
        "--samples",
        "25",
        "--test-samples",
        "5",
        "--seed",
        "3",
        "--out",
        data_s,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = lrs(&[
        "linear",
        "fit",
        "--data",
        data_s,
        "--method",
        "amht-lrs",
        "--rank",
        "2",
        "--sparsity",
        "2",
        "--json",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = v["metrics"]["theta_error"].as_f64().unwrap();
    assert!(err < 1e-8, "theta error {err}");
    assert!(v["fit_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(v["method"], "amht-lrs");
    let params = lrs_core::data_file::read_params(&model).unwrap();
    assert_eq!((params.dim(), params.rank(), params.tasks()), (30, 2, 80));

    let out = lrs(&[
        "linear",
        "fit",
        "--data",
        data_s,
        "--method",
        "lstsq",
        "--rank",
        "2",
        "--sparsity",
        "2",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["metrics"]["theta_error"].as_f64().unwrap() > 0.1);
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"x\": 1}").unwrap();
    let out = lrs(&["linear", "fit", "--data", junk.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not a valid safetensors file"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = lrs(&[
        "linear",
        "fit",
        "--data",
        junk.to_str().unwrap(),
        "--method",
        "magic",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown method `magic`"));

    let out = lrs(&[
        "linear",
        "generate",
        "--r",
        "0",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("`r`"), "{stderr}");
}

#[test]
fn privacy_epsilon_matches_the_opacus_golden() {
    let out = lrs(&[
        "privacy", "epsilon", "--sigma", "1.5", "--q", "0.04", "--steps", "2250", "--delta",
        "1e-5", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let eps = v["epsilon"].as_f64().unwrap();
    assert!((eps - 7.32911117143).abs() < 1e-6 * 7.33, "{eps}");
    let out = lrs(&[
        "privacy", "epsilon", "--sigma", "-1", "--q", "0.04", "--steps", "10", "--delta", "1e-5",
    ]);
    assert!(!out.status.success());
}
