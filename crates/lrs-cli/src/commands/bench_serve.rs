//! `lrs bench serve`: throughput and p50/p99 latency of base-only, one-task and N-distinct-task
//! batches; task load time vs task files on disk and loaded; bytes per loaded task. In process
//! by default, or against a running `lrs serve` with `--url`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lrs_bench::setup::{setup, token_rows, SetupSpec};
use lrs_bench::synth::TaskSpec;
use lrs_bench::{http_client, load, texts, throughput};
use lrs_serve::TaskId;
use serde_json::json;

/// Arguments of `lrs bench serve`.
#[derive(Debug, Args)]
pub struct BenchServeArgs {
    /// Base checkpoint: a directory or a hub id.
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    pub model: String,
    /// Rank of the random shared file (default BERT target modules).
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// Module-name patterns the random shared file adapts (PEFT convention, e.g.
    /// `query,value`; default: query, value, intermediate.dense and output.dense of every
    /// layer).
    #[arg(long, value_delimiter = ',')]
    pub target_modules: Option<Vec<String>>,
    /// Density of each task's sparse part per adapted layer.
    #[arg(long, default_value_t = 0.01)]
    pub density: f64,
    /// Distinct tasks mixed in each batch (0 = base-only).
    #[arg(long, value_delimiter = ',', default_values_t = vec![0, 1, 10, 100, 1000])]
    pub tasks: Vec<usize>,
    /// Rows per batch (single-input requests submitted together).
    #[arg(long, default_value_t = 1000)]
    pub rows: usize,
    /// Words per input text.
    #[arg(long, default_value_t = 12)]
    pub words: usize,
    /// Measured rounds per scenario (one batch each).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Unmeasured rounds first.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Task files on disk for the load-time table.
    #[arg(long, value_delimiter = ',', default_values_t = vec![10, 1000, 10_000])]
    pub on_disk: Vec<usize>,
    /// Most tasks loaded per load-time run.
    #[arg(long, default_value_t = 1000)]
    pub max_loaded: usize,
    /// Skip the throughput table.
    #[arg(long)]
    pub skip_throughput: bool,
    /// Skip the load-time table.
    #[arg(long)]
    pub skip_load: bool,
    /// Directory for the generated files (default: a temporary one, removed after).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Benchmark a running server instead: `http://host:port`. Task files are generated for
    /// `--shared` (the server's shared file) and uploaded with `PUT /v1/tasks/{id}`.
    #[arg(long)]
    pub url: Option<String>,
    /// The server's shared file (with `--url`).
    #[arg(long)]
    pub shared: Option<PathBuf>,
    /// Concurrent connections (with `--url`).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Requests per scenario (with `--url`).
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Inputs per request (with `--url`).
    #[arg(long, default_value_t = 8)]
    pub inputs_per_request: usize,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
pub fn run(a: BenchServeArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let work = a
        .work_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let n_tasks = a.tasks.iter().copied().max().unwrap_or(0).max(1);
    if a.url.is_some() && a.shared.is_none() {
        anyhow::bail!("--url needs --shared: the server's shared file, to make task files for it");
    }
    let spec = SetupSpec {
        model: a.model.clone(),
        shared: a.shared.clone(),
        rank: a.rank,
        target_modules: a.target_modules.clone(),
        task_spec: TaskSpec {
            density: a.density,
            ..TaskSpec::default()
        },
        tasks: n_tasks,
        work_dir: work.clone(),
        cache_bytes: u64::MAX,
        cache_fraction: None,
        max_tokens: 512,
        seed: 42,
        store: None,
    };
    let t0 = std::time::Instant::now();
    let s = setup(&spec).context("setting up the benchmark")?;
    let texts = match &s.tokenizer {
        Some(t) => texts::random_texts(t, a.rows.max(64), a.words, 7)?,
        None => Vec::new(),
    };
    if !a.json {
        println!(
            "# {}: rank {}, density {}, {} task files of {:.0} bytes (mean), setup {:.1}s",
            a.model,
            s.engine.shared().rank,
            a.density,
            n_tasks,
            s.task_file_bytes,
            t0.elapsed().as_secs_f64()
        );
    }
    if let Some(url) = &a.url {
        return bench_http(&a, url, &s, &texts);
    }
    if !a.skip_throughput {
        bench_throughput(&a, &s, &texts)?;
    }
    if !a.skip_load {
        bench_load(&a, &s, &work)?;
    }
    Ok(())
}

fn bench_throughput(
    a: &BenchServeArgs,
    s: &lrs_bench::setup::Setup,
    texts: &[String],
) -> anyhow::Result<()> {
    let inputs = token_rows(&s.engine, texts, a.rows, a.words + 2)?;
    let mean_tokens = inputs.iter().map(Vec::len).sum::<usize>() as f64 / inputs.len() as f64;
    if !a.json {
        println!(
            "\n## throughput: {} single-input requests per batch, {:.1} tokens per input (mean)",
            a.rows, mean_tokens
        );
        println!(
            "{:>12} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "scenario",
            "tasks",
            "rows/s",
            "vs_base",
            "rows/cpu_s",
            "cpu_vs",
            "batch",
            "p50_ms",
            "p99_ms"
        );
    }
    let mut base_rate = None;
    let mut base_cpu_rate = None;
    for &n in &a.tasks {
        let tasks: Vec<_> = if n == 0 {
            vec![None]
        } else {
            s.task_ids[..n.min(s.task_ids.len())]
                .iter()
                .map(|id| Ok(Some(s.engine.registry().get(&TaskId::parse(id)?)?)))
                .collect::<lrs_serve::Result<_>>()?
        };
        let label = match n {
            0 => "base".to_string(),
            1 => "1 task".to_string(),
            n => format!("{n} tasks"),
        };
        let r = throughput::run(
            &s.engine, &label, &tasks, &inputs, a.rows, a.rounds, a.warmup,
        )?;
        if n == 0 {
            base_rate = Some(r.rows_per_s);
            base_cpu_rate = Some(r.rows_per_cpu_s);
        }
        let ratio = base_rate.map(|b| r.rows_per_s / b);
        let cpu_ratio = base_cpu_rate.map(|b| r.rows_per_cpu_s / b);
        if a.json {
            println!(
                "{}",
                json!({"bench": "throughput", "result": r, "vs_base": ratio, "cpu_vs_base": cpu_ratio, "mean_tokens": mean_tokens})
            );
        } else {
            println!(
                "{:>12} {:>8} {:>10.1} {:>10} {:>10.1} {:>10} {:>10.1} {:>10.1} {:>10.1}",
                r.label,
                r.distinct_tasks,
                r.rows_per_s,
                ratio
                    .map(|x| format!("{x:.3}"))
                    .unwrap_or_else(|| "-".into()),
                r.rows_per_cpu_s,
                cpu_ratio
                    .map(|x| format!("{x:.3}"))
                    .unwrap_or_else(|| "-".into()),
                r.mean_batch_rows,
                r.latency.p50_ms,
                r.latency.p99_ms
            );
        }
    }
    Ok(())
}

fn bench_load(
    a: &BenchServeArgs,
    s: &lrs_bench::setup::Setup,
    work: &std::path::Path,
) -> anyhow::Result<()> {
    let bins = [0, 1, 10, 100, 1000, 10_000, 100_000];
    if !a.json {
        println!("\n## task load time (cold cache; files are hard links to the generated ones)");
        println!(
            "{:>8} {:>16} {:>6} {:>9} {:>9} {:>9}",
            "on_disk", "loaded_before", "loads", "p50_ms", "p99_ms", "mean_ms"
        );
    }
    let mut memory = Vec::new();
    for &d in &a.on_disk {
        let dir = work.join(format!("load-{d}"));
        load::fill_registry(&dir, &s.task_files, d)?;
        let (rows, mem) = load::load_times(&s.engine, &dir, d, a.max_loaded, &bins)?;
        for r in rows {
            if a.json {
                println!("{}", json!({"bench": "load", "result": r}));
            } else {
                println!(
                    "{:>8} {:>16} {:>6} {:>9.3} {:>9.3} {:>9.3}",
                    r.on_disk,
                    format!("{}..{}", r.loaded_from, r.loaded_to),
                    r.latency.n,
                    r.latency.p50_ms,
                    r.latency.p99_ms,
                    r.latency.mean_ms
                );
            }
        }
        memory.push(mem);
        if a.work_dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if a.json {
        for m in &memory {
            println!("{}", json!({"bench": "memory", "result": m}));
        }
    } else {
        println!("\n## memory per loaded task");
        println!(
            "{:>8} {:>18} {:>18} {:>14}",
            "loaded", "cache_bytes/task", "rss_bytes/task", "file_bytes"
        );
        for m in &memory {
            println!(
                "{:>8} {:>18.0} {:>18} {:>14.0}",
                m.loaded,
                m.cache_bytes_per_task,
                m.rss_bytes_per_task
                    .map(|b| format!("{b:.0}"))
                    .unwrap_or_else(|| "-".into()),
                s.task_file_bytes
            );
        }
    }
    Ok(())
}

fn bench_http(
    a: &BenchServeArgs,
    url: &str,
    s: &lrs_bench::setup::Setup,
    texts: &[String],
) -> anyhow::Result<()> {
    if texts.is_empty() {
        anyhow::bail!("the checkpoint has no tokenizer.json to make input texts with");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let files: Vec<(String, PathBuf)> = s
        .task_ids
        .iter()
        .cloned()
        .zip(s.task_files.iter().cloned())
        .collect();
    runtime.block_on(async {
        let mut client = http_client::HttpClient::connect(url).await?;
        for (id, path) in &files {
            let bytes = std::fs::read(path)?;
            let (status, body) = client
                .send(
                    "PUT",
                    &format!("/v1/tasks/{id}"),
                    "application/octet-stream",
                    bytes,
                )
                .await?;
            if status != 200 {
                anyhow::bail!("upload {id}: {status} {}", String::from_utf8_lossy(&body));
            }
        }
        if !a.json {
            println!(
                "\n## HTTP {url}: {} requests of {} inputs over {} connections",
                a.requests, a.inputs_per_request, a.concurrency
            );
            println!(
                "{:>12} {:>8} {:>10} {:>8} {:>10} {:>10}",
                "scenario", "tasks", "rows/s", "failed", "p50_ms", "p99_ms"
            );
        }
        for &n in &a.tasks {
            let tasks: Vec<Option<String>> = if n == 0 {
                vec![None]
            } else {
                s.task_ids[..n.min(s.task_ids.len())]
                    .iter()
                    .cloned()
                    .map(Some)
                    .collect()
            };
            let label = if n == 0 {
                "base".to_string()
            } else {
                format!("{n} tasks")
            };
            let r = http_client::run(
                url,
                &label,
                &tasks,
                texts,
                a.inputs_per_request,
                a.requests,
                a.concurrency,
            )
            .await?;
            if a.json {
                println!("{}", json!({"bench": "http", "result": r}));
            } else {
                println!(
                    "{:>12} {:>8} {:>10.1} {:>8} {:>10.1} {:>10.1}",
                    r.label,
                    r.distinct_tasks,
                    r.rows_per_s,
                    r.failed,
                    r.latency.p50_ms,
                    r.latency.p99_ms
                );
            }
        }
        Ok(())
    })?;
    Ok(())
}
