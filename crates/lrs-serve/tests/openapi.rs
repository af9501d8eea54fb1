//! `GET /openapi.json`: the document lists exactly the router's routes (each documented
//! operation reaches its handler, not the 404 fallback or a 405), the server serves the same
//! document, and `docs/http-api.md` documents every route of it.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use lrs_bench::testing::Fixture;
use lrs_serve::{AppState, Engine, Metrics};
use serde_json::Value;
use tower::ServiceExt;

/// `(METHOD, path)` of every operation in `doc`.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_exactly_the_routes_the_router_answers() {
    let doc = serde_json::to_value(lrs_serve::http::openapi()).expect("document as JSON");
    let ops = operations(&doc);
    let expected: BTreeSet<(String, String)> = [
        ("POST", "/v1/predict"),
        ("GET", "/v1/tasks"),
        ("PUT", "/v1/tasks/{id}"),
        ("DELETE", "/v1/tasks/{id}"),
        ("POST", "/v1/tasks/{id}/load"),
        ("POST", "/v1/tasks/{id}/unload"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(ops, expected);
    // Request and response bodies come from the handlers' types.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "PredictBody",
        "PredictResponse",
        "TasksResponse",
        "TaskLoaded",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
    assert_eq!(
        doc["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/PredictBody"
    );

    let fx = Fixture::new(2).expect("fixture");
    let engine = Arc::new(Engine::open(&fx.config, Arc::new(Metrics::default())).expect("engine"));
    let state = AppState::with_engine(engine, &fx.config).expect("state");
    let upload = std::fs::read(fx.tasks_dir.join("t1.safetensors")).expect("task file");
    // DELETE last: it removes the task the others use.
    let mut ordered: Vec<_> = ops.iter().filter(|(m, _)| m != "DELETE").collect();
    ordered.extend(ops.iter().filter(|(m, _)| m == "DELETE"));
    for (method, path) in ordered {
        let uri = path.replace("{id}", "t1");
        let body = match (method.as_str(), path.as_str()) {
            ("POST", "/v1/predict") => br#"{"task": "t1", "inputs": ["w5 w6"]}"#.to_vec(),
            ("PUT", _) => upload.clone(),
            _ => Vec::new(),
        };
        let req = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .body(Body::from(body))
            .expect("request");
        let resp = lrs_serve::router(state.clone())
            .oneshot(req)
            .await
            .expect("infallible");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        assert!(
            (200..300).contains(&status),
            "{method} {uri}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        if path == "/openapi.json" {
            let served: Value = serde_json::from_slice(&bytes).expect("served JSON");
            assert_eq!(operations(&served), expected);
        }
    }
    // A path outside the document is the fallback's 404.
    let resp = lrs_serve::router(state.clone())
        .oneshot(
            Request::builder()
                .uri("/v1/nothing")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status().as_u16(), 404);

    let md = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/http-api.md"
    ))
    .expect("docs/http-api.md");
    for (method, path) in &expected {
        assert!(
            md.contains(&format!("| `{method}` | `{path}` |")),
            "docs/http-api.md lacks the row for {method} {path}"
        );
    }
}
