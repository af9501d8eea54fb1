//! `lrs bench load`: the load test at full size against an in-process server on
//! loopback — concurrent clients over ≥ 1 000 distinct tasks while tasks are uploaded,
//! replaced and deleted, with a task cache smaller than the task set. Every answer is checked
//! against the version of the task it names; prints requests, errors by status, wrong
//! answers, p50/p99 latency and peak resident memory vs the cache budget, and fails if any
//! answer was wrong or any 5xx came back.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lrs_bench::setup::SetupSpec;
use lrs_bench::stress::{run as run_stress, StressReport, StressSpec};
use lrs_bench::synth::TaskSpec;
use lrs_serve::ByteSize;

/// Arguments of `lrs bench load`.
#[derive(Debug, Args)]
pub struct BenchLoadArgs {
    /// Base checkpoint: `tiny` (a random tiny BERT written to the work directory), a
    /// directory, or a hub id (e.g. sentence-transformers/all-MiniLM-L6-v2).
    #[arg(long, default_value = "tiny")]
    pub model: String,
    /// An existing shared file for that model (default: a random one of rank `--rank`).
    #[arg(long)]
    pub shared: Option<PathBuf>,
    /// Rank of the random shared file.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// Density of each task's sparse part (default 0.1 for `tiny`, 0.01 otherwise).
    #[arg(long)]
    pub density: Option<f64>,
    /// Task files at start.
    #[arg(long, default_value_t = 1000)]
    pub tasks: usize,
    /// Further task ids, absent at start, uploaded during the run.
    #[arg(long, default_value_t = 100)]
    pub extra_tasks: usize,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Predict requests in all.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Inputs per request.
    #[arg(long, default_value_t = 2)]
    pub inputs_per_request: usize,
    /// Texts in the pool requests draw from.
    #[arg(long, default_value_t = 32)]
    pub texts: usize,
    /// Words per text.
    #[arg(long, default_value_t = 8)]
    pub words: usize,
    /// Uploads, replacements and deletions during the run.
    #[arg(long, default_value_t = 1000)]
    pub churn_ops: usize,
    /// Chance that a change of an existing task deletes it.
    #[arg(long, default_value_t = 0.3)]
    pub delete_fraction: f64,
    /// Cache budget as a fraction of the initial task set's resident bytes.
    #[arg(long, default_value_t = 0.25)]
    pub cache_fraction: f64,
    /// Stop sending requests after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub max_seconds: u64,
    /// Largest allowed |logit − reference| (plus this times |reference|).
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f32,
    /// Resident memory growth allowed beyond the cache budget.
    #[arg(long, default_value = "256MiB")]
    pub rss_slack: ByteSize,
    /// Server: most rows per forward pass.
    #[arg(long, default_value_t = 128)]
    pub max_batch_rows: usize,
    /// Server: longest wait for a batch, ms.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Most tokens per input.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Async runtime threads (server and clients).
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// glibc malloc arenas for the process (0: glibc's default), as `lrs serve` sets them.
    #[arg(long, default_value_t = lrs_serve::ServeConfig::default().malloc_arenas)]
    pub malloc_arenas: usize,
    /// Seed of everything random.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory for the generated files (default: a temporary one, removed after).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Serve the task files from an object store, `s3://bucket/prefix` (uploaded there at
    /// start; endpoint and credentials from the AWS_* environment variables) instead of a
    /// local directory. Task files of other ids under the prefix are deleted first.
    #[arg(long)]
    pub store: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the load test.
pub fn run(a: BenchLoadArgs) -> anyhow::Result<()> {
    crate::allocator::limit_malloc_arenas(a.malloc_arenas);
    let tmp = tempfile::tempdir()?;
    let work = a
        .work_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let tiny = a.model == "tiny";
    let model = if tiny {
        let dir = work.join("tiny-base");
        lrs_bench::testing::write_tiny_checkpoint(&dir).context("writing the tiny checkpoint")?;
        dir.display().to_string()
    } else {
        a.model.clone()
    };
    let task_spec = TaskSpec {
        density: a.density.unwrap_or(if tiny { 0.1 } else { 0.01 }),
        value_scale: if tiny { 0.5 } else { 0.05 },
        ..TaskSpec::default()
    };
    let spec = StressSpec {
        setup: SetupSpec {
            model,
            shared: a.shared.clone(),
            rank: a.rank,
            target_modules: None,
            task_spec,
            tasks: a.tasks,
            work_dir: work.join("run"),
            cache_bytes: 0,
            cache_fraction: Some(a.cache_fraction),
            max_tokens: a.max_tokens,
            seed: a.seed,
            store: a
                .store
                .as_deref()
                .map(|s| {
                    lrs_serve::store::Location::parse(s)
                        .map(|l| (l, lrs_serve::store::StoreOptions::default()))
                })
                .transpose()?,
        },
        extra_tasks: a.extra_tasks,
        clients: a.clients,
        requests: a.requests,
        inputs_per_request: a.inputs_per_request,
        texts: a.texts,
        words: a.words,
        churn_ops: a.churn_ops,
        delete_fraction: a.delete_fraction,
        max_duration: Duration::from_secs(a.max_seconds),
        tolerance: a.tolerance,
        rss_slack_bytes: a.rss_slack.0,
        max_batch_rows: a.max_batch_rows,
        max_wait_ms: a.max_wait_ms,
        worker_threads: a.threads,
    };
    let start = std::time::Instant::now();
    let report = run_stress(&spec).context("running the load test")?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&a, &report, start.elapsed().as_secs_f64());
    }
    let problems = report.problems();
    if !problems.is_empty() {
        anyhow::bail!("load test failed: {}", problems.join("; "));
    }
    Ok(())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn print_report(a: &BenchLoadArgs, r: &StressReport, total_s: f64) {
    let c = &r.churn;
    println!(
        "# lrs bench load: {} — {} clients, {} distinct tasks ({} at start), {} inputs/request",
        a.model, a.clients, r.distinct_tasks, a.tasks, a.inputs_per_request
    );
    println!(
        "requests        {} in {:.1} s ({:.0} req/s){}; total run {:.1} s",
        r.requests,
        r.wall_s,
        r.requests as f64 / r.wall_s.max(1e-9),
        if r.hit_deadline {
            " — stopped at the deadline"
        } else {
            ""
        },
        total_s
    );
    let statuses: Vec<String> = r
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    println!("statuses        {}  (0 = no answer)", statuses.join(", "));
    println!(
        "errors          {} (5xx {}, no answer {}, other {})",
        r.errors(),
        r.server_errors,
        r.transport_errors,
        r.other_errors
    );
    println!(
        "wrong answers   wrong task {}, unknown version {}, stale version {}, unexplained 404 {}, wrong scores {} ({} logits checked, max |Δ| {:.2e}, min gap between tasks {:.3})",
        r.wrong_task,
        r.unknown_version,
        r.stale_version,
        r.unexplained_404,
        r.wrong_scores,
        r.logits_checked,
        r.max_logit_error,
        r.min_task_gap
    );
    println!(
        "task changes    {} uploads, {} replacements, {} deletes, {} failed",
        c.uploads, c.replacements, c.deletes, c.failed
    );
    println!(
        "latency         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        r.latency.p50_ms, r.latency.p99_ms, r.latency.max_ms
    );
    println!(
        "cold load       {} tasks from {}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        r.cold_load.n, r.store, r.cold_load.p50_ms, r.cold_load.p99_ms, r.cold_load.max_ms
    );
    println!(
        "cache           budget {:.1} MiB = {:.0}% of the task set ({:.1} MiB, {:.0} KiB/task); peak held {:.1} MiB; {} misses, {} evictions",
        mib(r.cache_budget),
        100.0 * r.cache_budget as f64 / r.task_set_bytes.max(1) as f64,
        mib(r.task_set_bytes),
        r.task_resident_bytes as f64 / 1024.0,
        mib(r.cache_peak_bytes),
        r.cache_misses,
        r.cache_evictions
    );
    println!(
        "memory          RSS {:.1} MiB at start, peak {:.1} MiB ({}): grew {:.1} MiB vs cache budget {:.1} MiB + slack {:.1} MiB",
        mib(r.rss_baseline),
        mib(r.rss_peak),
        r.rss_peak_source,
        mib(r.rss_peak.saturating_sub(r.rss_baseline)),
        mib(r.cache_budget),
        mib(r.rss_slack)
    );
}
