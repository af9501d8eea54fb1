//! The load test (`lrs bench load`, and in CI size `tests/stress.rs`): many concurrent
//! clients over many distinct tasks against an in-process server on loopback, while tasks are
//! uploaded, replaced and deleted, with a task cache smaller than the task set.
//!
//! Every answer is checked, not just counted:
//! - a 200 names the task version that computed it (`task_sha256`); that version must be one
//!   uploaded for *this* task and current at some time during the request ([`history`]), and
//!   every logit must match the version's own logit for that text, computed afterwards by a
//!   second engine with the version alone in its batch ([`mod@reference`]);
//! - a 404 must be explained by the task's absence at some time during the request;
//! - anything else (5xx, another 4xx, no answer) is an error.
//!
//! Memory: a monitor polls `/healthz` for the cache's bytes against its budget, and the
//! process's peak resident memory (`VmHWM`, reset when the load starts) is compared with the
//! cache budget. The run is bounded by a request count and a deadline.

pub mod clients;
pub mod history;
pub mod reference;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use self::clients::{Churn, ChurnSpec, Outcome, Record, Shared, Watch};
use self::history::{History, Mismatch};
use self::reference::{Reference, Versions};
use crate::setup::{setup, SetupSpec};
use crate::stats::{peak_rss_bytes, reset_peak_rss, rss_bytes, Summary};
use crate::texts::random_texts;
use lrs_serve::config::ServeConfig;
use lrs_serve::error::{Result, ServeError};
use lrs_serve::http::AppState;

/// A load test.
#[derive(Debug, Clone)]
pub struct StressSpec {
    /// Model, shared file, task files (`setup.tasks` exist at start), cache budget (set
    /// `setup.cache_fraction` to size it against the task set), seed.
    pub setup: SetupSpec,
    /// Further task ids (`bench-x0` …) that do not exist at start; the churner uploads them.
    pub extra_tasks: usize,
    /// Concurrent predict clients (one keep-alive connection each).
    pub clients: usize,
    /// Predict requests in all.
    pub requests: usize,
    /// Inputs per request.
    pub inputs_per_request: usize,
    /// Size of the text pool requests draw from.
    pub texts: usize,
    /// Words per text.
    pub words: usize,
    /// Task changes (upload / replace / delete) during the run.
    pub churn_ops: usize,
    /// Chance that a change of an existing task deletes it.
    pub delete_fraction: f64,
    /// Stop sending requests after this long.
    pub max_duration: Duration,
    /// Largest allowed `|logit − reference|`, plus `tolerance · |reference|`.
    pub tolerance: f32,
    /// Resident memory the run may grow by beyond the cache budget (runtime, buffers,
    /// allocator, answers recorded by the clients).
    pub rss_slack_bytes: u64,
    /// Server batching: most rows per forward pass.
    pub max_batch_rows: usize,
    /// Server batching: longest wait for a batch, ms.
    pub max_wait_ms: u64,
    /// Async runtime worker threads (server and clients share them).
    pub worker_threads: usize,
}

/// Everything a load test measured.
#[derive(Debug, Clone, Serialize)]
pub struct StressReport {
    /// Distinct task ids requested (initial + extra).
    pub distinct_tasks: usize,
    /// Predict requests answered (or failed).
    pub requests: usize,
    /// Predict answers by status (`0`: no answer).
    pub statuses: BTreeMap<u16, usize>,
    /// 5xx answers.
    pub server_errors: usize,
    /// Requests without an answer (connection error, timeout, unreadable body).
    pub transport_errors: usize,
    /// Answers other than 200/404/5xx.
    pub other_errors: usize,
    /// 200s naming a version of another task.
    pub wrong_task: usize,
    /// 200s naming a version never uploaded, or none.
    pub unknown_version: usize,
    /// 200s naming a version of this task not current during the request.
    pub stale_version: usize,
    /// 404s while the task existed for the whole request.
    pub unexplained_404: usize,
    /// 200s whose logits differ from the version's reference logits beyond tolerance.
    pub wrong_scores: usize,
    /// Largest `|logit − reference|` over all checked logits.
    pub max_logit_error: f32,
    /// Logits checked against a reference.
    pub logits_checked: usize,
    /// Smallest max-|Δ logit| between the first initial versions (how far apart two tasks'
    /// answers are: a wrong-task answer could not pass the score check).
    pub min_task_gap: f32,
    /// Task changes made.
    pub churn: Churn,
    /// Per-request latency.
    pub latency: Summary,
    /// Where the task files were served from (a directory, `s3://bucket/prefix`).
    pub store: String,
    /// Cold loads before the run: a task not in the cache loaded through the registry
    /// (ask the store, read, validate, admit), one at a time, for up to 50 tasks.
    pub cold_load: Summary,
    /// Seconds of load.
    pub wall_s: f64,
    /// Whether the deadline cut the run short.
    pub hit_deadline: bool,
    /// Cache budget.
    pub cache_budget: u64,
    /// Resident bytes of one loaded task.
    pub task_resident_bytes: u64,
    /// Resident bytes of the initial task set, all loaded.
    pub task_set_bytes: u64,
    /// Most cache bytes `/healthz` reported.
    pub cache_peak_bytes: u64,
    /// `/healthz` polls.
    pub cache_polls: usize,
    /// Polls reporting bytes over the budget.
    pub cache_over_budget: usize,
    /// Task loads (cache misses) and evictions during the run.
    pub cache_misses: u64,
    /// Evictions.
    pub cache_evictions: u64,
    /// Resident memory when the load started.
    pub rss_baseline: u64,
    /// Peak resident memory during the load.
    pub rss_peak: u64,
    /// How the peak was measured (`VmHWM` after a reset, or sampled `VmRSS`).
    pub rss_peak_source: &'static str,
    /// Allowed growth beyond the cache budget.
    pub rss_slack: u64,
}

