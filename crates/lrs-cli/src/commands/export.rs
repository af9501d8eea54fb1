//! `lrs export peft|merged`: a run's shared factor or one task as a PEFT LoRA adapter
//! directory, or one task merged into a plain Hugging Face model directory.
//!
//! A task's sparse part has no LoRA form: `lrs export peft --task` refuses such a task (the
//! adapter would not reproduce it) and points to `lrs export merged`, which is exact;
//! `--drop-sparse` exports the low-rank part alone, with a warning. The scoring head is not part
//! of either format: both write it as `head.safetensors` beside the model files.

use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use lrs_nn::export::staged_dir::refuse_existing;
use lrs_nn::export::{combined_head, export_merged_dir, export_peft_dir, ExportExtras};
use lrs_nn::TaskDelta;

use super::run_files::{Run, RunModel};

/// `lrs export` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// A PEFT LoRA adapter directory: the shared factor, or with --task that task's low-rank
    /// model (its core folded in: lora_B = s·U·diag(w)).
    Peft(PeftArgs),
    /// One task merged into a complete Hugging Face model directory (config, weights under the
    /// base's key names, tokenizer and sentence-transformers files).
    Merged(MergedArgs),
}

/// Arguments of `lrs export peft`.
#[derive(Debug, Args)]
pub struct PeftArgs {
    /// The run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// Fold this task's core (and per-task LoRA parts) into the adapter.
    #[arg(long)]
    pub task: Option<String>,
    /// Export a task whose sparse part the adapter cannot hold, without that part.
    #[arg(long, requires = "task")]
    pub drop_sparse: bool,
    /// The adapter directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `lrs export merged`.
#[derive(Debug, Args)]
pub struct MergedArgs {
    /// The run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// The task to merge.
    #[arg(long, required_unless_present = "all_tasks")]
    pub task: Option<String>,
    /// Refused: one full model per task (the size is printed); the task files are that export.
    #[arg(long, conflicts_with = "task")]
    pub all_tasks: bool,
    /// The model directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `lrs export`.
pub fn run(cmd: ExportCommand) -> anyhow::Result<()> {
    match cmd {
        ExportCommand::Peft(a) => peft(a),
        ExportCommand::Merged(a) => merged(a),
    }
}

/// One task of a run, loaded.
struct RunTask {
    id: String,
    path: PathBuf,
    delta: TaskDelta,
}

/// The run's model and the task (if any), after the checks that need no model.
fn open(
    run: &std::path::Path,
    task: Option<&str>,
    out: &std::path::Path,
) -> anyhow::Result<(RunModel, Option<RunTask>)> {
    refuse_existing(out).map_err(|e| anyhow!("{e}"))?;
    let run = Run::open(run)?;
    let path = task.map(|id| run.task_path(id)).transpose()?;
    let model = run.model()?;
    let task = match (task, path) {
        (Some(id), Some(path)) => Some(RunTask {
            delta: model.task(id, &path)?,
            id: id.to_string(),
            path,
        }),
        _ => None,
    };
    Ok((model, task))
}

/// The head and `lrs_export.json` of an export.
fn extras(
    kind: &str,
    m: &RunModel,
    task: Option<&RunTask>,
    dropped_nnz: usize,
) -> anyhow::Result<ExportExtras> {
    let hidden = m.model.config().hidden_size;
    let head =
        combined_head(&m.shared, task.map(|t| &t.delta), hidden).map_err(|e| anyhow!("{e}"))?;
    let task_sha = task
        .map(|t| lrs_nn::files::sha256_file(&t.path))
        .transpose()
        .map_err(|e| anyhow!("{e}"))?;
    let provenance = serde_json::json!({
        "kind": kind,
        "task": task.map(|t| &t.id),
        "task_sha256": task_sha,
        "base_model": m.shared.base_model,
        "base_sha256": m.shared.base_sha256,
        "shared_sha256": m.shared.sha256,
        "pooling": "mean",
        "head": head.is_some().then_some(
            "head.safetensors: score = sigmoid(mean_pool(last_hidden_state) · weightᵀ + bias)"),
        "dropped_sparse_nnz": dropped_nnz,
        "lrs_version": env!("CARGO_PKG_VERSION"),
    });
    Ok(ExportExtras { head, provenance })
}

fn peft(a: PeftArgs) -> anyhow::Result<()> {
    let (m, task) = open(&a.run, a.task.as_deref(), &a.out)?;
    let nnz = task.as_ref().map_or(0, |t| t.delta.nnz());
    if let Some(RunTask { id, delta, .. }) = task.as_ref().filter(|_| nnz > 0) {
        let modules = delta.layers.values().filter(|l| l.nnz() > 0).count();
        let what = format!(
            "task {id:?} has a sparse part ({nnz} non-zeros in {modules} modules) that a LoRA \
             adapter cannot hold"
        );
        if !a.drop_sparse {
            bail!(
                "{what}, so the adapter would not reproduce the task: `lrs export merged --run {} \
                 --task {id} --out DIR` writes the exact model (or pass --drop-sparse to export \
                 the low-rank part alone)",
                a.run.display()
            );
        }
        eprintln!("warning: {what}; exporting the low-rank part alone (--drop-sparse)");
    }
    let extras = extras("peft", &m, task.as_ref(), nnz)?;
    let (out, adapter) =
        export_peft_dir(&m.shared, task.as_ref().map(|t| &t.delta), &extras, &a.out)
            .map_err(|e| anyhow!("{e}"))?;
    println!(
        "wrote {}: PEFT LoRA adapter, {} modules, r = {}{}",
        out.display(),
        adapter.tensors.len() / 2,
        m.shared.rank,
        match &task {
            Some(t) => format!(", task {}", t.id),
            None => " (shared factor)".into(),
        }
    );
    if extras.head.is_some() {
        println!("  head.safetensors: the scoring head (PEFT adapters hold no head)");
    }
    Ok(())
}

fn merged(a: MergedArgs) -> anyhow::Result<()> {
    if a.all_tasks {
        return refuse_all_tasks(&a);
    }
    let (m, task) = open(&a.run, a.task.as_deref(), &a.out)?;
    let extras = extras("merged", &m, task.as_ref(), 0)?;
    let out = export_merged_dir(
        &m.ckpt,
        &m.shared,
        task.as_ref().map(|t| &t.delta),
        &extras,
        &a.out,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let bytes = std::fs::metadata(out.join("model.safetensors")).map_or(0, |m| m.len());
    println!(
        "wrote {}: Hugging Face model ({} MB of weights), task {}",
        out.display(),
        bytes / 1_000_000,
        a.task.as_deref().unwrap_or("")
    );
    Ok(())
}

/// `--all-tasks`: one full copy of the weights per task. Refused with the size it would take.
fn refuse_all_tasks(a: &MergedArgs) -> anyhow::Result<()> {
    let run = Run::open(&a.run)?;
    let ids = run.task_ids();
    let (ckpt, _) = lrs_train::run::resolve_model(&run.config).map_err(|e| anyhow!("{e}"))?;
    let model_bytes = std::fs::metadata(&ckpt.weights).map_or(0, |m| m.len());
    let task_bytes: u64 = ids
        .iter()
        .filter_map(|id| run.dir.task_path(id).ok())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mb = |b: u64| b as f64 / 1e6;
    bail!(
        "--all-tasks refused: {} tasks × {:.1} MB of merged weights = {:.1} MB, where the task \
         files hold the same tasks in {:.2} MB; export one task with --task ID (or serve the \
         task files)",
        ids.len(),
        mb(model_bytes),
        mb(model_bytes * ids.len() as u64),
        mb(task_bytes)
    )
}
