//! `lrs predict`: score or embed texts for one task of a run without starting a server, through
//! the serving engine itself (`lrs_serve::Engine::forward`), so the numbers are the ones
//! `lrs serve` returns for the same run.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use clap::Args;
use lrs_serve::engine::sigmoid;
use lrs_serve::{Engine, Metrics, Row, ServeConfig, TaskId};

use super::run_files::Run;

/// Arguments of `lrs predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// The task (`tasks/<ID>.safetensors`); without it, the shared model alone.
    #[arg(long)]
    pub task: Option<String>,
    /// A text to score (repeat for several).
    #[arg(long = "text", required = true)]
    pub texts: Vec<String>,
    /// Print the mean-pooled embedding of each text (not normalized) instead of its score.
    #[arg(long)]
    pub embeddings: bool,
    /// Print one JSON object per text (`text`, `logit`, `score`, and `embedding` with
    /// `--embeddings`).
    #[arg(long)]
    pub json: bool,
    /// Most tokens per text, special tokens included (`lrs serve`'s `max_tokens`).
    #[arg(long)]
    pub max_tokens: Option<usize>,
}

/// Runs `lrs predict`.
pub fn run(a: PredictArgs) -> anyhow::Result<()> {
    let run = Run::open(&a.run)?;
    let task = match &a.task {
        Some(id) => {
            let parsed = TaskId::parse(id).map_err(|e| anyhow!("{e}"))?;
            run.task_path(id)?;
            Some(parsed)
        }
        None => None,
    };
    let defaults = ServeConfig::default();
    let cfg = ServeConfig {
        model: run.config.model.clone(),
        shared: run.dir.shared_path(),
        tasks_dir: run.dir.tasks_dir(),
        max_tokens: a.max_tokens.unwrap_or(defaults.max_tokens),
        ..defaults
    };
    let engine = Engine::open(&cfg, Arc::new(Metrics::default())).map_err(|e| anyhow!("{e}"))?;
    let loaded = engine.resolve(task.as_ref()).map_err(|e| anyhow!("{e}"))?;
    let tokens = engine.tokenize(&a.texts).map_err(|e| anyhow!("{e}"))?;
    engine.check_tokens(&tokens).map_err(|e| anyhow!("{e}"))?;
    let mut logits = Vec::with_capacity(tokens.len());
    let mut embeddings = Vec::new();
    for chunk in tokens.chunks(cfg.max_batch_rows) {
        let rows: Vec<Row> = chunk
            .iter()
            .map(|t| Row {
                task: loaded.as_deref(),
                tokens: t,
            })
            .collect();
        let out = engine
            .forward(&rows, a.embeddings)
            .map_err(|e| anyhow!("{e}"))?;
        logits.extend(out.logits);
        embeddings.extend(out.embeddings.unwrap_or_default());
    }
    if logits.len() != a.texts.len() {
        bail!(
            "internal error: {} results for {} texts",
            logits.len(),
            a.texts.len()
        );
    }
    for (i, (text, z)) in a.texts.iter().zip(&logits).enumerate() {
        let score = sigmoid(*z);
        if a.json {
            let mut line = serde_json::json!({"text": text, "logit": z, "score": score});
            if a.embeddings {
                line["embedding"] = serde_json::json!(embeddings[i]);
            }
            println!("{line}");
        } else if a.embeddings {
            let dims: Vec<String> = embeddings[i].iter().map(|v| format!("{v}")).collect();
            println!("{}", dims.join(" "));
        } else {
            println!("{score:.6}\t{text}");
        }
    }
    Ok(())
}
