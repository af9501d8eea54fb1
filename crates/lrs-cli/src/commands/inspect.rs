//! `lrs inspect FILE`: metadata, modules, nnz, bytes and hashes of a shared or task file.

use std::path::PathBuf;

use anyhow::Context;
use lrs_nn::files::summary::summarize;

/// Arguments of `lrs inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// A `shared.safetensors` or `<task_id>.safetensors` file.
    file: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Prints the summary of `args.file`.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let s = summarize(&args.file).with_context(|| format!("inspecting {}", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("file     {}", s.path.display());
    println!("format   {}", s.format.as_deref().unwrap_or("(none)"));
    println!("bytes    {}", s.bytes);
    println!("sha256   {}", s.sha256);
    println!("nnz      {}", s.nnz);
    if let Some(dp) = s.metadata.get("dp") {
        let g: serde_json::Value = serde_json::from_str(dp).unwrap_or(serde_json::Value::Null);
        let num = |k: &str| g[k].as_f64().map_or("?".to_string(), |v| format!("{v}"));
        println!(
            "privacy  ({}, {})-DP per {} for the shared factor: {} accountant, σ = {}, q = {}, \
             {} steps, clip {}",
            num("epsilon"),
            num("delta"),
            g["unit"].as_str().unwrap_or("?"),
            g["accountant"].as_str().unwrap_or("?"),
            num("noise_multiplier"),
            num("sample_rate"),
            num("steps"),
            num("clip_norm"),
        );
    }
    println!("metadata");
    for (k, v) in &s.metadata {
        println!("  {k:<15} {v}");
    }
    println!("modules  {}", s.modules.len());
    for m in &s.modules {
        let tensors: Vec<String> = m
            .tensors
            .iter()
            .map(|t| format!("{} {}{:?}", t.name, t.dtype, t.shape))
            .collect();
        let bytes: usize = m.tensors.iter().map(|t| t.bytes).sum();
        let name = if m.module.is_empty() {
            "(other)"
        } else {
            &m.module
        };
        println!(
            "  {name:<45} nnz {:>8}  bytes {:>9}  {}",
            m.nnz,
            bytes,
            tensors.join(", ")
        );
    }
    Ok(())
}
