//! `lrs bench train`: rows per second of one shared-phase training step (forward, backward,
//! AdamW) of `lrs train`, optionally beside the same step in PyTorch + PEFT
//! (`scripts/reference/bench_train_pytorch.py`), the two run alternately.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use lrs_train::run::{build_trainer, load_run_data, resolve_model};
use lrs_train::trainer::Method;
use lrs_train::TrainConfig;
use serde_json::json;

/// Arguments of `lrs bench train`.
#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    /// Base checkpoint: a directory or a hub id.
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    pub model: String,
    /// Module-name patterns to adapt (PEFT convention).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["query".to_string(), "value".to_string()])]
    pub target_modules: Vec<String>,
    /// Rank of the shared factor (and of PyTorch's LoRA).
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// Rows per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed steps per run.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed steps before the first run of each side.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Runs per side, alternating; the medians are compared.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// MovieLens users whose training rows the batches are drawn from.
    #[arg(long, default_value_t = 100)]
    pub tasks: usize,
    /// Training rows per user.
    #[arg(long, default_value_t = 20)]
    pub shots: usize,
    /// Also time PyTorch + PEFT with this Python (it needs torch, transformers and peft;
    /// `scripts/bench-train-vs-pytorch.sh` makes such a venv).
    #[arg(long)]
    pub pytorch: Option<PathBuf>,
    /// The PyTorch side's script.
    #[arg(long, default_value = "scripts/reference/bench_train_pytorch.py")]
    pub pytorch_script: PathBuf,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// Runs `lrs bench train`.
pub fn run(a: BenchTrainArgs) -> anyhow::Result<()> {
    if a.batch == 0 || a.steps == 0 || a.repeats == 0 {
        bail!("--batch, --steps and --repeats must be at least 1");
    }
    let mut cfg = TrainConfig {
        model: a.model.clone(),
        method: Method::SharedOnly,
        rank: a.rank,
        scale: 1.0,
        target_modules: a.target_modules.clone(),
        task_head: false,
        ..TrainConfig::default()
    };
    cfg.data.shots = a.shots;
    cfg.data.max_tasks = a.tasks;
    cfg.shared.batch_size = a.batch;
    cfg.shared.steps = a.warmup.max(1);
    cfg.validate()?;
    let run_data = load_run_data(&cfg.data)?;
    let (ckpt, tokenizer) = resolve_model(&cfg)?;

    let rows_file = match &a.pytorch {
        None => None,
        Some(_) => {
            let (texts, labels): (Vec<&str>, Vec<f32>) = run_data
                .splits
                .iter()
                .flat_map(|s| s.train.iter().map(|e| (e.text.as_str(), e.label)))
                .unzip();
            let file = tempfile::Builder::new()
                .prefix("lrs-bench-train-")
                .suffix(".json")
                .tempfile()?;
            serde_json::to_writer(&file, &json!({"texts": texts, "labels": labels}))?;
            Some(file)
        }
    };

    // Warm-up: the first steps allocate and fault in what later steps reuse.
    let (mut warm, data) = build_trainer(&cfg, &ckpt, &tokenizer, &run_data.splits)?;
    warm.shared_phase(&data)?;
    drop(warm);
    cfg.shared.steps = a.steps;
    let (mut trainer, data) = build_trainer(&cfg, &ckpt, &tokenizer, &run_data.splits)?;
    let train_rows: usize = data.tasks.iter().map(|t| t.train.len()).sum();
    let model_dir = ckpt
        .config
        .parent()
        .context("the checkpoint's config.json has no directory")?
        .to_path_buf();
    if !a.json {
        println!(
            "{} with U, V (rank {}) on {:?}: {} adapted modules; batch {}, {} timed steps per run, \
             rows from {} MovieLens users ({} rows)",
            cfg.model,
            a.rank,
            a.target_modules,
            trainer.modules().len(),
            a.batch,
            a.steps,
            data.len(),
            train_rows
        );
    }

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for rep in 0..a.repeats {
        let start = Instant::now();
        trainer.shared_phase(&data)?;
        let secs = start.elapsed().as_secs_f64();
        let rows_s = (a.steps * a.batch) as f64 / secs;
        ours.push(rows_s);
        report(a.json, "lrs", rep, secs, rows_s);
        if let (Some(py), Some(rows)) = (&a.pytorch, &rows_file) {
            let (secs, rows_s) = pytorch_run(&a, py, rows.path(), &model_dir, &cfg)?;
            theirs.push(rows_s);
            report(a.json, "pytorch", rep, secs, rows_s);
        }
    }
    let ours_median = median(&mut ours);
    let theirs_median = (!theirs.is_empty()).then(|| median(&mut theirs));
    if a.json {
        println!(
            "{}",
            json!({"summary": true, "lrs_rows_per_s": ours_median,
                   "pytorch_rows_per_s": theirs_median,
                   "ratio": theirs_median.map(|t| ours_median / t)})
        );
    } else {
        println!(
            "median lrs: {ours_median:.1} rows/s ({:.2} ms/row)",
            1e3 / ours_median
        );
        if let Some(t) = theirs_median {
            println!("median pytorch: {t:.1} rows/s ({:.2} ms/row)", 1e3 / t);
            println!("ratio lrs / pytorch: {:.3}", ours_median / t);
        }
    }
    Ok(())
}

fn report(json: bool, side: &str, rep: usize, secs: f64, rows_s: f64) {
    if json {
        println!(
            "{}",
            json!({"side": side, "run": rep, "seconds": secs, "rows_per_s": rows_s})
        );
    } else {
        println!(
            "run {rep} {side:>8}: {secs:7.2} s  {rows_s:7.1} rows/s  {:6.2} ms/row",
            1e3 / rows_s
        );
    }
}

/// One PyTorch run; its own warm-up steps are untimed.
fn pytorch_run(
    a: &BenchTrainArgs,
    python: &PathBuf,
    rows: &std::path::Path,
    model_dir: &std::path::Path,
    cfg: &TrainConfig,
) -> anyhow::Result<(f64, f64)> {
    let out = Command::new(python)
        .arg(&a.pytorch_script)
        .arg("--model")
        .arg(model_dir)
        .arg("--rows")
        .arg(rows)
        .args(["--batch", &a.batch.to_string()])
        .args(["--steps", &a.steps.to_string()])
        .args(["--warmup", &a.warmup.to_string()])
        .args(["--rank", &a.rank.to_string()])
        .args(["--targets", &a.target_modules.join(",")])
        .args(["--max-len", &cfg.max_len.to_string()])
        .args(["--lr", &cfg.shared.lr.to_string()])
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            python.display(),
            a.pytorch_script.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the PyTorch script printed no JSON line")?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    let secs = v["seconds"]
        .as_f64()
        .context("no `seconds` in its output")?;
    let rows_s = v["rows_per_s"]
        .as_f64()
        .context("no `rows_per_s` in its output")?;
    Ok((secs, rows_s))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
