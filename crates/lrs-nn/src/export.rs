//! Exports for other tools: the shared factor as a PEFT LoRA adapter directory, and one task
//! merged into dense weights under the base checkpoint's own key names.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};

use crate::error::FileError;
use crate::files::{atomic::write_atomic, read_bytes, serialize, sha256_hex, Parsed};
use crate::layer_delta::SparsePart;
use crate::lora_part::LoraPart;
use crate::{NnError, Result, SharedFactor, TaskDelta};

/// Writes `dir/adapter_model.safetensors` and `dir/adapter_config.json`: a PEFT LoRA adapter
/// with `lora_A = Vᵀ [r, in]`, `lora_B = s·U [out, r]` and `lora_alpha = r` (PEFT scale 1), so
/// PEFT computes exactly `s·U Vᵀ`. Keys are `base_model.model.<module>.lora_{A,B}.weight`
/// (module names as in the shared file: a bare `BertModel`'s names).
pub fn export_peft(shared: &SharedFactor, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| FileError::Io {
        file: dir.to_path_buf(),
        source,
    })?;
    let weights = dir.join("adapter_model.safetensors");
    let mut tensors = Vec::new();
    for (module, lr) in &shared.layers {
        let a = lr.v.t()?.contiguous()?.to_dtype(DType::F32)?;
        let b = (&lr.u * lr.scale)?.to_dtype(DType::F32)?;
        tensors.push((format!("base_model.model.{module}.lora_A.weight"), a));
        tensors.push((format!("base_model.model.{module}.lora_B.weight"), b));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = serialize(&weights, tensors, meta)?;
    write_atomic(&weights, &bytes)?;
    let (base, revision) = match shared.base_model.split_once('@') {
        Some((id, rev)) => (id.to_string(), Some(rev.to_string())),
        None => (shared.base_model.clone(), None),
    };
    let config = serde_json::json!({
        "peft_type": "LORA",
        "r": shared.rank,
        "lora_alpha": shared.rank,
        "lora_dropout": 0.0,
        "target_modules": shared.target_modules,
        "base_model_name_or_path": base,
        "revision": revision,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "task_type": null,
    });
    let config_path = dir.join("adapter_config.json");
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| NnError::Invalid(format!("adapter_config.json: {e}")))?;
    write_atomic(&config_path, text.as_bytes())?;
    Ok(())
}

/// Writes `out`: the base weight file with every adapted module's weight replaced by
/// `W0 + s·U diag(w) Vᵀ + S + s_l·B A` for `task` (its sparse part and per-task LoRA part
/// where it has them; `W0 + s·U Vᵀ` without a task), every other tensor
/// and every key name unchanged — loadable by any BERT loader. The base file must be the one
/// the shared factor was trained on (`base_sha256`).
pub fn export_merged(
    base_weights: &Path,
    shared: &SharedFactor,
    task: Option<&TaskDelta>,
    out: &Path,
) -> Result<()> {
    let bytes = read_bytes(base_weights)?;
    let actual = sha256_hex(&bytes);
    if actual != shared.base_sha256 {
        return Err(FileError::HashMismatch {
            file: base_weights.to_path_buf(),
            what: "base_sha256",
            recorded: shared.base_sha256.clone(),
            actual,
        }
        .into());
    }
    if let Some(task) = task {
        if let Some(m) = task
            .layers
            .keys()
            .chain(task.lora.keys())
            .find(|m| !shared.layers.contains_key(*m))
        {
            return Err(NnError::Invalid(format!(
                "task {} adapts {m}, which the shared factor does not",
                task.task_id
            )));
        }
    }
    let parsed = Parsed::new(base_weights, &bytes)?;
    let meta = parsed.meta.clone();
    let mut tensors = Vec::new();
    for name in parsed.names() {
        let view = parsed.st.tensor(&name).map_err(|e| FileError::Malformed {
            file: base_weights.to_path_buf(),
            reason: e.to_string(),
        })?;
        let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)
            .map_err(|e| parsed.tensor_err(&name, e))?;
        let module = name
            .strip_suffix(".weight")
            .map(|m| m.strip_prefix("bert.").unwrap_or(m));
        let t = match module.and_then(|m| shared.layers.get(m).map(|lr| (m, lr))) {
            None => t,
            Some((m, lr)) => {
                let dtype = t.dtype();
                let (u, v) = (
                    lr.u.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
                    lr.v.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
                );
                let delta = task.and_then(|t| t.layers.get(m));
                let u = match delta.and_then(|d| d.w.as_ref()) {
                    Some(w) => u.broadcast_mul(
                        &w.to_device(&Device::Cpu)?
                            .to_dtype(DType::F32)?
                            .unsqueeze(0)?,
                    )?,
                    None => u,
                };
                let mut merged = (t.to_dtype(DType::F32)? + (u.matmul(&v.t()?)? * lr.scale)?)?;
                match delta.map(|d| &d.sparse) {
                    Some(SparsePart::Sparse(s)) => {
                        merged = (merged + s.to(DType::F32, &Device::Cpu)?.to_dense()?)?;
                    }
                    Some(SparsePart::Dense(d)) => {
                        merged = (merged + d.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)?;
                    }
                    _ => {}
                }
                if let Some(lora) = task.and_then(|t| t.lora.get(m)) {
                    let lora = LoraPart::new(
                        lora.a.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
                        lora.b.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
                        lora.scale,
                    );
                    lora.check_shape(merged.dims2()?)?;
                    merged = (merged + lora.delta_weight()?)?;
                }
                merged.to_dtype(dtype)?
            }
        };
        tensors.push((name, t));
    }
    let out_bytes = serialize(out, tensors, meta)?;
    write_atomic(out, &out_bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests;
