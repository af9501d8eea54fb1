//! The load test's clients, each on its own keep-alive connection: predictors (bounded by a
//! shared request count), one churner (uploads, replacements, deletions, paced by the
//! predictors' progress) and a monitor (cache occupancy via `/healthz`, resident memory).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::history::History;
use super::reference::Versions;
use crate::http_client::HttpClient;
use crate::stats::rss_bytes;
use crate::synth::{provenance, random_task, TaskSpec};
use lrs_serve::engine::Engine;
use lrs_serve::error::{Result, ServeError};
use lrs_serve::http::api::{PredictResponse, TaskLoaded};

/// Longest one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What one predict request got.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// 200, with the version that answered and the logits.
    Ok {
        /// `task_sha256` of the answer.
        sha256: Option<String>,
        /// Logit per input.
        logits: Vec<f32>,
    },
    /// Any other status.
    Status(u16),
    /// No answer (connection error or timeout).
    Transport(String),
}

/// One predict request and its answer.
#[derive(Debug, Clone)]
pub struct Record {
    /// Task index.
    pub task: usize,
    /// Text indices of its inputs.
    pub texts: Vec<usize>,
    /// Seconds since the run began, when sent.
    pub start: f64,
    /// … and when answered.
    pub end: f64,
    /// The answer.
    pub outcome: Outcome,
}

/// Everything the clients share.
pub struct Shared {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// When the run began.
    pub t0: Instant,
    /// Task ids by index (initial tasks first, then the initially absent extras).
    pub task_ids: Vec<String>,
    /// Text pool.
    pub texts: Vec<String>,
    /// Inputs per request.
    pub inputs_per_request: usize,
    /// Requests to send in all.
    pub requests: usize,
    /// Stop sending new requests at this instant.
    pub deadline: Instant,
    /// Seed of the request mix.
    pub seed: u64,
    /// Next request number.
    pub next: AtomicUsize,
    /// Requests answered.
    pub completed: AtomicUsize,
    /// Set when the predictors are done: the churner and monitor stop.
    pub stop: AtomicBool,
    /// Task change log.
    pub history: Mutex<History>,
    /// Every version uploaded (and the initial ones).
    pub versions: Mutex<Versions>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn send(
    client: &mut Option<HttpClient>,
    url: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, axum::body::Bytes)> {
    if client.is_none() {
        *client = Some(HttpClient::connect(url).await?);
    }
    let c = client
        .as_mut()
        .ok_or_else(|| ServeError::Internal("no connection".into()))?;
    let sent = tokio::time::timeout(
        REQUEST_TIMEOUT,
        c.send(method, path, "application/json", body),
    );
    match sent.await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => {
            *client = None;
            Err(e)
        }
        Err(_) => {
            *client = None;
            Err(ServeError::Internal(format!(
                "{method} {path}: no answer in {REQUEST_TIMEOUT:?}"
            )))
        }
    }
}

/// One predictor: takes request numbers until `requests` are taken or the deadline passes.
pub async fn predictor(shared: Arc<Shared>) -> Vec<Record> {
    let mut client = None;
    let mut out = Vec::new();
    loop {
        let k = shared.next.fetch_add(1, Ordering::Relaxed);
        if k >= shared.requests || Instant::now() >= shared.deadline {
            break;
        }
        let mut rng = StdRng::seed_from_u64(shared.seed ^ (k as u64).wrapping_mul(0x9E37_79B9));
        let task = rng.gen_range(0..shared.task_ids.len());
        let texts: Vec<usize> = (0..shared.inputs_per_request)
            .map(|_| rng.gen_range(0..shared.texts.len()))
            .collect();
        let inputs: Vec<&String> = texts.iter().map(|&i| &shared.texts[i]).collect();
        let body = serde_json::json!({"task": shared.task_ids[task], "inputs": inputs})
            .to_string()
            .into_bytes();
        let start = shared.now();
        let answer = send(&mut client, &shared.url, "POST", "/v1/predict", body).await;
        let end = shared.now();
        let outcome = match answer {
            Ok((200, bytes)) => match serde_json::from_slice::<PredictResponse>(&bytes) {
                Ok(r) => Outcome::Ok {
                    sha256: r.task_sha256,
                    logits: r.logits,
                },
                Err(e) => Outcome::Transport(format!("unreadable answer: {e}")),
            },
            Ok((status, _)) => Outcome::Status(status),
            Err(e) => Outcome::Transport(e.to_string()),
        };
        shared.completed.fetch_add(1, Ordering::Relaxed);
        out.push(Record {
            task,
            texts,
            start,
            end,
            outcome,
        });
    }
    out
}

/// What the churner did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Churn {
    /// Uploads of a task that did not exist.
    pub uploads: usize,
    /// Uploads over an existing task.
    pub replacements: usize,
    /// Deletions.
    pub deletes: usize,
    /// Changes that did not get the expected answer (with the first few reasons).
    pub failed: usize,
    /// The first failures.
    pub failures: Vec<String>,
}

/// How the churner works.
#[derive(Debug, Clone, Copy)]
pub struct ChurnSpec {
    /// Changes to make, spread evenly over the predictors' progress.
    pub ops: usize,
    /// Chance that a change of an existing task deletes it (else it is replaced).
    pub delete_fraction: f64,
    /// How new versions look.
    pub task_spec: TaskSpec,
}