impl StressReport {
    /// Everything that must not happen, in words (empty: the run passed).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let counts = [
            ("5xx answers", self.server_errors),
            ("requests without an answer", self.transport_errors),
            ("unexpected statuses", self.other_errors),
            ("answers from another task's version", self.wrong_task),
            ("answers naming no known version", self.unknown_version),
            ("answers from a stale version", self.stale_version),
            ("404s while the task existed", self.unexplained_404),
            ("answers with wrong scores", self.wrong_scores),
            ("failed task changes", self.churn.failed),
            ("cache polls over budget", self.cache_over_budget),
        ];
        for (what, n) in counts {
            if n > 0 {
                p.push(format!("{n} {what}"));
            }
        }
        if self.cache_peak_bytes > self.cache_budget {
            p.push(format!(
                "cache held {} bytes, budget {}",
                self.cache_peak_bytes, self.cache_budget
            ));
        }
        let growth = self.rss_peak.saturating_sub(self.rss_baseline);
        if growth > self.cache_budget + self.rss_slack {
            p.push(format!(
                "resident memory grew by {growth} bytes, more than the cache budget {} + slack {}",
                self.cache_budget, self.rss_slack
            ));
        }
        if self.cache_budget >= self.task_set_bytes {
            p.push("the cache holds the whole task set: nothing is tested".into());
        }
        p
    }

    /// Errors that must be zero: 5xx, no answer, unexpected statuses, wrong answers.
    pub fn errors(&self) -> usize {
        self.server_errors
            + self.transport_errors
            + self.other_errors
            + self.wrong_task
            + self.unknown_version
            + self.stale_version
            + self.unexplained_404
            + self.wrong_scores
    }
}

fn io(file: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Io {
        file: file.to_path_buf(),
        source,
    }
}

