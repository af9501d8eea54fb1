//! `lrs import peft`: a shared factor (`shared.safetensors`) from an existing PEFT LoRA adapter
//! directory, so personalization can start from a LoRA a user already has.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use lrs_nn::export::staged_dir::refuse_existing;
use lrs_nn::export::{shared_from_peft, PeftLoraConfig};
use lrs_nn::{BertCheckpoint, BertModel, LrsOptions};

/// `lrs import` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A shared factor from a PEFT LoRA adapter (rank, targets and scale from its config).
    Peft(ImportPeftArgs),
}

/// Arguments of `lrs import peft`.
#[derive(Debug, Args)]
pub struct ImportPeftArgs {
    /// The adapter directory (`adapter_config.json`, `adapter_model.safetensors`).
    #[arg(long)]
    pub adapter: PathBuf,
    /// The shared file to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Base checkpoint (directory or hub id; default: the adapter's base_model_name_or_path).
    #[arg(long)]
    pub model: Option<String>,
}

/// Runs `lrs import`.
pub fn run(cmd: ImportCommand) -> anyhow::Result<()> {
    match cmd {
        ImportCommand::Peft(a) => peft(a),
    }
}

fn peft(a: ImportPeftArgs) -> anyhow::Result<()> {
    refuse_existing(&a.out).map_err(|e| anyhow!("{e}"))?;
    let config = PeftLoraConfig::read(&a.adapter).map_err(|e| anyhow!("{e}"))?;
    let spec = a
        .model
        .clone()
        .or(config.base_model.clone())
        .ok_or_else(|| {
            anyhow!(
                "{}: no base_model_name_or_path; name the base with --model",
                a.adapter.display()
            )
        })?;
    let ckpt = BertCheckpoint::resolve(&spec).map_err(|e| anyhow!("base model {spec}: {e}"))?;
    let dev = candle_core::Device::Cpu;
    let base =
        BertModel::load(&ckpt, None, &dev, candle_core::DType::F32).map_err(|e| anyhow!("{e}"))?;
    let linears: BTreeMap<String, (usize, usize)> = base
        .linears()
        .into_iter()
        .filter_map(|l| l.shape().ok().map(|s| (l.name().to_string(), s)))
        .collect();
    let mut shared = shared_from_peft(&a.adapter, &linears, &ckpt.source, &base.base_info().sha256)
        .map_err(|e| anyhow!("{e}"))?;
    // The factor must install into the LRS model its metadata describes.
    let opts = LrsOptions {
        target_modules: shared.target_modules.clone(),
        rank: shared.rank,
        scale: shared.scale,
    };
    let model = BertModel::load(&ckpt, Some(&opts), &dev, candle_core::DType::F32)
        .map_err(|e| anyhow!("{e}"))?;
    model.set_shared(&shared).map_err(|e| anyhow!("{e}"))?;
    shared.save(&a.out).map_err(|e| anyhow!("{e}"))?;
    println!(
        "wrote {}: shared factor from {}, rank {}, scale {}, {} modules, base {}, no head",
        a.out.display(),
        a.adapter.display(),
        shared.rank,
        shared.scale,
        shared.layers.len(),
        ckpt.source
    );
    Ok(())
}
