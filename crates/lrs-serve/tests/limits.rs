//! Every task-file limit (`max_task_file_bytes`, `max_task_nnz`, `max_task_files`) and the body
//! limit, on uploads and on files found on disk: status code, error code and message; and the
//! task version (`sha256`) each answer names.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use lrs_bench::testing::Fixture;
use lrs_serve::{AppState, ByteSize, Engine, Metrics, ServeConfig, TaskId};
use serde_json::{json, Value};
use tower::ServiceExt;

fn state(cfg: &ServeConfig) -> AppState {
    let engine = Arc::new(Engine::open(cfg, Arc::new(Metrics::default())).expect("engine"));
    AppState::with_engine(engine, cfg).expect("state")
}

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = lrs_serve::router(state.clone())
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn put(state: &AppState, id: &str, body: Vec<u8>) -> (u16, Value) {
    call(state, "PUT", &format!("/v1/tasks/{id}"), &[], body).await
}

async fn predict(state: &AppState, task: &str) -> (u16, Value) {
    let body = json!({"task": task, "inputs": ["w5 w6"]}).to_string();
    call(state, "POST", "/v1/predict", &[], body.into_bytes()).await
}

/// Asserts an error answer: status, `error.code`, and words of the message.
fn assert_error(got: &(u16, Value), status: u16, code: &str, words: &[&str]) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    let message = got.1["error"]["message"].as_str().unwrap_or_default();
    for w in words {
        assert!(message.contains(w), "{message:?} lacks {w:?}");
    }
}

fn sha256_of(path: &std::path::Path) -> String {
    lrs_nn::files::sha256_file(path).expect("hash")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_size_and_nnz_limits_refuse_uploads_and_disk_files() {
    let f = Fixture::new(3).expect("fixture");
    let t0 = std::fs::read(f.tasks_dir.join("t0.safetensors")).expect("read t0");
    let size = t0.len() as u64;
    let probe = state(&f.config);
    let nnz = probe
        .engine
        .registry()
        .get(&TaskId::parse("t0").expect("id"))
        .expect("t0")
        .delta
        .nnz() as u64;
    assert!(nnz > 100, "fixture tasks have sparse parts ({nnz})");

    // One byte under the file: uploads and disk files of that size are refused.
    let cfg = ServeConfig {
        max_task_file_bytes: ByteSize(size - 1),
        ..f.config.clone()
    };
    let st = state(&cfg);
    let got = put(&st, "big", t0.clone()).await;
    let size_s = size.to_string();
    assert_error(
        &got,
        413,
        "task_file_too_large",
        &[&size_s, "max_task_file_bytes"],
    );
    assert!(!f.tasks_dir.join("big.safetensors").exists());
    let got = predict(&st, "t1").await;
    assert_error(&got, 422, "task_file_too_large", &["\"t1\"", &size_s]);
    // Exactly at the limit is fine.
    let cfg = ServeConfig {
        max_task_file_bytes: ByteSize(size),
        ..f.config.clone()
    };
    assert_eq!(predict(&state(&cfg), "t1").await.0, 200);

    // One non-zero under the file's count.
    let cfg = ServeConfig {
        max_task_nnz: nnz - 1,
        ..f.config.clone()
    };
    let st = state(&cfg);
    let got = put(&st, "dense", t0.clone()).await;
    let nnz_s = nnz.to_string();
    assert_error(&got, 413, "too_many_nonzeros", &[&nnz_s, "max_task_nnz"]);
    assert!(!f.tasks_dir.join("dense.safetensors").exists());
    let got = predict(&st, "t2").await;
    assert_error(&got, 422, "too_many_nonzeros", &["\"t2\"", &nnz_s]);
    let cfg = ServeConfig {
        max_task_nnz: nnz,
        ..f.config.clone()
    };
    assert_eq!(predict(&state(&cfg), "t2").await.0, 200);

    // The body limit covers uploads too.
    let cfg = ServeConfig {
        max_body_bytes: ByteSize(size - 1),
        ..f.config.clone()
    };
    let got = put(&state(&cfg), "body", t0.clone()).await;
    assert_error(&got, 413, "body_too_large", &[&(size - 1).to_string()]);

    // A header whose length claims far more than was sent: a 422 from the parser (nothing
    // is allocated from the claim), as is a lying Content-Length.
    let mut lying = (1u64 << 40).to_le_bytes().to_vec();
    lying.extend_from_slice(b"{}");
    let got = put(&probe, "lying", lying).await;
    assert_error(&got, 422, "invalid_task_file", &["malformed"]);
    let got = call(
        &probe,
        "PUT",
        "/v1/tasks/lying",
        &[("content-length", "1099511627776")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(got.0, 422, "{}", got.1);
    assert!(!f.tasks_dir.join("lying.safetensors").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_count_limit_refuses_new_tasks_only() {
    let f = Fixture::new(3).expect("fixture");
    let t0 = std::fs::read(f.tasks_dir.join("t0.safetensors")).expect("read t0");
    let cfg = ServeConfig {
        max_task_files: 3,
        ..f.config.clone()
    };
    let st = state(&cfg);
    let got = put(&st, "new", t0.clone()).await;
    assert_error(
        &got,
        409,
        "too_many_tasks",
        &["3 task files", "max_task_files"],
    );
    assert!(!f.tasks_dir.join("new.safetensors").exists());
    // Replacing an existing task is not a new file.
    assert_eq!(put(&st, "t1", t0.clone()).await.0, 200);
    // Deleting one makes room for one.
    let del = call(&st, "DELETE", "/v1/tasks/t2", &[], vec![]).await;
    assert_eq!(del.0, 204);
    assert_eq!(put(&st, "new", t0.clone()).await.0, 200);
    let got = put(&st, "newer", t0).await;
    assert_error(&got, 409, "too_many_tasks", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_name_the_task_version_that_computed_them() {
    let f = Fixture::new(2).expect("fixture");
    let st = state(&f.config);
    let sha0 = sha256_of(&f.tasks_dir.join("t0.safetensors"));
    let sha1 = sha256_of(&f.tasks_dir.join("t1.safetensors"));
    assert_ne!(sha0, sha1);
    let (status, v) = predict(&st, "t0").await;
    assert_eq!(status, 200);
    assert_eq!(v["task_sha256"], sha0.as_str());
    let score0 = v["scores"][0].as_f64().expect("score");
    // Upload t1's bytes as t0: the upload and every later answer name t1's version, and the
    // scores are t1's.
    let t1 = std::fs::read(f.tasks_dir.join("t1.safetensors")).expect("read t1");
    let (status, up) = put(&st, "t0", t1).await;
    assert_eq!(status, 200, "{up}");
    assert_eq!(up["sha256"], sha1.as_str());
    let (_, v0) = predict(&st, "t0").await;
    let (_, v1) = predict(&st, "t1").await;
    assert_eq!(v0["task_sha256"], sha1.as_str());
    assert_eq!(v0["scores"], v1["scores"]);
    assert_ne!(v0["scores"][0].as_f64(), Some(score0));
    // Base-only answers name no version; the task list names the loaded ones.
    let body = json!({"inputs": ["w5"]}).to_string().into_bytes();
    let (_, base) = call(&st, "POST", "/v1/predict", &[], body).await;
    assert!(base["task_sha256"].is_null(), "{base}");
    let (_, list) = call(&st, "GET", "/v1/tasks", &[], vec![]).await;
    assert_eq!(list["tasks"][0]["loaded_sha256"], sha1.as_str());
}
