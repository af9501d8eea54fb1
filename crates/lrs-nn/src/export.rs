//! Exports for other tools: the shared factor (or one task's low-rank model) as a PEFT LoRA
//! adapter directory ([`peft`]), one task merged into a plain Hugging Face model directory
//! ([`merged`]), and the way back: a shared factor from a PEFT adapter ([`peft_import`]).
//!
//! Every export directory is staged beside its target and renamed into place when complete
//! ([`staged_dir`]), and holds two files of its own next to the format's files:
//!
//! - `head.safetensors` (when the model has a scoring head): `weight [1, h]` and `bias [1]`,
//!   the shared head plus the task's (`lrs_nn::bert::binary_head`), so that
//!   `score = σ(mean_pool(last_hidden_state) · weightᵀ + bias)` — the score `lrs serve` gives;
//! - `lrs_export.json`: what was exported from what (kind, task, base, hashes).

pub mod merged;
pub mod peft;
pub mod peft_import;
pub mod staged_dir;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::bert::binary_head::{task_head, HEAD_BIAS, HEAD_WEIGHT};
use crate::files::serialize;
use crate::{NnError, Result, SharedFactor, TaskDelta};

pub use merged::{export_merged, export_merged_dir};
pub use peft::{peft_adapter, PeftAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
pub use peft_import::{shared_from_peft, PeftLoraConfig};
pub use staged_dir::StagedDir;

/// File name of the exported scoring head.
pub const HEAD_FILE: &str = "head.safetensors";
/// File name of the export's provenance.
pub const PROVENANCE_FILE: &str = "lrs_export.json";

/// What an export directory holds beside the format's own files.
#[derive(Debug, Clone, Default)]
pub struct ExportExtras {
    /// The combined scoring head `(weight [1, h], bias [1])`, if the model has one.
    pub head: Option<(Tensor, Tensor)>,
    /// The `lrs_export.json` object.
    pub provenance: serde_json::Value,
}

/// The head that scores `task`'s rows (`shared`'s head plus the task's, an intercept-only task
/// head adding its bias; `None` when neither has one), as F32 on the CPU. `hidden` is the
/// model's hidden size, the weight's width when only a task intercept is present.
pub fn combined_head(
    shared: &SharedFactor,
    task: Option<&TaskDelta>,
    hidden: usize,
) -> Result<Option<(Tensor, Tensor)>> {
    let cpu =
        |t: &Tensor| -> Result<Tensor> { Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?) };
    let base = match (shared.head.get(HEAD_WEIGHT), shared.head.get(HEAD_BIAS)) {
        (Some(w), Some(b)) => Some((cpu(w)?, cpu(b)?)),
        _ => None,
    };
    // A task with a head (a bias, with or without a weight) as `task_head` reads it for
    // scoring: a lone bias is a zero weight plus that bias.
    let own = match task {
        Some(t) if t.head.contains_key(HEAD_BIAS) => {
            let (w, b) = task_head(t, hidden, &Device::Cpu)?;
            Some((cpu(&w)?, cpu(&b)?))
        }
        _ => None,
    };
    Ok(match (base, own) {
        (Some((w, b)), Some((wt, bt))) => Some(((w + wt)?, (b + bt)?)),
        (a, b) => a.or(b),
    })
}

/// Writes `extras` into a staged export directory.
pub fn write_extras(staged: &StagedDir, extras: &ExportExtras) -> Result<()> {
    if let Some((w, b)) = &extras.head {
        let bytes = serialize(
            Path::new(HEAD_FILE),
            vec![("weight".into(), w.clone()), ("bias".into(), b.clone())],
            Default::default(),
        )?;
        staged.write(HEAD_FILE, &bytes)?;
    }
    let text = serde_json::to_string_pretty(&extras.provenance)
        .map_err(|e| NnError::Invalid(format!("{PROVENANCE_FILE}: {e}")))?;
    staged.write(PROVENANCE_FILE, text.as_bytes())?;
    Ok(())
}

/// Writes the PEFT adapter directory `out` (refused if it exists; staged and renamed):
/// `adapter_config.json`, `adapter_model.safetensors` ([`peft_adapter`] of `shared` and
/// `task`) and `extras`. Returns `out` and the adapter.
pub fn export_peft_dir(
    shared: &SharedFactor,
    task: Option<&TaskDelta>,
    extras: &ExportExtras,
    out: &Path,
) -> Result<(PathBuf, PeftAdapter)> {
    let staged = StagedDir::new(out)?;
    let adapter = peft_adapter(shared, task)?;
    staged.write(ADAPTER_WEIGHTS, &adapter.weights_bytes()?)?;
    staged.write(ADAPTER_CONFIG, adapter.config_text()?.as_bytes())?;
    write_extras(&staged, extras)?;
    Ok((staged.commit()?, adapter))
}

/// Errors unless every module `task` adapts (sparse, core or LoRA) has a shared factor.
fn check_task_modules(shared: &SharedFactor, task: &TaskDelta) -> Result<()> {
    match task
        .layers
        .keys()
        .chain(task.lora.keys())
        .find(|m| !shared.layers.contains_key(*m))
    {
        Some(m) => Err(NnError::Invalid(format!(
            "task {} adapts {m}, which the shared factor does not",
            task.task_id
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
