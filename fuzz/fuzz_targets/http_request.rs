//! lrs-serve's HTTP API: up to four requests per input (method, path, content type and body
//! drawn from the input: predict bodies of real and broken shapes, raw bytes, arbitrary JSON,
//! well-formed task files with fuzzed contents) through `lrs_serve::router` over a tiny engine,
//! in process (`tower::ServiceExt::oneshot`). Invariant: no answer is a 5xx other than 503
//! `overloaded` — a 500 is a handler, validation or forward-pass bug. The tasks directory and
//! cache are put back after every input, so each input starts from the same state.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use axum::http::Request;
use axum::Router;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use lrs_fuzz::st::{self, Vocab};
use lrs_bench::testing::Fixture;
use lrs_serve::{AppState, ByteSize, Engine, Metrics, TaskId};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Server {
    _fixture: Fixture,
    state: AppState,
    router: Router,
    runtime: tokio::runtime::Runtime,
    tasks_dir: PathBuf,
    /// The fixture's task files: id → bytes.
    originals: BTreeMap<String, Vec<u8>>,
    vocab: Vocab,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let fixture = Fixture::new(3).expect("fixture");
        let mut cfg = fixture.config.clone();
        // No batching delay (requests come one at a time) and a cache small enough that
        // uploads evict and large tasks are refused.
        cfg.max_wait_ms = 0;
        cfg.cache_bytes = ByteSize(24 << 10);
        cfg.max_body_bytes = ByteSize(64 << 10);
        let engine = Arc::new(Engine::open(&cfg, Arc::new(Metrics::default())).expect("engine"));
        let state = AppState::with_engine(engine.clone(), &cfg).expect("state");
        let router = lrs_serve::router(state.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let originals = fixture
            .task_ids
            .iter()
            .map(|id| {
                let p = fixture.tasks_dir.join(format!("{id}.safetensors"));
                (id.clone(), std::fs::read(&p).expect("task file"))
            })
            .collect();
        let vocab = task_vocab(&engine);
        Server {
            tasks_dir: fixture.tasks_dir.clone(),
            _fixture: fixture,
            state,
            router,
            runtime,
            originals,
            vocab,
        }
    })
}