/// The churner: `spec.ops` changes of random tasks, change `k` made once `k/(ops+1)` of the
/// requests are answered. Each new version is a fresh random task file, saved to the version
/// directory (for the reference scores) and uploaded.
pub async fn churner(shared: Arc<Shared>, engine: Arc<Engine>, spec: ChurnSpec) -> Churn {
    let mut rng = StdRng::seed_from_u64(shared.seed ^ 0xC4A2_0000);
    let mut client = None;
    let mut churn = Churn::default();
    let fail = |churn: &mut Churn, why: String| {
        churn.failed += 1;
        if churn.failures.len() < 5 {
            churn.failures.push(why);
        }
    };
    let mut version_counts = vec![1usize; shared.task_ids.len()];
    for k in 0..spec.ops {
        let target = (k + 1) * shared.requests / (spec.ops + 1);
        while shared.completed.load(Ordering::Relaxed) < target {
            if shared.stop.load(Ordering::Relaxed) {
                return churn;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let t = rng.gen_range(0..shared.task_ids.len());
        let id = shared.task_ids[t].clone();
        let present = matches!(lock(&shared.history).current(t), Some(Some(_)));
        if present && rng.gen_bool(spec.delete_fraction) {
            let sent = shared.now();
            let answer = send(
                &mut client,
                &shared.url,
                "DELETE",
                &format!("/v1/tasks/{id}"),
                vec![],
            )
            .await;
            let done = shared.now();
            match answer {
                Ok((204, _)) => {
                    lock(&shared.history).push(t, None, sent, done);
                    churn.deletes += 1;
                }
                Ok((status, body)) => fail(
                    &mut churn,
                    format!("DELETE {id}: {status} {}", String::from_utf8_lossy(&body)),
                ),
                Err(e) => fail(&mut churn, format!("DELETE {id}: {e}")),
            }
            continue;
        }
        let n = version_counts[t];
        version_counts[t] += 1;
        let seed = shared
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(10_000_000 + k as u64);
        let dir = lock(&shared.versions).dir.clone();
        let (model, task_spec) = (engine.clone(), spec.task_spec);
        let task_id = id.clone();
        let made = tokio::task::spawn_blocking(move || {
            let file = Versions::file_id(&task_id, n)?;
            let task = random_task(engine_model(&model), &task_id, &task_spec, seed)?;
            let prov = provenance(engine_model(&model), model.shared())?;
            let path = dir.join(file.file_name());
            let sha = task
                .save(&path, &prov, task_spec.value_dtype)
                .map_err(lrs_nn::NnError::from)?;
            let bytes =
                std::fs::read(&path).map_err(|source| ServeError::Io { file: path, source })?;
            Ok::<_, ServeError>((file, sha, bytes))
        })
        .await;
        let (file, sha, bytes) = match made {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                fail(&mut churn, format!("making a version of {id}: {e}"));
                continue;
            }
            Err(e) => {
                fail(&mut churn, format!("making a version of {id}: {e}"));
                continue;
            }
        };
        lock(&shared.versions).add(sha.clone(), t, file);
        let sent = shared.now();
        let answer = send(
            &mut client,
            &shared.url,
            "PUT",
            &format!("/v1/tasks/{id}"),
            bytes,
        )
        .await;
        let done = shared.now();
        match answer {
            Ok((200, body)) => {
                let named = serde_json::from_slice::<TaskLoaded>(&body).map(|l| l.sha256);
                if named.as_deref().ok() != Some(sha.as_str()) {
                    fail(
                        &mut churn,
                        format!("PUT {id}: answer names {named:?}, sent {sha}"),
                    );
                }
                lock(&shared.history).push(t, Some(sha), sent, done);
                if present {
                    churn.replacements += 1;
                } else {
                    churn.uploads += 1;
                }
            }
            Ok((status, body)) => fail(
                &mut churn,
                format!("PUT {id}: {status} {}", String::from_utf8_lossy(&body)),
            ),
            Err(e) => fail(&mut churn, format!("PUT {id}: {e}")),
        }
    }
    churn
}

fn engine_model(engine: &Engine) -> &lrs_nn::BertModel {
    engine.model()
}

/// What the monitor saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Watch {
    /// `/healthz` polls answered.
    pub polls: usize,
    /// Most cache bytes reported.
    pub cache_peak_bytes: u64,
    /// Polls that reported more bytes than the budget.
    pub over_budget: usize,
    /// Most resident memory sampled.
    pub rss_peak_sampled: u64,
}

/// Polls `/healthz` (cache occupancy) and samples resident memory every `every` until stop.
pub async fn monitor(shared: Arc<Shared>, every: Duration) -> Watch {
    let mut client = None;
    let mut watch = Watch::default();
    while !shared.stop.load(Ordering::Relaxed) {
        if let Ok((200, body)) = send(&mut client, &shared.url, "GET", "/healthz", vec![]).await {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let bytes = v["cache"]["bytes"].as_u64().unwrap_or(0);
            let budget = v["cache"]["budget"].as_u64().unwrap_or(u64::MAX);
            watch.polls += 1;
            watch.cache_peak_bytes = watch.cache_peak_bytes.max(bytes);
            watch.over_budget += usize::from(bytes > budget);
        }
        if let Some(rss) = rss_bytes() {
            watch.rss_peak_sampled = watch.rss_peak_sampled.max(rss);
        }
        tokio::time::sleep(every).await;
    }
    watch
}