/// Runs the load test (builds its own async runtime; call from outside one).
pub fn run(spec: &StressSpec) -> Result<StressReport> {
    let s = setup(&spec.setup)?;
    let engine = s.engine.clone();
    let cold_load = cold_loads(&engine, &s.task_ids, 50)?;
    let tokenizer = s
        .tokenizer
        .clone()
        .ok_or_else(|| ServeError::Config("the load test needs a tokenizer".into()))?;
    let texts = random_texts(
        &tokenizer,
        spec.texts.max(1),
        spec.words,
        spec.setup.seed + 7,
    )?;
    // The initial versions, linked (the server's files get replaced by rename, never
    // rewritten, so a link keeps the original bytes).
    let mut versions = Versions::new(&spec.setup.work_dir.join("versions"))?;
    let mut initial = Vec::new();
    for (t, (id, path)) in s.task_ids.iter().zip(&s.task_files).enumerate() {
        let file = Versions::file_id(id, 0)?;
        let copy = versions.dir.join(file.file_name());
        if !copy.exists() && std::fs::hard_link(path, &copy).is_err() {
            std::fs::copy(path, &copy).map_err(io(&copy))?;
        }
        let sha = lrs_nn::files::sha256_file(&copy).map_err(lrs_nn::NnError::from)?;
        versions.add(sha.clone(), t, file);
        initial.push(Some(sha));
    }
    let mut task_ids = s.task_ids.clone();
    for j in 0..spec.extra_tasks {
        task_ids.push(format!("bench-x{j}"));
        initial.push(None);
    }
    let cfg = ServeConfig {
        max_batch_rows: spec.max_batch_rows,
        max_wait_ms: spec.max_wait_ms,
        max_inputs: spec.inputs_per_request.min(spec.max_batch_rows),
        max_tokens: spec.setup.max_tokens,
        queue_capacity: spec.clients.max(1) * 4,
        ..ServeConfig::default()
    };
    let state = AppState::with_engine(engine.clone(), &cfg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.worker_threads.max(1))
        .enable_all()
        .build()
        .map_err(io(Path::new("tokio runtime")))?;
    let metrics = engine.metrics().clone();
    let (misses0, evictions0) = (
        metrics.cache_misses.load(Ordering::Relaxed),
        metrics.cache_evictions.load(Ordering::Relaxed),
    );
    let churn_spec = ChurnSpec {
        ops: spec.churn_ops,
        delete_fraction: spec.delete_fraction,
        task_spec: s.task_spec,
    };
    let (records, churn, watch, wall, rss_baseline, hwm_reset, shared) =
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(io(Path::new("127.0.0.1:0")))?;
            let addr = listener
                .local_addr()
                .map_err(io(Path::new("127.0.0.1:0")))?;
            let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(lrs_serve::http::serve(listener, state, async move {
                let _ = stopped.await;
            }));
            let t0 = Instant::now();
            let shared = Arc::new(Shared {
                url: format!("http://{addr}"),
                t0,
                task_ids,
                texts: texts.clone(),
                inputs_per_request: spec.inputs_per_request.max(1),
                requests: spec.requests,
                deadline: t0 + spec.max_duration,
                seed: spec.setup.seed,
                next: AtomicUsize::new(0),
                completed: AtomicUsize::new(0),
                stop: AtomicBool::new(false),
                history: Mutex::new(History::new(initial)),
                versions: Mutex::new(versions),
            });
            let hwm_reset = reset_peak_rss();
            let rss_baseline = rss_bytes().unwrap_or(0);
            let monitor = tokio::spawn(clients::monitor(shared.clone(), Duration::from_millis(20)));
            let churner =
                tokio::spawn(clients::churner(shared.clone(), engine.clone(), churn_spec));
            let predictors: Vec<_> = (0..spec.clients.max(1))
                .map(|_| tokio::spawn(clients::predictor(shared.clone())))
                .collect();
            let mut records = Vec::with_capacity(spec.requests);
            for p in predictors {
                records.extend(p.await.map_err(|e| ServeError::Internal(e.to_string()))?);
            }
            let wall = t0.elapsed().as_secs_f64();
            shared.stop.store(true, Ordering::Relaxed);
            let churn = churner
                .await
                .map_err(|e| ServeError::Internal(e.to_string()))?;
            let watch: Watch = monitor
                .await
                .map_err(|e| ServeError::Internal(e.to_string()))?;
            let _ = stop_server.send(());
            server
                .await
                .map_err(|e| ServeError::Internal(e.to_string()))??;
            Ok::<_, ServeError>((records, churn, watch, wall, rss_baseline, hwm_reset, shared))
        })?;
    let (rss_peak, rss_peak_source) = match peak_rss_bytes() {
        Some(hwm) if hwm_reset => (hwm.max(watch.rss_peak_sampled), "VmHWM"),
        _ => (watch.rss_peak_sampled, "sampled VmRSS"),
    };
    let hit_deadline = records.len() < spec.requests;
    let shared = Arc::try_unwrap(shared)
        .map_err(|_| ServeError::Internal("a client outlived the run".into()))?;
    let history = shared
        .history
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let versions = shared
        .versions
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let rows = engine.tokenize(&texts)?;
    let reference = Reference::new(
        engine.model(),
        &s.shared_path,
        &versions,
        rows,
        spec.setup.max_tokens,
    )?;
    let mut report = StressReport {
        distinct_tasks: history.len(),
        requests: records.len(),
        statuses: BTreeMap::new(),
        server_errors: 0,
        transport_errors: 0,
        other_errors: 0,
        wrong_task: 0,
        unknown_version: 0,
        stale_version: 0,
        unexplained_404: 0,
        wrong_scores: 0,
        max_logit_error: 0.0,
        logits_checked: 0,
        min_task_gap: min_task_gap(&reference, &s.task_ids, 8)?,
        churn,
        latency: Summary::of(
            &records
                .iter()
                .map(|r| Duration::from_secs_f64((r.end - r.start).max(0.0)))
                .collect::<Vec<_>>(),
        ),
        store: engine.registry().store().location(),
        cold_load,
        wall_s: wall,
        hit_deadline,
        cache_budget: s.cache_bytes,
        task_resident_bytes: s.task_resident_bytes,
        task_set_bytes: s.task_resident_bytes * s.task_ids.len() as u64,
        cache_peak_bytes: watch.cache_peak_bytes,
        cache_polls: watch.polls,
        cache_over_budget: watch.over_budget,
        cache_misses: metrics.cache_misses.load(Ordering::Relaxed) - misses0,
        cache_evictions: metrics.cache_evictions.load(Ordering::Relaxed) - evictions0,
        rss_baseline,
        rss_peak,
        rss_peak_source,
        rss_slack: spec.rss_slack_bytes,
    };
    check(
        &mut report,
        &records,
        &history,
        &versions,
        &reference,
        spec.tolerance,
    )?;
    Ok(report)
}