/// Task-file contents the engine's loader knows, with the engine's real hashes.
fn task_vocab(engine: &Engine) -> Vocab {
    let modules = engine.model().adapted_modules();
    let mut names: Vec<String> = modules
        .keys()
        .flat_map(|m| {
            ["lrs_w", "lrs_idx", "lrs_val", "lora_a", "lora_b"].map(|k| format!("{m}.{k}"))
        })
        .collect();
    names.extend(["head.weight", "head.bias"].map(String::from));
    let mut dims = vec![0, 1, 2, 3, 4, 5];
    for (o, i) in modules.values() {
        dims.extend([*o, *i, o * i]);
    }
    dims.sort_unstable();
    dims.dedup();
    let rank = engine.shared().rank.to_string();
    let one = |s: String| vec![s];
    Vocab {
        names,
        dims,
        meta: vec![
            ("format".into(), one("lrs-task".into())),
            ("version".into(), one("1".into())),
            ("task_id".into(), one("up".into())),
            (
                "base_sha256".into(),
                one(engine.model().base_info().sha256.clone()),
            ),
            (
                "shared_sha256".into(),
                one(engine.shared().sha256.clone().unwrap_or_default()),
            ),
            ("rank".into(), vec![rank, "0".into()]),
            ("lora_alpha".into(), vec!["8".into(), "NaN".into()]),
        ],
        max_tensors: 6,
        max_elems: 2048,
    }
}

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
    Head,
    Patch,
    Options,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Id {
    Fixture(u8),
    Fresh(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Route {
    Predict,
    Tasks,
    Task(Id),
    Load(Id),
    Unload(Id),
    Healthz,
    Metrics,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum ContentType {
    None,
    Json,
    Octet,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum BodyKind {
    Empty,
    Raw,
    Predict,
    Json,
    TaskFile,
    FixtureTask,
}

fn id_string(s: &Server, id: &Id) -> String {
    match id {
        Id::Fixture(n) => {
            let ids: Vec<&String> = s.originals.keys().collect();
            ids[usize::from(*n) % ids.len()].clone()
        }
        Id::Fresh(n) => format!("fz{}", n % 4),
        Id::Raw(r) => r.clone(),
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn uri(s: &Server, route: &Route) -> String {
    let seg = |id: &Id| encode_segment(&id_string(s, id));
    match route {
        Route::Predict => "/v1/predict".into(),
        Route::Tasks => "/v1/tasks".into(),
        Route::Task(id) => format!("/v1/tasks/{}", seg(id)),
        Route::Load(id) => format!("/v1/tasks/{}/load", seg(id)),
        Route::Unload(id) => format!("/v1/tasks/{}/unload", seg(id)),
        Route::Healthz => "/healthz".into(),
        Route::Metrics => "/metrics".into(),
        Route::Raw(r) => format!("/{r}"),
    }
}

fn json_value(u: &mut Unstructured, depth: u8) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0..=6u8)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => json!(u.arbitrary::<i64>()?),
        3 => json!(u.arbitrary::<f64>()?),
        4 => Value::String(u.arbitrary()?),
        5 if depth > 0 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array(
                (0..n)
                    .map(|_| json_value(u, depth - 1))
                    .collect::<arbitrary::Result<_>>()?,
            )
        }
        6 if depth > 0 => {
            let n = u.int_in_range(0..=4)?;
            let mut m = serde_json::Map::new();
            for _ in 0..n {
                let k = if u.ratio(1, 2)? {
                    (*u.choose(&["task", "inputs", "embeddings"])?).to_string()
                } else {
                    u.arbitrary()?
                };
                m.insert(k, json_value(u, depth - 1)?);
            }
            Value::Object(m)
        }
        _ => Value::Null,
    })
}

/// A text the word-level tokenizer knows (mostly) or anything.
fn text(u: &mut Unstructured) -> arbitrary::Result<Value> {
    if u.ratio(1, 5)? {
        return Ok(Value::String(u.arbitrary()?));
    }
    let n = u.int_in_range(0..=40u8)?;
    let words: Vec<String> = (0..n)
        .map(|_| {
            let b = u.arbitrary::<u8>()?;
            Ok(match b % 8 {
                0 => ["[CLS]", "[SEP]", "[PAD]", "[UNK]", "w100", "w3"][usize::from(b / 8) % 6]
                    .to_string(),
                _ => format!("w{}", 4 + u32::from(b) % 96),
            })
        })
        .collect::<arbitrary::Result<_>>()?;
    Ok(Value::String(words.join(" ")))
}

fn predict_body(s: &Server, u: &mut Unstructured) -> arbitrary::Result<Vec<u8>> {
    let mut m = serde_json::Map::new();
    match u.int_in_range(0..=4u8)? {
        0 => {}
        1 => {
            m.insert("task".into(), Value::Null);
        }
        2 => {
            m.insert("task".into(), json_value(u, 1)?);
        }
        _ => {
            let id: Id = u.arbitrary()?;
            m.insert("task".into(), Value::String(id_string(s, &id)));
        }
    }
    if !u.ratio(1, 12)? {
        let n = u.int_in_range(0..=18u8)?;
        let inputs = (0..n)
            .map(|_| {
                if u.ratio(1, 20)? {
                    json_value(u, 1)
                } else {
                    text(u)
                }
            })
            .collect::<arbitrary::Result<_>>()?;
        m.insert("inputs".into(), Value::Array(inputs));
    }
    match u.int_in_range(0..=3u8)? {
        0 => {}
        1 | 2 => {
            m.insert("embeddings".into(), Value::Bool(u.arbitrary()?));
        }
        _ => {
            m.insert("embeddings".into(), json_value(u, 1)?);
        }
    }
    if u.ratio(1, 10)? {
        m.insert(u.arbitrary()?, json_value(u, 1)?);
    }
    Ok(serde_json::to_vec(&Value::Object(m)).unwrap_or_default())
}

fn task_file_body(s: &Server, u: &mut Unstructured) -> arbitrary::Result<Vec<u8>> {
    let tensors = st::arbitrary_tensors(u, &s.vocab)?;
    let mut meta = st::arbitrary_meta(u, &s.vocab)?;
    if u.ratio(7, 8)? {
        let nnz = st::elements_with_suffix(&tensors, ".lrs_idx");
        meta.insert("nnz".into(), nnz.to_string());
    }
    Ok(st::serialize(&tensors, meta).unwrap_or_default())
}

fn request(s: &Server, u: &mut Unstructured) -> arbitrary::Result<Option<Request<Body>>> {
    let method = match u.arbitrary::<Method>()? {
        Method::Get => "GET".to_string(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Head => "HEAD".into(),
        Method::Patch => "PATCH".into(),
        Method::Options => "OPTIONS".into(),
        Method::Other(m) => m,
    };
    let route: Route = u.arbitrary()?;
    let content_type: ContentType = u.arbitrary()?;
    let body = match u.arbitrary::<BodyKind>()? {
        BodyKind::Empty => Vec::new(),
        BodyKind::Raw => u.arbitrary::<Vec<u8>>()?,
        BodyKind::Predict => predict_body(s, u)?,
        BodyKind::Json => serde_json::to_vec(&json_value(u, 3)?).unwrap_or_default(),
        BodyKind::TaskFile => task_file_body(s, u)?,
        BodyKind::FixtureTask => {
            let files: Vec<&Vec<u8>> = s.originals.values().collect();
            files[usize::from(u.arbitrary::<u8>()?) % files.len()].clone()
        }
    };
    let mut builder = Request::builder()
        .method(method.as_str())
        .uri(uri(s, &route));
    builder = match content_type {
        ContentType::None => builder,
        ContentType::Json => builder.header("content-type", "application/json"),
        ContentType::Octet => builder.header("content-type", "application/octet-stream"),
        ContentType::Raw(ct) => builder.header("content-type", ct),
    };
    // Requests hyper could not have produced (bad method, URI or header) are skipped.
    Ok(builder.body(Body::from(body)).ok())
}

/// Puts the tasks directory and the cache back as the fixture made them.
fn reset(s: &Server) {
    let unload = |id: &str| {
        if let Ok(id) = TaskId::parse(id) {
            s.state.engine.registry().unload(&id);
        }
    };
    let mut seen = HashMap::new();
    for entry in std::fs::read_dir(&s.tasks_dir)
        .expect("tasks dir")
        .flatten()
    {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let id = name
            .strip_suffix(".safetensors")
            .unwrap_or(&name)
            .to_string();
        match s.originals.get(&id) {
            Some(bytes) => {
                seen.insert(id.clone(), ());
                if std::fs::read(&path).ok().as_ref() != Some(bytes) {
                    std::fs::write(&path, bytes).expect("restore task file");
                    unload(&id);
                }
            }
            None => {
                let _ = std::fs::remove_file(&path);
                unload(&id);
            }
        }
    }
    for (id, bytes) in &s.originals {
        if !seen.contains_key(id) {
            std::fs::write(s.tasks_dir.join(format!("{id}.safetensors")), bytes)
                .expect("restore task file");
            unload(id);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let s = server();
    let mut u = Unstructured::new(data);
    let n = u.int_in_range(1..=4u8).unwrap_or(1);
    for _ in 0..n {
        let Ok(Some(req)) = request(s, &mut u) else {
            break;
        };
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let (status, body) = s.runtime.block_on(async {
            let resp = s.router.clone().oneshot(req).await.expect("infallible");
            let status = resp.status();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
            (status, body)
        });
        let body = body.expect("response body");
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(String::from));
        let overloaded = status.as_u16() == 503 && code.as_deref() == Some("overloaded");
        if status.is_server_error() && !overloaded {
            panic!(
                "{method} {uri} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    reset(s);
});
