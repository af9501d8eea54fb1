//! `lrs serve` and `lrs bench serve` as processes, on a tiny random BERT.

mod common;

use std::process::Command;

use lrs_bench::testing::Fixture;

/// One JSON request ([`common::http::request`]); returns the status and body as text.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, body) =
        common::http::request(addr, method, path, "application/json", body.as_bytes())
            .expect("request");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn serve_answers_and_stops_on_sigterm() {
    let f = Fixture::new(2).expect("fixture");
    let toml = f.dir.path().join("serve.toml");
    std::fs::write(
        &toml,
        format!(
            "model = {:?}\nshared = {:?}\ntasks_dir = {:?}\nmax_inputs = 4\n",
            f.config.model, f.config.shared, f.config.tasks_dir
        ),
    )
    .expect("write config");
    let (mut child, addr, lines) =
        common::http::start_serve_with(&toml, &["--cache-bytes", "16MiB"]);
    let (status, body) = http(&addr, "GET", "/healthz", "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        &addr,
        "POST",
        "/v1/predict",
        r#"{"task":"t1","inputs":["w5 w6","w7"]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["scores"].as_array().map(Vec::len), Some(2));
    // The config file's limit holds: 5 inputs > max_inputs = 4.
    let (status, _) = http(
        &addr,
        "POST",
        "/v1/predict",
        r#"{"inputs":["w5","w5","w5","w5","w5"]}"#,
    );
    assert_eq!(status, 413);
    let (status, body) = http(&addr, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(
        body.contains("lrs_task_cache_budget_bytes 16777216"),
        "{body}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

#[test]
fn bench_serve_prints_every_table_on_a_tiny_model() {
    let f = Fixture::new(0).expect("fixture");
    let out = Command::new(env!("CARGO_BIN_EXE_lrs"))
        .args(["bench", "serve", "--json", "--model"])
        .arg(&f.model_dir)
        .args([
            "--rank",
            "4",
            "--density",
            "0.05",
            "--tasks",
            "0,1,3",
            "--rows",
            "6",
            "--rounds",
            "2",
            "--warmup",
            "0",
            "--on-disk",
            "3,7",
            "--max-loaded",
            "5",
        ])
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |kind: &str| lines.iter().filter(|v| v["bench"] == kind).count();
    assert_eq!(of("throughput"), 3, "{stdout}");
    assert!(of("load") >= 4, "{stdout}");
    assert_eq!(of("memory"), 2, "{stdout}");
    for v in lines.iter().filter(|v| v["bench"] == "throughput") {
        assert!(v["result"]["rows_per_s"].as_f64().unwrap_or(0.0) > 0.0);
        assert_eq!(v["result"]["mean_batch_rows"].as_f64(), Some(6.0), "{v}");
    }
    let mem = lines
        .iter()
        .find(|v| v["bench"] == "memory")
        .expect("memory");
    assert!(
        mem["result"]["cache_bytes_per_task"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
}