/// Times the load of each of the first `n` tasks from the store into an empty cache slot
/// (each is unloaded after, so the run starts cold).
fn cold_loads(engine: &lrs_serve::Engine, task_ids: &[String], n: usize) -> Result<Summary> {
    let registry = engine.registry();
    let mut times = Vec::new();
    for id in task_ids.iter().take(n) {
        let id = lrs_serve::TaskId::parse(id)?;
        registry.unload(&id);
        let start = Instant::now();
        registry.load(&id)?;
        times.push(start.elapsed());
        registry.unload(&id);
    }
    Ok(Summary::of(&times))
}

/// Checks every record against the history and the reference logits.
fn check(
    report: &mut StressReport,
    records: &[Record],
    history: &History,
    versions: &Versions,
    reference: &Reference,
    tolerance: f32,
) -> Result<()> {
    let mut expected: HashMap<String, Vec<f32>> = HashMap::new();
    for r in records {
        let status = match &r.outcome {
            Outcome::Ok { .. } => 200,
            Outcome::Status(s) => *s,
            Outcome::Transport(_) => 0,
        };
        *report.statuses.entry(status).or_default() += 1;
        match &r.outcome {
            Outcome::Transport(_) => report.transport_errors += 1,
            Outcome::Status(s) if *s >= 500 => report.server_errors += 1,
            Outcome::Status(404) => {
                if history.check(r.task, None, r.start, r.end).is_err() {
                    report.unexplained_404 += 1;
                }
            }
            Outcome::Status(_) => report.other_errors += 1,
            Outcome::Ok { sha256, logits } => {
                let Some(sha) = sha256 else {
                    report.unknown_version += 1;
                    continue;
                };
                match history.check(r.task, Some(sha), r.start, r.end) {
                    Ok(()) => {}
                    Err(Mismatch::WrongTask) => report.wrong_task += 1,
                    Err(Mismatch::StaleVersion) => report.stale_version += 1,
                    Err(Mismatch::UnknownVersion | Mismatch::Unexplained404) => {
                        report.unknown_version += 1
                    }
                }
                let Some((_, file)) = versions.get(sha) else {
                    continue;
                };
                if !expected.contains_key(sha) {
                    expected.insert(sha.clone(), reference.logits(file)?);
                }
                let want = &expected[sha];
                let mut wrong = logits.len() != r.texts.len();
                for (&text, &got) in r.texts.iter().zip(logits) {
                    let w = want[text];
                    let err = (got - w).abs();
                    report.max_logit_error = report.max_logit_error.max(err);
                    report.logits_checked += 1;
                    wrong |= err.is_nan() || err > tolerance * (1.0 + w.abs());
                }
                report.wrong_scores += usize::from(wrong);
            }
        }
    }
    Ok(())
}

/// Smallest over pairs of the first `n` initial versions of max-|Δ logit| across the texts.
fn min_task_gap(reference: &Reference, task_ids: &[String], n: usize) -> Result<f32> {
    let logits = task_ids
        .iter()
        .take(n)
        .map(|id| reference.logits(&Versions::file_id(id, 0)?))
        .collect::<Result<Vec<_>>>()?;
    let mut gap = f32::INFINITY;
    for (i, a) in logits.iter().enumerate() {
        for b in &logits[i + 1..] {
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            gap = gap.min(d);
        }
    }
    Ok(gap)
}
