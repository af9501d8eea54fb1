//! Score a mixed batch of users in one forward pass, with the library API: the serving
//! engine over a trained run's shared file and task files, rows of three different users
//! (and one base-only row) in a single batch, checked against scoring each user alone.
//!
//! ```text
//! cargo run --example mixed_batch
//! ```
//!
//! It trains a tiny seeded run first (a few seconds); `lrs serve` runs the same engine
//! behind its HTTP API and batches concurrent requests this way.

mod common;

use std::sync::Arc;

use candle_core::{DType, Device};
use lrs_nn::{BertCheckpoint, BertModel, SharedFactor};
use lrs_serve::{Engine, Metrics, Row, TaskId, TextEncoder};

fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let (model_dir, run) = common::trained_run(tmp.path(), 3)?;

    let ckpt = BertCheckpoint::from_dir(&model_dir)?;
    let opts = SharedFactor::options_of(&run.shared_path())?;
    let model = BertModel::load(&ckpt, Some(&opts), &Device::Cpu, DType::F32)?;
    let text = TextEncoder::from_file(&model_dir.join("tokenizer.json"), 16)?;
    let engine = Engine::new(
        model,
        &run.shared_path(),
        &run.tasks_dir(),
        Some(text),
        64 << 20,
        16,
        Arc::new(Metrics::default()),
    )?;

    // Rows for u0, u1, u2 and the base model (no task), interleaved; the same text scores
    // differently for different users.
    let inputs: Vec<(Option<&str>, &str)> = vec![
        (Some("u0"), "w40 w10 w50"),
        (Some("u1"), "w40 w10 w50"),
        (Some("u2"), "w41 w12 w51"),
        (None, "w40 w10 w50"),
        (Some("u1"), "w42 w11 w52"),
        (Some("u0"), "w42 w11 w52"),
    ];
    let mut tasks = Vec::new();
    for id in ["u0", "u1", "u2"] {
        tasks.push(engine.registry().load(&TaskId::parse(id)?)?);
    }
    let task = |id: Option<&str>| id.and_then(|id| tasks.iter().find(|t| t.id.as_str() == id));
    let texts: Vec<String> = inputs.iter().map(|(_, t)| t.to_string()).collect();
    let tokens = engine.tokenize(&texts)?;
    let rows: Vec<Row> = inputs
        .iter()
        .zip(&tokens)
        .map(|((id, _), tokens)| Row {
            task: task(*id).map(|t| &**t),
            tokens,
        })
        .collect();

    let batch = engine.forward(&rows, false)?;
    println!(
        "one forward pass over {} rows of 3 users + base:",
        rows.len()
    );
    let mut worst = 0f32;
    for (i, ((id, text), logit)) in inputs.iter().zip(&batch.logits).enumerate() {
        let alone = engine.forward(&rows[i..=i], false)?.logits[0];
        worst = worst.max((alone - logit).abs());
        println!(
            "  {:<5} {:<14} score {:.4}  (alone: {:.4})",
            id.unwrap_or("base"),
            text,
            lrs_serve::engine::sigmoid(*logit),
            lrs_serve::engine::sigmoid(alone)
        );
    }
    println!("largest |mixed − alone| logit difference: {worst:.2e}");
    anyhow::ensure!(worst < 1e-4, "a row's score depends on the batch");
    Ok(())
}
