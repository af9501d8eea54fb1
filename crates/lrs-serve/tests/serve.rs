//! End-to-end tests of lrs-serve on a tiny random BERT: mixed-task batches, the byte-bounded
//! LRU, uploads/deletes/reloads under load, every bad-input status, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use lrs_bench::testing::Fixture;
use lrs_serve::{
    AppState, Batcher, BatcherConfig, Engine, Metrics, PredictRequest, Row, ServeConfig,
    ServeError, TaskId,
};
use serde_json::{json, Value};
use tower::ServiceExt;

fn engine(cfg: &ServeConfig) -> Arc<Engine> {
    Arc::new(Engine::open(cfg, Arc::new(Metrics::default())).expect("engine"))
}

fn id(s: &str) -> TaskId {
    TaskId::parse(s).expect("valid id")
}

async fn call(state: &AppState, method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let resp = lrs_serve::router(state.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, bytes)
}

async fn predict(state: &AppState, task: Option<&str>, inputs: &[&str]) -> (StatusCode, Value) {
    let body = json!({"task": task, "inputs": inputs})
        .to_string()
        .into_bytes();
    let (status, bytes) = call(state, "POST", "/v1/predict", body).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn scores(v: &Value) -> Vec<f64> {
    v["scores"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

const TEXTS: [&str; 4] = [
    "w5 w17 w42",
    "w9 w9 w10 w11 w12",
    "w77",
    "w4 w99 w50 w60 w70 w80",
];

#[test]
fn mixed_task_batch_equals_single_task_requests() {
    let f = Fixture::new(5).expect("fixture");
    let engine = engine(&f.config);
    let texts: Vec<String> = TEXTS.iter().map(|s| s.to_string()).collect();
    let tokens = engine.tokenize(&texts).expect("tokens");
    let mut tasks: Vec<_> = f
        .task_ids
        .iter()
        .map(|t| engine.resolve(Some(&id(t))).expect("task"))
        .collect();
    tasks.push(None);
    // Row r: task r mod 6 (slot 5 = base-only), text r mod 4; 24 rows, padded together.
    let mut choices: Vec<(Option<&lrs_serve::LoadedTask>, &[u32])> = Vec::new();
    for r in 0..24 {
        let task = tasks.get(r % 6).and_then(|t| t.as_deref());
        choices.push((task, &tokens[r % 4]));
    }
    let rows: Vec<Row> = choices
        .iter()
        .map(|&(task, tokens)| Row { task, tokens })
        .collect();
    let mixed = engine.forward(&rows, true).expect("mixed forward");
    for (r, row) in rows.iter().enumerate() {
        let single = engine.forward(&[*row], true).expect("single forward");
        let d = (mixed.logits[r] - single.logits[0]).abs();
        assert!(
            d <= 1e-5,
            "row {r}: mixed {} vs single {}",
            mixed.logits[r],
            single.logits[0]
        );
        let e_mixed = &mixed.embeddings.as_ref().expect("emb")[r];
        let e_single = &single.embeddings.as_ref().expect("emb")[0];
        let de = e_mixed
            .iter()
            .zip(e_single)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(de <= 1e-5, "row {r}: embeddings differ by {de}");
    }
    // Tasks really differ from each other and from the base (the test is not vacuous).
    let one = |task: Option<&lrs_serve::LoadedTask>| {
        engine
            .forward(
                &[Row {
                    task,
                    tokens: &tokens[0],
                }],
                false,
            )
            .expect("forward")
            .logits[0]
    };
    let (l0, l1, lb) = (
        one(tasks[0].as_deref()),
        one(tasks[1].as_deref()),
        one(None),
    );
    assert!(
        (l0 - l1).abs() > 1e-4 && (l0 - lb).abs() > 1e-4,
        "{l0} {l1} {lb}"
    );

    // The same through the batcher, with requests from many threads landing in shared batches.
    let batcher = Arc::new(
        Batcher::spawn(
            engine.clone(),
            BatcherConfig {
                max_batch_rows: 32,
                max_wait: Duration::from_millis(50),
                queue_capacity: 64,
            },
        )
        .expect("batcher"),
    );
    // Rows the model cannot take are refused at submission, never inside a shared batch.
    for bad in [vec![1u32, 10_000, 2], vec![], vec![5; 17]] {
        let req = PredictRequest {
            task: None,
            tokens: vec![bad],
            embeddings: false,
        };
        let e = batcher.submit(req).err();
        assert!(
            matches!(
                e,
                Some(ServeError::InvalidRequest(_) | ServeError::InputTooLong { .. })
            ),
            "{e:?}"
        );
    }
    let batches_before = engine.metrics().batch_rows.count();
    let receivers: Vec<_> = (0..12)
        .map(|r| {
            let req = PredictRequest {
                task: tasks[r % 6].clone(),
                tokens: vec![tokens[r % 4].clone(), tokens[(r + 1) % 4].clone()],
                embeddings: false,
            };
            batcher.submit(req).expect("submit")
        })
        .collect();
    let answers: Vec<_> = receivers
        .into_iter()
        .map(|rx| rx.blocking_recv().expect("answer").expect("prediction"))
        .collect();
    let batches = engine.metrics().batch_rows.count() - batches_before;
    assert!(
        batches < 12,
        "12 requests ran in {batches} batches: not batched together"
    );
    for (r, p) in answers.iter().enumerate() {
        for (k, t) in [r % 4, (r + 1) % 4].into_iter().enumerate() {
            let single = engine
                .forward(
                    &[Row {
                        task: tasks[r % 6].as_deref(),
                        tokens: &tokens[t],
                    }],
                    false,
                )
                .expect("single");
            assert!((p.logits[k] - single.logits[0]).abs() <= 1e-5);
            assert!((p.scores[k] - lrs_serve::engine::sigmoid(single.logits[0])).abs() <= 1e-6);
        }
    }
}

#[test]
fn lru_evicts_least_recently_used_by_bytes() {
    let f = Fixture::new(4).expect("fixture");
    let probe = engine(&f.config);
    let one = probe.registry().get(&id("t0")).expect("t0").bytes;
    // Room for two and a half tasks (all fixture tasks have the same shape and nnz).
    let budget = one * 5 / 2;
    let cfg = ServeConfig {
        cache_bytes: lrs_serve::ByteSize(budget),
        ..f.config.clone()
    };
    let engine = engine(&cfg);
    let reg = engine.registry();
    let loaded = |r: &lrs_serve::TaskRegistry| -> Vec<String> {
        r.loaded().iter().map(ToString::to_string).collect()
    };
    reg.get(&id("t0")).expect("t0");
    reg.get(&id("t1")).expect("t1");
    reg.get(&id("t0"))
        .expect("t0 again: now t1 is least recently used");
    assert!(reg.stats().bytes <= budget);
    reg.get(&id("t2")).expect("t2");
    assert_eq!(loaded(reg), ["t0", "t2"]);
    reg.get(&id("t3")).expect("t3");
    assert_eq!(loaded(reg), ["t2", "t3"]);
    let m = engine.metrics();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(m.cache_evictions.load(Relaxed), 2);
    assert_eq!(m.cache_hits.load(Relaxed), 1);
    assert_eq!(m.cache_misses.load(Relaxed), 4);
    assert_eq!(m.loaded_bytes.load(Relaxed), reg.stats().bytes);
    for round in 0..20 {
        reg.get(&id(&format!("t{}", (round * 7) % 4)))
            .expect("task");
        assert!(reg.stats().bytes <= budget, "over budget at round {round}");
    }
    // A budget smaller than one task: refused with a typed error, nothing cached.
    let tiny = ServeConfig {
        cache_bytes: lrs_serve::ByteSize(one - 1),
        ..f.config.clone()
    };
    let e = engine_open_err(&tiny);
    assert!(matches!(e, ServeError::TaskTooLarge { .. }), "{e}");
    let before = reg.loaded();
    let newest = before.last().expect("something loaded").clone();
    assert!(reg.unload(&newest));
    assert!(!reg.unload(&newest));
    assert_eq!(reg.loaded(), before[..before.len() - 1]);
}

fn engine_open_err(cfg: &ServeConfig) -> ServeError {
    let e = engine(cfg);
    match e.registry().get(&id("t0")) {
        Ok(_) => panic!("a task larger than the budget was cached"),
        Err(err) => err,
    }
}

fn state(cfg: &ServeConfig) -> AppState {
    AppState::with_engine(engine(cfg), cfg).expect("state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_status_and_never_500() {
    let f = Fixture::new(2).expect("fixture");
    let st = state(&f.config);
    let ok = predict(&st, Some("t0"), &["w5 w6"]).await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    assert_eq!(scores(&ok.1).len(), 1);
    let base = predict(&st, None, &["w5 w6"]).await;
    assert_eq!(base.0, StatusCode::OK);

    let post = |body: &str| call(&st, "POST", "/v1/predict", body.as_bytes().to_vec());
    let cases: Vec<(&str, (StatusCode, Vec<u8>))> = vec![
        (
            "unknown task",
            post(r#"{"task":"nobody","inputs":["w5"]}"#).await,
        ),
        (
            "traversal id in body",
            post(r#"{"task":"../t0","inputs":["w5"]}"#).await,
        ),
        ("dot-dot id", post(r#"{"task":"..","inputs":["w5"]}"#).await),
        ("bad JSON", post(r#"{"task":"t0","inputs":["#).await),
        (
            "wrong JSON shape",
            post(r#"{"task":"t0","inputs":"w5"}"#).await,
        ),
        (
            "unknown field",
            post(r#"{"task":"t0","inputs":["w5"],"x":1}"#).await,
        ),
        ("empty inputs", post(r#"{"task":"t0","inputs":[]}"#).await),
        (
            "too many inputs",
            post(&json!({"task": "t0", "inputs": vec!["w5"; 17]}).to_string()).await,
        ),
        (
            "too many tokens",
            post(&json!({"task": "t0", "inputs": ["w5 ".repeat(15)]}).to_string()).await,
        ),
        (
            "oversize body",
            post(&json!({"task": "t0", "inputs": ["w5 ".repeat(400_000)]}).to_string()).await,
        ),
        (
            "invalid task file",
            call(
                &st,
                "PUT",
                "/v1/tasks/evil",
                b"not a safetensors file".to_vec(),
            )
            .await,
        ),
        (
            "traversal id in path",
            call(&st, "PUT", "/v1/tasks/..", b"x".to_vec()).await,
        ),
        (
            "encoded traversal",
            call(&st, "PUT", "/v1/tasks/%2e%2e", b"x".to_vec()).await,
        ),
        (
            "encoded slash",
            call(&st, "PUT", "/v1/tasks/..%2Fetc", b"x".to_vec()).await,
        ),
        (
            "delete unknown",
            call(&st, "DELETE", "/v1/tasks/nobody", vec![]).await,
        ),
        (
            "delete traversal",
            call(&st, "DELETE", "/v1/tasks/%2E%2E", vec![]).await,
        ),
        ("no route", call(&st, "GET", "/v2/nothing", vec![]).await),
    ];
    let expected = [
        404, 400, 400, 400, 422, 422, 422, 413, 413, 413, 422, 400, 400, 400, 404, 400, 404,
    ];
    for ((name, (status, body)), want) in cases.iter().zip(expected) {
        assert_eq!(
            status.as_u16(),
            want,
            "{name}: {}",
            String::from_utf8_lossy(body)
        );
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        assert!(v["error"]["code"].is_string(), "{name}: no error body");
    }
    // A task file for another shared file: 422 with the hash named; nothing installed.
    let other = Fixture::new(1).expect("fixture");
    let foreign = std::fs::read(other.tasks_dir.join("t0.safetensors")).expect("read");
    let (status, body) = call(&st, "PUT", "/v1/tasks/foreign", foreign).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(String::from_utf8_lossy(&body).contains("hash mismatch"));
    assert!(!f.tasks_dir.join("foreign.safetensors").exists());
    assert!(!f.tasks_dir.join("evil.safetensors").exists());
    // A corrupt file dropped into the registry by hand: 422 on use, not 500.
    std::fs::write(
        f.tasks_dir.join("junk.safetensors"),
        b"\x08\0\0\0\0\0\0\0{}",
    )
    .expect("w");
    assert_eq!(predict(&st, Some("junk"), &["w5"]).await.0, 422);
    // Nothing in the registry escaped it.
    let leftovers: Vec<_> = std::fs::read_dir(&f.tasks_dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload-") || n.starts_with(".lrs-tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let (status, text) = call(&st, "GET", "/metrics", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("lrs_http_requests_total{route=\"/v1/predict\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(text.contains("lrs_task_cache_misses_total"));
    assert!(!text.contains("status=\"500\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_delete_and_reload_while_requests_are_in_flight() {
    let f = Fixture::new(4).expect("fixture");
    let st = state(&f.config);
    let text = ["w5 w17 w42"];
    let score_of = |v: &Value| scores(v)[0];
    let t3 = score_of(&predict(&st, Some("t3"), &text).await.1);
    let t1 = score_of(&predict(&st, Some("t1"), &text).await.1);
    assert!((t1 - t3).abs() > 1e-6, "fixture tasks must differ");

    // Background load: requests for every task until told to stop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for w in 0..4 {
        let (st, stop) = (st.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut k = w;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let task = format!("t{}", k % 4);
                statuses.push(predict(&st, Some(&task), &["w5 w17 w42", "w8"]).await.0);
                k += 1;
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t3_bytes = std::fs::read(f.tasks_dir.join("t3.safetensors")).expect("read t3");
    // Upload t3's parameters as t1: t1 now scores like t3.
    let (status, body) = call(&st, "PUT", "/v1/tasks/t1", t3_bytes.clone()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let now = score_of(&predict(&st, Some("t1"), &text).await.1);
    assert!((now - t3).abs() < 1e-6, "upload not served: {now} vs {t3}");
    // Delete t2 while it is being requested; then it is unknown.
    let (status, _) = call(&st, "DELETE", "/v1/tasks/t2", vec![]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        predict(&st, Some("t2"), &text).await.0,
        StatusCode::NOT_FOUND
    );
    // Hot reload: replace t0's file behind the server's back; the next request sees it.
    lrs_nn::files::atomic::write_atomic(&f.tasks_dir.join("t0.safetensors"), &t3_bytes)
        .expect("replace t0");
    let now = score_of(&predict(&st, Some("t0"), &text).await.1);
    assert!(
        (now - t3).abs() < 1e-6,
        "changed file not reloaded: {now} vs {t3}"
    );
    // Re-upload t2.
    let (status, _) = call(&st, "PUT", "/v1/tasks/t2", t3_bytes).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = 0;
    for l in load {
        for s in l.await.expect("load task") {
            seen += 1;
            assert!(s == StatusCode::OK || s == StatusCode::NOT_FOUND, "{s}");
        }
    }
    assert!(seen > 8, "background load too thin: {seen}");
    let (status, body) = call(&st, "GET", "/v1/tasks", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Value = serde_json::from_slice(&body).expect("json");
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["t0", "t1", "t2", "t3"]);
    use std::sync::atomic::Ordering::Relaxed;
    assert!(st.engine.metrics().cache_reloads.load(Relaxed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let f = Fixture::new(1).expect("fixture");
    // A long batching wait keeps the request in flight when shutdown starts.
    let cfg = ServeConfig {
        max_wait_ms: 400,
        ..f.config.clone()
    };
    let st = state(&cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(lrs_serve::serve(listener, st, async move {
        let _ = stop_rx.await;
    }));
    let mut client = lrs_bench::http_client::HttpClient::connect(&url)
        .await
        .expect("connect");
    let (status, _) = client
        .send("GET", "/healthz", "application/json", vec![])
        .await
        .expect("healthz");
    assert_eq!(status, 200);
    let body = json!({"task": "t0", "inputs": ["w5 w6"]})
        .to_string()
        .into_bytes();
    let in_flight = tokio::spawn(async move {
        client
            .send("POST", "/v1/predict", "application/json", body)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_tx.send(()).expect("signal");
    let (status, body) = in_flight.await.expect("join").expect("response");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(scores(&v).len(), 1);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .expect("join")
        .expect("serve ok");
    // New connections are refused once it has stopped.
    assert!(lrs_bench::http_client::HttpClient::connect(&url)
        .await
        .is_err());
}
